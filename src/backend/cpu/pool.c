/*
 * pool.c — 2-D max and average pooling and nearest / bilinear upsampling on contiguous planes,
 * forward and backward, with torch 1.13's CPU semantics (aten/src/ATen/native/cpu/
 * MaxPoolKernel.cpp, AvgPoolKernel.cpp, UpSampleKernel.cpp and native/UpSample.h).
 *
 * Layout: x holds `planes` (N C) contiguous [h, w] planes, y as many [oh, ow] planes.
 * Windows: output (i, j) of a pool reads input rows i sh - ph .. i sh - ph + kh - 1 and columns
 * j sw - pw .. j sw - pw + kw - 1, clipped to the input: padding is never read, so max pools
 * behave as if it held -inf and average pools as if it held 0.
 *
 * Speed: outputs whose windows are not clipped (all but a padding's worth at each side) run
 * loops written with the window size and stride as constants for the usual pools (2x2 stride 2,
 * 3x3 stride 2 or 1; other sizes run the same code with run-time values): the window loops
 * unroll and the loop over a row's outputs vectorises, with branch-free max scans.  The few edge
 * outputs take a scalar loop over their clipped window.  Upsampling computes the source columns
 * and weights of a block of output columns once and reuses them for every output row.
 *
 * Threads: planes are shared out over the pool above NB_CPU_PARALLEL_MIN elements.  Each output
 * element, and in a backward each plane of dx, is written by one thread in a fixed order, so
 * the bits do not depend on the thread count.  Backwards overwrite dx: each zeroes its plane,
 * then adds the contributions of its outputs in a fixed order.
 */
#include "cpu.h"
#include "strided.h"

#include <math.h>
#include <string.h>

#define BLOCK 64 /* outputs whose sources an upsampling, or argmaxes a max pool's backward, holds */
#define LANES 8  /* outputs a max pool computes together, one vector register's worth */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The rows (or columns) [*lo, *hi) of the input that output index o's window covers. */
static inline void window(int64_t o, int stride, int pad, int k, int64_t n, int64_t *lo,
                          int64_t *hi) {
    int64_t start = o * stride - pad;
    *lo = max64(start, 0);
    *hi = min64(start + k, n);
}

/* The outputs [*ja, *jb) of a row whose windows need no clipping: j sw - pw >= 0 and
 * j sw - pw + kw <= w.  None for a kernel of 2^31 elements or more, whose positions would not
 * fit max_lanes' int32. */
static void interior(const nb_pool2d_geom *g, int64_t *ja, int64_t *jb) {
    *ja = min64((g->pw + g->sw - 1) / g->sw, g->ow);
    int64_t last = g->w + g->pw - g->kw; /* the largest start offset, plus pw */
    bool small = (int64_t)g->kh * g->kw <= INT32_MAX;
    *jb = last < 0 || !small ? *ja : max64(min64(last / g->sw + 1, g->ow), *ja);
}

/* A pool's or upsampling's arguments; the ranges below work on planes [lo, hi). */
typedef struct {
    const nb_pool2d_geom *g;
    float *out;
    const float *x, *dy;
    int32_t *at;                   /* max_pool2d_indices' output */
    int64_t ja, jb;                /* pools: the interior outputs of a row */
    nb_upsample_mode mode;         /* upsampling: */
    int64_t h, w;
    int sh, sw;
} pool_job;

/* Runs fn over planes of g with the interior found once. */
static void pool_planes(const nb_pool2d_geom *g, float *out, const float *x, const float *dy,
                        nb__range_fn *fn) {
    pool_job j = {.g = g, .out = out, .x = x, .dy = dy};
    interior(g, &j.ja, &j.jb);
    nb__parallel_for(g->planes * g->h * g->w > NB_CPU_PARALLEL_MIN, g->planes, fn, &j);
}

/* A row's outputs split at the interior: [0, *a) and [*b, ow) are edge outputs, [*a, *b)
 * interior ones; none are interior when the window rows are clipped (full_rows false). */
static inline void split(int64_t ow, int64_t ja, int64_t jb, bool full_rows, int64_t *a,
                         int64_t *b) {
    *a = full_rows ? ja : ow;
    *b = full_rows ? jb : ow;
}

/* A max pool scans its window in row-major order as torch does,
 *     if (val > maxval || isnan(val)) { maxval = val; maxindex = index; }
 * so the first maximal element wins, or the last NaN.  The scans below keep that rule without a
 * branch (one on the order of random values is mispredicted half the time, and a blend
 * vectorises): `best` follows the values as a max instruction does (v > best), a NaN is
 * remembered apart in `nan` (the result is NaN if one was seen), and the position moves on a
 * larger value before any NaN, or on any NaN. */
static inline bool max_takes(float v, float best, bool nan) {
    return ((v > best) & !nan) | (v != v);
}

/* The offset in plane xp of the maximum of window (i, j), clipped: the edge outputs. */
static int64_t window_argmax(const float *xp, const nb_pool2d_geom *g, int64_t r0, int64_t r1,
                             int64_t j) {
    int64_t c0, c1;
    window(j, g->sw, g->pw, g->kw, g->w, &c0, &c1);
    int64_t where = r0 * g->w + c0;
    float best = -INFINITY;
    bool nan = false;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t c = c0; c < c1; c++) {
            float v = xp[r * g->w + c];
            int64_t take = -(int64_t)max_takes(v, best, nan); /* all ones or zero */
            where = (where & ~take) | ((r * g->w + c) & take);
            best = v > best ? v : best;
            nan |= v != v;
        }
    return where;
}

/* The same scan for `count` interior outputs (windows unclipped, window t starting at
 * xp + t SW): y[t] = the maximum or, if at, at[t] = its position r KW + c in the window
 * (int32, to match the floats' lanes).  Made for constant KH, KW and SW (see interior_max), so
 * that the window loops unroll and the loop over t vectorises. */
static inline __attribute__((always_inline)) void max_lanes(
    float *y, int32_t *at, const float *xp, int64_t w, int64_t count, int KH, int KW, int SW) {
    for (int64_t t = 0; t < count; t++) {
        const float *win = xp + t * SW;
        float best = -INFINITY;
        bool nan = false;
        int32_t where = 0;
        for (int r = 0; r < KH; r++)
            for (int c = 0; c < KW; c++) {
                float v = win[r * w + c];
                int32_t take = -(int32_t)max_takes(v, best, nan);
                where = (where & ~take) | ((r * KW + c) & take);
                best = v > best ? v : best;
                nan |= v != v;
            }
        if (at) at[t] = where;
        else y[t] = nan ? NAN : best;
    }
}

/* The n interior outputs of a row, LANES at a time with the last group moved back to end at n
 * (recomputing a few outputs, to the same values, rather than leaving a scalar remainder):
 * forward, y[t] = the maximum of window t; backward, dx[argmax of window t] += dy[t], dx
 * pointing at the gradient of window 0's first element, BLOCK outputs at a time in output
 * order. */
static inline __attribute__((always_inline)) void interior_max_k(
    bool backward, float *y, float *dx, const float *dy, const float *xp, int64_t w, int64_t n,
    int KH, int KW, int SW) {
    int32_t at[BLOCK];
    for (int64_t t0 = 0; t0 < n; t0 += BLOCK) {
        int64_t len = min64(BLOCK, n - t0);
        float *yb = backward ? NULL : y + t0;
        int32_t *ab = backward ? at : NULL;
        const float *xb = xp + t0 * SW;
        if (len < LANES) max_lanes(yb, ab, xb, w, len, KH, KW, SW);
        for (int64_t g0 = 0; len >= LANES && g0 < len; g0 += LANES) {
            int64_t s0 = min64(g0, len - LANES);
            max_lanes(yb ? yb + s0 : NULL, ab ? ab + s0 : NULL, xb + s0 * SW, w, LANES, KH, KW, SW);
        }
        for (int64_t t = 0; backward && t < len; t++)
            dx[(t0 + t) * SW + at[t] / KW * w + at[t] % KW] += dy[t0 + t];
    }
}

/* interior_max_k, instantiated for the usual pools (2x2 stride 2, 3x3 stride 2 or 1) and at
 * run time for the rest. */
static inline __attribute__((always_inline)) void interior_max(
    bool backward, float *y, float *dx, const float *dy, const float *xp, const nb_pool2d_geom *g,
    int64_t n) {
    int kh = g->kh, kw = g->kw, sw = g->sw;
    if (kh == 2 && kw == 2 && sw == 2)
        interior_max_k(backward, y, dx, dy, xp, g->w, n, 2, 2, 2);
    else if (kh == 3 && kw == 3 && sw == 2)
        interior_max_k(backward, y, dx, dy, xp, g->w, n, 3, 3, 2);
    else if (kh == 3 && kw == 3 && sw == 1)
        interior_max_k(backward, y, dx, dy, xp, g->w, n, 3, 3, 1);
    else interior_max_k(backward, y, dx, dy, xp, g->w, n, kh, kw, sw);
}

NB_CLONES static void max_pool_range(void *arg, int64_t lo, int64_t hi) {
    const pool_job *job = arg;
    const nb_pool2d_geom *g = job->g;
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow, ja = job->ja, jb = job->jb;
    const float *x = job->x;
    float *y = job->out;
    for (int64_t p = lo; p < hi; p++) {
        const float *xp = x + p * in_plane;
        for (int64_t i = 0; i < g->oh; i++) {
            int64_t r0, r1, a, b;
            window(i, g->sh, g->ph, g->kh, g->h, &r0, &r1);
            float *yr = y + p * out_plane + i * g->ow;
            split(g->ow, ja, jb, r1 - r0 == g->kh, &a, &b);
            for (int64_t j = 0; j < a; j++) yr[j] = xp[window_argmax(xp, g, r0, r1, j)];
            interior_max(false, yr + a, NULL, NULL, xp + r0 * g->w + a * g->sw - g->pw, g, b - a);
            for (int64_t j = b; j < g->ow; j++) yr[j] = xp[window_argmax(xp, g, r0, r1, j)];
        }
    }
}

void nb__cpu_max_pool2d(float *y, const float *x, const nb_pool2d_geom *g) {
    pool_planes(g, y, x, NULL, max_pool_range);
}

/* dx[argmax of window (i, j)] += dy[i, j], in output order; the argmax found again from x by
 * the forward's own scan (the same element order and tie rule), so the gradient goes where the
 * forward's value came from. */
NB_CLONES static void max_pool_backward_range(void *arg, int64_t lo, int64_t hi) {
    const pool_job *job = arg;
    const nb_pool2d_geom *g = job->g;
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow, ja = job->ja, jb = job->jb;
    const float *x = job->x, *dy = job->dy;
    float *dx = job->out;
    for (int64_t p = lo; p < hi; p++) {
        const float *xp = x + p * in_plane;
        float *dxp = dx + p * in_plane;
        memset(dxp, 0, sizeof(float) * (size_t)in_plane);
        for (int64_t i = 0; i < g->oh; i++) {
            int64_t r0, r1, a, b;
            window(i, g->sh, g->ph, g->kh, g->h, &r0, &r1);
            const float *dyr = dy + p * out_plane + i * g->ow;
            split(g->ow, ja, jb, r1 - r0 == g->kh, &a, &b);
            for (int64_t j = 0; j < a; j++) dxp[window_argmax(xp, g, r0, r1, j)] += dyr[j];
            int64_t first = r0 * g->w + a * g->sw - g->pw; /* window a's first element */
            interior_max(true, NULL, dxp + first, dyr + a, xp + first, g, b - a);
            for (int64_t j = b; j < g->ow; j++) dxp[window_argmax(xp, g, r0, r1, j)] += dyr[j];
        }
    }
}

void nb__cpu_max_pool2d_backward(float *dx, const float *x, const float *dy,
                                 const nb_pool2d_geom *g) {
    pool_planes(g, dx, x, dy, max_pool_backward_range);
}

/* at[p, i, j] = the offset in plane p of window (i, j)'s maximum, by the scalar scan of the
 * edge outputs for every output (the same order and tie rule as the vector scan): only
 * gradients of gradients ask for it. */
static void max_pool_indices_range(void *arg, int64_t lo, int64_t hi) {
    const pool_job *job = arg;
    const nb_pool2d_geom *g = job->g;
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow;
    for (int64_t p = lo; p < hi; p++) {
        const float *xp = job->x + p * in_plane;
        int32_t *at = job->at + p * out_plane;
        for (int64_t i = 0; i < g->oh; i++) {
            int64_t r0, r1;
            window(i, g->sh, g->ph, g->kh, g->h, &r0, &r1);
            for (int64_t j = 0; j < g->ow; j++)
                at[i * g->ow + j] = (int32_t)window_argmax(xp, g, r0, r1, j);
        }
    }
}

void nb__cpu_max_pool2d_indices(int32_t *at, const float *x, const nb_pool2d_geom *g) {
    pool_job j = {.g = g, .x = x, .at = at};
    nb__parallel_for(g->planes * g->h * g->w > NB_CPU_PARALLEL_MIN, g->planes,
                     max_pool_indices_range, &j);
}

/* The divisor of window (i, j) along one dim: with padding counted (torch's
 * count_include_pad=True) the window's extent within the padded input,
 * min(start + k, n + pad) - start, so that a ceil-mode window hanging past the padding counts
 * only what lies inside it; without, the number of input elements it covers. */
static inline int64_t extent(int64_t o, int stride, int pad, int k, int64_t n, bool exclude_pad) {
    int64_t start = o * stride - pad, lo, hi;
    if (!exclude_pad) return min64(start + k, n + pad) - start;
    window(o, stride, pad, k, n, &lo, &hi);
    return hi - lo;
}

/* The sum of clipped window (i, j) (rows [r0, r1)), in window order. */
static float window_sum(const float *xp, const nb_pool2d_geom *g, int64_t r0, int64_t r1,
                        int64_t j) {
    int64_t c0, c1;
    window(j, g->sw, g->pw, g->kw, g->w, &c0, &c1);
    float s = 0.0f;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t c = c0; c < c1; c++) s += xp[r * g->w + c];
    return s;
}

/* The edge outputs j in [lo, hi) of row i (rows [r0, r1)): y[j] = window sum / divisor, or,
 * backward, dx[window (i, j)] += dy[j] / divisor. */
static void avg_edges(float *yr, const float *xp, const nb_pool2d_geom *g, int64_t i, int64_t r0,
                      int64_t r1, int64_t lo, int64_t hi) {
    int64_t rows = extent(i, g->sh, g->ph, g->kh, g->h, g->exclude_pad);
    for (int64_t j = lo; j < hi; j++)
        yr[j] = window_sum(xp, g, r0, r1, j) /
                (float)(rows * extent(j, g->sw, g->pw, g->kw, g->w, g->exclude_pad));
}

static void avg_edges_backward(float *dxp, const float *dyr, const nb_pool2d_geom *g, int64_t i,
                               int64_t r0, int64_t r1, int64_t lo, int64_t hi) {
    int64_t rows = extent(i, g->sh, g->ph, g->kh, g->h, g->exclude_pad), c0, c1;
    for (int64_t j = lo; j < hi; j++) {
        float v = dyr[j] / (float)(rows * extent(j, g->sw, g->pw, g->kw, g->w, g->exclude_pad));
        window(j, g->sw, g->pw, g->kw, g->w, &c0, &c1);
        for (int64_t r = r0; r < r1; r++)
            for (int64_t c = c0; c < c1; c++) dxp[r * g->w + c] += v;
    }
}

/* n interior outputs, whose windows (nothing clipped, so the divisor is KH KW with or without
 * padding) start at xp + t SW: y[t] = window sum, in window order, / (KH KW); or, backward,
 * window t += dy[t] / (KH KW), output by output.  Constants as in interior_max_k. */
static inline __attribute__((always_inline)) void interior_avg_k(
    bool backward, float *y, float *dx, const float *xp, const float *dy, int64_t w, int64_t n,
    int KH, int KW, int SW) {
    for (int64_t t = 0; t < n; t++) {
        if (backward) {
            float v = dy[t] / (float)(KH * KW);
            for (int r = 0; r < KH; r++)
                for (int c = 0; c < KW; c++) dx[t * SW + r * w + c] += v;
            continue;
        }
        float s = 0.0f;
        for (int r = 0; r < KH; r++)
            for (int c = 0; c < KW; c++) s += xp[t * SW + r * w + c];
        y[t] = s / (float)(KH * KW);
    }
}

static inline __attribute__((always_inline)) void interior_avg(
    bool backward, float *y, float *dx, const float *xp, const float *dy,
    const nb_pool2d_geom *g, int64_t n) {
    int kh = g->kh, kw = g->kw, sw = g->sw;
    if (kh == 2 && kw == 2 && sw == 2) interior_avg_k(backward, y, dx, xp, dy, g->w, n, 2, 2, 2);
    else if (kh == 3 && kw == 3 && sw == 2)
        interior_avg_k(backward, y, dx, xp, dy, g->w, n, 3, 3, 2);
    else if (kh == 3 && kw == 3 && sw == 1)
        interior_avg_k(backward, y, dx, xp, dy, g->w, n, 3, 3, 1);
    else interior_avg_k(backward, y, dx, xp, dy, g->w, n, kh, kw, sw);
}

/* y[i, j] = (sum of window (i, j), in window order) / divisor */
NB_CLONES static void avg_pool_range(void *arg, int64_t lo, int64_t hi) {
    const pool_job *job = arg;
    const nb_pool2d_geom *g = job->g;
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow, ja = job->ja, jb = job->jb;
    const float *x = job->x;
    float *y = job->out;
    for (int64_t p = lo; p < hi; p++) {
        const float *xp = x + p * in_plane;
        for (int64_t i = 0; i < g->oh; i++) {
            int64_t r0, r1, a, b;
            window(i, g->sh, g->ph, g->kh, g->h, &r0, &r1);
            float *yr = y + p * out_plane + i * g->ow;
            split(g->ow, ja, jb, r1 - r0 == g->kh, &a, &b);
            avg_edges(yr, xp, g, i, r0, r1, 0, a);
            interior_avg(false, yr + a, NULL, xp + r0 * g->w + a * g->sw - g->pw, NULL, g, b - a);
            avg_edges(yr, xp, g, i, r0, r1, b, g->ow);
        }
    }
}

void nb__cpu_avg_pool2d(float *y, const float *x, const nb_pool2d_geom *g) {
    pool_planes(g, y, x, NULL, avg_pool_range);
}

/* dx[window (i, j)] += dy[i, j] / divisor, in output order */
NB_CLONES static void avg_pool_backward_range(void *arg, int64_t lo, int64_t hi) {
    const pool_job *job = arg;
    const nb_pool2d_geom *g = job->g;
    int64_t in_plane = g->h * g->w, out_plane = g->oh * g->ow, ja = job->ja, jb = job->jb;
    const float *dy = job->dy;
    float *dx = job->out;
    for (int64_t p = lo; p < hi; p++) {
        float *dxp = dx + p * in_plane;
        memset(dxp, 0, sizeof(float) * (size_t)in_plane);
        for (int64_t i = 0; i < g->oh; i++) {
            int64_t r0, r1, a, b;
            window(i, g->sh, g->ph, g->kh, g->h, &r0, &r1);
            const float *dyr = dy + p * out_plane + i * g->ow;
            split(g->ow, ja, jb, r1 - r0 == g->kh, &a, &b);
            avg_edges_backward(dxp, dyr, g, i, r0, r1, 0, a);
            interior_avg(true, NULL, dxp + r0 * g->w + a * g->sw - g->pw, NULL, dyr + a, g, b - a);
            avg_edges_backward(dxp, dyr, g, i, r0, r1, b, g->ow);
        }
    }
}

void nb__cpu_avg_pool2d_backward(float *dx, const float *dy, const nb_pool2d_geom *g) {
    pool_planes(g, dx, NULL, dy, avg_pool_backward_range);
}

/* ---- upsampling by integer factors: out = in * scale per dim */

/* torch's nearest_idx with the scale given: dst >> 1 for 2, otherwise
 * min(floor(dst * float(1 / scale)), in - 1) in float, as OpenCV's INTER_NEAREST. */
static inline int64_t nearest_src(int64_t dst, int64_t in, int scale, float inv_scale) {
    if (scale == 1) return dst;
    if (scale == 2) return dst >> 1;
    return min64((int64_t)floorf((float)dst * inv_scale), in - 1);
}

/* The two sources of output index dst and their weights (torch's area_pixel_compute_source_index
 * and compute_source_index_and_lambda): src = ratio dst with align_corners, where
 * ratio = (in - 1) / (out - 1); otherwise src = max(ratio (dst + 1/2) - 1/2, 0) with
 * ratio = 1 / scale.  i0 = floor(src), i1 = i0 + 1 short of the edge, l1 = src - i0. */
typedef struct {
    int64_t i0, i1;
    float l0, l1;
} lerp;

static inline lerp lerp_src(int64_t dst, int64_t in, float ratio, bool align_corners) {
    float src = align_corners ? ratio * (float)dst : ratio * ((float)dst + 0.5f) - 0.5f;
    src = src < 0.0f ? 0.0f : src;
    lerp l = {.i0 = (int64_t)src};
    l.i1 = l.i0 + (l.i0 < in - 1 ? 1 : 0);
    l.l1 = src - (float)l.i0; /* in [0, 1): torch's clamp to [0, 1] never bites */
    l.l0 = 1.0f - l.l1;
    return l;
}

static inline float lerp_ratio(int64_t in, int scale, bool align_corners) {
    int64_t out = in * scale;
    if (align_corners) return out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    return (float)(1.0 / scale);
}

/* The sources of the output columns j0 .. j0 + n: for nearest c0 alone, else both with their
 * weights. */
typedef struct {
    int64_t c0[BLOCK], c1[BLOCK];
    float w0[BLOCK], w1[BLOCK];
} columns;

static void block_columns(columns *cs, nb_upsample_mode mode, int64_t w, int sw, int64_t j0,
                          int64_t n) {
    bool align = mode == NB_UP_BILINEAR_ALIGNED;
    float ratio = lerp_ratio(w, sw, align), inv = (float)(1.0 / sw);
    for (int64_t t = 0; t < n; t++) {
        if (mode == NB_UP_NEAREST) {
            cs->c0[t] = nearest_src(j0 + t, w, sw, inv);
            continue;
        }
        lerp l = lerp_src(j0 + t, w, ratio, align);
        cs->c0[t] = l.i0, cs->c1[t] = l.i1, cs->w0[t] = l.l0, cs->w1[t] = l.l1;
    }
}

NB_CLONES static void upsample_range(void *arg, int64_t lo, int64_t hi) {
    const pool_job *job = arg;
    nb_upsample_mode mode = job->mode;
    int64_t h = job->h, w = job->w, oh = h * job->sh, ow = w * job->sw, in_plane = h * w, out_plane = oh * ow;
    int sh = job->sh, sw = job->sw;
    bool align = mode == NB_UP_BILINEAR_ALIGNED;
    float inv_h = (float)(1.0 / sh), rh = lerp_ratio(h, sh, align);
    const float *x = job->x;
    float *y = job->out;
    for (int64_t p = lo; p < hi; p++) {
        const float *xp = x + p * in_plane;
        columns cs;
        for (int64_t j0 = 0; j0 < ow; j0 += BLOCK) {
            int64_t n = min64(BLOCK, ow - j0);
            block_columns(&cs, mode, w, sw, j0, n);
            for (int64_t i = 0; i < oh; i++) {
                float *yr = y + p * out_plane + i * ow + j0;
                if (mode == NB_UP_NEAREST) {
                    const float *src = xp + nearest_src(i, h, sh, inv_h) * w;
                    for (int64_t t = 0; t < n; t++) yr[t] = src[cs.c0[t]];
                    continue;
                }
                /* y = l0 (w0 x[i0, c0] + w1 x[i0, c1]) + l1 (w0 x[i1, c0] + w1 x[i1, c1]) */
                lerp a = lerp_src(i, h, rh, align);
                const float *x0 = xp + a.i0 * w, *x1 = xp + a.i1 * w;
                for (int64_t t = 0; t < n; t++)
                    yr[t] = a.l0 * (cs.w0[t] * x0[cs.c0[t]] + cs.w1[t] * x0[cs.c1[t]]) +
                            a.l1 * (cs.w0[t] * x1[cs.c0[t]] + cs.w1[t] * x1[cs.c1[t]]);
            }
        }
    }
}

void nb__cpu_upsample2d(nb_upsample_mode mode, float *y, const float *x, int64_t planes,
                        int64_t h, int64_t w, int sh, int sw) {
    pool_job j = {.out = y, .x = x, .dy = NULL, .mode = mode, .h = h, .w = w, .sh = sh, .sw = sw};
    nb__parallel_for(planes * h * sh * w * sw > NB_CPU_PARALLEL_MIN, planes, upsample_range, &j);
}

/* The transpose of the forward: each dy[i, j] is added to the input elements it was read from,
 * times the weight it was read with, block of columns by block, row by row (neighbouring
 * outputs share sources, so these loops stay scalar). */
NB_CLONES static void upsample_backward_range(void *arg, int64_t lo, int64_t hi) {
    const pool_job *job = arg;
    nb_upsample_mode mode = job->mode;
    int64_t h = job->h, w = job->w, oh = h * job->sh, ow = w * job->sw, in_plane = h * w, out_plane = oh * ow;
    int sh = job->sh, sw = job->sw;
    bool align = mode == NB_UP_BILINEAR_ALIGNED;
    float inv_h = (float)(1.0 / sh), rh = lerp_ratio(h, sh, align);
    const float *dy = job->dy;
    float *dx = job->out;
    for (int64_t p = lo; p < hi; p++) {
        float *dxp = dx + p * in_plane;
        columns cs;
        memset(dxp, 0, sizeof(float) * (size_t)in_plane);
        for (int64_t j0 = 0; j0 < ow; j0 += BLOCK) {
            int64_t n = min64(BLOCK, ow - j0);
            block_columns(&cs, mode, w, sw, j0, n);
            for (int64_t i = 0; i < oh; i++) {
                const float *dyr = dy + p * out_plane + i * ow + j0;
                if (mode == NB_UP_NEAREST) {
                    float *dst = dxp + nearest_src(i, h, sh, inv_h) * w;
                    for (int64_t t = 0; t < n; t++) dst[cs.c0[t]] += dyr[t];
                    continue;
                }
                lerp a = lerp_src(i, h, rh, align);
                float *d0 = dxp + a.i0 * w, *d1 = dxp + a.i1 * w;
                for (int64_t t = 0; t < n; t++) {
                    float g = dyr[t];
                    d0[cs.c0[t]] += a.l0 * cs.w0[t] * g;
                    d0[cs.c1[t]] += a.l0 * cs.w1[t] * g;
                    d1[cs.c0[t]] += a.l1 * cs.w0[t] * g;
                    d1[cs.c1[t]] += a.l1 * cs.w1[t] * g;
                }
            }
        }
    }
}

void nb__cpu_upsample2d_backward(nb_upsample_mode mode, float *dx, const float *dy,
                                 int64_t planes, int64_t h, int64_t w, int sh, int sw) {
    pool_job j = {.out = dx, .x = NULL, .dy = dy, .mode = mode, .h = h, .w = w, .sh = sh, .sw = sw};
    nb__parallel_for(planes * h * sh * w * sw > NB_CPU_PARALLEL_MIN, planes, upsample_backward_range, &j);
}
