/*
 * io.h — internal entry points of src/io: atomic file writes (for safetensors, checkpoints and
 * the curves), and for the tests and the fuzzer.  Users see nabla/io.h.
 */
#ifndef NB_IO_INTERNAL_H
#define NB_IO_INTERNAL_H

#include "../core/core.h"

/* nb_safetensors_open on bytes already in memory (copied); label stands for the file name in
 * error messages.  Same validation, same errors. */
nb_safetensors *nb__safetensors_from_memory(const char *label, const void *data, size_t size);

/* Everything nb_safetensors_save with these arguments would check before writing — arguments,
 * names, metadata keys, and that the folder takes a new file — leaving nothing behind.  The same
 * errors as the save. */
nb_status nb__safetensors_check(const char *path, int n, const char *const *names,
                                nb_tensor *const *tensors, const char *const *meta_keys,
                                const char *const *meta_values, int n_meta);

/* ---- atomic writes (atomic.c): the file at path is replaced whole or not at all.
 *
 *   nb__afile f;
 *   if (nb__afile_begin(&f, "curves_write_csv", path) != NB_OK) return nb_error_code();
 *   nb__afile_write(&f, bytes, n);            (or fprintf(nb__afile_stream(&f), ...))
 *   return nb__afile_commit(&f);              (or nb__afile_cancel(&f) to give up)
 *
 * begin fails (NB_ERR_IO naming path) when the folder is missing or does not take a new file, or
 * path is a folder; it removes temporaries of the same target left by dead processes.  Writes
 * after a failure do nothing; commit reports the first failure (NB_ERR_IO with the byte offset and
 * the cause: ENOSPC, EFBIG, EDQUOT, ...), and on any failure leaves the old file as it was and no
 * temporary.  begin + cancel is a dry run: it checks that a write could start. */
typedef struct {
    const char *op, *path; /* for messages; path is borrowed and must outlive the write */
    char *dir, *base;      /* path split into its folder and its name */
    char *tmp;             /* the temporary's name in dir, or NULL while it has none */
    int fd, dirfd;
    FILE *stream;          /* nb__afile_stream's, or NULL */
    uint64_t at;           /* bytes written so far: the offset of a failure */
    int err;               /* errno of the first failure, 0 while none */
    const char *what;      /* what failed: "writing", "syncing", ... */
} nb__afile;

nb_status nb__afile_begin(nb__afile *f, const char *op, const char *path);
/* false once a write (this one or an earlier one) has failed */
bool nb__afile_write(nb__afile *f, const void *p, size_t n);
bool nb__afile_pwrite(nb__afile *f, const void *p, size_t n, uint64_t offset);
/* Records a failure of the caller's (e.g. ENOMEM while preparing data); returns false. */
bool nb__afile_fail(nb__afile *f, const char *what, int err);
/* A stdio stream whose writes go through nb__afile_write (closed by commit or cancel); NULL,
 * with the failure recorded, when none can be made. */
FILE *nb__afile_stream(nb__afile *f);
nb_status nb__afile_commit(nb__afile *f);
void nb__afile_cancel(nb__afile *f);

/* ---- the sparse form of a weight (sparse.c) */
#define NB_SPARSE_META "nabla.sparse" /* {"name": shape, ...} of the tensors stored sparse */
#define NB_SPARSE_MIN 0.5             /* the fraction of zeros above which a tensor is */
/* "<base>.__sparse_mask" and "<base>.__sparse_values", owned (nb__strfree); NULL when out of memory. */
char *nb__sparse_mask_name(const char *base);
char *nb__sparse_values_name(const char *base);
/* t is contiguous float32 with more than NB_SPARSE_MIN of its elements 0. */
bool nb__sparse_worth(const nb_tensor *t);
/* t's packed mask and its nonzero values, new tensors in the current home; false when out of memory. */
bool nb__sparse_encode(const nb_tensor *t, nb_tensor **mask, nb_tensor **values);
/* st stores `name` sparse (it is in the metadata NB_SPARSE_META with a valid shape). */
bool nb__sparse_has(const nb_safetensors *st, const char *name);
/* name is one of the two parts of base, which st stores sparse. */
bool nb__sparse_part_of(const nb_safetensors *st, const char *name, const char *base);
/* The dense tensor st stores sparse under name, new in the current home; NULL with NB_ERR_IO
 * (naming label, the file) when its parts are missing or do not fit its shape. */
nb_tensor *nb__sparse_get(const nb_safetensors *st, const char *label, const char *name);
#endif
