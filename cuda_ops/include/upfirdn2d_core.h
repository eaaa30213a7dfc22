// upfirdn2d kernel core: upsample by zero insertion, pad (negative = crop), FIR filter,
// downsample by keeping every `down`-th sample (NVIDIA stylegan2-ada `upfirdn2d` semantics).
//
// Per axis, output sample o reads the padded, upsampled signal at j = o*down + t for taps
// t in [0, taps). Only j with (j - pad0) divisible by `up` and (j - pad0)/up inside the input are
// non-zero, so each output sees the polyphase subset of taps t = t0 + k*up, k < n, reading input
// samples i0 + k. `upfirdn2d_axis_taps` gives (i0, t0, n) in closed form; every driver sums a
// pixel's taps in the same order -- rows (ty) ascending, then columns (tx) ascending -- into an
// accumulator starting at 0, and multiplies by gain last, so all plugins round alike.
#pragma once

#include "sg_hd.h"

namespace sg {

// Output length along one axis; Python floor semantics, may be <= 0 (caller checks).
SG_HD int64_t upfirdn2d_out_size(int64_t in, int64_t up, int64_t down, int64_t pad0,
                                 int64_t pad1, int64_t taps) {
    return floor_div(in * up + pad0 + pad1 - taps, down) + 1;
}

// The non-zero taps of output sample o along one axis: input i0 + k pairs with tap t0 + k*up.
struct AxisTaps {
    int64_t i0;  // first input sample read
    int t0;      // tap index (in the correlation filter F) paired with i0
    int n;       // number of non-zero taps (0 when the window sees only padding)
};

// The taps of output o as if the input were zero-extended without end on both sides: i0 may be
// negative and i0 + n may pass the input's end. Drivers that zero-pad a copy of the input use it.
SG_HD AxisTaps upfirdn2d_axis_taps_unclipped(int64_t o, int up, int down, int pad0, int taps) {
    int64_t q = o * down - pad0;                // input position * up of tap 0
    int64_t ilo = floor_div(q + up - 1, up);    // ceil(q / up)
    int64_t ihi = floor_div(q + taps - 1, up);  // floor((q + taps - 1) / up)
    AxisTaps r;
    r.i0 = ilo;
    r.n = ihi >= ilo ? (int)(ihi - ilo + 1) : 0;
    r.t0 = r.n > 0 ? (int)(ilo * up - q) : 0;
    return r;
}

// The non-zero taps of output o: the unclipped ones restricted to inputs [0, in).
SG_HD AxisTaps upfirdn2d_axis_taps(int64_t o, int up, int down, int pad0, int64_t in, int taps) {
    AxisTaps r = upfirdn2d_axis_taps_unclipped(o, up, down, pad0, taps);
    int64_t ilo = r.i0 < 0 ? 0 : r.i0;
    int64_t ihi = r.i0 + r.n - 1 > in - 1 ? in - 1 : r.i0 + r.n - 1;
    r.t0 = ihi >= ilo ? r.t0 + (int)(ilo - r.i0) * up : 0;
    r.n = ihi >= ilo ? (int)(ihi - ilo + 1) : 0;
    r.i0 = ilo;
    return r;
}

// Index into the row-major [fh, fw] filter f of correlation tap F[ty][tx]: F is f rotated by 180
// degrees (true convolution) unless flip.
SG_HD int upfirdn2d_filter_index(int ty, int tx, int fh, int fw, bool flip) {
    return flip ? ty * fw + tx : (fh - 1 - ty) * fw + (fw - 1 - tx);
}

// One output pixel before gain. x points at the (n, c) plane; sy/sx are its row/column strides;
// f is the row-major [fh, fw] filter as given (oriented through upfirdn2d_filter_index).
template <typename A, typename T, typename FT>
SG_HD A upfirdn2d_pixel(const T* x, int64_t sy, int64_t sx, const FT* f, int fh, int fw, bool flip,
                        AxisTaps ty, AxisTaps tx, int upy, int upx) {
    A acc = 0;
    for (int a = 0; a < ty.n; a++) {
        const T* row = x + (ty.i0 + a) * sy;
        int t_y = ty.t0 + a * upy;
        for (int b = 0; b < tx.n; b++)
            acc += (A)f[upfirdn2d_filter_index(t_y, tx.t0 + b * upx, fh, fw, flip)] *
                   (A)row[(tx.i0 + b) * sx];
    }
    return acc;
}

// Vector form of upfirdn2d_pixel for a run of n pixels that share one tap pattern, taking up to
// a few filter rows at a time (acc starts at 0 before the first call). For m < n:
//   acc[m] += w[0][0] * rows[0][m*s] + w[0][1] * rows[0][m*s + ts] + ... (row 0, columns in order)
//           + w[1][0] * rows[1][m*s] + ...                               (then row 1, ...)
// summed left to right: calling it on consecutive groups of filter rows, in order, gives each
// acc[m] exactly the sums of upfirdn2d_pixel. The CPU driver uses this form; the fixed-size
// branches keep the sum in registers and let the compiler vectorize over m.
template <int NY, int NX, int S, typename A, typename T>
SG_HD void upfirdn2d_block_fixed(A* __restrict__ acc, int64_t n, const A* __restrict__ w,
                                 const T* const* rows) {
    A wk[NY * NX];
    const T* r[NY];
    for (int k = 0; k < NY * NX; k++) wk[k] = w[k];
    for (int k = 0; k < NY; k++) r[k] = rows[k];
    for (int64_t m = 0; m < n; m++) {
        A a = acc[m];
        for (int ky = 0; ky < NY; ky++)
            for (int kx = 0; kx < NX; kx++) a += wk[ky * NX + kx] * (A)r[ky][m * S + kx];
        acc[m] = a;
    }
}

template <typename A, typename T>
SG_HD void upfirdn2d_block(A* __restrict__ acc, int64_t n, const A* __restrict__ w, int ny, int nx,
                           const T* const* rows, int64_t s, int64_t ts) {
    // Short runs (image borders) take the plain loop: the vector set-up would cost more.
    if (n >= 4 && ts == 1 && ny >= 1 && ny <= 4 && nx >= 1 && nx <= 8 && (s == 1 || s == 2)) {
#define SG_BLOCK_CASE(NY, NX)                                                        \
    case NY * 10 + NX:                                                               \
        if (s == 1) return upfirdn2d_block_fixed<NY, NX, 1>(acc, n, w, rows); \
        return upfirdn2d_block_fixed<NY, NX, 2>(acc, n, w, rows);
#define SG_BLOCK_ROW(NY)                                                                 \
    SG_BLOCK_CASE(NY, 1) SG_BLOCK_CASE(NY, 2) SG_BLOCK_CASE(NY, 3) SG_BLOCK_CASE(NY, 4) \
    SG_BLOCK_CASE(NY, 5) SG_BLOCK_CASE(NY, 6) SG_BLOCK_CASE(NY, 7) SG_BLOCK_CASE(NY, 8)
        switch (ny * 10 + nx) {
            SG_BLOCK_ROW(1) SG_BLOCK_ROW(2) SG_BLOCK_ROW(3) SG_BLOCK_ROW(4)
            default: break;
        }
#undef SG_BLOCK_ROW
#undef SG_BLOCK_CASE
    }
    for (int64_t m = 0; m < n; m++) {
        A a = acc[m];
        for (int ky = 0; ky < ny; ky++)
            for (int kx = 0; kx < nx; kx++) a += w[ky * nx + kx] * (A)rows[ky][m * s + kx * ts];
        acc[m] = a;
    }
}

// Channels-innermost form: one tap for a run of channels, acc[m] += w * x[m*s].
template <typename A, typename T>
SG_HD void upfirdn2d_axpy(A* __restrict__ acc, int64_t n, A w, const T* __restrict__ x,
                          int64_t s) {
    if (s == 1) {
        for (int64_t m = 0; m < n; m++) acc[m] += w * (A)x[m];
    } else {
        for (int64_t m = 0; m < n; m++) acc[m] += w * (A)x[m * s];
    }
}

// Finish a pixel: apply gain once, after all taps.
template <typename A>
SG_HD A upfirdn2d_finish(A acc, A gain) {
    return acc * gain;
}

// out[m*s] = acc[m] * gain for a run of pixels.
template <typename T, typename A>
SG_HD void upfirdn2d_store(T* __restrict__ out, int64_t n, int64_t s, const A* __restrict__ acc,
                           A gain) {
    if (s == 1) {
        for (int64_t m = 0; m < n; m++) out[m] = (T)upfirdn2d_finish(acc[m], gain);
    } else {
        for (int64_t m = 0; m < n; m++) out[m * s] = (T)upfirdn2d_finish(acc[m], gain);
    }
}

// Launch parameters shared by the drivers (plain data; strides in elements).
struct Upfirdn2dParams {
    const void* x;
    const void* f;
    void* y;
    int64_t n, c, inh, inw, outh, outw;
    int64_t xsn, xsc, xsh, xsw;  // input strides
    int64_t ysn, ysc, ysh, ysw;  // output strides
    int upx, upy, downx, downy, padx0, pady0;
    int fh, fw;
    bool flip;
    double gain;
};

}  // namespace sg
