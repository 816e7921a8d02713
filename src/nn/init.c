/*
 * init.c — torch.nn.init: in-place fills drawn from the library's Philox generator.
 *   xavier (Glorot & Bengio 2010):  std = gain sqrt(2 / (fan_in + fan_out)), bound = sqrt(3) std
 *   kaiming (He et al. 2015):        std = gain / sqrt(fan),                bound = sqrt(3) std
 * with fan_in = size(1) * receptive field, fan_out = size(0) * receptive field.
 */
#include "module.h"

#include <math.h>

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
    float *d = nb__f32(draw);
    int64_t n = nb__numel(t->ndim, t->shape);
    for (int64_t i = 0; i < n; i++) d[i] = normal ? a + b * d[i] : a + (b - a) * d[i];
    nb_status s = nb_copy_from(t, d, n);
    if (!home) nb_tensor_free(draw);
    return s;
}

nb_status nb_init_constant(nb_tensor *t, float value) { return nb_fill(t, value); }
nb_status nb_init_uniform(nb_tensor *t, float low, float high) { return fill_drawn("init_uniform", t, false, low, high); }
nb_status nb_init_normal(nb_tensor *t, float mean, float std) { return fill_drawn("init_normal", t, true, mean, std); }

nb_status nb_init_xavier_uniform(nb_tensor *t, float gain) {
    double fi, fo;
    if (!fans("init_xavier_uniform", t, &fi, &fo)) return nb_error_code();
    float bound = (float)(gain * sqrt(6.0 / (fi + fo)));
    return fill_drawn("init_xavier_uniform", t, false, -bound, bound);
}

nb_status nb_init_xavier_normal(nb_tensor *t, float gain) {
    double fi, fo;
    if (!fans("init_xavier_normal", t, &fi, &fo)) return nb_error_code();
    return fill_drawn("init_xavier_normal", t, true, 0.0f, (float)(gain * sqrt(2.0 / (fi + fo))));
}

static float kaiming_std(const char *op, nb_tensor *t, float a, nb_fan_mode mode, nb_nonlinearity nl) {
    double fi, fo;
    if (!fans(op, t, &fi, &fo)) return NAN;
    double fan = mode == NB_FAN_OUT ? fo : fi;
    return (float)(nb_init_gain(nl, a) / sqrt(fan));
}

nb_status nb_init_kaiming_uniform(nb_tensor *t, float a, nb_fan_mode mode, nb_nonlinearity nl) {
    float std = kaiming_std("init_kaiming_uniform", t, a, mode, nl);
    if (isnan(std)) return nb_error_code();
    return fill_drawn("init_kaiming_uniform", t, false, -sqrtf(3.0f) * std, sqrtf(3.0f) * std);
}

nb_status nb_init_kaiming_normal(nb_tensor *t, float a, nb_fan_mode mode, nb_nonlinearity nl) {
    float std = kaiming_std("init_kaiming_normal", t, a, mode, nl);
    if (isnan(std)) return nb_error_code();
    return fill_drawn("init_kaiming_normal", t, true, 0.0f, std);
}
