/*
 * access.c — inspection and element access: shape queries, get/set by index, bulk copies in
 * logical order, and dtype conversion between every pair of dtypes (floats by round to
 * nearest even, floats to integers by rounding with saturation, integers among themselves by
 * wrapping, as nabla.h's nb_to_dtype describes).  Tensor memory is the backend's: elements
 * travel to and from the host through its copies and are converted here.
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

/* ---- scalar conversions between storage types
 *
 * Every conversion goes through float32, which holds every value of the 8- and 16-bit formats
 * exactly, except integer to integer (exact, wrapping as torch does).  Rounding is to nearest,
 * ties to even, everywhere: nearbyint in the default rounding mode. */

/* A small binary float format: sign, exponent with bias, man_bits stored mantissa bits.  ieee:
 * the all-ones exponent holds Inf (mantissa 0) and NaNs; otherwise (float8_e4m3fn, OCP OFP8
 * v1.0) it holds normal numbers and only S.1111.111 is NaN.  max_finite is the pattern of the
 * largest finite number; nan the pattern a NaN converts to (sign added). */
typedef struct {
    int bits, man_bits, bias;
    bool ieee;
    uint32_t max_finite, nan;
} minifloat;

static const minifloat F16 = {16, 10, 15, true, 0x7bff, 0x7e00};   /* torch's canonical NaN */
static const minifloat E4M3 = {8, 3, 7, false, 0x7e, 0x7f};        /* 448 */
static const minifloat E5M2 = {8, 2, 15, true, 0x7b, 0x7f};        /* 57344; torch's NaN 0x7f */

static float float_of_bits(uint32_t bits) {
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint32_t bits_of_float(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    return bits;
}

/* Exact.  A NaN keeps its sign and its mantissa in float32's top mantissa bits, made quiet, as
 * torch turns a float16 NaN into a float32 one (0x7d00 -> 0x7fe00000, 0x7f -> 0x7ff00000). */
static float minifloat_to_float(uint32_t b, const minifloat *f) {
    uint32_t sign = (b >> (f->bits - 1)) & 1, mag = b & ((1u << (f->bits - 1)) - 1);
    uint32_t exp = mag >> f->man_bits, man = mag & ((1u << f->man_bits) - 1);
    uint32_t exp_ones = (1u << (f->bits - 1 - f->man_bits)) - 1;
    bool nan = f->ieee ? exp == exp_ones && man : mag == f->nan;
    if (nan) return float_of_bits(sign << 31 | 0x7fc00000u | man << (23 - f->man_bits));
    float a = f->ieee && exp == exp_ones ? INFINITY
              : exp == 0                 ? ldexpf((float)man, 1 - f->bias - f->man_bits)
                                         : ldexpf((float)(man | 1u << f->man_bits),
                                                  (int)exp - f->bias - f->man_bits);
    return sign ? -a : a;
}

/* Round to nearest, ties to even.  The mantissa is rounded at the exponent of x (at least the
 * format's smallest normal exponent, below which the step is that of the subnormals); a result
 * past max_finite overflows to Inf, or to NaN where the format has no Inf (float8_e4m3fn: what
 * torch >= 2.1 does, not saturating to 448, so an overflow is seen rather than hidden). */
static uint32_t float_to_minifloat(float x, const minifloat *f) {
    uint32_t sign = (bits_of_float(x) >> 31) << (f->bits - 1);
    uint32_t inf = f->ieee ? f->max_finite + 1 : f->nan;
    if (isnan(x)) return sign | f->nan;
    float a = fabsf(x);
    if (isinf(a)) return sign | inf;
    if (a == 0) return sign;
    int e;
    frexpf(a, &e); /* a = m 2^e, m in [0.5, 1) */
    /* ex: a's exponent, at least the smallest normal's; a / 2^(ex - man_bits) is exact in float
     * (a power-of-two scaling to a value in [1, 2^(man_bits + 1))) */
    int ex = e - 1 < 1 - f->bias ? 1 - f->bias : e - 1;
    uint32_t n = (uint32_t)nearbyintf(ldexpf(a, f->man_bits - ex));
    uint32_t hidden = 1u << f->man_bits;
    if (n == 2 * hidden) { /* rounded up into the next binade */
        n = hidden;
        ex++;
    }
    if (n < hidden) return sign | n; /* subnormal (or zero): exponent field 0 */
    int64_t field = (int64_t)ex + f->bias;
    if (field > (int64_t)(f->max_finite >> f->man_bits)) return sign | inf;
    uint32_t mag = (uint32_t)field << f->man_bits | (n - hidden);
    return sign | (mag > f->max_finite ? inf : mag);
}

static float bf16_to_float(uint16_t b) { return float_of_bits((uint32_t)b << 16); }

/* bfloat16 is float32's top half: add half of the dropped part's range, plus one when the kept
 * part is odd (ties to even), and drop it; a carry into the exponent is the right rounding, up
 * to Inf.  A NaN becomes 0xffff, what torch 1.13's float32 -> bfloat16 copy writes. */
static uint16_t float_to_bf16(float f) {
    if (isnan(f)) return 0xffff;
    uint32_t x = bits_of_float(f);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* The value of an element of an integer dtype. */
static int64_t load_int(nb_dtype d, const void *p) {
    switch (d) {
    case NB_I8: return *(const int8_t *)p;
    case NB_U8: return *(const uint8_t *)p;
    case NB_I16: return *(const int16_t *)p;
    default: return *(const int32_t *)p;
    }
}

/* v modulo 2^bits of integer dtype d (two's complement: torch's integer casts wrap), through
 * unsigned types, whose conversions wrap by definition. */
static void store_int_wrapped(nb_dtype d, void *p, int64_t v) {
    uint32_t u = (uint32_t)(uint64_t)v;
    if (d == NB_I8 || d == NB_U8) *(uint8_t *)p = (uint8_t)u;
    else if (d == NB_I16) *(uint16_t *)p = (uint16_t)u;
    else memcpy(p, &u, 4);
}

/* Round half to even and saturate to [lo, hi]; NaN -> 0 (as torch gives for NaN). */
static double round_saturate(float v, double lo, double hi) {
    return isnan(v) ? 0.0 : fmax(lo, fmin(hi, nearbyint((double)v)));
}

/* One element of dtype d in host memory p, as a float. */
static float load(nb_dtype d, const void *p) {
    switch (d) {
    case NB_F32: return *(const float *)p;
    case NB_F16: return minifloat_to_float(*(const uint16_t *)p, &F16);
    case NB_BF16: return bf16_to_float(*(const uint16_t *)p);
    case NB_F8_E4M3: return minifloat_to_float(*(const uint8_t *)p, &E4M3);
    case NB_F8_E5M2: return minifloat_to_float(*(const uint8_t *)p, &E5M2);
    case NB_I8: case NB_U8: case NB_I16: case NB_I32: return (float)load_int(d, p);
    default: return NAN;
    }
}

/* v stored as one element of dtype d in host memory p. */
static void store(nb_dtype d, void *p, float v) {
    switch (d) {
    case NB_F32: *(float *)p = v; break;
    case NB_F16: *(uint16_t *)p = (uint16_t)float_to_minifloat(v, &F16); break;
    case NB_BF16: *(uint16_t *)p = float_to_bf16(v); break;
    case NB_F8_E4M3: *(uint8_t *)p = (uint8_t)float_to_minifloat(v, &E4M3); break;
    case NB_F8_E5M2: *(uint8_t *)p = (uint8_t)float_to_minifloat(v, &E5M2); break;
    case NB_I8: *(int8_t *)p = (int8_t)round_saturate(v, INT8_MIN, INT8_MAX); break;
    case NB_U8: *(uint8_t *)p = (uint8_t)round_saturate(v, 0, UINT8_MAX); break;
    case NB_I16: *(int16_t *)p = (int16_t)round_saturate(v, INT16_MIN, INT16_MAX); break;
    case NB_I32: *(int32_t *)p = (int32_t)round_saturate(v, INT32_MIN, INT32_MAX); break;
    default: break;
    }
}

/* n elements of dtype from at src as dtype to at dst (host memory).  torch 1.13 converts
 * float16 to bfloat16 element by element through c10::BFloat16's constructor, whose NaN is
 * 0x7fc0 (its vectorized float32 copy writes 0xffff): a float16 NaN takes that path here too. */
static void convert(nb_dtype to, void *dst, nb_dtype from, const void *src, int64_t n) {
    size_t ts = nb__dtype_size(to), fs = nb__dtype_size(from);
    bool ints = !nb_dtype_is_floating(to) && !nb_dtype_is_floating(from);
    for (int64_t i = 0; i < n; i++) {
        char *d = (char *)dst + (size_t)i * ts;
        const char *s = (const char *)src + (size_t)i * fs;
        if (ints) {
            store_int_wrapped(to, d, load_int(from, s));
            continue;
        }
        float v = load(from, s);
        if (from == NB_F16 && to == NB_BF16 && isnan(v)) *(uint16_t *)d = 0x7fc0;
        else store(to, d, v);
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

/* t's n elements in logical order into host memory dst, converted to dtype to. */
static nb_status download_as(const nb_tensor *t, nb_dtype to, void *dst, int64_t n) {
    if (t->dtype == to) return nb__copy_logical(dst, t);
    size_t nbytes = nb__dtype_size(t->dtype) * (size_t)(n ? n : 1);
    char *raw = nb__alloc(nbytes);
    nb_status s = raw ? nb__copy_logical(raw, t) : nb_error_code();
    if (s == NB_OK) convert(to, dst, t->dtype, raw, n);
    nb__dealloc(raw, nbytes);
    return s;
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

/* dst's elements = src's (same shape) converted to dst's dtype, staged on the host. */
static nb_status convert_into(nb_tensor *dst, const nb_tensor *src) {
    int64_t n = nb__numel(src->ndim, src->shape);
    size_t nbytes = nb__dtype_size(dst->dtype) * (size_t)(n ? n : 1);
    void *tmp = nb__alloc(nbytes);
    nb_status s = tmp ? download_as(src, dst->dtype, tmp, n) : nb_error_code();
    if (s == NB_OK) s = nb__store_logical(dst, tmp);
    nb__dealloc(tmp, nbytes);
    return s;
}

nb_status nb_copy_to(const nb_tensor *t, float *dst, int64_t n) {
    CHECK_ALIVE("copy_to", t, nb_error_code());
    int64_t numel = nb__numel(t->ndim, t->shape);
    if (!dst || n < numel)
        return nb__fail_status(NB_ERR_ARG, "copy_to: destination holds %lld floats, %s needs %lld",
                               (long long)(dst ? n : 0), NB_SHP(t), (long long)numel);
    return download_as(t, NB_F32, dst, numel);
}

nb_status nb_copy_to_bytes(const nb_tensor *t, void *dst, size_t cap) {
    CHECK_ALIVE("copy_to_bytes", t, nb_error_code());
    size_t need = (size_t)nb__numel(t->ndim, t->shape) * nb__dtype_size(t->dtype);
    if (!dst || cap < need)
        return nb__fail_status(NB_ERR_ARG, "copy_to_bytes: destination holds %zu bytes, %s of %s "
                               "needs %zu", dst ? cap : 0, NB_SHP(t), nb_dtype_name(t->dtype), need);
    return need ? nb__copy_logical(dst, t) : NB_OK;
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
    if ((unsigned)dtype >= NB_DTYPE_COUNT)
        return nb__fail(NB_ERR_DTYPE, "to_dtype: unknown dtype %d", (int)dtype);
    nb_tensor *c = nb__new(dtype, t->ndim, t->shape);
    if (c && convert_into(c, t) != NB_OK) {
        nb_tensor_free(c);
        return NULL;
    }
    return c;
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
    return convert_into(dst, src);
}

/* Whether the element at p is an infinity or a NaN: an all-ones exponent, except in
 * float8_e4m3fn, which has no infinity and one NaN per sign (S.1111.111). */
static bool non_finite_at(nb_dtype d, const unsigned char *p) {
    uint32_t f32;
    uint16_t h;
    switch (d) {
    case NB_F32: memcpy(&f32, p, 4); return (f32 & 0x7f800000u) == 0x7f800000u;
    case NB_F16: memcpy(&h, p, 2); return (h & 0x7c00u) == 0x7c00u;
    case NB_BF16: memcpy(&h, p, 2); return (h & 0x7f80u) == 0x7f80u;
    case NB_F8_E4M3: return (*p & 0x7fu) == 0x7fu;
    case NB_F8_E5M2: return (*p & 0x7cu) == 0x7cu;
    default: return false;
    }
}

int64_t nb__first_non_finite(const nb_tensor *t, double *value) {
    if (!nb_dtype_is_floating(t->dtype)) return -1;
    int64_t n = nb_numel(t);
    size_t es = nb__dtype_size(t->dtype);
    unsigned char *b = nb__alloc((size_t)n * es + 1);
    if (!b) return -2;
    nb__copy_logical(b, t);
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++)
        if (non_finite_at(t->dtype, b + (size_t)i * es)) bad = i;
    if (bad >= 0 && value) {
        double v = load(t->dtype, b + (size_t)bad * es);
        *value = isnan(v) ? NAN : v; /* messages print "nan", whatever its sign bit */
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
