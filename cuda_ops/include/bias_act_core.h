// bias_act kernel core: bias add + activation + gain + clamp, and the activation's first and
// second derivatives (NVIDIA stylegan2-ada `bias_act` plugin semantics, element by element).
//
// Activation codes: 1 linear, 2 relu, 3 lrelu, 4 tanh, 5 sigmoid, 6 elu, 7 selu, 8 softplus,
// 9 swish. Derivative order G: 0 forward, 1 first, 2 second; derivatives are expressed through
// the forward output yref (or the forward input xref for swish), as in NVIDIA's kernel. Absent
// tensors are passed as their neutral values: b = xref = yref = 0, dy = 1.
#pragma once

#include "sg_hd.h"

namespace sg {

template <typename S, int A, int G>
SG_HD S bias_act_elem(S x, S b, S xref, S yref, S dy, S alpha, S gain, S clamp) {
    S yy = (gain != 0) ? yref / gain : (S)0;
    S y = 0;
    if (G == 0) x += b; else xref += b;

    if (A == 1) {  // linear
        if (G == 0) y = x;
        if (G == 1) y = x;
    }
    if (A == 2) {  // relu
        if (G == 0) y = (x > 0) ? x : (S)0;
        if (G == 1) y = (yy > 0) ? x : (S)0;
    }
    if (A == 3) {  // lrelu; x * alpha computed unconditionally so compilers can use a select
        S xa = x * alpha;
        if (G == 0) y = (x > 0) ? x : xa;
        if (G == 1) y = (yy > 0) ? x : xa;
    }
    if (A == 4) {  // tanh
        if (G == 0) { S c = sg_exp(x); S d = 1 / c; y = (x < -80) ? (S)-1 : (x > 80) ? (S)1 : (c - d) / (c + d); }
        if (G == 1) y = x * (1 - yy * yy);
        if (G == 2) y = x * (1 - yy * yy) * (-2 * yy);
    }
    if (A == 5) {  // sigmoid
        if (G == 0) y = (x < -80) ? (S)0 : 1 / (sg_exp(-x) + 1);
        if (G == 1) y = x * yy * (1 - yy);
        if (G == 2) y = x * yy * (1 - yy) * (1 - 2 * yy);
    }
    if (A == 6) {  // elu
        if (G == 0) y = (x >= 0) ? x : sg_exp(x) - 1;
        if (G == 1) y = (yy >= 0) ? x : x * (yy + 1);
        if (G == 2) y = (yy >= 0) ? (S)0 : x * (yy + 1);
    }
    if (A == 7) {  // selu
        const S s = (S)1.0507009873554804934193349852946;
        const S a = (S)1.6732632423543772848170429916717;
        if (G == 0) y = (x >= 0) ? s * x : (s * a) * (sg_exp(x) - 1);
        if (G == 1) y = (yy >= 0) ? x * s : x * (yy + s * a);
        if (G == 2) y = (yy >= 0) ? (S)0 : x * (yy + s * a);
    }
    if (A == 8) {  // softplus
        if (G == 0) y = (x > 80) ? x : sg_log(sg_exp(x) + 1);
        if (G == 1) y = x * (1 - sg_exp(-yy));
        if (G == 2) { S c = sg_exp(-yy); y = x * c * (1 - c); }
    }
    if (A == 9) {  // swish
        if (G == 0) {
            y = (x < -80) ? (S)0 : x / (sg_exp(-x) + 1);
        } else {
            S c = sg_exp(xref);
            S d = c + 1;
            if (G == 1) y = (xref > 40) ? x : x * c * (xref + d) / (d * d);
            else y = (xref > 40) ? (S)0 : x * c * (xref * (2 - d) + 2 * d) / (d * d * d);
        }
    }

    y *= gain * dy;
    if (clamp >= 0) {
        if (G == 0) y = (y > -clamp && y < clamp) ? y : (y >= 0) ? clamp : -clamp;
        else y = (yref > -clamp && yref < clamp) ? y : (S)0;
    }
    return y;
}

// Runtime-dispatched form (same arithmetic) for kernels that take act/grad as arguments.
template <typename S, int A>
SG_HD S bias_act_elem_g(int grad, S x, S b, S xref, S yref, S dy, S alpha, S gain, S clamp) {
    if (grad == 0) return bias_act_elem<S, A, 0>(x, b, xref, yref, dy, alpha, gain, clamp);
    if (grad == 1) return bias_act_elem<S, A, 1>(x, b, xref, yref, dy, alpha, gain, clamp);
    return bias_act_elem<S, A, 2>(x, b, xref, yref, dy, alpha, gain, clamp);
}

template <typename S>
SG_HD S bias_act_elem_rt(int act, int grad, S x, S b, S xref, S yref, S dy, S alpha, S gain,
                         S clamp) {
    switch (act) {
        case 1: return bias_act_elem_g<S, 1>(grad, x, b, xref, yref, dy, alpha, gain, clamp);
        case 2: return bias_act_elem_g<S, 2>(grad, x, b, xref, yref, dy, alpha, gain, clamp);
        case 3: return bias_act_elem_g<S, 3>(grad, x, b, xref, yref, dy, alpha, gain, clamp);
        case 4: return bias_act_elem_g<S, 4>(grad, x, b, xref, yref, dy, alpha, gain, clamp);
        case 5: return bias_act_elem_g<S, 5>(grad, x, b, xref, yref, dy, alpha, gain, clamp);
        case 6: return bias_act_elem_g<S, 6>(grad, x, b, xref, yref, dy, alpha, gain, clamp);
        case 7: return bias_act_elem_g<S, 7>(grad, x, b, xref, yref, dy, alpha, gain, clamp);
        case 8: return bias_act_elem_g<S, 8>(grad, x, b, xref, yref, dy, alpha, gain, clamp);
        default: return bias_act_elem_g<S, 9>(grad, x, b, xref, yref, dy, alpha, gain, clamp);
    }
}

// Bias index of memory element xi for a dense layout: (xi / stride(dim)) % size(dim).
SG_HD int64_t bias_act_bias_index(int64_t xi, int64_t step, int64_t size) {
    return (xi / step) % size;
}

// Launch parameters shared by the drivers (plain data; absent tensors are null pointers).
struct BiasActParams {
    const void* x;
    const void* b;
    const void* xref;
    const void* yref;
    const void* dy;
    void* y;
    int64_t numel;
    int64_t step_b;  // x.stride(dim)
    int64_t size_b;  // x.size(dim)
    int grad, act;
    double alpha, gain, clamp;
};

}  // namespace sg
