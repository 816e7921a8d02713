/*
 * conv.c — Conv2d forward + backward (nb_conv2d, then nb_backward_grad: dx, dW and db) against
 * OpenBLAS's GEMM of the same inner shape, in GFLOP/s, at 1 thread and at 2.
 *
 * The layer: x [32, 64, 28, 28], w [64, 64, 3, 3], b [64], padding 1 (a mid-size CNN layer).
 * One pass is 2 N C_out H W C_in 9 = 1.85 GFLOP (y = w col(x); dx = col2im(w^T dy); dW = dy
 * col(x)^T are each that GEMM, transposed); a training step is three passes.  The bias, im2col,
 * col2im and the accumulation of x's gradient are counted as overhead, not as flops.
 *
 * The peer is cblas_sgemm on M = C_out = 64, N = N H W = 25088, K = C_in 9 = 576 — the forward
 * pass as one GEMM, with the columns already built — at OpenBLAS's best on the same cores: its
 * own thread pool with as many threads as nabla uses.  nabla runs OpenBLAS single-threaded
 * (src/backend/cpu/cpu.c) and shares the work out over OpenMP itself, so the OpenBLAS setting
 * is raised for the peer's samples and put back to one thread for nabla's.  As in matmul.c,
 * each block of samples starts after the other side's idle workers have stopped spinning.
 * A thin GEMM (M = 64) runs below OpenBLAS's peak, so a square one of similar work
 * ([1024 x 1024] @ [1024 x 1024], 2.1 GFLOP) is timed too, and the goal is judged against the
 * faster of the two.
 *
 * Method.  Inputs and the output gradient are made once; each step runs in a scope opened and
 * closed around it (the steady state of training: the im2col workspace comes from the arena).
 * A round is a block of nabla samples then a block of OpenBLAS samples, one call per sample;
 * figures are medians over all samples, the ratio the median over rounds of the ratio of the
 * blocks' medians.  The machine may be shared: figures are noisy, run it more than once.
 *
 * Output: a table, then "@conv threads=... conv_gflops=... gemm_gflops=... square_gflops=...
 * ratio=... goal=0.5 PASS|MISS" per thread count, ratio = conv / the faster GEMM.  Goal: >= 0.5.
 */
#include "nabla.h"
#include "bench.h"

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 32
#define CH 64
#define SIDE 28
#define GOAL 0.5
#define OPENMP_SETTLE_MS 50 /* libgomp's idle workers spin a few ms */
#define ROUNDS 7
#define PER_BLOCK 3
#define SQUARE 1024

typedef struct {
    nb_tensor *x, *w, *b, *dy;
} layer;

static void conv_step(const layer *l) {
    nb_scope_begin();
    nb_tensor *y = nb_conv2d(l->x, l->w, l->b, &(nb_conv2d_opts){.padding = {1, 1}});
    if (!y || nb_backward_grad(y, l->dy) != NB_OK) {
        fprintf(stderr, "conv2d step failed: %s\n", nb_error_message());
        exit(1);
    }
    nb_scope_end();
}

/* The forward pass's GEMM (square: false), or the square one, on a, b, c. */
static void gemm_call(bool square, const float *a, const float *b, float *c) {
    const int m = square ? SQUARE : CH, n = square ? SQUARE : BATCH * SIDE * SIDE;
    const int k = square ? SQUARE : CH * 9;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
}

/* One block of PER_BLOCK samples of a GEMM at `threads` OpenBLAS threads, in ns per call. */
static void gemm_block(bool square, int threads, const float *a, const float *b, float *c,
                       double *ns) {
    openblas_set_num_threads(threads);
    gemm_call(square, a, b, c); /* wakes the pool */
    for (int s = 0; s < PER_BLOCK; s++) {
        double t0 = now_ns();
        gemm_call(square, a, b, c);
        ns[s] = now_ns() - t0;
    }
    openblas_set_num_threads(1);
}

int main(void) {
    int max_threads = nb_get_num_threads();
    printf("conv: Conv2d [%d,%d,%d,%d] 3x3 pad 1, forward + backward, vs cblas_sgemm "
           "[%d x %d] @ [%d x %d]\n%s\n", BATCH, CH, SIDE, SIDE, CH, CH * 9, CH * 9,
           BATCH * SIDE * SIDE, nb_backend_info());
    nb_manual_seed(1);
    layer l = {nb_randn(4, (int64_t[]){BATCH, CH, SIDE, SIDE}),
               nb_randn(4, (int64_t[]){CH, CH, 3, 3}), nb_randn(1, (int64_t[]){CH}),
               nb_randn(4, (int64_t[]){BATCH, CH, SIDE, SIDE})};
    nb_set_requires_grad(l.x, true);
    nb_set_requires_grad(l.w, true);
    nb_set_requires_grad(l.b, true);
    size_t n_a = (size_t)SQUARE * SQUARE, n_b = (size_t)CH * 9 * BATCH * SIDE * SIDE;
    size_t n_c = (size_t)CH * BATCH * SIDE * SIDE; /* each at least the square's n_a */
    float *a = malloc(sizeof(float) * n_a), *b = malloc(sizeof(float) * n_b);
    float *c = malloc(sizeof(float) * n_c);
    if (!l.x || !l.w || !l.b || !l.dy || !a || !b || !c) {
        fprintf(stderr, "allocation failed: %s\n", nb_error_message());
        return 1;
    }
    for (size_t i = 0; i < n_a; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < n_b; i++) b[i] = (float)(i % 5) * 0.1f;
    const double pass = 2.0 * BATCH * CH * SIDE * SIDE * CH * 9, step = 3 * pass;
    const double square = 2.0 * SQUARE * SQUARE * SQUARE;
    printf("%8s %8s %12s %12s %12s %8s\n", "threads", "samples", "conv GF/s", "GEMM GF/s",
           "square GF/s", "ratio");
    for (int threads = 1; threads <= (max_threads < 2 ? max_threads : 2); threads++) {
        nb_set_num_threads(threads);
        conv_step(&l); /* warm: arena blocks, thread pool */
        double tn[ROUNDS * PER_BLOCK], tb[ROUNDS * PER_BLOCK], ts[ROUNDS * PER_BLOCK];
        double ratio[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            double *bn = tn + r * PER_BLOCK, *bb = tb + r * PER_BLOCK, *bs = ts + r * PER_BLOCK;
            sleep_ms(BLAS_SETTLE_MS);
            for (int s = 0; s < PER_BLOCK; s++) {
                double t0 = now_ns();
                conv_step(&l);
                bn[s] = now_ns() - t0;
            }
            sleep_ms(OPENMP_SETTLE_MS);
            gemm_block(false, threads, a, b, c, bb);
            gemm_block(true, threads, a, b, c, bs);
            double peer = pass / median(bb, PER_BLOCK), peer_sq = square / median(bs, PER_BLOCK);
            ratio[r] = (step / median(bn, PER_BLOCK)) / (peer > peer_sq ? peer : peer_sq);
        }
        int samples = ROUNDS * PER_BLOCK;
        double gc = step / median(tn, samples), gg = pass / median(tb, samples);
        double gs = square / median(ts, samples), q = median(ratio, ROUNDS);
        const char *verdict = q >= GOAL ? "PASS" : "MISS";
        printf("%8d %8d %12.1f %12.1f %12.1f %8.3f  %s\n", threads, samples, gc, gg, gs, q,
               verdict);
        printf("@conv threads=%d conv_gflops=%.2f gemm_gflops=%.2f square_gflops=%.2f ratio=%.4f "
               "goal=%.2f %s\n", threads, gc, gg, gs, q, GOAL, verdict);
        fflush(stdout);
    }
    nb_set_num_threads(max_threads);
    free(a), free(b), free(c);
    nb_tensor_free(l.x), nb_tensor_free(l.w), nb_tensor_free(l.b), nb_tensor_free(l.dy);
    return 0;
}
