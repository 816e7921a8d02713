/*
 * nabla/tagger.h — sequence tagging (part of speech, named entities): a tag for every token of
 * a sentence, from a few embedded features of each token through a BiLSTM or a transformer
 * encoder to a Linear layer over the tags.
 *
 * Shape letters: B sentences, T the longest (the rest padded), K features per token, C tags.
 * A token's features are K int32 ids, column k an id in [0, features[k].size) of its own
 * Embedding (id 0 is padding: its row stays zero): the lower-cased word, a suffix, the word's
 * shape (nb_word_shape), as the caller chooses; the embeddings are concatenated.  Unknown words
 * hurt a tagger most, and a suffix ("-ly", "-ness") and the shape (capitals, digits) say most
 * of what the word would.  Results are owned like any op's: the open scope's, or the caller's
 * (nb_tensor_free) with none open.
 */
#ifndef NABLA_TAGGER_H
#define NABLA_TAGGER_H

#include "../nabla.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    NB_TAGGER_BILSTM,      /* a bidirectional LSTM (lengths from the mask), each token's two
                            * hidden states to the Linear */
    NB_TAGGER_TRANSFORMER, /* a Linear to d_model, learned positions added, post-norm encoder
                            * layers with the padding as key_padding_mask */
    NB_TAGGER_KIND_COUNT
} nb_tagger_kind;

#define NB_TAGGER_MAX_FEATURES 8
/* Padding of a batch's tags (the ignore_index of nb_tagger_loss). */
#define NB_TAGGER_PAD_TAG (-1)

typedef struct {
    int64_t size, dim; /* ids in [0, size), embedded in dim floats */
} nb_tagger_feature;

typedef struct {
    nb_tagger_kind kind;
    int n_features;                                       /* K, 1 .. NB_TAGGER_MAX_FEATURES */
    nb_tagger_feature features[NB_TAGGER_MAX_FEATURES];
    int64_t tags;    /* C >= 1 */
    int64_t hidden;  /* BiLSTM: per direction; transformer: d_model (a multiple of heads); 0: 128 */
    int layers;      /* 0: 1 (BiLSTM), 2 (transformer) */
    int64_t heads;   /* transformer: 0: 4 */
    int64_t max_len; /* transformer: positions; 0: 256 */
    float dropout;   /* in [0, 1): on the embeddings and the encoder's output, in training */
} nb_tagger_opts;

/* A tagger (class "Tagger") with children emb0 .. emb{K-1} (Embeddings, padding_idx 0), then
 * "lstm" (LSTM, bidirectional, batch_first) or "proj", "positions", "layer0" ..
 * (TransformerEncoderLayers, batch_first, dim_feedforward 2 hidden), and "out" (Linear to C).
 * NULL with NB_ERR_ARG naming the option for sizes < 1, K outside [1, 8], a kind out of range,
 * a hidden size that heads does not divide, or a dropout outside [0, 1). */
NB_API nb_module *nb_tagger_new(nb_tagger_opts opts);
/* Logits [B, T, C] of features [B, T, K] int32 and mask [B, T] float32 (1 on tokens, 0 on
 * padding after each sentence's end, as nb_seq_batch_make gives it; every sentence at least one
 * token).  nb_module_forward_n(m, 2, {features, mask}, 1, &logits) is the same.  NULL with
 * NB_ERR_SHAPE for shapes that do not agree, NB_ERR_ARG for an id out of its feature's range, a
 * mask row that does not start with 1s and end with 0s, a sentence longer than the positions;
 * NB_ERR_NULL for NULL or dead inputs. */
NB_API nb_tensor *nb_tagger_forward(nb_module *m, nb_tensor *features, nb_tensor *mask);
/* The mean cross-entropy over the tokens of logits [B, T, C] against tags [B, T] int32 (tags in
 * [0, C), NB_TAGGER_PAD_TAG on padding, which counts for nothing).  The errors of
 * nb_cross_entropy. */
NB_API nb_tensor *nb_tagger_loss(nb_tensor *logits, nb_tensor *tags);
/* Each token's most likely tag, out[b * T + t] for logits [B, T, C] (out holds B * T ids).
 * NB_ERR_SHAPE for logits that are not 3-D, NB_ERR_ARG when n is not B * T. */
NB_API nb_status nb_tagger_predict(nb_tensor *logits, int32_t *out, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
