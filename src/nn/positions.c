/*
 * positions.c — where a token sits: the sinusoidal table of "Attention is all you need"
 * (Vaswani et al. 2017, built as PyTorch's tutorial builds it, in float32), the ids of a
 * learned position Embedding, rotary embeddings (RoPE, Su et al. 2021, in GPT-NeoX's and
 * LLaMA's half-split form) and the key/value cache of incremental decoding.
 *
 * Every function that places a sequence at positions offset .. offset + len - 1 refuses one
 * that runs past the positions it has, naming both.
 */
#include "module.h"

#include <math.h>

/* NB_OK when positions [offset, offset + len) lie within [0, max_len), len >= 1. */
static nb_status check_span(const char *what, int64_t offset, int64_t len, int64_t max_len) {
    if (len < 1)
        return nb__fail_status(NB_ERR_ARG, "%s: an empty sequence (%lld tokens)", what, (long long)len);
    if (offset < 0)
        return nb__fail_status(NB_ERR_ARG, "%s: position %lld is negative", what, (long long)offset);
    if (offset + len > max_len)
        return nb__fail_status(NB_ERR_ARG, "%s: a sequence of %lld tokens from position %lld is "
                               "longer than the %lld positions", what, (long long)len,
                               (long long)offset, (long long)max_len);
    return NB_OK;
}

nb_tensor *nb_sinusoidal_positions(int64_t max_len, int64_t d_model) {
    if (max_len < 1 || d_model < 2 || d_model % 2)
        return nb__fail(NB_ERR_ARG, "sinusoidal_positions: max_len %lld must be positive and "
                        "d_model %lld even", (long long)max_len, (long long)d_model);
    float *pe = nb__alloc(sizeof(float) * (size_t)(max_len * d_model));
    if (!pe) return NULL;
    /* div_term = exp(arange(0, d, 2) * (-log(10000) / d)); pe[:, 0::2] = sin(p div_term),
     * pe[:, 1::2] = cos(p div_term), each step in float32 as torch's */
    float k = -logf(10000.0f) / (float)d_model;
    for (int64_t p = 0; p < max_len; p++)
        for (int64_t i = 0; i < d_model; i += 2) {
            float angle = (float)p * expf((float)i * k);
            pe[p * d_model + i] = sinf(angle);
            pe[p * d_model + i + 1] = cosf(angle);
        }
    nb_tensor *t = nb_from_data(pe, 2, (int64_t[]){max_len, d_model});
    nb__dealloc(pe, sizeof(float) * (size_t)(max_len * d_model));
    return t;
}

nb_tensor *nb_positions_slice(nb_tensor *table, int64_t offset, int64_t len) {
    if (!nb__alive(table)) return nb__fail_input("positions_slice", table);
    if (table->ndim != 2)
        return nb__fail(NB_ERR_SHAPE, "positions_slice: table %s must be [max_len, d_model]",
                        NB_SHP(table));
    if (check_span("positions_slice", offset, len, table->shape[0]) != NB_OK) return NULL;
    return nb_slice(table, 0, offset, offset + len, 1);
}

nb_tensor *nb_position_ids(int64_t offset, int64_t len, int64_t max_len) {
    if (check_span("position_ids", offset, len, max_len) != NB_OK) return NULL;
    int32_t *ids = nb__alloc(sizeof(int32_t) * (size_t)len);
    if (!ids) return NULL;
    for (int64_t i = 0; i < len; i++) ids[i] = (int32_t)(offset + i);
    nb_tensor *t = nb_from_int32(ids, 1, &len);
    nb__dealloc(ids, sizeof(int32_t) * (size_t)len);
    return t;
}

/* cos and sin [T, D] of RoPE's angles: position (offset + t) times inv_freq_i =
 * base^(-2i / D), the D/2 frequencies repeated for both halves (GPT-NeoX's emb =
 * cat(freqs, freqs)), in float32 as its code computes them. */
static nb_status rotary_tables(int64_t offset, int64_t t, int64_t d, float base,
                               nb_tensor **cos_t, nb_tensor **sin_t) {
    size_t bytes = sizeof(float) * (size_t)(2 * t * d);
    float *c = nb__alloc(bytes);
    if (!c) return nb_error_code();
    float *s = c + t * d;
    for (int64_t p = 0; p < t; p++)
        for (int64_t i = 0; i < d / 2; i++) {
            float inv_freq = 1.0f / powf(base, (float)(2 * i) / (float)d);
            float angle = (float)(offset + p) * inv_freq;
            c[p * d + i] = c[p * d + i + d / 2] = cosf(angle);
            s[p * d + i] = s[p * d + i + d / 2] = sinf(angle);
        }
    *cos_t = nb_from_data(c, 2, (int64_t[]){t, d});
    *sin_t = nb_from_data(s, 2, (int64_t[]){t, d});
    nb__dealloc(c, bytes);
    return *cos_t && *sin_t ? NB_OK : nb_error_code();
}

nb_tensor *nb_rotary(nb_tensor *x, int64_t offset, float base) {
    if (!nb__alive(x)) return nb__fail_input("rotary", x);
    if (x->ndim < 2 || x->shape[x->ndim - 1] % 2)
        return nb__fail(NB_ERR_SHAPE, "rotary: x %s must be [..., T, D] with D even", NB_SHP(x));
    if (offset < 0) return nb__fail(NB_ERR_ARG, "rotary: offset %lld is negative", (long long)offset);
    if (!(base > 0.0f) && base != 0.0f)
        return nb__fail(NB_ERR_ARG, "rotary: base %g must be positive (0: 10000)", (double)base);
    int64_t t = x->shape[x->ndim - 2], d = x->shape[x->ndim - 1];
    nb__temps tmp = {0};
    nb_tensor *c = NULL, *s = NULL;
    nb_status st = rotary_tables(offset, t, d, base > 0.0f ? base : 10000.0f, &c, &s);
    nb__tmp(&tmp, c), nb__tmp(&tmp, s);
    if (st != NB_OK) return nb__temps_end(&tmp, NULL);
    /* x cos + rotate_half(x) sin, rotate_half(x) = cat(-x2, x1) of x's halves x1, x2 */
    nb_tensor *x1 = nb__tmp(&tmp, nb_slice(x, -1, 0, d / 2, 1));
    nb_tensor *x2 = nb__tmp(&tmp, nb_slice(x, -1, d / 2, d, 1));
    nb_tensor *half = nb__tmp(&tmp, nb_concat(2, (nb_tensor *[]){nb__tmp(&tmp, nb_neg(x2)), x1}, -1));
    nb_tensor *r = nb__tmp(&tmp, nb_add(nb__tmp(&tmp, nb_mul(x, c)), nb__tmp(&tmp, nb_mul(half, s))));
    return nb__temps_end(&tmp, r);
}

/* ---- the key/value cache */

struct nb_kv_cache {
    int64_t max_len;
    nb_tensor *k, *v; /* persistent [B, H, len, D], NULL when empty */
};

nb_kv_cache *nb_kv_cache_new(int64_t max_len) {
    if (max_len < 1)
        return nb__fail(NB_ERR_ARG, "kv_cache: max_len %lld must be positive", (long long)max_len);
    nb_kv_cache *c = nb__alloc(sizeof *c);
    if (c) *c = (nb_kv_cache){.max_len = max_len};
    return c;
}

void nb_kv_cache_reset(nb_kv_cache *c) {
    if (!c) return;
    nb_tensor_free(c->k), nb_tensor_free(c->v);
    c->k = c->v = NULL;
}

void nb_kv_cache_free(nb_kv_cache *c) {
    nb_kv_cache_reset(c);
    if (c) nb__dealloc(c, sizeof *c);
}

int64_t nb_kv_cache_len(const nb_kv_cache *c) { return c && c->k ? c->k->shape[2] : 0; }

/* The cache's tensor with x appended along dim 2, a persistent detached copy. */
static nb_tensor *appended(nb_tensor *old, nb_tensor *x) {
    if (!old) return nb_persist(x);
    nb_scope_begin();
    nb_tensor *both = nb_concat(2, (nb_tensor *[]){old, x}, 2);
    nb_tensor *r = both ? nb_persist(both) : NULL;
    nb_scope_end();
    return r;
}

nb_status nb_kv_cache_append(nb_kv_cache *c, nb_tensor *k, nb_tensor *v, nb_tensor **k_all,
                             nb_tensor **v_all) {
    if (k_all) *k_all = NULL;
    if (v_all) *v_all = NULL;
    if (!c || !k_all || !v_all) return nb__fail_status(NB_ERR_NULL, "kv_cache_append: NULL argument");
    if (!nb__alive(k) || !nb__alive(v)) {
        nb__fail_input("kv_cache_append", nb__alive(k) ? v : k);
        return nb_error_code();
    }
    bool ok = k->ndim == 4 && v->ndim == 4 && k->shape[2] == v->shape[2];
    for (int d = 0; ok && d < 4; d++) /* B, H and D as the cache's; B and H as each other */
        if (d != 2)
            ok = (!c->k || k->shape[d] == c->k->shape[d]) &&
                 (!c->v || v->shape[d] == c->v->shape[d]) && (d == 3 || k->shape[d] == v->shape[d]);
    if (!ok)
        return nb__fail_status(NB_ERR_SHAPE, "kv_cache_append: k %s and v %s must be [B, H, t, D] "
                               "and match the cache's %s", NB_SHP(k), NB_SHP(v),
                               c->k ? NB_SHP(c->k) : "(empty)");
    int64_t len = nb_kv_cache_len(c);
    if (check_span("kv_cache_append", len, k->shape[2], c->max_len) != NB_OK) return nb_error_code();
    bool was = nb_set_grad_enabled(false);
    nb_tensor *nk = appended(c->k, k), *nv = nk ? appended(c->v, v) : NULL;
    nb_set_grad_enabled(was);
    if (!nv) {
        nb_tensor_free(nk);
        return nb_error_code();
    }
    nb_kv_cache_reset(c);
    c->k = nk, c->v = nv;
    *k_all = nb_detach(nk), *v_all = nb_detach(nv);
    if (*k_all && *v_all) return NB_OK;
    nb_tensor_free(*k_all), nb_tensor_free(*v_all);
    *k_all = *v_all = NULL;
    return nb_error_code();
}
