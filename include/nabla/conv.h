/*
 * nabla/conv.h — convolution, pooling and upsampling on NCHW tensors (torch.nn.functional).
 *
 * Shapes: x [N, C, H, W]; a 3-D x [C, H, W] is one sample, as in torch.  Sizes follow torch:
 *   out = floor((in + 2 pad - dilation (k - 1) - 1) / stride) + 1            (conv, pools)
 *   out = (in - 1) stride - 2 pad + dilation (k - 1) + output_padding + 1    (transposed conv)
 * Option structs are zero-initialisable: a zero stride or dilation means 1, zero groups 1.
 * Every op has its backward; errors name the op and the shapes.
 */
#ifndef NABLA_CONV_H
#define NABLA_CONV_H

#include "../nabla.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int stride[2];   /* [height, width]; 0 means 1 */
    int padding[2];  /* zeros added on each side: [top and bottom, left and right] */
    bool same;       /* padding='same': output size = input size (stride 1 only); overrides padding */
    int dilation[2]; /* 0 means 1 */
    int groups;      /* 0 means 1; groups = C_in = C_out is a depthwise convolution */
} nb_conv2d_opts;

/* x [N, C_in, H, W] * w [C_out, C_in / groups, kh, kw] + b [C_out] (b may be NULL). */
NB_API nb_tensor *nb_conv2d(nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb_conv2d_opts *opts);

typedef struct {
    int stride[2];
    int padding[2];
    int output_padding[2]; /* must be smaller than stride or dilation */
    int dilation[2];
    int groups;
} nb_conv_transpose2d_opts;

/* The gradient of conv2d with respect to its input, as a layer: x [N, C_in, H, W],
 * w [C_in, C_out / groups, kh, kw] (torch's layout), b [C_out] or NULL. */
NB_API nb_tensor *nb_conv_transpose2d(nb_tensor *x, nb_tensor *w, nb_tensor *b,
                               const nb_conv_transpose2d_opts *opts);

typedef struct {
    int kernel[2];   /* required */
    int stride[2];   /* 0 means the kernel size, as torch's default */
    int padding[2];  /* at most half the kernel; max pools pad with -inf, avg pools with 0 */
    bool ceil_mode;
    bool exclude_pad; /* avg: torch's count_include_pad=False (torch's default is True) */
} nb_pool2d_opts;

/* The gradient of a max pool goes to the first maximal element of each window, as torch's. */
NB_API nb_tensor *nb_max_pool2d(nb_tensor *x, const nb_pool2d_opts *opts);
NB_API nb_tensor *nb_avg_pool2d(nb_tensor *x, const nb_pool2d_opts *opts);
/* The mean over H and W: [N, C, H, W] -> [N, C, 1, 1] (torch's AdaptiveAvgPool2d(1)). */
NB_API nb_tensor *nb_global_avg_pool2d(nb_tensor *x);
/* Upsampling by integer factors: nearest copies pixels; bilinear interpolates as torch's
 * F.interpolate(mode='bilinear', align_corners=...). */
NB_API nb_tensor *nb_upsample_nearest2d(nb_tensor *x, int scale_h, int scale_w);
NB_API nb_tensor *nb_upsample_bilinear2d(nb_tensor *x, int scale_h, int scale_w, bool align_corners);

#ifdef __cplusplus
}
#endif
#endif
