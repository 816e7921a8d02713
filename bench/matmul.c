/*
 * matmul.c — nb_matmul against a direct cblas_sgemm on the same input buffers, square [n,n]
 * f32 matrices, at the library's default thread count.
 *
 * The peer is OpenBLAS at its best on the same cores: its own thread pool, with as many threads
 * as nabla uses.  nabla runs OpenBLAS single-threaded and shares large GEMMs out over its pool
 * itself (src/backend/cpu/cpu.c), so the OpenBLAS setting is raised for the peer's samples and
 * put back to one thread for nabla's.
 *
 * Method.  The inputs are made once, outside any scope; each nabla call runs inside a scope that
 * is opened and closed around it, so the output comes from the same arena block every time (the
 * steady state of a training step).  A sample is `inner` back-to-back calls, sized so that one
 * sample lasts about SAMPLE_NS.  A round is a block of nabla samples, then a block of OpenBLAS
 * samples; figures are medians over all samples, the ratio the median over rounds of the
 * ratio of the two blocks' medians, so both sides of a ratio saw about the same machine load.
 *
 * The two thread pools spin for a while after their last job and steal the cores from the other:
 * OpenBLAS's workers for about 2^28 cycles (THREAD_TIMEOUT; about 0.1 s), which was measured to
 * cut nabla's 512 GEMM from 190 to 35 GFLOP/s, and (when nabla used OpenMP) libgomp's for a few
 * milliseconds, which cut
 * OpenBLAS's by a fifth.  Each block therefore starts after the other pool has gone to sleep.
 *
 * Output: a human table, then one "@matmul n=... threads=... nabla_gflops=... blas_gflops=...
 * ratio=... same=..." line per size for bench/run.sh.  Goal: ratio >= 0.95.
 */
#include "nabla.h"
#include "bench.h"

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE_NS 20e6        /* 20 ms: long enough that clock and scope overheads vanish */
#define POOL_SETTLE_MS 50     /* nabla's idle workers spin 20 us: ample */
#define MAX_ROUNDS 9
#define MAX_PER_BLOCK 5

static void nabla_call(nb_tensor *a, nb_tensor *b) {
    nb_scope_begin();
    if (!nb_matmul(a, b)) {
        fprintf(stderr, "matmul failed: %s\n", nb_error_message());
        exit(1);
    }
    nb_scope_end();
}

static void blas_call(int n, const float *a, const float *b, float *c) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
}

/* One block: `count` samples of `inner` calls each, in ns per call. */
static void nabla_block(nb_tensor *a, nb_tensor *b, int inner, int count, double *ns) {
    for (int s = 0; s < count; s++) {
        double t0 = now_ns();
        for (int i = 0; i < inner; i++) nabla_call(a, b);
        ns[s] = (now_ns() - t0) / inner;
    }
}

static void blas_block(int n, const float *a, const float *b, float *c, int threads, int inner,
                       int count, double *ns) {
    openblas_set_num_threads(threads);
    blas_call(n, a, b, c); /* wakes the pool */
    for (int s = 0; s < count; s++) {
        double t0 = now_ns();
        for (int i = 0; i < inner; i++) blas_call(n, a, b, c);
        ns[s] = (now_ns() - t0) / inner;
    }
    openblas_set_num_threads(1);
}

/* Whether nabla's result has the direct call's bits: it does where nabla calls OpenBLAS; where
 * its small-matrix kernels run (bench/gemm.c), the sums are rounded in another order. */
static bool same_result(nb_tensor *a, nb_tensor *b, int n, const float *c) {
    nb_scope_begin();
    nb_tensor *out = nb_matmul(a, b);
    bool same = out && memcmp(nb_data(out), c, sizeof(float) * (size_t)n * (size_t)n) == 0;
    nb_scope_end();
    return same;
}

int main(void) {
    static const int sizes[] = {64, 128, 256, 512, 1024, 2048};
    int threads = nb_get_num_threads();
    printf("matmul: nb_matmul vs cblas_sgemm (OpenBLAS on %d thread%s), [n,n] @ [n,n] f32\n%s\n",
           threads, threads == 1 ? "" : "s", nb_backend_info());
    printf("%6s %8s %12s %12s %8s %10s\n", "n", "samples", "nabla GF/s", "BLAS GF/s", "ratio",
           "same bits");
    nb_manual_seed(1);
    for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
        int n = sizes[z];
        nb_tensor *a = nb_rand(NB_SHAPE(n, n)), *b = nb_rand(NB_SHAPE(n, n));
        float *c = malloc(sizeof(float) * (size_t)n * (size_t)n);
        if (!a || !b || !c) {
            fprintf(stderr, "allocation failed for n=%d: %s\n", n, nb_error_message());
            return 1;
        }
        const float *pa = nb_data(a), *pb = nb_data(b);
        /* warm nabla (arena block, thread pool) and size the samples from its speed */
        nabla_call(a, b);
        double t0 = now_ns();
        nabla_call(a, b);
        double one = now_ns() - t0;
        int inner = one >= SAMPLE_NS ? 1 : (int)(SAMPLE_NS / one);
        /* fewer rounds where one call is long, to keep the whole run within about 30 s */
        int rounds = n >= 2048 ? 5 : MAX_ROUNDS, per_block = n >= 2048 ? 3 : MAX_PER_BLOCK;
        double tn[MAX_ROUNDS * MAX_PER_BLOCK], tb[MAX_ROUNDS * MAX_PER_BLOCK], ratio[MAX_ROUNDS];
        for (int r = 0; r < rounds; r++) {
            double *bn = tn + r * per_block, *bb = tb + r * per_block;
            sleep_ms(BLAS_SETTLE_MS);
            nabla_block(a, b, inner, per_block, bn);
            sleep_ms(POOL_SETTLE_MS);
            blas_block(n, pa, pb, c, threads, inner, per_block, bb);
            ratio[r] = median(bb, per_block) / median(bn, per_block);
        }
        int samples = rounds * per_block;
        double flop = 2.0 * n * n * n;
        double gn = flop / median(tn, samples), gb = flop / median(tb, samples);
        double q = median(ratio, rounds);
        const char *same = same_result(a, b, n, c) ? "yes" : "NO";
        printf("%6d %8d %12.1f %12.1f %8.3f %10s\n", n, samples, gn, gb, q, same);
        printf("@matmul n=%d threads=%d nabla_gflops=%.2f blas_gflops=%.2f ratio=%.4f same=%s\n",
               n, threads, gn, gb, q, same);
        fflush(stdout);
        free(c);
        nb_tensor_free(a);
        nb_tensor_free(b);
    }
    return 0;
}
