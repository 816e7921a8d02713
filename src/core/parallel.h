/*
 * parallel.h — how kernels use threads: the library's own pool.
 *
 * nb__parallel_for(parallel, n, fn, ctx) runs fn(ctx, lo, hi) over [0, n) cut into pieces
 * that the calling thread and the pool's workers claim one at a time.  The caller never waits
 * for a worker that has not started: on a machine whose cores are busy a descheduled worker
 * simply claims nothing, and the caller does its share, so N threads are never much slower
 * than one (an OpenMP team waits for every member at its closing barrier, and libgomp's
 * members spin there, which made two threads 26x slower than one on a loaded machine).
 *
 * Determinism: the pieces depend only on n and the thread count set by nb_set_num_threads,
 * never on which thread runs them, so a kernel whose output elements each come from one piece
 * gives the same bits for a given thread count.  Calls made inside a piece, or while another
 * thread's call is in flight, run inline on the calling thread.
 */
#ifndef NB_PARALLEL_H
#define NB_PARALLEL_H

#include <stdbool.h>
#include <stdint.h>

typedef void nb__range_fn(void *ctx, int64_t lo, int64_t hi);

/* fn(ctx, 0, n) inline when !parallel or one thread is set, else shared out as above. */
void nb__parallel_for(bool parallel, int64_t n, nb__range_fn *fn, void *ctx);

/* The same with one piece per index: fn(ctx, i, i + 1) for every i < n (n small, such as a
 * fixed number of partial results, each written by its own index). */
void nb__parallel_each(int64_t n, nb__range_fn *fn, void *ctx);

/* Whether a caller shares its jobs with the workers: as the machine's load says (the default;
 * see parallel.c), or always, or never.  For tests, which must exercise the workers whatever
 * else the machine runs. */
typedef enum { NB__SHARE_BY_LOAD, NB__SHARE_ALWAYS, NB__SHARE_NEVER } nb__share_policy;
void nb__set_share_policy(nb__share_policy policy);

/* The thread count set (nb_set_num_threads; by default the cores this process may run on), and
 * whether the calling thread is inside a piece (then nested calls run inline). */
int nb__threads(void);
bool nb__in_parallel(void);

/* Marks a loop whose iterations are independent for the compiler's vectoriser (compiled with
 * -fopenmp-simd: no OpenMP runtime). */
#define NB_SIMD _Pragma("omp simd")

#endif
