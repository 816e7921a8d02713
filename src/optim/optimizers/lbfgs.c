/*
 * lbfgs.c — torch.optim.LBFGS (torch 1.13's lbfgs.py, itself after minFunc): limited-memory BFGS
 * on all parameters as one flat vector, with torch's optional strong-Wolfe line search.
 *
 * One step (nb_optim_step_closure) evaluates the closure, then iterates:
 *   - direction: on the first iteration ever d = -g; later, with y = g - g_prev and s = t d_prev,
 *     the pair (s, y) joins the history when y.s > 1e-10 (the oldest leaves past history_size)
 *     and H_diag = y.s / y.y; then the two-loop recursion (Nocedal & Wright, algorithm 7.4)
 *         q = -g;  for i newest..oldest: al_i = ro_i s_i.q,  q -= al_i y_i      (ro_i = 1 / y_i.s_i)
 *         d = H_diag q;  for i oldest..newest: be_i = ro_i y_i.d,  d += (al_i - be_i) s_i;
 *   - step length t = lr (the very first iteration: min(1, 1 / |g|_1) lr); if g.d > -tolerance_change
 *     the step ends (no descent left);
 *   - without a line search p += t d and the closure runs again (not after the last iteration);
 *     with strong_wolfe, wolfe_search picks t and brings back f and g there, then p += t d;
 *   - the step ends after max_iter iterations, max_eval evaluations, when max|g| <= tolerance_grad,
 *     max|t d| <= tolerance_change or |f - f_prev| < tolerance_change.
 * The history, d, t, g_prev, f_prev and the counters persist between steps, as torch's state.
 *
 * Vectors are host float arrays owned by the optimiser; parameters and gradients are reached only
 * through the backend's copies (gather, scatter).  Dot products sum in double; scalars (t, ro,
 * H_diag, the line search's values) are doubles where torch holds 0-d float32 tensors, so a
 * trajectory agrees with torch's to float32 rounding, not bit for bit.
 */
#include "../optim_internal.h"

#include <string.h>

enum { MAX_ITER, MAX_EVAL, TOLERANCE_GRAD, TOLERANCE_CHANGE, HISTORY_SIZE, STRONG_WOLFE, N_HP };
_Static_assert(N_HP <= NB__GROUP_HP, "lbfgs: too many hyper-parameters for nb__group");

#define POOL 3 /* line-search gradients alive at once: two bracket ends and the new one */

typedef struct {
    int64_t n;            /* elements of all parameters together */
    int64_t n_iter;       /* torch's state['n_iter']: iterations over all steps */
    int64_t func_evals;   /* torch's state['func_evals'] */
    int hist_cap;         /* history_size when made: the ring's length */
    int num_old, oldest;  /* pairs held, and the ring index of the oldest */
    float **dirs, **stps; /* the ring of y (old_dirs) and s (old_stps); NULL until first filled */
    double *ro, *al;      /* 1 / y.s per pair; the two-loop's al */
    double h_diag, t, prev_loss;
    float *d, *g, *g_prev, *x, *y_new, *s_new; /* x: the parameters at the search's start */
    float *pool[POOL];
    nb_tensor **mirror; /* the state tensors, NULL until first asked for */
    char (*mirror_names)[NB__NAME_MAX];
    bool mirror_ahead;  /* a load made the tensors the state: the next step reads them */
} lbfgs_state;

/* ---------------------------------------------------------------- flat vectors */

static float *vec_new(int64_t n) { return nb__alloc(sizeof(float) * (size_t)(n ? n : 1)); }
static void vec_free(float *v, int64_t n) {
    if (v) nb__dealloc(v, sizeof(float) * (size_t)(n ? n : 1));
}

static double dot(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double abs_max(const float *a, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i]));
    return m;
}

static double abs_sum(const float *a, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += fabsf(a[i]);
    return s;
}

/* y += alpha x (torch's y.add_(x, alpha=alpha) in float32). */
static void axpy(float *y, double alpha, const float *x, int64_t n) {
    float a = (float)alpha;
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* ---------------------------------------------------------------- parameters <-> flat */

/* The parameters' values (to_params false: into x) or x into the parameters. */
static void params_copy(nb_optim *o, float *x, bool to_params) {
    int64_t at = 0;
    for (int i = 0; i < o->n_params; i++) {
        nb_tensor *p = o->params[i].param;
        int64_t m = nb__numel(p->ndim, p->shape);
        const nb_backend *be = nb__backend(p->device);
        if (to_params) be->copy_h2d(nb__f32(p), x + at, sizeof(float) * (size_t)m);
        else be->copy_d2h(x + at, nb__f32(p), sizeof(float) * (size_t)m);
        at += m;
    }
}

/* torch's _gather_flat_grad: every gradient in order, zeros for a parameter without one. */
static void grads_gather(nb_optim *o, float *g) {
    int64_t at = 0;
    for (int i = 0; i < o->n_params; i++) {
        nb_tensor *p = o->params[i].param;
        int64_t m = nb__numel(p->ndim, p->shape);
        if (p->grad)
            nb__backend(p->device)->copy_d2h(g + at, nb__f32(p->grad), sizeof(float) * (size_t)m);
        else memset(g + at, 0, sizeof(float) * (size_t)m);
        at += m;
    }
}

/* The parameters become x + t d (torch's _add_grad from x); x is left as it was. */
static void params_set_along(nb_optim *o, lbfgs_state *S, const float *x, double t, float *out) {
    memcpy(out, x, sizeof(float) * (size_t)S->n);
    axpy(out, t, S->d, S->n);
    params_copy(o, out, true);
}

/* The loss at the parameters' current values and its gradient into g; NAN with the error set. */
static double evaluate(nb_optim *o, lbfgs_state *S, nb_closure_fn closure, void *ctx, float *g) {
    double f = nb__optim_call_closure(closure, ctx, o->kind->name);
    if (isnan(f)) return NAN;
    grads_gather(o, g);
    S->func_evals++;
    return f;
}

/* ---------------------------------------------------------------- strong-Wolfe line search */

/* torch's _cubic_interpolate: the minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2)
 * (Nocedal & Wright, eq. 3.59), clamped to [lo, hi]; the midpoint when the cubic has none. */
static double cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2,
                                double lo, double hi) {
    double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
    double d2_square = d1 * d1 - g1 * g2;
    if (!(d2_square >= 0)) return (lo + hi) / 2;
    double d2 = sqrt(d2_square), min_pos;
    if (x1 <= x2) min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2));
    else min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
    return fmin(fmax(min_pos, lo), hi);
}

static double cubic_between(double x1, double f1, double g1, double x2, double f2, double g2) {
    return cubic_interpolate(x1, f1, g1, x2, f2, g2, fmin(x1, x2), fmax(x1, x2));
}

typedef struct {
    double t, f, gtd; /* step, loss and directional derivative g.d there */
    float *g;         /* gradient there: S->g or a pool vector */
} ls_point;

typedef struct {
    nb_optim *o;
    lbfgs_state *S;
    nb_closure_fn closure;
    void *ctx;
    float *scratch; /* the parameters at x + t d, on their way to the backend */
} ls_eval;

/* A pool vector none of a, b points to. */
static float *pool_spare(lbfgs_state *S, const float *a, const float *b) {
    for (int i = 0; i < POOL; i++)
        if (S->pool[i] != a && S->pool[i] != b) return S->pool[i];
    return NULL; /* not reached: POOL > 2 */
}

/* torch's _directional_evaluate: f and g at x + t d, the parameters put back to x after. */
static bool ls_point_at(const ls_eval *E, double t, float *g, ls_point *out) {
    lbfgs_state *S = E->S;
    params_set_along(E->o, S, S->x, t, E->scratch);
    out->f = evaluate(E->o, S, E->closure, E->ctx, g);
    params_copy(E->o, S->x, true);
    out->t = t;
    out->g = g;
    out->gtd = dot(g, S->d, S->n);
    return !isnan(out->f);
}

/* torch's _strong_wolfe from (0, f, S->g, gtd) along S->d, first trying t (c1 = 1e-4, c2 = 0.9,
 * tolerance_change 1e-9 and at most 25 evaluations, torch's defaults, which LBFGS does not pass
 * on).  A bracketing phase grows t by cubic extrapolation until the loss rises or the slope
 * turns; a zoom phase shrinks the bracket [lo, hi] by cubic interpolation (kept 10% inside it)
 * until strong Wolfe holds: f <= f0 + c1 t gtd and |g.d| <= -c2 gtd.  *best gets the bracket's
 * low end (its gradient copied into S->g); *evals the closure calls.  False if the closure
 * failed. */
static bool wolfe_search(const ls_eval *E, double t, double f, double gtd, ls_point *best,
                         int *evals) {
    const double c1 = 1e-4, c2 = 0.9, tolerance_change = 1e-9;
    const int max_ls = 25;
    lbfgs_state *S = E->S;
    double d_norm = abs_max(S->d, S->n);
    ls_point prev = {0, f, gtd, S->g}, cur, br[2];
    if (!ls_point_at(E, t, pool_spare(S, NULL, NULL), &cur)) return false;
    *evals = 1;
    int ls_iter = 0, n_br = 0;
    bool done = false;
    while (ls_iter < max_ls) {
        if (cur.f > f + c1 * cur.t * gtd || (ls_iter > 1 && cur.f >= prev.f)) {
            br[0] = prev, br[1] = cur, n_br = 2;
            break;
        }
        if (fabs(cur.gtd) <= -c2 * gtd) {
            br[0] = cur, n_br = 1, done = true;
            break;
        }
        if (cur.gtd >= 0) {
            br[0] = prev, br[1] = cur, n_br = 2;
            break;
        }
        double min_step = cur.t + 0.01 * (cur.t - prev.t), max_step = cur.t * 10;
        double t_next = cubic_interpolate(prev.t, prev.f, prev.gtd, cur.t, cur.f, cur.gtd,
                                          min_step, max_step);
        prev = cur;
        if (!ls_point_at(E, t_next, pool_spare(S, prev.g, NULL), &cur)) return false;
        ++*evals;
        ls_iter++;
    }
    if (ls_iter == max_ls) /* out of evaluations: torch's bracket [0, t] (no zoom follows) */
        br[0] = (ls_point){0, f, gtd, S->g}, br[1] = cur, n_br = 2;

    int lo = br[0].f <= br[n_br - 1].f ? 0 : 1, hi = 1 - lo;
    bool insuf_progress = false;
    while (!done && ls_iter < max_ls) {
        if (fabs(br[1].t - br[0].t) * d_norm < tolerance_change) break;
        double t_new = cubic_between(br[0].t, br[0].f, br[0].gtd, br[1].t, br[1].f, br[1].gtd);
        /* Keep t away from the bracket's ends: within 10% of its width counts as too close
         * once (insuf_progress), and the next time, or outside it, t moves 10% in. */
        double b_max = fmax(br[0].t, br[1].t), b_min = fmin(br[0].t, br[1].t);
        double eps = 0.1 * (b_max - b_min);
        if (fmin(b_max - t_new, t_new - b_min) < eps) {
            if (insuf_progress || t_new >= b_max || t_new <= b_min) {
                t_new = fabs(t_new - b_max) < fabs(t_new - b_min) ? b_max - eps : b_min + eps;
                insuf_progress = false;
            } else {
                insuf_progress = true;
            }
        } else {
            insuf_progress = false;
        }
        if (!ls_point_at(E, t_new, pool_spare(S, br[0].g, br[1].g), &cur)) return false;
        ++*evals;
        ls_iter++;
        if (cur.f > f + c1 * cur.t * gtd || cur.f >= br[lo].f) {
            br[hi] = cur; /* sufficient decrease fails: cur is the new high end */
            lo = br[0].f <= br[1].f ? 0 : 1, hi = 1 - lo;
        } else {
            if (fabs(cur.gtd) <= -c2 * gtd) done = true;
            else if (cur.gtd * (br[hi].t - br[lo].t) >= 0) br[hi] = br[lo];
            br[lo] = cur;
        }
    }
    *best = br[lo];
    if (best->g != S->g) memcpy(S->g, best->g, sizeof(float) * (size_t)S->n);
    best->g = S->g;
    return true;
}

/* ---------------------------------------------------------------- direction */

/* The (s, y) pair from the last iteration enters the history when y.s > 1e-10 (curvature
 * condition), the oldest leaving when it is full; S->s_new and S->y_new hold the pair. */
static bool history_push(lbfgs_state *S, double ys) {
    int at = (S->oldest + S->num_old) % S->hist_cap;
    if (S->num_old == S->hist_cap) {
        S->oldest = (S->oldest + 1) % S->hist_cap;
        S->num_old--;
    }
    if (!S->dirs[at]) { /* the ring fills: its vectors are made once, here */
        S->dirs[at] = vec_new(S->n);
        S->stps[at] = S->dirs[at] ? vec_new(S->n) : NULL;
        if (!S->stps[at]) return false;
    }
    float *y = S->dirs[at], *s = S->stps[at]; /* swap: the pair moves in without a copy */
    S->dirs[at] = S->y_new, S->stps[at] = S->s_new;
    S->y_new = y, S->s_new = s;
    S->ro[at] = 1 / ys;
    S->num_old++;
    return true;
}

/* d = -H g by the two-loop recursion over the history, after adding the last pair. */
static bool direction(lbfgs_state *S) {
    int64_t n = S->n;
    for (int64_t i = 0; i < n; i++) {
        S->y_new[i] = S->g[i] - S->g_prev[i];
        S->s_new[i] = S->d[i] * (float)S->t;
    }
    double ys = dot(S->y_new, S->s_new, n);
    if (ys > 1e-10) {
        double yy = dot(S->y_new, S->y_new, n); /* before the push swaps y_new away */
        if (!history_push(S, ys)) return false;
        S->h_diag = ys / yy;
    }
    for (int64_t i = 0; i < n; i++) S->d[i] = -S->g[i]; /* q */
    for (int k = S->num_old - 1; k >= 0; k--) {
        int at = (S->oldest + k) % S->hist_cap;
        S->al[at] = dot(S->stps[at], S->d, n) * S->ro[at];
        axpy(S->d, -S->al[at], S->dirs[at], n);
    }
    for (int64_t i = 0; i < n; i++) S->d[i] *= (float)S->h_diag; /* r */
    for (int k = 0; k < S->num_old; k++) {
        int at = (S->oldest + k) % S->hist_cap;
        double be = dot(S->dirs[at], S->d, n) * S->ro[at];
        axpy(S->d, S->al[at] - be, S->stps[at], n);
    }
    return true;
}

/* ---------------------------------------------------------------- step */

typedef struct {
    double lr, tolerance_grad, tolerance_change;
    int64_t max_iter, max_eval;
    bool strong_wolfe;
} lbfgs_opts;

/* One iteration after the direction: the step length, the move and the new f and g.  Returns
 * 1 to go on, 0 when the step is over, -1 when the closure failed. */
static int iterate(nb_optim *o, const lbfgs_opts *op, nb_closure_fn closure, void *ctx,
                   int64_t n_iter, int64_t *evals, double *loss) {
    lbfgs_state *S = o->extra;
    memcpy(S->g_prev, S->g, sizeof(float) * (size_t)S->n);
    S->prev_loss = *loss;
    S->t = S->n_iter == 1 ? fmin(1.0, 1.0 / abs_sum(S->g, S->n)) * op->lr : op->lr;
    double gtd = dot(S->g, S->d, S->n);
    if (gtd > -op->tolerance_change) return 0;
    int ls_evals = 0;
    bool opt_cond = false;
    params_copy(o, S->x, false);
    if (op->strong_wolfe) {
        /* s_new is free once the direction is made: the scratch for x + t d */
        ls_eval E = {o, S, closure, ctx, S->s_new};
        ls_point best;
        if (!wolfe_search(&E, S->t, *loss, gtd, &best, &ls_evals)) return -1;
        *loss = best.f;
        S->t = best.t;
        params_set_along(o, S, S->x, S->t, S->s_new);
        opt_cond = abs_max(S->g, S->n) <= op->tolerance_grad;
    } else {
        params_set_along(o, S, S->x, S->t, S->s_new);
        if (n_iter != op->max_iter) {
            *loss = evaluate(o, S, closure, ctx, S->g);
            if (isnan(*loss)) return -1;
            opt_cond = abs_max(S->g, S->n) <= op->tolerance_grad;
            ls_evals = 1;
        }
    }
    *evals += ls_evals;
    if (n_iter == op->max_iter || *evals >= op->max_eval || opt_cond) return 0;
    if (abs_max(S->d, S->n) * fabs(S->t) <= op->tolerance_change) return 0;
    if (fabs(*loss - S->prev_loss) < op->tolerance_change) return 0;
    return 1;
}

static void mirrors_catch_up(lbfgs_state *S);

static nb_status lbfgs_step(nb_optim *o, nb_closure_fn closure, void *ctx, double *loss_out) {
    const nb__group *g = &o->groups[0];
    lbfgs_state *S = o->extra;
    mirrors_catch_up(S);
    lbfgs_opts op = {.lr = g->lr, .tolerance_grad = g->hp[TOLERANCE_GRAD],
                     .tolerance_change = g->hp[TOLERANCE_CHANGE],
                     .max_iter = (int64_t)g->hp[MAX_ITER], .max_eval = (int64_t)g->hp[MAX_EVAL],
                     .strong_wolfe = g->hp[STRONG_WOLFE] != 0};
    double loss = evaluate(o, S, closure, ctx, S->g);
    if (isnan(loss)) return nb_error_code();
    if (loss_out) *loss_out = loss;
    if (abs_max(S->g, S->n) <= op.tolerance_grad) return NB_OK; /* already optimal */
    int64_t evals = 1;
    for (int64_t n_iter = 1; n_iter <= op.max_iter; n_iter++) {
        S->n_iter++;
        if (S->n_iter == 1) {
            for (int64_t i = 0; i < S->n; i++) S->d[i] = -S->g[i];
            S->num_old = 0;
            S->h_diag = 1;
        } else if (!direction(S)) {
            return nb_error_code();
        }
        int r = iterate(o, &op, closure, ctx, n_iter, &evals, &loss);
        if (r < 0) return nb_error_code();
        if (r == 0) break;
    }
    return NB_OK;
}

/* ---------------------------------------------------------------- state */

#define N_VECS 9
/* The state's flat vectors of n elements, besides the history. */
static void state_vectors(lbfgs_state *S, float **v[N_VECS]) {
    float **all[N_VECS] = {&S->d, &S->g, &S->g_prev, &S->x, &S->y_new, &S->s_new,
                           &S->pool[0], &S->pool[1], &S->pool[2]};
    memcpy(v, all, sizeof all);
}

static void mirrors_free(lbfgs_state *S);

static void state_destroy(lbfgs_state *S) {
    if (!S) return;
    size_t hp = sizeof(float *) * (size_t)S->hist_cap, hd = sizeof(double) * (size_t)S->hist_cap;
    for (int i = 0; i < S->hist_cap && S->dirs && S->stps; i++) {
        vec_free(S->dirs[i], S->n);
        vec_free(S->stps[i], S->n);
    }
    if (S->dirs) nb__dealloc(S->dirs, hp);
    if (S->stps) nb__dealloc(S->stps, hp);
    if (S->ro) nb__dealloc(S->ro, hd);
    if (S->al) nb__dealloc(S->al, hd);
    float **v[N_VECS];
    state_vectors(S, v);
    for (int i = 0; i < N_VECS; i++) vec_free(*v[i], S->n);
    mirrors_free(S);
    nb__dealloc(S, sizeof *S);
}

static void state_free(nb_optim *o) {
    state_destroy(o->extra);
    o->extra = NULL;
}

/* The vectors and the history's ring (its pairs are made as it fills). */
static void *state_new(const nb_optim *o) {
    lbfgs_state *S = nb__alloc(sizeof *S);
    if (!S) return NULL;
    memset(S, 0, sizeof *S);
    for (int i = 0; i < o->n_params; i++) {
        const nb_tensor *p = o->params[i].param;
        S->n += nb__numel(p->ndim, p->shape);
    }
    S->hist_cap = (int)o->groups[0].hp[HISTORY_SIZE];
    size_t hp = sizeof(float *) * (size_t)S->hist_cap, hd = sizeof(double) * (size_t)S->hist_cap;
    bool ok = (S->dirs = nb__alloc(hp)) && (S->stps = nb__alloc(hp)) &&
              (S->ro = nb__alloc(hd)) && (S->al = nb__alloc(hd));
    if (ok) {
        memset(S->dirs, 0, hp);
        memset(S->stps, 0, hp);
    }
    float **v[N_VECS];
    state_vectors(S, v);
    for (int i = 0; ok && i < N_VECS; i++) ok = (*v[i] = vec_new(S->n)) != NULL;
    if (!ok) {
        state_destroy(S);
        return NULL;
    }
    return S;
}

/* ---------------------------------------------------------------- the kind */

static bool check(const nb__group *g, const char *who) {
    static const struct { int at; const char *what; } counts[] = {
        {MAX_ITER, "max_iter"}, {MAX_EVAL, "max_eval"}, {HISTORY_SIZE, "history_size"}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        double v = g->hp[counts[i].at];
        if (!(v >= 1 && v <= 1e9 && v == floor(v)))
            return nb__fail(NB_ERR_ARG, "%s: Invalid %s: %g (an integer >= 1)", who,
                            counts[i].what, v), false;
    }
    return nb__optim_nonneg(g->hp[TOLERANCE_GRAD], "tolerance_grad", who) &&
           nb__optim_nonneg(g->hp[TOLERANCE_CHANGE], "tolerance_change", who);
}

static bool slot_needed(const nb__group *g, int slot) {
    (void)g, (void)slot;
    return false;
}

/* ---------------------------------------------------------------- saved state
 * torch's state: the scalars in the JSON state's first entry ("n_iter", "func_evals", "t",
 * "H_diag", "prev_loss", "num_old", "ro"), the vectors as state tensors: "state.0.d",
 * "state.0.prev_flat_grad", then "state.0.old_dirs.K" and "state.0.old_stps.K" for every
 * K < history_size, oldest first (zeros past num_old).  The tensors mirror host vectors: made
 * when first asked for (only a checkpoint pays for them) and filled from the vectors on each
 * nb_optim_state_tensors.  A load sets the scalars and leaves the tensors ahead of the vectors,
 * which the next step copies back: so the tensors may be written before the JSON is loaded or
 * after (a checkpoint loads the JSON first). */

static int mirror_count(const lbfgs_state *S) { return 2 + 2 * S->hist_cap; }

/* The vector behind mirror i: NULL for a history pair past num_old. */
static float *mirror_vector(const lbfgs_state *S, int i) {
    if (i < 2) return i == 0 ? S->d : S->g_prev;
    int k = (i - 2) / 2, at = (S->oldest + k) % S->hist_cap;
    if (k >= S->num_old) return NULL;
    return (i - 2) % 2 ? S->stps[at] : S->dirs[at];
}

static void mirrors_free(lbfgs_state *S) {
    if (!S->mirror) return;
    int m = mirror_count(S);
    for (int i = 0; i < m; i++) nb_tensor_free(S->mirror[i]);
    nb__dealloc(S->mirror, sizeof(nb_tensor *) * (size_t)m);
    nb__dealloc(S->mirror_names, sizeof *S->mirror_names * (size_t)m);
    S->mirror = NULL;
}

static bool mirrors_make(lbfgs_state *S) {
    int m = mirror_count(S);
    int64_t n = S->n ? S->n : 1;
    S->mirror = nb__alloc(sizeof(nb_tensor *) * (size_t)m);
    S->mirror_names = S->mirror ? nb__alloc(sizeof *S->mirror_names * (size_t)m) : NULL;
    if (!S->mirror_names) {
        if (S->mirror) nb__dealloc(S->mirror, sizeof(nb_tensor *) * (size_t)m);
        S->mirror = NULL;
        return false;
    }
    memset(S->mirror, 0, sizeof(nb_tensor *) * (size_t)m);
    for (int i = 0; i < m; i++) {
        if (!(S->mirror[i] = nb__new_in(NULL, NB_F32, 1, &n))) {
            mirrors_free(S);
            return false;
        }
        if (i < 2) snprintf(S->mirror_names[i], NB__NAME_MAX, "state.0.%s", i ? "prev_flat_grad" : "d");
        else snprintf(S->mirror_names[i], NB__NAME_MAX, "state.0.old_%s.%d", (i - 2) % 2 ? "stps" : "dirs",
                      (i - 2) / 2);
    }
    return true;
}

static int extra_tensors(nb_optim *o, const char **names, nb_tensor **tensors, int cap) {
    lbfgs_state *S = o->extra;
    int m = mirror_count(S);
    if (cap == 0) return m; /* counting makes nothing */
    if (!S->mirror && !mirrors_make(S)) return -1;
    for (int i = 0; i < m; i++) {
        const float *v = mirror_vector(S, i);
        if (!S->mirror_ahead && v)
            nb__backend(NB_CPU)->copy_h2d(nb__f32(S->mirror[i]), v, sizeof(float) * (size_t)S->n);
        else if (!S->mirror_ahead)
            nb_fill(S->mirror[i], 0);
        if (i < cap) {
            if (names) names[i] = S->mirror_names[i];
            if (tensors) tensors[i] = S->mirror[i];
        }
    }
    return m;
}

static void extra_json(const nb_optim *o, json_t *state0) {
    const lbfgs_state *S = o->extra;
    json_object_set_new(state0, "n_iter", json_integer(S->n_iter));
    json_object_set_new(state0, "func_evals", json_integer(S->func_evals));
    json_object_set_new(state0, "t", nb__json_real(S->t));
    json_object_set_new(state0, "H_diag", nb__json_real(S->h_diag));
    json_object_set_new(state0, "prev_loss", nb__json_real(S->prev_loss));
    json_object_set_new(state0, "num_old", json_integer(S->num_old));
    json_t *ro = json_array();
    for (int k = 0; k < S->num_old; k++)
        json_array_append_new(ro, nb__json_real(S->ro[(S->oldest + k) % S->hist_cap]));
    json_object_set_new(state0, "ro", ro);
}

/* The scalars of a state, read and checked before anything changes. */
typedef struct {
    int64_t step, n_iter, func_evals, num_old;
    double t, h_diag, prev_loss;
} saved_scalars;

static bool read_saved(const lbfgs_state *S, const json_t *root, saved_scalars *v) {
    const char *w = "optimizer state: state[0]";
    static const char *const keys[] = {"step", "n_iter", "func_evals", "t", "H_diag",
                                       "prev_loss", "num_old", "ro"};
    const json_t *s0 = json_array_get(json_object_get(root, "state"), 0);
    const json_t *g0 = json_array_get(json_object_get(root, "param_groups"), 0);
    double hist = json_number_value(json_object_get(g0, "history_size"));
    if (hist != S->hist_cap)
        return nb__fail(NB_ERR_ARG, "optimizer state: param_groups[0]: history_size %g differs "
                        "from this optimizer's %d (it decides the state tensors)", hist,
                        S->hist_cap), false;
    bool ok = nb__json_keys(s0, keys, 8, w) && nb__json_int(s0, "step", &v->step, w) &&
              nb__json_int(s0, "n_iter", &v->n_iter, w) &&
              nb__json_int(s0, "func_evals", &v->func_evals, w) &&
              nb__json_int(s0, "num_old", &v->num_old, w) && nb__json_num(s0, "t", &v->t, w) &&
              nb__json_num(s0, "H_diag", &v->h_diag, w) &&
              nb__json_num(s0, "prev_loss", &v->prev_loss, w);
    if (ok && (v->n_iter < 0 || v->func_evals < 0 || v->num_old < 0 || v->num_old > S->hist_cap))
        return nb__fail(NB_ERR_ARG, "%s: n_iter, func_evals or num_old out of range", w), false;
    const json_t *ro = json_object_get(s0, "ro");
    bool ro_ok = json_array_size(ro) == (size_t)v->num_old;
    for (size_t k = 0; ok && ro_ok && k < json_array_size(ro); k++)
        ro_ok = json_is_number(json_array_get(ro, k)) && json_number_value(json_array_get(ro, k)) > 0;
    if (ok && !ro_ok)
        return nb__fail(NB_ERR_ARG, "%s: 'ro' must hold num_old (%lld) positive numbers", w,
                        (long long)v->num_old), false;
    if (ok && v->n_iter > 0 && !S->mirror)
        return nb__fail(NB_ERR_ARG, "%s: the state tensors were not filled: call "
                        "nb_optim_state_tensors and write the saved tensors into them first", w), false;
    return ok;
}

static bool extra_load(nb_optim *o, const json_t *root, bool commit) {
    lbfgs_state *S = o->extra;
    saved_scalars v;
    if (!read_saved(S, root, &v)) return false; /* it changes nothing: commit reads again */
    const json_t *ro = json_object_get(json_array_get(json_object_get(root, "state"), 0), "ro");
    if (!commit) { /* the pairs a commit will fill must exist: make them now, when failing is allowed */
        for (int k = 0; k < v.num_old; k++) {
            if (!S->dirs[k]) S->dirs[k] = vec_new(S->n);
            if (S->dirs[k] && !S->stps[k]) S->stps[k] = vec_new(S->n);
            if (!S->stps[k]) return false;
        }
        return true;
    }
    S->n_iter = v.n_iter, S->func_evals = v.func_evals, S->t = v.t, S->h_diag = v.h_diag;
    S->prev_loss = v.prev_loss;
    S->oldest = 0, S->num_old = 0; /* mirror_vector now maps pair k to ring slot k */
    S->num_old = (int)v.num_old;
    for (int k = 0; k < S->num_old; k++) S->ro[k] = json_number_value(json_array_get(ro, (size_t)k));
    S->mirror_ahead = S->mirror != NULL;
    return true;
}

/* After a load: the vectors from the tensors. */
static void mirrors_catch_up(lbfgs_state *S) {
    for (int i = 0; S->mirror_ahead && i < mirror_count(S); i++) {
        float *dst = mirror_vector(S, i);
        if (dst) nb__backend(NB_CPU)->copy_d2h(dst, nb__f32(S->mirror[i]), sizeof(float) * (size_t)S->n);
    }
    S->mirror_ahead = false;
}

static const nb__hp_field fields[] = {
    NB__HP("max_iter", MAX_ITER), NB__HP("max_eval", MAX_EVAL),
    NB__HP("tolerance_grad", TOLERANCE_GRAD), NB__HP("tolerance_change", TOLERANCE_CHANGE),
    NB__HP("history_size", HISTORY_SIZE), NB__HP_FLAG("strong_wolfe", STRONG_WOLFE), {0},
};

const nb__optim_kind nb__lbfgs = {
    .name = "lbfgs", .fields = fields, .slot_needed = slot_needed, .check = check,
    .step_closure = lbfgs_step, .new_extra = state_new, .free_extra = state_free,
    .single_group = true, .extra_json = extra_json, .extra_load = extra_load,
    .extra_tensors = extra_tensors, .momentum = NB__NO_MOMENTUM,
};

nb_optim *nb_lbfgs_new(int n, nb_tensor *const *params, nb_lbfgs_opts opts) {
    if (opts.line_search_fn != NB_LINE_SEARCH_NONE && opts.line_search_fn != NB_LINE_SEARCH_STRONG_WOLFE)
        return nb__fail(NB_ERR_ARG, "lbfgs: only 'strong_wolfe' is supported (line_search_fn %d)",
                        (int)opts.line_search_fn);
    nb__group g = {.lr = nb__or_default(opts.lr, 1)};
    int64_t max_iter = nb__or_default_int(opts.max_iter, 20);
    g.hp[MAX_ITER] = (double)max_iter;
    g.hp[MAX_EVAL] = (double)nb__or_default_int(opts.max_eval, (int)(max_iter * 5 / 4));
    g.hp[TOLERANCE_GRAD] = nb__or_default(opts.tolerance_grad, 1e-7);
    g.hp[TOLERANCE_CHANGE] = nb__or_default(opts.tolerance_change, 1e-9);
    g.hp[HISTORY_SIZE] = (double)nb__or_default_int(opts.history_size, 100);
    g.hp[STRONG_WOLFE] = opts.line_search_fn == NB_LINE_SEARCH_STRONG_WOLFE;
    return nb__optim_new(&nb__lbfgs, g, n, params);
}
