/*
 * compose.c — modules made of modules: Sequential (a chain), Residual (H(x) = F(x) + S(x)),
 * Concat (branches on one input joined along a dim: a DAG, not only a chain) and the low-rank
 * bottleneck n -> k -> m (k < min(n, m) parameters k (n + m + 1) instead of m (n + 1)).
 */
#include "module.h"

#include <stdio.h>

/* ---- Sequential */

/* Each child's result is a temp (the composite rule, core.h); an empty Sequential hands out
 * x itself, retained like any result. */
static nb_tensor *sequential_forward(nb_module *m, nb_tensor *x) {
    nb__temps tmp = {0};
    nb_tensor *y = x;
    for (int c = 0; c < m->children.n && y; c++) y = nb__tmp(&tmp, nb_module_forward(NB__CHILD(m, c), y));
    return nb__temps_end(&tmp, y);
}

static const nb_module_class sequential_class = {.name = "Sequential", .forward = sequential_forward};

/* Adds child under the next index ("0", "1", ...), as Sequential and Concat name theirs. */
static nb_status add_numbered(nb_module *m, nb_module *child) {
    char name[24];
    snprintf(name, sizeof name, "%d", m->children.n);
    return nb_module_add_child(m, name, child);
}

nb_status nb_sequential_append(nb_module *seq, nb_module *m) {
    if (!seq || seq->cls != &sequential_class) {
        nb_module_free(m);
        return nb__fail_status(NB_ERR_ARG, "sequential_append: not a Sequential");
    }
    return add_numbered(seq, m);
}

/* A module of class cls whose children are modules[0..n-1], numbered; takes ownership of them.
 * NULL (all freed) when one is NULL (`what` names them in the error) or adding fails. */
static nb_module *numbered(const nb_module_class *cls, size_t state_size, const char *what, int n,
                           nb_module *const *modules) {
    nb_module *m = nb_module_new(cls, state_size);
    bool ok = m != NULL;
    for (int i = 0; i < n; i++) {
        if (!modules[i]) ok = false;
        if (ok) ok = add_numbered(m, modules[i]) == NB_OK;
        else nb_module_free(modules[i]);
    }
    if (!ok) {
        nb_module_free(m);
        return nb_error_code() ? NULL : nb__fail(NB_ERR_NULL, "%s: a %s is NULL", cls->name, what);
    }
    return m;
}

nb_module *nb_sequential_new(int n, nb_module *const *modules) {
    return numbered(&sequential_class, 0, "module", n, modules);
}

/* ---- Residual: children body and, when given, shortcut */

typedef struct {
    nb_module *body, *shortcut; /* shortcut NULL: the identity */
} residual_state;

static nb_tensor *residual_forward(nb_module *m, nb_tensor *x) {
    const residual_state *s = NB__STATE(residual_state, m);
    nb_tensor *f = nb_module_forward(s->body, x);
    nb_tensor *sc = s->shortcut ? nb_module_forward(s->shortcut, x) : x;
    nb_tensor *y = nb_add(f, sc);
    nb_tensor_free(f);
    if (s->shortcut) nb_tensor_free(sc); /* a shortcut's result is owned even when it is x */
    return y;
}

static const nb_module_class residual_class = {.name = "Residual", .forward = residual_forward};

nb_module *nb_residual_new(nb_module *body, nb_module *shortcut) {
    nb_module *m = body ? nb_module_new(&residual_class, sizeof(residual_state)) : NULL;
    if (!m) {
        nb_module_free(body);
        nb_module_free(shortcut);
        return nb_error_code() ? NULL : nb__fail(NB_ERR_NULL, "Residual: body is NULL");
    }
    residual_state *s = NB__STATE(residual_state, m);
    nb_status st = nb_module_add_child(m, "body", s->body = body);
    if (st != NB_OK) nb_module_free(shortcut);
    else if (shortcut) st = nb_module_add_child(m, "shortcut", s->shortcut = shortcut);
    if (st != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

nb_module *nb_residual_linear_new(nb_module *body, int64_t in_features, int64_t out_features) {
    nb_module *proj = NULL;
    if (in_features != out_features && !(proj = nb_linear_new(in_features, out_features, false))) {
        nb_module_free(body);
        return NULL;
    }
    return nb_residual_new(body, proj);
}

/* ---- Concat */

#define CONCAT_MAX 64

typedef struct {
    int dim;
} concat_state;

static nb_tensor *concat_forward(nb_module *m, nb_tensor *x) {
    nb_tensor *outs[CONCAT_MAX] = {NULL};
    int n = m->children.n, made = 0;
    for (; made < n; made++)
        if (!(outs[made] = nb_module_forward(NB__CHILD(m, made), x))) break;
    nb_tensor *y = made == n ? nb_concat(n, outs, NB__STATE(concat_state, m)->dim) : NULL;
    for (int i = 0; i < made; i++) nb_tensor_free(outs[i]);
    return y;
}

static void concat_describe(const nb_module *m, nb_attrs *d) {
    nb_attrs_int(d, "dim", NB__STATE(concat_state, m)->dim);
}

static const nb_module_class concat_class = {.name = "Concat", .forward = concat_forward,
                                             .describe = concat_describe};

nb_module *nb_concat_new(int n, nb_module *const *branches, int dim) {
    if (n < 1 || n > CONCAT_MAX) {
        for (int i = 0; i < n; i++) nb_module_free(branches[i]);
        return nb__fail(NB_ERR_ARG, "Concat: needs 1 to %d branches, got %d", CONCAT_MAX, n);
    }
    nb_module *m = numbered(&concat_class, sizeof(concat_state), "branch", n, branches);
    if (m) NB__STATE(concat_state, m)->dim = dim;
    return m;
}

nb_module *nb_bottleneck_new(int64_t n, int64_t k, int64_t m) {
    nb_module *layers[2] = {nb_linear_new(n, k, false), NULL};
    layers[1] = layers[0] ? nb_linear_new(k, m, true) : NULL;
    return nb_sequential_new(2, layers);
}
