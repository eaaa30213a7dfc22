"""bias_act: add a bias, apply an activation, scale by a gain and clamp, fused in one pass.

Same semantics as NVIDIA's `torch_utils/ops/bias_act.py`, so their networks give their pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from stylegen.ops._dispatch import resolve


@dataclass(frozen=True)
class Activation:
    func: Callable[[torch.Tensor, float], torch.Tensor]  # reference formula, (x, alpha) -> y
    def_alpha: float  # default alpha (lrelu slope)
    def_gain: float  # default gain, keeps the output variance of N(0, 1) input
    index: int  # activation index in the plugins' kernel core
    ref: str  # which of x / y the plugin's first derivative needs
    has_2nd_grad: bool  # False for piecewise-linear activations


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0, 1, "", False),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2), 2, "y", False),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2), 3, "y", False),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0, 4, "y", True),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0, 5, "y", True),
    "elu": Activation(lambda x, a: F.elu(x), 0.0, 1.0, 6, "y", True),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0, 7, "y", True),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0, 8, "y", True),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2), 9, "x", True),
}


def bias_act(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None, impl="auto"):
    """y = clamp(act(x + b) * gain, -clamp, clamp), fused.

    x: float tensor of any shape. b: 1-D bias of size x.shape[dim], or None. dim: the axis b
    runs along. act: one of ACTIVATIONS. alpha: activation parameter (lrelu slope; default per
    activation). gain: output scale (default per activation, sqrt(2) for relu/lrelu/swish).
    clamp: clamp the output to [-clamp, clamp] (None = no clamp). impl: 'auto' | 'ref' | 'cpu' |
    'cuda' (see stylegen/ops/_dispatch.py for what 'auto' picks). Returns a tensor shaped like
    x. Differentiable w.r.t. x and b, twice.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"bias_act: x must be a floating-point tensor; got {type(x).__name__}")
    if act not in ACTIVATIONS:
        raise ValueError(f"bias_act: unknown act {act!r}; expected one of {', '.join(ACTIVATIONS)}")
    if act == "lrelu" and alpha is not None and alpha < 0:
        # The fused kernels take the derivative's branch from sign(y), valid only for alpha >= 0.
        raise ValueError(f"bias_act: lrelu alpha must be >= 0; got {alpha}")
    if clamp is not None and clamp < 0:
        raise ValueError(f"bias_act: clamp must be >= 0 or None; got {clamp}")
    if b is not None:
        dim = dim % x.ndim if x.ndim else dim
        if b.ndim != 1 or x.ndim == 0 or b.shape[0] != x.shape[dim]:
            raise ValueError(
                f"bias_act: b must be 1-D of size x.shape[{dim}]; got b {tuple(b.shape)}, x {tuple(x.shape)}"
            )
    spec = ACTIVATIONS[act]
    alpha = float(alpha if alpha is not None else spec.def_alpha)
    gain = float(gain if gain is not None else spec.def_gain)
    clamp = float(clamp if clamp is not None else -1)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad))
    plugin = resolve(impl, x, "bias_act", needs_grad=needs_grad)
    if plugin is None:
        return _bias_act_ref(x, b, dim, spec, alpha, gain, clamp)
    # Make the layouts dense here, not inside the Function: a copy made in forward() would be
    # saved for backward as a constant, cutting the second-order gradient to x and b.
    x = _dense(x)[0]
    if b is not None:
        b = b.to(x.dtype).contiguous()
    if not needs_grad:
        # Nothing to record: skip autograd.Function, whose fixed cost per call is several times
        # that of the kernel on the mapping network's [N, 512] inputs.
        return _plugin_forward(x, b, plugin, (dim, act, alpha, gain, clamp))
    return _BiasAct.apply(x, b, plugin, (dim, act, alpha, gain, clamp))


def _bias_act_ref(x, b, dim, spec, alpha, gain, clamp):
    """Slow reference: plain PyTorch ops (autograd gives every order of derivative)."""
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def _dense(t: torch.Tensor) -> tuple[torch.Tensor, torch.memory_format]:
    """t in a dense layout the plugin can index linearly (channels_last kept as is)."""
    fmt = torch.channels_last if t.ndim == 4 and t.stride(1) == 1 and t.shape[1] > 1 else torch.contiguous_format
    return t.contiguous(memory_format=fmt), fmt


def _null(like: torch.Tensor) -> torch.Tensor:
    """The plugins' 'absent tensor'. Not cached: one made under inference_mode could not be
    saved for backward later."""
    return torch.empty([0], dtype=like.dtype, device=like.device)


def _sum_except(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum over every axis but `dim` (the bias gradient). A 1-D t is returned as is: t.sum([])
    would sum over all axes."""
    axes = [i for i in range(t.ndim) if i != dim]
    return t.sum(axes) if axes else t


def _trivial(act: str, gain: float, clamp: float) -> bool:
    return act == "linear" and gain == 1 and clamp < 0


def _plugin_forward(x: torch.Tensor, b: torch.Tensor | None, plugin, args) -> torch.Tensor:
    """y of the plugin for a dense x and contiguous b (x itself when there is nothing to do)."""
    dim, act, alpha, gain, clamp = args
    if _trivial(act, gain, clamp) and b is None:
        return x
    bb = b if b is not None else _null(x)
    return plugin.bias_act(x, bb, _null(x), _null(x), _null(x), 0, dim, ACTIVATIONS[act].index, alpha, gain, clamp)


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, plugin, args):
        dim, act, alpha, gain, clamp = args
        spec = ACTIVATIONS[act]
        x, ctx.memory_format = _dense(x)
        bb = b.contiguous() if b is not None else _null(x)
        y = _plugin_forward(x, b.contiguous() if b is not None else None, plugin, args)
        need_x = "x" in spec.ref or spec.has_2nd_grad
        need_y = "y" in spec.ref or clamp >= 0  # the clamp's gradient mask reads y (even for linear)
        ctx.save_for_backward(x if need_x else _null(x), bb if need_x else _null(x), y if need_y else _null(x))
        ctx.plugin, ctx.args = plugin, args
        return y

    @staticmethod
    def backward(ctx, dy):
        dim, act, gain, clamp = ctx.args[0], ctx.args[1], ctx.args[3], ctx.args[4]
        x, b, y = ctx.saved_tensors
        dy = dy.contiguous(memory_format=ctx.memory_format)
        dx = db = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            dx = dy
            if not _trivial(act, gain, clamp):
                dx = _BiasActGrad.apply(dy, x, b, y, ctx.plugin, ctx.args)
        if ctx.needs_input_grad[1]:
            db = _sum_except(dx, dim)
        return dx, db, None, None


class _BiasActGrad(torch.autograd.Function):
    """dx = act'(x + b) * gain * dy (masked by the clamp); differentiable once more."""

    @staticmethod
    def forward(ctx, dy, x, b, y, plugin, args):
        dim, act, alpha, gain, clamp = args
        spec = ACTIVATIONS[act]
        dy, ctx.memory_format = _dense(dy)
        dx = plugin.bias_act(dy, b, x, y, _null(dy), 1, dim, spec.index, alpha, gain, clamp)
        ctx.save_for_backward(dy if spec.has_2nd_grad else _null(dy), x, b, y)
        ctx.plugin, ctx.args = plugin, args
        return dx

    @staticmethod
    def backward(ctx, d_dx):
        dim, act, alpha, gain, clamp = ctx.args
        spec = ACTIVATIONS[act]
        d_dx = d_dx.contiguous(memory_format=ctx.memory_format)
        dy, x, b, y = ctx.saved_tensors
        d_dy = d_x = d_b = None
        if ctx.needs_input_grad[0]:
            d_dy = _BiasActGrad.apply(d_dx, x, b, y, ctx.plugin, ctx.args)
        if spec.has_2nd_grad and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            d_x = ctx.plugin.bias_act(d_dx, b, x, y, dy, 2, dim, spec.index, alpha, gain, clamp)
        if spec.has_2nd_grad and ctx.needs_input_grad[2]:
            d_b = _sum_except(d_x, dim)
        return d_dy, d_x, d_b, None, None, None
