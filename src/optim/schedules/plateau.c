/*
 * plateau.c — ReduceLROnPlateau: steps on a metric (nb_sched_step_metric), and after more than
 * `patience` steps without an improvement beyond the threshold multiplies each group's lr by
 * factor (not below min_lr; changes smaller than eps are skipped), then waits `cooldown` steps.
 * torch's separate class: no initial step, no base_lrs.
 */
#include "../sched_internal.h"

typedef struct {
    int mode; /* nb_plateau_mode */
    double factor;
    int64_t patience;
    double threshold;
    int threshold_mode; /* nb_threshold_mode */
    int64_t cooldown;
    double min_lr, eps, best;
    int64_t num_bad_epochs, cooldown_counter;
} plateau;

static bool check(const nb_sched *s, const char *who) {
    const plateau *k = s->state;
#define REQUIRE(cond, ...) \
    if (!(cond)) return nb__fail(NB_ERR_ARG, __VA_ARGS__), false
    REQUIRE(k->factor < 1 && k->factor >= 0, "%s: Factor should be < 1.0 (and >= 0), got %g", who,
            k->factor);
    REQUIRE(k->mode == NB_PLATEAU_MIN || k->mode == NB_PLATEAU_MAX, "%s: mode %d is unknown!", who,
            k->mode);
    REQUIRE(k->threshold_mode == NB_THRESHOLD_REL || k->threshold_mode == NB_THRESHOLD_ABS,
            "%s: threshold mode %d is unknown!", who, k->threshold_mode);
    REQUIRE(k->patience >= 0, "%s: patience must be >= 0 (NB_ZERO_INT for 0), got %lld", who,
            (long long)k->patience);
    REQUIRE(k->cooldown >= 0, "%s: cooldown must be >= 0, got %lld", who, (long long)k->cooldown);
#undef REQUIRE
    return nb__sched_nonneg(k->threshold, "threshold", who) &&
           nb__sched_nonneg(k->min_lr, "min_lr", who) && nb__sched_nonneg(k->eps, "eps", who);
}

static bool is_better(const plateau *k, double a, double best) {
    if (k->mode == NB_PLATEAU_MIN)
        return k->threshold_mode == NB_THRESHOLD_REL ? a < best * (1. - k->threshold)
                                                     : a < best - k->threshold;
    return k->threshold_mode == NB_THRESHOLD_REL ? a > best * (k->threshold + 1.)
                                                 : a > best + k->threshold;
}

/* ReduceLROnPlateau.step(metrics). */
static nb_status step_metric(nb_sched *s, double current) {
    plateau *k = s->state;
    s->last_epoch++;
    if (is_better(k, current, k->best)) {
        k->best = current;
        k->num_bad_epochs = 0;
    } else {
        k->num_bad_epochs++;
    }
    if (k->cooldown_counter > 0) { /* in_cooldown: bad epochs are ignored */
        k->cooldown_counter--;
        k->num_bad_epochs = 0;
    }
    if (k->num_bad_epochs > k->patience) { /* _reduce_lr */
        for (int g = 0; g < s->n_groups; g++) {
            double old_lr = s->o->groups[g].lr, scaled = old_lr * k->factor;
            double new_lr = k->min_lr > scaled ? k->min_lr : scaled; /* Python's max */
            if (old_lr - new_lr > k->eps) s->o->groups[g].lr = new_lr;
        }
        k->cooldown_counter = k->cooldown;
        k->num_bad_epochs = 0;
    }
    nb__sched_copy_group_lrs(s);
    return NB_OK;
}

static const char *const modes[] = {"min", "max", NULL};
static const char *const threshold_modes[] = {"rel", "abs", NULL};

static const nb__sched_field fields[] = {
    NB__S_LAST_EPOCH, NB__S_LAST_LR, NB__S_ENUM("mode", plateau, mode, modes),
    NB__S_NUM("factor", plateau, factor), NB__S_INT("patience", plateau, patience),
    NB__S_NUM("threshold", plateau, threshold),
    NB__S_ENUM("threshold_mode", plateau, threshold_mode, threshold_modes),
    NB__S_INT("cooldown", plateau, cooldown), NB__S_NUM("min_lr", plateau, min_lr),
    NB__S_NUM("eps", plateau, eps), NB__S_NUM("best", plateau, best),
    NB__S_INT("num_bad_epochs", plateau, num_bad_epochs),
    NB__S_INT("cooldown_counter", plateau, cooldown_counter), {0},
};

const nb__sched_kind nb__plateau = {
    .name = "plateau", .fields = fields, .state_size = sizeof(plateau), .check = check,
    .step_metric = step_metric,
};

nb_sched *nb_plateau_new(nb_optim *o, nb_plateau_opts opts) {
    nb_sched *s = nb__sched_alloc(o, &nb__plateau, 0);
    if (!s) return NULL;
    plateau *k = s->state;
    k->mode = (int)opts.mode;
    k->factor = nb__or_default(opts.factor, 0.1);
    k->patience = nb__or_default_int(opts.patience, 10);
    k->threshold = nb__or_default(opts.threshold, 1e-4);
    k->threshold_mode = (int)opts.threshold_mode;
    k->cooldown = opts.cooldown == NB_ZERO_INT ? 0 : opts.cooldown;
    k->min_lr = nb__or_default(opts.min_lr, 0);
    k->eps = nb__or_default(opts.eps, 1e-8);
    k->best = k->mode == NB_PLATEAU_MAX ? -INFINITY : INFINITY; /* _reset: mode_worse */
    s->last_epoch = 0;
    if (!check(s, "plateau")) {
        nb_sched_free(s);
        return NULL;
    }
    return s;
}
