/*
 * mpi.c — the MPI transport of process groups (dist.h), built where CMake finds MPI.  It works
 * on a duplicate of COMM_WORLD whose errors return instead of aborting, so a failing call
 * becomes nabla's error naming the MPI function, the rank and MPI's own words.
 *
 * Every call is MPI's non-blocking form, waited for with a deadline (NB_DIST_TIMEOUT seconds,
 * default 600, torch's NCCL default): a rank that died, hangs, or called something else leaves
 * the others waiting in a blocking call for ever, whereas here the first to pass the deadline
 * says which call on which rank found no answer and ends the job (MPI_Abort), as torch's
 * watchdog does.
 */
#include "dist.h"

#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdlib.h>

static MPI_Comm comm = MPI_COMM_NULL;
static bool owns_mpi; /* nb_dist_init called MPI_Init, so finalize calls MPI_Finalize */
static int my_rank, my_size = 1;
static double timeout_s = 600;

static nb_status checked(int rc, const char *call) {
    if (rc == MPI_SUCCESS) return NB_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return nb__fail_status(NB_ERR_IO, "dist: rank %d of %d: %s: %.*s", my_rank, my_size, call,
                           len, msg);
}

/* Ends the job when a call started at `start` has passed the deadline (see the top of this
 * file). */
static void deadline(double start, const char *call) {
    if (MPI_Wtime() - start <= timeout_s) return;
    fprintf(stderr, "nabla: dist: rank %d of %d: %s: no answer from the other ranks after %g s "
            "(NB_DIST_TIMEOUT): a rank died or called something else; ending the job\n", my_rank,
            my_size, call, timeout_s);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* Waits for req until the deadline.  Between tests the core is offered to other threads: ranks
 * oversubscribed on a machine's cores (or sharing them with other jobs) would otherwise spin
 * while the rank they wait for cannot run. */
static nb_status finish(MPI_Request *req, const char *call) {
    double start = MPI_Wtime();
    for (;;) {
        int done = 0, rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS || done) return checked(rc, call);
        deadline(start, call);
        sched_yield();
    }
}

/* started = the return code of a non-blocking call on req; then its end */
static nb_status started(int rc, MPI_Request *req, const char *call) {
    return rc == MPI_SUCCESS ? finish(req, call) : checked(rc, call);
}

/* NB_DIST_TIMEOUT: seconds > 0, or unset */
static nb_status read_timeout(void) {
    const char *v = getenv("NB_DIST_TIMEOUT");
    if (!v) return NB_OK;
    char *end;
    double t = strtod(v, &end);
    if (end == v || *end || !(t > 0))
        return nb__fail_status(NB_ERR_ARG, "dist: init: NB_DIST_TIMEOUT=\"%s\" is not a number of "
                               "seconds > 0", v);
    timeout_s = t;
    return NB_OK;
}

/* MPI counts are ints: a larger buffer is refused rather than cut */
static bool count_ok(int64_t n, const char *call) {
    if (n <= INT_MAX) return true;
    return nb__fail(NB_ERR_ARG, "dist: rank %d: %s: %lld elements, more than MPI's int count",
                    my_rank, call, (long long)n), false;
}

static nb_status mpi_init(int *argc, char ***argv) {
    if (read_timeout() != NB_OK) return nb_error_code();
    int already = 0;
    MPI_Initialized(&already);
    if (!already && checked(MPI_Init(argc, argv), "MPI_Init") != NB_OK) return nb_error_code();
    owns_mpi = !already;
    if (checked(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup") != NB_OK)
        return nb_error_code();
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm, &my_rank);
    MPI_Comm_size(comm, &my_size);
    return NB_OK;
}

static nb_status mpi_finalize(void) {
    MPI_Comm_free(&comm);
    nb_status st = owns_mpi ? checked(MPI_Finalize(), "MPI_Finalize") : NB_OK;
    my_rank = 0;
    my_size = 1;
    return st;
}

static int mpi_rank(void) { return my_rank; }
static int mpi_size(void) { return my_size; }

/* one MAX over [v, -v]: the greatest of each value and the negated least */
static nb_status mpi_agree(const int64_t *v, int k, int64_t *lo, int64_t *hi) {
    int64_t both[2 * (2 + NB_MAX_DIMS)] = {0}, out[2 * (2 + NB_MAX_DIMS)];
    if (k > 2 + NB_MAX_DIMS) return nb__fail_status(NB_ERR_ARG, "dist: agree: %d values", k);
    for (int i = 0; i < k; i++) {
        both[i] = v[i];
        both[k + i] = -v[i];
    }
    MPI_Request req;
    if (started(MPI_Iallreduce(both, out, 2 * k, MPI_INT64_T, MPI_MAX, comm, &req), &req,
                "MPI_Iallreduce") != NB_OK)
        return nb_error_code();
    for (int i = 0; i < k; i++) {
        hi[i] = out[i];
        lo[i] = -out[k + i];
    }
    return NB_OK;
}

static nb_status mpi_allreduce_sum(float *buf, int64_t n) {
    MPI_Request req;
    if (!count_ok(n, "MPI_Iallreduce")) return nb_error_code();
    return started(MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, comm, &req), &req,
                   "MPI_Iallreduce");
}

/* The request lives in counted memory until mpi_wait */
static nb_status mpi_iallreduce_sum(float *buf, int64_t n, void **req) {
    *req = NULL;
    if (!count_ok(n, "MPI_Iallreduce")) return nb_error_code();
    MPI_Request *r = nb__alloc(sizeof *r);
    if (!r) return nb_error_code();
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, comm, r);
    if (rc != MPI_SUCCESS) {
        nb__dealloc(r, sizeof *r);
        return checked(rc, "MPI_Iallreduce");
    }
    *req = r;
    return NB_OK;
}

static nb_status mpi_wait(void *req) {
    nb_status st = finish(req, "MPI_Iallreduce");
    nb__dealloc(req, sizeof(MPI_Request));
    return st;
}

/* MPI_Test on a finished request sets it to MPI_REQUEST_NULL, which a later wait finds done */
static nb_status mpi_progress(void *req, bool *done) {
    int flag = 0;
    nb_status st = checked(MPI_Test(req, &flag, MPI_STATUS_IGNORE), "MPI_Test");
    *done = flag != 0;
    return st;
}

static nb_status mpi_broadcast(float *buf, int64_t n, int root) {
    MPI_Request req;
    if (!count_ok(n, "MPI_Ibcast")) return nb_error_code();
    return started(MPI_Ibcast(buf, (int)n, MPI_FLOAT, root, comm, &req), &req, "MPI_Ibcast");
}

static nb_status mpi_allgather(float *out, const float *in, int64_t n) {
    MPI_Request req;
    if (!count_ok(n * my_size, "MPI_Iallgather")) return nb_error_code();
    return started(MPI_Iallgather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, comm, &req), &req,
                   "MPI_Iallgather");
}

static nb_status mpi_reduce_scatter_sum(float *out, const float *in, int64_t n) {
    MPI_Request req;
    if (!count_ok(n * my_size, "MPI_Ireduce_scatter_block")) return nb_error_code();
    return started(MPI_Ireduce_scatter_block(in, out, (int)n, MPI_FLOAT, MPI_SUM, comm, &req), &req,
                   "MPI_Ireduce_scatter_block");
}

static nb_status mpi_send(const float *buf, int64_t n, int dst) {
    MPI_Request req;
    if (!count_ok(n, "MPI_Isend")) return nb_error_code();
    return started(MPI_Isend(buf, (int)n, MPI_FLOAT, dst, 0, comm, &req), &req, "MPI_Isend");
}

/* The message's size is looked at before it is taken, so a sender of another count is an error
 * naming both, not a truncation. */
static nb_status mpi_recv(float *buf, int64_t n, int src) {
    if (!count_ok(n, "MPI_Irecv")) return nb_error_code();
    MPI_Status status;
    MPI_Message msg;
    MPI_Request req;
    int got = 0, found = 0;
    double start = MPI_Wtime();
    while (!found) { /* MPI_Improbe has no request: the deadline is kept here */
        if (checked(MPI_Improbe(src, 0, comm, &found, &msg, &status), "MPI_Improbe") != NB_OK)
            return nb_error_code();
        if (!found) deadline(start, "MPI_Improbe"), sched_yield();
    }
    MPI_Get_count(&status, MPI_FLOAT, &got);
    if (got != n) {
        float *sink = nb__alloc(sizeof(float) * (size_t)(got > 0 ? got : 1)); /* drop it */
        MPI_Mrecv(sink, sink ? got : 0, MPI_FLOAT, &msg, MPI_STATUS_IGNORE);
        if (sink) nb__dealloc(sink, sizeof(float) * (size_t)(got > 0 ? got : 1));
        return nb__fail_status(NB_ERR_SHAPE, "dist: recv: rank %d of %d expected %lld elements "
                               "from rank %d, which sent %d", my_rank, my_size, (long long)n, src, got);
    }
    return started(MPI_Imrecv(buf, (int)n, MPI_FLOAT, &msg, &req), &req, "MPI_Imrecv");
}

/* The request lives in counted memory until mpi_wait, as mpi_iallreduce_sum's */
static nb_status mpi_isend(const float *buf, int64_t n, int dst, void **req) {
    *req = NULL;
    if (!count_ok(n, "MPI_Isend")) return nb_error_code();
    MPI_Request *r = nb__alloc(sizeof *r);
    if (!r) return nb_error_code();
    int rc = MPI_Isend(buf, (int)n, MPI_FLOAT, dst, 0, comm, r);
    if (rc != MPI_SUCCESS) {
        nb__dealloc(r, sizeof *r);
        return checked(rc, "MPI_Isend");
    }
    *req = r;
    return NB_OK;
}

static nb_status mpi_barrier(void) {
    MPI_Request req;
    return started(MPI_Ibarrier(comm, &req), &req, "MPI_Ibarrier");
}

const nb__dist_backend nb__dist_mpi = {
    .name = "mpi",
    .init = mpi_init,
    .finalize = mpi_finalize,
    .rank = mpi_rank,
    .size = mpi_size,
    .agree = mpi_agree,
    .allreduce_sum = mpi_allreduce_sum,
    .iallreduce_sum = mpi_iallreduce_sum,
    .wait = mpi_wait,
    .progress = mpi_progress,
    .broadcast = mpi_broadcast,
    .allgather = mpi_allgather,
    .reduce_scatter_sum = mpi_reduce_scatter_sum,
    .send = mpi_send,
    .recv = mpi_recv,
    .barrier = mpi_barrier,
    .isend = mpi_isend,
};
