/*
 * dispatch.h — choosing kernels by the CPU's features at run time.
 *
 * The library is compiled for the architecture's baseline (x86-64: SSE2), so that a built
 * binary runs on any machine of it.  Hot loops get versions for wider vectors in two ways:
 *
 *   NB_CLONES before a function: the compiler emits an AVX-512, an AVX2 and a baseline version
 *   of it, and the loader binds the best one the CPU has on first call (GNU ifunc).  Only the
 *   vector width changes: -ffp-contract=off keeps every version's rounding that of the C text.
 *
 *   nb__cpu_isa(): for code written with intrinsics under __attribute__((target(..))), the
 *   best instruction set found once from cpuid (which valgrind, for one, reports without
 *   AVX-512), and that can be lowered for tests and comparisons with NB_CPU_ISA=avx2 or
 *   NB_CPU_ISA=baseline in the environment.
 */
#ifndef NB_CPU_DISPATCH_H
#define NB_CPU_DISPATCH_H

#include <stdbool.h>

#if defined(__x86_64__) && !defined(__AVX512F__) && defined(__GNUC__) && \
    (!defined(__clang__) || __clang_major__ >= 14) && !defined(__SANITIZE_ADDRESS__)
#define NB_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NB_CLONES
#endif

typedef enum { NB_ISA_BASELINE, NB_ISA_AVX2, NB_ISA_AVX512 } nb_isa;

nb_isa nb__cpu_isa(void);
/* AVX-512 VNNI (vpdpbusd, the int8 GEMM of qgemm_avx512.c); false unless nb__cpu_isa() is
 * NB_ISA_AVX512, so that NB_CPU_ISA=avx2 or baseline turns it off too. */
bool nb__cpu_has_vnni(void);
/* "AVX-512" etc.: what nb_backend_info reports */
const char *nb__cpu_features(void);

#endif
