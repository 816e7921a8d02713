/*
 * blocks.c — convolutional blocks built from the modules of conv_layers.c and norm.c, with the
 * child names of their usual torch definitions so that state dicts load both ways:
 *
 *   BasicBlock (He et al. 2016; torchvision.models.resnet.BasicBlock):
 *     children conv1 bn1 relu conv2 bn2 [downsample.0 (1x1 conv) downsample.1 (BN)]
 *     y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
 *   Bottleneck (torchvision's, stride on the 3x3 conv, "ResNet v1.5"), out = 4 mid:
 *     children conv1 bn1 conv2 bn2 conv3 bn3 relu [downsample.0 downsample.1]
 *     y = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))
 *   MobileNetBlock (Howard et al. 2017, a depthwise separable convolution):
 *     children conv1 (3x3, groups = in) bn1 conv2 (1x1) bn2 relu
 *     y = relu(bn2(conv2(relu(bn1(conv1(x))))))
 *   UNet (Ronneberger et al. 2015), depth d, c_i = base 2^i:
 *     enc.i   (i < d)  conv3x3-BN-ReLU twice, c_{i-1} -> c_i (c_{-1} = in)     skip_i = enc.i(x)
 *     pool             MaxPool2d(2) after each encoder level
 *     bottom           the same double conv, c_{d-1} -> c_d
 *     up.i    (i < d)  ConvTranspose2d(c_{d-i}, c_{d-i-1}, 2, stride 2)
 *     dec.i            double conv on cat([skip_{d-1-i}, up.i(x)], dim 1), 2 c_{d-i-1} -> c_{d-i-1}
 *     head             Conv2d(base, out, 1)
 * Convolutions followed by BatchNorm have no bias (the norm's shift replaces it), as in
 * torchvision; the transposed convolutions and the head keep theirs.
 */
#include "module.h"

#include <limits.h>
#include <stdio.h>

/* Runs the children of m listed in `order` one after the other on x; the result is owned by
 * the caller. */
static nb_tensor *run_steps(nb_module *m, const int *order, int n, nb_tensor *x) {
    nb__temps tmp = {0};
    nb_tensor *y = x;
    for (int s = 0; s < n && y; s++) y = nb__tmp(&tmp, nb_module_forward(NB__CHILD(m, order[s]), y));
    return nb__temps_end(&tmp, y);
}

/* ---- building helpers: NULL with the error set when a part cannot be made */

static nb_module *conv(int64_t in, int64_t out, int k, int stride, int groups, bool bias) {
    nb_conv2d_opts o = {.stride = {stride, stride}, .padding = {k / 2, k / 2}, .groups = groups};
    return nb_conv2d_new(in, out, k, k, o, bias);
}

static nb_module *bn(int64_t c) { return nb_batchnorm2d_new(c, (nb_batchnorm_opts){0}); }
static nb_module *relu(void) { return nb_activation_new(NB_ACT_RELU, 0); }

/* Adds the named children in order; false (every module freed, m included) at the first
 * failure.  A NULL module, one that failed to build, fails here with the error it left. */
static bool add_children(nb_module *m, int n, const char *const *names, nb_module *const *kids) {
    bool ok = m != NULL;
    for (int c = 0; c < n; c++) {
        if (ok) ok = nb_module_add_child(m, names[c], kids[c]) == NB_OK;
        else nb_module_free(kids[c]);
    }
    if (!ok) nb_module_free(m);
    return ok;
}

/* torchvision's downsample: Sequential(conv1x1(in, out, stride, bias=False), BatchNorm2d(out)). */
static nb_module *downsample(int64_t in, int64_t out, int stride) {
    return nb_sequential_new(2, (nb_module *[]){conv(in, out, 1, stride, 1, false), bn(out)});
}

/* ---- ResNet blocks: body children in `order`, then relu(body + shortcut) */

enum { BASIC_RELU = 2, BASIC_DOWNSAMPLE = 5, BOTTLENECK_RELU = 6, BOTTLENECK_DOWNSAMPLE = 7 };

/* relu(body(x) + shortcut(x)), the body being the children in `order`. */
static nb_tensor *residual(nb_module *m, nb_tensor *x, const int *order, int n, int relu_child,
                           int ds_child) {
    nb__temps tmp = {0};
    nb_tensor *body = nb__tmp(&tmp, run_steps(m, order, n, x));
    if (!body) return nb__temps_end(&tmp, NULL);
    nb_tensor *s = x;
    if (m->children.n > ds_child) s = nb__tmp(&tmp, nb_module_forward(NB__CHILD(m, ds_child), x));
    nb_tensor *sum = s ? nb__tmp(&tmp, nb_add(body, s)) : NULL;
    return nb__temps_end(&tmp, sum ? nb__tmp(&tmp, nb_module_forward(NB__CHILD(m, relu_child), sum)) : NULL);
}

static nb_tensor *basic_forward(nb_module *m, nb_tensor *x) {
    static const int order[] = {0, 1, 2, 3, 4}; /* conv1 bn1 relu conv2 bn2 */
    return residual(m, x, order, 5, BASIC_RELU, BASIC_DOWNSAMPLE);
}

static nb_tensor *bottleneck_forward(nb_module *m, nb_tensor *x) {
    static const int order[] = {0, 1, 6, 2, 3, 6, 4, 5}; /* conv1 bn1 relu conv2 bn2 relu conv3 bn3 */
    return residual(m, x, order, 8, BOTTLENECK_RELU, BOTTLENECK_DOWNSAMPLE);
}

static const nb_module_class basic_class = {.name = "BasicBlock", .forward = basic_forward};
static const nb_module_class bottleneck_class = {.name = "Bottleneck", .forward = bottleneck_forward};

static bool check_block(const char *type, int64_t in, int64_t out, int stride) {
    if (in > 0 && out > 0 && stride >= 1) return true;
    nb__fail(NB_ERR_ARG, "%s: channels must be positive and stride >= 1, got in=%lld out=%lld stride=%d",
             type, (long long)in, (long long)out, stride);
    return false;
}

nb_module *nb_resnet_basic_block_new(int64_t in, int64_t out, int stride) {
    if (!check_block("BasicBlock", in, out, stride)) return NULL;
    bool ds = stride != 1 || in != out;
    static const char *const names[] = {"conv1", "bn1", "relu", "conv2", "bn2", "downsample"};
    nb_module *kids[] = {conv(in, out, 3, stride, 1, false), bn(out), relu(), conv(out, out, 3, 1, 1, false),
                         bn(out), ds ? downsample(in, out, stride) : NULL};
    nb_module *m = nb_module_new(&basic_class, 0);
    return add_children(m, ds ? 6 : 5, names, kids) ? m : NULL;
}

nb_module *nb_resnet_bottleneck_new(int64_t in, int64_t mid, int stride) {
    if (!check_block("Bottleneck", in, mid, stride)) return NULL;
    int64_t out = 4 * mid; /* torchvision's expansion */
    bool ds = stride != 1 || in != out;
    static const char *const names[] = {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "relu", "downsample"};
    nb_module *kids[] = {conv(in, mid, 1, 1, 1, false), bn(mid), conv(mid, mid, 3, stride, 1, false), bn(mid),
                         conv(mid, out, 1, 1, 1, false), bn(out), relu(), ds ? downsample(in, out, stride) : NULL};
    nb_module *m = nb_module_new(&bottleneck_class, 0);
    return add_children(m, ds ? 8 : 7, names, kids) ? m : NULL;
}

/* ---- MobileNet block */

static nb_tensor *mobilenet_forward(nb_module *m, nb_tensor *x) {
    static const int order[] = {0, 1, 4, 2, 3, 4}; /* conv1 bn1 relu conv2 bn2 relu */
    return run_steps(m, order, 6, x);
}

static const nb_module_class mobilenet_class = {.name = "MobileNetBlock", .forward = mobilenet_forward};

nb_module *nb_mobilenet_block_new(int64_t in, int64_t out, int stride) {
    if (!check_block("MobileNetBlock", in, out, stride)) return NULL;
    if (in > INT_MAX) /* the depthwise conv's groups is an int */
        return nb__fail(NB_ERR_ARG, "MobileNetBlock: in_channels=%lld is too large", (long long)in);
    static const char *const names[] = {"conv1", "bn1", "conv2", "bn2", "relu"};
    nb_module *kids[] = {conv(in, in, 3, stride, (int)in, false), bn(in), conv(in, out, 1, 1, 1, false),
                         bn(out), relu()};
    nb_module *m = nb_module_new(&mobilenet_class, 0);
    return add_children(m, 5, names, kids) ? m : NULL;
}

/* ---- UNet */

/* torch's ModuleList: a container its owner indexes; it has no forward, so calling it is an
 * error, as in torch. */
static const nb_module_class module_list_class = {.name = "ModuleList"};

/* Sequential(conv3x3(in, out), BN, ReLU, conv3x3(out, out), BN, ReLU) */
static nb_module *double_conv(int64_t in, int64_t out) {
    return nb_sequential_new(6, (nb_module *[]){conv(in, out, 3, 1, 1, false), bn(out), relu(),
                                                conv(out, out, 3, 1, 1, false), bn(out), relu()});
}

enum { UNET_ENC, UNET_POOL, UNET_BOTTOM, UNET_UP, UNET_DEC, UNET_HEAD, UNET_CHILDREN };

typedef struct {
    int depth;
} unet_state;

static nb_tensor *unet_forward(nb_module *m, nb_tensor *x) {
    int depth = NB__STATE(unet_state, m)->depth;
    int64_t f = (int64_t)1 << depth;
    if (x->ndim != 4 || x->shape[2] % f || x->shape[3] % f)
        return nb__fail(NB_ERR_SHAPE, "UNet: expected [N, C, H, W] with H and W divisible by 2^%d = %lld, "
                        "got %s", depth, (long long)f, NB_SHP(x));
    nb_module *enc = NB__CHILD(m, UNET_ENC), *up = NB__CHILD(m, UNET_UP), *dec = NB__CHILD(m, UNET_DEC);
    nb__temps tmp = {0};
    nb_tensor *skips[16] = {NULL}, *h = x;
    for (int i = 0; i < depth && h; i++) {
        skips[i] = nb__tmp(&tmp, nb_module_forward(NB__CHILD(enc, i), h));
        h = skips[i] ? nb__tmp(&tmp, nb_module_forward(NB__CHILD(m, UNET_POOL), skips[i])) : NULL;
    }
    h = h ? nb__tmp(&tmp, nb_module_forward(NB__CHILD(m, UNET_BOTTOM), h)) : NULL;
    for (int i = 0; i < depth && h; i++) {
        nb_tensor *u = nb__tmp(&tmp, nb_module_forward(NB__CHILD(up, i), h));
        nb_tensor *cat = u ? nb__tmp(&tmp, nb_concat(2, (nb_tensor *[]){skips[depth - 1 - i], u}, 1)) : NULL;
        h = cat ? nb__tmp(&tmp, nb_module_forward(NB__CHILD(dec, i), cat)) : NULL;
    }
    return nb__temps_end(&tmp, h ? nb__tmp(&tmp, nb_module_forward(NB__CHILD(m, UNET_HEAD), h)) : NULL);
}

/* The depth is structure (the children say it); for an exporter, not the repr. */
static void unet_describe(const nb_module *m, nb_attrs *d) {
    nb_attrs_int(d, "depth", NB__STATE(unet_state, m)->depth)->flags = NB_ATTR_NO_REPR;
}

static const nb_module_class unet_class = {.name = "UNet", .forward = unet_forward, .describe = unet_describe};

#define UNET_MAX_DEPTH 8

/* A ModuleList of n <= UNET_MAX_DEPTH modules, children "0", "1", ...; takes ownership of them. */
static nb_module *module_list(int n, nb_module *const *kids) {
    char names[UNET_MAX_DEPTH][12];
    const char *name_ptrs[UNET_MAX_DEPTH];
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%d", i);
        name_ptrs[i] = names[i];
    }
    nb_module *list = nb_module_new(&module_list_class, 0);
    return add_children(list, n, name_ptrs, kids) ? list : NULL;
}

nb_module *nb_unet_new(int64_t in, int64_t out, int64_t base, int depth) {
    if (in <= 0 || out <= 0 || base <= 0 || depth < 1 || depth > UNET_MAX_DEPTH || base > ((int64_t)1 << 40))
        return nb__fail(NB_ERR_ARG, "UNet: channels must be positive and depth 1 to %d, got in=%lld out=%lld "
                        "base=%lld depth=%d", UNET_MAX_DEPTH, (long long)in, (long long)out,
                        (long long)base, depth);
    nb_module *enc[UNET_MAX_DEPTH], *up[UNET_MAX_DEPTH], *dec[UNET_MAX_DEPTH];
    for (int i = 0; i < depth; i++) {
        int64_t c = base << i, deeper = base << (depth - i), shallower = base << (depth - i - 1);
        enc[i] = double_conv(i ? c / 2 : in, c);
        up[i] = nb_conv_transpose2d_new(deeper, shallower, 2, 2,
                                        (nb_conv_transpose2d_opts){.stride = {2, 2}}, true);
        dec[i] = double_conv(2 * shallower, shallower);
    }
    static const char *const names[] = {"enc", "pool", "bottom", "up", "dec", "head"};
    nb_module *kids[UNET_CHILDREN] = {
        module_list(depth, enc),
        nb_max_pool2d_new((nb_pool2d_opts){.kernel = {2, 2}}),
        double_conv(base << (depth - 1), base << depth),
        module_list(depth, up),
        module_list(depth, dec),
        conv(base, out, 1, 1, 1, true),
    };
    nb_module *m = nb_module_new(&unet_class, sizeof(unet_state));
    if (!add_children(m, UNET_CHILDREN, names, kids)) return NULL;
    NB__STATE(unet_state, m)->depth = depth;
    return m;
}
