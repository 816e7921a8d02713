/*
 * nabla/lora.h — LoRA (Hu et al. 2021): low-rank adapters on a trained model's Linear and Conv2d
 * layers, as Hugging Face's PEFT makes them.
 *
 * A layer y = W0 x (+ b) becomes
 *
 *     y = W0 x (+ b) + s B A dropout(x),    s = alpha / r,
 *
 * with A [r, in] and B [out, r] (a Conv2d's A is a Conv2d in -> r with the layer's kernel,
 * stride, padding and dilation, its B a 1x1 Conv2d r -> out).  A starts as PEFT's
 * kaiming_uniform_(a = sqrt 5) and B as zeros, so training starts from the model as it was; W0
 * and b stay frozen and only A and B learn: r (in + out) numbers (times kh kw for A of a conv)
 * instead of in out.  After training the update folds into the weight, W = W0 + s B A (a
 * conv's: B [out, r] times A [r, in kh kw], reshaped), and the layer costs nothing more.
 *
 * The wrapped layer is a module of class "lora.Linear" / "lora.Conv2d" in the place of the old
 * one, under the same name, with PEFT's children: "base_layer" (the layer itself, so its
 * parameters become "<layer>.base_layer.weight"), "lora_dropout" (Dropout, or Identity for p = 0),
 * "lora_A" and "lora_B".  Its repr is PEFT's lora.Linear's without the ModuleDict level.
 *
 * Adapter files.  nb_lora_save writes only A and B, under PEFT's names in adapter_model.safetensors
 * — "base_model.model.<layer>.lora_A.weight" and "...lora_B.weight" — with the metadata
 * "format": "pt", "r" and "lora_alpha" (PEFT keeps those two in adapter_config.json).
 */
/* Included by nabla.h (inside its extern "C"); include that one. */
#ifndef NABLA_LORA_H
#define NABLA_LORA_H

typedef struct nb_module nb_module;

typedef struct {
    int rank;      /* r >= 1 */
    float alpha;   /* > 0 and finite: the update is scaled by alpha / r (PEFT's lora_alpha) */
    float dropout; /* in [0, 1): dropout on the adapter's input in training (0: none) */
} nb_lora_opts;

/* Wraps each of model's layers named by targets[0 .. n_targets-1] (paths as nb_module_child
 * takes them: "0", "body.1") in a LoRA layer (above), then freezes every parameter of model but
 * the adapters' A and B, as PEFT's get_peft_model does (unfreeze a new head yourself:
 * nb_module_freeze(head, false)).  A draws from the library's generator.  Everything is checked
 * before anything changes: NB_ERR_ARG naming the target for a path that is not a layer of
 * model, a layer that is not a Linear or a Conv2d (a Conv2d with groups > 1 included, or one
 * already wrapped), a name given twice, or n_targets < 1; NB_ERR_ARG naming the option for a
 * rank < 1, an alpha <= 0 or not finite, a dropout outside [0, 1); NB_ERR_NULL for NULL. */
NB_API nb_status nb_lora_apply(nb_module *model, int n_targets, const char *const *targets,
                               nb_lora_opts opts);
/* The LoRA layers in model's tree (0 for none or NULL). */
NB_API int nb_lora_count(const nb_module *model);
/* Merge: W0 += s B A in every LoRA layer not merged yet, after which its forward is the base
 * layer's alone (same outputs to rounding); unmerge: W0 -= s B A, back to the adapter path.
 * NB_ERR_ARG when model has no LoRA layer, NB_ERR_NULL for NULL. */
NB_API nb_status nb_lora_merge(nb_module *model);
NB_API nb_status nb_lora_unmerge(nb_module *model);

/* PEFT's merge_and_unload: merges every LoRA layer and puts its base layer back in its place,
 * so model is a plain one again (names "<layer>.weight") with the update in its weights; the
 * adapters are freed.  Which parameters are frozen does not change.  Errors as nb_lora_merge's. */
NB_API nb_status nb_lora_unload(nb_module *model);

/* Writes the adapters of model alone (above) to path, atomically, as nb_safetensors_save.
 * NB_ERR_ARG when model has no LoRA layer. */
NB_API nb_status nb_lora_save(const nb_module *model, const char *path);
/* Loads an adapter file onto model: tensor names with or without PEFT's "base_model.model."
 * prefix.  A layer the file names that is still a plain Linear or Conv2d is wrapped first (rank
 * from the file's A, alpha from the metadata "lora_alpha", which nabla writes — for a PEFT file,
 * call nb_lora_apply with its adapter_config.json's values first); the model is not frozen.
 * Everything is checked before anything changes: NB_ERR_IO for a file that cannot be read, a
 * tensor name that is not a LoRA one, a layer with A and not B (or the reverse), a LoRA layer of
 * the model the file lacks; NB_ERR_ARG naming the layer when it is not a Linear or Conv2d of
 * model, or the metadata needed is missing; NB_ERR_SHAPE naming the tensor and both shapes when
 * the file's adapter does not fit the layer (an adapter of another base model). */
NB_API nb_status nb_lora_load(nb_module *model, const char *path);

#endif
