/*
 * nabla/amp.h — mixed-precision training: autocast (torch.autocast) and dynamic loss scaling
 * (torch.cuda.amp.GradScaler).
 *
 * Autocast.  Inside an autocast region of dtype d (NB_BF16 or NB_F16) the ops torch's autocast
 * runs in lower precision — matmul, linear, conv2d and conv_transpose2d — compute on d: their
 * float32 operands (input, weight, bias) are rounded to d, the products are summed in float32,
 * and the result is rounded to d again (torch's bfloat16/float16 kernels return d).  Tensors stay
 * float32 in memory, holding d's values, so every other op (activations, pooling, reductions,
 * softmax, losses) runs in float32 as torch's autocast runs its "float32" list, and the
 * parameters stay float32 master weights.  A product of two bfloat16 (or float16) values is exact
 * in float32, so this is torch's CPU autocast arithmetic: d operands, float32 accumulation, up to
 * the order of the sums.
 *
 * Backward mirrors torch's bfloat16 graph: an autocast op recorded the dtype it ran in, and its
 * backward rounds the incoming gradient to d, computes the input gradients from the rounded
 * operands in float32 and rounds them to d (what torch's bfloat16 matmul gives, before the cast
 * back to float32 adds them into the float32 .grad).  So gradients of float16 overflow to Inf past
 * 65504 and underflow to 0 below 2^-24, as on a GPU, which is what loss scaling is for.  Gradients
 * of gradients (create_graph) of linear and matmul keep the rounding; conv's are float32.
 *
 * Rounding is to nearest, ties to even, as nb_to_dtype; past d's range +-Inf, NaN stays NaN.
 * The region is per thread.
 */
#ifndef NABLA_AMP_H
#define NABLA_AMP_H

#include "../nabla.h"

typedef struct nb_optim nb_optim;

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- autocast */

/* Sets this thread's autocast dtype — NB_BF16, NB_F16, or NB_F32 (off, torch's
 * autocast(enabled=False)) — and returns the one before, as nb_set_grad_enabled does.  Another
 * dtype: NB_ERR_ARG ("autocast: int8 is not bfloat16, float16 or float32"), the state unchanged
 * and returned. */
NB_API nb_dtype nb_autocast_set(nb_dtype dtype);
NB_API nb_dtype nb_autocast_dtype(void); /* NB_F32 when off */

/* A block run under autocast to dtype, the state put back after it (do not leave the block by
 * return or goto): NB_AUTOCAST(NB_BF16) { logits = nb_module_forward(m, x); } */
#define NB_AUTOCAST(dtype)                                                                    \
    for (int nb__ac_[2] = {(int)nb_autocast_set(dtype), 1}; nb__ac_[1];                      \
         nb_autocast_set((nb_dtype)nb__ac_[0]), nb__ac_[1] = 0)

/* ---------------------------------------------------------------- dynamic loss scaling
 *
 * torch.cuda.amp.GradScaler, for float16 training (bfloat16 has float32's range and needs none).
 * A step:
 *
 *     nb_backward(nb_grad_scaler_scale(s, loss));       loss x scale: small gradients survive
 *     nb_grad_scaler_unscale(s, n, params);             optional: before clipping
 *     nb_clip_grad_norm(n, params, max_norm, 2);        (optional)
 *     nb_grad_scaler_step(s, optim, n, params, &done);  unscales unless done; steps unless Inf/NaN
 *     nb_grad_scaler_update(s);                         the next scale
 *
 * unscale multiplies every gradient by 1 / scale (the reciprocal in double, rounded to float32,
 * as torch) and notes whether any gradient element is Inf or NaN; step then skips the optimiser's
 * step for this iteration.  update, torch's _amp_update_scale_: after an Inf/NaN, scale x=
 * backoff_factor and the count of good steps goes to 0; else the count grows by one, and when it
 * reaches growth_interval, scale x= growth_factor (unless that is not finite) and the count goes
 * to 0.  Options: zero means torch's default (init_scale 2^16, growth_factor 2, backoff_factor
 * 0.5, growth_interval 2000).
 *
 * Errors (NB_ERR_ARG, the scaler unchanged): options out of range (init_scale not finite and
 * > 0, growth_factor <= 1, backoff_factor outside (0, 1), growth_interval < 0); unscale twice
 * in one iteration ("unscale: already called since the last update", torch's), update without
 * an unscale or step since the last update ("update: no inf checks were recorded"); NULL
 * arguments.  A failing optimiser step passes its error on. */
typedef struct nb_grad_scaler nb_grad_scaler;

typedef struct {
    float init_scale;     /* 0: 65536 */
    float growth_factor;  /* 0: 2 */
    float backoff_factor; /* 0: 0.5 */
    int growth_interval;  /* 0: 2000 */
} nb_grad_scaler_opts;

NB_API nb_grad_scaler *nb_grad_scaler_new(const nb_grad_scaler_opts *opts); /* NULL: defaults */
NB_API void nb_grad_scaler_free(nb_grad_scaler *s);                        /* NULL: nothing */
/* loss x scale, recorded (a new tensor, the scope's or the caller's) */
NB_API nb_tensor *nb_grad_scaler_scale(nb_grad_scaler *s, nb_tensor *loss);
NB_API nb_status nb_grad_scaler_unscale(nb_grad_scaler *s, int n, nb_tensor *const *params);
/* *stepped (may be NULL): whether the optimiser stepped */
NB_API nb_status nb_grad_scaler_step(nb_grad_scaler *s, nb_optim *o, int n,
                                     nb_tensor *const *params, bool *stepped);
NB_API nb_status nb_grad_scaler_update(nb_grad_scaler *s);
NB_API float nb_grad_scaler_get_scale(const nb_grad_scaler *s);     /* NAN for NULL */
NB_API int nb_grad_scaler_growth_tracker(const nb_grad_scaler *s);  /* good steps in a row; -1 */

#ifdef __cplusplus
}
#endif

#endif
