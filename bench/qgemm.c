/*
 * qgemm.c — the low-precision GEMMs of the backend (src/backend/cpu/qgemm.c) against OpenBLAS's
 * cblas_sgemm on the same shapes, single-threaded: uint8 x int8 -> int32 (with an activation zero
 * point, as a quantized layer runs it) and bfloat16 x bfloat16 -> float32, at the GEMMs of the
 * course MLP's training step (bench/gemm.c's 8 shapes, transposes included), 64^3 and 1024^3.
 * Each counts 2 m n k operations; times are process CPU time (a shared machine's waits
 * excluded), each figure the median of REPS samples, the three GEMMs' samples interleaved, a
 * sample being enough calls to last ~5 ms.  Which kernels ran (AVX-512 / VNNI, or the portable
 * loops under NB_CPU_ISA=avx2 or baseline) is printed first.
 *
 * Output: a table, "@qgemm shape=.. int8_gops=.. bf16_gflops=.. blas_gflops=.. int8_ratio=..
 * bf16_ratio=.." lines, and "@qgemm_bar" with issue 11's bar at 1024^3 (int8 >= 2.5x sgemm,
 * bf16 >= 1.6x).  nabla's own float32 GEMM (nb__cpu_gemm: its AVX-512 kernels where it uses them,
 * else OpenBLAS) is timed beside them, the figure a low-precision layer actually replaces.
 */
#include "nabla.h"
#include "bench.h"
#include "backend/cpu/cpu.h"

#include <cblas.h>

#define REPS 9
#define SAMPLE_NS 5e6

typedef struct {
    const char *name;
    bool ta, tb;
    int64_t m, n, k;
} shape;

static const shape shapes[] = {
    {"fwd1 x W1^T", false, true, 64, 64, 784},  {"fwd2 x W2^T", false, true, 64, 64, 64},
    {"fwd3 x W3^T", false, true, 64, 10, 64},   {"bwd3 g W3", false, false, 64, 64, 10},
    {"bwd3 g^T x", true, false, 10, 64, 64},    {"bwd2 g W2", false, false, 64, 64, 64},
    {"bwd2 g^T x", true, false, 64, 64, 64},    {"bwd1 g^T x", true, false, 64, 784, 64},
    {"square", false, false, 64, 64, 64},       {"square", false, false, 1024, 1024, 1024},
};
enum { N_SHAPES = sizeof shapes / sizeof shapes[0] };
enum { INT8, BF16, BLAS, F32, KINDS };

typedef struct {
    uint8_t *a8;
    int8_t *b8;
    int32_t *c32;
    uint16_t *a16, *b16;
    float *af, *bf, *cf;
} operands;

static void *bytes(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }

static uint32_t rnd(void) {
    static uint64_t s = 0x9e3779b97f4a7c15u;
    s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
    return (uint32_t)((s * 0x2545f4914f6cdd1du) >> 32);
}

static operands operands_new(const shape *s) {
    size_t na = (size_t)(s->m * s->k), nb = (size_t)(s->k * s->n), nc = (size_t)(s->m * s->n);
    operands o = {bytes(na), bytes(nb), bytes(4 * nc), bytes(2 * na), bytes(2 * nb), bytes(4 * na),
                  bytes(4 * nb), bytes(4 * nc)};
    for (size_t i = 0; i < na; i++) {
        o.a8[i] = (uint8_t)rnd();
        o.af[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
        uint32_t u;
        memcpy(&u, &o.af[i], 4);
        o.a16[i] = (uint16_t)(u >> 16);
    }
    for (size_t i = 0; i < nb; i++) {
        o.b8[i] = (int8_t)rnd();
        o.bf[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
        uint32_t u;
        memcpy(&u, &o.bf[i], 4);
        o.b16[i] = (uint16_t)(u >> 16);
    }
    return o;
}

static void operands_free(operands *o) {
    free(o->a8), free(o->b8), free(o->c32), free(o->a16), free(o->b16), free(o->af), free(o->bf), free(o->cf);
}

static void call(int kind, const shape *s, const operands *o) {
    int64_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    if (kind == INT8)
        nb__cpu_gemm_u8s8s32(o->c32, s->n, s->ta, s->tb, s->m, s->n, s->k, o->a8, lda, 117, o->b8, ldb, 0);
    else if (kind == BF16)
        nb__cpu_gemm_bf16(o->cf, s->n, false, s->ta, s->tb, s->m, s->n, s->k, o->a16, lda, o->b16, ldb);
    else if (kind == F32)
        nb__cpu_gemm(s->ta, s->tb, s->m, s->n, s->k, 1.0f, o->af, lda, o->bf, ldb, 0.0f, o->cf, s->n);
    else
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
                    (blasint)s->m, (blasint)s->n, (blasint)s->k, 1.0f, o->af, (blasint)lda, o->bf,
                    (blasint)ldb, 0.0f, o->cf, (blasint)s->n);
}

/* ns of CPU time per call of each kind, medians of interleaved samples. */
static void time_shape(const shape *s, double ns[KINDS]) {
    operands o = operands_new(s);
    double t[KINDS][REPS];
    int inner[KINDS];
    for (int kind = 0; kind < KINDS; kind++) { /* calls per sample, from one timed call */
        call(kind, s, &o);                      /* warm */
        double t0 = cpu_ns();
        call(kind, s, &o);
        double one = cpu_ns() - t0;
        inner[kind] = (int)(SAMPLE_NS / (one > 1 ? one : 1)) + 1;
    }
    for (int r = 0; r < REPS; r++)
        for (int kind = 0; kind < KINDS; kind++) {
            double t0 = cpu_ns();
            for (int i = 0; i < inner[kind]; i++) call(kind, s, &o);
            t[kind][r] = (cpu_ns() - t0) / inner[kind];
        }
    for (int kind = 0; kind < KINDS; kind++) ns[kind] = median(t[kind], REPS);
    operands_free(&o);
}

int main(void) {
    nb_set_num_threads(1);
    openblas_set_num_threads(1);
    sleep_ms(BLAS_SETTLE_MS);
    double ns[N_SHAPES][KINDS];
    for (int i = 0; i < N_SHAPES; i++) time_shape(&shapes[i], ns[i]);
    printf("qgemm: single-thread int8 (u8 x s8 -> s32) and bf16 (-> f32) GEMMs against OpenBLAS sgemm\n%s\n",
           nb_backend_info());
    printf("kernels: int8 %s, bf16 %s\n\n", nb__cpu_has_vnni() ? "AVX-512 VNNI" : "portable loops",
           nb__cpu_isa() == NB_ISA_AVX512 ? "AVX-512 (widened to float32, FMA)" : "portable loops");
    printf("%-14s %-18s %10s %10s %10s %8s %8s %10s %8s %8s\n", "shape", "m x n x k", "int8 GOP/s",
           "bf16 GF/s", "sgemm GF/s", "int8/sg", "bf16/sg", "f32 GF/s", "int8/f32", "bf16/f32");
    for (int i = 0; i < N_SHAPES; i++) {
        const shape *s = &shapes[i];
        double flops = 2.0 * (double)(s->m * s->n * s->k);
        char dims[48];
        snprintf(dims, sizeof dims, "%lldx%lldx%lld%s%s", (long long)s->m, (long long)s->n,
                 (long long)s->k, s->ta ? "_tA" : "", s->tb ? "_tB" : "");
        const double *t = ns[i];
        printf("%-14s %-18s %10.1f %10.1f %10.1f %7.2fx %7.2fx %10.1f %7.2fx %7.2fx\n", s->name, dims,
               flops / t[INT8], flops / t[BF16], flops / t[BLAS], t[BLAS] / t[INT8], t[BLAS] / t[BF16],
               flops / t[F32], t[F32] / t[INT8], t[F32] / t[BF16]);
        printf("@qgemm shape=%s int8_gops=%.2f bf16_gflops=%.2f blas_gflops=%.2f nabla_f32_gflops=%.2f "
               "int8_ratio=%.3f bf16_ratio=%.3f int8_vs_f32=%.3f bf16_vs_f32=%.3f\n", dims,
               flops / t[INT8], flops / t[BF16], flops / t[BLAS], flops / t[F32], t[BLAS] / t[INT8],
               t[BLAS] / t[BF16], t[F32] / t[INT8], t[F32] / t[BF16]);
    }
    const double *big = ns[N_SHAPES - 1];
    double r8 = big[BLAS] / big[INT8], r16 = big[BLAS] / big[BF16];
    printf("\n1024^3: int8 %.2fx sgemm (bar 2.5x: %s), bf16 %.2fx sgemm (bar 1.6x: %s)\n", r8,
           r8 >= 2.5 ? "met" : "NOT met", r16, r16 >= 1.6 ? "met" : "NOT met");
    printf("@qgemm_bar int8_ratio=%.3f bf16_ratio=%.3f int8_met=%d bf16_met=%d\n", r8, r16, r8 >= 2.5, r16 >= 1.6);
    return 0;
}
