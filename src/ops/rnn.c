/*
 * rnn.c — the fused recurrent layer-directions: rnn_tanh_layer, rnn_relu_layer, lstm_layer and
 * gru_layer each run all T steps of one direction of one layer as one node (backend rnn_layer,
 * the formulas at the top of backend/cpu/rnn.c), where the layer written with ops
 * (nn/recurrent.c) records some ten to twenty nodes per step.  Inputs:
 *   xp [T, B, G H]  every step's input projection x W_ih^T + b_ih (one GEMM, made by the
 *                   caller); G = 1 (RNN), 4 (LSTM, gates [i f g o]), 3 (GRU, gates [r z n])
 *   w_hh [G H, H];  b_hh [G H] (zeros for a layer without bias);  s0 [S, B, H]: h0 (then c0
 *                   for an LSTM, S = 2)
 *   mask [T, B], optional: 0 where a row skips the step (its output 0, its states kept), as
 *                   torch's packed sequences; it takes no gradient
 *   result [T + S, B, H]: each step's h, then h_n (and c_n): views of it are the layer's output
 *                   and final states
 * keepdim in the arguments runs the steps from T-1 down to 0 (the reverse direction).
 *
 * What the backward needs beside w_hh is the reserve [T, B, R H] (nb__rnn_reserve: the states
 * entering each step and the gates' activations): the forward allocates it in the same storage
 * right after the result, which is a view of the first (T + S) B H elements, so the node keeps
 * it alive without a second tensor (as attention keeps its log-sum-exp).
 *
 * The create_graph backward writes the same formulas with ops (recomputing the forward with
 * ops), so a second derivative through the layer works as through the composite path.
 */
#include "op.h"

_Static_assert(NB_OP_RNN_RELU_LAYER == NB_OP_RNN_TANH_LAYER + NB_RNN_RELU &&
                   NB_OP_LSTM_LAYER == NB_OP_RNN_TANH_LAYER + NB_RNN_LSTM &&
                   NB_OP_GRU_LAYER == NB_OP_RNN_TANH_LAYER + NB_RNN_GRU,
               "the recurrent rows follow nb_rnn_mode's order");

static nb_rnn_mode cell_of(nb_op_id op) { return (nb_rnn_mode)(op - NB_OP_RNN_TANH_LAYER); }

static nb_rnn_geom geom_of(nb_op_id op, nb_tensor *const *in, const nb_op_args *a) {
    return (nb_rnn_geom){.steps = in[0]->shape[0], .batch = in[0]->shape[1],
                         .hidden = in[1]->shape[1], .cell = cell_of(op), .reverse = a->keepdim};
}

static nb_status check_shapes(nb_op_id op, nb_tensor *const *in, int n) {
    const char *name = nb__ops[op].name;
    if (n != 4 && n != 5)
        return nb__fail_status(NB_ERR_ARG, "%s: takes xp, w_hh, b_hh, s0 and an optional mask, "
                               "got %d inputs", name, n);
    const nb_tensor *xp = in[0], *w = in[1], *b = in[2], *s0 = in[3], *m = n == 5 ? in[4] : NULL;
    int64_t gates = nb__rnn_gates(cell_of(op)), h = w->ndim == 2 ? w->shape[1] : 0;
    bool ok = xp->ndim == 3 && w->ndim == 2 && b->ndim == 1 && s0->ndim == 3 &&
              w->shape[0] == gates * h && xp->shape[2] == w->shape[0] && b->shape[0] == w->shape[0] &&
              s0->shape[0] == nb__rnn_states(cell_of(op)) && s0->shape[1] == xp->shape[1] &&
              s0->shape[2] == h && xp->shape[0] >= 1 && xp->shape[1] >= 1 && h >= 1 &&
              (!m || (m->ndim == 2 && m->shape[0] == xp->shape[0] && m->shape[1] == xp->shape[1]));
    if (ok) return NB_OK;
    char mask[16 * NB_MAX_DIMS + 16] = ""; /* NB_SHP keeps four shapes at a time */
    if (m) snprintf(mask, sizeof mask, ", mask %s", NB_SHP(m));
    return nb__fail_status(NB_ERR_SHAPE, "%s: xp %s, w_hh %s, b_hh %s, s0 %s%s do not agree (want "
                           "[T, B, %lldH], [%lldH, H], [%lldH], [%lld, B, H], mask [T, B])", name,
                           NB_SHP(xp), NB_SHP(w), NB_SHP(b), NB_SHP(s0), mask,
                           (long long)gates, (long long)gates,
                           (long long)gates, (long long)nb__rnn_states(cell_of(op)));
}

/* The contiguous versions of the inputs (n of them), or false; release_contig frees copies. */
static bool contig_all(nb_tensor *const *in, nb_tensor **c, int n) {
    for (int i = 0; i < n; i++) c[i] = NULL;
    for (int i = 0; i < n; i++)
        if (!(c[i] = nb__contig(in[i]))) return false;
    return true;
}

static void release_contig(nb_tensor *const *in, nb_tensor **c, int n) {
    for (int i = 0; i < n; i++)
        if (c[i] && c[i] != in[i]) nb_tensor_free(c[i]);
}

nb_tensor *nb__fwd_rnn(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *a) {
    if (check_shapes(op, in, n) != NB_OK) return NULL;
    nb_tensor *c[5], *out = NULL;
    if (!contig_all(in, c, n)) goto out_free_inputs;
    nb_rnn_geom g = geom_of(op, in, a);
    g.mask = n == 5 ? nb__f32(c[4]) : NULL;
    int64_t shape[3] = {g.steps + nb__rnn_states(g.cell), g.batch, g.hidden}, stride[3];
    int64_t total = nb__numel(3, shape) + nb__rnn_reserve(g.cell) * g.steps * g.batch * g.hidden;
    nb_tensor *block = nb__new(NB_F32, 1, &total); /* the result, then the reserve */
    if (!block) goto out_free_inputs;
    nb__contiguous_strides(3, shape, stride);
    out = nb__view(block, 3, shape, stride, 0);
    nb_tensor_free(block);
    if (out)
        nb__be(c[0])->rnn_layer(nb__f32(out), nb__f32(out) + nb__numel(3, shape), nb__f32(c[0]),
                                nb__f32(c[1]), nb__f32(c[2]), nb__f32(c[3]), &g);
out_free_inputs:
    release_contig(in, c, n);
    return out;
}

/* ---- create_graph: the backward with ops */

#define TMP(x) nb__tmp(tmp, (x))

/* Row t of a [N, B, W] tensor as [B, W]. */
static nb_tensor *row(nb__temps *tmp, nb_tensor *x, int64_t t) {
    return TMP(nb_reshape(TMP(nb_slice(x, 0, t, t + 1, 1)), 2, x->shape + 1));
}

/* Row t of the mask [T, B] as [B, 1]. */
static nb_tensor *mask_row(nb__temps *tmp, nb_tensor *mask, int64_t t) {
    return TMP(nb_reshape(TMP(nb_slice(mask, 0, t, t + 1, 1)), 2, (int64_t[]){mask->shape[1], 1}));
}

/* Gate k ([B, H], a view) of a [B, G H] tensor. */
static nb_tensor *gate(nb__temps *tmp, nb_tensor *all, int k, int64_t h) {
    return TMP(nb_slice(all, 1, k * h, (k + 1) * h, 1));
}

static nb_tensor *one_minus(nb__temps *tmp, nb_tensor *x) {
    return TMP(nb_add_scalar(TMP(nb_neg(x)), 1.0f));
}

/* What the backward of one step keeps from its forward: the entering states, the step's mask
 * row (NULL: all valid), the gates' activations, tanh(c') (LSTM), hp_n (GRU), h' (RNN). */
typedef struct {
    nb_tensor *h, *c, *m, *gate[4], *tc, *hn, *out;
} step_saved;

/* One step by ops from h and c: saves into sv, returns h' and sets *c_next (an LSTM's). */
static nb_tensor *step_by_ops(nb__temps *tmp, nb_rnn_mode cell, nb_tensor *xp_t, nb_tensor *w,
                              nb_tensor *b, int64_t hs, step_saved *sv, nb_tensor **c_next) {
    nb_tensor *hp = TMP(nb_add(TMP(nb_matmul(sv->h, TMP(nb_transpose(w, 0, 1)))), b));
    nb_tensor **gt = sv->gate;
    if (cell == NB_RNN_TANH || cell == NB_RNN_RELU) {
        nb_tensor *pre = TMP(nb_add(xp_t, hp));
        return sv->out = TMP(cell == NB_RNN_TANH ? nb_tanh(pre) : nb_relu(pre));
    }
    if (cell == NB_RNN_LSTM) {
        nb_tensor *a = TMP(nb_add(xp_t, hp));
        for (int k = 0; k < 4; k++)
            gt[k] = TMP(k == 2 ? nb_tanh(gate(tmp, a, k, hs)) : nb_sigmoid(gate(tmp, a, k, hs)));
        *c_next = TMP(nb_add(TMP(nb_mul(gt[1], sv->c)), TMP(nb_mul(gt[0], gt[2]))));
        sv->tc = TMP(nb_tanh(*c_next));
        return TMP(nb_mul(gt[3], sv->tc));
    }
    for (int k = 0; k < 2; k++)
        gt[k] = TMP(nb_sigmoid(TMP(nb_add(gate(tmp, xp_t, k, hs), gate(tmp, hp, k, hs)))));
    sv->hn = gate(tmp, hp, 2, hs);
    gt[2] = TMP(nb_tanh(TMP(nb_add(gate(tmp, xp_t, 2, hs), TMP(nb_mul(gt[0], sv->hn))))));
    return TMP(nb_add(TMP(nb_mul(TMP(nb_sub(sv->h, gt[2])), gt[1])), gt[2]));
}

/* The step's gradients (backend/cpu/rnn.c's formulas) from dh, the gradient of h' (dy_t
 * included): returns da, that of the gates' pre-activations (= dxp_t), sets *dp to that of
 * hp, *direct to the part of dh's new value that does not go through hp (NULL: none) and
 * updates *dc (an LSTM's) to the gradient of the entering c. */
static nb_tensor *step_grad(nb__temps *tmp, nb_rnn_mode cell, const step_saved *sv,
                            nb_tensor *dh, nb_tensor **dc, nb_tensor **dp, nb_tensor **direct) {
    nb_tensor *const *g = sv->gate;
    *direct = NULL;
    if (cell == NB_RNN_TANH)
        return *dp = TMP(nb_mul(dh, one_minus(tmp, TMP(nb_mul(sv->out, sv->out)))));
    if (cell == NB_RNN_RELU)
        return *dp = TMP(nb_mul(dh, TMP(nb_gt(sv->out, TMP(nb_full(0, NULL, 0.0f))))));
    if (cell == NB_RNN_LSTM) {
        nb_tensor *d = TMP(nb_add(*dc, TMP(nb_mul(TMP(nb_mul(dh, g[3])),
                                                  one_minus(tmp, TMP(nb_mul(sv->tc, sv->tc)))))));
        nb_tensor *da[4] = {
            TMP(nb_mul(TMP(nb_mul(d, g[2])), TMP(nb_mul(g[0], one_minus(tmp, g[0]))))),
            TMP(nb_mul(TMP(nb_mul(d, sv->c)), TMP(nb_mul(g[1], one_minus(tmp, g[1]))))),
            TMP(nb_mul(TMP(nb_mul(d, g[0])), one_minus(tmp, TMP(nb_mul(g[2], g[2]))))),
            TMP(nb_mul(TMP(nb_mul(dh, sv->tc)), TMP(nb_mul(g[3], one_minus(tmp, g[3]))))),
        };
        *dc = TMP(nb_mul(d, g[1]));
        return *dp = TMP(nb_concat(4, da, 1));
    }
    nb_tensor *dn = TMP(nb_mul(TMP(nb_mul(dh, one_minus(tmp, g[1]))),
                               one_minus(tmp, TMP(nb_mul(g[2], g[2])))));
    nb_tensor *dr = TMP(nb_mul(TMP(nb_mul(dn, sv->hn)), TMP(nb_mul(g[0], one_minus(tmp, g[0])))));
    nb_tensor *dz = TMP(nb_mul(TMP(nb_mul(dh, TMP(nb_sub(sv->h, g[2])))),
                               TMP(nb_mul(g[1], one_minus(tmp, g[1])))));
    *direct = TMP(nb_mul(dh, g[1]));
    *dp = TMP(nb_concat(3, (nb_tensor *[]){dr, dz, TMP(nb_mul(dn, g[0]))}, 1));
    return TMP(nb_concat(3, (nb_tensor *[]){dr, dz, dn}, 1));
}

/* The masked choice: where(m, a, b), or a without a mask. */
static nb_tensor *pick(nb__temps *tmp, nb_tensor *m, nb_tensor *a, nb_tensor *b) {
    return m ? TMP(nb_where(m, a, b)) : a;
}

/* The forward with ops, saving each step into saved[t]. */
static bool forward_by_ops(nb__temps *tmp, const nb_node *node, step_saved *saved) {
    nb_tensor *const *in = node->in;
    nb_rnn_geom geo = geom_of(node->op, in, &node->args);
    bool lstm = geo.cell == NB_RNN_LSTM;
    nb_tensor *h = row(tmp, in[3], 0), *c = lstm ? row(tmp, in[3], 1) : NULL;
    for (int64_t k = 0; k < geo.steps && h; k++) {
        int64_t t = geo.reverse ? geo.steps - 1 - k : k;
        step_saved *sv = &saved[t];
        *sv = (step_saved){.h = h, .c = c, .m = node->n_in == 5 ? mask_row(tmp, in[4], t) : NULL};
        nb_tensor *c2 = NULL, *h2 = step_by_ops(tmp, geo.cell, row(tmp, in[0], t), in[1], in[2],
                                                geo.hidden, sv, &c2);
        h = h2 ? pick(tmp, sv->m, h2, h) : NULL;
        if (lstm) c = c2 ? pick(tmp, sv->m, c2, c) : NULL;
        if (lstm && !c) return false;
    }
    return h != NULL;
}

/* The backward through time with ops; saved [T] and da [T] are host arrays. */
static bool bptt_by_ops(nb__temps *tmp, const nb_node *node, nb_tensor *g, step_saved *saved,
                        nb_tensor **da, nb_tensor **grads) {
    if (!forward_by_ops(tmp, node, saved)) return false;
    nb_tensor *w = node->in[1];
    nb_rnn_geom geo = geom_of(node->op, node->in, &node->args);
    bool lstm = geo.cell == NB_RNN_LSTM;
    nb_tensor *dh = row(tmp, g, geo.steps), *dc = lstm ? row(tmp, g, geo.steps + 1) : NULL;
    nb_tensor *dw = NULL, *db = NULL;
    const int rows_dim = 0;
    for (int64_t k = geo.steps - 1; k >= 0 && dh && (!lstm || dc); k--) {
        int64_t t = geo.reverse ? geo.steps - 1 - k : k;
        const step_saved *sv = &saved[t];
        nb_tensor *dy = row(tmp, g, t), *dcv = dc, *dp = NULL, *direct = NULL;
        if (sv->m) dy = TMP(nb_mul(dy, sv->m)); /* a skipped step's output is a constant 0 */
        da[t] = step_grad(tmp, geo.cell, sv, TMP(nb_add(dh, dy)), &dcv, &dp, &direct);
        if (sv->m && da[t]) {
            bool same = dp == da[t];
            da[t] = TMP(nb_mul(da[t], sv->m));
            dp = same ? da[t] : TMP(nb_mul(dp, sv->m));
        }
        if (!da[t] || !dp) return false;
        nb_tensor *dh2 = TMP(nb_matmul(dp, w));
        if (direct) dh2 = TMP(nb_add(dh2, direct));
        dh = pick(tmp, sv->m, dh2, dh);
        if (lstm) dc = pick(tmp, sv->m, dcv, dc);
        nb_tensor *dw_t = TMP(nb_matmul(TMP(nb_transpose(dp, 0, 1)), sv->h));
        nb_tensor *db_t = TMP(nb_sum_dims(dp, 1, &rows_dim, false));
        dw = dw ? TMP(nb_add(dw, dw_t)) : dw_t;
        db = db ? TMP(nb_add(db, db_t)) : db_t;
    }
    grads[0] = TMP(nb_stack((int)geo.steps, da, 0));
    grads[1] = dw;
    grads[2] = db;
    grads[3] = lstm ? TMP(nb_stack(2, (nb_tensor *[]){dh, dc}, 0)) : TMP(nb_unsqueeze(dh, 0));
    return grads[0] && grads[1] && grads[2] && grads[3];
}

static nb_status backward_by_ops(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb__temps temps = {0}, *tmp = &temps;
    int64_t steps = node->in[0]->shape[0];
    nb_arena *home = nb__current_arena();
    size_t size = (sizeof(step_saved) + sizeof(nb_tensor *)) * (size_t)steps;
    step_saved *saved = nb__home_alloc(home, size);
    nb_tensor *grads[4] = {NULL, NULL, NULL, NULL};
    bool ok = saved && bptt_by_ops(tmp, node, g, saved, (nb_tensor **)(saved + steps), grads);
    if (saved) nb__home_free(home, saved, size);
    for (int i = 0; i < 4 && ok; i++)
        if (nb__needs_grad(node, i)) din[i] = nb__temps_end(&(nb__temps){0}, grads[i]);
    nb__temps_end(tmp, NULL);
    return ok ? NB_OK : nb_error_code();
}

/* The mask (input 4) takes no gradient, as where's condition. */
nb_status nb__bwd_rnn(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    if (nb_is_grad_enabled()) return backward_by_ops(node, g, din);
    int n = node->n_in;
    nb_rnn_geom geo = geom_of(node->op, node->in, &node->args);
    nb_tensor *c[5], *dy = NULL, *grads[4] = {NULL, NULL, NULL, NULL}, *work = NULL;
    bool ok = contig_all(node->in, c, n) && (dy = nb__contig(g)) != NULL;
    for (int i = 0; i < 4 && ok; i++) ok = (grads[i] = nb__new_like(node->in[i])) != NULL;
    if (ok && geo.cell == NB_RNN_GRU) ok = (work = nb__new_like(node->in[0])) != NULL;
    if (ok) {
        geo.mask = n == 5 ? nb__f32(c[4]) : NULL;
        const nb_tensor *o = node->out;
        nb__be(c[0])->rnn_layer_backward(nb__f32(grads[0]), nb__f32(grads[1]), nb__f32(grads[2]),
                                         nb__f32(grads[3]), work ? nb__f32(work) : NULL,
                                         nb__f32(c[1]), nb__f32(o) + nb__numel(3, o->shape),
                                         nb__f32(dy), &geo);
        for (int i = 0; i < 4; i++)
            if (nb__needs_grad(node, i)) din[i] = grads[i], grads[i] = NULL;
    }
    for (int i = 0; i < 4; i++) nb_tensor_free(grads[i]);
    nb_tensor_free(work);
    if (dy && dy != g) nb_tensor_free(dy);
    release_contig(node->in, c, n);
    return ok ? NB_OK : nb_error_code();
}
