/*
 * prune.c — `nabla prune`: pruning a trained model as a command, over the library's
 * nabla/prune.h and nb_fit.  --method picks what goes:
 *   magnitude, obd  every weight of two or more dimensions (Linear's and Conv2d's; biases and
 *                   norms stay, as torch's examples prune) loses the fraction --sparsity of its
 *                   elements, those of smallest |w| or of smallest saliency w^2 H_ii / 2 (OBD,
 *                   the Hessian's diagonal on a few training batches), each layer apart or ranked
 *                   together with --global; masks keep them at zero;
 *   channels        the fraction --sparsity of the units (Linear neurons, Conv2d channels) of
 *                   each layer in --layers (default: every one that feeds another Linear or
 *                   Conv2d) is removed, those of smallest --norm, with the next layers cut to match;
 *   blocks          round(--sparsity x candidates) residual blocks become identities, those
 *                   whose removal raises the loss on a validation split (the last --val training
 *                   samples) least.
 * Then:
 *   1. --finetune E trains E epochs (SGD); with masks, their gradient hooks zero the pruned
 *      gradients and nb_prune_apply after each optimiser step (nb_fit's step callback) undoes
 *      what momentum still moves.  --schedule cubic prunes during the fine-tuning instead of
 *      before it: Zhu and Gupta's ramp from 0 to --sparsity over --prune-steps pruning steps
 *      spread over the first half of the steps, the masks held between them and after;
 *   2. accuracy, size, inference time (batch 256) and each parameter's size or sparsity are
 *      printed before and after;
 *   3. masks are removed (the zeros stay) and OUT/model.safetensors is written with the
 *      original's metadata, the description updated to the smaller sizes (an "identity" for a
 *      removed block), each weight over half zeros in sparse form (nb_module_save_sparse); the
 *      file is read back as `nabla eval` reads it before the command says it is written.
 * Every check (flags, layer names, what the method can prune) comes before anything is written.
 */
#include "cli.h"
#include "nabla/loss.h"
#include "nabla/prune.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PRUNE_MAX 1024 /* parameters of a model */

typedef struct {
    const char *data, *out, *method, *schedule, *layers, *norm;
    double sparsity, lr, momentum;
    int finetune, batch, seed, threads, obd_batches, prune_steps, val;
    bool global;
} prune_opts;

/* One parameter's name and size before pruning (the names are copies: structured pruning
 * replaces the modules that own them). */
typedef struct {
    char *name;
    int64_t numel;
} param_size;

typedef struct {
    const prune_opts *o;
    nb_module *model;
    nb_dataset *train_set, *test_set, *val_set;
    nb_loader *train, *test, *obd, *val;
    nb_tensor *x256; /* a batch of 256 test samples, to time inference */
    const char *names[PRUNE_MAX]; /* the weights pruned (magnitude, obd); the model's strings */
    int n;
    param_size before[PRUNE_MAX];
    int n_before;
    int64_t step; /* fine-tuning steps done (the cubic schedule's t) */
    nb_prune_schedule schedule;
    const char *meta_keys[4];
    char *meta_values[4]; /* the original's metadata, copied onto the output */
    int n_meta;
} pruning;

static bool structured(const prune_opts *o) { return !strcmp(o->method, "channels") || !strcmp(o->method, "blocks"); }

static long long file_size(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 ? (long long)s.st_size : -1;
}

/* The metadata `nabla train` wrote (description, epoch, input, classes), to write again. */
static bool copy_meta(const char *path, pruning *p) {
    p->n_meta = trained_meta_copy(path, p->meta_keys, p->meta_values);
    return p->n_meta >= 0;
}

static bool load_data(const prune_opts *o, pruning *p) {
    p->train_set = nb_mnist_read(o->data, true);
    p->test_set = p->train_set ? nb_mnist_read(o->data, false) : NULL;
    if (!p->test_set) return cli_data_failed(o->data), false;
    if (!cli_check_labels(p->model, p->test_set) || !cli_check_labels(p->model, p->train_set)) return false;
    nb_transforms tf = {.scale = true};
    p->train = nb_loader_new(p->train_set, (nb_loader_opts){.batch_size = o->batch, .shuffle = true,
                                                            .seed = (uint64_t)o->seed, .transforms = tf});
    p->test = nb_loader_new(p->test_set, (nb_loader_opts){.batch_size = 1000, .transforms = tf});
    p->obd = nb_loader_new(p->train_set, (nb_loader_opts){.batch_size = o->batch, .shuffle = true,
                                                          .seed = (uint64_t)o->seed + 1, .transforms = tf});
    int64_t n = nb_dataset_len(p->train_set), val = o->val < n ? o->val : n;
    p->val_set = nb_dataset_subset(p->train_set, n - val, val);
    p->val = p->val_set ? nb_loader_new(p->val_set, (nb_loader_opts){.batch_size = 1000, .transforms = tf}) : NULL;
    nb_loader *timing = nb_loader_new(p->test_set, (nb_loader_opts){.batch_size = 256, .transforms = tf});
    nb_tensor *x = NULL, *y;
    if (timing && nb_loader_next(timing, &x, &y)) p->x256 = nb_persist(x);
    nb_loader_free(timing);
    if (!p->train || !p->test || !p->obd || !p->val || !p->x256) return cli_fail("making the data loaders"), false;
    return true;
}

/* The weights that are pruned: every parameter of two or more dimensions. */
static void pick_weights(pruning *p) {
    int total = nb_module_num_params(p->model);
    for (int i = 0; i < total && p->n < PRUNE_MAX; i++) {
        const char *name;
        nb_tensor *w = nb_module_param(p->model, i, &name);
        if (w && nb_ndim(w) >= 2) p->names[p->n++] = name;
    }
}

/* OBD's loss on training batch b: the cross-entropy of the model on the loader's next batch
 * (a loader of its own: with the cubic schedule OBD runs inside nb_fit's epoch). */
static nb_tensor *obd_loss(nb_module *model, int b, void *ctx) {
    nb_loader *ld = ctx;
    nb_tensor *x, *y;
    if (b == 0) nb_loader_reset(ld);
    if (!nb_loader_next(ld, &x, &y) && (nb_loader_reset(ld) != NB_OK || !nb_loader_next(ld, &x, &y))) return NULL;
    return nb_cross_entropy(nb_module_forward(model, x), y, NULL);
}

/* Magnitude or OBD pruning of the weights to `amount` of each (or of all, --global). */
static bool prune_weights(pruning *p, float amount, bool verbose) {
    const prune_opts *o = p->o;
    if (!strcmp(o->method, "magnitude")) {
        nb_status st = o->global ? nb_prune_global_magnitude(p->model, p->n, p->names, amount)
                                 : nb_prune_magnitude(p->model, p->n, p->names, amount);
        return st == NB_OK || (cli_fail("pruning"), false);
    }
    nb_hessian_estimate used[PRUNE_MAX];
    nb_obd_opts oo = {.loss = obd_loss, .ctx = p->obd, .batches = o->obd_batches, .global = o->global};
    bool training = nb_module_is_training(p->model);
    nb_module_train(p->model, false);
    nb_status st = nb_prune_obd(p->model, p->n, p->names, amount, &oo, used);
    nb_module_train(p->model, training);
    if (st != NB_OK) return cli_fail("pruning (OBD)"), false;
    for (int i = 0; verbose && i < p->n; i++)
        printf("  %s: Hessian diagonal %s\n", p->names[i],
               used[i] == NB_HESSIAN_EXACT ? "exact" : "by Hutchinson's estimate");
    return true;
}

/* The layers --layers names (comma-separated), or every one nb_prune_channels can prune. */
static int channel_layers(pruning *p, char *list, const char **names) {
    if (!list[0]) {
        int n = nb_prune_channel_layers(p->model, names, PRUNE_MAX);
        if (n == 0) fprintf(stderr, "nabla prune: the model has no layer whose units can be removed\n");
        return n < 0 ? (cli_fail("pruning channels"), -1) : n ? n : -1;
    }
    int n = 0;
    for (char *tok = strtok(list, ","); tok && n < PRUNE_MAX; tok = strtok(NULL, ",")) names[n++] = tok;
    return n;
}

/* The validation loss nb_prune_blocks keeps small. */
static double val_loss(nb_module *model, void *ctx) {
    nb_eval_result r;
    return nb_evaluate(model, ctx, 0, &r) == NB_OK ? r.loss : NAN;
}

static bool prune_blocks(pruning *p) {
    int candidates = nb_prune_block_candidates(p->model, NULL, 0);
    if (candidates < 0) return cli_fail("removing blocks"), false;
    int count = (int)nearbyint(p->o->sparsity * candidates);
    if (count < 1) {
        fprintf(stderr, "nabla prune: --sparsity %g of %d residual blocks without a projection removes none\n",
                p->o->sparsity, candidates);
        return false;
    }
    const char *removed[PRUNE_MAX];
    double cost[PRUNE_MAX];
    if (count > PRUNE_MAX) count = PRUNE_MAX;
    if (nb_prune_blocks(p->model, count, val_loss, p->val, removed, cost) != NB_OK)
        return cli_fail("removing blocks"), false;
    for (int k = 0; k < count; k++)
        printf("  block %s removed: validation loss %+.4f\n", removed[k], cost[k]);
    return true;
}

static bool prune(pruning *p) {
    const prune_opts *o = p->o;
    if (!strcmp(o->method, "blocks")) return prune_blocks(p);
    if (strcmp(o->method, "channels")) return prune_weights(p, (float)o->sparsity, true);
    char list[1024];
    const char *names[PRUNE_MAX];
    snprintf(list, sizeof list, "%s", o->layers);
    int n = channel_layers(p, list, names);
    if (n < 0) return false;
    nb_prune_norm norm = !strcmp(o->norm, "l1") ? NB_PRUNE_L1 : NB_PRUNE_L2;
    return nb_prune_channels(p->model, n, names, (float)o->sparsity, norm) == NB_OK ||
           (cli_fail("pruning channels"), false);
}

/* Each parameter's size now, to print against after structured pruning. */
static void record_sizes(pruning *p) {
    int n = nb_module_num_params(p->model);
    for (int i = 0; i < n && i < PRUNE_MAX; i++) {
        const char *name;
        nb_tensor *w = nb_module_param(p->model, i, &name);
        p->before[p->n_before++] = (param_size){strdup(name), nb_numel(w)};
    }
}

/* Each parameter's size before and after, removed ones included. */
static void print_sizes(const pruning *p) {
    int64_t total = 0, was = 0;
    for (int i = 0; i < p->n_before; i++) {
        nb_tensor *w = nb_module_find(p->model, p->before[i].name);
        int64_t now = w ? nb_numel(w) : 0;
        printf("  %-20s %9lld -> %9lld weights%s\n", p->before[i].name, (long long)p->before[i].numel,
               (long long)now, !w ? "  (removed)" : now < p->before[i].numel ? "" : "  (unchanged)");
        total += now, was += p->before[i].numel;
    }
    printf("  parameters: %lld -> %lld (%.3fx)\n", (long long)was, (long long)total, (double)total / (double)was);
}

static void print_sparsity(const pruning *p) {
    nb_prune_layer layers[PRUNE_MAX];
    double masked, all;
    int n = nb_prune_sparsity(p->model, layers, PRUNE_MAX, &masked, &all);
    for (int i = 0; i < n && i < PRUNE_MAX; i++)
        printf("  %-16s %9lld weights  %9lld zero  sparsity %6.2f%%%s\n", layers[i].name, (long long)layers[i].numel,
               (long long)layers[i].zeros, layers[i].numel ? 100.0 * (double)layers[i].zeros / (double)layers[i].numel : 0.0,
               layers[i].masked ? "" : "  (not pruned)");
    printf("  sparsity: %.2f%% of the pruned weights, %.2f%% of all parameters\n", 100 * masked, 100 * all);
}

/* The fastest of 20 forward passes over a batch of 256 test samples (after 3 to warm up), in
 * eval mode without a graph: inference time, the least disturbed by other processes. */
static double inference_ms(pruning *p) {
    bool was = nb_set_grad_enabled(false);
    double best = INFINITY;
    for (int r = 0; r < 23; r++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        nb_scope_begin();
        bool ok = nb_module_forward(p->model, p->x256) != NULL;
        nb_scope_end();
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ms = 1e3 * (double)(b.tv_sec - a.tv_sec) + 1e-6 * (double)(b.tv_nsec - a.tv_nsec);
        if (!ok) best = NAN, r = 23;
        else if (r >= 3 && ms < best) best = ms;
    }
    nb_set_grad_enabled(was);
    return best;
}

static bool evaluate(pruning *p, const char *when) {
    nb_eval_result r;
    if (nb_evaluate(p->model, p->test, 0, &r) != NB_OK) return cli_fail("evaluation"), false;
    double ms = inference_ms(p);
    if (isnan(ms)) return cli_fail("timing inference"), false;
    printf("%s: test loss %.4f  accuracy %.2f%% on %lld samples  inference %.3f ms per batch of 256\n", when, r.loss,
           100 * r.accuracy, (long long)r.samples, ms);
    fflush(stdout);
    return true;
}

/* After each optimiser step: the cubic schedule's pruning when one is due, then the masks. */
static bool keep_masks(const nb_fit_step *step, void *user) {
    (void)step;
    pruning *p = user;
    float sparsity;
    if (!strcmp(p->o->schedule, "cubic") && nb_prune_schedule_at(&p->schedule, p->step, &sparsity)) {
        if (!prune_weights(p, sparsity, false)) return false;
        printf("  step %lld: pruned to %.2f%%\n", (long long)p->step, 100 * sparsity);
    }
    p->step++;
    return nb_prune_apply(p->model) == NB_OK;
}

static bool print_epoch(const nb_fit_epoch *e, void *user) {
    (void)user;
    printf("fine-tuning epoch %lld/%d  train loss %.4f acc %.2f%%  test acc %.2f%%\n", (long long)e->epoch, e->epochs,
           e->train_loss, 100 * e->train_acc, 100 * e->eval_acc);
    fflush(stdout);
    return true;
}

/* --finetune E: SGD over every parameter, the masks kept after each step; with --schedule cubic,
 * the ramp's --prune-steps pruning steps spread over the first half of the steps. */
static bool finetune(const prune_opts *o, pruning *p) {
    int64_t steps = (int64_t)o->finetune * ((nb_dataset_len(p->train_set) + o->batch - 1) / o->batch);
    int64_t every = steps / 2 / o->prune_steps;
    p->schedule = (nb_prune_schedule){.kind = NB_PRUNE_CUBIC, .final = (float)o->sparsity, .every = every > 0 ? every : 1,
                                      .steps = o->prune_steps};
    nb_tensor *params[PRUNE_MAX];
    int n = nb_module_parameters(p->model, params, PRUNE_MAX);
    nb_optim *opt = nb_sgd_new(n, params, (nb_sgd_opts){.lr = o->lr, .momentum = o->momentum});
    nb_fit_opts fo = {.epochs = o->finetune, .log = stderr, .seed = o->seed,
                      .num_classes = nb_dataset_info_get(p->train_set).num_classes};
    nb_fit *fit = opt ? nb_fit_new(p->model, opt, NULL, p->train, p->test, &fo) : NULL;
    nb_module_train(p->model, true);
    bool ok = fit && nb_fit_run(fit, &(nb_fit_callbacks){.on_step = keep_masks, .on_epoch = print_epoch,
                                                          .user = p}) == NB_OK;
    if (!ok) cli_fail("fine-tuning");
    nb_module_train(p->model, false);
    nb_fit_free(fit);
    nb_optim_free(opt);
    return ok && evaluate(p, "after fine-tuning");
}

/* The attribute `name` of m's description (an int), or -1. */
static int64_t attr_int(const nb_module *m, const char *name) {
    nb_attrs d;
    if (nb_module_describe(m, &d) != NB_OK) return -1;
    for (int i = 0; i < d.n; i++)
        if (!strcmp(d.attr[i].name, name)) return d.attr[i].ints[0];
    return -1;
}

/* Sets the description's sizes of layer j to those of module m (child j of the Sequential). */
static void describe_sizes(json_t *layers, size_t j, const nb_module *m) {
    static const struct {
        const char *type, *attr, *key;
    } sizes[] = {{"Linear", "in_features", "in"},  {"Linear", "out_features", "out"}, {"Conv2d", "in_channels", "in"},
                 {"Conv2d", "out_channels", "out"}, {"BatchNorm1d", "num_features", "features"},
                 {"BatchNorm2d", "num_features", "features"}};
    json_t *layer = json_array_get(layers, j);
    const char *type = nb_module_type(m), *was = json_string_value(json_object_get(layer, "type"));
    if (!strcmp(type, "Identity") && was && strcmp(was, "identity")) {
        json_array_set_new(layers, j, json_pack("{s:s}", "type", "identity"));
        return;
    }
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
        if (!strcmp(type, sizes[k].type)) json_object_set_new(layer, sizes[k].key, json_integer(attr_int(m, sizes[k].attr)));
}

/* After structured pruning: the stored description (a list of layers, one a child of the
 * Sequential) with the smaller sizes, so that `nabla eval` builds the smaller model. */
static bool update_description(pruning *p) {
    int k = 0;
    while (k < p->n_meta && strcmp(p->meta_keys[k], META_SPEC)) k++;
    json_t *spec = k < p->n_meta ? json_loads(p->meta_values[k], 0, NULL) : NULL;
    json_t *layers = json_object_get(spec, "layers");
    char name[32];
    snprintf(name, sizeof name, "%zu", json_array_size(layers));
    bool ok = json_is_array(layers) && !nb_module_child(p->model, name);
    for (size_t j = 0; ok && j < json_array_size(layers); j++) {
        snprintf(name, sizeof name, "%zu", j);
        const nb_module *m = nb_module_child(p->model, name);
        if (!m) ok = false;
        else describe_sizes(layers, j, m);
    }
    nb_error_clear();
    char *text = ok ? json_dumps(spec, JSON_COMPACT) : NULL;
    json_decref(spec);
    if (!text) return fprintf(stderr, "nabla prune: the model's description does not list its layers one by one\n"), false;
    free(p->meta_values[k]);
    p->meta_values[k] = text;
    return true;
}

static bool save(const prune_opts *o, pruning *p, const char *from) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", o->out);
    if (structured(o)) {
        if (!update_description(p)) return false;
    } else if (nb_prune_remove(p->model, p->n, p->names) != NB_OK)
        return cli_fail("removing the masks"), false;
    if (!make_dirs(o->out)) {
        fprintf(stderr, "nabla: cannot make the output folder %s: %s\n", o->out, strerror(errno));
        return false;
    }
    if (nb_module_save_sparse(p->model, path, p->n_meta, p->meta_keys, (const char *const *)p->meta_values) != NB_OK)
        return cli_fail("saving"), false;
    nb_module *back = load_trained_model(path, NULL); /* what `nabla eval` will read */
    nb_module_free(back);
    if (!back) return false;
    printf("wrote %s: %lld bytes, %.3f of %s\n", path, file_size(path), (double)file_size(path) / (double)file_size(from),
           from);
    return true;
}

static void free_pruning(pruning *p) {
    nb_module_free(p->model);
    nb_loader_free(p->train);
    nb_loader_free(p->test);
    nb_loader_free(p->obd);
    nb_loader_free(p->val);
    nb_tensor_free(p->x256);
    nb_dataset_free(p->val_set);
    nb_dataset_free(p->train_set);
    nb_dataset_free(p->test_set);
    for (int i = 0; i < p->n_meta; i++) free(p->meta_values[i]);
    for (int i = 0; i < p->n_before; i++) free(p->before[i].name);
}

static const char *const prune_usage =
    "usage: nabla prune WEIGHTS --sparsity S [options]\n\n"
    "Prunes weights written by `nabla train`.  --method magnitude or obd sets the fraction S of\n"
    "every Linear and Conv2d weight to zero: those of smallest |w|, or of smallest w^2 H_ii / 2\n"
    "(Optimal Brain Damage, the Hessian's diagonal from --obd-batches training batches), per layer\n"
    "or ranked over all layers together (--global).  --method channels removes the fraction S of\n"
    "the neurons or channels of each layer in --layers (smallest --norm of their weights) and cuts\n"
    "the layers after them to match; --method blocks replaces round(S x candidates) residual blocks\n"
    "by identities, those whose removal costs least on the last --val training samples.  Prints\n"
    "the test accuracy, inference time and file size before and after and each parameter's\n"
    "sparsity or size; --finetune E trains E epochs after (pruned weights kept at zero), or with\n"
    "--schedule cubic prunes during them, along Zhu and Gupta's ramp from 0 to S.  Writes\n"
    "OUT/model.safetensors (masks removed, the description at the new sizes; a weight over half\n"
    "zeros as a bitmask and its nonzero values, so the file shrinks with sparsity), which `nabla\n"
    "eval` reads.\n"
    "Example: nabla prune runs/a/model.safetensors --method obd --sparsity 0.9 --finetune 1\n"
    "         nabla prune runs/lenet/model.safetensors --method channels --layers 1,4 --sparsity 0.5";

/* What the flags cannot say alone; false after a message. */
static bool check_opts(const prune_opts *o) {
    if (o->sparsity < 0) return fprintf(stderr, "nabla prune: needs --sparsity S, S in [0, 1)\n"), false;
    if (!strcmp(o->schedule, "cubic") && (structured(o) || o->finetune < 1))
        return fprintf(stderr, "nabla prune: --schedule cubic prunes during fine-tuning: it needs --method "
                       "magnitude or obd and --finetune E >= 1\n"), false;
    if (o->layers[0] && strcmp(o->method, "channels"))
        return fprintf(stderr, "nabla prune: --layers names the layers of --method channels\n"), false;
    if (o->global && structured(o))
        return fprintf(stderr, "nabla prune: --global ranks the weights of --method magnitude or obd\n"), false;
    return true;
}

/* Prunes before fine-tuning (all methods but the cubic schedule) and prints the result. */
static bool prune_now(pruning *p) {
    const prune_opts *o = p->o;
    if (structured(o)) printf("removing %.2f%% of the %s\n", 100 * o->sparsity, !strcmp(o->method, "blocks") ?
                              "residual blocks without a projection" : "units of each layer");
    else printf("pruning %d weights to %.2f%% by %s%s\n", p->n, 100 * o->sparsity, o->method, o->global ? ", globally" : "");
    if (!prune(p)) return false;
    if (structured(o)) print_sizes(p);
    else print_sparsity(p);
    return evaluate(p, "after pruning");
}

int cmd_prune(int argc, char **argv) {
    prune_opts o = {.data = "/usr/share/datasets/fashion-mnist", .out = "runs/prune", .method = "magnitude",
                    .schedule = "oneshot", .layers = "", .norm = "l1", .sparsity = -1, .lr = 0.01, .momentum = 0.9,
                    .batch = 64, .threads = nb_get_num_threads(), .obd_batches = 4, .prune_steps = 10, .val = 5000};
    const cli_flag flags[] = {
        {"method", FLAG_STRING, &o.method, "what is pruned and how it is ranked", NULL, "magnitude obd channels blocks"},
        {"sparsity", FLAG_FLOAT, &o.sparsity, "fraction of each weight (or of all, --global), of each layer's units "
         "(channels) or of the residual blocks (blocks) removed", "[0, 1)"},
        {"global", FLAG_BOOL, &o.global, "rank the weights of all layers together"},
        {"finetune", FLAG_INT, &o.finetune, "epochs of fine-tuning with the masks kept (0: none)", "[0, inf)"},
        {"schedule", FLAG_STRING, &o.schedule, "prune once before fine-tuning, or along the cubic ramp during it",
         NULL, "oneshot cubic"},
        {"prune-steps", FLAG_INT, &o.prune_steps, "pruning steps of the cubic schedule", "[1, inf)"},
        {"layers", FLAG_STRING, &o.layers, "channels: the layers (child names, comma-separated) losing units; "
         "default every one that feeds a Linear or Conv2d"},
        {"norm", FLAG_STRING, &o.norm, "channels: the norm of a unit's weights that ranks it", NULL, "l1 l2"},
        {"val", FLAG_INT, &o.val, "blocks: the last VAL training samples judge each removal", "[1, inf)"},
        {"lr", FLAG_FLOAT, &o.lr, "learning rate of the fine-tuning (SGD)", "(0, inf)"},
        {"momentum", FLAG_FLOAT, &o.momentum, "momentum of the fine-tuning", "[0, 1]"},
        {"batch", FLAG_INT, &o.batch, "batch size (fine-tuning, OBD's batches)", "[1, inf)"},
        {"obd-batches", FLAG_INT, &o.obd_batches, "training batches OBD averages the Hessian over", "[1, inf)"},
        {"data", FLAG_STRING, &o.data, "folder of MNIST-format IDX files"},
        {"seed", FLAG_INT, &o.seed, "seed of shuffling and of Hutchinson's vectors"},
        {"threads", FLAG_INT, &o.threads, "threads for the kernels", "[1, 256]"},
        {"out", FLAG_STRING, &o.out, "output folder"},
    };
    const char *pos[1];
    int np = cli_parse(argc, argv, 2, flags, (int)(sizeof flags / sizeof *flags), prune_usage, pos, 1);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np != 1) return fprintf(stderr, "nabla prune: needs WEIGHTS (see --help)\n"), 2;
    if (!check_opts(&o)) return 2;
    nb_set_num_threads(o.threads);
    nb_manual_seed((uint64_t)o.seed);
    pruning p = {.o = &o};
    bool ok = (p.model = load_trained_model(pos[0], NULL)) != NULL && copy_meta(pos[0], &p) && load_data(&o, &p);
    if (ok) {
        if (structured(&o)) record_sizes(&p);
        else pick_weights(&p);
        printf("%s: %lld bytes\n", pos[0], file_size(pos[0]));
        ok = evaluate(&p, "before pruning");
    }
    bool cubic = !strcmp(o.schedule, "cubic");
    if (ok && cubic) printf("pruning %d weights along the cubic ramp to %.2f%% by %s%s over the first half of the "
                            "fine-tuning\n", p.n, 100 * o.sparsity, o.method, o.global ? ", globally" : "");
    ok = ok && (cubic || prune_now(&p)) && (o.finetune == 0 || finetune(&o, &p));
    if (ok && cubic) print_sparsity(&p);
    ok = ok && save(&o, &p, pos[0]);
    free_pruning(&p);
    return ok ? 0 : 1;
}
