/*
 * shape.c — shape helpers shared by every op: formatting for messages, dim normalisation and
 * NumPy broadcasting (align trailing dims; sizes must match or one of them be 1).
 */
#include "core.h"

#include <stdio.h>

const char *nb__shape_str(int ndim, const int64_t *shape) {
    static _Thread_local char slots[4][16 * NB_MAX_DIMS + 4];
    static _Thread_local int next;
    char *buf = slots[next];
    next = (next + 1) % 4;
    size_t cap = sizeof slots[0];
    int len = snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < (int)cap; i++)
        len += snprintf(buf + len, cap - (size_t)len, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (len < (int)cap) snprintf(buf + len, cap - (size_t)len, "]");
    return buf;
}

bool nb__norm_dim(const char *op, int *dim, int ndim) {
    int d = *dim < 0 ? *dim + ndim : *dim;
    if (d < 0 || d >= ndim) {
        nb__fail(NB_ERR_DIM, "%s: dim %d is out of range for a tensor of rank %d", op, *dim, ndim);
        return false;
    }
    *dim = d;
    return true;
}

bool nb__broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int *nout,
                         int64_t *out) {
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int64_t a = i < n - na ? 1 : sa[i - (n - na)];
        int64_t b = i < n - nb ? 1 : sb[i - (n - nb)];
        if (a != b && a != 1 && b != 1) return false;
        out[i] = a == 1 ? b : a;
    }
    *nout = n;
    return true;
}

void nb__broadcast_strides(const nb_tensor *t, int ndim, const int64_t *shape, int64_t *stride) {
    int lead = ndim - t->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - lead;
        stride[i] = (j < 0 || (t->shape[j] == 1 && shape[i] != 1)) ? 0 : t->stride[j];
    }
}
