/*
 * 12_kan.c — a Kolmogorov-Arnold network (Liu et al. 2024), pykan's first tutorial in C:
 * f(x, y) = exp(sin(pi x) + y^2) learned by a KAN [2, 5, 1] trained with the sparsity
 * regularisation, pruned to the nodes it uses, then refined by grid extension (G 5 -> 10 -> 20),
 * each step printing train and test RMSE.  The program exits 1 when the pruned KAN is not
 * [2, 1, 1] (what the formula's shape asks for: one inner sum, one outer function) or the final
 * test RMSE is above 1e-3 (it is about 3e-5).  Pykan trains with L-BFGS; Adam stands in here,
 * and needs about 1000 steps of the regularised fit before pruning finds the single node.
 * Run as ./example_12_kan [steps [OUT.svg]] (1000 per stage by default: seconds); with OUT.svg the
 * final network is drawn there (every edge's function in place, faded by importance).
 * Only the public header is used.
 */
#include "nabla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* dataset = create_dataset(f, n_var=2): x uniform in [-1, 1]^2, y = f(x) */
static void make_data(int64_t n, nb_tensor **x, nb_tensor **y) {
    nb_scope_begin();
    *x = nb_persist(nb_add_scalar(nb_mul_scalar(nb_rand(NB_SHAPE(n, 2)), 2.0f), -1.0f));
    nb_tensor *a = nb_slice(*x, 1, 0, 1, 1), *b = nb_slice(*x, 1, 1, 2, 1);
    *y = nb_persist(nb_exp(nb_add(nb_sin(nb_mul_scalar(a, 3.14159265f)), nb_mul(b, b))));
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

/* model.fit(dataset, opt="Adam", steps=steps, lamb=lamb, lr=lr) */
static int fit(nb_module *m, nb_tensor *x, nb_tensor *y, int steps, float lamb, float lr) {
    nb_tensor *params[16];
    int np = nb_module_parameters(m, params, 16);
    nb_optim *o = nb_adam_new(np, params, (nb_adam_opts){.lr = lr});
    nb_kan_train_opts t = {.steps = steps, .lamb = lamb, .lamb_entropy = 2.0f, .grid_eps = 0.02f,
                           .update_grid_every = 5, .stop_grid_update = 50};
    nb_status st = o ? nb_kan_train(m, o, x, y, &t, NULL) : nb_error_code();
    nb_optim_free(o);
    if (st != NB_OK) fprintf(stderr, "fit: %s\n", nb_error_message());
    return st == NB_OK;
}

static void report(const char *what, nb_module *m, nb_tensor *x, nb_tensor *y, nb_tensor *xt,
                   nb_tensor *yt) {
    printf("%-28s width [%lld", what, (long long)nb_kan_in_features(nb_kan_layer(m, 0)));
    for (int l = 0; l < nb_kan_num_layers(m); l++)
        printf(",%lld", (long long)nb_kan_out_features(nb_kan_layer(m, l)));
    printf("]  G %2d  train RMSE %.3e  test RMSE %.3e\n", nb_kan_grid_size(nb_kan_layer(m, 0)),
           rmse(m, x, y), rmse(m, xt, yt));
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 1000;
    nb_manual_seed(0);
    nb_tensor *x, *y, *xt, *yt;
    make_data(1000, &x, &y);
    make_data(1000, &xt, &yt);
    /* model = KAN(width=[2,5,1], grid=5, k=3, seed=0) */
    nb_module *m = nb_kan_new(3, (int64_t[]){2, 5, 1}, (nb_kan_opts){.grid = 5, .k = 3});
    if (!m || !fit(m, x, y, steps, 0.01f, 0.02f)) return 1;
    report("trained, lamb 0.01", m, x, y, xt, yt);
    /* model = model.prune(): hidden nodes whose edges in or out all score below 1e-2 go */
    nb_module *pruned = nb_kan_prune(m, x, 1e-2f, 0.0f);
    nb_module_free(m);
    if (!pruned || !fit(pruned, x, y, steps, 0.0f, 0.02f)) return 1;
    report("pruned, refitted", pruned, x, y, xt, yt);
    bool shape_ok = nb_kan_out_features(nb_kan_layer(pruned, 0)) == 1;
    /* model = model.refine(grid): extension by least squares, then training on */
    const int grids[] = {10, 20};
    for (int i = 0; i < 2; i++) {
        nb_module *finer = nb_kan_extend(pruned, grids[i]);
        nb_module_free(pruned);
        pruned = finer;
        if (!pruned || !fit(pruned, x, y, steps, 0.0f, 0.01f * 10.0f / grids[i])) return 1;
        char what[32];
        snprintf(what, sizeof what, "grid extended to %d", grids[i]);
        report(what, pruned, x, y, xt, yt);
    }
    double final = rmse(pruned, xt, yt);
    if (argc > 2 && nb_kan_plot_svg(pruned, x, argv[2]) != NB_OK)
        fprintf(stderr, "plot: %s\n", nb_error_message());
    nb_module_free(pruned);
    nb_tensor_free(x);
    nb_tensor_free(y);
    nb_tensor_free(xt);
    nb_tensor_free(yt);
    if (!shape_ok) fprintf(stderr, "12_kan: pruning kept more than one hidden node\n");
    if (final > 1e-3) fprintf(stderr, "12_kan: test RMSE %.3e is above 1e-3\n", final);
    return shape_ok && final <= 1e-3 ? 0 : 1;
}
