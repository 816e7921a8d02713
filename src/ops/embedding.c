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
 * the gradient is differentiable again (create_graph).  max_norm renormalises the rows used in
 * place first, as torch's embedding_renorm_.
 */
#include "op.h"

#include <string.h>

/* Every id of ix (ids' n entries, on the host) in [0, V); *pad_count gets how many equal pad
 * (pad < 0: none). */
static bool ids_in_range(const nb_tensor *ids, const int32_t *ix, int64_t v, int64_t pad,
                         int64_t *pad_count) {
    int64_t n = nb__numel(ids->ndim, ids->shape);
    *pad_count = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ix[i] < 0 || ix[i] >= v) {
            char at[96];
            return nb__fail(NB_ERR_ARG, "embedding: id %d at %s is out of range for %lld "
                            "embeddings (ids must lie in [0, %lld))", (int)ix[i],
                            nb__flat_index_str(ids->ndim, ids->shape, i, at, sizeof at),
                            (long long)v, (long long)v), false;
        }
        *pad_count += ix[i] == pad;
    }
    return true;
}

/* mask [N, 1]: 1 where ix[n] != pad, as float32 for where. */
static nb_tensor *not_pad_mask(const int32_t *ix, int64_t n, int64_t pad) {
    nb_arena *home = nb__current_arena();
    size_t size = sizeof(float) * (size_t)(n ? n : 1);
    float *m = nb__home_alloc(home, size);
    if (!m) return NULL;
    for (int64_t i = 0; i < n; i++) m[i] = ix[i] != pad;
    nb_tensor *mask = nb_from_data(m, 2, (const int64_t[]){n, 1});
    nb__home_free(home, m, size);
    return mask;
}

/* Row id of w scaled in place by s, recording off (the caller's no_grad). */
static nb_status scale_row(nb_tensor *w, int64_t id, float s) {
    nb__temps tmp = {0};
    nb_tensor *row = nb__tmp(&tmp, nb_slice(w, 0, id, id + 1, 1));
    nb_tensor *scaled = row ? nb__tmp(&tmp, nb_mul_scalar(row, s)) : NULL;
    nb_status st = scaled ? nb_copy(row, scaled) : nb_error_code();
    nb__temps_end(&tmp, NULL);
    return st;
}

/* torch's embedding_renorm_ (max_norm): each row the ids use whose 2-norm exceeds max_norm is
 * scaled in place by max_norm / (norm + 1e-7), under no_grad, before the lookup.  The norms of
 * the rows used are computed with ops on the device and read back at once. */
static nb_status renorm_rows(nb_tensor *w, const int32_t *ix, int64_t n, float max_norm) {
    bool was = nb_set_grad_enabled(false);
    nb__temps tmp = {0};
    nb_arena *home = nb__current_arena();
    size_t vocab = (size_t)w->shape[0];
    unsigned char *seen = nb__home_alloc(home, vocab); /* a repeated id is scaled once */
    nb_tensor *index = seen ? nb__tmp(&tmp, nb_from_int32(ix, 1, &n)) : NULL;
    nb_tensor *rows = index ? nb__tmp(&tmp, nb_index_select(w, 0, index)) : NULL;
    nb_tensor *sq = rows ? nb__tmp(&tmp, nb_mul(rows, rows)) : NULL;
    nb_tensor *norm = sq ? nb__tmp(&tmp, nb_sqrt(nb__tmp(&tmp, nb_sum_dims(sq, 1, (int[]){1}, false)))) : NULL;
    float *v = norm ? nb__host_copy(norm) : NULL;
    nb_status st = v ? NB_OK : nb_error_code();
    if (v) memset(seen, 0, vocab);
    for (int64_t i = 0; v && st == NB_OK && i < n; i++) {
        if (!seen[ix[i]] && v[i] > max_norm) st = scale_row(w, ix[i], max_norm / (v[i] + 1e-7f));
        seen[ix[i]] = 1;
    }
    if (v) nb__host_free(v, norm);
    if (seen) nb__home_free(home, seen, vocab);
    nb__temps_end(&tmp, NULL);
    nb_set_grad_enabled(was);
    return st;
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
    if (opts && opts->max_norm < 0)
        return nb__fail(NB_ERR_ARG, "embedding: max_norm must be >= 0 (0: none), got %g",
                        (double)opts->max_norm);
    int64_t n = nb__numel(ids->ndim, ids->shape), shape[NB_MAX_DIMS];
    int32_t *ix = nb__host_copy(ids); /* checked and read on the host */
    if (!ix) return NULL;
    nb__temps tmp = {0};
    nb_tensor *rows = NULL;
    if (ids_in_range(ids, ix, v, pad, &pad_count) &&
        (!opts || !(opts->max_norm > 0) || n == 0 || renorm_rows(weight, ix, n, opts->max_norm) == NB_OK)) {
        nb_tensor *flat = nb__tmp(&tmp, nb_from_int32(ix, 1, &n));
        rows = flat ? nb__tmp(&tmp, nb_index_select(weight, 0, flat)) : NULL;
        if (rows && pad_count > 0 && weight->requires_grad && nb_is_grad_enabled()) {
            nb_tensor *frozen = nb__tmp(&tmp, nb_detach(weight));
            nb_tensor *still = nb__tmp(&tmp, nb_index_select(frozen, 0, flat));
            nb_tensor *mask = nb__tmp(&tmp, not_pad_mask(ix, n, pad));
            rows = nb__tmp(&tmp, nb_where(mask, rows, still));
        }
    }
    nb__host_free(ix, ids);
    for (int d = 0; d < ids->ndim; d++) shape[d] = ids->shape[d];
    shape[ids->ndim] = weight->shape[1];
    return nb__temps_end(&tmp, rows ? nb__tmp(&tmp, nb_reshape(rows, ids->ndim + 1, shape)) : NULL);
}
