/*
 * sgd.c — torch.optim.SGD: p <- p - lr d, where d = g + weight_decay p, then with momentum
 * b <- momentum b + (1 - dampening) d (b = d on a parameter's first step) and d = b, or
 * d = d + momentum b with nesterov.  The update is the backend's sgd_update (backend/cpu/update.c).
 *
 * The momentum buffer is torch's None until its first update, which copies the gradient: the
 * parameter's step counts the buffer's updates, so 0 means None.
 */
#include "../optim_internal.h"


enum { MOMENTUM, DAMPENING, NESTEROV, N_HP };
_Static_assert(N_HP <= NB__GROUP_HP, "sgd: too many hyper-parameters for nb__group");

static bool check(const nb__group *g, const char *who) {
    if (!nb__optim_nonneg(g->hp[MOMENTUM], "momentum value", who)) return false;
    if (!(g->hp[DAMPENING] >= 0 && g->hp[DAMPENING] <= 1))
        return nb__fail(NB_ERR_ARG, "%s: Invalid dampening value: %g (must be in [0, 1])", who,
                        g->hp[DAMPENING]), false;
    if (g->hp[NESTEROV] != 0 && !(g->hp[MOMENTUM] > 0 && g->hp[DAMPENING] == 0))
        return nb__fail(NB_ERR_ARG, "%s: Nesterov momentum requires a momentum and zero dampening",
                        who), false;
    return true;
}

static bool slot_needed(const nb__group *g, int slot) { return slot == 0 && g->hp[MOMENTUM] != 0; }

static void step(const nb__group *g, nb__param *P) {
    nb_tensor *p = P->param;
    float *buf = g->hp[MOMENTUM] != 0 ? nb__f32(P->slot[0]) : NULL;
    nb__backend(p->device)->sgd_update(nb__f32(p), buf, nb__f32(p->grad),
                                       nb__numel(p->ndim, p->shape), (float)g->lr,
                                       (float)g->weight_decay, (float)g->hp[MOMENTUM],
                                       (float)(1 - g->hp[DAMPENING]), g->hp[NESTEROV] != 0,
                                       P->step == 0);
    if (buf) P->step++;
}

static const nb__hp_field fields[] = {
    NB__HP("momentum", MOMENTUM), NB__HP("dampening", DAMPENING), NB__HP_WEIGHT_DECAY,
    NB__HP_FLAG("nesterov", NESTEROV), {0},
};

const nb__optim_kind nb__sgd = {
    .name = "sgd", .fields = fields, .slots = {"momentum_buffer"}, .slot_needed = slot_needed,
    .check = check, .step = step, .momentum = MOMENTUM,
};

nb_optim *nb_sgd_new(int n, nb_tensor *const *params, nb_sgd_opts opts) {
    if (nb__is_unset(opts.lr))
        return nb__fail(NB_ERR_ARG, "sgd: lr is required (torch has no default; write NB_ZERO "
                        "for a learning rate of 0)");
    nb__group g = {.lr = nb__or_default(opts.lr, 0), .weight_decay = opts.weight_decay};
    g.hp[MOMENTUM] = opts.momentum;
    g.hp[DAMPENING] = opts.dampening;
    g.hp[NESTEROV] = opts.nesterov;
    return nb__optim_new(&nb__sgd, g, n, params);
}
