/*
 * kan_toys.c — the toy functions of the KAN paper (sec. 3.1, fig. 3.1) for issue 15: each
 * fitted by a small KAN and by an MLP with about as many parameters, both full batch with the
 * same budget, and the test RMSE of both printed with their parameter counts.
 *
 *   J0(20 x)                               [-1, 1]     KAN [1, 1]
 *   x y                                    [-1, 1]^2   KAN [2, 2, 1]
 *   exp(sin(pi x) + y^2)                   [-1, 1]^2   KAN [2, 5, 1]
 *   exp(sin(x1^2 + x2^2) + sin(x3^2 + x4^2)) [-1, 1]^4 KAN [4, 4, 2, 1]
 *   x / y                                  [0.5, 2]^2  KAN [2, 5, 1]   (exp(log x - log y))
 *
 * The two [2, 5, 1] are pykan's first tutorial's width: [2, 1, 1], the formulas' own shape,
 * trained from a random start here stalls near test RMSE 0.6 for the first and 4e-3 for the
 * second (the basin bench/kan_grid.c meets with L-BFGS alone); pruning finds [2, 1, 1] later.
 *
 * The KAN: grid 5 trained, then extended (nb_kan_extend) to 10 and 20 and trained on at each
 * grid (pykan's refine); per grid ADAM Adam steps (lr 0.01, the grids following the data as
 * nb_kan_train does) then STEPS L-BFGS steps (nb_kan_lbfgs_opts).  The MLP: tanh, two hidden
 * layers of width h, h the one whose parameter count is nearest the final KAN's (counted as
 * nb_module_num_elements counts: a KAN edge has G + k coefficients, its two scales and the four
 * affine parameters of the symbolic branch); three rounds of the same Adam and L-BFGS steps,
 * so both get the same number of optimiser steps.  J0 is its power series
 * sum_m (-1)^m (z / 2)^(2m) / (m!)^2, in double (the largest term at z = 20, ~8e6, leaves
 * ~1e-9 of rounding).
 *
 *   bench_kan_toys [STEPS [ADAM]]   (defaults 20 L-BFGS and 200 Adam steps per round)
 *
 * Output: a table, then "@kan_toys f=... kan_params=... kan_rmse=... mlp_params=... mlp_rmse=..."
 * lines.
 */
#include "nabla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define N_TRAIN 1000
#define N_TEST 1000
#define MAX_IN 4
static const int grids[] = {5, 10, 20};
#define N_GRIDS ((int)(sizeof grids / sizeof grids[0]))

static double bessel_j0(double z) {
    double term = 1, sum = 1, h = z * z / 4;
    for (int m = 1; m < 80; m++) {
        term *= -h / ((double)m * m);
        sum += term;
    }
    return sum;
}

static double f_j0(const double *x) { return bessel_j0(20 * x[0]); }
static double f_xy(const double *x) { return x[0] * x[1]; }
static double f_expsin(const double *x) { return exp(sin(M_PI * x[0]) + x[1] * x[1]); }
static double f_four(const double *x) {
    return exp(sin(x[0] * x[0] + x[1] * x[1]) + sin(x[2] * x[2] + x[3] * x[3]));
}
static double f_ratio(const double *x) { return x[0] / x[1]; }

typedef struct {
    const char *name;
    double (*f)(const double *x);
    float lo, hi;        /* every input uniform in [lo, hi] */
    int depth;           /* the KAN's widths */
    int64_t width[4];
} toy;

static const toy toys[] = {
    {"J0(20x)", f_j0, -1, 1, 2, {1, 1}},
    {"x*y", f_xy, -1, 1, 3, {2, 2, 1}},
    {"exp(sin(pi*x)+y^2)", f_expsin, -1, 1, 3, {2, 5, 1}},
    {"exp(sin(x1^2+x2^2)+sin(x3^2+x4^2))", f_four, -1, 1, 4, {4, 4, 2, 1}},
    {"x/y", f_ratio, 0.5f, 2, 3, {2, 5, 1}},
};
#define N_TOYS ((int)(sizeof toys / sizeof toys[0]))

/* x [n, in] uniform in [lo, hi]^in and y = f(x) [n, 1], the caller's. */
static void make_data(const toy *t, int64_t n, nb_tensor **x, nb_tensor **y) {
    int64_t in = t->width[0];
    nb_scope_begin();
    *x = nb_persist(nb_add_scalar(nb_mul_scalar(nb_rand(NB_SHAPE(n, in)), t->hi - t->lo), t->lo));
    nb_scope_end();
    *y = nb_zeros(NB_SHAPE(n, 1));
    const float *xs = nb_data(*x);
    float *ys = nb_data(*y);
    for (int64_t r = 0; r < n; r++) {
        double v[MAX_IN];
        for (int64_t i = 0; i < in; i++) v[i] = xs[r * in + i];
        ys[r] = (float)t->f(v);
    }
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

/* The MLP's closure: zero_grad, mean squared error, backward. */
typedef struct {
    nb_module *m;
    nb_optim *o;
    nb_tensor *x, *y;
} mlp_ctx;

static double mlp_closure(void *p) {
    mlp_ctx *c = p;
    nb_optim_zero_grad(c->o);
    nb_tensor *loss = nb_mse_loss(nb_module_forward(c->m, c->x), c->y, NB_REDUCTION_MEAN);
    if (!loss || nb_backward(loss) != NB_OK) return NAN;
    return nb_item(loss);
}

/* One round: adam Adam steps (lr 0.01) then steps L-BFGS steps, on a KAN through nb_kan_train
 * (its grid updates included) or on an MLP through mlp_closure. */
static int train_round(nb_module *m, bool kan, nb_tensor *x, nb_tensor *y, int adam, int steps) {
    nb_tensor *params[32];
    int np = nb_module_parameters(m, params, 32);
    for (int phase = 0; phase < 2; phase++) {
        int n = phase ? steps : adam;
        nb_optim *o = phase ? nb_lbfgs_new(np, params, nb_kan_lbfgs_opts())
                            : nb_adam_new(np, params, (nb_adam_opts){.lr = 0.01});
        nb_status st = o ? NB_OK : nb_error_code();
        if (o && kan) {
            nb_kan_train_opts t = {.steps = n, .lamb_entropy = 2, .grid_eps = 0.02f,
                                   .update_grid_every = phase ? 0 : 5, .stop_grid_update = 50};
            st = nb_kan_train(m, o, x, y, &t, NULL);
        }
        mlp_ctx c = {m, o, x, y};
        for (int s = 0; o && !kan && st == NB_OK && s < n; s++)
            st = nb_optim_step_closure(o, mlp_closure, &c, NULL);
        nb_optim_free(o);
        if (st != NB_OK) {
            fprintf(stderr, "kan_toys: %s: %s\n", kan ? "KAN" : "MLP", nb_error_message());
            return 0;
        }
    }
    return 1;
}

static int64_t mlp_params(int64_t in, int64_t h) { return in * h + h + h * h + h + h + 1; }

/* An MLP in -> h -> h -> 1 with tanh, h chosen so its parameter count is nearest target. */
static nb_module *make_mlp(int64_t in, int64_t target) {
    int64_t best = 1;
    for (int64_t h = 2; h <= 64; h++)
        if (llabs(mlp_params(in, h) - target) < llabs(mlp_params(in, best) - target)) best = h;
    nb_module *layers[5] = {nb_linear_new(in, best, true), nb_activation_new(NB_ACT_TANH, 0),
                            nb_linear_new(best, best, true), nb_activation_new(NB_ACT_TANH, 0),
                            nb_linear_new(best, 1, true)};
    return nb_sequential_new(5, layers);
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 20;
    int adam = argc > 2 ? atoi(argv[2]) : 200;
    nb_set_num_threads(1);
    printf("kan_toys: KAN (G 5 -> 10 -> 20) vs tanh MLP of ~ the same size; per round %d Adam + "
           "%d L-BFGS steps, %d rounds each; %d train / %d test points\n"
           "%-36s %-10s %7s %12s %7s %7s %12s\n", adam, steps, N_GRIDS, N_TRAIN, N_TEST,
           "function", "KAN", "params", "test RMSE", "MLP h", "params", "test RMSE");
    double kan_rmse[N_TOYS], mlp_rmse[N_TOYS];
    int64_t kan_n[N_TOYS], mlp_n[N_TOYS];
    for (int f = 0; f < N_TOYS; f++) {
        const toy *t = &toys[f];
        nb_manual_seed(0);
        nb_tensor *x, *y, *xt, *yt;
        make_data(t, N_TRAIN, &x, &y);
        make_data(t, N_TEST, &xt, &yt);
        nb_module *kan = nb_kan_new(t->depth, t->width,
                                    (nb_kan_opts){.grid = grids[0], .k = 3, .grid_min = t->lo,
                                                  .grid_max = t->hi});
        for (int g = 0; g < N_GRIDS && kan; g++) {
            if (g > 0) {
                nb_module *finer = nb_kan_extend(kan, grids[g]);
                nb_module_free(kan);
                kan = finer;
            }
            if (kan && !train_round(kan, true, x, y, adam, steps)) return 1;
        }
        if (!kan) {
            fprintf(stderr, "kan_toys: %s: %s\n", t->name, nb_error_message());
            return 1;
        }
        kan_n[f] = nb_module_num_elements(kan);
        kan_rmse[f] = rmse(kan, xt, yt);
        nb_module *mlp = make_mlp(t->width[0], kan_n[f]);
        for (int r = 0; r < N_GRIDS && mlp; r++)
            if (!train_round(mlp, false, x, y, adam, steps)) return 1;
        if (!mlp) {
            fprintf(stderr, "kan_toys: MLP: %s\n", nb_error_message());
            return 1;
        }
        mlp_n[f] = nb_module_num_elements(mlp);
        mlp_rmse[f] = rmse(mlp, xt, yt);
        char shape[32];
        int len = 0;
        for (int l = 0; l < t->depth; l++)
            len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%lld", l ? "," : "[",
                            (long long)t->width[l]);
        snprintf(shape + len, sizeof shape - (size_t)len, "]");
        nb_tensor *w0 = nb_module_find(mlp, "0.weight");
        printf("%-36s %-10s %7lld %12.4e %7lld %7lld %12.4e\n", t->name, shape,
               (long long)kan_n[f], kan_rmse[f], (long long)nb_shape(w0)[0], (long long)mlp_n[f],
               mlp_rmse[f]);
        fflush(stdout);
        nb_module_free(kan);
        nb_module_free(mlp);
        nb_tensor_free(x);
        nb_tensor_free(y);
        nb_tensor_free(xt);
        nb_tensor_free(yt);
    }
    for (int f = 0; f < N_TOYS; f++)
        printf("@kan_toys f=%s kan_params=%lld kan_rmse=%.6g mlp_params=%lld mlp_rmse=%.6g\n",
               toys[f].name, (long long)kan_n[f], kan_rmse[f], (long long)mlp_n[f], mlp_rmse[f]);
    return 0;
}
