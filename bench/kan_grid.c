/*
 * kan_grid.c — the grid-extension demo of the KAN paper (fig. 2.3) for issue 15:
 * f(x, y) = exp(sin(pi x) + y^2) on [-1, 1]^2, a KAN [2, 1, 1] trained at G = 3, then extended
 * (nb_kan_extend: least squares from the coarser model) and trained again at each larger G,
 * full batch, with Adam at a rate of LR min(1, 10 / G) (a finer grid's coefficients need
 * smaller steps, and a constant rate leaves G = 50 worse than G = 20), or, with LR "lbfgs",
 * with L-BFGS as the paper and pykan (nb_kan_lbfgs_opts), after 300 Adam steps at the first
 * grid (from the random start L-BFGS alone stalls near RMSE 0.5).  The grids follow the data (nb_kan_train's updates, grid_eps 0.02):
 * without them the hidden node's values leave the grid and extension gains nothing.  Prints
 * train and test RMSE per G and the slope of log(test RMSE) against log(G) between neighbours
 * and over G >= 5 (the paper's scaling law: -4 for k = 3 where the optimiser reaches the
 * spline's error; float32 rounding of values up to e^2 puts a floor near 1e-6).
 *
 *   bench_kan_grid [STEPS [LR|lbfgs [SVG]]]  (defaults 300, 0.01; SVG: a log-log plot written there)
 *
 * Output: a table, then "@kan_grid G=... train_rmse=... test_rmse=..." lines.
 */
#include "nabla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_TRAIN 1000
#define N_TEST 1000
static const int grids[] = {3, 5, 10, 20, 50};
#define N_GRIDS ((int)(sizeof grids / sizeof grids[0]))

/* x [n, 2] uniform in [-1, 1]^2 and y = exp(sin(pi x0) + x1^2) [n, 1], the caller's. */
static void make_data(int64_t n, nb_tensor **x, nb_tensor **y) {
    nb_scope_begin();
    *x = nb_persist(nb_add_scalar(nb_mul_scalar(nb_rand(NB_SHAPE(n, 2)), 2.0f), -1.0f));
    nb_tensor *a = nb_slice(*x, 1, 0, 1, 1), *b = nb_slice(*x, 1, 1, 2, 1);
    *y = nb_persist(nb_exp(nb_add(nb_sin(nb_mul_scalar(a, (float)M_PI)), nb_mul(b, b))));
    nb_scope_end();
}

static double rmse(nb_module *m, nb_tensor *x, nb_tensor *y) {
    double v;
    nb_scope_begin();
    NB_NO_GRAD {
        nb_tensor *d = nb_sub(nb_module_forward(m, x), y);
        v = sqrt(nb_item(nb_mean(nb_mul(d, d))));
    }
    nb_scope_end();
    return v;
}

/* log-log axes: G from 2 to 100, RMSE from 1e-6 to 1 */
static double gx(double g) { return 60 + 400 * (log10(g) - log10(2.0)) / (log10(100.0) - log10(2.0)); }
static double ry(double r) { return 20 + 300 * (0 - log10(fmax(r, 1e-6))) / 6.0; }

static void write_svg(const char *path, const double *train, const double *test) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='500' height='370' font-family='sans-serif'>\n"
            "<rect width='100%%' height='100%%' fill='white'/>\n"
            "<rect x='60' y='20' width='400' height='300' fill='none' stroke='black'/>\n"
            "<text x='260' y='360' font-size='12' text-anchor='middle'>grid size G (log)</text>\n"
            "<text x='14' y='170' font-size='12' transform='rotate(-90 14 170)' text-anchor='middle'>RMSE (log)</text>\n");
    for (int e = 0; e <= 6; e++)
        fprintf(f, "<text x='55' y='%.1f' font-size='10' text-anchor='end'>1e-%d</text>\n", ry(pow(10, -e)) + 3, e);
    for (int i = 0; i < N_GRIDS; i++)
        fprintf(f, "<text x='%.1f' y='335' font-size='10' text-anchor='middle'>%d</text>\n", gx(grids[i]), grids[i]);
    const double *series[2] = {train, test};
    const char *color[2] = {"#1f77b4", "#ff7f0e"};
    for (int s = 0; s < 2; s++) {
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2' points='", color[s]);
        for (int i = 0; i < N_GRIDS; i++) fprintf(f, "%.1f,%.1f ", gx(grids[i]), ry(series[s][i]));
        fprintf(f, "'/>\n");
    }
    /* the paper's G^-4 from the first test point */
    fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='gray' stroke-dasharray='4 3'/>\n"
            "<text x='400' y='40' font-size='11' fill='#1f77b4'>train</text>"
            "<text x='400' y='55' font-size='11' fill='#ff7f0e'>test</text>"
            "<text x='400' y='70' font-size='11' fill='gray'>G^-4</text>\n</svg>\n",
            gx(grids[0]), ry(test[0]), gx(grids[N_GRIDS - 1]),
            ry(test[0] * pow((double)grids[N_GRIDS - 1] / grids[0], -4)));
    fclose(f);
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 300;
    bool lbfgs = argc > 2 && !strcmp(argv[2], "lbfgs");
    float lr = argc > 2 && !lbfgs ? (float)atof(argv[2]) : 0.01f;
    nb_manual_seed(0);
    nb_tensor *x, *y, *xt, *yt;
    make_data(N_TRAIN, &x, &y);
    make_data(N_TEST, &xt, &yt);
    nb_module *m = nb_kan_new(3, (int64_t[]){2, 1, 1}, (nb_kan_opts){.grid = grids[0], .k = 3});
    nb_kan_train_opts t = {.steps = steps, .lamb_entropy = 2, .grid_eps = 0.02f,
                           .update_grid_every = 5, .stop_grid_update = 50};
    double train[N_GRIDS], test[N_GRIDS];
    printf("kan_grid: KAN [2,1,1] on exp(sin(pi x) + y^2), %s lr %g, %d steps per grid, "
           "%d train / %d test points\n%6s %8s %12s %12s %8s\n", lbfgs ? "L-BFGS" : "Adam",
           lbfgs ? 1.0 : lr, steps, N_TRAIN, N_TEST,
           "G", "params", "train RMSE", "test RMSE", "slope");
    for (int i = 0; i < N_GRIDS && m; i++) {
        if (i > 0) {
            nb_module *finer = nb_kan_extend(m, grids[i]);
            nb_module_free(m);
            m = finer;
        }
        nb_tensor *params[8];
        int np = m ? nb_module_parameters(m, params, 8) : 0;
        /* L-BFGS from the random start of G = 3 stalls in a poor basin (test RMSE ~0.5 whatever
         * G): the first grid is warmed up by Adam, then L-BFGS refines every grid */
        for (int warm = lbfgs && i == 0; warm >= 0; warm--) {
            nb_optim *o = !m ? NULL : lbfgs && !warm ? nb_lbfgs_new(np, params, nb_kan_lbfgs_opts())
                          : nb_adam_new(np, params, (nb_adam_opts){.lr = lr * fminf(1.0f, 10.0f / grids[i])});
            nb_kan_train_opts tw = t;
            if (warm) tw.steps = 300;
            if (!o || nb_kan_train(m, o, x, y, &tw, NULL) != NB_OK) {
                fprintf(stderr, "kan_grid: G %d: %s\n", grids[i], nb_error_message());
                return 1;
            }
            nb_optim_free(o);
        }
        train[i] = rmse(m, x, y);
        test[i] = rmse(m, xt, yt);
        double slope = i ? log(test[i] / test[i - 1]) / log((double)grids[i] / grids[i - 1]) : NAN;
        printf("%6d %8lld %12.4e %12.4e %8.2f\n", grids[i], (long long)nb_module_num_elements(m),
               train[i], test[i], slope);
    }
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 1; i < N_GRIDS; i++) {
        double lx = log((double)grids[i]), ly = log(test[i]);
        sx += lx, sy += ly, sxx += lx * lx, sxy += lx * ly;
    }
    int n = N_GRIDS - 1;
    printf("kan_grid: slope of log(test RMSE) on log(G) over G >= 5: %.2f (the paper: -4)\n",
           (n * sxy - sx * sy) / (n * sxx - sx * sx));
    for (int i = 0; i < N_GRIDS; i++)
        printf("@kan_grid G=%d train_rmse=%.6g test_rmse=%.6g\n", grids[i], train[i], test[i]);
    if (argc > 3) write_svg(argv[3], train, test);
    nb_module_free(m);
    nb_tensor_free(x);
    nb_tensor_free(y);
    nb_tensor_free(xt);
    nb_tensor_free(yt);
    return 0;
}
