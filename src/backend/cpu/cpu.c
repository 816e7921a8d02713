/*
 * cpu.c — the CPU backend: GEMM through OpenBLAS's cblas_sgemm (shared out over OpenMP
 * threads by the library), the kernel table, and the thread setting.
 */
#include "cpu.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS's own thread pool would compete with OpenMP's for the same cores: the library runs
 * every BLAS call single-threaded and shares large GEMMs out itself (nb__cpu_gemm). */
static pthread_once_t blas_single_once = PTHREAD_ONCE_INIT;
static void blas_single(void) { openblas_set_num_threads(1); }

static void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta,
                c, (blasint)ldc);
}

/* How many threads share one GEMM: below ~1 MFLOP a fork costs more than it saves. */
static int gemm_parts(int64_t m, int64_t n, int64_t k) {
#ifdef _OPENMP
    int threads = omp_get_max_threads();
    if (threads < 2 || omp_in_parallel() || 2.0 * (double)m * (double)n * (double)k < 1e6) return 1;
    int64_t len = m >= n ? m : n;
    return len >= 32 ? (int)(threads < len / 16 ? threads : len / 16) : 1;
#else
    (void)m, (void)n, (void)k;
    return 1;
#endif
}

/* A small output with a long inner dimension (a Linear layer's forward, [64, 784] @ [784, 64])
 * is split along K instead: each thread multiplies its slice of K into its own partial product,
 * packing only its share of both operands (a row or column split would pack one operand in full
 * on every thread), and the partials are added to C in thread order, so a given thread count
 * always gives the same bits. */
#define KSPLIT_MAX_OUT 4096 /* output elements of one partial: the partials live on the stack */
#define KSPLIT_MAX_PARTS 4

static bool ksplit_fits(int parts, int64_t m, int64_t n, int64_t k) {
    int64_t big = m > n ? m : n;
    return parts <= KSPLIT_MAX_PARTS && m * n <= KSPLIT_MAX_OUT && k >= 4 * big && k >= 64 * parts;
}

static void gemm_split_k(int parts, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                         float *c, int64_t ldc) {
    float partial[KSPLIT_MAX_PARTS - 1][KSPLIT_MAX_OUT];
    int64_t step = (k + parts - 1) / parts;
    float(*part)[KSPLIT_MAX_OUT] = partial;
    #pragma omp parallel for num_threads(parts) schedule(static)
    for (int p = 0; p < parts; p++) {
        int64_t lo = p * step, hi = lo + step < k ? lo + step : k;
        const float *ap = ta ? a + lo * lda : a + lo, *bp = tb ? b + lo : b + lo * ldb;
        if (p == 0)
            sgemm(ta, tb, m, n, hi - lo, alpha, ap, lda, bp, ldb, beta, c, ldc);
        else if (lo < hi)
            sgemm(ta, tb, m, n, hi - lo, alpha, ap, lda, bp, ldb, 0.0f, part[p - 1], n);
        else
            for (int64_t i = 0; i < m * n; i++) part[p - 1][i] = 0.0f;
    }
    for (int p = 1; p < parts; p++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] += part[p - 1][i * n + j];
}

void nb__cpu_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) { /* C = beta C; BLAS implementations disagree on k == 0 */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    pthread_once(&blas_single_once, blas_single);
    int parts = gemm_parts(m, n, k);
    if (parts == 1) {
        sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if (ksplit_fits(parts, m, n, k)) {
        gemm_split_k(parts, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* Split C into `parts` blocks of whole rows (or columns, when C is wider than tall), one
     * per thread, each a single-threaded GEMM: the split depends on the thread count only, so
     * a thread count always gives the same bits. */
    bool by_rows = m >= n;
    int64_t len = by_rows ? m : n, step = (len + parts - 1) / parts;
    step = (step + 15) / 16 * 16; /* whole vector registers per block */
    #pragma omp parallel for num_threads(parts) schedule(static)
    for (int p = 0; p < parts; p++) {
        int64_t lo = p * step, hi = lo + step < len ? lo + step : len;
        if (lo >= hi) continue;
        if (by_rows) /* rows lo..hi of op(A) and of C */
            sgemm(ta, tb, hi - lo, n, k, alpha, ta ? a + lo : a + lo * lda, lda, b, ldb, beta,
                  c + lo * ldc, ldc);
        else /* columns lo..hi of op(B) and of C */
            sgemm(ta, tb, m, hi - lo, k, alpha, a, lda, tb ? b + lo * ldb : b + lo, ldb, beta,
                  c + lo, ldc);
    }
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
    .xent = nb__cpu_xent,
    .xent_backward = nb__cpu_xent_backward,
    .accumulate = nb__cpu_accumulate,
    .max_pool2d = nb__cpu_max_pool2d,
    .max_pool2d_backward = nb__cpu_max_pool2d_backward,
    .avg_pool2d = nb__cpu_avg_pool2d,
    .avg_pool2d_backward = nb__cpu_avg_pool2d_backward,
    .upsample2d = nb__cpu_upsample2d,
    .upsample2d_backward = nb__cpu_upsample2d_backward,
    .conv2d_workspace = nb__cpu_conv2d_workspace,
    .conv2d = nb__cpu_conv2d,
    .conv2d_backward_data = nb__cpu_conv2d_backward_data,
    .conv2d_backward_weight = nb__cpu_conv2d_backward_weight,
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
