// CPU plugin: device and dtype checks, dtype dispatch and at::parallel_for loops around the kernel
// core (include/*_core.h); the other argument checks and the parameter structs are filled in
// include/driver_common.h, shared with the CUDA plugin. No arithmetic of the ops lives here.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <climits>
#include <utility>
#include <numeric>
#include <vector>

#include "bias_act_core.h"
#include "cpu_isa.h"
#include "driver_common.h"
#include "filtered_lrelu_core.h"
#include "filtered_lrelu_driver.h"
#include "upfirdn2d_core.h"

namespace {

// ------------------------------------------------------------------------------------------------
// upfirdn2d

// A run of output columns that share one tap pattern: output ox0 + m*oxstep reads input columns
// i0 + m*istep + k with taps t0 + k*up, k < n, for m < count. acc is its slice of the row buffer.
struct ColumnRun {
    int64_t ox0, oxstep, count, i0, istep, acc;
    int t0, n;
};

// Group the output columns into runs by polyphase class: the columns of one class share (t0, n)
// and step through the input evenly, so with unclipped taps each class is one run (clipped border
// columns would start runs of their own).
std::vector<ColumnRun> column_runs(const std::vector<sg::AxisTaps>& taps, int up, int down) {
    int64_t count = (int64_t)taps.size();
    int64_t period = up / std::gcd(up, down);  // columns of one polyphase class are `period` apart
    std::vector<ColumnRun> runs;
    int64_t acc = 0;
    for (int64_t p = 0; p < std::min(period, count); p++) {
        for (int64_t o = p; o < count; o += period) {
            const sg::AxisTaps& t = taps[o];
            ColumnRun* last = runs.empty() ? nullptr : &runs.back();
            bool extend = last && last->oxstep == period && last->ox0 % period == p &&
                          last->t0 == t.t0 && last->n == t.n &&
                          last->ox0 + last->count * period == o &&
                          (last->count == 1 || last->i0 + last->count * last->istep == t.i0);
            if (extend) {
                if (last->count == 1) last->istep = t.i0 - last->i0;
                last->count++;
            } else {
                runs.push_back({o, period, 1, t.i0, 1, 0, t.t0, t.n});  // istep is set on extension
            }
        }
    }
    for (ColumnRun& r : runs) {
        r.acc = acc;
        acc += r.count;
    }
    return runs;
}

std::vector<sg::AxisTaps> axis_taps(int64_t out, int up, int down, int pad0, int64_t in, int taps) {
    std::vector<sg::AxisTaps> t(out);
    for (int64_t o = 0; o < out; o++) t[o] = sg::upfirdn2d_axis_taps(o, up, down, pad0, in, taps);
    return t;
}

std::vector<sg::AxisTaps> axis_taps_unclipped(int64_t out, int up, int down, int pad0, int taps) {
    std::vector<sg::AxisTaps> t(out);
    for (int64_t o = 0; o < out; o++) t[o] = sg::upfirdn2d_axis_taps_unclipped(o, up, down, pad0, taps);
    return t;
}

// Input samples [lo, hi] read by outputs [begin, end) (unclipped taps); lo > hi when none.
std::pair<int64_t, int64_t> tap_span(const std::vector<sg::AxisTaps>& taps, int64_t begin, int64_t end) {
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (int64_t o = begin; o < end; o++) {
        if (taps[o].n == 0) continue;
        lo = std::min(lo, taps[o].i0);
        hi = std::max(hi, taps[o].i0 + taps[o].n - 1);
    }
    return lo <= hi ? std::make_pair(lo, hi) : std::make_pair<int64_t, int64_t>(0, -1);
}

// Correlation filter F, oriented once so the loops index it as F[ty * fw + tx].
template <typename S>
std::vector<S> oriented_filter(const S* f, int fh, int fw, bool flip) {
    std::vector<S> F(fh * fw);
    for (int ty = 0; ty < fh; ty++)
        for (int tx = 0; tx < fw; tx++) F[ty * fw + tx] = f[sg::upfirdn2d_filter_index(ty, tx, fh, fw, flip)];
    return F;
}

// Filter rows handed to the core per call (upfirdn2d_block's fixed-size branches go up to 4).
constexpr int kRowsPerBlock = 4;

// NCHW-like layouts. One task = a band of output rows of one plane: the input rows the band reads
// are copied into a zero-padded buffer, so every output pixel takes its full polyphase tap set
// and the columns vectorize along W without border cases. The extra taps read padding zeros and
// add w * 0 = +-0 to a sum that starts at +0 (and so is never -0): the result is bit for bit that
// of upfirdn2d_pixel, which skips them -- for a finite filter (the plugins' contract).
template <typename S>
void upfirdn2d_rows(const sg::Upfirdn2dParams& p) {
    const S* x = static_cast<const S*>(p.x);
    S* y = static_cast<S*>(p.y);
    std::vector<S> F = oriented_filter(static_cast<const S*>(p.f), p.fh, p.fw, p.flip);
    std::vector<sg::AxisTaps> rows = axis_taps_unclipped(p.outh, p.upy, p.downy, p.pady0, p.fh);
    std::vector<sg::AxisTaps> cols = axis_taps_unclipped(p.outw, p.upx, p.downx, p.padx0, p.fw);
    std::pair<int64_t, int64_t> span = tap_span(cols, 0, p.outw);
    int64_t bx0 = span.first, bx1 = span.second, bw = bx1 - bx0 + 1;  // buffer columns: inputs bx0..bx1
    for (sg::AxisTaps& t : cols) t.i0 -= bx0;
    std::vector<ColumnRun> runs = column_runs(cols, p.upx, p.downx);

    // Weights of every (output row, group of filter rows, column run), gathered once per call:
    // block (oy, g, run) holds F[ty.t0 + (g*kRowsPerBlock + a)*upy][run.t0 + b*upx] at [a][b].
    int64_t groups = (p.fh + kRowsPerBlock - 1) / kRowsPerBlock;
    std::vector<int64_t> woff(p.outh * groups * runs.size());
    std::vector<S> wtab;
    for (int64_t oy = 0; oy < p.outh; oy++) {
        sg::AxisTaps ty = rows[oy];
        for (int64_t g = 0; g < groups; g++) {
            int a0 = (int)g * kRowsPerBlock, ny = std::max(0, std::min(kRowsPerBlock, ty.n - a0));
            for (size_t k = 0; k < runs.size(); k++) {
                woff[(oy * groups + g) * runs.size() + k] = (int64_t)wtab.size();
                for (int a = 0; a < ny; a++)
                    for (int b = 0; b < runs[k].n; b++)
                        wtab.push_back(F[(ty.t0 + (a0 + a) * p.upy) * p.fw + runs[k].t0 + b * p.upx]);
            }
        }
    }

    const S gain = (S)p.gain;
    int64_t band = std::min<int64_t>(p.outh, std::max<int64_t>(8, 16384 / p.outw));
    int64_t bands = (p.outh + band - 1) / band;
    at::parallel_for(0, p.n * p.c * bands, 1, [&](int64_t begin, int64_t end) {
        std::vector<S> acc(p.outw), buf;
        const S* xrows[kRowsPerBlock];
        for (int64_t task = begin; task < end; task++) {
            int64_t oy0 = (task % bands) * band, oy1 = std::min(p.outh, oy0 + band), nc = task / bands;
            int64_t c = nc % p.c, n = nc / p.c;
            std::pair<int64_t, int64_t> rspan = tap_span(rows, oy0, oy1);
            int64_t by0 = rspan.first, by1 = rspan.second;  // buffer rows: inputs by0..by1
            buf.assign(std::max<int64_t>(0, by1 - by0 + 1) * bw, (S)0);
            const S* plane = x + n * p.xsn + c * p.xsc;
            int64_t cx0 = std::max<int64_t>(bx0, 0), cx1 = std::min<int64_t>(bx1, p.inw - 1);
            for (int64_t iy = std::max<int64_t>(by0, 0); iy <= std::min<int64_t>(by1, p.inh - 1); iy++) {
                const S* src = plane + iy * p.xsh;
                S* dst = buf.data() + (iy - by0) * bw;
                for (int64_t ix = cx0; ix <= cx1; ix++) dst[ix - bx0] = src[ix * p.xsw];
            }
            for (int64_t oy = oy0; oy < oy1; oy++) {
                sg::AxisTaps ty = rows[oy];
                std::fill(acc.begin(), acc.end(), (S)0);
                for (int a0 = 0, g = 0; a0 < ty.n; a0 += kRowsPerBlock, g++) {
                    int ny = std::min(kRowsPerBlock, ty.n - a0);
                    const int64_t* wo = woff.data() + (oy * groups + g) * runs.size();
                    for (size_t k = 0; k < runs.size(); k++) {
                        const ColumnRun& run = runs[k];
                        for (int a = 0; a < ny; a++) xrows[a] = buf.data() + (ty.i0 + a0 + a - by0) * bw + run.i0;
                        sg::upfirdn2d_block(acc.data() + run.acc, run.count, wtab.data() + wo[k], ny, run.n,
                                            xrows, run.istep, 1);
                    }
                }
                S* yrow = y + n * p.ysn + c * p.ysc + oy * p.ysh;
                for (const ColumnRun& run : runs)
                    sg::upfirdn2d_store(yrow + run.ox0 * p.ysw, run.count, run.oxstep * p.ysw,
                                        acc.data() + run.acc, gain);
            }
        }
    });
}

// channels_last-like layouts: one task = one output pixel; the taps vectorize along C.
template <typename S>
void upfirdn2d_pixels(const sg::Upfirdn2dParams& p) {
    const S* x = static_cast<const S*>(p.x);
    S* y = static_cast<S*>(p.y);
    std::vector<S> F = oriented_filter(static_cast<const S*>(p.f), p.fh, p.fw, p.flip);
    std::vector<sg::AxisTaps> rows = axis_taps(p.outh, p.upy, p.downy, p.pady0, p.inh, p.fh);
    std::vector<sg::AxisTaps> cols = axis_taps(p.outw, p.upx, p.downx, p.padx0, p.inw, p.fw);
    const S gain = (S)p.gain;
    int64_t total = p.n * p.outh * p.outw;
    int64_t work_per_pixel = std::max<int64_t>(1, p.c * p.fh * p.fw / (p.upx * p.upy));
    int64_t grain = std::max<int64_t>(1, 32768 / work_per_pixel);
    at::parallel_for(0, total, grain, [&](int64_t begin, int64_t end) {
        std::vector<S> acc(p.c);
        for (int64_t r = begin; r < end; r++) {
            int64_t ox = r % p.outw, noy = r / p.outw;
            int64_t oy = noy % p.outh, n = noy / p.outh;
            std::fill(acc.begin(), acc.end(), (S)0);
            sg::AxisTaps ty = rows[oy], tx = cols[ox];
            for (int a = 0; a < ty.n; a++) {
                const S* xrow = x + n * p.xsn + (ty.i0 + a) * p.xsh;
                const S* frow = F.data() + (ty.t0 + a * p.upy) * p.fw;
                for (int b = 0; b < tx.n; b++)
                    sg::upfirdn2d_axpy(acc.data(), p.c, frow[tx.t0 + b * p.upx],
                                       xrow + (tx.i0 + b) * p.xsw, p.xsc);
            }
            sg::upfirdn2d_store(y + n * p.ysn + oy * p.ysh + ox * p.ysw, p.c, p.ysc, acc.data(), gain);
        }
    });
}

torch::Tensor upfirdn2d(torch::Tensor x, torch::Tensor f, int64_t upx, int64_t upy, int64_t downx,
                        int64_t downy, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1,
                        bool flip, double gain) {
    TORCH_CHECK(x.device().is_cpu() && f.device().is_cpu(),
                "upfirdn2d (cpu plugin): x and f must be CPU tensors, got ", x.device(), " and ", f.device());
    sg::check_upfirdn2d_x(x);
    TORCH_CHECK(x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble,
                "upfirdn2d (cpu plugin): x must be float32 or float64, got ", x.scalar_type());
    sg::Upfirdn2dCall call =
        sg::upfirdn2d_prepare(x, f, upx, upy, downx, downy, padx0, padx1, pady0, pady1, flip, gain);
    if (call.y.numel() == 0) return call.y;

    // Vectorize along whichever of W and C is contiguous in memory.
    const sg::Upfirdn2dParams& p = call.p;
    bool along_c = p.xsc == 1 && p.xsw != 1 && p.c > 1;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "upfirdn2d_cpu", [&] {
        if (along_c)
            upfirdn2d_pixels<scalar_t>(p);
        else
            upfirdn2d_rows<scalar_t>(p);
    });
    return call.y;
}

// ------------------------------------------------------------------------------------------------
// bias_act

// Elements [i, end) that share bias value b (null arrays mean absent).
template <typename S, int A, int G>
void bias_act_run(const sg::BiasActParams& p, int64_t i, int64_t end, S b) {
    const S* x = static_cast<const S*>(p.x);
    const S* xr = static_cast<const S*>(p.xref);
    const S* yr = static_cast<const S*>(p.yref);
    const S* dy = static_cast<const S*>(p.dy);
    S* y = static_cast<S*>(p.y);
    const S alpha = (S)p.alpha, gain = (S)p.gain, clamp = (S)p.clamp;
    if (!xr && !yr && !dy) {  // the forward pass: a loop the compiler can vectorize
        for (int64_t k = i; k < end; k++)
            y[k] = sg::bias_act_elem<S, A, G>(x[k], b, (S)0, (S)0, (S)1, alpha, gain, clamp);
        return;
    }
    for (int64_t k = i; k < end; k++)
        y[k] = sg::bias_act_elem<S, A, G>(x[k], b, xr ? xr[k] : (S)0, yr ? yr[k] : (S)0,
                                          dy ? dy[k] : (S)1, alpha, gain, clamp);
}

// Elements [i, end) whose bias index runs c, c+1, ... (the bias dim is the innermost one).
template <typename S, int A, int G>
void bias_act_run_vec(const sg::BiasActParams& p, int64_t i, int64_t end, const S* b) {
    const S* x = static_cast<const S*>(p.x);
    const S* xr = static_cast<const S*>(p.xref);
    const S* yr = static_cast<const S*>(p.yref);
    const S* dy = static_cast<const S*>(p.dy);
    S* y = static_cast<S*>(p.y);
    const S alpha = (S)p.alpha, gain = (S)p.gain, clamp = (S)p.clamp;
    for (int64_t k = i; k < end; k++)
        y[k] = sg::bias_act_elem<S, A, G>(x[k], b[k - i], xr ? xr[k] : (S)0, yr ? yr[k] : (S)0,
                                          dy ? dy[k] : (S)1, alpha, gain, clamp);
}

template <typename S, int A, int G>
void bias_act_loop(const sg::BiasActParams& p) {
    const S* b = static_cast<const S*>(p.b);
    at::parallel_for(0, p.numel, 32768, [&](int64_t begin, int64_t end) {
        if (!b) {
            bias_act_run<S, A, G>(p, begin, end, (S)0);
            return;
        }
        for (int64_t i = begin; i < end;) {
            int64_t c = sg::bias_act_bias_index(i, p.step_b, p.size_b);
            if (p.step_b == 1) {  // channels innermost: one pass over consecutive channels
                int64_t stop = std::min(end, i + (p.size_b - c));
                bias_act_run_vec<S, A, G>(p, i, stop, b + c);
                i = stop;
            } else {  // one channel over a run of step_b elements
                int64_t stop = std::min(end, (i / p.step_b + 1) * p.step_b);
                bias_act_run<S, A, G>(p, i, stop, b[c]);
                i = stop;
            }
        }
    });
}

template <typename S, int A>
void bias_act_grad(const sg::BiasActParams& p) {
    if (p.grad == 0) bias_act_loop<S, A, 0>(p);
    else if (p.grad == 1) bias_act_loop<S, A, 1>(p);
    else bias_act_loop<S, A, 2>(p);
}

template <typename S>
void bias_act_act(const sg::BiasActParams& p) {
    switch (p.act) {
        case 1: bias_act_grad<S, 1>(p); break;
        case 2: bias_act_grad<S, 2>(p); break;
        case 3: bias_act_grad<S, 3>(p); break;
        case 4: bias_act_grad<S, 4>(p); break;
        case 5: bias_act_grad<S, 5>(p); break;
        case 6: bias_act_grad<S, 6>(p); break;
        case 7: bias_act_grad<S, 7>(p); break;
        case 8: bias_act_grad<S, 8>(p); break;
        default: bias_act_grad<S, 9>(p); break;
    }
}

torch::Tensor bias_act(torch::Tensor x, torch::Tensor b, torch::Tensor xref, torch::Tensor yref,
                       torch::Tensor dy, int64_t grad, int64_t dim, int64_t act, double alpha,
                       double gain, double clamp) {
    TORCH_CHECK(x.device().is_cpu(), "bias_act (cpu plugin): x must be a CPU tensor, got ", x.device());
    TORCH_CHECK(x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble,
                "bias_act (cpu plugin): x must be float32 or float64, got ", x.scalar_type());
    sg::BiasActCall call = sg::bias_act_prepare(x, b, xref, yref, dy, grad, dim, act, alpha, gain, clamp);
    if (call.y.numel() == 0) return call.y;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bias_act_cpu", [&] { bias_act_act<scalar_t>(call.p); });
    return call.y;
}

// ------------------------------------------------------------------------------------------------
// filtered_lrelu

// The hot row loops are compiled for AVX-512, AVX2 and baseline x86-64, and the widest this CPU
// has runs. Every loop is element by element with -ffp-contract=off (no FMA, no reassociation),
// so each variant computes the same bits. The two FIR loops (and winograd_cpu.cpp's transforms)
// hold GCC vectors of exactly the variant's register width (a vector wider than the target's
// registers is lowered through the stack: AVX2 code of 64-byte vectors ran 5-10x slower than
// 32-byte ones), so they are one body per width; the two elementwise loops (bias add,
// activation) are one plain loop compiled per target. All are dispatched by `sg::row_isa`, and
// so held to a narrower width by STYLEGEN_CPU_ISA.

}  // namespace

namespace sg {

// The row loops' variants: 0 = baseline (16-byte vectors), 1 = AVX2 (32), 2 = AVX-512 (64).
int g_row_isa = -1;  // -1: not chosen yet

int cpu_row_isa() {
#ifdef SG_X86_VARIANTS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2")) return 1;
#endif
    return 0;
}

int row_isa() {
    if (g_row_isa < 0) g_row_isa = cpu_row_isa();
    return g_row_isa;
}

}  // namespace sg

namespace {

using sg::cpu_row_isa;
using sg::g_row_isa;
using sg::row_isa;

// Choose the row loops' variant: "auto" (the widest this CPU has), "avx512", "avx2" or "base"; one
// the CPU lacks is refused. Returns the variant now in use. For tests and benchmarks (each variant
// gives the same bits); set before ops run, not while they run on other threads.
std::string set_row_isa(const std::string& name) {
    static const char* names[] = {"base", "avx2", "avx512"};
    int want = name == "auto" ? cpu_row_isa() : name == "avx512" ? 2 : name == "avx2" ? 1 : name == "base" ? 0 : -1;
    TORCH_CHECK(want >= 0, "cpu isa: expected auto, avx512, avx2 or base, got '", name, "'");
    TORCH_CHECK(want <= cpu_row_isa(), "cpu isa: this CPU has no ", name, " (widest: ", names[cpu_row_isa()], ")");
    g_row_isa = want;
    return names[want];
}

// out[m] = sum_k w[k] * src[k][m], k ascending from 0: the sums of a zero fill followed by one
// upfirdn2d_axpy per tap, bit for bit, with blocks of outputs held in (GCC vector, VB bytes)
// registers across the taps. Lane by lane the same multiply-then-add in the same order as the
// scalar tail.
template <typename S, int VB>
__attribute__((always_inline)) inline void row_fir_body(S* __restrict__ out, int64_t n, const S* __restrict__ w,
                                                        const S* const* __restrict__ src, int taps) {
    typedef S V __attribute__((vector_size(VB), aligned(sizeof(S)), may_alias));  // unaligned loads
    constexpr int L = VB / sizeof(S);
    int64_t m = 0;
    for (; m + 4 * L <= n; m += 4 * L) {
        V a0 = {}, a1 = {}, a2 = {}, a3 = {};
        for (int k = 0; k < taps; k++) {
            const V* x = reinterpret_cast<const V*>(src[k] + m);
            const S wk = w[k];
            a0 += wk * x[0];
            a1 += wk * x[1];
            a2 += wk * x[2];
            a3 += wk * x[3];
        }
        V* o = reinterpret_cast<V*>(out + m);
        o[0] = a0;
        o[1] = a1;
        o[2] = a2;
        o[3] = a3;
    }
    for (; m + L <= n; m += L) {
        V a0 = {};
        for (int k = 0; k < taps; k++) a0 += w[k] * *reinterpret_cast<const V*>(src[k] + m);
        *reinterpret_cast<V*>(out + m) = a0;
    }
    for (; m < n; m++) {
        S a = 0;
        for (int k = 0; k < taps; k++) a += w[k] * src[k][m];
        out[m] = a;
    }
}

// out[m] = sum_a (sum_k w[a * cols + k] * src[a * cols + k][m]), k ascending into a row sum, the
// rows (a ascending) into the total: row_fir per row added row by row, bit for bit, in one pass.
template <typename S, int VB>
__attribute__((always_inline)) inline void row_fir_rows_body(S* __restrict__ out, int64_t n, const S* __restrict__ w,
                                                             const S* const* __restrict__ src, int rows, int cols) {
    typedef S V __attribute__((vector_size(VB), aligned(sizeof(S)), may_alias));
    constexpr int L = VB / sizeof(S);
    int64_t m = 0;
    for (; m + 4 * L <= n; m += 4 * L) {
        V a0 = {}, a1 = {}, a2 = {}, a3 = {};
        for (int r = 0; r < rows; r++) {
            V h0 = {}, h1 = {}, h2 = {}, h3 = {};
            for (int k = 0; k < cols; k++) {
                const V* x = reinterpret_cast<const V*>(src[r * cols + k] + m);
                const S wk = w[r * cols + k];
                h0 += wk * x[0];
                h1 += wk * x[1];
                h2 += wk * x[2];
                h3 += wk * x[3];
            }
            a0 += h0;
            a1 += h1;
            a2 += h2;
            a3 += h3;
        }
        V* o = reinterpret_cast<V*>(out + m);
        o[0] = a0;
        o[1] = a1;
        o[2] = a2;
        o[3] = a3;
    }
    for (; m + L <= n; m += L) {
        V a0 = {};
        for (int r = 0; r < rows; r++) {
            V h0 = {};
            for (int k = 0; k < cols; k++) h0 += w[r * cols + k] * *reinterpret_cast<const V*>(src[r * cols + k] + m);
            a0 += h0;
        }
        *reinterpret_cast<V*>(out + m) = a0;
    }
    for (; m < n; m++) {
        S a = 0;
        for (int r = 0; r < rows; r++) {
            S h = 0;
            for (int k = 0; k < cols; k++) h += w[r * cols + k] * src[r * cols + k][m];
            a += h;
        }
        out[m] = a;
    }
}

#ifdef SG_X86_VARIANTS
template <typename S>
__attribute__((target("avx512f"))) void row_fir_avx512(S* out, int64_t n, const S* w, const S* const* src, int taps) {
    row_fir_body<S, 64>(out, n, w, src, taps);
}
template <typename S>
__attribute__((target("avx2"))) void row_fir_avx2(S* out, int64_t n, const S* w, const S* const* src, int taps) {
    row_fir_body<S, 32>(out, n, w, src, taps);
}
template <typename S>
__attribute__((target("avx512f"))) void row_fir_rows_avx512(S* out, int64_t n, const S* w, const S* const* src,
                                                            int rows, int cols) {
    row_fir_rows_body<S, 64>(out, n, w, src, rows, cols);
}
template <typename S>
__attribute__((target("avx2"))) void row_fir_rows_avx2(S* out, int64_t n, const S* w, const S* const* src, int rows,
                                                       int cols) {
    row_fir_rows_body<S, 32>(out, n, w, src, rows, cols);
}
#endif

template <typename S>
void row_fir(S* out, int64_t n, const S* w, const S* const* src, int taps) {
    SG_ISA_DISPATCH(row_fir, (out, n, w, src, taps))
    row_fir_body<S, 16>(out, n, w, src, taps);
}

template <typename S>
void row_fir_rows(S* out, int64_t n, const S* w, const S* const* src, int rows, int cols) {
    SG_ISA_DISPATCH(row_fir_rows, (out, n, w, src, rows, cols))
    row_fir_rows_body<S, 16>(out, n, w, src, rows, cols);
}

// z[m] = act(up_gain(acc[m])): the end of flrelu_up_rows' sum and the activation, a row at a time.
template <typename S>
__attribute__((always_inline)) inline void flrelu_act_row_body(S* __restrict__ z, const S* __restrict__ acc, int64_t n,
                                                               int up, S gain, S slope, S clamp) {
    for (int64_t m = 0; m < n; m++) z[m] = sg::flrelu_act(sg::flrelu_up_gain(acc[m], up), gain, slope, clamp);
}

// dst[m] = src[m] + b: the biased input row (x + b, as flrelu_dot adds it).
template <typename S>
__attribute__((always_inline)) inline void row_add_body(S* __restrict__ dst, const S* __restrict__ src, int64_t n,
                                                        S b) {
    for (int64_t m = 0; m < n; m++) dst[m] = src[m] + b;
}

// The two elementwise loops compiled for each width (GCC vectorises each body at its target's),
// dispatched by row_isa like the FIR loops.
#ifdef SG_X86_VARIANTS
template <typename S>
__attribute__((target("avx512f"))) void flrelu_act_row_avx512(S* z, const S* acc, int64_t n, int up, S gain, S slope,
                                                              S clamp) {
    flrelu_act_row_body(z, acc, n, up, gain, slope, clamp);
}
template <typename S>
__attribute__((target("avx2"))) void flrelu_act_row_avx2(S* z, const S* acc, int64_t n, int up, S gain, S slope,
                                                         S clamp) {
    flrelu_act_row_body(z, acc, n, up, gain, slope, clamp);
}
template <typename S>
__attribute__((target("avx512f"))) void row_add_avx512(S* dst, const S* src, int64_t n, S b) {
    row_add_body(dst, src, n, b);
}
template <typename S>
__attribute__((target("avx2"))) void row_add_avx2(S* dst, const S* src, int64_t n, S b) {
    row_add_body(dst, src, n, b);
}
#endif

template <typename S>
void flrelu_act_row(S* z, const S* acc, int64_t n, int up, S gain, S slope, S clamp) {
    SG_ISA_DISPATCH(flrelu_act_row, (z, acc, n, up, gain, slope, clamp))
    flrelu_act_row_body(z, acc, n, up, gain, slope, clamp);
}

template <typename S>
void row_add(S* dst, const S* src, int64_t n, S b) {
    SG_ISA_DISPATCH(row_add, (dst, src, n, b))
    row_add_body(dst, src, n, b);
}

// Scratch buffers of one thread's tasks.
template <typename S>
struct FlreluScratch {
    std::vector<S> xb, h, z, v, acc, taps;
    std::vector<const S*> src;

    // Room for n taps in `taps` and `src`.
    void reserve_taps(int n) {
        taps.resize(n);
        src.resize(n);
    }
};

// Where the intermediate image's column zx lives in a row buffer: split into its `down` phases
// (phase q = columns q, q + down, ...; each phase `len` long), so that every tap of the down
// filter reads contiguous memory. With up == down, each polyphase run of the up filter's x-pass
// also writes contiguous memory. Any column order serves the y-pass and the activation, which
// work column by column; slots past the last column are scratch that is never read.
struct ZLayout {
    int64_t down, len, stride;
    explicit ZLayout(int64_t zw, int64_t down_) : down(down_), len((zw + down_ - 1) / down_), stride(len * down_) {}
    int64_t slot(int64_t zx) const { return (zx % down) * len + zx / down; }
};

// The x-pass of a separable fu over one biased input row xb, zero-padded so that no tap is
// clipped: per column run, the run's taps summed k ascending, written to the run's slots in h.
// The padding's products are exact zeros, so each h[zx] is flrelu_dot's sum over the unclipped
// taps (up to the sign of a zero), and each polyphase class is one run.
template <typename S>
void flrelu_up_row_runs(const S* xb, const std::vector<ColumnRun>& runs, const ZLayout& zl, const S* fu, int taps,
                        bool flip, int up, S* acc, S* h, FlreluScratch<S>& w) {
    for (const ColumnRun& run : runs) {
        int64_t s0 = zl.slot(run.ox0);
        bool affine = run.count == 1 || run.oxstep % zl.down == 0;
        int64_t sstep = run.count == 1 ? 1 : run.oxstep / zl.down;
        S* a = affine && sstep == 1 ? h + s0 : acc + run.acc;  // a contiguous run is summed in place
        if (run.istep == 1 || run.count == 1) {
            w.reserve_taps(run.n);
            for (int k = 0; k < run.n; k++) {
                w.taps[k] = fu[sg::flrelu_tap(run.t0 + k * up, taps, flip)];
                w.src[k] = xb + run.i0 + k;
            }
            row_fir(a, run.count, w.taps.data(), w.src.data(), run.n);
        } else {
            std::fill(a, a + run.count, (S)0);
            for (int k = 0; k < run.n; k++)
                sg::upfirdn2d_axpy(a, run.count, (S)fu[sg::flrelu_tap(run.t0 + k * up, taps, flip)], xb + run.i0 + k,
                                   run.istep);
        }
        if (a == h + s0) continue;
        if (affine) {
            for (int64_t m = 0; m < run.count; m++) h[s0 + m * sstep] = a[m];
        } else {
            for (int64_t m = 0; m < run.count; m++) h[zl.slot(run.ox0 + m * run.oxstep)] = a[m];
        }
    }
}

// The activated z rows [zy0, zy0 + nz) of one plane into w.z (nz rows of zl.stride slots). A
// separable fu is applied as two passes, along x into w.h (every input row the band reads), then
// along y, row by row.
template <typename S>
void flrelu_z_band(const sg::FilteredLreluParams& p, const ZLayout& zl, const S* plane, S bias, int64_t zy0,
                   int64_t nz, const std::vector<sg::AxisTaps>& zrows, const std::vector<sg::AxisTaps>& zcols,
                   const std::vector<ColumnRun>& runs, int64_t padl, int64_t xbw, FlreluScratch<S>& w) {
    const S* fu = static_cast<const S*>(p.fu);
    const S gain = (S)p.gain, slope = (S)p.slope, clamp = (S)p.clamp;
    const int64_t zs = zl.stride;
    S* z = w.z.data();
    if (!p.fu_sep) {
        for (int64_t r = 0; r < nz; r++)
            for (int64_t zx = 0; zx < p.zw; zx++) {
                S v = sg::flrelu_up<S>(plane, p.xsh, p.xsw, bias, fu, p.fuh, p.fuw, false, p.flip, zrows[zy0 + r],
                                       zcols[zx], p.up);
                z[r * zs + zl.slot(zx)] = sg::flrelu_act(v, gain, slope, clamp);
            }
        return;
    }
    std::pair<int64_t, int64_t> span = tap_span(zrows, zy0, zy0 + nz);  // clipped taps: input rows only
    int64_t iy0 = span.first, ni = span.second - span.first + 1;
    w.h.resize(std::max<int64_t>(ni, 0) * zs);
    w.xb.assign(xbw, (S)0);  // the biased row between padl and xbw - padl - inw zeros
    w.acc.resize(std::max(zs, p.outw));
    for (int64_t i = 0; i < ni; i++) {
        const S* src = plane + (iy0 + i) * p.xsh;
        S* xb = w.xb.data() + padl;
        if (p.xsw == 1)
            row_add(xb, src, p.inw, bias);
        else
            for (int64_t ix = 0; ix < p.inw; ix++) xb[ix] = src[ix * p.xsw] + bias;
        flrelu_up_row_runs(w.xb.data(), runs, zl, fu, p.fuw, p.flip, p.up, w.acc.data(), w.h.data() + i * zs, w);
    }
    S* acc = w.acc.data();
    for (int64_t r = 0; r < nz; r++) {
        sg::AxisTaps ty = zrows[zy0 + r];
        w.reserve_taps(ty.n);
        for (int a = 0; a < ty.n; a++) {  // flrelu_up_rows' sum
            w.taps[a] = fu[sg::flrelu_tap(ty.t0 + a * p.up, p.fuh, p.flip)];
            w.src[a] = w.h.data() + (ty.i0 - iy0 + a) * zs;
        }
        row_fir(acc, zs, w.taps.data(), w.src.data(), ty.n);
        flrelu_act_row(z + r * zs, acc, zs, p.up, gain, slope, clamp);
    }
}

// out[ox] = flrelu_dot of a z row (in zl's phase slots) with filter row frow at output ox, for
// every ox, taps k ascending: z column ox * down + k is slot (k % down) * len + ox + k / down.
template <typename S>
void flrelu_down_row(const sg::FilteredLreluParams& p, const ZLayout& zl, const S* zrow, const S* frow, S* out,
                     FlreluScratch<S>& w) {
    w.reserve_taps(p.fdw);
    for (int k = 0; k < p.fdw; k++) {
        w.taps[k] = frow[sg::flrelu_tap(k, p.fdw, p.flip)];
        w.src[k] = zrow + (k % p.down) * zl.len + k / p.down;
    }
    row_fir(out, p.outw, w.taps.data(), w.src.data(), p.fdw);
}

// Output rows [oy0, oy1) of one plane from its z band (rows zy0 = oy0 * down onwards). A
// separable fd filters each z row along x once (into w.v), then combines rows per output row;
// flrelu_add_row's "acc + h" of a 2-D fd is the axpy with weight 1 (1 * h == h exactly).
template <typename S>
void flrelu_down_band(const sg::FilteredLreluParams& p, const ZLayout& zl, int64_t nz, int64_t oy0, int64_t oy1,
                      FlreluScratch<S>& w, S* yplane) {
    const S* fd = static_cast<const S*>(p.fd);
    const S* z = w.z.data();
    int64_t zy0 = oy0 * p.down;
    w.acc.resize(std::max(zl.stride, p.outw));
    if (p.fd_sep) {
        w.v.resize(nz * p.outw);
        for (int64_t r = 0; r < nz; r++) flrelu_down_row(p, zl, z + r * zl.stride, fd, w.v.data() + r * p.outw, w);
    }
    for (int64_t oy = oy0; oy < oy1; oy++) {
        S* yrow = yplane + oy * p.ysh;
        S* acc = p.ysw == 1 ? yrow : w.acc.data();  // a contiguous output row is summed in place
        if (p.fd_sep) {
            w.reserve_taps(p.fdh);
            for (int a = 0; a < p.fdh; a++) {
                w.taps[a] = fd[sg::flrelu_tap(a, p.fdh, p.flip)];
                w.src[a] = w.v.data() + (oy * p.down + a - zy0) * p.outw;
            }
            row_fir(acc, p.outw, w.taps.data(), w.src.data(), p.fdh);
        } else {  // a 2-D fd: every (row, tap) of the window in one pass, summed row by row
            w.reserve_taps(p.fdh * p.fdw);
            for (int a = 0; a < p.fdh; a++) {
                const S* zrow = z + (oy * p.down + a - zy0) * zl.stride;
                const S* frow = sg::flrelu_row(fd, a, p.fdh, p.fdw, false, p.flip);
                for (int k = 0; k < p.fdw; k++) {
                    w.taps[a * p.fdw + k] = frow[sg::flrelu_tap(k, p.fdw, p.flip)];
                    w.src[a * p.fdw + k] = zrow + (k % p.down) * zl.len + k / p.down;
                }
            }
            row_fir_rows(acc, p.outw, w.taps.data(), w.src.data(), p.fdh, p.fdw);
        }
        if (acc != yrow)
            for (int64_t ox = 0; ox < p.outw; ox++) yrow[ox * p.ysw] = acc[ox];
    }
}

// One task = a band of output rows of one (n, c) plane: its z rows are computed once into a
// buffer (never the whole intermediate image, never the zero-inserted one).
template <typename S>
void filtered_lrelu_loop(const sg::FilteredLreluParams& p) {
    const S* x = static_cast<const S*>(p.x);
    const S* b = static_cast<const S*>(p.b);
    S* y = static_cast<S*>(p.y);
    std::vector<sg::AxisTaps> zrows(p.zh), zcols(p.zw);
    for (int64_t i = 0; i < p.zh; i++) zrows[i] = sg::upfirdn2d_axis_taps(i, p.up, 1, p.pady0, p.inh, p.fuh);
    for (int64_t i = 0; i < p.zw; i++) zcols[i] = sg::upfirdn2d_axis_taps(i, p.up, 1, p.padx0, p.inw, p.fuw);
    int64_t band = std::min<int64_t>(p.outh, std::max<int64_t>(16, 16384 / p.outw));
    int64_t bands = (p.outh + band - 1) / band;
    // The x-pass's runs over the input row zero-padded to [lo, hi]: every column's taps unclipped.
    std::vector<sg::AxisTaps> ucols(p.zw);
    int64_t lo = 0, hi = p.inw - 1;
    for (int64_t i = 0; i < p.zw; i++) {
        ucols[i] = sg::upfirdn2d_axis_taps_unclipped(i, p.up, 1, p.padx0, p.fuw);
        if (ucols[i].n > 0) lo = std::min(lo, ucols[i].i0), hi = std::max(hi, ucols[i].i0 + ucols[i].n - 1);
    }
    for (sg::AxisTaps& t : ucols) t.i0 -= lo;
    std::vector<ColumnRun> runs = column_runs(ucols, p.up, 1);
    const ZLayout zl(p.zw, p.down);
    at::parallel_for(0, p.n * p.c * bands, 1, [&](int64_t begin, int64_t end) {
        FlreluScratch<S> w;
        for (int64_t task = begin; task < end; task++) {
            int64_t oy0 = (task % bands) * band, oy1 = std::min(p.outh, oy0 + band), nc = task / bands;
            int64_t c = nc % p.c, n = nc / p.c;
            int64_t zy0 = oy0 * p.down, nz = (oy1 - 1) * p.down + p.fdh - zy0;
            w.z.resize(nz * zl.stride);
            flrelu_z_band<S>(p, zl, x + n * p.xsn + c * p.xsc, b ? b[c] : (S)0, zy0, nz, zrows, zcols, runs, -lo,
                             hi - lo + 1, w);
            flrelu_down_band<S>(p, zl, nz, oy0, oy1, w, y + n * p.ysn + c * p.ysc);
        }
    });
}

torch::Tensor filtered_lrelu(torch::Tensor x, torch::Tensor fu, torch::Tensor fd, torch::Tensor b, int64_t up,
                             int64_t down, int64_t padx0, int64_t padx1, int64_t pady0, int64_t pady1, double gain,
                             double slope, double clamp, bool flip) {
    TORCH_CHECK(x.device().is_cpu(), "filtered_lrelu (cpu plugin): x must be a CPU tensor, got ", x.device());
    sg::check_filtered_lrelu_x(x);
    TORCH_CHECK(x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble,
                "filtered_lrelu (cpu plugin): x must be float32 or float64, got ", x.scalar_type());
    sg::FilteredLreluCall call =
        sg::filtered_lrelu_prepare(x, fu, fd, b, up, down, padx0, padx1, pady0, pady1, gain, slope, clamp, flip);
    if (call.y.numel() == 0) return call.y;
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "filtered_lrelu_cpu", [&] { filtered_lrelu_loop<scalar_t>(call.p); });
    return call.y;
}

}  // namespace

// winograd_cpu.cpp: the StyleGAN3 inference form's Winograd F(4x4, 3x3) transforms.
torch::Tensor winograd_f4_conv3x3(torch::Tensor x, torch::Tensor u, torch::Tensor u_packed, torch::Tensor s, torch::Tensor d,
                                  int64_t budget);
// gemm_cpu.cpp: the products' GEMM (torch's BLAS, or the plugin's own where that may be slow).
torch::Tensor cpu_matmul(torch::Tensor a, torch::Tensor b);
std::string set_cpu_gemm(const std::string& name);
std::string cpu_gemm();
torch::Tensor cpu_matmul_pack(torch::Tensor a);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("upfirdn2d", &upfirdn2d, "upsample, pad, FIR filter, downsample (NCHW)");
    m.def("upfirdn2d_out_size", &sg::upfirdn2d_out_size_checked, "output length of upfirdn2d along one axis");
    m.def("bias_act", &bias_act, "bias + activation + gain + clamp, or its derivatives");
    m.def("filtered_lrelu", &filtered_lrelu, "bias, upsample, FIR, lrelu * gain, clamp, FIR, downsample (fused)");
    m.def("winograd_f4_conv3x3", &winograd_f4_conv3x3, "padding-2 3x3 conv by Winograd F(4x4, 3x3), scaled per channel");
    m.def("matmul", &cpu_matmul, "a [B or 1, M, K] @ b [B, K, N], float32, by the GEMM set_cpu_gemm chose");
    m.def("matmul_pack", &cpu_matmul_pack, "a packed for matmul's GEMM, to keep (empty when torch's BLAS multiplies)");
    m.def("cpu_gemm", &cpu_gemm, "the products' GEMM now in use: plugin or torch");
    m.def("set_cpu_gemm", &set_cpu_gemm, "the products' GEMM: auto / plugin (our own) / torch (tests, benches)");
    m.def("set_row_isa", &set_row_isa, "the row loops (filtered_lrelu, Winograd): auto / avx512 / avx2 / base (same bits; tests, benches)");
}
