/*
 * nabla/loss.h — the loss functions of torch.nn (as torch.nn.functional computes them) and
 * regularisers to add to a loss.
 *
 * Every function is built from differentiable ops, so the result carries a graph back to every
 * input that requires grad (input, float targets, weights) and nb_backward works as in torch.
 * Results follow the library's ownership rule: in the innermost open scope, or owned by the
 * caller when none is open (intermediates are released either way).
 *
 * Reductions (torch's `reduction=`): MEAN averages the per-element losses (for class-index
 * targets with class weights: divides by the sum of the weights of the targets, as torch),
 * SUM adds them, NONE returns them with the shape of the target (of the batch positions for
 * cross-entropy).  BATCHMEAN is kl_div's: the sum divided by the batch size (dim 0).
 *
 * Errors (NULL returned, message set): an input that is not float32, targets whose shape differs
 * from the input's ("cross_entropy: target [32] does not match input [64,10]"), a target dtype
 * the loss does not take, a class index outside [0, C) that is not the ignore_index, weights
 * that do not fit, a label_smoothing outside [0, 1], a reduction the loss does not have.
 * Unlike torch's mse_loss, l1_loss and kl_div, target is never broadcast against input: a
 * [N,1] vs [N] mismatch is nearly always a bug, so it is an error instead of torch's warning
 * (torch's BCE losses refuse it too).
 */
#ifndef NABLA_LOSS_H
#define NABLA_LOSS_H

#include "../nabla.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    NB_REDUCTION_MEAN,      /* zero: torch's default */
    NB_REDUCTION_SUM,
    NB_REDUCTION_NONE,
    NB_REDUCTION_BATCHMEAN, /* kl_div only: sum / input.size(0) */
    NB_REDUCTION_COUNT
} nb_reduction;

/* (x - y)^2 elementwise; input and target of one shape. */
NB_API nb_tensor *nb_mse_loss(nb_tensor *input, nb_tensor *target, nb_reduction reduction);
/* |x - y| elementwise (MAE); the gradient at x == y is 0, as torch's sign(0). */
NB_API nb_tensor *nb_l1_loss(nb_tensor *input, nb_tensor *target, nb_reduction reduction);

/* Binary cross-entropy on probabilities p in [0, 1] (an element outside is NB_ERR_ARG, as torch):
 *   l = -w [y log p + (1 - y) log(1 - p)],  each log clamped to >= -100 as torch does, so p = 0
 * or 1 gives finite values.  weight (or NULL) broadcasts to the input's shape. */
NB_API nb_tensor *nb_bce_loss(nb_tensor *input, nb_tensor *target, nb_tensor *weight,
                       nb_reduction reduction);
/* Binary cross-entropy on logits x, in the stable form
 *   l = w [(1 - y) x + (1 + (pw - 1) y) (max(-x, 0) + log(1 + exp(-|x|)))]
 * (with pw = 1: max(x, 0) - x y + log(1 + exp(-|x|))), finite for any x.  pos_weight pw (or
 * NULL) weighs the positive term, broadcast along the last dims as torch ([C] for [N, C]);
 * weight (or NULL) broadcasts to the input's shape. */
NB_API nb_tensor *nb_bce_with_logits_loss(nb_tensor *input, nb_tensor *target, nb_tensor *weight,
                                   nb_tensor *pos_weight, nb_reduction reduction);

/* Options of cross_entropy and nll_loss; zero-initialised they are torch's defaults. */
typedef struct {
    nb_reduction reduction;
    float label_smoothing; /* eps in [0, 1]: cross_entropy only */
    nb_tensor *weight;     /* [C] class weights, or NULL */
    bool has_ignore_index; /* false: ignore_index is torch's default, -100 */
    int ignore_index;      /* class-index targets equal to it add nothing, nor count in MEAN */
} nb_ce_opts;

/* Cross-entropy of logits x [N, C] or [N, C, d1, ...] (or unbatched [C]); the class dim is 1.
 * The target's dtype says its kind:
 *  - int32 class indices y of shape [N] / [N, d1, ...] / []:
 *      l_i = (1 - eps) w[y_i] (-log p_i[y_i]) + (eps / C) sum_c w[c] (-log p_i[c])
 *    (0 where y_i == ignore_index; w = 1 without weights), log p = log_softmax(x, 1).
 *    MEAN = sum_i l_i / sum_{i not ignored} w[y_i]: both terms share torch's denominator.
 *  - float32 probabilities t of the input's shape:
 *      l_i = -sum_c w[c] t'_ic log p_ic,  t' = (1 - eps) t + eps / C;  MEAN = sum l / (numel / C).
 *    ignore_index does not apply (setting it >= 0 is an error, as torch).
 * Computed as log_softmax + gather (never one-hot), so it is stable for any logits and its
 * backward costs one pass.  opts may be NULL (torch's defaults). */
NB_API nb_tensor *nb_cross_entropy(nb_tensor *input, nb_tensor *target, const nb_ce_opts *opts);
/* Negative log-likelihood of log-probabilities [N, C] / [N, C, d...] / [C] with int32 class
 * targets: l_i = -w[y_i] input_i[y_i], the weighting, ignore_index and MEAN of cross_entropy.
 * label_smoothing must be 0.  opts may be NULL. */
NB_API nb_tensor *nb_nll_loss(nb_tensor *input, nb_tensor *target, const nb_ce_opts *opts);
/* Kullback-Leibler divergence with input = log q (log-probabilities), as torch's kl_div:
 *   l = t (log t - x)          (target probabilities; 0 where t = 0)
 *   l = exp(t) (t - x)         (log_target: the target given as log-probabilities)
 * MEAN averages over every element (torch's "mean", rarely what is meant); BATCHMEAN is the
 * sum / N, the mathematical KL divergence per sample. */
NB_API nb_tensor *nb_kl_div_loss(nb_tensor *input, nb_tensor *target, nb_reduction reduction,
                          bool log_target);

/* ---------------------------------------------------------------- regularisers
 * Scalar terms to add to a loss; params are n tensors (e.g. from nb_module_parameters). */

/* lambda * sum_k sum |w_k| (lasso; the gradient at w = 0 is 0). */
NB_API nb_tensor *nb_l1_penalty(int n, nb_tensor *const *params, float lambda);
/* lambda * sum_k sum w_k^2.  Its gradient is 2 lambda w, so torch's SGD weight_decay = wd
 * (which adds wd w to the gradient) equals an L2 penalty with lambda = wd / 2 (for plain SGD;
 * with Adam the two differ, and AdamW's decoupled decay is neither). */
NB_API nb_tensor *nb_l2_penalty(int n, nb_tensor *const *params, float lambda);
/* Entropy H = -sum_c p_c log p_c along dim, averaged over every other position (the batch).
 * from_logits: x are logits and p = softmax(x, dim) (computed through log_softmax, stable);
 * else x are probabilities taken as given, with 0 log 0 = 0. */
NB_API nb_tensor *nb_entropy(nb_tensor *x, int dim, bool from_logits);

/* ---------------------------------------------------------------- distillation */

/* Knowledge distillation (Hinton, Vinyals and Dean 2015): student logits s [N, C] learn from a
 * teacher's logits t [N, C] softened by a temperature T, and from the labels y:
 *   L = alpha T^2 KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) CE(s, y)
 * with the KL term torch's F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1),
 * reduction='batchmean') (summed over classes, averaged over the batch).  T^2 keeps the soft
 * term's gradient, which shrinks as 1 / T^2, on the scale of the hard one's.  The teacher's
 * logits carry no gradient (they are detached).  y is cross_entropy's target (int32 classes
 * [N] or float32 probabilities [N, C]); hard (or NULL: torch's defaults) are the options of
 * the cross-entropy term, whose reduction must be MEAN.
 * Errors: student logits that are not [N, C] or a teacher of another shape (NB_ERR_SHAPE,
 * naming both), T not finite or <= 0, alpha outside [0, 1], a reduction other than MEAN
 * (NB_ERR_ARG, naming it); then cross_entropy's. */
NB_API nb_tensor *nb_distill_loss(nb_tensor *student, nb_tensor *teacher, nb_tensor *target,
                                  float temperature, float alpha, const nb_ce_opts *hard);

#ifdef __cplusplus
}
#endif
#endif
