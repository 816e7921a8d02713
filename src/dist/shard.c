/*
 * shard.c — what tensor and pipeline parallelism share about a model split across ranks: every
 * rank starting from rank 0's parameters before the split (or a stage's layer going from its
 * rank to all), and copying a layer's tensors into
 * the whole model one process saves.
 */
#include "dist.h"

#include "../nn/module.h"

#include <string.h>

nb_status nb__dist_broadcast_module(const nb_module *m, int root, const char *op) {
    const nb__dist_backend *be = nb__dist_active(op);
    int64_t counts[2] = {nb_module_num_params(m), nb_module_num_buffers(m)}, lo[2], hi[2];
    if (!be || be->agree(counts, 2, lo, hi) != NB_OK) return nb_error_code();
    if (lo[0] != hi[0] || lo[1] != hi[1])
        return nb__fail_status(NB_ERR_SHAPE, "dist: %s: rank %d of %d: a model of %lld parameters "
                               "and %lld buffers, another rank's differs", op, be->rank(), be->size(),
                               (long long)counts[0], (long long)counts[1]);
    for (int i = 0; i < counts[0]; i++)
        if (nb_dist_broadcast(nb_module_param(m, i, NULL), root) != NB_OK)
            return nb__fail_prefix("%s: parameter %d", op, i);
    for (int i = 0; i < counts[1]; i++)
        if (nb_dist_broadcast(nb_module_buffer(m, i, NULL), root) != NB_OK)
            return nb__fail_prefix("%s: buffer %d", op, i);
    return NB_OK;
}

static nb_status copy_same(nb_tensor *dst, const nb_tensor *src, const char *op, const char *name) {
    if (!nb__same_shape(dst, src))
        return nb__fail_status(NB_ERR_SHAPE, "%s: layer %s: a tensor is %s in the full model, %s "
                               "in the split one", op, name, NB_SHP(dst), NB_SHP(src));
    nb__copy_tensor(dst, src);
    return NB_OK;
}

nb_status nb__dist_copy_layer(nb_module *full, const nb_module *part, const char *op, const char *name) {
    int np = nb_module_num_params(part), nb = nb_module_num_buffers(part);
    if (np != nb_module_num_params(full) || nb != nb_module_num_buffers(full) || part->cls != full->cls)
        return nb__fail_status(NB_ERR_SHAPE, "%s: layer %s is a %s in the split model, a %s in the "
                               "full one", op, name, nb_module_type(part), nb_module_type(full));
    nb_status st = NB_OK;
    for (int k = 0; k < np && st == NB_OK; k++)
        st = copy_same(nb_module_param(full, k, NULL), nb_module_param(part, k, NULL), op, name);
    for (int k = 0; k < nb && st == NB_OK; k++)
        st = copy_same(nb_module_buffer(full, k, NULL), nb_module_buffer(part, k, NULL), op, name);
    return st;
}

bool nb__dist_is_sequential(const nb_module *m, const char *op) {
    if (!m) return nb__fail(NB_ERR_NULL, "%s: model is NULL", op), false;
    if (!strcmp(nb_module_type(m), "Sequential")) return true;
    return nb__fail(NB_ERR_ARG, "%s: a %s, not a Sequential", op, nb_module_type(m)), false;
}
