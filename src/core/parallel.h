/*
 * parallel.h — how kernels use threads.
 */
#ifndef NB_PARALLEL_H
#define NB_PARALLEL_H

/* NB_PARALLEL_FOR(cond, for-statement) runs the loop over the OpenMP team when
 * cond holds and inline otherwise.  Entering a parallel region costs microseconds even when its
 * if clause is false (libgomp builds a team of one), more than a small kernel's whole run, so
 * small calls must not reach the pragma at all.  The loop is written once and expanded twice. */
#define NB_PARALLEL_FOR(cond, ...)                                   \
    do {                                                             \
        if (cond) {                                                  \
            _Pragma("omp parallel for schedule(static)") __VA_ARGS__ \
        } else {                                                     \
            __VA_ARGS__                                              \
        }                                                            \
    } while (0)

/* The same for loops with no dependence between iterations, vectorised in both branches. */
#define NB_PARALLEL_FOR_SIMD(cond, ...)                                   \
    do {                                                                  \
        if (cond) {                                                       \
            _Pragma("omp parallel for simd schedule(static)") __VA_ARGS__ \
        } else {                                                          \
            _Pragma("omp simd") __VA_ARGS__                               \
        }                                                                 \
    } while (0)

#endif
