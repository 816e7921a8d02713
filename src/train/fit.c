/*
 * fit.c — the training loop (nb_fit) and evaluation (nb_evaluate): what the course's notebook,
 * the examples and `nabla train` run.  See nabla/train.h for what a run does; this file keeps its
 * order exactly, since that order is what makes a resumed run bit-identical to an uninterrupted
 * one and keeps the files consistent when a process is killed:
 *
 *   per epoch: train (set_epoch, then per batch: zero_grad, forward, loss, divergence check,
 *   backward — or opts.step, then the check — clip, step) -> evaluate -> divergence check of
 *   the evaluation and the weights -> lr read -> schedule step -> curves -> best / bad epochs ->
 *   on_epoch -> curves files -> checkpoint -> model file -> early stop / callback stop.
 *
 * The checkpoint's progress record ("nabla.extra", JSON) holds what a resumed run needs besides
 * the objects: {"curves": [[train loss, eval loss, train acc, eval acc], ...], "best": loss or
 * null, "bad_epochs": n, "seed": n, "model_epoch": n}, with opts.grad_norms also "grad_norms":
 * [[norm per parameter], ...] per epoch.  JSON has no infinity or NaN: such values are null.
 *
 * Gradient norms (opts.grad_norms) are taken by a tensor hook on each parameter, which sees the
 * parameter's whole gradient of the step before it reaches .grad (nabla/autograd.h).
 */
#include "nabla/train.h"
#include "nabla/amp.h"
#include "nabla/autograd.h"
#include "nabla/loss.h"
#include "nabla/optim.h"
#include "../io/io.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PARAMS 1024
#define DEFAULT_DIVERGENCE_FACTOR 100.0

struct nb_fit {
    nb_module *model;
    nb_optim *optim;
    nb_sched *sched;
    nb_loader *train, *eval;
    nb_fit_opts o;
    nb_curves *curves;
    int64_t epoch;          /* epochs done */
    int64_t model_epoch;    /* the epoch whose weights the model file holds */
    double best;            /* the lowest evaluation loss so far */
    int bad_epochs;
    double diverged_above;  /* a loss above this is divergence (0: not set yet) */
    nb_fit_end end;
    bool restored;
    int64_t resumed_seed;
    char *best_path;        /* the file that holds the best weights (beside a resumed checkpoint at first) */
    size_t best_cap;
    /* gradient norms (opts.grad_norms): per parameter, this epoch's sum over its steps and the
     * hook's handle (0: none); per epoch done, the means (norms, norm_rows rows of n_norms) */
    int n_norms;
    double *norm_sum;
    int *norm_hook;
    int64_t norm_steps;
    float *norms;
    int64_t norm_rows, norm_cap;
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- evaluation */

/* The teacher's logits of a batch, in eval mode and without a graph (its mode put back). */
static nb_tensor *teacher_logits(nb_module *teacher, nb_tensor *x) {
    bool training = nb_module_is_training(teacher);
    nb_tensor *t = NULL;
    nb_module_train(teacher, false);
    NB_NO_GRAD { t = nb_module_forward(teacher, x); }
    nb_module_train(teacher, training);
    return t;
}

/* The loss of one batch (it lives in the caller's scope), its correct count added:
 * cross-entropy, or with kd (options with a teacher) the distillation loss. */
static nb_tensor *batch_loss(nb_module *m, nb_tensor *x, nb_tensor *y, float smoothing, const nb_fit_opts *kd,
                             int64_t *correct, int64_t *classes) {
    nb_tensor *logits = nb_module_forward(m, x);
    nb_ce_opts ce = {.label_smoothing = smoothing};
    nb_tensor *loss = !kd ? nb_cross_entropy(logits, y, &ce)
                          : nb_distill_loss(logits, teacher_logits(kd->teacher, x), y, kd->temperature, kd->alpha, &ce);
    if (loss) *correct += nb_count_correct(logits, y);
    if (loss && classes) *classes = nb_size(logits, 1);
    return loss;
}

/* An evaluation batch's mean loss in *v, its correct count added: the model's forward, or with
 * custom (options with a step) the step's figures. */
static bool eval_batch(nb_module *m, nb_tensor *x, nb_tensor *y, float smoothing, const nb_fit_opts *custom,
                       double *v, int64_t *correct) {
    if (custom) {
        int64_t hits = 0;
        if (custom->step(custom->step_ctx, x, y, false, v, &hits) != NB_OK) return false;
        *correct += hits;
        return true;
    }
    nb_tensor *l = batch_loss(m, x, y, smoothing, NULL, correct, NULL);
    if (l) *v = nb_item(l);
    return l != NULL;
}

/* nb_evaluate, through custom's step when it is not NULL. */
static nb_status evaluate(nb_module *m, nb_loader *ld, float label_smoothing, const nb_fit_opts *custom,
                          nb_eval_result *out) {
    bool training = nb_module_is_training(m), ok = true;
    nb_module_train(m, false);
    double sum = 0;
    int64_t correct = 0, seen = 0;
    nb_tensor *x, *y;
    nb_loader_reset(ld);
    NB_NO_GRAD {
        while (ok && nb_loader_next(ld, &x, &y)) {
            nb_scope_begin();
            double v = 0;
            ok = eval_batch(m, x, y, label_smoothing, custom, &v, &correct);
            if (ok) sum += v * (double)nb_size(x, 0);
            seen += nb_size(x, 0);
            nb_scope_end();
        }
    }
    nb_module_train(m, training);
    if (!ok) return nb__fail_prefix("evaluation");
    if (seen == 0) return nb__fail_status(NB_ERR_ARG, "evaluation: the loader has no samples");
    *out = (nb_eval_result){.loss = sum / (double)seen, .accuracy = (double)correct / (double)seen, .samples = seen};
    return NB_OK;
}

nb_status nb_evaluate(nb_module *m, nb_loader *ld, float label_smoothing, nb_eval_result *out) {
    if (!m || !ld || !out) return nb__fail_status(NB_ERR_ARG, "evaluate: NULL model, loader or result");
    return evaluate(m, ld, label_smoothing, NULL, out);
}

/* ---- divergence */

/* The threshold, from the first batch of this process's run (see nabla/train.h). */
static void set_divergence_threshold(nb_fit *f, double first_loss, int64_t logits_width) {
    int64_t classes = f->o.num_classes > 0 ? f->o.num_classes : logits_width;
    double uniform = log((double)(classes > 1 ? classes : 2));
    double factor = f->o.divergence_factor > 0 ? f->o.divergence_factor : DEFAULT_DIVERGENCE_FACTOR;
    f->diverged_above = factor * (first_loss > uniform && isfinite(first_loss) ? first_loss : uniform);
}

/* False, with the error and the end set, when loss is divergence; where: "step 3/938". */
static bool loss_is_sane(nb_fit *f, double loss, const char *where) {
    if (isfinite(loss) && loss <= f->diverged_above) return true;
    f->end = NB_FIT_DIVERGED;
    double factor = f->o.divergence_factor > 0 ? f->o.divergence_factor : DEFAULT_DIVERGENCE_FACTOR;
    if (isfinite(loss))
        nb__fail(NB_ERR_ARG, "training diverged at %s of epoch %lld: the loss is %g, above %g (%g times the "
                 "larger of ln(classes) and the first batch's loss)", where, (long long)f->epoch + 1, loss,
                 f->diverged_above, factor);
    else
        nb__fail(NB_ERR_ARG, "training diverged at %s of epoch %lld: the loss is %g", where,
                 (long long)f->epoch + 1, loss);
    return false;
}

/* Every weight finite: the last step of an epoch can break them with no batch loss to show it. */
static bool weights_finite(const nb_fit *f) {
    bool ok = true;
    NB_NO_GRAD {
        for (int i = 0, n = nb_module_num_params(f->model); ok && i < n; i++) {
            nb_scope_begin();
            ok = isfinite(nb_item(nb_sum(nb_module_param(f->model, i, NULL))));
            nb_scope_end();
        }
    }
    return ok;
}

/* ---- gradient norms */

/* A parameter's tensor hook: the L2 norm of its gradient of this step, added to its sum. */
static nb_tensor *note_grad_norm(nb_tensor *grad, void *sum) {
    nb_tensor *sq = nb_mul(grad, grad), *total = sq ? nb_sum(sq) : NULL;
    if (total) *(double *)sum += sqrt(nb_item(total));
    nb_tensor_free(total);
    nb_tensor_free(sq);
    return total ? grad : NULL;
}

/* Hooks on (watch) or off every parameter that requires grad. */
static bool watch_gradients(nb_fit *f, bool watch) {
    for (int i = 0; i < f->n_norms; i++) {
        nb_tensor *p = nb_module_param(f->model, i, NULL);
        if (!watch && f->norm_hook[i]) nb_tensor_remove_hook(p, f->norm_hook[i]);
        f->norm_hook[i] = 0;
        if (watch && nb_requires_grad(p) &&
            !(f->norm_hook[i] = nb_tensor_register_hook(p, note_grad_norm, &f->norm_sum[i])))
            return false;
    }
    return true;
}

/* A row of norms, the epoch's means (the sums cleared for the next); false out of memory. */
static bool add_norm_row(nb_fit *f, const float *row) {
    if (f->norm_rows == f->norm_cap) {
        int64_t cap = f->norm_cap ? 2 * f->norm_cap : 16;
        float *p = nb__alloc(sizeof *p * (size_t)(cap * f->n_norms));
        if (!p) return false;
        if (f->norm_rows) memcpy(p, f->norms, sizeof *p * (size_t)(f->norm_rows * f->n_norms));
        nb__dealloc(f->norms, sizeof *p * (size_t)(f->norm_cap * f->n_norms));
        f->norms = p;
        f->norm_cap = cap;
    }
    memcpy(f->norms + f->norm_rows++ * f->n_norms, row, sizeof *row * (size_t)f->n_norms);
    return true;
}

static bool close_norms_epoch(nb_fit *f) {
    float row[MAX_PARAMS];
    for (int i = 0; i < f->n_norms; i++) {
        row[i] = (float)(f->norm_steps ? f->norm_sum[i] / (double)f->norm_steps : 0);
        f->norm_sum[i] = 0;
    }
    f->norm_steps = 0;
    return add_norm_row(f, row);
}

/* ---- one epoch of training */

typedef struct {
    double loss, acc;
} epoch_figures;

/* The options as batch_loss's kd when the run has a teacher, else NULL. */
static const nb_fit_opts *distilling(const nb_fit *f) { return f->o.teacher ? &f->o : NULL; }

/* Forward, loss, divergence check and backward of a batch (the loss in *v, the hits added). */
static bool model_step(nb_fit *f, nb_tensor *x, nb_tensor *y, double *v, int64_t *correct, const char *where) {
    int64_t width = 0;
    nb_tensor *l = NULL;
    NB_AUTOCAST(f->o.autocast) { l = batch_loss(f->model, x, y, f->o.label_smoothing, distilling(f), correct, &width); }
    if (!l) return nb__fail_prefix("training step"), false;
    *v = nb_item(l);
    if (f->diverged_above == 0) set_divergence_threshold(f, *v, width);
    if (!loss_is_sane(f, *v, where)) return false;
    nb_grad_scaler *gs = f->o.scaler;
    if (nb_backward(gs ? nb_grad_scaler_scale(gs, l) : l) != NB_OK) return nb__fail_prefix("training step"), false;
    return true;
}

/* The same through opts.step: its gradients are in .grad before the loss can be checked. */
static bool custom_step(nb_fit *f, nb_tensor *x, nb_tensor *y, double *v, int64_t *correct, const char *where) {
    int64_t hits = 0;
    nb_status st = NB_OK;
    NB_AUTOCAST(f->o.autocast) { st = f->o.step(f->o.step_ctx, x, y, true, v, &hits); }
    if (st != NB_OK) return nb__fail_prefix("training step"), false;
    *correct += hits;
    if (f->diverged_above == 0) set_divergence_threshold(f, *v, 0);
    return loss_is_sane(f, *v, where);
}

/* One step on a batch; false on an error, divergence or a stop by on_step. */
static bool train_step(nb_fit *f, nb_tensor *x, nb_tensor *y, int np, nb_tensor **params, double *v,
                       int64_t *correct, const char *where) {
    nb_optim_zero_grad(f->optim);
    if (!(f->o.step ? custom_step : model_step)(f, x, y, v, correct, where)) return false;
    nb_grad_scaler *gs = f->o.scaler;
    if (f->o.before_step && f->o.before_step(f->o.before_step_ctx) != NB_OK)
        return nb__fail_prefix("training step"), false;
    f->norm_steps++;
    if (gs && nb_grad_scaler_unscale(gs, np, params) != NB_OK) return nb__fail_prefix("training step"), false;
    if (f->o.clip_norm > 0) nb_clip_grad_norm(np, params, f->o.clip_norm, 2.0f);
    nb_status st = gs ? nb_grad_scaler_step(gs, f->optim, np, params, NULL) : nb_optim_step(f->optim);
    if (st == NB_OK && gs) st = nb_grad_scaler_update(gs);
    if (st != NB_OK) return nb__fail_prefix("training step"), false;
    return true;
}

static bool train_epoch(nb_fit *f, const nb_fit_callbacks *cb, epoch_figures *out) {
    char label[48], post[64], where[64];
    snprintf(label, sizeof label, "epoch %lld/%d", (long long)f->epoch + 1, f->o.epochs);
    nb_loader_set_epoch(f->train, f->epoch);
    int64_t steps = nb_loader_len(f->train);
    nb_progress *bar = f->o.log ? nb_progress_new(f->o.log, label, steps) : NULL;
    nb_tensor *params[MAX_PARAMS], *x, *y;
    int np = nb_module_parameters(f->model, params, MAX_PARAMS);
    for (int i = 0; i < f->n_norms; i++) f->norm_sum[i] = 0;
    f->norm_steps = 0;
    double sum = 0;
    int64_t correct = 0, seen = 0, step = 0;
    bool ok = true;
    while (ok && nb_loader_next(f->train, &x, &y)) {
        step++;
        snprintf(where, sizeof where, "step %lld/%lld", (long long)step, (long long)steps);
        double v;
        nb_scope_begin();
        ok = train_step(f, x, y, np, params, &v, &correct, where);
        if (ok) {
            sum += v * (double)nb_size(x, 0);
            seen += nb_size(x, 0);
        }
        nb_scope_end();
        if (ok && (step & 15) == 0) {
            snprintf(post, sizeof post, "loss %.4f", sum / (double)seen);
            nb_progress_update(bar, step, post);
        }
        if (ok && cb && cb->on_step) {
            nb_fit_step s = {f->epoch, step, steps, v, sum / (double)seen};
            if (!cb->on_step(&s, cb->user)) f->end = NB_FIT_STOPPED, ok = false;
        }
    }
    if (ok) {
        snprintf(post, sizeof post, "loss %.4f", sum / (double)seen);
        nb_progress_update(bar, step, post);
        nb_progress_finish(bar, post);
    }
    nb_progress_free(bar);
    out->loss = sum / (double)(seen ? seen : 1);
    out->acc = (double)correct / (double)(seen ? seen : 1);
    return ok;
}

/* ---- files */

/* Linux's PATH_MAX: no longer path can be opened.  nb_fit_new refuses an output folder whose
 * files' paths would not fit, so join never cuts one (to another path that might exist). */
#define PATH_CAP 4096
#define LONGEST_NAME "/checkpoint.safetensors"

/* dir/name in a buffer of its own (one of four in turn, so a call may use a few). */
static const char *join(const char *dir, const char *name) {
    static _Thread_local char buf[4][PATH_CAP];
    static _Thread_local int next;
    char *p = buf[next++ % 4];
    snprintf(p, PATH_CAP, "%s/%s", dir, name);
    return p;
}

static bool set_best_path(nb_fit *f, const char *path) {
    size_t need = strlen(path) + 1;
    if (need > f->best_cap) {
        char *p = nb__alloc(need);
        if (!p) return false;
        nb__dealloc(f->best_path, f->best_cap);
        f->best_path = p;
        f->best_cap = need;
    }
    memcpy(f->best_path, path, need);
    return true;
}

static json_t *norms_json(const nb_fit *f) {
    json_t *rows = json_array();
    for (int64_t e = 0; e < f->norm_rows; e++) {
        json_t *row = json_array();
        for (int i = 0; i < f->n_norms; i++) {
            float v = f->norms[e * f->n_norms + i];
            json_array_append_new(row, isfinite(v) ? json_real(v) : json_null());
        }
        json_array_append_new(rows, row);
    }
    return rows;
}

/* The norms of a resumed run's epochs, a row per epoch done: NaN where the checkpoint has none
 * (a run without grad_norms, or rows of another width: another model). */
static bool restore_norms(nb_fit *f, const json_t *rows) {
    bool fits = true;
    for (size_t e = 0; e < json_array_size(rows); e++)
        fits = fits && json_array_size(json_array_get(rows, e)) == (size_t)f->n_norms;
    for (int64_t e = 0; e < f->epoch; e++) {
        const json_t *row = fits ? json_array_get(rows, (size_t)e) : NULL;
        float v[MAX_PARAMS];
        for (int i = 0; i < f->n_norms; i++) {
            json_t *x = json_array_get(row, (size_t)i);
            v[i] = json_is_number(x) ? (float)json_number_value(x) : NAN;
        }
        if (!add_norm_row(f, v)) return false;
    }
    return true;
}

static char *progress_json(const nb_fit *f) {
    json_t *rows = json_array();
    for (int e = 0; e < nb_curves_len(f->curves); e++) {
        float v[4];
        nb_curves_get(f->curves, e, v);
        json_t *row = json_array();
        for (int k = 0; k < 4; k++) json_array_append_new(row, isfinite(v[k]) ? json_real(v[k]) : json_null());
        json_array_append_new(rows, row);
    }
    json_t *root = json_pack("{s:o,s:o,s:i,s:I,s:I}", "curves", rows, "best",
                             isfinite(f->best) ? json_real(f->best) : json_null(), "bad_epochs", f->bad_epochs,
                             "seed", (json_int_t)f->o.seed, "model_epoch", (json_int_t)f->model_epoch);
    if (root && f->o.grad_norms) json_object_set_new(root, "grad_norms", norms_json(f));
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

static bool restore_progress(nb_fit *f, const char *path, const char *text) {
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
        ok = ok && nb_curves_add(f->curves, v[0], v[1], v[2], v[3]) == NB_OK;
    }
    if (ok) {
        f->best = json_is_null(best) ? INFINITY : json_number_value(best);
        f->bad_epochs = (int)json_integer_value(json_object_get(root, "bad_epochs"));
        json_t *me = json_object_get(root, "model_epoch"); /* absent before it was recorded */
        f->model_epoch = json_is_integer(me) ? json_integer_value(me) : f->epoch;
        f->resumed_seed = json_integer_value(seed);
        if (f->o.grad_norms) ok = restore_norms(f, json_object_get(root, "grad_norms"));
        /* shuffling follows the seed, so another seed gives other batches than the first run's */
        if (f->resumed_seed != f->o.seed && f->o.log)
            fprintf(f->o.log, "nabla: note: the checkpoint's run used seed %lld, this one seed %lld\n",
                    (long long)f->resumed_seed, (long long)f->o.seed);
    }
    json_decref(root);
    if (!ok) nb__fail(NB_ERR_IO, "resuming: %s: the checkpoint's progress record is malformed", path);
    return ok;
}

/* OUT/model.safetensors from the model's present weights, taken after f->model_epoch epochs. */
static bool save_model(nb_fit *f) {
    const char *keys[66], *values[66];
    char epoch[32];
    snprintf(epoch, sizeof epoch, "%lld", (long long)f->model_epoch);
    int n = 0;
    bool placed = false;
    for (int i = 0; i < f->o.n_meta && n < 64; i++) {
        bool here = !strcmp(f->o.meta_keys[i], "nabla.epoch");
        keys[n] = f->o.meta_keys[i];
        values[n++] = here ? epoch : f->o.meta_values[i];
        placed = placed || here;
    }
    if (!placed) keys[n] = "nabla.epoch", values[n++] = epoch;
    const char *path = join(f->o.out, "model.safetensors");
    if (!set_best_path(f, path)) return false;
    if (nb_module_save(f->model, path, n, keys, values) == NB_OK) return true;
    return nb__fail_prefix("saving the model"), false;
}

/* OUT/grad_norms.csv, atomically: "epoch" and the parameters' names, then a row per epoch. */
static bool write_norms(const nb_fit *f) {
    nb__afile a;
    if (nb__afile_begin(&a, "fit", join(f->o.out, "grad_norms.csv")) != NB_OK) return false;
    FILE *out = nb__afile_stream(&a);
    if (out) {
        fputs("epoch", out);
        for (int i = 0; i < f->n_norms; i++) {
            const char *name = NULL;
            nb_module_param(f->model, i, &name);
            fprintf(out, ",%s", name);
        }
        for (int64_t e = 0; e < f->norm_rows; e++) {
            fprintf(out, "\n%lld", (long long)e + 1);
            for (int i = 0; i < f->n_norms; i++) { /* as curves.csv: NaN as an empty field */
                float v = f->norms[e * f->n_norms + i];
                if (isfinite(v)) fprintf(out, ",%.9g", v);
                else fputc(',', out);
            }
        }
        fputc('\n', out);
    }
    return nb__afile_commit(&a) == NB_OK;
}

/* The curves, then the checkpoint, then (with_model) the model: see nabla/train.h. */
static bool save_outputs(nb_fit *f, bool with_model) {
    if (!f->o.out) return true;
    if (with_model) f->model_epoch = f->epoch;
    const char *title = f->o.title ? f->o.title : "training";
    char *prog = progress_json(f);
    bool ok = prog && nb_curves_write_csv(f->curves, join(f->o.out, "curves.csv")) == NB_OK &&
              nb_curves_write_svg(f->curves, join(f->o.out, "curves.svg"), title) == NB_OK &&
              (!f->o.grad_norms || write_norms(f)) &&
              nb_checkpoint_save(join(f->o.out, "checkpoint.safetensors"), f->model, f->optim, f->sched,
                                 f->epoch, prog) == NB_OK;
    if (!prog) nb__fail(NB_ERR_MEMORY, "out of memory");
    if (!ok) nb__fail_prefix("saving results");
    free(prog);
    return ok && (!with_model || save_model(f));
}

/* The end of a run that selects: the best epoch's weights back into the model from the file
 * that holds them, and OUT/model.safetensors written from them when that is another file (a
 * resumed run's first folder). */
static bool restore_best(nb_fit *f) {
    if (f->model_epoch != f->epoch) {
        if (nb_module_load(f->model, f->best_path) != NB_OK) return nb__fail_prefix("restoring the best weights"), false;
        f->restored = true;
    }
    return !strcmp(f->best_path, join(f->o.out, "model.safetensors")) || save_model(f);
}

/* ---- memory */

/* The optimiser's state in bytes (float32 tensors). */
static size_t optim_state_bytes(nb_optim *o) {
    int n = nb_optim_state_tensors(o, NULL, NULL, 0);
    const char **names = n > 0 ? nb__alloc(sizeof *names * (size_t)n) : NULL;
    nb_tensor **ts = n > 0 ? nb__alloc(sizeof *ts * (size_t)n) : NULL;
    size_t bytes = 0;
    if (names && ts && nb_optim_state_tensors(o, names, ts, n) == n)
        for (int i = 0; i < n; i++) bytes += 4 * (size_t)nb_numel(ts[i]);
    nb__dealloc(names, sizeof *names * (size_t)(n > 0 ? n : 0));
    nb__dealloc(ts, sizeof *ts * (size_t)(n > 0 ? n : 0));
    return bytes;
}

nb_status nb_fit_measure_memory(nb_fit *f, nb_fit_memory *out) {
    if (!f || !out) return nb__fail_status(NB_ERR_ARG, "fit_measure_memory: NULL run or result");
    *out = (nb_fit_memory){.parameters = 4 * (size_t)nb_module_num_elements(f->model),
                           .optim_state = optim_state_bytes(f->optim)};
    int nbuf = nb_module_num_buffers(f->model);
    nb_tensor **saved = nbuf > 0 ? nb__alloc(sizeof *saved * (size_t)nbuf) : NULL, *x, *y;
    if (nbuf > 0 && !saved) return nb_error_code();
    nb_loader_set_epoch(f->train, 0);
    size_t before = nb_alloc_stats_get().bytes_live;
    if (nb_loader_next(f->train, &x, &y)) {
        nb_generator g = nb_rng_get_state();
        for (int i = 0; i < nbuf; i++) saved[i] = nb_persist(nb_module_buffer(f->model, i, NULL));
        nb_scope_begin();
        int64_t correct = 0;
        double v;
        nb_tensor *l = f->o.step ? NULL : batch_loss(f->model, x, y, f->o.label_smoothing, distilling(f), &correct, NULL);
        if (l) nb_backward(l);
        if (f->o.step && f->o.step(f->o.step_ctx, x, y, true, &v, &correct) != NB_OK) nb_error_clear();
        nb_scope_end();
        nb_rng_set_state(g);
        for (int i = 0; i < nbuf; i++) {
            nb_copy(nb_module_buffer(f->model, i, NULL), saved[i]);
            nb_tensor_free(saved[i]);
        }
        for (int i = 0, n = nb_module_num_params(f->model); i < n; i++) nb_clear_grad(nb_module_param(f->model, i, NULL));
    }
    out->step = nb_alloc_stats_get().bytes_live - before;
    nb__dealloc(saved, sizeof *saved * (size_t)nbuf);
    return NB_OK;
}

/* ---- the run */

nb_fit *nb_fit_new(nb_module *m, nb_optim *o, nb_sched *s, nb_loader *train, nb_loader *eval,
                   const nb_fit_opts *opts) {
    if (!m || !o || !train || !eval || !opts) return nb__fail(NB_ERR_ARG, "fit_new: NULL model, optimiser, loader or options");
    if (opts->epochs < 1) return nb__fail(NB_ERR_ARG, "fit_new: epochs must be at least 1, got %d", opts->epochs);
    if (opts->autocast != NB_F32 && opts->autocast != NB_BF16 && opts->autocast != NB_F16)
        return nb__fail(NB_ERR_ARG, "fit_new: autocast must be bfloat16, float16 or float32 (off)");
    if (opts->select_best && !opts->out) return nb__fail(NB_ERR_ARG, "fit_new: select_best needs an output folder (out)");
    if (opts->teacher && !(isfinite(opts->temperature) && opts->temperature > 0))
        return nb__fail(NB_ERR_ARG, "fit_new: the distillation temperature must be finite and above 0, got %g",
                        (double)opts->temperature);
    if (opts->teacher && !(opts->alpha >= 0 && opts->alpha <= 1))
        return nb__fail(NB_ERR_ARG, "fit_new: the distillation alpha must be in [0, 1], got %g", (double)opts->alpha);
    if (opts->step && (opts->teacher || opts->scaler || opts->grad_norms))
        return nb__fail(NB_ERR_ARG, "fit_new: a custom step does not combine with a teacher, a grad scaler or "
                        "grad_norms (they need the loss's graph or each parameter's whole gradient)");
    if (opts->n_meta < 0 || opts->n_meta > 64 || (opts->n_meta > 0 && (!opts->meta_keys || !opts->meta_values)))
        return nb__fail(NB_ERR_ARG, "fit_new: n_meta must be 0 to 64 with its keys and values, got %d", opts->n_meta);
    if (opts->out && strlen(opts->out) + sizeof LONGEST_NAME > PATH_CAP)
        return nb__fail(NB_ERR_ARG, "fit_new: the output folder's path is %zu bytes; its files' paths "
                        "would pass the %d bytes a path may have", strlen(opts->out), PATH_CAP);
    if (nb_module_num_params(m) > MAX_PARAMS)
        return nb__fail(NB_ERR_ARG, "fit_new: the model has more than %d parameter tensors", MAX_PARAMS);
    nb_fit *f = nb__alloc(sizeof *f);
    if (!f) return NULL;
    *f = (nb_fit){.model = m, .optim = o, .sched = s, .train = train, .eval = eval, .o = *opts,
                  .curves = nb_curves_new(), .best = INFINITY, .resumed_seed = opts->seed};
    f->n_norms = opts->grad_norms ? nb_module_num_params(m) : 0;
    bool norms_ok = !f->n_norms || ((f->norm_sum = nb__alloc(sizeof *f->norm_sum * (size_t)f->n_norms)) &&
                                    (f->norm_hook = nb__alloc(sizeof *f->norm_hook * (size_t)f->n_norms)));
    if (norms_ok && f->n_norms) memset(f->norm_hook, 0, sizeof *f->norm_hook * (size_t)f->n_norms);
    if (!f->curves || !norms_ok || (opts->out && !set_best_path(f, join(opts->out, "model.safetensors")))) {
        nb_fit_free(f);
        return NULL;
    }
    /* what would fail the first save (names, weights, the folder) is found now, not after an epoch */
    if (opts->out && nb_checkpoint_check(join(opts->out, "checkpoint.safetensors"), m, o) != NB_OK) {
        nb__fail_prefix("a save would fail");
        nb_fit_free(f);
        return NULL;
    }
    return f;
}

void nb_fit_free(nb_fit *f) {
    if (!f) return;
    nb_curves_free(f->curves);
    nb__dealloc(f->best_path, f->best_cap);
    nb__dealloc(f->norm_sum, sizeof *f->norm_sum * (size_t)f->n_norms);
    nb__dealloc(f->norm_hook, sizeof *f->norm_hook * (size_t)f->n_norms);
    nb__dealloc(f->norms, sizeof *f->norms * (size_t)(f->norm_cap * f->n_norms));
    nb__dealloc(f, sizeof *f);
}

nb_fit_info nb_fit_info_get(const nb_fit *f) {
    if (!f) return (nb_fit_info){.best = INFINITY};
    return (nb_fit_info){.epoch = f->epoch, .model_epoch = f->model_epoch, .best = f->best,
                         .bad_epochs = f->bad_epochs, .end = f->end, .restored = f->restored,
                         .resumed_seed = f->resumed_seed, .curves = f->curves,
                         .grad_norms = f->o.grad_norms ? f->norms : NULL, .n_grad_norms = f->n_norms};
}

/* A metadata value of st that is a decimal integer ("nabla.epoch"), or -1 (also for st NULL). */
static long long meta_integer(const nb_safetensors *st, const char *key) {
    const char *text = st ? nb_safetensors_meta(st, key) : NULL;
    char *end = NULL;
    long long v = text ? strtoll(text, &end, 10) : -1;
    return text && end != text && !*end ? v : -1;
}

/* The epoch recorded in a model file's metadata, or -1 when it is absent or unreadable. */
static long long model_file_epoch(const char *path) {
    nb_safetensors *st = nb_safetensors_open(path);
    long long epoch = meta_integer(st, "nabla.epoch");
    nb_safetensors_close(st);
    nb_error_clear(); /* a missing file is an answer here, not an error */
    return epoch;
}

/* After a resume: the model file beside the checkpoint must hold the epoch the checkpoint names
 * (see nb_fit_resume). */
static bool check_model_file(nb_fit *f, const char *checkpoint) {
    if (!f->o.out) return true; /* no model file is kept */
    const char *slash = strrchr(checkpoint, '/');
    size_t cap = strlen(checkpoint) + 32;
    char *path = nb__alloc(cap);
    if (!path) return false;
    snprintf(path, cap, "%.*s/model.safetensors", slash ? (int)(slash - checkpoint) : 1, slash ? checkpoint : ".");
    bool ok = set_best_path(f, path);
    nb__dealloc(path, cap);
    long long held = ok ? model_file_epoch(f->best_path) : -1;
    if (!ok || held == f->model_epoch) return ok;
    FILE *log = f->o.log;
    if (log && held < 0) fprintf(log, "nabla: note: %s is missing or unreadable", f->best_path);
    else if (log)
        fprintf(log, "nabla: note: %s holds the weights of epoch %lld, %s than the checkpoint's epoch %lld",
                f->best_path, held, held > f->model_epoch ? "newer" : "older", (long long)f->model_epoch);
    if (log) fprintf(log, " (a run was stopped between its two writes); resuming from the checkpoint\n");
    if (f->model_epoch != f->epoch) {
        if (log)
            fprintf(log, "nabla: note: the best weights so far (epoch %lld) are lost; the best is chosen again "
                    "from epoch %lld on\n", (long long)f->model_epoch, (long long)f->epoch + 1);
        f->best = INFINITY;
        f->model_epoch = f->epoch;
    }
    if (!save_model(f)) return false;
    if (log) fprintf(log, "wrote %s from the checkpoint's weights (epoch %lld)\n", f->best_path, (long long)f->epoch);
    return true;
}

int64_t nb_fit_model_epoch(const char *checkpoint) {
    nb_safetensors *st = nb_safetensors_open(checkpoint);
    const char *extra = st ? nb_safetensors_meta(st, "nabla.extra") : NULL;
    json_error_t err;
    json_t *progress = extra ? json_loads(extra, 0, &err) : NULL, *me = json_object_get(progress, "model_epoch");
    long long epoch = json_is_integer(me) ? json_integer_value(me) : meta_integer(st, "nabla.epoch");
    json_decref(progress);
    nb_safetensors_close(st);
    return epoch;
}

nb_status nb_fit_resume(nb_fit *f, const char *checkpoint) {
    if (!f || !checkpoint) return nb__fail_status(NB_ERR_ARG, "fit_resume: NULL run or path");
    char *extra = NULL;
    if (nb_checkpoint_load(checkpoint, f->model, f->optim, f->sched, &f->epoch, &extra) != NB_OK)
        return nb__fail_prefix("resuming");
    bool ok = restore_progress(f, checkpoint, extra);
    free(extra);
    if (ok && f->o.log) fprintf(f->o.log, "resumed from %s after epoch %lld\n", checkpoint, (long long)f->epoch);
    return ok && check_model_file(f, checkpoint) ? NB_OK : nb_error_code();
}

/* One epoch from training to its files; false when the run ends here (f->end says why). */
static bool run_epoch(nb_fit *f, const nb_fit_callbacks *cb) {
    double t0 = now_seconds();
    epoch_figures tr;
    nb_eval_result ev = {0};
    if (!train_epoch(f, cb, &tr)) return false;
    if (evaluate(f->model, f->eval, f->o.label_smoothing, f->o.step ? &f->o : NULL, &ev) != NB_OK) return false;
    if (!loss_is_sane(f, weights_finite(f) ? ev.loss : NAN, "the evaluation")) return false;
    double lr = nb_optim_get_lr(f->optim, 0);
    nb_status s = !f->sched ? NB_OK : f->o.sched_on_loss ? nb_sched_step_metric(f->sched, ev.loss) : nb_sched_step(f->sched);
    if (s != NB_OK) return nb__fail_prefix("schedule step"), false;
    if (nb_curves_add(f->curves, (float)tr.loss, (float)ev.loss, (float)tr.acc, (float)ev.accuracy) != NB_OK) return false;
    if (f->o.grad_norms && !close_norms_epoch(f)) return false;
    bool improved = ev.loss < f->best;
    f->best = improved ? ev.loss : f->best;
    f->bad_epochs = improved ? 0 : f->bad_epochs + 1;
    nb_fit_epoch e = {f->epoch + 1, f->o.epochs, tr.loss, tr.acc, ev.loss, ev.accuracy, lr, now_seconds() - t0,
                      improved, f->best, f->bad_epochs};
    bool go_on = !cb || !cb->on_epoch || cb->on_epoch(&e, cb->user);
    f->epoch++;
    if (!save_outputs(f, improved || !f->o.select_best)) return false;
    if (f->o.early_stop > 0 && f->bad_epochs >= f->o.early_stop) return f->end = NB_FIT_EARLY_STOP, false;
    if (!go_on) return f->end = NB_FIT_STOPPED, false;
    return true;
}

/* The epochs to do, with the parameters watched and anomaly mode on when the options say so;
 * both put back as they were at the end. */
static bool run_epochs(nb_fit *f, const nb_fit_callbacks *cb) {
    bool anomaly_was = nb_is_anomaly_enabled();
    if (f->o.detect_anomaly) nb_set_detect_anomaly(true);
    bool ok = !f->o.grad_norms || watch_gradients(f, true);
    while (ok && f->epoch < f->o.epochs) ok = run_epoch(f, cb);
    if (f->o.grad_norms) watch_gradients(f, false);
    nb_set_detect_anomaly(anomaly_was);
    return ok;
}

nb_status nb_fit_run(nb_fit *f, const nb_fit_callbacks *cb) {
    if (!f) return nb__fail_status(NB_ERR_ARG, "fit_run: NULL run");
    f->end = NB_FIT_RUNNING;
    f->restored = false;
    bool ok = true;
    if (f->epoch >= f->o.epochs) /* a finished run: its files are written again */
        ok = save_outputs(f, !f->o.select_best);
    ok = ok && run_epochs(f, cb);
    if (ok) f->end = NB_FIT_DONE;
    if (f->end == NB_FIT_RUNNING) return f->end = NB_FIT_FAILED, nb_error_code();
    if (f->end == NB_FIT_DIVERGED) return NB_ERR_ARG;
    if (f->o.select_best && (f->end == NB_FIT_DONE || f->end == NB_FIT_EARLY_STOP) && !restore_best(f))
        return nb_error_code(); /* the end stays: training did end so */
    return NB_OK;
}
