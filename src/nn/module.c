/*
 * module.c — the module tree: construction helpers, parameter and buffer lookup by torch's
 * state_dict names, train/eval, freezing, freeing and the torch-style repr.
 */
#include "module.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

nb_module *nb__module_new(const nb_module_type_def *def) {
    nb_module *m = nb__alloc(sizeof *m);
    if (!m) return NULL;
    memset(m, 0, sizeof *m);
    m->def = def;
    m->training = true;
    return m;
}

nb_tensor *nb__persistent_tensor(nb_dtype dtype, int ndim, const int64_t *shape) {
    return nb__new_in(NULL, dtype, ndim, shape);
}

static nb_tensor *add_entry(nb_module_entry *list, int *count, const char *name, nb_dtype dtype,
                            int ndim, const int64_t *shape) {
    if (*count == NB_MODULE_MAX_OWN)
        return nb__fail(NB_ERR_ARG, "module: more than %d own tensors", NB_MODULE_MAX_OWN);
    nb_tensor *t = nb__persistent_tensor(dtype, ndim, shape);
    if (!t) return NULL;
    memset(t->storage->data, 0, t->storage->nbytes);
    nb_module_entry *e = &list[(*count)++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->tensor = t;
    return t;
}

nb_tensor *nb__module_add_param(nb_module *m, const char *name, int ndim, const int64_t *shape) {
    nb_tensor *t = add_entry(m->params, &m->n_params, name, NB_F32, ndim, shape);
    if (t) t->requires_grad = true;
    return t;
}

nb_tensor *nb__module_add_buffer(nb_module *m, const char *name, nb_dtype dtype, int ndim,
                                 const int64_t *shape) {
    return add_entry(m->buffers, &m->n_buffers, name, dtype, ndim, shape);
}

nb_status nb__module_add_child(nb_module *m, const char *name, nb_module *child) {
    if (!child) return nb_error_code() ? nb_error_code() : NB_ERR_NULL;
    if (m->n_children == m->cap_children) {
        int cap = m->cap_children ? 2 * m->cap_children : 4;
        nb_module **children = nb__alloc(sizeof *children * (size_t)cap);
        char(*names)[24] = children ? nb__alloc(sizeof *names * (size_t)cap) : NULL;
        if (!names) {
            nb__dealloc(children, sizeof *children * (size_t)cap);
            nb_module_free(child);
            return NB_ERR_MEMORY;
        }
        if (m->n_children) {
            memcpy(children, m->children, sizeof *children * (size_t)m->n_children);
            memcpy(names, m->child_names, sizeof *names * (size_t)m->n_children);
        }
        nb__dealloc(m->children, sizeof *children * (size_t)m->cap_children);
        nb__dealloc(m->child_names, sizeof *names * (size_t)m->cap_children);
        m->children = children;
        m->child_names = names;
        m->cap_children = cap;
    }
    snprintf(m->child_names[m->n_children], sizeof m->child_names[0], "%s", name);
    m->children[m->n_children++] = child; /* keeps its own train/eval mode, as in torch */
    return NB_OK;
}

nb_tensor *nb__module_own(const nb_module *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return m->params[i].tensor;
    for (int i = 0; i < m->n_buffers; i++)
        if (!strcmp(m->buffers[i].name, name)) return m->buffers[i].tensor;
    return NULL;
}

void nb_module_free(nb_module *m) {
    if (!m) return;
    for (int i = 0; i < m->n_params; i++) nb_tensor_free(m->params[i].tensor);
    for (int i = 0; i < m->n_buffers; i++) nb_tensor_free(m->buffers[i].tensor);
    for (int i = 0; i < m->n_children; i++) nb_module_free(m->children[i]);
    nb__dealloc(m->children, sizeof *m->children * (size_t)m->cap_children);
    nb__dealloc(m->child_names, sizeof *m->child_names * (size_t)m->cap_children);
    nb__dealloc(m, sizeof *m);
}

nb_tensor *nb_module_forward(nb_module *m, nb_tensor *x) {
    if (!m) return nb__fail(NB_ERR_NULL, "module_forward: module is NULL");
    if (!nb__alive(x)) return nb__fail_input(m->def->type, x);
    return m->def->forward(m, x);
}

void nb_module_train(nb_module *m, bool training) {
    if (!m) return;
    m->training = training;
    for (int i = 0; i < m->n_children; i++) nb_module_train(m->children[i], training);
}

bool nb_module_is_training(const nb_module *m) { return m && m->training; }
const char *nb_module_type(const nb_module *m) { return m ? m->def->type : NULL; }

/* ---- walking the tree in torch's order */

typedef struct {
    bool buffers;   /* walk buffers instead of parameters */
    int target;     /* index wanted, or -1 to count */
    int seen;
    const char *want_name; /* or a name wanted */
    nb_tensor *found;
    char name[NB_NAME_MAX];
} walk_state;

static bool walk(const nb_module *m, const char *prefix, walk_state *w) {
    const nb_module_entry *list = w->buffers ? m->buffers : m->params;
    int n = w->buffers ? m->n_buffers : m->n_params;
    for (int i = 0; i < n; i++, w->seen++) {
        char full[NB_NAME_MAX];
        snprintf(full, sizeof full, "%s%s", prefix, list[i].name);
        if (w->seen == w->target || (w->want_name && !strcmp(full, w->want_name))) {
            w->found = list[i].tensor;
            memcpy(w->name, full, sizeof full);
            return true;
        }
    }
    for (int c = 0; c < m->n_children; c++) {
        char sub[NB_NAME_MAX];
        snprintf(sub, sizeof sub, "%s%s.", prefix, m->child_names[c]);
        if (walk(m->children[c], sub, w)) return true;
    }
    return false;
}

/* Names returned to callers live in a thread-local slot until the next lookup. */
static _Thread_local char last_name[NB_NAME_MAX];

static nb_tensor *lookup(const nb_module *m, bool buffers, int i, const char **name) {
    if (!m) return nb__fail(NB_ERR_NULL, "module: module is NULL");
    walk_state w = {.buffers = buffers, .target = i};
    if (i < 0 || !walk(m, "", &w))
        return nb__fail(NB_ERR_ARG, "module: %s index %d is out of range", buffers ? "buffer" : "parameter", i);
    memcpy(last_name, w.name, sizeof last_name);
    if (name) *name = last_name;
    return w.found;
}

static int count(const nb_module *m, bool buffers) {
    if (!m) return 0;
    walk_state w = {.buffers = buffers, .target = -1};
    walk(m, "", &w);
    return w.seen;
}

int nb_module_num_params(const nb_module *m) { return count(m, false); }
int nb_module_num_buffers(const nb_module *m) { return count(m, true); }
nb_tensor *nb_module_param(const nb_module *m, int i, const char **name) { return lookup(m, false, i, name); }
nb_tensor *nb_module_buffer(const nb_module *m, int i, const char **name) { return lookup(m, true, i, name); }

int nb_module_parameters(const nb_module *m, nb_tensor **out, int cap) {
    int n = nb_module_num_params(m);
    for (int i = 0; i < n && i < cap; i++) out[i] = nb_module_param(m, i, NULL);
    return n;
}

int64_t nb_module_num_elements(const nb_module *m) {
    int64_t total = 0;
    for (int i = 0, n = nb_module_num_params(m); i < n; i++)
        total += nb_numel(nb_module_param(m, i, NULL));
    return total;
}

nb_tensor *nb_module_find(const nb_module *m, const char *name) {
    if (!m || !name) return nb__fail(NB_ERR_NULL, "module_find: module or name is NULL");
    for (int buffers = 0; buffers < 2; buffers++) {
        walk_state w = {.buffers = buffers, .target = -1, .want_name = name};
        if (walk(m, "", &w)) return w.found;
    }
    return nb__fail(NB_ERR_ARG, "module_find: %s has no parameter or buffer named '%s'",
                    m->def->type, name);
}

nb_module *nb_module_child(const nb_module *m, const char *path) {
    if (!m || !path) return nb__fail(NB_ERR_NULL, "module_child: module or path is NULL");
    const nb_module *cur = m;
    const char *p = path;
    while (*p) {
        size_t len = strcspn(p, ".");
        const nb_module *next = NULL;
        for (int c = 0; c < cur->n_children && !next; c++)
            if (strlen(cur->child_names[c]) == len && !strncmp(cur->child_names[c], p, len))
                next = cur->children[c];
        if (!next) return nb__fail(NB_ERR_ARG, "module_child: no child '%s' in %s", path, m->def->type);
        cur = next;
        p += len + (p[len] == '.');
    }
    return (nb_module *)cur;
}

nb_status nb_module_freeze(nb_module *m, bool frozen) {
    if (!m) return nb__fail_status(NB_ERR_NULL, "module_freeze: module is NULL");
    for (int i = 0, n = nb_module_num_params(m); i < n; i++)
        nb_module_param(m, i, NULL)->requires_grad = !frozen;
    return NB_OK;
}

/* torch's Module.__repr__: the extra repr inside the parentheses when there are no children,
 * else on a line of its own before them. */
static void print_tree(FILE *f, const nb_module *m, int indent) {
    char desc[256] = "";
    if (m->def->describe) m->def->describe(m, desc, sizeof desc);
    fprintf(f, "%s(%s", m->def->type, m->n_children ? "" : desc);
    if (m->n_children) {
        fprintf(f, "\n");
        if (desc[0]) fprintf(f, "%*s%s\n", indent + 2, "", desc);
        for (int c = 0; c < m->n_children; c++) {
            fprintf(f, "%*s(%s): ", indent + 2, "", m->child_names[c]);
            print_tree(f, m->children[c], indent + 2);
            fprintf(f, "\n");
        }
        fprintf(f, "%*s", indent, "");
    }
    fprintf(f, ")");
}

void nb__repr_float(char *buf, size_t cap, float v) {
    if (!isfinite(v)) {
        snprintf(buf, cap, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return;
    }
    char sci[32];
    int digits = 1;
    for (; digits < 9; digits++) { /* the fewest that read back as v */
        snprintf(sci, sizeof sci, "%.*e", digits - 1, (double)v);
        if ((float)strtod(sci, NULL) == v) break;
    }
    int exp = atoi(strchr(sci, 'e') + 1);
    if (exp < -4 || exp >= 16) snprintf(buf, cap, "%s", sci);
    else if (digits - 1 - exp > 0) snprintf(buf, cap, "%.*f", digits - 1 - exp, (double)v);
    else snprintf(buf, cap, "%.0f.0", (double)v);
}

nb_status nb_module_fprint(FILE *f, const nb_module *m) {
    if (!m) return nb__fail_status(NB_ERR_NULL, "module_print: module is NULL");
    print_tree(f, m, 0);
    fprintf(f, "\n");
    return NB_OK;
}
