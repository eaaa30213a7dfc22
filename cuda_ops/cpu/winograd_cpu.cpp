// Winograd F(4x4, 3x3) transforms of a full ("padding 2") 3x3 convolution, CPU float32, for the
// StyleGAN3 inference form (stylegen/networks/sg3_winograd.py): the transformed input times the
// transformed weights is 36 GEMMs (sg::matmul_into) of 1 / 16 of the convolution's multiply-adds each,
// 2.25 / 9 of them in all (F(2x2, 3x3): 4 / 9). Lavin & Gray 2015, "Fast Algorithms for
// Convolutional Neural Networks"; Y = A^T [(G g G^T) * (B^T d B)] A, a Toom-Cook construction at
// the points 0, 1, -1, 1/2, -2 and infinity. The points set the rounding error (Barabasz et al.
// 2020, "Error analysis and improving the accuracy of Winograd convolution for deep neural
// networks"); of the sets tried, these rounded least: about 1/3 of the error of 0, +-1, +-2.
//   B^T = [1 -3/2 -2 3/2 1 0; 0 -1 1/2 5/2 1 0; 0 1 -5/2 1/2 1 0;
//          0 -2 -1 2 1 0; 0 1/2 -1 -1/2 1 0; 0 1 -3/2 -2 3/2 1]
//   A^T = [1 1 1 1 1 0; 0 1 -1 1/2 -2 0; 0 1 1 1/4 4 0; 0 1 -1 1/8 -8 1]
// (G, for the weights, is made in Python in float64.) Every coefficient is exact in float32.
// Tile (ty, tx) covers output rows 4ty .. 4ty + 3 and columns 4tx .. 4tx + 3 and reads input rows
// and columns 4t - 2 .. 4t + 3 (zero outside the image: the conv's padding of 2).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "cpu_gemm.h"
#include "cpu_isa.h"

namespace {

// The transforms' loops, one body per vector width VB (bytes; GCC vectors, unaligned), chosen by
// sg::row_isa() like filtered_lrelu's FIR loops (so STYLEGEN_CPU_ISA holds them to AVX2 too).
// Vector and scalar tails compute the same expressions in the same order: the same bits.
#define SG_VEC(VB) typedef float V __attribute__((vector_size(VB), aligned(4), may_alias))

// v = B^T d for one column of 6 values (floats, or GCC vectors of floats: a macro, since GCC
// drops a vector typedef's attributes in template arguments).
#define SG_BT6(d, v)                                                    \
    do {                                                                \
        v[0] = d[0] - 1.5f * d[1] - 2.0f * d[2] + 1.5f * d[3] + d[4];  \
        v[1] = -d[1] + 0.5f * d[2] + 2.5f * d[3] + d[4];                \
        v[2] = d[1] - 2.5f * d[2] + 0.5f * d[3] + d[4];                 \
        v[3] = -2.0f * d[1] - d[2] + 2.0f * d[3] + d[4];                \
        v[4] = 0.5f * d[1] - d[2] - 0.5f * d[3] + d[4];                 \
        v[5] = d[1] - 1.5f * d[2] - 2.0f * d[3] + 1.5f * d[4] + d[5];  \
    } while (0)

// y = A^T m for one column of 6 values.
#define SG_AT6(m, y)                                                \
    do {                                                            \
        y[0] = m[0] + m[1] + m[2] + m[3] + m[4];                    \
        y[1] = m[1] - m[2] + 0.5f * m[3] - 2.0f * m[4];             \
        y[2] = m[1] + m[2] + 0.25f * m[3] + 4.0f * m[4];            \
        y[3] = m[1] - m[2] + 0.125f * m[3] - 8.0f * m[4] + m[5];    \
    } while (0)

// t[i * n + m] = (B^T of rows[0..5][m] * s)[i]: the row combinations, per column m.
template <int VB>
inline __attribute__((always_inline)) void wino_rows_body(float* __restrict__ t, const float* __restrict__ rows,
                                                          int64_t n, float s) {
    SG_VEC(VB);
    constexpr int L = VB / sizeof(float);
    int64_t m = 0;
    for (; m + L <= n; m += L) {
        V d[6], v[6];
        for (int k = 0; k < 6; k++) d[k] = *reinterpret_cast<const V*>(rows + k * n + m) * s;
        SG_BT6(d, v);
        for (int i = 0; i < 6; i++) *reinterpret_cast<V*>(t + i * n + m) = v[i];
    }
    for (; m < n; m++) {
        float d[6], v[6];
        for (int k = 0; k < 6; k++) d[k] = rows[k * n + m] * s;
        SG_BT6(d, v);
        for (int i = 0; i < 6; i++) t[i * n + m] = v[i];
    }
}

// The column combinations of B^T for the tiles of one row of t, from its four column phases
// ph[q * (tw + 1) + j] = t[4j + q]: tile j reads phases 0..3 at j and phases 0, 1 at j + 1;
// v + i * ps is matrix i's row of these tiles.
template <int VB>
inline __attribute__((always_inline)) void wino_cols_body(float* __restrict__ v, int64_t ps,
                                                          const float* __restrict__ ph, int64_t tw) {
    SG_VEC(VB);
    constexpr int L = VB / sizeof(float);
    const float *p0 = ph, *p1 = ph + (tw + 1), *p2 = ph + 2 * (tw + 1), *p3 = ph + 3 * (tw + 1);
    int64_t j = 0;
    for (; j + L <= tw; j += L) {
        auto at = [&](const float* p, int64_t k) { return *reinterpret_cast<const V*>(p + k); };
        V d[6] = {at(p0, j), at(p1, j), at(p2, j), at(p3, j), at(p0, j + 1), at(p1, j + 1)}, r[6];
        SG_BT6(d, r);
        for (int i = 0; i < 6; i++) *reinterpret_cast<V*>(v + i * ps + j) = r[i];
    }
    for (; j < tw; j++) {
        float d[6] = {p0[j], p1[j], p2[j], p3[j], p0[j + 1], p1[j + 1]}, r[6];
        SG_BT6(d, r);
        for (int i = 0; i < 6; i++) v[i * ps + j] = r[i];
    }
}

// A^T m A for one row of tiles, times scale: out[(4a + b) * tw + j] is output (a, b) of tile j,
// m[p] the row of tiles of product matrix p.
template <int VB>
inline __attribute__((always_inline)) void wino_out_body(float* __restrict__ out, const float* const* __restrict__ m,
                                                         int64_t tw, float scale) {
    SG_VEC(VB);
    constexpr int L = VB / sizeof(float);
    int64_t j = 0;
    for (; j + L <= tw; j += L) {
        V s[4][6];
        for (int q = 0; q < 6; q++) {
            V col[6], y[4];
            for (int i = 0; i < 6; i++) col[i] = *reinterpret_cast<const V*>(m[6 * i + q] + j);
            SG_AT6(col, y);
            for (int a = 0; a < 4; a++) s[a][q] = y[a];
        }
        for (int a = 0; a < 4; a++) {
            V y[4];
            SG_AT6(s[a], y);
            for (int b = 0; b < 4; b++) *reinterpret_cast<V*>(out + (4 * a + b) * tw + j) = y[b] * scale;
        }
    }
    for (; j < tw; j++) {
        float s[4][6];
        for (int q = 0; q < 6; q++) {
            float col[6], y[4];
            for (int i = 0; i < 6; i++) col[i] = m[6 * i + q][j];
            SG_AT6(col, y);
            for (int a = 0; a < 4; a++) s[a][q] = y[a];
        }
        for (int a = 0; a < 4; a++) {
            float y[4];
            SG_AT6(s[a], y);
            for (int b = 0; b < 4; b++) out[(4 * a + b) * tw + j] = y[b] * scale;
        }
    }
}

#ifdef SG_X86_VARIANTS
#define SG_WINO_VARIANT(name, isa, suffix, VB, params, args) \
    __attribute__((target(isa))) void name##_##suffix params { name##_body<VB> args; }
#else
#define SG_WINO_VARIANT(name, isa, suffix, VB, params, args)
#endif
// name_avx512 / name_avx2 (x86-64 GCC) and the dispatcher name, whose baseline is 16-byte vectors.
#define SG_WINO_LOOP(name, params, args)                        \
    SG_WINO_VARIANT(name, "avx512f", avx512, 64, params, args) \
    SG_WINO_VARIANT(name, "avx2", avx2, 32, params, args)      \
    void name params {                                          \
        SG_ISA_DISPATCH(name, args)                             \
        name##_body<16> args;                                   \
    }

SG_WINO_LOOP(wino_rows, (float* t, const float* rows, int64_t n, float s), (t, rows, n, s))
SG_WINO_LOOP(wino_cols, (float* v, int64_t ps, const float* ph, int64_t tw), (v, ps, ph, tw))
SG_WINO_LOOP(wino_out, (float* out, const float* const* m, int64_t tw, float scale), (out, m, tw, scale))

// r[q * (tw + 1) + j] = src[4j + q - 2] for j = 0 .. tw (zero outside src's w columns): one
// input row split into its four column phases, with the conv's padding of 2.
void split_phases(float* __restrict__ r, const float* __restrict__ src, int64_t w, int64_t tw) {
    for (int q = 0; q < 4; q++) {
        float* ph = r + q * (tw + 1);
        const int64_t lo = std::min(tw + 1, (int64_t)(q < 2 ? 1 : 0)), hi = std::min(tw + 1, (w + 5 - q) / 4);
        for (int64_t j = 0; j < lo; j++) ph[j] = 0.0f;  // columns -2, -1
        for (int64_t j = lo; j < hi; j++) ph[j] = src[4 * j + q - 2];
        for (int64_t j = std::max(lo, hi); j <= tw; j++) ph[j] = 0.0f;
    }
}

// V [36, C, N * (ty1 - ty0) * tw] of tile rows ty0 .. ty1 - 1 of x [N, C, H, W], each input
// channel of each image times s[N, C]; column (ni, ty - ty0, tx). The six input rows of a tile
// row are copied split into their four column phases (phase q holds padded columns 4j + q, so
// the column combinations read contiguous memory); the row combinations, column by column, keep
// that order.
void input_rows(float* vp, const float* xp, const float* sp, int64_t n, int64_t c, int64_t h, int64_t w, int64_t tw,
                int64_t ty0, int64_t ty1) {
    const int64_t wp = 4 * tw + 4, rows_tiles = (ty1 - ty0) * tw, ps = c * n * rows_tiles;  // ps: matrix stride
    at::parallel_for(0, n * c, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> rows(6 * wp), t(6 * wp);
        for (int64_t nc = begin; nc < end; nc++) {
            const int64_t ni = nc / c, ci = nc % c;
            const float* plane = xp + nc * h * w;
            for (int64_t ty = ty0; ty < ty1; ty++) {
                for (int i = 0; i < 6; i++) {  // input row 4ty - 2 + i, columns -2 .. 4tw + 1, zero-padded
                    float* r = rows.data() + i * wp;
                    const int64_t y = 4 * ty - 2 + i;
                    if (y < 0 || y >= h) {
                        std::fill(r, r + wp, 0.0f);
                        continue;
                    }
                    split_phases(r, plane + y * w, w, tw);
                }
                wino_rows(t.data(), rows.data(), wp, sp[nc]);
                float* base = vp + ci * n * rows_tiles + ni * rows_tiles + (ty - ty0) * tw;
                for (int i = 0; i < 6; i++) wino_cols(base + 6 * i * ps, ps, t.data() + i * wp, tw);
            }
        }
    });
}

// Output rows 4ty0 .. 4ty1 - 1 of y [N, O, ho, wo] from M [36, O, N * (ty1 - ty0) * tw] (laid
// out as input_rows' V), each output channel of each image times scale[N, O].
void output_rows(float* yp, const float* mp, const float* sp, int64_t n, int64_t o, int64_t ho, int64_t wo,
                 int64_t tw, int64_t ty0, int64_t ty1) {
    const int64_t rows_tiles = (ty1 - ty0) * tw;
    at::parallel_for(0, n * o, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> out(16 * tw);
        const float* m[36];
        for (int64_t no = begin; no < end; no++) {
            const int64_t ni = no / o, oi = no % o;
            float* plane = yp + no * ho * wo;
            for (int64_t ty = ty0; ty < ty1; ty++) {
                for (int p = 0; p < 36; p++) m[p] = mp + (p * o + oi) * n * rows_tiles + ni * rows_tiles + (ty - ty0) * tw;
                wino_out(out.data(), m, tw, sp[no]);
                for (int a = 0; a < 4 && 4 * ty + a < ho; a++) {
                    float* row = plane + (4 * ty + a) * wo;
                    const float *o0 = out.data() + 4 * a * tw, *o1 = o0 + tw, *o2 = o1 + tw, *o3 = o2 + tw;
                    const int64_t full = wo / 4;  // tiles whose 4 columns all lie in the output
                    for (int64_t j = 0; j < full; j++) {
                        row[4 * j] = o0[j];
                        row[4 * j + 1] = o1[j];
                        row[4 * j + 2] = o2[j];
                        row[4 * j + 3] = o3[j];
                    }
                    for (int64_t j = full; j < tw; j++)
                        for (int b = 0; b < 4 && 4 * j + b < wo; b++) row[4 * j + b] = out[(4 * a + b) * tw + j];
                }
            }
        }
    });
}

}  // namespace

// F.conv2d(x * s, weight, padding=2) * d with u = G weight G^T [36, O, C] (float32, made in
// Python) and u_packed = matmul_pack(u) (kept by the caller; empty: packed here if needed): x
// [N, C, H, W], s [N, C], d [N, O] -> [N, O, H + 2, W + 2]. A few rows of tiles at a
// time, as many as keep the transformed input and product under `budget` floats each (at least
// one row): they stay in cache, and the same two buffers serve every chunk (a transform of the
// whole image is hundreds of MB at 256 px, and fresh pages cost more than the GEMM's reading).
torch::Tensor winograd_f4_conv3x3(torch::Tensor x, torch::Tensor u, torch::Tensor u_packed, torch::Tensor s, torch::Tensor d,
                                  int64_t budget) {
    TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.dim() == 4 && x.is_contiguous(),
                "winograd_f4_conv3x3: x must be a contiguous 4-D CPU float32 tensor");
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    TORCH_CHECK(u.device().is_cpu() && u.scalar_type() == torch::kFloat && u.is_contiguous() && u.dim() == 3 &&
                    u.size(0) == 36 && u.size(2) == c,
                "winograd_f4_conv3x3: u must be a contiguous CPU float32 [36, O, ", c, "]");
    const int64_t o = u.size(1);
    TORCH_CHECK(s.device().is_cpu() && s.scalar_type() == torch::kFloat && s.is_contiguous() && s.dim() == 2 &&
                    s.size(0) == n && s.size(1) == c,
                "winograd_f4_conv3x3: s must be a contiguous CPU float32 [N, C]");
    TORCH_CHECK(d.device().is_cpu() && d.scalar_type() == torch::kFloat && d.is_contiguous() && d.dim() == 2 &&
                    d.size(0) == n && d.size(1) == o,
                "winograd_f4_conv3x3: d must be a contiguous CPU float32 [N, O]");
    TORCH_CHECK(budget > 0, "winograd_f4_conv3x3: budget must be positive");
    const int64_t ho = h + 2, wo = w + 2, th = (ho + 3) / 4, tw = (wo + 3) / 4;
    torch::Tensor y = torch::empty({n, o, ho, wo}, x.options());
    if (y.numel() == 0) return y;
    const int64_t per_row = 36 * std::max(c, o) * n * tw;  // floats of the larger buffer per tile row
    const int64_t rows = std::min(th, std::max<int64_t>(1, budget / per_row));
    torch::Tensor v = torch::empty({36, c, n * rows * tw}, x.options());
    torch::Tensor m = torch::empty({36, o, n * rows * tw}, x.options());
    const sg::MatmulLhs lhs = sg::matmul_lhs(u, u_packed);  // packed (if not already) once for every chunk
    for (int64_t ty0 = 0; ty0 < th; ty0 += rows) {
        const int64_t ty1 = std::min(th, ty0 + rows), cols = n * (ty1 - ty0) * tw;
        // a last, shorter chunk: the buffers' leading parts, contiguous in its own layout
        torch::Tensor vc = v.view(-1).narrow(0, 0, 36 * c * cols).view({36, c, cols});
        torch::Tensor mc = m.view(-1).narrow(0, 0, 36 * o * cols).view({36, o, cols});
        input_rows(vc.data_ptr<float>(), x.data_ptr<float>(), s.data_ptr<float>(), n, c, h, w, tw, ty0, ty1);
        sg::matmul_into(mc, lhs, vc);
        output_rows(y.data_ptr<float>(), mc.data_ptr<float>(), d.data_ptr<float>(), n, o, ho, wo, tw, ty0, ty1);
    }
    return y;
}
