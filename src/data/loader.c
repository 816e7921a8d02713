/*
 * loader.c — batches of a dataset: an epoch is a permutation of the samples (Fisher–Yates driven
 * by Philox keyed with (seed, epoch)) cut into batches; batch b holds positions
 * [b * B, b * B + B) of it.  Batches are written into tensors the loader owns, made once, so
 * nb_loader_next allocates nothing; a last, smaller batch reuses them with a smaller leading size.
 *
 * Prefetch: one background thread fills batch b + 1 while the caller trains on batch b.  Batch b
 * lives in buffer b % 2, so the thread only ever writes the buffer the caller handed back by
 * calling next again.  Main and worker meet through one job slot under a mutex; every field the
 * worker reads (permutation, key, epoch) is written by the main thread only while no job runs.
 * What a batch holds depends on (seed, epoch, b) alone, so prefetch on and off give equal bits.
 *
 * The samples are written where the host can write: straight into the tensors when their
 * backend's memory is host memory (the CPU backend), else into a host staging buffer that one
 * copy per tensor then takes to the device.
 */
#include "internal.h"
#include "../backend/backend.h"

#include <pthread.h>
#include <string.h>

typedef struct {
    nb_tensor *x, *y;
    float *scratch; /* rows planes of H x W for the transforms (nb__transform_scratch), or NULL */
    size_t scratch_bytes;
    char *stage; /* host staging of x, then y, when the backend's memory is not the host's */
    size_t stage_bytes;
} batch_buf;

struct nb_loader {
    const nb_dataset *ds;
    nb_loader_opts opts;
    int64_t batch, n_batches;
    int64_t n, replicas; /* samples of this replica's epoch; replicas >= 1 (opts.num_replicas) */
    int64_t epoch, next; /* next: the batch the following nb_loader_next returns */
    uint64_t key;        /* nb__epoch_key(seed, epoch) */
    int64_t *perm;       /* NULL without shuffle: the identity */
    batch_buf buf[2];    /* [1] only with prefetch */
    bool threaded;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t job; /* batch the worker prepares or has prepared; -1: none */
    bool job_done, quit;
};

/* A uniform integer in [0, bound) for position i: 64-bit draws with rejection, so a permutation
 * of any length is unbiased; rejected draws move to the next counter. */
static uint64_t uniform_below(uint64_t key, uint64_t i, uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound; /* 2^64 mod bound */
    for (uint32_t attempt = 0;; attempt++) {
        uint32_t r[4];
        nb__philox4x32(r, (const uint32_t[4]){attempt, (uint32_t)i, (uint32_t)(i >> 32),
                                              NB_STREAM_PERM}, key);
        for (int h = 0; h < 2; h++) {
            uint64_t v = (uint64_t)r[2 * h] << 32 | r[2 * h + 1];
            if (v >= threshold) return v % bound;
        }
    }
}

static void begin_epoch(nb_loader *l, int64_t epoch) {
    l->epoch = epoch;
    l->next = 0;
    l->key = nb__epoch_key(l->opts.seed, epoch);
    if (!l->perm) return;
    int64_t n = l->ds->n;
    for (int64_t i = 0; i < n; i++) l->perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)uniform_below(l->key, (uint64_t)i, (uint64_t)i + 1);
        int64_t t = l->perm[i];
        l->perm[i] = l->perm[j];
        l->perm[j] = t;
    }
}

/* A shuffled batch's samples lie scattered over the data set, so each one starts with cache
 * misses: asking for the next sample's bytes while this one is converted overlaps them. */
static void prefetch_sample(const nb_dataset *ds, int64_t s) {
    size_t bytes = (size_t)ds->sample_numel * (ds->is_u8 ? 1 : sizeof(float));
    const char *p = (const char *)ds->x + (size_t)s * bytes;
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off);
}

typedef struct {
    const nb_loader *l;
    batch_buf *buf;
    int64_t start, count;
    int64_t plane; /* floats of scratch a sample's transforms use */
    float *x;      /* where the host writes x and y: the tensors' memory, or the staging */
    char *y;
} fill_job;

/* The data set index of position p of this replica's epoch: position rank + replicas p of the
 * whole epoch's order, wrapping to its start past the end (the distributed sampler's padding). */
static int64_t sample_at(const nb_loader *l, int64_t p) {
    int64_t g = (l->opts.rank + l->replicas * p) % l->ds->n;
    return l->perm ? l->perm[g] : g;
}

/* Samples [lo, hi) of the batch. */
static void fill_range(void *arg, int64_t lo, int64_t hi) {
    const fill_job *f = arg;
    const nb_loader *l = f->l;
    const nb_dataset *ds = l->ds;
    int64_t start = f->start, count = f->count, m = ds->sample_numel, k = ds->target_dim;
    float *x = f->x;
    for (int64_t i = lo; i < hi; i++) {
        int64_t s = sample_at(l, start + i);
        if (i + 1 < count) prefetch_sample(ds, sample_at(l, start + i + 1));
        nb__transform_sample(&l->opts.transforms, ds, s, l->epoch, l->key, x + i * m,
                             f->buf->scratch ? f->buf->scratch + i * f->plane : NULL);
        if (ds->target == NB_TARGET_CLASS) ((int32_t *)f->y)[i] = ((const int32_t *)ds->y)[s];
        if (ds->target == NB_TARGET_FLOAT)
            memcpy((float *)f->y + i * k, (const float *)ds->y + s * k, sizeof(float) * (size_t)k);
    }
}

static void fill(nb_loader *l, int64_t b, batch_buf *buf) {
    const nb_dataset *ds = l->ds;
    int64_t start = b * l->batch, count = l->n - start < l->batch ? l->n - start : l->batch;
    buf->x->shape[0] = count; /* the loader's own tensor: strides do not depend on dim 0 */
    if (buf->y) buf->y->shape[0] = count;
    /* samples are independent and each one's randomness depends on its index only, so the batch
     * can be shared over threads without changing a bit */
    size_t x_bytes = sizeof(float) * (size_t)(count * ds->sample_numel);
    /* int32 classes or float targets: 4 bytes an element either way */
    size_t y_bytes = 4 * (size_t)(count * (ds->target == NB_TARGET_FLOAT ? ds->target_dim : 1));
    fill_job f = {l, buf, start, count, nb__transform_scratch(&l->opts.transforms, ds),
                  buf->stage ? (float *)buf->stage : nb__f32(buf->x),
                  buf->stage ? buf->stage + buf->x->storage->nbytes : buf->y ? buf->y->storage->data : NULL};
    nb__parallel_for(count * ds->sample_numel > 32768, count, fill_range, &f);
    if (!buf->stage) return;
    const nb_backend *be = nb__backend(buf->x->device);
    be->copy_h2d(nb__f32(buf->x), f.x, x_bytes);
    if (buf->y) be->copy_h2d(buf->y->storage->data, f.y, y_bytes);
}

static void *worker(void *arg) {
    nb_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && (l->job < 0 || l->job_done)) pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit) break;
        int64_t b = l->job;
        pthread_mutex_unlock(&l->mu);
        fill(l, b, &l->buf[b % 2]);
        pthread_mutex_lock(&l->mu);
        l->job_done = true;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Hands batch b (or none: -1) to the worker. */
static void start_job(nb_loader *l, int64_t b) {
    pthread_mutex_lock(&l->mu);
    l->job = b;
    l->job_done = false;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* Waits until the worker is idle: its job, if any, is done. */
static void wait_job(nb_loader *l) {
    pthread_mutex_lock(&l->mu);
    while (l->job >= 0 && !l->job_done) pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

/* Starts epoch e; the worker, if any, begins on its first batch at once. */
static void restart(nb_loader *l, int64_t e) {
    if (l->threaded) wait_job(l);
    begin_epoch(l, e);
    if (l->threaded) start_job(l, l->n_batches > 0 ? 0 : -1);
}

static bool opts_ok(const nb_dataset *ds, const nb_loader_opts *o) {
    if (o->batch_size < 0)
        return nb__fail(NB_ERR_ARG, "loader_new: batch_size %lld is negative",
                        (long long)o->batch_size), false;
    if (o->num_replicas < 0 || o->rank < 0 || o->rank >= (o->num_replicas ? o->num_replicas : 1))
        return nb__fail(NB_ERR_ARG, "loader_new: rank %lld is not a replica of num_replicas %lld",
                        (long long)o->rank, (long long)o->num_replicas), false;
    return nb__transforms_check(&o->transforms, ds);
}

static bool make_buf(nb_loader *l, batch_buf *buf, int64_t rows) {
    const nb_dataset *ds = l->ds;
    int64_t shape[NB_MAX_DIMS] = {rows};
    memcpy(shape + 1, ds->sample_shape, sizeof(int64_t) * (size_t)ds->sample_ndim);
    buf->x = nb__new_in(NULL, NB_F32, ds->sample_ndim + 1, shape); /* the heap, not a scope */
    if (ds->target == NB_TARGET_CLASS) buf->y = nb__new_in(NULL, NB_I32, 1, &rows);
    if (ds->target == NB_TARGET_FLOAT)
        buf->y = nb__new_in(NULL, NB_F32, 2, (const int64_t[]){rows, ds->target_dim});
    int64_t plane = nb__transform_scratch(&l->opts.transforms, ds);
    if (plane > 0) {
        buf->scratch_bytes = sizeof(float) * (size_t)(plane * rows);
        if (!(buf->scratch = nb__alloc(buf->scratch_bytes))) return false;
    }
    if (!buf->x || (!buf->y && ds->target != NB_TARGET_NONE)) return false;
    if (nb__backend(buf->x->device)->host_memory) return true;
    buf->stage_bytes = buf->x->storage->nbytes + (buf->y ? buf->y->storage->nbytes : 0);
    return (buf->stage = nb__alloc(buf->stage_bytes)) != NULL;
}

nb_loader *nb_loader_new(const nb_dataset *ds, nb_loader_opts opts) {
    if (!ds) return nb__fail(NB_ERR_NULL, "loader_new: dataset is NULL");
    if (!opts_ok(ds, &opts)) return NULL;
    nb_loader *l = nb__alloc(sizeof *l);
    if (!l) return NULL;
    memset(l, 0, sizeof *l);
    l->ds = ds;
    l->opts = opts;
    l->batch = opts.batch_size ? opts.batch_size : 1;
    l->replicas = opts.num_replicas ? opts.num_replicas : 1;
    l->n = (ds->n + l->replicas - 1) / l->replicas;
    l->n_batches = opts.drop_last ? l->n / l->batch : (l->n + l->batch - 1) / l->batch;
    l->job = -1;
    int64_t rows = l->batch < l->n ? l->batch : l->n;
    if (opts.shuffle && !(l->perm = nb__alloc(sizeof(int64_t) * (size_t)ds->n))) goto fail;
    for (int i = 0; i < (opts.prefetch ? 2 : 1); i++)
        if (!make_buf(l, &l->buf[i], rows)) goto fail;
    if (opts.prefetch) {
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv, NULL);
        if (pthread_create(&l->thread, NULL, worker, l) != 0) {
            pthread_cond_destroy(&l->cv);
            pthread_mutex_destroy(&l->mu);
            nb__fail(NB_ERR_MEMORY, "loader_new: cannot start the prefetch thread");
            goto fail;
        }
        l->threaded = true;
    }
    restart(l, 0);
    return l;
fail:
    nb_loader_free(l);
    return NULL;
}

void nb_loader_free(nb_loader *l) {
    if (!l) return;
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->quit = true;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
    }
    for (int i = 0; i < 2; i++) {
        nb_tensor_free(l->buf[i].x);
        nb_tensor_free(l->buf[i].y);
        nb__dealloc(l->buf[i].scratch, l->buf[i].scratch_bytes);
        nb__dealloc(l->buf[i].stage, l->buf[i].stage_bytes);
    }
    if (l->perm) nb__dealloc(l->perm, sizeof(int64_t) * (size_t)l->ds->n);
    nb__dealloc(l, sizeof *l);
}

bool nb_loader_next(nb_loader *l, nb_tensor **x, nb_tensor **y) {
    if (y) *y = NULL;
    if (x) *x = NULL;
    if (!l || !x) return nb__fail(NB_ERR_NULL, "loader_next: loader or x is NULL"), false;
    if (l->next >= l->n_batches) return false;
    int64_t b = l->next++;
    batch_buf *buf = &l->buf[0];
    if (l->threaded) {
        wait_job(l); /* the job is batch b: restart and the previous call started it */
        buf = &l->buf[b % 2];
        start_job(l, b + 1 < l->n_batches ? b + 1 : -1);
    } else {
        fill(l, b, buf);
    }
    *x = buf->x;
    if (y) *y = buf->y;
    return true;
}

nb_status nb_loader_reset(nb_loader *l) {
    if (!l) return nb__fail_status(NB_ERR_NULL, "loader_reset: loader is NULL");
    restart(l, l->epoch + 1);
    return NB_OK;
}

nb_status nb_loader_set_epoch(nb_loader *l, int64_t epoch) {
    if (!l) return nb__fail_status(NB_ERR_NULL, "loader_set_epoch: loader is NULL");
    if (epoch < 0)
        return nb__fail_status(NB_ERR_ARG, "loader_set_epoch: epoch %lld is negative",
                               (long long)epoch);
    restart(l, epoch);
    return NB_OK;
}

int64_t nb_loader_epoch(const nb_loader *l) {
    if (!l) return nb__fail(NB_ERR_NULL, "loader_epoch: loader is NULL"), -1;
    return l->epoch;
}

int64_t nb_loader_len(const nb_loader *l) {
    if (!l) return nb__fail(NB_ERR_NULL, "loader_len: loader is NULL"), -1;
    return l->n_batches;
}
