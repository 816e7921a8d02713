/*
 * init.c — torch.nn.init: in-place fills drawn from the library's Philox generator.
 *   xavier (Glorot & Bengio 2010):  std = gain sqrt(2 / (fan_in + fan_out)), bound = sqrt(3) std
 *   kaiming (He et al. 2015):        std = gain / sqrt(fan),                bound = sqrt(3) std
 * with fan_in = size(1) * receptive field, fan_out = size(0) * receptive field.
 * nb_module_init applies one of them to every Linear and convolution weight of a module tree.
 */
#include "module.h"

#include <math.h>
#include <string.h>

float nb_init_gain(nb_nonlinearity nl, float param) {
    switch (nl) {
    case NB_GAIN_TANH: return 5.0f / 3.0f;
    case NB_GAIN_RELU: return sqrtf(2.0f);
    /* param is the slope as given: 0 gives sqrt 2 as kaiming_*(a=0) does (torch's
     * calculate_gain('leaky_relu') with no param means 0.01: pass it) */
    case NB_GAIN_LEAKY_RELU: return sqrtf(2.0f / (1.0f + param * param));
    case NB_GAIN_SELU: return 0.75f;
    default: return 1.0f; /* linear, sigmoid, conv */
    }
}

static bool fans(const char *op, const nb_tensor *t, double *fan_in, double *fan_out) {
    if (!nb_is_alive(t)) return nb__fail_input(op, t), false;
    if (t->ndim < 2)
        return nb__fail(NB_ERR_SHAPE, "%s: fan in and fan out need at least 2 dims, got %s", op,
                        NB_SHP(t)), false;
    double rf = (double)nb__numel(t->ndim - 2, t->shape + 2);
    *fan_in = (double)t->shape[1] * rf;
    *fan_out = (double)t->shape[0] * rf;
    return true;
}

/* Fills t (f32, any layout) with values from a function of uniform draws. */
static nb_status fill_drawn(const char *op, nb_tensor *t, bool normal, float a, float b) {
    if (!nb_is_alive(t)) return nb__fail_input(op, t), nb_error_code();
    if (t->dtype != NB_F32) return nb__fail_status(NB_ERR_DTYPE, "%s: needs a float32 tensor", op);
    nb_arena *home = nb__current_arena();
    bool was = nb_set_grad_enabled(false);
    nb_tensor *draw = normal ? nb_randn(t->ndim, t->shape) : nb_rand(t->ndim, t->shape);
    nb_set_grad_enabled(was);
    if (!draw) return nb_error_code();
    float *d = nb__host_copy(draw);
    int64_t n = nb__numel(t->ndim, t->shape);
    for (int64_t i = 0; d && i < n; i++) d[i] = normal ? a + b * d[i] : a + (b - a) * d[i];
    nb_status s = d ? nb_copy_from(t, d, n) : nb_error_code();
    if (d) nb__host_free(d, draw);
    if (!home) nb_tensor_free(draw);
    return s;
}

nb_status nb_init_constant(nb_tensor *t, float value) { return nb_fill(t, value); }

/* torch's messages for uniform_(from, to) and normal_(mean, std), NaN and infinities refused too. */
nb_status nb_init_uniform(nb_tensor *t, float low, float high) {
    if (!(isfinite(low) && isfinite(high) && low <= high))
        return nb__fail_status(NB_ERR_ARG, "init_uniform: expects a finite [from, to] range, but found "
                               "from=%g to=%g", (double)low, (double)high);
    return fill_drawn("init_uniform", t, false, low, high);
}

nb_status nb_init_normal(nb_tensor *t, float mean, float std) {
    if (!(isfinite(mean) && isfinite(std) && std >= 0))
        return nb__fail_status(NB_ERR_ARG, "init_normal: expects a finite mean and std >= 0.0, but found "
                               "mean=%g std=%g", (double)mean, (double)std);
    return fill_drawn("init_normal", t, true, mean, std);
}

static bool gain_ok(const char *op, float gain) {
    if (gain >= 0 && isfinite(gain)) return true;
    return nb__fail(NB_ERR_ARG, "%s: gain must be finite and >= 0, got %g", op, (double)gain), false;
}

/* xavier: std = gain sqrt(2 / (fan_in + fan_out)), normal or uniform in +-sqrt(3) std. */
static nb_status xavier(const char *op, nb_tensor *t, float gain, bool normal) {
    double fi, fo;
    if (!gain_ok(op, gain) || !fans(op, t, &fi, &fo)) return nb_error_code();
    if (normal) return fill_drawn(op, t, true, 0.0f, (float)(gain * sqrt(2.0 / (fi + fo))));
    float bound = (float)(gain * sqrt(6.0 / (fi + fo)));
    return fill_drawn(op, t, false, -bound, bound);
}

/* kaiming: std = gain / sqrt(fan), normal or uniform in +-sqrt(3) std. */
static nb_status kaiming(const char *op, nb_tensor *t, float gain, nb_fan_mode mode, bool normal) {
    double fi, fo;
    if ((unsigned)mode > NB_FAN_OUT)
        return nb__fail_status(NB_ERR_ARG, "%s: mode %d is neither fan_in nor fan_out", op, (int)mode);
    if (!gain_ok(op, gain) || !fans(op, t, &fi, &fo)) return nb_error_code();
    float std = (float)(gain / sqrt(mode == NB_FAN_OUT ? fo : fi));
    if (normal) return fill_drawn(op, t, true, 0.0f, std);
    return fill_drawn(op, t, false, -sqrtf(3.0f) * std, sqrtf(3.0f) * std);
}

nb_status nb_init_xavier_uniform(nb_tensor *t, float gain) { return xavier("init_xavier_uniform", t, gain, false); }
nb_status nb_init_xavier_normal(nb_tensor *t, float gain) { return xavier("init_xavier_normal", t, gain, true); }

static bool slope_ok(const char *op, float a) {
    if (isfinite(a)) return true;
    return nb__fail(NB_ERR_ARG, "%s: a (the negative slope) must be finite, got %g", op, (double)a), false;
}

nb_status nb_init_kaiming_uniform(nb_tensor *t, float a, nb_fan_mode mode, nb_nonlinearity nl) {
    const char *op = "init_kaiming_uniform";
    return slope_ok(op, a) ? kaiming(op, t, nb_init_gain(nl, a), mode, false) : nb_error_code();
}

nb_status nb_init_kaiming_normal(nb_tensor *t, float a, nb_fan_mode mode, nb_nonlinearity nl) {
    const char *op = "init_kaiming_normal";
    return slope_ok(op, a) ? kaiming(op, t, nb_init_gain(nl, a), mode, true) : nb_error_code();
}

/* ---- a scheme over a module tree */

static const char *const scheme_names[NB_INIT_COUNT] = {
    [NB_INIT_DEFAULT] = "default",
    [NB_INIT_XAVIER_UNIFORM] = "xavier_uniform", [NB_INIT_XAVIER_NORMAL] = "xavier_normal",
    [NB_INIT_KAIMING_UNIFORM] = "kaiming_uniform", [NB_INIT_KAIMING_NORMAL] = "kaiming_normal",
};

const char *nb_init_name(nb_init_scheme scheme) {
    return (unsigned)scheme < NB_INIT_COUNT ? scheme_names[scheme] : "unknown";
}

bool nb_init_parse(const char *name, nb_init_scheme *scheme) {
    for (int i = 0; name && i < NB_INIT_COUNT; i++)
        if (!strcmp(name, scheme_names[i])) return *scheme = (nb_init_scheme)i, true;
    return false;
}

/* The weight and bias of a module whose weight a scheme draws: those of torch.nn whose weight
 * is [out, in, k...] (ConvTranspose2d's is [in, out / groups, k...]; its fans follow that
 * layout, as torch's).  False for any other module. */
static bool scheme_params(const nb_module *m, nb_tensor **weight, nb_tensor **bias) {
    if (m->cls == &nb__linear_class) {
        const nb__linear_state *s = NB__STATE(nb__linear_state, m);
        return *weight = s->weight, *bias = s->bias, true;
    }
    if (m->cls == &nb__conv2d_class) {
        const nb__conv2d_state *s = NB__STATE(nb__conv2d_state, m);
        return *weight = s->weight, *bias = s->bias, true;
    }
    if (m->cls == &nb__conv_transpose2d_class) {
        const nb__conv_transpose2d_state *s = NB__STATE(nb__conv_transpose2d_state, m);
        return *weight = s->weight, *bias = s->bias, true;
    }
    return false;
}

static nb_status init_tree(nb_module *m, const nb_init_opts *o, float gain) {
    nb_tensor *w, *b;
    if (scheme_params(m, &w, &b)) {
        const char *op = "module_init";
        bool normal = o->scheme == NB_INIT_XAVIER_NORMAL || o->scheme == NB_INIT_KAIMING_NORMAL;
        bool is_xavier = o->scheme == NB_INIT_XAVIER_UNIFORM || o->scheme == NB_INIT_XAVIER_NORMAL;
        nb_status s = is_xavier ? xavier(op, w, gain, normal) : kaiming(op, w, gain, o->mode, normal);
        if (s == NB_OK && b && !o->keep_bias) s = nb_fill(b, 0.0f);
        if (s != NB_OK) return s;
    }
    for (int c = 0; c < m->children.n; c++) {
        nb_status s = init_tree(NB__CHILD(m, c), o, gain);
        if (s != NB_OK) return s;
    }
    return NB_OK;
}

nb_status nb_module_init(nb_module *m, nb_init_opts opts) {
    if (!m) return nb__fail_status(NB_ERR_NULL, "module_init: module is NULL");
    if ((unsigned)opts.scheme >= NB_INIT_COUNT)
        return nb__fail_status(NB_ERR_ARG, "module_init: unknown scheme %d", (int)opts.scheme);
    if ((unsigned)opts.mode > NB_FAN_OUT)
        return nb__fail_status(NB_ERR_ARG, "module_init: mode %d is neither fan_in nor fan_out", (int)opts.mode);
    if (!gain_ok("module_init", opts.gain)) return nb_error_code();
    if (opts.scheme == NB_INIT_DEFAULT) return NB_OK;
    bool is_xavier = opts.scheme == NB_INIT_XAVIER_UNIFORM || opts.scheme == NB_INIT_XAVIER_NORMAL;
    float gain = opts.gain > 0 ? opts.gain : is_xavier ? 1.0f : nb_init_gain(NB_GAIN_RELU, 0);
    return init_tree(m, &opts, gain);
}
