/*
 * internal.h — what the files of src/data share: the dataset structure, the constructor that
 * takes ownership of buffers, and a counter-based random generator with a full 128-bit counter.
 */
#ifndef NB_DATA_INTERNAL_H
#define NB_DATA_INTERNAL_H

#include "../core/core.h"
#include "nabla/data.h"

/* Samples and targets in two blocks from nb__alloc; x_bytes / y_bytes are the sizes they were
 * allocated with (what nb__dealloc needs). */
struct nb_dataset {
    int64_t n;
    int sample_ndim;
    int64_t sample_shape[NB_MAX_DIMS];
    int64_t sample_numel;
    bool is_u8;
    void *x;
    size_t x_bytes;
    nb_target_kind target;
    int64_t target_dim;
    int32_t num_classes;
    void *y; /* int32 [n] or float [n, target_dim]; NULL for NB_TARGET_NONE */
    size_t y_bytes;
    /* Where the samples and targets were read from, for messages: NUL-terminated copies from
     * nb__alloc (NULL for a dataset made in memory), and the index in those files of sample 0
     * (a subset's start). */
    char *x_file, *y_file;
    int64_t file_index;
};

/* Builds a dataset around x and y (allocated with nb__alloc), which it now owns: on failure they
 * are released too.  Checks shapes and labels; what names the caller in error messages. */
nb_dataset *nb__dataset_adopt(const char *what, int64_t n, int sample_ndim,
                              const int64_t *sample_shape, bool is_u8, void *x, size_t x_bytes,
                              nb_target_kind target, int64_t target_dim, void *y, size_t y_bytes);

/* Records the files ds was read from (copied) and the index of its sample 0 in them; false
 * (NB_ERR_MEMORY) when the copies cannot be made. */
bool nb__dataset_set_files(nb_dataset *ds, const char *x_file, const char *y_file,
                           int64_t file_index);

/* Floats of scratch space nb__transform_sample needs for one sample (an H x W plane), or 0. */
int64_t nb__transform_scratch(const nb_transforms *t, const nb_dataset *ds);
/* Writes sample s of ds to out[sample_numel] as floats with the transforms t applied; key is
 * nb__epoch_key(seed, epoch), so the random choices depend on (seed, epoch, s) only.  scratch:
 * nb__transform_scratch floats of this call's own (NULL when that is 0). */
void nb__transform_sample(const nb_transforms *t, const nb_dataset *ds, int64_t s, int64_t epoch,
                          uint64_t key, float *out, float *scratch);
/* Every value of t finite and in range, and geometry only on images; false with NB_ERR_ARG /
 * NB_ERR_SHAPE naming the field and the value. */
bool nb__transforms_check(const nb_transforms *t, const nb_dataset *ds);

/* Counter word 3 names the stream, so no two uses of one key ever meet. */
enum {
    NB_STREAM_PERM = 1,
    NB_STREAM_GEOMETRY = 2, /* shift and flip */
    NB_STREAM_NOISE = 3,
    NB_STREAM_CROP = 4,
    NB_STREAM_ROTATE = 5,
    NB_STREAM_USER = 6
};

/* Philox4x32-10 (Salmon et al., SC'11) on an explicit 128-bit counter, so that independent
 * streams (the permutation, each sample's augmentation) never share counters. */
static inline void nb__philox4x32(uint32_t out[4], const uint32_t ctr[4], uint64_t key) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
        c[1] = (uint32_t)p1;
        c[3] = (uint32_t)p0;
        c[0] = n0;
        c[2] = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (int i = 0; i < 4; i++) out[i] = c[i];
}

/* SplitMix64's finaliser (Steele et al., OOPSLA'14): spreads (seed, epoch) over the 64-bit key
 * so nearby seeds and epochs give unrelated streams. */
static inline uint64_t nb__mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t nb__epoch_key(uint64_t seed, int64_t epoch) {
    return nb__mix64(seed ^ nb__mix64((uint64_t)epoch));
}

#endif
