/*
 * record.c — the user-facing switches of autograd on tensors: requires_grad, detach, access to
 * .grad, hooks and retain_grad.  (Grad mode and anomaly mode, which nb__apply consults, are in
 * src/ops/apply.c, so that the ops never call into autograd.)
 */
#include "../core/core.h"

#include <string.h>

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

/* A .grad handed out may be written by its holder at any time, now or after a zero_grad, so
 * from then on it never counts as zero_filled (see nb_zero_grad). */
nb_tensor *nb_grad(const nb_tensor *t) {
    if (!nb__alive(t)) return NULL;
    if (t->grad) t->grad->handed_out = true, t->grad->zero_filled = false;
    return t->grad;
}

/* Fills .grad with +0.0 and, unless it was handed out, marks it zero_filled: until a pass
 * writes it, the backward may add a first gradient straight into it (nb__grad_sink,
 * backward.c) rather than make it apart and add it. */
nb_status nb_zero_grad(nb_tensor *t) {
    if (!nb__alive(t)) return nb__fail_input("zero_grad", t), nb_error_code();
    if (t->grad && nb_fill(t->grad, 0.0f) == NB_OK) t->grad->zero_filled = !t->grad->handed_out;
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

/* ---- hooks and retain_grad (nabla/autograd.h); the backward pass runs them */

int nb_tensor_register_hook(nb_tensor *t, nb_tensor_hook_fn fn, void *ctx) {
    if (!nb__alive(t)) return nb__fail_input("register_hook", t), 0;
    if (!fn) return nb__fail(NB_ERR_NULL, "register_hook: hook is NULL"), 0;
    if (!t->requires_grad)
        return nb__fail(NB_ERR_GRAPH, "register_hook: %s does not require grad, so it never gets "
                        "a gradient", NB_SHP(t)), 0;
    nb__hook **end = &t->hooks;
    int handle = 1;
    for (; *end; end = &(*end)->next) handle = (*end)->handle + 1;
    nb__hook *h = nb__home_alloc(t->arena, sizeof *h);
    if (!h) return 0;
    *h = (nb__hook){fn, ctx, handle, NULL};
    *end = h;
    return handle;
}

nb_status nb_tensor_remove_hook(nb_tensor *t, int handle) {
    if (!nb__alive(t)) return nb__fail_input("remove_hook", t), nb_error_code();
    for (nb__hook *h = t->hooks; h; h = h->next)
        if (h->handle == handle && h->fn) {
            h->fn = NULL; /* the list keeps its place; it is freed with the tensor */
            return NB_OK;
        }
    return nb__fail_status(NB_ERR_ARG, "remove_hook: %s has no hook %d", NB_SHP(t), handle);
}

nb_status nb_retain_grad(nb_tensor *t) {
    if (!nb__alive(t)) return nb__fail_input("retain_grad", t), nb_error_code();
    if (!t->requires_grad)
        return nb__fail_status(NB_ERR_GRAPH, "retain_grad: %s does not require grad", NB_SHP(t));
    if (t->node) t->retains_grad = true;
    return NB_OK;
}

bool nb_retains_grad(const nb_tensor *t) {
    return nb__alive(t) && t->requires_grad && (t->retains_grad || !t->node);
}
