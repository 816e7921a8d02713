/*
 * test_dist.c — process groups and data parallel training (nabla/dist.h).  ctest starts it with
 * `mpirun -np N test_dist N`; the distributed sampler's checks need no MPI and run first.  In a
 * build without MPI it checks that the calls refuse, then prints "skipped" and exits 77.
 */
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SKIP_CODE 77 /* the test's SKIP_RETURN_CODE in CMakeLists.txt */

static int rank_, size_;

/* ---- the distributed sampler (one process) */

/* A data set whose sample i is the single value i, so a batch names its samples. */
static nb_dataset *counting_dataset(int64_t n) {
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = (float)i;
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){.n = n, .sample_ndim = 1,
                                                         .sample_shape = (int64_t[]){1}, .x_f32 = x});
    free(x);
    return ds;
}

/* The samples of one epoch of a loader, in order; returns how many. */
static int64_t epoch_samples(nb_loader *l, float *out) {
    int64_t k = 0;
    nb_tensor *x, *y;
    while (nb_loader_next(l, &x, &y)) {
        nb_copy_to(x, out + k, nb_numel(x));
        k += nb_numel(x);
    }
    return k;
}

static void sampler_replica_takes_every_nth_position_of_the_shuffled_epoch(void) {
    nb_dataset *ds = counting_dataset(10);
    float whole[10], part[10];
    nb_loader *one = nb_loader_new(ds, (nb_loader_opts){.batch_size = 10, .shuffle = true, .seed = 3});
    CHECK_EQ_INT(epoch_samples(one, whole), 10);
    for (int r = 0; r < 3; r++) { /* 3 replicas: ceil(10 / 3) = 4 each, the last padded */
        nb_loader *l = nb_loader_new(ds, (nb_loader_opts){.batch_size = 3, .shuffle = true,
                                                          .seed = 3, .num_replicas = 3, .rank = r});
        CHECK_EQ_INT(nb_loader_len(l), 2);
        CHECK_EQ_INT(epoch_samples(l, part), 4);
        for (int p = 0; p < 4; p++) CHECK_EQ_INT(part[p], whole[(r + 3 * p) % 10]);
        nb_loader_free(l);
    }
    nb_loader_free(one);
    nb_dataset_free(ds);
}

static void sampler_refuses_a_rank_outside_its_replicas(void) {
    nb_dataset *ds = counting_dataset(4);
    CHECK(!nb_loader_new(ds, (nb_loader_opts){.num_replicas = 2, .rank = 2}));
    CHECK_ERROR(NB_ERR_ARG, "rank 2 is not a replica of num_replicas 2");
    CHECK(!nb_loader_new(ds, (nb_loader_opts){.rank = 1}));
    CHECK_ERROR(NB_ERR_ARG, "rank 1");
    nb_dataset_free(ds);
}

static void an_uninitialised_process_is_rank_0_of_1(void) {
    CHECK(!nb_dist_is_initialized());
    CHECK_EQ_INT(nb_dist_rank(), 0);
    CHECK_EQ_INT(nb_dist_size(), 1);
}

/* ---- collectives (every rank) */

static void allreduce_sums_and_averages_every_rank(void) {
    nb_scope_begin();
    nb_tensor *t = nb_full(NB_SHAPE(3, 5), (float)(rank_ + 1));
    CHECK(nb_dist_allreduce(t, NB_REDUCE_SUM) == NB_OK);
    double sum = size_ * (size_ + 1) / 2.0, want[15];
    for (int i = 0; i < 15; i++) want[i] = sum;
    CHECK_TENSOR("sum", t, want, 15, 0, 0);
    nb_tensor *m = nb_full(NB_SHAPE(4), (float)(rank_ + 1));
    CHECK(nb_dist_allreduce(m, NB_REDUCE_MEAN) == NB_OK);
    for (int i = 0; i < 4; i++) want[i] = sum / size_;
    CHECK_TENSOR("mean", m, want, 4, 0, 1e-7);
    nb_scope_end();
}

/* A transposed view is not contiguous: MPI works on a host copy, stored back into the base. */
static void allreduce_writes_through_a_view(void) {
    nb_scope_begin();
    nb_tensor *base = nb_from_data((float[]){1, 2, 3, 4, 5, 6}, NB_SHAPE(2, 3));
    nb_tensor *v = nb_transpose(base, 0, 1);
    CHECK(nb_dist_allreduce(v, NB_REDUCE_SUM) == NB_OK);
    double want[6];
    for (int i = 0; i < 6; i++) want[i] = (i + 1.0) * size_;
    CHECK_TENSOR("base", base, want, 6, 0, 0);
    nb_scope_end();
}

static void broadcast_copies_the_roots_tensor(void) {
    nb_scope_begin();
    int root = size_ - 1;
    nb_tensor *t = nb_full(NB_SHAPE(2, 2), (float)(10 * rank_));
    CHECK(nb_dist_broadcast(t, root) == NB_OK);
    double want[4] = {10.0 * root, 10.0 * root, 10.0 * root, 10.0 * root};
    CHECK_TENSOR("broadcast", t, want, 4, 0, 0);
    CHECK(nb_dist_broadcast(t, size_) != NB_OK);
    CHECK_ERROR(NB_ERR_ARG, "root");
    nb_scope_end();
}

static void allgather_stacks_every_ranks_tensor(void) {
    nb_scope_begin();
    nb_tensor *t = nb_full(NB_SHAPE(2, 3), (float)rank_);
    nb_tensor *g = nb_dist_allgather(t);
    CHECK(g && nb_ndim(g) == 3 && nb_shape(g)[0] == size_ && nb_shape(g)[2] == 3);
    double want[4 * 6];
    for (int i = 0; i < 6 * size_; i++) want[i] = i / 6;
    CHECK_TENSOR("allgather", g, want, 6 * size_, 0, 0);
    nb_scope_end();
}

/* Rank r's input row i holds 100 r + i; the sum over ranks of row i is 100 S + N i. */
static void reduce_scatter_gives_each_rank_its_rows_of_the_sum(void) {
    nb_scope_begin();
    nb_tensor *t = nb_arange(0, (float)(2 * size_), 1);
    t = nb_add_scalar(nb_reshape(t, NB_SHAPE(2 * size_, 1)), 100.0f * rank_);
    nb_tensor *s = nb_dist_reduce_scatter(t, NB_REDUCE_SUM);
    double S = 100.0 * size_ * (size_ - 1) / 2, want[2];
    for (int i = 0; i < 2; i++) want[i] = S + size_ * (2.0 * rank_ + i);
    CHECK(s && nb_shape(s)[0] == 2 && nb_shape(s)[1] == 1);
    CHECK_TENSOR("reduce_scatter", s, want, 2, 0, 0);
    CHECK(!nb_dist_reduce_scatter(nb_zeros(NB_SHAPE(size_ + 1)), NB_REDUCE_SUM));
    CHECK_ERROR(NB_ERR_SHAPE, "not a multiple of the group's size");
    nb_scope_end();
}

/* Each rank sends its number to the next and receives the previous one's (even ranks send
 * first, so blocking sends pair up whatever the size). */
static void send_and_recv_pass_a_tensor_round_the_ring(void) {
    nb_scope_begin();
    nb_tensor *mine = nb_full(NB_SHAPE(3), (float)rank_), *got = nb_zeros(NB_SHAPE(3));
    int next = (rank_ + 1) % size_, prev = (rank_ + size_ - 1) % size_;
    if (rank_ % 2 == 0) {
        CHECK(nb_dist_send(mine, next) == NB_OK);
        CHECK(nb_dist_recv(got, prev) == NB_OK);
    } else {
        CHECK(nb_dist_recv(got, prev) == NB_OK);
        CHECK(nb_dist_send(mine, next) == NB_OK);
    }
    double want[3] = {prev, prev, prev};
    CHECK_TENSOR("ring", got, want, 3, 0, 0);
    nb_scope_end();
}

/* ---- mismatches end in errors on every rank, and the group carries on */

static void allreduce_of_different_shapes_fails_on_every_rank(void) {
    nb_scope_begin();
    nb_tensor *t = nb_zeros(1, (int64_t[]){rank_ == 0 ? 4 : 5});
    CHECK(nb_dist_allreduce(t, NB_REDUCE_SUM) != NB_OK);
    CHECK_ERROR(NB_ERR_SHAPE, rank_ == 0 ? "allreduce: rank 0" : "another rank a different one");
    nb_tensor *ok = nb_ones(NB_SHAPE(2));
    CHECK(nb_dist_allreduce(ok, NB_REDUCE_SUM) == NB_OK);
    CHECK_NEAR(host_vals(ok)[1], size_, 0, 0);
    nb_scope_end();
}

static void a_rank_with_a_wrong_dtype_fails_every_rank(void) {
    nb_scope_begin();
    nb_tensor *t = rank_ == 0 ? nb_zeros_dtype(NB_I32, NB_SHAPE(3)) : nb_zeros(NB_SHAPE(3));
    CHECK(nb_dist_allreduce(t, NB_REDUCE_SUM) != NB_OK);
    if (rank_ == 0) CHECK_ERROR(NB_ERR_DTYPE, "collectives take float32");
    else CHECK_ERROR(NB_ERR_ARG, "another rank's input failed its checks");
    nb_scope_end();
}

static void recv_of_another_count_names_both(void) {
    nb_scope_begin();
    if (rank_ == 0) CHECK(nb_dist_send(nb_zeros(NB_SHAPE(3)), 1) == NB_OK);
    if (rank_ == 1) {
        CHECK(nb_dist_recv(nb_zeros(NB_SHAPE(4)), 0) != NB_OK);
        CHECK_ERROR(NB_ERR_SHAPE, "rank 1 of");
    }
    CHECK(nb_dist_recv(nb_zeros(NB_SHAPE(1)), rank_) != NB_OK);
    CHECK_ERROR(NB_ERR_ARG, "is not another rank");
    nb_scope_end();
}

/* ---- data parallel */

enum { FEATURES = 8, HIDDEN = 16, CLASSES = 4, SAMPLES = 6400, GLOBAL_BATCH = 64, STEPS = 100 };

/* Synthetic classes: x uniform in [-1, 1), the class the argmax of a fixed linear map. */
static nb_dataset *synthetic_dataset(void) {
    float *x = malloc(sizeof(float) * SAMPLES * FEATURES);
    int32_t *y = malloc(sizeof(int32_t) * SAMPLES);
    uint64_t s = 12345;
    for (int i = 0; i < SAMPLES * FEATURES; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((s >> 40) / (double)(1 << 24)) * 2 - 1;
    }
    for (int i = 0; i < SAMPLES; i++) {
        float best = -1e30f;
        for (int c = 0; c < CLASSES; c++) {
            float v = 0;
            for (int f = 0; f < FEATURES; f++) v += x[i * FEATURES + f] * (float)((c * 7 + f * 3) % 5 - 2);
            if (v > best) best = v, y[i] = c;
        }
    }
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){.n = SAMPLES, .sample_ndim = 1,
                                                         .sample_shape = (int64_t[]){FEATURES},
                                                         .x_f32 = x, .labels = y});
    free(x);
    free(y);
    return ds;
}

static nb_module *mlp(uint64_t seed) {
    nb_manual_seed(seed);
    return nb_sequential_new(3, (nb_module *[]){nb_linear_new(FEATURES, HIDDEN, true),
                                                nb_activation_new(NB_ACT_RELU, 0),
                                                nb_linear_new(HIDDEN, CLASSES, true)});
}

/* How a data parallel run is set up: the gradients averaged after backward (nb_ddp_sync_grads)
 * or started by the parameters' hooks during it and waited for before the step
 * (nb_ddp_sync_in_backward, nb_ddp_finish); SGD with momentum or Adam;
 * each step's gradient accumulated over `accum` micro-batches (communicating on the last only). */
typedef struct {
    bool in_backward, adam;
    int accum;
} ddp_setup;

/* STEPS steps on batches of `batch` as replica `rank` of `replicas`, the gradients averaged by
 * ddp when it is given. */
static void train(nb_module *m, nb_ddp *ddp, ddp_setup k, const nb_dataset *ds, int64_t batch,
                  int replicas, int rank) {
    nb_tensor *params[8];
    int n = nb_module_parameters(m, params, 8);
    nb_optim *o = k.adam ? nb_adam_new(n, params, (nb_adam_opts){.lr = 0.01})
                         : nb_sgd_new(n, params, (nb_sgd_opts){.lr = 0.05, .momentum = 0.9});
    nb_loader *l = nb_loader_new(ds, (nb_loader_opts){.batch_size = batch, .shuffle = true,
                                                      .seed = 11, .num_replicas = replicas,
                                                      .rank = rank});
    nb_tensor *x, *y;
    for (int step = 0; step < STEPS; step++) {
        nb_optim_zero_grad(o);
        for (int micro = 0; micro < k.accum && nb_loader_next(l, &x, &y); micro++) {
            nb_scope_begin();
            CHECK(nb_backward(nb_cross_entropy(nb_module_forward(m, x), y, NULL)) == NB_OK);
            nb_scope_end();
        }
        if (ddp) CHECK((k.in_backward ? nb_ddp_finish(ddp) : nb_ddp_sync_grads(ddp)) == NB_OK);
        CHECK(nb_optim_step(o) == NB_OK);
    }
    nb_loader_free(l);
    nb_optim_free(o);
}

/* Every rank starts from another initialisation, which nb_ddp_new replaces by rank 0's; after
 * 100 steps on 1/N of each batch of 64, every rank holds the weights one process gets with
 * batch 64 (the reference, trained here on rank 0). */
static void ddp_on_n_ranks_trains_as_one_process_on_the_whole_batch(ddp_setup k) {
    nb_dataset *ds = synthetic_dataset();
    nb_module *m = mlp(7 + (uint64_t)rank_);
    nb_ddp *ddp = nb_ddp_new(m, 320); /* small buckets: [bias 2, weight 2], [bias 1], [weight 1] */
    CHECK(ddp && nb_ddp_num_buckets(ddp) == 3);
    if (k.in_backward) CHECK(nb_ddp_sync_in_backward(ddp) == NB_OK);
    CHECK(nb_ddp_overlapped_fraction(ddp) == 0); /* nothing finished yet */
    train(m, ddp, k, ds, GLOBAL_BATCH / k.accum / size_, size_, rank_);
    double hidden = nb_ddp_overlapped_fraction(ddp); /* how much depends on timing; a fraction */
    CHECK(k.in_backward ? hidden >= 0 && hidden <= 1 : hidden == 0);
    for (int i = 0; i < nb_module_num_params(m); i++) { /* the copies agree bit for bit */
        nb_scope_begin();
        nb_tensor *p = nb_module_param(m, i, NULL), *all = nb_dist_allgather(p);
        int64_t k = nb_numel(p);
        float *v = host_vals(all);
        double *want = malloc(sizeof(double) * (size_t)k);
        for (int64_t j = 0; j < k; j++) want[j] = v[j];
        for (int r = 1; r < size_; r++) CHECK_ARRAY("rank r's copy", v + r * k, want, (long)k, 0, 0);
        free(want);
        nb_scope_end();
    }
    if (rank_ == 0) {
        nb_module *ref = mlp(7);
        train(ref, NULL, k, ds, GLOBAL_BATCH / k.accum, 1, 0);
        for (int i = 0; i < nb_module_num_params(m); i++) {
            const nb_tensor *p = nb_module_param(m, i, NULL), *q = nb_module_param(ref, i, NULL);
            int64_t k = nb_numel(q);
            float *got = host_vals(p), *r = host_vals(q);
            double *want = malloc(sizeof(double) * (size_t)k), scale = 0;
            for (int64_t j = 0; j < k; j++) {
                want[j] = r[j];
                if (fabs(want[j]) > scale) scale = fabs(want[j]);
            }
            CHECK_ARRAY("ddp vs one process", got, want, (long)k, 1e-5 * scale, 1e-5);
            free(want);
        }
        nb_module_free(ref);
    }
    nb_ddp_free(ddp);
    nb_module_free(m);
    nb_dataset_free(ds);
}

/* A first pass of the whole model on every rank, never finished (as a memory measurement's), is
 * dropped by the second.  In that one rank 0 uses the whole model, the others only the first
 * weight (the sum of its squares): the parameters the others never reach have no hook run there,
 * and nb_ddp_finish counts them as zeros instead of waiting for ever.  Rank 0's gradients become
 * (its own + the others') / size. */
static void ddp_finish_counts_unused_parameters_as_zeros(void) {
    nb_dataset *ds = synthetic_dataset();
    nb_module *m = mlp(7);
    nb_ddp *ddp = nb_ddp_new(m, 320);
    CHECK(ddp && nb_ddp_sync_in_backward(ddp) == NB_OK);
    int n = nb_module_num_params(m);
    nb_loader *l = nb_loader_new(ds, (nb_loader_opts){.batch_size = 16});
    nb_tensor *x, *y, *w0 = nb_module_param(m, 0, NULL);
    CHECK(nb_loader_next(l, &x, &y));
    for (int pass = 0; pass < 2; pass++) {
        nb_scope_begin();
        for (int i = 0; i < n; i++) nb_zero_grad(nb_module_param(m, i, NULL));
        nb_tensor *loss = rank_ == 0 || pass == 0 ? nb_cross_entropy(nb_module_forward(m, x), y, NULL)
                                     : nb_sum(nb_mul(w0, w0));
        CHECK(nb_backward(loss) == NB_OK);
        nb_scope_end();
    }
    float *own[8];
    for (int i = 0; i < n && i < 8; i++) { /* this rank's own gradient, before the mean */
        const nb_tensor *g = nb_grad(nb_module_param(m, i, NULL));
        own[i] = g ? malloc(sizeof(float) * (size_t)nb_numel(g)) : NULL;
        if (g) memcpy(own[i], host_vals(g), sizeof(float) * (size_t)nb_numel(g));
    }
    CHECK(nb_ddp_finish(ddp) == NB_OK);
    if (rank_ == 0)
        for (int i = 0; i < n && i < 8; i++) {
            const nb_tensor *p = nb_module_param(m, i, NULL), *g = nb_grad(p);
            int64_t k = nb_numel(p);
            const float *w = host_vals(p);
            double *want = malloc(sizeof(double) * (size_t)k);
            for (int64_t j = 0; j < k; j++) /* the others' gradient of sum(w0^2) is 2 w0 */
                want[j] = (own[i][j] + (i == 0 ? (size_ - 1) * 2.0 * w[j] : 0)) / size_;
            CHECK_ARRAY("mean with zeros for the unused", host_vals(g), want, (long)k, 1e-6, 1e-5);
            free(want);
        }
    for (int i = 0; i < n && i < 8; i++) free(own[i]);
    nb_loader_free(l);
    nb_ddp_free(ddp);
    nb_module_free(m);
    nb_dataset_free(ds);
}

/* BatchNorm's buffers come from rank 0 too, its int32 num_batches_tracked included. */
static void ddp_new_gives_every_rank_rank_0s_batchnorm_buffers(void) {
    nb_module *bn = nb_batchnorm1d_new(2, (nb_batchnorm_opts){0});
    nb_scope_begin();
    for (int i = 0; i <= rank_; i++) /* rank r: r + 1 training passes on its own data */
        nb_module_forward(bn, nb_full(NB_SHAPE(2, 2), (float)(rank_ * i)));
    nb_scope_end();
    nb_ddp *ddp = nb_ddp_new(bn, 0);
    CHECK(ddp != NULL);
    CHECK_EQ_INT(nb_get(nb_module_find(bn, "num_batches_tracked"), NULL), 1);
    CHECK_NEAR(nb_get(nb_module_find(bn, "running_var"), (int64_t[]){0}), 0.9, 0, 1e-6);
    nb_ddp_free(ddp);
    nb_module_free(bn);
}

static void ddp_calls_refuse_null(void) {
    CHECK(nb_ddp_overlapped_fraction(NULL) == -1);
    CHECK_ERROR(NB_ERR_NULL, "ddp_overlapped_fraction: ddp is NULL");
    CHECK(nb_ddp_num_buckets(NULL) == -1);
}

static void ddp_refuses_models_that_differ_between_ranks(void) {
    nb_manual_seed(1);
    nb_module *m = nb_linear_new(4, rank_ == 0 ? 3 : 2, true);
    CHECK(!nb_ddp_new(m, 0));
    CHECK_ERROR(NB_ERR_SHAPE, "different one");
    nb_module_free(m);
}

/* `test_dist N stall` (ctest test_dist_stalled_rank_ends_the_job, with NB_DIST_TIMEOUT=1): rank 0
 * waits in a barrier the others never reach.  The deadline must end the job with a message
 * naming the call and the rank (ctest matches it; a hang runs into ctest's timeout). */
static int stall(void) {
    if (rank_ == 0) nb_dist_barrier();
    else sleep(30);
    fprintf(stderr, "test_dist: rank %d: the stalled barrier did not end the job\n", rank_);
    return 1;
}

/* Without MPI, every call that needs it says so; the single-process answers stay. */
static int without_mpi(void) {
    CHECK_ERROR(NB_ERR_DEVICE, "dist: this build has no MPI");
    nb_tensor *t = nb_zeros(NB_SHAPE(2));
    CHECK(nb_dist_allreduce(t, NB_REDUCE_SUM) != NB_OK);
    CHECK_ERROR(NB_ERR_DEVICE, "dist: this build has no MPI");
    CHECK(nb_dist_barrier() != NB_OK);
    CHECK_ERROR(NB_ERR_DEVICE, "this build has no MPI");
    nb_tensor_free(t);
    an_uninitialised_process_is_rank_0_of_1();
    if (check_failed_) return check_summary();
    printf("test_dist: skipped (this build has no MPI)\n");
    return SKIP_CODE;
}

int main(int argc, char **argv) {
    size_t live_at_start = nb_alloc_stats_get().bytes_live;
    sampler_replica_takes_every_nth_position_of_the_shuffled_epoch();
    sampler_refuses_a_rank_outside_its_replicas();
    an_uninitialised_process_is_rank_0_of_1();
    if (nb_dist_init(&argc, &argv) != NB_OK) return without_mpi();
    CHECK(nb_dist_is_initialized());
    rank_ = nb_dist_rank();
    size_ = nb_dist_size();
    /* the size mpirun was asked for, so a launcher that starts N singletons is caught */
    if (argc > 1) CHECK_EQ_INT(size_, atoi(argv[1]));
    if (argc > 2 && !strcmp(argv[2], "stall")) return stall();
    CHECK(size_ >= 2 && size_ <= 4);
    allreduce_sums_and_averages_every_rank();
    allreduce_writes_through_a_view();
    broadcast_copies_the_roots_tensor();
    allgather_stacks_every_ranks_tensor();
    reduce_scatter_gives_each_rank_its_rows_of_the_sum();
    send_and_recv_pass_a_tensor_round_the_ring();
    allreduce_of_different_shapes_fails_on_every_rank();
    a_rank_with_a_wrong_dtype_fails_every_rank();
    recv_of_another_count_names_both();
    ddp_on_n_ranks_trains_as_one_process_on_the_whole_batch((ddp_setup){.accum = 1});
    ddp_on_n_ranks_trains_as_one_process_on_the_whole_batch((ddp_setup){.in_backward = true, .adam = true, .accum = 1});
    /* gradient accumulation: 2 micro-batches of 32 a step, the allreduce after the second */
    ddp_on_n_ranks_trains_as_one_process_on_the_whole_batch((ddp_setup){.accum = 2});
    ddp_on_n_ranks_trains_as_one_process_on_the_whole_batch((ddp_setup){.in_backward = true, .accum = 1});
    ddp_finish_counts_unused_parameters_as_zeros();
    ddp_new_gives_every_rank_rank_0s_batchnorm_buffers();
    ddp_refuses_models_that_differ_between_ranks();
    ddp_calls_refuse_null();
    CHECK(nb_dist_finalize() == NB_OK);
    CHECK(!nb_dist_is_initialized());
    /* LeakSanitizer is off under mpirun (CMakeLists.txt): every byte nabla took is given back */
    nb_release_memory();
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, live_at_start);
    /* mpirun fails when any rank does; rank 0 prints the summary */
    if (rank_ != 0) return check_failed_ ? 1 : 0;
    return check_summary();
}
