/*
 * test_parallel.c — the thread pool (src/core/parallel.c): every index runs exactly once at any
 * thread count, pieces depend only on the thread count (not on whether the caller shares them
 * with the workers or runs them alone, as it does when other processes hold the cores), nested
 * and concurrent calls run, and the default thread count is the set of cores the process may
 * use.  The workers are always used here (NB__SHARE_ALWAYS) unless a test says otherwise, so that
 * a busy test machine does not leave them untested.
 */
#include "check.h"
#include "core/parallel.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define N 10007

typedef struct {
    _Atomic int hits[N];
    _Atomic int64_t calls;
    _Atomic int nested_ok;
} tally;

static void count(void *arg, int64_t lo, int64_t hi) {
    tally *t = arg;
    for (int64_t i = lo; i < hi; i++) atomic_fetch_add(&t->hits[i], 1);
    atomic_fetch_add(&t->calls, 1);
}

static bool each_hit_once(tally *t, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (atomic_load(&t->hits[i]) != 1) return false;
    return true;
}

static void parallel_for_runs_every_index_once_at_any_thread_count(void) {
    static const int threads[] = {1, 2, 3, 8, 33};
    static tally t;
    for (int k = 0; k < 5; k++) {
        nb_set_num_threads(threads[k]);
        CHECK_EQ_INT(nb__threads(), threads[k]);
        for (int rep = 0; rep < 50; rep++) { /* back-to-back jobs, as a training step makes */
            memset(&t, 0, sizeof t);
            nb__parallel_for(true, N, count, &t);
            CHECK(each_hit_once(&t, N));
        }
        memset(&t, 0, sizeof t);
        nb__parallel_for(false, N, count, &t); /* not parallel: one call over everything */
        CHECK(each_hit_once(&t, N));
        CHECK_EQ_INT(atomic_load(&t.calls), 1);
    }
}

/* Pieces are fixed by n and the thread count: record them and compare over repetitions. */
typedef struct {
    _Atomic int64_t end_of[N + 1]; /* end_of[lo] = hi for each piece */
} pieces;

static void record(void *arg, int64_t lo, int64_t hi) { atomic_store(&((pieces *)arg)->end_of[lo], hi); }

static void pieces_depend_only_on_the_thread_count(void) {
    static pieces first, again;
    nb_set_num_threads(3);
    memset(&first, 0, sizeof first);
    nb__parallel_for(true, N, record, &first);
    for (int rep = 0; rep < 20; rep++) {
        memset(&again, 0, sizeof again);
        nb__parallel_for(true, N, record, &again);
        CHECK(memcmp(&first, &again, sizeof first) == 0);
    }
}

static void pieces_are_the_same_alone_and_shared(void) {
    static pieces shared, alone;
    nb_set_num_threads(4);
    memset(&shared, 0, sizeof shared), memset(&alone, 0, sizeof alone);
    nb__parallel_for(true, N, record, &shared);
    nb__set_share_policy(NB__SHARE_NEVER);
    nb__parallel_for(true, N, record, &alone);
    nb__set_share_policy(NB__SHARE_ALWAYS);
    CHECK(memcmp(&shared, &alone, sizeof shared) == 0);
}

/* Which threads ran pieces, and whether each piece ran inside a piece. */
typedef struct {
    pthread_t caller;
    _Atomic int other_threads, outside;
} runners;

static void note_runner(void *arg, int64_t lo, int64_t hi) {
    runners *r = arg;
    (void)lo, (void)hi;
    if (!pthread_equal(pthread_self(), r->caller)) atomic_fetch_add(&r->other_threads, 1);
    if (!nb__in_parallel()) atomic_fetch_add(&r->outside, 1);
}

static void alone_the_caller_runs_every_piece_inside_a_piece(void) {
    static runners r;
    nb_set_num_threads(2);
    nb__set_share_policy(NB__SHARE_NEVER);
    r = (runners){.caller = pthread_self()};
    for (int rep = 0; rep < 100; rep++) nb__parallel_for(true, N, note_runner, &r);
    nb__set_share_policy(NB__SHARE_ALWAYS);
    CHECK_EQ_INT(atomic_load(&r.other_threads), 0);
    CHECK_EQ_INT(atomic_load(&r.outside), 0);
    CHECK(!nb__in_parallel());
}

static void one(void *arg, int64_t lo, int64_t hi) {
    tally *t = arg;
    if (hi == lo + 1) atomic_fetch_add(&t->hits[lo], 1);
}

static void parallel_each_gives_every_index_its_own_piece(void) {
    static tally t;
    nb_set_num_threads(2);
    memset(&t, 0, sizeof t);
    nb__parallel_each(7, one, &t);
    CHECK(each_hit_once(&t, 7));
}

/* More pieces than the pool's 16-bit claim counts hold: run on the caller, each once. */
enum { BIG = 0xffff + 100 };
static void one_big(void *arg, int64_t lo, int64_t hi) {
    _Atomic int *hits = arg;
    if (hi == lo + 1) atomic_fetch_add(&hits[lo], 1);
}

static void a_job_of_more_pieces_than_the_claims_count_runs_each_once(void) {
    static _Atomic int hits[BIG];
    nb_set_num_threads(2);
    nb__parallel_each(BIG, one_big, hits);
    int once = 0;
    for (int i = 0; i < BIG; i++) once += atomic_load(&hits[i]) == 1;
    CHECK_EQ_INT(once, BIG);
}

static void inner(void *arg, int64_t lo, int64_t hi) {
    tally *t = arg;
    if (!nb__in_parallel()) return;
    for (int64_t i = lo; i < hi; i++) atomic_fetch_add(&t->hits[i], 1);
}

static void outer(void *arg, int64_t lo, int64_t hi) {
    tally *t = arg;
    for (int64_t i = lo; i < hi; i++) {
        static tally sub[64];
        memset(&sub[i], 0, sizeof sub[i]);
        nb__parallel_for(true, 100, inner, &sub[i]); /* runs inline: this thread is in a piece */
        if (each_hit_once(&sub[i], 100)) atomic_fetch_add(&t->nested_ok, 1);
    }
}

static void calls_inside_a_piece_run_inline(void) {
    static tally t;
    nb_set_num_threads(2);
    memset(&t, 0, sizeof t);
    nb__parallel_for(true, 64, outer, &t);
    CHECK_EQ_INT(atomic_load(&t.nested_ok), 64);
    CHECK(!nb__in_parallel());
}

static void *caller(void *arg) {
    tally *t = arg;
    for (int rep = 0; rep < 200; rep++) nb__parallel_for(true, N, count, t);
    return NULL;
}

static void calls_from_two_threads_at_once_all_complete(void) {
    static tally a, b;
    nb_set_num_threads(2);
    memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, caller, &a);
    pthread_create(&tb, NULL, caller, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    bool ok = true;
    for (int64_t i = 0; i < N; i++) ok = ok && atomic_load(&a.hits[i]) == 200 && atomic_load(&b.hits[i]) == 200;
    CHECK(ok);
}

static void thread_count_is_clamped_to_at_least_one(void) {
    nb_set_num_threads(0);
    CHECK_EQ_INT(nb_get_num_threads(), 1);
    nb_set_num_threads(-5);
    CHECK_EQ_INT(nb_get_num_threads(), 1);
}

int main(void) {
    /* first, before any setting: the cores in this process's affinity mask */
    cpu_set_t set;
    CHECK(sched_getaffinity(0, sizeof set, &set) == 0);
    CHECK_EQ_INT(nb_get_num_threads(), CPU_COUNT(&set));
    nb__set_share_policy(NB__SHARE_ALWAYS);
    parallel_for_runs_every_index_once_at_any_thread_count();
    pieces_depend_only_on_the_thread_count();
    pieces_are_the_same_alone_and_shared();
    alone_the_caller_runs_every_piece_inside_a_piece();
    parallel_each_gives_every_index_its_own_piece();
    a_job_of_more_pieces_than_the_claims_count_runs_each_once();
    calls_inside_a_piece_run_inline();
    calls_from_two_threads_at_once_all_complete();
    thread_count_is_clamped_to_at_least_one();
    return check_summary();
}
