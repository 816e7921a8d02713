/*
 * tensor.c — making, viewing, copying and releasing tensors.  A tensor is a view (shape,
 * strides, offset) on a storage that views share.  See core.h for who owns what.
 */
#include "core.h"

#include <string.h>

#define NB_STORAGE_HEADER NB_ALIGN /* storage header, then its data, in one allocation */

size_t nb__dtype_size(nb_dtype d) {
    static const size_t sizes[NB_DTYPE_COUNT] = {4, 2, 2, 1, 4};
    return (unsigned)d < NB_DTYPE_COUNT ? sizes[d] : 0;
}

const char *nb_dtype_name(nb_dtype d) {
    static const char *const names[NB_DTYPE_COUNT] = {"float32", "float16", "bfloat16", "int8",
                                                      "int32"};
    return (unsigned)d < NB_DTYPE_COUNT ? names[d] : "unknown";
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
    nb_storage *s = nb__home_alloc(home, NB_STORAGE_HEADER + nbytes);
    if (!s) {
        if (!home) nb__dealloc(t, sizeof *t);
        return NULL;
    }
    *s = (nb_storage){.data = (char *)s + NB_STORAGE_HEADER, .nbytes = nbytes, .refs = 1,
                      .arena = home};
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
    if (s && !s->arena && --s->refs == 0) nb__dealloc(s, NB_STORAGE_HEADER + s->nbytes);
}

static void node_release(nb_node *n, nb_arena *home) {
    for (int i = 0; i < n->n_in; i++) nb__release(n->in[i]);
    nb__home_free(home, n->in, sizeof(nb_tensor *) * n->n_in);
    nb__home_free(home, n, sizeof *n);
}

void nb__retain(nb_tensor *t) {
    if (t && !t->arena) t->refs++;
}

void nb__release(nb_tensor *t) {
    if (!t || t->arena || --t->refs > 0) return;
    nb__storage_release(t->storage);
    nb__release(t->grad);
    if (t->node) node_release(t->node, NULL);
    t->magic = NB_MAGIC_DEAD;
    nb__dealloc(t, sizeof *t);
}

void nb__tensor_retire(nb_tensor *t) {
    nb__storage_release(t->storage); /* heap storage seen through an arena view */
    if (t->node) node_release(t->node, t->arena);
    if (t->grad && !t->grad->arena) nb__release(t->grad);
    t->magic = NB_MAGIC_DEAD;
}

void nb_tensor_free(nb_tensor *t) {
    if (nb__alive(t) && !t->arena) nb__release(t);
}

/* Visits every element of t in logical order; fn gets the element's storage index. */
void nb__copy_logical(void *dst, const nb_tensor *t) {
    size_t es = nb__dtype_size(t->dtype);
    const char *src = (const char *)t->storage->data;
    int64_t n = nb__numel(t->ndim, t->shape);
    if (nb_is_contiguous(t)) {
        memcpy(dst, src + t->offset * es, (size_t)n * es);
        return;
    }
    int64_t idx[NB_MAX_DIMS] = {0};
    int64_t off = t->offset;
    char *d = dst;
    for (int64_t i = 0; i < n; i++) {
        memcpy(d + i * es, src + off * es, es);
        for (int k = t->ndim - 1; k >= 0; k--) { /* odometer step */
            off += t->stride[k];
            if (++idx[k] < t->shape[k]) break;
            off -= t->stride[k] * t->shape[k];
            idx[k] = 0;
        }
    }
}

nb_tensor *nb__clone_in(nb_arena *home, const nb_tensor *t) {
    nb_tensor *c = nb__new_in(home, t->dtype, t->ndim, t->shape);
    if (c) nb__copy_logical(c->storage->data, t);
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
