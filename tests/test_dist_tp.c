/*
 * test_dist_tp.c — tensor parallel Linear layers (nabla/dist.h, src/dist/tensor_parallel.c).
 * ctest starts it with `mpirun -np N test_dist_tp N`; in a build without MPI it checks that
 * sharding refuses, prints "skipped" and exits 77.  Every rank trains the reference (one process,
 * the whole model) itself, so the comparison needs no communication.
 */
#include "check.h"
#include "dist_mlp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SKIP_CODE 77 /* the test's SKIP_RETURN_CODE in CMakeLists.txt */

static int rank_, size_;

/* Linear(784, 64) ReLU [Linear(64, 64) ReLU]^(hidden - 1) Linear(64, 10), torch's init from seed. */
static nb_module *mlp(uint64_t seed, int hidden) {
    nb_manual_seed(seed);
    nb_module *m = nb_sequential_new(0, NULL);
    for (int h = 0; h < hidden; h++) {
        nb_sequential_append(m, nb_linear_new(h ? HIDDEN : FEATURES, HIDDEN, true));
        nb_sequential_append(m, nb_activation_new(NB_ACT_RELU, 0));
    }
    nb_sequential_append(m, nb_linear_new(HIDDEN, CLASSES, true));
    return m;
}

/* STEPS steps of cross-entropy on the same batches, SGD with momentum or Adam. */
static void train(nb_module *m, bool adam) {
    nb_optim *o = optim(m, adam);
    float *x = malloc(sizeof(float) * BATCH * FEATURES), y[BATCH];
    for (int step = 0; step < STEPS; step++) {
        batch_data(step, x, y);
        nb_scope_begin();
        nb_optim_zero_grad(o);
        nb_tensor *xt = nb_from_data(x, NB_SHAPE(BATCH, FEATURES));
        nb_tensor *yt = nb_to_dtype(nb_from_data(y, NB_SHAPE(BATCH)), NB_I32);
        CHECK(nb_backward(nb_cross_entropy(nb_module_forward(m, xt), yt, NULL)) == NB_OK);
        CHECK(nb_optim_step(o) == NB_OK);
        nb_scope_end();
    }
    free(x);
    nb_optim_free(o);
}

/* Each rank starts from another initialisation, which nb_tp_shard replaces by rank 0's; after
 * 100 steps the gathered weights are those one process trains from rank 0's.  With hidden = 3
 * the second pair's input needs a gradient: the allreduce of Megatron's f in backward. */
static void tp_mlp_trains_as_one_process(int hidden, bool adam) {
    nb_module *tp = mlp(7 + (uint64_t)rank_, hidden), *ref = mlp(7, hidden);
    CHECK_EQ_INT(nb_tp_shard(tp), (hidden + 1) / 2);
    train(tp, adam);
    train(ref, adam);
    nb_module *full = mlp(99, hidden);
    CHECK(nb_tp_gather(tp, full) == NB_OK);
    check_same_weights(adam ? "tp (adam) vs one process" : "tp (sgd) vs one process", full, ref);
    nb_module_free(full);
    nb_module_free(ref);
    nb_module_free(tp);
}

/* The course MLP: layers 0 and 2 cut, 0.weight [64 / N, 784] and 2.weight [64, 64 / N], the
 * output layer whole; the repr names the parallel layers. */
static void tp_shard_cuts_the_hidden_pair_and_keeps_the_names(void) {
    nb_module *m = mlp(7, 2);
    CHECK_EQ_INT(nb_tp_shard(m), 1);
    nb_tensor *w0 = nb_module_find(m, "0.weight"), *b0 = nb_module_find(m, "0.bias");
    nb_tensor *w2 = nb_module_find(m, "2.weight"), *b2 = nb_module_find(m, "2.bias");
    nb_tensor *w4 = nb_module_find(m, "4.weight");
    CHECK(w0 && b0 && w2 && b2 && w4);
    CHECK_EQ_INT(nb_size(w0, 0), HIDDEN / size_);
    CHECK_EQ_INT(nb_size(w0, 1), FEATURES);
    CHECK_EQ_INT(nb_size(b0, 0), HIDDEN / size_);
    CHECK_EQ_INT(nb_size(w2, 0), HIDDEN);
    CHECK_EQ_INT(nb_size(w2, 1), HIDDEN / size_);
    CHECK_EQ_INT(nb_size(b2, 0), HIDDEN);
    CHECK_EQ_INT(nb_size(w4, 0), CLASSES);
    CHECK(!strcmp(nb_module_type(nb_module_child(m, "0")), "ColumnParallelLinear"));
    CHECK(!strcmp(nb_module_type(nb_module_child(m, "2")), "RowParallelLinear"));
    CHECK(!strcmp(nb_module_type(nb_module_child(m, "4")), "Linear"));
    nb_module_free(m);
}

/* A forward in eval mode without gradients (what evaluation runs) gives one process's logits. */
static void tp_forward_without_grad_gives_one_process_logits(void) {
    nb_module *tp = mlp(7, 2), *ref = mlp(7, 2);
    CHECK_EQ_INT(nb_tp_shard(tp), 1);
    float *x = malloc(sizeof(float) * BATCH * FEATURES), y[BATCH];
    batch_data(0, x, y);
    nb_scope_begin();
    nb_tensor *xt = nb_from_data(x, NB_SHAPE(BATCH, FEATURES)), *a = NULL, *b = NULL;
    NB_NO_GRAD {
        a = nb_module_forward(tp, xt);
        b = nb_module_forward(ref, xt);
    }
    CHECK(a && b);
    float *want = host_vals(b);
    double w[BATCH * CLASSES];
    for (int i = 0; i < BATCH * CLASSES; i++) w[i] = want[i];
    CHECK_TENSOR("logits", a, w, BATCH * CLASSES, 1e-5, 1e-5);
    nb_scope_end();
    free(x);
    nb_module_free(ref);
    nb_module_free(tp);
}

static void tp_shard_refuses_a_hidden_size_not_a_multiple_of_the_ranks(void) {
    nb_manual_seed(1);
    nb_module *m = nb_sequential_new(3, (nb_module *[]){nb_linear_new(8, 4 * size_ + 1, true),
                                                        nb_activation_new(NB_ACT_TANH, 0),
                                                        nb_linear_new(4 * size_ + 1, 3, true)});
    CHECK_EQ_INT(nb_tp_shard(m), -1);
    CHECK_ERROR(NB_ERR_SHAPE, "is not a multiple of the");
    nb_module_free(m);
}

/* Dropout between the two Linear layers is not elementwise-deterministic per feature slice: no
 * pair is cut, the model stays whole. */
static void tp_shard_leaves_layers_apart_that_are_not_a_pair(void) {
    nb_manual_seed(1);
    nb_module *m = nb_sequential_new(3, (nb_module *[]){nb_linear_new(8, 8, true), nb_dropout_new(0.5f),
                                                        nb_linear_new(8, 3, true)});
    CHECK_EQ_INT(nb_tp_shard(m), 0);
    CHECK(!strcmp(nb_module_type(nb_module_child(m, "0")), "Linear"));
    CHECK(nb_tp_shard(NULL) == -1);
    CHECK_ERROR(NB_ERR_NULL, "tp_shard: model is NULL");
    nb_module *lin = nb_linear_new(4, 4, true);
    CHECK(nb_tp_shard(lin) == -1);
    CHECK_ERROR(NB_ERR_ARG, "a Linear, not a Sequential");
    nb_module_free(lin);
    nb_module_free(m);
}

static void tp_gather_refuses_a_full_model_of_other_layers(void) {
    nb_module *tp = mlp(7, 2), *other = mlp(7, 3);
    CHECK_EQ_INT(nb_tp_shard(tp), 1);
    CHECK(nb_tp_gather(tp, other) != NB_OK);
    CHECK_ERROR(NB_ERR_SHAPE, "the sharded model has 5 layers, the full one 7");
    nb_module_free(other);
    nb_module_free(tp);
}

static int without_mpi(void) {
    nb_module *m = mlp(7, 2);
    CHECK_EQ_INT(nb_tp_shard(m), -1);
    CHECK_ERROR(NB_ERR_DEVICE, "this build has no MPI");
    nb_module_free(m);
    if (check_failed_) return check_summary();
    printf("test_dist_tp: skipped (this build has no MPI)\n");
    return SKIP_CODE;
}

int main(int argc, char **argv) {
    size_t live_at_start = nb_alloc_stats_get().bytes_live;
    if (nb_dist_init(&argc, &argv) != NB_OK) return without_mpi();
    rank_ = nb_dist_rank();
    size_ = nb_dist_size();
    if (argc > 1) CHECK_EQ_INT(size_, atoi(argv[1]));
    nb_set_num_threads(1);
    tp_shard_cuts_the_hidden_pair_and_keeps_the_names();
    tp_forward_without_grad_gives_one_process_logits();
    tp_mlp_trains_as_one_process(2, false);
    tp_mlp_trains_as_one_process(2, true);
    tp_mlp_trains_as_one_process(3, false);
    tp_shard_refuses_a_hidden_size_not_a_multiple_of_the_ranks();
    tp_shard_leaves_layers_apart_that_are_not_a_pair();
    tp_gather_refuses_a_full_model_of_other_layers();
    CHECK(nb_dist_finalize() == NB_OK);
    nb_release_memory();
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, live_at_start);
    if (rank_ != 0) return check_failed_ ? 1 : 0;
    return check_summary();
}
