/*
 * elementwise.c — unary and binary maps, where, strided copy, accumulate.
 * Contiguous maps split the flat range over the pool's threads; strided ones split rows.  Every
 * output element is computed by exactly one thread, so results do not depend on thread count.
 */
#include "cpu.h"
#include "strided.h"

#include <math.h>
#include <string.h>

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* softplus with torch's cut-over: above the threshold log(1 + e^bx)/b equals x in float */
static inline float softplusf(float x, float beta, float threshold) {
    return beta * x > threshold ? x : log1pf(expf(beta * x)) / beta;
}

#define NB_SQRT1_2 0.70710678118654752f
#define NB_INV_SQRT_2PI 0.39894228040143268f
#define NB_2_SQRTPI 1.12837916709551257f /* 2/sqrt(pi), erf's slope at 0 */

static float unary_value(nb_unary_op op, float x, float p0, float p1) {
    switch (op) {
    case NB_UN_NEG: return -x;
    case NB_UN_EXP: return expf(x);
    case NB_UN_LOG: return logf(x);
    case NB_UN_SQRT: return sqrtf(x);
    case NB_UN_ABS: return fabsf(x);
    case NB_UN_SIN: return sinf(x);
    case NB_UN_COS: return cosf(x);
    case NB_UN_TANH: return tanhf(x);
    case NB_UN_SIGMOID: return sigmoidf(x);
    case NB_UN_RELU: return x > 0.0f ? x : 0.0f;
    case NB_UN_POW: return p0 == 2.0f ? x * x : powf(x, p0);
    case NB_UN_CLAMP: return fminf(fmaxf(x, p0), p1);
    case NB_UN_ADDS: return x + p0;
    case NB_UN_MULS: return x * p0;
    case NB_UN_STEP: return x > 0.0f ? 1.0f : 0.0f;
    case NB_UN_LEAKY_RELU: return x > 0.0f ? x : p0 * x;
    case NB_UN_ELU: return x > 0.0f ? x : p0 * expm1f(x);
    case NB_UN_SOFTPLUS: return softplusf(x, p0, p1);
    case NB_UN_SILU: return x * sigmoidf(p0 * x);
    case NB_UN_MISH: return x * tanhf(softplusf(x, 1.0f, 20.0f));
    case NB_UN_GELU: return 0.5f * x * (1.0f + erff(x * NB_SQRT1_2));
    case NB_UN_ATAN: return atanf(x);
    case NB_UN_SOFTSIGN: return x / (1.0f + fabsf(x));
    case NB_UN_ERF: return erff(x);
    default: return NAN;
    }
}

/* The loops below repeat one line per op on purpose: a switch inside the loop would stop the
 * compiler from vectorising the cheap ops (neg, relu, add-scalar...). */
#define MAP(EXPR) NB_SIMD for (int64_t i = 0; i < n; i++) { const float v = x[i]; y[i] = (EXPR); }

/* exp.  glibc's expf is a scalar call of about 3.5 ns, which held nb_exp to a tenth of memcpy's
 * speed.  Where glibc runs its FMA build (__expf_fma: x86-64 with AVX2 and FMA) and the CPU also
 * has AVX-512, the same steps run eight lanes at a time: the same double-precision operations,
 * fused in the same places, on the same table, so each result has expf's bits (checked on all
 * 2^32 inputs).  A block of 64 with a lane that needs expf's special cases (|x| >= 88, inf,
 * nan), and the last n % 64, call expf.  Steps: glibc sysdeps/ieee754/flt-32/e_expf.c; table
 * and constants: e_exp2f_data.c (from Arm's optimized-routines),
 * tab[i] = bits(2^(i/32)) - (i << 47). */
#if defined(__x86_64__) && defined(__GLIBC__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define NB_EXP_AVX512 1

static const uint64_t exp2f_tab[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};

__attribute__((target("avx512f,avx2,fma"))) static void exp_avx512(float *y, const float *x,
                                                                     int64_t n) {
    const __m512d inv_ln2_32 = _mm512_set1_pd(0x1.71547652b82fep+5);
    const __m512d shift = _mm512_set1_pd(0x1.8p+52), one = _mm512_set1_pd(1.0);
    const __m512d c0 = _mm512_set1_pd(0x1.c6af84b912394p-20);
    const __m512d c1 = _mm512_set1_pd(0x1.ebfce50fac4f3p-13);
    const __m512d c2 = _mm512_set1_pd(0x1.62e42ff0c52d6p-6);
    const __m512i t0 = _mm512_loadu_si512(exp2f_tab), t1 = _mm512_loadu_si512(exp2f_tab + 8);
    const __m512i t2 = _mm512_loadu_si512(exp2f_tab + 16);
    const __m512i t3 = _mm512_loadu_si512(exp2f_tab + 24), bit4 = _mm512_set1_epi64(16);
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    const __m256i below_88 = _mm256_set1_epi32(0x42afffff);
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        /* one test per 64 elements: the largest |x| (as bits) against 88 */
        __m256i m = _mm256_setzero_si256();
        for (int j = 0; j < 64; j += 8)
            m = _mm256_max_epi32(m, _mm256_and_si256(_mm256_loadu_si256((const void *)(x + i + j)),
                                                     abs_mask));
        if (_mm256_movemask_epi8(_mm256_cmpgt_epi32(m, below_88))) {
            for (int j = 0; j < 64; j++) y[i + j] = expf(x[i + j]);
            continue;
        }
        for (int j = 0; j < 64; j += 8) {
            /* x 32/ln2 = k + r; exp(x) = 2^(k/32) 2^(r/32) ~ s (c0 r^3 + c1 r^2 + c2 r + 1) */
            __m512d xd = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + j));
            __m512d kd = _mm512_fmadd_pd(inv_ln2_32, xd, shift);
            __m512i ki = _mm512_castpd_si512(kd);
            kd = _mm512_sub_pd(kd, shift);
            __m512d r = _mm512_fmsub_pd(inv_ln2_32, xd, kd);
            __m512i lo = _mm512_permutex2var_epi64(t0, ki, t1); /* tab[k % 16] */
            __m512i hi = _mm512_permutex2var_epi64(t2, ki, t3); /* tab[16 + k % 16] */
            __m512i t = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(ki, bit4), lo, hi);
            __m512d s = _mm512_castsi512_pd(_mm512_add_epi64(t, _mm512_slli_epi64(ki, 47)));
            __m512d z = _mm512_fmadd_pd(c0, r, c1), r2 = _mm512_mul_pd(r, r);
            __m512d p = _mm512_fmadd_pd(z, r2, _mm512_fmadd_pd(c2, r, one));
            _mm256_storeu_ps(y + i + j, _mm512_cvtpd_ps(_mm512_mul_pd(p, s)));
        }
    }
    for (; i < n; i++) y[i] = expf(x[i]);
}
#endif

void nb__cpu_exp_floats(float *y, const float *x, int64_t n) {
#ifdef NB_EXP_AVX512
    if (nb__cpu_isa() == NB_ISA_AVX512) {
        exp_avx512(y, x, n);
        return;
    }
#endif
    /* no simd mark: a loop of expf calls does not vectorise, and clang warns when told to */
    for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

/* A map's arguments; the ranges below work on elements [lo, hi) of them. */
typedef struct {
    nb_unary_op op;
    float *y, *dx;
    const float *x, *yf, *dy;
    float p0, p1;
} map_job;

NB_CLONES static void unary_range(void *arg, int64_t lo, int64_t hi) {
    const map_job *j = arg;
    float *y = j->y + lo, p0 = j->p0, p1 = j->p1;
    const float *x = j->x + lo;
    int64_t n = hi - lo;
    switch (j->op) {
    case NB_UN_NEG: MAP(-v); break;
    case NB_UN_EXP: nb__cpu_exp_floats(y, x, n); break;
    case NB_UN_RELU: MAP(v > 0.0f ? v : 0.0f); break;
    case NB_UN_ADDS: MAP(v + p0); break;
    case NB_UN_MULS: MAP(v * p0); break;
    case NB_UN_ABS: MAP(fabsf(v)); break;
    case NB_UN_CLAMP: MAP(fminf(fmaxf(v, p0), p1)); break;
    default: MAP(unary_value(j->op, v, p0, p1)); break;
    }
}

void nb__cpu_unary(nb_unary_op op, float *y, const float *x, int64_t n, float p0, float p1) {
    map_job j = {.op = op, .y = y, .x = x, .p0 = p0, .p1 = p1};
    nb__parallel_for(n > NB_CPU_PARALLEL_MIN, n, unary_range, &j);
}

/* g is loaded before the expression so that a select such as relu's "y > 0 ? g : 0" reads it
 * unconditionally and vectorises as a blend instead of a branch per element. */
#define MAP_BACK(EXPR) \
    NB_SIMD for (int64_t i = 0; i < n; i++) { const float g = dy[i]; (void)g; dx[i] = (EXPR); }

NB_CLONES static void unary_backward_range(void *arg, int64_t lo, int64_t hi) {
    const map_job *j = arg;
    float *dx = j->dx + lo, p0 = j->p0, p1 = j->p1;
    const float *x = j->x ? j->x + lo : NULL, *y = j->yf ? j->yf + lo : NULL, *dy = j->dy + lo;
    int64_t n = hi - lo;
    switch (j->op) {
    case NB_UN_NEG: MAP_BACK(-g); break;
    case NB_UN_EXP: MAP_BACK(g * y[i]); break;
    case NB_UN_LOG: MAP_BACK(g / x[i]); break;
    case NB_UN_SQRT: MAP_BACK(g / (2.0f * y[i])); break;
    case NB_UN_ABS: MAP_BACK(x[i] > 0.0f ? g : x[i] < 0.0f ? -g : 0.0f); break;
    case NB_UN_SIN: MAP_BACK(g * cosf(x[i])); break;
    case NB_UN_COS: MAP_BACK(-g * sinf(x[i])); break;
    case NB_UN_TANH: MAP_BACK(g * (1.0f - y[i] * y[i])); break;
    case NB_UN_SIGMOID: MAP_BACK(g * y[i] * (1.0f - y[i])); break;
    case NB_UN_RELU: MAP_BACK(y[i] > 0.0f ? g : 0.0f); break;
    /* d/dx x^p = p x^(p-1); torch defines it as 0 for p == 0 */
    case NB_UN_POW: MAP_BACK(p0 == 0.0f ? 0.0f : g * p0 * powf(x[i], p0 - 1.0f)); break;
    /* torch passes the gradient where min <= x <= max, bounds included */
    case NB_UN_CLAMP: MAP_BACK(x[i] >= p0 && x[i] <= p1 ? g : 0.0f); break;
    case NB_UN_ADDS: MAP_BACK(g); break;
    case NB_UN_MULS: MAP_BACK(g * p0); break;
    case NB_UN_STEP: MAP_BACK(0.0f); break;
    case NB_UN_LEAKY_RELU: MAP_BACK(x[i] > 0.0f ? g : g * p0); break;
    /* x <= 0: d/dx p0 (e^x - 1) = p0 e^x = y + p0 */
    case NB_UN_ELU: MAP_BACK(x[i] > 0.0f ? g : g * (y[i] + p0)); break;
    /* d/dx log(1 + e^bx)/b = sigmoid(bx) */
    case NB_UN_SOFTPLUS: MAP_BACK(p0 * x[i] > p1 ? g : g * sigmoidf(p0 * x[i])); break;
    /* d/dx x s(bx) = s + b x s (1 - s) */
    case NB_UN_SILU: {
        MAP_BACK(g * (sigmoidf(p0 * x[i]) * (1.0f + p0 * x[i] * (1.0f - sigmoidf(p0 * x[i])))));
        break;
    }
    /* d/dx x tanh(sp(x)) = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2) */
    case NB_UN_MISH: {
        MAP_BACK(g * (tanhf(softplusf(x[i], 1.0f, 20.0f)) +
                          x[i] * sigmoidf(x[i]) *
                              (1.0f - tanhf(softplusf(x[i], 1.0f, 20.0f)) * tanhf(softplusf(x[i], 1.0f, 20.0f)))));
        break;
    }
    /* d/dx x Phi(x) = Phi(x) + x phi(x) */
    case NB_UN_GELU: {
        MAP_BACK(g * (0.5f * (1.0f + erff(x[i] * NB_SQRT1_2)) +
                          x[i] * NB_INV_SQRT_2PI * expf(-0.5f * x[i] * x[i])));
        break;
    }
    case NB_UN_ATAN: MAP_BACK(g / (1.0f + x[i] * x[i])); break;
    case NB_UN_SOFTSIGN: MAP_BACK(g / ((1.0f + fabsf(x[i])) * (1.0f + fabsf(x[i])))); break;
    case NB_UN_ERF: MAP_BACK(g * NB_2_SQRTPI * expf(-x[i] * x[i])); break;
    default: MAP_BACK(NAN); break;
    }
}

void nb__cpu_unary_backward(nb_unary_op op, float *dx, const float *x, const float *y,
                            const float *dy, int64_t n, float p0, float p1) {
    map_job j = {.op = op, .dx = dx, .x = x, .yf = y, .dy = dy, .p0 = p0, .p1 = p1};
    nb__parallel_for(n > NB_CPU_PARALLEL_MIN, n, unary_backward_range, &j);
}

/* GCC at -O2 vectorises no loop of unknown length unless it is marked simd (a contiguous add
 * ran at one element a cycle, under memcpy's speed); clang vectorises the row by itself and
 * would warn that it cannot for powf's. */
#ifdef __clang__
#define SIMD_ROW
#else
#define SIMD_ROW NB_SIMD
#endif

/* One row of out = a op b; ia, ib are the row strides of a and b (1, 0 or other). */
#define ROW(EXPR)                                                                      \
    do {                                                                               \
        if (ia == 1 && ib == 1)                                                        \
            SIMD_ROW                                                                   \
            for (int64_t j = 0; j < len; j++) { float x = a[j], z = b[j]; o[j] = (EXPR); } \
        else if (ia == 1 && ib == 0) {                                                 \
            const float z = b[0];                                                      \
            for (int64_t j = 0; j < len; j++) { float x = a[j]; o[j] = (EXPR); }       \
        } else if (ia == 0 && ib == 1) {                                               \
            const float x = a[0];                                                      \
            for (int64_t j = 0; j < len; j++) { float z = b[j]; o[j] = (EXPR); }       \
        } else                                                                         \
            for (int64_t j = 0; j < len; j++) {                                        \
                float x = a[j * ia], z = b[j * ib];                                    \
                o[j] = (EXPR);                                                         \
            }                                                                          \
    } while (0)

NB_CLONES static void binary_row(nb_binary_op op, float *o, const float *a, int64_t ia, const float *b,
                       int64_t ib, int64_t len) {
    switch (op) {
    case NB_BIN_ADD: ROW(x + z); break;
    case NB_BIN_SUB: ROW(x - z); break;
    case NB_BIN_MUL: ROW(x * z); break;
    case NB_BIN_DIV: ROW(x / z); break;
    case NB_BIN_POW: ROW(powf(x, z)); break;
    case NB_BIN_EQ: ROW(x == z ? 1.0f : 0.0f); break;
    case NB_BIN_NE: ROW(x != z ? 1.0f : 0.0f); break;
    case NB_BIN_LT: ROW(x < z ? 1.0f : 0.0f); break;
    case NB_BIN_LE: ROW(x <= z ? 1.0f : 0.0f); break;
    case NB_BIN_GT: ROW(x > z ? 1.0f : 0.0f); break;
    case NB_BIN_GE: ROW(x >= z ? 1.0f : 0.0f); break;
    default: break;
    }
}

/* A strided map's arguments: its layout, rows of len elements, up to three operands. */
typedef struct {
    nb_layout l;
    int64_t len, chunk, per_row, inner[3];
    nb_binary_op op;
    void *out;
    const void *in[3];
    size_t es;
} strided_job;

static void binary_range(void *arg, int64_t lo, int64_t hi) {
    const strided_job *j = arg;
    const float *a = j->in[0], *b = j->in[1];
    int64_t ia = j->inner[0], ib = j->inner[1];
    for (int64_t t = lo; t < hi; t++) {
        int64_t row = t / j->per_row, j0 = (t % j->per_row) * j->chunk;
        int64_t n = j->len - j0 < j->chunk ? j->len - j0 : j->chunk, off[2];
        nb__layout_row_offsets(&j->l, row, off);
        binary_row(j->op, (float *)j->out + row * j->len + j0, a + off[0] + j0 * ia, ia,
                   b + off[1] + j0 * ib, ib, n);
    }
}

/* Rows are split into chunks of about NB_CPU_PARALLEL_MIN elements so that a single long row
 * (the contiguous case) is also shared between threads. */
void nb__cpu_binary(nb_binary_op op, float *out, const float *a, const int64_t *sa,
                    const float *b, const int64_t *sb, int ndim, const int64_t *shape) {
    strided_job j = {.op = op, .out = out, .in = {a, b}};
    nb__layout_init(&j.l, ndim, shape, 2, (const int64_t *const[]){sa, sb});
    int64_t rows = nb__layout_rows(&j.l);
    j.len = nb__layout_row_len(&j.l);
    j.inner[0] = nb__layout_inner_stride(&j.l, 0), j.inner[1] = nb__layout_inner_stride(&j.l, 1);
    j.chunk = j.len > NB_CPU_PARALLEL_MIN ? NB_CPU_PARALLEL_MIN : j.len;
    j.per_row = j.chunk ? (j.len + j.chunk - 1) / j.chunk : 0;
    nb__parallel_for(rows * j.len > NB_CPU_PARALLEL_MIN, rows * j.per_row, binary_range, &j);
}

NB_CLONES static void where_range(void *arg, int64_t lo, int64_t hi) {
    const strided_job *j = arg;
    const float *c = j->in[0], *a = j->in[1], *b = j->in[2];
    int64_t ic = j->inner[0], ia = j->inner[1], ib = j->inner[2];
    for (int64_t r = lo; r < hi; r++) {
        int64_t off[3];
        nb__layout_row_offsets(&j->l, r, off);
        float *o = (float *)j->out + r * j->len;
        for (int64_t k = 0; k < j->len; k++)
            o[k] = c[off[0] + k * ic] != 0.0f ? a[off[1] + k * ia] : b[off[2] + k * ib];
    }
}

void nb__cpu_where(float *out, const float *c, const int64_t *sc, const float *a,
                   const int64_t *sa, const float *b, const int64_t *sb, int ndim,
                   const int64_t *shape) {
    strided_job j = {.out = out, .in = {c, a, b}};
    nb__layout_init(&j.l, ndim, shape, 3, (const int64_t *const[]){sc, sa, sb});
    int64_t rows = nb__layout_rows(&j.l);
    j.len = nb__layout_row_len(&j.l);
    for (int k = 0; k < 3; k++) j.inner[k] = nb__layout_inner_stride(&j.l, k);
    nb__parallel_for(rows * j.len > NB_CPU_PARALLEL_MIN, rows, where_range, &j);
}

NB_CLONES static void copy_range(void *arg, int64_t lo, int64_t hi) {
    const strided_job *j = arg;
    int64_t io = j->inner[0], ix = j->inner[1], len = j->len, es = (int64_t)j->es;
    for (int64_t r = lo; r < hi; r++) {
        int64_t off[2];
        nb__layout_row_offsets(&j->l, r, off);
        char *o = (char *)j->out + off[0] * es;
        const char *s = (const char *)j->in[0] + off[1] * es;
        if (io == 1 && ix == 1) memcpy(o, s, (size_t)(len * es));
        else if (es == 4)
            for (int64_t k = 0; k < len; k++) ((float *)o)[k * io] = ((const float *)s)[k * ix];
        else
            for (int64_t k = 0; k < len; k++) memcpy(o + k * io * es, s + k * ix * es, (size_t)es);
    }
}

void nb__cpu_copy(void *out, const int64_t *so, const void *x, const int64_t *sx, int ndim,
                  const int64_t *shape, size_t es) {
    strided_job j = {.out = out, .in = {x}, .es = es};
    nb__layout_init(&j.l, ndim, shape, 2, (const int64_t *const[]){so, sx});
    int64_t rows = nb__layout_rows(&j.l);
    j.len = nb__layout_row_len(&j.l);
    j.inner[0] = nb__layout_inner_stride(&j.l, 0), j.inner[1] = nb__layout_inner_stride(&j.l, 1);
    nb__parallel_for(rows * j.len > NB_CPU_PARALLEL_MIN, rows, copy_range, &j);
}

/* Offset in x of the element at coordinates idx_nd with coordinate dim replaced by k. */
static int64_t gather_offset(const int64_t *coord, const int64_t *sx, int ndim, int dim, int32_t k) {
    int64_t off = 0;
    for (int d = 0; d < ndim; d++) off += (d == dim ? k : coord[d]) * sx[d];
    return off;
}

static void next_coord(int64_t *coord, const int64_t *shape, int ndim) {
    for (int d = ndim - 1; d >= 0; d--) {
        if (++coord[d] < shape[d]) return;
        coord[d] = 0;
    }
}

void nb__cpu_gather(float *out, const float *x, const int64_t *sx, const int32_t *idx, int ndim,
                    const int64_t *shape, int dim) {
    int64_t coord[NB_MAX_DIMS] = {0}, n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    for (int64_t i = 0; i < n; i++, next_coord(coord, shape, ndim))
        out[i] = x[gather_offset(coord, sx, ndim, dim, idx[i])];
}

/* Serial on purpose: two indices may name the same element, and a fixed order keeps the sum
 * deterministic. */
void nb__cpu_scatter_add(float *dx, const int64_t *sdx, const float *dy, const int32_t *idx,
                         int ndim, const int64_t *shape, int dim) {
    int64_t coord[NB_MAX_DIMS] = {0}, n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    for (int64_t i = 0; i < n; i++, next_coord(coord, shape, ndim))
        dx[gather_offset(coord, sdx, ndim, dim, idx[i])] += dy[i];
}

NB_CLONES static void accumulate_range(void *arg, int64_t lo, int64_t hi) {
    const map_job *j = arg;
    NB_SIMD for (int64_t i = lo; i < hi; i++) j->dx[i] += j->dy[i];
}

void nb__cpu_accumulate(float *dst, const float *src, int64_t n) {
    map_job j = {.dx = dst, .dy = src};
    nb__parallel_for(n > NB_CPU_PARALLEL_MIN, n, accumulate_range, &j);
}
