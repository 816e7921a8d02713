/*
 * train.c — the KAN training loop (nabla/kan.h, nb_kan_train): pykan's fit(), full batch.  Each
 * step: the grids move to the data (nb_kan_update_grid) every update_grid_every steps before
 * stop_grid_update, then one nb_optim_step_closure whose closure zeroes the gradients, runs the
 * forward (with the regularisation when lamb > 0), loss = mean (kan(x) - y)^2 + lamb reg, and
 * backward.  A first-order optimiser calls the closure once and steps; L-BFGS calls it as often
 * as its iterations and line search need, as pykan's fit() drives torch's LBFGS.  The command,
 * the benchmarks and the examples call it; none copies it.
 */
#include "kan.h"

#include <math.h>

/* One step's loss, a scalar in the open scope. */
static nb_tensor *step_loss(nb_module *kan, nb_tensor *x, nb_tensor *y, const nb_kan_train_opts *o) {
    nb_tensor *reg = NULL;
    nb_tensor *out = o->lamb > 0.0f ? nb_kan_forward_reg(kan, x, 1.0f, o->lamb_entropy, &reg)
                                    : nb_module_forward(kan, x);
    nb_tensor *d = nb_sub(out, y), *loss = nb_mean(nb_mul(d, d));
    return reg ? nb_add(loss, nb_mul_scalar(reg, o->lamb)) : loss;
}

static nb_status check_opts(const nb_kan_train_opts *o) {
    if (!o) return nb__fail_status(NB_ERR_NULL, "nb_kan_train: opts is NULL");
    if (o->steps < 1 || o->update_grid_every < 0 || o->stop_grid_update < 0)
        return nb__fail_status(NB_ERR_ARG, "nb_kan_train: steps %d must be >= 1 and the grid "
                               "update's counts >= 0", o->steps);
    if (!(o->lamb >= 0.0f && isfinite(o->lamb) && o->lamb_entropy >= 0.0f &&
          isfinite(o->lamb_entropy) && o->grid_eps >= 0.0f && o->grid_eps <= 1.0f))
        return nb__fail_status(NB_ERR_ARG, "nb_kan_train: lamb %g and lamb_entropy %g must be "
                               "finite and >= 0, grid_eps %g in [0, 1]", o->lamb, o->lamb_entropy,
                               o->grid_eps);
    return NB_OK;
}

typedef struct {
    nb_module *kan;
    nb_optim *opt;
    nb_tensor *x, *y;
    const nb_kan_train_opts *o;
    int step;
} train_ctx;

/* The closure: zero_grad, the loss, backward; NAN with the error set on failure, a loss that
 * is not finite among them (so no optimiser steps on its gradients). */
static double closure(void *p) {
    train_ctx *c = p;
    nb_tensor *loss = step_loss(c->kan, c->x, c->y, c->o);
    if (!loss || nb_optim_zero_grad(c->opt) != NB_OK || nb_backward(loss) != NB_OK) return NAN;
    double v = nb_item(loss);
    if (!isfinite(v))
        return nb__fail_status(NB_ERR_ARG, "nb_kan_train: the loss is %g at step %d", v, c->step), NAN;
    return v;
}

nb_lbfgs_opts nb_kan_lbfgs_opts(void) {
    return (nb_lbfgs_opts){.lr = 1.0, .max_iter = 20, .tolerance_grad = 1e-32,
                           .tolerance_change = 1e-32, .history_size = 10,
                           .line_search_fn = NB_LINE_SEARCH_STRONG_WOLFE};
}

nb_status nb_kan_train(nb_module *kan, nb_optim *opt, nb_tensor *x, nb_tensor *y,
                       const nb_kan_train_opts *o, float *final_loss) {
    if (nb_kan_num_layers(kan) < 0) return nb_error_code();
    if (check_opts(o) != NB_OK) return nb_error_code();
    if (!opt) return nb__fail_status(NB_ERR_NULL, "nb_kan_train: the optimiser is NULL");
    train_ctx c = {kan, opt, x, y, o, 0};
    nb_status st = NB_OK;
    for (int step = 0; st == NB_OK && step < o->steps; step++) {
        if (o->update_grid_every > 0 && step % o->update_grid_every == 0 && step < o->stop_grid_update)
            st = nb_kan_update_grid(kan, x, o->grid_eps);
        if (st != NB_OK) break;
        double v = NAN;
        c.step = step;
        st = nb_optim_step_closure(opt, closure, &c, &v);
        if (final_loss) *final_loss = (float)v;
    }
    return st;
}
