/* metrics.c — classification accuracy from logits and labels. */
#include "nabla/train.h"
#include "../core/core.h"

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
