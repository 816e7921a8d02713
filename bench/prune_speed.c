/*
 * prune_speed.c — the bar "50 % of LeNet's conv channels removed runs >= 1.6x faster in
 * inference (batch 256)" (issue 12), driven by bench/prune_structured.sh.
 *
 *   bench_prune_speed BIG.safetensors SMALL.safetensors [ROUNDS]
 *
 * Both files are models written by `nabla train` or `nabla prune` (their description is in the
 * "nabla.model" metadata).  Each round times one forward pass of each model, in eval mode and
 * without a graph, on the same batch of 256 random 1x28x28 inputs, the two alternating so that
 * a busy machine slows both alike; the median and the fastest of ROUNDS (default 30, after 3
 * to warm up) are printed, and the ratio of the medians.
 */
#include "bench.h"
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>

static nb_module *load(const char *path) {
    nb_safetensors *st = nb_safetensors_open(path);
    const char *spec = st ? nb_safetensors_meta(st, "nabla.model") : NULL;
    nb_module *m = spec ? nb_model_from_json(spec) : NULL;
    nb_safetensors_close(st);
    if (m && nb_module_load(m, path) != NB_OK) {
        nb_module_free(m);
        m = NULL;
    }
    if (!m) fprintf(stderr, "bench_prune_speed: %s: %s\n", path, spec ? nb_error_message() : "no nabla.model");
    else nb_module_train(m, false);
    return m;
}

static double forward_ms(nb_module *m, nb_tensor *x) {
    double t = now_ns();
    nb_scope_begin();
    nb_module_forward(m, x);
    nb_scope_end();
    return (now_ns() - t) / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_prune_speed BIG.safetensors SMALL.safetensors [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 30;
    if (rounds < 1) rounds = 1;
    nb_module *m[2] = {load(argv[1]), load(argv[2])};
    nb_manual_seed(0);
    nb_tensor *x = nb_randn(NB_SHAPE(256, 784));
    double *t[2] = {malloc(sizeof(double) * (size_t)rounds), malloc(sizeof(double) * (size_t)rounds)};
    if (!m[0] || !m[1] || !x || !t[0] || !t[1]) return 1;
    nb_set_grad_enabled(false);
    for (int r = -3; r < rounds; r++)
        for (int k = 0; k < 2; k++) {
            double ms = forward_ms(m[k], x);
            if (r >= 0) t[k][r] = ms;
        }
    double med[2], best[2];
    for (int k = 0; k < 2; k++) {
        med[k] = median(t[k], rounds);
        best[k] = t[k][0];
        for (int r = 1; r < rounds; r++) best[k] = t[k][r] < best[k] ? t[k][r] : best[k];
        printf("%s: %lld parameters, inference (batch 256) median %.3f ms, fastest %.3f ms\n", k ? "pruned" : "dense",
               (long long)nb_module_num_elements(m[k]), med[k], best[k]);
    }
    printf("speed-up %.2fx (medians), %.2fx (fastest)\n", med[0] / med[1], best[0] / best[1]);
    for (int k = 0; k < 2; k++) nb_module_free(m[k]), free(t[k]);
    nb_tensor_free(x);
    return 0;
}
