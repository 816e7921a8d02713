/*
 * hook.c — the backward_hook row: torch's BackwardHookFunction, an identity a module wraps
 * around its inputs and its outputs so that its full backward hook sees the gradients of all of
 * them in one call (src/nn/hooks.c).  The forward packs several tensors into one flat tensor
 * (one tensor: the identity, a view), so that the node it records gets all their gradients at
 * once, which the backward splits back and hands to the callbacks (op.h,
 * nb__backward_hook_pack).
 */
#include "op.h"

nb_tensor *nb__fwd_hook(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *a) {
    (void)op;
    int n_pack = (int)a->start;
    if (n_pack < 1 || n_pack > n || n_pack > NB__HOOK_MAX_IO)
        return nb__fail(NB_ERR_ARG, "backward_hook: %d tensors to pack out of %d (at most %d)",
                        n_pack, n, NB__HOOK_MAX_IO);
    if (n_pack == 1) /* one tensor: the identity, as torch's */
        return nb__view(in[0], in[0]->ndim, in[0]->shape, in[0]->stride, in[0]->offset);
    int64_t total = 0;
    for (int k = 0; k < n_pack; k++) total += nb__numel(in[k]->ndim, in[k]->shape);
    nb_tensor *out = nb__new(NB_F32, 1, &total);
    int64_t at = 0;
    for (int k = 0; out && k < n_pack; k++) {
        int64_t stride[NB_MAX_DIMS];
        nb__contiguous_strides(in[k]->ndim, in[k]->shape, stride);
        nb_tensor *part = nb__view(out, in[k]->ndim, in[k]->shape, stride, at);
        if (!part) {
            nb_tensor_free(out);
            return NULL;
        }
        nb__copy_tensor(part, in[k]);
        nb_tensor_free(part);
        at += nb__numel(in[k]->ndim, in[k]->shape);
    }
    return out;
}

nb_tensor *nb__backward_hook_part(nb_tensor *g, const nb_tensor *t, int64_t at) {
    if (nb__same_shape(g, t) && at == 0) { /* the identity of one tensor */
        nb__retain(g);
        return g;
    }
    int64_t numel = nb__numel(t->ndim, t->shape);
    nb_tensor *s = nb_slice(g, 0, at, at + numel, 1);
    nb_tensor *r = s ? nb_reshape(s, t->ndim, t->shape) : NULL;
    nb_tensor_free(s);
    return r;
}

nb_status nb__bwd_hook(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    int role = node->args.dim, n_pack = (int)node->args.start;
    nb__backward_hook *h = node->args.hook;
    nb_tensor *grads[NB__HOOK_MAX_IO] = {0};
    nb_status s = NB_OK;
    int64_t at = 0;
    for (int k = 0; k < n_pack && s == NB_OK; k++) {
        const nb_tensor *t = node->in[k];
        /* the outputs' hook sees every output's gradient; the inputs get theirs where wanted */
        if ((role == NB__HOOK_OUTPUTS && h) || nb__needs_grad(node, k))
            if (!(grads[k] = nb__backward_hook_part(g, t, at))) s = nb_error_code();
        at += nb__numel(t->ndim, t->shape);
    }
    if (s == NB_OK && h && role == NB__HOOK_OUTPUTS) {
        const nb_tensor *key = node->n_in > n_pack ? node->in[n_pack] : NULL;
        s = h->outputs(h, key && nb__grad_wanted(key) ? key : NULL, n_pack, grads);
    }
    else if (s == NB_OK && h)
        s = h->inputs(h, node->out, n_pack, grads);
    for (int k = 0; k < n_pack; k++) {
        if (s == NB_OK && nb__needs_grad(node, k)) din[k] = grads[k];
        else nb_tensor_free(grads[k]);
    }
    return s;
}

nb_tensor *nb__backward_hook_pack(int role, int n_pack, int n, nb_tensor *const *in,
                                  nb__backward_hook *h) {
    nb_op_args a = {.dim = role, .start = n_pack, .hook = h};
    return nb__apply(NB_OP_BACKWARD_HOOK, n, in, &a);
}
