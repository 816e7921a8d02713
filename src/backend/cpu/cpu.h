/* cpu.h — the CPU backend's kernels, gathered into nb__cpu_backend by cpu.c. */
#ifndef NB_CPU_H
#define NB_CPU_H

#include "../../core/parallel.h"
#include "../backend.h"
#include "dispatch.h"

/* Elements above which an element-wise loop of update.c and clip.c is split across the pool's
 * threads (statically, so each element is updated by one thread and the bits do not depend on
 * the thread count). */
#define NB__CPU_PARALLEL_MIN (1 << 15)

/* memory.c */
void *nb__cpu_alloc(size_t nbytes);
void nb__cpu_free(void *p, size_t nbytes);
void nb__cpu_fill(void *dst, const void *value, size_t elem_size, int64_t n);
void nb__cpu_memcpy(void *dst, const void *src, size_t nbytes);
void nb__cpu_uniform(float *out, int64_t n, uint64_t seed, uint64_t offset);
/* update.c */
void nb__cpu_sgd_update(float *p, float *buf, const float *g, int64_t n, float lr, float weight_decay,
                        float momentum, float one_minus_dampening, bool nesterov, bool first_step);
void nb__cpu_adagrad_update(float *p, float *sum, const float *g, int64_t n, float clr,
                            float weight_decay, float eps);
void nb__cpu_rmsprop_update(float *p, float *square_avg, float *buf, float *grad_avg, const float *g,
                            int64_t n, float lr, float alpha, float one_minus_alpha, float eps,
                            float weight_decay, float momentum);
void nb__cpu_adam_update(float *p, float *exp_avg, float *exp_avg_sq, float *max_exp_avg_sq,
                         const float *g, int64_t n, const nb__adam_scalars *k);
/* clip.c */
float nb__cpu_norm(const float *x, int64_t n, double p);
void nb__cpu_clamp_abs(float *x, int64_t n, float c);
/* norm.c */
void nb__cpu_batchnorm_running(float *rm, float *rv, const float *mean, const float *var, int64_t c,
                               float mom, float unbias);
void nb__cpu_batchnorm_fold(float *fw, float *fb, const nb__batchnorm_fold_args *a);

void nb__cpu_unary(nb_unary_op op, float *y, const float *x, int64_t n, float p0, float p1);
void nb__cpu_unary_backward(nb_unary_op op, float *dx, const float *x, const float *y,
                            const float *dy, int64_t n, float p0, float p1);
void nb__cpu_binary(nb_binary_op op, float *out, const float *a, const int64_t *sa,
                    const float *b, const int64_t *sb, int ndim, const int64_t *shape);
void nb__cpu_where(float *out, const float *c, const int64_t *sc, const float *a,
                   const int64_t *sa, const float *b, const int64_t *sb, int ndim,
                   const int64_t *shape);
void nb__cpu_copy(void *out, const int64_t *so, const void *x, const int64_t *sx, int ndim,
                  const int64_t *shape, size_t elem_size);
void nb__cpu_gather(float *out, const float *x, const int64_t *sx, const int32_t *idx, int ndim,
                    const int64_t *shape, int dim);
void nb__cpu_scatter_add(float *dx, const int64_t *sdx, const float *dy, const int32_t *idx,
                         int ndim, const int64_t *shape, int dim);
void nb__cpu_accumulate(float *dst, const float *src, int64_t n);
void nb__cpu_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
void nb__cpu_reduce(nb_reduce_op op, float *out, const float *x, int64_t outer, int64_t r,
                    int64_t inner);
void nb__cpu_argmax(int32_t *out, const float *x, int64_t outer, int64_t r, int64_t inner);
void nb__cpu_softmax(float *y, const float *x, int64_t outer, int64_t r, int64_t inner, bool log);
float nb__cpu_xent(float *e, const float *x, const int32_t *t, int64_t n, int64_t c, float scale);
/* y = exp(x) with glibc expf's bits, AVX-512 where the CPU has it (y may be x). */
void nb__cpu_exp_floats(float *y, const float *x, int64_t n);
void nb__cpu_xent_backward(float *dx, const float *x, const float *e, const int32_t *t, int64_t n, int64_t c,
                           float g_scale);
void nb__cpu_softmax_backward(float *dx, const float *y, const float *dy, int64_t outer,
                              int64_t r, int64_t inner, bool log);
/* gemm_avx512.c (call only when nb__cpu_isa() is NB_ISA_AVX512): false when it has no kernel
 * for the transposes asked */
bool nb__gemm_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                     int64_t ldc);
/* qgemm.c (contracts in backend.h): the dispatching entries, the portable loops (_plain, any
 * CPU), and the AVX-512 kernels of qgemm_avx512.c (call only with k > 0 and nb__cpu_has_vnni()
 * for int8, nb__cpu_isa() == NB_ISA_AVX512 for bfloat16) */
void nb__cpu_gemm_u8s8s32(int32_t *c, int64_t ldc, bool ta, bool tb, int64_t m, int64_t n,
                          int64_t k, const uint8_t *a, int64_t lda, uint8_t za, const int8_t *b,
                          int64_t ldb, int8_t zb);
void nb__cpu_gemm_bf16(float *c, int64_t ldc, bool accumulate, bool ta, bool tb, int64_t m,
                       int64_t n, int64_t k, const uint16_t *a, int64_t lda, const uint16_t *b,
                       int64_t ldb);
void nb__cpu_requantize(void *y, int64_t ldy, const int32_t *acc, int64_t ldacc, int64_t m,
                        int64_t n, const nb__requant_args *q);
void nb__gemm_u8s8s32_plain(int32_t *c, int64_t ldc, bool ta, bool tb, int64_t m, int64_t n,
                            int64_t k, const uint8_t *a, int64_t lda, uint8_t za, const int8_t *b,
                            int64_t ldb, int8_t zb);
void nb__gemm_bf16_plain(float *c, int64_t ldc, bool accumulate, bool ta, bool tb, int64_t m,
                         int64_t n, int64_t k, const uint16_t *a, int64_t lda, const uint16_t *b,
                         int64_t ldb);
void nb__gemm_u8s8s32_vnni(int32_t *c, int64_t ldc, bool ta, bool tb, int64_t m, int64_t n,
                           int64_t k, const uint8_t *a, int64_t lda, uint8_t za, const int8_t *b,
                           int64_t ldb, int8_t zb);
void nb__gemm_bf16_avx512(float *c, int64_t ldc, bool accumulate, bool ta, bool tb, int64_t m,
                          int64_t n, int64_t k, const uint16_t *a, int64_t lda, const uint16_t *b,
                          int64_t ldb);
/* half.c */
void nb__cpu_round_half(float *y, const float *x, int64_t n, nb_dtype to);
/* qconvert.c */
void nb__cpu_quantize(void *y, const float *x, int64_t n, nb_qout out, float scale,
                      int32_t zero_point);
void nb__cpu_dequantize(float *y, const void *q, int64_t n, nb_qout in, float scale,
                        int32_t zero_point);
/* qconv.c */
size_t nb__cpu_qconv2d_workspace(const nb_conv2d_geom *g);
void nb__cpu_qconv2d(void *y, const uint8_t *x, uint8_t zx, const int8_t *w, const int32_t *wzp,
                     const nb__requant_args *q, const nb_pool2d_geom *pool, void *ws,
                     const nb_conv2d_geom *g);
/* pool.c */
void nb__cpu_max_pool2d(float *y, const float *x, const nb_pool2d_geom *g);
void nb__cpu_max_pool2d_backward(float *dx, const float *x, const float *dy,
                                 const nb_pool2d_geom *g);
void nb__cpu_avg_pool2d(float *y, const float *x, const nb_pool2d_geom *g);
void nb__cpu_avg_pool2d_backward(float *dx, const float *dy, const nb_pool2d_geom *g);
void nb__cpu_max_pool2d_indices(int32_t *at, const float *x, const nb_pool2d_geom *g);
void nb__cpu_upsample2d(nb_upsample_mode mode, float *y, const float *x, int64_t planes,
                        int64_t h, int64_t w, int sh, int sw);
void nb__cpu_upsample2d_backward(nb_upsample_mode mode, float *dx, const float *dy,
                                 int64_t planes, int64_t h, int64_t w, int sh, int sw);
/* conv.c */
size_t nb__cpu_conv2d_workspace(const nb_conv2d_geom *g);
void nb__cpu_conv2d(float *y, const float *x, const float *w, const float *b,
                    const nb_conv2d_geom *g, void *ws);
void nb__cpu_conv2d_backward_data(float *dx, const float *dy, const float *w, const float *b,
                                  const nb_conv2d_geom *g, void *ws);
void nb__cpu_conv2d_backward_weight(float *dw, float *db, const float *x, const float *dy,
                                    const nb_conv2d_geom *g, void *ws);
/* quant.c */
void nb__cpu_fake_quant(float *y, const float *x, const float *scale, const float *zp,
                        int64_t outer, int64_t channels, int64_t inner, int64_t qmin, int64_t qmax);
void nb__cpu_fake_quant_mask(float *mask, float *k, const float *x, const float *scale,
                             const float *zp, int64_t outer, int64_t channels, int64_t inner,
                             int64_t qmin, int64_t qmax, nb_fq_rule rule);
/* attention.c */
void nb__cpu_attention(float *o, float *lse, const float *q, const float *k, const float *v,
                       const nb_attention_geom *g);
void nb__cpu_attention_backward(float *dq, float *dk, float *dv, const float *q, const float *k,
                                const float *v, const float *o, const float *lse,
                                const float *dout, const nb_attention_geom *g);
/* layernorm.c */
void nb__cpu_layer_norm(float *y, float *mean, float *rstd, const float *x, const float *w,
                        const float *b, int64_t rows, int64_t d, float eps);
void nb__cpu_layer_norm_backward(float *dx, float *dw, float *db, const float *x, const float *mean,
                                 const float *rstd, const float *w, const float *dy, int64_t rows,
                                 int64_t d);
/* rnn.c */
void nb__cpu_rnn_layer(float *y, float *reserve, const float *xp, const float *w, const float *b,
                       const float *s0, const nb_rnn_geom *g);
void nb__cpu_rnn_layer_backward(float *dxp, float *dw, float *db, float *ds0, float *work,
                                const float *w, const float *reserve, const float *dy,
                                const nb_rnn_geom *g);

/* bspline.c */
void nb__cpu_bspline(float *b, const float *x, const float *grid, int64_t n, int64_t in,
                     int64_t m, int k, int deriv);
void nb__cpu_bspline_backward(float *dx, const float *x, const float *grid, const float *dy,
                              int64_t n, int64_t in, int64_t m, int k, int deriv);

#endif
