/*
 * attention.c — torch.nn.MultiheadAttention: the three projections packed in one weight
 * (in_proj_weight [3E, E] and in_proj_bias [3E], rows q, k, v in that order), the heads'
 * scaled dot-product attention (src/ops/attention.c) and the output projection, a Linear child
 * "out_proj", so that a torch state_dict loads by name.  torch's _reset_parameters:
 * xavier_uniform_(in_proj_weight), in_proj_bias and out_proj.bias zero, out_proj.weight as a
 * Linear's.
 *
 * Shape letters: B batch, T queries, S keys, E embed_dim, H heads, Dh = E / H.  Inputs are
 * [T, B, E] ([B, T, E] with batch_first); masks are torch's (nabla/attention.h).
 *
 * Beyond torch, the inputs may carry a KV cache (nb_mha_inputs.cache): the projected keys and
 * values of the call are appended to it and the queries attend to all of them, which is
 * incremental decoding; and a place for the weights (nb_mha_inputs.weights), so that a caller
 * of a transformer layer, which passes its masks' struct down to here, can read its attention.
 */
#include "module.h"

#include <math.h>

typedef struct {
    int64_t embed_dim, num_heads;
    nb_mha_opts opts;
    nb_tensor *in_proj_weight, *in_proj_bias; /* bias NULL with no_bias */
    nb_module *out_proj;
} mha_state;

static const nb_module_class mha_class;

/* q, k or v (part 0, 1, 2): x W_part^T + b_part, [B, L, E] -> [B, H, L, Dh]. */
static nb_tensor *project(nb__temps *tmp, const mha_state *s, nb_tensor *x, int part) {
    int64_t e = s->embed_dim, h = s->num_heads;
    nb_tensor *w = nb__tmp(tmp, nb_slice(s->in_proj_weight, 0, part * e, (part + 1) * e, 1));
    nb_tensor *b = s->in_proj_bias
                       ? nb__tmp(tmp, nb_slice(s->in_proj_bias, 0, part * e, (part + 1) * e, 1))
                       : NULL;
    nb_tensor *y = nb__tmp(tmp, nb_linear(x, w, b));
    if (!y) return NULL;
    int64_t shape[4] = {nb_shape(x)[0], nb_shape(x)[1], h, e / h};
    return nb__tmp(tmp, nb_permute(nb__tmp(tmp, nb_reshape(y, 4, shape)), 4, (int[]){0, 2, 1, 3}));
}

/* t with one more slot of zeros at the end of dim (add_zero_attn's extra key). */
static nb_tensor *pad_zero(nb__temps *tmp, nb_tensor *t, int dim) {
    int64_t shape[NB_MAX_DIMS];
    for (int d = 0; d < nb_ndim(t); d++) shape[d] = nb_shape(t)[d];
    shape[dim] = 1;
    nb_tensor *z = nb__tmp(tmp, nb_zeros_dtype(nb_dtype_of(t), nb_ndim(t), shape));
    return nb__tmp(tmp, nb_concat(2, (nb_tensor *[]){t, z}, dim));
}

/* torch's attn_mask, [T, S] or [B H, T, S], as an additive float mask broadcasting to
 * [B, H, T, S]: boolean true (nonzero) hides a key, a float mask is added. */
static nb_tensor *attn_mask_of(nb__temps *tmp, const mha_state *s, nb_tensor *m, int64_t b,
                               int64_t t, int64_t src) {
    int nd = nb_ndim(m);
    const int64_t *ms = nb_shape(m);
    bool ok2 = nd == 2 && ms[0] == t && ms[1] == src;
    bool ok3 = nd == 3 && ms[0] == b * s->num_heads && ms[1] == t && ms[2] == src;
    if (!ok2 && !ok3)
        return nb__fail(NB_ERR_SHAPE, "MultiheadAttention: attn_mask %s must be [T, S] = "
                        "[%lld,%lld] or [B*num_heads, T, S] = [%lld,%lld,%lld]",
                        nb__shape_str(nd, ms), (long long)t, (long long)src,
                        (long long)(b * s->num_heads), (long long)t, (long long)src);
    if (ok3)
        m = nb__tmp(tmp, nb_reshape(m, 4, (int64_t[]){b, s->num_heads, t, src}));
    if (!m || nb_dtype_of(m) == NB_F32) return m;
    nb_tensor *hidden = nb__tmp(tmp, nb_to_dtype(m, NB_F32));
    return nb__tmp(tmp, nb_where(hidden, nb__tmp(tmp, nb_full(0, NULL, -INFINITY)),
                                 nb__tmp(tmp, nb_zeros(0, NULL))));
}

/* [L, B, E] (or [B, L, E] with batch_first) of embed_dim E, as [B, L, E]. */
static nb_tensor *batch_major(nb__temps *tmp, const mha_state *s, nb_tensor *x, const char *what) {
    if (nb_ndim(x) != 3 || nb_shape(x)[2] != s->embed_dim)
        return nb__fail(NB_ERR_SHAPE, "MultiheadAttention: %s %s must be %s with E = %lld", what,
                        nb__shape_str(nb_ndim(x), nb_shape(x)),
                        s->opts.batch_first ? "[B, L, E]" : "[L, B, E]", (long long)s->embed_dim);
    return s->opts.batch_first ? x : nb__tmp(tmp, nb_transpose(x, 0, 1));
}

/* v with k and v appended to the cache: *k and the result become every cached key and value. */
static nb_tensor *cached(nb__temps *tmp, nb_kv_cache *c, nb_tensor **k, nb_tensor *v) {
    nb_tensor *k_all = NULL, *v_all = NULL;
    if (nb_kv_cache_append(c, *k, v, &k_all, &v_all) != NB_OK) return NULL;
    *k = nb__tmp(tmp, k_all);
    return nb__tmp(tmp, v_all);
}

/* The additive causal mask [T, past + T] of T queries after past cached positions: query i
 * (at position past + i) sees keys j <= past + i, -inf hides the rest. */
static nb_tensor *causal_after(nb__temps *tmp, int64_t t, int64_t past) {
    int64_t n = past + t;
    size_t bytes = sizeof(float) * (size_t)(t * n);
    float *mask = nb__alloc(bytes);
    if (!mask) return NULL;
    for (int64_t i = 0; i < t; i++)
        for (int64_t j = 0; j < n; j++) mask[i * n + j] = j <= past + i ? 0.0f : -INFINITY;
    nb_tensor *r = nb__tmp(tmp, nb_from_data(mask, 2, (int64_t[]){t, n}));
    nb__dealloc(mask, bytes);
    return r;
}

static nb_status mha_forward(nb_module *m, nb_tensor *query, nb_tensor *key, nb_tensor *value,
                             const nb_mha_inputs *in, nb_tensor **out, nb_tensor **weights) {
    const mha_state *s = nb_module_state(m, &mha_class);
    if (!s) return nb_error_code();
    nb_mha_inputs none = {0};
    if (!in) in = &none;
    nb__temps tmp = {0};
    nb_tensor *w = NULL, *r = NULL;
    nb_tensor *qb = batch_major(&tmp, s, query, "query");
    nb_tensor *kb = qb ? batch_major(&tmp, s, key, "key") : NULL;
    nb_tensor *vb = kb ? batch_major(&tmp, s, value, "value") : NULL;
    if (vb && (nb_shape(kb)[0] != nb_shape(qb)[0] || !nb__same_shape(kb, vb))) {
        nb__fail(NB_ERR_SHAPE, "MultiheadAttention: query %s, key %s and value %s: key and value "
                 "must have one shape and query's batch", NB_SHP(query), NB_SHP(key), NB_SHP(value));
        vb = NULL;
    }
    nb_tensor *q = vb ? project(&tmp, s, qb, 0) : NULL, *k = q ? project(&tmp, s, kb, 1) : NULL;
    nb_tensor *v = k ? project(&tmp, s, vb, 2) : NULL;
    int64_t past = nb_kv_cache_len(in->cache); /* 0 without a cache */
    int64_t b = vb ? nb_shape(qb)[0] : 0, t = vb ? nb_shape(qb)[1] : 0;
    int64_t src = vb ? past + nb_shape(kb)[1] : 0;
    nb_sdpa_opts o = {.key_padding_mask = in->key_padding_mask, .causal = in->is_causal && !past,
                      .dropout_p = nb_module_is_training(m) ? s->opts.dropout : 0.0f};
    if (v && !src) { /* torch would return the output bias for every query, silently */
        nb__fail(NB_ERR_SHAPE, "MultiheadAttention: key %s is an empty sequence: no key to attend to",
                 NB_SHP(key));
        v = NULL;
    }
    if (v && in->attn_mask && !(o.attn_mask = attn_mask_of(&tmp, s, in->attn_mask, b, t, src)))
        v = NULL;
    if (v && in->cache && !(v = cached(&tmp, in->cache, &k, v))) k = NULL;
    if (v && in->is_causal && past && t > 1) { /* query i at position past + i */
        nb_tensor *c = causal_after(&tmp, t, past);
        o.attn_mask = c && o.attn_mask ? nb__tmp(&tmp, nb_add(o.attn_mask, c)) : c;
        if (!o.attn_mask) v = NULL;
    }
    if (v && s->opts.add_zero_attn) { /* a key and value of zeros every query may attend */
        k = pad_zero(&tmp, k, 2), v = pad_zero(&tmp, v, 2);
        if (o.attn_mask) o.attn_mask = pad_zero(&tmp, o.attn_mask, nb_ndim(o.attn_mask) - 1);
        if (o.key_padding_mask) {
            if (nb_ndim(o.key_padding_mask) != 2 || nb_shape(o.key_padding_mask)[0] != b ||
                nb_shape(o.key_padding_mask)[1] != src) {
                nb__fail(NB_ERR_SHAPE, "MultiheadAttention: key_padding_mask %s must be [B, S] = "
                         "[%lld,%lld]", NB_SHP(o.key_padding_mask), (long long)b, (long long)src);
                v = NULL;
            } else o.key_padding_mask = pad_zero(&tmp, o.key_padding_mask, 1);
        }
    }
    nb_tensor *a = NULL;
    if (v && weights) a = nb__tmp(&tmp, nb_scaled_dot_product_attention_weights(q, k, v, &o, &w));
    else if (v) a = nb__tmp(&tmp, nb_scaled_dot_product_attention(q, k, v, &o));
    nb__tmp(&tmp, w);
    if (a) { /* [B, H, T, Dh] -> [B, T, E] -> out_proj */
        nb_tensor *c = nb__tmp(&tmp, nb_permute(a, 4, (int[]){0, 2, 1, 3}));
        c = nb__tmp(&tmp, nb_reshape(c, 3, (int64_t[]){b, t, s->embed_dim}));
        r = nb__tmp(&tmp, nb_module_forward(s->out_proj, c));
        if (r && !s->opts.batch_first) r = nb__tmp(&tmp, nb_transpose(r, 0, 1));
    }
    if (r && weights && !in->per_head_weights)
        w = nb__tmp(&tmp, nb_mean_dims(w, 1, (int[]){1}, false));
    if (r && weights) *weights = nb__temps_end(&(nb__temps){0}, w);
    if (r && weights && !*weights) r = NULL;
    *out = nb__temps_end(&tmp, r);
    return *out ? NB_OK : nb_error_code();
}

nb_status nb_multihead_attention_forward(nb_module *m, nb_tensor *query, nb_tensor *key,
                                         nb_tensor *value, const nb_mha_inputs *in,
                                         nb_tensor **out, nb_tensor **weights) {
    if (!weights && in) weights = in->weights;
    if (weights) *weights = NULL;
    if (!out) return nb__fail_status(NB_ERR_NULL, "MultiheadAttention: out is NULL");
    *out = NULL;
    nb_tensor *const xs[3] = {query, key, value};
    for (int i = 0; i < 3; i++)
        if (!nb_is_alive(xs[i])) {
            nb__fail_input("MultiheadAttention", xs[i]);
            return nb_error_code();
        }
    nb_status st = mha_forward(m, query, key, value, in, out, weights);
    if (st != NB_OK && weights) nb_tensor_free(*weights), *weights = NULL;
    return st;
}

/* nb_module_forward(m, x): self-attention, the output alone. */
static nb_tensor *mha_self(nb_module *m, nb_tensor *x) {
    nb_tensor *out = NULL;
    nb_multihead_attention_forward(m, x, x, x, NULL, &out, NULL);
    return out;
}

static void mha_describe(const nb_module *m, nb_attrs *d) {
    const mha_state *s = NB__STATE(mha_state, m);
    nb_attrs_int(d, "embed_dim", s->embed_dim)->flags = NB_ATTR_POSITIONAL;
    nb_attrs_int(d, "num_heads", s->num_heads)->flags = NB_ATTR_POSITIONAL;
    if (s->opts.dropout > 0) nb_attrs_float(d, "dropout", s->opts.dropout);
    if (s->opts.no_bias) nb_attrs_bool(d, "bias", false);
    if (s->opts.add_zero_attn) nb_attrs_bool(d, "add_zero_attn", true);
    if (s->opts.batch_first) nb_attrs_bool(d, "batch_first", true);
}

static const nb_module_class mha_class = {.name = "MultiheadAttention", .forward = mha_self,
                                          .describe = mha_describe};

nb_module *nb_multihead_attention_new(int64_t embed_dim, int64_t num_heads, nb_mha_opts opts) {
    if (embed_dim < 1 || num_heads < 1)
        return nb__fail(NB_ERR_ARG, "MultiheadAttention: embed_dim %lld and num_heads %lld must "
                        "be positive", (long long)embed_dim, (long long)num_heads);
    if (embed_dim % num_heads)
        return nb__fail(NB_ERR_ARG, "MultiheadAttention: embed_dim %lld must be divisible by "
                        "num_heads %lld", (long long)embed_dim, (long long)num_heads);
    if (!(opts.dropout >= 0.0f && opts.dropout < 1.0f))
        return nb__fail(NB_ERR_ARG, "MultiheadAttention: dropout %g is outside [0, 1)",
                        (double)opts.dropout);
    nb_module *m = nb_module_new(&mha_class, sizeof(mha_state));
    if (!m) return NULL;
    mha_state *s = NB__STATE(mha_state, m);
    *s = (mha_state){.embed_dim = embed_dim, .num_heads = num_heads, .opts = opts};
    s->in_proj_weight = nb_module_add_param(m, "in_proj_weight", NB_SHAPE(3 * embed_dim, embed_dim));
    bool ok = s->in_proj_weight && nb_init_xavier_uniform(s->in_proj_weight, 1.0f) == NB_OK;
    if (ok && !opts.no_bias)
        ok = (s->in_proj_bias = nb_module_add_param(m, "in_proj_bias", NB_SHAPE(3 * embed_dim)));
    ok = ok && nb_module_add_child(m, "out_proj", s->out_proj = nb_linear_new(embed_dim, embed_dim,
                                                                              !opts.no_bias)) == NB_OK;
    if (ok && !opts.no_bias) {
        bool was = nb_set_grad_enabled(false);
        ok = nb_fill(nb_module_find(m, "out_proj.bias"), 0.0f) == NB_OK;
        nb_set_grad_enabled(was);
    }
    if (!ok) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}
