/*
 * gradcheck_util.h — what the finite-difference tests share (test_gradcheck.c for first
 * derivatives, test_grad2.c for second ones): a case's seed and the fourth-order central
 * difference
 *
 *     df/dp ~ (8 (f(p + h) - f(p - h)) - (f(p + 2h) - f(p - 2h))) / (12 h)
 *
 * along a direction, evaluated in double.  The step h = 2^-7 and why it suits float32 forwards
 * are argued in test_gradcheck.c's header comment.
 */
#ifndef NB_GRADCHECK_UTIL_H
#define NB_GRADCHECK_UTIL_H

#include <stdint.h>
#include <stdlib.h>

#define GC_STEP 0x1p-7

/* FNV-1a of the case name: a seed that does not move when cases are added or reordered. */
static inline uint64_t gc_seed_of(const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *name; name++) h = (h ^ (unsigned char)*name) * 0x100000001b3ull;
    return h;
}

/* A function of the values the stencil moves (it reads them through ctx); NaN on failure. */
typedef double (*gc_fn)(void *ctx);

/* The fourth-order central difference of f along dir: the floats *p[i] move by k h dir[i]
 * (k = +-1, +-2) and are restored after. */
static inline double gc_stencil(gc_fn f, void *ctx, float *const *p, const float *dir, int m) {
    static const int ks[4] = {1, -1, 2, -2};
    double l[4];
    float *saved = malloc(sizeof(float) * (size_t)(m > 0 ? m : 1));
    for (int i = 0; i < m; i++) saved[i] = *p[i];
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < m; i++) *p[i] = (float)((double)saved[i] + ks[k] * GC_STEP * dir[i]);
        l[k] = f(ctx);
    }
    for (int i = 0; i < m; i++) *p[i] = saved[i];
    free(saved);
    return (8.0 * (l[0] - l[1]) - (l[2] - l[3])) / (12.0 * GC_STEP);
}

#endif
