/*
 * test_syncbn.c — SyncBatchNorm (nabla/dist.h).  ctest starts it with `mpirun -np N test_syncbn`:
 * N ranks with SyncBatchNorm, each on 1/N of a batch, against one process with BatchNorm on the
 * whole batch (computed on every rank: it is small).  Its one-process checks run first; in a
 * build without MPI they are all it does, and it exits 77 (skipped).
 */
#include "check.h"

#include <stdlib.h>
#include <string.h>

#define SKIP_CODE 77

enum { BATCH = 8, C = 3, H = 2, W = 3 };

static int rank_ = 0, size_ = 1;

/* Deterministic values with a per-channel offset and scale, so each channel's mean and variance
 * differ (a pseudo-random walk, the same on every rank). */
static void fill(float *v, int n, int per_channel, uint64_t seed) {
    for (int i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int c = (i / per_channel) % C;
        v[i] = ((float)((seed >> 40) / (double)(1 << 24)) * 2 - 1) * (1.0f + c) + 0.5f * c;
    }
}

static nb_module *batchnorm(bool two_d) {
    nb_module *bn = two_d ? nb_batchnorm2d_new(C, (nb_batchnorm_opts){0})
                          : nb_batchnorm1d_new(C, (nb_batchnorm_opts){0});
    nb_copy_from(nb_module_find(bn, "weight"), (float[]){0.5f, 1.5f, -2.0f}, C);
    nb_copy_from(nb_module_find(bn, "bias"), (float[]){0.1f, -0.3f, 0.7f}, C);
    return bn;
}

/* What one forward and backward (loss = sum(y * g)) leaves: y, x's gradient, the parameters'
 * gradients and the running statistics. */
typedef struct {
    float *y, *dx, dw[C], db[C], rm[C], rv[C];
} bn_result;

static void result_free(bn_result *r) {
    free(r->y);
    free(r->dx);
}

/* Two training passes of bn on rows [row0, row0 + rows) of x (and g) of the whole batch,
 * the second's results kept, then one in eval mode whose output replaces y. */
static bn_result run(nb_module *bn, bool two_d, const float *x, const float *g, int row0, int rows) {
    int per = two_d ? C * H * W : C;
    int64_t shape[4] = {rows, C, H, W};
    bn_result r = {.y = malloc(sizeof(float) * (size_t)(rows * per)), .dx = malloc(sizeof(float) * (size_t)(rows * per))};
    for (int pass = 0; pass < 3; pass++) {
        nb_scope_begin();
        nb_module_train(bn, pass < 2);
        nb_tensor *xt = nb_from_data(x + row0 * per, two_d ? 4 : 2, shape);
        nb_tensor *gt = nb_from_data(g + row0 * per, two_d ? 4 : 2, shape);
        nb_set_requires_grad(xt, true);
        for (int i = 0; i < nb_module_num_params(bn); i++) nb_clear_grad(nb_module_param(bn, i, NULL));
        nb_tensor *y = nb_module_forward(bn, xt);
        CHECK(y != NULL);
        if (y) nb_copy_to(y, r.y, rows * per);
        if (y && pass < 2) CHECK(nb_backward(nb_sum(nb_mul(y, gt))) == NB_OK);
        if (pass == 1) {
            nb_copy_to(nb_grad(xt), r.dx, rows * per);
            nb_copy_to(nb_grad(nb_module_find(bn, "weight")), r.dw, C);
            nb_copy_to(nb_grad(nb_module_find(bn, "bias")), r.db, C);
        }
        nb_scope_end();
    }
    nb_copy_to(nb_module_find(bn, "running_mean"), r.rm, C);
    nb_copy_to(nb_module_find(bn, "running_var"), r.rv, C);
    return r;
}

static void check_near(const char *what, const float *got, const float *want, int n) {
    double *w = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) w[i] = want[i];
    CHECK_ARRAY(what, got, w, n, 1e-5, 1e-5);
    free(w);
}

/* The parameters' gradients: each rank holds its part; their sum is the whole batch's. */
static void sum_over_ranks(float *v, int n) {
    if (!nb_dist_is_initialized()) return;
    nb_scope_begin();
    nb_tensor *t = nb_from_data(v, 1, (int64_t[]){n});
    CHECK(nb_dist_allreduce(t, NB_REDUCE_SUM) == NB_OK);
    nb_copy_to(t, v, n);
    nb_scope_end();
}

/* size_ ranks with SyncBatchNorm, each on BATCH / size_ rows, against BatchNorm on all BATCH. */
static void sync_batchnorm_on_shares_matches_batchnorm_on_the_whole_batch(bool two_d) {
    int per = two_d ? C * H * W : C, rows = BATCH / size_;
    float x[BATCH * C * H * W], g[BATCH * C * H * W];
    fill(x, BATCH * per, per / C, 5);
    fill(g, BATCH * per, per / C, 9);
    nb_module *ref_bn = batchnorm(two_d), *sync = batchnorm(two_d);
    CHECK_EQ_INT(nb_module_convert_sync_batchnorm(sync), 1);
    CHECK(!strcmp(nb_module_type(sync), "SyncBatchNorm"));
    bn_result ref = run(ref_bn, two_d, x, g, 0, BATCH);
    bn_result got = run(sync, two_d, x, g, rank_ * rows, rows);
    check_near("eval output", got.y, ref.y + rank_ * rows * per, rows * per);
    check_near("input gradient", got.dx, ref.dx + rank_ * rows * per, rows * per);
    sum_over_ranks(got.dw, C);
    sum_over_ranks(got.db, C);
    check_near("weight gradient", got.dw, ref.dw, C);
    check_near("bias gradient", got.db, ref.db, C);
    check_near("running_mean", got.rm, ref.rm, C);
    check_near("running_var", got.rv, ref.rv, C);
    result_free(&ref);
    result_free(&got);
    nb_module_free(ref_bn);
    nb_module_free(sync);
}

/* The training output itself, on one pass: rows of the whole batch's normalisation. */
static void sync_batchnorm_training_output_is_the_whole_batchs(void) {
    int rows = BATCH / size_;
    float x[BATCH * C];
    fill(x, BATCH * C, 1, 3);
    nb_module *ref_bn = batchnorm(false), *sync = batchnorm(false);
    nb_module_convert_sync_batchnorm(sync);
    nb_scope_begin();
    float want[BATCH * C], got[BATCH * C];
    nb_copy_to(nb_module_forward(ref_bn, nb_from_data(x, 2, (int64_t[]){BATCH, C})), want, BATCH * C);
    nb_tensor *y = nb_module_forward(sync, nb_from_data(x + rank_ * rows * C, 2, (int64_t[]){rows, C}));
    CHECK(y != NULL);
    if (y) nb_copy_to(y, got, rows * C);
    check_near("training output", got, want + rank_ * rows * C, rows * C);
    nb_scope_end();
    nb_module_free(ref_bn);
    nb_module_free(sync);
}

/* Every BatchNorm in a tree, and no other module; the optimiser's tensors stay the model's. */
static void convert_swaps_every_batchnorm_in_the_tree(void) {
    nb_manual_seed(1);
    nb_module *inner = nb_sequential_new(2, (nb_module *[]){nb_batchnorm2d_new(4, (nb_batchnorm_opts){0}),
                                                            nb_flatten_new(1, -1)});
    nb_module *m = nb_sequential_new(4, (nb_module *[]){nb_conv2d_new(1, 4, 3, 3, (nb_conv2d_opts){0}, true),
                                                        inner, nb_linear_new(16, 5, true),
                                                        nb_batchnorm1d_new(5, (nb_batchnorm_opts){0})});
    nb_tensor *before = nb_module_find(m, "1.0.weight");
    CHECK_EQ_INT(nb_module_convert_sync_batchnorm(m), 2);
    CHECK(nb_module_find(m, "1.0.weight") == before && nb_module_find(m, "3.running_var"));
    CHECK(!strcmp(nb_module_type(nb_module_child(m, "1.0")), "SyncBatchNorm"));
    CHECK(!strcmp(nb_module_type(nb_module_child(m, "3")), "SyncBatchNorm"));
    CHECK(!strcmp(nb_module_type(nb_module_child(m, "2")), "Linear"));
    CHECK_EQ_INT(nb_module_convert_sync_batchnorm(m), 0); /* nothing left to convert */
    CHECK_EQ_INT(nb_module_convert_sync_batchnorm(NULL), -1);
    CHECK_ERROR(NB_ERR_NULL, "convert_sync_batchnorm");
    nb_module_free(m);
}

static void sync_batchnorm_refuses_a_wrong_channel_count(void) {
    nb_module *bn = batchnorm(false);
    nb_module_convert_sync_batchnorm(bn);
    nb_scope_begin();
    CHECK(!nb_module_forward(bn, nb_zeros(NB_SHAPE(4, C + 1))));
    CHECK_ERROR(NB_ERR_SHAPE, "SyncBatchNorm: expected [N, 3, ...], got [4,4]");
    nb_scope_end();
    nb_module_free(bn);
}

static void every_check(void) {
    sync_batchnorm_on_shares_matches_batchnorm_on_the_whole_batch(false);
    sync_batchnorm_on_shares_matches_batchnorm_on_the_whole_batch(true);
    sync_batchnorm_training_output_is_the_whole_batchs();
}

int main(int argc, char **argv) {
    size_t live_at_start = nb_alloc_stats_get().bytes_live;
    /* one process (no group): SyncBatchNorm is BatchNorm */
    convert_swaps_every_batchnorm_in_the_tree();
    sync_batchnorm_refuses_a_wrong_channel_count();
    every_check();
    if (nb_dist_init(&argc, &argv) != NB_OK) {
        if (check_failed_) return check_summary();
        printf("test_syncbn: the one-process checks passed; the rest skipped (this build has no MPI)\n");
        return SKIP_CODE;
    }
    rank_ = nb_dist_rank();
    size_ = nb_dist_size();
    if (argc > 1) CHECK_EQ_INT(size_, atoi(argv[1]));
    CHECK(size_ >= 2 && BATCH % size_ == 0);
    every_check();
    CHECK(nb_dist_finalize() == NB_OK);
    nb_release_memory();
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, live_at_start);
    if (rank_ != 0) return check_failed_ ? 1 : 0;
    return check_summary();
}
