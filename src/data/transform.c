/*
 * transform.c — one sample to floats, with the loader's transforms: the geometric ones (random
 * shift by pad + crop, horizontal flip) pick which raw value lands where; the value ones
 * (scale, normalise) fold into one affine map a * raw + c; noise is added last.  Geometry acts on
 * the last two dims (H, W); leading dims (channels) share one shift and flip, as torchvision
 * does for a multi-channel image.
 *
 * Randomness: Philox with key (seed, epoch) and counter (block, sample index, stream), so a
 * sample's draws do not depend on which batch, thread or call order handles it.
 */
#include "internal.h"

#include <math.h>

static float unit_float(uint32_t r) { return (float)(r >> 8) * (1.0f / 16777216.0f); } /* [0,1) */

/* An integer in [0, m) from 32 random bits (Lemire's multiply-shift; bias below m / 2^32). */
static int64_t below(uint32_t r, uint64_t m) { return (int64_t)(((uint64_t)r * m) >> 32); }

/* out[k] += std * N(0, 1), by Box–Muller on Philox blocks of four 32-bit words. */
static void add_noise(float *out, int64_t m, float std, int64_t s, uint64_t key) {
    for (int64_t k = 0; k < m; k += 4) {
        uint32_t r[4];
        nb__philox4x32(r, (const uint32_t[4]){(uint32_t)(k / 4), (uint32_t)s,
                                              (uint32_t)((uint64_t)s >> 32), NB_STREAM_NOISE},
                       key);
        float z[4];
        for (int p = 0; p < 2; p++) {
            double u1 = ((double)(r[2 * p] >> 8) + 1.0) / 16777216.0; /* (0, 1]: log is finite */
            double u2 = (double)(r[2 * p + 1] >> 8) / 16777216.0;
            double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
            z[2 * p] = (float)(rad * cos(th));
            z[2 * p + 1] = (float)(rad * sin(th));
        }
        for (int j = 0; j < 4 && k + j < m; j++) out[k + j] += std * z[j];
    }
}

/* out = a x + c.  restrict tells the compiler the batch buffer and the data set do not overlap,
 * which it cannot prove, so the loops vectorise (a batch is 50 000 conversions a step). */
static void affine_u8(float *restrict out, const uint8_t *restrict x, int64_t m, float a, float c) {
    for (int64_t k = 0; k < m; k++) out[k] = a * (float)x[k] + c;
}

static void affine_f32(float *restrict out, const float *restrict x, int64_t m, float a, float c) {
    for (int64_t k = 0; k < m; k++) out[k] = a * x[k] + c;
}

void nb__transform_sample(const nb_transforms *t, const nb_dataset *ds, int64_t s, uint64_t key,
                          float *out) {
    int64_t m = ds->sample_numel;
    const uint8_t *xb = (const uint8_t *)ds->x + s * m;
    const float *xf = (const float *)ds->x + s * m;
    float a = t->scale ? 1.0f / 255.0f : 1.0f, c = 0.0f;
    if (t->std > 0) { /* (a raw - mean) / std */
        a /= t->std;
        c = -t->mean / t->std;
    }
    if (t->pad > 0 || t->hflip > 0) {
        uint32_t r[4];
        nb__philox4x32(r, (const uint32_t[4]){0, (uint32_t)s, (uint32_t)((uint64_t)s >> 32),
                                              NB_STREAM_GEOMETRY}, key);
        int64_t p = t->pad, dy = 0, dx = 0;
        if (p > 0) { /* torchvision's crop offset i in [0, 2p] on the padded image: dy = i - p */
            dy = below(r[0], (uint64_t)(2 * p + 1)) - p;
            dx = below(r[1], (uint64_t)(2 * p + 1)) - p;
        }
        bool flip = unit_float(r[2]) < t->hflip;
        int64_t h = ds->sample_shape[ds->sample_ndim - 2], w = ds->sample_shape[ds->sample_ndim - 1];
        for (int64_t plane = 0; plane < m / (h * w); plane++) {
            int64_t base = plane * h * w;
            for (int64_t y = 0; y < h; y++) {
                int64_t sy = y + dy;
                for (int64_t x = 0; x < w; x++) {
                    int64_t sx = (flip ? w - 1 - x : x) + dx;
                    float raw = 0.0f; /* the padding */
                    if (sy >= 0 && sy < h && sx >= 0 && sx < w)
                        raw = ds->is_u8 ? xb[base + sy * w + sx] : xf[base + sy * w + sx];
                    out[base + y * w + x] = a * raw + c;
                }
            }
        }
    } else if (ds->is_u8) {
        affine_u8(out, xb, m, a, c);
    } else {
        affine_f32(out, xf, m, a, c);
    }
    if (t->noise_std > 0) add_noise(out, m, t->noise_std, s, key);
}
