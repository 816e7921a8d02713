/*
 * step_share.c — where one training step of the course MLP goes: GEMM, elementwise passes, and
 * the rest (dispatch, the graph, scopes).
 *
 *   bench_step_share [REPS [STEPS]]        (defaults 7 and 200, STEPS <= 500; one thread)
 *
 * The step is nb_fit's (src/train/fit.c, train_step and batch_loss) on synthetic batches (a
 * pool of BATCHES, pixels U[0,1), labels drawn at random, so the loss stays near log 10 and no
 * gradient sinks into subnormals as it would on one memorised batch):
 * Linear(784,64) ReLU Linear(64,64) ReLU Linear(64,10), batch 64, cross-entropy, the correct
 * count, SGD with momentum 0.9: scope, zero_grad, forward, loss, count, item, backward, step,
 * end of scope.  Its phases are timed in place (the step's own clock reads).
 *
 * Method.  A profiler's shares need perf; here the split is measured by replay: the step's
 * backend kernels are called again, in the step's order, on buffers of the step's sizes, with
 * nothing around them (no ops, no graph), and each is timed where it stands in that sequence,
 * so it sees the caches as the step leaves them.  The replay is the list in replay_step below,
 * which mirrors what the ops call (src/ops/linear.c, unary.c, xent.c, the count of
 * src/train/metrics.c, accumulate_grad in src/autograd/backward.c, nb_zero_grad in
 * src/autograd/record.c, src/backend/cpu/update.c): a change of what a step calls changes it.
 *   gemm        = the replay's 8 GEMMs (3 forward, 2 dx, 3 dW)
 *   elementwise = the replay's other kernels (bias copies, ReLU and its backward, cross-entropy
 *                 and its backward, argmax, bias-gradient sums, .grad accumulation, zero_grad's
 *                 fills, the SGD update)
 *   other       = step - gemm - elementwise: what the step spends outside kernels (dispatch,
 *                 the graph, scopes), and what its kernels lose to data the replay has in cache
 *                 (each step's batch is new to the caches, the replay's is not)
 * each as a share of the step's median time.  Repetitions interleave a block of steps with a
 * block of replays; every figure is the median over the repetitions of each block's median.
 * Each repetition starts again from the same fresh model (50 warm-up steps, then STEPS): after
 * some 800 steps the momentum of weights whose gradient stays exactly 0 (units the ReLU has
 * killed) has decayed by 0.9 per step towards the subnormal range, where arithmetic runs ten
 * times slower (torch's too); nabla's SGD update flushes such results to 0 (src/backend/cpu/
 * update.c, weights unchanged to the bit), and the fresh start keeps the figure a property of
 * the step rather than of where a trajectory has got to.
 * The machine may be shared: the medians are what to quote, the min/max beside them say how
 * much the load moved them.
 */
#include "nabla.h"
#include "bench.h"
#include "backend/backend.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define BATCH 64
#define CLASSES 10
#define N_LAYERS 3
#define BATCHES 16
#define MAX_REPS 64
#define MAX_STEPS 500

static const int64_t in_f[N_LAYERS] = {784, 64, 64}, out_f[N_LAYERS] = {64, 64, 10};

/* Kernel kinds of the replay, in the order of the table. */
typedef enum { K_GEMM, K_BIAS_COPY, K_RELU, K_XENT, K_ARGMAX, K_BIAS_GRAD, K_ACCUM, K_FILL, K_SGD, K_COUNT } kind;
static const char *const kind_names[K_COUNT] = {
    "gemm (8 products)", "bias broadcast copy", "relu + backward", "cross-entropy + backward",
    "argmax (correct count)", "bias gradient sum", ".grad accumulation", "zero_grad fill",
    "sgd update"};

/* Buffers of the step's sizes for the replay (host memory: the CPU backend's). */
typedef struct {
    float *x, *w[N_LAYERS], *b[N_LAYERS], *gw[N_LAYERS], *gb[N_LAYERS], *bw[N_LAYERS], *bb[N_LAYERS];
    float *tb[N_LAYERS];                /* the bias gradients, before accumulation */
    float *y[N_LAYERS], *a[N_LAYERS];   /* linear outputs, ReLU outputs */
    float *dy[N_LAYERS], *da[N_LAYERS]; /* gradients of the outputs, of the ReLU inputs */
    float *exps;                        /* the exps cross-entropy keeps for its backward */
    int32_t *t, *pred;
} replay_bufs;

static float *buf(int64_t n) {
    float *p = aligned_alloc(64, (size_t)((n * 4 + 63) / 64 * 64));
    if (!p) {
        fprintf(stderr, "bench_step_share: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) p[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.3f;
    return p;
}

/* The replay's buffers, with the trainer's input and weights, so that its activations, losses
 * and gradients have the step's magnitudes (no overflow or subnormals the step does not have). */
static bool make_bufs(replay_bufs *r, nb_module *model, nb_tensor *x) {
    nb_tensor *params[2 * N_LAYERS];
    if (nb_module_parameters(model, params, 2 * N_LAYERS) != 2 * N_LAYERS) return false;
    r->x = buf(BATCH * 784);
    bool ok = nb_copy_to(x, r->x, BATCH * 784) == NB_OK;
    for (int l = 0; l < N_LAYERS; l++) {
        int64_t nw = in_f[l] * out_f[l], no = out_f[l], ny = BATCH * out_f[l];
        r->w[l] = buf(nw), r->gw[l] = buf(nw), r->bw[l] = buf(nw);
        r->b[l] = buf(no), r->gb[l] = buf(no), r->bb[l] = buf(no), r->tb[l] = buf(no);
        r->y[l] = buf(ny), r->a[l] = buf(ny), r->dy[l] = buf(ny), r->da[l] = buf(ny);
        ok = ok && nb_copy_to(params[2 * l], r->w[l], nw) == NB_OK &&
             nb_copy_to(params[2 * l + 1], r->b[l], no) == NB_OK;
    }
    r->exps = buf(BATCH * CLASSES);
    r->t = malloc(sizeof(int32_t) * BATCH);
    r->pred = malloc(sizeof(int32_t) * BATCH);
    for (int i = 0; i < BATCH; i++) r->t[i] = (i * 7) % CLASSES;
    return ok;
}

static double lap(double *t0) {
    double t = now_ns(), d = t - *t0;
    *t0 = t;
    return d;
}

static void free_bufs(replay_bufs *r) {
    free(r->x), free(r->exps), free(r->t), free(r->pred);
    for (int l = 0; l < N_LAYERS; l++) {
        free(r->w[l]), free(r->gw[l]), free(r->bw[l]), free(r->b[l]), free(r->gb[l]), free(r->bb[l]);
        free(r->tb[l]), free(r->y[l]), free(r->a[l]), free(r->dy[l]), free(r->da[l]);
    }
}

/* One replay of the step's kernels; adds each one's time to acc[kind]. */
static void replay_step(const nb_backend *be, replay_bufs *r, double *acc) {
    double t = now_ns();
    const float zero = 0.0f;
    for (int l = 0; l < N_LAYERS; l++) { /* zero_grad */
        be->fill(r->gw[l], &zero, sizeof zero, in_f[l] * out_f[l]);
        be->fill(r->gb[l], &zero, sizeof zero, out_f[l]);
    }
    acc[K_FILL] += lap(&t);
    for (int l = 0; l < N_LAYERS; l++) { /* forward: y = x W^T + b, then ReLU */
        const float *in = l ? r->a[l - 1] : r->x;
        be->copy_d2d(r->y[l], r->b[l], sizeof(float) * (size_t)out_f[l]); /* rows doubling */
        for (int64_t done = 1; done < BATCH; done *= 2)
            be->copy_d2d(r->y[l] + done * out_f[l], r->y[l], sizeof(float) * (size_t)(done * out_f[l]));
        acc[K_BIAS_COPY] += lap(&t);
        be->gemm(false, true, BATCH, out_f[l], in_f[l], 1.0f, in, in_f[l], r->w[l], in_f[l], 1.0f,
                 r->y[l], out_f[l]);
        acc[K_GEMM] += lap(&t);
        if (l + 1 < N_LAYERS) {
            be->unary(NB_UN_RELU, r->a[l], r->y[l], BATCH * out_f[l], 0, 0);
            acc[K_RELU] += lap(&t);
        }
    }
    float loss = be->xent(r->exps, r->y[2], r->t, BATCH, CLASSES, 1.0f / BATCH);
    be->xent_backward(r->dy[2], r->y[2], r->exps, r->t, BATCH, CLASSES, 1.0f / BATCH);
    acc[K_XENT] += lap(&t);
    be->argmax(r->pred, r->y[2], BATCH, CLASSES, 1);
    acc[K_ARGMAX] += lap(&t);
    for (int l = N_LAYERS - 1; l >= 0; l--) { /* backward */
        const float *in = l ? r->a[l - 1] : r->x;
        if (l > 0) {
            be->gemm(false, false, BATCH, in_f[l], out_f[l], 1.0f, r->dy[l], out_f[l], r->w[l],
                     in_f[l], 0.0f, r->da[l - 1], in_f[l]);
        }
        /* dW added into .grad by the GEMM (nb__grad_sink), db made apart and added */
        be->gemm(true, false, out_f[l], in_f[l], BATCH, 1.0f, r->dy[l], out_f[l], in, in_f[l], 1.0f,
                 r->gw[l], in_f[l]);
        acc[K_GEMM] += lap(&t);
        be->reduce(NB_RED_SUM, r->tb[l], r->dy[l], 1, BATCH, out_f[l]);
        acc[K_BIAS_GRAD] += lap(&t);
        be->accumulate(r->gb[l], r->tb[l], out_f[l]);
        acc[K_ACCUM] += lap(&t);
        if (l > 0) {
            be->unary_backward(NB_UN_RELU, r->dy[l - 1], r->y[l - 1], r->a[l - 1], r->da[l - 1],
                               BATCH * in_f[l], 0, 0);
            acc[K_RELU] += lap(&t);
        }
    }
    for (int l = 0; l < N_LAYERS; l++) { /* optimiser step */
        /* lr 0: the same loads and stores, and weights that stay the trainer's, so that the
         * replay's values neither drift nor decay into subnormals */
        be->sgd_update(r->w[l], r->bw[l], r->gw[l], in_f[l] * out_f[l], 0.0f, 0, 0.9f, 1, false, false);
        be->sgd_update(r->b[l], r->bb[l], r->gb[l], out_f[l], 0.0f, 0, 0.9f, 1, false, false);
    }
    acc[K_SGD] += lap(&t);
    if (loss != loss) fprintf(stderr, "bench_step_share: the replay's loss is NaN\n");
}

/* The step's phases, timed in place. */
typedef enum { P_ZERO, P_FORWARD, P_BACKWARD, P_OPTIM, P_SCOPE, P_STEP, P_COUNT } phase;
static const char *const phase_names[P_COUNT] = {"zero_grad", "forward + loss + count", "backward",
                                                 "optimizer step", "scope end", "whole step"};

typedef struct {
    nb_module *model;
    nb_optim *opt;
    nb_tensor *x[BATCHES], *y[BATCHES];
    int next; /* the batch the next step takes */
} trainer;

static int fail(const char *what) {
    fprintf(stderr, "bench_step_share: %s: %s\n", what, nb_error_message());
    return 1;
}

static bool make_trainer(trainer *tr) {
    nb_manual_seed(0);
    tr->model = nb_sequential_new(5, (nb_module *[]){
        nb_linear_new(784, 64, true), nb_activation_new(NB_ACT_RELU, 0), nb_linear_new(64, 64, true),
        nb_activation_new(NB_ACT_RELU, 0), nb_linear_new(64, 10, true)});
    if (!tr->model) return false;
    nb_tensor *params[8];
    int n = nb_module_parameters(tr->model, params, 8);
    tr->opt = nb_sgd_new(n, params, (nb_sgd_opts){.lr = 0.01f, .momentum = 0.9f});
    bool ok = tr->opt != NULL;
    uint64_t draw = 88172645463325252ull; /* xorshift64 for the labels */
    for (int b = 0; b < BATCHES && ok; b++) {
        int32_t labels[BATCH];
        for (int i = 0; i < BATCH; i++) {
            draw ^= draw << 13, draw ^= draw >> 7, draw ^= draw << 17;
            labels[i] = (int32_t)(draw % CLASSES);
        }
        tr->x[b] = nb_rand(2, (int64_t[]){BATCH, 784});
        tr->y[b] = nb_from_int32(labels, 1, (int64_t[]){BATCH});
        ok = tr->x[b] && tr->y[b];
    }
    tr->next = 0;
    return ok;
}

static void free_trainer(trainer *tr) {
    nb_optim_free(tr->opt);
    nb_module_free(tr->model);
    for (int b = 0; b < BATCHES; b++) nb_tensor_free(tr->x[b]), nb_tensor_free(tr->y[b]);
}

/* One step as nb_fit runs it; adds each phase's time to ph. */
static bool train_step(trainer *tr, double *ph) {
    nb_tensor *x = tr->x[tr->next], *y = tr->y[tr->next];
    tr->next = (tr->next + 1) % BATCHES;
    double t = now_ns(), start = t;
    nb_scope_begin();
    nb_optim_zero_grad(tr->opt);
    ph[P_ZERO] += lap(&t);
    nb_tensor *logits = nb_module_forward(tr->model, x);
    nb_tensor *loss = nb_cross_entropy(logits, y, &(nb_ce_opts){0});
    int64_t correct = nb_count_correct(logits, y);
    float v = nb_item(loss);
    ph[P_FORWARD] += lap(&t);
    nb_status s = nb_backward(loss);
    ph[P_BACKWARD] += lap(&t);
    nb_status s2 = nb_optim_step(tr->opt);
    ph[P_OPTIM] += lap(&t);
    nb_scope_end();
    ph[P_SCOPE] += lap(&t);
    ph[P_STEP] += t - start;
    return s == NB_OK && s2 == NB_OK && correct >= 0 && v == v;
}

static void print_row(const char *name, const double *v, int n, double step) {
    double lo = v[0], hi = v[0];
    for (int i = 1; i < n; i++) lo = v[i] < lo ? v[i] : lo, hi = v[i] > hi ? v[i] : hi;
    double m = median(v, n);
    printf("  %-26s %9.2f us  %5.1f %%   (min %.2f, max %.2f)\n", name, m / 1e3, 100 * m / step,
           lo / 1e3, hi / 1e3);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 7, steps = argc > 2 ? atoi(argv[2]) : 200;
    if (reps < 1 || reps > MAX_REPS || steps < 1 || steps > MAX_STEPS) {
        fprintf(stderr, "usage: bench_step_share [REPS (1..%d) [STEPS (1..%d)]]\n", MAX_REPS, MAX_STEPS);
        return 2;
    }
    nb_set_num_threads(1);
    const nb_backend *be = nb__backend(NB_CPU);
    double ph[P_COUNT][MAX_REPS] = {{0}}, kn[K_COUNT][MAX_REPS] = {{0}}, kernels[MAX_REPS] = {0};
    for (int r = 0; r < reps; r++) { /* interleaved: a block of steps, a block of replays */
        trainer tr;
        replay_bufs rb;
        if (!make_trainer(&tr)) return fail("setup");
        if (!make_bufs(&rb, tr.model, tr.x[0])) return fail("replay buffers");
        for (int w = 0; w < 50; w++) { /* warm: arenas, caches, the momentum buffers */
            double junk[16] = {0}; /* wider than both P_COUNT and K_COUNT */
            if (!train_step(&tr, junk)) return fail("training step");
            replay_step(be, &rb, junk);
        }
        double *per_step = malloc(sizeof(double) * (size_t)steps * P_COUNT);
        double *per_replay = malloc(sizeof(double) * (size_t)steps * (K_COUNT + 1));
        double col[MAX_STEPS];
        if (!per_step || !per_replay) return fail("out of memory");
        for (int s = 0; s < steps; s++) {
            double acc[P_COUNT] = {0};
            if (!train_step(&tr, acc)) return fail("training step");
            for (int p = 0; p < P_COUNT; p++) per_step[p * steps + s] = acc[p];
        }
        for (int s = 0; s < steps; s++) {
            double acc[K_COUNT] = {0}, total = 0;
            replay_step(be, &rb, acc);
            for (int k = 0; k < K_COUNT; k++) per_replay[k * steps + s] = acc[k], total += acc[k];
            per_replay[K_COUNT * steps + s] = total;
        }
        int n = steps;
        for (int p = 0; p < P_COUNT; p++) {
            for (int s = 0; s < n; s++) col[s] = per_step[p * steps + s];
            ph[p][r] = median(col, n);
        }
        for (int k = 0; k <= K_COUNT; k++) {
            for (int s = 0; s < n; s++) col[s] = per_replay[k * steps + s];
            (k < K_COUNT ? kn[k] : kernels)[r] = median(col, n);
        }
        free(per_step);
        free(per_replay);
        free_bufs(&rb);
        free_trainer(&tr);
    }
    double step = median(ph[P_STEP], reps), gemm = median(kn[K_GEMM], reps);
    double elem[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        elem[r] = 0;
        for (int k = 1; k < K_COUNT; k++) elem[r] += kn[k][r];
    }
    double ew = median(elem, reps), other = step - gemm - ew;
    printf("course MLP 784-64-64-10 ReLU, batch %d, SGD momentum 0.9, 1 thread; %d repetitions x "
           "%d steps, interleaved with as many replays; medians\n", BATCH, reps, steps);
    printf("the step's phases, timed in place:\n");
    for (int p = 0; p < P_COUNT; p++) print_row(phase_names[p], ph[p], reps, step);
    printf("the step's kernels, replayed in its order (share of the whole step):\n");
    for (int k = 0; k < K_COUNT; k++) print_row(kind_names[k], kn[k], reps, step);
    print_row("all kernels", kernels, reps, step);
    printf("  %-26s %9.2f us  %5.1f %%   (step - kernels)\n", "other (dispatch, graph)", other / 1e3,
           100 * other / step);
    printf("@step_share threads=1 step_us=%.2f gemm=%.3f elementwise=%.3f other=%.3f\n", step / 1e3,
           gemm / step, ew / step, other / step);
    return 0;
}
