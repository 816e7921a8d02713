/*
 * test_conv.c — conv2d and conv_transpose2d beyond the op-table cases (test_gradcheck.c and
 * test_golden.c run those): errors and their messages; the fast path (im2col + GEMM, samples
 * folded into one GEMM, threads over samples, the 1x1 path) against naive loops in double on
 * shapes large enough to take every path; the same bits for the same thread count; no malloc
 * in a warm step; nothing left behind with no scope open.
 *
 * The naive references are the definitions, one multiply-add per (output, tap):
 *   conv2d            y[n, o, i, j] = b[o] + sum over cl, ki, kj of
 *                         w[o, cl, ki, kj] x[n, g cg + cl, i sh - ph + ki dh, j sw - pw + kj dw]
 *   conv_transpose2d  y[n, g cog + ol, i sh - ph + ki dh, j sw - pw + kj dw] +=
 *                         x[n, ci, i, j] w[ci, ol, ki, kj]                       (and + b)
 * with g the group of o (or ci); and, for L = sum(y R), dx, dw and db accumulated in the same
 * loops (each term's derivative).  Tolerance 1e-4 absolute + relative: sums of at most 108
 * float32 products against double.
 */
#include "check.h"

#include <stdlib.h>

#define TOL 1e-4

static uint64_t rng_state = 0x5eed;

static float uniform(void) { /* SplitMix64 -> [-1, 1) */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 11) * 0x1p-52 - 1.0);
}

static float *random_values(int64_t n) {
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = uniform();
    return v;
}

static int64_t numel4(const int64_t s[4]) { return s[0] * s[1] * s[2] * s[3]; }

/* ---------------------------------------------------------------- errors */

static nb_tensor *zeros4(int64_t a, int64_t b, int64_t c, int64_t d) {
    return nb_zeros(4, (int64_t[]){a, b, c, d});
}

static void conv2d_rejects_channel_mismatch_naming_both_shapes(void) {
    nb_scope_begin();
    CHECK(!nb_conv2d(zeros4(2, 3, 8, 8), zeros4(4, 2, 3, 3), NULL, NULL));
    const char *m = nb_error_message();
    CHECK_STR_CONTAINS(m, "[2,3,8,8]");
    CHECK_STR_CONTAINS(m, "[4,2,3,3]");
    CHECK_ERROR(NB_ERR_SHAPE,
                "conv2d: input [2,3,8,8] has 3 channels but weight [4,2,3,3] expects 2");
    CHECK(!nb_conv_transpose2d(zeros4(1, 3, 4, 4), zeros4(4, 2, 3, 3), NULL, NULL));
    CHECK_ERROR(NB_ERR_SHAPE,
                "conv_transpose2d: input [1,3,4,4] has 3 channels but weight [4,2,3,3]");
    nb_scope_end();
}

static void conv2d_rejects_groups_not_dividing_channels(void) {
    nb_scope_begin();
    CHECK(!nb_conv2d(zeros4(1, 3, 5, 5), zeros4(4, 1, 3, 3), NULL, &(nb_conv2d_opts){.groups = 2}));
    CHECK_ERROR(NB_ERR_SHAPE, "input [1,3,5,5] has 3 channels, which groups = 2 does not divide");
    CHECK(!nb_conv2d(zeros4(1, 4, 5, 5), zeros4(3, 2, 3, 3), NULL, &(nb_conv2d_opts){.groups = 2}));
    CHECK_ERROR(NB_ERR_SHAPE, "weight [3,2,3,3] has 3 output channels, which groups = 2");
    CHECK(!nb_conv_transpose2d(zeros4(1, 3, 5, 5), zeros4(3, 1, 3, 3), NULL,
                               &(nb_conv_transpose2d_opts){.groups = 2}));
    CHECK_ERROR(NB_ERR_SHAPE, "groups = 2 does not divide");
    CHECK(!nb_conv2d(zeros4(1, 4, 5, 5), zeros4(4, 4, 3, 3), NULL,
                     &(nb_conv2d_opts){.groups = -1}));
    CHECK_ERROR(NB_ERR_ARG, "groups must be >= 1");
    nb_scope_end();
}

static void conv2d_rejects_kernel_larger_than_padded_input(void) {
    nb_scope_begin();
    CHECK(!nb_conv2d(zeros4(1, 1, 3, 3), zeros4(1, 1, 5, 5), NULL, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "is larger than the padded input (3)");
    /* padding makes room; dilation takes it away again */
    CHECK(nb_conv2d(zeros4(1, 1, 3, 3), zeros4(1, 1, 5, 5), NULL,
                    &(nb_conv2d_opts){.padding = {1, 1}}));
    CHECK(!nb_conv2d(zeros4(1, 1, 5, 5), zeros4(1, 1, 3, 3), NULL,
                     &(nb_conv2d_opts){.dilation = {3, 3}}));
    CHECK_ERROR(NB_ERR_SHAPE, "spanning 7 with dilation 3");
    nb_scope_end();
}

static void conv2d_same_rejects_stride_2(void) {
    nb_scope_begin();
    CHECK(!nb_conv2d(zeros4(1, 1, 6, 6), zeros4(1, 1, 3, 3), NULL,
                     &(nb_conv2d_opts){.same = true, .stride = {2, 2}}));
    CHECK_ERROR(NB_ERR_ARG, "padding='same' is not supported for strided convolutions");
    nb_tensor *y = nb_conv2d(zeros4(1, 1, 6, 7), zeros4(1, 1, 4, 3), NULL,
                             &(nb_conv2d_opts){.same = true, .dilation = {1, 2}});
    CHECK(y && nb_shape(y)[2] == 6 && nb_shape(y)[3] == 7);
    nb_scope_end();
}

static void conv_transpose2d_rejects_bad_output_padding(void) {
    nb_scope_begin();
    nb_tensor *x = zeros4(1, 2, 3, 3), *w = zeros4(2, 2, 3, 3);
    CHECK(!nb_conv_transpose2d(x, w, NULL, &(nb_conv_transpose2d_opts){.stride = {2, 2},
                                                                      .output_padding = {2, 0}}));
    CHECK_ERROR(NB_ERR_ARG, "output_padding [2, 0] must be smaller than either stride [2, 2] or "
                            "dilation [1, 1]");
    CHECK(!nb_conv_transpose2d(x, w, NULL, &(nb_conv_transpose2d_opts){.output_padding = {0, -1}}));
    CHECK_ERROR(NB_ERR_ARG, "output_padding must be >= 0");
    /* smaller than the dilation is enough, as in torch */
    nb_conv_transpose2d_opts by_dilation = {.output_padding = {1, 1}, .dilation = {2, 2}};
    nb_tensor *y = nb_conv_transpose2d(x, w, NULL, &by_dilation);
    CHECK(y && nb_shape(y)[2] == 8 && nb_shape(y)[3] == 8);
    CHECK(!nb_conv_transpose2d(zeros4(1, 1, 1, 1), zeros4(1, 1, 1, 1), NULL,
                               &(nb_conv_transpose2d_opts){.padding = {1, 1}}));
    CHECK_ERROR(NB_ERR_SHAPE, "is not positive");
    nb_scope_end();
}

static void conv_rejects_bad_shapes_options_and_inputs(void) {
    nb_scope_begin();
    nb_tensor *x = zeros4(1, 2, 5, 5), *w = zeros4(3, 2, 3, 3);
    CHECK(!nb_conv2d(x, w, nb_zeros(1, (int64_t[]){4}), NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "bias [4] does not match the 3 output channels");
    CHECK(!nb_conv2d(nb_zeros(2, (int64_t[]){5, 5}), w, NULL, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "need input [N, C, H, W] or [C, H, W]");
    CHECK(!nb_conv2d(x, nb_zeros(3, (int64_t[]){3, 2, 3}), NULL, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "weight [3,2,3]");
    CHECK(!nb_conv2d(x, zeros4(3, 2, 0, 3), NULL, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "empty kernel");
    CHECK(!nb_conv2d(x, w, NULL, &(nb_conv2d_opts){.stride = {1, -2}}));
    CHECK_ERROR(NB_ERR_ARG, "conv2d: stride must be >= 0, got [1, -2]");
    CHECK(!nb_conv2d(x, w, NULL, &(nb_conv2d_opts){.padding = {-1, 0}}));
    CHECK_ERROR(NB_ERR_ARG, "padding must be >= 0");
    CHECK(!nb_conv2d(x, w, NULL, &(nb_conv2d_opts){.dilation = {-1, 0}}));
    CHECK_ERROR(NB_ERR_ARG, "dilation must be >= 0");
    CHECK(!nb_conv2d(nb_from_int32((int32_t[]){0}, 4, (int64_t[]){1, 1, 1, 1}), zeros4(1, 1, 1, 1),
                     NULL, NULL));
    CHECK_ERROR(NB_ERR_DTYPE, "conv2d: no int32 kernel (inputs int32 [1,1,1,1], float32");
    CHECK(!nb_conv2d(NULL, w, NULL, NULL));
    CHECK_EQ_INT(nb_error_code(), NB_ERR_NULL);
    nb_error_clear();
    CHECK(!nb_conv_transpose2d(x, NULL, NULL, NULL));
    CHECK_EQ_INT(nb_error_code(), NB_ERR_NULL);
    nb_error_clear();
    nb_scope_end();
}

/* ---------------------------------------------------------------- against naive loops */

typedef struct {
    const char *name;
    bool transposed;
    int64_t x[4], w[4];
    bool bias;
    nb_conv2d_opts conv;
    nb_conv_transpose2d_opts conv_t;
    int threads;
    bool frozen_weight; /* w takes no gradient: the bias gradient is summed on its own */
} ref_case;

/* Options with zeros meaning 1, and the padding at each end (conv2d's 'same' included). */
typedef struct {
    int64_t sh, sw, ph, pw, ph_end, pw_end, dh, dw, g, oph, opw;
} ref_opts;

static ref_opts opts_of(const ref_case *c) {
    const int *st = c->transposed ? c->conv_t.stride : c->conv.stride;
    const int *pad = c->transposed ? c->conv_t.padding : c->conv.padding;
    const int *dil = c->transposed ? c->conv_t.dilation : c->conv.dilation;
    int groups = c->transposed ? c->conv_t.groups : c->conv.groups;
    ref_opts o = {st[0] ? st[0] : 1, st[1] ? st[1] : 1, pad[0], pad[1], pad[0], pad[1],
                  dil[0] ? dil[0] : 1, dil[1] ? dil[1] : 1, groups ? groups : 1,
                  c->conv_t.output_padding[0], c->conv_t.output_padding[1]};
    if (!c->transposed && c->conv.same) {
        int64_t th = o.dh * (c->w[2] - 1), tw = o.dw * (c->w[3] - 1);
        o.ph = th / 2, o.ph_end = th - th / 2, o.pw = tw / 2, o.pw_end = tw - tw / 2;
    }
    return o;
}

/* The arrays of a reference run: inputs, the weights r of L = sum(y r), and what it computes. */
typedef struct {
    const float *x, *w, *b, *r;
    double *y, *dx, *dw, *db;
} ref_arrays;

/* One multiply-add of the definition and its three derivatives: grid cell `grid`, image pixel
 * `img`, weight `wi`.  conv2d's image is x and its grid y; the transposed conv's the other way. */
static void tap(bool transposed, const ref_arrays *a, int64_t grid, int64_t img, int64_t wi) {
    int64_t in = transposed ? grid : img, out = transposed ? img : grid;
    a->y[out] += (double)a->w[wi] * a->x[in];
    a->dx[in] += (double)a->r[out] * a->w[wi];
    a->dw[wi] += (double)a->r[out] * a->x[in];
}

/* y, and the gradients of L = sum(y r), by the definitions (see the top of the file). */
static void reference(const ref_case *c, const int64_t ys[4], const ref_arrays *a) {
    ref_opts o = opts_of(c);
    int64_t n = c->x[0], kh = c->w[2], kw = c->w[3], yc = ys[1], plane = ys[2] * ys[3];
    for (int64_t i = 0; i < numel4(ys); i++) a->y[i] = a->b ? a->b[i / plane % yc] : 0.0;
    for (int64_t i = 0; i < numel4(c->x); i++) a->dx[i] = 0;
    for (int64_t i = 0; i < numel4(c->w); i++) a->dw[i] = 0;
    for (int64_t i = 0; i < yc; i++) a->db[i] = 0;
    for (int64_t i = 0; i < numel4(ys); i++) a->db[i / plane % yc] += a->r[i];
    /* image [n, ic, ih_n, iw_n] and grid [n, gc, gh, gw]; conv2d's w [oc, c/G, kh, kw] and the
     * transposed conv's [c_in, c_out/G, kh, kw] are both [grid, image / G, kh, kw] */
    const int64_t *img = c->transposed ? ys : c->x, *grd = c->transposed ? c->x : ys;
    int64_t ic = img[1], ih_n = img[2], iw_n = img[3], gc = grd[1], gh = grd[2], gw = grd[3];
    int64_t icg = ic / o.g, gcg = gc / o.g;
    for (int64_t s = 0; s < n; s++)
        for (int64_t go = 0; go < gc; go++)
            for (int64_t i = 0; i < gh; i++)
                for (int64_t j = 0; j < gw; j++)
                    for (int64_t cl = 0; cl < icg; cl++)
                        for (int64_t ki = 0; ki < kh; ki++)
                            for (int64_t kj = 0; kj < kw; kj++) {
                                int64_t ci = go / gcg * icg + cl;
                                int64_t ih = i * o.sh - o.ph + ki * o.dh;
                                int64_t iw = j * o.sw - o.pw + kj * o.dw;
                                if (ih < 0 || ih >= ih_n || iw < 0 || iw >= iw_n) continue;
                                tap(c->transposed, a, ((s * gc + go) * gh + i) * gw + j,
                                    ((s * ic + ci) * ih_n + ih) * iw_n + iw,
                                    ((go * icg + cl) * kh + ki) * kw + kj);
                            }
}

static int64_t bias_size(const ref_case *c) {
    return c->transposed ? c->w[1] * opts_of(c).g : c->w[0];
}

/* nabla's y and gradients of sum(y r) into the given arrays; false if the op failed. */
static bool run_nabla(const ref_case *c, const float *xv, const float *wv, const float *bv,
                      const float *r, int64_t ys[4], float *y, float *dx, float *dw, float *db) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data(xv, 4, c->x), *w = nb_from_data(wv, 4, c->w);
    nb_tensor *b = c->bias ? nb_from_data(bv, 1, (int64_t[]){bias_size(c)}) : NULL;
    nb_set_requires_grad(x, true);
    nb_set_requires_grad(w, !c->frozen_weight);
    if (b) nb_set_requires_grad(b, true);
    nb_tensor *out = c->transposed ? nb_conv_transpose2d(x, w, b, &c->conv_t)
                                   : nb_conv2d(x, w, b, &c->conv);
    bool ok = out && nb_ndim(out) == 4;
    if (ok) {
        memcpy(ys, nb_shape(out), sizeof(int64_t) * 4);
        if (r) {
            nb_tensor *rt = nb_from_data(r, 4, ys);
            ok = nb_backward(nb_sum(nb_mul(out, rt))) == NB_OK;
            ok = ok && nb_copy_to(out, y, numel4(ys)) == NB_OK &&
                 nb_copy_to(nb_grad(x), dx, numel4(c->x)) == NB_OK &&
                 (c->frozen_weight || nb_copy_to(nb_grad(w), dw, numel4(c->w)) == NB_OK) &&
                 (!b || nb_copy_to(nb_grad(b), db, nb_numel(b)) == NB_OK);
        }
    }
    if (!ok) CHECK_FAIL_("%s: nabla failed: %s", c->name, nb_error_message());
    nb_error_clear();
    nb_scope_end();
    return ok;
}

static void check_against_reference(const ref_case *c) {
    int threads = nb_get_num_threads();
    nb_set_num_threads(c->threads);
    int64_t ys[4];
    float *xv = random_values(numel4(c->x)), *wv = random_values(numel4(c->w));
    float *bv = random_values(bias_size(c));
    if (run_nabla(c, xv, wv, bv, NULL, ys, NULL, NULL, NULL, NULL)) { /* the output's shape */
        int64_t ny = numel4(ys), nx = numel4(c->x), nw = numel4(c->w), nb = ys[1];
        float *r = random_values(ny), *y = malloc(sizeof(float) * (size_t)ny);
        float *dx = malloc(sizeof(float) * (size_t)nx), *dw = malloc(sizeof(float) * (size_t)nw);
        float *db = malloc(sizeof(float) * (size_t)nb);
        double *ry = malloc(sizeof(double) * (size_t)ny);
        double *rdx = malloc(sizeof(double) * (size_t)nx);
        double *rdw = malloc(sizeof(double) * (size_t)nw);
        double *rdb = malloc(sizeof(double) * (size_t)nb);
        reference(c, ys, &(ref_arrays){xv, wv, c->bias ? bv : NULL, r, ry, rdx, rdw, rdb});
        if (run_nabla(c, xv, wv, bv, r, ys, y, dx, dw, db)) {
            char what[128];
            snprintf(what, sizeof what, "%s: output", c->name);
            CHECK_ARRAY(what, y, ry, ny, TOL, TOL);
            snprintf(what, sizeof what, "%s: input gradient", c->name);
            CHECK_ARRAY(what, dx, rdx, nx, TOL, TOL);
            snprintf(what, sizeof what, "%s: weight gradient", c->name);
            if (!c->frozen_weight) CHECK_ARRAY(what, dw, rdw, nw, TOL, TOL);
            if (c->bias) {
                snprintf(what, sizeof what, "%s: bias gradient", c->name);
                CHECK_ARRAY(what, db, rdb, nb, TOL, TOL);
            }
        }
        free(r), free(y), free(dx), free(dw), free(db), free(ry), free(rdx), free(rdw), free(rdb);
    }
    free(xv), free(wv), free(bv);
    nb_set_num_threads(threads);
}

static void fast_path_matches_naive_loops(void) {
    static const ref_case cases[] = {
        /* every option at once, small enough for one thread and unfolded GEMMs */
        {"conv2d_every_option", false, {4, 6, 11, 13}, {4, 3, 3, 2}, true,
         .conv = {.stride = {2, 1}, .padding = {1, 2}, .dilation = {2, 1}, .groups = 2},
         .threads = 1},
        {"conv2d_same_asymmetric", false, {4, 6, 11, 13}, {6, 3, 4, 3}, false,
         .conv = {.same = true, .dilation = {1, 2}, .groups = 2}, .threads = 2},
        {"conv_transpose2d_every_option", true, {4, 6, 11, 13}, {6, 2, 3, 3}, true,
         .conv_t = {.stride = {2, 3}, .padding = {1, 2}, .output_padding = {1, 0},
                    .dilation = {1, 2}, .groups = 2}, .threads = 1},
        /* two threads, several samples per GEMM (ranges of 4 and 5 in chunks of 3: single
         * samples and folded ones), depthwise */
        {"conv2d_threads_and_folding", false, {9, 8, 20, 20}, {16, 8, 3, 3}, true,
         .conv = {.padding = {1, 1}}, .threads = 2},
        {"conv2d_depthwise_threads", false, {9, 16, 20, 20}, {16, 1, 3, 3}, true,
         .conv = {.padding = {1, 1}, .stride = {2, 2}, .groups = 16}, .threads = 2},
        /* 1x1 with a grid of 1024: one sample per GEMM, read in place (no im2col) */
        {"conv2d_1x1_in_place", false, {4, 16, 32, 32}, {32, 16, 1, 1}, true, .threads = 2},
        {"conv_transpose2d_threads_and_folding", true, {6, 16, 10, 10}, {16, 8, 4, 4}, true,
         .conv_t = {.stride = {2, 2}, .padding = {1, 1}}, .threads = 2},
        {"conv_transpose2d_1x1_in_place", true, {3, 16, 32, 32}, {16, 32, 1, 1}, false,
         .threads = 2},
        {"conv2d_frozen_weight", false, {9, 8, 20, 20}, {16, 8, 3, 3}, true,
         .conv = {.padding = {1, 1}}, .threads = 2, .frozen_weight = true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_against_reference(&cases[i]);
}

/* ---------------------------------------------------------------- threads, memory */

static void same_thread_count_gives_same_bits(void) {
    const ref_case c = {"bits", false, {9, 8, 20, 20}, {16, 8, 3, 3}, true,
                        .conv = {.padding = {1, 1}}};
    int threads = nb_get_num_threads();
    int64_t ys[4] = {9, 16, 20, 20}, ny = numel4(ys), nx = numel4(c.x), nw = numel4(c.w);
    float *xv = random_values(nx), *wv = random_values(nw), *bv = random_values(16);
    float *r = random_values(ny);
    float *out[3][4];
    for (int k = 0; k < 3; k++) {
        out[k][0] = malloc(sizeof(float) * (size_t)ny);
        out[k][1] = malloc(sizeof(float) * (size_t)nx);
        out[k][2] = malloc(sizeof(float) * (size_t)nw);
        out[k][3] = malloc(sizeof(float) * 16);
        nb_set_num_threads(k < 2 ? 2 : 1);
        run_nabla(&c, xv, wv, bv, r, ys, out[k][0], out[k][1], out[k][2], out[k][3]);
    }
    const int64_t n[4] = {ny, nx, nw, 16};
    for (int i = 0; i < 4; i++) {
        CHECK(memcmp(out[0][i], out[1][i], sizeof(float) * (size_t)n[i]) == 0);
        double *one = malloc(sizeof(double) * (size_t)n[i]);
        for (int64_t k = 0; k < n[i]; k++) one[k] = out[2][i][k];
        CHECK_ARRAY("two threads against one", out[0][i], one, n[i], TOL, TOL);
        free(one);
    }
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 4; i++) free(out[k][i]);
    free(xv), free(wv), free(bv), free(r);
    nb_set_num_threads(threads);
}

/* A warm training step of a small CNN calls malloc zero times: the im2col workspace comes from
 * the step's arena. */
static void warm_step_allocates_nothing(void) {
    nb_tensor *w1 = nb_randn(4, (int64_t[]){8, 1, 5, 5});
    nb_tensor *w2 = nb_randn(4, (int64_t[]){4, 8, 3, 3});
    nb_tensor *wt = nb_randn(4, (int64_t[]){4, 2, 2, 2});
    nb_tensor *x = nb_randn(4, (int64_t[]){8, 1, 16, 16});
    nb_set_requires_grad(w1, true);
    nb_set_requires_grad(w2, true);
    nb_set_requires_grad(wt, true);
    uint64_t before = 0;
    for (int step = 0; step < 3; step++) {
        if (step == 2) before = nb_alloc_stats_get().mallocs;
        nb_scope_begin();
        nb_tensor *h = nb_relu(nb_conv2d(x, w1, NULL, &(nb_conv2d_opts){.padding = {2, 2}}));
        h = nb_conv2d(h, w2, NULL, &(nb_conv2d_opts){.stride = {2, 2}, .padding = {1, 1}});
        h = nb_conv_transpose2d(h, wt, NULL, &(nb_conv_transpose2d_opts){.stride = {2, 2}});
        CHECK_EQ_INT(nb_backward(nb_sum(h)), NB_OK);
        nb_scope_end();
    }
    CHECK_EQ_INT(nb_alloc_stats_get().mallocs - before, 0);
    nb_tensor_free(w1), nb_tensor_free(w2), nb_tensor_free(wt), nb_tensor_free(x);
}

/* With no scope open the workspace is a heap buffer given back before the op returns. */
static void no_scope_leaves_nothing_behind(void) {
    nb_tensor *x = nb_randn(4, (int64_t[]){2, 3, 9, 9}), *w = nb_randn(4, (int64_t[]){4, 3, 3, 3});
    size_t live = nb_alloc_stats_get().bytes_live;
    nb_tensor *y = nb_conv2d(x, w, NULL, NULL);
    nb_tensor *z = nb_conv_transpose2d(y, w, NULL, NULL);
    CHECK(y && z && nb_shape(z)[1] == 3 && nb_shape(z)[2] == 9);
    nb_tensor *x3 = nb_randn(3, (int64_t[]){3, 9, 9}), *u = nb_conv2d(x3, w, NULL, NULL);
    CHECK(u && nb_ndim(u) == 3 && nb_shape(u)[0] == 4);
    nb_tensor_free(u);
    nb_tensor_free(x3);
    nb_tensor_free(z);
    nb_tensor_free(y);
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, live);
    nb_tensor_free(x);
    nb_tensor_free(w);
}

int main(void) {
    conv2d_rejects_channel_mismatch_naming_both_shapes();
    conv2d_rejects_groups_not_dividing_channels();
    conv2d_rejects_kernel_larger_than_padded_input();
    conv2d_same_rejects_stride_2();
    conv_transpose2d_rejects_bad_output_padding();
    conv_rejects_bad_shapes_options_and_inputs();
    fast_path_matches_naive_loops();
    same_thread_count_gives_same_bits();
    warm_step_allocates_nothing();
    no_scope_leaves_nothing_behind();
    return check_summary();
}
