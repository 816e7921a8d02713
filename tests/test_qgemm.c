/*
 * test_qgemm.c — the low-precision GEMMs and requantization of the backend (src/backend/cpu/
 * qgemm.c, qgemm_avx512.c): uint8 x int8 -> int32 against an int64 reference, exactly, with zero
 * points, every transpose, odd sizes, k across chunks and not a multiple of the 4-element groups,
 * and the extremes of the int32 range; bfloat16 x bfloat16 -> float32 against a double reference,
 * and in its documented order (pairs, the odd term first); the AVX-512 kernels equal to the
 * portable loops bit for bit where the CPU has them (ctest runs the program again with
 * NB_CPU_ISA=baseline, where the backend itself takes the loops); requantization's rounding
 * (half to even), saturation, NaN, ReLU, per-row and per-column scales, and float output.  The
 * backend's entries are called on device memory, so the guarded run checks their wrappers.
 */
#include "check.h"
#include "backend/cpu/cpu.h"

static const nb_backend *be;

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint32_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1du) >> 32);
}

/* Device copies of host arrays, and back. */
static void *to_device(const void *host, size_t nbytes) {
    void *d = be->alloc(nbytes ? nbytes : 1);
    if (nbytes) be->copy_h2d(d, host, nbytes);
    return d;
}
static void from_device(void *host, void *d, size_t nbytes) {
    be->copy_d2h(host, d, nbytes);
    be->free(d, nbytes ? nbytes : 1);
}

typedef struct {
    int64_t m, n, k;
} dims;

/* The course MLP's products (x W^T forward, the backward ones), LeNet-like narrow ones, sizes
 * that are odd, 1, not a multiple of the 4-element group, or cross a chunk of k (512 int8 /
 * 256 bfloat16 values) with a partial group at the end. */
static const dims shapes[] = {
    {64, 64, 784}, {64, 784, 64}, {64, 64, 10}, {64, 10, 64}, {10, 64, 64}, {1, 1, 1}, {1, 1, 5},
    {1, 17, 3},    {7, 13, 33},   {5, 70, 130}, {17, 5, 6},   {33, 66, 515}, {6, 130, 1031},
};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

/* ---- int8 */

typedef struct {
    int64_t m, n, k, lda, ldb, ldc;
    bool ta, tb;
    uint8_t *a, za;
    int8_t *b, zb;
} qcase;

static qcase qcase_new(dims d, bool ta, bool tb, uint8_t za, int8_t zb) {
    qcase q = {d.m, d.n, d.k, (ta ? d.m : d.k) + 3, (tb ? d.k : d.n) + 1, d.n + 2, ta, tb, NULL, za, NULL, zb};
    int64_t na = (ta ? d.k : d.m) * q.lda, nb = (tb ? d.n : d.k) * q.ldb;
    q.a = malloc((size_t)na), q.b = malloc((size_t)nb);
    for (int64_t i = 0; i < na; i++) q.a[i] = (uint8_t)rnd();
    for (int64_t i = 0; i < nb; i++) q.b[i] = (int8_t)rnd();
    return q;
}

static size_t qa_bytes(const qcase *q) { return (size_t)((q->ta ? q->k : q->m) * q->lda); }
static size_t qb_bytes(const qcase *q) { return (size_t)((q->tb ? q->n : q->k) * q->ldb); }

static int64_t q_ref(const qcase *q, int64_t i, int64_t j) {
    int64_t s = 0;
    for (int64_t p = 0; p < q->k; p++) {
        int64_t a = q->a[q->ta ? p * q->lda + i : i * q->lda + p];
        int64_t b = q->b[q->tb ? j * q->ldb + p : p * q->ldb + j];
        s += (a - q->za) * (b - q->zb);
    }
    return s;
}

/* C through the backend's entry, on device memory; the padding of C's rows stays untouched. */
static int32_t *q_backend(const qcase *q) {
    size_t nc = sizeof(int32_t) * (size_t)(q->m * q->ldc);
    int32_t *c = malloc(nc);
    for (int64_t i = 0; i < q->m * q->ldc; i++) c[i] = 0x5eed;
    uint8_t *a = to_device(q->a, qa_bytes(q));
    int8_t *b = to_device(q->b, qb_bytes(q));
    int32_t *dc = to_device(c, nc);
    be->gemm_u8s8s32(dc, q->ldc, q->ta, q->tb, q->m, q->n, q->k, a, q->lda, q->za, b, q->ldb, q->zb);
    from_device(c, dc, nc);
    be->free(a, qa_bytes(q)), be->free(b, qb_bytes(q));
    return c;
}

/* The number of elements of C that differ from the reference (or padding that was written). */
static int q_mismatches(const qcase *q, const int32_t *c) {
    int bad = 0;
    for (int64_t i = 0; i < q->m; i++)
        for (int64_t j = 0; j < q->ldc; j++)
            bad += j < q->n ? c[i * q->ldc + j] != q_ref(q, i, j) : c[i * q->ldc + j] != 0x5eed;
    return bad;
}

static void u8s8s32_matches_int64_reference_on_all_shapes(void) {
    static const uint8_t zas[] = {0, 128, 255};
    static const int8_t zbs[] = {0, -3, 127, -128};
    for (int s = 0; s < N_SHAPES; s++)
        for (int t = 0; t < 4; t++) {
            qcase q = qcase_new(shapes[s], t & 1, t & 2, zas[(s + t) % 3], zbs[(s + 2 * t) % 4]);
            int32_t *c = q_backend(&q);
            int bad = q_mismatches(&q, c);
            if (bad) fprintf(stderr, "u8s8s32 %lldx%lldx%lld ta %d tb %d za %d zb %d: %d wrong\n",
                             (long long)q.m, (long long)q.n, (long long)q.k, q.ta, q.tb, q.za, q.zb, bad);
            CHECK_EQ_INT(bad, 0);
            free(c), free(q.a), free(q.b);
        }
}

/* k = 32768 (backend.h's bound) with every term at its largest: |sum| = 2^15 255^2, just inside
 * int32, where the kernel's own terms (sum a b, za colsum) leave it and wrap back. */
static void u8s8s32_is_exact_at_the_bound_of_k(void) {
    dims d = {2, 18, 32768};
    for (int sign = 0; sign < 2; sign++) {
        qcase q = qcase_new(d, false, true, sign ? 0 : 255, sign ? -128 : 127);
        memset(q.a, sign ? 255 : 0, qa_bytes(&q));
        memset(q.b, sign ? 0x7f : 0x80, qb_bytes(&q)); /* 127 or -128 */
        int32_t *c = q_backend(&q);
        CHECK_EQ_INT(c[0], 255LL * 255 * 32768);
        CHECK_EQ_INT(q_mismatches(&q, c), 0);
        free(c), free(q.a), free(q.b);
    }
}

/* The AVX-512 VNNI kernel and the portable loops: the same int32 everywhere. */
static void u8s8s32_fast_path_equals_portable_loops(void) {
    if (!nb__cpu_has_vnni()) return; /* the baseline run: the backend is the loops */
    for (int s = 0; s < N_SHAPES; s++)
        for (int t = 0; t < 4; t++) {
            qcase q = qcase_new(shapes[s], t & 1, t & 2, (uint8_t)(17 * s), (int8_t)(5 * t - 7));
            size_t nc = sizeof(int32_t) * (size_t)(q.m * q.ldc);
            int32_t *fast = calloc(1, nc), *plain = calloc(1, nc);
            nb__gemm_u8s8s32_vnni(fast, q.ldc, q.ta, q.tb, q.m, q.n, q.k, q.a, q.lda, q.za, q.b, q.ldb, q.zb);
            nb__gemm_u8s8s32_plain(plain, q.ldc, q.ta, q.tb, q.m, q.n, q.k, q.a, q.lda, q.za, q.b, q.ldb, q.zb);
            CHECK(memcmp(fast, plain, nc) == 0);
            free(fast), free(plain), free(q.a), free(q.b);
        }
}

/* ---- bfloat16 */

static float bf16_f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A random normal bfloat16 of either sign, exponent within 2^-8 .. 2^8. */
static uint16_t rnd_bf16(void) {
    uint32_t r = rnd();
    return (uint16_t)((r & 0x8000) | ((127 - 8 + (r >> 16) % 17) << 7) | (r & 0x7f));
}

typedef struct {
    int64_t m, n, k, lda, ldb, ldc;
    bool ta, tb, accumulate;
    uint16_t *a, *b;
    float *c0; /* C before the call */
} bcase;

static bcase bcase_new(dims d, bool ta, bool tb, bool accumulate) {
    bcase q = {d.m, d.n, d.k, (ta ? d.m : d.k) + 1, (tb ? d.k : d.n) + 3, d.n + 1, ta, tb, accumulate, NULL, NULL, NULL};
    int64_t na = (ta ? d.k : d.m) * q.lda, nb = (tb ? d.n : d.k) * q.ldb;
    q.a = malloc(sizeof(uint16_t) * (size_t)na), q.b = malloc(sizeof(uint16_t) * (size_t)nb);
    q.c0 = malloc(sizeof(float) * (size_t)(q.m * q.ldc));
    for (int64_t i = 0; i < na; i++) q.a[i] = rnd_bf16();
    for (int64_t i = 0; i < nb; i++) q.b[i] = rnd_bf16();
    for (int64_t i = 0; i < q.m * q.ldc; i++) q.c0[i] = bf16_f(rnd_bf16());
    return q;
}

static void bcase_free(bcase *q) { free(q->a), free(q->b), free(q->c0); }
static size_t ba_bytes(const bcase *q) { return sizeof(uint16_t) * (size_t)((q->ta ? q->k : q->m) * q->lda); }
static size_t bb_bytes(const bcase *q) { return sizeof(uint16_t) * (size_t)((q->tb ? q->n : q->k) * q->ldb); }
static size_t bc_bytes(const bcase *q) { return sizeof(float) * (size_t)(q->m * q->ldc); }

static float *b_backend(const bcase *q) {
    float *c = malloc(bc_bytes(q));
    uint16_t *a = to_device(q->a, ba_bytes(q)), *b = to_device(q->b, bb_bytes(q));
    float *dc = to_device(q->c0, bc_bytes(q));
    be->gemm_bf16(dc, q->ldc, q->accumulate, q->ta, q->tb, q->m, q->n, q->k, a, q->lda, b, q->ldb);
    from_device(c, dc, bc_bytes(q));
    be->free(a, ba_bytes(q)), be->free(b, bb_bytes(q));
    return c;
}

/* Within the error of a float32 sum of k + 1 terms (2 (k + 1) 2^-24 of their sizes' sum) of
 * the double one; padding untouched. */
static void bf16_matches_double_reference_on_all_shapes(void) {
    for (int s = 0; s < N_SHAPES; s++)
        for (int t = 0; t < 8; t++) {
            bcase q = bcase_new(shapes[s], t & 1, t & 2, t & 4);
            float *c = b_backend(&q);
            double worst = 0;
            for (int64_t i = 0; i < q.m; i++)
                for (int64_t j = 0; j < q.ldc; j++) {
                    double want = q.accumulate || j >= q.n ? q.c0[i * q.ldc + j] : 0, size = fabs(want);
                    for (int64_t p = 0; j < q.n && p < q.k; p++) {
                        double x = (double)bf16_f(q.a[q.ta ? p * q.lda + i : i * q.lda + p]) *
                                   bf16_f(q.b[q.tb ? j * q.ldb + p : p * q.ldb + j]);
                        want += x, size += fabs(x);
                    }
                    double err = fabs(c[i * q.ldc + j] - want) / (2.0 * (double)(q.k + 1) * 0x1p-24 * size);
                    if (err > worst) worst = err;
                }
            if (worst > 1) fprintf(stderr, "bf16 %lldx%lldx%lld ta %d tb %d acc %d: error %.3g bounds\n",
                                   (long long)q.m, (long long)q.n, (long long)q.k, q.ta, q.tb, q.accumulate, worst);
            CHECK(worst <= 1);
            free(c);
            bcase_free(&q);
        }
}

/* The order backend.h and qgemm.c document, on every path: C(0, 0) over k = 4 with the terms
 * 1, 0 | 2^-30, -1 sums 1 + 0 = 1, then 1 + (-1) = 0 (odd term first), then 0 + 2^-30; in order
 * p = 0..3 (or even first) the 2^-30 would be lost in 1 + 2^-30. */
static void bf16_sums_each_pair_odd_term_first(void) {
    uint16_t a[4] = {0x3f80, 0, 0x3080, 0xbf80}; /* 1, 0, 2^-30, -1 */
    uint16_t b[4] = {0x3f80, 0x3f80, 0x3f80, 0x3f80};
    float c = NAN;
    uint16_t *da = to_device(a, sizeof a), *db = to_device(b, sizeof b);
    float *dc = to_device(&c, sizeof c);
    be->gemm_bf16(dc, 1, false, false, false, 1, 1, 4, da, 4, db, 1);
    from_device(&c, dc, sizeof c);
    be->free(da, sizeof a), be->free(db, sizeof b);
    CHECK(c == 0x1p-30f);
}

/* The AVX-512 kernel and the portable loops: the same bits (exact products throughout). */
static void bf16_fast_path_equals_portable_loops_bit_for_bit(void) {
    if (nb__cpu_isa() != NB_ISA_AVX512) return;
    for (int s = 0; s < N_SHAPES; s++)
        for (int t = 0; t < 8; t++) {
            bcase q = bcase_new(shapes[s], t & 1, t & 2, t & 4);
            float *fast = malloc(bc_bytes(&q)), *plain = malloc(bc_bytes(&q));
            memcpy(fast, q.c0, bc_bytes(&q)), memcpy(plain, q.c0, bc_bytes(&q));
            nb__gemm_bf16_avx512(fast, q.ldc, q.accumulate, q.ta, q.tb, q.m, q.n, q.k, q.a, q.lda, q.b, q.ldb);
            nb__gemm_bf16_plain(plain, q.ldc, q.accumulate, q.ta, q.tb, q.m, q.n, q.k, q.a, q.lda, q.b, q.ldb);
            CHECK(memcmp(fast, plain, bc_bytes(&q)) == 0);
            free(fast), free(plain);
            bcase_free(&q);
        }
}

/* ---- requantization */

/* y (host) from acc [m, n] through the backend, rows of n elements. */
static void requant(void *y, size_t y_elem, const int32_t *acc, int64_t m, int64_t n, nb__requant_args q,
                    int64_t n_params) {
    size_t ny = y_elem * (size_t)(m * n), na = sizeof(int32_t) * (size_t)(m * n), np = sizeof(float) * (size_t)n_params;
    int32_t *dacc = to_device(acc, na);
    float *scale = to_device(q.scale, np), *bias = q.bias ? to_device(q.bias, np) : NULL;
    void *dy = be->alloc(ny);
    q.scale = scale, q.bias = bias;
    be->requantize(dy, n, dacc, n, m, n, &q);
    from_device(y, dy, ny);
    be->free(dacc, na), be->free(scale, np);
    if (bias) be->free(bias, np);
}

static void requantize_rounds_half_to_even(void) {
    const int32_t acc[8] = {1, 3, 5, 7, -1, -3, -5, 9};
    const float half = 0.5f;
    int8_t y[8];
    requant(y, 1, acc, 1, 8, (nb__requant_args){NB_QOUT_S8, NB_QAXIS_TENSOR, &half, NULL, 0, false}, 1);
    const int8_t want[8] = {0, 2, 2, 4, 0, -2, -2, 4}; /* 0.5 1.5 2.5 3.5 -0.5 -1.5 -2.5 4.5 */
    CHECK(memcmp(y, want, sizeof want) == 0);
    uint8_t u[8];
    requant(u, 1, acc, 1, 8, (nb__requant_args){NB_QOUT_U8, NB_QAXIS_TENSOR, &half, NULL, 10, false}, 1);
    const uint8_t want_u[8] = {10, 12, 12, 14, 10, 8, 8, 14};
    CHECK(memcmp(u, want_u, sizeof want_u) == 0);
}

/* Beyond the range: the bounds, also for values past int32 (which a conversion would not
 * take) and for NaN (the lower bound); ReLU raises the lower bound to the zero point. */
static void requantize_saturates_and_sends_nan_to_the_lower_bound(void) {
    const int32_t acc[6] = {INT32_MAX, INT32_MIN, 300, -300, 0, 1};
    const float scales[6] = {1e9f, 1e9f, 1.0f, 1.0f, NAN, 1.0f};
    uint8_t u[6];
    int8_t s[6];
    requant(u, 1, acc, 1, 6, (nb__requant_args){NB_QOUT_U8, NB_QAXIS_COL, scales, NULL, 3, false}, 6);
    const uint8_t want_u[6] = {255, 0, 255, 0, 0, 4};
    CHECK(memcmp(u, want_u, sizeof want_u) == 0);
    requant(s, 1, acc, 1, 6, (nb__requant_args){NB_QOUT_S8, NB_QAXIS_COL, scales, NULL, -5, false}, 6);
    const int8_t want_s[6] = {127, -128, 127, -128, -128, -4};
    CHECK(memcmp(s, want_s, sizeof want_s) == 0);
    requant(u, 1, acc, 1, 6, (nb__requant_args){NB_QOUT_U8, NB_QAXIS_COL, scales, NULL, 3, true}, 6);
    const uint8_t relu_u[6] = {255, 3, 255, 3, 3, 4};
    CHECK(memcmp(u, relu_u, sizeof relu_u) == 0);
    requant(s, 1, acc, 1, 6, (nb__requant_args){NB_QOUT_S8, NB_QAXIS_COL, scales, NULL, -5, true}, 6);
    const int8_t relu_s[6] = {127, -5, 127, -5, -5, -4};
    CHECK(memcmp(s, relu_s, sizeof relu_s) == 0);
}

/* Per row and per column, with bias: fbgemm's steps, ((float)acc + bias) scale, rounded. */
static void requantize_follows_per_row_and_per_column_parameters(void) {
    enum { M = 3, N = 5 };
    int32_t acc[M * N];
    float sc[N], bi[N];
    for (int i = 0; i < M * N; i++) acc[i] = (int32_t)(rnd() % 20001) - 10000;
    for (int j = 0; j < N; j++) sc[j] = 0.001f * (float)(j + 1) + 0.0003f, bi[j] = 7.25f * (float)j - 11.5f;
    for (int axis = NB_QAXIS_ROW; axis <= NB_QAXIS_COL; axis++) {
        uint8_t y[M * N];
        requant(y, 1, acc, M, N, (nb__requant_args){NB_QOUT_U8, (nb_qaxis)axis, sc, bi, 128, false}, N);
        int bad = 0;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                int at = axis == NB_QAXIS_ROW ? i : j;
                float v = ((float)acc[i * N + j] + bi[at]) * sc[at];
                long want = lrintf(v) + 128;
                want = want < 0 ? 0 : want > 255 ? 255 : want;
                bad += y[i * N + j] != want;
            }
        CHECK_EQ_INT(bad, 0);
    }
}

/* float32 out: acc scale + bias (two roundings), ReLU to 0 (NaN kept). */
static void requantize_to_float_scales_then_adds_bias(void) {
    const int32_t acc[4] = {16777217, -3, 5, 0};
    const float sc[4] = {1.0f, 0.5f, 0.1f, NAN}, bi[4] = {0.0f, 1.0f, -0.75f, 0.0f};
    float y[4];
    requant(y, sizeof(float), acc, 1, 4, (nb__requant_args){NB_QOUT_F32, NB_QAXIS_COL, sc, bi, 99, false}, 4);
    CHECK(y[0] == 16777216.0f); /* (float)acc rounds first, as fbgemm's does */
    CHECK(y[1] == -0.5f);
    CHECK(y[2] == 5.0f * 0.1f + -0.75f);
    CHECK(isnan(y[3]));
    requant(y, sizeof(float), acc, 1, 4, (nb__requant_args){NB_QOUT_F32, NB_QAXIS_COL, sc, bi, 0, true}, 4);
    CHECK(y[1] == 0.0f && y[2] == 0.0f && isnan(y[3]));
}

int main(void) {
    be = nb__backend(NB_CPU);
    u8s8s32_matches_int64_reference_on_all_shapes();
    u8s8s32_is_exact_at_the_bound_of_k();
    u8s8s32_fast_path_equals_portable_loops();
    bf16_matches_double_reference_on_all_shapes();
    bf16_sums_each_pair_odd_term_first();
    bf16_fast_path_equals_portable_loops_bit_for_bit();
    requantize_rounds_half_to_even();
    requantize_saturates_and_sends_nan_to_the_lower_bound();
    requantize_follows_per_row_and_per_column_parameters();
    requantize_to_float_scales_then_adds_bias();
    return check_summary();
}
