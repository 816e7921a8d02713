/*
 * embedding.c — torch.nn.functional.embedding: a lookup of rows, written with ops.
 *
 *   out[n, :] = weight[ids[n], :]             (ids flattened to N entries, out [N, E] reshaped)
 *   dweight = zeros, then dweight[ids[n]] += g[n]   (index_select's backward is index_add, so
 *                                                    only the rows used receive anything)
 *
 * padding_idx: torch reads the padding row like any other but gives it no gradient.  Here the
 * entries that hold the padding id read the row through a detached weight and the others
 * through the weight itself, joined by where (mask [N, 1]); where's backward sends zeros to
 * the detached branch, so the padding row's gradient is exactly zero.  The second lookup is
 * made only when the padding id occurs and the weight requires grad.  Everything is an op, so
 * the gradient is differentiable again (create_graph).
 */
#include "op.h"

/* Every id in [0, V), checked on the host; *pad_count gets how many equal pad (pad < 0: none). */
static bool ids_in_range(const nb_tensor *ids, int64_t v, int64_t pad, int64_t *pad_count) {
    int64_t n = nb__numel(ids->ndim, ids->shape);
    int32_t *ix = nb__host_copy(ids);
    if (!ix) return false;
    bool ok = true;
    *pad_count = 0;
    for (int64_t i = 0; ok && i < n; i++) {
        if (ix[i] < 0 || ix[i] >= v) {
            char at[96];
            nb__fail(NB_ERR_ARG, "embedding: id %d at %s is out of range for %lld embeddings "
                     "(ids must lie in [0, %lld))", (int)ix[i],
                     nb__flat_index_str(ids->ndim, ids->shape, i, at, sizeof at), (long long)v,
                     (long long)v);
            ok = false;
        }
        *pad_count += ix[i] == pad;
    }
    nb__host_free(ix, ids);
    return ok;
}

/* mask [N, 1]: 1 where ids[n] != pad, as float32 for where. */
static nb_tensor *not_pad_mask(const nb_tensor *ids, int64_t pad) {
    int64_t n = nb__numel(ids->ndim, ids->shape);
    int32_t *ix = nb__host_copy(ids);
    nb_arena *home = nb__current_arena();
    float *m = ix ? nb__home_alloc(home, sizeof(float) * (size_t)(n ? n : 1)) : NULL;
    nb_tensor *mask = NULL;
    if (m) {
        for (int64_t i = 0; i < n; i++) m[i] = ix[i] != pad;
        mask = nb_from_data(m, 2, (const int64_t[]){n, 1});
        nb__home_free(home, m, sizeof(float) * (size_t)(n ? n : 1));
    }
    if (ix) nb__host_free(ix, ids);
    return mask;
}

nb_tensor *nb_embedding(nb_tensor *ids, nb_tensor *weight, const nb_embedding_opts *opts) {
    if (!nb__alive(ids)) return nb__fail_input("embedding", ids);
    if (!nb__alive(weight)) return nb__fail_input("embedding", weight);
    if (ids->dtype != NB_I32)
        return nb__fail(NB_ERR_DTYPE, "embedding: ids must be int32, got %s %s",
                        nb_dtype_name(ids->dtype), NB_SHP(ids));
    if (weight->dtype != NB_F32 || weight->ndim != 2)
        return nb__fail(weight->dtype != NB_F32 ? NB_ERR_DTYPE : NB_ERR_SHAPE,
                        "embedding: weight must be a 2-D float32 [num_embeddings, embedding_dim], "
                        "got %s %s", nb_dtype_name(weight->dtype), NB_SHP(weight));
    int64_t v = weight->shape[0], pad = -1, pad_count = 0;
    if (opts && opts->padding) {
        if (opts->padding_idx < -v || opts->padding_idx >= v)
            return nb__fail(NB_ERR_ARG, "embedding: padding_idx %lld must be within num_embeddings "
                            "(%lld)", (long long)opts->padding_idx, (long long)v);
        pad = opts->padding_idx < 0 ? opts->padding_idx + v : opts->padding_idx;
    }
    if (ids->ndim + 1 > NB_MAX_DIMS)
        return nb__fail(NB_ERR_SHAPE, "embedding: ids %s have too many dims", NB_SHP(ids));
    nb__temps tmp = {0};
    nb_tensor *ic = nb__tmp(&tmp, nb_contiguous(ids));
    if (!ic || !ids_in_range(ic, v, pad, &pad_count)) return nb__temps_end(&tmp, NULL);
    int64_t n = nb__numel(ids->ndim, ids->shape), shape[NB_MAX_DIMS];
    nb_tensor *flat = nb__tmp(&tmp, nb_reshape(ic, 1, &n));
    nb_tensor *rows = nb__tmp(&tmp, nb_index_select(weight, 0, flat));
    if (rows && pad_count > 0 && weight->requires_grad && nb_is_grad_enabled()) {
        nb_tensor *frozen = nb__tmp(&tmp, nb_detach(weight));
        nb_tensor *still = nb__tmp(&tmp, nb_index_select(frozen, 0, flat));
        nb_tensor *mask = nb__tmp(&tmp, not_pad_mask(ic, pad));
        rows = nb__tmp(&tmp, nb_where(mask, rows, still));
    }
    for (int d = 0; d < ids->ndim; d++) shape[d] = ids->shape[d];
    shape[ids->ndim] = weight->shape[1];
    return nb__temps_end(&tmp, rows ? nb__tmp(&tmp, nb_reshape(rows, ids->ndim + 1, shape)) : NULL);
}
