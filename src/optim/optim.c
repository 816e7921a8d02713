/*
 * optim.c — the optimiser object, whatever its kind: parameter groups, state tensors, step,
 * zero_grad, lr, and its state as named tensors plus JSON.  What each kind does its own way
 * (hyper-parameters, state tensors, the update) is in its descriptor, optimizers/<kind>.c; the
 * update kernels are the backend's (backend/cpu/update.c).
 *
 * torch's conventions kept here: a parameter without a gradient is skipped (and its step count
 * does not advance); each group carries every hyper-parameter; the state of Adam, RMSprop and
 * Adagrad counts steps per parameter.  torch makes Adam's and RMSprop's state on a parameter's
 * first step, filled with zeros; making it when the parameter is added is the same thing and
 * keeps every allocation out of step().
 */
#include "optim_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NB__OPTIM_KIND_ADDRESS(k) &nb__##k,
const nb__optim_kind *const nb__optim_kinds[] = {NB__OPTIM_KINDS(NB__OPTIM_KIND_ADDRESS) NULL};
#undef NB__OPTIM_KIND_ADDRESS

bool nb__optim_nonneg(double v, const char *what, const char *who) {
    if (v >= 0 && isfinite(v)) return true; /* !(v >= 0) also catches NaN */
    return nb__fail(NB_ERR_ARG, "%s: Invalid %s: %g", who, what, v), false;
}

/* torch's constructor checks, applied to every group (made, added or loaded), with its messages;
 * every value must also be finite (torch lets lr=nan through and trains on NaN). */
static bool check_group(const nb__optim_kind *kind, const nb__group *g, const char *who) {
    return nb__optim_nonneg(g->lr, "learning rate", who) &&
           nb__optim_nonneg(g->weight_decay, "weight_decay value", who) && kind->check(g, who);
}

/* Makes the state tensors parameter P (index `index`, in group g) lacks. */
static nb_status make_state(nb_optim *o, nb__param *P, int index, const nb__group *g) {
    for (int s = 0; s < NB__SLOTS; s++) {
        if (P->slot[s] || !o->kind->slot_needed(g, s)) continue;
        nb_tensor *t = nb__new_in(NULL, NB_F32, P->param->ndim, P->param->shape);
        if (!t) return nb_error_code();
        nb_fill(t, o->kind->slot_init ? o->kind->slot_init(g) : 0.0f);
        P->slot[s] = t;
        snprintf(P->name[s], NB__NAME_MAX, "state.%d.%s", index, o->kind->slots[s]);
    }
    return NB_OK;
}

static void param_release(nb__param *P) {
    for (int s = 0; s < NB__SLOTS; s++) nb__release(P->slot[s]);
    nb__release(P->param);
}

void nb_optim_free(nb_optim *o) {
    if (!o) return;
    if (o->kind->free_extra) o->kind->free_extra(o);
    for (int i = 0; i < o->n_params; i++) param_release(&o->params[i]);
    nb__dealloc(o->params, sizeof(nb__param) * (size_t)o->n_params);
    nb__dealloc(o->groups, sizeof(nb__group) * (size_t)o->n_groups);
    nb__dealloc(o, sizeof *o);
}

static bool check_param(const nb_optim *o, nb_tensor *const *params, int i, const char *who) {
    nb_tensor *t = params[i];
    if (!nb__alive(t)) {
        nb__fail_input(who, t);
        return false;
    }
    if (t->dtype != NB_F32)
        return nb__fail(NB_ERR_DTYPE, "%s: parameter %d is %s; only float32 tensors can be optimized",
                        who, i, nb_dtype_name(t->dtype)), false;
    if (t->device != NB_CPU)
        return nb__fail(NB_ERR_DEVICE, "%s: parameter %d is not on the CPU", who, i), false;
    if (t->node) return nb__fail(NB_ERR_ARG, "%s: can't optimize a non-leaf Tensor (parameter %d)",
                                 who, i), false;
    if (t->arena)
        return nb__fail(NB_ERR_SCOPE, "%s: parameter %d belongs to a scope; parameters must be "
                        "persistent (made with no scope open)", who, i), false;
    if (!nb_is_contiguous(t))
        return nb__fail(NB_ERR_ARG, "%s: parameter %d %s is not contiguous", who, i, NB_SHP(t)), false;
    for (int j = 0; j < i; j++)
        if (params[j] == t)
            return nb__fail(NB_ERR_ARG, "%s: parameter %d appears twice in the group", who, i), false;
    for (int j = 0; j < o->n_params; j++)
        if (o->params[j].param == t)
            return nb__fail(NB_ERR_ARG, "%s: some parameters appear in more than one parameter "
                            "group (parameter %d)", who, i), false;
    return true;
}

nb_status nb_optim_add_group(nb_optim *o, int n, nb_tensor *const *params, const nb_group_opts *g) {
    if (!o) return nb__fail_status(NB_ERR_NULL, "optim_add_group: optimizer is NULL");
    const char *who = o->kind->name;
    if (o->kind->single_group && o->n_groups > 0)
        return nb__fail_status(NB_ERR_ARG, "%s: %s doesn't support per-parameter options "
                               "(parameter groups)", who, who);
    if (n < 0 || (n > 0 && !params))
        return nb__fail_status(NB_ERR_ARG, "%s: add_group: %d parameters at %p", who, n,
                               (const void *)params);
    nb__group grp = o->defaults;
    if (g) {
        grp.lr = nb__or_default(g->lr, grp.lr);
        grp.weight_decay = nb__or_default(g->weight_decay, grp.weight_decay);
        int m = o->kind->momentum;
        if (m == NB__NO_MOMENTUM && g->momentum != 0)
            return nb__fail_status(NB_ERR_ARG, "%s: a group's momentum does not apply (%s has none)",
                                   who, who);
        if (m != NB__NO_MOMENTUM) grp.hp[m] = nb__or_default(g->momentum, grp.hp[m]);
    }
    if (!check_group(o->kind, &grp, who)) return nb_error_code();
    for (int i = 0; i < n; i++)
        if (!check_param(o, params, i, who)) return nb_error_code();

    int np = o->n_params + n, ng = o->n_groups + 1;
    nb__param *ps = nb__alloc(sizeof(nb__param) * (size_t)np);
    nb__group *gs = ps ? nb__alloc(sizeof(nb__group) * (size_t)ng) : NULL;
    if (!gs) {
        nb__dealloc(ps, sizeof(nb__param) * (size_t)np);
        return nb_error_code();
    }
    if (o->n_params) memcpy(ps, o->params, sizeof(nb__param) * (size_t)o->n_params);
    if (o->n_groups) memcpy(gs, o->groups, sizeof(nb__group) * (size_t)o->n_groups);
    memset(ps + o->n_params, 0, sizeof(nb__param) * (size_t)n);
    grp.first = o->n_params;
    grp.count = n;
    gs[o->n_groups] = grp;
    nb_status st = NB_OK;
    for (int i = 0; i < n && st == NB_OK; i++) {
        nb__param *P = &ps[o->n_params + i];
        P->param = params[i];
        nb__retain(P->param);
        st = make_state(o, P, o->n_params + i, &grp);
    }
    if (st != NB_OK) {
        for (int i = 0; i < n; i++)
            if (ps[o->n_params + i].param) param_release(&ps[o->n_params + i]);
        nb__dealloc(ps, sizeof(nb__param) * (size_t)np);
        nb__dealloc(gs, sizeof(nb__group) * (size_t)ng);
        return st;
    }
    nb__dealloc(o->params, sizeof(nb__param) * (size_t)o->n_params);
    nb__dealloc(o->groups, sizeof(nb__group) * (size_t)o->n_groups);
    o->params = ps;
    o->groups = gs;
    o->n_params = np;
    o->n_groups = ng;
    return NB_OK;
}

nb_optim *nb__optim_new(const nb__optim_kind *kind, nb__group defaults, int n,
                        nb_tensor *const *params) {
    if (!check_group(kind, &defaults, kind->name)) return NULL;
    if (n <= 0 || !params)
        return nb__fail(NB_ERR_ARG, "%s: optimizer got an empty parameter list", kind->name);
    nb_optim *o = nb__alloc(sizeof *o);
    if (!o) return NULL;
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->defaults = defaults;
    if (nb_optim_add_group(o, n, params, NULL) != NB_OK ||
        (kind->new_extra && !(o->extra = kind->new_extra(o)))) {
        nb_optim_free(o);
        return NULL;
    }
    return o;
}

/* ---------------------------------------------------------------- step */

nb_status nb_optim_step(nb_optim *o) {
    if (!o) return nb__fail_status(NB_ERR_NULL, "optim_step: optimizer is NULL");
    if (!o->kind->step)
        return nb__fail_status(NB_ERR_ARG, "%s: step needs a closure that re-evaluates the loss "
                               "(call nb_optim_step_closure)", o->kind->name);
    for (int gi = 0; gi < o->n_groups; gi++) {
        const nb__group *g = &o->groups[gi];
        for (int i = g->first; i < g->first + g->count; i++) {
            nb__param *P = &o->params[i];
            if (P->param->requires_grad && P->param->grad) o->kind->step(g, P);
        }
    }
    return NB_OK;
}

double nb__optim_call_closure(nb_closure_fn closure, void *ctx, const char *who) {
    nb_error_clear();
    nb_scope_begin();
    double loss = closure(ctx);
    nb_status scope = nb_scope_end();
    if (isnan(loss) || scope != NB_OK) {
        nb_status code = nb_error_code();
        if (code == NB_OK)
            return nb__fail(NB_ERR_VALUE, "%s: the closure returned a NaN loss", who), NAN;
        char why[400];
        snprintf(why, sizeof why, "%s", nb_error_message());
        return nb__fail(code, "%s: the closure failed: %s", who, why), NAN;
    }
    return loss;
}

/* torch's Optimizer.step(closure) for a kind without its own: the closure once, then the
 * update. */
nb_status nb_optim_step_closure(nb_optim *o, nb_closure_fn closure, void *ctx, double *loss) {
    if (!o) return nb__fail_status(NB_ERR_NULL, "optim_step_closure: optimizer is NULL");
    if (!closure)
        return nb__fail_status(NB_ERR_NULL, "%s: step_closure: closure is NULL", o->kind->name);
    if (o->kind->step_closure) return o->kind->step_closure(o, closure, ctx, loss);
    double f = nb__optim_call_closure(closure, ctx, o->kind->name);
    if (isnan(f)) return nb_error_code();
    if (loss) *loss = f;
    return nb_optim_step(o);
}

nb_status nb_optim_zero_grad(nb_optim *o) {
    if (!o) return nb__fail_status(NB_ERR_NULL, "optim_zero_grad: optimizer is NULL");
    for (int i = 0; i < o->n_params; i++) nb_zero_grad(o->params[i].param);
    return NB_OK;
}

/* ---------------------------------------------------------------- groups */

int nb_optim_num_groups(const nb_optim *o) {
    if (!o) return nb__fail(NB_ERR_NULL, "optim_num_groups: optimizer is NULL"), -1;
    return o->n_groups;
}

static bool group_ok(const nb_optim *o, int group, const char *op) {
    if (!o) return nb__fail(NB_ERR_NULL, "%s: optimizer is NULL", op), false;
    if (group < 0 || group >= o->n_groups)
        return nb__fail(NB_ERR_ARG, "%s: group %d is out of range (the optimizer has %d)", op,
                        group, o->n_groups), false;
    return true;
}

double nb_optim_get_lr(const nb_optim *o, int group) {
    return group_ok(o, group, "optim_get_lr") ? o->groups[group].lr : NAN;
}

nb_status nb_optim_set_lr(nb_optim *o, int group, double lr) {
    if (!group_ok(o, group, "optim_set_lr")) return nb_error_code();
    if (!(lr >= 0 && isfinite(lr)))
        return nb__fail_status(NB_ERR_ARG, "optim_set_lr: Invalid learning rate: %g", lr);
    o->groups[group].lr = lr;
    return NB_OK;
}

double nb_optim_get_momentum(const nb_optim *o, int group) {
    if (!group_ok(o, group, "optim_get_momentum")) return NAN;
    if (!nb__optim_has_momentum(o, true))
        return nb__fail(NB_ERR_ARG, "optim_get_momentum: %s has no momentum", o->kind->name), NAN;
    return o->groups[group].hp[o->kind->momentum];
}

bool nb__optim_has_momentum(const nb_optim *o, bool beta1_ok) {
    return o->kind->momentum != NB__NO_MOMENTUM && (beta1_ok || !o->kind->momentum_is_beta1);
}

nb_status nb__optim_set_momentum(nb_optim *o, int group, double momentum) {
    nb__group *g = &o->groups[group];
    g->hp[o->kind->momentum] = momentum;
    for (int i = g->first; i < g->first + g->count; i++) {
        nb_status s = make_state(o, &o->params[i], i, g);
        if (s != NB_OK) return s;
    }
    return NB_OK;
}

/* ---------------------------------------------------------------- state */

int nb_optim_state_tensors(nb_optim *o, const char **names, nb_tensor **tensors, int cap) {
    if (!o) return nb__fail(NB_ERR_NULL, "optim_state_tensors: optimizer is NULL"), 0;
    int count = 0;
    for (int i = 0; i < o->n_params; i++)
        for (int s = 0; s < NB__SLOTS; s++) {
            if (!o->params[i].slot[s]) continue;
            if (count < cap) {
                if (names) names[count] = o->params[i].name[s];
                if (tensors) tensors[count] = o->params[i].slot[s];
            }
            count++;
        }
    if (o->kind->extra_tensors) {
        int m = o->kind->extra_tensors(o, names ? names + (count < cap ? count : cap) : NULL,
                                       tensors ? tensors + (count < cap ? count : cap) : NULL,
                                       cap > count ? cap - count : 0);
        if (m < 0) return 0;
        count += m;
    }
    return count;
}

/* A group in the JSON state: "lr", "initial_lr", the kind's fields, "params" (torch's
 * param_group keys; Adam's betas an array as torch's tuple is). */
static int n_fields(const nb__optim_kind *kind) {
    int n = 0;
    while (kind->fields[n].key) n++;
    return n;
}

static json_t *field_json(const nb__hp_field *f, const nb__group *g) {
    const double *v = (const double *)((const char *)g + f->offset);
    switch (f->type) {
    case NB__HP_NUM: return nb__json_real(*v);
    case NB__HP_FLAG: return json_boolean(*v != 0);
    default: return nb__json_reals(v, 2);
    }
}

static json_t *group_json(const nb__optim_kind *kind, const nb__group *g) {
    json_t *j = json_object();
    json_object_set_new(j, "lr", nb__json_real(g->lr));
    json_object_set_new(j, "initial_lr",
                        g->has_initial_lr ? nb__json_real(g->initial_lr) : json_null());
    for (const nb__hp_field *f = kind->fields; f->key; f++)
        json_object_set_new(j, f->key, field_json(f, g));
    json_t *params = json_array();
    for (int i = g->first; i < g->first + g->count; i++) json_array_append_new(params, json_integer(i));
    json_object_set_new(j, "params", params);
    return j;
}

char *nb_optim_state_json(const nb_optim *o) {
    if (!o) return nb__fail(NB_ERR_NULL, "optim_state_json: optimizer is NULL");
    json_t *root = json_object(), *groups = json_array(), *state = json_array();
    json_object_set_new(root, "optimizer", json_string(o->kind->name));
    for (int gi = 0; gi < o->n_groups; gi++)
        json_array_append_new(groups, group_json(o->kind, &o->groups[gi]));
    json_object_set_new(root, "param_groups", groups);
    for (int i = 0; i < o->n_params; i++) {
        json_t *s = json_object();
        json_object_set_new(s, "step", json_integer(o->params[i].step));
        json_array_append_new(state, s);
    }
    if (o->kind->extra_json) o->kind->extra_json(o, json_array_get(state, 0));
    json_object_set_new(root, "state", state);
    return nb__json_dump(root, "optimizer state");
}

/* Reads field f of a group from j into *g; a flag that decides the state tensors must keep the
 * value it has. */
static bool read_field(const nb__hp_field *f, const json_t *j, nb__group *g, const char *where) {
    double *v = (double *)((char *)g + f->offset);
    if (f->type == NB__HP_NUM) return nb__json_num(j, f->key, v, where);
    if (f->type == NB__HP_PAIR) return nb__json_nums(j, f->key, v, 2, where);
    bool flag;
    if (!nb__json_bool(j, f->key, &flag, where)) return false;
    if (f->decides_state && flag != (*v != 0))
        return nb__fail(NB_ERR_ARG, "%s: %s is %s in the state but %s in this optimizer (it "
                        "decides the state tensors)", where, f->key, flag ? "true" : "false",
                        flag ? "false" : "true"), false;
    *v = flag;
    return true;
}

/* Reads group gi from j into *g (a copy of the current group), checking everything. */
static bool read_group(const nb_optim *o, int gi, const json_t *j, nb__group *g) {
    char where[64];
    snprintf(where, sizeof where, "optimizer state: param_groups[%d]", gi);
    const char *keys[NB__GROUP_HP + 4] = {"lr", "initial_lr"};
    int n = n_fields(o->kind);
    for (int i = 0; i < n; i++) keys[2 + i] = o->kind->fields[i].key;
    keys[2 + n] = "params";
    if (!nb__json_keys(j, keys, n + 3, where)) return false;
    bool ok = nb__json_num(j, "lr", &g->lr, where);
    const json_t *init = json_object_get(j, "initial_lr");
    g->has_initial_lr = !json_is_null(init);
    if (ok && g->has_initial_lr) ok = nb__json_num(j, "initial_lr", &g->initial_lr, where);
    for (int i = 0; ok && i < n; i++) ok = read_field(&o->kind->fields[i], j, g, where);
    if (!ok || !check_group(o->kind, g, where)) return false;
    const json_t *params = json_object_get(j, "params");
    bool same = json_is_array(params) && json_array_size(params) == (size_t)g->count;
    for (int k = 0; same && k < g->count; k++) {
        const json_t *v = json_array_get(params, (size_t)k);
        same = json_is_integer(v) && json_integer_value(v) == g->first + k;
    }
    if (!same)
        return nb__fail(NB_ERR_ARG, "%s: 'params' must be [%d..%d]: loaded state dict contains a "
                        "parameter group that doesn't match the size of optimizer's group", where,
                        g->first, g->first + g->count - 1), false;
    for (int i = g->first; i < g->first + g->count; i++)
        for (int s = 0; s < NB__SLOTS; s++)
            if (o->kind->slot_needed(g, s) && !o->params[i].slot[s])
                return nb__fail(NB_ERR_ARG, "%s: these hyper-parameters need a %s state tensor, "
                                "which this optimizer was built without", where,
                                o->kind->slots[s]), false;
    return true;
}

nb_status nb_optim_load_state_json(nb_optim *o, const char *text) {
    if (!o) return nb__fail_status(NB_ERR_NULL, "optim_load_state_json: optimizer is NULL");
    const char *where = "optimizer state";
    json_t *root = nb__json_parse(text, where);
    if (!root) return nb_error_code();
    static const char *const keys[] = {"optimizer", "param_groups", "state"};
    const json_t *groups = json_object_get(root, "param_groups");
    const json_t *state = json_object_get(root, "state");
    const char *kind = json_string_value(json_object_get(root, "optimizer"));
    bool ok = nb__json_keys(root, keys, 3, where);
    if (ok && (!kind || strcmp(kind, o->kind->name) != 0))
        ok = (nb__fail(NB_ERR_ARG, "%s: 'optimizer' is %s%s%s, this optimizer is %s", where,
                      kind ? "\"" : "", kind ? kind : "not a string", kind ? "\"" : "",
                      o->kind->name), false);
    if (ok && (!json_is_array(groups) || json_array_size(groups) != (size_t)o->n_groups))
        ok = (nb__fail(NB_ERR_ARG, "%s: 'param_groups' must be an array of %d groups: loaded state "
                      "dict has a different number of parameter groups", where, o->n_groups), false);
    if (ok && (!json_is_array(state) || json_array_size(state) != (size_t)o->n_params))
        ok = (nb__fail(NB_ERR_ARG, "%s: 'state' must be an array of %d entries, one per parameter",
                      where, o->n_params), false);
    /* First read and check everything, then commit: the optimiser is unchanged on error. */
    int64_t *steps = NULL;
    nb__group *staged = NULL;
    if (ok) {
        steps = nb__alloc(sizeof(int64_t) * (size_t)o->n_params);
        staged = nb__alloc(sizeof(nb__group) * (size_t)o->n_groups);
        ok = steps && staged;
    }
    for (int gi = 0; ok && gi < o->n_groups; gi++) {
        staged[gi] = o->groups[gi];
        ok = read_group(o, gi, json_array_get(groups, (size_t)gi), &staged[gi]);
    }
    static const char *const state_keys[] = {"step"};
    for (int i = 0; ok && i < o->n_params; i++) {
        char w[64];
        snprintf(w, sizeof w, "%s: state[%d]", where, i);
        const json_t *s = json_array_get(state, (size_t)i);
        bool kind_checks = i == 0 && o->kind->extra_load; /* state[0] holds the kind's keys too */
        ok = (kind_checks || nb__json_keys(s, state_keys, 1, w)) &&
             nb__json_int(s, "step", &steps[i], w);
        if (ok && steps[i] < 0) ok = (nb__fail(NB_ERR_ARG, "%s: 'step' is negative", w), false);
    }
    if (ok && o->kind->extra_load) ok = o->kind->extra_load(o, root, false);
    if (ok) {
        memcpy(o->groups, staged, sizeof(nb__group) * (size_t)o->n_groups);
        for (int i = 0; i < o->n_params; i++) o->params[i].step = steps[i];
        if (o->kind->extra_load) o->kind->extra_load(o, root, true);
    }
    nb__dealloc(steps, steps ? sizeof(int64_t) * (size_t)o->n_params : 0);
    nb__dealloc(staged, staged ? sizeof(nb__group) * (size_t)o->n_groups : 0);
    json_decref(root);
    return ok ? NB_OK : nb_error_code();
}
