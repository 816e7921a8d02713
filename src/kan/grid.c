/*
 * grid.c — moving and refining the grids of a KAN (nabla/kan.h): pykan's
 * update_grid_from_samples and refine (grid extension, sec. 2.4 of the paper).  Both keep each
 * edge's function by refitting its spline (lstsq.c) to what the old spline gave.  Host arrays:
 * xs [n, in], ys [n, in, out], t [in, G + 2k + 1].
 */
#include "kan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The G + 1 points of one input's new grid from its n sorted samples v: grid_eps of the
 * uniform points over [v[0], v[n-1]] plus 1 - grid_eps of the quantiles v[floor(n j / G)] (and
 * v[n-1] last), pykan's mix. */
static void mixed_points(float *p, const float *v, int64_t n, int G, float grid_eps) {
    for (int j = 0; j <= G; j++) {
        float q = v[j == G ? n - 1 : (int64_t)((double)n / G * j)];
        float u = v[0] + (v[n - 1] - v[0]) * (float)j / (float)G;
        p[j] = grid_eps * u + (1.0f - grid_eps) * q;
    }
}

/* New knots t [in, m] for the samples xs [n, in]; an input whose samples are all equal keeps
 * its knots (a grid needs a range). */
static nb_status new_knots(const nb__kan_layer *s, int64_t n, const float *xs, float grid_eps,
                           float *t) {
    int64_t m = s->G + 2 * s->k + 1;
    float *v = nb__alloc((size_t)n * sizeof(float)), *p = nb__alloc((size_t)(s->G + 1) * sizeof(float));
    nb_status st = v && p ? nb_copy_to(s->grid, t, s->in * m) : nb_error_code();
    for (int64_t i = 0; st == NB_OK && i < s->in; i++) {
        for (int64_t j = 0; j < n; j++) v[j] = xs[j * s->in + i];
        qsort(v, (size_t)n, sizeof(float), cmp_float);
        if (!(v[n - 1] > v[0])) continue;
        mixed_points(p, v, n, s->G, grid_eps);
        nb__kan_extend_knots(t + i * m, p, s->G, s->k);
    }
    if (p) nb__dealloc(p, (size_t)(s->G + 1) * sizeof(float));
    if (v) nb__dealloc(v, (size_t)n * sizeof(float));
    return st;
}

static nb_status update_layer(nb__kan_layer *s, int64_t n, const float *xs, float grid_eps) {
    int64_t m = s->G + 2 * s->k + 1, ny = n * s->in * s->out;
    float *ys = nb__alloc((size_t)ny * sizeof(float)), *t = nb__alloc((size_t)(s->in * m) * sizeof(float));
    nb_status st = ys && t ? nb__kan_eval_splines(s, n, xs, ys) : nb_error_code();
    if (st == NB_OK) st = new_knots(s, n, xs, grid_eps, t);
    if (st == NB_OK) st = nb_copy_from(s->grid, t, s->in * m);
    if (st == NB_OK) st = nb__kan_fit_coef(s, n, xs, ys);
    if (t) nb__dealloc(t, (size_t)(s->in * m) * sizeof(float));
    if (ys) nb__dealloc(ys, (size_t)ny * sizeof(float));
    return st;
}

/* Layer l's update from its input cur [n, in]; then *next = the layer's output on it. */
static nb_status update_step(nb_module *layer, nb_tensor *cur, float grid_eps, nb_tensor **next) {
    nb__kan_layer *s = NB__STATE(nb__kan_layer, layer);
    int64_t n = nb_size(cur, 0);
    float *xs = nb__alloc((size_t)(n * s->in) * sizeof(float));
    nb_status st = xs ? nb_copy_to(cur, xs, n * s->in) : nb_error_code();
    for (int64_t j = 0; st == NB_OK && j < n * s->in; j++)
        if (!isfinite(xs[j]))
            st = nb__fail_status(NB_ERR_ARG, "nb_kan_update_grid: sample %lld of input %lld is "
                                 "not finite", (long long)(j / s->in), (long long)(j % s->in));
    if (st == NB_OK) st = update_layer(s, n, xs, grid_eps);
    if (xs) nb__dealloc(xs, (size_t)(n * s->in) * sizeof(float));
    *next = st == NB_OK ? nb_module_forward(layer, cur) : NULL;
    return *next ? NB_OK : nb_error_code();
}

nb_status nb_kan_update_grid(nb_module *kan, nb_tensor *x, float grid_eps) {
    int L = nb_kan_num_layers(kan);
    if (L < 0) return nb_error_code();
    if (!(grid_eps >= 0.0f && grid_eps <= 1.0f))
        return nb__fail_status(NB_ERR_ARG, "nb_kan_update_grid: grid_eps = %g is outside [0, 1]",
                               grid_eps);
    int64_t in0 = nb_kan_in_features(nb_kan_layer(kan, 0));
    if (!nb_is_alive(x) || nb_ndim(x) != 2 || nb_size(x, 1) != in0 || nb_size(x, 0) < 2)
        return nb__fail_status(NB_ERR_SHAPE, "nb_kan_update_grid: samples %s must be [n >= 2, %lld]",
                               nb_is_alive(x) ? NB_SHP(x) : "(none)", (long long)in0);
    bool grad = nb_set_grad_enabled(false);
    nb_tensor *cur = x;
    nb_status st = NB_OK;
    for (int l = 0; st == NB_OK && l < L; l++) {
        nb_tensor *next = NULL;
        st = update_step(nb_kan_layer(kan, l), cur, grid_eps, &next);
        if (cur != x) nb_tensor_free(cur);
        cur = next;
    }
    if (cur != x) nb_tensor_free(cur);
    nb_set_grad_enabled(grad);
    return st;
}

/* ---- extension */

/* The refined layer r fitted to the old layer s on n uniform samples of each input's range
 * [t_k, t_{G+k}] of s's grid, which r's grid covers with its own G' intervals. */
static nb_status refine_layer(const nb__kan_layer *s, nb__kan_layer *r) {
    int64_t ms = s->G + 2 * s->k + 1, mr = r->G + 2 * r->k + 1, n = 8 * (int64_t)(r->G + r->k) + 1;
    int64_t ny = n * s->in * s->out;
    float *ts = nb__alloc((size_t)(s->in * ms) * sizeof(float));
    float *tr = nb__alloc((size_t)(s->in * mr) * sizeof(float));
    float *p = nb__alloc((size_t)(r->G + 1) * sizeof(float));
    float *xs = nb__alloc((size_t)(n * s->in) * sizeof(float)), *ys = nb__alloc((size_t)ny * sizeof(float));
    nb_status st = ts && tr && p && xs && ys ? nb_copy_to(s->grid, ts, s->in * ms) : nb_error_code();
    for (int64_t i = 0; st == NB_OK && i < s->in; i++) {
        float lo = ts[i * ms + s->k], hi = ts[i * ms + s->G + s->k];
        for (int j = 0; j <= r->G; j++) p[j] = lo + (hi - lo) * (float)j / (float)r->G;
        nb__kan_extend_knots(tr + i * mr, p, r->G, r->k);
        for (int64_t j = 0; j < n; j++) xs[j * s->in + i] = lo + (hi - lo) * (float)j / (float)(n - 1);
    }
    if (st == NB_OK) st = nb__kan_eval_splines(s, n, xs, ys);
    if (st == NB_OK) st = nb_copy_from(r->grid, tr, s->in * mr);
    if (st == NB_OK) st = nb__kan_fit_coef(r, n, xs, ys);
    if (st == NB_OK) st = nb_copy(r->scale_base, s->scale_base);
    if (st == NB_OK) st = nb_copy(r->scale_sp, s->scale_sp);
    if (st == NB_OK) st = nb_copy(r->mask, s->mask);
    for (int64_t e = 0; st == NB_OK && e < s->in * s->out; e++)
        st = nb__kan_copy_symbolic(s, e / s->out, e % s->out, r, e / s->out, e % s->out);
    if (ys) nb__dealloc(ys, (size_t)ny * sizeof(float));
    if (xs) nb__dealloc(xs, (size_t)(n * s->in) * sizeof(float));
    if (p) nb__dealloc(p, (size_t)(r->G + 1) * sizeof(float));
    if (tr) nb__dealloc(tr, (size_t)(s->in * mr) * sizeof(float));
    if (ts) nb__dealloc(ts, (size_t)(s->in * ms) * sizeof(float));
    return st;
}

nb_module *nb_kan_extend(const nb_module *kan, int new_grid) {
    int L = nb_kan_num_layers(kan);
    if (L < 0) return NULL;
    if (new_grid < 1) return nb__fail(NB_ERR_ARG, "nb_kan_extend: new grid %d must be >= 1", new_grid);
    nb_module *seq = nb_sequential_new(0, NULL);
    for (int l = 0; seq && l < L; l++) {
        const nb__kan_layer *s = NB__STATE(nb__kan_layer, nb_kan_layer(kan, l));
        nb_module *layer = nb__kan_layer_like(s, s->in, s->out, new_grid);
        if (!layer || refine_layer(s, NB__STATE(nb__kan_layer, layer)) != NB_OK ||
            nb_sequential_append(seq, layer) != NB_OK) {
            nb_module_free(layer);
            nb_module_free(seq);
            return NULL;
        }
    }
    return seq;
}
