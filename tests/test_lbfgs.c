/*
 * test_lbfgs.c — the L-BFGS optimiser against torch 1.13's torch.optim.LBFGS
 * (tests/golden/lbfgs.json, made by tools/gen_golden_lbfgs.py), and the closure step of every
 * optimiser: what a step without a closure, a failing closure, a second group and bad options
 * do.  Runs from the repository root.
 *
 * Tolerances.  nabla sums dot products in double where torch's are float32 BLAS calls and keeps
 * the step's scalars in double where torch has 0-d float32 tensors, so an iterate differs from
 * torch's by float32 rounding, which the quasi-Newton updates carry on; over the configs' 3-6
 * steps (up to 40 iterations) the largest difference seen is below 1e-4 relative.  The counts
 * (n_iter, func_evals) must agree exactly: they show that every stopping test and every line
 * search branch went torch's way.
 */
#include "check.h"
#include "golden_json.h"
#include "tmpdir.h"

#define TRAJ_ATOL 2e-5
#define TRAJ_RTOL 2e-4
#define MAX_P 4

/* A problem of the golden file: its parameters and data, and the closure's state. */
typedef struct {
    bool mlp; /* else Rosenbrock */
    nb_tensor *p[MAX_P], *X, *Y;
    int n;
    nb_optim *o;
    int calls;
    bool fail_at_call; /* the closure fails at call number fail_call */
    int fail_call;
} problem;

/* (1 - a)^2 + 100 (b - a^2)^2 */
static nb_tensor *rosenbrock(nb_tensor *a, nb_tensor *b) {
    nb_tensor *u = nb_add_scalar(nb_mul_scalar(a, -1), 1), *v = nb_sub(b, nb_mul(a, a));
    return nb_sum(nb_add(nb_mul(u, u), nb_mul_scalar(nb_mul(v, v), 100)));
}

/* mean((tanh(X W1 + b1) W2 + b2 - Y)^2) */
static nb_tensor *mlp_loss(problem *pr) {
    nb_tensor *h = nb_tanh(nb_add(nb_matmul(pr->X, pr->p[0]), pr->p[1]));
    nb_tensor *e = nb_sub(nb_add(nb_matmul(h, pr->p[2]), pr->p[3]), pr->Y);
    return nb_mean(nb_mul(e, e));
}

/* torch's closure: zero_grad, forward, backward, the loss. */
static double closure(void *ctx) {
    problem *pr = ctx;
    pr->calls++;
    if (pr->fail_at_call && pr->calls == pr->fail_call) /* an op given mismatched shapes */
        return nb_is_alive(nb_matmul(pr->X, pr->X)) ? 0 : NAN;
    nb_optim_zero_grad(pr->o);
    nb_tensor *loss = pr->mlp ? mlp_loss(pr) : rosenbrock(pr->p[0], pr->p[1]);
    if (nb_backward(loss) != NB_OK) return NAN;
    return nb_item(loss);
}

static problem problem_new(const json_t *c) {
    problem pr = {.mlp = !strcmp(json_string_value(json_object_get(c, "problem")), "mlp")};
    const json_t *params = json_object_get(c, "params"), *data = json_object_get(c, "data");
    pr.n = (int)json_array_size(params);
    for (int i = 0; i < pr.n && i < MAX_P; i++) {
        pr.p[i] = json_tensor(json_array_get(params, (size_t)i));
        nb_set_requires_grad(pr.p[i], true);
    }
    pr.X = json_tensor(json_object_get(data, "X"));
    pr.Y = json_tensor(json_object_get(data, "Y"));
    return pr;
}

static void problem_free(problem *pr) {
    nb_optim_free(pr->o);
    for (int i = 0; i < pr->n; i++) nb_tensor_free(pr->p[i]);
    nb_tensor_free(pr->X);
    nb_tensor_free(pr->Y);
}

/* torch's keyword arguments as options. */
static nb_lbfgs_opts opts_of(const json_t *j) {
    nb_lbfgs_opts o = {0};
    const json_t *v;
    if ((v = json_object_get(j, "lr"))) o.lr = json_number_value(v);
    if ((v = json_object_get(j, "max_iter"))) o.max_iter = (int)json_integer_value(v);
    if ((v = json_object_get(j, "history_size"))) o.history_size = (int)json_integer_value(v);
    if (json_object_get(j, "line_search_fn")) o.line_search_fn = NB_LINE_SEARCH_STRONG_WOLFE;
    return o;
}

/* ---------------------------------------------------------------- against torch */

static void lbfgs_follows_torch_trajectories_with_and_without_strong_wolfe(void) {
    json_t *golden = golden_load("tests/golden/lbfgs.json");
    CHECK(golden != NULL);
    if (!golden) return;
    const char *name;
    const json_t *c;
    json_object_foreach(json_object_get(golden, "cases"), name, c) {
        problem pr = problem_new(c);
        pr.o = nb_lbfgs_new(pr.n, pr.p, opts_of(json_object_get(c, "opts")));
        CHECK(pr.o != NULL);
        const json_t *steps = json_object_get(c, "steps");
        for (size_t s = 0; pr.o && s < json_array_size(steps); s++) {
            const json_t *want = json_array_get(steps, s);
            double loss = NAN;
            CHECK_EQ_INT(nb_optim_step_closure(pr.o, closure, &pr, &loss), NB_OK);
            char what[128];
            snprintf(what, sizeof what, "%s step %zu loss", name, s);
            CHECK_NEAR(loss, json_number_value(json_object_get(want, "loss")), TRAJ_ATOL, TRAJ_RTOL);
            for (int i = 0; i < pr.n; i++) {
                snprintf(what, sizeof what, "%s step %zu param %d", name, s, i);
                check_json_tensor(what, pr.p[i], json_array_get(json_object_get(want, "params"), (size_t)i),
                                  TRAJ_RTOL);
            }
            char *state = nb_optim_state_json(pr.o);
            json_t *js = json_loads(state, 0, NULL);
            const json_t *s0 = json_array_get(json_object_get(js, "state"), 0);
            if (json_integer_value(json_object_get(s0, "n_iter")) !=
                    json_integer_value(json_object_get(want, "n_iter")) ||
                json_integer_value(json_object_get(s0, "func_evals")) !=
                    json_integer_value(json_object_get(want, "func_evals")))
                CHECK_FAIL_("%s step %zu: state %s, torch n_iter %lld func_evals %lld", name, s,
                            state, (long long)json_integer_value(json_object_get(want, "n_iter")),
                            (long long)json_integer_value(json_object_get(want, "func_evals")));
            else check_passed_++;
            json_decref(js);
            free(state);
        }
        problem_free(&pr);
    }
    json_decref(golden);
}

/* ---------------------------------------------------------------- the closure step */

static problem rosenbrock_at(float a, float b) {
    problem pr = {.n = 2};
    pr.p[0] = nb_from_data(&a, 1, (int64_t[]){1});
    pr.p[1] = nb_from_data(&b, 1, (int64_t[]){1});
    for (int i = 0; i < 2; i++) nb_set_requires_grad(pr.p[i], true);
    return pr;
}

static void lbfgs_step_without_a_closure_fails_and_says_to_use_one(void) {
    problem pr = rosenbrock_at(-1.5f, 2);
    pr.o = nb_lbfgs_new(2, pr.p, (nb_lbfgs_opts){0});
    CHECK_EQ_INT(nb_optim_step(pr.o), NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "lbfgs: step needs a closure");
    CHECK_STR_CONTAINS(nb_error_message(), "nb_optim_step_closure");
    CHECK_EQ_INT(nb_optim_step_closure(pr.o, NULL, &pr, NULL), NB_ERR_NULL);
    problem_free(&pr);
}

static void lbfgs_refuses_a_second_parameter_group(void) {
    problem pr = rosenbrock_at(-1.5f, 2);
    pr.o = nb_lbfgs_new(1, pr.p, (nb_lbfgs_opts){0});
    CHECK_EQ_INT(nb_optim_add_group(pr.o, 1, &pr.p[1], NULL), NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "doesn't support per-parameter options");
    CHECK_EQ_INT(nb_optim_num_groups(pr.o), 1);
    problem_free(&pr);
}

static void lbfgs_rejects_bad_options_naming_them(void) {
    problem pr = rosenbrock_at(-1.5f, 2);
    struct { nb_lbfgs_opts opts; const char *msg; } bad[] = {
        {{.max_iter = NB_ZERO_INT}, "lbfgs: Invalid max_iter: 0"},
        {{.max_eval = -3}, "lbfgs: Invalid max_eval: -3"},
        {{.history_size = -1}, "lbfgs: Invalid history_size: -1"},
        {{.lr = -1}, "lbfgs: Invalid learning rate: -1"},
        {{.tolerance_grad = NAN}, "lbfgs: Invalid tolerance_grad: nan"},
        {{.line_search_fn = (nb_line_search)7}, "lbfgs: only 'strong_wolfe' is supported"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(nb_lbfgs_new(2, pr.p, bad[i].opts) == NULL);
        CHECK_EQ_INT(nb_error_code(), NB_ERR_ARG);
        CHECK_STR_CONTAINS(nb_error_message(), bad[i].msg);
    }
    problem_free(&pr);
}

/* A saved state: the JSON and a copy of every state tensor. */
typedef struct {
    char *json;
    int n;
    float *data[16];
    int64_t numel[16];
} saved;

static saved save_state(nb_optim *o) {
    saved sv = {.json = nb_optim_state_json(o), .n = nb_optim_state_tensors(o, NULL, NULL, 0)};
    nb_tensor *ts[16];
    CHECK(sv.n <= 16 && nb_optim_state_tensors(o, NULL, ts, 16) == sv.n);
    for (int i = 0; i < sv.n && i < 16; i++) {
        sv.numel[i] = nb_numel(ts[i]);
        sv.data[i] = malloc(sizeof(float) * (size_t)sv.numel[i]);
        nb_copy_to(ts[i], sv.data[i], sv.numel[i]);
    }
    return sv;
}

static void saved_free(saved *sv) {
    for (int i = 0; i < sv->n && i < 16; i++) free(sv->data[i]);
    free(sv->json);
}

/* Saved after two steps and restored into a new optimiser over copies of the parameters, the
 * state (history, direction, step, counters) carries on exactly as the run that never stopped. */
static void lbfgs_state_round_trip_resumes_byte_for_byte(void) {
    nb_lbfgs_opts opts = {.max_iter = 4, .history_size = 3,
                          .line_search_fn = NB_LINE_SEARCH_STRONG_WOLFE};
    problem a = rosenbrock_at(-1.2f, 1);
    a.o = nb_lbfgs_new(2, a.p, opts);
    for (int s = 0; s < 2; s++) CHECK_EQ_INT(nb_optim_step_closure(a.o, closure, &a, NULL), NB_OK);
    saved sv = save_state(a.o);
    CHECK_EQ_INT(sv.n, 2 + 2 * 3);
    CHECK_STR_CONTAINS(sv.json, "\"num_old\":3");

    problem b = rosenbrock_at(nb_item(a.p[0]), nb_item(a.p[1]));
    b.o = nb_lbfgs_new(2, b.p, opts);
    CHECK_EQ_INT(nb_optim_load_state_json(b.o, sv.json), NB_ERR_ARG); /* tensors not written */
    CHECK_STR_CONTAINS(nb_error_message(), "call nb_optim_state_tensors");
    const char *names[16];
    nb_tensor *ts[16];
    CHECK_EQ_INT(nb_optim_state_tensors(b.o, names, ts, 16), sv.n);
    CHECK(!strcmp(names[0], "state.0.d") && !strcmp(names[7], "state.0.old_stps.2"));
    for (int i = 0; i < sv.n; i++) CHECK_EQ_INT(nb_copy_from(ts[i], sv.data[i], sv.numel[i]), NB_OK);
    CHECK_EQ_INT(nb_optim_load_state_json(b.o, sv.json), NB_OK);
    for (int s = 0; s < 3; s++) {
        CHECK_EQ_INT(nb_optim_step_closure(a.o, closure, &a, NULL), NB_OK);
        CHECK_EQ_INT(nb_optim_step_closure(b.o, closure, &b, NULL), NB_OK);
    }
    for (int i = 0; i < 2; i++) CHECK_NEAR(nb_item(a.p[i]), nb_item(b.p[i]), 0, 0);
    char *ja = nb_optim_state_json(a.o), *jb = nb_optim_state_json(b.o);
    CHECK(ja && jb && !strcmp(ja, jb));
    free(ja);
    free(jb);

    nb_optim *other = nb_lbfgs_new(2, b.p, (nb_lbfgs_opts){.history_size = 5});
    CHECK_EQ_INT(nb_optim_load_state_json(other, sv.json), NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "history_size 3 differs from this optimizer's 5");
    nb_optim_free(other);
    saved_free(&sv);
    problem_free(&a);
    problem_free(&b);
}

typedef struct {
    nb_module *m;
    nb_tensor *X, *Y;
    nb_optim *o;
} model_fit;

static double model_closure(void *ctx) {
    model_fit *F = ctx;
    nb_optim_zero_grad(F->o);
    nb_tensor *e = nb_sub(nb_module_forward(F->m, F->X), F->Y);
    nb_tensor *loss = nb_mean(nb_mul(e, e));
    return nb_backward(loss) == NB_OK ? nb_item(loss) : NAN;
}

static nb_optim *model_lbfgs(nb_module *m) {
    nb_tensor *p[2] = {nb_module_param(m, 0, NULL), nb_module_param(m, 1, NULL)};
    return nb_lbfgs_new(2, p, (nb_lbfgs_opts){.max_iter = 3, .history_size = 4,
                                              .line_search_fn = NB_LINE_SEARCH_STRONG_WOLFE});
}

/* Through a checkpoint file (model, L-BFGS state), a new model and optimiser end where the run
 * that never stopped does. */
static void lbfgs_checkpoint_resumes_where_the_whole_run_does(void) {
    if (!tmpdir_make("nb_lbfgs")) return;
    float xs[24], ys[8];
    for (int i = 0; i < 24; i++) xs[i] = (float)sin(1.7 * i);
    for (int i = 0; i < 8; i++) ys[i] = (float)cos(0.9 * i);
    model_fit a = {.m = nb_linear_new(3, 1, true), .X = nb_from_data(xs, 2, (int64_t[]){8, 3}),
                   .Y = nb_from_data(ys, 2, (int64_t[]){8, 1})};
    model_fit b = {.m = nb_linear_new(3, 1, true), .X = a.X, .Y = a.Y};
    a.o = model_lbfgs(a.m);
    b.o = model_lbfgs(b.m);
    for (int s = 0; s < 2; s++) CHECK_EQ_INT(nb_optim_step_closure(a.o, model_closure, &a, NULL), NB_OK);
    CHECK_EQ_INT(nb_checkpoint_save(tpath("ck.safetensors"), a.m, a.o, NULL, 2, NULL), NB_OK);
    CHECK_EQ_INT(nb_checkpoint_load(tpath("ck.safetensors"), b.m, b.o, NULL, NULL, NULL), NB_OK);
    for (int s = 0; s < 2; s++) {
        CHECK_EQ_INT(nb_optim_step_closure(a.o, model_closure, &a, NULL), NB_OK);
        CHECK_EQ_INT(nb_optim_step_closure(b.o, model_closure, &b, NULL), NB_OK);
    }
    for (int i = 0; i < 2; i++) {
        float pa[3], pb[3];
        int64_t n = nb_numel(nb_module_param(a.m, i, NULL));
        nb_copy_to(nb_module_param(a.m, i, NULL), pa, n);
        nb_copy_to(nb_module_param(b.m, i, NULL), pb, n);
        CHECK(memcmp(pa, pb, sizeof(float) * (size_t)n) == 0);
    }
    nb_optim_free(a.o);
    nb_optim_free(b.o);
    nb_module_free(a.m);
    nb_module_free(b.m);
    nb_tensor_free(a.X);
    nb_tensor_free(a.Y);
    tmpdir_remove();
}

/* A closure that fails part-way (an op error inside it) stops the step with that error,
 * prefixed by the optimiser, and the parameters stay finite. */
static void failing_closure_stops_the_step_with_its_error(void) {
    for (int wolfe = 0; wolfe < 2; wolfe++) {
        problem pr = rosenbrock_at(-1.5f, 2);
        float X[6] = {0};
        pr.X = nb_from_data(X, 2, (int64_t[]){2, 3});
        pr.o = nb_lbfgs_new(2, pr.p, (nb_lbfgs_opts){.line_search_fn = (nb_line_search)wolfe});
        pr.fail_at_call = true;
        pr.fail_call = 3;
        CHECK_EQ_INT(nb_optim_step_closure(pr.o, closure, &pr, NULL), NB_ERR_SHAPE);
        CHECK_STR_CONTAINS(nb_error_message(), "lbfgs: the closure failed: matmul");
        CHECK_EQ_INT(pr.calls, 3);
        CHECK(isfinite(nb_item(pr.p[0])) && isfinite(nb_item(pr.p[1])));
        problem_free(&pr);
    }
}

static double nan_closure(void *ctx) {
    (void)ctx;
    return NAN;
}

static void nan_loss_without_an_error_is_a_value_error(void) {
    problem pr = rosenbrock_at(1, 1);
    pr.o = nb_lbfgs_new(2, pr.p, (nb_lbfgs_opts){0});
    CHECK_EQ_INT(nb_optim_step_closure(pr.o, nan_closure, NULL, NULL), NB_ERR_VALUE);
    CHECK_STR_CONTAINS(nb_error_message(), "lbfgs: the closure returned a NaN loss");
    problem_free(&pr);
}

/* SGD through step_closure: the closure once, then the same update as closure + nb_optim_step. */
static void other_optimisers_call_the_closure_once_then_step(void) {
    problem a = rosenbrock_at(-1.5f, 2), b = rosenbrock_at(-1.5f, 2);
    a.o = nb_sgd_new(2, a.p, (nb_sgd_opts){.lr = 1e-3, .momentum = 0.9});
    b.o = nb_sgd_new(2, b.p, (nb_sgd_opts){.lr = 1e-3, .momentum = 0.9});
    for (int s = 0; s < 3; s++) {
        double loss = NAN;
        CHECK_EQ_INT(nb_optim_step_closure(a.o, closure, &a, &loss), NB_OK);
        nb_scope_begin();
        double want = closure(&b);
        nb_scope_end();
        CHECK_EQ_INT(nb_optim_step(b.o), NB_OK);
        CHECK_NEAR(loss, want, 0, 0);
    }
    CHECK_EQ_INT(a.calls, 3);
    for (int i = 0; i < 2; i++) CHECK_NEAR(nb_item(a.p[i]), nb_item(b.p[i]), 0, 0);
    problem_free(&a);
    problem_free(&b);
}

/* At a minimum (max |g| <= tolerance_grad) a step evaluates once and moves nothing. */
static void lbfgs_at_a_minimum_evaluates_once_and_stays(void) {
    problem pr = rosenbrock_at(1, 1);
    pr.o = nb_lbfgs_new(2, pr.p, (nb_lbfgs_opts){.line_search_fn = NB_LINE_SEARCH_STRONG_WOLFE});
    double loss = -1;
    CHECK_EQ_INT(nb_optim_step_closure(pr.o, closure, &pr, &loss), NB_OK);
    CHECK_EQ_INT(pr.calls, 1);
    CHECK_NEAR(loss, 0, 0, 0);
    CHECK_NEAR(nb_item(pr.p[0]), 1, 0, 0);
    problem_free(&pr);
}

/* Rosenbrock from (-1.5, 2) to its minimum (1, 1) with the line search, every byte given back. */
static void lbfgs_converges_on_rosenbrock_and_frees_everything(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    problem pr = rosenbrock_at(-1.5f, 2);
    pr.o = nb_lbfgs_new(2, pr.p, (nb_lbfgs_opts){.history_size = 5,
                                                 .line_search_fn = NB_LINE_SEARCH_STRONG_WOLFE});
    for (int s = 0; s < 10; s++) CHECK_EQ_INT(nb_optim_step_closure(pr.o, closure, &pr, NULL), NB_OK);
    CHECK_NEAR(nb_item(pr.p[0]), 1, 1e-3, 0);
    CHECK_NEAR(nb_item(pr.p[1]), 1, 1e-3, 0);
    problem_free(&pr);
    CHECK_BYTES_BACK("lbfgs", before);
}

/* Once the history is full, a step calls malloc zero times (the closure's scope keeps its
 * blocks between calls). */
static void lbfgs_steps_allocate_nothing_once_the_history_is_full(void) {
    for (int wolfe = 0; wolfe < 2; wolfe++) {
        problem pr = rosenbrock_at(-1.2f, 1);
        pr.o = nb_lbfgs_new(2, pr.p, (nb_lbfgs_opts){.lr = wolfe ? 1 : 0.01, .max_iter = 3,
                                                     .history_size = 2,
                                                     .line_search_fn = (nb_line_search)wolfe});
        for (int s = 0; s < 3; s++) nb_optim_step_closure(pr.o, closure, &pr, NULL);
        uint64_t before = nb_alloc_stats_get().mallocs;
        for (int s = 0; s < 3; s++) CHECK_EQ_INT(nb_optim_step_closure(pr.o, closure, &pr, NULL), NB_OK);
        CHECK_EQ_INT(nb_alloc_stats_get().mallocs - before, 0);
        problem_free(&pr);
    }
}

static double rosenbrock_closure_of_two(void *ctx) {
    problem *pr = ctx;
    nb_optim_zero_grad(pr->o);
    nb_tensor *loss = rosenbrock(pr->p[0], pr->p[1]);
    return nb_backward(loss) == NB_OK ? nb_item(loss) : NAN;
}

/* A parameter the loss does not use has no gradient: it counts as zeros (torch's
 * _gather_flat_grad), stays where it is, and the others move exactly as without it. */
static void lbfgs_leaves_a_parameter_without_gradient_and_moves_the_rest_as_without_it(void) {
    problem a = rosenbrock_at(-1.2f, 1), b = rosenbrock_at(-1.2f, 1);
    float z = 0.25f;
    b.p[2] = nb_from_data(&z, 1, (int64_t[]){1});
    nb_set_requires_grad(b.p[2], true);
    b.n = 3;
    nb_lbfgs_opts opts = {.max_iter = 6, .line_search_fn = NB_LINE_SEARCH_STRONG_WOLFE};
    a.o = nb_lbfgs_new(2, a.p, opts);
    b.o = nb_lbfgs_new(3, b.p, opts);
    for (int s = 0; s < 3; s++) {
        CHECK_EQ_INT(nb_optim_step_closure(a.o, rosenbrock_closure_of_two, &a, NULL), NB_OK);
        CHECK_EQ_INT(nb_optim_step_closure(b.o, rosenbrock_closure_of_two, &b, NULL), NB_OK);
    }
    CHECK(nb_grad(b.p[2]) == NULL);
    CHECK_NEAR(nb_item(b.p[2]), 0.25, 0, 0);
    for (int i = 0; i < 2; i++) CHECK_NEAR(nb_item(a.p[i]), nb_item(b.p[i]), 0, 0);
    problem_free(&a);
    problem_free(&b);
}

int main(void) {
    lbfgs_follows_torch_trajectories_with_and_without_strong_wolfe();
    lbfgs_step_without_a_closure_fails_and_says_to_use_one();
    lbfgs_refuses_a_second_parameter_group();
    lbfgs_rejects_bad_options_naming_them();
    lbfgs_state_round_trip_resumes_byte_for_byte();
    lbfgs_checkpoint_resumes_where_the_whole_run_does();
    failing_closure_stops_the_step_with_its_error();
    nan_loss_without_an_error_is_a_value_error();
    other_optimisers_call_the_closure_once_then_step();
    lbfgs_at_a_minimum_evaluates_once_and_stays();
    lbfgs_converges_on_rosenbrock_and_frees_everything();
    lbfgs_steps_allocate_nothing_once_the_history_is_full();
    lbfgs_leaves_a_parameter_without_gradient_and_moves_the_rest_as_without_it();
    return check_summary();
}
