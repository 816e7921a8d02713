/*
 * loss.c — the losses of torch.nn.functional and the regularisers of nabla/loss.h.  Each is a
 * composition of differentiable ops, so autograd derives its backward; the formulas and
 * reductions follow torch 1.13 (aten/src/ATen/native/Loss.cpp, LossNLL.cpp and
 * torch/nn/functional.py), cited per function.
 *
 * Shapes: N batch, C classes, d... extra positions; the class dim of [N, C, d...] is 1.
 * Memory: the composite rule (nb__temps, core.h): every tensor a loss makes is a temp, and its
 * exit hands out the result and drops the rest — a graph node keeps what backward needs — so
 * with no scope open only the result is left to the caller.  Ops given NULL return NULL and
 * keep the first error, so a chain is checked once, at its end.
 */
#include "nabla/loss.h"
#include "../ops/op.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define TORCH_IGNORE_INDEX (-100) /* torch's default ignore_index */

static const nb_ce_opts default_ce_opts;

/* ---------------------------------------------------------------- checks */

static bool reduction_ok(const char *op, nb_reduction r, bool batchmean) {
    if ((unsigned)r >= NB_REDUCTION_COUNT)
        return nb__fail(NB_ERR_ARG, "%s: unknown reduction %d", op, (int)r), false;
    if (r == NB_REDUCTION_BATCHMEAN && !batchmean)
        return nb__fail(NB_ERR_ARG, "%s: reduction batchmean is only defined for kl_div_loss",
                        op), false;
    return true;
}

static bool float_ok(const char *op, const char *what, const nb_tensor *t) {
    if (!nb__alive(t)) return nb__fail_input(op, t), false;
    if (t->dtype != NB_F32)
        return nb__fail(NB_ERR_DTYPE, "%s: %s must be float32, got %s", op, what,
                        nb_dtype_name(t->dtype)), false;
    return true;
}

/* Input and target: float32 and of one shape. */
static bool pair_ok(const char *op, const nb_tensor *x, const nb_tensor *t) {
    if (!float_ok(op, "input", x) || !float_ok(op, "target", t)) return false;
    if (!nb__same_shape(x, t))
        return nb__fail(NB_ERR_SHAPE, "%s: target %s does not match input %s", op, NB_SHP(t),
                        NB_SHP(x)), false;
    return true;
}

/* An optional (NULL) float32 tensor that broadcasts to x's shape without changing it. */
static bool broadcasts_to(const char *op, const char *what, const nb_tensor *w,
                          const nb_tensor *x) {
    if (!w) return true;
    if (!float_ok(op, what, w)) return false;
    int nd;
    int64_t shape[NB_MAX_DIMS];
    if (!nb__broadcast_shape(w->ndim, w->shape, x->ndim, x->shape, &nd, shape) ||
        nd != x->ndim || memcmp(shape, x->shape, sizeof(int64_t) * (size_t)nd))
        return nb__fail(NB_ERR_SHAPE, "%s: %s %s does not broadcast to input %s", op, what,
                        NB_SHP(w), NB_SHP(x)), false;
    return true;
}

/* ---------------------------------------------------------------- shared pieces */

/* The per-element losses l reduced by mean, sum, or kept (none); a reference the caller owns,
 * as an op's result. */
static nb_tensor *reduce(nb_tensor *l, nb_reduction r) {
    if (r == NB_REDUCTION_SUM) return nb_sum(l);
    if (r == NB_REDUCTION_MEAN) return nb_mean(l);
    nb__retain(l);
    return l;
}

/* x log x with 0 log 0 = 0 (torch's xlogy(x, x)): x * log(x == 0 ? 1 : x).  A negative x
 * still gives NaN, as in torch.  Its gradient at x = 0 is 0 (the true one is -inf). */
static nb_tensor *xlogx(nb_tensor *x) {
    nb__temps tmp = {0};
    nb_tensor *zero = nb__tmp(&tmp, nb_zeros(0, NULL)), *one = nb__tmp(&tmp, nb_ones(0, NULL));
    nb_tensor *is0 = nb__tmp(&tmp, nb_eq(x, zero)), *safe = nb__tmp(&tmp, nb_where(is0, one, x));
    nb_tensor *lg = nb__tmp(&tmp, nb_log(safe));
    return nb__temps_end(&tmp, nb__tmp(&tmp, nb_mul(x, lg)));
}

/* ---------------------------------------------------------------- regression losses */

/* torch.nn.MSELoss: l = (x - y)^2. */
nb_tensor *nb_mse_loss(nb_tensor *input, nb_tensor *target, nb_reduction reduction) {
    if (!pair_ok("mse_loss", input, target) || !reduction_ok("mse_loss", reduction, false))
        return NULL;
    nb__temps tmp = {0};
    nb_tensor *d = nb__tmp(&tmp, nb_sub(input, target));
    nb_tensor *l = nb__tmp(&tmp, nb_mul(d, d));
    return nb__temps_end(&tmp, nb__tmp(&tmp, reduce(l, reduction)));
}

/* torch.nn.L1Loss: l = |x - y|; abs passes sign(0) = 0 at ties, as torch. */
nb_tensor *nb_l1_loss(nb_tensor *input, nb_tensor *target, nb_reduction reduction) {
    if (!pair_ok("l1_loss", input, target) || !reduction_ok("l1_loss", reduction, false))
        return NULL;
    nb__temps tmp = {0};
    nb_tensor *d = nb__tmp(&tmp, nb_sub(input, target));
    nb_tensor *l = nb__tmp(&tmp, nb_abs(d));
    return nb__temps_end(&tmp, nb__tmp(&tmp, reduce(l, reduction)));
}

/* ---------------------------------------------------------------- binary cross-entropy */

/* torch requires 0 <= p <= 1 (a NaN fails too) and so do we: log of a negative p is NaN. */
static bool probabilities_ok(const char *op, nb_tensor *x) {
    float *p = nb__host_copy(x);
    if (!p) return false;
    int64_t n = nb__numel(x->ndim, x->shape), bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++)
        if (!(p[i] >= 0.0f && p[i] <= 1.0f)) bad = i;
    double v = bad >= 0 ? p[bad] : 0.0;
    nb__host_free(p, x);
    if (bad >= 0)
        return nb__fail(NB_ERR_ARG, "%s: input %g at element %lld is outside [0, 1]", op, v,
                        (long long)bad), false;
    return true;
}

/* max(log p, -100), torch's clamp of binary_cross_entropy.  p is first raised to the smallest
 * positive float (2^-149, whose log -103.3 the outer clamp turns into -100): then p = 0 never
 * reaches log, and the backward sees 0 / 2^-149 = 0 where clamp(log p) alone would give
 * 0 / 0.  So the gradient of a clamped term is 0, the derivative of the clamped function;
 * torch's closed form (p - y) / max(p (1 - p), 1e-12) differs only for p < e^-100 or
 * 1 - p < e^-100, where neither is meaningful. */
static nb_tensor *clamped_log(nb_tensor *p) {
    nb__temps tmp = {0};
    nb_tensor *pc = nb__tmp(&tmp, nb_clamp(p, 0x1p-149f, INFINITY));
    nb_tensor *lg = nb__tmp(&tmp, nb_log(pc));
    return nb__temps_end(&tmp, nb__tmp(&tmp, nb_clamp(lg, -100.0f, INFINITY)));
}

/* torch.nn.BCELoss: l = w ((y - 1) max(log(1 - p), -100) - y max(log p, -100)), in the order
 * of torch's kernel. */
nb_tensor *nb_bce_loss(nb_tensor *input, nb_tensor *target, nb_tensor *weight,
                       nb_reduction reduction) {
    const char *op = "bce_loss";
    if (!pair_ok(op, input, target) || !broadcasts_to(op, "weight", weight, input) ||
        !reduction_ok(op, reduction, false) || !probabilities_ok(op, input))
        return NULL;
    nb__temps tmp = {0};
    nb_tensor *log_p = nb__tmp(&tmp, clamped_log(input)), *neg_p = nb__tmp(&tmp, nb_neg(input));
    nb_tensor *q = nb__tmp(&tmp, nb_add_scalar(neg_p, 1.0f));
    nb_tensor *log_q = nb__tmp(&tmp, clamped_log(q));
    nb_tensor *ym1 = nb__tmp(&tmp, nb_add_scalar(target, -1.0f));
    nb_tensor *a = nb__tmp(&tmp, nb_mul(ym1, log_q));
    nb_tensor *b = nb__tmp(&tmp, nb_mul(target, log_p));
    nb_tensor *l = nb__tmp(&tmp, nb_sub(a, b));
    if (weight) l = nb__tmp(&tmp, nb_mul(l, weight));
    return nb__temps_end(&tmp, nb__tmp(&tmp, reduce(l, reduction)));
}

/* torch.nn.BCEWithLogitsLoss, in torch's stable form with lw = 1 + (pw - 1) y:
 *     l = w [(1 - y) x + lw max(-x, 0) + lw log(1 + exp(-|x|))]
 * max(-x, 0) and -|x| are selected by the one mask x >= 0, so both kinks sit on the same
 * side and the gradient is the exact (1 + (pw - 1) y) sigmoid(x) - pw y even at x = 0 (abs
 * and relu, with their zero subgradients at 0, would give -y there instead of 1/2 - y).
 * log(1 + e^-|x|) is softplus(-|x|), log1p-accurate; the first two terms are added before the
 * small third one so that -x + x cancels exactly for x << 0 with y = 0. */
nb_tensor *nb_bce_with_logits_loss(nb_tensor *input, nb_tensor *target, nb_tensor *weight,
                                   nb_tensor *pos_weight, nb_reduction reduction) {
    const char *op = "bce_with_logits_loss";
    if (!pair_ok(op, input, target) || !broadcasts_to(op, "weight", weight, input) ||
        !broadcasts_to(op, "pos_weight", pos_weight, input) || !reduction_ok(op, reduction, false))
        return NULL;
    nb__temps tmp = {0};
    nb_tensor *zero = nb__tmp(&tmp, nb_zeros(0, NULL)), *pos = nb__tmp(&tmp, nb_ge(input, zero));
    nb_tensor *neg_x = nb__tmp(&tmp, nb_neg(input));
    nb_tensor *relu_neg = nb__tmp(&tmp, nb_where(pos, zero, neg_x)); /* max(-x, 0) */
    nb_tensor *neg_abs = nb__tmp(&tmp, nb_where(pos, neg_x, input)); /* -|x| */
    nb_tensor *lse = nb__tmp(&tmp, nb_softplus(neg_abs, 1.0f, 20.0f));
    nb_tensor *neg_y = nb__tmp(&tmp, nb_neg(target));
    nb_tensor *one_minus_y = nb__tmp(&tmp, nb_add_scalar(neg_y, 1.0f));
    nb_tensor *a = nb__tmp(&tmp, nb_mul(one_minus_y, input));
    if (pos_weight) {
        nb_tensor *pw1 = nb__tmp(&tmp, nb_add_scalar(pos_weight, -1.0f));
        nb_tensor *lw = nb__tmp(&tmp, nb_mul(pw1, target));
        lw = nb__tmp(&tmp, nb_add_scalar(lw, 1.0f));
        relu_neg = nb__tmp(&tmp, nb_mul(lw, relu_neg));
        lse = nb__tmp(&tmp, nb_mul(lw, lse));
    }
    nb_tensor *l = nb__tmp(&tmp, nb_add(a, relu_neg));
    l = nb__tmp(&tmp, nb_add(l, lse));
    if (weight) l = nb__tmp(&tmp, nb_mul(l, weight));
    return nb__temps_end(&tmp, nb__tmp(&tmp, reduce(l, reduction)));
}

/* ---------------------------------------------------------------- cross-entropy, NLL */

/* Class targets checked and made ready to gather: each must be the ignore index or lie in
 * [0, C).  Returns an int32 index of the gathered shape gshape ([N, 1, d...]): a view of t when
 * nothing is ignored, else a copy with ignored targets set to 0 and *keep a float 1/0 mask of
 * that shape.  *kept counts the targets that are not ignored. */
static nb_tensor *class_index(const char *op, nb_tensor *t, int64_t classes, int ignore,
                              int gndim, const int64_t *gshape, nb_tensor **keep, int64_t *kept) {
    nb_tensor *tc = nb__contig(t);
    int32_t *y = tc ? nb__host_copy(tc) : NULL; /* the targets, checked on the host */
    if (!y) {
        if (tc != t) nb_tensor_free(tc);
        return NULL;
    }
    int64_t n = nb__numel(tc->ndim, tc->shape), ignored = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] == ignore) {
            ignored++;
        } else if (y[i] < 0 || y[i] >= classes) {
            nb__fail(NB_ERR_ARG, "%s: target %d at position %lld is out of range for %lld "
                     "classes", op, (int)y[i], (long long)i, (long long)classes);
            nb__host_free(y, tc);
            if (tc != t) nb_tensor_free(tc);
            return NULL;
        }
    }
    *kept = n - ignored;
    *keep = NULL;
    nb_tensor *index;
    if (!ignored) {
        index = nb_reshape(tc, gndim, gshape);
    } else {
        index = nb__new(NB_I32, gndim, gshape);
        *keep = index ? nb__new(NB_F32, gndim, gshape) : NULL;
        nb_arena *home = nb__current_arena();
        float *mask = *keep ? nb__home_alloc(home, sizeof(float) * (size_t)n) : NULL;
        if (mask) {
            for (int64_t i = 0; i < n; i++) {
                mask[i] = y[i] == ignore ? 0.0f : 1.0f;
                y[i] = y[i] == ignore ? 0 : y[i];
            }
            nb__store_logical(index, y);
            nb__store_logical(*keep, mask);
            nb__home_free(home, mask, sizeof(float) * (size_t)n);
        } else {
            nb_tensor_free(*keep);
            *keep = NULL;
            nb_tensor_free(index);
            index = NULL;
        }
    }
    nb__host_free(y, tc);
    if (tc != t) nb_tensor_free(tc);
    return index;
}

/* torch's nll_loss_nd and cross_entropy_loss_label_smoothing on log-probabilities lp
 * [N, C, d...] and a checked index ([N, 1, d...]):
 *     q_i = (1 - eps) w[y_i] lp_i[y_i] + (eps / C) sum_c w[c] lp_i[c]   (0 where ignored)
 *     none: -q (target's shape)   sum: -sum q
 *     mean: -sum q / sum_{kept} w[y_i]   (/ kept count without weights)
 * The picked log-probabilities come from one gather, so the backward is a scatter into lp. */
static nb_tensor *index_loss(nb_tensor *lp, int64_t classes, nb_tensor *index, nb_tensor *keep,
                             int64_t kept, nb_tensor *weight, nb_tensor *wview, float eps,
                             nb_reduction r, int tndim, const int64_t *tshape) {
    nb__temps tmp = {0};
    nb_tensor *q = nb__tmp(&tmp, nb_gather(lp, 1, index)), *wy = NULL;
    if (weight) {
        nb_tensor *flat = nb__tmp(&tmp, nb_reshape(index, NB_SHAPE(-1)));
        nb_tensor *picked = nb__tmp(&tmp, nb_index_select(weight, 0, flat));
        wy = nb__tmp(&tmp, nb_reshape(picked, index->ndim, index->shape));
        q = nb__tmp(&tmp, nb_mul(q, wy));
    }
    if (eps > 0.0f) {
        nb_tensor *wl = wview ? nb__tmp(&tmp, nb_mul(lp, wview)) : lp;
        nb_tensor *s = nb__tmp(&tmp, nb_sum_dims(wl, 1, (const int[]){1}, true));
        s = nb__tmp(&tmp, nb_mul_scalar(s, eps / (float)classes));
        q = nb__tmp(&tmp, nb_mul_scalar(q, 1.0f - eps));
        q = nb__tmp(&tmp, nb_add(q, s));
    }
    if (keep) { /* where, not a product: an ignored row's q may be -inf and -inf * 0 is NaN */
        nb_tensor *zero = nb__tmp(&tmp, nb_zeros(0, NULL));
        q = nb__tmp(&tmp, nb_where(keep, q, zero));
        if (wy) wy = nb__tmp(&tmp, nb_where(keep, wy, zero));
    }
    nb_tensor *out;
    if (r == NB_REDUCTION_NONE) {
        out = nb_neg(nb__tmp(&tmp, nb_reshape(q, tndim, tshape)));
    } else {
        nb_tensor *s = nb__tmp(&tmp, nb_sum(q));
        if (r == NB_REDUCTION_SUM) {
            out = nb_neg(s);
        } else if (wy) {
            nb_tensor *den = nb__tmp(&tmp, nb_sum(wy));
            out = nb_neg(nb__tmp(&tmp, nb_div(s, den)));
        } else { /* kept == 0 gives 0 * -inf = NaN, torch's mean over nothing */
            out = nb_mul_scalar(s, -1.0f / (float)kept);
        }
    }
    return nb__temps_end(&tmp, nb__tmp(&tmp, out));
}

/* torch's cross_entropy_loss_prob_target on log-probabilities lp and probabilities t of one
 * shape: l = -sum_c w[c] t'_c lp_c over dim 1, t' = (1 - eps) t + eps / C; mean divides by
 * numel / C (weights do not enter the denominator here, as in torch). */
static nb_tensor *prob_loss(nb_tensor *lp, int64_t classes, nb_tensor *t, nb_tensor *wview,
                            float eps, nb_reduction r) {
    nb__temps tmp = {0};
    nb_tensor *ts = t;
    if (eps > 0.0f) {
        nb_tensor *scaled = nb__tmp(&tmp, nb_mul_scalar(t, 1.0f - eps));
        ts = nb__tmp(&tmp, nb_add_scalar(scaled, eps / (float)classes));
    }
    nb_tensor *prod = nb__tmp(&tmp, nb_mul(lp, ts));
    if (wview) prod = nb__tmp(&tmp, nb_mul(prod, wview));
    nb_tensor *per = nb__tmp(&tmp, nb_sum_dims(prod, 1, (const int[]){1}, false)), *out;
    if (r == NB_REDUCTION_NONE) {
        out = nb_neg(per);
    } else {
        int64_t m = per ? nb__numel(per->ndim, per->shape) : 0;
        nb_tensor *s = nb__tmp(&tmp, nb_sum(per));
        out = r == NB_REDUCTION_SUM ? nb_neg(s)
                                    : nb_mul_scalar(s, -1.0f / (float)m); /* m == 0: NaN, as torch */
    }
    return nb__temps_end(&tmp, nb__tmp(&tmp, out));
}

/* The checks and the batching shared by cross_entropy (from_logits) and nll_loss. */
/* Whether a 1-D int32 target holds the index k anywhere (then the fused path does not apply). */
static bool holds_index(const nb_tensor *t, int k) {
    int32_t *y = nb__host_copy(t);
    bool found = !y; /* no copy: do not take the fused path */
    for (int64_t i = 0; y && !found && i < t->shape[0]; i++) found = y[i] == k;
    if (y) nb__host_free(y, t);
    return found;
}

static nb_tensor *class_loss(const char *op, nb_tensor *x, nb_tensor *t, const nb_ce_opts *opts,
                             bool from_logits) {
    const nb_ce_opts *o = opts ? opts : &default_ce_opts;
    if (!float_ok(op, "input", x)) return NULL;
    if (!nb__alive(t)) return nb__fail_input(op, t);
    if (x->ndim == 0)
        return nb__fail(NB_ERR_SHAPE, "%s: input [] has no class dimension (expected [N, C], "
                        "[N, C, d...] or [C])", op);
    if (!reduction_ok(op, o->reduction, false)) return NULL;
    float eps = o->label_smoothing;
    if (!(eps >= 0.0f && eps <= 1.0f))
        return nb__fail(NB_ERR_ARG, "%s: label_smoothing must be in [0, 1], got %g", op,
                        (double)eps);
    if (!from_logits && eps != 0.0f)
        return nb__fail(NB_ERR_ARG, "%s: label_smoothing is cross_entropy's; got %g", op,
                        (double)eps);
    bool probs = from_logits && t->dtype == NB_F32;
    if (!probs && t->dtype != NB_I32)
        return nb__fail(NB_ERR_DTYPE, from_logits
                        ? "%s: target must be int32 class indices or float32 probabilities, got %s"
                        : "%s: target must be int32 class indices, got %s",
                        op, nb_dtype_name(t->dtype));
    bool unbatched = x->ndim == 1;
    int cdim = unbatched ? 0 : 1;
    int64_t classes = x->shape[cdim];
    bool fits = probs ? nb__same_shape(x, t) : t->ndim == x->ndim - 1;
    for (int d = 0; !probs && fits && d < t->ndim; d++)
        fits = t->shape[d] == x->shape[d ? d + 1 : 0]; /* [N, d...] against [N, C, d...] */
    if (!fits)
        return nb__fail(NB_ERR_SHAPE, "%s: target %s does not match input %s", op, NB_SHP(t),
                        NB_SHP(x));
    nb_tensor *w = o->weight;
    if (w && !float_ok(op, "weight", w)) return NULL;
    if (w && (w->ndim != 1 || w->shape[0] != classes))
        return nb__fail(NB_ERR_SHAPE, "%s: weight %s does not match the %lld classes of input %s",
                        op, NB_SHP(w), (long long)classes, NB_SHP(x));
    int ignore = o->has_ignore_index ? o->ignore_index : TORCH_IGNORE_INDEX;
    if (probs && ignore >= 0)
        return nb__fail(NB_ERR_ARG, "%s: ignore_index %d is not supported for probability targets",
                        op, ignore);

    if (from_logits && !probs && x->ndim == 2 && !w && eps == 0.0f &&
        o->reduction != NB_REDUCTION_NONE && !holds_index(t, ignore))
        return nb__cross_entropy_indices(x, t, o->reduction == NB_REDUCTION_MEAN);

    /* [C] is one sample: seen as [1, C] (target [] as [1]) */
    int64_t bshape[NB_MAX_DIMS], tshape[NB_MAX_DIMS];
    int nd = unbatched ? 2 : x->ndim, tnd = probs ? nd : nd - 1;
    for (int d = 0; d < nd; d++) bshape[d] = unbatched ? (d ? classes : 1) : x->shape[d];
    for (int d = 0; d < tnd; d++) tshape[d] = probs ? bshape[d] : bshape[d ? d + 1 : 0];
    nb__temps tmp = {0};
    nb_tensor *index = NULL, *keep = NULL;
    int64_t kept = 0;
    if (!probs) {
        int64_t gshape[NB_MAX_DIMS];
        memcpy(gshape, bshape, sizeof gshape);
        gshape[1] = 1;
        index = nb__tmp(&tmp, class_index(op, t, classes, ignore, nd, gshape, &keep, &kept));
        nb__tmp(&tmp, keep);
        if (!index) return nb__temps_end(&tmp, NULL);
    }
    nb_tensor *xb = unbatched ? nb__tmp(&tmp, nb_reshape(x, nd, bshape)) : x;
    nb_tensor *tb = probs && unbatched ? nb__tmp(&tmp, nb_reshape(t, nd, bshape)) : t;
    nb_tensor *lp = from_logits ? nb__tmp(&tmp, nb_log_softmax(xb, 1)) : xb, *wview = NULL;
    if (w) {
        int64_t wshape[NB_MAX_DIMS];
        for (int d = 0; d < nd; d++) wshape[d] = d == 1 ? classes : 1;
        wview = nb__tmp(&tmp, nb_reshape(w, nd, wshape));
    }
    nb_tensor *out = nb__tmp(&tmp, probs ? prob_loss(lp, classes, tb, wview, eps, o->reduction)
                                         : index_loss(lp, classes, index, keep, kept, w, wview,
                                                      eps, o->reduction, tnd, tshape));
    if (unbatched && o->reduction == NB_REDUCTION_NONE)
        out = nb__tmp(&tmp, nb_reshape(out, 0, NULL));
    return nb__temps_end(&tmp, out);
}

/* torch.nn.CrossEntropyLoss = nll_loss(log_softmax(x, 1)) for class targets, the soft-target
 * form for probabilities; label smoothing as torch 1.13 (see index_loss and prob_loss). */
nb_tensor *nb_cross_entropy(nb_tensor *input, nb_tensor *target, const nb_ce_opts *opts) {
    return class_loss("cross_entropy", input, target, opts, true);
}

/* torch.nn.NLLLoss: l_i = -w[y_i] x_i[y_i]. */
nb_tensor *nb_nll_loss(nb_tensor *input, nb_tensor *target, const nb_ce_opts *opts) {
    return class_loss("nll_loss", input, target, opts, false);
}

/* ---------------------------------------------------------------- KL divergence */

/* torch.nn.KLDivLoss (input = log q):
 *     l = xlogy(t, t) - t x        or, log_target,   l = exp(t) (t - x)
 * batchmean = sum / x.size(0) (F.kl_div; a 0-dim input is not divided). */
nb_tensor *nb_kl_div_loss(nb_tensor *input, nb_tensor *target, nb_reduction reduction,
                          bool log_target) {
    const char *op = "kl_div_loss";
    if (!pair_ok(op, input, target) || !reduction_ok(op, reduction, true)) return NULL;
    nb__temps tmp = {0};
    nb_tensor *l;
    if (log_target) {
        nb_tensor *e = nb__tmp(&tmp, nb_exp(target)), *d = nb__tmp(&tmp, nb_sub(target, input));
        l = nb__tmp(&tmp, nb_mul(e, d));
    } else {
        nb_tensor *tlt = nb__tmp(&tmp, xlogx(target)), *tx = nb__tmp(&tmp, nb_mul(target, input));
        l = nb__tmp(&tmp, nb_sub(tlt, tx));
    }
    nb_tensor *out;
    if (reduction != NB_REDUCTION_BATCHMEAN) {
        out = reduce(l, reduction);
    } else {
        nb_tensor *s = nb__tmp(&tmp, nb_sum(l));
        float n = input->ndim ? (float)input->shape[0] : 1.0f;
        out = nb_mul_scalar(s, 1.0f / n);
    }
    return nb__temps_end(&tmp, nb__tmp(&tmp, out));
}

/* ---------------------------------------------------------------- regularisers */

/* lambda * sum_k sum f(w_k), f = |.| (l1) or (.)^2 (l2); 0 for no parameters. */
static nb_tensor *penalty(const char *op, int n, nb_tensor *const *params, float lambda, bool l2) {
    if (n < 0 || (n > 0 && !params))
        return nb__fail(NB_ERR_ARG, "%s: needs an array of n >= 0 parameters, got n = %d%s", op, n,
                        params ? "" : " and NULL");
    if (!isfinite(lambda))
        return nb__fail(NB_ERR_ARG, "%s: lambda must be finite, got %g", op, (double)lambda);
    for (int i = 0; i < n; i++)
        if (!float_ok(op, "parameter", params[i])) return NULL;
    if (n == 0) return nb_zeros(0, NULL);
    nb__temps tmp = {0};
    nb_tensor *acc = NULL;
    for (int i = 0; i < n; i++) {
        nb_tensor *p = params[i], *f = nb__tmp(&tmp, l2 ? nb_mul(p, p) : nb_abs(p));
        nb_tensor *s = nb__tmp(&tmp, nb_sum(f));
        acc = i == 0 ? s : nb__tmp(&tmp, nb_add(acc, s));
    }
    return nb__temps_end(&tmp, nb__tmp(&tmp, nb_mul_scalar(acc, lambda)));
}

nb_tensor *nb_l1_penalty(int n, nb_tensor *const *params, float lambda) {
    return penalty("l1_penalty", n, params, lambda, false);
}

nb_tensor *nb_l2_penalty(int n, nb_tensor *const *params, float lambda) {
    return penalty("l2_penalty", n, params, lambda, true);
}

/* H = -mean over positions of sum_c p_c log p_c along dim.  From logits, log p = log_softmax
 * and p = exp(log p), as torch.distributions.Categorical(logits=x).entropy(), which also clamps
 * log p to >= -FLT_MAX so that a masked logit (-inf) adds 0, not 0 * -inf = NaN. */
nb_tensor *nb_entropy(nb_tensor *x, int dim, bool from_logits) {
    const char *op = "entropy";
    if (!float_ok(op, "input", x)) return NULL;
    if (x->ndim == 0)
        return nb__fail(NB_ERR_SHAPE, "%s: input [] has no dim to take the entropy along", op);
    if (!nb__norm_dim(op, &dim, x->ndim)) return NULL;
    nb__temps tmp = {0};
    nb_tensor *plogp;
    if (from_logits) {
        nb_tensor *raw = nb__tmp(&tmp, nb_log_softmax(x, dim));
        nb_tensor *lp = nb__tmp(&tmp, nb_clamp(raw, -FLT_MAX, INFINITY));
        nb_tensor *p = nb__tmp(&tmp, nb_exp(lp));
        plogp = nb__tmp(&tmp, nb_mul(p, lp));
    } else {
        plogp = nb__tmp(&tmp, xlogx(x));
    }
    nb_tensor *h = nb__tmp(&tmp, nb_sum_dims(plogp, 1, &dim, false));
    nb_tensor *m = nb__tmp(&tmp, nb_mean(h));
    return nb__temps_end(&tmp, nb__tmp(&tmp, nb_neg(m)));
}

/* ---------------------------------------------------------------- distillation */

/* Hinton et al.'s loss, as their torch recipes write it:
 *     alpha T^2 F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction='batchmean')
 *       + (1 - alpha) F.cross_entropy(s, y)
 * The KL term is kl_div_loss's (xlogy(p, p) - p log q summed, / N), so p = 0 adds 0.  Its
 * gradient w.r.t. s is alpha T (q - p) / N: T^2 brings it back to the scale of the hard term's
 * (q_1 - onehot) / N, as the paper intends.  The teacher is detached, so no gradient reaches it
 * whatever it requires.  1 / T is exact for powers of two; otherwise the product differs from
 * torch's s / T by one rounding. */
nb_tensor *nb_distill_loss(nb_tensor *student, nb_tensor *teacher, nb_tensor *target,
                           float temperature, float alpha, const nb_ce_opts *hard) {
    const char *op = "distill_loss";
    if (!float_ok(op, "student logits", student) || !float_ok(op, "teacher logits", teacher)) return NULL;
    if (student->ndim != 2)
        return nb__fail(NB_ERR_SHAPE, "%s: student logits %s must be [N, C]", op, NB_SHP(student));
    if (!nb__same_shape(student, teacher))
        return nb__fail(NB_ERR_SHAPE, "%s: teacher logits %s do not match the student's %s (the two "
                        "models must have the same number of outputs)", op, NB_SHP(teacher), NB_SHP(student));
    if (!(isfinite(temperature) && temperature > 0.0f))
        return nb__fail(NB_ERR_ARG, "%s: temperature must be finite and above 0, got %g", op,
                        (double)temperature);
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return nb__fail(NB_ERR_ARG, "%s: alpha must be in [0, 1], got %g", op, (double)alpha);
    if (hard && hard->reduction != NB_REDUCTION_MEAN)
        return nb__fail(NB_ERR_ARG, "%s: the hard term's reduction must be mean, got %d", op,
                        (int)hard->reduction);
    nb__temps tmp = {0};
    float inv_t = 1.0f / temperature;
    nb_tensor *fixed = nb__tmp(&tmp, nb_detach(teacher));
    nb_tensor *ts = nb__tmp(&tmp, nb_mul_scalar(fixed, inv_t));
    nb_tensor *p = nb__tmp(&tmp, nb_softmax(ts, 1));
    nb_tensor *ss = nb__tmp(&tmp, nb_mul_scalar(student, inv_t));
    nb_tensor *log_q = nb__tmp(&tmp, nb_log_softmax(ss, 1));
    nb_tensor *kl = nb__tmp(&tmp, nb_kl_div_loss(log_q, p, NB_REDUCTION_BATCHMEAN, false));
    nb_tensor *ce = nb__tmp(&tmp, nb_cross_entropy(student, target, hard));
    nb_tensor *soft = nb__tmp(&tmp, nb_mul_scalar(kl, alpha * temperature * temperature));
    nb_tensor *hard_part = nb__tmp(&tmp, nb_mul_scalar(ce, 1.0f - alpha));
    return nb__temps_end(&tmp, nb__tmp(&tmp, nb_add(soft, hard_part)));
}
