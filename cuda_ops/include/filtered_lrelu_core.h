// filtered_lrelu kernel core: bias, upsample (polyphase), FIR filter fu times up**2, lrelu * gain,
// clamp, FIR filter fd, keep every `down`-th pixel (NVIDIA stylegan3 `filtered_lrelu` semantics,
// ../../docs/ops.md "filtered_lrelu").
//
// Let z be the activated intermediate image: z[zy][zx] = act(up**2 * sum F_u[t] * (x + b)), the
// sum over the polyphase taps of upfirdn2d(up, down 1, pad0) at (zy, zx) (upfirdn2d_axis_taps:
// the zero-inserted image is never formed). Output (oy, ox) = sum F_d[a][k] * z[oy*down + a][ox*down + k]
// over the whole fd window, which the output size keeps inside z. Every sum is nested row by
// row: a row's taps (k ascending) into h, then the rows (a ascending) into acc -- times the row's
// 1-D tap for a separable (1-D) filter, as is for a 2-D one. The CPU driver, which keeps a band of
// z (and, for a separable fu, the horizontally filtered input rows) in buffers, and the CUDA
// kernel, which recomputes z per output pixel, both sum through these functions in this order.
#pragma once

#include "bias_act_core.h"
#include "sg_hd.h"
#include "upfirdn2d_core.h"

namespace sg {

// Index into a 1-D [taps] filter of correlation tap t: reversed (true convolution) unless flip.
SG_HD int flrelu_tap(int t, int taps, bool flip) { return flip ? t : taps - 1 - t; }

// Row r of the correlation filter: a 1-D filter is its own row; row r of a 2-D [fh, fw] filter
// is row flrelu_tap(r, fh) of f (its columns are then indexed through flrelu_tap(k, fw)).
template <typename FT>
SG_HD const FT* flrelu_row(const FT* f, int r, int fh, int fw, bool sep, bool flip) {
    return sep ? f : f + flrelu_tap(r, fh, flip) * fw;
}

// One row of taps: sum_k F[t.t0 + k*up] * (x[(t.i0 + k) * s] + b), k ascending (b = 0: fd's rows).
template <bool BIAS, typename A, typename T, typename FT>
SG_HD A flrelu_dot(const T* x, int64_t s, A b, const FT* frow, int taps, bool flip, AxisTaps t, int up) {
    A acc = 0;
    for (int k = 0; k < t.n; k++) {
        A v = (A)x[(t.i0 + k) * s];
        if (BIAS) v += b;
        acc += (A)frow[flrelu_tap(t.t0 + k * up, taps, flip)] * v;
    }
    return acc;
}

// Add row r's sum h to acc: weighted by the 1-D tap F[r] when separable, as is for a 2-D filter.
template <typename A, typename FT>
SG_HD A flrelu_add_row(A acc, A h, const FT* f, int r, int taps, bool sep, bool flip) {
    return sep ? acc + (A)f[flrelu_tap(r, taps, flip)] * h : acc + h;
}

// The zero insertion keeps 1 / up**2 of the samples: the gain up**2 restores the level (once, last).
template <typename A>
SG_HD A flrelu_up_gain(A acc, int up) {
    return acc * (A)(up * up);
}

// Pre-activation z at one position from x: ty/tx are upfirdn2d_axis_taps(z, up, 1, pad0, in, taps).
template <typename A, typename T, typename FT>
SG_HD A flrelu_up(const T* plane, int64_t sy, int64_t sx, A b, const FT* f, int fh, int fw, bool sep, bool flip,
                  AxisTaps ty, AxisTaps tx, int up) {
    A acc = 0;
    for (int a = 0; a < ty.n; a++) {
        int r = ty.t0 + a * up;
        A h = flrelu_dot<true, A>(plane + (ty.i0 + a) * sy, sx, b, flrelu_row(f, r, fh, fw, sep, flip), fw, flip,
                                  tx, up);
        acc = flrelu_add_row(acc, h, f, r, fh, sep, flip);
    }
    return flrelu_up_gain(acc, up);
}

// Pre-activation z from rows already filtered along x by a separable fu (h[i * s] = input row
// i0 + i's flrelu_dot at this column): the second half of flrelu_up's sum, the same arithmetic.
template <typename A, typename FT>
SG_HD A flrelu_up_rows(const A* h, int64_t s, const FT* f, int taps, bool flip, AxisTaps ty, int up) {
    A acc = 0;
    for (int a = 0; a < ty.n; a++) acc = flrelu_add_row(acc, h[(ty.i0 + a) * s], f, ty.t0 + a * up, taps, true, flip);
    return flrelu_up_gain(acc, up);
}

// lrelu(z) * gain, then the clamp (clamp < 0: none): bias_act's lrelu, element by element.
template <typename A>
SG_HD A flrelu_act(A z, A gain, A slope, A clamp) {
    return bias_act_elem<A, 3, 0>(z, (A)0, (A)0, (A)0, (A)1, slope, gain, clamp);
}

// Launch parameters shared by the drivers (plain data; strides in elements). Filters are
// contiguous; a 1-D filter has fh = fw = taps and sep = true. b is null when absent.
struct FilteredLreluParams {
    const void* x;
    const void* fu;
    const void* fd;
    const void* b;
    void* y;
    int64_t n, c, inh, inw;
    int64_t zh, zw;      // the intermediate (up-filtered, activated) image's size
    int64_t outh, outw;
    int64_t xsn, xsc, xsh, xsw;  // input strides
    int64_t ysn, ysc, ysh, ysw;  // output strides
    int up, down, padx0, pady0;
    int fuh, fuw, fdh, fdw;
    bool fu_sep, fd_sep, flip;
    double gain, slope, clamp;
};

// The down filter's window along one axis: output o reads z samples o*down + k, k < taps.
SG_HD AxisTaps flrelu_down_taps(int64_t o, int down, int taps) {
    AxisTaps t;
    t.i0 = o * down;
    t.t0 = 0;
    t.n = taps;
    return t;
}

// One output pixel, z recomputed on the fly (the CUDA kernel's form). plane: x at (n, c).
template <typename A, typename T, typename FT>
SG_HD A flrelu_pixel(const FilteredLreluParams& p, const T* plane, A b, int64_t oy, int64_t ox) {
    const FT* fu = static_cast<const FT*>(p.fu);
    const FT* fd = static_cast<const FT*>(p.fd);
    const A gain = (A)p.gain, slope = (A)p.slope, clamp = (A)p.clamp;
    A acc = 0;
    for (int a = 0; a < p.fdh; a++) {
        AxisTaps ty = upfirdn2d_axis_taps(oy * p.down + a, p.up, 1, p.pady0, p.inh, p.fuh);
        const FT* drow = flrelu_row(fd, a, p.fdh, p.fdw, p.fd_sep, p.flip);
        A h = 0;
        for (int k = 0; k < p.fdw; k++) {
            AxisTaps tx = upfirdn2d_axis_taps(ox * p.down + k, p.up, 1, p.padx0, p.inw, p.fuw);
            A z = flrelu_up<A>(plane, p.xsh, p.xsw, b, fu, p.fuh, p.fuw, p.fu_sep, p.flip, ty, tx, p.up);
            h += (A)drow[flrelu_tap(k, p.fdw, p.flip)] * flrelu_act(z, gain, slope, clamp);
        }
        acc = flrelu_add_row(acc, h, fd, a, p.fdh, p.fd_sep, p.flip);
    }
    return acc;
}

}  // namespace sg
