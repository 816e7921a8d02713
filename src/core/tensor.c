/*
 * tensor.c — making, viewing, copying and releasing tensors.  A tensor is a view (shape,
 * strides, offset) on a storage that views share.  See core.h for who owns what.
 */
#include "core.h"

#include "../backend/backend.h"

#include <string.h>

size_t nb__dtype_size(nb_dtype d) {
    static const size_t sizes[NB_DTYPE_COUNT] = {4, 2, 2, 1, 4, 1, 2, 1, 1};
    return (unsigned)d < NB_DTYPE_COUNT ? sizes[d] : 0;
}

size_t nb_dtype_size(nb_dtype d) { return nb__dtype_size(d); }

/* torch's names: what repr prints after "dtype=torch.". */
const char *nb_dtype_name(nb_dtype d) {
    static const char *const names[NB_DTYPE_COUNT] = {
        "float32", "float16", "bfloat16", "int8", "int32", "uint8", "int16", "float8_e4m3fn",
        "float8_e5m2"};
    return (unsigned)d < NB_DTYPE_COUNT ? names[d] : "unknown";
}

bool nb_dtype_is_floating(nb_dtype d) {
    return d == NB_F32 || d == NB_F16 || d == NB_BF16 || d == NB_F8_E4M3 || d == NB_F8_E5M2;
}

int64_t nb__numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

void nb__contiguous_strides(int ndim, const int64_t *shape, int64_t *stride) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i] > 1 ? shape[i] : 1;
    }
}

bool nb__same_shape(const nb_tensor *a, const nb_tensor *b) {
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int64_t) * a->ndim) == 0;
}

static nb_tensor *header_new(nb_arena *home) {
    nb_tensor *t = nb__home_alloc(home, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->magic = NB_MAGIC_LIVE;
    t->arena = home;
    t->refs = 1;
    if (home) nb__arena_track(home, t);
    return t;
}

/* Validates a user-given shape: rank within limits, sizes >= 0, total size without overflow. */
static bool shape_ok(const char *op, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > NB_MAX_DIMS)
        return nb__fail(NB_ERR_SHAPE, "%s: rank %d is outside 0..%d", op, ndim, NB_MAX_DIMS), false;
    if (ndim > 0 && !shape) return nb__fail(NB_ERR_ARG, "%s: shape is NULL", op), false;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return nb__fail(NB_ERR_SHAPE, "%s: %s: negative size in dim %d", op,
                            nb__shape_str(ndim, shape), i), false;
        if (shape[i] && n > INT64_MAX / 16 / shape[i])
            return nb__fail(NB_ERR_SHAPE, "%s: %s: too many elements", op,
                            nb__shape_str(ndim, shape)), false;
        n *= shape[i];
    }
    return true;
}

nb_tensor *nb__new_in(nb_arena *home, nb_dtype dtype, int ndim, const int64_t *shape) {
    if (!shape_ok("empty", ndim, shape)) return NULL;
    size_t nbytes = (size_t)nb__numel(ndim, shape) * nb__dtype_size(dtype);
    nb_tensor *t = header_new(home);
    if (!t) return NULL;
    const nb_backend *be = nb__backend(NB_CPU);
    nb_storage *s = nb__home_alloc(home, sizeof *s);
    void *data = s ? nb__home_alloc_data(home, be, nbytes) : NULL;
    if (!data) {
        nb__home_free(home, s, sizeof *s);
        if (!home) nb__dealloc(t, sizeof *t);
        return NULL;
    }
    *s = (nb_storage){.data = data, .nbytes = nbytes, .refs = 1, .arena = home, .backend = be};
    t->storage = s;
    t->dtype = dtype;
    t->device = NB_CPU;
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * ndim);
    nb__contiguous_strides(ndim, shape, t->stride);
    return t;
}

nb_tensor *nb__new(nb_dtype dtype, int ndim, const int64_t *shape) {
    return nb__new_in(nb__current_arena(), dtype, ndim, shape);
}

nb_tensor *nb__new_like(const nb_tensor *t) { return nb__new(NB_F32, t->ndim, t->shape); }

nb_tensor *nb__view(const nb_tensor *base, int ndim, const int64_t *shape, const int64_t *stride,
                    int64_t offset) {
    nb_tensor *t = header_new(nb__current_arena());
    if (!t) return NULL;
    t->storage = base->storage;
    if (!t->storage->arena) t->storage->refs++;
    t->dtype = base->dtype;
    t->device = base->device;
    t->ndim = ndim;
    if (ndim) {
        memcpy(t->shape, shape, sizeof(int64_t) * ndim);
        memcpy(t->stride, stride, sizeof(int64_t) * ndim);
    }
    t->offset = offset;
    return t;
}

void nb__storage_release(nb_storage *s) {
    if (!s || s->arena || --s->refs > 0) return;
    s->backend->free(s->data, s->nbytes);
    nb__dealloc(s, sizeof *s);
}

static void node_release(nb_node *n, nb_arena *home) {
    for (int i = 0; i < n->n_in; i++) nb__release(n->in[i]);
    if (n->origin) nb__home_free(home, n->origin, n->origin_size);
    nb__home_free(home, n->in, sizeof(nb_tensor *) * n->n_in);
    nb__home_free(home, n, sizeof *n);
}

static void hooks_release(nb__hook *h, nb_arena *home) {
    while (h) {
        nb__hook *next = h->next;
        nb__home_free(home, h, sizeof *h);
        h = next;
    }
}

void nb__retain(nb_tensor *t) {
    if (t && !t->arena) t->refs++;
}

void nb__release(nb_tensor *t) {
    if (!t || t->arena || --t->refs > 0) return;
    nb__storage_release(t->storage);
    nb__release(t->grad);
    if (t->node) node_release(t->node, NULL);
    hooks_release(t->hooks, NULL);
    t->magic = NB_MAGIC_DEAD;
    nb__dealloc(t, sizeof *t);
}

void nb__tensor_retire(nb_tensor *t) {
    nb__storage_release(t->storage); /* heap storage seen through an arena view */
    if (t->node) node_release(t->node, t->arena);
    hooks_release(t->hooks, t->arena);
    if (t->grad && !t->grad->arena) nb__release(t->grad);
    t->magic = NB_MAGIC_DEAD;
}

void nb_tensor_free(nb_tensor *t) {
    if (nb__alive(t) && !t->arena) nb__release(t);
}

/* The device pointer to t's first element. */
static char *first(const nb_tensor *t) {
    return (char *)t->storage->data + t->offset * (int64_t)nb__dtype_size(t->dtype);
}

/* dst (contiguous, t's shape and dtype, on t's device) = t, by the backend's strided copy. */
static void copy_to_contiguous(void *dst, const nb_tensor *t) {
    const nb_backend *be = nb__backend(t->device);
    size_t es = nb__dtype_size(t->dtype);
    if (nb_is_contiguous(t)) {
        be->copy_d2d(dst, first(t), (size_t)nb__numel(t->ndim, t->shape) * es);
        return;
    }
    int64_t stride[NB_MAX_DIMS];
    nb__contiguous_strides(t->ndim, t->shape, stride);
    be->copy(dst, stride, first(t), t->stride, t->ndim, t->shape, es);
}

nb_status nb__copy_logical(void *dst, const nb_tensor *t) {
    const nb_backend *be = nb__backend(t->device);
    size_t nbytes = (size_t)nb__numel(t->ndim, t->shape) * nb__dtype_size(t->dtype);
    if (nb_is_contiguous(t)) {
        be->copy_d2h(dst, first(t), nbytes);
        return NB_OK;
    }
    void *tmp = be->alloc(nbytes);
    if (!tmp) return nb_error_code();
    copy_to_contiguous(tmp, t);
    be->copy_d2h(dst, tmp, nbytes);
    be->free(tmp, nbytes);
    return NB_OK;
}

nb_status nb__store_logical(nb_tensor *t, const void *src) {
    const nb_backend *be = nb__backend(t->device);
    size_t es = nb__dtype_size(t->dtype), nbytes = (size_t)nb__numel(t->ndim, t->shape) * es;
    if (nb_is_contiguous(t)) {
        be->copy_h2d(first(t), src, nbytes);
        return NB_OK;
    }
    void *tmp = be->alloc(nbytes);
    if (!tmp) return nb_error_code();
    be->copy_h2d(tmp, src, nbytes);
    int64_t stride[NB_MAX_DIMS];
    nb__contiguous_strides(t->ndim, t->shape, stride);
    be->copy(first(t), t->stride, tmp, stride, t->ndim, t->shape, es);
    be->free(tmp, nbytes);
    return NB_OK;
}

void *nb__host_copy(const nb_tensor *t) {
    size_t nbytes = (size_t)nb__numel(t->ndim, t->shape) * nb__dtype_size(t->dtype);
    void *p = nb__home_alloc(nb__current_arena(), nbytes);
    if (p && nb__copy_logical(p, t) != NB_OK) {
        nb__host_free(p, t);
        return NULL;
    }
    return p;
}

void nb__host_free(void *p, const nb_tensor *t) {
    nb__home_free(nb__current_arena(), p, (size_t)nb__numel(t->ndim, t->shape) * nb__dtype_size(t->dtype));
}

void nb__copy_tensor(nb_tensor *dst, const nb_tensor *src) {
    if (nb_is_contiguous(dst)) {
        copy_to_contiguous(first(dst), src);
        return;
    }
    nb__backend(dst->device)->copy(first(dst), dst->stride, first(src), src->stride, src->ndim,
                                   src->shape, nb__dtype_size(src->dtype));
}

nb_tensor *nb__clone_in(nb_arena *home, const nb_tensor *t) {
    nb_tensor *c = nb__new_in(home, t->dtype, t->ndim, t->shape);
    if (c) copy_to_contiguous(c->storage->data, t);
    return c;
}

nb_tensor *nb_persist(const nb_tensor *t) {
    if (!nb__alive(t)) return nb__fail_input("persist", t);
    return nb__clone_in(NULL, t);
}

bool nb_is_contiguous(const nb_tensor *t) {
    if (!nb__alive(t)) return false;
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}
