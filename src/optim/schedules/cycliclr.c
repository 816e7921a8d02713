/*
 * cycliclr.c — CyclicLR: the lr goes from base_lr up to max_lr in step_size_up steps and back
 * in step_size_down, the amplitude scaled by 1 (triangular), 1/2^(cycle-1) (triangular2) or
 * gamma^step (exp_range); the momentum (SGD, RMSprop) cycles inversely between max_momentum and
 * base_momentum unless switched off.  Its get_lr reads base_lrs, not the group's lr.
 */
#include "../sched_internal.h"

typedef struct {
    double *max_lrs;
    double total_size, step_ratio;
    int mode; /* nb_cyclic_mode */
    double gamma;
    bool cycle_momentum;
    double *base_momentums, *max_momentums;
} cycliclr;

static bool check(const nb_sched *s, const char *who) {
    const cycliclr *k = s->state;
    if (!(k->mode >= NB_CYCLIC_TRIANGULAR && k->mode <= NB_CYCLIC_EXP_RANGE))
        return nb__fail(NB_ERR_ARG, "%s: mode is invalid and scale_fn is None (mode %d)", who,
                        k->mode), false;
    if (!(k->total_size > 0 && k->step_ratio > 0 && k->step_ratio <= 1))
        return nb__fail(NB_ERR_ARG, "%s: step sizes must be > 0 (total_size %g, step_ratio %g)",
                        who, k->total_size, k->step_ratio), false;
    return nb__sched_gamma_ok(k->gamma, who);
}

/* CyclicLR.get_lr for group g at last_epoch; sets the group's momentum when it cycles. */
static double get_lr(nb_sched *s, int g, double lr) {
    (void)lr;
    const cycliclr *k = s->state;
    int64_t e = s->last_epoch;
    double cycle = floor(1 + (double)e / k->total_size);
    double x = 1. + (double)e / k->total_size - cycle;
    double scale_factor = x <= k->step_ratio ? x / k->step_ratio : (x - 1) / (k->step_ratio - 1);
    double scale = k->mode == NB_CYCLIC_TRIANGULAR    ? 1.                         /* of cycle */
                   : k->mode == NB_CYCLIC_TRIANGULAR2 ? 1 / pow(2., cycle - 1)      /* of cycle */
                                                      : pow(k->gamma, (double)e); /* of step */
    double base_height = (k->max_lrs[g] - s->base_lrs[g]) * scale_factor;
    if (k->cycle_momentum) {
        double m_height = (k->max_momentums[g] - k->base_momentums[g]) * scale_factor;
        nb__optim_set_momentum(s->o, g, k->max_momentums[g] - m_height * scale);
    }
    return s->base_lrs[g] + base_height * scale;
}

static const char *const modes[] = {"triangular", "triangular2", "exp_range", NULL};

static const nb__sched_field fields[] = {
    NB__S_COMMON, NB__S_GROUPS("max_lrs", cycliclr, max_lrs),
    NB__S_NUM("total_size", cycliclr, total_size), NB__S_NUM("step_ratio", cycliclr, step_ratio),
    NB__S_ENUM("mode", cycliclr, mode, modes), NB__S_NUM("gamma", cycliclr, gamma),
    NB__S_BOOL("cycle_momentum", cycliclr, cycle_momentum),
    NB__S_GROUPS("base_momentums", cycliclr, base_momentums),
    NB__S_GROUPS("max_momentums", cycliclr, max_momentums), {0},
};

const nb__sched_kind nb__cycliclr = {
    .name = "cycliclr", .fields = fields, .state_size = sizeof(cycliclr), .check = check,
    .get_lr = get_lr, .step = nb__sched_step_basic,
};

nb_sched *nb_cycliclr_new(nb_optim *o, nb_cyclic_opts opts) {
    const char *who = "cycliclr";
    if (nb__is_unset(opts.base_lr) || nb__is_unset(opts.max_lr))
        return nb__fail(NB_ERR_ARG, "%s: base_lr and max_lr are required (write NB_ZERO for 0)", who);
    if (!(opts.base_lr >= 0 && opts.max_lr >= 0 && isfinite(opts.base_lr) && isfinite(opts.max_lr)))
        return nb__fail(NB_ERR_ARG, "%s: Invalid learning rate: base_lr %g, max_lr %g", who,
                        opts.base_lr, opts.max_lr);
    int64_t up = nb__or_default_int(opts.step_size_up, 2000);
    int64_t down = opts.step_size_down == 0 ? up : nb__or_default_int(opts.step_size_down, 0);
    if (up <= 0 || down <= 0)
        return nb__fail(NB_ERR_ARG, "%s: step_size_up and step_size_down must be > 0 (got %lld, "
                        "%lld)", who, (long long)up, (long long)down);
    nb_sched *s = nb__sched_alloc(o, &nb__cycliclr, 0);
    if (!s) return NULL;
    cycliclr *k = s->state;
    k->total_size = (double)up + (double)down;
    k->step_ratio = (double)up / k->total_size;
    k->mode = (int)opts.mode;
    k->gamma = nb__or_default(opts.gamma, 1.);
    k->cycle_momentum = !opts.no_cycle_momentum;
    if (!check(s, who) ||
        (k->cycle_momentum &&
         !nb__sched_momentum_setup(s, who, false, nb__or_default(opts.base_momentum, 0.8),
                                   nb__or_default(opts.max_momentum, 0.9), k->base_momentums,
                                   k->max_momentums))) {
        nb_sched_free(s);
        return NULL;
    }
    for (int g = 0; g < s->n_groups; g++) {
        o->groups[g].lr = nb__or_default(opts.base_lr, 0);
        k->max_lrs[g] = opts.max_lr;
    }
    /* torch runs the initial step with base_lrs = the groups' initial_lr, then sets base_lrs. */
    nb__sched_attach(s);
    if (nb__sched_basic_step(s, false) != NB_OK) {
        nb_sched_free(s);
        return NULL;
    }
    for (int g = 0; g < s->n_groups; g++) s->base_lrs[g] = nb__or_default(opts.base_lr, 0);
    return s;
}
