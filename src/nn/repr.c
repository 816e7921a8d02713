/*
 * repr.c — what a module says about itself: its attributes (nabla/module.h's descriptions, the
 * hyper-parameters by name an exporter reads) and torch's repr, written from those attributes
 * alone so that the two never disagree.  Values are written as Python writes them: True/False,
 * a float's shortest repr, a tuple "(3, 3)" or "(4,)".
 */
#include "module.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- building a description */

/* The next free attribute of d, or the scratch one (d->overflow set) when d is full. */
static nb_attr *next_attr(nb_attrs *d, const char *name, nb_attr_kind kind) {
    nb_attr *a = &d->attr[NB_ATTRS_MAX];
    if (d->n < NB_ATTRS_MAX) a = &d->attr[d->n++];
    else d->overflow = true;
    *a = (nb_attr){.name = name, .kind = kind, .n = 1};
    return a;
}

nb_attr *nb_attrs_int(nb_attrs *d, const char *name, int64_t v) {
    nb_attr *a = next_attr(d, name, NB_ATTR_INT);
    a->ints[0] = v;
    return a;
}

nb_attr *nb_attrs_ints(nb_attrs *d, const char *name, int n, const int64_t *v) {
    nb_attr *a = next_attr(d, name, NB_ATTR_INTS);
    if (n < 0 || n > NB_MAX_DIMS) {
        d->overflow = true;
        n = n < 0 ? 0 : NB_MAX_DIMS;
    }
    a->n = n;
    if (n) memcpy(a->ints, v, sizeof *v * (size_t)n);
    return a;
}

nb_attr *nb_attrs_float(nb_attrs *d, const char *name, float v) {
    nb_attr *a = next_attr(d, name, NB_ATTR_FLOAT);
    a->f = v;
    return a;
}

nb_attr *nb_attrs_bool(nb_attrs *d, const char *name, bool v) {
    nb_attr *a = next_attr(d, name, NB_ATTR_BOOL);
    a->ints[0] = v;
    return a;
}

nb_attr *nb_attrs_string(nb_attrs *d, const char *name, const char *v) {
    nb_attr *a = next_attr(d, name, NB_ATTR_STRING);
    a->s = v ? v : "";
    return a;
}

nb_status nb_module_describe(const nb_module *m, nb_attrs *d) {
    if (!m || !d) return nb__fail_status(NB_ERR_NULL, "module_describe: module or attributes NULL");
    d->n = 0;
    d->overflow = false;
    if (m->cls->describe) m->cls->describe(m, d);
    if (d->overflow)
        return nb__fail_status(NB_ERR_ARG, "module_describe: %s describes more than %d attributes, or a "
                               "tuple of more than %d", m->cls->name, NB_ATTRS_MAX, NB_MAX_DIMS);
    return NB_OK;
}

/* ---- writing values as Python does */

/* v as Python's repr writes a float (torch's extra_repr uses it): "1.0", "0.2", "1e-05". */
static void repr_float(char *buf, size_t cap, float v) {
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

/* A string that snprintf's into, keeping its length (capped: what does not fit is dropped). */
typedef struct {
    char *buf;
    size_t cap, len;
} text;

__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...) {
    if (t->len + 1 >= t->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n > 0) t->len = t->len + (size_t)n < t->cap ? t->len + (size_t)n : t->cap - 1;
}

static void put_value(text *t, const nb_attr *a) {
    char f[32];
    switch (a->kind) {
    case NB_ATTR_INT: put(t, "%lld", (long long)a->ints[0]); break;
    case NB_ATTR_BOOL: put(t, "%s", a->ints[0] ? "True" : "False"); break;
    case NB_ATTR_FLOAT: repr_float(f, sizeof f, a->f), put(t, "%s", f); break;
    case NB_ATTR_STRING: put(t, a->flags & NB_ATTR_QUOTED ? "'%s'" : "%s", a->s); break;
    case NB_ATTR_INTS: {
        bool same = a->n > 0;
        for (int i = 1; i < a->n; i++) same = same && a->ints[i] == a->ints[0];
        if (same && a->flags & NB_ATTR_SHORT) {
            put(t, "%lld", (long long)a->ints[0]);
            break;
        }
        put(t, "(");
        for (int i = 0; i < a->n; i++) put(t, "%s%lld", i ? ", " : "", (long long)a->ints[i]);
        put(t, "%s)", a->n == 1 ? "," : ""); /* a one-element tuple: "(4,)" */
        break;
    }
    }
}

/* torch's extra_repr: the attributes without NB_ATTR_NO_REPR, "name=value" joined by ", ".
 * A describe that overflows prints what fitted. */
static void extra_repr(const nb_module *m, char *buf, size_t cap) {
    nb_attrs d = {.n = 0};
    text t = {buf, cap, 0};
    buf[0] = '\0';
    if (m->cls->describe) m->cls->describe(m, &d);
    for (int i = 0, first = 1; i < d.n; i++) {
        const nb_attr *a = &d.attr[i];
        if (a->flags & NB_ATTR_NO_REPR) continue;
        put(&t, "%s", first ? "" : ", ");
        if (!(a->flags & NB_ATTR_POSITIONAL)) put(&t, "%s=", a->name);
        put_value(&t, a);
        first = 0;
    }
}

/* torch's Module.__repr__: the extra repr inside the parentheses when there are no children,
 * else on a line of its own before them. */
static void print_tree(FILE *f, const nb_module *m, int indent) {
    char desc[512];
    extra_repr(m, desc, sizeof desc);
    int n_children = m->children.n;
    fprintf(f, "%s(%s", m->cls->name, n_children ? "" : desc);
    if (n_children) {
        fprintf(f, "\n");
        if (desc[0]) fprintf(f, "%*s%s\n", indent + 2, "", desc);
        for (int c = 0; c < n_children; c++) {
            fprintf(f, "%*s(%s): ", indent + 2, "", m->children.at[c].name);
            print_tree(f, NB__CHILD(m, c), indent + 2);
            fprintf(f, "\n");
        }
        fprintf(f, "%*s", indent, "");
    }
    fprintf(f, ")");
}

nb_status nb_module_fprint(FILE *f, const nb_module *m) {
    if (!m) return nb__fail_status(NB_ERR_NULL, "module_print: module is NULL");
    print_tree(f, m, 0);
    fprintf(f, "\n");
    return NB_OK;
}
