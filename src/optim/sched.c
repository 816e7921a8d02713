/*
 * sched.c — what every learning-rate schedule shares: making and freeing, the life of a
 * schedule as torch's _LRScheduler, stepping, and the state as JSON.  Each kind's formulas, checks
 * and constructor are in schedules/<kind>.c (torch/optim/lr_scheduler.py of torch 1.13, line by
 * line, in double, so the learning rates agree with torch's to the last bit or nearly).
 *
 * The life of a schedule, as torch's _LRScheduler:
 *  - construction sets each group's initial_lr if it has none (torch's setdefault: the first
 *    schedule made on an optimiser decides it), takes base_lrs from it, sets last_epoch = -1 and
 *    performs one step, which moves last_epoch to 0 and writes the epoch-0 lr into the groups;
 *  - each step adds one to last_epoch and sets each group's lr from its current lr (the
 *    chainable form), so schedules compose and a change made from outside is carried along;
 *  - SequentialLR starts a schedule at its milestone with step(0): last_epoch = 0 and, where
 *    torch has one, the closed form in place of the chainable one.
 * ReduceLROnPlateau is torch's separate class: it steps on a metric and has no initial step.
 */
#include "sched_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NB__SCHED_KIND_ADDRESS(k) &nb__##k,
const nb__sched_kind *const nb__sched_kinds[] = {NB__SCHED_KINDS(NB__SCHED_KIND_ADDRESS) NULL};
#undef NB__SCHED_KIND_ADDRESS

/* ---------------------------------------------------------------- fields */

static int n_fields(const nb__sched_kind *k) {
    int n = 0;
    while (k->fields[n].key) n++;
    return n;
}

static void *field_at(const nb_sched *s, const void *state, const nb__sched_field *f) {
    return (char *)(f->in_state ? state : (const void *)s) + f->offset;
}

/* The per-group arrays: base_lrs, last_lr, then the kind's, in one block. */
static int n_group_arrays(const nb__sched_kind *k) {
    int n = 2;
    for (const nb__sched_field *f = k->fields; f->key; f++) n += f->in_state && f->type == NB__F_GROUPS;
    return n;
}

static size_t group_block_size(const nb__sched_kind *k, int n_groups) {
    return sizeof(double) * (size_t)n_group_arrays(k) * (size_t)n_groups;
}

/* Points the per-group arrays of header s and kind struct state into block. */
static void set_group_arrays(nb_sched *s, void *state, double *block) {
    size_t n = (size_t)s->n_groups;
    s->base_lrs = block;
    s->last_lr = block + n;
    int k = 2;
    for (const nb__sched_field *f = s->kind->fields; f->key; f++)
        if (f->in_state && f->type == NB__F_GROUPS)
            *(double **)field_at(s, state, f) = block + (size_t)k++ * n;
}

/* ---------------------------------------------------------------- making and freeing */

void nb_sched_free(nb_sched *s) {
    if (!s) return;
    for (int i = 0; i < s->n_children; i++) nb_sched_free(s->children[i]);
    nb__dealloc(s->children, sizeof(nb_sched *) * (size_t)s->n_children);
    nb__dealloc(s->milestones, sizeof(int64_t) * (size_t)s->n_milestones);
    nb__dealloc(s->base_lrs, group_block_size(s->kind, s->n_groups));
    nb__dealloc(s->state, s->kind->state_size);
    nb__dealloc(s, sizeof *s);
}

nb_sched *nb__sched_alloc(nb_optim *o, const nb__sched_kind *kind, int n_milestones) {
    if (!o) return nb__fail(NB_ERR_NULL, "%s: optimizer is NULL", kind->name);
    nb_sched *s = nb__alloc(sizeof *s);
    if (!s) return NULL;
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->o = o;
    s->n_groups = o->n_groups;
    size_t block_size = group_block_size(kind, s->n_groups);
    double *block = nb__alloc(block_size);
    s->state = block ? nb__alloc(kind->state_size) : NULL;
    if (!s->state) {
        nb__dealloc(block, block ? block_size : 0);
        nb__dealloc(s, sizeof *s);
        return NULL;
    }
    memset(block, 0, block_size);
    memset(s->state, 0, kind->state_size);
    set_group_arrays(s, s->state, block);
    nb__sched_copy_group_lrs(s);
    if (n_milestones > 0) {
        s->milestones = nb__alloc(sizeof(int64_t) * (size_t)n_milestones);
        if (!s->milestones) {
            nb_sched_free(s);
            return NULL;
        }
        s->n_milestones = n_milestones;
    }
    return s;
}

bool nb__sched_gamma_ok(double gamma, const char *who) {
    if (gamma > 0 && isfinite(gamma)) return true; /* !(gamma > 0) also catches NaN */
    return nb__fail(NB_ERR_ARG, "%s: gamma must be finite and > 0, got %g", who, gamma), false;
}

bool nb__sched_nonneg(double v, const char *what, const char *who) {
    if (v >= 0 && isfinite(v)) return true;
    return nb__fail(NB_ERR_ARG, "%s: %s must be finite and >= 0, got %g", who, what, v), false;
}

static bool check(const nb_sched *s, const char *who) {
    return !s->kind->check || s->kind->check(s, who);
}

void nb__sched_attach(nb_sched *s) {
    for (int g = 0; g < s->n_groups; g++) {
        nb__group *grp = &s->o->groups[g];
        if (!grp->has_initial_lr) {
            grp->initial_lr = grp->lr;
            grp->has_initial_lr = true;
        }
        s->base_lrs[g] = grp->initial_lr;
    }
    s->last_epoch = -1;
}

nb_sched *nb__sched_start(nb_sched *s) {
    if (!check(s, s->kind->name)) {
        nb_sched_free(s);
        return NULL;
    }
    nb__sched_attach(s);
    if (nb__sched_basic_step(s, false) != NB_OK) {
        nb_sched_free(s);
        return NULL;
    }
    return s;
}

bool nb__sched_momentum_setup(nb_sched *s, const char *who, bool beta1_ok, double base, double max,
                              double *base_momentums, double *max_momentums) {
    if (!nb__optim_has_momentum(s->o, beta1_ok))
        return nb__fail(NB_ERR_ARG, "%s: optimizer must support momentum with cycle_momentum "
                        "enabled (%s has none: set .no_cycle_momentum)", who,
                        s->o->kind->name), false;
    bool beta1 = s->o->kind->momentum_is_beta1;
    if (!(base >= 0 && max >= 0 && isfinite(base) && isfinite(max) && (!beta1 || (base < 1 && max < 1))))
        return nb__fail(NB_ERR_ARG, "%s: momentums must be finite and >= 0%s (base %g, max %g)", who,
                        beta1 ? " and < 1 (they are Adam's beta1)" : "", base, max), false;
    for (int g = 0; g < s->n_groups; g++) {
        base_momentums[g] = base;
        max_momentums[g] = max;
        if (nb__optim_set_momentum(s->o, g, base > max ? base : max) != NB_OK) return false;
    }
    return true;
}

/* Frees scheds[0..n), a schedule listed twice once. */
static void free_all(int n, nb_sched *const *scheds) {
    for (int i = 0; scheds && i < n; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = scheds[j] == scheds[i];
        if (!seen) nb_sched_free(scheds[i]);
    }
}

/* Whether scheds[0..n) may make a composite of `kind` on o. */
static bool composable(const nb__sched_kind *kind, const nb_optim *o, int n, nb_sched *const *scheds,
                       bool nested_ok, const char *verb) {
    const char *who = kind->name;
    if (n <= 0 || !scheds)
        return nb__fail(NB_ERR_ARG, "%s: %d schedules at %p", who, n, (const void *)scheds), false;
    for (int i = 0; i < n; i++) {
        const nb_sched *c = scheds[i];
        if (!c) {
            if (nb_error_code() == NB_OK) nb__fail(NB_ERR_NULL, "%s: schedule %d is NULL", who, i);
            return false;
        }
        if (!c->kind->step || (!nested_ok && c->kind->composite))
            return nb__fail(NB_ERR_ARG, "%s: schedule %d (%s) cannot be %s", who, i, c->kind->name,
                            verb), false;
        if (c->o != (o ? o : scheds[0]->o))
            return nb__fail(NB_ERR_ARG, "%s: expects all schedulers to belong to the same "
                            "optimizer, but got schedulers at index 0 and %d to be different", who,
                            i), false;
        for (int j = 0; j < i; j++)
            if (scheds[j] == c)
                return nb__fail(NB_ERR_ARG, "%s: schedule %d appears twice", who, i), false;
    }
    return true;
}

nb_sched *nb__sched_composite_new(const nb__sched_kind *kind, nb_optim *o, int n,
                                  nb_sched *const *scheds, bool nested_ok, const char *verb,
                                  int n_milestones, const int *milestones) {
    nb_sched *s = NULL;
    bool ok = composable(kind, o, n, scheds, nested_ok, verb);
    if (ok && n_milestones > 0 && !milestones)
        ok = (nb__fail(NB_ERR_ARG, "%s: milestones is NULL", kind->name), false);
    if (ok) s = nb__sched_alloc(o ? o : scheds[0]->o, kind, n_milestones);
    if (s) s->children = nb__alloc(sizeof(nb_sched *) * (size_t)n);
    if (!s || !s->children) {
        nb_sched_free(s);
        free_all(n, scheds);
        return NULL;
    }
    s->n_children = n;
    memcpy(s->children, scheds, sizeof(nb_sched *) * (size_t)n);
    for (int i = 0; i < n_milestones; i++) s->milestones[i] = milestones[i];
    if (!check(s, kind->name)) {
        nb_sched_free(s);
        return NULL;
    }
    return s;
}

/* ---------------------------------------------------------------- stepping */

static bool groups_unchanged(const nb_sched *s) {
    if (s->o->n_groups == s->n_groups) return true;
    return nb__fail(NB_ERR_ARG, "%s: the optimizer has %d parameter groups; the schedule was made "
                    "for %d", s->kind->name, s->o->n_groups, s->n_groups), false;
}

nb_status nb__sched_basic_step(nb_sched *s, bool at_zero) {
    if (!groups_unchanged(s)) return nb_error_code();
    int64_t e = at_zero ? 0 : s->last_epoch + 1;
    if (s->kind->can_step && !s->kind->can_step(s, e)) return nb_error_code();
    s->last_epoch = e;
    for (int g = 0; g < s->n_groups; g++) {
        nb__group *grp = &s->o->groups[g];
        grp->lr = at_zero && s->kind->closed_form ? s->kind->closed_form(s, g)
                                                  : s->kind->get_lr(s, g, grp->lr);
        s->last_lr[g] = grp->lr;
    }
    return NB_OK;
}

nb_status nb__sched_step_basic(nb_sched *s) { return nb__sched_basic_step(s, false); }

void nb__sched_copy_group_lrs(nb_sched *s) {
    for (int g = 0; g < s->n_groups; g++) s->last_lr[g] = s->o->groups[g].lr;
}

nb_status nb_sched_step(nb_sched *s) {
    if (!s) return nb__fail_status(NB_ERR_NULL, "sched_step: schedule is NULL");
    if (!s->kind->step)
        return nb__fail_status(NB_ERR_ARG, "%s: step it with nb_sched_step_metric", s->kind->name);
    if (!groups_unchanged(s)) return nb_error_code();
    return s->kind->step(s);
}

nb_status nb_sched_step_metric(nb_sched *s, double value) {
    if (!s) return nb__fail_status(NB_ERR_NULL, "sched_step_metric: schedule is NULL");
    if (!s->kind->step_metric)
        return nb__fail_status(NB_ERR_ARG, "%s: only plateau steps on a metric; use nb_sched_step",
                               s->kind->name);
    if (!groups_unchanged(s)) return nb_error_code();
    return s->kind->step_metric(s, value);
}

double nb_sched_get_last_lr(const nb_sched *s, int group) {
    if (!s) return nb__fail(NB_ERR_NULL, "sched_get_last_lr: schedule is NULL"), NAN;
    if (group < 0 || group >= s->n_groups)
        return nb__fail(NB_ERR_ARG, "sched_get_last_lr: group %d is out of range (the schedule has "
                        "%d)", group, s->n_groups), NAN;
    return s->last_lr[group];
}

/* ---------------------------------------------------------------- state as JSON */

static json_t *node_json(const nb_sched *s) {
    json_t *j = json_object();
    json_object_set_new(j, "type", json_string(s->kind->name));
    for (const nb__sched_field *f = s->kind->fields; f->key; f++) {
        const void *p = field_at(s, s->state, f);
        json_t *v = NULL;
        switch (f->type) {
        case NB__F_NUM: v = nb__json_real(*(const double *)p); break;
        case NB__F_INT: v = json_integer(*(const int64_t *)p); break;
        case NB__F_BOOL: v = json_boolean(*(const bool *)p); break;
        case NB__F_ENUM: v = json_string(f->names[*(const int *)p]); break;
        case NB__F_GROUPS: v = nb__json_reals(*(double *const *)p, s->n_groups); break;
        case NB__F_MILESTONES:
            v = json_array();
            for (int k = 0; k < s->n_milestones; k++)
                json_array_append_new(v, json_integer(s->milestones[k]));
            break;
        }
        json_object_set_new(j, f->key, v);
    }
    if (s->kind->composite) {
        json_t *a = json_array();
        for (int i = 0; i < s->n_children; i++) json_array_append_new(a, node_json(s->children[i]));
        json_object_set_new(j, "schedulers", a);
    }
    return j;
}

char *nb_sched_state_json(const nb_sched *s) {
    if (!s) return nb__fail(NB_ERR_NULL, "sched_state_json: schedule is NULL");
    return nb__json_dump(node_json(s), "schedule state");
}

static bool read_enum(const json_t *j, const nb__sched_field *f, int *out, const char *where) {
    const char *v = json_string_value(json_object_get(j, f->key));
    for (int k = 0; v && f->names[k]; k++)
        if (strcmp(v, f->names[k]) == 0) {
            *out = k;
            return true;
        }
    return nb__fail(NB_ERR_ARG, "%s: '%s' must be one of the names of its values", where,
                    f->key), false;
}

static bool read_milestones(const json_t *j, const char *key, nb_sched *t, const char *where) {
    const json_t *a = json_object_get(j, key);
    bool ok = json_is_array(a) && json_array_size(a) == (size_t)t->n_milestones;
    for (int k = 0; ok && k < t->n_milestones; k++) {
        const json_t *v = json_array_get(a, (size_t)k);
        ok = json_is_integer(v);
        if (ok) t->milestones[k] = (int64_t)json_integer_value(v);
    }
    if (!ok)
        return nb__fail(NB_ERR_ARG, "%s: '%s' must be an array of %d integers", where, key,
                        t->n_milestones), false;
    return true;
}

static bool read_field(const json_t *j, const nb__sched_field *f, nb_sched *t, const char *where) {
    void *p = field_at(t, t->state, f);
    switch (f->type) {
    case NB__F_NUM: return nb__json_num(j, f->key, p, where);
    case NB__F_INT: return nb__json_int(j, f->key, p, where);
    case NB__F_BOOL: return nb__json_bool(j, f->key, p, where);
    case NB__F_ENUM: return read_enum(j, f, p, where);
    case NB__F_GROUPS: return nb__json_nums(j, f->key, *(double **)p, t->n_groups, where);
    default: return read_milestones(j, f->key, t, where);
    }
}

/* Reads node t's fields from j into t, a copy of a schedule whose arrays point to scratch
 * space, and checks them. */
static bool read_fields(nb_sched *t, const json_t *j, const char *where) {
    const nb__sched_kind *kind = t->kind;
    int n = n_fields(kind);
    const char *keys[NB__SCHED_FIELDS_MAX + 2];
    keys[0] = "type";
    for (int i = 0; i < n; i++) keys[i + 1] = kind->fields[i].key;
    if (kind->composite) keys[n + 1] = "schedulers";
    if (!nb__json_keys(j, keys, n + 1 + kind->composite, where)) return false;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type || strcmp(type, kind->name) != 0)
        return nb__fail(NB_ERR_ARG, "%s: 'type' is %s, this schedule is %s", where,
                        type ? type : "not a string", kind->name), false;
    for (int i = 0; i < n; i++)
        if (!read_field(j, &kind->fields[i], t, where)) return false;
    if (kind->composite) {
        const json_t *a = json_object_get(j, "schedulers");
        if (!json_is_array(a) || json_array_size(a) != (size_t)t->n_children)
            return nb__fail(NB_ERR_ARG, "%s: 'schedulers' must be an array of %d schedules", where,
                            t->n_children), false;
    }
    return check(t, where);
}

static size_t scalar_size(nb__sched_field_type type) {
    switch (type) {
    case NB__F_NUM: return sizeof(double);
    case NB__F_INT: return sizeof(int64_t);
    case NB__F_BOOL: return sizeof(bool);
    case NB__F_ENUM: return sizeof(int);
    default: return 0; /* arrays: copied with their block */
    }
}

/* Loads node s (and its children) from j; with commit false it only checks. */
static bool load_node(nb_sched *s, const json_t *j, const char *where, bool commit) {
    nb_sched t = *s;
    size_t block_size = group_block_size(s->kind, s->n_groups);
    size_t ms_size = sizeof(int64_t) * (size_t)s->n_milestones;
    double *block = nb__alloc(block_size);
    int64_t *ms = nb__alloc(ms_size);
    void *state = nb__alloc(s->kind->state_size);
    bool ok = block && ms && state;
    if (ok) {
        memcpy(block, s->base_lrs, block_size);
        memcpy(state, s->state, s->kind->state_size);
        t.state = state;
        set_group_arrays(&t, state, block);
        t.milestones = ms;
        ok = read_fields(&t, j, where);
    }
    if (ok && commit) {
        memcpy(s->base_lrs, block, block_size);
        if (ms_size) memcpy(s->milestones, ms, ms_size);
        for (const nb__sched_field *f = s->kind->fields; f->key; f++)
            memcpy(field_at(s, s->state, f), field_at(&t, t.state, f), scalar_size(f->type));
    }
    nb__dealloc(block, block ? block_size : 0);
    nb__dealloc(ms, ms ? ms_size : 0);
    nb__dealloc(state, state ? s->kind->state_size : 0);
    const json_t *children = json_object_get(j, "schedulers");
    for (int i = 0; ok && i < s->n_children; i++) {
        char w[256];
        snprintf(w, sizeof w, "%s: schedulers[%d]", where, i);
        ok = load_node(s->children[i], json_array_get(children, (size_t)i), w, commit);
    }
    return ok;
}

nb_status nb_sched_load_state_json(nb_sched *s, const char *text) {
    if (!s) return nb__fail_status(NB_ERR_NULL, "sched_load_state_json: schedule is NULL");
    const char *where = "schedule state";
    json_t *root = nb__json_parse(text, where);
    if (!root) return nb_error_code();
    bool ok = load_node(s, root, where, false) && load_node(s, root, where, true);
    json_decref(root);
    return ok ? NB_OK : nb_error_code();
}
