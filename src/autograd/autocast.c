/*
 * autocast.c — the autocast state (nabla/amp.h), one dtype per thread, and the rounding the
 * autocast ops apply (autocast.h).  The ops read the state when they are called (nb_linear,
 * nb_matmul, nb_conv2d, nb_conv_transpose2d put it in their node's args), so a backward pass
 * run after the region closed still computes in the dtype its forward ran in.
 */
#include "autocast.h"

#include "../ops/op.h"
#include "nabla/amp.h"

static _Thread_local nb_dtype autocast_dtype = NB_F32;

nb_dtype nb_autocast_dtype(void) { return autocast_dtype; }

nb_dtype nb_autocast_set(nb_dtype dtype) {
    nb_dtype before = autocast_dtype;
    if (dtype != NB_F32 && dtype != NB_BF16 && dtype != NB_F16) {
        nb__fail(NB_ERR_ARG, "autocast: %s is not bfloat16, float16 or float32",
                 (unsigned)dtype < NB_DTYPE_COUNT ? nb_dtype_name(dtype) : "an unknown dtype");
        return before;
    }
    autocast_dtype = dtype;
    return before;
}

nb_tensor *nb__amp_round(nb_tensor *t, nb_dtype amp) {
    if (t)
        nb__backend(t->device)->round_half(nb__f32(t), nb__f32(t), nb__numel(t->ndim, t->shape), amp);
    return t;
}

nb_tensor *nb__amp_rounded(nb_tensor *t, nb_dtype amp) {
    nb_tensor *c = nb__contig(t);
    if (!c) return NULL;
    nb_tensor *r = nb__new(NB_F32, t->ndim, t->shape);
    if (r)
        nb__backend(t->device)->round_half(nb__f32(r), nb__f32(c), nb__numel(t->ndim, t->shape), amp);
    if (c != t) nb_tensor_free(c);
    return r;
}
