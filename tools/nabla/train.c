/*
 * train.c — `nabla train`: the course's training loop as a command, a shell over the library's
 * nb_fit (src/train/fit.c, which says what an epoch does, which files it writes and in what
 * order, how divergence, model selection and resuming work).  This file reads the flags, the
 * data (with a validation split for model selection) and the model, makes the optimiser and the
 * schedule, checks before the first step what would fail later (labels, input sizes, that the
 * files can be written), reports the memory a step needs, and prints: the per-epoch line (an
 * epoch callback), why the run ended, and the test figures of the weights it keeps.
 *
 * Model selection.  With --early-stop or --sched plateau, the run picks on a validation split
 * (the last tenth of the training samples unless --val says otherwise), and the test figures at
 * the end are those of the best epoch's weights.
 */
#include "cli.h"
#include "nabla/loss.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const char *model, *model_file, *act, *data, *optim, *sched, *out, *resume, *classes;
    double dropout, lr, momentum, weight_decay, gamma, label_smoothing, clip_norm, hflip, noise;
    int epochs, batch, seed, threads, step_size, warmup, early_stop, val, limit, stop_after, pad, patience;
    bool batchnorm, nesterov, prefetch;
    const char *init; /* --init: a weight scheme for the whole model, or NULL */
    double rotate, crop_scale; /* augmentation, read by load_data */
    bool grad_norms, detect_anomaly; /* nb_fit_opts' */
    const char *amp;      /* --amp: "none", "bf16" or "fp16" (nabla/amp.h) */
    bool qat;             /* --qat: quantization-aware training (nb_qat_prepare) */
    int bits;             /* --bits: the weights' bit width under --qat */
    const char *qat_from; /* --qat-from: float weights to start QAT from, or NULL */
    int qat_freeze_observers, qat_freeze_bn; /* epochs after which to freeze them (0: never) */
    bool sync_bn;         /* --sync-bn: BatchNorm statistics over every rank's share */
    int bucket_kb;        /* --bucket-kb: data parallel's gradient buckets (0: torch's 25 MiB) */
    const char *parallel; /* --parallel: "none", or "data", "tensor" or "pipeline" over the ranks mpirun starts */
    int micro_batches;          /* --micro-batches of --parallel pipeline (0: not given, 4) */
    const char *pipe_schedule;  /* --pipe-schedule: "gpipe" or "1f1b" (NULL: not given, gpipe) */
} train_opts;

typedef struct {
    nb_module *model;
    nb_optim *optim;
    nb_sched *sched;
    nb_dataset *train_set, *eval_set, *test_set; /* test_set: only beside a validation split */
    nb_loader *train, *eval, *test;
    json_t *spec, *classes; /* classes: names, or NULL */
    int val;                /* samples held out for validation (0: evaluation on the test set) */
    nb_fit *fit;
    int stop_after;         /* --stop-after, read by the epoch callback */
    nb_ddp *ddp;            /* --parallel data: the gradients' mean over ranks */
    nb_grad_scaler *scaler; /* --amp fp16: dynamic loss scaling */
    const train_opts *opts; /* read by the epoch callback (--qat-freeze-*) */
    /* --parallel tensor and pipeline: the whole model, which every epoch gathers and rank 0
     * writes to OUT (model is this rank's shard or stage, trained and checkpointed in
     * OUT/shard-R-of-N), and its file's metadata */
    nb_module *full;
    nb_pipe *pipe; /* --parallel pipeline: model's cut, its stage on this rank */
    const char *out;
    const void *meta;
} run;

/* Early stopping and the plateau schedule choose among epochs by the evaluation loss. */
static bool selecting(const train_opts *o) { return o->early_stop > 0 || !strcmp(o->sched, "plateau"); }

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
    else /* adagrad: the flag's choices leave no other */
        opt = nb_adagrad_new(n, params, (nb_adagrad_opts){.lr = o->lr, .weight_decay = o->weight_decay});
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
    else if (!strcmp(o->sched, "plateau")) s = nb_plateau_new(opt, (nb_plateau_opts){.factor = o->gamma, .patience = o->patience});
    else /* onecycle: the flag's choices leave no other */
        s = nb_onecyclelr_new(opt, (nb_onecycle_opts){.max_lr = o->lr, .total_steps = main_epochs});
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

/* dir/name in a buffer of its own (one of four in turn, so a call may use a few). */
static const char *join(const char *dir, const char *name) {
    static _Thread_local char buf[4][4096];
    static _Thread_local int next;
    char *p = buf[next++ % 4];
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

/* ---- setup */

/* Where `apt-get install dataset-fashion-mnist` puts the data set: the default of --data. */
static const char fashion_mnist_dir[] = "/usr/share/datasets/fashion-mnist";

void cli_data_failed(const char *dir) {
    cli_fail("reading the data set");
    struct stat st;
    if (!strcmp(dir, fashion_mnist_dir) && stat(dir, &st) != 0)
        fprintf(stderr, "nabla: %s is missing: apt-get install dataset-fashion-mnist, or give "
                "--data DIR\n", dir);
}

int64_t cli_output_width(nb_module *m, const nb_dataset *ds) {
    nb_dataset_info info = nb_dataset_info_get(ds);
    int64_t shape[NB_MAX_DIMS] = {1}, classes = -1;
    memcpy(shape + 1, info.sample_shape, sizeof(int64_t) * (size_t)info.sample_ndim);
    nb_generator g = nb_rng_get_state(); /* the probe leaves the run's random numbers as they were */
    bool forward_ok = false, training = nb_module_is_training(m);
    nb_module_train(m, false);
    nb_scope_begin();
    NB_NO_GRAD {
        nb_tensor *out = nb_module_forward(m, nb_zeros(info.sample_ndim + 1, shape));
        forward_ok = out != NULL;
        if (out && nb_ndim(out) == 2) classes = nb_size(out, 1);
    }
    nb_scope_end();
    nb_module_train(m, training);
    nb_rng_set_state(g);
    if (!forward_ok) return cli_fail("the model's forward pass"), -1;
    return classes > 0 ? classes : 0;
}

bool cli_check_labels(nb_module *m, const nb_dataset *ds) {
    int64_t classes = cli_output_width(m, ds);
    if (classes < 0) return false;
    if (classes > 0 && nb_dataset_check_labels(ds, classes) != NB_OK)
        return cli_fail("checking the labels"), false;
    return true;
}

static bool load_data(const train_opts *o, run *r) {
    r->train_set = nb_mnist_read(o->data, true);
    r->eval_set = r->train_set ? nb_mnist_read(o->data, false) : NULL;
    if (!r->eval_set) return cli_data_failed(o->data), false;
    if (nb_dataset_check_match(r->eval_set, r->train_set) != NB_OK)
        return cli_fail("checking the data set"), false;
    int64_t n = nb_dataset_len(r->train_set);
    if (o->limit > 0 && o->limit < n) {
        nb_dataset *sub = nb_dataset_subset(r->train_set, 0, o->limit);
        nb_dataset_free(r->train_set);
        r->train_set = sub;
        n = o->limit;
    }
    /* Hold out the last r->val training samples for validation; by default a tenth when epochs
     * are chosen by the evaluation loss, which must not be the test set's. */
    r->val = o->val >= 0 ? o->val : selecting(o) ? (int)(n / 10 > 0 ? n / 10 : 1) : 0;
    if (r->val > 0) {
        if (r->val >= n) return fprintf(stderr, "nabla: --val %d leaves no training data\n", r->val), false;
        if (o->val < 0)
            fprintf(stderr, "validation: the last %d training samples are held out for --early-stop and "
                    "--sched plateau to pick on, not the test set (--val N to choose, --val 0 for the test set)\n", r->val);
        nb_dataset *val = nb_dataset_subset(r->train_set, n - r->val, r->val);
        nb_dataset *rest = nb_dataset_subset(r->train_set, 0, n - r->val);
        nb_dataset_free(r->train_set);
        r->test_set = r->eval_set;
        r->eval_set = val;
        r->train_set = rest;
    }
    if (!r->train_set || !r->eval_set) return cli_fail("splitting the data set"), false;
    nb_transforms tf = {.scale = true}, augment = tf; /* augmentation on training batches only */
    augment.pad = o->pad;
    augment.hflip = (float)o->hflip;
    augment.noise_std = (float)o->noise;
    augment.rotate[0] = (float)-o->rotate; /* RandomRotation(d): uniform in [-d, d] */
    augment.rotate[1] = (float)o->rotate;
    if (o->crop_scale > 0) { /* RandomResizedCrop(size, scale=(s, 1)), torchvision's ratios */
        augment.crop_scale[0] = (float)o->crop_scale;
        augment.crop_scale[1] = 1.0f;
    }
    /* with --parallel data each rank takes its share of every batch (1 rank and 0 without); with
     * --parallel tensor and pipeline every rank takes the whole batch */
    int replicas = !strcmp(o->parallel, "data") ? nb_dist_size() : 1;
    r->train = nb_loader_new(r->train_set, (nb_loader_opts){.batch_size = o->batch / replicas, .shuffle = true,
                                                            .seed = (uint64_t)o->seed, .prefetch = o->prefetch,
                                                            .transforms = augment, .num_replicas = replicas,
                                                            .rank = replicas > 1 ? nb_dist_rank() : 0});
    r->eval = nb_loader_new(r->eval_set, (nb_loader_opts){.batch_size = 1000, .transforms = tf});
    r->test = r->test_set ? nb_loader_new(r->test_set, (nb_loader_opts){.batch_size = 1000, .transforms = tf}) : r->eval;
    if (!r->train || !r->eval || !r->test) return cli_fail("making the data loaders"), false;
    return true;
}

static bool build_model(const train_opts *o, run *r) {
    r->spec = o->model_file ? spec_from_file(o->model_file) : spec_from_sizes(o->model, o->act, o->dropout, o->batchnorm);
    if (!r->spec || (o->init && !spec_set_init(r->spec, o->init))) return false;
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

/* --qat: the float model's weights from --qat-from (torch's QAT fine-tunes a trained model),
 * then the QAT modules in place of its layers (nb_qat_prepare): weights at --bits, per channel,
 * activations at 8 bits. */
static bool prepare_qat(const train_opts *o, run *r) {
    if (o->qat_from && nb_module_load(r->model, o->qat_from) != NB_OK) return !cli_fail("--qat-from");
    if (nb_qat_prepare(r->model, &(nb_qat_opts){.weight_bits = o->bits}) != NB_OK) return !cli_fail("--qat");
    return true;
}

/* --qat-freeze-observers-epoch N, --qat-freeze-bn-epoch M: once `done` epochs are done, the
 * observers' qparams (nb_fake_quantize_enable_observer) and the BatchNorm statistics
 * (nb_qat_freeze_bn_stats, a model without ConvBn2d has none to freeze) stop moving. */
static void qat_freeze(const train_opts *o, nb_module *m, int64_t done) {
    if (o->qat_freeze_observers > 0 && done >= o->qat_freeze_observers) nb_fake_quantize_enable_observer(m, false);
    if (o->qat_freeze_bn > 0 && done >= o->qat_freeze_bn && nb_qat_freeze_bn_stats(m) != NB_OK) nb_error_clear();
}

/* The memory a run needs (nb_fit_measure_memory) and the data's. */
static void report_memory(const run *r) {
    nb_fit_memory m;
    if (nb_fit_measure_memory(r->fit, &m) != NB_OK || nb_dist_rank() != 0) return;
    nb_dataset_info a = nb_dataset_info_get(r->train_set), b = nb_dataset_info_get(r->eval_set);
    fprintf(stderr, "memory: parameters %.1f KiB (+ gradients %.1f KiB, optimiser state %.1f KiB), "
            "one step %.1f KiB, data %.1f MiB\n", (double)m.parameters / 1024, (double)m.parameters / 1024,
            (double)m.optim_state / 1024, (double)m.step / 1024, (double)(a.nbytes + b.nbytes) / (1024 * 1024));
}

static void free_run(run *r) {
    nb_fit_free(r->fit);
    nb_grad_scaler_free(r->scaler);
    nb_module_free(r->full);
    nb_pipe_free(r->pipe);
    nb_ddp_free(r->ddp);
    nb_sched_free(r->sched);
    nb_optim_free(r->optim);
    nb_module_free(r->model);
    nb_loader_free(r->train);
    nb_loader_free(r->eval);
    if (r->test != r->eval) nb_loader_free(r->test);
    nb_dataset_free(r->train_set);
    nb_dataset_free(r->eval_set);
    nb_dataset_free(r->test_set);
    json_decref(r->classes);
    json_decref(r->spec);
}

/* Class names to record with the weights: --classes fashion|digits|none|NAME,NAME,...; without
 * it, Fashion-MNIST's names when the data folder's path says "fashion", digits when it says
 * "mnist".  False after a message when the count does not match the data's classes. */
static bool choose_classes(const train_opts *o, run *r) {
    static const char *const fashion = "T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot";
    static const char *const digits = "zero,one,two,three,four,five,six,seven,eight,nine";
    char lower[4096];
    size_t i = 0;
    for (; o->data[i] && i + 1 < sizeof lower; i++) lower[i] = (char)tolower((unsigned char)o->data[i]);
    lower[i] = '\0';
    const char *names = o->classes ? o->classes : strstr(lower, "fashion") ? fashion : strstr(lower, "mnist") ? digits : "none";
    if (!strcmp(names, "fashion")) names = fashion;
    else if (!strcmp(names, "digits")) names = digits;
    if (!strcmp(names, "none")) return true;
    r->classes = json_array();
    for (const char *p = names; *p;) {
        size_t n = strcspn(p, ",");
        json_array_append_new(r->classes, json_stringn(p, n));
        p += n + (p[n] == ',');
    }
    int32_t want = nb_dataset_info_get(r->train_set).num_classes;
    if ((int32_t)json_array_size(r->classes) == want) return true;
    if (!o->classes) return json_decref(r->classes), r->classes = NULL, true; /* a guess that does not fit */
    fprintf(stderr, "nabla: --classes names %zu classes, the data has %d\n", json_array_size(r->classes), want);
    return false;
}

static const char *const train_usage =
    "usage: nabla train [options]\n\n"
    "Trains a classifier on an MNIST-format data set (Fashion-MNIST by default) and writes\n"
    "OUT/model.safetensors, OUT/checkpoint.safetensors, OUT/curves.csv and OUT/curves.svg.\n"
    "Example (the course's setup): nabla train --model 784-64-64-10 --act relu --epochs 10 \\\n"
    "    --batch 64 --optim sgd --lr 0.01 --momentum 0.9 --sched cosine\n\n"
    "Divergence: a batch loss that is not finite, or above 100 times the larger of ln(classes)\n"
    "(an untrained classifier's loss) and the first batch's loss, stops the run with exit status\n"
    "1, as does such an evaluation loss; nothing of that epoch is saved, OUT keeps the last good\n"
    "epoch's files.  Model selection: with --early-stop or --sched plateau, a tenth of the\n"
    "training samples is held out for validation (unless --val), OUT/model.safetensors holds the\n"
    "best epoch's weights, and the test figures at the end are those of the best epoch.\n"
    "Kills: the checkpoint is written before the model; --resume repairs a model file left one\n"
    "write behind, and `nabla eval` points it out.";

/* What model.safetensors records beside the weights: the model's spec, the epoch (filled in by
 * nb_fit), a sample's shape and the class names (when known). */
typedef struct {
    const char *keys[5], *values[5];
    char *spec, *input, *classes;
    char qat[64]; /* --qat: {"weight_bits": B, "act_bits": 8} */
    int n;
} model_meta;

static bool make_meta(const run *r, model_meta *m) {
    snprintf(m->qat, sizeof m->qat, "{\"weight_bits\": %d, \"act_bits\": 8}", r->opts->bits);
    json_t *shape = json_array();
    nb_dataset_info info = nb_dataset_info_get(r->train_set);
    for (int i = 0; i < info.sample_ndim; i++) json_array_append_new(shape, json_integer(info.sample_shape[i]));
    m->spec = json_dumps(r->spec, JSON_COMPACT | JSON_SORT_KEYS);
    m->input = json_dumps(shape, JSON_COMPACT);
    m->classes = r->classes ? json_dumps(r->classes, JSON_COMPACT) : NULL;
    json_decref(shape);
    const char *keys[] = {META_SPEC, META_EPOCH, META_INPUT, META_CLASSES}, *values[] = {m->spec, "", m->input, m->classes};
    m->n = m->classes ? 4 : 3;
    memcpy(m->keys, keys, sizeof keys);
    memcpy(m->values, values, sizeof values);
    if (r->opts->qat) m->keys[m->n] = META_QAT, m->values[m->n++] = m->qat;
    if (m->spec && m->input && (m->classes || !r->classes)) return true;
    fprintf(stderr, "nabla: out of memory\n");
    return false;
}

static void meta_free(model_meta *m) {
    free(m->spec);
    free(m->input);
    free(m->classes);
}

/* The per-epoch line; false (stop) once --stop-after epochs are done. */
static bool print_epoch(const nb_fit_epoch *e, void *user) {
    const run *r = user;
    printf("epoch %lld/%d  train loss %.4f acc %.2f%%  %s loss %.4f acc %.2f%%  lr %.5g  %.1fs\n",
           (long long)e->epoch, e->epochs, e->train_loss, 100 * e->train_acc, r->val > 0 ? "val" : "test",
           e->eval_loss, 100 * e->eval_acc, e->lr, e->seconds);
    fflush(stdout);
    if (r->opts->qat) qat_freeze(r->opts, r->model, e->epoch);
    return !(r->stop_after > 0 && e->epoch >= r->stop_after);
}

/* The epoch callback of --parallel tensor and pipeline: the whole model gathered from the shards
 * or stages, written by rank 0 to OUT/model.safetensors (what one process writes: the same
 * names, shapes and metadata), then the per-epoch line. */
static bool gather_epoch(const nb_fit_epoch *e, void *user) {
    run *r = user;
    const model_meta *m = r->meta;
    char epoch[32];
    const char *values[sizeof m->values / sizeof *m->values];
    memcpy(values, m->values, sizeof values);
    snprintf(epoch, sizeof epoch, "%lld", (long long)e->epoch);
    values[1] = epoch; /* META_EPOCH's place (make_meta) */
    if ((r->pipe ? nb_pipe_gather(r->pipe, r->full) : nb_tp_gather(r->model, r->full)) != NB_OK ||
        (nb_dist_rank() == 0 && nb_module_save(r->full, join(r->out, "model.safetensors"), m->n, m->keys, values) != NB_OK))
        return cli_fail(r->pipe ? "--parallel pipeline: writing the whole model" : "--parallel tensor: writing the whole model"), false;
    return print_epoch(e, user);
}

/* --parallel tensor and pipeline: the model as one process builds it, kept whole for the files
 * (the random numbers put back, so the run draws what one process draws). */
static bool keep_whole(run *r) {
    nb_generator g = nb_rng_get_state();
    r->full = spec_build(r->spec);
    nb_rng_set_state(g);
    return r->full != NULL;
}

/* --parallel tensor: the model kept whole, and cut into this rank's shard (nb_tp_shard:
 * Megatron's column- and row-parallel pairs). */
static bool shard_model(run *r) {
    int pairs = keep_whole(r) ? nb_tp_shard(r->model) : -1;
    if (pairs < 0) return cli_fail("--parallel tensor"), false;
    if (pairs == 0 && nb_dist_rank() == 0)
        fprintf(stderr, "nabla: --parallel tensor: no pair of Linear layers to split; every rank trains the whole model\n");
    return true;
}

/* OUT/shard-R-of-N, where rank R's nb_fit writes its shard's checkpoint and files; made here.
 * NULL after a message. */
static const char *shard_dir(const char *out) {
    static char dir[2048];
    snprintf(dir, sizeof dir, "%s/shard-%d-of-%d", out, nb_dist_rank(), nb_dist_size());
    if (make_dirs(dir)) return dir;
    fprintf(stderr, "nabla: cannot make %s: %s\n", dir, strerror(errno));
    return NULL;
}

/* --resume DIR/checkpoint.safetensors with --parallel tensor: this rank's DIR/shard-R-of-N/... */
static const char *shard_checkpoint(const char *resume) {
    static char path[4096];
    const char *slash = strrchr(resume, '/');
    int dir = slash ? (int)(slash - resume) : 1;
    snprintf(path, sizeof path, "%.*s/shard-%d-of-%d/checkpoint.safetensors", dir, slash ? resume : ".",
             nb_dist_rank(), nb_dist_size());
    return path;
}

/* The layers of a Sequential (its children "0", "1", ... in turn) that have parameters. */
static int weighted_layers(nb_module *seq) {
    int n = 0;
    char name[16];
    for (int i = 0;; i++) {
        snprintf(name, sizeof name, "%d", i);
        nb_module *layer = nb_module_child(seq, name);
        if (!layer) break;
        n += nb_module_num_elements(layer) > 0;
    }
    nb_error_clear(); /* the child after the last is not found */
    return n;
}

/* --parallel pipeline: the model kept whole, and cut into stages, this rank's kept (nb_pipe_new:
 * parameter counts balanced, each stage a layer with parameters, so every rank has an
 * optimiser).  Every batch must make the micro-batches: a last, smaller one of fewer rows than
 * --micro-batches is refused here, before training, as are fewer such layers than ranks. */
static bool cut_model(const train_opts *o, run *r) {
    int64_t n = nb_dataset_len(r->train_set), rest = n % o->batch;
    int m = o->micro_batches, weighted = weighted_layers(r->model);
    if (weighted > 0 && weighted < nb_dist_size()) {
        fprintf(stderr, "nabla: --parallel pipeline: %d stages need as many layers with parameters; the model "
                "has %d (a deeper --model)\n", nb_dist_size(), weighted);
        return false;
    }
    if (rest > 0 && rest < m) {
        fprintf(stderr, "nabla: --parallel pipeline: the last batch of the %lld training samples has %lld rows, "
                "fewer than the %d micro-batches (change --limit, --batch or --micro-batches)\n", (long long)n,
                (long long)rest, m);
        return false;
    }
    nb_pipe_opts po = {.micro_batches = m, .label_smoothing = (float)o->label_smoothing,
                       .schedule = o->pipe_schedule && !strcmp(o->pipe_schedule, "1f1b") ? NB_PIPE_1F1B : NB_PIPE_GPIPE};
    if (!keep_whole(r) || !(r->pipe = nb_pipe_new(r->model, &po))) return cli_fail("--parallel pipeline"), false;
    return true;
}

/* nb_fit_opts.step of --parallel pipeline: a training batch forward and backward through the
 * stages on the schedule (nb_pipe_step), an evaluation batch forward only (nb_pipe_eval); every
 * rank gets the figures. */
static nb_status pipe_step(void *pipe, nb_tensor *x, nb_tensor *y, bool train, double *loss, int64_t *correct) {
    if (!train) return nb_pipe_eval(pipe, x, y, loss, correct);
    nb_status st = nb_pipe_step(pipe, x, y, loss);
    *correct = nb_pipe_correct(pipe);
    return st;
}

/* Rank 0, at the end of --parallel pipeline: the bubble measured next to the theory's. */
static void print_bubble(const train_opts *o, const nb_pipe *p) {
    nb_pipe_stats s = nb_pipe_stats_get(p);
    if (s.steps == 0) return;
    printf("pipeline: %d stages, %d micro-batches, %s: bubble %.1f%% measured (%.1f%% op by op), "
           "%.1f%% in theory ((p - 1)/(m + p - 1)), over %lld steps\n", nb_dist_size(), o->micro_batches,
           o->pipe_schedule ? o->pipe_schedule : "gpipe", 100 * s.bubble, 100 * s.bubble_each_op, 100 * s.theory,
           (long long)s.steps);
}

/* nb_fit_opts.before_step of --parallel data: the gradients' mean over ranks into .grad */
static nb_status finish_ddp(void *ddp) { return nb_ddp_finish(ddp); }

/* --parallel data: joins the ranks mpirun started, each of which trains on its 1/N of every
 * batch with the gradients averaged over ranks during every backward pass (nb_ddp_sync_in_backward,
 * ended by nb_ddp_finish before the step), so the run takes the steps one process takes on the
 * whole batch.  Every rank runs the same
 * command; rank 0 alone prints and writes OUT.  A rank that fails exits without leaving the group,
 * which makes mpirun end every rank (none is left waiting in an allreduce).  False after a
 * message. */
static bool start_data_parallel(const train_opts *o) {
    if (nb_dist_init(NULL, NULL) != NB_OK) return cli_fail("--parallel data"), false;
    int size = nb_dist_size();
    if (o->batch % size) {
        fprintf(stderr, "nabla: --parallel data: --batch %d is not a multiple of the %d ranks\n", o->batch, size);
        return false;
    }
    if (selecting(o)) { /* the best epoch's weights go back through OUT, which rank 0 alone writes */
        fprintf(stderr, "nabla: --parallel data does not combine with --early-stop or --sched plateau yet\n");
        return false;
    }
    if (nb_dist_rank() != 0 && !freopen("/dev/null", "w", stdout)) return false;
    return true;
}

/* --sync-bn: the model's BatchNorm layers become SyncBatchNorm (nabla/dist.h), so that every
 * rank normalises with the whole batch's statistics, as one process on the whole batch does. */
static bool convert_sync_bn(const train_opts *o, const run *r) {
    if (!o->sync_bn) return true;
    int n = nb_module_convert_sync_batchnorm(r->model);
    if (n == 0) fprintf(stderr, "nabla: --sync-bn: the model has no BatchNorm (--batchnorm adds it)\n");
    return n > 0;
}

/* --parallel tensor and pipeline: joins the ranks mpirun started, each of which runs the whole
 * batch through its slices of the hidden layers (shard_model) or its stage of the layers
 * (cut_model); every rank runs the same command, rank 0 alone prints and writes
 * OUT/model.safetensors, and each rank its shard's checkpoint.  Clipping by global norm and
 * model selection are refused (the norm and the best weights would need the other ranks'
 * parts), as are more micro-batches than a batch has rows.  False after a message. */
static bool start_model_parallel(const train_opts *o) {
    if (nb_dist_init(NULL, NULL) != NB_OK)
        return cli_fail(!strcmp(o->parallel, "pipeline") ? "--parallel pipeline" : "--parallel tensor"), false;
    if (selecting(o) || o->clip_norm > 0) {
        fprintf(stderr, "nabla: --parallel %s does not combine with --early-stop, --sched plateau or --clip-norm yet\n",
                o->parallel);
        return false;
    }
    if (o->micro_batches > o->batch) {
        fprintf(stderr, "nabla: --parallel pipeline: --micro-batches %d is more than the --batch %d rows\n",
                o->micro_batches, o->batch);
        return false;
    }
    if (nb_dist_rank() != 0 && !freopen("/dev/null", "w", stdout)) return false;
    return true;
}

/* Trains with nb_fit and says how the run ended; with model selection, the test figures of the
 * weights kept.  False after a message when training failed or diverged (exit status 1). */
static bool train(const train_opts *o, run *r) {
    nb_status st = nb_fit_run(r->fit, &(nb_fit_callbacks){.on_epoch = r->full ? gather_epoch : print_epoch, .user = r});
    nb_fit_info info = nb_fit_info_get(r->fit);
    const char *split = r->val > 0 ? "val" : "test";
    if (info.end == NB_FIT_DIVERGED) {
        fprintf(stderr, "\nnabla: %s.\nnabla: nothing of epoch %lld was saved: the files in %s are left as "
                "they were. Try a lower --lr, or --clip-norm.\n", nb_error_message(), (long long)info.epoch + 1, o->out);
        return false;
    }
    if (info.end == NB_FIT_EARLY_STOP)
        printf("early stop: %s loss has not improved for %d epochs (best %.4f)\n", split, info.bad_epochs, info.best);
    if (info.end == NB_FIT_STOPPED)
        printf("stopped after epoch %lld (--stop-after); continue with --resume %s\n", (long long)info.epoch,
               join(o->out, "checkpoint.safetensors"));
    if (st != NB_OK) return !cli_say();
    if (!selecting(o) || info.end == NB_FIT_STOPPED) return true;
    if (info.restored)
        printf("restored the weights of epoch %lld, the best %s loss (%.4f)\n", (long long)info.model_epoch, split, info.best);
    nb_eval_result test;
    if (nb_evaluate(r->model, r->test, (float)o->label_smoothing, &test) != NB_OK) return !cli_say();
    printf("test loss %.4f acc %.2f%% (the weights of epoch %lld)\n", test.loss, 100 * test.accuracy,
           (long long)info.model_epoch);
    return true;
}

int cmd_train(int argc, char **argv) { return cli_train(argc, argv, NULL); }

int cli_train(int argc, char **argv, cli_train_ext *ext) {
    train_opts o = {.model = "784-64-64-10", .act = "relu", .data = "/usr/share/datasets/fashion-mnist",
                    .optim = "sgd", .sched = "cosine", .out = "runs/train", .lr = 0.01, .momentum = 0.9,
                    .gamma = 0.1, .epochs = 10, .batch = 64, .threads = nb_get_num_threads(),
                    .step_size = 5, .val = -1, .patience = 2, .parallel = "none", .amp = "none", .bits = 8};
    const cli_flag flags[] = {
        {"model", FLAG_STRING, &o.model, "layer sizes, input to output"},
        {"model-file", FLAG_STRING, &o.model_file, "a JSON model file instead of the layer sizes"},
        {"act", FLAG_STRING, &o.act, "activation between layers: relu, leaky_relu, gelu, silu (swish), elu, "
         "mish, softplus, sigmoid, tanh, tanh_linear, atan, softsign, step or identity"},
        {"dropout", FLAG_FLOAT, &o.dropout, "dropout probability after each hidden activation", "[0, 1)"},
        {"batchnorm", FLAG_BOOL, &o.batchnorm, "BatchNorm1d after each hidden Linear"},
        {"data", FLAG_STRING, &o.data, "folder of MNIST-format IDX files"},
        {"limit", FLAG_INT, &o.limit, "use only the first N training samples (0: all)", "[0, inf)"},
        {"val", FLAG_INT, &o.val, "hold out the last N training samples for validation; default: a tenth of "
         "them with --early-stop or --sched plateau, else 0 (0: evaluate on the test set)", "[0, inf)"},
        {"epochs", FLAG_INT, &o.epochs, "passes over the training set", "[1, inf)"},
        {"batch", FLAG_INT, &o.batch, "batch size", "[1, inf)"},
        {"optim", FLAG_STRING, &o.optim, "optimiser", NULL, "sgd adam adamw rmsprop adagrad"},
        {"lr", FLAG_FLOAT, &o.lr, "learning rate", "(0, inf)"},
        {"momentum", FLAG_FLOAT, &o.momentum, "momentum (sgd, rmsprop)", "[0, 1]"},
        {"nesterov", FLAG_BOOL, &o.nesterov, "Nesterov momentum (sgd)"},
        {"weight-decay", FLAG_FLOAT, &o.weight_decay, "weight decay", "[0, inf)"},
        {"sched", FLAG_STRING, &o.sched, "learning-rate schedule, stepped per epoch", NULL,
         "none cosine step exp plateau onecycle"},
        {"step-size", FLAG_INT, &o.step_size, "epochs between decays (--sched step)", "[1, inf)"},
        {"gamma", FLAG_FLOAT, &o.gamma, "decay factor (step, exp, plateau)", "(0, 1]"},
        {"warmup", FLAG_INT, &o.warmup, "epochs of linear warm-up before the schedule", "[0, inf)"},
        {"label-smoothing", FLAG_FLOAT, &o.label_smoothing, "cross-entropy label smoothing", "[0, 1]"},
        {"pad", FLAG_INT, &o.pad, "augment: pad by N pixels and crop back at a random offset", "[0, 1024]"},
        {"hflip", FLAG_FLOAT, &o.hflip, "augment: mirror images with this probability", "[0, 1]"},
        {"noise", FLAG_FLOAT, &o.noise, "augment: add gaussian noise of this std (after scaling)", "[0, inf)"},
        {"clip-norm", FLAG_FLOAT, &o.clip_norm, "clip the gradients' global norm (0: off)", "[0, inf)"},
        {"early-stop", FLAG_INT, &o.early_stop, "stop after N epochs without a better evaluation loss (0: off)", "[0, inf)"},
        {"seed", FLAG_INT, &o.seed, "seed of initialisation, shuffling and dropout"},
        {"threads", FLAG_INT, &o.threads, "threads for the kernels; the default is the cores this process may use",
         "[1, 256]"},
        {"prefetch", FLAG_BOOL, &o.prefetch, "prepare the next batch on a background thread"},
        {"out", FLAG_STRING, &o.out, "output folder"},
        {"resume", FLAG_STRING, &o.resume, "continue from a checkpoint.safetensors"},
        {"stop-after", FLAG_INT, &o.stop_after,
         "stop once N epochs are done, as if interrupted; the schedule still spans --epochs (0: off)", "[0, inf)"},
        {"init", FLAG_STRING, &o.init, "weights of Linear and Conv layers (biases 0); default: torch's own draws",
         NULL, "default xavier_uniform xavier_normal kaiming_uniform kaiming_normal"},
        {"rotate", FLAG_FLOAT, &o.rotate, "augment: rotate by a random angle in [-X, X] degrees (bilinear)", "[0, 180]"},
        {"crop-scale", FLAG_FLOAT, &o.crop_scale,
         "augment: random resized crop of area fraction [X, 1], aspect 3/4..4/3, back to full size (0: off)", "[0, 1]"},
        {"patience", FLAG_INT, &o.patience, "epochs without improvement before --sched plateau decays", "[0, inf)"},
        {"classes", FLAG_STRING, &o.classes, "class names kept with the weights for `nabla predict`: fashion, "
         "digits, none or NAME,NAME,...; default: from the --data path (fashion, else mnist: digits)"},
        {"grad-norms", FLAG_BOOL, &o.grad_norms, "write each parameter's mean gradient L2 norm per epoch "
         "to OUT/grad_norms.csv"},
        {"detect-anomaly", FLAG_BOOL, &o.detect_anomaly, "check every op's result and gradient for NaN and "
         "infinity; the first stops the run naming the op, the layer and the parameter (slow)"},
        {"parallel", FLAG_STRING, &o.parallel, "data: train over the ranks `mpirun -np N` starts, each on 1/N of "
         "every batch, the gradients averaged (same steps as one process; rank 0 prints and writes); tensor: "
         "each rank holds 1/N of each hidden layer's weights (Megatron's column- and row-parallel pairs), "
         "OUT/shard-R-of-N holds rank R's checkpoint, OUT/model.safetensors the whole model; pipeline: "
         "rank R holds the R-th of N stages of consecutive layers, each batch in --micro-batches on "
         "--pipe-schedule, files as tensor's", NULL, "none data tensor pipeline"},
        {"amp", FLAG_STRING, &o.amp, "mixed precision: matmul, linear and conv compute on bfloat16 or float16 "
         "values with float32 sums and float32 weights (torch.autocast); fp16 adds dynamic loss scaling "
         "(torch's GradScaler); evaluation stays float32", NULL, "none bf16 fp16"},
        {"qat", FLAG_BOOL, &o.qat, "quantization-aware training: Linear and Conv2d (Conv2d + BatchNorm2d: ConvBn2d) "
         "with fake-quantized weights (--bits, per channel) and outputs (8 bits); OUT/model.safetensors holds "
         "the QAT model (metadata nabla.qat)"},
        {"bits", FLAG_INT, &o.bits, "--qat: the weights' bit width", "[2, 8]"},
        {"qat-from", FLAG_STRING, &o.qat_from, "--qat: start from these float weights (a `nabla train` model file)"},
        {"qat-freeze-observers-epoch", FLAG_INT, &o.qat_freeze_observers,
         "--qat: freeze the quantizers' scales and zero points after N epochs (0: never)", "[0, inf)"},
        {"qat-freeze-bn-epoch", FLAG_INT, &o.qat_freeze_bn,
         "--qat: freeze the BatchNorm statistics of ConvBn2d layers after N epochs (0: never)", "[0, inf)"},
        {"sync-bn", FLAG_BOOL, &o.sync_bn, "with --parallel data: BatchNorm normalises with the statistics of the "
         "whole batch over every rank (torch's SyncBatchNorm), so the run is one process's; default: each rank's own"},
        {"bucket-kb", FLAG_INT, &o.bucket_kb, "with --parallel data: KiB of gradients per allreduce, started during "
         "backward as each bucket fills (0: torch's 25 MiB; docs/SCALING.md says how to choose)", "[0, 4194304]"},
        {"micro-batches", FLAG_INT, &o.micro_batches, "with --parallel pipeline: micro-batches per batch (default 4); "
         "the bubble is (stages - 1)/(M + stages - 1)", "[1, inf)"},
        {"pipe-schedule", FLAG_STRING, &o.pipe_schedule, "with --parallel pipeline: gpipe (every forward, then "
         "every backward) or 1f1b (one forward, one backward in turn: fewer activations kept); default gpipe",
         NULL, "gpipe 1f1b"},
    };
    /* with ext (nabla distill): its rows after train's, the student in the place of --model and
     * --model-file (the table's first two rows), and its default output folder */
    cli_flag all[sizeof flags / sizeof *flags + CLI_EXT_MAX_FLAGS];
    int n_all = (int)(sizeof flags / sizeof *flags);
    memcpy(all, flags, sizeof flags);
    if (ext) {
        o.out = ext->out;
        all[0].name = ext->model_flag;
        all[1].name = ext->model_file_flag;
        memcpy(all + n_all, ext->flags, sizeof *all * (size_t)ext->n_flags);
        n_all += ext->n_flags;
    }
    const char *pos[1];
    int np = cli_parse(argc, argv, 2, all, n_all, ext ? ext->usage : train_usage, pos, 0);
    if (np < 0) return np == -2 ? 0 : 2;
    bool data_parallel = !strcmp(o.parallel, "data"), pipeline = !strcmp(o.parallel, "pipeline");
    bool tensor_parallel = !strcmp(o.parallel, "tensor"), model_parallel = tensor_parallel || pipeline;
    if (o.sync_bn && !data_parallel) {
        fprintf(stderr, "nabla: --sync-bn needs --parallel data\n");
        return 2;
    }
    if ((o.micro_batches || o.pipe_schedule) && !pipeline) {
        fprintf(stderr, "nabla: --micro-batches and --pipe-schedule need --parallel pipeline\n");
        return 2;
    }
    if (pipeline && !o.micro_batches) o.micro_batches = 4;
    if (data_parallel && !start_data_parallel(&o)) return 1;
    if (model_parallel && !start_model_parallel(&o)) return 1;
    bool rank0 = nb_dist_rank() == 0;
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
    if (rank0) fprintf(stderr, "nabla %s  backend %s\n", NB_VERSION, nb_backend_info());
    run r = {.stop_after = o.stop_after, .opts = &o, .out = o.out};
    if ((o.qat_from || o.qat_freeze_observers || o.qat_freeze_bn) && !o.qat) {
        fprintf(stderr, "nabla: --qat-from and --qat-freeze-* need --qat\n");
        return 2;
    }
    const char *fit_out = rank0 ? o.out : NULL;
    bool ok = (!model_parallel || (fit_out = shard_dir(o.out))) && load_data(&o, &r) && choose_classes(&o, &r) &&
              build_model(&o, &r) && (!o.qat || prepare_qat(&o, &r)) && (!tensor_parallel || shard_model(&r)) &&
              cli_check_labels(r.model, r.train_set) && cli_check_labels(r.model, r.eval_set) &&
              (!pipeline || cut_model(&o, &r)) && /* after the checks, which run the whole model */
              convert_sync_bn(&o, &r) && (!data_parallel || ((r.ddp = nb_ddp_new(r.model, (size_t)o.bucket_kb << 10)) &&
                                                              nb_ddp_sync_in_backward(r.ddp) == NB_OK) ||
               (cli_fail("--parallel data"), false)) &&
              (r.optim = make_optim(&o, r.model)) != NULL;
    if (ok) r.sched = make_sched(&o, r.optim, &ok);
    bool fp16 = !strcmp(o.amp, "fp16");
    if (ok && fp16 && !(r.scaler = nb_grad_scaler_new(NULL))) ok = !cli_fail("--amp fp16");
    ok = ok && (!ext || ext->prepare(ext, r.model, r.train_set, r.test));
    model_meta meta = {0};
    ok = ok && make_meta(&r, &meta);
    r.meta = &meta;
    if (ok) {
        nb_fit_opts fo = {.epochs = o.epochs, .label_smoothing = (float)o.label_smoothing,
                          .clip_norm = (float)o.clip_norm, .early_stop = o.early_stop, .select_best = selecting(&o),
                          .sched_on_loss = !strcmp(o.sched, "plateau"),
                          .num_classes = nb_dataset_info_get(r.train_set).num_classes,
                          .log = rank0 ? stderr : NULL, .out = fit_out,
                          .title = ext ? ext->title : "nabla train", .n_meta = meta.n, .meta_keys = meta.keys,
                          .meta_values = meta.values, .seed = o.seed, .grad_norms = o.grad_norms,
                          .detect_anomaly = o.detect_anomaly, .teacher = ext ? ext->teacher : NULL,
                          .temperature = ext ? (float)ext->temperature : 0, .alpha = ext ? (float)ext->alpha : 0,
                          .before_step = r.ddp ? finish_ddp : NULL, .before_step_ctx = r.ddp,
                          .autocast = fp16 ? NB_F16 : !strcmp(o.amp, "bf16") ? NB_BF16 : NB_F32,
                          .scaler = r.scaler, .step = r.pipe ? pipe_step : NULL, .step_ctx = r.pipe};
        r.fit = nb_fit_new(r.model, r.optim, r.sched, r.train, r.eval, &fo);
        if (!r.fit) ok = !cli_say(); /* a save that would fail is found here, before training */
    }
    if (ok && o.resume && nb_fit_resume(r.fit, model_parallel ? shard_checkpoint(o.resume) : o.resume) != NB_OK)
        ok = !cli_say();
    if (ok && o.qat) qat_freeze(&o, r.model, nb_fit_info_get(r.fit).epoch); /* a resumed run's */
    if (ok) {
        if (rank0) nb_module_fprint(stderr, r.model);
        if (rank0) fprintf(stderr, "parameters: %lld\n", (long long)nb_module_num_elements(r.model));
        report_memory(&r); /* every rank: its measuring pass runs backward, whose allreduces pair up */
        if (r.pipe) nb_pipe_stats_reset(r.pipe); /* the bubble of the training steps alone */
        if (nb_fit_info_get(r.fit).epoch >= o.epochs) /* a finished run: OUT still gets its files */
            fprintf(stderr, "nabla: the checkpoint has done all %d epochs; nothing to train\n", o.epochs);
        ok = train(&o, &r);
    }
    if (ok && r.pipe && rank0) print_bubble(&o, r.pipe);
    if (ok) printf("wrote %s, %s, %s\n", join(o.out, "model.safetensors"), join(fit_out, "curves.svg"), join(fit_out, "curves.csv"));
    meta_free(&meta);
    free_run(&r);
    if ((data_parallel || model_parallel) && ok) nb_dist_finalize(); /* see start_data_parallel */
    return ok ? 0 : 1;
}
