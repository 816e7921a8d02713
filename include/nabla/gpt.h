/*
 * nabla/gpt.h — a decoder-only transformer language model (GPT, Radford et al. 2018/2019, in
 * the pre-norm form of GPT-2 and nanoGPT) made of the library's layers, its training step, and
 * generation with a key/value cache and temperature, top-k and top-p (nucleus) sampling.
 *
 * The model, with torch's names (a torch model with the same children loads its state_dict):
 *   wte      Embedding(V, E)                         token embeddings
 *   wpe      Embedding(context, E)                   learned positions (or the buffer "pe",
 *                                                    the sinusoidal table, with opts.sinusoidal)
 *   drop     Dropout(dropout)
 *   h.0 ..   TransformerEncoderLayer(E, heads, 4E, gelu, batch_first, norm_first) with a
 *            causal mask: a decoder-only block, x + attn(norm1(x)), then x + mlp(norm2(x))
 *   ln_f     LayerNorm(E)
 *   lm_head  Linear(E, V, bias=False)                not tied to wte
 * Every layer keeps torch's own initialisation (Embedding N(0, 1), Linear's kaiming uniform,
 * MultiheadAttention's xavier uniform).
 *
 * Shape letters: B batch, T tokens (T <= context), E width, V vocabulary.  Token ids are int32,
 * or float32 holding whole numbers (the samples nb_lm_dataset_new gives).
 */
#ifndef NABLA_GPT_H
#define NABLA_GPT_H

#include "../nabla.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The model's sizes; zero-initialised fields take the defaults shown (vocab_size is required). */
typedef struct {
    int64_t vocab_size;      /* V >= 1 */
    int64_t context;         /* positions, the longest sequence; 0: 128 */
    int64_t n_layer;         /* blocks; 0: 4 */
    int64_t n_head;          /* heads, dividing n_embd; 0: 4 */
    int64_t n_embd;          /* E; 0: 128 */
    int64_t dim_feedforward; /* the MLP's hidden width; 0: 4 E */
    float dropout;           /* in [0, 1), after the embeddings and in every block; 0: none */
    bool sinusoidal;         /* fixed sinusoidal positions instead of a learned Embedding */
} nb_gpt_opts;

/* A GPT as described above, in training mode.  NULL with NB_ERR_ARG naming the size for
 * vocab_size < 1, another size < 1 (after defaults), n_head not dividing n_embd, an odd n_embd
 * with sinusoidal, or dropout outside [0, 1).  Free with nb_module_free. */
NB_API nb_module *nb_gpt_new(nb_gpt_opts opts);
/* The sizes m was made with, defaults filled in; all zero with NB_ERR_ARG when m is not a GPT. */
NB_API nb_gpt_opts nb_gpt_config(const nb_module *m);

/* Logits [B, T, V] of ids [B, T] (also nb_module_forward(m, ids)): position t sees tokens
 * 0..t.  Owned as an op's result.  NULL with NB_ERR_SHAPE for ids that are not 2-D,
 * NB_ERR_ARG for T above the context ("position_ids: a sequence of 130 tokens from position 0
 * is longer than the 128 positions") or an id outside [0, V) ("embedding: id 97 at [0,3] is
 * out of range for 90 embeddings"), NB_ERR_DTYPE for ids of another dtype. */
NB_API nb_tensor *nb_gpt_forward(nb_module *m, nb_tensor *ids);
/* The mean cross-entropy of the next-token predictions: x [B, T] the input ids, y [B, T] the
 * targets (x shifted by one).  A scalar owned as an op's result; NULL with the forward's errors
 * or NB_ERR_SHAPE for a y of another shape than x. */
NB_API nb_tensor *nb_gpt_loss(nb_module *m, nb_tensor *x, nb_tensor *y);
/* One training step as torch's loop does it: zero_grad, loss, backward, the gradients' global
 * L2 norm clipped to clip_norm (0: no clipping), the optimiser's step, then the schedule's (s may
 * be NULL).  *loss gets the batch's loss before the step.  Runs in its own scope.  Errors of
 * nb_gpt_loss, backward, clipping and the steps; the parameters are unchanged when the loss is
 * not finite (NB_ERR_VALUE: "gpt_train_step: the loss is nan"). */
NB_API nb_status nb_gpt_train_step(nb_module *m, nb_optim *o, nb_sched *s, nb_tensor *x,
                                   nb_tensor *y, float clip_norm, double *loss);

/* nanoGPT's configure_optimizers with a warm-up and a cosine decay, as torch builds them:
 * AdamW (beta1 0.9) whose first group holds the parameters of 2 or more dims (matrices,
 * embeddings) with weight_decay and whose second holds the rest (biases, LayerNorm) without;
 * the rate rises linearly from lr / warmup to lr over warmup steps (LinearLR), then falls along
 * a cosine to min_lr over the other steps (CosineAnnealingLR), the two joined by SequentialLR.
 * Zero-initialised fields take the defaults shown; NB_ZERO asks for a real 0. */
typedef struct {
    int steps;           /* the run's length, >= 1 (required) */
    int warmup;          /* steps of warm-up, below steps; 0: none */
    double lr;           /* the peak rate; 0: 1e-3 */
    double weight_decay; /* 0: 0.1 */
    double beta2;        /* 0: 0.99 */
    double min_lr;       /* 0: lr / 10 */
} nb_gpt_optim_opts;

/* The optimiser over m's trainable parameters, and in *sched its schedule (to step after each
 * optimiser step, as nb_gpt_train_step does; free it before the optimiser).  NULL with
 * NB_ERR_ARG for steps < 1 or warmup outside [0, steps), and the optimiser's and schedules'
 * errors; *sched is NULL then. */
NB_API nb_optim *nb_gpt_optim_new(nb_module *m, const nb_gpt_optim_opts *o, nb_sched **sched);

/* ---------------------------------------------------------------- generation */

/* Sampling options; zero-initialised: plain sampling at temperature 1 from every token. */
typedef struct {
    float temperature; /* logits / temperature before the softmax; 0: 1 */
    bool greedy;       /* the most likely token (the first of equals), nothing drawn */
    int32_t top_k;     /* only the k most likely tokens may be drawn (ties: the lower id); 0: all */
    float top_p;       /* nucleus: only the most likely tokens whose probabilities sum to at least
                        * top_p (after top_k), at least one; 0 or 1: all */
    uint64_t seed;     /* the draws depend on it alone: the same seed gives the same tokens */
    bool no_cache;     /* each token from a forward of the whole window instead of the key/value
                        * cache (the same tokens, slower: for checks and timing) */
} nb_gpt_sample_opts;

/* The token that logits[0..n) give for a uniform draw u in [0, 1) under o (greedy ignores u):
 * tokens are ordered by falling probability (ties: the lower id), cut by top_k and top_p, and
 * the first whose cumulative probability, renormalised over those kept, exceeds u is returned.
 * -1 with NB_ERR_ARG for n < 1, a temperature that is negative or not finite, top_k < 0, top_p
 * outside [0, 1], u outside [0, 1), a NaN logit (named with its index), or logits that are all
 * -inf. */
NB_API int32_t nb_sample_token(const float *logits, int64_t n, const nb_gpt_sample_opts *o, double u);

/* Generates n_new tokens after prompt[0..n_prompt) into out[0..n_new), one batch row, in eval
 * mode without a graph (m's mode is put back).  A prompt longer than the context is cropped to
 * its last context tokens, and so is the window as it grows, as GPT-2's generation does: with
 * the cache, each block's keys and values are computed once per token (nb_kv_cache_*), and
 * when the context is full the cache is refilled from the window, so cached and uncached runs
 * give the same tokens.  NB_ERR_ARG for an empty prompt ("gpt_generate: the prompt is empty:
 * start it with a token such as a newline"), an id outside [0, V) ("gpt_generate: prompt[3] =
 * 97 is not below the vocabulary's 90 ids"), n_new < 0 or bad sampling options; NB_ERR_NULL for
 * NULL arrays; the forward's errors. */
NB_API nb_status nb_gpt_generate(nb_module *m, const int32_t *prompt, int64_t n_prompt,
                                 int64_t n_new, const nb_gpt_sample_opts *o, int32_t *out);

#ifdef __cplusplus
}
#endif

#endif
