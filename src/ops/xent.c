/*
 * xent.c — cross-entropy of logits [N, C] against int32 class indices [N], fused:
 *   loss = scale sum_i (logsumexp(x_i) - x_i[t_i]),  scale = 1/N (mean) or 1 (sum)
 *   dx_ij = g scale (softmax(x_i)_j - [j == t_i])
 * The general path (log_softmax, gather, sum) makes five nodes, three passes over the logits and
 * a scatter in the backward; a classifier's training step spends its time on this common case.
 * nb_cross_entropy takes this row when no class weights, label smoothing or ignored index apply.
 * With create_graph the backward is that formula in ops (softmax and a one-hot made of a
 * comparison), so the gradient is differentiable again through softmax.
 * A forward that will be recorded keeps the exps it sums, exp(x_ij - max_j x_ij), after the
 * loss in the loss's storage (the loss a view of its first element, as attention.c keeps its
 * log-sum-exps): the backward's softmax is those exps over their sums, so it calls no expf,
 * which is most of the op's time.
 */
#include "op.h"

#include <math.h>

/* Where the exps start in the loss's storage: 64 bytes in, so they are aligned as a block. */
#define EXPS_AT 16

/* The forward's exps, or NULL when it kept none (not recorded, or recording off). */
static const float *kept_exps(const nb_tensor *loss, int64_t rows, int64_t classes) {
    size_t need = sizeof(float) * (size_t)(EXPS_AT + rows * classes);
    return loss->storage->nbytes >= need ? nb__f32(loss) + EXPS_AT : NULL;
}

/* The 0-d loss, with room after it for the exps when keep. */
static nb_tensor *new_loss(bool keep, int64_t rows, int64_t classes) {
    if (!keep) return nb__new(NB_F32, 0, NULL);
    int64_t total = EXPS_AT + rows * classes;
    nb_tensor *block = nb__new(NB_F32, 1, &total);
    nb_tensor *loss = block ? nb__view(block, 0, NULL, NULL, 0) : NULL;
    nb_tensor_free(block);
    return loss;
}

nb_tensor *nb__fwd_xent(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)op, (void)n;
    nb_tensor *x = in[0], *t = in[1];
    if (x->ndim != 2 || t->ndim != 1 ||
        t->shape[0] != x->shape[0])
        return nb__fail(NB_ERR_SHAPE, "cross_entropy: target %s does not match input %s", NB_SHP(t),
                        NB_SHP(x));
    int64_t rows = x->shape[0], classes = x->shape[1];
    bool keep = x->requires_grad && nb_is_grad_enabled();
    nb_tensor *xc = nb__contig(x), *tc = xc ? nb__contig(t) : NULL;
    nb_tensor *out = tc ? new_loss(keep, rows, classes) : NULL;
    int32_t *k = out ? nb__host_copy(tc) : NULL; /* the targets, checked on the host */
    bool ok = k != NULL;
    for (int64_t i = 0; ok && i < rows; i++) {
        if (k[i] < 0 || k[i] >= classes) {
            nb__fail(NB_ERR_ARG, "cross_entropy: target %d at position %lld is out of range for "
                     "%lld classes", (int)k[i], (long long)i, (long long)classes);
            ok = false;
        }
    }
    if (k) nb__host_free(k, tc);
    if (!ok) {
        nb_tensor_free(out);
        out = NULL;
    }
    if (out) {
        float *exps = keep ? nb__f32(out) + EXPS_AT : NULL;
        float loss = nb__be(x)->xent(exps, nb__f32(xc), nb__i32(tc), rows, classes, args->s0);
        nb__be(x)->copy_h2d(nb__f32(out), &loss, sizeof loss);
    }
    if (xc != x) nb_tensor_free(xc);
    if (tc != t) nb_tensor_free(tc);
    return out;
}

/* g scale (softmax(x) - onehot(t)) with ops (create_graph). */
static nb_tensor *xent_grad_by_ops(const nb_node *node, nb_tensor *g) {
    nb__temps tmp = {0};
    nb_tensor *x = node->in[0];
    nb_tensor *t = nb__tmp(&tmp, nb_to_dtype(node->in[1], NB_F32));
    nb_tensor *classes = nb__tmp(&tmp, nb_arange(0.0f, (float)x->shape[1], 1.0f));
    nb_tensor *onehot = nb__tmp(&tmp, nb_eq(nb__tmp(&tmp, nb_unsqueeze(t, 1)), classes));
    nb_tensor *p = nb__tmp(&tmp, nb_sub(nb__tmp(&tmp, nb_softmax(x, 1)), onehot));
    nb_tensor *r = nb_mul(p, nb__tmp(&tmp, nb_mul_scalar(g, node->args.s0)));
    return nb__temps_end(&tmp, nb__tmp(&tmp, r));
}

nb_status nb__bwd_xent(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    if (nb_is_grad_enabled()) return (din[0] = xent_grad_by_ops(node, g)) ? NB_OK : nb_error_code();
    nb_tensor *x = node->in[0], *xc = nb__contig(x), *tc = xc ? nb__contig(node->in[1]) : NULL;
    nb_tensor *dx = tc ? nb__new_like(x) : NULL;
    if (!dx) return nb_error_code();
    float up; /* g is the 0-d upstream gradient */
    nb__be(g)->copy_d2h(&up, nb__f32(g), sizeof up);
    nb__be(x)->xent_backward(nb__f32(dx), nb__f32(xc), kept_exps(node->out, x->shape[0], x->shape[1]),
                             nb__i32(tc), x->shape[0], x->shape[1], up * node->args.s0);
    din[0] = dx;
    return NB_OK;
}

nb_tensor *nb__cross_entropy_indices(nb_tensor *logits, nb_tensor *target, bool mean) {
    float scale = mean ? 1.0f / (float)(logits->shape[0] ? logits->shape[0] : 1) : 1.0f;
    if (mean && logits->shape[0] == 0) scale = NAN; /* torch: the mean of nothing is nan */
    return nb__apply(NB_OP_XENT, 2, (nb_tensor *[]){logits, target}, &(nb_op_args){.s0 = scale});
}
