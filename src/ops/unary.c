/*
 * unary.c — elementwise ops on one input, each a kernel pair in the backend:
 *   neg, exp, log, sqrt, abs, sin, cos, tanh, sigmoid, relu, x^p, clamp, x + s, x * s.
 * Derivatives (dx = dy f'(x)): exp -> y, log -> 1/x, sqrt -> 1/(2y), abs -> sign x,
 * sin -> cos x, cos -> -sin x, tanh -> 1 - y^2, sigmoid -> y (1 - y), relu -> [y > 0],
 * x^p -> p x^(p-1), clamp -> [min <= x <= max], x + s -> 1, x * s -> s.
 * The activations of nabla/nn.h (step, leaky_relu, elu, softplus, silu, mish, gelu, atan,
 * softsign) are kernel pairs too: their derivatives are written out in the CPU backend.
 */
#include "nabla/nn.h"
#include "op.h"

static const nb_unary_op kernel_of[NB_OP_COUNT] = {
    [NB_OP_NEG] = NB_UN_NEG,         [NB_OP_EXP] = NB_UN_EXP,       [NB_OP_LOG] = NB_UN_LOG,
    [NB_OP_SQRT] = NB_UN_SQRT,       [NB_OP_ABS] = NB_UN_ABS,       [NB_OP_SIN] = NB_UN_SIN,
    [NB_OP_COS] = NB_UN_COS,         [NB_OP_TANH] = NB_UN_TANH,     [NB_OP_SIGMOID] = NB_UN_SIGMOID,
    [NB_OP_RELU] = NB_UN_RELU,       [NB_OP_POW_SCALAR] = NB_UN_POW, [NB_OP_CLAMP] = NB_UN_CLAMP,
    [NB_OP_ADD_SCALAR] = NB_UN_ADDS, [NB_OP_MUL_SCALAR] = NB_UN_MULS, [NB_OP_STEP] = NB_UN_STEP,
    [NB_OP_LEAKY_RELU] = NB_UN_LEAKY_RELU, [NB_OP_ELU] = NB_UN_ELU,
    [NB_OP_SOFTPLUS] = NB_UN_SOFTPLUS, [NB_OP_SILU] = NB_UN_SILU, [NB_OP_MISH] = NB_UN_MISH,
    [NB_OP_GELU] = NB_UN_GELU, [NB_OP_ATAN] = NB_UN_ATAN, [NB_OP_SOFTSIGN] = NB_UN_SOFTSIGN,
};

nb_tensor *nb__fwd_unary(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)n;
    nb_tensor *x = nb__contig(in[0]);
    nb_tensor *out = x ? nb__new_like(x) : NULL;
    if (!out) return NULL;
    nb__be(x)->unary(kernel_of[op], nb__f32(out), nb__f32(x), nb__numel(x->ndim, x->shape),
                     args->s0, args->s1);
    if (x != in[0]) nb_tensor_free(x);
    return out;
}

nb_status nb__bwd_unary(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb_tensor *x = nb__contig(node->in[0]), *dy = nb__contig(g);
    nb_tensor *dx = x && dy ? nb__new_like(x) : NULL;
    if (!dx) return nb_error_code();
    nb__be(x)->unary_backward(kernel_of[node->op], nb__f32(dx), nb__f32(x), nb__f32(node->out),
                              nb__f32(dy), nb__numel(x->ndim, x->shape), node->args.s0,
                              node->args.s1);
    din[0] = dx;
    return NB_OK;
}

static nb_tensor *unary(nb_op_id op, nb_tensor *a, float s0, float s1) {
    return nb__apply(op, 1, &a, &(nb_op_args){.s0 = s0, .s1 = s1});
}

nb_tensor *nb_neg(nb_tensor *a) { return unary(NB_OP_NEG, a, 0, 0); }
nb_tensor *nb_exp(nb_tensor *a) { return unary(NB_OP_EXP, a, 0, 0); }
nb_tensor *nb_log(nb_tensor *a) { return unary(NB_OP_LOG, a, 0, 0); }
nb_tensor *nb_sqrt(nb_tensor *a) { return unary(NB_OP_SQRT, a, 0, 0); }
nb_tensor *nb_abs(nb_tensor *a) { return unary(NB_OP_ABS, a, 0, 0); }
nb_tensor *nb_sin(nb_tensor *a) { return unary(NB_OP_SIN, a, 0, 0); }
nb_tensor *nb_cos(nb_tensor *a) { return unary(NB_OP_COS, a, 0, 0); }
nb_tensor *nb_tanh(nb_tensor *a) { return unary(NB_OP_TANH, a, 0, 0); }
nb_tensor *nb_sigmoid(nb_tensor *a) { return unary(NB_OP_SIGMOID, a, 0, 0); }
nb_tensor *nb_relu(nb_tensor *a) { return unary(NB_OP_RELU, a, 0, 0); }
nb_tensor *nb_pow_scalar(nb_tensor *a, float p) { return unary(NB_OP_POW_SCALAR, a, p, 0); }
nb_tensor *nb_add_scalar(nb_tensor *a, float s) { return unary(NB_OP_ADD_SCALAR, a, s, 0); }
nb_tensor *nb_mul_scalar(nb_tensor *a, float s) { return unary(NB_OP_MUL_SCALAR, a, s, 0); }

nb_tensor *nb_clamp(nb_tensor *a, float min, float max) {
    if (!nb__alive(a)) return nb__fail_input("clamp", a);
    if (min > max) return nb__fail(NB_ERR_ARG, "clamp: min %g is greater than max %g", min, max);
    return unary(NB_OP_CLAMP, a, min, max);
}

nb_tensor *nb_step(nb_tensor *x) { return unary(NB_OP_STEP, x, 0, 0); }
nb_tensor *nb_leaky_relu(nb_tensor *x, float slope) { return unary(NB_OP_LEAKY_RELU, x, slope, 0); }
nb_tensor *nb_elu(nb_tensor *x, float alpha) { return unary(NB_OP_ELU, x, alpha, 0); }
nb_tensor *nb_silu(nb_tensor *x, float beta) { return unary(NB_OP_SILU, x, beta, 0); }
nb_tensor *nb_mish(nb_tensor *x) { return unary(NB_OP_MISH, x, 0, 0); }
nb_tensor *nb_gelu(nb_tensor *x) { return unary(NB_OP_GELU, x, 0, 0); }
nb_tensor *nb_atan(nb_tensor *x) { return unary(NB_OP_ATAN, x, 0, 0); }
nb_tensor *nb_softsign(nb_tensor *x) { return unary(NB_OP_SOFTSIGN, x, 0, 0); }

nb_tensor *nb_softplus(nb_tensor *x, float beta, float threshold) {
    if (!(beta > 0.0f)) return nb__fail(NB_ERR_ARG, "softplus: beta must be positive, got %g", beta);
    return unary(NB_OP_SOFTPLUS, x, beta, threshold);
}
