"""StyleGAN3 on the CPU, side by side with NVIDIA's stylegan3 code on the same weights.

    python bench/sg3.py --nvidia-repo DIR [--out docs/benchmarks.md] [--reps 5] [--op-reps 2]
        [--threads N] [--nets T,R] [--impl auto] [--quick]

Networks (z = w = 512, 2 mapping layers, c_dim 0, fp32, conv_clamp 256: train.py's defaults):
  T  --cfg=stylegan3-t at 256 px: channel_base 32768, channel_max 512
  R  --cfg=stylegan3-r at 128 px: channel_base 65536, channel_max 1024, conv_kernel 1, radial filters
NVIDIA's Generator is built with their code (imported from DIR, torch.manual_seed(0)), pickled as
{'G_ema': G} and read back by `stylegen.load_network`, so our weights travel the real loading
path. Three measurements, each checked for agreement before it is timed (exit 2 if not):
  1. generator, batch 1, z -> image under torch.no_grad(): their G.eval() vs our G.freeze()
     (and our loaded eval-mode G), images within 1e-3 (max abs), alternating, median of --reps;
  2. where our frozen generator's time goes (torch.profiler): the filtered_lrelu op,
     the convolution kernels, the rest of the synthesis layers, everything outside them;
  3. the filtered_lrelu op alone on every layer's shapes (x = the conv output, the layer's
     filters, padding, gain, slope and clamp), summed over the layers: NVIDIA's (impl='ref', what
     their code runs on the CPU) vs ours impl='cpu' and 'ref', forward (no_grad) and forward +
     backward (dy fixed; gradients w.r.t. x and b), outputs within 1e-4 relative to their largest
     magnitude (at least 1), gradients too but for the largest 0.1% (`_sg3_op.op_difference` says why),
     alternating, median of --op-reps.
--quick: smaller networks (T 64 px, R 32 px, fewer channels), one round: a smoke run only.
"""

from __future__ import annotations

import os

# Must precede `import torch` (c10 reads it once): both sides get the same allocator.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import pickle  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import _peer  # noqa: E402
import _sg3_op  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402

import stylegen  # noqa: E402

SECTION = "## StyleGAN3"
# Set in the environment, these hold torch, MKL, oneDNN and our plugin to a narrower instruction set
# (ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 STYLEGEN_CPU_ISA=avx2:
# an AVX-512 machine standing in for an AVX2-only one); the table's command line records them.
ISA_VARS = (
    "ATEN_CPU_CAPABILITY",
    "MKL_ENABLE_INSTRUCTIONS",
    "ONEDNN_MAX_CPU_ISA",
    "STYLEGEN_CPU_ISA",
    "STYLEGEN_CPU_GEMM",
)
COMMON = {"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_channels": 3, "mapping_kwargs": {"num_layers": 2}}
R_ONLY = {"conv_kernel": 1, "use_radial_filters": True}  # what train.py adds for --cfg=stylegan3-r
NETS = {  # train.py's -t / -r generator settings (their defaults for --cbase, --cmax, --map-depth)
    "T": {"img_resolution": 256, "channel_base": 32768, "channel_max": 512},
    "R": {"img_resolution": 128, "channel_base": 65536, "channel_max": 1024, **R_ONLY},
}
QUICK = {
    "T": {"img_resolution": 64, "channel_base": 4096, "channel_max": 128},
    "R": {"img_resolution": 32, "channel_base": 8192, "channel_max": 128, **R_ONLY},
}
GEN_TOL = 1e-3  # max abs difference of the images
OP_NAME = re.compile(r"filtered_?lrelu", re.I)  # our op: the autograd Function or the plugin call
CONV_NAME = re.compile(r"conv|winograd|bmm|plugin::matmul", re.I)  # aten convs, plugin Winograd, (batched) matmuls


def build_pair(nv, name: str, kwargs: dict) -> tuple:
    """(NVIDIA's Generator, ours loaded from its pickle), both eval, requires_grad False."""
    torch.manual_seed(0)
    G_nv = nv.networks.Generator(**COMMON, **kwargs).eval().requires_grad_(False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"sg3{name.lower()}.pkl"
        with open(path, "wb") as f:
            pickle.dump({"G_ema": G_nv}, f)  # their persistence records, as a snapshot holds them
        try:
            G = stylegen.load_network(path)
        except stylegen.NetworkLoadError as e:
            _peer.fail(f"SG3-{name}: our loader refused NVIDIA's pickle: {e}")
    return G_nv, G


def with_ops(impl: str, fn):
    """fn run with STYLEGEN_OPS=impl (read by our ops at each call), under no_grad."""

    def run():
        os.environ["STYLEGEN_OPS"] = impl
        with torch.no_grad():
            return fn()

    return run


def bench_generator(G_nv, G, frozen, label: str, args) -> list[dict]:
    """Seconds per image of each path (batch 1), after checking the images agree."""
    z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(1))
    c = torch.zeros([1, 0])
    fns = {"nvidia": with_ops("ref", lambda: G_nv(z, c, noise_mode="const"))}
    fns["ours frozen"] = with_ops(args.impl, lambda: frozen(z, noise_mode="const"))
    fns["ours eval"] = with_ops(args.impl, lambda: G(z, noise_mode="const"))
    images = {k: fn() for k, fn in fns.items()}  # also the warm-up round
    errs = {k: _peer.check_close(f"SG3-{label} {k}", images["nvidia"], img, GEN_TOL) for k, img in images.items()}
    times = _peer.alternate(fns, args.reps, warmup=0)
    t_nv = _peer.median(times["nvidia"])
    rows = []
    for k, ts in times.items():
        row = {"net": label, "path": k, "impl": "ref (theirs)" if k == "nvidia" else args.impl}
        row.update(s=_peer.median(ts), lo=min(ts), hi=max(ts), speedup=t_nv / _peer.median(ts), err=errs[k])
        rows.append(row)
        print(fmt_gen(row), flush=True)
    return rows


@contextlib.contextmanager
def named_layers_and_plugin(G):
    """Profiler ranges 'sg3 layer' around every synthesis layer, and one per plugin function call
    (pybind calls are invisible to the profiler otherwise); all removed on exit."""
    handles, patched, open_ranges = [], {}, []

    def enter(module, inputs) -> None:
        rf = record_function("sg3 layer")
        rf.__enter__()
        open_ranges.append(rf)

    def leave(module, inputs, output) -> None:
        open_ranges.pop().__exit__(None, None, None)

    for module in G.synthesis.modules():
        if hasattr(module, "spec") and hasattr(module.spec, "conv_kernel"):  # a (frozen) SynthesisLayer3
            handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    plugin = _cpu_plugin()
    names = [] if plugin is None else [k for k in dir(plugin) if not k.startswith("_")]
    for key in names:
        fn = getattr(plugin, key)
        if callable(fn):
            patched[key] = fn
            setattr(plugin, key, _ranged(f"plugin::{key}", fn))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for key, fn in patched.items():
            setattr(plugin, key, fn)


def _ranged(name: str, fn):
    def call(*a, **k):
        with record_function(name):
            return fn(*a, **k)

    return call


def _cpu_plugin():
    from stylegen.cuda_ops import PluginUnavailable, load_plugin

    try:
        return load_plugin("cpu")
    except PluginUnavailable:
        return None


def _gemm_in_use() -> str:
    """The CPU plugin's GEMM for the Winograd and 1x1 products: 'plugin' (its own) or 'torch' (BLAS)."""
    plugin = _cpu_plugin()
    return "none (no CPU plugin)" if plugin is None else plugin.cpu_gemm()


def profile_shares(frozen, label: str, args) -> dict:
    """Self CPU time of a frozen z -> image call, split by what it was spent in (ms): of
    min(--reps, 3) profiled calls, the one with the median wall time."""
    z = torch.randn([1, frozen.z_dim], generator=torch.Generator().manual_seed(1))
    run = with_ops(args.impl, lambda: frozen(z, noise_mode="const"))
    calls = sorted((profile_once(run, frozen) for _ in range(min(args.reps, 3))), key=lambda r: r["wall"])
    row = {"net": label, **calls[len(calls) // 2]}
    print(fmt_profile(row), flush=True)
    return row


def profile_once(run, frozen) -> dict:
    """One profiled call: wall, op, conv, layer, outside (ms), top (the largest rest ops), found."""
    with named_layers_and_plugin(frozen), profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        run()
        wall_us = (time.perf_counter() - t0) * 1e6
    parts = {"op": 0.0, "conv": 0.0, "layer": 0.0, "outside": 0.0}
    rest: dict[str, float] = {}
    for ev in prof.events():
        part = _part(ev)
        parts[part] += ev.self_cpu_time_total
        if part in ("layer", "outside") and not ev.name.startswith("sg3 layer"):
            rest[ev.name] = rest.get(ev.name, 0.0) + ev.self_cpu_time_total
    parts["outside"] += max(0.0, wall_us - sum(parts.values()))  # Python, unnamed calls
    top = sorted(rest.items(), key=lambda kv: -kv[1])[:3]
    row = {"wall": wall_us / 1e3, **{k: v / 1e3 for k, v in parts.items()}}
    row["top"] = ", ".join(f"{k} {v / 1e3:.0f}" for k, v in top)
    row["found"] = any(OP_NAME.search(ev.name) for ev in prof.events())
    return row


def _part(ev) -> str:
    """'op' inside our filtered_lrelu, 'conv' inside a conv outside it, 'layer' the rest of a
    synthesis layer, 'outside' anything else (mapping, Fourier input)."""
    names = []
    e = ev
    while e is not None:
        names.append(e.name)
        e = e.cpu_parent
    if any(OP_NAME.search(n) for n in names):
        return "op"
    if any(CONV_NAME.search(n) for n in names):  # also what aten::conv2d runs (addmm for some shapes)
        return "conv"
    return "layer" if any(n.startswith("sg3 layer") for n in names) else "outside"


def fmt_gen(r: dict) -> str:
    err = "(reference)" if r["path"] == "nvidia" else f"{r['err']:.1e}"
    return (
        f"| SG3-{r['net']} | {r['path']} | {r['impl']} | {r['s']:.3f} | {r['lo']:.3f}-{r['hi']:.3f} | "
        f"x{r['speedup']:.2f} | {err} |"
    )


def fmt_profile(r: dict) -> str:
    def share(key):
        return f"{r[key]:.0f} ms ({100 * r[key] / r['wall']:.0f}%)"

    op = share("op") if r["found"] else "not found (no event named like filtered_lrelu)"
    return (
        f"| SG3-{r['net']} | {r['wall']:.0f} ms | {op} | {share('conv')} | {share('layer')} | "
        f"{share('outside')} | {r['top']} |"
    )


def describe_nets(args) -> str:
    nets = QUICK if args.quick else NETS
    parts = []
    for key in args.nets:
        kw = nets[key]
        extra = ", conv_kernel 1, radial down filters" if kw.get("use_radial_filters") else ""
        parts.append(
            f"SG3-{key} = {kw['img_resolution']} px, channel_base {kw['channel_base']}, channel_max {kw['channel_max']}{extra}"
        )
    return "; ".join(parts)


def table(gen: list, prof: list, ops: list, args, load_before: float, runtime: float) -> str:
    quick = " **--quick: small networks, one round; a smoke run, not the benchmark.**" if args.quick else ""
    limits = " ".join(f"{k}={os.environ[k]}" for k in ISA_VARS if os.environ.get(k))
    lines = [
        args.section,
        "",
        f"`{(limits + ' ') if limits else ''}{_peer.command_line('bench/sg3.py')}`",
        "",
        f"{_peer.machine_line()}. {_peer.load_note(load_before)} Whole run: {runtime:.0f} s.{quick}",
        "",
        f"NVIDIA's stylegan3 `Generator` (imported from `--nvidia-repo`; on the CPU their filtered_lrelu, "
        f"upfirdn2d and bias_act run their reference path) built with torch.manual_seed(0): {describe_nets(args)}; "
        "z = w = 512, 2 mapping layers, fp32, conv_clamp 256. Ours = that network pickled as {'G_ema': G} and "
        f"read by `stylegen.load_network`; our ops impl = {args.impl} (STYLEGEN_OPS); our matrix products' "
        f"GEMM = {_gemm_in_use()} (STYLEGEN_CPU_GEMM).",
        "",
        f"Generator, batch 1, z -> image under `torch.no_grad()`; median of {args.reps} alternating rounds. "
        "`ours frozen` = `G.freeze()`, `ours eval` = the loaded eval-mode Generator; max diff = max abs "
        "difference of the image from NVIDIA's.",
        "",
        "| network | path | ops | s/img (median) | s/img range | vs nvidia | max diff |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *[fmt_gen(r) for r in gen],
        "",
        f"Where `ours frozen` spends a call (torch.profiler, self CPU time; the profiled call of median wall time "
        f"out of {min(args.reps, 3)}, after the timings, so warm): filtered_lrelu "
        "= inside our op (its autograd Function / plugin call); conv kernels = aten convolutions, batched "
        "matmuls and the plugin's Winograd transforms outside the op; rest of layers = the other work in the "
        "synthesis layers (styles, modulation, weight scaling); outside = mapping, Fourier input, Python "
        "overhead. top = largest self-CPU ops of the last two columns (ms).",
        "",
        "| network | wall | filtered_lrelu | conv kernels | rest of layers | outside layers | top |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *[fmt_profile(r) for r in prof],
        "",
        "filtered_lrelu alone on every layer's shapes (x = the layer's conv output [1, C, H + k - 1, W + k - 1], "
        "its filters, padding, gain, slope, clamp), seconds summed over the layers; fwd = `torch.no_grad()`, "
        "fwd+bwd = forward then backward of a fixed dy (gradients w.r.t. x and b). nvidia = their "
        "`filtered_lrelu(impl='ref')`; cpu / ref = ours. Median of "
        f"{args.op_reps} alternating rounds. max diff = largest difference from NVIDIA's over the layers, "
        "elementwise |a - b| / max(largest |a|, 1), for the gradients leaving out the largest 0.1% (at least "
        "one); kink outliers = gradient elements above 1e-4 (where a pre-activation within rounding of 0 took "
        "the other lrelu branch: see `op_difference`).",
        "",
        "| network | layers | mode | impl | s (median) | s range | vs nvidia | max diff | kink outliers |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *[_sg3_op.fmt_op(r) for r in ops],
    ]
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _peer.add_nvidia_option(p, help_text="checkout of NVlabs/stylegan3 to import the peer from (e.g. /work/nvidia-sg3)")
    p.add_argument("--out", type=Path, help="markdown file whose --section is (re)written")
    p.add_argument("--section", default=SECTION, help=f"heading of the section (default {SECTION!r})")
    p.add_argument("--reps", type=int, default=5, help="timed rounds of the whole generators (median)")
    p.add_argument(
        "--op-reps", type=int, default=2, help="timed rounds of the op alone (median; 2 keeps the run ~10 min)"
    )
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--nets", default="T,R", help="networks to run, comma-separated: T, R")
    p.add_argument("--impl", default="auto", choices=["auto", "cpu", "ref"], help="our ops implementation")
    p.add_argument("--quick", action="store_true", help="small networks, --reps 1 --op-reps 1: a smoke run")
    args = p.parse_args()
    if args.quick:
        args.reps = args.op_reps = 1
    args.nets = [n.strip().upper() for n in args.nets.split(",") if n.strip()]
    if not args.nets or any(n not in NETS for n in args.nets):
        _peer.fail(f"--nets {','.join(args.nets)!r}: expected T, R or T,R")
    for key in ("reps", "op_reps", "threads"):
        value = getattr(args, key)
        if value is not None and value < 1:
            _peer.fail(f"--{key.replace('_', '-')} {value}: must be >= 1")
    return args


def main() -> None:
    args = parse_args()
    start, load_before = time.perf_counter(), _peer.load_average()
    if args.threads:
        torch.set_num_threads(args.threads)
    nv = _peer.import_nvidia_sg3(args.nvidia_repo)
    args.has_cpu = _cpu_plugin() is not None
    if not args.has_cpu:
        print("cpu plugin unavailable: our filtered_lrelu is timed with impl 'ref' only")
    gen, prof, ops = [], [], []
    for key in args.nets:
        log = lambda what, key=key: print(f"[{time.perf_counter() - start:.0f} s] SG3-{key}: {what}", flush=True)  # noqa: E731
        log("building NVIDIA's generator, loading it into ours")
        G_nv, G = build_pair(nv, key, (QUICK if args.quick else NETS)[key])
        frozen = G.freeze()
        log("generator z -> image")
        gen += bench_generator(G_nv, G, frozen, key, args)
        log("profile of ours frozen")
        prof.append(profile_shares(frozen, key, args))
        log("filtered_lrelu alone")
        ops += _sg3_op.bench_op(G, nv, key, args)
        del G_nv, G, frozen
    text = table(gen, prof, ops, args, load_before, time.perf_counter() - start)
    print(text)
    if args.out:
        _peer.write_section(args.out, text)


if __name__ == "__main__":
    main()
