/*
 * ptq.c — the int8 side of issue 11's PTQ bars, driven by bench/ptq.sh: a model written by
 * `nabla train` quantized after training (nabla/quant.h) and timed against itself in float32.
 *
 *   [THREADS=T] bench_ptq WEIGHTS DATA_DIR CALIB_BATCHES REPS [per-tensor]
 *
 * Calibration: the first CALIB_BATCHES batches of 64 of the training set in file order (no
 * shuffle: bench/torch_ptq.py takes the same ones), min-max observers; weights int8 symmetric
 * per output channel (per tensor with the fifth argument), activations uint8 affine — torch's
 * x86 default qconfig without its reduce_range.  Then the test set (10000 images) through the
 * float model and the quantized one in batches of 256, THREADS threads (default 1), REPS times
 * each, alternating; the median of each, and of the int8 passes' process CPU time per sample
 * (the work done, whatever the waits for a core on a busy machine).  Prints accuracies, medians, the ratio and the file sizes (the quantized
 * model written with nb_module_save, next to WEIGHTS' size), and a machine-readable line:
 *   RESULT nabla float_acc=86.14 int8_acc=86.29 float_ms=410 int8_ms=190 speedup=2.16 size_ratio=0.256
 *          int8_cpu_us=19.0
 */
#include "bench.h"
#include "nabla.h"
#include "nabla/io.h"
#include "nabla/quant.h"

#include <sys/stat.h>
#include <unistd.h>

static nb_module *load(const char *path) {
    nb_safetensors *st = nb_safetensors_open(path);
    const char *spec = st ? nb_safetensors_meta(st, "nabla.model") : NULL;
    nb_module *m = spec ? nb_model_from_json(spec) : NULL;
    nb_safetensors_close(st);
    if (m && nb_module_load(m, path) != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    if (m) nb_module_train(m, false);
    return m;
}

/* One pass over the test set: its accuracy, the time in *ms and the process CPU time in *cpu_ms. */
static double pass(nb_module *m, nb_loader *test, double *ms, double *cpu_ms) {
    nb_tensor *x, *y;
    int64_t right = 0, n = 0;
    nb_loader_reset(test);
    double t0 = now_ns(), c0 = cpu_ns();
    while (nb_loader_next(test, &x, &y)) {
        nb_scope_begin();
        nb_tensor *out = nb_module_forward(m, x);
        nb_tensor *pred = out ? nb_argmax(out, 1, false) : NULL;
        int64_t b = nb_shape(y)[0];
        for (int64_t i = 0; pred && i < b; i++) right += nb_get(pred, &i) == nb_get(y, &i);
        n += b;
        nb_scope_end();
    }
    *ms = (now_ns() - t0) / 1e6;
    *cpu_ms = (cpu_ns() - c0) / 1e6;
    return n ? 100.0 * (double)right / (double)n : -1;
}

static long long file_size(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 ? (long long)s.st_size : -1;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: bench_ptq WEIGHTS DATA_DIR CALIB_BATCHES REPS [per-tensor]\n");
        return 2;
    }
    int calib = atoi(argv[3]), reps = atoi(argv[4]);
    const char *env = getenv("THREADS");
    int threads = env && atoi(env) > 0 ? atoi(env) : 1;
    nb_set_num_threads(threads);
    nb_dataset *train = nb_mnist_read(argv[2], true), *test_set = nb_mnist_read(argv[2], false);
    nb_loader *tl = train ? nb_loader_new(train, (nb_loader_opts){.batch_size = 64, .transforms = {.scale = true}}) : NULL;
    nb_loader *test = test_set ? nb_loader_new(test_set, (nb_loader_opts){.batch_size = 256, .transforms = {.scale = true}}) : NULL;
    nb_module *f = load(argv[1]), *q = load(argv[1]);
    nb_ptq_opts o = {.symmetric = true, .per_channel = argc < 6};
    nb_ptq *p = f && q && tl && test ? nb_ptq_new(q, &o) : NULL;
    nb_tensor *x, *y;
    for (int b = 0; p && b < calib && nb_loader_next(tl, &x, &y); b++)
        if (nb_ptq_calibrate(p, x) != NB_OK) break;
    if (!p || nb_ptq_convert(p) != NB_OK) {
        fprintf(stderr, "bench_ptq: %s\n", nb_error_message());
        return 1;
    }
    nb_ptq_free(p);
    char out[] = "/tmp/bench_ptq_XXXXXX";
    int fd = mkstemp(out);
    if (fd >= 0) close(fd);
    long long qsize = nb_module_save(q, out, 0, NULL, NULL) == NB_OK ? file_size(out) : -1;
    remove(out);

    double *tf = malloc(sizeof(double) * 3 * (size_t)reps), *tq = tf + reps, *cq = tq + reps, unused;
    double acc_f = 0, acc_q = 0;
    pass(q, test, &tq[0], &unused); /* warm both: arenas, pages */
    pass(f, test, &tf[0], &unused);
    for (int r = 0; r < reps; r++) {
        acc_q = pass(q, test, &tq[r], &cq[r]);
        acc_f = pass(f, test, &tf[r], &unused);
    }
    int64_t samples = nb_dataset_len(test_set);
    double mf = median(tf, reps), mq = median(tq, reps), ratio = (double)qsize / (double)file_size(argv[1]);
    double us = 1000.0 * median(cq, reps) / (double)samples;
    printf("nabla float32: accuracy %.2f %%, test set in %.1f ms (median of %d, batch 256, %d thread%s)\n", acc_f,
           mf, reps, threads, threads == 1 ? "" : "s");
    printf("nabla int8:    accuracy %.2f %%, test set in %.1f ms: %.2fx float32; %.1f us CPU a sample\n", acc_q, mq,
           mf / mq, us);
    printf("file: %lld bytes float32, %lld int8 (%.3fx)\n", file_size(argv[1]), qsize, ratio);
    printf("RESULT nabla float_acc=%.2f int8_acc=%.2f float_ms=%.1f int8_ms=%.1f speedup=%.2f size_ratio=%.3f "
           "int8_cpu_us=%.2f\n", acc_f, acc_q, mf, mq, mf / mq, ratio, us);
    free(tf);
    nb_module_free(f);
    nb_module_free(q);
    nb_loader_free(tl);
    nb_loader_free(test);
    nb_dataset_free(train);
    nb_dataset_free(test_set);
    return 0;
}
