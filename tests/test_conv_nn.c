/*
 * test_conv_nn.c — the convolutional modules and blocks against PyTorch: outputs, input and
 * parameter gradients, running statistics, state_dict names, parameter counts and reprs from
 * tests/golden/conv_nn.json (tools/gen_golden_conv_nn.py); then what golden vectors cannot
 * show: Dropout2d's statistics, the default initialisation's bounds, ownership with no scope
 * open, save/load by name, and error messages.
 *
 * Golden tolerances are atol = rtol = 1e-5, blocks included: torch's references are float64 runs
 * on the same float32 values, so the difference is this library's float32 rounding alone.
 */
#include "check.h"
#include "golden_json.h"
#include "tmpdir.h"

#define GOLDEN_PATH "tests/golden/conv_nn.json"
#define GOLDEN_TOL 1e-5

static nb_module *conv(int64_t in, int64_t out, int k, nb_conv2d_opts o, bool bias) {
    return nb_conv2d_new(in, out, k, k, o, bias);
}
static nb_module *relu(void) { return nb_activation_new(NB_ACT_RELU, 0); }
static nb_module *bn2d(int64_t c, nb_batchnorm_opts o) { return nb_batchnorm2d_new(c, o); }
static nb_module *maxpool(int k) { return nb_max_pool2d_new((nb_pool2d_opts){.kernel = {k, k}}); }

/* The course's LeNet: conv5(1->16, pad 2) ReLU pool2 conv5(16->32, pad 2) ReLU pool2 Flatten
 * Linear(1568, 128) ReLU Linear(128, 10). */
static nb_module *lenet(void) {
    nb_conv2d_opts pad2 = {.padding = {2, 2}};
    nb_module *layers[] = {conv(1, 16, 5, pad2, true), relu(), maxpool(2), conv(16, 32, 5, pad2, true), relu(),
                           maxpool(2), nb_flatten_new(1, -1), nb_linear_new(1568, 128, true), relu(),
                           nb_linear_new(128, 10, true)};
    return nb_sequential_new(10, layers);
}

/* ---------------------------------------------------------------- golden cases */

/* The module each case of conv_nn.json was generated from, built the same way here. */
static nb_module *build_case(const char *name) {
    const nb_batchnorm_opts plain = {0};
#define IS(s) (!strcmp(name, s))
    if (IS("conv2d_pad1")) return conv(3, 4, 3, (nb_conv2d_opts){.padding = {1, 1}}, true);
    if (IS("conv2d_stride_dilation_groups"))
        return nb_conv2d_new(4, 6, 3, 2, (nb_conv2d_opts){.stride = {2, 1}, .padding = {1, 0},
                                                          .dilation = {1, 2}, .groups = 2}, true);
    if (IS("conv2d_same_no_bias")) return conv(2, 3, 3, (nb_conv2d_opts){.same = true, .dilation = {2, 2}}, false);
    if (IS("conv2d_unbatched")) return conv(2, 3, 2, (nb_conv2d_opts){0}, true);
    if (IS("conv_transpose2d"))
        return nb_conv_transpose2d_new(4, 2, 3, 3, (nb_conv_transpose2d_opts){.stride = {2, 2}, .padding = {1, 1},
                                                                              .output_padding = {1, 1}}, true);
    if (IS("conv_transpose2d_groups"))
        return nb_conv_transpose2d_new(4, 6, 2, 2, (nb_conv_transpose2d_opts){.stride = {2, 2}, .groups = 2}, true);
    if (IS("maxpool2d")) return maxpool(2);
    if (IS("maxpool2d_stride_pad"))
        return nb_max_pool2d_new((nb_pool2d_opts){.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
    if (IS("avgpool2d")) return nb_avg_pool2d_new((nb_pool2d_opts){.kernel = {2, 2}});
    if (IS("avgpool2d_exclude_pad"))
        return nb_avg_pool2d_new((nb_pool2d_opts){.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1},
                                                 .exclude_pad = true});
    if (IS("global_avgpool2d")) return nb_global_avg_pool2d_new();
    if (IS("upsample_nearest")) return nb_upsample_new(2, false);
    if (IS("upsample_bilinear")) return nb_upsample_new(2, true);
    if (IS("dropout2d_eval")) return nb_dropout2d_new(0.5f);
    if (IS("unflatten")) return nb_unflatten_new(3, (int64_t[]){2, 3, 4});
    if (IS("bn2d_train") || IS("bn2d_eval")) return bn2d(3, plain);
    if (IS("bn2d_no_affine_train")) return bn2d(3, (nb_batchnorm_opts){.no_affine = true});
    if (IS("bn2d_eps_momentum_train")) return bn2d(2, (nb_batchnorm_opts){.eps = 1e-3f, .momentum = 0.3f});
    if (IS("basic_identity")) return nb_resnet_basic_block_new(3, 3, 1);
    if (IS("basic_downsample") || IS("basic_downsample_eval")) return nb_resnet_basic_block_new(2, 4, 2);
    if (IS("bottleneck")) return nb_resnet_bottleneck_new(4, 2, 1);
    if (IS("bottleneck_identity")) return nb_resnet_bottleneck_new(8, 2, 1);
    if (IS("bottleneck_stride2")) return nb_resnet_bottleneck_new(4, 2, 2);
    if (IS("mobilenet")) return nb_mobilenet_block_new(3, 5, 2);
    if (IS("unet")) return nb_unet_new(1, 2, 2, 2);
    if (IS("small_cnn")) {
        nb_conv2d_opts pad1 = {.padding = {1, 1}};
        nb_module *layers[] = {nb_unflatten_new(3, (int64_t[]){1, 8, 8}), conv(1, 4, 3, pad1, true), relu(),
                               maxpool(2), conv(4, 6, 3, pad1, true), bn2d(6, plain), relu(),
                               nb_global_avg_pool2d_new(), nb_flatten_new(1, -1), nb_linear_new(6, 3, true)};
        return nb_sequential_new(10, layers);
    }
#undef IS
    return NULL;
}

static json_t *golden;

/* The module's repr, as nb_module_fprint writes it, into a malloc'd string. */
static char *repr_of(const nb_module *m) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    nb_module_fprint(f, m);
    fclose(f);
    return text;
}

static void check_repr(const char *what, const nb_module *m, const char *torch_text) {
    char *text = repr_of(m);
    size_t n = strlen(torch_text);
    if (strncmp(text, torch_text, n) || strcmp(text + n, "\n"))
        CHECK_FAIL_("%s: repr differs from torch's:\n%s\nwant:\n%s", what, text, torch_text);
    else check_passed_++;
    free(text);
}

static void run_golden_case(const json_t *c) {
    const char *cname = json_string_value(json_object_get(c, "name"));
    nb_module *m = build_case(cname);
    if (!m) {
        CHECK_FAIL_("golden case '%s' has no builder [%s]", cname, nb_error_message());
        return;
    }
    check_repr(cname, m, json_string_value(json_object_get(c, "repr")));
    CHECK_EQ_INT(nb_module_num_elements(m), json_integer_value(json_object_get(c, "num_elements")));
    check_golden_module(cname, m, c, GOLDEN_TOL);
    nb_module_free(m);
}

static void modules_and_blocks_match_torch_golden_vectors(void) {
    const json_t *cases = json_object_get(golden, "cases");
    CHECK(json_array_size(cases) >= 28);
    for (size_t i = 0; i < json_array_size(cases); i++) run_golden_case(json_array_get(cases, i));
}

/* ---------------------------------------------------------------- structure */

static int64_t golden_count(const char *key) {
    return (int64_t)json_integer_value(json_object_get(json_object_get(golden, "counts"), key));
}

/* ((kh kw) C_in / groups + 1) C_out for a Conv2d with bias; torch's sums for the rest. */
static void parameter_counts_follow_the_formula_and_torch(void) {
    struct { nb_module *m; int64_t want; } cases[] = {
        {nb_conv2d_new(3, 8, 5, 3, (nb_conv2d_opts){.groups = 1}, true), (5 * 3 * 3 + 1) * 8},
        {nb_conv2d_new(4, 6, 3, 3, (nb_conv2d_opts){.groups = 2}, true), (3 * 3 * 4 / 2 + 1) * 6},
        {nb_conv2d_new(8, 8, 3, 3, (nb_conv2d_opts){.groups = 8}, false), 3 * 3 * 1 * 8},
        {nb_conv2d_new(1, 16, 5, 5, (nb_conv2d_opts){.padding = {2, 2}}, true), (5 * 5 * 1 + 1) * 16},
        {nb_conv_transpose2d_new(4, 6, 2, 2, (nb_conv_transpose2d_opts){.groups = 2}, true), 4 * 3 * 2 * 2 + 6},
        {nb_batchnorm2d_new(16, (nb_batchnorm_opts){0}), 32},
        {lenet(), golden_count("lenet")},
        {nb_resnet_basic_block_new(64, 64, 1), golden_count("resnet18_layer1_block")},
        {nb_resnet_bottleneck_new(256, 128, 2), golden_count("resnet50_layer2_first")},
        {nb_unet_new(3, 1, 8, 3), golden_count("unet_3_1_8_3")},
    };
    CHECK_EQ_INT(golden_count("lenet"), 215370);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK_EQ_INT(nb_module_num_elements(cases[i].m), cases[i].want);
        nb_module_free(cases[i].m);
    }
}

static void reprs_match_torch(void) {
    const json_t *reprs = json_object_get(golden, "reprs");
    struct { const char *key; nb_module *m; } cases[] = {
        {"lenet", lenet()},
        {"conv_transpose_dilated",
         nb_conv_transpose2d_new(4, 6, 2, 2, (nb_conv_transpose2d_opts){.stride = {2, 2}, .output_padding = {1, 1},
                                                                        .dilation = {2, 2}}, true)},
        {"maxpool_rect", nb_max_pool2d_new((nb_pool2d_opts){.kernel = {2, 3}, .padding = {1, 1}, .ceil_mode = true})},
        {"dropout2d", nb_dropout2d_new(0.25f)},
        {"unflatten_1", nb_unflatten_new(1, (int64_t[]){784})},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        check_repr(cases[i].key, cases[i].m, json_string_value(json_object_get(reprs, cases[i].key)));
        nb_module_free(cases[i].m);
    }
}

/* The attribute of d named `name`, or NULL. */
static const nb_attr *attr_named(const nb_attrs *d, const char *name) {
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->attr[i].name, name)) return &d->attr[i];
    return NULL;
}

/* What an exporter reads: every option by name, the defaults the repr leaves out included. */
static void conv_description_holds_the_options_its_repr_leaves_out(void) {
    nb_module *conv = nb_conv2d_new(3, 8, 3, 5, (nb_conv2d_opts){.groups = 1}, true);
    nb_attrs d;
    CHECK_EQ_INT(nb_module_describe(conv, &d), NB_OK);
    static const char *const names[] = {"in_channels", "out_channels", "kernel_size", "stride",
                                        "padding", "dilation", "groups", "bias"};
    CHECK_EQ_INT(d.n, 8);
    for (int i = 0; i < d.n && i < 8; i++) CHECK(!strcmp(d.attr[i].name, names[i]));
    const nb_attr *k = attr_named(&d, "kernel_size"), *p = attr_named(&d, "padding");
    CHECK(k && k->kind == NB_ATTR_INTS && k->n == 2 && k->ints[0] == 3 && k->ints[1] == 5);
    CHECK(p && p->kind == NB_ATTR_INTS && p->ints[0] == 0 && (p->flags & NB_ATTR_NO_REPR));
    CHECK(attr_named(&d, "in_channels")->flags & NB_ATTR_POSITIONAL);
    CHECK(attr_named(&d, "bias")->ints[0] == 1 && (attr_named(&d, "bias")->flags & NB_ATTR_NO_REPR));
    check_repr("conv 3x5", conv, "Conv2d(3, 8, kernel_size=(3, 5), stride=(1, 1))");
    nb_module_free(conv);
    /* a pool's equal sides print as one int, but the description keeps both */
    nb_module *pool = nb_avg_pool2d_new((nb_pool2d_opts){.kernel = {2, 2}, .exclude_pad = true});
    CHECK_EQ_INT(nb_module_describe(pool, &d), NB_OK);
    k = attr_named(&d, "kernel_size");
    CHECK(k && k->n == 2 && (k->flags & NB_ATTR_SHORT));
    CHECK(attr_named(&d, "count_include_pad") && attr_named(&d, "count_include_pad")->ints[0] == 0);
    check_repr("avgpool 2", pool, "AvgPool2d(kernel_size=2, stride=2, padding=0)");
    nb_module_free(pool);
}

/* The UNet's tree, by the paths a torch state dict uses. */
static void unet_children_follow_the_documented_layout(void) {
    nb_module *u = nb_unet_new(1, 2, 4, 3);
    static const struct { const char *path, *type; } kids[] = {
        {"enc", "ModuleList"},   {"enc.0", "Sequential"},   {"enc.2.3", "Conv2d"}, {"pool", "MaxPool2d"},
        {"bottom", "Sequential"}, {"up.0", "ConvTranspose2d"}, {"dec.2.4", "BatchNorm2d"}, {"head", "Conv2d"},
    };
    for (size_t i = 0; i < sizeof kids / sizeof *kids; i++) {
        nb_module *c = nb_module_child(u, kids[i].path);
        CHECK(c && !strcmp(nb_module_type(c), kids[i].type));
    }
    /* channels double per level: enc.2 makes 16, the bottom 32, up.0 halves back to 16 */
    CHECK_EQ_INT(nb_size(nb_module_find(u, "enc.2.0.weight"), 0), 16);
    CHECK_EQ_INT(nb_size(nb_module_find(u, "bottom.3.weight"), 0), 32);
    CHECK_EQ_INT(nb_size(nb_module_find(u, "up.0.weight"), 0), 32);
    CHECK_EQ_INT(nb_size(nb_module_find(u, "up.0.weight"), 1), 16);
    CHECK_EQ_INT(nb_size(nb_module_find(u, "dec.0.0.weight"), 1), 32); /* skip 16 + up 16 */
    CHECK_EQ_INT(nb_size(nb_module_find(u, "head.weight"), 0), 2);
    CHECK(nb_module_find(u, "dec.2.1.running_var") != NULL);
    nb_module_train(u, false);
    CHECK(!nb_module_is_training(nb_module_child(u, "dec.1.4")));
    nb_module_free(u);
}

/* ---------------------------------------------------------------- initialisation */

/* Every value within +-bound, the largest near it, and the variance bound^2 / 3 of a uniform. */
static void check_uniform(const char *what, const nb_tensor *t, double bound) {
    int64_t n = nb_numel(t);
    float *v = malloc(sizeof(float) * (size_t)n);
    nb_copy_to(t, v, n);
    double max = 0, sum2 = 0;
    for (int64_t i = 0; i < n; i++) {
        max = fabs(v[i]) > max ? fabs(v[i]) : max;
        sum2 += (double)v[i] * v[i];
    }
    free(v);
    if (max > bound * (1 + 1e-6)) CHECK_FAIL_("%s: |value| %g exceeds the bound %g", what, max, bound);
    else check_passed_++;
    if (n >= 1000) {
        CHECK_NEAR(max, bound, 0.01 * bound, 0);
        CHECK_NEAR(sum2 / (double)n, bound * bound / 3, 0.05 * bound * bound / 3, 0);
    }
}

static void default_init_is_uniform_within_inverse_sqrt_fan_in(void) {
    nb_manual_seed(3);
    nb_module *c = nb_conv2d_new(16, 32, 5, 5, (nb_conv2d_opts){0}, true);
    check_uniform("Conv2d weight", nb_module_find(c, "weight"), 1 / sqrt(16.0 * 25));
    check_uniform("Conv2d bias", nb_module_find(c, "bias"), 1 / sqrt(16.0 * 25));
    nb_module *g = nb_conv2d_new(32, 64, 3, 3, (nb_conv2d_opts){.groups = 4}, true); /* fan_in 8 * 9 */
    check_uniform("grouped Conv2d weight", nb_module_find(g, "weight"), 1 / sqrt(8.0 * 9));
    /* ConvTranspose2d: weight [C_in, C_out / g, kh, kw], torch's fan_in = C_out / g kh kw */
    nb_module *t = nb_conv_transpose2d_new(64, 12, 4, 4, (nb_conv_transpose2d_opts){.groups = 2}, true);
    CHECK_EQ_INT(nb_size(nb_module_find(t, "weight"), 0), 64);
    CHECK_EQ_INT(nb_size(nb_module_find(t, "weight"), 1), 6);
    check_uniform("ConvTranspose2d weight", nb_module_find(t, "weight"), 1 / sqrt(6.0 * 16));
    check_uniform("ConvTranspose2d bias", nb_module_find(t, "bias"), 1 / sqrt(6.0 * 16));
    /* BatchNorm2d starts as the identity map: weight 1, bias 0, running var 1 */
    nb_module *b = nb_batchnorm2d_new(4, (nb_batchnorm_opts){0});
    CHECK_TENSOR("bn weight", nb_module_find(b, "weight"), ((double[]){1, 1, 1, 1}), 4, 0, 0);
    CHECK_TENSOR("bn bias", nb_module_find(b, "bias"), ((double[]){0, 0, 0, 0}), 4, 0, 0);
    CHECK_TENSOR("bn running_var", nb_module_find(b, "running_var"), ((double[]){1, 1, 1, 1}), 4, 0, 0);
    nb_module_free(c);
    nb_module_free(g);
    nb_module_free(t);
    nb_module_free(b);
}

/* ---------------------------------------------------------------- Dropout2d */

static void dropout2d_zeroes_whole_channels_with_probability_p(void) {
    enum { N = 100, C = 100, H = 3, W = 4 };
    const float p = 0.3f;
    nb_module *d = nb_dropout2d_new(p);
    nb_scope_begin();
    nb_tensor *x = nb_ones(NB_SHAPE(N, C, H, W));
    nb_set_requires_grad(x, true);
    nb_manual_seed(11);
    nb_tensor *y = nb_module_forward(d, x);
    const float *v = host_vals(y);
    long zeros = 0, mixed = 0, bad = 0;
    for (long ch = 0; ch < N * C; ch++) {
        const float *map = v + ch * H * W;
        for (int k = 0; k < H * W; k++) mixed += map[k] != map[0];
        if (map[0] == 0.0f) zeros++;
        else if (fabsf(map[0] - 1.0f / (1.0f - p)) > 1e-6f) bad++;
    }
    CHECK_EQ_INT(mixed, 0); /* a channel is dropped or kept as a whole */
    CHECK_EQ_INT(bad, 0);
    CHECK_NEAR((double)zeros / (N * C), p, 4 * sqrt(p * (1 - p) / (N * C)), 0);
    /* d sum(y) / dx = mask / (1 - p) = y, since x is 1 */
    CHECK_EQ_INT(nb_backward(nb_sum(y)), NB_OK);
    const float *g = host_vals(nb_grad(x));
    long differ = 0;
    for (long i = 0; i < N * C * H * W; i++) differ += g[i] != v[i];
    CHECK_EQ_INT(differ, 0);

    /* one sample [C, H, W]: a mask per channel */
    nb_tensor *one = nb_module_forward(d, nb_ones(NB_SHAPE(C, H, W)));
    mixed = 0;
    const float *ov = host_vals(one);
    for (long ch = 0; ch < C; ch++)
        for (int k = 0; k < H * W; k++) mixed += ov[ch * H * W + k] != ov[ch * H * W];
    CHECK_EQ_INT(mixed, 0);
    CHECK(nb_module_forward(d, nb_ones(NB_SHAPE(4, 5))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "Dropout2d: expected [N, C, H, W] or [C, H, W], got [4,5]");

    /* eval, and p = 0: the identity; p = 1: zeros */
    nb_module_train(d, false);
    nb_tensor *same = nb_module_forward(d, x);
    CHECK(same == x);
    CHECK(nb_module_forward(d, nb_ones(NB_SHAPE(4, 5))) != NULL); /* any shape passes in eval */
    nb_module *all = nb_dropout2d_new(1.0f);
    CHECK_NEAR(nb_item(nb_sum(nb_module_forward(all, x))), 0, 0, 0);
    nb_scope_end();
    nb_module_free(all);
    nb_module_free(d);
}

/* ---------------------------------------------------------------- memory and files */

/* With no scope open the caller owns every result: a forward and backward through the blocks,
 * in training and in eval, must leave nothing behind. */
static void heap_mode_forward_backward_leaves_nothing_behind(void) {
    for (int training = 0; training < 2; training++) {
        nb_alloc_stats before = nb_alloc_stats_get();
        nb_module *models[] = {
            nb_resnet_basic_block_new(2, 4, 2), nb_resnet_basic_block_new(2, 2, 1),
            nb_resnet_bottleneck_new(2, 1, 2),  nb_mobilenet_block_new(2, 3, 1),
            nb_unet_new(2, 1, 2, 2),            build_case("small_cnn"),
            nb_sequential_new(3, (nb_module *[]){nb_dropout2d_new(0.5f), nb_upsample_new(2, true),
                                                 nb_avg_pool2d_new((nb_pool2d_opts){.kernel = {2, 2}})}),
            build_case("conv_transpose2d_groups"),
        };
        for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
            nb_module_train(models[i], training);
            nb_tensor *x = i == 5 ? nb_randn(NB_SHAPE(2, 64)) : i == 7 ? nb_randn(NB_SHAPE(2, 4, 3, 3))
                                                                        : nb_randn(NB_SHAPE(2, 2, 8, 8));
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

/* A block saved by state_dict names loads into another one built with other random weights. */
static void saved_block_loads_by_name_and_computes_the_same(void) {
    const char *path = tpath("conv_nn_block.safetensors"); /* the guarded twin runs at once */
    nb_manual_seed(1);
    nb_module *a = nb_resnet_basic_block_new(3, 6, 2);
    nb_manual_seed(2);
    nb_module *b = nb_resnet_basic_block_new(3, 6, 2);
    nb_scope_begin(); /* one training step, so the running statistics are not the defaults */
    nb_module_forward(a, nb_randn(NB_SHAPE(4, 3, 6, 6)));
    nb_scope_end();
    CHECK_EQ_INT(nb_module_save(a, path, 0, NULL, NULL), NB_OK);
    CHECK_EQ_INT(nb_module_load(b, path), NB_OK);
    remove(path);
    nb_module_train(a, false);
    nb_module_train(b, false);
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(2, 3, 6, 6));
    nb_tensor *ya = nb_module_forward(a, x), *yb = nb_module_forward(b, x);
    CHECK(ya && yb && nb_item(nb_max(nb_abs(nb_sub(ya, yb)))) == 0.0f);
    nb_scope_end();
    CHECK_NEAR(nb_item(nb_module_find(b, "bn1.num_batches_tracked")), 1, 0, 0);
    nb_module_free(a);
    nb_module_free(b);
}

/* Issue 7, item 18: BatchNorm2d folds into the Conv2d before it, as into a Linear.  Strided,
 * padded, grouped convolutions with and without a bias, BN with and without affine; the folded
 * conv's eval output is the unfolded pair's to 1e-5, and folding draws no random numbers. */
static void folded_conv_equals_batchnorm_of_conv_in_eval(void) {
    const nb_conv2d_opts opts[] = {{.padding = {1, 1}}, {.stride = {2, 1}, .groups = 2, .dilation = {1, 2}}};
    for (int k = 0; k < 4; k++) {
        nb_manual_seed(21 + (uint64_t)k);
        bool bias = k & 1;
        nb_module *c = nb_conv2d_new(4, 6, 3, 3, opts[k / 2], bias);
        nb_module *b = bn2d(6, (nb_batchnorm_opts){.no_affine = k == 3, .eps = 1e-3f});
        if (k != 3) {
            nb_init_normal(nb_module_find(b, "weight"), 1.0f, 0.5f);
            nb_init_normal(nb_module_find(b, "bias"), 0.0f, 1.0f);
        }
        nb_init_normal(nb_module_find(b, "running_mean"), 0.0f, 1.0f);
        nb_init_uniform(nb_module_find(b, "running_var"), 0.5f, 2.0f);
        nb_module_train(c, false);
        nb_module_train(b, false);
        nb_generator before = nb_rng_get_state();
        nb_module *f = nb_conv2d_fold_batchnorm(c, b);
        nb_generator after = nb_rng_get_state();
        CHECK(f && before.offset == after.offset && !nb_module_is_training(f));
        CHECK(f && nb_module_num_params(f) == 2);
        nb_scope_begin();
        nb_tensor *x = nb_randn(NB_SHAPE(2, 4, 7, 8));
        nb_tensor *want = nb_module_forward(b, nb_module_forward(c, x)), *got = f ? nb_module_forward(f, x) : NULL;
        CHECK(want && got && nb_numel(want) == nb_numel(got));
        if (want && got) {
            int64_t n = nb_numel(want);
            float *wf = malloc(sizeof(float) * (size_t)n);
            double *w = malloc(sizeof(double) * (size_t)n);
            nb_copy_to(want, wf, n);
            for (int64_t i = 0; i < n; i++) w[i] = wf[i];
            CHECK_TENSOR("folded conv", got, w, n, 1e-5, 1e-5);
            free(wf);
            free(w);
        }
        nb_scope_end();
        nb_module_free(f);
        nb_module_free(c);
        nb_module_free(b);
    }
    nb_module *c = conv(3, 4, 3, (nb_conv2d_opts){0}, true), *b = bn2d(5, (nb_batchnorm_opts){0});
    nb_module *b1 = nb_batchnorm1d_new(4, (nb_batchnorm_opts){0});
    CHECK(nb_conv2d_fold_batchnorm(c, b) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "BatchNorm2d(5) cannot follow a Conv2d with 4 outputs");
    CHECK(nb_conv2d_fold_batchnorm(c, b1) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "fold_batchnorm: needs a Conv2d and a BatchNorm2d");
    CHECK(nb_conv2d_fold_batchnorm(NULL, b) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "needs a Conv2d");
    nb_module_free(c);
    nb_module_free(b);
    nb_module_free(b1);
}

/* ---------------------------------------------------------------- errors */

static void constructors_reject_bad_arguments(void) {
    CHECK(nb_conv2d_new(0, 4, 3, 3, (nb_conv2d_opts){0}, true) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Conv2d: channels and kernel sizes must be positive, got in=0 out=4");
    CHECK(nb_conv2d_new(4, 4, 3, 0, (nb_conv2d_opts){0}, true) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "kernel=(3, 0)");
    CHECK(nb_conv2d_new(4, 6, 3, 3, (nb_conv2d_opts){.groups = 3}, true) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Conv2d: groups=3 must be positive and divide in_channels=4 and out_channels=6");
    CHECK(nb_conv2d_new(4, 6, 3, 3, (nb_conv2d_opts){.groups = -2}, true) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "groups=-2");
    CHECK(nb_conv2d_new(4, 6, 3, 3, (nb_conv2d_opts){.stride = {-1, 1}}, true) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Conv2d: stride must be >= 1, got (-1, 1)");
    CHECK(nb_conv2d_new(4, 6, 3, 3, (nb_conv2d_opts){.padding = {0, -1}}, true) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Conv2d: padding must be >= 0, got (0, -1)");
    CHECK(nb_conv2d_new(4, 6, 3, 3, (nb_conv2d_opts){.dilation = {-2, -2}}, true) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "dilation must be >= 1");
    CHECK(nb_conv2d_new(4, 6, 3, 3, (nb_conv2d_opts){.same = true, .stride = {2, 2}}, true) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "padding='same' is not supported for strided convolutions");
    CHECK(nb_conv_transpose2d_new(4, 6, 3, 3, (nb_conv_transpose2d_opts){.stride = {2, 2},
                                                                         .output_padding = {2, 0}}, true) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "ConvTranspose2d: output_padding (2, 0) must be smaller than either stride (2, 2) "
                            "or dilation (1, 1)");
    CHECK(nb_conv_transpose2d_new(4, 5, 3, 3, (nb_conv_transpose2d_opts){.groups = 2}, true) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "ConvTranspose2d: groups=2 must be positive and divide");
    CHECK(nb_max_pool2d_new((nb_pool2d_opts){0}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "MaxPool2d: kernel_size must be >= 1, got (0, 0)");
    CHECK(nb_avg_pool2d_new((nb_pool2d_opts){.kernel = {2, 2}, .padding = {2, 2}}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "AvgPool2d: padding (2, 2) should be at most half of the kernel size (2, 2)");
    CHECK(nb_avg_pool2d_new((nb_pool2d_opts){.kernel = {2, 2}, .stride = {-1, 0}}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "AvgPool2d: stride must be >= 0");
    CHECK(nb_upsample_new(0, false) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Upsample: scale must be a positive integer, got 0");
    CHECK(nb_dropout2d_new(1.5f) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Dropout2d: probability has to be between 0 and 1, but got 1.5");
    CHECK(nb_dropout2d_new(NAN) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "between 0 and 1");
    CHECK(nb_unflatten_new(0, (int64_t[]){1}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Unflatten: needs 1 to 7 sizes, got 0");
    CHECK(nb_unflatten_new(2, (int64_t[]){1, 0}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Unflatten: sizes must be positive, got [1,0]");
    CHECK(nb_batchnorm2d_new(0, (nb_batchnorm_opts){0}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "BatchNorm2d: num_features must be positive, got 0");
    CHECK(nb_resnet_basic_block_new(4, 8, 0) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "BasicBlock: channels must be positive and stride >= 1, got in=4 out=8 stride=0");
    CHECK(nb_resnet_bottleneck_new(0, 8, 1) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Bottleneck: channels must be positive");
    CHECK(nb_mobilenet_block_new(4, -1, 1) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "MobileNetBlock: channels must be positive");
    CHECK(nb_mobilenet_block_new((int64_t)1 << 32, 4, 1) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "MobileNetBlock: in_channels=4294967296 is too large");
    CHECK(nb_unet_new(1, 2, 4, 0) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "UNet: channels must be positive and depth 1 to 8, got in=1 out=2 base=4 depth=0");
    CHECK(nb_unet_new(1, 2, 4, 9) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "depth=9");
}

static void forwards_reject_bad_inputs_with_a_message(void) {
    nb_module *b = nb_batchnorm2d_new(3, (nb_batchnorm_opts){0}), *u = nb_unet_new(1, 2, 2, 2);
    nb_module *un = nb_unflatten_new(3, (int64_t[]){1, 8, 8}), *c = conv(3, 4, 3, (nb_conv2d_opts){0}, true);
    nb_scope_begin();
    CHECK(nb_module_forward(b, nb_randn(NB_SHAPE(2, 3, 4))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "BatchNorm2d: expected [N, 3, H, W], got [2,3,4]");
    CHECK(nb_module_forward(b, nb_randn(NB_SHAPE(2, 4, 4, 4))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "BatchNorm2d: expected [N, 3, H, W], got [2,4,4,4]");
    CHECK(nb_module_forward(b, nb_randn(NB_SHAPE(1, 3, 1, 1))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "BatchNorm2d: expected more than 1 value per channel when training");
    CHECK(nb_module_forward(u, nb_randn(NB_SHAPE(1, 1, 15, 16))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "UNet: expected [N, C, H, W] with H and W divisible by 2^2 = 4, got [1,1,15,16]");
    CHECK(nb_module_forward(nb_module_child(u, "enc"), nb_randn(NB_SHAPE(1, 1, 4, 4))) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "ModuleList: has no forward");
    CHECK(nb_module_forward(un, nb_randn(NB_SHAPE(2, 10))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "Unflatten: input [2,10] does not hold 64 values per sample for the shape [1,8,8]");
    CHECK(nb_module_forward(c, nb_randn(NB_SHAPE(2, 4, 5, 5))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "conv2d: input [2,4,5,5] has 4 channels but weight [4,3,3,3] expects 3");
    CHECK(nb_module_forward(c, NULL) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "Conv2d");
    nb_scope_end();
    nb_module_free(b);
    nb_module_free(u);
    nb_module_free(un);
    nb_module_free(c);
}

int main(void) {
    golden = golden_load(GOLDEN_PATH);
    if (!golden || !tmpdir_make("nb_conv_nn")) return 1;
    modules_and_blocks_match_torch_golden_vectors();
    parameter_counts_follow_the_formula_and_torch();
    reprs_match_torch();
    conv_description_holds_the_options_its_repr_leaves_out();
    unet_children_follow_the_documented_layout();
    default_init_is_uniform_within_inverse_sqrt_fan_in();
    dropout2d_zeroes_whole_channels_with_probability_p();
    heap_mode_forward_backward_leaves_nothing_behind();
    saved_block_loads_by_name_and_computes_the_same();
    folded_conv_equals_batchnorm_of_conv_in_eval();
    constructors_reject_bad_arguments();
    forwards_reject_bad_inputs_with_a_message();
    tmpdir_remove();
    json_decref(golden);
    return check_summary();
}
