/*
 * binary.c — elementwise ops on two broadcast inputs: add, sub, mul, div, pow and the
 * comparisons.  Shapes broadcast with NumPy's rules; the backward returns gradients of the
 * broadcast shape and the engine sums them down to each input's shape.
 *
 *   d(a+b) = g, g        d(a-b) = g, -g        d(a*b) = g b, g a
 *   d(a/b) = g / b, -g a / b^2 = -g out / b
 *   d(a^b) = g b a^(b-1), g a^b ln a   (0 where a == 0 and b >= 0, as torch defines it)
 */
#include "op.h"

static const nb_binary_op kernel_of[NB_OP_COUNT] = {
    [NB_OP_ADD] = NB_BIN_ADD, [NB_OP_SUB] = NB_BIN_SUB, [NB_OP_MUL] = NB_BIN_MUL,
    [NB_OP_DIV] = NB_BIN_DIV, [NB_OP_POW] = NB_BIN_POW, [NB_OP_EQ] = NB_BIN_EQ,
    [NB_OP_NE] = NB_BIN_NE,   [NB_OP_LT] = NB_BIN_LT,   [NB_OP_LE] = NB_BIN_LE,
    [NB_OP_GT] = NB_BIN_GT,   [NB_OP_GE] = NB_BIN_GE,
};

nb_tensor *nb__fwd_binary(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)n, (void)args;
    const nb_tensor *a = in[0], *b = in[1];
    const char *name = nb__ops[op].name;
    int ndim;
    int64_t shape[NB_MAX_DIMS], sa[NB_MAX_DIMS], sb[NB_MAX_DIMS];
    if (!nb__broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &ndim, shape))
        return nb__fail(NB_ERR_SHAPE, "%s: %s and %s do not broadcast", name, NB_SHP(a), NB_SHP(b));
    nb_tensor *out = nb__new(NB_F32, ndim, shape);
    if (!out) return NULL;
    nb__broadcast_strides(a, ndim, shape, sa);
    nb__broadcast_strides(b, ndim, shape, sb);
    nb__be(a)->binary(kernel_of[op], nb__f32(out), nb__f32(a), sa, nb__f32(b), sb, ndim, shape);
    return out;
}

static nb_tensor *pow_exponent_grad(nb_tensor *g, nb_tensor *a, nb_tensor *b, nb_tensor *out) {
    nb_tensor *zero = nb_zeros(0, NULL);
    nb_tensor *masked = nb_mul(nb_eq(a, zero), nb_ge(b, zero));
    return nb_mul(g, nb_where(masked, zero, nb_mul(out, nb_log(a))));
}

nb_status nb__bwd_binary(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb_tensor *a = node->in[0], *b = node->in[1];
    bool da = nb__needs_grad(node, 0), db = nb__needs_grad(node, 1);
    switch ((nb_op_id)node->op) {
    case NB_OP_ADD:
        if (da) din[0] = g;
        if (db) din[1] = g;
        break;
    case NB_OP_SUB:
        if (da) din[0] = g;
        if (db) din[1] = nb_neg(g);
        break;
    case NB_OP_MUL:
        if (da) din[0] = nb_mul(g, b);
        if (db) din[1] = nb_mul(g, a);
        break;
    case NB_OP_DIV:
        if (da) din[0] = nb_div(g, b);
        if (db) din[1] = nb_neg(nb_div(nb_mul(g, node->out), b));
        break;
    case NB_OP_POW:
        if (da) din[0] = nb_mul(nb_mul(g, b), nb_pow(a, nb_add_scalar(b, -1.0f)));
        if (db) din[1] = pow_exponent_grad(g, a, b, node->out);
        break;
    default:
        return nb__fail_status(NB_ERR_GRAPH, "%s: has no gradient", nb__ops[node->op].name);
    }
    if ((da && !din[0]) || (db && !din[1])) return nb_error_code();
    return NB_OK;
}

#define BINARY_API(fn, id)                                                      \
    nb_tensor *fn(nb_tensor *a, nb_tensor *b) {                                 \
        return nb__apply(id, 2, (nb_tensor *[]){a, b}, NULL);                   \
    }
BINARY_API(nb_add, NB_OP_ADD)
BINARY_API(nb_sub, NB_OP_SUB)
BINARY_API(nb_mul, NB_OP_MUL)
BINARY_API(nb_div, NB_OP_DIV)
BINARY_API(nb_pow, NB_OP_POW)
BINARY_API(nb_eq, NB_OP_EQ)
BINARY_API(nb_ne, NB_OP_NE)
BINARY_API(nb_lt, NB_OP_LT)
BINARY_API(nb_le, NB_OP_LE)
BINARY_API(nb_gt, NB_OP_GT)
BINARY_API(nb_ge, NB_OP_GE)
