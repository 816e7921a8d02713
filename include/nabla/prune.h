/*
 * nabla/prune.h — unstructured pruning with masks, as torch.nn.utils.prune does it: by
 * magnitude (per parameter or global) and by Optimal Brain Damage (LeCun, Denker and Solla 1990);
 * after them, structured pruning that removes neurons, channels and residual blocks, and the
 * schedules (one-shot, Zhu and Gupta's cubic ramp) that say when to prune while fine-tuning.
 *
 * A pruned parameter keeps its name and its place: its pruned elements are set to 0 in place,
 * and a mask (1 kept, 0 pruned, float32, the parameter's shape) is added next to it as a buffer
 * of the same module named "<param>_mask" ("0.weight" -> "0.weight_mask", torch's name; torch
 * also renames the parameter "weight_orig", nabla does not).  The mask keeps pruned weights at
 * zero while the model trains on:
 *   - a gradient hook on the parameter (nb_tensor_register_hook) multiplies its gradient by the
 *     mask, so pruned elements get a zero gradient: what torch's weight = weight_orig * mask
 *     gives, and what gradient clipping by norm and the optimisers' moments then see;
 *   - nb_prune_apply(model), called after each optimiser step, multiplies the weights by their
 *     masks again.  The hook alone does not suffice: an optimiser's state from before pruning
 *     (SGD's momentum, Adam's moments) still moves a weight whose gradient is now zero.
 * nb_prune_remove makes the pruning permanent (torch's prune.remove): the zeros stay, the mask
 * and the hook go, and the model saves as a plain one.  While masks are on, a saved file carries
 * them as buffers, as torch's state_dict does.
 *
 * Pruning a parameter again prunes `amount` of the whole tensor, counting what is pruned
 * already (its pruned elements rank first), and the new mask is the old one times the new: a
 * target sparsity, as a gradual schedule needs (torch's repeated prune takes the amount of what
 * remains instead).
 */
/* Included by nabla.h (inside its extern "C"); include that one. */
#ifndef NABLA_PRUNE_H
#define NABLA_PRUNE_H

typedef struct nb_module nb_module;

/* ---------------------------------------------------------------- by magnitude
 * torch's l1_unstructured on each parameter named (full names, "0.weight"): the round(amount *
 * numel) elements of smallest |w| (rounded half to even, as Python's round; amount * numel is
 * computed in double from the float amount, so 0.35f * 10 is 3.4999999 -> 3 where torch's 0.35
 * gives 4) are pruned.  Ties: among equal scores the element of lower flat index is pruned first
 * (in the global form, of the parameter named first); torch's topk leaves the order of ties
 * unspecified.  The global form is torch's global_unstructured with L1Unstructured:
 * one ranking over the elements of all the parameters named together, so each layer ends at its
 * own sparsity.  Everything is checked before anything changes: NB_ERR_ARG for an amount outside
 * [0, 1), a name that is not a parameter of model (named in the message), a name given twice or
 * n < 1; NB_ERR_NULL for NULL. */
NB_API nb_status nb_prune_magnitude(nb_module *model, int n, const char *const *names, float amount);
NB_API nb_status nb_prune_global_magnitude(nb_module *model, int n, const char *const *names,
                                           float amount);

/* Multiplies every masked parameter of model by its mask (no gradient recorded): call it after
 * each optimiser step while fine-tuning.  NB_ERR_NULL for NULL; a model without masks is NB_OK. */
NB_API nb_status nb_prune_apply(nb_module *model);
/* torch's prune.remove on each parameter named: the mask and the hook are dropped, the zeros
 * stay.  NB_ERR_ARG naming a parameter that is not pruned (nothing changed). */
NB_API nb_status nb_prune_remove(nb_module *model, int n, const char *const *names);

/* One parameter's sparsity: its elements, and those that are exactly 0. */
typedef struct {
    const char *name; /* the model's full name, valid as long as the model */
    int64_t numel, zeros;
    bool masked; /* it carries a pruning mask */
} nb_prune_layer;
/* Every parameter of model in state_dict order into layers[0 .. cap-1]; returns how many
 * parameters model has (-1 with NB_ERR_NULL for NULL), as nb_module_parameters counts.  When not
 * NULL, *global_masked gets the fraction of zeros over the masked parameters together (0 when
 * none) and *global_all over all parameters. */
NB_API int nb_prune_sparsity(const nb_module *model, nb_prune_layer *layers, int cap,
                             double *global_masked, double *global_all);

/* ---------------------------------------------------------------- Optimal Brain Damage
 * Saliency of weight i: s_i = w_i^2 H_ii / 2, the loss's rise to second order when w_i is set
 * to 0, at a minimum (gradient 0) and with the Hessian taken as diagonal: OBD's form.  (The
 * issue's a_i^2 / [H^-1]_ii is Optimal Brain Surgeon's, which needs the inverse Hessian; nabla
 * implements OBD.)  H_ii is the diagonal of the Hessian of the loss, averaged over `batches`
 * batches: for each batch b, loss(model, b, ctx) builds the one-element loss with ops (with the
 * graph: grad mode on, the model in the mode the caller chose).  Per parameter:
 *   - exact, when it has at most exact_max elements: one backward pass through the gradient's
 *     graph (create_graph) per element, each giving a row of H, whose element i is H_ii.  The
 *     cost is numel passes per batch, which is why there is a cap;
 *   - Hutchinson's estimate (nb_hessian_diagonal_estimate) with `samples` Rademacher vectors per
 *     batch otherwise: mean H_ii, variance sum_{j != i} H_ij^2 / samples.
 * `used[k]` says which each parameter got. */
typedef nb_tensor *(*nb_prune_loss_fn)(nb_module *model, int batch, void *ctx);
typedef enum { NB_HESSIAN_EXACT, NB_HESSIAN_HUTCHINSON } nb_hessian_estimate;
#define NB_OBD_EXACT_MAX 4096 /* exact_max's default */
#define NB_OBD_SAMPLES 64     /* samples' default */
typedef struct {
    nb_prune_loss_fn loss; /* required */
    void *ctx;
    int batches;       /* >= 1; 0 means 1 */
    int64_t exact_max; /* 0: NB_OBD_EXACT_MAX; negative: Hutchinson for every parameter */
    int samples;       /* >= 1; 0: NB_OBD_SAMPLES */
    bool global;       /* nb_prune_obd: one ranking over all parameters named (else each apart) */
} nb_obd_opts;

/* The saliencies of the parameters named, one new tensor each of its shape (owned like any
 * result), and the estimate each used (used may be NULL).  On failure every saliency[k] is NULL:
 * NB_ERR_ARG for a bad name (as above) or option, NB_ERR_NULL for NULL, and the loss function's
 * or the Hessian's errors as they are. */
NB_API nb_status nb_obd_saliency(nb_module *model, int n, const char *const *names,
                                 const nb_obd_opts *opts, nb_tensor **saliency,
                                 nb_hessian_estimate *used);
/* Prunes the round(amount * numel) weights of lowest saliency of each parameter named (or of all
 * together with opts->global), ties and masks as nb_prune_magnitude's.  Errors as
 * nb_obd_saliency's and nb_prune_magnitude's; nothing changes on failure. */
NB_API nb_status nb_prune_obd(nb_module *model, int n, const char *const *names, float amount,
                              const nb_obd_opts *opts, nb_hessian_estimate *used);

/* ---------------------------------------------------------------- structured: units removed
 * Linear neurons and Conv2d output channels taken out of a Sequential (src/nn/prune_channels.c):
 * the layer gets smaller, the BatchNorms on its channels lose their entries (weight, bias,
 * running mean and variance), and the next Linear or Conv2d loses the inputs those units fed:
 * its columns, its input channels, or after a Flatten of [N, C, H, W] the C's column blocks of
 * H W.  Between the layer and that consumer only BatchNorms, element-wise activations (no
 * softmax, no PReLU), dropouts, pools, Upsample, Identity and a Flatten(1, -1) may stand.  Layers
 * are named by their child names in the Sequential ("3"); they are replaced by new modules of the
 * smaller sizes with the same options, mode and frozen state (hooks registered on the old ones
 * go with them), so handles on their parameters are stale after the call.  The smaller model
 * computes exactly what the big one computes with the removed units' rows, biases and
 * BatchNorm weight and bias set to 0, as long as the chain's activations map 0 to 0.
 * Errors (NB_ERR_ARG naming the layer, nothing changed): seq not a Sequential, no such child, a
 * child that is not a Linear or a Conv2d of groups 1, one that no Linear or Conv2d reads (the
 * model's outputs), a layer between them that cannot be cut, a pruning mask on any of them
 * (nb_prune_remove first); NB_ERR_NULL for NULL. */
typedef enum { NB_PRUNE_L1 = 1, NB_PRUNE_L2 = 2 } nb_prune_norm;
/* Removes round(amount * units) units of each layer named (half to even, at least one stays),
 * those whose weight row (W[u], all its inputs and kernel) has the smallest L1 or L2 norm, as
 * torch's ln_structured(dim=0) ranks them; ties: lower index first.  amount in [0, 1).  Layers
 * are pruned in the order named, each ranked after the one before has cut its inputs. */
NB_API nb_status nb_prune_channels(nb_module *seq, int n, const char *const *layers, float amount,
                                   nb_prune_norm norm);
/* Keeps units keep[0 .. n_keep-1] (increasing, in [0, units)) of the layer named and removes the
 * others, as nb_prune_channels does. */
NB_API nb_status nb_prune_units_keep(nb_module *seq, const char *layer, int64_t n_keep,
                                     const int64_t *keep);
/* The children of seq that nb_prune_channels can prune, in order: up to cap names into names
 * (valid while seq keeps its children; names may be NULL), returns how many; -1 with the error
 * set when seq is NULL or not a Sequential. */
NB_API int nb_prune_channel_layers(const nb_module *seq, const char **names, int cap);

/* ---------------------------------------------------------------- residual blocks
 * A residual block y = relu(F(x) + x) (BasicBlock, Bottleneck) or y = F(x) + x (Residual)
 * without a projection on its shortcut is the identity where F(x) ~ 0; the course removes the
 * blocks whose removal costs least on a validation split, then fine-tunes.  Candidates: the
 * children of a Sequential that are such blocks (a downsampling block changes the shape and
 * stays).  Greedy, as torch users do it by hand: each candidate in turn is swapped for an
 * Identity and eval(model, ctx) measured; the one whose removal raises the measure least is
 * replaced by an Identity (nb_activation_new(NB_ACT_IDENTITY, 0), child name unchanged), and
 * the search repeats on the smaller model until `count` are gone.  eval returns what to keep
 * small (a validation loss, or an error rate) and NaN on failure, with the error set; it runs
 * with the model as the caller left it (eval mode, usually).  removed[k] gets the k-th block's
 * name (valid as long as seq) and cost[k] its measure once removed minus the measure before (both
 * may be NULL).  NB_ERR_ARG for count < 1 or more than the candidates, seq not a Sequential;
 * eval's error as it left it, the model then as it was before that round. */
typedef double (*nb_prune_eval_fn)(nb_module *model, void *ctx);
NB_API nb_status nb_prune_blocks(nb_module *seq, int count, nb_prune_eval_fn eval, void *ctx,
                                 const char **removed, double *cost);
/* The children of seq nb_prune_blocks may remove, as nb_prune_channel_layers lists. */
NB_API int nb_prune_block_candidates(const nb_module *seq, const char **names, int cap);

/* ---------------------------------------------------------------- schedules
 * When to prune while fine-tuning, and to which sparsity.  One-shot: once, at step `start`, to
 * `final`.  Zhu and Gupta's cubic ramp ("To prune, or not to prune", 2017): at steps
 * t = start + k every, k = 0 .. steps, the sparsity
 *     s_t = s_f + (s_i - s_f) (1 - (t - start) / (steps every))^3
 * rises from `initial` to `final`, fast at first while redundant weights abound, slowly at the
 * end; between pruning steps the masks hold (nb_prune_apply after each optimiser step).  As
 * pruning again counts what is pruned already (above), each step prunes to s_t of the whole. */
typedef enum { NB_PRUNE_ONESHOT, NB_PRUNE_CUBIC } nb_prune_schedule_kind;
typedef struct {
    nb_prune_schedule_kind kind;
    float initial, final; /* s_i (cubic only) and s_f, in [0, 1) */
    int64_t start;        /* t0, >= 0 */
    int64_t every;        /* dt >= 1 (cubic) */
    int steps;            /* n >= 1 (cubic) */
} nb_prune_schedule;
/* Whether step t (counted from 0) prunes, and then *sparsity (may be NULL) gets s_t.  false with
 * NB_ERR_ARG for a schedule out of range (NB_ERR_NULL for NULL); false, no error set, otherwise. */
NB_API bool nb_prune_schedule_at(const nb_prune_schedule *s, int64_t t, float *sparsity);

#endif
