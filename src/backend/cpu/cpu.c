/*
 * cpu.c — the CPU backend: GEMM through OpenBLAS's cblas_sgemm, the kernel table, and the
 * thread settings shared by OpenMP and OpenBLAS.
 */
#include "cpu.h"

#include <cblas.h>
#include <stdio.h>
#ifdef _OPENMP
#include <omp.h>
#endif

void nb__cpu_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) { /* C = beta C; BLAS implementations disagree on k == 0 */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta,
                c, (blasint)ldc);
}

const nb_backend nb__cpu_backend = {
    .name = "cpu",
    .unary = nb__cpu_unary,
    .unary_backward = nb__cpu_unary_backward,
    .binary = nb__cpu_binary,
    .where = nb__cpu_where,
    .copy = nb__cpu_copy,
    .gather = nb__cpu_gather,
    .scatter_add = nb__cpu_scatter_add,
    .gemm = nb__cpu_gemm,
    .reduce = nb__cpu_reduce,
    .argmax = nb__cpu_argmax,
    .softmax = nb__cpu_softmax,
    .softmax_backward = nb__cpu_softmax_backward,
    .accumulate = nb__cpu_accumulate,
};

const nb_backend *nb__backend(nb_device device) {
    return device == NB_CPU ? &nb__cpu_backend : NULL;
}

int nb_get_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void nb_set_num_threads(int n) {
    if (n < 1) n = 1;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
}

const char *nb_backend_info(void) {
    static char info[256];
    snprintf(info, sizeof info, "cpu: %s, %s, %d thread%s", openblas_get_config(),
#ifdef _OPENMP
             "OpenMP",
#else
             "no OpenMP",
#endif
             nb_get_num_threads(), nb_get_num_threads() == 1 ? "" : "s");
    return info;
}
