/*
 * prune.c — the bar "OBD beats magnitude at equal sparsity without fine-tuning, at 80 % or
 * more" (issue 12) on the course MLP, driven by bench/prune.sh.
 *
 *   bench_prune WEIGHTS DATA_DIR [BATCHES [SAMPLES [EXACT_MAX]]]
 *
 * WEIGHTS: a 784-64-64-10 ReLU MLP written by `nabla train` (Flatten first, so its Linear layers
 * are 1, 3 and 5).  For each sparsity of 0.8, 0.85, 0.9 and 0.95 of the three weight matrices,
 * a fresh copy of the trained model is pruned four ways — magnitude and OBD, each ranked per
 * layer and globally — and evaluated on the test set as it is (no fine-tuning).  OBD's Hessian
 * diagonal comes from BATCHES batches of 256 training samples (the first ones, in order); layers
 * of at most EXACT_MAX weights get the exact diagonal, the others Hutchinson's estimate with
 * SAMPLES vectors per batch; which each layer got is printed.
 */
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>

#define N_W 3
static const char *const weights[N_W] = {"1.weight", "3.weight", "5.weight"};

typedef struct {
    int n;
    nb_tensor **x, **y; /* persistent copies of the batches */
} batches;

static nb_module *load(const char *path) {
    nb_module *layers[] = {nb_flatten_new(1, -1), nb_linear_new(784, 64, true), nb_activation_new(NB_ACT_RELU, 0),
                           nb_linear_new(64, 64, true), nb_activation_new(NB_ACT_RELU, 0),
                           nb_linear_new(64, 10, true)};
    nb_module *m = nb_sequential_new(6, layers);
    if (m && nb_module_load(m, path) != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

static nb_tensor *batch_loss(nb_module *model, int b, void *ctx) {
    batches *bs = ctx;
    return nb_cross_entropy(nb_module_forward(model, bs->x[b]), bs->y[b], NULL);
}

static double accuracy(nb_module *m, nb_loader *test) {
    nb_eval_result r;
    return nb_evaluate(m, test, 0, &r) == NB_OK ? 100.0 * r.accuracy : -1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_prune WEIGHTS DATA_DIR [BATCHES [SAMPLES [EXACT_MAX]]]\n");
        return 2;
    }
    int n_batches = argc > 3 ? atoi(argv[3]) : 4;
    nb_obd_opts obd = {.loss = batch_loss, .batches = n_batches, .samples = argc > 4 ? atoi(argv[4]) : 64,
                       .exact_max = argc > 5 ? atoll(argv[5]) : NB_OBD_EXACT_MAX};
    nb_dataset *train = nb_mnist_read(argv[2], true), *test_set = nb_mnist_read(argv[2], false);
    nb_loader *tl = train ? nb_loader_new(train, (nb_loader_opts){.batch_size = 256, .transforms = {.scale = true}}) : NULL;
    nb_loader *test = test_set ? nb_loader_new(test_set, (nb_loader_opts){.batch_size = 1000, .transforms = {.scale = true}}) : NULL;
    nb_module *dense = load(argv[1]);
    if (!tl || !test || !dense) {
        fprintf(stderr, "bench_prune: %s\n", nb_error_message());
        return 1;
    }
    batches bs = {n_batches, calloc((size_t)n_batches, sizeof(nb_tensor *)), calloc((size_t)n_batches, sizeof(nb_tensor *))};
    for (int b = 0; b < n_batches; b++) {
        nb_tensor *x, *y;
        if (!nb_loader_next(tl, &x, &y)) return fprintf(stderr, "bench_prune: too few batches\n"), 1;
        bs.x[b] = nb_persist(x), bs.y[b] = nb_persist(y);
    }
    obd.ctx = &bs;
    printf("dense: test accuracy %.2f %%\n", accuracy(dense, test));
    const float sparsities[] = {0.8f, 0.85f, 0.9f, 0.95f};
    bool reported = false;
    for (int s = 0; s < 4; s++) {
        double acc[4]; /* magnitude per layer, OBD per layer, magnitude global, OBD global */
        for (int way = 0; way < 4; way++) {
            nb_module *m = load(argv[1]);
            bool global = way >= 2, is_obd = way % 2;
            nb_hessian_estimate used[N_W];
            obd.global = global;
            nb_status st = !is_obd ? (global ? nb_prune_global_magnitude : nb_prune_magnitude)(m, N_W, weights, sparsities[s])
                                   : nb_prune_obd(m, N_W, weights, sparsities[s], &obd, used);
            if (st != NB_OK) return fprintf(stderr, "bench_prune: %s\n", nb_error_message()), 1;
            if (is_obd && !reported) {
                reported = true;
                printf("OBD: Hessian diagonal over %d batches of 256;", n_batches);
                for (int k = 0; k < N_W; k++)
                    printf(" %s %s", weights[k], used[k] == NB_HESSIAN_EXACT ? "exact" : "Hutchinson");
                printf(" (Hutchinson: %d vectors per batch)\n", obd.samples);
            }
            acc[way] = accuracy(m, test);
            nb_module_free(m);
        }
        printf("sparsity %.0f %%: per layer magnitude %.2f %%, OBD %.2f %% (%+.2f); global magnitude %.2f %%, "
               "OBD %.2f %% (%+.2f)\n",
               100.0 * sparsities[s], acc[0], acc[1], acc[1] - acc[0], acc[2], acc[3], acc[3] - acc[2]);
    }
    for (int b = 0; b < n_batches; b++) nb_tensor_free(bs.x[b]), nb_tensor_free(bs.y[b]);
    free(bs.x), free(bs.y);
    nb_module_free(dense);
    nb_loader_free(tl), nb_loader_free(test);
    nb_dataset_free(train), nb_dataset_free(test_set);
    return 0;
}
