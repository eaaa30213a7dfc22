// CUDA kernels: one thread per output element, each calling the kernel core (include/*_core.h)
// exactly as the CPU plugin does. Only CUDA runtime headers here -- no torch -- so nvcc compiles
// this file in seconds; ops_cuda.cpp does the tensor work and calls the launchers below.
// torch's build adds -D__CUDA_NO_HALF_CONVERSIONS__; the core converts storage to the
// accumulator type with plain casts ((float)h, (__half)f), which need __half's conversions.
#undef __CUDA_NO_HALF_CONVERSIONS__
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "bias_act_core.h"
#include "filtered_lrelu_core.h"
#include "upfirdn2d_core.h"

namespace {

// Accumulator / arithmetic type: float for half and float storage, double for double.
template <typename T> struct Acc { using type = T; };
template <> struct Acc<__half> { using type = float; };

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

int num_blocks(int64_t total) {
    int64_t blocks = (total + kThreads - 1) / kThreads;
    return (int)(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

// Output elements are enumerated in the output's memory order so neighbouring threads write
// neighbouring addresses (W fastest for NCHW, C fastest for channels_last).
__device__ inline void unravel_output(int64_t i, int64_t C, int64_t H, int64_t W, bool channels_last,
                                      int64_t& n, int64_t& c, int64_t& oy, int64_t& ox) {
    if (channels_last) {
        c = i % C; i /= C;
        ox = i % W; i /= W;
        oy = i % H; n = i / H;
    } else {
        ox = i % W; i /= W;
        oy = i % H; i /= H;
        c = i % C; n = i / C;
    }
}

template <typename T, typename FT>
__global__ void upfirdn2d_kernel(sg::Upfirdn2dParams p, bool channels_last) {
    using A = typename Acc<T>::type;
    const T* x = static_cast<const T*>(p.x);
    const FT* f = static_cast<const FT*>(p.f);
    T* y = static_cast<T*>(p.y);
    int64_t total = p.n * p.c * p.outh * p.outw;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)blockDim.x * gridDim.x) {
        int64_t n, c, oy, ox;
        unravel_output(i, p.c, p.outh, p.outw, channels_last, n, c, oy, ox);
        sg::AxisTaps ty = sg::upfirdn2d_axis_taps(oy, p.upy, p.downy, p.pady0, p.inh, p.fh);
        sg::AxisTaps tx = sg::upfirdn2d_axis_taps(ox, p.upx, p.downx, p.padx0, p.inw, p.fw);
        A acc = sg::upfirdn2d_pixel<A>(x + n * p.xsn + c * p.xsc, p.xsh, p.xsw, f, p.fh, p.fw, p.flip,
                                       ty, tx, p.upy, p.upx);
        y[n * p.ysn + c * p.ysc + oy * p.ysh + ox * p.ysw] = (T)sg::upfirdn2d_finish(acc, (A)p.gain);
    }
}

template <typename T>
__global__ void bias_act_kernel(sg::BiasActParams p) {
    using S = typename Acc<T>::type;
    const T* X = static_cast<const T*>(p.x);
    const T* B = static_cast<const T*>(p.b);
    const T* XR = static_cast<const T*>(p.xref);
    const T* YR = static_cast<const T*>(p.yref);
    const T* DY = static_cast<const T*>(p.dy);
    T* Y = static_cast<T*>(p.y);
    const S alpha = (S)p.alpha, gain = (S)p.gain, clamp = (S)p.clamp;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.numel;
         i += (int64_t)blockDim.x * gridDim.x) {
        S b = B ? (S)B[sg::bias_act_bias_index(i, p.step_b, p.size_b)] : (S)0;
        S xr = XR ? (S)XR[i] : (S)0;
        S yr = YR ? (S)YR[i] : (S)0;
        S dy = DY ? (S)DY[i] : (S)1;
        Y[i] = (T)sg::bias_act_elem_rt<S>(p.act, p.grad, (S)X[i], b, xr, yr, dy, alpha, gain, clamp);
    }
}

// One thread per output pixel (grid-stride), each recomputing the z window it reads through the
// core's flrelu_pixel: the same sums, in the same order, as the CPU plugin's buffered passes.
template <typename T, typename FT>
__global__ void filtered_lrelu_kernel(sg::FilteredLreluParams p, bool channels_last) {
    using A = typename Acc<T>::type;
    const T* x = static_cast<const T*>(p.x);
    const T* b = static_cast<const T*>(p.b);
    T* y = static_cast<T*>(p.y);
    int64_t total = p.n * p.c * p.outh * p.outw;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)blockDim.x * gridDim.x) {
        int64_t n, c, oy, ox;
        unravel_output(i, p.c, p.outh, p.outw, channels_last, n, c, oy, ox);
        A bias = b ? (A)b[c] : (A)0;
        A acc = sg::flrelu_pixel<A, T, FT>(p, x + n * p.xsn + c * p.xsc, bias, oy, ox);
        y[n * p.ysn + c * p.ysc + oy * p.ysh + ox * p.ysw] = (T)acc;
    }
}

}  // namespace

// Launchers called from ops_cuda.cpp. dtype: 0 float32, 1 float64, 2 float16. Return a cudaError_t.
int sg_upfirdn2d_cuda(const sg::Upfirdn2dParams& p, int dtype, bool channels_last, void* stream) {
    int64_t total = p.n * p.c * p.outh * p.outw;
    if (total == 0) return (int)cudaSuccess;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    int blocks = num_blocks(total);
    if (dtype == 0) upfirdn2d_kernel<float, float><<<blocks, kThreads, 0, s>>>(p, channels_last);
    if (dtype == 1) upfirdn2d_kernel<double, double><<<blocks, kThreads, 0, s>>>(p, channels_last);
    if (dtype == 2) upfirdn2d_kernel<__half, float><<<blocks, kThreads, 0, s>>>(p, channels_last);
    return (int)cudaGetLastError();
}

int sg_bias_act_cuda(const sg::BiasActParams& p, int dtype, void* stream) {
    if (p.numel == 0) return (int)cudaSuccess;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    int blocks = num_blocks(p.numel);
    if (dtype == 0) bias_act_kernel<float><<<blocks, kThreads, 0, s>>>(p);
    if (dtype == 1) bias_act_kernel<double><<<blocks, kThreads, 0, s>>>(p);
    if (dtype == 2) bias_act_kernel<__half><<<blocks, kThreads, 0, s>>>(p);
    return (int)cudaGetLastError();
}

int sg_filtered_lrelu_cuda(const sg::FilteredLreluParams& p, int dtype, bool channels_last, void* stream) {
    int64_t total = p.n * p.c * p.outh * p.outw;
    if (total == 0) return (int)cudaSuccess;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    int blocks = num_blocks(total);
    if (dtype == 0) filtered_lrelu_kernel<float, float><<<blocks, kThreads, 0, s>>>(p, channels_last);
    if (dtype == 1) filtered_lrelu_kernel<double, double><<<blocks, kThreads, 0, s>>>(p, channels_last);
    if (dtype == 2) filtered_lrelu_kernel<__half, float><<<blocks, kThreads, 0, s>>>(p, channels_last);
    return (int)cudaGetLastError();
}

const char* sg_cuda_error_string(int err) { return cudaGetErrorString((cudaError_t)err); }
