/*
 * layers.c — the simple modules: Linear, Flatten, activations (as modules), PReLU, Dropout.
 *
 *   Linear:  y = x W^T + b            (W [out, in]: torch's layout, read transposed by GEMM)
 *   Dropout: y = x m / (1 - p), m ~ Bernoulli(1 - p) in training; y = x in eval
 */
#include "module.h"

#include <math.h>

/* ---- Linear */

static nb_tensor *linear_forward(nb_module *m, nb_tensor *x) {
    const nb__linear_state *s = NB__STATE(nb__linear_state, m);
    return nb_linear(x, s->weight, s->bias);
}

static void linear_describe(const nb_module *m, nb_attrs *d) {
    const nb__linear_state *s = NB__STATE(nb__linear_state, m);
    nb_attrs_int(d, "in_features", s->in_features);
    nb_attrs_int(d, "out_features", s->out_features);
    nb_attrs_bool(d, "bias", s->bias != NULL);
}

const nb_module_class nb__linear_class = {.name = "Linear", .forward = linear_forward,
                                          .describe = linear_describe};

nb_module *nb_linear_new(int64_t in_features, int64_t out_features, bool bias) {
    if (in_features <= 0 || out_features <= 0)
        return nb__fail(NB_ERR_ARG, "Linear: sizes must be positive, got in=%lld out=%lld",
                        (long long)in_features, (long long)out_features);
    nb_module *m = nb_module_new(&nb__linear_class, sizeof(nb__linear_state));
    if (!m) return NULL;
    nb__linear_state *s = NB__STATE(nb__linear_state, m);
    s->in_features = in_features;
    s->out_features = out_features;
    nb_tensor *w = s->weight = nb_module_add_param(m, "weight", NB_SHAPE(out_features, in_features));
    nb_tensor *b = w && bias ? (s->bias = nb_module_add_param(m, "bias", NB_SHAPE(out_features))) : w;
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

typedef struct {
    int start_dim, end_dim;
} flatten_state;

static nb_tensor *flatten_forward(nb_module *m, nb_tensor *x) {
    const flatten_state *s = NB__STATE(flatten_state, m);
    return nb_flatten(x, s->start_dim, s->end_dim);
}

static void flatten_describe(const nb_module *m, nb_attrs *d) {
    const flatten_state *s = NB__STATE(flatten_state, m);
    nb_attrs_int(d, "start_dim", s->start_dim);
    nb_attrs_int(d, "end_dim", s->end_dim);
}

static const nb_module_class flatten_class = {.name = "Flatten", .forward = flatten_forward,
                                              .describe = flatten_describe};

nb_module *nb_flatten_new(int start_dim, int end_dim) {
    nb_module *m = nb_module_new(&flatten_class, sizeof(flatten_state));
    if (m) *NB__STATE(flatten_state, m) = (flatten_state){start_dim, end_dim};
    return m;
}

/* ---- activations as modules: one class per kind, one state */

typedef struct {
    nb_activation act;
    float param; /* as nb_activate's: 0 means torch's default */
} activation_state;

static nb_tensor *activation_forward(nb_module *m, nb_tensor *x) {
    const activation_state *s = NB__STATE(activation_state, m);
    return nb_activate(x, s->act, s->param);
}

/* As torch's extra_repr: floats as Python writes them ("alpha=1.0"), except Softplus, whose
 * defaults torch declares as ints ("beta=1, threshold=20").  SiLU's beta and TanhLinear's a are
 * nabla's own and not in the repr. */
static void activation_describe(const nb_module *m, nb_attrs *d) {
    const activation_state *s = NB__STATE(activation_state, m);
    float p = s->param;
    switch (s->act) {
    case NB_ACT_LEAKY_RELU: nb_attrs_float(d, "negative_slope", p ? p : 0.01f); break;
    case NB_ACT_ELU: nb_attrs_float(d, "alpha", p ? p : 1.0f); break;
    case NB_ACT_SOFTPLUS:
        p = p ? p : 1.0f;
        if (p == truncf(p) && fabsf(p) < 1e15f) nb_attrs_int(d, "beta", (int64_t)p);
        else nb_attrs_float(d, "beta", p);
        nb_attrs_int(d, "threshold", 20);
        break;
    case NB_ACT_SILU: nb_attrs_float(d, "beta", p ? p : 1.0f)->flags = NB_ATTR_NO_REPR; break;
    case NB_ACT_TANH_LINEAR: nb_attrs_float(d, "a", p)->flags = NB_ATTR_NO_REPR; break;
    case NB_ACT_GELU: nb_attrs_string(d, "approximate", "none")->flags = NB_ATTR_QUOTED; break;
    case NB_ACT_SOFTMAX: case NB_ACT_LOG_SOFTMAX: nb_attrs_int(d, "dim", -1); break;
    default: break;
    }
}

#define ACT(kind, cls) [NB_ACT_##kind] = {.name = cls, .forward = activation_forward, \
                                          .describe = activation_describe}
static const nb_module_class activation_classes[NB_ACT_COUNT] = {
    ACT(IDENTITY, "Identity"),   ACT(STEP, "Step"),         ACT(SIGMOID, "Sigmoid"),
    ACT(TANH, "Tanh"),           ACT(RELU, "ReLU"),         ACT(LEAKY_RELU, "LeakyReLU"),
    ACT(ELU, "ELU"),             ACT(SOFTPLUS, "Softplus"), ACT(SILU, "SiLU"),
    ACT(MISH, "Mish"),           ACT(GELU, "GELU"),         ACT(ATAN, "Atan"),
    ACT(SOFTSIGN, "Softsign"),   ACT(TANH_LINEAR, "TanhLinear"), ACT(SOFTMAX, "Softmax"),
    ACT(LOG_SOFTMAX, "LogSoftmax"),
};

const char *nb_activation_name(nb_activation act) {
    return (unsigned)act < NB_ACT_COUNT ? activation_classes[act].name : "Unknown";
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
    const char *type = activation_classes[act].name, *what = param_name(act);
    if (!what && param != 0)
        return nb__fail(NB_ERR_ARG, "%s: takes no parameter, got %g", type, (double)param);
    if (!isfinite(param))
        return nb__fail(NB_ERR_ARG, "%s: %s must be finite, got %g", type, what, (double)param);
    if (act == NB_ACT_SOFTPLUS && param < 0) /* softplus(x) = log(1 + exp(beta x)) / beta */
        return nb__fail(NB_ERR_ARG, "%s: beta must be positive (0 means 1), got %g", type, (double)param);
    nb_module *m = nb_module_new(&activation_classes[act], sizeof(activation_state));
    if (m) *NB__STATE(activation_state, m) = (activation_state){act, param};
    return m;
}

/* ---- PReLU: y = relu(x) - a relu(-x), a learned per channel (dim 1) or shared */

typedef struct {
    int64_t num_parameters;
    nb_tensor *weight;
} prelu_state;

static nb_tensor *prelu_forward(nb_module *m, nb_tensor *x) {
    return nb_prelu(x, NB__STATE(prelu_state, m)->weight);
}

static void prelu_describe(const nb_module *m, nb_attrs *d) {
    nb_attrs_int(d, "num_parameters", NB__STATE(prelu_state, m)->num_parameters);
}

static const nb_module_class prelu_class = {.name = "PReLU", .forward = prelu_forward,
                                            .describe = prelu_describe};

nb_module *nb_prelu_new(int64_t num_parameters, float init) {
    if (num_parameters <= 0)
        return nb__fail(NB_ERR_ARG, "PReLU: num_parameters must be positive, got %lld", (long long)num_parameters);
    if (!isfinite(init)) return nb__fail(NB_ERR_ARG, "PReLU: init must be finite, got %g", (double)init);
    nb_module *m = nb_module_new(&prelu_class, sizeof(prelu_state));
    nb_tensor *a = m ? nb_module_add_param(m, "weight", NB_SHAPE(num_parameters)) : NULL;
    if (!a) {
        nb_module_free(m);
        return NULL;
    }
    *NB__STATE(prelu_state, m) = (prelu_state){num_parameters, a};
    nb_fill(a, init);
    return m;
}

/* ---- Dropout (and Dropout2d, conv_layers.c) */

nb_tensor *nb__dropout(nb_module *m, nb_tensor *x, int ndim, const int64_t *mask_shape) {
    float p = NB__STATE(nb__dropout_state, m)->p;
    if (!m->training || p == 0.0f) {
        nb__retain(x); /* the caller owns the result, as for any op */
        return x;
    }
    if (p == 1.0f) return nb_mul_scalar(x, 0.0f);
    nb__temps tmp = {0};
    nb_tensor *keep = nb__tmp(&tmp, nb_full(ndim, mask_shape, 1.0f - p));
    nb_tensor *mask = keep ? nb__tmp(&tmp, nb_bernoulli(keep)) : NULL;
    nb_tensor *scaled = mask ? nb__tmp(&tmp, nb_mul_scalar(mask, 1.0f / (1.0f - p))) : NULL;
    return nb__temps_end(&tmp, scaled ? nb__tmp(&tmp, nb_mul(x, scaled)) : NULL);
}

void nb__dropout_describe(const nb_module *m, nb_attrs *d) {
    nb_attrs_float(d, "p", NB__STATE(nb__dropout_state, m)->p);
    nb_attrs_bool(d, "inplace", false);
}

nb_module *nb__dropout_new(const nb_module_class *cls, float p) {
    if (!(p >= 0.0f && p <= 1.0f))
        return nb__fail(NB_ERR_ARG, "%s: probability has to be between 0 and 1, but got %g", cls->name, p);
    nb_module *m = nb_module_new(cls, sizeof(nb__dropout_state));
    if (m) NB__STATE(nb__dropout_state, m)->p = p;
    return m;
}

static nb_tensor *dropout_forward(nb_module *m, nb_tensor *x) {
    return nb__dropout(m, x, x->ndim, x->shape);
}

static const nb_module_class dropout_class = {.name = "Dropout", .forward = dropout_forward,
                                              .describe = nb__dropout_describe};

nb_module *nb_dropout_new(float p) { return nb__dropout_new(&dropout_class, p); }
