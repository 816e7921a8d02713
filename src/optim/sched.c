/*
 * sched.c — learning-rate schedules, following torch/optim/lr_scheduler.py of torch 1.13 line by
 * line (the formulas below are its get_lr and _get_closed_form_lr, evaluated in the same order
 * in double, so the learning rates agree with torch's to the last bit or nearly).
 *
 * The life of a schedule, as torch's _LRScheduler:
 *  - construction sets each group's initial_lr if it has none (torch's setdefault: the first
 *    schedule made on an optimiser decides it), takes base_lrs from it, sets last_epoch = -1 and
 *    performs one step, which moves last_epoch to 0 and writes the epoch-0 lr into the groups;
 *  - each step adds one to last_epoch and sets each group's lr from its current lr (the
 *    chainable form), so schedules compose and a change made from outside is carried along;
 *  - SequentialLR starts a schedule at its milestone with step(0): last_epoch = 0 and, where
 *    torch has one, the closed form in place of the chainable one.
 * ReduceLROnPlateau is torch's separate class: it steps on a metric and has no initial step.
 *
 * State: one struct for every kind; its saved fields are listed per kind in a table that both
 * the JSON writer and the strict reader walk.
 */
#include "optim_internal.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    S_STEP, S_MULTISTEP, S_EXPONENTIAL, S_COSINE, S_LINEAR, S_PLATEAU, S_CYCLIC, S_ONECYCLE,
    S_CHAINED, S_SEQUENTIAL, S_KIND_COUNT
} sched_kind;

static const char *const kind_names[S_KIND_COUNT] = {
    "steplr", "multisteplr", "exponentiallr", "cosinelr", "linearlr", "plateau", "cycliclr",
    "onecyclelr", "chained", "sequentiallr",
};

#define N_GROUP_ARRAYS 6 /* base_lrs .. max_momentums below, one block */

struct nb_sched {
    sched_kind kind;
    nb_optim *o;
    int n_groups; /* the optimiser's group count when the schedule was made */
    int64_t last_epoch;
    double *base_lrs, *last_lr; /* per group */
    double *max_lrs, *min_lrs, *base_momentums, *max_momentums; /* cyclic, onecycle */
    int64_t step_size; /* steplr */
    double gamma;      /* steplr, multisteplr, exponentiallr, cycliclr (exp_range) */
    int n_milestones;  /* multisteplr (sorted), sequentiallr */
    int64_t *milestones;
    int64_t T_max; /* cosinelr */
    double eta_min;
    double start_factor, end_factor; /* linearlr */
    int64_t total_iters;
    int mode;           /* plateau: nb_plateau_mode; cyclic: nb_cyclic_mode */
    int threshold_mode; /* plateau: nb_threshold_mode */
    double factor, threshold, min_lr, eps, best; /* plateau */
    int64_t patience, cooldown, num_bad_epochs, cooldown_counter;
    double total_size, step_ratio; /* cyclic */
    bool cycle_momentum;           /* cyclic, onecycle */
    int64_t total_steps;           /* onecycle */
    double pct_start;
    int anneal; /* nb_anneal_strategy */
    bool three_phase;
    int n_children; /* chained, sequentiallr: owned */
    nb_sched **children;
};

/* ---------------------------------------------------------------- saved fields */

typedef enum { F_NUM, F_INT, F_BOOL, F_ENUM, F_GROUPS, F_MILESTONES } field_type;
typedef struct {
    const char *key;
    field_type type;
    size_t offset;
    const char *const *names; /* F_ENUM: the values' names, NULL-terminated */
} field;

static const char *const plateau_modes[] = {"min", "max", NULL};
static const char *const threshold_modes[] = {"rel", "abs", NULL};
static const char *const cyclic_modes[] = {"triangular", "triangular2", "exp_range", NULL};
static const char *const anneal_names[] = {"cos", "linear", NULL};

#define NUM(k, m) {k, F_NUM, offsetof(nb_sched, m), NULL}
#define INT(k, m) {k, F_INT, offsetof(nb_sched, m), NULL}
#define BOOL(k, m) {k, F_BOOL, offsetof(nb_sched, m), NULL}
#define ENUM(k, m, names) {k, F_ENUM, offsetof(nb_sched, m), names}
#define GROUPS(k, m) {k, F_GROUPS, offsetof(nb_sched, m), NULL}
#define MILESTONES {"milestones", F_MILESTONES, offsetof(nb_sched, milestones), NULL}
#define COMMON INT("last_epoch", last_epoch), GROUPS("base_lrs", base_lrs), GROUPS("last_lr", last_lr)
#define MAX_FIELDS 16

static const field kind_fields[S_KIND_COUNT][MAX_FIELDS] = {
    [S_STEP] = {COMMON, INT("step_size", step_size), NUM("gamma", gamma)},
    [S_MULTISTEP] = {COMMON, MILESTONES, NUM("gamma", gamma)},
    [S_EXPONENTIAL] = {COMMON, NUM("gamma", gamma)},
    [S_COSINE] = {COMMON, INT("T_max", T_max), NUM("eta_min", eta_min)},
    [S_LINEAR] = {COMMON, NUM("start_factor", start_factor), NUM("end_factor", end_factor),
                  INT("total_iters", total_iters)},
    [S_PLATEAU] = {INT("last_epoch", last_epoch), GROUPS("last_lr", last_lr),
                   ENUM("mode", mode, plateau_modes), NUM("factor", factor),
                   INT("patience", patience), NUM("threshold", threshold),
                   ENUM("threshold_mode", threshold_mode, threshold_modes),
                   INT("cooldown", cooldown), NUM("min_lr", min_lr), NUM("eps", eps),
                   NUM("best", best), INT("num_bad_epochs", num_bad_epochs),
                   INT("cooldown_counter", cooldown_counter)},
    [S_CYCLIC] = {COMMON, GROUPS("max_lrs", max_lrs), NUM("total_size", total_size),
                  NUM("step_ratio", step_ratio), ENUM("mode", mode, cyclic_modes),
                  NUM("gamma", gamma), BOOL("cycle_momentum", cycle_momentum),
                  GROUPS("base_momentums", base_momentums),
                  GROUPS("max_momentums", max_momentums)},
    [S_ONECYCLE] = {COMMON, INT("total_steps", total_steps), NUM("pct_start", pct_start),
                    ENUM("anneal_strategy", anneal, anneal_names),
                    BOOL("three_phase", three_phase), BOOL("cycle_momentum", cycle_momentum),
                    GROUPS("max_lrs", max_lrs), GROUPS("min_lrs", min_lrs),
                    GROUPS("base_momentums", base_momentums),
                    GROUPS("max_momentums", max_momentums)},
    [S_CHAINED] = {GROUPS("last_lr", last_lr)},
    [S_SEQUENTIAL] = {INT("last_epoch", last_epoch), MILESTONES, GROUPS("last_lr", last_lr)},
};

static int n_fields(sched_kind k) {
    int n = 0;
    while (n < MAX_FIELDS && kind_fields[k][n].key) n++;
    return n;
}

static bool is_composite(sched_kind k) { return k == S_CHAINED || k == S_SEQUENTIAL; }

/* ---------------------------------------------------------------- making and freeing */

static size_t group_block_size(int n_groups) {
    return sizeof(double) * N_GROUP_ARRAYS * (size_t)n_groups;
}

/* Points the per-group arrays of s into block. */
static void set_group_arrays(nb_sched *s, double *block) {
    double **arrays[N_GROUP_ARRAYS] = {&s->base_lrs, &s->last_lr, &s->max_lrs, &s->min_lrs,
                                       &s->base_momentums, &s->max_momentums};
    for (int i = 0; i < N_GROUP_ARRAYS; i++) *arrays[i] = block + (size_t)i * (size_t)s->n_groups;
}

void nb_sched_free(nb_sched *s) {
    if (!s) return;
    for (int i = 0; i < s->n_children; i++) nb_sched_free(s->children[i]);
    nb__dealloc(s->children, sizeof(nb_sched *) * (size_t)s->n_children);
    nb__dealloc(s->milestones, sizeof(int64_t) * (size_t)s->n_milestones);
    nb__dealloc(s->base_lrs, group_block_size(s->n_groups));
    nb__dealloc(s, sizeof *s);
}

static nb_sched *sched_alloc(nb_optim *o, sched_kind kind, int n_milestones) {
    if (!o) return nb__fail(NB_ERR_NULL, "%s: optimizer is NULL", kind_names[kind]);
    nb_sched *s = nb__alloc(sizeof *s);
    if (!s) return NULL;
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->o = o;
    s->n_groups = o->n_groups;
    double *block = nb__alloc(group_block_size(s->n_groups));
    if (!block) {
        nb__dealloc(s, sizeof *s);
        return NULL;
    }
    memset(block, 0, group_block_size(s->n_groups));
    set_group_arrays(s, block);
    for (int g = 0; g < s->n_groups; g++) s->last_lr[g] = o->groups[g].lr;
    if (n_milestones > 0) {
        s->milestones = nb__alloc(sizeof(int64_t) * (size_t)n_milestones);
        if (!s->milestones) {
            nb_sched_free(s);
            return NULL;
        }
        s->n_milestones = n_milestones;
    }
    return s;
}

/* torch's checks on a schedule's hyper-parameters (made or loaded), with its messages, and
 * beyond torch's: every real is finite, gamma > 0 (lr times gamma must stay a learning rate)
 * and eta_min, min_lr, threshold and eps >= 0.  The !(x > 0) forms also reject NaN. */
static bool check_params(const nb_sched *s, const char *who) {
#define REQUIRE(cond, ...) \
    if (!(cond)) return nb__fail(NB_ERR_ARG, __VA_ARGS__), false
#define GAMMA_OK REQUIRE(s->gamma > 0 && isfinite(s->gamma), "%s: gamma must be finite and > 0, got %g", \
                         who, s->gamma)
#define NONNEG(v, what) REQUIRE(v >= 0 && isfinite(v), "%s: " what " must be finite and >= 0, got %g", who, v)
    switch (s->kind) {
    case S_STEP:
        REQUIRE(s->step_size > 0, "%s: step_size must be > 0, got %lld", who, (long long)s->step_size);
        GAMMA_OK;
        break;
    case S_EXPONENTIAL:
        GAMMA_OK;
        break;
    case S_MULTISTEP:
        GAMMA_OK;
        for (int i = 0; i < s->n_milestones; i++)
            REQUIRE(s->milestones[i] >= 0 && (i == 0 || s->milestones[i] >= s->milestones[i - 1]),
                    "%s: milestones must be >= 0 and sorted (milestone %d is %lld)", who, i,
                    (long long)s->milestones[i]);
        break;
    case S_COSINE:
        REQUIRE(s->T_max > 0, "%s: T_max must be > 0, got %lld", who, (long long)s->T_max);
        NONNEG(s->eta_min, "eta_min");
        break;
    case S_LINEAR:
        REQUIRE(s->start_factor > 0 && s->start_factor <= 1, "%s: Starting multiplicative factor "
                "expected to be in (0, 1] (the chainable form divides by it), got %g", who,
                s->start_factor);
        REQUIRE(s->end_factor >= 0 && s->end_factor <= 1, "%s: Ending multiplicative factor "
                "expected to be between 0 and 1, got %g", who, s->end_factor);
        REQUIRE(s->total_iters > 0, "%s: total_iters must be > 0, got %lld", who,
                (long long)s->total_iters);
        break;
    case S_PLATEAU:
        REQUIRE(s->factor < 1 && s->factor >= 0, "%s: Factor should be < 1.0 (and >= 0), got %g",
                who, s->factor);
        REQUIRE(s->mode == NB_PLATEAU_MIN || s->mode == NB_PLATEAU_MAX, "%s: mode %d is unknown!",
                who, s->mode);
        REQUIRE(s->threshold_mode == NB_THRESHOLD_REL || s->threshold_mode == NB_THRESHOLD_ABS,
                "%s: threshold mode %d is unknown!", who, s->threshold_mode);
        REQUIRE(s->patience >= 0, "%s: patience must be >= 0 (NB_ZERO_INT for 0), got %lld", who,
                (long long)s->patience);
        REQUIRE(s->cooldown >= 0, "%s: cooldown must be >= 0, got %lld", who, (long long)s->cooldown);
        NONNEG(s->threshold, "threshold");
        NONNEG(s->min_lr, "min_lr");
        NONNEG(s->eps, "eps");
        break;
    case S_CYCLIC:
        REQUIRE(s->mode >= NB_CYCLIC_TRIANGULAR && s->mode <= NB_CYCLIC_EXP_RANGE,
                "%s: mode is invalid and scale_fn is None (mode %d)", who, s->mode);
        REQUIRE(s->total_size > 0 && s->step_ratio > 0 && s->step_ratio <= 1,
                "%s: step sizes must be > 0 (total_size %g, step_ratio %g)", who, s->total_size,
                s->step_ratio);
        GAMMA_OK;
        break;
    case S_ONECYCLE:
        REQUIRE(s->total_steps > 0, "%s: Expected positive integer total_steps, but got %lld", who,
                (long long)s->total_steps);
        REQUIRE(s->pct_start >= 0 && s->pct_start <= 1,
                "%s: Expected float between 0 and 1 pct_start, but got %g", who, s->pct_start);
        REQUIRE(s->anneal == NB_ANNEAL_COS || s->anneal == NB_ANNEAL_LINEAR,
                "%s: anneal_strategy must by one of 'cos' or 'linear', instead got %d", who, s->anneal);
        break;
    default:
        break;
    }
#undef NONNEG
#undef GAMMA_OK
#undef REQUIRE
    return true;
}

/* _LRScheduler.__init__ up to the initial step: initial_lr (setdefault) and base_lrs. */
static void attach(nb_sched *s) {
    for (int g = 0; g < s->n_groups; g++) {
        nb__group *grp = &s->o->groups[g];
        if (!grp->has_initial_lr) {
            grp->initial_lr = grp->lr;
            grp->has_initial_lr = true;
        }
        s->base_lrs[g] = grp->initial_lr;
    }
    s->last_epoch = -1;
}

/* ---------------------------------------------------------------- the formulas */

/* OneCycleLR's phases: end step and, per phase, where lr and momentum start and end. */
enum { V_INITIAL, V_MAX, V_MIN, M_MAX, M_BASE };
typedef struct {
    double end_step;
    int start_lr, end_lr, start_m, end_m;
} phase;

static int onecycle_phases(const nb_sched *s, phase *ph) {
    double T = (double)s->total_steps;
    if (s->three_phase) {
        ph[0] = (phase){s->pct_start * T - 1, V_INITIAL, V_MAX, M_MAX, M_BASE};
        ph[1] = (phase){2 * s->pct_start * T - 2, V_MAX, V_INITIAL, M_BASE, M_MAX};
        ph[2] = (phase){T - 1, V_INITIAL, V_MIN, M_MAX, M_MAX};
        return 3;
    }
    ph[0] = (phase){s->pct_start * T - 1, V_INITIAL, V_MAX, M_MAX, M_BASE};
    ph[1] = (phase){T - 1, V_MAX, V_MIN, M_BASE, M_MAX};
    return 2;
}

static double onecycle_value(const nb_sched *s, int g, int which) {
    switch (which) {
    case V_INITIAL: return s->o->groups[g].initial_lr;
    case V_MAX: return s->max_lrs[g];
    case V_MIN: return s->min_lrs[g];
    case M_MAX: return s->max_momentums[g];
    default: return s->base_momentums[g];
    }
}

/* _annealing_cos / _annealing_linear */
static double anneal(int strategy, double start, double end, double pct) {
    if (strategy == NB_ANNEAL_LINEAR) return (end - start) * pct + start;
    double cos_out = cos(M_PI * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
}

/* The phase OneCycleLR is in at step e, and how far through it; false (with torch's error) past
 * total_steps or in a phase of zero length, where torch divides by zero. */
static bool onecycle_where(const nb_sched *s, int64_t e, phase *out, double *pct) {
    if (e > s->total_steps)
        return nb__fail(NB_ERR_ARG, "onecyclelr: Tried to step %lld times. The specified number "
                        "of total steps is %lld", (long long)(e + 1), (long long)s->total_steps), false;
    phase ph[3];
    int n = onecycle_phases(s, ph), i = 0;
    double start_step = 0;
    while (i < n - 1 && !((double)e <= ph[i].end_step)) /* the last phase takes the rest */
        start_step = ph[i++].end_step;
    if (ph[i].end_step == start_step)
        return nb__fail(NB_ERR_ARG, "onecyclelr: phase %d has zero length (total_steps %lld, "
                        "pct_start %g): torch divides by zero here", i, (long long)s->total_steps,
                        s->pct_start), false;
    *pct = ((double)e - start_step) / (ph[i].end_step - start_step);
    *out = ph[i];
    return true;
}

/* CyclicLR.get_lr for group g at step e; sets the group's momentum when it cycles. */
static double cyclic_lr(nb_sched *s, int g, int64_t e) {
    double cycle = floor(1 + (double)e / s->total_size);
    double x = 1. + (double)e / s->total_size - cycle;
    double scale_factor = x <= s->step_ratio ? x / s->step_ratio : (x - 1) / (s->step_ratio - 1);
    double scale = s->mode == NB_CYCLIC_TRIANGULAR    ? 1.                         /* of cycle */
                   : s->mode == NB_CYCLIC_TRIANGULAR2 ? 1 / pow(2., cycle - 1)      /* of cycle */
                                                      : pow(s->gamma, (double)e); /* of step */
    double base_height = (s->max_lrs[g] - s->base_lrs[g]) * scale_factor;
    if (s->cycle_momentum) {
        double m_height = (s->max_momentums[g] - s->base_momentums[g]) * scale_factor;
        nb__optim_set_momentum(s->o, g, s->max_momentums[g] - m_height * scale);
    }
    return s->base_lrs[g] + base_height * scale;
}

/* Number of milestones equal to e (MultiStepLR's Counter) or <= e (bisect_right). */
static int milestones_count(const nb_sched *s, int64_t e, bool at_most) {
    int c = 0;
    for (int i = 0; i < s->n_milestones; i++)
        c += at_most ? s->milestones[i] <= e : s->milestones[i] == e;
    return c;
}

/* get_lr (the chainable form) for group g, whose lr is now lr, at s->last_epoch. */
static double chainable_lr(nb_sched *s, int g, double lr, const phase *ph, double pct) {
    int64_t e = s->last_epoch;
    switch (s->kind) {
    case S_STEP: return (e == 0 || e % s->step_size != 0) ? lr : lr * s->gamma;
    case S_MULTISTEP: {
        int c = milestones_count(s, e, false);
        return c == 0 ? lr : lr * pow(s->gamma, c);
    }
    case S_EXPONENTIAL: return e == 0 ? lr : lr * s->gamma;
    case S_COSINE: { /* torch's branch for _step_count == 1 and last_epoch > 0 serves schedules
                      * made with last_epoch != -1, which nabla does not offer */
        double T = (double)s->T_max;
        if (e == 0) return lr;
        if ((e - 1 - s->T_max) % (2 * s->T_max) == 0)
            return lr + (s->base_lrs[g] - s->eta_min) * (1 - cos(M_PI / T)) / 2;
        return (1 + cos(M_PI * (double)e / T)) / (1 + cos(M_PI * (double)(e - 1) / T)) *
                   (lr - s->eta_min) + s->eta_min;
    }
    case S_LINEAR:
        if (e == 0) return lr * s->start_factor;
        if (e > s->total_iters) return lr;
        return lr * (1. + (s->end_factor - s->start_factor) /
                              ((double)s->total_iters * s->start_factor +
                               (double)(e - 1) * (s->end_factor - s->start_factor)));
    case S_CYCLIC: return cyclic_lr(s, g, e);
    default: { /* S_ONECYCLE */
        if (s->cycle_momentum)
            nb__optim_set_momentum(s->o, g, anneal(s->anneal, onecycle_value(s, g, ph->start_m),
                                                   onecycle_value(s, g, ph->end_m), pct));
        return anneal(s->anneal, onecycle_value(s, g, ph->start_lr), onecycle_value(s, g, ph->end_lr),
                      pct);
    }
    }
}

/* _get_closed_form_lr, for the schedules that have one, at s->last_epoch. */
static bool has_closed_form(sched_kind k) { return k <= S_LINEAR; }

static double closed_form_lr(const nb_sched *s, int g) {
    int64_t e = s->last_epoch;
    double base = s->base_lrs[g];
    switch (s->kind) {
    case S_STEP: return base * pow(s->gamma, (double)(e / s->step_size)); /* e >= 0 */
    case S_MULTISTEP: return base * pow(s->gamma, milestones_count(s, e, true));
    case S_EXPONENTIAL: return base * pow(s->gamma, (double)e);
    case S_COSINE:
        return s->eta_min + (base - s->eta_min) * (1 + cos(M_PI * (double)e / (double)s->T_max)) / 2;
    default: { /* S_LINEAR */
        double m = (double)(s->total_iters < e ? s->total_iters : e);
        return base * (s->start_factor +
                       (s->end_factor - s->start_factor) * m / (double)s->total_iters);
    }
    }
}

/* ---------------------------------------------------------------- stepping */

static bool groups_unchanged(const nb_sched *s) {
    if (s->o->n_groups == s->n_groups) return true;
    return nb__fail(NB_ERR_ARG, "%s: the optimizer has %d parameter groups; the schedule was made "
                    "for %d", kind_names[s->kind], s->o->n_groups, s->n_groups), false;
}

/* _LRScheduler.step(): at_zero is step(0) (SequentialLR at a milestone). */
static nb_status basic_step(nb_sched *s, bool at_zero) {
    if (!groups_unchanged(s)) return nb_error_code();
    int64_t e = at_zero ? 0 : s->last_epoch + 1;
    phase ph = {0};
    double pct = 0;
    if (s->kind == S_ONECYCLE && !onecycle_where(s, e, &ph, &pct)) return nb_error_code();
    s->last_epoch = e;
    for (int g = 0; g < s->n_groups; g++) {
        nb__group *grp = &s->o->groups[g];
        grp->lr = at_zero && has_closed_form(s->kind) ? closed_form_lr(s, g)
                                                      : chainable_lr(s, g, grp->lr, &ph, pct);
        s->last_lr[g] = grp->lr;
    }
    return NB_OK;
}

static void copy_group_lrs(nb_sched *s) {
    for (int g = 0; g < s->n_groups; g++) s->last_lr[g] = s->o->groups[g].lr;
}

static nb_status step_node(nb_sched *s) {
    switch (s->kind) {
    case S_CHAINED:
        for (int i = 0; i < s->n_children; i++) {
            nb_status st = step_node(s->children[i]);
            if (st != NB_OK) return st;
        }
        copy_group_lrs(s);
        return NB_OK;
    case S_SEQUENTIAL: {
        int64_t e = s->last_epoch + 1;
        int idx = 0; /* bisect_right(milestones, e) */
        while (idx < s->n_milestones && s->milestones[idx] <= e) idx++;
        nb_sched *c = s->children[idx];
        nb_status st = basic_step(c, idx > 0 && s->milestones[idx - 1] == e);
        if (st != NB_OK) return st;
        s->last_epoch = e;
        memcpy(s->last_lr, c->last_lr, sizeof(double) * (size_t)s->n_groups);
        return NB_OK;
    }
    default:
        return basic_step(s, false);
    }
}

nb_status nb_sched_step(nb_sched *s) {
    if (!s) return nb__fail_status(NB_ERR_NULL, "sched_step: schedule is NULL");
    if (s->kind == S_PLATEAU)
        return nb__fail_status(NB_ERR_ARG, "plateau: step it with nb_sched_step_metric");
    if (!groups_unchanged(s)) return nb_error_code();
    return step_node(s);
}

/* ReduceLROnPlateau.step(metrics). */
static bool is_better(const nb_sched *s, double a, double best) {
    if (s->mode == NB_PLATEAU_MIN)
        return s->threshold_mode == NB_THRESHOLD_REL ? a < best * (1. - s->threshold)
                                                     : a < best - s->threshold;
    return s->threshold_mode == NB_THRESHOLD_REL ? a > best * (s->threshold + 1.)
                                                 : a > best + s->threshold;
}

nb_status nb_sched_step_metric(nb_sched *s, double current) {
    if (!s) return nb__fail_status(NB_ERR_NULL, "sched_step_metric: schedule is NULL");
    if (s->kind != S_PLATEAU)
        return nb__fail_status(NB_ERR_ARG, "%s: only plateau steps on a metric; use nb_sched_step",
                               kind_names[s->kind]);
    if (!groups_unchanged(s)) return nb_error_code();
    s->last_epoch++;
    if (is_better(s, current, s->best)) {
        s->best = current;
        s->num_bad_epochs = 0;
    } else {
        s->num_bad_epochs++;
    }
    if (s->cooldown_counter > 0) { /* in_cooldown: bad epochs are ignored */
        s->cooldown_counter--;
        s->num_bad_epochs = 0;
    }
    if (s->num_bad_epochs > s->patience) { /* _reduce_lr */
        for (int g = 0; g < s->n_groups; g++) {
            double old_lr = s->o->groups[g].lr, scaled = old_lr * s->factor;
            double new_lr = s->min_lr > scaled ? s->min_lr : scaled; /* Python's max */
            if (old_lr - new_lr > s->eps) s->o->groups[g].lr = new_lr;
        }
        s->cooldown_counter = s->cooldown;
        s->num_bad_epochs = 0;
    }
    copy_group_lrs(s);
    return NB_OK;
}

double nb_sched_get_last_lr(const nb_sched *s, int group) {
    if (!s) return nb__fail(NB_ERR_NULL, "sched_get_last_lr: schedule is NULL"), NAN;
    if (group < 0 || group >= s->n_groups)
        return nb__fail(NB_ERR_ARG, "sched_get_last_lr: group %d is out of range (the schedule has "
                        "%d)", group, s->n_groups), NAN;
    return s->last_lr[group];
}

/* ---------------------------------------------------------------- constructors */

/* Checks s, attaches it and performs the initial step; frees s and returns NULL on failure. */
static nb_sched *start(nb_sched *s) {
    if (!check_params(s, kind_names[s->kind])) {
        nb_sched_free(s);
        return NULL;
    }
    attach(s);
    if (basic_step(s, false) != NB_OK) {
        nb_sched_free(s);
        return NULL;
    }
    return s;
}

nb_sched *nb_steplr_new(nb_optim *o, int step_size, double gamma) {
    nb_sched *s = sched_alloc(o, S_STEP, 0);
    if (!s) return NULL;
    s->step_size = step_size;
    s->gamma = gamma;
    return start(s);
}

static int cmp_int64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

nb_sched *nb_multisteplr_new(nb_optim *o, int n, const int *milestones, double gamma) {
    if (n < 0 || (n > 0 && !milestones))
        return nb__fail(NB_ERR_ARG, "multisteplr: %d milestones at %p", n, (const void *)milestones);
    nb_sched *s = sched_alloc(o, S_MULTISTEP, n);
    if (!s) return NULL;
    for (int i = 0; i < n; i++) s->milestones[i] = milestones[i];
    qsort(s->milestones, (size_t)n, sizeof(int64_t), cmp_int64);
    s->gamma = gamma;
    return start(s);
}

nb_sched *nb_exponentiallr_new(nb_optim *o, double gamma) {
    nb_sched *s = sched_alloc(o, S_EXPONENTIAL, 0);
    if (!s) return NULL;
    s->gamma = gamma;
    return start(s);
}

nb_sched *nb_cosinelr_new(nb_optim *o, int T_max, double eta_min) {
    nb_sched *s = sched_alloc(o, S_COSINE, 0);
    if (!s) return NULL;
    s->T_max = T_max;
    s->eta_min = eta_min;
    return start(s);
}

nb_sched *nb_linearlr_new(nb_optim *o, double start_factor, double end_factor, int total_iters) {
    nb_sched *s = sched_alloc(o, S_LINEAR, 0);
    if (!s) return NULL;
    s->start_factor = start_factor;
    s->end_factor = end_factor;
    s->total_iters = total_iters;
    return start(s);
}

/* A zero option means torch's default; NB_ZERO (negative zero) / NB_ZERO_INT mean 0. */
static double or_default(double v, double dflt) {
    if (v != 0) return v;
    return signbit(v) ? 0.0 : dflt;
}
static int64_t or_default_int(int v, int dflt) { return v == NB_ZERO_INT ? 0 : v == 0 ? dflt : v; }
static bool is_unset(double v) { return v == 0 && !signbit(v); }

nb_sched *nb_plateau_new(nb_optim *o, nb_plateau_opts opts) {
    nb_sched *s = sched_alloc(o, S_PLATEAU, 0);
    if (!s) return NULL;
    s->mode = (int)opts.mode;
    s->factor = or_default(opts.factor, 0.1);
    s->patience = or_default_int(opts.patience, 10);
    s->threshold = or_default(opts.threshold, 1e-4);
    s->threshold_mode = (int)opts.threshold_mode;
    s->cooldown = opts.cooldown == NB_ZERO_INT ? 0 : opts.cooldown;
    s->min_lr = or_default(opts.min_lr, 0);
    s->eps = or_default(opts.eps, 1e-8);
    s->best = s->mode == NB_PLATEAU_MAX ? -INFINITY : INFINITY; /* _reset: mode_worse */
    s->last_epoch = 0;
    if (!check_params(s, "plateau")) {
        nb_sched_free(s);
        return NULL;
    }
    return s;
}

/* Momentum cycling needs a momentum (SGD, RMSprop; Adam's beta1 when beta1_ok).  The cycle's
 * largest momentum is set once here so that any momentum buffers exist before the first step. */
static bool momentum_setup(nb_sched *s, const char *who, bool beta1_ok, double base, double max) {
    if (!nb__optim_has_momentum(s->o, beta1_ok))
        return nb__fail(NB_ERR_ARG, "%s: optimizer must support momentum with cycle_momentum "
                        "enabled (%s has none: set .no_cycle_momentum)", who,
                        nb__optim_name(s->o->kind)), false;
    bool beta1 = s->o->kind == NB__ADAM || s->o->kind == NB__ADAMW;
    if (!(base >= 0 && max >= 0 && isfinite(base) && isfinite(max) && (!beta1 || (base < 1 && max < 1))))
        return nb__fail(NB_ERR_ARG, "%s: momentums must be finite and >= 0%s (base %g, max %g)", who,
                        beta1 ? " and < 1 (they are Adam's beta1)" : "", base, max), false;
    for (int g = 0; g < s->n_groups; g++) {
        s->base_momentums[g] = base;
        s->max_momentums[g] = max;
        if (nb__optim_set_momentum(s->o, g, base > max ? base : max) != NB_OK) return false;
    }
    return true;
}

nb_sched *nb_cycliclr_new(nb_optim *o, nb_cyclic_opts opts) {
    const char *who = "cycliclr";
    if (is_unset(opts.base_lr) || is_unset(opts.max_lr))
        return nb__fail(NB_ERR_ARG, "%s: base_lr and max_lr are required (write NB_ZERO for 0)", who);
    if (!(opts.base_lr >= 0 && opts.max_lr >= 0 && isfinite(opts.base_lr) && isfinite(opts.max_lr)))
        return nb__fail(NB_ERR_ARG, "%s: Invalid learning rate: base_lr %g, max_lr %g", who,
                        opts.base_lr, opts.max_lr);
    int64_t up = or_default_int(opts.step_size_up, 2000);
    int64_t down = opts.step_size_down == 0 ? up : or_default_int(opts.step_size_down, 0);
    if (up <= 0 || down <= 0)
        return nb__fail(NB_ERR_ARG, "%s: step_size_up and step_size_down must be > 0 (got %lld, "
                        "%lld)", who, (long long)up, (long long)down);
    nb_sched *s = sched_alloc(o, S_CYCLIC, 0);
    if (!s) return NULL;
    s->total_size = (double)up + (double)down;
    s->step_ratio = (double)up / s->total_size;
    s->mode = (int)opts.mode;
    s->gamma = or_default(opts.gamma, 1.);
    s->cycle_momentum = !opts.no_cycle_momentum;
    if (!check_params(s, who) ||
        (s->cycle_momentum && !momentum_setup(s, who, false, or_default(opts.base_momentum, 0.8),
                                              or_default(opts.max_momentum, 0.9)))) {
        nb_sched_free(s);
        return NULL;
    }
    for (int g = 0; g < s->n_groups; g++) {
        o->groups[g].lr = or_default(opts.base_lr, 0);
        s->max_lrs[g] = opts.max_lr;
    }
    /* torch runs the initial step with base_lrs = the groups' initial_lr, then sets base_lrs. */
    attach(s);
    if (basic_step(s, false) != NB_OK) {
        nb_sched_free(s);
        return NULL;
    }
    for (int g = 0; g < s->n_groups; g++) s->base_lrs[g] = or_default(opts.base_lr, 0);
    return s;
}

nb_sched *nb_onecyclelr_new(nb_optim *o, nb_onecycle_opts opts) {
    const char *who = "onecyclelr";
    if (is_unset(opts.max_lr) || !(opts.max_lr >= 0 && isfinite(opts.max_lr)))
        return nb__fail(NB_ERR_ARG, "%s: max_lr is required and must be finite and >= 0, got %g", who,
                        opts.max_lr);
    double div = or_default(opts.div_factor, 25.), final_div = or_default(opts.final_div_factor, 1e4);
    if (!(div > 0 && final_div > 0 && isfinite(div) && isfinite(final_div)))
        return nb__fail(NB_ERR_ARG, "%s: div_factor and final_div_factor must be finite and > 0 (got %g, %g)",
                        who, div, final_div);
    nb_sched *s = sched_alloc(o, S_ONECYCLE, 0);
    if (!s) return NULL;
    s->total_steps = opts.total_steps;
    s->pct_start = or_default(opts.pct_start, 0.3);
    s->anneal = (int)opts.anneal_strategy;
    s->three_phase = opts.three_phase;
    s->cycle_momentum = !opts.no_cycle_momentum;
    if (!check_params(s, who) ||
        (s->cycle_momentum && !momentum_setup(s, who, true, or_default(opts.base_momentum, 0.85),
                                              or_default(opts.max_momentum, 0.95)))) {
        nb_sched_free(s);
        return NULL;
    }
    for (int g = 0; g < s->n_groups; g++) {
        nb__group *grp = &o->groups[g];
        grp->initial_lr = opts.max_lr / div;
        grp->has_initial_lr = true;
        s->max_lrs[g] = opts.max_lr;
        s->min_lrs[g] = grp->initial_lr / final_div;
        if (s->cycle_momentum) nb__optim_set_momentum(o, g, s->max_momentums[g]);
    }
    attach(s);
    if (basic_step(s, false) != NB_OK) {
        nb_sched_free(s);
        return NULL;
    }
    return s;
}

/* Takes scheds[0..n) into a new composite, or frees them all. */
static nb_sched *composite_new(sched_kind kind, nb_optim *o, int n, nb_sched *const *scheds,
                               const int *milestones) {
    const char *who = kind_names[kind];
    nb_sched *s = NULL;
    bool ok = n > 0 && scheds;
    if (!ok) nb__fail(NB_ERR_ARG, "%s: %d schedules at %p", who, n, (const void *)scheds);
    for (int i = 0; ok && i < n; i++) {
        const nb_sched *c = scheds[i];
        if (!c) {
            if (nb_error_code() == NB_OK) nb__fail(NB_ERR_NULL, "%s: schedule %d is NULL", who, i);
            ok = false;
        } else if (c->kind == S_PLATEAU || (kind == S_SEQUENTIAL && is_composite(c->kind))) {
            ok = (nb__fail(NB_ERR_ARG, "%s: schedule %d (%s) cannot be %s", who, i,
                           kind_names[c->kind], kind == S_CHAINED ? "chained" : "sequenced"), false);
        } else if (c->o != (o ? o : scheds[0]->o)) {
            ok = (nb__fail(NB_ERR_ARG, "%s: expects all schedulers to belong to the same optimizer, "
                           "but got schedulers at index 0 and %d to be different", who, i), false);
        }
        for (int j = 0; ok && j < i; j++)
            if (scheds[j] == c)
                ok = (nb__fail(NB_ERR_ARG, "%s: schedule %d appears twice", who, i), false);
    }
    if (ok && kind == S_SEQUENTIAL) {
        if (!milestones && n > 1) ok = (nb__fail(NB_ERR_ARG, "%s: milestones is NULL", who), false);
        for (int i = 1; ok && i < n - 1; i++)
            if (milestones[i] <= milestones[i - 1])
                ok = (nb__fail(NB_ERR_ARG, "%s: milestones must increase (%d then %d)", who,
                               milestones[i - 1], milestones[i]), false);
        for (int i = 0; ok && i < n; i++)
            if (scheds[i]->n_groups != o->n_groups)
                ok = (nb__fail(NB_ERR_ARG, "%s: schedule %d was made for %d parameter groups, the "
                               "optimizer has %d", who, i, scheds[i]->n_groups, o->n_groups), false);
    }
    if (ok) s = sched_alloc(o ? o : scheds[0]->o, kind, kind == S_SEQUENTIAL ? n - 1 : 0);
    if (s) s->children = nb__alloc(sizeof(nb_sched *) * (size_t)n);
    if (!s || !s->children) {
        nb_sched_free(s);
        for (int i = 0; scheds && i < n; i++) {
            bool seen = false; /* free a schedule listed twice once */
            for (int j = 0; j < i && !seen; j++) seen = scheds[j] == scheds[i];
            if (!seen) nb_sched_free(scheds[i]);
        }
        return NULL;
    }
    s->n_children = n;
    memcpy(s->children, scheds, sizeof(nb_sched *) * (size_t)n);
    for (int i = 0; i < s->n_milestones; i++) s->milestones[i] = milestones[i];
    return s;
}

nb_sched *nb_chained_new(int n, nb_sched *const *scheds) {
    nb_sched *s = composite_new(S_CHAINED, NULL, n, scheds, NULL);
    if (s) copy_group_lrs(s);
    return s;
}

nb_sched *nb_sequentiallr_new(nb_optim *o, int n, nb_sched *const *scheds, const int *milestones) {
    if (!o) {
        for (int i = 0; scheds && i < n; i++) nb_sched_free(scheds[i]);
        return nb__fail(NB_ERR_NULL, "sequentiallr: optimizer is NULL");
    }
    nb_sched *s = composite_new(S_SEQUENTIAL, o, n, scheds, milestones);
    if (!s) return NULL;
    /* Reset the lr to initial_lr, undo the children's initial steps, and redo the first one. */
    for (int g = 0; g < s->n_groups; g++) o->groups[g].lr = o->groups[g].initial_lr;
    for (int i = 0; i < n; i++) s->children[i]->last_epoch--;
    nb_sched *first = s->children[0];
    if (basic_step(first, false) != NB_OK) {
        nb_sched_free(s);
        return NULL;
    }
    s->last_epoch = 0;
    memcpy(s->last_lr, first->last_lr, sizeof(double) * (size_t)s->n_groups);
    return s;
}

/* ---------------------------------------------------------------- state as JSON */

static json_t *node_json(const nb_sched *s) {
    json_t *j = json_object();
    json_object_set_new(j, "type", json_string(kind_names[s->kind]));
    const field *f = kind_fields[s->kind];
    for (int i = 0; i < n_fields(s->kind); i++) {
        const void *p = (const char *)s + f[i].offset;
        json_t *v = NULL;
        switch (f[i].type) {
        case F_NUM: v = nb__json_real(*(const double *)p); break;
        case F_INT: v = json_integer(*(const int64_t *)p); break;
        case F_BOOL: v = json_boolean(*(const bool *)p); break;
        case F_ENUM: v = json_string(f[i].names[*(const int *)p]); break;
        case F_GROUPS: v = nb__json_reals(*(double *const *)p, s->n_groups); break;
        case F_MILESTONES:
            v = json_array();
            for (int k = 0; k < s->n_milestones; k++)
                json_array_append_new(v, json_integer(s->milestones[k]));
            break;
        }
        json_object_set_new(j, f[i].key, v);
    }
    if (is_composite(s->kind)) {
        json_t *a = json_array();
        for (int i = 0; i < s->n_children; i++) json_array_append_new(a, node_json(s->children[i]));
        json_object_set_new(j, "schedulers", a);
    }
    return j;
}

char *nb_sched_state_json(const nb_sched *s) {
    if (!s) return nb__fail(NB_ERR_NULL, "sched_state_json: schedule is NULL");
    return nb__json_dump(node_json(s), "schedule state");
}

static bool read_enum(const json_t *j, const field *f, int *out, const char *where) {
    const char *v = json_string_value(json_object_get(j, f->key));
    for (int k = 0; v && f->names[k]; k++)
        if (strcmp(v, f->names[k]) == 0) {
            *out = k;
            return true;
        }
    return nb__fail(NB_ERR_ARG, "%s: '%s' must be one of the names of its values", where,
                    f->key), false;
}

/* Reads node s's fields from j into t, a copy of s whose arrays point to scratch space. */
static bool read_fields(const nb_sched *s, const json_t *j, nb_sched *t, const char *where) {
    const field *f = kind_fields[s->kind];
    int n = n_fields(s->kind);
    const char *keys[MAX_FIELDS + 2];
    keys[0] = "type";
    for (int i = 0; i < n; i++) keys[i + 1] = f[i].key;
    if (is_composite(s->kind)) keys[++n] = "schedulers";
    if (!nb__json_keys(j, keys, n + 1, where)) return false;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type || strcmp(type, kind_names[s->kind]) != 0)
        return nb__fail(NB_ERR_ARG, "%s: 'type' is %s, this schedule is %s", where,
                        type ? type : "not a string", kind_names[s->kind]), false;
    for (int i = 0; i < n_fields(s->kind); i++) {
        void *p = (char *)t + f[i].offset;
        bool ok = true;
        switch (f[i].type) {
        case F_NUM: ok = nb__json_num(j, f[i].key, p, where); break;
        case F_INT: ok = nb__json_int(j, f[i].key, p, where); break;
        case F_BOOL: ok = nb__json_bool(j, f[i].key, p, where); break;
        case F_ENUM: ok = read_enum(j, &f[i], p, where); break;
        case F_GROUPS: ok = nb__json_nums(j, f[i].key, *(double **)p, s->n_groups, where); break;
        case F_MILESTONES: {
            const json_t *a = json_object_get(j, f[i].key);
            ok = json_is_array(a) && json_array_size(a) == (size_t)s->n_milestones;
            for (int k = 0; ok && k < s->n_milestones; k++) {
                const json_t *v = json_array_get(a, (size_t)k);
                ok = json_is_integer(v);
                if (ok) t->milestones[k] = (int64_t)json_integer_value(v);
            }
            if (!ok)
                return nb__fail(NB_ERR_ARG, "%s: 'milestones' must be an array of %d integers",
                                where, s->n_milestones), false;
            break;
        }
        }
        if (!ok) return false;
    }
    if (is_composite(s->kind)) {
        const json_t *a = json_object_get(j, "schedulers");
        if (!json_is_array(a) || json_array_size(a) != (size_t)s->n_children)
            return nb__fail(NB_ERR_ARG, "%s: 'schedulers' must be an array of %d schedules", where,
                            s->n_children), false;
    }
    return check_params(t, where);
}

/* Loads node s (and its children) from j; with commit false it only checks. */
static bool load_node(nb_sched *s, const json_t *j, const char *where, bool commit) {
    nb_sched t = *s;
    size_t block_size = group_block_size(s->n_groups);
    size_t ms_size = sizeof(int64_t) * (size_t)s->n_milestones;
    double *block = nb__alloc(block_size);
    int64_t *ms = nb__alloc(ms_size);
    bool ok = block && ms;
    if (ok) {
        memcpy(block, s->base_lrs, block_size);
        set_group_arrays(&t, block);
        t.milestones = ms;
        ok = read_fields(s, j, &t, where);
    }
    if (ok && commit) {
        memcpy(s->base_lrs, block, block_size);
        if (ms_size) memcpy(s->milestones, ms, ms_size);
        const field *f = kind_fields[s->kind];
        for (int i = 0; i < n_fields(s->kind); i++) {
            size_t size = f[i].type == F_NUM ? sizeof(double) : f[i].type == F_INT ? sizeof(int64_t)
                        : f[i].type == F_BOOL ? sizeof(bool) : f[i].type == F_ENUM ? sizeof(int) : 0;
            memcpy((char *)s + f[i].offset, (const char *)&t + f[i].offset, size);
        }
    }
    nb__dealloc(block, block_size);
    nb__dealloc(ms, ms_size);
    const json_t *children = json_object_get(j, "schedulers");
    for (int i = 0; ok && i < s->n_children; i++) {
        char w[256];
        snprintf(w, sizeof w, "%s: schedulers[%d]", where, i);
        ok = load_node(s->children[i], json_array_get(children, (size_t)i), w, commit);
    }
    return ok;
}

nb_status nb_sched_load_state_json(nb_sched *s, const char *text) {
    if (!s) return nb__fail_status(NB_ERR_NULL, "sched_load_state_json: schedule is NULL");
    const char *where = "schedule state";
    json_t *root = nb__json_parse(text, where);
    if (!root) return nb_error_code();
    bool ok = load_node(s, root, where, false) && load_node(s, root, where, true);
    json_decref(root);
    return ok ? NB_OK : nb_error_code();
}
