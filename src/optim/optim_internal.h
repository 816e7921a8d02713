/*
 * optim_internal.h — what the optimisers share: the optimiser object (optim.c), the descriptor
 * each kind fills in its own file (optimizers/<kind>.c) and the strict JSON helpers (json.c);
 * the update rules are backend kernels (backend/backend.h, backend/cpu/update.c).  The
 * schedules' descriptor is in sched_internal.h.
 *
 * An optimiser is a list of parameter groups, each a run [first, first + count) of the parameter
 * list, with torch's per-group hyper-parameters: lr, initial_lr and weight_decay, which every
 * kind has, and the kind's own in hp[], named by the kind's field table.  Each parameter carries
 * its step count and up to NB__SLOTS state tensors, made when it is added (a step never
 * allocates).
 *
 * Adding an optimiser: a file optimizers/<kind>.c defining `const nb__optim_kind nb__<kind>` and
 * its public constructor, and one line in NB__OPTIM_KINDS below.
 */
#ifndef NB_OPTIM_INTERNAL_H
#define NB_OPTIM_INTERNAL_H

#include "../backend/backend.h"
#include "../core/core.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>

#define NB__SLOTS 3
#define NB__NAME_MAX 48 /* "state.2147483647.max_exp_avg_sq" fits */
#define NB__GROUP_HP 6  /* the most hyper-parameters of a kind beyond lr and weight_decay */

typedef struct {
    double lr;
    double initial_lr; /* set by the first schedule made on the optimiser (torch's setdefault) */
    bool has_initial_lr;
    double weight_decay;
    double hp[NB__GROUP_HP]; /* the kind's own, in the order its file names them; flags are 0/1 */
    int first, count;        /* the group's parameters */
} nb__group;

typedef struct {
    nb_tensor *param; /* one reference held */
    int64_t step; /* updates applied (torch's state['step']; SGD: its momentum buffer is set) */
    nb_tensor *slot[NB__SLOTS]; /* state tensors, NULL where the optimiser has none */
    char name[NB__SLOTS][NB__NAME_MAX];
} nb__param;

/* One hyper-parameter of a group as the JSON state holds it, at `offset` in nb__group. */
typedef enum {
    NB__HP_NUM,  /* a double */
    NB__HP_FLAG, /* true / false, held as 1 / 0 */
    NB__HP_PAIR, /* two doubles side by side in hp[], written as an array (Adam's betas) */
} nb__hp_type;
typedef struct {
    const char *key; /* NULL ends a table */
    nb__hp_type type;
    size_t offset;
    bool decides_state; /* a flag that decides which state tensors exist: a loaded state must
                           agree with the optimiser (RMSprop's centered, Adam's amsgrad) */
} nb__hp_field;
#define NB__HP(key, i) {key, NB__HP_NUM, offsetof(nb__group, hp[i]), false}
#define NB__HP_FLAG(key, i) {key, NB__HP_FLAG, offsetof(nb__group, hp[i]), false}
#define NB__HP_STATE_FLAG(key, i) {key, NB__HP_FLAG, offsetof(nb__group, hp[i]), true}
#define NB__HP_PAIR(key, i) {key, NB__HP_PAIR, offsetof(nb__group, hp[i]), false}
#define NB__HP_WEIGHT_DECAY {"weight_decay", NB__HP_NUM, offsetof(nb__group, weight_decay), false}
#define NB__NO_MOMENTUM (-1)

/* An optimiser kind.  The shared code (optim.c) does parameter groups, state tensors, zero_grad,
 * lr, and the JSON state; the kind says what is particular to it. */
typedef struct {
    const char *name; /* torch's class name in lower case: messages, the JSON's "optimizer" */
    /* The group's keys in the JSON state, in order, between "lr", "initial_lr" and "params"
     * (torch's param_group keys); weight_decay among them where torch puts it. */
    const nb__hp_field *fields;
    const char *slots[NB__SLOTS]; /* state tensors' names (torch's state keys) */
    /* Whether a parameter of group g needs state slot `slot`. */
    bool (*slot_needed)(const nb__group *g, int slot);
    float (*slot_init)(const nb__group *g); /* a new state tensor's value; NULL: zeros */
    /* torch's checks of the kind's hyper-parameters (lr and weight_decay are checked for every
     * kind before), with its messages; who starts them. */
    bool (*check)(const nb__group *g, const char *who);
    /* One update of parameter P, which has a gradient: calls the kind's backend kernel.  NULL
     * for a kind that steps all parameters at once and only with a closure (L-BFGS). */
    void (*step)(const nb__group *g, nb__param *P);
    /* A kind that needs the closure (it re-evaluates the loss within a step, L-BFGS): the whole
     * step, *loss set to the first evaluation's loss as torch returns it.  NULL for the others,
     * whose step_closure calls the closure once and then step. */
    nb_status (*step_closure)(nb_optim *o, nb_closure_fn closure, void *ctx, double *loss);
    /* Makes (new_extra) and frees (free_extra) the kind's own whole-optimiser state o->extra;
     * NULL where the kind has none. */
    void *(*new_extra)(const nb_optim *o);
    void (*free_extra)(nb_optim *o);
    bool single_group; /* torch refuses parameter groups (L-BFGS) */
    /* A kind with whole-optimiser state (NULL for the others): extra_json adds its scalars to
     * the JSON state's first entry, whose keys extra_load then checks (commit false: nothing
     * changes; it may fail) and restores (commit true: cannot fail), reading root, the whole
     * state; extra_tensors lists its state tensors after the parameters' slots as
     * nb_optim_state_tensors does (writing at most cap; the count, -1 on failure). */
    void (*extra_json)(const nb_optim *o, json_t *state0);
    bool (*extra_load)(nb_optim *o, const json_t *root, bool commit);
    int (*extra_tensors)(nb_optim *o, const char **names, nb_tensor **tensors, int cap);
    int momentum;           /* hp[] index of the momentum a schedule may cycle, or NB__NO_MOMENTUM */
    bool momentum_is_beta1; /* it is Adam's beta1: only one-cycle cycles it, and it stays < 1 */
} nb__optim_kind;

/* The registry: one line per kind. */
#define NB__OPTIM_KINDS(X) X(sgd) X(adagrad) X(rmsprop) X(adam) X(adamw) X(lbfgs)
#define NB__DECLARE_OPTIM_KIND(k) extern const nb__optim_kind nb__##k;
NB__OPTIM_KINDS(NB__DECLARE_OPTIM_KIND)
#undef NB__DECLARE_OPTIM_KIND
extern const nb__optim_kind *const nb__optim_kinds[]; /* NULL-terminated */

struct nb_optim {
    const nb__optim_kind *kind;
    nb__group defaults; /* the constructor's options, for groups added later */
    nb__group *groups;
    int n_groups;
    nb__param *params;
    int n_params;
    void *extra; /* the kind's own state beyond per-parameter slots (L-BFGS's history), or NULL */
};

/* Makes an optimiser of `kind` with one group of params[0..n) and `defaults` (checked). */
nb_optim *nb__optim_new(const nb__optim_kind *kind, nb__group defaults, int n,
                        nb_tensor *const *params);
/* Calls closure(ctx) inside a scope of its own: its loss, or NAN with the error set (the
 * closure's, prefixed by who, or NB_ERR_VALUE for a NaN loss it did not explain). */
double nb__optim_call_closure(nb_closure_fn closure, void *ctx, const char *who);
/* The checks shared by every range check: v >= 0 and finite, else "who: Invalid what: v". */
bool nb__optim_nonneg(double v, const char *what, const char *who);

/* A zero option means torch's default; NB_ZERO (negative zero) / NB_ZERO_INT mean 0. */
static inline double nb__or_default(double v, double dflt) {
    if (v != 0) return v;
    return signbit(v) ? 0.0 : dflt;
}
static inline int64_t nb__or_default_int(int v, int dflt) {
    return v == NB_ZERO_INT ? 0 : v == 0 ? dflt : v;
}
static inline bool nb__is_unset(double v) { return v == 0 && !signbit(v); }

/* Schedules that cycle momentum: whether the optimiser has a momentum they can set (beta1 counts
 * when beta1_ok), and setting it, which makes the momentum buffers a group now needs (only a
 * schedule's constructor calls this, never its step: a buffer exists from the first nonzero
 * momentum on). */
bool nb__optim_has_momentum(const nb_optim *o, bool beta1_ok);
nb_status nb__optim_set_momentum(nb_optim *o, int group, double momentum);


/* ---- strict JSON (json.c).  `where` names the place in error messages ("optimizer state:
 * param_groups[1]").  Each getter fails with NB_ERR_ARG naming the key. */
/* obj must be an object whose keys are exactly keys[0..n). */
bool nb__json_keys(const json_t *obj, const char *const *keys, int n, const char *where);
bool nb__json_num(const json_t *obj, const char *key, double *out, const char *where);
bool nb__json_int(const json_t *obj, const char *key, int64_t *out, const char *where);
bool nb__json_bool(const json_t *obj, const char *key, bool *out, const char *where);
/* An array of exactly n numbers. */
bool nb__json_nums(const json_t *obj, const char *key, double *out, int n, const char *where);
/* A number; non-finite values (inf, -inf, nan) are written as strings, as JSON has none. */
json_t *nb__json_real(double v);
json_t *nb__json_reals(const double *v, int n);
/* Parses text as a JSON object; NULL with an error naming what and the position. */
json_t *nb__json_parse(const char *text, const char *what);
/* Dumps root (consumed) as a string the caller frees with free(); NULL on failure. */
char *nb__json_dump(json_t *root, const char *what);

#endif
