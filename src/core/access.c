/*
 * access.c — inspection and element access: shape queries, get/set by index, bulk copies in
 * logical order, and dtype conversion (f16 and bf16 by round-to-nearest-even, int8/int32 by
 * rounding with saturation).  Tensor memory is the backend's: elements travel to and from the
 * host through its copies and are converted here.
 */
#include "core.h"

#include "../backend/backend.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CHECK_ALIVE(op, t, fail_value)        \
    do {                                      \
        if (!nb__alive(t)) {                  \
            nb__fail_input(op, t);            \
            return fail_value;                \
        }                                     \
    } while (0)

int nb_ndim(const nb_tensor *t) { CHECK_ALIVE("ndim", t, -1); return t->ndim; }
const int64_t *nb_shape(const nb_tensor *t) { CHECK_ALIVE("shape", t, NULL); return t->shape; }
const int64_t *nb_strides(const nb_tensor *t) { CHECK_ALIVE("strides", t, NULL); return t->stride; }
int64_t nb_numel(const nb_tensor *t) { CHECK_ALIVE("numel", t, -1); return nb__numel(t->ndim, t->shape); }
nb_dtype nb_dtype_of(const nb_tensor *t) { CHECK_ALIVE("dtype", t, NB_DTYPE_COUNT); return t->dtype; }
nb_device nb_device_of(const nb_tensor *t) { CHECK_ALIVE("device", t, NB_DEVICE_COUNT); return t->device; }
bool nb_is_alive(const nb_tensor *t) { return nb__alive(t); }

bool nb_shares_storage(const nb_tensor *a, const nb_tensor *b) {
    return nb__alive(a) && nb__alive(b) && a->storage == b->storage;
}

int64_t nb_size(const nb_tensor *t, int dim) {
    CHECK_ALIVE("size", t, -1);
    return nb__norm_dim("size", &dim, t->ndim) ? t->shape[dim] : -1;
}

float *nb_data(nb_tensor *t) {
    CHECK_ALIVE("data", t, NULL);
    const nb_backend *be = nb__backend(t->device);
    if (t->dtype != NB_F32)
        return nb__fail(NB_ERR_DTYPE, "data: tensor is %s, not float32", nb_dtype_name(t->dtype));
    if (!be->host_memory)
        return nb__fail(NB_ERR_DEVICE, "data: the %s backend's memory is not host memory; copy with "
                        "nb_copy_to and nb_copy_from", be->name);
    return nb__f32(t);
}

/* ---- scalar conversions between storage types */

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float f;
    if (exp == 0) f = ldexpf((float)man, -24);                 /* zero or subnormal */
    else if (exp == 31) f = man ? NAN : INFINITY;
    else f = ldexpf((float)(man | 0x400), (int)exp - 25);
    uint32_t bits;
    memcpy(&bits, &f, 4);
    bits |= sign;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    float a = fabsf(f);
    if (isnan(f)) return sign | 0x7e00;
    if (a >= 65520.0f) return sign | 0x7c00;                   /* rounds to infinity */
    if (a < 6.103515625e-05f) /* subnormal: units of 2^-24, nearbyint rounds half to even */
        return sign | (uint16_t)nearbyintf(a * 16777216.0f);
    int e;
    float m = frexpf(a, &e);                                   /* a = m * 2^e, m in [0.5, 1) */
    uint32_t man = (uint32_t)nearbyintf(m * 2048.0f);          /* 11 significant bits */
    if (man == 2048) { man = 1024; e++; }
    return sign | (uint16_t)(((uint32_t)(e + 14) << 10) | (man & 0x3ff));
}

static float bf16_to_float(uint16_t b) {
    uint32_t x = (uint32_t)b << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static uint16_t float_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if (isnan(f)) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1); /* round to nearest even */
    return (uint16_t)(x >> 16);
}

/* One element of dtype d in host memory p, as a float. */
static float load(nb_dtype d, const void *p) {
    switch (d) {
    case NB_F32: return *(const float *)p;
    case NB_F16: return half_to_float(*(const uint16_t *)p);
    case NB_BF16: return bf16_to_float(*(const uint16_t *)p);
    case NB_I8: return *(const int8_t *)p;
    case NB_I32: return (float)*(const int32_t *)p;
    default: return NAN;
    }
}

/* v stored as one element of dtype d in host memory p. */
static void store(nb_dtype d, void *p, float v) {
    switch (d) {
    case NB_F32: *(float *)p = v; break;
    case NB_F16: *(uint16_t *)p = float_to_half(v); break;
    case NB_BF16: *(uint16_t *)p = float_to_bf16(v); break;
    case NB_I8: *(int8_t *)p = (int8_t)fmaxf(-128.0f, fminf(127.0f, nearbyintf(v))); break;
    case NB_I32: *(int32_t *)p = (int32_t)fmax(-2147483648.0, fmin(2147483647.0, nearbyint(v))); break;
    default: break;
    }
}

/* ---- element access */

static bool index_offset(const char *op, const nb_tensor *t, const int64_t *index, int64_t *off) {
    if (t->ndim > 0 && !index) return nb__fail(NB_ERR_ARG, "%s: index is NULL", op), false;
    *off = t->offset;
    for (int i = 0; i < t->ndim; i++) {
        if (index[i] < 0 || index[i] >= t->shape[i])
            return nb__fail(NB_ERR_DIM, "%s: index %lld is out of range for dim %d of %s", op,
                            (long long)index[i], i, NB_SHP(t)), false;
        *off += index[i] * t->stride[i];
    }
    return true;
}

/* The device pointer to t's element at storage index i. */
static void *element(const nb_tensor *t, int64_t i) {
    return (char *)t->storage->data + i * (int64_t)nb__dtype_size(t->dtype);
}

static float load_one(const nb_tensor *t, int64_t storage_index) {
    char bytes[sizeof(float)];
    nb__backend(t->device)->copy_d2h(bytes, element(t, storage_index), nb__dtype_size(t->dtype));
    return load(t->dtype, bytes);
}

float nb_get(const nb_tensor *t, const int64_t *index) {
    CHECK_ALIVE("get", t, NAN);
    int64_t off;
    return index_offset("get", t, index, &off) ? load_one(t, off) : NAN;
}

nb_status nb_set(nb_tensor *t, const int64_t *index, float value) {
    CHECK_ALIVE("set", t, nb_error_code());
    int64_t off;
    if (!index_offset("set", t, index, &off)) return nb_error_code();
    char bytes[sizeof(float)];
    store(t->dtype, bytes, value);
    nb__backend(t->device)->copy_h2d(element(t, off), bytes, nb__dtype_size(t->dtype));
    return NB_OK;
}

float nb_item(const nb_tensor *t) {
    CHECK_ALIVE("item", t, NAN);
    if (nb__numel(t->ndim, t->shape) != 1)
        return nb__fail(NB_ERR_SHAPE, "item: %s has %lld elements, not 1", NB_SHP(t),
                        (long long)nb__numel(t->ndim, t->shape)), NAN;
    return load_one(t, t->offset);
}

/* t's elements in logical order as floats into dst (n of them). */
static nb_status download(const nb_tensor *t, float *dst, int64_t n) {
    if (t->dtype == NB_F32) return nb__copy_logical(dst, t);
    size_t es = nb__dtype_size(t->dtype), nbytes = es * (size_t)(n ? n : 1);
    char *raw = nb__alloc(nbytes);
    if (!raw || nb__copy_logical(raw, t) != NB_OK) {
        nb__dealloc(raw, nbytes);
        return nb_error_code();
    }
    for (int64_t i = 0; i < n; i++) dst[i] = load(t->dtype, raw + (size_t)i * es);
    nb__dealloc(raw, nbytes);
    return NB_OK;
}

/* n floats from src into t's elements in logical order; value alone (src NULL) into all. */
static nb_status upload(nb_tensor *t, const float *src, float value, int64_t n) {
    const nb_backend *be = nb__backend(t->device);
    size_t es = nb__dtype_size(t->dtype), nbytes = es * (size_t)(n ? n : 1);
    if (!src && nb_is_contiguous(t)) {
        char bytes[sizeof(float)];
        store(t->dtype, bytes, value);
        be->fill(element(t, t->offset), bytes, es, n);
        return NB_OK;
    }
    if (src && t->dtype == NB_F32) return nb__store_logical(t, src);
    char *raw = nb__alloc(nbytes);
    if (!raw) return nb_error_code();
    for (int64_t i = 0; i < n; i++) store(t->dtype, raw + (size_t)i * es, src ? src[i] : value);
    nb_status s = nb__store_logical(t, raw);
    nb__dealloc(raw, nbytes);
    return s;
}

nb_status nb_copy_to(const nb_tensor *t, float *dst, int64_t n) {
    CHECK_ALIVE("copy_to", t, nb_error_code());
    int64_t numel = nb__numel(t->ndim, t->shape);
    if (!dst || n < numel)
        return nb__fail_status(NB_ERR_ARG, "copy_to: destination holds %lld floats, %s needs %lld",
                               (long long)(dst ? n : 0), NB_SHP(t), (long long)numel);
    return download(t, dst, numel);
}

nb_status nb_copy_from(nb_tensor *t, const float *src, int64_t n) {
    CHECK_ALIVE("copy_from", t, nb_error_code());
    int64_t numel = nb__numel(t->ndim, t->shape);
    if (!src || n != numel)
        return nb__fail_status(NB_ERR_ARG, "copy_from: source holds %lld floats, %s needs %lld",
                               (long long)(src ? n : 0), NB_SHP(t), (long long)numel);
    return upload(t, src, 0.0f, numel);
}

nb_status nb_fill(nb_tensor *t, float value) {
    CHECK_ALIVE("fill", t, nb_error_code());
    return upload(t, NULL, value, nb__numel(t->ndim, t->shape));
}

nb_tensor *nb_to_dtype(const nb_tensor *t, nb_dtype dtype) {
    CHECK_ALIVE("to_dtype", t, NULL);
    if ((unsigned)dtype >= NB_DTYPE_COUNT) return nb__fail(NB_ERR_DTYPE, "to_dtype: unknown dtype %d", (int)dtype);
    nb_tensor *c = nb__new(dtype, t->ndim, t->shape);
    if (!c) return NULL;
    int64_t n = nb__numel(t->ndim, t->shape);
    size_t bytes = sizeof(float) * (size_t)(n ? n : 1);
    float *tmp = nb__alloc(bytes);
    nb_status s = tmp ? download(t, tmp, n) : nb_error_code();
    if (s == NB_OK) s = upload(c, tmp, 0.0f, n);
    nb__dealloc(tmp, bytes);
    if (s != NB_OK) nb_tensor_free(c);
    return s == NB_OK ? c : NULL;
}

nb_status nb_copy(nb_tensor *dst, const nb_tensor *src) {
    CHECK_ALIVE("copy", dst, nb_error_code());
    CHECK_ALIVE("copy", src, nb_error_code());
    if (!nb__same_shape(dst, src))
        return nb__fail_status(NB_ERR_SHAPE, "copy: source %s does not match destination %s",
                               NB_SHP(src), NB_SHP(dst));
    if (dst->dtype == src->dtype) {
        nb__copy_tensor(dst, src);
        return NB_OK;
    }
    int64_t n = nb__numel(src->ndim, src->shape);
    float *tmp = nb__alloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!tmp) return NB_ERR_MEMORY;
    nb_status s = download(src, tmp, n);
    if (s == NB_OK) s = upload(dst, tmp, 0.0f, n);
    nb__dealloc(tmp, sizeof(float) * (size_t)(n ? n : 1));
    return s;
}

/* Read from the bits: exponent all ones. */
int64_t nb__first_non_finite(const nb_tensor *t, double *value) {
    if (t->dtype != NB_F32 && t->dtype != NB_F16 && t->dtype != NB_BF16) return -1;
    int64_t n = nb_numel(t);
    size_t es = nb__dtype_size(t->dtype);
    unsigned char *b = nb__alloc((size_t)n * es + 1);
    if (!b) return -2;
    nb__copy_logical(b, t);
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++) {
        const unsigned char *p = b + (size_t)i * es;
        uint32_t f32;
        uint16_t h;
        if (t->dtype == NB_F32) memcpy(&f32, p, 4);
        else memcpy(&h, p, 2);
        bool inf_or_nan = t->dtype == NB_F32  ? (f32 & 0x7f800000u) == 0x7f800000u
                          : t->dtype == NB_F16 ? (h & 0x7c00u) == 0x7c00u
                                               : (h & 0x7f80u) == 0x7f80u; /* bf16 */
        if (inf_or_nan) bad = i;
    }
    if (bad >= 0 && value) { /* a half's infinity or NaN as a float's: sign, all-ones, payload */
        const unsigned char *p = b + (size_t)bad * es;
        uint32_t bits;
        uint16_t h;
        if (t->dtype == NB_F32) {
            memcpy(&bits, p, 4);
        } else {
            memcpy(&h, p, 2);
            uint32_t payload = t->dtype == NB_F16 ? (uint32_t)(h & 0x3ffu) << 13
                                                  : (uint32_t)(h & 0x7fu) << 16;
            bits = (uint32_t)(h & 0x8000u) << 16 | 0x7f800000u | payload;
        }
        float f;
        memcpy(&f, &bits, 4);
        *value = isnan(f) ? NAN : f; /* messages print "nan", whatever its sign bit */
    }
    nb__dealloc(b, (size_t)n * es + 1);
    return bad;
}

const char *nb__flat_index_str(int ndim, const int64_t *shape, int64_t flat, char *buf, size_t cap) {
    int64_t idx[NB_MAX_DIMS];
    for (int k = ndim - 1; k >= 0; k--) { /* the flat index as a multi-index */
        idx[k] = flat % shape[k];
        flat /= shape[k];
    }
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int k = 0; k < ndim && len < cap; k++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", k ? "," : "", (long long)idx[k]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
    return buf;
}
