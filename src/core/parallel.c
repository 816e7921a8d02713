/*
 * parallel.c — the thread pool behind nb__parallel_for (see parallel.h for the contract).
 *
 * One job at a time.  The job's description lives in one of two slots, chosen by the parity of
 * its generation number, and one 64-bit word holds (generation << 32 | pieces claimed from the
 * front << 16 | pieces claimed from the back).  The caller claims from the front (pieces 0, 1,
 * ...), the workers from the back (the last piece, the one before, ...), until the two meet.  A
 * thread claims a piece of generation g by compare-and-swap of the word it read to the word with
 * its count one higher, having read slot g % 2 in between: the swap succeeds only while
 * generation g is still current, and while it is, nobody writes slot g % 2 (generation g + 1
 * writes the other slot, and generation g + 2 cannot start before g + 1 is done), so a successful
 * claim always ran on g's description.  The caller then waits only for the pieces that others
 * claimed and have not finished: a worker that was asleep or descheduled when the job came
 * claims nothing.
 *
 * Why two ends: with two threads, each then handles the same end of every job from step to
 * step: the same rows of a weight in its update, of its gradient in the GEMM that makes it, of
 * its zeroing, which stay in that core's cache (the GEMMs cut C to match: src/backend/cpu/cpu.c,
 * cut_rows).  Claimed from one counter, the halves went to whichever thread came first, and each
 * step's weights and gradients crossed between the cores' caches: the course MLP's 2 threads
 * were no faster than 1 on 2 idle cores.
 *
 * Other processes' load.  Every 10 ms one caller reads how many threads are runnable on the
 * machine right now (/proc/loadavg's fourth field), less this pool's own awake threads, into a
 * moving average (weight 0.3 a sample, so a process that keeps a core busy counts fully within
 * about 50 ms, and a compiler run that lasts a moment barely).  Where there is no such file, the
 * 1-minute load average less this pool's threads stands in.
 *
 * Going solo.  When the other processes leave fewer than 1.5 cores free, a caller runs its jobs
 * alone, without waking the workers: waking a sleeping worker costs a futex call on every job,
 * and a worker that shares its core with another process is descheduled now and then in the
 * middle of a piece, which the caller must then wait for.  Measured on 2 cores: with one busy
 * process, 2 threads sharing every job ran 1.3-1.6x slower than 1 thread (which the scheduler
 * gives the free core); with two, 1.0-2.5x.  Alone the caller runs the same pieces in order, so
 * the bits do not depend on the load.  (OpenMP's dynamic mode makes the same choice from the
 * 1-minute load average, which takes a minute to notice a busy process.)  NB_SHARE=always or
 * never in the environment overrides the choice; the test suite runs with always, so that the
 * workers are exercised however busy the test machine is.
 *
 * Waiting.  After each job a worker spins, then sleeps on a condition variable.  A training step
 * issues its jobs tens of microseconds apart and a wake-up through the kernel costs as much (more
 * from a deep idle state), so on an idle machine a worker that spins through a step is what makes
 * 2 threads faster than 1; on a machine whose cores are busy a spinning thread takes time from
 * the one doing the work (measured with two busy processes on two cores: a 100 us spin made 2
 * threads 1.28x slower than 1, a 20 us one 0.9x).  So the spin is long while the other processes'
 * load is under half a core, and short otherwise.
 *
 * Sharing the caller's core.  A worker woken through the kernel is placed beside its waker when
 * the scheduler thinks that cache-friendly, and may stay there: then its spin takes half the
 * caller's core while the other core idles, and every job waits for a time slice (measured on 2
 * idle cores: one run in three of 157 steps went so, at half the 1-thread speed).  A worker that
 * finds itself on the caller's core therefore moves off it: it narrows its affinity to the
 * other cores it may use, which migrates it at once, then widens it back, which leaves it where
 * it is.
 */
#include "parallel.h"

#include "nabla.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define MAX_THREADS 256
#define PIECES_PER_THREAD 4 /* more pieces than threads: a late thread still finds work */
#define MAX_PIECES 0xffff   /* a job shared out: the claim counts are 16 bits each */
#define SPIN_IDLE_NS 200000 /* a worker's spin before it sleeps, on an idle machine */
#define SPIN_BUSY_NS 20000  /* and on a busy one */
#define LOAD_EVERY_NS 10000000
#define LOAD_WEIGHT 0.3     /* of a new sample in the moving average */
#define SOLO_BELOW 1.5      /* free cores under which a caller runs its jobs alone */
#define CALLER_SPIN 4000    /* pause iterations before the caller yields its core */

typedef struct {
    _Atomic(nb__range_fn *) fn;
    _Atomic(void *) ctx;
    _Atomic int64_t n, pieces;
} job_slot;

static struct {
    pthread_mutex_t job_mu; /* held by the one caller whose job is in flight */
    pthread_mutex_t sleep_mu;
    pthread_cond_t wake;
    _Atomic uint64_t state;  /* generation << 32 | next piece */
    _Atomic uint32_t seq;    /* bumped at each job: what sleeping workers wait on */
    _Atomic int64_t done;    /* pieces of the current job finished */
    _Atomic int sleepers, want; /* want: the thread count set; 0 until first asked */
    _Atomic int caller_cpu;     /* the core the last job's caller ran on */
    _Atomic bool quit;          /* set at exit: workers return */
    _Atomic int started;    /* workers running (only the caller holding job_mu starts more; a
                             * worker reads it for the load) */
    pthread_t workers[MAX_THREADS];
    job_slot slot[2];
} pool = {.job_mu = PTHREAD_MUTEX_INITIALIZER, .sleep_mu = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER, .caller_cpu = -1};

static _Thread_local bool in_piece;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The cores this process may run on (its affinity mask, which taskset and cgroup cpusets set). */
static int usable_cores(void) {
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int nb__threads(void) {
    int w = atomic_load_explicit(&pool.want, memory_order_relaxed);
    if (w == 0) {
        w = usable_cores();
        if (w > MAX_THREADS) w = MAX_THREADS;
        int zero = 0;
        if (!atomic_compare_exchange_strong(&pool.want, &zero, w)) w = zero;
    }
    return w;
}

bool nb__in_parallel(void) { return in_piece; }

int nb_get_num_threads(void) { return nb__threads(); }

void nb_set_num_threads(int n) {
    atomic_store(&pool.want, n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n);
}

/* Claims and runs pieces of the current job until none is left, from the front (the caller)
 * or the back (a worker). */
static void work(bool from_back) {
    in_piece = true;
    for (;;) {
        uint64_t s = atomic_load_explicit(&pool.state, memory_order_acquire);
        const job_slot *j = &pool.slot[(s >> 32) & 1];
        int64_t front = (int64_t)((s >> 16) & 0xffff), back = (int64_t)(s & 0xffff);
        int64_t pieces = atomic_load_explicit(&j->pieces, memory_order_relaxed);
        if (front + back >= pieces) break;
        nb__range_fn *fn = atomic_load_explicit(&j->fn, memory_order_relaxed);
        void *ctx = atomic_load_explicit(&j->ctx, memory_order_relaxed);
        int64_t n = atomic_load_explicit(&j->n, memory_order_relaxed);
        int64_t i = from_back ? pieces - 1 - back : front;
        if (!atomic_compare_exchange_weak_explicit(&pool.state, &s, s + (from_back ? 1 : 1u << 16),
                                                   memory_order_acq_rel, memory_order_relaxed))
            continue;
        fn(ctx, n * i / pieces, n * (i + 1) / pieces);
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
    }
    in_piece = false;
}

/* Threads of other processes runnable now: /proc/loadavg's "running/total" less this pool's
 * awake threads (the reader itself and the workers not asleep), or, without that file, the
 * 1-minute load average less the pool's threads; -1 when neither can be read. */
static double others_runnable(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    int running = 0;
    bool ok = f && fscanf(f, "%*f %*f %*f %d", &running) == 1;
    if (f) fclose(f);
    int awake = 1 + pool.started - atomic_load_explicit(&pool.sleepers, memory_order_relaxed);
    if (ok) return running - awake > 0 ? running - awake : 0;
    double load[1];
    return getloadavg(load, 1) == 1 ? (load[0] - nb__threads() > 0 ? load[0] - nb__threads() : 0) : -1;
}

/* What the machine's load says (see the file comment), refreshed by one thread every
 * LOAD_EVERY_NS from the moving average of others_runnable: the workers' spin, and whether a
 * caller runs its jobs alone. */
static struct {
    _Atomic int64_t checked, spin;
    _Atomic bool solo;
    _Atomic double average; /* written only by the thread that won `checked` */
} load = {.spin = SPIN_BUSY_NS};

static void read_load(void) {
    int64_t now = now_ns(), last = atomic_load_explicit(&load.checked, memory_order_relaxed);
    if (now - last <= LOAD_EVERY_NS || !atomic_compare_exchange_strong(&load.checked, &last, now))
        return;
    double r = others_runnable();
    if (r < 0) return;
    double a = atomic_load_explicit(&load.average, memory_order_relaxed);
    a = last == 0 ? r : a + LOAD_WEIGHT * (r - a); /* the first reading stands alone */
    atomic_store_explicit(&load.average, a, memory_order_relaxed);
    atomic_store_explicit(&load.spin, a < 0.5 ? SPIN_IDLE_NS : SPIN_BUSY_NS, memory_order_relaxed);
    atomic_store_explicit(&load.solo, usable_cores() - a < SOLO_BELOW, memory_order_relaxed);
}

static int64_t spin_ns(void) {
    read_load();
    return atomic_load_explicit(&load.spin, memory_order_relaxed);
}

/* The policy: NB_SHARE in the environment (load, always or never) until a test sets one; -1
 * until first read. */
static _Atomic int share_policy = -1;

void nb__set_share_policy(nb__share_policy policy) { atomic_store(&share_policy, (int)policy); }

static nb__share_policy policy_from_env(void) {
    const char *v = getenv("NB_SHARE");
    if (v && strcmp(v, "always") == 0) return NB__SHARE_ALWAYS;
    if (v && strcmp(v, "never") == 0) return NB__SHARE_NEVER;
    return NB__SHARE_BY_LOAD;
}

static bool go_solo(void) {
    int policy = atomic_load_explicit(&share_policy, memory_order_relaxed);
    if (policy < 0) {
        int unset = -1;
        atomic_compare_exchange_strong(&share_policy, &unset, (int)policy_from_env());
        policy = atomic_load(&share_policy);
    }
    if (policy != NB__SHARE_BY_LOAD) return policy == NB__SHARE_NEVER;
    read_load();
    return atomic_load_explicit(&load.solo, memory_order_relaxed);
}

/* Moves the calling worker off the caller's core when it is on it (see the file comment). */
static void leave_caller_core(void) {
#ifdef CPU_COUNT
    int cpu = sched_getcpu(), caller = atomic_load_explicit(&pool.caller_cpu, memory_order_relaxed);
    cpu_set_t mine, others;
    if (cpu < 0 || cpu != caller || sched_getaffinity(0, sizeof mine, &mine) != 0) return;
    others = mine;
    CPU_CLR(cpu, &others);
    if (CPU_COUNT(&others) > 0 && sched_setaffinity(0, sizeof others, &others) == 0)
        sched_setaffinity(0, sizeof mine, &mine);
#endif
}

static void *worker_main(void *arg) {
    int index = (int)(intptr_t)arg; /* worker k is the (k + 2)th thread */
    uint32_t seen = atomic_load(&pool.seq);
    for (;;) {
        int64_t until = now_ns() + spin_ns();
        for (int spins = 1; atomic_load_explicit(&pool.seq, memory_order_acquire) == seen; spins++) {
            cpu_relax();
            if (spins % 64 == 0) { /* the clock and core reads cost ~20 ns each */
                if (now_ns() > until) break;
                leave_caller_core();
            }
        }
        if (atomic_load(&pool.seq) == seen) {
            pthread_mutex_lock(&pool.sleep_mu);
            atomic_fetch_add(&pool.sleepers, 1);
            while (atomic_load(&pool.seq) == seen && !atomic_load(&pool.quit))
                pthread_cond_wait(&pool.wake, &pool.sleep_mu);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.sleep_mu);
        }
        if (atomic_load(&pool.quit)) return NULL;
        seen = atomic_load(&pool.seq);
        if (index + 1 < atomic_load_explicit(&pool.want, memory_order_relaxed)) {
            leave_caller_core(); /* a worker just woken is often put beside its waker */
            work(true);
        }
    }
    return NULL;
}

/* Starts workers up to the thread count less the caller; false when none could be started. */
static bool ensure_workers(int threads) {
    while (pool.started < threads - 1 &&
           pthread_create(&pool.workers[pool.started], NULL, worker_main, (void *)(intptr_t)pool.started) == 0)
        pool.started++;
    return pool.started > 0;
}

/* At exit the workers are woken, told to return and joined, so that nothing of theirs is left
 * for leak checkers (valgrind) to report; unless another thread is inside a job right then. */
__attribute__((destructor)) static void stop_workers(void) {
    if (pthread_mutex_trylock(&pool.job_mu) != 0) return; /* no job in flight from here on */
    pthread_mutex_lock(&pool.sleep_mu);
    atomic_store(&pool.quit, true);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.sleep_mu);
    for (int i = 0; i < pool.started; i++) pthread_join(pool.workers[i], NULL);
    pool.started = 0;
    pthread_mutex_unlock(&pool.job_mu);
}

static void run_pieces(int64_t n, int64_t pieces, nb__range_fn *fn, void *ctx) {
    uint64_t gen = (atomic_load_explicit(&pool.state, memory_order_relaxed) >> 32) + 1;
    job_slot *j = &pool.slot[gen & 1];
    atomic_store_explicit(&j->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&j->ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&j->n, n, memory_order_relaxed);
    atomic_store_explicit(&j->pieces, pieces, memory_order_relaxed);
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    atomic_store_explicit(&pool.caller_cpu, sched_getcpu(), memory_order_relaxed);
    atomic_store_explicit(&pool.state, (gen & 0xffffffffu) << 32, memory_order_release);
    atomic_fetch_add(&pool.seq, 1);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.sleep_mu);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.sleep_mu);
    }
    work(false);
    for (int spins = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < pieces;)
        if (spins++ < CALLER_SPIN) cpu_relax();
        else sched_yield(); /* a worker holding a piece was descheduled: let it run */
}

/* The pieces one after another on the calling thread, which is then inside a piece. */
static void run_alone(int64_t n, int64_t pieces, nb__range_fn *fn, void *ctx) {
    bool outer = in_piece;
    in_piece = true;
    for (int64_t i = 0; i < pieces; i++) fn(ctx, n * i / pieces, n * (i + 1) / pieces);
    in_piece = outer;
}

static void share(int64_t n, int64_t pieces, nb__range_fn *fn, void *ctx) {
    if (pieces > 1 && pieces <= MAX_PIECES && !in_piece && !go_solo() &&
        pthread_mutex_trylock(&pool.job_mu) == 0) {
        if (ensure_workers(nb__threads())) {
            run_pieces(n, pieces, fn, ctx);
            pthread_mutex_unlock(&pool.job_mu);
            return;
        }
        pthread_mutex_unlock(&pool.job_mu);
    }
    run_alone(n, pieces, fn, ctx);
}

void nb__parallel_for(bool parallel, int64_t n, nb__range_fn *fn, void *ctx) {
    int threads = parallel && n > 1 ? nb__threads() : 1;
    if (threads == 1) {
        if (n > 0) fn(ctx, 0, n);
        return;
    }
    int64_t pieces = (int64_t)threads * PIECES_PER_THREAD;
    share(n, pieces < n ? pieces : n, fn, ctx);
}

void nb__parallel_each(int64_t n, nb__range_fn *fn, void *ctx) {
    if (n == 1 || nb__threads() == 1) {
        for (int64_t i = 0; i < n; i++) fn(ctx, i, i + 1);
        return;
    }
    share(n, n, fn, ctx);
}
