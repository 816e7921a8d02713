/*
 * nabla/rnn.h — sequences: token embeddings and the recurrent layers, as torch.nn has them
 * (Embedding; RNN, LSTM, GRU; RNNCell, LSTMCell, GRUCell).
 *
 * Shape letters: T time steps, B batch, I input size, H hidden size, L layers, D directions
 * (2 when bidirectional, else 1), V vocabulary (num_embeddings), E embedding_dim.  Token ids
 * are int32 tensors (the tree's index dtype).  Results are owned like any op's: the open
 * scope's, or the caller's (nb_tensor_free) with none open.
 */
#ifndef NABLA_RNN_H
#define NABLA_RNN_H

#include "../nabla.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- embedding */

/* torch.nn.Embedding's options; zero-initialised means torch's defaults (no padding). */
typedef struct {
    bool padding;        /* padding_idx given: its row's output is read but gets no gradient */
    int64_t padding_idx; /* in [-V, V); negative counts from the end, as torch */
    float max_norm;      /* > 0: each row looked up whose 2-norm exceeds it is first scaled in
                          * place to max_norm / (norm + 1e-7) of itself (torch's max_norm, under
                          * no_grad, so the weight changes); 0: none */
} nb_embedding_opts;

/* torch.nn.functional.embedding: out[..., :] = weight[ids[...], :], shape ids.shape + [E].
 * weight [V, E] float32; ids int32 of any shape (0-d included).  The gradient of weight is
 * accumulated only into the rows used (index_add: a repeated id adds up), and the padding row
 * (when opts->padding) gets none.  opts may be NULL.  NULL with NB_ERR_ARG for an id outside
 * [0, V) ("embedding: id 12 at [1,3] is out of range for 10 embeddings") or a padding_idx
 * outside [-V, V) or a negative max_norm, NB_ERR_DTYPE for ids that are not int32 or a weight that is not float32,
 * NB_ERR_SHAPE for a weight that is not 2-D, NB_ERR_NULL for NULL or dead inputs. */
NB_API nb_tensor *nb_embedding(nb_tensor *ids, nb_tensor *weight, const nb_embedding_opts *opts);
/* An Embedding module: parameter "weight" [V, E] drawn from N(0, 1) with the padding row
 * zeroed (torch's reset_parameters); its forward is nb_embedding on int32 ids.  NB_ERR_ARG for
 * sizes < 1 or a padding_idx outside [-V, V). */
NB_API nb_module *nb_embedding_new(int64_t num_embeddings, int64_t embedding_dim,
                                   nb_embedding_opts opts);

/* ---------------------------------------------------------------- recurrent layers */

typedef enum {
    NB_RNN_TANH, /* torch.nn.RNN (nonlinearity='tanh'):  h' = tanh(W_ih x + b_ih + W_hh h + b_hh) */
    NB_RNN_RELU, /* torch.nn.RNN (nonlinearity='relu'):  the same with relu */
    NB_RNN_LSTM, /* torch.nn.LSTM, gates i, f, g, o (4H rows of each weight, in that order) */
    NB_RNN_GRU,  /* torch.nn.GRU, gates r, z, n (3H rows) */
    NB_RNN_MODE_COUNT
} nb_rnn_mode;

/* torch.nn.RNN/LSTM/GRU's options; zero-initialised means torch's defaults. */
typedef struct {
    int num_layers;     /* 0 means 1 */
    bool no_bias;       /* torch's bias=False */
    bool batch_first;   /* input and output [B, T, *] instead of [T, B, *] (states stay [L*D, B, H]) */
    float dropout;      /* in [0, 1): dropout on each layer's output but the last, in training */
    bool bidirectional;
} nb_rnn_opts;

/* An RNN, LSTM or GRU module (torch's class name: "RNN", "LSTM", "GRU").  Parameters, in
 * torch's order and names, for each layer k and direction (suffix "_reverse" for the second):
 * weight_ih_l{k} [G*H, I for k = 0 else D*H], weight_hh_l{k} [G*H, H], bias_ih_l{k} [G*H],
 * bias_hh_l{k} [G*H], G = 1, 4, 3 for RNN, LSTM, GRU; all drawn from U(-1/sqrt(H), 1/sqrt(H)).
 * NB_ERR_ARG for sizes < 1, num_layers < 0, a dropout outside [0, 1), or a mode out of range. */
NB_API nb_module *nb_rnn_new(nb_rnn_mode mode, int64_t input_size, int64_t hidden_size,
                             nb_rnn_opts opts);

/* What a recurrent layer takes beside its input; zero-initialised: zero states, full lengths. */
typedef struct {
    nb_tensor *h0;          /* [L*D, B, H] initial hidden states (layer-major, direction-minor), or NULL: zeros */
    nb_tensor *c0;          /* [L*D, B, H] initial cell states (LSTM only), or NULL: zeros */
    const int64_t *lengths; /* B lengths in [1, T] in any order (pack_padded_sequence with
                             * enforce_sorted=False), or NULL: every sequence has T steps */
} nb_rnn_inputs;

/* Runs m (from nb_rnn_new) on x [T, B, I] ([B, T, I] with batch_first; [T, I] for one
 * unbatched sequence, whose results lose the B dim).  Writes output [T, B, D*H] (the last
 * layer's hidden states, both directions concatenated; [B, T, D*H] with batch_first), h_n
 * [L*D, B, H] and, for an LSTM, c_n [L*D, B, H]; any of the three may be NULL when not wanted.
 * With lengths, the outputs past a sequence's length are zero, its final states are those of
 * its last valid step, and the reverse direction starts at its own last step.  Gradients reach
 * x, the parameters, h0 and c0.  On failure every result is NULL: NB_ERR_SHAPE for an input
 * whose last dim is not I or of the wrong rank, states of the wrong shape; NB_ERR_ARG for a
 * length outside [1, T], c0 given to a layer that is not an LSTM, m not a recurrent layer;
 * NB_ERR_NULL for NULL or dead tensors.  nb_module_forward(m, x) returns output alone. */
NB_API nb_status nb_rnn_forward(nb_module *m, nb_tensor *x, const nb_rnn_inputs *in,
                                nb_tensor **output, nb_tensor **h_n, nb_tensor **c_n);

/* ---------------------------------------------------------------- cells */

/* An RNNCell, LSTMCell or GRUCell (torch's names): parameters weight_ih [G*H, I],
 * weight_hh [G*H, H], bias_ih and bias_hh [G*H] (none with bias false), U(-1/sqrt(H),
 * 1/sqrt(H)).  Errors as nb_rnn_new. */
NB_API nb_module *nb_rnn_cell_new(nb_rnn_mode mode, int64_t input_size, int64_t hidden_size,
                                  bool bias);
/* One step: x [B, I] (or [I]), h and c [B, H] (or [H]; NULL: zeros; c only for an LSTM cell)
 * to h_out (and, for an LSTM cell, c_out; may be NULL).  Errors as nb_rnn_forward. */
NB_API nb_status nb_rnn_cell_forward(nb_module *m, nb_tensor *x, nb_tensor *h, nb_tensor *c,
                                     nb_tensor **h_out, nb_tensor **c_out);

#ifdef __cplusplus
}
#endif

#endif
