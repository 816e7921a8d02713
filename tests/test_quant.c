/*
 * test_quant.c — quantization-aware training (nabla/quant.h): the fake-quantization ops, the
 * observers, FakeQuantize and the QAT Linear.
 *
 * Against torch (tests/golden/quant.json, tools/gen_golden_quant.py, all float32): the
 * fake-quant outputs and their input gradients bit for bit, on inputs with exact rounding ties
 * and values far beyond the range; the learnable ops' scale and zero-point gradients, sums that
 * associate differently, within SUM_TOL; the observers' min_val, max_val, scale and zero point,
 * FakeQuantize's outputs and qparams through a freeze of its observer, bit for bit, and the
 * learnable one's (torch's _LearnableFakeQuantize, LSQ's gradient scale on) with its scale and
 * zero-point gradients within SUM_TOL.
 *
 * Finite differences where the output is smooth: between rounding edges the output is
 * piecewise constant, so d out / d x = 0 and d out / d s = clamp(q) - z (k) for a fixed code;
 * the learnable scale gradient is that derivative plus LSQ's straight-through term -x / s on the
 * codes inside the range (Esser et al.: d round(v) / dv taken as 1), which the test checks
 * element by element against central differences of sum(out * r).
 *
 * Then training: an MLP of two QAT Linears with 4-bit weights learns a synthetic problem with
 * SGD (the loss falls to a quarter), also after its observers are frozen, and with LSQ scales;
 * and the refusals of bad arguments.
 */
#include "check.h"
#include "nabla.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#define GOLDEN_PATH "tests/golden/quant.json"
#define SUM_TOL 1e-5 /* relative, for gradients that are sums over the tensor */
#define MAX_N 512

/* ---- reading the golden file */

/* The numbers of a JSON array ("nan", "inf", "-inf" as strings) into out; the count, or -1. */
static long floats_of(const json_t *a, float *out, long cap) {
    if (!json_is_array(a) || (long)json_array_size(a) > cap) return -1;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *v = json_array_get(a, i);
        const char *s = json_string_value(v);
        out[i] = s ? (s[0] == 'n' ? NAN : s[0] == '-' ? -INFINITY : INFINITY)
                   : (float)json_number_value(v);
    }
    return (long)json_array_size(a);
}

static nb_tensor *tensor_of(const json_t *a, int ndim, const int64_t *shape) {
    float v[MAX_N];
    long n = floats_of(a, v, MAX_N);
    return n < 0 ? NULL : nb_from_data(v, ndim, shape);
}

static int shape_of(const json_t *c, int64_t *shape) {
    const json_t *s = json_object_get(c, "shape");
    for (size_t d = 0; d < json_array_size(s); d++)
        shape[d] = json_integer_value(json_array_get(s, d));
    return (int)json_array_size(s);
}

static int int_of(const json_t *c, const char *key) {
    return (int)json_integer_value(json_object_get(c, key));
}

/* Every element of t equals want bit for bit (NaN matching NaN). */
static void check_exact(const char *what, const char *name, nb_tensor *t, const json_t *want) {
    float w[MAX_N], got[MAX_N];
    long n = floats_of(want, w, MAX_N);
    if (!t || n != nb_numel(t) || nb_copy_to(t, got, n) != NB_OK) {
        CHECK_FAIL_("%s %s: no tensor of %ld elements [%s]", name, what, n, nb_error_message());
        return;
    }
    for (long i = 0; i < n; i++)
        if (!(got[i] == w[i] || (isnan(got[i]) && isnan(w[i])))) {
            CHECK_FAIL_("%s %s[%ld]: %.9g, torch %.9g", name, what, i, got[i], w[i]);
            return;
        }
    check_passed_++;
}

static double worst_sum_diff; /* of the check_close comparisons, relative to 1 + max |want| */

static void check_close(const char *what, const char *name, nb_tensor *t, const json_t *want,
                        double rtol) {
    float w[MAX_N], got[MAX_N];
    long n = floats_of(want, w, MAX_N);
    if (!t || n != nb_numel(t) || nb_copy_to(t, got, n) != NB_OK) {
        CHECK_FAIL_("%s %s: no tensor of %ld elements", name, what, n);
        return;
    }
    double scale = 0, worst = 0;
    for (long i = 0; i < n; i++) scale = fmax(scale, fabs(w[i]));
    for (long i = 0; i < n; i++) worst = fmax(worst, fabs((double)got[i] - w[i]));
    worst_sum_diff = fmax(worst_sum_diff, worst / (1 + scale));
    if (worst <= rtol * (1 + scale)) check_passed_++;
    else CHECK_FAIL_("%s %s: off by %.3g (scale %.3g)", name, what, worst, scale);
}

/* ---- the ops against torch */

typedef struct {
    nb_tensor *x, *scale, *zp, *r;
    int axis, qmin, qmax;
} fq_inputs;

static fq_inputs inputs_of(const json_t *c, const char *zp_key, const json_t *zp_from) {
    int64_t shape[NB_MAX_DIMS], n_ch;
    int nd = shape_of(c, shape);
    n_ch = (int64_t)json_array_size(json_object_get(c, "scale"));
    fq_inputs in = {.axis = int_of(c, "axis"), .qmin = int_of(c, "qmin"),
                    .qmax = int_of(c, "qmax")};
    in.x = tensor_of(json_object_get(c, "x"), nd, shape);
    in.r = tensor_of(json_object_get(c, "r"), nd, shape);
    in.scale = tensor_of(json_object_get(c, "scale"), 1, &n_ch);
    in.zp = tensor_of(json_object_get(zp_from, zp_key), 1, &n_ch);
    nb_set_requires_grad(in.x, true);
    return in;
}

static void fake_quantize_matches_torch_bit_for_bit(const json_t *c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    nb_scope_begin();
    fq_inputs in = inputs_of(c, "zero_point", c);
    nb_tensor *y = in.axis < 0
                       ? nb_fake_quantize_per_tensor(in.x, in.scale, in.zp, in.qmin, in.qmax,
                                                     NB_STE_CLIPPED)
                       : nb_fake_quantize_per_channel(in.x, in.scale, in.zp, in.axis, in.qmin,
                                                      in.qmax, NB_STE_CLIPPED);
    check_exact("output", name, y, json_object_get(c, "out"));
    CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(y, in.r))), NB_OK);
    check_exact("dx (clipped STE)", name, nb_grad(in.x), json_object_get(c, "dx"));
    nb_scope_end();
}

static void learnable_fake_quantize_matches_torch(const json_t *c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    const json_t *l = json_object_get(c, "learnable");
    float gf = (float)json_number_value(json_object_get(l, "grad_factor"));
    nb_scope_begin();
    fq_inputs in = inputs_of(c, "zero_point", l);
    nb_set_requires_grad(in.scale, true);
    nb_set_requires_grad(in.zp, true);
    nb_tensor *y = in.axis < 0
                       ? nb_fake_quantize_learnable_per_tensor(in.x, in.scale, in.zp, in.qmin,
                                                               in.qmax, gf)
                       : nb_fake_quantize_learnable_per_channel(in.x, in.scale, in.zp, in.axis,
                                                                in.qmin, in.qmax, gf);
    check_exact("learnable output", name, y, json_object_get(l, "out"));
    CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(y, in.r))), NB_OK);
    check_exact("learnable dx", name, nb_grad(in.x), json_object_get(l, "dx"));
    check_close("learnable dscale", name, nb_grad(in.scale), json_object_get(l, "dscale"), SUM_TOL);
    check_close("learnable dzero_point", name, nb_grad(in.zp), json_object_get(l, "dzero_point"),
                SUM_TOL);
    nb_scope_end();
}

/* ---- finite differences between rounding edges */

/* sum(fq(x; s) * r) in double, per tensor, z = 3, range [0, 15] */
static double loss_at(const float *x, const float *r, int n, float s, bool learnable) {
    double l = 0;
    nb_scope_begin();
    nb_tensor *xt = nb_from_data(x, 1, (int64_t[]){n});
    nb_tensor *st = nb_full(1, (int64_t[]){1}, s), *zt = nb_full(1, (int64_t[]){1}, 3.0f);
    nb_tensor *y = learnable ? nb_fake_quantize_learnable_per_tensor(xt, st, zt, 0, 15, 1.0f)
                             : nb_fake_quantize_per_tensor(xt, st, zt, 0, 15, NB_STE_CLIPPED);
    float out[64];
    nb_copy_to(y, out, n);
    for (int i = 0; i < n; i++) l += (double)out[i] * r[i];
    nb_scope_end();
    return l;
}

/* Inputs x = (k + f) s with f in [-0.3, 0.3], codes from below to above the range, so a step
 * of h in s or x moves no code across a rounding edge. */
static void scale_gradient_is_the_derivative_plus_the_ste_term(void) {
    enum { N = 40 };
    const float s = 0.5f, h = 0x1p-12f;
    float x[N], r[N];
    uint64_t state = 7;
    for (int i = 0; i < N; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        float f = (float)((state >> 40) % 601) / 1000.0f - 0.3f; /* [-0.3, 0.3] */
        x[i] = ((float)(i - 10) + f) * s;                       /* codes -7 .. 32 around z = 3 */
        r[i] = (float)((state >> 20) % 1000) / 500.0f - 1.0f;
    }
    /* d/ds by central differences: the output is (clamp(q) - z) s, linear in s per element */
    double fd = (loss_at(x, r, N, s + h, true) - loss_at(x, r, N, s - h, true)) / (2 * h);
    double want_fd = 0, ste = 0;
    for (int i = 0; i < N; i++) {
        float q = 3.0f + nearbyintf(x[i] / s);
        float k = fminf(fmaxf(q, 0.0f), 15.0f) - 3.0f;
        want_fd += (double)r[i] * k;
        if (q >= 0 && q <= 15) ste -= (double)r[i] * x[i] / s;
    }
    CHECK_NEAR(fd, want_fd, 1e-3, 1e-4);
    nb_scope_begin();
    nb_tensor *xt = nb_from_data(x, 1, (int64_t[]){N}), *rt = nb_from_data(r, 1, (int64_t[]){N});
    nb_tensor *st = nb_full(1, (int64_t[]){1}, s), *zt = nb_full(1, (int64_t[]){1}, 3.0f);
    nb_set_requires_grad(xt, true);
    nb_set_requires_grad(st, true);
    CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(
                     nb_fake_quantize_learnable_per_tensor(xt, st, zt, 0, 15, 1.0f), rt))),
                 NB_OK);
    CHECK_NEAR(nb_item(nb_grad(st)), fd + ste, 1e-3, 1e-4);
    /* d/dx: zero by finite differences; the estimator passes r inside the range, 0 outside */
    float gx[N];
    nb_copy_to(nb_grad(xt), gx, N);
    for (int i = 0; i < N; i++) {
        float xp[N], xm[N];
        memcpy(xp, x, sizeof x);
        memcpy(xm, x, sizeof x);
        xp[i] += h;
        xm[i] -= h;
        double d = (loss_at(xp, r, N, s, false) - loss_at(xm, r, N, s, false)) / (2 * h);
        float q = 3.0f + nearbyintf(x[i] / s);
        CHECK(d == 0.0);
        CHECK(gx[i] == (q >= 0 && q <= 15 ? r[i] : 0.0f));
    }
    nb_scope_end();
}

static void plain_ste_passes_the_gradient_everywhere(void) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){-10, 0.3f, 9, 100}, 1, (int64_t[]){4});
    nb_tensor *s = nb_full(1, (int64_t[]){1}, 0.5f), *z = nb_zeros(1, (int64_t[]){1});
    nb_set_requires_grad(x, true);
    nb_tensor *y = nb_fake_quantize_per_tensor(x, s, z, -8, 7, NB_STE_PLAIN);
    float out[4], g[4];
    nb_copy_to(y, out, 4);
    CHECK(out[0] == -4.0f && out[1] == 0.5f && out[2] == 3.5f && out[3] == 3.5f);
    CHECK_EQ_INT(nb_backward(nb_sum(y)), NB_OK);
    nb_copy_to(nb_grad(x), g, 4);
    CHECK(g[0] == 1 && g[1] == 1 && g[2] == 1 && g[3] == 1);
    nb_scope_end();
}

/* ---- observers and FakeQuantize against torch */

static nb_qscheme scheme_of(const json_t *c) {
    return (nb_qscheme){
        .kind = strcmp(json_string_value(json_object_get(c, "kind")), "minmax") == 0
                    ? NB_OBSERVER_MINMAX
                    : NB_OBSERVER_MOVING_AVERAGE,
        .bits = int_of(c, "bits"),
        .is_signed = json_is_true(json_object_get(c, "signed")),
        .symmetric = json_is_true(json_object_get(c, "symmetric")),
        .per_channel = json_is_true(json_object_get(c, "per_channel")),
        .ch_axis = int_of(c, "ch_axis"),
        .channels = 4, /* the golden tensors are [3, 4, 2], observed along dim 1 */
    };
}

static void case_name(char *buf, size_t cap, const json_t *c) {
    snprintf(buf, cap, "%s %s %d-bit %s %s", json_string_value(json_object_get(c, "kind")),
             json_is_true(json_object_get(c, "per_channel")) ? "per-channel" : "per-tensor",
             int_of(c, "bits"), json_is_true(json_object_get(c, "signed")) ? "signed" : "unsigned",
             json_is_true(json_object_get(c, "symmetric")) ? "symmetric" : "affine");
}

static nb_tensor *buffer(nb_module *m, const char *name) { return nb_module_find(m, name); }

static void observer_matches_torch(const json_t *c) {
    char name[128];
    case_name(name, sizeof name, c);
    nb_qscheme q = scheme_of(c);
    int qmin, qmax;
    CHECK_EQ_INT(nb_qscheme_range(&q, &qmin, &qmax), NB_OK);
    CHECK_EQ_INT(qmin, int_of(c, "qmin"));
    CHECK_EQ_INT(qmax, int_of(c, "qmax"));
    nb_module *obs = nb_observer_new(&q);
    CHECK(obs != NULL);
    int64_t shape[NB_MAX_DIMS];
    int nd = shape_of(c, shape);
    const json_t *steps = json_object_get(c, "steps");
    for (size_t k = 0; obs && k < json_array_size(steps); k++) {
        const json_t *st = json_array_get(steps, k);
        nb_scope_begin();
        nb_tensor *x = tensor_of(json_object_get(st, "x"), nd, shape);
        nb_tensor *y = nb_module_forward(obs, x);
        CHECK(y == x);
        check_exact("min_val", name, buffer(obs, "min_val"), json_object_get(st, "min_val"));
        check_exact("max_val", name, buffer(obs, "max_val"), json_object_get(st, "max_val"));
        nb_tensor *scale, *zp;
        CHECK_EQ_INT(nb_observer_qparams(obs, &scale, &zp), NB_OK);
        check_exact("scale", name, scale, json_object_get(st, "scale"));
        check_exact("zero_point", name, zp, json_object_get(st, "zero_point"));
        nb_scope_end();
    }
    nb_module_free(obs);
}

static void fake_quantize_module_matches_torch(const json_t *c) {
    char name[128];
    case_name(name, sizeof name, c);
    nb_module *fq = nb_fake_quantize_new(&(nb_fake_quantize_opts){.scheme = scheme_of(c)});
    CHECK(fq != NULL);
    int64_t shape[NB_MAX_DIMS];
    int nd = shape_of(c, shape);
    const json_t *steps = json_object_get(c, "steps");
    for (size_t k = 0; fq && k < json_array_size(steps); k++) {
        const json_t *st = json_array_get(steps, k);
        if (k == 3) CHECK_EQ_INT(nb_fake_quantize_enable_observer(fq, false), NB_OK);
        nb_scope_begin();
        nb_tensor *x = tensor_of(json_object_get(st, "x"), nd, shape);
        check_exact("output", name, nb_module_forward(fq, x), json_object_get(st, "out"));
        check_exact("scale", name, buffer(fq, "scale"), json_object_get(st, "scale"));
        check_exact("zero_point", name, buffer(fq, "zero_point"),
                    json_object_get(st, "zero_point"));
        nb_scope_end();
    }
    nb_module_free(fq);
}

/* _LearnableFakeQuantize (LSQ's gradient scale on): outputs and qparams bit for bit, their
 * gradients (sums, accumulated over the steps) within SUM_TOL. */
static void learnable_fake_quantize_module_matches_torch(const json_t *c) {
    char name[128];
    case_name(name, sizeof name, c);
    nb_fake_quantize_opts o = {.scheme = scheme_of(c), .learnable = true, .grad_scaling = true};
    nb_module *fq = nb_fake_quantize_new(&o);
    CHECK(fq != NULL);
    int64_t shape[NB_MAX_DIMS];
    int nd = shape_of(c, shape);
    const json_t *steps = json_object_get(c, "steps");
    for (size_t k = 0; fq && k < json_array_size(steps); k++) {
        const json_t *st = json_array_get(steps, k);
        if (k == 3) CHECK_EQ_INT(nb_fake_quantize_enable_observer(fq, false), NB_OK);
        nb_scope_begin();
        nb_tensor *x = tensor_of(json_object_get(st, "x"), nd, shape);
        nb_tensor *y = nb_module_forward(fq, x);
        check_exact("LSQ output", name, y, json_object_get(st, "out"));
        nb_tensor *scale = nb_module_find(fq, "scale"), *zp = nb_module_find(fq, "zero_point");
        check_exact("LSQ scale", name, scale, json_object_get(st, "scale"));
        check_exact("LSQ zero_point", name, zp, json_object_get(st, "zero_point"));
        CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(y, tensor_of(json_object_get(st, "r"), nd, shape)))),
                     NB_OK);
        check_close("LSQ dscale", name, nb_grad(scale), json_object_get(st, "dscale"), SUM_TOL);
        check_close("LSQ dzero_point", name, nb_grad(zp), json_object_get(st, "dzero_point"),
                    SUM_TOL);
        nb_scope_end();
    }
    nb_module_free(fq);
}

static void golden(void) {
    json_error_t err;
    json_t *root = json_load_file(GOLDEN_PATH, 0, &err);
    if (!root) {
        CHECK_FAIL_("%s: %s; run from the repository root or /usr/bin/python3 "
                    "tools/gen_golden_quant.py", GOLDEN_PATH, err.text);
        return;
    }
    const json_t *a = json_object_get(root, "fake_quant");
    CHECK(json_array_size(a) > 0);
    for (size_t i = 0; i < json_array_size(a); i++) {
        fake_quantize_matches_torch_bit_for_bit(json_array_get(a, i));
        learnable_fake_quantize_matches_torch(json_array_get(a, i));
    }
    a = json_object_get(root, "observers");
    CHECK(json_array_size(a) > 0);
    for (size_t i = 0; i < json_array_size(a); i++) observer_matches_torch(json_array_get(a, i));
    a = json_object_get(root, "fake_quantize_modules");
    CHECK(json_array_size(a) > 0);
    for (size_t i = 0; i < json_array_size(a); i++)
        fake_quantize_module_matches_torch(json_array_get(a, i));
    a = json_object_get(root, "learnable_modules");
    CHECK(json_array_size(a) > 0);
    for (size_t i = 0; i < json_array_size(a); i++)
        learnable_fake_quantize_module_matches_torch(json_array_get(a, i));
    printf("learnable fake quantization: scale and zero-point gradients vs torch: worst "
           "|diff| / (1 + max |torch|) = %.3g; outputs and dx bit for bit\n", worst_sum_diff);
    json_decref(root);
}

/* ---- training */

/* Three classes of points in the plane-like 8-D space: class = which of three directions the
 * point is nearest; a 4-bit-weight MLP 8-32-3 learns it with SGD. */
static double train_qat_mlp(const nb_qat_opts *opts, int steps, int freeze_at, double *first) {
    nb_manual_seed(5);
    nb_module *mlp = nb_sequential_new(3, (nb_module *const[]){nb_qat_linear_new(8, 32, true, opts),
                                                              nb_activation_new(NB_ACT_RELU, 0),
                                                              nb_qat_linear_new(32, 3, true, opts)});
    nb_tensor *params[16];
    int np = nb_module_parameters(mlp, params, 16);
    nb_optim *sgd = nb_sgd_new(np, params, (nb_sgd_opts){.lr = 0.2f, .momentum = 0.9f});
    double last = NAN;
    float frozen = NAN;
    for (int step = 0; mlp && sgd && step < steps; step++) {
        if (step == freeze_at) { /* the whole model's observers, qparams fixed from here */
            CHECK_EQ_INT(nb_fake_quantize_enable_observer(mlp, false), NB_OK);
            nb_tensor *scale = nb_module_find(mlp, "2.activation_post_process.scale");
            frozen = scale ? nb_item(scale) : NAN;
        }
        nb_scope_begin();
        nb_tensor *x = nb_randn(2, (int64_t[]){64, 8});
        nb_tensor *cls = nb_argmax(nb_slice(x, 1, 0, 3, 1), 1, false);
        nb_tensor *loss = nb_cross_entropy(nb_module_forward(mlp, x), cls, NULL);
        last = loss ? nb_item(loss) : NAN;
        if (step == 0) *first = last;
        nb_optim_zero_grad(sgd);
        if (nb_backward(loss) != NB_OK || nb_optim_step(sgd) != NB_OK) last = NAN;
        nb_scope_end();
    }
    /* frozen qparams stay as the freeze left them; LSQ's scales train on */
    nb_tensor *act_scale = nb_module_find(mlp, "2.activation_post_process.scale");
    nb_tensor *w_scale = nb_module_find(mlp, "0.weight_fake_quant.scale");
    if (!opts->learnable) CHECK(act_scale && nb_item(act_scale) == frozen);
    if (opts->learnable) {
        nb_scope_begin();
        CHECK(w_scale && nb_grad(w_scale) && nb_item(nb_sum(nb_abs(nb_grad(w_scale)))) > 0);
        CHECK(act_scale && nb_item(act_scale) != frozen);
        nb_scope_end();
    }
    nb_optim_free(sgd);
    nb_module_free(mlp);
    return last;
}

static void qat_mlp_with_4bit_weights_learns(void) {
    double first, last = train_qat_mlp(&(nb_qat_opts){.weight_bits = 4}, 300, 200, &first);
    printf("QAT 4-bit weights: loss %.4f -> %.4f\n", first, last);
    CHECK(last < 0.25 * first);
    last = train_qat_mlp(&(nb_qat_opts){.weight_bits = 4, .learnable = true}, 300, 100, &first);
    printf("QAT 4-bit weights, LSQ scales: loss %.4f -> %.4f\n", first, last);
    CHECK(last < 0.25 * first);
}

/* ---- refusals */

static void bad_arguments_fail_naming_the_argument(void) {
    nb_scope_begin();
    nb_tensor *x = nb_zeros(2, (int64_t[]){2, 3});
    nb_tensor *one = nb_full(1, (int64_t[]){1}, 1.0f), *zero = nb_zeros(1, (int64_t[]){1});
    float bad_scales[] = {0.0f, -0.5f, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        CHECK(!nb_fake_quantize_per_tensor(x, nb_full(1, (int64_t[]){1}, bad_scales[i]), zero, 0,
                                           15, NB_STE_CLIPPED));
        CHECK_ERROR(NB_ERR_ARG, "scale[0]");
        CHECK(!nb_fake_quantize_learnable_per_tensor(x, nb_full(1, (int64_t[]){1}, bad_scales[i]),
                                                     zero, 0, 15, 1.0f));
        CHECK_ERROR(NB_ERR_ARG, "scale[0]");
    }
    CHECK(!nb_fake_quantize_per_tensor(x, one, nb_full(1, (int64_t[]){1}, 16), 0, 15,
                                       NB_STE_CLIPPED));
    CHECK_ERROR(NB_ERR_ARG, "zero_point[0] = 16");
    CHECK(!nb_fake_quantize_per_tensor(x, one, nb_full(1, (int64_t[]){1}, 2.5f), 0, 15,
                                       NB_STE_CLIPPED));
    CHECK_ERROR(NB_ERR_ARG, "zero_point[0] = 2.5");
    CHECK(!nb_fake_quantize_per_channel(x, nb_from_data((float[]){1, 1, -1}, 1, (int64_t[]){3}),
                                        nb_zeros(1, (int64_t[]){3}), 1, 0, 15, NB_STE_CLIPPED));
    CHECK_ERROR(NB_ERR_ARG, "scale[2] = -1");
    CHECK(!nb_fake_quantize_per_channel(x, one, zero, 1, 0, 15, NB_STE_CLIPPED));
    CHECK_ERROR(NB_ERR_SHAPE, "must have 3 elements");
    CHECK(!nb_fake_quantize_per_channel(x, one, zero, 2, 0, 15, NB_STE_CLIPPED));
    CHECK_ERROR(NB_ERR_SHAPE, "axis 2");
    CHECK(!nb_fake_quantize_per_tensor(x, one, zero, 5, 4, NB_STE_CLIPPED));
    CHECK_ERROR(NB_ERR_ARG, "quant_min 5");
    CHECK(!nb_fake_quantize_per_tensor(x, one, zero, 0, 15, (nb_ste)7));
    CHECK_ERROR(NB_ERR_ARG, "ste");
    CHECK(!nb_fake_quantize_learnable_per_tensor(x, one, zero, 0, 15, NAN));
    CHECK_ERROR(NB_ERR_ARG, "grad_factor");
    nb_tensor *s = nb_full(1, (int64_t[]){1}, 1.0f);
    nb_set_requires_grad(s, true);
    CHECK(!nb_fake_quantize_per_tensor(x, s, zero, 0, 15, NB_STE_CLIPPED));
    CHECK_ERROR(NB_ERR_ARG, "with respect to scale");
    nb_scope_end();
    int bits[] = {1, 9, -3};
    for (int i = 0; i < 3; i++) {
        CHECK(!nb_observer_new(&(nb_qscheme){.bits = bits[i]}));
        CHECK_ERROR(NB_ERR_ARG, "bits");
        CHECK(!nb_fake_quantize_new(&(nb_fake_quantize_opts){.scheme = {.bits = bits[i]}}));
        CHECK_ERROR(NB_ERR_ARG, "bits");
        CHECK(!nb_qat_linear_new(4, 2, true, &(nb_qat_opts){.weight_bits = bits[i]}));
        CHECK_ERROR(NB_ERR_ARG, "bits");
    }
    CHECK(!nb_qat_linear_new(4, 2, true, &(nb_qat_opts){.act_bits = 1}));
    CHECK_ERROR(NB_ERR_ARG, "Linear (QAT): activation_post_process: FakeQuantize: observer: "
                            "qscheme: bits 1 is outside [2, 8]");
    CHECK(!nb_observer_new(&(nb_qscheme){.per_channel = true}));
    CHECK_ERROR(NB_ERR_ARG, "channels");
    CHECK(!nb_observer_new(&(nb_qscheme){.kind = NB_OBSERVER_MOVING_AVERAGE,
                                         .averaging_constant = 1.5f}));
    CHECK_ERROR(NB_ERR_ARG, "averaging_constant");
    nb_module *obs = nb_observer_new(&(nb_qscheme){.per_channel = true, .channels = 3});
    nb_scope_begin();
    CHECK(!nb_module_forward(obs, nb_zeros(2, (int64_t[]){2, 4})));
    CHECK_ERROR(NB_ERR_SHAPE, "size 3");
    nb_scope_end();
    CHECK_EQ_INT(nb_fake_quantize_enable_observer(obs, false), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "a PerChannelMinMaxObserver holds no FakeQuantize");
    nb_module_free(obs);
}

static void qat_linear_has_torch_names(void) {
    nb_module *m = nb_qat_linear_new(5, 3, true, NULL);
    const char *want_params[] = {"weight", "bias"};
    const char *want_buffers[] = {
        "weight_fake_quant.scale", "weight_fake_quant.zero_point",
        "weight_fake_quant.activation_post_process.min_val",
        "weight_fake_quant.activation_post_process.max_val", "activation_post_process.scale",
        "activation_post_process.zero_point",
        "activation_post_process.activation_post_process.min_val",
        "activation_post_process.activation_post_process.max_val"};
    CHECK_EQ_INT(nb_module_num_params(m), 2);
    CHECK_EQ_INT(nb_module_num_buffers(m), 8);
    for (int i = 0; i < nb_module_num_params(m) && i < 2; i++) {
        const char *name;
        nb_module_param(m, i, &name);
        CHECK_STR_CONTAINS(name, want_params[i]);
    }
    for (int i = 0; i < nb_module_num_buffers(m) && i < 8; i++) {
        const char *name;
        nb_module_buffer(m, i, &name);
        if (strcmp(name, want_buffers[i]) == 0) check_passed_++;
        else CHECK_FAIL_("buffer %d: %s, torch's %s", i, name, want_buffers[i]);
    }
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    CHECK_EQ_INT(nb_module_fprint(f, m), NB_OK);
    fclose(f);
    CHECK_STR_CONTAINS(text, "Linear(\n  in_features=5, out_features=3, bias=True");
    CHECK_STR_CONTAINS(text, "(weight_fake_quant): FakeQuantize(");
    CHECK_STR_CONTAINS(text, "quant_min=-128, quant_max=127");
    CHECK_STR_CONTAINS(text, "(activation_post_process): MovingAveragePerChannelMinMaxObserver(");
    free(text);
    nb_module_free(m);
}

/* From a float Linear: the same outputs with fake quantization off, 8-bit close to them. */
static void qat_linear_from_a_float_linear_keeps_its_weights(void) {
    nb_manual_seed(3);
    nb_module *lin = nb_linear_new(6, 4, true);
    nb_module *q = nb_qat_linear_from(lin, NULL);
    CHECK(q != NULL);
    nb_scope_begin();
    nb_tensor *x = nb_randn(2, (int64_t[]){5, 6});
    nb_tensor *want = nb_module_forward(lin, x);
    nb_tensor *y8 = nb_module_forward(q, x); /* observers see the weight and the output */
    CHECK(nb_item(nb_max(nb_abs(nb_sub(y8, want)))) < 0.02f);
    CHECK_EQ_INT(nb_fake_quantize_enable_fake_quant(nb_module_child(q, "weight_fake_quant"), false),
                 NB_OK);
    CHECK_EQ_INT(nb_fake_quantize_enable_fake_quant(
                     nb_module_child(q, "activation_post_process"), false), NB_OK);
    CHECK(nb_item(nb_max(nb_abs(nb_sub(nb_module_forward(q, x), want)))) == 0.0f);
    nb_scope_end();
    CHECK(!nb_qat_linear_from(q, NULL));
    CHECK_ERROR(NB_ERR_ARG, "a Linear (QAT) is not a float Linear");
    nb_module_free(q);
    nb_module_free(lin);
}

int main(void) {
    golden();
    scale_gradient_is_the_derivative_plus_the_ste_term();
    plain_ste_passes_the_gradient_everywhere();
    bad_arguments_fail_naming_the_argument();
    qat_linear_has_torch_names();
    qat_linear_from_a_float_linear_keeps_its_weights();
    qat_mlp_with_4bit_weights_learns();
    return check_summary();
}
