/*
 * create.c — the public creation functions: constant fills, ranges, copies of user arrays and
 * seeded random draws.  Results go to the innermost scope, or to the caller with none open.
 */
#include "core.h"

#include "../backend/backend.h"

#include <math.h>

nb_tensor *nb_empty(int ndim, const int64_t *shape) { return nb__new(NB_F32, ndim, shape); }

nb_tensor *nb_full(int ndim, const int64_t *shape, float value) {
    nb_tensor *t = nb__new(NB_F32, ndim, shape);
    if (t) nb__backend(t->device)->fill(nb__f32(t), &value, sizeof value, nb__numel(ndim, shape));
    return t;
}

nb_tensor *nb_zeros(int ndim, const int64_t *shape) { return nb_full(ndim, shape, 0.0f); }

static bool dtype_ok(const char *op, nb_dtype dtype) {
    if ((unsigned)dtype < NB_DTYPE_COUNT) return true;
    return nb__fail(NB_ERR_DTYPE, "%s: unknown dtype %d", op, (int)dtype), false;
}

/* value converted once to dtype (nb_fill's conversion), then filled by the backend. */
nb_tensor *nb_full_dtype(nb_dtype dtype, int ndim, const int64_t *shape, float value) {
    nb_tensor *t = dtype_ok("full_dtype", dtype) ? nb__new(dtype, ndim, shape) : NULL;
    if (t && nb_fill(t, value) != NB_OK) {
        nb_tensor_free(t);
        return NULL;
    }
    return t;
}

nb_tensor *nb_zeros_dtype(nb_dtype dtype, int ndim, const int64_t *shape) {
    return nb_full_dtype(dtype, ndim, shape, 0.0f);
}
nb_tensor *nb_ones(int ndim, const int64_t *shape) { return nb_full(ndim, shape, 1.0f); }

nb_tensor *nb_zeros_like(const nb_tensor *t) {
    return nb__alive(t) ? nb_zeros(t->ndim, t->shape) : nb__fail_input("zeros_like", t);
}

nb_tensor *nb_ones_like(const nb_tensor *t) {
    return nb__alive(t) ? nb_ones(t->ndim, t->shape) : nb__fail_input("ones_like", t);
}

nb_tensor *nb_arange(float start, float end, float step) {
    if (step == 0.0f || !isfinite(start) || !isfinite(end) || !isfinite(step))
        return nb__fail(NB_ERR_ARG, "arange: start %g, end %g, step %g: need finite values and a "
                        "non-zero step", start, end, step);
    double count = ceil(((double)end - start) / step);
    int64_t n = count > 0 ? (int64_t)count : 0;
    nb_tensor *t = nb__new(NB_F32, 1, &n);
    float *d = t ? nb__alloc(sizeof(float) * (size_t)(n ? n : 1)) : NULL;
    if (!d) {
        nb_tensor_free(t);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) d[i] = (float)(start + (double)i * step);
    nb__store_logical(t, d);
    nb__dealloc(d, sizeof(float) * (size_t)(n ? n : 1));
    return t;
}

static nb_tensor *from_array(nb_dtype dtype, const void *data, int ndim, const int64_t *shape) {
    if (!data) return nb__fail(NB_ERR_ARG, "from_data: data is NULL");
    nb_tensor *t = nb__new(dtype, ndim, shape);
    if (t) nb__store_logical(t, data);
    return t;
}

nb_tensor *nb_from_data(const float *data, int ndim, const int64_t *shape) {
    return from_array(NB_F32, data, ndim, shape);
}

nb_tensor *nb_from_int32(const int32_t *data, int ndim, const int64_t *shape) {
    return from_array(NB_I32, data, ndim, shape);
}

nb_tensor *nb_from_bytes(nb_dtype dtype, const void *data, int ndim, const int64_t *shape) {
    return dtype_ok("from_bytes", dtype) ? from_array(dtype, data, ndim, shape) : NULL;
}

nb_tensor *nb_rand(int ndim, const int64_t *shape) {
    nb_tensor *t = nb__new(NB_F32, ndim, shape);
    if (!t) return NULL;
    int64_t n = nb__numel(ndim, shape);
    uint64_t seed, off = nb__rng_reserve((uint64_t)n, &seed);
    nb__backend(t->device)->uniform(nb__f32(t), n, seed, off);
    return t;
}

/* Box-Muller on pairs: z = sqrt(-2 ln(1 - u1)) cos(2 pi u2).  One pair per element keeps
 * element i a function of its own counters only. */
nb_tensor *nb_randn(int ndim, const int64_t *shape) {
    int64_t n = ndim >= 0 && ndim <= NB_MAX_DIMS && shape ? nb__numel(ndim, shape) : 0;
    nb_tensor *t = nb__new(NB_F32, ndim, shape);
    size_t bytes = sizeof(float) * (size_t)(3 * n + 1); /* the draws, then the values */
    float *uu = t ? nb__alloc(bytes) : NULL;
    if (!uu) {
        nb_tensor_free(t);
        return NULL;
    }
    float *d = uu + 2 * n;
    uint64_t seed, off = nb__rng_reserve((uint64_t)(2 * n), &seed);
    nb__philox_uniform(uu, 2 * n, seed, off);
    for (int64_t i = 0; i < n; i++)
        d[i] = (float)(sqrt(-2.0 * log(1.0 - uu[2 * i])) * cos(2.0 * M_PI * uu[2 * i + 1]));
    nb__store_logical(t, d);
    nb__dealloc(uu, bytes);
    return t;
}

/* t = [u < p] for uniform draws u, by the backend's comparison. */
nb_tensor *nb_bernoulli(const nb_tensor *p) {
    if (!nb__alive(p)) return nb__fail_input("bernoulli", p);
    if (p->dtype != NB_F32) return nb__fail(NB_ERR_DTYPE, "bernoulli: probabilities must be float32");
    nb_tensor *t = nb__new(NB_F32, p->ndim, p->shape);
    nb_tensor *u = t ? nb__new(NB_F32, p->ndim, p->shape) : NULL;
    if (!u) {
        nb_tensor_free(t);
        return NULL;
    }
    const nb_backend *be = nb__backend(t->device);
    int64_t n = nb__numel(p->ndim, p->shape);
    uint64_t seed, off = nb__rng_reserve((uint64_t)n, &seed);
    be->uniform(nb__f32(u), n, seed, off);
    be->binary(NB_BIN_LT, nb__f32(t), nb__f32(u), u->stride, nb__f32(p), p->stride, p->ndim, p->shape);
    nb_tensor_free(u);
    return t;
}
