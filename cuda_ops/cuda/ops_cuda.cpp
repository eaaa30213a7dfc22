// CUDA plugin, host side: argument checks, layouts and the pybind11 module. The kernels and their
// launchers are in ops_cuda.cu; the arithmetic in include/*_core.h. Exports the same functions
// with the same signatures as the CPU plugin (cpu/ops_cpu.cpp).
#include <torch/extension.h>
// c10's stream/guard headers, not ATen/cuda/CUDAContext.h: that one pulls in cuSPARSE/cuBLAS
// headers, which a minimal CUDA toolkit (nvcc + runtime only) does not ship.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "bias_act_core.h"
#include "upfirdn2d_core.h"

// Defined in ops_cuda.cu. dtype: 0 float32, 1 float64, 2 float16. Return a cudaError_t.
int sg_upfirdn2d_cuda(const sg::Upfirdn2dParams& p, int dtype, bool channels_last, void* stream);
int sg_bias_act_cuda(const sg::BiasActParams& p, int dtype, void* stream);
const char* sg_cuda_error_string(int err);

namespace {

int dtype_code(const torch::Tensor& x, const char* op) {
    switch (x.scalar_type()) {
        case torch::kFloat: return 0;
        case torch::kDouble: return 1;
        case torch::kHalf: return 2;
        default: TORCH_CHECK(false, op, " (cuda plugin): x must be float16, float32 or float64, got ", x.scalar_type());
    }
    return -1;
}

void check_launch(int err, const char* op) {
    TORCH_CHECK(err == 0, op, " (cuda plugin): kernel launch failed: ", sg_cuda_error_string(err));
}

torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int64_t upx, int64_t upy, int64_t downx,
                        int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1,
                        bool flip, double gain) {
    TORCH_CHECK(x.is_cuda(), "upfirdn2d (cuda plugin): x must be a CUDA tensor, got ", x.device());
    TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f is on ", f.device(), ", x on ", x.device());
    TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be 4-D [N, C, H, W], got shape ", x.sizes());
    int dtype = dtype_code(x, "upfirdn2d");
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
    int64_t outh = sg::upfirdn2d_out_size(x.size(2), upy, downy, pady0, pady1, fh);
    int64_t outw = sg::upfirdn2d_out_size(x.size(3), upx, downx, padx0, padx1, fw);
    TORCH_CHECK(outh >= 1 && outw >= 1, "upfirdn2d: output would be empty: input ", x.sizes(),
                " with up=(", upx, ", ", upy, "), down=(", downx, ", ", downy, "), pad x=(", padx0, ", ", padx1,
                ") y=(", pady0, ", ", pady1, ") and a ", fh, "x", fw, " filter gives ", outh, "x", outw);

    const c10::cuda::OptionalCUDAGuard guard(x.device());
    auto format = x.suggest_memory_format();
    torch::Tensor y = torch::empty({x.size(0), x.size(1), outh, outw}, x.options().memory_format(format));
    if (y.numel() == 0) return y;

    sg::Upfirdn2dParams p;
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
    bool channels_last = format == at::MemoryFormat::ChannelsLast;
    check_launch(sg_upfirdn2d_cuda(p, dtype, channels_last, c10::cuda::getCurrentCUDAStream().stream()),
                 "upfirdn2d");
    return y;
}

int64_t upfirdn2d_out_size(int64_t in_size, int64_t up, int64_t down, int64_t pad0, int64_t pad1,
                           int64_t taps) {
    TORCH_CHECK(up >= 1 && down >= 1 && taps >= 1,
                "upfirdn2d_out_size: up, down and taps must be >= 1, got up=", up, ", down=", down, ", taps=", taps);
    return sg::upfirdn2d_out_size(in_size, up, down, pad0, pad1, taps);
}

// An optional same-shape operand in x's memory layout (a copy only when its strides differ).
torch::Tensor like_x(const torch::Tensor& t, const torch::Tensor& x, const char* name) {
    if (t.numel() == 0) return t;
    TORCH_CHECK(t.sizes() == x.sizes(), "bias_act: ", name, " must have the shape of x ", x.sizes(),
                ", got ", t.sizes());
    TORCH_CHECK(t.scalar_type() == x.scalar_type(), "bias_act: ", name, " must have the dtype of x (",
                x.scalar_type(), "), got ", t.scalar_type());
    TORCH_CHECK(t.device() == x.device(), "bias_act: ", name, " is on ", t.device(), ", x on ", x.device());
    if (t.strides() == x.strides()) return t;
    return torch::empty_like(x).copy_(t);
}

torch::Tensor bias_act(torch::Tensor x, torch::Tensor b, torch::Tensor xref, torch::Tensor yref,
                       torch::Tensor dy, int64_t grad, int64_t dim, int64_t act, double alpha,
                       double gain, double clamp) {
    TORCH_CHECK(x.is_cuda(), "bias_act (cuda plugin): x must be a CUDA tensor, got ", x.device());
    int dtype = dtype_code(x, "bias_act");
    TORCH_CHECK(grad >= 0 && grad <= 2, "bias_act: grad must be 0, 1 or 2, got ", grad);
    TORCH_CHECK(act >= 1 && act <= 9, "bias_act: act must be a code in 1..9, got ", act);
    const c10::cuda::OptionalCUDAGuard guard(x.device());
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
    xref = like_x(xref, x, "xref");
    yref = like_x(yref, x, "yref");
    dy = like_x(dy, x, "dy");

    torch::Tensor y = torch::empty_like(x);
    if (x.numel() == 0) return y;
    sg::BiasActParams p;
    p.x = x.data_ptr();
    p.b = b.numel() ? b.data_ptr() : nullptr;
    p.xref = xref.numel() ? xref.data_ptr() : nullptr;
    p.yref = yref.numel() ? yref.data_ptr() : nullptr;
    p.dy = dy.numel() ? dy.data_ptr() : nullptr;
    p.y = y.data_ptr();
    p.numel = x.numel();
    p.step_b = b.numel() ? x.stride(dim) : 1;
    p.size_b = b.numel() ? x.size(dim) : 1;
    p.grad = (int)grad; p.act = (int)act;
    p.alpha = alpha; p.gain = gain; p.clamp = clamp;
    check_launch(sg_bias_act_cuda(p, dtype, c10::cuda::getCurrentCUDAStream().stream()), "bias_act");
    return y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("upfirdn2d", &upfirdn2d, "upsample, pad, FIR filter, downsample (NCHW)");
    m.def("upfirdn2d_out_size", &upfirdn2d_out_size, "output length of upfirdn2d along one axis");
    m.def("bias_act", &bias_act, "bias + activation + gain + clamp, or its derivatives");
}
