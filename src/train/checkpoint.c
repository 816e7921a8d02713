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
 * objects with their previous state kept aside; only then are values copied in.
 */
#include "nabla.h"
#include "nabla/optim.h"
#include "../core/core.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTRIES 4096
#define NAME_CAP 160

typedef struct {
    int n;
    char (*names)[NAME_CAP];
    nb_tensor **tensors;
} entry_list;

static bool list_init(entry_list *l) {
    l->n = 0;
    l->names = nb__alloc(sizeof *l->names * MAX_ENTRIES);
    l->tensors = l->names ? nb__alloc(sizeof *l->tensors * MAX_ENTRIES) : NULL;
    return l->tensors != NULL;
}

static void list_free(entry_list *l) {
    nb__dealloc(l->names, sizeof *l->names * MAX_ENTRIES);
    nb__dealloc(l->tensors, sizeof *l->tensors * MAX_ENTRIES);
}

static bool list_add(entry_list *l, const char *prefix, const char *name, nb_tensor *t) {
    if (l->n == MAX_ENTRIES)
        return nb__fail(NB_ERR_ARG, "checkpoint: more than %d tensors", MAX_ENTRIES), false;
    snprintf(l->names[l->n], NAME_CAP, "%s%s", prefix, name);
    l->tensors[l->n++] = t;
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
    if (!o) return true;
    int n = nb_optim_state_tensors(o, NULL, NULL, 0);
    const char **names = nb__alloc(sizeof *names * (size_t)(n ? n : 1));
    nb_tensor **ts = names ? nb__alloc(sizeof *ts * (size_t)(n ? n : 1)) : NULL;
    bool ok = ts != NULL;
    if (ok) nb_optim_state_tensors(o, names, ts, n);
    for (int i = 0; ok && i < n; i++) ok = list_add(l, "optim.", names[i], ts[i]);
    nb__dealloc(names, sizeof *names * (size_t)(n ? n : 1));
    nb__dealloc(ts, sizeof *ts * (size_t)(n ? n : 1));
    return ok;
}

static nb_status save(const char *path, const entry_list *l, int n_meta, const char *const *keys,
                      const char *const *values) {
    const char **names = nb__alloc(sizeof *names * (size_t)(l->n ? l->n : 1));
    if (!names) return NB_ERR_MEMORY;
    for (int i = 0; i < l->n; i++) names[i] = l->names[i];
    nb_status s = nb_safetensors_save(path, l->n, names, l->tensors, keys, values, n_meta);
    nb__dealloc(names, sizeof *names * (size_t)(l->n ? l->n : 1));
    return s;
}

nb_status nb_module_save(const nb_module *m, const char *path, int n_meta,
                         const char *const *meta_keys, const char *const *meta_values) {
    if (!m || !path) return nb__fail_status(NB_ERR_NULL, "module_save: module or path is NULL");
    entry_list l;
    if (!list_init(&l)) return NB_ERR_MEMORY;
    nb_status s = collect(&l, m, NULL, "") ? save(path, &l, n_meta, meta_keys, meta_values) : nb_error_code();
    list_free(&l);
    return s;
}

static bool file_has(const nb_safetensors *st, const char *name) {
    for (int j = 0, n = nb_safetensors_count(st); j < n; j++)
        if (!strcmp(nb_safetensors_name(st, j), name)) return true;
    return false;
}

static bool list_has(const entry_list *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->names[i], name)) return true;
    return false;
}

/* Phase one: the file holds exactly the expected tensors (besides those whose name starts with
 * `ignored`, when not NULL), each with the expected dtype and shape. */
static bool check_all(const char *path, const nb_safetensors *st, const entry_list *l,
                      const char *ignored) {
    for (int i = 0; i < l->n; i++)
        if (!file_has(st, l->names[i]))
            return nb__fail(NB_ERR_IO, "%s: has no tensor '%s'", path, l->names[i]), false;
    bool ok = true; /* shapes before extra tensors: a model of other sizes is named as such */
    for (int i = 0; ok && i < l->n; i++) {
        nb_scope_begin(); /* one tensor at a time: the check holds one copy at most */
        nb_tensor *t = nb_safetensors_get(st, l->names[i]), *want = l->tensors[i];
        if (!t) {
            ok = false;
        } else if (t->dtype != want->dtype) {
            nb__fail(NB_ERR_DTYPE, "%s: tensor '%s' is %s, expected %s", path, l->names[i],
                     nb_dtype_name(t->dtype), nb_dtype_name(want->dtype));
            ok = false;
        } else if (!nb__same_shape(t, want)) {
            nb__fail(NB_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", path,
                     l->names[i], NB_SHP(t), NB_SHP(want));
            ok = false;
        }
        nb_scope_end();
    }
    for (int j = 0, n = nb_safetensors_count(st); ok && j < n; j++) {
        const char *name = nb_safetensors_name(st, j);
        if (!list_has(l, name) && !(ignored && !strncmp(name, ignored, strlen(ignored)))) {
            nb__fail(NB_ERR_IO, "%s: holds a tensor '%s' that the model%s does not have", path,
                     name, ignored ? "" : " or optimiser");
            ok = false;
        }
    }
    return ok;
}

static nb_status copy_all(const nb_safetensors *st, const entry_list *l) {
    for (int i = 0; i < l->n; i++) {
        nb_status s = nb_safetensors_load_into(st, l->names[i], l->tensors[i]);
        if (s != NB_OK) return s;
    }
    return NB_OK;
}

nb_status nb_module_load(nb_module *m, const char *path) {
    if (!m || !path) return nb__fail_status(NB_ERR_NULL, "module_load: module or path is NULL");
    nb_safetensors *st = nb_safetensors_open(path);
    if (!st) return nb_error_code();
    entry_list l;
    nb_status s = list_init(&l) ? NB_OK : NB_ERR_MEMORY;
    if (s == NB_OK) s = collect(&l, m, NULL, "") && check_all(path, st, &l, NULL) ? copy_all(st, &l) : nb_error_code();
    list_free(&l);
    nb_safetensors_close(st);
    return s;
}

/* ---- checkpoints */

nb_status nb_checkpoint_save(const char *path, const nb_module *m, nb_optim *o, nb_sched *s,
                             int64_t epoch, const char *extra_json) {
    if (!m || !path) return nb__fail_status(NB_ERR_NULL, "checkpoint_save: module or path is NULL");
    nb_generator g = nb_rng_get_state();
    char rng[96], ep[32];
    snprintf(rng, sizeof rng, "{\"seed\": \"%" PRIu64 "\", \"offset\": \"%" PRIu64 "\"}", g.seed,
             g.offset);
    snprintf(ep, sizeof ep, "%" PRId64, epoch);
    char *optim = o ? nb_optim_state_json(o) : NULL, *sched = s ? nb_sched_state_json(s) : NULL;
    const char *keys[6] = {"nabla.format", "nabla.rng", "nabla.epoch"};
    const char *values[6] = {"checkpoint-1", rng, ep};
    int n = 3;
    if (optim) keys[n] = "nabla.optim", values[n++] = optim;
    if (sched) keys[n] = "nabla.sched", values[n++] = sched;
    if (extra_json) keys[n] = "nabla.extra", values[n++] = extra_json;
    entry_list l;
    nb_status st = (o && !optim) || (s && !sched) ? nb_error_code()
                   : !list_init(&l)                ? NB_ERR_MEMORY
                   : NB_OK;
    if (st == NB_OK) {
        st = collect(&l, m, o, "model.") ? save(path, &l, n, keys, values) : nb_error_code();
        list_free(&l);
    }
    free(optim);
    free(sched);
    return st;
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
    ok = ok && parse_rng(path, nb_safetensors_meta(st, "nabla.rng"), &g) && list_init(&l) &&
         collect(&l, m, o, "model.") && check_all(path, st, &l, o ? NULL : "optim.") &&
         load_json_states(path, st, o, s);
    nb_status status = ok ? copy_all(st, &l) : nb_error_code();
    if (status == NB_OK) {
        nb_rng_set_state(g);
        if (epoch) *epoch = (int64_t)done;
        if (extra_json) *extra_json = extra_copy;
    } else {
        free(extra_copy);
    }
    if (l.names) list_free(&l);
    nb_safetensors_close(st);
    return status;
}
