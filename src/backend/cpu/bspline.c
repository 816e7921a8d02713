/*
 * bspline.c — the CPU kernels of the B-spline basis (ops: src/kan/basis.c), rows of x [n, in]
 * against one knot vector per input, grid [in, m] (non-decreasing), order k, m - 1 - k bases.
 *
 * Cox-de Boor (de Boor, "A Practical Guide to Splines", ch. IX), with pykan's half-open
 * convention: B_{i,0}(x) = [t_i <= x < t_{i+1}] and, for p = 1 .. k,
 *
 *   B_{i,p}(x) = (x - t_i) / (t_{i+p} - t_i) B_{i,p-1}(x)
 *              + (t_{i+p+1} - x) / (t_{i+p+1} - t_{i+1}) B_{i+1,p-1}(x).
 *
 * The derivative of order d is the same recursion up to order k - d followed by d steps of
 *
 *   D_{i,p} = p (D_{i,p-1} / (t_{i+p} - t_i) - D_{i+1,p-1} / (t_{i+p+1} - t_{i+1})),
 *
 * and is 0 for d > k (a spline of order k is a polynomial of degree k between knots).  A term
 * whose knot gap is 0 (repeated knots) is 0, as 0/0 is taken in de Boor's convention.  At x only
 * the k + 1 bases B_{j-k..j} are non-zero, where t_j <= x < t_{j+1}; every one is computed from
 * that span alone, in double.  Outside [t_0, t_{m-1}) every basis is 0: this is how a KAN
 * extrapolates, as pykan's B_batch does (the silu branch of a KAN edge carries on alone).
 */
#include "cpu.h"

#include "../../core/parallel.h"

/* The span j with t[j] <= x < t[j + 1], or -1 when x is outside [t[0], t[m-1]) or NaN. */
static int64_t span_of(const float *t, int64_t m, float x) {
    if (!(x >= t[0] && x < t[m - 1])) return -1;
    int64_t lo = 0, hi = m - 1; /* t[lo] <= x < t[hi] */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (x >= t[mid]) lo = mid;
        else hi = mid;
    }
    return lo;
}

static double ratio(double num, double den) { return den != 0.0 ? num / den : 0.0; }

/* v[r] = the deriv-th derivative of B_{j-k+r,k}(x), r = 0 .. k, for the span j of x (j >= 0). */
static void local_bases(double *v, const float *t, int64_t m, int k, int deriv, int64_t j,
                        double x) {
    double prev[NB_BSPLINE_MAX_K + 1];
    v[0] = 1.0; /* B_{j,0} */
    for (int p = 1; p <= k; p++) {
        for (int r = 0; r < p; r++) prev[r] = v[r]; /* B_{j-p+1+r, p-1}, r < p */
        for (int r = 0; r <= p; r++) {
            int64_t i = j - p + r;
            double left = r > 0 ? prev[r - 1] : 0.0, right = r < p ? prev[r] : 0.0, s = 0.0;
            if (i >= 0 && i + p + 1 <= m - 1) {
                double ti = t[i], tp = t[i + p], t1 = t[i + 1], tp1 = t[i + p + 1];
                if (p <= k - deriv)
                    s = ratio(x - ti, tp - ti) * left + ratio(tp1 - x, tp1 - t1) * right;
                else
                    s = p * (ratio(left, tp - ti) - ratio(right, tp1 - t1));
            }
            v[r] = s;
        }
    }
}

typedef struct {
    float *b, *dx;
    const float *x, *grid, *dy;
    int64_t in, m;
    int k, deriv;
} bspline_job;

/* rows [lo, hi) of the flattened [n, in]: the bases (b) or their contraction with dy (dx) */
static void bspline_rows(void *ctx, int64_t lo, int64_t hi) {
    const bspline_job *J = ctx;
    int64_t nb = J->m - 1 - J->k;
    for (int64_t row = lo; row < hi; row++) {
        const float *t = J->grid + (row % J->in) * J->m;
        double v[NB_BSPLINE_MAX_K + 1];
        int64_t j = J->deriv > J->k ? -1 : span_of(t, J->m, J->x[row]);
        if (j >= 0) local_bases(v, t, J->m, J->k, J->deriv, j, J->x[row]);
        if (J->b) {
            float *out = J->b + row * nb;
            for (int64_t c = 0; c < nb; c++) out[c] = 0.0f;
            for (int r = 0; j >= 0 && r <= J->k; r++)
                if (j - J->k + r >= 0 && j - J->k + r < nb) out[j - J->k + r] = (float)v[r];
        } else {
            const float *g = J->dy + row * nb;
            double s = 0.0;
            for (int r = 0; j >= 0 && r <= J->k; r++)
                if (j - J->k + r >= 0 && j - J->k + r < nb) s += v[r] * g[j - J->k + r];
            J->dx[row] = (float)s;
        }
    }
}

void nb__cpu_bspline(float *b, const float *x, const float *grid, int64_t n, int64_t in,
                     int64_t m, int k, int deriv) {
    bspline_job J = {.b = b, .x = x, .grid = grid, .in = in, .m = m, .k = k, .deriv = deriv};
    nb__parallel_for(n * in * (m - 1) >= 1 << 14, n * in, bspline_rows, &J);
}

void nb__cpu_bspline_backward(float *dx, const float *x, const float *grid, const float *dy,
                              int64_t n, int64_t in, int64_t m, int k, int deriv) {
    bspline_job J = {.dx = dx, .x = x, .grid = grid, .dy = dy, .in = in, .m = m, .k = k,
                     .deriv = deriv + 1};
    nb__parallel_for(n * in * (m - 1) >= 1 << 14, n * in, bspline_rows, &J);
}
