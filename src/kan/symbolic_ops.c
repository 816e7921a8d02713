/*
 * symbolic_ops.c — a library function applied to a tensor as nabla ops, so that autograd
 * differentiates it: what an edge fixed to a symbolic function needs to train its affine
 * parameters (c f(a x + b) + d with a, b, c, d as parameters) with any optimiser.
 *
 * Each function is written with existing ops (gaussian = exp(-x^2), cosh = (e^x + e^-x) / 2,
 * tan = sin / cos, ...).  sgn, arcsin and arctan have no op in nabla yet and fail.
 */
#include "symbolic_internal.h"

#include <string.h>

static nb_tensor *cosh_of(nb_tensor *x) {
    return nb_mul_scalar(nb_add(nb_exp(x), nb_exp(nb_neg(x))), 0.5f);
}

nb_tensor *nb_symbolic_forward(int fn, nb_tensor *x) {
    if (fn < 0 || fn >= nb__symfn_count)
        return nb__fail(NB_ERR_ARG, "symbolic_forward: function %d is out of range", fn);
    if (!x) return nb__fail_input("symbolic_forward", x);
    const char *name = nb__symfns[fn].name;
    int power = nb__symfns[fn].power;
    if (fn == nb__symfn_identity()) return x;
    if (fn == nb__symfn_zero()) return nb_mul_scalar(x, 0);
    if (power == 2) return nb_mul(x, x);
    if (power != 0) return nb_pow_scalar(x, (float)power);
    static const struct { const char *name; nb_tensor *(*op)(nb_tensor *); } unary[] = {
        {"sqrt", nb_sqrt}, {"exp", nb_exp}, {"log", nb_log}, {"abs", nb_abs}, {"sin", nb_sin},
        {"cos", nb_cos}, {"tanh", nb_tanh}, {"sigmoid", nb_sigmoid}, {"cosh", cosh_of},
    };
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++)
        if (!strcmp(name, unary[i].name)) return unary[i].op(x);
    if (!strcmp(name, "tan")) return nb_div(nb_sin(x), nb_cos(x));
    if (!strcmp(name, "gaussian")) return nb_exp(nb_neg(nb_mul(x, x)));
    return nb__fail(NB_ERR_ARG, "symbolic_forward: %s has no differentiable op in nabla yet",
                    name);
}
