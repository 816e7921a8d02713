/*
 * test_dist_pp.c — pipeline parallel training (nabla/dist.h, src/dist/pipeline.c).  ctest starts
 * it with `mpirun -np N test_dist_pp N`; in a build without MPI it checks the one-stage pipeline
 * (micro-batches accumulated in one process), prints "skipped" and exits 77.  Every rank trains
 * the reference (one process, the whole batch) itself.
 */
#include "check.h"
#include "dist_mlp.h"
#include "tmpdir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SKIP_CODE 77 /* the test's SKIP_RETURN_CODE in CMakeLists.txt */

static int rank_, size_;

/* Linear(784, 64) ReLU Linear(64, 64) ReLU Linear(64, 10), torch's init from seed. */
static nb_module *mlp(uint64_t seed) {
    nb_manual_seed(seed);
    return nb_sequential_new(5, (nb_module *[]){nb_linear_new(FEATURES, HIDDEN, true),
                                                nb_activation_new(NB_ACT_RELU, 0),
                                                nb_linear_new(HIDDEN, HIDDEN, true),
                                                nb_activation_new(NB_ACT_RELU, 0),
                                                nb_linear_new(HIDDEN, CLASSES, true)});
}

/* Steps from .. to - 1 on the same batches: through the pipe when given, else as one process;
 * the last step's loss in *last. */
static void train_steps(nb_module *m, nb_pipe *pipe, nb_optim *o, int from, int to, double *last) {
    float *x = malloc(sizeof(float) * BATCH * FEATURES), y[BATCH];
    for (int step = from; step < to; step++) {
        batch_data(step, x, y);
        nb_scope_begin();
        if (o) nb_optim_zero_grad(o);
        nb_tensor *xt = nb_from_data(x, NB_SHAPE(BATCH, FEATURES));
        nb_tensor *yt = nb_to_dtype(nb_from_data(y, NB_SHAPE(BATCH)), NB_I32);
        if (pipe) CHECK(nb_pipe_step(pipe, xt, yt, last) == NB_OK);
        else {
            nb_tensor *loss = nb_cross_entropy(nb_module_forward(m, xt), yt, NULL);
            CHECK(nb_backward(loss) == NB_OK);
            *last = nb_item(loss);
        }
        if (o) CHECK(nb_optim_step(o) == NB_OK);
        nb_scope_end();
    }
    free(x);
}

static void train(nb_module *m, nb_pipe *pipe, bool adam, double *last) {
    nb_optim *o = optim(m, adam);
    train_steps(m, pipe, o, 0, STEPS, last);
    nb_optim_free(o);
}

static void check_same_weights_exactly(const nb_module *got, const nb_module *want) {
    CHECK_EQ_INT(nb_module_num_params(got), nb_module_num_params(want));
    for (int i = 0; i < nb_module_num_params(want); i++) {
        const nb_tensor *p = nb_module_param(got, i, NULL), *q = nb_module_param(want, i, NULL);
        int64_t k = nb_numel(q);
        CHECK_EQ_INT(nb_numel(p), k);
        float *g = host_vals(p), *r = host_vals(q);
        double *w = malloc(sizeof(double) * (size_t)k);
        for (int64_t j = 0; j < k; j++) w[j] = r[j];
        CHECK_ARRAY("resumed vs whole run", g, w, (long)k, 0, 0);
        free(w);
    }
}

/* Each rank starts from another initialisation, which nb_pipe_new replaces by rank 0's; after
 * 100 steps of m micro-batches the gathered weights are those one process trains on the whole
 * batch, and every rank reports the batch's loss. */
static void pipe_trains_as_one_process(nb_pipe_schedule schedule, int micro, bool adam) {
    nb_module *m = mlp(7 + (uint64_t)rank_), *ref = mlp(7);
    nb_pipe *pipe = nb_pipe_new(m, &(nb_pipe_opts){.micro_batches = micro, .schedule = schedule});
    CHECK(pipe != NULL);
    double loss = 0, want = 0;
    train(m, pipe, adam, &loss);
    train(ref, NULL, adam, &want);
    CHECK_NEAR(loss, want, 1e-5, 1e-5);
    nb_module *full = mlp(99);
    CHECK(nb_pipe_gather(pipe, full) == NB_OK);
    char what[64];
    snprintf(what, sizeof what, "%s m=%d %s vs one process", schedule == NB_PIPE_GPIPE ? "gpipe" : "1f1b",
             micro, adam ? "adam" : "sgd");
    check_same_weights(what, full, ref);
    nb_pipe_stats s = nb_pipe_stats_get(pipe);
    CHECK_EQ_INT(s.steps, STEPS);
    CHECK_NEAR(s.theory, (size_ - 1.0) / (micro + size_ - 1.0), 1e-12, 0);
    CHECK(s.bubble >= 0 && s.bubble < 1 && s.step_seconds > 0 && s.stage_busy > 0);
    /* one micro-batch: the stages take turns, each idle while the others work, whatever their
     * times: the replay's idle share is exactly (p - 1) / p */
    if (micro == 1) CHECK_NEAR(s.bubble_each_op, s.theory, 1e-4, 0);
    nb_pipe_free(pipe);
    nb_module_free(full);
    nb_module_free(ref);
    nb_module_free(m);
}

/* The course MLP with a Flatten in front, as `nabla train` builds it (the same draws as mlp). */
static nb_module *flat_mlp(uint64_t seed) {
    nb_manual_seed(seed);
    return nb_sequential_new(6, (nb_module *[]){nb_flatten_new(1, -1), nb_linear_new(FEATURES, HIDDEN, true),
                                                nb_activation_new(NB_ACT_RELU, 0),
                                                nb_linear_new(HIDDEN, HIDDEN, true),
                                                nb_activation_new(NB_ACT_RELU, 0),
                                                nb_linear_new(HIDDEN, CLASSES, true)});
}

/* A first stage of the Flatten alone (no parameters, an input without gradient) only passes the
 * batch on; the pipe still trains as one process. */
static void pipe_with_a_first_stage_without_parameters_trains_as_one_process(void) {
    nb_module *m = flat_mlp(7), *ref = flat_mlp(7), *full = flat_mlp(99);
    int starts[5] = {0, 1, 6}; /* 2 stages: the Flatten, the MLP; 4: the Flatten, 1, 2-3, 4-5 */
    if (size_ == 4) memcpy(starts, (int[]){0, 1, 2, 4, 6}, sizeof starts);
    nb_pipe *pipe = nb_pipe_new(m, &(nb_pipe_opts){.micro_batches = 4, .starts = starts});
    CHECK(pipe != NULL);
    double loss, want;
    train(m, pipe, false, &loss);
    train(ref, NULL, false, &want);
    CHECK(nb_pipe_gather(pipe, full) == NB_OK);
    check_same_weights("flatten first vs one process", full, ref);
    nb_pipe_free(pipe);
    nb_module_free(full);
    nb_module_free(ref);
    nb_module_free(m);
}

/* The balanced cut of the course MLP gives the big first layer a stage of its own; the stage
 * keeps its layers' names and only their parameters. */
static void pipe_keeps_only_its_stage_under_the_whole_models_names(void) {
    nb_module *m = mlp(7);
    nb_pipe *pipe = nb_pipe_new(m, NULL);
    CHECK(pipe != NULL);
    int first = nb_pipe_stage_first(pipe), end = nb_pipe_stage_end(pipe);
    CHECK(first >= 0 && end > first && end <= 5);
    if (rank_ == 0) CHECK_EQ_INT(end, size_ == 1 ? 5 : 1); /* Linear(784, 64) alone */
    if (rank_ == size_ - 1) CHECK_EQ_INT(end, 5);
    int64_t kept = 0;
    for (int i = first; i < end; i++) {
        char name[16];
        snprintf(name, sizeof name, "%d", i);
        kept += nb_module_num_elements(nb_module_child(m, name));
    }
    CHECK_EQ_INT(nb_module_num_elements(m), kept);
    if (first == 0) CHECK(nb_module_find(m, "0.weight") != NULL);
    nb_pipe_free(pipe);
    nb_module_free(m);
}

/* Explicit cuts, and what nb_pipe_new and nb_pipe_step refuse. */
static void pipe_refuses_bad_cuts_and_batches(void) {
    nb_module *m = mlp(7);
    int bad[5] = {0, 3, 2, 4, 5};
    CHECK(!nb_pipe_new(m, &(nb_pipe_opts){.starts = bad}));
    CHECK_ERROR(NB_ERR_ARG, "starts must rise from 0");
    CHECK(!nb_pipe_new(m, &(nb_pipe_opts){.micro_batches = -1}));
    CHECK_ERROR(NB_ERR_ARG, "-1 micro-batches");
    CHECK(!nb_pipe_new(NULL, NULL));
    CHECK_ERROR(NB_ERR_NULL, "pipe_new: model is NULL");
    nb_pipe *pipe = nb_pipe_new(m, &(nb_pipe_opts){.micro_batches = 8});
    CHECK(pipe != NULL);
    nb_scope_begin();
    nb_tensor *x = nb_zeros(NB_SHAPE(4, FEATURES)), *y = nb_zeros_dtype(NB_I32, NB_SHAPE(4));
    CHECK(nb_pipe_step(pipe, x, y, NULL) != NB_OK);
    CHECK_ERROR(NB_ERR_SHAPE, "a batch of 4 rows cannot make 8 micro-batches");
    nb_scope_end();
    nb_pipe_free(pipe);
    nb_module_free(m);
}

/* With an input that requires grad, the first stage adds the batch's input gradient to x.grad,
 * as one process's backward does (4 micro-batches, each its rows). */
static void pipe_adds_the_inputs_gradient_on_the_first_stage(void) {
    nb_module *m = mlp(7), *ref = mlp(7);
    nb_pipe *pipe = nb_pipe_new(m, &(nb_pipe_opts){.micro_batches = 4, .schedule = NB_PIPE_1F1B});
    float *x = malloc(sizeof(float) * BATCH * FEATURES), y[BATCH];
    batch_data(0, x, y);
    nb_scope_begin();
    nb_tensor *xp = nb_from_data(x, NB_SHAPE(BATCH, FEATURES)), *xr = nb_from_data(x, NB_SHAPE(BATCH, FEATURES));
    nb_tensor *yt = nb_to_dtype(nb_from_data(y, NB_SHAPE(BATCH)), NB_I32);
    nb_set_requires_grad(xp, true);
    nb_set_requires_grad(xr, true);
    CHECK(nb_pipe_step(pipe, xp, yt, NULL) == NB_OK);
    CHECK(nb_backward(nb_cross_entropy(nb_module_forward(ref, xr), yt, NULL)) == NB_OK);
    if (rank_ == 0) {
        CHECK(nb_grad(xp) != NULL);
        float *want = host_vals(nb_grad(xr));
        double *w = malloc(sizeof(double) * BATCH * FEATURES);
        for (int i = 0; i < BATCH * FEATURES; i++) w[i] = want[i];
        CHECK_TENSOR("x.grad", nb_grad(xp), w, BATCH * FEATURES, 1e-7, 1e-5);
        free(w);
    }
    nb_scope_end();
    free(x);
    nb_pipe_free(pipe);
    nb_module_free(ref);
    nb_module_free(m);
}

/* Each stage checkpoints its own layers and optimiser (the stage keeps the whole model's names):
 * a run stopped after 50 steps and resumed from the stages' checkpoints, in a new pipe, ends bit
 * for bit where the 100-step run ends. */
static void pipe_stage_checkpoints_resume_bit_for_bit(void) {
    char name[32];
    snprintf(name, sizeof name, "stage-%d.safetensors", rank_);
    nb_module *m = mlp(7), *resumed = mlp(11);
    nb_pipe *pipe = nb_pipe_new(m, &(nb_pipe_opts){.micro_batches = 4, .schedule = NB_PIPE_1F1B});
    nb_pipe *pipe2 = nb_pipe_new(resumed, &(nb_pipe_opts){.micro_batches = 4, .schedule = NB_PIPE_1F1B});
    nb_optim *o = optim(m, true), *o2 = optim(resumed, true);
    double loss;
    train_steps(m, pipe, o, 0, STEPS / 2, &loss);
    CHECK(nb_checkpoint_save(tpath(name), m, o, NULL, 0, NULL) == NB_OK);
    train_steps(m, pipe, o, STEPS / 2, STEPS, &loss);
    CHECK(nb_checkpoint_load(tpath(name), resumed, o2, NULL, NULL, NULL) == NB_OK);
    train_steps(resumed, pipe2, o2, STEPS / 2, STEPS, &loss);
    check_same_weights_exactly(resumed, m);
    nb_optim_free(o2);
    nb_optim_free(o);
    nb_pipe_free(pipe2);
    nb_pipe_free(pipe);
    nb_module_free(resumed);
    nb_module_free(m);
}

/* A model whose parameter counts mislead about its times: two Linear(32, 32) on each of 256
 * positions (a thousand parameters each, most of the time), then Linear(8192, 16) (nearly all
 * the parameters, a fraction of the time) and a head. */
enum { SEQ = 256, DIM = 32, PROFILED_STEPS = 10 };
static nb_module *positionwise_mlp(uint64_t seed) {
    nb_manual_seed(seed);
    return nb_sequential_new(8, (nb_module *[]){nb_linear_new(DIM, DIM, true), nb_activation_new(NB_ACT_RELU, 0),
                                                nb_linear_new(DIM, DIM, true), nb_activation_new(NB_ACT_RELU, 0),
                                                nb_flatten_new(1, -1), nb_linear_new(SEQ * DIM, 16, true),
                                                nb_activation_new(NB_ACT_RELU, 0), nb_linear_new(16, CLASSES, true)});
}

/* PROFILED_STEPS of SGD on x through the pipe (or one process); the last loss. */
static double train_positionwise(nb_module *m, nb_pipe *pipe, nb_tensor *x, nb_tensor *y) {
    nb_optim *o = optim(m, false);
    double loss = 0;
    for (int step = 0; step < PROFILED_STEPS; step++) {
        nb_scope_begin();
        if (o) nb_optim_zero_grad(o);
        if (pipe) CHECK(nb_pipe_step(pipe, x, y, &loss) == NB_OK);
        else {
            nb_tensor *l = nb_cross_entropy(nb_module_forward(m, x), y, NULL);
            CHECK(nb_backward(l) == NB_OK);
            loss = nb_item(l);
        }
        if (o) CHECK(nb_optim_step(o) == NB_OK);
        nb_scope_end();
    }
    nb_optim_free(o);
    return loss;
}

/* Cut by measured time (nb_pipe_opts.profile_input), the positionwise MLP on 2 ranks splits the
 * two positionwise Linears between the stages, or puts the second with the first: measured
 * (thread CPU us, layer by layer) 300, 125, 300, 125, 60, 220, 2, 3, the cut after the first
 * ReLU has a slowest stage of 710 and the cut after the second Linear 725, 2 % apart, which the
 * noise of a run decides (it chose each about half the time).  The parameter-count cut gives the
 * first stage both positionwise Linears and both ReLUs and the flatten (the last Linear holds
 * nearly all the parameters): that is what the timed cut must not do.  Which step is shorter is
 * bench/pipeline_bubble's to measure, not a test's.  On any number of ranks the pipe trains as
 * one process. */
static void pipe_cut_by_measured_time_balances_the_stages(void) {
    float *xs = malloc(sizeof(float) * BATCH * SEQ * DIM), ys[BATCH];
    for (int i = 0; i < BATCH * SEQ * DIM; i++) xs[i] = sinf(0.37f * (float)i);
    for (int i = 0; i < BATCH; i++) ys[i] = (float)(i % CLASSES);
    nb_scope_begin();
    nb_tensor *x = nb_from_data(xs, NB_SHAPE(BATCH, SEQ, DIM)), *y = nb_to_dtype(nb_from_data(ys, NB_SHAPE(BATCH)), NB_I32);
    nb_tensor *sample = nb_contiguous(nb_slice(x, 0, 0, BATCH / 4, 1));
    nb_module *timed = positionwise_mlp(7), *counted = positionwise_mlp(7), *ref = positionwise_mlp(7);
    nb_pipe *pt = nb_pipe_new(timed, &(nb_pipe_opts){.micro_batches = 4, .profile_input = sample});
    nb_pipe *pc = nb_pipe_new(counted, &(nb_pipe_opts){.micro_batches = 4});
    CHECK(pt && pc);
    if (size_ == 2 && rank_ == 0) {
        CHECK(nb_pipe_stage_end(pt) == 2 || nb_pipe_stage_end(pt) == 3);
        CHECK_EQ_INT(nb_pipe_stage_end(pc), 5);
    }
    CHECK(nb_pipe_stage_first(pt) < nb_pipe_stage_end(pt));
    for (int i = 0; i < nb_module_num_params(timed); i++) CHECK(!nb_grad(nb_module_param(timed, i, NULL)));
    double loss = train_positionwise(timed, pt, x, y), want = train_positionwise(ref, NULL, x, y);
    train_positionwise(counted, pc, x, y);
    CHECK_NEAR(loss, want, 1e-5, 1e-5);
    nb_module *full = positionwise_mlp(99);
    CHECK(nb_pipe_gather(pt, full) == NB_OK);
    check_same_weights("cut by time vs one process", full, ref);
    nb_pipe_free(pt);
    nb_pipe_free(pc);
    nb_module_free(full);
    nb_module_free(ref);
    nb_module_free(counted);
    nb_module_free(timed);
    nb_scope_end();
    free(xs);
}

static void pipe_runs_every_schedule(void) {
    pipe_trains_as_one_process(NB_PIPE_GPIPE, 1, false);
    pipe_trains_as_one_process(NB_PIPE_GPIPE, 4, false);
    pipe_trains_as_one_process(NB_PIPE_1F1B, 4, false);
    pipe_trains_as_one_process(NB_PIPE_1F1B, 16, true);
    pipe_trains_as_one_process(NB_PIPE_GPIPE, 5, true); /* 64 rows in 12 and 13 */
}

static int without_mpi(void) {
    size_ = 1;
    pipe_keeps_only_its_stage_under_the_whole_models_names();
    pipe_trains_as_one_process(NB_PIPE_1F1B, 4, false);
    pipe_adds_the_inputs_gradient_on_the_first_stage();
    pipe_refuses_bad_cuts_and_batches();
    pipe_cut_by_measured_time_balances_the_stages();
    if (check_failed_) return check_summary();
    printf("test_dist_pp: the one-stage pipeline passed; skipped on ranks (this build has no MPI)\n");
    return SKIP_CODE;
}

int main(int argc, char **argv) {
    size_t live_at_start = nb_alloc_stats_get().bytes_live;
    nb_set_num_threads(1);
    if (nb_dist_init(&argc, &argv) != NB_OK) return without_mpi();
    rank_ = nb_dist_rank();
    size_ = nb_dist_size();
    if (argc > 1) CHECK_EQ_INT(size_, atoi(argv[1]));
    pipe_keeps_only_its_stage_under_the_whole_models_names();
    CHECK(tmpdir_make("nabla-pp"));
    pipe_runs_every_schedule();
    pipe_adds_the_inputs_gradient_on_the_first_stage();
    pipe_stage_checkpoints_resume_bit_for_bit();
    if (size_ == 2 || size_ == 4) pipe_with_a_first_stage_without_parameters_trains_as_one_process();
    pipe_cut_by_measured_time_balances_the_stages();
    tmpdir_remove();
    pipe_refuses_bad_cuts_and_batches();
    CHECK(nb_dist_finalize() == NB_OK);
    nb_release_memory();
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, live_at_start);
    if (rank_ != 0) return check_failed_ ? 1 : 0;
    return check_summary();
}
