/*
 * norm.c — BatchNorm1d, BatchNorm2d and LayerNorm, written with ops so autograd derives their
 * backward.
 *
 *   BatchNorm (Ioffe & Szegedy 2015), per channel c (dim 1) over every other dim: N and L for
 *   BatchNorm1d on [N, C] or [N, C, L], N, H and W for BatchNorm2d on [N, C, H, W]:
 *     training: mu = mean x, var = mean (x - mu)^2 (biased), y = (x - mu) / sqrt(var + eps) g + b
 *               running_mean <- (1 - m) running_mean + m mu
 *               running_var  <- (1 - m) running_var + m var n / (n - 1)   (unbiased, as torch)
 *     eval:     y = (x - running_mean) / sqrt(running_var + eps) g + b
 *   LayerNorm (Ba et al. 2016): the same statistics over the last dims of each sample.
 */
#include "module.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* (x - mean) * rsqrt(var + eps), with mean and var broadcastable to x. */
static nb_tensor *normalise(nb_tensor *x, nb_tensor *mean, nb_tensor *var, float eps) {
    nb_tensor *xc = nb_sub(x, mean), *ve = nb_add_scalar(var, eps);
    nb_tensor *inv = nb__chain(nb_pow_scalar(ve, -0.5f), ve);
    nb_tensor *y = nb_mul(xc, inv);
    nb_tensor_free(xc);
    nb_tensor_free(inv);
    return y;
}

/* y * weight + bias with both reshaped to `shape` (broadcast against y); y is consumed. */
static nb_tensor *affine(nb_tensor *y, nb_tensor *weight, nb_tensor *bias, int ndim, const int64_t *shape) {
    if (!y || !weight) return y;
    nb_tensor *w = nb_reshape(weight, ndim, shape), *b = nb_reshape(bias, ndim, shape);
    nb_tensor *scaled = nb__chain(nb__chain(nb_mul(y, w), w), y);
    return nb__chain(nb__chain(nb_add(scaled, b), b), scaled);
}

/* ---- BatchNorm1d and BatchNorm2d: one implementation; i[1] (1 or 2) says which ranks the
 * module takes.  f[0] eps, f[1] momentum, i[0] channels; params weight, bias; buffers
 * running_mean, running_var, num_batches_tracked. */

static void update_running(nb_module *m, nb_tensor *mean, nb_tensor *var, int64_t n) {
    float mom = m->f[1], *rm = nb__f32(m->buffers[0].tensor), *rv = nb__f32(m->buffers[1].tensor);
    const float *bm = nb__f32(mean), *bv = nb__f32(var); /* fresh reductions: contiguous */
    float unbias = (float)n / (float)(n - 1);
    for (int64_t c = 0; c < m->i[0]; c++) {
        rm[c] = (1.0f - mom) * rm[c] + mom * bm[c];
        rv[c] = (1.0f - mom) * rv[c] + mom * bv[c] * unbias;
    }
    nb__i32(m->buffers[2].tensor)[0] += 1;
}

/* y = xc s + b with s = g / sqrt(var + eps): the per-channel factors (shape [1, C, 1, ...]) are
 * multiplied first, so only two full-size ops follow the centring.  xc is consumed. */
static nb_tensor *scale_shift(nb_tensor *xc, nb_tensor *var, float eps, nb_tensor *weight, nb_tensor *bias,
                              int ndim, const int64_t *shape) {
    nb_tensor *ve = nb_add_scalar(var, eps);
    nb_tensor *s = nb__chain(nb_pow_scalar(ve, -0.5f), ve);
    if (weight) {
        nb_tensor *g = nb_reshape(weight, ndim, shape);
        s = nb__chain(nb__chain(nb_mul(s, g), g), s);
    }
    nb_tensor *y = nb__chain(nb__chain(nb_mul(xc, s), s), xc);
    if (!bias) return y;
    nb_tensor *b = nb_reshape(bias, ndim, shape);
    return nb__chain(nb__chain(nb_add(y, b), b), y);
}

static nb_tensor *batchnorm_forward(nb_module *m, nb_tensor *x) {
    int64_t c = m->i[0];
    bool two_d = m->i[1] == 2;
    bool rank_ok = two_d ? x->ndim == 4 : x->ndim == 2 || x->ndim == 3;
    if (!rank_ok || x->shape[1] != c) {
        if (two_d)
            return nb__fail(NB_ERR_SHAPE, "BatchNorm2d: expected [N, %lld, H, W], got %s", (long long)c, NB_SHP(x));
        return nb__fail(NB_ERR_SHAPE, "BatchNorm1d: expected [N, %lld] or [N, %lld, L], got %s",
                        (long long)c, (long long)c, NB_SHP(x));
    }
    /* statistics over every dim but the channels' (dim 1); per-channel tensors [1, C, 1, ...] */
    int dims[NB_MAX_DIMS], nd = 0;
    int64_t shape[NB_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        shape[d] = d == 1 ? c : 1;
        if (d != 1) dims[nd++] = d;
    }
    int64_t n = nb__numel(x->ndim, x->shape) / c;
    nb_tensor *weight = m->n_params ? m->params[0].tensor : NULL;
    nb_tensor *bias = m->n_params ? m->params[1].tensor : NULL;
    bool batch_stats = m->training || m->n_buffers == 0;
    if (!batch_stats) {
        nb_tensor *rm = nb_reshape(m->buffers[0].tensor, x->ndim, shape);
        nb_tensor *rv = nb_reshape(m->buffers[1].tensor, x->ndim, shape);
        nb_tensor *xc = nb__chain(nb_sub(x, rm), rm);
        nb_tensor *y = xc ? scale_shift(xc, rv, m->f[0], weight, bias, x->ndim, shape) : NULL;
        nb_tensor_free(rv);
        return y;
    }
    if (n <= 1)
        return nb__fail(NB_ERR_SHAPE, "%s: expected more than 1 value per channel when training, got "
                        "input %s", m->def->type, NB_SHP(x));
    nb_tensor *mean = nb_mean_dims(x, nd, dims, true), *xc = nb_sub(x, mean);
    nb_tensor *sq = nb_mul(xc, xc);
    nb_tensor *var = nb__chain(nb_mean_dims(sq, nd, dims, true), sq);
    if (var && m->n_buffers) update_running(m, mean, var, n); /* with buffers, batch stats mean training */
    nb_tensor *y = var ? scale_shift(xc, var, m->f[0], weight, bias, x->ndim, shape) : nb__chain(NULL, xc);
    nb_tensor_free(mean);
    nb_tensor_free(var);
    return y;
}

static void batchnorm_describe(const nb_module *m, char *buf, size_t cap) {
    char eps[32], mom[32];
    nb__repr_float(eps, sizeof eps, m->f[0]);
    nb__repr_float(mom, sizeof mom, m->f[1]);
    snprintf(buf, cap, "%lld, eps=%s, momentum=%s, affine=%s, track_running_stats=%s",
             (long long)m->i[0], eps, mom, m->n_params ? "True" : "False",
             m->n_buffers ? "True" : "False");
}

static const nb_module_type_def batchnorm1d_def = {"BatchNorm1d", batchnorm_forward, batchnorm_describe};
static const nb_module_type_def batchnorm2d_def = {"BatchNorm2d", batchnorm_forward, batchnorm_describe};

/* eps as given (0: torch's 1e-5); NAN after setting the error when it is negative or not
 * finite: the variance plus eps must stay positive. */
static float eps_or_default(const char *type, float eps) {
    if (!(eps >= 0 && isfinite(eps)))
        return nb__fail(NB_ERR_ARG, "%s: eps must be finite and > 0 (0 means 1e-05), got %g", type,
                        (double)eps), NAN;
    return eps > 0 ? eps : 1e-5f;
}

static nb_module *batchnorm_new(const nb_module_type_def *def, int spatial, int64_t num_features,
                                nb_batchnorm_opts o) {
    if (num_features <= 0)
        return nb__fail(NB_ERR_ARG, "%s: num_features must be positive, got %lld", def->type,
                        (long long)num_features);
    float eps = eps_or_default(def->type, o.eps);
    if (isnan(eps)) return NULL;
    /* running = (1 - m) running + m batch is an average only for m in [0, 1] */
    if (!(o.momentum >= 0 && o.momentum <= 1))
        return nb__fail(NB_ERR_ARG, "%s: momentum must be in [0, 1] (0 means 0.1, NB_ZERO for 0), got %g",
                        def->type, (double)o.momentum);
    nb_module *m = nb__module_new(def);
    if (!m) return NULL;
    m->i[0] = num_features;
    m->i[1] = spatial;
    m->f[0] = eps;
    m->f[1] = o.momentum != 0 ? o.momentum : signbit(o.momentum) ? 0.0f : 0.1f;
    bool ok = true;
    if (!o.no_affine) {
        nb_tensor *w = nb__module_add_param(m, "weight", NB_SHAPE(num_features));
        ok = w && nb__module_add_param(m, "bias", NB_SHAPE(num_features)) && nb_fill(w, 1.0f) == NB_OK;
    }
    if (ok && !o.no_running_stats) {
        nb_tensor *rv;
        ok = nb__module_add_buffer(m, "running_mean", NB_F32, NB_SHAPE(num_features)) &&
             (rv = nb__module_add_buffer(m, "running_var", NB_F32, NB_SHAPE(num_features))) &&
             nb__module_add_buffer(m, "num_batches_tracked", NB_I32, 0, NULL) &&
             nb_fill(rv, 1.0f) == NB_OK;
    }
    if (!ok) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

nb_module *nb_batchnorm1d_new(int64_t num_features, nb_batchnorm_opts o) {
    return batchnorm_new(&batchnorm1d_def, 1, num_features, o);
}

nb_module *nb_batchnorm2d_new(int64_t num_features, nb_batchnorm_opts o) {
    return batchnorm_new(&batchnorm2d_def, 2, num_features, o);
}

/* ---- folding an eval-mode BatchNorm into the layer before it.  With s = gamma / sqrt(var + eps)
 * per output channel o, bn(y) = s (y - mean) + beta, so a layer y_o = W_o . x + b_o followed by
 * it is the layer W'_o = s_o W_o, b'_o = s_o (b_o - mean_o) + beta_o.  W_o is the row of the
 * weight feeding output o: [in] for a Linear, [in / groups, kh, kw] for a Conv2d. */

/* Checks that bn (of type bn_type) can follow `layer` (of type layer_type) with `out` outputs. */
static bool fold_ok(const nb_module *layer, const char *layer_type, const nb_module *bn,
                    const char *bn_type, int64_t out) {
    if (!layer || !bn || strcmp(layer->def->type, layer_type) || strcmp(bn->def->type, bn_type))
        return nb__fail(NB_ERR_ARG, "fold_batchnorm: needs a %s and a %s", layer_type, bn_type), false;
    if (bn->i[0] != out || bn->n_buffers == 0)
        return nb__fail(NB_ERR_ARG, "fold_batchnorm: %s(%lld%s) cannot follow a %s with %lld outputs",
                        bn_type, (long long)bn->i[0], bn->n_buffers ? "" : ", no running stats",
                        layer_type, (long long)out), false;
    return true;
}

/* Writes the folded weight and bias of `layer` (weight [out, row...], optional bias) into
 * `folded`, a layer of the same shape made with a bias. */
static void fold_into(nb_module *folded, const nb_module *layer, const nb_module *bn) {
    int64_t out = bn->i[0];
    nb_tensor *weight = layer->params[0].tensor;
    int64_t row = nb__numel(weight->ndim, weight->shape) / out;
    const float *w = nb__f32(weight);
    const float *b = layer->n_params == 2 ? nb__f32(layer->params[1].tensor) : NULL;
    const float *rm = nb__f32(bn->buffers[0].tensor), *rv = nb__f32(bn->buffers[1].tensor);
    const float *g = bn->n_params ? nb__f32(bn->params[0].tensor) : NULL;
    const float *beta = bn->n_params ? nb__f32(bn->params[1].tensor) : NULL;
    float *fw = nb__f32(folded->params[0].tensor), *fb = nb__f32(folded->params[1].tensor);
    for (int64_t o = 0; o < out; o++) {
        float s = (g ? g[o] : 1.0f) / sqrtf(rv[o] + bn->f[0]);
        for (int64_t i = 0; i < row; i++) fw[o * row + i] = s * w[o * row + i];
        fb[o] = s * ((b ? b[o] : 0.0f) - rm[o]) + (beta ? beta[o] : 0.0f);
    }
    nb_module_train(folded, layer->training);
}

nb_module *nb_linear_fold_batchnorm(const nb_module *linear, const nb_module *bn) {
    if (!fold_ok(linear, "Linear", bn, "BatchNorm1d", linear ? linear->i[1] : 0)) return NULL;
    nb_generator rng = nb_rng_get_state(); /* folding must not consume random numbers */
    nb_module *f = nb_linear_new(linear->i[0], linear->i[1], true);
    nb_rng_set_state(rng);
    if (f) fold_into(f, linear, bn);
    return f;
}

nb_module *nb_conv2d_fold_batchnorm(const nb_module *conv, const nb_module *bn) {
    if (!fold_ok(conv, "Conv2d", bn, "BatchNorm2d", conv ? conv->i[1] : 0)) return NULL;
    nb_generator rng = nb_rng_get_state();
    nb_module *f = nb_conv2d_new(conv->i[0], conv->i[1], (int)conv->i[2], (int)conv->i[3],
                                 conv->opts.conv, true);
    nb_rng_set_state(rng);
    if (f) fold_into(f, conv, bn);
    return f;
}

/* ---- LayerNorm.  i[0] = number of normalised dims, i[1..] their sizes; f[0] eps. */

static nb_tensor *layernorm_forward(nb_module *m, nb_tensor *x) {
    int k = (int)m->i[0];
    bool fits = x->ndim >= k;
    for (int d = 0; fits && d < k; d++) fits = x->shape[x->ndim - k + d] == m->i[1 + d];
    if (!fits)
        return nb__fail(NB_ERR_SHAPE, "LayerNorm: input %s does not end in the normalised shape %s",
                        NB_SHP(x), nb__shape_str(k, m->i + 1));
    int dims[NB_MAX_DIMS];
    for (int d = 0; d < k; d++) dims[d] = x->ndim - k + d;
    nb_tensor *mean = nb_mean_dims(x, k, dims, true), *xc = nb_sub(x, mean);
    nb_tensor *sq = nb__chain(nb_mul(xc, xc), xc);
    nb_tensor *var = nb__chain(nb_mean_dims(sq, k, dims, true), sq);
    nb_tensor *y = normalise(x, mean, var, m->f[0]);
    nb_tensor_free(mean);
    nb_tensor_free(var);
    if (!m->n_params) return y;
    return affine(y, m->params[0].tensor, m->params[1].tensor, k, m->i + 1);
}

/* torch prints normalized_shape as a Python tuple: "(4,)", "(3, 4)". */
static void layernorm_describe(const nb_module *m, char *buf, size_t cap) {
    char eps[32];
    nb__repr_float(eps, sizeof eps, m->f[0]);
    int len = snprintf(buf, cap, "(");
    for (int d = 0; d < m->i[0] && len < (int)cap; d++)
        len += snprintf(buf + len, cap - (size_t)len, "%s%lld", d ? ", " : "", (long long)m->i[1 + d]);
    if (len < (int)cap)
        snprintf(buf + len, cap - (size_t)len, "%s), eps=%s, elementwise_affine=%s",
                 m->i[0] == 1 ? "," : "", eps, m->n_params ? "True" : "False");
}

static const nb_module_type_def layernorm_def = {"LayerNorm", layernorm_forward, layernorm_describe};

nb_module *nb_layernorm_new(int ndim, const int64_t *normalized_shape, float eps, bool affine_on) {
    if (ndim < 1 || ndim > NB_MAX_DIMS || !normalized_shape)
        return nb__fail(NB_ERR_ARG, "LayerNorm: needs 1 to %d normalised dims, got %d", NB_MAX_DIMS, ndim);
    for (int d = 0; d < ndim; d++)
        if (normalized_shape[d] <= 0)
            return nb__fail(NB_ERR_ARG, "LayerNorm: normalised shape %s has a size <= 0",
                            nb__shape_str(ndim, normalized_shape));
    float e = eps_or_default("LayerNorm", eps);
    nb_module *m = isnan(e) ? NULL : nb__module_new(&layernorm_def);
    if (!m) return NULL;
    m->i[0] = ndim;
    memcpy(m->i + 1, normalized_shape, sizeof(int64_t) * (size_t)ndim);
    m->f[0] = e;
    if (affine_on) {
        nb_tensor *w = nb__module_add_param(m, "weight", ndim, normalized_shape);
        if (!w || !nb__module_add_param(m, "bias", ndim, normalized_shape) || nb_fill(w, 1.0f) != NB_OK) {
            nb_module_free(m);
            return NULL;
        }
    }
    return m;
}
