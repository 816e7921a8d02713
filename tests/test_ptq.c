/*
 * test_ptq.c — post-training quantization (nabla/quant.h): the integer ops against torch's
 * quantized Linear and Conv2d (tests/golden/ptq.json, tools/gen_golden_ptq.py), PTQ of an MLP
 * and of a small CNN with BatchNorm against their float outputs, the histogram observers, the
 * round trip through a safetensors file, and the errors of bad input.
 */
#include "check.h"
#include "golden_json.h"
#include "tmpdir.h"

#include "nabla/io.h"
#include "nabla/quant.h"

/* The largest |a - b| over two tensors of one shape (INFINITY for other shapes). */
static float max_diff_of(nb_tensor *a, nb_tensor *b) {
    if (nb_ndim(a) != nb_ndim(b) || nb_numel(a) != nb_numel(b)) return INFINITY;
    int64_t n = nb_numel(a);
    float *va = malloc(sizeof(float) * (size_t)n), *vb = malloc(sizeof(float) * (size_t)n), m = 0;
    nb_copy_to(a, va, n);
    nb_copy_to(b, vb, n);
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(va[i] - vb[i]));
    free(va);
    free(vb);
    return m;
}

/* ---- torch's codes */

static void golden_case(const json_t *c) {
    const char *kind = json_string_value(json_object_get(c, "kind"));
    bool conv = !strcmp(kind, "conv");
    nb_scope_begin();
    nb_tensor *x = json_tensor(json_object_get(c, "x"));
    nb_tensor *wf = json_tensor(json_object_get(c, "weight"));
    nb_tensor *w = nb_to_dtype(wf, NB_I8);
    nb_tensor *ws = json_tensor(json_object_get(c, "weight_scale"));
    nb_tensor *wz = nb_to_dtype(json_tensor(json_object_get(c, "weight_zero_point")), NB_I32);
    nb_tensor *b = json_tensor(json_object_get(c, "bias"));
    nb_qlayer_params p = {
        .weight = w, .weight_scale = ws, .weight_zero_point = wz, .bias = b,
        .in_scale = (float)json_number_value(json_object_get(c, "in_scale")),
        .in_zero_point = (int)json_integer_value(json_object_get(c, "in_zero_point")),
        .out_scale = (float)json_number_value(json_object_get(c, "out_scale")),
        .out_zero_point = (int)json_integer_value(json_object_get(c, "out_zero_point")),
        .relu = json_is_true(json_object_get(c, "relu"))};
    nb_tensor *xq = nb_quantize_per_tensor(x, p.in_scale, p.in_zero_point, NB_U8);
    nb_conv2d_opts o = {.groups = 1};
    for (int i = 0; i < 2; i++) {
        o.stride[i] = (int)json_integer_value(json_array_get(json_object_get(c, "stride"), (size_t)i));
        o.padding[i] = (int)json_integer_value(json_array_get(json_object_get(c, "padding"), (size_t)i));
    }
    nb_tensor *y = conv ? nb_quantized_conv2d(xq, &p, &o, NULL) : nb_quantized_linear(xq, &p);
    CHECK(y != NULL);
    if (y) {
        const json_t *want = json_object_get(c, "y_codes");
        CHECK(json_same_shape(y, want));
        CHECK_EQ_INT(nb_dtype_of(y), NB_U8);
        long n;
        double *codes = json_doubles(want, &n);
        float *got = malloc(sizeof(float) * (size_t)n);
        CHECK(nb_copy_to(y, got, n) == NB_OK);
        long differ = 0;
        for (long i = 0; i < n; i++) differ += got[i] != (float)codes[i];
        if (differ) fprintf(stderr, "%s relu %d: %ld of %ld codes differ\n", kind, p.relu, differ, n);
        CHECK_EQ_INT(differ, 0);
        free(got);
        free(codes);
    }
    if (y && conv) { /* a pool of the codes is the pool of their values, ceil mode and padding too */
        nb_pool2d_opts pool = {.kernel = {2, 3}, .padding = {1, 1}, .ceil_mode = true};
        nb_tensor *yp = nb_quantized_conv2d(xq, &p, &o, &pool);
        nb_tensor *want = nb_max_pool2d(nb_dequantize_per_tensor(y, p.out_scale, p.out_zero_point), &pool);
        nb_tensor *got = nb_dequantize_per_tensor(yp, p.out_scale, p.out_zero_point);
        CHECK(got && want && max_diff_of(got, want) == 0.0f);
    }
    nb_scope_end();
}

static void quantized_layers_give_torchs_codes(void) {
    json_t *root = golden_load("tests/golden/ptq.json");
    CHECK(root != NULL);
    if (!root) return;
    const json_t *cases = json_object_get(root, "cases");
    CHECK(json_array_size(cases) == 8);
    for (size_t i = 0; i < json_array_size(cases); i++) golden_case(json_array_get(cases, i));
    json_decref(root);
}

static void quantize_and_dequantize_round_as_torch(void) {
    nb_scope_begin();
    /* 0.125 / 0.25 = 0.5 and 0.375 / 0.25 = 1.5: ties to even; 100 and -100 saturate */
    float v[6] = {0.125f, 0.375f, -0.125f, 100.0f, -100.0f, 0.3f};
    int64_t shape[1] = {6};
    nb_tensor *q = nb_quantize_per_tensor(nb_from_data(v, 1, shape), 0.25f, 10, NB_U8);
    float got[6], want[6] = {10, 12, 10, 255, 0, 11};
    CHECK(nb_copy_to(q, got, 6) == NB_OK);
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(got[i], want[i]);
    nb_tensor *d = nb_dequantize_per_tensor(q, 0.25f, 10);
    CHECK(nb_copy_to(d, got, 6) == NB_OK);
    CHECK_NEAR(got[3], 61.25, 0, 0);
    CHECK_NEAR(got[4], -2.5, 0, 0);
    nb_scope_end();
}

/* ---- PTQ of models */

static nb_module *mlp(void) {
    nb_module *layers[4] = {nb_flatten_new(1, -1), nb_linear_new(36, 32, true),
                            nb_activation_new(NB_ACT_RELU, 0), nb_linear_new(32, 10, true)};
    return nb_sequential_new(4, layers);
}

/* A LeNet-shaped CNN with BatchNorm: conv-bn-relu-pool, conv-relu, flatten, linear. */
static nb_module *cnn(void) {
    nb_conv2d_opts pad = {.padding = {1, 1}};
    nb_module *layers[8] = {
        nb_conv2d_new(1, 4, 3, 3, pad, true), nb_batchnorm2d_new(4, (nb_batchnorm_opts){0}),
        nb_activation_new(NB_ACT_RELU, 0), nb_max_pool2d_new((nb_pool2d_opts){.kernel = {2, 2}}),
        nb_conv2d_new(4, 6, 3, 3, (nb_conv2d_opts){.groups = 1}, true), nb_activation_new(NB_ACT_RELU, 0),
        nb_flatten_new(1, -1), nb_linear_new(6 * 1 * 1, 10, true)};
    return nb_sequential_new(8, layers);
}

/* Gives a BatchNorm running statistics that differ from the identity. */
static void train_batchnorm(nb_module *m, nb_tensor *x) {
    nb_module_train(m, true);
    for (int i = 0; i < 5; i++) nb_tensor_free(nb_module_forward(m, x));
    nb_module_train(m, false);
}

static float max_abs(nb_tensor *a) {
    nb_tensor *z = nb_zeros(nb_ndim(a), nb_shape(a));
    float m = max_diff_of(a, z);
    nb_tensor_free(z);
    return m;
}

/* PTQ with opts of model on x (calibrating on x): the quantized outputs stay within tol of the
 * float ones (relative to the largest output); returns the converted model. */
static nb_module *ptq_close(nb_module *model, nb_tensor *x, const nb_ptq_opts *o, float tol) {
    nb_module_train(model, false);
    nb_tensor *ref = nb_module_forward(model, x);
    nb_ptq *p = nb_ptq_new(model, o);
    CHECK(p != NULL);
    if (!p) return model;
    if (!o->dynamic) CHECK(nb_ptq_calibrate(p, x) == NB_OK);
    CHECK(nb_ptq_convert(p) == NB_OK);
    nb_ptq_free(p);
    nb_tensor *y = nb_module_forward(model, x);
    CHECK(y != NULL);
    if (y && ref) {
        float d = max_diff_of(y, ref), scale = max_abs(ref);
        if (!(d <= tol * scale)) fprintf(stderr, "max diff %g of outputs up to %g\n", d, scale);
        CHECK(d <= tol * scale);
    }
    nb_tensor_free(y);
    nb_tensor_free(ref);
    return model;
}

/* Products big enough to share their panels out over threads (a 25M multiply-add Linear, a
 * 22M one per image of a convolution) give the same codes on two threads as on one. */
static void large_quantized_layers_give_the_same_codes_on_two_threads(void) {
    int threads = nb_get_num_threads();
    nb_scope_begin();
    nb_manual_seed(8);
    int64_t one = 1, xl[2] = {256, 512}, wl[2] = {192, 512}, xc[4] = {2, 16, 40, 40}, wc[4] = {32, 16, 5, 5};
    nb_tensor *ws = nb_full(1, &one, 0.05f), *wz = nb_zeros_dtype(NB_I32, 1, &one);
    nb_tensor *x[2] = {nb_quantize_per_tensor(nb_rand(2, xl), 0.01f, 3, NB_U8),
                       nb_quantize_per_tensor(nb_rand(4, xc), 0.01f, 3, NB_U8)};
    nb_tensor *w[2] = {nb_quantize_per_tensor(nb_randn(2, wl), 0.05f, 0, NB_I8),
                       nb_quantize_per_tensor(nb_randn(4, wc), 0.05f, 0, NB_I8)};
    nb_conv2d_opts pad = {.padding = {2, 2}};
    for (int conv = 0; conv < 2; conv++) {
        nb_qlayer_params p = {.weight = w[conv], .weight_scale = ws, .weight_zero_point = wz,
                              .in_scale = 0.01f, .in_zero_point = 3, .out_scale = conv ? 0.3f : 0.6f,
                              .out_zero_point = 120};
        nb_tensor *y[2];
        for (int t = 0; t < 2; t++) {
            nb_set_num_threads(t + 1);
            y[t] = conv ? nb_quantized_conv2d(x[conv], &p, &pad, NULL) : nb_quantized_linear(x[conv], &p);
        }
        nb_tensor *a = nb_to_dtype(y[0], NB_F32), *b = nb_to_dtype(y[1], NB_F32);
        CHECK(a && b && max_diff_of(a, b) == 0.0f);
        CHECK(a && nb_item(nb_max(a)) > nb_item(nb_min(a))); /* codes that differ */
    }
    nb_set_num_threads(threads);
    nb_scope_end();
}

/* ---- the batched convolution (cpu/qconv.c): chunks of images per GEMM, ranges per thread */

/* A convolution to run batched and image by image: its geometry, weight zero points, the
 * input's zero point, a pool or none, float32 results or codes. */
typedef struct {
    int64_t c, hw, oc, k;
    nb_conv2d_opts conv;
    const nb_pool2d_opts *pool;
    const int32_t *wzp; /* [oc], NULL: symmetric */
    int zx;
    bool float_out;
} qconv_case;

static nb_qlayer_params qconv_params(const qconv_case *cc, nb_tensor *w) {
    int64_t oc = cc->oc;
    return (nb_qlayer_params){.weight = w, .weight_scale = nb_full(1, &oc, 0.02f),
                              .weight_zero_point = cc->wzp ? nb_from_int32(cc->wzp, 1, &oc)
                                                           : nb_zeros_dtype(NB_I32, 1, &oc),
                              .bias = nb_randn(1, &oc), .in_scale = 0.01f, .in_zero_point = cc->zx,
                              .out_scale = cc->float_out ? 0.0f : 0.05f, .out_zero_point = 100,
                              .relu = !cc->float_out};
}

/* The batch of n images in one call gives, bit for bit, what each image gives alone. */
static void batch_equals_each_image(const qconv_case *cc, int64_t n) {
    nb_scope_begin();
    int64_t xs[4] = {n, cc->c, cc->hw, cc->hw}, ws[4] = {cc->oc, cc->c, cc->k, cc->k};
    nb_tensor *x = nb_quantize_per_tensor(nb_rand(4, xs), 0.01f, cc->zx, NB_U8);
    nb_tensor *w = nb_quantize_per_tensor(nb_randn(4, ws), 0.05f, 0, NB_I8);
    nb_qlayer_params p = qconv_params(cc, w);
    nb_tensor *y = nb_quantized_conv2d(x, &p, &cc->conv, cc->pool);
    CHECK(y != NULL);
    nb_tensor *yf = nb_to_dtype(y, NB_F32);
    int64_t differ = 0;
    for (int64_t i = 0; yf && i < n; i++) {
        nb_tensor *xi = nb_contiguous(nb_slice(x, 0, i, i + 1, 1));
        nb_tensor *yi = nb_quantized_conv2d(xi, &p, &cc->conv, cc->pool);
        differ += !yi || max_diff_of(nb_to_dtype(yi, NB_F32), nb_slice(yf, 0, i, i + 1, 1)) != 0.0f;
    }
    if (differ) fprintf(stderr, "batch of %lld: %lld images differ\n", (long long)n, (long long)differ);
    CHECK_EQ_INT(differ, 0);
    CHECK(yf && nb_item(nb_max(yf)) > nb_item(nb_min(yf))); /* results that differ */
    nb_scope_end();
}

static const int32_t mixed_zero_points[6] = {0, 0, 3, 3, -5, 0}; /* three runs of one */
static const nb_pool2d_opts pool_2x2 = {.kernel = {2, 2}};
static const nb_pool2d_opts pool_padded = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1},
                                           .ceil_mode = true};

/* LeNet's two layers (chunks of several images, a partial last one, two thread ranges), and
 * strided, dilated taps (runs of one channel) with a padded pool, a partial group of taps,
 * per-channel zero points and float32 results. */
static void batched_int8_convolution_gives_each_images_results(void) {
    int threads = nb_get_num_threads();
    nb_manual_seed(11);
    qconv_case lenet = {.c = 16, .hw = 14, .oc = 32, .k = 5, .conv = {.padding = {2, 2}}, .pool = &pool_2x2};
    qconv_case first = {.c = 1, .hw = 28, .oc = 16, .k = 5, .conv = {.padding = {2, 2}}, .pool = &pool_2x2};
    qconv_case odd = {.c = 3, .hw = 11, .oc = 6, .k = 3,
                      .conv = {.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}},
                      .pool = &pool_padded, .wzp = mixed_zero_points, .zx = 7};
    const int64_t sizes[3] = {1, 7, 257};
    for (int t = 1; t <= 2; t++) {
        nb_set_num_threads(t);
        for (int s = 0; s < 3; s++) batch_equals_each_image(&lenet, sizes[s]);
        batch_equals_each_image(&first, 33);
    }
    batch_equals_each_image(&odd, 7);
    odd.pool = NULL;
    batch_equals_each_image(&odd, 5);
    odd.float_out = true;
    batch_equals_each_image(&odd, 5);
    nb_set_num_threads(threads);
}

/* With scales 1 and no bias, float32 results are the int32 sums themselves, which the float
 * convolution of (x - zx) by (w - zw) gives exactly (every partial sum is an integer below
 * 2^24): the taps each cell reads, padding and zero points included, are the convolution's.
 * Strided, dilated taps of 3 channels (copied a channel at a time), and LeNet's first layer
 * (one channel: short runs of 5 taps, a partial last group). */
static void int8_convolution_sums_are_the_float_convolutions_of_the_codes(void) {
    nb_scope_begin();
    nb_manual_seed(12);
    int64_t oc = 6, zs[4] = {oc, 1, 1, 1};
    const struct { int64_t x[4], w[4]; nb_conv2d_opts o; } geo[2] = {
        {{3, 3, 11, 9}, {6, 3, 3, 3}, {.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}}},
        {{2, 1, 12, 12}, {6, 1, 5, 5}, {.padding = {2, 2}}}};
    for (int i = 0; i < 2; i++) {
        nb_tensor *x = nb_quantize_per_tensor(nb_rand(4, geo[i].x), 0.004f, 7, NB_U8);
        nb_tensor *w = nb_quantize_per_tensor(nb_randn(4, geo[i].w), 0.02f, 0, NB_I8);
        nb_tensor *wz = nb_from_int32(mixed_zero_points, 1, &oc);
        nb_qlayer_params p = {.weight = w, .weight_scale = nb_full(1, &oc, 1.0f),
                              .weight_zero_point = wz, .in_scale = 1.0f, .in_zero_point = 7};
        nb_tensor *y = nb_quantized_conv2d(x, &p, &geo[i].o, NULL);
        nb_tensor *wf = nb_sub(nb_dequantize_per_tensor(w, 1.0f, 0), nb_reshape(nb_to_dtype(wz, NB_F32), 4, zs));
        nb_tensor *want = nb_conv2d(nb_dequantize_per_tensor(x, 1.0f, 7), wf, NULL, &geo[i].o);
        CHECK(y && want && nb_dtype_of(y) == NB_F32);
        CHECK(y && want && max_diff_of(y, want) == 0.0f);
        CHECK(want && nb_item(nb_max(want)) > 1000.0f); /* sums far from zero */
    }
    nb_scope_end();
}

static void ptq_mlp_matches_float_outputs_in_every_scheme(void) {
    int64_t shape[4] = {64, 1, 6, 6};
    for (int k = 0; k < 8; k++) {
        size_t before = nb_alloc_stats_get().bytes_live;
        nb_manual_seed(7);
        nb_module *m = mlp();
        nb_tensor *x = nb_randn(4, shape);
        nb_ptq_opts o = {.symmetric = k & 1, .per_channel = k & 2, .dynamic = k & 4};
        ptq_close(m, x, &o, 0.05f);
        CHECK_STR_CONTAINS(nb_module_type(nb_module_child(m, "1")),
                           o.dynamic ? "DynamicQuantizedLinear" : "QuantizedLinearReLU");
        CHECK_STR_CONTAINS(nb_module_type(nb_module_child(m, "2")), "Identity");
        nb_quantized_layer_info info[4];
        CHECK_EQ_INT(nb_quantized_layers(m, info, 4), 2);
        CHECK_STR_CONTAINS(info[1].name, "3.weight");
        CHECK(info[0].max_abs_error <= info[0].weight_scale_max / 2 * 1.0001);
        nb_tensor_free(x);
        nb_module_free(m);
        CHECK_BYTES_BACK("PTQ of an MLP", before);
    }
}

static void ptq_cnn_folds_batchnorm_and_matches_float_outputs(void) {
    nb_manual_seed(3);
    nb_module *m = cnn();
    int64_t shape[4] = {32, 1, 6, 6};
    nb_tensor *x = nb_randn(4, shape);
    train_batchnorm(m, x);
    nb_ptq_opts o = {.symmetric = true, .per_channel = true};
    ptq_close(m, x, &o, 0.05f);
    CHECK_STR_CONTAINS(nb_module_type(nb_module_child(m, "0")), "QuantizedConvReLU2d");
    CHECK_STR_CONTAINS(nb_module_type(nb_module_child(m, "1")), "Identity");
    CHECK_STR_CONTAINS(nb_module_type(nb_module_child(m, "3")), "Identity"); /* pooled on codes */
    CHECK_STR_CONTAINS(nb_module_type(nb_module_child(m, "4")), "QuantizedConvReLU2d");
    CHECK_STR_CONTAINS(nb_module_type(nb_module_child(m, "7")), "QuantizedLinear");
    /* the second conv reads the first one's output codes (through ReLU and the pool) */
    nb_tensor *a = nb_module_find(m, "0.scale"), *b = nb_module_find(m, "4.input_scale");
    CHECK(a && b && nb_item(a) == nb_item(b));
    nb_tensor_free(x);
    nb_module_free(m);
}

/* Between two static layers joined by views only, the first returns its uint8 codes and the
 * second takes them as they are: the same codes a dequantize and quantize again would give
 * (so the same model output); across a module that is not a view (Dropout) floats pass. */
static void codes_pass_between_layers_as_dequantize_then_quantize_would(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    nb_manual_seed(6);
    nb_module *m = cnn();
    int64_t shape[4] = {16, 1, 6, 6};
    nb_tensor *x = nb_randn(4, shape);
    train_batchnorm(m, x);
    nb_ptq_opts o = {.symmetric = false, .per_channel = true};
    ptq_close(m, x, &o, 0.05f);
    nb_module *first = nb_module_child(m, "0"), *second = nb_module_child(m, "4");
    nb_tensor *codes = nb_module_forward(first, x);
    CHECK(codes && nb_dtype_of(codes) == NB_U8);
    nb_tensor *s = nb_module_find(m, "0.scale"), *z = nb_module_find(m, "0.zero_point");
    nb_tensor *real = codes ? nb_dequantize_per_tensor(codes, nb_item(s), (int)nb_item(z)) : NULL;
    nb_tensor *from_codes = nb_module_forward(second, codes), *from_real = nb_module_forward(second, real);
    CHECK(from_codes && from_real && nb_dtype_of(from_codes) == NB_U8 && nb_dtype_of(from_real) == NB_U8);
    if (from_codes && from_real) {
        nb_tensor *a = nb_to_dtype(from_codes, NB_F32), *b = nb_to_dtype(from_real, NB_F32);
        CHECK(a && b && max_diff_of(a, b) == 0.0f);
        nb_tensor_free(a);
        nb_tensor_free(b);
    }
    nb_tensor *y = nb_module_forward(m, x); /* the model's output: float32, from the last layer */
    CHECK(y && nb_dtype_of(y) == NB_F32);
    nb_tensor_free(y);
    nb_tensor_free(from_codes);
    nb_tensor_free(from_real);
    nb_tensor_free(real);
    nb_tensor_free(codes);
    nb_tensor_free(x);
    nb_module_free(m);

    nb_module *layers[3] = {nb_linear_new(6, 8, true), nb_dropout_new(0.5f), nb_linear_new(8, 3, true)};
    m = nb_sequential_new(3, layers);
    int64_t xs[2] = {32, 6};
    x = nb_randn(2, xs);
    ptq_close(m, x, &o, 0.05f);
    y = nb_module_forward(nb_module_child(m, "0"), x);
    CHECK(y && nb_dtype_of(y) == NB_F32);
    nb_tensor_free(y);
    nb_tensor_free(x);
    nb_module_free(m);
    CHECK_BYTES_BACK("codes between layers", before);
}

/* The small ResNet's shape: a stem, a block with a downsample, global pooling, a head. */
static void ptq_resnet_folds_every_batchnorm_in_its_blocks(void) {
    nb_manual_seed(4);
    nb_conv2d_opts pad = {.padding = {1, 1}};
    nb_module *layers[7] = {nb_conv2d_new(1, 4, 3, 3, pad, false), nb_batchnorm2d_new(4, (nb_batchnorm_opts){0}),
                            nb_activation_new(NB_ACT_RELU, 0), nb_resnet_basic_block_new(4, 8, 2),
                            nb_global_avg_pool2d_new(), nb_flatten_new(1, -1), nb_linear_new(8, 10, true)};
    nb_module *m = nb_sequential_new(7, layers);
    int64_t shape[4] = {16, 1, 8, 8};
    nb_tensor *x = nb_randn(4, shape);
    train_batchnorm(m, x);
    nb_ptq_opts o = {.symmetric = true, .per_channel = true};
    ptq_close(m, x, &o, 0.08f);
    const char *norms[4] = {"1", "3.bn1", "3.bn2", "3.downsample.1"};
    for (int i = 0; i < 4; i++) CHECK_STR_CONTAINS(nb_module_type(nb_module_child(m, norms[i])), "Identity");
    CHECK_STR_CONTAINS(nb_module_type(nb_module_child(m, "3.conv2")), "QuantizedConv2d");
    CHECK_STR_CONTAINS(nb_module_type(nb_module_child(m, "3.downsample.0")), "QuantizedConv2d");
    CHECK_EQ_INT(nb_quantized_layers(m, NULL, 0), 5);
    nb_tensor_free(x);
    nb_module_free(m);
}

static void histogram_observers_clip_an_outlier(void) {
    nb_scope_begin();
    int64_t shape[1] = {10000};
    nb_manual_seed(1);
    nb_tensor *x = nb_randn(1, shape);
    nb_set(x, (int64_t[]){5}, 60.0f); /* one outlier */
    float scales[3];
    nb_observer_kind kinds[3] = {NB_OBSERVER_MINMAX, NB_OBSERVER_PERCENTILE, NB_OBSERVER_MSE};
    for (int k = 0; k < 3; k++) {
        nb_qscheme q = {.kind = kinds[k], .percentile = 99.9f};
        nb_module *obs = nb_observer_new(&q);
        nb_tensor *s, *z;
        CHECK(nb_module_forward(obs, x) != NULL);
        CHECK(nb_observer_qparams(obs, &s, &z) == NB_OK);
        scales[k] = nb_item(s);
        nb_module_free(obs);
    }
    CHECK(scales[0] > 60.0f / 255.0f);
    CHECK(scales[1] < scales[0] / 5); /* 99.9%: about [-3.3, 3.3] */
    CHECK(scales[2] <= scales[0]); /* clipping one outlier costs more than it saves */
    nb_qscheme per_channel = {.kind = NB_OBSERVER_MSE, .per_channel = true, .channels = 2};
    CHECK(nb_observer_new(&per_channel) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "per tensor only");
    nb_scope_end();
}

static void ptq_with_each_observer_converts(void) {
    for (int k = 0; k < NB_OBSERVER_COUNT; k++) {
        nb_manual_seed(9);
        nb_module *m = mlp();
        int64_t shape[4] = {64, 1, 6, 6};
        nb_tensor *x = nb_randn(4, shape);
        nb_ptq_opts o = {.act_observer = (nb_observer_kind)k, .per_channel = true, .symmetric = true};
        ptq_close(m, x, &o, 0.1f);
        nb_tensor_free(x);
        nb_module_free(m);
    }
}

/* ---- QAT */

/* Converting a QAT MLP gives the int8 model PTQ makes with the QAT's qparams: weight codes
 * whose dequantized values are the fake-quantized weights, the FakeQuantizes' scales, and
 * outputs within a step of the fake-quantized forward's. */
static void converting_a_qat_model_gives_ptqs_int8_model_with_its_qparams(void) {
    nb_manual_seed(11);
    nb_module *f = mlp();
    nb_module *layers[4] = {nb_flatten_new(1, -1), nb_qat_linear_from(nb_module_child(f, "1"), NULL),
                            nb_activation_new(NB_ACT_RELU, 0),
                            nb_qat_linear_from(nb_module_child(f, "3"), NULL)};
    nb_module *m = nb_sequential_new(4, layers);
    int64_t shape[4] = {64, 1, 6, 6};
    nb_tensor *x = nb_randn(4, shape);
    for (int i = 0; i < 3; i++) nb_tensor_free(nb_module_forward(m, x));
    CHECK(nb_fake_quantize_enable_observer(m, false) == NB_OK);
    nb_module_train(m, false);
    nb_tensor *fq_y = nb_module_forward(m, x);
    const char *names[2] = {"1", "3"};
    nb_tensor *fq_w[2], *ws[2], *act_scale[2];
    for (int l = 0; l < 2; l++) {
        char w[32], s[64], a[64];
        snprintf(w, sizeof w, "%s.weight", names[l]);
        snprintf(s, sizeof s, "%s.weight_fake_quant.scale", names[l]);
        snprintf(a, sizeof a, "%s.activation_post_process.scale", names[l]);
        ws[l] = nb_persist(nb_module_find(m, s));
        act_scale[l] = nb_persist(nb_module_find(m, a));
        fq_w[l] = nb_module_forward(nb_module_child(m, (l ? "3.weight_fake_quant" : "1.weight_fake_quant")),
                                    nb_module_find(m, w));
    }
    nb_ptq_opts o = {.per_channel = true, .symmetric = true};
    nb_ptq *p = nb_ptq_new(m, &o);
    CHECK(p != NULL);
    CHECK(nb_ptq_calibrate(p, x) == NB_OK); /* the first layer's input */
    CHECK(nb_ptq_convert(p) == NB_OK);
    nb_ptq_free(p);
    CHECK_STR_CONTAINS(nb_module_type(nb_module_child(m, "1")), "QuantizedLinearReLU");
    for (int l = 0; l < 2; l++) {
        char n[32];
        snprintf(n, sizeof n, "%s.weight_scale", names[l]);
        CHECK(max_diff_of(nb_module_find(m, n), ws[l]) == 0.0f);
        snprintf(n, sizeof n, "%s.scale", names[l]);
        CHECK(nb_item(nb_module_find(m, n)) == nb_item(act_scale[l]));
        snprintf(n, sizeof n, "%s.weight", names[l]);
        nb_tensor *codes = nb_to_dtype(nb_module_find(m, n), NB_F32);
        nb_tensor *col = nb_reshape(ws[l], 2, (int64_t[]){nb_numel(ws[l]), 1});
        nb_tensor *deq = nb_mul(codes, col);
        CHECK(max_diff_of(deq, fq_w[l]) == 0.0f);
        nb_tensor_free(codes);
        nb_tensor_free(col);
        nb_tensor_free(deq);
    }
    CHECK(nb_item(nb_module_find(m, "3.input_scale")) == nb_item(act_scale[0]));
    nb_tensor *y = nb_module_forward(m, x);
    CHECK(y && max_diff_of(y, fq_y) <= 2.01f * nb_item(act_scale[1]));
    nb_tensor_free(y);
    nb_tensor_free(fq_y);
    for (int l = 0; l < 2; l++) nb_tensor_free(fq_w[l]), nb_tensor_free(ws[l]), nb_tensor_free(act_scale[l]);
    nb_tensor_free(x);
    nb_module_free(m);
    nb_module_free(f);
}

/* ---- files */

static void quantized_model_round_trips_through_safetensors_without_float_weights(void) {
    nb_manual_seed(5);
    nb_module *m = cnn();
    int64_t shape[4] = {16, 1, 6, 6};
    nb_tensor *x = nb_randn(4, shape);
    train_batchnorm(m, x);
    nb_ptq_opts o = {.per_channel = true, .symmetric = false, .bits = 6};
    ptq_close(m, x, &o, 0.1f);
    CHECK(nb_quantized_check(m) == NB_OK);
    CHECK(nb_module_save(m, tpath("q.safetensors"), 0, NULL, NULL) == NB_OK);
    nb_safetensors *st = nb_safetensors_open(tpath("q.safetensors"));
    CHECK(st != NULL);
    for (int i = 0; st && i < nb_safetensors_count(st); i++) {
        const char *name = nb_safetensors_name(st, i);
        nb_tensor *t = nb_safetensors_get(st, name);
        size_t len = strlen(name);
        if (len > 7 && !strcmp(name + len - 7, ".weight")) CHECK_EQ_INT(nb_dtype_of(t), NB_I8);
        nb_tensor_free(t);
    }
    nb_safetensors_close(st);

    nb_module *back = cnn(); /* a fresh float model, its structure made quantized, then loaded */
    CHECK(nb_ptq_structure(back, &o) == NB_OK);
    CHECK(nb_module_load(back, tpath("q.safetensors")) == NB_OK);
    CHECK(nb_quantized_check(back) == NB_OK);
    nb_tensor *y0 = nb_module_forward(m, x), *y1 = nb_module_forward(back, x);
    CHECK(y0 && y1 && max_diff_of(y0, y1) == 0.0f);
    nb_tensor_free(y0);
    nb_tensor_free(y1);
    nb_tensor_free(x);
    nb_module_free(m);
    nb_module_free(back);
}

/* ---- bad input */

static void bad_options_and_uncalibrated_models_are_refused(void) {
    nb_module *m = mlp();
    nb_ptq_opts o = {.bits = 9};
    CHECK(nb_ptq_new(m, &o) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "bits 9 is outside [2, 8]");
    o.bits = 1;
    CHECK(nb_ptq_new(m, &o) == NULL);
    o = (nb_ptq_opts){.percentile = 20.0f, .act_observer = NB_OBSERVER_PERCENTILE};
    CHECK(nb_ptq_new(m, &o) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "percentile 20");
    o = (nb_ptq_opts){0};
    nb_ptq *p = nb_ptq_new(m, &o);
    CHECK(p != NULL);
    CHECK(nb_ptq_convert(p) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "no calibration batch");
    CHECK_STR_CONTAINS(nb_module_type(nb_module_child(m, "1")), "Linear");
    nb_ptq_free(p);
    nb_module *act = nb_activation_new(NB_ACT_RELU, 0);
    CHECK(nb_ptq_new(act, &o) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "no Linear or Conv2d");
    nb_module_free(act);
    nb_module_free(m);
}

static void bad_scales_and_zero_points_are_named(void) {
    nb_module *m = mlp();
    nb_ptq_opts o = {.per_channel = true};
    CHECK(nb_ptq_structure(m, &o) == NB_OK);
    CHECK(nb_quantized_check(m) == NB_OK);
    int64_t i = 5;
    nb_tensor *ws = nb_module_find(m, "1.weight_scale");
    nb_set(ws, &i, -0.25f);
    CHECK(nb_quantized_check(m) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "'1.weight_scale'[5] = -0.25");
    nb_set(ws, &i, NAN);
    CHECK(nb_quantized_check(m) == NB_ERR_ARG);
    nb_set(ws, &i, 0.0f);
    CHECK(nb_quantized_check(m) == NB_ERR_ARG);
    nb_set(ws, &i, 1.0f);
    nb_set(nb_module_find(m, "3.zero_point"), (int64_t[]){0}, 300.0f);
    CHECK(nb_quantized_check(m) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "'3.zero_point'[0] = 300 is outside [0, 255]");
    /* and the layer refuses to run with it */
    int64_t shape[4] = {2, 1, 6, 6};
    nb_tensor *x = nb_randn(4, shape);
    CHECK(nb_module_forward(m, x) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "output zero point 300");
    nb_tensor_free(x);
    nb_module_free(m);
}

static void integer_ops_refuse_wrong_dtypes_and_qparams(void) {
    nb_scope_begin();
    int64_t shape[2] = {2, 3};
    nb_tensor *x = nb_zeros(2, shape);
    CHECK(nb_quantize_per_tensor(x, 0.0f, 0, NB_U8) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "scale 0 is not finite and positive");
    CHECK(nb_quantize_per_tensor(x, 1.0f, 256, NB_U8) == NULL);
    CHECK(nb_quantize_per_tensor(x, 1.0f, 0, NB_I32) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_DTYPE);
    nb_tensor *q = nb_quantize_per_tensor(x, 1.0f, 0, NB_U8);
    nb_qlayer_params p = {.weight = nb_zeros_dtype(NB_I8, 2, shape),
                          .weight_scale = nb_full_dtype(NB_F32, 1, (int64_t[]){1}, 1.0f),
                          .weight_zero_point = nb_zeros_dtype(NB_I32, 1, (int64_t[]){1}),
                          .in_scale = 1.0f, .out_scale = 1.0f};
    CHECK(nb_quantized_linear(q, &p) != NULL);
    CHECK(nb_quantized_linear(x, &p) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_DTYPE);
    p.in_scale = NAN;
    CHECK(nb_quantized_linear(q, &p) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "input scale nan");
    nb_scope_end();
}

int main(void) {
    if (!tmpdir_make("nabla_ptq")) return 1;
    quantize_and_dequantize_round_as_torch();
    quantized_layers_give_torchs_codes();
    large_quantized_layers_give_the_same_codes_on_two_threads();
    batched_int8_convolution_gives_each_images_results();
    int8_convolution_sums_are_the_float_convolutions_of_the_codes();
    ptq_mlp_matches_float_outputs_in_every_scheme();
    ptq_cnn_folds_batchnorm_and_matches_float_outputs();
    codes_pass_between_layers_as_dequantize_then_quantize_would();
    ptq_resnet_folds_every_batchnorm_in_its_blocks();
    histogram_observers_clip_an_outlier();
    ptq_with_each_observer_converts();
    converting_a_qat_model_gives_ptqs_int8_model_with_its_qparams();
    quantized_model_round_trips_through_safetensors_without_float_weights();
    bad_options_and_uncalibrated_models_are_refused();
    bad_scales_and_zero_points_are_named();
    integer_ops_refuse_wrong_dtypes_and_qparams();
    tmpdir_remove();
    return check_summary();
}
