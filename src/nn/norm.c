/*
 * norm.c — BatchNorm1d and BatchNorm2d, written with ops so autograd derives their backward,
 * and LayerNorm over the fused layer_norm op (ops/layernorm.c).
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
#include "../backend/backend.h"

#include <math.h>
#include <string.h>

/* ---- BatchNorm1d and BatchNorm2d: one implementation and one state (module.h); the class
 * says which ranks the module takes.  Params weight, bias; buffers running_mean, running_var,
 * num_batches_tracked. */

void nb__batchnorm_update_running(nb__batchnorm_state *s, nb_tensor *mean, nb_tensor *var, int64_t n) {
    const nb_backend *be = nb__backend(mean->device);
    /* mean and var are fresh reductions: contiguous */
    be->batchnorm_running(nb__f32(s->running_mean), nb__f32(s->running_var), nb__f32(mean),
                          nb__f32(var), s->num_features, s->momentum, (float)n / (float)(n - 1));
    int32_t *tracked = nb__i32(s->num_batches_tracked), count;
    be->copy_d2h(&count, tracked, sizeof count);
    count += 1;
    be->copy_h2d(tracked, &count, sizeof count);
}

/* y = xc s + b with s = g / sqrt(var + eps): the per-channel factors (shape [1, C, 1, ...]) are
 * multiplied first, so only two full-size ops follow the centring. */
nb_tensor *nb__batchnorm_scale_shift(nb_tensor *xc, nb_tensor *var, float eps, nb_tensor *weight, nb_tensor *bias,
                              int ndim, const int64_t *shape) {
    nb__temps tmp = {0};
    nb_tensor *ve = nb__tmp(&tmp, nb_add_scalar(var, eps));
    nb_tensor *s = nb__tmp(&tmp, nb_pow_scalar(ve, -0.5f));
    if (weight) {
        nb_tensor *g = nb__tmp(&tmp, nb_reshape(weight, ndim, shape));
        s = nb__tmp(&tmp, nb_mul(s, g));
    }
    nb_tensor *y = nb__tmp(&tmp, nb_mul(xc, s));
    if (bias) {
        nb_tensor *b = nb__tmp(&tmp, nb_reshape(bias, ndim, shape));
        y = nb__tmp(&tmp, nb_add(y, b));
    }
    return nb__temps_end(&tmp, y);
}

static nb_tensor *batchnorm_forward(nb_module *m, nb_tensor *x) {
    nb__batchnorm_state *st = NB__STATE(nb__batchnorm_state, m);
    int64_t c = st->num_features;
    bool two_d = m->cls == &nb__batchnorm2d_class;
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
    nb_tensor *weight = st->weight, *bias = st->bias;
    bool batch_stats = m->training || !st->running_mean;
    if (!batch_stats) {
        nb__temps tmp = {0};
        nb_tensor *rm = nb__tmp(&tmp, nb_reshape(st->running_mean, x->ndim, shape));
        nb_tensor *rv = nb__tmp(&tmp, nb_reshape(st->running_var, x->ndim, shape));
        nb_tensor *xc = nb__tmp(&tmp, nb_sub(x, rm));
        nb_tensor *y = xc ? nb__tmp(&tmp, nb__batchnorm_scale_shift(xc, rv, st->eps, weight, bias, x->ndim, shape)) : NULL;
        return nb__temps_end(&tmp, y);
    }
    if (n <= 1)
        return nb__fail(NB_ERR_SHAPE, "%s: expected more than 1 value per channel when training, got "
                        "input %s", m->cls->name, NB_SHP(x));
    nb__temps tmp = {0};
    nb_tensor *mean = nb__tmp(&tmp, nb_mean_dims(x, nd, dims, true)), *xc = nb__tmp(&tmp, nb_sub(x, mean));
    nb_tensor *sq = nb__tmp(&tmp, nb_mul(xc, xc));
    nb_tensor *var = nb__tmp(&tmp, nb_mean_dims(sq, nd, dims, true));
    if (var && st->running_mean) nb__batchnorm_update_running(st, mean, var, n); /* with buffers, batch stats mean training */
    nb_tensor *y = var ? nb__tmp(&tmp, nb__batchnorm_scale_shift(xc, var, st->eps, weight, bias, x->ndim, shape)) : NULL;
    return nb__temps_end(&tmp, y);
}

static void batchnorm_describe(const nb_module *m, nb_attrs *d) {
    const nb__batchnorm_state *s = NB__STATE(nb__batchnorm_state, m);
    nb_attrs_int(d, "num_features", s->num_features)->flags = NB_ATTR_POSITIONAL;
    nb_attrs_float(d, "eps", s->eps);
    nb_attrs_float(d, "momentum", s->momentum);
    nb_attrs_bool(d, "affine", s->weight != NULL);
    nb_attrs_bool(d, "track_running_stats", s->running_mean != NULL);
}

const nb_module_class nb__batchnorm1d_class = {.name = "BatchNorm1d", .forward = batchnorm_forward,
                                               .describe = batchnorm_describe};
const nb_module_class nb__batchnorm2d_class = {.name = "BatchNorm2d", .forward = batchnorm_forward,
                                               .describe = batchnorm_describe};

/* eps as given (0: torch's 1e-5); NAN after setting the error when it is negative or not
 * finite: the variance plus eps must stay positive. */
static float eps_or_default(const char *type, float eps) {
    if (!(eps >= 0 && isfinite(eps)))
        return nb__fail(NB_ERR_ARG, "%s: eps must be finite and > 0 (0 means 1e-05), got %g", type,
                        (double)eps), NAN;
    return eps > 0 ? eps : 1e-5f;
}

static nb_module *batchnorm_new(const nb_module_class *cls, int64_t num_features, nb_batchnorm_opts o) {
    if (num_features <= 0)
        return nb__fail(NB_ERR_ARG, "%s: num_features must be positive, got %lld", cls->name,
                        (long long)num_features);
    float eps = eps_or_default(cls->name, o.eps);
    if (isnan(eps)) return NULL;
    /* running = (1 - m) running + m batch is an average only for m in [0, 1] */
    if (!(o.momentum >= 0 && o.momentum <= 1))
        return nb__fail(NB_ERR_ARG, "%s: momentum must be in [0, 1] (0 means 0.1, NB_ZERO for 0), got %g",
                        cls->name, (double)o.momentum);
    nb_module *m = nb_module_new(cls, sizeof(nb__batchnorm_state));
    if (!m) return NULL;
    nb__batchnorm_state *s = NB__STATE(nb__batchnorm_state, m);
    s->num_features = num_features;
    s->eps = eps;
    s->momentum = o.momentum != 0 ? o.momentum : signbit(o.momentum) ? 0.0f : 0.1f;
    bool ok = true;
    if (!o.no_affine) {
        ok = (s->weight = nb_module_add_param(m, "weight", NB_SHAPE(num_features))) &&
             (s->bias = nb_module_add_param(m, "bias", NB_SHAPE(num_features))) &&
             nb_fill(s->weight, 1.0f) == NB_OK;
    }
    if (ok && !o.no_running_stats) {
        ok = (s->running_mean = nb_module_add_buffer(m, "running_mean", NB_F32, NB_SHAPE(num_features))) &&
             (s->running_var = nb_module_add_buffer(m, "running_var", NB_F32, NB_SHAPE(num_features))) &&
             (s->num_batches_tracked = nb_module_add_buffer(m, "num_batches_tracked", NB_I32, 0, NULL)) &&
             nb_fill(s->running_var, 1.0f) == NB_OK;
    }
    if (!ok) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

nb_module *nb_batchnorm1d_new(int64_t num_features, nb_batchnorm_opts o) {
    return batchnorm_new(&nb__batchnorm1d_class, num_features, o);
}

nb_module *nb_batchnorm2d_new(int64_t num_features, nb_batchnorm_opts o) {
    return batchnorm_new(&nb__batchnorm2d_class, num_features, o);
}

/* ---- folding an eval-mode BatchNorm into the layer before it.  With s = gamma / sqrt(var + eps)
 * per output channel o, bn(y) = s (y - mean) + beta, so a layer y_o = W_o . x + b_o followed by
 * it is the layer W'_o = s_o W_o, b'_o = s_o (b_o - mean_o) + beta_o.  W_o is the row of the
 * weight feeding output o: [in] for a Linear, [in / groups, kh, kw] for a Conv2d. */

/* The BatchNorm state of bn when layer is of class layer_cls and bn of class bn_cls with
 * running statistics over `out` channels; NULL with NB_ERR_ARG otherwise. */
static const nb__batchnorm_state *fold_ok(const nb_module *layer, const nb_module_class *layer_cls,
                                          const nb_module *bn, const nb_module_class *bn_cls, int64_t out) {
    if (!layer || !bn || layer->cls != layer_cls || bn->cls != bn_cls)
        return nb__fail(NB_ERR_ARG, "fold_batchnorm: needs a %s and a %s", layer_cls->name, bn_cls->name);
    const nb__batchnorm_state *s = NB__STATE(nb__batchnorm_state, bn);
    if (s->num_features != out || !s->running_mean)
        return nb__fail(NB_ERR_ARG, "fold_batchnorm: %s(%lld%s) cannot follow a %s with %lld outputs",
                        bn_cls->name, (long long)s->num_features, s->running_mean ? "" : ", no running stats",
                        layer_cls->name, (long long)out);
    return s;
}

/* Writes the folded weight and bias of a layer (weight [out, row...], bias or NULL) followed by
 * bn into fw and fb, a layer of the same shape made with a bias. */
static void fold_into(nb_tensor *fw_t, nb_tensor *fb_t, const nb_tensor *weight, const nb_tensor *bias,
                      const nb__batchnorm_state *bn) {
    int64_t out = bn->num_features;
    nb__batchnorm_fold_args a = {
        .w = nb__f32(weight), .b = bias ? nb__f32(bias) : NULL,
        .rm = nb__f32(bn->running_mean), .rv = nb__f32(bn->running_var),
        .g = bn->weight ? nb__f32(bn->weight) : NULL, .beta = bn->bias ? nb__f32(bn->bias) : NULL,
        .out = out, .row = nb__numel(weight->ndim, weight->shape) / out, .eps = bn->eps,
    };
    nb__backend(weight->device)->batchnorm_fold(nb__f32(fw_t), nb__f32(fb_t), &a);
}

nb_module *nb_linear_fold_batchnorm(const nb_module *linear, const nb_module *bn) {
    const nb__linear_state *l = linear && linear->cls == &nb__linear_class
                                    ? NB__STATE(nb__linear_state, linear) : NULL;
    const nb__batchnorm_state *b = fold_ok(linear, &nb__linear_class, bn, &nb__batchnorm1d_class,
                                           l ? l->out_features : 0);
    if (!b) return NULL;
    nb_generator rng = nb_rng_get_state(); /* folding must not consume random numbers */
    nb_module *f = nb_linear_new(l->in_features, l->out_features, true);
    nb_rng_set_state(rng);
    if (!f) return NULL;
    const nb__linear_state *fl = NB__STATE(nb__linear_state, f);
    fold_into(fl->weight, fl->bias, l->weight, l->bias, b);
    nb_module_train(f, linear->training);
    return f;
}

nb_module *nb_conv2d_fold_batchnorm(const nb_module *conv, const nb_module *bn) {
    const nb__conv2d_state *c = conv && conv->cls == &nb__conv2d_class
                                    ? NB__STATE(nb__conv2d_state, conv) : NULL;
    const nb__batchnorm_state *b = fold_ok(conv, &nb__conv2d_class, bn, &nb__batchnorm2d_class,
                                           c ? c->out_channels : 0);
    if (!b) return NULL;
    nb_generator rng = nb_rng_get_state();
    nb_module *f = nb_conv2d_new(c->in_channels, c->out_channels, c->kernel[0], c->kernel[1], c->opts, true);
    nb_rng_set_state(rng);
    if (!f) return NULL;
    const nb__conv2d_state *fc = NB__STATE(nb__conv2d_state, f);
    fold_into(fc->weight, fc->bias, c->weight, c->bias, b);
    nb_module_train(f, conv->training);
    return f;
}

/* ---- LayerNorm */

typedef struct {
    int ndim;                        /* normalised dims, the last of the input */
    int64_t shape[NB_MAX_DIMS];
    float eps;
    nb_tensor *weight, *bias;        /* NULL without elementwise_affine */
} layernorm_state;

static nb_tensor *layernorm_forward(nb_module *m, nb_tensor *x) {
    const layernorm_state *s = NB__STATE(layernorm_state, m);
    int k = s->ndim;
    bool fits = x->ndim >= k;
    for (int d = 0; fits && d < k; d++) fits = x->shape[x->ndim - k + d] == s->shape[d];
    if (!fits)
        return nb__fail(NB_ERR_SHAPE, "LayerNorm: input %s does not end in the normalised shape %s",
                        NB_SHP(x), nb__shape_str(k, s->shape));
    return nb_layer_norm(x, k, s->weight, s->bias, s->eps);
}

/* torch prints normalized_shape as a Python tuple: "(4,)", "(3, 4)". */
static void layernorm_describe(const nb_module *m, nb_attrs *d) {
    const layernorm_state *s = NB__STATE(layernorm_state, m);
    nb_attrs_ints(d, "normalized_shape", s->ndim, s->shape)->flags = NB_ATTR_POSITIONAL;
    nb_attrs_float(d, "eps", s->eps);
    nb_attrs_bool(d, "elementwise_affine", s->weight != NULL);
}

static const nb_module_class layernorm_class = {.name = "LayerNorm", .forward = layernorm_forward,
                                                .describe = layernorm_describe};

nb_module *nb_layernorm_new(int ndim, const int64_t *normalized_shape, float eps, bool affine_on) {
    if (ndim < 1 || ndim > NB_MAX_DIMS || !normalized_shape)
        return nb__fail(NB_ERR_ARG, "LayerNorm: needs 1 to %d normalised dims, got %d", NB_MAX_DIMS, ndim);
    for (int d = 0; d < ndim; d++)
        if (normalized_shape[d] <= 0)
            return nb__fail(NB_ERR_ARG, "LayerNorm: normalised shape %s has a size <= 0",
                            nb__shape_str(ndim, normalized_shape));
    float e = eps_or_default("LayerNorm", eps);
    nb_module *m = isnan(e) ? NULL : nb_module_new(&layernorm_class, sizeof(layernorm_state));
    if (!m) return NULL;
    layernorm_state *s = NB__STATE(layernorm_state, m);
    s->ndim = ndim;
    memcpy(s->shape, normalized_shape, sizeof(int64_t) * (size_t)ndim);
    s->eps = e;
    if (affine_on) {
        s->weight = nb_module_add_param(m, "weight", ndim, normalized_shape);
        s->bias = s->weight ? nb_module_add_param(m, "bias", ndim, normalized_shape) : NULL;
        if (!s->bias || nb_fill(s->weight, 1.0f) != NB_OK) {
            nb_module_free(m);
            return NULL;
        }
    }
    return m;
}
