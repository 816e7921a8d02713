/*
 * 08_physics_informed.c — a physics-informed network (Raissi, Perdikaris & Karniadakis 2019):
 * a small MLP u(x) is trained so that it solves the boundary-value problem
 *     u''(x) = f(x) on [0, 1],   u(0) = u(1) = 0,   f(x) = -pi^2 sin(pi x),
 * whose solution is u(x) = sin(pi x).  No solution values are given to it: the loss is the
 * equation's residual at collocation points plus the boundary conditions, and the residual
 * holds u'', the second derivative of the network with respect to its input, computed by
 * autograd twice with create_graph — then backward differentiates all of it once more, with
 * respect to the weights.  The program reports the error against sin(pi x) on a grid of 101
 * points and exits 1 when it is above 2e-3 (it is about 2e-4).
 * Run as ./example_08_physics_informed [steps] (1500 by default: a few seconds).
 * Only the public header is used.
 */
#include "nabla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { HIDDEN = 20, POINTS = 32, GRID = 101 };
#define PI 3.14159265358979

/* u = nn.Sequential(nn.Linear(1, 20), nn.Tanh(), nn.Linear(20, 20), nn.Tanh(), nn.Linear(20, 1)) */
static nb_module *mlp_new(void) {
    nb_module *layers[] = {
        nb_linear_new(1, HIDDEN, true),      nb_activation_new(NB_ACT_TANH, 0),
        nb_linear_new(HIDDEN, HIDDEN, true), nb_activation_new(NB_ACT_TANH, 0),
        nb_linear_new(HIDDEN, 1, true),
    };
    return nb_sequential_new(5, layers);
}

/* d/dx of y [N, 1] at each of the N points x [N, 1]: row i of y depends on row i of x only, so
 * the gradient of sum(y) is the derivative at every point.  As torch:
 *     torch.autograd.grad(y, x, torch.ones_like(y), create_graph=True)[0]                  */
static nb_tensor *d_dx(nb_tensor *y, nb_tensor *x) {
    nb_tensor *g = NULL;
    nb_autograd_grad(1, &y, (nb_tensor *[]){nb_ones_like(y)}, 1, &x, &g,
                     &(nb_grad_options){.create_graph = true});
    return g;
}

/* loss = mean((u''(x) - f(x))^2) + u(0)^2 + u(1)^2 at collocation points x [N, 1] */
static nb_tensor *pinn_loss(nb_module *u, nb_tensor *x) {
    nb_tensor *uxx = d_dx(d_dx(nb_module_forward(u, x), x), x);
    nb_tensor *f = nb_mul_scalar(nb_sin(nb_mul_scalar(x, (float)PI)), (float)(-PI * PI));
    nb_tensor *residual = nb_sub(uxx, f);
    nb_tensor *ends = nb_module_forward(u, nb_from_data((float[]){0, 1}, NB_SHAPE(2, 1)));
    return nb_add(nb_mean(nb_mul(residual, residual)), nb_sum(nb_mul(ends, ends)));
}

/* POINTS collocation points: one uniform draw in each of POINTS equal cells of [0, 1]
 * (stratified, so every part of the interval is visited every step). */
static nb_tensor *collocation_points(void) {
    nb_tensor *cell = nb_arange(0, POINTS, 1);
    nb_tensor *x = nb_mul_scalar(nb_add(cell, nb_rand(NB_SHAPE(POINTS))), 1.0f / POINTS);
    nb_tensor *col = nb_reshape(x, NB_SHAPE(POINTS, 1));
    nb_set_requires_grad(col, true); /* a leaf: the input the derivatives are taken in */
    return col;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 1500;
    nb_manual_seed(0);
    nb_module *u = mlp_new();
    nb_tensor *params[6];
    int n = nb_module_parameters(u, params, 6);
    /* Adam(lr=1e-2) with a cosine decay to 1e-4 over the run */
    nb_optim *opt = nb_adam_new(n, params, (nb_adam_opts){.lr = 1e-2});
    nb_sched *sched = nb_cosinelr_new(opt, steps, 1e-4);
    bool ok = u && opt && sched;
    for (int step = 0; step < steps && ok; step++) {
        nb_scope_begin();
        nb_optim_zero_grad(opt);
        nb_tensor *loss = pinn_loss(u, collocation_points());
        ok = loss && nb_backward(loss) == NB_OK && nb_optim_step(opt) == NB_OK &&
             nb_sched_step(sched) == NB_OK;
        if (ok && (step % 250 == 0 || step == steps - 1))
            printf("step %5d  loss %.3e\n", step, nb_item(loss));
        nb_scope_end();
    }
    if (!ok) {
        fprintf(stderr, "08_physics_informed: %s\n", nb_error_message());
        return 1;
    }

    /* the error against the exact solution on a grid, with torch.no_grad() */
    double worst = 0, sq = 0;
    nb_module_train(u, false);
    NB_NO_GRAD {
        nb_scope_begin();
        nb_tensor *grid = nb_reshape(nb_arange(0, GRID, 1), NB_SHAPE(GRID, 1));
        nb_tensor *pred = nb_module_forward(u, nb_mul_scalar(grid, 1.0f / (GRID - 1)));
        for (int i = 0; i < GRID; i++) {
            double x = (double)i / (GRID - 1), err = nb_get(pred, NB_INDEX(i, 0)) - sin(PI * x);
            worst = fmax(worst, fabs(err));
            sq += err * err;
            if (i % 20 == 0) printf("u(%.1f) = %8.5f   sin(pi x) = %8.5f\n", x, nb_get(pred, NB_INDEX(i, 0)), sin(PI * x));
        }
        nb_scope_end();
    }
    printf("error against sin(pi x) on %d points: max %.2e, rms %.2e\n", GRID, worst, sqrt(sq / GRID));
    nb_sched_free(sched);
    nb_optim_free(opt);
    nb_module_free(u);
    nb_release_memory();
    if (!(worst < 2e-3)) {
        fprintf(stderr, "08_physics_informed: max error %.3g is above 2e-3\n", worst);
        return 1;
    }
    return 0;
}
