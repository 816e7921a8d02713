/*
 * test_memory.c — who owns what.  Scopes release everything made inside them (nested scopes
 * independently); nb_scope_end_keep and nb_persist hand a copy out; with no scope open the
 * caller owns results, a graph keeps the inputs it uses alive, and freeing everything brings
 * the live byte count back to where it was.  Last, the promise of the design: a training step
 * inside a scope, once warm, calls malloc zero times.
 */
#include "check.h"

#include <math.h>

static void everything_made_in_a_scope_is_dead_after_it(void) {
    nb_scope_begin();
    CHECK_EQ_INT(nb_scope_depth(), 1);
    nb_tensor *x = nb_randn(NB_SHAPE(4, 3));
    nb_set_requires_grad(x, true);
    nb_tensor *v = nb_transpose(x, 0, 1);
    nb_tensor *y = nb_sum(nb_relu(nb_matmul(v, x)));
    CHECK_EQ_INT(nb_backward(y), NB_OK);
    nb_tensor *g = nb_grad(x);
    nb_tensor *i = nb_from_int32((int32_t[]){1, 2}, NB_SHAPE(2));
    CHECK(nb_is_alive(x) && nb_is_alive(v) && nb_is_alive(y) && nb_is_alive(g) && nb_is_alive(i));
    CHECK_EQ_INT(nb_scope_end(), NB_OK);
    CHECK_EQ_INT(nb_scope_depth(), 0);
    CHECK(!nb_is_alive(x));
    CHECK(!nb_is_alive(v));
    CHECK(!nb_is_alive(y));
    CHECK(!nb_is_alive(g));
    CHECK(!nb_is_alive(i));
}

static void nested_scopes_release_only_their_own_tensors(void) {
    nb_scope_begin();
    nb_tensor *outer = nb_ones(NB_SHAPE(3));
    nb_scope_begin();
    CHECK_EQ_INT(nb_scope_depth(), 2);
    nb_tensor *inner = nb_mul_scalar(outer, 2);
    nb_tensor *view = nb_slice(outer, 0, 1, 3, 1); /* a view of an outer tensor, made inside */
    nb_scope_end();
    CHECK(!nb_is_alive(inner));
    CHECK(!nb_is_alive(view));
    CHECK(nb_is_alive(outer));
    CHECK_TENSOR("outer intact", outer, ((double[]){1, 1, 1}), 3, 0, 0);
    nb_tensor_free(outer); /* a scope's tensor is the scope's to release: ignored */
    CHECK(nb_is_alive(outer));
    nb_tensor *later = nb_add_scalar(outer, 1); /* the outer scope goes on allocating */
    CHECK_TENSOR("later", later, ((double[]){2, 2, 2}), 3, 0, 0);
    nb_scope_end();
    CHECK(!nb_is_alive(outer));
    CHECK(!nb_is_alive(later));
}

static void scope_end_keep_hands_a_detached_copy_outwards(void) {
    nb_scope_begin();
    nb_scope_begin();
    nb_tensor *w = nb_reshape(nb_arange(0, 6, 1), NB_SHAPE(2, 3));
    nb_set_requires_grad(w, true);
    nb_tensor *t = nb_transpose(nb_mul_scalar(w, 2), 0, 1);
    nb_tensor *kept = nb_scope_end_keep(t);
    CHECK_EQ_INT(nb_scope_depth(), 1);
    CHECK(!nb_is_alive(t) && !nb_is_alive(w));
    CHECK(nb_is_alive(kept));
    CHECK(nb_is_contiguous(kept));
    CHECK(!nb_requires_grad(kept) && nb_grad_fn(kept) == NULL); /* detached */
    CHECK_EQ_INT(nb_shape(kept)[0], 3);
    CHECK_TENSOR("kept", kept, ((double[]){0, 6, 2, 8, 4, 10}), 6, 0, 0);
    nb_scope_end(); /* it belonged to the outer scope */
    CHECK(!nb_is_alive(kept));

    /* at depth 1 the copy goes to the caller, who frees it */
    nb_alloc_stats before = nb_alloc_stats_get();
    nb_scope_begin();
    nb_tensor *mine = nb_scope_end_keep(nb_full(NB_SHAPE(2), 4));
    CHECK_EQ_INT(nb_scope_depth(), 0);
    CHECK(nb_is_alive(mine));
    CHECK_TENSOR("caller's copy", mine, ((double[]){4, 4}), 2, 0, 0);
    CHECK(nb_alloc_stats_get().bytes_live > before.bytes_live);
    nb_tensor_free(mine);
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, before.bytes_live);
}

static void persist_copies_out_of_any_scope(void) {
    nb_alloc_stats before = nb_alloc_stats_get();
    nb_scope_begin();
    nb_scope_begin();
    nb_tensor *x = nb_arange(0, 4, 1);
    nb_set_requires_grad(x, true);
    nb_tensor *p = nb_persist(nb_mul_scalar(x, -1));
    nb_scope_end();
    nb_scope_end();
    CHECK(nb_is_alive(p));
    CHECK(!nb_requires_grad(p));
    CHECK_TENSOR("persisted", p, ((double[]){0, -1, -2, -3}), 4, 0, 0);
    nb_tensor_free(p);
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, before.bytes_live);
}

/* With no scope open every result is the caller's; a node holds a reference on each input, so
 * freeing the inputs first is safe and the memory goes when the last user lets go. */
static void heap_results_are_owned_and_graphs_keep_inputs_alive(void) {
    nb_release_memory(); /* so that bytes_live counts tensors only, not cached arena blocks */
    size_t baseline = nb_alloc_stats_get().bytes_live;

    nb_tensor *x = nb_from_data((float[]){1, 2, 3}, NB_SHAPE(3));
    nb_tensor *w = nb_from_data((float[]){4, 5, 6}, NB_SHAPE(3));
    nb_set_requires_grad(x, true);
    nb_tensor *y = nb_mul(x, w);
    nb_tensor_free(w); /* y's node still holds x and w */
    CHECK(nb_is_alive(w));
    nb_tensor *loss = nb_sum(y);
    nb_tensor_free(y);
    CHECK_EQ_INT(nb_backward(loss), NB_OK); /* walks through y and reads w */
    CHECK_TENSOR("dx = w", nb_grad(x), ((double[]){4, 5, 6}), 3, 0, 0);
    CHECK_NEAR(nb_item(loss), 32, 0, 0);
    nb_tensor_free(x); /* the graph keeps x; the grad stays with it */
    nb_tensor_free(loss);

    /* views share storage by reference: the base may go first */
    nb_tensor *flat = nb_arange(0, 6, 1), *base = nb_reshape(flat, NB_SHAPE(2, 3));
    nb_tensor *t = nb_transpose(base, 0, 1);
    nb_tensor_free(flat);
    nb_tensor_free(base);
    CHECK_TENSOR("view outlives base", t, ((double[]){0, 3, 1, 4, 2, 5}), 6, 0, 0);
    nb_tensor_free(t);

    /* a heap tensor used inside a scope stays alive while the scope's graph needs it */
    nb_tensor *h = nb_ones(NB_SHAPE(2));
    nb_set_requires_grad(h, true);
    nb_scope_begin();
    nb_tensor *s = nb_sum(nb_mul_scalar(h, 3));
    nb_tensor_free(h);
    CHECK(nb_is_alive(h));
    CHECK_EQ_INT(nb_backward(s), NB_OK);
    CHECK_TENSOR("dh", nb_grad(h), ((double[]){3, 3}), 2, 0, 0);
    nb_scope_end();

    /* a scope's view of heap storage keeps the storage after the heap tensor is freed */
    nb_tensor *hb = nb_from_data((float[]){1, 2, 3, 4}, NB_SHAPE(2, 2));
    nb_scope_begin();
    nb_tensor *hv = nb_transpose(hb, 0, 1);
    nb_tensor_free(hb);
    CHECK_TENSOR("view of freed heap tensor", hv, ((double[]){1, 3, 2, 4}), 4, 0, 0);
    nb_scope_end();

    nb_release_memory();
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, baseline);
}

static void heap_intermediates_of_composite_ops_are_not_leaked(void) {
    nb_release_memory();
    size_t baseline = nb_alloc_stats_get().bytes_live;
    nb_tensor *v = nb_from_data((float[]){1, 2, 3}, NB_SHAPE(3));
    nb_tensor *m = nb_ones(NB_SHAPE(3, 2));
    nb_set_requires_grad(v, true);
    nb_tensor *vm = nb_matmul(v, m); /* promotes v to [1,3] and squeezes the result */
    nb_tensor *ones = nb_ones(NB_SHAPE(2, 3)), *mv = nb_matmul(ones, v);
    nb_tensor *st = nb_stack(2, (nb_tensor *[]){vm, mv}, 0);
    nb_tensor *am = nb_argmax(st, NB_ALL, false);
    nb_tensor *total = nb_sum(st);
    CHECK_EQ_INT(nb_backward(total), NB_OK);
    CHECK_TENSOR("d total / dv", nb_grad(v), ((double[]){4, 4, 4}), 3, 0, 0);
    CHECK_EQ_INT(nb_ndim(vm), 1);
    CHECK_NEAR(nb_item(am), 0, 0, 0);
    nb_tensor *all[] = {v, m, ones, vm, mv, st, am, total};
    for (int i = 0; i < 8; i++) nb_tensor_free(all[i]);
    nb_release_memory();
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, baseline);
}

/* The composite rule (nb__temps): a Sequential of 40 children holds more temps than its first
 * 16 slots, and with no scope open leaves only its result; backward through it still works,
 * and an empty Sequential hands out its input with a reference of its own. */
static void a_long_composite_without_a_scope_leaves_only_its_result(void) {
    nb_release_memory();
    size_t baseline = nb_alloc_stats_get().bytes_live;
    nb_module *kids[40];
    for (int i = 0; i < 40; i++) kids[i] = nb_activation_new(NB_ACT_TANH, 0);
    nb_module *seq = nb_sequential_new(40, kids), *empty = nb_sequential_new(0, NULL);
    nb_tensor *x = nb_from_data((float[]){0.5f, -1.0f}, NB_SHAPE(2));
    nb_set_requires_grad(x, true);
    nb_tensor *y = nb_module_forward(seq, x), *total = nb_sum(y);
    CHECK_EQ_INT(nb_backward(total), NB_OK);
    double v = 0.5, g = 1.0; /* tanh applied 40 times, and the chain rule through it */
    for (int i = 0; i < 40; i++) {
        g *= 1.0 - tanh(v) * tanh(v);
        v = tanh(v);
    }
    CHECK_NEAR(nb_get(y, NB_INDEX(0)), v, 1e-6, 1e-5);
    CHECK_NEAR(nb_get(nb_grad(x), NB_INDEX(0)), g, 1e-6, 1e-4);
    nb_tensor *same = nb_module_forward(empty, x);
    CHECK(same == x);
    nb_tensor_free(same);
    CHECK(nb_is_alive(x)); /* the reference handed out was its own */
    nb_tensor *all[] = {y, total, x};
    for (int i = 0; i < 3; i++) nb_tensor_free(all[i]);
    nb_module_free(seq);
    nb_module_free(empty);
    nb_release_memory();
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, baseline);
}

/* A loss made of many ops (bce with logits, pos_weight) in a scope: no malloc once warm. */
static void a_composite_in_a_scope_calls_malloc_zero_times_once_warm(void) {
    nb_tensor *x = nb_randn(NB_SHAPE(8, 3)), *t = nb_rand(NB_SHAPE(8, 3));
    nb_tensor *pw = nb_from_data((float[]){1, 2, 3}, NB_SHAPE(3));
    nb_set_requires_grad(x, true);
    uint64_t mallocs = 0;
    for (int step = 0; step < 3; step++) {
        if (step == 2) mallocs = nb_alloc_stats_get().mallocs;
        nb_scope_begin();
        nb_backward(nb_bce_with_logits_loss(x, t, NULL, pw, NB_REDUCTION_MEAN));
        nb_scope_end();
    }
    CHECK_EQ_INT(nb_alloc_stats_get().mallocs, mallocs);
    CHECK(nb_grad(x) != NULL);
    nb_tensor_free(x);
    nb_tensor_free(t);
    nb_tensor_free(pw);
}

/* ---------------------------------------------------------------- zero mallocs per step */

typedef struct {
    nb_tensor *x, *target;          /* data: [32,20] f32, [32,1] int32 */
    nb_tensor *w1, *b1, *w2, *b2;   /* parameters, on the heap */
} mlp;

/* One step of -mean(log_softmax(relu(x W1 + b1) W2 + b2)[target]), then SGD in place. */
static float train_step(mlp *m, float lr) {
    nb_scope_begin();
    nb_tensor *h = nb_relu(nb_add(nb_matmul(m->x, m->w1), m->b1));
    nb_tensor *logits = nb_add(nb_matmul(h, m->w2), m->b2);
    nb_tensor *picked = nb_gather(nb_log_softmax(logits, 1), 1, m->target);
    nb_tensor *loss = nb_neg(nb_mean(picked));
    float value = nb_item(loss);
    nb_backward(loss);
    nb_tensor *params[] = {m->w1, m->b1, m->w2, m->b2};
    for (int p = 0; p < 4; p++) {
        float *w = host_vals(params[p]);
        const float *g = host_vals(nb_grad(params[p]));
        for (int64_t i = 0, n = nb_numel(params[p]); i < n; i++) w[i] -= lr * g[i];
        nb_copy_from(params[p], w, nb_numel(params[p]));
        nb_zero_grad(params[p]);
    }
    nb_scope_end();
    return value;
}

/* A caller-owned N(0, s^2) matrix, scaled in place so no intermediate is left over. */
static nb_tensor *scaled_randn(int64_t rows, int64_t cols, float s) {
    nb_tensor *t = nb_randn(NB_SHAPE(rows, cols));
    float *d = host_vals(t);
    for (int64_t i = 0; i < rows * cols; i++) d[i] *= s;
    nb_copy_from(t, d, rows * cols);
    return t;
}

static void training_step_in_a_scope_calls_malloc_zero_times_once_warm(void) {
    nb_manual_seed(7);
    int32_t labels[32];
    for (int i = 0; i < 32; i++) labels[i] = (i * 7) % 4;
    mlp m = {
        .x = nb_randn(NB_SHAPE(32, 20)),
        .target = nb_from_int32(labels, NB_SHAPE(32, 1)),
        .w1 = scaled_randn(20, 16, 0.2f),
        .b1 = nb_zeros(NB_SHAPE(16)),
        .w2 = scaled_randn(16, 4, 0.2f),
        .b2 = nb_zeros(NB_SHAPE(4)),
    };
    nb_tensor *params[] = {m.w1, m.b1, m.w2, m.b2};
    for (int p = 0; p < 4; p++) nb_set_requires_grad(params[p], true);

    uint64_t cold = nb_alloc_stats_get().mallocs;
    float first = train_step(&m, 0.5f);
    CHECK(nb_alloc_stats_get().mallocs > cold); /* the counter does see the first step's blocks */
    train_step(&m, 0.5f);
    uint64_t mallocs = nb_alloc_stats_get().mallocs;
    float last = 0;
    for (int step = 0; step < 10; step++) last = train_step(&m, 0.5f);
    CHECK_EQ_INT(nb_alloc_stats_get().mallocs - mallocs, 0);
    CHECK(isfinite(first) && isfinite(last));
    CHECK(last < first * 0.8f);

    nb_tensor *all[] = {m.x, m.target, m.w1, m.b1, m.w2, m.b2};
    for (int i = 0; i < 6; i++) nb_tensor_free(all[i]);
}

int main(void) {
    everything_made_in_a_scope_is_dead_after_it();
    nested_scopes_release_only_their_own_tensors();
    scope_end_keep_hands_a_detached_copy_outwards();
    persist_copies_out_of_any_scope();
    heap_results_are_owned_and_graphs_keep_inputs_alive();
    heap_intermediates_of_composite_ops_are_not_leaked();
    a_long_composite_without_a_scope_leaves_only_its_result();
    a_composite_in_a_scope_calls_malloc_zero_times_once_warm();
    training_step_in_a_scope_calls_malloc_zero_times_once_warm();
    return check_summary();
}
