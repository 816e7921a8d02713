/*
 * syncbn.c — SyncBatchNorm (nabla/dist.h), torch.nn.SyncBatchNorm: BatchNorm whose training
 * statistics are those of the whole batch, spread over the ranks, instead of each rank's share.
 * It is BatchNorm's module (src/nn/norm.c: the same state, parameters and buffers, under the
 * same names) with another class, so nb_module_convert_sync_batchnorm swaps the class in place
 * and the optimiser, hooks and saved files keep working.
 *
 * Per channel c, over every dim but dim 1, rank r holding n_r values x_r (torch's formulas; the
 * two passes of BatchNorm's own, so that the figures are one process's up to summation order):
 *     N = sum_r n_r,   mean = (sum_r sum x_r) / N,   var = (sum_r sum (x_r - mean)^2) / N
 *     y = (x - mean) / sqrt(var + eps) * weight + bias
 *     running_mean <- (1 - m) running_mean + m mean,   running_var as BatchNorm's with N
 * Three allreduces in the forward (N, the sums, the squared deviations) and two in the backward.
 *
 * The backward comes from autograd.  A sum over ranks S = sum_r s_r is built as tot + (s - s),
 * tot being the allreduced value (a constant) and s - s an exact zero through which the gradient
 * reaches this rank's s unchanged; a hook on S then replaces its gradient by the sum over ranks
 * of every rank's, since every rank's loss depends on S: d(sum_r' L_r') / d s_r = sum_r' dL_r'/dS.
 * That is torch's backward (its allreduce of sum_dy and sum_dy_xmu): the input's gradient is
 * that of the sum of the ranks' losses, and the parameters' gradients are each rank's part, to
 * be averaged (or summed) by data parallel as any other's.
 *
 * The hooks run inside the backward pass, in its order, which is the same on every rank (the
 * same model), so their allreduces pair up between ranks, also between data parallel's
 * (ddp.c).  In eval mode, without a process group, or with recording off, no gradient is
 * exchanged; in eval mode nothing is: the running statistics are used, as BatchNorm does (or,
 * without them, each rank's own batch statistics, as torch's).
 */
#include "dist.h"

#include "../nn/module.h"

static nb_tensor *sync_batchnorm_forward(nb_module *m, nb_tensor *x);

static void sync_batchnorm_describe(const nb_module *m, nb_attrs *d) {
    nb__batchnorm1d_class.describe(m, d); /* the same state */
}

static const nb_module_class sync_batchnorm_class = {.name = "SyncBatchNorm",
                                                     .forward = sync_batchnorm_forward,
                                                     .describe = sync_batchnorm_describe};

/* The hook on a sum over ranks: its gradient becomes the sum of every rank's. */
static nb_tensor *sum_grad_over_ranks(nb_tensor *grad, void *ctx) {
    (void)ctx;
    nb_tensor *g = nb_zeros_like(grad); /* on grad's device */
    if (!g || nb_copy(g, grad) != NB_OK || nb_dist_allreduce(g, NB_REDUCE_SUM) != NB_OK) {
        nb_tensor_free(g);
        return nb__fail_prefix("SyncBatchNorm backward"), NULL;
    }
    return g;
}

/* S = the sum over ranks of s, differentiable as the top of this file says; s itself without
 * sync or a process group. */
static nb_tensor *sum_over_ranks(nb_tensor *s, bool sync) {
    if (!sync || !nb_dist_is_initialized()) {
        nb__retain(s);
        return s;
    }
    nb__temps tmp = {0};
    nb_tensor *tot = nb__tmp(&tmp, nb_zeros_like(s));
    if (!tot || nb_copy(tot, s) != NB_OK || nb_dist_allreduce(tot, NB_REDUCE_SUM) != NB_OK)
        return nb__temps_end(&tmp, NULL);
    if (!nb_requires_grad(s)) return nb__temps_end(&tmp, tot);
    nb_tensor *same = nb__tmp(&tmp, nb_detach(s));
    nb_tensor *zero = nb__tmp(&tmp, nb_sub(s, same));
    nb_tensor *S = nb__tmp(&tmp, nb_add(tot, zero));
    if (S && !nb_tensor_register_hook(S, sum_grad_over_ranks, NULL)) S = NULL;
    return nb__temps_end(&tmp, S);
}

/* N: the values per channel on every rank together (exact in float up to 2^24). */
static bool count_over_ranks(int64_t n, bool sync, int64_t *total) {
    float f = (float)n;
    if (sync && nb_dist_is_initialized() &&
        nb__dist_allreduce_host("SyncBatchNorm", &f, 1, NB_REDUCE_SUM) != NB_OK)
        return false;
    *total = (int64_t)f;
    return true;
}

/* The batch's mean and biased var (shape [1, C, 1, ...]), over every rank with sync; false on
 * failure. */
static bool batch_stats(nb_tensor *x, int nd, const int *dims, int64_t n_all, bool sync,
                        nb__temps *tmp, nb_tensor **mean, nb_tensor **xc, nb_tensor **var) {
    nb_tensor *s = nb__tmp(tmp, nb_sum_dims(x, nd, dims, true));
    nb_tensor *S = s ? nb__tmp(tmp, sum_over_ranks(s, sync)) : NULL;
    *mean = S ? nb__tmp(tmp, nb_mul_scalar(S, 1.0f / (float)n_all)) : NULL;
    *xc = *mean ? nb__tmp(tmp, nb_sub(x, *mean)) : NULL;
    nb_tensor *sq = *xc ? nb__tmp(tmp, nb_mul(*xc, *xc)) : NULL;
    nb_tensor *q = sq ? nb__tmp(tmp, nb_sum_dims(sq, nd, dims, true)) : NULL;
    nb_tensor *Q = q ? nb__tmp(tmp, sum_over_ranks(q, sync)) : NULL;
    *var = Q ? nb__tmp(tmp, nb_mul_scalar(Q, 1.0f / (float)n_all)) : NULL;
    return *var != NULL;
}

static nb_tensor *sync_batchnorm_forward(nb_module *m, nb_tensor *x) {
    nb__batchnorm_state *st = NB__STATE(nb__batchnorm_state, m);
    int64_t c = st->num_features;
    if (x->ndim < 2 || x->shape[1] != c)
        return nb__fail(NB_ERR_SHAPE, "SyncBatchNorm: expected [N, %lld, ...], got %s", (long long)c,
                        NB_SHP(x));
    int dims[NB_MAX_DIMS], nd = 0;
    int64_t shape[NB_MAX_DIMS]; /* the per-channel tensors' [1, C, 1, ...] */
    for (int d = 0; d < x->ndim; d++) {
        shape[d] = d == 1 ? c : 1;
        if (d != 1) dims[nd++] = d;
    }
    nb__temps tmp = {0};
    nb_tensor *mean, *xc, *var;
    if (!m->training && st->running_mean) { /* eval: the running statistics, no communication */
        mean = nb__tmp(&tmp, nb_reshape(st->running_mean, x->ndim, shape));
        var = nb__tmp(&tmp, nb_reshape(st->running_var, x->ndim, shape));
        xc = mean && var ? nb__tmp(&tmp, nb_sub(x, mean)) : NULL;
        nb_tensor *y = xc ? nb__tmp(&tmp, nb__batchnorm_scale_shift(xc, var, st->eps, st->weight, st->bias,
                                                                    x->ndim, shape)) : NULL;
        return nb__temps_end(&tmp, y);
    }
    /* batch statistics: synchronised in training (torch's need_sync); in eval mode without
     * running statistics, each rank's own */
    bool sync = m->training;
    int64_t n_all;
    if (!count_over_ranks(nb__numel(x->ndim, x->shape) / c, sync, &n_all)) return NULL;
    if (n_all <= 1)
        return nb__fail(NB_ERR_SHAPE, "SyncBatchNorm: expected more than 1 value per channel over the "
                        "ranks when training, got %lld (input %s on rank %d)", (long long)n_all,
                        NB_SHP(x), nb_dist_rank());
    if (!batch_stats(x, nd, dims, n_all, sync, &tmp, &mean, &xc, &var)) return nb__temps_end(&tmp, NULL);
    if (st->running_mean) nb__batchnorm_update_running(st, mean, var, n_all);
    nb_tensor *y = nb__tmp(&tmp, nb__batchnorm_scale_shift(xc, var, st->eps, st->weight, st->bias, x->ndim,
                                                           shape));
    return nb__temps_end(&tmp, y);
}

static bool is_batchnorm(const nb_module *m) {
    return m->cls == &nb__batchnorm1d_class || m->cls == &nb__batchnorm2d_class;
}

/* Converts m and everything under it; returns how many. */
static int convert(nb_module *m) {
    int n = 0;
    if (is_batchnorm(m)) {
        m->cls = &sync_batchnorm_class;
        n++;
    }
    for (int i = 0; i < m->children.n; i++) n += convert(NB__CHILD(m, i));
    return n;
}

int nb_module_convert_sync_batchnorm(nb_module *model) {
    if (!model) return nb__fail(NB_ERR_NULL, "convert_sync_batchnorm: model is NULL"), -1;
    return convert(model);
}
