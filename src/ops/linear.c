/*
 * linear.c — torch.nn.functional.linear as one op: y = x W^T + b, x [.., in], W [out, in],
 * b [out].  Fused so that the forward is one GEMM that starts from the broadcast bias (beta 1)
 * and the backward writes dW in W's own [out, in] layout; through matmul + transpose + add it
 * would take an extra pass for the bias and a transposed copy of dW on every step.
 *
 *   dx = g W          dW = g^T x          db = sum over rows of g
 * with x and g seen as [M, in] and [M, out], M the product of the leading dims.  With
 * create_graph the same three lines are ops (matmul, transpose, sum), differentiable again.
 * dW, the step's largest gradient, is added by the GEMM (beta 1) straight into W's .grad when
 * the pass allows it (nb__grad_sink: .grad holds the zeros of zero_grad), which saves the pass
 * that would add a separate dW to them.
 * Under autocast (args.amp, nabla/amp.h) x, W, b and y are rounded to its dtype, and in the
 * backward g and dx, dW, db; the matmuls of create_graph run under the same autocast.
 */
#include "op.h"

#include "../autograd/autocast.h"
#include "nabla/amp.h"

#include <string.h>

static int64_t rows_of(const nb_tensor *x) { return nb__numel(x->ndim - 1, x->shape); }

/* y [m, o] = b in every row, the GEMM's starting C: one row copied from b, then the rows made
 * so far copied after themselves, ceil(log2 m) + 1 copies rather than m. */
static void broadcast_rows(const nb_backend *be, float *y, const float *b, int64_t m, int64_t o) {
    if (m == 0) return;
    be->copy_d2d(y, b, sizeof(float) * (size_t)o);
    for (int64_t done = 1; done < m;) {
        int64_t n = done < m - done ? done : m - done;
        be->copy_d2d(y + done * o, y, sizeof(float) * (size_t)(n * o));
        done += n;
    }
}

nb_tensor *nb__fwd_linear(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)args;
    nb_tensor *x = in[0], *w = in[1], *b = n == 3 ? in[2] : NULL;
    bool bias_ok = !b || (b->ndim == 1 && b->shape[0] == w->shape[0]);
    if (x->ndim < 1 || w->ndim != 2 || !bias_ok)
        return nb__fail(NB_ERR_SHAPE, "linear: input %s, weight %s, bias %s: need [.., in], "
                        "[out, in] and [out]", NB_SHP(x), NB_SHP(w), b ? NB_SHP(b) : "none");
    if (x->shape[x->ndim - 1] != w->shape[1])
        return nb__fail(NB_ERR_SHAPE, "linear: input %s and weight %s: inner sizes differ (%lld "
                        "features, the weight takes %lld)", NB_SHP(x), NB_SHP(w),
                        (long long)x->shape[x->ndim - 1], (long long)w->shape[1]);
    int64_t m = rows_of(x), k = w->shape[1], o = w->shape[0], shape[NB_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[x->ndim - 1] = o;
    nb_dtype amp = args->amp;
    nb_tensor *xc = amp ? nb__amp_rounded(x, amp) : nb__contig(x);
    nb_tensor *wc = xc ? (amp ? nb__amp_rounded(w, amp) : nb__contig(w)) : NULL;
    nb_tensor *bc = wc && b ? (amp ? nb__amp_rounded(b, amp) : nb__contig(b)) : NULL;
    nb_tensor *out = wc && (bc || !b) ? nb__new(NB_F32, x->ndim, shape) : NULL;
    if (out) {
        float *y = nb__f32(out);
        if (b) broadcast_rows(nb__be(x), y, nb__f32(bc), m, o);
        nb__be(x)->gemm(false, true, m, o, k, 1.0f, nb__f32(xc), k, nb__f32(wc), k, b ? 1.0f : 0.0f, y, o);
        if (amp) nb__amp_round(out, amp);
    }
    if (xc != x) nb_tensor_free(xc);
    if (wc != w) nb_tensor_free(wc);
    if (bc != b) nb_tensor_free(bc);
    return out;
}

/* Input i's gradient with ops (create_graph); intermediates go to tmp. */
static nb_tensor *linear_grad_by_ops(nb__temps *tmp, const nb_node *node, nb_tensor *g, int i) {
    nb_tensor *x = node->in[0], *w = node->in[1];
    if (i == 0) return nb_matmul(g, w);
    int64_t k = w->shape[1], o = w->shape[0];
    nb_tensor *g2 = nb__tmp(tmp, nb_reshape(g, NB_SHAPE(-1, o)));
    if (i == 2) return nb_sum_dims(g2, 1, (int[]){0}, false);
    nb_tensor *x2 = nb__tmp(tmp, nb_reshape(x, NB_SHAPE(-1, k)));
    return nb_matmul(nb__tmp(tmp, nb_transpose(g2, 0, 1)), x2);
}

nb_status nb__bwd_linear(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb_dtype amp = node->args.amp;
    if (nb_is_grad_enabled()) {
        nb_dtype before = nb_autocast_set(amp);
        nb_status st = NB_OK;
        for (int i = 0; i < node->n_in && st == NB_OK; i++) {
            if (!nb__needs_grad(node, i)) continue;
            nb__temps tmp = {0};
            din[i] = nb__temps_end(&tmp, nb__tmp(&tmp, linear_grad_by_ops(&tmp, node, g, i)));
            if (!din[i]) st = nb_error_code();
        }
        nb_autocast_set(before);
        return st;
    }
    /* the backward runs in its pass's scope, which frees these copies */
    nb_tensor *x = node->in[0], *w = node->in[1], *gc = amp ? nb__amp_rounded(g, amp) : nb__contig(g);
    if (!gc) return nb_error_code();
    const nb_backend *be = nb__be(x);
    int64_t m = rows_of(x), k = w->shape[1], o = w->shape[0];
    nb_tensor *wc = amp ? nb__amp_rounded(w, amp) : nb__contig(w);
    nb_tensor *xc = amp ? nb__amp_rounded(x, amp) : nb__contig(x);
    if (!wc || !xc) return nb_error_code();
    if (nb__needs_grad(node, 0)) {
        if (!(din[0] = nb__new(NB_F32, x->ndim, x->shape))) return nb_error_code();
        be->gemm(false, false, m, k, o, 1.0f, nb__f32(gc), o, nb__f32(wc), k, 0.0f, nb__f32(din[0]), k);
    }
    if (nb__needs_grad(node, 1)) {
        nb_tensor *sink = amp ? NULL : nb__grad_sink(node, 1);
        if (!sink && !(din[1] = nb__new(NB_F32, 2, w->shape))) return nb_error_code();
        be->gemm(true, false, o, k, m, 1.0f, nb__f32(gc), o, nb__f32(xc), k, sink ? 1.0f : 0.0f,
                 nb__f32(sink ? sink : din[1]), k);
    }
    if (node->n_in == 3 && nb__needs_grad(node, 2)) {
        if (!(din[2] = nb__new(NB_F32, 1, &o))) return nb_error_code();
        be->reduce(NB_RED_SUM, nb__f32(din[2]), nb__f32(gc), 1, m, o);
    }
    if (amp)
        for (int i = 0; i < node->n_in; i++) nb__amp_round(din[i], amp);
    return NB_OK;
}

nb_tensor *nb_linear(nb_tensor *x, nb_tensor *w, nb_tensor *b) {
    nb_op_args a = {.amp = nb_autocast_dtype()};
    return nb__apply(NB_OP_LINEAR, b ? 3 : 2, (nb_tensor *[]){x, w, b}, &a);
}
