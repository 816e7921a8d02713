/*
 * layernorm.c — the layer_norm row: torch's F.layer_norm of x over its last k dims (D their
 * product, each of the N leading positions a row), with an optional weight and bias shaped as
 * those k dims, as one op with fused kernels (backend layer_norm, formulas in
 * backend/cpu/layernorm.c).  Its arguments: n_dims k, s0 eps; inputs x, then the weight and
 * the bias that were given (with two inputs, keepdim says the second is the weight, else it is
 * the bias).
 *
 * Memory: what the backward needs beside the inputs is each row's mean and rstd = 1 / sqrt(var
 * + eps), 2 N floats.  The forward allocates them in the same storage right after the result,
 * which is a view of the first N D elements, so the node keeps them alive without a second
 * tensor (as the attention row keeps its log-sum-exp).  Written with ops, a LayerNorm kept five
 * input-sized intermediates (x - mean, its square, the normalised x, and the products with the
 * weight) until its scope ended.
 *
 * The create_graph backward is torch's formulas with ops, the statistics recomputed from x:
 *   xhat = (x - mean) rstd,  dxhat = g w
 *   dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),  dw = sum_N g xhat,  db = sum_N g
 * so gradients of gradients exist to any order.
 */
#include "op.h"

#include <math.h>

/* The weight and bias among the inputs, NULL where not given. */
static void affine_inputs(nb_tensor *const *in, int n, bool weight_first, nb_tensor **w,
                          nb_tensor **b) {
    *w = n == 3 || (n == 2 && weight_first) ? in[1] : NULL;
    *b = n == 3 ? in[2] : n == 2 && !weight_first ? in[1] : NULL;
}

/* NB_OK when x has k >= 1 trailing dims and the weight and bias are shaped as them. */
static nb_status check_shapes(const nb_tensor *x, int k, const nb_tensor *w, const nb_tensor *b) {
    const char *name = nb__ops[NB_OP_LAYER_NORM].name;
    if (k < 1 || k > x->ndim)
        return nb__fail_status(NB_ERR_SHAPE, "%s: input %s has no %d trailing dims to normalise",
                               name, NB_SHP(x), k);
    const int64_t *tail = x->shape + x->ndim - k;
    const nb_tensor *const ab[2] = {w, b};
    for (int i = 0; i < 2; i++) {
        bool fits = !ab[i] || ab[i]->ndim == k;
        for (int d = 0; fits && ab[i] && d < k; d++) fits = ab[i]->shape[d] == tail[d];
        if (!fits)
            return nb__fail_status(NB_ERR_SHAPE, "%s: %s %s is not the normalised shape %s of "
                                   "input %s", name, i ? "bias" : "weight", NB_SHP(ab[i]),
                                   nb__shape_str(k, tail), NB_SHP(x));
    }
    return NB_OK;
}

static int64_t row_size(const nb_tensor *x, int k) { return nb__numel(k, x->shape + x->ndim - k); }
static int64_t row_count(const nb_tensor *x, int k) { return nb__numel(x->ndim - k, x->shape); }

static void free_copy(nb_tensor *t, const nb_tensor *orig) {
    if (t && t != orig) nb_tensor_free(t);
}

nb_tensor *nb__fwd_layer_norm(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *a) {
    (void)op;
    nb_tensor *w0, *b0;
    affine_inputs(in, n, a->keepdim, &w0, &b0);
    int k = a->n_dims;
    if (check_shapes(in[0], k, w0, b0) != NB_OK) return NULL;
    nb_tensor *x = nb__contig(in[0]), *w = x && w0 ? nb__contig(w0) : NULL;
    nb_tensor *b = x && b0 ? nb__contig(b0) : NULL, *out = NULL;
    if (!x || (w0 && !w) || (b0 && !b)) goto out_free_inputs;
    int64_t numel = nb__numel(x->ndim, x->shape), rows = row_count(x, k);
    int64_t total = numel + 2 * rows, stride[NB_MAX_DIMS];
    nb_tensor *block = nb__new(NB_F32, 1, &total); /* the result, then the means and rstds */
    if (!block) goto out_free_inputs;
    nb__contiguous_strides(x->ndim, x->shape, stride);
    out = nb__view(block, x->ndim, x->shape, stride, 0);
    nb_tensor_free(block);
    if (out) {
        float *y = nb__f32(out);
        nb__be(x)->layer_norm(y, y + numel, y + numel + rows, nb__f32(x), w ? nb__f32(w) : NULL,
                              b ? nb__f32(b) : NULL, rows, row_size(x, k), a->s0);
    }
out_free_inputs:
    free_copy(b, b0), free_copy(w, w0), free_copy(x, in[0]);
    return out;
}

/* create_graph: the formulas above with ops, each gradient computed only when wanted; slot[i]
 * is the input of grads[i] (x, the weight, the bias), -1 when that input is not given. */
static nb_status backward_by_ops(const nb_node *node, nb_tensor *g, nb_tensor *w,
                                 const int slot[3], nb_tensor **din) {
    nb__temps tmp = {0};
    nb_tensor *x = node->in[0];
    int k = node->args.n_dims, lead = x->ndim - k, dims[NB_MAX_DIMS], lead_dims[NB_MAX_DIMS];
    for (int d = 0; d < k; d++) dims[d] = lead + d;
    for (int d = 0; d < lead; d++) lead_dims[d] = d;
    nb_tensor *mean = nb__tmp(&tmp, nb_mean_dims(x, k, dims, true));
    nb_tensor *xc = nb__tmp(&tmp, nb_sub(x, mean));
    nb_tensor *var = nb__tmp(&tmp, nb_mean_dims(nb__tmp(&tmp, nb_mul(xc, xc)), k, dims, true));
    nb_tensor *veps = nb__tmp(&tmp, nb_add_scalar(var, node->args.s0));
    nb_tensor *rstd = nb__tmp(&tmp, nb_pow_scalar(veps, -0.5f));
    nb_tensor *xhat = nb__tmp(&tmp, nb_mul(xc, rstd)), *grads[3] = {NULL, NULL, NULL};
    bool want[3];
    for (int i = 0; i < 3; i++) want[i] = slot[i] >= 0 && nb__needs_grad(node, slot[i]);
    if (want[0]) {
        nb_tensor *dxh = w ? nb__tmp(&tmp, nb_mul(g, w)) : g;
        nb_tensor *ma = nb__tmp(&tmp, nb_mean_dims(dxh, k, dims, true));
        nb_tensor *mc = nb__tmp(&tmp, nb_mean_dims(nb__tmp(&tmp, nb_mul(dxh, xhat)), k, dims, true));
        nb_tensor *centred = nb__tmp(&tmp, nb_sub(dxh, ma));
        nb_tensor *inner = nb__tmp(&tmp, nb_sub(centred, nb__tmp(&tmp, nb_mul(xhat, mc))));
        grads[0] = nb__tmp(&tmp, nb_mul(rstd, inner));
    }
    /* sums over the leading dims; with none (x is one row) the product is the gradient */
    if (want[1]) {
        nb_tensor *p = nb__tmp(&tmp, nb_mul(g, xhat));
        grads[1] = lead ? nb__tmp(&tmp, nb_sum_dims(p, lead, lead_dims, false)) : p;
    }
    if (want[2]) grads[2] = lead ? nb__tmp(&tmp, nb_sum_dims(g, lead, lead_dims, false)) : g;
    bool failed = false;
    for (int i = 0; i < 3; i++) failed |= want[i] && !grads[i];
    for (int i = 0; i < 3 && !failed; i++)
        if (want[i]) din[slot[i]] = nb__temps_end(&(nb__temps){0}, grads[i]);
    nb__temps_end(&tmp, NULL);
    return failed ? nb_error_code() : NB_OK;
}

nb_status nb__bwd_layer_norm(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    const nb_op_args *a = &node->args;
    nb_tensor *w0, *b0;
    affine_inputs(node->in, node->n_in, a->keepdim, &w0, &b0);
    int slot[3] = {0, w0 ? 1 : -1, b0 ? node->n_in - 1 : -1};
    if (nb_is_grad_enabled()) return backward_by_ops(node, g, w0, slot, din);
    nb_tensor *x = nb__contig(node->in[0]), *dy = x ? nb__contig(g) : NULL;
    nb_tensor *w = dy && w0 ? nb__contig(w0) : NULL, *grads[3] = {NULL, NULL, NULL};
    nb_tensor *const like[3] = {x, w0, b0};
    nb_status s = dy && (!w0 || w) ? NB_OK : nb_error_code();
    for (int i = 0; i < 3 && s == NB_OK; i++)
        if (slot[i] >= 0 && nb__needs_grad(node, slot[i]) && !(grads[i] = nb__new_like(like[i])))
            s = nb_error_code();
    if (s == NB_OK) {
        int k = a->n_dims;
        int64_t rows = row_count(x, k);
        const float *y = nb__f32(node->out), *mean = y + nb__numel(x->ndim, x->shape);
        float *out[3];
        for (int i = 0; i < 3; i++) out[i] = grads[i] ? nb__f32(grads[i]) : NULL;
        nb__be(x)->layer_norm_backward(out[0], out[1], out[2], nb__f32(x), mean, mean + rows,
                                       w ? nb__f32(w) : NULL, nb__f32(dy), rows, row_size(x, k));
        for (int i = 0; i < 3; i++)
            if (grads[i]) din[slot[i]] = grads[i];
    } else {
        for (int i = 0; i < 3; i++) nb_tensor_free(grads[i]);
    }
    free_copy(w, w0), free_copy(dy, g), free_copy(x, node->in[0]);
    return s;
}

nb_tensor *nb_layer_norm(nb_tensor *x, int ndim, nb_tensor *weight, nb_tensor *bias, float eps) {
    const char *name = nb__ops[NB_OP_LAYER_NORM].name;
    nb_tensor *const all[3] = {x, weight, bias};
    for (int i = 0; i < 3; i++)
        if ((i == 0 || all[i]) && !nb__alive(all[i])) return nb__fail_input(name, all[i]);
    if (!(eps >= 0.0f && isfinite(eps)))
        return nb__fail(NB_ERR_ARG, "%s: eps %g is not a finite number >= 0", name, eps);
    if (check_shapes(x, ndim, weight, bias) != NB_OK) return NULL;
    nb_tensor *in[3] = {x};
    int n = 1;
    if (weight) in[n++] = weight;
    if (bias) in[n++] = bias;
    return nb__apply(NB_OP_LAYER_NORM, n, in,
                     &(nb_op_args){.n_dims = ndim, .s0 = eps, .keepdim = weight != NULL});
}
