/*
 * rmsprop.c — torch.optim.RMSprop: d = g + weight_decay p, v <- alpha v + (1 - alpha) d^2, the
 * denominator sqrt(v) + eps (centered: sqrt(v - g_avg^2) + eps with g_avg the running mean of
 * d), then p <- p - lr d / denom, or through a momentum buffer.  The update is
 * the backend's rmsprop_update (backend/cpu/update.c).
 */
#include "../optim_internal.h"

enum { ALPHA, EPS, MOMENTUM, CENTERED, N_HP };
_Static_assert(N_HP <= NB__GROUP_HP, "rmsprop: too many hyper-parameters for nb__group");

enum { SQUARE_AVG, MOMENTUM_BUFFER, GRAD_AVG };

static bool check(const nb__group *g, const char *who) {
    if (!nb__optim_nonneg(g->hp[EPS], "epsilon value", who) ||
        !nb__optim_nonneg(g->hp[MOMENTUM], "momentum value", who))
        return false;
    /* 1 - alpha weighs the new squared gradient: alpha > 1 would make square_avg negative */
    if (!(g->hp[ALPHA] >= 0 && g->hp[ALPHA] <= 1))
        return nb__fail(NB_ERR_ARG, "%s: Invalid alpha value: %g (must be in [0, 1])", who,
                        g->hp[ALPHA]), false;
    return true;
}

static bool slot_needed(const nb__group *g, int slot) {
    return slot == SQUARE_AVG || (slot == MOMENTUM_BUFFER && g->hp[MOMENTUM] > 0) ||
           (slot == GRAD_AVG && g->hp[CENTERED] != 0);
}

static void step(const nb__group *g, nb__param *P) {
    nb_tensor *p = P->param;
    P->step++;
    float *buf = g->hp[MOMENTUM] > 0 ? nb__f32(P->slot[MOMENTUM_BUFFER]) : NULL;
    float *grad_avg = g->hp[CENTERED] != 0 ? nb__f32(P->slot[GRAD_AVG]) : NULL;
    nb__backend(p->device)->rmsprop_update(nb__f32(p), nb__f32(P->slot[SQUARE_AVG]), buf, grad_avg,
                                           nb__f32(p->grad), nb__numel(p->ndim, p->shape),
                                           (float)g->lr, (float)g->hp[ALPHA],
                                           (float)(1 - g->hp[ALPHA]), (float)g->hp[EPS],
                                           (float)g->weight_decay, (float)g->hp[MOMENTUM]);
}

static const nb__hp_field fields[] = {
    NB__HP("alpha", ALPHA), NB__HP("eps", EPS), NB__HP_WEIGHT_DECAY, NB__HP("momentum", MOMENTUM),
    NB__HP_STATE_FLAG("centered", CENTERED), {0},
};

const nb__optim_kind nb__rmsprop = {
    .name = "rmsprop", .fields = fields,
    .slots = {[SQUARE_AVG] = "square_avg", [MOMENTUM_BUFFER] = "momentum_buffer",
              [GRAD_AVG] = "grad_avg"},
    .slot_needed = slot_needed, .check = check, .step = step, .momentum = MOMENTUM,
};

nb_optim *nb_rmsprop_new(int n, nb_tensor *const *params, nb_rmsprop_opts opts) {
    nb__group g = {.lr = nb__or_default(opts.lr, 1e-2), .weight_decay = opts.weight_decay};
    g.hp[ALPHA] = nb__or_default(opts.alpha, 0.99);
    g.hp[EPS] = nb__or_default(opts.eps, 1e-8);
    g.hp[MOMENTUM] = opts.momentum;
    g.hp[CENTERED] = opts.centered;
    return nb__optim_new(&nb__rmsprop, g, n, params);
}
