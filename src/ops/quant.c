/*
 * quant.c — fake quantization (nabla/quant.h): x with a scale s and a zero point z per tensor
 * or per channel, torch's fake_quantize_per_{tensor,channel}_affine and the learnable (LSQ)
 * _fake_quantize_learnable_per_{tensor,channel}_affine.  Four rows, one forward:
 *
 *   y = (clamp(q, qmin, qmax) - z) s,   q = z + nearbyint(x (1 / s))    (cpu/quant.c)
 *
 * seeing x as [outer, C, inner] around the axis (C = 1 per tensor).  Node arguments: start and
 * end hold qmin and qmax, dim the axis, step the estimator (nb_ste), s0 LSQ's grad_factor.
 *
 * Backward (one version, made of ops, so it serves both modes of op.h): the kernel
 * fake_quant_mask gives, as constants, the estimator's mask m = [qmin <= q <= qmax] (q and z as
 * torch's backward kernels take them, see nb_fq_rule) and k = clamp(q) - z, and then
 *
 *   dx = g m  (g with the plain estimator)
 *   ds = sum gf ((g m (k s - x)) / s + g (1 - m) k)        (inside: (x' - x) / s, x' = k s)
 *   dz = sum gf (g (m - 1)) s
 *
 * in torch's order of float operations element by element (only the sums associate
 * differently), summed over every dim but the axis.  m and k are constants, so d(dx)/dx = 0 as
 * torch's, and ds carries the graph of x and s: d(ds)/dx = -gf g m / s, d(ds)/ds = gf g m x / s^2.
 */
#include "nabla/quant.h"
#include "op.h"

#include <math.h>

static bool learnable(nb_op_id op) {
    return op == NB_OP_FAKE_QUANT_LSQ_TENSOR || op == NB_OP_FAKE_QUANT_LSQ_CHANNEL;
}
static bool per_channel(nb_op_id op) {
    return op == NB_OP_FAKE_QUANT_CHANNEL || op == NB_OP_FAKE_QUANT_LSQ_CHANNEL;
}

/* x as [outer, channels, inner] around the axis; bshape: the shape (bndim dims) that a
 * per-channel vector takes to broadcast against x. */
typedef struct {
    int64_t outer, channels, inner;
    int bndim;
    int64_t bshape[NB_MAX_DIMS];
} layout;

static layout layout_of(const nb_tensor *x, nb_op_id op, int axis) {
    layout l = {.outer = 1, .channels = 1, .inner = nb__numel(x->ndim, x->shape)};
    if (!per_channel(op)) return l;
    l.bndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) {
        l.bshape[d] = d == axis ? x->shape[d] : 1;
        if (d < axis) l.outer *= x->shape[d];
    }
    l.channels = x->shape[axis];
    l.inner = l.channels && l.outer ? l.inner / (l.outer * l.channels) : 0;
    return l;
}

/* The values of scale and zero_point, checked as the op's row requires. */
static nb_status check_qparams(nb_op_id op, const nb_tensor *scale, const nb_tensor *zp,
                               int64_t c, int64_t qmin, int64_t qmax) {
    const char *name = nb__ops[op].name;
    float *s = nb__host_copy(scale), *z = s ? nb__host_copy(zp) : NULL;
    nb_status st = z ? NB_OK : nb_error_code();
    for (int64_t i = 0; st == NB_OK && i < c; i++) {
        if (!(isfinite(s[i]) && s[i] > 0.0f))
            st = nb__fail_status(NB_ERR_ARG, "%s: scale[%lld] = %g must be positive and finite",
                                 name, (long long)i, s[i]);
        else if (learnable(op) ? !isfinite(z[i])
                               : !(z[i] >= qmin && z[i] <= qmax && z[i] == floorf(z[i])))
            st = nb__fail_status(NB_ERR_ARG, "%s: zero_point[%lld] = %g must be %s", name,
                                 (long long)i, z[i],
                                 learnable(op) ? "finite"
                                               : "a whole number in [quant_min, quant_max]");
    }
    if (z) nb__host_free(z, zp);
    if (s) nb__host_free(s, scale);
    return st;
}

static bool has_size(const nb_tensor *t, int64_t c, bool vector) {
    return nb__numel(t->ndim, t->shape) == c && (!vector || t->ndim == 1);
}

nb_tensor *nb__fwd_quant(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *a) {
    (void)n;
    nb_tensor *x = in[0], *scale = in[1], *zp = in[2];
    const char *name = nb__ops[op].name;
    layout l = layout_of(x, op, a->dim);
    if (!has_size(scale, l.channels, per_channel(op)) || !has_size(zp, l.channels, per_channel(op)))
        return nb__fail(NB_ERR_SHAPE, "%s: scale %s and zero_point %s must have %lld element%s "
                        "(x %s)", name, NB_SHP(scale), nb__shape_str(zp->ndim, zp->shape),
                        (long long)l.channels, l.channels == 1 ? "" : "s", NB_SHP(x));
    if (check_qparams(op, scale, zp, l.channels, a->start, a->end) != NB_OK) return NULL;
    nb_tensor *xc = nb__contig(x), *sc = xc ? nb__contig(scale) : NULL;
    nb_tensor *zc = sc ? nb__contig(zp) : NULL, *y = zc ? nb__new_like(xc) : NULL;
    if (y)
        nb__be(x)->fake_quant(nb__f32(y), nb__f32(xc), nb__f32(sc), nb__f32(zc), l.outer,
                              l.channels, l.inner, a->start, a->end);
    if (xc != x) nb_tensor_free(xc);
    if (sc != scale) nb_tensor_free(sc);
    if (zc != zp) nb_tensor_free(zc);
    return y;
}

#define T(e) nb__tmp(tmp, (e))

/* v (x's shape) summed to the shape of in[i] (scale or zero point), a new reference. */
static nb_tensor *sum_to_param(nb__temps *tmp, nb_tensor *v, const layout *l, const nb_tensor *p) {
    nb_tensor *r = nb__sum_to(v, l->bndim, l->bshape);
    if (r && r != v) T(r);
    return r ? nb_reshape(r, p->ndim, p->shape) : NULL;
}

/* The mask m and k = clamp(q) - z of the header, constants of x's shape (k only for LSQ). */
static nb_status masks(nb__temps *tmp, const nb_node *node, const layout *l, nb_tensor **m,
                       nb_tensor **k) {
    nb_op_id op = (nb_op_id)node->op;
    nb_tensor *x = T(nb__contig(node->in[0])), *s = T(nb__contig(node->in[1]));
    nb_tensor *z = T(nb__contig(node->in[2]));
    if (x == node->in[0]) nb__retain(x); /* the temps drop one reference on each */
    if (s == node->in[1]) nb__retain(s);
    if (z == node->in[2]) nb__retain(z);
    *m = x && s && z ? T(nb__new_like(x)) : NULL;
    *k = *m && learnable(op) ? T(nb__new_like(x)) : NULL;
    if (!*m || (learnable(op) && !*k)) return nb_error_code();
    nb_fq_rule rule = op == NB_OP_FAKE_QUANT_LSQ_TENSOR    ? NB_FQ_LSQ_TENSOR
                      : op == NB_OP_FAKE_QUANT_LSQ_CHANNEL ? NB_FQ_LSQ_CHANNEL
                                                           : NB_FQ_AFFINE;
    nb__be(x)->fake_quant_mask(nb__f32(*m), *k ? nb__f32(*k) : NULL, nb__f32(x), nb__f32(s),
                               nb__f32(z), l->outer, l->channels, l->inner, node->args.start,
                               node->args.end, rule);
    return NB_OK;
}

/* ds and dz of the header (i = 1, 2), new references. */
static nb_tensor *qparam_grad(nb__temps *tmp, const nb_node *node, const layout *l, nb_tensor *g,
                              nb_tensor *m, nb_tensor *k, int i) {
    nb_tensor *x = node->in[0], *p = node->in[i];
    nb_tensor *s = T(nb_reshape(node->in[1], l->bndim, l->bshape));
    nb_tensor *v;
    if (i == 1) {
        nb_tensor *inv = T(nb_div(T(nb_ones(0, NULL)), s));
        nb_tensor *inside = T(nb_mul(m, T(nb_sub(T(nb_mul(k, s)), x))));
        nb_tensor *outside = T(nb_mul(T(nb_add_scalar(T(nb_neg(m)), 1.0f)), k));
        v = T(nb_add(T(nb_mul(T(nb_mul(g, inside)), inv)), T(nb_mul(g, outside))));
    } else {
        v = T(nb_mul(T(nb_mul(g, T(nb_add_scalar(m, -1.0f)))), s));
    }
    return sum_to_param(tmp, T(nb_mul_scalar(v, node->args.s0)), l, p);
}

static nb_status grads(nb__temps *tmp, const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb_op_id op = (nb_op_id)node->op;
    layout l = layout_of(node->in[0], op, node->args.dim);
    nb_tensor *m, *k;
    if (masks(tmp, node, &l, &m, &k) != NB_OK) return nb_error_code();
    if (nb__needs_grad(node, 0)) {
        if (node->args.step == NB_STE_PLAIN) nb__retain(g);
        din[0] = node->args.step == NB_STE_PLAIN ? g : nb_mul(g, m);
        if (!din[0]) return nb_error_code();
    }
    for (int i = 1; i < 3 && learnable(op); i++)
        if (nb__needs_grad(node, i) && !(din[i] = qparam_grad(tmp, node, &l, g, m, k, i)))
            return nb_error_code();
    return NB_OK;
}
#undef T

nb_status nb__bwd_quant(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb__temps tmp = {0};
    nb_status st = grads(&tmp, node, g, din);
    nb__temps_end(&tmp, NULL);
    return st;
}

/* ---- the public functions: the scalar arguments, then the row */

static nb_tensor *fake_quantize(nb_op_id op, nb_tensor *x, nb_tensor *scale, nb_tensor *zp,
                                int axis, int qmin, int qmax, nb_ste ste, float grad_factor) {
    const char *name = nb__ops[op].name;
    nb_tensor *in[3] = {x, scale, zp};
    for (int i = 0; i < 3; i++)
        if (!nb__alive(in[i])) return nb__fail_input(name, in[i]);
    if (qmin > qmax)
        return nb__fail(NB_ERR_ARG, "%s: quant_min %d is greater than quant_max %d", name, qmin,
                        qmax);
    if ((unsigned)ste >= NB_STE_COUNT)
        return nb__fail(NB_ERR_ARG, "%s: unknown ste %d", name, (int)ste);
    if (!isfinite(grad_factor))
        return nb__fail(NB_ERR_ARG, "%s: grad_factor %g is not finite", name, grad_factor);
    if (!learnable(op) && (nb_requires_grad(scale) || nb_requires_grad(zp)))
        return nb__fail(NB_ERR_ARG, "%s: is not differentiable with respect to %s; use the "
                        "learnable op", name, nb_requires_grad(scale) ? "scale" : "zero_point");
    if (per_channel(op)) {
        int d = axis < 0 ? axis + x->ndim : axis;
        if (d < 0 || d >= x->ndim)
            return nb__fail(NB_ERR_SHAPE, "%s: axis %d is out of range for x %s", name, axis,
                            NB_SHP(x));
        axis = d;
    }
    nb_op_args a = {.dim = axis, .start = qmin, .end = qmax, .step = ste, .s0 = grad_factor};
    return nb__apply(op, 3, in, &a);
}

nb_tensor *nb_fake_quantize_per_tensor(nb_tensor *x, nb_tensor *scale, nb_tensor *zero_point,
                                       int quant_min, int quant_max, nb_ste ste) {
    return fake_quantize(NB_OP_FAKE_QUANT_TENSOR, x, scale, zero_point, 0, quant_min, quant_max,
                         ste, 1.0f);
}

nb_tensor *nb_fake_quantize_per_channel(nb_tensor *x, nb_tensor *scale, nb_tensor *zero_point,
                                        int axis, int quant_min, int quant_max, nb_ste ste) {
    return fake_quantize(NB_OP_FAKE_QUANT_CHANNEL, x, scale, zero_point, axis, quant_min,
                         quant_max, ste, 1.0f);
}

nb_tensor *nb_fake_quantize_learnable_per_tensor(nb_tensor *x, nb_tensor *scale,
                                                 nb_tensor *zero_point, int quant_min,
                                                 int quant_max, float grad_factor) {
    return fake_quantize(NB_OP_FAKE_QUANT_LSQ_TENSOR, x, scale, zero_point, 0, quant_min,
                         quant_max, NB_STE_CLIPPED, grad_factor);
}

nb_tensor *nb_fake_quantize_learnable_per_channel(nb_tensor *x, nb_tensor *scale,
                                                  nb_tensor *zero_point, int axis,
                                                  int quant_min, int quant_max,
                                                  float grad_factor) {
    return fake_quantize(NB_OP_FAKE_QUANT_LSQ_CHANNEL, x, scale, zero_point, axis, quant_min,
                         quant_max, NB_STE_CLIPPED, grad_factor);
}
