/*
 * seq2seq.c — the encoder-decoder transformer of PyTorch's translation tutorial
 * (Seq2SeqTransformer), made of the library's layers: Embeddings scaled by sqrt(E) plus the
 * sinusoidal positions, encoder and decoder layers (transformer.c, batch_first), a LayerNorm
 * after each stack (as nn.Transformer), and a Linear generator.  As in the tutorial every
 * weight matrix starts xavier-uniform.
 *
 * Shape letters: B batch, S source length, T target length, E d_model, V vocabulary, H heads,
 * L decoder layers.  Id 0 is the padding of both sides.  Greedy decoding runs either one token
 * a step against a KV cache per decoder layer (the self-attention's past keys and values,
 * nb_mha_inputs.cache) or the whole prefix again each step; both feed the decoder the same
 * tokens, so they choose the same ones.
 */
#include "module.h"
#include "nabla/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 16

typedef struct {
    nb_seq2seq_opts opts;  /* defaults filled in */
    nb_tensor *positions;  /* [max_len, E], persistent: a constant, not in the state_dict */
    nb_module *src_embed, *tgt_embed, *enc[MAX_LAYERS], *dec[MAX_LAYERS];
    nb_module *enc_norm, *dec_norm, *generator;
} s2s_state;

static const nb_module_class s2s_class;

/* ---- the pieces of a forward */

/* ids (int32 [B, L], L >= 1, B as b's unless b < 0) or NULL with the error naming `what`. */
static nb_status check_ids(const char *what, const nb_tensor *ids, int64_t b) {
    if (!nb__alive(ids)) return nb__fail_input("Seq2SeqTransformer", ids), nb_error_code();
    if (ids->dtype != NB_I32 || ids->ndim != 2 || (b >= 0 && ids->shape[0] != b))
        return nb__fail_status(NB_ERR_SHAPE, "Seq2SeqTransformer: %s %s %s must be int32 [B, L]%s",
                               what, nb_dtype_name(ids->dtype), NB_SHP(ids),
                               b >= 0 ? " with the source's B" : "");
    if (ids->shape[1] < 1)
        return nb__fail_status(NB_ERR_ARG, "Seq2SeqTransformer: %s %s is an empty sequence", what,
                               NB_SHP(ids));
    return NB_OK;
}

/* The source's key padding mask [B, S], int32 and so boolean (1: padding), read on the host;
 * NULL with NB_ERR_ARG for a row that is all padding (its attention would have no key). */
static nb_tensor *padding_of(nb__temps *tmp, nb_tensor *src) {
    int64_t b = src->shape[0], s = src->shape[1], n = b * s;
    int32_t *pad = nb__alloc(sizeof(int32_t) * (size_t)n);
    float *ids = nb__alloc(sizeof(float) * (size_t)n);
    nb_tensor *r = NULL;
    if (pad && ids && nb_copy_to(src, ids, n) == NB_OK) {
        int64_t bad = -1;
        for (int64_t i = 0; i < b; i++) {
            int64_t real = 0;
            for (int64_t j = 0; j < s; j++) real += !(pad[i * s + j] = ids[i * s + j] == 0.0f);
            if (!real && bad < 0) bad = i;
        }
        if (bad >= 0)
            nb__fail(NB_ERR_ARG, "Seq2SeqTransformer: source row %lld of %s is all padding (id 0)",
                     (long long)bad, NB_SHP(src));
        else r = nb__tmp(tmp, nb_from_int32(pad, 2, (int64_t[]){b, s}));
    }
    nb__dealloc(ids, sizeof(float) * (size_t)n);
    nb__dealloc(pad, sizeof(int32_t) * (size_t)n);
    return r;
}

/* table(ids) sqrt(E) + positions offset .., [B, L, E]. */
static nb_tensor *embed(nb__temps *tmp, const s2s_state *s, nb_module *table, nb_tensor *ids,
                        int64_t offset) {
    nb_tensor *e = nb__tmp(tmp, nb_module_forward(table, ids));
    e = nb__tmp(tmp, nb_mul_scalar(e, sqrtf((float)s->opts.d_model)));
    nb_tensor *p = e ? nb__tmp(tmp, nb_positions_slice(s->positions, offset, ids->shape[1])) : NULL;
    return nb__tmp(tmp, nb_add(e, p));
}

/* The memory [B, S, E]: the encoder stack over the source, its padding masked. */
static nb_tensor *encode(nb__temps *tmp, const s2s_state *s, nb_tensor *src, nb_tensor *pad) {
    nb_tensor *x = embed(tmp, s, s->src_embed, src, 0);
    nb_mha_inputs masks = {.key_padding_mask = pad};
    for (int l = 0; x && l < s->opts.num_encoder_layers; l++)
        x = nb__tmp(tmp, nb_transformer_encoder_layer_forward(s->enc[l], x, &masks));
    return x ? nb__tmp(tmp, nb_module_forward(s->enc_norm, x)) : NULL;
}

/* Logits [B, T, V] of target inputs tgt at positions offset .. (causal), against the memory.
 * caches (or NULL): one per decoder layer; weights (or NULL): each layer's cross-attention
 * [B, H, T, S], owned by the open scope. */
static nb_tensor *decode(nb__temps *tmp, const s2s_state *s, nb_tensor *tgt, int64_t offset,
                         nb_tensor *memory, nb_tensor *pad, nb_kv_cache *const *caches,
                         nb_tensor **weights) {
    nb_tensor *x = embed(tmp, s, s->tgt_embed, tgt, offset);
    for (int l = 0; x && l < s->opts.num_decoder_layers; l++) {
        nb_mha_inputs self = {.is_causal = true, .cache = caches ? caches[l] : NULL};
        nb_mha_inputs cross = {.key_padding_mask = pad, .per_head_weights = true,
                               .weights = weights ? &weights[l] : NULL};
        x = nb__tmp(tmp, nb_transformer_decoder_layer_forward(s->dec[l], x, memory, &self, &cross));
    }
    x = x ? nb__tmp(tmp, nb_module_forward(s->dec_norm, x)) : NULL;
    return x ? nb__tmp(tmp, nb_module_forward(s->generator, x)) : NULL;
}

nb_tensor *nb_seq2seq_forward(nb_module *m, nb_tensor *src, nb_tensor *tgt) {
    const s2s_state *s = nb_module_state(m, &s2s_class);
    if (!s || check_ids("src", src, -1) != NB_OK || check_ids("tgt", tgt, src->shape[0]) != NB_OK)
        return NULL;
    nb__temps tmp = {0};
    nb_tensor *pad = padding_of(&tmp, src);
    nb_tensor *memory = pad ? encode(&tmp, s, src, pad) : NULL;
    nb_tensor *y = memory ? decode(&tmp, s, tgt, 0, memory, pad, NULL, NULL) : NULL;
    return nb__temps_end(&tmp, y);
}

nb_tensor *nb_seq2seq_loss(nb_module *m, nb_tensor *src, nb_tensor *tgt_in, nb_tensor *tgt_out) {
    if (!nb__alive(tgt_out)) return nb__fail_input("Seq2SeqTransformer", tgt_out);
    nb__temps tmp = {0};
    nb_tensor *logits = nb__tmp(&tmp, nb_seq2seq_forward(m, src, tgt_in));
    if (!logits) return nb__temps_end(&tmp, NULL);
    int64_t v = logits->shape[2];
    nb_tensor *flat = nb__tmp(&tmp, nb_reshape(logits, 2, (int64_t[]){-1, v}));
    nb_tensor *y = nb__tmp(&tmp, nb_reshape(tgt_out, 1, (int64_t[]){-1}));
    nb_ce_opts ce = {.has_ignore_index = true, .ignore_index = 0};
    return nb__temps_end(&tmp, nb__tmp(&tmp, nb_cross_entropy(flat, y, &ce)));
}

/* ---- greedy decoding */

/* What a decoding keeps on the host: the tokens fed and chosen, and the attention rows. */
typedef struct {
    int64_t b, t_max, s, h, l;
    int32_t *fed;   /* [B, t_max]: BOS, then each row's choices (0 once it is done) */
    int32_t *out;   /* [B, t_max]: the choices, 0 after a row's EOS */
    bool *done;     /* [B] */
    float *weights; /* [L, B, H, t_max, S], or NULL */
} decoding;

static void decoding_free(decoding *d) {
    nb__dealloc(d->fed, sizeof(int32_t) * (size_t)(2 * d->b * d->t_max));
    nb__dealloc(d->done, sizeof(bool) * (size_t)d->b);
    nb__dealloc(d->weights, sizeof(float) * (size_t)(d->l * d->b * d->h * d->t_max * d->s));
}

static bool decoding_init(decoding *d, const s2s_state *s, const nb_tensor *src, int64_t t_max,
                          bool want_weights) {
    *d = (decoding){.b = src->shape[0], .t_max = t_max, .s = src->shape[1], .h = s->opts.nhead,
                    .l = s->opts.num_decoder_layers};
    d->fed = nb__alloc(sizeof(int32_t) * (size_t)(2 * d->b * t_max));
    d->done = nb__alloc(sizeof(bool) * (size_t)d->b);
    if (want_weights) d->weights = nb__alloc(sizeof(float) * (size_t)(d->l * d->b * d->h * t_max * d->s));
    if (!d->fed || !d->done || (want_weights && !d->weights)) return false;
    d->out = d->fed + d->b * t_max;
    for (int64_t i = 0; i < d->b; i++) d->fed[i * t_max] = s->opts.bos, d->done[i] = false;
    return true;
}

/* The tokens fed at step t: column t alone (with the cache) or columns 0 .. t, [B, n]. */
static nb_tensor *fed_ids(const decoding *d, int64_t t, bool cached) {
    int64_t first = cached ? t : 0, n = t + 1 - first;
    int32_t *ids = nb__alloc(sizeof(int32_t) * (size_t)(d->b * n));
    if (!ids) return NULL;
    for (int64_t i = 0; i < d->b; i++)
        for (int64_t j = 0; j < n; j++) ids[i * n + j] = d->fed[i * d->t_max + first + j];
    nb_tensor *r = nb_from_int32(ids, 2, (int64_t[]){d->b, n});
    nb__dealloc(ids, sizeof(int32_t) * (size_t)(d->b * n));
    return r;
}

/* Keeps step t's choices (the last row of logits [B, n, V]) and attention rows; false on error. */
static bool keep_step(decoding *d, const s2s_state *s, int64_t t, nb_tensor *logits, nb_tensor *const *w) {
    int64_t n = logits->shape[1];
    nb_tensor *best = nb_argmax(nb_slice(logits, 1, n - 1, n, 1), 2, false);
    float *row = nb__alloc(sizeof(float) * (size_t)(d->b > d->h * d->s ? d->b : d->h * d->s));
    bool ok = best && row && nb_copy_to(best, row, d->b) == NB_OK;
    for (int64_t i = 0; ok && i < d->b; i++) {
        int32_t tok = d->done[i] ? 0 : (int32_t)row[i];
        d->out[i * d->t_max + t] = tok;
        if (t + 1 < d->t_max) d->fed[i * d->t_max + t + 1] = tok;
        d->done[i] = d->done[i] || tok == s->opts.eos;
    }
    for (int64_t l = 0; ok && d->weights && l < d->l; l++)
        for (int64_t i = 0; ok && i < d->b; i++) { /* w[l] [B, H, n, S]: row n - 1 of each head */
            nb_tensor *last = nb_slice(nb_slice(w[l], 0, i, i + 1, 1), 2, n - 1, n, 1);
            ok = nb_copy_to(last, row, d->h * d->s) == NB_OK;
            for (int64_t h = 0; ok && h < d->h; h++)
                memcpy(d->weights + (((l * d->b + i) * d->h + h) * d->t_max + t) * d->s,
                       row + h * d->s, sizeof(float) * (size_t)d->s);
        }
    nb__dealloc(row, sizeof(float) * (size_t)(d->b > d->h * d->s ? d->b : d->h * d->s));
    return ok;
}

/* The first `steps` columns of x [rows, t_max, inner] as a new [rows, steps, inner] array in
 * place (the rows move down). */
static void compact(void *x, size_t elem, int64_t rows, int64_t t_max, int64_t inner, int64_t steps) {
    for (int64_t r = 0; r < rows; r++)
        memmove((char *)x + elem * (size_t)(r * steps * inner), (char *)x + elem * (size_t)(r * t_max * inner),
                elem * (size_t)(steps * inner));
}

/* Runs the steps; the number run, or -1 on error. */
static int64_t run_steps(decoding *d, const s2s_state *s, nb_tensor *memory, nb_tensor *pad,
                         nb_kv_cache *const *caches) {
    int64_t t = 0;
    bool all_done = false;
    for (; t < d->t_max && !all_done; t++) {
        nb_scope_begin(); /* a step's tensors go at its end */
        nb__temps tmp = {0};
        nb_tensor *w[MAX_LAYERS] = {NULL};
        nb_tensor *ids = nb__tmp(&tmp, fed_ids(d, t, caches != NULL));
        nb_tensor *logits = ids ? decode(&tmp, s, ids, caches ? t : 0, memory, pad, caches,
                                         d->weights ? w : NULL) : NULL;
        bool ok = logits && keep_step(d, s, t, logits, w);
        nb__temps_end(&tmp, NULL);
        nb_scope_end();
        if (!ok) return -1;
        all_done = true;
        for (int64_t i = 0; i < d->b; i++) all_done = all_done && d->done[i];
    }
    return t;
}

nb_tensor *nb_seq2seq_greedy(nb_module *m, nb_tensor *src, const nb_seq2seq_decode_opts *o) {
    nb_seq2seq_decode_opts none = {0};
    if (!o) o = &none;
    if (o->cross_attention) *o->cross_attention = NULL;
    const s2s_state *s = nb_module_state(m, &s2s_class);
    if (!s || check_ids("src", src, -1) != NB_OK) return NULL;
    int64_t t_max = o->max_tokens ? o->max_tokens : s->opts.max_len;
    if (t_max < 1 || t_max > s->opts.max_len)
        return nb__fail(NB_ERR_ARG, "Seq2SeqTransformer: max_tokens %lld is outside [1, max_len = %lld]",
                        (long long)o->max_tokens, (long long)s->opts.max_len);
    bool was = nb_set_grad_enabled(false);
    nb__temps tmp = {0};
    decoding d;
    nb_kv_cache *caches[MAX_LAYERS] = {NULL};
    bool ok = decoding_init(&d, s, src, t_max, o->cross_attention != NULL);
    for (int l = 0; ok && !o->no_cache && l < s->opts.num_decoder_layers; l++)
        ok = (caches[l] = nb_kv_cache_new(t_max)) != NULL;
    nb_tensor *pad = ok ? padding_of(&tmp, src) : NULL;
    nb_tensor *memory = pad ? encode(&tmp, s, src, pad) : NULL;
    int64_t steps = memory ? run_steps(&d, s, memory, pad, o->no_cache ? NULL : caches) : -1;
    nb_tensor *out = NULL;
    if (steps > 0) {
        compact(d.out, sizeof(int32_t), d.b, t_max, 1, steps);
        out = nb_from_int32(d.out, 2, (int64_t[]){d.b, steps});
    }
    if (out && d.weights) {
        compact(d.weights, sizeof(float), d.l * d.b * d.h, t_max, d.s, steps);
        *o->cross_attention = nb_from_data(d.weights, 5, (int64_t[]){d.l, d.b, d.h, steps, d.s});
        if (!*o->cross_attention) nb_tensor_free(out), out = NULL;
    }
    for (int l = 0; l < MAX_LAYERS; l++) nb_kv_cache_free(caches[l]);
    decoding_free(&d);
    nb_set_grad_enabled(was);
    return nb__temps_end(&tmp, nb__tmp(&tmp, out));
}

/* ---- the synthetic tasks */

/* splitmix64 (Steele, Lea and Flood 2014): the tasks' draws, on the host and seeded by the
 * caller, so a batch does not depend on the library's generator or on anything drawn before. */
static uint64_t next_u64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int64_t draw(uint64_t *x, int64_t n) { return (int64_t)(next_u64(x) % (uint64_t)n); }

static int by_id(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* One example of length len: the sequence in src, its answer in in (after BOS) and in out
 * (before EOS). */
static void make_example(nb_seq2seq_task task, const nb_seq2seq_opts *o, const int32_t *symbols,
                         int64_t n_sym, int64_t len, uint64_t *rng, int32_t *src,
                         int32_t *in, int32_t *out) {
    for (int64_t j = 0; j < len; j++) src[j] = symbols[draw(rng, n_sym)];
    for (int64_t j = 0; j < len; j++) out[j] = task == NB_SEQ2SEQ_REVERSE ? src[len - 1 - j] : src[j];
    if (task == NB_SEQ2SEQ_SORT) qsort(out, (size_t)len, sizeof *out, by_id);
    in[0] = o->bos;
    memcpy(in + 1, out, sizeof(int32_t) * (size_t)len);
    out[len] = o->eos;
}

nb_status nb_seq2seq_task_batch(nb_seq2seq_task task, const nb_seq2seq_opts *o, int64_t b,
                                int64_t min_len, int64_t max_len, uint64_t seed, nb_tensor **src,
                                nb_tensor **tgt_in, nb_tensor **tgt_out) {
    if (!o || !src || !tgt_in || !tgt_out)
        return nb__fail_status(NB_ERR_NULL, "seq2seq_task_batch: NULL argument");
    *src = *tgt_in = *tgt_out = NULL;
    if ((unsigned)task >= NB_SEQ2SEQ_TASK_COUNT || b < 1 || min_len < 1 || min_len > max_len ||
        max_len >= o->max_len || o->vocab < 4)
        return nb__fail_status(NB_ERR_ARG, "seq2seq_task_batch: task %d, batch %lld, lengths %lld .. "
                               "%lld: needs a known task, b >= 1, 1 <= min_len <= max_len < max_len "
                               "of the model (%lld) and a symbol besides padding, bos and eos",
                               (int)task, (long long)b, (long long)min_len, (long long)max_len,
                               (long long)o->max_len);
    int64_t w = max_len + 1, n_sym = 0;
    size_t bytes = sizeof(int32_t) * (size_t)(b * max_len + 2 * b * w + o->vocab);
    int32_t *buf = nb__alloc(bytes);
    if (!buf) return nb_error_code();
    memset(buf, 0, bytes);
    int32_t *s = buf, *in = s + b * max_len, *out = in + b * w, *symbols = out + b * w;
    for (int32_t id = 1; id < o->vocab; id++)
        if (id != o->bos && id != o->eos) symbols[n_sym++] = id;
    uint64_t rng = seed;
    for (int64_t i = 0; i < b; i++)
        make_example(task, o, symbols, n_sym, min_len + draw(&rng, max_len - min_len + 1), &rng,
                     s + i * max_len, in + i * w, out + i * w);
    *src = nb_from_int32(s, 2, (int64_t[]){b, max_len});
    *tgt_in = nb_from_int32(in, 2, (int64_t[]){b, w});
    *tgt_out = nb_from_int32(out, 2, (int64_t[]){b, w});
    nb__dealloc(buf, bytes);
    if (*src && *tgt_in && *tgt_out) return NB_OK;
    nb_tensor_free(*src), nb_tensor_free(*tgt_in), nb_tensor_free(*tgt_out);
    *src = *tgt_in = *tgt_out = NULL;
    return nb_error_code();
}

nb_status nb_seq2seq_accuracy(nb_tensor *pred, nb_tensor *tgt_out, double *exact, double *token) {
    if (!exact || !token) return nb__fail_status(NB_ERR_NULL, "seq2seq_accuracy: NULL argument");
    if (check_ids("pred", pred, -1) != NB_OK || check_ids("tgt_out", tgt_out, pred->shape[0]) != NB_OK)
        return nb_error_code();
    int64_t b = pred->shape[0], t = pred->shape[1], l = tgt_out->shape[1];
    size_t bytes = sizeof(float) * (size_t)(b * (t + l));
    float *p = nb__alloc(bytes);
    if (!p) return nb_error_code();
    float *y = p + b * t;
    nb_status st = nb_copy_to(pred, p, b * t);
    if (st == NB_OK) st = nb_copy_to(tgt_out, y, b * l);
    int64_t rows_right = 0, right = 0, total = 0;
    for (int64_t i = 0; st == NB_OK && i < b; i++) {
        bool all = true;
        for (int64_t j = 0; j < l && y[i * l + j] != 0.0f; j++) {
            bool ok = j < t && p[i * t + j] == y[i * l + j];
            total++, right += ok, all = all && ok;
        }
        rows_right += all;
    }
    nb__dealloc(p, bytes);
    *exact = (double)rows_right / (double)b;
    *token = total ? (double)right / (double)total : 1.0;
    return st;
}

/* ---- the module */

const nb_seq2seq_opts *nb_seq2seq_opts_of(const nb_module *m) {
    const s2s_state *s = nb_module_state(m, &s2s_class);
    return s ? &s->opts : NULL;
}

static void s2s_describe(const nb_module *m, nb_attrs *d) {
    const nb_seq2seq_opts *o = &NB__STATE(s2s_state, m)->opts;
    nb_attrs_int(d, "vocab", o->vocab);
    nb_attrs_int(d, "d_model", o->d_model);
    nb_attrs_int(d, "nhead", o->nhead);
    nb_attrs_int(d, "num_encoder_layers", o->num_encoder_layers);
    nb_attrs_int(d, "num_decoder_layers", o->num_decoder_layers);
    nb_attrs_int(d, "max_len", o->max_len);
}

static void s2s_free_state(nb_module *m) { nb_tensor_free(NB__STATE(s2s_state, m)->positions); }

/* A container: nb_seq2seq_forward and nb_seq2seq_greedy run it (it takes two inputs of ids). */
static const nb_module_class s2s_class = {.name = "Seq2SeqTransformer", .describe = s2s_describe,
                                          .free_state = s2s_free_state};

/* o with its defaults, or NB_ERR_ARG naming what is wrong. */
static nb_status normalise(nb_seq2seq_opts *o) {
    o->d_model = o->d_model ? o->d_model : 64;
    o->nhead = o->nhead ? o->nhead : 4;
    o->num_encoder_layers = o->num_encoder_layers ? o->num_encoder_layers : 2;
    o->num_decoder_layers = o->num_decoder_layers ? o->num_decoder_layers : 2;
    o->dim_feedforward = o->dim_feedforward ? o->dim_feedforward : 4 * o->d_model;
    o->max_len = o->max_len ? o->max_len : 64;
    if (o->vocab < 3)
        return nb__fail_status(NB_ERR_ARG, "Seq2SeqTransformer: vocab %lld must be at least 3 (padding, "
                               "bos, eos)", (long long)o->vocab);
    if (o->bos < 1 || o->bos >= o->vocab || o->eos < 1 || o->eos >= o->vocab || o->bos == o->eos)
        return nb__fail_status(NB_ERR_ARG, "Seq2SeqTransformer: bos %d and eos %d must differ and lie in "
                               "[1, vocab = %lld)", o->bos, o->eos, (long long)o->vocab);
    if (o->num_encoder_layers < 1 || o->num_encoder_layers > MAX_LAYERS || o->num_decoder_layers < 1 ||
        o->num_decoder_layers > MAX_LAYERS)
        return nb__fail_status(NB_ERR_ARG, "Seq2SeqTransformer: %lld encoder and %lld decoder layers "
                               "(each 1 .. %d)", (long long)o->num_encoder_layers,
                               (long long)o->num_decoder_layers, MAX_LAYERS);
    if (o->max_len < 2)
        return nb__fail_status(NB_ERR_ARG, "Seq2SeqTransformer: max_len %lld must be at least 2",
                               (long long)o->max_len);
    return NB_OK;
}

/* Adds child `name` (taken over), keeping it in *slot; false on failure. */
static bool add(nb_module *m, const char *name, nb_module **slot, nb_module *child) {
    *slot = child;
    return nb_module_add_child(m, name, child) == NB_OK;
}

/* The tutorial's initialisation: xavier_uniform_ on every parameter of more than one dim. */
static bool xavier_all(nb_module *m) {
    for (int i = 0; i < nb_module_num_params(m); i++) {
        nb_tensor *p = nb_module_param(m, i, NULL);
        if (nb_ndim(p) > 1 && nb_init_xavier_uniform(p, 1.0f) != NB_OK) return false;
    }
    return true;
}

static bool build(nb_module *m, s2s_state *s) {
    const nb_seq2seq_opts *o = &s->opts;
    nb_embedding_opts eo = {.padding = true, .padding_idx = 0};
    nb_transformer_opts to = {.dim_feedforward = o->dim_feedforward, .dropout = o->dropout,
                              .batch_first = true, .norm_first = o->norm_first};
    char name[32];
    bool ok = add(m, "src_embed", &s->src_embed, nb_embedding_new(o->vocab, o->d_model, eo)) &&
              add(m, "tgt_embed", &s->tgt_embed, nb_embedding_new(o->vocab, o->d_model, eo));
    for (int l = 0; ok && l < o->num_encoder_layers; l++)
        snprintf(name, sizeof name, "encoder%d", l),
            ok = add(m, name, &s->enc[l], nb_transformer_encoder_layer_new(o->d_model, o->nhead, to));
    for (int l = 0; ok && l < o->num_decoder_layers; l++)
        snprintf(name, sizeof name, "decoder%d", l),
            ok = add(m, name, &s->dec[l], nb_transformer_decoder_layer_new(o->d_model, o->nhead, to));
    ok = ok && add(m, "encoder_norm", &s->enc_norm, nb_layernorm_new(1, &s->opts.d_model, 1e-5f, true)) &&
         add(m, "decoder_norm", &s->dec_norm, nb_layernorm_new(1, &s->opts.d_model, 1e-5f, true)) &&
         add(m, "generator", &s->generator, nb_linear_new(o->d_model, o->vocab, true));
    if (!ok || !xavier_all(m)) return false;
    nb_scope_begin(); /* the table, made in a scope of its own and kept as the module's */
    nb_tensor *table = nb_sinusoidal_positions(o->max_len, o->d_model);
    s->positions = table ? nb_persist(table) : NULL;
    nb_scope_end();
    return s->positions != NULL;
}

nb_module *nb_seq2seq_new(nb_seq2seq_opts opts) {
    if (normalise(&opts) != NB_OK) return NULL;
    nb_module *m = nb_module_new(&s2s_class, sizeof(s2s_state));
    if (!m) return NULL;
    s2s_state *s = NB__STATE(s2s_state, m);
    s->opts = opts;
    if (!build(m, s)) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}
