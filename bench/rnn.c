/*
 * rnn.c — recurrent layer forward + backward throughput: nn.LSTM / nn.GRU / nn.RNN's shapes (T
 * steps, B batch, I input, H hidden, L layers) on random data, loss sum(output), the median time
 * of one step (forward, backward, parameter gradients cleared) over REPS after one warm-up, in
 * wall-clock and in the process's CPU time (the fairer figure on a busy machine), for the
 * default fused path (one node per layer-direction, ops/rnn.c) and the composite one (ops per
 * step, nb__rnn_fused off).  bench/rnn.sh runs it beside bench/torch_rnn.py on the same shapes.
 *
 *   build/bench_rnn [MODE T B I H L REPS THREADS [fused]]
 *       MODE lstm, gru, rnn_tanh or rnn_relu (default lstm); defaults 64 32 128 256 2 5 and
 *       the library's threads; "fused" leaves the composite path out
 *
 * Prints "@ nabla_ms <median>" (fused, wall), "@ nabla_cpu_ms", and, with the composite path,
 * "@ nabla_composite_ms" and "@ nabla_composite_cpu_ms".
 */
#include "bench.h"
#include "nabla.h"

extern bool nb__rnn_fused; /* src/nn/recurrent.c */

static const char *const mode_names[NB_RNN_MODE_COUNT] = {"rnn_tanh", "rnn_relu", "lstm", "gru"};

/* One step; its CPU time into *cpu, its wall time returned. */
static double step_ms(nb_module *m, nb_tensor *x, double *cpu) {
    double t0 = now_ns(), c0 = cpu_ns();
    nb_scope_begin();
    nb_tensor *out = NULL;
    if (nb_rnn_forward(m, x, NULL, &out, NULL, NULL) != NB_OK || nb_backward(nb_sum(out)) != NB_OK) {
        fprintf(stderr, "bench_rnn: %s\n", nb_error_message());
        exit(1);
    }
    nb_scope_end();
    for (int i = 0; i < nb_module_num_params(m); i++) nb_zero_grad(nb_module_param(m, i, NULL));
    *cpu = (cpu_ns() - c0) / 1e6;
    return (now_ns() - t0) / 1e6;
}

/* The medians of REPS steps (after a warm-up: arenas, BLAS buffers) on one path. */
static void time_path(nb_module *m, nb_tensor *x, bool fused, int reps, double *ms, double *cpu,
                      double *wall_med, double *cpu_med) {
    nb__rnn_fused = fused;
    double ignored;
    step_ms(m, x, &ignored);
    for (int r = 0; r < reps; r++) ms[r] = step_ms(m, x, &cpu[r]);
    *wall_med = median(ms, reps);
    *cpu_med = median(cpu, reps);
}

int main(int argc, char **argv) {
    int mode = NB_RNN_LSTM;
    if (argc > 1) {
        for (mode = 0; mode < NB_RNN_MODE_COUNT && strcmp(argv[1], mode_names[mode]); mode++) {
        }
        if (mode == NB_RNN_MODE_COUNT) {
            fprintf(stderr, "bench_rnn: unknown mode '%s' (lstm, gru, rnn_tanh, rnn_relu)\n", argv[1]);
            return 1;
        }
    }
    long v[7] = {64, 32, 128, 256, 2, 5, 0};
    for (int i = 2; i < argc && i <= 8; i++) v[i - 2] = atol(argv[i]);
    if (v[6] > 0) nb_set_num_threads((int)v[6]);
    nb_manual_seed(0);
    nb_module *m = nb_rnn_new((nb_rnn_mode)mode, v[2], v[3], (nb_rnn_opts){.num_layers = (int)v[4]});
    nb_tensor *x = nb_randn(NB_SHAPE(v[0], v[1], v[2]));
    if (!m || !x) {
        fprintf(stderr, "bench_rnn: %s\n", nb_error_message());
        return 1;
    }
    int paths = argc > 9 && !strcmp(argv[9], "fused") ? 1 : 2, reps = (int)(v[5] > 0 ? v[5] : 1);
    double *ms = malloc(sizeof(double) * (size_t)reps), *cpu = malloc(sizeof(double) * (size_t)reps);
    double wall[2], cpus[2];
    for (int k = 0; k < paths; k++) time_path(m, x, k == 0, reps, ms, cpu, &wall[k], &cpus[k]);
    for (int k = 0; k < paths; k++)
        printf("nabla %s T=%ld B=%ld I=%ld H=%ld L=%ld, %d threads, %s: forward+backward median "
               "%.2f ms wall, %.2f ms CPU over %d\n", mode_names[mode], v[0], v[1], v[2], v[3],
               v[4], nb_get_num_threads(), k ? "composite" : "fused", wall[k], cpus[k], reps);
    printf("@ nabla_ms %.3f\n@ nabla_cpu_ms %.3f\n", wall[0], cpus[0]);
    if (paths == 2)
        printf("@ nabla_composite_ms %.3f\n@ nabla_composite_cpu_ms %.3f\n", wall[1], cpus[1]);
    free(cpu);
    free(ms);
    nb_tensor_free(x);
    nb_module_free(m);
    return 0;
}
