// CPU plugin only: the hot row loops are compiled for AVX-512, AVX2 and baseline x86-64 (GCC
// target attributes, no -march: a cached build runs on any x86-64), and `sg::row_isa` chooses
// which runs. With -ffp-contract=off every variant computes the same bits: element by element,
// no FMA, no reassociation.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SG_X86_VARIANTS 1
// In a loop's dispatcher: return fn_avx512 args or fn_avx2 args as row_isa() chooses; for the
// baseline variant (and off x86-64 GCC) fall through to the code after it.
#define SG_ISA_DISPATCH(fn, args)               \
    switch (sg::row_isa()) {                    \
        case 2: return fn##_avx512 args;        \
        case 1: return fn##_avx2 args;          \
        default: break;                         \
    }
#else
#define SG_ISA_DISPATCH(fn, args)
#endif

namespace sg {
// The variant of the row loops (filtered_lrelu's FIR and elementwise loops, the Winograd
// transforms): 0 = baseline x86-64 (16-byte vectors), 1 = AVX2 (32), 2 = AVX-512 (64). The
// widest this CPU has unless set_row_isa chose another (ops_cpu.cpp, STYLEGEN_CPU_ISA); every
// variant computes the same bits.
int row_isa();
}  // namespace sg
