/*
 * rnn.c — one recurrent layer-direction (RNN tanh or relu, LSTM, GRU) over all T steps, forward
 * and backward through time: one GEMM per step for the hidden part and the gates' elementwise
 * work fused in one pass over the step (cuDNN's persistent "reserve" scheme).
 *
 * Shapes (nb_rnn_geom): T steps, B batch, H hidden, G gates (1 RNN, 4 LSTM [i f g o], 3 GRU
 * [r z n]), S states (2 LSTM: h then c; 1 otherwise).
 *   xp [T, B, G H] the input projection of every step (x W_ih^T + b_ih);  w [G H, H] weight_hh;
 *   b [G H] bias_hh;  s0 [S, B, H];  y [T + S, B, H]: each step's h, then the final states.
 * Step t (processed in the order k = 0 .. T-1, t = k, or T-1-k when reversed), with
 * hp = h W^T + b (torch's aten/src/ATen/native/RNN.cpp cells):
 *   RNN:  h' = act(xp_t + hp)                                act = tanh or relu
 *   LSTM: a = xp_t + hp;  i, f, o = sig(a_i, a_f, a_o), g = tanh(a_g);  c' = f c + i g;
 *         h' = o tanh(c')
 *   GRU:  r = sig(xp_r + hp_r), z = sig(xp_z + hp_z), n = tanh(xp_n + r hp_n);
 *         h' = (h - n) z + n
 * Where mask[t, b] is 0, row b skips step t: its output is 0 and its states pass through.
 *
 * The reserve [T, B, *] (indexed by t) keeps what the backward needs: hp [T, B, H], the h
 * entering each step, then
 *   RNN:  act [T, B, H]   h' (the activation's output gives its derivative)
 *   LSTM: cp [T, B, H] (c entering), tc [T, B, H] (tanh c'), act [T, B, 4H] (i f g o)
 *   GRU:  hn [T, B, H] (hp_n = W_hn h + b_hn), act [T, B, 3H] (r z n)
 * Each step's states are written straight into the next step's hp (cp), or into y's final
 * states after the last step, so no state is copied twice.
 *
 * Backward, with dh (dc) the gradient of the state leaving step t (carried in ds0), dp the
 * gradient of hp (= da, the gates' pre-activations, except for a GRU's n part) and the new dh
 * = (direct part) + dp W:
 *   dh += dy_t
 *   RNN:  da = dh (1 - h'^2) (tanh) or dh [h' > 0] (relu);  direct part 0
 *   LSTM: dc += dh o (1 - tc^2);  da_i = dc g i (1 - i), da_f = dc c f (1 - f),
 *         da_g = dc i (1 - g^2), da_o = dh tc o (1 - o);  dc <- dc f;  direct part 0
 *   GRU:  dn = dh (1 - z) (1 - n^2);  da_r = dn hp_n r (1 - r),  da_z = dh (h - n) z (1 - z),
 *         da_n = dn;  dp = [da_r, da_z, dn r];  direct part dh z
 * and a masked row has da = dp = 0 and keeps dh (dc).  Once over all steps: dW = dp^T hp (one
 * GEMM of [G H, T B] x [T B, H]), db = the column sums of dp, dxp = da.
 */
#include "cpu.h"

#include <math.h>
#include <string.h>

static inline float sig(float x) { return 1.0f / (1.0f + expf(-x)); }

static int64_t step_of(const nb_rnn_geom *g, int64_t k) {
    return g->reverse ? g->steps - 1 - k : k;
}

static bool valid(const nb_rnn_geom *g, int64_t t, int64_t r) {
    return !g->mask || g->mask[t * g->batch + r] != 0.0f;
}

/* The reserve's arrays (see the top), those the cell has not NULL. */
typedef struct {
    float *hp, *cp, *tc, *hn, *act;
} reserve_of;

static reserve_of layout(float *reserve, const nb_rnn_geom *g) {
    int64_t all = g->steps * g->batch * g->hidden;
    reserve_of l = {.hp = reserve, .act = reserve + all};
    if (g->cell == NB_RNN_LSTM) l.cp = reserve + all, l.tc = l.cp + all, l.act = l.tc + all;
    if (g->cell == NB_RNN_GRU) l.hn = reserve + all, l.act = l.hn + all;
    return l;
}

/* ---- forward */

/* One step's state pointers: entering (h, c), leaving (hx, cx), the output row block y. */
typedef struct {
    const float *h, *c, *xp;
    float *hx, *cx, *y, *act, *tc, *hn;
} step_io;

/* Row r of a step whose gates' pre-activations (or, for a GRU, hp) are in io->act: the cell's
 * formulas (the top of this file), states into hx / cx and h' into y. */
static void forward_row(const nb_rnn_geom *g, const step_io *io, int64_t r) {
    int64_t h = g->hidden, gh = nb__rnn_gates(g->cell) * h;
    float *a = io->act + r * gh, *y = io->y + r * h, *hx = io->hx + r * h;
    const float *hc = io->h + r * h, *xp = io->xp + r * gh;
    switch (g->cell) {
    case NB_RNN_TANH:
    case NB_RNN_RELU:
        for (int64_t j = 0; j < h; j++) {
            float v = g->cell == NB_RNN_TANH ? tanhf(a[j]) : fmaxf(a[j], 0.0f);
            a[j] = y[j] = hx[j] = v;
        }
        break;
    case NB_RNN_LSTM: {
        const float *cc = io->c + r * h;
        float *cx = io->cx + r * h, *tc = io->tc + r * h;
        for (int64_t j = 0; j < h; j++) {
            float i = sig(a[j]), f = sig(a[h + j]), gg = tanhf(a[2 * h + j]), o = sig(a[3 * h + j]);
            float c = f * cc[j] + i * gg;
            a[j] = i, a[h + j] = f, a[2 * h + j] = gg, a[3 * h + j] = o;
            cx[j] = c;
            tc[j] = tanhf(c);
            y[j] = hx[j] = o * tc[j];
        }
        break;
    }
    default: { /* NB_RNN_GRU: a holds hp on entry, r z n on exit */
        float *hn = io->hn + r * h;
        for (int64_t j = 0; j < h; j++) {
            float rr = sig(xp[j] + a[j]), z = sig(xp[h + j] + a[h + j]);
            float n = tanhf(xp[2 * h + j] + rr * a[2 * h + j]);
            hn[j] = a[2 * h + j];
            a[j] = rr, a[h + j] = z, a[2 * h + j] = n;
            y[j] = hx[j] = (hc[j] - n) * z + n;
        }
    }
    }
}

/* Row r skipping the step: output 0, states passed through. */
static void skip_row(const nb_rnn_geom *g, const step_io *io, int64_t r) {
    size_t bytes = sizeof(float) * (size_t)g->hidden;
    int64_t at = r * g->hidden;
    memset(io->y + at, 0, bytes);
    memcpy(io->hx + at, io->h + at, bytes);
    if (io->cx) memcpy(io->cx + at, io->c + at, bytes);
}

/* The rows of one step, shared out over the pool (each row's work is independent). */
typedef struct {
    const nb_rnn_geom *g;
    const step_io *io;
    int64_t t;
} forward_job;

static void forward_rows(void *ctx, int64_t lo, int64_t hi) {
    const forward_job *j = ctx;
    for (int64_t r = lo; r < hi; r++) {
        if (valid(j->g, j->t, r)) forward_row(j->g, j->io, r);
        else skip_row(j->g, j->io, r);
    }
}

/* Whether a step's elementwise work is worth the pool (B G H elements, a few transcendental
 * functions each). */
static bool rows_in_parallel(const nb_rnn_geom *g) {
    return g->batch > 1 && 8 * g->batch * nb__rnn_gates(g->cell) * g->hidden > NB__CPU_PARALLEL_MIN;
}

void nb__cpu_rnn_layer(float *y, float *reserve, const float *xp, const float *w, const float *b,
                       const float *s0, const nb_rnn_geom *g) {
    int64_t bs = g->batch, h = g->hidden, bh = bs * h, t_all = g->steps;
    int64_t gh = nb__rnn_gates(g->cell) * h;
    bool lstm = g->cell == NB_RNN_LSTM, gru = g->cell == NB_RNN_GRU;
    reserve_of l = layout(reserve, g);
    int64_t first = step_of(g, 0);
    memcpy(l.hp + first * bh, s0, sizeof(float) * (size_t)bh);
    if (lstm) memcpy(l.cp + first * bh, s0 + bh, sizeof(float) * (size_t)bh);
    for (int64_t k = 0; k < t_all; k++) {
        int64_t t = step_of(g, k), next = k + 1 < t_all ? step_of(g, k + 1) : -1;
        step_io io = {.h = l.hp + t * bh, .xp = xp + t * bs * gh, .y = y + t * bh,
                      .act = l.act + t * bs * gh,
                      .hx = next >= 0 ? l.hp + next * bh : y + t_all * bh};
        if (lstm) {
            io.c = l.cp + t * bh, io.tc = l.tc + t * bh;
            io.cx = next >= 0 ? l.cp + next * bh : y + (t_all + 1) * bh;
        }
        if (gru) io.hn = l.hn + t * bh;
        /* act = b (+ xp_t but for a GRU, whose n gate needs hp alone) + h W^T */
        for (int64_t r = 0; r < bs; r++)
            for (int64_t j = 0; j < gh; j++)
                io.act[r * gh + j] = gru ? b[j] : io.xp[r * gh + j] + b[j];
        nb__cpu_gemm(false, true, bs, gh, h, 1.0f, io.h, h, w, h, 1.0f, io.act, gh);
        nb__parallel_for(rows_in_parallel(g), bs, forward_rows, &(forward_job){g, &io, t});
    }
}

/* ---- backward */

/* Row r of step t: da and dp from dh (dy_t added) and the reserve; dh becomes the direct part
 * and dc (an LSTM's) the gradient of the entering c. */
static void backward_row(const nb_rnn_geom *g, const reserve_of *l, int64_t t, int64_t r,
                         float *da, float *dp, float *dh, float *dc, const float *dyt) {
    int64_t h = g->hidden, bh = g->batch * h, gh = nb__rnn_gates(g->cell) * h, e0 = r * h;
    const float *a = l->act + (t * g->batch + r) * gh;
    for (int64_t j = 0; j < h; j++) {
        int64_t e = e0 + j;
        float dhv = dh[e] + dyt[e];
        switch (g->cell) {
        case NB_RNN_TANH: da[j] = dhv * (1.0f - a[j] * a[j]), dh[e] = 0.0f; break;
        case NB_RNN_RELU: da[j] = a[j] > 0.0f ? dhv : 0.0f, dh[e] = 0.0f; break;
        case NB_RNN_LSTM: {
            float i = a[j], f = a[h + j], gg = a[2 * h + j], o = a[3 * h + j];
            float tc = l->tc[t * bh + e], dcv = dc[e] + dhv * o * (1.0f - tc * tc);
            da[j] = dcv * gg * i * (1.0f - i);
            da[h + j] = dcv * l->cp[t * bh + e] * f * (1.0f - f);
            da[2 * h + j] = dcv * i * (1.0f - gg * gg);
            da[3 * h + j] = dhv * tc * o * (1.0f - o);
            dc[e] = dcv * f;
            dh[e] = 0.0f;
            break;
        }
        default: { /* NB_RNN_GRU */
            float rr = a[j], z = a[h + j], n = a[2 * h + j];
            float dn = dhv * (1.0f - z) * (1.0f - n * n);
            da[j] = dp[j] = dn * l->hn[t * bh + e] * rr * (1.0f - rr);
            da[h + j] = dp[h + j] = dhv * (l->hp[t * bh + e] - n) * z * (1.0f - z);
            da[2 * h + j] = dn;
            dp[2 * h + j] = dn * rr;
            dh[e] = dhv * z;
        }
        }
    }
}

typedef struct {
    const nb_rnn_geom *g;
    const reserve_of *l;
    int64_t t;
    float *da, *dp, *dh, *dc;
    const float *dyt;
} backward_job;

static void backward_rows(void *ctx, int64_t lo, int64_t hi) {
    const backward_job *j = ctx;
    int64_t gh = nb__rnn_gates(j->g->cell) * j->g->hidden;
    for (int64_t r = lo; r < hi; r++) {
        if (valid(j->g, j->t, r)) {
            backward_row(j->g, j->l, j->t, r, j->da + r * gh, j->dp + r * gh, j->dh, j->dc, j->dyt);
        } else {
            memset(j->da + r * gh, 0, sizeof(float) * (size_t)gh);
            memset(j->dp + r * gh, 0, sizeof(float) * (size_t)gh);
        }
    }
}

void nb__cpu_rnn_layer_backward(float *dxp, float *dw, float *db, float *ds0, float *work,
                                const float *w, const float *reserve, const float *dy,
                                const nb_rnn_geom *g) {
    int64_t bs = g->batch, h = g->hidden, bh = bs * h, t_all = g->steps;
    int64_t gh = nb__rnn_gates(g->cell) * h;
    bool lstm = g->cell == NB_RNN_LSTM;
    reserve_of l = layout((float *)reserve, g); /* read only */
    float *dpall = g->cell == NB_RNN_GRU ? work : dxp, *dh = ds0, *dc = lstm ? ds0 + bh : NULL;
    memcpy(dh, dy + t_all * bh, sizeof(float) * (size_t)bh);
    if (lstm) memcpy(dc, dy + (t_all + 1) * bh, sizeof(float) * (size_t)bh);
    for (int64_t k = t_all - 1; k >= 0; k--) {
        int64_t t = step_of(g, k);
        float *da = dxp + t * bs * gh, *dp = dpall + t * bs * gh;
        nb__parallel_for(rows_in_parallel(g), bs, backward_rows,
                         &(backward_job){g, &l, t, da, dp, dh, dc, dy + t * bh});
        nb__cpu_gemm(false, false, bs, h, gh, 1.0f, dp, gh, w, h, 1.0f, dh, h);
    }
    nb__cpu_gemm(true, false, gh, h, t_all * bs, 1.0f, dpall, gh, l.hp, h, 0.0f, dw, h);
    memset(db, 0, sizeof(float) * (size_t)gh);
    for (int64_t row = 0; row < t_all * bs; row++)
        for (int64_t j = 0; j < gh; j++) db[j] += dpall[row * gh + j];
}
