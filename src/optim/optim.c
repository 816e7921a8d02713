/*
 * optim.c — the optimiser object: parameter groups, state, step, zero_grad, and its state as
 * named tensors plus JSON.  The update rules themselves are in update.c.
 *
 * torch's conventions kept here: a parameter without a gradient is skipped (and its step count
 * does not advance); each group carries every hyper-parameter; the state of Adam, RMSprop and
 * Adagrad counts steps per parameter.  torch makes Adam's and RMSprop's state on a parameter's
 * first step, filled with zeros; making it (zeros) when the parameter is added is the same
 * thing and keeps every allocation out of step().  SGD's momentum buffer is "None" until its
 * first update, which copies the gradient: the parameter's step counts the buffer's updates, so
 * 0 means None.
 */
#include "optim_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[NB__OPTIM_KIND_COUNT] = {"sgd", "adagrad", "rmsprop", "adam",
                                                             "adamw"};

static const char *const slot_names[NB__OPTIM_KIND_COUNT][NB__SLOTS] = {
    [NB__SGD] = {"momentum_buffer"},
    [NB__ADAGRAD] = {"sum"},
    [NB__RMSPROP] = {"square_avg", "momentum_buffer", "grad_avg"},
    [NB__ADAM] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [NB__ADAMW] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
};

const char *nb__optim_name(nb__optim_kind kind) { return kind_names[kind]; }

/* A zero option means torch's default; NB_ZERO (negative zero) means 0. */
static double or_default(double v, double dflt) {
    if (v != 0) return v;
    return signbit(v) ? 0.0 : dflt;
}

static bool is_adam(nb__optim_kind k) { return k == NB__ADAM || k == NB__ADAMW; }

/* torch's constructor checks, applied to every group (made, added or loaded), with its messages;
 * every value must also be finite (torch lets lr=nan through and trains on NaN).  The
 * !(x >= 0) form also rejects NaN. */
static bool check_group(nb__optim_kind kind, const nb__group *g, const char *who) {
#define REQUIRE(cond, ...) \
    if (!(cond)) return nb__fail(NB_ERR_ARG, __VA_ARGS__), false
#define NONNEG(v, what) REQUIRE(v >= 0 && isfinite(v), "%s: Invalid " what ": %g", who, v)
    NONNEG(g->lr, "learning rate");
    NONNEG(g->weight_decay, "weight_decay value");
    switch (kind) {
    case NB__SGD:
        NONNEG(g->momentum, "momentum value");
        REQUIRE(g->dampening >= 0 && g->dampening <= 1, "%s: Invalid dampening value: %g (must be in "
                "[0, 1])", who, g->dampening);
        REQUIRE(!g->nesterov || (g->momentum > 0 && g->dampening == 0),
                "%s: Nesterov momentum requires a momentum and zero dampening", who);
        break;
    case NB__ADAGRAD:
        NONNEG(g->lr_decay, "lr_decay value");
        NONNEG(g->initial_accumulator_value, "initial_accumulator_value value");
        NONNEG(g->eps, "epsilon value");
        break;
    case NB__RMSPROP:
        NONNEG(g->eps, "epsilon value");
        NONNEG(g->momentum, "momentum value");
        /* 1 - alpha weighs the new squared gradient: alpha > 1 would make square_avg negative */
        REQUIRE(g->alpha >= 0 && g->alpha <= 1, "%s: Invalid alpha value: %g (must be in [0, 1])",
                who, g->alpha);
        break;
    default:
        NONNEG(g->eps, "epsilon value");
        REQUIRE(g->beta1 >= 0 && g->beta1 < 1, "%s: Invalid beta parameter at index 0: %g", who,
                g->beta1);
        REQUIRE(g->beta2 >= 0 && g->beta2 < 1, "%s: Invalid beta parameter at index 1: %g", who,
                g->beta2);
        break;
    }
#undef NONNEG
#undef REQUIRE
    return true;
}

/* Whether a parameter of group g needs state slot `slot`. */
static bool slot_needed(nb__optim_kind kind, const nb__group *g, int slot) {
    switch (kind) {
    case NB__SGD: return slot == 0 && g->momentum != 0;
    case NB__ADAGRAD: return slot == 0;
    case NB__RMSPROP: return slot == 0 || (slot == 1 && g->momentum > 0) || (slot == 2 && g->centered);
    default: return slot < 2 || g->amsgrad;
    }
}

/* Makes the state tensors parameter P (index `index`, in group g) lacks. */
static nb_status make_state(nb_optim *o, nb__param *P, int index, const nb__group *g) {
    for (int s = 0; s < NB__SLOTS; s++) {
        if (P->slot[s] || !slot_needed(o->kind, g, s)) continue;
        nb_tensor *t = nb__new_in(NULL, NB_F32, P->param->ndim, P->param->shape);
        if (!t) return nb_error_code();
        float fill = o->kind == NB__ADAGRAD ? (float)g->initial_accumulator_value : 0.0f;
        float *d = nb__f32(t);
        int64_t n = nb__numel(t->ndim, t->shape);
        for (int64_t i = 0; i < n; i++) d[i] = fill;
        P->slot[s] = t;
        snprintf(P->name[s], NB__NAME_MAX, "state.%d.%s", index, slot_names[o->kind][s]);
    }
    return NB_OK;
}

static void param_release(nb__param *P) {
    for (int s = 0; s < NB__SLOTS; s++) nb__release(P->slot[s]);
    nb__release(P->param);
}

void nb_optim_free(nb_optim *o) {
    if (!o) return;
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
    const char *who = kind_names[o->kind];
    if (n < 0 || (n > 0 && !params))
        return nb__fail_status(NB_ERR_ARG, "%s: add_group: %d parameters at %p", who, n,
                               (const void *)params);
    nb__group grp = o->defaults;
    if (g) {
        grp.lr = or_default(g->lr, grp.lr);
        grp.weight_decay = or_default(g->weight_decay, grp.weight_decay);
        if (o->kind == NB__ADAGRAD) {
            if (g->momentum != 0)
                return nb__fail_status(NB_ERR_ARG, "adagrad: a group's momentum does not apply "
                                       "(Adagrad has none)");
        } else if (is_adam(o->kind)) {
            grp.beta1 = or_default(g->momentum, grp.beta1);
        } else {
            grp.momentum = or_default(g->momentum, grp.momentum);
        }
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

static nb_optim *optim_new(nb__optim_kind kind, nb__group defaults, int n, nb_tensor *const *params) {
    const char *who = kind_names[kind];
    if (!check_group(kind, &defaults, who)) return NULL;
    if (n <= 0 || !params)
        return nb__fail(NB_ERR_ARG, "%s: optimizer got an empty parameter list", who);
    nb_optim *o = nb__alloc(sizeof *o);
    if (!o) return NULL;
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->defaults = defaults;
    if (nb_optim_add_group(o, n, params, NULL) != NB_OK) {
        nb_optim_free(o);
        return NULL;
    }
    return o;
}

nb_optim *nb_sgd_new(int n, nb_tensor *const *params, nb_sgd_opts opts) {
    if (opts.lr == 0 && !signbit(opts.lr))
        return nb__fail(NB_ERR_ARG, "sgd: lr is required (torch has no default; write NB_ZERO "
                        "for a learning rate of 0)");
    return optim_new(NB__SGD, (nb__group){.lr = or_default(opts.lr, 0), .momentum = opts.momentum,
                                          .dampening = opts.dampening,
                                          .weight_decay = opts.weight_decay,
                                          .nesterov = opts.nesterov}, n, params);
}

nb_optim *nb_adagrad_new(int n, nb_tensor *const *params, nb_adagrad_opts opts) {
    return optim_new(NB__ADAGRAD,
                     (nb__group){.lr = or_default(opts.lr, 1e-2), .lr_decay = opts.lr_decay,
                                 .weight_decay = opts.weight_decay,
                                 .initial_accumulator_value = opts.initial_accumulator_value,
                                 .eps = or_default(opts.eps, 1e-10)}, n, params);
}

nb_optim *nb_rmsprop_new(int n, nb_tensor *const *params, nb_rmsprop_opts opts) {
    return optim_new(NB__RMSPROP,
                     (nb__group){.lr = or_default(opts.lr, 1e-2), .alpha = or_default(opts.alpha, 0.99),
                                 .eps = or_default(opts.eps, 1e-8), .weight_decay = opts.weight_decay,
                                 .momentum = opts.momentum, .centered = opts.centered}, n, params);
}

static nb__group adam_group(nb_adam_opts opts, double weight_decay_default) {
    return (nb__group){.lr = or_default(opts.lr, 1e-3), .beta1 = or_default(opts.beta1, 0.9),
                       .beta2 = or_default(opts.beta2, 0.999), .eps = or_default(opts.eps, 1e-8),
                       .weight_decay = or_default(opts.weight_decay, weight_decay_default),
                       .amsgrad = opts.amsgrad};
}

nb_optim *nb_adam_new(int n, nb_tensor *const *params, nb_adam_opts opts) {
    return optim_new(NB__ADAM, adam_group(opts, 0), n, params);
}

nb_optim *nb_adamw_new(int n, nb_tensor *const *params, nb_adamw_opts opts) {
    return optim_new(NB__ADAMW, adam_group(opts, 1e-2), n, params);
}

/* ---------------------------------------------------------------- step */

static void step_param(nb_optim *o, const nb__group *g, nb__param *P) {
    nb_tensor *p = P->param;
    float *x = nb__f32(p), *grad = nb__f32(p->grad);
    float *s0 = P->slot[0] ? nb__f32(P->slot[0]) : NULL;
    float *s1 = P->slot[1] ? nb__f32(P->slot[1]) : NULL;
    float *s2 = P->slot[2] ? nb__f32(P->slot[2]) : NULL;
    int64_t n = nb__numel(p->ndim, p->shape);
    switch (o->kind) {
    case NB__SGD: {
        float *buf = g->momentum != 0 ? s0 : NULL;
        nb__sgd_update(x, buf, grad, n, (float)g->lr, (float)g->weight_decay, (float)g->momentum,
                       (float)(1 - g->dampening), g->nesterov, P->step == 0);
        if (buf) P->step++;
        break;
    }
    case NB__ADAGRAD: {
        P->step++;
        double clr = g->lr / (1 + (double)(P->step - 1) * g->lr_decay);
        nb__adagrad_update(x, s0, grad, n, (float)clr, (float)g->weight_decay, (float)g->eps);
        break;
    }
    case NB__RMSPROP:
        P->step++;
        nb__rmsprop_update(x, s0, g->momentum > 0 ? s1 : NULL, g->centered ? s2 : NULL, grad, n,
                           (float)g->lr, (float)g->alpha, (float)(1 - g->alpha), (float)g->eps,
                           (float)g->weight_decay, (float)g->momentum);
        break;
    default: {
        P->step++;
        double t = (double)P->step;
        double bias_correction1 = 1 - pow(g->beta1, t), bias_correction2 = 1 - pow(g->beta2, t);
        bool w = o->kind == NB__ADAMW;
        nb__adam_scalars k = {
            .step_size = (float)(g->lr / bias_correction1),
            .bias_correction2_sqrt = (float)sqrt(bias_correction2),
            .beta1 = (float)g->beta1, .one_minus_beta1 = (float)(1 - g->beta1),
            .beta2 = (float)g->beta2, .one_minus_beta2 = (float)(1 - g->beta2),
            .eps = (float)g->eps,
            .weight_decay = w ? 0.0f : (float)g->weight_decay,
            .decay_factor = w ? (float)(1 - g->lr * g->weight_decay) : 1.0f,
        };
        nb__adam_update(x, s0, s1, g->amsgrad ? s2 : NULL, grad, n, &k);
        break;
    }
    }
}

nb_status nb_optim_step(nb_optim *o) {
    if (!o) return nb__fail_status(NB_ERR_NULL, "optim_step: optimizer is NULL");
    for (int gi = 0; gi < o->n_groups; gi++) {
        const nb__group *g = &o->groups[gi];
        for (int i = g->first; i < g->first + g->count; i++) {
            nb__param *P = &o->params[i];
            if (P->param->requires_grad && P->param->grad) step_param(o, g, P);
        }
    }
    return NB_OK;
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
        return nb__fail(NB_ERR_ARG, "optim_get_momentum: %s has no momentum", kind_names[o->kind]), NAN;
    return nb__optim_momentum(o, group);
}

bool nb__optim_has_momentum(const nb_optim *o, bool beta1_ok) {
    return o->kind == NB__SGD || o->kind == NB__RMSPROP || (beta1_ok && is_adam(o->kind));
}

double nb__optim_momentum(const nb_optim *o, int group) {
    return is_adam(o->kind) ? o->groups[group].beta1 : o->groups[group].momentum;
}

nb_status nb__optim_set_momentum(nb_optim *o, int group, double momentum) {
    nb__group *g = &o->groups[group];
    if (is_adam(o->kind)) {
        g->beta1 = momentum;
        return NB_OK;
    }
    g->momentum = momentum;
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
    return count;
}

/* The keys of a group in the JSON state, per optimiser (torch's param_group keys, betas split
 * as torch's tuple is: "betas": [beta1, beta2]). */
#define MAX_GROUP_KEYS 9
static const char *const group_keys[NB__OPTIM_KIND_COUNT][MAX_GROUP_KEYS] = {
    [NB__SGD] = {"lr", "initial_lr", "momentum", "dampening", "weight_decay", "nesterov", "params"},
    [NB__ADAGRAD] = {"lr", "initial_lr", "lr_decay", "weight_decay", "initial_accumulator_value",
                     "eps", "params"},
    [NB__RMSPROP] = {"lr", "initial_lr", "alpha", "eps", "weight_decay", "momentum", "centered",
                     "params"},
    [NB__ADAM] = {"lr", "initial_lr", "betas", "eps", "weight_decay", "amsgrad", "params"},
    [NB__ADAMW] = {"lr", "initial_lr", "betas", "eps", "weight_decay", "amsgrad", "params"},
};

static int n_group_keys(nb__optim_kind kind) {
    int n = 0;
    while (n < MAX_GROUP_KEYS && group_keys[kind][n]) n++;
    return n;
}

static json_t *group_json(nb__optim_kind kind, const nb__group *g) {
    json_t *j = json_object();
    json_object_set_new(j, "lr", nb__json_real(g->lr));
    json_object_set_new(j, "initial_lr",
                        g->has_initial_lr ? nb__json_real(g->initial_lr) : json_null());
    switch (kind) {
    case NB__SGD:
        json_object_set_new(j, "momentum", nb__json_real(g->momentum));
        json_object_set_new(j, "dampening", nb__json_real(g->dampening));
        json_object_set_new(j, "weight_decay", nb__json_real(g->weight_decay));
        json_object_set_new(j, "nesterov", json_boolean(g->nesterov));
        break;
    case NB__ADAGRAD:
        json_object_set_new(j, "lr_decay", nb__json_real(g->lr_decay));
        json_object_set_new(j, "weight_decay", nb__json_real(g->weight_decay));
        json_object_set_new(j, "initial_accumulator_value",
                            nb__json_real(g->initial_accumulator_value));
        json_object_set_new(j, "eps", nb__json_real(g->eps));
        break;
    case NB__RMSPROP:
        json_object_set_new(j, "alpha", nb__json_real(g->alpha));
        json_object_set_new(j, "eps", nb__json_real(g->eps));
        json_object_set_new(j, "weight_decay", nb__json_real(g->weight_decay));
        json_object_set_new(j, "momentum", nb__json_real(g->momentum));
        json_object_set_new(j, "centered", json_boolean(g->centered));
        break;
    default:
        json_object_set_new(j, "betas", nb__json_reals((double[]){g->beta1, g->beta2}, 2));
        json_object_set_new(j, "eps", nb__json_real(g->eps));
        json_object_set_new(j, "weight_decay", nb__json_real(g->weight_decay));
        json_object_set_new(j, "amsgrad", json_boolean(g->amsgrad));
        break;
    }
    json_t *params = json_array();
    for (int i = g->first; i < g->first + g->count; i++) json_array_append_new(params, json_integer(i));
    json_object_set_new(j, "params", params);
    return j;
}

char *nb_optim_state_json(const nb_optim *o) {
    if (!o) return nb__fail(NB_ERR_NULL, "optim_state_json: optimizer is NULL");
    json_t *root = json_object(), *groups = json_array(), *state = json_array();
    json_object_set_new(root, "optimizer", json_string(kind_names[o->kind]));
    for (int gi = 0; gi < o->n_groups; gi++)
        json_array_append_new(groups, group_json(o->kind, &o->groups[gi]));
    json_object_set_new(root, "param_groups", groups);
    for (int i = 0; i < o->n_params; i++) {
        json_t *s = json_object();
        json_object_set_new(s, "step", json_integer(o->params[i].step));
        json_array_append_new(state, s);
    }
    json_object_set_new(root, "state", state);
    return nb__json_dump(root, "optimizer state");
}

/* Reads group gi from j into *g (a copy of the current group), checking everything. */
static bool read_group(const nb_optim *o, int gi, const json_t *j, nb__group *g) {
    char where[64];
    snprintf(where, sizeof where, "optimizer state: param_groups[%d]", gi);
    if (!nb__json_keys(j, group_keys[o->kind], n_group_keys(o->kind), where)) return false;
    bool ok = nb__json_num(j, "lr", &g->lr, where);
    const json_t *init = json_object_get(j, "initial_lr");
    g->has_initial_lr = !json_is_null(init);
    if (ok && g->has_initial_lr) ok = nb__json_num(j, "initial_lr", &g->initial_lr, where);
    ok = ok && nb__json_num(j, "weight_decay", &g->weight_decay, where);
    bool flag = false;
    switch (o->kind) {
    case NB__SGD:
        ok = ok && nb__json_num(j, "momentum", &g->momentum, where) &&
             nb__json_num(j, "dampening", &g->dampening, where) &&
             nb__json_bool(j, "nesterov", &g->nesterov, where);
        break;
    case NB__ADAGRAD:
        ok = ok && nb__json_num(j, "lr_decay", &g->lr_decay, where) &&
             nb__json_num(j, "initial_accumulator_value", &g->initial_accumulator_value, where) &&
             nb__json_num(j, "eps", &g->eps, where);
        break;
    case NB__RMSPROP:
        ok = ok && nb__json_num(j, "alpha", &g->alpha, where) &&
             nb__json_num(j, "eps", &g->eps, where) &&
             nb__json_num(j, "momentum", &g->momentum, where) &&
             nb__json_bool(j, "centered", &flag, where);
        if (ok && flag != g->centered)
            return nb__fail(NB_ERR_ARG, "%s: centered is %s in the state but %s in this optimizer "
                            "(it decides the state tensors)", where, flag ? "true" : "false",
                            g->centered ? "true" : "false"), false;
        break;
    default: {
        double betas[2];
        ok = ok && nb__json_nums(j, "betas", betas, 2, where) &&
             nb__json_num(j, "eps", &g->eps, where) && nb__json_bool(j, "amsgrad", &flag, where);
        if (ok) {
            g->beta1 = betas[0];
            g->beta2 = betas[1];
        }
        if (ok && flag != g->amsgrad)
            return nb__fail(NB_ERR_ARG, "%s: amsgrad is %s in the state but %s in this optimizer "
                            "(it decides the state tensors)", where, flag ? "true" : "false",
                            g->amsgrad ? "true" : "false"), false;
        break;
    }
    }
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
            if (slot_needed(o->kind, g, s) && !o->params[i].slot[s])
                return nb__fail(NB_ERR_ARG, "%s: momentum %g needs a momentum buffer, which this "
                                "optimizer was built without", where, g->momentum), false;
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
    if (ok && (!kind || strcmp(kind, kind_names[o->kind]) != 0))
        ok = (nb__fail(NB_ERR_ARG, "%s: 'optimizer' is %s%s%s, this optimizer is %s", where,
                      kind ? "\"" : "", kind ? kind : "not a string", kind ? "\"" : "",
                      kind_names[o->kind]), false);
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
        ok = nb__json_keys(s, state_keys, 1, w) && nb__json_int(s, "step", &steps[i], w);
        if (ok && steps[i] < 0) ok = (nb__fail(NB_ERR_ARG, "%s: 'step' is negative", w), false);
    }
    if (ok) {
        memcpy(o->groups, staged, sizeof(nb__group) * (size_t)o->n_groups);
        for (int i = 0; i < o->n_params; i++) o->params[i].step = steps[i];
    }
    nb__dealloc(steps, steps ? sizeof(int64_t) * (size_t)o->n_params : 0);
    nb__dealloc(staged, staged ? sizeof(nb__group) * (size_t)o->n_groups : 0);
    json_decref(root);
    return ok ? NB_OK : nb_error_code();
}
