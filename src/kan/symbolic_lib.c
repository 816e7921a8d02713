/*
 * symbolic_lib.c — the library of 1-D functions a KAN edge may be recognised as, the fit of
 * c f(a x + b) + d to samples, and the choice among the library (the behaviour of pykan's
 * SYMBOLIC_LIB, fit_params and suggest_symbolic; Liu et al. 2024, section 2.5.1).
 *
 * Fit.  For fixed (a, b), the best c, d are linear least squares, and what they leave is set by
 * the squared correlation r^2 of u = f(a x + b) with y (SS_res = (1 - r^2) SS_tot).  So (a, b)
 * is searched on a grid for the largest r^2, zooming in around the best point, and c, d follow
 * in closed form: c = S_uy / S_uu, d = mean(y) - c mean(u).
 */
#include "symbolic_internal.h"

#include "../core/parallel.h"

#include <math.h>
#include <string.h>

static double f_x(double x) { return x; }
static double f_x2(double x) { return x * x; }
static double f_x3(double x) { return x * x * x; }
static double f_x4(double x) { return x * x * x * x; }
static double f_x5(double x) { return x * x * x * x * x; }
static double f_inv(double x) { return 1 / x; }
static double f_inv2(double x) { return 1 / (x * x); }
static double f_sgn(double x) { return (x > 0) - (x < 0); }
static double f_gaussian(double x) { return exp(-x * x); }
static double f_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double f_zero(double x) { return 0 * x; }

#define CALL(n, tex) n "(%s)", tex "{\\left(%s \\right)}", false, 0
const nb__symfn nb__symfns[] = {
    {"x", 1, f_x, "%s", "%s", false, 1},
    {"x^2", 2, f_x2, "%s^2", "%s^{2}", true, 2},
    {"x^3", 3, f_x3, "%s^3", "%s^{3}", true, 3},
    {"x^4", 3, f_x4, "%s^4", "%s^{4}", true, 4},
    {"x^5", 3, f_x5, "%s^5", "%s^{5}", true, 5},
    {"1/x", 2, f_inv, "1/%s", "\\frac{1}{%s}", true, -1},
    {"1/x^2", 2, f_inv2, "1/%s^2", "\\frac{1}{%s^{2}}", true, -2},
    {"sqrt", 2, sqrt, "sqrt(%s)", "\\sqrt{%s}", false, 0},
    {"exp", 2, exp, "exp(%s)", "e^{%s}", false, 0},
    {"log", 2, log, CALL("log", "\\log")},
    {"abs", 3, fabs, "abs(%s)", "\\left|{%s}\\right|", false, 0},
    {"sin", 2, sin, CALL("sin", "\\sin")},
    {"cos", 2, cos, CALL("cos", "\\cos")},
    {"tan", 3, tan, CALL("tan", "\\tan")},
    {"tanh", 3, tanh, CALL("tanh", "\\tanh")},
    {"sgn", 3, f_sgn, CALL("sgn", "\\operatorname{sgn}")},
    {"arcsin", 4, asin, CALL("arcsin", "\\operatorname{asin}")},
    {"arctan", 4, atan, CALL("arctan", "\\operatorname{atan}")},
    {"gaussian", 3, f_gaussian, "exp(-%s^2)", "e^{- %s^{2}}", true, 0},
    {"cosh", 5, cosh, CALL("cosh", "\\cosh")},
    {"sigmoid", 4, f_sigmoid, CALL("sigmoid", "\\sigma")},
    {"0", 0, f_zero, "0", "0", false, 0},
};
#undef CALL
const int nb__symfn_count = (int)(sizeof nb__symfns / sizeof nb__symfns[0]);

int nb__symfn_identity(void) { return 0; }
int nb__symfn_zero(void) { return nb__symfn_count - 1; }

static bool fn_ok(int fn, const char *op) {
    if (fn >= 0 && fn < nb__symfn_count) return true;
    return nb__fail(NB_ERR_ARG, "%s: function %d is out of range (the library has %d)", op, fn,
                    nb__symfn_count), false;
}

int nb_symbolic_count(void) { return nb__symfn_count; }

const char *nb_symbolic_name(int fn) {
    return fn_ok(fn, "symbolic_name") ? nb__symfns[fn].name : NULL;
}

int nb_symbolic_find(const char *name) {
    for (int i = 0; name && i < nb__symfn_count; i++)
        if (!strcmp(nb__symfns[i].name, name)) return i;
    return nb__fail(NB_ERR_ARG, "symbolic_find: no function '%s' in the library",
                    name ? name : "(null)"), -1;
}

int nb_symbolic_complexity(int fn) {
    return fn_ok(fn, "symbolic_complexity") ? nb__symfns[fn].complexity : -1;
}

double nb_symbolic_apply(int fn, double x) {
    return fn_ok(fn, "symbolic_apply") ? nb__symfns[fn].f(x) : NAN;
}

/* ---------------------------------------------------------------- fit */

typedef struct {
    double lo[2], hi[2]; /* the (a, b) box */
    int grid, iterations;
    double weight_simple;
} fit_opts;

static bool read_opts(const nb_symbolic_opts *o, fit_opts *f, const char *op) {
    nb_symbolic_opts z = {0};
    if (!o) o = &z;
    bool a_set = o->a_min != 0 || o->a_max != 0, b_set = o->b_min != 0 || o->b_max != 0;
    *f = (fit_opts){.lo = {a_set ? o->a_min : -10, b_set ? o->b_min : -10},
                    .hi = {a_set ? o->a_max : 10, b_set ? o->b_max : 10},
                    .grid = o->grid ? o->grid : 101, .iterations = o->iterations ? o->iterations : 3,
                    .weight_simple = o->weight_simple != 0 || signbit(o->weight_simple)
                                         ? o->weight_simple : 0.8};
    for (int i = 0; i < 2; i++)
        if (!(isfinite(f->lo[i]) && isfinite(f->hi[i]) && f->lo[i] < f->hi[i]))
            return nb__fail(NB_ERR_ARG, "%s: the %s range [%g, %g] must be finite and increasing",
                            op, i ? "b" : "a", f->lo[i], f->hi[i]), false;
    if (f->grid < 3 || f->grid > 100000 || f->iterations < 1 || f->iterations > 100)
        return nb__fail(NB_ERR_ARG, "%s: grid %d (>= 3) or iterations %d (>= 1) out of range", op,
                        f->grid, f->iterations), false;
    if (!(f->weight_simple >= 0 && f->weight_simple <= 1))
        return nb__fail(NB_ERR_ARG, "%s: weight_simple %g is not in [0, 1]", op,
                        f->weight_simple), false;
    return true;
}

static bool samples_ok(int64_t n, const float *x, const float *y, const char *op) {
    if (n < 2 || !x || !y)
        return nb__fail(NB_ERR_ARG, "%s: needs n >= 2 samples and both arrays (n %lld)", op,
                        (long long)n), false;
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(x[k]) || !isfinite(y[k]))
            return nb__fail(NB_ERR_VALUE, "%s: sample %lld is not finite (x %g, y %g)", op,
                            (long long)k, x[k], y[k]), false;
    return true;
}

/* Sums of u = f(a x + b) against y: S_uu, S_uy about the means.  False where some u is not
 * finite. */
typedef struct { double mean_u, s_uu, s_uy; } moments;
static bool moments_at(const nb__symfn *F, double a, double b, int64_t n, const float *x,
                       const float *y, double mean_y, double *u, moments *m) {
    double sum = 0;
    for (int64_t k = 0; k < n; k++) {
        u[k] = F->f(a * x[k] + b);
        if (!isfinite(u[k])) return false;
        sum += u[k];
    }
    m->mean_u = sum / (double)n;
    m->s_uu = m->s_uy = 0;
    for (int64_t k = 0; k < n; k++) {
        double du = u[k] - m->mean_u;
        m->s_uu += du * du;
        m->s_uy += du * (y[k] - mean_y);
    }
    return true;
}

/* One grid of (a, b): r2[i g + j] for a = lo[0] + i step[0], b = lo[1] + j step[1], -1 where f
 * is not finite at some sample.  One pass over the samples per point (S_uu from sums of u and
 * u^2 in double: the ranking needs no more), rows shared out among the threads. */
typedef struct {
    const nb__symfn *F;
    const float *x;
    const double *yc; /* y - mean(y) */
    int64_t n;
    double lo[2], step[2], s_yy;
    int g;
    double *r2;
} grid_job;

static void grid_rows(void *ctx, int64_t lo, int64_t hi) {
    const grid_job *J = ctx;
    for (int64_t i = lo; i < hi; i++)
        for (int j = 0; j < J->g; j++) {
            double a = J->lo[0] + (double)i * J->step[0], b = J->lo[1] + j * J->step[1];
            double su = 0, suu = 0, suy = 0;
            bool finite = true;
            for (int64_t k = 0; k < J->n && finite; k++) {
                double u = J->F->f(a * J->x[k] + b);
                finite = isfinite(u);
                su += u, suu += u * u, suy += u * J->yc[k];
            }
            double s_uu = fmax(suu - su * su / (double)J->n, 0);
            J->r2[i * J->g + j] = finite ? suy * suy / (s_uu * J->s_yy + 1e-4) : -1;
        }
}

/* The grid search: (a, b) of the largest regularised r^2, zoomed `iterations` times; r2 holds
 * grid^2 doubles. */
static void search_ab(grid_job *J, const fit_opts *o, double ab[2]) {
    double lo[2] = {o->lo[0], o->lo[1]}, hi[2] = {o->hi[0], o->hi[1]};
    int g = o->grid;
    ab[0] = 1, ab[1] = 0;
    for (int it = 0; it < o->iterations; it++) {
        for (int d = 0; d < 2; d++) J->lo[d] = lo[d], J->step[d] = (hi[d] - lo[d]) / (g - 1);
        nb__parallel_for(J->n * g * g > 100000, g, grid_rows, J);
        double best = -1;
        int at[2] = {0, 0};
        for (int i = 0; i < g * g; i++) /* the first largest, in row-major order */
            if (J->r2[i] > best) best = J->r2[i], at[0] = i / g, at[1] = i % g;
        if (best < 0) return; /* f is nowhere finite on this box: keep a = 1, b = 0 */
        for (int d = 0; d < 2; d++) {
            ab[d] = lo[d] + at[d] * J->step[d];
            int from = at[d] == 0 ? 0 : at[d] == g - 1 ? g - 2 : at[d] - 1;
            lo[d] = ab[d] + (from - at[d]) * J->step[d];
            hi[d] = lo[d] + 2 * J->step[d] - (at[d] == 0 || at[d] == g - 1) * J->step[d];
        }
    }
}

nb_status nb_symbolic_fit(int fn, int64_t n, const float *x, const float *y,
                          const nb_symbolic_opts *opts, nb_symfit *out) {
    fit_opts o;
    if (!fn_ok(fn, "symbolic_fit") || !read_opts(opts, &o, "symbolic_fit") ||
        !samples_ok(n, x, y, "symbolic_fit"))
        return nb_error_code();
    if (!out) return nb__fail_status(NB_ERR_NULL, "symbolic_fit: out is NULL");
    double *u = nb__alloc(sizeof(double) * (size_t)n);
    if (!u) return nb_error_code();
    const nb__symfn *F = &nb__symfns[fn];
    double mean_y = 0, s_yy = 0;
    for (int64_t k = 0; k < n; k++) mean_y += y[k];
    mean_y /= (double)n;
    for (int64_t k = 0; k < n; k++) s_yy += (y[k] - mean_y) * (y[k] - mean_y);
    double ab[2] = {1, 0};
    if (fn != nb__symfn_identity() && fn != nb__symfn_zero()) {
        size_t grid_bytes = sizeof(double) * (size_t)o.grid * (size_t)o.grid;
        grid_job J = {.F = F, .x = x, .yc = u, .n = n, .s_yy = s_yy, .g = o.grid,
                      .r2 = nb__alloc(grid_bytes)};
        if (!J.r2) {
            nb__dealloc(u, sizeof(double) * (size_t)n);
            return nb_error_code();
        }
        for (int64_t k = 0; k < n; k++) u[k] = y[k] - mean_y;
        search_ab(&J, &o, ab);
        nb__dealloc(J.r2, grid_bytes);
    }
    moments m;
    *out = (nb_symfit){.fn = fn, .a = ab[0], .b = ab[1], .d = mean_y, .complexity = F->complexity};
    if (moments_at(F, ab[0], ab[1], n, x, y, mean_y, u, &m) && m.s_uu > 0) {
        out->c = m.s_uy / m.s_uu;
        out->d = mean_y - out->c * m.mean_u;
        out->r2 = s_yy > 0 ? m.s_uy * m.s_uy / (m.s_uu * s_yy) : 0;
    }
    nb__dealloc(u, sizeof(double) * (size_t)n);
    return NB_OK;
}

/* ---------------------------------------------------------------- suggest */

int nb_symbolic_suggest(int64_t n, const float *x, const float *y, const nb_symbolic_opts *opts,
                        int n_fns, const int *fns, int k, nb_symfit *out) {
    const char *op = "symbolic_suggest";
    fit_opts o;
    if (!read_opts(opts, &o, op) || !samples_ok(n, x, y, op)) return -1;
    if (k < 1 || !out) return nb__fail(NB_ERR_ARG, "%s: k must be >= 1 with an out array", op), -1;
    if (!fns) n_fns = nb__symfn_count;
    if (n_fns < 1) return nb__fail(NB_ERR_ARG, "%s: no functions to try", op), -1;
    size_t bytes = sizeof(nb_symfit) * (size_t)n_fns;
    nb_symfit *all = nb__alloc(bytes);
    if (!all) return -1;
    int count = 0;
    for (int i = 0; i < n_fns; i++) {
        nb_symfit *f = &all[count];
        if (nb_symbolic_fit(fns ? fns[i] : i, n, x, y, opts, f) != NB_OK) {
            nb__dealloc(all, bytes);
            return -1;
        }
        /* bits lost to misfit against the weighted complexity (pykan's defaults) */
        f->score = o.weight_simple * f->complexity +
                   (1 - o.weight_simple) * log2(1 + 1e-5 - f->r2);
        /* insertion sort: stable, and the library is small */
        nb_symfit tmp = *f;
        int at = count++;
        while (at > 0 && all[at - 1].score > tmp.score) all[at] = all[at - 1], at--;
        all[at] = tmp;
    }
    int m = count < k ? count : k;
    memcpy(out, all, sizeof(nb_symfit) * (size_t)m);
    nb__dealloc(all, bytes);
    return m;
}
