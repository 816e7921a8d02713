/*
 * train.c — `nabla train`: the course's training loop as a command.  Per epoch: a pass over the
 * shuffled training set (zero_grad, forward, loss, backward, step) with a progress bar, an
 * evaluation pass, one line of figures, the curves rewritten (CSV + SVG) and a checkpoint, so
 * an interrupted run resumes (--resume) exactly where it stopped.
 */
#include "cli.h"
#include "nabla/loss.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct {
    const char *model, *model_file, *act, *data, *optim, *sched, *out, *resume;
    double dropout, lr, momentum, weight_decay, gamma, label_smoothing, clip_norm, hflip, noise;
    int epochs, batch, seed, threads, step_size, warmup, early_stop, val, limit, stop_after, pad;
    bool batchnorm, nesterov, prefetch;
} train_opts;

typedef struct {
    nb_module *model;
    nb_optim *optim;
    nb_sched *sched;
    nb_dataset *train_set, *eval_set;
    nb_loader *train, *eval;
    nb_curves *curves;
    json_t *spec;
    int64_t epoch; /* epochs done */
    double best;   /* best evaluation loss so far */
    int bad_epochs;
} run;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static nb_optim *make_optim(const train_opts *o, nb_module *m) {
    nb_tensor *params[1024];
    int n = nb_module_parameters(m, params, 1024);
    if (n > 1024) {
        fprintf(stderr, "nabla: the model has more than 1024 parameter tensors\n");
        return NULL;
    }
    double wd = o->weight_decay > 0 ? o->weight_decay : NB_ZERO;
    nb_optim *opt = NULL;
    if (!strcmp(o->optim, "sgd"))
        opt = nb_sgd_new(n, params, (nb_sgd_opts){.lr = o->lr, .momentum = o->momentum,
                                                  .weight_decay = o->weight_decay, .nesterov = o->nesterov});
    else if (!strcmp(o->optim, "adam"))
        opt = nb_adam_new(n, params, (nb_adam_opts){.lr = o->lr, .weight_decay = o->weight_decay});
    else if (!strcmp(o->optim, "adamw"))
        opt = nb_adamw_new(n, params, (nb_adamw_opts){.lr = o->lr, .weight_decay = wd});
    else if (!strcmp(o->optim, "rmsprop"))
        opt = nb_rmsprop_new(n, params, (nb_rmsprop_opts){.lr = o->lr, .momentum = o->momentum,
                                                          .weight_decay = o->weight_decay});
    else if (!strcmp(o->optim, "adagrad"))
        opt = nb_adagrad_new(n, params, (nb_adagrad_opts){.lr = o->lr, .weight_decay = o->weight_decay});
    else {
        fprintf(stderr, "nabla: --optim '%s': expected sgd, adam, adamw, rmsprop or adagrad\n", o->optim);
        return NULL;
    }
    if (!opt) cli_fail("optimiser");
    return opt;
}

/* The schedule, stepped once per epoch; with --warmup W, a linear warm-up over W epochs first
 * (torch's SequentialLR of LinearLR and the main schedule). */
static nb_sched *make_sched(const train_opts *o, nb_optim *opt, bool *ok) {
    *ok = true;
    int main_epochs = o->epochs - o->warmup > 0 ? o->epochs - o->warmup : 1;
    nb_sched *s = NULL;
    if (!strcmp(o->sched, "none")) s = NULL;
    else if (!strcmp(o->sched, "cosine")) s = nb_cosinelr_new(opt, main_epochs, 0.0);
    else if (!strcmp(o->sched, "step")) s = nb_steplr_new(opt, o->step_size, o->gamma);
    else if (!strcmp(o->sched, "exp")) s = nb_exponentiallr_new(opt, o->gamma);
    else if (!strcmp(o->sched, "plateau")) s = nb_plateau_new(opt, (nb_plateau_opts){.factor = o->gamma, .patience = 2});
    else if (!strcmp(o->sched, "onecycle"))
        s = nb_onecyclelr_new(opt, (nb_onecycle_opts){.max_lr = o->lr, .total_steps = main_epochs});
    else {
        fprintf(stderr, "nabla: --sched '%s': expected none, cosine, step, exp, plateau or onecycle\n", o->sched);
        return *ok = false, NULL;
    }
    if (strcmp(o->sched, "none") && !s) return cli_fail("schedule"), *ok = false, NULL;
    if (o->warmup <= 0) return s;
    if (!strcmp(o->sched, "plateau")) {
        fprintf(stderr, "nabla: --warmup does not combine with --sched plateau\n");
        nb_sched_free(s);
        return *ok = false, NULL;
    }
    nb_sched *warm = nb_linearlr_new(opt, 0.1, 1.0, o->warmup);
    if (!s) return warm;
    nb_sched *seq = nb_sequentiallr_new(opt, 2, (nb_sched *const[]){warm, s}, (int[]){o->warmup});
    if (!seq) cli_fail("schedule"), *ok = false;
    return seq;
}

/* Loss and correct count of one batch; the loss tensor lives in the caller's scope. */
static nb_tensor *batch_loss(const train_opts *o, nb_module *m, nb_tensor *x, nb_tensor *y, int64_t *correct) {
    nb_tensor *logits = nb_module_forward(m, x);
    nb_ce_opts ce = {.label_smoothing = (float)o->label_smoothing};
    nb_tensor *loss = nb_cross_entropy(logits, y, &ce);
    if (loss && correct) *correct += nb_count_correct(logits, y);
    return loss;
}

static bool evaluate(const train_opts *o, run *r, double *loss, double *acc) {
    nb_module_train(r->model, false);
    double sum = 0;
    int64_t correct = 0, seen = 0;
    nb_tensor *x, *y;
    nb_loader_reset(r->eval);
    bool ok = true;
    NB_NO_GRAD {
        while (ok && nb_loader_next(r->eval, &x, &y)) {
            nb_scope_begin();
            nb_tensor *l = batch_loss(o, r->model, x, y, &correct);
            ok = l != NULL;
            if (ok) sum += nb_item(l) * (double)nb_size(x, 0);
            seen += nb_size(x, 0);
            nb_scope_end();
        }
    }
    nb_module_train(r->model, true);
    if (!ok) return cli_fail("evaluation"), false;
    *loss = sum / (double)seen;
    *acc = (double)correct / (double)seen;
    return true;
}

static bool train_epoch(const train_opts *o, run *r, double *loss, double *acc) {
    char label[48], post[64];
    snprintf(label, sizeof label, "epoch %lld/%d", (long long)r->epoch + 1, o->epochs);
    nb_loader_set_epoch(r->train, r->epoch);
    nb_progress *bar = nb_progress_new(stderr, label, nb_loader_len(r->train));
    nb_tensor *params[1024], *x, *y;
    int np = nb_module_parameters(r->model, params, 1024);
    double sum = 0;
    int64_t correct = 0, seen = 0, step = 0;
    bool ok = true;
    while (ok && nb_loader_next(r->train, &x, &y)) {
        nb_scope_begin();
        nb_optim_zero_grad(r->optim);
        nb_tensor *l = batch_loss(o, r->model, x, y, &correct);
        ok = l && nb_backward(l) == NB_OK;
        if (ok && o->clip_norm > 0) nb_clip_grad_norm(np, params, (float)o->clip_norm, 2.0f);
        ok = ok && nb_optim_step(r->optim) == NB_OK;
        if (ok) {
            float v = nb_item(l);
            if (!isfinite(v)) {
                fprintf(stderr, "\nnabla: the loss became %g at step %lld of epoch %lld: lower --lr\n",
                        v, (long long)step, (long long)r->epoch + 1);
                ok = false;
            }
            sum += v * (double)nb_size(x, 0);
            seen += nb_size(x, 0);
        }
        nb_scope_end();
        step++;
        if (ok && (step & 15) == 0) {
            snprintf(post, sizeof post, "loss %.4f", sum / (double)seen);
            nb_progress_update(bar, step, post);
        }
    }
    if (ok) {
        snprintf(post, sizeof post, "loss %.4f", sum / (double)seen);
        nb_progress_update(bar, step, post);
        nb_progress_finish(bar, post);
    } else if (nb_error_code()) {
        cli_fail("training step");
    }
    nb_progress_free(bar);
    *loss = sum / (double)(seen ? seen : 1);
    *acc = (double)correct / (double)(seen ? seen : 1);
    return ok;
}

/* ---- files */

static char *join(const char *dir, const char *name) {
    static _Thread_local char buf[4][4096];
    static _Thread_local int next;
    char *p = buf[next++ % 4];
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

/* Progress that a resumed run needs besides the checkpoint's objects.  JSON has no infinity or
 * NaN: such values are null ("best" until an evaluation loss is finite). */
static char *progress_json(const train_opts *o, const run *r) {
    json_t *rows = json_array();
    const nb_curves *c = r->curves;
    for (int e = 0; e < nb_curves_len(c); e++) {
        float v[4];
        nb_curves_get(c, e, v);
        json_t *row = json_array();
        for (int k = 0; k < 4; k++)
            json_array_append_new(row, isfinite(v[k]) ? json_real(v[k]) : json_null());
        json_array_append_new(rows, row);
    }
    json_t *root = json_pack("{s:o,s:o,s:i,s:i}", "curves", rows, "best",
                             isfinite(r->best) ? json_real(r->best) : json_null(), "bad_epochs",
                             r->bad_epochs, "seed", o->seed);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

static bool restore_progress(const train_opts *o, run *r, const char *text) {
    json_error_t err;
    json_t *root = text ? json_loads(text, 0, &err) : NULL, *rows = json_object_get(root, "curves");
    json_t *best = json_object_get(root, "best"), *seed = json_object_get(root, "seed");
    bool ok = json_is_array(rows) && (json_is_number(best) || json_is_null(best)) &&
              json_is_integer(json_object_get(root, "bad_epochs")) && json_is_integer(seed);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        float v[4];
        for (int k = 0; k < 4; k++) {
            json_t *x = json_array_get(row, (size_t)k);
            v[k] = json_is_number(x) ? (float)json_number_value(x) : NAN;
        }
        ok = ok && nb_curves_add(r->curves, v[0], v[1], v[2], v[3]) == NB_OK;
    }
    if (ok) {
        r->best = json_is_null(best) ? INFINITY : json_number_value(best);
        r->bad_epochs = (int)json_integer_value(json_object_get(root, "bad_epochs"));
        /* shuffling follows --seed, so another seed gives other batches than the first run's */
        if (json_integer_value(seed) != o->seed)
            fprintf(stderr, "nabla: note: the checkpoint's run used --seed %lld, this one --seed %d\n",
                    (long long)json_integer_value(seed), o->seed);
    }
    json_decref(root);
    if (!ok) fprintf(stderr, "nabla: the checkpoint's progress record is malformed\n");
    return ok;
}

static bool save_outputs(const train_opts *o, run *r) {
    char *spec = json_dumps(r->spec, JSON_COMPACT | JSON_SORT_KEYS), *prog = progress_json(o, r);
    const char *keys[] = {"nabla.model"}, *values[] = {spec};
    bool ok = spec && prog && nb_curves_write_csv(r->curves, join(o->out, "curves.csv")) == NB_OK &&
              nb_curves_write_svg(r->curves, join(o->out, "curves.svg"), "nabla train") == NB_OK &&
              nb_module_save(r->model, join(o->out, "model.safetensors"), 1, keys, values) == NB_OK &&
              nb_checkpoint_save(join(o->out, "checkpoint.safetensors"), r->model, r->optim, r->sched,
                                 r->epoch, prog) == NB_OK;
    if (!ok) cli_fail("saving results");
    free(spec);
    free(prog);
    return ok;
}

/* ---- setup */

static bool load_data(const train_opts *o, run *r) {
    r->train_set = nb_mnist_read(o->data, true);
    r->eval_set = r->train_set ? nb_mnist_read(o->data, false) : NULL;
    if (!r->eval_set) return cli_fail("reading the data set (apt-get install dataset-fashion-mnist, or --data DIR)"), false;
    int64_t n = nb_dataset_len(r->train_set);
    if (o->limit > 0 && o->limit < n) {
        nb_dataset *sub = nb_dataset_subset(r->train_set, 0, o->limit);
        nb_dataset_free(r->train_set);
        r->train_set = sub;
        n = o->limit;
    }
    if (o->val > 0) { /* hold out the last o->val training samples for validation */
        if (o->val >= n) return fprintf(stderr, "nabla: --val %d leaves no training data\n", o->val), false;
        nb_dataset *val = nb_dataset_subset(r->train_set, n - o->val, o->val);
        nb_dataset *rest = nb_dataset_subset(r->train_set, 0, n - o->val);
        nb_dataset_free(r->eval_set);
        nb_dataset_free(r->train_set);
        r->eval_set = val;
        r->train_set = rest;
    }
    if (!r->train_set || !r->eval_set) return cli_fail("splitting the data set"), false;
    nb_transforms tf = {.scale = true}, augment = tf; /* augmentation on training batches only */
    augment.pad = o->pad;
    augment.hflip = (float)o->hflip;
    augment.noise_std = (float)o->noise;
    r->train = nb_loader_new(r->train_set, (nb_loader_opts){.batch_size = o->batch, .shuffle = true,
                                                            .seed = (uint64_t)o->seed, .prefetch = o->prefetch,
                                                            .transforms = augment});
    r->eval = nb_loader_new(r->eval_set, (nb_loader_opts){.batch_size = 1000, .transforms = tf});
    if (!r->train || !r->eval) return cli_fail("making the data loaders"), false;
    return true;
}

static bool build_model(const train_opts *o, run *r) {
    r->spec = o->model_file ? spec_from_file(o->model_file) : spec_from_sizes(o->model, o->act, o->dropout, o->batchnorm);
    if (!r->spec) return false;
    nb_dataset_info info = nb_dataset_info_get(r->train_set);
    int64_t in = spec_input_features(r->spec);
    if (in > 0 && in != info.sample_numel) {
        fprintf(stderr, "nabla: the model takes %lld inputs but samples have %lld values\n",
                (long long)in, (long long)info.sample_numel);
        return false;
    }
    r->model = spec_build(r->spec);
    return r->model != NULL;
}

/* Runs one step on a batch inside a scope to measure what a step needs, then undoes it: the
 * RNG, the gradients and the buffers (BatchNorm's running statistics) are put back. */
static void report_memory(const train_opts *o, run *r) {
    nb_tensor *x, *y;
    int64_t params = nb_module_num_elements(r->model);
    int n_state = nb_optim_state_tensors(r->optim, NULL, NULL, 0);
    double state_bytes = 0;
    const char *names[4096];
    nb_tensor *ts[4096];
    if (n_state <= 4096) {
        nb_optim_state_tensors(r->optim, names, ts, n_state);
        for (int i = 0; i < n_state; i++) state_bytes += 4.0 * (double)nb_numel(ts[i]);
    }
    nb_loader_set_epoch(r->train, 0);
    size_t before = nb_alloc_stats_get().bytes_live;
    int nbuf = nb_module_num_buffers(r->model);
    nb_tensor *saved[64];
    if (nbuf <= 64 && nb_loader_next(r->train, &x, &y)) {
        nb_generator g = nb_rng_get_state();
        for (int i = 0; i < nbuf; i++) saved[i] = nb_persist(nb_module_buffer(r->model, i, NULL));
        nb_scope_begin();
        nb_tensor *l = batch_loss(o, r->model, x, y, NULL);
        if (l) nb_backward(l);
        nb_scope_end();
        nb_rng_set_state(g);
        for (int i = 0; i < nbuf; i++) {
            nb_copy(nb_module_buffer(r->model, i, NULL), saved[i]);
            nb_tensor_free(saved[i]);
        }
        for (int i = 0, n = nb_module_num_params(r->model); i < n; i++) nb_clear_grad(nb_module_param(r->model, i, NULL));
    }
    size_t step = nb_alloc_stats_get().bytes_live - before;
    nb_dataset_info a = nb_dataset_info_get(r->train_set), b = nb_dataset_info_get(r->eval_set);
    fprintf(stderr, "memory: parameters %.1f KiB (+ gradients %.1f KiB, optimiser state %.1f KiB), "
            "one step %.1f KiB, data %.1f MiB\n", 4.0 * (double)params / 1024, 4.0 * (double)params / 1024,
            state_bytes / 1024, (double)step / 1024, (double)(a.nbytes + b.nbytes) / (1024 * 1024));
}

static void free_run(run *r) {
    nb_sched_free(r->sched);
    nb_optim_free(r->optim);
    nb_module_free(r->model);
    nb_loader_free(r->train);
    nb_loader_free(r->eval);
    nb_dataset_free(r->train_set);
    nb_dataset_free(r->eval_set);
    nb_curves_free(r->curves);
    json_decref(r->spec);
}

/* mkdir -p: makes path and any missing parent folders. */
static bool make_dirs(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return errno = ENAMETOOLONG, false;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return false;
        *p = '/';
    }
    return mkdir(buf, 0777) == 0 || errno == EEXIST;
}

static const char *const train_usage =
    "usage: nabla train [options]\n\n"
    "Trains a classifier on an MNIST-format data set (Fashion-MNIST by default) and writes\n"
    "OUT/model.safetensors, OUT/checkpoint.safetensors, OUT/curves.csv and OUT/curves.svg.\n"
    "Example (the course's setup): nabla train --model 784-64-64-10 --act relu --epochs 10 \\\n"
    "    --batch 64 --optim sgd --lr 0.01 --momentum 0.9 --sched cosine";

static bool run_epochs(const train_opts *o, run *r) {
    for (; r->epoch < o->epochs; r->epoch++) {
        double t0 = now_seconds(), tr_loss, tr_acc, ev_loss, ev_acc;
        if (!train_epoch(o, r, &tr_loss, &tr_acc) || !evaluate(o, r, &ev_loss, &ev_acc)) return false;
        double lr = nb_optim_get_lr(r->optim, 0);
        nb_status s = !r->sched ? NB_OK : !strcmp(o->sched, "plateau") ? nb_sched_step_metric(r->sched, ev_loss)
                                                                        : nb_sched_step(r->sched);
        if (s != NB_OK) return cli_fail("schedule step"), false;
        nb_curves_add(r->curves, (float)tr_loss, (float)ev_loss, (float)tr_acc, (float)ev_acc);
        bool improved = ev_loss < r->best;
        r->best = improved ? ev_loss : r->best;
        r->bad_epochs = improved ? 0 : r->bad_epochs + 1;
        printf("epoch %lld/%d  train loss %.4f acc %.2f%%  %s loss %.4f acc %.2f%%  lr %.5g  %.1fs\n",
               (long long)r->epoch + 1, o->epochs, tr_loss, 100 * tr_acc, o->val > 0 ? "val" : "test",
               ev_loss, 100 * ev_acc, lr, now_seconds() - t0);
        fflush(stdout);
        r->epoch++;
        bool saved = save_outputs(o, r);
        r->epoch--;
        if (!saved) return false;
        if (o->early_stop > 0 && r->bad_epochs >= o->early_stop) {
            printf("early stop: %s loss has not improved for %d epochs (best %.4f)\n",
                   o->val > 0 ? "val" : "test", r->bad_epochs, r->best);
            r->epoch++;
            break;
        }
        if (o->stop_after > 0 && r->epoch + 1 >= o->stop_after) {
            printf("stopped after epoch %lld (--stop-after); continue with --resume %s\n",
                   (long long)r->epoch + 1, join(o->out, "checkpoint.safetensors"));
            r->epoch++;
            break;
        }
    }
    return true;
}

int cmd_train(int argc, char **argv) {
    train_opts o = {.model = "784-64-64-10", .act = "relu", .data = "/usr/share/datasets/fashion-mnist",
                    .optim = "sgd", .sched = "cosine", .out = "runs/train", .lr = 0.01, .momentum = 0.9,
                    .gamma = 0.1, .epochs = 10, .batch = 64, .threads = nb_get_num_threads(),
                    .step_size = 5};
    const cli_flag flags[] = {
        {"model", FLAG_STRING, &o.model, "layer sizes, input to output"},
        {"model-file", FLAG_STRING, &o.model_file, "a JSON model file instead of --model"},
        {"act", FLAG_STRING, &o.act, "activation between layers (relu, gelu, tanh, leaky_relu, ...)"},
        {"dropout", FLAG_FLOAT, &o.dropout, "dropout probability after each hidden activation"},
        {"batchnorm", FLAG_BOOL, &o.batchnorm, "BatchNorm1d after each hidden Linear"},
        {"data", FLAG_STRING, &o.data, "folder of MNIST-format IDX files"},
        {"limit", FLAG_INT, &o.limit, "use only the first N training samples (0: all)"},
        {"val", FLAG_INT, &o.val, "hold out the last N training samples for validation (0: use the test set)"},
        {"epochs", FLAG_INT, &o.epochs, "passes over the training set"},
        {"batch", FLAG_INT, &o.batch, "batch size"},
        {"optim", FLAG_STRING, &o.optim, "sgd, adam, adamw, rmsprop or adagrad"},
        {"lr", FLAG_FLOAT, &o.lr, "learning rate"},
        {"momentum", FLAG_FLOAT, &o.momentum, "momentum (sgd, rmsprop)"},
        {"nesterov", FLAG_BOOL, &o.nesterov, "Nesterov momentum (sgd)"},
        {"weight-decay", FLAG_FLOAT, &o.weight_decay, "weight decay"},
        {"sched", FLAG_STRING, &o.sched, "none, cosine, step, exp, plateau or onecycle (stepped per epoch)"},
        {"step-size", FLAG_INT, &o.step_size, "epochs between decays (--sched step)"},
        {"gamma", FLAG_FLOAT, &o.gamma, "decay factor (step, exp, plateau)"},
        {"warmup", FLAG_INT, &o.warmup, "epochs of linear warm-up before the schedule"},
        {"label-smoothing", FLAG_FLOAT, &o.label_smoothing, "cross-entropy label smoothing"},
        {"pad", FLAG_INT, &o.pad, "augment: pad by N pixels and crop back at a random offset"},
        {"hflip", FLAG_FLOAT, &o.hflip, "augment: mirror images with this probability"},
        {"noise", FLAG_FLOAT, &o.noise, "augment: add gaussian noise of this std (after scaling)"},
        {"clip-norm", FLAG_FLOAT, &o.clip_norm, "clip the gradients' global norm (0: off)"},
        {"early-stop", FLAG_INT, &o.early_stop, "stop after N epochs without a better evaluation loss (0: off)"},
        {"seed", FLAG_INT, &o.seed, "seed of initialisation, shuffling and dropout"},
        {"threads", FLAG_INT, &o.threads, "threads for kernels and BLAS (default: the cores this process may use)"},
        {"prefetch", FLAG_BOOL, &o.prefetch, "prepare the next batch on a background thread"},
        {"out", FLAG_STRING, &o.out, "output folder"},
        {"resume", FLAG_STRING, &o.resume, "continue from a checkpoint.safetensors"},
        {"stop-after", FLAG_INT, &o.stop_after,
         "stop once N epochs are done, as if interrupted; the schedule still spans --epochs (0: off)"},
    };
    const char *pos[1];
    int np = cli_parse(argc, argv, 2, flags, (int)(sizeof flags / sizeof *flags), train_usage, pos, 0);
    if (np < 0) return np == -2 ? 0 : 2;
    if (o.epochs < 1 || o.batch < 1 || o.threads < 1 || !(o.lr > 0) || o.warmup < 0 || o.limit < 0 ||
        o.val < 0 || o.early_stop < 0 || o.stop_after < 0) {
        fprintf(stderr, "nabla: --epochs, --batch and --threads must be >= 1, --lr > 0, and --warmup, "
                "--limit, --val, --early-stop, --stop-after >= 0\n");
        return 2;
    }
    struct stat out_stat;
    if (!make_dirs(o.out)) {
        fprintf(stderr, "nabla: cannot make the output folder %s: %s\n", o.out, strerror(errno));
        return 1;
    }
    if (stat(o.out, &out_stat) != 0 || !S_ISDIR(out_stat.st_mode)) { /* found before training */
        fprintf(stderr, "nabla: the output folder %s is not a folder\n", o.out);
        return 1;
    }
    nb_set_num_threads(o.threads);
    nb_manual_seed((uint64_t)o.seed);
    fprintf(stderr, "nabla %s  backend %s\n", NB_VERSION, nb_backend_info());
    run r = {.best = INFINITY, .curves = nb_curves_new()};
    bool ok = load_data(&o, &r) && build_model(&o, &r) && (r.optim = make_optim(&o, r.model)) != NULL;
    if (ok) r.sched = make_sched(&o, r.optim, &ok);
    if (ok && o.resume) {
        char *extra = NULL;
        ok = nb_checkpoint_load(o.resume, r.model, r.optim, r.sched, &r.epoch, &extra) == NB_OK;
        if (!ok) cli_fail("resuming");
        ok = ok && restore_progress(&o, &r, extra);
        free(extra);
        if (ok) fprintf(stderr, "resumed from %s after epoch %lld\n", o.resume, (long long)r.epoch);
    }
    if (ok) {
        nb_module_fprint(stderr, r.model);
        fprintf(stderr, "parameters: %lld\n", (long long)nb_module_num_elements(r.model));
        report_memory(&o, &r);
        if (r.epoch >= o.epochs) /* a finished run: OUT still gets its files */
            fprintf(stderr, "nabla: the checkpoint has done all %d epochs; nothing to train\n", o.epochs);
        ok = r.epoch >= o.epochs ? save_outputs(&o, &r) : run_epochs(&o, &r);
    }
    if (ok) printf("wrote %s, %s, %s\n", join(o.out, "model.safetensors"), join(o.out, "curves.svg"), join(o.out, "curves.csv"));
    free_run(&r);
    return ok ? 0 : 1;
}
