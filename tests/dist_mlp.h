/*
 * dist_mlp.h — what the model-parallel tests (test_dist_tp.c, test_dist_pp.c) share: the course
 * MLP's sizes, the same random batches on every rank, the optimisers both compare, and the
 * comparison of a parallel run's weights with one process's.  Include after check.h.
 */
#ifndef NB_TESTS_DIST_MLP_H
#define NB_TESTS_DIST_MLP_H

#include <math.h>
#include <stdlib.h>

/* the course's MLP on Fashion-MNIST-sized inputs, on random data */
enum { FEATURES = 784, HIDDEN = 64, CLASSES = 10, BATCH = 64, STEPS = 100 };

/* Random inputs in [-1, 1) and labels, the same on every rank (an LCG). */
static void batch_data(int step, float *x, float *y) {
    uint64_t s = 977 + (uint64_t)step * 7919;
    for (int i = 0; i < BATCH * FEATURES; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((s >> 40) / (double)(1 << 24)) * 2 - 1;
    }
    for (int i = 0; i < BATCH; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        y[i] = (float)((s >> 33) % CLASSES);
    }
}

/* SGD with momentum or Adam over m's parameters; NULL when it has none (a pipeline stage of a
 * ReLU alone). */
static nb_optim *optim(nb_module *m, bool adam) {
    nb_tensor *params[16];
    int n = nb_module_parameters(m, params, 16);
    if (n == 0) return NULL;
    return adam ? nb_adam_new(n, params, (nb_adam_opts){.lr = 0.001})
                : nb_sgd_new(n, params, (nb_sgd_opts){.lr = 0.05, .momentum = 0.9});
}

/* Every parameter of got within 1e-5 of the largest of want's, plus 1e-5 relative. */
static void check_same_weights(const char *what, const nb_module *got, const nb_module *want) {
    CHECK_EQ_INT(nb_module_num_params(got), nb_module_num_params(want));
    for (int i = 0; i < nb_module_num_params(want); i++) {
        const nb_tensor *p = nb_module_param(got, i, NULL), *q = nb_module_param(want, i, NULL);
        CHECK_EQ_INT(nb_numel(p), nb_numel(q));
        int64_t k = nb_numel(q);
        float *g = host_vals(p), *r = host_vals(q);
        double *w = malloc(sizeof(double) * (size_t)k), scale = 0;
        for (int64_t j = 0; j < k; j++) {
            w[j] = r[j];
            if (fabs(w[j]) > scale) scale = fabs(w[j]);
        }
        CHECK_ARRAY(what, g, w, (long)k, 1e-5 * scale, 1e-5);
        free(w);
    }
}

#endif
