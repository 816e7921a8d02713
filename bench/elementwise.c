/*
 * elementwise.c — nb_add, nb_mul, nb_exp on large contiguous f32 tensors against memcpy, by
 * memory traffic, at 1 and 2 threads.
 *
 * Bytes moved: add and mul read two arrays and write one (12 bytes an element), exp reads one
 * and writes one (8 bytes); memcpy of an array of the same size reads it and writes it
 * (8 bytes an element).  Each side's GB/s is its bytes moved over its time, and the ratio is
 * nabla's GB/s over memcpy's: 1.0 means the op streams memory as fast as a copy does.  At T
 * threads the memcpy is split into T equal parts run by T OpenMP threads, so the peer has the
 * same cores as nabla.
 *
 * Method: inputs made once outside any scope; each nabla call runs in its own scope, so the
 * output reuses the arena block (no page faults after the warm-up).  Samples of nabla and
 * memcpy alternate; figures are medians, the ratio the median of per-pair ratios.
 *
 * Output: a human table, then "@elementwise op=... n=... threads=... nabla_gbs=...
 * memcpy_gbs=... ratio=..." lines for bench/run.sh.  Goal: ratio >= 0.7.
 */
#include "nabla.h"
#include "bench.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/parallel.h"

#define SAMPLES 15

typedef enum { OP_ADD, OP_MUL, OP_EXP, OP_COUNT } op_kind;
static const char *const op_names[OP_COUNT] = {"add", "mul", "exp"};
static const double op_bytes_per_elem[OP_COUNT] = {12.0, 12.0, 8.0};

static double time_nabla(op_kind op, nb_tensor *a, nb_tensor *b) {
    double t0 = now_ns();
    nb_scope_begin();
    nb_tensor *out = op == OP_ADD ? nb_add(a, b) : op == OP_MUL ? nb_mul(a, b) : nb_exp(a);
    nb_scope_end();
    double t = now_ns() - t0;
    if (!out) {
        fprintf(stderr, "%s failed: %s\n", op_names[op], nb_error_message());
        exit(1);
    }
    return t;
}

typedef struct {
    float *dst;
    const float *src;
} copy_job;

static void copy_range(void *arg, int64_t lo, int64_t hi) {
    const copy_job *c = arg;
    memcpy(c->dst + lo, c->src + lo, sizeof(float) * (size_t)(hi - lo));
}

/* memcpy of n floats shared over the library's pool (its thread count set by the caller),
 * as nabla's kernels are. */
static double time_memcpy(float *dst, const float *src, int64_t n) {
    double t0 = now_ns();
    nb__parallel_for(true, n, copy_range, &(copy_job){dst, src});
    return now_ns() - t0;
}

int main(void) {
    static const int64_t sizes[] = {(int64_t)1 << 22, (int64_t)1 << 24}; /* 4M, 16M floats */
    static const int threads[] = {1, 2};
    printf("elementwise: nb_add / nb_mul / nb_exp vs memcpy, by bytes moved\n%s\n",
           nb_backend_info());
    printf("%4s %6s %8s %12s %12s %8s\n", "op", "n", "threads", "nabla GB/s", "memcpy GB/s",
           "ratio");
    nb_manual_seed(1);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int64_t n = sizes[s];
        nb_tensor *a = nb_randn(NB_SHAPE(n)), *b = nb_randn(NB_SHAPE(n));
        float *dst = malloc(sizeof(float) * (size_t)n);
        if (!a || !b || !dst) {
            fprintf(stderr, "allocation failed: %s\n", nb_error_message());
            return 1;
        }
        memset(dst, 0, sizeof(float) * (size_t)n); /* fault its pages in before timing */
        for (size_t ti = 0; ti < sizeof threads / sizeof *threads; ti++) {
            int nt = threads[ti];
            nb_set_num_threads(nt);
            for (int op = 0; op < OP_COUNT; op++) {
                time_nabla(op, a, b); /* warm: arena block, thread pool */
                time_memcpy(dst, nb_data(a), n);
                double tn[SAMPLES], tm[SAMPLES], ratio[SAMPLES];
                for (int i = 0; i < SAMPLES; i++) {
                    tn[i] = time_nabla(op, a, b);
                    tm[i] = time_memcpy(dst, nb_data(a), n);
                    ratio[i] = (op_bytes_per_elem[op] / tn[i]) / (8.0 / tm[i]);
                }
                double gn = op_bytes_per_elem[op] * (double)n / median(tn, SAMPLES);
                double gm = 8.0 * (double)n / median(tm, SAMPLES);
                double r = median(ratio, SAMPLES);
                printf("%4s %5lldM %8d %12.2f %12.2f %8.3f\n", op_names[op], (long long)(n >> 20),
                       nt, gn, gm, r);
                printf("@elementwise op=%s n=%lld threads=%d nabla_gbs=%.3f memcpy_gbs=%.3f "
                       "ratio=%.4f\n", op_names[op], (long long)n, nt, gn, gm, r);
                fflush(stdout);
            }
        }
        free(dst);
        nb_tensor_free(a);
        nb_tensor_free(b);
    }
    return 0;
}
