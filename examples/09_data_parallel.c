/*
 * 09_data_parallel.c — the course's data parallel script in C (torch.distributed with
 * DistributedDataParallel): every process holds the whole model and trains on its share of
 * each batch; after backward the gradients are averaged over the processes, so every copy takes
 * the same step, the one a single process takes on the whole batch.  The MLP of example 02 with
 * BatchNorm after its hidden layers, made SyncBatchNorm so that the normalisation uses the whole
 * batch too.  Run as
 *     mpirun -np 2 ./example_09_data_parallel [epochs] [data_dir]
 * (or alone: one process; Fashion-MNIST by default).  Rank 0 prints and writes
 * runs/ddp_mlp.safetensors under the current folder; at the end every copy is checked equal.
 */
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.BatchNorm1d(64), nn.ReLU(),
 *               nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10)) */
static nb_module *mlp_new(void) {
    nb_module *layers[] = {
        nb_flatten_new(1, -1),
        nb_linear_new(784, 64, true), nb_batchnorm1d_new(64, (nb_batchnorm_opts){0}), nb_activation_new(NB_ACT_RELU, 0),
        nb_linear_new(64, 64, true),  nb_batchnorm1d_new(64, (nb_batchnorm_opts){0}), nb_activation_new(NB_ACT_RELU, 0),
        nb_linear_new(64, 10, true),
    };
    return nb_sequential_new(8, layers);
}

/* print(...) on rank 0 only */
static bool print_epoch(const nb_fit_epoch *e, void *user) {
    (void)user;
    if (nb_dist_rank() == 0)
        printf("epoch %lld: train loss %.4f acc %.2f%%, test loss %.4f acc %.2f%%\n", (long long)e->epoch,
               e->train_loss, 100 * e->train_acc, e->eval_loss, 100 * e->eval_acc);
    fflush(stdout);
    return true;
}

/* DDP's part of the step: optimizer.step() waits for the averaged gradients (nb_fit calls this
 * after backward, before the step) */
static nb_status average_gradients(void *ddp) { return nb_ddp_finish(ddp); }

/* The copies agree bit for bit: each parameter gathered from every rank, compared with rank 0's. */
static bool replicas_agree(nb_module *model) {
    bool same = true;
    if (!nb_dist_is_initialized()) return true; /* one copy */
    for (int i = 0; i < nb_module_num_params(model) && same; i++) {
        nb_scope_begin();
        nb_tensor *all = nb_dist_allgather(nb_module_param(model, i, NULL));
        int64_t n = all ? nb_numel(all) / nb_dist_size() : 0;
        float *v = malloc(sizeof(float) * (size_t)(all ? nb_numel(all) : 1));
        same = all && v && nb_copy_to(all, v, nb_numel(all)) == NB_OK;
        for (int64_t j = n; same && j < nb_numel(all); j++) same = v[j] == v[j % n];
        free(v);
        nb_scope_end();
    }
    return same;
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 3;
    const char *dir = argc > 2 ? argv[2] : "/usr/share/datasets/fashion-mnist";

    /* dist.init_process_group("mpi"); rank = dist.get_rank(); world = dist.get_world_size()
     * (started alone, or in a build without MPI, it is one process: rank 0 of 1) */
    bool group = nb_dist_init(&argc, &argv) == NB_OK;
    int rank = nb_dist_rank(), world = nb_dist_size();
    nb_manual_seed(0);
    if (rank == 0) printf("%d process%s\n", world, world > 1 ? "es" : "");

    /* sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True)
     * train_loader = DataLoader(train_set, batch_size=64 // world, sampler=sampler): each rank
     * its 1/world of every shuffled epoch, so the ranks' batches together are one batch of 64 */
    nb_dataset *train_set = nb_mnist_read(dir, true), *test_set = nb_mnist_read(dir, false);
    if (!train_set || !test_set) {
        fprintf(stderr, "cannot read Fashion-MNIST from %s: %s\n", dir, nb_error_message());
        return 1;
    }
    nb_transforms to_tensor = {.scale = true};
    nb_loader *train_loader = nb_loader_new(train_set, (nb_loader_opts){.batch_size = 64 / world, .shuffle = true,
                                                                        .transforms = to_tensor,
                                                                        .num_replicas = world, .rank = rank});
    nb_loader *test_loader = nb_loader_new(test_set, (nb_loader_opts){.batch_size = 1000, .transforms = to_tensor});

    /* model = nn.SyncBatchNorm.convert_sync_batchnorm(MLP())
     * model = DistributedDataParallel(model): rank 0's weights broadcast to every rank, and the
     * gradients averaged in buckets started during backward (bucket_cap_mb: 0 = 25 MiB) */
    nb_module *model = mlp_new();
    nb_module_convert_sync_batchnorm(model);
    nb_ddp *ddp = nb_ddp_new(model, 0);
    if (!ddp || nb_ddp_sync_in_backward(ddp) != NB_OK) {
        fprintf(stderr, "rank %d: %s\n", rank, nb_error_message());
        return 1;
    }
    nb_tensor *params[16];
    int n_params = nb_module_parameters(model, params, 16);
    nb_optim *optimizer = nb_sgd_new(n_params, params, (nb_sgd_opts){.lr = 0.01, .momentum = 0.9});

    /* the training loop, with the progress bar on rank 0 only */
    nb_fit *fit = nb_fit_new(model, optimizer, NULL, train_loader, test_loader,
                             &(nb_fit_opts){.epochs = epochs, .log = rank == 0 ? stderr : NULL,
                                            .before_step = average_gradients, .before_step_ctx = ddp});
    if (!fit || nb_fit_run(fit, &(nb_fit_callbacks){.on_epoch = print_epoch}) != NB_OK) {
        fprintf(stderr, "rank %d: training failed: %s\n", rank, nb_error_message());
        return 1; /* without finalizing: mpirun then ends the other ranks */
    }

    /* if rank == 0: torch.save(model.module.state_dict(), ...) */
    bool agree = replicas_agree(model), saved = true;
    if (rank == 0) {
        mkdir("runs", 0777);
        saved = nb_module_save(model, "runs/ddp_mlp.safetensors", 0, NULL, NULL) == NB_OK;
        printf("the %d copies of the model %s\n", world, agree ? "agree" : "DIFFER");
        if (saved) printf("wrote runs/ddp_mlp.safetensors\n");
    }

    nb_fit_free(fit);
    nb_optim_free(optimizer);
    nb_ddp_free(ddp);
    nb_module_free(model);
    nb_loader_free(train_loader);
    nb_loader_free(test_loader);
    nb_dataset_free(train_set);
    nb_dataset_free(test_set);
    if (group) nb_dist_finalize(); /* dist.destroy_process_group() */
    nb_release_memory();
    return agree && saved ? 0 : 1;
}
