/*
 * checkpoint.c — weights and checkpoints in safetensors files.
 *
 * Names: weights files hold the state_dict names ("0.weight"); checkpoints prefix them with
 * "model." and add the optimiser's moment buffers as "optim.<name>".  Scalar state travels in
 * the metadata as JSON: "nabla.optim", "nabla.sched", "nabla.rng", "nabla.epoch", "nabla.extra".
 * The RNG's seed and offset are decimal strings, since JSON readers (jansson included) stop at
 * int64 and a seed may use all 64 bits.  A checkpoint loaded without an optimiser (or a
 * schedule) restores the model alone and passes over the optimiser's tensors (or JSON).
 *
 * Loading is two-phase so that a bad file changes nothing: first every tensor the objects need
 * is read and its shape checked, and the optimiser's and schedule's JSON is tried on the
 * objects with their previous state kept aside; only then are values copied in.  A non-strict
 * load (torch's strict=False) lists the tensors the file lacks or has in excess instead of
 * refusing them; a dtype or shape mismatch is still an error.
 *
 * Non-finite weights are never written (a diverged run must not replace the last good model)
 * and never loaded; only the model's floating-point tensors are checked, not the optimiser's.
 * Names have no length limit: each is copied into its own allocation.
 */
#include "nabla.h"
#include "nabla/optim.h"
#include "io.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- the tensors of a model (and optimiser) under their names in the file */

typedef struct {
    char *name;      /* prefix + state_dict name, owned */
    nb_tensor *t;    /* the object's tensor */
    bool in_file;    /* set by check_all */
} entry;

typedef struct {
    int n, cap, n_model; /* entries [0, n_model) are the model's, the rest the optimiser's */
    entry *e;
} entry_list;

static void list_free(entry_list *l) {
    for (int i = 0; i < l->n; i++) nb__strfree(l->e[i].name);
    nb__dealloc(l->e, sizeof *l->e * (size_t)l->cap);
    *l = (entry_list){0};
}

/* Names are copied: nb_module_param's live only until its next call, and have no length limit. */
static bool list_add(entry_list *l, const char *prefix, const char *name, nb_tensor *t) {
    if (!t) return false; /* the lookup's error stands */
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        entry *e = nb__alloc(sizeof *e * (size_t)cap);
        if (!e) return false;
        if (l->n) memcpy(e, l->e, sizeof *e * (size_t)l->n);
        nb__dealloc(l->e, sizeof *e * (size_t)l->cap);
        l->e = e;
        l->cap = cap;
    }
    char *full = nb__strcat2(prefix, name);
    if (!full) return false;
    l->e[l->n++] = (entry){.name = full, .t = t};
    return true;
}

/* Parameters and buffers of m, then (when o is given) the optimiser's state tensors. */
static bool collect(entry_list *l, const nb_module *m, nb_optim *o, const char *model_prefix) {
    const char *name;
    for (int i = 0, n = nb_module_num_params(m); i < n; i++) {
        nb_tensor *t = nb_module_param(m, i, &name);
        if (!list_add(l, model_prefix, name, t)) return false;
    }
    for (int i = 0, n = nb_module_num_buffers(m); i < n; i++) {
        nb_tensor *t = nb_module_buffer(m, i, &name);
        if (!list_add(l, model_prefix, name, t)) return false;
    }
    l->n_model = l->n;
    if (!o) return true;
    int n = nb_optim_state_tensors(o, NULL, NULL, 0);
    size_t cap = (size_t)(n ? n : 1);
    const char **names = nb__alloc(sizeof *names * cap);
    nb_tensor **ts = names ? nb__alloc(sizeof *ts * cap) : NULL;
    bool ok = ts != NULL;
    if (ok) nb_optim_state_tensors(o, names, ts, n);
    for (int i = 0; ok && i < n; i++) ok = list_add(l, "optim.", names[i], ts[i]);
    nb__dealloc(names, sizeof *names * cap);
    nb__dealloc(ts, sizeof *ts * cap);
    return ok;
}

/* The list as the parallel arrays nb_safetensors_save takes; with save false, only what the
 * save would check (nb__safetensors_check). */
static nb_status save_list(const char *path, const entry_list *l, int n_meta,
                           const char *const *keys, const char *const *values, bool save) {
    size_t cap = (size_t)(l->n ? l->n : 1);
    const char **names = nb__alloc(sizeof *names * cap);
    nb_tensor **ts = names ? nb__alloc(sizeof *ts * cap) : NULL;
    nb_status s = ts ? NB_OK : NB_ERR_MEMORY;
    for (int i = 0; ts && i < l->n; i++) names[i] = l->e[i].name, ts[i] = l->e[i].t;
    if (s == NB_OK)
        s = (save ? nb_safetensors_save : nb__safetensors_check)(path, l->n, names, ts, keys,
                                                                 values, n_meta);
    nb__dealloc(names, sizeof *names * cap);
    nb__dealloc(ts, sizeof *ts * cap);
    return s;
}

/* ---- finite weights */

/* NB_OK when every element of t is finite; else `code` with "<what>: tensor 'name' element
 * [i,j] is nan<why>". */
static nb_status check_finite(nb_status code, const char *what, const char *name,
                              const nb_tensor *t, const char *why) {
    double value = 0;
    int64_t at = nb__first_non_finite(t, &value);
    if (at == -1) return NB_OK;
    if (at == -2) return NB_ERR_MEMORY;
    char text[32 + 24 * NB_MAX_DIMS];
    return nb__fail_status(code, "%s: tensor '%s' element %s is %g%s", what, name,
                           nb__flat_index_str(t->ndim, t->shape, at, text, sizeof text), value,
                           why);
}

/* Saving: the model's weights must be finite, so a diverged run never replaces a good file. */
static nb_status check_model_finite(const char *op, const char *path, const entry_list *l) {
    char what[64 + 4096];
    snprintf(what, sizeof what, "%s: '%s'", op, path);
    for (int i = 0; i < l->n_model; i++) {
        nb_status s = check_finite(NB_ERR_ARG, what, l->e[i].name, l->e[i].t,
                                   ": the weights are not finite (did training diverge?); the "
                                   "file is left as it was");
        if (s != NB_OK) return s;
    }
    return NB_OK;
}

static nb_status save_model(const char *op, const char *path, const entry_list *l, int n_meta,
                            const char *const *keys, const char *const *values, bool save) {
    nb_status s = check_model_finite(op, path, l);
    return s != NB_OK ? s : save_list(path, l, n_meta, keys, values, save);
}

/* The list with each model tensor nb__sparse_worth replaced by its two sparse parts (their
 * tensors in the current scope), and the metadata NB_SPARSE_META that names them in *meta
 * (a JSON object). */
static bool sparse_list(const entry_list *l, entry_list *out, json_t *meta) {
    for (int i = 0; i < l->n_model; i++) {
        const entry *e = &l->e[i];
        nb_tensor *mask, *values;
        if (!nb__sparse_worth(e->t)) {
            if (!list_add(out, "", e->name, e->t)) return false;
            continue;
        }
        json_t *shape = json_array();
        for (int d = 0; shape && d < e->t->ndim; d++) json_array_append_new(shape, json_integer(e->t->shape[d]));
        if (!shape || json_object_set_new(meta, e->name, shape) != 0)
            return nb__fail(NB_ERR_MEMORY, "module_save_sparse: out of memory"), false;
        if (!nb__sparse_encode(e->t, &mask, &values) || !list_add(out, e->name, ".__sparse_mask", mask) ||
            !list_add(out, e->name, ".__sparse_values", values))
            return false;
    }
    out->n_model = out->n;
    return true;
}

/* nb_module_save with the sparse tensors of sparse_list and their metadata after the caller's. */
static nb_status save_sparse(const char *path, const entry_list *l, int n_meta, const char *const *keys,
                             const char *const *values) {
    nb_status s = check_model_finite("module_save_sparse", path, l);
    if (s != NB_OK) return s;
    entry_list sl = {0};
    json_t *meta = json_object();
    size_t cap = (size_t)n_meta + 1;
    const char **k = nb__alloc(sizeof *k * cap), **v = k ? nb__alloc(sizeof *v * cap) : NULL;
    char *text = NULL;
    nb_scope_begin();
    if (!meta || !v) s = NB_ERR_MEMORY;
    else if (!sparse_list(l, &sl, meta)) s = nb_error_code();
    else if (!(text = json_dumps(meta, JSON_COMPACT))) s = NB_ERR_MEMORY;
    if (s == NB_OK) {
        for (int i = 0; i < n_meta; i++) k[i] = keys[i], v[i] = values[i];
        k[n_meta] = NB_SPARSE_META, v[n_meta] = text;
        s = save_list(path, &sl, n_meta + 1, k, v, true);
    }
    nb_scope_end();
    free(text);
    nb__dealloc(k, sizeof *k * cap);
    nb__dealloc(v, sizeof *v * cap);
    json_decref(meta);
    list_free(&sl);
    return s == NB_ERR_MEMORY && nb_error_code() != NB_ERR_MEMORY
               ? nb__fail_status(NB_ERR_MEMORY, "module_save_sparse: out of memory")
               : s;
}

static nb_status module_save(const char *op, const nb_module *m, const char *path, int n_meta,
                             const char *const *meta_keys, const char *const *meta_values, bool sparse) {
    if (!m || !path) return nb__fail_status(NB_ERR_NULL, "%s: module or path is NULL", op);
    entry_list l = {0};
    nb_status s = !collect(&l, m, NULL, "") ? nb_error_code()
                  : sparse ? save_sparse(path, &l, n_meta, meta_keys, meta_values)
                           : save_model(op, path, &l, n_meta, meta_keys, meta_values, true);
    list_free(&l);
    return s;
}

nb_status nb_module_save(const nb_module *m, const char *path, int n_meta,
                         const char *const *meta_keys, const char *const *meta_values) {
    return module_save("module_save", m, path, n_meta, meta_keys, meta_values, false);
}

nb_status nb_module_save_sparse(const nb_module *m, const char *path, int n_meta,
                                const char *const *meta_keys, const char *const *meta_values) {
    return module_save("module_save_sparse", m, path, n_meta, meta_keys, meta_values, true);
}

/* ---- loading */

static bool file_has(const nb_safetensors *st, const char *name) {
    if (nb__sparse_has(st, name)) return true;
    for (int j = 0, n = nb_safetensors_count(st); j < n; j++)
        if (!strcmp(nb_safetensors_name(st, j), name)) return true;
    return false;
}

static bool list_has(const entry_list *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->e[i].name, name)) return true;
    return false;
}

static bool report_add(int *n, char ***names, const char *name) {
    char **grown = nb__alloc(sizeof *grown * (size_t)(*n + 1)), *copy = nb__strcat2("", name);
    if (!grown || !copy) {
        nb__dealloc(grown, sizeof *grown * (size_t)(*n + 1));
        nb__strfree(copy);
        return false;
    }
    if (*n) memcpy(grown, *names, sizeof *grown * (size_t)*n);
    nb__dealloc(*names, sizeof *grown * (size_t)*n);
    grown[(*n)++] = copy;
    *names = grown;
    return true;
}

void nb_load_report_free(nb_load_report *r) {
    if (!r) return;
    for (int i = 0; i < r->n_missing; i++) nb__strfree(r->missing[i]);
    for (int i = 0; i < r->n_unexpected; i++) nb__strfree(r->unexpected[i]);
    nb__dealloc(r->missing, sizeof *r->missing * (size_t)r->n_missing);
    nb__dealloc(r->unexpected, sizeof *r->unexpected * (size_t)r->n_unexpected);
    *r = (nb_load_report){0};
}

/* The tensor the file holds under name, dense or sparse (nb_module_save_sparse). */
static nb_tensor *file_get(const nb_safetensors *st, const char *path, const char *name) {
    return nb__sparse_has(st, name) ? nb__sparse_get(st, path, name) : nb_safetensors_get(st, name);
}

/* name is a part of a tensor of the list that the file stores sparse. */
static bool list_has_part(const nb_safetensors *st, const entry_list *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (nb__sparse_part_of(st, name, l->e[i].name)) return true;
    return false;
}

/* One tensor of the file against the object's: same dtype and shape, and, for the model's
 * weights, finite. */
static bool check_one(const char *path, const nb_safetensors *st, const entry *e, bool model) {
    nb_scope_begin(); /* one tensor at a time: the check holds one copy at most */
    nb_tensor *t = file_get(st, path, e->name), *want = e->t;
    bool ok = t != NULL;
    if (ok && t->dtype != want->dtype) {
        nb__fail(NB_ERR_DTYPE, "%s: tensor '%s' is %s, expected %s", path, e->name,
                 nb_dtype_name(t->dtype), nb_dtype_name(want->dtype));
        ok = false;
    } else if (ok && !nb__same_shape(t, want)) {
        nb__fail(NB_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", path, e->name,
                 NB_SHP(t), NB_SHP(want));
        ok = false;
    } else if (ok && model) {
        ok = check_finite(NB_ERR_IO, path, e->name, t, ": the file holds non-finite weights; "
                          "nothing was loaded") == NB_OK;
    }
    nb_scope_end();
    return ok;
}

/* Phase one: each tensor of the list is in the file with the expected dtype and shape (and
 * finite, for the model's), and the file holds nothing else (besides tensors whose name starts
 * with `ignored`, when not NULL).  With a report (a non-strict load), tensors the file lacks or
 * has in excess are listed there instead of being errors. */
static bool check_all(const char *path, const nb_safetensors *st, entry_list *l,
                      const char *ignored, nb_load_report *report) {
    for (int i = 0; i < l->n; i++) {
        entry *e = &l->e[i];
        e->in_file = file_has(st, e->name);
        if (!e->in_file && !report)
            return nb__fail(NB_ERR_IO, "%s: has no tensor '%s'", path, e->name), false;
        if (!e->in_file && !report_add(&report->n_missing, &report->missing, e->name))
            return false;
    }
    /* shapes before extra tensors: a model of other sizes is named as such */
    for (int i = 0; i < l->n; i++)
        if (l->e[i].in_file && !check_one(path, st, &l->e[i], i < l->n_model)) return false;
    for (int j = 0, n = nb_safetensors_count(st); j < n; j++) {
        const char *name = nb_safetensors_name(st, j);
        if (list_has(l, name) || list_has_part(st, l, name) || (ignored && !strncmp(name, ignored, strlen(ignored)))) continue;
        if (!report)
            return nb__fail(NB_ERR_IO, "%s: holds a tensor '%s' that the model%s does not have",
                            path, name, ignored ? "" : " or optimiser"), false;
        if (!report_add(&report->n_unexpected, &report->unexpected, name)) return false;
    }
    return true;
}

static nb_status copy_all(const nb_safetensors *st, const char *path, const entry_list *l) {
    for (int i = 0; i < l->n; i++) {
        if (!l->e[i].in_file) continue;
        nb_status s;
        if (nb__sparse_has(st, l->e[i].name)) {
            nb_scope_begin();
            nb_tensor *t = file_get(st, path, l->e[i].name);
            s = t ? nb_copy(l->e[i].t, t) : nb_error_code();
            nb_scope_end();
        } else {
            s = nb_safetensors_load_into(st, l->e[i].name, l->e[i].t);
        }
        if (s != NB_OK) return s;
    }
    return NB_OK;
}

static nb_status load_module(nb_module *m, const char *path, nb_load_report *report) {
    nb_safetensors *st = nb_safetensors_open(path);
    if (!st) return nb_error_code();
    entry_list l = {0};
    nb_status s = collect(&l, m, NULL, "") && check_all(path, st, &l, NULL, report)
                      ? copy_all(st, path, &l)
                      : nb_error_code();
    list_free(&l);
    nb_safetensors_close(st);
    return s;
}

nb_status nb_module_load(nb_module *m, const char *path) {
    if (!m || !path) return nb__fail_status(NB_ERR_NULL, "module_load: module or path is NULL");
    return load_module(m, path, NULL);
}

nb_status nb_module_load_nonstrict(nb_module *m, const char *path, nb_load_report *report) {
    nb_load_report mine = {0};
    if (report) *report = mine;
    if (!m || !path)
        return nb__fail_status(NB_ERR_NULL, "module_load_nonstrict: module or path is NULL");
    nb_status s = load_module(m, path, &mine);
    if (s == NB_OK && report) *report = mine;
    else nb_load_report_free(&mine);
    return s;
}

/* ---- checkpoints */

/* The metadata of a checkpoint; optim and sched JSON are malloc'd (freed by ck_meta_free). */
typedef struct {
    char rng[96], epoch[32];
    char *optim, *sched;
    const char *keys[6], *values[6];
    int n;
} ck_meta;

static bool ck_meta_make(ck_meta *c, nb_optim *o, nb_sched *s, int64_t epoch, const char *extra) {
    nb_generator g = nb_rng_get_state();
    snprintf(c->rng, sizeof c->rng, "{\"seed\": \"%" PRIu64 "\", \"offset\": \"%" PRIu64 "\"}",
             g.seed, g.offset);
    snprintf(c->epoch, sizeof c->epoch, "%" PRId64, epoch);
    c->optim = o ? nb_optim_state_json(o) : NULL;
    c->sched = s ? nb_sched_state_json(s) : NULL;
    c->n = 0;
    c->keys[c->n] = "nabla.format", c->values[c->n++] = "checkpoint-1";
    c->keys[c->n] = "nabla.rng", c->values[c->n++] = c->rng;
    c->keys[c->n] = "nabla.epoch", c->values[c->n++] = c->epoch;
    if (c->optim) c->keys[c->n] = "nabla.optim", c->values[c->n++] = c->optim;
    if (c->sched) c->keys[c->n] = "nabla.sched", c->values[c->n++] = c->sched;
    if (extra) c->keys[c->n] = "nabla.extra", c->values[c->n++] = extra;
    return (!o || c->optim) && (!s || c->sched);
}

static void ck_meta_free(ck_meta *c) {
    free(c->optim);
    free(c->sched);
}

/* Saves, or (save false) checks all that a save would check. */
static nb_status checkpoint_write(const char *op, const char *path, const nb_module *m,
                                  nb_optim *o, nb_sched *s, int64_t epoch, const char *extra_json,
                                  bool save) {
    if (!m || !path) return nb__fail_status(NB_ERR_NULL, "%s: module or path is NULL", op);
    ck_meta c;
    entry_list l = {0};
    nb_status st = ck_meta_make(&c, o, s, epoch, extra_json) && collect(&l, m, o, "model.")
                       ? save_model(op, path, &l, c.n, c.keys, c.values, save)
                       : nb_error_code();
    list_free(&l);
    ck_meta_free(&c);
    return st;
}

nb_status nb_checkpoint_save(const char *path, const nb_module *m, nb_optim *o, nb_sched *s,
                             int64_t epoch, const char *extra_json) {
    return checkpoint_write("checkpoint_save", path, m, o, s, epoch, extra_json, true);
}

nb_status nb_checkpoint_check(const char *path, const nb_module *m, nb_optim *o) {
    return checkpoint_write("checkpoint_check", path, m, o, NULL, 0, NULL, false);
}

/* A decimal uint64 with nothing around it (strtoull alone takes signs and spaces). */
static bool parse_u64(const char *text, uint64_t *v) {
    if (!text || *text < '0' || *text > '9') return false;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(text, &end, 10);
    *v = x;
    return !*end && !errno;
}

static bool parse_rng(const char *path, const char *text, nb_generator *g) {
    json_error_t err;
    json_t *root = text ? json_loads(text, 0, &err) : NULL;
    const char *seed = json_string_value(json_object_get(root, "seed"));
    const char *off = json_string_value(json_object_get(root, "offset"));
    bool ok = json_object_size(root) == 2 && parse_u64(seed, &g->seed) && parse_u64(off, &g->offset);
    json_decref(root);
    if (!ok) nb__fail(NB_ERR_IO, "%s: metadata 'nabla.rng' is missing or malformed", path);
    return ok;
}

/* Tries the JSON states on o and s, restoring their previous state if either fails. */
static bool load_json_states(const char *path, const nb_safetensors *st, nb_optim *o, nb_sched *s) {
    const char *oj = nb_safetensors_meta(st, "nabla.optim"), *sj = nb_safetensors_meta(st, "nabla.sched");
    if ((o && !oj) || (s && !sj))
        return nb__fail(NB_ERR_IO, "%s: has no %s state", path, o && !oj ? "optimiser" : "schedule"), false;
    char *old_o = o ? nb_optim_state_json(o) : NULL, *old_s = s ? nb_sched_state_json(s) : NULL;
    bool ok = (!o || old_o) && (!s || old_s);
    if (ok && o) ok = nb_optim_load_state_json(o, oj) == NB_OK;
    if (ok && s) ok = nb_sched_load_state_json(s, sj) == NB_OK;
    if (!ok) {
        nb_status code = nb_error_code();
        char msg[512];
        snprintf(msg, sizeof msg, "%s", nb_error_message());
        if (o && old_o) nb_optim_load_state_json(o, old_o);
        if (s && old_s) nb_sched_load_state_json(s, old_s);
        nb__fail(code ? code : NB_ERR_IO, "%s: %s", path, msg);
    }
    free(old_o);
    free(old_s);
    return ok;
}

nb_status nb_checkpoint_load(const char *path, nb_module *m, nb_optim *o, nb_sched *s,
                             int64_t *epoch, char **extra_json) {
    if (!m || !path) return nb__fail_status(NB_ERR_NULL, "checkpoint_load: module or path is NULL");
    nb_safetensors *st = nb_safetensors_open(path);
    if (!st) return nb_error_code();
    const char *format = nb_safetensors_meta(st, "nabla.format"), *ep = nb_safetensors_meta(st, "nabla.epoch");
    const char *extra = nb_safetensors_meta(st, "nabla.extra");
    char *extra_copy = NULL;
    nb_generator g;
    uint64_t done = 0;
    entry_list l = {0};
    bool ok = format && !strcmp(format, "checkpoint-1");
    if (!ok) nb__fail(NB_ERR_IO, "%s: not a nabla checkpoint (no 'nabla.format' checkpoint-1)", path);
    if (ok && !(parse_u64(ep, &done) && done <= INT64_MAX)) {
        nb__fail(NB_ERR_IO, "%s: metadata 'nabla.epoch' is missing or malformed", path);
        ok = false;
    }
    if (ok && extra_json && extra && !(extra_copy = strdup(extra))) {
        nb__fail(NB_ERR_MEMORY, "%s: out of memory", path);
        ok = false;
    }
    /* the JSON states go last: they are the only step that changes objects before copy_all */
    ok = ok && parse_rng(path, nb_safetensors_meta(st, "nabla.rng"), &g) &&
         collect(&l, m, o, "model.") && check_all(path, st, &l, o ? NULL : "optim.", NULL) &&
         load_json_states(path, st, o, s);
    nb_status status = ok ? copy_all(st, path, &l) : nb_error_code();
    if (status == NB_OK) {
        nb_rng_set_state(g);
        if (epoch) *epoch = (int64_t)done;
        if (extra_json) *extra_json = extra_copy;
    } else {
        free(extra_copy);
    }
    list_free(&l);
    nb_safetensors_close(st);
    return status;
}
