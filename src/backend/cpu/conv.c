/*
 * conv.c — 2-D convolution on NCHW images by im2col + GEMM, and its two adjoints.
 *
 * Shapes (nb_conv2d_geom): image x [n, c, h, w], grid y [n, oc, oh, ow], weight
 * w [oc, c / G, kh, kw] for G groups; P = oh ow grid cells; group g owns image channels
 * g c/G .. and grid channels g oc/G ...  The columns of one sample and group are
 *
 *   col[(ci, ki, kj), (i, j)] = x[ci, i sh - ph + ki dh, j sw - pw + kj dw]   (0 outside x)
 *
 * a [K, P] matrix with K = c/G kh kw, so that, per group (w_g seen as [oc/G, K]):
 *
 *   forward          y_g  = w_g col(x)                          (conv2d)
 *   data adjoint     dx   = col2im(w_g^T dy_g)                   (conv2d's dx; conv_transpose2d)
 *   weight adjoint   dw_g = sum over samples of dy_g col(x)^T    (conv2d's dw)
 *
 * col2im scatters a [K, P] matrix back onto the image with +=, the transpose of im2col.  Where
 * a window reaches the padding, each channel is first copied into a zero-bordered buffer (or,
 * for col2im, accumulated in one and cropped), so the row copies themselves test no bounds;
 * rows are short (the image width), so with AVX-512 each is a masked load and store.
 * conv2d's bias gradient, sum over samples and cells of dy, is taken in the weight pass.
 *
 * Batching.  Small images make small GEMMs, so `chunk` samples are folded side by side into
 * one [K, chunk P] column matrix: one GEMM of chunk P columns instead of chunk GEMMs of P.
 * The grid side then sits as [oc, chunk P] in a scratch matrix (dy is gathered into it, y is
 * scattered out of it); a chunk of one sample reads and writes y / dy in place.  A 1x1 kernel
 * with unit stride, no padding and an unchanged size needs no im2col: col(x) is x itself.
 *
 * Threads.  The samples are cut into `threads` contiguous ranges, pieces of the pool's job, each
 * with its own scratch in the caller's workspace; GEMMs inside a piece run single-threaded
 * (nb__cpu_gemm does so inside a piece).  With one range there is no job and
 * nb__cpu_gemm may share out a large GEMM itself.  Every output element is written by one
 * thread in a fixed order — dx by serial col2im per sample; dw per range into its own partial
 * (beta = 1 across the range's chunks), the partials then summed in range order — so a given
 * thread count always gives the same bits.
 */
#include "cpu.h"

#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NB_CONV_AVX512 1
#endif

/* Grid columns worth folding into one GEMM, and the column bytes one thread may hold (half
 * its L2, so that im2col's writes are still cached when the GEMM packs them).  Measured: folding
 * 7x7 and 4x4 grids gains 5-12%; folding LeNet's 14x14 and 28x28 grids, or larger buffers,
 * lost up to 20%. */
#define FOLD_COLUMNS 512
#define COL_BYTES_MAX (512u << 10)
/* Below this many flops per pass one thread does it all: a fork costs more. */
#define PARALLEL_MIN_FLOPS 2e6

typedef struct {
    int threads;    /* sample ranges, one per thread */
    int64_t chunk;  /* samples per GEMM */
    int64_t k, p;   /* rows (c/G kh kw) and grid cells (oh ow) of one sample's columns */
    int64_t hp, wp; /* the part of the padded image that the taps reach */
    bool in_place;  /* no padding reached: im2col reads x, col2im adds into dx, directly */
    bool direct;    /* 1x1, unit stride, no padding, same size: the columns are x itself */
    size_t col, tmp, part, pad; /* floats per thread: columns, grid scratch, dw (transposed)
                                 * and db partial, one padded channel */
    const struct row_ops *rows; /* the row copies for this CPU */
} conv_plan;

static const struct row_ops *row_ops_for_cpu(void);

static size_t lines(int64_t floats) { return (size_t)(floats + 15) / 16 * 16; }

static conv_plan plan_for(const nb_conv2d_geom *g) {
    conv_plan p = {.threads = 1, .chunk = 1};
    p.k = g->c / g->groups * g->kh * g->kw;
    p.p = g->oh * g->ow;
    p.hp = g->oh > 0 ? (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1 : 0;
    p.wp = g->ow > 0 ? (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1 : 0;
    p.in_place = g->ph == 0 && g->pw == 0 && p.hp <= g->h && p.wp <= g->w;
    p.direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 &&
               g->pw == 0 && g->oh == g->h && g->ow == g->w;
    double flops = 2.0 * (double)g->n * (double)g->oc * (double)p.k * (double)p.p;
    if (!nb__in_parallel() && flops >= PARALLEL_MIN_FLOPS) p.threads = nb__threads();
    if (p.threads > g->n) p.threads = g->n > 0 ? (int)g->n : 1;
    int64_t per_thread = (g->n + p.threads - 1) / p.threads;
    if (p.p > 0 && p.p < FOLD_COLUMNS) {
        int64_t want = (FOLD_COLUMNS + p.p - 1) / p.p;
        int64_t fits = (int64_t)(COL_BYTES_MAX / sizeof(float)) / (p.k * p.p > 0 ? p.k * p.p : 1);
        p.chunk = want < fits ? want : fits;
        if (p.chunk > per_thread) p.chunk = per_thread;
        if (p.chunk < 1) p.chunk = 1;
    }
    p.col = lines(p.k * p.chunk * p.p);
    p.tmp = p.chunk > 1 ? lines(g->oc * p.chunk * p.p) : 0;
    p.part = lines(g->oc * p.k + g->oc);
    p.pad = p.in_place ? 0 : lines(p.hp * p.wp);
    p.rows = row_ops_for_cpu();
    return p;
}

size_t nb__cpu_conv2d_workspace(const nb_conv2d_geom *g) {
    conv_plan p = plan_for(g);
    return ((size_t)p.threads * (p.col + p.tmp + p.part + p.pad) + 16) * sizeof(float);
}

/* The scratch of range t: its columns, grid matrix, dw partial and padded channel. */
typedef struct {
    float *col, *tmp, *part, *pad;
} scratch;

static scratch scratch_of(const conv_plan *p, void *ws, int t) {
    float *base = (float *)ws + (size_t)t * (p->col + p->tmp + p->part + p->pad);
    return (scratch){base, base + p->col, base + p->col + p->tmp, base + p->col + p->tmp + p->part};
}

/* Samples [lo, hi) of range t of n split in `parts`: sizes differ by at most one. */
static void range_of(int64_t n, int parts, int t, int64_t *lo, int64_t *hi) {
    *lo = n * t / parts;
    *hi = n * (t + 1) / parts;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Row copies for im2col and col2im, whose rows are short (an image row: 14 or 28 floats in
 * LeNet): compiled loops run such rows mostly in their scalar tail and re-derive their bounds
 * per row, so the AVX-512 versions work out the tail's mask once per block and cover it in one
 * masked step.  Each copies or adds `rows` rows of n floats; d and s advance by their strides.
 * copy_block writes its rows back to back (d's stride is n): a full-width store past a row's
 * end lands where the next row is about to be written, so only a store that would pass the
 * block's end is masked (masked stores are the slow ones).  They stay out of line: inlined into
 * im2col's nest of loops they ran out of registers and ran a third slower. */
#define NB_ROWS __attribute__((noinline))
/* Plain C, vectorised by the compiler for the CPU's vector width (NB_CLONES). */
NB_CLONES static void copy_rows_plain(float *d, int64_t ldd, const float *s, int64_t lds,
                              int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        float *restrict dr = d + r * ldd;
        const float *restrict sr = s + r * lds;
        for (int64_t j = 0; j < n; j++) dr[j] = sr[j];
    }
}

NB_CLONES static void copy_block_plain(float *d, const float *s, int64_t lds, int64_t rows, int64_t n) {
    copy_rows_plain(d, n, s, lds, rows, n);
}

NB_CLONES static void add_rows_plain(float *d, int64_t ldd, const float *s, int64_t lds,
                             int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; r++) {
        float *restrict dr = d + r * ldd;
        const float *restrict sr = s + r * lds;
        for (int64_t j = 0; j < n; j++) dr[j] += sr[j];
    }
}

#ifdef NB_CONV_AVX512
#define NB_AVX512 __attribute__((target("avx512f")))
NB_AVX512 static inline __mmask16 tail_mask(int64_t n) { return (__mmask16)((1u << (n % 16)) - 1); }

NB_ROWS NB_AVX512 static void copy_rows_avx512(float *d, int64_t ldd, const float *s, int64_t lds,
                              int64_t rows, int64_t n) {
    int64_t full = n / 16 * 16;
    __mmask16 m = tail_mask(n);
    for (int64_t r = 0; r < rows; r++) {
        float *dr = d + r * ldd;
        const float *sr = s + r * lds;
        for (int64_t j = 0; j < full; j += 16) _mm512_storeu_ps(dr + j, _mm512_loadu_ps(sr + j));
        if (full < n) _mm512_mask_storeu_ps(dr + full, m, _mm512_maskz_loadu_ps(m, sr + full));
    }
}

NB_ROWS NB_AVX512 static void copy_block_avx512(float *d, const float *s, int64_t lds, int64_t rows, int64_t n) {
    int64_t full = n / 16 * 16;
    __mmask16 m = tail_mask(n);
    for (int64_t r = 0; r < rows; r++) {
        float *dr = d + r * n;
        const float *sr = s + r * lds;
        for (int64_t j = 0; j < full; j += 16) _mm512_storeu_ps(dr + j, _mm512_loadu_ps(sr + j));
        if (full == n) continue;
        __m512 v = _mm512_maskz_loadu_ps(m, sr + full);
        if (r * n + full + 16 <= rows * n) _mm512_storeu_ps(dr + full, v);
        else _mm512_mask_storeu_ps(dr + full, m, v);
    }
}

NB_ROWS NB_AVX512 static void add_rows_avx512(float *d, int64_t ldd, const float *s, int64_t lds,
                             int64_t rows, int64_t n) {
    int64_t full = n / 16 * 16;
    __mmask16 m = tail_mask(n);
    for (int64_t r = 0; r < rows; r++) {
        float *dr = d + r * ldd;
        const float *sr = s + r * lds;
        for (int64_t j = 0; j < full; j += 16) {
            __m512 v = _mm512_add_ps(_mm512_loadu_ps(dr + j), _mm512_loadu_ps(sr + j));
            _mm512_storeu_ps(dr + j, v);
        }
        if (full < n) {
            __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dr + full),
                                     _mm512_maskz_loadu_ps(m, sr + full));
            _mm512_mask_storeu_ps(dr + full, m, v);
        }
    }
}
#endif

/* The row copies that this CPU runs, chosen once per plan. */
typedef struct row_ops {
    void (*copy_rows)(float *d, int64_t ldd, const float *s, int64_t lds, int64_t rows, int64_t n);
    void (*copy_block)(float *d, const float *s, int64_t lds, int64_t rows, int64_t n);
    void (*add_rows)(float *d, int64_t ldd, const float *s, int64_t lds, int64_t rows, int64_t n);
} row_ops;

static const row_ops *row_ops_for_cpu(void) {
    static const row_ops plain = {copy_rows_plain, copy_block_plain, add_rows_plain};
#ifdef NB_CONV_AVX512
    static const row_ops avx512 = {copy_rows_avx512, copy_block_avx512, add_rows_avx512};
    if (nb__cpu_isa() == NB_ISA_AVX512) return &avx512;
#endif
    return &plain;
}

/* One channel xc [h, w] as the taps read it: itself when in place, else copied into pad
 * [hp, wp] at (ph, pw), so that every window row lies inside and the copies below test no
 * bounds.  pad's border must be zero: zero_pad clears the whole buffer once per range, and the
 * copies only ever write the same interior. */
static void zero_pad(const conv_plan *p, float *pad) {
    if (!p->in_place) memset(pad, 0, sizeof(float) * (size_t)(p->hp * p->wp));
}

static const float *padded(const conv_plan *p, float *pad, const float *xc,
                           const nb_conv2d_geom *g) {
    if (p->in_place) return xc;
    int64_t rows = min64(g->h, p->hp - g->ph), cols = min64(g->w, p->wp - g->pw);
    if (rows > 0 && cols > 0) p->rows->copy_rows(pad + g->ph * p->wp + g->pw, p->wp, xc, g->w, rows, cols);
    return pad;
}

/* col[r, 0..P) (row stride ldc) = the columns of c channels of one image x [c, h, w]:
 * row r = (ci, ki, kj), cell (i, j) reads padded row i sh + ki dh, column j sw + kj dw. */
static void im2col(const conv_plan *p, float *col, int64_t ldc, const float *x, int64_t c,
                   float *pad, const nb_conv2d_geom *g) {
    int64_t ld = p->in_place ? g->w : p->wp;
    float *row = col;
    for (int64_t ci = 0; ci < c; ci++) {
        const float *src = padded(p, pad, x + ci * g->h * g->w, g);
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++, row += ldc) {
                const float *s0 = src + ki * g->dh * ld + kj * g->dw;
                if (g->sw == 1) {
                    p->rows->copy_block(row, s0, g->sh * ld, g->oh, g->ow);
                    continue;
                }
                for (int64_t i = 0; i < g->oh; i++) {
                    const float *restrict s = s0 + i * g->sh * ld;
                    float *restrict d = row + i * g->ow;
                    for (int64_t j = 0; j < g->ow; j++) d[j] = s[j * g->sw];
                }
            }
    }
}

/* x [c, h, w] += col2im(col): each column entry added back onto the pixel im2col read it from
 * (in a padded channel when padding is reached, then cropped). */
static void col2im(const conv_plan *p, float *x, const float *col, int64_t ldc, int64_t c,
                   float *pad, const nb_conv2d_geom *g) {
    int64_t ld = p->in_place ? g->w : p->wp;
    const float *row = col;
    for (int64_t ci = 0; ci < c; ci++) {
        float *xc = x + ci * g->h * g->w, *dst = p->in_place ? xc : pad;
        if (!p->in_place) memset(pad, 0, sizeof(float) * (size_t)(p->hp * p->wp));
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++, row += ldc) {
                float *d0 = dst + ki * g->dh * ld + kj * g->dw;
                if (g->sw == 1) {
                    p->rows->add_rows(d0, g->sh * ld, row, g->ow, g->oh, g->ow);
                    continue;
                }
                for (int64_t i = 0; i < g->oh; i++) {
                    float *restrict d = d0 + i * g->sh * ld;
                    const float *restrict s = row + i * g->ow;
                    for (int64_t j = 0; j < g->ow; j++) d[j * g->sw] += s[j];
                }
            }
        if (p->in_place) continue;
        int64_t rows = min64(g->h, p->hp - g->ph), cols = min64(g->w, p->wp - g->pw);
        if (rows > 0 && cols > 0)
            p->rows->add_rows(xc, g->w, pad + g->ph * p->wp + g->pw, p->wp, rows, cols);
    }
}

/* The columns of samples n0 .. n0 + m, group grp, as a [K, m P] matrix: x itself when the
 * plan is direct and m is 1, else im2col into the scratch columns. */
static const float *columns(const conv_plan *p, const scratch *sc, const float *x, int64_t n0,
                            int64_t m, int64_t grp, const nb_conv2d_geom *g) {
    int64_t cg = g->c / g->groups, hw = g->h * g->w;
    const float *xg = x + n0 * g->c * hw + grp * cg * hw;
    if (p->direct && m == 1) return xg;
    for (int64_t s = 0; s < m; s++)
        im2col(p, sc->col + s * p->p, m * p->p, xg + s * g->c * hw, cg, sc->pad, g);
    return sc->col;
}

/* y [n, oc, P] = w col(x) + b, per group, for samples lo .. hi. */
static void forward_range(const conv_plan *p, const scratch *sc, float *y, const float *x,
                          const float *w, const float *b, const nb_conv2d_geom *g, int64_t lo,
                          int64_t hi) {
    int64_t cog = g->oc / g->groups, pp = p->p;
    zero_pad(p, sc->pad);
    for (int64_t n0 = lo; n0 < hi; n0 += p->chunk) {
        int64_t m = min64(hi - n0, p->chunk), cols = m * pp;
        /* one sample: straight into y, from the bias (beta 1); several: into tmp, then out */
        float *out = m == 1 ? y + n0 * g->oc * pp : sc->tmp;
        if (m == 1 && b)
            for (int64_t o = 0; o < g->oc; o++)
                for (int64_t j = 0; j < pp; j++) out[o * pp + j] = b[o];
        float beta = m == 1 && b ? 1.0f : 0.0f;
        for (int64_t grp = 0; grp < g->groups; grp++) {
            const float *cm = columns(p, sc, x, n0, m, grp, g);
            nb__cpu_gemm(false, false, cog, cols, p->k, 1.0f, w + grp * cog * p->k, p->k, cm, cols,
                         beta, out + grp * cog * cols, cols);
        }
        if (m == 1) continue;
        for (int64_t s = 0; s < m; s++)
            for (int64_t o = 0; o < g->oc; o++) {
                float *restrict d = y + ((n0 + s) * g->oc + o) * pp;
                const float *restrict src = sc->tmp + (o * m + s) * pp;
                float bo = b ? b[o] : 0.0f;
                for (int64_t j = 0; j < pp; j++) d[j] = src[j] + bo;
            }
    }
}

/* The grid side of samples n0 .. n0 + m as one [oc, m P] matrix: dy itself for one sample,
 * else gathered side by side into tmp. */
static const float *grid_of(const conv_plan *p, const scratch *sc, const float *dy, int64_t n0,
                            int64_t m, const nb_conv2d_geom *g) {
    int64_t pp = p->p;
    if (m == 1) return dy + n0 * g->oc * pp;
    for (int64_t o = 0; o < g->oc; o++)
        for (int64_t s = 0; s < m; s++)
            memcpy(sc->tmp + (o * m + s) * pp, dy + ((n0 + s) * g->oc + o) * pp,
                   sizeof(float) * (size_t)pp);
    return sc->tmp;
}

/* dx [n, c, h, w] = col2im(w^T dy) + b, per group, for samples lo .. hi. */
static void data_range(const conv_plan *p, const scratch *sc, float *dx, const float *dy,
                       const float *w, const float *b, const nb_conv2d_geom *g, int64_t lo,
                       int64_t hi) {
    int64_t cog = g->oc / g->groups, cg = g->c / g->groups, hw = g->h * g->w, pp = p->p;
    for (int64_t n0 = lo; n0 < hi; n0 += p->chunk) {
        int64_t m = min64(hi - n0, p->chunk), cols = m * pp;
        const float *d = grid_of(p, sc, dy, n0, m, g);
        float *xs = dx + n0 * g->c * hw;
        for (int64_t ci = 0; ci < m * g->c; ci++) { /* the bias (or 0), then += contributions */
            float v = b ? b[ci % g->c] : 0.0f;
            for (int64_t j = 0; j < hw; j++) xs[ci * hw + j] = v;
        }
        for (int64_t grp = 0; grp < g->groups; grp++) {
            const float *wg = w + grp * cog * p->k, *dg = d + grp * cog * cols;
            float *xg = xs + grp * cg * hw;
            if (p->direct && m == 1) { /* col2im of a direct plan is the identity */
                nb__cpu_gemm(true, false, p->k, cols, cog, 1.0f, wg, p->k, dg, cols, 1.0f, xg,
                             cols);
                continue;
            }
            nb__cpu_gemm(true, false, p->k, cols, cog, 1.0f, wg, p->k, dg, cols, 0.0f, sc->col,
                         cols);
            for (int64_t s = 0; s < m; s++)
                col2im(p, xg + s * g->c * hw, sc->col + s * pp, cols, cg, sc->pad, g);
        }
    }
}

/* The sum of x[0..n): 16 running sums in a fixed order (vectorised), then added in pairs. */
static float row_sum(const float *x, int64_t n) {
    float acc[16] = {0};
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++) acc[k] += x[j + k];
    for (; j < n; j++) acc[j % 16] += x[j];
    for (int w = 8; w > 0; w /= 2)
        for (int k = 0; k < w; k++) acc[k] += acc[k + w];
    return acc[0];
}

/* The weight pass of samples lo .. hi into the range's partial: dw transposed, per group
 * [K, oc/G] = col(x) dy_g^T summed over the samples (beta 1 after the first chunk) — this way
 * round the GEMM runs 15% faster on LeNet's shapes than dy col^T —, then db [oc] = the sum of
 * dy over the samples and cells (when wanted), while dy is cached. */
static void weight_range(const conv_plan *p, const scratch *sc, bool want_db, const float *x,
                         const float *dy, const nb_conv2d_geom *g, int64_t lo, int64_t hi) {
    int64_t cog = g->oc / g->groups, pp = p->p;
    float beta = 0.0f, *db = sc->part + g->oc * p->k;
    if (want_db) memset(db, 0, sizeof(float) * (size_t)g->oc);
    zero_pad(p, sc->pad);
    for (int64_t n0 = lo; n0 < hi; n0 += p->chunk, beta = 1.0f) {
        int64_t m = min64(hi - n0, p->chunk), cols = m * pp;
        const float *d = grid_of(p, sc, dy, n0, m, g);
        for (int64_t o = 0; want_db && o < g->oc; o++) db[o] += row_sum(d + o * cols, cols);
        for (int64_t grp = 0; grp < g->groups; grp++) {
            const float *cm = columns(p, sc, x, n0, m, grp, g);
            nb__cpu_gemm(false, true, p->k, cog, cols, 1.0f, cm, cols, d + grp * cog * cols, cols,
                         beta, sc->part + grp * p->k * cog, cog);
        }
    }
}

typedef enum { PASS_FORWARD, PASS_DATA, PASS_WEIGHT } conv_pass;

/* Runs one pass over sample range t with its own scratch.  The weight pass leaves the range's
 * sums in its partial (db too when b is not NULL). */
static void run_range(conv_pass pass, const conv_plan *p, int t, float *out, const float *a,
                      const float *c, float *b, const nb_conv2d_geom *g, void *ws) {
    int64_t lo, hi;
    range_of(g->n, p->threads, t, &lo, &hi);
    scratch sc = scratch_of(p, ws, t);
    switch (pass) {
    case PASS_FORWARD: forward_range(p, &sc, out, a, c, b, g, lo, hi); break;
    case PASS_DATA: data_range(p, &sc, out, a, c, b, g, lo, hi); break;
    case PASS_WEIGHT: weight_range(p, &sc, b != NULL, a, c, g, lo, hi); break;
    }
}

/* One pass's arguments, for its ranges. */
typedef struct {
    conv_pass pass;
    const conv_plan *p;
    float *out, *b;
    const float *a, *c;
    const nb_conv2d_geom *g;
    void *ws;
} conv_job;

static void range_piece(void *arg, int64_t t, int64_t end) {
    const conv_job *j = arg;
    (void)end;
    run_range(j->pass, j->p, (int)t, j->out, j->a, j->c, j->b, j->g, j->ws);
}

/* Every range, one piece each (fewer threads take several in turn); one range runs inline. */
static void run_ranges(conv_pass pass, const conv_plan *p, float *out, const float *a,
                       const float *c, float *b, const nb_conv2d_geom *g, void *ws) {
    conv_job j = {pass, p, out, b, a, c, g, ws};
    nb__parallel_each(p->threads, range_piece, &j);
}

void nb__cpu_conv2d(float *y, const float *x, const float *w, const float *b,
                    const nb_conv2d_geom *g, void *ws) {
    conv_plan p = plan_for(g);
    run_ranges(PASS_FORWARD, &p, y, x, w, (float *)b, g, ws);
}

void nb__cpu_conv2d_backward_data(float *dx, const float *dy, const float *w, const float *b,
                                  const nb_conv2d_geom *g, void *ws) {
    conv_plan p = plan_for(g);
    run_ranges(PASS_DATA, &p, dx, dy, w, (float *)b, g, ws);
}

void nb__cpu_conv2d_backward_weight(float *dw, float *db, const float *x, const float *dy,
                                    const nb_conv2d_geom *g, void *ws) {
    conv_plan p = plan_for(g);
    int64_t size = g->oc * p.k;
    if (g->n == 0) { /* no sample: no range runs, and the sum of nothing is 0 */
        memset(dw, 0, sizeof(float) * (size_t)size);
        if (db) memset(db, 0, sizeof(float) * (size_t)g->oc);
        return;
    }
    run_ranges(PASS_WEIGHT, &p, NULL, x, dy, db, g, ws);
    /* dw [grp cog + o, k] = sum over ranges of partial [grp][k][o], in range order: fixed bits */
    int64_t cog = g->oc / g->groups;
    for (int64_t grp = 0; grp < g->groups; grp++)
        for (int64_t o = 0; o < cog; o++) {
            float *d = dw + (grp * cog + o) * p.k;
            for (int64_t k = 0; k < p.k; k++) d[k] = 0.0f;
            for (int t = 0; t < p.threads; t++) {
                const float *part = scratch_of(&p, ws, t).part + grp * p.k * cog + o;
                for (int64_t k = 0; k < p.k; k++) d[k] += part[k * cog];
            }
        }
    for (int64_t o = 0; db && o < g->oc; o++) {
        db[o] = 0.0f;
        for (int t = 0; t < p.threads; t++) db[o] += scratch_of(&p, ws, t).part[size + o];
    }
}
