// A float32 GEMM of the CPU plugin's own, for the StyleGAN3 inference form's matrix products (the
// Winograd convolution's 36 GEMMs, the 1x1 layers), used instead of torch's BLAS on CPUs where
// that BLAS is not known to take its fast path. torch's x86-64 wheels use Intel's MKL, which
// picks its kernels after checking for a genuine Intel CPU (mkl_serv_intel_cpu_true) and may run
// SSE code on others: held to SSE4.2 on one of our Intel machines, its sgemm ran at about 40% of
// its AVX2 speed, where this GEMM matches its AVX2 speed (bench/gemm.py, docs/benchmarks.md).
// NVIDIA's CPU path runs its convolutions through oneDNN, which dispatches by instruction set
// alone, so without this our lead over it would hang on MKL's choice.
//
// Goto & van de Geijn 2008, "Anatomy of high-performance matrix multiplication" (the BLIS
// layout): B is packed into KC x NR panels and A into MR x KC ones, and a 6 x 16 AVX2/FMA
// micro-kernel keeps the C tile in 12 registers. Each element of C is one sum over k ascending
// (FMA in blocks of KC, each block added to C), whatever the threads and blocking: the same bits
// for any thread count. The plugin's other loops avoid FMA (-ffp-contract=off) so that every
// vector width rounds alike; here there is one kernel, so nothing else to agree with.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "cpu_gemm.h"
#include "cpu_isa.h"

#ifdef SG_X86_VARIANTS
#include <immintrin.h>
#endif

namespace {

constexpr int64_t MR = 6, NR = 16;  // the micro-kernel's tile of C
constexpr int64_t KC = 256;         // k per packed block: an NR panel of B (16 KB) stays in L1
constexpr int64_t MC = 48;          // rows of A per pass over B's panels (48 x KC: 48 KB, in L2)
constexpr int64_t NC_MAX = 256;     // columns of B per task (K x 256 packed: 1 MB at K = 1024)

constexpr int64_t round_up(int64_t x, int64_t r) { return (x + r - 1) / r * r; }

// A [M, K] (row stride lda) -> the micro-kernel's layout, packed once for every column block:
// k in blocks of KC, each block Mpad x kc (Mpad = M rounded up to MR) as MR-row panels, k-major,
// rows past M zero. Block p0 starts at p0 * Mpad, its panel of rows i at i * kc.
void pack_a(float* ap, const float* a, int64_t lda, int64_t m, int64_t k) {
    const int64_t mpad = round_up(m, MR);
    for (int64_t p0 = 0; p0 < k; p0 += KC) {
        const int64_t kc = std::min(KC, k - p0);
        float* dst = ap + p0 * mpad;
        for (int64_t i0 = 0; i0 < m; i0 += MR) {
            const int64_t mr = std::min(MR, m - i0);
            for (int64_t kk = 0; kk < kc; kk++, dst += MR) {
                for (int64_t i = 0; i < mr; i++) dst[i] = a[(i0 + i) * lda + p0 + kk];
                for (int64_t i = mr; i < MR; i++) dst[i] = 0.0f;
            }
        }
    }
}

// B k [p0, p0 + kc) x columns [j0, j0 + nc) -> NR-column panels, k-major, columns past nc zero.
void pack_b(float* bp, const float* b, int64_t ldb, int64_t kc, int64_t nc) {
    for (int64_t j0 = 0; j0 < nc; j0 += NR) {
        const int64_t nr = std::min(NR, nc - j0);
        for (int64_t kk = 0; kk < kc; kk++, bp += NR) {
            const float* s = b + kk * ldb + j0;
            if (nr == NR) {
                std::memcpy(bp, s, NR * sizeof(float));
            } else {
                std::memcpy(bp, s, nr * sizeof(float));
                std::fill(bp + nr, bp + NR, 0.0f);
            }
        }
    }
}

#ifdef SG_X86_VARIANTS
// C tile (mr x nr of MR x NR) = (acc ? C : 0) + A panel x B panel over kc. The 12 accumulators are
// named variables: held in an array, GCC stored them to the stack on every k.
__attribute__((target("avx2,fma"))) void kernel_6x16(int64_t kc, const float* __restrict__ ap,
                                                     const float* __restrict__ bp, float* __restrict__ c, int64_t ldc,
                                                     bool acc, int64_t mr, int64_t nr) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
           c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#define SG_ROW(i)                                    \
    a = _mm256_broadcast_ss(ap + i);                 \
    c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);       \
    c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1)
    for (int64_t kk = 0; kk < kc; kk++, ap += MR, bp += NR) {
        const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
        __m256 a;
        SG_ROW(0);
        SG_ROW(1);
        SG_ROW(2);
        SG_ROW(3);
        SG_ROW(4);
        SG_ROW(5);
    }
#undef SG_ROW
    const __m256 t[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    if (mr == MR && nr == NR) {
        for (int64_t i = 0; i < MR; i++)
            for (int64_t h = 0; h < 2; h++) {
                float* p = c + i * ldc + 8 * h;
                _mm256_storeu_ps(p, acc ? _mm256_add_ps(_mm256_loadu_ps(p), t[i][h]) : t[i][h]);
            }
        return;
    }
    alignas(32) float tile[MR * NR];  // an edge tile: through memory, its first mr x nr stored
    for (int64_t i = 0; i < MR; i++) {
        _mm256_store_ps(tile + i * NR, t[i][0]);
        _mm256_store_ps(tile + i * NR + 8, t[i][1]);
    }
    for (int64_t i = 0; i < mr; i++)
        for (int64_t j = 0; j < nr; j++) c[i * ldc + j] = acc ? c[i * ldc + j] + tile[i * NR + j] : tile[i * NR + j];
}

// Columns [j0, j0 + nc) of one product: c [M, N] (row stride ldc) = A (packed) b [K, N] (ldb), with
// the task's buffer for B's packed columns (all of K). MC rows of C at a time, over every k-block:
// that MC x nc block of C stays in cache while k runs (k-blocks outermost instead, every pass over
// k re-read and re-wrote all of C's columns from memory: 25% slower at K = 1024, SG3-R's layers).
void gemm_columns(const float* ap, int64_t m, int64_t k, const float* b, int64_t ldb, float* c, int64_t ldc,
                  int64_t j0, int64_t nc, float* bp) {
    const int64_t mpad = round_up(m, MR), ncpad = round_up(nc, NR);
    for (int64_t p0 = 0; p0 < k; p0 += KC) pack_b(bp + p0 * ncpad, b + p0 * ldb + j0, ldb, std::min(KC, k - p0), nc);
    for (int64_t i0 = 0; i0 < m; i0 += MC)
        for (int64_t p0 = 0; p0 < k; p0 += KC) {
            const int64_t kc = std::min(KC, k - p0);
            const float *ablock = ap + p0 * mpad, *bblock = bp + p0 * ncpad;
            for (int64_t jr = 0; jr < nc; jr += NR)  // B's panel (kc x NR) stays in L1 across A's MC rows
                for (int64_t ir = i0; ir < std::min(m, i0 + MC); ir += MR)
                    kernel_6x16(kc, ablock + ir * kc, bblock + jr * kc, c + ir * ldc + j0 + jr, ldc, p0 > 0,
                                std::min(MR, m - ir), std::min(NR, nc - jr));
        }
}
#endif

}  // namespace

namespace sg {

// Which GEMM the plugin's products use: 0 = torch's (at::matmul: MKL on x86-64 wheels), 1 = its own.
int g_gemm = -1;  // -1: not chosen yet

bool own_gemm_runs() {
#ifdef SG_X86_VARIANTS
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

// auto: our own on a CPU that runs it and is not Intel's (where MKL's fast path is not assured).
int auto_gemm() {
#ifdef SG_X86_VARIANTS
    return own_gemm_runs() && !__builtin_cpu_is("intel") ? 1 : 0;
#else
    return 0;
#endif
}

int gemm_choice() {
    if (g_gemm < 0) g_gemm = auto_gemm();
    return g_gemm;
}

torch::Tensor matmul_pack(const torch::Tensor& a) {
    if (gemm_choice() == 0 || a.numel() == 0) return torch::empty({0}, a.options());
    const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), mpad = round_up(m, MR);
    torch::Tensor packed = torch::empty({batch, mpad * k}, a.options());
    const float* src = a.data_ptr<float>();
    float* dst = packed.data_ptr<float>();
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
        for (int64_t e = begin; e < end; e++) pack_a(dst + e * mpad * k, src + e * m * k, k, m, k);
    });
    return packed;
}

MatmulLhs matmul_lhs(const torch::Tensor& a, const torch::Tensor& packed) {
    if (gemm_choice() == 0 || a.numel() == 0) return {a, torch::Tensor()};
    const int64_t mpad = round_up(a.size(1), MR);
    if (packed.defined() && packed.numel() > 0) {
        TORCH_CHECK(packed.is_cpu() && packed.scalar_type() == torch::kFloat && packed.is_contiguous() &&
                        packed.numel() == a.size(0) * mpad * a.size(2),
                    "cpu matmul: the packed factor does not fit a of shape ", a.sizes(), " (made by matmul_pack?)");
        return {a, packed};
    }
    return {a, matmul_pack(a)};
}

// One task per (batch element, block of columns): blocks of at most NC_MAX columns, and enough
// of them to keep every thread busy.
void matmul_into(torch::Tensor out, const MatmulLhs& lhs, const torch::Tensor& b) {
    const torch::Tensor& a = lhs.a;
    if (!lhs.packed.defined() || out.numel() == 0) {  // torch's BLAS (also every empty product)
        at::matmul_out(out, a, b);
        return;
    }
#ifdef SG_X86_VARIANTS
    const int64_t batch = b.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
    const int64_t mpad = round_up(m, MR), sa = a.size(0) == 1 ? 0 : mpad * k;
    const int64_t panels = (n + NR - 1) / NR;
    int64_t blocks = (n + NC_MAX - 1) / NC_MAX;
    blocks = std::min(panels, std::max(blocks, (2 * at::get_num_threads() + batch - 1) / batch));
    const int64_t nc_max = (panels + blocks - 1) / blocks * NR;
    blocks = (n + nc_max - 1) / nc_max;
    const float *ap = lhs.packed.data_ptr<float>(), *bb = b.data_ptr<float>();
    float* c = out.data_ptr<float>();
    at::parallel_for(0, batch * blocks, 1, [&](int64_t begin, int64_t end) {
        std::unique_ptr<float[]> bp(new float[k * nc_max]);
        for (int64_t task = begin; task < end; task++) {
            const int64_t e = task / blocks, j0 = (task % blocks) * nc_max;
            gemm_columns(ap + e * sa, m, k, bb + e * k * n, n, c + e * m * n, n, j0, std::min(nc_max, n - j0),
                         bp.get());
        }
    });
#endif
}

}  // namespace sg

// The products as Python sees them: a [B or 1, M, K] @ b [B, K, N] -> [B, M, N].
torch::Tensor cpu_matmul(torch::Tensor a, torch::Tensor b) {
    for (const torch::Tensor* t : {&a, &b})
        TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == torch::kFloat && t->dim() == 3 && t->is_contiguous(),
                    "cpu matmul: a and b must be contiguous 3-D CPU float32 tensors");
    TORCH_CHECK((a.size(0) == 1 || a.size(0) == b.size(0)) && a.size(2) == b.size(1), "cpu matmul: shapes ",
                a.sizes(), " and ", b.sizes(), " do not multiply");
    torch::Tensor out = torch::empty({b.size(0), a.size(1), b.size(2)}, b.options());
    sg::matmul_into(out, sg::matmul_lhs(a), b);
    return out;
}

// a packed for the plugin GEMM (empty when torch's BLAS multiplies): Python keeps it with a.
torch::Tensor cpu_matmul_pack(torch::Tensor a) {
    TORCH_CHECK(a.device().is_cpu() && a.scalar_type() == torch::kFloat && a.dim() == 3 && a.is_contiguous(),
                "cpu matmul_pack: a must be a contiguous 3-D CPU float32 tensor");
    return sg::matmul_pack(a);
}

// The products' GEMM now in use: "plugin" or "torch".
std::string cpu_gemm() { return sg::gemm_choice() ? "plugin" : "torch"; }

// Choose the products' GEMM: "auto" (as above), "plugin" (our own) or "torch"; returns the one now
// in use. For tests and benchmarks; set before ops run, not while they run on other threads.
std::string set_cpu_gemm(const std::string& name) {
    const int want = name == "auto" ? sg::auto_gemm() : name == "plugin" ? 1 : name == "torch" ? 0 : -1;
    TORCH_CHECK(want >= 0, "cpu gemm: expected auto, plugin or torch, got '", name, "'");
    TORCH_CHECK(want == 0 || sg::own_gemm_runs(), "cpu gemm: the plugin's GEMM needs AVX2 and FMA, which this CPU lacks");
    sg::g_gemm = want;
    return cpu_gemm();
}
