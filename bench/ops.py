"""Fused-op speed per workload: reference (PyTorch) vs the C++ CPU plugin (vs NVIDIA's ops).

    python bench/ops.py [--repeats 9] [--threads 2] [--ops ...] [--shapes ...]
                        [--nvidia-repo /work/nvidia-sg2ada] [--separable] [--no-thp] [--out FILE]

What 'auto' picks on a CPU tensor (stylegen/ops/_dispatch.py) is chosen from this table, so it
times what the networks run: the StyleGAN2 resampling ops with the [1, 3, 3, 1] filter (a 4x4
2-D pass) and lrelu bias_act with a bias and clamp=256 (conv_clamp), float32 NCHW, at the
generator's and discriminator's shapes (C 3..512, H 4..256, batch 1..8), in three modes:

    fwd       inference: torch.no_grad(), inputs without requires_grad
    fwd-grad  the forward half of a training step: inputs require grad, the graph is recorded
    fwd+bwd   a training step: forward, then backward of a random dy (w.r.t. x, and b)
    r1        R1 / path-length regularisation: d<y, dy>/dx with create_graph, then the backward
              of its squared norm (second-order gradients)

Each cell is the median of `--repeats` samples; the implementations are timed alternately (the
order rotates every round) on the same inputs, so load from other jobs on a shared machine hits
them alike. A sample loops a call enough times to last ~5 ms, so tiny shapes measure the call
overhead rather than the timer. --nvidia-repo DIR adds NVIDIA's stylegan2-ada-pytorch ops
imported from that checkout (`torch_utils.ops`); on CPU tensors they run their reference path.
--separable adds the plugin's two-1-D-pass resampling ([1, 4] then [4, 1]) in fwd mode, the
measurement behind one 2-D pass for filters of <= 4 taps.

Transparent huge pages: by default THP_MEM_ALLOC_ENABLE=1 (as `import stylegen` sets it). Without
it, every fresh output of tens of MB costs thousands of page faults, which can dominate the
timing of every implementation; --no-thp measures that.
"""

from __future__ import annotations

import os
import sys

# Must precede `import torch`: c10 reads it once, at its first allocation.
if "--no-thp" not in sys.argv:
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from typing import Callable  # noqa: E402

import torch  # noqa: E402

from stylegen.cuda_ops import load_plugin  # noqa: E402
from stylegen.ops import _dispatch, bias_act, downsample2d, filter2d, setup_filter, upsample2d  # noqa: E402

OPS = ["upsample2d", "downsample2d", "filter2d", "bias_act"]
MODES = ["fwd", "fwd-grad", "fwd+bwd", "r1"]
SHAPES = [
    (8, 512),  # mapping network fc layers (bias_act only: upfirdn2d needs [N, C, H, W])
    (1, 512, 4, 4),  # b4 of the generator, batch 1
    (8, 512, 8, 8),
    (1, 512, 32, 32),
    (8, 512, 32, 32),
    (8, 256, 64, 64),
    (8, 3, 128, 128),  # the skip generator's rgb image (upsample2d runs on it)
    (8, 64, 128, 128),
    (1, 64, 256, 256),
    (8, 32, 256, 256),
]
CLAMP = 256.0  # conv_clamp of NVIDIA's configs
# Plugin arguments of each resampling op with the 4-tap filter, as (up, down, pad0, pad1, gain) per axis.
SEPARABLE = {"upsample2d": (2, 1, 2, 1, 4.0), "downsample2d": (1, 2, 1, 1, 1.0), "filter2d": (1, 1, 2, 1, 1.0)}
SAMPLE_S = 0.005  # each timed sample lasts at least this long


def nvidia_ops(repo: str) -> types.SimpleNamespace:
    """NVIDIA's upfirdn2d and bias_act modules from a stylegan2-ada-pytorch checkout."""
    sys.path.insert(0, os.path.abspath(repo))
    try:
        import requests  # noqa: F401  (dnnlib.util imports it; the ops never use it)
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    try:
        from torch_utils.ops import bias_act as nv_bias_act
        from torch_utils.ops import upfirdn2d as nv_upfirdn2d
    except ImportError as e:
        raise SystemExit(f"Error: --nvidia-repo {repo}: cannot import torch_utils.ops ({e})") from e
    return types.SimpleNamespace(upfirdn2d=nv_upfirdn2d, bias_act=nv_bias_act)


def op_fn(name: str, impl: str, nv: types.SimpleNamespace | None) -> Callable:
    """The op as a function of (x, b); impl 'ref' | 'cpu' | 'nvidia'."""
    f = setup_filter([1, 3, 3, 1])
    if impl == "nvidia":
        resample = {"upsample2d": nv.upfirdn2d.upsample2d, "downsample2d": nv.upfirdn2d.downsample2d}
        resample["filter2d"] = nv.upfirdn2d.filter2d
        if name == "bias_act":
            return lambda x, b: nv.bias_act.bias_act(x, b, act="lrelu", clamp=CLAMP)
        return lambda x, b: resample[name](x, f)
    resample = {"upsample2d": upsample2d, "downsample2d": downsample2d, "filter2d": filter2d}
    if name == "bias_act":
        return lambda x, b: bias_act(x, b, act="lrelu", clamp=CLAMP, impl=impl)
    return lambda x, b: resample[name](x, f, impl=impl)


def step_fn(op: Callable, mode: str, x: torch.Tensor, b: torch.Tensor) -> Callable[[], object]:
    """One timed call of `op` in `mode` (see the module docstring)."""
    if mode == "fwd":

        def run():
            with torch.no_grad():
                return op(x, b)

        return run
    xg, bg = x.detach().requires_grad_(True), b.detach().requires_grad_(True)
    if mode == "fwd-grad":
        return lambda: op(xg, bg)
    with torch.no_grad():
        dy = torch.randn_like(op(x, b))
    if mode == "fwd+bwd":
        return lambda: op(xg, bg).backward(dy)

    # In a network the dy reaching the op depends on later layers' weights, so it requires grad
    # too: the double backward runs through the op's backward even for piecewise-linear lrelu.
    dyg = dy.requires_grad_(True)

    def r1():
        (gx,) = torch.autograd.grad(op(xg, bg), [xg], dyg, create_graph=True)
        gx.square().sum().backward()

    return r1


def separable_fn(name: str, x: torch.Tensor) -> Callable[[], object]:
    """The plugin's two 1-D passes for the same resampling (fwd only)."""
    plugin = load_plugin("cpu")
    f = setup_filter([1, 3, 3, 1], separable=True)
    up, down, p0, p1, g = SEPARABLE[name]

    def run():
        t = plugin.upfirdn2d(x, f[None, :], up, 1, down, 1, p0, p1, 0, 0, False, 1.0)
        return plugin.upfirdn2d(t, f[:, None], 1, up, 1, down, 0, 0, p0, p1, False, g)

    return run


def alternate(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median ms per call of each function, timed in rotating order round after round."""
    loops = {}
    for key, fn in fns.items():
        fn()  # warm-up: first-call costs (allocator, plugin load, autograd graph setup)
        t = time.perf_counter()
        fn()
        loops[key] = max(1, int(SAMPLE_S / max(time.perf_counter() - t, 1e-9)))
    samples: dict[str, list[float]] = {key: [] for key in fns}
    keys = list(fns)
    for r in range(repeats):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            fn, n = fns[key], loops[key]
            t = time.perf_counter()
            for _ in range(n):
                fn()
            samples[key].append((time.perf_counter() - t) / n)
    return {key: 1e3 * statistics.median(v) for key, v in samples.items()}


def auto_pick(name: str, mode: str, x: torch.Tensor) -> str:
    """What impl='auto' runs for this case (the rule in stylegen/ops/_dispatch.py)."""
    needs_grad = mode != "fwd"
    plugin = _dispatch.resolve("auto", x, "upfirdn2d" if name != "bias_act" else name, needs_grad=needs_grad)
    return "ref" if plugin is None else "cpu"


def time_cell(name: str, shape: tuple, mode: str, impls: list[str], args, nv) -> dict[str, float]:
    torch.manual_seed(0)
    x, b = torch.randn(shape), torch.randn(shape[1])
    fns = {impl: step_fn(op_fn(name, impl, nv), mode, x, b) for impl in impls}
    if args.separable and mode == "fwd" and name in SEPARABLE and "cpu" in impls:
        fns["cpu 1-D x2"] = separable_fn(name, x)
    return alternate(fns, args.repeats)


def header(args, impls: list[str]) -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
        isa = ", ".join(f for f in ["avx2", "avx512f", "amx_tile"] if f in flags) or "no avx2"
    except (OSError, StopIteration):
        isa = "unknown ISA"
    thp = os.environ.get("THP_MEM_ALLOC_ENABLE", "0") not in ("", "0")
    cols = " | ".join(f"{i} ms" for i in impls)
    return [
        "## Ops",
        "",
        f"`python bench/ops.py` on {cpu} ({isa}; torch capability "
        f"{torch.backends.cpu.get_cpu_capability()}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"median of {args.repeats} alternating samples, THP_MEM_ALLOC_ENABLE={int(thp)}. float32 NCHW, "
        f"filter [1, 3, 3, 1] (4x4 2-D pass), bias_act = lrelu + bias + clamp {CLAMP:g}. "
        "fwd = no_grad; fwd-grad = inputs require grad (graph recorded); fwd+bwd = a training step. "
        "auto = what impl='auto' runs for that case.",
        "",
        f"| op | shape | mode | {cols} | ref/cpu | auto |",
        "| --- | --- | --- |" + " --- |" * len(impls) + " --- | --- |",
    ]


def row(name: str, shape: tuple, mode: str, ms: dict[str, float], impls: list[str]) -> str:
    cells = " | ".join(f"{ms[i]:.3g}" for i in impls)
    ratio = f"{ms['ref'] / ms['cpu']:.2f}x" if "ref" in ms and "cpu" in ms else "-"
    extra = f" (1-D x2: {ms['cpu 1-D x2']:.3g})" if "cpu 1-D x2" in ms else ""
    pick = auto_pick(name, mode, torch.empty(shape))
    return f"| {name} | {list(shape)} | {mode} | {cells}{extra} | {ratio} | {pick} |"


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


def parse_shape(s: str) -> tuple[int, ...]:
    shape = tuple(int(v) for v in s.lower().replace("x", ",").split(",") if v)
    if len(shape) < 2:
        raise argparse.ArgumentTypeError(f"--shapes: {s!r} is not N,C[,H,W]")
    return shape


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ops", nargs="+", default=OPS, choices=OPS)
    ap.add_argument("--modes", nargs="+", default=MODES, choices=MODES)
    ap.add_argument("--shapes", nargs="+", type=parse_shape, default=SHAPES, help="N,C,H,W each (N,C: bias_act only)")
    ap.add_argument("--nvidia-repo", help="stylegan2-ada-pytorch checkout: also time its ops")
    ap.add_argument("--separable", action="store_true", help="also time two 1-D plugin passes (fwd)")
    ap.add_argument("--no-thp", action="store_true", help="leave THP_MEM_ALLOC_ENABLE unset (see above)")
    ap.add_argument("--out", help="markdown file whose '## Ops' section is replaced")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    nv = nvidia_ops(args.nvidia_repo) if args.nvidia_repo else None
    impls = ["ref", "cpu"] + (["nvidia"] if nv else [])
    lines = header(args, impls)
    print("\n".join(lines), flush=True)
    for name in args.ops:
        for shape in [s for s in args.shapes if name == "bias_act" or len(s) == 4]:
            for mode in args.modes:
                ms = time_cell(name, shape, mode, impls, args, nv)
                lines.append(row(name, shape, mode, ms, impls))
                print(lines[-1], flush=True)
    section = "\n".join(lines) + "\n"
    if args.out:
        write_section(args.out, section)


if __name__ == "__main__":
    main()
