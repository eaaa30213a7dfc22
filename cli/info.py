"""`stylegen info`: what a network snapshot holds."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import click

from stylegen.cli import common


@click.command("info", short_help="Describe a network snapshot.")
@click.argument("network", metavar="PKL", type=common.NETWORK)
@common.library_errors
def info(network):
    """Describe a network snapshot (stylegen .pkl, NVIDIA pickle, or a bundled name such as
    'people'): format, architecture, parameter counts, training progress and, for bundled
    networks, their provenance. Nothing from the file is executed."""
    import stylegen

    snapshot = read_snapshot(network)
    G = stylegen.load_network(network, which="G_ema")
    rows = [("file", network), ("format", describe_format(snapshot))]
    rows += architecture_rows(G)
    rows.append(("params G_ema", f"{count_params(G):,}"))
    for which in ("G", "D"):
        count = other_network_params(network, which, snapshot)
        if count is not None:
            rows.append((f"params {which}", count))
    extra = extra_rows(snapshot)
    rows += training_rows(network, snapshot) if not extra else []
    rows += extra
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


def read_snapshot(path: str) -> dict | None:
    """Our snapshot's container (tensors included, nothing executed), or None for an NVIDIA pickle.

    Our snapshots are torch.save zip files; NVIDIA's are plain pickles (not zip files).
    """
    if not zipfile.is_zipfile(path):
        return None
    import stylegen

    return stylegen.load_snapshot(path)


def describe_format(snapshot: dict | None) -> str:
    if snapshot is None:
        return "NVIDIA pickle (stylegan2-ada-pytorch / stylegan3), read without executing code"
    return f"stylegen v{snapshot.get('version', '?')}"


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


def other_network_params(path: str, which: str, snapshot: dict | None) -> str | None:
    """Parameter count of G or D if the file has it (None when absent)."""
    import stylegen

    if snapshot is not None and snapshot.get(which) is None:
        return None
    try:
        return f"{count_params(stylegen.load_network(path, which=which)):,}"
    except stylegen.NetworkLoadError as e:
        if "has no '" in e.problem:
            return None
        return f"present, not loadable here ({e.problem})"


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
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if isinstance(v, (int, float, str, bool)))
        if isinstance(value, (int, float, str, bool)) and value != "":
            rows.append((key, common.one_line(value) if isinstance(value, str) else value))
    return rows
