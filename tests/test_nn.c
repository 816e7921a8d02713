/*
 * test_nn.c — modules against PyTorch: outputs, gradients and running statistics from
 * tests/golden/nn.json (tools/gen_golden_nn.py), then what golden vectors cannot show: names
 * and order of parameters, freezing, train/eval, dropout statistics, BatchNorm folding,
 * initialisation statistics, the repr, error messages and finite-difference gradient checks.
 *
 * Golden tolerances are atol = rtol = 1e-5: torch's references are computed in float64 from
 * the same float32 values, so the difference is this library's float32 rounding alone.
 */
#include "check.h"
#include "golden_json.h"

#define GOLDEN_PATH "tests/golden/nn.json"
#define GOLDEN_TOL 1e-5

static nb_module *seq2(nb_module *a, nb_module *b) { return nb_sequential_new(2, (nb_module *[]){a, b}); }
static nb_module *seq3(nb_module *a, nb_module *b, nb_module *c) {
    return nb_sequential_new(3, (nb_module *[]){a, b, c});
}
static nb_module *act(nb_activation a, float p) { return nb_activation_new(a, p); }
static nb_module *linear(int64_t in, int64_t out) { return nb_linear_new(in, out, true); }
static nb_module *bn(int64_t c, nb_batchnorm_opts o) { return nb_batchnorm1d_new(c, o); }

/* ---------------------------------------------------------------- golden cases */

/* The module each case of nn.json was generated from, built the same way here. */
static nb_module *build_case(const char *name) {
    const nb_batchnorm_opts plain = {0}, no_affine = {.no_affine = true};
    static const struct { const char *name; nb_activation act; float param; } acts[] = {
        {"act_identity", NB_ACT_IDENTITY, 0},     {"act_step", NB_ACT_STEP, 0},
        {"act_sigmoid", NB_ACT_SIGMOID, 0},       {"act_tanh", NB_ACT_TANH, 0},
        {"act_relu", NB_ACT_RELU, 0},             {"act_leaky_relu", NB_ACT_LEAKY_RELU, 0},
        {"act_leaky_relu_0.2", NB_ACT_LEAKY_RELU, 0.2f}, {"act_elu", NB_ACT_ELU, 0},
        {"act_elu_0.5", NB_ACT_ELU, 0.5f},        {"act_softplus", NB_ACT_SOFTPLUS, 0},
        {"act_softplus_beta2", NB_ACT_SOFTPLUS, 2}, {"act_silu", NB_ACT_SILU, 0},
        {"act_silu_beta2", NB_ACT_SILU, 2},       {"act_mish", NB_ACT_MISH, 0},
        {"act_gelu", NB_ACT_GELU, 0},             {"act_atan", NB_ACT_ATAN, 0},
        {"act_softsign", NB_ACT_SOFTSIGN, 0},     {"act_tanh_linear_0.5", NB_ACT_TANH_LINEAR, 0.5f},
        {"act_softmax", NB_ACT_SOFTMAX, 0},       {"act_log_softmax", NB_ACT_LOG_SOFTMAX, 0},
        {"act_softmax_3d", NB_ACT_SOFTMAX, 0},    {"act_log_softmax_3d", NB_ACT_LOG_SOFTMAX, 0},
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (!strcmp(name, acts[i].name)) return act(acts[i].act, acts[i].param);

#define IS(s) (!strcmp(name, s))
    if (IS("linear_bias") || IS("linear_batched_3d")) return linear(5, 4);
    if (IS("linear_no_bias")) return nb_linear_new(5, 4, false);
    if (IS("mlp"))
        return nb_sequential_new(5, (nb_module *[]){linear(20, 8), act(NB_ACT_RELU, 0), linear(8, 8),
                                                    act(NB_ACT_RELU, 0), linear(8, 4)});
    if (IS("flatten")) return nb_flatten_new(1, -1);
    if (IS("flatten_linear")) return seq2(nb_flatten_new(1, -1), linear(12, 3));
    if (IS("prelu_shared")) return nb_prelu_new(1, 0.25f);
    if (IS("prelu_channels") || IS("prelu_channels_3d")) return nb_prelu_new(3, 0.25f);
    if (IS("dropout_eval")) return nb_dropout_new(0.5f);
    if (IS("bn_2d_train") || IS("bn_2d_eval") || IS("bn_3d_train") || IS("bn_3d_eval")) return bn(3, plain);
    if (IS("bn_2d_no_affine_train") || IS("bn_3d_no_affine_train") || IS("bn_2d_no_affine_eval"))
        return bn(3, no_affine);
    if (IS("bn_no_running_stats_eval")) return bn(3, (nb_batchnorm_opts){.no_running_stats = true});
    if (IS("bn_eps_momentum_train")) return bn(3, (nb_batchnorm_opts){.eps = 1e-3f, .momentum = 0.3f});
    if (IS("ln_1d_affine")) return nb_layernorm_new(1, (int64_t[]){6}, 0, true);
    if (IS("ln_1d_no_affine")) return nb_layernorm_new(1, (int64_t[]){6}, 0, false);
    if (IS("ln_2d_affine")) return nb_layernorm_new(2, (int64_t[]){3, 4}, 0, true);
    if (IS("ln_2d_no_affine")) return nb_layernorm_new(2, (int64_t[]){3, 4}, 0, false);
    if (IS("residual_identity"))
        return nb_residual_new(seq3(linear(6, 6), act(NB_ACT_RELU, 0), linear(6, 6)), NULL);
    if (IS("residual_projection"))
        return nb_residual_linear_new(seq3(linear(6, 8), act(NB_ACT_RELU, 0), linear(8, 8)), 6, 8);
    if (IS("concat"))
        return nb_concat_new(2, (nb_module *[]){linear(5, 3), seq2(linear(5, 4), act(NB_ACT_TANH, 0))}, 1);
    if (IS("bottleneck")) return nb_bottleneck_new(10, 3, 8);
    if (IS("nested"))
        return seq3(linear(4, 3), act(NB_ACT_RELU, 0), seq2(linear(3, 2), bn(2, plain)));
#undef IS
    return NULL;
}

static json_t *golden;

static void run_golden_case(const json_t *c) {
    const char *cname = json_string_value(json_object_get(c, "name"));
    nb_module *m = build_case(cname);
    if (!m) {
        CHECK_FAIL_("golden case '%s' has no builder [%s]", cname, nb_error_message());
        return;
    }
    check_golden_module(cname, m, c, GOLDEN_TOL);
    nb_module_free(m);
}

static void modules_match_torch_golden_vectors(void) {
    const json_t *cases = json_object_get(golden, "cases");
    CHECK(json_array_size(cases) >= 50);
    for (size_t i = 0; i < json_array_size(cases); i++) run_golden_case(json_array_get(cases, i));
}

/* ---------------------------------------------------------------- structure */

/* Sequential(Linear(4, 3), ReLU(), Sequential(Linear(3, 2), BatchNorm1d(2))), as torch names it. */
static void nested_names_and_counts_match_torch(void) {
    nb_module *m = build_case("nested");
    static const char *params[] = {"0.weight", "0.bias", "2.0.weight", "2.0.bias", "2.1.weight", "2.1.bias"};
    static const char *buffers[] = {"2.1.running_mean", "2.1.running_var", "2.1.num_batches_tracked"};
    CHECK_EQ_INT(nb_module_num_params(m), 6);
    for (int i = 0; i < 6; i++) {
        const char *name = NULL;
        nb_module_param(m, i, &name);
        CHECK(name && !strcmp(name, params[i]));
    }
    CHECK_EQ_INT(nb_module_num_buffers(m), 3);
    for (int i = 0; i < 3; i++) {
        const char *name = NULL;
        nb_module_buffer(m, i, &name);
        CHECK(name && !strcmp(name, buffers[i]));
    }
    CHECK_EQ_INT(nb_module_num_elements(m), 27); /* sum(p.numel() for p in parameters()) */
    nb_tensor *all[8] = {NULL};
    CHECK_EQ_INT(nb_module_parameters(m, all, 8), 6);
    CHECK(all[2] == nb_module_find(m, "2.0.weight"));
    CHECK_EQ_INT(nb_module_parameters(m, all, 2), 6); /* reports the count even when cap is short */
    CHECK(strcmp(nb_module_type(nb_module_child(m, "2.1")), "BatchNorm1d") == 0);
    CHECK(nb_module_child(m, "2.1") == nb_module_child(nb_module_child(m, "2"), "1"));
    CHECK(nb_module_find(m, "2.1.running_var") == nb_module_buffer(m, 1, NULL));
    CHECK(nb_module_child(m, "") == m);
    nb_module_free(m);
}

/* Issue 7, item 12: collecting names in a loop once gave 60 copies of the last one looked up.
 * Each name lives as long as the module, through later lookups and later changes to the tree. */
static void names_collected_in_a_loop_stay_distinct_and_valid(void) {
    nb_module *layers[30];
    for (int i = 0; i < 30; i++) layers[i] = linear(2, 2);
    nb_module *m = nb_sequential_new(30, layers);
    const char *names[60] = {NULL};
    for (int i = 0; i < 60; i++) CHECK(nb_module_param(m, i, &names[i]) != NULL);
    CHECK(nb_module_find(m, "7.bias") == nb_module_param(m, 15, NULL));
    CHECK(nb_sequential_append(m, linear(2, 2)) == NB_OK); /* the tree changes: old names stay */
    const char *added = NULL;
    CHECK(nb_module_param(m, 61, &added) && added && !strcmp(added, "30.bias"));
    int distinct = 1;
    for (int i = 0; i < 60; i++) {
        char want[32];
        snprintf(want, sizeof want, "%d.%s", i / 2, i % 2 ? "bias" : "weight");
        if (!names[i] || strcmp(names[i], want)) CHECK_FAIL_("name %d is '%s', want '%s'", i, names[i], want);
        for (int j = 0; j < i && names[i]; j++) distinct &= names[j] && strcmp(names[i], names[j]) != 0;
    }
    CHECK(distinct);
    nb_module_free(m);
}

/* Item 5 of the same issue: names were cut at a fixed length, so deep models gave duplicates.
 * Forty levels of Sequential(Linear, Residual(...)): the innermost Linear is
 * "1.body." x 40 + "0.weight", 288 characters. */
static void deeply_nested_names_are_full_and_distinct(void) {
    nb_module *m = linear(2, 2);
    for (int d = 0; d < 40; d++) m = seq2(linear(2, 2), nb_residual_new(m, NULL));
    CHECK_EQ_INT(nb_module_num_params(m), 82);
    char want[400] = "";
    for (int d = 0; d < 40; d++) strcat(want, "1.body.");
    strcat(want, "weight");
    const char *deepest = NULL;
    CHECK(nb_module_param(m, 80, &deepest) && deepest && !strcmp(deepest, want));
    CHECK(deepest && strlen(deepest) > 200);
    CHECK(nb_module_find(m, want) == nb_module_param(m, 80, NULL));
    int distinct = 1, n = nb_module_num_params(m);
    const char *names[82];
    for (int i = 0; i < n; i++) nb_module_param(m, i, &names[i]);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) distinct &= strcmp(names[i], names[j]) != 0;
    CHECK(distinct);
    nb_module_free(m);
}

static void num_elements_counts_every_parameter(void) {
    nb_module *mlp = build_case("mlp");
    CHECK_EQ_INT(nb_module_num_elements(mlp), 20 * 8 + 8 + 8 * 8 + 8 + 8 * 4 + 4);
    nb_module *b = nb_bottleneck_new(784, 16, 10); /* k (n + m + 1) = 16 * 795 */
    CHECK_EQ_INT(nb_module_num_elements(b), 16 * 784 + 16 * 10 + 10);
    nb_module *ln = nb_layernorm_new(2, (int64_t[]){3, 4}, 0, true);
    CHECK_EQ_INT(nb_module_num_elements(ln), 24);
    nb_module *relu = act(NB_ACT_RELU, 0);
    CHECK_EQ_INT(nb_module_num_elements(relu), 0);
    CHECK_EQ_INT(nb_module_num_params(relu), 0);
    nb_module_free(mlp);
    nb_module_free(b);
    nb_module_free(ln);
    nb_module_free(relu);
}

static bool near_all(const float *a, const float *b, int n, float tol) {
    for (int i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > tol) return false;
    return true;
}

/* A frozen parameter gets no gradient, so an optimiser that skips requires_grad=False leaves
 * it untouched; the input's gradient still flows through the frozen layer. */
static void frozen_parameters_get_no_grad_and_are_not_updated(void) {
    nb_manual_seed(7);
    nb_module *m = build_case("mlp");
    CHECK_EQ_INT(nb_module_freeze(nb_module_child(m, "0"), true), NB_OK);
    CHECK(!nb_requires_grad(nb_module_find(m, "0.weight")));
    CHECK(!nb_requires_grad(nb_module_find(m, "0.bias")));
    CHECK(nb_requires_grad(nb_module_find(m, "2.weight")));
    float before[6][160];
    int n = nb_module_num_params(m);
    for (int i = 0; i < n; i++) nb_copy_to(nb_module_param(m, i, NULL), before[i], 160);

    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(4, 20));
    nb_set_requires_grad(x, true);
    CHECK_EQ_INT(nb_backward(nb_sum(nb_module_forward(m, x))), NB_OK);
    CHECK(nb_grad(x) != NULL);
    CHECK(nb_grad(nb_module_find(m, "0.weight")) == NULL);
    CHECK(nb_grad(nb_module_find(m, "0.bias")) == NULL);
    for (int i = 0; i < n; i++) { /* SGD, lr 0.1, as an optimiser does it */
        nb_tensor *p = nb_module_param(m, i, NULL), *g = nb_grad(p);
        if (!nb_requires_grad(p) || !g) continue;
        float *pd = host_vals(p), *gd = host_vals(g);
        for (int64_t k = 0; k < nb_numel(p); k++) pd[k] -= 0.1f * gd[k];
        nb_copy_from(p, pd, nb_numel(p));
    }
    nb_scope_end();
    for (int i = 0; i < n; i++) {
        const char *name;
        nb_tensor *p = nb_module_param(m, i, &name);
        float now[160];
        nb_copy_to(p, now, 160);
        bool frozen = name[0] == '0';
        CHECK(near_all(now, before[i], (int)nb_numel(p), 0) == frozen);
    }
    CHECK_EQ_INT(nb_module_freeze(m, false), NB_OK);
    for (int i = 0; i < n; i++) CHECK(nb_requires_grad(nb_module_param(m, i, NULL)));
    nb_module_free(m);
}

static void train_and_eval_switch_the_whole_tree(void) {
    static const char *paths[] = {"0", "1", "2", "2.0", "2.1"};
    nb_module *m = build_case("nested");
    CHECK(nb_module_is_training(m));
    nb_module_train(m, false);
    CHECK(!nb_module_is_training(m));
    for (int i = 0; i < 5; i++) CHECK(!nb_module_is_training(nb_module_child(m, paths[i])));
    /* eval: BatchNorm uses and keeps its running statistics */
    nb_scope_begin();
    nb_module_forward(m, nb_randn(NB_SHAPE(5, 4)));
    nb_scope_end();
    CHECK_TENSOR("running_mean untouched in eval", nb_module_find(m, "2.1.running_mean"),
                 ((double[]){0, 0}), 2, 0, 0);
    CHECK_NEAR(nb_item(nb_module_find(m, "2.1.num_batches_tracked")), 0, 0, 0);
    nb_module_train(m, true);
    for (int i = 0; i < 5; i++) CHECK(nb_module_is_training(nb_module_child(m, paths[i])));
    nb_scope_begin();
    nb_module_forward(m, nb_randn(NB_SHAPE(5, 4)));
    nb_scope_end();
    CHECK_NEAR(nb_item(nb_module_find(m, "2.1.num_batches_tracked")), 1, 0, 0);

    /* as torch: a module keeps its own mode when it is added to a parent */
    nb_module *d = nb_dropout_new(0.5f), *inner = seq2(act(NB_ACT_RELU, 0), nb_dropout_new(0.5f));
    nb_module_train(d, false);
    nb_module_train(inner, false);
    nb_module *outer = seq2(d, inner);
    CHECK(nb_module_is_training(outer));
    CHECK(!nb_module_is_training(nb_module_child(outer, "0")));
    CHECK(!nb_module_is_training(nb_module_child(outer, "1")));
    CHECK(!nb_module_is_training(nb_module_child(outer, "1.1")));
    nb_module_free(outer);
    nb_module_free(m);
}

/* A transposed (non-contiguous) input gives what its contiguous copy gives, running statistics
 * included: modules read inputs through their strides. */
static nb_module *contiguity_model(int i) {
    switch (i) {
    case 0: return linear(3, 2);
    case 1: return bn(3, (nb_batchnorm_opts){0});
    case 2: return nb_layernorm_new(1, (int64_t[]){3}, 0, true);
    case 3: return nb_prelu_new(3, 0.25f);
    case 4: return act(NB_ACT_SOFTMAX, 0);
    default: return act(NB_ACT_GELU, 0);
    }
}

static void modules_accept_non_contiguous_inputs(void) {
    for (int i = 0; i < 6; i++) {
        nb_manual_seed(9);
        nb_module *m = contiguity_model(i);
        nb_manual_seed(9);
        nb_module *twin = contiguity_model(i);
        nb_scope_begin();
        nb_tensor *xt = nb_transpose(nb_randn(NB_SHAPE(3, 6)), 0, 1);
        CHECK(!nb_is_contiguous(xt));
        nb_tensor *y = nb_module_forward(m, xt), *want = nb_module_forward(twin, nb_contiguous(xt));
        float a[18], b[18];
        CHECK(y && want && nb_numel(y) == nb_numel(want));
        nb_copy_to(y, a, 18);
        nb_copy_to(want, b, 18);
        CHECK(near_all(a, b, (int)nb_numel(want), 1e-6f));
        nb_scope_end();
        for (int k = 0; k < nb_module_num_buffers(m); k++) {
            nb_copy_to(nb_module_buffer(m, k, NULL), a, 18);
            nb_copy_to(nb_module_buffer(twin, k, NULL), b, 18);
            CHECK(near_all(a, b, (int)nb_numel(nb_module_buffer(m, k, NULL)), 1e-6f));
        }
        nb_module_free(m);
        nb_module_free(twin);
    }
}

/* ---------------------------------------------------------------- dropout */

static void dropout_zeroes_p_and_scales_the_rest_in_training(void) {
    enum { N = 100000 };
    const float p = 0.3f;
    nb_module *d = nb_dropout_new(p);
    nb_scope_begin();
    nb_tensor *x = nb_ones(NB_SHAPE(N));
    nb_set_requires_grad(x, true);
    nb_manual_seed(123);
    nb_tensor *y = nb_module_forward(d, x);
    const float *v = host_vals(y);
    long zeros = 0, bad = 0;
    for (long i = 0; i < N; i++) {
        if (v[i] == 0.0f) zeros++;
        else if (fabsf(v[i] - 1.0f / (1.0f - p)) > 1e-6f) bad++;
    }
    double sigma = sqrt(p * (1 - p) / N);
    CHECK_NEAR((double)zeros / N, p, 3 * sigma, 0);
    CHECK_EQ_INT(bad, 0);
    /* d sum(y) / dx = mask / (1 - p) = y, since x is 1 */
    nb_backward(nb_sum(y));
    float *g = host_vals(nb_grad(x));
    CHECK(near_all(g, v, N, 1e-6f));

    nb_manual_seed(123);
    nb_tensor *again = nb_module_forward(d, x);
    CHECK(near_all(host_vals(again), v, N, 0));
    nb_manual_seed(124);
    nb_tensor *other = nb_module_forward(d, x);
    CHECK(!near_all(host_vals(other), v, N, 0));

    nb_module_train(d, false);
    CHECK(near_all(host_vals(nb_module_forward(d, x)), host_vals(x), N, 0));
    nb_scope_end();
    nb_module_free(d);
}

static void dropout_p0_is_identity_and_p1_gives_zeros(void) {
    nb_module *d0 = nb_dropout_new(0.0f), *d1 = nb_dropout_new(1.0f);
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(64));
    nb_set_requires_grad(x, true);
    CHECK(near_all(host_vals(nb_module_forward(d0, x)), host_vals(x), 64, 0));
    nb_tensor *z = nb_module_forward(d1, x);
    float zero[64] = {0};
    CHECK(z && near_all(host_vals(z), zero, 64, 0));
    nb_backward(nb_sum(z));
    CHECK(nb_grad(x) && near_all(host_vals(nb_grad(x)), zero, 64, 0));
    nb_scope_end();
    nb_module_free(d0);
    nb_module_free(d1);
}

/* ---------------------------------------------------------------- folding, init */

static void folded_linear_equals_batchnorm_of_linear_in_eval(void) {
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        nb_manual_seed(11);
        nb_module *lin = nb_linear_new(5, 4, with_bias), *norm = bn(4, (nb_batchnorm_opts){0});
        nb_init_normal(nb_module_find(norm, "weight"), 1.0f, 0.5f);
        nb_init_normal(nb_module_find(norm, "bias"), 0.0f, 1.0f);
        nb_init_normal(nb_module_find(norm, "running_mean"), 0.0f, 1.0f);
        nb_init_uniform(nb_module_find(norm, "running_var"), 0.5f, 2.0f);
        nb_module_train(lin, false);
        nb_module_train(norm, false);
        nb_generator before = nb_rng_get_state();
        nb_module *folded = nb_linear_fold_batchnorm(lin, norm);
        nb_generator after = nb_rng_get_state();
        CHECK(folded && before.seed == after.seed && before.offset == after.offset);
        CHECK(!nb_module_is_training(folded));
        nb_scope_begin();
        nb_tensor *x = nb_randn(NB_SHAPE(6, 5));
        nb_tensor *want = nb_module_forward(norm, nb_module_forward(lin, x));
        double w[24];
        float wf[24];
        nb_copy_to(want, wf, 24);
        for (int i = 0; i < 24; i++) w[i] = wf[i];
        CHECK_TENSOR("folded", nb_module_forward(folded, x), w, 24, 1e-5, 1e-5);
        nb_scope_end();
        nb_module_free(folded);
        nb_module_free(lin);
        nb_module_free(norm);
    }
}

static void linear_default_init_is_uniform_within_inverse_sqrt_fan_in(void) {
    nb_manual_seed(3);
    nb_module *m = nb_linear_new(1000, 500, true);
    nb_tensor *w = nb_module_find(m, "weight"), *b = nb_module_find(m, "bias");
    const double bound = 1.0 / sqrt(1000.0);
    const float *v = host_vals(w);
    long n = (long)nb_numel(w), outside = 0;
    double sum = 0, sq = 0;
    for (long i = 0; i < n; i++) {
        outside += fabs(v[i]) > bound;
        sum += v[i];
        sq += (double)v[i] * v[i];
    }
    double mean = sum / n, var = sq / n - mean * mean;
    CHECK_EQ_INT(outside, 0);
    CHECK_NEAR(mean, 0, 4 * bound / sqrt(3.0 * n), 0);
    CHECK_NEAR(var, bound * bound / 3, 0, 0.01);
    const float *bv = host_vals(b);
    for (int i = 0; i < 500; i++) outside += fabs(bv[i]) > bound;
    CHECK_EQ_INT(outside, 0);
    nb_manual_seed(3);
    nb_module *same = nb_linear_new(1000, 500, true);
    CHECK(near_all(host_vals(nb_module_find(same, "weight")), v, (int)n, 0));
    nb_module_free(same);
    nb_module_free(m);
}

static void init_functions_match_torch_formulas(void) {
    nb_manual_seed(5);
    nb_tensor *t = nb_zeros(NB_SHAPE(512, 512)), *r = nb_zeros(NB_SHAPE(256, 512));
    nb_tensor *conv = nb_zeros(NB_SHAPE(64, 32, 3, 3)); /* fan_in 288, fan_out 576 */
    double max_abs, std;

    CHECK_EQ_INT(nb_init_xavier_uniform(t, 1.0f), NB_OK);
    std = tensor_std(t, &max_abs);
    CHECK_NEAR(std, sqrt(2.0 / 1024), 0, 0.02);
    CHECK(max_abs <= sqrt(6.0 / 1024) * (1 + 1e-6));

    CHECK_EQ_INT(nb_init_xavier_normal(t, 5.0f / 3.0f), NB_OK);
    CHECK_NEAR(tensor_std(t, &max_abs), 5.0 / 3.0 * sqrt(2.0 / 1024), 0, 0.02);

    CHECK_EQ_INT(nb_init_kaiming_uniform(t, 0, NB_FAN_IN, NB_GAIN_RELU), NB_OK);
    std = tensor_std(t, &max_abs);
    CHECK_NEAR(std, sqrt(2.0 / 512), 0, 0.02);
    CHECK(max_abs <= sqrt(3.0) * sqrt(2.0 / 512) * (1 + 1e-6));

    CHECK_EQ_INT(nb_init_kaiming_normal(r, 0.2f, NB_FAN_OUT, NB_GAIN_LEAKY_RELU), NB_OK);
    CHECK_NEAR(tensor_std(r, &max_abs), sqrt(2.0 / 1.04) / sqrt(256.0), 0, 0.02);
    CHECK_EQ_INT(nb_init_kaiming_normal(r, 0, NB_FAN_IN, NB_GAIN_RELU), NB_OK);
    CHECK_NEAR(tensor_std(r, &max_abs), sqrt(2.0 / 512), 0, 0.02);

    CHECK_EQ_INT(nb_init_kaiming_normal(conv, 0, NB_FAN_IN, NB_GAIN_RELU), NB_OK);
    CHECK_NEAR(tensor_std(conv, &max_abs), sqrt(2.0 / 288), 0, 0.03);
    CHECK_EQ_INT(nb_init_xavier_uniform(conv, 1.0f), NB_OK);
    CHECK_NEAR(tensor_std(conv, &max_abs), sqrt(2.0 / (288 + 576)), 0, 0.03);

    CHECK_EQ_INT(nb_init_normal(t, 2.0f, 0.5f), NB_OK);
    CHECK_NEAR(tensor_std(t, &max_abs), 0.5, 0, 0.02);
    CHECK_EQ_INT(nb_init_uniform(t, -3.0f, -1.0f), NB_OK);
    CHECK_NEAR(tensor_std(t, &max_abs), 2.0 / sqrt(12.0), 0, 0.02);
    CHECK(max_abs <= 3.0);
    CHECK_EQ_INT(nb_init_constant(t, 0.5f), NB_OK);
    CHECK_NEAR(nb_get(t, NB_INDEX(7, 9)), 0.5, 0, 0);

    /* torch.nn.init.calculate_gain */
    CHECK_NEAR(nb_init_gain(NB_GAIN_LINEAR, 0), 1, 1e-7, 0);
    CHECK_NEAR(nb_init_gain(NB_GAIN_SIGMOID, 0), 1, 1e-7, 0);
    CHECK_NEAR(nb_init_gain(NB_GAIN_TANH, 0), 1.6666666666666667, 1e-6, 0);
    CHECK_NEAR(nb_init_gain(NB_GAIN_RELU, 0), 1.4142135623730951, 1e-6, 0);
    CHECK_NEAR(nb_init_gain(NB_GAIN_LEAKY_RELU, 0.2f), 1.3867504905630728, 1e-6, 0);
    CHECK_NEAR(nb_init_gain(NB_GAIN_LEAKY_RELU, 0), 1.4142135623730951, 1e-6, 0);
    CHECK_NEAR(nb_init_gain(NB_GAIN_SELU, 0), 0.75, 1e-7, 0);

    nb_tensor *v = nb_zeros(NB_SHAPE(8));
    CHECK_EQ_INT(nb_init_xavier_uniform(v, 1.0f), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "at least 2 dims");
    CHECK_EQ_INT(nb_init_kaiming_normal(v, 0, NB_FAN_IN, NB_GAIN_RELU), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "init_kaiming_normal");
    nb_tensor_free(v);
    nb_tensor_free(conv);
    nb_tensor_free(r);
    nb_tensor_free(t);
}

/* Issue 7, item 13: one call applies a named scheme to every Linear and convolution of a tree;
 * the weights' empirical std is each scheme's formula, biases are zeroed (or kept). */
static void module_init_schemes_follow_torch_formulas(void) {
    nb_manual_seed(8);
    nb_module *m = seq3(linear(400, 300), nb_conv2d_new(16, 32, 3, 3, (nb_conv2d_opts){0}, true),
                        nb_batchnorm1d_new(4, (nb_batchnorm_opts){0}));
    nb_tensor *w = nb_module_find(m, "0.weight"), *cw = nb_module_find(m, "1.weight");
    double max_abs;
    const double fan_in = 400, fan_out = 300, cin = 16 * 9, cout = 32 * 9;
    static const struct { nb_init_scheme scheme; bool uniform; } cases[] = {
        {NB_INIT_XAVIER_UNIFORM, true}, {NB_INIT_XAVIER_NORMAL, false},
        {NB_INIT_KAIMING_UNIFORM, true}, {NB_INIT_KAIMING_NORMAL, false},
    };
    for (int k = 0; k < 4; k++) {
        bool xavier = k < 2;
        CHECK_EQ_INT(nb_module_init(m, (nb_init_opts){.scheme = cases[k].scheme}), NB_OK);
        double want = xavier ? sqrt(2.0 / (fan_in + fan_out)) : sqrt(2.0 / fan_in);
        double want_conv = xavier ? sqrt(2.0 / (cin + cout)) : sqrt(2.0 / cin);
        CHECK_NEAR(tensor_std(w, &max_abs), want, 0, 0.02);
        if (cases[k].uniform) CHECK(max_abs <= sqrt(3.0) * want * (1 + 1e-6));
        CHECK_NEAR(tensor_std(cw, &max_abs), want_conv, 0, 0.03);
        CHECK_NEAR(tensor_std(nb_module_find(m, "0.bias"), &max_abs), 0, 0, 0);
        CHECK(max_abs == 0); /* biases zeroed */
        CHECK(max_abs == 0 && tensor_std(nb_module_find(m, "1.bias"), &max_abs) == 0 && max_abs == 0);
    }
    CHECK_NEAR(nb_get(nb_module_find(m, "2.weight"), NB_INDEX(1)), 1, 0, 0); /* BatchNorm untouched */
    /* fan_out, an explicit gain, and biases kept */
    nb_init_uniform(nb_module_find(m, "0.bias"), 0.5f, 1.0f);
    CHECK_EQ_INT(nb_module_init(m, (nb_init_opts){.scheme = NB_INIT_KAIMING_NORMAL, .mode = NB_FAN_OUT,
                                                  .gain = 5.0f / 3.0f, .keep_bias = true}), NB_OK);
    CHECK_NEAR(tensor_std(w, &max_abs), 5.0 / 3.0 / sqrt(fan_out), 0, 0.02);
    CHECK(nb_get(nb_module_find(m, "0.bias"), NB_INDEX(3)) >= 0.5f);
    /* default changes nothing */
    float before = nb_get(w, NB_INDEX(2, 7));
    CHECK_EQ_INT(nb_module_init(m, (nb_init_opts){.scheme = NB_INIT_DEFAULT}), NB_OK);
    CHECK(nb_get(w, NB_INDEX(2, 7)) == before);
    CHECK_EQ_INT(nb_module_init(m, (nb_init_opts){.scheme = NB_INIT_COUNT}), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "module_init: unknown scheme 5");
    CHECK_EQ_INT(nb_module_init(m, (nb_init_opts){.scheme = NB_INIT_XAVIER_NORMAL, .gain = NAN}), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "module_init: gain must be finite and >= 0, got nan");
    CHECK(nb_get(w, NB_INDEX(2, 7)) == before);
    CHECK_EQ_INT(nb_module_init(NULL, (nb_init_opts){0}), NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "module_init");
    nb_init_scheme sc = NB_INIT_DEFAULT;
    for (int i = 0; i < NB_INIT_COUNT; i++) CHECK(nb_init_parse(nb_init_name((nb_init_scheme)i), &sc) && (int)sc == i);
    CHECK(!nb_init_parse("he", &sc) && sc == NB_INIT_COUNT - 1);
    CHECK(!strcmp(nb_init_name(NB_INIT_COUNT), "unknown"));
    nb_module_free(m);
}

/* The course's experiment: a 30-layer ReLU MLP (width 256, biases zeroed) keeps the scale of
 * its activations with kaiming (variance 2 / fan_in makes each ReLU layer preserve the second
 * moment) but loses it with xavier (1 / fan_in here: each layer halves it, 2^-15 in variance
 * after 30).  Seeded, so the figures are the same on every run. */
static void kaiming_keeps_activation_scale_in_a_deep_relu_net_and_xavier_does_not(void) {
    double final_std[2];
    for (int k = 0; k < 2; k++) {
        nb_manual_seed(30);
        nb_module *net = nb_sequential_new(0, NULL);
        for (int l = 0; l < 30; l++) {
            nb_sequential_append(net, linear(256, 256));
            nb_sequential_append(net, act(NB_ACT_RELU, 0));
        }
        CHECK_EQ_INT(nb_module_init(net, (nb_init_opts){.scheme = k ? NB_INIT_XAVIER_NORMAL
                                                                     : NB_INIT_KAIMING_NORMAL}), NB_OK);
        nb_scope_begin();
        NB_NO_GRAD {
            nb_tensor *x = nb_randn(NB_SHAPE(128, 256)), *y = nb_module_forward(net, x);
            /* root mean square: after a ReLU the mean is not 0, and the second moment is what
             * the schemes preserve */
            final_std[k] = y ? sqrt(nb_item(nb_mean(nb_mul(y, y)))) : NAN;
        }
        nb_scope_end();
        nb_module_free(net);
    }
    /* kaiming: E[y^2] = E[x^2] / 2 after the last ReLU (x has E[x^2] = 1): rms ~ 0.71 */
    CHECK(final_std[0] > 0.3 && final_std[0] < 2.0);
    CHECK(final_std[1] < 1e-3); /* xavier: ~ 0.71 * 2^-15 = 2e-5 */
    if (!(final_std[0] > 0.3 && final_std[1] < 1e-3))
        fprintf(stderr, "rms after 30 layers: kaiming %g, xavier %g\n", final_std[0], final_std[1]);
}

/* ---------------------------------------------------------------- repr */

/* Generated with torch by tools/gen_golden_nn.py (Concat is the script's own class). */
static const char *const torch_repr =
    "Sequential(\n"
    "  (0): Flatten(start_dim=1, end_dim=-1)\n"
    "  (1): Linear(in_features=20, out_features=8, bias=True)\n"
    "  (2): ReLU()\n"
    "  (3): Dropout(p=0.2, inplace=False)\n"
    "  (4): Linear(in_features=8, out_features=8, bias=False)\n"
    "  (5): BatchNorm1d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n"
    "  (6): LeakyReLU(negative_slope=0.2)\n"
    "  (7): ELU(alpha=1.0)\n"
    "  (8): GELU(approximate='none')\n"
    "  (9): Softplus(beta=1, threshold=20)\n"
    "  (10): PReLU(num_parameters=1)\n"
    "  (11): Sequential(\n"
    "    (0): Linear(in_features=8, out_features=4, bias=True)\n"
    "    (1): LayerNorm((4,), eps=1e-05, elementwise_affine=True)\n"
    "    (2): Tanh()\n"
    "  )\n"
    "  (12): LayerNorm((2, 2), eps=0.001, elementwise_affine=False)\n"
    "  (13): Concat(\n"
    "    dim=1\n"
    "    (0): Identity()\n"
    "    (1): Sigmoid()\n"
    "  )\n"
    "  (14): LogSoftmax(dim=-1)\n"
    ")\n";

static void fprint_matches_torch_repr(void) {
    nb_module *layers[] = {
        nb_flatten_new(1, -1),
        linear(20, 8),
        act(NB_ACT_RELU, 0),
        nb_dropout_new(0.2f),
        nb_linear_new(8, 8, false),
        bn(8, (nb_batchnorm_opts){0}),
        act(NB_ACT_LEAKY_RELU, 0.2f),
        act(NB_ACT_ELU, 0),
        act(NB_ACT_GELU, 0),
        act(NB_ACT_SOFTPLUS, 0),
        nb_prelu_new(1, 0.25f),
        seq3(linear(8, 4), nb_layernorm_new(1, (int64_t[]){4}, 0, true), act(NB_ACT_TANH, 0)),
        nb_layernorm_new(2, (int64_t[]){2, 2}, 1e-3f, false),
        nb_concat_new(2, (nb_module *[]){act(NB_ACT_IDENTITY, 0), act(NB_ACT_SIGMOID, 0)}, 1),
        act(NB_ACT_LOG_SOFTMAX, 0),
    };
    nb_module *m = nb_sequential_new((int)(sizeof layers / sizeof layers[0]), layers);
    FILE *f = tmpfile();
    CHECK_EQ_INT(nb_module_fprint(f, m), NB_OK);
    char text[4096] = "";
    rewind(f);
    size_t len = fread(text, 1, sizeof text - 1, f);
    text[len] = '\0';
    fclose(f);
    if (strcmp(text, torch_repr)) CHECK_FAIL_("repr differs from torch's:\n%s\nwant:\n%s", text, torch_repr);
    else check_passed_++;
    nb_module_free(m);
}

/* nb_module_describe gives the hyper-parameters the repr prints, typed and by name, and the
 * ones torch's repr leaves out (SiLU's beta) marked so. */
static void describe_gives_hyper_parameters_by_name(void) {
    nb_attrs d;
    nb_module *lin = nb_linear_new(5, 3, false), *silu = act(NB_ACT_SILU, 2), *ln = nb_layernorm_new(2, (int64_t[]){3, 4}, 0, true);
    CHECK_EQ_INT(nb_module_describe(lin, &d), NB_OK);
    CHECK_EQ_INT(d.n, 3);
    CHECK(!strcmp(d.attr[0].name, "in_features") && d.attr[0].kind == NB_ATTR_INT && d.attr[0].ints[0] == 5);
    CHECK(!strcmp(d.attr[1].name, "out_features") && d.attr[1].ints[0] == 3);
    CHECK(!strcmp(d.attr[2].name, "bias") && d.attr[2].kind == NB_ATTR_BOOL && d.attr[2].ints[0] == 0);
    CHECK_EQ_INT(nb_module_describe(silu, &d), NB_OK);
    CHECK(d.n == 1 && !strcmp(d.attr[0].name, "beta") && d.attr[0].f == 2.0f && (d.attr[0].flags & NB_ATTR_NO_REPR));
    CHECK_EQ_INT(nb_module_describe(ln, &d), NB_OK);
    CHECK(d.n == 3 && d.attr[0].kind == NB_ATTR_INTS && d.attr[0].n == 2 && d.attr[0].ints[1] == 4);
    CHECK(d.attr[1].kind == NB_ATTR_FLOAT && d.attr[1].f == 1e-5f);
    CHECK_EQ_INT(nb_module_describe(NULL, &d), NB_ERR_NULL);
    nb_error_clear();
    nb_module_free(lin), nb_module_free(silu), nb_module_free(ln);
}

/* ---------------------------------------------------------------- errors */

static void misuse_fails_with_a_message_naming_the_problem(void) {
    nb_module *lin = linear(5, 4), *norm = bn(3, (nb_batchnorm_opts){0});
    nb_module *ln = nb_layernorm_new(2, (int64_t[]){3, 4}, 0, true), *pr = nb_prelu_new(3, 0.25f);
    nb_scope_begin();
    CHECK(nb_module_forward(lin, nb_randn(NB_SHAPE(3, 6))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "linear: input [3,6] and weight [4,5]: inner sizes differ");
    CHECK(nb_module_forward(norm, nb_randn(NB_SHAPE(4, 5))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "BatchNorm1d: expected [N, 3] or [N, 3, L], got [4,5]");
    CHECK(nb_module_forward(norm, nb_randn(NB_SHAPE(2, 3, 4, 5))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "got [2,3,4,5]");
    CHECK(nb_module_forward(norm, nb_randn(NB_SHAPE(1, 3))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "more than 1 value per channel");
    CHECK(nb_module_forward(ln, nb_randn(NB_SHAPE(2, 4, 3))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "LayerNorm: input [2,4,3] does not end in the normalised shape [3,4]");
    CHECK(nb_module_forward(ln, nb_randn(NB_SHAPE(4))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "LayerNorm: input [4]");
    CHECK(nb_module_forward(pr, nb_randn(NB_SHAPE(4, 5))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "prelu: 3 weights do not match the channels of [4,5]");
    CHECK(nb_module_forward(NULL, nb_randn(NB_SHAPE(4, 5))) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "module is NULL");
    CHECK(nb_module_forward(lin, NULL) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "Linear");
    CHECK(nb_softplus(nb_randn(NB_SHAPE(2)), -1.0f, 20.0f) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "beta must be positive");
    nb_scope_end();

    CHECK(nb_module_find(norm, "running_std") == NULL);
    CHECK_ERROR(NB_ERR_ARG, "BatchNorm1d has no parameter or buffer named 'running_std'");
    CHECK(nb_module_child(lin, "0") == NULL);
    CHECK_ERROR(NB_ERR_ARG, "no child '0'");
    CHECK(nb_module_param(lin, 2, NULL) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "parameter index 2 is out of range");
    CHECK(nb_module_buffer(lin, 0, NULL) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "buffer index 0 is out of range");

    CHECK(nb_dropout_new(1.5f) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "between 0 and 1, but got 1.5");
    CHECK(nb_dropout_new(-0.1f) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "between 0 and 1");
    CHECK(nb_dropout_new(NAN) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "between 0 and 1");
    CHECK(nb_linear_new(0, 3, true) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "sizes must be positive");
    CHECK(nb_batchnorm1d_new(0, (nb_batchnorm_opts){0}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "num_features must be positive");
    CHECK(nb_layernorm_new(1, (int64_t[]){0}, 0, true) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "size <= 0");
    CHECK(nb_prelu_new(0, 0.25f) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "num_parameters must be positive");
    CHECK(nb_activation_new(NB_ACT_COUNT, 0) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "unknown kind");
    /* constructors take ownership even when they fail (ASan would see a leak otherwise) */
    CHECK(nb_sequential_new(3, (nb_module *[]){linear(2, 2), NULL, act(NB_ACT_RELU, 0)}) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "Sequential: a module is NULL");
    CHECK(nb_concat_new(2, (nb_module *[]){NULL, linear(2, 2)}, 1) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "Concat: a branch is NULL");
    CHECK(nb_residual_new(NULL, linear(2, 2)) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "Residual: body is NULL");
    CHECK_EQ_INT(nb_sequential_append(lin, act(NB_ACT_RELU, 0)), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "not a Sequential");
    CHECK(nb_linear_fold_batchnorm(lin, norm) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "BatchNorm1d(3) cannot follow a Linear with 4 outputs");
    CHECK(nb_linear_fold_batchnorm(norm, lin) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "needs a Linear and a BatchNorm1d");
    nb_module_free(lin);
    nb_module_free(norm);
    nb_module_free(ln);
    nb_module_free(pr);
    nb_module_free(NULL);
}

/* Issue 7, item 10: a BatchNorm eps of -1 was taken as the default, NaN options were kept.
 * Every real option of a module is checked, the message naming the option and the value. */
static void non_finite_and_out_of_range_options_are_refused(void) {
    CHECK(nb_batchnorm1d_new(4, (nb_batchnorm_opts){.eps = -1}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "BatchNorm1d: eps must be finite and > 0 (0 means 1e-05), got -1");
    CHECK(nb_batchnorm2d_new(4, (nb_batchnorm_opts){.eps = NAN}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "BatchNorm2d: eps must be finite and > 0 (0 means 1e-05), got nan");
    CHECK(nb_batchnorm1d_new(4, (nb_batchnorm_opts){.momentum = 1.5f}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "BatchNorm1d: momentum must be in [0, 1] (0 means 0.1, NB_ZERO for 0), got 1.5");
    CHECK(nb_batchnorm1d_new(4, (nb_batchnorm_opts){.momentum = NAN}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "momentum must be in [0, 1]");
    CHECK(nb_layernorm_new(1, (int64_t[]){4}, INFINITY, true) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "LayerNorm: eps must be finite and > 0 (0 means 1e-05), got inf");
    CHECK(nb_activation_new(NB_ACT_LEAKY_RELU, NAN) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "LeakyReLU: negative_slope must be finite, got nan");
    CHECK(nb_activation_new(NB_ACT_ELU, INFINITY) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "ELU: alpha must be finite, got inf");
    CHECK(nb_activation_new(NB_ACT_SOFTPLUS, -2) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Softplus: beta must be positive (0 means 1), got -2");
    CHECK(nb_activation_new(NB_ACT_RELU, 0.5f) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "ReLU: takes no parameter, got 0.5");
    CHECK(nb_prelu_new(2, NAN) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "PReLU: init must be finite, got nan");
    nb_tensor *t = nb_zeros(NB_SHAPE(4, 4));
    CHECK_EQ_INT(nb_init_normal(t, 0, -1), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "init_normal: expects a finite mean and std >= 0.0, but found mean=0 std=-1");
    CHECK_EQ_INT(nb_init_uniform(t, 1, NAN), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "init_uniform: expects a finite [from, to] range, but found from=1 to=nan");
    CHECK_EQ_INT(nb_init_xavier_normal(t, NAN), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "init_xavier_normal: gain must be finite and >= 0, got nan");
    CHECK_EQ_INT(nb_init_kaiming_uniform(t, INFINITY, NB_FAN_IN, NB_GAIN_LEAKY_RELU), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "init_kaiming_uniform: a (the negative slope) must be finite, got inf");
    /* explicit zeros and torch's extremes are still accepted */
    nb_module *frozen = nb_batchnorm1d_new(4, (nb_batchnorm_opts){.momentum = NB_ZERO});
    nb_module *cumulative = nb_batchnorm1d_new(4, (nb_batchnorm_opts){.momentum = 1});
    CHECK(frozen && cumulative);
    nb_scope_begin();
    nb_module_forward(frozen, nb_randn(NB_SHAPE(8, 4)));
    CHECK_NEAR(nb_get(nb_module_find(frozen, "running_var"), NB_INDEX(0)), 1, 0, 0); /* momentum 0 */
    nb_scope_end();
    nb_module_free(frozen);
    nb_module_free(cumulative);
    nb_tensor_free(t);
}

/* ---------------------------------------------------------------- memory */

/* With no scope open the caller owns every result: a forward and backward, in training and in
 * eval, must leave nothing behind, also through modules that pass their input through
 * unchanged (eval Dropout, an empty Sequential). */
static void heap_mode_forward_backward_leaves_nothing_behind(void) {
    for (int training = 0; training < 2; training++) {
        nb_alloc_stats before = nb_alloc_stats_get();
        nb_module *models[] = {
            seq2(nb_dropout_new(0.5f), linear(4, 3)),
            nb_residual_new(linear(4, 4), nb_dropout_new(0.5f)),
            nb_residual_linear_new(seq2(linear(4, 6), act(NB_ACT_TANH_LINEAR, 0.5f)), 4, 6),
            nb_concat_new(2, (nb_module *[]){nb_dropout_new(0.5f), act(NB_ACT_IDENTITY, 0)}, 1),
            nb_sequential_new(0, NULL),
            seq3(nb_prelu_new(4, 0.25f), nb_layernorm_new(1, (int64_t[]){4}, 0, true),
                 act(NB_ACT_SOFTMAX, 0)),
            build_case("nested"),
        };
        for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
            nb_module_train(models[i], training);
            nb_tensor *x = nb_randn(NB_SHAPE(5, 4));
            nb_set_requires_grad(x, true);
            nb_tensor *y = nb_module_forward(models[i], x);
            nb_tensor *s = nb_sum(y);
            CHECK_EQ_INT(nb_backward(s), NB_OK);
            CHECK(nb_grad(x) != NULL);
            nb_tensor_free(s);
            nb_tensor_free(y);
            nb_tensor_free(x);
            nb_module_free(models[i]);
        }
        nb_alloc_stats after = nb_alloc_stats_get();
        CHECK_EQ_INT(after.bytes_live, before.bytes_live);
    }
}

/* ---------------------------------------------------------------- finite differences */

/* sum(m(x) * r) in double; the forward runs without recording. */
static double fd_loss(nb_module *m, const float *x, int nd, const int64_t *shape, const float *r) {
    nb_scope_begin();
    double loss = 0;
    NB_NO_GRAD {
        nb_tensor *y = nb_module_forward(m, nb_from_data(x, nd, shape));
        const float *v = host_vals(nb_contiguous(y));
        for (int64_t i = 0; i < nb_numel(y); i++) loss += (double)v[i] * r[i];
    }
    nb_scope_end();
    return loss;
}

/* Central differences of sum(m(x) * r) against autograd, for the input and every parameter.
 * The forward is float32, so h is large (1e-2) and the tolerance loose (2e-3 + 1e-2 rel):
 * float rounding of the loss (~1e-6) divided by 2h, and the h^2 truncation term. */
static void check_fd(const char *what, nb_module *m, const float *x, int nd, const int64_t *shape) {
    const double h = 1e-2;
    enum { MAXN = 64 };
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= shape[d];
    float r[MAXN], xv[MAXN];
    nb_scope_begin();
    nb_tensor *rt = nb_randn(1, (int64_t[]){n});
    nb_copy_to(rt, r, MAXN);
    nb_tensor *xt = nb_from_data(x, nd, shape);
    nb_set_requires_grad(xt, true);
    nb_tensor *y = nb_module_forward(m, xt);
    nb_backward(nb_sum(nb_mul(nb_reshape(y, 1, (int64_t[]){n}), rt)));
    float gx[MAXN];
    nb_copy_to(nb_grad(xt), gx, MAXN);
    char label[128];
    memcpy(xv, x, sizeof(float) * (size_t)n);
    double num[MAXN];
    for (int64_t i = 0; i < n; i++) {
        float keep = xv[i];
        xv[i] = keep + (float)h;
        double up = fd_loss(m, xv, nd, shape, r);
        xv[i] = keep - (float)h;
        double down = fd_loss(m, xv, nd, shape, r);
        xv[i] = keep;
        num[i] = (up - down) / (2 * h);
    }
    snprintf(label, sizeof label, "%s: d/dx", what);
    CHECK_ARRAY(label, gx, num, n, 2e-3, 1e-2);
    for (int p = 0; p < nb_module_num_params(m); p++) {
        const char *pname;
        nb_tensor *prm = nb_module_param(m, p, &pname);
        snprintf(label, sizeof label, "%s: d/d%s", what, pname);
        int64_t np = nb_numel(prm);
        float gp[MAXN];
        nb_copy_to(nb_grad(prm), gp, MAXN);
        float pv[MAXN];
        nb_copy_to(prm, pv, MAXN);
        for (int64_t i = 0; i < np; i++) {
            float keep = pv[i];
            set_flat(prm, i, keep + (float)h);
            double up = fd_loss(m, x, nd, shape, r);
            set_flat(prm, i, keep - (float)h);
            double down = fd_loss(m, x, nd, shape, r);
            set_flat(prm, i, keep);
            num[i] = (up - down) / (2 * h);
        }
        CHECK_ARRAY(label, gp, num, np, 2e-3, 1e-2);
        nb_clear_grad(prm);
    }
    nb_scope_end();
}

static void batchnorm_layernorm_prelu_gradients_match_finite_differences(void) {
    nb_manual_seed(21);
    float x[24];
    nb_tensor *xt = nb_randn(NB_SHAPE(24));
    nb_copy_to(xt, x, 24);
    nb_tensor_free(xt);

    nb_module *b2 = bn(3, (nb_batchnorm_opts){0}), *b3 = bn(3, (nb_batchnorm_opts){0});
    nb_init_normal(nb_module_find(b2, "weight"), 1.0f, 0.5f);
    nb_init_normal(nb_module_find(b2, "bias"), 0.0f, 0.5f);
    nb_init_normal(nb_module_find(b3, "weight"), 1.0f, 0.5f);
    check_fd("BatchNorm1d [8,3] training", b2, x, 2, (int64_t[]){8, 3});
    check_fd("BatchNorm1d [2,3,4] training", b3, x, 3, (int64_t[]){2, 3, 4});

    nb_module *ln = nb_layernorm_new(2, (int64_t[]){3, 4}, 0, true);
    nb_init_normal(nb_module_find(ln, "weight"), 1.0f, 0.5f);
    nb_init_normal(nb_module_find(ln, "bias"), 0.0f, 0.5f);
    check_fd("LayerNorm (3, 4)", ln, x, 3, (int64_t[]){2, 3, 4});

    /* PReLU has a kink at 0: keep every input at least 0.1 away from it */
    float xp[24];
    for (int i = 0; i < 24; i++) xp[i] = x[i] + (x[i] >= 0 ? 0.1f : -0.1f);
    nb_module *p1 = nb_prelu_new(1, 0.25f), *p3 = nb_prelu_new(3, 0.25f);
    nb_init_uniform(nb_module_find(p3, "weight"), -0.5f, 0.5f);
    check_fd("PReLU shared", p1, xp, 2, (int64_t[]){8, 3});
    check_fd("PReLU per channel", p3, xp, 3, (int64_t[]){2, 3, 4});
    nb_module_free(b2);
    nb_module_free(b3);
    nb_module_free(ln);
    nb_module_free(p1);
    nb_module_free(p3);
}

/* ---------------------------------------------------------------- activation names */

static void activation_names_parse_back(void) {
    for (int a = 0; a < NB_ACT_COUNT; a++) {
        nb_activation got = NB_ACT_COUNT;
        const char *name = nb_activation_name((nb_activation)a);
        if (!nb_activation_parse(name, &got) || got != (nb_activation)a)
            CHECK_FAIL_("activation %d: name '%s' parses to %d", a, name, (int)got);
        else check_passed_++;
        nb_module *m = act((nb_activation)a, 0);
        CHECK(m && !strcmp(nb_module_type(m), name));
        nb_module_free(m);
    }
    static const struct { const char *text; nb_activation act; } spelled[] = {
        {"relu", NB_ACT_RELU},           {"leaky_relu", NB_ACT_LEAKY_RELU}, {"LeakyReLU", NB_ACT_LEAKY_RELU},
        {"GELU", NB_ACT_GELU},           {"swish", NB_ACT_SILU},            {"SiLU", NB_ACT_SILU},
        {"log_softmax", NB_ACT_LOG_SOFTMAX}, {"tanh_linear", NB_ACT_TANH_LINEAR},
        {"Identity", NB_ACT_IDENTITY},   {"softplus", NB_ACT_SOFTPLUS},
    };
    for (size_t i = 0; i < sizeof spelled / sizeof spelled[0]; i++) {
        nb_activation got = NB_ACT_COUNT;
        CHECK(nb_activation_parse(spelled[i].text, &got) && got == spelled[i].act);
    }
    nb_activation untouched = NB_ACT_TANH;
    CHECK(!nb_activation_parse("relu6", &untouched) && untouched == NB_ACT_TANH);
    CHECK(!nb_activation_parse("", &untouched) && untouched == NB_ACT_TANH);
    CHECK(!nb_activation_parse(NULL, &untouched));
    CHECK(!strcmp(nb_activation_name(NB_ACT_COUNT), "Unknown"));
}

int main(void) {
    golden = golden_load(GOLDEN_PATH);
    if (!golden) return 1;
    modules_match_torch_golden_vectors();
    json_decref(golden);
    nested_names_and_counts_match_torch();
    names_collected_in_a_loop_stay_distinct_and_valid();
    deeply_nested_names_are_full_and_distinct();
    num_elements_counts_every_parameter();
    frozen_parameters_get_no_grad_and_are_not_updated();
    train_and_eval_switch_the_whole_tree();
    modules_accept_non_contiguous_inputs();
    dropout_zeroes_p_and_scales_the_rest_in_training();
    dropout_p0_is_identity_and_p1_gives_zeros();
    folded_linear_equals_batchnorm_of_linear_in_eval();
    linear_default_init_is_uniform_within_inverse_sqrt_fan_in();
    init_functions_match_torch_formulas();
    module_init_schemes_follow_torch_formulas();
    kaiming_keeps_activation_scale_in_a_deep_relu_net_and_xavier_does_not();
    fprint_matches_torch_repr();
    describe_gives_hyper_parameters_by_name();
    misuse_fails_with_a_message_naming_the_problem();
    non_finite_and_out_of_range_options_are_refused();
    heap_mode_forward_backward_leaves_nothing_behind();
    batchnorm_layernorm_prelu_gradients_match_finite_differences();
    activation_names_parse_back();
    return check_summary();
}
