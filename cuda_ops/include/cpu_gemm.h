// CPU plugin only: the matrix products of the StyleGAN3 inference form (the Winograd convolution's
// 36 GEMMs, the 1x1 layers) by torch's BLAS or by the plugin's own GEMM (gemm_cpu.cpp says when
// and why); set_cpu_gemm / STYLEGEN_CPU_GEMM choose.
#pragma once

#include <torch/extension.h>

namespace sg {

// The left factor a [B or 1, M, K] (contiguous CPU float32) of several products, prepared once:
// packed into the plugin GEMM's layout when that GEMM runs (else just held).
struct MatmulLhs {
    torch::Tensor a;
    torch::Tensor packed;  // undefined: torch's BLAS multiplies
};

// packed: matmul_pack(a) made earlier (an undefined or empty tensor: pack now if needed).
MatmulLhs matmul_lhs(const torch::Tensor& a, const torch::Tensor& packed = torch::Tensor());

// a packed for the plugin GEMM, to be kept (the 36 x 512 x 512 Winograd weights are 37 MB, and
// fresh memory is slow: filling new pages ran at under 1 GB/s on our VMs); an empty tensor when
// torch's BLAS multiplies.
torch::Tensor matmul_pack(const torch::Tensor& a);

// out [B, M, N] (contiguous) = a @ b [B, K, N] (contiguous CPU float32).
void matmul_into(torch::Tensor out, const MatmulLhs& a, const torch::Tensor& b);

}  // namespace sg
