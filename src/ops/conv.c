/*
 * conv.c — torch.nn.functional.conv2d and conv_transpose2d on NCHW tensors, forward and backward
 * side by side.  Shapes: x [N, C, H, W] (a 3-D x is one sample: unsqueezed here, squeezed after),
 * conv2d's weight w [C_out, C / G, kh, kw], the transposed conv's w [C, C_out / G, kh, kw], bias
 * b [C_out]; G groups.
 *
 * Both ops are one convolution geometry (nb_conv2d_geom, backend.h) seen from its two sides:
 * the image [N, c, h, w] and the grid [N, oc, oh, ow], with col(.) the im2col columns of an image
 * (all per group):
 *
 *   conv2d            x is the image, y the grid:   y  = w col(x) + b
 *                     dx = col2im(w^T dy)     dw = sum_n dy col(x)^T     db = sum_{n,h,w} dy
 *   conv_transpose2d  x is the grid, y the image:   y  = col2im(w^T x) + b
 *   (the adjoint)     dx = w col(dy)          dw = sum_n x col(dy)^T     db = sum_{n,h,w} dy
 *
 * that is, the transposed conv's forward is conv2d's input gradient and its input gradient is
 * conv2d's forward (Dumoulin & Visin 2016, "A guide to convolution arithmetic", section 4).
 * Sizes follow torch: conv2d's grid oh = (h + pad_top + pad_bottom - dh (kh - 1) - 1) / sh + 1;
 * the transposed conv's image oh = (h - 1) sh - 2 ph + dh (kh - 1) + output_padding + 1.
 * padding='same' pads d (k - 1) in all, the odd one at the bottom / right, as torch does.
 *
 * Second order (create_graph).  One geometry (stride, top / left padding, dilation, groups, in
 * conv2d's terms for either op) links an image, a grid and a weight, and each is a conv op of
 * the other two:
 *
 *   grid   = conv2d(image, w)               bottom / right padding set so the grid has its size
 *   image  = conv_transpose2d(grid, w)      output_padding set so the image has its size (a
 *                                           negative one crops, as padding='same' needs)
 *   w      = conv2d_weight(image, grid)     sum over samples of grid col(image)^T, an op of its
 *                                           own (torch's convolution_backward for the weight)
 *
 * so every gradient of each is again one of them, to any order (u: the gradient of dw):
 *   conv2d            dx = image(dy, w)     dw = conv2d_weight(x, dy)    db = sum dy
 *   conv_transpose2d  dx = grid(dy, w)      dw = conv2d_weight(dy, x)    db = sum dy
 *   conv2d_weight     dimage = image(grid, u)    dgrid = grid(image, u)
 * Recording off, the backwards keep the fused kernels below.
 *
 * conv2d's db is summed by the kernel of the weight pass, which reads dy anyway.  The kernels'
 * scratch (im2col columns) is device memory from the current scope's arena, so a training step in steady
 * state allocates nothing; with no scope open it is a heap buffer freed before the op returns.
 *
 * Under autocast (args.amp, nabla/amp.h) the kernels read x, w and b rounded to its dtype and
 * the result is rounded; the first-order backward rounds dy and the gradients the same way (the
 * backward as ops of create_graph is float32).
 */
#include "op.h"

#include "../autograd/autocast.h"
#include "nabla/amp.h"

#include "nabla/conv.h"

#include <string.h>

/* Shapes and options of a conv node: its geometry in conv2d's terms and its output shape.
 * False with an NB_ERR_SHAPE naming the op and the shapes. */
static bool setup(nb_op_id op, const nb_tensor *x, const nb_tensor *w, const nb_tensor *b,
                  const nb_op_args *a, nb_conv2d_geom *g, int64_t out[4]) {
    const char *name = nb__ops[op].name;
    bool tr = op == NB_OP_CONV_TRANSPOSE2D;
    if (x->ndim != 4 || w->ndim != 4 || (b && b->ndim != 1))
        return nb__fail(NB_ERR_SHAPE, "%s: input %s, weight %s, bias %s: need input [N, C, H, W] "
                        "or [C, H, W], weight %s and bias [C_out]", name, NB_SHP(x), NB_SHP(w),
                        b ? NB_SHP(b) : "none",
                        tr ? "[C, C_out / groups, kh, kw]" : "[C_out, C / groups, kh, kw]");
    int64_t groups = a->conv.groups, c = x->shape[1];
    int64_t per_group = tr ? w->shape[0] / groups : w->shape[1];
    int64_t c_out = tr ? w->shape[1] * groups : w->shape[0];
    if (c % groups != 0)
        return nb__fail(NB_ERR_SHAPE, "%s: input %s has %lld channels, which groups = %lld does "
                        "not divide", name, NB_SHP(x), (long long)c, (long long)groups);
    if ((tr ? w->shape[0] : c_out) % groups != 0)
        return nb__fail(NB_ERR_SHAPE, "%s: weight %s has %lld %s channels, which groups = %lld "
                        "does not divide", name, NB_SHP(w), (long long)w->shape[0],
                        tr ? "input" : "output", (long long)groups);
    if (tr ? w->shape[0] != c : per_group * groups != c)
        return nb__fail(NB_ERR_SHAPE, "%s: input %s has %lld channels but weight %s expects %lld "
                        "(%lld per group, %lld groups)", name, NB_SHP(x), (long long)c, NB_SHP(w),
                        (long long)(per_group * groups), (long long)per_group, (long long)groups);
    if (w->shape[2] < 1 || w->shape[3] < 1)
        return nb__fail(NB_ERR_SHAPE, "%s: weight %s has an empty kernel", name, NB_SHP(w));
    if (b && b->shape[0] != c_out)
        return nb__fail(NB_ERR_SHAPE, "%s: bias %s does not match the %lld output channels of "
                        "weight %s", name, NB_SHP(b), (long long)c_out, NB_SHP(w));
    int64_t k[2] = {w->shape[2], w->shape[3]}, sp[2];
    for (int d = 0; d < 2; d++) {
        int64_t in = x->shape[2 + d], span = (int64_t)a->conv.dilation[d] * (k[d] - 1) + 1;
        if (!tr) {
            int64_t padded = in + a->conv.pad[d] + a->conv.pad_end[d];
            if (padded < span)
                return nb__fail(NB_ERR_SHAPE, "%s: kernel %lldx%lld (spanning %lld with dilation "
                                "%d) is larger than the padded input (%lld) of input %s, weight %s",
                                name, (long long)k[0], (long long)k[1], (long long)span,
                                a->conv.dilation[d], (long long)padded, NB_SHP(x), NB_SHP(w));
            sp[d] = (padded - span) / a->conv.stride[d] + 1;
        } else {
            sp[d] = (in - 1) * a->conv.stride[d] - 2 * (int64_t)a->conv.pad[d] + span +
                    a->conv.output_padding[d];
            if (sp[d] < 1)
                return nb__fail(NB_ERR_SHAPE, "%s: input %s, weight %s: the output size %lld is "
                                "not positive (too much padding)", name, NB_SHP(x), NB_SHP(w),
                                (long long)sp[d]);
        }
    }
    int64_t n = x->shape[0];
    /* the image side and the grid side (see the top of the file) */
    int64_t in_sp[2] = {x->shape[2], x->shape[3]};
    const int64_t *img = tr ? sp : in_sp, *grid = tr ? in_sp : sp;
    *g = (nb_conv2d_geom){.n = n, .c = tr ? c_out : c, .h = img[0], .w = img[1],
                          .oc = tr ? c : c_out, .oh = grid[0], .ow = grid[1],
                          .kh = k[0], .kw = k[1], .sh = a->conv.stride[0],
                          .sw = a->conv.stride[1], .ph = a->conv.pad[0], .pw = a->conv.pad[1],
                          .dh = a->conv.dilation[0], .dw = a->conv.dilation[1], .groups = groups};
    out[0] = n;
    out[1] = c_out;
    out[2] = sp[0];
    out[3] = sp[1];
    return true;
}

static void free_copy(nb_tensor *copy, nb_tensor *orig) {
    if (copy != orig) nb_tensor_free(copy);
}

/* The tensor a kernel reads for t: t itself when contiguous (else a copy), rounded under amp. */
static nb_tensor *operand(nb_tensor *t, nb_dtype amp) {
    return amp ? nb__amp_rounded(t, amp) : nb__contig(t);
}

nb_tensor *nb__fwd_conv(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *a) {
    nb_tensor *x = in[0], *w = in[1], *b = n == 3 ? in[2] : NULL;
    nb_conv2d_geom g;
    int64_t shape[4];
    if (n < 2 || n > 3)
        return nb__fail(NB_ERR_ARG, "%s: takes input, weight and an optional bias, got %d tensors",
                        nb__ops[op].name, n);
    if (!setup(op, x, w, b, a, &g, shape)) return NULL;
    const nb_backend *be = nb__be(x);
    nb_arena *arena = nb__current_arena();
    size_t bytes = be->conv2d_workspace(&g);
    nb_tensor *xc = operand(x, a->amp), *wc = xc ? operand(w, a->amp) : NULL;
    nb_tensor *bc = wc && b ? operand(b, a->amp) : NULL;
    nb_tensor *out = wc && (bc || !b) ? nb__new(NB_F32, 4, shape) : NULL;
    void *ws = out ? nb__home_alloc_data(arena, be, bytes) : NULL;
    if (ws) {
        const float *bias = b ? nb__f32(bc) : NULL;
        if (op == NB_OP_CONV2D) be->conv2d(nb__f32(out), nb__f32(xc), nb__f32(wc), bias, &g, ws);
        else be->conv2d_backward_data(nb__f32(out), nb__f32(xc), nb__f32(wc), bias, &g, ws);
        nb__home_free_data(arena, be, ws, bytes);
        if (a->amp) nb__amp_round(out, a->amp);
    } else if (out) {
        nb_tensor_free(out);
        out = NULL;
    }
    free_copy(xc, x);
    free_copy(wc, w);
    free_copy(bc, b);
    return out;
}

/* db [C_out] = the sum of dy [N, C_out, H, W] over N, H and W: per (n, c) plane, then over n. */
static nb_tensor *bias_grad(const nb_backend *be, nb_tensor *dy) {
    int64_t n = dy->shape[0], c = dy->shape[1], plane = dy->shape[2] * dy->shape[3], nc = n * c;
    nb_tensor *sums = nb__new(NB_F32, 1, &nc), *db = sums ? nb__new(NB_F32, 1, &c) : NULL;
    if (db) {
        be->reduce(NB_RED_SUM, nb__f32(sums), nb__f32(dy), nc, plane, 1);
        be->reduce(NB_RED_SUM, nb__f32(db), nb__f32(sums), 1, n, c);
    }
    nb_tensor_free(sums);
    return db;
}

/* ---- the backwards as ops (create_graph; see the top of the file) */

/* The geometry of a conv node's args: stride, top / left padding, dilation, groups. */
static nb_op_args geometry_of(const nb_op_args *a) {
    nb_op_args t = {0};
    for (int d = 0; d < 2; d++) {
        t.conv.stride[d] = a->conv.stride[d];
        t.conv.pad[d] = t.conv.pad_end[d] = a->conv.pad[d];
        t.conv.dilation[d] = a->conv.dilation[d];
    }
    t.conv.groups = a->conv.groups;
    return t;
}

/* The extent dilation (k - 1) + 1 of w's kernel along dim d (0: height, 1: width). */
static int64_t span_of(const nb_op_args *a, const nb_tensor *w, int d) {
    return (int64_t)a->conv.dilation[d] * (w->shape[2 + d] - 1) + 1;
}

/* The image [N, C, size[0], size[1]] side of grid and w. */
static nb_tensor *image_from(nb_tensor *grid, nb_tensor *w, const nb_op_args *a,
                             const int64_t *size) {
    nb_op_args t = geometry_of(a);
    for (int d = 0; d < 2; d++)
        t.conv.output_padding[d] = (int)(size[d] + 2 * (int64_t)a->conv.pad[d] -
                                         (grid->shape[2 + d] - 1) * a->conv.stride[d] -
                                         span_of(a, w, d));
    return nb__apply(NB_OP_CONV_TRANSPOSE2D, 2, (nb_tensor *[]){grid, w}, &t);
}

/* The grid [N, C_out, size[0], size[1]] side of image and w. */
static nb_tensor *grid_from(nb_tensor *image, nb_tensor *w, const nb_op_args *a,
                            const int64_t *size) {
    nb_op_args t = geometry_of(a);
    for (int d = 0; d < 2; d++)
        t.conv.pad_end[d] = (int)((size[d] - 1) * a->conv.stride[d] + span_of(a, w, d) -
                                  image->shape[2 + d] - a->conv.pad[d]);
    return nb__apply(NB_OP_CONV2D, 2, (nb_tensor *[]){image, w}, &t);
}

/* The weight (of w_shape) that links image and grid. */
static nb_tensor *weight_from(nb_tensor *image, nb_tensor *grid, const nb_op_args *a,
                              const int64_t *w_shape) {
    nb_op_args t = geometry_of(a);
    t.ndim = 4;
    memcpy(t.shape, w_shape, sizeof(int64_t) * 4);
    return nb__apply(NB_OP_CONV2D_WEIGHT, 2, (nb_tensor *[]){image, grid}, &t);
}

static nb_status conv_backward_graph(const nb_node *node, nb_tensor *dy, nb_tensor **din) {
    nb_tensor *x = node->in[0], *w = node->in[1];
    const nb_op_args *a = &node->args;
    bool tr = node->op == NB_OP_CONV_TRANSPOSE2D;
    if (nb__needs_grad(node, 0) &&
        !(din[0] = tr ? grid_from(dy, w, a, x->shape + 2) : image_from(dy, w, a, x->shape + 2)))
        return nb_error_code();
    if (nb__needs_grad(node, 1) &&
        !(din[1] = tr ? weight_from(dy, x, a, w->shape) : weight_from(x, dy, a, w->shape)))
        return nb_error_code();
    if (node->n_in == 3 && nb__needs_grad(node, 2) &&
        !(din[2] = nb_sum_dims(dy, 3, (int[]){0, 2, 3}, false)))
        return nb_error_code();
    return NB_OK;
}

nb_status nb__bwd_conv(const nb_node *node, nb_tensor *dy, nb_tensor **din) {
    if (nb_is_grad_enabled()) return conv_backward_graph(node, dy, din);
    nb_tensor *x = node->in[0], *w = node->in[1];
    nb_conv2d_geom g;
    int64_t shape[4];
    if (!setup((nb_op_id)node->op, x, w, NULL, &node->args, &g, shape)) return nb_error_code();
    bool tr = node->op == NB_OP_CONV_TRANSPOSE2D;
    const nb_backend *be = nb__be(x);
    nb_arena *arena = nb__current_arena();
    size_t bytes = be->conv2d_workspace(&g);
    nb_dtype amp = node->args.amp;
    nb_tensor *dyc = operand(dy, amp), *xc = dyc ? operand(x, amp) : NULL;
    nb_tensor *wc = xc ? operand(w, amp) : NULL;
    void *ws = wc ? nb__home_alloc_data(arena, be, bytes) : NULL;
    nb_status st = ws ? NB_OK : nb_error_code();
    if (st == NB_OK && nb__needs_grad(node, 0)) {
        if ((din[0] = nb__new(NB_F32, 4, x->shape))) {
            if (tr) be->conv2d(nb__f32(din[0]), nb__f32(dyc), nb__f32(wc), NULL, &g, ws);
            else be->conv2d_backward_data(nb__f32(din[0]), nb__f32(dyc), nb__f32(wc), NULL, &g, ws);
        } else {
            st = nb_error_code();
        }
    }
    /* conv2d's bias gradient, the sum of the grid side, comes out of the weight pass that reads
     * that side anyway; the transposed conv's sums the image side, on its own */
    bool want_db = node->n_in == 3 && nb__needs_grad(node, 2);
    bool fused_db = want_db && !tr && nb__needs_grad(node, 1);
    if (st == NB_OK && fused_db && !(din[2] = nb__new(NB_F32, 1, &shape[1]))) st = nb_error_code();
    if (st == NB_OK && nb__needs_grad(node, 1)) {
        if ((din[1] = nb__new(NB_F32, 4, w->shape)))
            be->conv2d_backward_weight(nb__f32(din[1]), fused_db ? nb__f32(din[2]) : NULL,
                                       nb__f32(tr ? dyc : xc), nb__f32(tr ? xc : dyc), &g, ws);
        else
            st = nb_error_code();
    }
    if (st == NB_OK && want_db && !fused_db && !(din[2] = bias_grad(be, dyc))) st = nb_error_code();
    if (ws) nb__home_free_data(arena, be, ws, bytes);
    if (amp && st == NB_OK)
        for (int i = 0; i < node->n_in; i++) nb__amp_round(din[i], amp);
    free_copy(wc, w);
    free_copy(xc, x);
    free_copy(dyc, dy);
    return st;
}

/* ---- conv2d_weight: dw = sum over samples of grid col(image)^T (the weight pass's kernel) */

nb_tensor *nb__fwd_conv_weight(nb_op_id op, nb_tensor *const *in, int n, const nb_op_args *a) {
    (void)op, (void)n;
    nb_tensor *image = in[0], *grid = in[1];
    const int64_t *ws = a->shape, groups = a->conv.groups;
    bool fits = a->ndim == 4 && image->ndim == 4 && grid->ndim == 4 && groups >= 1 &&
                image->shape[0] == grid->shape[0] && ws[0] == grid->shape[1] &&
                ws[0] % groups == 0 && ws[1] * groups == image->shape[1] && ws[2] >= 1 &&
                ws[3] >= 1 && grid->shape[2] >= 1 && grid->shape[3] >= 1;
    if (!fits)
        return nb__fail(NB_ERR_SHAPE, "conv2d_weight: input %s, output gradient %s and weight %s "
                        "(groups %lld) are not one convolution's", NB_SHP(image), NB_SHP(grid),
                        nb__shape_str(a->ndim, a->shape), (long long)groups);
    nb_conv2d_geom g = {.n = image->shape[0], .c = image->shape[1], .h = image->shape[2],
                        .w = image->shape[3], .oc = grid->shape[1], .oh = grid->shape[2],
                        .ow = grid->shape[3], .kh = ws[2], .kw = ws[3], .sh = a->conv.stride[0],
                        .sw = a->conv.stride[1], .ph = a->conv.pad[0], .pw = a->conv.pad[1],
                        .dh = a->conv.dilation[0], .dw = a->conv.dilation[1], .groups = groups};
    const nb_backend *be = nb__be(image);
    nb_arena *arena = nb__current_arena();
    size_t bytes = be->conv2d_workspace(&g);
    nb_tensor *ic = nb__contig(image), *gc = ic ? nb__contig(grid) : NULL;
    nb_tensor *out = gc ? nb__new(NB_F32, 4, ws) : NULL;
    void *scratch = out ? nb__home_alloc_data(arena, be, bytes) : NULL;
    if (scratch) {
        be->conv2d_backward_weight(nb__f32(out), NULL, nb__f32(ic), nb__f32(gc), &g, scratch);
        nb__home_free_data(arena, be, scratch, bytes);
    } else if (out) {
        nb_tensor_free(out);
        out = NULL;
    }
    free_copy(gc, grid);
    free_copy(ic, image);
    return out;
}

nb_status nb__bwd_conv_weight(const nb_node *node, nb_tensor *u, nb_tensor **din) {
    nb_tensor *image = node->in[0], *grid = node->in[1];
    if (nb__needs_grad(node, 0) &&
        !(din[0] = image_from(grid, u, &node->args, image->shape + 2)))
        return nb_error_code();
    if (nb__needs_grad(node, 1) && !(din[1] = grid_from(image, u, &node->args, grid->shape + 2)))
        return nb_error_code();
    return NB_OK;
}

/* ---- the public functions: options checked and normalised (0 means 1), 3-D input batched */

static bool pair_at_least(const char *op, const char *what, const int v[2], int min) {
    if (v[0] >= min && v[1] >= min) return true;
    nb__fail(NB_ERR_ARG, "%s: %s must be >= %d, got [%d, %d]", op, what, min, v[0], v[1]);
    return false;
}

/* Fills a->conv from options shared by both ops. */
static bool common_opts(const char *op, const int stride[2], const int padding[2],
                        const int dilation[2], int groups, nb_op_args *a) {
    if (!pair_at_least(op, "stride", stride, 0) || !pair_at_least(op, "padding", padding, 0) ||
        !pair_at_least(op, "dilation", dilation, 0))
        return false;
    if (groups < 0)
        return nb__fail(NB_ERR_ARG, "%s: groups must be >= 1 (0 means 1), got %d", op, groups),
               false;
    for (int d = 0; d < 2; d++) {
        a->conv.stride[d] = stride[d] ? stride[d] : 1;
        a->conv.dilation[d] = dilation[d] ? dilation[d] : 1;
        a->conv.pad[d] = a->conv.pad_end[d] = padding[d];
    }
    a->conv.groups = groups ? groups : 1;
    return true;
}

/* Applies op to x (a 3-D x as a batch of one) and returns the result in x's rank. */
static nb_tensor *apply_batched(nb_op_id op, nb_tensor *x, nb_tensor *w, nb_tensor *b,
                                const nb_op_args *a) {
    bool single = x->ndim == 3;
    nb__temps tmp = {0};
    nb_tensor *x4 = single ? nb__tmp(&tmp, nb_unsqueeze(x, 0)) : x;
    nb_tensor *out = x4 ? nb__tmp(&tmp, nb__apply(op, b ? 3 : 2, (nb_tensor *[]){x4, w, b}, a)) : NULL;
    if (out && single) out = nb__tmp(&tmp, nb_squeeze(out, 0));
    return nb__temps_end(&tmp, out);
}

nb_tensor *nb_conv2d(nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv2d_opts *opts) {
    if (!nb__alive(x)) return nb__fail_input("conv2d", x);
    if (!nb__alive(w)) return nb__fail_input("conv2d", w);
    nb_conv2d_opts o = opts ? *opts : (nb_conv2d_opts){0};
    nb_op_args a = {.amp = nb_autocast_dtype()};
    if (!common_opts("conv2d", o.stride, o.padding, o.dilation, o.groups, &a)) return NULL;
    if (o.same && w->ndim == 4) {
        if (a.conv.stride[0] != 1 || a.conv.stride[1] != 1)
            return nb__fail(NB_ERR_ARG, "conv2d: padding='same' is not supported for strided "
                            "convolutions (stride [%d, %d])", a.conv.stride[0], a.conv.stride[1]);
        for (int d = 0; d < 2; d++) { /* total d (k - 1), the odd one after, as torch */
            int total = a.conv.dilation[d] * (int)(w->shape[2 + d] - 1);
            a.conv.pad[d] = total / 2;
            a.conv.pad_end[d] = total - total / 2;
        }
    }
    return apply_batched(NB_OP_CONV2D, x, w, b, &a);
}

nb_tensor *nb_conv_transpose2d(nb_tensor *x, nb_tensor *w, nb_tensor *b,
                               const nb_conv_transpose2d_opts *opts) {
    if (!nb__alive(x)) return nb__fail_input("conv_transpose2d", x);
    if (!nb__alive(w)) return nb__fail_input("conv_transpose2d", w);
    nb_conv_transpose2d_opts o = opts ? *opts : (nb_conv_transpose2d_opts){0};
    nb_op_args a = {.amp = nb_autocast_dtype()};
    if (!common_opts("conv_transpose2d", o.stride, o.padding, o.dilation, o.groups, &a) ||
        !pair_at_least("conv_transpose2d", "output_padding", o.output_padding, 0))
        return NULL;
    for (int d = 0; d < 2; d++) {
        /* torch's rule: an output row past the last one a stride or a dilation step reaches
         * would be ambiguous */
        if (o.output_padding[d] >= a.conv.stride[d] && o.output_padding[d] >= a.conv.dilation[d])
            return nb__fail(NB_ERR_ARG, "conv_transpose2d: output_padding [%d, %d] must be smaller "
                            "than either stride [%d, %d] or dilation [%d, %d]",
                            o.output_padding[0], o.output_padding[1], a.conv.stride[0],
                            a.conv.stride[1], a.conv.dilation[0], a.conv.dilation[1]);
        a.conv.output_padding[d] = o.output_padding[d];
    }
    return apply_batched(NB_OP_CONV_TRANSPOSE2D, x, w, b, &a);
}

nb_tensor *nb__conv2d_weight(nb_tensor *x, nb_tensor *g, const int64_t w_shape[4],
                             const nb_conv2d_opts *opts) {
    if (!nb__alive(x)) return nb__fail_input("conv2d_weight", x);
    if (!w_shape) return nb__fail(NB_ERR_SHAPE, "conv2d_weight: no weight shape");
    nb_conv2d_opts o = opts ? *opts : (nb_conv2d_opts){0};
    nb_op_args a = {.ndim = 4};
    if (!common_opts("conv2d_weight", o.stride, o.padding, o.dilation, o.groups, &a)) return NULL;
    memcpy(a.shape, w_shape, sizeof(int64_t) * 4);
    return nb__apply(NB_OP_CONV2D_WEIGHT, 2, (nb_tensor *[]){x, g}, &a);
}
