/*
 * layernorm.c — the CPU backend's LayerNorm kernels (ops/layernorm.c): rows of d elements,
 * torch's native_layer_norm and its backward (aten/src/ATen/native/cpu/layer_norm_kernel.cpp).
 *
 *   forward   mean = sum x / d,  var = sum (x - mean)^2 / d (biased),  rstd = 1 / sqrt(var + eps)
 *             y = (x - mean) rstd w + b          (w, b [d], each may be NULL: 1 and 0)
 *   backward  xhat = (x - mean) rstd,  dxhat = dy w
 *             dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
 *             dw = sum over rows of dy xhat,   db = sum over rows of dy
 * Row sums accumulate in double (two passes for the variance), so the statistics do not depend
 * on the row's length or offset.  dx is shared out by rows; dw and db by columns, each column
 * summed over all rows in order by one thread, so the bits do not depend on the thread count.
 */
#include "cpu.h"

#include <math.h>

typedef struct {
    float *y, *dx, *dw, *db, *mean, *rstd;
    const float *x, *w, *b, *dy, *smean, *srstd;
    int64_t rows, d;
    float eps;
} layer_norm_job;

NB_CLONES static void forward_rows(void *arg, int64_t lo, int64_t hi) {
    const layer_norm_job *j = arg;
    int64_t d = j->d;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = j->x + r * d;
        float *y = j->y + r * d;
        double s = 0.0, ss = 0.0;
        for (int64_t i = 0; i < d; i++) s += x[i];
        float mean = (float)(s / (double)d);
        for (int64_t i = 0; i < d; i++) {
            double c = (double)x[i] - mean;
            ss += c * c;
        }
        float rstd = (float)(1.0 / sqrt(ss / (double)d + (double)j->eps));
        for (int64_t i = 0; i < d; i++) {
            float v = (x[i] - mean) * rstd;
            y[i] = v * (j->w ? j->w[i] : 1.0f) + (j->b ? j->b[i] : 0.0f);
        }
        j->mean[r] = mean;
        j->rstd[r] = rstd;
    }
}

void nb__cpu_layer_norm(float *y, float *mean, float *rstd, const float *x, const float *w,
                        const float *b, int64_t rows, int64_t d, float eps) {
    layer_norm_job j = {.y = y, .mean = mean, .rstd = rstd, .x = x, .w = w, .b = b, .d = d,
                        .eps = eps};
    nb__parallel_for(rows * d > NB__CPU_PARALLEL_MIN, rows, forward_rows, &j);
}

NB_CLONES static void dx_rows(void *arg, int64_t lo, int64_t hi) {
    const layer_norm_job *j = arg;
    int64_t d = j->d;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = j->x + r * d, *dy = j->dy + r * d;
        float *dx = j->dx + r * d, mean = j->smean[r], rstd = j->srstd[r];
        double a = 0.0, c = 0.0; /* sum dxhat, sum dxhat xhat */
        for (int64_t i = 0; i < d; i++) {
            float g = dy[i] * (j->w ? j->w[i] : 1.0f);
            a += g;
            c += (double)g * ((x[i] - mean) * rstd);
        }
        float ma = (float)(a / (double)d), mc = (float)(c / (double)d);
        for (int64_t i = 0; i < d; i++) {
            float g = dy[i] * (j->w ? j->w[i] : 1.0f);
            dx[i] = rstd * (g - ma - (x[i] - mean) * rstd * mc);
        }
    }
}

/* Columns [lo, hi) of dw and db, a tile of columns at a time so that the double sums stay in
 * registers or the stack while the rows stream by. */
enum { TILE = 64 };
NB_CLONES static void dwdb_columns(void *arg, int64_t lo, int64_t hi) {
    const layer_norm_job *j = arg;
    int64_t d = j->d, rows = j->rows;
    for (int64_t c0 = lo; c0 < hi; c0 += TILE) {
        int64_t n = hi - c0 < TILE ? hi - c0 : TILE;
        double sw[TILE] = {0}, sb[TILE] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *x = j->x + r * d + c0, *dy = j->dy + r * d + c0;
            float mean = j->smean[r], rstd = j->srstd[r];
            for (int64_t i = 0; i < n; i++) {
                sw[i] += (double)dy[i] * ((x[i] - mean) * rstd);
                sb[i] += dy[i];
            }
        }
        for (int64_t i = 0; i < n; i++) {
            if (j->dw) j->dw[c0 + i] = (float)sw[i];
            if (j->db) j->db[c0 + i] = (float)sb[i];
        }
    }
}

void nb__cpu_layer_norm_backward(float *dx, float *dw, float *db, const float *x, const float *mean,
                                 const float *rstd, const float *w, const float *dy, int64_t rows,
                                 int64_t d) {
    layer_norm_job j = {.dx = dx, .dw = dw, .db = db, .x = x, .w = w, .dy = dy, .smean = mean,
                        .srstd = rstd, .rows = rows, .d = d};
    bool parallel = rows * d > NB__CPU_PARALLEL_MIN;
    if (dx) nb__parallel_for(parallel, rows, dx_rows, &j);
    if (dw || db) nb__parallel_for(parallel, d, dwdb_columns, &j);
}
