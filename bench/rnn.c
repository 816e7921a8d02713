/*
 * rnn.c — LSTM forward + backward throughput: nn.LSTM's shapes (T steps, B batch, I input,
 * H hidden, L layers) on random data, loss sum(output), the median time of one step (forward,
 * backward, parameter gradients cleared) over REPS after one warm-up.  bench/rnn.sh runs it
 * beside bench/torch_rnn.py on the same shapes and prints the ratio.
 *
 *   build/bench_rnn [T B I H L REPS THREADS]     (defaults 64 32 128 256 2 5, the library's threads)
 *
 * Prints "@ nabla_lstm_ms <median>" and the thread count.
 */
#include "bench.h"
#include "nabla.h"

static double step_ms(nb_module *m, nb_tensor *x) {
    double t0 = now_ns();
    nb_scope_begin();
    nb_tensor *out = NULL;
    if (nb_rnn_forward(m, x, NULL, &out, NULL, NULL) != NB_OK || nb_backward(nb_sum(out)) != NB_OK) {
        fprintf(stderr, "bench_rnn: %s\n", nb_error_message());
        exit(1);
    }
    nb_scope_end();
    for (int i = 0; i < nb_module_num_params(m); i++) nb_zero_grad(nb_module_param(m, i, NULL));
    return (now_ns() - t0) / 1e6;
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
    double *ms = malloc(sizeof(double) * (size_t)reps);
    step_ms(m, x); /* warm-up: arenas, BLAS buffers */
    for (int r = 0; r < reps; r++) ms[r] = step_ms(m, x);
    printf("nabla LSTM T=%ld B=%ld I=%ld H=%ld L=%ld, %d threads: forward+backward median %.2f ms "
           "over %d\n", v[0], v[1], v[2], v[3], v[4], nb_get_num_threads(), median(ms, reps), reps);
    printf("@ nabla_lstm_ms %.3f\n", median(ms, reps));
    free(ms);
    nb_tensor_free(x);
    nb_module_free(m);
    return 0;
}
