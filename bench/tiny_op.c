/*
 * tiny_op.c — the fixed cost of one op: nb_add of two 8-element tensors, where the arithmetic is
 * nothing and the checks, allocation, kernel dispatch and (when recording) graph node are all.
 *
 * Three cases: "record" (an input requires grad, so each add allocates a node), "no_record"
 * (no input requires grad) and "no_grad" (an input requires grad but the adds run under
 * NB_NO_GRAD).  A batch is BATCH adds inside one scope, nb_scope_begin/end included in the
 * time, so the cost of releasing what the ops made is counted too; the figure is ns per op, the
 * median over the batches.  The cases are interleaved batch by batch so that they see the same
 * machine load.
 *
 * Output: a human table, then "@tiny_op case=... ns_per_op=..." lines for bench/run.sh.
 * Goal: <= 1000 ns per op.
 */
#include "nabla.h"
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>

#define BATCH 10000
#define BATCHES 101

typedef enum { CASE_RECORD, CASE_NO_RECORD, CASE_NO_GRAD, CASE_COUNT } tiny_case;
static const char *const case_names[CASE_COUNT] = {"record", "no_record", "no_grad"};

/* One batch of BATCH adds in a fresh scope; ns per op.  A NULL result fails the whole run: a
 * failing op would be measured as a suspiciously fast one. */
static double batch(nb_tensor *a, nb_tensor *b) {
    double t0 = now_ns();
    nb_scope_begin();
    nb_tensor *last = NULL;
    for (int i = 0; i < BATCH; i++) last = nb_add(a, b);
    nb_scope_end();
    double t = (now_ns() - t0) / BATCH;
    if (!last) {
        fprintf(stderr, "add failed: %s\n", nb_error_message());
        exit(1);
    }
    return t;
}

int main(void) {
    static const float va[8] = {1, 2, 3, 4, 5, 6, 7, 8}, vb[8] = {8, 7, 6, 5, 4, 3, 2, 1};
    nb_tensor *plain_a = nb_from_data(va, NB_SHAPE(8)), *b = nb_from_data(vb, NB_SHAPE(8));
    nb_tensor *grad_a = nb_from_data(va, NB_SHAPE(8));
    if (!plain_a || !b || !grad_a || nb_set_requires_grad(grad_a, true) != NB_OK) {
        fprintf(stderr, "setup failed: %s\n", nb_error_message());
        return 1;
    }
    printf("tiny_op: nb_add of two [8] tensors, %d ops per scope, median of %d batches\n%s\n",
           BATCH, BATCHES, nb_backend_info());
    double ns[CASE_COUNT][BATCHES];
    for (int i = -1; i < BATCHES; i++) { /* batch -1 warms the arena and is not counted */
        double t[CASE_COUNT];
        t[CASE_RECORD] = batch(grad_a, b);
        t[CASE_NO_RECORD] = batch(plain_a, b);
        NB_NO_GRAD { t[CASE_NO_GRAD] = batch(grad_a, b); }
        for (int c = 0; c < CASE_COUNT && i >= 0; c++) ns[c][i] = t[c];
    }
    printf("%10s %12s\n", "case", "ns per op");
    double med[CASE_COUNT];
    for (int c = 0; c < CASE_COUNT; c++) {
        med[c] = median(ns[c], BATCHES);
        printf("%10s %12.1f\n", case_names[c], med[c]);
    }
    for (int c = 0; c < CASE_COUNT; c++)
        printf("@tiny_op case=%s ns_per_op=%.2f\n", case_names[c], med[c]);
    nb_tensor_free(grad_a);
    nb_tensor_free(plain_a);
    nb_tensor_free(b);
    return 0;
}
