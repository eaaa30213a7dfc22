"""`stylegen metrics`: FID, KID, precision/recall, PPL (NVIDIA's names) and offline metrics, as JSONL."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

import click

from stylegen.cli import common


def _metric_list() -> str:
    from stylegen.metrics import METRICS

    return "; ".join(f"{s.name}: {s.summary}" for s in METRICS.values())


@click.command("metrics", short_help="FID / KID / precision-recall / PPL of a network, as JSONL.")
@common.network_option
@click.option(
    "--data",
    metavar="PATH",
    type=click.Path(exists=True),
    default=None,
    help="Dataset folder or zip at the network's resolution (not needed for ppl* alone).",
)
@click.option(
    "--metrics",
    "metric_names",
    metavar="LIST",
    default="fid50k_full",
    show_default=True,
    help="Comma-separated metric names (listed above).",
)
@click.option(
    "--feature-net",
    metavar="PATH",
    default=None,
    help="Inception-v3 weights: pytorch-fid's pt_inception-2015-12-05-6726825d.pth (state dict; "
    "default: $STYLEGEN_INCEPTION, then $TORCH_HOME/hub/checkpoints/, downloaded there if "
    "missing) or NVIDIA's TorchScript inception-2015-12-05.pt (only here: loading TorchScript "
    "runs its stored graph).",
)
@click.option(
    "--vgg",
    metavar="PATH",
    default=None,
    help="torchvision VGG16 weights vgg16-397923af.pth for pr50k3_full and ppl2_wend (default: "
    "$STYLEGEN_VGG16, then $TORCH_HOME/hub/checkpoints/, downloaded there if missing).",
)
@click.option(
    "--num",
    type=click.IntRange(min=2),
    default=None,
    help="Generated images (ppl: samples) instead of the metric's 50k; the record then says comparable: false.",
)
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True, help="Images per forward pass.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of z, labels and noise.")
@click.option(
    "--outdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Append the records to OUTDIR/metrics.jsonl (default: print them on stdout).",
)
@click.option("--no-cache", is_flag=True, help="Do not read or write cached dataset features.")
@common.device_option
@common.library_errors
def metrics(network, data, metric_names, feature_net, vgg, num, batch, seed, outdir, no_cache, device):
    """Compute metrics of a network against a dataset: one JSON line per metric.

    Weights missing from the torch hub cache are downloaded there first; offline, the command
    stops within seconds with the file name, where it goes and where it comes from (the
    *_effnet_lite0 metrics need no download). Dataset features are cached (~/.cache/stylegen
    or $STYLEGEN_CACHE) by the images' content and the feature network. See docs/metrics.md.
    """
    import stylegen
    from stylegen.metrics import METRICS, parse_metric_names, runner

    try:
        names = parse_metric_names(metric_names)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="'--metrics'") from e
    if data is None and any(METRICS[n].kind != "ppl" for n in names):
        raise click.UsageError("--data is required for " + ", ".join(n for n in names if METRICS[n].kind != "ppl"))
    opts = runner.MetricOptions(
        feature_net=feature_net, vgg=vgg, num=num, batch=batch, seed=seed,
        use_cache=not no_cache, progress=lambda label, n: common.progress(n, label, show=True),
    )  # fmt: skip
    runner.check_weights(names, opts)  # fail fast, before loading the network or data
    opts.device = common.resolve_device(device)
    path = common.resolve_network(network, "--network")
    G = stylegen.load_network(path).to(opts.device).eval()
    out = Path(outdir) / "metrics.jsonl" if outdir else None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    for record in runner.run_metrics(G, data, names, opts):
        record.update(network=str(path), data=None if data is None else str(data), timestamp=time.time())
        line = json.dumps(record)
        if out is None:
            click.echo(line)
        else:
            with open(out, "a", encoding="utf-8") as f:
                f.write(line + "\n")
            click.echo(f"{record['metric']}: {record['results']} -> {out}", err=True)


metrics.help = (
    inspect.cleandoc(metrics.help or "")
    + "\n\n\b\nMetrics:\n"
    + "\n".join(f"  {line}" for line in _metric_list().split("; "))
)
