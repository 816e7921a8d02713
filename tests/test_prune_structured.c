/*
 * test_prune_structured.c — pruning that removes (nabla/prune.h): Linear neurons and Conv2d
 * channels cut out with the BatchNorms and the next layer's inputs (exactly what the big model
 * computes with those units masked), ranking by L1 and L2 norm, the smaller model saved and
 * loaded, residual blocks removed by their cost on a measure, the one-shot and cubic schedules,
 * and bad input.
 */
#include "check.h"
#include "tmpdir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

/* 6 -> Linear 8 -> BatchNorm1d -> ReLU -> Linear 5 -> Tanh -> Linear 3. */
static nb_module *mlp_bn(void) {
    nb_module *l[] = {nb_linear_new(6, 8, true), nb_batchnorm1d_new(8, (nb_batchnorm_opts){0}),
                      nb_activation_new(NB_ACT_RELU, 0), nb_linear_new(8, 5, true),
                      nb_activation_new(NB_ACT_TANH, 0), nb_linear_new(5, 3, true)};
    return nb_sequential_new(6, l);
}

/* A small LeNet on [N, 1, 8, 8]: conv 4 -> BN -> ReLU -> pool -> conv 6 -> ReLU -> pool ->
 * Flatten -> Linear(6 * 2 * 2, 3). */
static nb_module *lenet(int64_t c1, int64_t c2) {
    nb_conv2d_opts pad = {.padding = {1, 1}};
    nb_pool2d_opts two = {.kernel = {2, 2}};
    nb_module *l[] = {nb_conv2d_new(1, c1, 3, 3, pad, true), nb_batchnorm2d_new(c1, (nb_batchnorm_opts){0}),
                      nb_activation_new(NB_ACT_RELU, 0), nb_max_pool2d_new(two), nb_conv2d_new(c1, c2, 3, 3, pad, true),
                      nb_activation_new(NB_ACT_RELU, 0), nb_max_pool2d_new(two), nb_flatten_new(1, -1),
                      nb_linear_new(c2 * 4, 3, true)};
    return nb_sequential_new(9, l);
}

/* Running statistics and BatchNorm affine values away from their defaults, so cutting the
 * wrong entry shows. */
static void perturb_norm(nb_module *m, const char *bn) {
    static const char *const what[] = {"weight", "bias", "running_mean", "running_var"};
    char name[64];
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, "%s.%s", bn, what[k]);
        nb_tensor *t = nb_module_find(m, name);
        for (int64_t i = 0; i < nb_numel(t); i++) set_flat(t, i, k == 3 ? 0.5f + 0.25f * (float)i : 0.3f * (float)i - 0.7f);
    }
}

/* Zeroes unit u of the Linear or Conv2d `layer` (its row and bias) and, when bn is not NULL,
 * the BatchNorm's weight and bias of u: the masked model the smaller one must equal. */
static void mask_unit(nb_module *m, const char *layer, const char *bn, int64_t u) {
    char name[64];
    snprintf(name, sizeof name, "%s.weight", layer);
    nb_tensor *w = nb_module_find(m, name);
    int64_t row = nb_numel(w) / nb_shape(w)[0];
    for (int64_t k = 0; k < row; k++) set_flat(w, u * row + k, 0);
    snprintf(name, sizeof name, "%s.bias", layer);
    set_flat(nb_module_find(m, name), u, 0);
    for (int k = 0; bn && k < 2; k++) {
        snprintf(name, sizeof name, "%s.%s", bn, k ? "bias" : "weight");
        set_flat(nb_module_find(m, name), u, 0);
    }
}

/* Both models on x (eval mode): the largest absolute difference of their outputs. */
static double max_diff(nb_module *a, nb_module *b, nb_tensor *x) {
    nb_module_train(a, false), nb_module_train(b, false);
    nb_scope_begin();
    nb_tensor *ya = nb_module_forward(a, x), *yb = nb_module_forward(b, x);
    CHECK(ya && yb);
    double d = INFINITY;
    if (ya && yb && nb_numel(ya) == nb_numel(yb)) {
        float *va = host_vals(ya), *vb = host_vals(yb);
        d = 0;
        for (int64_t i = 0; i < nb_numel(ya); i++) d = fmax(d, fabs((double)va[i] - vb[i]));
    }
    nb_scope_end();
    return d;
}

static int64_t dim0(nb_module *m, const char *name) { return nb_shape(nb_module_find(m, name))[0]; }
static int64_t dim1(nb_module *m, const char *name) { return nb_shape(nb_module_find(m, name))[1]; }

/* ---------------------------------------------------------------- units removed */

static void linear_neurons_removed_compute_what_the_masked_model_computes(void) {
    nb_manual_seed(3);
    nb_module *big = mlp_bn();
    nb_manual_seed(3);
    nb_module *small = mlp_bn();
    perturb_norm(big, "1"), perturb_norm(small, "1");
    const int64_t keep[] = {0, 2, 3, 6, 7};
    for (int64_t u = 0, j = 0; u < 8; u++)
        if (j < 5 && keep[j] == u) j++;
        else mask_unit(big, "0", "1", u);
    CHECK(nb_prune_units_keep(small, "0", 5, keep) == NB_OK);
    CHECK_EQ_INT(dim0(small, "0.weight"), 5);
    CHECK_EQ_INT(dim0(small, "0.bias"), 5);
    CHECK_EQ_INT(dim0(small, "1.running_var"), 5);
    CHECK_EQ_INT(dim1(small, "3.weight"), 5);
    CHECK_EQ_INT(nb_module_num_elements(small), 6 * 5 + 5 + 2 * 5 + 5 * 5 + 5 + 5 * 3 + 3);
    /* the kept running variance is the big one's at keep[] */
    CHECK_NEAR(host_vals(nb_module_find(small, "1.running_var"))[3], 0.5f + 0.25f * 6, 0, 0);
    nb_manual_seed(30);
    nb_tensor *x = nb_randn(NB_SHAPE(16, 6));
    double d = max_diff(big, small, x);
    printf("  neurons: masked big against small, max |diff| %.3g\n", d);
    CHECK(d <= 1e-6);
    nb_tensor_free(x), nb_module_free(big), nb_module_free(small);
}

static void conv_channels_before_flatten_cut_the_linear_column_blocks(void) {
    nb_manual_seed(5);
    nb_module *big = lenet(4, 6);
    nb_manual_seed(5);
    nb_module *small = lenet(4, 6);
    perturb_norm(big, "1"), perturb_norm(small, "1");
    const int64_t keep1[] = {0, 2, 3}, keep2[] = {1, 2, 4, 5};
    mask_unit(big, "0", "1", 1);
    mask_unit(big, "4", NULL, 0), mask_unit(big, "4", NULL, 3);
    CHECK(nb_prune_units_keep(small, "0", 3, keep1) == NB_OK);
    CHECK(nb_prune_units_keep(small, "4", 4, keep2) == NB_OK);
    CHECK_EQ_INT(dim0(small, "0.weight"), 3);
    CHECK_EQ_INT(dim0(small, "1.running_mean"), 3);
    CHECK_EQ_INT(dim1(small, "4.weight"), 3);
    CHECK_EQ_INT(dim0(small, "4.weight"), 4);
    CHECK_EQ_INT(dim1(small, "8.weight"), 16); /* 4 channels x 2 x 2 */
    /* the Linear's columns are the blocks of channels 1, 2, 4, 5 */
    const float *wb = host_vals(nb_module_find(big, "8.weight")), *ws = host_vals(nb_module_find(small, "8.weight"));
    CHECK_NEAR(ws[4], wb[2 * 4], 0, 0);
    CHECK_NEAR(ws[16 + 15], wb[24 + 5 * 4 + 3], 0, 0);
    nb_manual_seed(50);
    nb_tensor *x = nb_randn(NB_SHAPE(5, 1, 8, 8));
    double d = max_diff(big, small, x);
    printf("  channels: masked big against small, max |diff| %.3g\n", d);
    CHECK(d <= 1e-5);
    nb_tensor_free(x), nb_module_free(big), nb_module_free(small);
}

/* Rows whose L1 and L2 orders differ: [1 1 1 1] (L1 4, L2 2) against [3 0 0 0] (L1 3, L2 3). */
static void channels_rank_rows_by_l1_or_l2_norm(void) {
    const float w[] = {1, 1, 1, 1, 3, 0, 0, 0, 10, 0, 0, 0, 0, 5, 0, 0};
    for (int p = 1; p <= 2; p++) {
        nb_module *l[] = {nb_linear_new(4, 4, true), nb_activation_new(NB_ACT_RELU, 0), nb_linear_new(4, 2, true)};
        nb_module *m = nb_sequential_new(3, l);
        CHECK(nb_copy_from(nb_module_find(m, "0.weight"), w, 16) == NB_OK);
        CHECK(nb_prune_channels(m, 1, (const char *[]){"0"}, 0.25f, p == 1 ? NB_PRUNE_L1 : NB_PRUNE_L2) == NB_OK);
        const float *got = host_vals(nb_module_find(m, "0.weight"));
        /* L1 drops [3 0 0 0] (row 1), L2 drops [1 1 1 1] (row 0); the others keep their order */
        CHECK_NEAR(got[0], p == 1 ? 1 : 3, 0, 0);
        CHECK_NEAR(got[4], 10, 0, 0);
        CHECK_EQ_INT(dim0(m, "0.weight"), 3);
        CHECK_EQ_INT(dim1(m, "2.weight"), 3);
        nb_module_free(m);
    }
}

static void half_of_every_prunable_layer_goes_and_one_unit_stays(void) {
    nb_manual_seed(8);
    nb_module *m = lenet(4, 6);
    const char *names[4];
    CHECK_EQ_INT(nb_prune_channel_layers(m, names, 4), 2); /* the last Linear is the output */
    CHECK(!strcmp(names[0], "0") && !strcmp(names[1], "4"));
    CHECK(nb_prune_channels(m, 2, names, 0.5f, NB_PRUNE_L2) == NB_OK);
    CHECK_EQ_INT(dim0(m, "0.weight"), 2);
    CHECK_EQ_INT(dim0(m, "4.weight"), 3);
    CHECK_EQ_INT(dim1(m, "8.weight"), 12);
    CHECK(nb_prune_channels(m, 1, (const char *[]){"0"}, 0.99f, NB_PRUNE_L1) == NB_OK);
    CHECK_EQ_INT(dim0(m, "0.weight"), 1);
    nb_module_free(m);
}

static void pruned_model_saves_and_loads_at_its_new_sizes(void) {
    nb_manual_seed(9);
    nb_module *m = lenet(4, 6);
    CHECK(nb_prune_channels(m, 2, (const char *[]){"0", "4"}, 0.5f, NB_PRUNE_L2) == NB_OK);
    const char *path = tpath("small.safetensors");
    CHECK(nb_module_save(m, path, 0, NULL, NULL) == NB_OK);
    nb_module *fresh = lenet(2, 3), *wrong = lenet(4, 6);
    CHECK(nb_module_load(fresh, path) == NB_OK);
    nb_tensor *x = nb_randn(NB_SHAPE(3, 1, 8, 8));
    CHECK(max_diff(m, fresh, x) == 0);
    CHECK(nb_module_load(wrong, path) != NB_OK); /* the big model's shapes do not take it */
    nb_error_clear();
    nb_tensor_free(x), nb_module_free(m), nb_module_free(fresh), nb_module_free(wrong);
}

static void frozen_layers_stay_frozen_and_training_mode_is_kept(void) {
    nb_manual_seed(10);
    nb_module *m = mlp_bn();
    CHECK(nb_module_freeze(nb_module_child(m, "0"), true) == NB_OK);
    nb_module_train(m, true);
    CHECK(nb_prune_channels(m, 1, (const char *[]){"0"}, 0.5f, NB_PRUNE_L1) == NB_OK);
    CHECK(!nb_requires_grad(nb_module_find(m, "0.weight")));
    CHECK(nb_requires_grad(nb_module_find(m, "3.weight")));
    CHECK(nb_module_is_training(nb_module_child(m, "1")));
    nb_module_free(m);
}

/* ---------------------------------------------------------------- residual blocks */

typedef struct {
    nb_tensor *x, *want;
    int calls;
} block_eval;

/* The mean squared distance of the model's output from the full model's. */
static double distance(nb_module *model, void *ctx) {
    block_eval *e = ctx;
    e->calls++;
    nb_scope_begin();
    double d = nb_item(nb_mse_loss(nb_module_forward(model, e->x), e->want, NB_REDUCTION_MEAN));
    nb_scope_end();
    return d;
}

/* stem conv -> BN -> ReLU, three BasicBlocks of 4 channels, a downsampling one, pool, head. */
static nb_module *resnet(void) {
    nb_module *l[] = {nb_conv2d_new(1, 4, 3, 3, (nb_conv2d_opts){.padding = {1, 1}}, false),
                      nb_batchnorm2d_new(4, (nb_batchnorm_opts){0}), nb_activation_new(NB_ACT_RELU, 0),
                      nb_resnet_basic_block_new(4, 4, 1), nb_resnet_basic_block_new(4, 4, 1),
                      nb_resnet_basic_block_new(4, 4, 1), nb_resnet_basic_block_new(4, 8, 2),
                      nb_global_avg_pool2d_new(), nb_flatten_new(1, -1), nb_linear_new(8, 3, true)};
    return nb_sequential_new(10, l);
}

static void blocks_whose_removal_costs_least_become_identities(void) {
    nb_manual_seed(11);
    nb_module *m = resnet();
    nb_module_train(m, false);
    /* block "4" computes F(x) = 0: its last BatchNorm outputs zeros, so it is the identity */
    CHECK(nb_init_constant(nb_module_find(m, "4.bn2.weight"), 0) == NB_OK);
    CHECK(nb_init_constant(nb_module_find(m, "4.bn2.bias"), 0) == NB_OK);
    const char *cand[8];
    CHECK_EQ_INT(nb_prune_block_candidates(m, cand, 8), 3);
    CHECK(!strcmp(cand[0], "3") && !strcmp(cand[2], "5"));
    block_eval e = {.x = nb_randn(NB_SHAPE(4, 1, 8, 8))};
    e.want = nb_module_forward(m, e.x);
    int64_t before = nb_module_num_elements(m), block = nb_module_num_elements(nb_module_child(m, "3"));
    const char *removed[2];
    double cost[2];
    CHECK(nb_prune_blocks(m, 2, distance, &e, removed, cost) == NB_OK);
    CHECK(!strcmp(removed[0], "4"));
    CHECK(cost[0] == 0);
    CHECK(cost[1] > 0);
    CHECK(!strcmp(nb_module_type(nb_module_child(m, "4")), "Identity"));
    CHECK(!strcmp(nb_module_type(nb_module_child(m, removed[1])), "Identity"));
    CHECK_EQ_INT(nb_module_num_elements(m), before - 2 * block);
    CHECK_EQ_INT(e.calls, 1 + 3 + 1 + 2); /* each round: the model, then each candidate */
    CHECK_EQ_INT(nb_prune_block_candidates(m, NULL, 0), 1);
    CHECK(nb_prune_blocks(m, 2, distance, &e, NULL, NULL) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "has 1 without a projection");
    nb_error_clear();
    nb_tensor_free(e.x), nb_tensor_free(e.want), nb_module_free(m);
}

static double failing_eval(nb_module *model, void *ctx) {
    (void)model, (void)ctx;
    return NAN;
}

static void a_failing_measure_stops_block_removal_with_the_model_whole(void) {
    nb_manual_seed(12);
    nb_module *m = resnet();
    CHECK(nb_prune_blocks(m, 1, failing_eval, NULL, NULL, NULL) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "eval returned NaN");
    CHECK_EQ_INT(nb_prune_block_candidates(m, NULL, 0), 3);
    nb_error_clear();
    nb_module_free(m);
}

/* ---------------------------------------------------------------- schedules */

static void cubic_schedule_follows_zhu_and_gupta(void) {
    nb_prune_schedule s = {.kind = NB_PRUNE_CUBIC, .initial = 0.1f, .final = 0.9f, .start = 10, .every = 5, .steps = 4};
    float sp = -1;
    CHECK(!nb_prune_schedule_at(&s, 9, &sp));
    CHECK(nb_prune_schedule_at(&s, 10, &sp));
    CHECK_NEAR(sp, 0.1, 1e-7, 0);
    CHECK(!nb_prune_schedule_at(&s, 11, &sp));
    CHECK(nb_prune_schedule_at(&s, 15, &sp)); /* 0.9 + (0.1 - 0.9) (3/4)^3 */
    CHECK_NEAR(sp, 0.9 - 0.8 * 27.0 / 64, 1e-6, 0);
    CHECK(nb_prune_schedule_at(&s, 30, &sp));
    CHECK_NEAR(sp, 0.9, 1e-7, 0);
    CHECK(!nb_prune_schedule_at(&s, 35, &sp));
    nb_prune_schedule once = {.kind = NB_PRUNE_ONESHOT, .final = 0.5f, .start = 3};
    CHECK(!nb_prune_schedule_at(&once, 2, &sp) && nb_prune_schedule_at(&once, 3, &sp) && sp == 0.5f);
    CHECK(!nb_prune_schedule_at(&once, 4, &sp));
    nb_prune_schedule bad = {.kind = NB_PRUNE_CUBIC, .initial = 0.5f, .final = 0.4f, .every = 1, .steps = 2};
    CHECK(!nb_prune_schedule_at(&bad, 0, &sp));
    CHECK_ERROR(NB_ERR_ARG, "0 <= initial <= final < 1");
    nb_error_clear();
}

/* Gradual magnitude pruning while SGD trains: the sparsity follows the ramp, and what was
 * pruned earlier stays zero through the steps between. */
static void gradual_pruning_keeps_its_masks_between_steps(void) {
    nb_manual_seed(13);
    nb_module *l[] = {nb_linear_new(10, 20, true), nb_activation_new(NB_ACT_RELU, 0), nb_linear_new(20, 4, true)};
    nb_module *m = nb_sequential_new(3, l);
    nb_tensor *params[4];
    int np = nb_module_parameters(m, params, 4);
    nb_optim *opt = nb_sgd_new(np, params, (nb_sgd_opts){.lr = 0.05f, .momentum = 0.9f});
    nb_tensor *x = nb_randn(NB_SHAPE(32, 10)), *y = nb_randn(NB_SHAPE(32, 4));
    const char *names[] = {"0.weight", "2.weight"};
    nb_prune_schedule s = {.kind = NB_PRUNE_CUBIC, .final = 0.8f, .start = 0, .every = 4, .steps = 5};
    int64_t zeros_before = 0;
    for (int64_t t = 0; t < 30; t++) {
        float sp;
        if (nb_prune_schedule_at(&s, t, &sp)) {
            CHECK(nb_prune_global_magnitude(m, 2, names, sp) == NB_OK);
            double masked;
            CHECK(nb_prune_sparsity(m, NULL, 0, &masked, NULL) == 4);
            CHECK_NEAR(masked, sp, 0.005, 0);
        }
        int64_t zeros = 0;
        for (int k = 0; k < 2; k++) {
            const float *v = host_vals(nb_module_find(m, names[k]));
            for (int64_t i = 0; i < nb_numel(nb_module_find(m, names[k])); i++) zeros += v[i] == 0;
        }
        CHECK(zeros >= zeros_before);
        zeros_before = zeros;
        nb_scope_begin();
        nb_optim_zero_grad(opt);
        CHECK(nb_backward(nb_mse_loss(nb_module_forward(m, x), y, NB_REDUCTION_MEAN)) == NB_OK);
        CHECK(nb_optim_step(opt) == NB_OK);
        CHECK(nb_prune_apply(m) == NB_OK);
        nb_scope_end();
    }
    CHECK_EQ_INT(zeros_before, 224); /* 80 % of 200 + 80 weights */
    nb_optim_free(opt), nb_tensor_free(x), nb_tensor_free(y), nb_module_free(m);
}

/* ---------------------------------------------------------------- bad input */

static void bad_structured_input_is_refused_and_changes_nothing(void) {
    nb_manual_seed(14);
    nb_module *m = lenet(4, 6);
    int64_t before = nb_module_num_elements(m);
    const char *one[] = {"0"};
    CHECK(nb_prune_channels(m, 1, one, 1.0f, NB_PRUNE_L1) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "amount 1: need a fraction in [0, 1)");
    CHECK(nb_prune_channels(m, 1, one, -0.1f, NB_PRUNE_L1) == NB_ERR_ARG);
    CHECK(nb_prune_channels(m, 1, one, 0.5f, (nb_prune_norm)3) == NB_ERR_ARG);
    CHECK(nb_prune_channels(m, 2, (const char *[]){"0", "12"}, 0.5f, NB_PRUNE_L1) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "no layer '12'");
    CHECK(nb_prune_channels(m, 1, (const char *[]){"2"}, 0.5f, NB_PRUNE_L1) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "layer '2' is a ReLU");
    CHECK(nb_prune_channels(m, 1, (const char *[]){"8"}, 0.5f, NB_PRUNE_L1) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "its outputs are the model's");
    CHECK(nb_prune_channels(m, 2, (const char *[]){"0", "0"}, 0.5f, NB_PRUNE_L1) == NB_ERR_ARG);
    CHECK(nb_prune_units_keep(m, "0", 2, (const int64_t[]){2, 1}) == NB_ERR_ARG);
    CHECK(nb_prune_units_keep(m, "0", 0, (const int64_t[]){0}) == NB_ERR_ARG);
    CHECK(nb_prune_magnitude(m, 1, (const char *[]){"4.weight"}, 0.5f) == NB_OK);
    CHECK(nb_prune_channels(m, 1, one, 0.5f, NB_PRUNE_L1) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "carries a pruning mask");
    CHECK(nb_prune_channels(nb_module_child(m, "0"), 1, one, 0.5f, NB_PRUNE_L1) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "not a Sequential");
    CHECK(nb_prune_channels(NULL, 1, one, 0.5f, NB_PRUNE_L1) == NB_ERR_NULL);
    CHECK_EQ_INT(nb_module_num_elements(m), before);
    /* a softmax mixes channels: the layer before it cannot lose one */
    nb_module *l[] = {nb_linear_new(4, 4, true), nb_activation_new(NB_ACT_SOFTMAX, 0), nb_linear_new(4, 2, true)};
    nb_module *s = nb_sequential_new(3, l);
    CHECK(nb_prune_channels(s, 1, one, 0.5f, NB_PRUNE_L1) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "cannot cut");
    nb_error_clear();
    nb_module_free(m), nb_module_free(s);
}

int main(void) {
    if (!tmpdir_make("nb_prune_structured")) return 1;
    linear_neurons_removed_compute_what_the_masked_model_computes();
    conv_channels_before_flatten_cut_the_linear_column_blocks();
    channels_rank_rows_by_l1_or_l2_norm();
    half_of_every_prunable_layer_goes_and_one_unit_stays();
    pruned_model_saves_and_loads_at_its_new_sizes();
    frozen_layers_stay_frozen_and_training_mode_is_kept();
    blocks_whose_removal_costs_least_become_identities();
    a_failing_measure_stops_block_removal_with_the_model_whole();
    cubic_schedule_follows_zhu_and_gupta();
    gradual_pruning_keeps_its_masks_between_steps();
    bad_structured_input_is_refused_and_changes_nothing();
    tmpdir_remove();
    return check_summary();
}
