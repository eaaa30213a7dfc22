"""Generator sampling speed on the CPU, side by side with NVIDIA's code on the same weights.

    python bench/generate.py --nvidia-repo DIR [--out docs/benchmarks.md] [--reps 5]
        [--workloads 256:16384:1,256:16384:8,256:32768:1] [--impls ref,cpu]

Each workload is resolution:channel_base:batch (z = w = 512, 8 mapping layers, channel_max 512,
fp32, noise 'const'). NVIDIA's Generator (imported from DIR, their eval path: grouped conv,
transposed conv + FIR, their ops' reference path on the CPU) is built with its own
initialisation and its state dict copied into ours. Paths, all under torch.no_grad():
  nvidia        their G.eval()
  ours eval     our trainable Generator in eval mode
  ours frozen   G.freeze(), the inference-only form (when the Generator has one)
ours run with each ops implementation of --impls. Every path's images must equal NVIDIA's
within 1e-3 (max abs); then all paths are timed alternating (A B C ... A B C ...) and the
median of --reps rounds is reported. GFLOP/s credits every path with the multiply-adds of
NVIDIA's algorithm (2 FLOP per MAC), so it is img/s on a common scale.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import _peer
import torch

from stylegen import Generator, GeneratorConfig

SECTION = "## Generator"
DEFAULT_WORKLOADS = "256:16384:1,256:16384:8,256:32768:1"


def count_macs(G: Generator) -> int:
    """Multiply-adds per image of the NVIDIA algorithm (transposed conv for the up-sampling)."""
    cfg = G.config
    macs = cfg.z_dim * cfg.w_dim + (cfg.mapping_layers - 1) * cfg.w_dim**2
    for r in G.synthesis.block_resolutions:
        block = getattr(G.synthesis, f"b{r}")
        c_out = block.conv1.weight.shape[0]
        if r > 4:
            c_in = block.conv0.weight.shape[1]
            macs += (r // 2) ** 2 * 9 * c_in * c_out + cfg.w_dim * c_in
        macs += r * r * 9 * c_out * c_out + cfg.w_dim * c_out
        macs += r * r * c_out * cfg.img_channels + cfg.w_dim * c_out
    return macs


def with_ops(impl: str, fn):
    """fn run with STYLEGEN_OPS=impl (read by our ops at each call), under no_grad."""

    def run():
        os.environ["STYLEGEN_OPS"] = impl
        with torch.no_grad():
            return fn()

    return run


def paths(G_nv, G: Generator, z: torch.Tensor, impls: list[str]) -> dict:
    """Name -> zero-argument sampler for every path of one workload."""
    c = torch.zeros([z.shape[0], 0])
    out = {"nvidia": with_ops("ref", lambda: G_nv(z, c, noise_mode="const"))}
    frozen = G.freeze() if hasattr(G, "freeze") else None
    for impl in impls:
        out[f"ours eval|{impl}"] = with_ops(impl, lambda: G(z, noise_mode="const"))
        if frozen is not None:
            out[f"ours frozen|{impl}"] = with_ops(impl, lambda: frozen(z, noise_mode="const"))
    return out


def run_workload(nv, res: int, cbase: int, batch: int, args) -> list[dict]:
    cfg = GeneratorConfig(
        z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3, channel_base=cbase, channel_max=512
    )
    G_nv, G = _peer.generator_pair(nv, cfg)
    G_nv.eval().requires_grad_(False)
    G.eval().requires_grad_(False)
    z = torch.randn([batch, 512], generator=torch.Generator().manual_seed(batch))
    fns = paths(G_nv, G, z, args.impls)
    images = {k: fn() for k, fn in fns.items()}
    errs = {k: _peer.check_close(f"{res}px cbase {cbase} {k}", images["nvidia"], img) for k, img in images.items()}
    times = _peer.alternate(fns, args.reps)
    gflop = 2 * count_macs(G) / 1e9
    t_nv = _peer.median(times["nvidia"])
    rows = []
    for k, ts in times.items():
        t = _peer.median(ts)
        path, _, impl = k.partition("|")
        row = {"res": res, "cbase": cbase, "batch": batch, "path": path, "impl": impl or "ref (theirs)"}
        row.update(ips=batch / t, speedup=t_nv / t, gflops=gflop * batch / t, err=errs[k], spread=(min(ts), max(ts)))
        rows.append(row)
        print(fmt_row(row), flush=True)
    return rows


def fmt_row(r: dict) -> str:
    err = "(reference)" if r["path"] == "nvidia" else f"{r['err']:.1e}"
    lo, hi = r["spread"]
    return (
        f"| {r['res']} | {r['cbase']} | {r['batch']} | {r['path']} | {r['impl']} | {r['ips']:.2f} | "
        f"x{r['speedup']:.2f} | {r['gflops']:.1f} | {r['batch'] / hi:.2f}-{r['batch'] / lo:.2f} | {err} |"
    )


def table(rows: list[dict], args, load_before: float) -> str:
    lines = [
        SECTION,
        "",
        f"`{_peer.command_line('bench/generate.py')}`",
        "",
        f"{_peer.machine_line()}. {_peer.load_note(load_before)}",
        "",
        f"Same weights on both sides (NVIDIA's initialisation copied into ours), z = w = 512, 8 mapping layers, "
        f"channel_max 512, fp32, noise 'const', all under `torch.no_grad()`; median of {args.reps} rounds, all "
        "paths of a workload alternating. `nvidia` = NVIDIA's stylegan2-ada-pytorch `G.eval()` imported from "
        "`--nvidia-repo` (their CPU ops = their reference path); `ours eval` = our trainable Generator in eval "
        "mode; `ours frozen` = `G.freeze()`. ops = our ops implementation. GFLOP/s credits every path with "
        "NVIDIA's multiply-add count; max diff = max abs difference of the images from NVIDIA's.",
        "",
        "| resolution | channel_base | batch | path | ops | img/s (median) | vs nvidia | GFLOP/s | img/s range | max diff |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [fmt_row(r) for r in rows]
    return "\n".join(lines) + "\n"


def parse_workloads(text: str) -> list[tuple[int, int, int]]:
    try:
        out = [tuple(int(v) for v in item.split(":")) for item in text.split(",")]
    except ValueError:
        out = []
    if not out or any(len(w) != 3 for w in out):
        _peer.fail(f"--workloads {text!r}: expected resolution:channel_base:batch[,...], e.g. 256:16384:1")
    return out


def default_impls() -> list[str]:
    from stylegen.cuda_ops import PluginUnavailable, load_plugin

    try:
        load_plugin("cpu")
        return ["ref", "cpu"]
    except PluginUnavailable as e:
        print(f"cpu plugin unavailable, benchmarking our 'ref' ops only: {e}")
        return ["ref"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _peer.add_nvidia_option(p)
    p.add_argument("--out", type=Path, help="markdown file whose '## Generator' section is (re)written")
    p.add_argument("--reps", type=int, default=5, help="timed rounds per workload (median)")
    p.add_argument("--workloads", default=DEFAULT_WORKLOADS, help="resolution:channel_base:batch, comma-separated")
    p.add_argument("--impls", default=None, help="our ops implementations (default: ref, and cpu if it builds)")
    args = p.parse_args()
    if args.reps < 1:
        _peer.fail(f"--reps {args.reps}: must be >= 1")
    workloads = parse_workloads(args.workloads)
    load_before = _peer.load_average()
    nv = _peer.import_nvidia(args.nvidia_repo)
    args.impls = args.impls.split(",") if args.impls else default_impls()
    rows = [row for w in workloads for row in run_workload(nv, *w, args)]
    text = table(rows, args, load_before)
    print(text)
    if args.out:
        _peer.write_section(args.out, text)


if __name__ == "__main__":
    main()
