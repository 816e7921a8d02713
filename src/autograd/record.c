/*
 * record.c — the user-facing switches of autograd on tensors: requires_grad, detach, and access
 * to .grad.  (Grad mode, the switch that nb__apply consults before recording, is in
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
