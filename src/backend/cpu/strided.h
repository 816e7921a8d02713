/*
 * strided.h — walking up to three strided operands in step with a contiguous output.
 * Dims that are laid out back to back in every operand are merged first, so a contiguous or
 * simply broadcast case becomes one long row and the inner loop vectorises.
 */
#ifndef NB_CPU_STRIDED_H
#define NB_CPU_STRIDED_H

#include "nabla.h"

#define NB_CPU_PARALLEL_MIN (1 << 15) /* elements below which threads cost more than they give */

typedef struct {
    int ndim, nops;
    int64_t shape[NB_MAX_DIMS];
    int64_t stride[3][NB_MAX_DIMS];
} nb_layout;

/* Copies the geometry in, drops size-1 dims and merges mergeable neighbours. */
void nb__layout_init(nb_layout *l, int ndim, const int64_t *shape, int nops,
                     const int64_t *const *strides);
/* Number of rows (product of all dims but the last) and the row length. */
int64_t nb__layout_rows(const nb_layout *l);
int64_t nb__layout_row_len(const nb_layout *l);
/* Offsets of row `row` in each operand. */
void nb__layout_row_offsets(const nb_layout *l, int64_t row, int64_t *off);
static inline int64_t nb__layout_inner_stride(const nb_layout *l, int op) {
    return l->ndim ? l->stride[op][l->ndim - 1] : 0;
}

#endif
