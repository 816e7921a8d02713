/*
 * activation.c — one entry point for every activation of the course, by kind, so modules and
 * the command line can name them.  Most are kernel pairs in the op table (src/ops/unary.c);
 * PReLU and tanh(x) + a x are compositions whose gradients autograd derives.
 */
#include "module.h"

#include <ctype.h>

static const char *const parse_names[NB_ACT_COUNT] = {
    [NB_ACT_IDENTITY] = "identity", [NB_ACT_STEP] = "step",         [NB_ACT_SIGMOID] = "sigmoid",
    [NB_ACT_TANH] = "tanh",         [NB_ACT_RELU] = "relu",         [NB_ACT_LEAKY_RELU] = "leaky_relu",
    [NB_ACT_ELU] = "elu",           [NB_ACT_SOFTPLUS] = "softplus", [NB_ACT_SILU] = "silu",
    [NB_ACT_MISH] = "mish",         [NB_ACT_GELU] = "gelu",         [NB_ACT_ATAN] = "atan",
    [NB_ACT_SOFTSIGN] = "softsign", [NB_ACT_TANH_LINEAR] = "tanh_linear",
    [NB_ACT_SOFTMAX] = "softmax",   [NB_ACT_LOG_SOFTMAX] = "log_softmax",
};

/* Equal ignoring case and underscores, so torch's class names ("LeakyReLU", what
 * nb_activation_name gives) parse as well as the snake-case spellings ("leaky_relu"). */
static bool same_name(const char *a, const char *b) {
    for (;; a++, b++) {
        while (*a == '_') a++;
        while (*b == '_') b++;
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
        if (!*a) return true;
    }
}

bool nb_activation_parse(const char *name, nb_activation *act) {
    if (!name) return false;
    if (same_name(name, "swish")) return *act = NB_ACT_SILU, true;
    for (int i = 0; i < NB_ACT_COUNT; i++)
        if (same_name(name, parse_names[i])) return *act = (nb_activation)i, true;
    return false;
}

static nb_tensor *tanh_linear(nb_tensor *x, float a) {
    nb_tensor *t = nb_tanh(x), *ax = t ? nb_mul_scalar(x, a) : NULL;
    nb_tensor *y = ax ? nb_add(t, ax) : NULL;
    nb_tensor_free(t);
    nb_tensor_free(ax);
    return y;
}

nb_tensor *nb_activate(nb_tensor *x, nb_activation act, float p) {
    switch (act) {
    case NB_ACT_IDENTITY: return nb_reshape(x, x ? x->ndim : 0, x ? x->shape : NULL);
    case NB_ACT_STEP: return nb_step(x);
    case NB_ACT_SIGMOID: return nb_sigmoid(x);
    case NB_ACT_TANH: return nb_tanh(x);
    case NB_ACT_RELU: return nb_relu(x);
    case NB_ACT_LEAKY_RELU: return nb_leaky_relu(x, p ? p : 0.01f);
    case NB_ACT_ELU: return nb_elu(x, p ? p : 1.0f);
    case NB_ACT_SOFTPLUS: return nb_softplus(x, p ? p : 1.0f, 20.0f);
    case NB_ACT_SILU: return nb_silu(x, p ? p : 1.0f);
    case NB_ACT_MISH: return nb_mish(x);
    case NB_ACT_GELU: return nb_gelu(x);
    case NB_ACT_ATAN: return nb_atan(x);
    case NB_ACT_SOFTSIGN: return nb_softsign(x);
    case NB_ACT_TANH_LINEAR: return tanh_linear(x, p);
    case NB_ACT_SOFTMAX: return nb_softmax(x, -1);
    case NB_ACT_LOG_SOFTMAX: return nb_log_softmax(x, -1);
    default: return nb__fail(NB_ERR_ARG, "activate: unknown activation %d", (int)act);
    }
}

/* PReLU(x) = x if x > 0 else a x, as where(x > 0, x, a x) so that at x = 0 the gradient is
 * torch's (a dy for x, x dy = 0 for a); a has one entry or one per channel (dim 1), reshaped
 * to broadcast over [N, C, ...]. */
nb_tensor *nb_prelu(nb_tensor *x, nb_tensor *alpha) {
    if (!nb__alive(x)) return nb__fail_input("prelu", x);
    if (!nb__alive(alpha)) return nb__fail_input("prelu", alpha);
    int64_t n = nb__numel(alpha->ndim, alpha->shape);
    if (n != 1 && (x->ndim < 2 || x->shape[1] != n))
        return nb__fail(NB_ERR_SHAPE, "prelu: %lld weights do not match the channels of %s",
                        (long long)n, NB_SHP(x));
    int64_t shape[NB_MAX_DIMS];
    int nd = n == 1 ? 1 : x->ndim;
    for (int d = 0; d < nd; d++) shape[d] = d == 1 ? n : 1;
    nb__temps tmp = {0};
    nb_tensor *a = nb__tmp(&tmp, nb_reshape(alpha, nd, shape)), *zero = nb__tmp(&tmp, nb_zeros(0, NULL));
    nb_tensor *ax = a ? nb__tmp(&tmp, nb_mul(a, x)) : NULL;
    nb_tensor *pos = zero ? nb__tmp(&tmp, nb_gt(x, zero)) : NULL;
    return nb__temps_end(&tmp, ax && pos ? nb__tmp(&tmp, nb_where(pos, x, ax)) : NULL);
}
