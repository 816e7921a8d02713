/*
 * nabla/optim.h — optimisers, learning-rate schedules and gradient clipping.  Included by nabla.h
 * (inside its extern "C" block); include nabla.h, not this file.
 *
 * Every update rule, schedule and clipping function follows torch 1.13 (torch.optim,
 * torch.optim.lr_scheduler, torch.nn.utils.clip_grad_*) step for step, so that a trajectory
 * started from the same parameters and gradients stays with torch's to float32 rounding.
 *
 * Conventions
 *  - Hyper-parameters are doubles, as torch's are (Python floats): schedules compute learning
 *    rates in double, and only the update itself runs in float32.
 *  - Option structs are zero-initialisable.  A zero field means torch's default for that field
 *    (each field says what it is).  Where the default is not zero and a zero is wanted, write
 *    NB_ZERO (a negative zero: it compares equal to 0, so it is an ordinary 0 in arithmetic) or,
 *    in an int field, NB_ZERO_INT.  Fields that torch requires (SGD's lr, CyclicLR's base_lr and
 *    max_lr, OneCycleLR's max_lr and total_steps) are errors when left zero.
 *  - Parameters are persistent f32 CPU tensors (made with no scope open), contiguous, leaves.  The
 *    optimiser holds a reference on each, so freeing a parameter first is safe.  A parameter whose
 *    gradient is NULL, or that does not require grad (frozen), is skipped by a step, as in torch.
 *  - Optimiser state (moment buffers) is made when a parameter is added, never in a step: a step
 *    calls malloc zero times.  Loops are plain float loops, split across OpenMP threads for large
 *    tensors in a way that leaves every element to one thread, so results do not depend on the
 *    thread count.
 *  - A schedule is bound to one optimiser and sets its groups' lr; free schedules before their
 *    optimiser.  Making a schedule performs its first step, as torch's constructors do.
 *  - Failing calls return NULL, NAN or a status and leave nb_error_message(), with messages worded
 *    like torch's ("sgd: Invalid learning rate: -0.1").
 */
#ifndef NABLA_OPTIM_H
#define NABLA_OPTIM_H

/* An explicit zero for an option whose zero value means "torch's default" (NB_ZERO_INT is
 * INT_MIN). */
#define NB_ZERO (-0.0)
#define NB_ZERO_INT (-2147483647 - 1)

/* ---------------------------------------------------------------- optimisers */

typedef struct nb_optim nb_optim;

/* torch.optim.SGD.  p <- p - lr d, where d = g + weight_decay p, then with momentum
 * b <- momentum b + (1 - dampening) d (b = d on a parameter's first step) and d = b, or
 * d = d + momentum b with nesterov. */
typedef struct {
    double lr;           /* required (torch has no default); NB_ZERO for 0 */
    double momentum;     /* default 0 */
    double dampening;    /* default 0 */
    double weight_decay; /* L2 penalty added to the gradient; default 0 */
    bool nesterov;       /* needs momentum > 0 and dampening 0 */
} nb_sgd_opts;

/* torch.optim.Adagrad. */
typedef struct {
    double lr;                        /* default 1e-2 */
    double lr_decay;                  /* lr / (1 + (step - 1) lr_decay); default 0 */
    double weight_decay;              /* default 0 */
    double initial_accumulator_value; /* default 0 */
    double eps;                       /* default 1e-10 */
} nb_adagrad_opts;

/* torch.optim.RMSprop. */
typedef struct {
    double lr;           /* default 1e-2 */
    double alpha;        /* smoothing constant; default 0.99 */
    double eps;          /* default 1e-8 */
    double weight_decay; /* default 0 */
    double momentum;     /* default 0 */
    bool centered;       /* normalise by the estimated variance of the gradient */
} nb_rmsprop_opts;

/* torch.optim.Adam and torch.optim.AdamW (betas = (beta1, beta2)). */
typedef struct {
    double lr;           /* default 1e-3 */
    double beta1;        /* default 0.9 */
    double beta2;        /* default 0.999 */
    double eps;          /* default 1e-8 */
    double weight_decay; /* Adam: L2 added to the gradient, default 0.  AdamW: decoupled,
                            p <- p (1 - lr weight_decay), default 1e-2 (NB_ZERO for none) */
    bool amsgrad;
} nb_adam_opts;
typedef nb_adam_opts nb_adamw_opts;

/* Each constructor makes the optimiser with one parameter group holding params[0..n) (n >= 1).
 * NULL on a bad option (torch's checks: lr, eps, weight_decay, momentum, lr_decay,
 * initial_accumulator_value >= 0; betas in [0, 1); nesterov needs momentum and no dampening;
 * and beyond torch's: every value finite, dampening and RMSprop's alpha in [0, 1]; the message
 * names the option and value, "sgd: Invalid learning rate: nan") or a bad parameter (NULL, not f32, not on the CPU,
 * not contiguous, in a scope, not a leaf, or listed twice).  Free with nb_optim_free. */
NB_API nb_optim *nb_sgd_new(int n, nb_tensor *const *params, nb_sgd_opts opts);
NB_API nb_optim *nb_adagrad_new(int n, nb_tensor *const *params, nb_adagrad_opts opts);
NB_API nb_optim *nb_rmsprop_new(int n, nb_tensor *const *params, nb_rmsprop_opts opts);
NB_API nb_optim *nb_adam_new(int n, nb_tensor *const *params, nb_adam_opts opts);
NB_API nb_optim *nb_adamw_new(int n, nb_tensor *const *params, nb_adamw_opts opts);

typedef enum { NB_LINE_SEARCH_NONE, NB_LINE_SEARCH_STRONG_WOLFE } nb_line_search;
/* torch.optim.LBFGS (after minFunc): each step runs up to max_iter iterations of limited-memory
 * BFGS on all parameters as one flat vector.  The direction is d = -H g with H from the last
 * history_size pairs (s = t d, y = g_new - g_old, kept when y.s > 1e-10) by the two-loop
 * recursion, scaled by y.s / y.y; the step length is lr (on the very first iteration
 * min(1, 1 / |g|_1) lr), or with strong_wolfe the line search of torch's _strong_wolfe (cubic
 * interpolation, c1 = 1e-4, c2 = 0.9, at most 25 evaluations).  An iteration stops the step at
 * max_iter, max_eval evaluations, max |g| <= tolerance_grad, or a change of the parameters or
 * the loss below tolerance_change.  Needs nb_optim_step_closure; one parameter group only (as
 * torch).  Memory: history_size pairs + 9 flat vectors of all parameters' size, the pairs made
 * as the history fills during the first history_size iterations, never in later steps (and as
 * many again once state tensors are asked for).  State, as
 * torch's: the JSON has the group's options (the line search as the flag "strong_wolfe") and in
 * state[0] "n_iter", "func_evals", "t", "H_diag", "prev_loss", "num_old" and "ro";
 * nb_optim_state_tensors lists "state.0.d", "state.0.prev_flat_grad" and history_size pairs
 * "state.0.old_dirs.K", "state.0.old_stps.K" (oldest first, zeros past num_old), each of all
 * parameters' size, made on the first call that asks for them (not a count) and filled from the
 * optimiser on each call.  To restore: nb_optim_state_tensors, then write the saved tensors into
 * them and nb_optim_load_state_json in either order (a checkpoint does both); the next step
 * reads the tensors.  Loading fails, naming the cause, when the tensors were never asked for or
 * history_size differs. */
typedef struct {
    double lr;               /* default 1 (NB_ZERO for 0) */
    int max_iter;            /* iterations per step, >= 1; default 20 */
    int max_eval;            /* closure calls per step, >= 1; default max_iter * 5 / 4 */
    double tolerance_grad;   /* default 1e-7 */
    double tolerance_change; /* default 1e-9 */
    int history_size;        /* >= 1; default 100 */
    nb_line_search line_search_fn; /* default none */
} nb_lbfgs_opts;
NB_API nb_optim *nb_lbfgs_new(int n, nb_tensor *const *params, nb_lbfgs_opts opts);
NB_API void nb_optim_free(nb_optim *o); /* NULL: nothing */

/* Per-group overrides (torch's param-group dict).  A zero field takes the optimiser's value;
 * NB_ZERO asks for 0 (e.g. no weight decay on biases).  momentum is SGD's and RMSprop's
 * momentum and Adam's / AdamW's beta1; Adagrad has none (an error if set). */
typedef struct {
    double lr;
    double weight_decay;
    double momentum;
} nb_group_opts;

/* Adds a group holding params[0..n); g may be NULL (all the optimiser's values).  Parameters
 * keep one index across groups, in the order they were added: state tensor names use it. */
NB_API nb_status nb_optim_add_group(nb_optim *o, int n, nb_tensor *const *params, const nb_group_opts *g);
/* One update of every parameter that has a gradient.  Allocates nothing.  L-BFGS fails here
 * (NB_ERR_ARG): it needs nb_optim_step_closure. */
NB_API nb_status nb_optim_step(nb_optim *o);
/* A closure re-evaluates the model (torch's optimizer.step(closure)): it zeroes the gradients,
 * runs the forward pass and backward, and returns the loss; NAN on error (its error set).  It is
 * called inside a scope the optimiser opens and ends, so its intermediates are freed after each
 * call; ctx is the caller's. */
typedef double (*nb_closure_fn)(void *ctx);
/* One step that may re-evaluate the loss: L-BFGS calls the closure as often as its iterations
 * and line search need; every other optimiser calls it once, then steps, as torch does.  *loss
 * (may be NULL) receives the first evaluation's loss (what torch's step returns).  Fails
 * with the closure's error, prefixed by the optimiser's name, when the closure returns NAN
 * (NB_ERR_VALUE when it returned NaN without setting an error); the parameters then hold the
 * values of the failed evaluation's iterate. */
NB_API nb_status nb_optim_step_closure(nb_optim *o, nb_closure_fn closure, void *ctx, double *loss);
/* Fills every parameter's gradient with zeros (torch 1.13's zero_grad(set_to_none=False)). */
NB_API nb_status nb_optim_zero_grad(nb_optim *o);
NB_API int nb_optim_num_groups(const nb_optim *o);            /* -1 for NULL */
NB_API double nb_optim_get_lr(const nb_optim *o, int group);  /* NAN on a bad group */
NB_API nb_status nb_optim_set_lr(nb_optim *o, int group, double lr);
/* The group's momentum (SGD, RMSprop) or beta1 (Adam, AdamW), which a cyclic or one-cycle
 * schedule may change; NAN for Adagrad or a bad group. */
NB_API double nb_optim_get_momentum(const nb_optim *o, int group);

/* The state tensors, for checkpoints: writes up to cap (name, tensor) pairs and returns how many
 * there are (call with cap 0 to count).  Names are torch's state_dict keys with the parameter's
 * index: "state.3.exp_avg".  SGD: momentum_buffer (when momentum > 0); Adagrad: sum; RMSprop:
 * square_avg, momentum_buffer (momentum > 0), grad_avg (centered); Adam/AdamW: exp_avg,
 * exp_avg_sq, max_exp_avg_sq (amsgrad).  The optimiser owns both; write into the tensors to
 * restore them.  They are valid until nb_optim_add_group or nb_optim_free; a schedule that cycles
 * momentum on an SGD or RMSprop optimiser built without momentum adds momentum buffers. */
NB_API int nb_optim_state_tensors(nb_optim *o, const char **names, nb_tensor **tensors, int cap);
/* The scalar state as JSON: {"optimizer": "adam", "param_groups": [{"lr": .., "initial_lr": ..,
 * "betas": [.., ..], .., "params": [0, 1]}], "state": [{"step": 3}, ..]}.  Caller frees with
 * free().  Loading validates every key (an unknown or missing key is an error naming it), the
 * types, the ranges and that the groups hold the same parameters; the optimiser is unchanged on
 * error.  Options that decide which state tensors exist (amsgrad, centered, momentum > 0 where
 * this optimiser has no momentum buffer) must agree with the optimiser. */
NB_API char *nb_optim_state_json(const nb_optim *o);
NB_API nb_status nb_optim_load_state_json(nb_optim *o, const char *json);

/* ---------------------------------------------------------------- learning-rate schedules
 * Each follows torch.optim.lr_scheduler in its chainable (recursive) form, reading and writing
 * the groups' lr, so that schedules compose (ChainedScheduler) and an lr set from outside is
 * carried along.  A schedule remembers the optimiser's group count and refuses to step if it
 * changed.
 * Constructors return NULL with NB_ERR_ARG on a bad option, with torch's checks and messages
 * and, beyond them, every real finite, gamma > 0 and eta_min, min_lr, threshold, eps >= 0
 * ("steplr: gamma must be finite and > 0, got nan"); the optimiser is unchanged then.
 */
typedef struct nb_sched nb_sched;

/* StepLR: lr *= gamma every step_size steps (step_size > 0). */
NB_API nb_sched *nb_steplr_new(nb_optim *o, int step_size, double gamma);
/* MultiStepLR: lr *= gamma at each milestone (a milestone listed k times multiplies by
 * gamma^k); milestones >= 0, in any order. */
NB_API nb_sched *nb_multisteplr_new(nb_optim *o, int n, const int *milestones, double gamma);
/* ExponentialLR: lr *= gamma every step. */
NB_API nb_sched *nb_exponentiallr_new(nb_optim *o, double gamma);
/* CosineAnnealingLR (T_max > 0), torch's recursive form:
 *   lr_t = eta_min + (lr_{t-1} - eta_min) (1 + cos(pi t / T_max)) / (1 + cos(pi (t-1) / T_max)),
 * and lr_t = lr_{t-1} + (base_lr - eta_min) (1 - cos(pi / T_max)) / 2 when
 * (t - 1 - T_max) % (2 T_max) == 0.  Alone it equals the closed form
 * eta_min + (base_lr - eta_min) (1 + cos(pi t / T_max)) / 2, rising again after T_max. */
NB_API nb_sched *nb_cosinelr_new(nb_optim *o, int T_max, double eta_min);
/* LinearLR: the factor goes linearly from start_factor (in (0, 1]) to end_factor (in [0, 1]) over
 * total_iters (> 0) steps, then stays — a linear warm-up. */
NB_API nb_sched *nb_linearlr_new(nb_optim *o, double start_factor, double end_factor, int total_iters);

typedef enum { NB_PLATEAU_MIN, NB_PLATEAU_MAX } nb_plateau_mode;
typedef enum { NB_THRESHOLD_REL, NB_THRESHOLD_ABS } nb_threshold_mode;
/* ReduceLROnPlateau, stepped with nb_sched_step_metric. */
typedef struct {
    nb_plateau_mode mode;             /* default min */
    double factor;                    /* new lr = lr factor, < 1; default 0.1 */
    int patience;                     /* bad steps tolerated; default 10 (NB_ZERO_INT for 0) */
    double threshold;                 /* default 1e-4 */
    nb_threshold_mode threshold_mode; /* default rel */
    int cooldown;                     /* default 0 */
    double min_lr;                    /* default 0 */
    double eps;                       /* smaller lr changes are skipped; default 1e-8 */
} nb_plateau_opts;
NB_API nb_sched *nb_plateau_new(nb_optim *o, nb_plateau_opts opts);

typedef enum { NB_CYCLIC_TRIANGULAR, NB_CYCLIC_TRIANGULAR2, NB_CYCLIC_EXP_RANGE } nb_cyclic_mode;
/* CyclicLR.  As in torch the momentum (SGD, RMSprop) cycles inversely between max_momentum and
 * base_momentum unless no_cycle_momentum is set (torch's cycle_momentum=False), which an
 * optimiser without momentum (Adam, Adagrad) needs.  A custom scale_fn is not offered. */
typedef struct {
    double base_lr;         /* required (NB_ZERO for 0); sets the groups' lr */
    double max_lr;          /* required */
    int step_size_up;       /* default 2000 */
    int step_size_down;     /* default step_size_up */
    nb_cyclic_mode mode;    /* default triangular */
    double gamma;           /* exp_range: scale gamma^step; default 1 */
    bool no_cycle_momentum; /* default false: momentum cycles, as torch's default */
    double base_momentum;   /* default 0.8 */
    double max_momentum;    /* default 0.9 */
} nb_cyclic_opts;
NB_API nb_sched *nb_cycliclr_new(nb_optim *o, nb_cyclic_opts opts);

typedef enum { NB_ANNEAL_COS, NB_ANNEAL_LINEAR } nb_anneal_strategy;
/* OneCycleLR.  Momentum (SGD, RMSprop) or beta1 (Adam, AdamW) cycles between max_momentum and
 * base_momentum unless no_cycle_momentum is set.  Stepping past total_steps is an error. */
typedef struct {
    double max_lr;                      /* required */
    int total_steps;                    /* required, > 0 */
    double pct_start;                   /* default 0.3 (NB_ZERO for 0) */
    nb_anneal_strategy anneal_strategy; /* default cos */
    bool no_cycle_momentum;             /* default false: momentum cycles, as torch's default */
    double base_momentum;               /* default 0.85 */
    double max_momentum;                /* default 0.95 */
    double div_factor;                  /* initial lr = max_lr / div_factor; default 25 */
    double final_div_factor;            /* min lr = initial lr / final_div_factor; default 1e4 */
    bool three_phase;
} nb_onecycle_opts;
NB_API nb_sched *nb_onecyclelr_new(nb_optim *o, nb_onecycle_opts opts);

/* ChainedScheduler: each step steps every schedule in order.  SequentialLR: schedule k runs from
 * milestones[k-1] (n - 1 increasing milestones); at a milestone the next schedule starts from its
 * closed form at step 0, as torch's.  Both take ownership of scheds[0..n), also when they fail,
 * so schedules may be made inline; a NULL among them fails (keeping its error).  The schedules
 * must share one optimiser (and be o for SequentialLR); ReduceLROnPlateau cannot be chained, and
 * SequentialLR takes no chained or sequential schedule. */
NB_API nb_sched *nb_chained_new(int n, nb_sched *const *scheds);
NB_API nb_sched *nb_sequentiallr_new(nb_optim *o, int n, nb_sched *const *scheds, const int *milestones);

NB_API nb_status nb_sched_step(nb_sched *s);                     /* every schedule but plateau */
NB_API nb_status nb_sched_step_metric(nb_sched *s, double value); /* plateau only */
/* The lr of a group after the last step (for a plateau not yet stepped, the group's lr when the
 * plateau was made); NAN on a bad group. */
NB_API double nb_sched_get_last_lr(const nb_sched *s, int group);
/* The schedule's state as JSON, torch's state_dict fields ("last_epoch", "base_lrs", ... and
 * those of chained schedules under "schedulers"); caller frees with free().  Loading validates
 * every key and restores into a schedule of the same kind on the same number of groups (the
 * optimiser's group lr and initial_lr are in the optimiser's state). */
NB_API char *nb_sched_state_json(const nb_sched *s);
NB_API nb_status nb_sched_load_state_json(nb_sched *s, const char *json);
NB_API void nb_sched_free(nb_sched *s); /* NULL: nothing; frees chained schedules too */

/* ---------------------------------------------------------------- gradient clipping */

/* torch.nn.utils.clip_grad_norm_: the norm of all gradients together (norm_type > 0 or
 * INFINITY), and when max_norm / (norm + 1e-6) < 1 every gradient is scaled by it.  Returns the
 * total norm (0 when no parameter has a gradient), NAN on error (NB_ERR_ARG for a max_norm that
 * is negative or not finite, or a norm_type that is NaN or <= 0).  Parameters without a
 * gradient are skipped. */
NB_API float nb_clip_grad_norm(int n, nb_tensor *const *params, float max_norm, float norm_type);
/* torch.nn.utils.clip_grad_value_: clamps every gradient to [-clip, clip] (clip finite, >= 0). */
NB_API nb_status nb_clip_grad_value(int n, nb_tensor *const *params, float clip);

#endif /* NABLA_OPTIM_H */
