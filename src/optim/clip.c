/*
 * clip.c — gradient clipping, as torch.nn.utils.clip_grad_norm_ and clip_grad_value_ (1.13).
 *
 * clip_grad_norm_: n_i = ||g_i||_p for each gradient (a float32 value in torch), the total is
 * ||(n_1, .., n_k)||_p (for p = inf, the largest |g|), and every gradient is multiplied by
 * min(max_norm / (total + 1e-6), 1), computed in float32 as torch does; NaN propagates.
 *
 * Determinism: a gradient's sum of |g|^p is taken in double over a fixed split (at most
 * N_PIECES pieces whose partial sums are added in order), so the bits do not depend on the
 * thread count.
 */
#include "optim_internal.h"

#include <math.h>

#define N_PIECES 64
#define PIECE_MIN 4096 /* a gradient shorter than N_PIECES * PIECE_MIN is summed by one thread */

static double pow_sum_run(const float *x, int64_t n, double p) {
    double s = 0;
    if (p == 2) for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    else if (p == 1) for (int64_t i = 0; i < n; i++) s += fabs((double)x[i]);
    else for (int64_t i = 0; i < n; i++) s += pow(fabs((double)x[i]), p);
    return s;
}

/* Pieces of a gradient: piece k's sum of |x|^p into part[k]; or, for the element-wise passes,
 * x scaled by c or clamped to [-c, c]. */
typedef struct {
    float *x;
    int64_t n, piece;
    double p, *part;
    float c;
} clip_job;

static void pow_sum_piece(void *arg, int64_t k, int64_t end) {
    const clip_job *j = arg;
    (void)end;
    int64_t lo = k * j->piece, hi = lo + j->piece < j->n ? lo + j->piece : j->n;
    j->part[k] = lo < hi ? pow_sum_run(j->x + lo, hi - lo, j->p) : 0.0;
}

static void scale_range(void *arg, int64_t lo, int64_t hi) {
    const clip_job *j = arg;
    for (int64_t i = lo; i < hi; i++) j->x[i] = j->x[i] * j->c;
}

/* clamp_(-clip, clip); NaN stays NaN */
static void clamp_range(void *arg, int64_t lo, int64_t hi) {
    const clip_job *j = arg;
    float *x = j->x, clip = j->c;
    for (int64_t k = lo; k < hi; k++) x[k] = x[k] < -clip ? -clip : x[k] > clip ? clip : x[k];
}

/* sum |x|^p, or max |x| (NaN wins, as torch's max) when p is infinite. */
static double reduce(const float *x, int64_t n, double p) {
    if (isinf(p)) {
        double m = 0;
        for (int64_t i = 0; i < n; i++) {
            double a = fabs((double)x[i]);
            if (a > m || isnan(a)) m = a;
            if (isnan(m)) break;
        }
        return m;
    }
    if (n < (int64_t)N_PIECES * PIECE_MIN) return pow_sum_run(x, n, p);
    double part[N_PIECES];
    clip_job j = {.x = (float *)x, .n = n, .piece = (n + N_PIECES - 1) / N_PIECES, .p = p, .part = part};
    nb__parallel_each(N_PIECES, pow_sum_piece, &j);
    double s = 0;
    for (int k = 0; k < N_PIECES; k++) s += part[k];
    return s;
}

/* ||x||_p as torch.norm returns it: a float. */
static float norm_of(const float *x, int64_t n, double p) {
    double s = reduce(x, n, p);
    if (isinf(p) || p == 1) return (float)s;
    return (float)(p == 2 ? sqrt(s) : pow(s, 1 / p));
}

static bool params_ok(int n, nb_tensor *const *params, const char *op) {
    if (n < 0 || (n > 0 && !params))
        return nb__fail(NB_ERR_ARG, "%s: %d parameters at %p", op, n, (const void *)params), false;
    for (int i = 0; i < n; i++)
        if (!nb__alive(params[i])) return nb__fail_input(op, params[i]), false;
    return true;
}

static void scale(float *g, int64_t n, float c) {
    nb__parallel_for(n > NB__OPTIM_PARALLEL_MIN, n, scale_range, &(clip_job){.x = g, .c = c});
}

float nb_clip_grad_norm(int n, nb_tensor *const *params, float max_norm, float norm_type) {
    const char *op = "clip_grad_norm";
    if (!params_ok(n, params, op)) return NAN;
    if (!(norm_type > 0))
        return nb__fail(NB_ERR_ARG, "%s: norm_type must be > 0 or INFINITY, got %g", op,
                        (double)norm_type), NAN;
    if (!(max_norm >= 0 && isfinite(max_norm)))
        return nb__fail(NB_ERR_ARG, "%s: max_norm must be finite and >= 0, got %g", op, (double)max_norm), NAN;
    double p = norm_type, acc = 0;
    bool any = false;
    for (int i = 0; i < n; i++) {
        nb_tensor *g = params[i]->grad;
        if (!g) continue;
        any = true;
        float ni = norm_of(nb__f32(g), nb__numel(g->ndim, g->shape), p);
        if (isinf(p)) {
            if (ni > acc || isnan(ni)) acc = ni;
        } else {
            acc += p == 2 ? (double)ni * ni : p == 1 ? ni : pow(ni, p);
        }
    }
    if (!any) return 0.0f;
    float total = isinf(p) || p == 1 ? (float)acc : (float)(p == 2 ? sqrt(acc) : pow(acc, 1 / p));
    float coef = max_norm / (total + 1e-6f); /* clip_coef, then clamp(max=1.0) */
    if (coef < 1 || isnan(coef))
        for (int i = 0; i < n; i++) {
            nb_tensor *g = params[i]->grad;
            if (g) scale(nb__f32(g), nb__numel(g->ndim, g->shape), coef);
        }
    return total;
}

nb_status nb_clip_grad_value(int n, nb_tensor *const *params, float clip) {
    const char *op = "clip_grad_value";
    if (!params_ok(n, params, op)) return nb_error_code();
    if (!(clip >= 0 && isfinite(clip)))
        return nb__fail_status(NB_ERR_ARG, "%s: clip_value must be finite and >= 0, got %g", op, (double)clip);
    for (int i = 0; i < n; i++) {
        nb_tensor *g = params[i]->grad;
        if (!g) continue;
        int64_t m = nb__numel(g->ndim, g->shape);
        nb__parallel_for(m > NB__OPTIM_PARALLEL_MIN, m, clamp_range, &(clip_job){.x = nb__f32(g), .c = clip});
    }
    return NB_OK;
}
