/*
 * reduce.c — reductions, argmax and softmax over the middle dim of an (outer, r, inner) array.
 * Determinism: every output element is reduced by one thread in a fixed order, and a long
 * single row is cut into a fixed number of pieces (not one per thread) whose partial results
 * are combined in order, so the bits do not depend on the thread count.
 */
#include "cpu.h"
#include "strided.h"

#include <math.h>

#define N_PIECES 64

static inline float combine(nb_reduce_op op, float acc, float v) {
    switch (op) {
    case NB_RED_SUM: return acc + v;
    case NB_RED_MAX: return (v > acc || v != v) ? v : acc; /* NaN wins, as in torch */
    default: return (v < acc || v != v) ? v : acc;
    }
}

/* Reduces x[0..n) with stride 1.  Sums use 8 independent accumulators (a fixed order the
 * compiler can vectorise) instead of one long dependency chain. */
NB_CLONES static float reduce_run(nb_reduce_op op, const float *x, int64_t n) {
    if (op != NB_RED_SUM) {
        float acc = x[0];
        for (int64_t i = 1; i < n; i++) acc = combine(op, acc, x[i]);
        return acc;
    }
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += x[i];
    return s;
}

/* A reduction's arguments; the ranges below work on indices [lo, hi) of its outer dims. */
typedef struct {
    nb_reduce_op op;
    void *out;
    float *dx;
    const float *x, *y, *dy;
    const int32_t *t;
    int64_t outer, r, inner, piece;
    float scale;
    bool log;
} reduce_job;

/* Piece p of a long row: its partial result. */
NB_CLONES static void row_piece(void *arg, int64_t p, int64_t end) {
    const reduce_job *j = arg;
    (void)end;
    int64_t lo = p * j->piece, hi = lo + j->piece < j->r ? lo + j->piece : j->r;
    ((float *)j->out)[p] = lo < hi ? reduce_run(j->op, j->x + lo, hi - lo)
                                   : (j->op == NB_RED_SUM ? 0.0f : j->x[0]);
}

static float reduce_row(nb_reduce_op op, const float *x, int64_t r) {
    if (r < (int64_t)N_PIECES * 1024) return reduce_run(op, x, r);
    float part[N_PIECES];
    reduce_job j = {.op = op, .out = part, .x = x, .r = r, .piece = (r + N_PIECES - 1) / N_PIECES};
    nb__parallel_each(N_PIECES, row_piece, &j);
    float acc = part[0];
    for (int p = 1; p < N_PIECES; p++) acc = combine(op, acc, part[p]);
    return acc;
}

NB_CLONES static void rows_range(void *arg, int64_t lo, int64_t hi) {
    const reduce_job *j = arg;
    for (int64_t o = lo; o < hi; o++) ((float *)j->out)[o] = reduce_run(j->op, j->x + o * j->r, j->r);
}

NB_CLONES static void strided_range(void *arg, int64_t lo, int64_t hi) {
    const reduce_job *j = arg;
    int64_t r = j->r, inner = j->inner;
    for (int64_t o = lo; o < hi; o++) {
        float *dst = (float *)j->out + o * inner;
        const float *src = j->x + o * r * inner;
        for (int64_t i = 0; i < inner; i++) dst[i] = src[i];
        if (j->op == NB_RED_SUM) /* the same adds, as a loop the compiler vectorises */
            for (int64_t k = 1; k < r; k++)
                NB_SIMD for (int64_t i = 0; i < inner; i++) dst[i] = dst[i] + src[k * inner + i];
        else
            for (int64_t k = 1; k < r; k++)
                for (int64_t i = 0; i < inner; i++) dst[i] = combine(j->op, dst[i], src[k * inner + i]);
    }
}

void nb__cpu_reduce(nb_reduce_op op, float *out, const float *x, int64_t outer, int64_t r,
                    int64_t inner) {
    if (r == 0) { /* empty sum is 0; max/min of nothing is rejected by the op layer */
        for (int64_t i = 0; i < outer * inner; i++) out[i] = 0.0f;
        return;
    }
    if (inner == 1 && outer == 1) {
        out[0] = reduce_row(op, x, r);
        return;
    }
    reduce_job j = {.op = op, .out = out, .x = x, .outer = outer, .r = r, .inner = inner};
    nb__parallel_for(outer * r * inner > NB_CPU_PARALLEL_MIN, outer,
                     inner == 1 ? rows_range : strided_range, &j);
}

NB_CLONES static void argmax_range(void *arg, int64_t lo, int64_t hi) {
    const reduce_job *j = arg;
    const float *x = j->x;
    int64_t r = j->r, inner = j->inner;
    int32_t *out = j->out;
    for (int64_t oi = lo; oi < hi; oi++) {
            const float *p = x + (oi / inner) * r * inner + oi % inner;
            int64_t best = 0;
            for (int64_t k = 1; k < r; k++) {
                float v = p[k * inner], b = p[best * inner];
                if (b == b && (v > b || v != v)) best = k;
            }
            out[oi] = (int32_t)best;
    }
}

void nb__cpu_argmax(int32_t *out, const float *x, int64_t outer, int64_t r, int64_t inner) {
    reduce_job j = {.out = out, .x = x, .outer = outer, .r = r, .inner = inner};
    nb__parallel_for(outer * r * inner > NB_CPU_PARALLEL_MIN, outer * inner, argmax_range, &j);
}

/* softmax: y = exp(x - m) / sum exp(x - m), m = max x;  log-softmax: y = x - m - log(sum). */
NB_CLONES static void softmax_range(void *arg, int64_t lo, int64_t hi) {
    const reduce_job *j = arg;
    const float *x = j->x;
    float *y = j->out;
    int64_t r = j->r, inner = j->inner;
    bool log = j->log;
    for (int64_t oi = lo; oi < hi; oi++) {
            int64_t base = (oi / inner) * r * inner + oi % inner;
            const float *p = x + base;
            float *q = y + base;
            float m = -INFINITY, s = 0.0f;
            for (int64_t k = 0; k < r; k++) m = p[k * inner] > m ? p[k * inner] : m; /* fmaxf: see row_max */
            for (int64_t k = 0; k < r; k++) s += expf(p[k * inner] - m);
            if (log) { /* (x - m) - log s, not x - (m + log s): that rounds at |m|, not at |y| */
                float log_s = logf(s);
                for (int64_t k = 0; k < r; k++) q[k * inner] = (p[k * inner] - m) - log_s;
            } else {
                float inv = 1.0f / s;
                for (int64_t k = 0; k < r; k++) q[k * inner] = expf(p[k * inner] - m) * inv;
            }
    }
}

void nb__cpu_softmax(float *y, const float *x, int64_t outer, int64_t r, int64_t inner, bool log) {
    reduce_job j = {.out = y, .x = x, .outer = outer, .r = r, .inner = inner, .log = log};
    nb__parallel_for(outer * r * inner > NB_CPU_PARALLEL_MIN, outer * inner, softmax_range, &j);
}

NB_CLONES static void softmax_backward_range(void *arg, int64_t lo, int64_t hi) {
    const reduce_job *job = arg;
    const float *y = job->y, *dy = job->dy;
    float *dx = job->dx;
    int64_t r = job->r, inner = job->inner;
    bool log = job->log;
    for (int64_t oi = lo; oi < hi; oi++) {
            int64_t base = (oi / inner) * r * inner + oi % inner;
            float s = 0.0f;
            if (log) {
                for (int64_t k = 0; k < r; k++) s += dy[base + k * inner];
                for (int64_t k = 0; k < r; k++) {
                    int64_t j = base + k * inner;
                    dx[j] = dy[j] - expf(y[j]) * s;
                }
            } else {
                for (int64_t k = 0; k < r; k++) s += dy[base + k * inner] * y[base + k * inner];
                for (int64_t k = 0; k < r; k++) {
                    int64_t j = base + k * inner;
                    dx[j] = y[j] * (dy[j] - s);
                }
            }
    }
}

void nb__cpu_softmax_backward(float *dx, const float *y, const float *dy, int64_t outer,
                              int64_t r, int64_t inner, bool log) {
    reduce_job j = {.dx = dx, .y = y, .dy = dy, .outer = outer, .r = r, .inner = inner, .log = log};
    nb__parallel_for(outer * r * inner > NB_CPU_PARALLEL_MIN, outer * inner,
                     softmax_backward_range, &j);
}

/* fmaxf over a row, as a comparison: m starts at -inf and never becomes NaN, so taking x only
 * when x > m skips NaNs as fmaxf does, and without -ffinite-math-only fmaxf is a library call
 * (1.3 us of the course MLP's 640 elements). */
static inline float row_max(const float *row, int64_t c) {
    float m = -INFINITY;
    for (int64_t j = 0; j < c; j++) m = row[j] > m ? row[j] : m;
    return m;
}

/* Row i: lse = m + log sum_j exp(x_ij - m), loss_i = lse - x_i[t_i].  Rows are summed in double,
 * in order, so the result does not depend on the thread count.  The exps go to e when it is
 * given: the backward's softmax is those exps over their sum, and expf is most of the cost, so
 * then all the arguments x_ij - m_i are written first and exponentiated in one vectorised call
 * (expf's bits; a course MLP's 640 a step took 2.2 us as calls), and each row summed in order. */
float nb__cpu_xent(float *e, const float *x, const int32_t *t, int64_t n, int64_t c, float scale) {
    double total = 0;
    if (e) {
        for (int64_t i = 0; i < n; i++) {
            const float *row = x + i * c;
            float m = row_max(row, c);
            for (int64_t j = 0; j < c; j++) e[i * c + j] = row[j] - m;
        }
        nb__cpu_exp_floats(e, e, n * c);
    }
    for (int64_t i = 0; i < n; i++) {
        const float *row = x + i * c;
        float m = row_max(row, c), s = 0.0f;
        if (e)
            for (int64_t j = 0; j < c; j++) s += e[i * c + j];
        else
            for (int64_t j = 0; j < c; j++) s += expf(row[j] - m);
        total += (double)((row[t[i]] - m) - logf(s));
    }
    return (float)(-total * scale);
}

/* d loss / d x_ij = scale (softmax_ij - [j == t_i]), times the upstream gradient; softmax_ij
 * is exp(x_ij - m_i) over the row's sum, the exps taken from the forward's e when given (the
 * same values, summed in the same order as the forward and as the branch without e) */
NB_CLONES static void xent_backward_range(void *arg, int64_t lo, int64_t hi) {
    const reduce_job *job = arg;
    const float *x = job->x, *e = job->y;
    const int32_t *t = job->t;
    float *dx = job->dx, g_scale = job->scale;
    int64_t c = job->r;
    for (int64_t i = lo; i < hi; i++) {
            const float *row = x + i * c;
            float *d = dx + i * c;
            float m = -INFINITY, s = 0.0f;
            if (e) {
                for (int64_t j = 0; j < c; j++) s += (d[j] = e[i * c + j]);
            } else {
                m = row_max(row, c);
                for (int64_t j = 0; j < c; j++) s += (d[j] = expf(row[j] - m));
            }
            float inv = g_scale / s;
            for (int64_t j = 0; j < c; j++) d[j] *= inv;
            d[t[i]] -= g_scale;
    }
}

void nb__cpu_xent_backward(float *dx, const float *x, const float *e, const int32_t *t, int64_t n,
                           int64_t c, float g_scale) {
    reduce_job j = {.dx = dx, .x = x, .y = e, .t = t, .r = c, .scale = g_scale};
    nb__parallel_for(n * c > NB_CPU_PARALLEL_MIN, n, xent_backward_range, &j);
}
