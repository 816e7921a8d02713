/*
 * transfer.c — what reusing a trained network needs beyond loading and freezing (nabla/nn.h,
 * "transfer learning"): cutting a Sequential at a named layer, and the trainable parameters.
 */
#include "module.h"

#include <string.h>

nb_status nb_sequential_cut(nb_module *seq, const char *name) {
    if (!seq || !name) return nb__fail_status(NB_ERR_NULL, "sequential_cut: module or name is NULL");
    if (strcmp(seq->cls->name, "Sequential"))
        return nb__fail_status(NB_ERR_ARG, "sequential_cut: the model is a %s, not a Sequential", seq->cls->name);
    for (int i = 0; i < seq->children.n; i++)
        if (!strcmp(seq->children.at[i].name, name)) {
            nb__module_drop_children(seq, i + 1);
            return NB_OK;
        }
    return nb__fail_status(NB_ERR_ARG, "sequential_cut: no layer '%s' in the Sequential (its layers are "
                           "'0' to '%d')", name, seq->children.n - 1);
}

int nb_module_trainable_parameters(const nb_module *m, nb_tensor **out, int cap) {
    int k = 0;
    for (int i = 0, n = m ? nb_module_num_params(m) : 0; i < n; i++) {
        nb_tensor *p = nb_module_param(m, i, NULL);
        if (!nb_requires_grad(p)) continue;
        if (out && k < cap) out[k] = p;
        k++;
    }
    return k;
}

int64_t nb_module_num_trainable(const nb_module *m) {
    int64_t total = 0;
    for (int i = 0, n = m ? nb_module_num_params(m) : 0; i < n; i++) {
        nb_tensor *p = nb_module_param(m, i, NULL);
        if (nb_requires_grad(p)) total += nb_numel(p);
    }
    return total;
}
