/*
 * prune.c — unstructured pruning with masks (nabla/prune.h): ranking elements by a score (|w|
 * for magnitude, w^2 H_ii / 2 for Optimal Brain Damage), masks kept as "<param>_mask" buffers
 * with a gradient hook, and the Hessian diagonal OBD needs.
 *
 * Scores are ranked on the host: a parameter's elements (or all the named parameters' elements,
 * for a global ranking) are sorted by (score, parameter, flat index), and the first
 * round(amount * count) are pruned.  Elements already pruned score -inf, so they rank first and
 * `amount` is a sparsity of the whole tensor.  The schedules that say when to prune and to
 * which sparsity close the file.
 */
#include "module.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameters by name */

typedef struct {
    nb_module *owner;  /* the module holding the parameter */
    const char *local; /* its name there (the owner's, lives with it) */
    nb_tensor *param, *mask; /* mask NULL when not pruned */
} target;

/* The buffer of owner named "<local>_mask", or NULL. */
static nb_tensor *mask_of(const nb_module *owner, const char *local) {
    size_t len = strlen(local);
    for (int i = 0; i < owner->buffers.n; i++) {
        const char *b = owner->buffers.at[i].name;
        if (!strncmp(b, local, len) && !strcmp(b + len, "_mask")) return owner->buffers.at[i].tensor;
    }
    return NULL;
}

/* Fills t for the parameter named `name` of model; false with NB_ERR_ARG naming it otherwise. */
static bool resolve(nb_module *model, const char *name, const char *op, target *t) {
    const char *dot = strrchr(name, '.');
    nb_module *owner = model;
    if (dot) {
        char *path = nb__strcat2(name, "");
        if (!path) return false;
        path[dot - name] = '\0';
        owner = nb_module_child(model, path);
        nb__strfree(path);
    }
    const char *local = dot ? dot + 1 : name;
    for (int i = 0; owner && i < owner->params.n; i++)
        if (!strcmp(owner->params.at[i].name, local)) {
            *t = (target){owner, owner->params.at[i].name, owner->params.at[i].tensor, NULL};
            t->mask = mask_of(owner, t->local);
            return true;
        }
    nb__fail(NB_ERR_ARG, "%s: '%s' is not a parameter of the model", op, name);
    return false;
}

/* Resolves names[0 .. n-1] into ts (n entries), checking everything first. */
static nb_status resolve_all(nb_module *model, int n, const char *const *names, const char *op,
                             target *ts) {
    if (!model || !names) return nb__fail_status(NB_ERR_NULL, "%s: model or names is NULL", op);
    if (n < 1) return nb__fail_status(NB_ERR_ARG, "%s: %d names: need >= 1", op, n);
    for (int k = 0; k < n; k++) {
        if (!names[k]) return nb__fail_status(NB_ERR_NULL, "%s: name %d is NULL", op, k);
        if (!resolve(model, names[k], op, &ts[k])) return nb_error_code();
        for (int j = 0; j < k; j++)
            if (ts[j].param == ts[k].param)
                return nb__fail_status(NB_ERR_ARG, "%s: '%s' is named twice", op, names[k]);
    }
    return NB_OK;
}

static nb_status check_amount(float amount, const char *op) {
    if (!(amount >= 0 && amount < 1))
        return nb__fail_status(NB_ERR_ARG, "%s: amount %g: need a fraction in [0, 1)", op, (double)amount);
    return NB_OK;
}

/* A host copy of t's values (nb__alloc'd, numel floats), or NULL. */
static float *host_values(const nb_tensor *t) {
    int64_t n = nb_numel(t);
    float *v = nb__alloc(sizeof(float) * (size_t)(n ? n : 1));
    if (v && nb_copy_to(t, v, n) != NB_OK) {
        nb__dealloc(v, sizeof(float) * (size_t)(n ? n : 1));
        return NULL;
    }
    return v;
}
static void host_free(float *v, const nb_tensor *t) {
    int64_t n = nb_numel(t);
    nb__dealloc(v, sizeof(float) * (size_t)(n ? n : 1));
}

/* ---- masks */

/* The gradient hook of a pruned parameter: pruned elements get no gradient. */
static nb_tensor *mask_grad(nb_tensor *grad, void *mask) { return nb_mul(grad, mask); }

/* p *= mask, recording nothing. */
static nb_status apply_mask(nb_tensor *p, nb_tensor *mask) {
    bool was = nb_set_grad_enabled(false);
    nb_scope_begin();
    nb_status st = nb_copy(p, nb_mul(p, mask));
    nb_scope_end();
    nb_set_grad_enabled(was);
    return st;
}

/* Gives t a mask (a new buffer and hook when it has none) holding keep[], and applies it. */
static nb_status set_mask(target *t, const float *keep) {
    if (!t->mask) {
        char *name = nb__strcat2(t->local, "_mask");
        if (!name) return nb_error_code();
        t->mask = nb_module_add_buffer(t->owner, name, NB_F32, nb_ndim(t->param), nb_shape(t->param));
        nb__strfree(name);
        if (!t->mask) return nb_error_code();
        /* a frozen parameter gets no gradient to mask; nb_prune_apply still holds it at 0 */
        if (nb_requires_grad(t->param) && !nb_tensor_register_hook(t->param, mask_grad, t->mask))
            return nb_error_code();
    }
    nb_status st = nb_copy_from(t->mask, keep, nb_numel(t->param));
    return st == NB_OK ? apply_mask(t->param, t->mask) : st;
}

/* ---- ranking */

typedef struct {
    float score;
    int k;     /* which parameter */
    int64_t i; /* flat index in it */
} ranked;

static int by_score(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    if (x->k != y->k) return x->k < y->k ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Prunes round(amount * count) of the elements of ts[0 .. n-1] ranked together by scores[k]
 * (pruned elements count as -inf); the new masks are the old times the new. */
static nb_status prune_group(target *ts, int n, float *const *scores, float amount) {
    int64_t total = 0;
    for (int k = 0; k < n; k++) total += nb_numel(ts[k].param);
    ranked *r = nb__alloc(sizeof *r * (size_t)total);
    float **keep = nb__alloc(sizeof *keep * (size_t)n);
    nb_status st = r && keep ? NB_OK : nb_error_code();
    for (int k = 0; k < n && st == NB_OK; k++) {
        keep[k] = ts[k].mask ? host_values(ts[k].mask) : NULL;
        if (!keep[k] && ts[k].mask) st = nb_error_code();
    }
    int64_t at = 0;
    for (int k = 0; k < n && st == NB_OK; k++)
        for (int64_t i = 0; i < nb_numel(ts[k].param); i++)
            r[at++] = (ranked){keep[k] && keep[k][i] == 0 ? -INFINITY : scores[k][i], k, i};
    if (st == NB_OK) {
        qsort(r, (size_t)total, sizeof *r, by_score);
        /* nearbyint rounds half to even in the default rounding mode, as Python's round */
        int64_t cut = (int64_t)nearbyint((double)amount * (double)total);
        /* scores become the masks: 1 kept, 0 pruned, times the old mask */
        for (int k = 0; k < n; k++)
            for (int64_t i = 0; i < nb_numel(ts[k].param); i++)
                scores[k][i] = keep[k] ? keep[k][i] : 1.0f;
        for (int64_t j = 0; j < cut; j++) scores[r[j].k][r[j].i] = 0.0f;
        for (int k = 0; k < n && st == NB_OK; k++) st = set_mask(&ts[k], scores[k]);
    }
    for (int k = 0; keep && k < n; k++)
        if (keep[k]) host_free(keep[k], ts[k].param);
    nb__dealloc(keep, sizeof *keep * (size_t)n);
    nb__dealloc(r, sizeof *r * (size_t)total);
    return st;
}

/* Prunes by scores, each parameter apart or all together.  Takes the scores (freed here). */
static nb_status prune_by(target *ts, int n, float **scores, float amount, bool global) {
    nb_status st = NB_OK;
    if (global) st = prune_group(ts, n, scores, amount);
    else
        for (int k = 0; k < n && st == NB_OK; k++) st = prune_group(&ts[k], 1, &scores[k], amount);
    return st;
}

static void free_scores(float **scores, const target *ts, int n) {
    for (int k = 0; k < n; k++)
        if (scores[k]) host_free(scores[k], ts[k].param);
    nb__dealloc(scores, sizeof *scores * (size_t)n);
}

static nb_status magnitude(nb_module *model, int n, const char *const *names, float amount,
                           bool global, const char *op) {
    if (check_amount(amount, op) != NB_OK) return nb_error_code();
    target *ts = nb__alloc(sizeof *ts * (size_t)(n > 0 ? n : 1));
    if (!ts) return nb_error_code();
    nb_status st = resolve_all(model, n, names, op, ts);
    float **scores = st == NB_OK ? nb__alloc(sizeof *scores * (size_t)n) : NULL;
    if (st == NB_OK && !scores) st = nb_error_code();
    for (int k = 0; scores && k < n; k++) {
        scores[k] = host_values(ts[k].param);
        if (!scores[k]) {
            st = nb_error_code();
            continue;
        }
        for (int64_t i = 0; i < nb_numel(ts[k].param); i++) scores[k][i] = fabsf(scores[k][i]);
    }
    if (st == NB_OK) st = prune_by(ts, n, scores, amount, global);
    if (scores) free_scores(scores, ts, n);
    nb__dealloc(ts, sizeof *ts * (size_t)(n > 0 ? n : 1));
    return st;
}

nb_status nb_prune_magnitude(nb_module *model, int n, const char *const *names, float amount) {
    return magnitude(model, n, names, amount, false, "prune_magnitude");
}

nb_status nb_prune_global_magnitude(nb_module *model, int n, const char *const *names, float amount) {
    return magnitude(model, n, names, amount, true, "prune_global_magnitude");
}

/* ---- applying, removing, measuring */

nb_status nb_prune_apply(nb_module *model) {
    if (!model) return nb__fail_status(NB_ERR_NULL, "prune_apply: model is NULL");
    nb_status st = NB_OK;
    for (int i = 0; i < model->params.n && st == NB_OK; i++) {
        nb_tensor *mask = mask_of(model, model->params.at[i].name);
        if (mask) st = apply_mask(model->params.at[i].tensor, mask);
    }
    for (int c = 0; c < model->children.n && st == NB_OK; c++) st = nb_prune_apply(NB__CHILD(model, c));
    return st;
}

nb_status nb_prune_remove(nb_module *model, int n, const char *const *names) {
    target *ts = nb__alloc(sizeof *ts * (size_t)(n > 0 ? n : 1));
    if (!ts) return nb_error_code();
    nb_status st = resolve_all(model, n, names, "prune_remove", ts);
    for (int k = 0; k < n && st == NB_OK; k++)
        if (!ts[k].mask) st = nb__fail_status(NB_ERR_ARG, "prune_remove: '%s' is not pruned", names[k]);
    for (int k = 0; k < n && st == NB_OK; k++) {
        for (nb__hook *h = ts[k].param->hooks; h; h = h->next)
            if (h->fn == mask_grad && h->ctx == ts[k].mask) nb_tensor_remove_hook(ts[k].param, h->handle);
        char *name = nb__strcat2(ts[k].local, "_mask");
        if (!name) st = nb_error_code();
        else nb__module_drop_buffer(ts[k].owner, name);
        nb__strfree(name);
    }
    nb__dealloc(ts, sizeof *ts * (size_t)(n > 0 ? n : 1));
    return st;
}

/* Elements of t that are exactly 0, or -1 when they cannot be read. */
static int64_t zeros_of(const nb_tensor *t) {
    float *v = host_values(t);
    if (!v) return -1;
    int64_t z = 0;
    for (int64_t i = 0; i < nb_numel(t); i++) z += v[i] == 0;
    host_free(v, t);
    return z;
}

int nb_prune_sparsity(const nb_module *model, nb_prune_layer *layers, int cap, double *global_masked,
                      double *global_all) {
    if (!model) return nb__fail(NB_ERR_NULL, "prune_sparsity: model is NULL"), -1;
    int n = nb_module_num_params(model);
    int64_t count[2] = {0, 0}, zeros[2] = {0, 0}; /* masked, all */
    for (int i = 0; i < n; i++) {
        const char *name;
        nb_tensor *p = nb_module_param(model, i, &name);
        target t;
        if (!p || !resolve((nb_module *)model, name, "prune_sparsity", &t)) return -1;
        int64_t z = zeros_of(p);
        if (z < 0) return -1;
        if (i < cap && layers) layers[i] = (nb_prune_layer){name, nb_numel(p), z, t.mask != NULL};
        count[1] += nb_numel(p), zeros[1] += z;
        if (t.mask) count[0] += nb_numel(p), zeros[0] += z;
    }
    if (global_masked) *global_masked = count[0] ? (double)zeros[0] / (double)count[0] : 0;
    if (global_all) *global_all = count[1] ? (double)zeros[1] / (double)count[1] : 0;
    return n;
}

/* ---- Optimal Brain Damage */

static nb_status check_obd(const nb_obd_opts *o) {
    if (!o) return nb__fail_status(NB_ERR_NULL, "obd: opts is NULL");
    if (!o->loss) return nb__fail_status(NB_ERR_ARG, "obd: opts.loss is NULL");
    if (o->batches < 0) return nb__fail_status(NB_ERR_ARG, "obd: batches %d: need >= 1", o->batches);
    if (o->samples < 0) return nb__fail_status(NB_ERR_ARG, "obd: samples %d: need >= 1", o->samples);
    return NB_OK;
}

/* hdiag[i] += H_ii exactly: one pass through g's graph (g = dloss/dp, made with create_graph)
 * per element i, seeded with the one-hot e_i, gives e_i^T dg/dp = row i of H. */
static nb_status exact_diagonal(nb_tensor *g, nb_tensor *p, double *hdiag) {
    int64_t n = nb_numel(p);
    float *e = nb__alloc(sizeof(float) * (size_t)n), *row = nb__alloc(sizeof(float) * (size_t)n);
    nb_status st = e && row ? NB_OK : nb_error_code();
    if (e) memset(e, 0, sizeof(float) * (size_t)n);
    const nb_grad_options keep = {.retain_graph = true, .materialize_grads = true};
    for (int64_t i = 0; i < n && st == NB_OK; i++) {
        nb_scope_begin();
        e[i] = 1.0f;
        nb_tensor *seed = nb_from_data(e, nb_ndim(p), nb_shape(p)), *h = NULL;
        e[i] = 0.0f;
        st = seed ? nb_autograd_grad(1, &g, &seed, 1, &p, &h, &keep) : nb_error_code();
        if (st == NB_OK) st = nb_copy_to(h, row, n);
        if (st == NB_OK) hdiag[i] += row[i];
        nb_scope_end();
    }
    nb__dealloc(e, sizeof(float) * (size_t)n);
    nb__dealloc(row, sizeof(float) * (size_t)n);
    return st;
}

/* hdiag[k][i] += H_ii of batch b's loss for every parameter, exactly or by Hutchinson's. */
static nb_status batch_diagonal(nb_module *model, int b, const nb_obd_opts *o, int n, const target *ts,
                                const nb_hessian_estimate *used, double **hdiag) {
    nb_scope_begin();
    nb_tensor *loss = o->loss(model, b, o->ctx);
    nb_status st = NB_OK;
    if (!loss) st = nb__fail_prefix("obd: loss of batch %d", b);
    else if (nb_numel(loss) != 1)
        st = nb__fail_status(NB_ERR_SHAPE, "obd: loss of batch %d has %lld elements: need 1", b,
                             (long long)nb_numel(loss));
    for (int k = 0; k < n && st == NB_OK; k++) {
        nb_tensor *p = ts[k].param, *d = NULL;
        if (used[k] == NB_HESSIAN_EXACT) {
            const nb_grad_options graph = {.create_graph = true, .materialize_grads = true};
            st = nb_autograd_grad(1, &loss, NULL, 1, &p, &d, &graph);
            if (st == NB_OK) st = exact_diagonal(d, p, hdiag[k]);
            continue;
        }
        st = nb_hessian_diagonal_estimate(loss, 1, &p, o->samples ? o->samples : NB_OBD_SAMPLES, &d);
        float *v = st == NB_OK ? host_values(d) : NULL;
        if (st == NB_OK && !v) st = nb_error_code();
        for (int64_t i = 0; v && i < nb_numel(p); i++) hdiag[k][i] += v[i];
        if (v) host_free(v, p);
    }
    nb_scope_end();
    return st;
}

/* Saliencies w_i^2 H_ii / 2 of ts[0 .. n-1] into host arrays scores[k] (nb__alloc'd). */
static nb_status saliencies(nb_module *model, int n, const target *ts, const nb_obd_opts *o,
                            nb_hessian_estimate *used, float **scores) {
    int batches = o->batches ? o->batches : 1;
    int64_t cap = o->exact_max ? o->exact_max : NB_OBD_EXACT_MAX;
    double **hdiag = nb__alloc(sizeof *hdiag * (size_t)n);
    nb_status st = hdiag ? NB_OK : nb_error_code();
    for (int k = 0; k < n && st == NB_OK; k++) {
        used[k] = nb_numel(ts[k].param) <= cap ? NB_HESSIAN_EXACT : NB_HESSIAN_HUTCHINSON;
        hdiag[k] = nb__alloc(sizeof(double) * (size_t)nb_numel(ts[k].param));
        if (!hdiag[k]) st = nb_error_code();
        else memset(hdiag[k], 0, sizeof(double) * (size_t)nb_numel(ts[k].param));
    }
    bool was = nb_set_grad_enabled(true);
    for (int b = 0; b < batches && st == NB_OK; b++) st = batch_diagonal(model, b, o, n, ts, used, hdiag);
    nb_set_grad_enabled(was);
    for (int k = 0; k < n && st == NB_OK; k++) {
        scores[k] = host_values(ts[k].param);
        if (!scores[k]) st = nb_error_code();
        for (int64_t i = 0; scores[k] && i < nb_numel(ts[k].param); i++) {
            double w = scores[k][i];
            scores[k][i] = (float)(w * w * (hdiag[k][i] / batches) / 2);
        }
    }
    for (int k = 0; hdiag && k < n; k++)
        if (hdiag[k]) nb__dealloc(hdiag[k], sizeof(double) * (size_t)nb_numel(ts[k].param));
    nb__dealloc(hdiag, sizeof *hdiag * (size_t)n);
    return st;
}

/* Resolves names and computes their saliencies: *ts, *scores (zeroed arrays of n) and used
 * (may be NULL) for the caller, who frees ts and scores with obd_done. */
static nb_status obd_scores(nb_module *model, int n, const char *const *names, const nb_obd_opts *o,
                            const char *op, target **ts, float ***scores, nb_hessian_estimate *used) {
    *ts = NULL, *scores = NULL;
    if (check_obd(o) != NB_OK) return nb_error_code();
    size_t cnt = (size_t)(n > 0 ? n : 1);
    *ts = nb__alloc(sizeof **ts * cnt);
    if (!*ts) return nb_error_code();
    nb_status st = resolve_all(model, n, names, op, *ts);
    if (st != NB_OK) return st;
    *scores = nb__alloc(sizeof **scores * cnt);
    nb_hessian_estimate *u = nb__alloc(sizeof *u * cnt);
    if (!*scores || !u) st = nb_error_code();
    else {
        memset(*scores, 0, sizeof **scores * cnt);
        st = saliencies(model, n, *ts, o, u, *scores);
        if (st == NB_OK && used) memcpy(used, u, sizeof *u * (size_t)n);
    }
    nb__dealloc(u, sizeof *u * cnt);
    return st;
}

static void obd_done(int n, target *ts, float **scores) {
    if (scores) free_scores(scores, ts, n);
    nb__dealloc(ts, sizeof *ts * (size_t)(n > 0 ? n : 1));
}

nb_status nb_obd_saliency(nb_module *model, int n, const char *const *names, const nb_obd_opts *opts,
                          nb_tensor **saliency, nb_hessian_estimate *used) {
    if (!saliency) return nb__fail_status(NB_ERR_NULL, "obd_saliency: saliency is NULL");
    for (int k = 0; k < n; k++) saliency[k] = NULL;
    target *ts;
    float **scores;
    nb_status st = obd_scores(model, n, names, opts, "obd_saliency", &ts, &scores, used);
    for (int k = 0; k < n && st == NB_OK; k++) {
        saliency[k] = nb_from_data(scores[k], nb_ndim(ts[k].param), nb_shape(ts[k].param));
        if (!saliency[k]) st = nb_error_code();
    }
    if (st != NB_OK)
        for (int k = 0; k < n; k++) nb_tensor_free(saliency[k]), saliency[k] = NULL;
    obd_done(n, ts, scores);
    return st;
}

nb_status nb_prune_obd(nb_module *model, int n, const char *const *names, float amount,
                       const nb_obd_opts *opts, nb_hessian_estimate *used) {
    if (check_amount(amount, "prune_obd") != NB_OK) return nb_error_code();
    target *ts;
    float **scores;
    nb_status st = obd_scores(model, n, names, opts, "prune_obd", &ts, &scores, used);
    if (st == NB_OK) st = prune_by(ts, n, scores, amount, opts->global);
    obd_done(n, ts, scores);
    return st;
}

/* ---- schedules */

bool nb_prune_schedule_at(const nb_prune_schedule *s, int64_t t, float *sparsity) {
    if (!s) return nb__fail(NB_ERR_NULL, "prune_schedule_at: schedule is NULL"), false;
    bool cubic = s->kind == NB_PRUNE_CUBIC;
    if ((s->kind != NB_PRUNE_ONESHOT && !cubic) || !(s->final >= 0 && s->final < 1) || s->start < 0 ||
        (cubic && (!(s->initial >= 0 && s->initial <= s->final) || s->every < 1 || s->steps < 1)))
        return nb__fail(NB_ERR_ARG, "prune_schedule_at: a schedule needs a known kind, 0 <= initial <= final < 1, "
                        "start >= 0 and, for the cubic one, every >= 1 and steps >= 1"), false;
    int64_t every = cubic ? s->every : 1, last = cubic ? s->steps : 0, k = (t - s->start) / every;
    if (t < s->start || (t - s->start) % every || k > last) return false;
    if (sparsity) {
        double left = cubic ? 1.0 - (double)k / s->steps : 0.0; /* 1 - (t - t0) / (n dt) */
        *sparsity = (float)(s->final + (s->initial - s->final) * left * left * left);
    }
    return true;
}
