/*
 * recurrent.c — RNN (tanh, relu), LSTM and GRU layers and their cells, as torch.nn has them,
 * with gradients of inputs, weights and initial states, to any order: the layers' directions
 * as fused nodes, the cells (and the layers' composite path) written with ops.
 *
 * Shapes: T steps, B batch, I input size, H hidden size, G gates (1 RNN, 4 LSTM, 3 GRU), L
 * layers, D directions.  A cell step (torch's aten/src/ATen/native/RNN.cpp cells, in the same
 * order of operations), with xp = x W_ih^T + b_ih [B, G H] and hp = h W_hh^T + b_hh:
 *   RNN:  h' = act(xp + hp)
 *   LSTM: [i f g o] = hp + xp;  c' = sig(f) c + sig(i) tanh(g);  h' = sig(o) tanh(c')
 *   GRU:  r = sig(hp_r + xp_r),  z = sig(hp_z + xp_z),  n = tanh(xp_n + r hp_n),
 *         h' = (h - n) z + n                       (= (1 - z) n + z h)
 * A layer computes xp for all T steps as one GEMM ([T B, I] x [I, G H]), then runs the steps,
 * each one GEMM (h W_hh^T) and the gates' elementwise ops.
 *
 * Variable lengths (pack_padded_sequence, enforce_sorted=False): at step t the sequences with
 * t >= length are masked (m_t [B, 1]): their output is zero, their states keep their previous
 * values (h = where(m, h', h)), so the final states are those of the last valid step and the
 * reverse direction, which runs t = T-1 .. 0, starts from h0 at each sequence's own last step.
 * Steps where every sequence is valid carry no mask; the fused path takes all of them as one
 * [T, B] mask (none when every length is T).
 *
 * Each direction of each layer runs as one fused node (ops rnn_tanh_layer, rnn_relu_layer,
 * lstm_layer, gru_layer in ops/rnn.c: all steps in one kernel call, masks included), unless
 * nb__rnn_fused is off (the tests turn it off to compare both paths); the cells take ops.
 *
 * Ownership: every tensor made goes into one nb__temps of the call (the composite rule,
 * core.h); the results are retained before the temps are dropped.
 */
#include "module.h"

#include "../ops/op.h"

#include <math.h>

#define TMP(x) nb__tmp(tmp, (x))

typedef struct {
    nb_rnn_mode mode;
    int64_t input_size, hidden_size;
    nb_rnn_opts opts; /* num_layers normalised to >= 1 */
} rnn_state;

/* The weights of one cell (a layer's direction, or a cell module); biases NULL without. */
typedef struct {
    nb_tensor *w_ih, *w_hh, *b_ih, *b_hh;
} cell_weights;

static int gates_of(nb_rnn_mode mode) {
    return mode == NB_RNN_LSTM ? 4 : mode == NB_RNN_GRU ? 3 : 1;
}

/* The cell weights starting at parameter `first` of m (w_ih, w_hh, then b_ih, b_hh if bias). */
static cell_weights weights_at(const nb_module *m, int first, bool bias) {
    const nb_module_entry *e = m->params.at + first;
    return (cell_weights){e[0].tensor, e[1].tensor, bias ? e[2].tensor : NULL,
                          bias ? e[3].tensor : NULL};
}

/* Gate k ([B, H], a view) of a [B, G H] tensor. */
static nb_tensor *gate(nb__temps *tmp, nb_tensor *all, int k, int64_t h) {
    return TMP(nb_slice(all, 1, k * h, (k + 1) * h, 1));
}

/* One step (the formulas above).  h_out, and c_out for an LSTM, are temps; false on failure. */
static bool cell_step(nb__temps *tmp, nb_rnn_mode mode, int64_t hs, nb_tensor *xp, nb_tensor *h,
                      nb_tensor *c, const cell_weights *w, nb_tensor **h_out, nb_tensor **c_out) {
    nb_tensor *hp = TMP(nb_linear(h, w->w_hh, w->b_hh));
    if (mode == NB_RNN_TANH || mode == NB_RNN_RELU) {
        nb_tensor *pre = TMP(nb_add(xp, hp));
        *h_out = TMP(mode == NB_RNN_TANH ? nb_tanh(pre) : nb_relu(pre));
    } else if (mode == NB_RNN_LSTM) {
        nb_tensor *gates = TMP(nb_add(hp, xp));
        nb_tensor *i = TMP(nb_sigmoid(gate(tmp, gates, 0, hs)));
        nb_tensor *f = TMP(nb_sigmoid(gate(tmp, gates, 1, hs)));
        nb_tensor *g = TMP(nb_tanh(gate(tmp, gates, 2, hs)));
        nb_tensor *o = TMP(nb_sigmoid(gate(tmp, gates, 3, hs)));
        *c_out = TMP(nb_add(TMP(nb_mul(f, c)), TMP(nb_mul(i, g))));
        *h_out = TMP(nb_mul(o, TMP(nb_tanh(*c_out))));
    } else {
        nb_tensor *r = TMP(nb_sigmoid(TMP(nb_add(gate(tmp, hp, 0, hs), gate(tmp, xp, 0, hs)))));
        nb_tensor *z = TMP(nb_sigmoid(TMP(nb_add(gate(tmp, hp, 1, hs), gate(tmp, xp, 1, hs)))));
        nb_tensor *rh = TMP(nb_mul(gate(tmp, hp, 2, hs), r));
        nb_tensor *n = TMP(nb_tanh(TMP(nb_add(gate(tmp, xp, 2, hs), rh))));
        *h_out = TMP(nb_add(TMP(nb_mul(TMP(nb_sub(h, n)), z)), n));
    }
    return *h_out && (mode != NB_RNN_LSTM || *c_out);
}

/* ---------------------------------------------------------------- layers */

static const char *const class_names[NB_RNN_MODE_COUNT] = {"RNN", "RNN", "LSTM", "GRU"};

static void rnn_describe(const nb_module *m, nb_attrs *d);
static nb_tensor *rnn_forward_output(nb_module *m, nb_tensor *x);

static const nb_module_class rnn_classes[NB_RNN_MODE_COUNT] = {
    [NB_RNN_TANH] = {.name = "RNN", .forward = rnn_forward_output, .describe = rnn_describe},
    [NB_RNN_RELU] = {.name = "RNN", .forward = rnn_forward_output, .describe = rnn_describe},
    [NB_RNN_LSTM] = {.name = "LSTM", .forward = rnn_forward_output, .describe = rnn_describe},
    [NB_RNN_GRU] = {.name = "GRU", .forward = rnn_forward_output, .describe = rnn_describe},
};

/* m's state when m is a recurrent layer, else NULL with NB_ERR_ARG. */
static bool one_of(const nb_module_class *cls, const nb_module_class *classes) {
    for (int i = 0; i < NB_RNN_MODE_COUNT; i++)
        if (cls == &classes[i]) return true;
    return false;
}

static rnn_state *layer_state(const nb_module *m) {
    const nb_module_class *cls = nb_module_class_of(m);
    if (one_of(cls, rnn_classes)) return NB__STATE(rnn_state, m);
    return nb__fail(NB_ERR_ARG, "rnn_forward: %s is not an RNN, LSTM or GRU",
                    cls ? cls->name : "NULL");
}

static const char *nonlinearity_name(nb_rnn_mode mode) {
    return mode == NB_RNN_RELU ? "relu" : "tanh";
}

/* torch's RNNBase.extra_repr: sizes, then what differs from the defaults. */
static void rnn_describe(const nb_module *m, nb_attrs *d) {
    const rnn_state *s = NB__STATE(rnn_state, m);
    nb_attrs_int(d, "input_size", s->input_size)->flags = NB_ATTR_POSITIONAL;
    nb_attrs_int(d, "hidden_size", s->hidden_size)->flags = NB_ATTR_POSITIONAL;
    nb_attrs_int(d, "num_layers", s->opts.num_layers)->flags = s->opts.num_layers == 1 ? NB_ATTR_NO_REPR : 0;
    nb_attrs_bool(d, "bias", !s->opts.no_bias)->flags = s->opts.no_bias ? 0 : NB_ATTR_NO_REPR;
    nb_attrs_bool(d, "batch_first", s->opts.batch_first)->flags = s->opts.batch_first ? 0 : NB_ATTR_NO_REPR;
    nb_attrs_float(d, "dropout", s->opts.dropout)->flags = s->opts.dropout != 0 ? 0 : NB_ATTR_NO_REPR;
    nb_attrs_bool(d, "bidirectional", s->opts.bidirectional)->flags =
        s->opts.bidirectional ? 0 : NB_ATTR_NO_REPR;
    if (s->mode == NB_RNN_TANH || s->mode == NB_RNN_RELU)
        nb_attrs_string(d, "nonlinearity", nonlinearity_name(s->mode))->flags = NB_ATTR_NO_REPR;
}

/* Adds the four (two without bias) parameters of a cell under names with the given suffix
 * ("_l0_reverse", or "" for a cell module), drawn from U(-1/sqrt(H), 1/sqrt(H)). */
static nb_status add_cell_params(nb_module *m, const char *suffix, int64_t rows, int64_t in,
                                 int64_t hs, bool bias) {
    static const char *const base[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    float bound = 1.0f / sqrtf((float)hs);
    for (int k = 0; k < (bias ? 4 : 2); k++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s", base[k], suffix);
        nb_tensor *p = k < 2 ? nb_module_add_param(m, name, NB_SHAPE(rows, k == 0 ? in : hs))
                             : nb_module_add_param(m, name, NB_SHAPE(rows));
        if (!p || nb_init_uniform(p, -bound, bound) != NB_OK) return nb_error_code();
    }
    return NB_OK;
}

static bool sizes_ok(const char *cls, nb_rnn_mode mode, int64_t input_size, int64_t hidden_size) {
    if ((unsigned)mode >= NB_RNN_MODE_COUNT)
        return nb__fail(NB_ERR_ARG, "%s: unknown mode %d", cls, (int)mode), false;
    if (input_size < 1 || hidden_size < 1)
        return nb__fail(NB_ERR_ARG, "%s: sizes must be positive, got input_size=%lld "
                        "hidden_size=%lld", cls, (long long)input_size, (long long)hidden_size), false;
    return true;
}

nb_module *nb_rnn_new(nb_rnn_mode mode, int64_t input_size, int64_t hidden_size, nb_rnn_opts opts) {
    const char *cls = (unsigned)mode < NB_RNN_MODE_COUNT ? class_names[mode] : "RNN";
    if (!sizes_ok(cls, mode, input_size, hidden_size)) return NULL;
    if (opts.num_layers < 0)
        return nb__fail(NB_ERR_ARG, "%s: num_layers must be positive, got %d", cls, opts.num_layers);
    if (!(opts.dropout >= 0.0f && opts.dropout < 1.0f))
        return nb__fail(NB_ERR_ARG, "%s: dropout should be a number in range [0, 1) representing "
                        "the probability of an element being zeroed, got %g", cls, opts.dropout);
    if (opts.num_layers == 0) opts.num_layers = 1;
    nb_module *m = nb_module_new(&rnn_classes[mode], sizeof(rnn_state));
    if (!m) return NULL;
    *NB__STATE(rnn_state, m) = (rnn_state){mode, input_size, hidden_size, opts};
    int dirs = opts.bidirectional ? 2 : 1;
    int64_t rows = gates_of(mode) * hidden_size;
    for (int k = 0; k < opts.num_layers; k++)
        for (int d = 0; d < dirs; d++) {
            char suffix[32];
            snprintf(suffix, sizeof suffix, "_l%d%s", k, d ? "_reverse" : "");
            if (add_cell_params(m, suffix, rows, k == 0 ? input_size : dirs * hidden_size,
                                hidden_size, !opts.no_bias) != NB_OK) {
                nb_module_free(m);
                return NULL;
            }
        }
    return m;
}

/* What one call of a layer works with: the sequence seen as [T, B, *], the masks of the steps
 * some sequence has ended before (NULL where all are valid), and the final states. */
typedef struct {
    const rnn_state *s;
    bool training;
    int64_t steps, batch;
    nb_tensor **masks;       /* [T] */
    nb_tensor *mask;         /* [T, B]: all the steps' masks, or NULL where all are valid */
    nb_tensor **outs;        /* [T]: one direction's outputs, step by step */
    nb_tensor **h_n, **c_n;  /* [L D] */
    nb_tensor *h0, *c0;      /* [L D, B, H] or NULL */
} run_ctx;

/* The initial state of cell `index` (a layer's direction): its slice of s0, or zeros. */
static nb_tensor *initial_state(nb__temps *tmp, const run_ctx *r, nb_tensor *s0, int index) {
    const int64_t shape[2] = {r->batch, r->s->hidden_size};
    if (!s0) return TMP(nb_zeros(2, shape));
    return TMP(nb_reshape(TMP(nb_slice(s0, 0, index, index + 1, 1)), 2, shape));
}

/* part holds steps lo .. hi-1 as rows of `batch`: each step's rows (a view) into steps[t],
 * through halves.  A slice's gradient is zeros of its base's shape with the slice written in,
 * so T slices of the whole would cost T whole-size gradients in backward; halving costs
 * 2 log2(T), each level's slices adding up to one whole. */
static bool split_steps(nb__temps *tmp, nb_tensor *part, int64_t lo, int64_t hi, int64_t batch,
                        nb_tensor **steps) {
    if (hi - lo == 1) return (steps[lo] = part) != NULL;
    int64_t mid = lo + (hi - lo) / 2;
    nb_tensor *a = TMP(nb_slice(part, 0, 0, (mid - lo) * batch, 1));
    nb_tensor *b = TMP(nb_slice(part, 0, (mid - lo) * batch, (hi - lo) * batch, 1));
    return a && b && split_steps(tmp, a, lo, mid, batch, steps) &&
           split_steps(tmp, b, mid, hi, batch, steps);
}

/* One direction of one layer over xp [T B, G H]: outputs into r->outs, final states into
 * r->h_n / r->c_n at index.  The steps' order is reversed for the reverse direction. */
static bool run_direction(nb__temps *tmp, run_ctx *r, nb_tensor *xp, const cell_weights *w,
                          int index, bool reverse) {
    nb_rnn_mode mode = r->s->mode;
    nb_tensor *h = initial_state(tmp, r, r->h0, index);
    nb_tensor *c = mode == NB_RNN_LSTM ? initial_state(tmp, r, r->c0, index) : NULL;
    nb_tensor **xp_steps = r->outs; /* each step's xp is read before its output is written */
    if (!split_steps(tmp, xp, 0, r->steps, r->batch, xp_steps)) return false;
    for (int64_t k = 0; k < r->steps && h; k++) {
        int64_t t = reverse ? r->steps - 1 - k : k;
        nb_tensor *xp_t = xp_steps[t], *h2 = NULL, *c2 = NULL;
        if (!cell_step(tmp, mode, r->s->hidden_size, xp_t, h, c, w, &h2, &c2)) return false;
        nb_tensor *m = r->masks[t];
        r->outs[t] = m ? TMP(nb_mul(h2, m)) : h2;
        h = m ? TMP(nb_where(m, h2, h)) : h2;
        if (c) c = m ? TMP(nb_where(m, c2, c)) : c2;
    }
    r->h_n[index] = h;
    if (r->c_n) r->c_n[index] = c;
    return h && (!r->c_n || c);
}

bool nb__rnn_fused = true;

/* One direction as one fused node (ops/rnn.c, the row of the layer's mode): its outputs
 * [T, B, H], final states into r->h_n / r->c_n at index. */
static nb_tensor *run_fused(nb__temps *tmp, run_ctx *r, nb_tensor *xp, const cell_weights *w,
                            int index, bool reverse) {
    nb_rnn_mode mode = r->s->mode;
    int64_t hs = r->s->hidden_size, gh = gates_of(mode) * hs;
    const int64_t shape[3] = {r->steps, r->batch, gh}, state[2] = {r->batch, hs};
    nb_tensor *states[2] = {initial_state(tmp, r, r->h0, index),
                            mode == NB_RNN_LSTM ? initial_state(tmp, r, r->c0, index) : NULL};
    nb_tensor *in[5] = {TMP(nb_reshape(xp, 3, shape)), w->w_hh,
                        w->b_hh ? w->b_hh : TMP(nb_zeros(1, &gh)),
                        TMP(nb_stack(mode == NB_RNN_LSTM ? 2 : 1, states, 0)), r->mask};
    if (!in[0] || !in[2] || !in[3]) return NULL;
    nb_op_id op = (nb_op_id)(NB_OP_RNN_TANH_LAYER + mode);
    nb_tensor *y = TMP(nb__apply(op, r->mask ? 5 : 4, in, &(nb_op_args){.keepdim = reverse}));
    if (!y) return NULL;
    r->h_n[index] = TMP(nb_reshape(TMP(nb_slice(y, 0, r->steps, r->steps + 1, 1)), 2, state));
    if (mode == NB_RNN_LSTM)
        r->c_n[index] = TMP(nb_reshape(TMP(nb_slice(y, 0, r->steps + 1, r->steps + 2, 1)), 2, state));
    nb_tensor *out = TMP(nb_slice(y, 0, 0, r->steps, 1));
    return r->h_n[index] && (mode != NB_RNN_LSTM || r->c_n[index]) ? out : NULL;
}

/* Inverted dropout between layers (torch applies it to every layer's output but the last). */
static nb_tensor *dropout(nb__temps *tmp, nb_tensor *x, float p) {
    nb_tensor *keep = TMP(nb_full(x->ndim, x->shape, 1.0f - p));
    nb_tensor *mask = TMP(nb_mul_scalar(TMP(nb_bernoulli(keep)), 1.0f / (1.0f - p)));
    return TMP(nb_mul(x, mask));
}

/* Layer k on input [T, B, *]: its output [T, B, D H]. */
static nb_tensor *run_layer(nb__temps *tmp, run_ctx *r, const nb_module *m, nb_tensor *input, int k) {
    const rnn_state *s = r->s;
    int dirs = s->opts.bidirectional ? 2 : 1, per = s->opts.no_bias ? 2 : 4;
    int64_t flat[2] = {r->steps * r->batch, input->shape[2]};
    nb_tensor *x2 = TMP(nb_reshape(input, 2, flat)), *dir_out[2] = {NULL, NULL};
    for (int d = 0; d < dirs && x2; d++) {
        int index = k * dirs + d;
        cell_weights w = weights_at(m, index * per, !s->opts.no_bias);
        nb_tensor *xp = TMP(nb_linear(x2, w.w_ih, w.b_ih)); /* all steps' input projection */
        if (!xp) return NULL;
        if (nb__rnn_fused)
            dir_out[d] = run_fused(tmp, r, xp, &w, index, d == 1);
        else if (run_direction(tmp, r, xp, &w, index, d == 1))
            dir_out[d] = TMP(nb_stack((int)r->steps, r->outs, 0));
        if (!dir_out[d]) return NULL;
    }
    nb_tensor *out = dirs == 2 ? TMP(nb_concat(2, dir_out, 2)) : dir_out[0];
    bool drop = r->training && s->opts.dropout > 0 && k + 1 < s->opts.num_layers;
    return out && drop ? dropout(tmp, out, s->opts.dropout) : out;
}

/* The state s0 ([L D, B, H], or [L D, H] unbatched) as [L D, B, H]; name for messages. */
static nb_tensor *state_in(nb__temps *tmp, const char *cls, const char *name, nb_tensor *s0,
                           int64_t cells, int64_t batch, int64_t hs, bool unbatched, bool *ok) {
    if (!s0) return NULL;
    if (!nb__alive(s0)) return *ok = false, nb__fail_input(cls, s0);
    bool fits = unbatched ? s0->ndim == 2 && s0->shape[0] == cells && s0->shape[1] == hs
                          : s0->ndim == 3 && s0->shape[0] == cells && s0->shape[1] == batch &&
                                s0->shape[2] == hs;
    if (!fits) {
        *ok = false;
        const int64_t want[3] = {cells, batch, hs}, want_unbatched[2] = {cells, hs};
        return nb__fail(NB_ERR_SHAPE, "%s: expected %s of shape %s, got %s", cls, name,
                        unbatched ? nb__shape_str(2, want_unbatched) : nb__shape_str(3, want),
                        NB_SHP(s0));
    }
    return unbatched ? TMP(nb_unsqueeze(s0, 1)) : s0;
}

/* The masks of the steps past some sequence's end ([B, 1] floats, 1 where t < length) and all
 * steps' mask [T, B] (the fused path's), each length checked to lie in [1, T]. */
static bool make_masks(nb__temps *tmp, run_ctx *r, const char *cls, const int64_t *lengths) {
    for (int64_t t = 0; t < r->steps; t++) r->masks[t] = NULL;
    if (!lengths) return true;
    int64_t shortest = r->steps;
    for (int64_t b = 0; b < r->batch; b++) {
        if (lengths[b] < 1 || lengths[b] > r->steps)
            return nb__fail(NB_ERR_ARG, "%s: lengths[%lld] = %lld is outside [1, %lld] (the "
                            "sequence length)", cls, (long long)b, (long long)lengths[b],
                            (long long)r->steps), false;
        if (lengths[b] < shortest) shortest = lengths[b];
    }
    if (shortest == r->steps) return true;
    nb_arena *home = nb__current_arena();
    size_t bytes = sizeof(float) * (size_t)(r->steps * r->batch);
    float *v = nb__home_alloc(home, bytes);
    if (!v) return false;
    for (int64_t t = 0; t < r->steps; t++)
        for (int64_t b = 0; b < r->batch; b++) v[t * r->batch + b] = t < lengths[b];
    r->mask = TMP(nb_from_data(v, 2, (const int64_t[]){r->steps, r->batch}));
    for (int64_t t = shortest; t < r->steps && r->mask; t++)
        if (!(r->masks[t] = TMP(nb_from_data(v + t * r->batch, 2, (const int64_t[]){r->batch, 1})))) break;
    nb__home_free(home, v, bytes);
    return r->mask && r->masks[r->steps - 1];
}

/* Host arrays of one call: masks [T], outs [T], h_n and c_n [L D]. */
static size_t arrays_size(int64_t steps, int cells) {
    return sizeof(nb_tensor *) * (size_t)(2 * steps + 2 * cells);
}

/* The call's body once x is checked: seq is x as [T, B, I]. */
static bool run_layers(nb__temps *tmp, nb_module *m, run_ctx *r, nb_tensor *seq,
                       const nb_rnn_inputs *in, nb_tensor **results, bool unbatched) {
    const rnn_state *s = r->s;
    const char *cls = class_names[s->mode];
    int dirs = s->opts.bidirectional ? 2 : 1, cells = s->opts.num_layers * dirs;
    bool ok = true;
    r->h0 = state_in(tmp, cls, "hidden", in ? in->h0 : NULL, cells, r->batch, s->hidden_size, unbatched, &ok);
    if (!ok) return false;
    if (in && in->c0 && s->mode != NB_RNN_LSTM)
        return nb__fail(NB_ERR_ARG, "%s: c0 is for an LSTM only", cls), false;
    r->c0 = state_in(tmp, cls, "cell state", in ? in->c0 : NULL, cells, r->batch, s->hidden_size, unbatched, &ok);
    if (!ok || !make_masks(tmp, r, cls, in ? in->lengths : NULL)) return false;
    nb_tensor *out = seq;
    for (int k = 0; k < s->opts.num_layers && out; k++) out = run_layer(tmp, r, m, out, k);
    if (!out) return false;
    if (s->opts.batch_first) out = TMP(nb_transpose(out, 0, 1));
    results[0] = out;
    results[1] = TMP(nb_stack(cells, r->h_n, 0));
    results[2] = r->c_n ? TMP(nb_stack(cells, r->c_n, 0)) : NULL;
    for (int i = 0; i < 3 && unbatched; i++)
        if (results[i]) results[i] = TMP(nb_squeeze(results[i], s->opts.batch_first && i == 0 ? 0 : 1));
    return results[0] && results[1] && (!r->c_n || results[2]);
}

/* x as [T, B, I] (a view or x itself), after checking its rank and last size. */
static nb_tensor *sequence_of(nb__temps *tmp, const rnn_state *s, nb_tensor *x) {
    const char *cls = class_names[s->mode];
    if (x->ndim != 2 && x->ndim != 3)
        return nb__fail(NB_ERR_SHAPE, "%s: expected input of 2 or 3 dims ([T, I] unbatched or "
                        "[T, B, I]), got %s", cls, NB_SHP(x));
    if (x->shape[x->ndim - 1] != s->input_size)
        return nb__fail(NB_ERR_SHAPE, "%s: input.size(-1) must be equal to input_size. Expected "
                        "%lld, got %lld (input %s)", cls, (long long)s->input_size,
                        (long long)x->shape[x->ndim - 1], NB_SHP(x));
    if (x->shape[0] < 1 || (x->ndim == 3 && x->shape[1] < 1))
        return nb__fail(NB_ERR_SHAPE, "%s: empty input %s", cls, NB_SHP(x));
    if (x->ndim == 2) return TMP(nb_unsqueeze(x, 1));
    return s->opts.batch_first ? TMP(nb_transpose(x, 0, 1)) : x;
}

nb_status nb_rnn_forward(nb_module *m, nb_tensor *x, const nb_rnn_inputs *in, nb_tensor **output,
                         nb_tensor **h_n, nb_tensor **c_n) {
    nb_tensor **wanted[3] = {output, h_n, c_n};
    for (int i = 0; i < 3; i++)
        if (wanted[i]) *wanted[i] = NULL;
    const rnn_state *s = layer_state(m);
    if (!s) return nb_error_code();
    if (!nb__alive(x)) return nb__fail_input(class_names[s->mode], x), nb_error_code();
    nb__temps temps = {0}, *tmp = &temps;
    nb_tensor *seq = sequence_of(tmp, s, x), *results[3] = {NULL, NULL, NULL};
    int cells = s->opts.num_layers * (s->opts.bidirectional ? 2 : 1);
    int64_t steps = seq ? seq->shape[0] : 0;
    nb_arena *home = nb__current_arena();
    size_t size = arrays_size(steps, cells);
    nb_tensor **arrays = seq ? nb__home_alloc(home, size) : NULL;
    bool ok = false;
    if (arrays) {
        run_ctx r = {s, m->training, steps, seq->shape[1], arrays, NULL, arrays + steps,
                     arrays + 2 * steps, s->mode == NB_RNN_LSTM ? arrays + 2 * steps + cells : NULL,
                     NULL, NULL};
        ok = run_layers(tmp, m, &r, seq, in, results, x->ndim == 2);
        nb__home_free(home, arrays, size);
    }
    for (int i = 0; i < 3; i++)
        if (ok && wanted[i] && results[i]) nb__retain(*wanted[i] = results[i]);
    nb__temps_end(tmp, NULL);
    return ok ? NB_OK : nb_error_code();
}

static nb_tensor *rnn_forward_output(nb_module *m, nb_tensor *x) {
    nb_tensor *out = NULL;
    nb_rnn_forward(m, x, NULL, &out, NULL, NULL);
    return out;
}

/* ---------------------------------------------------------------- cells */

typedef struct {
    nb_rnn_mode mode;
    int64_t input_size, hidden_size;
    bool bias;
} cell_state;

static void cell_describe(const nb_module *m, nb_attrs *d);
static nb_tensor *cell_forward_h(nb_module *m, nb_tensor *x);

static const nb_module_class cell_classes[NB_RNN_MODE_COUNT] = {
    [NB_RNN_TANH] = {.name = "RNNCell", .forward = cell_forward_h, .describe = cell_describe},
    [NB_RNN_RELU] = {.name = "RNNCell", .forward = cell_forward_h, .describe = cell_describe},
    [NB_RNN_LSTM] = {.name = "LSTMCell", .forward = cell_forward_h, .describe = cell_describe},
    [NB_RNN_GRU] = {.name = "GRUCell", .forward = cell_forward_h, .describe = cell_describe},
};

/* torch's RNNCellBase.extra_repr. */
static void cell_describe(const nb_module *m, nb_attrs *d) {
    const cell_state *s = NB__STATE(cell_state, m);
    nb_attrs_int(d, "input_size", s->input_size)->flags = NB_ATTR_POSITIONAL;
    nb_attrs_int(d, "hidden_size", s->hidden_size)->flags = NB_ATTR_POSITIONAL;
    nb_attrs_bool(d, "bias", s->bias)->flags = s->bias ? NB_ATTR_NO_REPR : 0;
    if (s->mode == NB_RNN_TANH || s->mode == NB_RNN_RELU)
        nb_attrs_string(d, "nonlinearity", nonlinearity_name(s->mode))->flags =
            s->mode == NB_RNN_TANH ? NB_ATTR_NO_REPR : 0;
}

nb_module *nb_rnn_cell_new(nb_rnn_mode mode, int64_t input_size, int64_t hidden_size, bool bias) {
    const char *cls = (unsigned)mode < NB_RNN_MODE_COUNT ? cell_classes[mode].name : "RNNCell";
    if (!sizes_ok(cls, mode, input_size, hidden_size)) return NULL;
    nb_module *m = nb_module_new(&cell_classes[mode], sizeof(cell_state));
    if (!m) return NULL;
    *NB__STATE(cell_state, m) = (cell_state){mode, input_size, hidden_size, bias};
    if (add_cell_params(m, "", gates_of(mode) * hidden_size, input_size, hidden_size, bias) != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

/* A cell's state input: s0 [B, H] (as [B, H] for a batched x), or zeros when NULL. */
static nb_tensor *cell_state_in(nb__temps *tmp, const char *cls, const char *name, nb_tensor *s0,
                                const nb_tensor *x2, int64_t hs, bool unbatched, bool *ok) {
    int64_t batch = x2->shape[0];
    if (!s0) return TMP(nb_zeros(2, (const int64_t[]){batch, hs}));
    if (!nb__alive(s0)) return *ok = false, nb__fail_input(cls, s0);
    bool fits = unbatched ? s0->ndim == 1 && s0->shape[0] == hs
                          : s0->ndim == 2 && s0->shape[0] == batch && s0->shape[1] == hs;
    if (!fits) {
        *ok = false;
        return nb__fail(NB_ERR_SHAPE, "%s: %s %s does not fit input %s and hidden_size %lld "
                        "(want [%lld, %lld])", cls, name, NB_SHP(s0), NB_SHP(x2), (long long)hs,
                        (long long)batch, (long long)hs);
    }
    return unbatched ? TMP(nb_unsqueeze(s0, 0)) : s0;
}

nb_status nb_rnn_cell_forward(nb_module *m, nb_tensor *x, nb_tensor *h, nb_tensor *c,
                              nb_tensor **h_out, nb_tensor **c_out) {
    if (h_out) *h_out = NULL;
    if (c_out) *c_out = NULL;
    const nb_module_class *k = nb_module_class_of(m);
    if (!one_of(k, cell_classes))
        return nb__fail_status(NB_ERR_ARG, "rnn_cell_forward: %s is not an RNNCell, LSTMCell or "
                               "GRUCell", k ? k->name : "NULL");
    const cell_state *s = NB__STATE(cell_state, m);
    const char *cls = k->name;
    if (!nb__alive(x)) return nb__fail_input(cls, x), nb_error_code();
    if ((x->ndim != 1 && x->ndim != 2) || x->shape[x->ndim - 1] != s->input_size)
        return nb__fail_status(NB_ERR_SHAPE, "%s: input %s must be [B, %lld] or [%lld]", cls,
                               NB_SHP(x), (long long)s->input_size, (long long)s->input_size);
    if (c && s->mode != NB_RNN_LSTM)
        return nb__fail_status(NB_ERR_ARG, "%s: a cell state is for an LSTMCell only", cls);
    nb__temps temps = {0}, *tmp = &temps;
    bool unbatched = x->ndim == 1, ok = true;
    nb_tensor *x2 = unbatched ? TMP(nb_unsqueeze(x, 0)) : x, *h2 = NULL, *c2 = NULL;
    nb_tensor *h0 = x2 ? cell_state_in(tmp, cls, "hidden", h, x2, s->hidden_size, unbatched, &ok) : NULL;
    nb_tensor *c0 = ok && h0 && s->mode == NB_RNN_LSTM
                        ? cell_state_in(tmp, cls, "cell state", c, x2, s->hidden_size, unbatched, &ok)
                        : NULL;
    cell_weights w = weights_at(m, 0, s->bias);
    nb_tensor *xp = ok && h0 ? TMP(nb_linear(x2, w.w_ih, w.b_ih)) : NULL;
    ok = xp && (s->mode != NB_RNN_LSTM || c0) && cell_step(tmp, s->mode, s->hidden_size, xp, h0, c0, &w, &h2, &c2);
    if (ok && unbatched) {
        h2 = TMP(nb_squeeze(h2, 0));
        c2 = c2 ? TMP(nb_squeeze(c2, 0)) : NULL;
        ok = h2 && (s->mode != NB_RNN_LSTM || c2);
    }
    if (ok && h_out) nb__retain(*h_out = h2);
    if (ok && c_out && c2) nb__retain(*c_out = c2);
    nb__temps_end(tmp, NULL);
    return ok ? NB_OK : nb_error_code();
}

static nb_tensor *cell_forward_h(nb_module *m, nb_tensor *x) {
    nb_tensor *h = NULL;
    nb_rnn_cell_forward(m, x, NULL, NULL, &h, NULL);
    return h;
}
