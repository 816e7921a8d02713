/*
 * nabla/io.h — weights and checkpoints in the safetensors format, the layout PyTorch users read
 * and write with `safetensors.torch`:
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

#endif /* NABLA_IO_H */
