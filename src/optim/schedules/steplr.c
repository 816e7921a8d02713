/*
 * steplr.c — StepLR: lr *= gamma every step_size steps.
 *   chainable: lr_t = lr_{t-1} gamma when t > 0 and t % step_size == 0
 *   closed form: base_lr gamma^(t // step_size)
 */
#include "../sched_internal.h"

typedef struct {
    int64_t step_size;
    double gamma;
} steplr;

static bool check(const nb_sched *s, const char *who) {
    const steplr *k = s->state;
    if (k->step_size <= 0)
        return nb__fail(NB_ERR_ARG, "%s: step_size must be > 0, got %lld", who,
                        (long long)k->step_size), false;
    return nb__sched_gamma_ok(k->gamma, who);
}

static double get_lr(nb_sched *s, int g, double lr) {
    (void)g;
    const steplr *k = s->state;
    int64_t e = s->last_epoch;
    return (e == 0 || e % k->step_size != 0) ? lr : lr * k->gamma;
}

static double closed_form(const nb_sched *s, int g) {
    const steplr *k = s->state;
    return s->base_lrs[g] * pow(k->gamma, (double)(s->last_epoch / k->step_size)); /* e >= 0 */
}

static const nb__sched_field fields[] = {
    NB__S_COMMON, NB__S_INT("step_size", steplr, step_size), NB__S_NUM("gamma", steplr, gamma), {0},
};

const nb__sched_kind nb__steplr = {
    .name = "steplr", .fields = fields, .state_size = sizeof(steplr), .check = check,
    .get_lr = get_lr, .closed_form = closed_form, .step = nb__sched_step_basic,
};

nb_sched *nb_steplr_new(nb_optim *o, int step_size, double gamma) {
    nb_sched *s = nb__sched_alloc(o, &nb__steplr, 0);
    if (!s) return NULL;
    steplr *k = s->state;
    k->step_size = step_size;
    k->gamma = gamma;
    return nb__sched_start(s);
}
