/*
 * binary.c — elementwise ops on two broadcast inputs: add, sub, mul, div, pow and the
 * comparisons.  Shapes broadcast with NumPy's rules; the backward returns gradients of the
 * broadcast shape and the engine sums them down to each input's shape.
 *
 *   d(a+b) = g, g        d(a-b) = g, -g        d(a*b) = g b, g a
 *   d(a/b) = g / b, -g a / b^2 = -g out / b
 *   d(a^b) = g b a^(b-1), g a^b ln a   (as torch defines them: the first 0 where b == 0,
 *                                        the second 0 where a == 0 and b >= 0)
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

/* The backwards are written with ops, so one version serves both modes of op.h: kernels with
 * recording off, a differentiable graph with create_graph.  The masks of pow are comparisons,
 * constants that record nothing, as torch's where(...) conditions. */
#define T(e) nb__tmp(tmp, (e))

/* d/da a^b = b a^(b-1); torch defines it as 0 where b == 0 (even at a == 0) */
static nb_tensor *pow_base_grad(nb__temps *tmp, nb_tensor *g, nb_tensor *a, nb_tensor *b) {
    nb_tensor *zero = T(nb_zeros(0, NULL));
    nb_tensor *slope = T(nb_mul(b, T(nb_pow(a, T(nb_add_scalar(b, -1.0f))))));
    return nb_where(T(nb_eq(b, zero)), zero, T(nb_mul(g, slope)));
}

/* d/db a^b = a^b ln a; torch defines it as 0 where a == 0 and b >= 0 */
static nb_tensor *pow_exponent_grad(nb__temps *tmp, nb_tensor *g, nb_tensor *a, nb_tensor *b,
                                    nb_tensor *out) {
    nb_tensor *zero = T(nb_zeros(0, NULL));
    nb_tensor *masked = T(nb_mul(T(nb_eq(a, zero)), T(nb_ge(b, zero))));
    return nb_mul(g, T(nb_where(masked, zero, T(nb_mul(out, T(nb_log(a)))))));
}

/* Input i's gradient (i = 0: a, 1: b), a new reference; the intermediates go to tmp. */
static nb_tensor *grad_of(nb__temps *tmp, const nb_node *node, nb_tensor *g, int i) {
    nb_tensor *a = node->in[0], *b = node->in[1];
    switch ((nb_op_id)node->op) {
    case NB_OP_ADD: return nb__retain(g), g;
    case NB_OP_SUB: return i == 0 ? (nb__retain(g), g) : nb_neg(g);
    case NB_OP_MUL: return nb_mul(g, i == 0 ? b : a);
    case NB_OP_DIV: /* g / b and -g a / b^2 = -g out / b */
        return i == 0 ? nb_div(g, b) : nb_neg(T(nb_div(T(nb_mul(g, node->out)), b)));
    case NB_OP_POW:
        return i == 0 ? pow_base_grad(tmp, g, a, b) : pow_exponent_grad(tmp, g, a, b, node->out);
    default:
        return nb__fail(NB_ERR_GRAPH, "%s: has no gradient", nb__ops[node->op].name);
    }
}
#undef T

nb_status nb__bwd_binary(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    for (int i = 0; i < 2; i++) {
        if (!nb__needs_grad(node, i)) continue;
        nb__temps tmp = {0};
        din[i] = nb__temps_end(&tmp, nb__tmp(&tmp, grad_of(&tmp, node, g, i)));
        if (!din[i]) return nb_error_code();
    }
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
