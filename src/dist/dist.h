/*
 * dist.h — the transport behind nabla/dist.h: one struct of function pointers per way of
 * talking between ranks (MPI today, mpi.c; NCCL could be another), working on contiguous host
 * float buffers.  dist.c does what every transport shares: the checks, the agreement on shapes
 * before each collective, and staging tensor memory to and from the host.
 */
#ifndef NB_DIST_DIST_H
#define NB_DIST_DIST_H

#include "../core/core.h"

/* Every function returns NB_OK or fails through nb__fail with a message naming the call. */
typedef struct nb__dist_backend {
    const char *name;
    nb_status (*init)(int *argc, char ***argv);
    nb_status (*finalize)(void);
    int (*rank)(void);
    int (*size)(void);
    /* lo[i] / hi[i] = the least / greatest of every rank's v[i], i < k */
    nb_status (*agree)(const int64_t *v, int k, int64_t *lo, int64_t *hi);
    /* buf = the sum over ranks of buf, in place */
    nb_status (*allreduce_sum)(float *buf, int64_t n);
    /* The same, started and not waited for: *req (NULL on failure) is for wait, which every
     * started call must get before buf is read or freed.  Started calls pair up between ranks in
     * the order they are started, as blocking ones do. */
    nb_status (*iallreduce_sum)(float *buf, int64_t n, void **req);
    /* Waits for req within the deadline the blocking calls keep, and frees it. */
    nb_status (*wait)(void *req);
    /* Lets req progress without waiting (MPI moves a non-blocking collective on only inside
     * its calls, having no progress thread of its own); *done: whether it has completed.  req
     * stays for wait. */
    nb_status (*progress)(void *req, bool *done);
    nb_status (*broadcast)(float *buf, int64_t n, int root);
    /* out[r n .. r n + n) = rank r's in[0 .. n) */
    nb_status (*allgather)(float *out, const float *in, int64_t n);
    /* out[0 .. n) = the sum over ranks of in[rank n .. rank n + n) */
    nb_status (*reduce_scatter_sum)(float *out, const float *in, int64_t n);
    nb_status (*send)(const float *buf, int64_t n, int dst);
    /* fails with NB_ERR_SHAPE when src sent other than n elements */
    nb_status (*recv)(float *buf, int64_t n, int src);
    nb_status (*barrier)(void);
    /* send, started and not waited for: buf must stay unchanged until wait (the pipeline's
     * activations, so that neighbouring stages sending to each other do not wait on each other) */
    nb_status (*isend)(const float *buf, int64_t n, int dst, void **req);
} nb__dist_backend;

#ifdef NB_HAVE_MPI
extern const nb__dist_backend nb__dist_mpi;
#endif

/* The transport of the initialised group; NULL (with the reason as the error, naming op) when
 * there is none. */
const nb__dist_backend *nb__dist_active(const char *op);
/* buf = the sum (or mean) over ranks of the host floats buf[0 .. n), after agreeing on n: the
 * data parallel buckets' allreduce. */
nb_status nb__dist_allreduce_host(const char *op, float *buf, int64_t n, nb_dist_reduce red);
/* The same in two halves, for reductions that overlap with work (the data parallel hooks): start
 * it (no agreement on n: the caller's buffers are alike on every rank by construction), then wait
 * for it and take the mean. */
nb_status nb__dist_iallreduce_host(const char *op, float *buf, int64_t n, void **req);
nb_status nb__dist_wait_host(const char *op, void *req, float *buf, int64_t n, nb_dist_reduce red);
/* Moves a started reduction on while the caller works (the backward hooks poll with it);
 * *done: whether it has completed. */
nb_status nb__dist_progress_host(const char *op, void *req, bool *done);

/* ---- models split across ranks (shard.c), for tensor and pipeline parallelism */

typedef struct nb_module nb_module;
/* Every rank takes rank root's parameters and buffers of m, after agreeing on their count (so
 * that the broadcasts pair up; each checks its shape).  op names the caller in errors. */
nb_status nb__dist_broadcast_module(const nb_module *m, int root, const char *op);
/* full's own and children's parameters and buffers = part's, which must be of the same class
 * and shapes (NB_ERR_SHAPE naming layer `name` otherwise). */
nb_status nb__dist_copy_layer(nb_module *full, const nb_module *part, const char *op, const char *name);
/* True for a Sequential; else false with NB_ERR_NULL or NB_ERR_ARG naming op. */
bool nb__dist_is_sequential(const nb_module *m, const char *op);

#endif
