/*
 * half.c — rounding float32 to bfloat16 or float16 values kept in float32 (backend.h's
 * round_half), what autocast applies to the operands, results and gradients of matmul, linear
 * and conv.  Both round to nearest, ties to even, on the bits, as core/access.c's conversions
 * (nb_to_dtype) do for every finite value and infinity:
 *
 *   bfloat16 keeps float32's top 16 bits: add 0x7fff plus the lowest kept bit, clear the low
 *   16 (a carry into the exponent is the right rounding, up to Inf).
 *   float16 keeps 10 mantissa bits: the same on the low 13 bits while x is a normal float16;
 *   below 2^-14 its step is 2^-24 (subnormals), so x is rounded to a multiple of 2^-24; from
 *   65520 on (halfway between 65504, the largest, whose last bit is odd, and 65536) +-Inf.
 */
#include "cpu.h"

#include <math.h>
#include <string.h>

static inline uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float round_bf16(float x) {
    if (isnan(x)) return x;
    uint32_t u = bits_of(x);
    u += 0x7fffu + ((u >> 16) & 1u);
    return float_of(u & 0xffff0000u);
}

static inline float round_f16(float x) {
    float a = fabsf(x);
    if (isnan(x)) return x;
    if (a >= 65520.0f) return copysignf(INFINITY, x);
    if (a < 0x1p-14f) return copysignf(nearbyintf(a * 0x1p24f) * 0x1p-24f, x);
    uint32_t u = bits_of(x);
    u += 0xfffu + ((u >> 13) & 1u);
    return float_of(u & ~0x1fffu);
}

NB_CLONES static void round_loop(float *y, const float *x, int64_t n, bool bf16) {
    if (bf16)
        for (int64_t i = 0; i < n; i++) y[i] = round_bf16(x[i]);
    else
        for (int64_t i = 0; i < n; i++) y[i] = round_f16(x[i]);
}

void nb__cpu_round_half(float *y, const float *x, int64_t n, nb_dtype to) {
    round_loop(y, x, n, to == NB_BF16);
}
