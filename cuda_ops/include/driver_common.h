// Torch-side code shared by the two drivers, cpu/ops_cpu.cpp and cuda/ops_cuda.cpp: the argument
// checks that do not depend on the device, the output allocation, the filling of the parameter
// structs the kernels read, and their error messages -- written once, so both plugins reject the
// same calls with the same words. Each driver keeps only its device check, its dtype check, the
// dtype dispatch or kernel launch, and its pybind11 bindings.
//
// Unlike sg_hd.h and the *_core.h headers, which are torch-free so that nvcc compiles the same
// arithmetic for the device, this header uses torch types: only the .cpp drivers include it, never
// cuda/ops_cuda.cu (which stays torch-free so nvcc compiles it in seconds).
#pragma once

#include <torch/extension.h>

#include "bias_act_core.h"
#include "upfirdn2d_core.h"

namespace sg {

// ------------------------------------------------------------------------------------------------
// upfirdn2d

// x's rank. The drivers call this between their device check and their dtype check.
inline void check_upfirdn2d_x(const torch::Tensor& x) {
    TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be 4-D [N, C, H, W], got shape ", x.sizes());
}

// One upfirdn2d call, ready to run: p points into f (a contiguous copy when the caller's was not)
// and into y, which the struct keeps alive.
struct Upfirdn2dCall {
    torch::Tensor f, y;
    at::MemoryFormat format;  // y's memory format: the one x suggests
    Upfirdn2dParams p{};      // zeros when y is empty (N or C is 0): nothing to run
};

// The checks after the driver's (device, check_upfirdn2d_x, x's dtype), the output and the
// parameters. Allocates y, so the CUDA driver calls it under its device guard.
inline Upfirdn2dCall upfirdn2d_prepare(const torch::Tensor& x, torch::Tensor f, int64_t upx, int64_t upy,
                                       int64_t downx, int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0,
                                       int64_t pady1, bool flip, double gain) {
    auto ftype = x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    TORCH_CHECK(f.dim() == 2 && f.size(0) >= 1 && f.size(1) >= 1,
                "upfirdn2d: f must be 2-D [fh, fw] with fh, fw >= 1, got shape ", f.sizes());
    TORCH_CHECK(f.scalar_type() == ftype, "upfirdn2d: f must be ", ftype, " for x of type ",
                x.scalar_type(), ", got ", f.scalar_type());
    TORCH_CHECK(upx >= 1 && upy >= 1, "upfirdn2d: up factors must be >= 1, got upx=", upx, ", upy=", upy);
    TORCH_CHECK(downx >= 1 && downy >= 1,
                "upfirdn2d: down factors must be >= 1, got downx=", downx, ", downy=", downy);
    f = f.contiguous();
    int fh = (int)f.size(0), fw = (int)f.size(1);
    int64_t outh = upfirdn2d_out_size(x.size(2), upy, downy, pady0, pady1, fh);
    int64_t outw = upfirdn2d_out_size(x.size(3), upx, downx, padx0, padx1, fw);
    TORCH_CHECK(outh >= 1 && outw >= 1, "upfirdn2d: output would be empty: input ", x.sizes(),
                " with up=(", upx, ", ", upy, "), down=(", downx, ", ", downy, "), pad x=(", padx0, ", ", padx1,
                ") y=(", pady0, ", ", pady1, ") and a ", fh, "x", fw, " filter gives ", outh, "x", outw);

    auto format = x.suggest_memory_format();
    torch::Tensor y = torch::empty({x.size(0), x.size(1), outh, outw}, x.options().memory_format(format));
    Upfirdn2dCall call;
    call.f = f;
    call.y = y;
    call.format = format;
    if (y.numel() == 0) return call;

    Upfirdn2dParams& p = call.p;
    p.x = x.data_ptr();
    p.f = f.data_ptr();
    p.y = y.data_ptr();
    p.n = x.size(0); p.c = x.size(1); p.inh = x.size(2); p.inw = x.size(3);
    p.outh = outh; p.outw = outw;
    p.xsn = x.stride(0); p.xsc = x.stride(1); p.xsh = x.stride(2); p.xsw = x.stride(3);
    p.ysn = y.stride(0); p.ysc = y.stride(1); p.ysh = y.stride(2); p.ysw = y.stride(3);
    p.upx = (int)upx; p.upy = (int)upy; p.downx = (int)downx; p.downy = (int)downy;
    p.padx0 = (int)padx0; p.pady0 = (int)pady0;
    p.fh = fh; p.fw = fw; p.flip = flip; p.gain = gain;
    return call;
}

// Both plugins' exported upfirdn2d_out_size: the core's formula behind a check of its arguments.
inline int64_t upfirdn2d_out_size_checked(int64_t in_size, int64_t up, int64_t down, int64_t pad0, int64_t pad1,
                                          int64_t taps) {
    TORCH_CHECK(up >= 1 && down >= 1 && taps >= 1,
                "upfirdn2d_out_size: up, down and taps must be >= 1, got up=", up, ", down=", down, ", taps=", taps);
    return upfirdn2d_out_size(in_size, up, down, pad0, pad1, taps);
}

// ------------------------------------------------------------------------------------------------
// bias_act

// An optional same-shape operand in x's memory layout (a copy only when its strides differ).
inline torch::Tensor like_x(const torch::Tensor& t, const torch::Tensor& x, const char* name) {
    if (t.numel() == 0) return t;
    TORCH_CHECK(t.sizes() == x.sizes(), "bias_act: ", name, " must have the shape of x ", x.sizes(),
                ", got ", t.sizes());
    TORCH_CHECK(t.scalar_type() == x.scalar_type(), "bias_act: ", name, " must have the dtype of x (",
                x.scalar_type(), "), got ", t.scalar_type());
    TORCH_CHECK(t.device() == x.device(), "bias_act: ", name, " is on ", t.device(), ", x on ", x.device());
    if (t.strides() == x.strides()) return t;
    return torch::empty_like(x).copy_(t);
}

// One bias_act call, ready to run: p points into the operands as the kernel reads them (x made
// dense, b contiguous, xref/yref/dy in x's layout -- possibly copies) and into y, all kept alive here.
struct BiasActCall {
    torch::Tensor x, b, xref, yref, dy, y;
    BiasActParams p{};  // zeros when x is empty: nothing to run
};

// The checks after the driver's (x's device and dtype), the output and the parameters. May copy
// operands and allocates y, so the CUDA driver calls it under its device guard.
inline BiasActCall bias_act_prepare(torch::Tensor x, torch::Tensor b, const torch::Tensor& xref,
                                    const torch::Tensor& yref, const torch::Tensor& dy, int64_t grad, int64_t dim,
                                    int64_t act, double alpha, double gain, double clamp) {
    TORCH_CHECK(grad >= 0 && grad <= 2, "bias_act: grad must be 0, 1 or 2, got ", grad);
    TORCH_CHECK(act >= 1 && act <= 9, "bias_act: act must be a code in 1..9, got ", act);
    if (!x.is_non_overlapping_and_dense()) x = x.contiguous();
    if (b.numel() > 0) {
        TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim ", dim, " is out of range for x of shape ", x.sizes());
        TORCH_CHECK(b.dim() == 1 && b.size(0) == x.size(dim), "bias_act: b must be 1-D of size x.size(", dim,
                    ") = ", x.size(dim), ", got shape ", b.sizes());
        TORCH_CHECK(b.scalar_type() == x.scalar_type(), "bias_act: b must have the dtype of x (",
                    x.scalar_type(), "), got ", b.scalar_type());
        TORCH_CHECK(b.device() == x.device(), "bias_act: b is on ", b.device(), ", x on ", x.device());
        b = b.contiguous();
    }
    BiasActCall call;
    call.x = x;
    call.b = b;
    call.xref = like_x(xref, x, "xref");
    call.yref = like_x(yref, x, "yref");
    call.dy = like_x(dy, x, "dy");
    call.y = torch::empty_like(x);
    if (x.numel() == 0) return call;

    BiasActParams& p = call.p;
    p.x = x.data_ptr();
    p.b = b.numel() ? b.data_ptr() : nullptr;
    p.xref = call.xref.numel() ? call.xref.data_ptr() : nullptr;
    p.yref = call.yref.numel() ? call.yref.data_ptr() : nullptr;
    p.dy = call.dy.numel() ? call.dy.data_ptr() : nullptr;
    p.y = call.y.data_ptr();
    p.numel = x.numel();
    p.step_b = b.numel() ? x.stride(dim) : 1;
    p.size_b = b.numel() ? x.size(dim) : 1;
    p.grad = (int)grad; p.act = (int)act;
    p.alpha = alpha; p.gain = gain; p.clamp = clamp;
    return call;
}

}  // namespace sg
