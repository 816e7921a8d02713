/*
 * test_autograd.c — autograd semantics as the course shows them on torch: the worked example,
 * accumulation across backward calls, no_grad, detach, a value used twice, leaves vs non-leaves;
 * then nb_autograd_grad as torch.autograd.grad: grad_outputs, several outputs and inputs, an
 * intermediate input, allow_unused and materialize_grads, retain_graph, create_graph to the
 * third order, heap mode; a Linear's weight gradient added straight into a zeroed .grad
 * (write-through) with the bits of the pass's own addition.
 */
#include "check.h"
#include "core/core.h" /* .grad's zero_filled / handed_out marks, read without nb_grad */

/* y = x1 w1 + 3 (x2^2 - w2) at x1 = 1, w1 = 2, x2 = -2, w2 = 3:
 * y = 2 + 3 (4 - 3) = 5; dy/dx1 = w1 = 2, dy/dw1 = x1 = 1, dy/dx2 = 6 x2 = -12, dy/dw2 = -3. */
static void course_worked_example_matches_hand_derivatives(void) {
    nb_scope_begin();
    nb_tensor *x1 = nb_full(0, NULL, 1), *w1 = nb_full(0, NULL, 2);
    nb_tensor *x2 = nb_full(0, NULL, -2), *w2 = nb_full(0, NULL, 3);
    nb_tensor *leaves[] = {x1, w1, x2, w2};
    for (int i = 0; i < 4; i++) nb_set_requires_grad(leaves[i], true);
    nb_tensor *y = nb_add(nb_mul(x1, w1), nb_mul_scalar(nb_sub(nb_pow_scalar(x2, 2), w2), 3));
    CHECK_NEAR(nb_item(y), 5.0, 0, 0);
    CHECK_EQ_INT(nb_backward(y), NB_OK);
    CHECK_NEAR(nb_item(nb_grad(x1)), 2.0, 0, 0);
    CHECK_NEAR(nb_item(nb_grad(w1)), 1.0, 0, 0);
    CHECK_NEAR(nb_item(nb_grad(x2)), -12.0, 0, 0);
    CHECK_NEAR(nb_item(nb_grad(w2)), -3.0, 0, 0);
    nb_scope_end();
}

/* (a**2).sum() gives 2a; a second backward over the kept graph adds another 2a. */
static void gradients_accumulate_across_backward_calls(void) {
    nb_scope_begin();
    nb_tensor *a = nb_from_data((float[]){1, -2, 3}, NB_SHAPE(3));
    nb_set_requires_grad(a, true);
    nb_tensor *s = nb_sum(nb_pow_scalar(a, 2));
    CHECK_EQ_INT(nb_backward(s), NB_OK);
    CHECK_TENSOR("2a", nb_grad(a), ((double[]){2, -4, 6}), 3, 0, 0);
    CHECK_EQ_INT(nb_backward(s), NB_OK);
    CHECK_TENSOR("4a", nb_grad(a), ((double[]){4, -8, 12}), 3, 0, 0);
    nb_zero_grad(a);
    CHECK_TENSOR("zeroed", nb_grad(a), ((double[]){0, 0, 0}), 3, 0, 0);
    nb_scope_end();
}

static void value_used_twice_gets_both_contributions(void) {
    nb_scope_begin();
    nb_tensor *x = nb_full(0, NULL, 3);
    nb_set_requires_grad(x, true);
    nb_tensor *y = nb_mul(x, x); /* dy/dx = 2x = 6 */
    nb_backward(y);
    CHECK_NEAR(nb_item(nb_grad(x)), 6.0, 0, 0);
    nb_scope_end();
}

static void no_grad_records_nothing_and_detach_cuts_the_graph(void) {
    nb_scope_begin();
    nb_tensor *x = nb_ones(NB_SHAPE(2));
    nb_set_requires_grad(x, true);
    nb_tensor *y = NULL;
    NB_NO_GRAD { y = nb_mul_scalar(x, 2); }
    CHECK(nb_is_grad_enabled());
    CHECK(!nb_requires_grad(y));
    CHECK(nb_grad_fn(y) == NULL);
    nb_tensor *d = nb_detach(nb_mul_scalar(x, 2));
    CHECK(!nb_requires_grad(d));
    CHECK(nb_is_leaf(d));
    nb_tensor *z = nb_mul_scalar(x, 2);
    CHECK(nb_requires_grad(z));
    CHECK(!nb_is_leaf(z));
    CHECK_STR_CONTAINS(nb_grad_fn(z), "MulBackward");
    nb_tensor *c = nb_ones(NB_SHAPE(2)); /* does not require grad: gets no grad */
    nb_backward(nb_sum(nb_mul(z, c)));
    CHECK(nb_grad(c) == NULL);
    CHECK_TENSOR("x.grad", nb_grad(x), ((double[]){2, 2}), 2, 0, 0);
    nb_scope_end();
}

/* The same autograd without any scope: the caller owns every result. */
static void heap_mode_works_and_frees(void) {
    nb_alloc_stats before = nb_alloc_stats_get();
    nb_tensor *a = nb_from_data((float[]){1, 2}, NB_SHAPE(2));
    nb_set_requires_grad(a, true);
    nb_tensor *sq = nb_mul(a, a);
    nb_tensor *s = nb_sum(sq);
    nb_tensor_free(sq); /* the graph keeps it alive */
    CHECK_EQ_INT(nb_backward(s), NB_OK);
    CHECK_TENSOR("2a", nb_grad(a), ((double[]){2, 4}), 2, 0, 0);
    nb_tensor_free(s);
    nb_tensor_free(a);
    nb_alloc_stats after = nb_alloc_stats_get();
    CHECK_EQ_INT(after.bytes_live, before.bytes_live);
}

/* ---- nb_autograd_grad (torch.autograd.grad) */

/* y = x * x with grad_outputs v gives 2 x v, returned; x.grad stays as it was (here NULL, then
 * an earlier backward's value), as torch.autograd.grad leaves .grad alone. */
static void autograd_grad_returns_vjp_and_leaves_grad_untouched(void) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){1, -2, 3}, NB_SHAPE(3));
    nb_set_requires_grad(x, true);
    nb_tensor *y = nb_mul(x, x), *v = nb_from_data((float[]){1, 10, 100}, NB_SHAPE(3)), *g = NULL;
    nb_grad_options keep = {.retain_graph = true};
    CHECK_EQ_INT(nb_autograd_grad(1, &y, &v, 1, &x, &g, &keep), NB_OK);
    CHECK_TENSOR("2 x v", g, ((double[]){2, -40, 600}), 3, 0, 0);
    CHECK(nb_grad(x) == NULL);
    CHECK(!nb_requires_grad(g)); /* no create_graph: a plain result */
    CHECK_EQ_INT(nb_backward(nb_sum(y)), NB_OK);
    CHECK_EQ_INT(nb_autograd_grad(1, &y, &v, 1, &x, &g, &keep), NB_OK);
    CHECK_TENSOR("x.grad from backward only", nb_grad(x), ((double[]){2, -4, 6}), 3, 0, 0);
    nb_scope_end();
}

/* Two outputs, two inputs: grads[j] sums over the outputs.  y1 = sum(x * w), y2 = sum(x):
 * d/dx = w + 1, d/dw = x. */
static void autograd_grad_sums_over_outputs_for_each_input(void) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){1, 2}, NB_SHAPE(2));
    nb_tensor *w = nb_from_data((float[]){3, -4}, NB_SHAPE(2));
    nb_set_requires_grad(x, true);
    nb_set_requires_grad(w, true);
    nb_tensor *outs[2] = {nb_sum(nb_mul(x, w)), nb_sum(x)}, *ins[2] = {x, w}, *g[2] = {NULL};
    CHECK_EQ_INT(nb_autograd_grad(2, outs, NULL, 2, ins, g, NULL), NB_OK);
    CHECK_TENSOR("d/dx = w + 1", g[0], ((double[]){4, -3}), 2, 0, 0);
    CHECK_TENSOR("d/dw = x", g[1], ((double[]){1, 2}), 2, 0, 0);
    nb_scope_end();
}

/* An intermediate result as the input: h = 3 x, y = sum(h * h), dy/dh = 2 h (not dy/dx). */
static void autograd_grad_differentiates_with_respect_to_an_intermediate(void) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){1, -1}, NB_SHAPE(2));
    nb_set_requires_grad(x, true);
    nb_tensor *h = nb_mul_scalar(x, 3), *y = nb_sum(nb_mul(h, h)), *g = NULL;
    CHECK(!nb_is_leaf(h));
    CHECK_EQ_INT(nb_autograd_grad(1, &y, NULL, 1, &h, &g, NULL), NB_OK);
    CHECK_TENSOR("2 h", g, ((double[]){6, -6}), 2, 0, 0);
    CHECK(nb_grad(x) == NULL);
    nb_scope_end();
}

/* An input the output does not depend on: NB_ERR_GRAPH naming it; NULL with allow_unused;
 * zeros of its shape with materialize_grads. */
static void autograd_grad_unused_input_errors_or_gives_null_or_zeros(void) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){1, 2}, NB_SHAPE(2));
    nb_tensor *unused = nb_zeros(NB_SHAPE(3));
    nb_set_requires_grad(x, true);
    nb_set_requires_grad(unused, true);
    nb_tensor *y = nb_sum(nb_mul(x, x)), *ins[2] = {x, unused}, *g[2] = {NULL};
    nb_grad_options keep = {.retain_graph = true};
    CHECK_EQ_INT(nb_autograd_grad(1, &y, NULL, 2, ins, g, &keep), NB_ERR_GRAPH);
    CHECK_ERROR(NB_ERR_GRAPH, "input 1 [3] was not used");
    CHECK(g[0] == NULL && g[1] == NULL);
    nb_grad_options allow = {.retain_graph = true, .allow_unused = true};
    CHECK_EQ_INT(nb_autograd_grad(1, &y, NULL, 2, ins, g, &allow), NB_OK);
    CHECK_TENSOR("2 x", g[0], ((double[]){2, 4}), 2, 0, 0);
    CHECK(g[1] == NULL);
    nb_grad_options zeros = {.materialize_grads = true};
    CHECK_EQ_INT(nb_autograd_grad(1, &y, NULL, 2, ins, g, &zeros), NB_OK);
    CHECK_TENSOR("zeros of the unused input's shape", g[1], ((double[]){0, 0, 0}), 3, 0, 0);
    nb_scope_end();
}

/* Without retain_graph a pass releases the graph: a second one fails as torch's does. */
static void autograd_grad_second_pass_without_retain_graph_fails(void) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){1, 2}, NB_SHAPE(2));
    nb_set_requires_grad(x, true);
    nb_tensor *y = nb_sum(nb_mul(x, x)), *g = NULL;
    CHECK_EQ_INT(nb_autograd_grad(1, &y, NULL, 1, &x, &g, NULL), NB_OK);
    CHECK_EQ_INT(nb_autograd_grad(1, &y, NULL, 1, &x, &g, NULL), NB_ERR_GRAPH);
    CHECK_ERROR(NB_ERR_GRAPH, "backward through the graph a second time");
    CHECK(g == NULL);
    CHECK_EQ_INT(nb_backward(y), NB_ERR_GRAPH);
    CHECK_ERROR(NB_ERR_GRAPH, "backward through the graph a second time");
    nb_scope_end();
}

/* y = x^3 at x = 2: create_graph three times gives 3 x^2 = 12, 6 x = 12, then 6, each a
 * tensor that requires grad until the last. */
static void create_graph_gives_third_derivative_of_cube(void) {
    nb_scope_begin();
    nb_tensor *x = nb_full(0, NULL, 2);
    nb_set_requires_grad(x, true);
    nb_tensor *d = nb_mul(nb_mul(x, x), x);
    const double want[3] = {12, 12, 6};
    for (int order = 0; order < 3; order++) {
        nb_tensor *g = NULL;
        CHECK_EQ_INT(nb_autograd_grad(1, &d, NULL, 1, &x, &g,
                                      &(nb_grad_options){.create_graph = true}),
                     NB_OK);
        if (!g) break;
        CHECK_NEAR(nb_item(g), want[order], 0, 0);
        CHECK(nb_requires_grad(g) == (order < 2)); /* 6 is a constant: no graph */
        d = g;
        if (!nb_requires_grad(d)) break;
    }
    CHECK(nb_grad(x) == NULL);
    nb_scope_end();
}

/* No scope open: the returned gradients (and their graph) belong to the caller, freed with
 * nb_tensor_free; every byte comes back (LeakSanitizer checks the rest under make test-asan).
 * (Every op's backward is checked this way by test_grad2.c; here the engine alone, with mul.) */
static void autograd_grad_heap_mode_results_are_freed_by_the_caller(void) {
    nb_alloc_stats before = nb_alloc_stats_get();
    nb_tensor *x = nb_from_data((float[]){1, 2}, NB_SHAPE(2));
    nb_tensor *ones = nb_ones(NB_SHAPE(2));
    nb_set_requires_grad(x, true);
    nb_tensor *sq = nb_mul(x, x), *cube = nb_mul(sq, x), *g = NULL, *h = NULL;
    CHECK_EQ_INT(nb_autograd_grad(1, &cube, &ones, 1, &x, &g,
                                  &(nb_grad_options){.create_graph = true}),
                 NB_OK);
    CHECK_TENSOR("3 x^2", g, ((double[]){3, 12}), 2, 0, 0);
    CHECK(nb_requires_grad(g));
    CHECK_EQ_INT(nb_autograd_grad(1, &g, &ones, 1, &x, &h, NULL), NB_OK);
    CHECK_TENSOR("6 x", h, ((double[]){6, 12}), 2, 0, 0);
    nb_tensor *all[] = {h, g, cube, sq, ones, x};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) nb_tensor_free(all[k]);
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, before.bytes_live);
}

/* ---- write-through (src/autograd/backward.c): a Linear's dW added by its GEMM into the
 * zeros zero_grad left, against the same weight with an identity hook, whose gradient the pass
 * sums apart and then adds to .grad.  Inputs with all-zero columns and a loss with negative
 * weights make -0.0 products, the one value where "0 + x" and "x" differ in bits. */

static nb_tensor *same_gradient(nb_tensor *g, void *ctx) {
    (void)ctx;
    return g;
}

typedef struct {
    nb_tensor *w, *b;
} layer;

static layer new_layer(void) {
    nb_manual_seed(7);
    layer l = {nb_randn(NB_SHAPE(3, 5)), nb_randn(NB_SHAPE(3))};
    nb_set_requires_grad(l.w, true);
    nb_set_requires_grad(l.b, true);
    return l;
}

/* sum(linear(x, w, b) * c): the gradient flowing into the linear is c (negative entries). */
static nb_tensor *layer_loss(layer l, nb_tensor *x, nb_tensor *c) {
    return nb_sum(nb_mul(nb_linear(x, l.w, l.b), c));
}

static bool same_bits(nb_tensor *a, nb_tensor *b) {
    float fa[64], fb[64];
    int64_t n = nb_numel(a);
    return n <= 64 && n == nb_numel(b) && nb_copy_to(a, fa, n) == NB_OK &&
           nb_copy_to(b, fb, n) == NB_OK && memcmp(fa, fb, sizeof(float) * (size_t)n) == 0;
}

static void weight_grad_added_into_zeroed_grad_has_the_bits_of_a_separate_sum(void) {
    nb_scope_begin();
    nb_manual_seed(3);
    nb_tensor *x = nb_randn(NB_SHAPE(4, 5)), *c = nb_randn(NB_SHAPE(4, 3));
    nb_tensor *zero_cols = nb_from_data((float[]){1, 0, 1, 1, 0}, NB_SHAPE(5));
    x = nb_mul(x, zero_cols);                              /* columns 1 and 4: zeros */
    c = nb_add_scalar(nb_mul_scalar(nb_abs(c), -1.0f), -0.1f); /* all < 0 */
    layer direct = new_layer(), hooked = new_layer();
    CHECK(nb_tensor_register_hook(hooked.w, same_gradient, NULL) > 0);
    for (int round = 0; round < 3; round++) {
        nb_zero_grad(direct.w), nb_zero_grad(direct.b), nb_zero_grad(hooked.w), nb_zero_grad(hooked.b);
        if (round > 0) CHECK(direct.w->grad->zero_filled); /* eligible for the write-through */
        for (int calls = 0; calls < 2; calls++) { /* the second call adds to the first */
            CHECK_EQ_INT(nb_backward(layer_loss(direct, x, c)), NB_OK);
            CHECK_EQ_INT(nb_backward(layer_loss(hooked, x, c)), NB_OK);
            CHECK(!direct.w->grad->zero_filled);
            CHECK(same_bits(direct.w->grad, hooked.w->grad));
            CHECK(same_bits(direct.b->grad, hooked.b->grad));
        }
    }
    float dw[15];
    CHECK_EQ_INT(nb_copy_to(direct.w->grad, dw, 15), NB_OK);
    CHECK(!signbit(dw[1]) && dw[1] == 0.0f); /* twice the -0.0 sum of column 1: +0.0 */
    nb_scope_end();
}

static void zero_grad_marks_only_grads_never_handed_out(void) {
    nb_scope_begin();
    layer l = new_layer();
    nb_tensor *x = nb_ones(NB_SHAPE(2, 5)), *c = nb_ones(NB_SHAPE(2, 3));
    CHECK_EQ_INT(nb_backward(layer_loss(l, x, c)), NB_OK);
    CHECK(!l.w->grad->zero_filled);
    nb_zero_grad(l.w);
    CHECK(l.w->grad->zero_filled);
    CHECK_TENSOR("zeroed", nb_grad(l.w), ((double[15]){0}), 15, 0, 0);
    CHECK(!l.w->grad->zero_filled && l.w->grad->handed_out);
    nb_zero_grad(l.w);
    CHECK(!l.w->grad->zero_filled); /* its holder may write it: no write-through any more */
    nb_scope_end();
}

/* A holder of .grad writes it after zero_grad: the next gradient is added to what it wrote. */
static void grad_written_by_its_holder_after_zero_grad_is_added_to(void) {
    nb_scope_begin();
    layer l = new_layer();
    nb_tensor *x = nb_ones(NB_SHAPE(2, 5)), *c = nb_ones(NB_SHAPE(2, 3));
    CHECK_EQ_INT(nb_backward(layer_loss(l, x, c)), NB_OK);
    nb_tensor *held = nb_grad(l.w); /* handed out before zero_grad */
    nb_zero_grad(l.w);
    nb_fill(held, 1.0f);
    CHECK_EQ_INT(nb_backward(layer_loss(l, x, c)), NB_OK);
    CHECK_TENSOR("1 + dW (dW = 2: two rows of ones)", nb_grad(l.w),
                 ((double[]){3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3}), 15, 0, 0);
    nb_scope_end();
}

/* Anomaly mode checks each gradient before it is added, so it keeps the write-through off: a
 * weight gradient that overflows (x = 3e38, while the forward stays finite through w = 1e-30)
 * is named even when zero_grad left .grad ready for one. */
static void anomaly_mode_names_an_overflowing_weight_gradient_after_zero_grad(void) {
    nb_scope_begin();
    nb_tensor *w = nb_full(NB_SHAPE(3, 5), 1e-30f), *b = nb_zeros(NB_SHAPE(3));
    nb_set_requires_grad(w, true);
    nb_set_requires_grad(b, true);
    nb_tensor *x = nb_full(NB_SHAPE(2, 5), 3e38f), *c = nb_full(NB_SHAPE(2, 3), 2.0f);
    CHECK_EQ_INT(nb_backward(layer_loss((layer){w, b}, nb_ones(NB_SHAPE(2, 5)), c)), NB_OK);
    nb_zero_grad(w);
    bool was = nb_set_detect_anomaly(true);
    nb_tensor *loss = layer_loss((layer){w, b}, x, c);
    CHECK(isfinite(nb_item(loss)));
    CHECK(nb_backward(loss) != NB_OK);
    CHECK_ERROR(NB_ERR_VALUE, "is not finite");
    nb_set_detect_anomaly(was);
    nb_scope_end();
}

int main(void) {
    course_worked_example_matches_hand_derivatives();
    gradients_accumulate_across_backward_calls();
    value_used_twice_gets_both_contributions();
    no_grad_records_nothing_and_detach_cuts_the_graph();
    heap_mode_works_and_frees();
    autograd_grad_returns_vjp_and_leaves_grad_untouched();
    autograd_grad_sums_over_outputs_for_each_input();
    autograd_grad_differentiates_with_respect_to_an_intermediate();
    autograd_grad_unused_input_errors_or_gives_null_or_zeros();
    autograd_grad_second_pass_without_retain_graph_fails();
    create_graph_gives_third_derivative_of_cube();
    autograd_grad_heap_mode_results_are_freed_by_the_caller();
    weight_grad_added_into_zeroed_grad_has_the_bits_of_a_separate_sum();
    zero_grad_marks_only_grads_never_handed_out();
    grad_written_by_its_holder_after_zero_grad_is_added_to();
    anomaly_mode_names_an_overflowing_weight_gradient_after_zero_grad();
    return check_summary();
}
