/*
 * test_grad2.c — second derivatives of every differentiable row of the op table (issue 10's bar),
 * the way torch's gradgradcheck checks them, and against torch's numbers.
 *
 * For a case of op_cases.h (smooth cases only: second derivatives at a kink mean nothing) with
 * float inputs x, a fixed random R of the output's shape and fixed random U_i of each float
 * input's shape:
 *
 *     L(x, R) = sum(out(x) * R)            g_i(x, R) = dL/dx_i
 *     S(x, R) = sum_i sum(g_i * U_i)       dS/dx_j = sum_i U_i^T (d^2 L / dx_i dx_j)
 *                                          dS/dR   = J U   (out's derivative along U)
 *
 * nb_autograd_grad with create_graph gives g with a graph of its own; S is built from it with
 * ops, and a second nb_autograd_grad (R a leaf requiring grad too, as gradgradcheck
 * differentiates with respect to the grad_outputs) gives dS/dx and dS/dR.  Each case checks:
 *
 *   (a) g from create_graph equals nb_backward's (the fast path) — the two modes of a backward
 *       compute the same thing;
 *   (b) dS/dx_j and dS/dR_k equal the fourth-order central difference of S (gradcheck_util.h,
 *       h = 2^-7) with S evaluated from g on the FAST path — a finite difference of the
 *       first derivative, element by element;
 *   (c) the same in heap mode (no scope open): equal results, and every byte back after the
 *       results are freed (LeakSanitizer checks the rest under make test-asan);
 *   (d) golden: g, dS/dx and dS/dR equal torch's (tests/golden/grad2.json, written by
 *       tools/gen_golden_grad2.py from the same inputs, R and U, which the test reads).
 *
 * A row whose backward records nothing under create_graph gives gradients without a graph; S
 * then does not require grad and this test takes its second derivatives as zeros, so the finite
 * differences and torch's numbers fail it unless they really are zero (step).  A row that
 * refuses with an error fails with that error.  Every case prints one summary line, "grad2 ok"
 * or "grad2 FAIL", with its row, so a run shows which rows do not yet differentiate twice.
 *
 * Finally the course MLP (784-64-64-10, ReLU, cross-entropy, 8 fixed samples): the full
 * Hessian of its loss with respect to the last layer's weights equals
 * torch.autograd.functional.hessian's.
 *
 * Tolerances (|got - want| <= TOL + TOL |want|, element by element; the run prints the worst
 * figure of each check among the comparisons that pass, "grad2 worst ..."):
 *   FIRST_TOL 1e-5 for (a): both modes run float32 kernels on the same values, and may only
 *     associate sums differently (an op-built gradient against a fused kernel), a few ulp; the
 *     rows that pass today agree bit for bit (worst 0).
 *   FD_TOL 2.5e-4 for (b): S sums up to 256 float32 gradient elements, each rounded anew at
 *     each of the stencil's points, and the stencil divides that noise by about 12 h / 16 ~
 *     0.006; the truncation error h^4 / 30 times S's fifth derivative (the op's sixth) adds
 *     ~1e-5 near log's and pow's lower ends.  Measured against torch's exact second derivatives
 *     on the golden inputs, the finite differences themselves are off by at most 4.7e-5
 *     (conv2d_same_even_kernel, d/dR; 3.3e-5 conv2d_bias, 1.5e-5 log_softmax), so the bound
 *     leaves a margin of five for other libm and BLAS builds, while a mistake in a second
 *     derivative (a missing term, a sign, a factor) moves it by O(1).
 *   GOLD_TOL 1e-5 for (d), the bar: torch computes in float64 from the same float32
 *     values, so the difference is nabla's float32 rounding alone (worst measured 2.3e-7,
 *     conv2d_depthwise).
 *   MLP_TOL 1e-5 for the MLP's Hessian, against the largest entry for the absolute part:
 *     entries near zero come out of sums that cancel.
 */
#include "check.h"
#include "gradcheck_util.h"
#include "op_cases.h"

#include <jansson.h>

#define GOLDEN_PATH "tests/golden/grad2.json"
#define MAX_ELEMS 256 /* the largest tensor a case may use */
#define MAX_HELD 64
#define FIRST_TOL 1e-5
#define FD_TOL 2.5e-4
#define GOLD_TOL 1e-5
#define MLP_TOL 1e-5

/* ---- one problem: a case with its values, R and U */

typedef struct {
    const op_case *c;
    int n_in;
    int ndim[OC_MAX_IN];
    int64_t shape[OC_MAX_IN][OC_MAX_RANK]; /* the leaves' shapes (layout included) */
    int64_t n_leaf[OC_MAX_IN];
    float logical[OC_MAX_IN][MAX_ELEMS];   /* the values as the op sees them (index inputs) */
    float host[OC_MAX_IN][MAX_ELEMS];      /* the leaves' elements (NaN in strided gaps) */
    int64_t map[OC_MAX_IN][MAX_ELEMS];     /* leaf element -> logical index, -1 in a gap */
    float u[OC_MAX_IN][MAX_ELEMS];         /* U in leaf layout, 0 in gaps */
    int out_ndim;
    int64_t out_shape[NB_MAX_DIMS], n_out;
    float r[MAX_ELEMS];
} problem;

/* The results of one create_graph evaluation, in leaf layout; index by input. */
typedef struct {
    float g[OC_MAX_IN][MAX_ELEMS];  /* first-order gradients */
    float hx[OC_MAX_IN][MAX_ELEMS]; /* dS/dx */
    float hr[MAX_ELEMS];            /* dS/dR */
    bool graph;                     /* the gradients carried a graph (S required grad) */
} second;

/* References an evaluation holds, dropped together (nb_tensor_free: a no-op on a scope's
 * tensors, the release of a heap tensor otherwise), so the same code runs in both modes.  One
 * entry per reference: a tensor that comes back twice (add's two gradients) is held twice. */
typedef struct {
    nb_tensor *t[MAX_HELD];
    int n;
} held;

static nb_tensor *hold(held *h, nb_tensor *t) {
    if (!t) return NULL;
    if (h->n == MAX_HELD) {
        CHECK_FAIL_("test_grad2: more than %d tensors in one evaluation", MAX_HELD);
        return t;
    }
    h->t[h->n++] = t;
    return t;
}

static void release(held *h) {
    while (h->n > 0) nb_tensor_free(h->t[--h->n]);
}

static nb_tensor *leaf_of(const problem *p, int i) {
    const oc_input *s = &p->c->in[i];
    if (s->draw == OC_INDEX) return oc_make_leaf(s, p->logical[i]);
    nb_tensor *t = nb_from_data(p->host[i], p->ndim[i], p->shape[i]);
    if (t && oc_is_float(s)) nb_set_requires_grad(t, true);
    return t;
}

typedef struct {
    nb_tensor *leaf[OC_MAX_IN], *fl[OC_MAX_IN + 1]; /* fl: the float leaves, then R */
    int fi[OC_MAX_IN];                               /* fl[k] is leaf[fi[k]] */
    int n_fl;
    nb_tensor *r, *out, *loss;
} graph;

/* The case's graph from p's values: loss = sum(op(x) * R), R a leaf requiring grad if r_grad. */
static bool build(const problem *p, held *h, graph *g, bool r_grad) {
    nb_tensor *x[OC_MAX_IN];
    g->n_fl = 0;
    for (int i = 0; i < p->n_in; i++) {
        if (!(g->leaf[i] = hold(h, leaf_of(p, i)))) return false;
        if (!(x[i] = oc_view_of(&p->c->in[i], g->leaf[i]))) return false;
        if (x[i] != g->leaf[i]) hold(h, x[i]); /* a view: a reference of its own */
        if (oc_is_float(&p->c->in[i])) {
            g->fi[g->n_fl] = i;
            g->fl[g->n_fl++] = g->leaf[i];
        }
    }
    g->r = hold(h, nb_from_data(p->r, p->out_ndim, p->out_shape));
    if (!g->r || (r_grad && nb_set_requires_grad(g->r, true) != NB_OK)) return false;
    g->out = hold(h, oc_fns[p->c->fn].call(x, p->c));
    g->loss = hold(h, nb_sum(hold(h, nb_mul(g->out, g->r))));
    return g->loss != NULL;
}

/* S(x, R) from the fast first-order path, in double (gc_stencil's function); NaN on failure. */
static double s_fast(void *ctx) {
    const problem *p = ctx;
    held h = {0};
    graph g;
    double s = NAN;
    nb_scope_begin();
    nb_tensor *grads[OC_MAX_IN];
    if (build(p, &h, &g, false) &&
        nb_autograd_grad(1, &g.loss, NULL, g.n_fl, g.fl, grads, NULL) == NB_OK) {
        s = 0;
        for (int k = 0; k < g.n_fl; k++) {
            int i = g.fi[k];
            float v[MAX_ELEMS];
            nb_copy_to(grads[k], v, p->n_leaf[i]);
            for (int64_t e = 0; e < p->n_leaf[i]; e++) s += (double)v[e] * p->u[i][e];
        }
    }
    nb_error_clear();
    nb_scope_end();
    return s;
}

/* S = sum_k sum(g_k * U_k) with ops, in the current mode. */
static nb_tensor *s_with_ops(const problem *p, held *h, const graph *g, nb_tensor *const *grads) {
    nb_tensor *s = NULL;
    for (int k = 0; k < g->n_fl; k++) {
        int i = g->fi[k];
        nb_tensor *u = hold(h, nb_from_data(p->u[i], p->ndim[i], p->shape[i]));
        nb_tensor *term = hold(h, nb_sum(hold(h, nb_mul(grads[k], u))));
        s = s ? hold(h, nb_add(s, term)) : term;
    }
    return s;
}

/* g, dS/dx and dS/dR by create_graph, in the current mode (a scope, or the heap with none). */
static nb_status second_order(const problem *p, second *o) {
    held h = {0};
    graph g;
    nb_tensor *grads[OC_MAX_IN] = {0}, *hh[OC_MAX_IN + 1] = {0};
    nb_status st = NB_OK;
    memset(o, 0, sizeof *o);
    if (!build(p, &h, &g, true)) {
        st = nb_error_code();
        goto out;
    }
    st = nb_autograd_grad(1, &g.loss, NULL, g.n_fl, g.fl, grads,
                          &(nb_grad_options){.create_graph = true});
    for (int k = 0; k < g.n_fl; k++) hold(&h, grads[k]);
    if (st != NB_OK) goto out;
    for (int k = 0; k < g.n_fl; k++) nb_copy_to(grads[k], o->g[g.fi[k]], p->n_leaf[g.fi[k]]);
    nb_tensor *s = s_with_ops(p, &h, &g, grads);
    if (!s) {
        st = nb_error_code();
        goto out;
    }
    o->graph = nb_requires_grad(s);
    if (!o->graph) goto out; /* nothing recorded: the second derivatives read as zeros */
    g.fl[g.n_fl] = g.r;
    st = nb_autograd_grad(1, &s, NULL, g.n_fl + 1, g.fl, hh,
                          &(nb_grad_options){.materialize_grads = true});
    for (int k = 0; k <= g.n_fl; k++) hold(&h, hh[k]);
    if (st != NB_OK) goto out;
    for (int k = 0; k < g.n_fl; k++) nb_copy_to(hh[k], o->hx[g.fi[k]], p->n_leaf[g.fi[k]]);
    nb_copy_to(hh[g.n_fl], o->hr, p->n_out);
out:
    release(&h);
    return st;
}

/* Fills p from the logical input values: leaves' layouts, the leaf -> logical map, out's
 * shape.  false (after a failed check) when the case does not fit this test. */
static bool setup(problem *p, const op_case *c, float (*values)[MAX_ELEMS]) {
    memset(p, 0, sizeof *p);
    p->c = c;
    p->n_in = oc_n_inputs(c);
    bool ok = true;
    nb_scope_begin();
    for (int i = 0; i < p->n_in && ok; i++) {
        const oc_input *s = &c->in[i];
        int64_t n = oc_numel(s->ndim, s->shape);
        if (oc_leaf_numel(s) > MAX_ELEMS) {
            CHECK_FAIL_("%s: input %d is larger than this test's buffers", c->name, i);
            ok = false;
            break;
        }
        memcpy(p->logical[i], values[i], sizeof(float) * (size_t)n);
        if (s->draw == OC_INDEX) continue;
        nb_tensor *leaf = oc_make_leaf(s, values[i]);
        float index[MAX_ELEMS], where[MAX_ELEMS];
        for (int64_t k = 0; k < n; k++) index[k] = (float)k;
        nb_tensor *indices = oc_make_leaf(s, index); /* where each logical element lands */
        p->ndim[i] = nb_ndim(leaf);
        memcpy(p->shape[i], nb_shape(leaf), sizeof(int64_t) * (size_t)p->ndim[i]);
        p->n_leaf[i] = nb_numel(leaf);
        nb_copy_to(leaf, p->host[i], p->n_leaf[i]);
        nb_copy_to(indices, where, p->n_leaf[i]);
        for (int64_t k = 0; k < p->n_leaf[i]; k++)
            p->map[i][k] = isnan(where[k]) ? -1 : (int64_t)where[k];
    }
    held h = {0};
    graph g;
    if (ok && build(p, &h, &g, false) && nb_numel(g.out) <= MAX_ELEMS) {
        p->out_ndim = nb_ndim(g.out);
        memcpy(p->out_shape, nb_shape(g.out), sizeof(int64_t) * (size_t)p->out_ndim);
        p->n_out = nb_numel(g.out);
    } else if (ok) {
        CHECK_FAIL_("%s: forward failed or too large [%s]", c->name, nb_error_message());
        ok = false;
    }
    nb_error_clear();
    nb_scope_end();
    return ok;
}

/* U given in logical order, stored in leaf layout. */
static void set_u(problem *p, int i, const float *logical) {
    for (int64_t k = 0; k < p->n_leaf[i]; k++)
        p->u[i][k] = p->map[i][k] >= 0 ? logical[p->map[i][k]] : 0.0f;
}

/* A leaf-layout array of input i in logical order. */
static void to_logical(const problem *p, int i, const float *leaf, float *logical) {
    for (int64_t k = 0; k < p->n_leaf[i]; k++)
        if (p->map[i][k] >= 0) logical[p->map[i][k]] = leaf[k];
}

/* ---- reporting: the worst error per check among the comparisons that pass, as the smallest
 * TOL that would still pass them (the figures the tolerances above are argued from) */

typedef struct {
    const char *check;
    double worst;
    char where[96];
} worst_error;

static worst_error worst_first = {"(a) create_graph g vs nb_backward", 0, ""},
                   worst_fd = {"(b) second derivatives vs finite differences", 0, ""},
                   worst_gold = {"(d) vs torch", 0, ""};

static void compare(worst_error *w, const char *what, const float *got, const double *want,
                    long n, double tol) {
    double worst = 0;
    for (long k = 0; k < n; k++) {
        double need = fabs((double)got[k] - want[k]) / (1 + fabs(want[k]));
        worst = isnan(got[k]) != isnan(want[k]) ? INFINITY : fmax(worst, need);
    }
    if (CHECK_ARRAY(what, got, want, n, tol, tol) == 0 && worst > w->worst) {
        w->worst = worst; /* the margin of what passes; failures are reported as such */
        snprintf(w->where, sizeof w->where, "%s", what);
    }
}

static void compare_floats(worst_error *w, const char *what, const float *got, const float *want,
                           long n, double tol) {
    double d[MAX_ELEMS];
    for (long k = 0; k < n; k++) d[k] = want[k];
    compare(w, what, got, d, n, tol);
}

/* ---- (a), (b), (c): one case against the fast path, finite differences, the heap */

/* .grad of each float leaf after nb_backward of the same loss. */
static bool fast_grads(const problem *p, float (*out)[MAX_ELEMS]) {
    held h = {0};
    graph g;
    nb_scope_begin();
    bool ok = build(p, &h, &g, false) && nb_backward(g.loss) == NB_OK;
    for (int k = 0; ok && k < g.n_fl; k++) {
        nb_tensor *grad = nb_grad(g.fl[k]);
        ok = grad && nb_copy_to(grad, out[g.fi[k]], p->n_leaf[g.fi[k]]) == NB_OK;
    }
    if (!ok) CHECK_FAIL_("%s: nb_backward failed [%s]", p->c->name, nb_error_message());
    nb_error_clear();
    nb_scope_end();
    return ok;
}

static void check_finite_differences(problem *p, const second *o) {
    char what[160];
    for (int i = 0; i < p->n_in; i++) {
        if (!oc_is_float(&p->c->in[i])) continue;
        double numeric[MAX_ELEMS];
        for (int64_t k = 0; k < p->n_leaf[i]; k++)
            numeric[k] = p->map[i][k] < 0 ? 0.0
                                           : gc_stencil(s_fast, p, (float *[]){&p->host[i][k]},
                                                        (float[]){1}, 1);
        snprintf(what, sizeof what, "%s: d2 (dS / d input %d)", p->c->name, i);
        compare(&worst_fd, what, o->hx[i], numeric, p->n_leaf[i], FD_TOL);
    }
    double numeric[MAX_ELEMS];
    for (int64_t k = 0; k < p->n_out; k++)
        numeric[k] = gc_stencil(s_fast, p, (float *[]){&p->r[k]}, (float[]){1}, 1);
    snprintf(what, sizeof what, "%s: dS / d grad_output", p->c->name);
    compare(&worst_fd, what, o->hr, numeric, p->n_out, FD_TOL);
}

/* (c): the heap run gives the scope run's numbers and gives every byte back. */
static void check_heap_mode(const problem *p, const second *in_scope) {
    second o;
    nb_alloc_stats before = nb_alloc_stats_get();
    nb_status st = second_order(p, &o);
    nb_alloc_stats after = nb_alloc_stats_get();
    if (st != NB_OK) {
        CHECK_FAIL_("%s: heap mode: %s: %s", p->c->name, nb_status_name(st), nb_error_message());
        nb_error_clear();
        return;
    }
    if (after.bytes_live == before.bytes_live) check_passed_++;
    else CHECK_FAIL_("%s: heap mode leaves %lld bytes behind", p->c->name,
                     (long long)after.bytes_live - (long long)before.bytes_live);
    bool same = o.graph == in_scope->graph &&
                memcmp(o.hr, in_scope->hr, sizeof(float) * (size_t)p->n_out) == 0;
    for (int i = 0; i < p->n_in; i++)
        same = same && memcmp(o.g[i], in_scope->g[i], sizeof o.g[i]) == 0 &&
               memcmp(o.hx[i], in_scope->hx[i], sizeof o.hx[i]) == 0;
    if (same) check_passed_++;
    else CHECK_FAIL_("%s: heap mode gives other numbers than a scope", p->c->name);
}

/* Runs the create_graph evaluation in a scope; false (after a failed check) on an error. */
static bool second_in_scope(const problem *p, second *o) {
    nb_scope_begin();
    nb_status st = second_order(p, o);
    if (st != NB_OK)
        CHECK_FAIL_("%s (%s): second derivative refused: %s: %s", p->c->name,
                    nb__ops[p->c->op].name, nb_status_name(st), nb_error_message());
    nb_error_clear();
    nb_scope_end();
    return st == NB_OK;
}

/* The case's inputs, R and U drawn from its seed (op_cases.h's stream); false after a failed
 * check when the case does not fit. */
static bool draw_problem(const op_case *c, problem *p) {
    uint64_t rng = gc_seed_of(c->name);
    float values[OC_MAX_IN][MAX_ELEMS], u[MAX_ELEMS];
    int n_in = oc_n_inputs(c);
    for (int i = 0; i < n_in; i++)
        if (oc_numel(c->in[i].ndim, c->in[i].shape) <= MAX_ELEMS)
            oc_draw_values(&c->in[i], &rng, values[i]);
    if (!setup(p, c, values)) return false;
    for (int64_t k = 0; k < p->n_out; k++) p->r[k] = (float)(2 * oc_uniform01(&rng) - 1);
    for (int i = 0; i < n_in; i++) {
        int64_t n = oc_numel(c->in[i].ndim, c->in[i].shape);
        for (int64_t k = 0; k < n; k++) u[k] = (float)(2 * oc_uniform01(&rng) - 1);
        set_u(p, i, u);
    }
    return true;
}

/* (a) and (b). */
static void gradgradcheck_case(const op_case *c) {
    int failed = check_failed_;
    problem *p = calloc(1, sizeof *p);
    second *o = calloc(1, sizeof *o);
    float(*fast)[MAX_ELEMS] = calloc(OC_MAX_IN, sizeof *fast);
    bool ran = draw_problem(c, p) && fast_grads(p, fast) && second_in_scope(p, o);
    if (!ran) goto done;
    char what[160];
    for (int i = 0; i < p->n_in; i++) {
        if (!oc_is_float(&c->in[i])) continue;
        snprintf(what, sizeof what, "%s: create_graph gradient of input %d", c->name, i);
        compare_floats(&worst_first, what, o->g[i], fast[i], p->n_leaf[i], FIRST_TOL);
    }
    check_finite_differences(p, o);
done:
    printf("grad2 %-4s %-20s %s%s\n", check_failed_ == failed ? "ok" : "FAIL",
           nb__ops[c->op].name, c->name,
           ran && !o->graph ? " (the gradient carries no graph)" : "");
    fflush(stdout);
    free(fast);
    free(o);
    free(p);
}

/* (c), run after every other check: a backward that breaks the heap's reference counts may
 * crash the program, and should not hide the other rows' results. */
static void heap_case(const op_case *c) {
    int failed = check_failed_;
    problem *p = calloc(1, sizeof *p);
    second *o = calloc(1, sizeof *o);
    if (draw_problem(c, p) && second_in_scope(p, o)) check_heap_mode(p, o);
    printf("grad2 %-4s %-20s %s in heap mode\n", check_failed_ == failed ? "ok" : "FAIL",
           nb__ops[c->op].name, c->name);
    fflush(stdout);
    free(o);
    free(p);
}

/* ---- (d): torch's numbers */

/* The numbers of a JSON array as floats; -1 unless it is an array of at most cap numbers. */
static long json_floats_into(const json_t *a, float *out, long cap) {
    if (!json_is_array(a) || (long)json_array_size(a) > cap) return -1;
    for (size_t k = 0; k < json_array_size(a); k++) {
        if (!json_is_number(json_array_get(a, k))) return -1;
        out[k] = (float)json_number_value(json_array_get(a, k));
    }
    return (long)json_array_size(a);
}

static bool json_str_is_(const json_t *obj, const char *key, const char *want) {
    const char *s = json_string_value(json_object_get(obj, key));
    return s && strcmp(s, want) == 0;
}

/* Compares a leaf-layout result of input i, in logical order, with torch's array. */
static void compare_logical(const problem *p, int i, const char *what, const float *leaf,
                            const json_t *want) {
    float got[MAX_ELEMS], w[MAX_ELEMS];
    long n = json_floats_into(want, w, MAX_ELEMS);
    if (n != oc_numel(p->c->in[i].ndim, p->c->in[i].shape)) {
        CHECK_FAIL_("%s: torch's array has %ld elements", what, n);
        return;
    }
    to_logical(p, i, leaf, got);
    compare_floats(&worst_gold, what, got, w, n, GOLD_TOL);
}

static void golden_case(const op_case *c, const json_t *j) {
    const json_t *inputs = json_object_get(j, "inputs"), *us = json_object_get(j, "u");
    int n_in = oc_n_inputs(c), failed = check_failed_;
    float values[OC_MAX_IN][MAX_ELEMS], u[MAX_ELEMS];
    problem *p = calloc(1, sizeof *p);
    second *o = calloc(1, sizeof *o);
    bool ok = json_is_array(inputs) && (int)json_array_size(inputs) == n_in &&
              json_str_is_(j, "op", nb__ops[c->op].name);
    for (int i = 0; ok && i < n_in; i++) {
        const oc_input *s = &c->in[i];
        long n = json_floats_into(json_array_get(inputs, (size_t)i), values[i], MAX_ELEMS);
        ok = n == oc_numel(s->ndim, s->shape);
        for (long k = 0; ok && k < n; k++) ok = oc_value_ok(s, values[i][k]);
    }
    if (!ok) {
        CHECK_FAIL_("%s: %s differs from tests/op_cases.h (row, inputs' sizes or values); "
                    "run /usr/bin/python3 tools/gen_golden_grad2.py", c->name, GOLDEN_PATH);
        goto done;
    }
    if (!setup(p, c, values)) goto done;
    if (json_floats_into(json_object_get(j, "r"), p->r, MAX_ELEMS) != p->n_out) {
        CHECK_FAIL_("%s: R has another size than the output", c->name);
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        if (!oc_is_float(&c->in[i])) continue;
        if (json_floats_into(json_array_get(us, (size_t)i), u, MAX_ELEMS) !=
            oc_numel(c->in[i].ndim, c->in[i].shape)) {
            CHECK_FAIL_("%s: U of input %d has another size than the input", c->name, i);
            goto done;
        }
        set_u(p, i, u);
    }
    if (!second_in_scope(p, o)) goto done;
    char what[160];
    for (int i = 0; i < n_in; i++) {
        if (!oc_is_float(&c->in[i])) continue;
        snprintf(what, sizeof what, "%s: gradient of input %d vs torch", c->name, i);
        compare_logical(p, i, what, o->g[i], json_array_get(json_object_get(j, "g"), (size_t)i));
        snprintf(what, sizeof what, "%s: d2 (dS / d input %d) vs torch", c->name, i);
        compare_logical(p, i, what, o->hx[i], json_array_get(json_object_get(j, "hx"), (size_t)i));
    }
    float hr[MAX_ELEMS];
    snprintf(what, sizeof what, "%s: dS / d grad_output vs torch", c->name);
    if (json_floats_into(json_object_get(j, "hr"), hr, MAX_ELEMS) == p->n_out)
        compare_floats(&worst_gold, what, o->hr, hr, p->n_out, GOLD_TOL);
    else CHECK_FAIL_("%s: torch's array has another size", what);
done:
    printf("grad2 %-4s %-20s %s vs torch\n", check_failed_ == failed ? "ok" : "FAIL",
           nb__ops[c->op].name, c->name);
    fflush(stdout);
    free(o);
    free(p);
}

/* ---- the course MLP's Hessian with respect to its last layer's weights */

#define MLP_BATCH 8
#define MLP_OUT (10 * 64) /* the last layer's weights, [10, 64] */

/* The MLP's data and weights, drawn as tools/gen_golden_grad2.py draws them (the SplitMix64
 * stream of op_cases.h seeded with gc_seed_of("course_mlp_hessian")): 8 inputs in [0, 1), 8
 * labels, then W1 [64, 784], b1, W2 [64, 64], b2, W3 [10, 64], b3, each uniform in
 * +-1 / sqrt(fan_in) as torch's nn.Linear initialises them. */
typedef struct {
    nb_tensor *x, *labels, *w[3], *b[3];
    double sum; /* of every float drawn, to confirm that the generator drew the same */
} mlp;

static nb_tensor *mlp_uniform(uint64_t *rng, double *sum, int ndim, const int64_t *shape,
                              double lo, double hi) {
    int64_t n = oc_numel(ndim, shape);
    float *v = malloc(sizeof(float) * (size_t)n);
    for (int64_t k = 0; k < n; k++) {
        v[k] = (float)(lo + (hi - lo) * oc_uniform01(rng));
        *sum += v[k];
    }
    nb_tensor *t = nb_from_data(v, ndim, shape);
    free(v);
    return t;
}

static mlp mlp_draw(void) {
    static const int64_t sizes[4] = {784, 64, 64, 10};
    uint64_t rng = gc_seed_of("course_mlp_hessian");
    mlp m = {.sum = 0};
    m.x = mlp_uniform(&rng, &m.sum, 2, (int64_t[]){MLP_BATCH, 784}, 0, 1);
    int32_t labels[MLP_BATCH];
    for (int k = 0; k < MLP_BATCH; k++) labels[k] = (int32_t)(oc_next(&rng) % 10);
    m.labels = nb_from_int32(labels, 1, (int64_t[]){MLP_BATCH});
    for (int l = 0; l < 3; l++) {
        double a = 1.0 / sqrt((double)sizes[l]);
        m.w[l] = mlp_uniform(&rng, &m.sum, 2, (int64_t[]){sizes[l + 1], sizes[l]}, -a, a);
        m.b[l] = mlp_uniform(&rng, &m.sum, 1, (int64_t[]){sizes[l + 1]}, -a, a);
        nb_set_requires_grad(m.w[l], true); /* as in training; the Hessian prunes to W3 */
        nb_set_requires_grad(m.b[l], true);
    }
    return m;
}

static nb_tensor *mlp_loss(const mlp *m) {
    nb_tensor *h = m->x;
    for (int l = 0; l < 3; l++) {
        h = nb_linear(h, m->w[l], m->b[l]);
        if (l < 2) h = nb_relu(h);
    }
    return nb_cross_entropy(h, m->labels, NULL);
}

/* base64 (RFC 4648) of little-endian float32s into out; the count decoded, -1 on bad input. */
static long base64_floats(const char *s, float *out, long cap) {
    long n = 0, bits = 0, have = 0;
    unsigned char bytes[4];
    int nb = 0;
    for (; *s && *s != '='; s++) {
        const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *at = strchr(abc, *s);
        if (!at) return -1;
        bits = (bits << 6) | (at - abc);
        if ((have += 6) < 8) continue;
        have -= 8;
        bytes[nb++] = (unsigned char)(bits >> have);
        bits &= (1L << have) - 1;
        if (nb < 4) continue;
        if (n == cap) return -1;
        uint32_t w = bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 |
                     (uint32_t)bytes[3] << 24;
        memcpy(&out[n++], &w, sizeof w);
        nb = 0;
    }
    return nb ? -1 : n;
}

/* Row k of the Hessian: d (dloss/dW3)[k] / dW3, one pass over g's graph per row. */
static bool hessian_rows(nb_tensor *w3, nb_tensor *g, float *h) {
    float e[MLP_OUT] = {0};
    for (int k = 0; k < MLP_OUT; k++) {
        nb_scope_begin();
        e[k] = 1;
        nb_tensor *ek = nb_from_data(e, 2, (int64_t[]){10, 64}), *row = NULL;
        e[k] = 0;
        nb_status st = nb_autograd_grad(1, &g, &ek, 1, &w3, &row,
                                        &(nb_grad_options){.retain_graph = true});
        if (st == NB_OK) nb_copy_to(row, h + (int64_t)k * MLP_OUT, MLP_OUT);
        else CHECK_FAIL_("course MLP: Hessian row %d: %s", k, nb_error_message());
        nb_error_clear();
        nb_scope_end();
        if (st != NB_OK) return false;
    }
    return true;
}

static void mlp_hessian_matches_torch(const json_t *j) {
    float *want = malloc(sizeof(float) * MLP_OUT * (MLP_OUT + 1) / 2);
    float *h = malloc(sizeof(float) * MLP_OUT * MLP_OUT);
    const char *b64 = json_string_value(json_object_get(j, "hessian_upper_f32_base64"));
    long n_upper = b64 ? base64_floats(b64, want, MLP_OUT * (MLP_OUT + 1) / 2) : -1;
    nb_scope_begin();
    mlp m = mlp_draw();
    double sum = json_number_value(json_object_get(j, "sum_of_values"));
    if (n_upper != MLP_OUT * (MLP_OUT + 1) / 2 || fabs(m.sum - sum) > 1e-9 * fabs(sum)) {
        CHECK_FAIL_("course MLP: %s's Hessian or data (sum %.12g, here %.12g) differ from this "
                    "test's; run /usr/bin/python3 tools/gen_golden_grad2.py", GOLDEN_PATH, sum,
                    m.sum);
        goto done;
    }
    nb_tensor *loss = mlp_loss(&m), *g = NULL;
    CHECK_NEAR(nb_item(loss), json_number_value(json_object_get(j, "loss")), 1e-6, 1e-6);
    nb_status st = nb_autograd_grad(1, &loss, NULL, 1, &m.w[2], &g,
                                    &(nb_grad_options){.create_graph = true});
    if (st != NB_OK) {
        CHECK_FAIL_("course MLP: create_graph gradient: %s", nb_error_message());
        goto done;
    }
    float gwant[MLP_OUT];
    double gw[MLP_OUT];
    if (json_floats_into(json_object_get(j, "grad"), gwant, MLP_OUT) == MLP_OUT) {
        for (int k = 0; k < MLP_OUT; k++) gw[k] = gwant[k];
        CHECK_TENSOR("course MLP: dloss/dW3 vs torch", g, gw, MLP_OUT, MLP_TOL, MLP_TOL);
    } else {
        CHECK_FAIL_("course MLP: torch's gradient has another size");
    }
    if (!nb_requires_grad(g)) {
        CHECK_FAIL_("course MLP: the gradient carries no graph (linear or cross_entropy)");
        goto done;
    }
    if (!hessian_rows(m.w[2], g, h)) goto done;
    /* the full matrix against torch's upper triangle: symmetric, and torch's */
    double *full = malloc(sizeof(double) * MLP_OUT * MLP_OUT), scale = 0;
    for (int a = 0; a < MLP_OUT; a++)
        for (int b = 0; b < MLP_OUT; b++) {
            int lo = a < b ? a : b, hi = a < b ? b : a;
            full[a * MLP_OUT + b] = want[lo * MLP_OUT - lo * (lo - 1) / 2 + (hi - lo)];
            scale = fmax(scale, fabs(full[a * MLP_OUT + b]));
        }
    /* entries near zero come from cancelling sums: absolute bound against the largest entry */
    CHECK_ARRAY("course MLP: Hessian wrt W3 vs torch.autograd.functional.hessian", h, full,
                (long)MLP_OUT * MLP_OUT, MLP_TOL * scale, MLP_TOL);
    double worst = 0;
    for (long k = 0; k < (long)MLP_OUT * MLP_OUT; k++)
        worst = fmax(worst, fabs(h[k] - full[k]) / (scale + fabs(full[k])));
    printf("grad2 course MLP Hessian [640 x 640]: worst |diff| / (max|H| + |H|) = %.3g\n", worst);
    free(full);
done:
    nb_error_clear();
    nb_scope_end();
    free(h);
    free(want);
}

/* A smooth case of a differentiable row, among those asked for (a name prefix, or all). */
static bool selected(const op_case *c, const char *only) {
    return !c->nonsmooth && nb__ops[c->op].kernels[NB_F32].backward &&
           (!only || strncmp(c->name, only, strlen(only)) == 0);
}

/* The golden file's root, or NULL after a failed check saying why. */
static json_t *golden_root(void) {
    json_error_t err;
    json_t *root = json_load_file(GOLDEN_PATH, 0, &err);
    if (!json_is_array(json_object_get(root, "cases"))) {
        CHECK_FAIL_("%s: %s (line %d); run from the repository root, or regenerate with "
                    "/usr/bin/python3 tools/gen_golden_grad2.py", GOLDEN_PATH,
                    root ? "no \"cases\" array" : err.text, err.line);
        json_decref(root);
        return NULL;
    }
    return root;
}

static void golden_cases(const json_t *root, const char *only) {
    const json_t *cases = json_object_get(root, "cases");
    bool seen[OC_N_CASES] = {false};
    for (size_t k = 0; k < json_array_size(cases); k++) {
        const json_t *j = json_array_get(cases, k);
        const char *name = json_string_value(json_object_get(j, "name"));
        const op_case *c = name ? oc_find(name) : NULL;
        if (!c) {
            CHECK_FAIL_("%s: case \"%s\" is not in tests/op_cases.h", GOLDEN_PATH,
                        name ? name : "?");
            continue;
        }
        seen[c - oc_cases] = true;
        if (selected(c, only)) golden_case(c, j);
    }
    for (int i = 0; i < OC_N_CASES; i++)
        if (!seen[i] && selected(&oc_cases[i], NULL))
            CHECK_FAIL_("%s has no second-order golden vectors; run /usr/bin/python3 "
                        "tools/gen_golden_grad2.py", oc_cases[i].name);
}

static void print_worst(const worst_error *w) {
    printf("grad2 worst %s: %.3g (%s)\n", w->check, w->worst, w->where[0] ? w->where : "-");
}

/* With an argument, only the cases whose name starts with it (and no MLP): for debugging. */
int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
    for (int i = 0; i < OC_N_CASES; i++)
        if (selected(&oc_cases[i], only)) gradgradcheck_case(&oc_cases[i]);
    json_t *root = golden_root();
    if (root) golden_cases(root, only);
    print_worst(&worst_first);
    print_worst(&worst_fd);
    print_worst(&worst_gold);
    fflush(stdout);
    /* last, so that a backward that breaks reference counts or memory cannot hide the rest */
    for (int i = 0; i < OC_N_CASES; i++)
        if (selected(&oc_cases[i], only)) heap_case(&oc_cases[i]);
    if (root && !only) mlp_hessian_matches_torch(json_object_get(root, "course_mlp"));
    json_decref(root);
    return check_summary();
}
