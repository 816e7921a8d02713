/*
 * select.c — joining and picking: concat, stack, where, gather, index_select.
 *
 *   concat:       dx_i = the slice of g that came from input i
 *   where:        da = g [cond], db = g [!cond]   (cond gets no gradient)
 *   gather:       da = zeros, then da[index] += g  (scatter-add: repeated indices add up)
 *   index_select: the same through an index expanded to the result's shape
 *
 * Every backward is made of ops, so it is differentiable again (create_graph).  The two
 * scatters are ops of their own, as in torch: scatter_add (gather's backward, whose backward is
 * gather) and index_add (index_select's, whose backward is index_select); both start from
 * zeros of a given shape, the only way a backward uses them.
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
    nb__temps tmp = {0};
    nb_tensor *zero = nb__tmp(&tmp, nb_zeros(0, NULL)), *cond = node->in[0];
    if (nb__needs_grad(node, 1)) din[1] = nb_where(cond, g, zero);
    if (nb__needs_grad(node, 2)) din[2] = nb_where(cond, zero, g);
    nb__temps_end(&tmp, NULL);
    bool failed = (nb__needs_grad(node, 1) && !din[1]) || (nb__needs_grad(node, 2) && !din[2]);
    return failed ? nb_error_code() : NB_OK;
}

nb_tensor *nb_where(nb_tensor *cond, nb_tensor *a, nb_tensor *b) {
    return nb__apply(NB_OP_WHERE, 3, (nb_tensor *[]){cond, a, b}, NULL);
}

/* ---- gather and index_select, and their backwards scatter_add and index_add */

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

/* The arguments of a scatter into zeros of t's shape along dim. */
static nb_op_args scatter_args(int dim, const nb_tensor *t) {
    nb_op_args args = {.dim = dim, .ndim = t->ndim};
    memcpy(args.shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    return args;
}

/* gather's rule, shared by scatter_add: index has the rank of a (or of the scatter's result)
 * and no larger sizes outside dim. */
static bool index_fits(const char *op, const nb_tensor *index, int ndim, const int64_t *shape,
                       int dim) {
    bool fits = index->ndim == ndim && dim >= 0 && dim < ndim;
    for (int d = 0; fits && d < ndim; d++) fits = d == dim || index->shape[d] <= shape[d];
    if (!fits)
        nb__fail(NB_ERR_SHAPE, "%s: index %s does not fit %s (same rank, sizes no larger "
                 "outside dim %d)", op, NB_SHP(index), nb__shape_str(ndim, shape), dim);
    return fits;
}

nb_tensor *nb__fwd_gather(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)n;
    nb_tensor *a = in[0], *index = nb__contig(in[1]);
    int dim = args->dim;
    if (!index) return NULL;
    nb_tensor *out = NULL;
    if (index_fits("gather", index, a->ndim, a->shape, dim) &&
        index_ok("gather", index, a->shape[dim], dim) &&
        (out = nb__new(NB_F32, index->ndim, index->shape)))
        nb__be(a)->gather(nb__f32(out), nb__f32(a), a->stride, nb__i32(index), index->ndim,
                          index->shape, dim);
    if (index != in[1]) nb_tensor_free(index);
    return out;
}

nb_status nb__bwd_gather(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb_op_args args = scatter_args(node->args.dim, node->in[0]);
    din[0] = nb__apply(NB_OP_SCATTER_ADD, 2, (nb_tensor *[]){g, node->in[1]}, &args);
    return din[0] ? NB_OK : nb_error_code();
}

nb_tensor *nb_gather(nb_tensor *a, int dim, nb_tensor *index) {
    if (!nb__alive(a)) return nb__fail_input("gather", a);
    if (!nb__norm_dim("gather", &dim, a->ndim)) return NULL;
    return nb__apply(NB_OP_GATHER, 2, (nb_tensor *[]){a, index}, &(nb_op_args){.dim = dim});
}

/* scatter_add: out = zeros(args->shape), out[i with coordinate dim replaced by index[i]] +=
 * src[i]; src and index of one shape.  The indices' range is checked by nb__scatter_add and,
 * for gather's backward, was by gather: not again here, on the training path. */
nb_tensor *nb__fwd_scatter_add(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)n;
    nb_tensor *src = in[0], *index = in[1];
    int dim = args->dim;
    if (!nb__same_shape(src, index))
        return nb__fail(NB_ERR_SHAPE, "scatter_add: source %s and index %s differ in shape",
                        NB_SHP(src), NB_SHP(index));
    if (!index_fits("scatter_add", index, args->ndim, args->shape, dim)) return NULL;
    nb_tensor *ic = nb__contig(index), *sc = ic ? nb__contig(src) : NULL, *out = NULL;
    if (sc && (out = nb_zeros(args->ndim, args->shape)))
        nb__be(src)->scatter_add(nb__f32(out), out->stride, nb__f32(sc), nb__i32(ic), ic->ndim,
                                 ic->shape, dim);
    if (sc != src) nb_tensor_free(sc);
    if (ic != index) nb_tensor_free(ic);
    return out;
}

/* Each src[i] went to one place of out: its gradient is read back from there (gather). */
nb_status nb__bwd_scatter_add(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    din[0] = nb_gather(g, node->args.dim, node->in[1]);
    return din[0] ? NB_OK : nb_error_code();
}

/* Checks what the table does not: a rank and a dim the shape has. */
static bool scatter_target_ok(const char *op, int ndim, const int64_t *shape, int *dim) {
    if (ndim < 1 || ndim > NB_MAX_DIMS || !shape)
        return nb__fail(NB_ERR_SHAPE, "%s: the result's rank %d is outside 1..%d", op, ndim,
                        NB_MAX_DIMS), false;
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0)
            return nb__fail(NB_ERR_SHAPE, "%s: result shape %s has a negative size", op,
                            nb__shape_str(ndim, shape)), false;
    return nb__norm_dim(op, dim, ndim);
}

nb_tensor *nb__scatter_add(nb_tensor *src, int dim, nb_tensor *index, int ndim,
                           const int64_t *shape) {
    if (!nb__alive(src)) return nb__fail_input("scatter_add", src);
    if (!scatter_target_ok("scatter_add", ndim, shape, &dim)) return NULL;
    if (!nb__alive(index)) return nb__fail_input("scatter_add", index);
    if (index->dtype == NB_I32 && !index_ok("scatter_add", index, shape[dim], dim)) return NULL;
    nb_op_args args = {.dim = dim, .ndim = ndim};
    memcpy(args.shape, shape, sizeof(int64_t) * (size_t)ndim);
    return nb__apply(NB_OP_SCATTER_ADD, 2, (nb_tensor *[]){src, index}, &args);
}

/* index_select(a, dim, idx) = gather(a, dim, idx placed along dim and expanded to the result
 * shape, which is `shape` with dim's size replaced by idx's length): one kernel pair serves
 * index_select and index_add. */
static nb_tensor *expanded_index(int ndim, const int64_t *shape, int dim, nb_tensor *index) {
    int64_t full[NB_MAX_DIMS], view[NB_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        full[d] = d == dim ? index->shape[0] : shape[d];
        view[d] = d == dim ? index->shape[0] : 1;
    }
    nb_tensor *v = nb_reshape(index, ndim, view);
    nb_tensor *e = v ? nb_expand(v, ndim, full) : NULL;
    nb_tensor *c = e ? nb__contig(e) : NULL;
    if (c != e) nb_tensor_free(e);
    if (c != v) nb_tensor_free(v);
    return c;
}

/* A 1-D index whose entries lie in 0..size-1. */
static bool index_1d_ok(const char *op, nb_tensor *index, int64_t size, int dim) {
    if (index->ndim != 1)
        return nb__fail(NB_ERR_SHAPE, "%s: needs a 1-D index, got %s", op, NB_SHP(index)), false;
    nb_tensor *ic = nb__contig(index);
    bool ok = ic && index_ok(op, ic, size, dim);
    if (ic != index) nb_tensor_free(ic);
    return ok;
}

nb_tensor *nb__fwd_index_select(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)n;
    nb_tensor *a = in[0], *index = in[1];
    if (!index_1d_ok("index_select", index, a->shape[args->dim], args->dim)) return NULL;
    nb_tensor *full = expanded_index(a->ndim, a->shape, args->dim, index);
    nb_tensor *out = full ? nb__new(NB_F32, full->ndim, full->shape) : NULL;
    if (out)
        nb__be(a)->gather(nb__f32(out), nb__f32(a), a->stride, nb__i32(full), full->ndim,
                          full->shape, args->dim);
    nb_tensor_free(full);
    return out;
}

nb_status nb__bwd_index_select(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb_op_args args = scatter_args(node->args.dim, node->in[0]);
    din[0] = nb__apply(NB_OP_INDEX_ADD, 2, (nb_tensor *[]){g, node->in[1]}, &args);
    return din[0] ? NB_OK : nb_error_code();
}

nb_tensor *nb_index_select(nb_tensor *a, int dim, nb_tensor *index) {
    if (!nb__alive(a)) return nb__fail_input("index_select", a);
    if (!nb__norm_dim("index_select", &dim, a->ndim)) return NULL;
    return nb__apply(NB_OP_INDEX_SELECT, 2, (nb_tensor *[]){a, index}, &(nb_op_args){.dim = dim});
}

/* index_add: out = zeros(args->shape), out[.., index[k], ..] += src[.., k, ..] along dim; src
 * has the result's shape but for dim, where it has the index's length. */
nb_tensor *nb__fwd_index_add(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)n;
    nb_tensor *src = in[0], *index = in[1];
    int dim = args->dim;
    bool fits = src->ndim == args->ndim && index->ndim == 1; /* range: as for scatter_add */
    for (int d = 0; fits && d < src->ndim; d++)
        fits = src->shape[d] == (d == dim ? index->shape[0] : args->shape[d]);
    if (!fits)
        return nb__fail(NB_ERR_SHAPE, "index_add: source %s does not fit a result %s with a 1-D "
                        "index %s along dim %d", NB_SHP(src), nb__shape_str(args->ndim, args->shape),
                        NB_SHP(index), dim);
    nb_tensor *full = expanded_index(args->ndim, args->shape, dim, index);
    nb_tensor *sc = full ? nb__contig(src) : NULL;
    nb_tensor *out = sc ? nb_zeros(args->ndim, args->shape) : NULL;
    if (out)
        nb__be(src)->scatter_add(nb__f32(out), out->stride, nb__f32(sc), nb__i32(full),
                                 full->ndim, full->shape, dim);
    if (sc != src) nb_tensor_free(sc);
    nb_tensor_free(full);
    return out;
}

/* Slice k of src went to slice index[k] of out: its gradient is read back (index_select). */
nb_status nb__bwd_index_add(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    din[0] = nb_index_select(g, node->args.dim, node->in[1]);
    return din[0] ? NB_OK : nb_error_code();
}

nb_tensor *nb__index_add(nb_tensor *src, int dim, nb_tensor *index, int ndim,
                         const int64_t *shape) {
    if (!nb__alive(src)) return nb__fail_input("index_add", src);
    if (!scatter_target_ok("index_add", ndim, shape, &dim)) return NULL;
    if (!nb__alive(index)) return nb__fail_input("index_add", index);
    if (index->dtype == NB_I32 && !index_1d_ok("index_add", index, shape[dim], dim)) return NULL;
    nb_op_args args = {.dim = dim, .ndim = ndim};
    memcpy(args.shape, shape, sizeof(int64_t) * (size_t)ndim);
    return nb__apply(NB_OP_INDEX_ADD, 2, (nb_tensor *[]){src, index}, &args);
}
