/*
 * test_hooks.c — hooks as torch's: tensor hooks (Tensor.register_hook) and retain_grad, then
 * module hooks (register_forward_pre_hook, register_forward_hook,
 * register_full_backward_hook).  Each behaviour runs in a scope and with no scope open, where
 * the allocator's live bytes must come back to where they were (no leak).
 */
#include "check.h"
#include "nabla/autograd.h"
#include "nabla/module.h"
#include "tmpdir.h"

/* ---------------------------------------------------------------- tensor hooks */

typedef struct {
    int calls;
    float seen[8];    /* the gradient the hook saw, first 8 values */
    float scale; /* 0: pass it on; else return scale * grad */
    int id;      /* > 0: logged in `ran`, in the order hooks run */
} spy;
static int ran[8], n_ran;

static nb_tensor *spy_hook(nb_tensor *grad, void *ctx) {
    spy *s = ctx;
    s->calls++;
    int64_t n = nb_numel(grad);
    nb_copy_to(grad, s->seen, n < 8 ? n : 8);
    if (s->id && n_ran < 8) ran[n_ran++] = s->id;
    return s->scale != 0 ? nb_mul_scalar(grad, s->scale) : grad;
}

/* Every tensor a test makes goes through K: with no scope open the test owns it, and
 * free_kept drops them all at the end (a scope's tensors are ignored by nb_tensor_free). */
static nb_tensor *kept[128];
static int n_kept;
static nb_tensor *K(nb_tensor *t) {
    if (n_kept < 128) kept[n_kept++] = t;
    return t;
}
static void free_kept(void) {
    while (n_kept > 0) nb_tensor_free(kept[--n_kept]);
}

/* Runs body once in a scope and once with none open; with none, every byte comes back. */
#define BOTH_HOMES(body)                                                \
    do {                                                                \
        nb_scope_begin();                                               \
        body();                                                         \
        free_kept();                                                    \
        nb_scope_end();                                                 \
        size_t live_ = nb_alloc_stats_get().bytes_live;                 \
        body();                                                         \
        free_kept();                                                    \
        CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, live_);           \
    } while (0)

/* x used twice (x*x + 3x): the leaf's hook sees the sum 2x + 3 once, before .grad. */
static void leaf_hook_sees_the_summed_gradient_once(void) {
    nb_tensor *x = K(nb_from_data((float[]){1, -2}, NB_SHAPE(2)));
    nb_set_requires_grad(x, true);
    spy s = {0};
    CHECK(nb_tensor_register_hook(x, spy_hook, &s) > 0);
    nb_tensor *xx = K(nb_mul(x, x)), *x3 = K(nb_mul_scalar(x, 3)), *sum = K(nb_add(xx, x3));
    nb_tensor *y = K(nb_sum(sum));
    CHECK_EQ_INT(nb_backward(y), NB_OK);
    CHECK_EQ_INT(s.calls, 1);
    CHECK_NEAR(s.seen[0], 5, 0, 0);
    CHECK_NEAR(s.seen[1], -1, 0, 0);
    CHECK_TENSOR(".grad", nb_grad(x), ((double[]){5, -1}), 2, 0, 0);
}

/* A hook's replacement is what .grad gets and what flows on; hooks run in registration
 * order, each seeing the previous one's result; a removed hook no longer runs. */
static void hooks_replace_in_order_and_are_removed_by_handle(void) {
    nb_tensor *w = K(nb_from_data((float[]){2}, NB_SHAPE(1)));
    nb_set_requires_grad(w, true);
    nb_tensor *h = K(nb_mul_scalar(w, 3)); /* a non-leaf: dh/dw = 3 */
    spy a = {.scale = 2, .id = 1}, b = {.scale = 10, .id = 2};
    n_ran = 0;
    int ha = nb_tensor_register_hook(h, spy_hook, &a);
    int hb = nb_tensor_register_hook(h, spy_hook, &b);
    CHECK(ha > 0 && hb > 0 && ha != hb);
    nb_tensor *y = K(nb_sum(K(nb_mul(h, h)))); /* dy/dh = 2h = 12 */
    CHECK_EQ_INT(nb_backward(y), NB_OK);
    CHECK_NEAR(a.seen[0], 12, 0, 0);
    CHECK_NEAR(b.seen[0], 24, 0, 0); /* after a's doubling */
    CHECK_EQ_INT(n_ran, 2);
    CHECK_EQ_INT(ran[0], 1);
    CHECK_EQ_INT(ran[1], 2);
    CHECK_TENSOR("dw = 3 * 240", nb_grad(w), ((double[]){720}), 1, 0, 0);
    CHECK_EQ_INT(nb_tensor_remove_hook(h, ha), NB_OK);
    CHECK_EQ_INT(nb_tensor_remove_hook(h, ha), NB_ERR_ARG);
    nb_error_clear();
    nb_zero_grad(w);
    CHECK_EQ_INT(nb_backward(y), NB_OK); /* only b: 12 * 10 * 3 */
    CHECK_EQ_INT(a.calls, 1);
    CHECK_EQ_INT(b.calls, 2);
    CHECK_TENSOR("dw = 3 * 120", nb_grad(w), ((double[]){360}), 1, 0, 0);
}

/* A hook that fails the way user code does: an op of its own fails and it passes NULL on. */
static nb_tensor *failing_hook(nb_tensor *grad, void *ctx) {
    int *calls = ctx;
    ++*calls;
    return nb_reshape(grad, NB_SHAPE(5));
}

static nb_tensor *null_hook(nb_tensor *grad, void *ctx) {
    (void)grad, (void)ctx;
    return NULL;
}

/* A hook returning NULL with an error stops the pass with that error; one returning NULL
 * without one stops it with NB_ERR_GRAPH; .grad is not touched either way. */
static void hook_error_stops_the_pass(void) {
    nb_tensor *w = K(nb_from_data((float[]){1, 2}, NB_SHAPE(2)));
    nb_set_requires_grad(w, true);
    nb_tensor *h = K(nb_exp(w));
    int calls = 0;
    CHECK(nb_tensor_register_hook(h, failing_hook, &calls) > 0);
    nb_tensor *y = K(nb_sum(h));
    CHECK_EQ_INT(nb_backward(y), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "reshape");
    CHECK_EQ_INT(calls, 1);
    CHECK(nb_grad(w) == NULL);
    nb_tensor *v = K(nb_from_data((float[]){1}, NB_SHAPE(1)));
    nb_set_requires_grad(v, true);
    CHECK(nb_tensor_register_hook(v, null_hook, NULL) > 0);
    nb_tensor *z = K(nb_sum(K(nb_exp(v))));
    CHECK_EQ_INT(nb_backward(z), NB_ERR_GRAPH);
    CHECK_ERROR(NB_ERR_GRAPH, "hook");
    CHECK(nb_grad(v) == NULL);
}

static nb_tensor *wrong_shape_hook(nb_tensor *grad, void *ctx) {
    (void)ctx;
    return nb_sum(grad);
}

static void hook_of_the_wrong_shape_is_a_shape_error(void) {
    nb_tensor *w = K(nb_from_data((float[]){1, 2, 3}, NB_SHAPE(3)));
    nb_set_requires_grad(w, true);
    CHECK(nb_tensor_register_hook(w, wrong_shape_hook, NULL) > 0);
    nb_tensor *y = K(nb_sum(K(nb_mul(w, w))));
    CHECK_EQ_INT(nb_backward(y), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "[3]");
    CHECK(nb_grad(w) == NULL);
}

/* retain_grad on a non-leaf: .grad holds its gradient and accumulates across passes. */
static void retain_grad_keeps_and_accumulates_a_non_leaf_gradient(void) {
    nb_tensor *x = K(nb_from_data((float[]){1, 2}, NB_SHAPE(2)));
    nb_set_requires_grad(x, true);
    nb_tensor *h = K(nb_mul_scalar(x, 2)), *k = K(nb_mul_scalar(x, 5));
    CHECK(nb_retains_grad(x)); /* a leaf that requires grad keeps its gradient */
    CHECK(!nb_retains_grad(h));
    CHECK_EQ_INT(nb_retain_grad(h), NB_OK);
    CHECK(nb_retains_grad(h));
    CHECK(!nb_retains_grad(k));
    nb_tensor *y = K(nb_sum(K(nb_mul(h, h)))); /* dy/dh = 2h = 4x */
    CHECK_EQ_INT(nb_backward(y), NB_OK);
    CHECK_TENSOR("h.grad", nb_grad(h), ((double[]){4, 8}), 2, 0, 0);
    CHECK(nb_grad(k) == NULL);
    CHECK_EQ_INT(nb_backward(y), NB_OK);
    CHECK_TENSOR("h.grad twice", nb_grad(h), ((double[]){8, 16}), 2, 0, 0);
    CHECK_TENSOR("x.grad twice", nb_grad(x), ((double[]){16, 32}), 2, 0, 0);
    nb_tensor *c = K(nb_zeros(NB_SHAPE(2)));
    CHECK_EQ_INT(nb_retain_grad(c), NB_ERR_GRAPH); /* does not require grad */
    CHECK_ERROR(NB_ERR_GRAPH, "does not require grad");
    CHECK(!nb_retains_grad(c));
    CHECK_EQ_INT(nb_tensor_register_hook(c, spy_hook, NULL), 0);
    CHECK_ERROR(NB_ERR_GRAPH, "does not require grad");
}

/* nb_autograd_grad: hooks see the gradient returned for an intermediate input too, and their
 * replacement is what is returned; .grad stays untouched. */
static void autograd_grad_returns_the_hooks_replacement(void) {
    nb_tensor *x = K(nb_from_data((float[]){3}, NB_SHAPE(1)));
    nb_set_requires_grad(x, true);
    spy s = {.scale = -1};
    CHECK(nb_tensor_register_hook(x, spy_hook, &s) > 0);
    nb_tensor *y = K(nb_sum(K(nb_mul(x, x)))), *g = NULL;
    CHECK_EQ_INT(nb_autograd_grad(1, &y, NULL, 1, &x, &g, NULL), NB_OK);
    K(g);
    CHECK_EQ_INT(s.calls, 1);
    CHECK_TENSOR("-2x", g, ((double[]){-6}), 1, 0, 0);
    CHECK(nb_grad(x) == NULL);
}

/* loss = sum((a * 2) * b): b's last (only) contribution comes from the first node the pass
 * visits, so b's hook runs then — before the hook of t = a * 2, whose node comes next, and a's —
 * as torch runs a leaf's hooks once its gradient is complete (what lets data-parallel training
 * start a parameter's allreduce during backward). */
static void leaf_hook_runs_as_soon_as_its_gradient_is_complete(void) {
    nb_tensor *a = K(nb_from_data((float[]){1, 2}, NB_SHAPE(2)));
    nb_tensor *b = K(nb_from_data((float[]){3, 4}, NB_SHAPE(2)));
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(b, true);
    nb_tensor *t = K(nb_mul_scalar(a, 2));
    spy sa = {.id = 1}, sb = {.id = 2}, st = {.id = 3};
    CHECK(nb_tensor_register_hook(a, spy_hook, &sa) > 0);
    CHECK(nb_tensor_register_hook(b, spy_hook, &sb) > 0);
    CHECK(nb_tensor_register_hook(t, spy_hook, &st) > 0);
    n_ran = 0;
    CHECK_EQ_INT(nb_backward(K(nb_sum(K(nb_mul(t, b))))), NB_OK);
    CHECK_EQ_INT(n_ran, 3);
    CHECK_EQ_INT(ran[0], 2); /* b, as soon as the product's node is done */
    CHECK_EQ_INT(ran[1], 3); /* then t */
    CHECK_EQ_INT(ran[2], 1); /* then a */
    nb_tensor *g[2] = {0};
    n_ran = 0;
    nb_tensor *loss = K(nb_sum(K(nb_mul(t, b))));
    CHECK_EQ_INT(nb_autograd_grad(1, &loss, NULL, 2, (nb_tensor *[]){a, b}, g, NULL), NB_OK);
    K(g[0]), K(g[1]);
    CHECK_EQ_INT(n_ran, 3);
    CHECK_EQ_INT(ran[0], 2);
}

static void tensor_hooks(void) {
    BOTH_HOMES(leaf_hook_sees_the_summed_gradient_once);
    BOTH_HOMES(hooks_replace_in_order_and_are_removed_by_handle);
    BOTH_HOMES(hook_error_stops_the_pass);
    BOTH_HOMES(hook_of_the_wrong_shape_is_a_shape_error);
    BOTH_HOMES(retain_grad_keeps_and_accumulates_a_non_leaf_gradient);
    BOTH_HOMES(autograd_grad_returns_the_hooks_replacement);
    BOTH_HOMES(leaf_hook_runs_as_soon_as_its_gradient_is_complete);
}

/* ---------------------------------------------------------------- module hooks */

/* Linear(3, 2) with W = [[1, 2, 3], [4, 5, 6]], b = [0.5, -0.5]. */
static nb_module *small_linear(void) {
    nb_module *m = nb_linear_new(3, 2, true);
    nb_copy_from(nb_module_find(m, "weight"), (float[]){1, 2, 3, 4, 5, 6}, 6);
    nb_copy_from(nb_module_find(m, "bias"), (float[]){0.5f, -0.5f}, 2);
    return m;
}

typedef struct {
    int calls;
    float scale;       /* pre / forward hooks: replace by scale * x (0: leave it) */
    int64_t shape[4];  /* what the forward hook saw: input's dims, output's dims */
    float grad_in[6], grad_out[4];
    bool grad_in_null;
    int n_in, n_out;
} mod_spy;

static nb_status pre_hook(nb_module *m, int n_in, nb_tensor **in, void *ctx) {
    (void)m, (void)n_in;
    mod_spy *s = ctx;
    s->calls++;
    if (s->scale != 0) in[0] = nb_mul_scalar(in[0], s->scale);
    return in[0] ? NB_OK : nb_error_code();
}

static nb_status forward_hook(nb_module *m, int n_in, nb_tensor *const *in, int n_out,
                              nb_tensor **out, void *ctx) {
    (void)m;
    mod_spy *s = ctx;
    s->calls++;
    s->n_in = n_in;
    s->n_out = n_out;
    s->shape[0] = nb_shape(in[0])[0];
    s->shape[1] = nb_shape(in[0])[1];
    s->shape[2] = nb_shape(out[0])[0];
    s->shape[3] = nb_shape(out[0])[1];
    if (s->scale != 0) out[0] = nb_mul_scalar(out[0], s->scale);
    return out[0] ? NB_OK : nb_error_code();
}

static nb_status backward_hook(nb_module *m, int n_in, nb_tensor **grad_input, int n_out,
                               nb_tensor *const *grad_output, void *ctx) {
    (void)m;
    mod_spy *s = ctx;
    s->calls++;
    s->n_in = n_in;
    s->n_out = n_out;
    s->grad_in_null = grad_input[0] == NULL;
    if (grad_input[0]) nb_copy_to(grad_input[0], s->grad_in, nb_numel(grad_input[0]));
    if (grad_output[0]) nb_copy_to(grad_output[0], s->grad_out, nb_numel(grad_output[0]));
    if (s->scale != 0 && grad_input[0]) grad_input[0] = nb_mul_scalar(grad_input[0], s->scale);
    return NB_OK;
}

/* The pre hook's doubled input is what the layer sees; removed, it no longer runs. */
static void forward_pre_hook_replaces_the_input(void) {
    nb_module *m = small_linear();
    mod_spy s = {.scale = 2};
    int h = nb_module_register_forward_pre_hook(m, pre_hook, &s);
    CHECK(h > 0);
    nb_tensor *x = K(nb_from_data((float[]){1, 0, -1}, NB_SHAPE(1, 3)));
    nb_tensor *y = K(nb_module_forward(m, x)); /* W (2x) + b = [-4, -4] + b */
    CHECK_EQ_INT(s.calls, 1);
    CHECK_TENSOR("W 2x + b", y, ((double[]){-3.5, -4.5}), 2, 0, 0);
    CHECK_TENSOR("x untouched", x, ((double[]){1, 0, -1}), 3, 0, 0);
    CHECK_EQ_INT(nb_module_remove_hook(m, h), NB_OK);
    CHECK_EQ_INT(nb_module_remove_hook(m, h), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "no hook");
    nb_tensor *y2 = K(nb_module_forward(m, x));
    CHECK_EQ_INT(s.calls, 1);
    CHECK_TENSOR("W x + b", y2, ((double[]){-1.5, -2.5}), 2, 0, 0);
    CHECK_EQ_INT(nb_module_register_forward_pre_hook(m, NULL, NULL), 0);
    CHECK_ERROR(NB_ERR_NULL, "hook is NULL");
    CHECK_EQ_INT(nb_module_register_forward_hook(NULL, forward_hook, NULL), 0);
    CHECK_ERROR(NB_ERR_NULL, "module is NULL");
    CHECK_EQ_INT(nb_module_register_full_backward_hook(m, backward_hook, NULL), 2); /* unique */
    nb_module_free(m);
}

/* Forty hooks of each forward kind, each doubling what it is given: every replacement but the
 * last is dropped on the way (with no scope open, nothing is left behind). */
static void many_replacing_hooks_chain(void) {
    nb_module *m = small_linear();
    mod_spy twice = {.scale = 2};
    for (int k = 0; k < 40; k++) {
        CHECK(nb_module_register_forward_pre_hook(m, pre_hook, &twice) > 0);
        CHECK(nb_module_register_forward_hook(m, forward_hook, &twice) > 0);
    }
    nb_tensor *x = K(nb_from_data((float[]){1, 0, -1}, NB_SHAPE(1, 3)));
    nb_tensor *y = K(nb_module_forward(m, x)); /* 2^40 (W (2^40 x) + b) */
    double p = ldexp(1, 40);
    CHECK_TENSOR("chained", y, ((double[]){p * (-2 * p + 0.5), p * (-2 * p - 0.5)}), 2, 0, 1e-6);
    CHECK_EQ_INT(twice.calls, 80);
    nb_module_free(m);
}

/* The forward hook sees the inputs and the output, and its replacement is the result; pre
 * hooks run first, hooks of a kind in registration order (3 * (2 * out)). */
static void forward_hook_sees_inputs_and_output_and_replaces_it(void) {
    nb_module *m = small_linear();
    mod_spy a = {.scale = 2}, b = {.scale = 3}, pre = {0};
    CHECK(nb_module_register_forward_hook(m, forward_hook, &a) > 0);
    CHECK(nb_module_register_forward_hook(m, forward_hook, &b) > 0);
    CHECK(nb_module_register_forward_pre_hook(m, pre_hook, &pre) > 0);
    nb_tensor *x = K(nb_from_data((float[]){1, 0, -1, 2, 2, 2}, NB_SHAPE(2, 3)));
    nb_tensor *y = K(nb_module_forward(m, x));
    CHECK_EQ_INT(pre.calls, 1);
    CHECK_EQ_INT(a.calls, 1);
    CHECK_EQ_INT(a.n_in, 1);
    CHECK_EQ_INT(a.n_out, 1);
    CHECK(a.shape[0] == 2 && a.shape[1] == 3 && a.shape[2] == 2 && a.shape[3] == 2);
    CHECK_TENSOR("6 (W x + b)", y, ((double[]){-9, -15, 75, 177}), 4, 0, 0);
    nb_module_free(m);
}

/* loss = sum(r * (x W^T + b)): grad_output = r, grad_input = r W; a replacement of
 * grad_input is what x gets, while the weights' gradients do not change. */
static void full_backward_hook_sees_and_replaces_grad_input(void) {
    nb_module *m = small_linear();
    mod_spy s = {.scale = -1};
    CHECK(nb_module_register_full_backward_hook(m, backward_hook, &s) > 0);
    nb_tensor *x = K(nb_from_data((float[]){1, 0, -1}, NB_SHAPE(1, 3)));
    nb_set_requires_grad(x, true);
    nb_tensor *r = K(nb_from_data((float[]){1, 2}, NB_SHAPE(1, 2)));
    nb_tensor *y = K(nb_module_forward(m, x));
    CHECK_STR_CONTAINS(nb_grad_fn(y), "BackwardHookFunctionBackward");
    nb_tensor *loss = K(nb_sum(K(nb_mul(y, r))));
    CHECK_EQ_INT(s.calls, 0);
    CHECK_EQ_INT(nb_backward(loss), NB_OK);
    CHECK_EQ_INT(s.calls, 1);
    CHECK(!s.grad_in_null);
    CHECK_ARRAY("grad_output = r", s.grad_out, ((double[]){1, 2}), 2, 0, 0);
    CHECK_ARRAY("grad_input = r W", s.grad_in, ((double[]){9, 12, 15}), 3, 0, 0);
    CHECK_TENSOR("x.grad replaced", nb_grad(x), ((double[]){-9, -12, -15}), 3, 0, 0);
    CHECK_TENSOR("W.grad = r^T x", nb_grad(nb_module_find(m, "weight")),
                 ((double[]){1, 0, -1, 2, 0, -2}), 6, 0, 0);
    /* removed, it no longer wraps the module: the result is the Linear's own */
    CHECK_EQ_INT(nb_module_remove_hook(m, 1), NB_OK);
    CHECK_STR_CONTAINS(nb_grad_fn(K(nb_module_forward(m, x))), "AddmmBackward0");
    nb_module_free(m);
}

/* With no input requiring grad (a first layer) the hook still runs, grad_input NULL. */
static void full_backward_hook_runs_when_no_input_requires_grad(void) {
    nb_module *m = small_linear();
    mod_spy s = {0};
    CHECK(nb_module_register_full_backward_hook(m, backward_hook, &s) > 0);
    nb_tensor *x = K(nb_from_data((float[]){1, 0, -1}, NB_SHAPE(1, 3)));
    nb_tensor *r = K(nb_from_data((float[]){3, -1}, NB_SHAPE(1, 2)));
    nb_tensor *loss = K(nb_sum(K(nb_mul(K(nb_module_forward(m, x)), r))));
    CHECK_EQ_INT(nb_backward(loss), NB_OK);
    CHECK_EQ_INT(s.calls, 1);
    CHECK(s.grad_in_null);
    CHECK_EQ_INT(s.n_in, 1);
    CHECK_ARRAY("grad_output = r", s.grad_out, ((double[]){3, -1}), 2, 0, 0);
    CHECK_TENSOR("W.grad", nb_grad(nb_module_find(m, "weight")),
                 ((double[]){3, 0, -3, -1, 0, 1}), 6, 0, 0);
    nb_module_free(m);
}

/* A two-input module, out = a * b + w: one call sees both inputs' gradients. */
typedef struct {
    nb_tensor *w;
} gate_state;
static nb_status gate_forward(nb_module *m, nb_tensor *const *in, nb_tensor **out) {
    gate_state *s = nb_module_state(m, nb_module_class_of(m));
    nb_tensor *ab = nb_mul(in[0], in[1]);
    out[0] = nb_add(ab, s->w);
    nb_tensor_free(ab);
    return out[0] ? NB_OK : nb_error_code();
}
static const nb_module_class gate_class = {
    .name = "Gate", .n_inputs = 2, .n_outputs = 1, .forward_n = gate_forward};

typedef struct {
    int calls;
    float ga[2], gb[2], go[2];
} gate_spy;
static nb_status gate_hook(nb_module *m, int n_in, nb_tensor **grad_input, int n_out,
                           nb_tensor *const *grad_output, void *ctx) {
    (void)m;
    gate_spy *s = ctx;
    s->calls++;
    if (n_in != 2 || n_out != 1 || !grad_input[0] || !grad_input[1]) return NB_ERR_ARG;
    nb_copy_to(grad_input[0], s->ga, 2);
    nb_copy_to(grad_input[1], s->gb, 2);
    nb_copy_to(grad_output[0], s->go, 2);
    return NB_OK;
}

static void full_backward_hook_sees_every_input_in_one_call(void) {
    nb_module *m = nb_module_new(&gate_class, sizeof(gate_state));
    gate_state *st = nb_module_state(m, &gate_class);
    st->w = nb_module_add_param(m, "w", NB_SHAPE(2));
    gate_spy s = {0};
    CHECK(nb_module_register_full_backward_hook(m, gate_hook, &s) > 0);
    nb_tensor *a = K(nb_from_data((float[]){1, 2}, NB_SHAPE(2)));
    nb_tensor *b = K(nb_from_data((float[]){3, 4}, NB_SHAPE(2)));
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(b, true);
    nb_tensor *out = NULL, *in[] = {a, b};
    CHECK_EQ_INT(nb_module_forward_n(m, 2, in, 1, &out), NB_OK);
    K(out);
    nb_tensor *r = K(nb_from_data((float[]){1, -1}, NB_SHAPE(2)));
    CHECK_EQ_INT(nb_backward(K(nb_sum(K(nb_mul(out, r))))), NB_OK);
    CHECK_EQ_INT(s.calls, 1);
    CHECK_ARRAY("r b", s.ga, ((double[]){3, -4}), 2, 0, 0);
    CHECK_ARRAY("r a", s.gb, ((double[]){1, -2}), 2, 0, 0);
    CHECK_ARRAY("r", s.go, ((double[]){1, -1}), 2, 0, 0);
    CHECK_TENSOR("a.grad", nb_grad(a), ((double[]){3, -4}), 2, 0, 0);
    CHECK_TENSOR("w.grad", nb_grad(st->w), ((double[]){1, -1}), 2, 0, 0);
    nb_module_free(m);
}

static nb_status failing_backward_hook(nb_module *m, int n_in, nb_tensor **grad_input, int n_out,
                                       nb_tensor *const *grad_output, void *ctx) {
    (void)m, (void)n_in, (void)n_out, (void)grad_output, (void)ctx;
    nb_tensor *bad = nb_reshape(grad_input[0], NB_SHAPE(7)); /* fails: the hook's own error */
    return bad ? NB_OK : nb_error_code();
}

static nb_status wrong_shape_backward_hook(nb_module *m, int n_in, nb_tensor **grad_input,
                                           int n_out, nb_tensor *const *grad_output, void *ctx) {
    (void)m, (void)n_in, (void)n_out, (void)grad_output, (void)ctx;
    grad_input[0] = nb_sum(grad_input[0]);
    return NB_OK;
}

/* Replaces grad_input, then fails without an error of its own. */
static nb_status replace_then_fail_hook(nb_module *m, int n_in, nb_tensor **grad_input, int n_out,
                                        nb_tensor *const *grad_output, void *ctx) {
    (void)m, (void)n_in, (void)n_out, (void)grad_output, (void)ctx;
    grad_input[0] = nb_mul_scalar(grad_input[0], 3);
    return NB_ERR_ARG;
}

static nb_status failing_pre_hook(nb_module *m, int n_in, nb_tensor **in, void *ctx) {
    (void)m, (void)n_in, (void)ctx;
    nb_tensor *bad = nb_reshape(in[0], NB_SHAPE(7));
    return bad ? NB_OK : nb_error_code();
}

/* A hook's error stops the forward (no output) or the backward pass (no .grad for x). */
static void module_hook_errors_stop_the_forward_or_the_pass(void) {
    nb_module *m = small_linear();
    nb_tensor *x = K(nb_from_data((float[]){1, 0, -1}, NB_SHAPE(1, 3)));
    nb_set_requires_grad(x, true);
    int h = nb_module_register_full_backward_hook(m, failing_backward_hook, NULL);
    nb_tensor *loss = K(nb_sum(K(nb_module_forward(m, x))));
    CHECK_EQ_INT(nb_backward(loss), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "reshape");
    CHECK(nb_grad(x) == NULL);
    nb_module_remove_hook(m, h);
    h = nb_module_register_full_backward_hook(m, wrong_shape_backward_hook, NULL);
    loss = K(nb_sum(K(nb_module_forward(m, x))));
    CHECK_EQ_INT(nb_backward(loss), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "Linear: a full backward hook replaced grad_input 0 of [1,3] by []");
    CHECK(nb_grad(x) == NULL);
    nb_module_remove_hook(m, h);
    /* in create_graph mode the gradients are the caller's: the refused one is dropped too */
    h = nb_module_register_full_backward_hook(m, replace_then_fail_hook, NULL);
    nb_tensor *out = K(nb_module_forward(m, x)), *ones = K(nb_ones(NB_SHAPE(1, 2))), *g = NULL;
    CHECK_EQ_INT(nb_autograd_grad(1, &out, &ones, 1, &x, &g,
                                  &(nb_grad_options){.create_graph = true}), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "Linear: a full backward hook failed");
    CHECK(g == NULL);
    nb_module_remove_hook(m, h);
    CHECK(nb_module_register_forward_pre_hook(m, failing_pre_hook, NULL) > 0);
    CHECK(nb_module_forward(m, x) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "reshape");
    nb_module_free(m);
}

/* y = x^3 through a module: with create_graph the gradient 3x^2 (doubled by the hook to 6x^2)
 * is differentiable again: 12x (the second pass reaches the inputs only: no hook runs). */
static nb_tensor *cube_forward(nb_module *m, nb_tensor *x) {
    (void)m;
    nb_tensor *xx = nb_mul(x, x), *y = nb_mul(xx, x);
    nb_tensor_free(xx);
    return y;
}
static const nb_module_class cube_class = {.name = "Cube", .forward = cube_forward};

static void full_backward_hook_keeps_gradients_differentiable(void) {
    nb_module *m = nb_module_new(&cube_class, 0);
    mod_spy s = {.scale = 2};
    CHECK(nb_module_register_full_backward_hook(m, backward_hook, &s) > 0);
    nb_tensor *x = K(nb_from_data((float[]){2}, NB_SHAPE(1)));
    nb_set_requires_grad(x, true);
    /* one-element results, so that the passes need no reduction (the ops alone are tested) */
    nb_tensor *y = K(nb_module_forward(m, x)), *g = NULL, *gg = NULL;
    CHECK_EQ_INT(nb_autograd_grad(1, &y, NULL, 1, &x, &g, &(nb_grad_options){.create_graph = true}),
                 NB_OK);
    K(g);
    CHECK_TENSOR("2 * 3x^2", g, ((double[]){24}), 1, 0, 0);
    CHECK(nb_requires_grad(g));
    CHECK_EQ_INT(nb_autograd_grad(1, &g, NULL, 1, &x, &gg, NULL), NB_OK);
    K(gg);
    CHECK_TENSOR("12x", gg, ((double[]){24}), 1, 0, 0);
    nb_module_free(m);
}

/* Hooks that see and change nothing. */
static nb_status noop_pre(nb_module *m, int n_in, nb_tensor **in, void *ctx) {
    (void)m, (void)n_in, (void)in, (void)ctx;
    return NB_OK;
}
static nb_status noop_forward(nb_module *m, int n_in, nb_tensor *const *in, int n_out,
                              nb_tensor **out, void *ctx) {
    (void)m, (void)n_in, (void)in, (void)n_out, (void)out, (void)ctx;
    return NB_OK;
}
static nb_status noop_backward(nb_module *m, int n_in, nb_tensor **grad_input, int n_out,
                               nb_tensor *const *grad_output, void *ctx) {
    (void)m, (void)n_in, (void)grad_input, (void)n_out, (void)grad_output, (void)ctx;
    return NB_OK;
}

/* Five SGD steps of a small MLP on fixed data; its weights, flat, into w (126 floats). */
static void train_mlp(bool hooked, float *w) {
    nb_manual_seed(7);
    nb_module *layers[] = {nb_linear_new(4, 8, true), nb_activation_new(NB_ACT_RELU, 0),
                           nb_linear_new(8, 3, true)};
    nb_module *net = nb_sequential_new(3, layers);
    if (hooked) {
        nb_module *all[] = {net, layers[0], layers[1], layers[2]};
        for (int i = 0; i < 4; i++) {
            CHECK(nb_module_register_forward_pre_hook(all[i], noop_pre, NULL) > 0);
            CHECK(nb_module_register_forward_hook(all[i], noop_forward, NULL) > 0);
            CHECK(nb_module_register_full_backward_hook(all[i], noop_backward, NULL) > 0);
        }
    }
    nb_tensor *params[8];
    int n = nb_module_parameters(net, params, 8);
    nb_optim *o = nb_sgd_new(n, params, (nb_sgd_opts){.lr = 0.1, .momentum = 0.9});
    nb_tensor *x = nb_randn(NB_SHAPE(16, 4));
    int32_t labels[16];
    for (int i = 0; i < 16; i++) labels[i] = i % 3;
    nb_tensor *y = nb_from_int32(labels, NB_SHAPE(16));
    for (int step = 0; step < 5; step++) {
        nb_scope_begin();
        nb_optim_zero_grad(o);
        nb_tensor *logits = nb_module_forward(net, x);
        if (hooked) CHECK_STR_CONTAINS(nb_grad_fn(logits), "BackwardHookFunctionBackward");
        CHECK_EQ_INT(nb_backward(nb_cross_entropy(logits, y, NULL)), NB_OK);
        nb_optim_step(o);
        nb_scope_end();
    }
    for (int i = 0, at = 0; i < n; i++) {
        nb_copy_to(params[i], w + at, nb_numel(params[i]));
        at += (int)nb_numel(params[i]);
    }
    nb_tensor_free(x);
    nb_tensor_free(y);
    nb_optim_free(o);
    nb_module_free(net);
}

static void module_trains_identically_with_no_op_hooks(void) {
    float plain[4 * 8 + 8 + 8 * 3 + 3], hooked[4 * 8 + 8 + 8 * 3 + 3];
    train_mlp(false, plain);
    train_mlp(true, hooked);
    if (!memcmp(plain, hooked, sizeof plain)) check_passed_++;
    else CHECK_FAIL_("the weights trained with no-op hooks differ from those without");
}

/* A module used twice in one graph: its hook runs once per call, each with its own gradients
 * (loss = sum(L(L(x))) with L(v) = 2v: grad_output 1 then 2). */
typedef struct {
    int calls;
    float out[2];
} twice_spy;
static nb_status twice_hook(nb_module *m, int n_in, nb_tensor **grad_input, int n_out,
                            nb_tensor *const *grad_output, void *ctx) {
    (void)m, (void)n_in, (void)grad_input, (void)n_out;
    twice_spy *s = ctx;
    if (s->calls < 2) s->out[s->calls] = host_vals(grad_output[0])[0];
    s->calls++;
    return NB_OK;
}
static nb_tensor *double_forward(nb_module *m, nb_tensor *x) {
    (void)m;
    return nb_mul_scalar(x, 2);
}
static const nb_module_class double_class = {.name = "Double", .forward = double_forward};

/* With retain_graph, a second pass through the same call runs the hook again, with the same
 * gradients. */
static void full_backward_hook_runs_in_every_pass(void) {
    nb_module *m = small_linear();
    mod_spy s = {0};
    CHECK(nb_module_register_full_backward_hook(m, backward_hook, &s) > 0);
    nb_tensor *x = K(nb_from_data((float[]){1, 0, -1}, NB_SHAPE(1, 3)));
    nb_set_requires_grad(x, true);
    nb_tensor *loss = K(nb_sum(K(nb_module_forward(m, x))));
    for (int pass = 1; pass <= 2; pass++) {
        nb_tensor *g = NULL;
        CHECK_EQ_INT(nb_autograd_grad(1, &loss, NULL, 1, &x, &g,
                                      &(nb_grad_options){.retain_graph = true}), NB_OK);
        K(g);
        CHECK_EQ_INT(s.calls, pass);
        CHECK_ARRAY("grad_input = 1 W", s.grad_in, ((double[]){5, 7, 9}), 3, 0, 0);
        CHECK_ARRAY("grad_output = 1", s.grad_out, ((double[]){1, 1}), 2, 0, 0);
    }
    nb_module_free(m);
}

/* nb_autograd_grad for the weight only: the input's gradient is not computed, so the hook runs
 * from the outputs' side with grad_input NULL (and nothing waits for the inputs' node). */
static void full_backward_hook_without_the_inputs_gradient_sees_null(void) {
    nb_module *m = small_linear();
    mod_spy s = {0};
    CHECK(nb_module_register_full_backward_hook(m, backward_hook, &s) > 0);
    nb_tensor *x = K(nb_from_data((float[]){1, 0, -1}, NB_SHAPE(1, 3)));
    nb_set_requires_grad(x, true);
    nb_tensor *w = nb_module_find(m, "weight"), *g = NULL;
    nb_tensor *loss = K(nb_sum(K(nb_module_forward(m, x))));
    CHECK_EQ_INT(nb_autograd_grad(1, &loss, NULL, 1, &w, &g, NULL), NB_OK);
    K(g);
    CHECK_EQ_INT(s.calls, 1);
    CHECK(s.grad_in_null);
    CHECK_ARRAY("grad_output = 1", s.grad_out, ((double[]){1, 1}), 2, 0, 0);
    CHECK_TENSOR("dW = x", g, ((double[]){1, 0, -1, 1, 0, -1}), 6, 0, 0);
    nb_module_free(m);
}

static void full_backward_hook_runs_once_per_call(void) {
    nb_module *m = nb_module_new(&double_class, 0);
    twice_spy s = {0};
    CHECK(nb_module_register_full_backward_hook(m, twice_hook, &s) > 0);
    nb_tensor *x = K(nb_from_data((float[]){1}, NB_SHAPE(1)));
    nb_set_requires_grad(x, true);
    nb_tensor *y = K(nb_module_forward(m, K(nb_module_forward(m, x))));
    CHECK_EQ_INT(nb_backward(y), NB_OK);
    CHECK_EQ_INT(s.calls, 2);
    CHECK_NEAR(s.out[0], 1, 0, 0); /* the outer call first */
    CHECK_NEAR(s.out[1], 2, 0, 0);
    CHECK_TENSOR("4", nb_grad(x), ((double[]){4}), 1, 0, 0);
    nb_module_free(m);
}

static void module_hooks(void) {
    module_trains_identically_with_no_op_hooks();
    BOTH_HOMES(full_backward_hook_runs_once_per_call);
    BOTH_HOMES(full_backward_hook_runs_in_every_pass);
    BOTH_HOMES(full_backward_hook_without_the_inputs_gradient_sees_null);
    BOTH_HOMES(forward_pre_hook_replaces_the_input);
    BOTH_HOMES(forward_hook_sees_inputs_and_output_and_replaces_it);
    BOTH_HOMES(many_replacing_hooks_chain);
    BOTH_HOMES(full_backward_hook_sees_and_replaces_grad_input);
    BOTH_HOMES(full_backward_hook_runs_when_no_input_requires_grad);
    BOTH_HOMES(full_backward_hook_sees_every_input_in_one_call);
    BOTH_HOMES(module_hook_errors_stop_the_forward_or_the_pass);
    BOTH_HOMES(full_backward_hook_keeps_gradients_differentiable);
}

/* ---------------------------------------------------------------- nb_fit's gradient norms */

#define N_FIT 24

static nb_module *fit_mlp(void) {
    nb_manual_seed(11);
    nb_module *layers[] = {nb_linear_new(4, 8, true), nb_activation_new(NB_ACT_TANH, 0),
                           nb_linear_new(8, 3, true)};
    return nb_sequential_new(3, layers);
}

/* One step an epoch (the whole set is one batch, in order): epoch 1's norms are those of the
 * gradient at the initial weights, which a plain backward gives too. */
static void fit_records_each_parameters_gradient_norm_per_epoch(void) {
    float x[N_FIT * 4];
    int32_t y[N_FIT];
    for (int i = 0; i < N_FIT * 4; i++) x[i] = sinf(0.7f * (float)i);
    for (int i = 0; i < N_FIT; i++) y[i] = i % 3;
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){.n = N_FIT, .sample_ndim = 1,
                                                       .sample_shape = (int64_t[]){4}, .x_f32 = x,
                                                       .labels = y});
    nb_loader *ld = nb_loader_new(ds, (nb_loader_opts){.batch_size = N_FIT});
    double want[4];
    nb_module *ref = fit_mlp();
    nb_scope_begin();
    nb_tensor *xt = nb_from_data(x, NB_SHAPE(N_FIT, 4)), *yt = nb_from_int32(y, NB_SHAPE(N_FIT));
    CHECK_EQ_INT(nb_backward(nb_cross_entropy(nb_module_forward(ref, xt), yt, NULL)), NB_OK);
    for (int i = 0; i < 4; i++) {
        nb_tensor *g = nb_grad(nb_module_param(ref, i, NULL));
        want[i] = sqrt(nb_item(nb_sum(nb_mul(g, g))));
    }
    nb_scope_end();
    nb_module_free(ref);

    nb_module *m = fit_mlp();
    nb_tensor *params[4];
    nb_module_parameters(m, params, 4);
    nb_optim *o = nb_sgd_new(4, params, (nb_sgd_opts){.lr = 0.1});
    CHECK(tmpdir_make("nabla_test_hooks"));
    nb_fit *f = nb_fit_new(m, o, NULL, ld, ld, &(nb_fit_opts){.epochs = 2, .out = tpath(""),
                                                             .grad_norms = true});
    CHECK_EQ_INT(nb_fit_run(f, NULL), NB_OK);
    nb_fit_info info = nb_fit_info_get(f);
    CHECK_EQ_INT(info.n_grad_norms, 4);
    CHECK(info.grad_norms != NULL);
    if (info.grad_norms) {
        CHECK_ARRAY("epoch 1's norms", info.grad_norms, want, 4, 1e-6, 1e-5);
        for (int i = 0; i < 4; i++) CHECK(info.grad_norms[4 + i] > 0);
    }
    size_t n;
    char *csv = read_all(tpath("grad_norms.csv"), &n);
    CHECK_STR_CONTAINS(csv, "epoch,0.weight,0.bias,2.weight,2.bias\n1,");
    CHECK_STR_CONTAINS(csv, "\n2,");
    nb_fit_free(f);
    nb_optim_free(o);
    nb_module_free(m);

    /* a run resumed from the checkpoint after epoch 2 keeps the norms of epochs 1 and 2 */
    m = fit_mlp();
    nb_module_parameters(m, params, 4);
    o = nb_sgd_new(4, params, (nb_sgd_opts){.lr = 0.1});
    f = nb_fit_new(m, o, NULL, ld, ld, &(nb_fit_opts){.epochs = 3, .out = tpath(""), .grad_norms = true});
    CHECK_EQ_INT(nb_fit_resume(f, tpath("checkpoint.safetensors")), NB_OK);
    CHECK_EQ_INT(nb_fit_run(f, NULL), NB_OK);
    char *csv3 = read_all(tpath("grad_norms.csv"), &n);
    CHECK(csv && csv3 && !strncmp(csv3, csv, strlen(csv))); /* the first two rows, then a third */
    CHECK_STR_CONTAINS(csv3, "\n3,");
    free(csv);
    free(csv3);
    nb_fit_free(f);
    nb_optim_free(o);
    nb_module_free(m);

    /* an epoch trained without the option has empty fields after a resume with it */
    for (int epochs = 4; epochs <= 5; epochs++) {
        m = fit_mlp();
        nb_module_parameters(m, params, 4);
        o = nb_sgd_new(4, params, (nb_sgd_opts){.lr = 0.1});
        f = nb_fit_new(m, o, NULL, ld, ld, &(nb_fit_opts){.epochs = epochs, .out = tpath(""),
                                                         .grad_norms = epochs == 5});
        CHECK_EQ_INT(nb_fit_resume(f, tpath("checkpoint.safetensors")), NB_OK);
        CHECK_EQ_INT(nb_fit_run(f, NULL), NB_OK);
        nb_fit_free(f);
        nb_optim_free(o);
        nb_module_free(m);
    }
    csv = read_all(tpath("grad_norms.csv"), &n);
    CHECK_STR_CONTAINS(csv, "\n3,");
    CHECK_STR_CONTAINS(csv, "\n4,,,,\n5,");
    free(csv);
    nb_loader_free(ld);
    nb_dataset_free(ds);
    tmpdir_remove();
}

int main(void) {
    tensor_hooks();
    module_hooks();
    fit_records_each_parameters_gradient_norm_per_epoch();
    return check_summary();
}
