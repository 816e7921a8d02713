/*
 * nabla/kan.h — Kolmogorov-Arnold networks (Liu et al. 2024, "KAN: Kolmogorov-Arnold
 * Networks"), with the behaviour of their reference implementation pykan.
 *
 * A KAN layer in -> out puts a learnable 1-D function on every edge and sums at the nodes:
 *
 *   y[n, o] = sum_i mask[i, o] (scale_base[i, o] b(x[n, i]) + scale_sp[i, o] spline_io(x[n, i]))
 *   spline_io(x) = sum_c coef[i, c, o] B_c(x)
 *
 * with b the base function (silu by default) and B_c the G + k B-splines of order k on the knots
 * of input i: G intervals over a range, extended by k knots each side (grid [in, G + 2k + 1]).
 * Parameters (state_dict names): "coef" [in, G + k, out], "scale_base" [in, out], "scale_sp"
 * [in, out], "affine" [in, 4, out] (the symbolic branch's, below); buffers "grid"
 * [in, G + 2k + 1], "mask" [in, out] (1: the edge's spline and base are on, 0: pruned or
 * symbolic) and "symbolic_mask" [in, out].  Initialisation as pykan's: coef fits (least
 * squares) noise uniform in +-noise_scale / (2G) at the grid points, scale_base =
 * (mu + sigma U(-1, 1)) / sqrt(in), scale_sp = scale_sp / sqrt(in), from the library's
 * generator (nb_manual_seed).
 *
 * The forward is one B-spline op (nb_bspline_basis: Cox-de Boor once per batch, a fused kernel
 * forward and backward) and two GEMMs: bases [n, in (G + k)] times the effective coefficients,
 * silu(x) [n, in] times scale_base * mask.
 *
 * Extrapolation.  Outside an input's grid, [t_0, t_{G+2k}], every B-spline is 0, so an edge
 * carries on with its base branch alone, scale_base b(x): pykan's behaviour.  Between the
 * range's end and the extended knots the spline tapers off smoothly.  nb_kan_update_grid moves
 * the grid to where the data are.
 *
 * A KAN model is an nb_sequential of KAN layers (widths [2, 5, 1]: 2 -> 5 -> 1), so it saves,
 * loads, trains and prints as any module; its layers are "0", "1", ... and its parameters
 * "0.coef", "0.scale_base", ...  Loading needs a model of the same widths, G and k
 * (nb_module_load refuses another shape, naming the tensor).
 *
 * For symbolic regression (pykan's symbolic_fun): every edge's function is reachable as
 * samples (nb_kan_edge_samples: (x, phi(x)) over its input's grid range, what a fit of
 * c f(a x + b) + d reads), and nb_kan_fix_symbolic switches an edge from its spline to such a
 * function (parameter "affine" [in, 4, out], buffer "symbolic_mask" [in, out]).
 */
/* Included by nabla.h (inside its extern "C"); include that one. */
#ifndef NABLA_KAN_H
#define NABLA_KAN_H

typedef struct nb_module nb_module;
typedef struct nb_optim nb_optim;

#define NB_KAN_MAX_ORDER 15 /* the highest spline order k */

/* The B-spline bases of order k (or their deriv-th derivative) of x [n, in] on the knots of
 * each input, grid [in, m] (finite, non-decreasing): [n, in, m - 1 - k].  Half-open spans,
 * B_{i,0}(x) = [t_i <= x < t_{i+1}], so every basis is 0 outside [t_0, t_{m-1}).
 * Differentiable in x to any order; the grid must not require grad.  Errors: NB_ERR_SHAPE
 * (ranks, in differs, fewer than k + 2 knots), NB_ERR_ARG (k outside [0, 15], deriv < 0,
 * a knot not finite or below the one before it, a grid that requires grad). */
NB_API nb_tensor *nb_bspline_basis(nb_tensor *x, nb_tensor *grid, int k, int deriv);

/* A layer's options; a zero field takes pykan's default (in brackets). */
typedef struct {
    int grid;              /* G, the intervals of the grid (5); >= 1 */
    int k;                 /* the spline order (3); in [1, 15] */
    float grid_min, grid_max; /* the range the grid covers ([-1, 1]; both 0: the default) */
    float noise_scale;     /* the initial splines' noise (0.3); negative: none */
    float scale_base_mu;   /* (0) */
    float scale_base_sigma;/* (1); negative: 0 */
    float scale_sp;        /* (1) */
    const char *base_fun;  /* "silu" (NULL), "zero" for none, or an nb_activation_parse name */
} nb_kan_opts;

/* One KAN layer in -> out ("KANLayer").  Errors NB_ERR_ARG: in or out < 1, grid < 1, k outside
 * [1, 15], a range that is empty or not finite, an unknown base_fun.  Free with nb_module_free. */
NB_API nb_module *nb_kan_layer_new(int64_t in, int64_t out, nb_kan_opts opts);
/* A KAN of n >= 2 widths (width[0] inputs, width[n-1] outputs): a Sequential of n - 1 layers.
 * Errors NB_ERR_ARG: n < 2, a width < 1 (named by its place), and the layer's. */
NB_API nb_module *nb_kan_new(int n, const int64_t *width, nb_kan_opts opts);

/* The KAN layers of a model (a KAN layer itself, or a Sequential of them): their count, or -1
 * with NB_ERR_ARG when m is neither.  Layer l is nb_kan_layer(m, l) (NULL when out of range). */
NB_API int nb_kan_num_layers(const nb_module *m);
NB_API nb_module *nb_kan_layer(const nb_module *m, int l);
/* A layer's sizes; -1 for something that is not a KAN layer. */
NB_API int64_t nb_kan_in_features(const nb_module *layer);
NB_API int64_t nb_kan_out_features(const nb_module *layer);
NB_API int nb_kan_grid_size(const nb_module *layer);  /* G */
NB_API int nb_kan_spline_order(const nb_module *layer); /* k */

/* Every edge's value phi_io(x[n, i]) (masked), [n, in, out], differentiable: what the
 * regularisation, the plots and symbolic fitting read.  y = its sum over i. */
NB_API nb_tensor *nb_kan_edge_acts(nb_module *layer, nb_tensor *x);

/* Grid update from samples (pykan's update_grid_from_samples): x [n, width[0]] is run through
 * the model and each layer's grid is moved to the distribution of its inputs: G + 1 points, the
 * mix grid_eps * uniform + (1 - grid_eps) * quantiles of the sorted inputs (uniform: over their
 * range), extended by k knots each side; then coef is refitted by least squares to what the
 * layer computed at those inputs, so the function is kept where the data are.  grid_eps in
 * [0, 1] (pykan: 0.02; 1: a uniform grid over the data's range).  Runs without recording. */
NB_API nb_status nb_kan_update_grid(nb_module *kan, nb_tensor *x, float grid_eps);

/* Grid extension G -> new_grid (pykan's refine): a new model of the same widths and order whose
 * grids are uniform with new_grid intervals over each input's present range, and whose splines
 * are fitted by least squares to the old ones on dense samples of that range (scales and masks
 * copied): the function is kept, up to the finer spline's approximation.  The caller owns it.
 * Errors NB_ERR_ARG: new_grid < 1, kan not a KAN. */
NB_API nb_module *nb_kan_extend(const nb_module *kan, int new_grid);

/* y = kan(x) and *reg = the sparsity regularisation of the paper (sec. 2.5.1), summed over
 * the layers: lamb_l1 sum |phi|_1 + lamb_entropy S, where |phi_io|_1 = the mean over the batch
 * of |phi_io(x)| and S = -sum p log p with p = |phi_io|_1 / sum |phi|_1 (pykan: 1 and 2).  Both
 * differentiable; the caller owns both (scope rules as any op). */
NB_API nb_tensor *nb_kan_forward_reg(nb_module *kan, nb_tensor *x, float lamb_l1,
                                     float lamb_entropy, nb_tensor **reg);

/* Edge scores |phi_io|_1 on the samples x (the mean |phi| of each edge), into
 * scores[l] [in_l * out_l] (row-major [i, o]), arrays the caller allocates with the layers'
 * sizes. */
NB_API nb_status nb_kan_edge_scores(nb_module *kan, nb_tensor *x, float *const *scores);

/* Pruning (pykan's prune): on the samples x, a hidden node is kept when its largest incoming
 * and its largest outgoing edge score both exceed node_threshold (pykan: 1e-2); the result is
 * a new, smaller KAN (the caller owns it) that computes what kan computes with the removed
 * nodes' edges masked.  Then every edge whose score is below edge_threshold (0: none) is masked
 * off in the result.  Inputs and outputs are never removed.  Errors: NB_ERR_ARG (thresholds
 * negative or not finite, kan not a KAN), x's. */
NB_API nb_module *nb_kan_prune(nb_module *kan, nb_tensor *x, float node_threshold,
                               float edge_threshold);

/* n samples (xs[j], phi_io(xs[j])) of edge (i, o) of a layer, xs uniform over input i's grid
 * range [t_k, t_{G+k}]: what a symbolic fit reads.  Errors NB_ERR_ARG (indices, n < 2). */
NB_API nb_status nb_kan_edge_samples(nb_module *layer, int64_t i, int64_t o, int n, float *xs,
                                     float *ys);

/* The symbolic branch (pykan's fix_symbolic): edge (i, o) of a layer computes
 * c f(a x + b) + d instead of its spline and base, f a function made of nabla ops (nb_sin,
 * nb_exp, a composite of the caller's; it must accept x [n, 1] and return the same shape), so
 * the edge stays differentiable in x and in its affine parameters, the layer's parameter
 * "affine" [in, 4, out] (a, b, c, d along dim 1), which training moves on.  Fixing sets the
 * edge's mask to 0 and its "symbolic_mask" buffer to 1; unfixing undoes both (the spline kept
 * its coefficients meanwhile).  name (up to 31 characters kept, "sin") is what
 * nb_kan_symbolic_name returns; NULL for a numeric edge.  Function pointers are not saved: a
 * loaded model has affine and symbolic_mask, and the caller fixes the edges again by name.
 * Scores, pruning, extension and the pictures see the branch.  Errors NB_ERR_ARG: not a layer,
 * indices out of range, f NULL, (a, b, c, d) not finite. */
#define NB_KAN_NAME_MAX 32
typedef nb_tensor *(*nb_kan_fn)(nb_tensor *x);
NB_API nb_status nb_kan_fix_symbolic(nb_module *layer, int64_t i, int64_t o, nb_kan_fn f,
                                     const char *name, float a, float b, float c, float d);
NB_API nb_status nb_kan_unfix_symbolic(nb_module *layer, int64_t i, int64_t o);
NB_API const char *nb_kan_symbolic_name(const nb_module *layer, int64_t i, int64_t o);

/* Training, pykan's fit() over all the data at once: opts.steps calls of
 * nb_optim_step_closure whose closure runs zero_grad, loss = mean (kan(x) - y)^2 + lamb reg
 * (nb_kan_forward_reg with lamb_l1 1 and lamb_entropy) and backward, so any optimiser works:
 * a first-order one steps once per step, L-BFGS (nb_kan_lbfgs_opts) iterates with its line
 * search; before steps 0, every, 2 every, ... below stop_grid_update the grids move to x
 * (nb_kan_update_grid with grid_eps).  x [n, in], y [n, out]; opt holds the model's parameters.
 * *final_loss (may be NULL) gets the last step's loss (for L-BFGS its first evaluation's, as
 * torch's step returns).  Errors: NB_ERR_ARG for options out of range (named) and for a loss that is not finite
 * ("nb_kan_train: the loss is nan at step 12"), the ops' and the optimiser's. */
typedef struct {
    int steps;
    float lamb, lamb_entropy;   /* pykan: 0 (no regularisation), 2 */
    float grid_eps;             /* pykan: 0.02 */
    int update_grid_every;      /* pykan: 5 (grid_update_num 10 over 50 steps); 0: never */
    int stop_grid_update;       /* pykan: 50 */
} nb_kan_train_opts;
NB_API nb_status nb_kan_train(nb_module *kan, nb_optim *opt, nb_tensor *x, nb_tensor *y,
                              const nb_kan_train_opts *opts, float *final_loss);
/* pykan's L-BFGS for fit(): lr 1, history 10, strong-Wolfe line search, max_iter 20,
 * tolerance_grad and tolerance_change 1e-32 (so a step runs its iterations unless the line
 * search stalls).  Pass to nb_lbfgs_new. */
NB_API nb_lbfgs_opts nb_kan_lbfgs_opts(void);

/* Pictures, as pykan's plot(): an SVG of the whole KAN (inputs at the bottom; every edge's
 * function drawn in a box on the edge over its input's grid range, faded by its importance:
 * opacity tanh(3 score / the layer's largest score) with the scores of x, or opaque when x is
 * NULL; masked edges left out), and one edge's function with its range and values on the axes.
 * Written atomically; errors: NB_ERR_IO naming the path, the calls' own. */
NB_API nb_status nb_kan_plot_svg(nb_module *kan, nb_tensor *x, const char *path);
NB_API nb_status nb_kan_plot_edge_svg(nb_module *layer, int64_t i, int64_t o, const char *path);


/* ---------------------------------------------------------------- auto-symbolic
 * pykan's auto_symbolic and symbolic_formula over nabla/symbolic.h.  An edge fixed by library
 * name computes c f(a x + b) + d with f = nb_symbolic_forward of that library function (sgn,
 * arcsin and arctan have no op and are not offered). */
NB_API nb_status nb_kan_fix_symbolic_lib(nb_module *layer, int64_t i, int64_t o, const char *name,
                                         float a, float b, float c, float d);

typedef struct {
    int samples;          /* samples per edge over its input's grid range (101); >= 2 */
    double r2_threshold;  /* an edge whose best fit has R^2 below stays numeric (0: every edge) */
    int fit_grid;         /* nb_symbolic_suggest's grid of (a, b) (41), >= 3 */
    double weight_simple; /* its weight of simplicity (0.8) */
} nb_kan_symbolic_opts;

/* For each live numeric edge of every layer (mask 1), nb_symbolic_suggest on its samples
 * (nb_kan_edge_samples) over the library functions that have an op, and the best one fixed
 * (nb_kan_fix_symbolic_lib with its fitted a, b, c, d).  Train the affine parameters on
 * afterwards (nb_kan_train).  opts may be NULL.  Returns the number of edges fixed, -1 on error
 * (the edges fixed so far stay fixed). */
typedef struct nb_expr nb_expr; /* nabla/symbolic.h */
NB_API int nb_kan_auto_symbolic(nb_module *kan, const nb_kan_symbolic_opts *opts);

/* The network as one expression of x1 .. x_in: each layer's symbolic edges composed
 * (nb_expr_compose_layer), masked edges left out; then, when snap_tol > 0, numbers snapped
 * (nb_expr_snap).  NULL with NB_ERR_ARG naming a live edge that is not symbolic.  Free with
 * nb_expr_free. */
NB_API nb_expr *nb_kan_formula(const nb_module *kan, double snap_tol);

/* The symbolic choices as text for a model file's metadata, "L,I,O,name;..." (malloc'd; "" for
 * none; NULL on allocation failure), and back: each edge of the text re-fixed by name with the
 * affine parameters the model holds (load the weights first).  Errors NB_ERR_ARG naming the
 * entry (malformed, an edge out of range, an unknown name). */
NB_API char *nb_kan_symbolic_meta(const nb_module *kan);
NB_API nb_status nb_kan_restore_symbolic(nb_module *kan, const char *meta);

#endif
