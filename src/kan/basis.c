/*
 * basis.c — the op under every KAN layer: B-spline bases (or one of their derivatives) of x
 * [n, in] on one knot vector per input, grid [in, m], order k: b [n, in, m - 1 - k].  The
 * recursion and its conventions (half-open spans, 0 outside the grid) are in
 * src/backend/cpu/bspline.c.  Node arguments: dim holds k, start the derivative order d.
 *
 * Backward: only x has a gradient (the knots are moved by grid updates, never by a gradient):
 *
 *   dx[n, i] = sum_c g[n, i, c] B^(d+1)_c(x[n, i])
 *
 * first order by the fused kernel bspline_backward; with create_graph by ops, the (d + 1)-th
 * derivative being this same row again, so every order closes (derivatives above k are 0).
 */
#include "../ops/op.h"

#include <math.h>

/* The knots must be finite and non-decreasing along each row (read on the host). */
static nb_status check_grid(const nb_tensor *grid) {
    float *t = nb__host_copy(grid);
    if (!t) return nb_error_code();
    int64_t in = grid->shape[0], m = grid->shape[1];
    nb_status st = NB_OK;
    for (int64_t r = 0; r < in && st == NB_OK; r++)
        for (int64_t c = 0; c < m && st == NB_OK; c++)
            if (!isfinite(t[r * m + c]) || (c > 0 && t[r * m + c] < t[r * m + c - 1]))
                st = nb__fail_status(NB_ERR_ARG, "bspline_basis: grid[%lld, %lld] = %g is %s",
                                     (long long)r, (long long)c, t[r * m + c],
                                     isfinite(t[r * m + c]) ? "below the knot before it"
                                                            : "not finite");
    nb__host_free(t, grid);
    return st;
}

nb_tensor *nb__fwd_bspline(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *a) {
    (void)op, (void)n;
    nb_tensor *x = in[0], *grid = in[1];
    int k = a->dim;
    if (x->ndim != 2 || grid->ndim != 2 || grid->shape[0] != x->shape[1])
        return nb__fail(NB_ERR_SHAPE, "bspline_basis: x %s must be [n, in] and grid %s [in, m]",
                        NB_SHP(x), nb__shape_str(grid->ndim, grid->shape));
    if (grid->shape[1] < k + 2)
        return nb__fail(NB_ERR_SHAPE, "bspline_basis: grid %s has fewer than k + 2 = %d knots "
                        "a row", NB_SHP(grid), k + 2);
    if (check_grid(grid) != NB_OK) return NULL;
    int64_t rows = x->shape[0], cols = x->shape[1], m = grid->shape[1];
    nb_tensor *xc = nb__contig(x), *gc = xc ? nb__contig(grid) : NULL;
    nb_tensor *b = gc ? nb__new(NB_F32, 3, (int64_t[]){rows, cols, m - 1 - k}) : NULL;
    if (b) nb__be(x)->bspline(nb__f32(b), nb__f32(xc), nb__f32(gc), rows, cols, m, k, (int)a->start);
    if (xc != x) nb_tensor_free(xc);
    if (gc && gc != grid) nb_tensor_free(gc);
    return b;
}

/* The gradient of x with ops: sum over the bases of g times the next derivative. */
static nb_tensor *dx_with_ops(const nb_node *node, nb_tensor *g) {
    nb__temps tmp = {0};
    nb_tensor *next = nb__tmp(&tmp, nb_bspline_basis(node->in[0], node->in[1], node->args.dim,
                                                     (int)node->args.start + 1));
    nb_tensor *dx = nb_sum_dims(nb__tmp(&tmp, nb_mul(g, next)), 1, (int[]){2}, false);
    return nb__temps_end(&tmp, nb__tmp(&tmp, dx));
}

nb_status nb__bwd_bspline(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    if (!nb__needs_grad(node, 0)) return NB_OK;
    if (nb_is_grad_enabled()) return (din[0] = dx_with_ops(node, g)) ? NB_OK : nb_error_code();
    nb_tensor *x = node->in[0], *grid = node->in[1];
    nb_tensor *xc = nb__contig(x), *tc = xc ? nb__contig(grid) : NULL;
    nb_tensor *gc = tc ? nb__contig(g) : NULL, *dx = gc ? nb__new_like(xc) : NULL;
    if (dx)
        nb__be(x)->bspline_backward(nb__f32(dx), nb__f32(xc), nb__f32(tc), nb__f32(gc),
                                    x->shape[0], x->shape[1], grid->shape[1], node->args.dim,
                                    (int)node->args.start);
    if (xc && xc != x) nb_tensor_free(xc);
    if (tc && tc != grid) nb_tensor_free(tc);
    if (gc && gc != g) nb_tensor_free(gc);
    din[0] = dx;
    return dx ? NB_OK : nb_error_code();
}

nb_tensor *nb_bspline_basis(nb_tensor *x, nb_tensor *grid, int k, int deriv) {
    if (!nb__alive(x)) return nb__fail_input("bspline_basis", x);
    if (!nb__alive(grid)) return nb__fail_input("bspline_basis", grid);
    if (k < 0 || k > NB_BSPLINE_MAX_K)
        return nb__fail(NB_ERR_ARG, "bspline_basis: order k = %d is outside [0, %d]", k,
                        NB_BSPLINE_MAX_K);
    if (deriv < 0)
        return nb__fail(NB_ERR_ARG, "bspline_basis: derivative order %d is negative", deriv);
    if (nb_requires_grad(grid))
        return nb__fail(NB_ERR_ARG, "bspline_basis: is not differentiable with respect to the "
                        "grid (move knots with nb_kan_update_grid)");
    nb_op_args a = {.dim = k, .start = deriv};
    return nb__apply(NB_OP_BSPLINE, 2, (nb_tensor *[]){x, grid}, &a);
}
