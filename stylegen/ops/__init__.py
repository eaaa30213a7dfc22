"""Fused ops of the synthesis network: upfirdn2d and bias_act (reference, C++ CPU, CUDA), filtered_lrelu (reference)."""

from stylegen.ops.bias_act import ACTIVATIONS, bias_act
from stylegen.ops.filtered_lrelu import filtered_lrelu
from stylegen.ops.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = [
    "ACTIVATIONS",
    "bias_act",
    "filtered_lrelu",
    "downsample2d",
    "filter2d",
    "setup_filter",
    "upfirdn2d",
    "upsample2d",
]
