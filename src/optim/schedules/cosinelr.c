/*
 * cosinelr.c — CosineAnnealingLR in torch's recursive form:
 *   lr_t = eta_min + (lr_{t-1} - eta_min) (1 + cos(pi t / T_max)) / (1 + cos(pi (t-1) / T_max)),
 *   and lr_t = lr_{t-1} + (base_lr - eta_min) (1 - cos(pi / T_max)) / 2 when
 *   (t - 1 - T_max) % (2 T_max) == 0;
 *   closed form eta_min + (base_lr - eta_min) (1 + cos(pi t / T_max)) / 2.
 */
#include "../sched_internal.h"

typedef struct {
    int64_t T_max;
    double eta_min;
} cosinelr;

static bool check(const nb_sched *s, const char *who) {
    const cosinelr *k = s->state;
    if (k->T_max <= 0)
        return nb__fail(NB_ERR_ARG, "%s: T_max must be > 0, got %lld", who, (long long)k->T_max),
               false;
    return nb__sched_nonneg(k->eta_min, "eta_min", who);
}

/* torch's branch for _step_count == 1 and last_epoch > 0 serves schedules made with
 * last_epoch != -1, which nabla does not offer. */
static double get_lr(nb_sched *s, int g, double lr) {
    const cosinelr *k = s->state;
    int64_t e = s->last_epoch;
    double T = (double)k->T_max;
    if (e == 0) return lr;
    if ((e - 1 - k->T_max) % (2 * k->T_max) == 0)
        return lr + (s->base_lrs[g] - k->eta_min) * (1 - cos(M_PI / T)) / 2;
    return (1 + cos(M_PI * (double)e / T)) / (1 + cos(M_PI * (double)(e - 1) / T)) *
               (lr - k->eta_min) + k->eta_min;
}

static double closed_form(const nb_sched *s, int g) {
    const cosinelr *k = s->state;
    return k->eta_min + (s->base_lrs[g] - k->eta_min) *
                            (1 + cos(M_PI * (double)s->last_epoch / (double)k->T_max)) / 2;
}

static const nb__sched_field fields[] = {
    NB__S_COMMON, NB__S_INT("T_max", cosinelr, T_max), NB__S_NUM("eta_min", cosinelr, eta_min), {0},
};

const nb__sched_kind nb__cosinelr = {
    .name = "cosinelr", .fields = fields, .state_size = sizeof(cosinelr), .check = check,
    .get_lr = get_lr, .closed_form = closed_form, .step = nb__sched_step_basic,
};

nb_sched *nb_cosinelr_new(nb_optim *o, int T_max, double eta_min) {
    nb_sched *s = nb__sched_alloc(o, &nb__cosinelr, 0);
    if (!s) return NULL;
    cosinelr *k = s->state;
    k->T_max = T_max;
    k->eta_min = eta_min;
    return nb__sched_start(s);
}
