/*
 * record.c — the recording half of autograd: nb__apply runs an op's forward and, when grad mode
 * is on and an input requires grad, attaches a node to the result (torch's grad_fn).  Also the
 * user-facing switches: requires_grad, no_grad, detach, and access to .grad.
 */
#include "../ops/op.h"

#include <string.h>

static _Thread_local bool grad_disabled; /* zero-initialised: recording is on by default */

bool nb_is_grad_enabled(void) { return !grad_disabled; }

bool nb_set_grad_enabled(bool enabled) {
    bool previous = !grad_disabled;
    grad_disabled = !enabled;
    return previous;
}

static nb_status record(nb_tensor *out, nb_op_id op, int n, nb_tensor *const *in,
                        const nb_op_args *args) {
    nb_node *node = nb__home_alloc(out->arena, sizeof *node);
    nb_tensor **inputs = node ? nb__home_alloc(out->arena, sizeof(nb_tensor *) * (size_t)n) : NULL;
    if (!inputs) {
        nb__home_free(out->arena, node, sizeof *node);
        return NB_ERR_MEMORY;
    }
    memset(node, 0, sizeof *node);
    node->op = op;
    node->grad_fn = nb__ops[op].grad_fn;
    node->n_in = n;
    node->in = inputs;
    node->out = out;
    if (args) node->args = *args;
    for (int i = 0; i < n; i++) {
        inputs[i] = in[i];
        nb__retain(in[i]);
    }
    out->node = node;
    out->requires_grad = true;
    return NB_OK;
}

nb_tensor *nb__apply(nb_op_id op, int n, nb_tensor *const *in, const nb_op_args *args) {
    const nb_op_def *def = &nb__ops[op];
    if (!in || n < 1) return nb__fail(NB_ERR_ARG, "%s: no input tensors", def->name);
    for (int i = 0; i < n; i++)
        if (!nb__alive(in[i])) return nb__fail_input(def->name, in[i]);
    for (int i = 1; i < n; i++)
        if (in[i]->device != in[0]->device)
            return nb__fail(NB_ERR_DEVICE, "%s: input 0 is on %s but input %d is on %s",
                            def->name, in[0]->device == NB_CPU ? "cpu" : "cuda", i,
                            in[i]->device == NB_CPU ? "cpu" : "cuda");
    if (!nb__backend(in[0]->device))
        return nb__fail(NB_ERR_DEVICE, "%s: this build has no backend for the tensor's device",
                        def->name);
    nb_tensor *out = def->forward(op, in, n, args ? args : &(nb_op_args){0});
    if (!out || grad_disabled || !def->backward) return out;
    for (int i = 0; i < n; i++) {
        if (in[i]->requires_grad) {
            if (record(out, op, n, in, args) != NB_OK) {
                nb_tensor_free(out);
                return NULL;
            }
            break;
        }
    }
    return out;
}

nb_status nb_set_requires_grad(nb_tensor *t, bool requires_grad) {
    if (!nb__alive(t)) return nb__fail_input("set_requires_grad", t), nb_error_code();
    if (t->node)
        return nb__fail_status(NB_ERR_GRAPH, "set_requires_grad: %s is not a leaf (made by %s); "
                               "only leaves take requires_grad (detach() first)", NB_SHP(t),
                               t->node->grad_fn);
    if (requires_grad && t->dtype != NB_F32)
        return nb__fail_status(NB_ERR_DTYPE, "set_requires_grad: only float32 tensors can "
                               "require grad, not %s", nb_dtype_name(t->dtype));
    t->requires_grad = requires_grad;
    return NB_OK;
}

bool nb_requires_grad(const nb_tensor *t) { return nb__alive(t) && t->requires_grad; }
bool nb_is_leaf(const nb_tensor *t) { return nb__alive(t) && !t->node; }
const char *nb_grad_fn(const nb_tensor *t) { return nb__alive(t) && t->node ? t->node->grad_fn : NULL; }

nb_tensor *nb_grad(const nb_tensor *t) { return nb__alive(t) ? t->grad : NULL; }

nb_status nb_zero_grad(nb_tensor *t) {
    if (!nb__alive(t)) return nb__fail_input("zero_grad", t), nb_error_code();
    if (t->grad) nb_fill(t->grad, 0.0f);
    return NB_OK;
}

nb_status nb_clear_grad(nb_tensor *t) {
    if (!nb__alive(t)) return nb__fail_input("clear_grad", t), nb_error_code();
    if (t->grad && !t->grad->arena) nb__release(t->grad);
    t->grad = NULL;
    return NB_OK;
}

nb_tensor *nb_detach(nb_tensor *t) {
    if (!nb__alive(t)) return nb__fail_input("detach", t);
    return nb__view(t, t->ndim, t->shape, t->stride, t->offset);
}
