/*
 * test_symbolic.c — symbolic regression (nabla/symbolic.h): the function library, fitting
 * c f(a x + b) + d to clean and noisy samples, the choice by R^2 and simplicity, and formulas
 * composed from fitted edges, simplified, snapped and printed as text and LaTeX.
 */
#include "check.h"

#define N 101

/* x on [lo, hi], evenly; y = c f(a x + b) + d + noise * (a fixed pseudo-random in [-1, 1]). */
static void samples(float *x, float *y, double lo, double hi, const char *fn, double a, double b,
                    double c, double d, double noise) {
    int f = nb_symbolic_find(fn);
    uint32_t s = 12345;
    for (int k = 0; k < N; k++) {
        s = s * 1664525u + 1013904223u;
        x[k] = (float)(lo + (hi - lo) * k / (N - 1));
        y[k] = (float)(c * nb_symbolic_apply(f, a * x[k] + b) + d +
                       noise * ((double)(s >> 8) / (1 << 23) - 1));
    }
}

/* The largest |fit(x) - y| over the samples. */
static double max_misfit(const nb_symfit *f, const float *x, const float *y) {
    double m = 0;
    for (int k = 0; k < N; k++)
        m = fmax(m, fabs(f->c * nb_symbolic_apply(f->fn, f->a * x[k] + f->b) + f->d - y[k]));
    return m;
}

static void library_holds_pykans_functions_and_complexities(void) {
    static const char *names[] = {"x", "x^2", "x^3", "x^4", "x^5", "1/x", "1/x^2", "sqrt", "exp",
                                  "log", "abs", "sin", "cos", "tan", "tanh", "sgn", "arcsin",
                                  "arctan", "gaussian", "cosh", "sigmoid", "0"};
    static const int complexity[] = {1, 2, 3, 3, 3, 2, 2, 2, 2, 2, 3, 2, 2, 3, 3, 3, 4, 4, 3, 5, 4, 0};
    CHECK_EQ_INT(nb_symbolic_count(), 22);
    for (int i = 0; i < 22; i++) {
        int f = nb_symbolic_find(names[i]);
        CHECK(f >= 0 && !strcmp(nb_symbolic_name(f), names[i]));
        CHECK_EQ_INT(nb_symbolic_complexity(f), complexity[i]);
    }
    CHECK_NEAR(nb_symbolic_apply(nb_symbolic_find("gaussian"), 2), exp(-4), 0, 1e-15);
    CHECK_NEAR(nb_symbolic_apply(nb_symbolic_find("sgn"), -0.5), -1, 0, 0);
    CHECK(isnan(nb_symbolic_apply(nb_symbolic_find("sqrt"), -1)));
    CHECK_EQ_INT(nb_symbolic_find("erf"), -1);
    CHECK_STR_CONTAINS(nb_error_message(), "symbolic_find: no function 'erf'");
    CHECK(nb_symbolic_name(22) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_ARG);
}

static void fit_recovers_sin_with_affine_params_from_clean_samples(void) {
    float x[N], y[N];
    samples(x, y, -1, 1, "sin", 3, 2, 5, 0.7, 0);
    nb_symfit f;
    CHECK_EQ_INT(nb_symbolic_fit(nb_symbolic_find("sin"), N, x, y, NULL, &f), NB_OK);
    CHECK(f.r2 > 1 - 1e-6);
    CHECK_NEAR(fabs(f.a), 3, 1e-3, 0); /* sin(3x + 2) = sin(-3x + pi - 2): either sign */
    CHECK_NEAR(fabs(f.c), 5, 5e-3, 0);
    CHECK_NEAR(f.d, 0.7, 1e-3, 0);
    CHECK(max_misfit(&f, x, y) < 1e-3);
    CHECK_EQ_INT(f.complexity, 2);
}

static void fit_recovers_exp_and_x2_from_noisy_samples(void) {
    float x[N], y[N];
    nb_symfit f;
    samples(x, y, -1, 1, "exp", 1.5, -0.3, 0.5, 1, 0.01);
    CHECK_EQ_INT(nb_symbolic_fit(nb_symbolic_find("exp"), N, x, y, NULL, &f), NB_OK);
    CHECK(f.r2 > 0.999 && f.r2 < 1);
    CHECK_NEAR(f.a, 1.5, 0.05, 0); /* c e^{ax+b}: only a and c e^b are determined */
    CHECK_NEAR(f.c * exp(f.b), 0.5 * exp(-0.3), 0.02, 0);
    CHECK(max_misfit(&f, x, y) < 0.03);
    samples(x, y, -1, 1, "x^2", 2, 0.5, -1, 0.2, 0.02);
    CHECK_EQ_INT(nb_symbolic_fit(nb_symbolic_find("x^2"), N, x, y, NULL, &f), NB_OK);
    CHECK(f.r2 > 0.999);
    CHECK_NEAR(-f.b / f.a, -0.25, 0.01, 0); /* the vertex */
    CHECK(max_misfit(&f, x, y) < 0.05);
}

static void fit_of_a_wrong_function_has_a_low_r2(void) {
    float x[N], y[N];
    nb_symfit f;
    samples(x, y, -1, 1, "abs", 1, 0, 1, 0, 0);
    CHECK_EQ_INT(nb_symbolic_fit(nb_symbolic_find("x"), N, x, y, NULL, &f), NB_OK);
    CHECK(f.r2 < 0.01);
    CHECK_NEAR(f.a, 1, 0, 0);
    CHECK_NEAR(f.b, 0, 0, 0);
}

static void fit_rejects_bad_input_naming_it(void) {
    float x[N], y[N];
    nb_symfit f;
    samples(x, y, -1, 1, "x", 1, 0, 1, 0, 0);
    CHECK_EQ_INT(nb_symbolic_fit(0, 1, x, y, NULL, &f), NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "n >= 2");
    y[7] = NAN;
    CHECK_EQ_INT(nb_symbolic_fit(0, N, x, y, NULL, &f), NB_ERR_VALUE);
    CHECK_STR_CONTAINS(nb_error_message(), "sample 7 is not finite");
    y[7] = 0;
    CHECK_EQ_INT(nb_symbolic_fit(99, N, x, y, NULL, &f), NB_ERR_ARG);
    CHECK_EQ_INT(nb_symbolic_fit(0, N, x, y, &(nb_symbolic_opts){.a_min = 1, .a_max = -1}, &f),
                 NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "the a range [1, -1]");
    CHECK_EQ_INT(nb_symbolic_suggest(N, x, y, &(nb_symbolic_opts){.weight_simple = 2}, 0, NULL, 3, &f), -1);
    CHECK_STR_CONTAINS(nb_error_message(), "weight_simple 2");
}

/* Small grids keep the whole library's fits quick. */
static const nb_symbolic_opts quick = {.grid = 41};

static void suggest_ranks_by_score_and_prefers_the_simplest_good_fit(void) {
    float x[N], y[N];
    nb_symfit top[22];
    samples(x, y, -1, 1, "x", 3, 0, 1, 1, 0); /* 3x + 1 */
    int m = nb_symbolic_suggest(N, x, y, &quick, 0, NULL, 22, top);
    CHECK_EQ_INT(m, 22);
    CHECK(!strcmp(nb_symbolic_name(top[0].fn), "x"));
    for (int i = 1; i < m; i++) CHECK(top[i - 1].score <= top[i].score);
    /* score = 0.8 complexity + 0.2 log2(1 + 1e-5 - r2) */
    CHECK_NEAR(top[0].score, 0.8 * 1 + 0.2 * log2(1 + 1e-5 - top[0].r2), 1e-12, 0);
    samples(x, y, -1, 1, "x^2", 1, 0, 1, 0, 0);
    CHECK_EQ_INT(nb_symbolic_suggest(N, x, y, &quick, 0, NULL, 3, top), 3);
    CHECK(!strcmp(nb_symbolic_name(top[0].fn), "x^2"));
    CHECK(top[0].r2 > 1 - 1e-9);
}

static void suggest_weighs_simplicity_against_r2(void) {
    float x[N], y[N];
    nb_symfit top[2];
    /* tanh(2x) on [-1, 1]: x fits it to r2 0.93, tanh exactly */
    samples(x, y, -1, 1, "tanh", 2, 0, 1, 0, 0);
    int fns[] = {nb_symbolic_find("x"), nb_symbolic_find("tanh")};
    nb_symbolic_opts simple = quick, exact = quick;
    simple.weight_simple = 0.99, exact.weight_simple = NB_ZERO;
    CHECK_EQ_INT(nb_symbolic_suggest(N, x, y, &simple, 2, fns, 2, top), 2);
    CHECK(!strcmp(nb_symbolic_name(top[0].fn), "x"));
    CHECK_EQ_INT(nb_symbolic_suggest(N, x, y, &exact, 2, fns, 2, top), 2);
    CHECK(!strcmp(nb_symbolic_name(top[0].fn), "tanh"));
}

static void suggest_picks_0_for_a_dead_edge(void) {
    float x[N], y[N];
    nb_symfit top[1];
    samples(x, y, -1, 1, "sin", 7, 0, 1e-7, 0.25, 1e-7);
    CHECK_EQ_INT(nb_symbolic_suggest(N, x, y, &quick, 0, NULL, 1, top), 1);
    CHECK(!strcmp(nb_symbolic_name(top[0].fn), "0"));
    CHECK_NEAR(top[0].d, 0.25, 1e-6, 0);
}

/* ---------------------------------------------------------------- formulas */

/* The text (or LaTeX) of e, compared and freed with it. */
static void check_text(nb_expr *e, const char *want, const char *want_latex) {
    char *t = nb_expr_text(e), *l = nb_expr_latex(e);
    if (t && !strcmp(t, want)) check_passed_++;
    else CHECK_FAIL_("text \"%s\", want \"%s\"", t ? t : "(null)", want);
    if (want_latex) {
        if (l && !strcmp(l, want_latex)) check_passed_++;
        else CHECK_FAIL_("latex \"%s\", want \"%s\"", l ? l : "(null)", want_latex);
    }
    free(t);
    free(l);
    nb_expr_free(e);
}

static nb_expr *snapped(double v) { return nb_expr_snap(nb_expr_const(v), 1e-3); }

static void snap_turns_numbers_into_integers_fractions_pi_and_e(void) {
    check_text(snapped(3.1415), "pi", "\\pi");
    check_text(snapped(0.4999), "1/2", "\\frac{1}{2}");
    check_text(snapped(-0.3334), "-1/3", "-\\frac{1}{3}");
    check_text(snapped(6.2831), "2*pi", "2 \\pi");
    check_text(snapped(1.5708), "pi/2", "\\frac{\\pi}{2}");
    check_text(snapped(-2.3562), "-3*pi/4", "-\\frac{3 \\pi}{4}");
    check_text(snapped(2.7183), "e", "e");
    check_text(snapped(2.00001), "2", "2");
    check_text(snapped(0.123456), "0.123456", "0.123456");
    check_text(nb_expr_snap(nb_expr_const(0.4999), 1e-5), "0.4999", NULL); /* tolerance */
    check_text(snapped(-4e-4), "0", "0");
}

static void simplify_folds_constants_and_drops_trivial_terms(void) {
    /* (x1 * 1 + 0) -> x1 */
    check_text(nb_expr_simplify(nb_expr_add(nb_expr_mul(nb_expr_var(0), nb_expr_const(1)),
                                            nb_expr_const(0))), "x1", "x_{1}");
    /* 2 (x1 + 1) + sin(0) -> 2*x1 + 2 */
    check_text(nb_expr_simplify(nb_expr_add(
                   nb_expr_mul(nb_expr_const(2), nb_expr_add(nb_expr_var(0), nb_expr_const(1))),
                   nb_expr_apply(nb_symbolic_find("sin"), nb_expr_const(0)))),
               "2*x1 + 2", "2 x_{1} + 2");
    /* x1 + (-2) x2 + 0 * x3 -> x1 - 2*x2 */
    check_text(nb_expr_simplify(nb_expr_add(
                   nb_expr_add(nb_expr_var(0), nb_expr_mul(nb_expr_const(-2), nb_expr_var(1))),
                   nb_expr_mul(nb_expr_const(0), nb_expr_var(2)))),
               "x1 - 2*x2", "x_{1} - 2 x_{2}");
    /* 4 (x2 / 2)^2 -> x2^2;  3 / (3 x1) -> 1/x1 */
    check_text(nb_expr_simplify(nb_expr_mul(nb_expr_const(4), nb_expr_apply(
                   nb_symbolic_find("x^2"), nb_expr_mul(nb_expr_const(0.5), nb_expr_var(1))))),
               "x2^2", "x_{2}^{2}");
    check_text(nb_expr_simplify(nb_expr_mul(nb_expr_const(3), nb_expr_apply(
                   nb_symbolic_find("1/x"), nb_expr_mul(nb_expr_const(3), nb_expr_var(0))))),
               "1/x1", "\\frac{1}{x_{1}}");
    /* powers of sums keep their parentheses: (x1 + 1)^3 */
    check_text(nb_expr_simplify(nb_expr_apply(nb_symbolic_find("x^3"),
                                              nb_expr_add(nb_expr_var(0), nb_expr_const(1)))),
               "(x1 + 1)^3", "\\left(x_{1} + 1\\right)^{3}");
}

/* The example: f(x1, x2) = exp(sin(pi x1) + x2^2) from the fitted edges of a [2, 1, 1]
 * KAN whose numbers are near, not at, the exact ones. */
static void composed_kan_formula_snaps_to_exp_sin_pi_x1_plus_x2_squared(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    nb_symfit l1[2] = {
        {.fn = nb_symbolic_find("sin"), .a = 3.1416, .b = 0.0002, .c = 1.0001, .d = 0.3},
        {.fn = nb_symbolic_find("x^2"), .a = 0.5, .b = 0.0001, .c = 4.0002, .d = -0.3},
    };
    nb_symfit l2[1] = {{.fn = nb_symbolic_find("exp"), .a = 1.0001, .b = 0, .c = 0.9999, .d = 1e-4}};
    nb_expr *in[2] = {nb_expr_var(0), nb_expr_var(1)}, *h[1], *out[1];
    CHECK_EQ_INT(nb_expr_compose_layer(2, in, 1, l1, NULL, h), NB_OK);
    CHECK_EQ_INT(nb_expr_compose_layer(1, h, 1, l2, NULL, out), NB_OK);
    double at[2] = {0.3, -0.7};
    double hv = 1.0001 * sin(3.1416 * 0.3 + 0.0002) + 0.3 + 4.0002 * pow(0.5 * -0.7 + 0.0001, 2) - 0.3;
    CHECK_NEAR(nb_expr_eval(out[0], at), 0.9999 * exp(1.0001 * hv) + 1e-4, 0, 1e-12);
    nb_expr *f = nb_expr_snap(out[0], 1e-3);
    CHECK_NEAR(nb_expr_eval(f, at), exp(sin(M_PI * 0.3) + 0.49), 0, 1e-12);
    check_text(f, "exp(sin(pi*x1) + x2^2)", "e^{\\sin{\\left(\\pi x_{1} \\right)} + x_{2}^{2}}");
    for (int i = 0; i < 2; i++) nb_expr_free(in[i]);
    nb_expr_free(h[0]);
    CHECK_BYTES_BACK("formula", before);
}

static void compose_skips_inactive_edges_and_keeps_a_zero_edges_constant(void) {
    nb_symfit e[3] = {
        {.fn = nb_symbolic_find("x"), .a = 1, .c = 2, .d = 0},
        {.fn = nb_symbolic_find("cos"), .a = 1, .c = 1, .d = 0},
        {.fn = nb_symbolic_find("0"), .d = 0.5},
    };
    nb_expr *in[3] = {nb_expr_var(0), nb_expr_var(1), nb_expr_var(2)}, *out[1];
    CHECK_EQ_INT(nb_expr_compose_layer(3, in, 1, e, (bool[]){true, false, true}, out), NB_OK);
    check_text(out[0], "2*x1 + 0.5", "2 x_{1} + 0.5");
    for (int i = 0; i < 3; i++) nb_expr_free(in[i]);
}

static void expressions_propagate_null_and_free_what_they_took(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    CHECK(nb_expr_add(nb_expr_var(0), nb_expr_const(NAN)) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_VALUE);
    CHECK(nb_expr_apply(99, nb_expr_var(0)) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "expr_apply: function 99 is out of range");
    CHECK(nb_expr_mul(nb_expr_var(-1), nb_expr_var(1)) == NULL);
    CHECK(nb_expr_snap(nb_expr_var(0), 0.7) == NULL);
    CHECK(nb_expr_text(NULL) == NULL);
    CHECK_BYTES_BACK("failed expressions", before);
}

/* ---------------------------------------------------------------- as tensors */

/* Each function as ops gives the library's values and, by backward, its derivative (central
 * differences of the library's double version). */
static void symbolic_forward_matches_the_library_and_its_derivative(void) {
    const float xs[3] = {0.3f, 0.55f, 0.8f};
    for (int fn = 0; fn < nb_symbolic_count(); fn++) {
        const char *name = nb_symbolic_name(fn);
        bool missing = !strcmp(name, "sgn") || !strcmp(name, "arcsin") || !strcmp(name, "arctan");
        nb_tensor *x = nb_from_data(xs, 1, (int64_t[]){3});
        nb_set_requires_grad(x, true);
        nb_scope_begin();
        nb_tensor *y = nb_symbolic_forward(fn, x);
        if (missing) {
            CHECK(y == NULL);
            CHECK_STR_CONTAINS(nb_error_message(), "has no differentiable op");
        } else {
            CHECK_EQ_INT(nb_backward(nb_sum(y)), NB_OK);
            float got[3], dgot[3];
            CHECK_EQ_INT(nb_copy_to(y, got, 3), NB_OK);
            CHECK_EQ_INT(nb_copy_to(nb_grad(x), dgot, 3), NB_OK);
            for (int k = 0; k < 3; k++) {
                double h = 1e-6, v = nb_symbolic_apply(fn, xs[k]);
                double dv = (nb_symbolic_apply(fn, xs[k] + h) - nb_symbolic_apply(fn, xs[k] - h)) / (2 * h);
                if (fabs(got[k] - v) <= 1e-6 + 1e-5 * fabs(v) && fabs(dgot[k] - dv) <= 1e-5 + 1e-4 * fabs(dv))
                    check_passed_++;
                else CHECK_FAIL_("%s at %g: %g, d %g; want %g, d %g", name, xs[k], got[k], dgot[k], v, dv);
            }
        }
        nb_scope_end();
        nb_tensor_free(x);
    }
}

typedef struct {
    int fn;
    nb_tensor *p[4], *x, *y; /* a, b, c, d */
    nb_optim *o;
} fixed_edge;

/* mean((c f(a x + b) + d - y)^2) */
static double fixed_edge_closure(void *ctx) {
    fixed_edge *E = ctx;
    nb_optim_zero_grad(E->o);
    nb_tensor *inner = nb_add(nb_mul(E->p[0], E->x), E->p[1]);
    nb_tensor *pred = nb_add(nb_mul(E->p[2], nb_symbolic_forward(E->fn, inner)), E->p[3]);
    nb_tensor *e = nb_sub(pred, E->y);
    nb_tensor *loss = nb_mean(nb_mul(e, e));
    return nb_backward(loss) == NB_OK ? nb_item(loss) : NAN;
}

/* An edge fixed to sin trains its affine parameters from a rough start with L-BFGS: the two
 * halves of issue 15 joined. */
static void fixed_edge_trains_its_affine_params_with_lbfgs(void) {
    float x[N], y[N];
    samples(x, y, -1, 1, "sin", 1.5, 0.3, 2, -0.5, 0);
    fixed_edge E = {.fn = nb_symbolic_find("sin")};
    const float start[4] = {1.3f, 0.1f, 1.7f, -0.3f};
    for (int i = 0; i < 4; i++) {
        E.p[i] = nb_from_data(&start[i], 1, (int64_t[]){1});
        nb_set_requires_grad(E.p[i], true);
    }
    E.x = nb_from_data(x, 1, (int64_t[]){N});
    E.y = nb_from_data(y, 1, (int64_t[]){N});
    E.o = nb_lbfgs_new(4, E.p, (nb_lbfgs_opts){.line_search_fn = NB_LINE_SEARCH_STRONG_WOLFE});
    double loss = NAN;
    for (int s = 0; s < 5; s++) CHECK_EQ_INT(nb_optim_step_closure(E.o, fixed_edge_closure, &E, &loss), NB_OK);
    CHECK(loss < 1e-8);
    CHECK_NEAR(nb_item(E.p[0]), 1.5, 1e-3, 0);
    CHECK_NEAR(nb_item(E.p[1]), 0.3, 1e-3, 0);
    CHECK_NEAR(nb_item(E.p[2]), 2, 1e-3, 0);
    CHECK_NEAR(nb_item(E.p[3]), -0.5, 1e-3, 0);
    nb_optim_free(E.o);
    for (int i = 0; i < 4; i++) nb_tensor_free(E.p[i]);
    nb_tensor_free(E.x);
    nb_tensor_free(E.y);
}

int main(void) {
    library_holds_pykans_functions_and_complexities();
    fit_recovers_sin_with_affine_params_from_clean_samples();
    fit_recovers_exp_and_x2_from_noisy_samples();
    fit_of_a_wrong_function_has_a_low_r2();
    fit_rejects_bad_input_naming_it();
    suggest_ranks_by_score_and_prefers_the_simplest_good_fit();
    suggest_weighs_simplicity_against_r2();
    suggest_picks_0_for_a_dead_edge();
    snap_turns_numbers_into_integers_fractions_pi_and_e();
    simplify_folds_constants_and_drops_trivial_terms();
    composed_kan_formula_snaps_to_exp_sin_pi_x1_plus_x2_squared();
    compose_skips_inactive_edges_and_keeps_a_zero_edges_constant();
    expressions_propagate_null_and_free_what_they_took();
    symbolic_forward_matches_the_library_and_its_derivative();
    fixed_edge_trains_its_affine_params_with_lbfgs();
    return check_summary();
}
