/*
 * transformer.c — torch.nn.TransformerEncoderLayer and TransformerDecoderLayer, built from
 * MultiheadAttention (attention.c), Linear, LayerNorm and Dropout children added in torch's
 * order, so that the parameter names and order are torch's (self_attn.in_proj_weight, ...,
 * linear1.weight, linear2.weight, norm1.weight, ...) and a torch state_dict loads by name.
 *
 * With sa the self-attention block, ca the cross-attention block (decoder) and ff the
 * feed-forward block linear2(dropout(act(linear1(x)))), each followed by its dropout:
 *   post-norm (torch's default)    x = norm1(x + sa(x)); [x = norm2(x + ca(x, mem));]
 *                                  x = normN(x + ff(x))
 *   pre-norm (norm_first)          x = x + sa(norm1(x)); [x = x + ca(norm2(x), mem);]
 *                                  x = x + ff(normN(x))
 * (Vaswani et al. 2017; pre-norm as Xiong et al. 2020).
 */
#include "module.h"

typedef struct {
    nb_transformer_opts opts;
    bool decoder;
    nb_module *self_attn, *cross_attn, *linear1, *dropout, *linear2;
    nb_module *norm[3], *drop[3]; /* norm1.., dropout1..: 2 each (encoder) or 3 (decoder) */
} layer_state;

static const nb_module_class encoder_class, decoder_class;

/* drop(block(x)) added to x, with the block reading norm(x) first when norm_first, or
 * norm(x + drop(block(x))) otherwise.  block is the attention (mem NULL: self-attention) or,
 * with attn NULL, the feed-forward. */
static nb_tensor *sublayer(nb__temps *tmp, const layer_state *s, nb_tensor *x, int i,
                           nb_module *attn, nb_tensor *mem, const nb_mha_inputs *masks) {
    nb_tensor *h = s->opts.norm_first ? nb__tmp(tmp, nb_module_forward(s->norm[i], x)) : x, *y = NULL;
    if (!h) return NULL;
    if (attn) {
        nb_tensor *kv = mem ? mem : h;
        if (nb_multihead_attention_forward(attn, h, kv, kv, masks, &y, NULL) != NB_OK) return NULL;
        nb__tmp(tmp, y);
    } else {
        nb_tensor *a = nb__tmp(tmp, nb_module_forward(s->linear1, h));
        a = nb__tmp(tmp, s->opts.gelu ? nb_gelu(a) : nb_relu(a));
        a = nb__tmp(tmp, nb_module_forward(s->dropout, a));
        y = nb__tmp(tmp, nb_module_forward(s->linear2, a));
    }
    nb_tensor *sum = nb__tmp(tmp, nb_add(x, nb__tmp(tmp, nb_module_forward(s->drop[i], y))));
    return s->opts.norm_first ? sum : nb__tmp(tmp, nb_module_forward(s->norm[i], sum));
}

static nb_tensor *layer_forward(nb_module *m, const nb_module_class *cls, nb_tensor *x,
                                nb_tensor *memory, const nb_mha_inputs *self_masks,
                                const nb_mha_inputs *memory_masks) {
    const layer_state *s = nb_module_state(m, cls);
    if (!s) return NULL;
    if (!nb_is_alive(x) || (cls == &decoder_class && !nb_is_alive(memory)))
        return nb__fail_input(cls->name, nb_is_alive(x) ? memory : x);
    nb__temps tmp = {0};
    int ff = s->decoder ? 2 : 1;
    x = sublayer(&tmp, s, x, 0, s->self_attn, NULL, self_masks);
    if (x && s->decoder) x = sublayer(&tmp, s, x, 1, s->cross_attn, memory, memory_masks);
    if (x) x = sublayer(&tmp, s, x, ff, NULL, NULL, NULL);
    return nb__temps_end(&tmp, x);
}

nb_tensor *nb_transformer_encoder_layer_forward(nb_module *m, nb_tensor *src,
                                                const nb_mha_inputs *src_masks) {
    return layer_forward(m, &encoder_class, src, NULL, src_masks, NULL);
}

nb_tensor *nb_transformer_decoder_layer_forward(nb_module *m, nb_tensor *tgt, nb_tensor *memory,
                                                const nb_mha_inputs *tgt_masks,
                                                const nb_mha_inputs *memory_masks) {
    return layer_forward(m, &decoder_class, tgt, memory, tgt_masks, memory_masks);
}

static nb_tensor *encoder_forward(nb_module *m, nb_tensor *x) {
    return nb_transformer_encoder_layer_forward(m, x, NULL);
}

static nb_status decoder_forward(nb_module *m, nb_tensor *const *in, nb_tensor **out) {
    out[0] = nb_transformer_decoder_layer_forward(m, in[0], in[1], NULL, NULL);
    return out[0] ? NB_OK : nb_error_code();
}

static void layer_describe(const nb_module *m, nb_attrs *d) {
    const layer_state *s = NB__STATE(layer_state, m);
    if (s->opts.gelu) nb_attrs_string(d, "activation", "gelu");
    if (s->opts.batch_first) nb_attrs_bool(d, "batch_first", true);
    if (s->opts.norm_first) nb_attrs_bool(d, "norm_first", true);
}

static const nb_module_class encoder_class = {.name = "TransformerEncoderLayer",
                                              .forward = encoder_forward,
                                              .describe = layer_describe};
static const nb_module_class decoder_class = {.name = "TransformerDecoderLayer",
                                              .forward_n = decoder_forward, .n_inputs = 2,
                                              .n_outputs = 1, .describe = layer_describe};

/* Adds child `name` (taken over) and keeps it in *slot; false on failure. */
static bool add(nb_module *m, const char *name, nb_module **slot, nb_module *child) {
    *slot = child;
    return nb_module_add_child(m, name, child) == NB_OK;
}

static nb_module *layer_new(const nb_module_class *cls, int64_t d_model, int64_t nhead,
                            nb_transformer_opts o) {
    int64_t ff = o.dim_feedforward ? o.dim_feedforward : 2048;
    if (d_model < 1 || nhead < 1 || ff < 1)
        return nb__fail(NB_ERR_ARG, "%s: d_model %lld, nhead %lld and dim_feedforward %lld must "
                        "be positive", cls->name, (long long)d_model, (long long)nhead,
                        (long long)ff);
    if (d_model % nhead)
        return nb__fail(NB_ERR_ARG, "%s: d_model %lld must be divisible by nhead %lld",
                        cls->name, (long long)d_model, (long long)nhead);
    nb_module *m = nb_module_new(cls, sizeof(layer_state));
    if (!m) return NULL;
    layer_state *s = NB__STATE(layer_state, m);
    s->opts = o;
    s->decoder = cls == &decoder_class;
    nb_mha_opts mo = {.dropout = o.dropout, .batch_first = o.batch_first};
    float eps = o.layer_norm_eps > 0 ? o.layer_norm_eps : 1e-5f;
    int n = s->decoder ? 3 : 2;
    static const char *const norms[3] = {"norm1", "norm2", "norm3"};
    static const char *const drops[3] = {"dropout1", "dropout2", "dropout3"};
    bool ok = add(m, "self_attn", &s->self_attn, nb_multihead_attention_new(d_model, nhead, mo));
    if (ok && s->decoder)
        ok = add(m, "multihead_attn", &s->cross_attn, nb_multihead_attention_new(d_model, nhead, mo));
    ok = ok && add(m, "linear1", &s->linear1, nb_linear_new(d_model, ff, true));
    ok = ok && add(m, "dropout", &s->dropout, nb_dropout_new(o.dropout));
    ok = ok && add(m, "linear2", &s->linear2, nb_linear_new(ff, d_model, true));
    for (int i = 0; ok && i < n; i++)
        ok = add(m, norms[i], &s->norm[i], nb_layernorm_new(1, &d_model, eps, true));
    for (int i = 0; ok && i < n; i++) ok = add(m, drops[i], &s->drop[i], nb_dropout_new(o.dropout));
    if (!ok) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

nb_module *nb_transformer_encoder_layer_new(int64_t d_model, int64_t nhead,
                                            nb_transformer_opts opts) {
    return layer_new(&encoder_class, d_model, nhead, opts);
}

nb_module *nb_transformer_decoder_layer_new(int64_t d_model, int64_t nhead,
                                            nb_transformer_opts opts) {
    return layer_new(&decoder_class, d_model, nhead, opts);
}
