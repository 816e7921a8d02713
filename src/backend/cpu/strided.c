/* strided.c — see strided.h. */
#include "strided.h"

#include <string.h>

void nb__layout_init(nb_layout *l, int ndim, const int64_t *shape, int nops,
                     const int64_t *const *strides) {
    l->nops = nops;
    l->ndim = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 1) continue;
        int d = l->ndim;
        bool merge = d > 0;
        for (int k = 0; k < nops && merge; k++)
            merge = l->stride[k][d - 1] == strides[k][i] * shape[i];
        if (merge) {
            l->shape[d - 1] *= shape[i];
            for (int k = 0; k < nops; k++) l->stride[k][d - 1] = strides[k][i];
        } else {
            l->shape[d] = shape[i];
            for (int k = 0; k < nops; k++) l->stride[k][d] = strides[k][i];
            l->ndim++;
        }
    }
}

int64_t nb__layout_rows(const nb_layout *l) {
    int64_t n = 1;
    for (int i = 0; i + 1 < l->ndim; i++) n *= l->shape[i];
    return n;
}

int64_t nb__layout_row_len(const nb_layout *l) { return l->ndim ? l->shape[l->ndim - 1] : 1; }

void nb__layout_row_offsets(const nb_layout *l, int64_t row, int64_t *off) {
    memset(off, 0, sizeof(int64_t) * (size_t)l->nops);
    for (int i = l->ndim - 2; i >= 0; i--) {
        int64_t idx = row % l->shape[i];
        row /= l->shape[i];
        for (int k = 0; k < l->nops; k++) off[k] += idx * l->stride[k][i];
    }
}
