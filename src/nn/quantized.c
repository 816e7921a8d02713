/*
 * quantized.c — post-training quantization (nabla/quant.h): the quantized Linear and Conv2d
 * modules, and the prepare / calibrate / convert steps that make them from a float model.
 *
 * A quantized layer keeps torch's codes while its forward takes and returns float32 (the
 * header's PTQ section says why that is exact), except between two static layers joined by
 * views only (Flatten, Unflatten, Identity): there the first returns its uint8 codes and the
 * second takes them as they are, its input qparams being the first's output qparams, which
 * gives the codes a dequantize and quantize again would, without either pass.  The walk over the model (walk) finds the
 * layers ("sites"): a Linear or Conv2d, the BatchNorm after it in a Sequential (folded at
 * prepare) and the ReLU after those (fused); and for each site, which earlier site's output
 * codes reach its input unchanged (`from`), or -1 when it observes its own input.  Observers are
 * the library's (nb_observer_new), fed by forward hooks; weights are quantized on the host at
 * convert with the qparams a MinMaxObserver of the weight gives, in float32 as torch's
 * quantize_per_channel: q = clamp(z + nearbyint(w (1 / s)), qmin, qmax).  A QAT Linear
 * (nb_qat_linear_new) is a site too, whose weight qparams and output qparams are its
 * FakeQuantizes' (frozen or not, as they stand): the int8 layer PTQ makes with those qparams.
 */
#include "nabla/quant.h"
#include "quant_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_NAME 256

/* ---- the quantized layer module */

typedef struct {
    bool conv, dynamic, relu, pooled;
    bool codes_out; /* returns its uint8 codes: the next quantized layer takes them */
    nb_conv2d_opts opts; /* conv */
    nb_pool2d_opts pool; /* pooled: the MaxPool2d after it, run on its codes */
    nb_tensor *weight, *weight_scale, *weight_zero_point, *bias;
    nb_tensor *input_scale, *input_zero_point, *scale, *zero_point; /* NULL when dynamic */
    double max_abs_error, mse; /* of the weight, at conversion; NaN for a bare structure */
} qlayer_state;

static nb_status read_qparams(const nb_tensor *s, const nb_tensor *z, float *scale, int *zp) {
    int32_t zi = 0;
    nb_status st = nb__copy_logical(scale, s);
    if (st == NB_OK) st = nb__copy_logical(&zi, z);
    *zp = zi;
    return st;
}

/* Dynamic quantization's qparams of x: torch's MinMaxObserver over x, quint8 affine. */
static nb_status dynamic_qparams(nb_tensor *x, float *scale, int *zp) {
    nb_tensor *lo = nb_min(x), *hi = lo ? nb_max(x) : NULL;
    float mn = lo && hi ? nb_item(lo) : NAN, mx = hi ? nb_item(hi) : NAN;
    nb_tensor_free(lo);
    nb_tensor_free(hi);
    if (!hi) return nb_error_code();
    if (!isfinite(mn) || !isfinite(mx))
        return nb__fail_status(NB_ERR_ARG, "quantized layer: input holds %g, not finite",
                               isfinite(mn) ? mx : mn);
    float min_neg = fminf(mn, 0.0f), max_pos = fmaxf(mx, 0.0f);
    *scale = fmaxf((max_pos - min_neg) / 255.0f, 0x1p-23f);
    *zp = (int)fminf(fmaxf(-nearbyintf(min_neg / *scale), 0.0f), 255.0f);
    return NB_OK;
}

static nb_tensor *qlayer_forward(nb_module *m, nb_tensor *x) {
    qlayer_state *s = NB__STATE(qlayer_state, m);
    nb_qlayer_params p = {.weight = s->weight, .weight_scale = s->weight_scale,
                          .weight_zero_point = s->weight_zero_point, .bias = s->bias,
                          .relu = s->relu};
    nb_status st = s->dynamic ? dynamic_qparams(x, &p.in_scale, &p.in_zero_point)
                              : read_qparams(s->input_scale, s->input_zero_point, &p.in_scale,
                                             &p.in_zero_point);
    if (st == NB_OK && !s->dynamic)
        st = read_qparams(s->scale, s->zero_point, &p.out_scale, &p.out_zero_point);
    if (st != NB_OK) return NULL;
    /* uint8 input: the codes of the quantized layer before, in this layer's input qparams */
    bool codes_in = !s->dynamic && nb_dtype_of(x) == NB_U8;
    nb_tensor *xq = codes_in ? x : nb_quantize_per_tensor(x, p.in_scale, p.in_zero_point, NB_U8);
    nb_tensor *y = s->conv ? nb_quantized_conv2d(xq, &p, &s->opts, s->pooled ? &s->pool : NULL)
                           : nb_quantized_linear(xq, &p);
    if (!codes_in) nb_tensor_free(xq);
    if (s->dynamic || s->codes_out || !y) return y;
    nb_tensor *out = nb_dequantize_per_tensor(y, p.out_scale, p.out_zero_point);
    nb_tensor_free(y);
    return out;
}

static void qlayer_describe(const nb_module *m, nb_attrs *d) {
    const qlayer_state *s = NB__STATE(qlayer_state, m);
    const int64_t *w = nb_shape(s->weight);
    nb_attrs_int(d, s->conv ? "in_channels" : "in_features", w[1]);
    nb_attrs_int(d, s->conv ? "out_channels" : "out_features", w[0]);
    if (s->conv) nb_attrs_ints(d, "kernel_size", 2, w + 2);
    if (s->pooled)
        nb_attrs_ints(d, "pool_kernel_size", 2, (const int64_t[]){s->pool.kernel[0], s->pool.kernel[1]});
    nb_attrs_bool(d, "per_channel", nb_numel(s->weight_scale) > 1);
    if (!s->dynamic) {
        nb_attrs_float(d, "scale", nb_item(s->scale));
        nb_attrs_int(d, "zero_point", (int64_t)nb_item(s->zero_point));
    }
}

#define QCLASS(name_) {.name = name_, .forward = qlayer_forward, .describe = qlayer_describe}
/* [conv][dynamic][relu], torch's class names (a dynamic layer has no fused ReLU in torch; ours
 * applies it to the float result) */
static const nb_module_class qlayer_classes[2][2][2] = {
    {{QCLASS("QuantizedLinear"), QCLASS("QuantizedLinearReLU")},
     {QCLASS("DynamicQuantizedLinear"), QCLASS("DynamicQuantizedLinearReLU")}},
    {{QCLASS("QuantizedConv2d"), QCLASS("QuantizedConvReLU2d")},
     {QCLASS("DynamicQuantizedConv2d"), QCLASS("DynamicQuantizedConvReLU2d")}},
};
#undef QCLASS

static qlayer_state *qlayer_of(const nb_module *m) {
    const nb_module_class *cls = nb_module_class_of(m);
    for (int i = 0; i < 8; i++)
        if (cls == &qlayer_classes[i / 4][(i / 2) % 2][i % 2]) return NB__STATE(qlayer_state, m);
    return NULL;
}

/* A layer to quantize: a float Linear or Conv2d, or a QAT Linear (qat set, parts filled). */
typedef struct {
    bool conv, qat;
    nb_tensor *weight, *bias;
    nb__qat_parts parts;
} layer_view;

static bool view_of(const nb_module *m, layer_view *v) {
    const nb_module_class *c = nb_module_class_of(m);
    *v = (layer_view){.conv = c == &nb__conv2d_class};
    if (c == &nb__conv2d_class) {
        v->weight = NB__STATE(nb__conv2d_state, m)->weight, v->bias = NB__STATE(nb__conv2d_state, m)->bias;
    } else if (c == &nb__linear_class) {
        v->weight = NB__STATE(nb__linear_state, m)->weight, v->bias = NB__STATE(nb__linear_state, m)->bias;
    } else if (nb__qat_linear_parts(m, &v->parts)) {
        v->qat = true, v->weight = v->parts.weight, v->bias = v->parts.bias;
    } else {
        return false;
    }
    return true;
}

/* A quantized layer for `layer` (a layer_view's module), its buffers zero (scales 1); pool:
 * the max pool it runs on its codes, or NULL. */
static nb_module *qlayer_new(const nb_module *layer, bool per_channel, bool dynamic, bool relu,
                             const nb_pool2d_opts *pool) {
    layer_view v;
    view_of(layer, &v);
    bool conv = v.conv, has_bias = v.bias != NULL;
    if (v.qat) per_channel = nb_numel(v.parts.weight_scale) > 1;
    nb_module *m = nb_module_new(&qlayer_classes[conv][dynamic][relu], sizeof(qlayer_state));
    if (!m) return NULL;
    qlayer_state *s = NB__STATE(qlayer_state, m);
    const nb_tensor *w = v.weight;
    *s = (qlayer_state){.conv = conv, .dynamic = dynamic, .relu = relu, .max_abs_error = NAN,
                        .mse = NAN};
    if (conv) s->opts = NB__STATE(nb__conv2d_state, layer)->opts;
    if (pool) s->pooled = true, s->pool = *pool;
    int64_t out = nb_shape(w)[0], nq = per_channel ? out : 1, one = 1;
    s->weight = nb_module_add_buffer(m, "weight", NB_I8, nb_ndim(w), nb_shape(w));
    s->weight_scale = s->weight ? nb_module_add_buffer(m, "weight_scale", NB_F32, 1, &nq) : NULL;
    s->weight_zero_point =
        s->weight_scale ? nb_module_add_buffer(m, "weight_zero_point", NB_I32, 1, &nq) : NULL;
    bool ok = s->weight_zero_point != NULL;
    if (ok && has_bias) ok = (s->bias = nb_module_add_buffer(m, "bias", NB_F32, 1, &out)) != NULL;
    if (ok && !dynamic) {
        s->input_scale = nb_module_add_buffer(m, "input_scale", NB_F32, 1, &one);
        s->input_zero_point = nb_module_add_buffer(m, "input_zero_point", NB_I32, 1, &one);
        s->scale = nb_module_add_buffer(m, "scale", NB_F32, 1, &one);
        s->zero_point = nb_module_add_buffer(m, "zero_point", NB_I32, 1, &one);
        ok = s->zero_point && s->input_scale && s->input_zero_point && s->scale &&
             nb_fill(s->input_scale, 1.0f) == NB_OK && nb_fill(s->scale, 1.0f) == NB_OK;
    }
    if (ok) ok = nb_fill(s->weight_scale, 1.0f) == NB_OK;
    if (!ok) {
        nb_module_free(m);
        return NULL;
    }
    m->training = false;
    return m;
}

/* ---- the walk: sites of a model */

typedef struct {
    nb_module *parent;       /* holds the layer as child `index` */
    int index, bn, relu, pool; /* child indices in parent of the layer, its norm, its ReLU and
                                * the MaxPool2d it runs on its codes (-1: none) */
    nb_pool2d_opts pool_opts;
    int from;                /* the site whose output codes are this one's input; -1: its own */
    bool codes_in, codes_out; /* codes passed as they are from `from` (views only between) */
    nb_module *in_obs, *out_obs;   /* observers: in_obs NULL when from >= 0 or dynamic */
    nb_module *in_hooked, *out_hooked; /* the modules whose hooks feed them */
    int in_handle, out_handle;
} site;

struct nb_ptq {
    nb_module *model;
    nb_ptq_opts o;
    int n, cap;
    site *sites;
    int64_t batches;
    bool views_only; /* the walk: only views since the last site (codes can pass unchanged) */
};

static bool is_type(const nb_module *m, const char *name) {
    return strcmp(nb_module_type(m), name) == 0;
}

/* Modules through which uint8 codes pass unchanged (torch runs them on quint8 tensors with the
 * same qparams). */
static bool keeps_codes(const nb_module *m) {
    static const char *const types[] = {"ReLU", "Flatten", "Unflatten", "MaxPool2d",
                                        "Dropout", "Dropout2d", "Identity"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (is_type(m, types[i])) return true;
    return false;
}

/* Modules that only reshape: uint8 codes pass through them as they are. */
static bool is_view(const nb_module *m) {
    return is_type(m, "Flatten") || is_type(m, "Unflatten") || is_type(m, "Identity");
}

/* The options of a MaxPool2d of dilation 1 (from its description); false for another module. */
static bool max_pool_opts(const nb_module *m, nb_pool2d_opts *o) {
    nb_attrs d = {0};
    if (!is_type(m, "MaxPool2d") || nb_module_describe(m, &d) != NB_OK) return false;
    *o = (nb_pool2d_opts){0};
    for (int i = 0; i < d.n; i++) {
        const nb_attr *a = &d.attr[i];
        int *pair = !strcmp(a->name, "kernel_size") ? o->kernel
                    : !strcmp(a->name, "stride")    ? o->stride
                    : !strcmp(a->name, "padding")   ? o->padding
                                                    : NULL;
        for (int k = 0; pair && k < 2; k++) pair[k] = (int)a->ints[a->n == 2 ? k : 0];
        if (!strcmp(a->name, "ceil_mode")) o->ceil_mode = a->ints[0] != 0;
        if (!strcmp(a->name, "dilation") && a->ints[0] != 1) return false;
    }
    return true;
}

static nb_status push_site(nb_ptq *p, site s) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 8;
        site *grown = nb__alloc(sizeof(site) * (size_t)cap);
        if (!grown) return nb_error_code();
        if (p->n) memcpy(grown, p->sites, sizeof(site) * (size_t)p->n);
        nb__dealloc(p->sites, sizeof(site) * (size_t)p->cap);
        p->sites = grown, p->cap = cap;
    }
    p->sites[p->n++] = s;
    return NB_OK;
}

/* Replaces child i of parent by repl (freeing the old one); repl NULL keeps the error. */
static nb_status replace_child(nb_module *parent, int i, nb_module *repl) {
    if (!repl) return nb_error_code();
    nb_module_free(nb__module_swap_child(parent, i, repl));
    return NB_OK;
}

/* Folds the norm of a site into its layer, the norm becoming an Identity. */
static nb_status fold_norm(site *s) {
    nb_module *layer = NB__CHILD(s->parent, s->index), *bn = NB__CHILD(s->parent, s->bn);
    nb_module *folded = nb_module_class_of(layer) == &nb__conv2d_class
                            ? nb_conv2d_fold_batchnorm(layer, bn)
                            : nb_linear_fold_batchnorm(layer, bn);
    if (folded) folded->training = false;
    nb_status st = replace_child(s->parent, s->index, folded);
    if (st == NB_OK) st = replace_child(s->parent, s->bn, nb_activation_new(NB_ACT_IDENTITY, 0.0f));
    return st;
}

/* The sites among m's children (recursively); in a Sequential, chain is the site whose output
 * codes reach the next child, and the return value the chain after m (-1 outside a Sequential),
 * or -2 on error. */
static int walk(nb_ptq *p, nb_module *m, int chain) {
    bool seq = is_type(m, "Sequential");
    /* where a BatchNorm right after a layer is applied to that layer's output: a chain, and
     * the ResNet blocks, whose bodies run conv_i, bn_i in the order of their children */
    bool folds = seq || is_type(m, "BasicBlock") || is_type(m, "Bottleneck");
    if (!seq) chain = -1;
    int n = m->children.n;
    for (int i = 0; i < n; i++) {
        nb_module *c = NB__CHILD(m, i);
        layer_view v;
        if (view_of(c, &v)) {
            site s = {.parent = m, .index = i, .bn = -1, .relu = -1, .pool = -1, .from = chain,
                      .codes_in = chain >= 0 && p->views_only};
            const nb_module_class *bn_cls = nb_module_class_of(c) == &nb__conv2d_class
                                                ? &nb__batchnorm2d_class
                                                : &nb__batchnorm1d_class;
            int next = i + 1;
            if (folds && !v.qat && next < n && nb_module_class_of(NB__CHILD(m, next)) == bn_cls)
                s.bn = next++;
            if (seq && next < n && is_type(NB__CHILD(m, next), "ReLU")) s.relu = next++;
            if (seq && next < n && !p->o.dynamic && nb_module_class_of(c) == &nb__conv2d_class &&
                max_pool_opts(NB__CHILD(m, next), &s.pool_opts))
                s.pool = next++;
            if ((s.bn >= 0 && fold_norm(&s) != NB_OK) || push_site(p, s) != NB_OK) return -2;
            chain = seq ? p->n - 1 : -1;
            p->views_only = true;
            i = next - 1;
        } else if (c->children.n > 0) {
            int after = walk(p, c, chain);
            if (after == -2) return -2;
            chain = seq ? after : -1;
        } else if (!keeps_codes(c)) {
            chain = -1;
        } else if (!is_view(c)) {
            p->views_only = false;
        }
    }
    return seq ? chain : -1;
}

static nb_status check_opts(const nb_ptq_opts *o) {
    if (!o) return nb__fail_status(NB_ERR_NULL, "ptq: NULL options");
    int bits = o->bits ? o->bits : 8;
    if (bits < 2 || bits > 8)
        return nb__fail_status(NB_ERR_ARG, "ptq: bits %d is outside [2, 8]", o->bits);
    if ((unsigned)o->act_observer >= NB_OBSERVER_COUNT)
        return nb__fail_status(NB_ERR_ARG, "ptq: unknown observer kind %d", (int)o->act_observer);
    return NB_OK;
}

/* The sites of model, its norms folded; NB_ERR_ARG when there is none. */
static nb_status find_sites(nb_ptq *p, nb_module *model, const nb_ptq_opts *o) {
    *p = (nb_ptq){.model = model, .o = *o};
    if (!p->o.bits) p->o.bits = 8;
    nb_module_train(model, false);
    if (walk(p, model, -1) == -2) return nb_error_code();
    for (int i = 0; i < p->n; i++) { /* static layers pass codes along views */
        site *s = &p->sites[i];
        s->codes_in = s->codes_in && !p->o.dynamic;
        if (s->codes_in) p->sites[s->from].codes_out = true;
    }
    if (p->n == 0)
        return nb__fail_status(NB_ERR_ARG, "ptq: the model (%s) has no Linear or Conv2d in a "
                               "module that holds it", nb_module_type(model));
    return NB_OK;
}

static void ptq_release(nb_ptq *p) {
    for (int i = 0; i < p->n; i++) {
        nb_module_free(p->sites[i].in_obs);
        nb_module_free(p->sites[i].out_obs);
    }
    nb__dealloc(p->sites, sizeof(site) * (size_t)p->cap);
    p->sites = NULL, p->n = p->cap = 0;
}

/* ---- observing through hooks */

static nb_status observe(nb_module *obs, nb_tensor *x) {
    nb_tensor *y = nb_module_forward(obs, x);
    nb_tensor_free(y);
    return y ? NB_OK : nb_error_code();
}

static nb_status observe_input(nb_module *m, int n_in, nb_tensor **in, void *ctx) {
    (void)m, (void)n_in;
    return observe(ctx, in[0]);
}

static nb_status observe_output(nb_module *m, int n_in, nb_tensor *const *in, int n_out,
                                nb_tensor **out, void *ctx) {
    (void)m, (void)n_in, (void)in, (void)n_out;
    return observe(ctx, out[0]);
}

static nb_module *act_observer(const nb_ptq_opts *o) {
    nb_qscheme q = {.kind = o->act_observer, .bits = 8,
                    .averaging_constant = o->averaging_constant, .percentile = o->percentile};
    return nb_observer_new(&q);
}

static nb_status attach(site *s, const nb_ptq_opts *o) {
    nb_module *layer = NB__CHILD(s->parent, s->index);
    if (s->from < 0) {
        s->in_obs = act_observer(o);
        if (!s->in_obs) return nb_error_code();
        s->in_hooked = layer;
        s->in_handle = nb_module_register_forward_pre_hook(layer, observe_input, s->in_obs);
        if (!s->in_handle) return nb_error_code();
    }
    layer_view v;
    if (view_of(layer, &v) && v.qat) return NB_OK; /* its activation_post_process has them */
    s->out_obs = act_observer(o);
    if (!s->out_obs) return nb_error_code();
    s->out_hooked = s->relu >= 0 ? NB__CHILD(s->parent, s->relu) : layer;
    s->out_handle = nb_module_register_forward_hook(s->out_hooked, observe_output, s->out_obs);
    return s->out_handle ? NB_OK : nb_error_code();
}

static void detach(site *s) {
    if (s->in_handle) nb_module_remove_hook(s->in_hooked, s->in_handle);
    if (s->out_handle) nb_module_remove_hook(s->out_hooked, s->out_handle);
    s->in_handle = s->out_handle = 0;
}

nb_ptq *nb_ptq_new(nb_module *model, const nb_ptq_opts *opts) {
    if (!model) return nb__fail(NB_ERR_NULL, "ptq: NULL model");
    if (check_opts(opts) != NB_OK) return NULL;
    nb_ptq *p = nb__alloc(sizeof *p);
    if (!p) return NULL;
    nb_status st = find_sites(p, model, opts);
    for (int i = 0; st == NB_OK && !p->o.dynamic && i < p->n; i++) st = attach(&p->sites[i], &p->o);
    if (st != NB_OK) {
        nb_ptq_free(p);
        return NULL;
    }
    return p;
}

void nb_ptq_free(nb_ptq *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) detach(&p->sites[i]);
    ptq_release(p);
    nb__dealloc(p, sizeof *p);
}

nb_status nb_ptq_calibrate(nb_ptq *p, nb_tensor *x) {
    if (!p || !x) return nb__fail_status(NB_ERR_NULL, "ptq_calibrate: NULL argument");
    bool was = nb_set_grad_enabled(false);
    nb_tensor *y = nb_module_forward(p->model, x);
    nb_set_grad_enabled(was);
    nb_tensor_free(y);
    if (!y) return nb_error_code();
    p->batches++;
    return NB_OK;
}

/* ---- convert */

/* An observer's per-tensor qparams into a quantized layer's buffers. */
static nb_status store_qparams(nb_module *obs, nb_tensor *scale, nb_tensor *zero_point) {
    nb_tensor *s, *z;
    nb_status st = nb_observer_qparams(obs, &s, &z);
    if (st != NB_OK) return st;
    st = nb_copy(scale, s);
    if (st == NB_OK) st = nb_copy(zero_point, z);
    nb_tensor_free(s);
    nb_tensor_free(z);
    return st;
}

/* The weight w [out, ...] quantized into q's buffers with the qparams sc, zp ([1] or [out],
 * float32) in [qmin, qmax], and the error of the result. */
static nb_status quantize_weight(qlayer_state *q, const nb_tensor *w, const nb_tensor *s,
                                 const nb_tensor *z, int qmin, int qmax) {
    int64_t n = nb_numel(w), out = nb_shape(w)[0], row = n / out, nq = nb_numel(s);
    size_t bytes = sizeof(float) * (size_t)(n + 2 * nq) + sizeof(int32_t) * (size_t)nq + (size_t)n;
    float *wf = nb__alloc(bytes);
    if (!wf) return nb_error_code();
    float *sc = wf + n, *zf = sc + nq;
    int32_t *zi = (int32_t *)(zf + nq);
    int8_t *qw = (int8_t *)(zi + nq);
    nb_status st = nb__copy_logical(wf, w);
    if (st == NB_OK) st = nb__copy_logical(sc, s);
    if (st == NB_OK) st = nb__copy_logical(zf, z);
    double max_err = 0.0, sq = 0.0;
    for (int64_t c = 0; st == NB_OK && c < out; c++) {
        int64_t k = nq > 1 ? c : 0;
        float inv = 1.0f / sc[k], zp = zf[k];
        zi[k] = (int32_t)zp;
        for (int64_t j = c * row; j < (c + 1) * row; j++) {
            float v = fminf(fmaxf(zp + nearbyintf(wf[j] * inv), (float)qmin), (float)qmax);
            qw[j] = (int8_t)v;
            double e = fabs((double)((v - zp) * sc[k]) - wf[j]);
            max_err = e > max_err ? e : max_err;
            sq += e * e;
        }
    }
    if (st == NB_OK) st = nb__store_logical(q->weight, qw);
    if (st == NB_OK) st = nb__store_logical(q->weight_scale, sc);
    if (st == NB_OK) st = nb__store_logical(q->weight_zero_point, zi);
    q->max_abs_error = max_err;
    q->mse = n ? sq / (double)n : 0.0;
    nb__dealloc(wf, bytes);
    return st;
}

/* The weight of a float layer quantized with `bits` and the qparams a MinMax observer of it
 * gives (per channel along dim 0, or per tensor; symmetric or affine, signed). */
static nb_status quantize_float_weight(qlayer_state *q, nb_tensor *w, const nb_ptq_opts *o) {
    int64_t out = nb_shape(w)[0];
    nb_qscheme sch = {.kind = NB_OBSERVER_MINMAX, .bits = o->bits, .is_signed = true,
                      .symmetric = o->symmetric, .per_channel = o->per_channel, .channels = out};
    int qmin, qmax;
    nb_qscheme_range(&sch, &qmin, &qmax);
    nb_module *obs = nb_observer_new(&sch);
    nb_tensor *s = NULL, *z = NULL;
    nb_status st = obs ? observe(obs, w) : nb_error_code();
    if (st == NB_OK) st = nb_observer_qparams(obs, &s, &z);
    nb_module_free(obs);
    if (st == NB_OK) st = quantize_weight(q, w, s, z, qmin, qmax);
    nb_tensor_free(s);
    nb_tensor_free(z);
    return st;
}

/* The output qparams of site s into (scale, zero_point): its observer's, or a QAT Linear's. */
static nb_status output_qparams(const site *s, nb_tensor *scale, nb_tensor *zero_point) {
    if (s->out_obs) return store_qparams(s->out_obs, scale, zero_point);
    layer_view v;
    view_of(NB__CHILD(s->parent, s->index), &v);
    nb_status st = nb_copy(scale, v.parts.scale);
    return st == NB_OK ? nb_copy(zero_point, v.parts.zero_point) : st;
}

/* The quantized layer of site s (its buffers filled when p has calibrated), put in place of
 * the layer, its ReLU and pool becoming Identities. */
static nb_status swap_site(const nb_ptq *p, site *s, bool fill) {
    nb_module *layer = NB__CHILD(s->parent, s->index);
    nb_module *qm = qlayer_new(layer, p->o.per_channel, p->o.dynamic, s->relu >= 0,
                               s->pool >= 0 ? &s->pool_opts : NULL);
    if (!qm) return nb_error_code();
    qlayer_state *q = NB__STATE(qlayer_state, qm);
    q->codes_out = s->codes_out;
    layer_view v;
    view_of(layer, &v);
    nb_status st = NB_OK;
    if (fill) {
        st = v.qat ? quantize_weight(q, v.weight, v.parts.weight_scale, v.parts.weight_zero_point,
                                     v.parts.weight_qmin, v.parts.weight_qmax)
                   : quantize_float_weight(q, v.weight, &p->o);
        if (st == NB_OK && v.bias) st = nb_copy(q->bias, v.bias);
        if (st == NB_OK && !p->o.dynamic)
            st = s->from >= 0 ? output_qparams(&p->sites[s->from], q->input_scale, q->input_zero_point)
                              : store_qparams(s->in_obs, q->input_scale, q->input_zero_point);
        if (st == NB_OK && !p->o.dynamic) st = output_qparams(s, q->scale, q->zero_point);
    }
    if (st != NB_OK) {
        nb_module_free(qm);
        return st;
    }
    detach(s);
    st = replace_child(s->parent, s->index, qm);
    if (st == NB_OK && s->relu >= 0)
        st = replace_child(s->parent, s->relu, nb_activation_new(NB_ACT_IDENTITY, 0.0f));
    if (st == NB_OK && s->pool >= 0)
        st = replace_child(s->parent, s->pool, nb_activation_new(NB_ACT_IDENTITY, 0.0f));
    return st;
}

nb_status nb_ptq_convert(nb_ptq *p) {
    if (!p) return nb__fail_status(NB_ERR_NULL, "ptq_convert: NULL handle");
    if (!p->o.dynamic && p->batches == 0)
        return nb__fail_status(NB_ERR_ARG, "ptq: no calibration batch was observed (calibrate "
                               "on at least one batch, or quantize dynamically)");
    if (p->n == 0) return nb__fail_status(NB_ERR_ARG, "ptq: already converted");
    /* last first: a site reads the output qparams of the one before it, which a QAT Linear
     * keeps in its own modules */
    nb_status st = NB_OK;
    for (int i = p->n - 1; st == NB_OK && i >= 0; i--) st = swap_site(p, &p->sites[i], true);
    ptq_release(p);
    return st;
}

nb_status nb_ptq_structure(nb_module *model, const nb_ptq_opts *opts) {
    if (!model) return nb__fail_status(NB_ERR_NULL, "ptq_structure: NULL model");
    if (check_opts(opts) != NB_OK) return nb_error_code();
    nb_ptq p;
    nb_status st = find_sites(&p, model, opts);
    for (int i = 0; st == NB_OK && i < p.n; i++) st = swap_site(&p, &p.sites[i], false);
    ptq_release(&p);
    return st;
}

/* ---- checks and reports over a converted model */

/* The full name of tensor t in root's state_dict, or "?". */
static const char *name_of(const nb_module *root, const nb_tensor *t) {
    const char *name;
    for (int i = 0; i < nb_module_num_buffers(root); i++)
        if (nb_module_buffer(root, i, &name) == t) return name;
    return "?";
}

static nb_status check_scales(const nb_module *root, const nb_tensor *t) {
    int64_t n = nb_numel(t);
    for (int64_t i = 0; i < n; i++) {
        float v = nb_get(t, nb_ndim(t) ? &i : NULL);
        if (!(isfinite(v) && v > 0.0f))
            return nb__fail_status(NB_ERR_ARG, "'%s'[%lld] = %g is not a positive finite scale",
                                   name_of(root, t), (long long)i, v);
    }
    return NB_OK;
}

static nb_status check_zero_points(const nb_module *root, const nb_tensor *t, int lo, int hi) {
    int64_t n = nb_numel(t);
    for (int64_t i = 0; i < n; i++) {
        float v = nb_get(t, nb_ndim(t) ? &i : NULL);
        if (!(v >= (float)lo && v <= (float)hi))
            return nb__fail_status(NB_ERR_ARG, "'%s'[%lld] = %g is outside [%d, %d]",
                                   name_of(root, t), (long long)i, v, lo, hi);
    }
    return NB_OK;
}

static nb_status check_tree(const nb_module *root, const nb_module *m) {
    const qlayer_state *s = qlayer_of(m);
    nb_status st = NB_OK;
    if (s) {
        st = check_scales(root, s->weight_scale);
        if (st == NB_OK) st = check_zero_points(root, s->weight_zero_point, -128, 127);
        if (st == NB_OK && !s->dynamic) st = check_scales(root, s->input_scale);
        if (st == NB_OK && !s->dynamic) st = check_scales(root, s->scale);
        if (st == NB_OK && !s->dynamic) st = check_zero_points(root, s->input_zero_point, 0, 255);
        if (st == NB_OK && !s->dynamic) st = check_zero_points(root, s->zero_point, 0, 255);
    }
    for (int i = 0; st == NB_OK && i < m->children.n; i++) st = check_tree(root, NB__CHILD(m, i));
    return st;
}

nb_status nb_quantized_check(const nb_module *model) {
    if (!model) return nb__fail_status(NB_ERR_NULL, "quantized_check: NULL model");
    return check_tree(model, model);
}

static void range_of(const nb_tensor *t, float *lo, float *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    for (int64_t i = 0; i < nb_numel(t); i++) {
        float v = nb_get(t, &i);
        *lo = fminf(*lo, v), *hi = fmaxf(*hi, v);
    }
}

static int collect(const nb_module *root, const nb_module *m, nb_quantized_layer_info *info,
                   int cap, int n) {
    const qlayer_state *s = qlayer_of(m);
    if (s) {
        if (n < cap) {
            nb_quantized_layer_info *e = &info[n];
            *e = (nb_quantized_layer_info){.name = name_of(root, s->weight),
                                           .input_scale = s->dynamic ? NAN : nb_item(s->input_scale),
                                           .scale = s->dynamic ? NAN : nb_item(s->scale),
                                           .max_abs_error = s->max_abs_error, .mse = s->mse};
            range_of(s->weight_scale, &e->weight_scale_min, &e->weight_scale_max);
        }
        n++;
    }
    for (int i = 0; i < m->children.n; i++) n = collect(root, NB__CHILD(m, i), info, cap, n);
    return n;
}

int nb_quantized_layers(const nb_module *model, nb_quantized_layer_info *info, int cap) {
    if (!model) return 0;
    return collect(model, model, info, info ? cap : 0, 0);
}
