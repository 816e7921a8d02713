/*
 * attention.c — MultiheadAttention and TransformerEncoderLayer forward + backward: self-
 * attention on random [T, B, E] data (GPT-like shapes: T 128, B 16, E 128, 4 heads; the
 * encoder layer causal with dim_feedforward 4E), loss sum(output), the median time of one step
 * (forward, backward, parameter gradients cleared) over REPS after one warm-up.
 * bench/attention.sh runs it beside bench/torch_attention.py and prints the ratios.
 *
 *   build/bench_attention [T B E HEADS REPS THREADS]   (defaults 128 16 128 4 5, the library's threads)
 *
 * Prints "@ nabla_mha_ms <median>" and "@ nabla_encoder_ms <median>".
 */
#include "bench.h"
#include "nabla.h"

static double step_ms(nb_module *m, nb_tensor *x) {
    double t0 = now_ns();
    nb_scope_begin();
    nb_mha_inputs causal = {.is_causal = true};
    nb_tensor *out = NULL;
    if (nb_module_class_of(m) && !strcmp(nb_module_class_of(m)->name, "MultiheadAttention"))
        nb_multihead_attention_forward(m, x, x, x, &causal, &out, NULL);
    else out = nb_transformer_encoder_layer_forward(m, x, &causal);
    if (!out || nb_backward(nb_sum(out)) != NB_OK) {
        fprintf(stderr, "bench_attention: %s\n", nb_error_message());
        exit(1);
    }
    nb_scope_end();
    for (int i = 0; i < nb_module_num_params(m); i++) nb_zero_grad(nb_module_param(m, i, NULL));
    return (now_ns() - t0) / 1e6;
}

static double median_of(nb_module *m, nb_tensor *x, int reps, double *ms) {
    step_ms(m, x); /* warm-up: arenas, BLAS buffers */
    for (int r = 0; r < reps; r++) ms[r] = step_ms(m, x);
    return median(ms, reps);
}

int main(int argc, char **argv) {
    long v[6] = {128, 16, 128, 4, 5, 0};
    for (int i = 1; i < argc && i <= 6; i++) v[i - 1] = atol(argv[i]);
    if (v[5] > 0) nb_set_num_threads((int)v[5]);
    nb_manual_seed(0);
    nb_module *mha = nb_multihead_attention_new(v[2], v[3], (nb_mha_opts){0});
    nb_module *enc = nb_transformer_encoder_layer_new(v[2], v[3],
                                                      (nb_transformer_opts){.dim_feedforward = 4 * v[2]});
    nb_tensor *x = nb_randn(NB_SHAPE(v[0], v[1], v[2]));
    if (!mha || !enc || !x) {
        fprintf(stderr, "bench_attention: %s\n", nb_error_message());
        return 1;
    }
    int reps = (int)(v[4] > 0 ? v[4] : 1);
    double *ms = malloc(sizeof(double) * (size_t)reps);
    double a = median_of(mha, x, reps, ms), b = median_of(enc, x, reps, ms);
    printf("nabla T=%ld B=%ld E=%ld heads=%ld causal, %d threads, median over %d: "
           "MultiheadAttention %.2f ms, TransformerEncoderLayer %.2f ms (forward+backward)\n",
           v[0], v[1], v[2], v[3], nb_get_num_threads(), reps, a, b);
    printf("@ nabla_mha_ms %.3f\n@ nabla_encoder_ms %.3f\n", a, b);
    free(ms);
    nb_tensor_free(x);
    nb_module_free(mha), nb_module_free(enc);
    return 0;
}
