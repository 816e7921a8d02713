/*
 * 05_second_derivative.c — derivatives of derivatives, as torch.autograd.grad(...,
 * create_graph=True) gives them: the first three derivatives of tanh at a few points against
 * their closed forms, then the Hessian of logsumexp with nb_hessian.  The
 * program checks its own figures and exits 1 when one is off (float32: 1e-5).
 * Only the public header is used; everything lives in one scope.
 */
#include "nabla.h"

#include <math.h>
#include <stdio.h>

enum { N = 9 };

/* torch.autograd.grad(y.sum(), x, create_graph=True)[0]: for an elementwise y, the sum's
 * gradient is y' at every point; with create_graph it has a graph of its own, so it can be
 * differentiated again. */
static nb_tensor *derivative(nb_tensor *y, nb_tensor *x, bool create_graph) {
    nb_tensor *g = NULL;
    nb_autograd_grad(1, (nb_tensor *[]){nb_sum(y)}, NULL, 1, &x, &g,
                     &(nb_grad_options){.create_graph = create_graph});
    return g;
}

/* logsumexp(p) = log(sum(exp(p))), a function of one tensor for nb_hessian: its gradient is
 * s = softmax(p) and its Hessian diag(s) - s s^T. */
static nb_tensor *logsumexp(nb_tensor *p, void *ctx) {
    (void)ctx;
    return nb_log(nb_sum(nb_exp(p)));
}

int main(void) {
    nb_scope_begin();
    double worst = 0;

    /* x = torch.linspace(-2, 2, 9, requires_grad=True); y = torch.tanh(x)
     * dy  = grad(y.sum(),   x, create_graph=True)    1 - tanh^2
     * d2y = grad(dy.sum(),  x, create_graph=True)    -2 tanh (1 - tanh^2)
     * d3y = grad(d2y.sum(), x)                       -2 (1 - tanh^2) (1 - 3 tanh^2) */
    nb_tensor *x = nb_arange(-2.0f, 2.5f, 0.5f);
    nb_set_requires_grad(x, true);
    nb_tensor *y = nb_tanh(x);
    nb_tensor *dy = derivative(y, x, true), *d2y = derivative(dy, x, true), *d3y = derivative(d2y, x, false);
    if (!dy || !d2y || !d3y) {
        fprintf(stderr, "05_second_derivative: %s\n", nb_error_message());
        return 1;
    }
    printf("    x    tanh'(x)   tanh''(x)  closed form   tanh'''(x) closed form\n");
    for (int i = 0; i < N; i++) {
        double t = tanh(nb_get(x, NB_INDEX(i))), s = 1 - t * t;
        double want[3] = {s, -2 * t * s, -2 * s * (1 - 3 * t * t)};
        double got[3] = {nb_get(dy, NB_INDEX(i)), nb_get(d2y, NB_INDEX(i)), nb_get(d3y, NB_INDEX(i))};
        for (int k = 0; k < 3; k++) worst = fmax(worst, fabs(got[k] - want[k]));
        printf("%5.1f  %9.6f  %10.6f  %10.6f  %10.6f  %10.6f\n", nb_get(x, NB_INDEX(i)), got[0],
               got[1], want[1], got[2], want[2]);
    }

    /* torch.autograd.functional.hessian(lambda p: p.exp().sum().log(), p) */
    enum { P = 3 };
    float pv[P] = {0.5f, -1.0f, 2.0f};
    nb_tensor *p = nb_from_data(pv, NB_SHAPE(P));
    nb_tensor *h = nb_hessian(logsumexp, NULL, p);
    if (!h) {
        fprintf(stderr, "05_second_derivative: %s\n", nb_error_message());
        return 1;
    }
    double s[P], total = 0;
    for (int i = 0; i < P; i++) total += s[i] = exp(pv[i]);
    printf("\nHessian of logsumexp at p = (0.5, -1, 2), and diag(s) - s s^T with s = softmax(p):\n");
    for (int i = 0; i < P; i++) {
        for (int j = 0; j < P; j++) printf(" %9.6f", nb_get(h, NB_INDEX(i, j)));
        printf("   |");
        for (int j = 0; j < P; j++) {
            double want = (i == j ? s[i] / total : 0) - s[i] / total * s[j] / total;
            printf(" %9.6f", want);
            worst = fmax(worst, fabs(nb_get(h, NB_INDEX(i, j)) - want));
        }
        printf("\n");
    }

    nb_scope_end();
    nb_release_memory();
    printf("\nworst difference from the closed forms: %.2g\n", worst);
    if (!(worst < 1e-5)) {
        fprintf(stderr, "05_second_derivative: a derivative is off by %.3g\n", worst);
        return 1;
    }
    return 0;
}
