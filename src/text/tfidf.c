/*
 * tfidf.c — TF-IDF features of documents of token ids, with scikit-learn's TfidfVectorizer's
 * defaults (its documentation, "Tf-idf term weighting"):
 *   tf(t, d)  the count of t in d, or 1 + ln(count) with sublinear_tf (0 stays 0);
 *   idf(t)    ln((1 + n) / (1 + df(t))) + 1 (smooth_idf, the default; as if one more document
 *             held every term once), or ln(n / df(t)) + 1 without smoothing; n is the number of
 *             training documents and df(t) how many of them hold t;
 *   x(t, d)   tf(t, d) idf(t), each row then divided by its L2 norm (norm='l2'; a row of zeros
 *             stays zeros).
 * The vocabulary is fitted on the training documents: ids held by at least min_df of them, and
 * with max_features the most frequent of those by total count (ties: the smaller id), as
 * scikit-learn's max_features.  Columns follow the ids in increasing order; ids 0 and 1 (<pad>
 * and <unk>) are never features.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

struct nb_tfidf {
    int32_t n_ids;     /* documents hold ids below this */
    int64_t features;  /* F */
    int64_t *column;   /* [n_ids]: the id's column, -1 when it is not a feature */
    double *idf;       /* [F] */
    nb_tfidf_opts opts;
};

void nb_tfidf_free(nb_tfidf *t) {
    if (!t) return;
    nb__dealloc(t->column, (size_t)t->n_ids * sizeof *t->column);
    nb__dealloc(t->idf, (size_t)t->features * sizeof *t->idf);
    nb__dealloc(t, sizeof *t);
}

/* Every id of docs[0..n) is in [0, n_ids), and the arrays are there. */
static nb_status check_docs(const char *op, const int32_t *const *docs, const int64_t *lens,
                            int64_t n, int32_t n_ids) {
    if (!docs || !lens) return nb__fail_status(NB_ERR_NULL, "%s: docs or lens is NULL", op);
    if (n < 1) return nb__fail_status(NB_ERR_ARG, "%s: %lld documents; at least 1 is needed", op, (long long)n);
    for (int64_t d = 0; d < n; d++) {
        if (lens[d] < 0 || (lens[d] > 0 && !docs[d]))
            return nb__fail_status(NB_ERR_ARG, "%s: document %lld has length %lld%s", op,
                                   (long long)d, (long long)lens[d], lens[d] < 0 ? "" : " but no ids");
        for (int64_t i = 0; i < lens[d]; i++)
            if (docs[d][i] < 0 || docs[d][i] >= n_ids)
                return nb__fail_status(NB_ERR_ARG, "%s: document %lld, position %lld: id %d is not "
                                       "below the %d ids", op, (long long)d, (long long)i,
                                       docs[d][i], n_ids);
    }
    return NB_OK;
}

/* Document frequencies and total counts of every id. */
static void count_ids(const int32_t *const *docs, const int64_t *lens, int64_t n, int32_t n_ids,
                      int64_t *df, int64_t *total, int64_t *last) {
    for (int32_t id = 0; id < n_ids; id++) df[id] = total[id] = 0, last[id] = -1;
    for (int64_t d = 0; d < n; d++)
        for (int64_t i = 0; i < lens[d]; i++) {
            int32_t id = docs[d][i];
            total[id]++;
            if (last[id] != d) df[id]++, last[id] = d;
        }
}

typedef struct {
    int64_t total, id;
} id_count;

/* Falling total count, then rising id. */
static int by_count(const void *a, const void *b) {
    const id_count *x = a, *y = b;
    if (x->total != y->total) return x->total > y->total ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int by_id(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The kept ids into keep (their count returned, -1 when out of memory): df >= min_df, then the
 * max_features most frequent, in increasing order. */
static int64_t choose_ids(const int64_t *df, const int64_t *total, int32_t n_ids,
                          const nb_tfidf_opts *o, int64_t *keep) {
    int64_t k = 0;
    for (int32_t id = 2; id < n_ids; id++)
        if (df[id] > 0 && df[id] >= o->min_df) keep[k++] = id;
    if (o->max_features == 0 || k <= o->max_features) return k;
    id_count *by = nb__alloc((size_t)k * sizeof *by);
    if (!by) return -1;
    for (int64_t i = 0; i < k; i++) by[i] = (id_count){total[keep[i]], keep[i]};
    qsort(by, (size_t)k, sizeof *by, by_count);
    for (int64_t i = 0; i < o->max_features; i++) keep[i] = by[i].id;
    nb__dealloc(by, (size_t)k * sizeof *by);
    qsort(keep, (size_t)o->max_features, sizeof *keep, by_id);
    return o->max_features;
}

/* The columns and idf of the ids in keep[0..k) (of n documents). */
static nb_tfidf *make_model(const int64_t *keep, int64_t k, const int64_t *df, int64_t n,
                            int32_t n_ids, nb_tfidf_opts opts) {
    nb_tfidf *t = nb__alloc(sizeof *t);
    if (!t) return NULL;
    *t = (nb_tfidf){.n_ids = n_ids, .features = k, .opts = opts};
    t->column = nb__alloc((size_t)n_ids * sizeof *t->column);
    t->idf = nb__alloc((size_t)k * sizeof *t->idf);
    if (!t->column || !t->idf) return nb_tfidf_free(t), NULL;
    for (int32_t id = 0; id < n_ids; id++) t->column[id] = -1;
    for (int64_t c = 0; c < k; c++) {
        double dfc = (double)df[keep[c]];
        t->column[keep[c]] = c;
        t->idf[c] = (opts.no_smooth_idf ? log((double)n / dfc) : log((1.0 + (double)n) / (1.0 + dfc))) + 1;
    }
    return t;
}

nb_tfidf *nb_tfidf_fit(const int32_t *const *docs, const int64_t *lens, int64_t n_docs,
                       int32_t n_ids, nb_tfidf_opts opts) {
    if (n_ids < 3 || opts.min_df < 0 || opts.max_features < 0)
        return nb__fail(NB_ERR_ARG, "tfidf_fit: n_ids %d, min_df %lld, max_features %lld: need "
                        "n_ids >= 3 (ids 0 and 1 are <pad> and <unk>), the others >= 0", n_ids,
                        (long long)opts.min_df, (long long)opts.max_features);
    if (check_docs("tfidf_fit", docs, lens, n_docs, n_ids) != NB_OK) return NULL;
    size_t bytes = (size_t)n_ids * sizeof(int64_t);
    int64_t *df = nb__alloc(bytes), *total = nb__alloc(bytes), *keep = nb__alloc(bytes);
    nb_tfidf *t = NULL;
    if (df && total && keep) {
        count_ids(docs, lens, n_docs, n_ids, df, total, keep); /* keep is scratch here */
        int64_t k = choose_ids(df, total, n_ids, &opts, keep);
        if (k == 0)
            nb__fail(NB_ERR_ARG, "tfidf_fit: no id (>= 2) is in %lld of the %lld documents "
                     "(min_df)", (long long)(opts.min_df > 1 ? opts.min_df : 1), (long long)n_docs);
        else if (k > 0) t = make_model(keep, k, df, n_docs, n_ids, opts);
    }
    nb__dealloc(df, bytes);
    nb__dealloc(total, bytes);
    nb__dealloc(keep, bytes);
    return t;
}

int64_t nb_tfidf_size(const nb_tfidf *t) {
    if (!t) return nb__fail(NB_ERR_NULL, "tfidf_size: t is NULL"), -1;
    return t->features;
}

int64_t nb_tfidf_column(const nb_tfidf *t, int32_t id) {
    if (!t) return nb__fail(NB_ERR_NULL, "tfidf_column: t is NULL"), -1;
    return id >= 0 && id < t->n_ids ? t->column[id] : -1;
}

double nb_tfidf_idf(const nb_tfidf *t, int32_t id) {
    int64_t c = nb_tfidf_column(t, id);
    return c < 0 ? 0 : t->idf[c];
}

/* One document's row x[F]: counts, tf, idf, L2 norm (see the top of the file). */
static void transform_row(const nb_tfidf *t, const int32_t *ids, int64_t len, float *x) {
    int64_t F = t->features;
    for (int64_t c = 0; c < F; c++) x[c] = 0;
    for (int64_t i = 0; i < len; i++)
        if (t->column[ids[i]] >= 0) x[t->column[ids[i]]] += 1;
    double norm = 0;
    for (int64_t c = 0; c < F; c++) {
        if (x[c] == 0) continue;
        double v = (t->opts.sublinear_tf ? 1 + log((double)x[c]) : (double)x[c]) * t->idf[c];
        x[c] = (float)v;
        norm += v * v;
    }
    if (t->opts.no_norm || norm == 0) return;
    float inv = (float)(1 / sqrt(norm));
    for (int64_t c = 0; c < F; c++) x[c] *= inv;
}

nb_status nb_tfidf_transform_rows(const nb_tfidf *t, const int32_t *const *docs, const int64_t *lens,
                                  int64_t n_docs, float *out) {
    if (!t || !out) return nb__fail_status(NB_ERR_NULL, "tfidf_transform: t or out is NULL");
    nb_status st = check_docs("tfidf_transform", docs, lens, n_docs, t->n_ids);
    for (int64_t d = 0; st == NB_OK && d < n_docs; d++)
        transform_row(t, docs[d], lens[d], out + d * t->features);
    return st;
}

nb_tensor *nb_tfidf_transform(const nb_tfidf *t, const int32_t *const *docs, const int64_t *lens,
                              int64_t n_docs) {
    if (!t) return nb__fail(NB_ERR_NULL, "tfidf_transform: t is NULL");
    if (n_docs < 1) return nb__fail(NB_ERR_ARG, "tfidf_transform: %lld documents; at least 1 is needed", (long long)n_docs);
    size_t bytes = (size_t)n_docs * (size_t)t->features * sizeof(float);
    float *x = nb__alloc(bytes);
    nb_tensor *r = NULL;
    if (x && nb_tfidf_transform_rows(t, docs, lens, n_docs, x) == NB_OK)
        r = nb_from_data(x, 2, (const int64_t[]){n_docs, t->features});
    nb__dealloc(x, bytes);
    return r;
}
