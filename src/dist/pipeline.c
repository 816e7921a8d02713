/*
 * pipeline.c — pipeline parallel training (nabla/dist.h): a Sequential cut into consecutive
 * stages, stage r on rank r, and each batch cut into m micro-batches that flow through the
 * stages, activations forward and their gradients back (nb_dist send and recv), so that stages
 * work on different micro-batches at once (GPipe, Huang et al. 2019; 1F1B, PipeDream-Flush,
 * Narayanan et al. 2021).
 *
 * A step on stage r is a list of F j (forward micro-batch j) and B j (its backward):
 *   GPipe  F 0 .. F m-1, then B m-1 .. B 0: every micro-batch's activations are kept until the
 *          backward phase;
 *   1F1B   min(p - r - 1, m) forwards to fill the pipe, then one forward and one backward in
 *          turn, then the backwards left: at most p - r micro-batches in flight.
 * Both have the same bubble, the idle share of a stage's step: (p - 1) / (m + p - 1) when every
 * stage takes the same time (p - 1 slots of filling and draining among m + p - 1).
 *
 * The loss of micro-batch j is its mean cross-entropy times n_j / B (n_j its rows), so their
 * sum is the whole batch's mean and the gradients, summed over micro-batches in .grad, are the
 * whole batch's: the step one process takes on the batch, up to the order of float sums.
 * F j on a stage after the first takes its input as a leaf that requires grad; B j is
 * backward from the stage's output with the gradient the next stage sent (nb_backward_grad),
 * and sends the leaf's gradient to the stage before.  Sends do not wait (a stage may send while
 * its neighbour sends to it, as 1F1B does); a step ends by waiting for them.  A message is a
 * header (dims and shape) and the floats.
 *
 * The bubble measured.  Ranks may share cores (mpirun --oversubscribe), so wall time would
 * count a stage as busy while the kernel runs its neighbour.  Each stage therefore times its
 * forwards and backwards in its thread's CPU time (CLOCK_THREAD_CPUTIME_ID, which stops while
 * the thread is descheduled), the stages exchange those times after the step, and every rank
 * replays the step's schedule as if each stage had a core of its own: an op starts when its
 * stage is free and its input is ready (F j after F j on the stage before, B j after B j on the
 * stage after); messages take no time.  The replay's length is the step's; a stage's idle time
 * is that length less its busy time; the bubble is the stages' mean idle share.  Two replays:
 * one with each op's own time, and one with each stage's median forward and median backward
 * time, which a loaded machine's jitter (one op in a few taking twice as long while another
 * process thrashes the cache) does not move; on an idle machine they agree.  The second is what
 * the theory predicts for stages of equal times.
 */
#include "dist.h"

#include "../backend/backend.h"
#include "nabla/loss.h"
#include "nabla/train.h" /* nb_count_correct */
#include "../nn/module.h"

#include <math.h>
#include <string.h>
#include <time.h>

enum { HEADER = 1 + NB_MAX_DIMS }; /* ndim, shape[NB_MAX_DIMS] */

typedef struct {
    void *req;
    float *buf;
    size_t bytes;
} pending_send;

struct nb_pipe {
    nb_module *seq; /* the caller's model: children outside [first, end) replaced by empties */
    int stage, stages, first, end;
    int micro;
    nb_pipe_schedule schedule;
    int *starts;     /* starts[s]: stage s's first child; starts[stages] = the child count */
    nb_tensor **in;  /* per micro-batch of the step: the stage's input (a leaf after stage 0) */
    nb_tensor **out; /* its output (the scaled loss on the last stage) */
    pending_send *sends;
    int n_sends, cap_sends;
    /* The last step's op times, seconds: dur[j] of F j, dur[m + j] of B j on this stage; every
     * stage's, gathered (times[r 2 m + ...]), and each stage's median forward and backward
     * (meds[2 r], meds[2 r + 1]); the replays' scratch (see replay). */
    double *dur, *sorted, *meds, *ends, *clocks;
    float *times;
    int *next;
    double busy;                /* this stage's, in the last step */
    double sum_busy, span[2];   /* since the stats were reset: all stages' busy time, and the
                                   replays' lengths (each op's own time, the medians) */
    int64_t steps;
    float smoothing;            /* the cross-entropy's label smoothing */
    int64_t correct;            /* the last stage's hits in the step so far; after it, the batch's */
};

static double thread_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- cutting the model */

/* Stage boundaries with about equal parameter counts: child i goes to the stage its
 * parameters' midpoint falls in.  Every stage holds a child with parameters, so every rank has
 * something to train, when the model has as many such children as stages; else every stage at
 * least one child. */
static void balanced_starts(const nb_module *seq, int stages, int *starts) {
    int n = seq->children.n, weighted = 0;
    int64_t total = 0, seen = 0;
    for (int i = 0; i < n; i++) {
        int64_t size = nb_module_num_elements(NB__CHILD(seq, i));
        total += size;
        weighted += size > 0;
    }
    bool anywhere = weighted < stages; /* then every child counts as one with parameters */
    int s = 0, left = anywhere ? n : weighted; /* the children that count, from i on */
    starts[0] = 0;
    for (int i = 0, have = 0; i < n && s + 1 < stages; i++) { /* have: such children in stage s */
        int64_t size = nb_module_num_elements(NB__CHILD(seq, i));
        int64_t mid = 2 * seen + size; /* twice the midpoint, against 2 total (s + 1) / stages */
        bool past = mid * stages > 2 * total * (s + 1);
        bool must = left == stages - (s + 1); /* those left are one per later stage */
        if ((past || must) && have > 0) starts[++s] = i, have = 0;
        if (anywhere || size > 0) have++, left--;
        seen += size;
    }
    starts[stages] = n;
}

/* ---- cutting the model by measured time (nb_pipe_opts.profile_input) */

enum { PROFILE_RUNS = 3 }; /* each layer's least time of these: a loaded machine's jitter only adds */

/* t[i] = layer i's forward plus backward time on x, thread CPU seconds, in this run.  Each layer
 * runs on a copy of its input that requires grad, so its backward is what it costs in a stage:
 * its parameters' gradients and its input's.  Eval mode (set by the caller): BatchNorm's running
 * statistics and Dropout's random draws stay untouched. */
static nb_status profile_run(nb_module *seq, const nb_tensor *x, double *t) {
    const nb_tensor *h = x;
    for (int i = 0; i < seq->children.n; i++) {
        nb_tensor *in = nb_zeros_like(h);
        if (!in) return nb_error_code();
        nb__copy_tensor(in, h);
        if (nb_dtype_is_floating(in->dtype) && nb_set_requires_grad(in, true) != NB_OK) return nb_error_code();
        double t0 = thread_seconds();
        nb_tensor *out = nb_module_forward(NB__CHILD(seq, i), in);
        if (!out) return nb_error_code();
        t[i] = thread_seconds() - t0;
        nb_tensor *ones = nb_requires_grad(out) ? nb_ones_like(out) : NULL;
        t0 = thread_seconds();
        if (ones && nb_backward_grad(out, ones) != NB_OK) return nb_error_code();
        t[i] += thread_seconds() - t0;
        h = out;
    }
    return NB_OK;
}

/* times[i]: layer i's least forward plus backward time over PROFILE_RUNS runs on x, summed over
 * the ranks (every rank then cuts alike).  The parameters' gradients are cleared after.  The
 * layers run on one thread: the time is the calling thread's, and the pool would give a worker a
 * share of one layer's pieces and none of another's (it runs jobs alone while other processes,
 * such as the other ranks, hold the cores), which once cut the model after the wrong layer. */
static nb_status profile_layers(nb_module *seq, const nb_tensor *x, float *times, double *run) {
    int n = seq->children.n, threads = nb_get_num_threads();
    bool training = nb_module_is_training(seq);
    nb_status st = NB_OK;
    nb_set_num_threads(1);
    nb_module_train(seq, false);
    for (int k = 0; k < PROFILE_RUNS && st == NB_OK; k++) {
        nb_scope_begin();
        st = profile_run(seq, x, run);
        nb_scope_end();
        for (int i = 0; i < n && st == NB_OK; i++)
            if (k == 0 || run[i] < times[i]) times[i] = (float)run[i];
    }
    nb_module_train(seq, training);
    nb_set_num_threads(threads);
    for (int i = 0; i < nb_module_num_params(seq); i++) nb_clear_grad(nb_module_param(seq, i, NULL));
    if (st == NB_OK && nb_dist_is_initialized() && nb_dist_size() > 1)
        st = nb__dist_allreduce_host("pipe_new", times, n, NB_REDUCE_SUM);
    return st == NB_OK ? NB_OK : nb__fail_prefix("pipe_new: profiling the layers");
}

/* The cut of n layers of times t into `stages` runs of consecutive layers, each at least one,
 * whose slowest stage is the fastest possible (dynamic programming, O(stages n^2)):
 * best[s n1 + i] (n1 = n + 1) is the slowest stage of the best cut of layers 0 .. i - 1 into s
 * stages, the least over k of max(best[(s - 1) n1 + k], t[k] + .. + t[i - 1]); from[..] that k. */
static void fastest_starts(const float *t, int n, int stages, double *best, int *from, int *starts) {
    int n1 = n + 1;
    for (int i = 0; i <= n; i++) best[i] = i ? INFINITY : 0; /* 0 stages: only no layers */
    for (int s = 1; s <= stages; s++)
        for (int i = 0; i <= n; i++) {
            double sum = 0, b = INFINITY;
            int arg = 0;
            for (int k = i - 1; k >= s - 1; k--) { /* stage s runs layers k .. i - 1 */
                sum += t[k];
                double worst = best[(s - 1) * n1 + k] > sum ? best[(s - 1) * n1 + k] : sum;
                if (worst < b) b = worst, arg = k;
            }
            best[s * n1 + i] = b;
            from[s * n1 + i] = arg;
        }
    starts[stages] = n;
    for (int s = stages; s > 0; s--) starts[s - 1] = from[s * n1 + starts[s]];
}

/* starts by measured time on x (see nb_pipe_opts.profile_input). */
static nb_status timed_starts(nb_module *seq, const nb_tensor *x, int stages, int *starts) {
    int n = seq->children.n, n1 = n + 1;
    float *times = nb__alloc(sizeof(float) * (size_t)n);
    double *run = nb__alloc(sizeof(double) * (size_t)n), *best = nb__alloc(sizeof(double) * (size_t)((stages + 1) * n1));
    int *from = nb__alloc(sizeof(int) * (size_t)((stages + 1) * n1));
    nb_status st = times && run && best && from ? profile_layers(seq, x, times, run) : nb_error_code();
    if (st == NB_OK) fastest_starts(times, n, stages, best, from, starts);
    if (times) nb__dealloc(times, sizeof(float) * (size_t)n);
    if (run) nb__dealloc(run, sizeof(double) * (size_t)n);
    if (best) nb__dealloc(best, sizeof(double) * (size_t)((stages + 1) * n1));
    if (from) nb__dealloc(from, sizeof(int) * (size_t)((stages + 1) * n1));
    return st;
}

static bool starts_ok(const int *starts, int stages, int n) {
    if (starts[0] != 0) return false;
    for (int s = 0; s < stages; s++)
        if (starts[s + 1] <= starts[s] || starts[s] >= n) return false;
    return starts[stages] == n;
}

/* Keeps this stage's children; every other becomes an empty Sequential (no parameters, the
 * identity), so the names of the kept ones stay the whole model's. */
static bool drop_other_stages(nb_pipe *p) {
    for (int i = 0; i < p->seq->children.n; i++) {
        if (i >= p->first && i < p->end) continue;
        nb_module *empty = nb_sequential_new(0, NULL);
        if (!empty) return false;
        nb_module_free(nb__module_swap_child(p->seq, i, empty));
    }
    return true;
}

/* The per-step arrays sized by stages P and micro-batches m (nb__alloc'd; NULL fields on failure). */
#define NB_PIPE_ARRAYS(X, P, m)                                                      \
    X(in, nb_tensor *, (m)) X(out, nb_tensor *, (m)) X(dur, double, 2 * (m))          \
    X(sorted, double, (m)) X(meds, double, 2 * (P)) X(ends, double, 2 * (P) * (m))     \
    X(clocks, double, (P))                                                          \
    X(times, float, 2 * (P) * (m)) X(next, int, (P))

void nb_pipe_free(nb_pipe *p) {
    if (!p) return;
#define NB_PIPE_FREE_(f, type, n) if (p->f) nb__dealloc(p->f, sizeof(type) * (size_t)(n));
    NB_PIPE_ARRAYS(NB_PIPE_FREE_, p->stages, p->micro)
    if (p->starts) nb__dealloc(p->starts, sizeof(int) * (size_t)(p->stages + 1));
    if (p->sends) nb__dealloc(p->sends, sizeof(pending_send) * (size_t)p->cap_sends);
    nb__dealloc(p, sizeof *p);
}

static bool opts_ok(const nb_module *seq, const nb_pipe_opts *o, int stages) {
    if (o->micro_batches < 1)
        return nb__fail(NB_ERR_ARG, "pipe_new: %d micro-batches; at least 1", o->micro_batches), false;
    if (o->schedule < 0 || o->schedule >= NB_PIPE_SCHEDULE_COUNT)
        return nb__fail(NB_ERR_ARG, "pipe_new: unknown schedule %d", (int)o->schedule), false;
    if (seq->children.n < stages)
        return nb__fail(NB_ERR_ARG, "pipe_new: %d layers cannot make %d stages", seq->children.n,
                        stages), false;
    if (o->starts && !starts_ok(o->starts, stages, seq->children.n))
        return nb__fail(NB_ERR_ARG, "pipe_new: starts must rise from 0, one per stage (%d), below "
                        "the %d layers", stages, seq->children.n), false;
    return true;
}

nb_pipe *nb_pipe_new(nb_module *seq, const nb_pipe_opts *opts) {
    nb_pipe_opts o = opts ? *opts : (nb_pipe_opts){0};
    if (!o.micro_batches) o.micro_batches = 1;
    int stages = nb_dist_size();
    if (!nb__dist_is_sequential(seq, "pipe_new") || !opts_ok(seq, &o, stages)) return NULL;
    if (nb_dist_is_initialized() && nb__dist_broadcast_module(seq, 0, "pipe_new") != NB_OK) return NULL;
    nb_pipe *p = nb__alloc(sizeof *p);
    if (!p) return NULL;
    *p = (nb_pipe){.seq = seq, .stage = nb_dist_rank(), .stages = stages, .micro = o.micro_batches,
                   .schedule = o.schedule, .smoothing = o.label_smoothing};
    p->starts = nb__alloc(sizeof(int) * (size_t)(stages + 1));
    bool ok = p->starts != NULL;
#define NB_PIPE_ALLOC_(f, type, n) ok = ok && (p->f = nb__alloc(sizeof(type) * (size_t)(n)));
    NB_PIPE_ARRAYS(NB_PIPE_ALLOC_, stages, p->micro)
    if (!ok) {
        nb_pipe_free(p);
        return NULL;
    }
    if (o.starts) memcpy(p->starts, o.starts, sizeof(int) * (size_t)(stages + 1));
    else if (!o.profile_input) balanced_starts(seq, stages, p->starts);
    else if (timed_starts(seq, o.profile_input, stages, p->starts) != NB_OK) {
        nb_pipe_free(p);
        return NULL;
    }
    p->first = p->starts[p->stage];
    p->end = p->starts[p->stage + 1];
    if (!drop_other_stages(p)) {
        nb_pipe_free(p);
        return NULL;
    }
    return p;
}

int nb_pipe_stage_first(const nb_pipe *p) { return p ? p->first : -1; }
int nb_pipe_stage_end(const nb_pipe *p) { return p ? p->end : -1; }

/* ---- messages between neighbouring stages */

static nb_status wait_sends(nb_pipe *p) {
    const nb__dist_backend *be = p->n_sends ? nb__dist_active("pipe_step") : NULL;
    nb_status st = NB_OK;
    for (int k = 0; k < p->n_sends; k++) {
        if (be && be->wait(p->sends[k].req) != NB_OK && st == NB_OK) st = nb_error_code();
        nb__dealloc(p->sends[k].buf, p->sends[k].bytes);
    }
    p->n_sends = 0;
    return st;
}

/* Starts sending n floats (copied: the caller's may change) to rank dst. */
static nb_status send_floats(nb_pipe *p, const float *src, const nb_tensor *t, int64_t n, int dst) {
    if (p->n_sends == p->cap_sends) {
        int cap = p->cap_sends ? 2 * p->cap_sends : 16;
        pending_send *s = nb__alloc(sizeof *s * (size_t)cap);
        if (!s) return nb_error_code();
        if (p->n_sends) memcpy(s, p->sends, sizeof *s * (size_t)p->n_sends);
        if (p->sends) nb__dealloc(p->sends, sizeof *s * (size_t)p->cap_sends);
        p->sends = s;
        p->cap_sends = cap;
    }
    pending_send *s = &p->sends[p->n_sends];
    s->bytes = sizeof(float) * (size_t)(n ? n : 1);
    if (!(s->buf = nb__alloc(s->bytes))) return nb_error_code();
    if (t && nb__copy_logical(s->buf, t) != NB_OK) {
        nb__dealloc(s->buf, s->bytes);
        return nb_error_code();
    }
    if (!t) memcpy(s->buf, src, sizeof(float) * (size_t)n);
    const nb__dist_backend *be = nb__dist_active("pipe_step");
    if (!be || be->isend(s->buf, n, dst, &s->req) != NB_OK) {
        nb__dealloc(s->buf, s->bytes);
        return nb_error_code();
    }
    p->n_sends++;
    return NB_OK;
}

/* t (float32) to rank dst: its header, then its elements. */
static nb_status send_tensor(nb_pipe *p, const nb_tensor *t, int dst) {
    float h[HEADER] = {(float)t->ndim};
    for (int d = 0; d < t->ndim; d++) h[1 + d] = (float)t->shape[d];
    if (send_floats(p, h, NULL, HEADER, dst) != NB_OK) return nb_error_code();
    return send_floats(p, NULL, t, nb__numel(t->ndim, t->shape), dst);
}

/* A new tensor from rank src, in the open scope. */
static nb_tensor *recv_tensor(int src) {
    const nb__dist_backend *be = nb__dist_active("pipe_step");
    float h[HEADER];
    if (!be || be->recv(h, HEADER, src) != NB_OK) return NULL;
    int ndim = (int)h[0];
    int64_t shape[NB_MAX_DIMS];
    if (ndim < 1 || ndim > NB_MAX_DIMS)
        return nb__fail(NB_ERR_SHAPE, "pipe_step: stage %d sent a %d-D tensor", src, ndim);
    for (int d = 0; d < ndim; d++) shape[d] = (int64_t)h[1 + d];
    nb_tensor *t = nb_zeros(ndim, shape);
    if (t && nb_dist_recv(t, src) != NB_OK) return NULL; /* the scope frees t */
    return t;
}

/* ---- the step */

typedef struct {
    nb_tensor *x, *y; /* the whole batch */
    int64_t rows;
} batch;

/* Rows of micro-batch j of m: [j B / m, (j + 1) B / m). */
static int64_t row_at(int m, const batch *b, int j) { return b->rows * j / m; }

static nb_tensor *run_stage(nb_pipe *p, nb_tensor *h) {
    for (int i = p->first; i < p->end && h; i++) h = nb_module_forward(NB__CHILD(p->seq, i), h);
    return h;
}

/* The thread's time since a mark is op `slot`'s (j: F j, m + j: B j). */
static void spend(nb_pipe *p, int slot, double since) {
    p->dur[slot] = thread_seconds() - since;
    p->busy += p->dur[slot];
}

/* Rows lo .. hi - 1 of x as a leaf of its own (a copy): its gradient, when x needs one, costs
 * the micro-batch's rows, where a slice's backward would make a zero tensor of the whole batch. */
static nb_tensor *first_input(nb_tensor *x, int64_t lo, int64_t hi) {
    nb_tensor *rows = nb_slice(nb_detach(x), 0, lo, hi, 1), *in = rows ? nb_zeros_like(rows) : NULL;
    if (in) nb__copy_tensor(in, rows);
    return in;
}

/* x.grad's rows lo .. += g (contiguous, of those rows): the micro-batch's share of the input
 * gradient, accumulated as a backward through x would (x.grad made of zeros when absent). */
static nb_status add_input_grad(nb_tensor *x, int64_t lo, const nb_tensor *g) {
    const nb_backend *be = nb__backend(x->device);
    int64_t n = nb__numel(x->ndim, x->shape), row = x->shape[0] ? n / x->shape[0] : 0;
    if (!x->grad) {
        float zero = 0;
        if (!(x->grad = nb__new_in(x->arena, NB_F32, x->ndim, x->shape))) return nb_error_code();
        be->fill(nb__f32(x->grad), &zero, sizeof zero, n);
    }
    be->accumulate(nb__f32(x->grad) + lo * row, nb__f32(g), nb__numel(g->ndim, g->shape));
    return NB_OK;
}

static nb_status forward_micro(nb_pipe *p, const batch *b, int j) {
    bool first = p->stage == 0, last = p->stage == p->stages - 1;
    int64_t lo = row_at(p->micro, b, j), hi = row_at(p->micro, b, j + 1);
    nb_tensor *in = first ? first_input(b->x, lo, hi) : recv_tensor(p->stage - 1);
    if (!in || ((!first || nb_requires_grad(b->x)) && nb_set_requires_grad(in, true) != NB_OK))
        return nb_error_code();
    double t0 = thread_seconds();
    nb_tensor *out = run_stage(p, in);
    if (out && last) { /* this micro-batch's share of the batch's mean loss */
        nb_tensor *y = nb_contiguous(nb_slice(b->y, 0, lo, hi, 1));
        nb_tensor *ce = nb_cross_entropy(out, y, &(nb_ce_opts){.label_smoothing = p->smoothing});
        int64_t hits = ce ? nb_count_correct(out, y) : -1;
        p->correct += hits;
        out = hits >= 0 ? nb_mul_scalar(ce, (float)(hi - lo) / (float)b->rows) : NULL;
    }
    spend(p, j, t0);
    if (!out) return nb_error_code();
    p->in[j] = in;
    p->out[j] = out;
    return last ? NB_OK : send_tensor(p, out, p->stage + 1);
}

static nb_status backward_micro(nb_pipe *p, const batch *b, int j) {
    bool first = p->stage == 0, last = p->stage == p->stages - 1;
    nb_tensor *g = last ? NULL : recv_tensor(p->stage + 1);
    if (!last && !g) return nb_error_code();
    double t0 = thread_seconds();
    nb_status st = NB_OK; /* a first stage without parameters (a Flatten) has nothing to do */
    if (nb_requires_grad(p->out[j])) st = last ? nb_backward(p->out[j]) : nb_backward_grad(p->out[j], g);
    nb_tensor *dx = nb_requires_grad(p->in[j]) ? nb_grad(p->in[j]) : NULL;
    if (st == NB_OK && first && dx) st = add_input_grad(b->x, row_at(p->micro, b, j), dx);
    spend(p, p->micro + j, t0);
    if (st != NB_OK || first) return st;
    return dx ? send_tensor(p, dx, p->stage - 1)
              : nb__fail_status(NB_ERR_GRAPH, "pipe_step: stage %d's input got no gradient", p->stage);
}

/* Op k of stage r's step: micro-batch *j, forward or not (see the top of this file). */
static bool op_at(nb_pipe_schedule schedule, int stages, int r, int m, int k, int *j) {
    if (schedule == NB_PIPE_GPIPE) return k < m ? (*j = k, true) : (*j = 2 * m - 1 - k, false);
    int warm = stages - r - 1 < m ? stages - r - 1 : m;
    if (k < warm) return *j = k, true;
    int steady = k - warm; /* F warm + i and B i in turn while forwards are left */
    if (steady < 2 * (m - warm))
        return steady % 2 == 0 ? (*j = warm + steady / 2, true) : (*j = steady / 2, false);
    return *j = m - warm + (steady - 2 * (m - warm)), false;
}

static nb_status run_schedule(nb_pipe *p, const batch *b) {
    for (int k = 0; k < 2 * p->micro; k++) {
        int j;
        bool fwd = op_at(p->schedule, p->stages, p->stage, p->micro, k, &j);
        nb_status st = fwd ? forward_micro(p, b, j) : backward_micro(p, b, j);
        if (st != NB_OK) return nb__fail_prefix("pipe_step: stage %d, %s of micro-batch %d", p->stage,
                                                fwd ? "forward" : "backward", j);
    }
    return NB_OK;
}

/* The median of n values (n small: an insertion sort into scratch). */
static double median(const float *t, int n, double *scratch) {
    for (int i = 0; i < n; i++) {
        int k = i;
        for (; k > 0 && scratch[k - 1] > t[i]; k--) scratch[k] = scratch[k - 1];
        scratch[k] = t[i];
    }
    return n % 2 ? scratch[n / 2] : (scratch[n / 2 - 1] + scratch[n / 2]) / 2;
}

/* The time of op (r, fwd, j) in a replay: its own, or its stage's median of that kind
 * (meds[2 r + !fwd]). */
static double op_time(const nb_pipe *p, bool use_median, int r, bool fwd, int j) {
    if (use_median) return p->meds[2 * r + !fwd];
    return p->times[(size_t)(2 * r + !fwd) * p->micro + j];
}

/* The step replayed on one core per stage (see the top of this file); returns its length.
 * ends[(r 2 + !fwd) m + j] is when op (r, fwd, j) ends, -1 before the replay reaches it. */
static double replay(nb_pipe *p, bool use_median) {
    int P = p->stages, m = p->micro, left = 2 * P * m;
    for (int i = 0; i < 2 * P * m; i++) p->ends[i] = -1;
    memset(p->next, 0, sizeof(int) * (size_t)P);
    memset(p->clocks, 0, sizeof(double) * (size_t)P);
    for (bool moved = true; left && moved;) { /* the schedules cannot deadlock: each sweep moves */
        moved = false;
        for (int r = 0; r < P; r++)
            for (int j; p->next[r] < 2 * m; p->next[r]++, left--, moved = true) {
                bool fwd = op_at(p->schedule, P, r, m, p->next[r], &j);
                int from = fwd ? r - 1 : r + 1; /* the stage whose op this one waits for */
                double ready = from < 0 || from >= P ? 0 : p->ends[(2 * from + !fwd) * m + j];
                if (ready < 0) break;
                p->clocks[r] = (ready > p->clocks[r] ? ready : p->clocks[r]) + op_time(p, use_median, r, fwd, j);
                p->ends[(2 * r + !fwd) * m + j] = p->clocks[r];
            }
    }
    double span = 0;
    for (int r = 0; r < P; r++) span = p->clocks[r] > span ? p->clocks[r] : span;
    return span;
}

/* The step's loss (the last stage's sum) to every rank; every stage's op times to every rank,
 * replayed into the stats. */
static nb_status finish_step(nb_pipe *p, double *loss) {
    float v[2] = {0, (float)p->correct}; /* the loss and the hits (exact in a float up to 2^24 rows) */
    if (p->stage == p->stages - 1)
        for (int j = 0; j < p->micro; j++) v[0] += nb_item(p->out[j]);
    int n = 2 * p->micro;
    float *mine = p->times + (size_t)p->stage * n;
    for (int i = 0; i < n; i++) mine[i] = (float)p->dur[i];
    if (p->stages > 1) {
        const nb__dist_backend *be = nb__dist_active("pipe_step");
        if (!be || nb__dist_allreduce_host("pipe_step", v, 2, NB_REDUCE_SUM) != NB_OK ||
            be->allgather(p->times, mine, n) != NB_OK)
            return nb_error_code();
    }
    if (loss) *loss = v[0];
    p->correct = (int64_t)v[1];
    for (int i = 0; i < p->stages * n; i++) p->sum_busy += p->times[i];
    for (int k = 0; k < 2 * p->stages; k++) p->meds[k] = median(p->times + (size_t)k * p->micro, p->micro, p->sorted);
    p->span[0] += replay(p, false);
    p->span[1] += replay(p, true);
    p->steps++;
    return NB_OK;
}

/* x and y a batch of at least min_rows rows; op: "pipe_step" or "pipe_eval". */
static bool batch_ok(const char *op, const nb_tensor *x, const nb_tensor *y, int min_rows) {
    if (!nb__alive(x) || !nb__alive(y)) return nb__fail_input(op, nb__alive(x) ? y : x), false;
    if (x->ndim < 1 || y->ndim != 1 || x->shape[0] != y->shape[0])
        return nb__fail(NB_ERR_SHAPE, "%s: inputs %s and labels %s: one label per row", op,
                        NB_SHP(x), NB_SHP(y)), false;
    if (x->shape[0] < min_rows)
        return nb__fail(NB_ERR_SHAPE, "%s: a batch of %lld rows cannot make %d micro-batches", op,
                        (long long)x->shape[0], min_rows), false;
    return true;
}

nb_status nb_pipe_step(nb_pipe *p, nb_tensor *x, nb_tensor *y, double *loss) {
    if (!p) return nb__fail_status(NB_ERR_NULL, "pipe_step: pipe is NULL");
    if (!batch_ok("pipe_step", x, y, p->micro)) return nb_error_code();
    batch b = {x, y, x->shape[0]};
    p->busy = 0;
    p->correct = 0;
    nb_scope_begin();
    nb_status st = run_schedule(p, &b);
    nb_status waited = wait_sends(p);
    if (st == NB_OK) st = waited;
    if (st == NB_OK) st = finish_step(p, loss);
    nb_scope_end();
    return st;
}

int64_t nb_pipe_correct(const nb_pipe *p) { return p ? p->correct : -1; }

/* ---- evaluation: forwards only */

/* Micro-batch j of m through this stage without a graph; the last stage adds its loss times
 * its rows to *sum and its hits to p->correct. */
static nb_status eval_micro(nb_pipe *p, const batch *b, int m, int j, double *sum) {
    int64_t lo = row_at(m, b, j), hi = row_at(m, b, j + 1);
    nb_tensor *in = p->stage == 0 ? nb_contiguous(nb_slice(b->x, 0, lo, hi, 1)) : recv_tensor(p->stage - 1);
    nb_tensor *out = in ? run_stage(p, in) : NULL;
    if (!out) return nb_error_code();
    if (p->stage < p->stages - 1) return send_tensor(p, out, p->stage + 1);
    nb_tensor *y = nb_contiguous(nb_slice(b->y, 0, lo, hi, 1));
    nb_tensor *ce = nb_cross_entropy(out, y, &(nb_ce_opts){.label_smoothing = p->smoothing});
    int64_t hits = ce ? nb_count_correct(out, y) : -1;
    if (hits < 0) return nb_error_code();
    *sum += nb_item(ce) * (double)(hi - lo);
    p->correct += hits;
    return NB_OK;
}

nb_status nb_pipe_eval(nb_pipe *p, nb_tensor *x, nb_tensor *y, double *loss, int64_t *correct) {
    if (!p) return nb__fail_status(NB_ERR_NULL, "pipe_eval: pipe is NULL");
    if (!batch_ok("pipe_eval", x, y, 1)) return nb_error_code();
    batch b = {x, y, x->shape[0]};
    int m = b.rows < p->micro ? (int)b.rows : p->micro; /* a last, smaller batch: fewer */
    bool training = nb_module_is_training(p->seq);
    double sum = 0;
    nb_status st = NB_OK;
    p->correct = 0;
    nb_module_train(p->seq, false);
    nb_scope_begin();
    NB_NO_GRAD {
        for (int j = 0; j < m && st == NB_OK; j++) st = eval_micro(p, &b, m, j, &sum);
    }
    nb_status waited = wait_sends(p);
    float v[2] = {(float)sum, (float)p->correct}; /* the last stage's; zeros elsewhere */
    if (st == NB_OK) st = waited;
    if (st == NB_OK && p->stages > 1) st = nb__dist_allreduce_host("pipe_eval", v, 2, NB_REDUCE_SUM);
    nb_scope_end();
    nb_module_train(p->seq, training);
    if (st != NB_OK) return nb__fail_prefix("pipe_eval: stage %d", p->stage);
    p->correct = (int64_t)v[1];
    if (loss) *loss = v[0] / (double)b.rows;
    if (correct) *correct = p->correct;
    return NB_OK;
}

/* The stages' mean idle share of a replay's total length. */
static double idle_share(const nb_pipe *p, double span) {
    double busy = p->sum_busy / p->stages, idle = span > 0 ? 1 - busy / span : 0;
    return idle > 0 ? idle : 0; /* one stage: its busy time is the span, rounded */
}

nb_pipe_stats nb_pipe_stats_get(const nb_pipe *p) {
    nb_pipe_stats s = {0};
    if (!p) return s;
    s.steps = p->steps;
    s.stage_busy = p->busy;
    s.theory = (double)(p->stages - 1) / (double)(p->micro + p->stages - 1);
    if (p->steps) {
        s.step_seconds = p->span[0] / (double)p->steps;
        s.bubble_each_op = idle_share(p, p->span[0]);
        s.bubble = idle_share(p, p->span[1]);
    }
    return s;
}

void nb_pipe_stats_reset(nb_pipe *p) {
    if (!p) return;
    p->sum_busy = p->span[0] = p->span[1] = 0;
    p->steps = 0;
}

/* ---- the whole model */

nb_status nb_pipe_gather(const nb_pipe *p, nb_module *full) {
    if (!p) return nb__fail_status(NB_ERR_NULL, "pipe_gather: pipe is NULL");
    if (!nb__dist_is_sequential(full, "pipe_gather")) return nb_error_code();
    if (full->children.n != p->seq->children.n)
        return nb__fail_status(NB_ERR_SHAPE, "pipe_gather: the split model has %d layers, the full "
                               "one %d", p->seq->children.n, full->children.n);
    for (int s = 0; s < p->stages; s++)
        for (int i = p->starts[s]; i < p->starts[s + 1]; i++) {
            nb_module *f = NB__CHILD(full, i);
            const char *name = full->children.at[i].name;
            if (s == p->stage && nb__dist_copy_layer(f, NB__CHILD(p->seq, i), "pipe_gather", name) != NB_OK)
                return nb_error_code();
            if (p->stages > 1 && nb__dist_broadcast_module(f, s, "pipe_gather") != NB_OK)
                return nb_error_code();
        }
    return NB_OK;
}
