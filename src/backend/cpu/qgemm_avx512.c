/*
 * qgemm_avx512.c — the low-precision GEMMs on AVX-512 (large ones share their panels of
 * columns out over the thread pool, run's comment): uint8 x int8 -> int32 with
 * VNNI's vpdpbusd, and bfloat16 x bfloat16 -> float32 widened to float32 for FMAs.  The file is
 * compiled with AVX-512 (and VNNI) enabled and entered only where cpuid reports them (qgemm.c),
 * which states the contracts' details and holds the portable loops that give the same results.
 *
 * vpdpbusd adds to each int32 lane the four products of the lane's 4 uint8 with the other
 * operand's 4 int8, exactly (no saturation, unlike vpmaddubsw).  So the int8 GEMM is the
 * broadcast scheme of gemm_avx512.c on groups of 4 along k: op(B) is packed so that one vector
 * holds a group for each of 16 columns, and each row's group of A (4 consecutive bytes) is
 * broadcast to every lane.  The bfloat16 GEMM is the same scheme on float32 elements: a bfloat16
 * is the top half of a float32, so both operands are widened as they are packed, and a product of
 * two is exact in float32, so an FMA adds it with the one rounding of the add.  (AVX512-BF16's
 * vdpbf16ps, which takes pairs of bfloat16 directly, measured 86 GFLOP/s on this Xeon against
 * 174 for FMAs, 12 independent chains each: one instruction per 2 cycles against 2 per cycle.)
 * Its k is taken in pairs, the odd element first (vdpbf16ps's order, which qgemm.c documents).
 *
 *   B packed per panel of 64 columns (or 16, the narrow block for the last 32 columns or fewer)
 *   and chunk of KC groups (int8) or float32 elements: [q][j] holds op(B)'s group or element q of
 *   column j, zero past k and past n, 32 KiB at most, so the chunk stays in the L1 cache while
 *   every row block reads it.  A's int8 groups are read in place, or packed for a block of rows
 *   when A is transposed, or (the last only) when the chunk ends inside a group; bfloat16 rows are
 *   always widened into a block's buffer.  A block of 6 rows x 64 columns keeps 24 accumulators
 *   (the narrow block: 16 rows x 16).
 *
 * Each chunk after the first continues from the sums in C, which for float32 is exactly one pass
 * (the accumulator goes to memory and back unrounded), so every element of C is its terms' sum in
 * one fixed order whatever the shapes.  The int8 zero points are applied after the product,
 *   sum (a - za)(b - zb) = sum a b - za colsum(B) - zb rowsum(A) + k za zb,
 * with colsum(B) taken from the packed panels (one more vpdpbusd per vector: ones x B).
 */
#include "cpu.h"

#include <immintrin.h>
#include <string.h>

#define KC 128        /* groups of k per chunk: 512 int8 values, or 128 bfloat16 ones */
#define WIDE 4        /* vectors of columns in the wide block */
#define WIDE_ROWS 6   /* its rows: 24 accumulators */
#define NARROW_ROWS 16 /* the narrow block (one vector of columns): 16 accumulators */

typedef struct {
    bool int8; /* uint8 x int8, else bfloat16 */
    bool ta, tb, accumulate;
    int64_t m, n, k, lda, ldb, ldc;
    const uint8_t *a, *b; /* as bytes */
    void *c;
    uint8_t za;
    int8_t zb;
} job;

static inline uint32_t word(const uint8_t *p) {
    uint32_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

static inline __mmask16 mask_of(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

/* The bits of op(A)(i, p) / op(B)(p, j) (bytes of int8, or bfloat16), 0 past k. */
static inline uint32_t a_elem(const job *g, int64_t i, int64_t p) {
    if (p >= g->k) return 0;
    int64_t at = g->ta ? p * g->lda + i : i * g->lda + p;
    return g->int8 ? g->a[at] : (uint32_t)g->a[2 * at] | (uint32_t)g->a[2 * at + 1] << 8;
}

static inline uint32_t b_elem(const job *g, int64_t p, int64_t j) {
    if (p >= g->k) return 0;
    int64_t at = g->tb ? j * g->ldb + p : p * g->ldb + j;
    return g->int8 ? g->b[at] : (uint32_t)g->b[2 * at] | (uint32_t)g->b[2 * at + 1] << 8;
}

/* The int8 group of op(A)'s row i (of_a) or op(B)'s column i at p, byte by byte (zero past k). */
static uint32_t group_of(const job *g, bool of_a, int64_t i, int64_t p) {
    uint32_t w = 0;
    for (int t = 0; t < 4; t++) w |= (of_a ? a_elem(g, i, p + t) : b_elem(g, p + t, i)) << (8 * t);
    return w;
}

/* Where a block reads its rows' groups (4 int8, or one widened bfloat16): group q of row r at
 * p + r row + q group (bytes), the last one from last[r] instead when last is not NULL (an int8
 * chunk that ends inside a group). */
typedef struct {
    const uint8_t *p;
    int64_t row, group;
    const uint32_t *last;
} groups_at;

/* dst [kq][width] = the first kq int8 groups of width lines (zero from line `lines` on) of a
 * matrix of k rows whose groups run across rows: element (p, l) at src[p ld + l].  A group
 * interleaves the bytes of 4 rows, 16 lines at a time. */
static void interleave(uint32_t *restrict dst, int width, const uint8_t *src, int64_t ld, int64_t kq,
                       int64_t k, int lines) {
    for (int64_t q = 0; q < kq; q++) {
        int64_t p = 4 * q;
        for (int l = 0; l < width; l += 16) {
            __mmask16 m = mask_of(lines - l);
            uint32_t *out = dst + q * width + l;
            __m128i r[4];
            for (int t = 0; t < 4; t++)
                r[t] = p + t < k ? _mm_maskz_loadu_epi8(m, src + (p + t) * ld + l) : _mm_setzero_si128();
            __m128i lo01 = _mm_unpacklo_epi8(r[0], r[1]), hi01 = _mm_unpackhi_epi8(r[0], r[1]);
            __m128i lo23 = _mm_unpacklo_epi8(r[2], r[3]), hi23 = _mm_unpackhi_epi8(r[2], r[3]);
            _mm_storeu_si128((__m128i *)out, _mm_unpacklo_epi16(lo01, lo23));
            _mm_storeu_si128((__m128i *)(out + 4), _mm_unpackhi_epi16(lo01, lo23));
            _mm_storeu_si128((__m128i *)(out + 8), _mm_unpacklo_epi16(hi01, hi23));
            _mm_storeu_si128((__m128i *)(out + 12), _mm_unpackhi_epi16(hi01, hi23));
        }
    }
}

/* op(A)'s groups p0 .. of rows i0 .. i0 + rows for a block: in place (4 consecutive bytes of a
 * row) but for a last group that ends past k and past lda, which goes to buf zero-padded (one
 * that ends within lda is read whole: its bytes past k meet the packed B's zeros); or, when A
 * is transposed, all interleaved into buf. */
static groups_at a_groups(uint32_t *buf, const job *g, int64_t i0, int rows, int64_t p0, int64_t kq) {
    if (g->ta) {
        interleave(buf, 16, g->a + p0 * g->lda + i0, g->lda, kq, g->k - p0, rows);
        return (groups_at){(const uint8_t *)buf, 4, 64, NULL};
    }
    groups_at at = {g->a + i0 * g->lda + p0, g->lda, 4, NULL};
    int64_t p_last = p0 + 4 * (kq - 1);
    if (p_last + 4 > g->k && p_last + 4 > g->lda) {
        for (int r = 0; r < rows; r++) buf[r] = group_of(g, true, i0 + r, p_last);
        at.last = buf;
    }
    return at;
}

/* The byte offsets of 16 consecutive rows of b (row stride ldb elements of es bytes), for a
 * gather; false when they do not fit its int32 lanes. */
static bool row_offsets(__m512i *offsets, int64_t ldb, int es) {
    bool fits = ldb * es * 16 < INT32_MAX;
    *offsets = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                  _mm512_set1_epi32(fits ? (int)(ldb * es) : 0));
    return fits;
}

/* dst [kq][width] = op(B)'s groups p0 .. of columns j0 .. j0 + cols, zero past n: interleaved
 * from rows of b, or, when B is transposed (a column's group is 4 consecutive bytes of a row of
 * b), gathered 16 columns at a time. */
static void pack_b(uint32_t *restrict dst, int width, const job *g, int64_t j0, int cols, int64_t p0,
                   int64_t kq) {
    if (!g->tb) {
        interleave(dst, width, g->b + p0 * g->ldb + j0, g->ldb, kq, g->k - p0, cols);
        return;
    }
    __m512i offsets;
    bool gather = row_offsets(&offsets, g->ldb, 1);
    for (int64_t q = 0; q < kq; q++) {
        int64_t p = p0 + 4 * q;
        for (int jj = 0; jj < width; jj += 16) {
            uint32_t *out = dst + q * width + jj;
            if (gather && p + 4 <= g->k) {
                const uint8_t *at = g->b + (j0 + jj) * g->ldb + p;
                __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask_of(cols - jj), offsets, at, 1);
                _mm512_storeu_si512(out, v);
            } else {
                for (int t = 0; t < 16; t++) out[t] = jj + t < cols ? group_of(g, false, j0 + jj + t, p) : 0;
            }
        }
    }
}

/* ---- bfloat16, widened: a float32 is a bfloat16 followed by 16 zero bits */

static inline __m512i widen16(__mmask16 m, const uint16_t *p) {
    return _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16);
}

/* Stores the pair (p, p + 1) of 16 lines widened, the odd element first: odd at out, even at
 * out + step (floats). */
static inline void put_pair(uint32_t *out, int64_t step, __m512i even, __m512i odd) {
    _mm512_storeu_si512(out, odd);
    _mm512_storeu_si512(out + step, even);
}

/* dst [kc][width] (kc even) = op(B)'s elements p0 .. p0 + kc of columns j0 .. j0 + cols as
 * float32, each pair's odd element first, zero past k and n: widened from rows of b, or, when B
 * is transposed (a pair is 4 consecutive bytes of a row of b), gathered 16 columns at a time. */
static void pack_b_bf16(uint32_t *restrict dst, int width, const job *g, int64_t j0, int cols, int64_t p0,
                        int64_t kc) {
    const uint16_t *b = (const uint16_t *)g->b;
    __m512i offsets;
    bool gather = row_offsets(&offsets, g->ldb, 2);
    for (int64_t t = 0; t < kc; t += 2) {
        int64_t p = p0 + t; /* < k; p + 1 may be k */
        for (int jj = 0; jj < width; jj += 16) {
            __mmask16 m = mask_of(cols - jj);
            uint32_t *out = dst + t * width + jj;
            if (!g->tb) {
                const uint16_t *row = b + p * g->ldb + j0 + jj;
                put_pair(out, width, widen16(m, row), p + 1 < g->k ? widen16(m, row + g->ldb) : _mm512_setzero_si512());
            } else if (gather && p + 1 < g->k) {
                __m512i w = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offsets, b + (j0 + jj) * g->ldb + p, 1);
                put_pair(out, width, _mm512_slli_epi32(w, 16), _mm512_and_si512(w, _mm512_set1_epi32((int)0xffff0000u)));
            } else {
                for (int l = 0; l < 16; l++) {
                    bool in = jj + l < cols;
                    out[l] = in ? b_elem(g, p + 1, j0 + jj + l) << 16 : 0;
                    out[width + l] = in ? b_elem(g, p, j0 + jj + l) << 16 : 0;
                }
            }
        }
    }
}

/* op(A)'s elements p0 .. p0 + kc (kc even) of rows i0 .. i0 + rows widened into buf, each pair's
 * odd element first, zero past k: [rows][KC] from rows of A (32 elements at a time, the two
 * halves of each 32-bit pair swapped), or [kc][16] from rows of A^T. */
static groups_at a_bf16(uint32_t *buf, const job *g, int64_t i0, int rows, int64_t p0, int64_t kc) {
    const uint16_t *a = (const uint16_t *)g->a;
    if (g->ta) {
        __mmask16 m = mask_of(rows);
        for (int64_t t = 0; t < kc; t += 2) {
            const uint16_t *row = a + (p0 + t) * g->lda + i0;
            put_pair(buf + t * 16, 16, widen16(m, row), p0 + t + 1 < g->k ? widen16(m, row + g->lda) : _mm512_setzero_si512());
        }
        return (groups_at){(const uint8_t *)buf, 4, 64, NULL};
    }
    for (int r = 0; r < rows; r++) {
        const uint16_t *row = a + (i0 + r) * g->lda + p0;
        for (int64_t t = 0; t < kc; t += 32) {
            int64_t left = g->k - p0 - t;
            __mmask32 m = left >= 32 ? 0xffffffffu : (__mmask32)((1u << left) - 1);
            __m512i pairs = _mm512_rol_epi32(_mm512_maskz_loadu_epi16(m, row + t), 16); /* odd, even */
            uint32_t *out = buf + r * KC + t;
            _mm512_storeu_si512(out, _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(pairs)), 16));
            _mm512_storeu_si512(out + 16, _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(pairs, 1)), 16));
        }
    }
    return (groups_at){(const uint8_t *)buf, 4 * KC, 4, NULL};
}

/* ---- the blocks */

/* One step of either kind on 32-bit lanes: vpdpbusd (a unsigned, b signed), or a float32 FMA on
 * the same bits (float accumulators travel as __m512i: the casts are free). */
static inline __attribute__((always_inline)) __m512i dot(const bool int8, __m512i acc, __m512i a, __m512i b) {
    if (int8) return _mm512_dpbusd_epi32(acc, a, b);
    return _mm512_castps_si512(_mm512_fmadd_ps(_mm512_castsi512_ps(a), _mm512_castsi512_ps(b), _mm512_castsi512_ps(acc)));
}

/* The blocks: rows (<= their row count) rows of C (row stride ldc, 32-bit elements of either kind)
 * and their vectors of columns (masks m), over kq groups or elements; a says where the rows'
 * are, bp is the packed panel.  from_c: continue from the sums in C, else start at zero.
 * Rows past the end repeat the last one (computed, never stored).  The accumulators are named
 * variables (the macros below): held in an array, gcc kept them in memory. */
#define START(r, v) (from_c && r < rows ? _mm512_maskz_loadu_epi32(m[v], c + r * ldc + 16 * v) : z)
#define PUT(r, v, acc)                                                           \
    do {                                                                         \
        if (r < rows && m[v]) _mm512_mask_storeu_epi32(c + r * ldc + 16 * v, m[v], acc); \
    } while (0)
#define ROW_PTR(r) const uint8_t *a##r = a->p + (r < rows ? r : rows - 1) * a->row
#define IN_PLACE(r) _mm512_set1_epi32((int)word(a##r + a->group * q))
#define LAST(r) _mm512_set1_epi32((int)a->last[r < rows ? r : rows - 1])

/* 6 rows x 4 vectors: 24 accumulators, 4 vectors of B, one broadcast */
#define W_ACC(r) __m512i c##r##0 = START(r, 0), c##r##1 = START(r, 1), c##r##2 = START(r, 2), c##r##3 = START(r, 3)
#define W_DOT(r, SRC)                                                                \
    do {                                                                             \
        __m512i av = SRC(r);                                                         \
        c##r##0 = dot(int8, c##r##0, av, b0), c##r##1 = dot(int8, c##r##1, av, b1);  \
        c##r##2 = dot(int8, c##r##2, av, b2), c##r##3 = dot(int8, c##r##3, av, b3);  \
    } while (0)
#define W_PUT(r) PUT(r, 0, c##r##0); PUT(r, 1, c##r##1); PUT(r, 2, c##r##2); PUT(r, 3, c##r##3)

static inline __attribute__((always_inline)) void wide_body(
    const bool int8, int rows, const __mmask16 *m, int64_t kq, const groups_at *a,
    const uint32_t *bp, int32_t *c, int64_t ldc, bool from_c) {
    const __m512i z = _mm512_setzero_si512();
    W_ACC(0); W_ACC(1); W_ACC(2); W_ACC(3); W_ACC(4); W_ACC(5);
    ROW_PTR(0); ROW_PTR(1); ROW_PTR(2); ROW_PTR(3); ROW_PTR(4); ROW_PTR(5);
    int64_t kq_in = a->last ? kq - 1 : kq; /* groups read in place */
#define W_STEP(SRC)                                                                         \
    do {                                                                                    \
        const uint32_t *bq = bp + q * 16 * WIDE;                                            \
        __m512i b0 = _mm512_load_si512(bq), b1 = _mm512_load_si512(bq + 16);                \
        __m512i b2 = _mm512_load_si512(bq + 32), b3 = _mm512_load_si512(bq + 48);           \
        W_DOT(0, SRC); W_DOT(1, SRC); W_DOT(2, SRC); W_DOT(3, SRC); W_DOT(4, SRC); W_DOT(5, SRC); \
    } while (0)
    int64_t q = 0;
    for (; q < kq_in; q++) W_STEP(IN_PLACE);
    if (a->last) W_STEP(LAST);
    W_PUT(0); W_PUT(1); W_PUT(2); W_PUT(3); W_PUT(4); W_PUT(5);
}

/* 16 rows x 1 vector (C's last 16 columns or fewer) */
#define N_ACC(r) __m512i n##r = START(r, 0)
#define N_DOT(r, SRC) n##r = dot(int8, n##r, SRC(r), b0)
static inline __attribute__((always_inline)) void narrow_body(
    const bool int8, int rows, const __mmask16 *m, int64_t kq, const groups_at *a,
    const uint32_t *bp, int32_t *c, int64_t ldc, bool from_c) {
    const __m512i z = _mm512_setzero_si512();
    N_ACC(0); N_ACC(1); N_ACC(2); N_ACC(3); N_ACC(4); N_ACC(5); N_ACC(6); N_ACC(7);
    N_ACC(8); N_ACC(9); N_ACC(10); N_ACC(11); N_ACC(12); N_ACC(13); N_ACC(14); N_ACC(15);
    ROW_PTR(0); ROW_PTR(1); ROW_PTR(2); ROW_PTR(3); ROW_PTR(4); ROW_PTR(5); ROW_PTR(6); ROW_PTR(7);
    ROW_PTR(8); ROW_PTR(9); ROW_PTR(10); ROW_PTR(11); ROW_PTR(12); ROW_PTR(13); ROW_PTR(14); ROW_PTR(15);
    int64_t kq_in = a->last ? kq - 1 : kq; /* groups read in place */
#define N_STEP(SRC)                                                                         \
    do {                                                                                    \
        __m512i b0 = _mm512_load_si512(bp + q * 16);                                        \
        N_DOT(0, SRC); N_DOT(1, SRC); N_DOT(2, SRC); N_DOT(3, SRC); N_DOT(4, SRC);          \
        N_DOT(5, SRC); N_DOT(6, SRC); N_DOT(7, SRC); N_DOT(8, SRC); N_DOT(9, SRC);          \
        N_DOT(10, SRC); N_DOT(11, SRC); N_DOT(12, SRC); N_DOT(13, SRC); N_DOT(14, SRC);     \
        N_DOT(15, SRC);                                                                     \
    } while (0)
    int64_t q = 0;
    for (; q < kq_in; q++) N_STEP(IN_PLACE);
    if (a->last) N_STEP(LAST);
    PUT(0, 0, n0); PUT(1, 0, n1); PUT(2, 0, n2); PUT(3, 0, n3); PUT(4, 0, n4); PUT(5, 0, n5);
    PUT(6, 0, n6); PUT(7, 0, n7); PUT(8, 0, n8); PUT(9, 0, n9); PUT(10, 0, n10); PUT(11, 0, n11);
    PUT(12, 0, n12); PUT(13, 0, n13); PUT(14, 0, n14); PUT(15, 0, n15);
}

typedef void block_fn(int rows, const __mmask16 *m, int64_t kq, const groups_at *a,
                      const uint32_t *bp, int32_t *c, int64_t ldc, bool from_c);
#define INSTANCE(name, body, int8)                                                              \
    static void name(int rows, const __mmask16 *m, int64_t kq, const groups_at *a, \
                     const uint32_t *bp, int32_t *c, int64_t ldc, bool from_c) {                \
        body(int8, rows, m, kq, a, bp, c, ldc, from_c);                                  \
    }
INSTANCE(wide_u8s8, wide_body, true)
INSTANCE(narrow_u8s8, narrow_body, true)
INSTANCE(wide_bf16, wide_body, false)
INSTANCE(narrow_bf16, narrow_body, false)

/* colsum[jj] += the sum of the int8 column jj of a packed panel, 16 columns a vector. */
static void add_colsums(int32_t *colsum, const uint32_t *bp, int width, int64_t kq) {
    const __m512i ones = _mm512_set1_epi8(1);
    for (int jj = 0; jj < width; jj += 16) {
        __m512i s = _mm512_loadu_si512(colsum + jj);
        for (int64_t q = 0; q < kq; q++) s = _mm512_dpbusd_epi32(s, ones, _mm512_load_si512(bp + q * width + jj));
        _mm512_storeu_si512(colsum + jj, s);
    }
}

/* Row sums of A kept across the blocks of columns when A has at most this many rows (a
 * convolution's weights, whose zero point B's image codes always carry): else summed again
 * for each block. */
#define ROWSUM_CACHE 256

/* The zero points on the columns j0 .. j0 + cols of C (see the file comment), in wrapping
 * unsigned arithmetic: the terms may leave int32 where the result does not.  rowsums: A's row
 * sums when *known, else filled here (when A's rows fit the cache). */
static void apply_zero_points(const job *g, int64_t j0, int cols, const int32_t *colsum,
                              uint32_t *rowsums, bool *known) {
    int32_t *c = g->c;
    uint32_t za = g->za, zb = (uint32_t)(int32_t)g->zb, kzz = (uint32_t)g->k * za * zb;
    bool cache = g->m <= ROWSUM_CACHE;
    for (int64_t i = 0; i < g->m; i++) {
        uint32_t rowsum = 0;
        if (cache && *known) rowsum = rowsums[i];
        else
            for (int64_t p = 0; zb && p < g->k; p++) rowsum += a_elem(g, i, p);
        if (cache) rowsums[i] = rowsum;
        uint32_t row_term = kzz - zb * rowsum;
        for (int jj = 0; jj < cols; jj++) {
            int32_t *cp = c + i * g->ldc + j0 + jj;
            *cp = (int32_t)((uint32_t)*cp - za * (uint32_t)colsum[jj] + row_term);
        }
    }
    *known = cache;
}

/* The panels of columns j0 = lo, lo + 64, ... below hi (the last one may be narrow). */
static void run_panels(const job *g, int64_t lo, int64_t hi) {
    _Alignas(64) uint32_t bp[KC * 16 * WIDE];
    uint32_t ap[NARROW_ROWS * KC];
    int grp = g->int8 ? 4 : 1;                                 /* elements of k per group */
    int64_t groups = g->int8 ? (g->k + 3) / 4 : (g->k + 1) / 2 * 2; /* bfloat16: whole pairs */
    uint32_t rowsums[ROWSUM_CACHE];
    bool rowsums_known = false;
    for (int64_t j0 = lo; j0 < hi;) {
        bool narrow = g->n - j0 <= 32; /* two narrow panels beat a wide one half used */
        int nv = narrow ? 1 : WIDE, rows_max = narrow ? NARROW_ROWS : WIDE_ROWS, width = 16 * nv;
        int cols = (int)(g->n - j0 < width ? g->n - j0 : width);
        __mmask16 m[WIDE];
        for (int v = 0; v < WIDE; v++) m[v] = mask_of(cols - 16 * v);
        block_fn *block = g->int8 ? (narrow ? narrow_u8s8 : wide_u8s8) : narrow ? narrow_bf16 : wide_bf16;
        int32_t colsum[16 * WIDE] = {0};
        for (int64_t q0 = 0; q0 < groups; q0 += KC) {
            int64_t kq = groups - q0 < KC ? groups - q0 : KC, p0 = q0 * grp;
            if (g->int8) pack_b(bp, width, g, j0, cols, p0, kq);
            else pack_b_bf16(bp, width, g, j0, cols, p0, kq);
            if (g->int8 && g->za) add_colsums(colsum, bp, width, kq);
            for (int64_t i0 = 0; i0 < g->m; i0 += rows_max) {
                int rows = (int)(g->m - i0 < rows_max ? g->m - i0 : rows_max);
                groups_at a = g->int8 ? a_groups(ap, g, i0, rows, p0, kq) : a_bf16(ap, g, i0, rows, p0, kq);
                block(rows, m, kq, &a, bp, (int32_t *)g->c + i0 * g->ldc + j0, g->ldc,
                      q0 > 0 || g->accumulate);
            }
        }
        if (g->int8 && (g->za || g->zb)) apply_zero_points(g, j0, cols, colsum, rowsums, &rowsums_known);
        j0 += width;
    }
}

/* Products of at least this many multiply-adds share their panels out over the thread pool:
 * LeNet's first Linear at batch 256 (256 x 1568 x 128, 51M) does; products of 2M shared out
 * took two threads a third more CPU time a sample than one on a busy 2-core machine
 * (bench/ptq.sh, THREADS=2, when each image's convolution was a GEMM: qconv.c now shares out
 * the images of a batch instead, a GEMM of a few images each). */
#define PARALLEL_MIN_MACS (1 << 24)

typedef struct {
    const job *g;
    int64_t panels, pieces;
} panel_job;

static void panel_piece(void *arg, int64_t t, int64_t end) {
    const panel_job *j = arg;
    (void)end;
    int64_t lo = j->panels * t / j->pieces * 16 * WIDE, hi = j->panels * (t + 1) / j->pieces * 16 * WIDE;
    run_panels(j->g, lo, hi < j->g->n ? hi : j->g->n);
}

/* Each panel of columns is computed by one piece, wholly, in the order one thread would: the
 * results are the same bits whatever the thread count. */
static void run(const job *g) {
    panel_job j = {g, (g->n + 16 * WIDE - 1) / (16 * WIDE), nb__threads()};
    if (j.pieces > j.panels) j.pieces = j.panels;
    if (j.pieces < 2 || nb__in_parallel() ||
        (double)g->m * (double)g->n * (double)g->k < PARALLEL_MIN_MACS) {
        run_panels(g, 0, g->n);
        return;
    }
    nb__parallel_each(j.pieces, panel_piece, &j);
}

void nb__gemm_u8s8s32_vnni(int32_t *c, int64_t ldc, bool ta, bool tb, int64_t m, int64_t n,
                           int64_t k, const uint8_t *a, int64_t lda, uint8_t za, const int8_t *b,
                           int64_t ldb, int8_t zb) {
    job g = {true, ta, tb, false, m, n, k, lda, ldb, ldc, a, (const uint8_t *)b, c, za, zb};
    run(&g);
}

void nb__gemm_bf16_avx512(float *c, int64_t ldc, bool accumulate, bool ta, bool tb, int64_t m,
                          int64_t n, int64_t k, const uint16_t *a, int64_t lda, const uint16_t *b,
                          int64_t ldb) {
    job g = {false, ta, tb, accumulate, m, n, k, lda, ldb, ldc, (const uint8_t *)a,
             (const uint8_t *)b, c, 0, 0};
    run(&g);
}
