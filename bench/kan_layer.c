/*
 * kan_layer.c — a KAN layer's forward and backward (issue 15's bar): batch 1024, 64 -> 64,
 * G = 10, k = 3, silu base; x requires grad, as inside a deep KAN.  One step is a scope with the
 * forward, backward of a fixed output gradient and the parameters' gradients zeroed; the
 * figure is ms per step, the median of REPS steps after one to warm the arena.
 *
 *   bench_kan_layer [REPS [THREADS]]     (defaults 30, 1)
 *
 * Output: a line for people, then "@kan_layer ms=..." for bench/kan_layer.sh, which runs
 * bench/torch_kan.py (the same layer in torch) in the same job and prints the ratio.
 */
#include "nabla.h"
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>

#define N 1024
#define WIDTH 64

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 30, threads = argc > 2 ? atoi(argv[2]) : 1;
    if (reps < 1 || threads < 1) {
        fprintf(stderr, "usage: bench_kan_layer [REPS [THREADS]]\n");
        return 2;
    }
    nb_set_num_threads(threads);
    nb_manual_seed(0);
    nb_module *layer = nb_kan_layer_new(WIDTH, WIDTH, (nb_kan_opts){.grid = 10, .k = 3});
    nb_tensor *g = nb_randn(NB_SHAPE(N, WIDTH)), *x = NULL;
    nb_scope_begin();
    x = nb_persist(nb_add_scalar(nb_mul_scalar(nb_rand(NB_SHAPE(N, WIDTH)), 2.2f), -1.1f));
    nb_scope_end();
    if (!layer || !x || !g || nb_set_requires_grad(x, true) != NB_OK) {
        fprintf(stderr, "setup failed: %s\n", nb_error_message());
        return 1;
    }
    double *ms = malloc(sizeof(double) * (size_t)reps);
    for (int r = -1; r < reps; r++) {
        double t0 = now_ns();
        nb_scope_begin();
        nb_tensor *y = nb_module_forward(layer, x);
        if (!y || nb_backward_grad(y, g) != NB_OK) {
            fprintf(stderr, "step failed: %s\n", nb_error_message());
            return 1;
        }
        for (int p = 0; p < nb_module_num_params(layer); p++) nb_zero_grad(nb_module_param(layer, p, NULL));
        nb_zero_grad(x);
        nb_scope_end();
        if (r >= 0) ms[r] = (now_ns() - t0) / 1e6;
    }
    double med = median(ms, reps);
    printf("kan_layer: nabla, KAN layer 64 -> 64, G 10, k 3, batch 1024, forward + backward, "
           "%d thread(s): %.3f ms (median of %d)\n@kan_layer ms=%.4f\n", threads, med, reps, med);
    free(ms);
    nb_tensor_free(x);
    nb_tensor_free(g);
    nb_module_free(layer);
    return 0;
}
