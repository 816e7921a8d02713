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

/* A copy of s made with the counted allocator; freed with free_string. */
static char *copy_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = nb__alloc(n);
    if (c) memcpy(c, s, n);
    return c;
}

static void free_string(char *s) {
    if (s) nb__dealloc(s, strlen(s) + 1);
}

static void names_changed(nb_module *m);

static nb_tensor *add_entry(nb_module *m, nb_module_entry *list, int *count, const char *name,
                            nb_dtype dtype, int ndim, const int64_t *shape) {
    if (*count == NB_MODULE_MAX_OWN)
        return nb__fail(NB_ERR_ARG, "module: more than %d own tensors", NB_MODULE_MAX_OWN);
    char *copy = copy_string(name);
    nb_tensor *t = copy ? nb__persistent_tensor(dtype, ndim, shape) : NULL;
    if (!t) {
        free_string(copy);
        return NULL;
    }
    memset(t->storage->data, 0, t->storage->nbytes);
    nb_module_entry *e = &list[(*count)++];
    e->name = copy;
    e->tensor = t;
    names_changed(m);
    return t;
}

nb_tensor *nb__module_add_param(nb_module *m, const char *name, int ndim, const int64_t *shape) {
    nb_tensor *t = add_entry(m, m->params, &m->n_params, name, NB_F32, ndim, shape);
    if (t) t->requires_grad = true;
    return t;
}

nb_tensor *nb__module_add_buffer(nb_module *m, const char *name, nb_dtype dtype, int ndim,
                                 const int64_t *shape) {
    return add_entry(m, m->buffers, &m->n_buffers, name, dtype, ndim, shape);
}

/* Room for one more child; false (child freed) when memory runs out. */
static bool grow_children(nb_module *m) {
    if (m->n_children < m->cap_children) return true;
    int cap = m->cap_children ? 2 * m->cap_children : 4;
    nb_module **children = nb__alloc(sizeof *children * (size_t)cap);
    char **names = children ? nb__alloc(sizeof *names * (size_t)cap) : NULL;
    if (!names) {
        nb__dealloc(children, sizeof *children * (size_t)cap);
        return false;
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
    return true;
}

nb_status nb__module_add_child(nb_module *m, const char *name, nb_module *child) {
    if (!child) return nb_error_code() ? nb_error_code() : NB_ERR_NULL;
    char *copy = grow_children(m) ? copy_string(name) : NULL;
    if (!copy) {
        nb_module_free(child);
        return NB_ERR_MEMORY;
    }
    m->child_names[m->n_children] = copy;
    m->children[m->n_children++] = child; /* keeps its own train/eval mode, as in torch */
    child->parent = m;
    names_changed(m);
    return NB_OK;
}

nb_tensor *nb__module_own(const nb_module *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return m->params[i].tensor;
    for (int i = 0; i < m->n_buffers; i++)
        if (!strcmp(m->buffers[i].name, name)) return m->buffers[i].tensor;
    return NULL;
}

static void free_name_tables(nb__name_table *t);

void nb_module_free(nb_module *m) {
    if (!m) return;
    for (int i = 0; i < m->n_params; i++) {
        nb_tensor_free(m->params[i].tensor);
        free_string(m->params[i].name);
    }
    for (int i = 0; i < m->n_buffers; i++) {
        nb_tensor_free(m->buffers[i].tensor);
        free_string(m->buffers[i].name);
    }
    for (int i = 0; i < m->n_children; i++) {
        nb_module_free(m->children[i]);
        free_string(m->child_names[i]);
    }
    nb__dealloc(m->children, sizeof *m->children * (size_t)m->cap_children);
    nb__dealloc(m->child_names, sizeof *m->child_names * (size_t)m->cap_children);
    free_name_tables(m->names);
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

/* ---- the name table: every parameter's and buffer's full name under a module, with its
 * tensor, in torch's named_parameters() / named_buffers() order (own entries, then each child's
 * prefixed "child.").  One block holds the table, its two arrays and the NUL-terminated names.
 * A lookup builds it once; a change to the tree below (an entry or a child added) marks it
 * stale, and the next lookup builds a new one in front of it.  Stale tables are freed only with
 * the module, so a name returned by nb_module_param stays valid for the module's life. */

struct nb__name_table {
    int n_params, n_buffers;
    bool current;
    size_t bytes;           /* the block's size */
    const char **names;     /* parameters, then buffers */
    nb_tensor **tensors;
    nb__name_table *older;
};

static void names_changed(nb_module *m) {
    for (; m; m = m->parent)
        if (m->names) m->names->current = false;
}

static void free_name_tables(nb__name_table *t) {
    while (t) {
        nb__name_table *older = t->older;
        nb__dealloc(t, t->bytes);
        t = older;
    }
}

typedef struct {
    int count[2];          /* parameters, buffers */
    size_t text, prefix;   /* bytes of every name; the longest prefix */
} name_sizes;

/* Sizes of the names under m, whose own names get a prefix of plen bytes. */
static void measure(const nb_module *m, size_t plen, name_sizes *s) {
    if (plen > s->prefix) s->prefix = plen;
    for (int i = 0; i < m->n_params; i++) s->text += plen + strlen(m->params[i].name) + 1;
    for (int i = 0; i < m->n_buffers; i++) s->text += plen + strlen(m->buffers[i].name) + 1;
    s->count[0] += m->n_params;
    s->count[1] += m->n_buffers;
    for (int c = 0; c < m->n_children; c++)
        measure(m->children[c], plen + strlen(m->child_names[c]) + 1, s);
}

typedef struct {
    char *prefix; /* "a.b." for the module being filled */
    char *text;   /* where the next name goes */
    nb__name_table *t;
    int n;
} name_filler;

static void fill(const nb_module *m, size_t plen, bool buffers, name_filler *f) {
    const nb_module_entry *list = buffers ? m->buffers : m->params;
    for (int i = 0, n = buffers ? m->n_buffers : m->n_params; i < n; i++) {
        size_t len = strlen(list[i].name) + 1;
        memcpy(f->text, f->prefix, plen);
        memcpy(f->text + plen, list[i].name, len);
        f->t->names[f->n] = f->text;
        f->t->tensors[f->n++] = list[i].tensor;
        f->text += plen + len;
    }
    for (int c = 0; c < m->n_children; c++) {
        size_t len = strlen(m->child_names[c]);
        memcpy(f->prefix + plen, m->child_names[c], len);
        f->prefix[plen + len] = '.';
        fill(m->children[c], plen + len + 1, buffers, f);
    }
}

/* m's current table, built when missing or stale; NULL (NB_ERR_MEMORY) when memory runs out.
 * The table is a cache: building it changes nothing a caller of a const lookup can see. */
static const nb__name_table *names_of(const nb_module *m) {
    nb_module *mm = (nb_module *)m;
    if (mm->names && mm->names->current) return mm->names;
    name_sizes s = {{0, 0}, 0, 0};
    measure(m, 0, &s);
    size_t n = (size_t)s.count[0] + (size_t)s.count[1];
    size_t bytes = sizeof(nb__name_table) + n * (sizeof(char *) + sizeof(nb_tensor *)) + s.text;
    nb__name_table *t = nb__alloc(bytes);
    char *prefix = t ? nb__alloc(s.prefix + 1) : NULL;
    if (!prefix) {
        nb__dealloc(t, bytes);
        return NULL;
    }
    *t = (nb__name_table){.n_params = s.count[0], .n_buffers = s.count[1], .current = true,
                          .bytes = bytes, .older = mm->names};
    t->names = (const char **)(t + 1);
    t->tensors = (nb_tensor **)(t->names + n);
    name_filler f = {.prefix = prefix, .text = (char *)(t->tensors + n), .t = t};
    fill(m, 0, false, &f);
    fill(m, 0, true, &f);
    nb__dealloc(prefix, s.prefix + 1);
    mm->names = t;
    return t;
}

static nb_tensor *lookup(const nb_module *m, bool buffers, int i, const char **name) {
    if (!m) return nb__fail(NB_ERR_NULL, "module: module is NULL");
    const nb__name_table *t = names_of(m);
    if (!t) return NULL;
    if (i < 0 || i >= (buffers ? t->n_buffers : t->n_params))
        return nb__fail(NB_ERR_ARG, "module: %s index %d is out of range", buffers ? "buffer" : "parameter", i);
    int k = buffers ? t->n_params + i : i;
    if (name) *name = t->names[k];
    return t->tensors[k];
}

static int count(const nb_module *m, bool buffers) {
    if (!m) return 0;
    name_sizes s = {{0, 0}, 0, 0};
    measure(m, 0, &s);
    return s.count[buffers];
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
    const nb__name_table *t = names_of(m);
    if (!t) return NULL;
    for (int k = 0; k < t->n_params + t->n_buffers; k++)
        if (!strcmp(t->names[k], name)) return t->tensors[k];
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
