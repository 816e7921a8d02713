/*
 * batch.c — batches of variable-length sequences (padding, mask, lengths), bucketing by length,
 * and the language-modelling dataset of (x, y) windows over a token stream.
 *
 * Shapes: B sequences, T the longest.  ids [B, T] int32, padded with pad_id after each end;
 * mask [B, T] float, 1 on tokens and 0 on padding (multiply a per-token loss by it and divide by
 * its sum for the mean over real tokens); lengths [B] as nb_rnn_inputs.lengths takes them.
 */
#include "internal.h"
#include "../data/internal.h"

#include <stdlib.h>
#include <string.h>

nb_status nb_seq_batch_make(nb_seq_batch *out, const int32_t *const *seqs, const int64_t *lens,
                            int64_t batch, int32_t pad_id) {
    if (!out || !seqs || !lens)
        return nb__fail_status(NB_ERR_NULL, "seq_batch: out, seqs or lens is NULL");
    *out = (nb_seq_batch){0};
    if (batch < 1) return nb__fail_status(NB_ERR_ARG, "seq_batch: batch %lld < 1", (long long)batch);
    int64_t T = 0;
    for (int64_t b = 0; b < batch; b++) {
        if (lens[b] < 1)
            return nb__fail_status(NB_ERR_ARG, "seq_batch: sequence %lld is empty (length %lld)",
                                   (long long)b, (long long)lens[b]);
        if (!seqs[b]) return nb__fail_status(NB_ERR_NULL, "seq_batch: seqs[%lld] is NULL", (long long)b);
        if (lens[b] > T) T = lens[b];
    }
    size_t cells = (size_t)(batch * T);
    int32_t *ids = nb__alloc(cells * sizeof *ids);
    float *mask = nb__alloc(cells * sizeof *mask);
    int64_t *lengths = nb__alloc((size_t)batch * sizeof *lengths);
    nb_status st = ids && mask && lengths ? NB_OK : NB_ERR_MEMORY;
    for (int64_t b = 0; st == NB_OK && b < batch; b++) {
        lengths[b] = lens[b];
        for (int64_t t = 0; t < T; t++) {
            ids[b * T + t] = t < lens[b] ? seqs[b][t] : pad_id;
            mask[b * T + t] = t < lens[b] ? 1.0f : 0.0f;
        }
    }
    int64_t shape[2] = {batch, T};
    if (st == NB_OK) {
        *out = (nb_seq_batch){.batch = batch, .max_len = T, .lengths = lengths,
                              .ids = nb_from_int32(ids, 2, shape), .mask = nb_from_data(mask, 2, shape)};
        if (!out->ids || !out->mask) st = nb_error_code();
    }
    nb__dealloc(ids, cells * sizeof *ids);
    nb__dealloc(mask, cells * sizeof *mask);
    if (st != NB_OK) {
        nb__dealloc(lengths, (size_t)batch * sizeof *lengths);
        *out = (nb_seq_batch){0};
    }
    return st;
}

void nb_seq_batch_free(nb_seq_batch *b) {
    if (!b) return;
    nb__dealloc(b->lengths, (size_t)b->batch * sizeof *b->lengths);
    b->lengths = NULL;
}

/* qsort's comparator has no user pointer: the lengths being sorted by, one per thread. */
static _Thread_local const int64_t *sort_lens;

static int by_length(const void *a, const void *b) {
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    if (sort_lens[i] != sort_lens[j]) return sort_lens[i] < sort_lens[j] ? -1 : 1;
    return (i > j) - (i < j);
}

/* Counter word that keeps the bucket shuffle's Philox stream apart from the loader's. */
#define BUCKET_STREAM 0x6275636Bu /* "buck" */

nb_status nb_bucket_order(const int64_t *lens, int64_t n, int64_t batch_size, uint64_t seed,
                          int64_t epoch, int64_t *order) {
    if (!lens || !order) return nb__fail_status(NB_ERR_NULL, "bucket_order: lens or order is NULL");
    if (n < 1 || batch_size < 1)
        return nb__fail_status(NB_ERR_ARG, "bucket_order: n %lld and batch_size %lld must be >= 1",
                               (long long)n, (long long)batch_size);
    for (int64_t i = 0; i < n; i++) order[i] = i;
    sort_lens = lens;
    qsort(order, (size_t)n, sizeof *order, by_length);
    /* Fisher-Yates over whole runs: run r swaps with a run j <= r drawn from (seed, epoch, r).
     * The last run may be short, so runs are moved through a copy of the sorted order. */
    int64_t runs = (n + batch_size - 1) / batch_size;
    int64_t *run = nb__alloc((size_t)runs * sizeof *run), *sorted = nb__alloc((size_t)n * sizeof *sorted);
    if (!run || !sorted) {
        nb__dealloc(run, (size_t)runs * sizeof *run);
        nb__dealloc(sorted, (size_t)n * sizeof *sorted);
        return NB_ERR_MEMORY;
    }
    memcpy(sorted, order, (size_t)n * sizeof *sorted);
    uint64_t key = nb__epoch_key(seed, epoch);
    for (int64_t r = 0; r < runs; r++) run[r] = r;
    for (int64_t r = runs - 1; r > 0; r--) {
        uint32_t x[4];
        nb__philox4x32(x, (const uint32_t[4]){(uint32_t)r, (uint32_t)(r >> 32), 0, BUCKET_STREAM}, key);
        /* 64 random bits modulo r + 1: the bias is below (r + 1) / 2^64. */
        int64_t j = (int64_t)(((uint64_t)x[0] << 32 | x[1]) % (uint64_t)(r + 1));
        int64_t t = run[r];
        run[r] = run[j];
        run[j] = t;
    }
    int64_t at = 0;
    for (int64_t r = 0; r < runs; r++) {
        int64_t from = run[r] * batch_size, len = from + batch_size <= n ? batch_size : n - from;
        memcpy(order + at, sorted + from, (size_t)len * sizeof *order);
        at += len;
    }
    nb__dealloc(run, (size_t)runs * sizeof *run);
    nb__dealloc(sorted, (size_t)n * sizeof *sorted);
    return NB_OK;
}

#define MAX_EXACT_ID (1 << 24) /* float holds every integer below 2^24 exactly */

nb_dataset *nb_lm_dataset_new(const int32_t *stream, int64_t n, int64_t context, int64_t stride) {
    if (!stream) return nb__fail(NB_ERR_NULL, "lm_dataset: stream is NULL");
    if (context < 1 || stride < 1 || n < context + 1)
        return nb__fail(NB_ERR_ARG, "lm_dataset: a stream of %lld tokens, context %lld, stride "
                        "%lld: need context, stride >= 1 and at least context + 1 tokens",
                        (long long)n, (long long)context, (long long)stride);
    for (int64_t i = 0; i < n; i++)
        if (stream[i] < 0 || stream[i] >= MAX_EXACT_ID)
            return nb__fail(NB_ERR_ARG, "lm_dataset: stream[%lld] = %d is not an id in [0, 2^24)",
                            (long long)i, stream[i]);
    int64_t windows = (n - context - 1) / stride + 1;
    size_t bytes = (size_t)(windows * context) * sizeof(float);
    float *x = nb__alloc(bytes), *y = nb__alloc(bytes);
    if (!x || !y) {
        nb__dealloc(x, bytes);
        nb__dealloc(y, bytes);
        return NULL;
    }
    for (int64_t w = 0; w < windows; w++)
        for (int64_t t = 0; t < context; t++) {
            x[w * context + t] = (float)stream[w * stride + t];
            y[w * context + t] = (float)stream[w * stride + t + 1];
        }
    return nb__dataset_adopt("lm_dataset", windows, 1, &context, false, x, bytes,
                             NB_TARGET_FLOAT, context, y, bytes);
}
