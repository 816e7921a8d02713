/*
 * pool.c — pooling and upsampling on NCHW tensors, as torch.nn.functional's max_pool2d,
 * avg_pool2d, adaptive_avg_pool2d(x, 1) and interpolate(scale_factor=s, mode='nearest' or
 * 'bilinear').  x is [N, C, H, W] or one sample [C, H, W]; the kernels see its N C planes.
 * (torch's interpolate reads a 3-D input as [N, C, L], for 1-D modes; these 2-D upsamplings read
 * it as one [C, H, W] sample, as the pools do.)
 *
 * Output sizes of the pools (torch's pooling_output_shape, aten/src/ATen/native/Pool.h):
 *   out = floor((in + 2 pad - k + (ceil_mode ? stride - 1 : 0)) / stride) + 1
 * and in ceil mode one less when the last window would start at or past in + pad, i.e. in the
 * right padding: every window must start inside the input or the left padding.  Padding is at
 * most half the kernel, so every window covers at least one input element.
 *
 * Backwards (each a kernel of the backend):
 *   max:      dx[argmax of window (i, j)] += g[i, j]
 *   avg:      dx[window (i, j)] += g[i, j] / divisor(i, j)
 *   nearest:  dx[src(i), src(j)] += g[i, j]
 *   bilinear: g[i, j] goes to its four sources with the forward's weights
 * The max pool's argmax is found again in the backward, from the input the node keeps, by the
 * very scan code the forward ran (the first maximal element in window order, as torch).  torch
 * keeps an index tensor instead; here the node holds only its inputs and output, and one more
 * pass over the windows (about a third of the backward's time for MaxPool2d(2), itself a few
 * percent of the convolution before it) costs less than keeping an int32 index per output for
 * the life of the graph — and the two scans cannot disagree.
 *
 * Second order (create_graph).  The backwards of the average pool and the upsamplings are
 * linear in g and do not read x: each is an op of its own (avg_pool2d_backward,
 * upsample_*2d_backward, torch's aten ops of those names) whose backward is the forward op
 * again, the adjoint of an adjoint; recording off, they are the kernels above.  The max pool's
 * backward keeps its kernel when recording is off; with create_graph it is made of ops: the
 * argmax of each window as an offset in its plane (the forward's scan again), then g
 * scattered there by scatter_add over the planes seen flat, whose backward gathers at those
 * offsets, as torch's MaxPool2DWithIndicesBackwardBackward0 does.  x gets no gradient from a
 * gradient (it is piecewise constant in x, as torch says too).
 *
 * The global average pool is not a row of its own: it is nb_mean_dims over H and W with keepdim,
 * which is exactly what torch runs for adaptive_avg_pool2d(x, 1) (hence MeanBackward1).
 */
#include "op.h"

#include <string.h>

/* N C, H, W of a 3-D or 4-D shape; false (and an NB_ERR_SHAPE naming the op) otherwise. */
static bool planes_of(const char *op, int ndim, const int64_t *shape, int64_t *planes,
                      int64_t *h, int64_t *w) {
    if (ndim != 3 && ndim != 4)
        return nb__fail(NB_ERR_SHAPE, "%s: input %s: needs a 4-D [N, C, H, W] or 3-D [C, H, W] "
                        "tensor", op, nb__shape_str(ndim, shape)), false;
    *planes = nb__numel(ndim - 2, shape);
    *h = shape[ndim - 2];
    *w = shape[ndim - 1];
    return true;
}

/* The args of a node with its input's shape added: what an op made for the backward needs to
 * know of the forward's input. */
static nb_op_args with_input_shape(const nb_node *node) {
    nb_op_args args = node->args;
    args.ndim = node->in[0]->ndim;
    memcpy(args.shape, node->in[0]->shape, sizeof args.shape);
    return args;
}

/* Whether g has the shape of the output (oh, ow planes) of an op on `shape`. */
static bool grad_fits(const char *op, const nb_tensor *g, int ndim, const int64_t *shape,
                      int64_t oh, int64_t ow) {
    bool fits = g->ndim == ndim && g->shape[ndim - 2] == oh && g->shape[ndim - 1] == ow;
    for (int d = 0; fits && d < ndim - 2; d++) fits = g->shape[d] == shape[d];
    if (!fits)
        nb__fail(NB_ERR_SHAPE, "%s: gradient %s does not match the output (%lldx%lld planes) of "
                 "an input %s", op, NB_SHP(g), (long long)oh, (long long)ow,
                 nb__shape_str(ndim, shape));
    return fits;
}

/* floor(a / b) for b > 0, a of either sign (torch's div_rtn). */
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

int64_t nb__pool_out_size(int64_t in, int k, int stride, int pad, bool ceil_mode) {
    int64_t out = floor_div(in + 2 * pad - k + (ceil_mode ? stride - 1 : 0), stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;
    return out;
}

/* The geometry of the pool of an input of shape (ndim, shape) under args; false (and an error)
 * when the output is empty. */
static bool pool_geom(nb_op_id op, int ndim, const int64_t *shape, const nb_op_args *args,
                      nb_pool2d_geom *g) {
    const char *name = nb__ops[op].name;
    if (!planes_of(name, ndim, shape, &g->planes, &g->h, &g->w)) return false;
    const int *k = args->pool.kernel, *s = args->pool.stride, *p = args->pool.padding;
    bool ceil_mode = args->pool.ceil_mode;
    g->kh = k[0], g->kw = k[1], g->sh = s[0], g->sw = s[1], g->ph = p[0], g->pw = p[1];
    g->exclude_pad = args->pool.exclude_pad;
    g->oh = nb__pool_out_size(g->h, k[0], s[0], p[0], ceil_mode);
    g->ow = nb__pool_out_size(g->w, k[1], s[1], p[1], ceil_mode);
    if (nb__numel(3, shape + ndim - 3) == 0) /* as torch, only the batch may be empty */
        return nb__fail(NB_ERR_SHAPE, "%s: input %s: cannot pool empty channels or planes", name,
                        nb__shape_str(ndim, shape)), false;
    if (g->oh < 1 || g->ow < 1)
        return nb__fail(NB_ERR_SHAPE, "%s: input %s with kernel %dx%d, stride %dx%d, padding "
                        "%dx%d%s gives an output of %lldx%lld: the kernel is larger than the "
                        "padded input", name, nb__shape_str(ndim, shape), k[0], k[1], s[0], s[1],
                        p[0], p[1], ceil_mode ? " (ceil mode)" : "", (long long)g->oh,
                        (long long)g->ow),
               false;
    return true;
}

nb_tensor *nb__fwd_pool(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)n;
    nb_pool2d_geom g;
    if (!pool_geom(op, in[0]->ndim, in[0]->shape, args, &g)) return NULL;
    int64_t shape[4];
    for (int d = 0; d < in[0]->ndim - 2; d++) shape[d] = in[0]->shape[d];
    shape[in[0]->ndim - 2] = g.oh;
    shape[in[0]->ndim - 1] = g.ow;
    nb_tensor *x = nb__contig(in[0]), *out = x ? nb__new(NB_F32, in[0]->ndim, shape) : NULL;
    if (out && op == NB_OP_MAX_POOL2D) nb__be(x)->max_pool2d(nb__f32(out), nb__f32(x), &g);
    else if (out) nb__be(x)->avg_pool2d(nb__f32(out), nb__f32(x), &g);
    if (x != in[0]) nb_tensor_free(x);
    return out;
}

/* With create_graph, the max pool's dx as ops (see the top of the file). */
static nb_tensor *max_pool_backward_graph(nb_tensor *a, nb_tensor *dout, const nb_pool2d_geom *g) {
    if (g->h * g->w > INT32_MAX) /* the offsets are int32, as scatter_add's indices */
        return nb__fail(NB_ERR_GRAPH, "max_pool2d: create_graph: planes of %lldx%lld elements are "
                        "more than int32 offsets reach", (long long)g->h, (long long)g->w);
    nb__temps tmp = {0};
    int64_t grid[2] = {g->planes, g->oh * g->ow}, image[2] = {g->planes, g->h * g->w};
    nb_tensor *x = nb__contig(a);
    if (x != a) x = nb__tmp(&tmp, x);
    nb_tensor *at = x ? nb__tmp(&tmp, nb__new(NB_I32, 2, grid)) : NULL;
    if (at) nb__be(a)->max_pool2d_indices(nb__i32(at), nb__f32(x), g);
    nb_tensor *flat = at ? nb__tmp(&tmp, nb_reshape(dout, 2, grid)) : NULL;
    nb_tensor *dx = flat ? nb__tmp(&tmp, nb__scatter_add(flat, 1, at, 2, image)) : NULL;
    dx = dx ? nb__tmp(&tmp, nb_reshape(dx, a->ndim, a->shape)) : NULL;
    return nb__temps_end(&tmp, dx);
}

nb_status nb__bwd_pool(const nb_node *node, nb_tensor *dout, nb_tensor **din) {
    nb_tensor *a = node->in[0];
    if (node->op == NB_OP_AVG_POOL2D) {
        nb_op_args args = with_input_shape(node);
        din[0] = nb__apply(NB_OP_AVG_POOL2D_BACKWARD, 1, &dout, &args);
        return din[0] ? NB_OK : nb_error_code();
    }
    nb_pool2d_geom g;
    if (!pool_geom(node->op, a->ndim, a->shape, &node->args, &g)) return nb_error_code();
    if (nb_is_grad_enabled()) {
        din[0] = max_pool_backward_graph(a, dout, &g);
        return din[0] ? NB_OK : nb_error_code();
    }
    nb_tensor *dy = nb__contig(dout), *x = dy ? nb__contig(a) : NULL;
    if (!x || !(din[0] = nb__new(NB_F32, a->ndim, a->shape))) return nb_error_code();
    nb__be(a)->max_pool2d_backward(nb__f32(din[0]), nb__f32(x), nb__f32(dy), &g);
    return NB_OK;
}

/* avg_pool2d_backward: dx of shape args->shape from g, as the backend's kernel. */
nb_tensor *nb__fwd_pool_backward(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)n;
    nb_pool2d_geom g;
    if (!pool_geom(op, args->ndim, args->shape, args, &g) ||
        !grad_fits(nb__ops[op].name, in[0], args->ndim, args->shape, g.oh, g.ow))
        return NULL;
    nb_tensor *dy = nb__contig(in[0]), *dx = dy ? nb__new(NB_F32, args->ndim, args->shape) : NULL;
    if (dx) nb__be(dy)->avg_pool2d_backward(nb__f32(dx), nb__f32(dy), &g);
    if (dy != in[0]) nb_tensor_free(dy);
    return dx;
}

/* The pool is linear: the gradient of its backward is the pool of the gradient. */
nb_status nb__bwd_pool_backward(const nb_node *node, nb_tensor *dout, nb_tensor **din) {
    din[0] = nb__apply(NB_OP_AVG_POOL2D, 1, &dout, &node->args);
    return din[0] ? NB_OK : nb_error_code();
}

/* Checks the options that do not depend on x (torch's messages say the same) and fills in the
 * defaults. */
static bool pool_args(nb_op_id op, const nb_pool2d_opts *o, nb_op_args *args) {
    const char *name = nb__ops[op].name;
    if (!o) return nb__fail(NB_ERR_ARG, "%s: no options (the kernel size is required)", name), false;
    for (int d = 0; d < 2; d++) {
        if (o->kernel[d] < 1 || o->stride[d] < 0 || o->padding[d] < 0)
            return nb__fail(NB_ERR_ARG, "%s: kernel %dx%d, stride %dx%d, padding %dx%d: the "
                            "kernel must be positive, stride and padding not negative", name,
                            o->kernel[0], o->kernel[1], o->stride[0], o->stride[1],
                            o->padding[0], o->padding[1]), false;
        if (o->padding[d] > o->kernel[d] / 2)
            return nb__fail(NB_ERR_ARG, "%s: padding %dx%d is more than half the kernel %dx%d",
                            name, o->padding[0], o->padding[1], o->kernel[0], o->kernel[1]), false;
        args->pool.kernel[d] = o->kernel[d];
        args->pool.stride[d] = o->stride[d] ? o->stride[d] : o->kernel[d];
        args->pool.padding[d] = o->padding[d];
    }
    args->pool.ceil_mode = o->ceil_mode;
    args->pool.exclude_pad = op == NB_OP_AVG_POOL2D && o->exclude_pad;
    return true;
}

static nb_tensor *pool(nb_op_id op, nb_tensor *x, const nb_pool2d_opts *o) {
    if (!nb__alive(x)) return nb__fail_input(nb__ops[op].name, x);
    nb_op_args args = {0};
    if (!pool_args(op, o, &args)) return NULL;
    return nb__apply(op, 1, &x, &args);
}

/* A backward's target: a 3-D or 4-D shape of sizes not negative, into args. */
static bool target_shape(const char *op, int ndim, const int64_t *shape, nb_op_args *args) {
    bool ok = (ndim == 3 || ndim == 4) && shape;
    for (int d = 0; ok && d < ndim; d++) ok = shape[d] >= 0;
    if (!ok)
        return nb__fail(NB_ERR_SHAPE, "%s: the input shape must be 4-D [N, C, H, W] or 3-D "
                        "[C, H, W] with sizes not negative", op), false;
    args->ndim = ndim;
    memcpy(args->shape, shape, sizeof(int64_t) * (size_t)ndim);
    return true;
}

nb_tensor *nb__avg_pool2d_backward(nb_tensor *g, int ndim, const int64_t *shape,
                                   const nb_pool2d_opts *opts) {
    const char *name = nb__ops[NB_OP_AVG_POOL2D_BACKWARD].name;
    if (!nb__alive(g)) return nb__fail_input(name, g);
    nb_op_args args = {0};
    if (!pool_args(NB_OP_AVG_POOL2D, opts, &args) || !target_shape(name, ndim, shape, &args))
        return NULL;
    return nb__apply(NB_OP_AVG_POOL2D_BACKWARD, 1, &g, &args);
}

nb_tensor *nb_max_pool2d(nb_tensor *x, const nb_pool2d_opts *opts) {
    return pool(NB_OP_MAX_POOL2D, x, opts);
}

nb_tensor *nb_avg_pool2d(nb_tensor *x, const nb_pool2d_opts *opts) {
    return pool(NB_OP_AVG_POOL2D, x, opts);
}

nb_tensor *nb_global_avg_pool2d(nb_tensor *x) {
    if (!nb__alive(x)) return nb__fail_input("global_avg_pool2d", x);
    if (x->ndim != 3 && x->ndim != 4)
        return nb__fail(NB_ERR_SHAPE, "global_avg_pool2d: input %s: needs a 4-D [N, C, H, W] or "
                        "3-D [C, H, W] tensor", NB_SHP(x));
    return nb_mean_dims(x, 2, (int[]){-2, -1}, true);
}

/* ---- upsampling */

static nb_upsample_mode mode_of(int op, const nb_op_args *args) {
    if (op == NB_OP_UPSAMPLE_NEAREST2D || op == NB_OP_UPSAMPLE_NEAREST2D_BACKWARD)
        return NB_UP_NEAREST;
    return args->pool.align_corners ? NB_UP_BILINEAR_ALIGNED : NB_UP_BILINEAR;
}

nb_tensor *nb__fwd_upsample(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *args) {
    (void)n;
    int64_t planes, h, w, shape[4];
    const int *s = args->pool.scale;
    if (!planes_of(nb__ops[op].name, in[0]->ndim, in[0]->shape, &planes, &h, &w)) return NULL;
    if ((double)nb__numel(in[0]->ndim, in[0]->shape) * s[0] * s[1] > 0x1p62)
        return nb__fail(NB_ERR_SHAPE, "%s: input %s scaled by %dx%d: the output is too large",
                        nb__ops[op].name, NB_SHP(in[0]), s[0], s[1]);
    for (int d = 0; d < in[0]->ndim - 2; d++) shape[d] = in[0]->shape[d];
    shape[in[0]->ndim - 2] = h * s[0];
    shape[in[0]->ndim - 1] = w * s[1];
    nb_tensor *x = nb__contig(in[0]), *out = x ? nb__new(NB_F32, in[0]->ndim, shape) : NULL;
    if (out)
        nb__be(x)->upsample2d(mode_of(op, args), nb__f32(out), nb__f32(x), planes, h, w, s[0],
                              s[1]);
    if (x != in[0]) nb_tensor_free(x);
    return out;
}

nb_status nb__bwd_upsample(const nb_node *node, nb_tensor *dout, nb_tensor **din) {
    nb_op_args args = with_input_shape(node);
    nb_op_id back = node->op == NB_OP_UPSAMPLE_NEAREST2D ? NB_OP_UPSAMPLE_NEAREST2D_BACKWARD
                                                        : NB_OP_UPSAMPLE_BILINEAR2D_BACKWARD;
    din[0] = nb__apply(back, 1, &dout, &args);
    return din[0] ? NB_OK : nb_error_code();
}

/* upsample_*2d_backward: dx of shape args->shape from g, as the backend's kernel. */
nb_tensor *nb__fwd_upsample_backward(nb_op_id op, nb_tensor *const *in, int n,
                                     const nb_op_args *args) {
    (void)n;
    int64_t planes, h, w;
    const int *s = args->pool.scale;
    if (!planes_of(nb__ops[op].name, args->ndim, args->shape, &planes, &h, &w) ||
        !grad_fits(nb__ops[op].name, in[0], args->ndim, args->shape, h * s[0], w * s[1]))
        return NULL;
    nb_tensor *dy = nb__contig(in[0]), *dx = dy ? nb__new(NB_F32, args->ndim, args->shape) : NULL;
    if (dx)
        nb__be(dy)->upsample2d_backward(mode_of(op, args), nb__f32(dx), nb__f32(dy), planes, h, w,
                                        s[0], s[1]);
    if (dy != in[0]) nb_tensor_free(dy);
    return dx;
}

/* Upsampling is linear: the gradient of its backward is the upsampling of the gradient. */
nb_status nb__bwd_upsample_backward(const nb_node *node, nb_tensor *dout, nb_tensor **din) {
    nb_op_id forward = node->op == NB_OP_UPSAMPLE_NEAREST2D_BACKWARD ? NB_OP_UPSAMPLE_NEAREST2D
                                                                    : NB_OP_UPSAMPLE_BILINEAR2D;
    din[0] = nb__apply(forward, 1, &dout, &node->args);
    return din[0] ? NB_OK : nb_error_code();
}

/* The upsampling's arguments, checked; false (and an error naming op) for a factor below 1. */
static bool upsample_args(nb_op_id op, int scale_h, int scale_w, bool align_corners,
                          nb_op_args *args) {
    if (scale_h < 1 || scale_w < 1)
        return nb__fail(NB_ERR_ARG, "%s: scale factors %dx%d: need whole numbers of at least 1",
                        nb__ops[op].name, scale_h, scale_w), false;
    *args = (nb_op_args){.pool = {.scale = {scale_h, scale_w}, .align_corners = align_corners}};
    return true;
}

static nb_tensor *upsample(nb_op_id op, nb_tensor *x, int scale_h, int scale_w,
                           bool align_corners) {
    if (!nb__alive(x)) return nb__fail_input(nb__ops[op].name, x);
    nb_op_args args;
    if (!upsample_args(op, scale_h, scale_w, align_corners, &args)) return NULL;
    return nb__apply(op, 1, &x, &args);
}

nb_tensor *nb_upsample_nearest2d(nb_tensor *x, int scale_h, int scale_w) {
    return upsample(NB_OP_UPSAMPLE_NEAREST2D, x, scale_h, scale_w, false);
}

nb_tensor *nb_upsample_bilinear2d(nb_tensor *x, int scale_h, int scale_w, bool align_corners) {
    return upsample(NB_OP_UPSAMPLE_BILINEAR2D, x, scale_h, scale_w, align_corners);
}

static nb_tensor *upsample_backward(nb_op_id op, nb_tensor *g, int ndim, const int64_t *shape,
                                    int scale_h, int scale_w, bool align_corners) {
    if (!nb__alive(g)) return nb__fail_input(nb__ops[op].name, g);
    nb_op_args args;
    if (!upsample_args(op, scale_h, scale_w, align_corners, &args) ||
        !target_shape(nb__ops[op].name, ndim, shape, &args))
        return NULL;
    return nb__apply(op, 1, &g, &args);
}

nb_tensor *nb__upsample_nearest2d_backward(nb_tensor *g, int ndim, const int64_t *shape,
                                           int scale_h, int scale_w) {
    return upsample_backward(NB_OP_UPSAMPLE_NEAREST2D_BACKWARD, g, ndim, shape, scale_h, scale_w,
                             false);
}

nb_tensor *nb__upsample_bilinear2d_backward(nb_tensor *g, int ndim, const int64_t *shape,
                                            int scale_h, int scale_w, bool align_corners) {
    return upsample_backward(NB_OP_UPSAMPLE_BILINEAR2D_BACKWARD, g, ndim, shape, scale_h,
                             scale_w, align_corners);
}
