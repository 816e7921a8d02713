/*
 * test_gemm.c — the CPU backend's GEMM (src/backend/cpu/cpu.c and the AVX-512 small-matrix
 * kernels of gemm_avx512.c): every transpose combination, edge sizes, alpha and beta, against a
 * double-precision reference; beta = 0 never reads C; a block of rows gives the same bits as the
 * same rows inside a larger product (so thread splits do not change results); every height of a
 * kernel block; B^T taken a chunk of k at a time gives the bits of one pass.  The kernels are
 * called directly where the CPU has AVX-512, and through nb__cpu_gemm always.
 */
#include "check.h"
#include "backend/cpu/cpu.h"

typedef void gemm_fn(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                     int64_t ldc);

static void kernels(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                    int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (!nb__gemm_avx512(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) /* ta && tb, big */
        nb__cpu_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static float value(int64_t i, int salt) { return (float)((i * 37 + salt * 11) % 29 - 14) / 8.0f; }

/* The largest |got - want| / (sum |terms| + |beta c|) over C: a relative error per element. */
static double worst_error(gemm_fn *gemm, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                          float alpha, float beta) {
    int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1; /* strides wider than rows */
    float *a = malloc(sizeof(float) * (size_t)((ta ? k : m) * lda));
    float *b = malloc(sizeof(float) * (size_t)((tb ? n : k) * ldb)), *c = malloc(sizeof(float) * (size_t)(m * ldc));
    for (int64_t i = 0; i < (ta ? k : m) * lda; i++) a[i] = value(i, 1);
    for (int64_t i = 0; i < (tb ? n : k) * ldb; i++) b[i] = value(i, 2);
    for (int64_t i = 0; i < m * ldc; i++) c[i] = beta == 0.0f ? NAN : value(i, 3);
    double worst = 0;
    float *c0 = malloc(sizeof(float) * (size_t)(m * ldc));
    memcpy(c0, c, sizeof(float) * (size_t)(m * ldc));
    gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0, size = 0;
            for (int64_t p = 0; p < k; p++) {
                double x = ta ? a[p * lda + i] : a[i * lda + p], y = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += x * y, size += fabs(x * y);
            }
            double want = alpha * s + (beta == 0.0f ? 0.0 : beta * (double)c0[i * ldc + j]);
            size = fabs(alpha) * size + (beta == 0.0f ? 0.0 : fabs(beta * (double)c0[i * ldc + j]));
            double err = fabs(c[i * ldc + j] - want) / (size > 0 ? size : 1);
            if (!(err <= worst)) worst = isnan(err) ? INFINITY : err;
        }
    free(a), free(b), free(c), free(c0);
    return worst;
}

static void gemm_matches_a_double_reference(gemm_fn *gemm) {
    static const int64_t sizes[] = {1, 5, 16, 17, 33, 64, 70};
    static const float alphas[] = {1.0f, 1.0f, 0.5f}, betas[] = {0.0f, 1.0f, 2.0f};
    double worst = 0;
    for (int t = 0; t < 4; t++)
        for (int im = 0; im < 7; im++)
            for (int in = 0; in < 7; in++)
                for (int ik = 0; ik < 7; ik++)
                    for (int s = 0; s < 3; s++) {
                        double e = worst_error(gemm, t & 1, t & 2, sizes[im], sizes[in], sizes[ik],
                                               alphas[s], betas[s]);
                        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
                    }
    CHECK(worst < 1e-6); /* float sums of up to 70 terms: a few ulps of their size */
}

/* Each count of rows a block can have (1 to 6 in the wide block, 1 to 12 in the narrow one:
 * a copy of the kernel each) and each (alpha, beta) with a copy of its own, near the double
 * reference: C 80 and 96 columns wide (a wide strip, then a narrow one of 1 or 2 vectors). */
static void every_block_height_matches_a_double_reference(gemm_fn *gemm) {
    static const float alphas[] = {1.0f, 1.0f, 0.5f}, betas[] = {0.0f, 1.0f, 2.0f};
    double worst = 0;
    for (int64_t m = 1; m <= 24; m++)
        for (int t = 0; t < 4; t++)
            for (int s = 0; s < 3; s++)
                for (int64_t n = 80; n <= 96; n += 16) {
                    double e = worst_error(gemm, t & 1, t & 2, m, n, 7, alphas[s], betas[s]);
                    if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
                }
    CHECK(worst < 1e-6);
}

/* Rows [16, m) computed alone give the bits they have in the whole product. */
static void a_block_of_rows_gives_the_same_bits(gemm_fn *gemm) {
    enum { M = 64, N = 784, K = 64 };
    static float a[M * K], b[K * N], whole[M * N], part[M * N];
    for (int i = 0; i < M * K; i++) a[i] = value(i, 4);
    for (int i = 0; i < K * N; i++) b[i] = value(i, 5);
    for (int t = 0; t < 2; t++) {
        bool ta = t == 1;
        int64_t lda = ta ? M : K;
        gemm(ta, false, M, N, K, 1.0f, a, lda, b, N, 0.0f, whole, N);
        gemm(ta, false, M - 16, N, K, 1.0f, ta ? a + 16 : a + 16 * lda, lda, b, N, 0.0f, part + 16 * N, N);
        CHECK(memcmp(whole + 16 * N, part + 16 * N, sizeof(float) * (M - 16) * N) == 0);
    }
}

/* B^T with a long k (transposed a chunk at a time, the sums parked between chunks, C in row
 * panels when it is wide), or in one chunk with an edge of columns, gives the bits of B
 * transposed beforehand, which the kernel reads in one pass over k; and is near the double
 * reference. */
static void b_transposed_in_chunks_gives_the_bits_of_one_pass(void) {
    static const int64_t shapes[][3] = {{64, 64, 784}, {5, 17, 1000}, {40, 600, 100}, {13, 40, 300},
                                        {30, 25, 40}};
    static const float alphas[] = {1.0f, 0.5f}, betas[] = {1.0f, 0.0f};
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (int t = 0; t < 4; t++) {
            int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            bool ta = t & 1;
            float alpha = alphas[t >> 1], beta = betas[t >> 1];
            float *a = malloc(sizeof(float) * (size_t)(m * k)), *b = malloc(sizeof(float) * (size_t)(n * k));
            float *bt = malloc(sizeof(float) * (size_t)(n * k)), *c1 = malloc(sizeof(float) * (size_t)(m * n));
            float *c2 = malloc(sizeof(float) * (size_t)(m * n));
            /* full mantissas: sums of value()'s eighths are exact in any order, these are not */
            for (int64_t i = 0; i < m * k; i++) a[i] = (float)sin(0.37 * (double)i + 6);
            for (int64_t i = 0; i < n * k; i++) b[i] = (float)sin(0.71 * (double)i + 7);
            for (int64_t j = 0; j < n; j++)
                for (int64_t p = 0; p < k; p++) bt[p * n + j] = b[j * k + p];
            for (int64_t i = 0; i < m * n; i++) c1[i] = c2[i] = value(i, 8);
            kernels(ta, true, m, n, k, alpha, a, ta ? m : k, b, k, beta, c1, n);
            kernels(ta, false, m, n, k, alpha, a, ta ? m : k, bt, n, beta, c2, n);
            CHECK(memcmp(c1, c2, sizeof(float) * (size_t)(m * n)) == 0);
            CHECK(worst_error(kernels, ta, true, m, n, k, alpha, beta) < 1e-5); /* sums of 1000 terms */
            free(a), free(b), free(bt), free(c1), free(c2);
        }
}

int main(void) {
    gemm_matches_a_double_reference(nb__cpu_gemm);
    a_block_of_rows_gives_the_same_bits(nb__cpu_gemm);
    if (nb__cpu_isa() == NB_ISA_AVX512) {
        gemm_matches_a_double_reference(kernels);
        every_block_height_matches_a_double_reference(kernels);
        a_block_of_rows_gives_the_same_bits(kernels);
        b_transposed_in_chunks_gives_the_bits_of_one_pass();
    } else {
        printf("no AVX-512 on this CPU: the small-matrix kernels are not run\n");
    }
    return check_summary();
}
