/*
 * quantize.c — `nabla quantize`: post-training int8 quantization of a trained model, over the
 * library's PTQ (nabla/quant.h: nb_ptq_new, nb_ptq_calibrate, nb_ptq_convert).
 *
 *   1. the model of WEIGHTS (written by `nabla train`), its test accuracy and file size;
 *   2. observers on the activations of every Linear and Conv2d (BatchNorm folded, ReLU fused),
 *      fed by --calib batches of the training set (none with --dynamic);
 *   3. the conversion: int8 weights (--bits, --scheme, --per-channel), uint8 activations;
 *   4. the test accuracy again, each layer's scales and weight error, and OUT written with the
 *      original's metadata plus "nabla.quantized" (the options, which rebuild the quantized
 *      structure when `nabla eval` / `nabla predict` load the file: quantized_structure).
 * Any error (bad options, no calibration batch, scales that are not finite and positive)
 * stops before the write, so nothing is written.
 */
#include "cli.h"
#include "nabla/quant.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define QUANT_MAX_LAYERS 256

static const char *const observer_names[NB_OBSERVER_COUNT] = {"minmax", "moving-average",
                                                              "percentile", "mse"};

/* ---- the options in the file's metadata */

char *quantized_meta(const nb_ptq_opts *o) {
    json_t *j = json_pack("{s:i, s:b, s:b, s:b}", "bits", o->bits ? o->bits : 8, "symmetric",
                          o->symmetric, "per_channel", o->per_channel, "dynamic", o->dynamic);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

bool quantized_structure(nb_module *m, const json_t *meta) {
    json_error_t err;
    nb_ptq_opts o = {0};
    int sym = 0, pc = 0, dyn = 0;
    if (json_unpack_ex((json_t *)meta, &err, JSON_STRICT, "{s:i, s:b, s:b, s:b}", "bits", &o.bits,
                       "symmetric", &sym, "per_channel", &pc, "dynamic", &dyn) != 0) {
        fprintf(stderr, "nabla: metadata '%s' is not nabla quantize's: %s\n", META_QUANTIZED, err.text);
        return false;
    }
    o.symmetric = sym, o.per_channel = pc, o.dynamic = dyn;
    if (nb_ptq_structure(m, &o) == NB_OK) return true;
    cli_fail("rebuilding the quantized model");
    return false;
}

/* ---- the command */

typedef struct {
    const char *data, *out, *scheme, *observer;
    int calib, batch, bits, seed, threads;
    double percentile;
    bool per_channel, dynamic;
} quantize_opts;

static long long file_size(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 ? (long long)s.st_size : -1;
}

static bool evaluate(nb_module *m, nb_loader *test, const char *when, double *acc) {
    nb_eval_result r;
    if (nb_evaluate(m, test, 0, &r) != NB_OK) return cli_fail("evaluation"), false;
    printf("%s: test loss %.4f  accuracy %.2f%% on %lld samples\n", when, r.loss, 100 * r.accuracy,
           (long long)r.samples);
    fflush(stdout);
    *acc = r.accuracy;
    return true;
}

static bool calibrate(nb_ptq *p, nb_loader *train, int batches) {
    nb_tensor *x, *y;
    for (int b = 0; b < batches; b++) {
        if (!nb_loader_next(train, &x, &y)) {
            if (b == 0) return cli_fail("reading a calibration batch"), false;
            printf("calibration: the training set ended after %d batches\n", b);
            return true;
        }
        if (nb_ptq_calibrate(p, x) != NB_OK) return cli_fail("calibrating"), false;
    }
    return true;
}

static void print_layers(const nb_module *m) {
    nb_quantized_layer_info info[QUANT_MAX_LAYERS];
    int n = nb_quantized_layers(m, info, QUANT_MAX_LAYERS);
    printf("  %-14s %-21s %-11s %-11s %-11s %s\n", "layer", "weight scale", "input scale",
           "out scale", "max |dw|", "rms dw");
    for (int i = 0; i < n && i < QUANT_MAX_LAYERS; i++) {
        const nb_quantized_layer_info *e = &info[i];
        char ws[32];
        if (e->weight_scale_min == e->weight_scale_max) snprintf(ws, sizeof ws, "%.4g", e->weight_scale_min);
        else snprintf(ws, sizeof ws, "%.3g..%.3g", e->weight_scale_min, e->weight_scale_max);
        printf("  %-14s %-21s %-11.4g %-11.4g %-11.4g %.4g\n", e->name, ws, e->input_scale, e->scale,
               e->max_abs_error, sqrt(e->mse));
    }
}

/* The metadata of WEIGHTS with the options added, and OUT written (atomically). */
static bool save(nb_module *m, const char *from, const char *out, const nb_ptq_opts *po) {
    const char *keys[5], *values[5];
    char *owned[5] = {0};
    int n = trained_meta_copy(from, keys, owned);
    if (n < 0) return false;
    char dir[4200];
    const char *slash = strrchr(out, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - out) : 0, out);
    if (slash && slash != out && !make_dirs(dir)) {
        fprintf(stderr, "nabla: cannot make the output folder %s: %s\n", dir, strerror(errno));
        for (int i = 0; i < n; i++) free(owned[i]);
        return false;
    }
    for (int i = 0; i < n; i++) values[i] = owned[i];
    keys[n] = META_QUANTIZED;
    values[n] = owned[n] = quantized_meta(po);
    bool ok = values[n] && nb_quantized_check(m) == NB_OK &&
              nb_module_save(m, out, n + 1, keys, values) == NB_OK;
    if (!ok) cli_fail("saving");
    for (int i = 0; i <= n; i++) free(owned[i]);
    if (ok)
        printf("wrote %s: %lld bytes, %.3f of %s (%lld bytes)\n", out, file_size(out),
               (double)file_size(out) / (double)file_size(from), from, file_size(from));
    return ok;
}

static const char *const quantize_usage =
    "usage: nabla quantize WEIGHTS [options]\n\n"
    "Post-training quantization of weights written by `nabla train`: every Linear and Conv2d\n"
    "becomes an int8 layer (BatchNorm folded into it, a following ReLU fused), computing\n"
    "uint8 x int8 -> int32 and requantizing as torch's fbgemm backend.  Activation scales come\n"
    "from --calib batches of the training set (or from each batch, --dynamic).  Prints the file\n"
    "size and test accuracy before and after, and each layer's scales and weight error; writes\n"
    "OUT (int8 weights, scales and zero points, no float weights), which `nabla eval` and\n"
    "`nabla predict` read.  --bits is the weights' width; activations are 8-bit.\n"
    "Example: nabla quantize runs/a/model.safetensors --calib 10 --per-channel --out q.safetensors";

static bool parse_observer(const char *name, nb_observer_kind *k) {
    for (int i = 0; i < NB_OBSERVER_COUNT; i++)
        if (!strcmp(name, observer_names[i])) return *k = (nb_observer_kind)i, true;
    return false;
}

int cmd_quantize(int argc, char **argv) {
    quantize_opts o = {.data = "/usr/share/datasets/fashion-mnist", .out = "runs/quantize/model.safetensors",
                       .scheme = "sym", .observer = "minmax", .calib = 10, .batch = 64, .bits = 8,
                       .percentile = 99.99, .threads = nb_get_num_threads()};
    const cli_flag flags[] = {
        {"calib", FLAG_INT, &o.calib, "calibration batches of the training set", "[1, inf)"},
        {"scheme", FLAG_STRING, &o.scheme, "weights: symmetric (zero point 0) or affine", NULL, "sym asym"},
        {"per-channel", FLAG_BOOL, &o.per_channel, "one weight scale per output channel"},
        {"bits", FLAG_INT, &o.bits, "weight bits (stored as int8)", "[2, 8]"},
        {"observer", FLAG_STRING, &o.observer, "activation ranges: min-max, its moving average, a "
         "percentile of the histogram, or the clipping of least squared error", NULL,
         "minmax moving-average percentile mse"},
        {"percentile", FLAG_FLOAT, &o.percentile, "--observer percentile: the percentile kept", "(50, 100]"},
        {"dynamic", FLAG_BOOL, &o.dynamic, "quantize activations per batch (no calibration)"},
        {"batch", FLAG_INT, &o.batch, "calibration batch size", "[1, inf)"},
        {"data", FLAG_STRING, &o.data, "folder of MNIST-format IDX files"},
        {"seed", FLAG_INT, &o.seed, "seed of the calibration batches' shuffle"},
        {"threads", FLAG_INT, &o.threads, "threads for the kernels", "[1, 256]"},
        {"out", FLAG_STRING, &o.out, "the quantized weights file"},
    };
    const char *pos[1];
    int np = cli_parse(argc, argv, 2, flags, (int)(sizeof flags / sizeof *flags), quantize_usage, pos, 1);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np != 1) return fprintf(stderr, "nabla quantize: needs WEIGHTS (see --help)\n"), 2;
    nb_ptq_opts po = {.bits = o.bits, .symmetric = !strcmp(o.scheme, "sym"), .per_channel = o.per_channel,
                      .dynamic = o.dynamic, .percentile = (float)o.percentile};
    parse_observer(o.observer, &po.act_observer); /* the flag's choices */
    nb_set_num_threads(o.threads);
    nb_manual_seed((uint64_t)o.seed);

    nb_module *m = load_trained_model(pos[0], NULL);
    nb_dataset *train_set = m ? nb_mnist_read(o.data, true) : NULL;
    nb_dataset *test_set = train_set ? nb_mnist_read(o.data, false) : NULL;
    if (m && !test_set) cli_data_failed(o.data);
    nb_transforms tf = {.scale = true};
    nb_loader *train = test_set ? nb_loader_new(train_set, (nb_loader_opts){.batch_size = o.batch, .shuffle = true,
                                                                            .seed = (uint64_t)o.seed, .transforms = tf})
                                : NULL;
    nb_loader *test = train ? nb_loader_new(test_set, (nb_loader_opts){.batch_size = 1000, .transforms = tf}) : NULL;
    bool ok = test != NULL && cli_check_labels(m, test_set);
    if (test_set && !test) cli_fail("making the data loaders");
    double before = 0, after = 0;
    if (ok) printf("%s: %lld bytes\n", pos[0], file_size(pos[0]));
    ok = ok && evaluate(m, test, "float32", &before);
    nb_ptq *p = ok ? nb_ptq_new(m, &po) : NULL;
    if (ok && !p) ok = (cli_fail("preparing the quantization"), false);
    if (ok && !o.dynamic) {
        printf("calibrating on %d batches of %d (%s observer)\n", o.calib, o.batch, o.observer);
        ok = calibrate(p, train, o.calib);
    }
    if (ok && nb_ptq_convert(p) != NB_OK) ok = (cli_fail("converting"), false);
    if (ok)
        printf("int%d weights (%s, per %s), uint8 activations (%s)\n", o.bits, po.symmetric ? "symmetric" : "affine",
               po.per_channel ? "channel" : "tensor", o.dynamic ? "dynamic" : "static");
    ok = ok && evaluate(m, test, "quantized", &after);
    if (ok) {
        print_layers(m);
        printf("accuracy: %.2f%% -> %.2f%% (%+.2f points)\n", 100 * before, 100 * after, 100 * (after - before));
        ok = save(m, pos[0], o.out, &po);
    }
    nb_ptq_free(p);
    nb_loader_free(train);
    nb_loader_free(test);
    nb_dataset_free(train_set);
    nb_dataset_free(test_set);
    nb_module_free(m);
    return ok ? 0 : 1;
}
