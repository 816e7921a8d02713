/*
 * test_loss.c — the losses and regularisers of nabla/loss.h.
 *
 * Golden.  tests/golden/loss.json (tools/gen_golden_loss.py, torch 1.13) holds, for every loss
 * and option combination, float32 inputs, torch's loss and its gradients w.r.t. the input (and
 * the target where torch has one), computed in float64.  Each case runs twice: inside a scope,
 * and with no scope open, where freeing the loss (and the gradients) must give back every byte
 * the call took — the composite losses release their intermediates.  Tolerance
 * |got - want| <= 1e-5 + 1e-5 |want|: float32 rounding of these small sums stays below ~1e-6.
 *
 * Finite differences.  For the tensors a case lists under "fd", nabla's gradient is compared
 * with the fourth-order central difference (step h = 2^-7, as test_gradcheck.c: x + k h is
 * exact, so the stencil is exactly symmetric) of L = sum(loss * upstream), accumulated in
 * double from the float32 forward.  Tolerance 1e-3 absolute + 1e-3 relative, five times the
 * worst error measured: 1.4e-3 on a gradient of 9.8 (bce at p = 0.06, where the truncation
 * error h^4 f^(5) / 30 of -log p is largest) and below 1.6e-4 elsewhere (float32 rounding of
 * L, ~1e-7 |L| per evaluation, times 18 / (12 h)).  A wrong formula moves a gradient by
 * O(1 / numel) >= 0.05.
 *
 * Then the errors (code and message), numerical stability at extreme inputs, and details:
 * non-contiguous targets, NULL options, propagation of NULL inputs.
 */
#include "check.h"
#include "golden_json.h"
#include "backend/backend.h" /* the cross-entropy kernels, for the kept exps */

#include <jansson.h>

#define GOLDEN "tests/golden/loss.json"
#define ATOL 1e-5
#define RTOL 1e-5
#define FD_STEP 0x1p-7
#define FD_TOL 1e-3
#define MAX_ELEMS 256
#define MAX_PARAMS 4

/* ---------------------------------------------------------------- golden cases */

typedef struct {
    json_t *j;
    const char *name, *fn;
    nb_reduction reduction;
    /* leaves, caller-owned: input, target, weight, pos_weight, upstream, params */
    nb_tensor *input, *target, *weight, *pos_weight, *upstream;
    nb_tensor *params[MAX_PARAMS];
    int n_params;
    nb_ce_opts ce;
    bool log_target, from_logits;
    int dim;
    float lambda;
} lcase;

/* The "data" of a reference tensor as doubles; returns its length. */
static long want_of(const json_t *o, double *out) {
    const json_t *data = json_object_get(o, "data");
    long n = (long)json_array_size(data);
    for (long i = 0; i < n && i < MAX_ELEMS; i++) out[i] = json_number_value(json_array_get(data, (size_t)i));
    return n;
}

static nb_reduction reduction_of(const char *s) {
    static const char *const names[] = {"mean", "sum", "none", "batchmean"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) return (nb_reduction)i;
    return NB_REDUCTION_COUNT;
}

static void load_case(lcase *c, json_t *j) {
    memset(c, 0, sizeof *c);
    c->j = j;
    c->name = json_string_value(json_object_get(j, "name"));
    c->fn = json_string_value(json_object_get(j, "fn"));
    c->reduction = reduction_of(json_string_value(json_object_get(j, "reduction")));
    c->input = json_tensor(json_object_get(j, "input"));
    c->target = json_tensor(json_object_get(j, "target"));
    c->weight = json_tensor(json_object_get(j, "weight"));
    c->pos_weight = json_tensor(json_object_get(j, "pos_weight"));
    c->upstream = json_tensor(json_object_get(j, "upstream"));
    const json_t *params = json_object_get(j, "params");
    c->n_params = (int)json_array_size(params);
    for (int i = 0; i < c->n_params && i < MAX_PARAMS; i++)
        c->params[i] = json_tensor(json_array_get(params, (size_t)i));
    const json_t *ignore = json_object_get(j, "ignore_index");
    c->ce = (nb_ce_opts){
        .reduction = c->reduction,
        .label_smoothing = (float)json_number_value(json_object_get(j, "label_smoothing")),
        .weight = c->weight,
        .has_ignore_index = ignore != NULL,
        .ignore_index = (int)json_integer_value(ignore),
    };
    c->log_target = json_is_true(json_object_get(j, "log_target"));
    c->from_logits = json_is_true(json_object_get(j, "from_logits"));
    c->dim = (int)json_integer_value(json_object_get(j, "dim"));
    c->lambda = (float)json_number_value(json_object_get(j, "lambda"));
}

static void free_case(lcase *c) {
    nb_tensor *all[] = {c->input, c->target, c->weight, c->pos_weight, c->upstream};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nb_tensor_free(all[i]);
    for (int i = 0; i < c->n_params; i++) nb_tensor_free(c->params[i]);
}

static nb_tensor *call(const lcase *c) {
    const char *fn = c->fn;
    if (!strcmp(fn, "mse")) return nb_mse_loss(c->input, c->target, c->reduction);
    if (!strcmp(fn, "l1")) return nb_l1_loss(c->input, c->target, c->reduction);
    if (!strcmp(fn, "bce")) return nb_bce_loss(c->input, c->target, c->weight, c->reduction);
    if (!strcmp(fn, "bce_logits"))
        return nb_bce_with_logits_loss(c->input, c->target, c->weight, c->pos_weight, c->reduction);
    if (!strcmp(fn, "ce")) return nb_cross_entropy(c->input, c->target, &c->ce);
    if (!strcmp(fn, "nll")) return nb_nll_loss(c->input, c->target, &c->ce);
    if (!strcmp(fn, "kl")) return nb_kl_div_loss(c->input, c->target, c->reduction, c->log_target);
    if (!strcmp(fn, "l1_penalty")) return nb_l1_penalty(c->n_params, c->params, c->lambda);
    if (!strcmp(fn, "l2_penalty")) return nb_l2_penalty(c->n_params, c->params, c->lambda);
    if (!strcmp(fn, "entropy")) return nb_entropy(c->input, c->dim, c->from_logits);
    fprintf(stderr, "unknown loss %s\n", fn);
    return NULL;
}

/* The differentiable leaves a case has reference gradients for, with their JSON keys. */
typedef struct {
    int n;
    nb_tensor *t[MAX_PARAMS + 2];
    const json_t *grad[MAX_PARAMS + 2];
    char what[MAX_PARAMS + 2][24];
} leaves;

static leaves leaves_of(const lcase *c) {
    leaves l = {0};
    const char *keys[] = {"input", "target"};
    nb_tensor *ts[] = {c->input, c->target};
    for (int k = 0; k < 2; k++) {
        char key[32];
        snprintf(key, sizeof key, "grad_%s", keys[k]);
        const json_t *g = json_object_get(c->j, key);
        if (!g) continue;
        l.t[l.n] = ts[k];
        l.grad[l.n] = g;
        snprintf(l.what[l.n++], sizeof l.what[0], "%s", keys[k]);
    }
    const json_t *gp = json_object_get(c->j, "grad_params");
    for (int i = 0; i < (int)json_array_size(gp) && i < c->n_params; i++) {
        l.t[l.n] = c->params[i];
        l.grad[l.n] = json_array_get(gp, (size_t)i);
        snprintf(l.what[l.n++], sizeof l.what[0], "params[%d]", i);
    }
    return l;
}

static void set_grads(const leaves *l, bool on) {
    for (int i = 0; i < l->n; i++) {
        nb_clear_grad(l->t[i]);
        nb_set_requires_grad(l->t[i], on);
    }
}

/* Loss and gradients against torch, inside a scope or with none open. */
static void run_golden(const lcase *c, bool scoped) {
    char what[160];
    double want[MAX_ELEMS];
    leaves l = leaves_of(c);
    set_grads(&l, true);
    size_t before = nb_alloc_stats_get().bytes_live;
    if (scoped) nb_scope_begin();
    nb_tensor *loss = call(c);
    const json_t *jl = json_object_get(c->j, "loss");
    long n = want_of(jl, want);
    snprintf(what, sizeof what, "%s%s: loss", c->name, scoped ? "" : " (no scope)");
    CHECK_TENSOR(what, loss, want, n, ATOL, RTOL);
    const json_t *shape = json_object_get(jl, "shape");
    bool shape_ok = loss && nb_ndim(loss) == (int)json_array_size(shape);
    for (int d = 0; shape_ok && d < nb_ndim(loss); d++)
        shape_ok = nb_shape(loss)[d] == json_integer_value(json_array_get(shape, (size_t)d));
    if (!shape_ok) CHECK_FAIL_("%s: the loss has shape rank %d, want that of torch", what, loss ? nb_ndim(loss) : -1);
    if (loss && l.n) {
        nb_status s = c->upstream ? nb_backward_grad(loss, c->upstream) : nb_backward(loss);
        CHECK_EQ_INT(s, NB_OK);
        for (int i = 0; i < l.n; i++) {
            snprintf(what, sizeof what, "%s%s: grad %s", c->name, scoped ? "" : " (no scope)", l.what[i]);
            n = want_of(l.grad[i], want);
            CHECK_TENSOR(what, nb_grad(l.t[i]), want, n, ATOL, RTOL);
        }
    }
    if (scoped) nb_scope_end();
    else nb_tensor_free(loss);
    set_grads(&l, false);
    if (!scoped) CHECK_BYTES_BACK(c->name, before);
}

/* sum(loss * upstream) in double, from a float32 forward with recording off. */
static double loss_at(const lcase *c) {
    double total = NAN;
    float out[MAX_ELEMS], up[MAX_ELEMS];
    nb_scope_begin();
    bool was = nb_set_grad_enabled(false);
    nb_tensor *loss = call(c);
    int64_t n = loss ? nb_numel(loss) : 0;
    if (loss && n <= MAX_ELEMS && nb_copy_to(loss, out, n) == NB_OK) {
        if (c->upstream) nb_copy_to(c->upstream, up, n);
        total = 0;
        for (int64_t i = 0; i < n; i++) total += (double)out[i] * (c->upstream ? (double)up[i] : 1.0);
    }
    nb_set_grad_enabled(was);
    nb_scope_end();
    return total;
}

/* nabla's gradient w.r.t. each leaf listed under "fd" against central differences. */
static void run_fd(const lcase *c) {
    const json_t *fd = json_object_get(c->j, "fd");
    leaves l = leaves_of(c);
    for (size_t k = 0; k < json_array_size(fd); k++) {
        const char *name = json_string_value(json_array_get(fd, k));
        for (int i = 0; i < l.n; i++) {
            bool match = !strcmp(name, l.what[i]) || (!strcmp(name, "params") && !strncmp(l.what[i], "params", 6));
            if (!match) continue;
            nb_tensor *x = l.t[i];
            int64_t n = nb_numel(x);
            float analytic[MAX_ELEMS];
            double numeric[MAX_ELEMS];
            set_grads(&l, false);
            nb_set_requires_grad(x, true);
            nb_scope_begin();
            nb_tensor *loss = call(c);
            if (!loss || (c->upstream ? nb_backward_grad(loss, c->upstream) : nb_backward(loss)) != NB_OK ||
                nb_copy_to(nb_grad(x), analytic, n) != NB_OK) {
                CHECK_FAIL_("%s: no gradient for %s [%s]", c->name, l.what[i], nb_error_message());
                nb_scope_end();
                continue;
            }
            nb_scope_end();
            nb_set_requires_grad(x, false);
            float *p = host_vals(x);
            for (int64_t e = 0; e < n; e++) {
                static const int ks[4] = {1, -1, 2, -2};
                double lk[4];
                float saved = p[e];
                for (int s = 0; s < 4; s++) {
                    set_flat(x, e, (float)((double)saved + ks[s] * FD_STEP));
                    lk[s] = loss_at(c);
                }
                set_flat(x, e, saved);
                numeric[e] = (8.0 * (lk[0] - lk[1]) - (lk[2] - lk[3])) / (12.0 * FD_STEP);
            }
            char what[160];
            snprintf(what, sizeof what, "%s: finite differences of %s", c->name, l.what[i]);
            CHECK_ARRAY(what, analytic, numeric, (long)n, FD_TOL, FD_TOL);
        }
    }
    set_grads(&l, false);
}

static void test_golden(void) {
    json_error_t err;
    json_t *root = json_load_file(GOLDEN, 0, &err);
    if (!root) {
        CHECK_FAIL_("cannot read %s: %s (line %d); run from the repository root", GOLDEN, err.text, err.line);
        return;
    }
    const json_t *cases = json_object_get(root, "cases");
    CHECK(json_array_size(cases) >= 70);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        lcase c;
        load_case(&c, json_array_get(cases, i));
        run_golden(&c, true);
        run_golden(&c, false);
        run_fd(&c);
        free_case(&c);
    }
    json_decref(root);
}

/* ---------------------------------------------------------------- errors */

static void test_errors_name_shapes_and_values(void) {
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(64, 10)), *y32 = nb_zeros(NB_SHAPE(32));
    nb_tensor *y = nb_to_dtype(y32, NB_I32), *y64 = nb_to_dtype(nb_zeros(NB_SHAPE(64)), NB_I32);

    CHECK(!nb_cross_entropy(x, y, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "cross_entropy: target [32] does not match input [64,10]");
    CHECK(!nb_cross_entropy(x, nb_rand(NB_SHAPE(64, 5)), NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "cross_entropy: target [64,5] does not match input [64,10]");
    CHECK(!nb_cross_entropy(nb_randn(NB_SHAPE(2, 4, 3)), nb_to_dtype(nb_zeros(NB_SHAPE(2, 4)), NB_I32), NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "target [2,4] does not match input [2,4,3]");
    CHECK(!nb_cross_entropy(x, nb_to_dtype(nb_zeros(NB_SHAPE(64)), NB_I8), NULL));
    CHECK_ERROR(NB_ERR_DTYPE, "target must be int32 class indices or float32 probabilities, got int8");
    CHECK(!nb_cross_entropy(nb_to_dtype(x, NB_I32), y64, NULL));
    CHECK_ERROR(NB_ERR_DTYPE, "cross_entropy: input must be float32, got int32");
    CHECK(!nb_cross_entropy(nb_zeros(0, NULL), y64, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "has no class dimension");

    /* class indices: out of range names the index, its position and C */
    nb_set(y64, NB_INDEX(7), 12);
    CHECK(!nb_cross_entropy(x, y64, NULL));
    CHECK_ERROR(NB_ERR_ARG, "cross_entropy: target 12 at position 7 is out of range for 10 classes");
    nb_set(y64, NB_INDEX(7), -1);
    CHECK(!nb_nll_loss(x, y64, NULL));
    CHECK_ERROR(NB_ERR_ARG, "nll_loss: target -1 at position 7 is out of range for 10 classes");
    nb_set(y64, NB_INDEX(7), -100); /* ignored by default, out of range once another is set */
    CHECK(nb_cross_entropy(x, y64, NULL) != NULL);
    CHECK(!nb_cross_entropy(x, y64, &(nb_ce_opts){.has_ignore_index = true, .ignore_index = 3}));
    CHECK_ERROR(NB_ERR_ARG, "target -100 at position 7 is out of range for 10 classes");
    nb_set(y64, NB_INDEX(7), 0);

    /* options */
    float bad_eps[] = {1.5f, -0.1f, NAN};
    for (int i = 0; i < 3; i++) {
        CHECK(!nb_cross_entropy(x, y64, &(nb_ce_opts){.label_smoothing = bad_eps[i]}));
        CHECK_ERROR(NB_ERR_ARG, "cross_entropy: label_smoothing must be in [0, 1], got");
    }
    CHECK(!nb_nll_loss(x, y64, &(nb_ce_opts){.label_smoothing = 0.1f}));
    CHECK_ERROR(NB_ERR_ARG, "nll_loss: label_smoothing is cross_entropy's");
    CHECK(!nb_cross_entropy(x, y64, &(nb_ce_opts){.weight = nb_ones(NB_SHAPE(5))}));
    CHECK_ERROR(NB_ERR_SHAPE, "cross_entropy: weight [5] does not match the 10 classes of input [64,10]");
    CHECK(!nb_cross_entropy(x, y64, &(nb_ce_opts){.weight = nb_ones(NB_SHAPE(1, 10))}));
    CHECK_ERROR(NB_ERR_SHAPE, "weight [1,10] does not match");
    CHECK(!nb_cross_entropy(x, nb_rand(NB_SHAPE(64, 10)), &(nb_ce_opts){.has_ignore_index = true}));
    CHECK_ERROR(NB_ERR_ARG, "ignore_index 0 is not supported for probability targets");
    CHECK(nb_cross_entropy(x, nb_rand(NB_SHAPE(64, 10)),
                           &(nb_ce_opts){.has_ignore_index = true, .ignore_index = -1}) != NULL);
    CHECK(!nb_cross_entropy(x, y64, &(nb_ce_opts){.reduction = NB_REDUCTION_BATCHMEAN}));
    CHECK_ERROR(NB_ERR_ARG, "cross_entropy: reduction batchmean is only defined for kl_div_loss");
    CHECK(!nb_mse_loss(x, x, (nb_reduction)42));
    CHECK_ERROR(NB_ERR_ARG, "mse_loss: unknown reduction 42");
    CHECK(!nb_nll_loss(x, nb_rand(NB_SHAPE(64, 10)), NULL));
    CHECK_ERROR(NB_ERR_DTYPE, "nll_loss: target must be int32 class indices, got float32");

    /* elementwise losses: one shape, no broadcasting */
    nb_tensor *a = nb_rand(NB_SHAPE(4, 1)), *b = nb_rand(NB_SHAPE(4));
    CHECK(!nb_mse_loss(a, b, NB_REDUCTION_MEAN));
    CHECK_ERROR(NB_ERR_SHAPE, "mse_loss: target [4] does not match input [4,1]");
    CHECK(!nb_l1_loss(a, b, NB_REDUCTION_SUM));
    CHECK_ERROR(NB_ERR_SHAPE, "l1_loss: target [4] does not match input [4,1]");
    CHECK(!nb_bce_loss(a, b, NULL, NB_REDUCTION_MEAN));
    CHECK_ERROR(NB_ERR_SHAPE, "bce_loss: target [4] does not match input [4,1]");
    CHECK(!nb_bce_with_logits_loss(a, b, NULL, NULL, NB_REDUCTION_MEAN));
    CHECK_ERROR(NB_ERR_SHAPE, "bce_with_logits_loss: target [4] does not match input [4,1]");
    CHECK(!nb_kl_div_loss(a, b, NB_REDUCTION_BATCHMEAN, false));
    CHECK_ERROR(NB_ERR_SHAPE, "kl_div_loss: target [4] does not match input [4,1]");
    CHECK(!nb_mse_loss(b, nb_to_dtype(b, NB_I32), NB_REDUCTION_MEAN));
    CHECK_ERROR(NB_ERR_DTYPE, "mse_loss: target must be float32, got int32");
    CHECK(!nb_l1_loss(b, b, NB_REDUCTION_BATCHMEAN));
    CHECK_ERROR(NB_ERR_ARG, "l1_loss: reduction batchmean is only defined for kl_div_loss");

    /* binary cross-entropy: probabilities in [0, 1], weights that broadcast to the input */
    nb_tensor *p = nb_full(NB_SHAPE(3, 4), 0.5f), *t = nb_full(NB_SHAPE(3, 4), 1.0f);
    nb_set(p, NB_INDEX(0, 2), 1.5f);
    CHECK(!nb_bce_loss(p, t, NULL, NB_REDUCTION_MEAN));
    CHECK_ERROR(NB_ERR_ARG, "bce_loss: input 1.5 at element 2 is outside [0, 1]");
    nb_set(p, NB_INDEX(2, 0), NAN);
    nb_set(p, NB_INDEX(0, 2), 0.5f);
    CHECK(!nb_bce_loss(p, t, NULL, NB_REDUCTION_MEAN));
    CHECK_ERROR(NB_ERR_ARG, "input nan at element 8 is outside [0, 1]");
    nb_set(p, NB_INDEX(2, 0), 0.5f);
    CHECK(!nb_bce_loss(p, t, nb_ones(NB_SHAPE(5)), NB_REDUCTION_MEAN));
    CHECK_ERROR(NB_ERR_SHAPE, "bce_loss: weight [5] does not broadcast to input [3,4]");
    CHECK(!nb_bce_loss(p, t, nb_ones(NB_SHAPE(2, 3, 4)), NB_REDUCTION_MEAN));
    CHECK_ERROR(NB_ERR_SHAPE, "weight [2,3,4] does not broadcast to input [3,4]");
    CHECK(!nb_bce_with_logits_loss(p, t, NULL, nb_ones(NB_SHAPE(3)), NB_REDUCTION_MEAN));
    CHECK_ERROR(NB_ERR_SHAPE, "bce_with_logits_loss: pos_weight [3] does not broadcast to input [3,4]");
    CHECK(nb_bce_with_logits_loss(p, t, nb_ones(NB_SHAPE(3, 1)), nb_ones(NB_SHAPE(4)), NB_REDUCTION_MEAN) != NULL);

    /* regularisers */
    nb_tensor *ps[2] = {a, NULL};
    CHECK(!nb_l1_penalty(-1, ps, 0.1f));
    CHECK_ERROR(NB_ERR_ARG, "l1_penalty: needs an array of n >= 0 parameters, got n = -1");
    CHECK(!nb_l2_penalty(2, NULL, 0.1f));
    CHECK_ERROR(NB_ERR_ARG, "got n = 2 and NULL");
    CHECK(!nb_l2_penalty(2, ps, 0.1f));
    CHECK_ERROR(NB_ERR_NULL, "l2_penalty: input tensor is NULL");
    CHECK(!nb_l2_penalty(1, ps, NAN));
    CHECK_ERROR(NB_ERR_ARG, "l2_penalty: lambda must be finite");
    nb_tensor *zero = nb_l1_penalty(0, NULL, 0.1f);
    CHECK(zero && nb_ndim(zero) == 0 && nb_item(zero) == 0.0f);
    CHECK(!nb_entropy(x, 2, true));
    CHECK_ERROR(NB_ERR_DIM, "entropy");
    CHECK(!nb_entropy(nb_zeros(0, NULL), 0, true));
    CHECK_ERROR(NB_ERR_SHAPE, "entropy: input [] has no dim");

    /* NULL propagates with the first error kept; a tensor of an ended scope is named */
    CHECK(!nb_mse_loss(NULL, x, NB_REDUCTION_MEAN));
    CHECK_ERROR(NB_ERR_NULL, "mse_loss: input tensor is NULL");
    CHECK(!nb_cross_entropy(x, NULL, NULL));
    CHECK_ERROR(NB_ERR_NULL, "cross_entropy: input tensor is NULL");
    CHECK(!nb_mse_loss(x, nb_reshape(x, NB_SHAPE(7, -1)), NB_REDUCTION_MEAN));
    CHECK_ERROR(NB_ERR_SHAPE, "reshape");
    nb_scope_begin();
    nb_tensor *dead = nb_zeros(NB_SHAPE(64));
    nb_scope_end();
    CHECK(!nb_bce_with_logits_loss(dead, dead, NULL, NULL, NB_REDUCTION_MEAN));
    CHECK_ERROR(NB_ERR_SCOPE, "bce_with_logits_loss: input tensor belongs to a scope that has ended");
    nb_scope_end();
}

/* ---------------------------------------------------------------- stability and details */

static bool all_finite(nb_tensor *t) {
    float v[MAX_ELEMS];
    int64_t n = t ? nb_numel(t) : 0;
    if (!t || n > MAX_ELEMS || nb_copy_to(t, v, n) != NB_OK) return false;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return false;
    return true;
}

static void test_cross_entropy_is_finite_for_huge_logits(void) {
    /* (not 3e38: x - max(x) would overflow to -inf, a loss beyond float range) */
    float scales[] = {1e4f, 1e30f};
    for (int s = 0; s < 2; s++) {
        nb_scope_begin();
        float k = scales[s];
        nb_tensor *x = nb_from_data((float[]){k, -k, 0, k, k, k}, NB_SHAPE(2, 3));
        nb_tensor *y = nb_from_int32((int32_t[]){1, 2}, NB_SHAPE(2));
        nb_set_requires_grad(x, true);
        nb_tensor *l = nb_cross_entropy(x, y, &(nb_ce_opts){.label_smoothing = 0.1f});
        CHECK(all_finite(l));
        CHECK(nb_backward(l) == NB_OK && all_finite(nb_grad(x)));
        if (s == 0) /* row 0: -log p[1] = 2e4; row 1: log 3; smoothing mixes in the mean of -log p */
            CHECK_NEAR(nb_item(l), 0.5 * (0.9 * 2e4 + 0.1 * (2e4 + 1e4 + 0) / 3 + log(3.0)), 1e-2, 1e-6);
        nb_tensor *pt = nb_from_data((float[]){0, 1, 0, 0.2f, 0.3f, 0.5f}, NB_SHAPE(2, 3));
        CHECK(all_finite(nb_cross_entropy(x, pt, NULL)));
        CHECK(all_finite(nb_entropy(x, 1, true)));
        nb_scope_end();
    }
}

static void test_bce_is_finite_at_zero_and_one(void) {
    nb_scope_begin();
    nb_tensor *p = nb_from_data((float[]){0, 1, 0, 1, 0x1p-149f, 1.0f - 0x1p-24f}, NB_SHAPE(6));
    nb_tensor *y = nb_from_data((float[]){0, 1, 1, 0, 1, 0}, NB_SHAPE(6));
    nb_set_requires_grad(p, true);
    nb_set_requires_grad(y, true);
    nb_tensor *l = nb_bce_loss(p, y, NULL, NB_REDUCTION_NONE);
    /* log clamped at -100: a confident wrong answer costs 100, a right one 0 */
    double want[] = {0, 0, 100, 100, 100, -log(0x1p-24)};
    CHECK_TENSOR("bce at p = 0, 1", l, want, 6, 1e-5, 1e-6);
    CHECK(nb_backward_grad(l, nb_ones(NB_SHAPE(6))) == NB_OK);
    CHECK(all_finite(nb_grad(p)) && all_finite(nb_grad(y)));
    nb_tensor *x = nb_from_data((float[]){1e4f, -1e4f, 1e4f, -1e4f, 3e38f, -3e38f}, NB_SHAPE(6));
    nb_set_requires_grad(x, true);
    nb_tensor *lx = nb_bce_with_logits_loss(x, y, NULL, nb_full(NB_SHAPE(1), 3.0f), NB_REDUCTION_NONE);
    /* (1 - y) x + (1 + 2 y) (max(-x, 0) + log(1 + e^-|x|)): x, 3 |x| or an exact 0 */
    double wantx[] = {1e4, 3e4, 0, 0, 0, 0};
    CHECK_TENSOR("bce with logits at +-1e4 and +-3e38", lx, wantx, 6, 1e-5, 1e-6);
    CHECK(nb_backward_grad(lx, nb_ones(NB_SHAPE(6))) == NB_OK && all_finite(nb_grad(x)));
    nb_scope_end();
}

static void test_kl_and_entropy_take_zero_probabilities(void) {
    nb_scope_begin();
    nb_tensor *q = nb_from_data((float[]){-1, -2, -0.5f}, NB_SHAPE(1, 3));
    nb_tensor *t = nb_from_data((float[]){0, 0.25f, 0.75f}, NB_SHAPE(1, 3));
    nb_set_requires_grad(q, true);
    nb_tensor *kl = nb_kl_div_loss(q, t, NB_REDUCTION_BATCHMEAN, false);
    CHECK_NEAR(nb_item(kl), 0.25 * (log(0.25) + 2) + 0.75 * (log(0.75) + 0.5), 1e-6, 1e-6);
    CHECK(nb_backward(kl) == NB_OK && all_finite(nb_grad(q)));
    nb_tensor *onehot = nb_from_data((float[]){0, 1, 0, 0.5f, 0, 0.5f}, NB_SHAPE(2, 3));
    CHECK_NEAR(nb_item(nb_entropy(onehot, 1, false)), 0.5 * log(2.0), 1e-7, 1e-6);
    /* a masked logit (-inf) has probability 0 and adds nothing, to the value or the gradient */
    nb_tensor *masked = nb_from_data((float[]){0, -INFINITY, 0, 2}, NB_SHAPE(2, 2));
    nb_set_requires_grad(masked, true);
    nb_tensor *h = nb_entropy(masked, 0, true);
    CHECK_NEAR(nb_item(h), 0.5 * log(2.0), 1e-7, 1e-6);
    CHECK(nb_backward(h) == NB_OK && all_finite(nb_grad(masked)));
    nb_scope_end();
}

/* A strided int32 target and transposed logits give what their contiguous copies give. */
static void test_non_contiguous_inputs(void) {
    nb_scope_begin();
    nb_tensor *big = nb_from_int32((int32_t[]){2, 9, 0, 9, 1, 9, 2, 9}, NB_SHAPE(8));
    nb_tensor *y = nb_slice(big, 0, 0, 8, 2), *yc = nb_from_int32((int32_t[]){2, 0, 1, 2}, NB_SHAPE(4));
    nb_tensor *xt = nb_randn(NB_SHAPE(3, 4)), *x = nb_transpose(xt, 0, 1), *xc = nb_contiguous(x);
    CHECK(y && !nb_is_contiguous(y) && !nb_is_contiguous(x));
    nb_ce_opts o = {.label_smoothing = 0.1f, .weight = nb_from_data((float[]){1, 2, 3}, NB_SHAPE(3))};
    CHECK_NEAR(nb_item(nb_cross_entropy(x, y, &o)), nb_item(nb_cross_entropy(xc, yc, &o)), 0, 0);
    CHECK_NEAR(nb_item(nb_nll_loss(x, y, NULL)), nb_item(nb_nll_loss(xc, yc, NULL)), 0, 0);
    nb_scope_end();
}

/* NULL options are torch's defaults; the result of index cross-entropy matches its parts. */
static void test_cross_entropy_defaults_and_parts(void) {
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(64, 10));
    int32_t yv[64];
    for (int i = 0; i < 64; i++) yv[i] = (i * 7) % 10;
    nb_tensor *y = nb_from_int32(yv, NB_SHAPE(64));
    float a = nb_item(nb_cross_entropy(x, y, NULL)), b = nb_item(nb_cross_entropy(x, y, &(nb_ce_opts){0}));
    CHECK_NEAR(a, b, 0, 0);
    nb_tensor *lp = nb_log_softmax(x, 1);
    double want = 0;
    for (int i = 0; i < 64; i++) want -= nb_get(lp, NB_INDEX(i, yv[i]));
    CHECK_NEAR(a, want / 64, 1e-6, 1e-6);
    CHECK_NEAR(nb_item(nb_nll_loss(lp, y, NULL)), a, 1e-6, 1e-6);
    /* the backward of mean cross-entropy is (softmax - onehot) / N */
    nb_set_requires_grad(x, true);
    CHECK(nb_backward(nb_cross_entropy(x, y, NULL)) == NB_OK);
    nb_tensor *sm = nb_softmax(x, 1);
    double worst = 0;
    for (int i = 0; i < 64; i++)
        for (int c = 0; c < 10; c++) {
            double g = (nb_get(sm, NB_INDEX(i, c)) - (c == yv[i])) / 64;
            worst = fmax(worst, fabs(nb_get(nb_grad(x), NB_INDEX(i, c)) - g));
        }
    CHECK_NEAR(worst, 0, 1e-8, 0);
    nb_scope_end();
}

/* The cross-entropy forward keeps its exps for the backward (src/ops/xent.c): the gradient made
 * from them has the bits of the one that computes them again, in the kernels and through the op
 * (a recorded forward, whose backward takes the kept exps). */
static void cross_entropy_gradient_from_kept_exps_has_the_bits_of_recomputed_ones(void) {
    /* 700 exps: whole blocks of 64 for the vectorised exp, one of them with a lane below -88
     * (expf's special cases), and a tail of 60 */
    enum { N = 70, C = 10 };
    float x[N * C], e[N * C], kept[N * C], again[N * C], through_op[N * C];
    int32_t t[N];
    for (int i = 0; i < N; i++) t[i] = (i * 7) % C;
    for (int i = 0; i < N * C; i++) x[i] = (float)((i * 37) % 23) * 1.7f - 19.0f + (float)i * 1e-3f;
    x[3 * C + 4] = -120.0f;
    const nb_backend *be = nb__backend(NB_CPU);
    float with = be->xent(e, x, t, N, C, 1.0f / N), without = be->xent(NULL, x, t, N, C, 1.0f / N);
    CHECK(memcmp(&with, &without, sizeof with) == 0);
    be->xent_backward(kept, x, e, t, N, C, 1.0f / N);
    be->xent_backward(again, x, NULL, t, N, C, 1.0f / N);
    CHECK(memcmp(kept, again, sizeof kept) == 0);
    nb_scope_begin();
    nb_tensor *logits = nb_from_data(x, NB_SHAPE(N, C)), *target = nb_from_int32(t, NB_SHAPE(N));
    nb_set_requires_grad(logits, true);
    nb_tensor *loss = nb_cross_entropy(logits, target, NULL);
    CHECK(nb_item(loss) == without);
    CHECK_EQ_INT(nb_backward(loss), NB_OK);
    CHECK_EQ_INT(nb_copy_to(nb_grad(logits), through_op, N * C), NB_OK);
    CHECK(memcmp(through_op, again, sizeof again) == 0);
    nb_scope_end();
}

int main(void) {
    nb_manual_seed(7);
    cross_entropy_gradient_from_kept_exps_has_the_bits_of_recomputed_ones();
    test_golden();
    test_errors_name_shapes_and_values();
    test_cross_entropy_is_finite_for_huge_logits();
    test_bce_is_finite_at_zero_and_one();
    test_kl_and_entropy_take_zero_probabilities();
    test_non_contiguous_inputs();
    test_cross_entropy_defaults_and_parts();
    return check_summary();
}
