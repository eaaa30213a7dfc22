// CPU plugin only: the row loops compiled for AVX-512, AVX2 and baseline x86-64, the widest this
// CPU has chosen at load time (GCC target_clones). With -ffp-contract=off every clone computes the
// same bits: element by element, no FMA, no reassociation.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SG_X86_VARIANTS 1
#define SG_ROW_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SG_ROW_CLONES
#endif

namespace sg {
// The vector width of the loops written with GCC vectors (filtered_lrelu's FIR loops, the
// Winograd transforms): 0 = baseline x86-64 (16-byte vectors), 1 = AVX2 (32), 2 = AVX-512 (64).
// The widest this CPU has unless set_row_isa chose another (ops_cpu.cpp); every width computes
// the same bits.
int row_isa();
}  // namespace sg
