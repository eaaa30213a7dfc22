"""bench/sg3.py's third measurement: `filtered_lrelu` alone on every StyleGAN3 layer's shapes,
NVIDIA's reference (what their code runs on a CPU) against ours, checked for agreement first."""

from __future__ import annotations

import math

import _peer
import torch

from stylegen.ops import filtered_lrelu

OP_TOL = 1e-4  # per layer and tensor, as op_difference measures it


def layer_calls(G) -> list[dict]:
    """Every synthesis layer's filtered_lrelu call: x = its conv output, the layer's filters and
    arguments (as SynthesisLayer3.forward passes them), a bias and an upstream gradient dy."""
    gen = torch.Generator().manual_seed(2)
    calls = []
    for name in G.synthesis.layer_names:
        layer = getattr(G.synthesis, name)
        s, k = layer.spec, layer.spec.conv_kernel
        (w_in, h_in), (w_out, h_out) = s.in_size, s.out_size
        gain, slope = (1.0, 1.0) if s.is_torgb else (math.sqrt(2), 0.2)
        call = {"name": name, "fu": layer.up_filter, "fd": layer.down_filter}
        call["x"] = torch.randn([1, s.out_channels, h_in + k - 1, w_in + k - 1], generator=gen)
        call["b"] = 0.1 * torch.randn([s.out_channels], generator=gen)
        call["dy"] = torch.randn([1, s.out_channels, h_out, w_out], generator=gen)
        call["kw"] = {"up": s.up_factor, "down": s.down_factor, "padding": list(s.padding), "gain": gain}
        call["kw"].update(slope=slope, clamp=s.conv_clamp)
        calls.append(call)
    return calls


def op_impls(nv, has_cpu: bool) -> dict:
    """impl name -> f(x, fu, fd, b, **kw)."""
    impls = {"nvidia": lambda x, fu, fd, b, **kw: nv.filtered_lrelu.filtered_lrelu(x, fu, fd, b, impl="ref", **kw)}
    for impl in ("cpu", "ref") if has_cpu else ("ref",):
        impls[impl] = lambda x, fu, fd, b, impl=impl, **kw: filtered_lrelu(x, fu, fd, b, impl=impl, **kw)
    return impls


def op_step(fn, call: dict, mode: str) -> tuple:
    """One call of the op on one layer: (y,) forward, (y, dx, db) forward + backward."""
    if mode == "fwd":
        with torch.no_grad():
            return (fn(call["x"], call["fu"], call["fd"], call["b"], **call["kw"]),)
    x, b = call["x"].detach().requires_grad_(True), call["b"].detach().requires_grad_(True)
    y = fn(x, call["fu"], call["fd"], b, **call["kw"])
    y.backward(call["dy"])
    return y.detach(), x.grad, b.grad


def op_round(fn, calls: list[dict], mode: str) -> None:
    """One timed sample: the op on every layer in turn."""
    for call in calls:
        op_step(fn, call, mode)


def op_difference(what: str, a: torch.Tensor, b: torch.Tensor) -> tuple[float, int]:
    """(difference, outliers) of ours `b` from NVIDIA's `a`, elementwise |a - b| / max(largest |a|, 1).

    y: the largest difference, no outliers. dx, db: the largest after leaving out the
    max(1, numel // 1000) largest; outliers = the elements above OP_TOL. A pre-activation within
    rounding of 0 may take the other lrelu branch when a backward recomputes the forward with other
    rounding (ours with the plugin's upfirdn2d, theirs with conv2d): the gradient of that one
    upsampled sample changes by (1 - slope) * gain * dy, which is the kink, not an error; in dx it
    reaches the ~6 x 6 pixels under the filter (up to ~1e-2 here), in db one channel.
    """
    d = ((a - b).abs() / max(float(a.abs().max()), 1.0)).flatten()
    if what == "y":
        return float(d.max()), 0
    keep = d.numel() - max(1, d.numel() // 1000)
    trimmed = float(torch.kthvalue(d, keep).values) if keep > 0 else 0.0
    return trimmed, int((d > OP_TOL).sum())


def check_op(calls: list[dict], impls: dict, label: str, mode: str) -> dict[str, tuple[float, int]]:
    """impl -> (largest difference from NVIDIA's over the layers, outliers summed: `op_difference`);
    exit 2 above OP_TOL. Also the warm-up round (one call per layer and impl)."""
    worst = {impl: (0.0, 0) for impl in impls if impl != "nvidia"}
    for call in calls:
        ref = op_step(impls["nvidia"], call, mode)
        for impl in worst:
            out = op_step(impls[impl], call, mode)
            for what, a, b in zip(("y", "dx", "db"), ref, out):
                err, outliers = op_difference(what, a, b)
                if not err <= OP_TOL:
                    _peer.fail(
                        f"SG3-{label} {call['name']} filtered_lrelu {mode} impl {impl}: {what} differs from "
                        f"NVIDIA's by {err:.2e} (relative to its largest magnitude) > {OP_TOL:g}"
                    )
                worst[impl] = (max(worst[impl][0], err), worst[impl][1] + outliers)
    return worst


def bench_op(G, nv, label: str, args) -> list[dict]:
    """The op alone, summed over the layers, per impl and mode."""
    calls = layer_calls(G)
    impls = op_impls(nv, args.has_cpu)
    rows = []
    for mode in ("fwd", "fwd+bwd"):
        errs = check_op(calls, impls, label, mode)
        fns = {impl: (lambda fn=fn, mode=mode: op_round(fn, calls, mode)) for impl, fn in impls.items()}
        times = _peer.alternate(fns, args.op_reps, warmup=0)
        t_nv = _peer.median(times["nvidia"])
        for impl, ts in times.items():
            row = {"net": label, "layers": len(calls), "mode": mode, "impl": impl, "s": _peer.median(ts)}
            row.update(lo=min(ts), hi=max(ts), speedup=t_nv / _peer.median(ts), err=errs.get(impl))
            rows.append(row)
            print(fmt_op(row), flush=True)
    return rows


def fmt_op(r: dict) -> str:
    err = "(reference) | -" if r["err"] is None else f"{r['err'][0]:.1e} | {r['err'][1]}"
    return (
        f"| SG3-{r['net']} | {r['layers']} | {r['mode']} | {r['impl']} | {r['s']:.3f} | {r['lo']:.3f}-{r['hi']:.3f} | "
        f"x{r['speedup']:.2f} | {err} |"
    )
