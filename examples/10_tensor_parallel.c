/*
 * 10_tensor_parallel.c — the course's MLP with its hidden layers split across processes, as
 * Megatron-LM splits a transformer's MLP: the first Linear by its outputs, the second by its
 * inputs, one allreduce between them in forward and one in backward.  Every rank runs the whole
 * batch and holds 1/N of the hidden weights; the training loop is the one-process loop
 * unchanged (nb_fit), and the weights it ends with are those one process trains.  Run as
 *     mpirun -np 2 ./example_10_tensor_parallel [epochs] [data_dir]
 * (Fashion-MNIST by default; mpirun needs --allow-run-as-root as root and --oversubscribe for
 * more ranks than cores).  Rank 0 prints, and writes the whole model to runs/mlp_tp.safetensors.
 */
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
 *               nn.Linear(64, 10)) */
static nb_module *mlp_new(void) {
    nb_module *layers[] = {
        nb_flatten_new(1, -1),       nb_linear_new(784, 64, true), nb_activation_new(NB_ACT_RELU, 0),
        nb_linear_new(64, 64, true), nb_activation_new(NB_ACT_RELU, 0), nb_linear_new(64, 10, true),
    };
    return nb_sequential_new(6, layers);
}

static bool print_epoch(const nb_fit_epoch *e, void *user) {
    (void)user;
    if (nb_dist_rank() == 0)
        printf("epoch %lld: train loss %.4f acc %.2f%%, test loss %.4f acc %.2f%%\n", (long long)e->epoch,
               e->train_loss, 100 * e->train_acc, e->eval_loss, 100 * e->eval_acc);
    fflush(stdout);
    return true;
}

int main(int argc, char **argv) {
    if (nb_dist_init(&argc, &argv) != NB_OK) { /* dist.init_process_group("mpi") */
        fprintf(stderr, "%s\n", nb_error_message());
        return 1;
    }
    int epochs = argc > 1 ? atoi(argv[1]) : 1;
    const char *dir = argc > 2 ? argv[2] : "/usr/share/datasets/fashion-mnist";
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

    /* The model as one process builds it, then this rank's slices: layer 1 keeps 64 / N of its
     * output units, layer 3 the same 64 / N of its inputs (rank 0's weights on every rank). */
    nb_module *model = mlp_new();
    if (nb_tp_shard(model) < 0) {
        fprintf(stderr, "tp_shard: %s\n", nb_error_message());
        return 1;
    }
    if (nb_dist_rank() == 0) nb_module_fprint(stdout, model);
    nb_tensor *params[16];
    int n_params = nb_module_parameters(model, params, 16);
    nb_optim *optimizer = nb_sgd_new(n_params, params, (nb_sgd_opts){.lr = 0.01, .momentum = 0.9});
    nb_fit *fit = nb_fit_new(model, optimizer, NULL, train_loader, test_loader,
                             &(nb_fit_opts){.epochs = epochs, .log = nb_dist_rank() == 0 ? stderr : NULL});
    if (!fit || nb_fit_run(fit, &(nb_fit_callbacks){.on_epoch = print_epoch}) != NB_OK) {
        fprintf(stderr, "training failed: %s\n", nb_error_message());
        return 1;
    }

    /* The whole model back from the slices (every rank takes part), saved by rank 0: a file one
     * process loads into mlp_new(). */
    nb_module *whole = mlp_new();
    nb_status st = nb_tp_gather(model, whole);
    if (st == NB_OK && nb_dist_rank() == 0) {
        mkdir("runs", 0777);
        st = nb_module_save(whole, "runs/mlp_tp.safetensors", 0, NULL, NULL);
        if (st == NB_OK) printf("wrote runs/mlp_tp.safetensors\n");
    }
    if (st != NB_OK) fprintf(stderr, "saving: %s\n", nb_error_message());

    nb_module_free(whole);
    nb_fit_free(fit);
    nb_optim_free(optimizer);
    nb_module_free(model);
    nb_loader_free(train_loader);
    nb_loader_free(test_loader);
    nb_dataset_free(train_set);
    nb_dataset_free(test_set);
    if (st == NB_OK) nb_dist_finalize(); /* else mpirun ends the ranks waiting for this one */
    return st == NB_OK ? 0 : 1;
}
