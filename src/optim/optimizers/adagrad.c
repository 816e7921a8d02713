/*
 * adagrad.c — torch.optim.Adagrad: d = g + weight_decay p, sum <- sum + d^2,
 * p <- p - clr d / (sqrt(sum) + eps) with clr = lr / (1 + (step - 1) lr_decay).  The update is
 * the backend's adagrad_update (backend/cpu/update.c); sum starts at initial_accumulator_value.
 */
#include "../optim_internal.h"

enum { LR_DECAY, INITIAL_ACCUMULATOR_VALUE, EPS, N_HP };
_Static_assert(N_HP <= NB__GROUP_HP, "adagrad: too many hyper-parameters for nb__group");

static bool check(const nb__group *g, const char *who) {
    return nb__optim_nonneg(g->hp[LR_DECAY], "lr_decay value", who) &&
           nb__optim_nonneg(g->hp[INITIAL_ACCUMULATOR_VALUE], "initial_accumulator_value value",
                            who) &&
           nb__optim_nonneg(g->hp[EPS], "epsilon value", who);
}

static bool slot_needed(const nb__group *g, int slot) {
    (void)g;
    return slot == 0;
}

static float slot_init(const nb__group *g) { return (float)g->hp[INITIAL_ACCUMULATOR_VALUE]; }

static void step(const nb__group *g, nb__param *P) {
    nb_tensor *p = P->param;
    P->step++;
    double clr = g->lr / (1 + (double)(P->step - 1) * g->hp[LR_DECAY]);
    nb__backend(p->device)->adagrad_update(nb__f32(p), nb__f32(P->slot[0]), nb__f32(p->grad),
                                           nb__numel(p->ndim, p->shape), (float)clr,
                                           (float)g->weight_decay, (float)g->hp[EPS]);
}

static const nb__hp_field fields[] = {
    NB__HP("lr_decay", LR_DECAY), NB__HP_WEIGHT_DECAY,
    NB__HP("initial_accumulator_value", INITIAL_ACCUMULATOR_VALUE), NB__HP("eps", EPS), {0},
};

const nb__optim_kind nb__adagrad = {
    .name = "adagrad", .fields = fields, .slots = {"sum"}, .slot_needed = slot_needed,
    .slot_init = slot_init, .check = check, .step = step, .momentum = NB__NO_MOMENTUM,
};

nb_optim *nb_adagrad_new(int n, nb_tensor *const *params, nb_adagrad_opts opts) {
    nb__group g = {.lr = nb__or_default(opts.lr, 1e-2), .weight_decay = opts.weight_decay};
    g.hp[LR_DECAY] = opts.lr_decay;
    g.hp[INITIAL_ACCUMULATOR_VALUE] = opts.initial_accumulator_value;
    g.hp[EPS] = nb__or_default(opts.eps, 1e-10);
    return nb__optim_new(&nb__adagrad, g, n, params);
}
