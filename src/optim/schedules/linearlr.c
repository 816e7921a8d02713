/*
 * linearlr.c — LinearLR: the factor goes linearly from start_factor to end_factor over
 * total_iters steps, then stays (a linear warm-up).
 *   chainable: lr_t = lr_{t-1} (1 + (end - start) / (total start + (t - 1) (end - start)))
 *   closed form: base_lr (start + (end - start) min(total, t) / total)
 */
#include "../sched_internal.h"

typedef struct {
    double start_factor, end_factor;
    int64_t total_iters;
} linearlr;

static bool check(const nb_sched *s, const char *who) {
    const linearlr *k = s->state;
    if (!(k->start_factor > 0 && k->start_factor <= 1))
        return nb__fail(NB_ERR_ARG, "%s: Starting multiplicative factor expected to be in (0, 1] "
                        "(the chainable form divides by it), got %g", who, k->start_factor), false;
    if (!(k->end_factor >= 0 && k->end_factor <= 1))
        return nb__fail(NB_ERR_ARG, "%s: Ending multiplicative factor expected to be between 0 "
                        "and 1, got %g", who, k->end_factor), false;
    if (k->total_iters <= 0)
        return nb__fail(NB_ERR_ARG, "%s: total_iters must be > 0, got %lld", who,
                        (long long)k->total_iters), false;
    return true;
}

static double get_lr(nb_sched *s, int g, double lr) {
    (void)g;
    const linearlr *k = s->state;
    int64_t e = s->last_epoch;
    if (e == 0) return lr * k->start_factor;
    if (e > k->total_iters) return lr;
    return lr * (1. + (k->end_factor - k->start_factor) /
                          ((double)k->total_iters * k->start_factor +
                           (double)(e - 1) * (k->end_factor - k->start_factor)));
}

static double closed_form(const nb_sched *s, int g) {
    const linearlr *k = s->state;
    double m = (double)(k->total_iters < s->last_epoch ? k->total_iters : s->last_epoch);
    return s->base_lrs[g] *
           (k->start_factor + (k->end_factor - k->start_factor) * m / (double)k->total_iters);
}

static const nb__sched_field fields[] = {
    NB__S_COMMON, NB__S_NUM("start_factor", linearlr, start_factor),
    NB__S_NUM("end_factor", linearlr, end_factor), NB__S_INT("total_iters", linearlr, total_iters),
    {0},
};

const nb__sched_kind nb__linearlr = {
    .name = "linearlr", .fields = fields, .state_size = sizeof(linearlr), .check = check,
    .get_lr = get_lr, .closed_form = closed_form, .step = nb__sched_step_basic,
};

nb_sched *nb_linearlr_new(nb_optim *o, double start_factor, double end_factor, int total_iters) {
    nb_sched *s = nb__sched_alloc(o, &nb__linearlr, 0);
    if (!s) return NULL;
    linearlr *k = s->state;
    k->start_factor = start_factor;
    k->end_factor = end_factor;
    k->total_iters = total_iters;
    return nb__sched_start(s);
}
