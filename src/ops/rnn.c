/*
 * rnn.c — the fused LSTM layer-direction: lstm_layer(xp, w_hh, s0) runs all T steps of one
 * direction of one layer as one node (backend lstm, the formulas at the top of
 * backend/cpu/rnn.c), where the layer written with ops (nn/recurrent.c) records some twenty
 * nodes per step.
 *   xp [T, B, 4H]  every step's input projection x W_ih^T + b_ih + b_hh (one GEMM, made by
 *                  the caller), gates in torch's order [i f g o]
 *   w_hh [4H, H];  s0 [2, B, H]: h0 then c0
 *   result [T + 2, B, H]: each step's h, then h_n and c_n (views of it are the layer's output
 *                  and final states)
 * keepdim in the arguments runs the steps from T-1 down to 0 (the reverse direction).
 *
 * What the backward needs beside w_hh is the reserve [T, B, 7H] (the states entering each
 * step, c after it and the gates' activations): the forward allocates it in the same storage
 * right after the result, which is a view of the first (T + 2) B H elements, so the node keeps
 * it alive without a second tensor (as attention keeps its log-sum-exp).
 *
 * The create_graph backward writes the same formulas with ops (recomputing the forward with
 * ops), so a second derivative through the layer works as through the composite path.
 */
#include "op.h"

static nb_lstm_geom geom_of(nb_tensor *const *in, const nb_op_args *a) {
    return (nb_lstm_geom){.steps = in[0]->shape[0], .batch = in[0]->shape[1],
                          .hidden = in[1]->shape[1], .reverse = a->keepdim};
}

static nb_status check_shapes(nb_tensor *const *in) {
    const nb_tensor *xp = in[0], *w = in[1], *s0 = in[2];
    bool ok = xp->ndim == 3 && w->ndim == 2 && s0->ndim == 3 && w->shape[0] == 4 * w->shape[1] &&
              xp->shape[2] == w->shape[0] && s0->shape[0] == 2 && s0->shape[1] == xp->shape[1] &&
              s0->shape[2] == w->shape[1] && xp->shape[0] >= 1 && xp->shape[1] >= 1;
    if (ok) return NB_OK;
    return nb__fail_status(NB_ERR_SHAPE, "%s: xp %s, w_hh %s, s0 %s do not agree (want [T, B, 4H], "
                           "[4H, H], [2, B, H])", nb__ops[NB_OP_LSTM_LAYER].name, NB_SHP(xp),
                           NB_SHP(w), NB_SHP(s0));
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

nb_tensor *nb__fwd_lstm(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *a) {
    (void)op, (void)n;
    if (check_shapes(in) != NB_OK) return NULL;
    nb_tensor *c[3], *out = NULL;
    if (!contig_all(in, c, 3)) goto out_free_inputs;
    nb_lstm_geom g = geom_of(in, a);
    int64_t shape[3] = {g.steps + 2, g.batch, g.hidden}, stride[3];
    int64_t total = nb__numel(3, shape) + 7 * g.steps * g.batch * g.hidden;
    nb_tensor *block = nb__new(NB_F32, 1, &total); /* the result, then the reserve */
    if (!block) goto out_free_inputs;
    nb__contiguous_strides(3, shape, stride);
    out = nb__view(block, 3, shape, stride, 0);
    nb_tensor_free(block);
    if (out) nb__be(c[0])->lstm(nb__f32(out), nb__f32(out) + nb__numel(3, shape), nb__f32(c[0]),
                                nb__f32(c[1]), nb__f32(c[2]), &g);
out_free_inputs:
    release_contig(in, c, 3);
    return out;
}

/* ---- create_graph: the backward with ops */

#define TMP(x) nb__tmp(tmp, (x))

/* Row t of a [N, B, W] tensor as [B, W]. */
static nb_tensor *row(nb__temps *tmp, nb_tensor *x, int64_t t) {
    return TMP(nb_reshape(TMP(nb_slice(x, 0, t, t + 1, 1)), 2, x->shape + 1));
}

static nb_tensor *one_minus(nb__temps *tmp, nb_tensor *x) {
    return TMP(nb_add_scalar(TMP(nb_neg(x)), 1.0f));
}

/* What the backward of one step keeps from its forward. */
typedef struct {
    nb_tensor *h, *c, *i, *f, *g, *o, *tc; /* entering states, gates, tanh(c') */
} step_saved;

/* One step by ops from h and c: saves into sv, returns h' and sets *c_next. */
static nb_tensor *step_by_ops(nb__temps *tmp, nb_tensor *xp_t, nb_tensor *w, nb_tensor *h,
                              nb_tensor *c, int64_t hs, step_saved *sv, nb_tensor **c_next) {
    nb_tensor *a = TMP(nb_add(xp_t, TMP(nb_matmul(h, TMP(nb_transpose(w, 0, 1))))));
    *sv = (step_saved){.h = h, .c = c};
    sv->i = TMP(nb_sigmoid(TMP(nb_slice(a, 1, 0, hs, 1))));
    sv->f = TMP(nb_sigmoid(TMP(nb_slice(a, 1, hs, 2 * hs, 1))));
    sv->g = TMP(nb_tanh(TMP(nb_slice(a, 1, 2 * hs, 3 * hs, 1))));
    sv->o = TMP(nb_sigmoid(TMP(nb_slice(a, 1, 3 * hs, 4 * hs, 1))));
    *c_next = TMP(nb_add(TMP(nb_mul(sv->f, c)), TMP(nb_mul(sv->i, sv->g))));
    sv->tc = TMP(nb_tanh(*c_next));
    return TMP(nb_mul(sv->o, sv->tc));
}

/* The gradient of the step's gates' pre-activations [B, 4H], updating *dc to that of c. */
static nb_tensor *step_grad(nb__temps *tmp, const step_saved *sv, nb_tensor *dh, nb_tensor **dc) {
    nb_tensor *d = TMP(nb_add(*dc, TMP(nb_mul(TMP(nb_mul(dh, sv->o)),
                                              one_minus(tmp, TMP(nb_mul(sv->tc, sv->tc)))))));
    nb_tensor *da[4] = {
        TMP(nb_mul(TMP(nb_mul(d, sv->g)), TMP(nb_mul(sv->i, one_minus(tmp, sv->i))))),
        TMP(nb_mul(TMP(nb_mul(d, sv->c)), TMP(nb_mul(sv->f, one_minus(tmp, sv->f))))),
        TMP(nb_mul(TMP(nb_mul(d, sv->i)), one_minus(tmp, TMP(nb_mul(sv->g, sv->g))))),
        TMP(nb_mul(TMP(nb_mul(dh, sv->tc)), TMP(nb_mul(sv->o, one_minus(tmp, sv->o))))),
    };
    *dc = TMP(nb_mul(d, sv->f));
    return TMP(nb_concat(4, da, 1));
}

/* The formulas of backend/cpu/rnn.c with ops; saved [T] and da [T] are host arrays. */
static bool bptt_by_ops(nb__temps *tmp, const nb_node *node, nb_tensor *g, step_saved *saved,
                        nb_tensor **da, nb_tensor **grads) {
    nb_tensor *xp = node->in[0], *w = node->in[1], *s0 = node->in[2];
    nb_lstm_geom geo = geom_of(node->in, &node->args);
    nb_tensor *h = row(tmp, s0, 0), *c = row(tmp, s0, 1);
    for (int64_t k = 0; k < geo.steps && h; k++) {
        int64_t t = geo.reverse ? geo.steps - 1 - k : k;
        h = step_by_ops(tmp, row(tmp, xp, t), w, h, c, geo.hidden, &saved[t], &c);
    }
    nb_tensor *dh = row(tmp, g, geo.steps), *dc = row(tmp, g, geo.steps + 1), *dw = NULL;
    for (int64_t k = geo.steps - 1; k >= 0 && h && dc; k--) {
        int64_t t = geo.reverse ? geo.steps - 1 - k : k;
        dh = TMP(nb_add(dh, row(tmp, g, t)));
        da[t] = step_grad(tmp, &saved[t], dh, &dc);
        nb_tensor *dw_t = TMP(nb_matmul(TMP(nb_transpose(da[t], 0, 1)), saved[t].h));
        dw = dw ? TMP(nb_add(dw, dw_t)) : dw_t;
        dh = TMP(nb_matmul(da[t], w));
        if (!dh) return false;
    }
    grads[0] = TMP(nb_stack((int)geo.steps, da, 0));
    grads[1] = dw;
    grads[2] = TMP(nb_stack(2, (nb_tensor *[]){dh, dc}, 0));
    return grads[0] && grads[1] && grads[2];
}

static nb_status backward_by_ops(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb__temps temps = {0}, *tmp = &temps;
    int64_t steps = node->in[0]->shape[0];
    nb_arena *home = nb__current_arena();
    size_t size = (sizeof(step_saved) + sizeof(nb_tensor *)) * (size_t)steps;
    step_saved *saved = nb__home_alloc(home, size);
    nb_tensor *grads[3] = {NULL, NULL, NULL};
    bool ok = saved && bptt_by_ops(tmp, node, g, saved, (nb_tensor **)(saved + steps), grads);
    if (saved) nb__home_free(home, saved, size);
    for (int i = 0; i < 3 && ok; i++)
        if (nb__needs_grad(node, i)) din[i] = nb__temps_end(&(nb__temps){0}, grads[i]);
    nb__temps_end(tmp, NULL);
    return ok ? NB_OK : nb_error_code();
}

nb_status nb__bwd_lstm(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    if (nb_is_grad_enabled()) return backward_by_ops(node, g, din);
    nb_tensor *c[2], *dy = NULL, *grads[3] = {NULL, NULL, NULL};
    bool ok = contig_all(node->in, c, 2) && (dy = nb__contig(g)) != NULL;
    for (int i = 0; i < 3 && ok; i++) ok = (grads[i] = nb__new_like(node->in[i])) != NULL;
    if (ok) {
        nb_lstm_geom geo = geom_of(node->in, &node->args);
        const nb_tensor *o = node->out;
        nb__be(c[0])->lstm_backward(nb__f32(grads[0]), nb__f32(grads[1]), nb__f32(grads[2]),
                                    nb__f32(c[1]), nb__f32(o) + nb__numel(3, o->shape),
                                    nb__f32(dy), &geo);
        for (int i = 0; i < 3; i++)
            if (nb__needs_grad(node, i)) din[i] = grads[i], grads[i] = NULL;
    }
    for (int i = 0; i < 3; i++) nb_tensor_free(grads[i]);
    if (dy && dy != g) nb_tensor_free(dy);
    release_contig(node->in, c, 2);
    return ok ? NB_OK : nb_error_code();
}
