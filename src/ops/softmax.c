/*
 * softmax.c — softmax and log-softmax along one dim, stable for large logits because the
 * kernel subtracts the maximum first (log-sum-exp).
 *
 *   softmax:     y = exp(x - m) / sum exp(x - m)        dx = y (g - sum(g y))
 *   log_softmax: y = x - m - log sum exp(x - m)         dx = g - exp(y) sum(g)
 * The backward reads y, the op's result: first order through the fused kernel, with
 * create_graph as ops on y, whose own node carries the second derivative back to x.
 */
#include "op.h"

static void outer_r_inner(const nb_tensor *x, int dim, int64_t *outer, int64_t *r, int64_t *inner) {
    *outer = nb__numel(dim, x->shape);
    *r = x->ndim ? x->shape[dim] : 1;
    *inner = nb__numel(x->ndim - dim - 1, x->shape + dim + 1);
}

nb_tensor *nb__fwd_softmax(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)n;
    nb_tensor *x = nb__contig(in[0]), *out = x ? nb__new_like(x) : NULL;
    if (!out) return NULL;
    int64_t outer, r, inner;
    outer_r_inner(x, args->dim, &outer, &r, &inner);
    nb__be(x)->softmax(nb__f32(out), nb__f32(x), outer, r, inner, op == NB_OP_LOG_SOFTMAX);
    if (x != in[0]) nb_tensor_free(x);
    return out;
}

/* The backward with ops (create_graph); a 0-d tensor is its own one-element "dim". */
static nb_tensor *softmax_grad_by_ops(const nb_node *node, nb_tensor *g) {
    nb__temps tmp = {0};
    nb_tensor *y = node->out, *r;
    int n = y->ndim ? 1 : 0, dim = node->args.dim;
    if (node->op == NB_OP_LOG_SOFTMAX) {
        nb_tensor *sum = nb__tmp(&tmp, nb_sum_dims(g, n, &dim, true));
        r = nb_sub(g, nb__tmp(&tmp, nb_mul(nb__tmp(&tmp, nb_exp(y)), sum)));
    } else {
        nb_tensor *sum = nb__tmp(&tmp, nb_sum_dims(nb__tmp(&tmp, nb_mul(g, y)), n, &dim, true));
        r = nb_mul(y, nb__tmp(&tmp, nb_sub(g, sum)));
    }
    return nb__temps_end(&tmp, nb__tmp(&tmp, r));
}

nb_status nb__bwd_softmax(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    if (nb_is_grad_enabled()) return (din[0] = softmax_grad_by_ops(node, g)) ? NB_OK : nb_error_code();
    nb_tensor *y = node->out, *dy = nb__contig(g), *dx = dy ? nb__new_like(y) : NULL;
    if (!dx) return nb_error_code();
    int64_t outer, r, inner;
    outer_r_inner(y, node->args.dim, &outer, &r, &inner);
    nb__be(y)->softmax_backward(nb__f32(dx), nb__f32(y), nb__f32(dy), outer, r, inner,
                                node->op == NB_OP_LOG_SOFTMAX);
    din[0] = dx;
    return NB_OK;
}

static nb_tensor *softmax(nb_op_id op, nb_tensor *a, int dim) {
    if (!nb__alive(a)) return nb__fail_input(nb__ops[op].name, a);
    if (a->ndim == 0) return nb__apply(op, 1, &a, &(nb_op_args){.dim = 0});
    if (!nb__norm_dim(nb__ops[op].name, &dim, a->ndim)) return NULL;
    return nb__apply(op, 1, &a, &(nb_op_args){.dim = dim});
}

nb_tensor *nb_softmax(nb_tensor *a, int dim) { return softmax(NB_OP_SOFTMAX, a, dim); }
nb_tensor *nb_log_softmax(nb_tensor *a, int dim) { return softmax(NB_OP_LOG_SOFTMAX, a, dim); }
