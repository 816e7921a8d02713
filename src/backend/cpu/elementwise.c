/*
 * elementwise.c — unary and binary maps, where, strided copy, accumulate.
 * Contiguous maps split the flat range over OpenMP threads; strided ones split rows.  Every
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
    default: return NAN;
    }
}

/* The loops below repeat one line per op on purpose: a switch inside the loop would stop the
 * compiler from vectorising the cheap ops (neg, relu, add-scalar...). */
#define MAP(EXPR)                                                                  \
    _Pragma("omp parallel for simd if (n > NB_CPU_PARALLEL_MIN) schedule(static)") \
    for (int64_t i = 0; i < n; i++) { const float v = x[i]; y[i] = (EXPR); }

void nb__cpu_unary(nb_unary_op op, float *y, const float *x, int64_t n, float p0, float p1) {
    switch (op) {
    case NB_UN_NEG: MAP(-v); break;
    case NB_UN_RELU: MAP(v > 0.0f ? v : 0.0f); break;
    case NB_UN_ADDS: MAP(v + p0); break;
    case NB_UN_MULS: MAP(v * p0); break;
    case NB_UN_ABS: MAP(fabsf(v)); break;
    case NB_UN_CLAMP: MAP(fminf(fmaxf(v, p0), p1)); break;
    default: MAP(unary_value(op, v, p0, p1)); break;
    }
}

#define MAP_BACK(EXPR)                                                             \
    _Pragma("omp parallel for simd if (n > NB_CPU_PARALLEL_MIN) schedule(static)") \
    for (int64_t i = 0; i < n; i++) { dx[i] = (EXPR); }

void nb__cpu_unary_backward(nb_unary_op op, float *dx, const float *x, const float *y,
                            const float *dy, int64_t n, float p0, float p1) {
    switch (op) {
    case NB_UN_NEG: MAP_BACK(-dy[i]); break;
    case NB_UN_EXP: MAP_BACK(dy[i] * y[i]); break;
    case NB_UN_LOG: MAP_BACK(dy[i] / x[i]); break;
    case NB_UN_SQRT: MAP_BACK(dy[i] / (2.0f * y[i])); break;
    case NB_UN_ABS: MAP_BACK(x[i] > 0.0f ? dy[i] : x[i] < 0.0f ? -dy[i] : 0.0f); break;
    case NB_UN_SIN: MAP_BACK(dy[i] * cosf(x[i])); break;
    case NB_UN_COS: MAP_BACK(-dy[i] * sinf(x[i])); break;
    case NB_UN_TANH: MAP_BACK(dy[i] * (1.0f - y[i] * y[i])); break;
    case NB_UN_SIGMOID: MAP_BACK(dy[i] * y[i] * (1.0f - y[i])); break;
    case NB_UN_RELU: MAP_BACK(y[i] > 0.0f ? dy[i] : 0.0f); break;
    /* d/dx x^p = p x^(p-1); torch defines it as 0 for p == 0 */
    case NB_UN_POW: MAP_BACK(p0 == 0.0f ? 0.0f : dy[i] * p0 * powf(x[i], p0 - 1.0f)); break;
    /* torch passes the gradient where min <= x <= max, bounds included */
    case NB_UN_CLAMP: MAP_BACK(x[i] >= p0 && x[i] <= p1 ? dy[i] : 0.0f); break;
    case NB_UN_ADDS: MAP_BACK(dy[i]); break;
    case NB_UN_MULS: MAP_BACK(dy[i] * p0); break;
    case NB_UN_STEP: MAP_BACK(0.0f); break;
    case NB_UN_LEAKY_RELU: MAP_BACK(x[i] > 0.0f ? dy[i] : dy[i] * p0); break;
    /* x <= 0: d/dx p0 (e^x - 1) = p0 e^x = y + p0 */
    case NB_UN_ELU: MAP_BACK(x[i] > 0.0f ? dy[i] : dy[i] * (y[i] + p0)); break;
    /* d/dx log(1 + e^bx)/b = sigmoid(bx) */
    case NB_UN_SOFTPLUS: MAP_BACK(p0 * x[i] > p1 ? dy[i] : dy[i] * sigmoidf(p0 * x[i])); break;
    /* d/dx x s(bx) = s + b x s (1 - s) */
    case NB_UN_SILU: {
        MAP_BACK(dy[i] * (sigmoidf(p0 * x[i]) * (1.0f + p0 * x[i] * (1.0f - sigmoidf(p0 * x[i])))));
        break;
    }
    /* d/dx x tanh(sp(x)) = tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2) */
    case NB_UN_MISH: {
        MAP_BACK(dy[i] * (tanhf(softplusf(x[i], 1.0f, 20.0f)) +
                          x[i] * sigmoidf(x[i]) *
                              (1.0f - tanhf(softplusf(x[i], 1.0f, 20.0f)) * tanhf(softplusf(x[i], 1.0f, 20.0f)))));
        break;
    }
    /* d/dx x Phi(x) = Phi(x) + x phi(x) */
    case NB_UN_GELU: {
        MAP_BACK(dy[i] * (0.5f * (1.0f + erff(x[i] * NB_SQRT1_2)) +
                          x[i] * NB_INV_SQRT_2PI * expf(-0.5f * x[i] * x[i])));
        break;
    }
    case NB_UN_ATAN: MAP_BACK(dy[i] / (1.0f + x[i] * x[i])); break;
    case NB_UN_SOFTSIGN: MAP_BACK(dy[i] / ((1.0f + fabsf(x[i])) * (1.0f + fabsf(x[i])))); break;
    default: MAP_BACK(NAN); break;
    }
}

/* One row of out = a op b; ia, ib are the row strides of a and b (1, 0 or other). */
#define ROW(EXPR)                                                                      \
    do {                                                                               \
        if (ia == 1 && ib == 1)                                                        \
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

static void binary_row(nb_binary_op op, float *o, const float *a, int64_t ia, const float *b,
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

/* Rows are split into chunks of about NB_CPU_PARALLEL_MIN elements so that a single long row
 * (the contiguous case) is also shared between threads. */
void nb__cpu_binary(nb_binary_op op, float *out, const float *a, const int64_t *sa,
                    const float *b, const int64_t *sb, int ndim, const int64_t *shape) {
    nb_layout l;
    nb__layout_init(&l, ndim, shape, 2, (const int64_t *const[]){sa, sb});
    int64_t rows = nb__layout_rows(&l), len = nb__layout_row_len(&l);
    int64_t ia = nb__layout_inner_stride(&l, 0), ib = nb__layout_inner_stride(&l, 1);
    int64_t chunk = len > NB_CPU_PARALLEL_MIN ? NB_CPU_PARALLEL_MIN : len;
    int64_t per_row = chunk ? (len + chunk - 1) / chunk : 0, tasks = rows * per_row;
    #pragma omp parallel for if (rows * len > NB_CPU_PARALLEL_MIN) schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t row = t / per_row, j0 = (t % per_row) * chunk;
        int64_t n = len - j0 < chunk ? len - j0 : chunk, off[2];
        nb__layout_row_offsets(&l, row, off);
        binary_row(op, out + row * len + j0, a + off[0] + j0 * ia, ia, b + off[1] + j0 * ib, ib, n);
    }
}

void nb__cpu_where(float *out, const float *c, const int64_t *sc, const float *a,
                   const int64_t *sa, const float *b, const int64_t *sb, int ndim,
                   const int64_t *shape) {
    nb_layout l;
    nb__layout_init(&l, ndim, shape, 3, (const int64_t *const[]){sc, sa, sb});
    int64_t rows = nb__layout_rows(&l), len = nb__layout_row_len(&l);
    int64_t ic = nb__layout_inner_stride(&l, 0), ia = nb__layout_inner_stride(&l, 1),
            ib = nb__layout_inner_stride(&l, 2);
    #pragma omp parallel for if (rows * len > NB_CPU_PARALLEL_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t off[3];
        nb__layout_row_offsets(&l, r, off);
        float *o = out + r * len;
        for (int64_t j = 0; j < len; j++)
            o[j] = c[off[0] + j * ic] != 0.0f ? a[off[1] + j * ia] : b[off[2] + j * ib];
    }
}

void nb__cpu_copy(void *out, const int64_t *so, const void *x, const int64_t *sx, int ndim,
                  const int64_t *shape, size_t es) {
    nb_layout l;
    nb__layout_init(&l, ndim, shape, 2, (const int64_t *const[]){so, sx});
    int64_t rows = nb__layout_rows(&l), len = nb__layout_row_len(&l);
    int64_t io = nb__layout_inner_stride(&l, 0), ix = nb__layout_inner_stride(&l, 1);
    #pragma omp parallel for if (rows * len > NB_CPU_PARALLEL_MIN) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t off[2];
        nb__layout_row_offsets(&l, r, off);
        char *o = (char *)out + off[0] * (int64_t)es;
        const char *s = (const char *)x + off[1] * (int64_t)es;
        if (io == 1 && ix == 1) memcpy(o, s, (size_t)len * es);
        else if (es == 4)
            for (int64_t j = 0; j < len; j++) ((float *)o)[j * io] = ((const float *)s)[j * ix];
        else
            for (int64_t j = 0; j < len; j++) memcpy(o + j * io * (int64_t)es, s + j * ix * (int64_t)es, es);
    }
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

void nb__cpu_accumulate(float *dst, const float *src, int64_t n) {
    #pragma omp parallel for simd if (n > NB_CPU_PARALLEL_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}
