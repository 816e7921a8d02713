/*
 * attention.c — scaled dot-product attention, flash-attention style (Dao et al. 2022, and
 * FlashAttention-2, Dao 2023): queries in blocks of BQ rows meet keys in blocks of BK, so the
 * [t, s] matrix of weights never exists; a block of scores lives in a BQ x BK buffer on the
 * stack and each GEMM is one backend call.  Shapes and the mask's reading: backend.h
 * (nb_attention_geom).
 *
 * Forward, online softmax: each row keeps its running maximum m and sum l of exp(x - m), and
 * its output accumulates sum_j exp(x_j - m) v_j; when a block raises the maximum to m', what
 * came before is rescaled by exp(m - m').  At the end o = acc / l and lse = m + log l.
 * Backward: with P = exp(x - lse) recomputed block by block and D_i = sum(dout_i o_i),
 *   dv += P'^T dout      (P' = P with dropout's mask and 1 / (1 - p))
 *   dP' = dout v^T,  dP = dP' with the same mask,  dx = P (dP - D_i)
 *   dq += scale dx k,    dk += scale dx^T q
 * (sum_j P_ij dP_ij = dout_i . o_i holds with dropout too, so D needs no weights).
 * Determinism: the forward gives each (problem, query block) to one piece and the backward
 * each problem, whose dk and dv sum over query blocks in order, so the bits do not depend on
 * the thread count.
 */
#include "cpu.h"

#include <math.h>
#include <string.h>

#define BQ 64
#define BK 64

/* x [rq, ck] (row stride BK) = scale q k^T + mask for rows r0.. and keys c0.. of problem n,
 * minus infinity where causal hides a key. */
static void block_scores(float *x, const float *q, const float *k, int64_t n, int64_t r0,
                         int64_t rq, int64_t c0, int64_t ck, const nb_attention_geom *g) {
    nb__cpu_gemm(false, true, rq, ck, g->d, g->scale, q + (n * g->t + r0) * g->d, g->d,
                 k + (n * g->s + c0) * g->d, g->d, 0.0f, x, BK);
    const int64_t *ms = g->mask_stride;
    const float *mask = g->mask ? g->mask + n / g->heads * ms[0] + n % g->heads * ms[1] : NULL;
    for (int64_t r = 0; r < rq; r++) {
        float *row = x + r * BK;
        int64_t i = r0 + r;
        if (mask)
            for (int64_t c = 0; c < ck; c++) row[c] += mask[i * ms[2] + (c0 + c) * ms[3]];
        if (g->causal)
            for (int64_t c = i + 1 - c0 < 0 ? 0 : i + 1 - c0; c < ck; c++) row[c] = -INFINITY;
    }
}

/* p *= dropout's mask / (1 - p) over the block (the mask regenerated from its counters). */
static void block_dropout(float *p, int64_t n, int64_t r0, int64_t rq, int64_t c0, int64_t ck,
                          const nb_attention_geom *g) {
    float u[BK], keep = 1.0f / (1.0f - g->dropout_p);
    for (int64_t r = 0; r < rq; r++) {
        nb__cpu_uniform(u, ck, g->seed, g->offset + (uint64_t)((n * g->t + r0 + r) * g->s + c0));
        for (int64_t c = 0; c < ck; c++) p[r * BK + c] = u[c] < g->dropout_p ? 0.0f : p[r * BK + c] * keep;
    }
}

/* The keys row block [r0, r0 + rq) sees: all, or up to its last row when causal. */
static int64_t keys_seen(int64_t r0, int64_t rq, const nb_attention_geom *g) {
    return g->causal && r0 + rq < g->s ? r0 + rq : g->s;
}

typedef struct {
    float *o, *lse;
    const float *q, *k, *v;
    const nb_attention_geom *g;
} fwd_ctx;

/* One query block: x holds the block's scores, then exp(x - m) of each row. */
static void forward_block(const fwd_ctx *f, int64_t n, int64_t r0) {
    const nb_attention_geom *g = f->g;
    int64_t rq = g->t - r0 < BQ ? g->t - r0 : BQ, end = keys_seen(r0, rq, g);
    float x[BQ * BK], m[BQ], l[BQ];
    float *o = f->o + (n * g->t + r0) * g->dv;
    memset(o, 0, sizeof(float) * (size_t)(rq * g->dv));
    for (int64_t r = 0; r < rq; r++) m[r] = -INFINITY, l[r] = 0.0f;
    for (int64_t c0 = 0; c0 < end; c0 += BK) {
        int64_t ck = end - c0 < BK ? end - c0 : BK;
        block_scores(x, f->q, f->k, n, r0, rq, c0, ck, g);
        for (int64_t r = 0; r < rq; r++) {
            float *row = x + r * BK, mx = m[r], sum = 0.0f;
            for (int64_t c = 0; c < ck; c++) mx = row[c] > mx ? row[c] : mx;
            if (mx == -INFINITY) { /* every key so far masked: nothing to add */
                memset(row, 0, sizeof(float) * (size_t)ck);
                continue;
            }
            for (int64_t c = 0; c < ck; c++) sum += row[c] = expf(row[c] - mx);
            float alpha = expf(m[r] - mx); /* 0 when m was -inf */
            if (alpha != 1.0f)
                for (int64_t e = 0; e < g->dv; e++) o[r * g->dv + e] *= alpha;
            l[r] = l[r] * alpha + sum;
            m[r] = mx;
        }
        if (g->dropout_p > 0.0f) block_dropout(x, n, r0, rq, c0, ck, g);
        nb__cpu_gemm(false, false, rq, g->dv, ck, 1.0f, x, BK, f->v + (n * g->s + c0) * g->dv,
                     g->dv, 1.0f, o, g->dv);
    }
    for (int64_t r = 0; r < rq; r++) {
        float inv = l[r] > 0.0f ? 1.0f / l[r] : NAN; /* all keys masked: torch's NaN */
        for (int64_t e = 0; e < g->dv; e++) o[r * g->dv + e] *= inv;
        f->lse[n * g->t + r0 + r] = m[r] + logf(l[r]);
    }
}

static void forward_range(void *ctx, int64_t lo, int64_t hi) {
    const fwd_ctx *f = ctx;
    int64_t blocks = (f->g->t + BQ - 1) / BQ;
    for (int64_t j = lo; j < hi; j++) forward_block(f, j / blocks, j % blocks * BQ);
}

void nb__cpu_attention(float *o, float *lse, const float *q, const float *k, const float *v,
                       const nb_attention_geom *g) {
    fwd_ctx f = {o, lse, q, k, v, g};
    int64_t pieces = g->bh * ((g->t + BQ - 1) / BQ);
    nb__parallel_for(g->bh * g->t * g->s * (g->d + g->dv) > NB__CPU_PARALLEL_MIN, pieces,
                     forward_range, &f);
}

typedef struct {
    float *dq, *dk, *dv;
    const float *q, *k, *v, *o, *lse, *dout;
    const nb_attention_geom *g;
} bwd_ctx;

/* Query block r0 of problem n against every key block it sees. */
static void backward_block(const bwd_ctx *b, int64_t n, int64_t r0) {
    const nb_attention_geom *g = b->g;
    int64_t rq = g->t - r0 < BQ ? g->t - r0 : BQ, end = keys_seen(r0, rq, g);
    int64_t qi = (n * g->t + r0) * g->d, oi = (n * g->t + r0) * g->dv;
    const float *lse = b->lse + n * g->t + r0;
    float x[BQ * BK], y[BQ * BK], dsum[BQ];
    for (int64_t r = 0; r < rq; r++) {
        float acc = 0.0f;
        for (int64_t e = 0; e < g->dv; e++) acc += b->dout[oi + r * g->dv + e] * b->o[oi + r * g->dv + e];
        dsum[r] = acc;
    }
    for (int64_t c0 = 0; c0 < end; c0 += BK) {
        int64_t ck = end - c0 < BK ? end - c0 : BK;
        int64_t ki = (n * g->s + c0) * g->d, vi = (n * g->s + c0) * g->dv;
        block_scores(x, b->q, b->k, n, r0, rq, c0, ck, g);
        for (int64_t r = 0; r < rq; r++)
            for (int64_t c = 0; c < ck; c++) x[r * BK + c] = expf(x[r * BK + c] - lse[r]);
        const float *pd = x; /* the weights that multiplied v */
        if (g->dropout_p > 0.0f) {
            for (int64_t r = 0; r < rq; r++) memcpy(y + r * BK, x + r * BK, sizeof(float) * (size_t)ck);
            block_dropout(y, n, r0, rq, c0, ck, g);
            pd = y;
        }
        nb__cpu_gemm(true, false, ck, g->dv, rq, 1.0f, pd, BK, b->dout + oi, g->dv, 1.0f,
                     b->dv + vi, g->dv);
        nb__cpu_gemm(false, true, rq, ck, g->dv, 1.0f, b->dout + oi, g->dv, b->v + vi, g->dv,
                     0.0f, y, BK);
        if (g->dropout_p > 0.0f) block_dropout(y, n, r0, rq, c0, ck, g);
        for (int64_t r = 0; r < rq; r++)
            for (int64_t c = 0; c < ck; c++)
                x[r * BK + c] *= y[r * BK + c] - dsum[r];
        nb__cpu_gemm(false, false, rq, g->d, ck, g->scale, x, BK, b->k + ki, g->d, 1.0f,
                     b->dq + qi, g->d);
        nb__cpu_gemm(true, false, ck, g->d, rq, g->scale, x, BK, b->q + qi, g->d, 1.0f,
                     b->dk + ki, g->d);
    }
}

static void backward_range(void *ctx, int64_t lo, int64_t hi) {
    const bwd_ctx *b = ctx;
    const nb_attention_geom *g = b->g;
    for (int64_t n = lo; n < hi; n++) {
        memset(b->dq + n * g->t * g->d, 0, sizeof(float) * (size_t)(g->t * g->d));
        memset(b->dk + n * g->s * g->d, 0, sizeof(float) * (size_t)(g->s * g->d));
        memset(b->dv + n * g->s * g->dv, 0, sizeof(float) * (size_t)(g->s * g->dv));
        for (int64_t r0 = 0; r0 < g->t; r0 += BQ) backward_block(b, n, r0);
    }
}

void nb__cpu_attention_backward(float *dq, float *dk, float *dv, const float *q, const float *k,
                                const float *v, const float *o, const float *lse,
                                const float *dout, const nb_attention_geom *g) {
    bwd_ctx b = {dq, dk, dv, q, k, v, o, lse, dout, g};
    nb__parallel_for(g->bh * g->t * g->s * (g->d + g->dv) > NB__CPU_PARALLEL_MIN, g->bh,
                     backward_range, &b);
}
