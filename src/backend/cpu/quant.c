/*
 * quant.c — the CPU backend's fake-quantization kernels (ops/quant.c), float for float the
 * arithmetic of torch 1.13's CPU kernels (aten/src/ATen/native/quantized/cpu/kernels/
 * QuantizedOpKernels.cpp): inv = 1.0f / scale in float, nearbyint in the current rounding mode
 * (ties to even), and
 *
 *   forward   q = z + nearbyint(x inv)           y = (clamp(q, qmin, qmax) - z) scale
 *
 * where torch holds q in an int64 and nabla in a float: the two agree wherever torch's cast is
 * defined (|q| < 2^63); a NaN x gives qmin, as torch's cast does on x86-64, and an infinite one
 * saturates.  (clamp(q) - z) is a whole number below 2^24, so its product with the scale is
 * rounded once, as torch's product in double then stored as float is.
 */
#include "cpu.h"

#include <math.h>

static inline float clampf(float v, float lo, float hi) { return fminf(fmaxf(v, lo), hi); }

/* The zero point a rule uses, from the float one (the forward's rounding is a no-op on the
 * whole zero points of the non-learnable ops, which the op has checked). */
static inline float zero_point_of(float zp, float qmin, float qmax, nb_fq_rule rule) {
    if (rule == NB_FQ_LSQ_TENSOR) return truncf(clampf(zp + 0.5f, qmin, qmax));
    return clampf(nearbyintf(zp), qmin, qmax);
}

void nb__cpu_fake_quant(float *y, const float *x, const float *scale, const float *zp,
                        int64_t outer, int64_t channels, int64_t inner, int64_t qmin,
                        int64_t qmax) {
    float lo = (float)qmin, hi = (float)qmax;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < channels; c++) {
            float s = scale[c], inv = 1.0f / s, z = zero_point_of(zp[c], lo, hi, NB_FQ_AFFINE);
            int64_t at = (o * channels + c) * inner;
            for (int64_t i = at; i < at + inner; i++)
                y[i] = (clampf(z + nearbyintf(x[i] * inv), lo, hi) - z) * s;
        }
}

void nb__cpu_fake_quant_mask(float *mask, float *k, const float *x, const float *scale,
                             const float *zp, int64_t outer, int64_t channels, int64_t inner,
                             int64_t qmin, int64_t qmax, nb_fq_rule rule) {
    float lo = (float)qmin, hi = (float)qmax;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < channels; c++) {
            float inv = 1.0f / scale[c], z = zero_point_of(zp[c], lo, hi, rule);
            int64_t at = (o * channels + c) * inner;
            for (int64_t i = at; i < at + inner; i++) {
                float q = rule == NB_FQ_AFFINE ? z + nearbyintf(x[i] * inv)
                                               : nearbyintf(z + x[i] * inv);
                mask[i] = (lo <= q && q <= hi) ? 1.0f : 0.0f;
                if (k) k[i] = clampf(q, lo, hi) - z;
            }
        }
}
