/*
 * onecyclelr.c — OneCycleLR: the lr anneals (cos or linear) from max_lr / div_factor up to
 * max_lr over pct_start of total_steps, then down to initial_lr / final_div_factor (three_phase:
 * up, back down to the initial lr, then to the minimum); momentum, or Adam's beta1, cycles
 * inversely between max_momentum and base_momentum unless switched off.  Stepping past
 * total_steps is an error, as in torch.
 */
#include "../sched_internal.h"

typedef struct {
    int64_t total_steps;
    double pct_start;
    int anneal; /* nb_anneal_strategy */
    bool three_phase, cycle_momentum;
    double *max_lrs, *min_lrs, *base_momentums, *max_momentums;
} onecyclelr;

static bool check(const nb_sched *s, const char *who) {
    const onecyclelr *k = s->state;
    if (k->total_steps <= 0)
        return nb__fail(NB_ERR_ARG, "%s: Expected positive integer total_steps, but got %lld", who,
                        (long long)k->total_steps), false;
    if (!(k->pct_start >= 0 && k->pct_start <= 1))
        return nb__fail(NB_ERR_ARG, "%s: Expected float between 0 and 1 pct_start, but got %g",
                        who, k->pct_start), false;
    if (k->anneal != NB_ANNEAL_COS && k->anneal != NB_ANNEAL_LINEAR)
        return nb__fail(NB_ERR_ARG, "%s: anneal_strategy must by one of 'cos' or 'linear', "
                        "instead got %d", who, k->anneal), false;
    return true;
}

/* The phases: end step and, per phase, where lr and momentum start and end. */
enum { V_INITIAL, V_MAX, V_MIN, M_MAX, M_BASE };
typedef struct {
    double end_step;
    int start_lr, end_lr, start_m, end_m;
} phase;

static int phases(const onecyclelr *k, phase *ph) {
    double T = (double)k->total_steps;
    if (k->three_phase) {
        ph[0] = (phase){k->pct_start * T - 1, V_INITIAL, V_MAX, M_MAX, M_BASE};
        ph[1] = (phase){2 * k->pct_start * T - 2, V_MAX, V_INITIAL, M_BASE, M_MAX};
        ph[2] = (phase){T - 1, V_INITIAL, V_MIN, M_MAX, M_MAX};
        return 3;
    }
    ph[0] = (phase){k->pct_start * T - 1, V_INITIAL, V_MAX, M_MAX, M_BASE};
    ph[1] = (phase){T - 1, V_MAX, V_MIN, M_BASE, M_MAX};
    return 2;
}

static double value(const nb_sched *s, int g, int which) {
    const onecyclelr *k = s->state;
    switch (which) {
    case V_INITIAL: return s->o->groups[g].initial_lr;
    case V_MAX: return k->max_lrs[g];
    case V_MIN: return k->min_lrs[g];
    case M_MAX: return k->max_momentums[g];
    default: return k->base_momentums[g];
    }
}

/* _annealing_cos / _annealing_linear */
static double anneal(int strategy, double start, double end, double pct) {
    if (strategy == NB_ANNEAL_LINEAR) return (end - start) * pct + start;
    double cos_out = cos(M_PI * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
}

/* The phase step e is in, and how far through it; false (with torch's error) past total_steps
 * or in a phase of zero length, where torch divides by zero. */
static bool where(const nb_sched *s, int64_t e, phase *out, double *pct) {
    const onecyclelr *k = s->state;
    if (e > k->total_steps)
        return nb__fail(NB_ERR_ARG, "onecyclelr: Tried to step %lld times. The specified number "
                        "of total steps is %lld", (long long)(e + 1), (long long)k->total_steps), false;
    phase ph[3];
    int n = phases(k, ph), i = 0;
    double start_step = 0;
    while (i < n - 1 && !((double)e <= ph[i].end_step)) /* the last phase takes the rest */
        start_step = ph[i++].end_step;
    if (ph[i].end_step == start_step)
        return nb__fail(NB_ERR_ARG, "onecyclelr: phase %d has zero length (total_steps %lld, "
                        "pct_start %g): torch divides by zero here", i, (long long)k->total_steps,
                        k->pct_start), false;
    *pct = ((double)e - start_step) / (ph[i].end_step - start_step);
    *out = ph[i];
    return true;
}

static bool can_step(const nb_sched *s, int64_t e) {
    phase ph;
    double pct;
    return where(s, e, &ph, &pct);
}

/* OneCycleLR.get_lr for group g at last_epoch (can_step has passed); sets the group's momentum
 * when it cycles. */
static double get_lr(nb_sched *s, int g, double lr) {
    (void)lr;
    const onecyclelr *k = s->state;
    phase ph = {0};
    double pct = 0;
    where(s, s->last_epoch, &ph, &pct);
    if (k->cycle_momentum)
        nb__optim_set_momentum(s->o, g, anneal(k->anneal, value(s, g, ph.start_m),
                                               value(s, g, ph.end_m), pct));
    return anneal(k->anneal, value(s, g, ph.start_lr), value(s, g, ph.end_lr), pct);
}

static const char *const anneal_names[] = {"cos", "linear", NULL};

static const nb__sched_field fields[] = {
    NB__S_COMMON, NB__S_INT("total_steps", onecyclelr, total_steps),
    NB__S_NUM("pct_start", onecyclelr, pct_start),
    NB__S_ENUM("anneal_strategy", onecyclelr, anneal, anneal_names),
    NB__S_BOOL("three_phase", onecyclelr, three_phase),
    NB__S_BOOL("cycle_momentum", onecyclelr, cycle_momentum),
    NB__S_GROUPS("max_lrs", onecyclelr, max_lrs), NB__S_GROUPS("min_lrs", onecyclelr, min_lrs),
    NB__S_GROUPS("base_momentums", onecyclelr, base_momentums),
    NB__S_GROUPS("max_momentums", onecyclelr, max_momentums), {0},
};

const nb__sched_kind nb__onecyclelr = {
    .name = "onecyclelr", .fields = fields, .state_size = sizeof(onecyclelr), .check = check,
    .get_lr = get_lr, .can_step = can_step, .step = nb__sched_step_basic,
};

nb_sched *nb_onecyclelr_new(nb_optim *o, nb_onecycle_opts opts) {
    const char *who = "onecyclelr";
    if (nb__is_unset(opts.max_lr) || !(opts.max_lr >= 0 && isfinite(opts.max_lr)))
        return nb__fail(NB_ERR_ARG, "%s: max_lr is required and must be finite and >= 0, got %g", who,
                        opts.max_lr);
    double div = nb__or_default(opts.div_factor, 25.);
    double final_div = nb__or_default(opts.final_div_factor, 1e4);
    if (!(div > 0 && final_div > 0 && isfinite(div) && isfinite(final_div)))
        return nb__fail(NB_ERR_ARG, "%s: div_factor and final_div_factor must be finite and > 0 (got %g, %g)",
                        who, div, final_div);
    nb_sched *s = nb__sched_alloc(o, &nb__onecyclelr, 0);
    if (!s) return NULL;
    onecyclelr *k = s->state;
    k->total_steps = opts.total_steps;
    k->pct_start = nb__or_default(opts.pct_start, 0.3);
    k->anneal = (int)opts.anneal_strategy;
    k->three_phase = opts.three_phase;
    k->cycle_momentum = !opts.no_cycle_momentum;
    if (!check(s, who) ||
        (k->cycle_momentum &&
         !nb__sched_momentum_setup(s, who, true, nb__or_default(opts.base_momentum, 0.85),
                                   nb__or_default(opts.max_momentum, 0.95), k->base_momentums,
                                   k->max_momentums))) {
        nb_sched_free(s);
        return NULL;
    }
    for (int g = 0; g < s->n_groups; g++) {
        nb__group *grp = &o->groups[g];
        grp->initial_lr = opts.max_lr / div;
        grp->has_initial_lr = true;
        k->max_lrs[g] = opts.max_lr;
        k->min_lrs[g] = grp->initial_lr / final_div;
        if (k->cycle_momentum) nb__optim_set_momentum(o, g, k->max_momentums[g]);
    }
    nb__sched_attach(s);
    if (nb__sched_basic_step(s, false) != NB_OK) {
        nb_sched_free(s);
        return NULL;
    }
    return s;
}
