/*
 * test_lora.c — LoRA (nabla/lora.h) and transfer learning (nabla/nn.h's "transfer learning"):
 * wrapping, what trains, gradients against finite differences, merging, adapter files, bad
 * input; cutting a Sequential, a frozen backbone unfrozen at its own learning rate, layer-wise
 * training, and the class filter the transfer task uses.
 */
#include "check.h"
#include "gradcheck_util.h"
#include "tmpdir.h"

/* ---------------------------------------------------------------- helpers */

static nb_module *mlp(int64_t in, int64_t hidden, int64_t out) {
    nb_module *layers[] = {nb_linear_new(in, hidden, true), nb_activation_new(NB_ACT_TANH, 0),
                           nb_linear_new(hidden, out, true)};
    return nb_sequential_new(3, layers);
}

static nb_module *small_cnn(void) {
    nb_module *layers[] = {nb_conv2d_new(2, 3, 3, 3, (nb_conv2d_opts){.padding = {1, 1}}, true),
                           nb_activation_new(NB_ACT_TANH, 0), nb_flatten_new(1, -1),
                           nb_linear_new(3 * 4 * 4, 2, true)};
    return nb_sequential_new(4, layers);
}

/* n floats of t, on the heap (every backend: through nb_copy_to). */
static float *values(const nb_tensor *t) {
    float *v = malloc(sizeof(float) * (size_t)nb_numel(t));
    nb_copy_to(t, v, nb_numel(t));
    return v;
}

/* Fills t with N(0, std^2) draws. */
static void randomize(nb_tensor *t, float std) { CHECK(nb_init_normal(t, 0, std) == NB_OK); }

/* The largest |a - b| over the outputs of m on x before and after `change`. */
static float max_diff(const nb_tensor *a, const nb_tensor *b) {
    float *va = values(a), *vb = values(b), worst = 0;
    for (int64_t i = 0; i < nb_numel(a); i++) worst = fmaxf(worst, fabsf(va[i] - vb[i]));
    free(va), free(vb);
    return worst;
}

static nb_tensor *forward_kept(nb_module *m, nb_tensor *x) {
    nb_tensor *y = NULL;
    nb_scope_begin();
    NB_NO_GRAD { y = nb_module_forward(m, x); }
    return nb_scope_end_keep(y);
}

static const char *repr_of(const nb_module *m, char *buf, size_t cap) {
    FILE *f = fmemopen(buf, cap, "w");
    nb_module_fprint(f, m);
    fclose(f);
    return buf;
}

/* ---------------------------------------------------------------- LoRA */

static void lora_starts_from_the_base_model_with_a_kaiming_and_b_zero(void) {
    nb_manual_seed(1);
    nb_module *m = mlp(16, 8, 3);
    nb_tensor *x = nb_randn(NB_SHAPE(5, 16)), *before = forward_kept(m, x);
    CHECK(nb_lora_apply(m, 2, (const char *[]){"0", "2"}, (nb_lora_opts){.rank = 4, .alpha = 8}) == NB_OK);
    CHECK_EQ_INT(nb_lora_count(m), 2);
    nb_tensor *after = forward_kept(m, x);
    CHECK(max_diff(before, after) == 0.0f);
    /* kaiming_uniform_(a = sqrt 5): U(+-sqrt(6 / ((1 + 5) fan_in))) = U(+-1/sqrt(16)) */
    float *a = values(nb_module_find(m, "0.lora_A.weight")), *b = values(nb_module_find(m, "0.lora_B.weight"));
    float amax = 0, bmax = 0;
    for (int i = 0; i < 4 * 16; i++) amax = fmaxf(amax, fabsf(a[i]));
    for (int i = 0; i < 8 * 4; i++) bmax = fmaxf(bmax, fabsf(b[i]));
    CHECK(amax > 0.15f && amax <= 0.25f);
    CHECK(bmax == 0.0f);
    CHECK(nb_module_find(m, "0.base_layer.weight") != NULL); /* PEFT's state_dict names */
    free(a), free(b);
    nb_tensor_free(x), nb_tensor_free(before), nb_tensor_free(after);
    nb_module_free(m);
}

static void lora_trains_a_and_b_only(void) {
    nb_manual_seed(2);
    nb_module *m = mlp(16, 8, 3);
    CHECK(nb_lora_apply(m, 2, (const char *[]){"0", "2"}, (nb_lora_opts){.rank = 2, .alpha = 4}) == NB_OK);
    /* r (in + out) per layer: 2 (16 + 8) + 2 (8 + 3) */
    CHECK_EQ_INT(nb_module_num_trainable(m), 2 * (16 + 8) + 2 * (8 + 3));
    nb_tensor *x = nb_randn(NB_SHAPE(4, 16));
    nb_scope_begin();
    CHECK(nb_backward(nb_sum(nb_module_forward(m, x))) == NB_OK);
    nb_scope_end();
    for (int i = 0, n = nb_module_num_params(m); i < n; i++) {
        const char *name;
        nb_tensor *p = nb_module_param(m, i, &name);
        bool adapter = strstr(name, "lora_") != NULL;
        if (adapter != (nb_grad(p) != NULL)) CHECK_FAIL_("%s: gradient %s", name, adapter ? "missing" : "present");
        else check_passed_++;
    }
    nb_tensor_free(x);
    nb_module_free(m);
}

/* sum(m(x) * r): a loss whose gradient reaches every output element with its own weight. */
static double loss_of(nb_module *m, nb_tensor *x, nb_tensor *r) {
    double v = NAN;
    nb_scope_begin();
    NB_NO_GRAD { v = nb_item(nb_sum(nb_mul(nb_module_forward(m, x), r))); }
    nb_scope_end();
    return v;
}

/* Central differences of loss_of over every element of t against its backward gradient. */
static void check_gradient(const char *what, nb_module *m, nb_tensor *t, nb_tensor *x, nb_tensor *r) {
    nb_tensor *grad = nb_grad(t);
    CHECK(grad != NULL);
    if (!grad) return;
    int64_t n = nb_numel(t);
    float *v = values(t), *g = values(grad);
    double worst = 0, l[4];
    for (int64_t i = 0; i < n; i++) { /* fourth-order central difference, step 2^-7 (gradcheck_util.h) */
        float keep = v[i];
        for (int k = 0; k < 4; k++) {
            v[i] = (float)(keep + (k < 2 ? 1 : 2) * (k % 2 ? -GC_STEP : GC_STEP)), nb_copy_from(t, v, n);
            l[k] = loss_of(m, x, r);
        }
        v[i] = keep, nb_copy_from(t, v, n);
        double fd = (8.0 * (l[0] - l[1]) - (l[2] - l[3])) / (12.0 * GC_STEP);
        double err = fabs(fd - g[i]) / (1e-2 + fabs(fd));
        if (err > worst) worst = err;
    }
    if (worst < 5e-3) check_passed_++;
    else CHECK_FAIL_("%s: backward differs from finite differences by %.3g (relative)", what, worst);
    free(v), free(g);
}

static void gradcheck_model(const char *what, nb_module *m, const char *layer, nb_tensor *x) {
    char a[64], b[64];
    snprintf(a, sizeof a, "%s.lora_A.weight", layer);
    snprintf(b, sizeof b, "%s.lora_B.weight", layer);
    randomize(nb_module_find(m, b), 0.5f); /* B = 0 would leave A's gradient 0: nothing to compare */
    nb_set_requires_grad(x, true);
    nb_scope_begin();
    nb_tensor *y = nb_module_forward(m, x);
    nb_tensor *r = nb_persist(nb_randn(nb_ndim(y), nb_shape(y)));
    CHECK(nb_backward(nb_sum(nb_mul(y, r))) == NB_OK);
    nb_scope_end();
    char name[96];
    snprintf(name, sizeof name, "%s lora_A", what);
    check_gradient(name, m, nb_module_find(m, a), x, r);
    snprintf(name, sizeof name, "%s lora_B", what);
    check_gradient(name, m, nb_module_find(m, b), x, r);
    snprintf(name, sizeof name, "%s input", what);
    check_gradient(name, m, x, x, r);
    nb_tensor_free(r);
}

static void lora_gradients_match_finite_differences(void) {
    nb_manual_seed(3);
    nb_module *m = mlp(6, 5, 3);
    CHECK(nb_lora_apply(m, 1, (const char *[]){"0"}, (nb_lora_opts){.rank = 2, .alpha = 3}) == NB_OK);
    nb_tensor *x = nb_randn(NB_SHAPE(4, 6));
    gradcheck_model("lora.Linear", m, "0", x);
    nb_tensor_free(x);
    nb_module_free(m);

    nb_manual_seed(4);
    m = small_cnn();
    CHECK(nb_lora_apply(m, 1, (const char *[]){"0"}, (nb_lora_opts){.rank = 2, .alpha = 2}) == NB_OK);
    x = nb_randn(NB_SHAPE(2, 2, 4, 4));
    gradcheck_model("lora.Conv2d", m, "0", x);
    nb_tensor_free(x);
    nb_module_free(m);
}

/* Merged and unmerged outputs agree to 1e-5, and unmerging gives W0 back. */
static void check_merge(const char *what, nb_module *m, int n, const char *const *targets, nb_tensor *x) {
    CHECK(nb_lora_apply(m, n, targets, (nb_lora_opts){.rank = 3, .alpha = 6}) == NB_OK);
    char name[64];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s.lora_B.weight", targets[i]);
        randomize(nb_module_find(m, name), 0.3f);
    }
    snprintf(name, sizeof name, "%s.base_layer.weight", targets[0]);
    nb_tensor *w0 = nb_persist(nb_module_find(m, name));
    nb_tensor *unmerged = forward_kept(m, x);
    CHECK(nb_lora_merge(m) == NB_OK);
    CHECK(nb_lora_merge(m) == NB_OK); /* merged layers are left as they are */
    nb_tensor *merged = forward_kept(m, x);
    float d = max_diff(unmerged, merged), dw = max_diff(w0, nb_module_find(m, name));
    if (d <= 1e-5f && dw > 1e-3f) check_passed_++;
    else CHECK_FAIL_("%s: merged outputs differ by %g (weight moved by %g)", what, (double)d, (double)dw);
    CHECK(nb_lora_unmerge(m) == NB_OK);
    nb_tensor *again = forward_kept(m, x);
    CHECK(max_diff(unmerged, again) <= 1e-5f);
    CHECK(max_diff(w0, nb_module_find(m, name)) <= 1e-6f);
    nb_tensor_free(w0), nb_tensor_free(unmerged), nb_tensor_free(merged), nb_tensor_free(again);
}

static void merged_outputs_equal_unmerged_ones(void) {
    nb_manual_seed(5);
    nb_module *m = mlp(12, 10, 4);
    nb_tensor *x = nb_randn(NB_SHAPE(6, 12));
    check_merge("Linear", m, 2, (const char *[]){"0", "2"}, x);
    nb_tensor_free(x);
    nb_module_free(m);

    nb_manual_seed(6);
    m = small_cnn();
    x = nb_randn(NB_SHAPE(3, 2, 4, 4));
    check_merge("Conv2d", m, 2, (const char *[]){"0", "3"}, x);
    nb_tensor_free(x);
    nb_module_free(m);

    /* A takes the layer's stride, padding and dilation, so both paths see the same windows */
    nb_manual_seed(16);
    nb_module *strided[] = {nb_conv2d_new(2, 4, 3, 3, (nb_conv2d_opts){.stride = {2, 1}, .padding = {2, 1},
                                                                        .dilation = {2, 1}}, true)};
    m = nb_sequential_new(1, strided);
    x = nb_randn(NB_SHAPE(2, 2, 7, 6));
    check_merge("strided, dilated Conv2d", m, 1, (const char *[]){"0"}, x);
    nb_tensor_free(x);
    nb_module_free(m);
}

static void unload_leaves_the_plain_model_with_the_update_merged(void) {
    nb_manual_seed(15);
    nb_module *m = small_cnn();
    nb_tensor *x = nb_randn(NB_SHAPE(2, 2, 4, 4));
    CHECK(nb_lora_apply(m, 2, (const char *[]){"0", "3"}, (nb_lora_opts){.rank = 2, .alpha = 4}) == NB_OK);
    randomize(nb_module_find(m, "0.lora_B.weight"), 0.3f);
    nb_tensor *want = forward_kept(m, x);
    CHECK(nb_lora_unload(m) == NB_OK);
    CHECK_EQ_INT(nb_lora_count(m), 0);
    CHECK_EQ_INT(nb_module_num_params(m), 4); /* 0.weight, 0.bias, 3.weight, 3.bias */
    CHECK(nb_module_find(m, "0.weight") != NULL && !strcmp(nb_module_type(nb_module_child(m, "0")), "Conv2d"));
    nb_tensor *got = forward_kept(m, x);
    CHECK(max_diff(want, got) <= 1e-5f);
    CHECK(nb_lora_unload(m) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "no LoRA layer");
    nb_tensor_free(x), nb_tensor_free(want), nb_tensor_free(got);
    nb_module_free(m);
}

static void dropout_acts_on_the_adapter_path_in_training_only(void) {
    nb_manual_seed(7);
    nb_module *m = mlp(8, 8, 2);
    nb_tensor *x = nb_randn(NB_SHAPE(4, 8));
    CHECK(nb_lora_apply(m, 1, (const char *[]){"0"}, (nb_lora_opts){.rank = 2, .alpha = 2, .dropout = 0.5f}) == NB_OK);
    randomize(nb_module_find(m, "0.lora_B.weight"), 0.5f);
    nb_tensor *t1 = forward_kept(m, x), *t2 = forward_kept(m, x);
    nb_module_train(m, false);
    nb_tensor *e1 = forward_kept(m, x), *e2 = forward_kept(m, x);
    CHECK(max_diff(t1, t2) > 0);  /* two masks */
    CHECK(max_diff(e1, e2) == 0); /* none */
    char buf[2048];
    CHECK_STR_CONTAINS(repr_of(m, buf, sizeof buf), "(lora_dropout): Dropout(p=0.5, inplace=False)");
    nb_tensor_free(x), nb_tensor_free(t1), nb_tensor_free(t2), nb_tensor_free(e1), nb_tensor_free(e2);
    nb_module_free(m);
}

static void lora_repr_follows_peft(void) {
    nb_manual_seed(8);
    nb_module *m = mlp(8, 6, 2);
    CHECK(nb_lora_apply(m, 1, (const char *[]){"0"}, (nb_lora_opts){.rank = 2, .alpha = 4}) == NB_OK);
    char buf[2048];
    repr_of(m, buf, sizeof buf);
    CHECK_STR_CONTAINS(buf, "(0): lora.Linear(\n    (base_layer): Linear(in_features=8, out_features=6, bias=True)\n"
                            "    (lora_dropout): Identity()\n"
                            "    (lora_A): Linear(in_features=8, out_features=2, bias=False)\n"
                            "    (lora_B): Linear(in_features=2, out_features=6, bias=False)\n  )");
    nb_module_free(m);
}

static void lora_apply_refuses_bad_input_and_changes_nothing(void) {
    nb_manual_seed(9);
    nb_module *m = mlp(8, 6, 2);
    nb_module *grouped[] = {nb_conv2d_new(4, 4, 3, 3, (nb_conv2d_opts){.groups = 2}, true)};
    nb_module *g = nb_sequential_new(1, grouped);
    nb_lora_opts ok = {.rank = 2, .alpha = 4};
    CHECK(nb_lora_apply(m, 1, (const char *[]){"5"}, ok) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "'5' is not a layer of the model");
    CHECK(nb_lora_apply(m, 2, (const char *[]){"0", "1"}, ok) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "'1' is a Tanh, not a Linear or Conv2d");
    CHECK(nb_lora_apply(m, 2, (const char *[]){"0", "0"}, ok) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "'0' is named twice");
    CHECK(nb_lora_apply(m, 1, (const char *[]){""}, ok) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "'' is not a layer");
    CHECK(nb_lora_apply(m, 0, (const char *[]){"0"}, ok) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "0 targets");
    CHECK(nb_lora_apply(m, 1, (const char *[]){"0"}, (nb_lora_opts){.rank = 0, .alpha = 4}) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "rank 0");
    CHECK(nb_lora_apply(m, 1, (const char *[]){"0"}, (nb_lora_opts){.rank = 2, .alpha = 0}) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "alpha 0");
    CHECK(nb_lora_apply(m, 1, (const char *[]){"0"}, (nb_lora_opts){.rank = 2, .alpha = NAN}) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "alpha nan");
    CHECK(nb_lora_apply(m, 1, (const char *[]){"0"}, (nb_lora_opts){.rank = 2, .alpha = 4, .dropout = 1}) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "dropout 1");
    CHECK(nb_lora_apply(g, 1, (const char *[]){"0"}, ok) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "'0' is a Conv2d with groups=2");
    CHECK(nb_lora_apply(NULL, 1, (const char *[]){"0"}, ok) == NB_ERR_NULL);
    nb_error_clear();
    CHECK_EQ_INT(nb_lora_count(m), 0);
    CHECK_EQ_INT(nb_module_num_trainable(m), nb_module_num_elements(m)); /* nothing frozen */
    CHECK(nb_lora_merge(m) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "no LoRA layer");
    CHECK(nb_lora_save(m, tpath("none.safetensors")) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "no LoRA layer");
    CHECK(nb_lora_apply(m, 1, (const char *[]){"0"}, ok) == NB_OK);
    CHECK(nb_lora_apply(m, 1, (const char *[]){"0"}, ok) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "'0' already has a LoRA adapter");
    CHECK(nb_lora_apply(m, 1, (const char *[]){"0.base_layer"}, ok) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "already has a LoRA adapter");
    nb_module_free(m);
    nb_module_free(g);
}

static void adapter_saves_alone_under_peft_names_and_loads_onto_a_base_model(void) {
    nb_manual_seed(10);
    nb_module *m = small_cnn();
    nb_manual_seed(10);
    nb_module *base = small_cnn(); /* the same weights: the base model the adapter belongs to */
    nb_tensor *x = nb_randn(NB_SHAPE(2, 2, 4, 4));
    CHECK(nb_lora_apply(m, 2, (const char *[]){"0", "3"}, (nb_lora_opts){.rank = 2, .alpha = 5}) == NB_OK);
    randomize(nb_module_find(m, "0.lora_B.weight"), 0.3f);
    randomize(nb_module_find(m, "3.lora_B.weight"), 0.3f);
    nb_tensor *want = forward_kept(m, x);
    CHECK(nb_lora_save(m, tpath("adapter.safetensors")) == NB_OK);

    nb_safetensors *st = nb_safetensors_open(tpath("adapter.safetensors"));
    CHECK_EQ_INT(nb_safetensors_count(st), 4);
    const char *names[] = {"base_model.model.0.lora_A.weight", "base_model.model.0.lora_B.weight",
                           "base_model.model.3.lora_A.weight", "base_model.model.3.lora_B.weight"};
    for (int i = 0; i < 4; i++) CHECK(!strcmp(nb_safetensors_name(st, i) ? nb_safetensors_name(st, i) : "", names[i]));
    CHECK(!strcmp(nb_safetensors_meta(st, "r"), "2") && !strcmp(nb_safetensors_meta(st, "lora_alpha"), "5"));
    CHECK(!strcmp(nb_safetensors_meta(st, "format"), "pt")); /* as safetensors.torch writes PEFT's */
    nb_safetensors_close(st);

    CHECK(nb_lora_load(base, tpath("adapter.safetensors")) == NB_OK);
    CHECK_EQ_INT(nb_lora_count(base), 2);
    nb_tensor *got = forward_kept(base, x);
    CHECK(max_diff(want, got) <= 1e-6f);
    CHECK(nb_lora_load(base, tpath("adapter.safetensors")) == NB_OK); /* onto its adapters again */

    /* a file without PEFT's config (no lora_alpha): onto adapters made with nb_lora_apply only */
    nb_manual_seed(10);
    nb_module *plain = small_cnn();
    nb_tensor *ab[2] = {nb_module_find(m, "0.lora_A.weight"), nb_module_find(m, "0.lora_B.weight")};
    CHECK(nb_safetensors_save(tpath("peft.safetensors"), 2, (const char *[]){"base_model.model.0.lora_A.weight",
                              "base_model.model.0.lora_B.weight"}, ab, NULL, NULL, 0) == NB_OK);
    CHECK(nb_lora_load(plain, tpath("peft.safetensors")) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "no lora_alpha in the metadata to wrap layer '0'");
    CHECK_EQ_INT(nb_lora_count(plain), 0);
    CHECK(nb_lora_apply(plain, 1, (const char *[]){"0"}, (nb_lora_opts){.rank = 2, .alpha = 5}) == NB_OK);
    CHECK(nb_lora_load(plain, tpath("peft.safetensors")) == NB_OK);
    CHECK(max_diff(ab[1], nb_module_find(plain, "0.lora_B.weight")) == 0.0f);
    nb_module_free(plain);
    nb_tensor_free(x), nb_tensor_free(want), nb_tensor_free(got);
    nb_module_free(m);
    nb_module_free(base);
}

static void adapter_for_another_base_is_refused_and_changes_nothing(void) {
    nb_manual_seed(11);
    nb_module *m = mlp(8, 6, 2), *other = mlp(9, 6, 2), *head_only = mlp(8, 6, 2);
    CHECK(nb_lora_apply(m, 2, (const char *[]){"0", "2"}, (nb_lora_opts){.rank = 2, .alpha = 4}) == NB_OK);
    CHECK(nb_lora_save(m, tpath("a.safetensors")) == NB_OK);
    CHECK(nb_lora_load(other, tpath("a.safetensors")) == NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "tensor 'base_model.model.0.lora_A.weight' is [2,8] but layer '0' (a Linear) needs [2,9]");
    CHECK_EQ_INT(nb_lora_count(other), 0); /* nothing wrapped, not even layer 2, which fits */
    CHECK(nb_lora_apply(head_only, 1, (const char *[]){"2"}, (nb_lora_opts){.rank = 2, .alpha = 4}) == NB_OK);
    CHECK(nb_lora_save(head_only, tpath("b.safetensors")) == NB_OK);
    CHECK(nb_lora_load(m, tpath("b.safetensors")) == NB_ERR_IO); /* m's layer 0 has no adapter there */
    CHECK_ERROR(NB_ERR_IO, "no adapter for the model's LoRA layer '0'");
    nb_tensor *w = nb_module_find(other, "0.weight");
    CHECK(nb_safetensors_save(tpath("c.safetensors"), 1, (const char *[]){"0.weight"}, &w, NULL, NULL, 0) == NB_OK);
    CHECK(nb_lora_load(other, tpath("c.safetensors")) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "tensor '0.weight' is not a LoRA adapter's");
    nb_tensor *b = nb_zeros(NB_SHAPE(6, 2));
    CHECK(nb_safetensors_save(tpath("d.safetensors"), 1, (const char *[]){"0.lora_B.weight"}, &b, NULL, NULL, 0) == NB_OK);
    CHECK(nb_lora_load(other, tpath("d.safetensors")) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "layer '0' has no tensor '0.lora_A.weight'");
    CHECK_EQ_INT(nb_lora_count(other), 0);
    nb_tensor_free(b);
    nb_module_free(m), nb_module_free(other), nb_module_free(head_only);
}

/* ---------------------------------------------------------------- transfer learning */

static void sequential_cut_keeps_layers_up_to_the_name(void) {
    nb_manual_seed(12);
    nb_module *m = mlp(8, 6, 2);
    CHECK(nb_sequential_cut(m, "7") == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "no layer '7'");
    CHECK_EQ_INT(nb_module_num_params(m), 4);
    CHECK(nb_sequential_cut(nb_module_child(m, "0"), "0") == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "is a Linear, not a Sequential");
    CHECK(nb_sequential_cut(m, "1") == NB_OK);
    CHECK_EQ_INT(nb_module_num_params(m), 2);
    CHECK(nb_module_child(m, "2") == NULL);
    nb_error_clear();
    CHECK(nb_sequential_append(m, nb_linear_new(6, 5, true)) == NB_OK);
    CHECK(nb_module_find(m, "2.weight") != NULL);
    nb_tensor *x = nb_randn(NB_SHAPE(3, 8)), *y = forward_kept(m, x);
    CHECK(y && nb_size(y, 1) == 5);
    nb_tensor_free(x), nb_tensor_free(y);
    nb_module_free(m);
}

/* One SGD step on a fixed batch; the loss before it. */
static float sgd_step(nb_module *m, nb_optim *o, nb_tensor *x, nb_tensor *y) {
    float loss = NAN;
    nb_scope_begin();
    nb_optim_zero_grad(o);
    nb_tensor *l = nb_cross_entropy(nb_module_forward(m, x), y, NULL);
    loss = nb_item(l);
    CHECK(nb_backward(l) == NB_OK);
    CHECK(nb_optim_step(o) == NB_OK);
    nb_scope_end();
    return loss;
}

static void frozen_backbone_stays_then_unfreezes_at_its_own_lr(void) {
    nb_manual_seed(13);
    nb_module *m = mlp(8, 6, 4);
    CHECK(nb_sequential_cut(m, "1") == NB_OK);
    nb_module *head = nb_linear_new(6, 3, true);
    CHECK(nb_sequential_append(m, head) == NB_OK);
    nb_module_freeze(m, true);
    nb_module_freeze(head, false);
    nb_tensor *all[4];
    CHECK_EQ_INT(nb_module_parameters(m, all, 4), 4);
    CHECK_EQ_INT(nb_module_trainable_parameters(m, NULL, 0), 2);
    nb_optim *o = nb_sgd_new(2, all + 2, (nb_sgd_opts){.lr = 0.1});
    CHECK(nb_optim_add_group(o, 2, all, &(nb_group_opts){.lr = 0.01}) == NB_OK);
    nb_tensor *x = nb_randn(NB_SHAPE(16, 8)), *y = nb_from_int32((int32_t[16]){0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0},
                                                              NB_SHAPE(16));
    nb_tensor *w0 = nb_persist(all[0]), *h0 = nb_persist(all[2]);
    sgd_step(m, o, x, y);
    CHECK(max_diff(w0, all[0]) == 0.0f); /* frozen: skipped */
    CHECK(max_diff(h0, all[2]) > 0.0f);
    nb_module_freeze(m, false);
    /* the backbone's step is lr 0.01 times its gradient: compare with the gradient itself */
    nb_tensor *w1 = nb_persist(all[0]);
    sgd_step(m, o, x, y);
    float *g = values(nb_grad(all[0])), *before = values(w1), *after = values(all[0]), worst = 0;
    for (int i = 0; i < 6 * 8; i++) worst = fmaxf(worst, fabsf(before[i] - 0.01f * g[i] - after[i]));
    CHECK(worst <= 1e-7f && max_diff(w1, all[0]) > 0);
    free(g), free(before), free(after);
    nb_tensor_free(x), nb_tensor_free(y), nb_tensor_free(w0), nb_tensor_free(h0), nb_tensor_free(w1);
    nb_optim_free(o);
    nb_module_free(m);
}

/* The course's layer-wise training: f1 trained with a head, frozen; f2 added with a new head and
 * trained, f1 unchanged; the loss falls at each stage. */
static void layerwise_training_trains_one_layer_at_a_time(void) {
    nb_manual_seed(14);
    nb_tensor *x = nb_randn(NB_SHAPE(32, 6));
    int32_t labels[32];
    float xv[32 * 6];
    nb_copy_to(x, xv, 32 * 6);
    for (int i = 0; i < 32; i++) labels[i] = (xv[6 * i] + xv[6 * i + 1] > 0) + (xv[6 * i + 2] > 0.5f);
    nb_tensor *y = nb_from_int32(labels, NB_SHAPE(32));
    nb_module *layers[] = {nb_linear_new(6, 8, true), nb_activation_new(NB_ACT_TANH, 0), nb_linear_new(8, 3, true)};
    nb_module *m = nb_sequential_new(3, layers);
    float first = NAN, last = NAN;
    for (int stage = 0; stage < 2; stage++) {
        if (stage == 1) { /* freeze f1, replace its head by f2 + a new head */
            CHECK(nb_sequential_cut(m, "1") == NB_OK);
            nb_module_freeze(m, true);
            CHECK(nb_sequential_append(m, nb_linear_new(8, 8, true)) == NB_OK);
            CHECK(nb_sequential_append(m, nb_activation_new(NB_ACT_TANH, 0)) == NB_OK);
            CHECK(nb_sequential_append(m, nb_linear_new(8, 3, true)) == NB_OK);
        }
        nb_tensor *f1 = nb_persist(nb_module_find(m, "0.weight"));
        nb_tensor *params[8];
        int n = nb_module_trainable_parameters(m, params, 8);
        CHECK_EQ_INT(n, 4); /* f1 and its head, then f2 and its head: weights and biases */
        nb_optim *o = nb_sgd_new(n, params, (nb_sgd_opts){.lr = 0.2, .momentum = 0.9});
        float start = NAN, end = NAN;
        for (int step = 0; step < 60; step++) {
            float l = sgd_step(m, o, x, y);
            if (step == 0) start = l;
            end = l;
        }
        if (stage == 0) first = start;
        last = end;
        CHECK(end < start);
        if (stage == 1) CHECK(max_diff(f1, nb_module_find(m, "0.weight")) == 0.0f);
        nb_tensor_free(f1);
        nb_optim_free(o);
    }
    CHECK(last < 0.5f * first);
    nb_tensor_free(x), nb_tensor_free(y);
    nb_module_free(m);
}

static void select_classes_keeps_a_range_relabelled(void) {
    float xs[6] = {0, 1, 2, 3, 4, 5};
    int32_t ys[6] = {5, 0, 7, 9, 4, 6};
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){.n = 6, .sample_ndim = 1, .sample_shape = (int64_t[]){1},
                                                       .x_f32 = xs, .labels = ys});
    nb_dataset *sub = nb_dataset_select_classes(ds, 5, 9);
    CHECK_EQ_INT(nb_dataset_len(sub), 4);
    CHECK_EQ_INT(nb_dataset_info_get(sub).num_classes, 5);
    float want_x[4] = {0, 2, 3, 5}, want_y[4] = {0, 2, 4, 1};
    for (int i = 0; i < 4; i++) {
        float x, y;
        CHECK(nb_dataset_get(sub, i, &x, &y) == NB_OK);
        CHECK(x == want_x[i] && y == want_y[i]);
    }
    CHECK(nb_dataset_select_classes(ds, 1, 3) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "no sample of classes 1 to 3");
    CHECK(nb_dataset_select_classes(ds, 4, 2) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "classes 4 to 2");
    nb_dataset_free(sub);
    nb_dataset_free(ds);
}

int main(void) {
    if (!tmpdir_make("nb_lora")) return 1;
    lora_starts_from_the_base_model_with_a_kaiming_and_b_zero();
    lora_trains_a_and_b_only();
    lora_gradients_match_finite_differences();
    merged_outputs_equal_unmerged_ones();
    unload_leaves_the_plain_model_with_the_update_merged();
    dropout_acts_on_the_adapter_path_in_training_only();
    lora_repr_follows_peft();
    lora_apply_refuses_bad_input_and_changes_nothing();
    adapter_saves_alone_under_peft_names_and_loads_onto_a_base_model();
    adapter_for_another_base_is_refused_and_changes_nothing();
    sequential_cut_keeps_layers_up_to_the_name();
    frozen_backbone_stays_then_unfreezes_at_its_own_lr();
    layerwise_training_trains_one_layer_at_a_time();
    select_classes_keeps_a_range_relabelled();
    tmpdir_remove();
    return check_summary();
}
