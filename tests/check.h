/*
 * check.h — the test suite's assertion header.  A failing check prints file:line, both values
 * and, for arrays, the index and size of the largest difference; the program exits non-zero at
 * the end (checks do not stop at the first failure).  Each test program ends with
 * `return check_summary();`, which prints "N passed, M failed".
 */
#ifndef NB_CHECK_H
#define NB_CHECK_H

#include "nabla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed_, check_failed_;

#define CHECK_FAIL_(...)                                         \
    do {                                                         \
        check_failed_++;                                         \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);          \
        fprintf(stderr, __VA_ARGS__);                            \
        fprintf(stderr, "\n");                                   \
    } while (0)

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (cond) check_passed_++;                                           \
        else CHECK_FAIL_("CHECK(%s) failed [last error: %s]", #cond, nb_error_message()); \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                   \
    do {                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                  \
        if (a_ == b_) check_passed_++;                                       \
        else CHECK_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);          \
    } while (0)

/* |a - b| <= atol + rtol |b| */
#define CHECK_NEAR(a, b, atol, rtol)                                                 \
    do {                                                                             \
        double a_ = (double)(a), b_ = (double)(b);                                   \
        if (fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_) || (isnan(a_) && isnan(b_))) \
            check_passed_++;                                                         \
        else CHECK_FAIL_("%s ~ %s: %.9g vs %.9g (diff %.3g)", #a, #b, a_, b_, fabs(a_ - b_)); \
    } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                            \
    do {                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                    \
        if (h_ && strstr(h_, n_)) check_passed_++;                                 \
        else CHECK_FAIL_("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); \
    } while (0)

/* The counted allocator holds `before` live bytes again: what `what` made was all freed. */
#define CHECK_BYTES_BACK(what, before)                                                       \
    do {                                                                                     \
        size_t after_ = nb_alloc_stats_get().bytes_live, before_ = (before);                 \
        if (after_ == before_) check_passed_++;                                              \
        else CHECK_FAIL_("%s: %zu bytes before the call and %zu after freeing its result",   \
                         (what), before_, after_);                                           \
    } while (0)

/* The call failed with `code` and a message containing `needle`; clears the error. */
#define CHECK_ERROR(code, needle)                                                   \
    do {                                                                            \
        if (nb_error_code() == (code) && strstr(nb_error_message(), (needle)))     \
            check_passed_++;                                                        \
        else CHECK_FAIL_("expected %s with \"%s\", got %s: \"%s\"", nb_status_name(code), \
                         (needle), nb_status_name(nb_error_code()), nb_error_message()); \
        nb_error_clear();                                                           \
    } while (0)

/* Compares n floats: |got - want| <= atol + rtol |want| everywhere; reports the worst. */
static inline int check_arrays_(const char *file, int line, const char *what, const float *got,
                                const double *want, long n, double atol, double rtol) {
    long worst = -1;
    double worst_excess = 0, worst_diff = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]), lim = atol + rtol * fabs(want[i]);
        if ((d > lim || isnan(got[i]) != isnan(want[i])) && (worst < 0 || d - lim > worst_excess)) {
            worst = i;
            worst_excess = d - lim;
            worst_diff = d;
        }
    }
    if (worst < 0) return check_passed_++, 0;
    check_failed_++;
    fprintf(stderr, "%s:%d: %s: element %ld of %ld: got %.9g, want %.9g (diff %.3g)\n", file,
            line, what, worst, n, (double)got[worst], want[worst], worst_diff);
    return 1;
}
#define CHECK_ARRAY(what, got, want, n, atol, rtol) \
    check_arrays_(__FILE__, __LINE__, what, got, want, n, atol, rtol)

/* Compares a tensor's values, in logical order, to an array of doubles. */
static inline int check_tensor_(const char *file, int line, const char *what, const nb_tensor *t,
                                const double *want, long n, double atol, double rtol) {
    if (!t || nb_numel(t) != n) {
        check_failed_++;
        fprintf(stderr, "%s:%d: %s: tensor is %s with %lld elements, want %ld [%s]\n", file, line,
                what, t ? "present" : "NULL", t ? (long long)nb_numel(t) : 0LL, n, nb_error_message());
        return 1;
    }
    float buf[4096];
    float *got = n <= 4096 ? buf : malloc(sizeof(float) * (size_t)n);
    nb_copy_to(t, got, n);
    int r = check_arrays_(file, line, what, got, want, n, atol, rtol);
    if (got != buf) free(got);
    return r;
}
#define CHECK_TENSOR(what, t, want, n, atol, rtol) \
    check_tensor_(__FILE__, __LINE__, what, t, want, n, atol, rtol)

/* t's elements in logical order as floats, copied out through nb_copy_to (tensor memory is
 * the backend's, which the host may not read directly): valid until 16 more calls. */
static inline float *host_vals(const nb_tensor *t) {
    static float *ring[16];
    static int next;
    int64_t n = nb_numel(t);
    float **slot = &ring[next++ % 16];
    free(*slot);
    *slot = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (n >= 0) nb_copy_to(t, *slot, n);
    return *slot;
}

/* Sets element i (in logical order) of t through nb_set. */
static inline void set_flat(nb_tensor *t, int64_t i, float v) {
    int64_t index[8] = {0};
    for (int d = nb_ndim(t) - 1; d >= 0; d--) {
        index[d] = i % nb_shape(t)[d];
        i /= nb_shape(t)[d];
    }
    nb_set(t, index, v);
}

/* Empirical std of an f32 tensor t (contiguous) and its largest magnitude, for tests of
 * random initialisation. */
static inline double tensor_std(nb_tensor *t, double *max_abs) {
    long n = (long)nb_numel(t);
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    nb_copy_to(t, v, n);
    double sum = 0, sq = 0;
    *max_abs = 0;
    for (long i = 0; i < n; i++) {
        sum += v[i];
        sq += (double)v[i] * v[i];
        if (fabs(v[i]) > *max_abs) *max_abs = fabs(v[i]);
    }
    free(v);
    double mean = sum / n;
    return sqrt(sq / n - mean * mean);
}

static inline int check_summary(void) {
    nb_release_memory();
    printf("%d passed, %d failed\n", check_passed_, check_failed_);
    return check_failed_ ? 1 : 0;
}

#endif
