/*
 * nabla/train.h — the training side: metrics, a progress bar, learning curves (SVG + CSV).
 */
#ifndef NABLA_TRAIN_H
#define NABLA_TRAIN_H

#include "../nabla.h"

/* declared again here (C11 allows it) so this header works whichever topic header comes first */
typedef struct nb_module nb_module;
typedef struct nb_optim nb_optim;
typedef struct nb_sched nb_sched;

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- metrics */

/* Number of rows of logits [N, C] whose argmax equals the int32 label [N]; -1 on error
 * (NB_ERR_SHAPE for other shapes, NB_ERR_DTYPE for labels that are not int32). */
int64_t nb_count_correct(nb_tensor *logits, nb_tensor *labels);

/* ---------------------------------------------------------------- progress bar
 * On a terminal: one line redrawn in place (at most 10 times a second):
 *   epoch 3/10 |██████████▌         | 470/938 [00:02<00:02, 196.3 it/s] loss 0.412
 * Elsewhere (a file, a pipe, CI): one plain line when the bar finishes, so logs stay readable.
 */
typedef struct nb_progress nb_progress;
nb_progress *nb_progress_new(FILE *out, const char *label, int64_t total);
/* Sets the number of finished steps and the text shown after the bar (may be NULL). */
void nb_progress_update(nb_progress *p, int64_t done, const char *postfix);
void nb_progress_finish(nb_progress *p, const char *postfix); /* prints the final state */
void nb_progress_free(nb_progress *p);
/* Formats seconds as mm:ss or h:mm:ss into buf. */
void nb_format_duration(double seconds, char *buf, size_t cap);

/* ---------------------------------------------------------------- learning curves
 * Per-epoch series (train loss, test loss, train accuracy, test accuracy), written as CSV and as
 * an SVG picture with two panels (loss; accuracy), train against test as in the course's plot.
 */
typedef struct nb_curves nb_curves;
nb_curves *nb_curves_new(void);
nb_status nb_curves_add(nb_curves *c, float train_loss, float test_loss, float train_acc,
                        float test_acc); /* NAN where a value is not measured */
int nb_curves_len(const nb_curves *c);
/* The values of one epoch (0-based): train loss, test loss, train accuracy, test accuracy. */
nb_status nb_curves_get(const nb_curves *c, int epoch, float values[4]);
/* Both write atomically (see nabla/io.h): on failure (NB_ERR_IO naming the file and the cause)
 * the file at path is left as it was. */
nb_status nb_curves_write_csv(const nb_curves *c, const char *path);
nb_status nb_curves_write_svg(const nb_curves *c, const char *path, const char *title);
void nb_curves_free(nb_curves *c);

/* ---------------------------------------------------------------- saving and loading
 * Weights: every parameter and buffer under its state_dict name in a safetensors file, so
 * torch reads it with safetensors.torch.load_file + load_state_dict.  Checkpoints add the
 * optimiser's state ("optim." tensors + JSON), the schedule, the RNG and the epoch, so a run
 * resumed from one continues bit for bit.  Writes are atomic and checksummed (see nabla/io.h):
 * when a save fails for any reason — a full disk (ENOSPC), the file-size limit (EFBIG: ignore
 * SIGXFSZ to get the error rather than be killed, see nabla/io.h), a bad name — the file at
 * path is left as it was and no temporary remains.  Names have no length limit.
 *
 * Non-finite weights.  A save refuses a model whose parameters or buffers hold a NaN or an
 * infinity (NB_ERR_ARG: "'path': tensor '2.weight' element [3,1] is nan: ..."), so a run that
 * diverged never replaces the last good model or checkpoint; a load refuses a file whose model
 * weights are not finite (NB_ERR_IO naming the file, the tensor and the element).  The
 * optimiser's state is not checked.
 *
 * A load checks everything first and changes nothing when the file is corrupt, truncated,
 * non-finite or does not match the model.  Errors: NB_ERR_IO for an unreadable, corrupt or
 * truncated file and for a tensor the file lacks or has in excess (named); NB_ERR_SHAPE and
 * NB_ERR_DTYPE for a tensor of another shape or dtype (named, with both shapes or dtypes).
 */
nb_status nb_module_save(const nb_module *m, const char *path, int n_meta,
                         const char *const *meta_keys, const char *const *meta_values);
nb_status nb_module_load(nb_module *m, const char *path);

/* What a non-strict load passed over, as torch's load_state_dict(strict=False) returns it:
 * missing[i] are the model's state_dict names the file lacks (left as they were), in the model's
 * order; unexpected[i] the file's tensors the model has no place for (ignored), in the file's
 * order (nb_safetensors_name's).  The report owns the arrays and strings; nb_load_report_free
 * releases them and zeroes the report (a zeroed report, or NULL, is fine to free). */
typedef struct nb_load_report {
    int n_missing, n_unexpected;
    char **missing, **unexpected;
} nb_load_report;
void nb_load_report_free(nb_load_report *report);

/* nb_module_load without requiring the file and the model to hold the same names: every
 * parameter and buffer the file has is loaded, the rest are listed in *report (which may be
 * NULL; it is overwritten, so free an earlier report first).  A pretrained body loads under a new
 * head this way.  A tensor present in both with another shape or dtype is still an error
 * (NB_ERR_SHAPE / NB_ERR_DTYPE), as in torch, and so are non-finite weights; on any error the
 * model is unchanged and *report is empty.  As in torch, a file that shares no name with the
 * model (a checkpoint, whose names start with "model.") loads nothing and lists everything:
 * look at the report. */
nb_status nb_module_load_nonstrict(nb_module *m, const char *path, nb_load_report *report);

/* o and s may be NULL.  extra_json (may be NULL) is stored as is: the caller's progress.
 * Errors as nb_module_save's. */
nb_status nb_checkpoint_save(const char *path, const nb_module *m, nb_optim *o, nb_sched *s,
                             int64_t epoch, const char *extra_json);
/* Checks, without writing anything, all that nb_checkpoint_save(path, m, o, ...) checks before it
 * writes: the names (distinct, non-empty, valid UTF-8), finite weights, that path is not a
 * folder and that its folder exists and takes a new file (a temporary is made and dropped).  Call
 * it before training, so a run does not fail at its first save.  The same holds for
 * nb_module_save(m, ...) into the same folder, whose names are these without "model.".  o may
 * be NULL.  Errors as nb_checkpoint_save's. */
nb_status nb_checkpoint_check(const char *path, const nb_module *m, nb_optim *o);
/* Restores what nb_checkpoint_save stored into existing objects of the same shapes, and the
 * RNG; *epoch and *extra_json (malloc'd, the caller frees; NULL when the file has none; both
 * may be NULL when not wanted) on success.  o and s may be NULL: the model is restored alone.
 * Errors as nb_module_load's; an optimiser or schedule state that does not fit o or s is the
 * error of nb_optim_load_state_json / nb_sched_load_state_json (NB_ERR_ARG), prefixed by path. */
nb_status nb_checkpoint_load(const char *path, nb_module *m, nb_optim *o, nb_sched *s,
                             int64_t *epoch, char **extra_json);

#ifdef __cplusplus
}
#endif
#endif
