"""Training speed: seconds per phase and per iteration, ref vs CPU plugin, GFLOP/s vs conv peak.

    python bench/train_speed.py [--res 32 64] [--repeats 3] [--out docs/benchmarks.md]

Config (NVIDIA's comparison point): batch 8, channel_base 16384, channel_max 512, 2 mapping
layers, R1 every 16 and path length every 4 minibatches, fp32, no augmentation. "full" = one
iteration running all four phases; "amortised" = G main + D main + G reg / 4 + D reg / 16.
FLOPs are counted by torch.utils.flop_counter (convolutions and matmuls, forward+backward).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from stylegen.networks.discriminator import Discriminator, DiscriminatorConfig
from stylegen.networks.generator import Generator, GeneratorConfig
from stylegen.training.losses import LossConfig, StyleGAN2Loss

NVIDIA = {32: (18.1, 10.5), 64: (30.3, 17.6)}  # seconds: full iteration, amortised (this machine)


def conv_peak(repeats: int) -> float:
    """GFLOP/s of a 3x3 512->512 conv on [8, 512, 32, 32] (forward)."""
    x, w = torch.randn(8, 512, 32, 32), torch.randn(512, 512, 3, 3)
    F.conv2d(x, w, padding=1)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        F.conv2d(x, w, padding=1)
        times.append(time.perf_counter() - t)
    return 2 * 8 * 512 * 512 * 9 * 32 * 32 / statistics.median(times) / 1e9


def phases(res: int, batch: int):
    torch.manual_seed(0)
    G = Generator(
        GeneratorConfig(
            z_dim=512,
            c_dim=0,
            w_dim=512,
            img_resolution=res,
            img_channels=3,
            mapping_layers=2,
            channel_base=16384,
            channel_max=512,
        )
    ).train()
    D = Discriminator(
        DiscriminatorConfig(c_dim=0, img_resolution=res, img_channels=3, channel_base=16384, channel_max=512)
    ).train()
    loss = StyleGAN2Loss(G, D, LossConfig(r1_gamma=1.0, pl_weight=2.0, style_mixing_prob=0.9))
    real = torch.randn(batch, 3, res, res)
    z = lambda: torch.randn(batch, 512)  # noqa: E731
    return {
        "G main": (G, lambda: loss.g_main(z(), None, 1.0)),
        "G reg": (G, lambda: loss.g_reg(z(), None, 4.0)),
        "D main": (D, lambda: loss.d_main(real, None, z(), None, 1.0)),
        "D reg": (D, lambda: loss.d_reg(real, None, 16.0)),
    }


def time_phase(module, fn, repeats: int) -> tuple[float, float]:
    """(median seconds, GFLOP) of one phase including zero_grad and backward."""
    module.requires_grad_(True)
    fn()
    times = []
    for _ in range(repeats):
        module.zero_grad(set_to_none=True)
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    flops = float("nan")
    try:  # FlopCounterMode cannot follow autograd.grad (the R1 / path-length phases)
        with FlopCounterMode(display=False) as counter:
            fn()
        flops = counter.get_total_flops() / 1e9
    except RuntimeError:
        module.zero_grad(set_to_none=True)
    module.requires_grad_(False)
    return statistics.median(times), flops


def run(res: int, impl: str, repeats: int, batch: int) -> dict:
    os.environ["STYLEGEN_OPS"] = impl
    out = {}
    for name, (module, fn) in phases(res, batch).items():
        out[name] = time_phase(module, fn, repeats)
    full = sum(t for t, _ in out.values())
    amort = out["G main"][0] + out["D main"][0] + out["G reg"][0] / 4 + out["D reg"][0] / 16
    # GFLOP/s of the main phases (their FLOPs are countable; the regularisers' are not).
    main_flops = out["G main"][1] + out["D main"][1]
    return {
        "phases": out,
        "full": full,
        "amortised": amort,
        "gflops": main_flops / (out["G main"][0] + out["D main"][0]),
    }


def table(results: dict, peak: float, batch: int) -> str:
    lines = [
        "## Training speed",
        "",
        f"`python bench/train_speed.py` — batch {batch}, channel_base 16384, channel_max 512, 2 mapping layers, "
        f"fp32, median of repeated runs; conv peak measured in the same run: **{peak:.0f} GFLOP/s**.",
        "",
        "| res | impl | G main s | G reg s | D main s | D reg s | full iter s | amortised s | main-phase GFLOP/s (% peak) | NVIDIA full / amortised s | amortised vs NVIDIA |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (res, impl), r in results.items():
        p = r["phases"]
        nv_full, nv_am = NVIDIA.get(res, (float("nan"), float("nan")))
        lines.append(
            f"| {res} | {impl} | {p['G main'][0]:.2f} | {p['G reg'][0]:.2f} | {p['D main'][0]:.2f} | "
            f"{p['D reg'][0]:.2f} | {r['full']:.2f} | {r['amortised']:.2f} | {r['gflops']:.0f} "
            f"({100 * r['gflops'] / peak:.0f}%) | {nv_full} / {nv_am} | {r['amortised'] / nv_am:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def write_section(path: str, section: str) -> None:
    """Replace (or append) the '## Training speed' section of a markdown file."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    head = section.splitlines()[0]
    start = text.find(head)
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(head))
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    open(path, "w").write(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--impl", nargs="+", default=["ref", "cpu"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", help="markdown file whose '## Training speed' section is replaced")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    peak = conv_peak(5)
    results = {(res, impl): run(res, impl, args.repeats, args.batch) for res in args.res for impl in args.impl}
    section = table(results, peak, args.batch)
    print(section)
    if args.out:
        write_section(args.out, section)


if __name__ == "__main__":
    main()
