/*
 * test_errors.c — every user mistake returns NULL (or a status) with a code and a message that
 * names the op and the shapes, and nothing aborts.  Also: a NULL anywhere in a chain of calls
 * comes out at the end with the first failure's message, mixed devices are refused, and
 * nb_to_device says what this build lacks.
 *
 * The device test is white-box: there is no CUDA backend in this build, so it includes
 * core/core.h and marks a CPU tensor as a CUDA one to reach nb__apply's device check.  The
 * dtype tests read the op table (ops/op.h): its rows, not the ops, say which dtypes an op takes.
 */
#include "check.h"
#include "core/core.h"
#include "ops/op.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- shapes */

static void matmul_rejects_inner_mismatch(void) {
    nb_scope_begin();
    nb_tensor *a = nb_zeros(NB_SHAPE(64, 784)), *b = nb_zeros(NB_SHAPE(64, 10));
    CHECK(nb_matmul(a, b) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "matmul: [64,784] @ [64,10]: inner sizes differ");
    CHECK(nb_matmul(nb_zeros(NB_SHAPE(2, 3, 4)), nb_zeros(NB_SHAPE(5, 6))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "matmul: [2,3,4] @ [5,6]: inner sizes differ");
    CHECK(nb_matmul(nb_zeros(NB_SHAPE(2, 3, 4)), nb_zeros(NB_SHAPE(3, 4, 5))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "matmul: [2,3,4] @ [3,4,5]: batch dims do not broadcast");
    CHECK(nb_matmul(nb_zeros(0, NULL), b) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "matmul: [] @ [64,10]: operands must have at least one dim");
    nb_scope_end();
}

/* A 1-D operand is promoted to a matrix inside matmul; the message names what the user gave.
 * Run with no scope open: the promoted views must not leak on the error path. */
static void matmul_names_the_users_shapes_for_vectors(void) {
    nb_tensor *v3 = nb_zeros(NB_SHAPE(3)), *v4 = nb_zeros(NB_SHAPE(4)), *m = nb_zeros(NB_SHAPE(4, 2));
    CHECK(nb_matmul(v3, v4) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "matmul: [3] @ [4]: inner sizes differ");
    CHECK(nb_matmul(v3, m) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "matmul: [3] @ [4,2]: inner sizes differ");
    CHECK(nb_matmul(m, v4) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "matmul: [4,2] @ [4]: inner sizes differ");
    nb_tensor_free(v3), nb_tensor_free(v4), nb_tensor_free(m);
}

static void add_rejects_shapes_that_do_not_broadcast(void) {
    nb_scope_begin();
    nb_tensor *a = nb_zeros(NB_SHAPE(2, 3)), *b = nb_zeros(NB_SHAPE(4));
    CHECK(nb_add(a, b) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "add: [2,3] and [4] do not broadcast");
    CHECK(nb_mul(nb_zeros(NB_SHAPE(2, 1, 3)), nb_zeros(NB_SHAPE(5, 2))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "mul: [2,1,3] and [5,2] do not broadcast");
    CHECK(nb_where(nb_zeros(NB_SHAPE(4)), a, a) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "where: condition [4], [2,3] and [2,3] do not broadcast");
    nb_scope_end();
}

static void dims_out_of_range_or_repeated_are_rejected(void) {
    nb_scope_begin();
    nb_tensor *a = nb_zeros(NB_SHAPE(2, 3));
    CHECK(nb_softmax(a, 5) == NULL);
    CHECK_ERROR(NB_ERR_DIM, "softmax: dim 5 is out of range for a tensor of rank 2");
    CHECK(nb_log_softmax(a, -3) == NULL);
    CHECK_ERROR(NB_ERR_DIM, "log_softmax: dim -3 is out of range for a tensor of rank 2");
    CHECK(nb_sum_dims(a, 2, (int[]){0, -2}, false) == NULL);
    CHECK_ERROR(NB_ERR_DIM, "sum: dim 0 appears twice");
    CHECK(nb_mean_dims(a, 3, (int[]){0, 1, 0}, false) == NULL);
    CHECK_ERROR(NB_ERR_DIM, "mean: 3 dims given for a tensor of rank 2");
    CHECK(nb_max_dims(a, 1, (int[]){2}, true) == NULL);
    CHECK_ERROR(NB_ERR_DIM, "max: dim 2 is out of range for a tensor of rank 2");
    CHECK(nb_permute(a, 2, (int[]){1, 1}) == NULL);
    CHECK_ERROR(NB_ERR_DIM, "permute: dim 1 appears twice");
    CHECK(nb_permute(a, 1, (int[]){0}) == NULL);
    CHECK_ERROR(NB_ERR_DIM, "permute: [2,3] needs a permutation of 2 dims, got 1");
    CHECK(nb_transpose(a, 0, 2) == NULL);
    CHECK_ERROR(NB_ERR_DIM, "transpose: dim 2 is out of range for a tensor of rank 2");
    CHECK(nb_argmax(a, -3, false) == NULL);
    CHECK_ERROR(NB_ERR_DIM, "argmax: dim -3 is out of range");
    CHECK(nb_unsqueeze(a, 3) == NULL);
    CHECK_ERROR(NB_ERR_DIM, "unsqueeze: dim 3 is out of range for a tensor of rank 3");
    CHECK(nb_flatten(a, 1, 0) == NULL);
    CHECK_ERROR(NB_ERR_DIM, "flatten: start_dim 1 comes after end_dim 0");
    CHECK(nb_concat(1, &a, 2) == NULL);
    CHECK_ERROR(NB_ERR_DIM, "concat: dim 2 is out of range");
    nb_scope_end();
}

static void slice_rejects_a_step_of_zero(void) {
    nb_scope_begin();
    nb_tensor *a = nb_arange(0, 10, 1);
    CHECK(nb_slice(a, 0, 0, 10, 0) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "slice: step must be positive, got 0");
    CHECK(nb_slice(a, 0, 10, 0, -1) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "slice: step must be positive, got -1");
    CHECK(nb_slice(a, 1, 0, 1, 1) == NULL);
    CHECK_ERROR(NB_ERR_DIM, "slice: dim 1 is out of range for a tensor of rank 1");
    nb_scope_end();
}

static void reshape_and_expand_reject_impossible_shapes(void) {
    nb_scope_begin();
    nb_tensor *a = nb_zeros(NB_SHAPE(2, 3));
    CHECK(nb_reshape(a, NB_SHAPE(4, 2)) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "reshape: [2,3] (6 elements) cannot become [4,2]");
    CHECK(nb_reshape(a, NB_SHAPE(-1, 4)) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "reshape: [2,3] (6 elements) cannot become [-1,4]");
    CHECK(nb_reshape(a, NB_SHAPE(-1, -1)) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "reshape: [-1,-1]: invalid size in dim 1");
    CHECK(nb_view(a, NB_SHAPE(7)) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "view: [2,3] (6 elements) cannot become [7]");
    nb_tensor *col = nb_zeros(NB_SHAPE(3, 1));
    CHECK(nb_expand(col, NB_SHAPE(2, 4)) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "expand: [3,1] cannot expand to [2,4] (dim 0)");
    CHECK(nb_expand(col, NB_SHAPE(3)) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "expand: [3,1] cannot expand to rank 1");
    CHECK(nb_zeros(NB_SHAPE(2, -1)) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "[2,-1]: negative size in dim 1");
    CHECK(nb_ones(9, (int64_t[9]){1, 1, 1, 1, 1, 1, 1, 1, 1}) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "rank 9 is outside 0..8");
    CHECK(nb_from_data(NULL, NB_SHAPE(2)) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "from_data: data is NULL");
    nb_scope_end();
}

static void gather_rejects_bad_indices(void) {
    nb_scope_begin();
    nb_tensor *a = nb_reshape(nb_arange(0, 6, 1), NB_SHAPE(2, 3));
    nb_tensor *idx = nb_from_int32((int32_t[]){0, 3}, NB_SHAPE(1, 2));
    CHECK(nb_gather(a, 1, idx) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "gather: index 3 is out of range for dim 1 of size 3");
    CHECK(nb_gather(a, 0, nb_from_int32((int32_t[]){-1}, NB_SHAPE(1, 1))) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "gather: index -1 is out of range for dim 0 of size 2");
    CHECK(nb_gather(a, 1, nb_zeros(NB_SHAPE(1, 2))) == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "gather: index must be int32, got float32");
    CHECK(nb_gather(a, 1, nb_from_int32((int32_t[]){0, 1}, NB_SHAPE(2))) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "gather: index [2] does not fit [2,3]");
    CHECK(nb_index_select(a, 0, nb_from_int32((int32_t[]){1, 2}, NB_SHAPE(2))) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "index_select: index 2 is out of range for dim 0 of size 2");
    CHECK(nb_index_select(a, 0, nb_zeros(NB_SHAPE(2))) == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "index_select: index must be int32, got float32");
    nb_scope_end();

    /* the same failures with no scope open leave nothing behind (a transposed index is
     * copied before it is checked) */
    nb_tensor *ha = nb_zeros(NB_SHAPE(3, 3));
    nb_tensor *hi = nb_from_int32((int32_t[]){0, 1, 2, 5, 0, 0, 0, 0, 0}, NB_SHAPE(3, 3));
    nb_tensor *ht = nb_transpose(hi, 0, 1);
    CHECK(nb_gather(ha, 0, ht) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "gather: index 5 is out of range for dim 0 of size 3");
    nb_tensor_free(ht), nb_tensor_free(hi), nb_tensor_free(ha);
}

static void concat_and_stack_reject_mismatched_shapes(void) {
    nb_scope_begin();
    nb_tensor *a = nb_zeros(NB_SHAPE(2, 3)), *b = nb_zeros(NB_SHAPE(2, 4));
    CHECK(nb_concat(2, (nb_tensor *[]){a, b}, 0) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "concat: input 1 [2,4] does not fit input 0 [2,3] outside dim 0");
    CHECK(nb_concat(2, (nb_tensor *[]){a, nb_zeros(NB_SHAPE(6))}, 0) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "concat: input 1 [6] does not fit input 0 [2,3]");
    CHECK(nb_concat(0, NULL, 0) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "concat: needs at least one tensor");
    CHECK(nb_stack(2, (nb_tensor *[]){a, b}, 0) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "stack: input 1 [2,4] differs from input 0 [2,3]");
    nb_scope_end();
}

static void bad_scalar_arguments_are_rejected(void) {
    nb_scope_begin();
    CHECK(nb_clamp(nb_zeros(NB_SHAPE(2)), 2, 1) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "clamp: min 2 is greater than max 1");
    CHECK(nb_arange(0, 1, 0) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "arange: start 0, end 1, step 0");
    CHECK(nb_arange(0, INFINITY, 1) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "arange: start 0, end inf, step 1: need finite values");
    CHECK(isnan(nb_item(nb_zeros(NB_SHAPE(3)))));
    CHECK_ERROR(NB_ERR_SHAPE, "item: [3] has 3 elements, not 1");
    CHECK(nb_to_dtype(nb_zeros(NB_SHAPE(2)), (nb_dtype)42) == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "to_dtype: unknown dtype 42");
    CHECK(nb_exp(nb_to_dtype(nb_zeros(NB_SHAPE(2)), NB_I32)) == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "exp: no int32 kernel (inputs int32 [2])");
    nb_scope_end();
}

/* ---------------------------------------------------------------- autograd */

static void backward_rejects_misuse(void) {
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){1, 2, 3}, NB_SHAPE(3));
    nb_set_requires_grad(x, true);
    nb_tensor *y = nb_mul(x, x);
    CHECK_EQ_INT(nb_backward(y), NB_ERR_GRAPH);
    CHECK_ERROR(NB_ERR_GRAPH, "backward: a gradient can be implied only for a one-element "
                              "output; [3] has 3 elements");
    CHECK_EQ_INT(nb_backward_grad(y, nb_ones(NB_SHAPE(2))), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "backward: gradient [2] does not match output [3]");
    CHECK_EQ_INT(nb_backward(nb_full(0, NULL, 1)), NB_ERR_GRAPH);
    CHECK_ERROR(NB_ERR_GRAPH, "backward: [] does not require grad and has no grad_fn");
    CHECK(nb_grad(x) == NULL); /* nothing was accumulated by the failed calls */
    CHECK_EQ_INT(nb_set_requires_grad(y, false), NB_ERR_GRAPH);
    CHECK_ERROR(NB_ERR_GRAPH, "set_requires_grad: [3] is not a leaf (made by MulBackward0)");
    CHECK_EQ_INT(nb_set_requires_grad(nb_from_int32((int32_t[]){1}, NB_SHAPE(1)), true), NB_ERR_DTYPE);
    CHECK_ERROR(NB_ERR_DTYPE, "set_requires_grad: only float32 tensors can require grad, not int32");
    /* after all that, a proper backward still works */
    CHECK_EQ_INT(nb_backward_grad(y, nb_ones(NB_SHAPE(3))), NB_OK);
    CHECK_TENSOR("2x", nb_grad(x), ((double[]){2, 4, 6}), 3, 0, 0);
    nb_scope_end();
}

static void backward_after_the_scope_ended_is_a_scope_error(void) {
    nb_scope_begin();
    nb_tensor *x = nb_ones(NB_SHAPE(2));
    nb_set_requires_grad(x, true);
    nb_tensor *loss = nb_sum(nb_mul(x, x));
    nb_scope_end();
    CHECK(!nb_is_alive(loss));
    CHECK_EQ_INT(nb_backward(loss), NB_ERR_SCOPE);
    CHECK_ERROR(NB_ERR_SCOPE, "backward: input tensor belongs to a scope that has ended");
    CHECK(nb_exp(x) == NULL);
    CHECK_ERROR(NB_ERR_SCOPE, "exp: input tensor belongs to a scope that has ended");
    CHECK(nb_add(x, loss) == NULL);
    CHECK_ERROR(NB_ERR_SCOPE, "add: input tensor belongs to a scope that has ended");
    CHECK(isnan(nb_item(loss)));
    CHECK_ERROR(NB_ERR_SCOPE, "item: input tensor belongs to a scope that has ended");
    CHECK(nb_persist(x) == NULL);
    CHECK_ERROR(NB_ERR_SCOPE, "persist: input tensor belongs to a scope that has ended");
    CHECK_EQ_INT(nb_numel(x), -1);
    CHECK_ERROR(NB_ERR_SCOPE, "numel");
}

/* ---------------------------------------------------------------- scopes */

static void unbalanced_scopes_are_reported(void) {
    CHECK_EQ_INT(nb_scope_depth(), 0);
    CHECK_EQ_INT(nb_scope_end(), NB_ERR_SCOPE);
    CHECK_ERROR(NB_ERR_SCOPE, "scope_end: no scope is open");
    CHECK(nb_scope_end_keep(NULL) == NULL);
    CHECK_ERROR(NB_ERR_SCOPE, "scope_end_keep: no scope is open");
    /* one level too deep: the begin is counted so that begin/end stay paired, and the matching
     * end reports it */
    for (int i = 0; i < 33; i++) nb_scope_begin();
    CHECK_ERROR(NB_ERR_SCOPE, "scope_begin: more than 32 nested scopes");
    CHECK_EQ_INT(nb_scope_end(), NB_ERR_SCOPE);
    CHECK_ERROR(NB_ERR_SCOPE, "scope_end: more than 32 nested scopes");
    CHECK_EQ_INT(nb_scope_depth(), 32);
    for (int i = 0; i < 32; i++) CHECK_EQ_INT(nb_scope_end(), NB_OK);
    CHECK_EQ_INT(nb_scope_depth(), 0);
}

/* ---------------------------------------------------------------- NULL propagation */

static void a_failed_chain_returns_null_and_keeps_the_first_error(void) {
    nb_scope_begin();
    nb_tensor *a = nb_ones(NB_SHAPE(64, 784)), *w = nb_ones(NB_SHAPE(64, 10));
    nb_tensor *idx = nb_from_int32((int32_t[]){0}, NB_SHAPE(1, 1));
    nb_tensor *h = nb_matmul(a, w); /* fails */
    nb_tensor *t = nb_relu(h);
    t = nb_add(t, nb_ones(NB_SHAPE(10)));
    t = nb_mul_scalar(t, 2);
    t = nb_clamp(t, -1, 1);
    t = nb_softmax(t, 1);
    t = nb_log_softmax(t, 1);
    t = nb_reshape(t, NB_SHAPE(-1));
    t = nb_view(t, NB_SHAPE(-1));
    t = nb_unsqueeze(t, 0);
    t = nb_squeeze(t, 0);
    t = nb_flatten(t, 0, -1);
    t = nb_transpose(t, 0, 0);
    t = nb_permute(t, 1, (int[]){0});
    t = nb_slice(t, 0, 0, 5, 1);
    t = nb_expand(t, NB_SHAPE(2, -1));
    t = nb_contiguous(t);
    t = nb_concat(2, (nb_tensor *[]){t, a}, 0);
    t = nb_stack(2, (nb_tensor *[]){a, t}, 0);
    t = nb_where(t, a, a);
    t = nb_gather(t, 0, idx);
    t = nb_index_select(t, 0, idx);
    t = nb_sum_dims(t, 1, (int[]){0}, true);
    t = nb_max(t);
    t = nb_mean(t);
    t = nb_argmax(t, NB_ALL, false);
    t = nb_to_dtype(t, NB_F32);
    t = nb_to_device(t, NB_CPU);
    t = nb_detach(t);
    t = nb_persist(t);
    t = nb_bernoulli(t);
    t = nb_zeros_like(t);
    CHECK(t == NULL);
    CHECK_EQ_INT(nb_backward(t), NB_ERR_SHAPE);
    CHECK(isnan(nb_item(t)));
    CHECK(nb_scope_end_keep(t) == NULL); /* ends the scope anyway */
    CHECK_EQ_INT(nb_scope_depth(), 0);
    CHECK_ERROR(NB_ERR_SHAPE, "matmul: [64,784] @ [64,10]: inner sizes differ");
}

static void ops_given_null_return_null_with_a_null_error(void) {
    CHECK(nb_relu(NULL) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "relu: input tensor is NULL");
    nb_tensor *one = nb_ones(NB_SHAPE(1));
    CHECK(nb_add(one, NULL) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "add: input tensor is NULL");
    CHECK(nb_matmul(NULL, one) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "matmul: input tensor is NULL");
    CHECK(nb_reshape(NULL, NB_SHAPE(1)) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "reshape: input tensor is NULL");
    CHECK(nb_concat(2, (nb_tensor *[]){one, NULL}, 0) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "concat: input tensor is NULL");
    CHECK_EQ_INT(nb_backward(NULL), NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "backward: input tensor is NULL");
    CHECK_EQ_INT(nb_set_requires_grad(NULL, true), NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "set_requires_grad: input tensor is NULL");
    CHECK_EQ_INT(nb_fill(NULL, 1), NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "fill: input tensor is NULL");
    CHECK_EQ_INT(nb_ndim(NULL), -1);
    CHECK_ERROR(NB_ERR_NULL, "ndim: input tensor is NULL");
    CHECK(!nb_is_alive(NULL) && !nb_requires_grad(NULL) && nb_grad(NULL) == NULL);
    CHECK(nb_grad_fn(NULL) == NULL);
    char buf[32];
    nb_format(NULL, buf, sizeof buf);
    CHECK_STR_CONTAINS(buf, "tensor(<invalid>)");
    CHECK_ERROR(NB_ERR_NULL, "format: input tensor is NULL");
    nb_tensor_free(NULL); /* does nothing */
    nb_tensor_free(one);
}

/* ---------------------------------------------------------------- devices */

static void mixed_devices_are_refused_naming_both(void) {
    nb_tensor *a = nb_ones(NB_SHAPE(2, 2)), *b = nb_ones(NB_SHAPE(2, 2));
    b->device = NB_CUDA;
    CHECK(nb_add(a, b) == NULL);
    CHECK_ERROR(NB_ERR_DEVICE, "add: input 0 is on cpu but input 1 is on cuda");
    CHECK(nb_matmul(b, a) == NULL);
    CHECK_ERROR(NB_ERR_DEVICE, "matmul: input 0 is on cuda but input 1 is on cpu");
    CHECK(nb_where(a, a, b) == NULL);
    CHECK_ERROR(NB_ERR_DEVICE, "where: input 0 is on cpu but input 2 is on cuda");
    CHECK(nb_exp(b) == NULL);
    CHECK_ERROR(NB_ERR_DEVICE, "exp: this build has no backend for the tensor's device");
    CHECK(nb_to_device(b, NB_CPU) == NULL);
    CHECK_ERROR(NB_ERR_DEVICE, "to_device: this build has no cuda backend");
    b->device = NB_CPU;
    nb_tensor_free(a), nb_tensor_free(b);
}

static void to_device_copies_on_cpu_and_refuses_cuda(void) {
    nb_tensor *base = nb_arange(0, 6, 1), *m = nb_reshape(base, NB_SHAPE(2, 3));
    nb_tensor *a = nb_transpose(m, 0, 1);
    nb_tensor *c = nb_to_device(a, NB_CPU); /* no scope open: the caller owns it */
    CHECK(c != NULL && c != a);
    CHECK(!nb_shares_storage(a, c));
    CHECK(nb_is_contiguous(c));
    CHECK_EQ_INT(nb_device_of(c), NB_CPU);
    CHECK_TENSOR("copy", c, ((double[]){0, 3, 1, 4, 2, 5}), 6, 0, 0);
    CHECK(nb_to_device(a, NB_CUDA) == NULL);
    CHECK_ERROR(NB_ERR_DEVICE, "to_device: this build has no cuda backend");
    CHECK(nb_to_device(a, (nb_device)7) == NULL);
    CHECK_ERROR(NB_ERR_DEVICE, "to_device: unknown device 7");
    nb_tensor_free(c), nb_tensor_free(a), nb_tensor_free(m), nb_tensor_free(base);

    /* in a scope the copy belongs to the scope, and it does not carry the graph */
    nb_scope_begin();
    nb_tensor *x = nb_ones(NB_SHAPE(2));
    nb_set_requires_grad(x, true);
    nb_tensor *y = nb_to_device(nb_mul_scalar(x, 3), NB_CPU);
    CHECK(!nb_requires_grad(y) && nb_grad_fn(y) == NULL);
    CHECK_TENSOR("scoped copy", y, ((double[]){3, 3}), 2, 0, 0);
    nb_scope_end();
    CHECK(!nb_is_alive(y));
}

/* ---------------------------------------------------------------- dtypes (the op table) */

static void an_op_without_a_kernel_for_a_dtype_names_it_and_the_inputs(void) {
    nb_scope_begin();
    nb_tensor *h = nb_to_dtype(nb_zeros(NB_SHAPE(2, 3)), NB_F16);
    CHECK(nb_add(h, h) == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "add: no float16 kernel (inputs float16 [2,3], float16 [2,3])");
    CHECK(nb_matmul(nb_to_dtype(nb_zeros(NB_SHAPE(2, 2)), NB_BF16), nb_zeros(NB_SHAPE(2, 2))) == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "matmul: no bfloat16 kernel (inputs bfloat16 [2,2], float32 [2,2])");
    CHECK(nb_add(nb_zeros(NB_SHAPE(2)), nb_from_int32((int32_t[]){1, 2}, NB_SHAPE(2))) == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "add: inputs must share one dtype (inputs float32 [2], int32 [2])");
    nb_scope_end();
}

/* Views and copies only move elements, so their rows take every dtype. */
static void views_and_copies_take_every_dtype(void) {
    nb_scope_begin();
    nb_tensor *i = nb_from_int32((int32_t[]){1, 2, 3, 4, 5, 6}, NB_SHAPE(2, 3));
    nb_tensor *t = nb_contiguous(nb_transpose(i, 0, 1));
    CHECK(t && nb_dtype_of(t) == NB_I32 && nb_get(t, NB_INDEX(2, 0)) == 3.0f);
    nb_tensor *h = nb_reshape(nb_to_dtype(nb_ones(NB_SHAPE(2, 3)), NB_F16), NB_SHAPE(3, 2));
    CHECK(h && nb_dtype_of(h) == NB_F16 && nb_get(h, NB_INDEX(2, 1)) == 1.0f);
    nb_tensor *c = nb_concat(2, (nb_tensor *[]){i, i}, 0);
    CHECK(c && nb_dtype_of(c) == NB_I32 && nb_get(c, NB_INDEX(3, 2)) == 6.0f);
    nb_scope_end();
}

/* What the compiler cannot check of the table (table.c checks the rest): names unique, input
 * rules T or I with a T first (its dtype picks the kernels), a float32 kernel in every row, a backward exactly where there is a grad_fn. */
static void every_op_row_is_well_formed(void) {
    for (int op = 0; op < NB_OP_COUNT; op++) {
        const nb_op_def *d = &nb__ops[op];
        CHECK(d->name && d->inputs[0] == 'T' && strspn(d->inputs, "TI") == strlen(d->inputs));
        for (int other = 0; other < op; other++) CHECK(strcmp(d->name, nb__ops[other].name) != 0);
        CHECK(d->kernels[NB_F32].forward != NULL);
        CHECK((d->kernels[NB_F32].backward != NULL) == (d->grad_fn != NULL));
        for (int dt = 0; dt < NB_DTYPE_COUNT; dt++)
            if (dt != NB_F32) CHECK(d->kernels[dt].backward == NULL); /* float32 alone has grad */
    }
}

int main(void) {
    matmul_rejects_inner_mismatch();
    matmul_names_the_users_shapes_for_vectors();
    add_rejects_shapes_that_do_not_broadcast();
    dims_out_of_range_or_repeated_are_rejected();
    slice_rejects_a_step_of_zero();
    reshape_and_expand_reject_impossible_shapes();
    gather_rejects_bad_indices();
    an_op_without_a_kernel_for_a_dtype_names_it_and_the_inputs();
    views_and_copies_take_every_dtype();
    every_op_row_is_well_formed();
    concat_and_stack_reject_mismatched_shapes();
    bad_scalar_arguments_are_rejected();
    backward_rejects_misuse();
    backward_after_the_scope_ended_is_a_scope_error();
    unbalanced_scopes_are_reported();
    a_failed_chain_returns_null_and_keeps_the_first_error();
    ops_given_null_return_null_with_a_null_error();
    mixed_devices_are_refused_naming_both();
    to_device_copies_on_cpu_and_refuses_cuda();
    CHECK_EQ_INT(nb_error_code(), NB_OK); /* every expected error was seen and cleared */
    return check_summary();
}
