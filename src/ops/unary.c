/*
 * unary.c — elementwise ops on one input, each a kernel pair in the backend:
 *   neg, exp, log, sqrt, abs, sin, cos, tanh, sigmoid, relu, x^p, clamp, x + s, x * s, erf.
 * Derivatives (dx = dy f'(x)): exp -> y, log -> 1/x, sqrt -> 1/(2y), abs -> sign x,
 * sin -> cos x, cos -> -sin x, tanh -> 1 - y^2, sigmoid -> y (1 - y), relu -> [y > 0],
 * x^p -> p x^(p-1), clamp -> [min <= x <= max], x + s -> 1, x * s -> s,
 * erf -> 2/sqrt(pi) e^(-x^2).
 * The activations of nabla/nn.h (step, leaky_relu, elu, softplus, silu, mish, gelu, atan,
 * softsign) are kernel pairs too: their derivatives are written out in the CPU backend.
 *
 * The backward has the two modes of op.h.  First order runs the fused backward kernel.  With
 * create_graph it writes f'(x) with ops (below), so the gradient is differentiable again, to
 * any order, with torch's conventions: where f' is piecewise constant (abs, relu, clamp,
 * leaky_relu, step, softplus above its threshold, elu for x > 0) the factor is made of steps,
 * whose gradient is 0, so f'' is 0 there as in torch.
 */
#include "nabla/nn.h"
#include "op.h"

#define SQRT1_2 0.70710678118654752f          /* 1/sqrt(2) */
#define INV_SQRT_2PI 0.39894228040143268f     /* 1/sqrt(2 pi) */
#define TWO_OVER_SQRT_PI 1.12837916709551257f /* 2/sqrt(pi) */

static const nb_unary_op kernel_of[NB_OP_COUNT] = {
    [NB_OP_NEG] = NB_UN_NEG,         [NB_OP_EXP] = NB_UN_EXP,       [NB_OP_LOG] = NB_UN_LOG,
    [NB_OP_SQRT] = NB_UN_SQRT,       [NB_OP_ABS] = NB_UN_ABS,       [NB_OP_SIN] = NB_UN_SIN,
    [NB_OP_COS] = NB_UN_COS,         [NB_OP_TANH] = NB_UN_TANH,     [NB_OP_SIGMOID] = NB_UN_SIGMOID,
    [NB_OP_RELU] = NB_UN_RELU,       [NB_OP_POW_SCALAR] = NB_UN_POW, [NB_OP_CLAMP] = NB_UN_CLAMP,
    [NB_OP_ADD_SCALAR] = NB_UN_ADDS, [NB_OP_MUL_SCALAR] = NB_UN_MULS, [NB_OP_STEP] = NB_UN_STEP,
    [NB_OP_LEAKY_RELU] = NB_UN_LEAKY_RELU, [NB_OP_ELU] = NB_UN_ELU,
    [NB_OP_SOFTPLUS] = NB_UN_SOFTPLUS, [NB_OP_SILU] = NB_UN_SILU, [NB_OP_MISH] = NB_UN_MISH,
    [NB_OP_GELU] = NB_UN_GELU, [NB_OP_ATAN] = NB_UN_ATAN, [NB_OP_SOFTSIGN] = NB_UN_SOFTSIGN,
    [NB_OP_ERF] = NB_UN_ERF,
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

/* ---- create_graph: the gradient with ops.  T takes each intermediate into the temps. */
#define T(e) nb__tmp(tmp, (e))

static nb_tensor *one_minus(nb__temps *tmp, nb_tensor *t) {
    return T(nb_add_scalar(T(nb_neg(t)), 1.0f));
}

/* f'(x) of the smooth ops, as ops on x and y = f(x); its own derivative is f''. */
static nb_tensor *smooth_slope(nb__temps *tmp, const nb_node *node) {
    nb_tensor *x = node->in[0], *y = node->out;
    float p0 = node->args.s0;
    switch ((nb_op_id)node->op) {
    case NB_OP_EXP: return y;
    case NB_OP_LOG: return T(nb_pow_scalar(x, -1.0f));
    case NB_OP_SQRT: return T(nb_mul_scalar(T(nb_pow_scalar(y, -1.0f)), 0.5f));
    case NB_OP_SIN: return T(nb_cos(x));
    case NB_OP_COS: return T(nb_neg(T(nb_sin(x))));
    case NB_OP_TANH: return one_minus(tmp, T(nb_mul(y, y)));
    case NB_OP_SIGMOID: return T(nb_mul(y, one_minus(tmp, y)));
    case NB_OP_POW_SCALAR: return T(nb_mul_scalar(T(nb_pow_scalar(x, p0 - 1.0f)), p0));
    case NB_OP_SILU: { /* s (1 + b x (1 - s)), s = sigmoid(b x) */
        nb_tensor *bx = T(nb_mul_scalar(x, p0)), *s = T(nb_sigmoid(bx));
        return T(nb_mul(s, T(nb_add_scalar(T(nb_mul(bx, one_minus(tmp, s))), 1.0f))));
    }
    case NB_OP_MISH: { /* t + x sigmoid(x) (1 - t^2), t = tanh(softplus(x)), as torch's */
        nb_tensor *t = T(nb_tanh(T(nb_softplus(x, 1.0f, 20.0f))));
        nb_tensor *xs = T(nb_mul(x, T(nb_sigmoid(x))));
        return T(nb_add(t, T(nb_mul(xs, one_minus(tmp, T(nb_mul(t, t)))))));
    }
    case NB_OP_GELU: { /* Phi(x) + x phi(x): Phi = (1 + erf(x / sqrt 2)) / 2, phi = Phi' */
        nb_tensor *erf = T(nb_erf(T(nb_mul_scalar(x, SQRT1_2))));
        nb_tensor *cdf = T(nb_mul_scalar(T(nb_add_scalar(erf, 1.0f)), 0.5f));
        nb_tensor *e = T(nb_exp(T(nb_mul_scalar(T(nb_mul(x, x)), -0.5f))));
        return T(nb_add(cdf, T(nb_mul(x, T(nb_mul_scalar(e, INV_SQRT_2PI))))));
    }
    case NB_OP_ATAN: return T(nb_pow_scalar(T(nb_add_scalar(T(nb_mul(x, x)), 1.0f)), -1.0f));
    case NB_OP_SOFTSIGN: return T(nb_pow_scalar(T(nb_add_scalar(T(nb_abs(x)), 1.0f)), -2.0f));
    case NB_OP_ERF: return T(nb_mul_scalar(T(nb_exp(T(nb_neg(T(nb_mul(x, x)))))), TWO_OVER_SQRT_PI));
    default:
        return nb__fail(NB_ERR_GRAPH, "%s: no create_graph backward", nb__ops[node->op].name);
    }
}

/* dy f'(x) with ops.  Piecewise rules take their masks from step ([t > 0], which records a
 * node whose gradient is 0), as torch's backwards take theirs from the input or the result: the
 * gradient stays linked to x, so its derivative is 0 where f' is constant (torch gives zeros,
 * not "does not require grad"). */
static nb_tensor *grad_by_ops(nb__temps *tmp, const nb_node *node, nb_tensor *g) {
    nb_tensor *x = node->in[0], *y = node->out;
    float p0 = node->args.s0, p1 = node->args.s1;
    switch ((nb_op_id)node->op) {
    case NB_OP_NEG: return nb_neg(g);
    case NB_OP_ADD_SCALAR: return nb__retain(g), g;
    case NB_OP_MUL_SCALAR: return nb_mul_scalar(g, p0);
    case NB_OP_STEP: return nb_mul(g, T(nb_mul_scalar(x, 0.0f))); /* 0, linked to x */
    case NB_OP_POW_SCALAR: /* torch: x^0 has a zero gradient even at x = 0 */
        if (p0 == 0.0f) return nb_mul(g, T(nb_mul_scalar(x, 0.0f)));
        return nb_mul(g, smooth_slope(tmp, node));
    case NB_OP_ABS: /* sign x = [x > 0] - [-x > 0] */
        return nb_mul(g, T(nb_sub(T(nb_step(x)), T(nb_step(T(nb_neg(x)))))));
    case NB_OP_RELU: return nb_mul(g, T(nb_step(y)));
    case NB_OP_CLAMP: { /* min <= x <= max, bounds included: (1 - [min - x > 0]) (1 - [x - max > 0]) */
        nb_tensor *below = T(nb_step(T(nb_add_scalar(T(nb_neg(x)), p0))));
        nb_tensor *above = T(nb_step(T(nb_add_scalar(x, -p1))));
        return nb_mul(g, T(nb_mul(one_minus(tmp, below), one_minus(tmp, above))));
    }
    case NB_OP_LEAKY_RELU: /* slope + (1 - slope) [x > 0] */
        return nb_mul(g, T(nb_add_scalar(T(nb_mul_scalar(T(nb_step(x)), 1.0f - p0)), p0)));
    case NB_OP_ELU: { /* [x > 0] + [x <= 0] (y + alpha): alpha e^x = y + alpha below 0 */
        nb_tensor *pos = T(nb_step(x));
        return nb_mul(g, T(nb_add(pos, T(nb_mul(one_minus(tmp, pos), T(nb_add_scalar(y, p0)))))));
    }
    case NB_OP_SOFTPLUS: { /* sigmoid(b x), 1 above the threshold */
        nb_tensor *bx = T(nb_mul_scalar(x, p0)), *above = T(nb_step(T(nb_add_scalar(bx, -p1))));
        return nb_mul(g, T(nb_add(above, T(nb_mul(one_minus(tmp, above), T(nb_sigmoid(bx)))))));
    }
    default: return nb_mul(g, smooth_slope(tmp, node));
    }
}
#undef T

nb_status nb__bwd_unary(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    if (nb_is_grad_enabled()) {
        nb__temps tmp = {0};
        din[0] = nb__temps_end(&tmp, nb__tmp(&tmp, grad_by_ops(&tmp, node, g)));
        return din[0] ? NB_OK : nb_error_code();
    }
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
nb_tensor *nb_erf(nb_tensor *a) { return unary(NB_OP_ERF, a, 0, 0); }
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
