/*
 * conv_layers.c — the convolutional modules of torch.nn: Conv2d, ConvTranspose2d, MaxPool2d,
 * AvgPool2d, AdaptiveAvgPool2d(1), Upsample, Dropout2d and Unflatten.  Each forwards to the
 * functional op of nabla/conv.h with the options it keeps in m->opts (normalised at
 * construction: zero strides, dilations and groups become what they mean, so the repr prints
 * torch's values).
 *
 * Shapes are NCHW.  Initialisation is torch's _ConvNd.reset_parameters: kaiming_uniform with
 * a = sqrt 5, whose bound gain sqrt(3 / fan_in) with gain = sqrt(2 / (1 + a^2)) is
 * 1 / sqrt(fan_in), and the bias uniform in the same +-1 / sqrt(fan_in), fan_in being the
 * weight's dim 1 times kh kw:
 *   Conv2d           weight [C_out, C_in / g, kh, kw]  fan_in = C_in / g  kh kw
 *   ConvTranspose2d  weight [C_in, C_out / g, kh, kw]  fan_in = C_out / g kh kw
 * Dropout2d (Tompson et al. 2015): y = x m / (1 - p) with one m ~ Bernoulli(1 - p) per sample
 * and channel, broadcast over H and W, so whole feature maps drop out.
 */
#include "module.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* "(a, b)" as Python prints a 2-tuple. */
static const char *pair(char *buf, size_t cap, const int v[2]) {
    snprintf(buf, cap, "(%d, %d)", v[0], v[1]);
    return buf;
}

/* A pool's size as torch prints what it was given: an int when both sides agree. */
static const char *size_or_pair(char *buf, size_t cap, const int v[2]) {
    if (v[0] == v[1]) snprintf(buf, cap, "%d", v[0]);
    else pair(buf, cap, v);
    return buf;
}

/* Both entries at least `min`; `what` names them in the error. */
static bool check_pair(const char *type, const char *what, const int v[2], int min) {
    if (v[0] >= min && v[1] >= min) return true;
    nb__fail(NB_ERR_ARG, "%s: %s must be >= %d, got (%d, %d)", type, what, min, v[0], v[1]);
    return false;
}

/* 0 means 1 for strides and dilations, as in nabla/conv.h. */
static void default_one(int v[2]) {
    for (int k = 0; k < 2; k++) v[k] = v[k] ? v[k] : 1;
}

/* Channels, kernel and groups shared by both convolutions: sizes positive and both channel
 * counts divisible by the groups. */
static bool check_conv_shape(const char *type, int64_t in, int64_t out, int kh, int kw, int groups) {
    if (in <= 0 || out <= 0 || kh <= 0 || kw <= 0) {
        nb__fail(NB_ERR_ARG, "%s: channels and kernel sizes must be positive, got in=%lld out=%lld "
                 "kernel=(%d, %d)", type, (long long)in, (long long)out, kh, kw);
        return false;
    }
    if (groups <= 0 || in % groups || out % groups) {
        nb__fail(NB_ERR_ARG, "%s: groups=%d must be positive and divide in_channels=%lld and "
                 "out_channels=%lld", type, groups, (long long)in, (long long)out);
        return false;
    }
    return true;
}

/* Adds weight (shape given) and, when asked, bias [bias_size], both U(+-1/sqrt(fan_in)) with
 * fan_in = weight dim 1 times kh kw, drawn weight first as torch does. */
static bool add_conv_params(nb_module *m, const int64_t wshape[4], int64_t bias_size, bool bias) {
    nb_tensor *w = nb__module_add_param(m, "weight", 4, wshape);
    nb_tensor *b = w && bias ? nb__module_add_param(m, "bias", NB_SHAPE(bias_size)) : w;
    float bound = 1.0f / sqrtf((float)(wshape[1] * wshape[2] * wshape[3]));
    return b && nb_init_uniform(w, -bound, bound) == NB_OK &&
           (!bias || nb_init_uniform(b, -bound, bound) == NB_OK);
}

/* snprintf at the end of buf, keeping *len the length written so far. */
__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t cap, int *len,
                                                          const char *fmt, ...) {
    if (*len < 0 || (size_t)*len >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    *len += vsnprintf(buf + *len, cap - (size_t)*len, fmt, ap);
    va_end(ap);
}

/* torch's _ConvNd.extra_repr: padding, dilation, output_padding and groups only when they
 * differ from their defaults, bias only when absent.  i[0..3]: in, out, kh, kw. */
static void conv_describe_common(const nb_module *m, const int stride[2], const int padding[2],
                                 bool same, const int dilation[2], const int *output_padding,
                                 int groups, char *buf, size_t cap) {
    char s[4][32];
    int kernel[2] = {(int)m->i[2], (int)m->i[3]};
    int len = snprintf(buf, cap, "%lld, %lld, kernel_size=%s, stride=%s", (long long)m->i[0],
                       (long long)m->i[1], pair(s[0], sizeof s[0], kernel), pair(s[1], sizeof s[1], stride));
    if (same) append(buf, cap, &len, ", padding=same");
    else if (padding[0] || padding[1])
        append(buf, cap, &len, ", padding=%s", pair(s[2], sizeof s[2], padding));
    if (dilation[0] != 1 || dilation[1] != 1)
        append(buf, cap, &len, ", dilation=%s", pair(s[3], sizeof s[3], dilation));
    if (output_padding && (output_padding[0] || output_padding[1]))
        append(buf, cap, &len, ", output_padding=%s", pair(s[2], sizeof s[2], output_padding));
    if (groups != 1) append(buf, cap, &len, ", groups=%d", groups);
    if (m->n_params < 2) append(buf, cap, &len, ", bias=False");
}

static nb_tensor *bias_of(const nb_module *m) { return m->n_params == 2 ? m->params[1].tensor : NULL; }

/* ---- Conv2d.  i[0..3]: in, out, kh, kw; opts.conv */

static nb_tensor *conv2d_forward(nb_module *m, nb_tensor *x) {
    return nb_conv2d(x, m->params[0].tensor, bias_of(m), &m->opts.conv);
}

static void conv2d_describe(const nb_module *m, char *buf, size_t cap) {
    const nb_conv2d_opts *o = &m->opts.conv;
    conv_describe_common(m, o->stride, o->padding, o->same, o->dilation, NULL, o->groups, buf, cap);
}

static const nb_module_type_def conv2d_def = {"Conv2d", conv2d_forward, conv2d_describe};

nb_module *nb_conv2d_new(int64_t in_channels, int64_t out_channels, int kh, int kw,
                         nb_conv2d_opts o, bool bias) {
    o.groups = o.groups ? o.groups : 1;
    default_one(o.stride);
    default_one(o.dilation);
    if (!check_conv_shape("Conv2d", in_channels, out_channels, kh, kw, o.groups) ||
        !check_pair("Conv2d", "stride", o.stride, 1) || !check_pair("Conv2d", "dilation", o.dilation, 1) ||
        !check_pair("Conv2d", "padding", o.padding, 0))
        return NULL;
    if (o.same && (o.stride[0] != 1 || o.stride[1] != 1))
        return nb__fail(NB_ERR_ARG, "Conv2d: padding='same' is not supported for strided convolutions");
    if (o.same) o.padding[0] = o.padding[1] = 0;
    nb_module *m = nb__module_new(&conv2d_def);
    if (!m) return NULL;
    m->i[0] = in_channels, m->i[1] = out_channels, m->i[2] = kh, m->i[3] = kw;
    m->opts.conv = o;
    if (!add_conv_params(m, (int64_t[]){out_channels, in_channels / o.groups, kh, kw}, out_channels, bias)) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

/* ---- ConvTranspose2d.  i[0..3]: in, out, kh, kw; opts.conv_t */

static nb_tensor *conv_transpose2d_forward(nb_module *m, nb_tensor *x) {
    return nb_conv_transpose2d(x, m->params[0].tensor, bias_of(m), &m->opts.conv_t);
}

static void conv_transpose2d_describe(const nb_module *m, char *buf, size_t cap) {
    const nb_conv_transpose2d_opts *o = &m->opts.conv_t;
    conv_describe_common(m, o->stride, o->padding, false, o->dilation, o->output_padding, o->groups,
                         buf, cap);
}

static const nb_module_type_def conv_transpose2d_def = {"ConvTranspose2d", conv_transpose2d_forward,
                                                        conv_transpose2d_describe};

nb_module *nb_conv_transpose2d_new(int64_t in_channels, int64_t out_channels, int kh, int kw,
                                   nb_conv_transpose2d_opts o, bool bias) {
    o.groups = o.groups ? o.groups : 1;
    default_one(o.stride);
    default_one(o.dilation);
    if (!check_conv_shape("ConvTranspose2d", in_channels, out_channels, kh, kw, o.groups) ||
        !check_pair("ConvTranspose2d", "stride", o.stride, 1) ||
        !check_pair("ConvTranspose2d", "dilation", o.dilation, 1) ||
        !check_pair("ConvTranspose2d", "padding", o.padding, 0) ||
        !check_pair("ConvTranspose2d", "output_padding", o.output_padding, 0))
        return NULL;
    for (int k = 0; k < 2; k++) /* torch: output padding must be smaller than either stride or dilation */
        if (o.output_padding[k] >= o.stride[k] && o.output_padding[k] >= o.dilation[k])
            return nb__fail(NB_ERR_ARG, "ConvTranspose2d: output_padding (%d, %d) must be smaller than "
                            "either stride (%d, %d) or dilation (%d, %d)", o.output_padding[0],
                            o.output_padding[1], o.stride[0], o.stride[1], o.dilation[0], o.dilation[1]);
    nb_module *m = nb__module_new(&conv_transpose2d_def);
    if (!m) return NULL;
    m->i[0] = in_channels, m->i[1] = out_channels, m->i[2] = kh, m->i[3] = kw;
    m->opts.conv_t = o;
    if (!add_conv_params(m, (int64_t[]){in_channels, out_channels / o.groups, kh, kw}, out_channels, bias)) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

/* ---- MaxPool2d and AvgPool2d.  opts.pool, with the stride set (0 means the kernel) */

static nb_tensor *maxpool2d_forward(nb_module *m, nb_tensor *x) { return nb_max_pool2d(x, &m->opts.pool); }
static nb_tensor *avgpool2d_forward(nb_module *m, nb_tensor *x) { return nb_avg_pool2d(x, &m->opts.pool); }

static void maxpool2d_describe(const nb_module *m, char *buf, size_t cap) {
    const nb_pool2d_opts *o = &m->opts.pool;
    char k[32], s[32], p[32];
    snprintf(buf, cap, "kernel_size=%s, stride=%s, padding=%s, dilation=1, ceil_mode=%s",
             size_or_pair(k, sizeof k, o->kernel), size_or_pair(s, sizeof s, o->stride),
             size_or_pair(p, sizeof p, o->padding), o->ceil_mode ? "True" : "False");
}

static void avgpool2d_describe(const nb_module *m, char *buf, size_t cap) {
    const nb_pool2d_opts *o = &m->opts.pool;
    char k[32], s[32], p[32];
    snprintf(buf, cap, "kernel_size=%s, stride=%s, padding=%s", size_or_pair(k, sizeof k, o->kernel),
             size_or_pair(s, sizeof s, o->stride), size_or_pair(p, sizeof p, o->padding));
}

static const nb_module_type_def maxpool2d_def = {"MaxPool2d", maxpool2d_forward, maxpool2d_describe};
static const nb_module_type_def avgpool2d_def = {"AvgPool2d", avgpool2d_forward, avgpool2d_describe};

static nb_module *pool_new(const nb_module_type_def *def, nb_pool2d_opts o) {
    const char *type = def->type;
    if (!check_pair(type, "kernel_size", o.kernel, 1) || !check_pair(type, "stride", o.stride, 0) ||
        !check_pair(type, "padding", o.padding, 0))
        return NULL;
    if (2 * o.padding[0] > o.kernel[0] || 2 * o.padding[1] > o.kernel[1])
        return nb__fail(NB_ERR_ARG, "%s: padding (%d, %d) should be at most half of the kernel size (%d, %d)",
                        type, o.padding[0], o.padding[1], o.kernel[0], o.kernel[1]);
    for (int k = 0; k < 2; k++) o.stride[k] = o.stride[k] ? o.stride[k] : o.kernel[k];
    nb_module *m = nb__module_new(def);
    if (m) m->opts.pool = o;
    return m;
}

nb_module *nb_maxpool2d_new(nb_pool2d_opts opts) { return pool_new(&maxpool2d_def, opts); }
nb_module *nb_avgpool2d_new(nb_pool2d_opts opts) { return pool_new(&avgpool2d_def, opts); }

/* ---- AdaptiveAvgPool2d(1) */

static nb_tensor *global_avgpool2d_forward(nb_module *m, nb_tensor *x) {
    (void)m;
    return nb_global_avg_pool2d(x);
}

static void global_avgpool2d_describe(const nb_module *m, char *buf, size_t cap) {
    (void)m;
    snprintf(buf, cap, "output_size=1");
}

static const nb_module_type_def global_avgpool2d_def = {"AdaptiveAvgPool2d", global_avgpool2d_forward,
                                                        global_avgpool2d_describe};

nb_module *nb_global_avgpool2d_new(void) { return nb__module_new(&global_avgpool2d_def); }

/* ---- Upsample.  i[0]: scale, i[1]: bilinear */

static nb_tensor *upsample_forward(nb_module *m, nb_tensor *x) {
    int s = (int)m->i[0];
    return m->i[1] ? nb_upsample_bilinear2d(x, s, s, false) : nb_upsample_nearest2d(x, s, s);
}

/* torch stores scale_factor as a float: "scale_factor=2.0, mode=nearest". */
static void upsample_describe(const nb_module *m, char *buf, size_t cap) {
    snprintf(buf, cap, "scale_factor=%lld.0, mode=%s", (long long)m->i[0], m->i[1] ? "bilinear" : "nearest");
}

static const nb_module_type_def upsample_def = {"Upsample", upsample_forward, upsample_describe};

nb_module *nb_upsample_new(int scale, bool bilinear) {
    if (scale < 1) return nb__fail(NB_ERR_ARG, "Upsample: scale must be a positive integer, got %d", scale);
    nb_module *m = nb__module_new(&upsample_def);
    if (m) m->i[0] = scale, m->i[1] = bilinear;
    return m;
}

/* ---- Dropout2d.  f[0]: p */

/* A 4-D input [N, C, H, W] draws a mask [N, C, 1, 1]; a 3-D one is a single sample [C, H, W]
 * (nabla/conv.h's convention) and draws [C, 1, 1]. */
static nb_tensor *dropout2d_forward(nb_module *m, nb_tensor *x) {
    if (m->training && m->f[0] != 0.0f && x->ndim != 3 && x->ndim != 4)
        return nb__fail(NB_ERR_SHAPE, "Dropout2d: expected [N, C, H, W] or [C, H, W], got %s", NB_SHP(x));
    int64_t shape[4] = {1, 1, 1, 1};
    for (int d = 0; d < x->ndim - 2; d++) shape[d] = x->shape[d]; /* the dims a mask entry is drawn for */
    return nb__dropout(m, x, x->ndim, shape);
}

static const nb_module_type_def dropout2d_def = {"Dropout2d", dropout2d_forward, nb__dropout_describe};

nb_module *nb_dropout2d_new(float p) { return nb__dropout_new(&dropout2d_def, p); }

/* ---- Unflatten.  i[0]: ndim of the sample shape, i[1..]: its sizes */

static nb_tensor *unflatten_forward(nb_module *m, nb_tensor *x) {
    int k = (int)m->i[0];
    int64_t per_sample = nb__numel(k, m->i + 1);
    if (x->ndim < 1 || nb__numel(x->ndim - 1, x->shape + 1) != per_sample)
        return nb__fail(NB_ERR_SHAPE, "Unflatten: input %s does not hold %lld values per sample for "
                        "the shape %s", NB_SHP(x), (long long)per_sample, nb__shape_str(k, m->i + 1));
    int64_t shape[NB_MAX_DIMS];
    shape[0] = x->shape[0];
    memcpy(shape + 1, m->i + 1, sizeof(int64_t) * (size_t)k);
    return nb_reshape(x, k + 1, shape);
}

/* torch: "dim=1, unflattened_size=(1, 28, 28)", a one-element tuple as "(784,)". */
static void unflatten_describe(const nb_module *m, char *buf, size_t cap) {
    int len = snprintf(buf, cap, "dim=1, unflattened_size=(");
    for (int d = 0; d < m->i[0] && len >= 0 && (size_t)len < cap; d++)
        len += snprintf(buf + len, cap - (size_t)len, "%s%lld", d ? ", " : "", (long long)m->i[1 + d]);
    if (len >= 0 && (size_t)len < cap) snprintf(buf + len, cap - (size_t)len, "%s)", m->i[0] == 1 ? "," : "");
}

static const nb_module_type_def unflatten_def = {"Unflatten", unflatten_forward, unflatten_describe};

nb_module *nb_unflatten_new(int ndim, const int64_t *shape) {
    if (ndim < 1 || ndim > NB_MAX_DIMS - 1 || !shape)
        return nb__fail(NB_ERR_ARG, "Unflatten: needs 1 to %d sizes, got %d", NB_MAX_DIMS - 1, ndim);
    for (int d = 0; d < ndim; d++)
        if (shape[d] <= 0)
            return nb__fail(NB_ERR_ARG, "Unflatten: sizes must be positive, got %s", nb__shape_str(ndim, shape));
    nb_module *m = nb__module_new(&unflatten_def);
    if (!m) return NULL;
    m->i[0] = ndim;
    memcpy(m->i + 1, shape, sizeof(int64_t) * (size_t)ndim);
    return m;
}
