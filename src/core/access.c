/*
 * access.c — inspection and element access: shape queries, get/set by index, bulk copies in
 * logical order, and dtype conversion (f16 and bf16 by round-to-nearest-even, int8/int32 by
 * rounding with saturation).
 */
#include "core.h"

#include <math.h>
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
    return t->dtype == NB_F32 ? nb__f32(t) : nb__fail(NB_ERR_DTYPE, "data: tensor is %s, not float32",
                                                      nb_dtype_name(t->dtype));
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

static float load(const nb_tensor *t, int64_t storage_index) {
    const void *p = (const char *)t->storage->data + storage_index * nb__dtype_size(t->dtype);
    switch (t->dtype) {
    case NB_F32: return *(const float *)p;
    case NB_F16: return half_to_float(*(const uint16_t *)p);
    case NB_BF16: return bf16_to_float(*(const uint16_t *)p);
    case NB_I8: return *(const int8_t *)p;
    case NB_I32: return (float)*(const int32_t *)p;
    default: return NAN;
    }
}

static void store(nb_tensor *t, int64_t storage_index, float v) {
    void *p = (char *)t->storage->data + storage_index * nb__dtype_size(t->dtype);
    switch (t->dtype) {
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

float nb_get(const nb_tensor *t, const int64_t *index) {
    CHECK_ALIVE("get", t, NAN);
    int64_t off;
    return index_offset("get", t, index, &off) ? load(t, off) : NAN;
}

nb_status nb_set(nb_tensor *t, const int64_t *index, float value) {
    CHECK_ALIVE("set", t, nb_error_code());
    int64_t off;
    if (!index_offset("set", t, index, &off)) return nb_error_code();
    store(t, off, value);
    return NB_OK;
}

float nb_item(const nb_tensor *t) {
    CHECK_ALIVE("item", t, NAN);
    if (nb__numel(t->ndim, t->shape) != 1)
        return nb__fail(NB_ERR_SHAPE, "item: %s has %lld elements, not 1", NB_SHP(t),
                        (long long)nb__numel(t->ndim, t->shape)), NAN;
    return load(t, t->offset);
}

/* Calls fn for every element in logical order with its storage index. */
#define FOR_EACH_ELEMENT(t, off, body)                                       \
    do {                                                                     \
        int64_t idx_[NB_MAX_DIMS] = {0}, n_ = nb__numel((t)->ndim, (t)->shape); \
        int64_t off = (t)->offset;                                           \
        for (int64_t i_ = 0; i_ < n_; i_++) {                                \
            body;                                                            \
            for (int k_ = (t)->ndim - 1; k_ >= 0; k_--) {                    \
                off += (t)->stride[k_];                                      \
                if (++idx_[k_] < (t)->shape[k_]) break;                      \
                off -= (t)->stride[k_] * (t)->shape[k_];                     \
                idx_[k_] = 0;                                                \
            }                                                                \
        }                                                                    \
    } while (0)

nb_status nb_copy_to(const nb_tensor *t, float *dst, int64_t n) {
    CHECK_ALIVE("copy_to", t, nb_error_code());
    int64_t numel = nb__numel(t->ndim, t->shape);
    if (!dst || n < numel)
        return nb__fail_status(NB_ERR_ARG, "copy_to: destination holds %lld floats, %s needs %lld",
                               (long long)(dst ? n : 0), NB_SHP(t), (long long)numel);
    int64_t i = 0;
    FOR_EACH_ELEMENT(t, off, dst[i++] = load(t, off));
    return NB_OK;
}

nb_status nb_copy_from(nb_tensor *t, const float *src, int64_t n) {
    CHECK_ALIVE("copy_from", t, nb_error_code());
    int64_t numel = nb__numel(t->ndim, t->shape);
    if (!src || n != numel)
        return nb__fail_status(NB_ERR_ARG, "copy_from: source holds %lld floats, %s needs %lld",
                               (long long)(src ? n : 0), NB_SHP(t), (long long)numel);
    int64_t i = 0;
    FOR_EACH_ELEMENT(t, off, store(t, off, src[i++]));
    return NB_OK;
}

nb_status nb_fill(nb_tensor *t, float value) {
    CHECK_ALIVE("fill", t, nb_error_code());
    FOR_EACH_ELEMENT(t, off, store(t, off, value));
    return NB_OK;
}

nb_tensor *nb_to_dtype(const nb_tensor *t, nb_dtype dtype) {
    CHECK_ALIVE("to_dtype", t, NULL);
    if ((unsigned)dtype >= NB_DTYPE_COUNT) return nb__fail(NB_ERR_DTYPE, "to_dtype: unknown dtype %d", (int)dtype);
    nb_tensor *c = nb__new(dtype, t->ndim, t->shape);
    if (!c) return NULL;
    int64_t i = 0;
    FOR_EACH_ELEMENT(t, off, store(c, i++, load(t, off)));
    return c;
}

nb_status nb_copy(nb_tensor *dst, const nb_tensor *src) {
    CHECK_ALIVE("copy", dst, nb_error_code());
    CHECK_ALIVE("copy", src, nb_error_code());
    if (!nb__same_shape(dst, src))
        return nb__fail_status(NB_ERR_SHAPE, "copy: source %s does not match destination %s",
                               NB_SHP(src), NB_SHP(dst));
    if (dst->dtype == src->dtype && nb_is_contiguous(dst)) {
        nb__copy_logical((char *)dst->storage->data + dst->offset * (int64_t)nb__dtype_size(dst->dtype), src);
        return NB_OK;
    }
    int64_t n = nb__numel(src->ndim, src->shape);
    float *tmp = nb__alloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!tmp) return NB_ERR_MEMORY;
    nb_copy_to(src, tmp, n);
    nb_status s = nb_copy_from(dst, tmp, n);
    nb__dealloc(tmp, sizeof(float) * (size_t)(n ? n : 1));
    return s;
}
