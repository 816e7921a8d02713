/*
 * guarded.c — the guarded test backend: the CPU backend's kernels, with every data pointer it
 * hands out tagged so that the host cannot dereference it.  The tag sets bit 52 of the address:
 * user-space addresses lie below 2^47, so a tagged pointer is non-canonical on x86-64 (and
 * outside the 48-bit address space of AArch64), and a read or write through it faults at once.
 * Pointer arithmetic by whole elements keeps the tag, as it does on a real device, so ops may
 * offset the pointers they pass back; each function here strips the tag from its pointer
 * arguments (NULL and host pointers, which carry no tag, pass unchanged) and calls the CPU
 * kernel.  Selected by NB_BACKEND=guarded (backend.c); the test suite runs a second time so.
 */
#include "../cpu/cpu.h"

#include "../../core/core.h"

#define TAG ((uintptr_t)1 << 52)

static void *tag(void *p) { return p ? (void *)((uintptr_t)p | TAG) : NULL; }
#define U(p) ((void *)((uintptr_t)(p) & ~TAG))   /* untagged, for outputs */
#define C(p) ((const void *)((uintptr_t)(p) & ~TAG)) /* untagged, for inputs */

static void *g_alloc(size_t nbytes) { return tag(nb__alloc(nbytes)); }
static void g_free(void *p, size_t nbytes) { nb__dealloc(U(p), nbytes); }
static void g_fill(void *dst, const void *value, size_t es, int64_t n) { nb__cpu_fill(U(dst), value, es, n); }
static void g_copy(void *dst, const void *src, size_t nbytes) { nb__cpu_memcpy(U(dst), C(src), nbytes); }
static void g_uniform(float *out, int64_t n, uint64_t seed, uint64_t off) { nb__cpu_uniform(U(out), n, seed, off); }

static void g_unary(nb_unary_op op, float *y, const float *x, int64_t n, float p0, float p1) {
    nb__cpu_unary(op, U(y), C(x), n, p0, p1);
}
static void g_unary_backward(nb_unary_op op, float *dx, const float *x, const float *y, const float *dy,
                             int64_t n, float p0, float p1) {
    nb__cpu_unary_backward(op, U(dx), C(x), C(y), C(dy), n, p0, p1);
}
static void g_binary(nb_binary_op op, float *out, const float *a, const int64_t *sa, const float *b,
                     const int64_t *sb, int ndim, const int64_t *shape) {
    nb__cpu_binary(op, U(out), C(a), sa, C(b), sb, ndim, shape);
}
static void g_where(float *out, const float *c, const int64_t *sc, const float *a, const int64_t *sa,
                    const float *b, const int64_t *sb, int ndim, const int64_t *shape) {
    nb__cpu_where(U(out), C(c), sc, C(a), sa, C(b), sb, ndim, shape);
}
static void g_strided_copy(void *out, const int64_t *so, const void *x, const int64_t *sx, int ndim,
                           const int64_t *shape, size_t es) {
    nb__cpu_copy(U(out), so, C(x), sx, ndim, shape, es);
}
static void g_gather(float *out, const float *x, const int64_t *sx, const int32_t *idx, int ndim,
                     const int64_t *shape, int dim) {
    nb__cpu_gather(U(out), C(x), sx, C(idx), ndim, shape, dim);
}
static void g_scatter_add(float *dx, const int64_t *sdx, const float *dy, const int32_t *idx, int ndim,
                          const int64_t *shape, int dim) {
    nb__cpu_scatter_add(U(dx), sdx, C(dy), C(idx), ndim, shape, dim);
}
static void g_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                   int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    nb__cpu_gemm(ta, tb, m, n, k, alpha, C(a), lda, C(b), ldb, beta, U(c), ldc);
}
static void g_reduce(nb_reduce_op op, float *out, const float *x, int64_t outer, int64_t r, int64_t inner) {
    nb__cpu_reduce(op, U(out), C(x), outer, r, inner);
}
static void g_argmax(int32_t *out, const float *x, int64_t outer, int64_t r, int64_t inner) {
    nb__cpu_argmax(U(out), C(x), outer, r, inner);
}
static void g_softmax(float *y, const float *x, int64_t outer, int64_t r, int64_t inner, bool log) {
    nb__cpu_softmax(U(y), C(x), outer, r, inner, log);
}
static void g_softmax_backward(float *dx, const float *y, const float *dy, int64_t outer, int64_t r,
                               int64_t inner, bool log) {
    nb__cpu_softmax_backward(U(dx), C(y), C(dy), outer, r, inner, log);
}
static float g_xent(float *e, const float *x, const int32_t *t, int64_t n, int64_t c, float scale) {
    return nb__cpu_xent(U(e), C(x), C(t), n, c, scale);
}
static void g_xent_backward(float *dx, const float *x, const float *e, const int32_t *t, int64_t n,
                            int64_t c, float gs) {
    nb__cpu_xent_backward(U(dx), C(x), C(e), C(t), n, c, gs);
}
static void g_accumulate(float *dst, const float *src, int64_t n) { nb__cpu_accumulate(U(dst), C(src), n); }
static void g_max_pool2d(float *y, const float *x, const nb_pool2d_geom *g) { nb__cpu_max_pool2d(U(y), C(x), g); }
static void g_max_pool2d_backward(float *dx, const float *x, const float *dy, const nb_pool2d_geom *g) {
    nb__cpu_max_pool2d_backward(U(dx), C(x), C(dy), g);
}
static void g_max_pool2d_indices(int32_t *at, const float *x, const nb_pool2d_geom *g) {
    nb__cpu_max_pool2d_indices(U(at), C(x), g);
}
static void g_avg_pool2d(float *y, const float *x, const nb_pool2d_geom *g) { nb__cpu_avg_pool2d(U(y), C(x), g); }
static void g_avg_pool2d_backward(float *dx, const float *dy, const nb_pool2d_geom *g) {
    nb__cpu_avg_pool2d_backward(U(dx), C(dy), g);
}
static void g_upsample2d(nb_upsample_mode mode, float *y, const float *x, int64_t planes, int64_t h,
                         int64_t w, int sh, int sw) {
    nb__cpu_upsample2d(mode, U(y), C(x), planes, h, w, sh, sw);
}
static void g_upsample2d_backward(nb_upsample_mode mode, float *dx, const float *dy, int64_t planes,
                                  int64_t h, int64_t w, int sh, int sw) {
    nb__cpu_upsample2d_backward(mode, U(dx), C(dy), planes, h, w, sh, sw);
}
static void g_conv2d(float *y, const float *x, const float *w, const float *b, const nb_conv2d_geom *g,
                     void *ws) {
    nb__cpu_conv2d(U(y), C(x), C(w), C(b), g, U(ws));
}
static void g_conv2d_backward_data(float *dx, const float *dy, const float *w, const float *b,
                                   const nb_conv2d_geom *g, void *ws) {
    nb__cpu_conv2d_backward_data(U(dx), C(dy), C(w), C(b), g, U(ws));
}
static void g_conv2d_backward_weight(float *dw, float *db, const float *x, const float *dy,
                                     const nb_conv2d_geom *g, void *ws) {
    nb__cpu_conv2d_backward_weight(U(dw), U(db), C(x), C(dy), g, U(ws));
}
static void g_sgd_update(float *p, float *buf, const float *g, int64_t n, float lr, float wd, float mom,
                         float omd, bool nesterov, bool first) {
    nb__cpu_sgd_update(U(p), U(buf), C(g), n, lr, wd, mom, omd, nesterov, first);
}
static void g_adagrad_update(float *p, float *sum, const float *g, int64_t n, float clr, float wd, float eps) {
    nb__cpu_adagrad_update(U(p), U(sum), C(g), n, clr, wd, eps);
}
static void g_rmsprop_update(float *p, float *sq, float *buf, float *avg, const float *g, int64_t n,
                             float lr, float alpha, float oma, float eps, float wd, float mom) {
    nb__cpu_rmsprop_update(U(p), U(sq), U(buf), U(avg), C(g), n, lr, alpha, oma, eps, wd, mom);
}
static void g_adam_update(float *p, float *m, float *v, float *vmax, const float *g, int64_t n,
                          const nb__adam_scalars *k) {
    nb__cpu_adam_update(U(p), U(m), U(v), U(vmax), C(g), n, k);
}
static float g_norm(const float *x, int64_t n, double p) { return nb__cpu_norm(C(x), n, p); }
static void g_clamp_abs(float *x, int64_t n, float c) { nb__cpu_clamp_abs(U(x), n, c); }
static void g_batchnorm_running(float *rm, float *rv, const float *mean, const float *var, int64_t c,
                                float mom, float unbias) {
    nb__cpu_batchnorm_running(U(rm), U(rv), C(mean), C(var), c, mom, unbias);
}
static void g_batchnorm_fold(float *fw, float *fb, const nb__batchnorm_fold_args *a) {
    nb__batchnorm_fold_args h = {C(a->w), C(a->b), C(a->rm), C(a->rv), C(a->g), C(a->beta),
                                 a->out, a->row, a->eps};
    nb__cpu_batchnorm_fold(U(fw), U(fb), &h);
}
static void g_gemm_u8s8s32(int32_t *c, int64_t ldc, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                           const uint8_t *a, int64_t lda, uint8_t za, const int8_t *b, int64_t ldb, int8_t zb) {
    nb__cpu_gemm_u8s8s32(U(c), ldc, ta, tb, m, n, k, C(a), lda, za, C(b), ldb, zb);
}
static void g_gemm_bf16(float *c, int64_t ldc, bool accumulate, bool ta, bool tb, int64_t m, int64_t n,
                        int64_t k, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb) {
    nb__cpu_gemm_bf16(U(c), ldc, accumulate, ta, tb, m, n, k, C(a), lda, C(b), ldb);
}
static void g_requantize(void *y, int64_t ldy, const int32_t *acc, int64_t ldacc, int64_t m, int64_t n,
                         const nb__requant_args *q) {
    nb__requant_args h = *q;
    h.scale = C(q->scale), h.bias = C(q->bias);
    nb__cpu_requantize(U(y), ldy, C(acc), ldacc, m, n, &h);
}

static void g_quantize(void *y, const float *x, int64_t n, nb_qout out, float scale, int32_t zp) {
    nb__cpu_quantize(U(y), C(x), n, out, scale, zp);
}
static void g_dequantize(float *y, const void *q, int64_t n, nb_qout in, float scale, int32_t zp) {
    nb__cpu_dequantize(U(y), C(q), n, in, scale, zp);
}
static void g_qconv2d(void *y, const uint8_t *x, uint8_t zx, const int8_t *w, const int32_t *wzp,
                      const nb__requant_args *q, const nb_pool2d_geom *pool, void *ws,
                      const nb_conv2d_geom *g) {
    nb__requant_args h = *q;
    h.scale = C(q->scale), h.bias = C(q->bias);
    nb__cpu_qconv2d(U(y), C(x), zx, C(w), wzp, &h, pool, U(ws), g);
}
static void g_fake_quant(float *y, const float *x, const float *scale, const float *zp,
                         int64_t outer, int64_t channels, int64_t inner, int64_t qmin,
                         int64_t qmax) {
    nb__cpu_fake_quant(U(y), C(x), C(scale), C(zp), outer, channels, inner, qmin, qmax);
}
static void g_fake_quant_mask(float *mask, float *k, const float *x, const float *scale,
                              const float *zp, int64_t outer, int64_t channels, int64_t inner,
                              int64_t qmin, int64_t qmax, nb_fq_rule rule) {
    nb__cpu_fake_quant_mask(U(mask), U(k), C(x), C(scale), C(zp), outer, channels, inner, qmin,
                            qmax, rule);
}
static void g_round_half(float *y, const float *x, int64_t n, nb_dtype to) {
    nb__cpu_round_half(U(y), C(x), n, to);
}

static void g_bspline(float *b, const float *x, const float *grid, int64_t n, int64_t in,
                      int64_t m, int k, int deriv) {
    nb__cpu_bspline(U(b), C(x), C(grid), n, in, m, k, deriv);
}
static void g_bspline_backward(float *dx, const float *x, const float *grid, const float *dy,
                               int64_t n, int64_t in, int64_t m, int k, int deriv) {
    nb__cpu_bspline_backward(U(dx), C(x), C(grid), C(dy), n, in, m, k, deriv);
}
static void g_attention(float *o, float *lse, const float *q, const float *k, const float *v,
                        const nb_attention_geom *g) {
    nb_attention_geom h = *g;
    h.mask = C(g->mask);
    nb__cpu_attention(U(o), U(lse), C(q), C(k), C(v), &h);
}
static void g_attention_backward(float *dq, float *dk, float *dv, const float *q, const float *k,
                                 const float *v, const float *o, const float *lse,
                                 const float *dout, const nb_attention_geom *g) {
    nb_attention_geom h = *g;
    h.mask = C(g->mask);
    nb__cpu_attention_backward(U(dq), U(dk), U(dv), C(q), C(k), C(v), C(o), C(lse), C(dout), &h);
}
static void g_layer_norm(float *y, float *mean, float *rstd, const float *x, const float *w,
                         const float *b, int64_t rows, int64_t d, float eps) {
    nb__cpu_layer_norm(U(y), U(mean), U(rstd), C(x), C(w), C(b), rows, d, eps);
}
static void g_layer_norm_backward(float *dx, float *dw, float *db, const float *x, const float *mean,
                                  const float *rstd, const float *w, const float *dy, int64_t rows,
                                  int64_t d) {
    nb__cpu_layer_norm_backward(U(dx), U(dw), U(db), C(x), C(mean), C(rstd), C(w), C(dy), rows, d);
}
static void g_rnn_layer(float *y, float *reserve, const float *xp, const float *w, const float *b,
                        const float *s0, const nb_rnn_geom *g) {
    nb_rnn_geom h = *g;
    h.mask = C(g->mask);
    nb__cpu_rnn_layer(U(y), U(reserve), C(xp), C(w), C(b), C(s0), &h);
}
static void g_rnn_layer_backward(float *dxp, float *dw, float *db, float *ds0, float *work,
                                 const float *w, const float *reserve, const float *dy,
                                 const nb_rnn_geom *g) {
    nb_rnn_geom h = *g;
    h.mask = C(g->mask);
    nb__cpu_rnn_layer_backward(U(dxp), U(dw), U(db), U(ds0), U(work), C(w), C(reserve), C(dy), &h);
}

const nb_backend nb__guarded_backend = {
    .name = "guarded",
    .alloc = g_alloc,
    .free = g_free,
    .fill = g_fill,
    .copy_h2d = g_copy,
    .copy_d2h = g_copy,
    .copy_d2d = g_copy,
    .uniform = g_uniform,
    .unary = g_unary,
    .unary_backward = g_unary_backward,
    .binary = g_binary,
    .where = g_where,
    .copy = g_strided_copy,
    .gather = g_gather,
    .scatter_add = g_scatter_add,
    .gemm = g_gemm,
    .reduce = g_reduce,
    .argmax = g_argmax,
    .softmax = g_softmax,
    .softmax_backward = g_softmax_backward,
    .xent = g_xent,
    .xent_backward = g_xent_backward,
    .accumulate = g_accumulate,
    .max_pool2d = g_max_pool2d,
    .max_pool2d_backward = g_max_pool2d_backward,
    .avg_pool2d = g_avg_pool2d,
    .avg_pool2d_backward = g_avg_pool2d_backward,
    .upsample2d = g_upsample2d,
    .upsample2d_backward = g_upsample2d_backward,
    .conv2d_workspace = nb__cpu_conv2d_workspace,
    .conv2d = g_conv2d,
    .conv2d_backward_data = g_conv2d_backward_data,
    .conv2d_backward_weight = g_conv2d_backward_weight,
    .sgd_update = g_sgd_update,
    .adagrad_update = g_adagrad_update,
    .rmsprop_update = g_rmsprop_update,
    .adam_update = g_adam_update,
    .norm = g_norm,
    .clamp_abs = g_clamp_abs,
    .batchnorm_running = g_batchnorm_running,
    .batchnorm_fold = g_batchnorm_fold,
    .max_pool2d_indices = g_max_pool2d_indices,
    .fake_quant = g_fake_quant,
    .fake_quant_mask = g_fake_quant_mask,
    .bspline = g_bspline,
    .bspline_backward = g_bspline_backward,
    .gemm_u8s8s32 = g_gemm_u8s8s32,
    .gemm_bf16 = g_gemm_bf16,
    .requantize = g_requantize,
    .round_half = g_round_half,
    .quantize = g_quantize,
    .dequantize = g_dequantize,
    .qconv2d_workspace = nb__cpu_qconv2d_workspace,
    .qconv2d = g_qconv2d,
    .attention = g_attention,
    .attention_backward = g_attention_backward,
    .layer_norm = g_layer_norm,
    .layer_norm_backward = g_layer_norm_backward,
    .rnn_layer = g_rnn_layer,
    .rnn_layer_backward = g_rnn_layer_backward,
};
