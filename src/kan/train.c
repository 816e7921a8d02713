/*
 * train.c — the KAN training loop (nabla/kan.h, nb_kan_train): pykan's fit() for first-order
 * optimisers, full batch.  Each step: the grids move to the data (nb_kan_update_grid) every
 * update_grid_every steps before stop_grid_update, then zero_grad, the forward (with the
 * regularisation when lamb > 0), loss = mean (kan(x) - y)^2 + lamb reg, backward, step.  The
 * command, the benchmarks and the examples call it; none copies it.
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

nb_status nb_kan_train(nb_module *kan, nb_optim *opt, nb_tensor *x, nb_tensor *y,
                       const nb_kan_train_opts *o, float *final_loss) {
    if (nb_kan_num_layers(kan) < 0) return nb_error_code();
    if (check_opts(o) != NB_OK) return nb_error_code();
    if (!opt) return nb__fail_status(NB_ERR_NULL, "nb_kan_train: the optimiser is NULL");
    nb_status st = NB_OK;
    for (int step = 0; st == NB_OK && step < o->steps; step++) {
        if (o->update_grid_every > 0 && step % o->update_grid_every == 0 && step < o->stop_grid_update)
            st = nb_kan_update_grid(kan, x, o->grid_eps);
        if (st != NB_OK) break;
        nb_scope_begin();
        nb_tensor *loss = step_loss(kan, x, y, o);
        float v = loss ? nb_item(loss) : NAN;
        if (!loss || nb_optim_zero_grad(opt) != NB_OK || nb_backward(loss) != NB_OK ||
            nb_optim_step(opt) != NB_OK)
            st = nb_error_code();
        else if (!isfinite(v))
            st = nb__fail_status(NB_ERR_ARG, "nb_kan_train: the loss is %g at step %d", v, step);
        nb_scope_end();
        if (final_loss) *final_loss = v;
    }
    return st;
}
