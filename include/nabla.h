/*
 * nabla.h — the one public header of libnabla, a deep-learning framework in C.
 *
 * Conventions
 *  - Shapes are int64_t arrays of length ndim (0 <= ndim <= NB_MAX_DIMS); NB_SHAPE(2, 3)
 *    expands to the (ndim, shape) argument pair.  Negative dims count from the end, as in torch.
 *  - Every function that makes a tensor puts it in the innermost open scope (see "Memory");
 *    with no scope open the caller owns it and releases it with nb_tensor_free().
 *  - A failing call returns NULL (or a status other than NB_OK) and leaves a thread-local error:
 *    nb_error_code() / nb_error_message().  A call given a NULL tensor returns NULL and keeps the
 *    first error, so a chain of calls can be checked once at its end.
 *  - f32 is the working type.  f16, bf16, int8 storage exists for quantisation; int32 holds
 *    indices (argmax, gather, index_select).
 *
 * Threads
 *  - The error, the stack of scopes, the random generator (nb_manual_seed) and the no-grad switch
 *    belong to the calling thread.  So two threads may each build, train and save a model of
 *    their own at the same time, and each gets exactly the numbers it gets alone
 *    (tests/test_threads.c).  A thread seeds its own generator; a new thread starts at seed 0.
 *  - An object (tensor, module, optimiser, schedule, loader, dataset) is used by one thread at a
 *    time: nothing in it is locked, and even reading a tensor from two threads at once is not
 *    safe, because views and graph nodes change its reference count.  A tensor made inside a
 *    scope belongs to the thread that opened the scope.
 *  - nb_set_num_threads is process-wide: it sets how many threads the kernels share out work to.
 *    Kernels use their own workers internally; that needs nothing from the caller.
 *  - A loader's prefetch thread and its workers only call the transforms given to it; user
 *    transform functions must be safe to call from several threads at once.
 */
#ifndef NABLA_H
#define NABLA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NB_VERSION "0.1.0"

/* NB_API marks what libnabla exports: the library is built with hidden visibility, so only the
 * declarations carrying it (every nb_ name of these headers) are in libnabla.so's symbol table;
 * the internal nb__ helpers stay inside. */
#if defined(__GNUC__) || defined(__clang__)
#define NB_API __attribute__((visibility("default")))
#else
#define NB_API
#endif
#define NB_MAX_DIMS 8

/* NB_SHAPE(2, 3) -> 2, (const int64_t[]){2, 3}: the (ndim, shape) pair of creation functions. */
#define NB_SHAPE(...) \
    ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))), ((const int64_t[]){__VA_ARGS__})
/* NB_INDEX(1, 2) -> (const int64_t[]){1, 2}: an element index for nb_get / nb_set. */
#define NB_INDEX(...) ((const int64_t[]){__VA_ARGS__})

/* Element types, named as torch names them (nb_dtype_name): float32, float16, bfloat16, int8,
 * int32, uint8, int16, and the OCP 8-bit floats float8_e4m3fn (4 exponent bits, 3 mantissa bits,
 * no infinities, NaN S.1111.111, largest 448) and float8_e5m2 (IEEE-like, largest 57344).  Ops
 * compute in float32; the other dtypes hold data (conversions, copies, views, files). */
typedef enum {
    NB_F32, NB_F16, NB_BF16, NB_I8, NB_I32, NB_U8, NB_I16, NB_F8_E4M3, NB_F8_E5M2,
    NB_DTYPE_COUNT
} nb_dtype;
typedef enum { NB_CPU, NB_CUDA, NB_DEVICE_COUNT } nb_device;

typedef enum {
    NB_OK = 0,
    NB_ERR_NULL,   /* a NULL or dead tensor was passed */
    NB_ERR_SHAPE,  /* shapes do not fit the operation */
    NB_ERR_DIM,    /* a dimension index is out of range */
    NB_ERR_DTYPE,  /* the operation does not take that dtype */
    NB_ERR_DEVICE, /* tensors on different devices, or a device that is not built */
    NB_ERR_ARG,    /* any other bad argument (a step of 0, a negative size, ...) */
    NB_ERR_GRAPH,  /* autograd misuse: backward on a non-scalar without a gradient, ... */
    NB_ERR_SCOPE,  /* a tensor whose scope has ended, or unbalanced scopes */
    NB_ERR_MEMORY, /* allocation failed */
    NB_ERR_IO,     /* a file could not be read or written */
    NB_ERR_VALUE,  /* a NaN or infinity where anomaly detection looks (nabla/autograd.h) */
    NB_ERR_COUNT
} nb_status;

typedef struct nb_tensor nb_tensor;

/* ---------------------------------------------------------------- errors */

NB_API nb_status nb_error_code(void);           /* last error of this thread, NB_OK if none */
NB_API const char *nb_error_message(void);      /* "matmul: [64,784] @ [64,10]: inner sizes differ" */
NB_API void nb_error_clear(void);
NB_API const char *nb_status_name(nb_status s); /* "NB_ERR_SHAPE" */

/* ---------------------------------------------------------------- memory
 * A scope is an arena: every tensor and graph node made while it is the innermost open scope is
 * released at once by nb_scope_end().  The arena keeps its blocks, so a training step that opens
 * and closes a scope calls malloc zero times once warm.  Scopes nest (at most 32 deep).
 */
NB_API void nb_scope_begin(void);
NB_API nb_status nb_scope_end(void);       /* NB_ERR_SCOPE if no scope is open */
NB_API int nb_scope_depth(void);           /* 0 when no scope is open */
/* Ends the innermost scope and returns a detached, contiguous copy of t owned by the enclosing
 * scope (by the caller when none).  NULL if t is NULL or dead; the scope is ended regardless. */
NB_API nb_tensor *nb_scope_end_keep(nb_tensor *t);
/* A detached contiguous copy of t that the caller owns (free with nb_tensor_free). */
NB_API nb_tensor *nb_persist(const nb_tensor *t);
/* Releases a caller-owned tensor; views and graph nodes keep what they share alive.
 * NULL and scope-owned tensors are ignored (their scope releases them). */
NB_API void nb_tensor_free(nb_tensor *t);

typedef struct {
    uint64_t mallocs;   /* calls to the system allocator since start */
    uint64_t frees;
    size_t bytes_live;  /* bytes currently held from the system allocator */
    size_t bytes_peak;
} nb_alloc_stats;
NB_API nb_alloc_stats nb_alloc_stats_get(void);
/* Returns this thread's cached arena blocks to the system (no scope may be open). */
NB_API void nb_release_memory(void);

/* ---------------------------------------------------------------- random numbers
 * Philox4x32-10, counter based: element i of a draw uses counter (offset + i), so the numbers
 * depend on the seed and the order of draws only, never on the thread count.
 */
typedef struct {
    uint64_t seed;
    uint64_t offset; /* counters consumed so far */
} nb_generator;
NB_API void nb_manual_seed(uint64_t seed);
NB_API nb_generator nb_rng_get_state(void);
NB_API void nb_rng_set_state(nb_generator g);

/* ---------------------------------------------------------------- creation */

NB_API nb_tensor *nb_empty(int ndim, const int64_t *shape);
NB_API nb_tensor *nb_zeros(int ndim, const int64_t *shape);
NB_API nb_tensor *nb_ones(int ndim, const int64_t *shape);
NB_API nb_tensor *nb_full(int ndim, const int64_t *shape, float value);
NB_API nb_tensor *nb_arange(float start, float end, float step);          /* [start, end) 1-D */
NB_API nb_tensor *nb_from_data(const float *data, int ndim, const int64_t *shape);   /* copies */
NB_API nb_tensor *nb_from_int32(const int32_t *data, int ndim, const int64_t *shape); /* copies */
NB_API nb_tensor *nb_rand(int ndim, const int64_t *shape);   /* U[0, 1) */
NB_API nb_tensor *nb_randn(int ndim, const int64_t *shape);  /* N(0, 1) */
NB_API nb_tensor *nb_bernoulli(const nb_tensor *p);          /* 1 with probability p, elementwise */
NB_API nb_tensor *nb_zeros_like(const nb_tensor *t);
NB_API nb_tensor *nb_ones_like(const nb_tensor *t);
/* Zeros, and value converted as nb_to_dtype converts it, in any dtype. */
NB_API nb_tensor *nb_zeros_dtype(nb_dtype dtype, int ndim, const int64_t *shape);
NB_API nb_tensor *nb_full_dtype(nb_dtype dtype, int ndim, const int64_t *shape, float value);
/* A tensor of numel elements of dtype copied from their storage bytes (little-endian, as
 * safetensors stores them): a float16 tensor from uint16_t bit patterns, and so on. */
NB_API nb_tensor *nb_from_bytes(nb_dtype dtype, const void *data, int ndim, const int64_t *shape);
/* A contiguous copy in another dtype (torch's t.to(dtype)), every pair of dtypes:
 *  - to a float format: round to nearest, ties to even.  float16/bfloat16: overflow gives +-Inf,
 *    NaN/Inf as torch 1.13 (a NaN becomes float16 0x7e00 with its sign; bfloat16 0xffff from
 *    float32, 0x7fc0 from float16: torch's two paths).  float8_e5m2: overflow +-Inf.
 *    float8_e4m3fn, which has no Inf: overflow (|x| > 464 rounds past 448) and +-Inf give NaN,
 *    as torch >= 2.1 does (not saturating).  A NaN becomes fp8 0x7f with its sign.
 *  - float to an integer: round half to even, saturate to the range, NaN -> 0 (torch truncates
 *    and wraps instead; rounding is what quantization needs).  Integer to integer wraps modulo
 *    2^bits as torch does.  Integers to floats as torch: int32 rounds to float32 first.
 *  - widening (an 8- or 16-bit format to float32, ints to wider ints) is exact. */
NB_API nb_tensor *nb_to_dtype(const nb_tensor *t, nb_dtype dtype);
/* A detached contiguous copy on device; NB_ERR_DEVICE for a device this build has no backend for. */
NB_API nb_tensor *nb_to_device(const nb_tensor *t, nb_device device);

/* ---------------------------------------------------------------- inspection */

NB_API int nb_ndim(const nb_tensor *t);
NB_API const int64_t *nb_shape(const nb_tensor *t);
NB_API const int64_t *nb_strides(const nb_tensor *t);    /* in elements */
NB_API int64_t nb_size(const nb_tensor *t, int dim);     /* -1 with NB_ERR_DIM when out of range */
NB_API int64_t nb_numel(const nb_tensor *t);
NB_API nb_dtype nb_dtype_of(const nb_tensor *t);
NB_API nb_device nb_device_of(const nb_tensor *t);
NB_API const char *nb_dtype_name(nb_dtype d);             /* "float32" */
NB_API size_t nb_dtype_size(nb_dtype d);                  /* bytes per element, 0 if unknown */
NB_API bool nb_dtype_is_floating(nb_dtype d);             /* false for the integer dtypes */
NB_API bool nb_is_contiguous(const nb_tensor *t);
NB_API bool nb_is_alive(const nb_tensor *t);              /* false for NULL and ended scopes */
NB_API bool nb_shares_storage(const nb_tensor *a, const nb_tensor *b);
/* Host pointer to element 0 of an f32 tensor (respect nb_strides), only where the tensor's memory
 * is host memory (the CPU backend): NULL with NB_ERR_DTYPE for other dtypes, and NULL with
 * NB_ERR_DEVICE where the backend's memory is not the host's (NB_BACKEND=guarded, other devices).
 * Code meant for every backend reads and writes with nb_copy_to / nb_copy_from / nb_get / nb_set. */
NB_API float *nb_data(nb_tensor *t);
NB_API float nb_item(const nb_tensor *t);                 /* the value of a one-element tensor, NaN on error */
NB_API float nb_get(const nb_tensor *t, const int64_t *index);           /* any dtype, as float */
NB_API nb_status nb_set(nb_tensor *t, const int64_t *index, float value);
/* Copies the elements in logical (row-major) order, as float; n must be >= numel. */
NB_API nb_status nb_copy_to(const nb_tensor *t, float *dst, int64_t n);
/* The elements' storage bytes (nb_dtype_size each, little-endian) in logical order; cap is
 * dst's size in bytes and must hold them all.  Bit-exact, unlike nb_copy_to's floats. */
NB_API nb_status nb_copy_to_bytes(const nb_tensor *t, void *dst, size_t cap);
/* Copies n = numel floats into t in logical order, converted to t's dtype as nb_to_dtype does. */
NB_API nb_status nb_copy_from(nb_tensor *t, const float *src, int64_t n);
NB_API nb_status nb_fill(nb_tensor *t, float value);
/* dst = src elementwise (torch's copy_): same shape, dtypes converted; records no gradient. */
NB_API nb_status nb_copy(nb_tensor *dst, const nb_tensor *src);

/* Printing in torch's repr style: tensor([[1., 2.], [3., 4.]], requires_grad=True).
 * nb_format returns the length it needs, like snprintf. */
NB_API int nb_format(const nb_tensor *t, char *buf, size_t cap);
NB_API nb_status nb_fprint(FILE *f, const nb_tensor *t);
NB_API nb_status nb_print(const nb_tensor *t);

/* ---------------------------------------------------------------- autograd
 * As in torch: a leaf that requires grad gets .grad on backward, accumulated (+=) across calls
 * until zeroed; an op with an input that requires grad records a node; a value used twice gets
 * the sum of both contributions.  The graph lives as long as its scope, so backward may be called
 * again on it (torch's retain_graph=True); backward after the scope ended is NB_ERR_SCOPE.
 */
NB_API nb_status nb_set_requires_grad(nb_tensor *t, bool requires_grad); /* leaves only */
NB_API bool nb_requires_grad(const nb_tensor *t);
NB_API bool nb_is_leaf(const nb_tensor *t);
NB_API nb_tensor *nb_grad(const nb_tensor *t);          /* NULL when no gradient has been stored */
NB_API nb_status nb_zero_grad(nb_tensor *t);            /* fills the stored gradient with zeros */
NB_API nb_status nb_clear_grad(nb_tensor *t);           /* drops it (torch's grad = None) */
NB_API const char *nb_grad_fn(const nb_tensor *t);      /* "MulBackward", NULL for leaves */
/* Backward from a one-element tensor (gradient 1). */
NB_API nb_status nb_backward(nb_tensor *t);
/* Backward from any tensor with an upstream gradient of its shape. */
NB_API nb_status nb_backward_grad(nb_tensor *t, const nb_tensor *grad);
NB_API nb_tensor *nb_detach(nb_tensor *t);              /* shares storage, records nothing */
NB_API bool nb_is_grad_enabled(void);
NB_API bool nb_set_grad_enabled(bool enabled);          /* returns the previous setting */
/* NB_NO_GRAD { ... } runs the block with recording off (do not leave it with break/return). */
#define NB_NO_GRAD                                                                  \
    for (int nb__once_ = (nb_set_grad_enabled(false) ? 1 : 2); nb__once_ > 0;       \
         nb_set_grad_enabled(nb__once_ == 1), nb__once_ = 0)

/* ---------------------------------------------------------------- ops
 * Binary ops broadcast with NumPy's rules.  All results are f32 unless said otherwise.
 */
NB_API nb_tensor *nb_add(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_sub(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_mul(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_div(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_pow(nb_tensor *a, nb_tensor *b);      /* a ** b */
NB_API nb_tensor *nb_add_scalar(nb_tensor *a, float s);
NB_API nb_tensor *nb_mul_scalar(nb_tensor *a, float s);
NB_API nb_tensor *nb_pow_scalar(nb_tensor *a, float p);    /* a ** p */

NB_API nb_tensor *nb_neg(nb_tensor *a);
NB_API nb_tensor *nb_exp(nb_tensor *a);
NB_API nb_tensor *nb_log(nb_tensor *a);
NB_API nb_tensor *nb_sqrt(nb_tensor *a);
NB_API nb_tensor *nb_abs(nb_tensor *a);
NB_API nb_tensor *nb_sin(nb_tensor *a);
NB_API nb_tensor *nb_cos(nb_tensor *a);
NB_API nb_tensor *nb_tanh(nb_tensor *a);
NB_API nb_tensor *nb_sigmoid(nb_tensor *a);
NB_API nb_tensor *nb_relu(nb_tensor *a);
NB_API nb_tensor *nb_erf(nb_tensor *a);     /* the error function, as torch.erf */
NB_API nb_tensor *nb_clamp(nb_tensor *a, float min, float max); /* -INFINITY / INFINITY: no bound */

/* Matrix product with torch.matmul's rules: 1-D operands are promoted, leading (batch)
 * dimensions broadcast.  [.., n, k] @ [.., k, m] -> [.., n, m]. */
NB_API nb_tensor *nb_matmul(nb_tensor *a, nb_tensor *b);
/* y = x W^T + b (torch.nn.functional.linear): x [.., in], w [out, in], b [out] or NULL. */
NB_API nb_tensor *nb_linear(nb_tensor *x, nb_tensor *w, nb_tensor *b);

/* Reductions.  The _dims forms reduce over n dims (n = 0 means all) and keep them as size 1
 * when keepdim is true.  max/min pass the gradient to the maximal elements, split evenly on
 * ties.  argmax returns int32 indices along dim (over the flattened tensor when dim is NB_ALL). */
#define NB_ALL (-128)
NB_API nb_tensor *nb_sum(nb_tensor *a);
NB_API nb_tensor *nb_mean(nb_tensor *a);
NB_API nb_tensor *nb_max(nb_tensor *a);
NB_API nb_tensor *nb_min(nb_tensor *a);
NB_API nb_tensor *nb_sum_dims(nb_tensor *a, int n, const int *dims, bool keepdim);
NB_API nb_tensor *nb_mean_dims(nb_tensor *a, int n, const int *dims, bool keepdim);
NB_API nb_tensor *nb_max_dims(nb_tensor *a, int n, const int *dims, bool keepdim);
NB_API nb_tensor *nb_min_dims(nb_tensor *a, int n, const int *dims, bool keepdim);
NB_API nb_tensor *nb_argmax(nb_tensor *a, int dim, bool keepdim);

/* Softmax along dim, computed as exp(x - max) / sum so large logits do not overflow;
 * log_softmax as x - max - log(sum(exp(x - max))). */
NB_API nb_tensor *nb_softmax(nb_tensor *a, int dim);
NB_API nb_tensor *nb_log_softmax(nb_tensor *a, int dim);

/* torch's F.layer_norm(x, x.shape[-ndim:], weight, bias, eps): each position of x normalised
 * over its last ndim dims to (x - mean) / sqrt(var + eps) (biased variance), times weight plus
 * bias; weight and bias (each may be NULL) have the shape of those ndim dims.  One op: it
 * keeps only each row's mean and 1 / sqrt(var + eps) for its backward.  NB_ERR_SHAPE when x
 * has fewer than ndim dims (or ndim < 1) or weight or bias is not shaped as its last ndim
 * dims; NB_ERR_ARG for eps < 0 or not finite. */
NB_API nb_tensor *nb_layer_norm(nb_tensor *x, int ndim, nb_tensor *weight, nb_tensor *bias,
                                float eps);

/* Shape and views.  Views share storage with their input; reshape copies only when the strides
 * do not allow a view; one entry of its shape may be -1. */
NB_API nb_tensor *nb_reshape(nb_tensor *a, int ndim, const int64_t *shape);
NB_API nb_tensor *nb_view(nb_tensor *a, int ndim, const int64_t *shape); /* NB_ERR_SHAPE if no view */
NB_API nb_tensor *nb_flatten(nb_tensor *a, int start_dim, int end_dim);
NB_API nb_tensor *nb_transpose(nb_tensor *a, int dim0, int dim1);
NB_API nb_tensor *nb_permute(nb_tensor *a, int ndim, const int *perm);
NB_API nb_tensor *nb_slice(nb_tensor *a, int dim, int64_t start, int64_t end, int64_t step);
NB_API nb_tensor *nb_expand(nb_tensor *a, int ndim, const int64_t *shape); /* -1 keeps a size */
NB_API nb_tensor *nb_squeeze(nb_tensor *a, int dim);   /* dim = NB_ALL removes every size-1 dim */
NB_API nb_tensor *nb_unsqueeze(nb_tensor *a, int dim);
NB_API nb_tensor *nb_contiguous(nb_tensor *a);         /* a itself when already contiguous */
NB_API nb_tensor *nb_concat(int n, nb_tensor *const *ts, int dim);
NB_API nb_tensor *nb_stack(int n, nb_tensor *const *ts, int dim);

/* Selection and comparison.  Comparisons return 0/1 as f32 and record no gradient. */
NB_API nb_tensor *nb_where(nb_tensor *cond, nb_tensor *a, nb_tensor *b); /* cond != 0 ? a : b */
NB_API nb_tensor *nb_eq(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_ne(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_lt(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_le(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_gt(nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_ge(nb_tensor *a, nb_tensor *b);
/* out[i][j] = a[index[i][j]][j] for dim 0 (torch.gather); index is int32, same rank as a. */
NB_API nb_tensor *nb_gather(nb_tensor *a, int dim, nb_tensor *index);
/* Picks the slices index[k] (int32, 1-D) of a along dim (torch.index_select). */
NB_API nb_tensor *nb_index_select(nb_tensor *a, int dim, nb_tensor *index);

/* ---------------------------------------------------------------- runtime */

NB_API int nb_get_num_threads(void);
NB_API void nb_set_num_threads(int n);
/* "cpu: OpenBLAS 0.3.21 ..., 2 threads, kernels for AVX-512": the BLAS, the thread count and
 * the instruction set whose kernels run */
NB_API const char *nb_backend_info(void);

/* Topic headers: autograd beyond backward, modules, optimisers, data, files. */
#include "nabla/autograd.h"
#include "nabla/conv.h"
#include "nabla/module.h"
#include "nabla/nn.h"
#include "nabla/loss.h"
#include "nabla/optim.h"
#include "nabla/train.h"
#include "nabla/io.h"
#include "nabla/data.h"
#include "nabla/quant.h"
#include "nabla/lora.h"
#include "nabla/prune.h"
#include "nabla/kan.h"
#include "nabla/dist.h"
#include "nabla/rnn.h"
#include "nabla/amp.h"
#include "nabla/symbolic.h"
#include "nabla/attention.h"
#include "nabla/text.h"
#include "nabla/gpt.h"
#include "nabla/tagger.h"

#ifdef __cplusplus
}
#endif
#endif /* NABLA_H */
