/*
 * nabla/nn.h — modules (torch.nn), activations and parameter initialisation.
 *
 * A module owns its parameters and buffers (persistent tensors) and its children.  Names follow
 * torch's state_dict: "0.weight", "2.bias", "body.1.running_mean".  Modules are made with no
 * scope open or inside one: their parameters are always persistent, freed by nb_module_free.
 * nb_module_forward runs in the caller's scope like any op.
 */
#ifndef NABLA_NN_H
#define NABLA_NN_H

#include "../nabla.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_module nb_module;

/* ---------------------------------------------------------------- activations
 * y = f(x) elementwise (softmax / log-softmax: along the last dim).  `param` is the one
 * hyper-parameter the function has, 0 meaning torch's default:
 *   LEAKY_RELU slope (0.01), ELU alpha (1), SOFTPLUS beta (1, threshold 20 as torch),
 *   SILU beta (1: swish with beta), TANH_LINEAR a in tanh(x) + a x (0 allowed, default 0).
 * STEP is 1 for x > 0 else 0 with a zero gradient; GELU is the exact erf form. */
typedef enum {
    NB_ACT_IDENTITY, NB_ACT_STEP, NB_ACT_SIGMOID, NB_ACT_TANH, NB_ACT_RELU, NB_ACT_LEAKY_RELU,
    NB_ACT_ELU, NB_ACT_SOFTPLUS, NB_ACT_SILU, NB_ACT_MISH, NB_ACT_GELU, NB_ACT_ATAN,
    NB_ACT_SOFTSIGN, NB_ACT_TANH_LINEAR, NB_ACT_SOFTMAX, NB_ACT_LOG_SOFTMAX, NB_ACT_COUNT
} nb_activation;

NB_API nb_tensor *nb_activate(nb_tensor *x, nb_activation act, float param);
NB_API const char *nb_activation_name(nb_activation act);          /* "ReLU", as torch's class */
/* Parses "relu", "leaky_relu", "gelu", ... (case-insensitive); false when unknown. */
NB_API bool nb_activation_parse(const char *name, nb_activation *act);

NB_API nb_tensor *nb_step(nb_tensor *x);
NB_API nb_tensor *nb_leaky_relu(nb_tensor *x, float slope);
NB_API nb_tensor *nb_elu(nb_tensor *x, float alpha);
NB_API nb_tensor *nb_softplus(nb_tensor *x, float beta, float threshold);
NB_API nb_tensor *nb_silu(nb_tensor *x, float beta);
NB_API nb_tensor *nb_mish(nb_tensor *x);
NB_API nb_tensor *nb_gelu(nb_tensor *x);
NB_API nb_tensor *nb_atan(nb_tensor *x);
NB_API nb_tensor *nb_softsign(nb_tensor *x);
NB_API nb_tensor *nb_prelu(nb_tensor *x, nb_tensor *alpha); /* alpha: [1] or [channels] (dim 1) */

/* ---------------------------------------------------------------- modules
 * Every module below is an object of a class made with nabla/module.h, as a user's are. */

/* y = m(x) for a module of one input and one output (every layer here); NULL with NB_ERR_NULL
 * for a NULL m or a NULL or dead x, NB_ERR_ARG for a module of other counts (use
 * nb_module_forward_n) or one without a forward (a ModuleList), else the module's error. */
NB_API nb_tensor *nb_module_forward(nb_module *m, nb_tensor *x);
NB_API void nb_module_free(nb_module *m);
NB_API void nb_module_train(nb_module *m, bool training); /* recursive; modules start in training */
NB_API bool nb_module_is_training(const nb_module *m);
NB_API const char *nb_module_type(const nb_module *m);     /* "Linear" */

/* Parameters in torch's named_parameters() order (own first, then children in order).
 * nb_module_param gives parameter i (NULL with NB_ERR_ARG when out of range) and, when name is
 * not NULL, its full state_dict name relative to m, of any length.  The name belongs to m and
 * stays valid until m is freed, through later lookups and modules appended below m.  The first
 * lookup after the tree changed builds m's name table (allocates; do not race it from several
 * threads); later ones allocate nothing. */
NB_API int nb_module_num_params(const nb_module *m);
NB_API nb_tensor *nb_module_param(const nb_module *m, int i, const char **name);
/* Copies up to cap parameter handles into out; returns how many there are. */
NB_API int nb_module_parameters(const nb_module *m, nb_tensor **out, int cap);
NB_API int64_t nb_module_num_elements(const nb_module *m); /* total parameter count */
/* Buffers (BatchNorm's running statistics) in torch's named_buffers() order; names as above. */
NB_API int nb_module_num_buffers(const nb_module *m);
NB_API nb_tensor *nb_module_buffer(const nb_module *m, int i, const char **name);
/* A parameter or buffer by its state_dict name; NULL with NB_ERR_ARG when absent. */
NB_API nb_tensor *nb_module_find(const nb_module *m, const char *name);
/* The child at a dotted path ("0", "body.1"); NULL with NB_ERR_ARG when absent. */
NB_API nb_module *nb_module_child(const nb_module *m, const char *path);
/* Freezing: requires_grad off (frozen) or on for every parameter of m. */
NB_API nb_status nb_module_freeze(nb_module *m, bool frozen);
/* torch-style repr: Sequential(\n  (0): Linear(in_features=784, out_features=64, bias=True) ...
 * — each module's attributes (nb_module_describe) as torch's extra_repr writes them. */
NB_API nb_status nb_module_fprint(FILE *f, const nb_module *m);

/* y = x W^T + b; W [out, in] and b [out] initialised as torch's Linear (uniform in
 * +-1/sqrt(in)), drawn from the library's generator. */
NB_API nb_module *nb_linear_new(int64_t in_features, int64_t out_features, bool bias);
/* Takes ownership of the modules (also when it fails).  Children are named "0", "1", ... */
NB_API nb_module *nb_sequential_new(int n, nb_module *const *modules);
NB_API nb_status nb_sequential_append(nb_module *seq, nb_module *m); /* takes ownership */
NB_API nb_module *nb_flatten_new(int start_dim, int end_dim);        /* torch default: 1, -1 */
/* param as nb_activate's; NB_ERR_ARG when it is not finite, negative for Softplus, or nonzero
 * for an activation that takes none (a ReLU given a slope is a mistake, not a wish). */
NB_API nb_module *nb_activation_new(nb_activation act, float param);
NB_API nb_module *nb_prelu_new(int64_t num_parameters, float init); /* torch default: 1, 0.25; init finite */
/* Inverted dropout: zeroes with probability p and scales the rest by 1/(1-p) in training;
 * the identity in eval mode.  p in [0, 1] as torch (1 zeroes everything); NaN is NB_ERR_ARG. */
NB_API nb_module *nb_dropout_new(float p);

typedef struct {
    float eps;      /* > 0; 0 means 1e-5 */
    float momentum; /* in [0, 1]; 0 means 0.1, NB_ZERO means 0 (running stats frozen);
                       running = (1 - momentum) running + momentum batch */
    bool no_affine; /* torch affine=False */
    bool no_running_stats; /* torch track_running_stats=False */
} nb_batchnorm_opts;
/* BatchNorm1d on [N, C] or [N, C, L]: normalises with the batch mean and biased variance in
 * training and updates running_mean and the unbiased running_var; eval uses running stats.
 * NULL with NB_ERR_ARG for num_features <= 0, a negative or non-finite eps or a momentum outside
 * [0, 1] (NaN included). */
NB_API nb_module *nb_batchnorm1d_new(int64_t num_features, nb_batchnorm_opts opts);
/* Folds an eval-mode BatchNorm1d into the Linear before it: a new Linear computing
 * bn(linear(x)) in one product (W' = s W, b' = s (b - mean) + beta, s = gamma / sqrt(var+eps)). */
NB_API nb_module *nb_linear_fold_batchnorm(const nb_module *linear, const nb_module *batchnorm);
/* LayerNorm over the last ndim dims (shape normalized_shape), eps > 0 (0 means 1e-5; a
 * negative or non-finite eps is NB_ERR_ARG). */
NB_API nb_module *nb_layernorm_new(int ndim, const int64_t *normalized_shape, float eps, bool affine);
/* H(x) = F(x) + S(x): S is `shortcut`, or the identity when NULL.  Takes ownership of both.
 * Children: "body", "shortcut". */
NB_API nb_module *nb_residual_new(nb_module *body, nb_module *shortcut);
/* A residual whose shortcut is a bias-free Linear projection when in != out sizes. */
NB_API nb_module *nb_residual_linear_new(nb_module *body, int64_t in_features, int64_t out_features);
/* Branches applied to the same input, results concatenated along dim (a DAG: Inception-like).
 * Takes ownership; children "0", "1", ... */
NB_API nb_module *nb_concat_new(int n, nb_module *const *branches, int dim);
/* Low-rank bottleneck n -> k -> m: Linear(n, k, no bias) then Linear(k, m, bias). */
NB_API nb_module *nb_bottleneck_new(int64_t n, int64_t k, int64_t m);

/* ---------------------------------------------------------------- convolutional modules
 * NCHW, as torch.nn.  Parameters: a Conv2d has ((kh kw) C_in / groups + 1) C_out of them with
 * a bias; its default initialisation is torch's (uniform in +-1/sqrt(C_in / groups kh kw)).
 */
NB_API nb_module *nb_conv2d_new(int64_t in_channels, int64_t out_channels, int kh, int kw,
                         nb_conv2d_opts opts, bool bias);
NB_API nb_module *nb_conv_transpose2d_new(int64_t in_channels, int64_t out_channels, int kh, int kw,
                                   nb_conv_transpose2d_opts opts, bool bias);
NB_API nb_module *nb_max_pool2d_new(nb_pool2d_opts opts);
NB_API nb_module *nb_avg_pool2d_new(nb_pool2d_opts opts);
NB_API nb_module *nb_global_avg_pool2d_new(void);            /* AdaptiveAvgPool2d(1) */
NB_API nb_module *nb_upsample_new(int scale, bool bilinear); /* align_corners=False */
/* BatchNorm2d: BatchNorm1d's rules per channel over N, H and W. */
NB_API nb_module *nb_batchnorm2d_new(int64_t num_features, nb_batchnorm_opts opts);
/* Folds an eval-mode BatchNorm2d into the Conv2d before it, as nb_linear_fold_batchnorm does
 * for a Linear: a new Conv2d (the same sizes and options, with a bias) computing bn(conv(x)) in
 * one convolution, W'[o] = s_o W[o], b'_o = s_o (b_o - mean_o) + beta_o with
 * s_o = gamma_o / sqrt(running_var_o + eps).  Neither input changes and no random numbers are
 * drawn; the caller owns the result (in the conv's train/eval mode).  NULL with NB_ERR_ARG
 * unless conv is a Conv2d and batchnorm a BatchNorm2d with running stats over its out_channels. */
NB_API nb_module *nb_conv2d_fold_batchnorm(const nb_module *conv, const nb_module *batchnorm);
/* Dropout2d: zeroes whole channels with probability p (scaled by 1/(1-p)) in training. */
NB_API nb_module *nb_dropout2d_new(float p);
/* Reshapes each sample (the dims after the batch dim) to `shape` — torch's nn.Unflatten(1, shape). */
NB_API nb_module *nb_unflatten_new(int ndim, const int64_t *shape);

/* Blocks.  ResNet (He et al. 2016): basic = conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU;
 * bottleneck = conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1-BN, + shortcut, ReLU, with
 * out = 4 mid.  The shortcut is a 1x1 conv + BN when the stride or the channels change.
 * MobileNet (Howard et al. 2017): depthwise 3x3 (stride) - BN - ReLU - pointwise 1x1 - BN - ReLU.
 * UNet (Ronneberger et al. 2015): `depth` encoder levels of two conv3x3-BN-ReLU then a 2x2 max
 * pool, a bottom, and decoder levels that upsample (transposed conv 2x2 stride 2), concatenate
 * the encoder's skip and apply two conv3x3-BN-ReLU; a 1x1 conv gives out_channels.  Channels
 * double per level from `base`; H and W must be divisible by 2^depth. */
NB_API nb_module *nb_resnet_basic_block_new(int64_t in_channels, int64_t out_channels, int stride);
NB_API nb_module *nb_resnet_bottleneck_new(int64_t in_channels, int64_t mid_channels, int stride);
NB_API nb_module *nb_mobilenet_block_new(int64_t in_channels, int64_t out_channels, int stride);
NB_API nb_module *nb_unet_new(int64_t in_channels, int64_t out_channels, int64_t base, int depth);

/* ---------------------------------------------------------------- transfer learning
 * Reusing a trained network (the course's feature extractor A' under a new head B), as a recipe
 * over these calls (tests/test_lora.c does each step; `nabla finetune` is the same):
 *   1. build the pretrained model and load its weights: nb_module_load (nabla's files), or
 *      nb_module_load_nonstrict (torch's, which may hold more);
 *   2. nb_sequential_cut(model, "NAME"): keep the layers up to and including NAME;
 *   3. nb_sequential_append(model, head): the new head for the new classes;
 *   4. freeze the backbone: nb_module_freeze(model, true), then nb_module_freeze(head, false);
 *   5. one optimiser with two groups from the start, the head's parameters at lr and the
 *      backbone's at a smaller lr (nb_optim_add_group): a frozen parameter gets no gradient and
 *      the optimiser skips it, so unfreezing later is nb_module_freeze(model, false) between
 *      epochs (an nb_fit epoch callback), with nothing else to change.
 * Layer-wise training (train f1 with a head, freeze f1, add f2 with a new head, ...) is steps 2
 * to 4 repeated, one layer at a time (test_lora.c's layerwise_training_*).  LoRA (nabla/lora.h)
 * is the other way to fine-tune: the backbone frozen, low-rank updates beside its layers.
 */
/* Keeps seq's children up to and including the one named name ("3"), freeing those after it.
 * NB_ERR_ARG naming it when seq is not a Sequential or has no child of that name (seq is then
 * unchanged), NB_ERR_NULL for NULL. */
NB_API nb_status nb_sequential_cut(nb_module *seq, const char *name);
/* m's parameters that require grad (not frozen), in named_parameters() order: copies up to cap
 * handles into out and returns how many there are; nb_module_num_trainable counts their
 * elements (what an optimiser trains).  0 for NULL. */
NB_API int nb_module_trainable_parameters(const nb_module *m, nb_tensor **out, int cap);
NB_API int64_t nb_module_num_trainable(const nb_module *m);

/* ---------------------------------------------------------------- initialisation
 * In-place fills of a parameter, drawn from the library's generator (nb_manual_seed).
 * fan_in / fan_out as torch: [out, in, k...] -> in*prod(k), out*prod(k).
 * Errors: NB_ERR_ARG for a non-finite value, low > high, std < 0, a gain < 0 or an unknown
 * mode (torch's uniform_ / normal_ checks, NaN and infinities refused too); NB_ERR_SHAPE when
 * xavier or kaiming get a tensor of fewer than 2 dims; NB_ERR_DTYPE for a non-f32 tensor. */
typedef enum { NB_FAN_IN, NB_FAN_OUT } nb_fan_mode;
typedef enum {
    NB_GAIN_LINEAR, NB_GAIN_SIGMOID, NB_GAIN_TANH, NB_GAIN_RELU, NB_GAIN_LEAKY_RELU, NB_GAIN_SELU
} nb_nonlinearity;
NB_API float nb_init_gain(nb_nonlinearity nl, float param); /* torch.nn.init.calculate_gain */
NB_API nb_status nb_init_constant(nb_tensor *t, float value);
NB_API nb_status nb_init_uniform(nb_tensor *t, float low, float high);
NB_API nb_status nb_init_normal(nb_tensor *t, float mean, float std);
NB_API nb_status nb_init_xavier_uniform(nb_tensor *t, float gain);
NB_API nb_status nb_init_xavier_normal(nb_tensor *t, float gain);
/* a: the negative slope for leaky_relu (0 for relu) */
NB_API nb_status nb_init_kaiming_uniform(nb_tensor *t, float a, nb_fan_mode mode, nb_nonlinearity nl);
NB_API nb_status nb_init_kaiming_normal(nb_tensor *t, float a, nb_fan_mode mode, nb_nonlinearity nl);

/* Schemes for a whole model (the course's He-vs-Xavier experiment).  Each draws the weight of
 * every Linear, Conv2d and ConvTranspose2d in the tree, in named_parameters() order:
 *   XAVIER_UNIFORM  U(-a, a), a = gain sqrt(6 / (fan_in + fan_out))    (Glorot & Bengio 2010)
 *   XAVIER_NORMAL   N(0, std^2), std = gain sqrt(2 / (fan_in + fan_out))
 *   KAIMING_UNIFORM U(-b, b), b = gain sqrt(3 / fan)                   (He et al. 2015)
 *   KAIMING_NORMAL  N(0, std^2), std = gain / sqrt(fan)
 * DEFAULT changes nothing: the constructors' draws are torch's defaults. */
typedef enum {
    NB_INIT_DEFAULT, NB_INIT_XAVIER_UNIFORM, NB_INIT_XAVIER_NORMAL, NB_INIT_KAIMING_UNIFORM,
    NB_INIT_KAIMING_NORMAL, NB_INIT_COUNT
} nb_init_scheme;

typedef struct {
    nb_init_scheme scheme;
    /* 0: torch's default gain, 1 for xavier and sqrt 2 for kaiming (torch's kaiming_*_ with
     * a = 0, the ReLU gain); else e.g. nb_init_gain(NB_GAIN_TANH, 0), or 1 for LeCun's init. */
    float gain;
    nb_fan_mode mode; /* kaiming's fan: NB_FAN_IN (zero, torch's default) or NB_FAN_OUT */
    /* false (zero): biases of those layers are set to 0, as in the experiment; true: they keep
     * the constructors' values (torch's U(+-1/sqrt(fan_in))). */
    bool keep_bias;
} nb_init_opts;

/* Applies opts to every Linear and convolution of m (children included); other layers
 * (norms, PReLU) keep their values.  NB_ERR_NULL for a NULL m, NB_ERR_ARG for an unknown scheme
 * or mode or a negative or non-finite gain; m is unchanged on those errors. */
NB_API nb_status nb_module_init(nb_module *m, nb_init_opts opts);
/* "default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"; parse
 * returns false (scheme untouched) for any other name, name gives "unknown" for a bad value. */
NB_API const char *nb_init_name(nb_init_scheme scheme);
NB_API bool nb_init_parse(const char *name, nb_init_scheme *scheme);

#ifdef __cplusplus
}
#endif
#endif
