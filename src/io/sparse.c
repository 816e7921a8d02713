/*
 * sparse.c — the sparse form of a weight in a weights file (nb_module_save_sparse): a pruned
 * tensor whose elements are mostly 0 is stored as two tensors,
 *   "<name>.__sparse_mask"    U8 [ceil(numel / 8)], bit i % 8 of byte i / 8 set when element i
 *                             (row-major) is not 0 (numpy's packbits with bitorder='little');
 *   "<name>.__sparse_values"  F32 [nonzeros], the elements that are not 0, in row-major order;
 * and the metadata "nabla.sparse" maps each such name to its shape, {"1.weight": [64, 784]}.
 * A float32 element costs 4 bytes dense and 1/8 + 4 (1 - s) sparse at sparsity s, so the form is
 * smaller above s = 1/32; it is used above NB_SPARSE_MIN, where it is less than 0.6 of the dense.
 * nb_module_load reads both forms (-0.0 comes back as +0.0: the sign of a zero is not kept).
 */
#include "nabla.h"
#include "io.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

#define MASK_SUFFIX ".__sparse_mask"
#define VALUES_SUFFIX ".__sparse_values"

/* The parts' names of a sparse tensor: base + suffix, owned (nb__strfree). */
char *nb__sparse_mask_name(const char *base) { return nb__strcat2(base, MASK_SUFFIX); }
char *nb__sparse_values_name(const char *base) { return nb__strcat2(base, VALUES_SUFFIX); }

bool nb__sparse_worth(const nb_tensor *t) {
    if (t->dtype != NB_F32 || nb_numel(t) == 0) return false;
    const float *v = nb__host_copy(t); /* the tensor's memory may be a device's */
    if (!v) return false;              /* then it is saved dense */
    int64_t zeros = 0;
    for (int64_t i = 0; i < nb_numel(t); i++) zeros += v[i] == 0.0f;
    nb__host_free((void *)v, t);
    return (double)zeros > NB_SPARSE_MIN * (double)nb_numel(t);
}

bool nb__sparse_encode(const nb_tensor *t, nb_tensor **mask, nb_tensor **values) {
    int64_t n = nb_numel(t), nnz = 0, bytes = (n + 7) / 8;
    const float *v = nb__host_copy(t);
    uint8_t *bits = v ? nb__alloc((size_t)bytes) : NULL;
    float *out = bits ? nb__alloc(sizeof *out * (size_t)n) : NULL;
    if (out) {
        memset(bits, 0, (size_t)bytes);
        for (int64_t i = 0; i < n; i++) {
            if (v[i] == 0.0f) continue;
            bits[i / 8] |= (uint8_t)(1u << (i % 8));
            out[nnz++] = v[i];
        }
        *mask = nb_from_bytes(NB_U8, bits, 1, &bytes);
        *values = *mask ? nb_from_data(out, 1, &nnz) : NULL;
    }
    nb__dealloc(out, sizeof *out * (size_t)n);
    nb__dealloc(bits, (size_t)bytes);
    if (v) nb__host_free((void *)v, t);
    return out && *values;
}

/* The recorded shape of `name` when st stores it sparse: its ndim, or -1 when it does not. */
static int sparse_shape(const nb_safetensors *st, const char *name, int64_t *shape) {
    const char *text = nb_safetensors_meta(st, NB_SPARSE_META);
    json_error_t err;
    json_t *all = text ? json_loads(text, 0, &err) : NULL, *dims = json_object_get(all, name);
    int ndim = json_is_array(dims) && json_array_size(dims) <= NB_MAX_DIMS ? (int)json_array_size(dims) : -1;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        json_t *d = json_array_get(dims, (size_t)i);
        shape[i] = json_is_integer(d) ? json_integer_value(d) : -1;
        if (shape[i] < 0 || (shape[i] > 0 && numel > INT64_MAX / shape[i])) ndim = -1; /* no overflow */
        else numel *= shape[i];
    }
    json_decref(all);
    return ndim;
}

bool nb__sparse_has(const nb_safetensors *st, const char *name) {
    int64_t shape[NB_MAX_DIMS];
    return sparse_shape(st, name, shape) >= 0;
}

bool nb__sparse_part_of(const nb_safetensors *st, const char *name, const char *base) {
    size_t n = strlen(base);
    return !strncmp(name, base, n) && (!strcmp(name + n, MASK_SUFFIX) || !strcmp(name + n, VALUES_SUFFIX)) &&
           nb__sparse_has(st, base);
}

/* The parts against the shape: a U8 mask of ceil(numel / 8) bytes whose set bits (none past
 * numel) are as many as the F32 values. */
static bool parts_fit(const char *label, const char *name, const nb_tensor *mask, const uint8_t *bits,
                      const nb_tensor *values, int64_t numel) {
    if (mask->dtype != NB_U8 || mask->ndim != 1 || mask->shape[0] != (numel + 7) / 8 || values->dtype != NB_F32 ||
        values->ndim != 1)
        return nb__fail(NB_ERR_IO, "%s: the sparse parts of '%s' are not a U8 mask of %lld bytes and F32 values",
                        label, name, (long long)((numel + 7) / 8)), false;
    int64_t set = 0;
    for (int64_t i = 0; i < 8 * mask->shape[0]; i++) set += (bits[i / 8] >> (i % 8)) & 1;
    for (int64_t i = numel; i < 8 * mask->shape[0]; i++)
        if ((bits[i / 8] >> (i % 8)) & 1) set = -1;
    if (set != values->shape[0])
        return nb__fail(NB_ERR_IO, "%s: the sparse mask of '%s' marks %lld elements but %lld values are stored",
                        label, name, (long long)set, (long long)values->shape[0]), false;
    return true;
}

/* A part of a sparse tensor; a missing one is a fault of the file (NB_ERR_IO), as a missing
 * dense tensor is. */
static nb_tensor *part(const nb_safetensors *st, const char *label, const char *name) {
    for (int i = 0, n = nb_safetensors_count(st); i < n; i++)
        if (!strcmp(nb_safetensors_name(st, i), name)) return nb_safetensors_get(st, name);
    return nb__fail(NB_ERR_IO, "%s: has no tensor '%s'", label, name), NULL;
}

/* The dense elements from the parts, in host memory: element i is the next value when bit i is set. */
static nb_tensor *expand(const uint8_t *bits, const float *in, int ndim, const int64_t *shape, int64_t numel) {
    float *out = nb__alloc(sizeof *out * (size_t)(numel ? numel : 1));
    if (!out) return NULL;
    for (int64_t i = 0, k = 0; i < numel; i++) out[i] = (bits[i / 8] >> (i % 8)) & 1 ? in[k++] : 0.0f;
    nb_tensor *t = nb_from_data(out, ndim, shape);
    nb__dealloc(out, sizeof *out * (size_t)(numel ? numel : 1));
    return t;
}

nb_tensor *nb__sparse_get(const nb_safetensors *st, const char *label, const char *name) {
    int64_t shape[NB_MAX_DIMS];
    int ndim = sparse_shape(st, name, shape);
    char *mname = nb__sparse_mask_name(name), *vname = mname ? nb__sparse_values_name(name) : NULL;
    nb_tensor *mask = vname ? part(st, label, mname) : NULL;
    nb_tensor *values = mask ? part(st, label, vname) : NULL, *t = NULL;
    nb__strfree(mname);
    nb__strfree(vname);
    int64_t numel = nb__numel(ndim, shape);
    const uint8_t *bits = values ? nb__host_copy(mask) : NULL;
    const float *in = bits ? nb__host_copy(values) : NULL;
    if (in && parts_fit(label, name, mask, bits, values, numel)) t = expand(bits, in, ndim, shape, numel);
    if (in) nb__host_free((void *)in, values);
    if (bits) nb__host_free((void *)bits, mask);
    return t;
}
