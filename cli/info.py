"""`stylegen info`: what a network file holds, whatever its format."""

from __future__ import annotations

import re
from pathlib import Path

import click

from stylegen.cli import common


@click.command("info", short_help="Describe a network file.")
@click.argument("network", metavar="PKL", type=common.NETWORK)
@common.library_errors
def info(network):
    """Describe a network file (stylegen snapshot, NVIDIA PyTorch or TensorFlow pickle, rosinality
    checkpoint, or a bundled name such as 'people'): format, architecture, parameter counts,
    the loader's notes, training progress and, for bundled or converted networks, their
    provenance. Nothing from the file is executed."""
    from stylegen.formats.network_file import read_network_file

    source = read_network_file(network)
    G = source.G_ema if source.G_ema is not None else source.G
    rows = [("file", network), ("format", source.source_format)]
    rows += architecture_rows(G)
    rows += param_rows(source)
    rows += [("note", common.one_line(note)) for note in source.source_notes]
    extra = extra_rows(source.snapshot)
    rows += training_rows(network, source.snapshot) if not extra else []
    rows += extra
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


def param_rows(source) -> list[tuple[str, object]]:
    """'params G_ema/G/D' for each network the file has: its count, or why it does not load."""
    rows = []
    for which in ("G_ema", "G", "D"):
        net = source.networks.get(which)
        if net is not None:
            rows.append((f"params {which}", f"{count_params(net):,}"))
        elif which in source.problems:
            rows.append((f"params {which}", f"present, not loadable here ({source.problems[which]})"))
    return rows


def architecture_rows(G) -> list[tuple[str, object]]:
    cfg = getattr(G, "config", None)
    rows = [
        ("resolution", f"{G.img_resolution}x{G.img_resolution}"),
        ("img_channels", G.img_channels),
        ("z_dim", G.z_dim),
        ("w_dim", G.w_dim),
        (
            "c_dim",
            f"{G.c_dim}" + (" (unconditional)" if G.c_dim == 0 else " (conditional: pass --class)"),
        ),
        ("num_ws", G.num_ws),
    ]
    if cfg is not None:
        rows += [
            ("mapping_layers", cfg.mapping_layers),
            ("channel_base", cfg.channel_base),
            ("channel_max", cfg.channel_max),
            ("conv_clamp", cfg.conv_clamp),
            ("architecture", cfg.architecture),
        ]
    return rows


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def training_rows(path: str, snapshot: dict | None) -> list[tuple[str, object]]:
    """Scalar training counters (kimg, tick, augment_p, ...) of a training snapshot."""
    if snapshot is None:
        m = re.search(r"network-snapshot-(\d+)\.pkl$", Path(path).name)
        return [("kimg", f"{int(m.group(1))} (from the file name)")] if m else []
    training = snapshot.get("training")
    if not isinstance(training, dict):
        return [("training", "none (not a training snapshot)")]
    scalars = {k: v for k, v in training.items() if isinstance(v, (int, float, str, bool))}
    if "kimg" not in scalars and isinstance(scalars.get("cur_nimg"), int):
        scalars["kimg"] = scalars["cur_nimg"] / 1000
    return [(k, v) for k, v in sorted(scalars.items())]


def extra_rows(snapshot: dict | None) -> list[tuple[str, object]]:
    """Plain entries of the snapshot's 'extra' record (a bundled network's provenance)."""
    extra = snapshot.get("extra") if snapshot is not None else None
    if not isinstance(extra, dict):
        return []
    rows = []
    for key, value in extra.items():
        if key == "source" and isinstance(value, dict):  # `stylegen convert`; file and format are in the notes
            rows += [(f"source {k}", common.one_line(value[k])) for k in ("sha256", "earlier") if value.get(k)]
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if isinstance(v, (int, float, str, bool)))
        if isinstance(value, (int, float, str, bool)) and value != "":
            rows.append((key, common.one_line(value) if isinstance(value, str) else value))
    return rows
