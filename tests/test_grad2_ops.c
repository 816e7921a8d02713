/*
 * test_grad2_ops.c — what test_grad2.c's table walk does not reach for the elementwise,
 * reduction, softmax, cross-entropy, matmul and linear rows: torch's conventions at the kinks
 * of piecewise derivatives (the walk takes smooth cases only), derivatives past the second, and
 * pow's gradient where the exponent is 0.
 */
#include "check.h"
#include "nabla/autograd.h"
#include "nabla/nn.h"

#include <math.h>

static const nb_grad_options create_graph = {.create_graph = true};

/* d f / dx of a sum of f(x): one pass of nb_autograd_grad with create_graph. */
static nb_tensor *grad_of(nb_tensor *f, nb_tensor *x) {
    nb_tensor *g = NULL;
    if (nb_autograd_grad(1, &f, NULL, 1, &x, &g, &create_graph) != NB_OK) return NULL;
    return g;
}

static nb_tensor *sum_of(nb_tensor *t) { return t ? nb_sum(t) : NULL; }

static nb_tensor *leaky_relu(nb_tensor *x) { return nb_leaky_relu(x, 0.25f); }
static nb_tensor *clamp(nb_tensor *x) { return nb_clamp(x, -0.5f, 0.5f); }

/* At the kinks, torch's first derivatives (relu'(0) = 0, |x|'(0) = 0, leaky_relu'(0) = slope,
 * clamp' = 1 on its bounds, step' = 0) and second derivatives (0: the first is a mask, a
 * constant).  f = sum(row(x) w) with w requiring grad too, so the gradient g = row'(x) w has a
 * graph: d sum(g) / dx = row''(x) w = 0 and d sum(g) / dw = row'(x). */
static void piecewise_rows_have_torchs_derivatives_at_their_kinks(void) {
    const float v[5] = {-1, -0.5f, 0, 0.5f, 1}, wv[5] = {0.5f, -2, 3, 1.5f, -1};
    struct {
        const char *name;
        nb_tensor *(*f)(nb_tensor *);
        float slope[5];
    } rows[] = {
        {"relu", nb_relu, {0, 0, 0, 1, 1}},
        {"abs", nb_abs, {-1, -1, 0, 1, 1}},
        {"leaky_relu", leaky_relu, {0.25f, 0.25f, 0.25f, 1, 1}},
        {"clamp", clamp, {0, 1, 1, 1, 0}},
        {"step", nb_step, {0, 0, 0, 0, 0}},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        nb_scope_begin();
        nb_tensor *x = nb_from_data(v, 1, (int64_t[]){5}), *w = nb_from_data(wv, 1, (int64_t[]){5});
        nb_set_requires_grad(x, true);
        nb_set_requires_grad(w, true);
        nb_tensor *g = grad_of(nb_sum(nb_mul(rows[r].f(x), w)), x), *h[2] = {NULL, NULL};
        CHECK_EQ_INT(nb_autograd_grad(1, (nb_tensor *[]){sum_of(g)}, NULL, 2,
                                      (nb_tensor *[]){x, w}, h,
                                      &(nb_grad_options){.materialize_grads = true}), NB_OK);
        double first[5], zeros[5] = {0}, slope[5];
        for (int i = 0; i < 5; i++) slope[i] = rows[r].slope[i], first[i] = slope[i] * wv[i];
        char what[3][64];
        snprintf(what[0], sizeof what[0], "%s: d f / dx", rows[r].name);
        snprintf(what[1], sizeof what[1], "%s: d2 f / dx2", rows[r].name);
        snprintf(what[2], sizeof what[2], "%s: d2 f / dx dw", rows[r].name);
        CHECK_TENSOR(what[0], g, first, 5, 0, 0);
        CHECK_TENSOR(what[1], h[0], zeros, 5, 0, 0);
        CHECK_TENSOR(what[2], h[1], slope, 5, 0, 0);
        nb_error_clear();
        nb_scope_end();
    }
}

/* gelu (the exact erf form): gelu'' = phi (2 - x^2), gelu''' = phi (x^3 - 4 x), phi the
 * standard normal density; tanh''' = -2 (1 - t^2)(1 - 3 t^2), t = tanh x.  Three passes of
 * create_graph, so each backward's own graph is differentiated twice more. */
static void derivatives_past_the_second_are_the_closed_forms(void) {
    const float v[4] = {-1.5f, -0.3f, 0.4f, 2};
    nb_scope_begin();
    nb_tensor *x = nb_from_data(v, 1, (int64_t[]){4});
    nb_set_requires_grad(x, true);
    nb_tensor *gelu2 = grad_of(sum_of(grad_of(sum_of(nb_gelu(x)), x)), x);
    nb_tensor *gelu3 = grad_of(sum_of(gelu2), x);
    nb_tensor *tanh3 = grad_of(sum_of(grad_of(sum_of(grad_of(sum_of(nb_tanh(x)), x)), x)), x);
    float g2[4], g3[4], t3[4];
    CHECK(nb_copy_to(gelu2, g2, 4) == NB_OK && nb_copy_to(gelu3, g3, 4) == NB_OK &&
          nb_copy_to(tanh3, t3, 4) == NB_OK);
    for (int i = 0; i < 4; i++) {
        double s = v[i], phi = exp(-0.5 * s * s) / sqrt(2 * M_PI), t = tanh(s);
        CHECK_NEAR(g2[i], phi * (2 - s * s), 1e-6, 1e-5);
        CHECK_NEAR(g3[i], phi * (s * s * s - 4 * s), 1e-6, 1e-5);
        CHECK_NEAR(t3[i], -2 * (1 - t * t) * (1 - 3 * t * t), 1e-6, 1e-5);
    }
    nb_scope_end();
}

/* torch: d/da a^b = 0 where b == 0, even at a == 0 (where b a^(b-1) is 0 * inf). */
static void pow_base_gradient_is_zero_where_the_exponent_is_zero(void) {
    nb_scope_begin();
    nb_tensor *a = nb_from_data((float[]){0, 0, 2}, 1, (int64_t[]){3});
    nb_tensor *b = nb_from_data((float[]){0, 2, 0}, 1, (int64_t[]){3});
    nb_set_requires_grad(a, true);
    CHECK_EQ_INT(nb_backward(nb_sum(nb_pow(a, b))), NB_OK);
    float got[3];
    CHECK_EQ_INT(nb_copy_to(nb_grad(a), got, 3), NB_OK);
    CHECK_NEAR(got[0], 0, 0, 0); /* b = 0 at a = 0: was NaN */
    CHECK_NEAR(got[1], 0, 0, 0); /* 2 a at a = 0 */
    CHECK_NEAR(got[2], 0, 0, 0);
    nb_scope_end();
}

/* torch: the gradient of relu(x) stays linked to x, so its derivative is zeros, not an error;
 * the same for every piecewise row. */
static void piecewise_gradients_differentiate_to_zeros_not_an_error(void) {
    nb_scope_begin();
    float v[3] = {-1.0f, 0.5f, 2.0f};
    nb_tensor *x = nb_from_data(v, 1, (int64_t[]){3});
    nb_set_requires_grad(x, true);
    nb_tensor *fx[] = {nb_relu(x), nb_abs(x), nb_clamp(x, -0.5f, 1.0f), nb_leaky_relu(x, 0.1f),
                       nb_step(x)};
    for (int k = 0; k < 5; k++) {
        nb_tensor *g, *h, *y = nb_sum(fx[k]);
        CHECK_EQ_INT(nb_autograd_grad(1, &y, NULL, 1, &x, &g, &(nb_grad_options){.create_graph = true}), NB_OK);
        nb_tensor *gs = nb_sum(g);
        CHECK_EQ_INT(nb_autograd_grad(1, &gs, NULL, 1, &x, &h, NULL), NB_OK);
        float got[3] = {1, 1, 1};
        if (h) nb_copy_to(h, got, 3);
        for (int i = 0; i < 3; i++) CHECK_NEAR(got[i], 0.0f, 0, 0);
    }
    nb_scope_end();
}

int main(void) {
    piecewise_rows_have_torchs_derivatives_at_their_kinks();
    derivatives_past_the_second_are_the_closed_forms();
    pow_base_gradient_is_zero_where_the_exponent_is_zero();
    piecewise_gradients_differentiate_to_zeros_not_an_error();
    return check_summary();
}
