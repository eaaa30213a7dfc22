// CUDA plugin, host side: device and dtype checks, the device guard, the launches and the pybind11
// module. The other argument checks and the parameter structs are in include/driver_common.h
// (shared with the CPU plugin, cpu/ops_cpu.cpp, whose functions and signatures this one exports);
// the kernels and their launchers are in ops_cuda.cu; the arithmetic in include/*_core.h.
#include <torch/extension.h>
// c10's stream/guard headers, not ATen/cuda/CUDAContext.h: that one pulls in cuSPARSE/cuBLAS
// headers, which a minimal CUDA toolkit (nvcc + runtime only) does not ship.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "bias_act_core.h"
#include "driver_common.h"
#include "filtered_lrelu_core.h"
#include "filtered_lrelu_driver.h"
#include "upfirdn2d_core.h"

// Defined in ops_cuda.cu. dtype: 0 float32, 1 float64, 2 float16. Return a cudaError_t.
int sg_upfirdn2d_cuda(const sg::Upfirdn2dParams& p, int dtype, bool channels_last, void* stream);
int sg_bias_act_cuda(const sg::BiasActParams& p, int dtype, void* stream);
int sg_filtered_lrelu_cuda(const sg::FilteredLreluParams& p, int dtype, bool channels_last, void* stream);
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
    sg::check_upfirdn2d_x(x);
    int dtype = dtype_code(x, "upfirdn2d");
    const c10::cuda::OptionalCUDAGuard guard(x.device());
    sg::Upfirdn2dCall call =
        sg::upfirdn2d_prepare(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain);
    if (call.y.numel() == 0) return call.y;
    bool channels_last = call.format == at::MemoryFormat::ChannelsLast;
    check_launch(sg_upfirdn2d_cuda(call.p, dtype, channels_last, c10::cuda::getCurrentCUDAStream().stream()),
                 "upfirdn2d");
    return call.y;
}

torch::Tensor bias_act(torch::Tensor x, torch::Tensor b, torch::Tensor xref, torch::Tensor yref,
                       torch::Tensor dy, int64_t grad, int64_t dim, int64_t act, double alpha,
                       double gain, double clamp) {
    TORCH_CHECK(x.is_cuda(), "bias_act (cuda plugin): x must be a CUDA tensor, got ", x.device());
    int dtype = dtype_code(x, "bias_act");
    const c10::cuda::OptionalCUDAGuard guard(x.device());
    sg::BiasActCall call = sg::bias_act_prepare(x, b, xref, yref, dy, grad, dim, act, alpha, gain, clamp);
    if (call.y.numel() == 0) return call.y;
    check_launch(sg_bias_act_cuda(call.p, dtype, c10::cuda::getCurrentCUDAStream().stream()), "bias_act");
    return call.y;
}

torch::Tensor filtered_lrelu(torch::Tensor x, torch::Tensor fu, torch::Tensor fd, torch::Tensor b, int64_t up,
                             int64_t down, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, double gain,
                             double slope, double clamp, bool flip) {
    TORCH_CHECK(x.is_cuda(), "filtered_lrelu (cuda plugin): x must be a CUDA tensor, got ", x.device());
    sg::check_filtered_lrelu_x(x);
    int dtype = dtype_code(x, "filtered_lrelu");
    const c10::cuda::OptionalCUDAGuard guard(x.device());
    sg::FilteredLreluCall call =
        sg::filtered_lrelu_prepare(x, fu, fd, b, up, down, padx0, padx1, pady0, pady1, gain, slope, clamp, flip);
    if (call.y.numel() == 0) return call.y;
    bool channels_last = call.format == at::MemoryFormat::ChannelsLast;
    check_launch(sg_filtered_lrelu_cuda(call.p, dtype, channels_last, c10::cuda::getCurrentCUDAStream().stream()),
                 "filtered_lrelu");
    return call.y;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("upfirdn2d", &upfirdn2d, "upsample, pad, FIR filter, downsample (NCHW)");
    m.def("upfirdn2d_out_size", &sg::upfirdn2d_out_size_checked, "output length of upfirdn2d along one axis");
    m.def("bias_act", &bias_act, "bias + activation + gain + clamp, or its derivatives");
    m.def("filtered_lrelu", &filtered_lrelu, "bias, upsample, FIR, lrelu * gain, clamp, FIR, downsample (fused)");
}
