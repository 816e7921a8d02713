/*
 * chained.c — ChainedScheduler: each step steps every schedule in order, each from the lr the
 * one before it left (the chainable form).  It owns its schedules.
 */
#include "../sched_internal.h"

static nb_status step(nb_sched *s) {
    for (int i = 0; i < s->n_children; i++) {
        nb_sched *c = s->children[i];
        nb_status st = c->kind->step(c);
        if (st != NB_OK) return st;
    }
    nb__sched_copy_group_lrs(s);
    return NB_OK;
}

static const nb__sched_field fields[] = {NB__S_LAST_LR, {0}};

const nb__sched_kind nb__chained = {
    .name = "chained", .fields = fields, .composite = true, .step = step,
};

nb_sched *nb_chained_new(int n, nb_sched *const *scheds) {
    nb_sched *s = nb__sched_composite_new(&nb__chained, NULL, n, scheds, true, "chained", 0, NULL);
    if (s) nb__sched_copy_group_lrs(s);
    return s;
}
