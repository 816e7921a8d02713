/*
 * nabla/attention.h — attention, as torch has it: scaled dot-product attention (torch 2's
 * F.scaled_dot_product_attention, written out as matmul and softmax for torch 1.13).
 *
 * Shape letters: B batch, H heads, T queries, S keys, D the query/key width, Dv the value
 * width.  Masks follow torch: a float32 mask is added to the scores (minus infinity hides a
 * key); a mask of any other dtype is boolean.  Results are owned like any op's: the open
 * scope's, or the caller's (nb_tensor_free) with none open.
 */
#ifndef NABLA_ATTENTION_H
#define NABLA_ATTENTION_H

#include "../nabla.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options of nb_scaled_dot_product_attention; zero-initialised: no mask, no dropout,
 * scale 1 / sqrt(D). */
typedef struct {
    nb_tensor *attn_mask;        /* NULL, or broadcastable to [B, H, T, S] (rank <= 4): float32
                                  * is added to the scores, another dtype is boolean with
                                  * nonzero = may attend (torch's SDPA); takes no gradient */
    nb_tensor *key_padding_mask; /* NULL, or [B, S]: float32 is added, another dtype is boolean
                                  * with nonzero = a padding key, ignored (torch's MHA) */
    bool causal;                 /* query i sees keys j <= i (torch's is_causal, top-left) */
    float dropout_p;             /* in [0, 1): dropout on the weights, applied whenever > 0 (a
                                  * module passes 0 in eval mode) */
    float scale;                 /* 0: 1 / sqrt(D) */
} nb_sdpa_opts;

/* softmax(q k^T scale + masks) v: q [B, H, T, D], k [B, H, S, D], v [B, H, S, Dv] ->
 * [B, H, T, Dv], all float32, one autograd op (ScaledDotProductEfficientAttentionBackward0)
 * whose fused kernel keeps no [T, S] matrix: it saves only each row's log-sum-exp and its
 * backward recomputes the weights block by block (flash attention).  A row whose keys are all
 * masked gives NaN, as torch.  opts may be NULL.  NULL with NB_ERR_SHAPE naming the shapes for
 * inputs that are not 4-D or do not agree, or a mask of the wrong shape; NB_ERR_ARG for a
 * dropout_p outside [0, 1), a negative scale or a mask that requires grad; NB_ERR_NULL for NULL
 * or dead inputs. */
NB_API nb_tensor *nb_scaled_dot_product_attention(nb_tensor *q, nb_tensor *k, nb_tensor *v,
                                                  const nb_sdpa_opts *opts);
/* The same, through matmul and softmax ops that keep the weights: *weights receives them,
 * [B, H, T, S], after dropout (what torch's MultiheadAttention returns); its gradient flows.
 * Same errors; *weights is NULL on failure. */
NB_API nb_tensor *nb_scaled_dot_product_attention_weights(nb_tensor *q, nb_tensor *k,
                                                          nb_tensor *v, const nb_sdpa_opts *opts,
                                                          nb_tensor **weights);

/* ---------------------------------------------------------------- MultiheadAttention */

/* torch.nn.MultiheadAttention's options; zero-initialised means torch's defaults (kdim = vdim =
 * embed_dim; add_bias_kv is not offered). */
typedef struct {
    float dropout;      /* in [0, 1): on the attention weights, in training */
    bool no_bias;       /* torch's bias=False: no in_proj_bias, no out_proj.bias */
    bool add_zero_attn; /* a key and a value of zeros appended to the keys (masks padded) */
    bool batch_first;   /* inputs and output [B, L, E] instead of [L, B, E] */
} nb_mha_opts;

/* A MultiheadAttention module with torch's parameters, by torch's names and in its order:
 * in_proj_weight [3E, E] (xavier uniform), in_proj_bias [3E] (zeros), out_proj.weight [E, E]
 * (a Linear's init), out_proj.bias [E] (zeros).  nb_module_forward(m, x) is self-attention
 * returning the output alone.  NULL with NB_ERR_ARG ("MultiheadAttention: embed_dim 10 must be
 * divisible by num_heads 3") for sizes < 1, an embed_dim that num_heads does not divide or a
 * dropout outside [0, 1). */
NB_API nb_module *nb_multihead_attention_new(int64_t embed_dim, int64_t num_heads, nb_mha_opts opts);

typedef struct nb_kv_cache nb_kv_cache; /* the key/value cache, below */

/* The optional inputs of a forward; zero-initialised: none. */
typedef struct {
    nb_tensor *key_padding_mask; /* [B, S]: boolean (nonzero = a padding key) or float (added) */
    nb_tensor *attn_mask;        /* [T, S] or [B * H, T, S]: boolean (nonzero = may NOT attend,
                                  * torch's MHA convention) or float (added) */
    bool is_causal;              /* query i sees keys j <= i (in addition to the masks) */
    bool per_head_weights;       /* weights [B, H, T, S] (torch's average_attn_weights=False)
                                  * instead of their mean over heads [B, T, S] */
    nb_kv_cache *cache;          /* NULL, or self-attention's past keys and values (incremental
                                  * decoding): the projected key and value of this call are
                                  * appended (nb_kv_cache_append) and the query attends to every
                                  * cached position; with is_causal, query i sits at position
                                  * len + i, len the positions cached before the call, and sees
                                  * keys j <= len + i.  key_padding_mask and attn_mask then cover
                                  * all len + S keys. */
    nb_tensor **weights;         /* NULL, or receives the weights as nb_multihead_attention_
                                  * forward's `weights` (which takes precedence when not NULL):
                                  * how a caller of a transformer layer gets its attention's */
} nb_mha_inputs;

/* torch's MultiheadAttention.forward(query, key, value, ...): query [T, B, E], key and value
 * [S, B, E] ([B, L, E] with batch_first) -> *out of query's shape.  weights NULL: the fused,
 * memory-efficient attention (torch's need_weights=False); else *weights receives the attention
 * weights (after dropout, as torch), averaged over heads unless in->per_head_weights.  in may be
 * NULL.  Results are owned as an op's.  NB_ERR_SHAPE naming the shapes for inputs or masks of
 * the wrong shape; NB_ERR_NULL for NULL or dead inputs; NB_ERR_ARG for a module of another
 * kind.  On failure *out and *weights are NULL. */
NB_API nb_status nb_multihead_attention_forward(nb_module *m, nb_tensor *query, nb_tensor *key,
                                                nb_tensor *value, const nb_mha_inputs *in,
                                                nb_tensor **out, nb_tensor **weights);

/* ---------------------------------------------------------------- transformer layers */

/* torch.nn.TransformerEncoderLayer / TransformerDecoderLayer's options; zero-initialised means
 * torch's defaults except dropout (torch's default is 0.1; 0 here means none). */
typedef struct {
    int64_t dim_feedforward; /* 0: 2048 */
    float dropout;           /* in [0, 1): attention weights, feed-forward and each sublayer's
                              * output, in training */
    bool gelu;               /* activation gelu (exact, erf) instead of relu */
    float layer_norm_eps;    /* 0: 1e-5 */
    bool batch_first;        /* [B, L, E] instead of [L, B, E] */
    bool norm_first;         /* pre-norm: x + f(norm(x)) instead of norm(x + f(x)) */
} nb_transformer_opts;

/* The layers, with torch's children and parameter names in torch's order: self_attn
 * (MultiheadAttention), [multihead_attn (decoder)], linear1 [F, E], dropout, linear2 [E, F],
 * norm1, norm2, [norm3], dropout1, dropout2, [dropout3].  nb_module_forward on the encoder
 * layer runs it with no masks; the decoder layer's nb_module_forward_n takes (tgt, memory).
 * NULL with NB_ERR_ARG for sizes < 1 or a d_model that nhead does not divide
 * ("TransformerEncoderLayer: d_model 10 must be divisible by nhead 4"). */
NB_API nb_module *nb_transformer_encoder_layer_new(int64_t d_model, int64_t nhead,
                                                   nb_transformer_opts opts);
NB_API nb_module *nb_transformer_decoder_layer_new(int64_t d_model, int64_t nhead,
                                                   nb_transformer_opts opts);
/* torch's forward(src, src_mask, src_key_padding_mask): src [T, B, E] ([B, T, E] with
 * batch_first) -> the same shape; masks as nb_multihead_attention_forward's (src_masks may be
 * NULL).  NULL with the attention's errors. */
NB_API nb_tensor *nb_transformer_encoder_layer_forward(nb_module *m, nb_tensor *src,
                                                       const nb_mha_inputs *src_masks);
/* torch's forward(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
 * memory_key_padding_mask): tgt [T, B, E], memory [S, B, E] -> [T, B, E]; either masks may be
 * NULL. */
NB_API nb_tensor *nb_transformer_decoder_layer_forward(nb_module *m, nb_tensor *tgt,
                                                       nb_tensor *memory,
                                                       const nb_mha_inputs *tgt_masks,
                                                       const nb_mha_inputs *memory_masks);

/* ---------------------------------------------------------------- positions */

/* The sinusoidal table of "Attention is all you need", [max_len, d_model], as PyTorch's
 * tutorial builds it: pe[p, 2i] = sin(p w_i), pe[p, 2i + 1] = cos(p w_i),
 * w_i = exp(-2i ln(10000) / d_model).  NULL with NB_ERR_ARG for max_len < 1 or an odd
 * d_model.  Owned as any creation's result. */
NB_API nb_tensor *nb_sinusoidal_positions(int64_t max_len, int64_t d_model);
/* Rows offset .. offset + len - 1 of a positions table [max_len, d_model] (a view), to add to
 * a sequence's embeddings.  NULL with NB_ERR_ARG for a sequence longer than the positions
 * ("positions_slice: a sequence of 130 tokens from position 0 is longer than the 128
 * positions"), NB_ERR_SHAPE for a table that is not 2-D. */
NB_API nb_tensor *nb_positions_slice(nb_tensor *table, int64_t offset, int64_t len);
/* int32 ids offset .. offset + len - 1 [len], for a learned position Embedding of max_len
 * rows (nb_embedding_new(max_len, d_model, ...)); the same NB_ERR_ARG past max_len. */
NB_API nb_tensor *nb_position_ids(int64_t offset, int64_t len, int64_t max_len);
/* Rotary position embedding (RoPE) as GPT-NeoX and LLaMA apply it to q and k: x [..., T, D]
 * (D even), row t at position offset + t, rotated by angles (offset + t) base^(-2i / D):
 * x cos + rotate_half(x) sin, rotate_half(x) = cat(-x[..., D/2:], x[..., :D/2]).  base 0
 * means 10000.  Differentiable (made of ops).  NULL with NB_ERR_SHAPE for an odd D or a rank
 * below 2, NB_ERR_ARG for a negative offset or base. */
NB_API nb_tensor *nb_rotary(nb_tensor *x, int64_t offset, float base);

/* ---------------------------------------------------------------- key/value cache */

/* The keys and values of the steps decoded so far, for one attention layer: each step appends
 * its k and v [B, H, t, D] and attends (without a causal mask when t is 1) to all of them, so
 * step-by-step outputs equal the full causal forward's.  Cached values are detached copies
 * (generation needs no gradient through past steps).  Free with nb_kv_cache_free. */
/* NULL with NB_ERR_ARG for max_len < 1. */
NB_API nb_kv_cache *nb_kv_cache_new(int64_t max_len);
NB_API void nb_kv_cache_free(nb_kv_cache *c); /* NULL: nothing */
NB_API void nb_kv_cache_reset(nb_kv_cache *c); /* empty again, for the next sequence */
NB_API int64_t nb_kv_cache_len(const nb_kv_cache *c); /* positions held (the next one's offset) */
/* Appends k and v along dim 2; *k_all and *v_all receive every cached key and value
 * [B, H, len, D] (owned as an op's result).  NB_ERR_ARG past max_len ("kv_cache_append: a
 * sequence of 2 tokens from position 127 is longer than the 128 positions"), NB_ERR_SHAPE for
 * k or v that are not 4-D or do not match the cache, NB_ERR_NULL for NULL arguments; the
 * cache is unchanged on failure. */
NB_API nb_status nb_kv_cache_append(nb_kv_cache *c, nb_tensor *k, nb_tensor *v,
                                    nb_tensor **k_all, nb_tensor **v_all);

#ifdef __cplusplus
}
#endif

#endif
