/*
 * lstsq.c — fitting a KAN layer's splines to samples (pykan's curve2coef) and evaluating them
 * on the host, for initialisation, grid updates and grid extension.
 *
 * For each input i the bases at the samples form A_i [n, nb] (computed by the bspline op), and
 * every edge (i, o) takes the ridge least-squares coefficients
 *
 *   coef[i, :, o] = (A_i^T A_i + lambda I)^-1 A_i^T y[:, i, o],   lambda = 1e-8
 *
 * (pykan's curve2coef with its default lamb), solved by Cholesky in double, one factorisation
 * per input for all its out edges.  The ridge keeps coefficients that no sample informs at 0.
 */
#include "kan.h"

#include <math.h>
#include <string.h>

#define RIDGE 1e-8

/* The bases of xs [n, in] on s's grid, [n, in, nb], copied to a host array of the caller's
 * (nb__dealloc with n in nb floats). */
static float *host_bases(const nb__kan_layer *s, int64_t n, const float *xs) {
    int64_t nb = s->G + s->k, count = n * s->in * nb;
    float *b = nb__alloc((size_t)count * sizeof(float));
    bool grad = nb_set_grad_enabled(false);
    nb_tensor *x = b ? nb_from_data(xs, 2, (int64_t[]){n, s->in}) : NULL;
    nb_tensor *t = x ? nb_bspline_basis(x, s->grid, s->k, 0) : NULL;
    nb_status st = t ? nb_copy_to(t, b, count) : nb_error_code();
    nb_tensor_free(t);
    nb_tensor_free(x);
    nb_set_grad_enabled(grad);
    if (st != NB_OK && b) {
        nb__dealloc(b, (size_t)count * sizeof(float));
        return NULL;
    }
    return b;
}

/* In place: the Cholesky factor L of the SPD matrix a [q, q] (lower triangle). */
static void cholesky(double *a, int64_t q) {
    for (int64_t j = 0; j < q; j++) {
        double d = a[j * q + j];
        for (int64_t p = 0; p < j; p++) d -= a[j * q + p] * a[j * q + p];
        a[j * q + j] = d = sqrt(d > 0.0 ? d : RIDGE);
        for (int64_t r = j + 1; r < q; r++) {
            double v = a[r * q + j];
            for (int64_t p = 0; p < j; p++) v -= a[r * q + p] * a[j * q + p];
            a[r * q + j] = v / d;
        }
    }
}

/* In place: v = (L L^T)^-1 v. */
static void cholesky_solve(const double *l, int64_t q, double *v) {
    for (int64_t r = 0; r < q; r++) {
        for (int64_t p = 0; p < r; p++) v[r] -= l[r * q + p] * v[p];
        v[r] /= l[r * q + r];
    }
    for (int64_t r = q - 1; r >= 0; r--) {
        for (int64_t p = r + 1; p < q; p++) v[r] -= l[p * q + r] * v[p];
        v[r] /= l[r * q + r];
    }
}

/* coef[i, :, :] from the bases b [n, in, nb] and targets ys [n, in, out], into c [in, nb, out] */
static void fit_input(const nb__kan_layer *s, int64_t n, const float *b, const float *ys,
                      int64_t i, double *gram, double *rhs, float *c) {
    int64_t nb = s->G + s->k;
    memset(gram, 0, (size_t)(nb * nb) * sizeof(double));
    for (int64_t j = 0; j < n; j++) {
        const float *row = b + (j * s->in + i) * nb;
        for (int64_t p = 0; p < nb; p++)
            for (int64_t q = 0; row[p] != 0.0f && q <= p; q++) gram[p * nb + q] += (double)row[p] * row[q];
    }
    for (int64_t p = 0; p < nb; p++) {
        gram[p * nb + p] += RIDGE;
        for (int64_t q = 0; q < p; q++) gram[q * nb + p] = gram[p * nb + q];
    }
    cholesky(gram, nb);
    for (int64_t o = 0; o < s->out; o++) {
        for (int64_t p = 0; p < nb; p++) {
            double v = 0.0;
            for (int64_t j = 0; j < n; j++)
                v += (double)b[(j * s->in + i) * nb + p] * ys[(j * s->in + i) * s->out + o];
            rhs[p] = v;
        }
        cholesky_solve(gram, nb, rhs);
        for (int64_t p = 0; p < nb; p++) c[(i * nb + p) * s->out + o] = (float)rhs[p];
    }
}

nb_status nb__kan_fit_coef(nb__kan_layer *s, int64_t n, const float *xs, const float *ys) {
    int64_t nb = s->G + s->k, nc = s->in * nb * s->out;
    float *b = host_bases(s, n, xs);
    double *gram = b ? nb__alloc((size_t)(nb * nb + nb) * sizeof(double)) : NULL;
    float *c = gram ? nb__alloc((size_t)nc * sizeof(float)) : NULL;
    nb_status st = c ? NB_OK : nb_error_code();
    for (int64_t i = 0; st == NB_OK && i < s->in; i++) fit_input(s, n, b, ys, i, gram, gram + nb * nb, c);
    if (st == NB_OK) st = nb_copy_from(s->coef, c, nc);
    if (c) nb__dealloc(c, (size_t)nc * sizeof(float));
    if (gram) nb__dealloc(gram, (size_t)(nb * nb + nb) * sizeof(double));
    if (b) nb__dealloc(b, (size_t)(n * s->in * nb) * sizeof(float));
    return st;
}

nb_status nb__kan_eval_splines(const nb__kan_layer *s, int64_t n, const float *xs, float *ys) {
    int64_t nb = s->G + s->k, nc = s->in * nb * s->out;
    float *b = host_bases(s, n, xs), *c = b ? nb__alloc((size_t)nc * sizeof(float)) : NULL;
    nb_status st = c ? nb_copy_to(s->coef, c, nc) : nb_error_code();
    for (int64_t j = 0; st == NB_OK && j < n; j++)
        for (int64_t i = 0; i < s->in; i++)
            for (int64_t o = 0; o < s->out; o++) {
                double v = 0.0;
                for (int64_t p = 0; p < nb; p++)
                    v += (double)b[(j * s->in + i) * nb + p] * c[(i * nb + p) * s->out + o];
                ys[(j * s->in + i) * s->out + o] = (float)v;
            }
    if (c) nb__dealloc(c, (size_t)nc * sizeof(float));
    if (b) nb__dealloc(b, (size_t)(n * s->in * nb) * sizeof(float));
    return st;
}
