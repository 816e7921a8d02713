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
 * header (dims, shape, the sender's clock) and the floats.
 *
 * The bubble measured.  Ranks may share cores (mpirun --oversubscribe), so wall time would
 * count a stage as busy while the kernel runs its neighbour.  Each stage therefore times its
 * forwards and backwards in its thread's CPU time (CLOCK_THREAD_CPUTIME_ID, which stops while
 * the thread is descheduled), and replays the step on a clock of its own as if each stage had a
 * core: an op starts when the stage is free and, for one that receives, when the sender's clock
 * said it sent (the header carries it); messages take no time.  The step's length is the
 * latest stage's end; a stage's idle time is that length less its busy time; the measured bubble
 * is the stages' mean idle share.  It is what the schedule costs on dedicated cores, which is
 * what the theory predicts.
 */
#include "dist.h"

#include "nabla/loss.h"
#include "../nn/module.h"

#include <string.h>
#include <time.h>

enum { HEADER = 2 + NB_MAX_DIMS }; /* ndim, shape[NB_MAX_DIMS], the sender's clock in µs */

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
    double clock, busy;     /* this step's replayed clock and busy time, seconds */
    double sum_busy, sum_span; /* over the steps since the stats were reset, all stages' busy */
    int64_t steps;
};

static double thread_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- cutting the model */

/* Stage boundaries with about equal parameter counts (every stage at least one child):
 * child i goes to the stage its parameters' midpoint falls in. */
static void balanced_starts(const nb_module *seq, int stages, int *starts) {
    int n = seq->children.n;
    int64_t total = 0, seen = 0;
    for (int i = 0; i < n; i++) total += nb_module_num_elements(NB__CHILD(seq, i));
    int s = 0;
    starts[0] = 0;
    for (int i = 0; i < n && s + 1 < stages; i++) {
        int64_t size = nb_module_num_elements(NB__CHILD(seq, i));
        int64_t mid = 2 * seen + size; /* twice the midpoint, against 2 total (s + 1) / stages */
        bool past = mid * stages > 2 * total * (s + 1) && i > starts[s];
        bool must = n - i == stages - (s + 1); /* the children left are one per later stage */
        if (past || must) starts[++s] = i;
        seen += size;
    }
    starts[stages] = n;
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

void nb_pipe_free(nb_pipe *p) {
    if (!p) return;
    if (p->starts) nb__dealloc(p->starts, sizeof(int) * (size_t)(p->stages + 1));
    if (p->in) nb__dealloc(p->in, sizeof(nb_tensor *) * (size_t)p->micro);
    if (p->out) nb__dealloc(p->out, sizeof(nb_tensor *) * (size_t)p->micro);
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
                   .schedule = o.schedule};
    p->starts = nb__alloc(sizeof(int) * (size_t)(stages + 1));
    p->in = nb__alloc(sizeof(nb_tensor *) * (size_t)p->micro);
    p->out = nb__alloc(sizeof(nb_tensor *) * (size_t)p->micro);
    if (!p->starts || !p->in || !p->out) {
        nb_pipe_free(p);
        return NULL;
    }
    if (o.starts) memcpy(p->starts, o.starts, sizeof(int) * (size_t)(stages + 1));
    else balanced_starts(seq, stages, p->starts);
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

/* t (float32) to rank dst: its header with this stage's clock, then its elements. */
static nb_status send_tensor(nb_pipe *p, const nb_tensor *t, int dst) {
    float h[HEADER] = {(float)t->ndim};
    for (int d = 0; d < t->ndim; d++) h[1 + d] = (float)t->shape[d];
    h[HEADER - 1] = (float)(p->clock * 1e6);
    if (send_floats(p, h, NULL, HEADER, dst) != NB_OK) return nb_error_code();
    return send_floats(p, NULL, t, nb__numel(t->ndim, t->shape), dst);
}

/* A new tensor from rank src (in the open scope); the stage's clock moves to the send's. */
static nb_tensor *recv_tensor(nb_pipe *p, int src) {
    const nb__dist_backend *be = nb__dist_active("pipe_step");
    float h[HEADER];
    if (!be || be->recv(h, HEADER, src) != NB_OK) return NULL;
    int ndim = (int)h[0];
    int64_t shape[NB_MAX_DIMS];
    if (ndim < 1 || ndim > NB_MAX_DIMS)
        return nb__fail(NB_ERR_SHAPE, "pipe_step: stage %d sent a %d-D tensor", src, ndim);
    for (int d = 0; d < ndim; d++) shape[d] = (int64_t)h[1 + d];
    double sent = h[HEADER - 1] * 1e-6;
    if (sent > p->clock) p->clock = sent;
    nb_tensor *t = nb_zeros(ndim, shape);
    if (t && nb_dist_recv(t, src) != NB_OK) return NULL; /* the scope frees t */
    return t;
}

/* ---- the step */

typedef struct {
    nb_tensor *x, *y; /* the whole batch */
    int64_t rows;
} batch;

/* Rows of micro-batch j: [j B / m, (j + 1) B / m). */
static int64_t row_at(const nb_pipe *p, const batch *b, int j) { return b->rows * j / p->micro; }

static nb_tensor *run_stage(nb_pipe *p, nb_tensor *h) {
    for (int i = p->first; i < p->end && h; i++) h = nb_module_forward(NB__CHILD(p->seq, i), h);
    return h;
}

/* The time of the work between two marks goes to the stage's clock and busy time. */
static void spend(nb_pipe *p, double since) {
    double d = thread_seconds() - since;
    p->clock += d;
    p->busy += d;
}

static nb_status forward_micro(nb_pipe *p, const batch *b, int j) {
    bool first = p->stage == 0, last = p->stage == p->stages - 1;
    int64_t lo = row_at(p, b, j), hi = row_at(p, b, j + 1);
    nb_tensor *in = first ? nb_contiguous(nb_slice(b->x, 0, lo, hi, 1)) : recv_tensor(p, p->stage - 1);
    if (!in || (!first && nb_set_requires_grad(in, true) != NB_OK)) return nb_error_code();
    double t0 = thread_seconds();
    nb_tensor *out = run_stage(p, in);
    if (out && last) { /* this micro-batch's share of the batch's mean loss */
        nb_tensor *ce = nb_cross_entropy(out, nb_contiguous(nb_slice(b->y, 0, lo, hi, 1)), NULL);
        out = nb_mul_scalar(ce, (float)(hi - lo) / (float)b->rows);
    }
    spend(p, t0);
    if (!out) return nb_error_code();
    p->in[j] = in;
    p->out[j] = out;
    return last ? NB_OK : send_tensor(p, out, p->stage + 1);
}

static nb_status backward_micro(nb_pipe *p, int j) {
    bool first = p->stage == 0, last = p->stage == p->stages - 1;
    nb_tensor *g = last ? NULL : recv_tensor(p, p->stage + 1);
    if (!last && !g) return nb_error_code();
    double t0 = thread_seconds();
    nb_status st = last ? nb_backward(p->out[j]) : nb_backward_grad(p->out[j], g);
    spend(p, t0);
    if (st != NB_OK) return st;
    if (first) return NB_OK;
    nb_tensor *dx = nb_grad(p->in[j]);
    return dx ? send_tensor(p, dx, p->stage - 1)
              : nb__fail_status(NB_ERR_GRAPH, "pipe_step: stage %d's input got no gradient", p->stage);
}

/* Op k of this stage's step: micro-batch *j, forward or not (see the top of this file). */
static bool op_at(const nb_pipe *p, int k, int *j) {
    int m = p->micro;
    if (p->schedule == NB_PIPE_GPIPE) return k < m ? (*j = k, true) : (*j = 2 * m - 1 - k, false);
    int warm = p->stages - p->stage - 1 < m ? p->stages - p->stage - 1 : m;
    if (k < warm) return *j = k, true;
    int steady = k - warm; /* pairs F warm + i, B i while forwards are left */
    if (steady < 2 * (m - warm)) return steady % 2 == 0 ? (*j = warm + steady / 2, true) : (*j = steady / 2, false);
    return *j = m - warm + (steady - 2 * (m - warm)), false;
}

static nb_status run_schedule(nb_pipe *p, const batch *b) {
    for (int k = 0; k < 2 * p->micro; k++) {
        int j;
        bool fwd = op_at(p, k, &j);
        nb_status st = fwd ? forward_micro(p, b, j) : backward_micro(p, j);
        if (st != NB_OK) return nb__fail_prefix("pipe_step: stage %d, %s of micro-batch %d", p->stage,
                                                fwd ? "forward" : "backward", j);
    }
    return NB_OK;
}

/* The step's loss (the last stage's sum) to every rank, and the stages' busy time and the
 * step's length into the stats. */
static nb_status finish_step(nb_pipe *p, double *loss) {
    float v[2] = {0, (float)p->busy};
    if (p->stage == p->stages - 1)
        for (int j = 0; j < p->micro; j++) v[0] += nb_item(p->out[j]);
    int64_t span = (int64_t)(p->clock * 1e9), lo, hi = span;
    if (p->stages > 1) {
        const nb__dist_backend *be = nb__dist_active("pipe_step");
        if (!be || nb__dist_allreduce_host("pipe_step", v, 2, NB_REDUCE_SUM) != NB_OK ||
            be->agree(&span, 1, &lo, &hi) != NB_OK)
            return nb_error_code();
    }
    if (loss) *loss = v[0];
    p->sum_busy += v[1];
    p->sum_span += (double)hi * 1e-9;
    p->steps++;
    return NB_OK;
}

static bool batch_ok(const nb_pipe *p, const nb_tensor *x, const nb_tensor *y) {
    if (!nb__alive(x) || !nb__alive(y)) return nb__fail_input("pipe_step", nb__alive(x) ? y : x), false;
    if (x->ndim < 1 || y->ndim != 1 || x->shape[0] != y->shape[0])
        return nb__fail(NB_ERR_SHAPE, "pipe_step: inputs %s and labels %s: one label per row",
                        NB_SHP(x), NB_SHP(y)), false;
    if (x->shape[0] < p->micro)
        return nb__fail(NB_ERR_SHAPE, "pipe_step: a batch of %lld rows cannot make %d micro-batches",
                        (long long)x->shape[0], p->micro), false;
    return true;
}

nb_status nb_pipe_step(nb_pipe *p, nb_tensor *x, nb_tensor *y, double *loss) {
    if (!p) return nb__fail_status(NB_ERR_NULL, "pipe_step: pipe is NULL");
    if (!batch_ok(p, x, y)) return nb_error_code();
    batch b = {x, y, x->shape[0]};
    p->clock = p->busy = 0;
    nb_scope_begin();
    nb_status st = run_schedule(p, &b);
    nb_status waited = wait_sends(p);
    if (st == NB_OK) st = waited;
    if (st == NB_OK) st = finish_step(p, loss);
    nb_scope_end();
    return st;
}

nb_pipe_stats nb_pipe_stats_get(const nb_pipe *p) {
    nb_pipe_stats s = {0};
    if (!p) return s;
    s.steps = p->steps;
    s.stage_busy = p->busy;
    s.theory = (double)(p->stages - 1) / (double)(p->micro + p->stages - 1);
    if (p->steps && p->sum_span > 0) {
        s.step_seconds = p->sum_span / (double)p->steps;
        s.bubble = 1 - p->sum_busy / (p->sum_span * p->stages);
        if (s.bubble < 0) s.bubble = 0; /* one stage: its busy time is the span, rounded */
    }
    return s;
}

void nb_pipe_stats_reset(nb_pipe *p) {
    if (!p) return;
    p->sum_busy = p->sum_span = 0;
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
