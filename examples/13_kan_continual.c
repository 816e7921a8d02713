/*
 * 13_kan_continual.c — continual learning, the KAN paper's sec. 3.2 (fig. 3.4): the target is
 * five Gaussian peaks on [-1, 1], y = sum_p exp(-(x - c_p)^2 / w^2), centres -0.8, -0.4, 0, 0.4,
 * 0.8 and width w = 0.05, and the data arrive in five phases: phase i has only x in its fifth
 * of the interval, [-1 + 0.4 i, -0.6 + 0.4 i), around peak i.  A KAN [1, 1] with G = 200 and an
 * MLP 1 -> 12 -> 12 -> 1 (tanh) of about as many parameters (203 spline coefficients; 193) are
 * trained phase after phase with Adam, never seeing the earlier phases' data again.
 *
 * Why the KAN keeps what it learned: a cubic B-spline is non-zero on 4 of the 200 intervals, so
 * phase i's loss has a gradient only on the coefficients of its own fifth (and the 3 that
 * straddle a boundary); every other coefficient is left exactly as it was (a fresh Adam per
 * phase, whose zero gradients give zero steps).  Only the coefficients are trained: the base
 * branch is off (base_fun "zero") and the spline's scale fixed, since a global factor would
 * rescale every peak at once.  The MLP's weights all act on every x, so fitting one region
 * drags the others along: it forgets.
 *
 * After the last phase the RMSE of both on each earlier phase's region (dense samples) is
 * printed; an SVG (the target, the KAN and the MLP after each phase, one panel per phase) is
 * written to OUT.svg when given.  Exits 1 when the KAN's mean RMSE on the earlier regions is
 * not below a quarter of the MLP's.
 *
 *   ./example_13_kan_continual [STEPS [OUT.svg]]   (300 Adam steps per phase by default)
 *
 * Only the public header is used.
 */
#include "nabla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define PHASES 5
#define N_PER_PHASE 200
#define N_PLOT 400 /* samples over [-1, 1] drawn per curve, also the RMSE's dense samples */
static const float centres[PHASES] = {-0.8f, -0.4f, 0.0f, 0.4f, 0.8f};
#define WIDTH 0.05f

static float target(float x) {
    float y = 0;
    for (int p = 0; p < PHASES; p++) y += expf(-(x - centres[p]) * (x - centres[p]) / (WIDTH * WIDTH));
    return y;
}

/* n points x of [lo, hi) evenly spaced (midpoints) as [n, 1], and the target y [n, 1]. */
static void make_data(float lo, float hi, int n, nb_tensor **x, nb_tensor **y) {
    *x = nb_zeros(NB_SHAPE(n, 1));
    *y = nb_zeros(NB_SHAPE(n, 1));
    float *xs = nb_data(*x), *ys = nb_data(*y);
    for (int j = 0; j < n; j++) {
        xs[j] = lo + (hi - lo) * ((float)j + 0.5f) / (float)n;
        ys[j] = target(xs[j]);
    }
}

/* n Adam steps (lr) of the mean squared error on (x, y), moving only params[0..np). */
static int train_phase(nb_module *m, int np, nb_tensor *const *params, nb_tensor *x,
                       nb_tensor *y, int steps, float lr) {
    nb_optim *o = nb_adam_new(np, params, (nb_adam_opts){.lr = lr});
    nb_status st = o ? NB_OK : nb_error_code();
    for (int s = 0; s < steps && st == NB_OK; s++) {
        nb_scope_begin();
        nb_optim_zero_grad(o);
        nb_tensor *loss = nb_mse_loss(nb_module_forward(m, x), y, NB_REDUCTION_MEAN);
        st = loss ? nb_backward(loss) : nb_error_code();
        if (st == NB_OK) st = nb_optim_step(o);
        nb_scope_end();
    }
    nb_optim_free(o);
    if (st != NB_OK) fprintf(stderr, "13_kan_continual: %s\n", nb_error_message());
    return st == NB_OK;
}

/* The model's values at the N_PLOT dense points x, into out. */
static void predict(nb_module *m, nb_tensor *x, float *out) {
    nb_scope_begin();
    NB_NO_GRAD {
        const float *v = nb_data(nb_contiguous(nb_module_forward(m, x)));
        for (int j = 0; j < N_PLOT; j++) out[j] = v[j];
    }
    nb_scope_end();
}

/* RMSE of a curve sampled at the dense points against the target, over [lo, hi). */
static double region_rmse(const float *xs, const float *curve, float lo, float hi) {
    double s = 0;
    int n = 0;
    for (int j = 0; j < N_PLOT; j++)
        if (xs[j] >= lo && xs[j] < hi) {
            double d = curve[j] - target(xs[j]);
            s += d * d, n++;
        }
    return sqrt(s / n);
}

static float phase_lo(int p) { return -1.0f + 0.4f * (float)p; }

/* One panel per phase, side by side: target (grey), KAN (blue), MLP (orange) on [-1, 1] x
 * [-0.5, 1.5]; the phase's region shaded. */
static void write_svg(const char *path, const float *xs, float (*kan)[N_PLOT],
                      float (*mlp)[N_PLOT]) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "13_kan_continual: cannot write %s\n", path);
        return;
    }
    const double pw = 220, ph = 160, top = 40;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' "
            "font-family='sans-serif'>\n<rect width='100%%' height='100%%' fill='white'/>\n"
            "<text x='10' y='20' font-size='13'>five peaks learned phase after phase: target "
            "(grey), KAN [1,1] G=200 (blue), MLP 1-12-12-1 (orange)</text>\n",
            PHASES * pw + 20, ph + top + 30);
    for (int p = 0; p < PHASES; p++) {
        double x0 = 10 + p * pw, w = pw - 10;
#define PX(v) (x0 + ((v) + 1) / 2 * w)
#define PY(v) (top + ph - ((v) + 0.5) / 2 * ph)
        fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='#eee'/>\n"
                "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='black'/>\n"
                "<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>phase %d</text>\n",
                PX(phase_lo(p)), top, 0.2 * w, ph, x0, top, w, ph, x0 + w / 2, top + ph + 15, p + 1);
        const float *curves[3] = {NULL, kan[p], mlp[p]};
        const char *color[3] = {"#999", "#1f77b4", "#ff7f0e"};
        for (int c = 0; c < 3; c++) {
            fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='%s' points='", color[c],
                    c ? "1.5" : "3");
            for (int j = 0; j < N_PLOT; j++) {
                double v = c ? curves[c][j] : target(xs[j]);
                fprintf(f, "%.1f,%.1f ", PX(xs[j]), PY(fmax(-0.5, fmin(1.5, v))));
            }
            fprintf(f, "'/>\n");
        }
#undef PX
#undef PY
    }
    fprintf(f, "</svg>\n");
    fclose(f);
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 300;
    nb_set_num_threads(1);
    nb_manual_seed(0);
    nb_module *kan = nb_kan_new(2, (int64_t[]){1, 1},
                                (nb_kan_opts){.grid = 200, .k = 3, .base_fun = "zero"});
    nb_module *layers[5] = {nb_linear_new(1, 12, true), nb_activation_new(NB_ACT_TANH, 0),
                            nb_linear_new(12, 12, true), nb_activation_new(NB_ACT_TANH, 0),
                            nb_linear_new(12, 1, true)};
    nb_module *mlp = nb_sequential_new(5, layers);
    if (!kan || !mlp) {
        fprintf(stderr, "13_kan_continual: %s\n", nb_error_message());
        return 1;
    }
    nb_tensor *coef = nb_module_find(kan, "0.coef");
    nb_tensor *mlp_params[8];
    int mlp_np = nb_module_parameters(mlp, mlp_params, 8);
    nb_tensor *xd, *yd;
    make_data(-1, 1, N_PLOT, &xd, &yd);
    const float *xs = nb_data(xd);
    static float kan_curve[PHASES][N_PLOT], mlp_curve[PHASES][N_PLOT];
    for (int p = 0; p < PHASES; p++) {
        nb_tensor *x, *y;
        make_data(phase_lo(p), phase_lo(p) + 0.4f, N_PER_PHASE, &x, &y);
        bool ok = train_phase(kan, 1, &coef, x, y, steps, 0.02f) &&
                  train_phase(mlp, mlp_np, mlp_params, x, y, steps, 0.01f);
        nb_tensor_free(x);
        nb_tensor_free(y);
        if (!ok) return 1;
        predict(kan, xd, kan_curve[p]);
        predict(mlp, xd, mlp_curve[p]);
    }
    printf("after phase %d, RMSE on each phase's region (KAN %lld parameters, MLP %lld)\n",
           PHASES, (long long)nb_module_num_elements(kan), (long long)nb_module_num_elements(mlp));
    printf("%-8s %-16s %10s %10s\n", "phase", "region", "KAN", "MLP");
    double kan_old = 0, mlp_old = 0;
    for (int p = 0; p < PHASES; p++) {
        double rk = region_rmse(xs, kan_curve[PHASES - 1], phase_lo(p), phase_lo(p) + 0.4f);
        double rm = region_rmse(xs, mlp_curve[PHASES - 1], phase_lo(p), phase_lo(p) + 0.4f);
        printf("%-8d [%5.2f, %5.2f)   %10.2e %10.2e\n", p + 1, phase_lo(p), phase_lo(p) + 0.4f,
               rk, rm);
        if (p < PHASES - 1) kan_old += rk / (PHASES - 1), mlp_old += rm / (PHASES - 1);
    }
    printf("earlier phases, mean RMSE: KAN %.2e, MLP %.2e\n", kan_old, mlp_old);
    if (argc > 2) write_svg(argv[2], xs, kan_curve, mlp_curve);
    nb_tensor_free(xd);
    nb_tensor_free(yd);
    nb_module_free(kan);
    nb_module_free(mlp);
    if (!(kan_old < 0.25 * mlp_old)) {
        fprintf(stderr, "13_kan_continual: the KAN did not keep the earlier peaks better than "
                        "the MLP (%.4f vs %.4f)\n", kan_old, mlp_old);
        return 1;
    }
    return 0;
}
