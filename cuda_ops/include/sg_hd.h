// SG_HD marks the kernel core: plain scalar maths compiled for the host (g++) and, under nvcc,
// for the device too. This header and the *_core.h ones hold no torch or CUDA types, so the same
// source is the CPU plugin's and the CUDA plugin's arithmetic (driver_common.h, the drivers'
// shared torch-side code, is the one header here that uses torch; the .cu never includes it).
#pragma once

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define SG_HD __host__ __device__ inline
#else
#define SG_HD inline
#endif

namespace sg {

// One spelling of exp/log per precision: the C library's on the host, CUDA's on the device.
SG_HD float sg_exp(float x) { return expf(x); }
SG_HD double sg_exp(double x) { return exp(x); }
SG_HD float sg_log(float x) { return logf(x); }
SG_HD double sg_log(double x) { return log(x); }

// Python-style floor division for b > 0.
SG_HD int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

}  // namespace sg
