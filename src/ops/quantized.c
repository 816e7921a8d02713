/*
 * quantized.c — the integer ops of post-training quantization (nabla/quant.h): float32 to and
 * from uint8 / int8 codes, and the quantized Linear and Conv2d, which run uint8 x int8 -> int32
 * through the backend's gemm_u8s8s32 and requantize the sums with fused bias and ReLU, as
 * torch's fbgemm backend does (fbgemm's ReQuantizeOutput):
 *
 *   acc[i, j] = sum over p of (x[i, p] - zx) (w[j, p] - zw[j])             exact, in int32
 *   y[i, j]   = clamp(nearbyint((acc + b[j] / (sx sw[j])) (sx sw[j] / sy)) + zy, lo, hi)
 *
 * with the products sx sw[j], the bias in accumulator units and the multiplier computed in
 * float32 on the host, in fbgemm's order.  lo is zy under a fused ReLU.  With no output
 * qparams (dynamic quantization) y = acc sx sw[j] + b[j] in float32 (ReQuantizeForFloat).
 *
 * The convolution is the backend's qconv2d (a whole batch: im2row, GEMM and requantization,
 * cpu/qconv.c); a max pool after it (torch runs it on the quint8 result, keeping its qparams)
 * runs there on the codes, before anything is dequantized.
 *
 * Weights per output channel with zero points that differ (per channel affine) run one GEMM per
 * run of channels that share one, since the GEMM takes one zero point for B; symmetric weights
 * (every zero point 0) are one GEMM.  These ops record no gradient: they are inference only.
 */
#include "nabla/quant.h"
#include "op.h"

#include <math.h>

#define QMAX_I32 32768 /* backend.h: k <= 32768 keeps the int32 sums exact */

static nb_qout qout_of(nb_dtype d) { return d == NB_U8 ? NB_QOUT_U8 : NB_QOUT_S8; }

static nb_status check_qparams(const char *op, const char *what, float scale, int zp, nb_dtype d) {
    int lo = d == NB_U8 ? 0 : -128, hi = d == NB_U8 ? 255 : 127;
    if (!(isfinite(scale) && scale > 0.0f))
        return nb__fail_status(NB_ERR_ARG, "%s: %s scale %g is not finite and positive", op, what,
                               scale);
    if (zp < lo || zp > hi)
        return nb__fail_status(NB_ERR_ARG, "%s: %s zero point %d is outside [%d, %d] of %s", op,
                               what, zp, lo, hi, nb_dtype_name(d));
    return NB_OK;
}

nb_tensor *nb_quantize_per_tensor(nb_tensor *x, float scale, int zero_point, nb_dtype dtype) {
    if (!x) return NULL;
    if (dtype != NB_U8 && dtype != NB_I8)
        return nb__fail(NB_ERR_DTYPE, "quantize_per_tensor: codes of %s; uint8 or int8 only",
                        nb_dtype_name(dtype));
    if (x->dtype != NB_F32)
        return nb__fail(NB_ERR_DTYPE, "quantize_per_tensor: x is %s, not float32",
                        nb_dtype_name(x->dtype));
    if (check_qparams("quantize_per_tensor", "the", scale, zero_point, dtype) != NB_OK) return NULL;
    nb_tensor *c = nb_contiguous(x);
    nb_tensor *y = c ? nb__new(dtype, x->ndim, x->shape) : NULL;
    if (y)
        nb__backend(x->device)->quantize((int8_t *)y->storage->data + y->offset, nb__f32(c),
                                         nb_numel(x), qout_of(dtype), scale, zero_point);
    nb_tensor_free(c);
    return y;
}

nb_tensor *nb_dequantize_per_tensor(nb_tensor *q, float scale, int zero_point) {
    if (!q) return NULL;
    if (q->dtype != NB_U8 && q->dtype != NB_I8)
        return nb__fail(NB_ERR_DTYPE, "dequantize_per_tensor: q is %s, not uint8 or int8",
                        nb_dtype_name(q->dtype));
    if (check_qparams("dequantize_per_tensor", "the", scale, zero_point, q->dtype) != NB_OK)
        return NULL;
    nb_tensor *c = nb_contiguous(q);
    nb_tensor *y = c ? nb__new(NB_F32, q->ndim, q->shape) : NULL;
    if (y)
        nb__backend(q->device)->dequantize(nb__f32(y), (int8_t *)c->storage->data + c->offset,
                                           nb_numel(q), qout_of(q->dtype), scale, zero_point);
    nb_tensor_free(c);
    return y;
}

/* ---- the layers */

/* What the host computes from the layer's parameters before the GEMM: per output channel j the
 * weight's zero point, the requantization multiplier and the bias in accumulator units, the
 * last two as float32 tensors for the backend. */
typedef struct {
    int64_t out;
    int32_t *wzp;        /* [out] */
    nb_tensor *mult, *bias; /* [out]; bias NULL without one */
} qplan;

static void plan_free(qplan *p) {
    if (p->wzp) nb__dealloc(p->wzp, sizeof(int32_t) * (size_t)p->out);
    nb_tensor_free(p->mult);
    nb_tensor_free(p->bias);
}

static nb_status check_layer(const char *op, const nb_qlayer_params *p, const nb_tensor *x,
                             int wdim) {
    if (!p || !p->weight || !p->weight_scale || !p->weight_zero_point)
        return nb__fail_status(NB_ERR_NULL, "%s: NULL parameters", op);
    const nb_tensor *w = p->weight;
    if (x->dtype != NB_U8 || w->dtype != NB_I8)
        return nb__fail_status(NB_ERR_DTYPE, "%s: x %s and weight %s; need uint8 and int8", op,
                               nb_dtype_name(x->dtype), nb_dtype_name(w->dtype));
    int64_t out = w->ndim == wdim ? w->shape[0] : 0, ns = nb_numel(p->weight_scale);
    if (w->ndim != wdim || p->weight_scale->dtype != NB_F32 ||
        p->weight_zero_point->dtype != NB_I32 || (ns != 1 && ns != out) ||
        nb_numel(p->weight_zero_point) != ns ||
        (p->bias && (p->bias->dtype != NB_F32 || nb_numel(p->bias) != out)))
        return nb__fail_status(NB_ERR_SHAPE, "%s: weight %s, weight_scale %s %s, weight_zero_point "
                               "%s %s, bias %s: need a %d-D int8 weight, float32 scales and int32 "
                               "zero points of 1 or %lld, a float32 bias of %lld", op, NB_SHP(w),
                               nb_dtype_name(p->weight_scale->dtype), NB_SHP(p->weight_scale),
                               nb_dtype_name(p->weight_zero_point->dtype),
                               NB_SHP(p->weight_zero_point), p->bias ? NB_SHP(p->bias) : "none",
                               wdim, (long long)out, (long long)out);
    if (check_qparams(op, "input", p->in_scale, p->in_zero_point, NB_U8) != NB_OK ||
        (p->out_scale != 0.0f &&
         check_qparams(op, "output", p->out_scale, p->out_zero_point, NB_U8) != NB_OK))
        return nb_error_code();
    return NB_OK;
}

/* fbgemm's float arithmetic per channel: sxw = sx sw, mult = sxw / sy (sxw when the output is
 * float32), bias / sxw (b itself for float32 output, added after the scale). */
static nb_status plan_layer(qplan *pl, const char *op, const nb_qlayer_params *p, int64_t out) {
    *pl = (qplan){.out = out};
    int64_t ns = nb_numel(p->weight_scale);
    size_t bytes = sizeof(float) * 3 * (size_t)out;
    float *host = nb__alloc(bytes);
    pl->wzp = host ? nb__alloc(sizeof(int32_t) * (size_t)out) : NULL;
    nb_status st = pl->wzp ? NB_OK : nb_error_code();
    float *ws = host, *mult = host + out, *bias = host + 2 * out;
    if (st == NB_OK) st = nb__copy_logical(ws, p->weight_scale);
    if (st == NB_OK) st = nb__copy_logical(pl->wzp, p->weight_zero_point);
    if (st == NB_OK && p->bias) st = nb__copy_logical(bias, p->bias);
    for (int64_t j = out - 1; st == NB_OK && j >= 0; j--) { /* broadcast a per-tensor one */
        float s = ws[ns == 1 ? 0 : j];
        int32_t z = pl->wzp[ns == 1 ? 0 : j];
        if (!(isfinite(s) && s > 0.0f))
            st = nb__fail_status(NB_ERR_ARG, "%s: weight_scale[%lld] = %g is not finite and "
                                 "positive", op, (long long)(ns == 1 ? 0 : j), s);
        else if (z < -128 || z > 127)
            st = nb__fail_status(NB_ERR_ARG, "%s: weight_zero_point[%lld] = %d is outside "
                                 "[-128, 127]", op, (long long)(ns == 1 ? 0 : j), (int)z);
        pl->wzp[j] = z;
        float sxw = p->in_scale * s;
        mult[j] = p->out_scale != 0.0f ? sxw / p->out_scale : sxw;
        if (p->bias && p->out_scale != 0.0f) bias[j] = bias[j] / sxw;
    }
    if (st == NB_OK) {
        pl->mult = nb__new_in(NULL, NB_F32, 1, &out);
        pl->bias = pl->mult && p->bias ? nb__new_in(NULL, NB_F32, 1, &out) : NULL;
        if (!pl->mult || (p->bias && !pl->bias)) st = nb_error_code();
    }
    if (st == NB_OK) st = nb__store_logical(pl->mult, mult);
    if (st == NB_OK && p->bias) st = nb__store_logical(pl->bias, bias);
    if (host) nb__dealloc(host, bytes);
    if (st != NB_OK) plan_free(pl);
    return st;
}

/* The requantization of acc [m, n] (row stride ldacc) into y (row stride ldy), per column
 * (Linear) or per row (Conv2d's [oc, cells]). */
static void requantize(const nb_backend *be, void *y, int64_t ldy, const int32_t *acc,
                       int64_t ldacc, int64_t m, int64_t n, const qplan *pl,
                       const nb_qlayer_params *p, nb_qaxis axis) {
    nb__requant_args q = {.out = p->out_scale != 0.0f ? NB_QOUT_U8 : NB_QOUT_F32,
                          .axis = axis,
                          .scale = nb__f32(pl->mult),
                          .bias = pl->bias ? nb__f32(pl->bias) : NULL,
                          .zero_point = p->out_zero_point,
                          .relu = p->relu};
    be->requantize(y, ldy, acc, ldacc, m, n, &q);
}

static void *bytes_of(const nb_tensor *t) { return (int8_t *)t->storage->data + t->offset; }

/* A new result [ndim, shape]: uint8 codes, or float32 without output qparams. */
static nb_tensor *new_result(const nb_qlayer_params *p, int ndim, const int64_t *shape) {
    return nb__new(p->out_scale != 0.0f ? NB_U8 : NB_F32, ndim, shape);
}

nb_tensor *nb_quantized_linear(nb_tensor *x, const nb_qlayer_params *p) {
    static const char op[] = "quantized_linear";
    if (!x) return NULL;
    if (check_layer(op, p, x, 2) != NB_OK) return NULL;
    int64_t k = p->weight->shape[1], out = p->weight->shape[0];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != k || k > QMAX_I32)
        return nb__fail(NB_ERR_SHAPE, "%s: x %s, weight %s: need x [..., %lld] with at most %d "
                        "features", op, NB_SHP(x), NB_SHP(p->weight), (long long)k, QMAX_I32);
    qplan pl;
    if (plan_layer(&pl, op, p, out) != NB_OK) return NULL;
    int64_t m = nb_numel(x) / (k ? k : 1), shape[NB_MAX_DIMS], acc_shape[2] = {m, out};
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[x->ndim - 1] = out;
    const nb_backend *be = nb__backend(x->device);
    nb_tensor *xc = nb_contiguous(x), *wc = nb_contiguous((nb_tensor *)p->weight);
    nb_tensor *acc = xc && wc ? nb__new(NB_I32, 2, acc_shape) : NULL;
    nb_tensor *y = acc ? new_result(p, x->ndim, shape) : NULL;
    if (y) {
        const uint8_t *a = bytes_of(xc);
        const int8_t *w = bytes_of(wc);
        for (int64_t j0 = 0, j1; j0 < out; j0 = j1) { /* runs of one weight zero point */
            for (j1 = j0 + 1; j1 < out && pl.wzp[j1] == pl.wzp[j0]; j1++) {}
            be->gemm_u8s8s32(nb__i32(acc) + j0, out, false, true, m, j1 - j0, k, a, k,
                             (uint8_t)p->in_zero_point, w + j0 * k, k, (int8_t)pl.wzp[j0]);
        }
        requantize(be, bytes_of(y), out, nb__i32(acc), out, m, out, &pl, p, NB_QAXIS_COL);
    }
    nb_tensor_free(xc);
    nb_tensor_free(wc);
    nb_tensor_free(acc);
    plan_free(&pl);
    return y;
}

/* The geometry of a groups-1 convolution of x [n, c, h, w] by weight [oc, c, kh, kw]. */
static nb_status conv_geometry(const char *op, const nb_tensor *x, const nb_tensor *w,
                               const nb_conv2d_opts *o, nb_conv2d_geom *g) {
    nb_conv2d_opts d = o ? *o : (nb_conv2d_opts){0};
    if (d.groups > 1)
        return nb__fail_status(NB_ERR_ARG, "%s: groups %d; only 1 is quantized", op, d.groups);
    if (x->ndim != 4 || x->shape[1] != w->shape[1])
        return nb__fail_status(NB_ERR_SHAPE, "%s: x %s, weight %s: need x [N, %lld, H, W]", op,
                               NB_SHP(x), NB_SHP(w), (long long)w->shape[1]);
    *g = (nb_conv2d_geom){.n = x->shape[0], .c = x->shape[1], .h = x->shape[2], .w = x->shape[3],
                          .oc = w->shape[0], .kh = w->shape[2], .kw = w->shape[3], .groups = 1};
    int64_t k[2] = {g->kh, g->kw}, in[2] = {g->h, g->w}, out[2], pad[2];
    for (int i = 0; i < 2; i++) {
        int64_t s = d.stride[i] ? d.stride[i] : 1, dl = d.dilation[i] ? d.dilation[i] : 1;
        pad[i] = d.same ? dl * (k[i] - 1) / 2 : d.padding[i];
        out[i] = d.same ? in[i] : (in[i] + 2 * pad[i] - dl * (k[i] - 1) - 1) / s + 1;
        if (i == 0) g->sh = s, g->dh = dl;
        else g->sw = s, g->dw = dl;
    }
    g->ph = pad[0], g->pw = pad[1], g->oh = out[0], g->ow = out[1];
    if (g->oh < 1 || g->ow < 1 || g->c * g->kh * g->kw > QMAX_I32)
        return nb__fail_status(NB_ERR_SHAPE, "%s: x %s, weight %s: no output cell, or more than "
                               "%d taps", op, NB_SHP(x), NB_SHP(w), QMAX_I32);
    return NB_OK;
}

/* The max pool o of the convolution's grid [n, oc, oh, ow]. */
static nb_status pool_geometry(const char *op, const nb_conv2d_geom *c, const nb_pool2d_opts *o,
                               nb_pool2d_geom *g) {
    int s[2] = {o->stride[0] ? o->stride[0] : o->kernel[0], o->stride[1] ? o->stride[1] : o->kernel[1]};
    *g = (nb_pool2d_geom){.planes = c->oc, .h = c->oh, .w = c->ow, .kh = o->kernel[0],
                          .kw = o->kernel[1], .sh = s[0], .sw = s[1], .ph = o->padding[0],
                          .pw = o->padding[1]};
    if (g->kh < 1 || g->kw < 1 || s[0] < 1 || s[1] < 1 || 2 * g->ph > g->kh || 2 * g->pw > g->kw)
        return nb__fail_status(NB_ERR_ARG, "%s: pool kernel %dx%d, stride %dx%d, padding %dx%d: "
                               "need kernels and strides >= 1, padding at most half the kernel",
                               op, g->kh, g->kw, s[0], s[1], g->ph, g->pw);
    g->oh = nb__pool_out_size(c->oh, g->kh, s[0], g->ph, o->ceil_mode);
    g->ow = nb__pool_out_size(c->ow, g->kw, s[1], g->pw, o->ceil_mode);
    if (g->oh < 1 || g->ow < 1)
        return nb__fail_status(NB_ERR_SHAPE, "%s: a %lldx%lld grid is smaller than the pool", op,
                               (long long)c->oh, (long long)c->ow);
    return NB_OK;
}

nb_tensor *nb_quantized_conv2d(nb_tensor *x, const nb_qlayer_params *p,
                               const nb_conv2d_opts *opts, const nb_pool2d_opts *pool) {
    static const char op[] = "quantized_conv2d";
    if (!x) return NULL;
    nb_conv2d_geom g;
    nb_pool2d_geom pg = {0};
    if (check_layer(op, p, x, 4) != NB_OK || conv_geometry(op, x, p->weight, opts, &g) != NB_OK ||
        (pool && pool_geometry(op, &g, pool, &pg) != NB_OK))
        return NULL;
    if (pool && p->out_scale == 0.0f)
        return nb__fail(NB_ERR_ARG, "%s: a pool needs output codes (an output scale)", op);
    qplan pl;
    if (plan_layer(&pl, op, p, g.oc) != NB_OK) return NULL;
    int64_t shape[4] = {g.n, g.oc, pool ? pg.oh : g.oh, pool ? pg.ow : g.ow};
    const nb_backend *be = nb__backend(x->device);
    nb_arena *arena = nb__current_arena();
    size_t bytes = be->qconv2d_workspace(&g);
    nb_tensor *xc = nb_contiguous(x), *wc = xc ? nb_contiguous((nb_tensor *)p->weight) : NULL;
    nb_tensor *y = wc ? new_result(p, 4, shape) : NULL;
    void *ws = y ? nb__home_alloc_data(arena, be, bytes) : NULL;
    if (ws) {
        nb__requant_args q = {.out = p->out_scale != 0.0f ? NB_QOUT_U8 : NB_QOUT_F32,
                              .axis = NB_QAXIS_COL,
                              .scale = nb__f32(pl.mult),
                              .bias = pl.bias ? nb__f32(pl.bias) : NULL,
                              .zero_point = p->out_zero_point,
                              .relu = p->relu};
        be->qconv2d(bytes_of(y), bytes_of(xc), (uint8_t)p->in_zero_point, bytes_of(wc), pl.wzp, &q,
                    pool ? &pg : NULL, ws, &g);
        nb__home_free_data(arena, be, ws, bytes);
    } else if (y) {
        nb_tensor_free(y);
        y = NULL;
    }
    nb_tensor_free(xc);
    nb_tensor_free(wc);
    plan_free(&pl);
    return y;
}
