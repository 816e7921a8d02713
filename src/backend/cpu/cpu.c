/*
 * cpu.c — the CPU backend: GEMM through OpenBLAS's cblas_sgemm (shared out over the library's
 * thread pool), the kernel table, and the backend's description.  Which backend serves a device is
 * backend.c's choice.
 */
#include "cpu.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>

/* OpenBLAS's own thread pool would compete with the library's for the same cores: the library runs
 * every BLAS call single-threaded and shares large GEMMs out itself (nb__cpu_gemm).  Setting one
 * thread is not enough: the pthread build starts its workers when it is loaded, and each spins on
 * sched_yield for 2^28 cycles before it sleeps (blas_server.c), 0.1-0.2 s of a core at every
 * start (12 % of a 4-epoch MLP run's CPU time, and on a busy machine time taken from the
 * training thread).  So the workers are also shut down, at load, through the function OpenBLAS's
 * own fork handler uses; with one thread set, no later call starts them again.  It is weak: a
 * serial OpenBLAS has no workers and no such function. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

__attribute__((constructor)) static void blas_single(void) {
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}

/* The AVX-512 small-matrix kernels (gemm_avx512.c) against OpenBLAS 0.3.21, single-threaded,
 * measured with bench/gemm.c on an AVX-512 Xeon (shares of its FMA peak), by the kernels OpenBLAS
 * runs there (OPENBLAS_CORETYPE):
 *   AVX-512 ones (SkylakeX): OpenBLAS wins at most shapes (80-94 % against 70-77 % at 64^3; the
 *     training step's 8 GEMMs 62 % against 59 %), so it keeps them all;
 *   AVX2 ones (Haswell; Zen uses the same): the kernels win 1.5-2.3x from 64^3 to 512^3, except
 *     with fewer than 16 columns of C (one part-filled vector per row), where only x W^T's dot
 *     kernel keeps up; at 1024^3 OpenBLAS's packing wins (80 against 56 GFLOP/s);
 *   older ones (Prescott, which 0.3.21 falls back to on CPUs it does not know, such as Sapphire
 *     Rapids under a hypervisor): the kernels win 3-4.6x up to 512^3 and 1.7x at 1024^3.
 * So with AVX-512 in the CPU and not in OpenBLAS's kernels, the kernels take C at least 16 columns
 * wide (or any x W^T), with op(B) (k x n) and C each up to SMALL_AVX2 floats against AVX2 kernels, SMALL_OLD
 * against older ones (the largest measured).  The choice depends on the machine only, never on
 * timing, so a run's bits are reproducible. */
#define SMALL_AVX2 (256.0 * 1024)
#define SMALL_OLD (1024.0 * 1024)

static double small_limit; /* 0: OpenBLAS for everything */
static pthread_once_t small_once = PTHREAD_ONCE_INIT;

static void choose_small(void) {
    static const char *const avx512_cores[] = {"skylakex", "cooperlake", "sapphirerapids"};
    static const char *const avx2_cores[] = {"haswell", "zen"};
    const char *core = openblas_get_corename();
    if (nb__cpu_isa() != NB_ISA_AVX512 || !core) return;
    for (size_t i = 0; i < sizeof avx512_cores / sizeof avx512_cores[0]; i++)
        if (strcasecmp(core, avx512_cores[i]) == 0) return;
    small_limit = SMALL_OLD;
    for (size_t i = 0; i < sizeof avx2_cores / sizeof avx2_cores[0]; i++)
        if (strcasecmp(core, avx2_cores[i]) == 0) small_limit = SMALL_AVX2;
}

static bool small_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
    pthread_once(&small_once, choose_small);
    bool wide_enough = n >= 16 || (tb && !ta); /* narrow x W^T: the dot kernel, 1.8x Prescott's */
    return wide_enough && (double)k * (double)n <= small_limit && (double)m * (double)n <= small_limit;
}

static void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
#if defined(__x86_64__)
    if (small_gemm(ta, tb, m, n, k) && nb__gemm_avx512(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc))
        return;
#endif
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta,
                c, (blasint)ldc);
}

/* Which way a shared GEMM cuts C.  For the small-matrix kernels, across the transposed operand
 * when there is one: a Linear layer's x W^T by W's rows (C's columns, the output features) and
 * its g^T x by C's rows (again the output features), so that with the pool's pieces (the caller
 * takes a job's first pieces, the workers its last) each thread computes, every step, the
 * output features whose weight rows, weight-gradient rows and optimiser update it handles
 * anyway, and those stay in its core's cache.  On 2 idle cores that made the course MLP's
 * 2 threads 7 % faster than 1, where cutting by the longer side of C, or x W^T along K, left
 * them level: each step's weights and gradients then crossed between the cores' caches.
 * Otherwise (OpenBLAS) by the longer side. */
static bool cut_rows(bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
    if (small_gemm(ta, tb, m, n, k) && (ta || tb)) return ta;
    return m >= n;
}

/* How many threads share one GEMM cut along a side of length len: below ~1 MFLOP a fork costs
 * more than it saves. */
static int gemm_parts(int64_t m, int64_t n, int64_t k, int64_t len) {
    int threads = nb__threads();
    if (threads < 2 || nb__in_parallel() || 2.0 * (double)m * (double)n * (double)k < 1e6) return 1;
    return len >= 32 ? (int)(threads < len / 16 ? threads : len / 16) : 1;
}

/* Through OpenBLAS, a small output with a long inner dimension ([64, 784] @ [784, 64]) is split
 * along K instead: each thread multiplies its slice of K into its own partial product, packing
 * only its share of both operands (a row or column split would pack one operand in full on
 * every thread), and the partials are added to C in thread order, so a given thread count
 * always gives the same bits.  The small-matrix kernels pack nothing, and cut C (cut_rows). */
#define KSPLIT_MAX_OUT 4096 /* output elements of one partial: the partials live on the stack */
#define KSPLIT_MAX_PARTS 4

static bool ksplit_fits(int parts, int64_t m, int64_t n, int64_t k) {
    int64_t big = m > n ? m : n;
    return parts <= KSPLIT_MAX_PARTS && m * n <= KSPLIT_MAX_OUT && k >= 4 * big && k >= 64 * parts;
}

/* One GEMM's arguments, for the pieces that share it out. */
typedef struct {
    bool ta, tb, by_rows;
    int64_t m, n, k, lda, ldb, ldc, step;
    float alpha, beta;
    const float *a, *b;
    float *c, *partial;
} gemm_job;

/* Piece p of a split along K: C (p = 0, with beta) or partial p - 1 (beta 0) from K slice p. */
static void k_slice(void *arg, int64_t p, int64_t end) {
    const gemm_job *g = arg;
    (void)end;
    int64_t lo = p * g->step, hi = lo + g->step < g->k ? lo + g->step : g->k;
    const float *ap = g->ta ? g->a + lo * g->lda : g->a + lo, *bp = g->tb ? g->b + lo : g->b + lo * g->ldb;
    float *part = g->partial + (p - 1) * KSPLIT_MAX_OUT;
    if (p == 0)
        sgemm(g->ta, g->tb, g->m, g->n, hi - lo, g->alpha, ap, g->lda, bp, g->ldb, g->beta, g->c, g->ldc);
    else if (lo < hi)
        sgemm(g->ta, g->tb, g->m, g->n, hi - lo, g->alpha, ap, g->lda, bp, g->ldb, 0.0f, part, g->n);
    else
        for (int64_t i = 0; i < g->m * g->n; i++) part[i] = 0.0f;
}

static void gemm_split_k(int parts, gemm_job *g) {
    float partial[KSPLIT_MAX_PARTS - 1][KSPLIT_MAX_OUT];
    g->step = (g->k + parts - 1) / parts;
    g->partial = partial[0];
    nb__parallel_each(parts, k_slice, g);
    for (int p = 1; p < parts; p++)
        for (int64_t i = 0; i < g->m; i++)
            for (int64_t j = 0; j < g->n; j++) g->c[i * g->ldc + j] += partial[p - 1][i * g->n + j];
}

/* Piece p of a split of C into blocks of whole rows or columns (cut_rows). */
static void c_block(void *arg, int64_t p, int64_t end) {
    const gemm_job *g = arg;
    (void)end;
    bool by_rows = g->by_rows;
    int64_t len = by_rows ? g->m : g->n, lo = p * g->step, hi = lo + g->step < len ? lo + g->step : len;
    if (lo >= hi) return;
    if (by_rows) /* rows lo..hi of op(A) and of C */
        sgemm(g->ta, g->tb, hi - lo, g->n, g->k, g->alpha, g->ta ? g->a + lo : g->a + lo * g->lda,
              g->lda, g->b, g->ldb, g->beta, g->c + lo * g->ldc, g->ldc);
    else /* columns lo..hi of op(B) and of C */
        sgemm(g->ta, g->tb, g->m, hi - lo, g->k, g->alpha, g->a, g->lda,
              g->tb ? g->b + lo * g->ldb : g->b + lo, g->ldb, g->beta, g->c + lo, g->ldc);
}

void nb__cpu_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) { /* C = beta C; BLAS implementations disagree on k == 0 */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    bool by_rows = cut_rows(ta, tb, m, n, k), small = small_gemm(ta, tb, m, n, k);
    int64_t len = by_rows ? m : n;
    int parts = gemm_parts(m, n, k, small ? len : (m >= n ? m : n));
    if (parts == 1) {
        sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    gemm_job g = {ta, tb, by_rows, m, n, k, lda, ldb, ldc, 0, alpha, beta, a, b, c, NULL};
    if (!small && ksplit_fits(parts, m, n, k)) {
        gemm_split_k(parts, &g);
        return;
    }
    /* Each block a single-threaded GEMM: the split depends on the thread count only, so a
     * thread count always gives the same bits. */
    g.step = ((len + parts - 1) / parts + 15) / 16 * 16; /* whole vector registers per block */
    nb__parallel_each(parts, c_block, &g);
}

const nb_backend nb__cpu_backend = {
    .name = "cpu",
    .host_memory = true,
    .alloc = nb__cpu_alloc,
    .free = nb__cpu_free,
    .fill = nb__cpu_fill,
    .copy_h2d = nb__cpu_memcpy,
    .copy_d2h = nb__cpu_memcpy,
    .copy_d2d = nb__cpu_memcpy,
    .uniform = nb__cpu_uniform,
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
    .sgd_update = nb__cpu_sgd_update,
    .adagrad_update = nb__cpu_adagrad_update,
    .rmsprop_update = nb__cpu_rmsprop_update,
    .adam_update = nb__cpu_adam_update,
    .norm = nb__cpu_norm,
    .clamp_abs = nb__cpu_clamp_abs,
    .batchnorm_running = nb__cpu_batchnorm_running,
    .batchnorm_fold = nb__cpu_batchnorm_fold,
    .max_pool2d_indices = nb__cpu_max_pool2d_indices,
    .fake_quant = nb__cpu_fake_quant,
    .fake_quant_mask = nb__cpu_fake_quant_mask,
    .bspline = nb__cpu_bspline,
    .bspline_backward = nb__cpu_bspline_backward,
    .gemm_u8s8s32 = nb__cpu_gemm_u8s8s32,
    .gemm_bf16 = nb__cpu_gemm_bf16,
    .requantize = nb__cpu_requantize,
    .round_half = nb__cpu_round_half,
    .quantize = nb__cpu_quantize,
    .dequantize = nb__cpu_dequantize,
    .qconv2d_workspace = nb__cpu_qconv2d_workspace,
    .qconv2d = nb__cpu_qconv2d,
    .attention = nb__cpu_attention,
    .attention_backward = nb__cpu_attention_backward,
    .layer_norm = nb__cpu_layer_norm,
    .layer_norm_backward = nb__cpu_layer_norm_backward,
    .rnn_layer = nb__cpu_rnn_layer,
    .rnn_layer_backward = nb__cpu_rnn_layer_backward,
};

const char *nb_backend_info(void) {
    static char info[256];
    int threads = nb_get_num_threads();
    snprintf(info, sizeof info, "%s: %s, %d thread%s, kernels for %s", nb__backend(NB_CPU)->name,
             openblas_get_config(), threads, threads == 1 ? "" : "s", nb__cpu_features());
    return info;
}
