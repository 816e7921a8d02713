/*
 * view.c — ops that change how storage is read without touching it (reshape when possible,
 * permute, slice, expand) and the copies that make a layout contiguous.
 *
 *   reshape: g reshaped back          permute: g permuted by the inverse permutation
 *   slice:   g written into zeros     expand:  g summed over the expanded dims
 *   contiguous: g
 */
#include "op.h"

#include <string.h>

/* A contiguous copy through the backend's strided copy (threaded, unlike the core's). */
static nb_tensor *copy_contiguous(const nb_tensor *x) {
    nb_tensor *c = nb__new(x->dtype, x->ndim, x->shape);
    if (c)
        nb__be(x)->copy(c->storage->data, c->stride, (char *)x->storage->data +
                        x->offset * (int64_t)nb__dtype_size(x->dtype), x->stride, x->ndim,
                        x->shape, nb__dtype_size(x->dtype));
    return c;
}

nb_tensor *nb__contig(nb_tensor *x) {
    if (!x || nb_is_contiguous(x)) return x;
    return copy_contiguous(x);
}

/* Strides that let (ndim, shape) read the same elements as t, without copying, if any
 * (torch's computeStride): t's dims are grouped into runs that are contiguous among
 * themselves, and each run must map onto whole dims of the new shape. */
static bool view_strides(const nb_tensor *t, int ndim, const int64_t *shape, int64_t *stride) {
    int64_t numel = nb__numel(t->ndim, t->shape);
    if (numel == 0 || t->ndim == 0) {
        nb__contiguous_strides(ndim, shape, stride);
        return true;
    }
    int view_d = ndim - 1;
    int64_t chunk_base_stride = t->stride[t->ndim - 1], tensor_numel = 1, view_numel = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        tensor_numel *= t->shape[d];
        if (d == 0 || (t->shape[d - 1] != 1 && t->stride[d - 1] != tensor_numel * chunk_base_stride)) {
            while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
                stride[view_d] = view_numel * chunk_base_stride;
                view_numel *= shape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel) return false;
            if (d > 0) {
                chunk_base_stride = t->stride[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

nb_tensor *nb__fwd_reshape(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)n;
    nb_tensor *a = in[0];
    int64_t stride[NB_MAX_DIMS];
    if (view_strides(a, args->ndim, args->shape, stride))
        return nb__view(a, args->ndim, args->shape, stride, a->offset);
    if (args->view_only)
        return nb__fail(NB_ERR_SHAPE, "view: %s cannot be viewed as %s without a copy (its "
                        "strides do not allow it); use reshape", NB_SHP(a),
                        nb__shape_str(args->ndim, args->shape));
    nb_tensor *c = copy_contiguous(a);
    if (!c) return NULL;
    nb_tensor *v = nb__view(c, args->ndim, args->shape, (nb__contiguous_strides(args->ndim, args->shape, stride), stride), 0);
    nb_tensor_free(c);
    return v;
}

nb_status nb__bwd_reshape(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    din[0] = nb_reshape(g, node->in[0]->ndim, node->in[0]->shape);
    return din[0] ? NB_OK : nb_error_code();
}

/* Resolves one -1 entry and checks the element count. */
static bool resolve_shape(const char *op, const nb_tensor *a, int ndim, const int64_t *shape,
                          nb_op_args *args) {
    if (ndim < 0 || ndim > NB_MAX_DIMS || (ndim > 0 && !shape))
        return nb__fail(NB_ERR_SHAPE, "%s: rank %d is outside 0..%d", op, ndim, NB_MAX_DIMS), false;
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == -1 && infer < 0) infer = i;
        else if (shape[i] < 0)
            return nb__fail(NB_ERR_SHAPE, "%s: %s: invalid size in dim %d", op,
                            nb__shape_str(ndim, shape), i), false;
        else known *= shape[i];
        args->shape[i] = shape[i];
    }
    int64_t numel = nb__numel(a->ndim, a->shape);
    if (infer >= 0 && known > 0 && numel % known == 0) args->shape[infer] = numel / known;
    if (nb__numel(ndim, args->shape) != numel || (infer >= 0 && known == 0))
        return nb__fail(NB_ERR_SHAPE, "%s: %s (%lld elements) cannot become %s", op, NB_SHP(a),
                        (long long)numel, nb__shape_str(ndim, shape)), false;
    args->ndim = ndim;
    return true;
}

static nb_tensor *reshape(const char *name, nb_tensor *a, int ndim, const int64_t *shape,
                          bool view_only) {
    if (!nb__alive(a)) return nb__fail_input(name, a);
    nb_op_args args = {.view_only = view_only};
    if (!resolve_shape(name, a, ndim, shape, &args)) return NULL;
    return nb__apply(NB_OP_RESHAPE, 1, &a, &args);
}

nb_tensor *nb_reshape(nb_tensor *a, int ndim, const int64_t *shape) {
    return reshape("reshape", a, ndim, shape, false);
}

nb_tensor *nb_view(nb_tensor *a, int ndim, const int64_t *shape) {
    return reshape("view", a, ndim, shape, true);
}

nb_tensor *nb_flatten(nb_tensor *a, int start_dim, int end_dim) {
    if (!nb__alive(a)) return nb__fail_input("flatten", a);
    if (a->ndim == 0) return nb_reshape(a, NB_SHAPE(1));
    if (!nb__norm_dim("flatten", &start_dim, a->ndim) || !nb__norm_dim("flatten", &end_dim, a->ndim))
        return NULL;
    if (start_dim > end_dim)
        return nb__fail(NB_ERR_DIM, "flatten: start_dim %d comes after end_dim %d", start_dim, end_dim);
    int64_t shape[NB_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < a->ndim; d++) {
        if (d <= start_dim || d > end_dim) shape[n++] = a->shape[d];
        else shape[n - 1] *= a->shape[d];
    }
    return nb_reshape(a, n, shape);
}

nb_tensor *nb_squeeze(nb_tensor *a, int dim) {
    if (!nb__alive(a)) return nb__fail_input("squeeze", a);
    if (dim != NB_ALL && a->ndim > 0 && !nb__norm_dim("squeeze", &dim, a->ndim)) return NULL;
    int64_t shape[NB_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != 1 || (dim != NB_ALL && d != dim)) shape[n++] = a->shape[d];
    return nb_reshape(a, n, shape);
}

nb_tensor *nb_unsqueeze(nb_tensor *a, int dim) {
    if (!nb__alive(a)) return nb__fail_input("unsqueeze", a);
    if (a->ndim == NB_MAX_DIMS)
        return nb__fail(NB_ERR_SHAPE, "unsqueeze: %s already has %d dims", NB_SHP(a), NB_MAX_DIMS);
    if (!nb__norm_dim("unsqueeze", &dim, a->ndim + 1)) return NULL;
    int64_t shape[NB_MAX_DIMS];
    for (int d = 0, s = 0; d <= a->ndim; d++) shape[d] = d == dim ? 1 : a->shape[s++];
    return nb_reshape(a, a->ndim + 1, shape);
}

/* ---- permute */

nb_tensor *nb__fwd_permute(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)n;
    nb_tensor *a = in[0];
    int64_t shape[NB_MAX_DIMS], stride[NB_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) {
        shape[d] = a->shape[args->dims[d]];
        stride[d] = a->stride[args->dims[d]];
    }
    return nb__view(a, a->ndim, shape, stride, a->offset);
}

nb_status nb__bwd_permute(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    int inverse[NB_MAX_DIMS];
    for (int d = 0; d < node->args.n_dims; d++) inverse[node->args.dims[d]] = d;
    din[0] = nb_permute(g, node->args.n_dims, inverse);
    return din[0] ? NB_OK : nb_error_code();
}

nb_tensor *nb_permute(nb_tensor *a, int ndim, const int *perm) {
    if (!nb__alive(a)) return nb__fail_input("permute", a);
    if (ndim != a->ndim || (ndim > 0 && !perm))
        return nb__fail(NB_ERR_DIM, "permute: %s needs a permutation of %d dims, got %d",
                        NB_SHP(a), a->ndim, ndim);
    nb_op_args args = {.n_dims = ndim};
    bool seen[NB_MAX_DIMS] = {false};
    for (int d = 0; d < ndim; d++) {
        int p = perm[d];
        if (!nb__norm_dim("permute", &p, ndim)) return NULL;
        if (seen[p]) return nb__fail(NB_ERR_DIM, "permute: dim %d appears twice", p);
        seen[p] = true;
        args.dims[d] = p;
    }
    return nb__apply(NB_OP_PERMUTE, 1, &a, &args);
}

nb_tensor *nb_transpose(nb_tensor *a, int dim0, int dim1) {
    if (!nb__alive(a)) return nb__fail_input("transpose", a);
    if (!nb__norm_dim("transpose", &dim0, a->ndim) || !nb__norm_dim("transpose", &dim1, a->ndim))
        return NULL;
    int perm[NB_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) perm[d] = d;
    perm[dim0] = dim1;
    perm[dim1] = dim0;
    return nb_permute(a, a->ndim, perm);
}

/* ---- slice */

static void slice_geometry(const nb_tensor *a, const nb_op_args *s, int64_t *shape,
                           int64_t *stride, int64_t *offset) {
    memcpy(shape, a->shape, sizeof(int64_t) * (size_t)a->ndim);
    memcpy(stride, a->stride, sizeof(int64_t) * (size_t)a->ndim);
    int64_t len = s->end > s->start ? (s->end - s->start + s->step - 1) / s->step : 0;
    shape[s->dim] = len;
    stride[s->dim] *= s->step;
    *offset = a->offset + s->start * a->stride[s->dim];
}

nb_tensor *nb__fwd_slice(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)n;
    int64_t shape[NB_MAX_DIMS], stride[NB_MAX_DIMS], offset;
    slice_geometry(in[0], args, shape, stride, &offset);
    return nb__view(in[0], in[0]->ndim, shape, stride, offset);
}

nb_status nb__bwd_slice(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb_tensor *a = node->in[0], *dx = nb_zeros(a->ndim, a->shape);
    if (!dx) return nb_error_code();
    int64_t shape[NB_MAX_DIMS], stride[NB_MAX_DIMS], offset;
    slice_geometry(dx, &node->args, shape, stride, &offset);
    nb__be(g)->copy(nb__f32(dx) + offset, stride, nb__f32(g), g->stride, g->ndim, g->shape, 4);
    din[0] = dx;
    return NB_OK;
}

/* Python's slice rules: negative start/end count from the end, out-of-range bounds clamp. */
nb_tensor *nb_slice(nb_tensor *a, int dim, int64_t start, int64_t end, int64_t step) {
    if (!nb__alive(a)) return nb__fail_input("slice", a);
    if (!nb__norm_dim("slice", &dim, a->ndim)) return NULL;
    if (step <= 0) return nb__fail(NB_ERR_ARG, "slice: step must be positive, got %lld", (long long)step);
    int64_t size = a->shape[dim];
    if (start < 0) start += size;
    if (end < 0) end += size;
    start = start < 0 ? 0 : start > size ? size : start;
    end = end < start ? start : end > size ? size : end;
    nb_op_args args = {.dim = dim, .start = start, .end = end, .step = step};
    return nb__apply(NB_OP_SLICE, 1, &a, &args);
}

/* ---- expand */

nb_tensor *nb__fwd_expand(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)n;
    nb_tensor *a = in[0];
    int64_t stride[NB_MAX_DIMS];
    nb__broadcast_strides(a, args->ndim, args->shape, stride);
    return nb__view(a, args->ndim, args->shape, stride, a->offset);
}

nb_status nb__bwd_expand(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    din[0] = nb__sum_to(g, node->in[0]->ndim, node->in[0]->shape);
    return din[0] ? NB_OK : nb_error_code();
}

nb_tensor *nb_expand(nb_tensor *a, int ndim, const int64_t *shape) {
    if (!nb__alive(a)) return nb__fail_input("expand", a);
    if (ndim < a->ndim || ndim > NB_MAX_DIMS || !shape)
        return nb__fail(NB_ERR_SHAPE, "expand: %s cannot expand to rank %d", NB_SHP(a), ndim);
    nb_op_args args = {.ndim = ndim};
    int lead = ndim - a->ndim;
    for (int d = 0; d < ndim; d++) {
        int64_t have = d < lead ? 1 : a->shape[d - lead], want = shape[d];
        if (want == -1 && d >= lead) want = have;
        if (want < 0 || (have != 1 && have != want))
            return nb__fail(NB_ERR_SHAPE, "expand: %s cannot expand to %s (dim %d)", NB_SHP(a),
                            nb__shape_str(ndim, shape), d);
        args.shape[d] = want;
    }
    return nb__apply(NB_OP_EXPAND, 1, &a, &args);
}

/* ---- contiguous */

nb_tensor *nb__fwd_contiguous(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)n, (void)args;
    return copy_contiguous(in[0]);
}

nb_status nb__bwd_contiguous(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    (void)node;
    din[0] = g;
    return NB_OK;
}

nb_tensor *nb_contiguous(nb_tensor *a) {
    if (!nb__alive(a)) return nb__fail_input("contiguous", a);
    if (nb_is_contiguous(a)) {
        nb__retain(a); /* the caller will own one more reference, as for any other result */
        return a;
    }
    return nb__apply(NB_OP_CONTIGUOUS, 1, &a, NULL);
}
