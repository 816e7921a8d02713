/*
 * matmul.c — torch.matmul: [.., n, k] @ [.., k, m] -> [.., n, m] with broadcast batch dims;
 * a 1-D left operand is a row [1, k], a 1-D right operand a column [k, 1], and the added dim
 * is removed from the result.  Each product is one BLAS GEMM; a transposed view is passed to
 * GEMM as a transpose flag rather than copied.
 *
 *   out = a b      da = g b^T      db = a^T g
 *
 * Under autocast (args.amp, nabla/amp.h) a, b and out are rounded to its dtype; the backward's
 * matmuls run under the same autocast, so g and the gradients are rounded too.
 */
#include "op.h"

#include "../autograd/autocast.h"
#include "nabla/amp.h"

/* How GEMM reads the last two dims of t: row-major (ld = row stride) or transposed. */
typedef struct {
    bool trans;
    int64_t ld;
} gemm_operand;

static bool gemm_view(const nb_tensor *t, gemm_operand *op) {
    int64_t rows = t->shape[t->ndim - 2], cols = t->shape[t->ndim - 1];
    int64_t rs = t->stride[t->ndim - 2], cs = t->stride[t->ndim - 1];
    if ((cs == 1 || cols == 1) && (rs >= cols || rows == 1)) {
        *op = (gemm_operand){false, rows == 1 ? (cols > 0 ? cols : 1) : rs};
        return true;
    }
    if ((rs == 1 || rows == 1) && (cs >= rows || cols == 1)) {
        *op = (gemm_operand){true, cols == 1 ? (rows > 0 ? rows : 1) : cs};
        return true;
    }
    return false;
}

/* a itself when GEMM can read it, else a contiguous copy. */
static nb_tensor *gemm_ready(nb_tensor *a, gemm_operand *op) {
    if (gemm_view(a, op)) return a;
    nb_tensor *c = nb__clone_in(nb__current_arena(), a);
    if (c) gemm_view(c, op);
    return c;
}

/* When b has no batch of its own and a's batch rows are evenly spaced, the whole batch is one
 * GEMM of [batch * n, k] @ [k, m]: far faster than many small ones (Linear on 3-D input). */
static bool folds_into_one_gemm(const nb_tensor *a, const nb_tensor *b, const gemm_operand *ga) {
    if (b->ndim != 2 || ga->trans) return false;
    int64_t expect = a->stride[a->ndim - 2] * a->shape[a->ndim - 2];
    for (int d = a->ndim - 3; d >= 0; d--) {
        if (a->shape[d] != 1 && a->stride[d] != expect) return false;
        expect *= a->shape[d];
    }
    return true;
}

/* The product of a and b rounded to amp, from their rounded copies (freed here). */
static nb_tensor *matmul_amp(nb_op_id op, nb_tensor *a, nb_tensor *b, nb_dtype amp) {
    nb_tensor *ar = nb__amp_rounded(a, amp), *br = ar ? nb__amp_rounded(b, amp) : NULL;
    nb_tensor *out = br ? nb__fwd_matmul(op, (nb_tensor *[]){ar, br}, 2, &(nb_op_args){0}) : NULL;
    nb_tensor_free(ar);
    nb_tensor_free(br);
    return nb__amp_round(out, amp);
}

nb_tensor *nb__fwd_matmul(nb_op_id op, nb_tensor *const *in, int n_in, const nb_op_args *args) {
    (void)n_in;
    nb_tensor *a = in[0], *b = in[1];
    if (args->amp) return matmul_amp(op, a, b, args->amp);
    if (a->ndim < 2 || b->ndim < 2)
        return nb__fail(NB_ERR_SHAPE, "matmul: %s @ %s: operands must have at least one dim",
                        NB_SHP(a), NB_SHP(b));
    int64_t n = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], m = b->shape[b->ndim - 1];
    if (b->shape[b->ndim - 2] != k)
        return nb__fail(NB_ERR_SHAPE, "matmul: %s @ %s: inner sizes differ", NB_SHP(a), NB_SHP(b));
    int nbatch;
    int64_t shape[NB_MAX_DIMS];
    if (!nb__broadcast_shape(a->ndim - 2, a->shape, b->ndim - 2, b->shape, &nbatch, shape) ||
        nbatch + 2 > NB_MAX_DIMS)
        return nb__fail(NB_ERR_SHAPE, "matmul: %s @ %s: batch dims do not broadcast", NB_SHP(a),
                        NB_SHP(b));
    shape[nbatch] = n;
    shape[nbatch + 1] = m;
    nb_tensor *out = nb__new(NB_F32, nbatch + 2, shape);
    gemm_operand ga, gb;
    nb_tensor *ac = out ? gemm_ready(a, &ga) : NULL, *bc = ac ? gemm_ready(b, &gb) : NULL;
    if (!bc) return NULL;
    const nb_backend *be = nb__be(a);
    if (folds_into_one_gemm(ac, bc, &ga)) {
        int64_t rows = nb__numel(nbatch, shape) * n;
        be->gemm(false, gb.trans, rows, m, k, 1.0f, nb__f32(ac), ga.ld, nb__f32(bc), gb.ld, 0.0f,
                 nb__f32(out), m);
    } else {
        /* batch strides of each operand under broadcasting (0 where broadcast) */
        int64_t sa[NB_MAX_DIMS] = {0}, sb[NB_MAX_DIMS] = {0}, idx[NB_MAX_DIMS] = {0};
        for (int d = 0; d < nbatch; d++) {
            int da = d - (nbatch - (a->ndim - 2)), db = d - (nbatch - (b->ndim - 2));
            sa[d] = da >= 0 && ac->shape[da] != 1 ? ac->stride[da] : 0;
            sb[d] = db >= 0 && bc->shape[db] != 1 ? bc->stride[db] : 0;
        }
        int64_t batches = nb__numel(nbatch, shape);
        for (int64_t i = 0; i < batches; i++) {
            int64_t oa = 0, ob = 0, rest = i;
            for (int d = nbatch - 1; d >= 0; d--) {
                idx[d] = rest % shape[d];
                rest /= shape[d];
                oa += idx[d] * sa[d];
                ob += idx[d] * sb[d];
            }
            be->gemm(ga.trans, gb.trans, n, m, k, 1.0f, nb__f32(ac) + oa, ga.ld, nb__f32(bc) + ob,
                     gb.ld, 0.0f, nb__f32(out) + i * n * m, m);
        }
    }
    if (ac != a) nb_tensor_free(ac);
    if (bc != b) nb_tensor_free(bc);
    return out;
}

/* da = g b^T, db = a^T g: matmuls of transposed views, so one version serves both modes of
 * op.h (GEMMs with recording off, a differentiable graph with create_graph). */
static nb_tensor *grad_a(nb__temps *tmp, nb_tensor *g, nb_tensor *b) {
    return nb_matmul(g, nb__tmp(tmp, nb_transpose(b, -1, -2)));
}

static nb_tensor *grad_b(nb__temps *tmp, nb_tensor *g, nb_tensor *a, nb_tensor *b) {
    if (b->ndim == 2 && a->ndim > 2) { /* sum over a's batch inside one GEMM */
        int64_t k = a->shape[a->ndim - 1], m = b->shape[1];
        nb_tensor *a2 = nb__tmp(tmp, nb_reshape(a, NB_SHAPE(-1, k)));
        nb_tensor *g2 = nb__tmp(tmp, nb_reshape(g, NB_SHAPE(-1, m)));
        return nb_matmul(nb__tmp(tmp, nb_transpose(a2, 0, 1)), g2);
    }
    return nb_matmul(nb__tmp(tmp, nb_transpose(a, -1, -2)), g);
}

nb_status nb__bwd_matmul(const nb_node *node, nb_tensor *g, nb_tensor **din) {
    nb_tensor *a = node->in[0], *b = node->in[1];
    nb_dtype before = nb_autocast_set(node->args.amp);
    nb_status st = NB_OK;
    for (int i = 0; i < 2 && st == NB_OK; i++) {
        if (!nb__needs_grad(node, i)) continue;
        nb__temps tmp = {0};
        nb_tensor *d = i == 0 ? grad_a(&tmp, g, b) : grad_b(&tmp, g, a, b);
        if (!(din[i] = nb__temps_end(&tmp, nb__tmp(&tmp, d)))) st = nb_error_code();
    }
    nb_autocast_set(before);
    return st;
}

nb_tensor *nb_matmul(nb_tensor *a, nb_tensor *b) {
    if (!nb__alive(a)) return nb__fail_input("matmul", a);
    if (!nb__alive(b)) return nb__fail_input("matmul", b);
    if (a->ndim == 0 || b->ndim == 0)
        return nb__fail(NB_ERR_SHAPE, "matmul: %s @ %s: operands must have at least one dim",
                        NB_SHP(a), NB_SHP(b));
    bool row = a->ndim == 1, col = b->ndim == 1;
    /* checked before promoting, so the message names the user's shapes and no view is left */
    if ((row || col) && a->shape[a->ndim - 1] != b->shape[col ? 0 : b->ndim - 2])
        return nb__fail(NB_ERR_SHAPE, "matmul: %s @ %s: inner sizes differ", NB_SHP(a), NB_SHP(b));
    nb__temps tmp = {0};
    nb_tensor *a2 = row ? nb__tmp(&tmp, nb_unsqueeze(a, 0)) : a;
    nb_tensor *b2 = col ? nb__tmp(&tmp, nb_unsqueeze(b, 1)) : b;
    nb_op_args args = {.amp = nb_autocast_dtype()};
    nb_tensor *out = nb__tmp(&tmp, nb__apply(NB_OP_MATMUL, 2, (nb_tensor *[]){a2, b2}, &args));
    if (out && col) out = nb__tmp(&tmp, nb_squeeze(out, -1));
    if (out && row) out = nb__tmp(&tmp, nb_squeeze(out, col ? -1 : -2));
    return nb__temps_end(&tmp, out);
}
