/*
 * clip.c — gradient clipping, as torch.nn.utils.clip_grad_norm_ and clip_grad_value_ (1.13).
 *
 * clip_grad_norm_: n_i = ||g_i||_p for each gradient (a float32 value in torch), the total is
 * ||(n_1, .., n_k)||_p (for p = inf, the largest |g|), and every gradient is multiplied by
 * min(max_norm / (total + 1e-6), 1), computed in float32 as torch does; NaN propagates.
 *
 * The element-wise work is the backend's (norm, unary MULS, clamp_abs).
 */
#include "optim_internal.h"

#include <math.h>

static bool params_ok(int n, nb_tensor *const *params, const char *op) {
    if (n < 0 || (n > 0 && !params))
        return nb__fail(NB_ERR_ARG, "%s: %d parameters at %p", op, n, (const void *)params), false;
    for (int i = 0; i < n; i++)
        if (!nb__alive(params[i])) return nb__fail_input(op, params[i]), false;
    return true;
}

float nb_clip_grad_norm(int n, nb_tensor *const *params, float max_norm, float norm_type) {
    const char *op = "clip_grad_norm";
    if (!params_ok(n, params, op)) return NAN;
    if (!(norm_type > 0))
        return nb__fail(NB_ERR_ARG, "%s: norm_type must be > 0 or INFINITY, got %g", op,
                        (double)norm_type), NAN;
    if (!(max_norm >= 0 && isfinite(max_norm)))
        return nb__fail(NB_ERR_ARG, "%s: max_norm must be finite and >= 0, got %g", op, (double)max_norm), NAN;
    double p = norm_type, acc = 0;
    bool any = false;
    for (int i = 0; i < n; i++) {
        nb_tensor *g = params[i]->grad;
        if (!g) continue;
        any = true;
        float ni = nb__backend(g->device)->norm(nb__f32(g), nb__numel(g->ndim, g->shape), p);
        if (isinf(p)) {
            if (ni > acc || isnan(ni)) acc = ni;
        } else {
            acc += p == 2 ? (double)ni * ni : p == 1 ? ni : pow(ni, p);
        }
    }
    if (!any) return 0.0f;
    float total = isinf(p) || p == 1 ? (float)acc : (float)(p == 2 ? sqrt(acc) : pow(acc, 1 / p));
    float coef = max_norm / (total + 1e-6f); /* clip_coef, then clamp(max=1.0) */
    if (coef < 1 || isnan(coef))
        for (int i = 0; i < n; i++) {
            nb_tensor *g = params[i]->grad;
            if (g) nb__backend(g->device)->unary(NB_UN_MULS, nb__f32(g), nb__f32(g),
                                                nb__numel(g->ndim, g->shape), coef, 0.0f);
        }
    return total;
}

nb_status nb_clip_grad_value(int n, nb_tensor *const *params, float clip) {
    const char *op = "clip_grad_value";
    if (!params_ok(n, params, op)) return nb_error_code();
    if (!(clip >= 0 && isfinite(clip)))
        return nb__fail_status(NB_ERR_ARG, "%s: clip_value must be finite and >= 0, got %g", op, (double)clip);
    for (int i = 0; i < n; i++) {
        nb_tensor *g = params[i]->grad;
        if (!g) continue;
        nb__backend(g->device)->clamp_abs(nb__f32(g), nb__numel(g->ndim, g->shape), clip);
    }
    return NB_OK;
}
