/*
 * nabla/symbolic.h — symbolic regression for Kolmogorov-Arnold networks (Liu et al. 2024, as
 * pykan does it): a library of named 1-D functions, the fit y ~ c f(a x + b) + d of one function
 * to samples, the choice of a function by R^2 and simplicity, and expressions that compose a
 * network's edges into one formula, simplified, with numbers snapped to integers, simple
 * fractions, pi and e, printed as text or LaTeX.  Included by nabla.h (inside its extern "C"
 * block); include nabla.h, not this file.
 *
 * Everything works on plain arrays (x[k], y[k] for k < n, float as nabla's tensors hold them),
 * so any model's activations can be fitted; the arithmetic is double.  Failing calls return NULL,
 * NAN, -1 or a status and leave nb_error_message() ("symbolic_fit: n must be >= 2, got 1").
 */
#ifndef NABLA_SYMBOLIC_H
#define NABLA_SYMBOLIC_H

/* ---------------------------------------------------------------- the function library
 * Index i in [0, nb_symbolic_count()) names one function.  The library and complexities are
 * pykan's: x 1, x^2 2, x^3 3, x^4 3, x^5 3, 1/x 2, 1/x^2 2, sqrt 2, exp 2, log 2, abs 3, sin 2,
 * cos 2, tan 3, tanh 3, sgn 3, arcsin 4, arctan 4, gaussian (exp(-x^2)) 3, cosh 5, sigmoid 4,
 * 0 0.  Outside its domain a function is NaN (sqrt, log and arcsin of what they do not take;
 * 1/x at 0 is infinite): fits skip such parameters. */
NB_API int nb_symbolic_count(void);
NB_API const char *nb_symbolic_name(int fn);    /* NULL (NB_ERR_ARG) out of range */
NB_API int nb_symbolic_find(const char *name);  /* the index; -1 (NB_ERR_ARG) for no such name */
NB_API int nb_symbolic_complexity(int fn);      /* -1 (NB_ERR_ARG) out of range */
NB_API double nb_symbolic_apply(int fn, double x); /* f(x); NAN out of range */

/* f applied to every element of x as nabla ops (in the open scope), differentiable, so an
 * edge fixed to f can train a, b, c, d in c f(a x + b) + d with any optimiser.  NULL with
 * NB_ERR_ARG for sgn, arcsin and arctan, which have no op yet, or an fn out of range; the
 * identity returns x itself. */
NB_API nb_tensor *nb_symbolic_forward(int fn, nb_tensor *x);

/* One fitted function: y ~ c f(a x + b) + d. */
typedef struct {
    int fn;
    double a, b, c, d;
    double r2;         /* R^2 of the fit, 1 - SS_res / SS_tot (0 when y or f is constant) */
    int complexity;    /* the library's */
    double score;      /* nb_symbolic_suggest's loss (lower is better); 0 from nb_symbolic_fit */
} nb_symfit;

typedef struct {
    double a_min, a_max; /* the first grid of a; default -10, 10 (both zero: the default) */
    double b_min, b_max; /* of b; default -10, 10 */
    int grid;            /* points per axis, >= 3; default 101 */
    int iterations;      /* zooms of the grid; default 3 */
    double weight_simple; /* suggest: the weight w of complexity against fit; default 0.8
                             (NB_ZERO for 0), in [0, 1] */
} nb_symbolic_opts;

/* Fits c f(a x + b) + d to (x[k], y[k]), k < n (n >= 2, all finite).  As pykan's fit_params: on
 * a grid of (a, b) the squared correlation of f(a x + b) with y, cov^2 / (var_f var_y + 1e-4)
 * (the 1e-4 keeps nearly constant f from winning), is maximised; the grid then shrinks to the
 * best point's neighbours (or its edge cell, where the best is on the edge) for `iterations`
 * rounds; c and d are then least squares.  A parameter pair where f is not finite at some
 * sample is skipped.  x (fn "x") and 0 need no grid: a = 1, b = 0.  opts may be NULL. */
NB_API nb_status nb_symbolic_fit(int fn, int64_t n, const float *x, const float *y,
                                 const nb_symbolic_opts *opts, nb_symfit *out);

/* pykan's suggest_symbolic: fits each of fns[0..n_fns) (fns NULL: the whole library) and ranks
 * them by score = w complexity + (1 - w) log2(1 + 1e-5 - r2), lowest first, so a simpler
 * function wins unless a more complex one fits clearly better.  Writes the best min(k, count)
 * into out (sorted; ties keep library order) and returns how many, -1 on error.  Cost: grid^2
 * iterations n evaluations per function, rows of the grid on the thread pool (the whole library
 * at n = 1000 and the defaults took 14 s on a busy 2-core machine; grid 41 is 6x less). */
NB_API int nb_symbolic_suggest(int64_t n, const float *x, const float *y,
                               const nb_symbolic_opts *opts, int n_fns, const int *fns, int k,
                               nb_symfit *out);

/* ---------------------------------------------------------------- expressions
 * A tree of sums, products, library functions, variables x1, x2, ... and constants.  A function
 * that takes expressions takes ownership of them, also when it fails (it frees them), so calls
 * nest: nb_expr_add(nb_expr_var(0), nb_expr_const(1)).  Any NULL argument makes the result NULL
 * (keeping the error), so a nest is checked once.  Free with nb_expr_free. */
typedef struct nb_expr nb_expr;

NB_API nb_expr *nb_expr_var(int index);       /* x_{index+1}: index 0 prints "x1" */
NB_API nb_expr *nb_expr_const(double value);  /* finite */
NB_API nb_expr *nb_expr_add(nb_expr *a, nb_expr *b);
NB_API nb_expr *nb_expr_mul(nb_expr *a, nb_expr *b);
NB_API nb_expr *nb_expr_apply(int fn, nb_expr *arg); /* f(arg) */
/* c f(a arg + b) + d, fit's function and numbers. */
NB_API nb_expr *nb_expr_fitted(const nb_symfit *fit, nb_expr *arg);
NB_API nb_expr *nb_expr_copy(const nb_expr *e);
NB_API void nb_expr_free(nb_expr *e); /* NULL: nothing */

/* One KAN layer composed: out[j] = sum over i of edges[i n_out + j] applied to in[i] (not
 * taken: copied), skipping edges whose active[i n_out + j] is false (active may be NULL) and
 * edges of the function 0, which add their d.  Each out[j] is new (the caller frees it); on
 * error none is left. */
NB_API nb_status nb_expr_compose_layer(int n_in, nb_expr *const *in, int n_out,
                                       const nb_symfit *edges, const bool *active, nb_expr **out);

/* Trivial algebra, in place; returns e (NULL on allocation failure, e freed): constants folded
 * (into a sum's last term, a product's first factor; a function of a constant evaluated),
 * x + 0, x * 1, x * 0, identity and 0 functions removed, nested sums and products flattened, a
 * constant factor distributed over a sum, and a power of a scaled term (c x)^k, 1/(c x)^k
 * written c^k x^k. */
NB_API nb_expr *nb_expr_simplify(nb_expr *e);
/* Replaces each constant v by the simplest of: an integer, q pi or q e (q an integer or 1/2,
 * 1/3, 1/4, 1/6 of one), a fraction p/q with q <= 12, when within tol (|v - s| <= tol max(1,
 * |s|)); in that order of preference.  Then simplifies.  Returns e, as nb_expr_simplify. */
NB_API nb_expr *nb_expr_snap(nb_expr *e, double tol);

/* The value at x[0], x[1], ... (x must hold every variable the expression uses). */
NB_API double nb_expr_eval(const nb_expr *e, const double *x);
/* "exp(sin(pi*x1) + x2^2)" and "e^{\sin{\left(\pi x_{1} \right)} + x_{2}^{2}}": numbers with
 * 6 significant digits, snapped ones by name.  The caller frees the string with free(); NULL
 * on allocation failure. */
NB_API char *nb_expr_text(const nb_expr *e);
NB_API char *nb_expr_latex(const nb_expr *e);

#endif /* NABLA_SYMBOLIC_H */
