/*
 * test_amp.c — mixed precision (nabla/amp.h): the backend's rounding to bfloat16 / float16
 * against nb_to_dtype (the dtypes' torch-checked conversions), autocast's linear, matmul and conv
 * against float32 arithmetic on rounded operands and within bfloat16's tolerance of float32,
 * gradients through autocast, the state's rules, and the GradScaler step by step against torch's
 * formulas (_amp_foreach_non_finite_check_and_unscale_, _amp_update_scale_), skipped steps
 * included.
 */
#include "check.h"

#include "backend/backend.h"

#include <stdint.h>

/* x rounded to dtype d and back, through nb_to_dtype: the reference rounding. */
static nb_tensor *via_dtype(nb_tensor *x, nb_dtype d) {
    return nb_to_dtype(nb_to_dtype(x, d), NB_F32);
}

/* Every element of t equals its own rounding to d (t holds d's values). */
static bool holds_values_of(nb_tensor *t, nb_dtype d) {
    int64_t n = nb_numel(t);
    float *a = host_vals(t), *b = host_vals(via_dtype(t, d));
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) != 0 && !(isnan(a[i]) && isnan(b[i]))) return false;
    return true;
}

static uint64_t rng = 0x243f6a8885a308d3u;
static float rand_bits_float(void) { /* any float32 bit pattern */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    uint32_t u = (uint32_t)((rng * 0x2545f4914f6cdd1du) >> 32);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---------------------------------------------------------------- rounding */

static void round_half_agrees_with_nb_to_dtype_bit_for_bit(void) {
    enum { N = 1 << 16, EDGES = 16 };
    static const float edges[EDGES] = {
        65504.0f, 65519.996f, 65520.0f, -65520.0f, 0x1p-24f, 0x1p-25f, 0x1.8p-25f, 0x1p-14f,
        0x1.ffcp-15f, -0.0f, INFINITY, -INFINITY, 1.00390625f /* bf16 tie, even below */,
        1.01171875f /* bf16 tie, even above */, 3.4028235e38f, 1.0f + 0x1p-11f /* f16 tie */};
    float *v = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) v[i] = i < EDGES ? edges[i] : rand_bits_float();
    nb_scope_begin();
    nb_tensor *x = nb_from_data(v, 1, (int64_t[]){N});
    const nb_backend *be = nb__backend(NB_CPU);
    nb_dtype dtypes[2] = {NB_BF16, NB_F16};
    for (int k = 0; k < 2; k++) {
        nb_tensor *got = nb_zeros(1, (int64_t[]){N});
        float *in = host_vals(x), *out = malloc(sizeof(float) * N);
        be->round_half(out, in, N, dtypes[k]); /* the CPU backend's memory is host memory */
        nb_copy_from(got, out, N);
        float *want = host_vals(via_dtype(x, dtypes[k])), *g = host_vals(got);
        int64_t bad = 0;
        for (int i = 0; i < N; i++)
            bad += memcmp(&g[i], &want[i], 4) != 0 && !(isnan(g[i]) && isnan(want[i]));
        CHECK_EQ_INT(bad, 0);
        free(out);
    }
    nb_scope_end();
    free(v);
}

/* ---------------------------------------------------------------- autocast's ops */

/* y = x W^T + b from x, W, b rounded to bf16, summed in double, rounded to bf16: the values a
 * bf16 linear with float32 accumulation returns, to within the order of the float32 sums. */
static void autocast_linear_is_float32_sums_of_rounded_operands(void) {
    nb_scope_begin();
    nb_manual_seed(1);
    int64_t m = 8, k = 37, o = 5;
    nb_tensor *x = nb_randn(NB_SHAPE(m, k)), *w = nb_randn(NB_SHAPE(o, k)), *b = nb_randn(NB_SHAPE(o));
    nb_tensor *y = NULL;
    NB_AUTOCAST(NB_BF16) { y = nb_linear(x, w, b); }
    CHECK(y && holds_values_of(y, NB_BF16));
    float *xr = host_vals(via_dtype(x, NB_BF16)), *wr = host_vals(via_dtype(w, NB_BF16));
    float *br = host_vals(via_dtype(b, NB_BF16));
    double want[8 * 5];
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < o; j++) {
            double s = br[j];
            for (int64_t p = 0; p < k; p++) s += (double)xr[i * k + p] * wr[j * k + p];
            want[i * o + j] = s;
        }
    /* the float32 sum differs from the double one by far less than bf16's last bit; the final
     * rounding to bf16 may then differ by that one bit: 2^-8 relative */
    CHECK_TENSOR("bf16 linear", y, want, m * o, 1e-5, 0x1p-8);
    /* and bf16's tolerance of the float32 linear */
    nb_tensor *f = nb_linear(x, w, b);
    float *fv = host_vals(f);
    double fw[8 * 5];
    for (int i = 0; i < m * o; i++) fw[i] = fv[i];
    CHECK_TENSOR("bf16 vs float32 linear", y, fw, m * o, 0.1, 0.02);
    nb_scope_end();
}

static void autocast_matmul_and_conv_are_close_to_float32_and_hold_bf16_values(void) {
    nb_scope_begin();
    nb_manual_seed(2);
    nb_tensor *a = nb_randn(NB_SHAPE(2, 6, 9)), *bm = nb_randn(NB_SHAPE(9, 4));
    nb_tensor *x = nb_randn(NB_SHAPE(2, 3, 8, 8)), *w = nb_randn(NB_SHAPE(4, 3, 3, 3));
    nb_conv2d_opts co = {.padding = {1, 1}};
    nb_tensor *mm = NULL, *cv = NULL;
    NB_AUTOCAST(NB_BF16) {
        mm = nb_matmul(a, bm);
        cv = nb_conv2d(x, w, NULL, &co);
    }
    CHECK(mm && holds_values_of(mm, NB_BF16));
    CHECK(cv && holds_values_of(cv, NB_BF16));
    nb_tensor *mf = nb_matmul(a, bm), *cf = nb_conv2d(x, w, NULL, &co);
    /* exactly: the float32 op on rounded operands, rounded */
    nb_tensor *mr = via_dtype(nb_matmul(via_dtype(a, NB_BF16), via_dtype(bm, NB_BF16)), NB_BF16);
    nb_tensor *cr = via_dtype(nb_conv2d(via_dtype(x, NB_BF16), via_dtype(w, NB_BF16), NULL, &co), NB_BF16);
    int64_t nm = nb_numel(mm), nc = nb_numel(cv);
    double *want = malloc(sizeof(double) * (size_t)(nc > nm ? nc : nm));
    float *v = host_vals(mr);
    for (int64_t i = 0; i < nm; i++) want[i] = v[i];
    CHECK_TENSOR("bf16 matmul", mm, want, nm, 0, 0);
    v = host_vals(cr);
    for (int64_t i = 0; i < nc; i++) want[i] = v[i];
    CHECK_TENSOR("bf16 conv2d", cv, want, nc, 0, 0);
    v = host_vals(mf);
    for (int64_t i = 0; i < nm; i++) want[i] = v[i];
    CHECK_TENSOR("bf16 vs float32 matmul", mm, want, nm, 0.1, 0.02);
    v = host_vals(cf);
    for (int64_t i = 0; i < nc; i++) want[i] = v[i];
    CHECK_TENSOR("bf16 vs float32 conv2d", cv, want, nc, 0.15, 0.02);
    free(want);
    nb_scope_end();
}

/* Backward after the region closed: the gradients of the float32 weights are float32 tensors
 * holding bf16 values (torch's bf16 grads cast back), close to the float32 ones. */
static void autocast_gradients_reach_float32_weights_in_the_forward_dtype(void) {
    nb_scope_begin();
    nb_manual_seed(3);
    nb_tensor *x = nb_randn(NB_SHAPE(4, 3, 6, 6)), *w = nb_randn(NB_SHAPE(2, 3, 3, 3));
    nb_tensor *w2 = nb_randn(NB_SHAPE(5, 32)), *b2 = nb_randn(NB_SHAPE(5));
    nb_tensor *p[3] = {w, w2, b2};
    for (int i = 0; i < 3; i++) nb_set_requires_grad(p[i], true);
    float *grads[2][3];
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 3; i++) nb_zero_grad(p[i]);
        nb_tensor *loss = NULL;
        NB_AUTOCAST(pass == 0 ? NB_BF16 : NB_F32) {
            nb_tensor *h = nb_relu(nb_conv2d(x, w, NULL, NULL));
            loss = nb_sum(nb_linear(nb_reshape(h, NB_SHAPE(4, 32)), w2, b2));
        }
        CHECK(nb_autocast_dtype() == NB_F32);
        CHECK(nb_backward(loss) == NB_OK);
        for (int i = 0; i < 3; i++) {
            CHECK(nb_dtype_of(nb_grad(p[i])) == NB_F32);
            if (pass == 0) CHECK(holds_values_of(nb_grad(p[i]), NB_BF16));
            grads[pass][i] = host_vals(nb_grad(p[i]));
        }
    }
    for (int i = 0; i < 3; i++) {
        int64_t n = nb_numel(p[i]);
        double *want = malloc(sizeof(double) * (size_t)n);
        for (int64_t j = 0; j < n; j++) want[j] = grads[1][i][j];
        CHECK_ARRAY("bf16 vs float32 gradient", grads[0][i], want, n, 0.2, 0.03);
        free(want);
    }
    nb_scope_end();
}

/* float16's range: a gradient past 65504 becomes Inf, as on a GPU (what loss scaling avoids). */
static void float16_autocast_gradients_overflow_to_inf(void) {
    nb_scope_begin();
    nb_tensor *x = nb_full(NB_SHAPE(2, 3), 300.0f), *w = nb_full(NB_SHAPE(2, 3), 0.5f);
    nb_set_requires_grad(w, true);
    nb_tensor *y = NULL;
    NB_AUTOCAST(NB_F16) { y = nb_linear(x, w, NULL); }
    CHECK(nb_backward(nb_sum(nb_mul_scalar(y, 200.0f))) == NB_OK); /* dW = 200 * 2 * 300 */
    CHECK(isinf(host_vals(nb_grad(w))[0]));
    nb_scope_end();
}

static void autocast_state_nests_restores_and_rejects_other_dtypes(void) {
    CHECK(nb_autocast_dtype() == NB_F32);
    NB_AUTOCAST(NB_BF16) {
        CHECK(nb_autocast_dtype() == NB_BF16);
        NB_AUTOCAST(NB_F32) { CHECK(nb_autocast_dtype() == NB_F32); }
        CHECK(nb_autocast_dtype() == NB_BF16);
        CHECK(nb_autocast_set(NB_I8) == NB_BF16);
        CHECK_ERROR(NB_ERR_ARG, "autocast: int8 is not bfloat16, float16 or float32");
        CHECK(nb_autocast_dtype() == NB_BF16);
    }
    CHECK(nb_autocast_dtype() == NB_F32);
    /* off inside: bit for bit the float32 op */
    nb_scope_begin();
    nb_manual_seed(4);
    nb_tensor *x = nb_randn(NB_SHAPE(3, 7)), *w = nb_randn(NB_SHAPE(2, 7)), *y = NULL;
    NB_AUTOCAST(NB_F32) { y = nb_linear(x, w, NULL); }
    float *a = host_vals(y), *b = host_vals(nb_linear(x, w, NULL));
    CHECK(memcmp(a, b, sizeof(float) * 6) == 0);
    nb_scope_end();
}

/* ---------------------------------------------------------------- GradScaler */

/* torch's _amp_update_scale_, written out again for the test. */
static void torch_update(float *scale, int *tracker, bool found_inf, double growth, double backoff,
                         int interval) {
    if (found_inf) {
        *scale = (float)(*scale * backoff);
        *tracker = 0;
        return;
    }
    int successful = *tracker + 1;
    if (successful == interval) {
        float grown = (float)(*scale * growth);
        if (isfinite(grown)) *scale = grown;
        *tracker = 0;
    } else {
        *tracker = successful;
    }
}

static void grad_scaler_defaults_are_torchs(void) {
    nb_grad_scaler *s = nb_grad_scaler_new(NULL);
    CHECK(nb_grad_scaler_get_scale(s) == 65536.0f);
    CHECK_EQ_INT(nb_grad_scaler_growth_tracker(s), 0);
    nb_grad_scaler_free(s);
}

/* A sequence of steps with gradients finite or not, against torch's formulas after each: the
 * scale, the tracker, the parameter (changed only by a step taken) and the unscaled gradient. */
static void grad_scaler_follows_torch_step_by_step_and_skips_steps_on_inf(void) {
    nb_grad_scaler_opts opts = {.init_scale = 1024.0f, .growth_factor = 2.0f, .backoff_factor = 0.25f,
                                .growth_interval = 3};
    nb_grad_scaler *s = nb_grad_scaler_new(&opts);
    nb_tensor *p = nb_full(NB_SHAPE(3), 1.0f); /* a parameter: outside any scope */
    nb_set_requires_grad(p, true);
    nb_optim *opt = nb_sgd_new(1, &p, (nb_sgd_opts){.lr = 0.5f});
    nb_scope_begin();
    const float coef[3] = {0.25f, -3.0f, 0.125f};
    /* the pattern: a bad step first, growth after 3 good ones, a NaN, more good ones */
    const int bad[] = {1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1};
    float scale = 1024.0f, want_p[3] = {1, 1, 1};
    int tracker = 0;
    for (int it = 0; it < (int)(sizeof bad / sizeof *bad); it++) {
        nb_optim_zero_grad(opt);
        float c[3] = {coef[0], coef[1], coef[2]};
        if (bad[it]) c[1] = bad[it] == 1 ? INFINITY : NAN;
        nb_tensor *loss = nb_sum(nb_mul(p, nb_from_data(c, 1, (int64_t[]){3})));
        nb_tensor *scaled = nb_grad_scaler_scale(s, loss);
        CHECK(nb_item(scaled) == nb_item(loss) * scale || bad[it]);
        CHECK(nb_backward(scaled) == NB_OK);
        bool stepped = true;
        CHECK(nb_grad_scaler_step(s, opt, 1, &p, &stepped) == NB_OK);
        CHECK(stepped == !bad[it]);
        if (!bad[it]) {
            float inv = (float)(1.0 / (double)scale), *g = host_vals(nb_grad(p));
            for (int i = 0; i < 3; i++) {
                float gi = (c[i] * scale) * inv; /* the scaled gradient, times the inverse */
                CHECK(g[i] == gi);
                want_p[i] = want_p[i] - 0.5f * gi;
            }
        }
        float *pv = host_vals(p);
        for (int i = 0; i < 3; i++) CHECK(pv[i] == want_p[i]);
        CHECK(nb_grad_scaler_update(s) == NB_OK);
        torch_update(&scale, &tracker, bad[it] != 0, 2.0, 0.25, 3);
        CHECK(nb_grad_scaler_get_scale(s) == scale);
        CHECK_EQ_INT(nb_grad_scaler_growth_tracker(s), tracker);
    }
    CHECK(scale == 1024.0f * 0.25f * 2 * 0.25f * 2 * 2 * 0.25f); /* the pattern's net effect */
    nb_scope_end();
    nb_optim_free(opt);
    nb_tensor_free(p);
    nb_grad_scaler_free(s);
}

static void grad_scaler_growth_stops_short_of_infinity(void) {
    nb_scope_begin();
    nb_grad_scaler *s = nb_grad_scaler_new(&(nb_grad_scaler_opts){.init_scale = 3e38f, .growth_interval = 1});
    nb_tensor *p = nb_full(NB_SHAPE(1), 1.0f);
    nb_set_requires_grad(p, true);
    CHECK(nb_backward(nb_sum(nb_mul_scalar(p, 0.0f))) == NB_OK);
    CHECK(nb_grad_scaler_unscale(s, 1, &p) == NB_OK);
    CHECK(nb_grad_scaler_update(s) == NB_OK);
    CHECK(nb_grad_scaler_get_scale(s) == 3e38f);
    CHECK_EQ_INT(nb_grad_scaler_growth_tracker(s), 0);
    nb_grad_scaler_free(s);
    nb_scope_end();
}

static void grad_scaler_refuses_bad_options_and_calls_out_of_order(void) {
    CHECK(!nb_grad_scaler_new(&(nb_grad_scaler_opts){.init_scale = -1}));
    CHECK_ERROR(NB_ERR_ARG, "init_scale must be finite and > 0");
    CHECK(!nb_grad_scaler_new(&(nb_grad_scaler_opts){.growth_factor = 0.5f}));
    CHECK_ERROR(NB_ERR_ARG, "growth_factor must be finite and > 1");
    CHECK(!nb_grad_scaler_new(&(nb_grad_scaler_opts){.backoff_factor = 1.5f}));
    CHECK_ERROR(NB_ERR_ARG, "backoff_factor must be in (0, 1)");
    CHECK(!nb_grad_scaler_new(&(nb_grad_scaler_opts){.growth_interval = -2}));
    CHECK_ERROR(NB_ERR_ARG, "growth_interval must be >= 1");
    nb_grad_scaler *s = nb_grad_scaler_new(NULL);
    CHECK(nb_grad_scaler_update(s) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "update: no inf checks were recorded");
    CHECK(nb_grad_scaler_unscale(s, 0, NULL) == NB_OK);
    CHECK(nb_grad_scaler_unscale(s, 0, NULL) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "unscale: already called since the last update");
    CHECK(nb_grad_scaler_update(s) == NB_OK);
    CHECK(nb_grad_scaler_step(s, NULL, 0, NULL, NULL) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "step: NULL scaler or optimiser");
    nb_grad_scaler_free(s);
    nb_grad_scaler_free(NULL);
}

/* ---------------------------------------------------------------- nb_fit */

/* One epoch of nb_fit on 16 samples in batches of 4 (4 steps) of a Linear(4, 3) under opts;
 * the weight's values after it into w[12]. */
static nb_status fit_epoch(const nb_fit_opts *opts, float *w) {
    float x[16 * 4];
    int32_t y[16];
    for (int i = 0; i < 16 * 4; i++) x[i] = sinf(0.7f * (float)i);
    for (int i = 0; i < 16; i++) y[i] = i % 3;
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){.n = 16, .sample_ndim = 1, .sample_shape = (int64_t[]){4},
                                                       .x_f32 = x, .labels = y});
    nb_loader *ld = nb_loader_new(ds, (nb_loader_opts){.batch_size = 4});
    nb_manual_seed(9);
    nb_module *m = nb_sequential_new(1, (nb_module *[]){nb_linear_new(4, 3, true)});
    nb_tensor *params[2];
    int np = nb_module_parameters(m, params, 2);
    nb_optim *o = nb_sgd_new(np, params, (nb_sgd_opts){.lr = 0.1});
    nb_fit *f = nb_fit_new(m, o, NULL, ld, ld, opts);
    nb_status st = f ? nb_fit_run(f, NULL) : nb_error_code();
    nb_copy_to(nb_module_find(m, "0.weight"), w, 12);
    nb_fit_free(f);
    nb_optim_free(o);
    nb_module_free(m);
    nb_loader_free(ld);
    nb_dataset_free(ds);
    return st;
}

/* float16 with a scale so large that every scaled gradient overflows: every step is skipped
 * (the weights stay as drawn) and the scale halves at each; bfloat16 trains and stays near
 * float32; nb_fit_new refuses another autocast dtype. */
static void fit_runs_autocast_and_skips_steps_on_overflowing_scaled_gradients(void) {
    float w0[12], w[12], wf[12];
    nb_manual_seed(9);
    nb_module *fresh = nb_linear_new(4, 3, true);
    nb_copy_to(nb_module_find(fresh, "weight"), w0, 12);
    nb_module_free(fresh);
    nb_grad_scaler *s = nb_grad_scaler_new(&(nb_grad_scaler_opts){.init_scale = 0x1p24f});
    CHECK(fit_epoch(&(nb_fit_opts){.epochs = 1, .autocast = NB_F16, .scaler = s}, w) == NB_OK);
    CHECK(!memcmp(w, w0, sizeof w));
    CHECK(nb_grad_scaler_get_scale(s) == 0x1p20f);
    nb_grad_scaler_free(s);
    CHECK(fit_epoch(&(nb_fit_opts){.epochs = 1}, wf) == NB_OK);
    CHECK(fit_epoch(&(nb_fit_opts){.epochs = 1, .autocast = NB_BF16}, w) == NB_OK);
    double want[12];
    for (int i = 0; i < 12; i++) want[i] = wf[i];
    CHECK(memcmp(w, w0, sizeof w) != 0);
    CHECK_ARRAY("bf16 vs float32 weights after an epoch", w, want, 12, 0.01, 0.01);
    CHECK(fit_epoch(&(nb_fit_opts){.epochs = 1, .autocast = NB_I8}, w) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "fit_new: autocast must be bfloat16, float16 or float32 (off)");
}

int main(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    round_half_agrees_with_nb_to_dtype_bit_for_bit();
    autocast_linear_is_float32_sums_of_rounded_operands();
    autocast_matmul_and_conv_are_close_to_float32_and_hold_bf16_values();
    autocast_gradients_reach_float32_weights_in_the_forward_dtype();
    float16_autocast_gradients_overflow_to_inf();
    autocast_state_nests_restores_and_rejects_other_dtypes();
    grad_scaler_defaults_are_torchs();
    grad_scaler_follows_torch_step_by_step_and_skips_steps_on_inf();
    grad_scaler_growth_stops_short_of_infinity();
    grad_scaler_refuses_bad_options_and_calls_out_of_order();
    fit_runs_autocast_and_skips_steps_on_overflowing_scaled_gradients();
    nb_release_memory(); /* the scopes' blocks, kept for reuse */
    CHECK_BYTES_BACK("the tests", before);
    return check_summary();
}
