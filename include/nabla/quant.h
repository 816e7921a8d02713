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
#include "conv.h"

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
 * Two more kinds clip the range for post-training quantization (per tensor only).  Both keep
 * a histogram of 2048 bins (buffer "histogram") over [min_val, max_val], the running extremes;
 * when a tensor widens the range, the old counts move to the bins of the new one that hold
 * their bins' centres.  Their qparams are the formulas above applied to a clipped range:
 *   NB_OBSERVER_PERCENTILE: [lo, hi] = the (100 - p)-th and p-th percentiles of the histogram
 *     (the edge of the bin where the cumulative count reaches them; p = percentile, 0: 99.99);
 *   NB_OBSERVER_MSE: [a min_val, a max_val] for the a in {1/100, 2/100, ..., 1} whose qparams
 *     give the least sum over bins of count (dequantize(quantize(centre)) - centre)^2: the
 *     clipping that minimises the mean square error of the quantized values (the search of
 *     torch's HistogramObserver, narrowed to a common factor of both ends).
 *
 * Errors: NB_ERR_ARG for bits outside [2, 8] ("bits 9"), averaging_constant outside (0, 1],
 * channels < 1 per channel or a negative ch_axis, percentile outside (50, 100], a histogram
 * kind per channel; forward: NB_ERR_SHAPE when x has no ch_axis or its size there is not
 * `channels`. */
typedef enum {
    NB_OBSERVER_MINMAX,
    NB_OBSERVER_MOVING_AVERAGE,
    NB_OBSERVER_PERCENTILE, /* histogram, clipped at a percentile */
    NB_OBSERVER_MSE,        /* histogram, clipped where the quantization error is least */
    NB_OBSERVER_COUNT
} nb_observer_kind;

typedef struct {
    nb_observer_kind kind;
    int bits;                 /* [2, 8]; 0 means 8 */
    bool is_signed;           /* qint8's range, else quint8's */
    bool symmetric;           /* torch's per_tensor_symmetric / per_channel_symmetric */
    bool per_channel;
    int ch_axis;              /* per channel: the channel dim of the observed tensors */
    int64_t channels;         /* per channel: its size (torch learns it from the first tensor) */
    float averaging_constant; /* moving average; 0 means 0.01 */
    float percentile;         /* NB_OBSERVER_PERCENTILE, in (50, 100]; 0 means 99.99 */
} nb_qscheme;

NB_API nb_module *nb_observer_new(const nb_qscheme *scheme);
NB_API nb_status nb_observer_qparams(nb_module *observer, nb_tensor **scale,
                                     nb_tensor **zero_point);
/* The integer range of a scheme: NB_ERR_ARG as above. */
NB_API nb_status nb_qscheme_range(const nb_qscheme *scheme, int *quant_min, int *quant_max);

/* ---------------------------------------------------------------- post-training quantization
 *
 * A float model becomes an int8 one in three steps, as torch.ao.quantization's prepare,
 * calibration and convert: nb_ptq_new attaches observers to the activations of every Linear and
 * Conv2d in the model's tree, nb_ptq_calibrate runs calibration batches through it, and
 * nb_ptq_convert swaps each of those layers for a quantized one, in place.
 *
 * Quantized layers (classes QuantizedLinear, QuantizedLinearReLU, QuantizedConv2d,
 * QuantizedConvReLU2d, DynamicQuantizedLinear, DynamicQuantizedConv2d) hold buffers only, no
 * float weights: weight (int8, the float layer's shape), weight_scale (float32) and
 * weight_zero_point (int32), both [1] per tensor or [out] per output channel, bias (float32
 * [out], when the layer has one), and, static, input_scale / input_zero_point and scale /
 * zero_point ([1] each; the zero points int32) of their input's and output's uint8 codes.  Their
 * forward takes and returns float32: x is quantized with the input qparams (nb_quantize_per_tensor),
 * runs through nb_quantized_linear / nb_quantized_conv2d into uint8 codes with the output
 * qparams, which it dequantizes.  The codes are torch's: a layer's input qparams are the output
 * qparams of the quantized layer before it whenever only modules that keep codes (ReLU, Flatten,
 * MaxPool2d, Dropout, Identity) lie between them, so dequantizing and quantizing again gives the
 * same codes back, and max pools, ReLUs and flattens of the dequantized values equal torch's on
 * its quint8 tensors; a layer reached otherwise (the first one, after an average pool or a
 * residual sum) observes its own input, as a QuantStub would.  Where only views (Flatten,
 * Unflatten, Identity) lie between two static layers, the first returns its uint8 codes instead
 * and the second takes them as they are (a uint8 x is taken as codes in the layer's input
 * qparams): the same codes, neither dequantized nor quantized again.  Dynamic layers quantize each
 * batch with its own min-max qparams (affine uint8) and return float32 (torch's dynamic
 * Linear).
 *
 * In a Sequential or a ResNet block (nb_resnet_basic_block_new, nb_resnet_bottleneck_new), a
 * Linear (Conv2d) followed by BatchNorm1d (BatchNorm2d) has the norm folded into it
 * (nb_linear_fold_batchnorm, the norm replaced by an Identity); in a Sequential, one followed by a
 * ReLU (after the norm, if any) has the ReLU fused: the output observer watches the ReLU's
 * output and the quantized layer clamps at its zero point, as torch's fuse_modules; a MaxPool2d
 * after a (static) Conv2d and its ReLU runs inside the quantized layer on its uint8 codes (torch
 * pools quint8 tensors with their qparams), so fewer values are dequantized.  Weights
 * are quantized with `bits` (2..8) in int8's range [-2^(bits-1), 2^(bits-1) - 1], symmetric or
 * affine, per tensor or per output channel, with the qparams a MinMaxObserver of the (folded)
 * weight gives (nb_observer_qparams); activations are 8-bit uint8, affine, with qparams from
 * act_observer.  Converting a QAT model gives what PTQ gives with the same qparams: a QAT
 * Linear's frozen activation_post_process and weight_fake_quant scale / zero point are taken
 * as they are (nb_ptq_convert on a tree holding nb_qat_linear modules). */
typedef struct {
    int bits;                    /* weight bits, [2, 8]; 0 means 8 */
    bool symmetric;              /* weights: z = 0 (torch's qint8 symmetric), else affine */
    bool per_channel;            /* weights: one scale (and zero point) per output channel */
    bool dynamic;                /* activations: per batch, no calibration */
    nb_observer_kind act_observer; /* static activations: the calibration observer */
    float averaging_constant;    /* NB_OBSERVER_MOVING_AVERAGE; 0 means 0.01 */
    float percentile;            /* NB_OBSERVER_PERCENTILE, in (50, 100]; 0 means 99.99 */
} nb_ptq_opts;

typedef struct nb_ptq nb_ptq;
/* Prepares model (which stays the caller's and must outlive the handle) for calibration: folds
 * norms, notes fusions, attaches observers through forward hooks and puts the model in eval
 * mode.  Errors: NB_ERR_ARG for bits outside [2, 8] ("ptq: bits 9 is outside [2, 8]"), an
 * unknown observer, a percentile outside (50, 100], a model with no Linear or Conv2d; the
 * errors of nb_linear_fold_batchnorm. */
NB_API nb_ptq *nb_ptq_new(nb_module *model, const nb_ptq_opts *opts);
/* One calibration batch: x through the model with gradients off (the output is dropped). */
NB_API nb_status nb_ptq_calibrate(nb_ptq *ptq, nb_tensor *x);
/* Swaps every prepared layer for its quantized one (the model is changed in place; its observers
 * go).  Errors: NB_ERR_ARG when a static scheme has seen no calibration batch ("ptq: no
 * calibration batch was observed"), nothing changed then. */
NB_API nb_status nb_ptq_convert(nb_ptq *ptq);
NB_API void nb_ptq_free(nb_ptq *ptq); /* removes the hooks of an unconverted model; NULL ok */

/* The quantized structure of model without calibration (every qparam scale 1, zero point 0,
 * weights 0), in place: what nb_ptq_convert makes with the same opts, for nb_module_load to
 * fill.  Errors as nb_ptq_new's. */
NB_API nb_status nb_ptq_structure(nb_module *model, const nb_ptq_opts *opts);
/* Checks every quantized layer's buffers: scales finite and positive, zero points in range
 * (weights [-128, 127], activations [0, 255]).  NB_ERR_ARG naming the tensor
 * ("'3.weight_scale'[5] = -0.25 is not a positive finite scale"). */
NB_API nb_status nb_quantized_check(const nb_module *model);
/* Per quantized layer i < cap (in the order of the tree): its weight's full name ("3.weight",
 * living as long as the model), the range of its weight scales, its input and output scales
 * (NaN when dynamic), and the error of its weight: the largest |(q - z) s - w| over the float
 * weight w it was made from, and the mean of its square, measured at conversion (NaN for a
 * structure made by nb_ptq_structure or loaded).  Returns the number of quantized layers. */
typedef struct {
    const char *name;
    float weight_scale_min, weight_scale_max, input_scale, scale;
    double max_abs_error, mse;
} nb_quantized_layer_info;
NB_API int nb_quantized_layers(const nb_module *model, nb_quantized_layer_info *info, int cap);

/* The integer ops behind the layers.  nb_quantize_per_tensor: codes of x (float32, any shape)
 * in dtype NB_U8 or NB_I8, clamp(z + nearbyint(x (1 / scale))) as torch's quantize_per_tensor;
 * nb_dequantize_per_tensor: (q - z) scale in float32.  Errors: NB_ERR_DTYPE for other dtypes,
 * NB_ERR_ARG for a scale that is not finite and positive or a zero point outside the dtype. */
NB_API nb_tensor *nb_quantize_per_tensor(nb_tensor *x, float scale, int zero_point, nb_dtype dtype);
NB_API nb_tensor *nb_dequantize_per_tensor(nb_tensor *q, float scale, int zero_point);

/* A quantized layer's parameters (tensors borrowed). */
typedef struct {
    const nb_tensor *weight;            /* int8: Linear [out, in], Conv2d [out, c, kh, kw] */
    const nb_tensor *weight_scale;      /* float32 [1] or [out] */
    const nb_tensor *weight_zero_point; /* int32 [1] or [out], in [-128, 127] */
    const nb_tensor *bias;              /* float32 [out], or NULL */
    float in_scale;                     /* x's codes: x = (q - in_zero_point) in_scale */
    int in_zero_point;                  /* [0, 255] */
    float out_scale;                    /* the result's codes; 0: a float32 result */
    int out_zero_point;                 /* [0, 255] */
    bool relu;                          /* fused ReLU: codes clamped at out_zero_point */
} nb_qlayer_params;
/* torch's quantized::linear (x uint8 [..., in] -> uint8 [..., out]) and quantized::conv2d (x
 * uint8 [N, C, H, W], groups 1), int32 sums requantized as fbgemm's ReQuantizeOutput (the top of
 * src/ops/quantized.c); with out_scale 0, float32 results (ReQuantizeForFloat).  pool (NULL:
 * none): then torch's quantized max_pool2d of the codes (dilation 1).  No gradient.  Errors:
 * NB_ERR_DTYPE, NB_ERR_SHAPE naming the tensors; NB_ERR_ARG for bad qparams (named, as
 * "weight_scale[3] = 0 is not finite and positive"), groups > 1, a bad pool or a pool of float
 * results. */
NB_API nb_tensor *nb_quantized_linear(nb_tensor *x, const nb_qlayer_params *p);
NB_API nb_tensor *nb_quantized_conv2d(nb_tensor *x, const nb_qlayer_params *p,
                                      const nb_conv2d_opts *opts, const nb_pool2d_opts *pool);

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
