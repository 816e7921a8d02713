/*
 * test_qat.c — the QAT convolutions and prepare (nabla/quant.h): ConvBn2d against torch's
 * torch.nn.intrinsic.qat.ConvBn2d (tests/golden/qat.json, tools/gen_golden_qat.py) in training
 * and after freeze_bn_stats, a frozen ConvBn2d equal to the folded convolution, the QAT Conv2d's
 * weights fake-quantized per channel at any bit width, frozen observers, prepare's swaps and
 * its errors.
 */
#include "check.h"
#include "golden_json.h"

#define GOLDEN "tests/golden/qat.json"

static nb_module *float_conv_bn(int64_t in, int64_t out) {
    nb_module *conv = nb_conv2d_new(in, out, 3, 3, (nb_conv2d_opts){.padding = {1, 1}}, true);
    nb_module *bn = nb_batchnorm2d_new(out, (nb_batchnorm_opts){0});
    return nb_sequential_new(2, (nb_module *[]){conv, bn});
}

/* Loads torch's entries (name -> {shape, data}) into m by name. */
static void load_named(nb_module *m, const json_t *entries) {
    const char *name;
    json_t *e;
    json_object_foreach((json_t *)entries, name, e) {
        nb_tensor *t = nb_module_find(m, name);
        long n;
        float *v = json_floats(e, &n);
        CHECK(t && json_same_shape(t, e) && nb_copy_from(t, v, n) == NB_OK);
        free(v);
    }
}

static void conv_bn2d_matches_torch_in_training_and_after_freeze_bn_stats(void) {
    json_t *root = golden_load(GOLDEN);
    CHECK(root != NULL);
    if (!root) return;
    nb_module *fl = float_conv_bn(3, 4);
    nb_module *m = nb_qat_conv_bn2d_from(nb_module_child(fl, "0"), nb_module_child(fl, "1"), NULL);
    CHECK(m && !strcmp(nb_module_type(m), "ConvBn2d"));
    load_named(m, json_object_get(root, "params"));
    load_named(m, json_object_get(root, "buffers"));
    /* the golden's module has no activation_post_process: switch nabla's off */
    CHECK(nb_fake_quantize_enable_fake_quant(nb_module_child(m, "activation_post_process"), false) == NB_OK);
    const json_t *steps = json_object_get(root, "steps");
    for (size_t s = 0; s < json_array_size(steps); s++) {
        const json_t *st = json_array_get(steps, s);
        if (json_is_true(json_object_get(st, "frozen"))) CHECK(nb_qat_freeze_bn_stats(m) == NB_OK);
        char what[64];
        nb_scope_begin();
        nb_tensor *x = json_tensor(json_object_get(st, "input"));
        nb_set_requires_grad(x, true);
        nb_tensor *y = nb_module_forward(m, x);
        snprintf(what, sizeof what, "ConvBn2d step %zu: output", s);
        check_json_tensor(what, y, json_object_get(st, "output"), 2e-5);
        CHECK(nb_backward(nb_sum(nb_mul(y, json_tensor(json_object_get(st, "R"))))) == NB_OK);
        snprintf(what, sizeof what, "ConvBn2d step %zu: input grad", s);
        check_json_tensor(what, nb_grad(x), json_object_get(st, "grad_input"), 2e-5);
        snprintf(what, sizeof what, "ConvBn2d step %zu:", s);
        check_entries(what, "grad of", m, json_object_get(st, "grads"), true, 1e-4);
        check_entries(what, "buffer", m, json_object_get(st, "buffers"), false, 2e-5);
        nb_scope_end();
        for (int i = 0; i < nb_module_num_params(m); i++) nb_clear_grad(nb_module_param(m, i, NULL));
    }
    nb_module_free(m);
    nb_module_free(fl);
    json_decref(root);
}

/* After freeze_bn_stats, in eval mode and without fake quantization, ConvBn2d is the folded
 * convolution conv(x, W f) + (b - rm) f + beta (nb_conv2d_fold_batchnorm's). */
static void frozen_conv_bn2d_is_the_folded_conv(void) {
    nb_manual_seed(5);
    nb_module *fl = float_conv_bn(2, 3);
    nb_module *conv = nb_module_child(fl, "0"), *bn = nb_module_child(fl, "1");
    nb_scope_begin();
    float rm[3] = {0.3f, -0.2f, 0.1f}, rv[3] = {0.5f, 2.0f, 1.5f}, g[3] = {1.5f, 0.7f, -0.9f};
    nb_copy_from(nb_module_find(bn, "running_mean"), rm, 3);
    nb_copy_from(nb_module_find(bn, "running_var"), rv, 3);
    nb_copy_from(nb_module_find(bn, "weight"), g, 3);
    nb_module *m = nb_qat_conv_bn2d_from(conv, bn, NULL);
    nb_module *folded = nb_conv2d_fold_batchnorm(conv, bn);
    CHECK(nb_qat_freeze_bn_stats(m) == NB_OK);
    CHECK(nb_fake_quantize_enable_fake_quant(m, false) == NB_OK);
    nb_tensor *x = nb_randn(NB_SHAPE(2, 2, 6, 6));
    for (int mode = 0; mode < 2; mode++) { /* frozen: the same in training mode and eval mode */
        nb_module_train(m, mode == 0);
        nb_tensor *y = nb_module_forward(m, x), *want = nb_module_forward(folded, x);
        int64_t n = nb_numel(want);
        double *w = malloc(sizeof(double) * (size_t)n);
        float *wv = host_vals(want);
        for (int64_t i = 0; i < n; i++) w[i] = wv[i];
        CHECK_TENSOR("frozen ConvBn2d vs the folded conv", y, w, n, 1e-5, 1e-5);
        free(w);
    }
    float after[3];
    nb_copy_to(nb_module_find(m, "bn.running_mean"), after, 3);
    CHECK(!memcmp(after, rm, sizeof rm)); /* frozen statistics do not move in training mode */
    nb_scope_end();
    nb_module_free(folded);
    nb_module_free(m);
    nb_module_free(fl);
}

/* QAT Conv2d at each bit width: the weight it convolves with is the per-channel fake
 * quantization of its weight with the observer's qparams, so at most 2^bits levels per
 * channel; the output equals conv2d with those weights. */
static void qat_conv2d_fake_quantizes_weights_per_channel_at_every_bit_width(void) {
    nb_manual_seed(6);
    nb_module *conv = nb_conv2d_new(2, 3, 3, 3, (nb_conv2d_opts){.groups = 1}, true);
    for (int bits = 2; bits <= 8; bits++) {
        nb_module *m = nb_qat_conv2d_from(conv, &(nb_qat_opts){.weight_bits = bits});
        CHECK(m && !strcmp(nb_module_type(m), "Conv2d"));
        CHECK(nb_fake_quantize_enable_fake_quant(nb_module_child(m, "activation_post_process"), false) == NB_OK);
        nb_scope_begin();
        nb_tensor *x = nb_randn(NB_SHAPE(1, 2, 5, 5));
        nb_tensor *y = nb_module_forward(m, x);
        nb_tensor *scale = nb_module_find(m, "weight_fake_quant.scale");
        nb_tensor *zp = nb_module_find(m, "weight_fake_quant.zero_point");
        int qmax = (1 << (bits - 1)) - 1;
        nb_tensor *wq = nb_fake_quantize_per_channel(nb_module_find(m, "weight"), scale, zp, 0, -qmax - 1, qmax,
                                                     NB_STE_CLIPPED);
        nb_tensor *want = nb_conv2d(x, wq, nb_module_find(m, "bias"), NULL);
        float *a = host_vals(y), *b = host_vals(want), *s = host_vals(scale), *w = host_vals(wq);
        CHECK(nb_numel(y) == nb_numel(want) && !memcmp(a, b, sizeof(float) * (size_t)nb_numel(y)));
        bool on_grid = true;
        for (int i = 0; i < 3 * 18; i++) {
            float q = w[i] / s[i / 18];
            on_grid = on_grid && fabsf(q - nearbyintf(q)) < 1e-4f && nearbyintf(q) >= -qmax - 1 &&
                      nearbyintf(q) <= qmax; /* (q s) / s is q up to a rounding */
        }
        CHECK(on_grid);
        nb_scope_end();
        nb_module_free(m);
    }
    CHECK(!nb_qat_conv2d_from(conv, &(nb_qat_opts){.weight_bits = 9}));
    CHECK_ERROR(NB_ERR_ARG, "bits 9 is outside [2, 8]");
    nb_module_free(conv);
}

/* prepare_qat's swaps on a LeNet-like model, and frozen observers keep their qparams. */
static void prepare_swaps_layers_fuses_conv_bn_and_observers_freeze(void) {
    nb_manual_seed(7);
    nb_module *layers[] = {
        nb_conv2d_new(1, 4, 3, 3, (nb_conv2d_opts){.padding = {1, 1}}, true),
        nb_batchnorm2d_new(4, (nb_batchnorm_opts){0}), nb_activation_new(NB_ACT_RELU, 0),
        nb_conv2d_new(4, 2, 3, 3, (nb_conv2d_opts){.groups = 1}, true), nb_flatten_new(1, -1),
        nb_linear_new(2 * 4 * 4, 3, true)};
    nb_module *model = nb_sequential_new(6, layers);
    CHECK(nb_qat_prepare(model, &(nb_qat_opts){.weight_bits = 4}) == NB_OK);
    const char *want[] = {"ConvBn2d", "Identity", "ReLU", "Conv2d", "Flatten", "Linear"};
    char name[8];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "%d", i);
        CHECK(!strcmp(nb_module_type(nb_module_child(model, name)), want[i]));
    }
    CHECK(nb_module_find(model, "0.bn.running_var") && nb_module_find(model, "3.weight_fake_quant.scale") &&
          nb_module_find(model, "5.activation_post_process.scale"));
    nb_scope_begin();
    CHECK(nb_module_forward(model, nb_randn(NB_SHAPE(2, 1, 6, 6))) != NULL);
    CHECK(nb_fake_quantize_enable_observer(model, false) == NB_OK);
    float before[1], after[1];
    nb_copy_to(nb_module_find(model, "5.activation_post_process.scale"), before, 1);
    nb_tensor *big = nb_mul_scalar(nb_randn(NB_SHAPE(2, 1, 6, 6)), 50.0f);
    CHECK(nb_module_forward(model, big) != NULL);
    nb_copy_to(nb_module_find(model, "5.activation_post_process.scale"), after, 1);
    CHECK(before[0] == after[0]);
    nb_scope_end();
    nb_module_free(model);
}

static void prepare_refuses_models_without_layers_to_swap(void) {
    nb_module *relu = nb_activation_new(NB_ACT_RELU, 0);
    CHECK(nb_qat_prepare(relu, NULL) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "qat_prepare: a ReLU holds no float Linear or Conv2d layer below it");
    CHECK(nb_qat_freeze_bn_stats(relu) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "qat_freeze_bn_stats: a ReLU holds no ConvBn2d");
    nb_module *bad = nb_sequential_new(1, (nb_module *[]){nb_linear_new(2, 2, true)});
    CHECK(nb_qat_prepare(bad, &(nb_qat_opts){.act_bits = 1}) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "bits 1 is outside [2, 8]");
    CHECK(!nb_qat_conv_bn2d_from(relu, relu, NULL));
    CHECK_ERROR(NB_ERR_ARG, "need a float Conv2d and a BatchNorm2d, got a ReLU and a ReLU");
    nb_module_free(bad);
    nb_module_free(relu);
}

int main(void) {
    nb_release_memory();
    size_t before = nb_alloc_stats_get().bytes_live;
    conv_bn2d_matches_torch_in_training_and_after_freeze_bn_stats();
    frozen_conv_bn2d_is_the_folded_conv();
    qat_conv2d_fake_quantizes_weights_per_channel_at_every_bit_width();
    prepare_swaps_layers_fuses_conv_bn_and_observers_freeze();
    prepare_refuses_models_without_layers_to_swap();
    nb_release_memory();
    CHECK_BYTES_BACK("the tests", before);
    return check_summary();
}
