/*
 * module.c — the module tree: modules of a class (nabla/module.h), their own entries and
 * children, forward, train/eval, freezing, freeing, and parameter and buffer lookup by torch's
 * state_dict names.  The repr and descriptions are in repr.c.
 */
#include "module.h"
#include "nabla/autograd.h"

#include <stdalign.h>
#include <string.h>

/* The state starts this far into the module's block: aligned for any type. */
#define STATE_OFFSET ((sizeof(nb_module) + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t))

static int count_or_one(int n) { return n ? n : 1; }

nb_module *nb_module_new(const nb_module_class *cls, size_t state_size) {
    if (!cls || !cls->name) return nb__fail(NB_ERR_NULL, "module_new: class or its name is NULL");
    if (cls->forward && cls->forward_n)
        return nb__fail(NB_ERR_ARG, "module_new: %s sets both forward and forward_n; a one-input "
                        "one-output class sets forward, any other forward_n", cls->name);
    if (cls->n_inputs < 0 || cls->n_inputs > NB_MODULE_MAX_IO || cls->n_outputs < 0 ||
        cls->n_outputs > NB_MODULE_MAX_IO || (cls->forward && count_or_one(cls->n_inputs) *
                                              count_or_one(cls->n_outputs) != 1))
        return nb__fail(NB_ERR_ARG, "module_new: %s: %d inputs and %d outputs do not fit its forward "
                        "(forward: 1 and 1; forward_n: 1 to %d each, 0 meaning 1)", cls->name,
                        cls->n_inputs, cls->n_outputs, NB_MODULE_MAX_IO);
    if (state_size > SIZE_MAX - STATE_OFFSET)
        return nb__fail(NB_ERR_ARG, "module_new: %s: state of %zu bytes is too large", cls->name, state_size);
    nb_module *m = nb__alloc(STATE_OFFSET + state_size);
    if (!m) return NULL;
    memset(m, 0, STATE_OFFSET + state_size);
    m->cls = cls;
    m->training = true;
    m->state_size = state_size;
    m->state = (char *)m + STATE_OFFSET;
    return m;
}

void *nb_module_state(const nb_module *m, const nb_module_class *cls) {
    if (!m || !cls) return nb__fail(NB_ERR_NULL, "module_state: module or class is NULL");
    if (m->cls != cls)
        return nb__fail(NB_ERR_ARG, "module_state: m is a %s, not a %s", m->cls->name, cls->name);
    return m->state;
}

const nb_module_class *nb_module_class_of(const nb_module *m) { return m ? m->cls : NULL; }

static void names_changed(nb_module *m);

/* Room for one more entry in l; false (NB_ERR_MEMORY set) when memory runs out. */
static bool grow(nb_module_entries *l) {
    if (l->n < l->cap) return true;
    int cap = l->cap ? 2 * l->cap : 2;
    nb_module_entry *at = nb__alloc(sizeof *at * (size_t)cap);
    if (!at) return false;
    if (l->n) memcpy(at, l->at, sizeof *at * (size_t)l->n);
    nb__dealloc(l->at, sizeof *at * (size_t)l->cap);
    l->at = at;
    l->cap = cap;
    return true;
}

static bool name_in(const nb_module_entries *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->at[i].name, name)) return true;
    return false;
}

/* A copy of name for a new entry of m, after checking it (torch's register_parameter rules);
 * NULL with the error set. */
static char *entry_name(const nb_module *m, const char *name, const char *op) {
    if (!m || !name) return nb__fail(NB_ERR_NULL, "%s: module or name is NULL", op);
    if (!name[0] || strchr(name, '.'))
        return nb__fail(NB_ERR_ARG, "%s: %s: name '%s' must be non-empty and contain no '.'", op,
                        m->cls->name, name);
    if (name_in(&m->params, name) || name_in(&m->buffers, name) || name_in(&m->children, name))
        return nb__fail(NB_ERR_ARG, "%s: %s already has an entry named '%s'", op, m->cls->name, name);
    return nb__strdup(name);
}

static nb_tensor *add_tensor(nb_module *m, nb_module_entries *l, const char *op, const char *name,
                             nb_dtype dtype, int ndim, const int64_t *shape) {
    char *copy = entry_name(m, name, op);
    /* a persistent (module-owned) tensor, whatever scope is open */
    nb_tensor *t = copy && grow(l) ? nb__new_in(NULL, dtype, ndim, shape) : NULL;
    if (!t) {
        nb__strfree(copy);
        return NULL;
    }
    nb_fill(t, 0.0f);
    l->at[l->n++] = (nb_module_entry){.name = copy, .tensor = t};
    names_changed(m);
    return t;
}

nb_tensor *nb_module_add_param(nb_module *m, const char *name, int ndim, const int64_t *shape) {
    nb_tensor *t = add_tensor(m, m ? &m->params : NULL, "module_add_param", name, NB_F32, ndim, shape);
    if (t) t->requires_grad = true;
    return t;
}

nb_tensor *nb_module_add_buffer(nb_module *m, const char *name, nb_dtype dtype, int ndim,
                                const int64_t *shape) {
    if ((unsigned)dtype >= NB_DTYPE_COUNT)
        return nb__fail(NB_ERR_DTYPE, "module_add_buffer: unknown dtype %d", (int)dtype);
    return add_tensor(m, m ? &m->buffers : NULL, "module_add_buffer", name, dtype, ndim, shape);
}

nb_status nb_module_add_child(nb_module *m, const char *name, nb_module *child) {
    if (!child) /* a constructor that failed left its error: keep it */
        return nb_error_code() ? nb_error_code() : nb__fail_status(NB_ERR_NULL, "module_add_child: child is NULL");
    /* a module with a parent stays there; one above m (or m) would make the tree a cycle */
    if (child->parent)
        return nb__fail_status(NB_ERR_ARG, "module_add_child: the %s is already a child of a %s",
                               child->cls->name, child->parent->cls->name);
    for (const nb_module *up = m; up; up = up->parent)
        if (up == child)
            return nb__fail_status(NB_ERR_ARG, "module_add_child: a %s cannot hold itself", child->cls->name);
    char *copy = entry_name(m, name, "module_add_child");
    if (!copy || !grow(&m->children)) {
        nb__strfree(copy);
        nb_module_free(child);
        return nb_error_code();
    }
    m->children.at[m->children.n++] = (nb_module_entry){.name = copy, .module = child};
    child->parent = m;
    names_changed(m);
    return NB_OK;
}

/* Structural edits for LoRA and transfer learning (src/nn/lora.c, transfer.c): the tree's
 * names are marked stale as nb_module_add_child marks them. */
nb_module *nb__module_swap_child(nb_module *m, int i, nb_module *child) {
    nb_module *old = NB__CHILD(m, i);
    old->parent = NULL;
    m->children.at[i].module = child;
    child->parent = m;
    names_changed(m);
    return old;
}

void nb__module_drop_children(nb_module *m, int keep) {
    for (int i = keep; i < m->children.n; i++) {
        nb_module_free(NB__CHILD(m, i));
        nb__strfree(m->children.at[i].name);
    }
    if (keep < m->children.n) m->children.n = keep;
    names_changed(m);
}

static void free_name_tables(nb__name_table *t);

static void free_entries(nb_module_entries *l, bool modules) {
    for (int i = 0; i < l->n; i++) {
        if (modules) nb_module_free(l->at[i].module);
        else nb_tensor_free(l->at[i].tensor);
        nb__strfree(l->at[i].name);
    }
    nb__dealloc(l->at, sizeof *l->at * (size_t)l->cap);
}

void nb_module_free(nb_module *m) {
    if (!m) return;
    if (m->cls->free_state) m->cls->free_state(m);
    free_entries(&m->params, false);
    free_entries(&m->buffers, false);
    free_entries(&m->children, true);
    free_name_tables(m->names);
    nb__module_hooks_free(m->hooks);
    nb__dealloc(m, STATE_OFFSET + m->state_size);
}

/* ---- forward */

static nb_status no_forward(const nb_module *m) {
    return nb__fail_status(NB_ERR_ARG, "%s: has no forward; its owner calls its children", m->cls->name);
}

/* Hooks to run or anomaly mode's bookkeeping send a forward through hooks.c. */
static bool watched(const nb_module *m) { return m->hooks || nb_is_anomaly_enabled(); }

nb_tensor *nb_module_forward(nb_module *m, nb_tensor *x) {
    if (!m) return nb__fail(NB_ERR_NULL, "module_forward: module is NULL");
    if (!nb__alive(x)) return nb__fail_input(m->cls->name, x);
    if (m->cls->forward && !watched(m)) return m->cls->forward(m, x);
    if (!m->cls->forward && !m->cls->forward_n) return no_forward(m), NULL;
    nb_tensor *y = NULL;
    if (count_or_one(m->cls->n_inputs) != 1 || count_or_one(m->cls->n_outputs) != 1)
        return nb__fail(NB_ERR_ARG, "module_forward: %s takes %d inputs and gives %d outputs: call "
                        "nb_module_forward_n", m->cls->name, count_or_one(m->cls->n_inputs),
                        count_or_one(m->cls->n_outputs));
    nb_module_forward_n(m, 1, &x, 1, &y);
    return y;
}

nb_status nb_module_forward_n(nb_module *m, int n_in, nb_tensor *const *in, int n_out, nb_tensor **out) {
    for (int i = 0; out && i < n_out && i < NB_MODULE_MAX_IO; i++) out[i] = NULL;
    if (!m || !in || !out) return nb__fail_status(NB_ERR_NULL, "module_forward_n: module, inputs or outputs NULL");
    const nb_module_class *c = m->cls;
    if (!c->forward && !c->forward_n) return no_forward(m);
    int want_in = count_or_one(c->n_inputs), want_out = count_or_one(c->n_outputs);
    if (n_in != want_in || n_out != want_out)
        return nb__fail_status(NB_ERR_ARG, "%s: forward takes %d inputs and gives %d outputs, called with "
                               "%d and %d", c->name, want_in, want_out, n_in, n_out);
    for (int i = 0; i < n_in; i++)
        if (!nb__alive(in[i])) return nb__fail_input(c->name, in[i]), nb_error_code();
    if (watched(m)) return nb__module_forward_watched(m, n_in, in, n_out, out);
    return nb__module_call(m, in, n_out, out);
}

nb_status nb__module_call(nb_module *m, nb_tensor *const *in, int n_out, nb_tensor **out) {
    const nb_module_class *c = m->cls;
    if (c->forward) {
        out[0] = c->forward(m, in[0]);
        return out[0] ? NB_OK : nb_error_code();
    }
    nb_status s = c->forward_n(m, in, out);
    bool all = s == NB_OK;
    for (int i = 0; i < n_out; i++) all = all && out[i];
    if (all) return NB_OK;
    for (int i = 0; i < n_out; i++) {
        nb_tensor_free(out[i]);
        out[i] = NULL;
    }
    if (nb_error_code()) return nb_error_code();
    return nb__fail_status(s == NB_OK ? NB_ERR_ARG : s, "%s: forward gave no result", c->name);
}

void nb_module_train(nb_module *m, bool training) {
    if (!m) return;
    m->training = training;
    for (int i = 0; i < m->children.n; i++) nb_module_train(NB__CHILD(m, i), training);
}

bool nb_module_is_training(const nb_module *m) { return m && m->training; }
const char *nb_module_type(const nb_module *m) { return m ? m->cls->name : NULL; }

/* Takes m's own buffer named name out of m and frees it (the name table marked stale; names
 * handed out stay valid).  false when m has no buffer of that name. */
bool nb__module_drop_buffer(nb_module *m, const char *name) {
    nb_module_entries *l = &m->buffers;
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->at[i].name, name)) {
            nb_tensor_free(l->at[i].tensor);
            nb__strfree(l->at[i].name);
            memmove(&l->at[i], &l->at[i + 1], sizeof *l->at * (size_t)(l->n - i - 1));
            l->n--;
            names_changed(m);
            return true;
        }
    return false;
}

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
    for (int i = 0; i < m->params.n; i++) s->text += plen + strlen(m->params.at[i].name) + 1;
    for (int i = 0; i < m->buffers.n; i++) s->text += plen + strlen(m->buffers.at[i].name) + 1;
    s->count[0] += m->params.n;
    s->count[1] += m->buffers.n;
    for (int c = 0; c < m->children.n; c++)
        measure(NB__CHILD(m, c), plen + strlen(m->children.at[c].name) + 1, s);
}

typedef struct {
    char *prefix; /* "a.b." for the module being filled */
    char *text;   /* where the next name goes */
    nb__name_table *t;
    int n;
} name_filler;

static void fill(const nb_module *m, size_t plen, bool buffers, name_filler *f) {
    const nb_module_entries *list = buffers ? &m->buffers : &m->params;
    for (int i = 0; i < list->n; i++) {
        size_t len = strlen(list->at[i].name) + 1;
        memcpy(f->text, f->prefix, plen);
        memcpy(f->text + plen, list->at[i].name, len);
        f->t->names[f->n] = f->text;
        f->t->tensors[f->n++] = list->at[i].tensor;
        f->text += plen + len;
    }
    for (int c = 0; c < m->children.n; c++) {
        size_t len = strlen(m->children.at[c].name);
        memcpy(f->prefix + plen, m->children.at[c].name, len);
        f->prefix[plen + len] = '.';
        fill(NB__CHILD(m, c), plen + len + 1, buffers, f);
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
                    m->cls->name, name);
}

nb_module *nb_module_child(const nb_module *m, const char *path) {
    if (!m || !path) return nb__fail(NB_ERR_NULL, "module_child: module or path is NULL");
    const nb_module *cur = m;
    const char *p = path;
    while (*p) {
        size_t len = strcspn(p, ".");
        const nb_module *next = NULL;
        for (int c = 0; c < cur->children.n && !next; c++)
            if (strlen(cur->children.at[c].name) == len && !strncmp(cur->children.at[c].name, p, len))
                next = NB__CHILD(cur, c);
        if (!next) return nb__fail(NB_ERR_ARG, "module_child: no child '%s' in %s", path, m->cls->name);
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
