/*
 * rnn.c — LSTM forward + backward throughput: nn.LSTM's shapes (T steps, B batch, I input,
 * H hidden, L layers) on random data, loss sum(output), the median time of one step (forward,
 * backward, parameter gradients cleared) over REPS after one warm-up, in wall-clock and in the
 * process's CPU time (the fairer figure on a busy machine), for the default fused path (one
 * lstm_layer node per layer-direction) and the composite one (ops per step, nb__rnn_fused
 * off).  bench/rnn.sh runs it beside bench/torch_rnn.py on the same shapes and prints the ratio.
 *
 *   build/bench_rnn [T B I H L REPS THREADS]     (defaults 64 32 128 256 2 5, the library's threads)
 *
 * Prints "@ nabla_lstm_ms <median>" (fused, wall), "@ nabla_lstm_cpu_ms", and the composite
 * path's "@ nabla_lstm_composite_ms" and "@ nabla_lstm_composite_cpu_ms".
 */
#include "bench.h"
#include "nabla.h"

#include <time.h>

extern bool nb__rnn_fused; /* src/nn/recurrent.c */

static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One step; its CPU time into *cpu, its wall time returned. */
static double step_ms(nb_module *m, nb_tensor *x, double *cpu) {
    double t0 = now_ns(), c0 = cpu_ms();
    nb_scope_begin();
    nb_tensor *out = NULL;
    if (nb_rnn_forward(m, x, NULL, &out, NULL, NULL) != NB_OK || nb_backward(nb_sum(out)) != NB_OK) {
        fprintf(stderr, "bench_rnn: %s\n", nb_error_message());
        exit(1);
    }
    nb_scope_end();
    for (int i = 0; i < nb_module_num_params(m); i++) nb_zero_grad(nb_module_param(m, i, NULL));
    *cpu = cpu_ms() - c0;
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
    long v[7] = {64, 32, 128, 256, 2, 5, 0};
    for (int i = 1; i < argc && i <= 7; i++) v[i - 1] = atol(argv[i]);
    if (v[6] > 0) nb_set_num_threads((int)v[6]);
    nb_manual_seed(0);
    nb_module *m = nb_rnn_new(NB_RNN_LSTM, v[2], v[3], (nb_rnn_opts){.num_layers = (int)v[4]});
    nb_tensor *x = nb_randn(NB_SHAPE(v[0], v[1], v[2]));
    if (!m || !x) {
        fprintf(stderr, "bench_rnn: %s\n", nb_error_message());
        return 1;
    }
    int reps = (int)(v[5] > 0 ? v[5] : 1);
    double *ms = malloc(sizeof(double) * (size_t)reps), *cpu = malloc(sizeof(double) * (size_t)reps);
    double wall[2], cpus[2];
    for (int k = 0; k < 2; k++) time_path(m, x, k == 0, reps, ms, cpu, &wall[k], &cpus[k]);
    for (int k = 0; k < 2; k++)
        printf("nabla LSTM T=%ld B=%ld I=%ld H=%ld L=%ld, %d threads, %s: forward+backward median "
               "%.2f ms wall, %.2f ms CPU over %d\n", v[0], v[1], v[2], v[3], v[4],
               nb_get_num_threads(), k ? "composite" : "fused", wall[k], cpus[k], reps);
    printf("@ nabla_lstm_ms %.3f\n@ nabla_lstm_cpu_ms %.3f\n", wall[0], cpus[0]);
    printf("@ nabla_lstm_composite_ms %.3f\n@ nabla_lstm_composite_cpu_ms %.3f\n", wall[1], cpus[1]);
    free(cpu);
    free(ms);
    nb_tensor_free(x);
    nb_module_free(m);
    return 0;
}
