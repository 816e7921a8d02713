/*
 * optim_internal.h — what the optimisers (optim.c), their update kernels (update.c), the
 * schedules (sched.c) and the strict JSON helpers (json.c) share.
 *
 * An optimiser is a list of parameter groups, each a run [first, first + count) of the parameter
 * list, with torch's per-group hyper-parameters (all of them, as torch keeps them in the group's
 * dict).  Each parameter carries its step count and up to NB__SLOTS state tensors, made when it
 * is added (a step never allocates).
 */
#ifndef NB_OPTIM_INTERNAL_H
#define NB_OPTIM_INTERNAL_H

#include "../core/core.h"

#include <jansson.h>

typedef enum {
    NB__SGD, NB__ADAGRAD, NB__RMSPROP, NB__ADAM, NB__ADAMW, NB__OPTIM_KIND_COUNT
} nb__optim_kind;

#define NB__SLOTS 3
#define NB__NAME_MAX 48 /* "state.2147483647.max_exp_avg_sq" fits */

/* Elements above which an update loop is split across OpenMP threads (statically, so each
 * element is updated by one thread and the bits do not depend on the thread count). */
#define NB__OPTIM_PARALLEL_MIN (1 << 15)

typedef struct {
    double lr;
    double initial_lr; /* set by the first schedule made on the optimiser (torch's setdefault) */
    bool has_initial_lr;
    double weight_decay;
    double momentum, dampening; /* SGD; RMSprop's momentum */
    bool nesterov;
    double lr_decay, initial_accumulator_value; /* Adagrad */
    double alpha;                               /* RMSprop */
    bool centered;
    double beta1, beta2; /* Adam, AdamW */
    bool amsgrad;
    double eps;
    int first, count; /* the group's parameters */
} nb__group;

typedef struct {
    nb_tensor *param; /* one reference held */
    int64_t step; /* updates applied (torch's state['step']; SGD: its momentum buffer is set) */
    nb_tensor *slot[NB__SLOTS]; /* state tensors, NULL where the optimiser has none */
    char name[NB__SLOTS][NB__NAME_MAX];
} nb__param;

struct nb_optim {
    nb__optim_kind kind;
    nb__group defaults; /* the constructor's options, for groups added later */
    nb__group *groups;
    int n_groups;
    nb__param *params;
    int n_params;
};

const char *nb__optim_name(nb__optim_kind kind); /* "sgd", "adam", ... */

/* Schedules that cycle momentum: whether the optimiser has a momentum they can set (beta1 counts
 * when beta1_ok), and setting it, which makes the momentum buffers a group now needs (only a
 * schedule's constructor calls this, never its step: a buffer exists from the first nonzero
 * momentum on). */
bool nb__optim_has_momentum(const nb_optim *o, bool beta1_ok);
double nb__optim_momentum(const nb_optim *o, int group);
nb_status nb__optim_set_momentum(nb_optim *o, int group, double momentum);

/* ---- update kernels (update.c): raw float arrays of n elements, outputs first.  The scalars
 * are the ones torch's tensor calls see, rounded to float as torch rounds a Python float that
 * scales a float32 tensor (so 1 - beta1 is formed in double by the caller, then rounded). */
void nb__sgd_update(float *p, float *buf, const float *g, int64_t n, float lr, float weight_decay,
                    float momentum, float one_minus_dampening, bool nesterov, bool first_step);
void nb__adagrad_update(float *p, float *sum, const float *g, int64_t n, float clr,
                        float weight_decay, float eps);
void nb__rmsprop_update(float *p, float *square_avg, float *buf, float *grad_avg, const float *g,
                        int64_t n, float lr, float alpha, float one_minus_alpha, float eps,
                        float weight_decay, float momentum);
/* Adam (decay_factor 1) and AdamW (weight_decay 0, decay_factor 1 - lr weight_decay). */
typedef struct {
    float step_size;             /* lr / (1 - beta1^step) */
    float bias_correction2_sqrt; /* sqrt(1 - beta2^step) */
    float beta1, one_minus_beta1, beta2, one_minus_beta2, eps;
    float weight_decay; /* Adam's L2 term */
    float decay_factor; /* AdamW's decoupled decay */
} nb__adam_scalars;
void nb__adam_update(float *p, float *exp_avg, float *exp_avg_sq, float *max_exp_avg_sq,
                     const float *g, int64_t n, const nb__adam_scalars *k);

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
