/*
 * mpi.c — the MPI transport of process groups (dist.h), built where CMake finds MPI.  It works
 * on a duplicate of COMM_WORLD whose errors return instead of aborting, so a failing call
 * becomes nabla's error naming the MPI function, the rank and MPI's own words.
 */
#include "dist.h"

#include <limits.h>
#include <mpi.h>

static MPI_Comm comm = MPI_COMM_NULL;
static bool owns_mpi; /* nb_dist_init called MPI_Init, so finalize calls MPI_Finalize */
static int my_rank, my_size = 1;

static nb_status checked(int rc, const char *call) {
    if (rc == MPI_SUCCESS) return NB_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return nb__fail_status(NB_ERR_IO, "dist: rank %d of %d: %s: %.*s", my_rank, my_size, call,
                           len, msg);
}

/* MPI counts are ints: a larger buffer is refused rather than cut */
static bool count_ok(int64_t n, const char *call) {
    if (n <= INT_MAX) return true;
    return nb__fail(NB_ERR_ARG, "dist: rank %d: %s: %lld elements, more than MPI's int count",
                    my_rank, call, (long long)n), false;
}

static nb_status mpi_init(int *argc, char ***argv) {
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
    if (checked(MPI_Allreduce(both, out, 2 * k, MPI_INT64_T, MPI_MAX, comm), "MPI_Allreduce") != NB_OK)
        return nb_error_code();
    for (int i = 0; i < k; i++) {
        hi[i] = out[i];
        lo[i] = -out[k + i];
    }
    return NB_OK;
}

static nb_status mpi_allreduce_sum(float *buf, int64_t n) {
    if (!count_ok(n, "MPI_Allreduce")) return nb_error_code();
    return checked(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, comm),
                   "MPI_Allreduce");
}

static nb_status mpi_broadcast(float *buf, int64_t n, int root) {
    if (!count_ok(n, "MPI_Bcast")) return nb_error_code();
    return checked(MPI_Bcast(buf, (int)n, MPI_FLOAT, root, comm), "MPI_Bcast");
}

static nb_status mpi_allgather(float *out, const float *in, int64_t n) {
    if (!count_ok(n * my_size, "MPI_Allgather")) return nb_error_code();
    return checked(MPI_Allgather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, comm),
                   "MPI_Allgather");
}

static nb_status mpi_reduce_scatter_sum(float *out, const float *in, int64_t n) {
    if (!count_ok(n * my_size, "MPI_Reduce_scatter_block")) return nb_error_code();
    return checked(MPI_Reduce_scatter_block(in, out, (int)n, MPI_FLOAT, MPI_SUM, comm),
                   "MPI_Reduce_scatter_block");
}

static nb_status mpi_send(const float *buf, int64_t n, int dst) {
    if (!count_ok(n, "MPI_Send")) return nb_error_code();
    return checked(MPI_Send(buf, (int)n, MPI_FLOAT, dst, 0, comm), "MPI_Send");
}

/* The message's size is looked at before it is taken, so a sender of another count is an error
 * naming both, not a truncation. */
static nb_status mpi_recv(float *buf, int64_t n, int src) {
    if (!count_ok(n, "MPI_Recv")) return nb_error_code();
    MPI_Status status;
    int got = 0;
    if (checked(MPI_Probe(src, 0, comm, &status), "MPI_Probe") != NB_OK) return nb_error_code();
    MPI_Get_count(&status, MPI_FLOAT, &got);
    if (got != n) {
        MPI_Recv(NULL, 0, MPI_BYTE, src, 0, comm, MPI_STATUS_IGNORE); /* drop it: it is an error */
        return nb__fail_status(NB_ERR_SHAPE, "dist: recv: rank %d of %d expected %lld elements "
                               "from rank %d, which sent %d", my_rank, my_size, (long long)n, src, got);
    }
    return checked(MPI_Recv(buf, (int)n, MPI_FLOAT, src, 0, comm, MPI_STATUS_IGNORE), "MPI_Recv");
}

static nb_status mpi_barrier(void) { return checked(MPI_Barrier(comm), "MPI_Barrier"); }

const nb__dist_backend nb__dist_mpi = {
    .name = "mpi",
    .init = mpi_init,
    .finalize = mpi_finalize,
    .rank = mpi_rank,
    .size = mpi_size,
    .agree = mpi_agree,
    .allreduce_sum = mpi_allreduce_sum,
    .broadcast = mpi_broadcast,
    .allgather = mpi_allgather,
    .reduce_scatter_sum = mpi_reduce_scatter_sum,
    .send = mpi_send,
    .recv = mpi_recv,
    .barrier = mpi_barrier,
};
