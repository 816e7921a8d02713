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
 * inputs that are not 4-D or do not agree, keys that are an empty sequence (S = 0), or a mask
 * of the wrong shape; NB_ERR_ARG for a dropout_p outside [0, 1), a negative scale or a mask
 * that requires grad; NB_ERR_NULL for NULL or dead inputs. */
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
 * the wrong shape and for keys that are an empty sequence (S = 0); NB_ERR_NULL for NULL or dead inputs; NB_ERR_ARG for a module of another
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

/* ---------------------------------------------------------------- an encoder-decoder */

/* The translator of PyTorch's tutorial (Seq2SeqTransformer, "Language translation with
 * nn.Transformer"): token embeddings scaled by sqrt(d_model) plus sinusoidal positions, a
 * stack of encoder layers over the source, a stack of decoder layers over the target that
 * attend to the encoder's output, each stack closed by a LayerNorm (as nn.Transformer), and a
 * Linear generator to the vocabulary.  Source and target share one vocabulary of ids
 * 0 .. vocab - 1 in which 0 is the padding.  Zero-initialised fields take the defaults. */
typedef struct {
    int64_t vocab;              /* ids [0, vocab), at least 3; 0 pads */
    int32_t bos, eos;           /* the target's start and end tokens: distinct, in [1, vocab) */
    int64_t d_model, nhead;     /* 0: 64 and 4 */
    int64_t num_encoder_layers; /* 0: 2 */
    int64_t num_decoder_layers; /* 0: 2 */
    int64_t dim_feedforward;    /* 0: 4 d_model */
    int64_t max_len;            /* positions: the longest source or target, BOS included; 0: 64 */
    float dropout;              /* in [0, 1): the layers', in training */
    bool norm_first;            /* pre-norm layers */
} nb_seq2seq_opts;

/* A Seq2SeqTransformer module with children src_embed, tgt_embed (Embeddings with padding_idx
 * 0), encoder0.., decoder0.. (batch_first transformer layers), encoder_norm, decoder_norm,
 * generator.  NULL with NB_ERR_ARG naming the option for a vocab below 3, bos or eos outside
 * [1, vocab) or equal, negative sizes, or sizes the layers refuse.  Free with nb_module_free. */
NB_API nb_module *nb_seq2seq_new(nb_seq2seq_opts opts);
/* The options m was made with, defaults filled in; NULL with NB_ERR_ARG for another module. */
NB_API const nb_seq2seq_opts *nb_seq2seq_opts_of(const nb_module *m);
/* Teacher forcing: logits [B, T, vocab] for source ids src [B, S] and target inputs tgt [B, T]
 * (int32, BOS first; 0 pads the end of a row).  The source's padding is masked in the
 * encoder's self-attention and in the decoder's cross-attention; the target's self-attention
 * is causal, which also hides the padding that follows a row's tokens, so logits at real
 * positions never see it.  NULL with NB_ERR_SHAPE for ids that are not int32 [B, L] with one
 * B, NB_ERR_ARG for an empty source or one with a row that is all padding (named), the
 * Embedding's error for an id outside [0, vocab), and the positions' for a sequence longer
 * than max_len.  Owned as an op's result. */
NB_API nb_tensor *nb_seq2seq_forward(nb_module *m, nb_tensor *src, nb_tensor *tgt);
/* The teacher-forcing loss: the cross-entropy of nb_seq2seq_forward(m, src, tgt_in)'s logits
 * against tgt_out [B, T] (int32), averaged over its tokens that are not padding (torch's
 * ignore_index=0).  A scalar; the forward's errors, and the loss's for a tgt_out of another
 * shape than tgt_in. */
NB_API nb_tensor *nb_seq2seq_loss(nb_module *m, nb_tensor *src, nb_tensor *tgt_in, nb_tensor *tgt_out);

/* Options of nb_seq2seq_greedy; zero-initialised: up to max_len tokens, with the cache. */
typedef struct {
    int64_t max_tokens;          /* tokens generated at most, EOS included; 0: max_len */
    bool no_cache;               /* run the decoder over the whole prefix at every step instead
                                  * of one token against each layer's KV cache (same tokens) */
    nb_tensor **cross_attention; /* NULL, or receives [L, B, H, T, S]: each decoder layer's
                                  * cross-attention weights per head, row t for token t */
} nb_seq2seq_decode_opts;
/* Greedy decoding, without gradients: from BOS, each step appends the most likely token; a row
 * is done at its EOS, and decoding stops when every row is done or after max_tokens.  Returns
 * int32 [B, T] (T the steps run): each row's tokens up to and including its EOS, then 0.  With
 * the cache each step costs one token's work per layer; without it, the prefix's.  Dropout
 * runs if m is in training mode: decode in eval mode.  o may be NULL.  Errors as
 * nb_seq2seq_forward's, and NB_ERR_ARG for a max_tokens above max_len or negative. */
NB_API nb_tensor *nb_seq2seq_greedy(nb_module *m, nb_tensor *src, const nb_seq2seq_decode_opts *o);

/* The course's synthetic translation tasks: copy a sequence reversed, or sorted by id. */
typedef enum { NB_SEQ2SEQ_REVERSE, NB_SEQ2SEQ_SORT, NB_SEQ2SEQ_TASK_COUNT } nb_seq2seq_task;
/* A batch of b examples for a model of options o (nb_seq2seq_opts_of): sequences of lengths
 * drawn uniformly from [min_len, max_len], of symbols drawn uniformly from the ids of [1, vocab)
 * that are neither bos nor eos, and their answers.  *src [B, max_len] holds the sequences,
 * *tgt_in [B, max_len + 1] BOS and the answer, *tgt_out [B, max_len + 1] the answer and EOS,
 * all int32 padded with 0.  The same seed gives the same batch.  NB_ERR_ARG for lengths outside
 * 1 <= min_len <= max_len < o->max_len, b < 1 or an unknown task; NB_ERR_NULL for NULL. */
NB_API nb_status nb_seq2seq_task_batch(nb_seq2seq_task task, const nb_seq2seq_opts *o, int64_t b,
                                       int64_t min_len, int64_t max_len, uint64_t seed,
                                       nb_tensor **src, nb_tensor **tgt_in, nb_tensor **tgt_out);
/* Greedy outputs pred [B, T] (nb_seq2seq_greedy's) against the answers tgt_out [B, L]
 * (answer, EOS, 0 padding): *exact gets the fraction of rows whose every token up to and
 * including EOS is right, *token the fraction of those target tokens that are right (a token
 * pred lacks counts as wrong).  NB_ERR_SHAPE for ids that are not int32 [B, *] with one B. */
NB_API nb_status nb_seq2seq_accuracy(nb_tensor *pred, nb_tensor *tgt_out, double *exact,
                                     double *token);

/* ---------------------------------------------------------------- positions */

/* The sinusoidal table of "Attention is all you need", [max_len, d_model], as PyTorch's
 * tutorial builds it: pe[p, 2i] = sin(p w_i), pe[p, 2i + 1] = cos(p w_i),
 * w_i = exp(-2i ln(10000) / d_model).  NULL with NB_ERR_ARG for max_len < 1 or an odd
 * d_model.  Owned as any creation's result. */
NB_API nb_tensor *nb_sinusoidal_positions(int64_t max_len, int64_t d_model);
/* Rows offset .. offset + len - 1 of a positions table [max_len, d_model] (a view), to add to
 * a sequence's embeddings.  NULL with NB_ERR_ARG for an empty sequence (len < 1), a negative
 * offset or a sequence longer than the positions
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
