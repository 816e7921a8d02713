/*
 * clip.c — the CPU backend's kernels for gradient clipping (optim/clip.c): a gradient's p-norm
 * and the clamp of clip_grad_value_.
 *
 * Determinism: a gradient's sum of |g|^p is taken in double over a fixed split (at most
 * N_PIECES pieces whose partial sums are added in order), so the bits do not depend on the
 * thread count.
 */
#include "cpu.h"

#include <math.h>

#define N_PIECES 64
#define PIECE_MIN 4096 /* a gradient shorter than N_PIECES * PIECE_MIN is summed by one thread */

static double pow_sum_run(const float *x, int64_t n, double p) {
    double s = 0;
    if (p == 2) for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    else if (p == 1) for (int64_t i = 0; i < n; i++) s += fabs((double)x[i]);
    else for (int64_t i = 0; i < n; i++) s += pow(fabs((double)x[i]), p);
    return s;
}

/* Pieces of a gradient: piece k's sum of |x|^p into part[k]; or, for the clamp, x clamped to
 * [-c, c]. */
typedef struct {
    float *x;
    int64_t n, piece;
    double p, *part;
    float c;
} clip_job;

static void pow_sum_piece(void *arg, int64_t k, int64_t end) {
    const clip_job *j = arg;
    (void)end;
    int64_t lo = k * j->piece, hi = lo + j->piece < j->n ? lo + j->piece : j->n;
    j->part[k] = lo < hi ? pow_sum_run(j->x + lo, hi - lo, j->p) : 0.0;
}

/* clamp_(-clip, clip); NaN stays NaN */
static void clamp_range(void *arg, int64_t lo, int64_t hi) {
    const clip_job *j = arg;
    float *x = j->x, clip = j->c;
    for (int64_t k = lo; k < hi; k++) x[k] = x[k] < -clip ? -clip : x[k] > clip ? clip : x[k];
}

/* sum |x|^p, or max |x| (NaN wins, as torch's max) when p is infinite. */
static double reduce(const float *x, int64_t n, double p) {
    if (isinf(p)) {
        double m = 0;
        for (int64_t i = 0; i < n; i++) {
            double a = fabs((double)x[i]);
            if (a > m || isnan(a)) m = a;
            if (isnan(m)) break;
        }
        return m;
    }
    if (n < (int64_t)N_PIECES * PIECE_MIN) return pow_sum_run(x, n, p);
    double part[N_PIECES];
    clip_job j = {.x = (float *)x, .n = n, .piece = (n + N_PIECES - 1) / N_PIECES, .p = p, .part = part};
    nb__parallel_each(N_PIECES, pow_sum_piece, &j);
    double s = 0;
    for (int k = 0; k < N_PIECES; k++) s += part[k];
    return s;
}

/* ||x||_p as torch.norm returns it: a float. */
float nb__cpu_norm(const float *x, int64_t n, double p) {
    double s = reduce(x, n, p);
    if (isinf(p) || p == 1) return (float)s;
    return (float)(p == 2 ? sqrt(s) : pow(s, 1 / p));
}

void nb__cpu_clamp_abs(float *x, int64_t n, float c) {
    nb__parallel_for(n > NB__CPU_PARALLEL_MIN, n, clamp_range, &(clip_job){.x = x, .c = c});
}
