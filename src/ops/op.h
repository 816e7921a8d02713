/*
 * op.h — the op table.  Every op is one row: its name, torch's name for its backward node, the
 * number of tensor inputs, a forward and a backward.  nb__apply runs the forward and records a
 * node when an input requires grad; the backward engine walks those nodes.  Adding an op means
 * one enum entry, one row, one forward, one backward, one gradient check, one golden test.
 *
 * Conventions for forwards: inputs are alive and on one device (nb__apply checks); shapes and
 * dims are not, so a forward validates them and fails with a message naming the op and shapes.
 * Backwards: called with recording off; din[i] is set only where nb__needs_grad(node, i), to a
 * gradient of in[i]'s shape or one that broadcasts to it (the engine sums it down).
 */
#ifndef NB_OP_H
#define NB_OP_H

#include "../backend/backend.h"
#include "../core/core.h"

typedef enum {
    /* elementwise, broadcasting (binary.c) */
    NB_OP_ADD, NB_OP_SUB, NB_OP_MUL, NB_OP_DIV, NB_OP_POW,
    NB_OP_EQ, NB_OP_NE, NB_OP_LT, NB_OP_LE, NB_OP_GT, NB_OP_GE,
    /* elementwise, one input (unary.c) */
    NB_OP_NEG, NB_OP_EXP, NB_OP_LOG, NB_OP_SQRT, NB_OP_ABS, NB_OP_SIN, NB_OP_COS,
    NB_OP_TANH, NB_OP_SIGMOID, NB_OP_RELU, NB_OP_POW_SCALAR, NB_OP_CLAMP, NB_OP_ADD_SCALAR,
    NB_OP_MUL_SCALAR, NB_OP_STEP, NB_OP_LEAKY_RELU, NB_OP_ELU, NB_OP_SOFTPLUS, NB_OP_SILU,
    NB_OP_MISH, NB_OP_GELU, NB_OP_ATAN, NB_OP_SOFTSIGN,
    /* matmul.c, linear.c */
    NB_OP_MATMUL, NB_OP_LINEAR,
    /* reduce.c */
    NB_OP_SUM, NB_OP_MEAN, NB_OP_MAX, NB_OP_MIN, NB_OP_ARGMAX,
    /* softmax.c */
    NB_OP_SOFTMAX, NB_OP_LOG_SOFTMAX, NB_OP_XENT,
    /* views and copies (view.c) */
    NB_OP_RESHAPE, NB_OP_PERMUTE, NB_OP_SLICE, NB_OP_EXPAND, NB_OP_CONTIGUOUS,
    /* joining and selecting (select.c) */
    NB_OP_CONCAT, NB_OP_WHERE, NB_OP_GATHER, NB_OP_INDEX_SELECT,
    /* pooling and upsampling on NCHW (pool.c) */
    NB_OP_MAX_POOL2D, NB_OP_AVG_POOL2D, NB_OP_UPSAMPLE_NEAREST2D, NB_OP_UPSAMPLE_BILINEAR2D,
    /* convolution on NCHW (conv.c) */
    NB_OP_CONV2D, NB_OP_CONV_TRANSPOSE2D,
    NB_OP_COUNT
} nb_op_id;

typedef nb_tensor *(*nb_forward_fn)(nb_op_id op, nb_tensor *const *in, int n,
                                    const nb_op_args *args);
typedef nb_status (*nb_backward_fn)(const nb_node *node, nb_tensor *dout, nb_tensor **din);

typedef struct {
    const char *name;    /* "matmul", used in error messages */
    const char *grad_fn; /* "MmBackward0" */
    int arity;           /* number of tensor inputs; -1 for any number >= 1 */
    nb_forward_fn forward;
    nb_backward_fn backward; /* NULL: not differentiable, records nothing */
} nb_op_def;

extern const nb_op_def nb__ops[NB_OP_COUNT];

/* Checks inputs, runs the forward, records a node when needed.  The entry point of every op. */
nb_tensor *nb__apply(nb_op_id op, int n, nb_tensor *const *in, const nb_op_args *args);
static inline bool nb__needs_grad(const nb_node *node, int i) {
    return node->in[i]->requires_grad;
}
/* Sums g over broadcast dims so it has the given shape (the gradient of a broadcast). */
nb_tensor *nb__sum_to(nb_tensor *g, int ndim, const int64_t *shape);
/* x itself when contiguous, else a contiguous copy (no recording). */
nb_tensor *nb__contig(nb_tensor *x);
static inline const nb_backend *nb__be(const nb_tensor *t) { return nb__backend(t->device); }

/* forwards and backwards, one pair per family */
#define NB_DECLARE_OP(fam)                                                                  \
    nb_tensor *nb__fwd_##fam(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *a); \
    nb_status nb__bwd_##fam(const nb_node *node, nb_tensor *dout, nb_tensor **din);
NB_DECLARE_OP(binary)
NB_DECLARE_OP(unary)
NB_DECLARE_OP(matmul)
NB_DECLARE_OP(linear)
NB_DECLARE_OP(reduce)
NB_DECLARE_OP(softmax)
NB_DECLARE_OP(xent)

/* Cross-entropy of logits [N, C] against int32 classes [N], mean or summed, as one op (xent.c);
 * nb_cross_entropy calls it when nothing else (weights, smoothing, ignore_index) applies. */
nb_tensor *nb__cross_entropy_indices(nb_tensor *logits, nb_tensor *target, bool mean);
NB_DECLARE_OP(reshape)
NB_DECLARE_OP(permute)
NB_DECLARE_OP(slice)
NB_DECLARE_OP(expand)
NB_DECLARE_OP(contiguous)
NB_DECLARE_OP(concat)
NB_DECLARE_OP(where)
NB_DECLARE_OP(gather)
NB_DECLARE_OP(index_select)
NB_DECLARE_OP(pool)
NB_DECLARE_OP(upsample)
NB_DECLARE_OP(conv)

#endif
