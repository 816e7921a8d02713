/*
 * qat.c — the quantization-aware convolutions and the preparation of a whole model
 * (nabla/quant.h), as torch.ao 1.13 builds them: torch.ao.nn.qat.Conv2d,
 * torch.ao.nn.intrinsic.qat.ConvBn2d and prepare_qat.
 *
 * ConvBn2d trains the convolution as it will run once BatchNorm is folded into it
 * (torch's _ConvBnNd._forward_approximate; Krishnamoorthi 2018, "Quantizing deep convolutional
 * networks for efficient inference", section 3.2).  With the running statistics rv and the BN
 * weight gamma, per output channel c:
 *
 *     f_c    = gamma_c / sqrt(rv_c + eps)                      the fold's scale
 *     y      = conv(x, fq(W f)) / f + b                         the conv on folded, fake-quantized
 *                                                               weights, scaled back
 *     out    = apq(bn(y))                                       BN as usual, then the output's
 *                                                               fake quantizer
 *
 * In training, bn uses the batch's statistics (and updates its running ones) so the network
 * trains as with BatchNorm, while the weights it sees are those the folded layer will have.
 * After freeze_bn_stats, bn uses its running statistics: then bn(y) = (y - rm) f + beta, and
 * the whole is exactly the folded convolution conv(x, fq(W f)) + (b - rm) f + beta — "BN
 * folded for the last epochs".  The division by f assumes gamma != 0, as torch does.
 */
#include "qat.h"

#include <math.h>

typedef struct {
    nb__conv2d_state conv; /* weight and bias are this module's parameters */
    nb_module *bn;         /* ConvBn2d's BatchNorm2d child; NULL for Conv2d */
    nb_module *weight_fake_quant, *activation_post_process;
    bool freeze_bn;
} qat_conv_state;

/* conv(x, fq(W f)) / f + b, then bn (see the top of the file); intermediates go to tmp. */
static nb_tensor *conv_bn(nb__temps *tmp, nb_module *m, qat_conv_state *s, nb_tensor *x) {
    const nb__batchnorm_state *b = NB__STATE(nb__batchnorm_state, s->bn);
    int64_t c = s->conv.out_channels;
    nb_tensor *std = nb__tmp(tmp, nb_sqrt(nb__tmp(tmp, nb_add_scalar(b->running_var, b->eps))));
    nb_tensor *f = nb__tmp(tmp, nb_div(b->weight, std));
    nb_tensor *fw = nb__tmp(tmp, nb_reshape(f, NB_SHAPE(c, 1, 1, 1)));
    nb_tensor *w = nb__tmp(tmp, nb_module_forward(s->weight_fake_quant, nb__tmp(tmp, nb_mul(s->conv.weight, fw))));
    nb_tensor *y = w ? nb__tmp(tmp, nb_conv2d(x, w, NULL, &s->conv.opts)) : NULL;
    y = y ? nb__tmp(tmp, nb_div(y, nb__tmp(tmp, nb_reshape(f, NB_SHAPE(1, c, 1, 1))))) : NULL;
    if (y && s->conv.bias) y = nb__tmp(tmp, nb_add(y, nb__tmp(tmp, nb_reshape(s->conv.bias, NB_SHAPE(1, c, 1, 1)))));
    s->bn->training = m->training && !s->freeze_bn; /* torch's ConvBn train(): bn follows unless frozen */
    return y ? nb__tmp(tmp, nb_module_forward(s->bn, y)) : NULL;
}

static nb_tensor *qat_conv_forward(nb_module *m, nb_tensor *x) {
    qat_conv_state *s = NB__STATE(qat_conv_state, m);
    nb__temps tmp = {0};
    nb_tensor *y;
    if (s->bn) {
        y = conv_bn(&tmp, m, s, x);
    } else {
        nb_tensor *w = nb__tmp(&tmp, nb_module_forward(s->weight_fake_quant, s->conv.weight));
        y = w ? nb__tmp(&tmp, nb_conv2d(x, w, s->conv.bias, &s->conv.opts)) : NULL;
    }
    nb_tensor *out = y ? nb__tmp(&tmp, nb_module_forward(s->activation_post_process, y)) : NULL;
    return nb__temps_end(&tmp, out);
}

static void qat_conv_describe(const nb_module *m, nb_attrs *d) {
    const qat_conv_state *s = NB__STATE(qat_conv_state, m);
    nb_attrs_int(d, "in_channels", s->conv.in_channels);
    nb_attrs_int(d, "out_channels", s->conv.out_channels);
    nb_attrs_int(d, "kernel_h", s->conv.kernel[0]);
    nb_attrs_int(d, "kernel_w", s->conv.kernel[1]);
    nb_attrs_bool(d, "bias", s->conv.bias != NULL);
    if (s->bn) nb_attrs_bool(d, "freeze_bn", s->freeze_bn);
}

static const nb_module_class qat_conv_classes[2] = {
    {.name = "Conv2d", .forward = qat_conv_forward, .describe = qat_conv_describe},
    {.name = "ConvBn2d", .forward = qat_conv_forward, .describe = qat_conv_describe},
};

/* A new parameter `name` of m holding a copy of src (NULL src: none; true). */
static bool copy_param(nb_module *m, const char *name, const nb_tensor *src, nb_tensor **dst) {
    *dst = NULL;
    if (!src) return true;
    if (!(*dst = nb_module_add_param(m, name, src->ndim, src->shape))) return false;
    nb__copy_tensor(*dst, src);
    return true;
}

/* A BatchNorm2d with bn's options, parameters and running statistics. */
static nb_module *copy_batchnorm(const nb__batchnorm_state *b) {
    /* a momentum of 0 is asked for as -0 (nb_batchnorm_opts: 0 means the default) */
    nb_batchnorm_opts o = {.eps = b->eps, .momentum = b->momentum == 0 ? -0.0f : b->momentum};
    nb_module *bn = nb_batchnorm2d_new(b->num_features, o);
    if (!bn) return NULL;
    nb__batchnorm_state *c = NB__STATE(nb__batchnorm_state, bn);
    nb__copy_tensor(c->weight, b->weight);
    nb__copy_tensor(c->bias, b->bias);
    nb__copy_tensor(c->running_mean, b->running_mean);
    nb__copy_tensor(c->running_var, b->running_var);
    nb__copy_tensor(c->num_batches_tracked, b->num_batches_tracked);
    return bn;
}

/* The QAT module over copies of a float Conv2d (and BatchNorm2d, or NULL). */
static nb_module *qat_conv_of(const nb__conv2d_state *cs, const nb__batchnorm_state *bs,
                              const nb_qat_opts *opts) {
    nb_qat_opts o = opts ? *opts : (nb_qat_opts){0};
    nb_fake_quantize_opts wq = nb__qat_weight_opts(&o, cs->out_channels), aq = nb__qat_act_opts(&o);
    nb_module *m = nb_module_new(&qat_conv_classes[bs != NULL], sizeof(qat_conv_state));
    if (!m) return NULL;
    qat_conv_state *s = NB__STATE(qat_conv_state, m);
    *s = (qat_conv_state){.conv = *cs};
    bool made = copy_param(m, "weight", cs->weight, &s->conv.weight) &&
                copy_param(m, "bias", cs->bias, &s->conv.bias);
    if (made && bs) made = (s->bn = copy_batchnorm(bs)) && nb_module_add_child(m, "bn", s->bn) == NB_OK;
    made = made && nb__qat_add_fake_quant(m, "weight_fake_quant", &wq, &s->weight_fake_quant) &&
           nb__qat_add_fake_quant(m, "activation_post_process", &aq, &s->activation_post_process);
    if (!made) {
        if (s->bn && s->bn->parent != m) nb_module_free(s->bn);
        nb_module_free(m);
        return NULL;
    }
    return m;
}

nb_module *nb_qat_conv2d_from(const nb_module *conv, const nb_qat_opts *opts) {
    if (!conv) return nb__fail(NB_ERR_NULL, "qat_conv2d_from: NULL module");
    if (nb_module_class_of(conv) != &nb__conv2d_class)
        return nb__fail(NB_ERR_ARG, "qat_conv2d_from: a %s is not a float Conv2d", nb_module_type(conv));
    return qat_conv_of(NB__STATE(nb__conv2d_state, conv), NULL, opts);
}

nb_module *nb_qat_conv_bn2d_from(const nb_module *conv, const nb_module *bn, const nb_qat_opts *opts) {
    if (!conv || !bn) return nb__fail(NB_ERR_NULL, "qat_conv_bn2d_from: NULL module");
    if (nb_module_class_of(conv) != &nb__conv2d_class || nb_module_class_of(bn) != &nb__batchnorm2d_class)
        return nb__fail(NB_ERR_ARG, "qat_conv_bn2d_from: need a float Conv2d and a BatchNorm2d, got a %s "
                        "and a %s", nb_module_type(conv), nb_module_type(bn));
    const nb__conv2d_state *cs = NB__STATE(nb__conv2d_state, conv);
    const nb__batchnorm_state *bs = NB__STATE(nb__batchnorm_state, bn);
    if (bs->num_features != cs->out_channels || !bs->weight || !bs->running_mean)
        return nb__fail(NB_ERR_ARG, "qat_conv_bn2d_from: BatchNorm2d(%lld) must have affine parameters, "
                        "running statistics and the conv's %lld channels", (long long)bs->num_features,
                        (long long)cs->out_channels);
    return qat_conv_of(cs, bs, opts);
}

static int freeze_bn_in(nb_module *m) {
    int n = 0;
    if (m->cls == &qat_conv_classes[1]) {
        NB__STATE(qat_conv_state, m)->freeze_bn = true;
        n++;
    }
    for (int i = 0; i < m->children.n; i++) n += freeze_bn_in(NB__CHILD(m, i));
    return n;
}

nb_status nb_qat_freeze_bn_stats(nb_module *m) {
    if (!m) return nb__fail_status(NB_ERR_NULL, "qat_freeze_bn_stats: NULL module");
    if (freeze_bn_in(m) == 0)
        return nb__fail_status(NB_ERR_ARG, "qat_freeze_bn_stats: a %s holds no ConvBn2d", m->cls->name);
    return NB_OK;
}

/* ---- prepare_qat */

/* The QAT module for m's child i, and whether it absorbs child i + 1 (a BatchNorm2d after a
 * Conv2d); NULL with *none set when the child is not a float Linear or Conv2d. */
static nb_module *qat_of_child(nb_module *m, int i, const nb_qat_opts *o, bool *fused, bool *none) {
    nb_module *c = NB__CHILD(m, i), *next = i + 1 < m->children.n ? NB__CHILD(m, i + 1) : NULL;
    *fused = *none = false;
    if (c->cls == &nb__linear_class) return nb_qat_linear_from(c, o);
    if (c->cls != &nb__conv2d_class) return *none = true, NULL;
    *fused = next && next->cls == &nb__batchnorm2d_class;
    return *fused ? nb_qat_conv_bn2d_from(c, next, o) : nb_qat_conv2d_from(c, o);
}

/* Swaps the float layers under m; the number swapped, -1 on an error. */
static int prepare_children(nb_module *m, const nb_qat_opts *o) {
    int n = 0;
    for (int i = 0; i < m->children.n; i++) {
        bool fused, none;
        nb_module *q = qat_of_child(m, i, o, &fused, &none);
        if (none) {
            if (NB__CHILD(m, i)->cls == &nb__batchnorm2d_class) continue;
            int k = prepare_children(NB__CHILD(m, i), o);
            if (k < 0) return -1;
            n += k;
            continue;
        }
        nb_module *identity = fused && q ? nb_activation_new(NB_ACT_IDENTITY, 0) : NULL;
        if (!q || (fused && !identity)) {
            nb_module_free(q);
            return -1;
        }
        nb_module_free(nb__module_swap_child(m, i, q));
        if (fused) nb_module_free(nb__module_swap_child(m, i + 1, identity)); /* torch's fuse */
        n++;
    }
    return n;
}

nb_status nb_qat_prepare(nb_module *model, const nb_qat_opts *opts) {
    if (!model) return nb__fail_status(NB_ERR_NULL, "qat_prepare: NULL model");
    int n = prepare_children(model, opts);
    if (n < 0) return nb__fail_prefix("qat_prepare");
    if (n == 0) return nb__fail_status(NB_ERR_ARG, "qat_prepare: a %s holds no float Linear or Conv2d layer "
                                       "below it", model->cls->name);
    nb_module_train(model, model->training); /* the new modules take the model's mode */
    return NB_OK;
}
