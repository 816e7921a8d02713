/*
 * finetune.c — `nabla finetune`: transfer learning and LoRA as a command, over the library's
 * calls (nabla/nn.h's "transfer learning" recipe, nabla/lora.h) and its training loop nb_fit.
 *
 *   1. the pretrained model: built from --model-file, or from the description `nabla train`
 *      keeps in the weights' metadata, and loaded from --from (nabla's or torch's safetensors);
 *   2. --cut NAME keeps the layers up to NAME and appends a new Linear head sized to the
 *      classes of the data (--classes 5-9 keeps those and relabels them 0-4);
 *   3. the head is the model's last layer, the backbone all before it: --freeze trains the head
 *      alone; the backbone is a second group of the optimiser at --lr-backbone, so
 *      --unfreeze-after E lets it train from epoch E + 1 on without changing anything else;
 *   4. --lora-rank R puts LoRA adapters on --lora-targets (by default every Linear and Conv2d
 *      of the backbone) and trains them with the head, the rest frozen; at the end
 *      OUT/adapter_model.safetensors holds the adapters alone, and the model is merged.
 * OUT/model.safetensors holds the fine-tuned model with its description, so `nabla eval` and
 * `nabla predict` read it as a trained one; nb_fit writes the curves and the checkpoint.
 */
#include "cli.h"
#include "nabla/loss.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *from, *model_file, *cut, *classes, *data, *out, *optim, *sched, *lora_targets;
    double lr, lr_backbone, momentum, lora_alpha, lora_dropout;
    int epochs, batch, seed, threads, limit, unfreeze_after, lora_rank;
    bool freeze;
} finetune_opts;

typedef struct {
    nb_module *model, *head;
    json_t *spec;
    nb_dataset *train_set, *test_set;
    nb_loader *train, *test;
    nb_optim *optim;
    nb_sched *sched;
    nb_fit *fit;
    int unfreeze_after;
    double lr_backbone;
} tune;

/* ---- the model */

/* The description of the pretrained model: --model-file, or the weights' own. */
static json_t *pretrained_spec(const finetune_opts *o) {
    if (o->model_file) return spec_from_file(o->model_file);
    nb_safetensors *st = nb_safetensors_open(o->from);
    if (!st) return cli_fail("reading the weights"), NULL;
    const char *text = nb_safetensors_meta(st, META_SPEC);
    json_error_t err;
    json_t *spec = text ? json_loads(text, 0, &err) : NULL;
    nb_safetensors_close(st);
    if (!json_is_object(spec))
        fprintf(stderr, "nabla: %s has no model description ('nabla.model'): give --model-file\n", o->from);
    return spec;
}

/* The width of the backbone's output, from one forward pass of a zero sample; -1 after a
 * message when it is not [1, F]. */
static int64_t features_of(nb_module *m, const nb_dataset *ds, const char *cut) {
    nb_dataset_info info = nb_dataset_info_get(ds);
    int64_t shape[NB_MAX_DIMS] = {1}, f = -1;
    memcpy(shape + 1, info.sample_shape, sizeof(int64_t) * (size_t)info.sample_ndim);
    nb_scope_begin();
    NB_NO_GRAD {
        nb_tensor *y = nb_module_forward(m, nb_zeros(info.sample_ndim + 1, shape));
        if (!y) cli_fail("the backbone's forward pass");
        else if (nb_ndim(y) != 2) fprintf(stderr, "nabla: --cut %s: the layer gives %d-d outputs; cut after a "
                                          "Flatten or a Linear\n", cut, nb_ndim(y));
        else f = nb_size(y, 1);
    }
    nb_scope_end();
    return f;
}

/* --cut NAME: the layers up to NAME, then Linear(features, classes), in the model and in its
 * description alike. */
static bool cut_and_attach(const finetune_opts *o, tune *t) {
    if (nb_sequential_cut(t->model, o->cut) != NB_OK) return cli_fail("--cut"), false;
    int64_t f = features_of(t->model, t->train_set, o->cut);
    int32_t classes = nb_dataset_info_get(t->train_set).num_classes;
    if (f < 1) return false;
    if (nb_sequential_append(t->model, nb_linear_new(f, classes, true)) != NB_OK) return cli_fail("the new head"), false;
    json_t *layers = json_object_get(t->spec, "layers");
    size_t keep = (size_t)atoi(o->cut) + 1;
    while (json_array_size(layers) > keep) json_array_remove(layers, keep);
    json_array_append_new(layers, json_pack("{s:s,s:I,s:I}", "type", "linear", "in", (json_int_t)f, "out",
                                            (json_int_t)classes));
    fprintf(stderr, "cut after layer %s (%lld features); new head Linear(%lld, %d)\n", o->cut, (long long)f,
            (long long)f, classes);
    return true;
}

static bool build_model(const finetune_opts *o, tune *t) {
    t->spec = pretrained_spec(o);
    if (!t->spec || !(t->model = spec_build(t->spec))) return false;
    if (nb_module_load(t->model, o->from) != NB_OK) return cli_fail("loading the pretrained weights"), false;
    if (o->cut && !cut_and_attach(o, t)) return false;
    char last[16];
    snprintf(last, sizeof last, "%d", (int)json_array_size(json_object_get(t->spec, "layers")) - 1);
    t->head = nb_module_child(t->model, last);
    return t->head != NULL && cli_check_labels(t->model, t->train_set);
}

/* --lora-targets, or every Linear and Conv2d before the head. */
static bool apply_lora(const finetune_opts *o, tune *t) {
    char *list = strdup(o->lora_targets ? o->lora_targets : ""), layer[256][16];
    const char *targets[256];
    int n = 0;
    for (char *save = NULL, *p = strtok_r(list, ",", &save); p && n < 256; p = strtok_r(NULL, ",", &save))
        targets[n++] = p;
    for (int i = 0; !o->lora_targets && n < 256; i++) {
        snprintf(layer[n], sizeof layer[n], "%d", i);
        const nb_module *m = nb_module_child(t->model, layer[n]);
        if (m == t->head) break;
        if (!strcmp(nb_module_type(m), "Linear") || !strcmp(nb_module_type(m), "Conv2d")) targets[n] = layer[n], n++;
    }
    nb_status st = nb_lora_apply(t->model, n, targets, (nb_lora_opts){.rank = o->lora_rank, .alpha = (float)o->lora_alpha,
                                                                        .dropout = (float)o->lora_dropout});
    free(list);
    if (st != NB_OK) return cli_fail("--lora-targets"), false;
    nb_module_freeze(t->head, false);
    return true;
}

/* ---- data, optimiser, schedule */

static bool load_data(const finetune_opts *o, tune *t) {
    nb_dataset *train = nb_mnist_read(o->data, true), *test = train ? nb_mnist_read(o->data, false) : NULL;
    if (!test) return nb_dataset_free(train), cli_data_failed(o->data), false;
    int first = 0, last = 0, end = 0;
    if (o->classes && (sscanf(o->classes, "%d-%d%n", &first, &last, &end) != 2 || o->classes[end])) {
        fprintf(stderr, "nabla: --classes '%s': expected a range like 5-9\n", o->classes);
        return nb_dataset_free(train), nb_dataset_free(test), false;
    }
    t->train_set = o->classes ? nb_dataset_select_classes(train, first, last) : train;
    t->test_set = o->classes ? nb_dataset_select_classes(test, first, last) : test;
    if (o->classes) nb_dataset_free(train), nb_dataset_free(test);
    if (!t->train_set || !t->test_set) return cli_fail("--classes"), false;
    if (o->limit > 0 && o->limit < nb_dataset_len(t->train_set)) {
        nb_dataset *sub = nb_dataset_subset(t->train_set, 0, o->limit);
        nb_dataset_free(t->train_set);
        if (!(t->train_set = sub)) return cli_fail("--limit"), false;
    }
    nb_transforms tf = {.scale = true};
    t->train = nb_loader_new(t->train_set, (nb_loader_opts){.batch_size = o->batch, .shuffle = true,
                                                            .seed = (uint64_t)o->seed, .transforms = tf});
    t->test = nb_loader_new(t->test_set, (nb_loader_opts){.batch_size = 1000, .transforms = tf});
    if (!t->train || !t->test) return cli_fail("making the data loaders"), false;
    return true;
}

/* Group 0: what trains from the start at --lr (the head, and LoRA's adapters); group 1: the rest
 * of the backbone at --lr-backbone, frozen or not (a frozen parameter is skipped). */
static bool make_optim(const finetune_opts *o, tune *t) {
    nb_tensor *all[1024], *head[1024];
    int n = nb_module_parameters(t->model, all, 1024);
    int nh = o->lora_rank > 0 ? nb_module_trainable_parameters(t->model, head, 1024)
                              : nb_module_parameters(t->head, head, 1024);
    if (n > 1024) return fprintf(stderr, "nabla: the model has more than 1024 parameter tensors\n"), false;
    nb_tensor *rest[1024];
    int nr = 0;
    for (int i = 0; i < n && o->lora_rank == 0; i++) {
        bool in_head = false;
        for (int j = 0; j < nh; j++) in_head = in_head || all[i] == head[j];
        if (!in_head) rest[nr++] = all[i];
    }
    t->optim = !strcmp(o->optim, "adam") ? nb_adam_new(nh, head, (nb_adam_opts){.lr = o->lr})
                                         : nb_sgd_new(nh, head, (nb_sgd_opts){.lr = o->lr, .momentum = o->momentum});
    double lrb = o->lr_backbone > 0 ? o->lr_backbone : o->lr;
    if (t->optim && nr > 0 && nb_optim_add_group(t->optim, nr, rest, &(nb_group_opts){.lr = lrb}) != NB_OK)
        return cli_fail("the backbone's group"), false;
    if (!t->optim) return cli_fail("optimiser"), false;
    t->lr_backbone = lrb;
    if (!strcmp(o->sched, "cosine") && !(t->sched = nb_cosinelr_new(t->optim, o->epochs, 0.0)))
        return cli_fail("schedule"), false;
    return true;
}

/* ---- training and files */

static bool print_epoch(const nb_fit_epoch *e, void *user) {
    tune *t = user;
    printf("epoch %lld/%d  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  lr %.5g  %.1fs\n",
           (long long)e->epoch, e->epochs, e->train_loss, 100 * e->train_acc, e->eval_loss, 100 * e->eval_acc,
           e->lr, e->seconds);
    if (t->unfreeze_after > 0 && e->epoch == t->unfreeze_after) {
        nb_module_freeze(t->model, false);
        printf("unfroze the backbone: it trains from epoch %lld on at --lr-backbone %g times the schedule's factor\n",
               (long long)e->epoch + 1, t->lr_backbone);
    }
    fflush(stdout);
    return true;
}

static const char *join(const char *dir, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

/* After a LoRA run: the adapters alone, then the merged plain model with its description. */
static bool save_lora(const finetune_opts *o, tune *t, int n_meta, const char *const *keys, const char *const *values) {
    char path[4200];
    if (nb_lora_save(t->model, join(o->out, "adapter_model.safetensors", path, sizeof path)) != NB_OK ||
        nb_lora_unload(t->model) != NB_OK ||
        nb_module_save(t->model, join(o->out, "model.safetensors", path, sizeof path), n_meta, keys, values) != NB_OK)
        return !cli_say();
    printf("wrote %s/adapter_model.safetensors (the adapters) and %s/model.safetensors (merged)\n", o->out, o->out);
    return true;
}

static bool train(const finetune_opts *o, tune *t) {
    char *spec = json_dumps(t->spec, JSON_COMPACT | JSON_SORT_KEYS), epochs[32], input[256];
    nb_dataset_info info = nb_dataset_info_get(t->train_set);
    int len = snprintf(input, sizeof input, "[");
    for (int i = 0; i < info.sample_ndim; i++)
        len += snprintf(input + len, sizeof input - (size_t)len, "%s%lld", i ? "," : "", (long long)info.sample_shape[i]);
    snprintf(input + len, sizeof input - (size_t)len, "]");
    snprintf(epochs, sizeof epochs, "%d", o->epochs);
    const char *keys[] = {META_SPEC, META_EPOCH, META_INPUT}, *values[] = {spec, epochs, input};
    nb_fit_opts fo = {.epochs = o->epochs, .log = stderr, .out = o->out, .title = "nabla finetune", .n_meta = 3,
                      .meta_keys = keys, .meta_values = values, .seed = o->seed,
                      .num_classes = info.num_classes};
    bool ok = spec && (t->fit = nb_fit_new(t->model, t->optim, t->sched, t->train, t->test, &fo)) != NULL;
    ok = ok && nb_fit_run(t->fit, &(nb_fit_callbacks){.on_epoch = print_epoch, .user = t}) == NB_OK;
    if (!ok) cli_say();
    if (ok && o->lora_rank > 0) ok = save_lora(o, t, 3, keys, values);
    nb_eval_result r;
    if (ok && (ok = nb_evaluate(t->model, t->test, 0, &r) == NB_OK))
        printf("test loss %.4f acc %.2f%% on %lld samples\n", r.loss, 100 * r.accuracy, (long long)r.samples);
    free(spec);
    return ok;
}

static void free_tune(tune *t) {
    nb_fit_free(t->fit);
    nb_sched_free(t->sched);
    nb_optim_free(t->optim);
    nb_module_free(t->model);
    nb_loader_free(t->train);
    nb_loader_free(t->test);
    nb_dataset_free(t->train_set);
    nb_dataset_free(t->test_set);
    json_decref(t->spec);
}

static const char *const finetune_usage =
    "usage: nabla finetune --from WEIGHTS [options]\n\n"
    "Fine-tunes a pretrained classifier on an MNIST-format data set: the model of WEIGHTS\n"
    "(described by --model-file, or by the weights when `nabla train` wrote them), cut after\n"
    "layer --cut with a new Linear head for the data's classes; --freeze trains the head alone,\n"
    "--unfreeze-after E then the whole model, the backbone at --lr-backbone; --lora-rank R trains\n"
    "LoRA adapters instead (OUT/adapter_model.safetensors) and merges them.  Writes\n"
    "OUT/model.safetensors (read by `nabla eval`), the curves and a checkpoint.\n"
    "Example (transfer from classes 0-4 to 5-9 with 1000 samples):\n"
    "  nabla finetune --from runs/a/model.safetensors --cut 3 --freeze --classes 5-9 --limit 1000";

int cmd_finetune(int argc, char **argv) {
    finetune_opts o = {.data = "/usr/share/datasets/fashion-mnist", .out = "runs/finetune", .optim = "sgd",
                       .sched = "cosine", .lr = 0.01, .momentum = 0.9, .epochs = 5, .batch = 64,
                       .threads = nb_get_num_threads(), .lora_alpha = 8};
    const cli_flag flags[] = {
        {"from", FLAG_STRING, &o.from, "the pretrained weights (safetensors: nabla's or torch's)"},
        {"model-file", FLAG_STRING, &o.model_file, "a JSON model file describing them (default: their own description)"},
        {"cut", FLAG_STRING, &o.cut, "keep the layers up to this one and add a new head (default: keep all)"},
        {"freeze", FLAG_BOOL, &o.freeze, "train the head alone (the backbone frozen)"},
        {"unfreeze-after", FLAG_INT, &o.unfreeze_after, "with --freeze: unfreeze the backbone after E epochs (0: never)",
         "[0, inf)"},
        {"lr", FLAG_FLOAT, &o.lr, "learning rate of the head (and of LoRA's adapters)", "(0, inf)"},
        {"lr-backbone", FLAG_FLOAT, &o.lr_backbone, "learning rate of the backbone (0: --lr)", "[0, inf)"},
        {"classes", FLAG_STRING, &o.classes, "keep the samples of classes A-B, relabelled 0 to B-A (e.g. 5-9)"},
        {"limit", FLAG_INT, &o.limit, "use only the first N training samples (0: all)", "[0, inf)"},
        {"data", FLAG_STRING, &o.data, "folder of MNIST-format IDX files"},
        {"epochs", FLAG_INT, &o.epochs, "passes over the training set", "[1, inf)"},
        {"batch", FLAG_INT, &o.batch, "batch size", "[1, inf)"},
        {"optim", FLAG_STRING, &o.optim, "optimiser", NULL, "sgd adam"},
        {"momentum", FLAG_FLOAT, &o.momentum, "momentum (sgd)", "[0, 1]"},
        {"sched", FLAG_STRING, &o.sched, "learning-rate schedule, stepped per epoch", NULL, "none cosine"},
        {"seed", FLAG_INT, &o.seed, "seed of the new head, the adapters and shuffling"},
        {"threads", FLAG_INT, &o.threads, "threads for the kernels", "[1, 256]"},
        {"out", FLAG_STRING, &o.out, "output folder"},
        {"lora-rank", FLAG_INT, &o.lora_rank, "LoRA adapters of this rank instead of training the backbone (0: off)",
         "[0, inf)"},
        {"lora-alpha", FLAG_FLOAT, &o.lora_alpha, "LoRA's alpha: the update is scaled by alpha / rank", "(0, inf)"},
        {"lora-dropout", FLAG_FLOAT, &o.lora_dropout, "dropout on the adapters' input", "[0, 1)"},
        {"lora-targets", FLAG_STRING, &o.lora_targets,
         "layers that get adapters, NAME,NAME,... (default: every Linear and Conv2d before the head)"},
    };
    const char *pos[1];
    int np = cli_parse(argc, argv, 2, flags, (int)(sizeof flags / sizeof *flags), finetune_usage, pos, 0);
    if (np < 0) return np == -2 ? 0 : 2;
    if (!o.from) return fprintf(stderr, "nabla: finetune needs --from WEIGHTS\n"), 2;
    if (o.lora_rank > 0 && o.unfreeze_after > 0)
        return fprintf(stderr, "nabla: --unfreeze-after does not combine with --lora-rank (the backbone stays frozen)\n"), 2;
    if (o.lora_targets && o.lora_rank == 0)
        return fprintf(stderr, "nabla: --lora-targets needs --lora-rank\n"), 2;
    if (o.unfreeze_after > 0 && !o.freeze)
        return fprintf(stderr, "nabla: --unfreeze-after needs --freeze\n"), 2;
    if (!make_dirs(o.out)) {
        fprintf(stderr, "nabla: cannot make the output folder %s: %s\n", o.out, strerror(errno));
        return 1;
    }
    nb_set_num_threads(o.threads);
    nb_manual_seed((uint64_t)o.seed);
    tune t = {.unfreeze_after = o.unfreeze_after};
    bool ok = load_data(&o, &t) && build_model(&o, &t);
    if (ok && o.freeze) nb_module_freeze(t.model, true), nb_module_freeze(t.head, false);
    ok = ok && (o.lora_rank == 0 || apply_lora(&o, &t)) && make_optim(&o, &t);
    if (ok) {
        nb_module_fprint(stderr, t.model);
        int64_t all = nb_module_num_elements(t.model), trained = nb_module_num_trainable(t.model);
        printf("trainable parameters: %lld of %lld (%.2f%%)\n", (long long)trained, (long long)all,
               100.0 * (double)trained / (double)all);
        ok = train(&o, &t);
    }
    free_tune(&t);
    return ok ? 0 : 1;
}
