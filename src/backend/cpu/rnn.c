/*
 * rnn.c — one LSTM layer-direction over all T steps, forward and backward through time, with
 * the gates fused in one pass per step (cuDNN's persistent "reserve" scheme).
 *
 * Shapes (nb_lstm_geom): T steps, B batch, H hidden; gates in torch's order [i f g o].
 *   xp [T, B, 4H]  the input projection of every step, both biases included
 *   w  [4H, H]     weight_hh;   s0 [2, B, H]: h0 then c0
 *   y  [T + 2, B, H]: each step's h, then h_n and c_n
 *   reserve: hp [T, B, H] and cp [T, B, H] (the states entering each step), cn [T, B, H] (c
 *   after it) and act [T, B, 4H] (the gates after their activations), all indexed by t.
 * Step t (processed in the order k = 0 .. T-1, t = k, or T-1-k when reversed):
 *   a = xp_t + h W^T;  i, f, o = sig(a_i, a_f, a_o), g = tanh(a_g);
 *   c' = f c + i g;  h' = o tanh(c')
 * Backward, with dh and dc the gradients of the state leaving step t (carried in ds0):
 *   dh += dy_t;  dc += dh o (1 - tanh(c')^2)
 *   da_i = dc g i (1 - i), da_f = dc c f (1 - f), da_g = dc i (1 - g^2),
 *   da_o = dh tanh(c') o (1 - o);   dc <- dc f;   dh <- da W
 * and, once over all steps, dW = da^T hp (one GEMM of [4H, T B] x [T B, H]); dxp = da.
 */
#include "cpu.h"

#include <math.h>
#include <string.h>

static inline float sig(float x) { return 1.0f / (1.0f + expf(-x)); }

static int64_t step_of(const nb_lstm_geom *g, int64_t k) {
    return g->reverse ? g->steps - 1 - k : k;
}

void nb__cpu_lstm(float *y, float *reserve, const float *xp, const float *w, const float *s0,
                  const nb_lstm_geom *g) {
    int64_t b = g->batch, h = g->hidden, bh = b * h, t_all = g->steps;
    float *hp = reserve, *cp = hp + t_all * bh, *cn = cp + t_all * bh, *act = cn + t_all * bh;
    const float *hcur = s0, *ccur = s0 + bh;
    for (int64_t k = 0; k < t_all; k++) {
        int64_t t = step_of(g, k);
        float *a = act + t * 4 * bh, *ht = y + t * bh, *ct = cn + t * bh;
        memcpy(hp + t * bh, hcur, sizeof(float) * (size_t)bh);
        memcpy(cp + t * bh, ccur, sizeof(float) * (size_t)bh);
        memcpy(a, xp + t * 4 * bh, sizeof(float) * (size_t)(4 * bh));
        nb__cpu_gemm(false, true, b, 4 * h, h, 1.0f, hcur, h, w, h, 1.0f, a, 4 * h);
        for (int64_t r = 0; r < b; r++) {
            float *ar = a + r * 4 * h;
            for (int64_t j = 0; j < h; j++) {
                float i = sig(ar[j]), f = sig(ar[h + j]), gg = tanhf(ar[2 * h + j]);
                float o = sig(ar[3 * h + j]);
                float c = f * ccur[r * h + j] + i * gg;
                ar[j] = i, ar[h + j] = f, ar[2 * h + j] = gg, ar[3 * h + j] = o;
                ct[r * h + j] = c;
                ht[r * h + j] = o * tanhf(c);
            }
        }
        hcur = ht, ccur = ct;
    }
    memcpy(y + t_all * bh, hcur, sizeof(float) * (size_t)bh);
    memcpy(y + (t_all + 1) * bh, ccur, sizeof(float) * (size_t)bh);
}

void nb__cpu_lstm_backward(float *dxp, float *dw, float *ds0, const float *w,
                           const float *reserve, const float *dy, const nb_lstm_geom *g) {
    int64_t b = g->batch, h = g->hidden, bh = b * h, t_all = g->steps;
    const float *hp = reserve, *cp = hp + t_all * bh, *cn = cp + t_all * bh, *act = cn + t_all * bh;
    float *dh = ds0, *dc = ds0 + bh;
    memcpy(dh, dy + t_all * bh, sizeof(float) * (size_t)bh);
    memcpy(dc, dy + (t_all + 1) * bh, sizeof(float) * (size_t)bh);
    for (int64_t k = t_all - 1; k >= 0; k--) {
        int64_t t = step_of(g, k);
        const float *a = act + t * 4 * bh, *dyt = dy + t * bh;
        float *da = dxp + t * 4 * bh;
        for (int64_t r = 0; r < b; r++)
            for (int64_t j = 0; j < h; j++) {
                int64_t e = r * h + j;
                const float *ar = a + r * 4 * h;
                float i = ar[j], f = ar[h + j], gg = ar[2 * h + j], o = ar[3 * h + j];
                float tc = tanhf(cn[t * bh + e]), dhv = dh[e] + dyt[e];
                float dcv = dc[e] + dhv * o * (1.0f - tc * tc);
                float *dar = da + r * 4 * h;
                dar[j] = dcv * gg * i * (1.0f - i);
                dar[h + j] = dcv * cp[t * bh + e] * f * (1.0f - f);
                dar[2 * h + j] = dcv * i * (1.0f - gg * gg);
                dar[3 * h + j] = dhv * tc * o * (1.0f - o);
                dc[e] = dcv * f;
            }
        nb__cpu_gemm(false, false, b, h, 4 * h, 1.0f, da, 4 * h, w, h, 0.0f, dh, h);
    }
    nb__cpu_gemm(true, false, 4 * h, h, t_all * b, 1.0f, dxp, 4 * h, hp, h, 0.0f, dw, h);
}
