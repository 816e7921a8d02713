/*
 * prune_channels.c — structured pruning that removes (nabla/prune.h): output units of a Linear
 * (neurons) or of a Conv2d (channels) of a Sequential are taken out, and the layers they feed
 * are cut to match, so the model gets smaller and faster, not only sparser.
 *
 * A pruned layer P at child i of the Sequential reaches its consumer C, the next Linear or
 * Conv2d, through a chain of layers that act on each channel apart:
 *     P -> [BatchNorm | activation | Dropout | pool | Upsample | Flatten]* -> C
 * Removing unit c of P removes (shapes in torch's layout):
 *   P:         row c of W ([out, in] or [out, in/g, kh, kw]) and b[c];
 *   BatchNorm: weight[c], bias[c], running_mean[c], running_var[c];
 *   C:         its inputs from c: column c of a Linear, in-channel c of a Conv2d, or, for a
 *              Linear after a Flatten of [N, C, H, W], the column block [c HW, (c + 1) HW)
 *              (Flatten writes channel-major: column = c HW + h W + w).
 * The small model computes exactly what the big one computes with unit c held at zero before
 * C: a masked P row and bias give a zero pre-activation, the BatchNorm of a masked channel
 * (weight and bias 0) gives 0, and the chain's layers map 0 to 0 (ReLU, tanh, pools, ...) — so
 * the columns C drops multiply zeros.  (An activation with f(0) != 0, sigmoid say, or a
 * BatchNorm's bias left unmasked, makes channel c a constant into C; removing it is then the
 * usual approximation that fine-tuning repairs.)
 *
 * Ranking: the unit's weight row by its L1 or L2 norm, as torch.nn.utils.prune.ln_structured
 * on dim 0; the round(amount * out) of smallest norm go (half to even; ties: lower index
 * first), and one unit always stays.  Layers are replaced by new ones of the smaller sizes
 * (the same options, training mode and frozen state), under the same names.
 */
#include "module.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHAIN_MAX 16 /* BatchNorms between a layer and its consumer */

/* A pruned layer, the norms on its channels, and the layer reading them. */
typedef struct {
    nb_module *seq;
    int layer, next;
    int norms[CHAIN_MAX], n_norms;
    int64_t units; /* the layer's outputs */
    int64_t block; /* the consumer's inputs per unit: 1, or H W after a Flatten */
} chain;

static bool is(const nb_module *m, const nb_module_class *cls) { return m->cls == cls; }

static const char *const passing[] = {"Dropout", "Dropout2d", "MaxPool2d", "AvgPool2d",
                                      "AdaptiveAvgPool2d", "Upsample", "Identity"};

/* A layer that maps each channel on its own: the element-wise activations (not softmax, which
 * mixes channels, nor PReLU, whose per-channel slopes would need cutting too) and those above. */
static bool passes_channels(const nb_module *m) {
    nb_activation act;
    if (nb_activation_parse(m->cls->name, &act) && strcmp(m->cls->name, "PReLU"))
        return act != NB_ACT_SOFTMAX && act != NB_ACT_LOG_SOFTMAX;
    for (size_t i = 0; i < sizeof passing / sizeof *passing; i++)
        if (!strcmp(m->cls->name, passing[i])) return true;
    return false;
}

/* Flatten(1, -1) (torch's default); others move the channel elsewhere. */
static bool plain_flatten(const nb_module *m) {
    nb_attrs d;
    if (strcmp(m->cls->name, "Flatten") || nb_module_describe(m, &d) != NB_OK) return false;
    return d.n == 2 && d.attr[0].ints[0] == 1 && d.attr[1].ints[0] == -1;
}

static bool prunable_kind(const nb_module *m) {
    return is(m, &nb__linear_class) ||
           (is(m, &nb__conv2d_class) && NB__STATE(nb__conv2d_state, m)->opts.groups == 1);
}

static int64_t units_of(const nb_module *m) {
    return is(m, &nb__linear_class) ? NB__STATE(nb__linear_state, m)->out_features
                                    : NB__STATE(nb__conv2d_state, m)->out_channels;
}

/* A buffer named "*_mask" (unstructured pruning's) among m's own. */
static bool has_mask(const nb_module *m) {
    for (int i = 0; i < m->buffers.n; i++) {
        size_t n = strlen(m->buffers.at[i].name);
        if (n >= 5 && !strcmp(m->buffers.at[i].name + n - 5, "_mask")) return true;
    }
    return false;
}

/* The chain from child i of seq, or false with NB_ERR_ARG saying why child i cannot be pruned. */
static bool find_chain(nb_module *seq, int i, const char *op, chain *c) {
    const char *name = seq->children.at[i].name;
    nb_module *p = NB__CHILD(seq, i);
    if (!prunable_kind(p))
        return nb__fail(NB_ERR_ARG, "%s: layer '%s' is a %s: only a Linear or a Conv2d (groups 1) loses units",
                        op, name, p->cls->name), false;
    *c = (chain){.seq = seq, .layer = i, .units = units_of(p), .block = 1};
    bool flat = false;
    for (int j = i + 1; j < seq->children.n; j++) {
        nb_module *m = NB__CHILD(seq, j);
        const char *why = NULL;
        if (has_mask(m) || has_mask(p)) why = "carries a pruning mask (nb_prune_remove it first)";
        else if (is(m, &nb__linear_class)) {
            int64_t in = NB__STATE(nb__linear_state, m)->in_features;
            if (in % c->units) why = "takes inputs that are no whole number per unit";
            c->block = in / c->units;
            if (!flat && c->block != 1) why = "takes another number of inputs";
        } else if (is(m, &nb__conv2d_class)) {
            const nb__conv2d_state *s = NB__STATE(nb__conv2d_state, m);
            if (flat || s->opts.groups != 1 || s->in_channels != c->units) why = "cannot be cut to match";
        } else if (is(m, &nb__batchnorm1d_class) || is(m, &nb__batchnorm2d_class)) {
            if (NB__STATE(nb__batchnorm_state, m)->num_features != c->units) why = "normalises another size";
            else if (c->n_norms == CHAIN_MAX) why = "is one norm too many";
            else c->norms[c->n_norms++] = j;
            if (!why) continue;
        } else if (plain_flatten(m)) {
            flat = true;
            continue;
        } else if (passes_channels(m)) continue;
        else why = "is a layer nabla cannot cut";
        if (why)
            return nb__fail(NB_ERR_ARG, "%s: layer '%s' cannot be pruned: layer '%s' (%s) after it %s", op, name,
                            seq->children.at[j].name, m->cls->name, why), false;
        c->next = j;
        return true;
    }
    return nb__fail(NB_ERR_ARG, "%s: layer '%s' cannot be pruned: no Linear or Conv2d reads it (its outputs "
                    "are the model's)", op, name), false;
}

static int child_index(const nb_module *seq, const char *name) {
    for (int i = 0; i < seq->children.n; i++)
        if (!strcmp(seq->children.at[i].name, name)) return i;
    return -1;
}

/* Checks seq and names the chain of `layer`. */
static bool resolve_layer(nb_module *seq, const char *layer, const char *op, chain *c) {
    if (!layer) return nb__fail(NB_ERR_NULL, "%s: a layer name is NULL", op), false;
    int i = child_index(seq, layer);
    if (i < 0)
        return nb__fail(NB_ERR_ARG, "%s: no layer '%s' in the Sequential (its layers are '0' to '%d')", op, layer,
                        seq->children.n - 1), false;
    return find_chain(seq, i, op, c);
}

static bool check_seq(const nb_module *seq, const char *op) {
    if (!seq) return nb__fail(NB_ERR_NULL, "%s: model is NULL", op), false;
    if (strcmp(seq->cls->name, "Sequential"))
        return nb__fail(NB_ERR_ARG, "%s: the model is a %s, not a Sequential", op, seq->cls->name), false;
    return true;
}

/* ---- cutting tensors: dst = src with its units axis (of `units`) reduced to keep[] */

/* src viewed as [outer, units, inner] into dst [outer, n_keep, inner]. */
static nb_status gather(nb_tensor *dst, const nb_tensor *src, int64_t units, int64_t n_keep, const int64_t *keep,
                        int64_t inner) {
    int64_t n = nb_numel(src), outer = n / (units * inner), m = nb_numel(dst);
    float *s = nb__alloc(sizeof(float) * (size_t)n), *d = nb__alloc(sizeof(float) * (size_t)m);
    nb_status st = s && d ? nb_copy_to(src, s, n) : nb_error_code();
    for (int64_t o = 0; st == NB_OK && o < outer; o++)
        for (int64_t j = 0; j < n_keep; j++)
            memcpy(d + (o * n_keep + j) * inner, s + (o * units + keep[j]) * inner, sizeof(float) * (size_t)inner);
    if (st == NB_OK) st = nb_copy_from(dst, d, m);
    nb__dealloc(s, sizeof(float) * (size_t)n);
    nb__dealloc(d, sizeof(float) * (size_t)m);
    return st;
}

/* Puts fresh (a new module replacing child i) in place, with old's mode and frozen state. */
static nb_status replace(nb_module *seq, int i, nb_module *fresh) {
    if (!fresh) return nb_error_code();
    nb_module *old = NB__CHILD(seq, i);
    nb_module_train(fresh, old->training);
    if (old->params.n && !nb_requires_grad(old->params.at[0].tensor) && nb_module_freeze(fresh, true) != NB_OK) {
        nb_module_free(fresh);
        return nb_error_code();
    }
    nb_module_free(nb__module_swap_child(seq, i, fresh));
    return NB_OK;
}

/* The pruned layer: rows keep[] of W and b. */
static nb_status cut_outputs(nb_module *seq, int i, int64_t n_keep, const int64_t *keep) {
    nb_module *p = NB__CHILD(seq, i), *fresh;
    nb_tensor *w, *b;
    if (is(p, &nb__linear_class)) {
        const nb__linear_state *s = NB__STATE(nb__linear_state, p);
        fresh = nb_linear_new(s->in_features, n_keep, s->bias != NULL);
        w = s->weight, b = s->bias;
    } else {
        const nb__conv2d_state *s = NB__STATE(nb__conv2d_state, p);
        fresh = nb_conv2d_new(s->in_channels, n_keep, s->kernel[0], s->kernel[1], s->opts, s->bias != NULL);
        w = s->weight, b = s->bias;
    }
    if (!fresh) return nb_error_code();
    int64_t units = nb_shape(w)[0];
    nb_status st = gather(nb_module_find(fresh, "weight"), w, units, n_keep, keep, nb_numel(w) / units);
    if (st == NB_OK && b) st = gather(nb_module_find(fresh, "bias"), b, units, n_keep, keep, 1);
    if (st != NB_OK) nb_module_free(fresh);
    return st == NB_OK ? replace(seq, i, fresh) : st;
}

/* A BatchNorm on the pruned channels: its vectors at keep[]; its step count as it was. */
static nb_status cut_norm(nb_module *seq, int i, int64_t n_keep, const int64_t *keep) {
    nb_module *bn = NB__CHILD(seq, i);
    const nb__batchnorm_state *s = NB__STATE(nb__batchnorm_state, bn);
    nb_batchnorm_opts o = {.eps = s->eps, .momentum = s->momentum != 0 ? s->momentum : (float)NB_ZERO,
                           .no_affine = !s->weight, .no_running_stats = !s->running_mean};
    nb_module *fresh = is(bn, &nb__batchnorm2d_class) ? nb_batchnorm2d_new(n_keep, o) : nb_batchnorm1d_new(n_keep, o);
    if (!fresh) return nb_error_code();
    const nb__batchnorm_state *f = NB__STATE(nb__batchnorm_state, fresh);
    nb_tensor *from[] = {s->weight, s->bias, s->running_mean, s->running_var},
              *to[] = {f->weight, f->bias, f->running_mean, f->running_var};
    nb_status st = NB_OK;
    for (int k = 0; k < 4 && st == NB_OK; k++)
        if (from[k]) st = gather(to[k], from[k], s->num_features, n_keep, keep, 1);
    if (st == NB_OK && s->num_batches_tracked) st = nb_copy(f->num_batches_tracked, s->num_batches_tracked);
    if (st != NB_OK) nb_module_free(fresh);
    return st == NB_OK ? replace(seq, i, fresh) : st;
}

/* The consumer: its inputs from the units kept (blocks of c->block columns for a Linear). */
static nb_status cut_inputs(const chain *c, int64_t n_keep, const int64_t *keep) {
    nb_module *m = NB__CHILD(c->seq, c->next), *fresh;
    nb_tensor *w, *b;
    int64_t inner;
    if (is(m, &nb__linear_class)) {
        const nb__linear_state *s = NB__STATE(nb__linear_state, m);
        fresh = nb_linear_new(n_keep * c->block, s->out_features, s->bias != NULL);
        w = s->weight, b = s->bias, inner = c->block;
    } else {
        const nb__conv2d_state *s = NB__STATE(nb__conv2d_state, m);
        fresh = nb_conv2d_new(n_keep, s->out_channels, s->kernel[0], s->kernel[1], s->opts, s->bias != NULL);
        w = s->weight, b = s->bias, inner = (int64_t)s->kernel[0] * s->kernel[1];
    }
    if (!fresh) return nb_error_code();
    nb_status st = gather(nb_module_find(fresh, "weight"), w, c->units, n_keep, keep, inner);
    if (st == NB_OK && b) st = nb_copy(nb_module_find(fresh, "bias"), b);
    if (st != NB_OK) nb_module_free(fresh);
    return st == NB_OK ? replace(c->seq, c->next, fresh) : st;
}

static nb_status cut_chain(const chain *c, int64_t n_keep, const int64_t *keep) {
    nb_status st = cut_outputs(c->seq, c->layer, n_keep, keep);
    for (int k = 0; k < c->n_norms && st == NB_OK; k++) st = cut_norm(c->seq, c->norms[k], n_keep, keep);
    return st == NB_OK ? cut_inputs(c, n_keep, keep) : st;
}

nb_status nb_prune_units_keep(nb_module *seq, const char *layer, int64_t n_keep, const int64_t *keep) {
    const char *op = "prune_units_keep";
    chain c;
    if (!check_seq(seq, op) || !resolve_layer(seq, layer, op, &c)) return nb_error_code();
    if (!keep) return nb__fail_status(NB_ERR_NULL, "%s: keep is NULL", op);
    if (n_keep < 1 || n_keep > c.units)
        return nb__fail_status(NB_ERR_ARG, "%s: keeping %lld of layer '%s''s %lld units: need 1 to %lld", op,
                               (long long)n_keep, layer, (long long)c.units, (long long)c.units);
    for (int64_t j = 0; j < n_keep; j++)
        if (keep[j] < 0 || keep[j] >= c.units || (j && keep[j] <= keep[j - 1]))
            return nb__fail_status(NB_ERR_ARG, "%s: keep[%lld] = %lld: need increasing units in [0, %lld)", op,
                                   (long long)j, (long long)keep[j], (long long)c.units);
    return cut_chain(&c, n_keep, keep);
}

/* ---- ranking by norm */

typedef struct {
    double norm;
    int64_t unit;
} unit_norm;

static int by_norm(const void *a, const void *b) {
    const unit_norm *x = a, *y = b;
    if (x->norm != y->norm) return x->norm < y->norm ? -1 : 1;
    return (x->unit > y->unit) - (x->unit < y->unit);
}

static int by_unit(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The units of c's layer that stay (increasing, into keep) and how many. */
static int64_t rank_units(const chain *c, float amount, nb_prune_norm norm, int64_t *keep) {
    const nb_tensor *w = nb_module_find(NB__CHILD(c->seq, c->layer), "weight");
    int64_t n = nb_numel(w), row = n / c->units;
    float *v = nb__alloc(sizeof(float) * (size_t)n);
    unit_norm *r = nb__alloc(sizeof *r * (size_t)c->units);
    int64_t cut = -1;
    if (v && r && nb_copy_to(w, v, n) == NB_OK) {
        for (int64_t u = 0; u < c->units; u++) {
            double s = 0;
            for (int64_t k = 0; k < row; k++) s += norm == NB_PRUNE_L1 ? fabs(v[u * row + k]) : (double)v[u * row + k] * v[u * row + k];
            r[u] = (unit_norm){s, u};
        }
        qsort(r, (size_t)c->units, sizeof *r, by_norm);
        cut = (int64_t)nearbyint((double)amount * (double)c->units);
        if (cut > c->units - 1) cut = c->units - 1;
        for (int64_t j = cut; j < c->units; j++) keep[j - cut] = r[j].unit;
        qsort(keep, (size_t)(c->units - cut), sizeof *keep, by_unit);
    }
    nb__dealloc(v, sizeof(float) * (size_t)n);
    nb__dealloc(r, sizeof *r * (size_t)c->units);
    return cut < 0 ? -1 : c->units - cut;
}

nb_status nb_prune_channels(nb_module *seq, int n, const char *const *layers, float amount, nb_prune_norm norm) {
    const char *op = "prune_channels";
    if (!check_seq(seq, op)) return nb_error_code();
    if (!layers) return nb__fail_status(NB_ERR_NULL, "%s: layers is NULL", op);
    if (n < 1) return nb__fail_status(NB_ERR_ARG, "%s: %d layers: need >= 1", op, n);
    if (!(amount >= 0 && amount < 1))
        return nb__fail_status(NB_ERR_ARG, "%s: amount %g: need a fraction in [0, 1)", op, (double)amount);
    if (norm != NB_PRUNE_L1 && norm != NB_PRUNE_L2)
        return nb__fail_status(NB_ERR_ARG, "%s: norm %d: need NB_PRUNE_L1 or NB_PRUNE_L2", op, (int)norm);
    chain c;
    for (int k = 0; k < n; k++) { /* everything checked before anything changes */
        if (!resolve_layer(seq, layers[k], op, &c)) return nb_error_code();
        for (int j = 0; j < k; j++)
            if (!strcmp(layers[j], layers[k])) return nb__fail_status(NB_ERR_ARG, "%s: '%s' is named twice", op, layers[k]);
    }
    nb_status st = NB_OK;
    for (int k = 0; k < n && st == NB_OK; k++) {
        resolve_layer(seq, layers[k], op, &c); /* again: the layer before may have cut its inputs */
        int64_t *keep = nb__alloc(sizeof *keep * (size_t)c.units);
        int64_t n_keep = keep ? rank_units(&c, amount, norm, keep) : -1;
        st = n_keep < 0 ? nb_error_code() : n_keep < c.units ? cut_chain(&c, n_keep, keep) : NB_OK;
        nb__dealloc(keep, sizeof *keep * (size_t)c.units);
    }
    return st;
}

int nb_prune_channel_layers(const nb_module *seq, const char **names, int cap) {
    if (!check_seq(seq, "prune_channel_layers")) return -1;
    int k = 0;
    chain c;
    for (int i = 0; i < seq->children.n; i++) {
        if (!prunable_kind(NB__CHILD(seq, i)) || !find_chain((nb_module *)seq, i, "", &c)) continue;
        if (names && k < cap) names[k] = seq->children.at[i].name;
        k++;
    }
    nb_error_clear();
    return k;
}
