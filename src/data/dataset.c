/*
 * dataset.c — the in-memory dataset: n samples of one shape, stored as bytes (images, converted
 * per batch) or floats, with int32 class labels, float targets [n, target_dim] or nothing.
 * Samples are rows of one block, sample i at x + i * sample_numel elements.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* n * per * es as a byte count, false when it does not fit int64. */
static bool bytes_of(int64_t n, int64_t per, size_t es, size_t *out) {
    if (n < 0 || per < 0 || (per && n > INT64_MAX / (int64_t)es / per)) return false;
    *out = (size_t)n * (size_t)per * es;
    return true;
}

static bool sample_shape_ok(const char *what, int ndim, const int64_t *shape, int64_t *numel) {
    if (ndim < 1 || ndim > NB_MAX_DIMS - 1)
        return nb__fail(NB_ERR_SHAPE, "%s: sample rank %d is outside 1..%d (a batch adds a dim)",
                        what, ndim, NB_MAX_DIMS - 1), false;
    if (!shape) return nb__fail(NB_ERR_ARG, "%s: sample shape is NULL", what), false;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || n > INT64_MAX / 16 / shape[i])
            return nb__fail(NB_ERR_SHAPE, "%s: sample shape %s: sizes must be >= 1 and their "
                            "product must fit", what, nb__shape_str(ndim, shape)), false;
        n *= shape[i];
    }
    *numel = n;
    return true;
}

nb_dataset *nb__dataset_adopt(const char *what, int64_t n, int sample_ndim,
                              const int64_t *sample_shape, bool is_u8, void *x, size_t x_bytes,
                              nb_target_kind target, int64_t target_dim, void *y, size_t y_bytes) {
    nb_dataset *ds = NULL;
    int64_t numel;
    size_t need;
    if (n < 1) {
        nb__fail(NB_ERR_ARG, "%s: a dataset needs at least one sample, got %lld", what,
                 (long long)n);
        goto fail;
    }
    if (!sample_shape_ok(what, sample_ndim, sample_shape, &numel)) goto fail;
    if (!bytes_of(n, numel, is_u8 ? 1 : sizeof(float), &need) || need > x_bytes) {
        nb__fail(NB_ERR_SHAPE, "%s: %lld samples of %s do not fit %zu bytes", what, (long long)n,
                 nb__shape_str(sample_ndim, sample_shape), x_bytes);
        goto fail;
    }
    if (target == NB_TARGET_FLOAT && target_dim < 1) {
        nb__fail(NB_ERR_ARG, "%s: target_dim %lld must be >= 1", what, (long long)target_dim);
        goto fail;
    }
    int32_t classes = 0;
    if (target == NB_TARGET_CLASS) {
        for (int64_t i = 0; i < n; i++) {
            int32_t c = ((const int32_t *)y)[i];
            if (c < 0 || c == INT32_MAX) {
                nb__fail(NB_ERR_ARG, "%s: label %d of sample %lld is outside 0..%d", what, c,
                         (long long)i, INT32_MAX - 1);
                goto fail;
            }
            if (c >= classes) classes = c + 1;
        }
    }
    ds = nb__alloc(sizeof *ds);
    if (!ds) goto fail;
    *ds = (nb_dataset){.n = n, .sample_ndim = sample_ndim, .sample_numel = numel, .is_u8 = is_u8,
                       .x = x, .x_bytes = x_bytes, .target = target,
                       .target_dim = target == NB_TARGET_FLOAT ? target_dim
                                     : target == NB_TARGET_CLASS ? 1 : 0,
                       .num_classes = classes, .y = y, .y_bytes = y_bytes};
    memcpy(ds->sample_shape, sample_shape, sizeof(int64_t) * (size_t)sample_ndim);
    return ds;
fail:
    nb__dealloc(x, x_bytes);
    nb__dealloc(y, y_bytes);
    return NULL;
}

static void *copy_block(const void *src, size_t bytes) {
    void *p = nb__alloc(bytes);
    if (p && bytes) memcpy(p, src, bytes);
    return p;
}

nb_dataset *nb_dataset_new(const nb_dataset_desc *d) {
    if (!d) return nb__fail(NB_ERR_ARG, "dataset_new: desc is NULL");
    if (!d->x_u8 == !d->x_f32)
        return nb__fail(NB_ERR_ARG, "dataset_new: give exactly one of x_u8 and x_f32");
    if (d->labels && d->targets)
        return nb__fail(NB_ERR_ARG, "dataset_new: give at most one of labels and targets");
    int64_t numel;
    if (d->n < 1)
        return nb__fail(NB_ERR_ARG, "dataset_new: a dataset needs at least one sample, got %lld",
                        (long long)d->n);
    if (!sample_shape_ok("dataset_new", d->sample_ndim, d->sample_shape, &numel)) return NULL;
    if (d->targets && d->target_dim < 1)
        return nb__fail(NB_ERR_ARG, "dataset_new: target_dim %lld must be >= 1",
                        (long long)d->target_dim);
    size_t x_bytes, y_bytes = 0;
    if (!bytes_of(d->n, numel, d->x_u8 ? 1 : sizeof(float), &x_bytes) ||
        (d->targets && !bytes_of(d->n, d->target_dim, sizeof(float), &y_bytes)))
        return nb__fail(NB_ERR_SHAPE, "dataset_new: %lld samples: too many bytes",
                        (long long)d->n);
    if (d->labels) y_bytes = sizeof(int32_t) * (size_t)d->n;
    void *x = copy_block(d->x_u8 ? (const void *)d->x_u8 : (const void *)d->x_f32, x_bytes);
    void *y = NULL;
    if (y_bytes) y = copy_block(d->labels ? (const void *)d->labels : (const void *)d->targets,
                                y_bytes);
    if (!x || (y_bytes && !y)) {
        nb__dealloc(x, x_bytes);
        nb__dealloc(y, y_bytes);
        return NULL;
    }
    nb_target_kind kind = d->labels ? NB_TARGET_CLASS : d->targets ? NB_TARGET_FLOAT
                                                                   : NB_TARGET_NONE;
    return nb__dataset_adopt("dataset_new", d->n, d->sample_ndim, d->sample_shape, d->x_u8 != NULL,
                             x, x_bytes, kind, d->target_dim, y, y_bytes);
}

static char *copy_file_name(const char *name) { return name ? nb__strdup(name) : NULL; }

bool nb__dataset_set_files(nb_dataset *ds, const char *x_file, const char *y_file,
                           int64_t file_index) {
    nb__strfree(ds->x_file);
    nb__strfree(ds->y_file);
    ds->x_file = copy_file_name(x_file);
    ds->y_file = copy_file_name(y_file);
    ds->file_index = file_index;
    return (ds->x_file || !x_file) && (ds->y_file || !y_file);
}

void nb_dataset_free(nb_dataset *ds) {
    if (!ds) return;
    nb__dealloc(ds->x, ds->x_bytes);
    nb__dealloc(ds->y, ds->y_bytes);
    nb__strfree(ds->x_file);
    nb__strfree(ds->y_file);
    nb__dealloc(ds, sizeof *ds);
}

int64_t nb_dataset_len(const nb_dataset *ds) {
    if (!ds) return nb__fail(NB_ERR_NULL, "dataset_len: dataset is NULL"), -1;
    return ds->n;
}

nb_dataset_info nb_dataset_info_get(const nb_dataset *ds) {
    nb_dataset_info info = {0};
    if (!ds) return info;
    info.n = ds->n;
    info.sample_ndim = ds->sample_ndim;
    memcpy(info.sample_shape, ds->sample_shape, sizeof info.sample_shape);
    info.sample_numel = ds->sample_numel;
    info.is_u8 = ds->is_u8;
    info.target = ds->target;
    info.target_dim = ds->target_dim;
    info.num_classes = ds->num_classes;
    info.nbytes = ds->x_bytes + ds->y_bytes;
    info.samples_file = ds->x_file;
    info.targets_file = ds->y_file;
    info.file_index = ds->file_index;
    return info;
}

nb_status nb_dataset_get(const nb_dataset *ds, int64_t i, float *x, float *y) {
    if (!ds || !x) return nb__fail_status(NB_ERR_NULL, "dataset_get: dataset or x is NULL");
    if (i < 0 || i >= ds->n)
        return nb__fail_status(NB_ERR_ARG, "dataset_get: index %lld is outside 0..%lld",
                               (long long)i, (long long)ds->n - 1);
    int64_t m = ds->sample_numel;
    if (ds->is_u8) {
        const uint8_t *s = (const uint8_t *)ds->x + i * m;
        for (int64_t k = 0; k < m; k++) x[k] = s[k];
    } else {
        memcpy(x, (const float *)ds->x + i * m, sizeof(float) * (size_t)m);
    }
    if (y && ds->target == NB_TARGET_CLASS) y[0] = (float)((const int32_t *)ds->y)[i];
    if (y && ds->target == NB_TARGET_FLOAT)
        memcpy(y, (const float *)ds->y + i * ds->target_dim, sizeof(float) * (size_t)ds->target_dim);
    return NB_OK;
}

nb_status nb_dataset_reshape(nb_dataset *ds, int sample_ndim, const int64_t *sample_shape) {
    if (!ds) return nb__fail_status(NB_ERR_NULL, "dataset_reshape: dataset is NULL");
    int64_t numel;
    if (!sample_shape_ok("dataset_reshape", sample_ndim, sample_shape, &numel))
        return nb_error_code();
    if (numel != ds->sample_numel)
        return nb__fail_status(NB_ERR_SHAPE, "dataset_reshape: %s -> %s: element counts differ",
                               nb__shape_str(ds->sample_ndim, ds->sample_shape),
                               nb__shape_str(sample_ndim, sample_shape));
    ds->sample_ndim = sample_ndim;
    memset(ds->sample_shape, 0, sizeof ds->sample_shape);
    memcpy(ds->sample_shape, sample_shape, sizeof(int64_t) * (size_t)sample_ndim);
    return NB_OK;
}

nb_dataset *nb_dataset_subset(const nb_dataset *ds, int64_t start, int64_t count) {
    if (!ds) return nb__fail(NB_ERR_NULL, "dataset_subset: dataset is NULL");
    if (start < 0 || count < 1 || start > ds->n - count)
        return nb__fail(NB_ERR_ARG, "dataset_subset: [%lld, %lld + %lld) is not a non-empty part "
                        "of 0..%lld", (long long)start, (long long)start, (long long)count,
                        (long long)ds->n);
    size_t es = ds->is_u8 ? 1 : sizeof(float);
    size_t row = (size_t)ds->sample_numel * es, x_bytes = row * (size_t)count;
    size_t y_row = ds->target == NB_TARGET_CLASS ? sizeof(int32_t)
                   : sizeof(float) * (size_t)ds->target_dim;
    size_t y_bytes = ds->y ? y_row * (size_t)count : 0;
    void *x = copy_block((const char *)ds->x + row * (size_t)start, x_bytes);
    void *y = y_bytes ? copy_block((const char *)ds->y + y_row * (size_t)start, y_bytes) : NULL;
    if (!x || (y_bytes && !y)) {
        nb__dealloc(x, x_bytes);
        nb__dealloc(y, y_bytes);
        return NULL;
    }
    nb_dataset *sub = nb__dataset_adopt("dataset_subset", count, ds->sample_ndim,
                                        ds->sample_shape, ds->is_u8, x, x_bytes, ds->target,
                                        ds->target_dim, y, y_bytes);
    if (sub && !nb__dataset_set_files(sub, ds->x_file, ds->y_file, ds->file_index + start)) {
        nb_dataset_free(sub);
        return NULL;
    }
    return sub;
}

nb_dataset *nb_dataset_select_classes(const nb_dataset *ds, int32_t first, int32_t last) {
    if (!ds) return nb__fail(NB_ERR_NULL, "dataset_select_classes: dataset is NULL");
    if (ds->target != NB_TARGET_CLASS)
        return nb__fail(NB_ERR_ARG, "dataset_select_classes: the samples have no class labels");
    if (first < 0 || last < first)
        return nb__fail(NB_ERR_ARG, "dataset_select_classes: classes %d to %d: need 0 <= first <= last",
                        first, last);
    const int32_t *y = ds->y;
    int64_t count = 0;
    for (int64_t i = 0; i < ds->n; i++) count += y[i] >= first && y[i] <= last;
    if (!count)
        return nb__fail(NB_ERR_ARG, "dataset_select_classes: no sample of classes %d to %d (labels 0 to %d)",
                        first, last, ds->num_classes - 1);
    size_t row = (size_t)ds->sample_numel * (ds->is_u8 ? 1 : sizeof(float));
    size_t x_bytes = row * (size_t)count, y_bytes = sizeof(int32_t) * (size_t)count;
    char *x = nb__alloc(x_bytes);
    int32_t *labels = x ? nb__alloc(y_bytes) : NULL;
    if (!labels) {
        nb__dealloc(x, x_bytes);
        return NULL;
    }
    for (int64_t i = 0, k = 0; i < ds->n; i++)
        if (y[i] >= first && y[i] <= last) {
            memcpy(x + row * (size_t)k, (const char *)ds->x + row * (size_t)i, row);
            labels[k++] = y[i] - first;
        }
    return nb__dataset_adopt("dataset_select_classes", count, ds->sample_ndim, ds->sample_shape, ds->is_u8, x,
                             x_bytes, NB_TARGET_CLASS, 1, labels, y_bytes);
}

/* How messages name a dataset's file: the path, or "dataset" for one made in memory. */
static const char *file_or_memory(const char *file) { return file ? file : "dataset"; }

nb_status nb_dataset_check_labels(const nb_dataset *ds, int64_t n_classes) {
    if (!ds) return nb__fail_status(NB_ERR_NULL, "dataset_check_labels: dataset is NULL");
    if (ds->target != NB_TARGET_CLASS)
        return nb__fail_status(NB_ERR_ARG, "dataset_check_labels: %s: the samples have no class "
                               "labels", file_or_memory(ds->y_file));
    if (n_classes < 1)
        return nb__fail_status(NB_ERR_ARG, "dataset_check_labels: %s: %lld classes: need >= 1",
                               file_or_memory(ds->y_file), (long long)n_classes);
    if (ds->num_classes <= n_classes) return NB_OK; /* the largest label fits */
    const int32_t *y = ds->y;
    int64_t i = 0;
    while (y[i] < n_classes) i++;
    return nb__fail_status(NB_ERR_ARG, "dataset_check_labels: %s: sample %lld: label %d is not "
                           "below the model's %lld classes", file_or_memory(ds->y_file),
                           (long long)(ds->file_index + i), y[i], (long long)n_classes);
}

/* "[28,28]", or "[28,28] with 10 classes" / "with 3 targets": what check_match compares. */
static void describe(const nb_dataset *ds, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "%s", nb__shape_str(ds->sample_ndim, ds->sample_shape));
    if (ds->target == NB_TARGET_FLOAT && n >= 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " with %lld targets", (long long)ds->target_dim);
    if (ds->target == NB_TARGET_NONE && n >= 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " without targets");
}

nb_status nb_dataset_check_match(const nb_dataset *ds, const nb_dataset *ref) {
    if (!ds || !ref) return nb__fail_status(NB_ERR_NULL, "dataset_check_match: a dataset is NULL");
    bool same = ds->sample_ndim == ref->sample_ndim && ds->target == ref->target &&
                ds->target_dim == ref->target_dim;
    for (int d = 0; same && d < ds->sample_ndim; d++)
        same = ds->sample_shape[d] == ref->sample_shape[d];
    if (same) return NB_OK;
    char a[160], b[160];
    describe(ds, a, sizeof a);
    describe(ref, b, sizeof b);
    return nb__fail_status(NB_ERR_SHAPE, "dataset_check_match: %s holds samples %s, but %s holds "
                           "%s", file_or_memory(ds->x_file), a, file_or_memory(ref->x_file), b);
}

nb_status nb_dataset_feature_stats(const nb_dataset *ds, float *mean, float *std) {
    if (!ds || !mean || !std)
        return nb__fail_status(NB_ERR_NULL, "dataset_feature_stats: an argument is NULL");
    int64_t m = ds->sample_numel;
    size_t tmp_bytes = 2 * sizeof(double) * (size_t)m;
    double *sum = nb__alloc(tmp_bytes); /* two passes in double: mean, then squared deviations */
    if (!sum) return NB_ERR_MEMORY;
    double *dev = sum + m;
    memset(sum, 0, tmp_bytes);
    const uint8_t *xb = ds->x;
    const float *xf = ds->x;
    for (int64_t i = 0; i < ds->n; i++)
        for (int64_t k = 0; k < m; k++) sum[k] += ds->is_u8 ? xb[i * m + k] : xf[i * m + k];
    for (int64_t k = 0; k < m; k++) sum[k] /= (double)ds->n;
    for (int64_t i = 0; i < ds->n; i++)
        for (int64_t k = 0; k < m; k++) {
            double d = (ds->is_u8 ? xb[i * m + k] : xf[i * m + k]) - sum[k];
            dev[k] += d * d;
        }
    for (int64_t k = 0; k < m; k++) {
        mean[k] = (float)sum[k];
        std[k] = (float)sqrt(dev[k] / (double)ds->n);
    }
    nb__dealloc(sum, tmp_bytes);
    return NB_OK;
}

nb_status nb_dataset_standardize(nb_dataset *ds, const float *mean, const float *std) {
    if (!ds || !mean || !std)
        return nb__fail_status(NB_ERR_NULL, "dataset_standardize: an argument is NULL");
    if (ds->is_u8)
        return nb__fail_status(NB_ERR_DTYPE, "dataset_standardize: samples are bytes; use the "
                               "loader's scale and mean/std transforms");
    int64_t m = ds->sample_numel;
    float *x = ds->x;
    for (int64_t i = 0; i < ds->n; i++)
        for (int64_t k = 0; k < m; k++) {
            float s = std[k] > 0 ? std[k] : 1.0f; /* a constant feature only loses its mean */
            x[i * m + k] = (x[i * m + k] - mean[k]) / s;
        }
    return NB_OK;
}
