/*
 * amp.c — dynamic loss scaling, torch.cuda.amp.GradScaler (torch 1.13, amp/grad_scaler.py and
 * aten's _amp_foreach_non_finite_check_and_unscale_ / _amp_update_scale_); nabla/amp.h says
 * what each call does.  The state is torch's: the scale (float32), the count of good steps in a
 * row (growth_tracker), and per iteration whether unscale ran and whether it found an Inf/NaN.
 * The element-wise work is the backend's: norm with p = Inf (the largest |g|, NaN winning) finds
 * the non-finite gradients, unary MULS multiplies by the inverse scale.
 */
#include "nabla/amp.h"
#include "nabla/optim.h"
#include "../backend/backend.h"
#include "../core/core.h"

#include <math.h>

struct nb_grad_scaler {
    float scale, growth_factor, backoff_factor;
    int growth_interval, growth_tracker;
    bool unscaled;  /* unscale ran since the last update */
    bool found_inf; /* and found an Inf or NaN */
};

nb_grad_scaler *nb_grad_scaler_new(const nb_grad_scaler_opts *opts) {
    nb_grad_scaler_opts o = opts ? *opts : (nb_grad_scaler_opts){0};
    float init = o.init_scale != 0 ? o.init_scale : 65536.0f;
    float growth = o.growth_factor != 0 ? o.growth_factor : 2.0f;
    float backoff = o.backoff_factor != 0 ? o.backoff_factor : 0.5f;
    int interval = o.growth_interval != 0 ? o.growth_interval : 2000;
    if (!(init > 0 && isfinite(init)))
        return nb__fail(NB_ERR_ARG, "grad_scaler: init_scale must be finite and > 0, got %g", (double)init);
    if (!(growth > 1 && isfinite(growth)))
        return nb__fail(NB_ERR_ARG, "grad_scaler: growth_factor must be finite and > 1, got %g", (double)growth);
    if (!(backoff > 0 && backoff < 1))
        return nb__fail(NB_ERR_ARG, "grad_scaler: backoff_factor must be in (0, 1), got %g", (double)backoff);
    if (interval < 1)
        return nb__fail(NB_ERR_ARG, "grad_scaler: growth_interval must be >= 1, got %d", interval);
    nb_grad_scaler *s = nb__alloc(sizeof *s);
    if (s) *s = (nb_grad_scaler){.scale = init, .growth_factor = growth, .backoff_factor = backoff,
                                 .growth_interval = interval};
    return s;
}

void nb_grad_scaler_free(nb_grad_scaler *s) {
    if (s) nb__dealloc(s, sizeof *s);
}

float nb_grad_scaler_get_scale(const nb_grad_scaler *s) { return s ? s->scale : NAN; }
int nb_grad_scaler_growth_tracker(const nb_grad_scaler *s) { return s ? s->growth_tracker : -1; }

nb_tensor *nb_grad_scaler_scale(nb_grad_scaler *s, nb_tensor *loss) {
    if (!s) return nb__fail(NB_ERR_ARG, "grad_scaler: scale: NULL scaler");
    return nb_mul_scalar(loss, s->scale);
}

/* torch's _amp_foreach_non_finite_check_and_unscale_: each gradient g, g *= inv_scale, and
 * found_inf when any element of any g was Inf or NaN (every g is multiplied all the same). */
nb_status nb_grad_scaler_unscale(nb_grad_scaler *s, int n, nb_tensor *const *params) {
    if (!s || n < 0 || (n > 0 && !params))
        return nb__fail_status(NB_ERR_ARG, "grad_scaler: unscale: NULL scaler or parameters");
    if (s->unscaled)
        return nb__fail_status(NB_ERR_ARG, "grad_scaler: unscale: already called since the last update");
    for (int i = 0; i < n; i++)
        if (!nb__alive(params[i])) return nb__fail_input("grad_scaler: unscale", params[i]), nb_error_code();
    float inv = (float)(1.0 / (double)s->scale); /* self._scale.double().reciprocal().float() */
    bool found = false;
    for (int i = 0; i < n; i++) {
        nb_tensor *g = params[i]->grad;
        if (!g) continue;
        const nb_backend *be = nb__backend(g->device);
        int64_t count = nb__numel(g->ndim, g->shape);
        if (!isfinite(be->norm(nb__f32(g), count, INFINITY))) found = true;
        be->unary(NB_UN_MULS, nb__f32(g), nb__f32(g), count, inv, 0.0f);
    }
    s->unscaled = true;
    s->found_inf = found;
    return NB_OK;
}

nb_status nb_grad_scaler_step(nb_grad_scaler *s, nb_optim *o, int n, nb_tensor *const *params,
                              bool *stepped) {
    if (stepped) *stepped = false;
    if (!s || !o) return nb__fail_status(NB_ERR_ARG, "grad_scaler: step: NULL scaler or optimiser");
    if (!s->unscaled && nb_grad_scaler_unscale(s, n, params) != NB_OK) return nb_error_code();
    if (s->found_inf) return NB_OK; /* the step is skipped; update backs the scale off */
    nb_status st = nb_optim_step(o);
    if (st == NB_OK && stepped) *stepped = true;
    return st;
}

/* torch's _amp_update_scale_ (aten/src/ATen/native/cpu/AmpGradScalerKernels.cpp). */
nb_status nb_grad_scaler_update(nb_grad_scaler *s) {
    if (!s) return nb__fail_status(NB_ERR_ARG, "grad_scaler: update: NULL scaler");
    if (!s->unscaled)
        return nb__fail_status(NB_ERR_ARG, "grad_scaler: update: no inf checks were recorded "
                               "(call unscale or step first)");
    if (s->found_inf) {
        s->scale = (float)((double)s->scale * s->backoff_factor);
        s->growth_tracker = 0;
    } else if (s->growth_tracker + 1 == s->growth_interval) {
        float grown = (float)((double)s->scale * s->growth_factor);
        if (isfinite(grown)) s->scale = grown;
        s->growth_tracker = 0;
    } else {
        s->growth_tracker++;
    }
    s->unscaled = s->found_inf = false;
    return NB_OK;
}
