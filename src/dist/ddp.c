/*
 * ddp.c — data parallel training (nabla/dist.h), torch's DistributedDataParallel in its plain
 * form: rank 0's parameters everywhere at the start, and after each backward every gradient
 * replaced by its mean over ranks.  The gradients travel in buckets, a bucket being consecutive
 * parameters (in reverse, the order backward finishes them) flattened into one host buffer, so
 * a model of many small tensors costs a few large allreduces rather than many small ones.
 */
#include "dist.h"

#include <string.h>

#define NB_DDP_DEFAULT_BUCKET ((size_t)25 << 20) /* torch's bucket_cap_mb = 25 */

struct nb_ddp {
    int n_params;
    nb_tensor **params; /* the model's parameters, last first */
    int n_buckets;
    int *bucket_start; /* bucket b is params[bucket_start[b] .. bucket_start[b + 1]) */
    float *buf;        /* host floats of the largest bucket */
    size_t buf_bytes;
    int *hooks; /* with nb_ddp_sync_in_backward: params[i]'s hook handle, else NULL */
};

void nb_ddp_free(nb_ddp *d) {
    if (!d) return;
    for (int i = 0; d->hooks && i < d->n_params; i++)
        if (d->hooks[i]) nb_tensor_remove_hook(d->params[i], d->hooks[i]);
    if (d->hooks) nb__dealloc(d->hooks, sizeof(int) * (size_t)(d->n_params + 1));
    nb__dealloc(d->params, sizeof(nb_tensor *) * (size_t)(d->n_params + 1));
    nb__dealloc(d->bucket_start, sizeof(int) * (size_t)(d->n_params + 1));
    if (d->buf) nb__dealloc(d->buf, d->buf_bytes);
    nb__dealloc(d, sizeof *d);
}

static int64_t numel(const nb_tensor *t) { return nb__numel(t->ndim, t->shape); }

/* Parameters in reverse, cut where a bucket would pass cap bytes (a larger parameter is a
 * bucket of its own); the buffer fits the largest bucket. */
static bool make_buckets(nb_ddp *d, size_t cap) {
    size_t largest = 0, bytes = 0;
    for (int i = 0; i < d->n_params; i++) {
        size_t b = sizeof(float) * (size_t)numel(d->params[i]);
        if (i > 0 && bytes + b > cap) {
            d->bucket_start[d->n_buckets++] = i;
            bytes = 0;
        }
        if (i == 0) d->bucket_start[d->n_buckets++] = 0;
        bytes += b;
        if (bytes > largest) largest = bytes;
    }
    d->bucket_start[d->n_buckets] = d->n_params;
    d->buf_bytes = largest ? largest : sizeof(float);
    return (d->buf = nb__alloc(d->buf_bytes)) != NULL;
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
        if (nb_dist_broadcast(nb_module_buffer(model, i, NULL), 0) != NB_OK)
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
    d->params = nb__alloc(sizeof(nb_tensor *) * (size_t)(n + 1));
    d->bucket_start = nb__alloc(sizeof(int) * (size_t)(n + 1));
    if (!d->params || !d->bucket_start) {
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
static nb_status sync_bucket(nb_ddp *d, int b) {
    int64_t off = 0;
    for (int i = d->bucket_start[b]; i < d->bucket_start[b + 1]; i++) {
        const nb_tensor *g = d->params[i]->grad;
        int64_t k = numel(d->params[i]);
        if (g && nb__copy_logical(d->buf + off, g) != NB_OK) return nb_error_code();
        if (!g) memset(d->buf + off, 0, sizeof(float) * (size_t)k);
        off += k;
    }
    if (nb__dist_allreduce_host("ddp_sync_grads", d->buf, off, NB_REDUCE_MEAN) != NB_OK)
        return nb_error_code();
    off = 0;
    for (int i = d->bucket_start[b]; i < d->bucket_start[b + 1]; i++) {
        nb_tensor *g = d->params[i]->grad;
        if (g && nb__store_logical(g, d->buf + off) != NB_OK) return nb_error_code();
        off += numel(d->params[i]);
    }
    return NB_OK;
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

/* The hook: the gradient the pass computed for one parameter, replaced by a copy holding its
 * mean over ranks (a copy, as the pass may share the tensor with another gradient).  The pass
 * runs its leaves' hooks in the same order on every rank, so the allreduces pair up. */
static nb_tensor *mean_over_ranks(nb_tensor *grad, void *ctx) {
    (void)ctx;
    nb_tensor *mean = nb_mul_scalar(grad, 1.0f);
    if (mean && nb_dist_allreduce(mean, NB_REDUCE_MEAN) != NB_OK) {
        nb_tensor_free(mean);
        return NULL;
    }
    return mean;
}

nb_status nb_ddp_sync_in_backward(nb_ddp *d) {
    if (!d) return nb__fail_status(NB_ERR_NULL, "ddp_sync_in_backward: ddp is NULL");
    if (d->hooks) return nb__fail_status(NB_ERR_ARG, "ddp_sync_in_backward: already on");
    if (!nb_dist_is_initialized()) return NB_OK; /* a group of one */
    if (!(d->hooks = nb__alloc(sizeof(int) * (size_t)(d->n_params + 1)))) return nb_error_code();
    memset(d->hooks, 0, sizeof(int) * (size_t)(d->n_params + 1));
    for (int i = 0; i < d->n_params; i++)
        if (nb_requires_grad(d->params[i]) &&
            !(d->hooks[i] = nb_tensor_register_hook(d->params[i], mean_over_ranks, d)))
            return nb__fail_prefix("ddp_sync_in_backward: parameter %d", i);
    return NB_OK;
}
