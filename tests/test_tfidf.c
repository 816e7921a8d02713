/*
 * test_tfidf.c — TF-IDF (src/text/tfidf.c) against numbers computed by hand from
 * scikit-learn's formulas (idf = ln((1 + n) / (1 + df)) + 1, rows L2-normalised; the script is
 * in the comment below, plain Python without scikit-learn), its options (sublinear tf, no
 * smoothing, min_df, max_features), bad documents refused; and the confusion matrix and
 * macro-F1 (src/train/metrics.c) on a hand-made example.
 */
#include "check.h"
#include "nabla/text.h"
#include "nabla/train.h"

/* Three documents over ids 2..5 ("the" "cat" "dog" "bird"); id 1 (<unk>) is never a feature.
 *   import math; docs = [[2,2,3],[2,4],[3,5,5,5,1]]; n = 3
 *   df = {i: sum(i in d for d in docs) for i in range(2, 6)}
 *   idf = {i: math.log((1 + n) / (1 + df[i])) + 1 for i in df}   # smooth_idf
 *   row = [d.count(i) * idf[i] for i in range(2, 6)], then row / its L2 norm
 * (sublinear: (1 + math.log(count)) instead of count; no smoothing: math.log(n / df) + 1). */
static const int32_t d0[] = {2, 2, 3}, d1[] = {2, 4}, d2[] = {3, 5, 5, 5, 1};
static const int32_t *const docs[] = {d0, d1, d2};
static const int64_t lens[] = {3, 2, 5};

static void check_rows(const char *what, nb_tfidf_opts o, const double *want) {
    nb_tfidf *t = nb_tfidf_fit(docs, lens, 3, 6, o);
    CHECK(t && nb_tfidf_size(t) == 4);
    nb_tensor *x = nb_tfidf_transform(t, docs, lens, 3);
    CHECK(x && nb_shape(x)[0] == 3 && nb_shape(x)[1] == 4);
    CHECK_TENSOR(what, x, want, 12, 1e-6, 1e-6);
    nb_tensor_free(x);
    nb_tfidf_free(t);
}

static void tfidf_matches_the_formula_on_three_documents(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    nb_tfidf *t = nb_tfidf_fit(docs, lens, 3, 6, (nb_tfidf_opts){0});
    CHECK_NEAR(nb_tfidf_idf(t, 2), 1.2876821, 1e-7, 0); /* ln(4/3) + 1: in 2 of 3 documents */
    CHECK_NEAR(nb_tfidf_idf(t, 4), 1.6931472, 1e-7, 0); /* ln(4/2) + 1: in 1 */
    CHECK_NEAR(nb_tfidf_idf(t, 1), 0, 0, 0);            /* <unk> is no feature */
    CHECK_EQ_INT(nb_tfidf_column(t, 1), -1);
    CHECK_EQ_INT(nb_tfidf_column(t, 5), 3);
    nb_tfidf_free(t);
    const double plain[] = {0.8944272, 0.4472136, 0, 0, 0.6053485, 0, 0.7959605, 0,
                            0, 0.2457353, 0, 0.9693370};
    check_rows("smooth idf, raw tf", (nb_tfidf_opts){0}, plain);
    const double sublinear[] = {0.8610370, 0.5085423, 0, 0, 0.6053485, 0, 0.7959605, 0,
                                0, 0.3407117, 0, 0.9401678};
    check_rows("sublinear tf", (nb_tfidf_opts){.sublinear_tf = true}, sublinear);
    const double unsmoothed[] = {0.8944272, 0.4472136, 0, 0, 0.5564505, 0, 0.8308807, 0,
                                 0, 0.2178744, 0, 0.9759768};
    check_rows("idf without smoothing", (nb_tfidf_opts){.no_smooth_idf = true}, unsmoothed);
    /* without the norm: tf x idf itself, 2 x 1.2876821 for "the" twice in d0 */
    const double raw[] = {2 * 1.2876821, 1.2876821, 0, 0, 1.2876821, 0, 1.6931472, 0,
                          0, 1.2876821, 0, 3 * 1.6931472};
    check_rows("no norm", (nb_tfidf_opts){.no_norm = true}, raw);
    CHECK_BYTES_BACK("tfidf", before);
}

/* min_df 2 keeps the ids in two documents (2 and 3); max_features keeps the most frequent by
 * total count: 2 and 5 are both seen three times, 3 twice, so 1 keeps 2 (ties: the smaller id)
 * and 2 keeps 2 and 5. */
static void tfidf_min_df_and_max_features_choose_the_columns(void) {
    nb_tfidf *t = nb_tfidf_fit(docs, lens, 3, 6, (nb_tfidf_opts){.min_df = 2});
    CHECK_EQ_INT(nb_tfidf_size(t), 2);
    CHECK_EQ_INT(nb_tfidf_column(t, 3), 1);
    CHECK_EQ_INT(nb_tfidf_column(t, 4), -1);
    float row[2];
    /* a document of ids that are not features is a row of zeros, not NaN */
    const int32_t *unseen[] = {d1 + 1};
    CHECK(nb_tfidf_transform_rows(t, unseen, (const int64_t[]){1}, 1, row) == NB_OK);
    CHECK(row[0] == 0 && row[1] == 0);
    nb_tfidf_free(t);
    t = nb_tfidf_fit(docs, lens, 3, 6, (nb_tfidf_opts){.max_features = 1});
    CHECK_EQ_INT(nb_tfidf_size(t), 1);
    CHECK_EQ_INT(nb_tfidf_column(t, 2), 0);
    nb_tfidf_free(t);
    t = nb_tfidf_fit(docs, lens, 3, 6, (nb_tfidf_opts){.max_features = 2});
    CHECK_EQ_INT(nb_tfidf_column(t, 2), 0);
    CHECK_EQ_INT(nb_tfidf_column(t, 5), 1);
    nb_tfidf_free(t);
}

static void tfidf_refuses_bad_documents(void) {
    CHECK(!nb_tfidf_fit(docs, lens, 3, 5, (nb_tfidf_opts){0}));
    CHECK_ERROR(NB_ERR_ARG, "tfidf_fit: document 2, position 1: id 5 is not below the 5 ids");
    CHECK(!nb_tfidf_fit(docs, lens, 3, 6, (nb_tfidf_opts){.min_df = 4}));
    CHECK_ERROR(NB_ERR_ARG, "no id (>= 2) is in 4 of the 3 documents");
    CHECK(!nb_tfidf_fit(docs, (const int64_t[]){3, -1, 5}, 3, 6, (nb_tfidf_opts){0}));
    CHECK_ERROR(NB_ERR_ARG, "document 1 has length -1");
    CHECK(!nb_tfidf_fit(NULL, lens, 3, 6, (nb_tfidf_opts){0}));
    CHECK_ERROR(NB_ERR_NULL, "tfidf_fit");
    CHECK(!nb_tfidf_fit(docs, lens, 0, 6, (nb_tfidf_opts){0}));
    CHECK_ERROR(NB_ERR_ARG, "0 documents");
    nb_tfidf *t = nb_tfidf_fit(docs, lens, 3, 6, (nb_tfidf_opts){0});
    const int32_t bad[] = {2, -3};
    const int32_t *bads[] = {bad};
    CHECK(!nb_tfidf_transform(t, bads, (const int64_t[]){2}, 1));
    CHECK_ERROR(NB_ERR_ARG, "tfidf_transform: document 0, position 1: id -3");
    nb_tfidf_free(t);
    CHECK_EQ_INT(nb_tfidf_size(NULL), -1);
    CHECK_ERROR(NB_ERR_NULL, "tfidf_size");
}

/* 3 classes, 6 samples: truth 0 0 1 1 2 2, predicted 0 1 1 1 0 2.
 * F1: class 0: TP 1, FP 1, FN 1 -> 2/4; class 1: TP 2, FP 1, FN 0 -> 4/5; class 2: TP 1, FN 1
 * -> 2/3; macro = (0.5 + 0.8 + 0.6667) / 3.  A fourth class that never occurs is left out. */
static void confusion_matrix_and_macro_f1_by_hand(void) {
    const int32_t truth[] = {0, 0, 1, 1, 2, 2}, pred[] = {0, 1, 1, 1, 0, 2};
    int64_t m[16];
    CHECK(nb_confusion_matrix(truth, pred, 6, 3, m) == NB_OK);
    const int64_t want[] = {1, 1, 0, 0, 2, 0, 1, 0, 1};
    CHECK(!memcmp(m, want, sizeof want));
    CHECK_NEAR(nb_macro_f1(m, 3), (0.5 + 0.8 + 2.0 / 3) / 3, 1e-12, 0);
    CHECK(nb_confusion_matrix(truth, pred, 6, 4, m) == NB_OK);
    CHECK_NEAR(nb_macro_f1(m, 4), (0.5 + 0.8 + 2.0 / 3) / 3, 1e-12, 0);
    CHECK(nb_confusion_matrix(truth, pred, 6, 2, m) != NB_OK);
    CHECK_ERROR(NB_ERR_ARG, "confusion_matrix: sample 4: class 2 predicted 0");
    CHECK(isnan(nb_macro_f1(NULL, 3)));
}

int main(void) {
    tfidf_matches_the_formula_on_three_documents();
    tfidf_min_df_and_max_features_choose_the_columns();
    tfidf_refuses_bad_documents();
    confusion_matrix_and_macro_f1_by_hand();
    return check_summary();
}
