/*
 * tagger.c — the sequence tagger of nabla/tagger.h: per-token features embedded and
 * concatenated, an encoder (a BiLSTM, or a transformer encoder with learned positions), and a
 * Linear layer to the tags, all children added in that order so the parameters are named
 * emb0.weight, ..., lstm.weight_ih_l0, ..., out.weight.
 *
 * Shapes: features [B, T, K] int32, mask [B, T] float32 (1 then 0 in each row), embeddings
 * [B, T, E] with E the sum of the feature dims, encoder output [B, T, H'] (2 hidden for the
 * BiLSTM, d_model for the transformer), logits [B, T, C].  Padded positions get logits too;
 * the loss ignores them (their tags are NB_TAGGER_PAD_TAG) and the BiLSTM's lengths keep them
 * out of every real token's states, as the transformer's key padding mask does.
 */
#include "module.h"
#include "nabla/tagger.h"

#include <string.h>

#define MAX_LAYERS 16

typedef struct {
    nb_tagger_opts opts;
    nb_module *emb[NB_TAGGER_MAX_FEATURES], *drop, *lstm, *proj, *positions, *out;
    nb_module *layer[MAX_LAYERS];
} tagger_state;

static nb_status tagger_forward_n(nb_module *m, nb_tensor *const *in, nb_tensor **out);

static void tagger_describe(const nb_module *m, nb_attrs *d) {
    const tagger_state *s = NB__STATE(tagger_state, m);
    nb_attrs_string(d, "kind", s->opts.kind == NB_TAGGER_BILSTM ? "bilstm" : "transformer")->flags =
        NB_ATTR_QUOTED;
    nb_attrs_int(d, "tags", s->opts.tags);
    nb_attrs_int(d, "hidden", s->opts.hidden);
    nb_attrs_int(d, "layers", s->opts.layers);
    if (s->opts.kind == NB_TAGGER_TRANSFORMER) nb_attrs_int(d, "heads", s->opts.heads);
    nb_attrs_float(d, "dropout", s->opts.dropout);
}

static const nb_module_class tagger_class = {.name = "Tagger", .forward_n = tagger_forward_n,
                                             .n_inputs = 2, .n_outputs = 1,
                                             .describe = tagger_describe};

/* ---- forward */

/* Each row's length from the mask (copied to the host), checked to be 1s then 0s. */
static bool mask_lengths(nb_tensor *mask, int64_t B, int64_t T, int64_t *lengths) {
    size_t bytes = (size_t)(B * T) * sizeof(float);
    float *v = nb__alloc(bytes);
    if (!v) return false;
    bool ok = nb_copy_to(mask, v, B * T) == NB_OK;
    for (int64_t b = 0; ok && b < B; b++) {
        int64_t n = 0;
        while (n < T && v[b * T + n] == 1.0f) n++;
        for (int64_t t = n; ok && t < T; t++) ok = v[b * T + t] == 0.0f;
        if (!ok || n == 0) {
            ok = false;
            nb__fail(NB_ERR_ARG, "Tagger: mask row %lld is not 1s (at least one) then 0s", (long long)b);
        }
        lengths[b] = n;
    }
    nb__dealloc(v, bytes);
    return ok;
}

/* The K embeddings of features [B, T, K], concatenated along the last dim: [B, T, E]. */
static nb_tensor *embed(nb__temps *tmp, const tagger_state *s, nb_tensor *features) {
    nb_tensor *parts[NB_TAGGER_MAX_FEATURES];
    const int64_t *shape = nb_shape(features);
    for (int k = 0; k < s->opts.n_features; k++) {
        nb_tensor *col = nb__tmp(tmp, nb_slice(features, 2, k, k + 1, 1));
        col = nb__tmp(tmp, nb_reshape(col, 2, (int64_t[]){shape[0], shape[1]}));
        parts[k] = nb__tmp(tmp, nb_module_forward(s->emb[k], col));
        if (!parts[k]) return NULL;
    }
    return nb__tmp(tmp, nb_concat(s->opts.n_features, parts, 2));
}

static nb_tensor *bilstm(nb__temps *tmp, const tagger_state *s, nb_tensor *x, const int64_t *lengths) {
    nb_tensor *y = NULL;
    nb_rnn_inputs in = {.lengths = lengths};
    if (nb_rnn_forward(s->lstm, x, &in, &y, NULL, NULL) != NB_OK) return NULL;
    return nb__tmp(tmp, y);
}

/* proj(x) + positions, through the encoder layers; padding keys get -1e9 added (key padding
 * as a float mask: 0 on tokens). */
static nb_tensor *transformer(nb__temps *tmp, const tagger_state *s, nb_tensor *x, nb_tensor *mask, int64_t T) {
    nb_tensor *ids = nb__tmp(tmp, nb_position_ids(0, T, s->opts.max_len));
    if (!ids) return NULL;
    nb_tensor *h = nb__tmp(tmp, nb_add(nb__tmp(tmp, nb_module_forward(s->proj, x)),
                                       nb__tmp(tmp, nb_module_forward(s->positions, ids))));
    nb_mha_inputs masks = {.key_padding_mask = nb__tmp(tmp, nb_mul_scalar(nb__tmp(tmp, nb_add_scalar(mask, -1.0f)), 1e9f))};
    for (int i = 0; h && i < s->opts.layers; i++)
        h = nb__tmp(tmp, nb_transformer_encoder_layer_forward(s->layer[i], h, &masks));
    return h;
}

static nb_tensor *tagger_logits(const tagger_state *s, nb_tensor *features, nb_tensor *mask) {
    const int64_t *fs = nb_shape(features), *ms = nb_shape(mask);
    if (nb_ndim(features) != 3 || fs[2] != s->opts.n_features || nb_ndim(mask) != 2 || ms[0] != fs[0] ||
        ms[1] != fs[1])
        return nb__fail(NB_ERR_SHAPE, "Tagger: features [B, T, %d] and mask [B, T] expected, got %s and %s",
                        s->opts.n_features, NB_SHP(features), NB_SHP(mask));
    int64_t B = fs[0], T = fs[1];
    int64_t *lengths = nb__alloc((size_t)B * sizeof *lengths);
    if (!lengths) return NULL;
    nb__temps tmp = {0};
    nb_tensor *h = NULL;
    if (mask_lengths(mask, B, T, lengths)) {
        h = nb__tmp(&tmp, nb_module_forward(s->drop, embed(&tmp, s, features)));
        h = !h ? NULL : s->lstm ? bilstm(&tmp, s, h, lengths) : transformer(&tmp, s, h, mask, T);
        if (h) h = nb__tmp(&tmp, nb_module_forward(s->out, nb__tmp(&tmp, nb_module_forward(s->drop, h))));
    }
    nb__dealloc(lengths, (size_t)B * sizeof *lengths);
    return nb__temps_end(&tmp, h);
}

static nb_status tagger_forward_n(nb_module *m, nb_tensor *const *in, nb_tensor **out) {
    out[0] = tagger_logits(NB__STATE(tagger_state, m), in[0], in[1]);
    return out[0] ? NB_OK : nb_error_code();
}

nb_tensor *nb_tagger_forward(nb_module *m, nb_tensor *features, nb_tensor *mask) {
    if (!nb_module_state(m, &tagger_class)) return NULL;
    nb_tensor *in[2] = {features, mask}, *logits = NULL;
    return nb_module_forward_n(m, 2, in, 1, &logits) == NB_OK ? logits : NULL;
}

/* ---- loss and predictions */

nb_tensor *nb_tagger_loss(nb_tensor *logits, nb_tensor *tags) {
    if (!nb_is_alive(logits) || !nb_is_alive(tags)) return nb__fail_input("tagger_loss", nb_is_alive(logits) ? tags : logits);
    if (nb_ndim(logits) != 3)
        return nb__fail(NB_ERR_SHAPE, "tagger_loss: logits [B, T, C] expected, got %s", NB_SHP(logits));
    const int64_t *ls = nb_shape(logits);
    nb__temps tmp = {0};
    /* cross_entropy's class dim is 1: [B * T, C] against [B * T] */
    nb_tensor *x = nb__tmp(&tmp, nb_reshape(logits, 2, (int64_t[]){ls[0] * ls[1], ls[2]}));
    nb_tensor *y = nb__tmp(&tmp, nb_reshape(tags, 1, (int64_t[]){ls[0] * ls[1]}));
    nb_ce_opts ce = {.has_ignore_index = true, .ignore_index = NB_TAGGER_PAD_TAG};
    return nb__temps_end(&tmp, x && y ? nb__tmp(&tmp, nb_cross_entropy(x, y, &ce)) : NULL);
}

nb_status nb_tagger_predict(nb_tensor *logits, int32_t *out, int64_t n) {
    if (!nb_is_alive(logits) || !out) return nb__fail_status(NB_ERR_NULL, "tagger_predict: logits or out is NULL");
    if (nb_ndim(logits) != 3)
        return nb__fail_status(NB_ERR_SHAPE, "tagger_predict: logits [B, T, C] expected, got %s",
                               NB_SHP(logits));
    if (n != nb_shape(logits)[0] * nb_shape(logits)[1])
        return nb__fail_status(NB_ERR_ARG, "tagger_predict: n %lld is not B * T = %lld", (long long)n,
                               (long long)(nb_shape(logits)[0] * nb_shape(logits)[1]));
    nb_tensor *best = nb_argmax(logits, 2, false);
    nb_status st = best ? nb_copy_to_bytes(best, out, (size_t)n * sizeof *out) : nb_error_code();
    nb_tensor_free(best);
    return st;
}

/* ---- construction */

static nb_status check_opts(const nb_tagger_opts *o) {
    const char *bad = (unsigned)o->kind >= NB_TAGGER_KIND_COUNT ? "kind"
                      : o->n_features < 1 || o->n_features > NB_TAGGER_MAX_FEATURES ? "n_features (1 to 8)"
                      : o->tags < 1 ? "tags"
                      : o->hidden < 1 ? "hidden"
                      : o->layers < 1 || o->layers > MAX_LAYERS ? "layers (1 to 16)"
                      : o->heads < 1 || (o->kind == NB_TAGGER_TRANSFORMER && o->hidden % o->heads) ? "heads (a divisor of hidden)"
                      : o->max_len < 1 ? "max_len"
                      : !(o->dropout >= 0 && o->dropout < 1) ? "dropout (in [0, 1))" : NULL;
    for (int k = 0; !bad && k < o->n_features; k++)
        if (o->features[k].size < 1 || o->features[k].dim < 1) bad = "features (sizes and dims >= 1)";
    return bad ? nb__fail_status(NB_ERR_ARG, "Tagger: bad option %s", bad) : NB_OK;
}

static nb_status add(nb_module *m, const char *name, nb_module **slot, nb_module *child) {
    *slot = child;
    return nb_module_add_child(m, name, child);
}

static nb_status add_encoder(nb_module *m, tagger_state *s, int64_t in) {
    const nb_tagger_opts *o = &s->opts;
    if (o->kind == NB_TAGGER_BILSTM)
        return add(m, "lstm", &s->lstm, nb_rnn_new(NB_RNN_LSTM, in, o->hidden,
                                                   (nb_rnn_opts){.num_layers = o->layers, .batch_first = true,
                                                                 .bidirectional = true, .dropout = o->dropout}));
    nb_status st = add(m, "proj", &s->proj, nb_linear_new(in, o->hidden, true));
    if (st == NB_OK) st = add(m, "positions", &s->positions, nb_embedding_new(o->max_len, o->hidden, (nb_embedding_opts){0}));
    nb_transformer_opts to = {.dim_feedforward = 2 * o->hidden, .dropout = o->dropout, .batch_first = true};
    for (int i = 0; st == NB_OK && i < o->layers; i++) {
        char name[16];
        snprintf(name, sizeof name, "layer%d", i);
        st = add(m, name, &s->layer[i], nb_transformer_encoder_layer_new(o->hidden, o->heads, to));
    }
    return st;
}

nb_module *nb_tagger_new(nb_tagger_opts o) {
    bool lstm = o.kind == NB_TAGGER_BILSTM;
    if (o.hidden == 0) o.hidden = 128;
    if (o.layers == 0) o.layers = lstm ? 1 : 2;
    if (o.heads == 0) o.heads = 4;
    if (o.max_len == 0) o.max_len = 256;
    if (check_opts(&o) != NB_OK) return NULL;
    nb_module *m = nb_module_new(&tagger_class, sizeof(tagger_state));
    if (!m) return NULL;
    tagger_state *s = NB__STATE(tagger_state, m);
    s->opts = o;
    int64_t in = 0;
    nb_status st = NB_OK;
    for (int k = 0; st == NB_OK && k < o.n_features; k++) {
        char name[16];
        snprintf(name, sizeof name, "emb%d", k);
        st = add(m, name, &s->emb[k], nb_embedding_new(o.features[k].size, o.features[k].dim,
                                                       (nb_embedding_opts){.padding = true}));
        in += o.features[k].dim;
    }
    if (st == NB_OK) st = add(m, "drop", &s->drop, nb_dropout_new(o.dropout));
    if (st == NB_OK) st = add_encoder(m, s, in);
    if (st == NB_OK) st = add(m, "out", &s->out, nb_linear_new(lstm ? 2 * o.hidden : o.hidden, o.tags, true));
    if (st != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}
