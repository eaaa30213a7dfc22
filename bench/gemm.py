"""The CPU plugin's own GEMM vs torch's BLAS (MKL) on the StyleGAN3 inference form's products.

    python bench/gemm.py [--mkl default,AVX2,SSE4_2] [--reps 5] [--threads N] [--out docs/benchmarks.md]

Why it exists: MKL picks its kernels after checking for a genuine Intel CPU, so on other CPUs its
sgemm may run SSE code, and our StyleGAN3 lead over NVIDIA's CPU path (whose convolutions run on
oneDNN, which dispatches by instruction set alone) would hang on that choice. The plugin's GEMM
(cuda_ops/cpu/gemm_cpu.cpp) runs instead on non-Intel CPUs (STYLEGEN_CPU_GEMM=auto). On an Intel
CPU, MKL can be held to a narrower code path (MKL_ENABLE_INSTRUCTIONS, read once per process), so
each --mkl setting runs in its own process, where torch's and the plugin's GEMM alternate.

Timed, batch 1, per image (the sum over the layers, median of --reps rounds):
  T  the frozen SG3-T 256 px layers' Winograd convolutions (transforms + 36 GEMMs; weights packed
     once, as frozen layers keep them) and its 1x1 RGB layer;
  R  the frozen SG3-R 128 px layers' 1x1 products (the styles' modulated weights, packed per call);
  GEMM  one chunk of the 512-channel Winograd layers: [36, 512, 512] @ [36, 512, 207], GFLOP/s.
Layer shapes are train.py's defaults (design_config3), the weights random: speed, not pixels.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _peer  # noqa: E402

from stylegen.cuda_ops import load_plugin  # noqa: E402
from stylegen.networks import sg3_winograd  # noqa: E402
from stylegen.networks.sg3_design import design_config3  # noqa: E402

SECTION = "## The CPU plugin's GEMM vs MKL (StyleGAN3 products)"
NETS = {
    "T": dict(img_resolution=256),
    "R": dict(img_resolution=128, architecture="stylegan3-r", channel_base=65536, channel_max=1024),
}
MODES = ("torch", "plugin")


def layer_products(key: str, g: torch.Generator) -> list:
    """One function per synthesis layer of the network: the product its frozen form runs on the CPU."""
    fns = []
    for spec in design_config3(**NETS[key]).layers:
        c, o, (h, w) = spec.in_channels, spec.out_channels, spec.in_size
        x = torch.randn([1, c, h, w], generator=g)
        if spec.conv_kernel == 3:
            u = sg3_winograd.winograd_weights(torch.randn([o, c, 3, 3], generator=g) / (9 * c) ** 0.5)
            packed = {m: sg3_winograd.PackedWeights(u) for m in MODES}  # one per GEMM: no repacking
            s, d = torch.ones([1, c]), torch.ones([1, o])
            fns.append(
                lambda p, m, x=x, u=u, s=s, d=d, k=packed: sg3_winograd.conv3x3_full(
                    p, x, u, s, d, u_packed=k[m].get(p)
                )
            )
        else:
            a, b = torch.randn([1, o, c], generator=g), x.reshape(1, c, h * w)
            fns.append(lambda p, m, a=a, b=b: p.matmul(a, b))
    return fns


def child(args) -> None:
    """Time every mode in this process (MKL's code path fixed by the environment); print JSON."""
    if args.threads:
        torch.set_num_threads(args.threads)
    plugin = load_plugin("cpu")
    g = torch.Generator().manual_seed(0)
    nets = {key: layer_products(key, g) for key in NETS}
    u, v = torch.randn([36, 512, 512], generator=g), torch.randn([36, 512, 207], generator=g)
    flop = 2 * 36 * 512 * 512 * 207

    def timed(kind: str, mode: str):
        def products() -> None:
            plugin.set_cpu_gemm(mode)  # a flag: microseconds against the products' milliseconds
            if kind == "GEMM":
                plugin.matmul(u, v)
            else:
                for fn in nets[kind]:
                    fn(plugin, mode)

        return products

    fns = {f"{k}|{m}": timed(k, m) for k in (*NETS, "GEMM") for m in MODES}
    with torch.no_grad():  # the warm-up round also packs the weights
        times = _peer.alternate(fns, args.reps)
    out = {name: _peer.median(ts) for name, ts in times.items()}
    out["GEMM GF/s"] = {m: flop / out[f"GEMM|{m}"] / 1e9 for m in MODES}
    print(json.dumps(out))


def table(results: dict, args, load_before: float) -> str:
    lines = [
        SECTION,
        "",
        f"`{_peer.command_line('bench/gemm.py')}`",
        "",
        f"{_peer.machine_line()}. {_peer.load_note(load_before)}",
        "",
        "Per image, batch 1, the products of the frozen layers (random weights of train.py's layer shapes): "
        "SG3-T 256 px = its Winograd convolutions (transforms + GEMMs) and RGB layer, SG3-R 128 px = its 1x1 "
        "layers; GEMM = one 512-channel Winograd chunk, [36, 512, 512] @ [36, 512, 207]. torch = torch's BLAS "
        "(MKL), plugin = the plugin's own GEMM (what STYLEGEN_CPU_GEMM=auto runs on CPUs that are not Intel's); "
        f"alternating in one process per MKL code path (MKL_ENABLE_INSTRUCTIONS), median of {args.reps} rounds.",
        "",
        "| MKL code path | SG3-T torch | SG3-T plugin | SG3-R torch | SG3-R plugin | GEMM torch | GEMM plugin |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        gf = r["GEMM GF/s"]
        lines.append(
            f"| {name} | {r['T|torch']:.3f} s | {r['T|plugin']:.3f} s | {r['R|torch']:.3f} s | "
            f"{r['R|plugin']:.3f} s | {gf['torch']:.0f} GF/s | {gf['plugin']:.0f} GF/s |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mkl", default="default,AVX2,SSE4_2", help="MKL_ENABLE_INSTRUCTIONS values, one process each")
    p.add_argument("--reps", type=int, default=5, help="timed rounds (median)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--out", type=Path, help="markdown file whose section is (re)written")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    load_before = _peer.load_average()
    results = {}
    for name in [s.strip() for s in args.mkl.split(",") if s.strip()]:
        env = dict(os.environ)
        env.pop("MKL_ENABLE_INSTRUCTIONS", None)
        if name != "default":
            env["MKL_ENABLE_INSTRUCTIONS"] = name
        cmd = [sys.executable, __file__, "--child", "--reps", str(args.reps)]
        cmd += ["--threads", str(args.threads)] if args.threads else []
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            _peer.fail(f"bench/gemm.py: the MKL {name} run failed: {done.stderr.strip().splitlines()[-1:]}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(name, json.dumps(results[name]), flush=True)
    text = table(results, args, load_before)
    print(text)
    if args.out:
        _peer.write_section(args.out, text)


if __name__ == "__main__":
    main()
