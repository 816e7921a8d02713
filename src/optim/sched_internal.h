/*
 * sched_internal.h — what the learning-rate schedules share: the schedule object and its
 * stepping and JSON state (sched.c), and the descriptor each kind fills in its own file
 * (schedules/<kind>.c), following torch/optim/lr_scheduler.py of torch 1.13.
 *
 * A schedule is a header (its optimiser, group count, last_epoch, base_lrs, last_lr, and the
 * milestones and children that MultiStepLR, SequentialLR and ChainedScheduler use) and the
 * kind's own struct, `state`, of kind->state_size bytes.  The kind's field table names what its
 * JSON state holds, in order, from either; the shared code writes and strictly reads it.
 *
 * Adding a schedule: a file schedules/<kind>.c defining `const nb__sched_kind nb__<kind>` and its
 * public constructor, and one line in NB__SCHED_KINDS below.
 */
#ifndef NB_SCHED_INTERNAL_H
#define NB_SCHED_INTERNAL_H

#include "optim_internal.h"

typedef struct nb__sched_kind nb__sched_kind;

struct nb_sched {
    const nb__sched_kind *kind;
    nb_optim *o;
    int n_groups; /* the optimiser's group count when the schedule was made */
    int64_t last_epoch;
    double *base_lrs, *last_lr; /* per group; with the kind's per-group arrays, one block */
    int n_milestones;           /* multisteplr (sorted), sequentiallr */
    int64_t *milestones;
    int n_children; /* chained, sequentiallr: owned */
    nb_sched **children;
    void *state; /* the kind's struct */
};

/* One saved field: its JSON key, its type, and where it is: in the header (nb_sched) or in the
 * kind's struct. */
typedef enum {
    NB__F_NUM,       /* double */
    NB__F_INT,       /* int64_t */
    NB__F_BOOL,      /* bool */
    NB__F_ENUM,      /* int, written as names[value] */
    NB__F_GROUPS,    /* double *, one per group (the shared code allocates it) */
    NB__F_MILESTONES /* the header's milestones */
} nb__sched_field_type;
typedef struct {
    const char *key; /* NULL ends a table */
    nb__sched_field_type type;
    bool in_state; /* in the kind's struct, else in the header */
    size_t offset;
    const char *const *names; /* NB__F_ENUM: the values' names, NULL-terminated */
} nb__sched_field;

#define NB__S_NUM(key, T, m) {key, NB__F_NUM, true, offsetof(T, m), NULL}
#define NB__S_INT(key, T, m) {key, NB__F_INT, true, offsetof(T, m), NULL}
#define NB__S_BOOL(key, T, m) {key, NB__F_BOOL, true, offsetof(T, m), NULL}
#define NB__S_ENUM(key, T, m, names) {key, NB__F_ENUM, true, offsetof(T, m), names}
#define NB__S_GROUPS(key, T, m) {key, NB__F_GROUPS, true, offsetof(T, m), NULL}
#define NB__S_HEADER(key, type, m) {key, type, false, offsetof(nb_sched, m), NULL}
#define NB__S_LAST_EPOCH NB__S_HEADER("last_epoch", NB__F_INT, last_epoch)
#define NB__S_BASE_LRS NB__S_HEADER("base_lrs", NB__F_GROUPS, base_lrs)
#define NB__S_LAST_LR NB__S_HEADER("last_lr", NB__F_GROUPS, last_lr)
#define NB__S_MILESTONES NB__S_HEADER("milestones", NB__F_MILESTONES, milestones)
/* The fields every _LRScheduler saves, first. */
#define NB__S_COMMON NB__S_LAST_EPOCH, NB__S_BASE_LRS, NB__S_LAST_LR

#define NB__SCHED_FIELDS_MAX 16 /* fields in a kind's table */

struct nb__sched_kind {
    const char *name; /* messages and the JSON's "type" */
    const nb__sched_field *fields;
    size_t state_size; /* the kind's struct; 0 for none */
    bool composite;    /* has children, saved under "schedulers" */
    /* torch's checks of the hyper-parameters (made or loaded), with its messages; NULL: none */
    bool (*check)(const nb_sched *s, const char *who);
    /* get_lr, the chainable form: group g's lr at s->last_epoch from its lr now */
    double (*get_lr)(nb_sched *s, int g, double lr);
    /* _get_closed_form_lr at s->last_epoch (SequentialLR's step(0)); NULL where torch has none */
    double (*closed_form)(const nb_sched *s, int g);
    /* Whether step e may be taken (an error naming why not); NULL: always */
    bool (*can_step)(const nb_sched *s, int64_t e);
    /* nb_sched_step: nb__sched_step_basic for most; NULL when it steps on a metric */
    nb_status (*step)(nb_sched *s);
    nb_status (*step_metric)(nb_sched *s, double value); /* NULL unless it steps on a metric */
};

/* The registry: one line per kind. */
#define NB__SCHED_KINDS(X)                                                                   \
    X(steplr) X(multisteplr) X(exponentiallr) X(cosinelr) X(linearlr) X(plateau) X(cycliclr) \
    X(onecyclelr) X(chained) X(sequentiallr)
#define NB__DECLARE_SCHED_KIND(k) extern const nb__sched_kind nb__##k;
NB__SCHED_KINDS(NB__DECLARE_SCHED_KIND)
#undef NB__DECLARE_SCHED_KIND
extern const nb__sched_kind *const nb__sched_kinds[]; /* NULL-terminated */

/* A schedule of `kind` on o with room for n_milestones, its per-group arrays zero and last_lr
 * the groups' lr; NULL (error set) when o is NULL or memory runs out. */
nb_sched *nb__sched_alloc(nb_optim *o, const nb__sched_kind *kind, int n_milestones);
/* _LRScheduler.__init__ up to the initial step: initial_lr (setdefault), base_lrs, last_epoch -1. */
void nb__sched_attach(nb_sched *s);
/* Checks s, attaches it and performs the initial step; frees s and returns NULL on failure. */
nb_sched *nb__sched_start(nb_sched *s);
/* _LRScheduler.step(): at_zero is step(0) (SequentialLR at a milestone), which takes the closed
 * form where the kind has one. */
nb_status nb__sched_basic_step(nb_sched *s, bool at_zero);
nb_status nb__sched_step_basic(nb_sched *s); /* basic_step(s, false), for kind->step */
void nb__sched_copy_group_lrs(nb_sched *s);   /* last_lr <- the groups' lr */
/* Checks shared by kinds beyond torch's: gamma finite and > 0 (lr times gamma must stay a
 * learning rate), "who: gamma must be finite and > 0, got nan"; v finite and >= 0. */
bool nb__sched_gamma_ok(double gamma, const char *who);
bool nb__sched_nonneg(double v, const char *what, const char *who);
/* Momentum cycling (CyclicLR, OneCycleLR) needs a momentum (SGD, RMSprop; Adam's beta1 when
 * beta1_ok): sets base[g], max[g] and the groups' momentum to the larger, so that any momentum
 * buffers exist before the first step. */
bool nb__sched_momentum_setup(nb_sched *s, const char *who, bool beta1_ok, double base, double max,
                              double *base_momentums, double *max_momentums);
/* Takes scheds[0..n) into a new composite of `kind` on o (NULL: scheds[0]'s), or frees them all:
 * a NULL, plateau, repeated schedule, or one on another optimiser fails, as does a composite one
 * unless nested_ok; `verb` words the message ("chained").  The composite has n_milestones
 * milestones copied from milestones. */
nb_sched *nb__sched_composite_new(const nb__sched_kind *kind, nb_optim *o, int n,
                                  nb_sched *const *scheds, bool nested_ok, const char *verb,
                                  int n_milestones, const int *milestones);

#endif
