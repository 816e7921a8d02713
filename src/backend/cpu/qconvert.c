/*
 * qconvert.c — the conversions around the int8 GEMM (contracts in backend.h): float32 to
 * uint8 / int8 codes (torch's quantize_per_tensor), codes back to float32 (dequantize), and
 * im2col over uint8 images.  im2col pads with the zero point's code, so that a padded tap
 * contributes (z - z) w = 0 as a zero does in the float convolution, and writes each code
 * minus 128 as an int8: the convolution's GEMM w col(x) then runs as uint8 x int8 with the
 * weights in A (shifted up by 128) and the image in B, since (x - zx)(w - zw) =
 * ((w + 128) - (zw + 128)) ((x - 128) - (zx - 128)), and its result lands in NCHW order.
 * A max pool of codes is the max pool of the values they stand for (the map is increasing),
 * so a pool after a quantized convolution runs on its uint8 codes, straight from the rows the
 * requantization wrote.
 */
#include "cpu.h"

#include <math.h>
#include <string.h>

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

/* One row of col: d[j] = s[j sw + off] ^ 0x80 where that lies in [0, w), pad elsewhere.  The
 * valid cells are found once, so the copy itself is a plain (vectorised) loop. */
NB_CLONES static void shifted_row(uint8_t *restrict d, const uint8_t *restrict s, int64_t ow,
                                  int64_t sw, int64_t off, int64_t w, uint8_t pad) {
    int64_t j0 = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int64_t j1 = w - 1 - off < 0 ? 0 : (w - 1 - off) / sw + 1;
    j0 = j0 < ow ? j0 : ow;
    j1 = j1 < ow ? j1 : ow;
    j1 = j1 > j0 ? j1 : j0;
    memset(d, pad, (size_t)j0);
    memset(d + j1, pad, (size_t)(ow - j1));
    if (sw == 1) {
        const uint8_t *src = s + off;
        for (int64_t j = j0; j < j1; j++) d[j] = src[j] ^ 0x80;
    } else {
        for (int64_t j = j0; j < j1; j++) d[j] = s[j * sw + off] ^ 0x80;
    }
}

/* The stride-1 path: the image padded once into ws (codes ^ 0x80, pad around), then each row
 * of col, oh rows of wq = wp cells, is one contiguous stretch of it. */
static void im2col_wide(uint8_t *col, uint8_t *ws, const uint8_t *x, uint8_t pad,
                        const nb_conv2d_geom *g) {
    int64_t wq = nb__im2col_u8s8_width(g), hp = g->oh + (g->kh - 1) * g->dh, plane = hp * wq;
    for (int64_t ci = 0; ci < g->c; ci++)
        for (int64_t r = 0; r < hp; r++) {
            int64_t src = r - g->ph;
            uint8_t *d = ws + ci * plane + r * wq;
            if (src < 0 || src >= g->h) memset(d, pad, (size_t)wq);
            else shifted_row(d, x + (ci * g->h + src) * g->w, wq, 1, -g->pw, g->w, pad);
        }
    memset(ws + g->c * plane, pad, (size_t)((g->kw - 1) * g->dw)); /* read by the last cells */
    int64_t len = g->oh * wq;
    for (int64_t ci = 0; ci < g->c; ci++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++, col += len)
                memcpy(col, ws + ci * plane + ki * g->dh * wq + kj * g->dw, (size_t)len);
}

void nb__cpu_im2col_u8s8(int8_t *col_s8, uint8_t *ws, const uint8_t *x, uint8_t pad,
                         const nb_conv2d_geom *g) {
    uint8_t *col = (uint8_t *)col_s8;
    pad ^= 0x80;
    if (g->sh == 1 && g->sw == 1) {
        im2col_wide(col, ws, x, pad, g);
        return;
    }
    /* row (ci, ki, kj), cell (i, j) reads pixel (i sh - ph + ki dh, j sw - pw + kj dw) */
    int64_t cells = g->oh * g->ow;
    for (int64_t ci = 0; ci < g->c; ci++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++, col += cells) {
                const uint8_t *xc = x + ci * g->h * g->w;
                for (int64_t i = 0; i < g->oh; i++) {
                    int64_t r = i * g->sh - g->ph + ki * g->dh;
                    uint8_t *d = col + i * g->ow;
                    if (r < 0 || r >= g->h) memset(d, pad, (size_t)g->ow);
                    else shifted_row(d, xc + r * g->w, g->ow, g->sw, kj * g->dw - g->pw, g->w, pad);
                }
            }
}

/* The 2x2 pool of stride 2 without padding (LeNet's, the usual one): windows inside the plane,
 * whose maxima over two rows vectorise. */
NB_CLONES static void max_pool_2x2(uint8_t *restrict y, const uint8_t *restrict x, int64_t ldx,
                                   const nb_pool2d_geom *g) {
    for (int64_t p = 0; p < g->planes; p++)
        for (int64_t i = 0; i < g->oh; i++, y += g->ow) {
            const uint8_t *r0 = x + (p * g->h + 2 * i) * ldx, *r1 = r0 + ldx;
            for (int64_t j = 0; j < g->ow; j++) {
                uint8_t a = r0[2 * j] > r0[2 * j + 1] ? r0[2 * j] : r0[2 * j + 1];
                uint8_t b = r1[2 * j] > r1[2 * j + 1] ? r1[2 * j] : r1[2 * j + 1];
                y[j] = a > b ? a : b;
            }
        }
}

/* y [planes, oh, ow] = the largest code of each window of x's planes [h, w] (row stride ldx,
 * plane stride h ldx), the window clipped to the plane (a padded tap is never the largest). */
void nb__cpu_max_pool2d_u8(uint8_t *y, const uint8_t *x, int64_t ldx, const nb_pool2d_geom *g) {
    if (g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 &&
        2 * g->oh <= g->h && 2 * g->ow <= g->w) {
        max_pool_2x2(y, x, ldx, g);
        return;
    }
    for (int64_t p = 0; p < g->planes; p++) {
        const uint8_t *xp = x + p * g->h * ldx;
        for (int64_t i = 0; i < g->oh; i++) {
            int64_t r0 = i * g->sh - g->ph, r1 = r0 + g->kh;
            r0 = r0 > 0 ? r0 : 0;
            r1 = r1 < g->h ? r1 : g->h;
            for (int64_t j = 0; j < g->ow; j++, y++) {
                int64_t c0 = j * g->sw - g->pw, c1 = c0 + g->kw;
                c0 = c0 > 0 ? c0 : 0;
                c1 = c1 < g->w ? c1 : g->w;
                uint8_t m = 0;
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t c = c0; c < c1; c++) m = xp[r * ldx + c] > m ? xp[r * ldx + c] : m;
                *y = m;
            }
        }
    }
}
