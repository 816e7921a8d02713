/*
 * bench.h — timing helpers shared by the benchmarks: a monotonic clock in nanoseconds, a sleep
 * that lets other thread pools' idle workers stop spinning before a block of samples, and the
 * median, the figure every benchmark reports (robust to the outliers of a shared machine).
 */
#ifndef NB_BENCH_H
#define NB_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* CPU time of this process (all its threads), in nanoseconds: on a shared machine it counts
 * the work done, not the time spent waiting for a core. */
static inline double cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* How long to sleep before timing a side after OpenBLAS ran: its idle workers spin about 0.1 s,
 * and would take CPU from what is timed next (with margin). */
#define BLAS_SETTLE_MS 250

/* Sleeps the whole ms, resuming after signals. */
static inline void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static inline int bench_cmp_double_(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n), n > 0; sorts a copy, so v keeps its order (samples are often reused). */
static inline double median(const double *v, int n) {
    double *s = malloc(sizeof(double) * (size_t)n);
    if (!s) {
        fprintf(stderr, "median: out of memory\n");
        exit(1);
    }
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, bench_cmp_double_);
    double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

#endif
