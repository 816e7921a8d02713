/*
 * multisteplr.c — MultiStepLR: lr *= gamma at each milestone, gamma^c where a milestone is
 * listed c times (torch's Counter); the milestones are kept sorted.
 *   closed form: base_lr gamma^(number of milestones <= t)   (bisect_right)
 */
#include "../sched_internal.h"

#include <stdlib.h>

typedef struct {
    double gamma;
} multisteplr;

static bool check(const nb_sched *s, const char *who) {
    const multisteplr *k = s->state;
    if (!nb__sched_gamma_ok(k->gamma, who)) return false;
    for (int i = 0; i < s->n_milestones; i++)
        if (!(s->milestones[i] >= 0 && (i == 0 || s->milestones[i] >= s->milestones[i - 1])))
            return nb__fail(NB_ERR_ARG, "%s: milestones must be >= 0 and sorted (milestone %d is "
                            "%lld)", who, i, (long long)s->milestones[i]), false;
    return true;
}

/* Number of milestones equal to e (at_most false) or <= e. */
static int milestones_count(const nb_sched *s, int64_t e, bool at_most) {
    int c = 0;
    for (int i = 0; i < s->n_milestones; i++)
        c += at_most ? s->milestones[i] <= e : s->milestones[i] == e;
    return c;
}

static double get_lr(nb_sched *s, int g, double lr) {
    (void)g;
    const multisteplr *k = s->state;
    int c = milestones_count(s, s->last_epoch, false);
    return c == 0 ? lr : lr * pow(k->gamma, c);
}

static double closed_form(const nb_sched *s, int g) {
    const multisteplr *k = s->state;
    return s->base_lrs[g] * pow(k->gamma, milestones_count(s, s->last_epoch, true));
}

static const nb__sched_field fields[] = {
    NB__S_COMMON, NB__S_MILESTONES, NB__S_NUM("gamma", multisteplr, gamma), {0},
};

const nb__sched_kind nb__multisteplr = {
    .name = "multisteplr", .fields = fields, .state_size = sizeof(multisteplr), .check = check,
    .get_lr = get_lr, .closed_form = closed_form, .step = nb__sched_step_basic,
};

static int cmp_int64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

nb_sched *nb_multisteplr_new(nb_optim *o, int n, const int *milestones, double gamma) {
    if (n < 0 || (n > 0 && !milestones))
        return nb__fail(NB_ERR_ARG, "multisteplr: %d milestones at %p", n, (const void *)milestones);
    nb_sched *s = nb__sched_alloc(o, &nb__multisteplr, n);
    if (!s) return NULL;
    for (int i = 0; i < n; i++) s->milestones[i] = milestones[i];
    qsort(s->milestones, (size_t)n, sizeof(int64_t), cmp_int64);
    ((multisteplr *)s->state)->gamma = gamma;
    return nb__sched_start(s);
}
