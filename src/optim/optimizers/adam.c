/*
 * adam.c — torch.optim.Adam and torch.optim.AdamW, which differ only in where the weight decay
 * goes (Adam: L2 added to the gradient; AdamW: decoupled, p <- p (1 - lr weight_decay)), so the
 * two kinds share this file rather than copy it:
 *   m <- beta1 m + (1 - beta1) g,  v <- beta2 v + (1 - beta2) g^2  (amsgrad: v_max <- max(v_max, v))
 *   p <- p - lr / (1 - beta1^t) m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
 * The update is the backend's adam_update (backend/cpu/update.c).
 */
#include "../optim_internal.h"

enum { BETA1, BETA2, EPS, AMSGRAD, N_HP }; /* BETA1, BETA2 side by side: "betas" */
_Static_assert(N_HP <= NB__GROUP_HP, "adam: too many hyper-parameters for nb__group");

static bool check(const nb__group *g, const char *who) {
    if (!nb__optim_nonneg(g->hp[EPS], "epsilon value", who)) return false;
    for (int i = 0; i < 2; i++)
        if (!(g->hp[BETA1 + i] >= 0 && g->hp[BETA1 + i] < 1))
            return nb__fail(NB_ERR_ARG, "%s: Invalid beta parameter at index %d: %g", who, i,
                            g->hp[BETA1 + i]), false;
    return true;
}

static bool slot_needed(const nb__group *g, int slot) { return slot < 2 || g->hp[AMSGRAD] != 0; }

static void step_with(const nb__group *g, nb__param *P, bool decoupled) {
    nb_tensor *p = P->param;
    P->step++;
    double t = (double)P->step, beta1 = g->hp[BETA1], beta2 = g->hp[BETA2];
    double bias_correction1 = 1 - pow(beta1, t), bias_correction2 = 1 - pow(beta2, t);
    nb__adam_scalars k = {
        .step_size = (float)(g->lr / bias_correction1),
        .bias_correction2_sqrt = (float)sqrt(bias_correction2),
        .beta1 = (float)beta1, .one_minus_beta1 = (float)(1 - beta1),
        .beta2 = (float)beta2, .one_minus_beta2 = (float)(1 - beta2),
        .eps = (float)g->hp[EPS],
        .weight_decay = decoupled ? 0.0f : (float)g->weight_decay,
        .decay_factor = decoupled ? (float)(1 - g->lr * g->weight_decay) : 1.0f,
    };
    nb__backend(p->device)->adam_update(nb__f32(p), nb__f32(P->slot[0]), nb__f32(P->slot[1]),
                                        g->hp[AMSGRAD] != 0 ? nb__f32(P->slot[2]) : NULL,
                                        nb__f32(p->grad), nb__numel(p->ndim, p->shape), &k);
}

static void adam_step(const nb__group *g, nb__param *P) { step_with(g, P, false); }
static void adamw_step(const nb__group *g, nb__param *P) { step_with(g, P, true); }

static const nb__hp_field fields[] = {
    NB__HP_PAIR("betas", BETA1), NB__HP("eps", EPS), NB__HP_WEIGHT_DECAY,
    NB__HP_STATE_FLAG("amsgrad", AMSGRAD), {0},
};

#define ADAM_KIND(kind_name, step_fn)                                                         \
    {.name = kind_name, .fields = fields, .slots = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}, \
     .slot_needed = slot_needed, .check = check, .step = step_fn, .momentum = BETA1,          \
     .momentum_is_beta1 = true}
const nb__optim_kind nb__adam = ADAM_KIND("adam", adam_step);
const nb__optim_kind nb__adamw = ADAM_KIND("adamw", adamw_step);

static nb__group group_of(nb_adam_opts opts, double weight_decay_default) {
    nb__group g = {.lr = nb__or_default(opts.lr, 1e-3),
                   .weight_decay = nb__or_default(opts.weight_decay, weight_decay_default)};
    g.hp[BETA1] = nb__or_default(opts.beta1, 0.9);
    g.hp[BETA2] = nb__or_default(opts.beta2, 0.999);
    g.hp[EPS] = nb__or_default(opts.eps, 1e-8);
    g.hp[AMSGRAD] = opts.amsgrad;
    return g;
}

nb_optim *nb_adam_new(int n, nb_tensor *const *params, nb_adam_opts opts) {
    return nb__optim_new(&nb__adam, group_of(opts, 0), n, params);
}

nb_optim *nb_adamw_new(int n, nb_tensor *const *params, nb_adamw_opts opts) {
    return nb__optim_new(&nb__adamw, group_of(opts, 1e-2), n, params);
}
