/*
 * test_autograd.c — autograd semantics as the course shows them on torch: the worked example,
 * accumulation across backward calls, no_grad, detach, a value used twice, leaves vs non-leaves.
 */
#include "check.h"

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

int main(void) {
    course_worked_example_matches_hand_derivatives();
    gradients_accumulate_across_backward_calls();
    value_used_twice_gets_both_contributions();
    no_grad_records_nothing_and_detach_cuts_the_graph();
    heap_mode_works_and_frees();
    return check_summary();
}
