/* cpu.h — the CPU backend's kernels, gathered into nb__cpu_backend by cpu.c. */
#ifndef NB_CPU_H
#define NB_CPU_H

#include "../../core/parallel.h"
#include "../backend.h"
#include "dispatch.h"

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
float nb__cpu_xent(const float *x, const int32_t *t, int64_t n, int64_t c, float scale);
void nb__cpu_xent_backward(float *dx, const float *x, const int32_t *t, int64_t n, int64_t c,
                           float g_scale);
void nb__cpu_softmax_backward(float *dx, const float *y, const float *dy, int64_t outer,
                              int64_t r, int64_t inner, bool log);
/* gemm_avx512.c (call only when nb__cpu_isa() is NB_ISA_AVX512): false when it has no kernel
 * for the transposes asked */
bool nb__gemm_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                     int64_t ldc);
/* pool.c */
void nb__cpu_max_pool2d(float *y, const float *x, const nb_pool2d_geom *g);
void nb__cpu_max_pool2d_backward(float *dx, const float *x, const float *dy,
                                 const nb_pool2d_geom *g);
void nb__cpu_avg_pool2d(float *y, const float *x, const nb_pool2d_geom *g);
void nb__cpu_avg_pool2d_backward(float *dx, const float *dy, const nb_pool2d_geom *g);
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

#endif
