/*
 * nabla/autograd.h — autograd beyond nb_backward, as torch.autograd has it: gradients returned
 * instead of accumulated (torch.autograd.grad), gradients of gradients (create_graph), tensor
 * hooks and retain_grad, anomaly detection, and the functional helpers (vjp, jvp, hvp,
 * Jacobian, Hessian, Hutchinson's Hessian diagonal).
 */
#ifndef NABLA_AUTOGRAD_H
#define NABLA_AUTOGRAD_H

#include "../nabla.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- gradients as results */

typedef struct nb_grad_options {
    /* Record the backward pass itself, so the gradients require grad (when what they depend on
     * does) and can be differentiated again, to any order.  Their graph lives where tensors
     * made now live: the innermost open scope, or the caller's (nb_tensor_free) with none. */
    bool create_graph;
    /* Keep the graph for another pass.  Without it (and without create_graph, which keeps it as
     * torch's default does) a second pass through the same nodes is NB_ERR_GRAPH, as torch's
     * "Trying to backward through the graph a second time". */
    bool retain_graph;
    /* An input the outputs do not depend on gets a NULL gradient instead of NB_ERR_GRAPH ... */
    bool allow_unused;
    /* ... or, with this, zeros of its shape (torch's materialize_grads; implies allow_unused). */
    bool materialize_grads;
} nb_grad_options;

/* torch.autograd.grad: grads[j] = sum over i of grad_outputs[i]^T d outputs[i] / d inputs[j].
 * grad_outputs may be NULL (or hold NULLs) for one-element outputs, which then take 1.  .grad
 * is not touched.  Each grads[j], of inputs[j]'s shape, is owned like any result (the open
 * scope's, or a reference the caller drops with nb_tensor_free — two may be one tensor, with a
 * reference each, as the gradients of a + b are).  Inputs may be leaves or intermediate results; every input
 * must require grad.  options NULL: all false.  On failure every grads[j] is NULL. */
NB_API nb_status nb_autograd_grad(int n_outputs, nb_tensor *const *outputs,
                                  nb_tensor *const *grad_outputs, int n_inputs,
                                  nb_tensor *const *inputs, nb_tensor **grads,
                                  const nb_grad_options *options);

/* ---------------------------------------------------------------- hooks and retain_grad */

/* A tensor hook sees the gradient computed for its tensor in a backward pass (for a leaf: the
 * sum of the pass's contributions, before it is accumulated into .grad or returned), and returns
 * it, or a replacement of its shape made with ops (which the pass then owns), or NULL with an
 * error set to stop the pass.  Hooks run in the order they were registered. */
typedef nb_tensor *(*nb_tensor_hook_fn)(nb_tensor *grad, void *ctx);
/* torch's Tensor.register_hook: returns a handle (> 0) for nb_tensor_remove_hook, 0 on error
 * (t dead or not requiring grad).  The hook lives as long as t. */
NB_API int nb_tensor_register_hook(nb_tensor *t, nb_tensor_hook_fn fn, void *ctx);
NB_API nb_status nb_tensor_remove_hook(nb_tensor *t, int handle);
/* torch's Tensor.retain_grad: a non-leaf keeps its gradient in .grad (nb_grad), accumulated
 * across passes as a leaf's is.  A no-op on a leaf that requires grad. */
NB_API nb_status nb_retain_grad(nb_tensor *t);
NB_API bool nb_retains_grad(const nb_tensor *t);

/* ---------------------------------------------------------------- anomaly detection
 * torch.autograd.set_detect_anomaly: while on (per thread), every op's result and every
 * gradient a backward step makes is checked; the first NaN or infinity fails the op or the pass
 * with NB_ERR_VALUE and a message naming the op, where it ran ("layer 4 (Linear)", when it ran
 * inside a module) and the shapes: "backward: 2.weight's gradient via AddmmBackward0 in layer 2
 * (Linear) is not finite (nan at [3,1]); inputs [64,784], [10,784], [10]".  Slow: for debugging. */
NB_API bool nb_set_detect_anomaly(bool on); /* returns the previous setting */
NB_API bool nb_is_anomaly_enabled(void);

/* ---------------------------------------------------------------- functional helpers
 * torch.autograd.functional for a function of one tensor.  f(x, ctx) builds its result with
 * ops; a helper calls it (once) with a stand-in for x — a leaf sharing x's data that requires
 * grad — inside a scope of its own, with recording on even under no-grad, so whatever f makes is
 * released when the helper returns.  f's result must be a live float32 tensor; a NULL result
 * fails the helper with f's error after the helper's name ("jacobian: f: matmul: ...").
 * Results are new tensors, owned like any result (the open scope, or the caller), detached (no
 * graph); x is not changed, and need not require grad; no .grad is touched.  Where f(x) does not
 * depend on x the derivatives are zeros (torch's strict=False).  jvp, hessian and hvp
 * differentiate a gradient, so every op f uses needs its second derivative (create_graph).
 * Errors: NB_ERR_ARG for a NULL f, NB_ERR_NULL for a NULL or dead x or v, NB_ERR_SHAPE for a v
 * of the wrong shape, a hessian or hvp of an f(x) of more than one element, or a Jacobian of
 * more than NB_MAX_DIMS dims; f's own errors as they are. */
typedef nb_tensor *(*nb_function)(nb_tensor *x, void *ctx);
/* v^T J, x's shape: v has f(x)'s shape, or is NULL for a one-element f(x) (the gradient). */
NB_API nb_tensor *nb_vjp(nb_function f, void *ctx, nb_tensor *x, nb_tensor *v);
/* J v, f(x)'s shape, v of x's shape: d/du [u^T J v] by double backward, as torch's jvp. */
NB_API nb_tensor *nb_jvp(nb_function f, void *ctx, nb_tensor *x, nb_tensor *v);
/* The Jacobian, shape f(x).shape + x.shape: one backward pass per element of f(x). */
NB_API nb_tensor *nb_jacobian(nb_function f, void *ctx, nb_tensor *x);
/* For a one-element f: the Hessian, shape x.shape + x.shape (one pass per element of x), and
 * the product H v, x's shape (one pass; computed as v^T H, the same for a symmetric H). */
NB_API nb_tensor *nb_hessian(nb_function f, void *ctx, nb_tensor *x);
NB_API nb_tensor *nb_hvp(nb_function f, void *ctx, nb_tensor *x, nb_tensor *v);

/* On a graph already built: loss is one element and requires grad, params require grad (leaves
 * or results).  hv[j] = (H v)_j, the Hessian of loss with respect to all params (as one vector)
 * times v (v[j] of params[j]'s shape), one new detached tensor per param, owned like any result.
 * The graph is kept for the caller's own backward; .grad is not touched.  On failure every
 * hv[j] is NULL: NB_ERR_SHAPE for a loss of more than one element or a v[j] of another shape,
 * NB_ERR_GRAPH for a loss or a param that does not require grad, NB_ERR_ARG for n < 1 or NULL
 * arrays. */
NB_API nb_status nb_hessian_vector_product(nb_tensor *loss, int n, nb_tensor *const *params,
                                           nb_tensor *const *v, nb_tensor **hv);
/* Hutchinson's estimate of the Hessian's diagonal: the mean over `samples` (>= 1, else
 * NB_ERR_ARG) Rademacher vectors z of z * (H z), one tensor per param, as above.  Element i has
 * mean H_ii and variance sum_{j != i} H_ij^2 / samples, so it is exact for a diagonal H.  The
 * vectors are drawn from the thread's generator (nb_manual_seed): the same seed gives the same
 * estimate, and the generator advances. */
NB_API nb_status nb_hessian_diagonal_estimate(nb_tensor *loss, int n, nb_tensor *const *params,
                                              int samples, nb_tensor **diag);

#ifdef __cplusplus
}
#endif

#endif
