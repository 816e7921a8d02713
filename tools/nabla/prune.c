/*
 * prune.c — `nabla prune`: unstructured pruning of a trained model as a command, over the
 * library's nabla/prune.h (masks, by magnitude or by Optimal Brain Damage) and nb_fit.
 *
 *   1. the model of WEIGHTS (written by `nabla train`), its test accuracy and file size;
 *   2. every weight of two or more dimensions (Linear's and Conv2d's; biases and norms' scales
 *      stay, as torch's examples prune) loses the fraction --sparsity of its elements: those of
 *      smallest |w| (magnitude) or of smallest saliency w^2 H_ii / 2 (OBD, the Hessian's
 *      diagonal on a few training batches), each layer apart or ranked together with --global;
 *   3. --finetune E trains E epochs with the masks kept: their gradient hooks zero the pruned
 *      gradients, and nb_prune_apply after each optimiser step (nb_fit's step callback) undoes
 *      what momentum still moves;
 *   4. the masks are removed (the zeros stay) and OUT/model.safetensors is written with the
 *      original's description, each weight over half zeros in sparse form (nb_module_save_sparse:
 *      a bitmask and the nonzero values, so the file shrinks with sparsity); `nabla eval` reads
 *      it as a trained model.
 */
#include "cli.h"
#include "nabla/loss.h"
#include "nabla/prune.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PRUNE_MAX 1024 /* parameters of a model */

typedef struct {
    const char *data, *out, *method;
    double sparsity, lr, momentum;
    int finetune, batch, seed, threads, obd_batches;
    bool global;
} prune_opts;

typedef struct {
    nb_module *model;
    nb_dataset *train_set, *test_set;
    nb_loader *train, *test;
    const char *names[PRUNE_MAX]; /* the weights pruned; the model's strings */
    int n;
    const char *meta_keys[4];
    char *meta_values[4]; /* the original's metadata, copied onto the output */
    int n_meta;
} pruning;

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
    if (!p->train || !p->test) return cli_fail("making the data loaders"), false;
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

/* OBD's loss on training batch b: the cross-entropy of the model on the loader's next batch. */
static nb_tensor *obd_loss(nb_module *model, int b, void *ctx) {
    nb_loader *ld = ctx;
    nb_tensor *x, *y;
    if (b == 0) nb_loader_reset(ld);
    if (!nb_loader_next(ld, &x, &y) && (nb_loader_reset(ld) != NB_OK || !nb_loader_next(ld, &x, &y))) return NULL;
    return nb_cross_entropy(nb_module_forward(model, x), y, NULL);
}

static bool prune(const prune_opts *o, pruning *p) {
    float amount = (float)o->sparsity;
    if (!strcmp(o->method, "magnitude")) {
        nb_status st = o->global ? nb_prune_global_magnitude(p->model, p->n, p->names, amount)
                                 : nb_prune_magnitude(p->model, p->n, p->names, amount);
        return st == NB_OK || cli_fail("pruning");
    }
    nb_hessian_estimate used[PRUNE_MAX];
    nb_obd_opts oo = {.loss = obd_loss, .ctx = p->train, .batches = o->obd_batches, .global = o->global};
    if (nb_prune_obd(p->model, p->n, p->names, amount, &oo, used) != NB_OK) return cli_fail("pruning (OBD)"), false;
    for (int i = 0; i < p->n; i++)
        printf("  %s: Hessian diagonal %s\n", p->names[i],
               used[i] == NB_HESSIAN_EXACT ? "exact" : "by Hutchinson's estimate");
    return true;
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

static bool evaluate(pruning *p, const char *when) {
    nb_eval_result r;
    if (nb_evaluate(p->model, p->test, 0, &r) != NB_OK) return cli_fail("evaluation"), false;
    printf("%s: test loss %.4f  accuracy %.2f%% on %lld samples\n", when, r.loss, 100 * r.accuracy, (long long)r.samples);
    fflush(stdout);
    return true;
}

static bool keep_masks(const nb_fit_step *step, void *user) {
    (void)step;
    return nb_prune_apply(user) == NB_OK;
}

static bool print_epoch(const nb_fit_epoch *e, void *user) {
    (void)user;
    printf("fine-tuning epoch %lld/%d  train loss %.4f acc %.2f%%  test acc %.2f%%\n", (long long)e->epoch, e->epochs,
           e->train_loss, 100 * e->train_acc, 100 * e->eval_acc);
    fflush(stdout);
    return true;
}

/* --finetune E: SGD over every parameter, the masks kept after each step. */
static bool finetune(const prune_opts *o, pruning *p) {
    nb_tensor *params[PRUNE_MAX];
    int n = nb_module_parameters(p->model, params, PRUNE_MAX);
    nb_optim *opt = nb_sgd_new(n, params, (nb_sgd_opts){.lr = o->lr, .momentum = o->momentum});
    nb_fit_opts fo = {.epochs = o->finetune, .log = stderr, .seed = o->seed,
                      .num_classes = nb_dataset_info_get(p->train_set).num_classes};
    nb_fit *fit = opt ? nb_fit_new(p->model, opt, NULL, p->train, p->test, &fo) : NULL;
    nb_module_train(p->model, true);
    bool ok = fit && nb_fit_run(fit, &(nb_fit_callbacks){.on_step = keep_masks, .on_epoch = print_epoch,
                                                          .user = p->model}) == NB_OK;
    if (!ok) cli_fail("fine-tuning");
    nb_module_train(p->model, false);
    nb_fit_free(fit);
    nb_optim_free(opt);
    return ok && evaluate(p, "after fine-tuning");
}

static bool save(const prune_opts *o, pruning *p, const char *from) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", o->out);
    if (nb_prune_remove(p->model, p->n, p->names) != NB_OK) return cli_fail("removing the masks"), false;
    if (!make_dirs(o->out)) {
        fprintf(stderr, "nabla: cannot make the output folder %s: %s\n", o->out, strerror(errno));
        return false;
    }
    if (nb_module_save_sparse(p->model, path, p->n_meta, p->meta_keys, (const char *const *)p->meta_values) != NB_OK)
        return cli_fail("saving"), false;
    printf("wrote %s: %lld bytes, %.3f of %s\n", path, file_size(path), (double)file_size(path) / (double)file_size(from),
           from);
    return true;
}

static void free_pruning(pruning *p) {
    nb_module_free(p->model);
    nb_loader_free(p->train);
    nb_loader_free(p->test);
    nb_dataset_free(p->train_set);
    nb_dataset_free(p->test_set);
    for (int i = 0; i < p->n_meta; i++) free(p->meta_values[i]);
}

static const char *const prune_usage =
    "usage: nabla prune WEIGHTS --sparsity S [options]\n\n"
    "Prunes weights written by `nabla train`: the fraction S of every Linear and Conv2d weight is\n"
    "set to zero, by magnitude (smallest |w|) or by Optimal Brain Damage (smallest w^2 H_ii / 2,\n"
    "the Hessian's diagonal from --obd-batches training batches), per layer or ranked over all\n"
    "layers together (--global).  Prints the test accuracy and file size before and after and the\n"
    "sparsity of each parameter; --finetune E trains E epochs with the pruned weights kept at zero.\n"
    "Writes OUT/model.safetensors (the masks removed; a weight over half zeros as a bitmask and its\n"
    "nonzero values, so the file shrinks with sparsity), which `nabla eval` reads.\n"
    "Example: nabla prune runs/a/model.safetensors --method obd --sparsity 0.9 --finetune 1";

int cmd_prune(int argc, char **argv) {
    prune_opts o = {.data = "/usr/share/datasets/fashion-mnist", .out = "runs/prune", .method = "magnitude",
                    .sparsity = -1, .lr = 0.01, .momentum = 0.9, .batch = 64, .threads = nb_get_num_threads(),
                    .obd_batches = 4};
    const cli_flag flags[] = {
        {"method", FLAG_STRING, &o.method, "what ranks the weights", NULL, "magnitude obd"},
        {"sparsity", FLAG_FLOAT, &o.sparsity, "fraction of each weight (or of all, --global) set to zero", "[0, 1)"},
        {"global", FLAG_BOOL, &o.global, "rank the weights of all layers together"},
        {"finetune", FLAG_INT, &o.finetune, "epochs of fine-tuning with the masks kept (0: none)", "[0, inf)"},
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
    if (o.sparsity < 0) return fprintf(stderr, "nabla prune: needs --sparsity S, S in [0, 1)\n"), 2;
    nb_set_num_threads(o.threads);
    nb_manual_seed((uint64_t)o.seed);
    pruning p = {0};
    bool ok = (p.model = load_trained_model(pos[0], NULL)) != NULL && copy_meta(pos[0], &p) && load_data(&o, &p);
    if (ok) {
        pick_weights(&p);
        printf("%s: %lld bytes\n", pos[0], file_size(pos[0]));
        ok = evaluate(&p, "before pruning");
    }
    if (ok) printf("pruning %d weights to %.2f%% by %s%s\n", p.n, 100 * o.sparsity, o.method, o.global ? ", globally" : "");
    ok = ok && prune(&o, &p);
    if (ok) print_sparsity(&p);
    ok = ok && evaluate(&p, "after pruning") && (o.finetune == 0 || finetune(&o, &p)) && save(&o, &p, pos[0]);
    free_pruning(&p);
    return ok ? 0 : 1;
}
