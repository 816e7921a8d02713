/*
 * core.h — internal structures of the core layer: storage, tensor, arena (scope), errors,
 * the counted allocator and shape helpers.  Only src/ includes this; users see nabla.h.
 *
 * Ownership.  A tensor's "home" is either an arena (the scope it was made in) or the heap.
 *  - Arena tensors, their storage and their graph nodes are released together when the scope
 *    ends; each arena keeps a list of its tensors so that ending it can mark them dead and drop
 *    the references they hold on heap objects.
 *  - Heap tensors are reference counted: the caller's handle is one reference, each graph node
 *    that uses a heap tensor as input holds another.  Heap storage is reference counted by the
 *    tensors (views) that share it.
 */
#ifndef NB_CORE_H
#define NB_CORE_H

#include "nabla.h"
#include "parallel.h"

#include <stdarg.h>

#define NB_ALIGN 64
#define NB_MAGIC_LIVE 0x6e61626cu /* "nabl" */
#define NB_MAGIC_DEAD 0xdeadbeefu
#define NB_MAX_SCOPES 32

typedef struct nb_arena nb_arena;
typedef struct nb_node nb_node;

/* Arguments an op keeps beside its inputs, for its forward and its backward. */
typedef struct nb_op_args {
    float s0, s1;                         /* scalars: exponent, clamp bounds, ... */
    int dim;                              /* the dim of softmax, slice, concat, gather, ... */
    int n_dims;                           /* reduced dims, or a permutation */
    int dims[NB_MAX_DIMS];
    bool keepdim;
    int ndim;                             /* a target shape (reshape, expand) */
    int64_t shape[NB_MAX_DIMS];
    int64_t start, end, step;             /* slice */
    bool view_only;                       /* reshape that must not copy (view) */
    struct {                              /* pooling and upsampling (ops/pool.c) */
        int kernel[2], stride[2], padding[2], scale[2]; /* [height, width] */
        bool ceil_mode, exclude_pad, align_corners;
    } pool;
    struct { /* conv2d, conv_transpose2d (ops/conv.c); [height, width]; pad_end differs from
              * pad (top / left) only for padding='same' with an odd total */
        int stride[2], pad[2], pad_end[2], dilation[2], output_padding[2], groups;
    } conv;
    void *hook; /* the backward_hook row's callbacks (ops/hook.c), or NULL */
    nb_dtype amp; /* matmul, linear, conv: the autocast dtype they ran in (autograd/autocast.c);
                   * NB_F32 (0) when none */
} nb_op_args;

/* A recorded op: the graph edge from its inputs to the tensor it made (out).  It lives in out's
 * home and holds a reference on each heap input, so inputs outlive the graph that uses them. */
struct nb_node {
    int op;
    const char *grad_fn; /* "MulBackward0", as torch names it */
    /* the backward of the kernels that ran (picked by dtype when the node was recorded) */
    nb_status (*backward)(const nb_node *node, nb_tensor *dout, nb_tensor **din);
    int n_in;
    nb_tensor **in;
    nb_tensor *out;
    nb_op_args args;
    nb_tensor *pending; /* gradient gathered for out during a backward pass */
    uint32_t visit;     /* backward pass that last reached it */
    uint32_t wanted;    /* backward pass for which it leads to a wanted gradient */
    bool released;      /* a pass without retain_graph went through it: no second one */
    /* anomaly mode only (else NULL): where the op ran, then one line per input naming it
     * ("layer 2 (Linear)\ninput\n2.weight\n2.bias"); in out's home, freed with the node */
    char *origin;
    size_t origin_size;
};

/* A tensor's gradient hooks (nabla/autograd.h): a list in the tensor's home, freed with it. */
typedef struct nb__hook {
    nb_tensor_hook_fn fn; /* NULL once removed */
    void *ctx;
    int handle;
    struct nb__hook *next;
} nb__hook;

/* data is the device's memory, allocated by backend (see src/backend/backend.h): code in src/
 * outside src/backend offsets it and hands it to the backend, never reads or writes through it. */
typedef struct nb_storage {
    void *data;
    size_t nbytes;
    int refs;        /* heap storage only */
    nb_arena *arena; /* NULL: heap */
    const struct nb_backend *backend;
} nb_storage;

struct nb_tensor {
    uint32_t magic;
    nb_dtype dtype;
    nb_device device;
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    int64_t stride[NB_MAX_DIMS]; /* in elements */
    int64_t offset;              /* in elements, into storage */
    nb_storage *storage;
    bool requires_grad;
    nb_tensor *grad;   /* leaves: accumulated gradient, same home as the tensor */
    bool zero_filled;  /* a .grad as nb_zero_grad left it: all +0.0 (autograd/record.c) */
    bool handed_out;   /* a .grad nb_grad returned: whoever holds it may write it any time */
    nb_node *node;     /* the op that produced it; NULL for leaves */
    nb__hook *hooks;   /* gradient hooks, in registration order */
    bool retains_grad; /* a non-leaf that keeps .grad (nb_retain_grad) */
    nb_arena *arena;   /* NULL: heap */
    int refs;          /* heap tensors only */
    nb_tensor *next_in_arena;
};

/* ---- allocator: every byte the library takes from the system goes through here. */
void *nb__alloc(size_t n);          /* NB_ALIGN-aligned; NULL + NB_ERR_MEMORY on failure */
void nb__dealloc(void *p, size_t n);
/* a followed by b (b may be ""), NUL-terminated, from the counted allocator; NULL +
 * NB_ERR_MEMORY on failure.  nb__strfree(NULL) does nothing. */
char *nb__strcat2(const char *a, const char *b);
static inline char *nb__strdup(const char *s) { return nb__strcat2(s, ""); }
void nb__strfree(char *s);

/* ---- errors.  nb__fail sets the thread's error and returns NULL, so "return nb__fail(...)". */
void *nb__fail(nb_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
nb_status nb__fail_status(nb_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Puts "<fmt>: " before the thread's error message (which was set by a call that failed inside
 * this one), keeping its code: the context of a failure, as "training step: matmul: ...".  With
 * no error set, NB_ERR_ARG and "failed". */
nb_status nb__fail_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Records NB_ERR_NULL for a NULL/dead input unless an earlier error explains it. */
void *nb__fail_input(const char *op, const nb_tensor *t);

/* ---- arenas (scopes) */
nb_arena *nb__current_arena(void);  /* innermost open scope, NULL when none */
void *nb__arena_alloc(nb_arena *a, size_t n);
void nb__arena_track(nb_arena *a, nb_tensor *t);
/* Host memory in the home of a tensor: its arena, or the heap (freed by nb__home_free). */
void *nb__home_alloc(nb_arena *home, size_t n);
void nb__home_free(nb_arena *home, void *p, size_t n);
/* Device memory of backend be (tensor data, kernel workspaces) in a home: the arena's own chain
 * of blocks taken from be (the CPU device's backend; arenas serve no other device yet), or
 * be->alloc; nb__home_free_data gives heap memory back. */
void *nb__home_alloc_data(nb_arena *home, const struct nb_backend *be, size_t n);
void nb__home_free_data(nb_arena *home, const struct nb_backend *be, void *p, size_t n);

/* ---- tensors */
size_t nb__dtype_size(nb_dtype d);
/* A new contiguous tensor in the current home (innermost scope, or heap). Uninitialised. */
nb_tensor *nb__new(nb_dtype dtype, int ndim, const int64_t *shape);
nb_tensor *nb__new_in(nb_arena *home, nb_dtype dtype, int ndim, const int64_t *shape);
nb_tensor *nb__new_like(const nb_tensor *t); /* f32, same shape, contiguous, uninitialised */
/* A view of base's storage with the given geometry, in the current home. */
nb_tensor *nb__view(const nb_tensor *base, int ndim, const int64_t *shape, const int64_t *stride,
                    int64_t offset);
/* A detached contiguous copy of t in the given home. */
nb_tensor *nb__clone_in(nb_arena *home, const nb_tensor *t);
/* Staging between tensor memory and the host, through t's backend.  nb__copy_logical copies t's
 * elements in logical order to host memory dst (t's dtype); nb__store_logical copies host
 * memory src into t's elements in logical order.  nb__host_copy does the first into host memory
 * of the current home, given back by nb__host_free (called in the same scope); NULL on failure. */
nb_status nb__copy_logical(void *dst, const nb_tensor *t);
/* dst = src, same shape and dtype, any layouts, on the device (the backend's copies). */
void nb__copy_tensor(nb_tensor *dst, const nb_tensor *src);
nb_status nb__store_logical(nb_tensor *t, const void *src);
void *nb__host_copy(const nb_tensor *t);
void nb__host_free(void *p, const nb_tensor *t);
/*
 * The rule for composite code (a function made of other ops: losses, norms, layers, blocks):
 * every tensor it makes goes through nb__tmp(&tmp, ...) as it is made, and its one exit is
 * `return nb__temps_end(&tmp, result)`, which hands out one reference to result (retained
 * when result is an input, not a temp) and drops every other reference in temps.  A graph node
 * that uses a temp holds its own reference, so autograd through the composite still sees it;
 * in a scope the temps belong to the scope and nothing is tracked (no work, no malloc); with no
 * scope open, the caller is left with the result alone.  NULL passes through (nb__temps_end
 * returns NULL after dropping the temps), so a chain is checked once, at its end.
 */
typedef struct {
    int n, cap;             /* cap: the size of more */
    nb_tensor *first[16];   /* the first 16 references */
    nb_tensor **more;       /* the rest, on the heap; NULL until needed */
} nb__temps;                /* starts as {0} */
/* Takes the reference t comes with into temps and returns t; NULL (t dropped, NB_ERR_MEMORY)
 * when temps cannot grow. */
nb_tensor *nb__tmp(nb__temps *temps, nb_tensor *t);
nb_tensor *nb__temps_end(nb__temps *temps, nb_tensor *result);
void nb__retain(nb_tensor *t);  /* heap tensors: +1 reference; arena tensors: nothing */
void nb__release(nb_tensor *t); /* heap tensors: -1 reference, destroyed at 0 */
void nb__storage_release(nb_storage *s);
/* Called by an arena when its scope ends: drops heap references and marks t dead. */
void nb__tensor_retire(nb_tensor *t);
/* Device pointers to t's first element, for the backend's kernels: never dereferenced here. */
static inline float *nb__f32(const nb_tensor *t) { return (float *)t->storage->data + t->offset; }
static inline int32_t *nb__i32(const nb_tensor *t) { return (int32_t *)t->storage->data + t->offset; }
/* The flat index (logical order) of t's first NaN or infinity, or -1 when there is none (always
 * for integer dtypes); -2 when out of memory.  *value (may be NULL) gets it.  nb__flat_index_str writes a flat index of a
 * shape as "[3,1]" into buf and returns buf. */
int64_t nb__first_non_finite(const nb_tensor *t, double *value);
const char *nb__flat_index_str(int ndim, const int64_t *shape, int64_t flat, char *buf, size_t cap);
static inline bool nb__alive(const nb_tensor *t) { return t && t->magic == NB_MAGIC_LIVE; }
int64_t nb__numel(int ndim, const int64_t *shape);
void nb__contiguous_strides(int ndim, const int64_t *shape, int64_t *stride);
bool nb__same_shape(const nb_tensor *a, const nb_tensor *b);

/* ---- shapes */
/* "[64,784]" in a thread-local rotating buffer (4 slots), for error messages. */
const char *nb__shape_str(int ndim, const int64_t *shape);
#define NB_SHP(t) nb__shape_str((t)->ndim, (t)->shape)
/* Normalises a possibly negative dim against ndim; false (and an NB_ERR_DIM) when out of range. */
bool nb__norm_dim(const char *op, int *dim, int ndim);
/* NumPy broadcast of two shapes; false when they do not broadcast. */
bool nb__broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int *nout,
                         int64_t *out);
/* Strides of t seen as shape (ndim, shape) under broadcasting: 0 where t is broadcast. */
void nb__broadcast_strides(const nb_tensor *t, int ndim, const int64_t *shape, int64_t *stride);

/* ---- random numbers */
/* Fills out[0..n) with uniform [0,1) floats from counters offset..offset+n of seed. */
void nb__philox_uniform(float *out, int64_t n, uint64_t seed, uint64_t offset);
/* Reserves n counters from the global generator and returns the first. */
uint64_t nb__rng_reserve(uint64_t n, uint64_t *seed);

#endif
