/*
 * qconvert.c — the conversions around the int8 GEMM (contracts in backend.h): float32 to
 * uint8 / int8 codes (torch's quantize_per_tensor) and codes back to float32 (dequantize).
 * The convolution's im2row and its pool of codes are qconv.c's.
 */
#include "cpu.h"

#include <math.h>

/* torch's quantize_val: z + nearbyint(x * inv) with inv = 1.0f / scale, clamped to the dtype.
 * The clamp comes first (its bounds are integers, so the result is the same) so that a value
 * beyond int32 saturates instead of overflowing a conversion, and NaN goes to lo. */
NB_CLONES static void quantize_loop(void *y, const float *x, int64_t n, bool u8, float scale,
                                    int32_t zp) {
    float inv = 1.0f / scale;
    int32_t lo = u8 ? 0 : -128, hi = u8 ? 255 : 127;
    float vlo = (float)(lo - zp), vhi = (float)(hi - zp);
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] * inv;
        v = v > vlo ? v : vlo;
        v = v < vhi ? v : vhi;
        int32_t r = (int32_t)rintf(v) + zp;
        if (u8) ((uint8_t *)y)[i] = (uint8_t)r;
        else ((int8_t *)y)[i] = (int8_t)r;
    }
}

void nb__cpu_quantize(void *y, const float *x, int64_t n, nb_qout out, float scale,
                      int32_t zero_point) {
    quantize_loop(y, x, n, out == NB_QOUT_U8, scale, zero_point);
}

/* torch's dequantize: (q - z) * scale in float32 (q - z is exact) */
NB_CLONES static void dequantize_loop(float *y, const void *q, int64_t n, bool u8, float scale,
                                      int32_t zp) {
    for (int64_t i = 0; i < n; i++) {
        int32_t v = u8 ? ((const uint8_t *)q)[i] : ((const int8_t *)q)[i];
        y[i] = (float)(v - zp) * scale;
    }
}

void nb__cpu_dequantize(float *y, const void *q, int64_t n, nb_qout in, float scale,
                        int32_t zero_point) {
    dequantize_loop(y, q, n, in == NB_QOUT_U8, scale, zero_point);
}
