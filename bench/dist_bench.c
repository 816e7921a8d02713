/*
 * dist_bench.c — the figures of data parallel training (docs/SCALING.md, bench/dist_throughput.sh),
 * one thread per rank, started by mpirun (or alone: one rank, no communication).
 *
 *   dist_bench allreduce
 *       the allreduce of n floats as data parallel's buckets run it (non-blocking, waited for),
 *       n = 1 .. 4M: the median time per call, and the fit t(bytes) = latency + bytes / bandwidth
 *       (least squares on the sizes of 64 KiB to 1 MiB, a bucket's, for the bandwidth; the
 *       smallest size's time for the latency).
 *   dist_bench step mlp|lenet [GLOBAL_BATCH [STEPS [BUCKET_BYTES]]]
 *       training steps of the course MLP (784-64-64-10) or LeNet (examples/03) on GLOBAL_BATCH
 *       (default 64) samples split over the ranks, SGD momentum, on random data (the loader is
 *       not what is measured).  Two phases of STEPS steps (default 30) each, after 3 warm-up
 *       steps, medians per step:
 *         blocking: backward, then nb_ddp_sync_grads — comm = that call's time;
 *         overlap:  the hooks of nb_ddp_sync_in_backward, then nb_ddp_finish — exposed = that
 *                   call's time, what backward did not hide.
 *       Prints (rank 0) step time, samples/s, the step's CPU time (the work done, which a busy
 *       machine does not inflate as it does the wall time), comm / step (the communication
 *       share), the share of the blocking exchange hidden behind backward, 1 - exposed / comm,
 *       and the share of the gradient whose allreduce had completed when backward ended
 *       (nb_ddp_overlapped_fraction: a count, which the machine's load blurs less).
 */
#include "bench.h"

#include "dist/dist.h"
#include "nabla.h"

#include <math.h>

enum { WARMUP = 3 };

static nb_module *make_model(const char *name) {
    nb_manual_seed(1);
    if (!strcmp(name, "mlp"))
        return nb_sequential_new(5, (nb_module *[]){nb_linear_new(784, 64, true), nb_activation_new(NB_ACT_RELU, 0),
                                                    nb_linear_new(64, 64, true), nb_activation_new(NB_ACT_RELU, 0),
                                                    nb_linear_new(64, 10, true)});
    nb_conv2d_opts pad2 = {.padding = {2, 2}};
    nb_pool2d_opts pool2 = {.kernel = {2, 2}};
    return nb_sequential_new(10, (nb_module *[]){
        nb_conv2d_new(1, 16, 5, 5, pad2, true),  nb_activation_new(NB_ACT_RELU, 0), nb_max_pool2d_new(pool2),
        nb_conv2d_new(16, 32, 5, 5, pad2, true), nb_activation_new(NB_ACT_RELU, 0), nb_max_pool2d_new(pool2),
        nb_flatten_new(1, -1),                   nb_linear_new(32 * 7 * 7, 128, true),
        nb_activation_new(NB_ACT_RELU, 0),       nb_linear_new(128, 10, true)});
}

typedef struct {
    double step, comm; /* medians, ns */
    double cpu;        /* the step's CPU time (this process), median, ns: the work, not the waits */
} phase_times;

/* STEPS timed steps (after WARMUP): comm is the time of the call that ends the gradients'
 * exchange (sync_grads, or finish with overlap); no ddp: none. */
static phase_times run_phase(nb_module *m, nb_optim *o, nb_ddp *ddp, bool overlap, nb_tensor *x,
                             nb_tensor *y, int steps) {
    double *step = malloc(sizeof(double) * (size_t)steps), *comm = malloc(sizeof(double) * (size_t)steps);
    double *cpu = malloc(sizeof(double) * (size_t)steps);
    for (int s = -WARMUP; s < steps; s++) {
        nb_dist_barrier(); /* every rank starts the step together (when there is a group) */
        double t0 = now_ns(), c0 = cpu_ns();
        nb_optim_zero_grad(o);
        nb_scope_begin();
        if (nb_backward(nb_cross_entropy(nb_module_forward(m, x), y, NULL)) != NB_OK) {
            fprintf(stderr, "dist_bench: %s\n", nb_error_message());
            exit(1);
        }
        nb_scope_end();
        double t1 = now_ns();
        if (ddp && (overlap ? nb_ddp_finish(ddp) : nb_ddp_sync_grads(ddp)) != NB_OK) {
            fprintf(stderr, "dist_bench: %s\n", nb_error_message());
            exit(1);
        }
        double t2 = now_ns();
        nb_optim_step(o);
        if (s >= 0) {
            step[s] = now_ns() - t0;
            comm[s] = t2 - t1;
            cpu[s] = cpu_ns() - c0;
        }
    }
    phase_times t = {median(step, steps), median(comm, steps), median(cpu, steps)};
    free(step);
    free(comm);
    free(cpu);
    return t;
}

static int bench_step(int argc, char **argv) {
    const char *model = argv[2];
    int global = argc > 3 ? atoi(argv[3]) : 64, steps = argc > 4 ? atoi(argv[4]) : 30;
    size_t bucket = argc > 5 ? (size_t)atoll(argv[5]) : 0;
    int size = nb_dist_size(), batch = global / size;
    bool lenet = !strcmp(model, "lenet");
    if ((!lenet && strcmp(model, "mlp")) || batch < 1 || steps < 1) {
        fprintf(stderr, "usage: dist_bench step mlp|lenet [GLOBAL_BATCH [STEPS [BUCKET_BYTES]]]\n");
        return 2;
    }
    nb_module *m = make_model(model);
    nb_tensor *params[16];
    int n = nb_module_parameters(m, params, 16);
    nb_optim *o = nb_sgd_new(n, params, (nb_sgd_opts){.lr = 0.01, .momentum = 0.9});
    nb_manual_seed(100 + (uint64_t)nb_dist_rank()); /* each rank its own share of the batch */
    nb_tensor *x = lenet ? nb_randn(NB_SHAPE(batch, 1, 28, 28)) : nb_randn(NB_SHAPE(batch, 784));
    int32_t labels[4096];
    for (int i = 0; i < batch && i < 4096; i++) labels[i] = (i * 7 + nb_dist_rank()) % 10;
    nb_tensor *y = nb_from_int32(labels, 1, (int64_t[]){batch});
    nb_ddp *ddp = size > 1 ? nb_ddp_new(m, bucket) : NULL;
    phase_times blocking = run_phase(m, o, ddp, false, x, y, steps);
    phase_times overlap = blocking;
    if (ddp) {
        nb_ddp_sync_in_backward(ddp);
        overlap = run_phase(m, o, ddp, true, x, y, steps);
    }
    if (nb_dist_rank() == 0) {
        printf("%s ranks %d threads 1 batch %d/rank params %lld buckets %d: step %.3f ms (%.0f samples/s, "
               "cpu %.3f ms), allreduce %.3f ms = %.1f%% of the step; with overlap: step %.3f ms (%.0f samples/s), "
               "exposed %.3f ms, hidden %.0f%%, reduced during backward %.0f%% of the gradient\n",
               model, size, batch, (long long)nb_module_num_elements(m), ddp ? nb_ddp_num_buckets(ddp) : 0,
               blocking.step / 1e6, global / (blocking.step / 1e9), blocking.cpu / 1e6, blocking.comm / 1e6,
               100 * blocking.comm / blocking.step, overlap.step / 1e6, global / (overlap.step / 1e9),
               overlap.comm / 1e6, blocking.comm > 0 ? 100 * (1 - overlap.comm / blocking.comm) : 0,
               ddp ? 100 * nb_ddp_overlapped_fraction(ddp) : 0.0);
    }
    nb_ddp_free(ddp);
    nb_optim_free(o);
    nb_module_free(m);
    nb_tensor_free(x);
    nb_tensor_free(y);
    return 0;
}

/* Median time of the bucket allreduce of n floats (started, then waited for), in ns. */
static double allreduce_time(float *buf, int64_t n, int reps) {
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int r = -2; r < reps; r++) {
        nb_dist_barrier();
        double t0 = now_ns();
        void *req;
        if (nb__dist_iallreduce_host("bench", buf, n, &req) != NB_OK ||
            nb__dist_wait_host("bench", req, buf, n, NB_REDUCE_SUM) != NB_OK) {
            fprintf(stderr, "dist_bench: %s\n", nb_error_message());
            exit(1);
        }
        if (r >= 0) t[r] = now_ns() - t0;
    }
    double m = median(t, reps);
    free(t);
    return m;
}

static int bench_allreduce(void) {
    if (nb_dist_size() < 2) {
        fprintf(stderr, "dist_bench allreduce: start it with mpirun -np 2 (or more)\n");
        return 2;
    }
    enum { MAX_N = 1 << 22, SIZES = 12 };
    float *buf = calloc(MAX_N, sizeof(float));
    double sx = 0, sy = 0, sxx = 0, sxy = 0, lat = 0;
    int k = 0;
    if (nb_dist_rank() == 0) printf("allreduce over %d ranks (float32, median per call):\n", nb_dist_size());
    for (int i = 0; i < SIZES; i++) {
        int64_t n = (int64_t)1 << (2 * i); /* 1, 4, 16, ... 4M floats */
        double t = allreduce_time(buf, n, n >= (1 << 20) ? 5 : 20) / 1e9, bytes = 4.0 * (double)n;
        if (i == 0) lat = t;
        if (bytes >= 65536 && bytes <= 1 << 20) { /* the bandwidth term: least squares of t on
                                                      * bytes over the sizes of buckets */
            sx += bytes, sy += t, sxx += bytes * bytes, sxy += bytes * t;
            k++;
        }
        if (nb_dist_rank() == 0)
            printf("  %10.0f bytes  %10.1f us  %8.3f GB/s\n", bytes, t * 1e6, bytes / t / 1e9);
    }
    double slope = (k * sxy - sx * sy) / (k * sxx - sx * sx);
    if (nb_dist_rank() == 0)
        printf("fit: latency %.1f us, bandwidth %.3f GB/s (t = latency + bytes / bandwidth)\n", lat * 1e6,
               1 / slope / 1e9);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    nb_set_num_threads(1);
    bool group = nb_dist_init(&argc, &argv) == NB_OK; /* alone or without MPI: one rank */
    int rc = 2;
    if (argc > 1 && !strcmp(argv[1], "allreduce")) rc = bench_allreduce();
    else if (argc > 2 && !strcmp(argv[1], "step")) rc = bench_step(argc, argv);
    else fprintf(stderr, "usage: dist_bench allreduce | dist_bench step mlp|lenet [GLOBAL_BATCH [STEPS [BUCKET_BYTES]]]\n");
    if (group) nb_dist_finalize();
    return rc;
}
