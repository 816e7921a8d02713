/*
 * word2vec.c — skip-gram and CBOW with negative sampling (Mikolov et al. 2013), on host arrays
 * as word2vec.c computes them, the result handed over as a tensor.
 *
 * Each step has an input h (skip-gram: the vector of one context word; CBOW: the mean of the
 * window's vectors) and targets d: the centre word with label 1 and `negative` noise words with
 * label 0.  With s = sigmoid(h . out[d]), the log-likelihood's gradient gives
 *   g = lr (label - s),   e += g out[d],   out[d] += g h,
 * and then e is added to the input vector(s): skip-gram's context word, or each CBOW window word.
 * Skip-gram takes the context word as input and the centre as target, as word2vec.c does.
 * Random numbers: one SplitMix64 stream from the seed (windows, subsampling, noise), so a seed
 * gives the same vectors.
 */
#include "internal.h"
#include "../io/io.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint64_t state;
} rng;

static uint64_t next_u64(rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double next_unit(rng *r) { return (double)(next_u64(r) >> 11) * 0x1.0p-53; } /* [0, 1) */

/* The training's working set: vectors in and out [V, dim], the noise distribution's cumulative
 * weights [V] (count^0.75, 0 for ids < 2), and the kept-probability of each id. */
typedef struct {
    int32_t V, dim;
    float *in, *out, *e, *h;
    double *cdf, *keep;
} model;

static void model_free(model *m) {
    size_t vd = (size_t)m->V * (size_t)m->dim;
    nb__dealloc(m->in, vd * sizeof *m->in);
    nb__dealloc(m->out, vd * sizeof *m->out);
    nb__dealloc(m->e, (size_t)m->dim * sizeof *m->e);
    nb__dealloc(m->h, (size_t)m->dim * sizeof *m->h);
    nb__dealloc(m->cdf, (size_t)m->V * sizeof *m->cdf);
    nb__dealloc(m->keep, (size_t)m->V * sizeof *m->keep);
}

static bool model_init(model *m, const nb_vocab *v, const nb_word2vec_opts *o, rng *r) {
    *m = (model){.V = nb_vocab_size(v), .dim = o->dim};
    size_t vd = (size_t)m->V * (size_t)m->dim;
    m->in = nb__alloc(vd * sizeof *m->in);
    m->out = nb__alloc(vd * sizeof *m->out);
    m->e = nb__alloc((size_t)m->dim * sizeof *m->e);
    m->h = nb__alloc((size_t)m->dim * sizeof *m->h);
    m->cdf = nb__alloc((size_t)m->V * sizeof *m->cdf);
    m->keep = nb__alloc((size_t)m->V * sizeof *m->keep);
    if (!m->in || !m->out || !m->e || !m->h || !m->cdf || !m->keep) return false;
    /* word2vec.c: inputs uniform in [-0.5, 0.5) / dim, outputs zero */
    for (size_t i = 0; i < vd; i++) m->in[i] = (float)((next_unit(r) - 0.5) / m->dim);
    memset(m->out, 0, vd * sizeof *m->out);
    double total = 0, acc = 0;
    for (int32_t id = 2; id < m->V; id++) total += (double)nb_vocab_count(v, id);
    for (int32_t id = 0; id < m->V; id++) {
        double c = id < 2 ? 0 : (double)nb_vocab_count(v, id), f = total > 0 ? c / total : 0;
        acc += pow(c, 0.75);
        m->cdf[id] = acc;
        m->keep[id] = o->sample > 0 && f > 0 ? (sqrt(f / o->sample) + 1) * o->sample / f : 1;
    }
    return acc > 0;
}

/* A noise word: the first id whose cumulative weight passes a uniform draw (binary search). */
static int32_t noise(const model *m, rng *r) {
    double u = next_unit(r) * m->cdf[m->V - 1];
    int32_t lo = 0, hi = m->V - 1;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (m->cdf[mid] > u) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* One input h against the centre and its noise words: out is updated, e gets h's gradient. */
static void train_pair(model *m, const float *h, int32_t centre, int negative, float lr, rng *r) {
    memset(m->e, 0, (size_t)m->dim * sizeof *m->e);
    for (int k = 0; k <= negative; k++) {
        int32_t d = k == 0 ? centre : noise(m, r);
        if (k > 0 && d == centre) continue;
        float *o = m->out + (size_t)d * (size_t)m->dim, dot = 0;
        for (int32_t j = 0; j < m->dim; j++) dot += h[j] * o[j];
        float s = dot > 20 ? 1 : dot < -20 ? 0 : 1 / (1 + expf(-dot));
        float g = lr * ((k == 0 ? 1.0f : 0.0f) - s);
        for (int32_t j = 0; j < m->dim; j++) {
            m->e[j] += g * o[j];
            o[j] += g * h[j];
        }
    }
}

/* One window around position i of the (subsampled) sentence w[0..n). */
static void train_window(model *m, const int32_t *w, int64_t n, int64_t i,
                         const nb_word2vec_opts *o, float lr, rng *r) {
    int32_t b = (int32_t)(next_u64(r) % (uint64_t)o->window); /* word2vec's shrunk window */
    int64_t lo = i - (o->window - b), hi = i + (o->window - b);
    if (lo < 0) lo = 0;
    if (hi > n - 1) hi = n - 1;
    size_t dim = (size_t)m->dim;
    if (!o->cbow) {
        for (int64_t c = lo; c <= hi; c++) {
            if (c == i) continue;
            float *in = m->in + (size_t)w[c] * dim;
            train_pair(m, in, w[i], o->negative, lr, r);
            for (size_t j = 0; j < dim; j++) in[j] += m->e[j];
        }
        return;
    }
    int64_t count = hi - lo;
    if (count < 1) return;
    memset(m->h, 0, dim * sizeof *m->h);
    for (int64_t c = lo; c <= hi; c++)
        for (size_t j = 0; c != i && j < dim; j++) m->h[j] += m->in[(size_t)w[c] * dim + j] / (float)count;
    train_pair(m, m->h, w[i], o->negative, lr, r);
    for (int64_t c = lo; c <= hi; c++)
        for (size_t j = 0; c != i && j < dim; j++) m->in[(size_t)w[c] * dim + j] += m->e[j];
}

/* word2vec.c's schedule: lr (1 - progress), progress the share of the training's words read so
 * far (the words subsampling drops count as read, as word2vec.c's word_count counts them), so
 * the rate falls to its floor lr 1e-4 at the end whatever share subsampling keeps.  Word i of
 * the nk kept in epoch ep stands at progress (ep + i / nk) / epochs. */
float nb__word2vec_lr(float lr, int32_t ep, int32_t epochs, int64_t i, int64_t nk) {
    double progress = ((double)ep + (double)i / (double)nk) / (double)epochs;
    return (float)(lr * fmax(1e-4, 1 - progress));
}

static nb_status check_opts(nb_word2vec_opts *o, const int32_t *stream, int64_t n, const nb_vocab *v) {
    if (!o->dim) o->dim = 100;
    if (!o->window) o->window = 5;
    if (!o->negative) o->negative = 5;
    if (!o->lr) o->lr = o->cbow ? 0.05f : 0.025f;
    if (!o->epochs) o->epochs = 5;
    if (o->dim < 1 || o->window < 1 || o->negative < 1 || !(o->lr > 0) || !isfinite(o->lr) ||
        o->epochs < 1 || !(o->sample >= 0) || !isfinite(o->sample))
        return nb__fail_status(NB_ERR_ARG, "word2vec_train: dim %d, window %d, negative %d, lr "
                               "%g, epochs %d, sample %g: each must be > 0 (sample >= 0)", o->dim,
                               o->window, o->negative, o->lr, o->epochs, o->sample);
    int64_t words = 0;
    for (int64_t i = 0; i < n; i++) {
        if (stream[i] < 0 || stream[i] >= nb_vocab_size(v))
            return nb__fail_status(NB_ERR_ARG, "word2vec_train: stream[%lld] = %d is not below "
                                   "the vocabulary's %d ids", (long long)i, stream[i], nb_vocab_size(v));
        words += stream[i] >= 2;
    }
    if (words < 2) return nb__fail_status(NB_ERR_ARG, "word2vec_train: the stream holds %lld words "
                                          "(ids >= 2); at least 2 are needed", (long long)words);
    return NB_OK;
}

nb_tensor *nb_word2vec_train(const int32_t *stream, int64_t n, const nb_vocab *vocab,
                             nb_word2vec_opts opts) {
    if (!stream || !vocab) return nb__fail(NB_ERR_NULL, "word2vec_train: stream or vocab is NULL");
    if (check_opts(&opts, stream, n, vocab) != NB_OK) return NULL;
    rng r = {opts.seed};
    model m = {0};
    int32_t *kept = nb__alloc((size_t)n * sizeof *kept);
    nb_tensor *result = NULL;
    bool ready = kept && model_init(&m, vocab, &opts, &r);
    if (kept && !ready && nb_error_code() == NB_OK)
        nb__fail(NB_ERR_ARG, "word2vec_train: the vocabulary's counts are all 0 (build it with "
                 "nb_vocab_build, which counts)");
    if (ready) {
        for (int32_t ep = 0; ep < opts.epochs; ep++) {
            int64_t nk = 0; /* the epoch's words after subsampling */
            for (int64_t i = 0; i < n; i++)
                if (stream[i] >= 2 && next_unit(&r) < m.keep[stream[i]]) kept[nk++] = stream[i];
            for (int64_t i = 0; i < nk; i++)
                train_window(&m, kept, nk, i, &opts, nb__word2vec_lr(opts.lr, ep, opts.epochs, i, nk), &r);
        }
        result = nb_from_data(m.in, 2, (const int64_t[]){m.V, m.dim});
    }
    model_free(&m);
    nb__dealloc(kept, (size_t)n * sizeof *kept);
    return result;
}

/* ---- using the vectors: a host copy [V, dim], rows normalised to length 1 */

static float *unit_rows(const nb_tensor *vectors, int64_t *V, int64_t *dim) {
    if (!vectors || nb_ndim(vectors) != 2)
        return nb__fail(NB_ERR_ARG, "word2vec: vectors must be a [V, dim] tensor");
    *V = nb_shape(vectors)[0];
    *dim = nb_shape(vectors)[1];
    size_t bytes = (size_t)(*V * *dim) * sizeof(float);
    float *x = nb__alloc(bytes);
    if (!x) return NULL;
    if (nb_copy_to(vectors, x, *V * *dim) != NB_OK) {
        nb__dealloc(x, bytes);
        return NULL;
    }
    for (int64_t i = 0; i < *V; i++) {
        double norm = 0;
        for (int64_t j = 0; j < *dim; j++) norm += (double)x[i * *dim + j] * x[i * *dim + j];
        for (int64_t j = 0; norm > 0 && j < *dim; j++) x[i * *dim + j] /= (float)sqrt(norm);
    }
    return x;
}

/* The k best cosines of unit rows x[V, dim] with q (any length) into ids and best[k], ids in
 * skip left out; how many were found. */
static int64_t best_k(const float *x, int64_t V, int64_t dim, const float *q, const int32_t *skip,
                      int64_t n_skip, int64_t k, int32_t *ids, float *best) {
    double qn = 0;
    for (int64_t j = 0; j < dim; j++) qn += (double)q[j] * q[j];
    qn = qn > 0 ? sqrt(qn) : 1;
    int64_t found = 0;
    for (int64_t id = 2; id < V; id++) {
        bool skipped = false;
        for (int64_t s = 0; s < n_skip; s++) skipped |= skip[s] == id;
        if (skipped) continue;
        double dot = 0;
        for (int64_t j = 0; j < dim; j++) dot += (double)x[id * dim + j] * q[j];
        float c = (float)(dot / qn);
        int64_t at = found < k ? found++ : k; /* insertion into the sorted best list */
        while (at > 0 && best[at - 1] < c) {
            if (at < k) best[at] = best[at - 1], ids[at] = ids[at - 1];
            at--;
        }
        if (at < k) best[at] = c, ids[at] = (int32_t)id;
    }
    return found;
}

int64_t nb_word2vec_nearest(const nb_tensor *vectors, const float *query, const int32_t *skip,
                            int64_t n_skip, int64_t k, int32_t *ids, float *sims) {
    if (!query || !ids || (n_skip > 0 && !skip) || k < 1)
        return nb__fail(NB_ERR_ARG, "word2vec_nearest: query and ids needed, k >= 1"), -1;
    int64_t V, dim;
    float *x = unit_rows(vectors, &V, &dim), *best = x ? nb__alloc((size_t)k * sizeof *best) : NULL;
    int64_t found = best ? best_k(x, V, dim, query, skip, n_skip, k, ids, best) : -1;
    for (int64_t i = 0; sims && i < found; i++) sims[i] = best[i];
    nb__dealloc(best, (size_t)k * sizeof *best);
    nb__dealloc(x, (size_t)(V * dim) * sizeof *x);
    return found;
}

int32_t nb_word2vec_analogy(const nb_tensor *vectors, int32_t a, int32_t b, int32_t c) {
    int64_t V, dim;
    float *x = unit_rows(vectors, &V, &dim);
    if (!x) return -1;
    int32_t id = -1;
    float *q = nb__alloc((size_t)dim * sizeof *q), best;
    if (!q) {
        nb__dealloc(x, (size_t)(V * dim) * sizeof *x);
        return -1;
    }
    if (a < 2 || b < 2 || c < 2 || a >= V || b >= V || c >= V) {
        nb__fail(NB_ERR_ARG, "word2vec_analogy: ids %d, %d, %d: each must be in [2, %lld)", a, b,
                 c, (long long)V);
    } else {
        for (int64_t j = 0; j < dim; j++) q[j] = x[b * dim + j] - x[a * dim + j] + x[c * dim + j];
        if (best_k(x, V, dim, q, (const int32_t[]){a, b, c}, 3, 1, &id, &best) < 1) {
            id = -1;
            nb__fail(NB_ERR_ARG, "word2vec_analogy: no word besides the three");
        }
    }
    nb__dealloc(q, (size_t)dim * sizeof *q);
    nb__dealloc(x, (size_t)(V * dim) * sizeof *x);
    return id;
}

nb_status nb_word2vec_save(const nb_tensor *vectors, const nb_vocab *vocab, const char *path) {
    if (!vectors || !vocab || !path) return nb__fail_status(NB_ERR_NULL, "word2vec_save: an argument is NULL");
    if (nb_ndim(vectors) != 2 || nb_shape(vectors)[0] != nb_vocab_size(vocab))
        return nb__fail_status(NB_ERR_SHAPE, "word2vec_save: vectors of %lld rows for a "
                               "vocabulary of %d ids", nb_ndim(vectors) == 2 ?
                               (long long)nb_shape(vectors)[0] : -1LL, nb_vocab_size(vocab));
    int64_t V = nb_shape(vectors)[0], dim = nb_shape(vectors)[1];
    size_t bytes = (size_t)(V * dim) * sizeof(float);
    float *x = nb__alloc(bytes);
    if (!x) return NB_ERR_MEMORY;
    nb_status st = nb_copy_to(vectors, x, V * dim);
    nb__afile f;
    if (st == NB_OK && (st = nb__afile_begin(&f, "word2vec_save", path)) == NB_OK) {
        FILE *out = nb__afile_stream(&f);
        if (out) {
            fprintf(out, "%lld %lld\n", (long long)(V - 2), (long long)dim);
            for (int64_t id = 2; id < V; id++) {
                fputs(nb_vocab_token(vocab, (int32_t)id), out);
                for (int64_t j = 0; j < dim; j++) fprintf(out, " %.6g", x[id * dim + j]);
                fputc('\n', out);
            }
        }
        st = nb__afile_commit(&f);
    }
    nb__dealloc(x, bytes);
    return st;
}
