/*
 * functional.c — torch.autograd.functional for a function of one tensor (vjp, jvp, Jacobian,
 * Hessian, hvp) and Hessian-vector products on a graph the caller built (with Hutchinson's
 * estimate of the Hessian's diagonal), each made of nb_autograd_grad passes.
 *
 * With y = f(x), J = dy/dx and, for a one-element f, g(x) = grad f and H = dg/dx:
 *   vjp       v^T J = grad(y, x, grad_outputs = v): one reverse pass.
 *   jvp       J v by the double-backward trick (torch.autograd.functional.jvp): for a dummy u
 *             of y's shape that requires grad, w(u) = grad(y, x, u, create_graph) = J^T u is
 *             linear in u, so grad(w, u, grad_outputs = v) = d/du [u^T J v] = J v.  The value
 *             of u does not matter (zeros); only the graph of J^T u does.
 *   jacobian  row i is e_i^T J: one reverse pass per element of y, over one graph.
 *   hessian   the Jacobian of g, whose graph create_graph recorded.
 *   hvp       grad(g, x, grad_outputs = v) = v^T H, which is (H v)^T since H is symmetric for
 *             a twice continuously differentiable f (torch computes its hvp the same way
 *             when strict is off, and names this one vhp).
 *   Hutchinson (Hutchinson 1989; Bekas, Kokiopoulou & Saad 2007): for z with independent
 *             Rademacher entries (+-1, each with probability 1/2), E[z_i z_j] = [i = j], so
 *             (z * Hz)_i = H_ii + sum_{j != i} H_ij z_i z_j has mean H_ii and variance
 *             sum_{j != i} H_ij^2; the mean over S draws has that variance / S.
 *
 * Where y does not depend on x (or on a parameter) the derivative is zeros, as torch's
 * functional API gives with strict=False.  Every helper works in a private scope: x's stand-in
 * (a leaf sharing x's data, so x is untouched and need not require grad), f's graph and the
 * passes' graphs end there; the results are copied, detached, into the caller's home (the scope
 * open at the call, or the heap).
 */
#include "../ops/op.h"

/* ---------------------------------------------------------------- the private scope */

typedef struct {
    nb_arena *home; /* where results go: the scope open at the call, or the heap (NULL) */
    bool was_enabled;
} session;

static session open_session(void) {
    session s = {.home = nb__current_arena()};
    nb_scope_begin();
    s.was_enabled = nb_set_grad_enabled(true); /* f records even when called under no-grad */
    return s;
}

/* Copies result (may be NULL) out to the caller's home, then ends the private scope. */
static nb_tensor *close_session(const session *s, nb_tensor *result) {
    nb_tensor *kept = result ? nb__clone_in(s->home, result) : NULL;
    nb_set_grad_enabled(s->was_enabled);
    nb_scope_end();
    return kept;
}

/* ---------------------------------------------------------------- checks */

static bool check_function(const char *op, nb_function f, const nb_tensor *x) {
    if (!f) return nb__fail(NB_ERR_ARG, "%s: the function f is NULL", op), false;
    if (!nb__alive(x)) return nb__fail_input(op, x), false;
    return true;
}

/* v is alive and has the shape of `of` (named `what` in the message). */
static bool check_vector(const char *op, const nb_tensor *v, const nb_tensor *of, const char *what) {
    if (!nb__alive(v)) return nb__fail_input(op, v), false;
    if (!nb__same_shape(v, of))
        return nb__fail(NB_ERR_SHAPE, "%s: v %s does not match %s %s", op, NB_SHP(v), what,
                        NB_SHP(of)), false;
    return true;
}

static bool check_one_element(const char *op, const nb_tensor *y, const char *what) {
    int64_t n = nb__numel(y->ndim, y->shape);
    if (n != 1)
        return nb__fail(NB_ERR_SHAPE, "%s: %s has shape %s (%lld elements); a Hessian needs one "
                        "element", op, what, NB_SHP(y), (long long)n), false;
    return true;
}

/* ---------------------------------------------------------------- building blocks */

/* f at a stand-in for x: *leaf shares x's data and requires grad.  NULL (error set, naming op)
 * when f fails or returns something that is not a live float tensor. */
static nb_tensor *call(const char *op, nb_function f, void *ctx, nb_tensor *x, nb_tensor **leaf) {
    *leaf = nb_detach(x);
    if (!*leaf || nb_set_requires_grad(*leaf, true) != NB_OK)
        return nb__fail_prefix("%s: x %s", op, NB_SHP(x)), NULL;
    nb_tensor *y = f(*leaf, ctx);
    if (!y && nb_error_code() != NB_OK) return nb__fail_prefix("%s: f", op), NULL;
    if (!nb__alive(y)) return nb__fail(NB_ERR_NULL, "%s: f returned %s tensor", op,
                                       y ? "a dead" : "a NULL");
    if (y->dtype != NB_F32)
        return nb__fail(NB_ERR_DTYPE, "%s: f returned a %s tensor; derivatives need float32", op,
                        nb_dtype_name(y->dtype));
    return y;
}

/* grad(y, leaf, grad_outputs = seed): zeros when y does not depend on leaf.  seed may be NULL
 * for a one-element y.  The graph is kept, for the next row of a Jacobian. */
static nb_tensor *grad_of(nb_tensor *y, nb_tensor *leaf, nb_tensor *seed, bool create_graph) {
    if (!y->requires_grad) return nb_zeros_like(leaf);
    nb_tensor *g = NULL;
    nb_grad_options o = {.create_graph = create_graph, .retain_graph = true,
                         .materialize_grads = true};
    return nb_autograd_grad(1, &y, &seed, 1, &leaf, &g, &o) == NB_OK ? g : NULL;
}

/* dy/dleaf, shape y.shape + leaf.shape, row by row: row i = e_i^T J, one pass each, in a scope
 * of its own so only the result grows. */
static nb_tensor *jacobian_of(const char *op, nb_tensor *y, nb_tensor *leaf) {
    int nd = y->ndim + leaf->ndim;
    if (nd > NB_MAX_DIMS)
        return nb__fail(NB_ERR_SHAPE, "%s: the Jacobian of %s with respect to %s would have %d "
                        "dims (at most %d)", op, NB_SHP(y), NB_SHP(leaf), nd, NB_MAX_DIMS);
    int64_t shape[NB_MAX_DIMS], stride[NB_MAX_DIMS];
    for (int d = 0; d < y->ndim; d++) shape[d] = y->shape[d];
    for (int d = 0; d < leaf->ndim; d++) shape[y->ndim + d] = leaf->shape[d];
    nb__contiguous_strides(leaf->ndim, leaf->shape, stride);
    int64_t rows = nb__numel(y->ndim, y->shape), cols = nb__numel(leaf->ndim, leaf->shape);
    nb_tensor *jac = nb_zeros(nd, shape);
    for (int64_t i = 0; i < rows && jac; i++) {
        nb_scope_begin();
        nb_tensor *e = nb_zeros(1, &rows);
        nb_tensor *seed = e && nb_set(e, &i, 1.0f) == NB_OK ? nb_reshape(e, y->ndim, y->shape) : NULL;
        nb_tensor *g = seed ? grad_of(y, leaf, seed, false) : NULL;
        nb_tensor *row = g ? nb__view(jac, leaf->ndim, leaf->shape, stride, i * cols) : NULL;
        if (row) nb__copy_tensor(row, g);
        else jac = NULL; /* in the private scope: released with it */
        nb_scope_end();
    }
    return jac;
}

/* ---------------------------------------------------------------- one tensor's function */

nb_tensor *nb_vjp(nb_function f, void *ctx, nb_tensor *x, nb_tensor *v) {
    const char *op = "vjp";
    if (!check_function(op, f, x)) return NULL;
    if (v && !nb__alive(v)) return nb__fail_input(op, v);
    session s = open_session();
    nb_tensor *leaf, *y = call(op, f, ctx, x, &leaf), *r = NULL;
    if (y && (!v || check_vector(op, v, y, "f(x)"))) {
        if (!v && nb__numel(y->ndim, y->shape) != 1)
            nb__fail(NB_ERR_SHAPE, "%s: f(x) has shape %s; v may be NULL only for one element",
                     op, NB_SHP(y));
        else
            r = grad_of(y, leaf, v, false);
    }
    return close_session(&s, r);
}

nb_tensor *nb_jvp(nb_function f, void *ctx, nb_tensor *x, nb_tensor *v) {
    const char *op = "jvp";
    if (!check_function(op, f, x) || !check_vector(op, v, x, "x")) return NULL;
    session s = open_session();
    nb_tensor *leaf, *y = call(op, f, ctx, x, &leaf), *r = NULL;
    nb_tensor *u = y ? nb_zeros_like(y) : NULL;
    if (u && nb_set_requires_grad(u, true) == NB_OK) {
        nb_tensor *w = grad_of(y, leaf, u, true); /* J^T u, linear in u */
        if (w) r = grad_of(w, u, v, false);       /* d/du [u^T J v] = J v */
    }
    return close_session(&s, r);
}

nb_tensor *nb_jacobian(nb_function f, void *ctx, nb_tensor *x) {
    const char *op = "jacobian";
    if (!check_function(op, f, x)) return NULL;
    session s = open_session();
    nb_tensor *leaf, *y = call(op, f, ctx, x, &leaf);
    return close_session(&s, y ? jacobian_of(op, y, leaf) : NULL);
}

nb_tensor *nb_hessian(nb_function f, void *ctx, nb_tensor *x) {
    const char *op = "hessian";
    if (!check_function(op, f, x)) return NULL;
    session s = open_session();
    nb_tensor *leaf, *y = call(op, f, ctx, x, &leaf), *r = NULL;
    nb_tensor *g = y && check_one_element(op, y, "f(x)") ? grad_of(y, leaf, NULL, true) : NULL;
    if (g) r = jacobian_of(op, g, leaf);
    return close_session(&s, r);
}

nb_tensor *nb_hvp(nb_function f, void *ctx, nb_tensor *x, nb_tensor *v) {
    const char *op = "hvp";
    if (!check_function(op, f, x) || !check_vector(op, v, x, "x")) return NULL;
    session s = open_session();
    nb_tensor *leaf, *y = call(op, f, ctx, x, &leaf), *r = NULL;
    nb_tensor *g = y && check_one_element(op, y, "f(x)") ? grad_of(y, leaf, NULL, true) : NULL;
    if (g) r = grad_of(g, leaf, v, false); /* v^T H = (H v)^T */
    return close_session(&s, r);
}

/* ---------------------------------------------------------------- on a built graph */

/* The first-order gradients of loss with respect to params, recorded (create_graph), as the
 * outputs of the second passes: those of them that require grad (a gradient that does not is
 * a constant, with a zero derivative) with their index in params.  Arrays in the open scope. */
typedef struct {
    int n;         /* how many gradients require grad */
    nb_tensor **g; /* [n] */
    int *param;    /* [n]: g[k] is the gradient of params[param[k]] */
} first_grads;

/* The arguments every helper on a graph takes; clears out[0..n) first, so a failure leaves it
 * all NULL. */
static nb_status check_graph_args(const char *op, nb_tensor *loss, int n, nb_tensor *const *params,
                                  nb_tensor **out) {
    if (n < 1 || !params || !out)
        return nb__fail_status(NB_ERR_ARG, "%s: needs n >= 1 params and an output array (n = %d)",
                               op, n);
    for (int j = 0; j < n; j++) out[j] = NULL;
    if (!nb__alive(loss)) return nb__fail_input(op, loss), nb_error_code();
    if (!check_one_element(op, loss, "loss")) return nb_error_code();
    if (!loss->requires_grad)
        return nb__fail_status(NB_ERR_GRAPH, "%s: loss does not require grad and has no grad_fn",
                               op);
    return NB_OK;
}

static nb_status first_grads_of(const char *op, nb_tensor *loss, int n, nb_tensor *const *params,
                                first_grads *fg) {
    nb_arena *scope = nb__current_arena();
    nb_tensor **all = nb__home_alloc(scope, sizeof *all * (size_t)n);
    fg->g = nb__home_alloc(scope, sizeof *fg->g * (size_t)n);
    fg->param = nb__home_alloc(scope, sizeof *fg->param * (size_t)n);
    if (!all || !fg->g || !fg->param) return NB_ERR_MEMORY;
    nb_grad_options o = {.create_graph = true, .materialize_grads = true};
    if (nb_autograd_grad(1, &loss, NULL, n, params, all, &o) != NB_OK)
        return nb__fail_prefix("%s", op);
    fg->n = 0;
    for (int j = 0; j < n; j++)
        if (all[j]->requires_grad) {
            fg->g[fg->n] = all[j];
            fg->param[fg->n++] = j;
        }
    return NB_OK;
}

/* hv[j] = (H v)_j = sum over k of grad(g_k, params_j, grad_outputs = v_k), all j in one pass:
 * the gradient of sum_k g_k . v_k.  hv[j] are results in the open scope. */
static nb_status hessian_times(const first_grads *fg, int n, nb_tensor *const *params,
                               nb_tensor *const *v, nb_tensor **hv) {
    if (fg->n == 0) { /* the loss is linear in every param */
        for (int j = 0; j < n; j++)
            if (!(hv[j] = nb_zeros_like(params[j]))) return nb_error_code();
        return NB_OK;
    }
    nb_tensor **seeds = nb__home_alloc(nb__current_arena(), sizeof *seeds * (size_t)fg->n);
    if (!seeds) return NB_ERR_MEMORY;
    for (int k = 0; k < fg->n; k++) seeds[k] = v[fg->param[k]];
    nb_grad_options o = {.retain_graph = true, .materialize_grads = true};
    return nb_autograd_grad(fg->n, fg->g, seeds, n, params, hv, &o);
}

nb_status nb_hessian_vector_product(nb_tensor *loss, int n, nb_tensor *const *params,
                                    nb_tensor *const *v, nb_tensor **hv) {
    const char *op = "hessian_vector_product";
    nb_status st = check_graph_args(op, loss, n, params, hv);
    if (st != NB_OK) return st;
    if (!v) return nb__fail_status(NB_ERR_ARG, "%s: v is NULL", op);
    for (int j = 0; j < n; j++) {
        if (!nb__alive(params[j])) return nb__fail_input(op, params[j]), nb_error_code();
        char what[32];
        snprintf(what, sizeof what, "param %d", j);
        if (!check_vector(op, v[j], params[j], what)) return nb_error_code();
    }
    session s = open_session();
    first_grads fg;
    nb_tensor **tmp = nb__home_alloc(nb__current_arena(), sizeof *tmp * (size_t)n);
    st = tmp ? first_grads_of(op, loss, n, params, &fg) : NB_ERR_MEMORY;
    if (st == NB_OK) st = hessian_times(&fg, n, params, v, tmp);
    for (int j = 0; j < n && st == NB_OK; j++)
        if (!(hv[j] = nb__clone_in(s.home, tmp[j]))) st = nb_error_code();
    close_session(&s, NULL);
    if (st != NB_OK)
        for (int j = 0; j < n; j++) nb_tensor_free(hv[j]), hv[j] = NULL;
    return st;
}

/* A tensor of t's shape with independent entries +1 or -1, each with probability 1/2, from the
 * thread's generator: 2 bernoulli(1/2) - 1. */
static nb_tensor *rademacher(const nb_tensor *t) {
    nb_tensor *half = nb_full(t->ndim, t->shape, 0.5f);
    nb_tensor *b = half ? nb_bernoulli(half) : NULL;
    return nb_add_scalar(nb_mul_scalar(b, 2.0f), -1.0f);
}

/* acc += z * hz for each param, acc contiguous f32 in the session's scope. */
static nb_status add_sample(int n, nb_tensor **acc, nb_tensor **z, nb_tensor **hz) {
    for (int j = 0; j < n; j++) {
        nb_tensor *prod = nb_mul(z[j], hz[j]); /* a new contiguous tensor */
        if (!prod) return nb_error_code();
        nb__be(acc[j])->accumulate(nb__f32(acc[j]), nb__f32(prod),
                                   nb__numel(acc[j]->ndim, acc[j]->shape));
    }
    return NB_OK;
}

nb_status nb_hessian_diagonal_estimate(nb_tensor *loss, int n, nb_tensor *const *params,
                                       int samples, nb_tensor **diag) {
    const char *op = "hessian_diagonal_estimate";
    nb_status st = check_graph_args(op, loss, n, params, diag);
    if (st != NB_OK) return st;
    if (samples < 1) return nb__fail_status(NB_ERR_ARG, "%s: samples must be >= 1, got %d", op, samples);
    for (int j = 0; j < n; j++)
        if (!nb__alive(params[j])) return nb__fail_input(op, params[j]), nb_error_code();
    session s = open_session();
    first_grads fg;
    nb_arena *scope = nb__current_arena();
    nb_tensor **acc = nb__home_alloc(scope, sizeof *acc * (size_t)n);
    nb_tensor **z = nb__home_alloc(scope, sizeof *z * (size_t)n);
    nb_tensor **hz = nb__home_alloc(scope, sizeof *hz * (size_t)n);
    st = acc && z && hz ? first_grads_of(op, loss, n, params, &fg) : NB_ERR_MEMORY;
    for (int j = 0; j < n && st == NB_OK; j++)
        if (!(acc[j] = nb_zeros(params[j]->ndim, params[j]->shape))) st = nb_error_code();
    for (int k = 0; k < samples && st == NB_OK; k++) {
        nb_scope_begin(); /* one sample's vectors and products */
        for (int j = 0; j < n && st == NB_OK; j++)
            if (!(z[j] = rademacher(params[j]))) st = nb_error_code();
        if (st == NB_OK) st = hessian_times(&fg, n, params, z, hz);
        if (st == NB_OK) st = add_sample(n, acc, z, hz);
        nb_scope_end();
    }
    for (int j = 0; j < n && st == NB_OK; j++) {
        nb_tensor *mean = nb_mul_scalar(acc[j], 1.0f / (float)samples);
        if (!mean || !(diag[j] = nb__clone_in(s.home, mean))) st = nb_error_code();
    }
    close_session(&s, NULL);
    if (st != NB_OK)
        for (int j = 0; j < n; j++) nb_tensor_free(diag[j]), diag[j] = NULL;
    return st;
}
