/*
 * lora.c — LoRA layers (nabla/lora.h): wrapping a model's Linear and Conv2d layers, folding the
 * update into the weight and back, and adapter files under PEFT's names.
 *
 *   y = base(x) + s B(A(dropout(x))),   s = alpha / r
 *
 * Merging.  For a Linear, B(A(x)) = x A^T B^T, so the layer's weight W [out, in] moves by s B A.
 * For a Conv2d, A convolves with the layer's kernel into r channels and B mixes them 1x1, so
 * B(A(x)) = conv(x, D) with D[o, c, i, j] = sum_k B[o, k] A[k, c, i, j]: B viewed [out, r] times
 * A viewed [r, in kh kw], reshaped to W's [out, in, kh, kw].  Stride, padding and dilation are
 * A's as well as W's, so both paths see the same windows.
 */
#include "module.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int rank;
    float alpha, scale;
    bool merged;                         /* W0 holds W0 + s B A; the forward is the base's */
    nb_module *base, *drop, *lora_a, *lora_b;
} lora_state;

static nb_tensor *lora_forward(nb_module *m, nb_tensor *x);

static const nb_module_class lora_linear_class = {.name = "lora.Linear", .forward = lora_forward};
static const nb_module_class lora_conv2d_class = {.name = "lora.Conv2d", .forward = lora_forward};

static bool is_lora(const nb_module *m) {
    return m->cls == &lora_linear_class || m->cls == &lora_conv2d_class;
}

static nb_tensor *lora_forward(nb_module *m, nb_tensor *x) {
    const lora_state *s = NB__STATE(lora_state, m);
    nb__temps tmp = {0};
    nb_tensor *y = nb__tmp(&tmp, nb_module_forward(s->base, x));
    if (!y || s->merged) return nb__temps_end(&tmp, y);
    nb_tensor *u = nb__tmp(&tmp, nb_module_forward(s->drop, x));
    if (u) u = nb__tmp(&tmp, nb_module_forward(s->lora_a, u));
    if (u) u = nb__tmp(&tmp, nb_module_forward(s->lora_b, u));
    if (u) u = nb__tmp(&tmp, nb_add(y, nb__tmp(&tmp, nb_mul_scalar(u, s->scale))));
    return nb__temps_end(&tmp, u);
}

/* ---- options and targets */

static nb_status check_opts(nb_lora_opts o) {
    if (o.rank < 1) return nb__fail_status(NB_ERR_ARG, "lora: rank %d: need >= 1", o.rank);
    if (!(o.alpha > 0) || !isfinite(o.alpha))
        return nb__fail_status(NB_ERR_ARG, "lora: alpha %g: need a finite value > 0", (double)o.alpha);
    if (!(o.dropout >= 0 && o.dropout < 1))
        return nb__fail_status(NB_ERR_ARG, "lora: dropout %g: need a value in [0, 1)", (double)o.dropout);
    return NB_OK;
}

/* The layer at path in model that a LoRA layer may wrap (or, with wrapped_ok, already wraps);
 * NULL with NB_ERR_ARG naming it otherwise. */
static nb_module *target(nb_module *model, const char *path, bool wrapped_ok, const char *op) {
    nb_module *t = path ? nb_module_child(model, path) : NULL;
    if (!t || t == model)
        return nb__fail(NB_ERR_ARG, "%s: '%s' is not a layer of the model", op, path ? path : "(null)");
    if (is_lora(t) && wrapped_ok) return t;
    if (is_lora(t) || (t->parent && is_lora(t->parent)))
        return nb__fail(NB_ERR_ARG, "%s: '%s' already has a LoRA adapter", op, path);
    if (t->cls == &nb__conv2d_class && NB__STATE(nb__conv2d_state, t)->opts.groups != 1)
        return nb__fail(NB_ERR_ARG, "%s: '%s' is a Conv2d with groups=%d; LoRA takes groups=1 only",
                        op, path, NB__STATE(nb__conv2d_state, t)->opts.groups);
    if (t->cls != &nb__linear_class && t->cls != &nb__conv2d_class)
        return nb__fail(NB_ERR_ARG, "%s: '%s' is a %s, not a Linear or Conv2d", op, path, t->cls->name);
    return t;
}

/* ---- wrapping */

/* A and B for base: Linear(in, r) and Linear(r, out), or Conv2d(in, r) with base's kernel,
 * stride, padding and dilation and a 1x1 Conv2d(r, out); no biases.  A is PEFT's
 * kaiming_uniform_(a = sqrt 5), B zeros. */
static bool make_ab(const nb_module *base, int r, nb_module **a, nb_module **b) {
    if (base->cls == &nb__linear_class) {
        const nb__linear_state *s = NB__STATE(nb__linear_state, base);
        *a = nb_linear_new(s->in_features, r, false);
        *b = nb_linear_new(r, s->out_features, false);
    } else {
        const nb__conv2d_state *s = NB__STATE(nb__conv2d_state, base);
        *a = nb_conv2d_new(s->in_channels, r, s->kernel[0], s->kernel[1], s->opts, false);
        *b = nb_conv2d_new(r, s->out_channels, 1, 1, (nb_conv2d_opts){0}, false);
    }
    return *a && *b &&
           nb_init_kaiming_uniform(nb_module_find(*a, "weight"), sqrtf(5.0f), NB_FAN_IN, NB_GAIN_LEAKY_RELU) == NB_OK &&
           nb_init_constant(nb_module_find(*b, "weight"), 0.0f) == NB_OK;
}

static int child_index(const nb_module *parent, const nb_module *child) {
    int i = 0;
    while (NB__CHILD(parent, i) != child) i++;
    return i;
}

/* Puts a LoRA layer in base's place (base checked by target()); base's parameters are frozen. */
static nb_status wrap(nb_module *base, int rank, float alpha, float dropout) {
    nb_module *m = nb_module_new(base->cls == &nb__conv2d_class ? &lora_conv2d_class : &lora_linear_class,
                                 sizeof(lora_state));
    nb_module *a = NULL, *b = NULL;
    nb_module *drop = dropout > 0 ? nb_dropout_new(dropout) : nb_activation_new(NB_ACT_IDENTITY, 0);
    if (!m || !drop || !make_ab(base, rank, &a, &b)) {
        nb_module_free(m), nb_module_free(drop), nb_module_free(a), nb_module_free(b);
        return nb_error_code();
    }
    bool training = nb_module_is_training(base);
    nb_module *parent = base->parent;
    nb__module_swap_child(parent, child_index(parent, base), m);
    nb_module *kids[4] = {base, drop, a, b};
    static const char *const names[4] = {"base_layer", "lora_dropout", "lora_A", "lora_B"};
    nb_status st = NB_OK;
    for (int k = 0; k < 4; k++) /* a child that is not added is freed, as add_child does */
        if (st == NB_OK) st = nb_module_add_child(m, names[k], kids[k]);
        else nb_module_free(kids[k]);
    if (st != NB_OK) return st;
    *NB__STATE(lora_state, m) = (lora_state){.rank = rank, .alpha = alpha, .scale = alpha / (float)rank,
                                             .base = base, .drop = drop, .lora_a = a, .lora_b = b};
    nb_module_train(m, training);
    return nb_module_freeze(base, true);
}

nb_status nb_lora_apply(nb_module *model, int n_targets, const char *const *targets, nb_lora_opts opts) {
    if (!model || (n_targets > 0 && !targets))
        return nb__fail_status(NB_ERR_NULL, "lora_apply: model or targets is NULL");
    if (n_targets < 1) return nb__fail_status(NB_ERR_ARG, "lora_apply: %d targets: need >= 1", n_targets);
    if (check_opts(opts) != NB_OK) return nb_error_code();
    for (int i = 0; i < n_targets; i++) {
        const nb_module *t = target(model, targets[i], false, "lora_apply");
        if (!t) return nb_error_code();
        for (int j = 0; j < i; j++)
            if (nb_module_child(model, targets[j]) == t)
                return nb__fail_status(NB_ERR_ARG, "lora_apply: '%s' is named twice", targets[i]);
    }
    nb_module_freeze(model, true);
    for (int i = 0; i < n_targets; i++) {
        nb_status st = wrap(nb_module_child(model, targets[i]), opts.rank, opts.alpha, opts.dropout);
        if (st != NB_OK) return st;
    }
    return NB_OK;
}

/* ---- walking the LoRA layers */

typedef nb_status (*lora_visit)(nb_module *lora, void *ctx);

/* Calls fn on every LoRA layer under m (not looking inside them), in the tree's order, until
 * one fails; *count gets how many were visited. */
static nb_status each_lora(nb_module *m, lora_visit fn, void *ctx, int *count) {
    if (is_lora(m)) {
        ++*count;
        return fn ? fn(m, ctx) : NB_OK;
    }
    for (int i = 0; i < m->children.n; i++) {
        nb_status st = each_lora(NB__CHILD(m, i), fn, ctx, count);
        if (st != NB_OK) return st;
    }
    return NB_OK;
}

int nb_lora_count(const nb_module *model) {
    int n = 0;
    if (model) each_lora((nb_module *)model, NULL, NULL, &n);
    return n;
}

/* ---- merging */

/* W0 += sign s B A (the file's comment), computed with recording off in a scope of its own. */
static nb_status fold(nb_module *m, float sign) {
    lora_state *s = NB__STATE(lora_state, m);
    nb_tensor *w = nb_module_find(s->base, "weight"), *a = nb_module_find(s->lora_a, "weight"),
              *b = nb_module_find(s->lora_b, "weight");
    nb_status st;
    nb_scope_begin();
    NB_NO_GRAD {
        nb_tensor *ba = nb_matmul(nb_reshape(b, NB_SHAPE(nb_size(b, 0), s->rank)),
                                  nb_reshape(a, NB_SHAPE(s->rank, -1)));
        nb_tensor *d = nb_reshape(nb_mul_scalar(ba, sign * s->scale), nb_ndim(w), nb_shape(w));
        st = nb_copy(w, nb_add(w, d));
    }
    nb_scope_end();
    return st;
}

static nb_status merge_one(nb_module *m, void *want) {
    lora_state *s = NB__STATE(lora_state, m);
    bool merge = *(const bool *)want;
    if (s->merged == merge) return NB_OK;
    nb_status st = fold(m, merge ? 1.0f : -1.0f);
    if (st == NB_OK) s->merged = merge;
    return st;
}

static nb_status set_merged(nb_module *model, bool merge, const char *op) {
    if (!model) return nb__fail_status(NB_ERR_NULL, "%s: model is NULL", op);
    int n = 0;
    nb_status st = each_lora(model, merge_one, &merge, &n);
    if (st == NB_OK && n == 0) return nb__fail_status(NB_ERR_ARG, "%s: the %s has no LoRA layer", op, model->cls->name);
    return st;
}

nb_status nb_lora_merge(nb_module *model) { return set_merged(model, true, "lora_merge"); }
nb_status nb_lora_unmerge(nb_module *model) { return set_merged(model, false, "lora_unmerge"); }

/* The base layer back in m's place (m merged), m freed: a placeholder takes the base layer's
 * place in m first, so freeing m leaves the base layer alone. */
static nb_status unwrap(nb_module *m, void *ctx) {
    (void)ctx;
    nb_module *placeholder = nb_activation_new(NB_ACT_IDENTITY, 0);
    if (!placeholder) return nb_error_code();
    nb_module *base = nb__module_swap_child(m, 0, placeholder), *parent = m->parent;
    nb_module_free(nb__module_swap_child(parent, child_index(parent, m), base));
    return NB_OK;
}

nb_status nb_lora_unload(nb_module *model) {
    nb_status st = set_merged(model, true, "lora_unload");
    return st == NB_OK ? each_lora(model, unwrap, NULL, &(int){0}) : st;
}

/* ---- adapter files */

static const char peft_prefix[] = "base_model.model.";
static const char *const suffixes[2] = {".lora_A.weight", ".lora_B.weight"};

/* The adapters' tensors of model and their names in a file (prefixed as PEFT's), both arrays of
 * 2 nb_lora_count(model) entries; *first gets the first layer, which gives r and alpha. */
typedef struct {
    int n;
    char **names;
    nb_tensor **tensors;
    const lora_state *first;
    bool uniform; /* every layer has the first's r and alpha */
} adapter_list;

static nb_status list_one(nb_module *m, void *ctx) {
    adapter_list *l = ctx;
    const lora_state *s = NB__STATE(lora_state, m);
    if (!l->first) l->first = s;
    l->uniform = l->uniform && s->rank == l->first->rank && s->alpha == l->first->alpha;
    l->tensors[l->n++] = nb_module_find(s->lora_a, "weight");
    l->tensors[l->n++] = nb_module_find(s->lora_b, "weight");
    return NB_OK;
}

nb_status nb_lora_save(const nb_module *model, const char *path) {
    if (!model || !path) return nb__fail_status(NB_ERR_NULL, "lora_save: model or path is NULL");
    int layers = nb_lora_count(model);
    if (!layers) return nb__fail_status(NB_ERR_ARG, "lora_save: the %s has no LoRA layer", model->cls->name);
    size_t bytes = sizeof(char *) * 2 * (size_t)layers;
    adapter_list l = {.names = nb__alloc(bytes), .tensors = nb__alloc(bytes), .uniform = true};
    nb_status st = l.names && l.tensors ? NB_OK : NB_ERR_MEMORY;
    if (l.names) memset(l.names, 0, bytes);
    if (st == NB_OK) each_lora((nb_module *)model, list_one, &l, &(int){0});
    /* names: the parameters' own ("<layer>.lora_A.weight"), in the same tree order */
    for (int i = 0, k = 0, n = nb_module_num_params(model); st == NB_OK && i < n; i++) {
        const char *name;
        nb_tensor *p = nb_module_param(model, i, &name);
        if (k < l.n && p == l.tensors[k] && !(l.names[k++] = nb__strcat2(peft_prefix, name))) st = NB_ERR_MEMORY;
    }
    if (st == NB_OK && !l.uniform)
        st = nb__fail_status(NB_ERR_ARG, "lora_save: '%s': the layers differ in r or alpha; the file holds one of each",
                             path);
    char r[16], alpha[32];
    if (st == NB_OK) {
        snprintf(r, sizeof r, "%d", l.first->rank);
        snprintf(alpha, sizeof alpha, "%.9g", (double)l.first->alpha);
        st = nb_safetensors_save(path, l.n, (const char *const *)l.names, l.tensors,
                                 (const char *const[]){"format", "r", "lora_alpha"},
                                 (const char *const[]){"pt", r, alpha}, 3);
    }
    for (int i = 0; l.names && i < 2 * layers; i++) nb__strfree(l.names[i]);
    nb__dealloc(l.names, bytes);
    nb__dealloc(l.tensors, bytes);
    return st;
}

/* ---- loading */

/* Which of A (0) or B (1) a file's tensor name is, and its layer's path (PEFT's prefix off) in
 * a copy the caller frees; -1 (NB_ERR_IO naming it) for another name, -2 out of memory. */
static int parse_name(const char *path, const char *full, char **layer) {
    const char *name = full;
    if (!strncmp(name, peft_prefix, sizeof peft_prefix - 1)) name += sizeof peft_prefix - 1;
    size_t len = strlen(name);
    for (int k = 0; k < 2; k++) {
        size_t sl = strlen(suffixes[k]);
        if (len > sl && !strcmp(name + len - sl, suffixes[k])) {
            *layer = nb__strdup(name);
            if (!*layer) return -2;
            (*layer)[len - sl] = '\0';
            return k;
        }
    }
    nb__fail(NB_ERR_IO, "lora_load: '%s': tensor '%s' is not a LoRA adapter's lora_A or lora_B weight", path, full);
    return -1;
}

/* The name in st of layer's A (k = 0) or B (1), with or without the prefix; NULL if absent. */
static const char *find_tensor(const nb_safetensors *st, const char *layer, int k) {
    for (int i = 0, n = nb_safetensors_count(st); i < n; i++) {
        const char *name = nb_safetensors_name(st, i), *bare = name;
        if (!strncmp(bare, peft_prefix, sizeof peft_prefix - 1)) bare += sizeof peft_prefix - 1;
        size_t ll = strlen(layer);
        if (!strncmp(bare, layer, ll) && !strcmp(bare + ll, suffixes[k])) return name;
    }
    return NULL;
}

/* The shapes A and B must have on layer t: a wrapped layer's own; for a plain one, the rank r
 * that the file's A gives. */
static void expected_shapes(const nb_module *t, int64_t r, int *nd, int64_t shapes[2][4]) {
    if (is_lora(t)) {
        const lora_state *s = NB__STATE(lora_state, t);
        for (int k = 0; k < 2; k++) {
            const nb_tensor *w = nb_module_find(k ? s->lora_b : s->lora_a, "weight");
            nd[k] = nb_ndim(w);
            memcpy(shapes[k], nb_shape(w), sizeof(int64_t) * (size_t)nd[k]);
        }
    } else if (t->cls == &nb__linear_class) {
        const nb__linear_state *s = NB__STATE(nb__linear_state, t);
        nd[0] = nd[1] = 2;
        memcpy(shapes[0], (int64_t[]){r, s->in_features}, 2 * sizeof(int64_t));
        memcpy(shapes[1], (int64_t[]){s->out_features, r}, 2 * sizeof(int64_t));
    } else {
        const nb__conv2d_state *s = NB__STATE(nb__conv2d_state, t);
        nd[0] = nd[1] = 4;
        memcpy(shapes[0], (int64_t[]){r, s->in_channels, s->kernel[0], s->kernel[1]}, 4 * sizeof(int64_t));
        memcpy(shapes[1], (int64_t[]){s->out_channels, r, 1, 1}, 4 * sizeof(int64_t));
    }
}

/* Checks the file's A and B of one layer against the model (in a scope: the tensors read are
 * dropped); *rank gets the file's r. */
static nb_status check_layer(nb_module *model, const nb_safetensors *st, const char *path, const char *layer,
                             int *rank) {
    nb_module *t = target(model, layer, true, "lora_load");
    if (!t) return nb_error_code();
    if (is_lora(t) && NB__STATE(lora_state, t)->merged)
        return nb__fail_status(NB_ERR_ARG, "lora_load: layer '%s' is merged: unmerge it first", layer);
    const char *names[2] = {find_tensor(st, layer, 0), find_tensor(st, layer, 1)};
    for (int k = 0; k < 2; k++)
        if (!names[k])
            return nb__fail_status(NB_ERR_IO, "lora_load: '%s': layer '%s' has no tensor '%s%s'", path, layer, layer,
                                   suffixes[k]);
    nb_status status = NB_OK;
    nb_scope_begin();
    nb_tensor *w[2] = {nb_safetensors_get(st, names[0]), nb_safetensors_get(st, names[1])};
    if (!w[0] || !w[1]) status = nb_error_code();
    int64_t r = w[0] && nb_ndim(w[0]) > 0 ? nb_size(w[0], 0) : 0;
    int nd[2];
    int64_t want[2][4];
    expected_shapes(t, r, nd, want);
    for (int k = 0; k < 2 && status == NB_OK; k++)
        if (r < 1 || nb_ndim(w[k]) != nd[k] || memcmp(nb_shape(w[k]), want[k], sizeof(int64_t) * (size_t)nd[k]))
            status = nb__fail_status(NB_ERR_SHAPE, "lora_load: '%s': tensor '%s' is %s but layer '%s' (a %s) needs %s",
                                     path, names[k], nb__shape_str(nb_ndim(w[k]), nb_shape(w[k])), layer,
                                     t->cls->name, nb__shape_str(nd[k], want[k]));
    nb_scope_end();
    *rank = (int)r;
    return status;
}

/* The model's LoRA layers must all be in the file (a strict load, as nb_module_load). */
static nb_status check_covered(nb_module *model, const nb_safetensors *st, const char *path) {
    for (int i = 0, n = nb_module_num_params(model); i < n; i++) {
        const char *name;
        nb_module_param(model, i, &name);
        char *layer = NULL;
        size_t len = strlen(name), sl = strlen(suffixes[0]);
        if (len <= sl || strcmp(name + len - sl, suffixes[0])) continue;
        if (!(layer = nb__strdup(name))) return NB_ERR_MEMORY;
        layer[len - sl] = '\0';
        const nb_module *t = nb_module_child(model, layer);
        nb_status s = t && is_lora(t) && !find_tensor(st, layer, 0)
                          ? nb__fail_status(NB_ERR_IO, "lora_load: '%s' has no adapter for the model's LoRA layer '%s'",
                                            path, layer)
                          : NB_OK;
        nb__strfree(layer);
        if (s != NB_OK) return s;
    }
    return NB_OK;
}

/* Pass 0 checks every tensor of the file; pass 1 wraps the plain layers and copies A and B. */
static nb_status load_pass(nb_module *model, const nb_safetensors *st, const char *path, float alpha, int pass) {
    for (int i = 0, n = nb_safetensors_count(st); i < n; i++) {
        const char *name = nb_safetensors_name(st, i);
        char *layer = NULL;
        int k = parse_name(path, name, &layer), rank = 0;
        if (k < 0) return k == -1 ? NB_ERR_IO : NB_ERR_MEMORY;
        nb_status s = NB_OK;
        if (k == 0) s = check_layer(model, st, path, layer, &rank);
        else if (!find_tensor(st, layer, 0)) /* a B with its A is checked with the A */
            s = nb__fail_status(NB_ERR_IO, "lora_load: '%s': layer '%s' has no tensor '%s%s'", path, layer, layer,
                                suffixes[0]);
        nb_module *t = s == NB_OK ? nb_module_child(model, layer) : NULL;
        if (s == NB_OK && pass == 0 && k == 0 && !is_lora(t) && !(alpha > 0))
            s = nb__fail_status(NB_ERR_ARG, "lora_load: '%s': no lora_alpha in the metadata to wrap layer '%s' with "
                                "(apply nb_lora_apply first)", path, layer);
        if (s == NB_OK && pass == 1 && k == 0 && !is_lora(t)) s = wrap(t, rank, alpha, 0.0f);
        if (s == NB_OK && pass == 1 && k == 0) {
            const lora_state *ls = NB__STATE(lora_state, nb_module_child(model, layer));
            for (int j = 0; j < 2 && s == NB_OK; j++)
                s = nb_safetensors_load_into(st, find_tensor(st, layer, j),
                                             nb_module_find(j ? ls->lora_b : ls->lora_a, "weight"));
        }
        nb__strfree(layer);
        if (s != NB_OK) return s;
    }
    return NB_OK;
}

nb_status nb_lora_load(nb_module *model, const char *path) {
    if (!model || !path) return nb__fail_status(NB_ERR_NULL, "lora_load: model or path is NULL");
    nb_safetensors *st = nb_safetensors_open(path);
    if (!st) return nb_error_code();
    if (nb_safetensors_count(st) == 0) {
        nb_safetensors_close(st);
        return nb__fail_status(NB_ERR_IO, "lora_load: '%s' holds no adapter", path);
    }
    const char *a = nb_safetensors_meta(st, "lora_alpha");
    char *end = NULL;
    float alpha = a ? strtof(a, &end) : 0.0f;
    if (a && (*end || !isfinite(alpha))) alpha = 0.0f;
    nb_status s = load_pass(model, st, path, alpha, 0);
    if (s == NB_OK) s = check_covered(model, st, path);
    if (s == NB_OK) s = load_pass(model, st, path, alpha, 1);
    nb_safetensors_close(st);
    return s;
}
