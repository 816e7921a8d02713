/*
 * select.c — joining and picking: concat, stack, where, gather, index_select.
 *
 *   concat:       dx_i = the slice of g that came from input i
 *   where:        da = g [cond], db = g [!cond]   (cond gets no gradient)
 *   gather:       da = zeros, then da[index] += g  (scatter-add: repeated indices add up)
 *   index_select: the same through an index expanded to the result's shape
 */
#include "op.h"

#include <string.h>

/* ---- concat */

nb_tensor *nb__fwd_concat(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op;
    const nb_tensor *first = in[0];
    int dim = args->dim;
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, first->shape, sizeof shape);
    shape[dim] = 0;
    for (int i = 0; i < n; i++) {
        const nb_tensor *t = in[i];
        bool fits = t->ndim == first->ndim && t->dtype == first->dtype;
        for (int d = 0; fits && d < t->ndim; d++) fits = d == dim || t->shape[d] == first->shape[d];
        if (!fits)
            return nb__fail(NB_ERR_SHAPE, "concat: input %d %s does not fit input 0 %s outside "
                            "dim %d", i, NB_SHP(t), NB_SHP(first), dim);
        shape[dim] += t->shape[dim];
    }
    nb_tensor *out = nb__new(first->dtype, first->ndim, shape);
    if (!out) return NULL;
    size_t es = nb__dtype_size(first->dtype);
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        const nb_tensor *t = in[i];
        char *dst = (char *)out->storage->data + (size_t)(at * out->stride[dim]) * es;
        nb__be(t)->copy(dst, out->stride, (char *)t->storage->data + (size_t)t->offset * es,
                        t->stride, t->ndim, t->shape, es);
        at += t->shape[dim];
    }
    return out;
}

nb_status nb__bwd_concat(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    int dim = node->args.dim;
    int64_t at = 0;
    for (int i = 0; i < node->n_in; i++) {
        int64_t size = node->in[i]->shape[dim];
        if (nb__needs_grad(node, i) && !(din[i] = nb_slice(g, dim, at, at + size, 1)))
            return nb_error_code();
        at += size;
    }
    return NB_OK;
}

nb_tensor *nb_concat(int n, nb_tensor *const *ts, int dim) {
    if (n < 1 || !ts) return nb__fail(NB_ERR_ARG, "concat: needs at least one tensor");
    for (int i = 0; i < n; i++)
        if (!nb__alive(ts[i])) return nb__fail_input("concat", ts[i]);
    if (ts[0]->ndim == 0) return nb__fail(NB_ERR_SHAPE, "concat: zero-dimensional tensors cannot be concatenated");
    if (!nb__norm_dim("concat", &dim, ts[0]->ndim)) return NULL;
    return nb__apply(NB_OP_CONCAT, n, ts, &(nb_op_args){.dim = dim});
}

/* stack = unsqueeze each input at dim, then concat; the views live in the current home. */
nb_tensor *nb_stack(int n, nb_tensor *const *ts, int dim) {
    if (n < 1 || !ts) return nb__fail(NB_ERR_ARG, "stack: needs at least one tensor");
    for (int i = 0; i < n; i++) {
        if (!nb__alive(ts[i])) return nb__fail_input("stack", ts[i]);
        if (!nb__same_shape(ts[i], ts[0]))
            return nb__fail(NB_ERR_SHAPE, "stack: input %d %s differs from input 0 %s", i,
                            NB_SHP(ts[i]), NB_SHP(ts[0]));
    }
    nb_arena *home = nb__current_arena();
    nb_tensor **views = nb__home_alloc(home, sizeof(nb_tensor *) * (size_t)n), *out = NULL;
    if (!views) return NULL;
    int made = 0;
    for (; made < n; made++)
        if (!(views[made] = nb_unsqueeze(ts[made], dim))) break;
    if (made == n) out = nb_concat(n, views, dim);
    for (int i = 0; i < made; i++) nb_tensor_free(views[i]);
    nb__home_free(home, views, sizeof(nb_tensor *) * (size_t)n);
    return out;
}

/* ---- where */

nb_tensor *nb__fwd_where(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)n, (void)args;
    const nb_tensor *c = in[0], *a = in[1], *b = in[2];
    int nd1, nd;
    int64_t s1[NB_MAX_DIMS], shape[NB_MAX_DIMS], sc[NB_MAX_DIMS], sa[NB_MAX_DIMS], sb[NB_MAX_DIMS];
    if (!nb__broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &nd1, s1) ||
        !nb__broadcast_shape(c->ndim, c->shape, nd1, s1, &nd, shape))
        return nb__fail(NB_ERR_SHAPE, "where: condition %s, %s and %s do not broadcast",
                        NB_SHP(c), NB_SHP(a), NB_SHP(b));
    nb_tensor *out = nb__new(NB_F32, nd, shape);
    if (!out) return NULL;
    nb__broadcast_strides(c, nd, shape, sc);
    nb__broadcast_strides(a, nd, shape, sa);
    nb__broadcast_strides(b, nd, shape, sb);
    nb__be(a)->where(nb__f32(out), nb__f32(c), sc, nb__f32(a), sa, nb__f32(b), sb, nd, shape);
    return out;
}

nb_status nb__bwd_where(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb_tensor *zero = nb_zeros(0, NULL), *cond = node->in[0];
    if (nb__needs_grad(node, 1) && !(din[1] = nb_where(cond, g, zero))) return nb_error_code();
    if (nb__needs_grad(node, 2) && !(din[2] = nb_where(cond, zero, g))) return nb_error_code();
    return NB_OK;
}

nb_tensor *nb_where(nb_tensor *cond, nb_tensor *a, nb_tensor *b) {
    return nb__apply(NB_OP_WHERE, 3, (nb_tensor *[]){cond, a, b}, NULL);
}

/* ---- gather and index_select */

/* Every index in 0..size-1 (the table has checked that index is int32). */
static bool index_ok(const char *op, const nb_tensor *index, int64_t size, int dim) {
    int64_t n = nb__numel(index->ndim, index->shape);
    int32_t *ix = nb__host_copy(index); /* checked on the host */
    bool ok = ix != NULL;
    for (int64_t i = 0; ok && i < n; i++)
        if (ix[i] < 0 || ix[i] >= size) {
            nb__fail(NB_ERR_ARG, "%s: index %d is out of range for dim %d of size %lld", op,
                     (int)ix[i], dim, (long long)size);
            ok = false;
        }
    if (ix) nb__host_free(ix, index);
    return ok;
}

nb_tensor *nb__fwd_gather(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)n;
    nb_tensor *a = in[0], *index = nb__contig(in[1]);
    int dim = args->dim;
    if (!index) return NULL;
    nb_tensor *out = NULL;
    bool fits = index->ndim == a->ndim;
    for (int d = 0; fits && d < a->ndim; d++) fits = d == dim || index->shape[d] <= a->shape[d];
    if (!fits)
        nb__fail(NB_ERR_SHAPE, "gather: index %s does not fit %s (same rank, sizes no larger "
                 "outside dim %d)", NB_SHP(index), NB_SHP(a), dim);
    else if (index_ok("gather", index, a->shape[dim], dim) &&
             (out = nb__new(NB_F32, index->ndim, index->shape)))
        nb__be(a)->gather(nb__f32(out), nb__f32(a), a->stride, nb__i32(index), index->ndim,
                          index->shape, dim);
    if (index != in[1]) nb_tensor_free(index);
    return out;
}

nb_status nb__bwd_gather(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb_tensor *a = node->in[0], *index = nb__contig(node->in[1]), *dy = nb__contig(g);
    nb_tensor *dx = index && dy ? nb_zeros(a->ndim, a->shape) : NULL;
    if (!dx) return nb_error_code();
    nb__be(a)->scatter_add(nb__f32(dx), dx->stride, nb__f32(dy), nb__i32(index), index->ndim,
                           index->shape, node->args.dim);
    din[0] = dx;
    return NB_OK;
}

nb_tensor *nb_gather(nb_tensor *a, int dim, nb_tensor *index) {
    if (!nb__alive(a)) return nb__fail_input("gather", a);
    if (!nb__norm_dim("gather", &dim, a->ndim)) return NULL;
    return nb__apply(NB_OP_GATHER, 2, (nb_tensor *[]){a, index}, &(nb_op_args){.dim = dim});
}

/* index_select(a, dim, idx) = gather(a, dim, idx placed along dim and expanded to the result
 * shape): one kernel pair serves both ops. */
static nb_tensor *expanded_index(const nb_tensor *a, int dim, nb_tensor *index) {
    int64_t shape[NB_MAX_DIMS], view[NB_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) {
        shape[d] = d == dim ? index->shape[0] : a->shape[d];
        view[d] = d == dim ? index->shape[0] : 1;
    }
    nb_tensor *v = nb_reshape(index, a->ndim, view);
    nb_tensor *e = v ? nb_expand(v, a->ndim, shape) : NULL;
    nb_tensor *c = e ? nb__contig(e) : NULL;
    if (c != e) nb_tensor_free(e);
    if (c != v) nb_tensor_free(v);
    return c;
}

nb_tensor *nb__fwd_index_select(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)n;
    nb_tensor *a = in[0], *index = in[1];
    if (index->ndim != 1)
        return nb__fail(NB_ERR_SHAPE, "index_select: needs a 1-D index, got %s", NB_SHP(index));
    nb_tensor *ic = nb__contig(index);
    bool ok = ic && index_ok("index_select", ic, a->shape[args->dim], args->dim);
    if (ic != index) nb_tensor_free(ic);
    nb_tensor *full = ok ? expanded_index(a, args->dim, index) : NULL;
    nb_tensor *out = full ? nb__new(NB_F32, full->ndim, full->shape) : NULL;
    if (out)
        nb__be(a)->gather(nb__f32(out), nb__f32(a), a->stride, nb__i32(full), full->ndim,
                          full->shape, args->dim);
    nb_tensor_free(full);
    return out;
}

nb_status nb__bwd_index_select(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb_tensor *a = node->in[0], *full = expanded_index(a, node->args.dim, node->in[1]);
    nb_tensor *dy = nb__contig(g), *dx = full && dy ? nb_zeros(a->ndim, a->shape) : NULL;
    if (!dx) return nb_error_code();
    nb__be(a)->scatter_add(nb__f32(dx), dx->stride, nb__f32(dy), nb__i32(full), full->ndim,
                           full->shape, node->args.dim);
    din[0] = dx;
    return NB_OK;
}

nb_tensor *nb_index_select(nb_tensor *a, int dim, nb_tensor *index) {
    if (!nb__alive(a)) return nb__fail_input("index_select", a);
    if (!nb__norm_dim("index_select", &dim, a->ndim)) return NULL;
    return nb__apply(NB_OP_INDEX_SELECT, 2, (nb_tensor *[]){a, index}, &(nb_op_args){.dim = dim});
}
