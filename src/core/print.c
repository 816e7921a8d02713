/*
 * print.c — torch-style repr: tensor([[1., 2.],
 *                                    [3., 4.]], requires_grad=True)
 * The number format follows torch's _tensor_str: integers print as "1.", otherwise four
 * decimals, or scientific notation when the magnitudes span more than 1e3 or leave [1e-4, 1e8).
 * Tensors of more than 1000 elements show the first and last three entries of each dim.
 */
#include "core.h"

#include <math.h>
#include <string.h>

typedef struct {
    char *buf;
    size_t cap, len;
} out_buf;

static void put(out_buf *o, const char *s) {
    size_t n = strlen(s);
    if (o->len < o->cap) {
        size_t room = o->cap - o->len - 1;
        memcpy(o->buf + o->len, s, n < room ? n : room);
        o->buf[o->len + (n < room ? n : room)] = '\0';
    }
    o->len += n;
}

typedef enum { FMT_INT, FMT_FIXED, FMT_SCI } num_format;

typedef struct {
    const nb_tensor *t;
    const float *vals; /* logical order */
    num_format fmt;
    int width;
    bool summarize;
} printer;

static void format_value(const printer *p, float v, char *s, size_t cap) {
    if (isnan(v)) snprintf(s, cap, "nan");
    else if (isinf(v)) snprintf(s, cap, v > 0 ? "inf" : "-inf");
    else if (p->fmt == FMT_INT) snprintf(s, cap, p->t->dtype == NB_I32 || p->t->dtype == NB_I8 ? "%.0f" : "%.0f.", v);
    else if (p->fmt == FMT_FIXED) snprintf(s, cap, "%.4f", v);
    else snprintf(s, cap, "%.4e", v);
}

static void choose_format(printer *p, int64_t n) {
    bool ints = true;
    double lo = INFINITY, hi = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = p->vals[i];
        if (!isfinite(v)) continue;
        if (v != nearbyintf(v)) ints = false;
        double a = fabs(v);
        if (a > 0 && a < lo) lo = a;
        if (a > hi) hi = a;
    }
    if (ints) p->fmt = (hi > 1e8 && p->t->dtype == NB_F32) ? FMT_SCI : FMT_INT;
    else p->fmt = (hi / lo > 1000.0 || hi > 1e8 || lo < 1e-4) ? FMT_SCI : FMT_FIXED;
    p->width = 0;
    char s[48];
    for (int64_t i = 0; i < n; i++) {
        format_value(p, p->vals[i], s, sizeof s);
        int w = (int)strlen(s);
        if (w > p->width) p->width = w;
    }
}

/* Prints dims [dim, ndim) of the block starting at logical index base. */
static void print_block(out_buf *o, const printer *p, int dim, int64_t base, int indent) {
    const nb_tensor *t = p->t;
    int64_t size = t->shape[dim], inner = nb__numel(t->ndim - dim - 1, t->shape + dim + 1);
    bool cut = p->summarize && size > 6;
    put(o, "[");
    for (int64_t i = 0; i < size; i++) {
        if (cut && i == 3) {
            put(o, "...");
            i = size - 4;
            goto separator;
        }
        if (dim == t->ndim - 1) {
            char s[48], padded[64];
            format_value(p, p->vals[base + i], s, sizeof s);
            snprintf(padded, sizeof padded, "%*s", p->width, s);
            put(o, padded);
        } else {
            print_block(o, p, dim + 1, base + i * inner, indent + 1);
        }
    separator:
        if (i + 1 < size) {
            if (dim == t->ndim - 1) {
                put(o, ", ");
            } else {
                put(o, ",");
                for (int k = 0; k < t->ndim - dim - 1; k++) put(o, "\n");
                for (int k = 0; k < indent + 1; k++) put(o, " ");
            }
        }
    }
    put(o, "]");
}

int nb_format(const nb_tensor *t, char *buf, size_t cap) {
    out_buf o = {.buf = buf, .cap = buf ? cap : 0, .len = 0};
    if (buf && cap) buf[0] = '\0';
    if (!nb__alive(t)) {
        nb__fail_input("format", t);
        put(&o, "tensor(<invalid>)");
        return (int)o.len;
    }
    int64_t n = nb__numel(t->ndim, t->shape);
    float *vals = nb__alloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!vals) return -1;
    nb_copy_to(t, vals, n);
    printer p = {.t = t, .vals = vals, .summarize = n > 1000};
    choose_format(&p, n);
    put(&o, "tensor(");
    if (t->ndim == 0) {
        char s[48];
        format_value(&p, vals[0], s, sizeof s);
        put(&o, s);
    } else if (n == 0) {
        put(&o, "[]");
    } else {
        print_block(&o, &p, 0, 0, (int)strlen("tensor("));
    }
    nb__dealloc(vals, sizeof(float) * (size_t)(n ? n : 1));
    if (t->dtype != NB_F32) {
        put(&o, ", dtype=torch.");
        put(&o, nb_dtype_name(t->dtype));
    }
    if (t->node) {
        put(&o, ", grad_fn=<");
        put(&o, t->node->grad_fn);
        put(&o, ">");
    } else if (t->requires_grad) {
        put(&o, ", requires_grad=True");
    }
    put(&o, ")");
    return (int)o.len;
}

nb_status nb_fprint(FILE *f, const nb_tensor *t) {
    if (!nb__alive(t)) return nb__fail_input("print", t), nb_error_code();
    int n = nb_format(t, NULL, 0);
    if (n < 0) return nb_error_code();
    char *s = nb__alloc((size_t)n + 1);
    if (!s) return NB_ERR_MEMORY;
    nb_format(t, s, (size_t)n + 1);
    fprintf(f, "%s\n", s);
    nb__dealloc(s, (size_t)n + 1);
    return NB_OK;
}

nb_status nb_print(const nb_tensor *t) { return nb_fprint(stdout, t); }
