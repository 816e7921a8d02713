/*
 * backend.h — the kernel interface.  Each device provides one nb_backend: plain functions on
 * raw pointers, sizes and strides (never tensors), outputs first, gradients prefixed d.  Ops
 * look the backend up by the device of their inputs and never test the device themselves.
 *
 * Memory belongs to the backend.  A tensor's data pointer is the device's: code above src/backend
 * may offset it by whole elements and pass it to these functions, never read or write through
 * it.  Every byte of tensor memory is allocated, filled and copied here (the CPU backend's copies
 * are memcpy, its fills loops); host code stages what it must read (validation, printing, files)
 * through copy_d2h and copy_h2d.  NB_BACKEND=guarded proves the rule: it serves the CPU device
 * with pointers the host cannot dereference (see guarded/guarded.c).
 *
 * Layout words: "contiguous" means row-major with no gaps; (outer, r, inner) describes a
 * contiguous array seen as [outer, r, inner] where the middle dim is reduced or normalised.
 */
#ifndef NB_BACKEND_H
#define NB_BACKEND_H

#include "nabla.h"

/* The highest B-spline order the bspline kernels take (their work arrays are k + 1 long). */
#define NB_BSPLINE_MAX_K 15

typedef enum {
    NB_UN_NEG, NB_UN_EXP, NB_UN_LOG, NB_UN_SQRT, NB_UN_ABS, NB_UN_SIN, NB_UN_COS,
    NB_UN_TANH, NB_UN_SIGMOID, NB_UN_RELU,
    NB_UN_POW,   /* x ** p0 */
    NB_UN_CLAMP, /* min(max(x, p0), p1) */
    NB_UN_ADDS,  /* x + p0 */
    NB_UN_MULS,  /* x * p0 */
    NB_UN_STEP,       /* [x > 0] */
    NB_UN_LEAKY_RELU, /* x > 0 ? x : p0 x */
    NB_UN_ELU,        /* x > 0 ? x : p0 (e^x - 1) */
    NB_UN_SOFTPLUS,   /* log(1 + e^(p0 x)) / p0, x itself where p0 x > p1 */
    NB_UN_SILU,       /* x sigmoid(p0 x) */
    NB_UN_MISH,       /* x tanh(softplus(x)) */
    NB_UN_GELU,       /* x Phi(x), Phi the standard normal CDF */
    NB_UN_ATAN,
    NB_UN_SOFTSIGN,   /* x / (1 + |x|) */
    NB_UN_ERF,        /* the error function, 2/sqrt(pi) int_0^x e^(-t^2) dt */
    NB_UN_COUNT
} nb_unary_op;

typedef enum {
    NB_BIN_ADD, NB_BIN_SUB, NB_BIN_MUL, NB_BIN_DIV, NB_BIN_POW,
    NB_BIN_EQ, NB_BIN_NE, NB_BIN_LT, NB_BIN_LE, NB_BIN_GT, NB_BIN_GE,
    NB_BIN_COUNT
} nb_binary_op;

typedef enum { NB_RED_SUM, NB_RED_MAX, NB_RED_MIN, NB_RED_COUNT } nb_reduce_op;

/* A 2-D pool over `planes` (N C) contiguous [h, w] planes into [oh, ow] planes: window (i, j)
 * covers rows i sh - ph .. + kh and columns j sw - pw .. + kw, clipped to the input.
 * exclude_pad (average only): divide by the elements covered, not the window's padded size. */
typedef struct {
    int64_t planes, h, w, oh, ow;
    int kh, kw, sh, sw, ph, pw;
    bool exclude_pad;
} nb_pool2d_geom;

typedef enum { NB_UP_NEAREST, NB_UP_BILINEAR, NB_UP_BILINEAR_ALIGNED } nb_upsample_mode;

/* One 2-D convolution as im2col sees it (conv2d, and its adjoint conv_transpose2d): the image
 * [n, c, h, w], the grid [n, oc, oh, ow], the weight [oc, c / groups, kh, kw].  Grid cell (i, j)
 * and tap (ki, kj) read image pixel (i sh - ph + ki dh, j sw - pw + kj dw), zero outside the
 * image; padding at the bottom and right is implied by oh and ow. */
typedef struct {
    int64_t n, c, h, w, oc, oh, ow;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw, groups;
} nb_conv2d_geom;

/* Adam (decay_factor 1) and AdamW (weight_decay 0, decay_factor 1 - lr weight_decay). */
typedef struct {
    float step_size;             /* lr / (1 - beta1^step) */
    float bias_correction2_sqrt; /* sqrt(1 - beta2^step) */
    float beta1, one_minus_beta1, beta2, one_minus_beta2, eps;
    float weight_decay; /* Adam's L2 term */
    float decay_factor; /* AdamW's decoupled decay */
} nb__adam_scalars;

/* BatchNorm folded into the layer before it (eval only): per output channel o of rows row,
 * s = g[o] / sqrt(rv[o] + eps), fw = s w, fb = s (b[o] - rm[o]) + beta[o]; g, b, beta may be
 * NULL (1, 0, 0). */
typedef struct {
    const float *w, *b, *rm, *rv, *g, *beta;
    int64_t out, row;
    float eps;
} nb__batchnorm_fold_args;

/* Fake quantization (cpu/quant.c): which integer code q of x the gradient tests, the zero
 * point z it uses (torch's kernels differ there; all use inv = 1.0f / scale):
 *   NB_FQ_AFFINE       z = clamp(nearbyint(zp)), q = z + nearbyint(x inv)  (the forward)
 *   NB_FQ_LSQ_TENSOR   z = trunc(clamp(zp + 0.5)), q = nearbyint(z + x inv)
 *                      (_fake_quantize_learnable_per_tensor_affine_backward)
 *   NB_FQ_LSQ_CHANNEL  z = clamp(nearbyint(zp)), q = nearbyint(z + x inv)
 *                      (_fake_quantize_learnable_per_channel_affine_backward) */
typedef enum { NB_FQ_AFFINE, NB_FQ_LSQ_TENSOR, NB_FQ_LSQ_CHANNEL } nb_fq_rule;
/* Requantization of int32 GEMM accumulators (fbgemm's ReQuantizeOutput and ReQuantizeForFloat):
 * the output kind, and which of the accumulators' indices the scale and bias follow. */
typedef enum { NB_QOUT_U8, NB_QOUT_S8, NB_QOUT_F32, NB_QOUT_COUNT } nb_qout;
typedef enum { NB_QAXIS_TENSOR, NB_QAXIS_ROW, NB_QAXIS_COL, NB_QAXIS_COUNT } nb_qaxis;
typedef struct {
    nb_qout out;
    nb_qaxis axis;      /* scale[0] for all, scale[i] for row i, or scale[j] for column j */
    const float *scale; /* [1], [m] or [n] by axis */
    const float *bias;  /* NULL, or indexed as scale */
    int32_t zero_point; /* the integer output's, in its range (ignored for float32) */
    bool relu;
} nb__requant_args;

/* Scaled dot-product attention (cpu/attention.c): bh = batch x heads independent problems,
 * q [bh, t, d], k [bh, s, d], v [bh, s, dv], o [bh, t, dv], all contiguous.  Scores
 * x_ij = scale q_i . k_j + mask(b, h, i, j), with mask read through mask_stride (0 where
 * broadcast; mask NULL: none), minus infinity for j > i when causal (torch's is_causal, top-left
 * aligned).  Dropout p > 0 drops weight ij when u < p, u the Philox uniform of counter
 * offset + (n t + i) s + j of seed (n the problem), and scales the kept ones by 1 / (1 - p). */
typedef struct {
    int64_t bh, heads, t, s, d, dv;
    float scale, dropout_p;
    bool causal;
    const float *mask;
    int64_t mask_stride[4]; /* [batch, head, query, key] */
    uint64_t seed, offset;
} nb_attention_geom;

/* One recurrent layer-direction over all its steps (cpu/rnn.c): T steps of B rows of H units
 * of the cell `cell` (an RNN with tanh or relu, an LSTM, a GRU: G = 1, 1, 4, 3 gates of H
 * units, S = 1, 1, 2, 1 states), processed from the last step to the first when reverse.  mask
 * [T, B] (NULL: every step valid): where mask[t, b] is 0 the step is skipped for row b, its
 * output is zero and its states pass through unchanged (torch's packed sequences). */
typedef struct {
    int64_t steps, batch, hidden;
    nb_rnn_mode cell;
    bool reverse;
    const float *mask;
} nb_rnn_geom;

/* The gates (G) and states (S) of a cell, and the width of the forward's reserve per row of a
 * step (cpu/rnn.c says what it holds): 2H for an RNN, 7H for an LSTM, 5H for a GRU. */
static inline int64_t nb__rnn_gates(nb_rnn_mode cell) {
    return cell == NB_RNN_LSTM ? 4 : cell == NB_RNN_GRU ? 3 : 1;
}
static inline int64_t nb__rnn_states(nb_rnn_mode cell) { return cell == NB_RNN_LSTM ? 2 : 1; }
static inline int64_t nb__rnn_reserve(nb_rnn_mode cell) {
    return cell == NB_RNN_LSTM ? 7 : cell == NB_RNN_GRU ? 5 : 2;
}

typedef struct nb_backend {
    const char *name;
    bool host_memory; /* its data pointers are host pointers, which nb_data may hand out */
    /* ---- memory (see the top of this file).  alloc: nbytes, NB_ALIGN-aligned, NULL with
     * NB_ERR_MEMORY set on failure; free takes the same size back. */
    void *(*alloc)(size_t nbytes);
    void (*free)(void *p, size_t nbytes);
    /* dst[i] = *value for i < n, elements of elem_size bytes */
    void (*fill)(void *dst, const void *value, size_t elem_size, int64_t n);
    void (*copy_h2d)(void *dst, const void *host_src, size_t nbytes);
    void (*copy_d2h)(void *host_dst, const void *src, size_t nbytes);
    void (*copy_d2d)(void *dst, const void *src, size_t nbytes);
    /* out[i] = uniform [0,1) float from counter offset + i of seed (Philox, core/rng.c) */
    void (*uniform)(float *out, int64_t n, uint64_t seed, uint64_t offset);
    /* y[i] = f(x[i]), contiguous */
    void (*unary)(nb_unary_op op, float *y, const float *x, int64_t n, float p0, float p1);
    /* dx[i] = dy[i] * f'(x[i]); y = f(x) is passed for ops whose derivative reads it */
    void (*unary_backward)(nb_unary_op op, float *dx, const float *x, const float *y,
                           const float *dy, int64_t n, float p0, float p1);
    /* out (contiguous, shape) = a op b; a, b read through strides (0 where broadcast) */
    void (*binary)(nb_binary_op op, float *out, const float *a, const int64_t *sa, const float *b,
                   const int64_t *sb, int ndim, const int64_t *shape);
    /* out = c != 0 ? a : b, all read through strides */
    void (*where)(float *out, const float *c, const int64_t *sc, const float *a, const int64_t *sa,
                  const float *b, const int64_t *sb, int ndim, const int64_t *shape);
    /* out = x, both read/written through strides; elem_size bytes per element */
    void (*copy)(void *out, const int64_t *so, const void *x, const int64_t *sx, int ndim,
                 const int64_t *shape, size_t elem_size);
    /* out[i] = x[i with coordinate dim replaced by idx[i]]; out and idx contiguous of shape */
    void (*gather)(float *out, const float *x, const int64_t *sx, const int32_t *idx, int ndim,
                   const int64_t *shape, int dim);
    /* dx[i with coordinate dim replaced by idx[i]] += dy[i]; dy and idx contiguous of shape */
    void (*scatter_add)(float *dx, const int64_t *sdx, const float *dy, const int32_t *idx,
                        int ndim, const int64_t *shape, int dim);
    /* C = alpha op(A) op(B) + beta C, row-major, op = transpose when ta/tb */
    void (*gemm)(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
    /* out[o, i] = reduce over r of x[o, r, i] */
    void (*reduce)(nb_reduce_op op, float *out, const float *x, int64_t outer, int64_t r,
                   int64_t inner);
    /* out[o, i] = first r index of the maximum of x[o, :, i] */
    void (*argmax)(int32_t *out, const float *x, int64_t outer, int64_t r, int64_t inner);
    /* softmax (or log-softmax) over r */
    void (*softmax)(float *y, const float *x, int64_t outer, int64_t r, int64_t inner, bool log);
    /* softmax: dx = y (dy - sum dy y);  log-softmax: dx = dy - exp(y) sum dy */
    void (*softmax_backward)(float *dx, const float *y, const float *dy, int64_t outer, int64_t r,
                             int64_t inner, bool log);
    /* Cross-entropy of logits x [n, c] against class indices t [n] (all in 0..c-1):
     * returns scale * sum over rows of (logsumexp(x_i) - x_i[t_i]); e [n, c], unless NULL,
     * gets the exp(x_ij - max_j x_ij) it sums, for the backward */
    float (*xent)(float *e, const float *x, const int32_t *t, int64_t n, int64_t c, float scale);
    /* its gradient: dx = g scale (softmax(x_i) - onehot(t_i)), softmax from the forward's e
     * when it is not NULL (the same bits: the same exps summed in the same order), else from x */
    void (*xent_backward)(float *dx, const float *x, const float *e, const int32_t *t, int64_t n,
                          int64_t c, float g_scale);
    /* dst[i] += src[i] */
    void (*accumulate)(float *dst, const float *src, int64_t n);
    /* pools (torch's CPU semantics; backwards overwrite dx): y = max / mean of each window;
     * max_pool2d_backward finds each window's argmax in x again (the first maximal element) */
    void (*max_pool2d)(float *y, const float *x, const nb_pool2d_geom *g);
    void (*max_pool2d_backward)(float *dx, const float *x, const float *dy,
                                const nb_pool2d_geom *g);
    void (*avg_pool2d)(float *y, const float *x, const nb_pool2d_geom *g);
    void (*avg_pool2d_backward)(float *dx, const float *dy, const nb_pool2d_geom *g);
    /* upsampling of `planes` [h, w] planes to [h sh, w sw] by integer factors, and its
     * transpose (overwrites dx) */
    void (*upsample2d)(nb_upsample_mode mode, float *y, const float *x, int64_t planes, int64_t h,
                       int64_t w, int sh, int sw);
    void (*upsample2d_backward)(nb_upsample_mode mode, float *dx, const float *dy, int64_t planes,
                                int64_t h, int64_t w, int sh, int sw);
    /* convolution (all contiguous; ws: scratch of conv2d_workspace(g) bytes, 64-byte aligned,
     * enough for any of the three passes).  With col(x) the im2col columns of an image, per
     * group: conv2d: y = w col(x) + b, b [oc] or NULL.  conv2d_backward_data: dx = col2im(w^T dy)
     * + b, b [c] or NULL (conv2d's input gradient, conv_transpose2d's forward).
     * conv2d_backward_weight: dw = sum over samples of dy col(x)^T, and db [oc] (unless NULL)
     * = the sum of dy over samples and cells, conv2d's bias gradient.  All overwrite. */
    size_t (*conv2d_workspace)(const nb_conv2d_geom *g);
    void (*conv2d)(float *y, const float *x, const float *w, const float *b,
                   const nb_conv2d_geom *g, void *ws);
    void (*conv2d_backward_data)(float *dx, const float *dy, const float *w, const float *b,
                                 const nb_conv2d_geom *g, void *ws);
    void (*conv2d_backward_weight)(float *dw, float *db, const float *x, const float *dy,
                                   const nb_conv2d_geom *g, void *ws);
    /* ---- optimiser updates over n elements, outputs first, torch-exact (cpu/update.c says
     * which torch calls each line repeats).  The scalars are the ones torch's tensor calls see,
     * rounded to float as torch rounds a Python float that scales a float32 tensor. */
    void (*sgd_update)(float *p, float *buf, const float *g, int64_t n, float lr,
                       float weight_decay, float momentum, float one_minus_dampening,
                       bool nesterov, bool first_step);
    void (*adagrad_update)(float *p, float *sum, const float *g, int64_t n, float clr,
                           float weight_decay, float eps);
    void (*rmsprop_update)(float *p, float *square_avg, float *buf, float *grad_avg,
                           const float *g, int64_t n, float lr, float alpha,
                           float one_minus_alpha, float eps, float weight_decay, float momentum);
    void (*adam_update)(float *p, float *exp_avg, float *exp_avg_sq, float *max_exp_avg_sq,
                        const float *g, int64_t n, const nb__adam_scalars *k);
    /* ---- gradient clipping: ||x||_p as torch.norm returns it (max |x|, NaN winning, for an
     * infinite p), and x = clamp(x, -c, c) with NaN kept */
    float (*norm)(const float *x, int64_t n, double p);
    void (*clamp_abs)(float *x, int64_t n, float c);
    /* ---- BatchNorm: running statistics, rm = (1 - mom) rm + mom mean and
     * rv = (1 - mom) rv + mom var unbias, over c channels; and the fold into a layer */
    void (*batchnorm_running)(float *rm, float *rv, const float *mean, const float *var, int64_t c,
                              float mom, float unbias);
    void (*batchnorm_fold)(float *fw, float *fb, const nb__batchnorm_fold_args *a);
    /* ---- for gradients of gradients: at[p, i, j] = the offset in plane p of x (r w + c) of
     * window (i, j)'s maximum, the element max_pool2d_backward sends dy[p, i, j] to */
    void (*max_pool2d_indices)(int32_t *at, const float *x, const nb_pool2d_geom *g);
    /* ---- fake quantization of x [outer, channels, inner] with one scale and zero point per
     * channel (cpu/quant.c): y = (clamp(q, qmin, qmax) - z) scale (rule NB_FQ_AFFINE); and for
     * the gradients, mask = [qmin <= q <= qmax] and, when k is not NULL,
     * k = clamp(q, qmin, qmax) - z, with q and z as rule says */
    void (*fake_quant)(float *y, const float *x, const float *scale, const float *zp,
                       int64_t outer, int64_t channels, int64_t inner, int64_t qmin, int64_t qmax);
    void (*fake_quant_mask)(float *mask, float *k, const float *x, const float *scale,
                            const float *zp, int64_t outer, int64_t channels, int64_t inner,
                            int64_t qmin, int64_t qmax, nb_fq_rule rule);
    /* ---- B-spline bases (cpu/bspline.c) of x [n, in], one knot vector per input in
     * grid [in, m] (non-decreasing), order k <= NB_BSPLINE_MAX_K: b [n, in, m - 1 - k] = the
     * deriv-th derivative of every basis at x (0 outside [t_0, t_{m-1})); and the gradient of
     * that, dx [n, in] = sum over bases of dy [n, in, m - 1 - k] times the (deriv + 1)-th
     * derivative.  Both overwrite. */
    void (*bspline)(float *b, const float *x, const float *grid, int64_t n, int64_t in,
                    int64_t m, int k, int deriv);
    void (*bspline_backward)(float *dx, const float *x, const float *grid, const float *dy,
                             int64_t n, int64_t in, int64_t m, int k, int deriv);
    /* ---- low-precision GEMMs (cpu/qgemm.c), row-major: op(A) [m, k] is A(i, p) = a[i lda + p]
     * or, when ta, a[p lda + i]; op(B) [k, n] is B(p, j) = b[p ldb + j] or, when tb (a Linear
     * layer's weight [n, k]), b[j ldb + p]; C [m, n] is c[i ldc + j].
     * int8 (fbgemm's and oneDNN's u8 x s8 scheme: activations uint8 with a zero point, weights
     * int8, symmetric when zb = 0), exact: c = sum over p < k of (A(i, p) - za) (B(p, j) - zb),
     * overwritten; k <= 32768, so that no sum leaves int32.  Without ta, each row of a (the
     * last too) may be read up to min(lda, k rounded up to 4) bytes; those past k are ignored. */
    void (*gemm_u8s8s32)(int32_t *c, int64_t ldc, bool ta, bool tb, int64_t m, int64_t n,
                         int64_t k, const uint8_t *a, int64_t lda, uint8_t za, const int8_t *b,
                         int64_t ldb, int8_t zb);
    /* bfloat16 (raw bits) x bfloat16 -> float32: c = (accumulate ? c : 0) + sum over p of
     * A(i, p) B(p, j), in float32, the terms in vdpbf16ps's order (cpu/qgemm.c says which) */
    void (*gemm_bf16)(float *c, int64_t ldc, bool accumulate, bool ta, bool tb, int64_t m,
                      int64_t n, int64_t k, const uint16_t *a, int64_t lda, const uint16_t *b,
                      int64_t ldb);
    /* y [m, n] (row stride ldy, elements of q->out) from int32 acc [m, n] (row stride ldacc),
     * with s, b the scale and bias of (i, j) by q->axis (b 0 without bias):
     *   integer out: y = clamp(rint((acc + b) s) + zero_point, lo, hi), rint rounding half to
     *     even, [lo, hi] = [0, 255] (uint8) or [-128, 127] (int8), lo raised to zero_point by
     *     relu; a NaN goes to lo (b is in accumulator units: fbgemm's bias / (sa sw));
     *   float32 out: y = acc s + b (two roundings), negatives to 0 by relu (NaN kept). */
    void (*requantize)(void *y, int64_t ldy, const int32_t *acc, int64_t ldacc, int64_t m,
                       int64_t n, const nb__requant_args *q);
    /* ---- mixed precision (cpu/half.c): y = x rounded to nearest even to `to` (NB_BF16 or
     * NB_F16) and kept as float32, so that float32 kernels compute on half-precision values
     * (autocast); past the format's largest finite value (bfloat16's, or 65504: from 65520 on)
     * +-Inf, a NaN stays NaN.  y may be x. */
    void (*round_half)(float *y, const float *x, int64_t n, nb_dtype to);
    /* ---- around the int8 GEMM (cpu/qconvert.c): quantize: y [n] (uint8 or int8 by out) =
     * clamp(z + nearbyint(x (1.0f / scale)), lo, hi), torch's quantize_per_tensor, NaN to lo;
     * dequantize: y [n] = (q - z) scale, q uint8 or int8 by in. */
    void (*quantize)(void *y, const float *x, int64_t n, nb_qout out, float scale,
                     int32_t zero_point);
    void (*dequantize)(float *y, const void *q, int64_t n, nb_qout in, float scale,
                       int32_t zero_point);
    /* The int8 convolution (cpu/qconv.c), groups 1, all contiguous: the exact int32 sums
     *   acc[b, o, i, j] = sum over (ci, ki, kj) of (x[b, ci, r, s] - zx) (w[o, ci, ki, kj] - wzp[o])
     * of uint8 images x [n, c, h, w] by int8 weights w [oc, c, kh, kw], pixel (r, s) = (i sh - ph
     * + ki dh, j sw - pw + kj dw) taken as zx outside the image (its term 0), requantized as
     * requantize does on them seen as [n oh ow, oc] (so q->axis NB_QAXIS_COL is per output
     * channel) into y [n, oc, oh, ow] of q->out's elements; with pool (NULL: none; integer
     * results only; its h and w are oh and ow), y [n, oc, pool->oh, pool->ow] the largest code
     * of each pool window.  wzp [oc] is host memory, like the geometry; ws: scratch of
     * qconv2d_workspace(g) bytes. */
    size_t (*qconv2d_workspace)(const nb_conv2d_geom *g);
    void (*qconv2d)(void *y, const uint8_t *x, uint8_t zx, const int8_t *w, const int32_t *wzp,
                    const nb__requant_args *q, const nb_pool2d_geom *pool, void *ws,
                    const nb_conv2d_geom *g);
    /* ---- attention (geometry above), flash-attention style: no [t, s] matrix in memory.
     * attention: o = dropout(softmax(x)) v and lse [bh, t] = log sum_j exp x_ij per row (a
     * row with every key masked gets NaN, as torch's softmax).  attention_backward overwrites
     * dq, dk, dv from dout, recomputing the weights from q, k and lse (Dao 2023, alg. 2). */
    void (*attention)(float *o, float *lse, const float *q, const float *k, const float *v,
                      const nb_attention_geom *g);
    void (*attention_backward)(float *dq, float *dk, float *dv, const float *q, const float *k,
                               const float *v, const float *o, const float *lse,
                               const float *dout, const nb_attention_geom *g);
    /* ---- LayerNorm over rows [rows, d] (cpu/layernorm.c, formulas there): layer_norm writes
     * y [rows, d] = (x - mean) rstd w + b and each row's mean [rows] and rstd [rows] =
     * 1 / sqrt(var + eps) (biased var); w, b [d] may be NULL (1 and 0).  layer_norm_backward
     * overwrites dx [rows, d], dw [d] and db [d] (each may be NULL: not wanted) from dy, x and the
     * forward's mean and rstd. */
    void (*layer_norm)(float *y, float *mean, float *rstd, const float *x, const float *w,
                       const float *b, int64_t rows, int64_t d, float eps);
    void (*layer_norm_backward)(float *dx, float *dw, float *db, const float *x, const float *mean,
                                const float *rstd, const float *w, const float *dy, int64_t rows,
                                int64_t d);
    /* ---- recurrent layers, one layer-direction (geometry above; the formulas and the reserve's
     * layout at the top of cpu/rnn.c).  rnn_layer: y [T + S, B, H] (each step's h, then the
     * final states) and reserve [T, B, nb__rnn_reserve(cell) H] from xp [T, B, G H] (the
     * input projection, b_ih included), w [G H, H] (weight_hh), b [G H] (bias_hh) and s0
     * [S, B, H].  rnn_layer_backward overwrites dxp [T, B, G H], dw [G H, H], db [G H] and ds0
     * [S, B, H] from dy [T + S, B, H], w and the forward's reserve; work [T, B, G H] is scratch
     * for a GRU (NULL for the others). */
    void (*rnn_layer)(float *y, float *reserve, const float *xp, const float *w, const float *b,
                      const float *s0, const nb_rnn_geom *g);
    void (*rnn_layer_backward)(float *dxp, float *dw, float *db, float *ds0, float *work,
                               const float *w, const float *reserve, const float *dy,
                               const nb_rnn_geom *g);
} nb_backend;

/* The backend serving a device (backend.c); NULL for a device this build lacks. */
const nb_backend *nb__backend(nb_device device);
extern const nb_backend nb__cpu_backend;
/* The CPU backend behind pointers the host cannot dereference (guarded/guarded.c). */
extern const nb_backend nb__guarded_backend;

#endif
