/*
 * print.c — torch-style repr: tensor([[1., 2.],
 *                                    [3., 4.]], requires_grad=True)
 *
 * This follows torch/_tensor_str.py (default print options: precision 4, threshold 1000,
 * edgeitems 3, linewidth 80) step by step, so that the output is the same string:
 *  - The number format is chosen from the nonzero finite values that are shown: if all are
 *    integers, "1." (or scientific when max/min > 1000 or max > 1e8); otherwise four decimals,
 *    or scientific when max/min > 1000, max > 1e8 or min < 1e-4.  Every entry is right-aligned
 *    to the widest formatted nonzero finite value (nan, inf and 0 do not widen the column).
 *    Integer dtypes print as integers, aligned to the widest of all shown values.
 *  - A tensor of more than 1000 elements shows the first and last three entries of each dim
 *    longer than six, with "..." between them.
 *  - A 1-D run wraps after as many entries as fit in 80 columns at its indent.
 *  - Suffixes (size for empty tensors, dtype when not float32, grad_fn or requires_grad) go on
 *    the last line, or on a new line when the line would pass 80 columns.
 */
#include "core.h"

#include <math.h>
#include <string.h>

#define LINE_WIDTH 80
#define EDGE_ITEMS 3
#define THRESHOLD 1000

/* snprintf-like output: writes what fits, counts everything, and tracks the current line. */
typedef struct {
    char *buf;
    size_t cap, len;
    size_t line; /* characters since the last newline */
} out_buf;

static void put(out_buf *o, const char *s) {
    size_t n = strlen(s);
    if (o->len < o->cap) {
        size_t room = o->cap - o->len - 1, k = n < room ? n : room;
        memcpy(o->buf + o->len, s, k);
        o->buf[o->len + k] = '\0';
    }
    o->len += n;
    const char *nl = strrchr(s, '\n');
    o->line = nl ? n - (size_t)(nl + 1 - s) : o->line + n;
}

static void put_repeat(out_buf *o, const char *s, int count) {
    for (int i = 0; i < count; i++) put(o, s);
}

typedef struct {
    const nb_tensor *t;
    const void *vals; /* logical order: int32_t for NB_I32, float for every other dtype */
    bool floating, summarize, int_mode, sci_mode;
    int width;
    double lo, hi; /* smallest and largest magnitude among nonzero finite shown values */
    bool any;      /* some shown value is nonzero and finite */
} printer;

static double value_at(const printer *p, int64_t i) {
    return p->t->dtype == NB_I32 ? (double)((const int32_t *)p->vals)[i]
                                 : (double)((const float *)p->vals)[i];
}

/* Python's "{:.4f}" and friends: nan and inf are spelled alike in every mode, with no sign on
 * nan (C would print "-nan"). */
static void format_value(const printer *p, double v, char *s, size_t cap) {
    if (!p->floating) snprintf(s, cap, "%.0f", v);
    else if (isnan(v)) snprintf(s, cap, "nan");
    else if (isinf(v)) snprintf(s, cap, v > 0 ? "inf" : "-inf");
    else if (p->sci_mode) snprintf(s, cap, "%.4e", v);
    else if (p->int_mode) snprintf(s, cap, "%.0f.", v);
    else snprintf(s, cap, "%.4f", v);
}

static bool is_cut(const printer *p, int64_t size) { return p->summarize && size > 2 * EDGE_ITEMS; }

typedef void (*visit_fn)(printer *p, double v);

/* Calls fn on every value that will be shown, from dim onwards of the block at base. */
static void visit_shown(printer *p, int dim, int64_t base, visit_fn fn) {
    const nb_tensor *t = p->t;
    if (dim == t->ndim) {
        fn(p, value_at(p, base));
        return;
    }
    int64_t size = t->shape[dim], inner = nb__numel(t->ndim - dim - 1, t->shape + dim + 1);
    for (int64_t i = 0; i < size; i++) {
        if (is_cut(p, size) && i == EDGE_ITEMS) i = size - EDGE_ITEMS;
        visit_shown(p, dim + 1, base + i * inner, fn);
    }
}

static void scan_magnitudes(printer *p, double v) {
    if (!isfinite(v) || v == 0) return;
    double a = fabs(v);
    if (!p->any || a < p->lo) p->lo = a;
    if (!p->any || a > p->hi) p->hi = a;
    p->any = true;
    if (v != ceil(v)) p->int_mode = false;
}

static void scan_width(printer *p, double v) {
    if (p->floating && (!isfinite(v) || v == 0)) return;
    char s[64];
    format_value(p, v, s, sizeof s);
    int w = (int)strlen(s);
    if (w > p->width) p->width = w;
}

/* torch's _Formatter. */
static void choose_format(printer *p) {
    p->int_mode = true;
    p->sci_mode = false;
    p->width = 1;
    if (p->floating) {
        visit_shown(p, 0, 0, scan_magnitudes);
        if (!p->any) return;
        bool spread = p->hi / p->lo > 1000.0 || p->hi > 1e8;
        p->sci_mode = p->int_mode ? spread : spread || p->lo < 1e-4;
    }
    visit_shown(p, 0, 0, scan_width);
}

static void put_value(out_buf *o, const printer *p, double v) {
    char s[64], padded[96];
    format_value(p, v, s, sizeof s);
    snprintf(padded, sizeof padded, "%*s", p->width, s);
    put(o, padded);
}

/* torch's _vector_str: the last dim, wrapped to the line width. */
static void put_vector(out_buf *o, const printer *p, int64_t base, int indent) {
    int64_t size = p->t->shape[p->t->ndim - 1];
    int per_line = (LINE_WIDTH - indent) / (p->width + 2);
    if (per_line < 1) per_line = 1;
    bool cut = is_cut(p, size);
    int64_t items = cut ? 2 * EDGE_ITEMS + 1 : size;
    put(o, "[");
    for (int64_t k = 0; k < items; k++) {
        if (k > 0) {
            if (k % per_line == 0) {
                put(o, ",\n");
                put_repeat(o, " ", indent + 1);
            } else {
                put(o, ", ");
            }
        }
        if (cut && k == EDGE_ITEMS) put(o, " ...");
        else put_value(o, p, value_at(p, base + (cut && k > EDGE_ITEMS ? size - items + k : k)));
    }
    put(o, "]");
}

/* torch's _tensor_str_with_formatter for dims [dim, ndim) of the block at base. */
static void put_block(out_buf *o, const printer *p, int dim, int64_t base, int indent) {
    const nb_tensor *t = p->t;
    if (dim == t->ndim - 1) {
        put_vector(o, p, base, indent);
        return;
    }
    int64_t size = t->shape[dim], inner = nb__numel(t->ndim - dim - 1, t->shape + dim + 1);
    put(o, "[");
    for (int64_t i = 0; i < size; i++) {
        if (i > 0) {
            put(o, ",");
            put_repeat(o, "\n", t->ndim - dim - 1);
            put_repeat(o, " ", indent + 1);
        }
        if (is_cut(p, size) && i == EDGE_ITEMS) {
            put(o, "...");
            i = size - EDGE_ITEMS - 1;
            continue;
        }
        put_block(o, p, dim + 1, base + i * inner, indent + 1);
    }
    put(o, "]");
}

/* torch's _add_suffixes, including its bookkeeping: *last starts two above the length of the
 * line, and a suffix moved to a new line resets it to that line's true length. */
static void put_suffix(out_buf *o, const char *suffix, int indent, size_t *last) {
    size_t n = strlen(suffix);
    if (*last + n + 2 > LINE_WIDTH) {
        put(o, ",\n");
        put_repeat(o, " ", indent);
        *last = (size_t)indent + n;
    } else {
        put(o, ", ");
        *last += n + 2;
    }
    put(o, suffix);
}

int nb_format(const nb_tensor *t, char *buf, size_t cap) {
    out_buf o = {.buf = buf, .cap = buf ? cap : 0, .len = 0, .line = 0};
    if (buf && cap) buf[0] = '\0';
    if (!nb__alive(t)) {
        nb__fail_input("format", t);
        put(&o, "tensor(<invalid>)");
        return (int)o.len;
    }
    const char *prefix = "tensor(";
    int indent = (int)strlen(prefix);
    int64_t n = nb__numel(t->ndim, t->shape);
    put(&o, prefix);
    char suffix[128];
    size_t last;
    if (n == 0) {
        put(&o, "[]");
        last = o.line + 2;
        if (t->ndim != 1) { /* Python's tuple: (0, 3) */
            int len = snprintf(suffix, sizeof suffix, "size=(");
            for (int d = 0; d < t->ndim && len < (int)sizeof suffix; d++)
                len += snprintf(suffix + len, sizeof suffix - (size_t)len, d ? ", %lld" : "%lld",
                                (long long)t->shape[d]);
            if (len < (int)sizeof suffix) snprintf(suffix + len, sizeof suffix - (size_t)len, ")");
            put_suffix(&o, suffix, indent, &last);
        }
    } else {
        size_t bytes = sizeof(float) * (size_t)n; /* int32 and float are both 4 bytes */
        void *vals = nb__alloc(bytes);
        if (!vals) return -1;
        if (t->dtype == NB_I32) nb__copy_logical(vals, t); /* exact, unlike a trip via float */
        else nb_copy_to(t, vals, n);
        printer p = {.t = t, .vals = vals, .floating = nb_dtype_is_floating(t->dtype),
                     .summarize = n > THRESHOLD};
        choose_format(&p);
        if (t->ndim == 0) put_value(&o, &p, value_at(&p, 0));
        else put_block(&o, &p, 0, 0, indent);
        nb__dealloc(vals, bytes);
        last = o.line + 2;
    }
    if (t->dtype != NB_F32) {
        snprintf(suffix, sizeof suffix, "dtype=torch.%s", nb_dtype_name(t->dtype));
        put_suffix(&o, suffix, indent, &last);
    }
    if (t->node) {
        snprintf(suffix, sizeof suffix, "grad_fn=<%s>", t->node->grad_fn);
        put_suffix(&o, suffix, indent, &last);
    } else if (t->requires_grad) {
        put_suffix(&o, "requires_grad=True", indent, &last);
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
