/*
 * qconv.c — the int8 convolution (backend.h's qconv2d): a batch of uint8 NCHW images through
 * im2row + one uint8 x int8 GEMM per chunk of images, max pooled, requantized.
 *
 * Orientation.  Each output cell (b, i, j) is a row of A [cells, lda]: its taps in the order
 * (ki, kj, ci), read from the image padded and turned channels-last once, so that a row is kh
 * runs of kw c consecutive bytes (LeNet's second layer: 5 runs of 80).  The weight, reordered
 * to [oc, kh, kw, c] once per call, is the GEMM's B^T (a Linear layer's weight), so
 *
 *   acc [cells, oc] = (A - zx) (W - zw)^T        (gemm_u8s8s32, exact in int32)
 *
 * The GEMM reads A's groups of 4 taps in place and packs only B, which is small (oc x taps):
 * the other orientation, w col(x) with the image as B, packed every image's columns into
 * VNNI's groups, and that packing cost as much as the products.  A's rows are lda = taps rounded
 * up to 4 bytes long, the last bytes the pad code: gemm_u8s8s32 reads the last group whole when
 * lda allows it (their products meet the packed B's zeros past k).  A pixel outside the image is
 * zx, so its term is (zx - zx) (w - zw) = 0, as a zero is in the float convolution.
 *
 * The sums, [cells, oc] per chunk, are max pooled first, per image, as int32: the
 * requantization is a non-decreasing map of the sum (float conversion, + bias, x a positive
 * scale, rounding and clamping all are), so the largest code of a window is the code of its
 * largest sum, bit for bit, and a 2x2 pool leaves a quarter of the sums to requantize.  The
 * pool writes its result channels first (NCHW; with no pool a 1x1 window only transposes), and
 * requantize, per row (= output channel) now, writes the image's y from it.
 *
 * Chunks and threads.  `chunk` images make one GEMM (their A fits half an L2 cache), so B's
 * panels are packed once for many rows; the images are cut into `threads` contiguous ranges,
 * pieces of the pool's job, each with its own scratch.  Integer sums are exact and every output
 * element is written by one piece, so the result is the same bits whatever the thread count.
 */
#include "cpu.h"

#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NB_QCONV_AVX512 1
#endif

#define A_BYTES_MAX (512u << 10) /* A's bytes per GEMM */
#define SLACK 32                 /* bytes past A and the padded image: row copies move 32 at a time */
/* Below this many multiply-adds per call one thread does it all (the int8 GEMM's threshold). */
#define PARALLEL_MIN_MACS (1 << 24)

typedef struct {
    int threads;
    int64_t chunk;        /* images per GEMM */
    int64_t taps, lda;    /* c kh kw, and A's row length: taps rounded up to 4 */
    int64_t cells;        /* oh ow */
    int64_t hp, wp;       /* the padded image the taps reach */
    size_t a, pad, acc, pooled, row; /* bytes per thread: A, the padded image, the sums, one
                                      * image's pooled sums (channels first), the pool's rows */
    size_t w;              /* bytes of the reordered weight (shared) */
} qconv_plan;

static size_t lines(int64_t bytes) { return (size_t)(bytes + 63) / 64 * 64; }

static qconv_plan plan_for(const nb_conv2d_geom *g) {
    qconv_plan p = {.threads = 1, .chunk = 1};
    p.taps = g->c * g->kh * g->kw;
    p.lda = (p.taps + 3) / 4 * 4;
    p.cells = g->oh * g->ow;
    p.hp = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    p.wp = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1;
    double macs = (double)g->n * (double)p.cells * (double)g->oc * (double)p.taps;
    if (!nb__in_parallel() && macs >= PARALLEL_MIN_MACS) p.threads = nb__threads();
    if (p.threads > g->n) p.threads = g->n > 0 ? (int)g->n : 1;
    int64_t per_thread = (g->n + p.threads - 1) / p.threads;
    p.chunk = (int64_t)A_BYTES_MAX / (p.cells * p.lda);
    if (p.chunk > per_thread) p.chunk = per_thread;
    if (p.chunk < 1) p.chunk = 1;
    int64_t rows = p.chunk * p.cells;
    p.a = lines(rows * p.lda + SLACK);
    p.acc = lines(rows * g->oc * (int64_t)sizeof(int32_t));
    p.pooled = lines(p.cells * g->oc * (int64_t)sizeof(int32_t));
    p.pad = lines(p.hp * p.wp * g->c + SLACK);
    p.row = lines(g->ow * g->oc * (int64_t)sizeof(int32_t));
    p.w = lines(g->oc * p.taps);
    return p;
}

size_t nb__cpu_qconv2d_workspace(const nb_conv2d_geom *g) {
    qconv_plan p = plan_for(g);
    return p.w + (size_t)p.threads * (p.a + p.pad + p.acc + p.pooled + 2 * p.row);
}

/* wr [oc, kh, kw, c] = w [oc, c, kh, kw]: the taps in im2row's order. */
static void reorder_weight(int8_t *restrict wr, const int8_t *restrict w, const nb_conv2d_geom *g) {
    int64_t k2 = g->kh * g->kw;
    for (int64_t o = 0; o < g->oc; o++, w += g->c * k2, wr += g->c * k2)
        for (int64_t ci = 0; ci < g->c; ci++)
            for (int64_t t = 0; t < k2; t++) wr[t * g->c + ci] = w[ci * k2 + t];
}

/* pad [hp, wp, c] = image x [c, h, w] channels-last, shifted by (ph, pw), `code` outside it. */
NB_CLONES static void pad_channels_last(uint8_t *restrict pad, const uint8_t *restrict x, uint8_t code,
                                        const nb_conv2d_geom *g, const qconv_plan *p) {
    memset(pad, code, (size_t)(p->hp * p->wp * g->c));
    int64_t r0 = g->ph, r1 = g->ph + g->h < p->hp ? g->ph + g->h : p->hp;
    int64_t c0 = g->pw, c1 = g->pw + g->w < p->wp ? g->pw + g->w : p->wp;
    for (int64_t ci = 0; ci < g->c; ci++)
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *src = x + (ci * g->h + r - g->ph) * g->w - g->pw;
            uint8_t *dst = pad + r * p->wp * g->c + ci;
            for (int64_t q = c0; q < c1; q++) dst[q * g->c] = src[q];
        }
}

/* d [len] = s [len], 8 bytes when len <= 8 (LeNet's first layer: runs of 5), else 32 at a time
 * (wider stores split cache lines more often): up to 31 bytes past each end are read and
 * written (the SLACK after A and the padded image; what lands past a run is overwritten next). */
static inline void copy_run(uint8_t *d, const uint8_t *s, int64_t len) {
    if (len <= 8) {
        memcpy(d, s, 8);
        return;
    }
    for (int64_t t = 0; t < len; t += 32) memcpy(d + t, s + t, 32);
}

/* Rows [cells, lda] of A for one image padded channels-last: row (i, j) holds the taps
 * (ki, kj, ci) of output (i, j), then `code` up to lda.  (The geometry is read into locals
 * first: the byte stores could alias it, and gcc reloaded it for every run.) */
NB_CLONES static void im2row(uint8_t *a, const uint8_t *pad, uint8_t code,
                             const nb_conv2d_geom *g, const qconv_plan *p) {
    const int64_t oh = g->oh, ow = g->ow, kh = g->kh, kw = g->kw, c = g->c, lda = p->lda;
    const int64_t taps = p->taps, run = kw * c, line = p->wp * c, down = g->sh * line;
    const int64_t across = g->sw * c, tap_down = g->dh * line, tap_across = g->dw * c;
    for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++, a += lda) {
            const uint8_t *s = pad + i * down + j * across;
            uint8_t *d = a;
            for (int64_t ki = 0; ki < kh; ki++, s += tap_down, d += run) {
                if (tap_across == c) copy_run(d, s, run);
                else
                    for (int64_t kj = 0; kj < kw; kj++) copy_run(d + kj * c, s + kj * tap_across, c);
            }
            memset(a + taps, code, 4); /* to lda (past it: the next row's start, or SLACK) */
        }
}

#ifdef NB_QCONV_AVX512
/* im2row's rows when a kernel row is one short run (kw c <= 16, dw 1: LeNet's first layer,
 * runs of 5), with masked moves that write nothing past a run: so the copies go a kernel row
 * at a time along a grid row, one tight loop per (i, ki) instead of a nest per cell (which
 * cost as much as the layer's GEMM).  Call only when nb__cpu_isa() is NB_ISA_AVX512. */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void im2row_short(
    uint8_t *a, const uint8_t *pad, uint8_t code, const nb_conv2d_geom *g, const qconv_plan *p) {
    const int64_t ow = g->ow, lda = p->lda, taps = p->taps, run = g->kw * g->c;
    const int64_t line = p->wp * g->c, across = g->sw * g->c;
    const __mmask16 m = (__mmask16)((1u << run) - 1), tail = (__mmask16)((1u << (lda - taps)) - 1);
    const __m128i fill = _mm_set1_epi8((char)code);
    for (int64_t i = 0; i < g->oh; i++, a += ow * lda) {
        for (int64_t ki = 0; ki < g->kh; ki++) {
            const uint8_t *s = pad + (i * g->sh + ki * g->dh) * line;
            uint8_t *d = a + ki * run;
            for (int64_t j = 0; j < ow; j++, s += across, d += lda)
                _mm_mask_storeu_epi8(d, m, _mm_maskz_loadu_epi8(m, s));
        }
        for (int64_t j = 0; tail && j < ow; j++) _mm_mask_storeu_epi8(a + j * lda + taps, tail, fill);
    }
}
#endif

/* y [c, pg->oh, pg->ow] = the largest sum of each window of z [pg->h, pg->w, c] (channels
 * last), the window clipped to the grid.  Windows inside the grid (no padding reached: LeNet's
 * 2x2 pools, and the 1x1 window that only transposes) go a row of windows at a time through
 * long loops: t [w c] the maxima over the window's rows, u those over its columns (t[x + kj c]
 * is column kj further on); the others one window at a time.  t, u: pg->w c sums each. */
NB_CLONES static void pool_transposed(int32_t *restrict y, const int32_t *restrict z, int64_t c,
                                      const nb_pool2d_geom *pg, int32_t *restrict t,
                                      int32_t *restrict u) {
    int64_t plane = pg->oh * pg->ow, line = pg->w * c, span = line - (pg->kw - 1) * c;
    bool inside = pg->ph == 0 && pg->pw == 0 && (pg->oh - 1) * pg->sh + pg->kh <= pg->h &&
                  (pg->ow - 1) * pg->sw + pg->kw <= pg->w;
    for (int64_t i = 0; i < pg->oh; i++) {
        int64_t r0 = i * pg->sh - pg->ph, r1 = r0 + pg->kh;
        r0 = r0 > 0 ? r0 : 0;
        r1 = r1 < pg->h ? r1 : pg->h;
        if (inside) {
            const int32_t *zr = z + r0 * line, *rows = zr, *cols = zr;
            if (pg->kh > 1) {
                for (int64_t x = 0; x < line; x++) t[x] = zr[x];
                for (int64_t r = 1; r < pg->kh; r++)
                    for (int64_t x = 0; x < line; x++) t[x] = zr[r * line + x] > t[x] ? zr[r * line + x] : t[x];
                rows = cols = t;
            }
            if (pg->kw > 1) {
                for (int64_t x = 0; x < span; x++) u[x] = rows[x];
                for (int64_t kj = 1; kj < pg->kw; kj++)
                    for (int64_t x = 0; x < span; x++) u[x] = rows[x + kj * c] > u[x] ? rows[x + kj * c] : u[x];
                cols = u;
            }
            for (int64_t o = 0; o < c; o++)
                for (int64_t j = 0; j < pg->ow; j++) y[o * plane + i * pg->ow + j] = cols[j * pg->sw * c + o];
            continue;
        }
        for (int64_t j = 0; j < pg->ow; j++) {
            int64_t s0 = j * pg->sw - pg->pw, s1 = s0 + pg->kw;
            s0 = s0 > 0 ? s0 : 0;
            s1 = s1 < pg->w ? s1 : pg->w;
            for (int64_t o = 0; o < c; o++) {
                int32_t m = INT32_MIN;
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t s = s0; s < s1; s++) m = z[(r * pg->w + s) * c + o] > m ? z[(r * pg->w + s) * c + o] : m;
                y[o * plane + i * pg->ow + j] = m;
            }
        }
    }
}

typedef struct {
    void *y;
    const uint8_t *x;
    uint8_t zx;
    const int8_t *wr;
    const int32_t *wzp;
    const nb__requant_args *q;
    const nb_pool2d_geom *pool;
    uint8_t *ws;
    const nb_conv2d_geom *g;
    qconv_plan p;
} qconv_job;

/* Images [lo, hi) of the batch with range t's scratch, `chunk` images per GEMM. */
static void conv_images(const qconv_job *jb, int t, int64_t lo, int64_t hi) {
    const nb_conv2d_geom *g = jb->g;
    const qconv_plan *p = &jb->p;
    uint8_t *base = jb->ws + p->w + (size_t)t * (p->a + p->pad + p->acc + p->pooled + 2 * p->row);
    uint8_t *a = base, *pad = a + p->a;
    int32_t *acc = (int32_t *)(pad + p->pad), *pooled = (int32_t *)((uint8_t *)acc + p->acc);
    int32_t *row0 = (int32_t *)((uint8_t *)pooled + p->pooled), *row1 = (int32_t *)((uint8_t *)row0 + p->row);
    int64_t oc = g->oc, image = g->c * g->h * g->w;
    nb_pool2d_geom pg = jb->pool ? *jb->pool
                                 : (nb_pool2d_geom){.oh = g->oh, .ow = g->ow, .kh = 1, .kw = 1, .sh = 1, .sw = 1};
    pg.h = g->oh, pg.w = g->ow;
    int64_t out_plane = pg.oh * pg.ow;
    size_t es = jb->q->out == NB_QOUT_F32 ? sizeof(float) : 1;
    /* the sums arrive per column (output channel) and are requantized per row once transposed */
    nb__requant_args q = *jb->q;
    if (q.axis == NB_QAXIS_COL) q.axis = NB_QAXIS_ROW;
#ifdef NB_QCONV_AVX512
    bool short_runs = g->dw == 1 && g->kw * g->c <= 16 && nb__cpu_isa() == NB_ISA_AVX512;
#endif
    for (int64_t b0 = lo; b0 < hi; b0 += p->chunk) {
        int64_t nb = hi - b0 < p->chunk ? hi - b0 : p->chunk, rows = nb * p->cells;
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *ab = a + b * p->cells * p->lda;
            pad_channels_last(pad, jb->x + (b0 + b) * image, jb->zx, g, p);
#ifdef NB_QCONV_AVX512
            if (short_runs) {
                im2row_short(ab, pad, jb->zx, g, p);
                continue;
            }
#endif
            im2row(ab, pad, jb->zx, g, p);
        }
        for (int64_t j0 = 0, j1; j0 < oc; j0 = j1) { /* runs of one weight zero point */
            for (j1 = j0 + 1; j1 < oc && jb->wzp[j1] == jb->wzp[j0]; j1++) {}
            nb__cpu_gemm_u8s8s32(acc + j0, oc, false, true, rows, j1 - j0, p->taps, a, p->lda, jb->zx,
                                 jb->wr + j0 * p->taps, p->taps, (int8_t)jb->wzp[j0]);
        }
        for (int64_t b = 0; b < nb; b++) {
            pool_transposed(pooled, acc + b * p->cells * oc, oc, &pg, row0, row1);
            uint8_t *yb = (uint8_t *)jb->y + (size_t)((b0 + b) * oc * out_plane) * es;
            nb__cpu_requantize(yb, out_plane, pooled, out_plane, oc, out_plane, &q);
        }
    }
}

static void conv_piece(void *arg, int64_t t, int64_t end) {
    const qconv_job *jb = arg;
    (void)end;
    int64_t n = jb->g->n;
    conv_images(jb, (int)t, n * t / jb->p.threads, n * (t + 1) / jb->p.threads);
}

void nb__cpu_qconv2d(void *y, const uint8_t *x, uint8_t zx, const int8_t *w, const int32_t *wzp,
                     const nb__requant_args *q, const nb_pool2d_geom *pool, void *ws,
                     const nb_conv2d_geom *g) {
    qconv_job jb = {y, x, zx, ws, wzp, q, pool, ws, g, plan_for(g)};
    reorder_weight((int8_t *)ws, w, g);
    if (jb.p.threads < 2) conv_images(&jb, 0, 0, g->n);
    else nb__parallel_each(jb.p.threads, conv_piece, &jb);
}
