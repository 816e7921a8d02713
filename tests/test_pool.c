/*
 * test_pool.c — pooling and upsampling beyond the op tables (test_gradcheck, test_golden):
 * errors and their messages, torch's output-size rules, the backward node names, the small
 * translation invariance a max pool buys, NaN and -inf windows, and tensors large enough to take
 * every kernel path (threads, the unrolled loops, long rows, edges), checked against plain loops
 * written here and for bit-identical results on one thread and on several.
 */
#include "check.h"

#include <stdlib.h>

static nb_pool2d_opts k(int kh, int kw) { return (nb_pool2d_opts){.kernel = {kh, kw}}; }

/* ---- errors */

static void pool_rejects_bad_arguments(void) {
    nb_scope_begin();
    nb_tensor *x = nb_zeros(NB_SHAPE(1, 1, 3, 3));

    nb_pool2d_opts big = k(5, 5);
    CHECK(nb_max_pool2d(x, &big) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "max_pool2d: input [1,1,3,3] with kernel 5x5");
    CHECK(nb_avg_pool2d(x, &big) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "the kernel is larger than the padded input");
    /* padding 1 makes a 5x5 input of the 3x3 one: a 5x5 kernel fits once */
    nb_pool2d_opts fits = {.kernel = {5, 5}, .padding = {2, 2}};
    nb_tensor *one = nb_max_pool2d(x, &fits);
    CHECK(one && nb_size(one, 2) == 1 && nb_size(one, 3) == 1);

    nb_pool2d_opts wide = {.kernel = {3, 3}, .padding = {2, 1}};
    CHECK(nb_max_pool2d(x, &wide) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "max_pool2d: padding 2x1 is more than half the kernel 3x3");
    nb_pool2d_opts even = {.kernel = {2, 2}, .padding = {0, 2}};
    CHECK(nb_avg_pool2d(x, &even) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "avg_pool2d: padding 0x2 is more than half the kernel 2x2");

    nb_pool2d_opts zero = k(0, 2), negative = {.kernel = {2, 2}, .stride = {-1, 1}};
    CHECK(nb_max_pool2d(x, &zero) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "the kernel must be positive");
    CHECK(nb_avg_pool2d(x, &negative) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "stride and padding not negative");
    CHECK(nb_max_pool2d(x, NULL) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "kernel size is required");

    nb_pool2d_opts two = k(2, 2);
    nb_tensor *flat = nb_zeros(NB_SHAPE(3, 3));
    CHECK(nb_max_pool2d(flat, &two) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "max_pool2d: input [3,3]: needs a 4-D [N, C, H, W] or 3-D");
    CHECK(nb_avg_pool2d(nb_zeros(NB_SHAPE(1, 1, 1, 3, 3)), &two) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "avg_pool2d: input [1,1,1,3,3]");
    CHECK(nb_global_avg_pool2d(flat) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "global_avg_pool2d: input [3,3]");
    CHECK(nb_max_pool2d(nb_zeros(NB_SHAPE(1, 2, 0, 3)), &two) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "cannot pool empty channels or planes");
    CHECK(nb_avg_pool2d(nb_zeros(NB_SHAPE(2, 0, 4, 4)), &two) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "avg_pool2d: input [2,0,4,4]: cannot pool empty channels");
    CHECK(nb_max_pool2d(nb_from_int32((int32_t[]){1, 2, 3, 4}, NB_SHAPE(1, 2, 2)), &two) == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "max_pool2d: no int32 kernel (inputs int32 [1,2,2])");
    CHECK(nb_max_pool2d(NULL, &two) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "max_pool2d");
    nb_scope_end();
}

static void upsample_rejects_bad_arguments(void) {
    nb_scope_begin();
    nb_tensor *x = nb_zeros(NB_SHAPE(1, 1, 3, 3));
    CHECK(nb_upsample_nearest2d(x, 0, 2) == NULL);
    CHECK_ERROR(NB_ERR_ARG,
                "upsample_nearest2d: scale factors 0x2: need whole numbers of at least 1");
    CHECK(nb_upsample_bilinear2d(x, 2, -1, false) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "upsample_bilinear2d: scale factors 2x-1");
    CHECK(nb_upsample_bilinear2d(nb_zeros(NB_SHAPE(3, 3)), 2, 2, true) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "upsample_bilinear2d: input [3,3]: needs a 4-D");
    CHECK(nb_upsample_nearest2d(NULL, 2, 2) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "upsample_nearest2d");
    nb_scope_end();
}

/* ---- sizes and names */

static int64_t pooled_width(int64_t w, nb_pool2d_opts o) {
    nb_scope_begin();
    nb_tensor *y = nb_max_pool2d(nb_zeros(NB_SHAPE(1, 1, o.kernel[0], w)), &o);
    int64_t n = y ? nb_size(y, 3) : -1;
    nb_scope_end();
    return n;
}

/* torch: out = floor((in + 2p - k + (ceil ? s - 1 : 0)) / s) + 1, less one in ceil mode when
 * the last window would start in the right padding. */
static void pool_output_sizes_follow_torch(void) {
    nb_pool2d_opts floor2 = k(2, 2), ceil2 = {.kernel = {2, 2}, .ceil_mode = true};
    CHECK_EQ_INT(pooled_width(5, floor2), 2);
    CHECK_EQ_INT(pooled_width(5, ceil2), 3); /* the last window holds one column */
    nb_pool2d_opts ceil_pad = {.kernel = {2, 2}, .padding = {1, 1}, .ceil_mode = true};
    CHECK_EQ_INT(pooled_width(6, ceil_pad), 4);
    /* (5 + 2 - 2 + 1) / 2 + 1 = 4, but window 3 would start at column 5 = in + pad: dropped */
    CHECK_EQ_INT(pooled_width(5, ceil_pad), 3);
    nb_pool2d_opts s3 = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}};
    CHECK_EQ_INT(pooled_width(28, s3), 14);
    CHECK_EQ_INT(pooled_width(7, (nb_pool2d_opts){.kernel = {3, 3}, .stride = {1, 2}}), 3);

    nb_scope_begin();
    nb_pool2d_opts two = k(2, 2);
    nb_tensor *x3 = nb_zeros(NB_SHAPE(3, 4, 6)), *y3 = nb_avg_pool2d(x3, &two);
    CHECK(y3 && nb_ndim(y3) == 3 && nb_size(y3, 0) == 3 && nb_size(y3, 1) == 2 &&
          nb_size(y3, 2) == 3);
    nb_tensor *empty = nb_max_pool2d(nb_zeros(NB_SHAPE(0, 2, 4, 4)), &two);
    CHECK(empty && nb_numel(empty) == 0 && nb_size(empty, 1) == 2 && nb_size(empty, 3) == 2);
    nb_tensor *up = nb_upsample_bilinear2d(x3, 2, 3, false);
    CHECK(up && nb_ndim(up) == 3 && nb_size(up, 1) == 8 && nb_size(up, 2) == 18);
    nb_tensor *g = nb_global_avg_pool2d(nb_zeros(NB_SHAPE(2, 3, 4, 5)));
    CHECK(g && nb_ndim(g) == 4 && nb_size(g, 1) == 3 && nb_size(g, 2) == 1 && nb_size(g, 3) == 1);
    nb_scope_end();
}

static void backward_nodes_carry_torch_names(void) {
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(1, 2, 4, 4));
    nb_set_requires_grad(x, true);
    nb_pool2d_opts two = k(2, 2);
    CHECK_STR_CONTAINS(nb_grad_fn(nb_max_pool2d(x, &two)), "MaxPool2DWithIndicesBackward0");
    CHECK_STR_CONTAINS(nb_grad_fn(nb_avg_pool2d(x, &two)), "AvgPool2DBackward0");
    CHECK_STR_CONTAINS(nb_grad_fn(nb_global_avg_pool2d(x)), "MeanBackward1");
    CHECK_STR_CONTAINS(nb_grad_fn(nb_upsample_nearest2d(x, 2, 2)), "UpsampleNearest2DBackward0");
    CHECK_STR_CONTAINS(nb_grad_fn(nb_upsample_bilinear2d(x, 2, 2, true)),
                       "UpsampleBilinear2DBackward0");
    nb_scope_end();
}

/* ---- what a max pool is for */

/* A detector's response map that is 1 where the pattern sits and 0 elsewhere, pooled 2x2: moving
 * the pattern anywhere inside one pooling window leaves the pooled map unchanged — the small
 * translation invariance that pooling buys a CNN — while moving it into the next window moves
 * the response.  The gradient follows the pattern to wherever it is. */
static void max_pool_ignores_shifts_within_its_window(void) {
    nb_pool2d_opts two = k(2, 2);
    float pooled[4][4], grad[16];
    const int at[5][2] = {{2, 0}, {2, 1}, {3, 0}, {3, 1}, {2, 2}}; /* the last leaves the window */
    for (int s = 0; s < 5; s++) {
        nb_scope_begin();
        float image[16] = {0};
        image[at[s][0] * 4 + at[s][1]] = 1.0f;
        nb_tensor *x = nb_from_data(image, NB_SHAPE(1, 1, 4, 4));
        nb_set_requires_grad(x, true);
        nb_tensor *y = nb_max_pool2d(x, &two);
        float out[4];
        CHECK(nb_copy_to(y, out, 4) == NB_OK);
        CHECK(nb_backward(nb_sum(y)) == NB_OK);
        CHECK(nb_copy_to(nb_grad(x), grad, 16) == NB_OK);
        /* all-zero windows send their gradient to their first element, the pattern's to it */
        CHECK(grad[at[s][0] * 4 + at[s][1]] == 1.0f);
        if (s < 4) memcpy(pooled[s], out, sizeof out);
        if (s > 0 && s < 4) CHECK(memcmp(pooled[s], pooled[0], sizeof out) == 0);
        if (s == 4) CHECK(out[2] == 0.0f && out[3] == 1.0f && pooled[0][2] == 1.0f);
        nb_scope_end();
    }
}

/* torch: a NaN in a window wins (the last NaN in window order takes the gradient); a window of
 * -inf gives -inf and its gradient goes to its first element. */
static void max_pool_nan_and_infinite_windows(void) {
    nb_scope_begin();
    float v[8] = {1, NAN, 3, NAN, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    nb_tensor *x = nb_from_data(v, NB_SHAPE(1, 2, 2, 2));
    nb_set_requires_grad(x, true);
    nb_pool2d_opts two = k(2, 2);
    nb_tensor *y = nb_max_pool2d(x, &two);
    float out[2], grad[8];
    CHECK(nb_copy_to(y, out, 2) == NB_OK);
    CHECK(isnan(out[0]) && out[1] == -INFINITY);
    CHECK(nb_backward_grad(y, nb_ones(NB_SHAPE(1, 2, 1, 1))) == NB_OK);
    CHECK(nb_copy_to(nb_grad(x), grad, 8) == NB_OK);
    const float want[8] = {0, 0, 0, 1, 1, 0, 0, 0};
    CHECK(memcmp(grad, want, sizeof want) == 0);

    /* Padded and overlapping windows, clipped at the edges and whole inside, with two NaNs: the
     * 9 after the first NaN must not take the gradient.  Values from torch 1.13. */
    float v2[6] = {NAN, 1, 7, NAN, 9, 3}, y2[12], g2[6];
    nb_tensor *x2 = nb_from_data(v2, NB_SHAPE(1, 1, 2, 3));
    nb_set_requires_grad(x2, true);
    nb_pool2d_opts padded = {.kernel = {2, 2}, .stride = {1, 1}, .padding = {1, 1}};
    nb_tensor *p2 = nb_max_pool2d(x2, &padded);
    CHECK(nb_copy_to(p2, y2, 12) == NB_OK);
    const float finite[12] = {0, 0, 7, 7, 0, 0, 9, 7, 0, 0, 9, 3};
    bool same = true;
    for (int i = 0; i < 12; i++) same = same && (i % 4 < 2 ? isnan(y2[i]) : y2[i] == finite[i]);
    CHECK(same);
    CHECK(nb_backward(nb_sum(p2)) == NB_OK);
    CHECK(nb_copy_to(nb_grad(x2), g2, 6) == NB_OK);
    const float want2[6] = {2, 0, 3, 4, 2, 1};
    CHECK(memcmp(g2, want2, sizeof want2) == 0);
    nb_scope_end();
}

/* ---- larger tensors: every kernel path (threads, the unrolled 2x2 and 3x3 loops, the run-time
 * one, rows longer than a block, edges) against plain loops */

typedef enum { MAX, AVG, NEAREST, BILINEAR, BILINEAR_ALIGNED } kind;

typedef struct {
    const char *name;
    kind kind;
    int64_t shape[4];
    nb_pool2d_opts pool; /* MAX, AVG */
    int scale[2];        /* upsampling */
} big_case;

static nb_tensor *apply(const big_case *c, nb_tensor *x) {
    switch (c->kind) {
    case MAX: return nb_max_pool2d(x, &c->pool);
    case AVG: return nb_avg_pool2d(x, &c->pool);
    case NEAREST: return nb_upsample_nearest2d(x, c->scale[0], c->scale[1]);
    default:
        return nb_upsample_bilinear2d(x, c->scale[0], c->scale[1], c->kind == BILINEAR_ALIGNED);
    }
}

/* The output and the gradient under loss = sum(y * r) of case c on x (shape c->shape). */
static bool run_case(const big_case *c, const float *x, const float *r, float *y, int64_t *oh,
                     int64_t *ow, float *dx) {
    nb_scope_begin();
    nb_tensor *xt = nb_from_data(x, 4, c->shape);
    nb_set_requires_grad(xt, true);
    nb_tensor *yt = apply(c, xt);
    bool ok = yt && nb_copy_to(yt, y, nb_numel(yt)) == NB_OK &&
              nb_backward(nb_sum(nb_mul(yt, nb_from_data(r, 4, nb_shape(yt))))) == NB_OK &&
              nb_copy_to(nb_grad(xt), dx, nb_numel(xt)) == NB_OK;
    if (ok) *oh = nb_size(yt, 2), *ow = nb_size(yt, 3);
    nb_scope_end();
    return ok;
}

/* Pools written plainly from torch's definitions (sums in double; the first maximal element). */
static void ref_pool(const big_case *c, int64_t oh, int64_t ow, const float *x, const float *r,
                     double *y, double *dx) {
    const nb_pool2d_opts *o = &c->pool;
    int64_t h = c->shape[2], w = c->shape[3], sh = o->stride[0] ? o->stride[0] : o->kernel[0];
    int64_t sw = o->stride[1] ? o->stride[1] : o->kernel[1];
    memset(dx, 0, sizeof(double) * (size_t)(c->shape[0] * c->shape[1] * h * w));
    for (int64_t pl = 0; pl < c->shape[0] * c->shape[1]; pl++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                int64_t rs = i * sh - o->padding[0], cs = j * sw - o->padding[1];
                int64_t re = rs + o->kernel[0], ce = cs + o->kernel[1], best = -1, count = 0;
                int64_t out = (pl * oh + i) * ow + j;
                double sum = 0;
                for (int64_t a = rs; a < re; a++)
                    for (int64_t b = cs; b < ce; b++) {
                        if (a < 0 || b < 0 || a >= h || b >= w) continue;
                        int64_t at = (pl * h + a) * w + b;
                        if (best < 0 || x[at] > x[best]) best = at;
                        sum += x[at];
                        count++;
                    }
                /* count_include_pad: the window within the padded input */
                int64_t padded = ((re < h + o->padding[0] ? re : h + o->padding[0]) - rs) *
                                 ((ce < w + o->padding[1] ? ce : w + o->padding[1]) - cs);
                double div = o->exclude_pad ? (double)count : (double)padded;
                y[out] = c->kind == MAX ? x[best] : sum / div;
                if (c->kind == MAX) dx[best] += r[out];
                else
                    for (int64_t a = rs < 0 ? 0 : rs; a < re && a < h; a++)
                        for (int64_t b = cs < 0 ? 0 : cs; b < ce && b < w; b++)
                            dx[(pl * h + a) * w + b] += r[out] / div;
            }
}

/* Upsampling by torch's definitions: nearest, source = destination / scale; bilinear,
 * source = dst (in - 1) / (out - 1) with align_corners, else max((dst + 1/2) / scale - 1/2, 0),
 * weights from its fraction, the upper neighbour clamped at the edge. */
static void src_of(const big_case *c, int64_t dst, int64_t in, int scale, int64_t *s0,
                   int64_t *s1, double *l1) {
    if (c->kind == NEAREST) {
        *s0 = *s1 = dst / scale, *l1 = 0;
        return;
    }
    double s = c->kind == BILINEAR_ALIGNED
                   ? (double)dst * (double)(in - 1) / (double)(in * scale - 1)
                   : (dst + 0.5) / scale - 0.5;
    s = s < 0 ? 0 : s;
    *s0 = (int64_t)s, *s1 = *s0 + (*s0 < in - 1), *l1 = s - (double)*s0;
}

static void ref_upsample(const big_case *c, const float *x, const float *r, double *y,
                         double *dx) {
    int64_t h = c->shape[2], w = c->shape[3], oh = h * c->scale[0], ow = w * c->scale[1];
    memset(dx, 0, sizeof(double) * (size_t)(c->shape[0] * c->shape[1] * h * w));
    for (int64_t pl = 0; pl < c->shape[0] * c->shape[1]; pl++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                int64_t i0, i1, j0, j1, out = (pl * oh + i) * ow + j;
                double li, lj;
                src_of(c, i, h, c->scale[0], &i0, &i1, &li);
                src_of(c, j, w, c->scale[1], &j0, &j1, &lj);
                const int64_t src[4] = {i0 * w + j0, i0 * w + j1, i1 * w + j0, i1 * w + j1};
                const double wt[4] = {(1 - li) * (1 - lj), (1 - li) * lj, li * (1 - lj), li * lj};
                y[out] = 0;
                for (int q = 0; q < 4; q++) {
                    y[out] += wt[q] * x[pl * h * w + src[q]];
                    dx[pl * h * w + src[q]] += wt[q] * r[out];
                }
            }
}

static void larger_inputs_match_plain_loops_on_any_thread_count(void) {
    static const big_case cases[] = {
        {"max_pool2d 2x2", MAX, {4, 16, 28, 28}, {.kernel = {2, 2}}, {0}},
        {"max_pool2d 3x3 s2 p1", MAX, {4, 16, 28, 28},
         {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}, {0}},
        {"max_pool2d 3x3 s1 p1, long rows", MAX, {1, 2, 5, 150},
         {.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}}, {0}},
        {"max_pool2d 2x3 s1x2 p1 ceil, long rows", MAX, {1, 3, 7, 151},
         {.kernel = {2, 3}, .stride = {1, 2}, .padding = {1, 1}, .ceil_mode = true}, {0}},
        {"avg_pool2d 3x3 s2 p1 ceil", AVG, {4, 16, 28, 28},
         {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true}, {0}},
        {"avg_pool2d 2x2, long rows", AVG, {1, 2, 6, 150}, {.kernel = {2, 2}}, {0}},
        {"avg_pool2d 3x2 s2x1 p1 ceil exclude_pad", AVG, {1, 3, 7, 151},
         {.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1}, .ceil_mode = true,
          .exclude_pad = true}, {0}},
        {"upsample_nearest2d 3x2", NEAREST, {4, 16, 28, 28}, {.kernel = {0}}, {3, 2}},
        {"upsample_bilinear2d 2x2", BILINEAR, {4, 16, 28, 28}, {.kernel = {0}}, {2, 2}},
        {"upsample_bilinear2d 3x3 align_corners, long rows", BILINEAR_ALIGNED, {1, 2, 5, 70},
         {.kernel = {0}}, {3, 3}},
    };
    const int64_t cap = 4 * 16 * 28 * 28 * 6; /* the largest input or output above */
    float *x = malloc(sizeof(float) * cap), *dx1 = malloc(sizeof(float) * cap);
    float *dx2 = malloc(sizeof(float) * cap), *r = malloc(sizeof(float) * cap);
    float *y1 = malloc(sizeof(float) * cap), *y2 = malloc(sizeof(float) * cap);
    double *ry = malloc(sizeof(double) * cap), *rdx = malloc(sizeof(double) * cap);
    int threads = nb_get_num_threads();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const big_case *c = &cases[k];
        int64_t n_in = c->shape[0] * c->shape[1] * c->shape[2] * c->shape[3], oh, ow, oh2, ow2;
        uint64_t state = 12345 + k;
        for (int64_t i = 0; i < n_in; i++) { /* distinct values: no ties, any scan order agrees */
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (float)i / (float)n_in + (float)(state >> 40) / (float)(1 << 24);
        }
        for (int64_t i = 0; i < cap; i++) r[i] = (float)((i * 7919) % 17) / 8.0f - 1.0f;
        char what[128];
        nb_set_num_threads(1);
        bool ok = run_case(c, x, r, y1, &oh, &ow, dx1);
        nb_set_num_threads(threads > 1 ? threads : 2);
        ok = ok && run_case(c, x, r, y2, &oh2, &ow2, dx2);
        nb_set_num_threads(threads);
        if (!ok) {
            CHECK_FAIL_("%s: failed [%s]", c->name, nb_error_message());
            continue;
        }
        int64_t n_out = c->shape[0] * c->shape[1] * oh * ow;
        if (!memcmp(y1, y2, sizeof(float) * (size_t)n_out) &&
            !memcmp(dx1, dx2, sizeof(float) * (size_t)n_in))
            check_passed_++;
        else CHECK_FAIL_("%s: one thread and several give different bits", c->name);
        if (c->kind == MAX || c->kind == AVG) ref_pool(c, oh, ow, x, r, ry, rdx);
        else ref_upsample(c, x, r, ry, rdx);
        /* 1e-5, as test_golden: float32 rounding (bilinear's ratio is a float, as in torch) */
        snprintf(what, sizeof what, "%s: output", c->name);
        CHECK_ARRAY(what, y1, ry, (long)n_out, 1e-5, 1e-5);
        snprintf(what, sizeof what, "%s: gradient", c->name);
        CHECK_ARRAY(what, dx1, rdx, (long)n_in, 1e-5, 1e-5);
    }
    free(x), free(dx1), free(dx2), free(r), free(y1), free(y2), free(ry), free(rdx);
}

int main(void) {
    pool_rejects_bad_arguments();
    upsample_rejects_bad_arguments();
    pool_output_sizes_follow_torch();
    backward_nodes_carry_torch_names();
    max_pool_ignores_shifts_within_its_window();
    max_pool_nan_and_infinite_windows();
    larger_inputs_match_plain_loops_on_any_thread_count();
    return check_summary();
}
