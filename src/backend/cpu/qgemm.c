/*
 * qgemm.c — the low-precision GEMMs (uint8 x int8 -> int32, bfloat16 x bfloat16 -> float32) and
 * the requantization of int32 accumulators; backend.h states each contract.  The AVX-512 kernels
 * (qgemm_avx512.c) run where cpuid reports AVX-512 (and VNNI for int8); elsewhere, or with
 * NB_CPU_ISA lowered, the plain loops here, which give the same results:
 *
 *   int8: exact, so every path gives the same int32 whatever its order.
 *   bfloat16: a product of two bfloat16 (8-bit significands) is exact in float32, and each
 *   element of C is summed in one order, vdpbf16ps's (so that a kernel on that instruction could
 *   serve the same contract): over pairs of k (2q, 2q + 1) in increasing q, first
 *   + A(i, 2q+1) B(2q+1, j) then + A(i, 2q) B(2q, j), each add rounded to nearest even, from +0
 *   (or C when accumulating); a missing last odd term adds +0.  The kernel adds each product with
 *   an FMA, the loops round it first: the bits agree unless a product is not exact in float32
 *   (below about 2^-133, or beyond its range).
 *
 * Own kernels or oneDNN's (Debian libdnnl 2.6: dnnl_gemm_u8s8s32, and the matmul primitive for
 * bfloat16, which its C API has no gemm for): measured single-threaded on this AVX-512 Xeon
 * (OMP_NUM_THREADS=1, process CPU time, best of 7, machine shared), GOP/s own / oneDNN:
 *   int8:  64x64x784 x W^T 454 / 406, 64x64x64 x W^T 331 / 284, 64x10x64 x W^T 126 / 71,
 *          64x64x10 107 / 72, 10x64x64 A^T 189 / 79, 64x64x64 397 / 332, 6x576x25 139 / 89
 *          (a LeNet conv's w col(x)); oneDNN ahead from ~256^3 on: 256x120x256 x W^T 551 / 614,
 *          512^3 492 / 706, 1024^3 408 / 673, and with A^T 64x784x64 253 / 476;
 *   bf16:  own ahead everywhere but one shape (1.24-1.70x; 16384x16x150 x W^T 79 / 87), 1024^3
 *          124 / 90, and oneDNN's primitive takes 0.2-2.3 ms to create per shape.
 * So the kernels are nabla's: at the course's and LeNet's shapes they are faster, and oneDNN
 * would add an OpenMP runtime whose threads (and their spinning) sit outside nabla's pool, and
 * on AVX-512 CPUs without VNNI its int8 GEMM saturates 16-bit intermediates (its documented
 * warning) where these loops stay exact.  Both are far above issue 11's bar (bench/qgemm.c).
 */
#include "cpu.h"

#include <math.h>
#include <string.h>

/* A row of op(A) times a column of op(B), zero points taken off, in int32: no term exceeds
 * 255 x 255 in size, so backend.h's k <= 32768 keeps the sum inside int32. */
static inline int32_t u8s8_dot(const uint8_t *a, int64_t sa, int32_t za, const int8_t *b, int64_t sb,
                               int32_t zb, int64_t k) {
    int32_t s = 0;
    for (int64_t p = 0; p < k; p++) s += ((int32_t)a[p * sa] - za) * ((int32_t)b[p * sb] - zb);
    return s;
}

NB_CLONES static void u8s8s32_plain(int32_t *c, int64_t ldc, bool ta, bool tb, int64_t m, int64_t n,
                                    int64_t k, const uint8_t *a, int64_t lda, uint8_t za,
                                    const int8_t *b, int64_t ldb, int8_t zb) {
    int64_t a_row = ta ? 1 : lda, a_k = ta ? lda : 1;
    for (int64_t i = 0; i < m; i++) {
        int32_t *ci = c + i * ldc;
        if (tb) { /* B's columns are rows of b: dot products (unit strides spelt out: vectorised) */
            for (int64_t j = 0; j < n; j++)
                ci[j] = ta ? u8s8_dot(a + i, lda, za, b + j * ldb, 1, zb, k)
                           : u8s8_dot(a + i * lda, 1, za, b + j * ldb, 1, zb, k);
            continue;
        }
        /* B's rows are rows of b: C's row gathers them (integers: any order is exact) */
        for (int64_t j = 0; j < n; j++) ci[j] = 0;
        for (int64_t p = 0; p < k; p++) {
            int32_t ap = (int32_t)a[i * a_row + p * a_k] - za;
            const int8_t *bp = b + p * ldb;
            for (int64_t j = 0; j < n; j++) ci[j] += ap * ((int32_t)bp[j] - zb);
        }
    }
}

static inline float bf16_value(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* One element of C: s plus the pairs of terms in vdpbf16ps's order (the file comment). */
static inline float bf16_dot(float s, const uint16_t *a, int64_t sa, const uint16_t *b, int64_t sb,
                             int64_t k) {
    for (int64_t p = 0; p < k; p += 2) {
        float odd = p + 1 < k ? bf16_value(a[(p + 1) * sa]) * bf16_value(b[(p + 1) * sb]) : 0.0f;
        s = s + odd;
        s = s + bf16_value(a[p * sa]) * bf16_value(b[p * sb]);
    }
    return s;
}

NB_CLONES static void bf16_plain(float *c, int64_t ldc, bool accumulate, bool ta, bool tb, int64_t m,
                                 int64_t n, int64_t k, const uint16_t *a, int64_t lda,
                                 const uint16_t *b, int64_t ldb) {
    int64_t a_row = ta ? 1 : lda, a_k = ta ? lda : 1;
    for (int64_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (tb) { /* B's columns are rows of b: one element at a time */
            for (int64_t j = 0; j < n; j++)
                ci[j] = bf16_dot(accumulate ? ci[j] : 0.0f, a + i * a_row, a_k, b + j * ldb, 1, k);
            continue;
        }
        /* B's rows are rows of b: C's row takes each term in turn, every element in the same
         * order as bf16_dot's (vectorised across the row) */
        if (!accumulate)
            for (int64_t j = 0; j < n; j++) ci[j] = 0.0f;
        for (int64_t p = 0; p < k; p += 2) {
            if (p + 1 < k) {
                const uint16_t *odd = b + (p + 1) * ldb;
                float a_odd = bf16_value(a[i * a_row + (p + 1) * a_k]);
                for (int64_t j = 0; j < n; j++) ci[j] = ci[j] + a_odd * bf16_value(odd[j]);
            } else { /* the missing odd term: + 0 */
                for (int64_t j = 0; j < n; j++) ci[j] = ci[j] + 0.0f;
            }
            const uint16_t *even = b + p * ldb;
            float a_even = bf16_value(a[i * a_row + p * a_k]);
            for (int64_t j = 0; j < n; j++) ci[j] = ci[j] + a_even * bf16_value(even[j]);
        }
    }
}

/* The loops under names of their own: a function with clones is an ifunc, which gcc exports
 * whatever its visibility, so the clones stay static. */
void nb__gemm_u8s8s32_plain(int32_t *c, int64_t ldc, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                            const uint8_t *a, int64_t lda, uint8_t za, const int8_t *b, int64_t ldb,
                            int8_t zb) {
    u8s8s32_plain(c, ldc, ta, tb, m, n, k, a, lda, za, b, ldb, zb);
}

void nb__gemm_bf16_plain(float *c, int64_t ldc, bool accumulate, bool ta, bool tb, int64_t m, int64_t n,
                         int64_t k, const uint16_t *a, int64_t lda, const uint16_t *b, int64_t ldb) {
    bf16_plain(c, ldc, accumulate, ta, tb, m, n, k, a, lda, b, ldb);
}

void nb__cpu_gemm_u8s8s32(int32_t *c, int64_t ldc, bool ta, bool tb, int64_t m, int64_t n,
                          int64_t k, const uint8_t *a, int64_t lda, uint8_t za, const int8_t *b,
                          int64_t ldb, int8_t zb) {
#if defined(__x86_64__)
    if (k > 0 && nb__cpu_has_vnni()) {
        nb__gemm_u8s8s32_vnni(c, ldc, ta, tb, m, n, k, a, lda, za, b, ldb, zb);
        return;
    }
#endif
    u8s8s32_plain(c, ldc, ta, tb, m, n, k, a, lda, za, b, ldb, zb);
}

void nb__cpu_gemm_bf16(float *c, int64_t ldc, bool accumulate, bool ta, bool tb, int64_t m,
                       int64_t n, int64_t k, const uint16_t *a, int64_t lda, const uint16_t *b,
                       int64_t ldb) {
#if defined(__x86_64__)
    if (k > 0 && nb__cpu_isa() == NB_ISA_AVX512) {
        nb__gemm_bf16_avx512(c, ldc, accumulate, ta, tb, m, n, k, a, lda, b, ldb);
        return;
    }
#endif
    bf16_plain(c, ldc, accumulate, ta, tb, m, n, k, a, lda, b, ldb);
}

/* ---- requantization (backend.h): fbgemm's ReQuantizeOutput, whose float steps it repeats —
 * (float)acc, + bias, x scale, round — with the clamp taken before the rounding instead of
 * after it: the bounds are integers, so the result is the same, and a value beyond int32's
 * range saturates where a conversion of it would not be defined. */

static inline float param(const float *v, nb_qaxis axis, int64_t i, int64_t j) {
    return v[axis == NB_QAXIS_TENSOR ? 0 : axis == NB_QAXIS_ROW ? i : j];
}

/* One row: element j's scale and bias are s[j] and b[j] (per_col) or s[0] and b[0] (b NULL:
 * no bias).  Called with constant flags, each combination compiles to a branch-free
 * (vectorised) loop. */
static inline void requantize_row(void *restrict y, const int32_t *restrict acc, int64_t n,
                                  const float *restrict s, const float *restrict b, bool per_col,
                                  bool u8, float vlo, float vhi, int32_t zp) {
    for (int64_t j = 0; j < n; j++) {
        float v = (float)acc[j];
        if (b) v = v + b[per_col ? j : 0];
        v = v * s[per_col ? j : 0];
        v = v > vlo ? v : vlo; /* NaN to lo */
        v = v < vhi ? v : vhi;
        /* rint (half to even) of |v| <= 510: adding 1.5 2^23 leaves no fraction bits, so the
         * sum rounds as rint does, and taking it off again is exact (vectorises, unlike rintf) */
        v = (v + 0x1.8p23f) - 0x1.8p23f;
        int32_t r = (int32_t)v + zp;
        if (u8) ((uint8_t *)y)[j] = (uint8_t)r;
        else ((int8_t *)y)[j] = (int8_t)r;
    }
}

NB_CLONES static void requantize_int(void *y, int64_t ldy, const int32_t *acc, int64_t ldacc,
                                     int64_t m, int64_t n, const nb__requant_args *q) {
    bool u8 = q->out == NB_QOUT_U8, per_col = q->axis == NB_QAXIS_COL;
    int32_t lo = u8 ? 0 : -128, hi = u8 ? 255 : 127, zp = q->zero_point;
    if (q->relu && zp > lo) lo = zp;
    float vlo = (float)(lo - zp), vhi = (float)(hi - zp);
    for (int64_t i = 0; i < m; i++) {
        int64_t at = q->axis == NB_QAXIS_ROW ? i : 0;
        const float *s = q->scale + at, *b = q->bias ? q->bias + at : NULL;
        void *yi = (int8_t *)y + i * ldy;
        const int32_t *ai = acc + i * ldacc;
        if (per_col) {
            if (u8) requantize_row(yi, ai, n, s, b, true, true, vlo, vhi, zp);
            else requantize_row(yi, ai, n, s, b, true, false, vlo, vhi, zp);
        } else {
            if (u8) requantize_row(yi, ai, n, s, b, false, true, vlo, vhi, zp);
            else requantize_row(yi, ai, n, s, b, false, false, vlo, vhi, zp);
        }
    }
}

NB_CLONES static void requantize_f32(float *y, int64_t ldy, const int32_t *acc, int64_t ldacc,
                                     int64_t m, int64_t n, const nb__requant_args *q) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float v = (float)acc[i * ldacc + j] * param(q->scale, q->axis, i, j);
            if (q->bias) v = v + param(q->bias, q->axis, i, j);
            y[i * ldy + j] = q->relu && v < 0.0f ? 0.0f : v;
        }
}

void nb__cpu_requantize(void *y, int64_t ldy, const int32_t *acc, int64_t ldacc, int64_t m,
                        int64_t n, const nb__requant_args *q) {
    if (q->out == NB_QOUT_F32) requantize_f32(y, ldy, acc, ldacc, m, n, q);
    else requantize_int(y, ldy, acc, ldacc, m, n, q);
}
