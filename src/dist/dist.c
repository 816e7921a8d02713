/*
 * dist.c — process groups (nabla/dist.h) over the transport that nb_dist_init starts: the
 * checks every collective shares, the agreement on shapes that turns a mismatch between ranks
 * into an error on every rank instead of a hang, and the staging of tensor memory to the host.
 */
#include "dist.h"

#include "../backend/backend.h"

#include <string.h>

/* The transport this build can start, and the one started (process-wide, one thread). */
#ifdef NB_HAVE_MPI
static const nb__dist_backend *const builtin = &nb__dist_mpi;
#else
static const nb__dist_backend *const builtin = NULL;
#endif
static const nb__dist_backend *active;

const nb__dist_backend *nb__dist_active(const char *op) {
    if (active) return active;
    if (!builtin) return nb__fail(NB_ERR_DEVICE, "dist: this build has no MPI (nb_dist_%s)", op);
    return nb__fail(NB_ERR_ARG, "dist: %s: not initialised (call nb_dist_init first)", op);
}

nb_status nb_dist_init(int *argc, char ***argv) {
    if (!builtin) return nb__dist_active("init") ? NB_OK : nb_error_code();
    if (active) return nb__fail_status(NB_ERR_ARG, "dist: init: already initialised");
    if (builtin->init(argc, argv) != NB_OK) return nb_error_code();
    active = builtin;
    return NB_OK;
}

nb_status nb_dist_finalize(void) {
    const nb__dist_backend *be = nb__dist_active("finalize");
    if (!be) return nb_error_code();
    active = NULL;
    return be->finalize();
}

bool nb_dist_is_initialized(void) { return active != NULL; }
int nb_dist_rank(void) { return active ? active->rank() : 0; }
int nb_dist_size(void) { return active ? active->size() : 1; }

/* ---- checks and agreement */

static bool usable(const char *op, const nb_tensor *t) {
    if (!nb__alive(t)) return nb__fail_input(op, t), false;
    if (t->dtype != NB_F32)
        return nb__fail(NB_ERR_DTYPE, "dist: %s: rank %d: a %s tensor; collectives take float32",
                        op, nb_dist_rank(), nb_dtype_name(t->dtype)), false;
    return true;
}

/* Every rank tells the others whether its input passed its own checks (ok), and its shape; the
 * collective goes ahead on all ranks or on none.  A rank whose input failed keeps its own error;
 * the others report that one did.  n_out: the element count. */
static bool agreed(const nb__dist_backend *be, const char *op, const nb_tensor *t, bool ok,
                   int64_t *n_out) {
    int64_t sig[2 + NB_MAX_DIMS] = {ok}, lo[2 + NB_MAX_DIMS], hi[2 + NB_MAX_DIMS];
    int k = 2 + NB_MAX_DIMS;
    if (ok) {
        sig[1] = t->ndim;
        memcpy(sig + 2, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    }
    if (be->agree(sig, k, lo, hi) != NB_OK) return false;
    if (!ok) return false;
    if (!lo[0])
        return nb__fail(NB_ERR_ARG, "dist: %s: rank %d of %d: another rank's input failed its checks",
                        op, be->rank(), be->size()), false;
    for (int i = 1; i < k; i++)
        if (lo[i] != hi[i])
            return nb__fail(NB_ERR_SHAPE, "dist: %s: rank %d of %d has shape %s, another rank a "
                            "different one (the shapes must agree)", op, be->rank(), be->size(),
                            nb__shape_str(t->ndim, t->shape)), false;
    *n_out = nb__numel(t->ndim, t->shape);
    return true;
}

/* ---- staging: MPI reads and writes host memory */

/* t's elements as contiguous host floats: t's own memory where its backend's memory is the
 * host's and t is contiguous, else a new host buffer (*staged) holding t's values when read. */
static float *host_floats(const nb_tensor *t, bool read, bool *staged) {
    *staged = !(t->storage->backend->host_memory && nb_is_contiguous(t));
    if (!*staged) return nb__f32(t);
    size_t bytes = sizeof(float) * (size_t)nb__numel(t->ndim, t->shape);
    float *h = nb__alloc(bytes ? bytes : 1);
    if (h && read && nb__copy_logical(h, t) != NB_OK) {
        nb__dealloc(h, bytes ? bytes : 1);
        return NULL;
    }
    return h;
}

/* Gives back host_floats' buffer, first storing it into t when write; returns st, or the store's
 * failure. */
static nb_status host_floats_done(nb_tensor *t, float *h, bool staged, bool write, nb_status st) {
    if (!staged || !h) return st;
    if (write && st == NB_OK) st = nb__store_logical(t, h);
    size_t bytes = sizeof(float) * (size_t)nb__numel(t->ndim, t->shape);
    nb__dealloc(h, bytes ? bytes : 1);
    return st;
}

static bool reduce_ok(const char *op, nb_dist_reduce red) {
    if (red >= 0 && red < NB_REDUCE_COUNT) return true;
    return nb__fail(NB_ERR_ARG, "dist: %s: unknown reduction %d", op, (int)red), false;
}

/* torch divides the sum by the group's size for a mean */
static void mean_of_sum(float *h, int64_t n, nb_dist_reduce red, int size) {
    if (red != NB_REDUCE_MEAN) return;
    for (int64_t i = 0; i < n; i++) h[i] /= (float)size;
}

nb_status nb__dist_allreduce_host(const char *op, float *buf, int64_t n, nb_dist_reduce red) {
    const nb__dist_backend *be = nb__dist_active(op);
    if (!be) return nb_error_code();
    int64_t lo, hi;
    if (be->agree(&n, 1, &lo, &hi) != NB_OK) return nb_error_code();
    if (lo != hi)
        return nb__fail_status(NB_ERR_SHAPE, "dist: %s: rank %d of %d has %lld elements, another "
                               "rank a different count (%lld to %lld)", op, be->rank(), be->size(),
                               (long long)n, (long long)lo, (long long)hi);
    if (be->allreduce_sum(buf, n) != NB_OK) return nb_error_code();
    mean_of_sum(buf, n, red, be->size());
    return NB_OK;
}

nb_status nb__dist_iallreduce_host(const char *op, float *buf, int64_t n, void **req) {
    const nb__dist_backend *be = nb__dist_active(op);
    *req = NULL;
    return be ? be->iallreduce_sum(buf, n, req) : nb_error_code();
}

nb_status nb__dist_wait_host(const char *op, void *req, float *buf, int64_t n, nb_dist_reduce red) {
    const nb__dist_backend *be = nb__dist_active(op);
    if (!be || be->wait(req) != NB_OK) return nb_error_code();
    mean_of_sum(buf, n, red, be->size());
    return NB_OK;
}

nb_status nb__dist_progress_host(const char *op, void *req, bool *done) {
    const nb__dist_backend *be = nb__dist_active(op);
    return be ? be->progress(req, done) : nb_error_code();
}

/* ---- collectives */

nb_status nb_dist_allreduce(nb_tensor *t, nb_dist_reduce op) {
    const nb__dist_backend *be = nb__dist_active("allreduce");
    int64_t n;
    if (!be || !agreed(be, "allreduce", t, usable("allreduce", t) && reduce_ok("allreduce", op), &n))
        return nb_error_code();
    bool staged;
    float *h = host_floats(t, true, &staged);
    nb_status st = h ? be->allreduce_sum(h, n) : nb_error_code();
    if (st == NB_OK) mean_of_sum(h, n, op, be->size());
    return host_floats_done(t, h, staged, true, st);
}

static bool root_ok(const nb__dist_backend *be, const char *op, int root) {
    if (root >= 0 && root < be->size()) return true;
    return nb__fail(NB_ERR_ARG, "dist: %s: root %d is not a rank of a group of %d", op, root,
                    be->size()), false;
}

nb_status nb_dist_broadcast(nb_tensor *t, int root) {
    const nb__dist_backend *be = nb__dist_active("broadcast");
    int64_t n;
    if (!be || !agreed(be, "broadcast", t, usable("broadcast", t) && root_ok(be, "broadcast", root), &n))
        return nb_error_code();
    bool staged;
    float *h = host_floats(t, be->rank() == root, &staged);
    nb_status st = h ? be->broadcast(h, n, root) : nb_error_code();
    return host_floats_done(t, h, staged, true, st);
}

/* out = f(t) where out is a new contiguous tensor: the common frame of allgather and
 * reduce-scatter, which differ in out's shape and the transport's call. */
typedef nb_status (*gather_fn)(const nb__dist_backend *be, float *out, const float *in, int64_t n,
                               nb_dist_reduce red);

static nb_tensor *into_new(const nb__dist_backend *be, const nb_tensor *t, int ndim,
                           const int64_t *shape, gather_fn f, int64_t n, nb_dist_reduce red) {
    nb_tensor *out = nb__new(NB_F32, ndim, shape);
    if (!out) return NULL;
    bool in_staged, out_staged;
    float *in = host_floats(t, true, &in_staged);
    float *o = in ? host_floats(out, false, &out_staged) : NULL;
    nb_status st = o ? f(be, o, in, n, red) : nb_error_code();
    if (o) st = host_floats_done(out, o, out_staged, true, st);
    host_floats_done((nb_tensor *)t, in, in_staged, false, st);
    if (st == NB_OK) return out;
    nb_tensor_free(out);
    return NULL;
}

static nb_status gather_all(const nb__dist_backend *be, float *out, const float *in, int64_t n,
                            nb_dist_reduce red) {
    (void)red;
    return be->allgather(out, in, n);
}

nb_tensor *nb_dist_allgather(const nb_tensor *t) {
    const nb__dist_backend *be = nb__dist_active("allgather");
    int64_t n;
    if (!be || !agreed(be, "allgather", t, usable("allgather", t) && t->ndim < NB_MAX_DIMS, &n)) {
        if (be && nb__alive(t) && t->ndim >= NB_MAX_DIMS)
            nb__fail(NB_ERR_DIM, "dist: allgather: a %d-D tensor; the result adds a dim", t->ndim);
        return NULL;
    }
    int64_t shape[NB_MAX_DIMS] = {be->size()};
    memcpy(shape + 1, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    return into_new(be, t, t->ndim + 1, shape, gather_all, n, NB_REDUCE_SUM);
}

static nb_status scatter_reduced(const nb__dist_backend *be, float *out, const float *in,
                                 int64_t n, nb_dist_reduce red) {
    int64_t k = n / be->size();
    if (be->reduce_scatter_sum(out, in, k) != NB_OK) return nb_error_code();
    mean_of_sum(out, k, red, be->size());
    return NB_OK;
}

nb_tensor *nb_dist_reduce_scatter(const nb_tensor *t, nb_dist_reduce op) {
    const nb__dist_backend *be = nb__dist_active("reduce_scatter");
    int64_t n;
    if (!be || !agreed(be, "reduce_scatter", t,
                       usable("reduce_scatter", t) && reduce_ok("reduce_scatter", op), &n))
        return NULL;
    /* the shapes agree, so every rank takes the same branch */
    if (t->ndim == 0 || t->shape[0] % be->size())
        return nb__fail(NB_ERR_SHAPE, "dist: reduce_scatter: rank %d of %d: dim 0 of %s is not a "
                        "multiple of the group's size", be->rank(), be->size(),
                        nb__shape_str(t->ndim, t->shape));
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    shape[0] /= be->size();
    return into_new(be, t, t->ndim, shape, scatter_reduced, n, op);
}

static bool peer_ok(const nb__dist_backend *be, const char *op, int peer) {
    if (peer >= 0 && peer < be->size() && peer != be->rank()) return true;
    return nb__fail(NB_ERR_ARG, "dist: %s: rank %d of %d: %d is not another rank", op, be->rank(),
                    be->size(), peer), false;
}

nb_status nb_dist_send(const nb_tensor *t, int dst) {
    const nb__dist_backend *be = nb__dist_active("send");
    if (!be || !usable("send", t) || !peer_ok(be, "send", dst)) return nb_error_code();
    bool staged;
    float *h = host_floats(t, true, &staged);
    nb_status st = h ? be->send(h, nb__numel(t->ndim, t->shape), dst) : nb_error_code();
    return host_floats_done((nb_tensor *)t, h, staged, false, st);
}

nb_status nb_dist_recv(nb_tensor *t, int src) {
    const nb__dist_backend *be = nb__dist_active("recv");
    if (!be || !usable("recv", t) || !peer_ok(be, "recv", src)) return nb_error_code();
    bool staged;
    float *h = host_floats(t, false, &staged);
    nb_status st = h ? be->recv(h, nb__numel(t->ndim, t->shape), src) : nb_error_code();
    return host_floats_done(t, h, staged, true, st);
}

nb_status nb_dist_barrier(void) {
    const nb__dist_backend *be = nb__dist_active("barrier");
    return be ? be->barrier() : nb_error_code();
}
