/*
 * test_functional.c — the functional helpers of nabla/autograd.h (torch.autograd.functional):
 * vjp, jvp, Jacobian, Hessian and hvp against torch's goldens (tests/golden/functional.json,
 * tools/gen_golden_functional.py), Hessian-vector products on a built graph, Hutchinson's
 * diagonal estimate, ownership (results detached, in the open scope or the caller's, nothing
 * left behind with no scope open) and the errors.
 *
 * The golden functions are written here with the same expressions as in the generator.  Those
 * of add/sub/mul/div/pow, sum/mean and views run on the engine alone; a case's "needs" names
 * the op families whose second derivatives it takes besides (unary: tanh, exp, sin; matmul;
 * linear; softmax; slice), each of which must support create_graph for the case to pass.
 */
#include "golden_json.h"

/* ---------------------------------------------------------------- the golden functions */

/* A case's constants by name (f's ctx). */
typedef struct {
    int n;
    const char *name[8];
    nb_tensor *value[8];
} consts;

static nb_tensor *K(void *ctx, const char *name) {
    consts *c = ctx;
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->name[i], name) == 0) return c->value[i];
    fprintf(stderr, "no constant %s\n", name);
    return NULL;
}

/* sum(x x x) + sum(x) sum(x x) */
static nb_tensor *cubic_coupled(nb_tensor *x, void *ctx) {
    (void)ctx;
    nb_tensor *xx = nb_mul(x, x);
    return nb_add(nb_sum(nb_mul(xx, x)), nb_mul(nb_sum(x), nb_sum(xx)));
}

/* sum(x / (c + x x)) mean(x) */
static nb_tensor *ratio(nb_tensor *x, void *ctx) {
    return nb_mul(nb_sum(nb_div(x, nb_add(K(ctx, "c"), nb_mul(x, x)))), nb_mean(x));
}

/* sum(x ** p) + sum(b ** x) */
static nb_tensor *power(nb_tensor *x, void *ctx) {
    return nb_add(nb_sum(nb_pow(x, K(ctx, "p"))), nb_sum(nb_pow(K(ctx, "b"), x)));
}

/* x [2, 3]: sum(t t t) + sum(e w) sum(reshape(t, 6) w), t = x^T, e = x as [1, 6] expanded to [2, 6] */
static nb_tensor *views(nb_tensor *x, void *ctx) {
    nb_tensor *t = nb_transpose(x, 0, 1);
    nb_tensor *e = nb_expand(nb_reshape(x, NB_SHAPE(1, 6)), NB_SHAPE(2, 6));
    nb_tensor *r = nb_mul(nb_reshape(t, NB_SHAPE(6)), K(ctx, "w"));
    return nb_add(nb_sum(nb_mul(nb_mul(t, t), t)), nb_mul(nb_sum(nb_mul(e, K(ctx, "w"))), nb_sum(r)));
}

/* x [2, 3]: s = x[:, 0:2] x[:, 1:3]; sum(s) sum(x) + sum(s s w) — needs slice */
static nb_tensor *slices(nb_tensor *x, void *ctx) {
    nb_tensor *s = nb_mul(nb_slice(x, 1, 0, 2, 1), nb_slice(x, 1, 1, 3, 1));
    return nb_add(nb_mul(nb_sum(s), nb_sum(x)), nb_sum(nb_mul(nb_mul(s, s), K(ctx, "w"))));
}

/* x [3] -> [2, 3]: x sum(x) - a / (b + x x) */
static nb_tensor *vector(nb_tensor *x, void *ctx) {
    return nb_sub(nb_mul(x, nb_sum(x)), nb_div(K(ctx, "a"), nb_add(K(ctx, "b"), nb_mul(x, x))));
}

/* sum(tanh(x) exp(x s) + sin(x) x) — needs the unary family */
static nb_tensor *tanh_exp(nb_tensor *x, void *ctx) {
    nb_tensor *a = nb_mul(nb_tanh(x), nb_exp(nb_mul(x, K(ctx, "s"))));
    return nb_sum(nb_add(a, nb_mul(nb_sin(x), x)));
}

/* sum(x (A @ x)) — needs matmul */
static nb_tensor *quadratic_matmul(nb_tensor *x, void *ctx) {
    return nb_sum(nb_mul(x, nb_matmul(K(ctx, "A"), x)));
}

/* tanh(W2 tanh(W1 x + b1) + b2) with linear layers — needs linear and unary */
static nb_tensor *mlp(nb_tensor *x, void *ctx) {
    nb_tensor *h = nb_tanh(nb_linear(x, K(ctx, "W1"), K(ctx, "b1")));
    return nb_tanh(nb_linear(h, K(ctx, "W2"), K(ctx, "b2")));
}

static nb_tensor *mlp_loss(nb_tensor *x, void *ctx) {
    nb_tensor *y = mlp(x, ctx);
    return nb_mean(nb_mul(y, y));
}

/* sum(softmax(x, -1) w) — needs softmax */
static nb_tensor *softmax_dot(nb_tensor *x, void *ctx) {
    return nb_sum(nb_mul(nb_softmax(x, -1), K(ctx, "w")));
}

static const struct {
    const char *name;
    nb_function f;
} functions[] = {
    {"cubic_coupled", cubic_coupled}, {"ratio", ratio},       {"power", power},
    {"views", views},                 {"slices", slices},     {"vector", vector},
    {"tanh_exp", tanh_exp},
    {"quadratic_matmul", quadratic_matmul}, {"mlp", mlp},     {"mlp_loss", mlp_loss},
    {"softmax_dot", softmax_dot},
};

static nb_function function_named(const char *name) {
    for (size_t i = 0; i < sizeof functions / sizeof *functions; i++)
        if (strcmp(functions[i].name, name) == 0) return functions[i].f;
    return NULL;
}

/* The case's constants as tensors in the open scope. */
static void load_consts(const json_t *c, consts *k) {
    const char *name;
    const json_t *value;
    k->n = 0;
    json_object_foreach((json_t *)json_object_get(c, "consts"), name, value) {
        k->name[k->n] = name;
        k->value[k->n++] = json_tensor(value);
    }
}

/* ---------------------------------------------------------------- torch's goldens */

/* float32 results against float64 references: the functions' values are O(1)-O(10), so a few
 * float32 roundings (6e-8 relative each) over a handful of ops stay well inside 1e-5. */
#define TOL 1e-5

static void golden_case(const json_t *c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    nb_function f = function_named(name);
    if (!f) {
        CHECK_FAIL_("golden case %s has no C function", name);
        return;
    }
    char what[160];
    int failed_before = check_failed_;
    nb_scope_begin();
    consts k;
    load_consts(c, &k);
    nb_tensor *x = json_tensor(json_object_get(c, "x"));
    nb_tensor *v_out = json_tensor(json_object_get(c, "v_out"));
    nb_tensor *v_in = json_tensor(json_object_get(c, "v_in"));
#define GOLDEN(field, expr)                                               \
    do {                                                                  \
        snprintf(what, sizeof what, "%s: %s", name, field);               \
        check_json_tensor(what, expr, json_object_get(c, field), TOL);    \
    } while (0)
    GOLDEN("value", f(x, &k));
    GOLDEN("jacobian", nb_jacobian(f, &k, x));
    GOLDEN("vjp", nb_vjp(f, &k, x, v_out));
    GOLDEN("jvp", nb_jvp(f, &k, x, v_in));
    if (json_object_get(c, "hessian")) {
        GOLDEN("hessian", nb_hessian(f, &k, x));
        GOLDEN("hvp", nb_hvp(f, &k, x, v_in));
        /* the same product on a graph built here: x as a parameter */
        nb_tensor *p = nb_detach(x), *hv = NULL;
        nb_set_requires_grad(p, true);
        CHECK_EQ_INT(nb_hessian_vector_product(f(p, &k), 1, &p, &v_in, &hv), NB_OK);
        snprintf(what, sizeof what, "%s: hessian_vector_product", name);
        check_json_tensor(what, hv, json_object_get(c, "hvp"), TOL);
    }
#undef GOLDEN
    const json_t *needs = json_object_get(c, "needs");
    if (check_failed_ > failed_before && json_array_size(needs) > 0) {
        fprintf(stderr, "  (case %s needs create_graph support in:", name);
        for (size_t i = 0; i < json_array_size(needs); i++)
            fprintf(stderr, " %s", json_string_value(json_array_get(needs, i)));
        fprintf(stderr, ")\n");
    }
    nb_error_clear();
    nb_scope_end();
}

static void helpers_match_torch_functional(void) {
    golden_each_case("tests/golden/functional.json", "cases", 11, golden_case);
}

/* ---------------------------------------------------------------- ownership */

static nb_tensor *cube_sum(nb_tensor *x, void *ctx) {
    (void)ctx;
    return nb_sum(nb_mul(nb_mul(x, x), x));
}

/* d/dx sum(x^3) = 3x^2, Hessian diag(6x). */
static void results_are_detached_and_x_is_untouched(void) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){1, -2, 0.5f}, NB_SHAPE(3));
    nb_tensor *h = nb_hessian(cube_sum, NULL, x);
    CHECK_TENSOR("hessian", h, ((double[]){6, 0, 0, 0, -12, 0, 0, 0, 3}), 9, 1e-6, 1e-6);
    CHECK(!nb_requires_grad(h) && nb_is_leaf(h));
    CHECK(!nb_requires_grad(x) && nb_grad(x) == NULL);
    CHECK_TENSOR("x", x, ((double[]){1, -2, 0.5}), 3, 0, 0);
    /* a leaf that requires grad keeps its .grad as it was: the helpers return, never accumulate */
    nb_set_requires_grad(x, true);
    nb_tensor *g = nb_vjp(cube_sum, NULL, x, NULL);
    CHECK_TENSOR("3x^2", g, ((double[]){3, 12, 0.75}), 3, 1e-6, 1e-6);
    CHECK(nb_grad(x) == NULL && !nb_requires_grad(g));
    nb_scope_end();
    CHECK(!nb_is_alive(h)); /* owned by the scope open at the call */
}

static void helpers_work_under_no_grad(void) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){2}, NB_SHAPE(1)), *h = NULL;
    NB_NO_GRAD {
        h = nb_hessian(cube_sum, NULL, x);
        CHECK(!nb_is_grad_enabled()); /* the caller's setting is back */
    }
    CHECK_TENSOR("6x", h, ((double[]){12}), 1, 1e-6, 0);
    nb_scope_end();
}

/* With no scope open the caller owns each result and nothing else is left: after the results
 * are freed and the arenas' cached blocks given back, the live bytes are what they were. */
static void helpers_leave_nothing_behind_with_no_scope_open(void) {
    nb_release_memory();
    size_t before = nb_alloc_stats_get().bytes_live;
    nb_tensor *x = nb_from_data((float[]){0.5f, -1, 2}, NB_SHAPE(3));
    nb_tensor *v = nb_from_data((float[]){1, 2, -1}, NB_SHAPE(3));
    consts k = {1, {"c"}, {nb_full(1, (int64_t[]){1}, 1.5f)}};
    nb_tensor *r[5] = {nb_jacobian(ratio, &k, x), nb_vjp(ratio, &k, x, NULL), nb_jvp(ratio, &k, x, v),
                       nb_hessian(ratio, &k, x), nb_hvp(ratio, &k, x, v)};
    for (int i = 0; i < 5; i++) CHECK(r[i] != NULL && !nb_requires_grad(r[i]));
    /* on a graph built with no scope open, sum(p^3), each intermediate freed once used (the
     * graph keeps what it needs): H = diag(6p) */
    nb_tensor *p = nb_detach(x);
    nb_set_requires_grad(p, true);
    nb_tensor *pp = nb_mul(p, p), *ppp = nb_mul(pp, p);
    nb_tensor *loss = nb_sum(ppp), *hv = NULL, *diag = NULL;
    nb_tensor_free(pp), nb_tensor_free(ppp);
    CHECK_EQ_INT(nb_hessian_vector_product(loss, 1, &p, &v, &hv), NB_OK);
    CHECK_EQ_INT(nb_hessian_diagonal_estimate(loss, 1, &p, 3, &diag), NB_OK);
    CHECK_TENSOR("6 p v", hv, ((double[]){3, -12, -12}), 3, 1e-6, 1e-6);
    CHECK_TENSOR("6 p", diag, ((double[]){3, -6, 12}), 3, 1e-6, 1e-6);
    nb_tensor_free(hv), nb_tensor_free(diag), nb_tensor_free(loss), nb_tensor_free(p);
    for (int i = 0; i < 5; i++) nb_tensor_free(r[i]);
    nb_tensor_free(x), nb_tensor_free(v), nb_tensor_free(k.value[0]);
    nb_release_memory();
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, before);
}

/* ---------------------------------------------------------------- special functions */

static nb_tensor *constant(nb_tensor *x, void *ctx) {
    (void)x;
    return nb_full(2, (int64_t[]){2, 1}, *(float *)ctx);
}

static nb_tensor *linear_sum(nb_tensor *x, void *ctx) {
    return nb_sum(nb_mul(x, (nb_tensor *)ctx));
}

static nb_tensor *identity(nb_tensor *x, void *ctx) {
    (void)ctx;
    return x;
}

/* A function that does not depend on x has zero derivatives (torch's strict=False); a linear
 * one a zero Hessian; the identity the identity Jacobian. */
static void independent_and_linear_functions_give_zeros(void) {
    nb_scope_begin();
    float c = 3;
    nb_tensor *x = nb_from_data((float[]){1, 2, 3}, NB_SHAPE(3)), *v = nb_ones(NB_SHAPE(3));
    nb_tensor *j = nb_jacobian(constant, &c, x);
    CHECK(j && nb_ndim(j) == 3 && nb_shape(j)[0] == 2 && nb_shape(j)[1] == 1 && nb_shape(j)[2] == 3);
    CHECK_TENSOR("zeros", j, ((double[6]){0}), 6, 0, 0);
    CHECK_TENSOR("jvp", nb_jvp(constant, &c, x, v), ((double[2]){0}), 2, 0, 0);
    nb_tensor *w = nb_from_data((float[]){4, 5, 6}, NB_SHAPE(3));
    CHECK_TENSOR("gradient", nb_vjp(linear_sum, w, x, NULL), ((double[]){4, 5, 6}), 3, 0, 0);
    CHECK_TENSOR("hessian", nb_hessian(linear_sum, w, x), ((double[9]){0}), 9, 0, 0);
    CHECK_TENSOR("hvp", nb_hvp(linear_sum, w, x, v), ((double[3]){0}), 3, 0, 0);
    CHECK_TENSOR("identity", nb_jacobian(identity, NULL, x), ((double[]){1, 0, 0, 0, 1, 0, 0, 0, 1}), 9, 0, 0);
    CHECK_TENSOR("jvp of identity", nb_jvp(identity, NULL, x, w), ((double[]){4, 5, 6}), 3, 0, 0);
    nb_scope_end();
}

/* ---------------------------------------------------------------- on a built graph */

/* loss(a, b) = cubic_coupled(concat(a, b)): the product with two parameters is the full
 * Hessian's (nb_hessian of the concatenation) times the concatenated v, split back. */
static void hessian_vector_product_equals_hessian_times_v(void) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){0.3f, -1.2f, 0.8f, 2.0f, -0.5f}, NB_SHAPE(5));
    nb_tensor *v = nb_from_data((float[]){1.0f, -0.5f, 2.0f, 0.25f, -1.5f}, NB_SHAPE(5));
    nb_tensor *a = nb_detach(nb_slice(x, 0, 0, 2, 1)), *b = nb_detach(nb_slice(x, 0, 2, 5, 1));
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(b, true);
    nb_tensor *loss = cubic_coupled(nb_concat(2, (nb_tensor *[]){a, b}, 0), NULL);
    nb_tensor *va = nb_slice(v, 0, 0, 2, 1), *vb = nb_slice(v, 0, 2, 5, 1);
    nb_tensor *hv[2] = {NULL, NULL};
    CHECK_EQ_INT(nb_hessian_vector_product(loss, 2, (nb_tensor *[]){a, b}, (nb_tensor *[]){va, vb}, hv), NB_OK);
    nb_tensor *want = nb_matmul(nb_hessian(cubic_coupled, NULL, x), v);
    float w[5];
    nb_copy_to(want, w, 5);
    CHECK_TENSOR("(H v) for a", hv[0], ((double[]){w[0], w[1]}), 2, 1e-5, 1e-5);
    CHECK_TENSOR("(H v) for b", hv[1], ((double[]){w[2], w[3], w[4]}), 3, 1e-5, 1e-5);
    CHECK(!nb_requires_grad(hv[0]) && !nb_requires_grad(hv[1]));
    /* the caller's graph is kept: backward still runs on it */
    CHECK_EQ_INT(nb_backward(loss), NB_OK);
    CHECK(nb_grad(a) != NULL);
    nb_scope_end();
}

/* loss = sum(c x^3): H = diag(6 c x) is diagonal, so z_i (H z)_i = H_ii z_i^2 = H_ii exactly,
 * whatever the draw: one sample is exact. */
static void hutchinson_is_exact_for_a_diagonal_hessian(void) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){1, -2, 0.5f, 3}, NB_SHAPE(4));
    nb_tensor *c = nb_from_data((float[]){1, 0.5f, -2, 0.25f}, NB_SHAPE(4));
    nb_set_requires_grad(x, true);
    nb_tensor *loss = nb_sum(nb_mul(c, nb_mul(nb_mul(x, x), x))), *diag = NULL;
    CHECK_EQ_INT(nb_hessian_diagonal_estimate(loss, 1, &x, 1, &diag), NB_OK);
    CHECK_TENSOR("diag(6 c x)", diag, ((double[]){6, -6, -6, 4.5}), 4, 1e-6, 1e-6);
    nb_scope_end();
}

enum { QN = 6 };

/* x^T A x built from a broadcast outer product (mul, sum, views): H = A + A^T. */
static nb_tensor *quadratic_form(nb_tensor *x, nb_tensor *a) {
    nb_tensor *outer = nb_mul(nb_reshape(x, NB_SHAPE(QN, 1)), nb_reshape(x, NB_SHAPE(1, QN)));
    return nb_sum(nb_mul(a, outer));
}

static void quadratic_problem(nb_tensor **x, nb_tensor **a, double h[QN][QN]) {
    float av[QN * QN], xv[QN];
    for (int i = 0; i < QN * QN; i++) av[i] = (float)((i * 7 % 11) - 5) / 4.0f; /* -1.25 .. 1.25 */
    for (int i = 0; i < QN; i++) xv[i] = (float)i - 2.5f;
    for (int i = 0; i < QN; i++)
        for (int j = 0; j < QN; j++) h[i][j] = (double)av[i * QN + j] + av[j * QN + i];
    *a = nb_from_data(av, NB_SHAPE(QN, QN));
    *x = nb_from_data(xv, NB_SHAPE(QN));
    nb_set_requires_grad(*x, true);
}

/* For z Rademacher, z_i (H z)_i = H_ii + sum_{j != i} H_ij z_i z_j: the products z_i z_j
 * (j != i) are themselves independent +-1 with mean 0, so one sample has mean H_ii and variance
 * s_i^2 = sum_{j != i} H_ij^2, and the mean of S samples has standard deviation s_i / sqrt(S).
 * With S = 4000 the estimate must be within 5 such deviations of the exact diagonal (a miss
 * has probability below 1e-6 per element for a fair generator; the draw is seeded, so the test
 * is repeatable), and, a check that it is an estimate at all, a single sample is not exact. */
static void hutchinson_converges_to_the_exact_diagonal(void) {
    nb_scope_begin();
    nb_tensor *x, *a, *diag = NULL, *one = NULL;
    double h[QN][QN];
    quadratic_problem(&x, &a, h);
    nb_tensor *loss = quadratic_form(x, a);
    enum { S = 4000 };
    nb_manual_seed(7);
    CHECK_EQ_INT(nb_hessian_diagonal_estimate(loss, 1, &x, S, &diag), NB_OK);
    float got[QN];
    nb_copy_to(diag, got, QN);
    double worst_sigmas = 0;
    bool single_exact = true;
    CHECK_EQ_INT(nb_hessian_diagonal_estimate(loss, 1, &x, 1, &one), NB_OK);
    for (int i = 0; i < QN; i++) {
        double s2 = 0;
        for (int j = 0; j < QN; j++) s2 += j == i ? 0 : h[i][j] * h[i][j];
        double sigma = sqrt(s2 / S), err = fabs(got[i] - h[i][i]);
        CHECK_NEAR(got[i], h[i][i], 5 * sigma, 0);
        if (err / sigma > worst_sigmas) worst_sigmas = err / sigma;
        single_exact = single_exact && fabs(nb_get(one, NB_INDEX(i)) - h[i][i]) < 1e-6;
    }
    CHECK(worst_sigmas > 0.01); /* it is an estimate, not the diagonal by accident */
    CHECK(!single_exact);
    nb_scope_end();
}

/* The vectors come from nabla's generator: the same seed gives the same estimate bit for bit,
 * another seed another one, and the draws advance the generator. */
static void hutchinson_is_deterministic_under_a_seed(void) {
    nb_scope_begin();
    nb_tensor *x, *a, *d[3] = {NULL, NULL, NULL};
    double h[QN][QN];
    quadratic_problem(&x, &a, h);
    nb_tensor *loss = quadratic_form(x, a);
    uint64_t seeds[3] = {42, 42, 43};
    for (int r = 0; r < 3; r++) {
        nb_manual_seed(seeds[r]);
        CHECK_EQ_INT(nb_hessian_diagonal_estimate(loss, 1, &x, 5, &d[r]), NB_OK);
        CHECK(nb_rng_get_state().offset > 0);
    }
    float v[3][QN];
    for (int r = 0; r < 3; r++) nb_copy_to(d[r], v[r], QN);
    CHECK(memcmp(v[0], v[1], sizeof v[0]) == 0);
    CHECK(memcmp(v[0], v[2], sizeof v[0]) != 0);
    nb_scope_end();
}

/* Several parameters: each gets its own diagonal block's diagonal. */
static void hutchinson_takes_several_parameters(void) {
    nb_scope_begin();
    nb_tensor *p = nb_from_data((float[]){1, 2}, NB_SHAPE(2)), *q = nb_from_data((float[]){-1, 3, 0.5f}, NB_SHAPE(3));
    nb_set_requires_grad(p, true);
    nb_set_requires_grad(q, true);
    /* sum(p^3) + sum(q^3): diagonal Hessian 6p, 6q, so every estimate is exact */
    nb_tensor *loss = nb_add(cube_sum(p, NULL), cube_sum(q, NULL)), *d[2] = {NULL, NULL};
    CHECK_EQ_INT(nb_hessian_diagonal_estimate(loss, 2, (nb_tensor *[]){p, q}, 2, d), NB_OK);
    CHECK_TENSOR("6p", d[0], ((double[]){6, 12}), 2, 1e-6, 1e-6);
    CHECK_TENSOR("6q", d[1], ((double[]){-6, 18, 3}), 3, 1e-6, 1e-6);
    nb_scope_end();
}

/* ---------------------------------------------------------------- errors */

static nb_tensor *fails(nb_tensor *x, void *ctx) {
    (void)ctx;
    return nb_matmul(x, nb_ones(NB_SHAPE(7, 2)));
}

static void helpers_refuse_bad_arguments_naming_themselves(void) {
    nb_scope_begin();
    nb_tensor *x = nb_ones(NB_SHAPE(3)), *v4 = nb_ones(NB_SHAPE(4)), *out = NULL;
    CHECK(nb_jacobian(NULL, NULL, x) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "jacobian: the function f is NULL");
    CHECK(nb_vjp(cube_sum, NULL, NULL, NULL) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "vjp");
    CHECK(nb_jvp(cube_sum, NULL, x, v4) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "jvp: v [4] does not match x [3]");
    CHECK(nb_hvp(cube_sum, NULL, x, v4) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "hvp: v [4] does not match x [3]");
    CHECK(nb_jvp(cube_sum, NULL, x, NULL) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "jvp");
    CHECK(nb_vjp(identity, NULL, x, v4) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "vjp: v [4] does not match f(x) [3]");
    CHECK(nb_vjp(identity, NULL, x, NULL) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "vjp: f(x) has shape [3]; v may be NULL only for one element");
    CHECK(nb_hessian(identity, NULL, x) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "hessian: f(x) has shape [3] (3 elements); a Hessian needs one element");
    CHECK(nb_hvp(identity, NULL, x, x) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "hvp: f(x) has shape [3]");
    CHECK(nb_jacobian(fails, NULL, x) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "jacobian: f: matmul");
    /* a Jacobian of more than NB_MAX_DIMS dims */
    nb_tensor *x5 = nb_ones(NB_SHAPE(1, 1, 1, 1, 1));
    CHECK(nb_jacobian(identity, NULL, x5) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "jacobian: the Jacobian of [1,1,1,1,1] with respect to [1,1,1,1,1] would have 10 dims");

    nb_tensor *p = nb_ones(NB_SHAPE(3)), *frozen = nb_ones(NB_SHAPE(2));
    nb_set_requires_grad(p, true);
    nb_tensor *loss = cube_sum(p, NULL), *vec = nb_mul(p, p);
    CHECK_EQ_INT(nb_hessian_diagonal_estimate(loss, 1, &p, 0, &out), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "hessian_diagonal_estimate: samples must be >= 1, got 0");
    CHECK_EQ_INT(nb_hessian_diagonal_estimate(vec, 1, &p, 4, &out), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "hessian_diagonal_estimate: loss has shape [3]");
    out = x; /* a failure leaves every result NULL */
    CHECK_EQ_INT(nb_hessian_vector_product(loss, 1, &p, &v4, &out), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "hessian_vector_product: v [4] does not match param 0 [3]");
    CHECK(out == NULL);
    CHECK_EQ_INT(nb_hessian_vector_product(loss, 1, &p, NULL, &out), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "hessian_vector_product: v is NULL");
    CHECK_EQ_INT(nb_hessian_vector_product(loss, 0, &p, &x, &out), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "hessian_vector_product: needs n >= 1");
    CHECK_EQ_INT(nb_hessian_vector_product(x, 1, &p, &x, &out), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "hessian_vector_product: loss has shape [3]");
    CHECK_EQ_INT(nb_hessian_diagonal_estimate(nb_sum(x), 1, &p, 1, &out), NB_ERR_GRAPH);
    CHECK_ERROR(NB_ERR_GRAPH, "hessian_diagonal_estimate: loss does not require grad");
    CHECK_EQ_INT(nb_hessian_diagonal_estimate(loss, 2, (nb_tensor *[]){p, frozen}, 1,
                                              (nb_tensor *[]){NULL, NULL}), NB_ERR_GRAPH);
    CHECK_ERROR(NB_ERR_GRAPH, "hessian_diagonal_estimate: autograd_grad: input 1 [2] does not require grad");
    nb_scope_end();
}

int main(void) {
    helpers_match_torch_functional();
    results_are_detached_and_x_is_untouched();
    helpers_work_under_no_grad();
    independent_and_linear_functions_give_zeros();
    hessian_vector_product_equals_hessian_times_v();
    hutchinson_is_exact_for_a_diagonal_hessian();
    hutchinson_converges_to_the_exact_diagonal();
    hutchinson_is_deterministic_under_a_seed();
    hutchinson_takes_several_parameters();
    helpers_refuse_bad_arguments_naming_themselves();
    /* last: with an engine or op that mishandles references, heap mode crashes (rather than
     * fails), and nothing else is hidden by it */
    helpers_leave_nothing_behind_with_no_scope_open();
    return check_summary();
}
