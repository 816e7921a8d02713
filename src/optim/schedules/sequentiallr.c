/*
 * sequentiallr.c — SequentialLR: schedule k runs from milestones[k-1] on; at a milestone the
 * next schedule starts with step(0), from its closed form where it has one, as torch's.  It owns
 * its schedules, which are neither composite nor plateau.
 */
#include "../sched_internal.h"

#include <string.h>

static bool check(const nb_sched *s, const char *who) {
    for (int i = 1; i < s->n_milestones; i++)
        if (s->milestones[i] <= s->milestones[i - 1])
            return nb__fail(NB_ERR_ARG, "%s: milestones must increase (%lld then %lld)", who,
                            (long long)s->milestones[i - 1], (long long)s->milestones[i]), false;
    for (int i = 0; i < s->n_children; i++)
        if (s->children[i]->n_groups != s->o->n_groups)
            return nb__fail(NB_ERR_ARG, "%s: schedule %d was made for %d parameter groups, the "
                            "optimizer has %d", who, i, s->children[i]->n_groups, s->o->n_groups),
                   false;
    return true;
}

static nb_status step(nb_sched *s) {
    int64_t e = s->last_epoch + 1;
    int idx = 0; /* bisect_right(milestones, e) */
    while (idx < s->n_milestones && s->milestones[idx] <= e) idx++;
    nb_sched *c = s->children[idx];
    nb_status st = nb__sched_basic_step(c, idx > 0 && s->milestones[idx - 1] == e);
    if (st != NB_OK) return st;
    s->last_epoch = e;
    memcpy(s->last_lr, c->last_lr, sizeof(double) * (size_t)s->n_groups);
    return NB_OK;
}

static const nb__sched_field fields[] = {NB__S_LAST_EPOCH, NB__S_MILESTONES, NB__S_LAST_LR, {0}};

const nb__sched_kind nb__sequentiallr = {
    .name = "sequentiallr", .fields = fields, .composite = true, .check = check, .step = step,
};

nb_sched *nb_sequentiallr_new(nb_optim *o, int n, nb_sched *const *scheds, const int *milestones) {
    if (!o) {
        for (int i = 0; scheds && i < n; i++) nb_sched_free(scheds[i]);
        return nb__fail(NB_ERR_NULL, "sequentiallr: optimizer is NULL");
    }
    nb_sched *s = nb__sched_composite_new(&nb__sequentiallr, o, n, scheds, false, "sequenced",
                                          n - 1, milestones);
    if (!s) return NULL;
    /* Reset the lr to initial_lr, undo the children's initial steps, and redo the first one. */
    for (int g = 0; g < s->n_groups; g++) o->groups[g].lr = o->groups[g].initial_lr;
    for (int i = 0; i < n; i++) s->children[i]->last_epoch--;
    nb_sched *first = s->children[0];
    if (nb__sched_basic_step(first, false) != NB_OK) {
        nb_sched_free(s);
        return NULL;
    }
    s->last_epoch = 0;
    memcpy(s->last_lr, first->last_lr, sizeof(double) * (size_t)s->n_groups);
    return s;
}
