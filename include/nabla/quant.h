/*
 * nabla/quant.h — quantization-aware training on float tensors: fake quantization (the ops),
 * observers that choose a scale and zero point, and the FakeQuantize and QAT Linear modules,
 * as torch 1.13's torch.fake_quantize_* ops and torch.ao.quantization modules compute them.
 *
 * Affine quantization maps a real r to an integer q in [quant_min, quant_max] and back:
 *
 *     q = clamp(z + round(r / s), quant_min, quant_max)        r' = (q - z) s
 *
 * with scale s > 0 and zero point z (an integer in the range); symmetric schemes fix z (0 for
 * signed ranges, the middle for unsigned ones).  A fake quantization returns r' in float32, so
 * training sees the rounding error.  round is torch's: nearbyint (ties to even) of x * (1 / s)
 * in float32; the outputs equal torch's bit for bit.
 *
 * Gradients.  r' is piecewise constant in x, so its derivative is zero almost everywhere; QAT
 * trains through it with the straight-through estimator: dx = g where the code q lies in the
 * range before clamping and 0 outside (NB_STE_CLIPPED, torch's), or dx = g everywhere
 * (NB_STE_PLAIN, the identity).  The learnable ops (LSQ, Esser et al. 2019) also give
 * gradients for the scale and the zero point, torch's formulas:
 *
 *     ds = g ((r' - x) / s)   inside,   g (quant_min - z) or g (quant_max - z) outside
 *     dz = 0                  inside,   -g s                                      outside
 *
 * each times grad_factor, summed over the tensor (per tensor) or over all dims but the axis
 * (per channel).  Gradients of these gradients exist (create_graph): the estimator's mask is a
 * constant, so d(dx)/dx = 0, while ds depends on x and s smoothly between rounding edges.
 *
 * Results follow the library's ownership rule (the innermost open scope, or the caller's).
 */
#ifndef NABLA_QUANT_H
#define NABLA_QUANT_H

#include "../nabla.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The straight-through estimator of the non-learnable ops. */
typedef enum {
    NB_STE_CLIPPED, /* dx = g [quant_min <= q <= quant_max]: torch's */
    NB_STE_PLAIN,   /* dx = g: the identity */
    NB_STE_COUNT
} nb_ste;

/* ---------------------------------------------------------------- fake quantization ops
 *
 * x: float32 of any shape.  scale and zero_point: float32 tensors, one element each (per
 * tensor; any shape with one element) or 1-D of x's size along axis (per channel; a negative
 * axis counts from the end).  quant_min <= quant_max.  The non-learnable ops take whole zero
 * points in [quant_min, quant_max] and compute no gradient for scale and zero_point (torch's
 * tensor-qparams overload); the learnable ones round the zero point (ties to even) and clamp
 * it into the range.  Results have x's shape.
 *
 * Errors (NULL, message naming the op and the argument): NB_ERR_ARG for a scale that is not
 * finite and positive ("scale[2] = -0.5"), a zero point out of range or not whole (learnable:
 * not finite), quant_min > quant_max, an unknown ste, a grad_factor that is not finite, a scale
 * or zero point that requires grad in a non-learnable op; NB_ERR_SHAPE for scale or zero_point
 * of the wrong size, an axis outside x's dims. */
NB_API nb_tensor *nb_fake_quantize_per_tensor(nb_tensor *x, nb_tensor *scale,
                                              nb_tensor *zero_point, int quant_min,
                                              int quant_max, nb_ste ste);
NB_API nb_tensor *nb_fake_quantize_per_channel(nb_tensor *x, nb_tensor *scale,
                                               nb_tensor *zero_point, int axis, int quant_min,
                                               int quant_max, nb_ste ste);
/* torch._fake_quantize_learnable_per_tensor_affine / _per_channel_affine */
NB_API nb_tensor *nb_fake_quantize_learnable_per_tensor(nb_tensor *x, nb_tensor *scale,
                                                        nb_tensor *zero_point, int quant_min,
                                                        int quant_max, float grad_factor);
NB_API nb_tensor *nb_fake_quantize_learnable_per_channel(nb_tensor *x, nb_tensor *scale,
                                                         nb_tensor *zero_point, int axis,
                                                         int quant_min, int quant_max,
                                                         float grad_factor);

/* ---------------------------------------------------------------- schemes and observers
 *
 * A scheme: `bits` in [2, 8] (0: 8), a signed range [-2^(bits-1), 2^(bits-1) - 1] (torch's
 * qint8) or an unsigned one [0, 2^bits - 1] (quint8), symmetric or affine, per tensor or per
 * channel along ch_axis.  Observers (torch.ao.quantization's MinMaxObserver,
 * MovingAverageMinMaxObserver and their PerChannel twins) watch tensors through their forward,
 * which returns its input unchanged (a new reference), and keep the running minimum and
 * maximum in buffers named as torch's, min_val and max_val (+inf / -inf before any tensor; per
 * channel, `channels` of each).  The moving average moves them by averaging_constant (0:
 * torch's 0.01) towards each new tensor's extremes, the first tensor setting them.
 *
 * nb_observer_qparams gives torch's calculate_qparams, computed in float32 as torch does:
 *   affine:    s = max((max(max_val, 0) - min(min_val, 0)) / (qmax - qmin), eps)
 *              z = clamp(qmin - round(min(min_val, 0) / s), qmin, qmax)
 *   symmetric: s = max(max(-min(min_val, 0), max(max_val, 0)) / ((qmax - qmin) / 2), eps)
 *              z = 0 signed; unsigned 128 at 8 bits, (qmin + qmax) / 2 rounded down below
 * with eps = 2^-23 (torch.finfo(float32).eps); before any tensor, s = 1 and z = 0 as torch.
 * scale and zero_point come back as new float32 tensors of shape [1] or [channels] (the
 * caller's, or the open scope's).
 *
 * Errors: NB_ERR_ARG for bits outside [2, 8] ("bits 9"), averaging_constant outside (0, 1],
 * channels < 1 per channel or a negative ch_axis; forward: NB_ERR_SHAPE when x has no ch_axis
 * or its size there is not `channels`. */
typedef enum { NB_OBSERVER_MINMAX, NB_OBSERVER_MOVING_AVERAGE, NB_OBSERVER_COUNT } nb_observer_kind;

typedef struct {
    nb_observer_kind kind;
    int bits;                 /* [2, 8]; 0 means 8 */
    bool is_signed;           /* qint8's range, else quint8's */
    bool symmetric;           /* torch's per_tensor_symmetric / per_channel_symmetric */
    bool per_channel;
    int ch_axis;              /* per channel: the channel dim of the observed tensors */
    int64_t channels;         /* per channel: its size (torch learns it from the first tensor) */
    float averaging_constant; /* moving average; 0 means 0.01 */
} nb_qscheme;

NB_API nb_module *nb_observer_new(const nb_qscheme *scheme);
NB_API nb_status nb_observer_qparams(nb_module *observer, nb_tensor **scale,
                                     nb_tensor **zero_point);
/* The integer range of a scheme: NB_ERR_ARG as above. */
NB_API nb_status nb_qscheme_range(const nb_qscheme *scheme, int *quant_min, int *quant_max);

/* ---------------------------------------------------------------- modules
 *
 * FakeQuantize (torch.ao.quantization.FakeQuantize): an observer child named
 * activation_post_process and buffers scale and zero_point (float32, [1] or [channels]).  Its
 * forward, while the observer is enabled, observes x and copies the observer's qparams into
 * scale and zero_point; then, while fake quantization is enabled, returns the fake-quantized x
 * (per tensor or per channel, with opts->ste), else x itself (a new reference).  Both are
 * enabled at first; disabling the observer freezes the qparams (QAT's "freeze observers after
 * N epochs").  With `learnable` (torch's _LearnableFakeQuantize, LSQ) scale and zero_point are
 * parameters trained with the learnable op: while the observer is enabled they are set from it
 * as above, else the scale is clamped to at least eps before each forward; symmetric schemes
 * keep z = 0; grad_factor is 1 / sqrt(numel(x) quant_max) with grad_scaling, else 1.
 * Errors: those of nb_observer_new, an unknown ste. */
typedef struct {
    nb_qscheme scheme;
    nb_ste ste;        /* the non-learnable estimator; torch's is NB_STE_CLIPPED (0) */
    bool learnable;
    bool grad_scaling; /* learnable: LSQ's gradient scale */
} nb_fake_quantize_opts;

NB_API nb_module *nb_fake_quantize_new(const nb_fake_quantize_opts *opts);
/* Switch the observers (torch's enable_observer / disable_observer) or the fake quantization
 * (enable_fake_quant / disable_fake_quant) of every FakeQuantize in m's tree, m included: on a
 * whole model, torch's model.apply(torch.ao.quantization.disable_observer), which freezes the
 * qparams for the last epochs of QAT.  NB_ERR_ARG when the tree holds no FakeQuantize. */
NB_API nb_status nb_fake_quantize_enable_observer(nb_module *m, bool enabled);
NB_API nb_status nb_fake_quantize_enable_fake_quant(nb_module *m, bool enabled);

/* A Linear for quantization-aware training (torch.ao.nn.qat.Linear followed by the output's
 * activation_post_process, as prepare_qat places them): parameters weight [out, in] and bias
 * [out] initialised as nb_linear_new's (the same draws), and two FakeQuantize children, both
 * with moving-average observers: weight_fake_quant (weight_bits, signed, symmetric, per channel
 * along dim 0: torch's default_per_channel_weight_fake_quant at 8 bits) and
 * activation_post_process (act_bits, unsigned, affine, per tensor: torch's default_fake_quant,
 * without its reduce_range).  Forward: y = activation_post_process(linear(x,
 * weight_fake_quant(weight), bias)).  opts may be NULL (8 bits, clipped estimator).  Errors:
 * NB_ERR_ARG for sizes < 1 or bits outside [2, 8] (0: 8), an unknown ste. */
typedef struct {
    int weight_bits, act_bits; /* 0 means 8 */
    nb_ste ste;
    bool learnable;            /* LSQ for both fake quantizers, with LSQ's gradient scale */
} nb_qat_opts;

NB_API nb_module *nb_qat_linear_new(int64_t in_features, int64_t out_features, bool bias,
                                    const nb_qat_opts *opts);
/* The QAT Linear of a trained float Linear (torch's qat.Linear.from_float, as prepare_qat
 * swaps it in): the same modules as above over copies of its weight and bias, which stays the
 * caller's.  NB_ERR_ARG for a module that is not a Linear, as well as the errors above. */
NB_API nb_module *nb_qat_linear_from(const nb_module *linear, const nb_qat_opts *opts);

/* ---------------------------------------------------------------- QAT convolutions, preparing a model
 *
 * QAT Conv2d (torch.ao.nn.qat.Conv2d followed by the output's activation_post_process): copies
 * of a float Conv2d's weight and bias with the two FakeQuantize children of the QAT Linear
 * (weight_fake_quant per output channel, dim 0; activation_post_process per tensor), forward
 * y = activation_post_process(conv2d(x, weight_fake_quant(weight), bias)).
 *
 * ConvBn2d (torch.ao.nn.intrinsic.qat.ConvBn2d, _forward_approximate): a Conv2d and the
 * BatchNorm2d after it trained as the folded layer they become.  With f = bn.weight /
 * sqrt(bn.running_var + eps) per output channel:
 *     y = activation_post_process(bn(conv2d(x, weight_fake_quant(weight f)) / f + bias))
 * Parameters weight [out, in / groups, kh, kw] and bias (when the conv has one), children bn (a
 * copy of the float one), weight_fake_quant, activation_post_process.  In training bn normalises
 * with the batch's statistics and updates its running ones; after nb_qat_freeze_bn_stats (torch's
 * freeze_bn_stats) and in eval mode it uses the running ones, which makes the forward exactly
 * conv2d(x, fq(weight f)) + (bias - running_mean) f + bn.bias: BatchNorm folded.
 *
 * Errors (NULL): NB_ERR_NULL for NULL modules; NB_ERR_ARG for a module that is not a float
 * Conv2d (and BatchNorm2d), a BatchNorm2d without affine parameters or running statistics or of
 * another channel count, and those of nb_qat_linear_new's options. */
NB_API nb_module *nb_qat_conv2d_from(const nb_module *conv, const nb_qat_opts *opts);
NB_API nb_module *nb_qat_conv_bn2d_from(const nb_module *conv, const nb_module *bn,
                                        const nb_qat_opts *opts);
/* Freezes the BatchNorm statistics of every ConvBn2d in m's tree, m included (torch's
 * model.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)); NB_ERR_ARG when there is none. */
NB_API nb_status nb_qat_freeze_bn_stats(nb_module *m);
/* torch's prepare_qat (with fuse_modules of each Conv2d + BatchNorm2d pair first), in place:
 * below model, each float Linear becomes a QAT Linear (nb_qat_linear_from), each Conv2d whose
 * next sibling is a BatchNorm2d a ConvBn2d with the BatchNorm2d's place taken by an Identity,
 * each other Conv2d a QAT Conv2d; other modules are searched in turn.  The fusion takes siblings
 * for what the forward does — the BatchNorm2d applied to the Conv2d's output and nothing else —
 * which holds for Sequential and nabla's blocks; torch asks for the pairs (fuse_modules), a user
 * module whose forward differs must not be prepared so.  The new modules take the model's
 * training mode.  opts as nb_qat_linear_new's (weight_bits: 4 for 4-bit weights).
 * Errors: NB_ERR_NULL; NB_ERR_ARG when no layer below model was swapped (a model that is itself
 * one Linear has nothing below it); a failing swap leaves the layers swapped so far. */
NB_API nb_status nb_qat_prepare(nb_module *model, const nb_qat_opts *opts);

#ifdef __cplusplus
}
#endif

#endif
