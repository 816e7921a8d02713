/*
 * test_prune.c — unstructured pruning (nabla/prune.h): magnitude per parameter and global, ties
 * and rounding, masks that hold through training, sparsity figures, removing masks, Optimal
 * Brain Damage's saliencies against torch's Hessian, Hutchinson's estimate above the cap, and
 * bad input.
 *
 * Golden.  tests/golden/prune.json (tools/gen_golden_prune.py, torch 1.13): a 4-6-3 MLP (Tanh),
 * two batches of 8 samples, the diagonal of the Hessian of the mean cross-entropy from
 * torch.autograd.functional.hessian in float64, and the saliencies w^2 H_ii / 2.
 */
#include "check.h"
#include "golden_json.h"
#include "tmpdir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN "tests/golden/prune.json"

/* ---------------------------------------------------------------- helpers */

static nb_module *mlp(int64_t in, int64_t hidden, int64_t out) {
    nb_module *layers[] = {nb_linear_new(in, hidden, true), nb_activation_new(NB_ACT_TANH, 0),
                           nb_linear_new(hidden, out, true)};
    return nb_sequential_new(3, layers);
}

static nb_tensor *param(nb_module *m, const char *name) { return nb_module_find(m, name); }

/* Sets t to v[0 .. numel-1]. */
static void set_values(nb_tensor *t, const float *v) { CHECK(nb_copy_from(t, v, nb_numel(t)) == NB_OK); }

static int64_t count_zeros(const nb_tensor *t) {
    const float *v = host_vals(t);
    int64_t z = 0;
    for (int64_t i = 0; i < nb_numel(t); i++) z += v[i] == 0;
    return z;
}

/* The golden file's MLP and batches. */
typedef struct {
    json_t *root;
    nb_module *model;
    nb_tensor *x[2], *y[2];
} golden_mlp;

static golden_mlp golden_load_mlp(void) {
    golden_mlp g = {.root = golden_load(GOLDEN)};
    CHECK(g.root != NULL);
    g.model = mlp(4, 6, 3);
    const char *name;
    json_t *p;
    json_object_foreach(json_object_get(g.root, "params"), name, p) {
        long n;
        float *v = json_floats(p, &n);
        CHECK_EQ_INT(n, nb_numel(param(g.model, name)));
        set_values(param(g.model, name), v);
        free(v);
    }
    for (int b = 0; b < 2; b++) {
        g.x[b] = json_tensor(json_array_get(json_object_get(g.root, "x"), (size_t)b));
        const json_t *ys = json_array_get(json_object_get(g.root, "y"), (size_t)b);
        int32_t y[8];
        for (size_t i = 0; i < 8; i++) y[i] = (int32_t)json_integer_value(json_array_get(ys, i));
        g.y[b] = nb_from_int32(y, NB_SHAPE(8));
    }
    return g;
}

static void golden_free(golden_mlp *g) {
    for (int b = 0; b < 2; b++) nb_tensor_free(g->x[b]), nb_tensor_free(g->y[b]);
    nb_module_free(g->model);
    json_decref(g->root);
}

/* OBD's loss: cross-entropy of the golden MLP on batch b. */
static nb_tensor *golden_loss(nb_module *model, int b, void *ctx) {
    golden_mlp *g = ctx;
    return nb_cross_entropy(nb_module_forward(model, g->x[b]), g->y[b], NULL); /* in OBD's scope */
}

static const char *const weights[] = {"0.weight", "2.weight"};

/* ---------------------------------------------------------------- magnitude */

static void magnitude_prunes_the_smallest_fraction_ties_by_index(void) {
    nb_module *m = mlp(4, 5, 2);
    nb_tensor *w = param(m, "0.weight"); /* 20 elements: |w| = 0, 1, ..., 9 twice, signs mixed */
    float v[20];
    for (int i = 0; i < 20; i++) v[i] = (float)((i % 10) * (i % 3 ? 1 : -1));
    set_values(w, v);
    CHECK(nb_prune_magnitude(m, 1, weights, 0.3f) == NB_OK); /* 6 pruned: 0, 0, 1, 1, 2, 2 */
    const float *got = host_vals(w);
    for (int i = 0; i < 20; i++) CHECK(got[i] == (i % 10 < 3 ? 0.0f : v[i]));
    const float *mask = host_vals(param(m, "0.weight_mask"));
    for (int i = 0; i < 20; i++) CHECK(mask[i] == (i % 10 < 3 ? 0.0f : 1.0f));
    /* 0.25 of 20 = 5: the tie at |w| = 2 goes to the lower flat index (2, not 12) */
    nb_module *m2 = mlp(4, 5, 2);
    set_values(param(m2, "0.weight"), v);
    CHECK(nb_prune_magnitude(m2, 1, weights, 0.25f) == NB_OK);
    got = host_vals(param(m2, "0.weight"));
    CHECK(got[2] == 0 && got[12] != 0);
    CHECK_EQ_INT(count_zeros(param(m2, "0.weight")), 5);
    nb_module_free(m), nb_module_free(m2);
}

static void amount_rounds_half_to_even_as_torch(void) {
    /* torch prunes round(amount * n): 0.25 * 10 = 2.5 -> 2, 0.75 * 10 = 7.5 -> 8, 0.5 -> 0 */
    const float amounts[] = {0.25f, 0.75f, 0.0625f, 0.0f};
    const int64_t want[] = {2, 8, 1, 0}; /* 0.625 -> 1 */
    for (int c = 0; c < 4; c++) {
        nb_module *m = mlp(5, 2, 1);
        CHECK(nb_init_uniform(param(m, "0.weight"), 0.5f, 1.0f) == NB_OK);
        CHECK(nb_prune_magnitude(m, 1, weights, amounts[c]) == NB_OK);
        CHECK_EQ_INT(count_zeros(param(m, "0.weight")), want[c]);
        nb_module_free(m);
    }
}

static void global_ranks_all_layers_together(void) {
    nb_module *m = mlp(4, 6, 3);
    nb_manual_seed(3);
    /* layer 0 small (|w| < 0.5), layer 2 large (|w| >= 0.5): 42 weights, 0.5 -> 21 pruned, all
     * in layer 0; per layer, 12 and 9 */
    CHECK(nb_init_uniform(param(m, "0.weight"), -0.5f, 0.5f) == NB_OK);
    CHECK(nb_init_uniform(param(m, "2.weight"), 0.5f, 1.0f) == NB_OK);
    nb_module *per = mlp(4, 6, 3);
    CHECK(nb_copy(param(per, "0.weight"), param(m, "0.weight")) == NB_OK);
    CHECK(nb_copy(param(per, "2.weight"), param(m, "2.weight")) == NB_OK);
    float before[24];
    memcpy(before, host_vals(param(m, "0.weight")), sizeof before);
    CHECK(nb_prune_global_magnitude(m, 2, weights, 0.5f) == NB_OK);
    CHECK(nb_prune_magnitude(per, 2, weights, 0.5f) == NB_OK);
    CHECK_EQ_INT(count_zeros(param(m, "0.weight")), 21);
    CHECK_EQ_INT(count_zeros(param(m, "2.weight")), 0);
    CHECK_EQ_INT(count_zeros(param(per, "0.weight")), 12);
    CHECK_EQ_INT(count_zeros(param(per, "2.weight")), 9);
    /* the global cut is the 21 smallest of layer 0: every kept |w| >= every pruned one */
    const float *w = host_vals(param(m, "0.weight"));
    float pruned_max = 0, kept_min = INFINITY;
    for (int i = 0; i < 24; i++)
        if (w[i] != 0) kept_min = fminf(kept_min, fabsf(w[i]));
        else pruned_max = fmaxf(pruned_max, fabsf(before[i]));
    CHECK(pruned_max <= kept_min);
    nb_module_free(m), nb_module_free(per);
}

static void sparsity_reports_each_parameter_and_both_globals(void) {
    nb_module *m = mlp(4, 6, 3);
    nb_manual_seed(4);
    CHECK(nb_init_uniform(param(m, "0.weight"), 0.1f, 1.0f) == NB_OK);
    CHECK(nb_init_uniform(param(m, "0.bias"), 0.1f, 1.0f) == NB_OK);
    CHECK(nb_init_uniform(param(m, "2.weight"), 0.1f, 1.0f) == NB_OK);
    CHECK(nb_init_uniform(param(m, "2.bias"), 0.1f, 1.0f) == NB_OK);
    CHECK(nb_prune_magnitude(m, 2, weights, 0.5f) == NB_OK); /* 12 of 24, 9 of 18 */
    nb_prune_layer layers[4];
    double masked = -1, all = -1;
    CHECK_EQ_INT(nb_prune_sparsity(m, layers, 4, &masked, &all), 4);
    CHECK(!strcmp(layers[0].name, "0.weight") && layers[0].masked);
    CHECK_EQ_INT(layers[0].numel, 24);
    CHECK_EQ_INT(layers[0].zeros, 12);
    CHECK(!strcmp(layers[1].name, "0.bias") && !layers[1].masked && layers[1].zeros == 0);
    CHECK(!strcmp(layers[2].name, "2.weight") && layers[2].masked && layers[2].zeros == 9);
    CHECK_NEAR(masked, 21.0 / 42.0, 1e-12, 0);
    CHECK_NEAR(all, 21.0 / 51.0, 1e-12, 0);
    /* a smaller cap fills less and still counts */
    CHECK_EQ_INT(nb_prune_sparsity(m, layers, 1, NULL, NULL), 4);
    nb_module_free(m);
}

/* 20 SGD steps with momentum built up before pruning: the hook zeroes the pruned gradients and
 * nb_prune_apply after each step holds the weights at 0 against the momentum. */
static void masks_hold_through_twenty_sgd_steps(void) {
    nb_manual_seed(5);
    nb_module *m = mlp(4, 6, 3);
    nb_tensor *x = nb_randn(NB_SHAPE(16, 4));
    nb_tensor *y = nb_from_int32((const int32_t[]){0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0},
                                 NB_SHAPE(16));
    nb_tensor *ps[4];
    nb_module_parameters(m, ps, 4);
    nb_optim *opt = nb_sgd_new(4, ps, (nb_sgd_opts){.lr = 0.1, .momentum = 0.9});
    for (int step = 0; step < 23; step++) {
        if (step == 3) CHECK(nb_prune_global_magnitude(m, 2, weights, 0.6f) == NB_OK);
        nb_scope_begin();
        CHECK(nb_optim_zero_grad(opt) == NB_OK);
        CHECK(nb_backward(nb_cross_entropy(nb_module_forward(m, x), y, NULL)) == NB_OK);
        if (step >= 3)
            for (int k = 0; k < 2; k++) { /* pruned elements get no gradient */
                const float *mask = host_vals(param(m, k ? "2.weight_mask" : "0.weight_mask"));
                const float *g = host_vals(nb_grad(param(m, weights[k])));
                bool ok = true;
                for (int64_t i = 0; i < nb_numel(param(m, weights[k])); i++) ok &= mask[i] != 0 || g[i] == 0;
                CHECK(ok);
            }
        CHECK(nb_optim_step(opt) == NB_OK);
        if (step >= 3) CHECK(nb_prune_apply(m) == NB_OK);
        nb_scope_end();
    }
    double masked;
    nb_prune_sparsity(m, NULL, 0, &masked, NULL);
    CHECK_NEAR(masked, round(0.6 * 42) / 42, 1e-12, 0);
    for (int k = 0; k < 2; k++) {
        const float *mask = host_vals(param(m, k ? "2.weight_mask" : "0.weight_mask"));
        const float *w = host_vals(param(m, weights[k]));
        bool ok = true;
        for (int64_t i = 0; i < nb_numel(param(m, weights[k])); i++) ok &= (mask[i] == 0) == (w[i] == 0);
        CHECK(ok);
    }
    nb_optim_free(opt);
    nb_tensor_free(x), nb_tensor_free(y);
    nb_module_free(m);
}

/* Why nb_prune_apply: with momentum from before pruning, the hook's zero gradients do not stop
 * the optimiser moving a pruned weight; re-applying the mask after the step does. */
static void momentum_moves_pruned_weights_unless_the_mask_is_reapplied(void) {
    for (int reapply = 0; reapply < 2; reapply++) {
        nb_manual_seed(10);
        nb_module *m = mlp(4, 6, 3);
        nb_tensor *x = nb_randn(NB_SHAPE(8, 4)), *ps[4];
        nb_module_parameters(m, ps, 4);
        nb_optim *opt = nb_sgd_new(4, ps, (nb_sgd_opts){.lr = 0.1, .momentum = 0.9});
        for (int step = 0; step < 3; step++) {
            if (step == 1) CHECK(nb_prune_magnitude(m, 1, weights, 0.5f) == NB_OK);
            nb_scope_begin();
            nb_optim_zero_grad(opt);
            CHECK(nb_backward(nb_sum(nb_module_forward(m, x))) == NB_OK);
            CHECK(nb_optim_step(opt) == NB_OK);
            if (reapply) CHECK(nb_prune_apply(m) == NB_OK);
            nb_scope_end();
        }
        if (reapply) CHECK_EQ_INT(count_zeros(param(m, "0.weight")), 12);
        else CHECK(count_zeros(param(m, "0.weight")) < 12);
        nb_optim_free(opt);
        nb_tensor_free(x);
        nb_module_free(m);
    }
}

/* A frozen parameter has no gradient to hook; it is pruned, held and removed all the same. */
static void frozen_parameters_prune_without_a_hook(void) {
    nb_manual_seed(11);
    nb_module *m = mlp(4, 6, 3);
    CHECK(nb_module_freeze(nb_module_child(m, "0"), true) == NB_OK);
    CHECK(nb_prune_magnitude(m, 2, weights, 0.5f) == NB_OK);
    CHECK_EQ_INT(count_zeros(param(m, "0.weight")), 12);
    set_flat(param(m, "0.weight"), 0, 5.0f);
    CHECK(nb_prune_apply(m) == NB_OK);
    CHECK_EQ_INT(count_zeros(param(m, "0.weight")), 12);
    CHECK(nb_prune_remove(m, 2, weights) == NB_OK);
    CHECK_EQ_INT(nb_module_num_buffers(m), 0);
    nb_module_free(m);
}

/* While masks are on, a saved model carries them (as torch's state_dict does), and loads into a
 * model pruned the same way. */
static void masks_save_and_load_with_the_model(void) {
    nb_manual_seed(12);
    nb_module *a = mlp(4, 6, 3), *b = mlp(4, 6, 3);
    CHECK(nb_prune_magnitude(a, 2, weights, 0.5f) == NB_OK);
    CHECK(nb_prune_magnitude(b, 2, weights, 0.25f) == NB_OK);
    const char *path = tpath("pruned.safetensors");
    CHECK(nb_module_save(a, path, 0, NULL, NULL) == NB_OK);
    CHECK(nb_module_load(b, path) == NB_OK);
    CHECK_EQ_INT(count_zeros(param(b, "0.weight_mask")), 12);
    CHECK_EQ_INT(count_zeros(param(b, "0.weight")), 12);
    nb_module_free(a), nb_module_free(b);
}

static void remove_keeps_the_zeros_and_drops_mask_and_hook(void) {
    nb_manual_seed(6);
    nb_module *m = mlp(4, 6, 3);
    CHECK(nb_prune_magnitude(m, 2, weights, 0.5f) == NB_OK);
    CHECK_EQ_INT(nb_module_num_buffers(m), 2);
    CHECK(nb_prune_remove(m, 1, weights) == NB_OK);
    CHECK_EQ_INT(nb_module_num_buffers(m), 1);
    const char *name;
    CHECK(nb_module_buffer(m, 0, &name) && !strcmp(name, "2.weight_mask"));
    CHECK_EQ_INT(count_zeros(param(m, "0.weight")), 12);
    /* no hook: the pruned weights get a gradient again, and training moves them */
    nb_tensor *x = nb_randn(NB_SHAPE(8, 4));
    nb_scope_begin();
    CHECK(nb_backward(nb_sum(nb_module_forward(m, x))) == NB_OK);
    nb_scope_end();
    CHECK(count_zeros(nb_grad(param(m, "0.weight"))) < 12);
    CHECK_EQ_INT(count_zeros(nb_grad(param(m, "2.weight"))), 9);
    CHECK(nb_prune_remove(m, 1, weights) != NB_OK);
    CHECK_ERROR(NB_ERR_ARG, "'0.weight' is not pruned");
    CHECK(nb_prune_remove(m, 1, weights + 1) == NB_OK);
    CHECK_EQ_INT(nb_module_num_buffers(m), 0);
    nb_tensor_free(x);
    nb_module_free(m);
}

static void pruning_again_targets_the_whole_tensor(void) {
    nb_manual_seed(7);
    nb_module *m = mlp(4, 6, 3);
    CHECK(nb_prune_magnitude(m, 1, weights, 0.5f) == NB_OK);
    float before[24];
    memcpy(before, host_vals(param(m, "0.weight")), sizeof before);
    CHECK(nb_prune_magnitude(m, 1, weights, 0.25f) == NB_OK); /* below: the mask stays */
    CHECK_EQ_INT(count_zeros(param(m, "0.weight")), 12);
    CHECK(nb_prune_magnitude(m, 1, weights, 0.75f) == NB_OK); /* above: the old zeros and 6 more */
    CHECK_EQ_INT(count_zeros(param(m, "0.weight")), 18);
    const float *w = host_vals(param(m, "0.weight"));
    bool kept_old = true;
    for (int i = 0; i < 24; i++) kept_old &= before[i] != 0 || w[i] == 0;
    CHECK(kept_old);
    CHECK_EQ_INT(nb_module_num_buffers(m), 1);
    nb_module_free(m);
}

/* ---------------------------------------------------------------- Optimal Brain Damage */

/* |got - want| <= 1e-5 |want|, with a floor of 1e-5 of the largest |want| for entries near 0. */
static void check_relative(const char *what, const nb_tensor *got, const json_t *want) {
    long n;
    double *w = json_doubles(want, &n);
    CHECK_EQ_INT(n, nb_numel(got));
    const float *g = host_vals(got);
    double scale = 0, worst = 0;
    for (long i = 0; i < n; i++) scale = fmax(scale, fabs(w[i]));
    for (long i = 0; i < n; i++) worst = fmax(worst, fabs(g[i] - w[i]) / fmax(fabs(w[i]), 1e-5 * scale));
    fprintf(stderr, "%s: saliency's worst relative difference from torch %.3g\n", what, worst);
    CHECK(worst <= 1e-5);
    free(w);
}

static void obd_saliency_matches_torch_hessian(void) {
    golden_mlp g = golden_load_mlp();
    nb_tensor *s[2];
    nb_hessian_estimate used[2] = {-1, -1};
    nb_obd_opts o = {.loss = golden_loss, .ctx = &g, .batches = 2};
    CHECK(nb_obd_saliency(g.model, 2, weights, &o, s, used) == NB_OK);
    CHECK(used[0] == NB_HESSIAN_EXACT && used[1] == NB_HESSIAN_EXACT);
    for (int k = 0; k < 2; k++) {
        check_relative(weights[k], s[k], json_object_get(json_object_get(g.root, "saliency"), weights[k]));
        nb_tensor_free(s[k]);
    }
    /* the same inside a scope */
    nb_scope_begin();
    CHECK(nb_obd_saliency(g.model, 2, weights, &o, s, NULL) == NB_OK);
    check_relative("scoped", s[1], json_object_get(json_object_get(g.root, "saliency"), "2.weight"));
    nb_scope_end();
    golden_free(&g);
}

/* Above exact_max the parameter gets Hutchinson's estimate: w^2 H_ii / 2 with H_ii's mean over
 * many Rademacher vectors, close to torch's exact diagonal. */
static void obd_uses_hutchinson_above_the_cap(void) {
    golden_mlp g = golden_load_mlp();
    nb_tensor *s[2];
    nb_hessian_estimate used[2];
    nb_manual_seed(8);
    nb_obd_opts o = {.loss = golden_loss, .ctx = &g, .batches = 2, .exact_max = 20, .samples = 3000};
    CHECK(nb_obd_saliency(g.model, 2, weights, &o, s, used) == NB_OK);
    CHECK(used[0] == NB_HESSIAN_HUTCHINSON && used[1] == NB_HESSIAN_EXACT); /* 24 > 20 >= 18 */
    check_relative("2.weight exact", s[1], json_object_get(json_object_get(g.root, "saliency"), "2.weight"));
    long n;
    double *want = json_doubles(json_object_get(json_object_get(g.root, "saliency"), "0.weight"), &n);
    const float *got = host_vals(s[0]);
    double scale = 0, worst = 0;
    for (long i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (long i = 0; i < n; i++) worst = fmax(worst, fabs(got[i] - want[i]));
    fprintf(stderr, "hutchinson: worst |difference| %.3g of largest saliency %.3g\n", worst, scale);
    CHECK(worst <= 0.05 * scale);
    CHECK(worst > 0); /* an estimate, not the exact diagonal */
    free(want);
    nb_tensor_free(s[0]), nb_tensor_free(s[1]);
    golden_free(&g);
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void prune_obd_removes_the_lowest_saliencies(void) {
    golden_mlp g = golden_load_mlp();
    nb_obd_opts o = {.loss = golden_loss, .ctx = &g, .batches = 2};
    nb_hessian_estimate used[2];
    CHECK(nb_prune_obd(g.model, 2, weights, 0.5f, &o, used) == NB_OK);
    for (int k = 0; k < 2; k++) {
        long n;
        double *sal = json_doubles(json_object_get(json_object_get(g.root, "saliency"), weights[k]), &n);
        double *sorted = malloc(sizeof(double) * (size_t)n);
        memcpy(sorted, sal, sizeof(double) * (size_t)n);
        qsort(sorted, (size_t)n, sizeof(double), by_value);
        double cut = sorted[n / 2 - 1]; /* the largest pruned saliency (no ties in the golden) */
        const float *mask = host_vals(param(g.model, k ? "2.weight_mask" : "0.weight_mask"));
        bool ok = true;
        for (long i = 0; i < n; i++) ok &= (mask[i] == 0) == (sal[i] <= cut);
        CHECK(ok);
        CHECK_EQ_INT(count_zeros(param(g.model, weights[k])), n / 2);
        free(sal), free(sorted);
    }
    golden_free(&g);
}

/* ---------------------------------------------------------------- bad input */

static nb_tensor *vector_loss(nb_module *model, int b, void *ctx) {
    (void)b;
    return nb_module_forward(model, ctx);
}

static void bad_input_is_refused_and_changes_nothing(void) {
    nb_manual_seed(9);
    nb_module *m = mlp(4, 6, 3);
    float before[24];
    memcpy(before, host_vals(param(m, "0.weight")), sizeof before);
    const float bad_amounts[] = {1.0f, -0.1f, NAN, 1.5f};
    for (int c = 0; c < 4; c++) {
        CHECK(nb_prune_magnitude(m, 1, weights, bad_amounts[c]) == NB_ERR_ARG);
        CHECK_ERROR(NB_ERR_ARG, "need a fraction in [0, 1)");
        CHECK(nb_prune_global_magnitude(m, 2, weights, bad_amounts[c]) == NB_ERR_ARG);
        CHECK_ERROR(NB_ERR_ARG, "amount");
    }
    const char *const missing[] = {"0.weight", "3.weight"};
    CHECK(nb_prune_magnitude(m, 2, missing, 0.5f) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "'3.weight' is not a parameter of the model");
    const char *const buffer_name[] = {"1.weight"}, *const nodot[] = {"weight"};
    CHECK(nb_prune_magnitude(m, 1, buffer_name, 0.5f) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "'1.weight'");
    CHECK(nb_prune_magnitude(m, 1, nodot, 0.5f) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "'weight'");
    const char *const twice[] = {"2.weight", "2.weight"};
    CHECK(nb_prune_global_magnitude(m, 2, twice, 0.5f) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "named twice");
    CHECK(nb_prune_magnitude(m, 0, weights, 0.5f) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "need >= 1");
    CHECK(nb_prune_magnitude(NULL, 1, weights, 0.5f) == NB_ERR_NULL);
    nb_error_clear();
    CHECK(nb_prune_remove(m, 2, missing) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "'3.weight'");
    CHECK(nb_prune_sparsity(NULL, NULL, 0, NULL, NULL) == -1);
    CHECK_ERROR(NB_ERR_NULL, "prune_sparsity");
    /* OBD */
    nb_tensor *x = nb_randn(NB_SHAPE(2, 4));
    nb_obd_opts o = {.loss = vector_loss, .ctx = x};
    CHECK(nb_prune_obd(m, 1, weights, 0.5f, &o, NULL) == NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "obd: loss of batch 0 has 6 elements: need 1");
    CHECK(nb_prune_obd(m, 1, weights, 1.0f, &o, NULL) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "amount 1");
    CHECK(nb_prune_obd(m, 2, missing, 0.5f, &o, NULL) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "'3.weight'");
    o.loss = NULL;
    nb_tensor *s[1] = {x};
    CHECK(nb_obd_saliency(m, 1, weights, &o, s, NULL) == NB_ERR_ARG && s[0] == NULL);
    CHECK_ERROR(NB_ERR_ARG, "opts.loss is NULL");
    CHECK(nb_prune_obd(m, 1, weights, 0.5f, NULL, NULL) == NB_ERR_NULL);
    nb_error_clear();
    /* nothing changed */
    CHECK_EQ_INT(nb_module_num_buffers(m), 0);
    CHECK(!memcmp(before, host_vals(param(m, "0.weight")), sizeof before));
    nb_tensor_free(x);
    nb_module_free(m);
}

int main(void) {
    if (!tmpdir_make("nb_prune")) return 1;
    magnitude_prunes_the_smallest_fraction_ties_by_index();
    amount_rounds_half_to_even_as_torch();
    global_ranks_all_layers_together();
    sparsity_reports_each_parameter_and_both_globals();
    masks_hold_through_twenty_sgd_steps();
    momentum_moves_pruned_weights_unless_the_mask_is_reapplied();
    frozen_parameters_prune_without_a_hook();
    masks_save_and_load_with_the_model();
    remove_keeps_the_zeros_and_drops_mask_and_hook();
    pruning_again_targets_the_whole_tensor();
    obd_saliency_matches_torch_hessian();
    obd_uses_hutchinson_above_the_cap();
    prune_obd_removes_the_lowest_saliencies();
    bad_input_is_refused_and_changes_nothing();
    tmpdir_remove();
    return check_summary();
}
