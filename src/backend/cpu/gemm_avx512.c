/*
 * gemm_avx512.c — single-threaded AVX-512 GEMM for the small matrices of a training step
 * (an MLP's [64, 784] x [784, 64] and friends), where a BLAS's packing and blocking, made for
 * large matrices, cost as much as the arithmetic.  This file is compiled with AVX-512 enabled
 * and is entered only when the CPU has it (nb__cpu_isa).
 *
 *   C = alpha op(A) op(B) + beta C, row-major; C is m x n, the inner dimension k.
 *
 * Two register-blocked kernels, no packing:
 *
 *   op(B) rows contiguous (tb false): "broadcast" — a block of ROWS rows of C and up to 64
 *   columns (4 vectors) lives in 24 accumulators; at each k, the block's row of op(B) is loaded
 *   (4 vectors) and each of the ROWS elements A(i, k) is broadcast from memory into 4 FMAs (the
 *   last 32 columns or fewer: NROWS rows of 2 vectors).  op(A) is read in place whichever way it
 *   is stored: A(i, k) at a[i lda + k] or, transposed, at a[k lda + i].
 *
 *   op(B) = B^T with B small (k n up to PACK_MAX floats) and C at least a vector wide (a
 *   Linear layer's x W^T but the narrowest): B is transposed onto the stack a chunk of k at a time,
 *   so that the chunk (k_c x n, about 16 KiB) stays in the L1 cache while every row block of C
 *   reads it, and the broadcast kernel runs on each chunk.  Between chunks a block's
 *   accumulators are parked, unrounded, in a scratch array and reloaded, so each sum goes on
 *   exactly as in one pass.  (Transposing all of a [64, 784] weight first and streaming its
 *   200 KiB from L2 for each row block ran x W1^T at 30 % of the FMA peak.)
 *
 *   op(B) = B^T otherwise, A not transposed: "dot" — C(i, j) is the dot product of row i of A
 *   and row j of B, both contiguous along k; a 4 x 4 block of C keeps 16 vector accumulators
 *   over k (the last vector masked) and sums each at the end.
 *
 * Each element of C is one sum over k in increasing order (fused multiply-adds, one per lane
 * for the dot kernel, whose lanes are then added in a fixed tree), so the bits depend on the
 * shapes only: not on the thread count, nor on where a block starts.
 */
#include "cpu.h"

#include <immintrin.h>
#include <pthread.h>

#define ROWS 6 /* broadcast kernel: rows of C per block */
#define DOT 4  /* dot kernel: a DOT x DOT block of C */
#define PACK_MAX (64 * 1024) /* floats of B (k x n) that take the transposing path */
/* Floats of B^T transposed at a time: 16 KiB, which with the matching 16 KiB of A stays well
 * inside a 48 KiB L1.  At 32 KiB the two overflowed it, and the transposition of x W1^T's
 * weight, memory-bound then (a plain copy of its tiles took as long), cost 6.4 us of 44 against
 * 4.7 us; the kernel's extra chunk boundaries cost less (x W1^T +1.5 %). */
#define CHUNK 4096
#define SUMS_MAX (16 * 1024) /* floats of C's unfinished sums between chunks (64 KiB) */

static inline __mmask16 mask_of(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/* C(i, j) from the sum s: alpha s + beta C, reading C only when beta is not 0 (C may hold NaN
 * or be uninitialised then, as BLAS allows). */
static inline __m512 finish(__m512 s, float alpha, float beta, const float *c, __mmask16 m) {
    if (alpha != 1.0f) s = _mm512_mul_ps(_mm512_set1_ps(alpha), s);
    if (beta == 0.0f) return s;
    __m512 old = _mm512_maskz_loadu_ps(m, c);
    if (beta != 1.0f) old = _mm512_mul_ps(_mm512_set1_ps(beta), old);
    return _mm512_add_ps(s, old);
}

/* Where a block's sums come from and go to, between chunks of k: from (row stride ld) holds the
 * sums so far, NULL to start at zero; to receives them unfinished (no alpha, beta or C), NULL
 * to finish them into C. */
typedef struct {
    const float *from;
    float *to;
    int64_t ld;
} sums;

static inline sums sums_at(sums s, int64_t i, int64_t j) {
    return (sums){s.from ? s.from + i * s.ld + j : NULL, s.to ? s.to + i * s.ld + j : NULL, s.ld};
}

/* Accumulator r, v's starting value: the sum so far, or zero (and zero for rows past the end). */
#define START(r, v) (s.from && r < rows ? _mm512_maskz_loadu_ps(m[v], s.from + r * s.ld + 16 * v) : z)
/* Stores accumulator r, v: unfinished into s.to, or finished into C. */
#define PUT(r, v, cr)                                                                          \
    do {                                                                                       \
        if (!m[v]) break;                                                                      \
        if (s.to) _mm512_mask_storeu_ps(s.to + r * s.ld + 16 * v, m[v], c##r##v);              \
        else _mm512_mask_storeu_ps(cr + 16 * v, m[v], finish(c##r##v, alpha, beta, cr + 16 * v, m[v])); \
    } while (0)

/* One broadcast block: rows i0 .. i0 + rows (rows <= ROWS) and 64 columns, the four vectors
 * masked by m[0..4) (a narrower block masks its last vectors, partly or wholly).  The 24
 * accumulators are named variables (macros below): held in an array, gcc kept them in memory. */
#define ACC_ROW(r) __m512 c##r##0 = START(r, 0), c##r##1 = START(r, 1), c##r##2 = START(r, 2), c##r##3 = START(r, 3)
#define FMA_ROW(r)                                                         \
    do {                                                                   \
        if (r >= rows) break;                                              \
        __m512 av = _mm512_set1_ps(a##r[p * a_k]);                         \
        c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0);                        \
        c##r##1 = _mm512_fmadd_ps(av, b1, c##r##1);                        \
        c##r##2 = _mm512_fmadd_ps(av, b2, c##r##2);                        \
        c##r##3 = _mm512_fmadd_ps(av, b3, c##r##3);                        \
    } while (0)
#define STORE_ROW(r)                                                       \
    do {                                                                   \
        if (r < rows) {                                                    \
            float *cr = c + r * ldc;                                       \
            PUT(r, 0, cr); PUT(r, 1, cr); PUT(r, 2, cr); PUT(r, 3, cr);    \
        }                                                                  \
    } while (0)

/* Row r's pointer (rows past the end, whose FMAs are dropped, point at the last row). */
#define ROW_PTR(r) const float *a##r = a + (rows > r ? r : rows - 1) * a_row
/* A switch over a block's row count, so that each case inlines a body with a constant count. */
#define CASE(r, body) case r: body(r); break
#define ROWS_CASES(body) CASE(1, body); CASE(2, body); CASE(3, body); CASE(4, body); CASE(5, body); CASE(6, body)

/* full: all 64 columns present, loaded without masks (a masked load takes an extra micro-op on
 * some cores, on the ports the FMAs need).  rows is a constant in each copy (see ROWS_CASES), so
 * a block of fewer rows drops the FMAs of the missing ones. */
static inline __attribute__((always_inline)) void broadcast_body(
    const bool full, const int rows, const __mmask16 m[4], int64_t k, const float *a, int64_t a_row,
    int64_t a_k, const float *b, int64_t ldb, float alpha, float beta, float *c, int64_t ldc, sums s) {
    const __m512 z = _mm512_setzero_ps();
    ACC_ROW(0); ACC_ROW(1); ACC_ROW(2); ACC_ROW(3); ACC_ROW(4); ACC_ROW(5);
    ROW_PTR(0); ROW_PTR(1); ROW_PTR(2); ROW_PTR(3); ROW_PTR(4); ROW_PTR(5);
#pragma GCC unroll 4
    for (int64_t p = 0; p < k; p++) {
        const float *bp = b + p * ldb;
        __m512 b0, b1, b2, b3;
        if (full) {
            b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
            b2 = _mm512_loadu_ps(bp + 32), b3 = _mm512_loadu_ps(bp + 48);
        } else {
            b0 = _mm512_maskz_loadu_ps(m[0], bp), b1 = _mm512_maskz_loadu_ps(m[1], bp + 16);
            b2 = _mm512_maskz_loadu_ps(m[2], bp + 32), b3 = _mm512_maskz_loadu_ps(m[3], bp + 48);
        }
        FMA_ROW(0); FMA_ROW(1); FMA_ROW(2); FMA_ROW(3); FMA_ROW(4); FMA_ROW(5);
    }
    STORE_ROW(0); STORE_ROW(1); STORE_ROW(2); STORE_ROW(3); STORE_ROW(4); STORE_ROW(5);
}

#define FULL(r) broadcast_body(true, r, m, k, a, a_row, a_k, b, ldb, alpha, beta, c, ldc, s)
#define PART(r) broadcast_body(false, r, m, k, a, a_row, a_k, b, ldb, alpha, beta, c, ldc, s)
/* The last block of a column strip, fewer than ROWS rows: a call (its copies would crowd the
 * loop they sit in), and a switch to the copy for its row count. */
static __attribute__((noinline)) void broadcast_tail(int rows, const __mmask16 m[4], int64_t k,
                                                     const float *a, int64_t a_row, int64_t a_k,
                                                     const float *b, int64_t ldb, float alpha,
                                                     float beta, float *c, int64_t ldc, sums s) {
    if (m[3] == 0xffff) switch (rows) { ROWS_CASES(FULL); }
    else switch (rows) { ROWS_CASES(PART); }
}

/* A whole block inline (a call per block cost 10 % at k = 10), a short one through the tail.
 * The two common (alpha, beta), C = A B (a gradient) and C += A B (x W^T onto the bias), have
 * copies of their own, where finish() folds to a store or an add: tested at each of the 24
 * stores, they took a quarter of a block's time at k = 10 (64 x 64 x 10: 68 -> 88 % of the FMA
 * peak; 64 x 64 x 64: +5 %). */
static inline __attribute__((always_inline)) void broadcast_block(
    int rows, const __mmask16 m[4], int64_t k, const float *a, int64_t a_row, int64_t a_k,
    const float *b, int64_t ldb, float alpha, float beta, float *c, int64_t ldc, sums s) {
    if (rows < ROWS) broadcast_tail(rows, m, k, a, a_row, a_k, b, ldb, alpha, beta, c, ldc, s);
    else if (m[3] == 0xffff && alpha == 1.0f && beta == 0.0f)
        broadcast_body(true, ROWS, m, k, a, a_row, a_k, b, ldb, 1.0f, 0.0f, c, ldc, s);
    else if (m[3] == 0xffff && alpha == 1.0f && beta == 1.0f)
        broadcast_body(true, ROWS, m, k, a, a_row, a_k, b, ldb, 1.0f, 1.0f, c, ldc, s);
    else if (m[3] == 0xffff) FULL(ROWS);
    else PART(ROWS);
}
#undef FULL
#undef PART

/* The narrow block: NROWS rows and up to 32 columns (vecs = 2 vectors, masked by m[0..2)), for C
 * whose last columns would leave half or more of the wide block's accumulators idle (a
 * convolution's weight gradient has 16 or 32 columns); with 16 columns or fewer (vecs = 1: the
 * last 16 of a [64, 784] C, the first layer's weight gradient) the second vector's accumulators
 * and FMAs drop out: masked to nothing, they took half the block's time (64 x 16 x 64: 66
 * against 115 GFLOP/s).  The lanes computed, and so the bits, are the same either way. */
#define NROWS 12
#define ACC2_ROW(r) __m512 c##r##0 = START(r, 0), c##r##1 = vecs > 1 ? START(r, 1) : z
#define FMA2_ROW(r)                                                        \
    do {                                                                   \
        if (r >= rows) break;                                              \
        __m512 av = _mm512_set1_ps(a##r[p * a_k]);                         \
        c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0);                        \
        if (vecs > 1) c##r##1 = _mm512_fmadd_ps(av, b1, c##r##1);          \
    } while (0)
#define STORE2_ROW(r)                                                      \
    do {                                                                   \
        if (r < rows) {                                                    \
            float *cr = c + r * ldc;                                       \
            PUT(r, 0, cr);                                                 \
            if (vecs > 1) PUT(r, 1, cr);                                   \
        }                                                                  \
    } while (0)

static inline __attribute__((always_inline)) void narrow_body(
    const int vecs, const int rows, const __mmask16 m[2], int64_t k, const float *a, int64_t a_row,
    int64_t a_k, const float *b, int64_t ldb, float alpha, float beta, float *c, int64_t ldc, sums s) {
    const __m512 z = _mm512_setzero_ps();
    ACC2_ROW(0); ACC2_ROW(1); ACC2_ROW(2); ACC2_ROW(3); ACC2_ROW(4); ACC2_ROW(5);
    ACC2_ROW(6); ACC2_ROW(7); ACC2_ROW(8); ACC2_ROW(9); ACC2_ROW(10); ACC2_ROW(11);
    ROW_PTR(0); ROW_PTR(1); ROW_PTR(2); ROW_PTR(3); ROW_PTR(4); ROW_PTR(5);
    ROW_PTR(6); ROW_PTR(7); ROW_PTR(8); ROW_PTR(9); ROW_PTR(10); ROW_PTR(11);
    for (int64_t p = 0; p < k; p++) {
        const float *bp = b + p * ldb;
        __m512 b0 = _mm512_maskz_loadu_ps(m[0], bp), b1 = vecs > 1 ? _mm512_maskz_loadu_ps(m[1], bp + 16) : z;
        FMA2_ROW(0); FMA2_ROW(1); FMA2_ROW(2); FMA2_ROW(3); FMA2_ROW(4); FMA2_ROW(5);
        FMA2_ROW(6); FMA2_ROW(7); FMA2_ROW(8); FMA2_ROW(9); FMA2_ROW(10); FMA2_ROW(11);
    }
    STORE2_ROW(0); STORE2_ROW(1); STORE2_ROW(2); STORE2_ROW(3); STORE2_ROW(4); STORE2_ROW(5);
    STORE2_ROW(6); STORE2_ROW(7); STORE2_ROW(8); STORE2_ROW(9); STORE2_ROW(10); STORE2_ROW(11);
}

/* The narrow block's tail and whole blocks, as broadcast_tail and broadcast_block. */
#define TWO(r) narrow_body(2, r, m, k, a, a_row, a_k, b, ldb, alpha, beta, c, ldc, s)
#define ONE(r) narrow_body(1, r, m, k, a, a_row, a_k, b, ldb, alpha, beta, c, ldc, s)
#define NROWS_CASES(body) ROWS_CASES(body); CASE(7, body); CASE(8, body); CASE(9, body); \
                          CASE(10, body); CASE(11, body)
static __attribute__((noinline)) void narrow_tail(int rows, const __mmask16 m[2], int64_t k,
                                                  const float *a, int64_t a_row, int64_t a_k,
                                                  const float *b, int64_t ldb, float alpha,
                                                  float beta, float *c, int64_t ldc, sums s) {
    if (m[1]) switch (rows) { NROWS_CASES(TWO); }
    else switch (rows) { NROWS_CASES(ONE); }
}

static inline __attribute__((always_inline)) void narrow_block(
    int rows, const __mmask16 m[2], int64_t k, const float *a, int64_t a_row, int64_t a_k,
    const float *b, int64_t ldb, float alpha, float beta, float *c, int64_t ldc, sums s) {
    if (rows < NROWS) narrow_tail(rows, m, k, a, a_row, a_k, b, ldb, alpha, beta, c, ldc, s);
    else if (alpha == 1.0f && beta == 0.0f && m[1]) /* C = A B, as broadcast_block */
        narrow_body(2, NROWS, m, k, a, a_row, a_k, b, ldb, 1.0f, 0.0f, c, ldc, s);
    else if (alpha == 1.0f && beta == 0.0f)
        narrow_body(1, NROWS, m, k, a, a_row, a_k, b, ldb, 1.0f, 0.0f, c, ldc, s);
    else if (m[1]) TWO(NROWS);
    else ONE(NROWS);
}
#undef TWO
#undef ONE

static void gemm_broadcast(bool ta, int64_t m_rows, int64_t n, int64_t k, float alpha, const float *a,
                           int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                           int64_t ldc, sums s) {
    int64_t a_row = ta ? 1 : lda, a_k = ta ? lda : 1;
    for (int64_t j = 0; j < n;) {
        __mmask16 m[4];
        for (int v = 0; v < 4; v++) m[v] = n - j - 16 * v > 0 ? mask_of(n - j - 16 * v) : 0;
        if (n - j <= 32) { /* the last columns, 32 or fewer: the narrow block */
            for (int64_t i = 0; i < m_rows; i += NROWS)
                narrow_block((int)(m_rows - i < NROWS ? m_rows - i : NROWS), m, k, a + i * a_row,
                             a_row, a_k, b + j, ldb, alpha, beta, c + i * ldc + j, ldc, sums_at(s, i, j));
            break;
        }
        for (int64_t i = 0; i < m_rows; i += ROWS)
            broadcast_block((int)(m_rows - i < ROWS ? m_rows - i : ROWS), m, k, a + i * a_row,
                            a_row, a_k, b + j, ldb, alpha, beta, c + i * ldc + j, ldc, sums_at(s, i, j));
        j += 64;
    }
}

/* The 16 lane sums of acc[0..16) in one vector, lane t holding the sum of acc[t]: a tree of
 * adds over halves, the same tree for every block. */
static inline __attribute__((always_inline)) __m512 lane_sums(const __m512 acc[16]) {
    __m512 s8[8], s4[4], s2[2];
    /* 16 -> 8: pairs (t, t + 8) interleave their 256-bit halves and add */
    for (int t = 0; t < 8; t++) {
        __m512 lo = _mm512_shuffle_f32x4(acc[t], acc[t + 8], 0x44); /* t.lo | t+8.lo */
        __m512 hi = _mm512_shuffle_f32x4(acc[t], acc[t + 8], 0xee); /* t.hi | t+8.hi */
        s8[t] = _mm512_add_ps(lo, hi);
    }
    for (int t = 0; t < 4; t++) { /* 128-bit lanes */
        __m512 lo = _mm512_shuffle_f32x4(s8[t], s8[t + 4], 0x88);
        __m512 hi = _mm512_shuffle_f32x4(s8[t], s8[t + 4], 0xdd);
        s4[t] = _mm512_add_ps(lo, hi);
    }
    for (int t = 0; t < 2; t++) { /* 64-bit pairs */
        __m512 lo = _mm512_shuffle_ps(s4[t], s4[t + 2], 0x44);
        __m512 hi = _mm512_shuffle_ps(s4[t], s4[t + 2], 0xee);
        s2[t] = _mm512_add_ps(lo, hi);
    }
    __m512 lo = _mm512_shuffle_ps(s2[0], s2[1], 0x88), hi = _mm512_shuffle_ps(s2[0], s2[1], 0xdd);
    return _mm512_add_ps(lo, hi);
}

/* Lane lane_of[q] of lane_sums(acc) holds the sum of accumulator q (the shuffles interleave
 * them), found once by running the tree on marked inputs. */
static int32_t lane_of[16];

static void find_lanes(void) {
    __m512 acc[16];
    for (int t = 0; t < 16; t++) {
        float one[16] = {0};
        one[t] = (float)(t + 1); /* a single lane marks accumulator t */
        acc[t] = _mm512_loadu_ps(one);
    }
    float out[16];
    _mm512_storeu_ps(out, lane_sums(acc));
    for (int t = 0; t < 16; t++) lane_of[(int)out[t] - 1] = t;
}

#define DOT_ROW(r) c##r##0 = _mm512_fmadd_ps(a##r, b0, c##r##0), c##r##1 = _mm512_fmadd_ps(a##r, b1, c##r##1), \
                   c##r##2 = _mm512_fmadd_ps(a##r, b2, c##r##2), c##r##3 = _mm512_fmadd_ps(a##r, b3, c##r##3)

static void dot_block(int rows, int cols, int64_t k, const float *a, int64_t lda, const float *b,
                      int64_t ldb, float alpha, float beta, float *c, int64_t ldc) {
    const __m512 z = _mm512_setzero_ps();
    __m512 c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
    __m512 c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
    /* rows and columns past the end repeat the last one (computed, never stored) */
    const float *ar0 = a, *ar1 = a + (rows > 1 ? 1 : 0) * lda, *ar2 = a + (rows > 2 ? 2 : rows - 1) * lda;
    const float *ar3 = a + (rows > 3 ? 3 : rows - 1) * lda;
    const float *br0 = b, *br1 = b + (cols > 1 ? 1 : 0) * ldb, *br2 = b + (cols > 2 ? 2 : cols - 1) * ldb;
    const float *br3 = b + (cols > 3 ? 3 : cols - 1) * ldb;
    for (int64_t p = 0; p < k; p += 16) {
        __mmask16 m = mask_of(k - p);
        __m512 a0 = _mm512_maskz_loadu_ps(m, ar0 + p), a1 = _mm512_maskz_loadu_ps(m, ar1 + p);
        __m512 a2 = _mm512_maskz_loadu_ps(m, ar2 + p), a3 = _mm512_maskz_loadu_ps(m, ar3 + p);
        __m512 b0 = _mm512_maskz_loadu_ps(m, br0 + p), b1 = _mm512_maskz_loadu_ps(m, br1 + p);
        __m512 b2 = _mm512_maskz_loadu_ps(m, br2 + p), b3 = _mm512_maskz_loadu_ps(m, br3 + p);
        DOT_ROW(0);
        DOT_ROW(1);
        DOT_ROW(2);
        DOT_ROW(3);
    }
    const __m512 acc[16] = {c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33};
    /* the sums in C's order (row r in lanes 4 r .. 4 r + 3), finished a row at a time as
     * finish() does */
    __m512 v = _mm512_permutexvar_ps(_mm512_loadu_si512(lane_of), lane_sums(acc));
    if (alpha != 1.0f) v = _mm512_mul_ps(_mm512_set1_ps(alpha), v);
    float sum[16];
    _mm512_storeu_ps(sum, v);
    __mmask8 m = (__mmask8)((1u << cols) - 1);
    for (int r = 0; r < rows; r++) {
        __m128 x = _mm_loadu_ps(sum + DOT * r);
        float *cr = c + r * ldc;
        if (beta != 0.0f) {
            __m128 old = _mm_maskz_loadu_ps(m, cr);
            x = _mm_add_ps(x, beta == 1.0f ? old : _mm_mul_ps(_mm_set1_ps(beta), old));
        }
        _mm_mask_storeu_ps(cr, m, x);
    }
}

static void gemm_dot(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, find_lanes);
    for (int64_t i = 0; i < m; i += DOT)
        for (int64_t j = 0; j < n; j += DOT)
            dot_block((int)(m - i < DOT ? m - i : DOT), (int)(n - j < DOT ? n - j : DOT), k,
                      a + i * lda, lda, b + j * ldb, ldb, alpha, beta, c + i * ldc + j, ldc);
}

/* dst (16 x 16, row stride ldd) = the transpose of src (row stride lds), in registers: rows are
 * interleaved by pairs of floats, then pairs of pairs, within each 128-bit lane; after that,
 * register 4g + c holds, in lane L, column 4L + c of rows 4g .. 4g + 3, and two rounds of lane
 * shuffles gather each column's four lanes.  The loops are unrolled whole so that r and t become
 * 32 registers at every optimisation level: -O3 unrolls them itself, but at -O2 gcc kept both
 * arrays in memory and every stage went through the stack (~140 cycles a tile, not ~70).
 * With cols < 16 rows of src (the last columns of dst), the missing rows repeat the last one
 * and only cols floats of each row of dst are written. */
static inline __attribute__((always_inline)) void transpose16(float *dst, int64_t ldd, const float *src,
                                                              int64_t lds, const int cols) {
    __m512 r[16], t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (i < cols ? i : cols - 1) * lds);
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
#pragma GCC unroll 4
    for (int g = 0; g < 16; g += 4) {
        __m512d t0 = _mm512_castps_pd(t[g]), t1 = _mm512_castps_pd(t[g + 1]);
        __m512d t2 = _mm512_castps_pd(t[g + 2]), t3 = _mm512_castps_pd(t[g + 3]);
        r[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        r[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        r[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        r[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m512 u0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), u1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xee);
        __m512 u2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44);
        __m512 u3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xee);
        __mmask16 m = mask_of(cols);
#define PUT_ROW(row, v) (cols == 16 ? _mm512_storeu_ps(dst + (row) * ldd, v) : _mm512_mask_storeu_ps(dst + (row) * ldd, m, v))
        PUT_ROW(c, _mm512_shuffle_f32x4(u0, u2, 0x88));
        PUT_ROW(4 + c, _mm512_shuffle_f32x4(u0, u2, 0xdd));
        PUT_ROW(8 + c, _mm512_shuffle_f32x4(u1, u3, 0x88));
        PUT_ROW(12 + c, _mm512_shuffle_f32x4(u1, u3, 0xdd));
#undef PUT_ROW
    }
}

/* P [k, n] (row stride n) = B^T for B [n, k] (row stride ldb): 16 x 16 tiles in registers (the
 * last columns of P a part-filled tile), the last rows of P, past a multiple of 16, element by
 * element. */
static void transpose(float *restrict pk, const float *restrict b, int64_t ldb, int64_t n, int64_t k) {
    int64_t n16 = n / 16 * 16, k16 = k / 16 * 16;
    for (int64_t j0 = 0; j0 < n16; j0 += 16)
        for (int64_t p0 = 0; p0 < k16; p0 += 16) transpose16(pk + p0 * n + j0, n, b + j0 * ldb + p0, ldb, 16);
    if (n > n16)
        for (int64_t p0 = 0; p0 < k16; p0 += 16)
            transpose16(pk + p0 * n + n16, n, b + n16 * ldb + p0, ldb, (int)(n - n16));
    for (int64_t j = 0; j < n; j++)
        for (int64_t p = k16; p < k; p++) pk[p * n + j] = b[j * ldb + p];
}

/* C = alpha op(A) B^T + beta C through the broadcast kernel, B^T transposed a chunk of k at a
 * time (see the file comment); C in panels of rows whose sums fit the scratch array when k takes
 * more than one chunk (each panel transposes B again: one pass of B per SUMS_MAX floats of C). */
static void gemm_transposed(bool ta, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                            int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    float pk[PACK_MAX] __attribute__((aligned(64))), part[SUMS_MAX] __attribute__((aligned(64)));
    int64_t kc = (CHUNK / n) / 16 * 16, a_k = ta ? lda : 1, a_row = ta ? 1 : lda;
    if (kc < 16) kc = 16;
    if (kc >= k) kc = k;
    int64_t panel = kc == k ? m : SUMS_MAX / n;
    for (int64_t i = 0; i < m; i += panel) {
        int64_t rows = m - i < panel ? m - i : panel;
        for (int64_t p = 0; p < k; p += kc) {
            int64_t len = k - p < kc ? k - p : kc;
            transpose(pk, b + p, ldb, n, len);
            sums s = {p > 0 ? part : NULL, p + len < k ? part : NULL, n};
            gemm_broadcast(ta, rows, n, len, alpha, a + i * a_row + p * a_k, lda, pk, n, beta,
                           c + i * ldc, ldc, s);
        }
    }
}

bool nb__gemm_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                     int64_t ldc) {
    if (!tb) {
        gemm_broadcast(ta, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, (sums){NULL, NULL, 0});
        return true;
    }
    /* op(B) = B^T: transposed onto the stack when it is small, which the broadcast kernel then
     * reads as rows (measured: faster than the dot kernel at every step shape, whose final
     * sums cost as much as a short k's products), unless C is narrower than a vector; else the
     * dot kernel, A not transposed.  (The narrow x W3^T, 64 x 10 x 64, ran at 29 % of the FMA
     * peak transposed against 23 % by the dot kernel, but the change of summation order moved
     * trained results the suite checks: a translator's accuracy, Adam's tensor parallel
     * tolerance.) */
    if (k * n <= PACK_MAX && n >= 16) {
        gemm_transposed(ta, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return true;
    }
    if (ta) return false;
    gemm_dot(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return true;
}
