/*
 * kan.h — what the files of src/kan share: a KAN layer's state and the least-squares fit of its
 * splines (nabla/kan.h describes the layer).  Host arrays here are row-major float32, in the
 * shapes the comments give; n is a number of samples.
 */
#ifndef NB_KAN_INTERNAL_H
#define NB_KAN_INTERNAL_H

#include "nabla.h"
#include "../nn/module.h"

typedef struct {
    int64_t in, out;
    int G, k;                  /* intervals and order: grid [in, G + 2k + 1], coef [in, G + k, out] */
    float grid_min, grid_max;  /* the range the layer was made for (the grid moves on updates) */
    bool has_base;
    nb_activation base;        /* the base function b, when has_base */
    nb_tensor *coef, *scale_base, *scale_sp; /* parameters */
    nb_tensor *grid, *mask;                  /* buffers */
    /* the symbolic branch (pykan's symbolic_fun): edge e = i out + o, when fns[e] is set,
     * adds c f(a x_i + b) + d with (a, b, c, d) = affine[i, :, o] */
    nb_tensor *affine;                       /* parameter [in, 4, out] */
    nb_tensor *symbolic_mask;                /* buffer [in, out]: 1 where fns[e] is set */
    nb_kan_fn *fns;                          /* [in out], host; NULL: numeric */
    char (*names)[NB_KAN_NAME_MAX];          /* [in out], host: fns' names */
    int64_t n_symbolic;
} nb__kan_layer;

extern const nb_module_class nb__kan_layer_class;

/* m's state when m is a KAN layer; else NULL with NB_ERR_ARG naming `what`. */
nb__kan_layer *nb__kan_state(const nb_module *m, const char *what);
/* A layer of the given sizes, grid intervals G and order k, copying s's range and base
 * function, with zero parameters and a grid to be filled by the caller (grid.c, prune.c). */
nb_module *nb__kan_layer_like(const nb__kan_layer *s, int64_t in, int64_t out, int G);
/* The knots of one input: G + 1 points p[0..G] extended by k on each side with the step of
 * their ends, (p[G] - p[0]) / G, as pykan's extend_grid: t [G + 2k + 1]. */
void nb__kan_extend_knots(float *t, const float *p, int G, int k);
/* coef of layer s refitted by least squares to samples: xs [n, in] the inputs and ys [n, in,
 * out] what each edge's spline (coef . B, before scale_sp and mask) should give there, on the
 * layer's present grid.  A ridge of 1e-8 (pykan's curve2coef) keeps bases that no sample
 * reaches at 0.  Runs without recording. */
nb_status nb__kan_fit_coef(nb__kan_layer *s, int64_t n, const float *xs, const float *ys);
/* Copies edge (i, o) of s's symbolic branch (function, name, affine and symbolic mask) to edge
 * (ri, ro) of r. */
nb_status nb__kan_copy_symbolic(const nb__kan_layer *s, int64_t i, int64_t o, nb__kan_layer *r,
                                int64_t ri, int64_t ro);
/* The symbolic branch's contribution of every edge, [n, in, out] (edges without one 0), or,
 * when per_edge is false, its sum over the inputs, [n, out]; NULL with no symbolic edge. */
nb_tensor *nb__kan_symbolic(const nb__kan_layer *s, nb_tensor *x, bool per_edge);
/* The spline part of every edge, coef . B(x) for x [n, in] (host): ys [n, in, out] (host). */
nb_status nb__kan_eval_splines(const nb__kan_layer *s, int64_t n, const float *xs, float *ys);

#endif
