/*
 * nabla/io.h — files: weights and checkpoints (nb_module_save / _load, nb_checkpoint_*) and model
 * files (JSON descriptions of a network), over the safetensors format, the layout PyTorch users
 * read and write with `safetensors.torch`:
 *
 *   8 bytes    N, the header length, unsigned little-endian
 *   N bytes    a JSON object {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 *              "__metadata__": {"key": "value", ...}}, padded with spaces
 *   the rest   the data buffer: each tensor's elements row-major, little-endian, at [b, e) of it;
 *              tensors do not overlap and cover the buffer exactly
 *
 * Checksum.  Every file nabla writes opens its header with {"__metadata__":{"nabla.file_crc32":
 * "xxxxxxxx", "nabla.writer": "nabla <version>", ...}: the CRC-32 (8 lowercase hex digits) of
 * the whole file — length, header and data — computed with those 8 digits read as "00000000".
 * So a one-byte edit anywhere (an activation in the model description, the epoch, the RNG offset,
 * a weight) is caught.  A file whose metadata has any key starting with "nabla." says that nabla
 * wrote it, and is refused when it carries no checksum, so deleting the checksum does not turn
 * checking off.  Files of other writers (torch's safetensors) have no such key and are read
 * unchecked; other readers ignore nabla's keys.  Files of earlier nabla versions carry
 * "nabla.crc32", the CRC-32 of the data buffer alone, and still open, their data checked.
 *
 * Atomic writes.  A save replaces the file at path whole or not at all: the data goes to an
 * unnamed file in the same folder (O_TMPFILE, which the kernel frees if the process dies; a
 * temporary named "<path>.tmp.<pid>-<n>" where the filesystem lacks it), is fsynced, and is
 * renamed over path, then the folder is fsynced.  A write also removes the temporaries of the
 * same path that dead processes left (and those of earlier nabla versions, "<path>.tmp" and
 * "<path>.tmp.XXXXXX", once an hour old).  On any failure — a short write, a full disk (ENOSPC), a
 * quota (EDQUOT), the file-size limit (EFBIG) — the result is NB_ERR_IO naming the file, the byte
 * and the cause; the old file is unchanged and no temporary remains.  A write past the file-size
 * limit (ulimit -f) raises SIGXFSZ, whose default action kills the process with no message; the
 * library never changes signal dispositions, so a program that wants the error instead ignores
 * the signal: signal(SIGXFSZ, SIG_IGN).  The curves (nb_curves_write_csv / _svg) are written the
 * same way.  nabla reads by loading the whole file and validating every size, offset and the
 * checksum before it trusts any of them.
 *
 * Dtypes.  F32, F16, BF16, I8 and I32 map to nabla's dtypes bit for bit.  I64, which torch uses for
 * class indices, is converted to int32 when read, and refused if a value does not fit.  Any other
 * safetensors dtype (F64, U8, BOOL, ...) is accepted when a file is validated, so files holding
 * them open, but refused with NB_ERR_DTYPE when that tensor is read.
 *
 * Errors.  A malformed, corrupt or unreadable file is NB_ERR_IO, with a message that names the file
 * and the byte offset of the fault; bad arguments are NB_ERR_ARG / NB_ERR_NULL; dtype and shape
 * mismatches in nb_safetensors_load_into are NB_ERR_DTYPE / NB_ERR_SHAPE.
 */
/* Included by nabla.h (inside its extern "C"); include that one. */
#ifndef NABLA_IO_H
#define NABLA_IO_H

/* Writes n tensors under the given names, and n_meta metadata pairs, to path, atomically (above):
 * on any failure the file at path (if any) is left as it was and no temporary remains.  Tensors
 * may be of any nabla dtype and need not be contiguous (they are written in logical order); they
 * must be on the CPU.  Names must be distinct, non-empty, valid UTF-8 and not "__metadata__", of
 * any length; metadata keys must be distinct and not the reserved "nabla.file_crc32",
 * "nabla.writer" or "nabla.crc32".  names/tensors may be NULL when n is 0, meta_keys/meta_values
 * when n_meta is 0.  Errors: NB_ERR_ARG (names, keys, counts), NB_ERR_NULL / NB_ERR_SCOPE /
 * NB_ERR_DEVICE (a tensor), NB_ERR_IO (the folder is missing or path is a folder, and the write
 * failures above).  A new file gets mode 0666 less the umask; a replaced file keeps its mode. */
NB_API nb_status nb_safetensors_save(const char *path, int n, const char *const *names,
                              nb_tensor *const *tensors, const char *const *meta_keys,
                              const char *const *meta_values, int n_meta);

typedef struct nb_safetensors nb_safetensors;

/* Reads and validates the file at path: NULL with NB_ERR_IO if it cannot be read or any part of
 * it is malformed.  The handle owns a copy of the file; free it with nb_safetensors_close. */
NB_API nb_safetensors *nb_safetensors_open(const char *path);
NB_API void nb_safetensors_close(nb_safetensors *st); /* NULL is ignored */

/* The tensors, in the order of their data in the file (for files nabla wrote: the order they
 * were saved in).  nb_safetensors_count(NULL) is 0.  nb_safetensors_name returns NULL
 * (NB_ERR_ARG) when i is out of range; the string lives as long as st. */
NB_API int nb_safetensors_count(const nb_safetensors *st);
NB_API const char *nb_safetensors_name(const nb_safetensors *st, int i);

/* A new contiguous tensor holding the named one, in the current home (innermost scope, or owned
 * by the caller).  F32/F16/BF16/I8/I32 keep their dtype; I64 becomes int32.  NULL with NB_ERR_ARG
 * when no tensor has that name, NB_ERR_DTYPE for a dtype nabla does not hold or an I64 value out of
 * int32 range. */
NB_API nb_tensor *nb_safetensors_get(const nb_safetensors *st, const char *name);

/* The metadata value for key, or NULL (no error set) when the file has none.  The checksum and
 * mark nabla writes are visible as "nabla.file_crc32" and "nabla.writer". */
NB_API const char *nb_safetensors_meta(const nb_safetensors *st, const char *key);

/* Copies the named tensor into dst, which must be on the CPU with the same shape and the dtype
 * nb_safetensors_get would give (int32 for I64); dst may be a strided view.  On any error dst is
 * left unchanged: NB_ERR_SHAPE / NB_ERR_DTYPE name the file's and dst's shape or dtype. */
NB_API nb_status nb_safetensors_load_into(const nb_safetensors *st, const char *name, nb_tensor *dst);

/* declared again here (C11 allows it) so this header reads on its own */
typedef struct nb_module nb_module;
typedef struct nb_optim nb_optim;
typedef struct nb_sched nb_sched;

/* ---------------------------------------------------------------- saving and loading
 * Weights: every parameter and buffer under its state_dict name in a safetensors file, so
 * torch reads it with safetensors.torch.load_file + load_state_dict.  Checkpoints add the
 * optimiser's state ("optim." tensors + JSON), the schedule, the RNG and the epoch, so a run
 * resumed from one continues bit for bit.  Writes are atomic and checksummed (see above):
 * when a save fails for any reason — a full disk (ENOSPC), the file-size limit (EFBIG: ignore
 * SIGXFSZ to get the error rather than be killed, see above), a bad name — the file at
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
NB_API nb_status nb_module_save(const nb_module *m, const char *path, int n_meta,
                         const char *const *meta_keys, const char *const *meta_values);
NB_API nb_status nb_module_load(nb_module *m, const char *path);
/* nb_module_save with each float32 weight of which more than half the elements are 0 (a pruned
 * one, nabla/prune.h) stored sparse, so the file shrinks with sparsity: a bitmask of the nonzero
 * elements, U8 [ceil(numel / 8)] under "<name>.__sparse_mask" (bit i % 8 of byte i / 8 for
 * element i, row-major), and those elements, F32 [nonzeros] under "<name>.__sparse_values"; the
 * metadata "nabla.sparse" maps each such name to its shape ({"1.weight":[64,784]}).  At
 * sparsity s such a weight takes 1/8 + 4 (1 - s) bytes an element instead of 4: 0.53 of the
 * dense at 50%, 0.13 at 90%.  nb_module_load and nb_module_load_nonstrict read both forms
 * (a 0 comes back as +0.0); torch reads the parts as plain tensors.  Errors as nb_module_save's. */
NB_API nb_status nb_module_save_sparse(const nb_module *m, const char *path, int n_meta,
                                       const char *const *meta_keys, const char *const *meta_values);

/* What a non-strict load passed over, as torch's load_state_dict(strict=False) returns it:
 * missing[i] are the model's state_dict names the file lacks (left as they were), in the model's
 * order; unexpected[i] the file's tensors the model has no place for (ignored), in the file's
 * order (nb_safetensors_name's).  The report owns the arrays and strings; nb_load_report_free
 * releases them and zeroes the report (a zeroed report, or NULL, is fine to free). */
typedef struct nb_load_report {
    int n_missing, n_unexpected;
    char **missing, **unexpected;
} nb_load_report;
NB_API void nb_load_report_free(nb_load_report *report);

/* nb_module_load without requiring the file and the model to hold the same names: every
 * parameter and buffer the file has is loaded, the rest are listed in *report (which may be
 * NULL; it is overwritten, so free an earlier report first).  A pretrained body loads under a new
 * head this way.  A tensor present in both with another shape or dtype is still an error
 * (NB_ERR_SHAPE / NB_ERR_DTYPE), as in torch, and so are non-finite weights; on any error the
 * model is unchanged and *report is empty.  As in torch, a file that shares no name with the
 * model (a checkpoint, whose names start with "model.") loads nothing and lists everything:
 * look at the report. */
NB_API nb_status nb_module_load_nonstrict(nb_module *m, const char *path, nb_load_report *report);

/* o and s may be NULL.  extra_json (may be NULL) is stored as is: the caller's progress.
 * Errors as nb_module_save's. */
NB_API nb_status nb_checkpoint_save(const char *path, const nb_module *m, nb_optim *o, nb_sched *s,
                             int64_t epoch, const char *extra_json);
/* Checks, without writing anything, all that nb_checkpoint_save(path, m, o, ...) checks before it
 * writes: the names (distinct, non-empty, valid UTF-8), finite weights, that path is not a
 * folder and that its folder exists and takes a new file (a temporary is made and dropped).  Call
 * it before training, so a run does not fail at its first save.  The same holds for
 * nb_module_save(m, ...) into the same folder, whose names are these without "model.".  o may
 * be NULL.  Errors as nb_checkpoint_save's. */
NB_API nb_status nb_checkpoint_check(const char *path, const nb_module *m, nb_optim *o);
/* Restores what nb_checkpoint_save stored into existing objects of the same shapes, and the
 * RNG; *epoch and *extra_json (malloc'd, the caller frees; NULL when the file has none; both
 * may be NULL when not wanted) on success.  o and s may be NULL: the model is restored alone.
 * Errors as nb_module_load's; an optimiser or schedule state that does not fit o or s is the
 * error of nb_optim_load_state_json / nb_sched_load_state_json (NB_ERR_ARG), prefixed by path. */
NB_API nb_status nb_checkpoint_load(const char *path, nb_module *m, nb_optim *o, nb_sched *s,
                             int64_t *epoch, char **extra_json);

/* ---------------------------------------------------------------- model files
 * A model file describes a network in JSON, as `nabla train --model-file` reads it and as the
 * command stores it in a model.safetensors's metadata ("nabla.model"):
 *   {"init": "kaiming_normal",                           (optional: a scheme of nb_module_init)
 *    "layers": [{"type": "flatten"}, {"type": "linear", "in": 784, "out": 64}, {"type": "relu"},
 *               {"type": "dropout", "p": 0.2}, {"type": "batchnorm1d", "features": 64}, ...]}
 * The layers form a Sequential; docs/ARCHITECTURE.md lists the types and their keys.  Unknown
 * keys are errors.  Errors are NB_ERR_ARG naming the layer ("model layer 1 > layer 0: unknown
 * key 'size'") with the constructor's own message behind it when a constructor refuses a value;
 * NB_ERR_IO for a file that cannot be read or is not JSON, with line:column of the token. */

/* The text of the model file at path (compact JSON), checked at the top level: a JSON object with
 * "layers" (a list) and an optional "init".  malloc'd: the caller frees it with free(). */
NB_API char *nb_model_file_read(const char *path);
/* Builds the model that a description (the text of a model file) describes, in training mode. */
NB_API nb_module *nb_model_from_json(const char *json);
/* nb_model_file_read then nb_model_from_json; a build error is prefixed with path. */
NB_API nb_module *nb_model_file_load(const char *path);
/* The number of input features the model takes: the "in" of its first Linear-like layer or the
 * size of its first Unflatten's shape; -1 when a layer that takes any size comes first
 * (convolutions, pools) or the description is not JSON (the error set). */
NB_API int64_t nb_model_input_features(const char *json);

#endif /* NABLA_IO_H */
