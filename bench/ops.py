"""Fused-op speed: reference (PyTorch) vs the C++ CPU plugin, ms and GB/s vs memory bandwidth.

    python bench/ops.py [--repeats 7] [--threads 2] [--impl ref cpu] [--no-thp] [--out docs/benchmarks.md]

Cases are the StyleGAN2 resampling ops with the [1, 3, 3, 1] filter (a 4x4 2-D pass) and lrelu
bias_act with a bias, on [8, 512, 32, 32], [8, 256, 64, 64] and [8, 128, 128, 128] float32 NCHW.
Times are medians of `--repeats` runs in this process: forward, and forward + backward (gradient
w.r.t. x, and b for bias_act). GB/s counts one read of x and one write of y per forward; the
bandwidth reference is a large tensor copy (read + write) measured in the same run. "cpu 1-D x2"
times the same resampling as two separable 1-D plugin passes ([1, 4] then [4, 1]).

Transparent huge pages: by default THP_MEM_ALLOC_ENABLE=1 (PyTorch's allocator then backs large
tensors with 2 MB pages). Without it, every fresh output of tens of MB costs thousands of page
faults here, which can dominate the timing of every implementation; --no-thp measures that.
"""

from __future__ import annotations

import os
import sys

# Must precede `import torch`: c10 reads it once, at its first allocation.
if "--no-thp" not in sys.argv:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Callable  # noqa: E402

import torch  # noqa: E402

from stylegen.cuda_ops import load_plugin  # noqa: E402
from stylegen.ops import bias_act, downsample2d, filter2d, setup_filter, upsample2d  # noqa: E402

SHAPES = [(8, 512, 32, 32), (8, 256, 64, 64), (8, 128, 128, 128)]
OPS = ["upsample2d", "downsample2d", "filter2d", "bias_act lrelu"]
# NVIDIA's stylegan2-ada CPU path on this machine, ms: (forward, forward + backward) per shape.
NVIDIA = {
    "upsample2d": [(189, 351), (376, 632), (702, 1248)],
    "downsample2d": [(35, 57), (58, 135), (166, 387)],
    "filter2d": [(38, 50), (57, 164), (176, 343)],
    "bias_act lrelu": [(7.5, 15), (62, 78), (84, 162)],
}
# Plugin arguments of each resampling op with the 4-tap filter, as (up, down, pad0, pad1, gain) per axis.
SEPARABLE = {"upsample2d": (2, 1, 2, 1, 2.0), "downsample2d": (1, 2, 1, 1, 1.0), "filter2d": (1, 1, 2, 1, 1.0)}


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    fn()  # a second warm-up: the allocator settles on reusing freed blocks of this size
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def copy_bandwidth(repeats: int) -> float:
    """GB/s of a 256 MB float32 copy (bytes read + bytes written)."""
    src = torch.randn(64 << 20)
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), repeats)
    return 2 * src.nbytes / ms / 1e6


def make_op(name: str, x: torch.Tensor, impl: str) -> tuple[Callable, list[torch.Tensor]]:
    """(function of the differentiable inputs, those inputs) for one case."""
    f = setup_filter([1, 3, 3, 1])
    if name == "upsample2d":
        return (lambda x: upsample2d(x, f, impl=impl)), [x]
    if name == "downsample2d":
        return (lambda x: downsample2d(x, f, impl=impl)), [x]
    if name == "filter2d":
        return (lambda x: filter2d(x, f, impl=impl)), [x]
    b = torch.randn(x.shape[1])
    return (lambda x, b: bias_act(x, b, act="lrelu", impl=impl)), [x, b]


def time_case(name: str, shape: tuple, impl: str, repeats: int) -> tuple[float, float, int]:
    """(forward ms, forward + backward ms, bytes of x + y) for one op, shape and impl."""
    torch.manual_seed(0)
    x = torch.randn(shape)
    op, inputs = make_op(name, x, impl)
    y = op(*inputs)
    fwd = median_ms(lambda: op(*inputs), repeats)
    grads = [t.detach().requires_grad_(True) for t in inputs]
    dy = torch.randn_like(y)
    both = median_ms(lambda: op(*grads).backward(dy), repeats)
    return fwd, both, x.nbytes + y.nbytes


def time_separable(name: str, shape: tuple, repeats: int) -> float:
    """Forward ms of the same resampling as two 1-D passes of the CPU plugin."""
    plugin = load_plugin("cpu")
    x = torch.randn(shape)
    f = setup_filter([1, 3, 3, 1], separable=True)
    up, down, p0, p1, g = SEPARABLE[name]

    def run():
        t = plugin.upfirdn2d(x, f[None, :], up, 1, down, 1, p0, p1, 0, 0, False, g)
        return plugin.upfirdn2d(t, f[:, None], 1, up, 1, down, 0, 0, p0, p1, False, g)

    return median_ms(run, repeats)


def table(results: dict, sep: dict, bw: float, args) -> str:
    thp = os.environ.get("THP_MEM_ALLOC_ENABLE", "0") not in ("", "0")
    lines = [
        "## Ops",
        "",
        f"`python bench/ops.py` — float32 NCHW, filter [1, 3, 3, 1] (4x4 2-D pass), {torch.get_num_threads()} "
        f"threads, median of {args.repeats} runs, THP_MEM_ALLOC_ENABLE={int(thp)}; large-copy bandwidth "
        f"measured in the same run: **{bw:.1f} GB/s**. GB/s = (x + y bytes) / cpu forward time.",
        "",
        "| op | shape | ref fwd ms | cpu fwd ms | ref/cpu | ref fwd+bwd ms | cpu fwd+bwd ms | ref/cpu "
        "| cpu GB/s (% of copy) | cpu 1-D x2 fwd ms | NVIDIA fwd / fwd+bwd ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    nan = (float("nan"), float("nan"), 0)
    fmt = lambda v, spec: "-" if v != v else format(v, spec)  # noqa: E731 (nan = not measured)
    for name in OPS:
        for i, shape in enumerate(SHAPES):
            rf, rb, _ = results.get((name, shape, "ref"), nan)
            cf, cb, nbytes = results.get((name, shape, "cpu"), nan)
            gbs = nbytes / cf / 1e6 if nbytes else float("nan")
            s = sep.get((name, shape))
            nf, nb = NVIDIA[name][i]
            lines.append(
                f"| {name} | {list(shape)} | {fmt(rf, '.1f')} | {fmt(cf, '.1f')} | {fmt(rf / cf, '.1f')}x | "
                f"{fmt(rb, '.1f')} | {fmt(cb, '.1f')} | {fmt(rb / cb, '.1f')}x | "
                f"{fmt(gbs, '.1f')} ({fmt(100 * gbs / bw, '.0f')}%) | {'-' if s is None else f'{s:.1f}'} | "
                f"{nf} / {nb} |"
            )
    lines += [
        "",
        "cpu 1-D x2: the same resampling as two separable plugin passes ([1, 4] then [4, 1]), for choosing "
        "between one 2-D pass and two 1-D passes. Above 100% of the copy bandwidth, the working set is "
        "partly cache-resident (the copy reference is 256 MB).",
    ]
    return "\n".join(lines) + "\n"


def write_section(path: str, section: str) -> None:
    """Replace (or append) the '## Ops' section of a markdown file, leaving the others intact."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    head = section.splitlines()[0]
    start = text.find(head + "\n")
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(head))
        text = text[:start] + section + (text[end:] if end >= 0 else "")
    open(path, "w").write(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--impl", nargs="+", default=["ref", "cpu"], choices=["ref", "cpu"])
    ap.add_argument("--no-thp", action="store_true", help="leave THP_MEM_ALLOC_ENABLE unset (see above)")
    ap.add_argument("--out", help="markdown file whose '## Ops' section is replaced")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bw = copy_bandwidth(args.repeats)
    results, sep = {}, {}
    for name in OPS:
        for shape in SHAPES:
            for impl in args.impl:
                results[(name, shape, impl)] = time_case(name, shape, impl, args.repeats)
                fwd, both, _ = results[(name, shape, impl)]
                print(f"{name} {list(shape)} {impl}: fwd {fwd:.1f} ms, fwd+bwd {both:.1f} ms", flush=True)
            if "cpu" in args.impl and name in SEPARABLE:
                sep[(name, shape)] = time_separable(name, shape, args.repeats)
    section = table(results, sep, bw, args)
    print(section)
    if args.out:
        write_section(args.out, section)


if __name__ == "__main__":
    main()
