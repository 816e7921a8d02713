/*
 * attention.c — the attention row: scaled dot-product attention of q [B, H, T, D],
 * k [B, H, S, D], v [B, H, S, Dv] and an optional additive mask broadcast to [B, H, T, S],
 *   out = dropout(softmax(scale q k^T + mask)) v
 * as one op with a fused kernel (backend attention, flash-attention style).  Its arguments:
 * s0 the scale, s1 dropout's p, keepdim causal, start and end the Philox seed and offset that
 * regenerate dropout's mask in the backward (counter offset + ((b H + h) T + i) S + j).
 *
 * What the backward needs beside the inputs is each row's log-sum-exp, [B, H, T]: the forward
 * allocates it in the same storage right after the result, which is a view of the first
 * B H T Dv elements, so the node keeps it alive without a second tensor.
 *
 * The same computation with ops (matmul, softmax, mul) gives the weights when asked for them,
 * and the create_graph backward, whose formulas (backend/cpu/attention.c) are then made of ops.  The mask
 * takes no gradient (the public function refuses a mask that requires one).
 */
#include "op.h"

#include <math.h>

/* The geometry of the kernel from the op's inputs and arguments. */
static nb_attention_geom geom_of(nb_tensor *const *in, int n, const nb_op_args *a) {
    const nb_tensor *q = in[0], *k = in[1], *v = in[2];
    nb_attention_geom g = {
        .bh = q->shape[0] * q->shape[1], .heads = q->shape[1], .t = q->shape[2],
        .s = k->shape[2], .d = q->shape[3], .dv = v->shape[3], .scale = a->s0,
        .dropout_p = a->s1, .causal = a->keepdim, .seed = (uint64_t)a->start,
        .offset = (uint64_t)a->end};
    if (n == 4) {
        int64_t shape[4] = {q->shape[0], q->shape[1], q->shape[2], k->shape[2]};
        nb__broadcast_strides(in[3], 4, shape, g.mask_stride);
        g.mask = nb__f32(in[3]);
    }
    return g;
}

/* NB_OK when q, k, v and the mask have shapes that agree. */
static nb_status check_shapes(nb_tensor *const *in, int n) {
    const nb_tensor *q = in[0], *k = in[1], *v = in[2];
    const char *name = nb__ops[NB_OP_ATTENTION].name;
    if (n < 3 || n > 4)
        return nb__fail_status(NB_ERR_ARG, "%s: takes q, k, v and an optional mask, got %d tensors",
                               name, n);
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4)
        return nb__fail_status(NB_ERR_SHAPE, "%s: q %s, k %s, v %s must be 4-D [batch, heads, "
                               "length, width]", name, NB_SHP(q), NB_SHP(k), NB_SHP(v));
    bool agree = k->shape[0] == q->shape[0] && k->shape[1] == q->shape[1] &&
                 k->shape[3] == q->shape[3] && v->shape[0] == q->shape[0] &&
                 v->shape[1] == q->shape[1] && v->shape[2] == k->shape[2];
    if (!agree)
        return nb__fail_status(NB_ERR_SHAPE, "%s: q %s, k %s, v %s do not agree (k [B,H,S,D] "
                               "and v [B,H,S,Dv] for q [B,H,T,D])", name, NB_SHP(q), NB_SHP(k),
                               NB_SHP(v));
    if (k->shape[2] == 0) /* a softmax over no keys: NaN from the fused kernel, 0 from the ops */
        return nb__fail_status(NB_ERR_SHAPE, "%s: k %s is an empty sequence: no key to attend to",
                               name, NB_SHP(k));
    if (n == 4) {
        int64_t scores[4] = {q->shape[0], q->shape[1], q->shape[2], k->shape[2]}, out[NB_MAX_DIMS];
        int nout = 0;
        const nb_tensor *m = in[3];
        if (m->ndim > 4 || !nb__broadcast_shape(m->ndim, m->shape, 4, scores, &nout, out) ||
            nb__numel(4, out) != nb__numel(4, scores))
            return nb__fail_status(NB_ERR_SHAPE, "%s: attn_mask %s does not broadcast to the "
                                   "scores [B,H,T,S] = %s", name, NB_SHP(m),
                                   nb__shape_str(4, scores));
    }
    return NB_OK;
}

nb_tensor *nb__fwd_attention(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *a) {
    (void)op;
    if (check_shapes(in, n) != NB_OK) return NULL;
    nb_tensor *q = nb__contig(in[0]), *k = q ? nb__contig(in[1]) : NULL;
    nb_tensor *v = k ? nb__contig(in[2]) : NULL, *out = NULL;
    if (!v) goto out_free_inputs;
    nb_attention_geom g = geom_of(in, n, a);
    int64_t shape[4] = {q->shape[0], q->shape[1], q->shape[2], v->shape[3]}, stride[4];
    int64_t numel = nb__numel(4, shape), total = numel + g.bh * g.t;
    nb_tensor *block = nb__new(NB_F32, 1, &total); /* the result, then each row's lse */
    if (!block) goto out_free_inputs;
    nb__contiguous_strides(4, shape, stride);
    out = nb__view(block, 4, shape, stride, 0);
    nb_tensor_free(block);
    if (out) nb__be(q)->attention(nb__f32(out), nb__f32(out) + numel, nb__f32(q), nb__f32(k),
                                  nb__f32(v), &g);
out_free_inputs:
    if (v && v != in[2]) nb_tensor_free(v);
    if (k && k != in[1]) nb_tensor_free(k);
    if (q && q != in[0]) nb_tensor_free(q);
    return out;
}

/* ---- the same with ops */

/* scale q k^T + mask, minus infinity above the diagonal when causal. */
static nb_tensor *scores_by_ops(nb__temps *tmp, nb_tensor *q, nb_tensor *k, nb_tensor *mask,
                                const nb_op_args *a) {
    nb_tensor *kt = nb__tmp(tmp, nb_transpose(k, -1, -2));
    nb_tensor *x = nb__tmp(tmp, nb_mul_scalar(nb__tmp(tmp, nb_matmul(q, kt)), a->s0));
    if (mask) x = nb__tmp(tmp, nb_add(x, mask));
    if (!a->keepdim || !x) return x;
    int64_t t = q->shape[2], s = k->shape[2], shape[2] = {t, s};
    nb_tensor *rows = nb__tmp(tmp, nb_reshape(nb__tmp(tmp, nb_arange(0, (float)t, 1)), 2,
                                              (int64_t[]){t, 1}));
    nb_tensor *cols = nb__tmp(tmp, nb_arange(0, (float)s, 1));
    nb_tensor *hidden = nb__tmp(tmp, nb_gt(cols, rows));
    nb_tensor *ninf = nb__tmp(tmp, nb_full(2, shape, -INFINITY));
    return nb__tmp(tmp, nb_where(hidden, ninf, x));
}

/* Dropout's mask times 1 / (1 - p), [B, H, T, S], regenerated from the op's counters; NULL
 * (and no error) without dropout. */
static nb_tensor *dropout_by_ops(nb__temps *tmp, const nb_tensor *q, const nb_tensor *k,
                                 const nb_op_args *a, bool *failed) {
    if (a->s1 <= 0.0f) return NULL;
    int64_t shape[4] = {q->shape[0], q->shape[1], q->shape[2], k->shape[2]};
    nb_tensor *u = nb__tmp(tmp, nb__new(NB_F32, 4, shape));
    if (u) nb__be(q)->uniform(nb__f32(u), nb__numel(4, shape), (uint64_t)a->start, (uint64_t)a->end);
    nb_tensor *p = nb__tmp(tmp, nb_full(0, NULL, a->s1));
    nb_tensor *keep = nb__tmp(tmp, nb_ge(u, p));
    nb_tensor *z = nb__tmp(tmp, nb_mul_scalar(keep, 1.0f / (1.0f - a->s1)));
    *failed = !z;
    return z;
}

/* The weights (after dropout) into *weights, and the result. */
static nb_tensor *attention_by_ops(nb_tensor *const *in, int n, const nb_op_args *a,
                                   nb_tensor **weights) {
    nb__temps tmp = {0};
    bool failed = false;
    nb_tensor *x = scores_by_ops(&tmp, in[0], in[1], n == 4 ? in[3] : NULL, a);
    nb_tensor *w = nb__tmp(&tmp, nb_softmax(x, -1));
    nb_tensor *z = dropout_by_ops(&tmp, in[0], in[1], a, &failed);
    if (z) w = nb__tmp(&tmp, nb_mul(w, z));
    nb_tensor *out = failed || !w ? NULL : nb__tmp(&tmp, nb_matmul(w, in[2]));
    *weights = out ? nb__temps_end(&(nb__temps){0}, w) : NULL;
    nb_tensor *r = nb__temps_end(&tmp, out);
    if (!r) nb_tensor_free(*weights), *weights = NULL;
    return r;
}

/* create_graph: the backward's formulas (the top of backend/cpu/attention.c) with ops. */
static nb_status backward_by_ops(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb__temps tmp = {0};
    const nb_op_args *a = &node->args;
    nb_tensor *q = node->in[0], *k = node->in[1], *v = node->in[2];
    bool failed = false;
    nb_tensor *x = scores_by_ops(&tmp, q, k, node->n_in == 4 ? node->in[3] : NULL, a);
    nb_tensor *p = nb__tmp(&tmp, nb_softmax(x, -1)), *pd = p;
    nb_tensor *z = dropout_by_ops(&tmp, q, k, a, &failed);
    if (z) pd = nb__tmp(&tmp, nb_mul(p, z));
    nb_tensor *dp = nb__tmp(&tmp, nb_matmul(g, nb__tmp(&tmp, nb_transpose(v, -1, -2))));
    if (z) dp = nb__tmp(&tmp, nb_mul(dp, z));
    int last = -1;
    nb_tensor *dsum = nb__tmp(&tmp, nb_sum_dims(nb__tmp(&tmp, nb_mul(dp, p)), 1, &last, true));
    nb_tensor *dx = nb__tmp(&tmp, nb_mul(p, nb__tmp(&tmp, nb_sub(dp, dsum))));
    dx = nb__tmp(&tmp, nb_mul_scalar(dx, a->s0));
    nb_tensor *grads[3] = {NULL, NULL, NULL};
    if (nb__needs_grad(node, 0)) grads[0] = nb__tmp(&tmp, nb_matmul(dx, k));
    if (nb__needs_grad(node, 1))
        grads[1] = nb__tmp(&tmp, nb_matmul(nb__tmp(&tmp, nb_transpose(dx, -1, -2)), q));
    if (nb__needs_grad(node, 2))
        grads[2] = nb__tmp(&tmp, nb_matmul(nb__tmp(&tmp, nb_transpose(pd, -1, -2)), g));
    for (int i = 0; i < 3; i++) failed |= nb__needs_grad(node, i) && !grads[i];
    for (int i = 0; i < 3 && !failed; i++)
        if (grads[i]) din[i] = nb__temps_end(&(nb__temps){0}, grads[i]);
    nb__temps_end(&tmp, NULL);
    return failed ? nb_error_code() : NB_OK;
}

nb_status nb__bwd_attention(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    if (node->n_in == 4 && nb__needs_grad(node, 3))
        return nb__fail_status(NB_ERR_ARG, "%s: the mask takes no gradient", node->grad_fn);
    if (nb_is_grad_enabled()) return backward_by_ops(node, g, din);
    nb_tensor *const *in = node->in;
    nb_tensor *q = nb__contig(in[0]), *k = q ? nb__contig(in[1]) : NULL;
    nb_tensor *v = k ? nb__contig(in[2]) : NULL, *dout = v ? nb__contig(g) : NULL;
    nb_tensor *dq = dout ? nb__new_like(q) : NULL, *dk = dq ? nb__new_like(k) : NULL;
    nb_tensor *dv = dk ? nb__new_like(v) : NULL;
    nb_status s = dv ? NB_OK : nb_error_code();
    if (s == NB_OK) {
        nb_attention_geom geom = geom_of(in, node->n_in, &node->args);
        const nb_tensor *o = node->out;
        nb__be(q)->attention_backward(nb__f32(dq), nb__f32(dk), nb__f32(dv), nb__f32(q),
                                      nb__f32(k), nb__f32(v), nb__f32(o),
                                      nb__f32(o) + nb__numel(4, o->shape), nb__f32(dout), &geom);
        nb_tensor *grads[3] = {dq, dk, dv};
        for (int i = 0; i < 3; i++) {
            if (nb__needs_grad(node, i)) din[i] = grads[i];
            else nb_tensor_free(grads[i]);
        }
    } else {
        nb_tensor_free(dq), nb_tensor_free(dk);
    }
    if (dout && dout != g) nb_tensor_free(dout);
    if (v && v != in[2]) nb_tensor_free(v);
    if (k && k != in[1]) nb_tensor_free(k);
    if (q && q != in[0]) nb_tensor_free(q);
    return s;
}

/* ---- the public functions */

/* One additive float32 mask from the options' masks (NULL when none): a boolean attn_mask
 * becomes 0 where it is set and -inf elsewhere, a boolean key padding mask [B, S] -inf where
 * it is set, seen as [B, 1, 1, S]; both are added. */
static nb_tensor *additive_mask(nb__temps *tmp, const nb_tensor *q, const nb_tensor *k,
                                const nb_sdpa_opts *o, bool *failed) {
    const char *name = nb__ops[NB_OP_ATTENTION].name;
    nb_tensor *zero = nb__tmp(tmp, nb_zeros(0, NULL)), *ninf = nb__tmp(tmp, nb_full(0, NULL, -INFINITY));
    nb_tensor *mask = NULL, *kpm = NULL;
    if (o->attn_mask) {
        nb_tensor *m = o->attn_mask;
        if (m->dtype == NB_F32) mask = m;
        else mask = nb__tmp(tmp, nb_where(nb__tmp(tmp, nb_to_dtype(m, NB_F32)), zero, ninf));
    }
    if (o->key_padding_mask) {
        nb_tensor *m = o->key_padding_mask;
        if (m->ndim != 2 || m->shape[0] != q->shape[0] || m->shape[1] != k->shape[2]) {
            *failed = true;
            return nb__fail(NB_ERR_SHAPE, "%s: key_padding_mask %s must be [batch, keys] = [%lld,%lld]",
                            name, NB_SHP(m), (long long)q->shape[0], (long long)k->shape[2]);
        }
        if (m->dtype != NB_F32)
            m = nb__tmp(tmp, nb_where(nb__tmp(tmp, nb_to_dtype(m, NB_F32)), ninf, zero));
        kpm = nb__tmp(tmp, nb_reshape(m, 4, (int64_t[]){q->shape[0], 1, 1, k->shape[2]}));
        if (!kpm) *failed = true;
    }
    if (mask && kpm) return nb__tmp(tmp, nb_add(mask, kpm));
    if (o->attn_mask && !mask) *failed = true;
    return mask ? mask : kpm;
}

/* Checks the options; NB_OK and the op's arguments from them (drawing dropout's B H T S
 * counters). */
static nb_status args_of(const nb_tensor *q, const nb_tensor *k, const nb_sdpa_opts *o,
                         nb_op_args *a) {
    const char *name = nb__ops[NB_OP_ATTENTION].name;
    if (!(o->dropout_p >= 0.0f && o->dropout_p < 1.0f))
        return nb__fail_status(NB_ERR_ARG, "%s: dropout_p %g is outside [0, 1)", name, o->dropout_p);
    if (!(o->scale >= 0.0f))
        return nb__fail_status(NB_ERR_ARG, "%s: scale %g is negative", name, o->scale);
    nb_tensor *const masks[2] = {o->attn_mask, o->key_padding_mask};
    for (int i = 0; i < 2; i++) {
        if (masks[i] && !nb__alive(masks[i])) {
            nb__fail_input(name, masks[i]);
            return nb_error_code();
        }
        if (masks[i] && masks[i]->requires_grad)
            return nb__fail_status(NB_ERR_ARG, "%s: %s requires grad; masks take no gradient",
                                   name, i ? "key_padding_mask" : "attn_mask");
    }
    *a = (nb_op_args){.s0 = o->scale > 0.0f ? o->scale : 1.0f / sqrtf((float)q->shape[3]),
                      .s1 = o->dropout_p, .keepdim = o->causal};
    if (o->dropout_p > 0.0f) {
        uint64_t seed, count = (uint64_t)nb__numel(3, q->shape) * (uint64_t)k->shape[2];
        a->end = (int64_t)nb__rng_reserve(count, &seed);
        a->start = (int64_t)seed;
    }
    return NB_OK;
}

/* The checks and masks both public functions share; then the fused op, or the ops that keep
 * the weights when weights is not NULL. */
static nb_tensor *attention(nb_tensor *q, nb_tensor *k, nb_tensor *v, const nb_sdpa_opts *opts,
                            nb_tensor **weights) {
    const char *name = nb__ops[NB_OP_ATTENTION].name;
    if (weights) *weights = NULL;
    nb_tensor *const qkv[3] = {q, k, v};
    for (int i = 0; i < 3; i++)
        if (!nb__alive(qkv[i])) return nb__fail_input(name, qkv[i]);
    nb_tensor *in[4] = {q, k, v, NULL};
    if (check_shapes(in, 3) != NB_OK) return NULL;
    nb_sdpa_opts o = opts ? *opts : (nb_sdpa_opts){0};
    nb_op_args a;
    if (args_of(q, k, &o, &a) != NB_OK) return NULL;
    nb__temps tmp = {0};
    bool failed = false;
    in[3] = additive_mask(&tmp, q, k, &o, &failed);
    int n = in[3] ? 4 : 3;
    nb_tensor *out = NULL;
    if (!failed && weights && check_shapes(in, n) == NB_OK) /* the op checks it itself */
        out = nb__tmp(&tmp, attention_by_ops(in, n, &a, weights));
    else if (!failed) out = nb__tmp(&tmp, nb__apply(NB_OP_ATTENTION, n, in, &a));
    return nb__temps_end(&tmp, out);
}

nb_tensor *nb_scaled_dot_product_attention(nb_tensor *q, nb_tensor *k, nb_tensor *v,
                                           const nb_sdpa_opts *opts) {
    return attention(q, k, v, opts, NULL);
}

nb_tensor *nb_scaled_dot_product_attention_weights(nb_tensor *q, nb_tensor *k, nb_tensor *v,
                                                   const nb_sdpa_opts *opts, nb_tensor **weights) {
    if (!weights) return nb__fail(NB_ERR_NULL, "%s: weights is NULL", nb__ops[NB_OP_ATTENTION].name);
    return attention(q, k, v, opts, weights);
}
