/*
 * layers.c — the simple modules: Linear, Flatten, activations (as modules), PReLU, Dropout.
 *
 *   Linear:  y = x W^T + b            (W [out, in]: torch's layout, read transposed by GEMM)
 *   Dropout: y = x m / (1 - p), m ~ Bernoulli(1 - p) in training; y = x in eval
 */
#include "module.h"

#include <math.h>
#include <stdio.h>

/* ---- Linear */

static nb_tensor *linear_forward(nb_module *m, nb_tensor *x) {
    return nb_linear(x, m->params[0].tensor, m->n_params == 2 ? m->params[1].tensor : NULL);
}

static void linear_describe(const nb_module *m, char *buf, size_t cap) {
    snprintf(buf, cap, "in_features=%lld, out_features=%lld, bias=%s", (long long)m->i[0],
             (long long)m->i[1], m->n_params == 2 ? "True" : "False");
}

static const nb_module_type_def linear_def = {"Linear", linear_forward, linear_describe};

nb_module *nb_linear_new(int64_t in_features, int64_t out_features, bool bias) {
    if (in_features <= 0 || out_features <= 0)
        return nb__fail(NB_ERR_ARG, "Linear: sizes must be positive, got in=%lld out=%lld",
                        (long long)in_features, (long long)out_features);
    nb_module *m = nb__module_new(&linear_def);
    if (!m) return NULL;
    m->i[0] = in_features;
    m->i[1] = out_features;
    nb_tensor *w = nb__module_add_param(m, "weight", NB_SHAPE(out_features, in_features));
    nb_tensor *b = w && bias ? nb__module_add_param(m, "bias", NB_SHAPE(out_features)) : w;
    /* torch: kaiming_uniform(a = sqrt 5) on W, i.e. U(-1/sqrt(in), 1/sqrt(in)), the same for b */
    float bound = 1.0f / sqrtf((float)in_features);
    if (!b || nb_init_uniform(w, -bound, bound) != NB_OK ||
        (bias && nb_init_uniform(b, -bound, bound) != NB_OK)) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

/* ---- Flatten */

static nb_tensor *flatten_forward(nb_module *m, nb_tensor *x) {
    return nb_flatten(x, (int)m->i[0], (int)m->i[1]);
}

static void flatten_describe(const nb_module *m, char *buf, size_t cap) {
    snprintf(buf, cap, "start_dim=%d, end_dim=%d", (int)m->i[0], (int)m->i[1]);
}

static const nb_module_type_def flatten_def = {"Flatten", flatten_forward, flatten_describe};

nb_module *nb_flatten_new(int start_dim, int end_dim) {
    nb_module *m = nb__module_new(&flatten_def);
    if (m) m->i[0] = start_dim, m->i[1] = end_dim;
    return m;
}

/* ---- activations as modules */

static nb_tensor *activation_forward(nb_module *m, nb_tensor *x) {
    return nb_activate(x, (nb_activation)m->i[0], m->f[0]);
}


/* As torch's extra_repr: floats as Python writes them ("alpha=1.0"), except Softplus, whose
 * defaults torch declares as ints ("beta=1, threshold=20"). */
static void activation_describe(const nb_module *m, char *buf, size_t cap) {
    char v[32];
    switch ((nb_activation)m->i[0]) {
    case NB_ACT_LEAKY_RELU:
        nb__repr_float(v, sizeof v, m->f[0] ? m->f[0] : 0.01f);
        snprintf(buf, cap, "negative_slope=%s", v);
        break;
    case NB_ACT_ELU:
        nb__repr_float(v, sizeof v, m->f[0] ? m->f[0] : 1.0f);
        snprintf(buf, cap, "alpha=%s", v);
        break;
    case NB_ACT_SOFTPLUS: snprintf(buf, cap, "beta=%g, threshold=20", m->f[0] ? m->f[0] : 1.0f); break;
    case NB_ACT_GELU: snprintf(buf, cap, "approximate='none'"); break;
    case NB_ACT_SOFTMAX: case NB_ACT_LOG_SOFTMAX: snprintf(buf, cap, "dim=-1"); break;
    default: buf[0] = '\0';
    }
}

#define ACT(kind, name) [NB_ACT_##kind] = {name, activation_forward, activation_describe}
static const nb_module_type_def activation_defs[NB_ACT_COUNT] = {
    ACT(IDENTITY, "Identity"),   ACT(STEP, "Step"),         ACT(SIGMOID, "Sigmoid"),
    ACT(TANH, "Tanh"),           ACT(RELU, "ReLU"),         ACT(LEAKY_RELU, "LeakyReLU"),
    ACT(ELU, "ELU"),             ACT(SOFTPLUS, "Softplus"), ACT(SILU, "SiLU"),
    ACT(MISH, "Mish"),           ACT(GELU, "GELU"),         ACT(ATAN, "Atan"),
    ACT(SOFTSIGN, "Softsign"),   ACT(TANH_LINEAR, "TanhLinear"), ACT(SOFTMAX, "Softmax"),
    ACT(LOG_SOFTMAX, "LogSoftmax"),
};

const char *nb_activation_name(nb_activation act) {
    return (unsigned)act < NB_ACT_COUNT ? activation_defs[act].type : "Unknown";
}

/* The name of the one parameter an activation takes, NULL when it takes none. */
static const char *param_name(nb_activation act) {
    switch (act) {
    case NB_ACT_LEAKY_RELU: return "negative_slope";
    case NB_ACT_ELU: return "alpha";
    case NB_ACT_SOFTPLUS: case NB_ACT_SILU: return "beta";
    case NB_ACT_TANH_LINEAR: return "a";
    default: return NULL;
    }
}

nb_module *nb_activation_new(nb_activation act, float param) {
    if ((unsigned)act >= NB_ACT_COUNT) return nb__fail(NB_ERR_ARG, "activation: unknown kind %d", (int)act);
    const char *type = activation_defs[act].type, *what = param_name(act);
    if (!what && param != 0)
        return nb__fail(NB_ERR_ARG, "%s: takes no parameter, got %g", type, (double)param);
    if (!isfinite(param))
        return nb__fail(NB_ERR_ARG, "%s: %s must be finite, got %g", type, what, (double)param);
    if (act == NB_ACT_SOFTPLUS && param < 0) /* softplus(x) = log(1 + exp(beta x)) / beta */
        return nb__fail(NB_ERR_ARG, "%s: beta must be positive (0 means 1), got %g", type, (double)param);
    nb_module *m = nb__module_new(&activation_defs[act]);
    if (m) m->i[0] = act, m->f[0] = param;
    return m;
}

/* ---- PReLU: y = relu(x) - a relu(-x), a learned per channel (dim 1) or shared */

static nb_tensor *prelu_forward(nb_module *m, nb_tensor *x) {
    return nb_prelu(x, m->params[0].tensor);
}

static void prelu_describe(const nb_module *m, char *buf, size_t cap) {
    snprintf(buf, cap, "num_parameters=%lld", (long long)m->i[0]);
}

static const nb_module_type_def prelu_def = {"PReLU", prelu_forward, prelu_describe};

nb_module *nb_prelu_new(int64_t num_parameters, float init) {
    if (num_parameters <= 0)
        return nb__fail(NB_ERR_ARG, "PReLU: num_parameters must be positive, got %lld", (long long)num_parameters);
    if (!isfinite(init)) return nb__fail(NB_ERR_ARG, "PReLU: init must be finite, got %g", (double)init);
    nb_module *m = nb__module_new(&prelu_def);
    nb_tensor *a = m ? nb__module_add_param(m, "weight", NB_SHAPE(num_parameters)) : NULL;
    if (!a) {
        nb_module_free(m);
        return NULL;
    }
    m->i[0] = num_parameters;
    nb_fill(a, init);
    return m;
}

/* ---- Dropout (and Dropout2d, conv_layers.c): f[0] is p */

nb_tensor *nb__dropout(nb_module *m, nb_tensor *x, int ndim, const int64_t *mask_shape) {
    float p = m->f[0];
    if (!m->training || p == 0.0f) {
        nb__retain(x); /* the caller owns the result, as for any op */
        return x;
    }
    if (p == 1.0f) return nb_mul_scalar(x, 0.0f);
    nb_tensor *keep = nb_full(ndim, mask_shape, 1.0f - p);
    nb_tensor *mask = keep ? nb__chain(nb_bernoulli(keep), keep) : NULL;
    nb_tensor *scaled = mask ? nb__chain(nb_mul_scalar(mask, 1.0f / (1.0f - p)), mask) : NULL;
    return scaled ? nb__chain(nb_mul(x, scaled), scaled) : NULL;
}

void nb__dropout_describe(const nb_module *m, char *buf, size_t cap) {
    char p[32];
    nb__repr_float(p, sizeof p, m->f[0]);
    snprintf(buf, cap, "p=%s, inplace=False", p);
}

nb_module *nb__dropout_new(const nb_module_type_def *def, float p) {
    if (!(p >= 0.0f && p <= 1.0f))
        return nb__fail(NB_ERR_ARG, "%s: probability has to be between 0 and 1, but got %g", def->type, p);
    nb_module *m = nb__module_new(def);
    if (m) m->f[0] = p;
    return m;
}

static nb_tensor *dropout_forward(nb_module *m, nb_tensor *x) {
    return nb__dropout(m, x, x->ndim, x->shape);
}

static const nb_module_type_def dropout_def = {"Dropout", dropout_forward, nb__dropout_describe};

nb_module *nb_dropout_new(float p) { return nb__dropout_new(&dropout_def, p); }
