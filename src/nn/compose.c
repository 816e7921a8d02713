/*
 * compose.c — modules made of modules: Sequential (a chain), Residual (H(x) = F(x) + S(x)),
 * Concat (branches on one input joined along a dim: a DAG, not only a chain) and the low-rank
 * bottleneck n -> k -> m (k < min(n, m) parameters k (n + m + 1) instead of m (n + 1)).
 */
#include "module.h"

#include <stdio.h>

/* ---- Sequential */

/* y is always a reference this function owns, freed once the next child has used it (the
 * graph keeps what it needs): x is retained first, so a child that returns its input (eval
 * Dropout) and an empty Sequential are owned like any result. */
static nb_tensor *sequential_forward(nb_module *m, nb_tensor *x) {
    nb__retain(x);
    nb_tensor *y = x;
    for (int c = 0; c < m->n_children && y; c++) y = nb__chain(nb_module_forward(m->children[c], y), y);
    return y;
}

static const nb_module_type_def sequential_def = {"Sequential", sequential_forward, NULL};

nb_status nb_sequential_append(nb_module *seq, nb_module *m) {
    if (!seq || seq->def != &sequential_def) {
        nb_module_free(m);
        return nb__fail_status(NB_ERR_ARG, "sequential_append: not a Sequential");
    }
    char name[24];
    snprintf(name, sizeof name, "%d", seq->n_children);
    return nb__module_add_child(seq, name, m);
}

nb_module *nb_sequential_new(int n, nb_module *const *modules) {
    nb_module *seq = nb__module_new(&sequential_def);
    bool ok = seq != NULL;
    for (int i = 0; i < n; i++) {
        if (!modules[i]) ok = false;
        if (ok) ok = nb_sequential_append(seq, modules[i]) == NB_OK;
        else nb_module_free(modules[i]);
    }
    if (!ok) {
        nb_module_free(seq);
        return nb_error_code() ? NULL : nb__fail(NB_ERR_NULL, "Sequential: a module is NULL");
    }
    return seq;
}

/* ---- Residual */

static nb_tensor *residual_forward(nb_module *m, nb_tensor *x) {
    nb_tensor *f = nb_module_forward(m->children[0], x);
    nb_tensor *s = m->n_children == 2 ? nb_module_forward(m->children[1], x) : x;
    nb_tensor *y = nb_add(f, s);
    nb_tensor_free(f);
    if (m->n_children == 2) nb_tensor_free(s); /* a shortcut's result is owned even when it is x */
    return y;
}

static const nb_module_type_def residual_def = {"Residual", residual_forward, NULL};

nb_module *nb_residual_new(nb_module *body, nb_module *shortcut) {
    nb_module *m = body ? nb__module_new(&residual_def) : NULL;
    if (!m || nb__module_add_child(m, "body", body) != NB_OK ||
        (shortcut && nb__module_add_child(m, "shortcut", shortcut) != NB_OK)) {
        if (!m) nb_module_free(body);
        if (!m || !m->n_children) nb_module_free(shortcut);
        nb_module_free(m);
        return nb_error_code() ? NULL : nb__fail(NB_ERR_NULL, "Residual: body is NULL");
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

static nb_tensor *concat_forward(nb_module *m, nb_tensor *x) {
    nb_tensor *outs[64] = {NULL};
    int n = m->n_children, made = 0;
    for (; made < n; made++)
        if (!(outs[made] = nb_module_forward(m->children[made], x))) break;
    nb_tensor *y = made == n ? nb_concat(n, outs, (int)m->i[0]) : NULL;
    for (int i = 0; i < made; i++) nb_tensor_free(outs[i]);
    return y;
}

static void concat_describe(const nb_module *m, char *buf, size_t cap) {
    snprintf(buf, cap, "dim=%d", (int)m->i[0]);
}

static const nb_module_type_def concat_def = {"Concat", concat_forward, concat_describe};

nb_module *nb_concat_new(int n, nb_module *const *branches, int dim) {
    if (n < 1 || n > 64) {
        for (int i = 0; i < n; i++) nb_module_free(branches[i]);
        return nb__fail(NB_ERR_ARG, "Concat: needs 1 to 64 branches, got %d", n);
    }
    nb_module *m = nb__module_new(&concat_def);
    bool ok = m != NULL;
    for (int i = 0; i < n; i++) {
        char name[24];
        snprintf(name, sizeof name, "%d", i);
        if (!branches[i]) ok = false;
        if (ok) ok = nb__module_add_child(m, name, branches[i]) == NB_OK;
        else nb_module_free(branches[i]);
    }
    if (!ok) {
        nb_module_free(m);
        return nb_error_code() ? NULL : nb__fail(NB_ERR_NULL, "Concat: a branch is NULL");
    }
    m->i[0] = dim;
    return m;
}

nb_module *nb_bottleneck_new(int64_t n, int64_t k, int64_t m) {
    nb_module *layers[2] = {nb_linear_new(n, k, false), NULL};
    layers[1] = layers[0] ? nb_linear_new(k, m, true) : NULL;
    return nb_sequential_new(2, layers);
}
