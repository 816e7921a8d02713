/*
 * 06_newton_step.c — Newton's method with autograd's Hessian: L2-regularised logistic
 * regression on a small synthetic data set, theta <- theta - H^-1 g, with g and H from
 * nb_vjp and nb_hessian (torch.autograd.functional.vjp / hessian).  Each step is also taken
 * without forming H, by conjugate gradients on Hessian-vector products (nb_hvp, as
 * truncated-Newton methods do), and the two steps must agree.  The loss is strictly convex, so
 * the iteration converges quadratically: the gradient's norm roughly squares each step.  The
 * program checks that it reaches 1e-5 within 8 steps and exits 1 otherwise.
 * Only the public header is used.
 */
#include "nabla.h"

#include <math.h>
#include <stdio.h>

enum { N = 64, P = 3 }; /* samples; parameters (w1, w2, bias) */
#define LAMBDA 0.01f

/* The data: X [N, 3] with a column of ones (so theta's last entry is the bias), labels +-1. */
typedef struct {
    nb_tensor *x, *y;
} data;

/* loss(theta) = mean(log(1 + exp(-y (X theta)))) + lambda/2 |theta|^2, as torch:
 *     F.softplus(-y * (X @ theta)).mean() + lam / 2 * (theta ** 2).sum()              */
static nb_tensor *loss_fn(nb_tensor *theta, void *ctx) {
    const data *d = ctx;
    nb_tensor *margin = nb_mul(d->y, nb_matmul(d->x, theta));
    nb_tensor *fit = nb_mean(nb_softplus(nb_neg(margin), 1.0f, 20.0f));
    return nb_add(fit, nb_mul_scalar(nb_sum(nb_mul(theta, theta)), 0.5f * LAMBDA));
}

/* Two overlapping clouds around (1, 0.5) and (-1, -0.5): the classes are not separable, so the
 * minimiser is an interior point even without the penalty. */
static data make_data(void) {
    float x[N * P], y[N];
    nb_tensor *noise = nb_randn(NB_SHAPE(N, 2));
    for (int i = 0; i < N; i++) {
        y[i] = i % 2 ? 1.0f : -1.0f;
        x[i * P + 0] = y[i] * 1.0f + 1.2f * nb_get(noise, NB_INDEX(i, 0));
        x[i * P + 1] = y[i] * 0.5f + 1.2f * nb_get(noise, NB_INDEX(i, 1));
        x[i * P + 2] = 1.0f;
    }
    return (data){nb_from_data(x, NB_SHAPE(N, P)), nb_from_data(y, NB_SHAPE(N))};
}

/* Solves H d = g (H symmetric positive definite, P x P) by Gaussian elimination. */
static void solve(double h[P][P], double *g, double *d) {
    for (int c = 0; c < P; c++)
        for (int r = c + 1; r < P; r++) {
            double f = h[r][c] / h[c][c];
            for (int k = c; k < P; k++) h[r][k] -= f * h[c][k];
            g[r] -= f * g[c];
        }
    for (int r = P - 1; r >= 0; r--) {
        double s = g[r];
        for (int k = r + 1; k < P; k++) s -= h[r][k] * d[k];
        d[r] = s / h[r][r];
    }
}

/* The same step without H: conjugate gradients on H d = g, each iteration one nb_hvp; P
 * iterations solve a P x P system exactly (in exact arithmetic). */
static void solve_cg(const data *d, nb_tensor *theta, const double *g, double *x) {
    double r[P], p[P], rr = 0;
    for (int i = 0; i < P; i++) x[i] = 0, r[i] = p[i] = g[i], rr += g[i] * g[i];
    for (int it = 0; it < P && rr > 1e-30; it++) {
        float pf[P];
        for (int i = 0; i < P; i++) pf[i] = (float)p[i];
        nb_scope_begin();
        nb_tensor *pv = nb_from_data(pf, NB_SHAPE(P));
        nb_tensor *hp = nb_hvp(loss_fn, (void *)d, theta, pv);
        double php = 0, hpv[P];
        for (int i = 0; i < P; i++) php += p[i] * (hpv[i] = nb_get(hp, NB_INDEX(i)));
        double alpha = rr / php, rr_new = 0;
        for (int i = 0; i < P; i++) {
            x[i] += alpha * p[i];
            r[i] -= alpha * hpv[i];
            rr_new += r[i] * r[i];
        }
        for (int i = 0; i < P; i++) p[i] = r[i] + rr_new / rr * p[i];
        rr = rr_new;
        nb_scope_end();
    }
}

int main(void) {
    nb_manual_seed(0);
    nb_scope_begin();
    data d = make_data();
    nb_tensor *theta = nb_zeros(NB_SHAPE(P));
    double grad_norm = INFINITY, worst_cg = 0;

    printf("step   loss        |grad|      |H^-1 g - CG(hvp)|\n");
    for (int step = 0; step <= 8 && grad_norm > 1e-5; step++) {
        nb_scope_begin();
        /* g = torch.autograd.functional.vjp(loss_fn, theta)[1]; H = hessian(loss_fn, theta) */
        nb_tensor *loss = loss_fn(theta, &d);
        nb_tensor *g = nb_vjp(loss_fn, &d, theta, NULL), *h = nb_hessian(loss_fn, &d, theta);
        if (!loss || !g || !h) {
            fprintf(stderr, "06_newton_step: %s\n", nb_error_message());
            return 1;
        }
        double gv[P], hv[P][P], step_h[P], step_cg[P], diff = 0;
        grad_norm = 0;
        for (int i = 0; i < P; i++) {
            gv[i] = nb_get(g, NB_INDEX(i));
            grad_norm += gv[i] * gv[i];
            for (int j = 0; j < P; j++) hv[i][j] = nb_get(h, NB_INDEX(i, j));
        }
        grad_norm = sqrt(grad_norm);
        solve_cg(&d, theta, gv, step_cg);
        solve(hv, gv, step_h);
        for (int i = 0; i < P; i++) diff = fmax(diff, fabs(step_h[i] - step_cg[i]));
        worst_cg = fmax(worst_cg, diff / (1e-3 + fabs(step_h[0]) + fabs(step_h[1]) + fabs(step_h[2])));
        printf("%4d   %.8f  %.3e   %.1e\n", step, nb_item(loss), grad_norm, diff);
        /* with torch.no_grad(): theta -= H^-1 g */
        for (int i = 0; i < P; i++)
            nb_set(theta, NB_INDEX(i), nb_get(theta, NB_INDEX(i)) - (float)step_h[i]);
        nb_scope_end();
    }
    printf("theta = (%.5f, %.5f, %.5f)\n", nb_get(theta, NB_INDEX(0)), nb_get(theta, NB_INDEX(1)),
           nb_get(theta, NB_INDEX(2)));
    nb_scope_end();
    nb_release_memory();
    if (!(grad_norm <= 1e-5) || !(worst_cg < 1e-3)) {
        fprintf(stderr, "06_newton_step: |grad| %.3g after 8 steps (want <= 1e-5), CG step off by %.3g\n",
                grad_norm, worst_cg);
        return 1;
    }
    return 0;
}
