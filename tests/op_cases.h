/*
 * op_cases.h — the op test cases shared by test_gradcheck.c (finite differences) and
 * test_golden.c (PyTorch reference vectors).  tools/gen_golden.py mirrors this table case by
 * case under the same names and writes tests/golden/ops.json; test_golden.c checks that the
 * two agree on every field, so a case changed here and not there fails loudly.
 *
 * A case names the op-table row it exercises (`op`), the public function that reaches it (`fn`,
 * e.g. nb_flatten for the RESHAPE row), how to draw each tensor input and the function's extra
 * arguments.  Input specs describe the *logical* tensor the op sees; `layout` says how that
 * tensor sits in memory, so kernels meet non-contiguous inputs too:
 *   contiguous  the leaf itself
 *   transposed  a leaf with the last two dims swapped, seen through nb_transpose(leaf, -1, -2)
 *   strided     a leaf with a last dim of 2n + 1 whose gaps hold NaN, seen through
 *               nb_slice(leaf, -1, 1, 2n + 1, 2): offset 1, stride 2; a kernel that reads past
 *               the view turns the result into NaN
 * Draws keep each op smooth at its inputs so that finite differences are valid: positive ranges
 * for log/sqrt/pow, values at least OC_MARGIN away from kinks (0 for abs/relu, clamp's bounds),
 * distinct values spaced well beyond the finite-difference step for max/min.  Cases marked
 * `nonsmooth` sit on a kink on purpose (ties, zeros, bounds) to pin torch's conventions there;
 * only the golden test runs them.
 *
 * Randomness comes from a local SplitMix64 stream, not the library's generator, so the inputs
 * do not move when the library's RNG changes.
 */
#ifndef NB_OP_CASES_H
#define NB_OP_CASES_H

#include "nabla.h"
#include "ops/op.h"

#include <math.h>
#include <string.h>

#define OC_MAX_IN 5
#define OC_MAX_RANK 4
/* Distance kept from kinks (abs/relu at 0, clamp's bounds); finite differences move an input
 * by at most 2 h = 2^-6 (test_gradcheck.c), well inside it. */
#define OC_MARGIN 0.1f

typedef enum {
    OC_NONE,     /* no input in this slot */
    OC_UNIFORM,  /* f32 uniform in [lo, hi], at least OC_MARGIN away from each avoid point */
    OC_DISTINCT, /* f32: a random permutation of the n points lo + (hi - lo)(k + 1/2)/n */
    OC_INTS,     /* f32 holding integers lo..hi (ties on purpose: comparisons, nonsmooth) */
    OC_MASK,     /* f32 0/1, the condition of where; never differentiated */
    OC_INDEX,    /* int32 in [0, hi): gather / index_select indices */
    OC_FIXED,    /* f32 holding integers lo..hi, never differentiated: parameters an op takes
                  * as tensors without a gradient (fake quantization's scale and zero point) */
    OC_GRID,     /* f32 [rows, m], every row the m evenly spaced points lo..hi: B-spline knots,
                  * never differentiated (no randomness is drawn) */
} oc_draw;

typedef enum { OC_CONTIGUOUS, OC_TRANSPOSED, OC_STRIDED } oc_layout;

typedef struct {
    oc_draw draw;
    int ndim;
    int64_t shape[OC_MAX_RANK];
    float lo, hi;
    int n_avoid;
    float avoid[2];
    oc_layout layout;
} oc_input;

/* The public functions a case may call; each maps to one row of nb__ops (or several public
 * functions to one row: flatten, squeeze, unsqueeze and view all record RESHAPE). */
#define OC_FNS(X)                                                                           \
    X(add) X(sub) X(mul) X(div) X(pow) X(eq) X(ne) X(lt) X(le) X(gt) X(ge)                   \
    X(neg) X(exp) X(log) X(sqrt) X(abs) X(sin) X(cos) X(tanh) X(sigmoid) X(relu)            \
    X(pow_scalar) X(clamp) X(add_scalar) X(mul_scalar) X(step) X(leaky_relu) X(elu)         \
    X(softplus) X(silu) X(mish) X(gelu) X(atan) X(softsign) X(matmul) X(linear) X(cross_entropy)                     \
    X(erf)                                                                                 \
    X(sum) X(mean) X(max) X(min) X(sum_dims) X(mean_dims) X(max_dims) X(min_dims) X(argmax) \
    X(softmax) X(log_softmax) X(reshape) X(view) X(flatten) X(squeeze) X(unsqueeze)         \
    X(transpose) X(permute) X(slice) X(expand) X(contiguous) X(concat) X(stack) X(where)    \
    X(gather) X(index_select)                                                              \
    X(conv2d) X(conv_transpose2d)                                                          \
    X(max_pool2d) X(avg_pool2d) X(global_avg_pool2d) X(upsample_nearest2d) X(upsample_bilinear2d) \
    X(slice_backward) X(scatter_add) X(index_add) X(avg_pool2d_backward)                     \
    X(upsample_nearest2d_backward) X(upsample_bilinear2d_backward) X(conv2d_weight)          \
    X(backward_hook)                                                                        \
    X(fake_quantize_per_tensor) X(fake_quantize_per_channel)                                \
    X(fake_quantize_learnable_per_tensor) X(fake_quantize_learnable_per_channel)               \
    X(bspline_basis)                                                                         \
    X(layer_norm)                                                                            \
    X(scaled_dot_product_attention)                                                          \
    X(rnn_tanh_layer) X(rnn_relu_layer) X(lstm_layer) X(gru_layer)

#define OC_FN_ENUM_(f) OC_FN_##f,
typedef enum { OC_FNS(OC_FN_ENUM_) OC_FN_COUNT } oc_fn;

typedef struct op_case {
    const char *name;
    nb_op_id op;
    oc_fn fn;
    oc_input in[OC_MAX_IN];
    /* extra arguments, each used by some functions only (see oc_call_*) */
    int n_dims;
    int dims[OC_MAX_RANK]; /* reduced dims, a permutation, transpose's pair, flatten's range */
    bool keepdim;
    int dim;               /* softmax, argmax, slice, squeeze, concat, gather, ... */
    float s0, s1;          /* scalar, exponent, clamp bounds */
    int64_t start, end, step;
    int n_sizes;
    int64_t sizes[OC_MAX_RANK]; /* reshape, view, expand */
    nb_pool2d_opts pool;   /* max_pool2d, avg_pool2d */
    int scale[2];          /* upsampling factors [height, width] */
    bool align_corners;    /* upsample_bilinear2d */
    nb_conv2d_opts conv;             /* conv2d */
    nb_conv_transpose2d_opts conv_t; /* conv_transpose2d */
    bool nonsmooth;
    /* The row's gradient is an estimator, not the derivative (fake quantization's
     * straight-through estimator): test_gradcheck's finite differences cannot check it
     * (test_quant.c checks it against torch and, where smooth, finite differences), while the
     * estimator itself is smooth away from rounding edges, so test_grad2 differentiates it. */
    bool estimator;
} op_case;

typedef nb_tensor *(*oc_call)(nb_tensor *const *x, const op_case *c);

/* ---- the calls */

#define OC_CALL_(f, ...) \
    static inline nb_tensor *oc_call_##f(nb_tensor *const *x, const op_case *c) { \
        (void)c;                                                                  \
        return __VA_ARGS__;                                                       \
    }
#define OC_BINARY_(f) OC_CALL_(f, nb_##f(x[0], x[1]))
#define OC_UNARY_(f) OC_CALL_(f, nb_##f(x[0]))
OC_BINARY_(add) OC_BINARY_(sub) OC_BINARY_(mul) OC_BINARY_(div) OC_BINARY_(pow)
OC_BINARY_(eq) OC_BINARY_(ne) OC_BINARY_(lt) OC_BINARY_(le) OC_BINARY_(gt) OC_BINARY_(ge)
OC_BINARY_(matmul)
OC_CALL_(linear, nb_linear(x[0], x[1], c->in[2].draw != OC_NONE ? x[2] : NULL))
OC_UNARY_(neg) OC_UNARY_(exp) OC_UNARY_(log) OC_UNARY_(sqrt) OC_UNARY_(abs) OC_UNARY_(sin)
OC_UNARY_(cos) OC_UNARY_(tanh) OC_UNARY_(sigmoid) OC_UNARY_(relu)
OC_UNARY_(step) OC_UNARY_(mish) OC_UNARY_(gelu) OC_UNARY_(atan) OC_UNARY_(softsign)
OC_UNARY_(erf)
OC_UNARY_(sum) OC_UNARY_(mean) OC_UNARY_(max) OC_UNARY_(min) OC_UNARY_(contiguous)
OC_CALL_(pow_scalar, nb_pow_scalar(x[0], c->s0))
OC_CALL_(clamp, nb_clamp(x[0], c->s0, c->s1))
OC_CALL_(add_scalar, nb_add_scalar(x[0], c->s0))
OC_CALL_(mul_scalar, nb_mul_scalar(x[0], c->s0))
OC_CALL_(leaky_relu, nb_leaky_relu(x[0], c->s0))
OC_CALL_(elu, nb_elu(x[0], c->s0))
OC_CALL_(softplus, nb_softplus(x[0], c->s0, c->s1))
OC_CALL_(silu, nb_silu(x[0], c->s0))
OC_CALL_(sum_dims, nb_sum_dims(x[0], c->n_dims, c->dims, c->keepdim))
OC_CALL_(mean_dims, nb_mean_dims(x[0], c->n_dims, c->dims, c->keepdim))
OC_CALL_(max_dims, nb_max_dims(x[0], c->n_dims, c->dims, c->keepdim))
OC_CALL_(min_dims, nb_min_dims(x[0], c->n_dims, c->dims, c->keepdim))
OC_CALL_(argmax, nb_argmax(x[0], c->dim, c->keepdim))
OC_CALL_(softmax, nb_softmax(x[0], c->dim))
OC_CALL_(log_softmax, nb_log_softmax(x[0], c->dim))
OC_CALL_(reshape, nb_reshape(x[0], c->n_sizes, c->sizes))
OC_CALL_(view, nb_view(x[0], c->n_sizes, c->sizes))
OC_CALL_(expand, nb_expand(x[0], c->n_sizes, c->sizes))
OC_CALL_(flatten, nb_flatten(x[0], c->dims[0], c->dims[1]))
OC_CALL_(squeeze, nb_squeeze(x[0], c->dim))
OC_CALL_(unsqueeze, nb_unsqueeze(x[0], c->dim))
OC_CALL_(transpose, nb_transpose(x[0], c->dims[0], c->dims[1]))
OC_CALL_(permute, nb_permute(x[0], c->n_dims, c->dims))
OC_CALL_(slice, nb_slice(x[0], c->dim, c->start, c->end, c->step))
OC_CALL_(where, nb_where(x[0], x[1], x[2]))
OC_CALL_(gather, nb_gather(x[0], c->dim, x[1]))
OC_CALL_(cross_entropy, nb_cross_entropy(x[0], x[1], NULL))
OC_CALL_(index_select, nb_index_select(x[0], c->dim, x[1]))
OC_CALL_(max_pool2d, nb_max_pool2d(x[0], &c->pool))
OC_CALL_(avg_pool2d, nb_avg_pool2d(x[0], &c->pool))
OC_UNARY_(global_avg_pool2d)
OC_CALL_(upsample_nearest2d, nb_upsample_nearest2d(x[0], c->scale[0], c->scale[1]))
OC_CALL_(upsample_bilinear2d,
         nb_upsample_bilinear2d(x[0], c->scale[0], c->scale[1], c->align_corners))
OC_CALL_(conv2d, nb_conv2d(x[0], x[1], c->in[2].draw != OC_NONE ? x[2] : NULL, &c->conv))
OC_CALL_(conv_transpose2d,
         nb_conv_transpose2d(x[0], x[1], c->in[2].draw != OC_NONE ? x[2] : NULL, &c->conv_t))
/* the ops made for backwards (op.h); sizes: the shape of the forward's input or weight */
OC_CALL_(slice_backward,
         nb__slice_backward(x[0], c->n_sizes, c->sizes, c->dim, c->start, c->end, c->step))
OC_CALL_(scatter_add, nb__scatter_add(x[0], c->dim, x[1], c->n_sizes, c->sizes))
OC_CALL_(index_add, nb__index_add(x[0], c->dim, x[1], c->n_sizes, c->sizes))
OC_CALL_(avg_pool2d_backward, nb__avg_pool2d_backward(x[0], c->n_sizes, c->sizes, &c->pool))
OC_CALL_(upsample_nearest2d_backward,
         nb__upsample_nearest2d_backward(x[0], c->n_sizes, c->sizes, c->scale[0], c->scale[1]))
OC_CALL_(upsample_bilinear2d_backward,
         nb__upsample_bilinear2d_backward(x[0], c->n_sizes, c->sizes, c->scale[0], c->scale[1],
                                          c->align_corners))
OC_CALL_(conv2d_weight, nb__conv2d_weight(x[0], x[1], c->sizes, &c->conv))

/* B-spline bases: dim = the order k, start = the derivative order */
OC_CALL_(bspline_basis, nb_bspline_basis(x[0], x[1], c->dim, (int)c->start))

static inline int oc_n_inputs(const op_case *c) {
    int n = 0;
    while (n < OC_MAX_IN && c->in[n].draw != OC_NONE) n++;
    return n;
}
OC_CALL_(concat, nb_concat(oc_n_inputs(c), x, c->dim))
/* the fused recurrent layer-directions (ops/rnn.c), no public function: keepdim runs one
 * reversed, a fifth input is the mask */
#define OC_RNN_(f, id) \
    OC_CALL_(f, nb__apply(NB_OP_##id, oc_n_inputs(c), x, &(nb_op_args){.keepdim = c->keepdim}))
OC_RNN_(rnn_tanh_layer, RNN_TANH_LAYER) OC_RNN_(rnn_relu_layer, RNN_RELU_LAYER)
OC_RNN_(lstm_layer, LSTM_LAYER) OC_RNN_(gru_layer, GRU_LAYER)
#undef OC_RNN_
OC_CALL_(stack, nb_stack(oc_n_inputs(c), x, c->dim))
/* fake quantization: start, end = quant_min, quant_max; dim = the axis; step = the estimator;
 * s0 = the learnable ops' grad_factor */
OC_CALL_(fake_quantize_per_tensor,
         nb_fake_quantize_per_tensor(x[0], x[1], x[2], (int)c->start, (int)c->end, (nb_ste)c->step))
OC_CALL_(fake_quantize_per_channel,
         nb_fake_quantize_per_channel(x[0], x[1], x[2], c->dim, (int)c->start, (int)c->end,
                                      (nb_ste)c->step))
OC_CALL_(fake_quantize_learnable_per_tensor,
         nb_fake_quantize_learnable_per_tensor(x[0], x[1], x[2], (int)c->start, (int)c->end, c->s0))
OC_CALL_(fake_quantize_learnable_per_channel,
         nb_fake_quantize_learnable_per_channel(x[0], x[1], x[2], c->dim, (int)c->start,
                                                (int)c->end, c->s0))
/* the identity a module's full backward hook wraps around its inputs, with no hook: a pack */
OC_CALL_(backward_hook, nb__backward_hook_pack(NB__HOOK_INPUTS, oc_n_inputs(c), oc_n_inputs(c), x, NULL))
/* dim: the normalised dims; s0: eps; inputs x, the weight, the bias, or x and the bias alone
 * when keepdim */
static inline nb_tensor *oc_call_layer_norm(nb_tensor *const *x, const op_case *c) {
    int n = oc_n_inputs(c);
    nb_tensor *w = n == 3 || (n == 2 && !c->keepdim) ? x[1] : NULL;
    nb_tensor *b = n == 3 ? x[2] : n == 2 && c->keepdim ? x[1] : NULL;
    return nb_layer_norm(x[0], c->dim, w, b, c->s0);
}
/* keepdim: causal; s0: the scale (0: 1 / sqrt(D)) */
OC_CALL_(scaled_dot_product_attention,
         nb_scaled_dot_product_attention(x[0], x[1], x[2],
                                         &(nb_sdpa_opts){.causal = c->keepdim, .scale = c->s0}))

#define OC_FN_ROW_(f) [OC_FN_##f] = {#f, oc_call_##f},
static const struct {
    const char *name;
    oc_call call;
} oc_fns[OC_FN_COUNT] = {OC_FNS(OC_FN_ROW_)};

/* ---- the cases */

#define OC_COUNT_(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define SHAPE(...) .ndim = OC_COUNT_(__VA_ARGS__), .shape = {__VA_ARGS__}
#define UNI(lo_, hi_, ...) {.draw = OC_UNIFORM, .lo = (lo_), .hi = (hi_), SHAPE(__VA_ARGS__)}
#define UNI_T(lo_, hi_, ...) \
    {.draw = OC_UNIFORM, .lo = (lo_), .hi = (hi_), SHAPE(__VA_ARGS__), .layout = OC_TRANSPOSED}
#define UNI_S(lo_, hi_, ...) \
    {.draw = OC_UNIFORM, .lo = (lo_), .hi = (hi_), SHAPE(__VA_ARGS__), .layout = OC_STRIDED}
#define AWAY(lo_, hi_, p, ...) \
    {.draw = OC_UNIFORM, .lo = (lo_), .hi = (hi_), .n_avoid = 1, .avoid = {p}, SHAPE(__VA_ARGS__)}
#define AWAY2(lo_, hi_, p, q, ...)                                                     \
    {.draw = OC_UNIFORM, .lo = (lo_), .hi = (hi_), .n_avoid = 2, .avoid = {p, q},       \
     SHAPE(__VA_ARGS__)}
#define SCALAR(lo_, hi_) {.draw = OC_UNIFORM, .lo = (lo_), .hi = (hi_), .ndim = 0}
#define DISTINCT(...) {.draw = OC_DISTINCT, .lo = -2, .hi = 2, SHAPE(__VA_ARGS__)}
#define DISTINCT_T(...) \
    {.draw = OC_DISTINCT, .lo = -2, .hi = 2, SHAPE(__VA_ARGS__), .layout = OC_TRANSPOSED}
#define INTS(lo_, hi_, ...) {.draw = OC_INTS, .lo = (lo_), .hi = (hi_), SHAPE(__VA_ARGS__)}
#define MASK(...) {.draw = OC_MASK, .lo = 0, .hi = 1, SHAPE(__VA_ARGS__)}
#define INDEX(n, ...) {.draw = OC_INDEX, .lo = 0, .hi = (n), SHAPE(__VA_ARGS__)}
#define FIXED(lo_, hi_, ...) {.draw = OC_FIXED, .lo = (lo_), .hi = (hi_), SHAPE(__VA_ARGS__)}
#define GRID(lo_, hi_, ...) {.draw = OC_GRID, .lo = (lo_), .hi = (hi_), SHAPE(__VA_ARGS__)}
#define IN(...) .in = {__VA_ARGS__}
#define DIMS(...) .n_dims = OC_COUNT_(__VA_ARGS__), .dims = {__VA_ARGS__}
#define SIZES(...) .n_sizes = OC_COUNT_(__VA_ARGS__), .sizes = {__VA_ARGS__}
#define OC(name_, row, fn_, ...) \
    {.name = (name_), .op = NB_OP_##row, .fn = OC_FN_##fn_, __VA_ARGS__}

static const op_case oc_cases[] = {
    /* binary elementwise: same shapes, broadcasting both ways, 0-d, non-contiguous */
    OC("add_same_shape", ADD, add, IN(UNI(-1, 1, 3, 4), UNI(-1, 1, 3, 4))),
    OC("add_broadcast_both", ADD, add, IN(UNI(-1, 1, 2, 1, 4), UNI(-1, 1, 3, 1))),
    OC("add_transposed", ADD, add, IN(UNI_T(-1, 1, 3, 4), UNI(-1, 1, 4))),
    OC("sub_broadcast", SUB, sub, IN(UNI(-1, 1, 4, 1), UNI(-1, 1, 1, 3))),
    OC("sub_scalar_tensor", SUB, sub, IN(SCALAR(-1, 1), UNI_S(-1, 1, 2, 3))),
    OC("mul_broadcast", MUL, mul, IN(UNI(-1, 1, 2, 3, 4), UNI(-1, 1, 4))),
    OC("mul_noncontiguous", MUL, mul, IN(UNI_T(-1, 1, 3, 4), UNI_S(-1, 1, 3, 4))),
    OC("div_broadcast", DIV, div, IN(UNI(-1, 1, 3, 4), UNI(0.5f, 2, 4))),
    OC("div_broadcast_numerator", DIV, div, IN(UNI(-1, 1, 1, 4), UNI_T(0.5f, 2, 3, 4))),
    OC("pow_same_shape", POW, pow, IN(UNI(0.5f, 2, 3, 4), UNI(-1.5f, 2, 3, 4))),
    OC("pow_broadcast_exponent", POW, pow, IN(UNI(0.5f, 2, 2, 3), SCALAR(0.5f, 2.5f))),
    OC("pow_zero_base", POW, pow, IN(INTS(0, 1, 2, 3), UNI(1.5f, 2.5f, 3)), .nonsmooth = true),
    /* comparisons: small integers, so that ties (eq, le, ge) happen */
    OC("eq_broadcast", EQ, eq, IN(INTS(0, 2, 3, 4), INTS(0, 2, 4))),
    OC("ne_broadcast", NE, ne, IN(INTS(0, 2, 3, 1), INTS(0, 2, 1, 4))),
    OC("lt_same_shape", LT, lt, IN(INTS(0, 2, 3, 4), INTS(0, 2, 3, 4))),
    OC("le_transposed", LE, le, IN(INTS(0, 2, 3, 4), {.draw = OC_INTS, .lo = 0, .hi = 2,
                                                     SHAPE(3, 4), .layout = OC_TRANSPOSED})),
    OC("gt_scalar_tensor", GT, gt, IN(INTS(0, 2, 2, 3), {.draw = OC_INTS, .lo = 0, .hi = 2})),
    OC("ge_broadcast", GE, ge, IN(INTS(0, 2, 2, 1, 3), INTS(0, 2, 4, 1))),
    /* unary elementwise */
    OC("neg", NEG, neg, IN(UNI(-1, 1, 3, 4))),
    OC("exp", EXP, exp, IN(UNI(-2, 2, 3, 4))),
    OC("exp_transposed", EXP, exp, IN(UNI_T(-2, 2, 3, 4))),
    OC("log", LOG, log, IN(UNI(0.2f, 3, 3, 4))),
    OC("sqrt", SQRT, sqrt, IN(UNI(0.2f, 3, 3, 4))),
    OC("abs", ABS, abs, IN(AWAY(-1, 1, 0, 3, 4))),
    OC("abs_at_zero", ABS, abs, IN(INTS(-1, 1, 3, 4)), .nonsmooth = true),
    OC("sin", SIN, sin, IN(UNI(-3, 3, 3, 4))),
    OC("cos", COS, cos, IN(UNI(-3, 3, 3, 4))),
    OC("tanh", TANH, tanh, IN(UNI(-2, 2, 3, 4))),
    OC("tanh_scalar", TANH, tanh, IN(SCALAR(-2, 2))),
    OC("sigmoid", SIGMOID, sigmoid, IN(UNI(-3, 3, 3, 4))),
    OC("relu", RELU, relu, IN(AWAY(-1, 1, 0, 3, 4))),
    OC("relu_strided", RELU, relu, IN({.draw = OC_UNIFORM, .lo = -1, .hi = 1, .n_avoid = 1,
                                       .avoid = {0}, SHAPE(3, 4), .layout = OC_STRIDED})),
    OC("relu_at_zero", RELU, relu, IN(INTS(-1, 1, 3, 4)), .nonsmooth = true),
    OC("pow_scalar_square", POW_SCALAR, pow_scalar, IN(UNI(-2, 2, 3, 4)), .s0 = 2),
    OC("pow_scalar_fraction", POW_SCALAR, pow_scalar, IN(UNI(0.3f, 2, 3, 4)), .s0 = 2.5f),
    OC("pow_scalar_cube_negative", POW_SCALAR, pow_scalar, IN(UNI(-2, -0.3f, 3, 4)), .s0 = 3),
    OC("pow_scalar_negative", POW_SCALAR, pow_scalar, IN(UNI_T(0.5f, 2, 3, 4)), .s0 = -1.5f),
    OC("clamp", CLAMP, clamp, IN(AWAY2(-1.5f, 1.5f, -0.5f, 0.5f, 3, 4)), .s0 = -0.5f, .s1 = 0.5f),
    OC("clamp_min_only", CLAMP, clamp, IN(AWAY(-1, 1, 0.25f, 3, 4)), .s0 = 0.25f, .s1 = INFINITY),
    OC("clamp_max_only", CLAMP, clamp, IN(AWAY(-1, 1, -0.25f, 3, 4)), .s0 = -INFINITY,
       .s1 = -0.25f),
    OC("clamp_at_bounds", CLAMP, clamp, IN(INTS(-2, 2, 3, 4)), .s0 = -1, .s1 = 1,
       .nonsmooth = true),
    OC("add_scalar", ADD_SCALAR, add_scalar, IN(UNI(-1, 1, 3, 4)), .s0 = 1.5f),
    OC("mul_scalar", MUL_SCALAR, mul_scalar, IN(UNI_S(-1, 1, 3, 4)), .s0 = -2.5f),
    /* activations (include/nabla/nn.h); kinks at 0 avoided, and softplus's cut-over to x */
    OC("step", STEP, step, IN(AWAY(-1, 1, 0, 3, 4))),
    OC("leaky_relu", LEAKY_RELU, leaky_relu, IN(AWAY(-1, 1, 0, 3, 4)), .s0 = 0.1f),
    OC("leaky_relu_at_zero", LEAKY_RELU, leaky_relu, IN(INTS(-1, 1, 3, 4)), .s0 = 0.1f,
       .nonsmooth = true),
    OC("elu", ELU, elu, IN(AWAY(-2, 2, 0, 3, 4)), .s0 = 0.5f),
    OC("softplus", SOFTPLUS, softplus, IN(UNI(-3, 3, 3, 4)), .s0 = 1, .s1 = 20),
    OC("softplus_threshold", SOFTPLUS, softplus, IN(AWAY(-2, 3, 1, 3, 4)), .s0 = 2, .s1 = 2),
    OC("silu", SILU, silu, IN(UNI(-3, 3, 3, 4)), .s0 = 1),
    OC("silu_beta", SILU, silu, IN(UNI_T(-3, 3, 3, 4)), .s0 = 1.5f),
    OC("mish", MISH, mish, IN(UNI(-3, 3, 3, 4))),
    OC("gelu", GELU, gelu, IN(UNI(-3, 3, 3, 4))),
    OC("atan", ATAN, atan, IN(UNI(-3, 3, 3, 4))),
    OC("softsign", SOFTSIGN, softsign, IN(AWAY(-2, 2, 0, 3, 4))),
    OC("erf", ERF, erf, IN(UNI(-2.5f, 2.5f, 3, 4))),
    /* matmul: 2-D, transposed operands, batched, broadcast batch, 1-D operands */
    OC("matmul_2d", MATMUL, matmul, IN(UNI(-1, 1, 3, 4), UNI(-1, 1, 4, 2))),
    OC("matmul_transposed_operands", MATMUL, matmul, IN(UNI_T(-1, 1, 3, 4), UNI_T(-1, 1, 4, 5))),
    OC("matmul_batched", MATMUL, matmul, IN(UNI(-1, 1, 2, 3, 4), UNI(-1, 1, 2, 4, 2))),
    OC("matmul_batched_transposed", MATMUL, matmul,
       IN(UNI_T(-1, 1, 2, 3, 4), UNI_S(-1, 1, 2, 4, 2))),
    OC("matmul_batch_times_matrix", MATMUL, matmul, IN(UNI(-1, 1, 2, 3, 4), UNI(-1, 1, 4, 2))),
    OC("matmul_broadcast_batch", MATMUL, matmul, IN(UNI(-1, 1, 2, 1, 2, 3), UNI(-1, 1, 3, 3, 2))),
    OC("matmul_vector_matrix", MATMUL, matmul, IN(UNI(-1, 1, 4), UNI(-1, 1, 4, 3))),
    OC("matmul_matrix_vector", MATMUL, matmul, IN(UNI(-1, 1, 3, 4), UNI(-1, 1, 4))),
    OC("matmul_dot", MATMUL, matmul, IN(UNI(-1, 1, 5), UNI(-1, 1, 5))),
    OC("matmul_batched_vector", MATMUL, matmul, IN(UNI(-1, 1, 2, 3, 4), UNI(-1, 1, 4))),
    /* linear: with and without bias, a 3-D input, a transposed input */
    OC("linear_bias", LINEAR, linear, IN(UNI(-1, 1, 3, 4), UNI(-1, 1, 5, 4), UNI(-1, 1, 5))),
    OC("linear_no_bias", LINEAR, linear, IN(UNI(-1, 1, 3, 4), UNI(-1, 1, 2, 4))),
    OC("linear_3d_input", LINEAR, linear, IN(UNI(-1, 1, 2, 3, 4), UNI(-1, 1, 5, 4), UNI(-1, 1, 5))),
    OC("linear_transposed_input", LINEAR, linear, IN(UNI_T(-1, 1, 3, 4), UNI(-1, 1, 2, 4), UNI(-1, 1, 2))),
    /* reductions: all dims, one dim, several, negative, keepdim on/off, non-contiguous */
    OC("sum_all", SUM, sum, IN(UNI(-1, 1, 2, 3, 4))),
    OC("sum_one_dim", SUM, sum_dims, IN(UNI(-1, 1, 2, 3, 4)), DIMS(1)),
    OC("sum_two_dims_keepdim", SUM, sum_dims, IN(UNI(-1, 1, 2, 3, 4)), DIMS(0, 2), .keepdim = true),
    OC("sum_negative_dim", SUM, sum_dims, IN(UNI(-1, 1, 2, 3, 4)), DIMS(-1)),
    OC("sum_all_dims_keepdim", SUM, sum_dims, IN(UNI(-1, 1, 2, 3)), DIMS(0, 1), .keepdim = true),
    OC("sum_scalar", SUM, sum, IN(SCALAR(-1, 1))),
    OC("sum_transposed", SUM, sum_dims, IN(UNI_T(-1, 1, 3, 4)), DIMS(0)),
    OC("mean_all", MEAN, mean, IN(UNI(-1, 1, 2, 3, 4))),
    OC("mean_negative_dim_keepdim", MEAN, mean_dims, IN(UNI(-1, 1, 2, 3, 4)), DIMS(-2),
       .keepdim = true),
    OC("mean_two_dims", MEAN, mean_dims, IN(UNI_T(-1, 1, 2, 3, 4)), DIMS(0, -1)),
    OC("max_all", MAX, max, IN(DISTINCT(2, 3, 4))),
    OC("max_one_dim", MAX, max_dims, IN(DISTINCT(3, 5)), DIMS(1)),
    OC("max_two_dims_keepdim", MAX, max_dims, IN(DISTINCT(2, 3, 4)), DIMS(0, 2), .keepdim = true),
    OC("max_negative_dim_transposed", MAX, max_dims, IN(DISTINCT_T(4, 3)), DIMS(-1)),
    OC("max_ties", MAX, max_dims, IN(INTS(0, 2, 3, 4)), DIMS(1), .nonsmooth = true),
    OC("min_all", MIN, min, IN(DISTINCT(3, 4))),
    OC("min_negative_dim_keepdim", MIN, min_dims, IN(DISTINCT(2, 3, 4)), DIMS(-1), .keepdim = true),
    OC("min_two_dims", MIN, min_dims, IN(DISTINCT(2, 3, 4)), DIMS(0, 1)),
    OC("min_ties", MIN, min_dims, IN(INTS(0, 2, 4, 3)), DIMS(0), .nonsmooth = true),
    OC("argmax_all", ARGMAX, argmax, IN(DISTINCT(3, 4)), .dim = NB_ALL),
    OC("argmax_dim", ARGMAX, argmax, IN(DISTINCT(2, 3, 4)), .dim = 1),
    OC("argmax_negative_dim_keepdim", ARGMAX, argmax, IN(DISTINCT_T(3, 4)), .dim = -1,
       .keepdim = true),
    OC("argmax_ties_first", ARGMAX, argmax, IN(INTS(0, 1, 4, 5)), .dim = 1),
    /* softmax family: last dim, first dim, a middle dim (inner > 1), 1-D, large logits */
    OC("softmax_last_dim", SOFTMAX, softmax, IN(UNI(-2, 2, 3, 5)), .dim = -1),
    OC("softmax_first_dim", SOFTMAX, softmax, IN(UNI(-2, 2, 4, 3)), .dim = 0),
    OC("softmax_middle_dim", SOFTMAX, softmax, IN(UNI(-2, 2, 2, 3, 4)), .dim = 1),
    OC("softmax_transposed", SOFTMAX, softmax, IN(UNI_T(-2, 2, 3, 4)), .dim = 1),
    OC("softmax_scalar", SOFTMAX, softmax, IN(SCALAR(-2, 2)), .dim = 0),
    OC("softmax_large_logits", SOFTMAX, softmax, IN(UNI(90, 100, 2, 5)), .dim = -1),
    OC("log_softmax_last_dim", LOG_SOFTMAX, log_softmax, IN(UNI(-2, 2, 3, 5)), .dim = -1),
    OC("log_softmax_middle_dim", LOG_SOFTMAX, log_softmax, IN(UNI(-2, 2, 2, 3, 4)), .dim = -2),
    OC("log_softmax_1d", LOG_SOFTMAX, log_softmax, IN(UNI(-2, 2, 6)), .dim = 0),
    OC("log_softmax_large_logits", LOG_SOFTMAX, log_softmax, IN(UNI(-100, -90, 2, 5)), .dim = 1),
    /* views: everything that records RESHAPE, then permute, slice, expand, contiguous */
    OC("reshape", RESHAPE, reshape, IN(UNI(-1, 1, 2, 3, 4)), SIZES(4, 6)),
    OC("reshape_infer", RESHAPE, reshape, IN(UNI(-1, 1, 2, 3, 4)), SIZES(3, -1, 2)),
    OC("reshape_transposed_copies", RESHAPE, reshape, IN(UNI_T(-1, 1, 3, 4)), SIZES(12)),
    OC("view", RESHAPE, view, IN(UNI(-1, 1, 2, 3, 4)), SIZES(6, 4)),
    OC("flatten_inner", RESHAPE, flatten, IN(UNI(-1, 1, 2, 3, 4)), DIMS(1, 2)),
    OC("flatten_all", RESHAPE, flatten, IN(UNI(-1, 1, 2, 3, 4)), DIMS(0, -1)),
    OC("squeeze_dim", RESHAPE, squeeze, IN(UNI(-1, 1, 3, 1, 4)), .dim = 1),
    OC("squeeze_size_not_one", RESHAPE, squeeze, IN(UNI(-1, 1, 3, 4)), .dim = 0),
    OC("squeeze_all", RESHAPE, squeeze, IN(UNI(-1, 1, 1, 3, 1, 4)), .dim = NB_ALL),
    OC("unsqueeze_front", RESHAPE, unsqueeze, IN(UNI(-1, 1, 3, 4)), .dim = 0),
    OC("unsqueeze_negative", RESHAPE, unsqueeze, IN(UNI_T(-1, 1, 3, 4)), .dim = -1),
    OC("transpose", PERMUTE, transpose, IN(UNI(-1, 1, 2, 3, 4)), DIMS(0, 2)),
    OC("transpose_negative", PERMUTE, transpose, IN(UNI(-1, 1, 3, 4)), DIMS(-1, -2)),
    OC("permute", PERMUTE, permute, IN(UNI(-1, 1, 2, 3, 4)), DIMS(2, 0, 1)),
    OC("permute_negative", PERMUTE, permute, IN(UNI_T(-1, 1, 2, 3, 4)), DIMS(-1, 0, 1)),
    OC("slice_rows", SLICE, slice, IN(UNI(-1, 1, 5, 4)), .dim = 0, .start = 1, .end = 4, .step = 1),
    OC("slice_step", SLICE, slice, IN(UNI(-1, 1, 3, 7)), .dim = -1, .start = 0, .end = 7,
       .step = 2),
    OC("slice_negative_start_clamped_end", SLICE, slice, IN(UNI_T(-1, 1, 3, 6)), .dim = 1,
       .start = -4, .end = 100, .step = 3),
    OC("expand", EXPAND, expand, IN(UNI(-1, 1, 3, 1)), SIZES(2, 3, 4)),
    OC("expand_keep_size", EXPAND, expand, IN(UNI(-1, 1, 1, 4)), SIZES(3, -1)),
    OC("contiguous_transposed", CONTIGUOUS, contiguous, IN(UNI_T(-1, 1, 3, 4))),
    OC("contiguous_strided", CONTIGUOUS, contiguous, IN(UNI_S(-1, 1, 2, 3))),
    /* joining: concat and stack of three inputs (stack records CONCAT) */
    OC("concat_dim0", CONCAT, concat, IN(UNI(-1, 1, 2, 3), UNI_T(-1, 1, 3, 3), UNI(-1, 1, 1, 3)),
       .dim = 0),
    OC("concat_last_dim", CONCAT, concat,
       IN(UNI(-1, 1, 2, 1), UNI(-1, 1, 2, 3), UNI_S(-1, 1, 2, 2)), .dim = -1),
    OC("stack_dim0", CONCAT, stack, IN(UNI(-1, 1, 2, 3), UNI(-1, 1, 2, 3), UNI_T(-1, 1, 2, 3)),
       .dim = 0),
    OC("stack_last_dim", CONCAT, stack, IN(UNI(-1, 1, 2, 3), UNI(-1, 1, 2, 3), UNI(-1, 1, 2, 3)),
       .dim = -1),
    /* selection */
    OC("where", WHERE, where, IN(MASK(3, 4), UNI(-1, 1, 3, 4), UNI(-1, 1, 3, 4))),
    OC("where_broadcast", WHERE, where, IN(MASK(3, 1), UNI(-1, 1, 4), UNI_T(-1, 1, 3, 4))),
    OC("gather_dim0_repeated", GATHER, gather, IN(UNI(-1, 1, 3, 4), INDEX(3, 5, 4)), .dim = 0),
    /* cross-entropy on class indices: the fused XENT row (repeated classes, a transposed input) */
    OC("cross_entropy_indices", XENT, cross_entropy, IN(UNI(-2, 2, 6, 5), INDEX(5, 6))),
    OC("cross_entropy_transposed", XENT, cross_entropy, IN(UNI_T(-2, 2, 4, 3), INDEX(3, 4))),
    OC("gather_dim1_repeated", GATHER, gather, IN(UNI_T(-1, 1, 3, 4), INDEX(4, 2, 6)), .dim = 1),
    OC("gather_negative_dim_3d", GATHER, gather, IN(UNI(-1, 1, 2, 3, 4), INDEX(4, 2, 2, 5)),
       .dim = -1),
    OC("index_select_dim0_repeated", INDEX_SELECT, index_select,
       IN(UNI(-1, 1, 4, 3), INDEX(4, 6)), .dim = 0),
    OC("index_select_last_dim_repeated", INDEX_SELECT, index_select,
       IN(UNI_T(-1, 1, 2, 3, 4), INDEX(4, 5)), .dim = -1),
    /* pooling (max: distinct values, so no window has a tie, except the nonsmooth cases that
     * pin torch's choice of the first maximal element) and upsampling */
    OC("max_pool2d_2x2", MAX_POOL2D, max_pool2d, IN(DISTINCT(1, 2, 4, 4)),
       .pool = {.kernel = {2, 2}}),
    OC("max_pool2d_3x3_stride2_pad1", MAX_POOL2D, max_pool2d, IN(DISTINCT(1, 2, 5, 5)),
       .pool = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}),
    OC("max_pool2d_ceil_mode", MAX_POOL2D, max_pool2d, IN(DISTINCT(1, 1, 5, 6)),
       .pool = {.kernel = {2, 2}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true}),
    OC("max_pool2d_nonsquare", MAX_POOL2D, max_pool2d, IN(DISTINCT(2, 1, 4, 6)),
       .pool = {.kernel = {2, 3}, .stride = {1, 2}, .padding = {1, 1}}),
    OC("max_pool2d_unbatched", MAX_POOL2D, max_pool2d, IN(DISTINCT(2, 4, 4)),
       .pool = {.kernel = {2, 2}}),
    OC("max_pool2d_transposed", MAX_POOL2D, max_pool2d, IN(DISTINCT_T(1, 2, 4, 6)),
       .pool = {.kernel = {2, 2}, .stride = {1, 2}}),
    OC("max_pool2d_ties", MAX_POOL2D, max_pool2d, IN(INTS(0, 1, 1, 2, 4, 4)),
       .pool = {.kernel = {2, 2}}, .nonsmooth = true),
    OC("max_pool2d_ties_overlapping_padded", MAX_POOL2D, max_pool2d, IN(INTS(0, 2, 1, 1, 5, 5)),
       .pool = {.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}}, .nonsmooth = true),
    OC("avg_pool2d_2x2", AVG_POOL2D, avg_pool2d, IN(UNI(-1, 1, 2, 2, 4, 4)),
       .pool = {.kernel = {2, 2}}),
    OC("avg_pool2d_pad", AVG_POOL2D, avg_pool2d, IN(UNI(-1, 1, 1, 2, 5, 5)),
       .pool = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}),
    OC("avg_pool2d_exclude_pad", AVG_POOL2D, avg_pool2d, IN(UNI(-1, 1, 1, 2, 5, 5)),
       .pool = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .exclude_pad = true}),
    OC("avg_pool2d_ceil_mode", AVG_POOL2D, avg_pool2d, IN(UNI(-1, 1, 1, 1, 6, 6)),
       .pool = {.kernel = {3, 3}, .stride = {2, 2}, .ceil_mode = true}),
    OC("avg_pool2d_ceil_mode_pad", AVG_POOL2D, avg_pool2d, IN(UNI(-1, 1, 1, 1, 6, 6)),
       .pool = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true}),
    OC("avg_pool2d_ceil_mode_exclude_pad", AVG_POOL2D, avg_pool2d, IN(UNI(-1, 1, 1, 1, 6, 6)),
       .pool = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true,
                .exclude_pad = true}),
    OC("avg_pool2d_unbatched_nonsquare", AVG_POOL2D, avg_pool2d, IN(UNI(-1, 1, 2, 4, 5)),
       .pool = {.kernel = {2, 3}, .stride = {1, 1}, .padding = {1, 1}}),
    OC("avg_pool2d_strided", AVG_POOL2D, avg_pool2d, IN(UNI_S(-1, 1, 1, 2, 4, 4)),
       .pool = {.kernel = {2, 2}}),
    OC("global_avg_pool2d", MEAN, global_avg_pool2d, IN(UNI(-1, 1, 2, 3, 4, 4))),
    OC("global_avg_pool2d_unbatched_transposed", MEAN, global_avg_pool2d,
       IN(UNI_T(-1, 1, 3, 4, 5))),
    OC("upsample_nearest2d_x2", UPSAMPLE_NEAREST2D, upsample_nearest2d,
       IN(UNI(-1, 1, 1, 2, 3, 3)), .scale = {2, 2}),
    OC("upsample_nearest2d_2x3", UPSAMPLE_NEAREST2D, upsample_nearest2d,
       IN(UNI(-1, 1, 2, 1, 3, 2)), .scale = {2, 3}),
    OC("upsample_nearest2d_unbatched_transposed", UPSAMPLE_NEAREST2D, upsample_nearest2d,
       IN(UNI_T(-1, 1, 2, 3, 4)), .scale = {3, 1}),
    OC("upsample_bilinear2d_x2", UPSAMPLE_BILINEAR2D, upsample_bilinear2d,
       IN(UNI(-1, 1, 1, 2, 3, 4)), .scale = {2, 2}),
    OC("upsample_bilinear2d_x2_align_corners", UPSAMPLE_BILINEAR2D, upsample_bilinear2d,
       IN(UNI(-1, 1, 1, 2, 3, 4)), .scale = {2, 2}, .align_corners = true),
    OC("upsample_bilinear2d_3x2_strided", UPSAMPLE_BILINEAR2D, upsample_bilinear2d,
       IN(UNI_S(-1, 1, 1, 1, 3, 3)), .scale = {3, 2}),
    OC("upsample_bilinear2d_3x2_align_corners", UPSAMPLE_BILINEAR2D, upsample_bilinear2d,
       IN(UNI_T(-1, 1, 1, 1, 3, 4)), .scale = {3, 2}, .align_corners = true),
    /* convolution: bias or not, stride, padding, 'same' (an odd total pads one more at the end),
     * dilation, groups, depthwise, 1x1 (no im2col), one unbatched sample, non-contiguous
     * inputs; the transposed conv with stride, padding, output_padding (also by dilation, past
     * the last tap), groups, dilation */
    OC("conv2d_bias", CONV2D, conv2d,
       IN(UNI(-1, 1, 2, 2, 5, 5), UNI(-1, 1, 3, 2, 3, 3), UNI(-1, 1, 3))),
    OC("conv2d_no_bias", CONV2D, conv2d, IN(UNI(-1, 1, 1, 3, 4, 5), UNI(-1, 1, 2, 3, 2, 2))),
    OC("conv2d_stride2", CONV2D, conv2d,
       IN(UNI(-1, 1, 1, 2, 6, 7), UNI(-1, 1, 2, 2, 3, 3), UNI(-1, 1, 2)),
       .conv = {.stride = {2, 2}}),
    OC("conv2d_padding1", CONV2D, conv2d,
       IN(UNI(-1, 1, 2, 1, 4, 4), UNI(-1, 1, 2, 1, 3, 3), UNI(-1, 1, 2)),
       .conv = {.padding = {1, 1}}),
    OC("conv2d_asymmetric", CONV2D, conv2d, IN(UNI(-1, 1, 1, 2, 5, 6), UNI(-1, 1, 2, 2, 2, 3)),
       .conv = {.stride = {1, 2}, .padding = {2, 0}}),
    OC("conv2d_same_even_kernel", CONV2D, conv2d,
       IN(UNI(-1, 1, 1, 2, 5, 6), UNI(-1, 1, 2, 2, 3, 4), UNI(-1, 1, 2)), .conv = {.same = true}),
    OC("conv2d_same_dilated", CONV2D, conv2d, IN(UNI(-1, 1, 1, 2, 5, 5), UNI(-1, 1, 2, 2, 3, 2)),
       .conv = {.same = true, .dilation = {2, 3}}),
    OC("conv2d_dilation2", CONV2D, conv2d,
       IN(UNI(-1, 1, 1, 2, 7, 7), UNI(-1, 1, 2, 2, 3, 3), UNI(-1, 1, 2)),
       .conv = {.padding = {1, 1}, .dilation = {2, 2}}),
    OC("conv2d_groups2", CONV2D, conv2d,
       IN(UNI(-1, 1, 1, 4, 5, 5), UNI(-1, 1, 6, 2, 3, 3), UNI(-1, 1, 6)), .conv = {.groups = 2}),
    OC("conv2d_depthwise", CONV2D, conv2d,
       IN(UNI(-1, 1, 2, 3, 5, 5), UNI(-1, 1, 3, 1, 3, 3), UNI(-1, 1, 3)),
       .conv = {.padding = {1, 1}, .groups = 3}),
    OC("conv2d_1x1", CONV2D, conv2d,
       IN(UNI(-1, 1, 2, 3, 4, 4), UNI(-1, 1, 5, 3, 1, 1), UNI(-1, 1, 5))),
    OC("conv2d_1x1_strided_input", CONV2D, conv2d,
       IN(UNI_S(-1, 1, 1, 3, 3, 4), UNI(-1, 1, 2, 3, 1, 1))),
    OC("conv2d_unbatched", CONV2D, conv2d,
       IN(UNI(-1, 1, 2, 5, 5), UNI(-1, 1, 3, 2, 3, 3), UNI(-1, 1, 3))),
    OC("conv2d_transposed_input", CONV2D, conv2d,
       IN(UNI_T(-1, 1, 1, 2, 5, 6), UNI(-1, 1, 2, 2, 3, 3)),
       .conv = {.stride = {2, 1}, .padding = {1, 1}}),
    OC("conv_transpose2d_bias", CONV_TRANSPOSE2D, conv_transpose2d,
       IN(UNI(-1, 1, 2, 2, 3, 3), UNI(-1, 1, 2, 3, 3, 3), UNI(-1, 1, 3))),
    OC("conv_transpose2d_stride2", CONV_TRANSPOSE2D, conv_transpose2d,
       IN(UNI(-1, 1, 1, 2, 3, 3), UNI(-1, 1, 2, 2, 3, 3), UNI(-1, 1, 2)),
       .conv_t = {.stride = {2, 2}}),
    OC("conv_transpose2d_padding", CONV_TRANSPOSE2D, conv_transpose2d,
       IN(UNI(-1, 1, 1, 2, 4, 4), UNI(-1, 1, 2, 2, 3, 3)),
       .conv_t = {.stride = {2, 2}, .padding = {1, 1}}),
    OC("conv_transpose2d_output_padding", CONV_TRANSPOSE2D, conv_transpose2d,
       IN(UNI(-1, 1, 1, 2, 3, 4), UNI(-1, 1, 2, 2, 3, 3), UNI(-1, 1, 2)),
       .conv_t = {.stride = {2, 3}, .padding = {1, 0}, .output_padding = {1, 2}}),
    OC("conv_transpose2d_groups", CONV_TRANSPOSE2D, conv_transpose2d,
       IN(UNI(-1, 1, 1, 4, 3, 3), UNI(-1, 1, 4, 2, 2, 2), UNI(-1, 1, 4)),
       .conv_t = {.groups = 2}),
    OC("conv_transpose2d_dilation", CONV_TRANSPOSE2D, conv_transpose2d,
       IN(UNI(-1, 1, 1, 2, 3, 3), UNI(-1, 1, 2, 2, 3, 3)),
       .conv_t = {.output_padding = {1, 0}, .dilation = {2, 2}}),
    OC("conv_transpose2d_unbatched_transposed", CONV_TRANSPOSE2D, conv_transpose2d,
       IN(UNI_T(-1, 1, 2, 3, 4), UNI(-1, 1, 2, 3, 2, 2)), .conv_t = {.stride = {1, 2}}),
    /* the ops made for backwards (their gradients are the forwards they came from): sizes is
     * the shape of the forward's input (of the weight for conv2d_weight) */
    OC("slice_backward_rows", SLICE_BACKWARD, slice_backward, IN(UNI(-1, 1, 3, 4)), SIZES(5, 4),
       .dim = 0, .start = 1, .end = 4, .step = 1),
    OC("slice_backward_step_strided", SLICE_BACKWARD, slice_backward, IN(UNI_S(-1, 1, 3, 3)),
       SIZES(3, 7), .dim = 1, .start = 0, .end = 7, .step = 3),
    OC("scatter_add_dim0_repeated", SCATTER_ADD, scatter_add,
       IN(UNI(-1, 1, 4, 3), INDEX(3, 4, 3)), SIZES(3, 4), .dim = 0),
    OC("scatter_add_dim1_transposed", SCATTER_ADD, scatter_add,
       IN(UNI_T(-1, 1, 3, 5), INDEX(2, 3, 5)), SIZES(4, 2), .dim = 1),
    OC("index_add_dim0_repeated", INDEX_ADD, index_add, IN(UNI(-1, 1, 5, 3), INDEX(4, 5)),
       SIZES(4, 3), .dim = 0),
    OC("index_add_last_dim_transposed", INDEX_ADD, index_add,
       IN(UNI_T(-1, 1, 2, 3, 4), INDEX(3, 4)), SIZES(2, 3, 3), .dim = 2),
    OC("avg_pool2d_backward_pad", AVG_POOL2D_BACKWARD, avg_pool2d_backward,
       IN(UNI(-1, 1, 1, 2, 3, 3)), SIZES(1, 2, 5, 5),
       .pool = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}),
    OC("avg_pool2d_backward_ceil_mode_exclude_pad", AVG_POOL2D_BACKWARD, avg_pool2d_backward,
       IN(UNI_S(-1, 1, 1, 1, 4, 4)), SIZES(1, 1, 6, 6),
       .pool = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true,
                .exclude_pad = true}),
    OC("upsample_nearest2d_backward_2x3", UPSAMPLE_NEAREST2D_BACKWARD, upsample_nearest2d_backward,
       IN(UNI(-1, 1, 2, 1, 6, 6)), SIZES(2, 1, 3, 2), .scale = {2, 3}),
    OC("upsample_bilinear2d_backward_x2", UPSAMPLE_BILINEAR2D_BACKWARD,
       upsample_bilinear2d_backward, IN(UNI(-1, 1, 1, 2, 6, 8)), SIZES(1, 2, 3, 4),
       .scale = {2, 2}),
    OC("upsample_bilinear2d_backward_3x2_align_corners", UPSAMPLE_BILINEAR2D_BACKWARD,
       upsample_bilinear2d_backward, IN(UNI_T(-1, 1, 3, 9, 8)), SIZES(3, 3, 4),
       .scale = {3, 2}, .align_corners = true),
    OC("conv2d_weight_stride2", CONV2D_WEIGHT, conv2d_weight,
       IN(UNI(-1, 1, 1, 2, 6, 7), UNI(-1, 1, 1, 2, 2, 3)), SIZES(2, 2, 3, 3),
       .conv = {.stride = {2, 2}}),
    OC("conv2d_weight_groups_dilated_padded", CONV2D_WEIGHT, conv2d_weight,
       IN(UNI(-1, 1, 2, 4, 5, 5), UNI_T(-1, 1, 2, 6, 3, 3)), SIZES(6, 2, 3, 3),
       .conv = {.padding = {1, 1}, .dilation = {2, 2}, .groups = 2}),
    /* backward_hook: one tensor (the identity, a view), several of any layout (a copy) */
    OC("backward_hook_one", BACKWARD_HOOK, backward_hook, IN(UNI_T(-1, 1, 3, 4))),
    OC("backward_hook_three", BACKWARD_HOOK, backward_hook,
       IN(UNI_T(-1, 1, 3, 4), SCALAR(-1, 1), UNI_S(-1, 1, 2, 3))),
    /* fake quantization (start, end: the range; dim: the axis; step: the estimator; s0: the
     * grad_factor).  The estimator cases keep x away from where the mask or the codes change
     * under the finite differences' steps: per tensor (s = 2, z = 3, range [0, 15]) x avoids
     * the range's edges s (qmin - z - 1/2) = -7 and s (qmax - z + 1/2) = 25; per channel
     * (s in {1, 2}, z in {2, 3}) x stays inside the range; the learnable ones keep x / s within
     * 0.25 of 0 (inside) or map every x above the range (outside), with z off half-integers.
     * The nonsmooth cases cross every edge for the golden test: signed ranges, a transposed x,
     * grad_factor, the plain estimator. */
    OC("fake_quantize_per_tensor", FAKE_QUANT_TENSOR, fake_quantize_per_tensor,
       IN(AWAY2(-12, 30, -7, 25, 3, 4), FIXED(2, 2, 1), FIXED(3, 3, 1)), .start = 0, .end = 15,
       .estimator = true),
    OC("fake_quantize_per_tensor_plain_ste", FAKE_QUANT_TENSOR, fake_quantize_per_tensor,
       IN(UNI(-12, 30, 3, 4), FIXED(2, 2, 1), FIXED(3, 3, 1)), .start = 0, .end = 15,
       .step = NB_STE_PLAIN, .estimator = true),
    OC("fake_quantize_per_tensor_signed_wide", FAKE_QUANT_TENSOR, fake_quantize_per_tensor,
       IN(UNI_T(-30, 30, 3, 4), FIXED(3, 3, 1), FIXED(-1, -1, 1)), .start = -8, .end = 7,
       .nonsmooth = true),
    OC("fake_quantize_per_channel", FAKE_QUANT_CHANNEL, fake_quantize_per_channel,
       IN(UNI(-2, 12, 2, 3, 4), FIXED(1, 2, 3), FIXED(2, 3, 3)), .dim = 1, .start = 0,
       .end = 15, .estimator = true),
    OC("fake_quantize_per_channel_wide_last_axis", FAKE_QUANT_CHANNEL, fake_quantize_per_channel,
       IN(UNI_S(-40, 40, 3, 4), FIXED(1, 3, 4), FIXED(-2, 2, 4)), .dim = -1, .start = -8,
       .end = 7, .nonsmooth = true),
    OC("fake_quantize_learnable_per_tensor_inside", FAKE_QUANT_LSQ_TENSOR,
       fake_quantize_learnable_per_tensor, IN(UNI(-0.2f, 0.2f, 3, 4), UNI(0.9f, 1.1f, 1),
       UNI(2.1f, 2.4f, 1)), .start = 0, .end = 15, .s0 = 1, .estimator = true),
    OC("fake_quantize_learnable_per_tensor_outside", FAKE_QUANT_LSQ_TENSOR,
       fake_quantize_learnable_per_tensor, IN(UNI(20, 30, 3, 4), UNI(0.9f, 1.1f, 1),
       UNI(2.1f, 2.4f, 1)), .start = 0, .end = 15, .s0 = 0.5f, .estimator = true),
    OC("fake_quantize_learnable_per_tensor_wide", FAKE_QUANT_LSQ_TENSOR,
       fake_quantize_learnable_per_tensor, IN(UNI_T(-3, 3, 3, 4), UNI(0.2f, 0.3f, 1),
       UNI(-1.4f, -0.6f, 1)), .start = -8, .end = 7, .s0 = 0.25f, .nonsmooth = true),
    OC("fake_quantize_learnable_per_channel_inside", FAKE_QUANT_LSQ_CHANNEL,
       fake_quantize_learnable_per_channel, IN(UNI(-0.2f, 0.2f, 2, 3, 2), UNI(0.9f, 1.1f, 3),
       UNI(2.1f, 2.4f, 3)), .dim = 1, .start = 0, .end = 15, .s0 = 1, .estimator = true),
    OC("fake_quantize_learnable_per_channel_outside", FAKE_QUANT_LSQ_CHANNEL,
       fake_quantize_learnable_per_channel, IN(UNI(-30, -20, 4, 3), UNI(0.9f, 1.1f, 3),
       UNI(2.1f, 2.4f, 3)), .dim = -1, .start = 0, .end = 15, .s0 = 2, .estimator = true),
    OC("fake_quantize_learnable_per_channel_wide", FAKE_QUANT_LSQ_CHANNEL,
       fake_quantize_learnable_per_channel, IN(UNI_S(-3, 3, 4, 3), UNI(0.2f, 0.4f, 4),
       UNI(-2.6f, 3.4f, 4)), .dim = 0, .start = -8, .end = 7, .s0 = 0.5f, .nonsmooth = true),
    /* B-spline bases of order 3, x partly outside the extended grid where every basis is 0,
     * and the first derivative of order 5's (C4 at the knots, so finite differences of its
     * first and second derivatives hold wherever x falls) */
    OC("bspline_basis_cubic", BSPLINE, bspline_basis, IN(UNI(-1.2f, 1.2f, 5, 2), GRID(-1.6f, 1.6f, 2, 10)),
       .dim = 3),
    OC("bspline_basis_outside_grid", BSPLINE, bspline_basis,
       IN(UNI_S(-2.5f, 2.5f, 4, 3), GRID(-1.5f, 1.5f, 3, 9)), .dim = 3),
    OC("bspline_basis_derivative", BSPLINE, bspline_basis,
       IN(UNI_T(-1, 1, 4, 2), GRID(-2.5f, 2.5f, 2, 13)), .dim = 5, .start = 1),
    /* layer norm over the last dim (dim) dims, eps s0; keepdim: the second input is the bias */
    OC("layer_norm_affine", LAYER_NORM, layer_norm,
       IN(UNI(-2, 2, 2, 3, 5), UNI(0.5f, 1.5f, 5), UNI(-1, 1, 5)), .dim = 1, .s0 = 1e-5f),
    OC("layer_norm_two_dims_strided", LAYER_NORM, layer_norm,
       IN(UNI_S(-2, 2, 3, 2, 4), UNI(0.5f, 1.5f, 2, 4), UNI(-1, 1, 2, 4)), .dim = 2, .s0 = 1e-5f),
    OC("layer_norm_plain_transposed", LAYER_NORM, layer_norm, IN(UNI_T(-1, 1, 4, 3)), .dim = 1,
       .s0 = 0.1f),
    OC("layer_norm_weight_one_row", LAYER_NORM, layer_norm, IN(UNI(-1, 1, 6), UNI(0.5f, 1.5f, 6)),
       .dim = 1, .s0 = 1e-5f),
    OC("layer_norm_bias_only", LAYER_NORM, layer_norm, IN(UNI(-1, 1, 3, 4), UNI(-1, 1, 4)),
       .dim = 1, .s0 = 1e-3f, .keepdim = true),
    /* scaled dot-product attention (keepdim: causal; s0: the scale, 0 for 1 / sqrt(D)) */
    OC("sdpa", ATTENTION, scaled_dot_product_attention,
       IN(UNI(-1, 1, 2, 2, 3, 4), UNI(-1, 1, 2, 2, 5, 4), UNI(-1, 1, 2, 2, 5, 3))),
    OC("sdpa_causal_scaled_transposed", ATTENTION, scaled_dot_product_attention,
       IN(UNI_T(-1, 1, 1, 2, 4, 3), UNI(-1, 1, 1, 2, 4, 3), UNI_S(-1, 1, 1, 2, 4, 2)),
       .keepdim = true, .s0 = 0.5f),
    /* one recurrent layer-direction: xp [T, B, G H], w_hh [G H, H], b_hh [G H], s0 [S, B, H]
     * (h0, then c0 for an LSTM) and a mask [T, B] (0: the row skips the step) */
    OC("rnn_tanh_layer", RNN_TANH_LAYER, rnn_tanh_layer,
       IN(UNI(-1, 1, 3, 2, 3), UNI(-1, 1, 3, 3), UNI(-1, 1, 3), UNI(-1, 1, 1, 2, 3))),
    OC("rnn_relu_layer_reverse_mask", RNN_RELU_LAYER, rnn_relu_layer,
       IN(UNI(-1, 1, 4, 2, 3), UNI_T(-1, 1, 3, 3), UNI(-1, 1, 3), UNI(-1, 1, 1, 2, 3),
          MASK(4, 2)), .keepdim = true),
    OC("lstm_layer", LSTM_LAYER, lstm_layer,
       IN(UNI(-1, 1, 3, 2, 8), UNI(-1, 1, 8, 2), UNI(-1, 1, 8), UNI(-1, 1, 2, 2, 2))),
    OC("lstm_layer_reverse_strided", LSTM_LAYER, lstm_layer,
       IN(UNI(-1, 1, 4, 1, 12), UNI_T(-1, 1, 12, 3), UNI(-1, 1, 12), UNI_S(-1, 1, 2, 1, 3)),
       .keepdim = true),
    OC("lstm_layer_mask", LSTM_LAYER, lstm_layer,
       IN(UNI(-1, 1, 4, 3, 8), UNI(-1, 1, 8, 2), UNI(-1, 1, 8), UNI(-1, 1, 2, 3, 2), MASK(4, 3))),
    OC("gru_layer", GRU_LAYER, gru_layer,
       IN(UNI(-1, 1, 3, 2, 6), UNI(-1, 1, 6, 2), UNI(-1, 1, 6), UNI(-1, 1, 1, 2, 2))),
    OC("gru_layer_reverse_strided_mask", GRU_LAYER, gru_layer,
       IN(UNI(-1, 1, 4, 3, 9), UNI_T(-1, 1, 9, 3), UNI(-1, 1, 9), UNI_S(-1, 1, 1, 3, 3),
          MASK(4, 3)), .keepdim = true),
};
#define OC_N_CASES ((int)(sizeof oc_cases / sizeof oc_cases[0]))

#undef SHAPE
#undef UNI
#undef UNI_T
#undef UNI_S
#undef AWAY
#undef AWAY2
#undef SCALAR
#undef DISTINCT
#undef DISTINCT_T
#undef INTS
#undef MASK
#undef INDEX
#undef FIXED
#undef GRID
#undef IN
#undef DIMS
#undef SIZES
#undef OC

/* ---- drawing inputs */

static inline int64_t oc_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

/* SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed stream for test data. */
static inline uint64_t oc_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline double oc_uniform01(uint64_t *state) {
    return (double)(oc_next(state) >> 11) * 0x1p-53;
}

/* Whether v is a value the spec may produce (draws use it to reject; the golden test uses it
 * to confirm that the generator kept to the spec). */
static inline bool oc_value_ok(const oc_input *s, float v) {
    switch (s->draw) {
    case OC_UNIFORM:
    case OC_DISTINCT:
        if (!(v >= s->lo && v <= s->hi)) return false;
        for (int k = 0; k < s->n_avoid; k++)
            if (fabsf(v - s->avoid[k]) < OC_MARGIN) return false;
        return true;
    case OC_INTS:
    case OC_FIXED: return v >= s->lo && v <= s->hi && v == floorf(v);
    case OC_MASK: return v == 0.0f || v == 1.0f;
    case OC_GRID: return v >= s->lo && v <= s->hi;
    case OC_INDEX: return v >= 0 && v < s->hi && v == floorf(v);
    default: return false;
    }
}

/* Draws the n logical values of input s into v (as floats; indices are whole numbers). */
static inline void oc_draw_values(const oc_input *s, uint64_t *rng, float *v) {
    int64_t n = oc_numel(s->ndim, s->shape);
    if (s->draw == OC_DISTINCT) { /* Fisher-Yates shuffle of the evenly spaced points */
        for (int64_t i = 0; i < n; i++)
            v[i] = s->lo + (s->hi - s->lo) * ((float)i + 0.5f) / (float)n;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)(oc_next(rng) % (uint64_t)(i + 1));
            float t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
        return;
    }
    if (s->draw == OC_GRID) {
        int64_t m = s->shape[s->ndim - 1];
        for (int64_t i = 0; i < n; i++)
            v[i] = (float)(s->lo + (s->hi - s->lo) * (double)(i % m) / (double)(m - 1));
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        do {
            double u = oc_uniform01(rng);
            switch (s->draw) {
            case OC_UNIFORM: v[i] = (float)(s->lo + (s->hi - s->lo) * u); break;
            case OC_INTS:
            case OC_FIXED: v[i] = (float)(s->lo + floor(u * (s->hi - s->lo + 1))); break;
            case OC_MASK: v[i] = u < 0.5 ? 0.0f : 1.0f; break;
            default: v[i] = (float)floor(u * s->hi); break;
            }
        } while (!oc_value_ok(s, v[i]));
    }
}

static inline bool oc_is_float(const oc_input *s) {
    return s->draw == OC_UNIFORM || s->draw == OC_DISTINCT || s->draw == OC_INTS;
}

/* The number of elements of the leaf behind input s (more than the logical ones if strided). */
static inline int64_t oc_leaf_numel(const oc_input *s) {
    int64_t n = oc_numel(s->ndim, s->shape);
    if (s->layout != OC_STRIDED) return n;
    int64_t last = s->shape[s->ndim - 1];
    return last ? n / last * (2 * last + 1) : 0;
}

/* How the op sees a leaf of layout s->layout (see the header comment); for a contiguous
 * layout the leaf itself.  Applied to a leaf's gradient it gives the logical gradient. */
static inline nb_tensor *oc_view_of(const oc_input *s, nb_tensor *leaf) {
    switch (s->layout) {
    case OC_TRANSPOSED: return nb_transpose(leaf, -1, -2);
    case OC_STRIDED: return nb_slice(leaf, -1, 1, 2 * s->shape[s->ndim - 1] + 1, 2);
    default: return leaf;
    }
}

/* Builds the leaf holding the logical values v in s's layout, in the current scope (or on the
 * heap, when none is open).  Float leaves (oc_is_float) may then be given requires_grad; call
 * oc_view_of after that. */
static inline nb_tensor *oc_make_leaf(const oc_input *s, const float *v) {
    int64_t n = oc_numel(s->ndim, s->shape);
    if (s->draw == OC_INDEX) {
        int32_t ix[256];
        for (int64_t i = 0; i < n && i < 256; i++) ix[i] = (int32_t)v[i];
        return n <= 256 ? nb_from_int32(ix, s->ndim, s->shape) : NULL;
    }
    if (s->layout == OC_TRANSPOSED) { /* no scope may be open: the temporaries are freed */
        nb_tensor *logical = nb_from_data(v, s->ndim, s->shape);
        nb_tensor *t = nb_transpose(logical, -1, -2), *leaf = nb_contiguous(t);
        nb_tensor_free(t);
        nb_tensor_free(logical);
        return leaf;
    }
    if (s->layout != OC_STRIDED) return nb_from_data(v, s->ndim, s->shape);
    int64_t shape[OC_MAX_RANK], last = s->shape[s->ndim - 1];
    memcpy(shape, s->shape, sizeof shape);
    shape[s->ndim - 1] = 2 * last + 1;
    int64_t padded = last ? n / last * (2 * last + 1) : 0;
    float *d = malloc(sizeof(float) * (size_t)padded);
    for (int64_t i = 0; i < padded; i++) d[i] = NAN;
    for (int64_t i = 0; i < n; i++) d[(i / last) * (2 * last + 1) + 1 + 2 * (i % last)] = v[i];
    nb_tensor *leaf = nb_from_data(d, s->ndim, shape);
    free(d);
    return leaf;
}

/* Whether t's graph contains a node of the given op (the case really exercises its row). */
static inline bool oc_graph_has_op(const nb_tensor *t, nb_op_id op) {
    if (!t || !t->node) return false;
    if (t->node->op == (int)op) return true;
    for (int i = 0; i < t->node->n_in; i++)
        if (oc_graph_has_op(t->node->in[i], op)) return true;
    return false;
}

static inline const op_case *oc_find(const char *name) {
    for (int i = 0; i < OC_N_CASES; i++)
        if (strcmp(oc_cases[i].name, name) == 0) return &oc_cases[i];
    return NULL;
}

#endif
