/*
 * test_optim.c — optimisers, schedules and clipping against torch 1.13 (tests/golden/optim.json,
 * made by tools/gen_golden_optim.py), plus what torch cannot tell us: clipping by hand, zero_grad,
 * frozen parameters, gradient accumulation, state round trips, errors, zero mallocs per step and
 * independence from the thread count.  Runs from the repository root.
 *
 * Tolerances.  Parameter trajectories: |got - want| <= 1e-6 + 1e-6 |want| over 20 steps.  Both
 * sides do the same float32 operations in the same order, but torch's kernels fuse some
 * multiply-adds (FMA), so a step may differ by an ulp and the differences add up over the steps:
 * the largest seen is 1e-6 on values near 2 (four ulps), under SGD with momentum.  Learning rates
 * are computed in double with the same formulas and the same libm on both sides; they agree to
 * the bit here, and to 1e-13 relative is asked so that another libm's cos may differ.
 */
#include "check.h"

#include <float.h>
#include "golden_json.h"
#include "optim/sched_internal.h" /* the kinds' registries */

/* Golden trajectories: a value per step; reports the config and step that differ. */
#define CHECK_NEAR_AT(what, step, got, want, atol, rtol)                                      \
    do {                                                                                      \
        double g_ = (got), w_ = (want);                                                       \
        if (fabs(g_ - w_) <= (atol) + (rtol) * fabs(w_)) check_passed_++;                     \
        else CHECK_FAIL_("%s, step %d: got %.17g, want %.17g (diff %.3g)", what, (int)(step), \
                         g_, w_, fabs(g_ - w_));                                              \
    } while (0)

#define TRAJ_ATOL 1e-6
#define TRAJ_RTOL 1e-6
#define LR_RTOL 1e-13
#define MAX_PARAMS 3
#define MAX_ELEMS 16

static json_t *golden;

/* ---------------------------------------------------------------- reading the golden file */

static int read_floats(const json_t *a, float *out, int cap) {
    int n = (int)json_array_size(a);
    for (int i = 0; i < n && i < cap; i++)
        out[i] = (float)json_number_value(json_array_get(a, (size_t)i));
    return n;
}

/* An option from a config: absent -> 0 (torch's default), present and 0 -> NB_ZERO. */
static double opt_num(const json_t *opts, const char *key) {
    const json_t *v = json_object_get(opts, key);
    if (!v) return 0;
    double x = json_number_value(v);
    return x == 0 ? NB_ZERO : x;
}
static int opt_int(const json_t *opts, const char *key) {
    const json_t *v = json_object_get(opts, key);
    if (!v) return 0;
    int x = (int)json_integer_value(v);
    return x == 0 ? NB_ZERO_INT : x;
}
static bool opt_bool(const json_t *opts, const char *key) {
    return json_is_true(json_object_get(opts, key));
}
static const char *opt_str(const json_t *opts, const char *key) {
    const char *s = json_string_value(json_object_get(opts, key));
    return s ? s : "";
}

/* The optimiser a config describes, over params[0..n); lr (if nonzero) replaces opts' lr. */
static nb_optim *make_optim(const char *kind, const json_t *opts, int n, nb_tensor *const *params,
                            double lr) {
    double l = lr != 0 ? lr : opt_num(opts, "lr");
    if (!strcmp(kind, "sgd"))
        return nb_sgd_new(n, params, (nb_sgd_opts){.lr = l, .momentum = opt_num(opts, "momentum"),
                                                   .dampening = opt_num(opts, "dampening"),
                                                   .weight_decay = opt_num(opts, "weight_decay"),
                                                   .nesterov = opt_bool(opts, "nesterov")});
    if (!strcmp(kind, "adagrad"))
        return nb_adagrad_new(n, params, (nb_adagrad_opts){
            .lr = l, .lr_decay = opt_num(opts, "lr_decay"),
            .weight_decay = opt_num(opts, "weight_decay"),
            .initial_accumulator_value = opt_num(opts, "initial_accumulator_value"),
            .eps = opt_num(opts, "eps")});
    if (!strcmp(kind, "rmsprop"))
        return nb_rmsprop_new(n, params, (nb_rmsprop_opts){
            .lr = l, .alpha = opt_num(opts, "alpha"), .eps = opt_num(opts, "eps"),
            .weight_decay = opt_num(opts, "weight_decay"), .momentum = opt_num(opts, "momentum"),
            .centered = opt_bool(opts, "centered")});
    nb_adam_opts a = {.lr = l, .beta1 = opt_num(opts, "beta1"), .beta2 = opt_num(opts, "beta2"),
                      .eps = opt_num(opts, "eps"), .weight_decay = opt_num(opts, "weight_decay"),
                      .amsgrad = opt_bool(opts, "amsgrad")};
    return !strcmp(kind, "adam") ? nb_adam_new(n, params, a) : nb_adamw_new(n, params, a);
}

/* The three parameters of the golden problem, at their initial values. */
static void make_params(nb_tensor **p) {
    const json_t *shapes = json_object_get(golden, "shapes"), *init = json_object_get(golden, "init");
    for (int i = 0; i < MAX_PARAMS; i++) {
        const json_t *s = json_array_get(shapes, (size_t)i);
        int64_t shape[2];
        int nd = (int)json_array_size(s);
        for (int d = 0; d < nd; d++) shape[d] = json_integer_value(json_array_get(s, (size_t)d));
        float v[MAX_ELEMS];
        read_floats(json_array_get(init, (size_t)i), v, MAX_ELEMS);
        p[i] = nb_from_data(v, nd, shape);
        nb_set_requires_grad(p[i], true);
    }
}

/* p.grad = g (a copy), as the golden script does; g NULL: p.grad = None. */
static void set_grad(nb_tensor *p, const float *g) {
    if (!g) {
        nb_clear_grad(p);
        return;
    }
    if (nb_grad(p)) {
        nb_copy_from(nb_grad(p), g, nb_numel(p));
        return;
    }
    nb_scope_begin();
    nb_backward_grad(p, nb_from_data(g, nb_ndim(p), nb_shape(p)));
    nb_scope_end();
}

/* Sets the golden gradients of step t. */
static void set_step_grads(nb_tensor **p, int t) {
    const json_t *step = json_array_get(json_object_get(golden, "grads"), (size_t)t);
    for (int i = 0; i < MAX_PARAMS; i++) {
        const json_t *g = json_array_get(step, (size_t)i);
        float v[MAX_ELEMS];
        if (!json_is_null(g)) read_floats(g, v, MAX_ELEMS);
        set_grad(p[i], json_is_null(g) ? NULL : v);
    }
}

/* The parameters flattened in index order. */
static int gather(nb_tensor **p, float *out) {
    int k = 0;
    for (int i = 0; i < MAX_PARAMS; i++) {
        nb_copy_to(p[i], out + k, nb_numel(p[i]));
        k += (int)nb_numel(p[i]);
    }
    return k;
}

/* The optimiser of golden config c over p: one group, or the config's groups. */
static nb_optim *config_optim(const json_t *c, nb_tensor **p) {
    const char *kind = opt_str(c, "kind");
    const json_t *opts = json_object_get(c, "opts"), *groups = json_object_get(c, "groups");
    if (!groups) return make_optim(kind, opts, MAX_PARAMS, p, 0);
    nb_optim *o = NULL;
    for (size_t gi = 0; gi < json_array_size(groups); gi++) {
        const json_t *g = json_array_get(groups, gi), *ids = json_object_get(g, "params");
        nb_tensor *gp[MAX_PARAMS];
        int n = (int)json_array_size(ids);
        for (int k = 0; k < n; k++) gp[k] = p[json_integer_value(json_array_get(ids, (size_t)k))];
        if (gi == 0) {
            o = make_optim(kind, opts, n, gp, 0);
        } else {
            nb_group_opts go = {.lr = opt_num(g, "lr"), .weight_decay = opt_num(g, "weight_decay"),
                                .momentum = opt_num(g, "momentum")};
            CHECK_EQ_INT(nb_optim_add_group(o, n, gp, &go), NB_OK);
        }
    }
    return o;
}

static void free_params(nb_tensor **p, int n) {
    for (int i = 0; i < n; i++) nb_tensor_free(p[i]);
}

/* ---------------------------------------------------------------- optimisers vs torch */

static void optimisers_follow_torch_trajectories(void) {
    const json_t *configs = json_object_get(golden, "optim");
    int steps = (int)json_integer_value(json_object_get(golden, "steps"));
    CHECK(json_array_size(configs) >= 20);
    for (size_t ci = 0; ci < json_array_size(configs); ci++) {
        const json_t *c = json_array_get(configs, ci), *traj = json_object_get(c, "trajectory");
        const char *name = opt_str(c, "name");
        nb_tensor *p[MAX_PARAMS];
        make_params(p);
        nb_optim *o = config_optim(c, p);
        CHECK(o != NULL);
        for (int t = 0; o && t < steps; t++) {
            set_step_grads(p, t);
            CHECK_EQ_INT(nb_optim_step(o), NB_OK);
            float got[MAX_PARAMS * MAX_ELEMS];
            int n = gather(p, got);
            const json_t *row = json_array_get(traj, (size_t)t);
            CHECK_EQ_INT(json_array_size(row), n);
            for (int i = 0; i < n; i++)
                CHECK_NEAR_AT(name, t, got[i], json_number_value(json_array_get(row, (size_t)i)),
                              TRAJ_ATOL, TRAJ_RTOL);
        }
        nb_optim_free(o);
        free_params(p, MAX_PARAMS);
    }
}

/* MSE of a linear model, W [5,1], b [1], on rows [lo, hi) of X [64,5], y [64,1], times scale. */
static nb_tensor *mse(nb_tensor *W, nb_tensor *b, nb_tensor *X, nb_tensor *y, int lo, int hi,
                      float scale) {
    nb_tensor *xs = nb_slice(X, 0, lo, hi, 1), *ys = nb_slice(y, 0, lo, hi, 1);
    nb_tensor *r = nb_sub(nb_add(nb_matmul(xs, W), b), ys);
    return nb_mul_scalar(nb_mean(nb_pow_scalar(r, 2)), scale);
}

typedef struct {
    nb_tensor *X, *y, *W, *b;
} linear_model;

static linear_model linear_new(void) {
    const json_t *lin = json_object_get(golden, "linear");
    float X[64 * 5], y[64], W0[5];
    read_floats(json_object_get(lin, "X"), X, 64 * 5);
    read_floats(json_object_get(lin, "y"), y, 64);
    read_floats(json_object_get(lin, "W0"), W0, 5);
    linear_model m = {nb_from_data(X, NB_SHAPE(64, 5)), nb_from_data(y, NB_SHAPE(64, 1)),
                      nb_from_data(W0, NB_SHAPE(5, 1)), nb_zeros(NB_SHAPE(1))};
    nb_set_requires_grad(m.W, true);
    nb_set_requires_grad(m.b, true);
    return m;
}

static void linear_free(linear_model *m) {
    nb_tensor *all[] = {m->X, m->y, m->W, m->b};
    free_params(all, 4);
}

/* The whole loop (autograd, matmul, SGD with momentum) against torch: the forward and backward
 * add their own float32 rounding (BLAS sums in another order than torch), 1.3e-7 at most here. */
static void linear_model_training_follows_torch(void) {
    const json_t *lin = json_object_get(golden, "linear"), *traj = json_object_get(lin, "trajectory");
    linear_model m = linear_new();
    nb_sgd_opts opts = {.lr = json_real_value(json_object_get(lin, "lr")),
                        .momentum = json_real_value(json_object_get(lin, "momentum"))};
    nb_optim *o = nb_sgd_new(2, (nb_tensor *[]){m.W, m.b}, opts);
    for (int t = 0; t < (int)json_array_size(traj); t++) {
        nb_optim_zero_grad(o);
        nb_scope_begin();
        nb_backward(mse(m.W, m.b, m.X, m.y, 0, 64, 1.0f));
        nb_scope_end();
        nb_optim_step(o);
        float got[6];
        nb_copy_to(m.W, got, 5);
        nb_copy_to(m.b, got + 5, 1);
        const json_t *row = json_array_get(traj, (size_t)t);
        for (int i = 0; i < 6; i++)
            CHECK_NEAR_AT("linear", t, got[i], json_number_value(json_array_get(row, (size_t)i)),
                          TRAJ_ATOL, TRAJ_RTOL);
    }
    nb_optim_free(o);
    linear_free(&m);
}

/* ---------------------------------------------------------------- schedules vs torch */

static nb_sched *make_sched(nb_optim *o, const json_t *spec) {
    const char *k = opt_str(spec, "kind");
    if (!strcmp(k, "steplr"))
        return nb_steplr_new(o, (int)json_integer_value(json_object_get(spec, "step_size")),
                             json_number_value(json_object_get(spec, "gamma")));
    if (!strcmp(k, "multisteplr")) {
        const json_t *ms = json_object_get(spec, "milestones");
        int m[16], n = (int)json_array_size(ms);
        for (int i = 0; i < n; i++) m[i] = (int)json_integer_value(json_array_get(ms, (size_t)i));
        return nb_multisteplr_new(o, n, m, json_number_value(json_object_get(spec, "gamma")));
    }
    if (!strcmp(k, "exponentiallr"))
        return nb_exponentiallr_new(o, json_number_value(json_object_get(spec, "gamma")));
    if (!strcmp(k, "cosinelr"))
        return nb_cosinelr_new(o, (int)json_integer_value(json_object_get(spec, "T_max")),
                               json_number_value(json_object_get(spec, "eta_min")));
    if (!strcmp(k, "linearlr"))
        return nb_linearlr_new(o, json_number_value(json_object_get(spec, "start_factor")),
                               json_number_value(json_object_get(spec, "end_factor")),
                               (int)json_integer_value(json_object_get(spec, "total_iters")));
    if (!strcmp(k, "plateau"))
        return nb_plateau_new(o, (nb_plateau_opts){
            .mode = !strcmp(opt_str(spec, "mode"), "max") ? NB_PLATEAU_MAX : NB_PLATEAU_MIN,
            .factor = opt_num(spec, "factor"), .patience = opt_int(spec, "patience"),
            .threshold = opt_num(spec, "threshold"),
            .threshold_mode = !strcmp(opt_str(spec, "threshold_mode"), "abs") ? NB_THRESHOLD_ABS
                                                                             : NB_THRESHOLD_REL,
            .cooldown = opt_int(spec, "cooldown"), .min_lr = opt_num(spec, "min_lr"),
            .eps = opt_num(spec, "eps")});
    if (!strcmp(k, "cycliclr")) {
        const char *mode = opt_str(spec, "mode");
        return nb_cycliclr_new(o, (nb_cyclic_opts){
            .base_lr = opt_num(spec, "base_lr"), .max_lr = opt_num(spec, "max_lr"),
            .step_size_up = opt_int(spec, "step_size_up"),
            .step_size_down = opt_int(spec, "step_size_down"),
            .mode = !strcmp(mode, "triangular2") ? NB_CYCLIC_TRIANGULAR2
                    : !strcmp(mode, "exp_range") ? NB_CYCLIC_EXP_RANGE : NB_CYCLIC_TRIANGULAR,
            .gamma = opt_num(spec, "gamma"), .no_cycle_momentum = opt_bool(spec, "no_cycle_momentum"),
            .base_momentum = opt_num(spec, "base_momentum"),
            .max_momentum = opt_num(spec, "max_momentum")});
    }
    if (!strcmp(k, "onecyclelr"))
        return nb_onecyclelr_new(o, (nb_onecycle_opts){
            .max_lr = opt_num(spec, "max_lr"), .total_steps = opt_int(spec, "total_steps"),
            .pct_start = opt_num(spec, "pct_start"),
            .anneal_strategy = !strcmp(opt_str(spec, "anneal_strategy"), "linear") ? NB_ANNEAL_LINEAR
                                                                                   : NB_ANNEAL_COS,
            .no_cycle_momentum = opt_bool(spec, "no_cycle_momentum"),
            .base_momentum = opt_num(spec, "base_momentum"),
            .max_momentum = opt_num(spec, "max_momentum"), .div_factor = opt_num(spec, "div_factor"),
            .final_div_factor = opt_num(spec, "final_div_factor"),
            .three_phase = opt_bool(spec, "three_phase")});
    const json_t *kids = json_object_get(spec, "schedulers");
    nb_sched *s[8];
    int n = (int)json_array_size(kids);
    for (int i = 0; i < n; i++) s[i] = make_sched(o, json_array_get(kids, (size_t)i));
    if (!strcmp(k, "chained")) return nb_chained_new(n, s);
    const json_t *ms = json_object_get(spec, "milestones");
    int m[8];
    for (int i = 0; i < n - 1; i++) m[i] = (int)json_integer_value(json_array_get(ms, (size_t)i));
    return nb_sequentiallr_new(o, n, s, m);
}

/* The optimiser of a schedule config: two groups whose lr are group_lrs times the config's. */
typedef struct {
    nb_tensor *p[2];
    nb_optim *o;
} sched_rig;

static sched_rig sched_rig_new(const json_t *optim_spec) {
    const json_t *mult = json_object_get(golden, "group_lrs");
    double lr = json_number_value(json_object_get(optim_spec, "lr"));
    sched_rig r = {{nb_zeros(NB_SHAPE(2)), nb_zeros(NB_SHAPE(3))}, NULL};
    for (int i = 0; i < 2; i++) nb_set_requires_grad(r.p[i], true);
    r.o = make_optim(opt_str(optim_spec, "kind"), optim_spec, 1, r.p,
                     lr * json_number_value(json_array_get(mult, 0)));
    nb_group_opts g = {.lr = lr * json_number_value(json_array_get(mult, 1))};
    CHECK_EQ_INT(nb_optim_add_group(r.o, 1, &r.p[1], &g), NB_OK);
    return r;
}

static void sched_rig_free(sched_rig *r) {
    nb_optim_free(r->o);
    free_params(r->p, 2);
}

/* Steps s once as config c says (a metric for plateau). */
static nb_status sched_step(nb_sched *s, const json_t *spec, int t) {
    const json_t *metrics = json_object_get(spec, "metrics");
    if (!strcmp(opt_str(spec, "kind"), "plateau"))
        return nb_sched_step_metric(s, json_number_value(json_array_get(metrics, (size_t)t)));
    return nb_sched_step(s);
}

static void check_lrs(const char *name, int t, const sched_rig *r, const nb_sched *s,
                      const json_t *c) {
    const json_t *lr = json_array_get(json_object_get(c, "lr"), (size_t)t);
    const json_t *mom = json_array_get(json_object_get(c, "momentum"), (size_t)t);
    for (int g = 0; g < 2; g++) {
        double want = json_number_value(json_array_get(lr, (size_t)g));
        CHECK_NEAR_AT(name, t, nb_sched_get_last_lr(s, g), want, 1e-300, LR_RTOL);
        CHECK_NEAR_AT(name, t, nb_optim_get_lr(r->o, g), want, 1e-300, LR_RTOL);
        if (mom)
            CHECK_NEAR_AT(name, t, nb_optim_get_momentum(r->o, g),
                          json_number_value(json_array_get(mom, (size_t)g)), 1e-300, LR_RTOL);
    }
}

static void schedules_follow_torch(void) {
    const json_t *configs = json_object_get(golden, "sched");
    int steps = (int)json_integer_value(json_object_get(golden, "sched_steps"));
    CHECK(json_array_size(configs) >= 18);
    for (size_t ci = 0; ci < json_array_size(configs); ci++) {
        const json_t *c = json_array_get(configs, ci), *spec = json_object_get(c, "sched");
        const char *name = opt_str(c, "name");
        sched_rig r = sched_rig_new(json_object_get(c, "optim"));
        nb_sched *s = make_sched(r.o, spec);
        CHECK(s != NULL);
        if (s) check_lrs(name, 0, &r, s, c);
        for (int t = 0; s && t < steps; t++) {
            CHECK_EQ_INT(sched_step(s, spec, t), NB_OK);
            check_lrs(name, t + 1, &r, s, c);
        }
        nb_sched_free(s);
        sched_rig_free(&r);
    }
}

/* ---------------------------------------------------------------- clipping by hand */

/* Two parameters whose gradients are a = [3, 4] and b = [12] (norm 13), and one without. */
typedef struct {
    nb_tensor *p[3];
} clip_rig;

static clip_rig clip_rig_new(float b0) {
    clip_rig r = {{nb_zeros(NB_SHAPE(2)), nb_zeros(NB_SHAPE(1)), nb_zeros(NB_SHAPE(4))}};
    for (int i = 0; i < 3; i++) nb_set_requires_grad(r.p[i], true);
    set_grad(r.p[0], (float[]){3, 4});
    set_grad(r.p[1], (float[]){b0});
    return r;
}

static void clip_grad_norm_matches_hand_computation(void) {
    clip_rig r = clip_rig_new(12);
    /* Below the limit: returned norm 13, gradients untouched (multiplied by exactly 1). */
    CHECK_NEAR(nb_clip_grad_norm(3, r.p, 26, 2), 13.0, 0, 0);
    CHECK_TENSOR("unclipped", nb_grad(r.p[0]), ((double[]){3, 4}), 2, 0, 0);
    /* Above: scaled by 6.5 / (13 + 1e-6) -> [1.5, 2], [6]. */
    CHECK_NEAR(nb_clip_grad_norm(3, r.p, 6.5f, 2), 13.0, 0, 0);
    float c = 6.5f / (13.0f + 1e-6f);
    CHECK_TENSOR("clipped a", nb_grad(r.p[0]), ((double[]){3 * c, 4 * c}), 2, 1e-7, 0);
    CHECK_TENSOR("clipped b", nb_grad(r.p[1]), ((double[]){12 * c}), 1, 1e-7, 0);
    CHECK_NEAR(nb_clip_grad_norm(3, r.p, 100, 2), 6.5, 1e-5, 0);
    CHECK(nb_grad(r.p[2]) == NULL);
    free_params(r.p, 3);

    r = clip_rig_new(-12); /* inf-norm: max |g| = 12; 1-norm 19; 3-norm 1819^(1/3) */
    CHECK_NEAR(nb_clip_grad_norm(3, r.p, 100, INFINITY), 12.0, 0, 0);
    CHECK_NEAR(nb_clip_grad_norm(3, r.p, 100, 1), 19.0, 0, 0);
    CHECK_NEAR(nb_clip_grad_norm(3, r.p, 100, 3), cbrt(1819.0), 1e-5, 0);
    CHECK_NEAR(nb_clip_grad_norm(3, r.p, 6, INFINITY), 12.0, 0, 0);
    c = 6.0f / (12.0f + 1e-6f);
    CHECK_TENSOR("inf-clipped", nb_grad(r.p[1]), ((double[]){-12 * c}), 1, 1e-7, 0);
    CHECK_NEAR(nb_clip_grad_norm(1, &r.p[2], 1, 2), 0.0, 0, 0); /* no gradient at all: 0 */

    CHECK(isnan(nb_clip_grad_norm(3, r.p, 1, 0)));
    CHECK_ERROR(NB_ERR_ARG, "norm_type must be > 0");
    CHECK(isnan(nb_clip_grad_norm(3, r.p, -1, 2)));
    CHECK_ERROR(NB_ERR_ARG, "max_norm must be finite and >= 0");
    CHECK(isnan(nb_clip_grad_norm(2, (nb_tensor *[]){r.p[0], NULL}, 1, 2)));
    CHECK_ERROR(NB_ERR_NULL, "clip_grad_norm");
    free_params(r.p, 3);
}

static void clip_grad_value_clamps(void) {
    nb_tensor *p = nb_zeros(NB_SHAPE(4));
    nb_set_requires_grad(p, true);
    set_grad(p, (float[]){-3, 0.5f, 2, -0.25f});
    CHECK_EQ_INT(nb_clip_grad_value(1, &p, 1), NB_OK);
    CHECK_TENSOR("clamped", nb_grad(p), ((double[]){-1, 0.5, 1, -0.25}), 4, 0, 0);
    CHECK_EQ_INT(nb_clip_grad_value(1, &p, -1), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "clip_value must be finite and >= 0");
    nb_tensor_free(p);
}

/* ---------------------------------------------------------------- semantics */

static void zero_grad_fills_zeros_and_keeps_the_tensors(void) {
    nb_tensor *p[MAX_PARAMS];
    make_params(p);
    nb_optim *o = nb_sgd_new(MAX_PARAMS, p, (nb_sgd_opts){.lr = 0.1});
    set_step_grads(p, 5); /* all three have gradients at step 5 */
    nb_tensor *g0 = nb_grad(p[0]);
    CHECK_EQ_INT(nb_optim_zero_grad(o), NB_OK);
    CHECK(nb_grad(p[0]) == g0); /* torch 1.13: set_to_none=False */
    CHECK(nb_optim_step(o) == NB_OK);
    for (int i = 0; i < MAX_PARAMS; i++) {
        float v[MAX_ELEMS];
        int n = (int)nb_numel(p[i]);
        nb_copy_to(nb_grad(p[i]), v, n);
        double zeros[MAX_ELEMS] = {0};
        CHECK_ARRAY("zeroed", v, zeros, n, 0, 0);
    }
    free_params(p, MAX_PARAMS); /* the optimiser holds its own references */
    CHECK_EQ_INT(nb_optim_step(o), NB_OK);
    nb_optim_free(o);
}

static void frozen_and_gradless_parameters_are_untouched(void) {
    nb_tensor *p[MAX_PARAMS];
    make_params(p);
    nb_optim *o = nb_adam_new(MAX_PARAMS, p, (nb_adam_opts){.lr = 0.1, .weight_decay = 0.1});
    set_step_grads(p, 7);
    nb_set_requires_grad(p[1], false); /* frozen, although it still holds a gradient */
    nb_clear_grad(p[2]);               /* no gradient */
    float before[MAX_PARAMS * MAX_ELEMS], after[MAX_PARAMS * MAX_ELEMS];
    gather(p, before);
    for (int t = 0; t < 3; t++) nb_optim_step(o);
    gather(p, after);
    CHECK(memcmp(before + 6, after + 6, sizeof(float) * 7) == 0);
    CHECK(memcmp(before, after, sizeof(float) * 6) != 0);
    char *js = nb_optim_state_json(o); /* only the first parameter has taken steps */
    CHECK_STR_CONTAINS(js, "\"state\":[{\"step\":3},{\"step\":0},{\"step\":0}]");
    free(js);
    nb_optim_free(o);
    free_params(p, MAX_PARAMS);
}

/* Four micro-batches of 16 with the loss scaled by 1/4 accumulate the gradient of one batch of
 * 64 (the mean over 64 is the mean of four means over 16).  At the same parameters the two sum
 * the same 64 terms in a different order (float32), so they agree to 1e-6 of the gradient's
 * largest element, a few ulps.  Training on either for three steps gives the same parameters to
 * 1e-6 (relative). */
static void gradient_accumulation_equals_one_big_batch(void) {
    linear_model a = linear_new(), b = linear_new();
    nb_optim *oa = nb_sgd_new(2, (nb_tensor *[]){a.W, a.b}, (nb_sgd_opts){.lr = 0.1, .momentum = 0.9});
    nb_optim *ob = nb_sgd_new(2, (nb_tensor *[]){b.W, b.b}, (nb_sgd_opts){.lr = 0.1, .momentum = 0.9});
    for (int step = 0; step < 3; step++) {
        nb_scope_begin();
        nb_optim_zero_grad(ob); /* the full batch's gradient at b's parameters */
        nb_backward(mse(b.W, b.b, b.X, b.y, 0, 64, 1.0f));
        float full[6], acc[6];
        nb_copy_to(nb_grad(b.W), full, 5);
        nb_copy_to(nb_grad(b.b), full + 5, 1);
        nb_optim_zero_grad(ob);
        for (int k = 0; k < 4; k++) nb_backward(mse(b.W, b.b, b.X, b.y, 16 * k, 16 * k + 16, 0.25f));
        nb_copy_to(nb_grad(b.W), acc, 5);
        nb_copy_to(nb_grad(b.b), acc + 5, 1);
        nb_optim_zero_grad(oa);
        nb_backward(mse(a.W, a.b, a.X, a.y, 0, 64, 1.0f));
        nb_scope_end();
        double want[6], scale = 0;
        for (int i = 0; i < 6; i++) {
            want[i] = full[i];
            scale = fmax(scale, fabs(want[i]));
        }
        CHECK_ARRAY("accumulated gradient", acc, want, 6, 1e-6 * scale, 0);
        nb_optim_step(oa);
        nb_optim_step(ob);
    }
    float wa[5], wb[5];
    nb_copy_to(a.W, wa, 5);
    nb_copy_to(b.W, wb, 5);
    double want[5];
    for (int i = 0; i < 5; i++) want[i] = wa[i];
    CHECK_ARRAY("parameters after accumulation", wb, want, 5, 1e-6, 1e-6);
    nb_optim_free(oa);
    nb_optim_free(ob);
    linear_free(&a);
    linear_free(&b);
}

static void state_tensors_are_named_like_torch(void) {
    nb_tensor *p[MAX_PARAMS];
    make_params(p);
    nb_optim *o = nb_adam_new(MAX_PARAMS, p, (nb_adam_opts){.amsgrad = true});
    CHECK_EQ_INT(nb_optim_state_tensors(o, NULL, NULL, 0), 9);
    const char *names[9];
    nb_tensor *ts[9];
    CHECK_EQ_INT(nb_optim_state_tensors(o, names, ts, 9), 9);
    CHECK(!strcmp(names[0], "state.0.exp_avg") && !strcmp(names[2], "state.0.max_exp_avg_sq"));
    CHECK(!strcmp(names[7], "state.2.exp_avg_sq"));
    CHECK_EQ_INT(nb_numel(ts[6]), 3);
    nb_optim_free(o);
    nb_tensor *q[2] = {p[0], p[1]};
    o = nb_sgd_new(2, q, (nb_sgd_opts){.lr = 0.1}); /* no momentum: no state */
    CHECK_EQ_INT(nb_optim_state_tensors(o, NULL, NULL, 0), 0);
    nb_optim_free(o);
    o = nb_rmsprop_new(1, p, (nb_rmsprop_opts){.centered = true});
    nb_group_opts g = {.momentum = 0.9};
    nb_optim_add_group(o, 1, &p[1], &g);
    CHECK_EQ_INT(nb_optim_state_tensors(o, names, ts, 9), 5);
    CHECK(!strcmp(names[3], "state.1.momentum_buffer") && !strcmp(names[4], "state.1.grad_avg"));
    nb_optim_free(o);
    free_params(p, MAX_PARAMS);
}

static void explicit_zero_overrides_a_nonzero_default(void) {
    nb_tensor *p = nb_zeros(NB_SHAPE(2));
    nb_optim *a = nb_adamw_new(1, &p, (nb_adamw_opts){0});
    nb_optim *b = nb_adamw_new(1, &p, (nb_adamw_opts){.weight_decay = NB_ZERO, .beta1 = NB_ZERO});
    char *ja = nb_optim_state_json(a), *jb = nb_optim_state_json(b);
    CHECK_STR_CONTAINS(ja, "\"betas\":[0.90000000000000002,0.999]");
    CHECK_STR_CONTAINS(ja, "\"weight_decay\":0.01");
    CHECK_STR_CONTAINS(jb, "\"betas\":[0.0,0.999]");
    CHECK_STR_CONTAINS(jb, "\"weight_decay\":0.0");
    nb_group_opts g = {.lr = NB_ZERO, .weight_decay = NB_ZERO};
    nb_tensor *q = nb_zeros(NB_SHAPE(2));
    CHECK_EQ_INT(nb_optim_add_group(a, 1, &q, &g), NB_OK);
    CHECK_NEAR(nb_optim_get_lr(a, 1), 0.0, 0, 0);
    CHECK_NEAR(nb_optim_get_lr(a, 0), 1e-3, 0, 0);
    free(ja);
    free(jb);
    nb_optim_free(a);
    nb_optim_free(b);
    nb_tensor_free(p);
    nb_tensor_free(q);
}

/* ---------------------------------------------------------------- state round trips */

/* A copy of the state tensors' values, to load into another optimiser. */
typedef struct {
    int n;
    float *values[32];
    int64_t sizes[32];
} saved_tensors;

static saved_tensors save_tensors(nb_optim *o) {
    saved_tensors s = {0};
    nb_tensor *ts[32];
    s.n = nb_optim_state_tensors(o, NULL, ts, 32);
    for (int i = 0; i < s.n; i++) {
        s.sizes[i] = nb_numel(ts[i]);
        s.values[i] = malloc(sizeof(float) * (size_t)s.sizes[i]);
        nb_copy_to(ts[i], s.values[i], s.sizes[i]);
    }
    return s;
}

static void load_tensors(nb_optim *o, saved_tensors *s) {
    nb_tensor *ts[32];
    CHECK_EQ_INT(nb_optim_state_tensors(o, NULL, ts, 32), s->n);
    for (int i = 0; i < s->n; i++) {
        CHECK_EQ_INT(nb_copy_from(ts[i], s->values[i], s->sizes[i]), NB_OK);
        free(s->values[i]);
    }
}

/* Save mid-trajectory, load into a fresh optimiser over fresh parameters holding the same
 * values, continue both: identical bits. */
static void optimiser_state_round_trips_mid_trajectory(void) {
    const json_t *configs = json_object_get(golden, "optim");
    for (size_t ci = 0; ci < json_array_size(configs); ci++) {
        const json_t *c = json_array_get(configs, ci);
        nb_tensor *p[MAX_PARAMS], *q[MAX_PARAMS];
        make_params(p);
        make_params(q);
        nb_optim *a = config_optim(c, p), *b = config_optim(c, q);
        for (int t = 0; t < 10; t++) {
            set_step_grads(p, t);
            nb_optim_step(a);
        }
        char *js = nb_optim_state_json(a);
        saved_tensors st = save_tensors(a);
        float v[MAX_PARAMS * MAX_ELEMS];
        gather(p, v);
        for (int i = 0, k = 0; i < MAX_PARAMS; k += (int)nb_numel(q[i]), i++)
            nb_copy_from(q[i], v + k, nb_numel(q[i]));
        CHECK_EQ_INT(nb_optim_load_state_json(b, js), NB_OK);
        load_tensors(b, &st);
        for (int t = 10; t < 20; t++) {
            set_step_grads(p, t);
            set_step_grads(q, t);
            nb_optim_step(a);
            nb_optim_step(b);
        }
        float va[MAX_PARAMS * MAX_ELEMS], vb[MAX_PARAMS * MAX_ELEMS];
        int n = gather(p, va);
        gather(q, vb);
        if (memcmp(va, vb, sizeof(float) * (size_t)n) == 0) check_passed_++;
        else CHECK_FAIL_("%s: resumed trajectory differs", opt_str(c, "name"));
        char *ja = nb_optim_state_json(a), *jb = nb_optim_state_json(b);
        CHECK(!strcmp(ja, jb));
        free(js);
        free(ja);
        free(jb);
        nb_optim_free(a);
        nb_optim_free(b);
        free_params(p, MAX_PARAMS);
        free_params(q, MAX_PARAMS);
    }
}

/* The same for every schedule: save schedule and optimiser at step 12, build both again, load
 * (optimiser first), continue: identical learning rates. */
static void schedule_state_round_trips_mid_trajectory(void) {
    const json_t *configs = json_object_get(golden, "sched");
    int steps = (int)json_integer_value(json_object_get(golden, "sched_steps"));
    for (size_t ci = 0; ci < json_array_size(configs); ci++) {
        const json_t *c = json_array_get(configs, ci), *spec = json_object_get(c, "sched");
        sched_rig ra = sched_rig_new(json_object_get(c, "optim"));
        sched_rig rb = sched_rig_new(json_object_get(c, "optim"));
        nb_sched *a = make_sched(ra.o, spec), *b = make_sched(rb.o, spec);
        for (int t = 0; t < 12; t++) sched_step(a, spec, t);
        char *jo = nb_optim_state_json(ra.o), *js = nb_sched_state_json(a);
        CHECK_EQ_INT(nb_optim_load_state_json(rb.o, jo), NB_OK);
        CHECK_EQ_INT(nb_sched_load_state_json(b, js), NB_OK);
        bool same = true;
        for (int t = 12; t < steps; t++) {
            sched_step(a, spec, t);
            sched_step(b, spec, t);
            for (int g = 0; g < 2; g++)
                same = same && nb_sched_get_last_lr(a, g) == nb_sched_get_last_lr(b, g) &&
                       nb_optim_get_lr(ra.o, g) == nb_optim_get_lr(rb.o, g);
        }
        if (same) check_passed_++;
        else CHECK_FAIL_("%s: resumed schedule differs", opt_str(c, "name"));
        char *ja = nb_sched_state_json(a), *jb = nb_sched_state_json(b);
        CHECK(!strcmp(ja, jb));
        free(jo);
        free(js);
        free(ja);
        free(jb);
        nb_sched_free(a);
        nb_sched_free(b);
        sched_rig_free(&ra);
        sched_rig_free(&rb);
    }
}

/* ---------------------------------------------------------------- errors */

static void bad_options_are_refused_with_torchs_messages(void) {
    nb_tensor *p = nb_zeros(NB_SHAPE(3)), *q = nb_zeros(NB_SHAPE(2));
    CHECK(!nb_sgd_new(1, &p, (nb_sgd_opts){.momentum = 0.9}));
    CHECK_ERROR(NB_ERR_ARG, "sgd: lr is required");
    CHECK(!nb_sgd_new(1, &p, (nb_sgd_opts){.lr = -0.1}));
    CHECK_ERROR(NB_ERR_ARG, "Invalid learning rate: -0.1");
    CHECK(!nb_sgd_new(1, &p, (nb_sgd_opts){.lr = 0.1, .momentum = -1}));
    CHECK_ERROR(NB_ERR_ARG, "Invalid momentum value: -1");
    CHECK(!nb_sgd_new(1, &p, (nb_sgd_opts){.lr = 0.1, .nesterov = true}));
    CHECK_ERROR(NB_ERR_ARG, "Nesterov momentum requires a momentum and zero dampening");
    CHECK(!nb_sgd_new(1, &p, (nb_sgd_opts){.lr = 0.1, .momentum = 0.9, .dampening = 0.1,
                                           .nesterov = true}));
    CHECK_ERROR(NB_ERR_ARG, "Nesterov momentum requires a momentum and zero dampening");
    CHECK(!nb_sgd_new(1, &p, (nb_sgd_opts){.lr = 0.1, .weight_decay = -1}));
    CHECK_ERROR(NB_ERR_ARG, "Invalid weight_decay value: -1");
    CHECK(!nb_adam_new(1, &p, (nb_adam_opts){.beta1 = 1.0}));
    CHECK_ERROR(NB_ERR_ARG, "adam: Invalid beta parameter at index 0: 1");
    CHECK(!nb_adamw_new(1, &p, (nb_adamw_opts){.beta2 = -0.5}));
    CHECK_ERROR(NB_ERR_ARG, "adamw: Invalid beta parameter at index 1: -0.5");
    CHECK(!nb_adam_new(1, &p, (nb_adam_opts){.eps = -1}));
    CHECK_ERROR(NB_ERR_ARG, "Invalid epsilon value: -1");
    CHECK(!nb_adam_new(1, &p, (nb_adam_opts){.lr = NAN}));
    CHECK_ERROR(NB_ERR_ARG, "Invalid learning rate: nan");
    CHECK(!nb_rmsprop_new(1, &p, (nb_rmsprop_opts){.alpha = -1}));
    CHECK_ERROR(NB_ERR_ARG, "rmsprop: Invalid alpha value: -1");
    CHECK(!nb_adagrad_new(1, &p, (nb_adagrad_opts){.lr_decay = -1}));
    CHECK_ERROR(NB_ERR_ARG, "adagrad: Invalid lr_decay value: -1");
    CHECK(!nb_adagrad_new(1, &p, (nb_adagrad_opts){.initial_accumulator_value = -1}));
    CHECK_ERROR(NB_ERR_ARG, "Invalid initial_accumulator_value value: -1");
    CHECK(!nb_adam_new(0, &p, (nb_adam_opts){0}));
    CHECK_ERROR(NB_ERR_ARG, "optimizer got an empty parameter list");

    /* Parameters that cannot be optimised. */
    CHECK(!nb_adam_new(2, (nb_tensor *[]){p, NULL}, (nb_adam_opts){0}));
    CHECK_ERROR(NB_ERR_NULL, "adam");
    CHECK(!nb_adam_new(2, (nb_tensor *[]){p, p}, (nb_adam_opts){0}));
    CHECK_ERROR(NB_ERR_ARG, "parameter 1 appears twice");
    nb_tensor *idx = nb_from_int32((int32_t[]){1, 2}, NB_SHAPE(2));
    CHECK(!nb_adam_new(1, &idx, (nb_adam_opts){0}));
    CHECK_ERROR(NB_ERR_DTYPE, "only float32 tensors can be optimized");
    nb_tensor_free(idx);
    nb_set_requires_grad(p, true);
    nb_tensor *nonleaf = nb_mul_scalar(p, 2);
    CHECK(!nb_adam_new(1, &nonleaf, (nb_adam_opts){0}));
    CHECK_ERROR(NB_ERR_ARG, "can't optimize a non-leaf Tensor");
    nb_tensor_free(nonleaf);
    nb_scope_begin();
    nb_tensor *scoped = nb_zeros(NB_SHAPE(2));
    CHECK(!nb_adam_new(1, &scoped, (nb_adam_opts){0}));
    CHECK_ERROR(NB_ERR_SCOPE, "parameters must be persistent");
    nb_scope_end();
    nb_tensor *big = nb_zeros(NB_SHAPE(2, 3)), *view = nb_transpose(big, 0, 1);
    CHECK(!nb_adam_new(1, &view, (nb_adam_opts){0}));
    CHECK_ERROR(NB_ERR_ARG, "is not contiguous");
    nb_tensor_free(view);
    nb_tensor_free(big);

    /* Groups. */
    nb_optim *o = nb_adagrad_new(1, &p, (nb_adagrad_opts){0});
    CHECK_EQ_INT(nb_optim_add_group(o, 1, &p, NULL), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "some parameters appear in more than one parameter group");
    CHECK_EQ_INT(nb_optim_add_group(o, 1, &q, &(nb_group_opts){.momentum = 0.9}), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "adagrad has none");
    CHECK_EQ_INT(nb_optim_add_group(o, 1, &q, &(nb_group_opts){.lr = -1}), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "Invalid learning rate: -1");
    CHECK_EQ_INT(nb_optim_num_groups(o), 1);
    CHECK(isnan(nb_optim_get_lr(o, 1)));
    CHECK_ERROR(NB_ERR_ARG, "group 1 is out of range");
    CHECK_EQ_INT(nb_optim_set_lr(o, 0, -1), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "Invalid learning rate");
    CHECK(isnan(nb_optim_get_momentum(o, 0)));
    CHECK_ERROR(NB_ERR_ARG, "adagrad has no momentum");
    CHECK_EQ_INT(nb_optim_step(NULL), NB_ERR_NULL);
    nb_error_clear();
    nb_optim_free(NULL);
    nb_optim_free(o);
    nb_tensor_free(p);
    nb_tensor_free(q);
}

/* Issue 7, item 10: NaN, infinities and out-of-range values were accepted (--gamma nan,
 * --clip-norm nan).  Every real option is checked, the message naming the option and value. */
static void non_finite_and_out_of_range_options_are_refused(void) {
    nb_tensor *p = nb_zeros(NB_SHAPE(3));
    nb_set_requires_grad(p, true);
    CHECK(!nb_sgd_new(1, &p, (nb_sgd_opts){.lr = INFINITY}));
    CHECK_ERROR(NB_ERR_ARG, "sgd: Invalid learning rate: inf");
    CHECK(!nb_sgd_new(1, &p, (nb_sgd_opts){.lr = 0.1, .momentum = NAN}));
    CHECK_ERROR(NB_ERR_ARG, "sgd: Invalid momentum value: nan");
    CHECK(!nb_sgd_new(1, &p, (nb_sgd_opts){.lr = 0.1, .momentum = 0.9, .dampening = NAN}));
    CHECK_ERROR(NB_ERR_ARG, "sgd: Invalid dampening value: nan");
    CHECK(!nb_sgd_new(1, &p, (nb_sgd_opts){.lr = 0.1, .momentum = 0.9, .dampening = 2}));
    CHECK_ERROR(NB_ERR_ARG, "sgd: Invalid dampening value: 2");
    CHECK(!nb_sgd_new(1, &p, (nb_sgd_opts){.lr = 0.1, .weight_decay = INFINITY}));
    CHECK_ERROR(NB_ERR_ARG, "sgd: Invalid weight_decay value: inf");
    CHECK(!nb_adam_new(1, &p, (nb_adam_opts){.beta1 = NAN}));
    CHECK_ERROR(NB_ERR_ARG, "adam: Invalid beta parameter at index 0: nan");
    CHECK(!nb_adam_new(1, &p, (nb_adam_opts){.eps = INFINITY}));
    CHECK_ERROR(NB_ERR_ARG, "adam: Invalid epsilon value: inf");
    CHECK(!nb_adamw_new(1, &p, (nb_adamw_opts){.weight_decay = NAN}));
    CHECK_ERROR(NB_ERR_ARG, "adamw: Invalid weight_decay value: nan");
    CHECK(!nb_rmsprop_new(1, &p, (nb_rmsprop_opts){.alpha = 1.5}));
    CHECK_ERROR(NB_ERR_ARG, "rmsprop: Invalid alpha value: 1.5");
    CHECK(!nb_adagrad_new(1, &p, (nb_adagrad_opts){.lr_decay = INFINITY}));
    CHECK_ERROR(NB_ERR_ARG, "adagrad: Invalid lr_decay value: inf");

    nb_optim *o = nb_sgd_new(1, &p, (nb_sgd_opts){.lr = 0.1, .momentum = 0.9});
    CHECK_EQ_INT(nb_optim_set_lr(o, 0, NAN), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "optim_set_lr: Invalid learning rate: nan");
    CHECK_EQ_INT(nb_optim_add_group(o, 0, NULL, &(nb_group_opts){.lr = INFINITY}), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "Invalid learning rate: inf");
    CHECK(!nb_steplr_new(o, 3, NAN));
    CHECK_ERROR(NB_ERR_ARG, "steplr: gamma must be finite and > 0, got nan");
    CHECK(!nb_steplr_new(o, 3, -0.5));
    CHECK_ERROR(NB_ERR_ARG, "steplr: gamma must be finite and > 0, got -0.5");
    CHECK(!nb_exponentiallr_new(o, INFINITY));
    CHECK_ERROR(NB_ERR_ARG, "exponentiallr: gamma must be finite and > 0, got inf");
    CHECK(!nb_multisteplr_new(o, 1, (int[]){2}, NAN));
    CHECK_ERROR(NB_ERR_ARG, "multisteplr: gamma must be finite and > 0, got nan");
    CHECK(!nb_cosinelr_new(o, 10, NAN));
    CHECK_ERROR(NB_ERR_ARG, "cosinelr: eta_min must be finite and >= 0, got nan");
    CHECK(!nb_linearlr_new(o, NAN, 1, 5));
    CHECK_ERROR(NB_ERR_ARG, "Starting multiplicative factor expected to be in (0, 1]");
    CHECK(!nb_plateau_new(o, (nb_plateau_opts){.factor = NAN}));
    CHECK_ERROR(NB_ERR_ARG, "plateau: Factor should be < 1.0 (and >= 0), got nan");
    CHECK(!nb_plateau_new(o, (nb_plateau_opts){.threshold = -1}));
    CHECK_ERROR(NB_ERR_ARG, "plateau: threshold must be finite and >= 0, got -1");
    CHECK(!nb_plateau_new(o, (nb_plateau_opts){.min_lr = INFINITY}));
    CHECK_ERROR(NB_ERR_ARG, "plateau: min_lr must be finite and >= 0, got inf");
    CHECK(!nb_plateau_new(o, (nb_plateau_opts){.eps = NAN}));
    CHECK_ERROR(NB_ERR_ARG, "plateau: eps must be finite and >= 0, got nan");
    CHECK(!nb_cycliclr_new(o, (nb_cyclic_opts){.base_lr = 0.01, .max_lr = INFINITY}));
    CHECK_ERROR(NB_ERR_ARG, "cycliclr: Invalid learning rate: base_lr 0.01, max_lr inf");
    CHECK(!nb_cycliclr_new(o, (nb_cyclic_opts){.base_lr = 0.01, .max_lr = 0.1, .gamma = NAN}));
    CHECK_ERROR(NB_ERR_ARG, "cycliclr: gamma must be finite and > 0, got nan");
    CHECK(!nb_cycliclr_new(o, (nb_cyclic_opts){.base_lr = 0.01, .max_lr = 0.1, .max_momentum = NAN}));
    CHECK_ERROR(NB_ERR_ARG, "cycliclr: momentums must be finite and >= 0 (base 0.8, max nan)");
    CHECK(!nb_onecyclelr_new(o, (nb_onecycle_opts){.max_lr = NAN, .total_steps = 10}));
    CHECK_ERROR(NB_ERR_ARG, "onecyclelr: max_lr is required and must be finite and >= 0, got nan");
    CHECK(!nb_onecyclelr_new(o, (nb_onecycle_opts){.max_lr = 0.1, .total_steps = 10, .div_factor = INFINITY}));
    CHECK_ERROR(NB_ERR_ARG, "div_factor and final_div_factor must be finite and > 0 (got inf, 10000)");
    CHECK(!nb_onecyclelr_new(o, (nb_onecycle_opts){.max_lr = 0.1, .total_steps = 10, .pct_start = NAN}));
    CHECK_ERROR(NB_ERR_ARG, "Expected float between 0 and 1 pct_start, but got nan");
    CHECK_NEAR(nb_optim_get_lr(o, 0), 0.1, 0, 0); /* refused schedules leave the optimiser alone */

    CHECK(isnan(nb_clip_grad_norm(1, &p, NAN, 2)));
    CHECK_ERROR(NB_ERR_ARG, "clip_grad_norm: max_norm must be finite and >= 0, got nan");
    CHECK(isnan(nb_clip_grad_norm(1, &p, INFINITY, 2)));
    CHECK_ERROR(NB_ERR_ARG, "max_norm must be finite and >= 0, got inf");
    CHECK(isnan(nb_clip_grad_norm(1, &p, 1, NAN)));
    CHECK_ERROR(NB_ERR_ARG, "clip_grad_norm: norm_type must be > 0 or INFINITY, got nan");
    CHECK_EQ_INT(nb_clip_grad_value(1, &p, NAN), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "clip_grad_value: clip_value must be finite and >= 0, got nan");
    nb_optim_free(o);
    nb_tensor_free(p);
}

static void bad_schedules_are_refused(void) {
    nb_tensor *p = nb_zeros(NB_SHAPE(3)), *q = nb_zeros(NB_SHAPE(2));
    nb_optim *o = nb_sgd_new(1, &p, (nb_sgd_opts){.lr = 0.1});
    nb_optim *adam = nb_adam_new(1, &q, (nb_adam_opts){0});
    CHECK(!nb_steplr_new(o, 0, 0.1));
    CHECK_ERROR(NB_ERR_ARG, "step_size must be > 0");
    CHECK(!nb_cosinelr_new(o, 0, 0));
    CHECK_ERROR(NB_ERR_ARG, "T_max must be > 0");
    CHECK(!nb_linearlr_new(o, 0, 1, 5));
    CHECK_ERROR(NB_ERR_ARG, "Starting multiplicative factor");
    CHECK(!nb_linearlr_new(o, 0.5, 1.5, 5));
    CHECK_ERROR(NB_ERR_ARG, "Ending multiplicative factor");
    CHECK(!nb_multisteplr_new(o, 2, (int[]){3, -1}, 0.1));
    CHECK_ERROR(NB_ERR_ARG, "milestones must be >= 0");
    CHECK(!nb_plateau_new(o, (nb_plateau_opts){.factor = 1.0}));
    CHECK_ERROR(NB_ERR_ARG, "Factor should be < 1.0");
    CHECK(!nb_plateau_new(o, (nb_plateau_opts){.mode = 7}));
    CHECK_ERROR(NB_ERR_ARG, "mode 7 is unknown!");
    CHECK(!nb_cycliclr_new(o, (nb_cyclic_opts){.max_lr = 0.1}));
    CHECK_ERROR(NB_ERR_ARG, "base_lr and max_lr are required");
    CHECK(!nb_cycliclr_new(adam, (nb_cyclic_opts){.base_lr = 0.01, .max_lr = 0.1}));
    CHECK_ERROR(NB_ERR_ARG, "optimizer must support momentum with cycle_momentum enabled");
    CHECK(!nb_onecyclelr_new(o, (nb_onecycle_opts){.max_lr = 0.1}));
    CHECK_ERROR(NB_ERR_ARG, "Expected positive integer total_steps");
    CHECK(!nb_onecyclelr_new(o, (nb_onecycle_opts){.max_lr = 0.1, .total_steps = 10,
                                                    .pct_start = 1.5}));
    CHECK_ERROR(NB_ERR_ARG, "Expected float between 0 and 1 pct_start");
    CHECK(!nb_onecyclelr_new(o, (nb_onecycle_opts){.max_lr = 0.1, .total_steps = 10,
                                                    .pct_start = 0.1})); /* torch: 0 / 0 */
    CHECK_ERROR(NB_ERR_ARG, "phase 0 has zero length");
    CHECK(!nb_steplr_new(NULL, 3, 0.1));
    CHECK_ERROR(NB_ERR_NULL, "optimizer is NULL");

    /* OneCycleLR refuses to step past total_steps, as torch does. */
    nb_sched *s = nb_onecyclelr_new(o, (nb_onecycle_opts){.max_lr = 0.1, .total_steps = 5});
    for (int t = 0; t < 5; t++) CHECK_EQ_INT(nb_sched_step(s), NB_OK);
    CHECK_EQ_INT(nb_sched_step(s), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "Tried to step 7 times. The specified number of total steps is 5");
    CHECK_EQ_INT(nb_sched_step_metric(s, 1.0), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "only plateau steps on a metric");
    nb_sched_free(s);

    /* Composites: a NULL member keeps its error and the others are freed; mixed optimisers,
     * plateau and nesting are refused. */
    CHECK(!nb_chained_new(2, (nb_sched *[]){nb_steplr_new(o, 2, 0.5), nb_cosinelr_new(o, 0, 0)}));
    CHECK_ERROR(NB_ERR_ARG, "T_max must be > 0");
    CHECK(!nb_chained_new(2, (nb_sched *[]){nb_steplr_new(o, 2, 0.5),
                                            nb_exponentiallr_new(adam, 0.9)}));
    CHECK_ERROR(NB_ERR_ARG, "expects all schedulers to belong to the same optimizer");
    CHECK(!nb_chained_new(1, (nb_sched *[]){nb_plateau_new(o, (nb_plateau_opts){0})}));
    CHECK_ERROR(NB_ERR_ARG, "cannot be chained");
    nb_sched *chained = nb_chained_new(1, (nb_sched *[]){nb_steplr_new(o, 2, 0.5)});
    CHECK(!nb_sequentiallr_new(o, 1, &chained, NULL));
    CHECK_ERROR(NB_ERR_ARG, "cannot be sequenced");
    CHECK(!nb_sequentiallr_new(o, 3, (nb_sched *[]){nb_steplr_new(o, 2, 0.5), nb_steplr_new(o, 2, 0.5),
                                                    nb_steplr_new(o, 2, 0.5)}, (int[]){5, 5}));
    CHECK_ERROR(NB_ERR_ARG, "milestones must increase");
    nb_sched *twice = nb_exponentiallr_new(o, 0.9);
    CHECK(!nb_chained_new(2, (nb_sched *[]){twice, twice}));
    CHECK_ERROR(NB_ERR_ARG, "schedule 1 appears twice");

    nb_sched *plateau = nb_plateau_new(o, (nb_plateau_opts){0});
    CHECK_EQ_INT(nb_sched_step(plateau), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "step it with nb_sched_step_metric");
    CHECK(isnan(nb_sched_get_last_lr(plateau, 3)));
    CHECK_ERROR(NB_ERR_ARG, "group 3 is out of range");
    nb_sched_free(plateau);

    /* A group added after the schedule was made. */
    s = nb_steplr_new(o, 2, 0.5);
    nb_optim_add_group(o, 1, &q, NULL);
    CHECK_EQ_INT(nb_sched_step(s), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "the optimizer has 2 parameter groups; the schedule was made for 1");
    nb_sched_free(s);
    nb_sched_free(NULL);
    nb_optim_free(o);
    nb_optim_free(adam);
    nb_tensor_free(p);
    nb_tensor_free(q);
}

/* Loads text into o and expects it to fail with needle, leaving o as it was. */
static void check_bad_optim_json(nb_optim *o, const char *text, const char *needle) {
    char *before = nb_optim_state_json(o);
    CHECK_EQ_INT(nb_optim_load_state_json(o, text), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, needle);
    char *after = nb_optim_state_json(o);
    CHECK(!strcmp(before, after));
    free(before);
    free(after);
}

/* The state JSON of o with the first `from` replaced by `to`. */
static char *edited(const char *js, const char *from, const char *to) {
    const char *at = strstr(js, from);
    if (!at) return NULL;
    size_t n = strlen(js) - strlen(from) + strlen(to) + 1, pre = (size_t)(at - js);
    char *out = malloc(n);
    memcpy(out, js, pre);
    strcpy(out + pre, to);
    strcat(out, at + strlen(from));
    return out;
}

static void bad_state_json_is_refused(void) {
    nb_tensor *p[MAX_PARAMS];
    make_params(p);
    nb_optim *o = nb_adam_new(2, p, (nb_adam_opts){.lr = 0.01});
    nb_optim_add_group(o, 1, &p[2], &(nb_group_opts){.lr = 0.1});
    char *js = nb_optim_state_json(o);
    struct {
        const char *from, *to, *needle;
    } cases[] = {
        {"{", "{,", "invalid JSON at line 1"},
        {"\"lr\":0.01,", "\"lr\":0.01,\"bogus\":1,", "param_groups[0]: unknown key 'bogus'"},
        {"\"lr\":0.01,", "", "param_groups[0]: missing key 'lr'"},
        {"\"lr\":0.01", "\"lr\":\"fast\"", "'lr' must be a number"},
        {"\"lr\":0.01", "\"lr\":-0.01", "Invalid learning rate: -0.01"},
        {"\"amsgrad\":false", "\"amsgrad\":true", "amsgrad is true in the state but false"},
        {"\"amsgrad\":false", "\"amsgrad\":0", "'amsgrad' must be true or false"},
        {"\"betas\":[0.90000000000000002,0.999]", "\"betas\":[0.9]", "'betas' must be an array of 2"},
        {"\"params\":[0,1]", "\"params\":[0]", "doesn't match the size of optimizer's group"},
        {"\"optimizer\":\"adam\"", "\"optimizer\":\"sgd\"",
         "'optimizer' is \"sgd\", this optimizer is adam"},
        {"{\"step\":0}", "{\"step\":-3}", "state[0]: 'step' is negative"},
        {"{\"step\":0}", "{\"steps\":0}", "state[0]: unknown key 'steps'"},
        {"{\"step\":0},", "", "'state' must be an array of 3 entries"},
        {"\"state\"", "\"State\"", "unknown key 'State'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *bad = edited(js, cases[i].from, cases[i].to);
        CHECK(bad != NULL);
        if (bad) check_bad_optim_json(o, bad, cases[i].needle);
        free(bad);
    }
    check_bad_optim_json(o, "[1, 2]", "expected a JSON object");
    CHECK_EQ_INT(nb_optim_load_state_json(o, NULL), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "JSON text is NULL");
    CHECK_EQ_INT(nb_optim_load_state_json(o, js), NB_OK);

    /* SGD state that asks for momentum from an optimiser built without its buffer. */
    nb_optim *sgd = nb_sgd_new(1, p, (nb_sgd_opts){.lr = 0.1});
    char *sj = nb_optim_state_json(sgd), *bad = edited(sj, "\"momentum\":0.0", "\"momentum\":0.9");
    check_bad_optim_json(sgd, bad, "need a momentum_buffer state tensor");
    free(sj);
    free(bad);
    nb_optim_free(sgd);

    /* Schedules: wrong kind, unknown and missing keys, bad enum names, children. */
    nb_sched *s = nb_plateau_new(o, (nb_plateau_opts){0});
    char *pj = nb_sched_state_json(s);
    CHECK_STR_CONTAINS(pj, "\"best\":\"inf\"");
    struct {
        const char *from, *to, *needle;
    } scases[] = {
        {"\"type\":\"plateau\"", "\"type\":\"steplr\"", "'type' is steplr, this schedule is plateau"},
        {"\"mode\":\"min\"", "\"mode\":\"minimum\"", "'mode' must be one of the names"},
        {"\"patience\":10", "\"patience\":10.5", "'patience' must be an integer"},
        {"\"patience\":10", "\"patience\":-2", "patience must be >= 0"},
        {"\"factor\":0.10000000000000001,", "", "missing key 'factor'"},
        {"\"eps\"", "\"epsilon\"", "unknown key 'epsilon'"},
        {"\"last_lr\":[0.01,0.10000000000000001]", "\"last_lr\":[0.01]",
         "'last_lr' must be an array of 2"},
    };
    for (size_t i = 0; i < sizeof scases / sizeof scases[0]; i++) {
        char *sbad = edited(pj, scases[i].from, scases[i].to);
        CHECK(sbad != NULL);
        CHECK_EQ_INT(nb_sched_load_state_json(s, sbad), NB_ERR_ARG);
        CHECK_ERROR(NB_ERR_ARG, scases[i].needle);
        free(sbad);
    }
    char *after = nb_sched_state_json(s);
    CHECK(!strcmp(pj, after)); /* unchanged by the failed loads */
    free(after);
    free(pj);
    nb_sched_free(s);

    s = nb_sequentiallr_new(o, 2, (nb_sched *[]){nb_linearlr_new(o, 0.1, 1, 3),
                                                 nb_cosinelr_new(o, 10, 0)}, (int[]){3});
    pj = nb_sched_state_json(s);
    char *sbad = edited(pj, "\"T_max\":10", "\"T_max\":0");
    CHECK_EQ_INT(nb_sched_load_state_json(s, sbad), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "schedulers[1]: T_max must be > 0");
    free(sbad);
    sbad = edited(pj, "\"milestones\":[3]", "\"milestones\":[3,4]");
    CHECK_EQ_INT(nb_sched_load_state_json(s, sbad), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "'milestones' must be an array of 1 integers");
    free(sbad);
    after = nb_sched_state_json(s);
    CHECK(!strcmp(pj, after));
    free(after);
    free(pj);
    nb_sched_free(s);

    /* SequentialLR's milestones are checked on loading as when it is made. */
    s = nb_sequentiallr_new(o, 3, (nb_sched *[]){nb_linearlr_new(o, 0.1, 1, 3),
                                                 nb_exponentiallr_new(o, 0.9),
                                                 nb_cosinelr_new(o, 10, 0)}, (int[]){3, 5});
    pj = nb_sched_state_json(s);
    sbad = edited(pj, "\"milestones\":[3,5]", "\"milestones\":[5,3]");
    CHECK_EQ_INT(nb_sched_load_state_json(s, sbad), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "milestones must increase (5 then 3)");
    free(sbad);
    free(pj);
    nb_sched_free(s);

    free(js);
    nb_optim_free(o);
    free_params(p, MAX_PARAMS);
}

/* ---------------------------------------------------------------- the kinds' registries */

static int registry_count(const void *const *registry) {
    int n = 0;
    while (registry[n]) n++;
    return n;
}

/* Where kind is in the registry, -1 if absent. */
static int registry_index(const void *const *registry, const void *kind) {
    for (int i = 0; registry[i]; i++)
        if (registry[i] == kind) return i;
    return -1;
}

/* Each public constructor makes a registered kind, and each registered kind is made by one: a
 * kind whose file was added without its registry line, or the reverse, fails here. */
static void every_kind_has_its_registry_line(void) {
    nb_tensor *p[MAX_PARAMS];
    make_params(p);
    nb_optim *os[] = {
        nb_sgd_new(1, p, (nb_sgd_opts){.lr = 0.1, .momentum = 0.9}),
        nb_adagrad_new(1, p, (nb_adagrad_opts){0}), nb_rmsprop_new(1, p, (nb_rmsprop_opts){0}),
        nb_adam_new(1, p, (nb_adam_opts){0}), nb_adamw_new(1, p, (nb_adamw_opts){0}),
        nb_lbfgs_new(1, p, (nb_lbfgs_opts){0}),
    };
    int n_optims = (int)(sizeof os / sizeof os[0]);
    bool seen[16] = {0};
    CHECK_EQ_INT(registry_count((const void *const *)nb__optim_kinds), n_optims);
    for (int i = 0; i < n_optims; i++) {
        int at = registry_index((const void *const *)nb__optim_kinds, os[i]->kind);
        CHECK(at >= 0 && !seen[at]);
        if (at >= 0) seen[at] = true;
    }
    nb_optim *o = os[0];
    nb_sched *ss[] = {
        nb_steplr_new(o, 2, 0.5), nb_multisteplr_new(o, 1, (int[]){2}, 0.5),
        nb_exponentiallr_new(o, 0.9), nb_cosinelr_new(o, 10, 0), nb_linearlr_new(o, 0.5, 1, 3),
        nb_plateau_new(o, (nb_plateau_opts){0}),
        nb_cycliclr_new(o, (nb_cyclic_opts){.base_lr = 0.01, .max_lr = 0.1}),
        nb_onecyclelr_new(o, (nb_onecycle_opts){.max_lr = 0.1, .total_steps = 10}),
        nb_chained_new(1, (nb_sched *[]){nb_steplr_new(o, 2, 0.5)}),
        nb_sequentiallr_new(o, 1, (nb_sched *[]){nb_steplr_new(o, 2, 0.5)}, NULL),
    };
    int n_scheds = (int)(sizeof ss / sizeof ss[0]);
    memset(seen, 0, sizeof seen);
    CHECK_EQ_INT(registry_count((const void *const *)nb__sched_kinds), n_scheds);
    for (int i = 0; i < n_scheds; i++) {
        CHECK(ss[i] != NULL);
        int at = ss[i] ? registry_index((const void *const *)nb__sched_kinds, ss[i]->kind) : -1;
        CHECK(at >= 0 && !seen[at]);
        if (at >= 0) seen[at] = true;
        nb_sched_free(ss[i]);
    }
    for (int i = 0; i < n_optims; i++) nb_optim_free(os[i]);
    free_params(p, MAX_PARAMS);
}

/* Whether key is among keys[0..n). */
static bool key_in(const char *key, const char *const *keys, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(key, keys[i])) return true;
    return false;
}

/* Every optimiser descriptor is complete: a unique name; the update, the checks and the slots
 * set; its JSON keys unique, clear of the shared ones, weight_decay once, within nb__group; the
 * momentum a schedule cycles one of its fields; its state tensors' names fit. */
static void every_optimiser_descriptor_is_complete(void) {
    const char *names[16];
    for (int i = 0; nb__optim_kinds[i]; i++) {
        const nb__optim_kind *k = nb__optim_kinds[i];
        CHECK(k->name && !key_in(k->name, names, i));
        names[i] = k->name;
        /* a kind that steps only with a closure (L-BFGS) has no per-parameter update, slots
         * or weight_decay (torch's has none) */
        bool closure_only = k->step_closure && !k->step;
        CHECK(k->check && (k->step || closure_only) && k->slot_needed &&
              (k->slots[0] || closure_only));
        const char *keys[NB__GROUP_HP + 4] = {"lr", "initial_lr", "params"};
        int n = 3, weight_decay = 0;
        bool momentum_named = k->momentum == NB__NO_MOMENTUM;
        for (const nb__hp_field *f = k->fields; f->key && n < NB__GROUP_HP + 4; f++) {
            CHECK(!key_in(f->key, keys, n));
            keys[n++] = f->key;
            weight_decay += f->offset == offsetof(nb__group, weight_decay);
            size_t end = f->offset + sizeof(double) * (f->type == NB__HP_PAIR ? 2 : 1);
            CHECK(f->offset == offsetof(nb__group, weight_decay) ||
                  (f->offset >= offsetof(nb__group, hp) &&
                   end <= offsetof(nb__group, hp) + sizeof(double) * NB__GROUP_HP));
            if (k->momentum != NB__NO_MOMENTUM && f->offset == offsetof(nb__group, hp) +
                                                                   sizeof(double) * (size_t)k->momentum)
                momentum_named = !strcmp(f->key, k->momentum_is_beta1 ? "betas" : "momentum");
        }
        CHECK(n <= NB__GROUP_HP + 4 && weight_decay == !closure_only && momentum_named);
        for (int s = 0; s < NB__SLOTS; s++)
            CHECK(!k->slots[s] || strlen("state.2147483647.") + strlen(k->slots[s]) < NB__NAME_MAX);
    }
}

/* Every schedule descriptor is complete: a unique name; stepped one way (by nb_sched_step or on
 * a metric), with a formula when the shared step uses one; its JSON keys unique, clear of "type"
 * and "schedulers", within NB__SCHED_FIELDS_MAX, and its own fields inside its struct. */
static void every_schedule_descriptor_is_complete(void) {
    const char *names[16];
    for (int i = 0; nb__sched_kinds[i]; i++) {
        const nb__sched_kind *k = nb__sched_kinds[i];
        CHECK(k->name && !key_in(k->name, names, i));
        names[i] = k->name;
        CHECK((k->step != NULL) != (k->step_metric != NULL));
        CHECK(k->step != nb__sched_step_basic || k->get_lr);
        const char *keys[NB__SCHED_FIELDS_MAX + 2] = {"type", "schedulers"};
        int n = 2;
        for (const nb__sched_field *f = k->fields; f->key && n < NB__SCHED_FIELDS_MAX + 2; f++) {
            CHECK(!key_in(f->key, keys, n));
            keys[n++] = f->key;
            size_t size = f->type == NB__F_BOOL ? sizeof(bool)
                        : f->type == NB__F_ENUM ? sizeof(int)
                        : f->type == NB__F_GROUPS ? sizeof(double *) : sizeof(double);
            CHECK(!f->in_state || f->offset + size <= k->state_size);
            CHECK(f->in_state || f->type == NB__F_INT || f->type == NB__F_GROUPS ||
                  f->type == NB__F_MILESTONES); /* the header's fields */
            CHECK(f->type != NB__F_ENUM || (f->names && f->names[0]));
        }
        CHECK(n <= NB__SCHED_FIELDS_MAX + 2);
    }
}

/* ---------------------------------------------------------------- allocation and threads */

/* After its first step, an optimiser (and a schedule) steps without calling malloc. */
static void steps_call_malloc_zero_times(void) {
    const json_t *configs = json_object_get(golden, "optim");
    for (size_t ci = 0; ci < json_array_size(configs); ci++) {
        const json_t *c = json_array_get(configs, ci);
        nb_tensor *p[MAX_PARAMS];
        make_params(p);
        nb_optim *o = config_optim(c, p);
        set_step_grads(p, 5);
        nb_optim_step(o);
        nb_sched *s = nb_cosinelr_new(o, 10, 0);
        uint64_t before = nb_alloc_stats_get().mallocs;
        for (int t = 6; t < 12; t++) {
            set_step_grads(p, t); /* copies into the existing gradients */
            nb_optim_step(o);
            nb_sched_step(s);
            nb_clip_grad_norm(MAX_PARAMS, p, 1.0f, 2.0f);
            nb_optim_zero_grad(o);
        }
        if (nb_alloc_stats_get().mallocs == before) check_passed_++;
        else CHECK_FAIL_("%s: %llu mallocs in 6 steps", opt_str(c, "name"),
                         (unsigned long long)(nb_alloc_stats_get().mallocs - before));
        nb_sched_free(s);
        nb_optim_free(o);
        free_params(p, MAX_PARAMS);
    }
}

/* Large tensors are updated by several threads: the bits must not depend on how many. */
static void results_do_not_depend_on_the_thread_count(void) {
    const int64_t n = (1 << 17) + 3;
    float *g = malloc(sizeof(float) * (size_t)n), *init = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        g[i] = sinf((float)i * 0.37f);
        init[i] = cosf((float)i * 0.11f);
    }
    float *out[2];
    float norms[2];
    int threads[2] = {1, 4};
    int saved = nb_get_num_threads();
    for (int r = 0; r < 2; r++) {
        nb_set_num_threads(threads[r]);
        nb_tensor *p = nb_from_data(init, NB_SHAPE(n));
        nb_set_requires_grad(p, true);
        nb_optim *o = nb_adamw_new(1, &p, (nb_adamw_opts){.lr = 0.01, .amsgrad = true});
        for (int t = 0; t < 3; t++) {
            set_grad(p, g);
            norms[r] = nb_clip_grad_norm(1, &p, 10.0f, 2.0f);
            nb_optim_step(o);
        }
        out[r] = malloc(sizeof(float) * (size_t)n);
        nb_copy_to(p, out[r], n);
        nb_optim_free(o);
        nb_tensor_free(p);
    }
    nb_set_num_threads(saved);
    CHECK(norms[0] == norms[1]);
    CHECK(memcmp(out[0], out[1], sizeof(float) * (size_t)n) == 0);
    free(out[0]);
    free(out[1]);
    free(g);
    free(init);
}

/* A momentum whose gradient has become 0 decays by mu a step; the update flushes it to 0 where
 * it would turn subnormal (slow to compute on), and the weights keep the bits torch's subnormal
 * steps would leave them with (a step below 2^-126 rounds away against them). */
static void sgd_flushes_a_dying_momentum_and_keeps_the_weights(void) {
    enum { N = 40000 }; /* over the pool's threshold: pieces on the workers too */
    static float init[N], g[N], w[N], buf[N];
    for (int i = 0; i < N; i++) {
        init[i] = i % 2 ? 0.5f : -3e-3f;
        g[i] = 4.0f * FLT_MIN; /* the first step's momentum: normal, 4 x 2^-126 */
    }
    nb_tensor *p = nb_from_data(init, NB_SHAPE(N));
    nb_set_requires_grad(p, true);
    nb_optim *o = nb_sgd_new(1, &p, (nb_sgd_opts){.lr = 0.01, .momentum = 0.9});
    set_grad(p, g);
    nb_optim_step(o);
    const char *names[1];
    nb_tensor *state[1];
    CHECK_EQ_INT(nb_optim_state_tensors(o, names, state, 1), 1);
    memset(g, 0, sizeof g); /* from now on the momentum only decays */
    int steps = 0;
    do {
        set_grad(p, g);
        nb_optim_step(o);
        nb_copy_to(state[0], buf, N);
    } while (buf[0] >= FLT_MIN / 0.9f && ++steps < 100);
    CHECK(buf[0] >= FLT_MIN && buf[0] < FLT_MIN / 0.9f); /* the next decay is subnormal */
    set_grad(p, g);
    nb_optim_step(o);
    nb_copy_to(state[0], buf, N);
    int zeros = 0;
    for (int i = 0; i < N; i++) zeros += buf[i] == 0.0f;
    CHECK_EQ_INT(zeros, N);
    nb_copy_to(p, w, N);
    CHECK(memcmp(w, init, sizeof w) == 0);
    nb_optim_free(o);
    nb_tensor_free(p);
}

int main(void) {
    golden = golden_load("tests/golden/optim.json");
    if (!golden) return 1;
    optimisers_follow_torch_trajectories();
    linear_model_training_follows_torch();
    schedules_follow_torch();
    clip_grad_norm_matches_hand_computation();
    clip_grad_value_clamps();
    zero_grad_fills_zeros_and_keeps_the_tensors();
    frozen_and_gradless_parameters_are_untouched();
    gradient_accumulation_equals_one_big_batch();
    state_tensors_are_named_like_torch();
    explicit_zero_overrides_a_nonzero_default();
    optimiser_state_round_trips_mid_trajectory();
    schedule_state_round_trips_mid_trajectory();
    bad_options_are_refused_with_torchs_messages();
    bad_schedules_are_refused();
    non_finite_and_out_of_range_options_are_refused();
    bad_state_json_is_refused();
    every_kind_has_its_registry_line();
    every_optimiser_descriptor_is_complete();
    every_schedule_descriptor_is_complete();
    steps_call_malloc_zero_times();
    results_do_not_depend_on_the_thread_count();
    sgd_flushes_a_dying_momentum_and_keeps_the_weights();
    json_decref(golden);
    return check_summary();
}
