/*
 * exponentiallr.c — ExponentialLR: lr *= gamma every step; closed form base_lr gamma^t.
 */
#include "../sched_internal.h"

typedef struct {
    double gamma;
} exponentiallr;

static bool check(const nb_sched *s, const char *who) {
    return nb__sched_gamma_ok(((const exponentiallr *)s->state)->gamma, who);
}

static double get_lr(nb_sched *s, int g, double lr) {
    (void)g;
    return s->last_epoch == 0 ? lr : lr * ((const exponentiallr *)s->state)->gamma;
}

static double closed_form(const nb_sched *s, int g) {
    return s->base_lrs[g] * pow(((const exponentiallr *)s->state)->gamma, (double)s->last_epoch);
}

static const nb__sched_field fields[] = {
    NB__S_COMMON, NB__S_NUM("gamma", exponentiallr, gamma), {0},
};

const nb__sched_kind nb__exponentiallr = {
    .name = "exponentiallr", .fields = fields, .state_size = sizeof(exponentiallr), .check = check,
    .get_lr = get_lr, .closed_form = closed_form, .step = nb__sched_step_basic,
};

nb_sched *nb_exponentiallr_new(nb_optim *o, double gamma) {
    nb_sched *s = nb__sched_alloc(o, &nb__exponentiallr, 0);
    if (!s) return NULL;
    ((exponentiallr *)s->state)->gamma = gamma;
    return nb__sched_start(s);
}
