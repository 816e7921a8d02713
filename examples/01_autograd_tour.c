/*
 * 01_autograd_tour.c — the course's autograd notebook, line by line in C.
 * Each block shows the torch code it mirrors in a comment, then the same thing with nabla.
 * Everything runs inside one scope, so nothing needs freeing by hand.
 */
#include "nabla.h"

#include <stdio.h>

#define SHOW(label, t)          \
    do {                        \
        printf("%-14s", label); \
        nb_print(t);            \
    } while (0)

static nb_tensor *scalar(float v, bool requires_grad) {
    nb_tensor *t = nb_full(0, NULL, v);
    nb_set_requires_grad(t, requires_grad);
    return t;
}

int main(void) {
    nb_scope_begin();

    /* x = torch.tensor(2.0, requires_grad=True)
     * y = x**2 + 3*x + 1
     * y.backward(); print(x.grad)            -> tensor(7.) */
    printf("-- dy/dx of y = x^2 + 3x + 1 at x = 2\n");
    nb_tensor *x = scalar(2, true);
    nb_tensor *y = nb_add_scalar(nb_add(nb_pow_scalar(x, 2), nb_mul_scalar(x, 3)), 1);
    SHOW("y =", y);
    nb_backward(y);
    SHOW("x.grad =", nb_grad(x));

    /* The worked example of the course: y = x1*w1 + 3*(x2**2 - w2)
     * at x1 = 1, w1 = 2, x2 = -2, w2 = 3: y = 5, dy/dx1 = 2, dy/dw1 = 1, dy/dx2 = -12, dy/dw2 = -3 */
    printf("\n-- the computational graph of y = x1 w1 + 3 (x2^2 - w2)\n");
    nb_tensor *x1 = scalar(1, true), *w1 = scalar(2, true), *x2 = scalar(-2, true), *w2 = scalar(3, true);
    nb_tensor *yy = nb_add(nb_mul(x1, w1), nb_mul_scalar(nb_sub(nb_pow_scalar(x2, 2), w2), 3));
    SHOW("y =", yy);
    nb_backward(yy);
    SHOW("x1.grad =", nb_grad(x1));
    SHOW("w1.grad =", nb_grad(w1));
    SHOW("x2.grad =", nb_grad(x2));
    SHOW("w2.grad =", nb_grad(w2));

    /* a = torch.tensor([1., 2., 3.], requires_grad=True)
     * b = (a**2).sum()
     * b.backward(retain_graph=True); a.grad   -> tensor([2., 4., 6.])
     * b.backward();                  a.grad   -> tensor([4., 8., 12.])   gradients accumulate
     * a.grad.zero_()                                                      until zeroed */
    printf("\n-- gradients accumulate across backward calls\n");
    nb_tensor *a = nb_from_data((float[]){1, 2, 3}, NB_SHAPE(3));
    nb_set_requires_grad(a, true);
    nb_tensor *b = nb_sum(nb_pow_scalar(a, 2));
    SHOW("b =", b);
    nb_backward(b); /* the graph lives as long as the scope: retain_graph is implied */
    SHOW("a.grad =", nb_grad(a));
    nb_backward(b);
    SHOW("a.grad =", nb_grad(a));
    nb_zero_grad(a);
    SHOW("zeroed =", nb_grad(a));

    /* with torch.no_grad(): c = a * 2      -> c.requires_grad == False
     * d = a.detach()                        -> shares a's data, no history */
    printf("\n-- no_grad and detach\n");
    nb_tensor *c = NULL;
    NB_NO_GRAD { c = nb_mul_scalar(a, 2); }
    SHOW("c =", c);
    printf("c.requires_grad = %s\n", nb_requires_grad(c) ? "True" : "False");
    nb_tensor *d = nb_detach(a);
    printf("d shares a's storage: %s, d.requires_grad = %s\n", nb_shares_storage(a, d) ? "True" : "False",
           nb_requires_grad(d) ? "True" : "False");

    /* A neuron: z = w . x + b, a = sigmoid(z); gradients of a w.r.t. w and b */
    printf("\n-- one neuron: sigmoid(w . x + b)\n");
    nb_tensor *xs = nb_from_data((float[]){0.5f, -1.0f, 2.0f}, NB_SHAPE(3));
    nb_tensor *w = nb_from_data((float[]){0.1f, 0.2f, -0.3f}, NB_SHAPE(3));
    nb_tensor *bias = scalar(0.05f, true);
    nb_set_requires_grad(w, true);
    nb_tensor *act = nb_sigmoid(nb_add(nb_sum(nb_mul(w, xs)), bias));
    SHOW("a =", act);
    nb_backward(act);
    SHOW("w.grad =", nb_grad(w));
    SHOW("b.grad =", nb_grad(bias));

    /* Errors never abort: they return NULL and say what went wrong. */
    printf("\n-- a mistake, reported instead of crashing\n");
    nb_tensor *bad = nb_matmul(nb_zeros(NB_SHAPE(64, 784)), nb_zeros(NB_SHAPE(64, 10)));
    printf("result %s, error: %s\n", bad ? "non-NULL" : "NULL", nb_error_message());
    nb_error_clear();

    nb_scope_end();
    nb_release_memory();
    return 0;
}
