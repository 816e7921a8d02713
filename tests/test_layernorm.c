/*
 * test_layernorm.c — the fused layer_norm op beyond the op table's small cases (test_golden,
 * test_gradcheck and test_grad2 walk those): what its forward keeps for the backward, rows long
 * enough for the kernels' threads and column tiles against the same function written with
 * ops, and its bad inputs.
 */
#include "check.h"

#include "nabla/nn.h"

enum { ROWS = 96, D = 512 }; /* 49152 elements: above the kernels' threshold for threads */

/* F.layer_norm with ops, as nn/norm.c computed it before the fused op: the reference. */
static nb_tensor *layer_norm_by_ops(nb_tensor *x, nb_tensor *w, nb_tensor *b, float eps) {
    int last = -1;
    nb_tensor *mean = nb_mean_dims(x, 1, &last, true), *xc = nb_sub(x, mean);
    nb_tensor *var = nb_mean_dims(nb_mul(xc, xc), 1, &last, true);
    nb_tensor *xhat = nb_mul(xc, nb_pow_scalar(nb_add_scalar(var, eps), -0.5f));
    return nb_add(nb_mul(xhat, w), b);
}

/* A LayerNorm's forward on [64, 512] keeps its result and two floats a row: the heap grows by
 * less than two input sizes (written with ops it kept five: x - mean, its square, the
 * normalised x, its product with the weight, and the result). */
static void forward_keeps_only_the_result_and_row_statistics(void) {
    int64_t d = D;
    nb_module *ln = nb_layernorm_new(1, &d, 0, true);
    nb_tensor *x = nb_randn(NB_SHAPE(64, D));
    nb_set_requires_grad(x, true);
    size_t input = 64 * D * sizeof(float), before = nb_alloc_stats_get().bytes_live;
    nb_tensor *y = nb_module_forward(ln, x);
    size_t grown = nb_alloc_stats_get().bytes_live - before;
    CHECK(y != NULL);
    if (grown < 2 * input) check_passed_++;
    else CHECK_FAIL_("LayerNorm forward kept %zu bytes; the input is %zu", grown, input);
    nb_tensor *s = nb_sum(y);
    CHECK_EQ_INT(nb_backward(s), NB_OK);
    nb_tensor_free(s);
    nb_tensor_free(y);
    nb_tensor_free(x);
    nb_module_free(ln);
}

/* Output and the three gradients equal the ops' on [96, 512] with the pool's threads: rows
 * shared out for dx, the columns of dw and db in tiles. */
static void long_rows_match_the_function_written_with_ops(void) {
    int threads = nb_get_num_threads();
    nb_set_num_threads(2);
    nb_scope_begin();
    nb_manual_seed(7);
    nb_tensor *x = nb_add_scalar(nb_mul_scalar(nb_randn(NB_SHAPE(ROWS, D)), 3.0f), 1.0f);
    nb_tensor *w = nb_add_scalar(nb_randn(NB_SHAPE(D)), 1.0f), *b = nb_randn(NB_SHAPE(D));
    nb_tensor *r = nb_randn(NB_SHAPE(ROWS, D)), *leaves[3] = {x, w, b};
    float *got[4], *want[4];
    for (int path = 0; path < 2; path++) {
        for (int i = 0; i < 3; i++) nb_set_requires_grad(leaves[i], true);
        nb_tensor *y = path ? layer_norm_by_ops(x, w, b, 1e-5f) : nb_layer_norm(x, 1, w, b, 1e-5f);
        CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(y, r))), NB_OK);
        float **out = path ? want : got;
        out[0] = host_vals(y);
        for (int i = 0; i < 3; i++) {
            out[i + 1] = host_vals(nb_grad(leaves[i]));
            nb_zero_grad(leaves[i]);
        }
    }
    const char *what[4] = {"y", "dx", "dweight", "dbias"};
    int64_t n[4] = {ROWS * D, ROWS * D, D, D};
    for (int k = 0; k < 4; k++) {
        double *ref = malloc(sizeof(double) * (size_t)n[k]);
        for (int64_t i = 0; i < n[k]; i++) ref[i] = want[k][i];
        CHECK_ARRAY(what[k], got[k], ref, n[k], 1e-4, 1e-4);
        free(ref);
    }
    nb_scope_end();
    nb_set_num_threads(threads);
}

/* Forward and backward with no scope open leave nothing behind. */
static void heap_run(void) {
    nb_tensor *x = nb_randn(NB_SHAPE(3, 4)), *w = nb_randn(NB_SHAPE(4));
    nb_set_requires_grad(x, true);
    nb_set_requires_grad(w, true);
    nb_tensor *y = nb_layer_norm(x, 1, w, NULL, 1e-5f), *yy = nb_mul(y, y), *s = nb_sum(yy);
    CHECK_EQ_INT(nb_backward(s), NB_OK);
    nb_tensor *own[] = {x, w, y, yy, s};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) nb_tensor_free(own[i]);
}

static void heap_mode_forward_and_backward_leave_nothing(void) {
    heap_run();
    size_t before = nb_alloc_stats_get().bytes_live;
    heap_run();
    CHECK_BYTES_BACK("layer_norm forward and backward", before);
}

static void bad_inputs_are_refused_with_their_names(void) {
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(2, 3, 4));
    CHECK(nb_layer_norm(x, 4, NULL, NULL, 1e-5f) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "layer_norm: input [2,3,4] has no 4 trailing dims to normalise");
    CHECK(nb_layer_norm(x, 0, NULL, NULL, 1e-5f) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "has no 0 trailing dims");
    CHECK(nb_layer_norm(x, 2, nb_randn(NB_SHAPE(4, 3)), NULL, 1e-5f) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "layer_norm: weight [4,3] is not the normalised shape [3,4] of input [2,3,4]");
    CHECK(nb_layer_norm(x, 1, NULL, nb_randn(NB_SHAPE(3)), 1e-5f) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "bias [3] is not the normalised shape [4]");
    CHECK(nb_layer_norm(x, 1, NULL, NULL, -1.0f) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "eps -1 is not a finite number >= 0");
    CHECK(nb_layer_norm(x, 1, NULL, NULL, NAN) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "eps nan");
    CHECK(nb_layer_norm(NULL, 1, NULL, NULL, 1e-5f) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_NULL);
    nb_error_clear();
    nb_scope_end();
}

int main(void) {
    forward_keeps_only_the_result_and_row_statistics();
    long_rows_match_the_function_written_with_ops();
    heap_mode_forward_and_backward_leave_nothing();
    bad_inputs_are_refused_with_their_names();
    return check_summary();
}
