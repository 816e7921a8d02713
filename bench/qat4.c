/*
 * qat4.c — the 4-bit post-training baseline of the QAT bar (issue 11: "4-bit weights: QAT
 * recovers at least half of the accuracy that 4-bit PTQ loses on the course MLP"), driven by
 * bench/qat4.sh.
 *
 *   bench_qat4 WEIGHTS DATA_DIR [BITS [BATCHES]]
 *
 * WEIGHTS: a 784-64-64-10 ReLU MLP written by `nabla train`.  Prints its float32 test accuracy,
 * then that of its PTQ with fake quantization: the same QAT modules `nabla train --qat` trains
 * (nb_qat_prepare: weights at BITS, symmetric per output channel; each layer's output at 8
 * bits, affine per tensor), their observers calibrated on BATCHES batches of 256 training
 * samples in eval mode with fake quantization off (float activations, as PTQ's calibration
 * sees them), then frozen, and the test set evaluated with fake quantization on.
 */
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>

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

static double accuracy(nb_module *m, nb_loader *test) {
    nb_eval_result r;
    return nb_evaluate(m, test, 0, &r) == NB_OK ? 100.0 * r.accuracy : -1;
}

/* Observers over `batches` batches of ld (float activations), then frozen, fake quant on. */
static bool calibrate(nb_module *m, nb_loader *ld, int batches) {
    nb_module_train(m, false);
    bool ok = nb_fake_quantize_enable_fake_quant(m, false) == NB_OK;
    nb_tensor *x, *y;
    NB_NO_GRAD {
        for (int b = 0; ok && b < batches && nb_loader_next(ld, &x, &y); b++) {
            nb_scope_begin();
            ok = nb_module_forward(m, x) != NULL;
            nb_scope_end();
        }
    }
    return ok && nb_fake_quantize_enable_observer(m, false) == NB_OK &&
           nb_fake_quantize_enable_fake_quant(m, true) == NB_OK;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_qat4 WEIGHTS DATA_DIR [BITS [BATCHES]]\n");
        return 2;
    }
    int bits = argc > 3 ? atoi(argv[3]) : 4, batches = argc > 4 ? atoi(argv[4]) : 8;
    nb_dataset *train = nb_mnist_read(argv[2], true), *test_set = nb_mnist_read(argv[2], false);
    nb_loader *tl = train ? nb_loader_new(train, (nb_loader_opts){.batch_size = 256, .transforms = {.scale = true}}) : NULL;
    nb_loader *test = test_set ? nb_loader_new(test_set, (nb_loader_opts){.batch_size = 1000, .transforms = {.scale = true}}) : NULL;
    nb_module *fl = load(argv[1]), *q = load(argv[1]);
    bool ok = tl && test && fl && q && nb_qat_prepare(q, &(nb_qat_opts){.weight_bits = bits}) == NB_OK &&
              calibrate(q, tl, batches);
    if (ok) {
        printf("float32: test accuracy %.2f %%\n", accuracy(fl, test));
        printf("PTQ %d-bit weights (8-bit activations, %d calibration batches of 256): test accuracy %.2f %%\n",
               bits, batches, accuracy(q, test));
    } else {
        fprintf(stderr, "bench_qat4: %s\n", nb_error_message());
    }
    nb_module_free(fl), nb_module_free(q);
    nb_loader_free(tl), nb_loader_free(test);
    nb_dataset_free(train), nb_dataset_free(test_set);
    return ok ? 0 : 1;
}
