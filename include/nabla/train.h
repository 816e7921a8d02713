/*
 * nabla/train.h — the training side: the training loop (nb_fit) and evaluation, metrics, a
 * progress bar, learning curves (SVG + CSV).  Weights, checkpoints and model files, which the
 * loop writes and reads, are in nabla/io.h.
 */
#ifndef NABLA_TRAIN_H
#define NABLA_TRAIN_H

#include "../nabla.h"

/* declared again here (C11 allows it) so this header works whichever topic header comes first */
typedef struct nb_module nb_module;
typedef struct nb_optim nb_optim;
typedef struct nb_sched nb_sched;
typedef struct nb_loader nb_loader;
typedef struct nb_grad_scaler nb_grad_scaler;

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- metrics */

/* Number of rows of logits [N, C] whose argmax equals the int32 label [N]; -1 on error
 * (NB_ERR_SHAPE for other shapes, NB_ERR_DTYPE for labels that are not int32). */
NB_API int64_t nb_count_correct(nb_tensor *logits, nb_tensor *labels);
/* The confusion matrix of n predictions: counts[t * classes + p] is how many samples of true
 * class t were predicted p (counts[classes * classes], overwritten).  NB_ERR_ARG naming the first
 * sample whose class is outside [0, classes), or classes < 1 or n < 0; NB_ERR_NULL. */
NB_API nb_status nb_confusion_matrix(const int32_t *truth, const int32_t *pred, int64_t n,
                                     int32_t classes, int64_t *counts);
/* Macro-averaged F1 of a confusion matrix (scikit-learn's f1_score(average='macro')): the mean
 * over classes of 2 TP / (2 TP + FP + FN), over the classes that occur as a true or a predicted
 * class (a class with TP = 0 counts 0); 0 when no class occurs, NaN for NULL or classes < 1. */
NB_API double nb_macro_f1(const int64_t *counts, int32_t classes);

/* ---------------------------------------------------------------- progress bar
 * On a terminal: one line redrawn in place (at most 10 times a second):
 *   epoch 3/10 |██████████▌         | 470/938 [00:02<00:02, 196.3 it/s] loss 0.412
 * Elsewhere (a file, a pipe, CI): one plain line when the bar finishes, so logs stay readable.
 */
typedef struct nb_progress nb_progress;
NB_API nb_progress *nb_progress_new(FILE *out, const char *label, int64_t total);
/* Sets the number of finished steps and the text shown after the bar (may be NULL). */
NB_API void nb_progress_update(nb_progress *p, int64_t done, const char *postfix);
NB_API void nb_progress_finish(nb_progress *p, const char *postfix); /* prints the final state */
NB_API void nb_progress_free(nb_progress *p);
/* Formats seconds as mm:ss or h:mm:ss into buf. */
NB_API void nb_format_duration(double seconds, char *buf, size_t cap);

/* ---------------------------------------------------------------- learning curves
 * Per-epoch series (train loss, test loss, train accuracy, test accuracy), written as CSV and as
 * an SVG picture with two panels (loss; accuracy), train against test as in the course's plot.
 */
typedef struct nb_curves nb_curves;
NB_API nb_curves *nb_curves_new(void);
NB_API nb_status nb_curves_add(nb_curves *c, float train_loss, float test_loss, float train_acc,
                        float test_acc); /* NAN where a value is not measured */
NB_API int nb_curves_len(const nb_curves *c);
/* Names for series of another kind than image training's (NULL keeps a name): the x axis
 * (default "epoch"), the second panel's measure ("accuracy") and the held-out set ("test").
 * With any name set, the CSV's header is "X,train_loss,HELD_loss,train_METRIC,HELD_METRIC"
 * (`nabla text gpt`: step, perplexity, val); the SVG's second panel is titled METRIC
 * capitalised, and series of over 100 points are drawn without dots.  NB_ERR_ARG for a name
 * that is empty, over 31 bytes, or holds a comma, quote, <, >, & or newline. */
NB_API nb_status nb_curves_set_names(nb_curves *c, const char *x, const char *metric, const char *held_out);
/* The values of one epoch (0-based): train loss, test loss, train accuracy, test accuracy. */
NB_API nb_status nb_curves_get(const nb_curves *c, int epoch, float values[4]);
/* Both write atomically (see nabla/io.h): on failure (NB_ERR_IO naming the file and the cause)
 * the file at path is left as it was. */
NB_API nb_status nb_curves_write_csv(const nb_curves *c, const char *path);
NB_API nb_status nb_curves_write_svg(const nb_curves *c, const char *path, const char *title);
NB_API void nb_curves_free(nb_curves *c);

/* ---------------------------------------------------------------- heatmaps
 * A matrix as a grid of coloured cells, such as attention weights (rows the queries, columns
 * the keys): one panel per matrix, side by side (four to a row), on one colour scale. */
typedef struct {
    const float *values;           /* rows * cols, row-major */
    int rows, cols;                /* 1 .. 1024 each */
    const char *const *row_labels; /* rows strings beside the rows, or NULL: 0, 1, ... */
    const char *const *col_labels; /* cols strings under the columns, or NULL: 0, 1, ... */
    const char *title;             /* above the panel, or NULL */
} nb_heatmap;
/* Writes n panels as one self-contained SVG at path (atomically, as the curves): the colour
 * scale runs from the smallest to the largest finite value of all the panels (viridis, shown
 * as a bar with both ends' values), a non-finite value is a grey cell, and each cell is one
 * <rect> carrying a <title> tooltip "row label, column label: value".  Labels and titles are
 * escaped for XML.  NB_ERR_NULL for a NULL path, panels or values; NB_ERR_ARG for n < 1 or
 * sizes outside 1 .. 1024; NB_ERR_IO naming the file when it cannot be written (the old file
 * is left as it was). */
NB_API nb_status nb_heatmap_write_svg(const char *path, int n, const nb_heatmap *panels,
                                      const char *title);

/* ---------------------------------------------------------------- evaluation */
typedef struct nb_eval_result {
    double loss;     /* mean cross-entropy per sample */
    double accuracy; /* the fraction of samples whose largest logit is their label */
    int64_t samples;
} nb_eval_result;

/* One pass over ld from its start (nb_loader_reset) in eval mode and without gradients (torch's
 * model.eval() + no_grad); the model's mode is put back.  label_smoothing as nb_ce_opts's.
 * Errors: the failing op's message after "evaluation: "; NB_ERR_ARG for a loader without samples. */
NB_API nb_status nb_evaluate(nb_module *m, nb_loader *ld, float label_smoothing, nb_eval_result *out);

/* ---------------------------------------------------------------- the training loop
 * nb_fit trains a classifier with cross-entropy, epoch after epoch, as the course's loop and Keras's
 * fit do it.  Each epoch: a pass over the shuffled training loader (nb_loader_set_epoch: the
 * batches follow the epoch number, so a resumed run sees the same ones) — zero_grad, forward,
 * loss, backward, clipping, step — with a progress bar; an evaluation pass; the schedule stepped
 * (with the evaluation loss when sched_on_loss); the curves; then the files of the epoch.
 *
 * Files (with opts.out): OUT/curves.csv and OUT/curves.svg, then OUT/checkpoint.safetensors (the
 * model, optimiser, schedule, RNG and the run's progress, so nb_fit_resume continues bit for
 * bit), then OUT/model.safetensors (the weights, with the epoch they were taken after in the
 * metadata "nabla.epoch").  The checkpoint is the truth and is written first; it names the epoch
 * that the model file must hold, so a kill between the two writes is found and repaired by
 * nb_fit_resume.  Writes are atomic.
 *
 * Model selection (select_best, which needs out): the model file is written only when the
 * evaluation loss improves (Keras's ModelCheckpoint(save_best_only)), and at the end the best
 * epoch's weights are put back into the model (restore_best_weights).
 *
 * Divergence: a batch loss that is not finite, or above divergence_factor (100 when 0) times the
 * larger of ln(classes) (an untrained classifier's loss) and the first batch loss of the run (of
 * this process, after a resume), stops the run at that step, as does such an evaluation loss or
 * a weight that is not finite after the epoch.  Nothing of that epoch is saved; nb_fit_run
 * returns NB_ERR_ARG "training diverged at step 3/938 of epoch 2: the loss is nan" and the end is
 * NB_FIT_DIVERGED.
 *
 * Early stopping (early_stop = N): the run ends after N epochs in a row without a lower
 * evaluation loss (and, with select_best, the best weights are put back).
 *
 * The objects stay the caller's; the strings and arrays in the options must outlive the nb_fit.
 */
typedef struct nb_fit_opts {
    int epochs;            /* the run's length in epochs (>= 1), those of a resumed checkpoint included */
    float label_smoothing; /* of the cross-entropy (nb_ce_opts) */
    float clip_norm;       /* clips the gradients' global L2 norm before each step; 0: off */
    int early_stop;        /* epochs without a lower evaluation loss before stopping; 0: off */
    bool select_best;      /* model selection, see above; needs out */
    bool sched_on_loss;    /* the schedule steps with the evaluation loss (nb_plateau_new's) */
    int64_t num_classes;   /* C of the divergence threshold ln(C); 0: the width of the logits */
    double divergence_factor; /* 0: 100 */
    FILE *log;             /* the progress bar and notes go here (stderr, say); NULL: nowhere */
    const char *out;       /* the folder of the files above (it must exist); NULL: no files */
    const char *title;     /* of curves.svg; NULL: "training" */
    /* More metadata for model.safetensors.  "nabla.epoch" is filled in by nb_fit: at its place
     * among meta_keys when it is there (its value is not read), else after them. */
    int n_meta;
    const char *const *meta_keys, *const *meta_values;
    int64_t seed; /* recorded in the checkpoint (nb_fit_info's resumed_seed after a resume) */
    /* Per-parameter gradient norms, as torch users log them with hooks (and as this does: a
     * tensor hook on each parameter that requires grad): the L2 norm of each parameter's
     * gradient in each training step (before clipping), averaged over the epoch's steps, in
     * nb_fit_info's grad_norms and, with out, in OUT/grad_norms.csv (written beside the curves:
     * a row per epoch, "epoch" then a column per parameter by state_dict name).  The checkpoint
     * keeps them, so a resumed run's file has every epoch. */
    bool grad_norms;
    /* Anomaly mode (nb_set_detect_anomaly, nabla/autograd.h) for the run: the first NaN or
     * infinity an op or a backward step makes stops the run with NB_ERR_VALUE and a message naming
     * the op, the layer and the parameter ("training step: backward: 2.weight's gradient via
     * AddmmBackward0 in layer 2 (Linear) is not finite ..."); the end is NB_FIT_FAILED and
     * nothing of that epoch is saved.  The mode is put back as it was after the run.  Slow. */
    bool detect_anomaly;
    /* Knowledge distillation (Hinton et al.): with a teacher, each training batch's loss is
     * nb_distill_loss (nabla/loss.h) of the model's logits against the teacher's on the same
     * batch, at temperature T and with alpha the weight of the soft term (label_smoothing goes
     * to its hard term).  The teacher runs in eval mode and without a graph (torch's
     * teacher.eval() under no_grad), its mode put back after each batch; it stays the caller's,
     * is only read, and must outlive the nb_fit (a resumed run needs the same teacher to continue
     * bit for bit: the checkpoint does not hold it).  Evaluation, model selection and early
     * stopping stay on cross-entropy, the figure that compares a student with anything else.
     * NULL: plain cross-entropy, temperature and alpha unread.  nb_fit_new refuses, with a
     * teacher, a temperature that is not finite and above 0 or an alpha outside [0, 1]
     * (NB_ERR_ARG); a teacher whose logits differ in shape from the model's fails the first
     * step (NB_ERR_SHAPE, naming both shapes). */
    nb_module *teacher;
    float temperature; /* T > 0 */
    float alpha;       /* in [0, 1] */
    /* Called in each training step after backward, before clipping and the optimiser step, with
     * before_step_ctx: data parallel training's nb_ddp_finish (nabla/dist.h), which writes the
     * gradients' mean over ranks.  A status other than NB_OK fails the step.  NULL: nothing. */
    nb_status (*before_step)(void *ctx);
    void *before_step_ctx;
    /* Mixed precision (nabla/amp.h).  autocast: each training forward and loss run under
     * nb_autocast_set(autocast) (NB_BF16 or NB_F16; NB_F32, 0: off); evaluation stays float32.
     * scaler (float16's dynamic loss scaling; NULL: none): each step is torch's GradScaler
     * recipe: backward of the scaled loss, before_step, unscale, clipping, the optimiser's step
     * unless a gradient is Inf or NaN (a skipped step, as torch's), update.  The scaler stays
     * the caller's; the checkpoint does not hold it, so a resumed run starts from the scaler it
     * is given.  nb_fit_new refuses another autocast dtype (NB_ERR_ARG). */
    nb_dtype autocast;
    nb_grad_scaler *scaler;
    /* A training step of another kind in place of the model's forward, loss and backward:
     * pipeline parallel's, which runs each batch through the stages on several ranks in
     * micro-batches (nb_pipe_step, nabla/dist.h), where no forward of the whole model exists on
     * one rank.  step(step_ctx, x, y, true, &loss, &correct), in training mode: adds the batch's
     * gradients to the parameters' .grad (which nb_fit has zeroed) and sets loss (the batch's
     * mean loss) and correct (its rows whose largest logit is their label); nb_fit then checks
     * the loss for divergence (num_classes gives ln(C); 0: ln 2) and does before_step, clipping
     * and the optimiser's step as always.  step(step_ctx, x, y, false, ...) is an evaluation
     * batch (eval mode, no graph): the figures alone.  The model given to nb_fit is what the
     * optimiser, the checkpoint and the model file hold (a pipeline's: this rank's stage), and
     * nb_fit_measure_memory measures a step.  A status other than NB_OK fails the step ("training
     * step: ") or the evaluation.  nb_fit_new refuses a step with a teacher, a scaler or
     * grad_norms (NB_ERR_ARG): they need the loss's graph or each parameter's whole gradient in
     * one backward pass.  Clipping by global norm is right only when this process holds every
     * gradient: not a pipeline stage's.  NULL: the model's forward, loss and backward. */
    nb_status (*step)(void *ctx, nb_tensor *x, nb_tensor *y, bool train, double *loss, int64_t *correct);
    void *step_ctx;
} nb_fit_opts;

/* What a step callback sees: the step just done. */
typedef struct nb_fit_step {
    int64_t epoch;     /* the epoch in progress, from 0 */
    int64_t step, steps; /* steps done in this epoch (from 1) and the epoch's number of steps */
    double loss;       /* this batch's loss */
    double mean_loss;  /* the mean over the epoch's samples so far */
} nb_fit_step;

/* What an epoch callback sees: the epoch just done, before its files are written. */
typedef struct nb_fit_epoch {
    int64_t epoch; /* epochs done, this one included (from 1) */
    int epochs;    /* opts.epochs */
    double train_loss, train_acc, eval_loss, eval_acc;
    double lr;      /* the learning rate of the epoch (group 0), before the schedule's step */
    double seconds; /* the epoch's wall time, training and evaluation */
    bool improved;  /* a lower evaluation loss than any epoch's before */
    double best;    /* the lowest evaluation loss so far */
    int bad_epochs; /* epochs in a row without improvement */
} nb_fit_epoch;

/* Per step and per epoch, with the caller's pointer.  A callback that returns false stops the
 * run: after a step, at once (nothing of that epoch is saved); after an epoch, once the epoch's
 * files are written (as an interrupted run: the best weights are not put back).  Either may be
 * NULL. */
typedef struct nb_fit_callbacks {
    bool (*on_step)(const nb_fit_step *step, void *user);
    bool (*on_epoch)(const nb_fit_epoch *epoch, void *user);
    void *user;
} nb_fit_callbacks;

typedef enum {
    NB_FIT_RUNNING,    /* not run yet, or running */
    NB_FIT_DONE,       /* all epochs done */
    NB_FIT_EARLY_STOP, /* early stopping ended it */
    NB_FIT_STOPPED,    /* a callback stopped it */
    NB_FIT_DIVERGED,   /* see Divergence above */
    NB_FIT_FAILED,     /* an error (nb_fit_run's status) */
} nb_fit_end;

typedef struct nb_fit_info {
    int64_t epoch;        /* epochs done */
    int64_t model_epoch;  /* the epoch whose weights OUT/model.safetensors holds */
    double best;          /* the lowest evaluation loss (INFINITY before any) */
    int bad_epochs;       /* epochs in a row without improvement */
    nb_fit_end end;
    bool restored;        /* the best epoch's weights were put back at the end */
    int64_t resumed_seed; /* the seed recorded in the checkpoint nb_fit_resume read */
    const nb_curves *curves; /* per epoch, owned by the nb_fit */
    /* With opts.grad_norms: per epoch (curves' rows), n_grad_norms values (the parameters in
     * nb_module_param order), row-major, owned by the nb_fit; else NULL and 0. */
    const float *grad_norms;
    int n_grad_norms;
} nb_fit_info;

typedef struct nb_fit nb_fit;

/* A run of m with o (and s, which may be NULL) on train, evaluated on eval.  NULL with NB_ERR_ARG
 * for a NULL object, epochs < 1, or select_best without out; with out, what would make the first
 * save fail (nb_checkpoint_check: a missing folder, bad names, non-finite weights) is reported
 * now, after "a save would fail: ". */
NB_API nb_fit *nb_fit_new(nb_module *m, nb_optim *o, nb_sched *s, nb_loader *train, nb_loader *eval,
                   const nb_fit_opts *opts);
/* Continues the run saved in a checkpoint written by an nb_fit: model, optimiser, schedule, RNG,
 * epochs done, curves, the best loss and model selection.  Then the model file beside the
 * checkpoint must hold the epoch the checkpoint names: when it does not (a run was killed between
 * its two writes), a note says so on opts.log and OUT/model.safetensors is written from the
 * checkpoint's weights (when the best epoch's weights are lost, the choice of the best starts
 * again).  Errors as nb_checkpoint_load's, after "resuming: "; a malformed progress record is
 * NB_ERR_IO. */
NB_API nb_status nb_fit_resume(nb_fit *f, const char *checkpoint_path);
/* Trains the epochs not done yet (none: the files are written again), then, with select_best,
 * puts the best weights back (unless a callback stopped the run).  NB_OK when training ended as
 * nb_fit_info's end says (done, early stop, stopped by a callback); else the error of the step,
 * evaluation, schedule or save that failed, after "training step: ", "evaluation: ",
 * "schedule step: ", "saving results: " or "restoring the best weights: " (the end is then
 * NB_FIT_FAILED, or NB_FIT_DIVERGED, or the end of training when putting the best back failed). */
NB_API nb_status nb_fit_run(nb_fit *f, const nb_fit_callbacks *callbacks);
NB_API nb_fit_info nb_fit_info_get(const nb_fit *f);
/* What a run holds in memory, in bytes: the parameters (and as much again for their gradients),
 * the optimiser's state, and what one training step adds to the memory held: the blocks that
 * scopes keep between steps grow to a step's need (0 when earlier work made them as large). */
typedef struct nb_fit_memory {
    size_t parameters, optim_state, step;
} nb_fit_memory;
/* Measures by running one forward and backward pass on the first batch of epoch 0 inside a scope,
 * then undoing it: the RNG, the gradients and the buffers (BatchNorm's running statistics) are
 * put back and the optimiser does not step, so the run is as it was. */
NB_API nb_status nb_fit_measure_memory(nb_fit *f, nb_fit_memory *out);
/* The epoch whose weights the model.safetensors beside a checkpoint written by nb_fit must hold
 * (the best epoch with select_best; the checkpoint's own epoch for checkpoints from before that
 * was recorded); -1 with the error set when the file cannot be read, -1 when it says nothing. */
NB_API int64_t nb_fit_model_epoch(const char *checkpoint_path);
NB_API void nb_fit_free(nb_fit *f);

#ifdef __cplusplus
}
#endif
#endif
