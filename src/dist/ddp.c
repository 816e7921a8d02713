/*
 * ddp.c — data parallel training (nabla/dist.h), torch's DistributedDataParallel: rank 0's
 * parameters everywhere at the start, and each gradient replaced by its mean over ranks before
 * the step.  The gradients travel in buckets, a bucket being consecutive parameters (in reverse,
 * the order backward finishes them) laid end to end in one flat host buffer, so a model of many
 * small tensors costs a few large allreduces rather than many small ones.
 *
 * Two ways: nb_ddp_sync_grads after backward, a blocking allreduce per bucket; or, with
 * nb_ddp_sync_in_backward, torch's overlap: each parameter's hook copies its gradient into its
 * bucket as backward finishes it, and a bucket whose parameters are all in starts a non-blocking
 * allreduce while backward goes on with the layers below (every hook also polls the started
 * ones, as MPI moves them on only inside its calls); nb_ddp_finish waits for them and writes the
 * means into .grad.  Buckets are started in their order on every rank (a full bucket
 * waits for the ones before it), so the started calls pair up between ranks even when ranks fill
 * them in another order.
 */
#include "dist.h"

#include <string.h>

#define NB_DDP_DEFAULT_BUCKET ((size_t)25 << 20) /* torch's bucket_cap_mb = 25 */

typedef struct hook_slot {
    nb_ddp *d;
    int i; /* the parameter, an index into params */
} hook_slot;

struct nb_ddp {
    int n_params;
    nb_tensor **params; /* the model's parameters, last first */
    int64_t *offset;    /* params[i]'s gradient is buf[offset[i] .. offset[i + 1]) */
    int n_buckets;
    int *bucket_start; /* bucket b is params[bucket_start[b] .. bucket_start[b + 1]) */
    float *buf;        /* every parameter's floats, end to end */
    size_t buf_bytes;
    /* with nb_ddp_sync_in_backward (else NULL): params[i]'s hook handle and context; whether
     * its gradient of this pass is in buf; per bucket the parameters still missing and the
     * started allreduce (NULL before it starts); the next bucket to start */
    int *hooks;
    hook_slot *slots;
    bool *filled;
    int *missing;
    void **req;
    int next;
    /* nb_ddp_overlapped_fraction's counts: the floats nb_ddp_finish reduced, and those whose
     * allreduce had completed when it was called */
    int64_t finished_floats, early_floats;
};

static size_t n_bytes(const nb_ddp *d, size_t each) { return each * (size_t)(d->n_params + 1); }

static nb_status drain(nb_ddp *d, const char *op);

static void free_in_backward(nb_ddp *d) {
    if (!d->hooks) return;
    for (int i = 0; i < d->n_params; i++)
        if (d->hooks[i]) nb_tensor_remove_hook(d->params[i], d->hooks[i]);
    if (d->next > 0) drain(d, "ddp_free"); /* MPI may still write buf */
    nb__dealloc(d->hooks, n_bytes(d, sizeof(int)));
    if (d->slots) nb__dealloc(d->slots, n_bytes(d, sizeof(hook_slot)));
    if (d->filled) nb__dealloc(d->filled, n_bytes(d, sizeof(bool)));
    if (d->missing) nb__dealloc(d->missing, n_bytes(d, sizeof(int)));
    if (d->req) nb__dealloc(d->req, n_bytes(d, sizeof(void *)));
}

void nb_ddp_free(nb_ddp *d) {
    if (!d) return;
    free_in_backward(d);
    nb__dealloc(d->params, n_bytes(d, sizeof(nb_tensor *)));
    if (d->offset) nb__dealloc(d->offset, n_bytes(d, sizeof(int64_t)));
    nb__dealloc(d->bucket_start, n_bytes(d, sizeof(int)));
    if (d->buf) nb__dealloc(d->buf, d->buf_bytes);
    nb__dealloc(d, sizeof *d);
}

static int64_t numel(const nb_tensor *t) { return nb__numel(t->ndim, t->shape); }

/* Parameters in reverse, cut where a bucket would pass cap bytes (a larger parameter is a
 * bucket of its own); the buffer holds them all, as torch's buckets do. */
static bool make_buckets(nb_ddp *d, size_t cap) {
    size_t bytes = 0;
    d->offset[0] = 0;
    for (int i = 0; i < d->n_params; i++) {
        size_t b = sizeof(float) * (size_t)numel(d->params[i]);
        if (i > 0 && bytes + b > cap) {
            d->bucket_start[d->n_buckets++] = i;
            bytes = 0;
        }
        if (i == 0) d->bucket_start[d->n_buckets++] = 0;
        bytes += b;
        d->offset[i + 1] = d->offset[i] + numel(d->params[i]);
    }
    d->bucket_start[d->n_buckets] = d->n_params;
    d->buf_bytes = sizeof(float) * (size_t)(d->offset[d->n_params] ? d->offset[d->n_params] : 1);
    return (d->buf = nb__alloc(d->buf_bytes)) != NULL;
}

/* A buffer from rank 0: a float32 one in place; another (BatchNorm's int32 num_batches_tracked)
 * through a float32 copy, exact for integers below 2^24. */
static nb_status broadcast_buffer(nb_tensor *b) {
    if (!b || nb_dtype_of(b) == NB_F32) return nb_dist_broadcast(b, 0);
    nb_tensor *f = nb_to_dtype(b, NB_F32);
    nb_status st = f ? nb_dist_broadcast(f, 0) : nb_error_code();
    if (st == NB_OK) st = nb_copy(b, f);
    nb_tensor_free(f);
    return st;
}

/* Every rank starts from rank 0's model: the same parameter count first (so that the
 * broadcasts below pair up), then each parameter and buffer, whose shapes each broadcast checks. */
static nb_status broadcast_model(const nb_module *model, int n_params) {
    const nb__dist_backend *be = nb__dist_active("ddp_new");
    int64_t counts[2] = {n_params, nb_module_num_buffers(model)}, lo[2], hi[2];
    if (!be || be->agree(counts, 2, lo, hi) != NB_OK) return nb_error_code();
    if (lo[0] != hi[0] || lo[1] != hi[1])
        return nb__fail_status(NB_ERR_SHAPE, "dist: ddp_new: rank %d of %d: a model of %lld "
                               "parameters and %lld buffers, another rank's differs", be->rank(),
                               be->size(), (long long)counts[0], (long long)counts[1]);
    for (int i = 0; i < n_params; i++)
        if (nb_dist_broadcast(nb_module_param(model, i, NULL), 0) != NB_OK)
            return nb__fail_prefix("ddp_new: parameter %d", i);
    for (int i = 0; i < counts[1]; i++)
        if (broadcast_buffer(nb_module_buffer(model, i, NULL)) != NB_OK)
            return nb__fail_prefix("ddp_new: buffer %d", i);
    return NB_OK;
}

nb_ddp *nb_ddp_new(nb_module *model, size_t bucket_bytes) {
    if (!model) return nb__fail(NB_ERR_NULL, "ddp_new: model is NULL");
    int n = nb_module_num_params(model);
    if (nb_dist_is_initialized() && broadcast_model(model, n) != NB_OK) return NULL;
    nb_ddp *d = nb__alloc(sizeof *d);
    if (!d) return NULL;
    memset(d, 0, sizeof *d);
    d->n_params = n;
    d->params = nb__alloc(n_bytes(d, sizeof(nb_tensor *)));
    d->offset = nb__alloc(n_bytes(d, sizeof(int64_t)));
    d->bucket_start = nb__alloc(n_bytes(d, sizeof(int)));
    if (!d->params || !d->offset || !d->bucket_start) {
        nb_ddp_free(d);
        return NULL;
    }
    for (int i = 0; i < n; i++) d->params[i] = nb_module_param(model, n - 1 - i, NULL);
    if (!make_buckets(d, bucket_bytes ? bucket_bytes : NB_DDP_DEFAULT_BUCKET)) {
        nb_ddp_free(d);
        return NULL;
    }
    return d;
}

/* One bucket: its gradients flattened into buf (zeros for a parameter without one), their mean
 * over ranks, and back. */
static float *bucket_floats(const nb_ddp *d, int b, int64_t *n) {
    *n = d->offset[d->bucket_start[b + 1]] - d->offset[d->bucket_start[b]];
    return d->buf + d->offset[d->bucket_start[b]];
}

static void zero_param(nb_ddp *d, int i) {
    memset(d->buf + d->offset[i], 0, sizeof(float) * (size_t)(d->offset[i + 1] - d->offset[i]));
}

/* The bucket's means (in buf) into the .grad of its parameters that have one. */
static nb_status store_bucket(nb_ddp *d, int b) {
    for (int i = d->bucket_start[b]; i < d->bucket_start[b + 1]; i++) {
        nb_tensor *g = d->params[i]->grad;
        if (g && nb__store_logical(g, d->buf + d->offset[i]) != NB_OK) return nb_error_code();
    }
    return NB_OK;
}

static nb_status sync_bucket(nb_ddp *d, int b) {
    for (int i = d->bucket_start[b]; i < d->bucket_start[b + 1]; i++) {
        const nb_tensor *g = d->params[i]->grad;
        if (g && nb__copy_logical(d->buf + d->offset[i], g) != NB_OK) return nb_error_code();
        if (!g) zero_param(d, i);
    }
    int64_t n;
    float *h = bucket_floats(d, b, &n);
    if (nb__dist_allreduce_host("ddp_sync_grads", h, n, NB_REDUCE_MEAN) != NB_OK)
        return nb_error_code();
    return store_bucket(d, b);
}

nb_status nb_ddp_sync_grads(nb_ddp *d) {
    if (!d) return nb__fail_status(NB_ERR_NULL, "ddp_sync_grads: ddp is NULL");
    if (!nb_dist_is_initialized()) return NB_OK; /* a group of one: the mean is the gradient */
    for (int b = 0; b < d->n_buckets; b++)
        if (sync_bucket(d, b) != NB_OK) return nb__fail_prefix("ddp_sync_grads: bucket %d", b);
    return NB_OK;
}

int nb_ddp_num_buckets(const nb_ddp *d) {
    if (!d) return nb__fail(NB_ERR_NULL, "ddp_num_buckets: ddp is NULL"), -1;
    return d->n_buckets;
}

/* ---- in backward */

/* Starts, in bucket order, every bucket whose parameters are all in. */
static nb_status start_full_buckets(nb_ddp *d, const char *op) {
    for (; d->next < d->n_buckets && d->missing[d->next] == 0; d->next++) {
        int64_t n;
        float *h = bucket_floats(d, d->next, &n);
        if (nb__dist_iallreduce_host(op, h, n, &d->req[d->next]) != NB_OK)
            return nb__fail_prefix("%s: bucket %d", op, d->next);
    }
    return NB_OK;
}

/* Moves the started buckets on: MPI advances a non-blocking allreduce only inside MPI calls,
 * so without this poll from every hook a bucket started early would mostly travel in
 * nb_ddp_finish, after backward, and hide nothing behind it. */
static nb_status progress_started(nb_ddp *d, const char *op) {
    bool done;
    for (int b = 0; b < d->next; b++)
        if (nb__dist_progress_host(op, d->req[b], &done) != NB_OK) return nb__fail_prefix("%s: bucket %d", op, b);
    return NB_OK;
}

/* Counts, as nb_ddp_finish begins, the floats of the buckets backward started whose allreduce
 * has already completed: the communication backward hid. */
static nb_status count_early(nb_ddp *d) {
    for (int b = 0; b < d->next; b++) {
        bool done;
        int64_t n;
        bucket_floats(d, b, &n);
        if (nb__dist_progress_host("ddp_finish", d->req[b], &done) != NB_OK)
            return nb__fail_prefix("ddp_finish: bucket %d", b);
        if (done) d->early_floats += n;
    }
    d->finished_floats += d->offset[d->n_params];
    return NB_OK;
}

double nb_ddp_overlapped_fraction(const nb_ddp *d) {
    if (!d) return nb__fail(NB_ERR_NULL, "ddp_overlapped_fraction: ddp is NULL"), -1;
    return d->finished_floats ? (double)d->early_floats / (double)d->finished_floats : 0;
}

/* A new round: no parameter in, no bucket started. */
static void reset_round(nb_ddp *d) {
    memset(d->filled, 0, n_bytes(d, sizeof(bool)));
    for (int b = 0; b < d->n_buckets; b++)
        d->missing[b] = d->bucket_start[b + 1] - d->bucket_start[b];
    d->next = 0;
}

/* Waits for every started bucket (the means then in buf) and begins a new round; with
 * store, the means go into .grad. */
static nb_status wait_round(nb_ddp *d, const char *op, bool store) {
    nb_status st = NB_OK;
    for (int b = 0; b < d->next; b++) {
        int64_t n;
        float *h = bucket_floats(d, b, &n);
        void *req = d->req[b];
        d->req[b] = NULL;
        if (st == NB_OK && nb__dist_wait_host(op, req, h, n, NB_REDUCE_MEAN) != NB_OK)
            st = nb__fail_prefix("%s: bucket %d", op, b);
        if (st == NB_OK && store && store_bucket(d, b) != NB_OK)
            st = nb__fail_prefix("%s: bucket %d", op, b);
    }
    reset_round(d);
    return st;
}

/* A round that no nb_ddp_finish ended (a pass run outside the training loop's steps, as a
 * memory measurement's): its means are dropped. */
static nb_status drain(nb_ddp *d, const char *op) {
    return wait_round(d, op, false);
}

/* The hook: the gradient this pass computed for one parameter, copied into its bucket, and the
 * buckets now full started.  The gradient itself goes on unchanged; nb_ddp_finish replaces
 * .grad by the mean once it has arrived.  The pass runs its leaves' hooks in the same order on
 * every rank, and buckets start in their order in any case, so the allreduces pair up. */
static nb_tensor *fill_bucket(nb_tensor *grad, void *ctx) {
    hook_slot *s = ctx;
    nb_ddp *d = s->d;
    if (d->filled[s->i] && drain(d, "ddp backward hook") != NB_OK) return NULL;
    if (nb__copy_logical(d->buf + d->offset[s->i], grad) != NB_OK) return NULL;
    d->filled[s->i] = true;
    for (int b = 0; b < d->n_buckets; b++)
        if (s->i >= d->bucket_start[b] && s->i < d->bucket_start[b + 1]) d->missing[b]--;
    bool ok = start_full_buckets(d, "ddp backward hook") == NB_OK &&
              progress_started(d, "ddp backward hook") == NB_OK;
    return ok ? grad : NULL;
}

static bool alloc_in_backward(nb_ddp *d) {
    d->hooks = nb__alloc(n_bytes(d, sizeof(int)));
    d->slots = nb__alloc(n_bytes(d, sizeof(hook_slot)));
    d->filled = nb__alloc(n_bytes(d, sizeof(bool)));
    d->missing = nb__alloc(n_bytes(d, sizeof(int)));
    d->req = nb__alloc(n_bytes(d, sizeof(void *)));
    if (!d->hooks || !d->slots || !d->filled || !d->missing || !d->req) return false;
    memset(d->hooks, 0, n_bytes(d, sizeof(int)));
    memset(d->req, 0, n_bytes(d, sizeof(void *)));
    reset_round(d);
    return true;
}

nb_status nb_ddp_sync_in_backward(nb_ddp *d) {
    if (!d) return nb__fail_status(NB_ERR_NULL, "ddp_sync_in_backward: ddp is NULL");
    if (d->hooks) return nb__fail_status(NB_ERR_ARG, "ddp_sync_in_backward: already on");
    if (!nb_dist_is_initialized()) return NB_OK; /* a group of one */
    if (!alloc_in_backward(d)) return nb__fail_prefix("ddp_sync_in_backward");
    for (int i = 0; i < d->n_params; i++) {
        d->slots[i] = (hook_slot){d, i};
        if (nb_requires_grad(d->params[i]) &&
            !(d->hooks[i] = nb_tensor_register_hook(d->params[i], fill_bucket, &d->slots[i])))
            return nb__fail_prefix("ddp_sync_in_backward: parameter %d", i);
    }
    return NB_OK;
}

/* Parameters whose hook did not run in this round (unused by this rank's forward, or frozen)
 * count as zeros, so that every rank starts every bucket and none waits for ever. */
nb_status nb_ddp_finish(nb_ddp *d) {
    if (!d) return nb__fail_status(NB_ERR_NULL, "ddp_finish: ddp is NULL");
    if (!d->hooks) return NB_OK; /* not in backward, or a group of one */
    if (count_early(d) != NB_OK) return nb_error_code();
    for (int b = d->next; b < d->n_buckets; b++)
        for (int i = d->bucket_start[b]; i < d->bucket_start[b + 1]; i++)
            if (!d->filled[i]) {
                zero_param(d, i);
                d->filled[i] = true;
                d->missing[b]--;
            }
    nb_status st = start_full_buckets(d, "ddp_finish");
    nb_status waited = wait_round(d, "ddp_finish", st == NB_OK);
    return st != NB_OK ? st : waited;
}
