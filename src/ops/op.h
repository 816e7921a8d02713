/*
 * op.h — the op table.  Every op is one row of NB_OPS below: its name, torch's name for its
 * backward node, the number of tensor inputs, its family (the forward and backward pair that
 * implements it), the dtypes its inputs take and the dtypes it has kernels for.  The enum, the
 * table nb__ops and the family declarations are all generated from that one list, so they
 * cannot disagree.  nb__apply (apply.c) checks the inputs against the row, picks the kernels
 * for their dtype, runs the forward and records a node when an input requires grad; the
 * backward engine (src/autograd) walks those nodes.  Adding an op: one NB_OPS row, a forward
 * and a backward in its family's file (a new family: a new file defining nb__fwd_<family> and
 * nb__bwd_<family>), the public function, cases in tests/op_cases.h and tools/gen_golden.py
 * (docs/ARCHITECTURE.md, "Add an op").
 *
 * Conventions for forwards: inputs are alive, on one device and of the dtypes the row declares
 * (nb__apply checks); shapes and dims are not, so a forward validates them and fails with a
 * message naming the op and shapes.  Backwards: din[i] is set only where nb__needs_grad(node,
 * i), to a gradient of in[i]'s shape or one that broadcasts to it (the engine sums it down).
 * Each din[i] is a reference handed to the engine, which drops it: a tensor the backward made,
 * or one it retained (nb__retain) — never g or an input as is.  Intermediates follow the
 * composite rule (nb__temps, core.h).  A backward runs in one of two modes:
 *   - first order (recording off, nb_is_grad_enabled() false, inside the pass's private
 *     scope): compute with kernels directly; this is the fast path training takes;
 *   - create_graph (recording on): the gradient must itself be differentiable, so compute it
 *     with ops (nb_mul, nb_matmul, ... or ops made for a backward, whose own backward closes
 *     the loop), to any order.  An op whose backward can be written with ops only needs one
 *     version; one with a fused kernel branches on nb_is_grad_enabled().
 */
#ifndef NB_OP_H
#define NB_OP_H

#include "../backend/backend.h"
#include "../core/core.h"

/*
 * X(ID, name, grad_fn, arity, family, inputs, kernels)
 *   grad_fn  torch's name for the backward node; NULL for an op with no gradient (it records
 *            nothing), so "differentiable" and "has a grad_fn" are one column
 *   arity    the number of tensor inputs; -1 for any number >= 1
 *   inputs   a letter per input, the last repeating: T an input of the op's dtype (all T
 *            inputs share it; the first input is a T and its dtype picks the kernels), I an
 *            int32 index
 *   kernels  the dtypes with kernels, one of NB_KERNELS_*: F32, or ANY for ops that only move
 *            elements (views, copies, concat) and so work for every dtype alike
 */
#define NB_OPS(X) \
    /* elementwise, broadcasting (binary.c) */                                                                   \
    X(ADD,                 "add",                 "AddBackward0",                  2,  binary,       "T",  F32)  \
    X(SUB,                 "sub",                 "SubBackward0",                  2,  binary,       "T",  F32)  \
    X(MUL,                 "mul",                 "MulBackward0",                  2,  binary,       "T",  F32)  \
    X(DIV,                 "div",                 "DivBackward0",                  2,  binary,       "T",  F32)  \
    X(POW,                 "pow",                 "PowBackward1",                  2,  binary,       "T",  F32)  \
    X(EQ,                  "eq",                  NULL,                            2,  binary,       "T",  F32)  \
    X(NE,                  "ne",                  NULL,                            2,  binary,       "T",  F32)  \
    X(LT,                  "lt",                  NULL,                            2,  binary,       "T",  F32)  \
    X(LE,                  "le",                  NULL,                            2,  binary,       "T",  F32)  \
    X(GT,                  "gt",                  NULL,                            2,  binary,       "T",  F32)  \
    X(GE,                  "ge",                  NULL,                            2,  binary,       "T",  F32)  \
    /* elementwise, one input (unary.c) */                                                                       \
    X(NEG,                 "neg",                 "NegBackward0",                  1,  unary,        "T",  F32)  \
    X(EXP,                 "exp",                 "ExpBackward0",                  1,  unary,        "T",  F32)  \
    X(LOG,                 "log",                 "LogBackward0",                  1,  unary,        "T",  F32)  \
    X(SQRT,                "sqrt",                "SqrtBackward0",                 1,  unary,        "T",  F32)  \
    X(ABS,                 "abs",                 "AbsBackward0",                  1,  unary,        "T",  F32)  \
    X(SIN,                 "sin",                 "SinBackward0",                  1,  unary,        "T",  F32)  \
    X(COS,                 "cos",                 "CosBackward0",                  1,  unary,        "T",  F32)  \
    X(TANH,                "tanh",                "TanhBackward0",                 1,  unary,        "T",  F32)  \
    X(SIGMOID,             "sigmoid",             "SigmoidBackward0",              1,  unary,        "T",  F32)  \
    X(RELU,                "relu",                "ReluBackward0",                 1,  unary,        "T",  F32)  \
    X(POW_SCALAR,          "pow_scalar",          "PowBackward0",                  1,  unary,        "T",  F32)  \
    X(CLAMP,               "clamp",               "ClampBackward1",                1,  unary,        "T",  F32)  \
    X(ADD_SCALAR,          "add_scalar",          "AddBackward0",                  1,  unary,        "T",  F32)  \
    X(MUL_SCALAR,          "mul_scalar",          "MulBackward0",                  1,  unary,        "T",  F32)  \
    X(STEP,                "step",                "StepBackward0",                 1,  unary,        "T",  F32)  \
    X(LEAKY_RELU,          "leaky_relu",          "LeakyReluBackward0",            1,  unary,        "T",  F32)  \
    X(ELU,                 "elu",                 "EluBackward0",                  1,  unary,        "T",  F32)  \
    X(SOFTPLUS,            "softplus",            "SoftplusBackward0",             1,  unary,        "T",  F32)  \
    X(SILU,                "silu",                "SiluBackward0",                 1,  unary,        "T",  F32)  \
    X(MISH,                "mish",                "MishBackward0",                 1,  unary,        "T",  F32)  \
    X(GELU,                "gelu",                "GeluBackward0",                 1,  unary,        "T",  F32)  \
    X(ATAN,                "atan",                "AtanBackward0",                 1,  unary,        "T",  F32)  \
    X(SOFTSIGN,            "softsign",            "SoftsignBackward0",             1,  unary,        "T",  F32)  \
    X(ERF,                 "erf",                 "ErfBackward0",                  1,  unary,        "T",  F32)  \
    /* matmul.c, linear.c */                                                                                     \
    X(MATMUL,              "matmul",              "MmBackward0",                   2,  matmul,       "T",  F32)  \
    X(LINEAR,              "linear",              "AddmmBackward0",                -1, linear,       "T",  F32)  \
    /* reductions (reduce.c) */                                                                                  \
    X(SUM,                 "sum",                 "SumBackward1",                  1,  reduce,       "T",  F32)  \
    X(MEAN,                "mean",                "MeanBackward1",                 1,  reduce,       "T",  F32)  \
    X(MAX,                 "max",                 "AmaxBackward0",                 1,  reduce,       "T",  F32)  \
    X(MIN,                 "min",                 "AminBackward0",                 1,  reduce,       "T",  F32)  \
    X(ARGMAX,              "argmax",              NULL,                            1,  reduce,       "T",  F32)  \
    /* softmax.c, xent.c */                                                                                      \
    X(SOFTMAX,             "softmax",             "SoftmaxBackward0",              1,  softmax,      "T",  F32)  \
    X(LOG_SOFTMAX,         "log_softmax",         "LogSoftmaxBackward0",           1,  softmax,      "T",  F32)  \
    X(XENT,                "cross_entropy",       "NllLossBackward0",              2,  xent,         "TI", F32)  \
    /* views and copies, any dtype (view.c) */                                                                   \
    X(RESHAPE,             "reshape",             "ViewBackward0",                 1,  reshape,      "T",  ANY)  \
    X(PERMUTE,             "permute",             "PermuteBackward0",              1,  permute,      "T",  ANY)  \
    X(SLICE,               "slice",               "SliceBackward0",                1,  slice,        "T",  ANY)  \
    X(EXPAND,              "expand",              "ExpandBackward0",               1,  expand,       "T",  ANY)  \
    X(CONTIGUOUS,          "contiguous",          "CloneBackward0",                1,  contiguous,   "T",  ANY)  \
    X(SLICE_BACKWARD,      "slice_backward",      "SliceBackwardBackward0",        1,  slice_backward, "T",  F32)  \
    /* joining and selecting (select.c) */                                                                       \
    X(CONCAT,              "concat",              "CatBackward0",                  -1, concat,       "T",  ANY)  \
    X(WHERE,               "where",               "WhereBackward0",                3,  where,        "T",  F32)  \
    X(GATHER,              "gather",              "GatherBackward0",               2,  gather,       "TI", F32)  \
    X(INDEX_SELECT,        "index_select",        "IndexSelectBackward0",          2,  index_select, "TI", F32)  \
    X(SCATTER_ADD,         "scatter_add",         "ScatterAddBackward0",           2,  scatter_add,  "TI", F32)  \
    X(INDEX_ADD,           "index_add",           "IndexAddBackward0",             2,  index_add,    "TI", F32)  \
    /* pooling and upsampling on NCHW (pool.c) */                                                                \
    X(MAX_POOL2D,          "max_pool2d",          "MaxPool2DWithIndicesBackward0", 1,  pool,         "T",  F32)  \
    X(AVG_POOL2D,          "avg_pool2d",          "AvgPool2DBackward0",            1,  pool,         "T",  F32)  \
    X(UPSAMPLE_NEAREST2D,  "upsample_nearest2d",  "UpsampleNearest2DBackward0",    1,  upsample,     "T",  F32)  \
    X(UPSAMPLE_BILINEAR2D, "upsample_bilinear2d", "UpsampleBilinear2DBackward0",   1,  upsample,     "T",  F32)  \
    X(AVG_POOL2D_BACKWARD, "avg_pool2d_backward", "AvgPool2DBackwardBackward0",    1,  pool_backward, "T",  F32)  \
    X(UPSAMPLE_NEAREST2D_BACKWARD, "upsample_nearest2d_backward", "UpsampleNearest2DBackwardBackward0", 1,  upsample_backward, "T",  F32)  \
    X(UPSAMPLE_BILINEAR2D_BACKWARD, "upsample_bilinear2d_backward", "UpsampleBilinear2DBackwardBackward0", 1,  upsample_backward, "T",  F32)  \
    /* convolution on NCHW (conv.c) */                                                                           \
    X(CONV2D,              "conv2d",              "ConvolutionBackward0",          -1, conv,         "T",  F32)  \
    X(CONV_TRANSPOSE2D,    "conv_transpose2d",    "ConvolutionBackward0",          -1, conv,         "T",  F32)  \
    X(CONV2D_WEIGHT,       "conv2d_weight",       "ConvolutionBackwardBackward0",  2,  conv_weight,  "T",  F32)  \
    /* module backward hooks (hook.c) */                                                                         \
    X(BACKWARD_HOOK,       "backward_hook",       "BackwardHookFunctionBackward",  -1, hook,         "T",  F32) \
    /* fake quantization, x with a scale and a zero point (quant.c) */                                     \
    X(FAKE_QUANT_TENSOR,   "fake_quantize_per_tensor_affine", "FakeQuantizePerTensorAffineCachemaskTensorQparamsBackward0", 3, quant, "T", F32) \
    X(FAKE_QUANT_CHANNEL,  "fake_quantize_per_channel_affine", "FakeQuantizePerChannelAffineCachemaskBackward0", 3, quant, "T", F32) \
    X(FAKE_QUANT_LSQ_TENSOR, "fake_quantize_learnable_per_tensor_affine", "FakeQuantizeLearnablePerTensorAffineBackward0", 3, quant, "T", F32) \
    X(FAKE_QUANT_LSQ_CHANNEL, "fake_quantize_learnable_per_channel_affine", "FakeQuantizeLearnablePerChannelAffineBackward0", 3, quant, "T", F32) \
    /* B-spline bases of a KAN layer, x [n, in] and its knots [in, m] (src/kan/basis.c) */        \
    X(BSPLINE,             "bspline_basis",       "BsplineBasisBackward",          2,  bspline,      "T",  F32) \
    /* layer norm over the last dims, x and the optional weight and bias (layernorm.c) */     \
    X(LAYER_NORM,          "layer_norm",          "NativeLayerNormBackward0",      -1, layer_norm,   "T",  F32) \
    /* scaled dot-product attention, q, k, v and an additive mask (attention.c) */               \
    X(ATTENTION,           "scaled_dot_product_attention", "ScaledDotProductEfficientAttentionBackward0", -1, attention, "T", F32) \
    /* one recurrent layer-direction over all steps, in nb_rnn_mode's order: xp [T, B, G H], \
     * w_hh [G H, H], b_hh [G H], s0 [S, B, H] and an optional mask [T, B] (rnn.c) */               \
    X(RNN_TANH_LAYER,      "rnn_tanh_layer",      "CudnnRnnBackward0",             -1, rnn,          "T",  F32) \
    X(RNN_RELU_LAYER,      "rnn_relu_layer",      "CudnnRnnBackward0",             -1, rnn,          "T",  F32) \
    X(LSTM_LAYER,          "lstm_layer",          "CudnnRnnBackward0",             -1, rnn,          "T",  F32) \
    X(GRU_LAYER,           "gru_layer",           "CudnnRnnBackward0",             -1, rnn,          "T",  F32)

#define NB_OP_ENUM_(id, ...) NB_OP_##id,
typedef enum { NB_OPS(NB_OP_ENUM_) NB_OP_COUNT } nb_op_id;

typedef nb_tensor *(*nb_forward_fn)(nb_op_id op, nb_tensor *const *in, int n,
                                    const nb_op_args *args);
typedef nb_status (*nb_backward_fn)(const nb_node *node, nb_tensor *dout, nb_tensor **din);

/* An op's kernels for one dtype.  A float16 kernel for an op is a forward (and a backward) on
 * float16 data in the op's file and a [NB_F16] entry here, through its row's `kernels` column. */
typedef struct {
    nb_forward_fn forward;   /* NULL: the op has no kernel for this dtype */
    nb_backward_fn backward; /* NULL: not differentiable, records nothing */
} nb_op_kernels;

typedef struct {
    const char *name;    /* "matmul", used in error messages */
    const char *grad_fn; /* "MmBackward0"; NULL when not differentiable */
    int arity;           /* number of tensor inputs; -1 for any number >= 1 */
    const char *inputs;  /* "T", "TI": the dtype rule of each input (see NB_OPS) */
    nb_op_kernels kernels[NB_DTYPE_COUNT]; /* by the dtype of the T inputs */
} nb_op_def;

extern const nb_op_def nb__ops[NB_OP_COUNT];

/* Checks the inputs against the op's row (alive, one device, the row's dtypes, a kernel for
 * their dtype), runs the forward, records a node when an input requires grad and recording is
 * on.  The entry point of every op (apply.c). */
nb_tensor *nb__apply(nb_op_id op, int n, nb_tensor *const *in, const nb_op_args *args);
/* True when the pass running asks for this input's gradient (nb_autograd_grad computes only
 * what leads to its inputs; src/autograd/backward.c). */
bool nb__grad_wanted(const nb_tensor *t);
static inline bool nb__needs_grad(const nb_node *node, int i) {
    return node->in[i]->requires_grad && nb__grad_wanted(node->in[i]);
}
/* First-order backwards only, for an input they need the gradient of: the leaf's .grad when it
 * holds +0.0 everywhere and the pass would add input i's gradient straight into it, else NULL.
 * Given one, the backward adds the gradient into it (a GEMM with beta 1: 0 + x, the bits the
 * pass's own addition gives) and leaves din[i] NULL. */
nb_tensor *nb__grad_sink(const nb_node *node, int i);
/* Anomaly mode: the module layer describes where ops run.  fn writes into buf (snprintf's
 * contract, returns the length it needs) the place ("layer 2 (Linear)"), then a line per input
 * naming it ("2.weight", or an empty line); nb__apply keeps it in each node it records
 * (node->origin) and nb__origin_parts reads it back: input i's name ("input 1" when unnamed) and
 * " in <place>" (or "").  The previous describer comes back through previous_fn / _ctx. */
typedef int (*nb__origin_fn)(char *buf, size_t cap, nb_tensor *const *in, int n, void *ctx);
void nb__set_origin(nb__origin_fn fn, void *ctx, nb__origin_fn *previous_fn, void **previous_ctx);
void nb__origin_parts(const nb_node *node, int i, char *name, size_t name_cap, char *where,
                      size_t where_cap);
/* Sums g over broadcast dims so it has the given shape (the gradient of a broadcast). */
nb_tensor *nb__sum_to(nb_tensor *g, int ndim, const int64_t *shape);
/* x itself when contiguous, else a contiguous copy (no recording). */
nb_tensor *nb__contig(nb_tensor *x);
/* A pool's output size along one dim, torch's formula with ceil mode (pool.c). */
int64_t nb__pool_out_size(int64_t in, int k, int stride, int pad, bool ceil_mode);
static inline const nb_backend *nb__be(const nb_tensor *t) { return nb__backend(t->device); }

/* The forward and backward of each family, declared from the rows that use it. */
#define NB_OP_DECLARE_(id, name, grad_fn, arity, fam, ...)                                  \
    nb_tensor *nb__fwd_##fam(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *a); \
    nb_status nb__bwd_##fam(const nb_node *node, nb_tensor *dout, nb_tensor **din);
NB_OPS(NB_OP_DECLARE_)

/* Ops made for backwards, whose own backwards close the loop so gradients can be differentiated
 * again (create_graph); torch has them as aten ops, not public functions.  Each checks its
 * arguments as a public function does.
 *   slice_backward  zeros of `shape` with g written where slice(dim, start, end, step) reads
 *                   (view.c; backward: slice)
 *   scatter_add     zeros of `shape`, then out[index[i] along dim] += src[i] (select.c;
 *                   backward: gather); torch's zeros(shape).scatter_add(dim, index, src)
 *   index_add       zeros of `shape`, then out[index[k] along dim] += src[k along dim]
 *                   (select.c; backward: index_select); torch's zeros(shape).index_add(...)
 *   avg_pool2d_backward, upsample_*2d_backward  the input gradient of the pool or upsampling of
 *                   an input of `shape` (pool.c; backward: the forward op)
 *   conv2d_weight   the weight gradient, of shape `w_shape`, of conv2d(x, w, opts) for output
 *                   gradient g (conv.c; backward: conv2d and conv_transpose2d) */
nb_tensor *nb__slice_backward(nb_tensor *g, int ndim, const int64_t *shape, int dim,
                              int64_t start, int64_t end, int64_t step);
nb_tensor *nb__scatter_add(nb_tensor *src, int dim, nb_tensor *index, int ndim,
                           const int64_t *shape);
nb_tensor *nb__index_add(nb_tensor *src, int dim, nb_tensor *index, int ndim,
                         const int64_t *shape);
nb_tensor *nb__avg_pool2d_backward(nb_tensor *g, int ndim, const int64_t *shape,
                                   const nb_pool2d_opts *opts);
nb_tensor *nb__upsample_nearest2d_backward(nb_tensor *g, int ndim, const int64_t *shape,
                                           int scale_h, int scale_w);
nb_tensor *nb__upsample_bilinear2d_backward(nb_tensor *g, int ndim, const int64_t *shape,
                                            int scale_h, int scale_w, bool align_corners);
nb_tensor *nb__conv2d_weight(nb_tensor *x, nb_tensor *g, const int64_t w_shape[4],
                             const nb_conv2d_opts *opts);
/* torch's BackwardHookFunction, the identity a module's full backward hook is built on
 * (hook.c): the first n_pack of in[0 .. n-1] packed into one flat tensor (one: the tensor
 * itself, as a view), so that one node sees all their gradients at once.  Its backward splits
 * the packed gradient back into one per tensor and hands them to h (which may be NULL):
 *   NB__HOOK_INPUTS  the module's inputs (n == n_pack): h->inputs may replace each gradient
 *                    (with one of its shape, made with ops), which is then what flows on;
 *                    key is this node's result;
 *   NB__HOOK_OUTPUTS the module's outputs: h->outputs sees their gradients; in[n_pack], when
 *                    n > n_pack, is the inputs' packed result of the same call (its node keeps
 *                    that one alive), passed as key when the pass computes its gradient, else
 *                    key is NULL (the inputs' node will not be reached).
 * In create_graph mode the split is made of ops, so gradients stay differentiable. */
typedef struct nb__backward_hook nb__backward_hook;
struct nb__backward_hook {
    nb_status (*outputs)(nb__backward_hook *h, const nb_tensor *key, int n, nb_tensor *const *grads);
    nb_status (*inputs)(nb__backward_hook *h, const nb_tensor *key, int n, nb_tensor **grads);
};
enum { NB__HOOK_INPUTS, NB__HOOK_OUTPUTS, NB__HOOK_MAX_IO = 16 };
nb_tensor *nb__backward_hook_pack(int role, int n_pack, int n, nb_tensor *const *in,
                                  nb__backward_hook *h);
/* The stretch of a packed tensor (or of its gradient) that holds t, which starts at element at:
 * a tensor of t's shape, made with ops (views when packed is contiguous), so it keeps a graph;
 * packed itself (retained) when it has t's shape. */
nb_tensor *nb__backward_hook_part(nb_tensor *packed, const nb_tensor *t, int64_t at);

/* Cross-entropy of logits [N, C] against int32 classes [N], mean or summed, as one op (xent.c);
 * nb_cross_entropy calls it when nothing else (weights, smoothing, ignore_index) applies. */
nb_tensor *nb__cross_entropy_indices(nb_tensor *logits, nb_tensor *target, bool mean);

#endif
