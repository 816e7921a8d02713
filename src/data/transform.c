/*
 * transform.c — one sample to floats, with the loader's transforms.  The geometric ones decide
 * which raw values land where; the value ones (scale, normalise) fold into one affine map
 * a * raw + c; noise is added after, then the user's transforms.
 *
 * Geometry acts on the last two dims (H, W), one plane at a time; leading dims (channels) share
 * one draw, as torchvision does for a multi-channel image.  Steps 1-3 (resized crop, shift,
 * flip) are one pass: each output pixel finds its place in the crop box by integer shift and
 * mirror, then samples the raw image there (bilinear when the box is resized).  The rotation,
 * when on, is a second pass that samples the first pass's plane, kept in scratch, with zeros
 * beyond it.  So each step sees exactly the image the previous step produced, as applying them
 * one after another does.  Coordinates are pixel indices: pixel (y, x) has its centre at (y, x).
 *
 * Randomness: Philox with key (seed, epoch) and counter (block, sample index, stream), so a
 * sample's draws do not depend on which batch, thread or call order handles it.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>

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

/* ---- geometry */

/* The draws for one sample, and the plane being read. */
typedef struct {
    const uint8_t *xb; /* the plane: bytes, or floats when xb is NULL */
    const float *xf;
    int64_t h, w;
    bool crop;         /* box [top, top + ch) x [left, left + cw) resampled to h x w */
    int64_t top, left, ch, cw;
    int64_t dy, dx;    /* shift: output (y, x) reads (y + dy, x + dx), zeros outside */
    bool flip;
    bool rotate;
    double cos_a, sin_a;
} geometry;

static float raw_at(const geometry *g, int64_t y, int64_t x) {
    return g->xb ? (float)g->xb[y * g->w + x] : g->xf[y * g->w + x];
}

/* torch's source index for bilinear resizing with align_corners=False: the output pixel's centre
 * mapped onto the input (scale = input / output size), clamped below at 0 (aten's
 * area_pixel_compute_source_index); lo and hi are the two input pixels, t the weight of hi. */
static void resize_taps(int64_t out, double scale, int64_t in_size, int64_t *lo, int64_t *hi,
                        double *t) {
    double src = ((double)out + 0.5) * scale - 0.5;
    if (src < 0) src = 0;
    *lo = (int64_t)src;
    *hi = *lo + (*lo < in_size - 1);
    *t = src - (double)*lo;
}

/* Step 1 at column x of a resized crop: the bilinear mix of raw rows y0, y1 (weight ty on y1,
 * found once per row) and the two columns x maps to. */
static float cropped_at(const geometry *g, int64_t y0, int64_t y1, double ty, int64_t x,
                        double scale_x) {
    int64_t x0, x1;
    double tx;
    resize_taps(x, scale_x, g->cw, &x0, &x1, &tx);
    x0 += g->left, x1 += g->left;
    return (float)((1 - ty) * ((1 - tx) * raw_at(g, y0, x0) + tx * raw_at(g, y0, x1)) +
                   ty * ((1 - tx) * raw_at(g, y1, x0) + tx * raw_at(g, y1, x1)));
}

/* Steps 1-3 into dst[h * w] as a * value + c: output (y, x) reads the cropped image at
 * (y + dy, mirrored x + dx); the padding the shift brings in is a raw 0, so it becomes c. */
static void fill_unrotated(const geometry *g, float *dst, float a, float c) {
    double scale_y = (double)g->ch / (double)g->h, scale_x = (double)g->cw / (double)g->w;
    for (int64_t y = 0; y < g->h; y++) {
        float *row = dst + y * g->w;
        int64_t sy = y + g->dy, y0 = 0, y1 = 0;
        double ty = 0;
        if (sy < 0 || sy >= g->h) { /* a row of padding */
            for (int64_t x = 0; x < g->w; x++) row[x] = c;
            continue;
        }
        if (!g->crop) {
            for (int64_t x = 0; x < g->w; x++) {
                int64_t sx = (g->flip ? g->w - 1 - x : x) + g->dx;
                row[x] = sx < 0 || sx >= g->w ? c : a * raw_at(g, sy, sx) + c;
            }
            continue;
        }
        resize_taps(sy, scale_y, g->ch, &y0, &y1, &ty);
        y0 += g->top, y1 += g->top;
        for (int64_t x = 0; x < g->w; x++) {
            int64_t sx = (g->flip ? g->w - 1 - x : x) + g->dx;
            row[x] = sx < 0 || sx >= g->w ? c : a * cropped_at(g, y0, y1, ty, sx, scale_x) + c;
        }
    }
}

/* Pixel (y, x) of the plane src, zero beyond it. */
static double plane_at(const geometry *g, const float *src, int64_t y, int64_t x) {
    return y < 0 || y >= g->h || x < 0 || x >= g->w ? 0.0 : src[y * g->w + x];
}

/* Step 4 from src (steps 1-3 as raw values) into dst as a * value + c.  Content turns
 * counter-clockwise by angle a about the centre q, so the output at p reads the input at
 * q + R(-a)(p - q); with y pointing down that is (x cos a - y sin a, x sin a + y cos a) from q.
 * Bilinear over four pixels, zeros beyond the plane (grid_sample's padding_mode="zeros"). */
static void fill_rotated(const geometry *g, const float *src, float *dst, float a, float c) {
    double qy = 0.5 * (double)(g->h - 1), qx = 0.5 * (double)(g->w - 1);
    for (int64_t y = 0; y < g->h; y++) {
        double ry = (double)y - qy;
        for (int64_t x = 0; x < g->w; x++) {
            double rx = (double)x - qx;
            double sx = qx + rx * g->cos_a - ry * g->sin_a, sy = qy + rx * g->sin_a + ry * g->cos_a;
            double fy = floor(sy), fx = floor(sx), ty = sy - fy, tx = sx - fx, v = 0.0;
            if (fy >= 0 && fy < (double)(g->h - 1) && fx >= 0 && fx < (double)(g->w - 1)) {
                const float *p = src + (int64_t)fy * g->w + (int64_t)fx; /* all four inside */
                v = (1 - ty) * ((1 - tx) * p[0] + tx * p[1]) + ty * ((1 - tx) * p[g->w] + tx * p[g->w + 1]);
            } else if (fy >= -1 && fy <= (double)g->h && fx >= -1 && fx <= (double)g->w) {
                int64_t y0 = (int64_t)fy, x0 = (int64_t)fx;
                v = (1 - ty) * ((1 - tx) * plane_at(g, src, y0, x0) + tx * plane_at(g, src, y0, x0 + 1)) +
                    ty * ((1 - tx) * plane_at(g, src, y0 + 1, x0) + tx * plane_at(g, src, y0 + 1, x0 + 1));
            }
            dst[y * g->w + x] = a * (float)v + c;
        }
    }
}

/* A uniform double in [0, 1) from two 32-bit words (53 bits). */
static double unit_double(uint32_t hi, uint32_t lo) {
    return (double)(((uint64_t)hi << 32 | lo) >> 11) * (1.0 / 9007199254740992.0);
}

/* torchvision RandomResizedCrop.get_params: up to 10 draws of (area fraction, log aspect
 * ratio, position), the first box that fits wins; else the centre crop clamped to the ratios.
 * Sizes round half to even, as Python's round(). */
static void draw_crop(const nb_transforms *t, int64_t s, uint64_t key, geometry *g) {
    double r0 = t->crop_ratio[1] > 0 ? t->crop_ratio[0] : 3.0 / 4.0;
    double r1 = t->crop_ratio[1] > 0 ? t->crop_ratio[1] : 4.0 / 3.0;
    double area = (double)g->h * (double)g->w;
    for (uint32_t attempt = 0; attempt < 10; attempt++) {
        uint32_t r[4];
        nb__philox4x32(r, (const uint32_t[4]){attempt, (uint32_t)s, (uint32_t)((uint64_t)s >> 32),
                                              NB_STREAM_CROP}, key);
        double target = area * (t->crop_scale[0] + (t->crop_scale[1] - t->crop_scale[0]) *
                                                   unit_double(r[0], 0));
        double ratio = exp(log(r0) + (log(r1) - log(r0)) * unit_double(r[1], 0));
        int64_t cw = (int64_t)nearbyint(sqrt(target * ratio));
        int64_t ch = (int64_t)nearbyint(sqrt(target / ratio));
        if (cw > 0 && cw <= g->w && ch > 0 && ch <= g->h) {
            g->top = below(r[2], (uint64_t)(g->h - ch + 1));
            g->left = below(r[3], (uint64_t)(g->w - cw + 1));
            g->ch = ch;
            g->cw = cw;
            return;
        }
    }
    double in_ratio = (double)g->w / (double)g->h;
    g->cw = g->w;
    g->ch = g->h;
    if (in_ratio < r0) g->ch = (int64_t)nearbyint((double)g->w / r0);
    else if (in_ratio > r1) g->cw = (int64_t)nearbyint((double)g->h * r1);
    if (g->ch < 1) g->ch = 1; /* an extreme ratio on a small image: keep one row or column */
    if (g->cw < 1) g->cw = 1;
    g->top = (g->h - g->ch) / 2;
    g->left = (g->w - g->cw) / 2;
}

/* The sample's geometric draws; false when no geometric transform is on. */
static bool draw_geometry(const nb_transforms *t, const nb_dataset *ds, int64_t s, uint64_t key,
                          geometry *g) {
    *g = (geometry){.h = ds->sample_shape[ds->sample_ndim - 2],
                    .w = ds->sample_shape[ds->sample_ndim - 1]};
    g->crop = t->crop_scale[1] > 0;
    g->rotate = t->rotate[0] != 0 || t->rotate[1] != 0;
    if (!g->crop && !g->rotate && t->pad <= 0 && t->hflip <= 0) return false;
    if (g->crop) draw_crop(t, s, key, g);
    if (t->pad > 0 || t->hflip > 0) {
        uint32_t r[4];
        nb__philox4x32(r, (const uint32_t[4]){0, (uint32_t)s, (uint32_t)((uint64_t)s >> 32),
                                              NB_STREAM_GEOMETRY}, key);
        int64_t p = t->pad;
        if (p > 0) { /* torchvision's crop offset i in [0, 2p] on the padded image: dy = i - p */
            g->dy = below(r[0], (uint64_t)(2 * p + 1)) - p;
            g->dx = below(r[1], (uint64_t)(2 * p + 1)) - p;
        }
        g->flip = unit_float(r[2]) < t->hflip;
    }
    if (g->rotate) {
        uint32_t r[4];
        nb__philox4x32(r, (const uint32_t[4]){0, (uint32_t)s, (uint32_t)((uint64_t)s >> 32),
                                              NB_STREAM_ROTATE}, key);
        double deg = t->rotate[0] + ((double)t->rotate[1] - t->rotate[0]) * unit_double(r[0], r[1]);
        double rad = deg * (3.14159265358979323846 / 180.0);
        g->cos_a = cos(rad);
        g->sin_a = sin(rad);
    }
    return true;
}

/* ---- checks */

static bool fail_value(const char *field, double v, const char *want) {
    return nb__fail(NB_ERR_ARG, "loader_new: transforms.%s %g: %s", field, v, want), false;
}

/* [lo, hi] of a pair: finite, lo <= hi, both within [min, max]. */
static bool range_ok(const char *field, const float v[2], double min, double max) {
    char name[32];
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "%s[%d]", field, i);
        if (!(v[i] >= min && v[i] <= max)) {
            char want[64];
            snprintf(want, sizeof want, "expected a number in [%g, %g]", min, max);
            return fail_value(name, v[i], want);
        }
    }
    if (v[0] > v[1])
        return nb__fail(NB_ERR_ARG, "loader_new: transforms.%s {%g, %g}: the first is above the "
                        "second", field, v[0], v[1]), false;
    return true;
}

bool nb__transforms_check(const nb_transforms *t, const nb_dataset *ds) {
    if (t->pad < 0) return fail_value("pad", t->pad, "expected >= 0");
    if (!(t->hflip >= 0 && t->hflip <= 1)) return fail_value("hflip", t->hflip, "expected a "
                                                              "probability in [0, 1]");
    if (!isfinite(t->noise_std) || t->noise_std < 0)
        return fail_value("noise_std", t->noise_std, "expected a finite number >= 0");
    if (!isfinite(t->mean)) return fail_value("mean", t->mean, "expected a finite number");
    if (!isfinite(t->std) || t->std < 0)
        return fail_value("std", t->std, "expected a finite number >= 0 (0: off)");
    if (!range_ok("rotate", t->rotate, -360, 360)) return false;
    bool crop = t->crop_scale[1] > 0 || t->crop_scale[0] != 0 || t->crop_ratio[0] != 0 ||
                t->crop_ratio[1] != 0;
    if (crop) {
        if (!range_ok("crop_scale", t->crop_scale, 0, 1)) return false;
        if (!(t->crop_scale[0] > 0))
            return fail_value("crop_scale[0]", t->crop_scale[0], "expected an area fraction in "
                              "(0, 1]");
        bool default_ratio = t->crop_ratio[0] == 0 && t->crop_ratio[1] == 0;
        if (!default_ratio && !range_ok("crop_ratio", t->crop_ratio, 1e-6, 1e6)) return false;
    }
    bool geometric = t->pad > 0 || t->hflip > 0 || t->rotate[0] != 0 || t->rotate[1] != 0 || crop;
    if (geometric && ds->sample_ndim < 2)
        return nb__fail(NB_ERR_SHAPE, "loader_new: pad, hflip, rotate and crop act on the last two "
                        "dims; samples are %s", nb__shape_str(ds->sample_ndim, ds->sample_shape)),
               false;
    return true;
}

/* ---- one sample */

/* The rotation reads the plane that steps 1-3 leave in scratch. */
int64_t nb__transform_scratch(const nb_transforms *t, const nb_dataset *ds) {
    bool rotate = t->rotate[0] != 0 || t->rotate[1] != 0;
    if (!rotate || ds->sample_ndim < 2) return 0;
    return ds->sample_shape[ds->sample_ndim - 2] * ds->sample_shape[ds->sample_ndim - 1];
}

static void apply_user(const nb_transforms *t, const nb_dataset *ds, int64_t s, int64_t epoch,
                       uint64_t key, float *out) {
    if (!t->user[0].fn) return;
    uint32_t r[4];
    nb__philox4x32(r, (const uint32_t[4]){0, (uint32_t)s, (uint32_t)((uint64_t)s >> 32),
                                          NB_STREAM_USER}, key);
    nb_sample_info info = {.ndim = ds->sample_ndim, .shape = ds->sample_shape, .index = s,
                           .epoch = epoch, .random = (uint64_t)r[0] << 32 | r[1]};
    for (int k = 0; k < NB_USER_TRANSFORMS && t->user[k].fn; k++)
        t->user[k].fn(out, &info, t->user[k].user);
}

void nb__transform_sample(const nb_transforms *t, const nb_dataset *ds, int64_t s, int64_t epoch,
                          uint64_t key, float *out, float *scratch) {
    int64_t m = ds->sample_numel;
    const uint8_t *xb = ds->is_u8 ? (const uint8_t *)ds->x + s * m : NULL;
    const float *xf = ds->is_u8 ? NULL : (const float *)ds->x + s * m;
    float a = t->scale ? 1.0f / 255.0f : 1.0f, c = 0.0f;
    if (t->std > 0) { /* (a raw - mean) / std */
        a /= t->std;
        c = -t->mean / t->std;
    }
    geometry g;
    if (ds->sample_ndim >= 2 && draw_geometry(t, ds, s, key, &g)) {
        int64_t hw = g.h * g.w;
        for (int64_t base = 0; base < m; base += hw) {
            g.xb = xb ? xb + base : NULL;
            g.xf = xf ? xf + base : NULL;
            if (g.rotate) {
                fill_unrotated(&g, scratch, 1.0f, 0.0f);
                fill_rotated(&g, scratch, out + base, a, c);
            } else {
                fill_unrotated(&g, out + base, a, c);
            }
        }
    } else if (xb) {
        affine_u8(out, xb, m, a, c);
    } else {
        affine_f32(out, xf, m, a, c);
    }
    if (t->noise_std > 0) add_noise(out, m, t->noise_std, s, key);
    apply_user(t, ds, s, epoch, key, out);
}
