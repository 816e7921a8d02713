/* metrics.c — classification accuracy from logits and labels; confusion matrices and macro-F1. */
#include "nabla/train.h"
#include "../core/core.h"

#include <math.h>

int64_t nb_count_correct(nb_tensor *logits, nb_tensor *labels) {
    if (!nb__alive(logits)) return nb__fail_input("count_correct", logits), -1;
    if (!nb__alive(labels)) return nb__fail_input("count_correct", labels), -1;
    if (labels->dtype != NB_I32)
        return nb__fail(NB_ERR_DTYPE, "count_correct: labels are %s, need int32",
                        nb_dtype_name(labels->dtype)), -1;
    if (logits->ndim != 2 || labels->ndim != 1 || labels->shape[0] != logits->shape[0])
        return nb__fail(NB_ERR_SHAPE, "count_correct: logits %s and labels %s: need [N, C] "
                        "and [N]", NB_SHP(logits), NB_SHP(labels)), -1;
    bool was = nb_set_grad_enabled(false);
    nb_tensor *pred = nb_argmax(logits, 1, false);
    nb_set_grad_enabled(was);
    if (!pred) return -1;
    int64_t n = logits->shape[0], correct = 0;
    int32_t *p = nb__host_copy(pred), *y = p ? nb__host_copy(labels) : NULL;
    for (int64_t i = 0; y && i < n; i++) correct += p[i] == y[i];
    if (y) nb__host_free(y, labels);
    if (p) nb__host_free(p, pred);
    nb_tensor_free(pred);
    return y ? correct : -1;
}

nb_status nb_confusion_matrix(const int32_t *truth, const int32_t *pred, int64_t n,
                              int32_t classes, int64_t *counts) {
    if (!truth || !pred || !counts) return nb__fail_status(NB_ERR_NULL, "confusion_matrix: an array is NULL");
    if (classes < 1 || n < 0)
        return nb__fail_status(NB_ERR_ARG, "confusion_matrix: %d classes, %lld samples", classes, (long long)n);
    for (int64_t i = 0; i < (int64_t)classes * classes; i++) counts[i] = 0;
    for (int64_t i = 0; i < n; i++) {
        if (truth[i] < 0 || truth[i] >= classes || pred[i] < 0 || pred[i] >= classes)
            return nb__fail_status(NB_ERR_ARG, "confusion_matrix: sample %lld: class %d predicted "
                                   "%d, each must be in [0, %d)", (long long)i, truth[i], pred[i], classes);
        counts[(int64_t)truth[i] * classes + pred[i]]++;
    }
    return NB_OK;
}

double nb_macro_f1(const int64_t *counts, int32_t classes) {
    if (!counts || classes < 1) return NAN;
    double sum = 0;
    int32_t seen = 0;
    for (int32_t c = 0; c < classes; c++) {
        int64_t tp = counts[(int64_t)c * classes + c], row = 0, col = 0; /* row: true c; col: predicted c */
        for (int32_t k = 0; k < classes; k++) row += counts[(int64_t)c * classes + k], col += counts[(int64_t)k * classes + c];
        if (row == 0 && col == 0) continue;
        seen++;
        sum += 2.0 * (double)tp / (double)(row + col); /* 2 TP / (2 TP + FP + FN) */
    }
    return seen ? sum / seen : 0;
}
