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

#ifdef __cplusplus
}
#endif

#endif
