/*
 * conv_layers.c — the convolutional modules of torch.nn: Conv2d, ConvTranspose2d, MaxPool2d,
 * AvgPool2d, AdaptiveAvgPool2d(1), Upsample, Dropout2d and Unflatten.  Each forwards to the
 * functional op of nabla/conv.h with the options it keeps in its state (normalised at
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
#include <string.h>

/* An (height, width) pair as a 2-tuple attribute: "(3, 3)". */
static nb_attr *pair_attr(nb_attrs *d, const char *name, const int v[2]) {
    return nb_attrs_ints(d, name, 2, (const int64_t[]){v[0], v[1]});
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
 * fan_in = weight dim 1 times kh kw, drawn weight first as torch does; their handles go to
 * *weight and *bias (NULL without). */
static bool add_conv_params(nb_module *m, const int64_t wshape[4], int64_t bias_size, bool bias,
                            nb_tensor **weight, nb_tensor **bias_out) {
    nb_tensor *w = *weight = nb_module_add_param(m, "weight", 4, wshape);
    nb_tensor *b = w && bias ? (*bias_out = nb_module_add_param(m, "bias", NB_SHAPE(bias_size))) : w;
    float bound = 1.0f / sqrtf((float)(wshape[1] * wshape[2] * wshape[3]));
    return b && nb_init_uniform(w, -bound, bound) == NB_OK &&
           (!bias || nb_init_uniform(b, -bound, bound) == NB_OK);
}

/* torch's _ConvNd.extra_repr: the channels, kernel and stride, then padding, dilation,
 * output_padding and groups only when they differ from their defaults, bias only when absent;
 * every one of them is in the description. */
static void conv_describe_common(nb_attrs *d, int64_t in, int64_t out, const int kernel[2],
                                 const int stride[2], const int padding[2], bool same,
                                 const int dilation[2], const int *output_padding, int groups,
                                 bool bias) {
    nb_attrs_int(d, "in_channels", in)->flags = NB_ATTR_POSITIONAL;
    nb_attrs_int(d, "out_channels", out)->flags = NB_ATTR_POSITIONAL;
    pair_attr(d, "kernel_size", kernel);
    pair_attr(d, "stride", stride);
    if (same) nb_attrs_string(d, "padding", "same");
    else pair_attr(d, "padding", padding)->flags = padding[0] || padding[1] ? 0 : NB_ATTR_NO_REPR;
    pair_attr(d, "dilation", dilation)->flags = dilation[0] != 1 || dilation[1] != 1 ? 0 : NB_ATTR_NO_REPR;
    if (output_padding)
        pair_attr(d, "output_padding", output_padding)->flags =
            output_padding[0] || output_padding[1] ? 0 : NB_ATTR_NO_REPR;
    nb_attrs_int(d, "groups", groups)->flags = groups != 1 ? 0 : NB_ATTR_NO_REPR;
    nb_attrs_bool(d, "bias", bias)->flags = bias ? NB_ATTR_NO_REPR : 0;
}

/* ---- Conv2d */

static nb_tensor *conv2d_forward(nb_module *m, nb_tensor *x) {
    const nb__conv2d_state *s = NB__STATE(nb__conv2d_state, m);
    return nb_conv2d(x, s->weight, s->bias, &s->opts);
}

static void conv2d_describe(const nb_module *m, nb_attrs *d) {
    const nb__conv2d_state *s = NB__STATE(nb__conv2d_state, m);
    const nb_conv2d_opts *o = &s->opts;
    conv_describe_common(d, s->in_channels, s->out_channels, s->kernel, o->stride, o->padding, o->same,
                         o->dilation, NULL, o->groups, s->bias != NULL);
}

const nb_module_class nb__conv2d_class = {.name = "Conv2d", .forward = conv2d_forward,
                                          .describe = conv2d_describe};

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
    nb_module *m = nb_module_new(&nb__conv2d_class, sizeof(nb__conv2d_state));
    if (!m) return NULL;
    nb__conv2d_state *s = NB__STATE(nb__conv2d_state, m);
    *s = (nb__conv2d_state){.in_channels = in_channels, .out_channels = out_channels, .kernel = {kh, kw},
                            .opts = o};
    if (!add_conv_params(m, (int64_t[]){out_channels, in_channels / o.groups, kh, kw}, out_channels, bias,
                         &s->weight, &s->bias)) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

/* ---- ConvTranspose2d */

static nb_tensor *conv_transpose2d_forward(nb_module *m, nb_tensor *x) {
    const nb__conv_transpose2d_state *s = NB__STATE(nb__conv_transpose2d_state, m);
    return nb_conv_transpose2d(x, s->weight, s->bias, &s->opts);
}

static void conv_transpose2d_describe(const nb_module *m, nb_attrs *d) {
    const nb__conv_transpose2d_state *s = NB__STATE(nb__conv_transpose2d_state, m);
    const nb_conv_transpose2d_opts *o = &s->opts;
    conv_describe_common(d, s->in_channels, s->out_channels, s->kernel, o->stride, o->padding, false,
                         o->dilation, o->output_padding, o->groups, s->bias != NULL);
}

const nb_module_class nb__conv_transpose2d_class = {.name = "ConvTranspose2d",
                                                    .forward = conv_transpose2d_forward,
                                                    .describe = conv_transpose2d_describe};

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
    nb_module *m = nb_module_new(&nb__conv_transpose2d_class, sizeof(nb__conv_transpose2d_state));
    if (!m) return NULL;
    nb__conv_transpose2d_state *s = NB__STATE(nb__conv_transpose2d_state, m);
    *s = (nb__conv_transpose2d_state){.in_channels = in_channels, .out_channels = out_channels,
                                      .kernel = {kh, kw}, .opts = o};
    if (!add_conv_params(m, (int64_t[]){in_channels, out_channels / o.groups, kh, kw}, out_channels, bias,
                         &s->weight, &s->bias)) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

/* ---- MaxPool2d and AvgPool2d: the options, with the stride set (0 means the kernel) */

typedef struct {
    nb_pool2d_opts opts;
} pool_state;

static nb_tensor *maxpool2d_forward(nb_module *m, nb_tensor *x) {
    return nb_max_pool2d(x, &NB__STATE(pool_state, m)->opts);
}

static nb_tensor *avgpool2d_forward(nb_module *m, nb_tensor *x) {
    return nb_avg_pool2d(x, &NB__STATE(pool_state, m)->opts);
}

/* Sizes as torch prints what it was given: an int when both sides agree. */
static void pool_describe_sizes(const nb_pool2d_opts *o, nb_attrs *d) {
    pair_attr(d, "kernel_size", o->kernel)->flags = NB_ATTR_SHORT;
    pair_attr(d, "stride", o->stride)->flags = NB_ATTR_SHORT;
    pair_attr(d, "padding", o->padding)->flags = NB_ATTR_SHORT;
}

static void maxpool2d_describe(const nb_module *m, nb_attrs *d) {
    const nb_pool2d_opts *o = &NB__STATE(pool_state, m)->opts;
    pool_describe_sizes(o, d);
    nb_attrs_int(d, "dilation", 1);
    nb_attrs_bool(d, "ceil_mode", o->ceil_mode);
}

/* torch's AvgPool2d prints the sizes only; the rest is for exporters. */
static void avgpool2d_describe(const nb_module *m, nb_attrs *d) {
    const nb_pool2d_opts *o = &NB__STATE(pool_state, m)->opts;
    pool_describe_sizes(o, d);
    nb_attrs_bool(d, "ceil_mode", o->ceil_mode)->flags = NB_ATTR_NO_REPR;
    nb_attrs_bool(d, "count_include_pad", !o->exclude_pad)->flags = NB_ATTR_NO_REPR;
}

static const nb_module_class maxpool2d_class = {.name = "MaxPool2d", .forward = maxpool2d_forward,
                                                .describe = maxpool2d_describe};
static const nb_module_class avgpool2d_class = {.name = "AvgPool2d", .forward = avgpool2d_forward,
                                                .describe = avgpool2d_describe};

static nb_module *pool_new(const nb_module_class *cls, nb_pool2d_opts o) {
    const char *type = cls->name;
    if (!check_pair(type, "kernel_size", o.kernel, 1) || !check_pair(type, "stride", o.stride, 0) ||
        !check_pair(type, "padding", o.padding, 0))
        return NULL;
    if (2 * o.padding[0] > o.kernel[0] || 2 * o.padding[1] > o.kernel[1])
        return nb__fail(NB_ERR_ARG, "%s: padding (%d, %d) should be at most half of the kernel size (%d, %d)",
                        type, o.padding[0], o.padding[1], o.kernel[0], o.kernel[1]);
    for (int k = 0; k < 2; k++) o.stride[k] = o.stride[k] ? o.stride[k] : o.kernel[k];
    nb_module *m = nb_module_new(cls, sizeof(pool_state));
    if (m) NB__STATE(pool_state, m)->opts = o;
    return m;
}

nb_module *nb_max_pool2d_new(nb_pool2d_opts opts) { return pool_new(&maxpool2d_class, opts); }
nb_module *nb_avg_pool2d_new(nb_pool2d_opts opts) { return pool_new(&avgpool2d_class, opts); }

/* ---- AdaptiveAvgPool2d(1) */

static nb_tensor *global_avgpool2d_forward(nb_module *m, nb_tensor *x) {
    (void)m;
    return nb_global_avg_pool2d(x);
}

static void global_avgpool2d_describe(const nb_module *m, nb_attrs *d) {
    (void)m;
    nb_attrs_int(d, "output_size", 1);
}

static const nb_module_class global_avgpool2d_class = {.name = "AdaptiveAvgPool2d",
                                                       .forward = global_avgpool2d_forward,
                                                       .describe = global_avgpool2d_describe};

nb_module *nb_global_avg_pool2d_new(void) { return nb_module_new(&global_avgpool2d_class, 0); }

/* ---- Upsample */

typedef struct {
    int scale;
    bool bilinear;
} upsample_state;

static nb_tensor *upsample_forward(nb_module *m, nb_tensor *x) {
    const upsample_state *s = NB__STATE(upsample_state, m);
    return s->bilinear ? nb_upsample_bilinear2d(x, s->scale, s->scale, false)
                       : nb_upsample_nearest2d(x, s->scale, s->scale);
}

/* torch stores scale_factor as a float: "scale_factor=2.0, mode=nearest". */
static void upsample_describe(const nb_module *m, nb_attrs *d) {
    const upsample_state *s = NB__STATE(upsample_state, m);
    nb_attrs_float(d, "scale_factor", (float)s->scale);
    nb_attrs_string(d, "mode", s->bilinear ? "bilinear" : "nearest");
}

static const nb_module_class upsample_class = {.name = "Upsample", .forward = upsample_forward,
                                               .describe = upsample_describe};

nb_module *nb_upsample_new(int scale, bool bilinear) {
    if (scale < 1) return nb__fail(NB_ERR_ARG, "Upsample: scale must be a positive integer, got %d", scale);
    nb_module *m = nb_module_new(&upsample_class, sizeof(upsample_state));
    if (m) *NB__STATE(upsample_state, m) = (upsample_state){scale, bilinear};
    return m;
}

/* ---- Dropout2d */

/* A 4-D input [N, C, H, W] draws a mask [N, C, 1, 1]; a 3-D one is a single sample [C, H, W]
 * (nabla/conv.h's convention) and draws [C, 1, 1]. */
static nb_tensor *dropout2d_forward(nb_module *m, nb_tensor *x) {
    if (m->training && NB__STATE(nb__dropout_state, m)->p != 0.0f && x->ndim != 3 && x->ndim != 4)
        return nb__fail(NB_ERR_SHAPE, "Dropout2d: expected [N, C, H, W] or [C, H, W], got %s", NB_SHP(x));
    int64_t shape[4] = {1, 1, 1, 1};
    for (int d = 0; d < x->ndim - 2; d++) shape[d] = x->shape[d]; /* the dims a mask entry is drawn for */
    return nb__dropout(m, x, x->ndim, shape);
}

static const nb_module_class dropout2d_class = {.name = "Dropout2d", .forward = dropout2d_forward,
                                                .describe = nb__dropout_describe};

nb_module *nb_dropout2d_new(float p) { return nb__dropout_new(&dropout2d_class, p); }

/* ---- Unflatten */

typedef struct {
    int ndim;                      /* of the sample shape */
    int64_t shape[NB_MAX_DIMS - 1];
} unflatten_state;

static nb_tensor *unflatten_forward(nb_module *m, nb_tensor *x) {
    const unflatten_state *s = NB__STATE(unflatten_state, m);
    int64_t per_sample = nb__numel(s->ndim, s->shape);
    if (x->ndim < 1 || nb__numel(x->ndim - 1, x->shape + 1) != per_sample)
        return nb__fail(NB_ERR_SHAPE, "Unflatten: input %s does not hold %lld values per sample for "
                        "the shape %s", NB_SHP(x), (long long)per_sample, nb__shape_str(s->ndim, s->shape));
    int64_t shape[NB_MAX_DIMS];
    shape[0] = x->shape[0];
    memcpy(shape + 1, s->shape, sizeof(int64_t) * (size_t)s->ndim);
    return nb_reshape(x, s->ndim + 1, shape);
}

/* torch: "dim=1, unflattened_size=(1, 28, 28)", a one-element tuple as "(784,)". */
static void unflatten_describe(const nb_module *m, nb_attrs *d) {
    const unflatten_state *s = NB__STATE(unflatten_state, m);
    nb_attrs_int(d, "dim", 1);
    nb_attrs_ints(d, "unflattened_size", s->ndim, s->shape);
}

static const nb_module_class unflatten_class = {.name = "Unflatten", .forward = unflatten_forward,
                                                .describe = unflatten_describe};

nb_module *nb_unflatten_new(int ndim, const int64_t *shape) {
    if (ndim < 1 || ndim > NB_MAX_DIMS - 1 || !shape)
        return nb__fail(NB_ERR_ARG, "Unflatten: needs 1 to %d sizes, got %d", NB_MAX_DIMS - 1, ndim);
    for (int d = 0; d < ndim; d++)
        if (shape[d] <= 0)
            return nb__fail(NB_ERR_ARG, "Unflatten: sizes must be positive, got %s", nb__shape_str(ndim, shape));
    nb_module *m = nb_module_new(&unflatten_class, sizeof(unflatten_state));
    if (!m) return NULL;
    unflatten_state *s = NB__STATE(unflatten_state, m);
    s->ndim = ndim;
    memcpy(s->shape, shape, sizeof(int64_t) * (size_t)ndim);
    return m;
}
