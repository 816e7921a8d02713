/*
 * 11_pipeline_parallel.c — the course's MLP cut into consecutive stages, one per process, each
 * batch of 64 cut into micro-batches that flow through the stages (GPipe, or 1F1B), and the
 * pipeline's bubble — the share of a step each stage waits — measured next to the theory's
 * (p - 1) / (m + p - 1).  The loop is the course's, with the forward and backward of the batch
 * done by nb_pipe_step; each rank's optimiser steps its own stage.  Run as
 *     mpirun -np 2 ./example_11_pipeline_parallel [epochs] [micro_batches] [gpipe|1f1b] [data_dir]
 * (Fashion-MNIST by default).  Rank 0 prints the epochs, the whole model's test accuracy
 * (gathered from the stages) and writes runs/mlp_pp.safetensors.
 */
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static nb_module *mlp_new(void) {
    nb_module *layers[] = {
        nb_flatten_new(1, -1),       nb_linear_new(784, 64, true), nb_activation_new(NB_ACT_RELU, 0),
        nb_linear_new(64, 64, true), nb_activation_new(NB_ACT_RELU, 0), nb_linear_new(64, 10, true),
    };
    return nb_sequential_new(6, layers);
}

int main(int argc, char **argv) {
    if (nb_dist_init(&argc, &argv) != NB_OK) /* without MPI: one stage, micro-batches in turn */
        fprintf(stderr, "%s: one process\n", nb_error_message());
    int epochs = argc > 1 ? atoi(argv[1]) : 1, micro = argc > 2 ? atoi(argv[2]) : 4;
    nb_pipe_schedule schedule = argc > 3 && !strcmp(argv[3], "gpipe") ? NB_PIPE_GPIPE : NB_PIPE_1F1B;
    const char *dir = argc > 4 ? argv[4] : "/usr/share/datasets/fashion-mnist";
    bool rank0 = nb_dist_rank() == 0;
    nb_set_num_threads(1);
    nb_manual_seed(0);
    nb_dataset *train_set = nb_mnist_read(dir, true), *test_set = nb_mnist_read(dir, false);
    if (!train_set || !test_set) {
        fprintf(stderr, "cannot read Fashion-MNIST from %s: %s\n", dir, nb_error_message());
        return 1;
    }
    nb_transforms to_tensor = {.scale = true};
    nb_loader *train_loader = nb_loader_new(train_set, (nb_loader_opts){.batch_size = 64, .shuffle = true, .transforms = to_tensor});
    nb_loader *test_loader = nb_loader_new(test_set, (nb_loader_opts){.batch_size = 1000, .transforms = to_tensor});

    /* This rank keeps its stage's layers (cut where the parameter counts balance: on 2 ranks
     * Linear(784, 64) alone, then the rest) and an optimiser for them. */
    nb_module *model = mlp_new();
    nb_pipe *pipe = nb_pipe_new(model, &(nb_pipe_opts){.micro_batches = micro, .schedule = schedule});
    if (!pipe) {
        fprintf(stderr, "pipe_new: %s\n", nb_error_message());
        return 1;
    }
    printf("rank %d: layers %d to %d\n", nb_dist_rank(), nb_pipe_stage_first(pipe), nb_pipe_stage_end(pipe) - 1);
    nb_tensor *params[16];
    int n_params = nb_module_parameters(model, params, 16);
    nb_optim *optimizer = n_params ? nb_sgd_new(n_params, params, (nb_sgd_opts){.lr = 0.01, .momentum = 0.9}) : NULL;

    /* for x, y in train_loader: optimizer.zero_grad(); loss = pipeline(x, y); optimizer.step() */
    nb_status st = NB_OK;
    for (int epoch = 0; epoch < epochs && st == NB_OK; epoch++) {
        nb_loader_set_epoch(train_loader, epoch);
        double sum = 0;
        int64_t batches = 0;
        nb_tensor *x, *y;
        while (st == NB_OK && nb_loader_next(train_loader, &x, &y)) {
            double loss;
            if (optimizer) nb_optim_zero_grad(optimizer);
            st = nb_pipe_step(pipe, x, y, &loss);
            if (st == NB_OK && optimizer) st = nb_optim_step(optimizer);
            sum += loss;
            batches++;
        }
        nb_pipe_stats s = nb_pipe_stats_get(pipe);
        if (rank0 && st == NB_OK)
            printf("epoch %d: train loss %.4f; bubble measured %.3f, theory %.3f (p = %d, m = %d, %s)\n", epoch + 1,
                   sum / (double)batches, s.bubble, s.theory, nb_dist_size(), micro,
                   schedule == NB_PIPE_GPIPE ? "GPipe" : "1F1B");
    }

    /* The whole model from the stages (every rank takes part), evaluated and saved by rank 0. */
    nb_module *whole = mlp_new();
    if (st == NB_OK) st = nb_pipe_gather(pipe, whole);
    nb_eval_result test = {0};
    if (st == NB_OK && rank0 && (st = nb_evaluate(whole, test_loader, 0, &test)) == NB_OK) {
        printf("test loss %.4f acc %.2f%%\n", test.loss, 100 * test.accuracy);
        mkdir("runs", 0777);
        if ((st = nb_module_save(whole, "runs/mlp_pp.safetensors", 0, NULL, NULL)) == NB_OK)
            printf("wrote runs/mlp_pp.safetensors\n");
    }
    if (st != NB_OK) fprintf(stderr, "%s\n", nb_error_message());

    nb_module_free(whole);
    nb_optim_free(optimizer);
    nb_pipe_free(pipe);
    nb_module_free(model);
    nb_loader_free(train_loader);
    nb_loader_free(test_loader);
    nb_dataset_free(train_set);
    nb_dataset_free(test_set);
    /* a rank that failed leaves without finalize: mpirun then ends the others, which may be
     * waiting for it */
    if (nb_dist_is_initialized() && st == NB_OK) nb_dist_finalize();
    return st == NB_OK ? 0 : 1;
}
