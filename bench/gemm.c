/*
 * gemm.c — the GEMMs of the course MLP's training step (Linear 784-64-64-10, batch 64: three
 * forward products x W^T, and each layer's backward products g W and g^T x, the first layer's
 * dx excepted: 8 shapes), single-threaded, as shares of the core's measured FP32 FMA peak:
 * nabla's backend GEMM (its small-matrix kernels where they are used) against OpenBLAS's
 * cblas_sgemm called directly.  Square sizes follow, which show where the small-matrix path hands
 * over to OpenBLAS.
 *
 * Peak: a loop of independent vector FMAs (12 chains of AVX-512, or AVX2 without it), which is
 * what a core can do at most; a GEMM's share of it is its efficiency.  Times are process CPU
 * time (a shared machine's waits excluded); each figure is the median of REPS samples, nabla's
 * and OpenBLAS's samples interleaved, a sample being enough calls to last ~5 ms.  MIN=1 in the
 * environment reports instead the minimum of MIN_REPS short samples (~0.2 ms: a 10-40 us GEMM
 * then mostly runs inside one scheduler slice), steadier on a busy machine, where the median
 * carries the other processes' cache and frequency noise.  The peak is sampled between the GEMM
 * samples, under the same clock, and summarised the same way: the median of its samples beside
 * the GEMMs' medians, the best beside their minima.  (The best of ~100 peak runs against the
 * GEMMs' medians, as before, moved the shares by up to 7 % from run to run on this VM, whose
 * core clock wanders: the best peak run catches the fastest clock of the whole run.)
 *
 * Output: a table and "@peak gflops=.." / "@gemm shape=.. nabla_gflops=.. blas_gflops=..
 * nabla_share=.. blas_share=.." lines; "@gemm_step" sums the 8 step shapes (their flops over
 * their times), the Bar's figure.
 */
#include "nabla.h"
#include "bench.h"
#include "backend/cpu/cpu.h"

#include <cblas.h>
#include <immintrin.h>

#define REPS 9
#define SAMPLE_NS 5e6
#define MIN_REPS 61
#define MIN_SAMPLE_NS 2e5

static bool by_min; /* MIN=1: minimum of MIN_REPS short samples, not the median of REPS */

typedef struct {
    const char *name;
    bool ta, tb;
    int64_t m, n, k;
    float beta;
} shape;

static const shape step[] = {
    {"fwd1 x W1^T", false, true, 64, 64, 784, 1.0f},   {"fwd2 x W2^T", false, true, 64, 64, 64, 1.0f},
    {"fwd3 x W3^T", false, true, 64, 10, 64, 1.0f},    {"bwd3 g W3", false, false, 64, 64, 10, 0.0f},
    {"bwd3 g^T x", true, false, 10, 64, 64, 0.0f},     {"bwd2 g W2", false, false, 64, 64, 64, 0.0f},
    {"bwd2 g^T x", true, false, 64, 64, 64, 0.0f},     {"bwd1 g^T x", true, false, 64, 784, 64, 0.0f},
};

/* 12 independent chains (two FMA units of 4 cycles' latency need 8), as named variables with
 * distinct starting values: in an array gcc keeps them in memory, and equal chains it merges. */
#define STEP(x) x = F(x)
#define STEPS STEP(a0); STEP(a1); STEP(a2); STEP(a3); STEP(a4); STEP(a5); STEP(a6); STEP(a7); \
              STEP(a8); STEP(a9); STEP(a10); STEP(a11)
#define SUM(add) add(add(add(a0, a1), add(a2, a3)), add(add(a4, a5), add(add(a6, a7), add(add(a8, a9), add(a10, a11)))))

__attribute__((target("avx512f,fma"))) static float fma_loop_avx512(int64_t iters) {
    const __m512 x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.9999999f);
#define CHAIN(i) _mm512_set1_ps(1.0f + (float)(i) / 64)
    __m512 a0 = CHAIN(0), a1 = CHAIN(1), a2 = CHAIN(2), a3 = CHAIN(3), a4 = CHAIN(4), a5 = CHAIN(5), a6 = CHAIN(6), a7 = CHAIN(7);
    __m512 a8 = CHAIN(8), a9 = CHAIN(9), a10 = CHAIN(10), a11 = CHAIN(11);
#undef CHAIN
#define F(v) _mm512_fmadd_ps(v, x, y)
    for (int64_t it = 0; it < iters; it++) {
        STEPS;
    }
#undef F
    return _mm512_reduce_add_ps(SUM(_mm512_add_ps));
}

__attribute__((target("avx2,fma"))) static float fma_loop_avx2(int64_t iters) {
    const __m256 x = _mm256_set1_ps(1.0000001f), y = _mm256_set1_ps(0.9999999f);
#define CHAIN(i) _mm256_set1_ps(1.0f + (float)(i) / 64)
    __m256 a0 = CHAIN(0), a1 = CHAIN(1), a2 = CHAIN(2), a3 = CHAIN(3), a4 = CHAIN(4), a5 = CHAIN(5), a6 = CHAIN(6), a7 = CHAIN(7);
    __m256 a8 = CHAIN(8), a9 = CHAIN(9), a10 = CHAIN(10), a11 = CHAIN(11);
#undef CHAIN
#define F(v) _mm256_fmadd_ps(v, x, y)
    for (int64_t it = 0; it < iters; it++) {
        STEPS;
    }
#undef F
    float out[8], s = 0;
    _mm256_storeu_ps(out, SUM(_mm256_add_ps));
    for (int i = 0; i < 8; i++) s += out[i];
    return s;
}

static volatile float sink;

/* The peak's samples, taken between the GEMMs' (see the file comment). */
#define MAX_PEAKS 2048
static double peaks[MAX_PEAKS];
static int n_peaks;

/* One sample of one core's FMA rate, GFLOP/s, added to peaks. */
static void sample_peak(void) {
    bool wide = __builtin_cpu_supports("avx512f");
    int64_t iters = 1000000;
    double t0 = cpu_ns();
    sink = wide ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
    if (n_peaks < MAX_PEAKS) peaks[n_peaks++] = (double)iters * (wide ? 12 * 16 : 12 * 8) * 2.0 / (cpu_ns() - t0);
}

typedef struct {
    float *a, *b, *c;
} operands;

static void call(bool nabla, const shape *s, const operands *o) {
    int64_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    if (nabla)
        nb__cpu_gemm(s->ta, s->tb, s->m, s->n, s->k, 1.0f, o->a, lda, o->b, ldb, s->beta, o->c, s->n);
    else
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
                    (blasint)s->m, (blasint)s->n, (blasint)s->k, 1.0f, o->a, (blasint)lda, o->b,
                    (blasint)ldb, s->beta, o->c, (blasint)s->n);
}

/* n floats at a 64-byte boundary, as a tensor's data is (NB_ALIGN): from malloc, a [64, 784]
 * operand started 16 bytes into a cache line, every vector load of a row then spanned two
 * lines, and x W1^T measured ~10 % slower than in the step. */
static float *floats(int64_t n) {
    return aligned_alloc(64, ((size_t)n * sizeof(float) + 63) / 64 * 64);
}

static double minimum(const double *v, int n) {
    double lo = v[0];
    for (int i = 1; i < n; i++) lo = v[i] < lo ? v[i] : lo;
    return lo;
}

/* ns of CPU time per call, nabla's and OpenBLAS's medians (or minima, MIN=1; samples
 * interleaved). */
static void time_shape(const shape *s, double *nabla_ns, double *blas_ns) {
    operands o = {floats(s->m * s->k), floats(s->k * s->n), floats(s->m * s->n)};
    for (int64_t i = 0; i < s->m * s->k; i++) o.a[i] = (float)((i * 7) % 13) * 0.01f;
    for (int64_t i = 0; i < s->k * s->n; i++) o.b[i] = (float)((i * 5) % 11) * 0.01f;
    for (int64_t i = 0; i < s->m * s->n; i++) o.c[i] = 0.0f;
    double flops = 2.0 * (double)(s->m * s->n * s->k);
    int reps = by_min ? MIN_REPS : REPS;
    int inner = (int)((by_min ? MIN_SAMPLE_NS : SAMPLE_NS) / (flops / 20.0)) + 1; /* ~20 GFLOP/s as a first guess */
    double t[2][MIN_REPS > REPS ? MIN_REPS : REPS];
    for (int r = 0; r < reps; r++)
        for (int side = 0; side < 2; side++) {
            if (side == 0) sample_peak();
            call(side == 0, s, &o); /* warm */
            double t0 = cpu_ns();
            for (int i = 0; i < inner; i++) call(side == 0, s, &o);
            t[side][r] = (cpu_ns() - t0) / inner;
        }
    *nabla_ns = by_min ? minimum(t[0], reps) : median(t[0], reps);
    *blas_ns = by_min ? minimum(t[1], reps) : median(t[1], reps);
    free(o.a), free(o.b), free(o.c);
}

int main(void) {
    const char *min_env = getenv("MIN");
    by_min = min_env && strcmp(min_env, "1") == 0;
    nb_set_num_threads(1);
    openblas_set_num_threads(1);
    /* OpenBLAS's idle workers, which spun ~0.1 s after its start, are shut down when libnabla
     * loads (src/backend/cpu/cpu.c).  A core that slept clocks down: 0.2 s of FMAs first, so
     * that the first shape does not run while the clock climbs (x W1^T measured 69 % then). */
    for (double t0 = now_ns(); now_ns() - t0 < 2e8;) sample_peak();
    n_peaks = 0;
    shape squares[] = {{"square", false, false, 64, 64, 64, 0}, {"square", false, false, 128, 128, 128, 0},
                       {"square", false, false, 256, 256, 256, 0}, {"square", false, false, 512, 512, 512, 0},
                       {"square", false, false, 1024, 1024, 1024, 0}};
    enum { N_STEP = sizeof step / sizeof step[0], N_ALL = N_STEP + sizeof squares / sizeof squares[0] };
    double nabla_ns[N_ALL], blas_ns[N_ALL];
    for (int i = 0; i < N_ALL; i++)
        time_shape(i < N_STEP ? &step[i] : &squares[i - N_STEP], &nabla_ns[i], &blas_ns[i]);
    double best = 0, typical = median(peaks, n_peaks), peak = by_min ? 0 : typical;
    for (int i = 0; i < n_peaks; i++) best = peaks[i] > best ? peaks[i] : best;
    if (by_min) peak = best;
    printf("gemm: single-thread FP32, shares of the measured FMA peak%s\n%s\n",
           by_min ? " (MIN=1: minima of short samples)" : "", nb_backend_info());
    printf("measured FMA peak: %.1f GFLOP/s (one core, %s; %s of %d samples; median %.1f, best %.1f)\n\n",
           peak, __builtin_cpu_supports("avx512f") ? "AVX-512" : "AVX2", by_min ? "best" : "median",
           n_peaks, typical, best);
    printf("@peak gflops=%.2f\n", peak);
    printf("%-14s %-18s %9s %7s %9s %7s %7s\n", "shape", "m x n x k", "nabla", "share", "OpenBLAS",
           "share", "ratio");
    double step_flops = 0, step_nabla = 0, step_blas = 0;
    for (int i = 0; i < N_ALL; i++) {
        const shape *s = i < N_STEP ? &step[i] : &squares[i - N_STEP];
        double nn = nabla_ns[i], bn = blas_ns[i], flops = 2.0 * (double)(s->m * s->n * s->k);
        if (i < N_STEP) step_flops += flops, step_nabla += nn, step_blas += bn;
        char dims[48];
        snprintf(dims, sizeof dims, "%lldx%lldx%lld%s%s", (long long)s->m, (long long)s->n,
                 (long long)s->k, s->ta ? "_tA" : "", s->tb ? "_tB" : "");
        printf("%-14s %-18s %9.1f %6.0f%% %9.1f %6.0f%% %6.2fx\n", s->name, dims, flops / nn,
               100 * flops / nn / peak, flops / bn, 100 * flops / bn / peak, bn / nn);
        printf("@gemm shape=%s nabla_gflops=%.2f blas_gflops=%.2f nabla_share=%.3f blas_share=%.3f\n",
               dims, flops / nn, flops / bn, flops / nn / peak, flops / bn / peak);
    }
    printf("%-14s %-18s %9.1f %6.0f%% %9.1f %6.0f%% %6.2fx   (goal: nabla >= 88%%)\n", "step (all 8)",
           "", step_flops / step_nabla, 100 * step_flops / step_nabla / peak, step_flops / step_blas,
           100 * step_flops / step_blas / peak, step_blas / step_nabla);
    printf("@gemm_step nabla_gflops=%.2f blas_gflops=%.2f nabla_share=%.3f blas_share=%.3f\n",
           step_flops / step_nabla, step_flops / step_blas, step_flops / step_nabla / peak,
           step_flops / step_blas / peak);
    return 0;
}
