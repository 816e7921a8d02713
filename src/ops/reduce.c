/*
 * reduce.c — sum, mean, max, min over all dims or a set of dims (keepdim as in torch), and
 * argmax.  The kernel reduces the middle of an (outer, r, inner) array: when the reduced dims
 * are one run of a contiguous tensor they already are that middle; otherwise the kept dims are
 * moved to the front and the tensor copied once.
 *
 *   sum: dx = g broadcast back        mean: dx = g / r broadcast back
 *   max/min: dx = g [x == out] / (number of maximal elements), as torch's amax/amin
 */
#include "op.h"

#include <math.h>
#include <string.h>

static const nb_reduce_op kernel_of[NB_OP_COUNT] = {
    [NB_OP_SUM] = NB_RED_SUM, [NB_OP_MEAN] = NB_RED_SUM, [NB_OP_MAX] = NB_RED_MAX,
    [NB_OP_MIN] = NB_RED_MIN,
};

/* The shape of the result with reduced dims kept as size 1. */
static void keepdim_shape(const nb_tensor *a, const nb_op_args *args, int64_t *shape) {
    for (int d = 0; d < a->ndim; d++) shape[d] = a->shape[d];
    for (int i = 0; i < args->n_dims; i++) shape[args->dims[i]] = 1;
}

/* Lays x out as (outer, r, inner) with the reduced dims in the middle; returns x or a copy. */
static nb_tensor *as_outer_r_inner(nb_tensor *x, const nb_op_args *args, int64_t *outer,
                                   int64_t *r, int64_t *inner) {
    bool reduced[NB_MAX_DIMS] = {false};
    for (int i = 0; i < args->n_dims; i++) reduced[args->dims[i]] = true;
    int first = x->ndim, last = -1;
    for (int d = 0; d < x->ndim; d++)
        if (reduced[d]) first = first < d ? first : d, last = d;
    bool one_run = true;
    for (int d = first; d <= last; d++) one_run = one_run && reduced[d];
    *outer = *r = *inner = 1;
    if (one_run && nb_is_contiguous(x)) {
        for (int d = 0; d < x->ndim; d++)
            *(d < first ? outer : d <= last ? r : inner) *= x->shape[d];
        return x;
    }
    int perm[NB_MAX_DIMS], n = 0;
    for (int d = 0; d < x->ndim; d++)
        if (!reduced[d]) perm[n++] = d, *outer *= x->shape[d];
    for (int d = 0; d < x->ndim; d++)
        if (reduced[d]) perm[n++] = d, *r *= x->shape[d];
    bool was = nb_set_grad_enabled(false);
    nb_tensor *p = nb_permute(x, x->ndim, perm), *c = nb__contig(p);
    if (c != p) nb_tensor_free(p);
    nb_set_grad_enabled(was);
    return c;
}

nb_tensor *nb__fwd_reduce(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)n;
    nb_tensor *a = in[0];
    const char *name = nb__ops[op].name;
    int64_t kshape[NB_MAX_DIMS], oshape[NB_MAX_DIMS], outer, r, inner;
    keepdim_shape(a, args, kshape);
    int ondim = 0;
    for (int d = 0; d < a->ndim; d++) {
        bool reduced = false;
        for (int i = 0; i < args->n_dims; i++) reduced = reduced || args->dims[i] == d;
        if (!reduced || args->keepdim) oshape[ondim++] = kshape[d];
    }
    nb_tensor *x = as_outer_r_inner(a, args, &outer, &r, &inner);
    if (!x) return NULL;
    if (r == 0 && op != NB_OP_SUM && op != NB_OP_MEAN)
        return nb__fail(NB_ERR_SHAPE, "%s: %s: cannot reduce over an empty dimension", name, NB_SHP(a));
    nb_tensor *out = nb__new(op == NB_OP_ARGMAX ? NB_I32 : NB_F32, ondim, oshape);
    if (out && op == NB_OP_ARGMAX) {
        nb__be(a)->argmax(nb__i32(out), nb__f32(x), outer, r, inner);
    } else if (out) {
        nb__be(a)->reduce(kernel_of[op], nb__f32(out), nb__f32(x), outer, r, inner);
        if (op == NB_OP_MEAN)
            nb__be(a)->unary(NB_UN_MULS, nb__f32(out), nb__f32(out), outer * inner,
                             r ? 1.0f / (float)r : NAN, 0);
    }
    if (x != a) nb_tensor_free(x);
    return out;
}

/* Written with ops, so one version serves both modes of op.h; the mask of max / min is a
 * comparison (a constant that records nothing), so their second derivative is 0, as torch's. */
static nb_tensor *reduce_grad(nb__temps *tmp, const nb_node *node, nb_tensor *g) {
    nb_tensor *a = node->in[0];
    int64_t kshape[NB_MAX_DIMS];
    keepdim_shape(a, &node->args, kshape);
    nb_tensor *gk = nb__tmp(tmp, nb_reshape(g, a->ndim, kshape));
    switch ((nb_op_id)node->op) {
    case NB_OP_SUM: return nb_expand(gk, a->ndim, a->shape);
    case NB_OP_MEAN: {
        double r = (double)nb__numel(a->ndim, a->shape) / (double)nb__numel(a->ndim, kshape);
        return nb_expand(nb__tmp(tmp, nb_mul_scalar(gk, (float)(1.0 / r))), a->ndim, a->shape);
    }
    default: { /* max, min: share g among the elements equal to the result */
        nb_tensor *kept = nb__tmp(tmp, nb_reshape(node->out, a->ndim, kshape));
        nb_tensor *mask = nb__tmp(tmp, nb_eq(a, kept));
        nb_op_args count_args = node->args;
        count_args.keepdim = true;
        nb_tensor *count = nb__tmp(tmp, nb__apply(NB_OP_SUM, 1, &mask, &count_args));
        return nb_mul(mask, nb__tmp(tmp, nb_div(gk, count)));
    }
    }
}

nb_status nb__bwd_reduce(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb__temps tmp = {0};
    din[0] = nb__temps_end(&tmp, nb__tmp(&tmp, reduce_grad(&tmp, node, g)));
    return din[0] ? NB_OK : nb_error_code();
}

/* Validates and records the dims of a reduction; n == 0 means every dim. */
static nb_tensor *reduce(nb_op_id op, nb_tensor *a, int n, const int *dims, bool keepdim) {
    const char *name = nb__ops[op].name;
    if (!nb__alive(a)) return nb__fail_input(name, a);
    if (n < 0 || n > a->ndim || (n > 0 && !dims))
        return nb__fail(NB_ERR_DIM, "%s: %d dims given for a tensor of rank %d", name, n, a->ndim);
    nb_op_args args = {.keepdim = keepdim, .n_dims = n ? n : a->ndim};
    bool seen[NB_MAX_DIMS] = {false};
    for (int i = 0; i < args.n_dims; i++) {
        int d = n ? dims[i] : i;
        if (!nb__norm_dim(name, &d, a->ndim)) return NULL;
        if (seen[d]) return nb__fail(NB_ERR_DIM, "%s: dim %d appears twice", name, d);
        seen[d] = true;
        args.dims[i] = d;
    }
    return nb__apply(op, 1, &a, &args);
}

nb_tensor *nb_sum_dims(nb_tensor *a, int n, const int *dims, bool keepdim) { return reduce(NB_OP_SUM, a, n, dims, keepdim); }
nb_tensor *nb_mean_dims(nb_tensor *a, int n, const int *dims, bool keepdim) { return reduce(NB_OP_MEAN, a, n, dims, keepdim); }
nb_tensor *nb_max_dims(nb_tensor *a, int n, const int *dims, bool keepdim) { return reduce(NB_OP_MAX, a, n, dims, keepdim); }
nb_tensor *nb_min_dims(nb_tensor *a, int n, const int *dims, bool keepdim) { return reduce(NB_OP_MIN, a, n, dims, keepdim); }
nb_tensor *nb_sum(nb_tensor *a) { return reduce(NB_OP_SUM, a, 0, NULL, false); }
nb_tensor *nb_mean(nb_tensor *a) { return reduce(NB_OP_MEAN, a, 0, NULL, false); }
nb_tensor *nb_max(nb_tensor *a) { return reduce(NB_OP_MAX, a, 0, NULL, false); }
nb_tensor *nb_min(nb_tensor *a) { return reduce(NB_OP_MIN, a, 0, NULL, false); }

nb_tensor *nb_argmax(nb_tensor *a, int dim, bool keepdim) {
    if (!nb__alive(a)) return nb__fail_input("argmax", a);
    if (dim != NB_ALL) return reduce(NB_OP_ARGMAX, a, 1, &dim, keepdim);
    nb__temps tmp = {0};
    nb_tensor *flat = nb__tmp(&tmp, nb_reshape(a, NB_SHAPE(-1)));
    return nb__temps_end(&tmp, nb__tmp(&tmp, reduce(NB_OP_ARGMAX, flat, 1, (int[]){0}, false)));
}

nb_tensor *nb__sum_to(nb_tensor *g, int ndim, const int64_t *shape) {
    if (!g) return NULL;
    if (g->ndim == ndim && memcmp(g->shape, shape, sizeof(int64_t) * (size_t)ndim) == 0) return g;
    int dims[NB_MAX_DIMS], nd = 0, lead = g->ndim - ndim;
    if (lead < 0)
        return nb__fail(NB_ERR_SHAPE, "backward: gradient %s cannot be reduced to %s", NB_SHP(g),
                        nb__shape_str(ndim, shape));
    for (int i = 0; i < g->ndim; i++)
        if (i < lead || (shape[i - lead] == 1 && g->shape[i] != 1)) dims[nd++] = i;
    nb__temps tmp = {0};
    nb_tensor *r = nd ? nb__tmp(&tmp, nb_sum_dims(g, nd, dims, true)) : g;
    return nb__temps_end(&tmp, nb__tmp(&tmp, nb_reshape(r, ndim, shape)));
}
