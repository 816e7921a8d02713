/*
 * prune_blocks.c — removing residual blocks (nabla/prune.h): a block y = relu(F(x) + x) or
 * F(x) + x whose F contributes little is replaced by the identity, chosen by what its removal
 * costs on a validation split (the course's recipe; Veit et al. 2016 showed that a ResNet's
 * blocks can be dropped one at a time at a small cost each).
 *
 * For a BasicBlock or a Bottleneck the identity is exact when F(x) = 0 and x >= 0, which holds
 * inside a ResNet (x comes out of a ReLU).  Each round tries every candidate: the block is
 * swapped out for an Identity (nb__module_swap_child: the block lives on, detached), the model
 * measured, the block swapped back; the cheapest one then goes for good.
 */
#include "module.h"

#include <math.h>
#include <string.h>

/* A block without a projection on its shortcut (children: BasicBlock's conv1 bn1 relu conv2
 * bn2, Bottleneck's seven, Residual's body), so output and input shapes agree. */
static bool removable(const nb_module *m) {
    const char *type = m->cls->name;
    return (!strcmp(type, "BasicBlock") && m->children.n == 5) ||
           (!strcmp(type, "Bottleneck") && m->children.n == 7) || (!strcmp(type, "Residual") && m->children.n == 1);
}

static bool check_seq(const nb_module *seq, const char *op) {
    if (!seq) return nb__fail(NB_ERR_NULL, "%s: model is NULL", op), false;
    if (strcmp(seq->cls->name, "Sequential"))
        return nb__fail(NB_ERR_ARG, "%s: the model is a %s, not a Sequential", op, seq->cls->name), false;
    return true;
}

int nb_prune_block_candidates(const nb_module *seq, const char **names, int cap) {
    if (!check_seq(seq, "prune_block_candidates")) return -1;
    int k = 0;
    for (int i = 0; i < seq->children.n; i++) {
        if (!removable(NB__CHILD(seq, i))) continue;
        if (names && k < cap) names[k] = seq->children.at[i].name;
        k++;
    }
    return k;
}

/* eval's measure with child i replaced by an Identity, child i back in place after. */
static double measure_without(nb_module *seq, int i, nb_prune_eval_fn eval, void *ctx) {
    nb_module *id = nb_activation_new(NB_ACT_IDENTITY, 0);
    if (!id) return NAN;
    nb_module *block = nb__module_swap_child(seq, i, id);
    double v = eval(seq, ctx);
    nb_module_free(nb__module_swap_child(seq, i, block));
    return v;
}

static nb_status failed_eval(const char *op, const char *what) {
    if (nb_error_code() == NB_OK) return nb__fail_status(NB_ERR_ARG, "%s: eval returned NaN %s", op, what);
    return nb__fail_prefix("%s: eval %s", op, what);
}

nb_status nb_prune_blocks(nb_module *seq, int count, nb_prune_eval_fn eval, void *ctx, const char **removed,
                          double *cost) {
    const char *op = "prune_blocks";
    if (!check_seq(seq, op)) return nb_error_code();
    if (!eval) return nb__fail_status(NB_ERR_NULL, "%s: eval is NULL", op);
    int candidates = nb_prune_block_candidates(seq, NULL, 0);
    if (count < 1 || count > candidates)
        return nb__fail_status(NB_ERR_ARG, "%s: removing %d blocks: the model has %d without a projection on "
                               "the shortcut", op, count, candidates);
    for (int k = 0; k < count; k++) {
        double before = eval(seq, ctx), best = INFINITY;
        if (isnan(before)) return failed_eval(op, "of the model");
        int pick = -1;
        for (int i = 0; i < seq->children.n; i++) {
            if (!removable(NB__CHILD(seq, i))) continue;
            double v = measure_without(seq, i, eval, ctx);
            if (isnan(v)) return failed_eval(op, "without a block");
            if (pick < 0 || v < best) best = v, pick = i;
        }
        nb_module *id = nb_activation_new(NB_ACT_IDENTITY, 0);
        if (!id) return nb_error_code();
        nb_module_free(nb__module_swap_child(seq, pick, id));
        if (removed) removed[k] = seq->children.at[pick].name;
        if (cost) cost[k] = best - before;
    }
    return NB_OK;
}
