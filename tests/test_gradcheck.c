/*
 * test_gradcheck.c — every differentiable row of the op table against finite differences.
 *
 * For each case of op_cases.h that is not `nonsmooth` (nor `estimator`: fake quantization's
 * straight-through estimator is not a derivative; test_quant.c and test_grad2.c check those
 * rows): inputs drawn from a seed fixed per case
 * (a hash of its name, so adding a case moves no other), loss L = sum(out * R) with R a fixed
 * random tensor of the output's shape, analytic gradients from nb_backward, numeric ones from
 * the fourth-order central difference
 *
 *     dL/dx ~ (8 (L(x + h) - L(x - h)) - (L(x + 2h) - L(x - 2h))) / (12 h)
 *
 * (truncation error h^4 |L'''''| / 30).  The numeric side runs in double as far as the library
 * allows: the forward runs in float32, but L is accumulated in double from the float outputs
 * and the stencil is evaluated in double.
 *
 * Step.  h = 2^-7 ~ 0.0078, a power of two, so every x + k h (|k| <= 2) is exactly
 * representable for |x| < 2^16: the stencil's points are exactly symmetric and its weights
 * exact, whatever the size of x.  Outputs that do not depend on the perturbed element come out
 * bit-identical and cancel exactly, so the rounding error of the difference is that of the few
 * affected outputs: about 1.5 ulp(|out|) / h ~ 1e-5 |out|.  A smaller h (torch uses 1e-6 in
 * double) would drown in float32 rounding; with this one the truncation error, h^4 / 30 ~ 1e-10
 * times the fifth derivative, stays below 1e-5 even at the steepest input drawn (log near 0.2,
 * where that derivative is 24 / x^5), and inputs move by at most 2h = 2^-6, inside OC_MARGIN
 * and far inside the spacing of OC_DISTINCT draws.
 *
 * Tolerance.  |analytic - numeric| <= GRAD_ATOL + GRAD_RTOL |numeric| element by element with
 * GRAD_ATOL = GRAD_RTOL = 1e-4.  The worst error measured over all cases is 2.1e-5 (log_softmax,
 * whose every output moves with each input; all cases pass at 2e-5), so this leaves a margin of
 * about five for other libm and BLAS builds, while any real mistake in a backward (a wrong sign,
 * factor, index or broadcast) moves a gradient by O(1).  The directional check uses the same
 * bounds against the size of the sum, 1 + sum |grad * v|.
 *
 * Forward-mode sanity: the directional derivative of L along a random direction v (all float
 * inputs at once, v in multiples of 1/8 so x + k h v stays exact) must equal sum(grad * v), a
 * Jacobian-vector product checked against the vector-Jacobian product.  And cheaply: the forward
 * must leave its inputs untouched, produce finite values, and record a node of its row; rows
 * without a backward (comparisons, argmax) must record nothing.
 */
#include "check.h"
#include "gradcheck_util.h"
#include "op_cases.h"

#define GRAD_ATOL 1e-4
#define GRAD_RTOL 1e-4
#define MAX_ELEMS 256 /* the largest tensor a case may use */

typedef struct {
    const op_case *c;
    int n_in;
    nb_tensor *leaf[OC_MAX_IN], *x[OC_MAX_IN];
    float host[OC_MAX_IN][MAX_ELEMS]; /* the float leaves' elements, moved here, copied back */
    float r[MAX_ELEMS];
    int64_t n_out;
} run;

/* L = sum(out * R) in double, from a forward with recording off; NaN when the op fails. */
static double loss_at(run *r) {
    double loss = NAN;
    float out[MAX_ELEMS];
    nb_scope_begin();
    bool was = nb_set_grad_enabled(false);
    nb_tensor *y = oc_fns[r->c->fn].call(r->x, r->c);
    if (y && nb_numel(y) == r->n_out && nb_copy_to(y, out, r->n_out) == NB_OK) {
        loss = 0;
        for (int64_t i = 0; i < r->n_out; i++) loss += (double)out[i] * (double)r->r[i];
    }
    nb_set_grad_enabled(was);
    nb_scope_end();
    return loss;
}

/* Copies the float leaves to r->host (store false) or back from it (store true): the stencil
 * moves the host copies, as tensor memory belongs to the backend. */
static void sync_leaves(run *r, bool store) {
    for (int i = 0; i < r->n_in; i++) {
        if (!oc_is_float(&r->c->in[i])) continue;
        int64_t n = nb_numel(r->leaf[i]);
        if (store) nb_copy_from(r->leaf[i], r->host[i], n);
        else nb_copy_to(r->leaf[i], r->host[i], n);
    }
}

/* L at the host copies' values (gc_stencil's function): they are stored into the leaves first. */
static double loss_at_host(void *ctx) {
    sync_leaves(ctx, true);
    return loss_at(ctx);
}

/* Element-wise comparison of analytic and numeric gradients of every float input. */
static void check_gradients(run *r) {
    for (int i = 0; i < r->n_in; i++) {
        if (!oc_is_float(&r->c->in[i])) continue;
        nb_tensor *leaf = r->leaf[i], *grad = nb_grad(leaf);
        int64_t n = nb_numel(leaf);
        float *v = r->host[i], analytic[MAX_ELEMS];
        double numeric[MAX_ELEMS];
        char what[160];
        snprintf(what, sizeof what, "%s: d loss / d input %d", r->c->name, i);
        if (!grad || nb_numel(grad) != n) {
            CHECK_FAIL_("%s: no gradient of the leaf's shape [%s]", what, nb_error_message());
            continue;
        }
        nb_copy_to(grad, analytic, n);
        for (int64_t j = 0; j < n; j++) /* NaN marks a gap of a strided leaf: L ignores it */
            numeric[j] = isnan(v[j]) ? 0.0
                                      : gc_stencil(loss_at_host, r, (float *[]){&v[j]},
                                                   (float[]){1}, 1);
        CHECK_ARRAY(what, analytic, numeric, n, GRAD_ATOL, GRAD_RTOL);
    }
}

/* Directional derivative along a random v against sum(grad * v). */
static void check_directional(run *r, uint64_t *rng) {
    float *p[OC_MAX_IN * MAX_ELEMS], dir[OC_MAX_IN * MAX_ELEMS];
    double expect = 0, scale = 0;
    int m = 0;
    for (int i = 0; i < r->n_in; i++) {
        if (!oc_is_float(&r->c->in[i])) continue;
        int64_t n = nb_numel(r->leaf[i]);
        float *v = r->host[i], g[MAX_ELEMS];
        nb_copy_to(nb_grad(r->leaf[i]), g, n);
        for (int64_t j = 0; j < n; j++) {
            if (isnan(v[j])) continue;
            p[m] = &v[j];
            dir[m] = (float)((int)(oc_next(rng) % 17) - 8) / 8.0f;
            expect += (double)g[j] * dir[m];
            scale += fabs((double)g[j] * dir[m]);
            m++;
        }
    }
    double got = gc_stencil(loss_at_host, r, p, dir, m);
    if (fabs(got - expect) <= GRAD_ATOL * (1 + scale) + GRAD_RTOL * fabs(expect))
        check_passed_++;
    else
        CHECK_FAIL_("%s: directional derivative %.9g, sum(grad * v) %.9g", r->c->name, got, expect);
}

static void gradcheck_case(const op_case *c) {
    uint64_t rng = gc_seed_of(c->name);
    run r = {.c = c, .n_in = oc_n_inputs(c)};
    float before[OC_MAX_IN][MAX_ELEMS];
    nb_scope_begin();
    bool differentiable = nb__ops[c->op].kernels[NB_F32].backward != NULL;
    for (int i = 0; i < r.n_in; i++) {
        if (oc_leaf_numel(&c->in[i]) > MAX_ELEMS) {
            CHECK_FAIL_("%s: input %d is larger than this test's buffers", c->name, i);
            nb_scope_end();
            return;
        }
        float v[MAX_ELEMS];
        oc_draw_values(&c->in[i], &rng, v);
        r.leaf[i] = oc_make_leaf(&c->in[i], v);
        if (oc_is_float(&c->in[i])) nb_set_requires_grad(r.leaf[i], true);
        r.x[i] = oc_view_of(&c->in[i], r.leaf[i]);
        nb_copy_to(r.leaf[i], before[i], nb_numel(r.leaf[i]));
    }
    nb_tensor *out = oc_fns[c->fn].call(r.x, c);
    r.n_out = out ? nb_numel(out) : 0;
    if (!out || r.n_out > MAX_ELEMS) {
        CHECK_FAIL_("%s: forward failed or too large [%s]", c->name, nb_error_message());
        nb_error_clear();
        nb_scope_end();
        return;
    }
    float y[MAX_ELEMS];
    bool finite = nb_copy_to(out, y, r.n_out) == NB_OK;
    for (int64_t i = 0; i < r.n_out; i++) finite = finite && isfinite(y[i]);
    if (finite) check_passed_++;
    else CHECK_FAIL_("%s: forward gives non-finite values", c->name);

    if (!differentiable) { /* comparisons and argmax: no graph, as torch */
        if (!nb_requires_grad(out) && nb_grad_fn(out) == NULL) check_passed_++;
        else CHECK_FAIL_("%s: %s recorded a gradient node", c->name, nb__ops[c->op].name);
        nb_scope_end();
        return;
    }
    if (oc_graph_has_op(out, c->op)) check_passed_++;
    else CHECK_FAIL_("%s: the graph has no %s node", c->name, nb__ops[c->op].name);

    for (int64_t i = 0; i < r.n_out; i++) r.r[i] = (float)(2 * oc_uniform01(&rng) - 1);
    nb_tensor *rt = nb_from_data(r.r, nb_ndim(out), nb_shape(out));
    CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(out, rt))), NB_OK);
    for (int i = 0; i < r.n_in; i++) { /* bitwise: NaN gaps must stay NaN too */
        float after[MAX_ELEMS];
        int64_t n = nb_numel(r.leaf[i]);
        nb_copy_to(r.leaf[i], after, n);
        if (memcmp(before[i], after, sizeof(float) * (size_t)n) == 0) check_passed_++;
        else CHECK_FAIL_("%s: the op changed input %d", c->name, i);
    }
    sync_leaves(&r, false); /* the host copies lead from here on: the stencils move them */
    check_gradients(&r);
    check_directional(&r, &rng);
    nb_scope_end();
}

/* Every differentiable row needs a smooth case here; a new row without one fails by name. */
static void every_differentiable_row_has_a_case(void) {
    for (int op = 0; op < NB_OP_COUNT; op++) {
        if (!nb__ops[op].kernels[NB_F32].backward) continue;
        bool found = false;
        for (int i = 0; i < OC_N_CASES; i++)
            found = found || (oc_cases[i].op == (nb_op_id)op && !oc_cases[i].nonsmooth);
        if (found) check_passed_++;
        else CHECK_FAIL_("op %s has a backward but no gradcheck case in tests/op_cases.h",
                         nb__ops[op].name);
    }
}

int main(void) {
    every_differentiable_row_has_a_case();
    for (int i = 0; i < OC_N_CASES; i++)
        if (!oc_cases[i].nonsmooth && !oc_cases[i].estimator) gradcheck_case(&oc_cases[i]);
    return check_summary();
}
