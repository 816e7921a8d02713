/*
 * symbolic_expr.c — formulas: trees of sums, products, library functions (symbolic_lib.c),
 * variables and constants; their trivial simplification, number snapping (3.1416 -> pi, 0.4999
 * -> 1/2), evaluation and printing as text and LaTeX.  A KAN's formula is built edge by edge:
 * each edge c f(a x + b) + d of a node's inputs, summed (nb_expr_compose_layer).
 *
 * Conventions: sums and products are n-ary (kids[0..n)); after simplification a sum's constant
 * is its last term and a product's its first factor, which the printer relies on to write
 * "x1 - 2*x2 + 1".  A constant carries its snapped form, value = p/q times 1, pi or e, so that
 * it prints by name; folding makes a plain number again, and snap runs once more after it.
 * Nodes come from the counted allocator; the printed strings from malloc (the caller frees).
 */
#include "symbolic_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { E_CONST, E_VAR, E_ADD, E_MUL, E_FN } expr_kind;
typedef enum { C_PLAIN, C_RATIONAL, C_PI, C_E } const_form; /* value = p/q (times pi or e) */

struct nb_expr {
    expr_kind kind;
    double value;     /* E_CONST */
    const_form form;  /* E_CONST: how it prints */
    long p, q;
    int index;        /* E_VAR: the variable; E_FN: the library function */
    int n, cap;       /* kids: E_ADD, E_MUL (n >= 1), E_FN (n == 1) */
    nb_expr **kids;
};

/* ---------------------------------------------------------------- making and freeing */

static nb_expr *node_new(expr_kind kind) {
    nb_expr *e = nb__alloc(sizeof *e);
    if (!e) return NULL;
    memset(e, 0, sizeof *e);
    e->kind = kind;
    return e;
}

/* The node itself, without its kids. */
static void node_free(nb_expr *e) {
    if (e->kids) nb__dealloc(e->kids, sizeof(nb_expr *) * (size_t)e->cap);
    nb__dealloc(e, sizeof *e);
}

void nb_expr_free(nb_expr *e) {
    if (!e) return;
    for (int i = 0; i < e->n; i++) nb_expr_free(e->kids[i]);
    node_free(e);
}

/* Appends kid to e (taking it); false (kid freed) on allocation failure. */
static bool push(nb_expr *e, nb_expr *kid) {
    if (e->n == e->cap) {
        int cap = e->cap ? 2 * e->cap : 2;
        nb_expr **k = nb__alloc(sizeof(nb_expr *) * (size_t)cap);
        if (!k) {
            nb_expr_free(kid);
            return false;
        }
        if (e->n) memcpy(k, e->kids, sizeof(nb_expr *) * (size_t)e->n);
        if (e->kids) nb__dealloc(e->kids, sizeof(nb_expr *) * (size_t)e->cap);
        e->kids = k;
        e->cap = cap;
    }
    e->kids[e->n++] = kid;
    return true;
}

nb_expr *nb_expr_var(int index) {
    if (index < 0) return nb__fail(NB_ERR_ARG, "expr_var: index %d is negative", index);
    nb_expr *e = node_new(E_VAR);
    if (e) e->index = index;
    return e;
}

nb_expr *nb_expr_const(double value) {
    if (!isfinite(value)) return nb__fail(NB_ERR_VALUE, "expr_const: %g is not finite", value);
    nb_expr *e = node_new(E_CONST);
    if (e) e->value = value;
    return e;
}

/* A node of kind with kids a and b (either may be NULL: b unused), taking them. */
static nb_expr *node_of(expr_kind kind, nb_expr *a, nb_expr *b, bool two) {
    nb_expr *e = a && (b || !two) ? node_new(kind) : NULL;
    if (!e) {
        nb_expr_free(a);
        nb_expr_free(b);
        return NULL;
    }
    if (!push(e, a)) {
        nb_expr_free(b);
        node_free(e);
        return NULL;
    }
    if (two && !push(e, b)) {
        nb_expr_free(e);
        return NULL;
    }
    return e;
}

nb_expr *nb_expr_add(nb_expr *a, nb_expr *b) { return node_of(E_ADD, a, b, true); }
nb_expr *nb_expr_mul(nb_expr *a, nb_expr *b) { return node_of(E_MUL, a, b, true); }

nb_expr *nb_expr_apply(int fn, nb_expr *arg) {
    if (fn < 0 || fn >= nb__symfn_count) {
        nb_expr_free(arg);
        return nb__fail(NB_ERR_ARG, "expr_apply: function %d is out of range", fn);
    }
    nb_expr *e = node_of(E_FN, arg, NULL, false);
    if (e) e->index = fn;
    return e;
}

nb_expr *nb_expr_fitted(const nb_symfit *fit, nb_expr *arg) {
    if (!fit) {
        nb_expr_free(arg);
        return nb__fail(NB_ERR_NULL, "expr_fitted: fit is NULL");
    }
    nb_expr *inner = nb_expr_add(nb_expr_mul(nb_expr_const(fit->a), arg), nb_expr_const(fit->b));
    return nb_expr_add(nb_expr_mul(nb_expr_const(fit->c), nb_expr_apply(fit->fn, inner)),
                       nb_expr_const(fit->d));
}

nb_expr *nb_expr_copy(const nb_expr *e) {
    if (!e) return nb__fail(NB_ERR_NULL, "expr_copy: expression is NULL");
    nb_expr *c = node_new(e->kind);
    if (!c) return NULL;
    *c = *e;
    c->n = c->cap = 0;
    c->kids = NULL;
    for (int i = 0; i < e->n; i++)
        if (!push(c, nb_expr_copy(e->kids[i]))) {
            nb_expr_free(c);
            return NULL;
        }
    return c;
}

nb_status nb_expr_compose_layer(int n_in, nb_expr *const *in, int n_out, const nb_symfit *edges,
                                const bool *active, nb_expr **out) {
    if (n_in < 1 || n_out < 1 || !in || !edges || !out)
        return nb__fail_status(NB_ERR_ARG, "expr_compose_layer: %d inputs, %d outputs, and the "
                               "inputs, edges and out arrays are required", n_in, n_out);
    for (int j = 0; j < n_out; j++) {
        nb_expr *sum = nb_expr_const(0);
        for (int i = 0; i < n_in && sum; i++) {
            const nb_symfit *f = &edges[i * n_out + j];
            if (active && !active[i * n_out + j]) continue;
            nb_expr *term = f->fn == nb__symfn_zero() ? nb_expr_const(f->d)
                                                      : nb_expr_fitted(f, nb_expr_copy(in[i]));
            sum = nb_expr_add(sum, term);
        }
        out[j] = sum ? nb_expr_simplify(sum) : NULL;
        if (!out[j]) {
            for (int k = 0; k < j; k++) nb_expr_free(out[k]);
            return nb_error_code();
        }
    }
    return NB_OK;
}

/* ---------------------------------------------------------------- simplify */

static bool is_const(const nb_expr *e) { return e->kind == E_CONST; }

/* e (freed) replaced by the constant v. */
static nb_expr *become_const(nb_expr *e, double v) {
    nb_expr_free(e);
    return nb_expr_const(v);
}

/* e's only kid, e's shell freed. */
static nb_expr *unwrap(nb_expr *e) {
    nb_expr *k = e->kids[0];
    e->n = 0;
    node_free(e);
    return k;
}

static nb_expr *simp(nb_expr *e);

/* Simplifies every kid; false (e freed) on failure. */
static bool simp_kids(nb_expr *e) {
    bool ok = true;
    for (int i = 0; i < e->n; i++) {
        e->kids[i] = ok ? simp(e->kids[i]) : e->kids[i];
        if (!e->kids[i]) {
            ok = false;
            for (int j = i; j + 1 < e->n; j++) e->kids[j] = e->kids[j + 1];
            e->n--, i--;
        }
    }
    if (!ok) nb_expr_free(e);
    return ok;
}

/* Takes e's kids out, leaving it empty with the same capacity. */
static nb_expr **take_kids(nb_expr *e, int *n) {
    nb_expr **k = e->kids;
    *n = e->n;
    e->kids = NULL;
    e->n = 0;
    e->cap = 0;
    return k;
}

/* A sum or product: nested ones of the same kind flattened, constants folded into one (kept as
 * it was, snapped form included, when it is alone).  Returns the folded constant's node or
 * NULL if none; false on failure (e freed). */
static bool flatten_fold(nb_expr *e, nb_expr **konst) {
    bool add = e->kind == E_ADD;
    int n, cap = e->cap, n_const = 0;
    nb_expr **kids = take_kids(e, &n);
    double acc = add ? 0 : 1;
    bool ok = true;
    *konst = NULL;
    for (int i = 0; i < n; i++) {
        nb_expr *k = kids[i];
        if (!ok) {
            nb_expr_free(k);
        } else if (k->kind == e->kind) { /* the nested node's kids are already flat */
            int m, kcap = k->cap;
            nb_expr **inner = take_kids(k, &m);
            for (int j = 0; j < m; j++) {
                nb_expr *kk = inner[j];
                if (!ok) nb_expr_free(kk);
                else if (is_const(kk)) {
                    acc = add ? acc + kk->value : acc * kk->value;
                    n_const++;
                    if (*konst) nb_expr_free(kk);
                    else *konst = kk;
                } else ok = push(e, kk);
            }
            if (inner) nb__dealloc(inner, sizeof(nb_expr *) * (size_t)kcap);
            node_free(k);
        } else if (is_const(k)) {
            acc = add ? acc + k->value : acc * k->value;
            n_const++;
            if (*konst) nb_expr_free(k);
            else *konst = k;
        } else {
            ok = push(e, k);
        }
    }
    if (kids) nb__dealloc(kids, sizeof(nb_expr *) * (size_t)cap);
    if (ok && n_const > 1) *konst = become_const(*konst, acc), ok = *konst != NULL;
    if (!ok) {
        nb_expr_free(*konst);
        nb_expr_free(e);
    }
    return ok;
}

/* A sum: nonconstant terms, then the constant unless it is 0. */
static nb_expr *simp_add(nb_expr *e) {
    nb_expr *k;
    if (!flatten_fold(e, &k)) return NULL;
    if (k && k->value == 0 && e->n > 0) nb_expr_free(k);
    else if (k && !push(e, k)) return nb_expr_free(e), NULL;
    return e->n == 1 ? unwrap(e) : e;
}

/* c (t1 + t2 + ...) -> c t1 + c t2 + ... */
static nb_expr *distribute(nb_expr *c, nb_expr *sum) {
    for (int i = 0; i < sum->n; i++) {
        nb_expr *cc = i + 1 < sum->n ? nb_expr_copy(c) : c;
        sum->kids[i] = nb_expr_mul(cc, sum->kids[i]);
        if (!sum->kids[i]) {
            if (i + 1 < sum->n) nb_expr_free(c);
            for (int j = i; j + 1 < sum->n; j++) sum->kids[j] = sum->kids[j + 1];
            sum->n--;
            nb_expr_free(sum);
            return NULL;
        }
    }
    return simp(sum);
}

/* A product: the constant first unless it is 1; 0 if it is 0; a constant times a sum is
 * distributed over the sum. */
static nb_expr *simp_mul(nb_expr *e) {
    nb_expr *k;
    if (!flatten_fold(e, &k)) return NULL;
    if (k && k->value == 0) return nb_expr_free(k), become_const(e, 0);
    if (k && k->value == 1 && e->n > 0) nb_expr_free(k), k = NULL;
    if (k && e->n == 1 && e->kids[0]->kind == E_ADD) return distribute(k, unwrap(e));
    if (k) {
        if (!push(e, k)) return nb_expr_free(e), NULL;
        memmove(e->kids + 1, e->kids, sizeof(nb_expr *) * (size_t)(e->n - 1));
        e->kids[0] = k;
    }
    if (e->n == 0) return become_const(e, 1);
    return e->n == 1 ? unwrap(e) : e;
}

/* f(k): identity and 0 go; a function of a constant is evaluated; a power of c t is c^k t^k. */
static nb_expr *simp_fn(nb_expr *e) {
    const nb__symfn *F = &nb__symfns[e->index];
    if (e->index == nb__symfn_zero()) return become_const(e, 0);
    if (e->index == nb__symfn_identity()) return unwrap(e);
    nb_expr *arg = e->kids[0];
    if (is_const(arg)) {
        double v = F->f(arg->value);
        if (isfinite(v)) return become_const(e, v);
        return e;
    }
    if (F->power != 0 && arg->kind == E_MUL && is_const(arg->kids[0])) {
        double c = pow(arg->kids[0]->value, F->power);
        if (!isfinite(c)) return e;
        nb_expr_free(arg->kids[0]);
        arg->kids[0] = nb_expr_const(1);
        if (!arg->kids[0]) return nb_expr_free(e), NULL;
        e->kids[0] = simp(arg);
        if (!e->kids[0]) return node_free(e), NULL;
        return simp(nb_expr_mul(nb_expr_const(c), e));
    }
    return e;
}

static nb_expr *simp(nb_expr *e) {
    if (!e || is_const(e) || e->kind == E_VAR) return e;
    if (!simp_kids(e)) return NULL;
    switch (e->kind) {
    case E_ADD: return simp_add(e);
    case E_MUL: return simp_mul(e);
    default: return simp_fn(e);
    }
}

nb_expr *nb_expr_simplify(nb_expr *e) {
    if (!e) return nb__fail(NB_ERR_NULL, "expr_simplify: expression is NULL");
    return simp(e);
}

/* ---------------------------------------------------------------- snap */

static long gcd(long a, long b) {
    a = labs(a), b = labs(b);
    while (b) {
        long t = a % b;
        a = b, b = t;
    }
    return a ? a : 1;
}

/* Whether v is within tol of (p / q) unit, with p = round(v q / unit) != 0 (or any p when
 * zero_ok); sets the reduced p/q. */
static bool near(double v, double unit, long q, double tol, bool zero_ok, long *pp, long *qq) {
    double p = round(v * (double)q / unit);
    if ((p == 0 && !zero_ok) || fabs(p) > 1e9) return false;
    double s = p / (double)q * unit;
    if (fabs(v - s) > tol * fmax(1, fabs(s))) return false;
    long g = gcd((long)p, q);
    *pp = (long)p / g, *qq = q / g;
    return true;
}

static void snap_const(nb_expr *e, double tol) {
    static const long pi_q[] = {1, 2, 3, 4, 6};
    long p, q;
    double v = e->value;
    if (near(v, 1, 1, tol, true, &p, &q)) {
        e->form = C_RATIONAL;
    } else {
        bool found = false;
        for (int u = 0; u < 2 && !found; u++)
            for (size_t i = 0; i < sizeof pi_q / sizeof pi_q[0] && !found; i++)
                if (near(v, u ? M_E : M_PI, pi_q[i], tol, false, &p, &q)) {
                    e->form = u ? C_E : C_PI, found = true;
                    e->value = (double)p / (double)q * (u ? M_E : M_PI);
                }
        for (long d = 2; d <= 12 && !found; d++)
            if (near(v, 1, d, tol, false, &p, &q)) e->form = C_RATIONAL, found = true;
        if (!found) return;
    }
    if (e->form == C_RATIONAL) e->value = (double)p / (double)q;
    e->p = p, e->q = q;
}

static void snap_all(nb_expr *e, double tol) {
    if (is_const(e)) snap_const(e, tol);
    for (int i = 0; i < e->n; i++) snap_all(e->kids[i], tol);
}

nb_expr *nb_expr_snap(nb_expr *e, double tol) {
    if (!e) return nb__fail(NB_ERR_NULL, "expr_snap: expression is NULL");
    if (!(tol >= 0 && tol < 0.5)) {
        nb_expr_free(e);
        return nb__fail(NB_ERR_ARG, "expr_snap: tol %g is not in [0, 0.5)", tol);
    }
    snap_all(e, tol);
    e = simp(e);
    if (e) snap_all(e, tol); /* what folding made of snapped numbers: 2 * pi */
    return e;
}

/* ---------------------------------------------------------------- eval */

double nb_expr_eval(const nb_expr *e, const double *x) {
    if (!e) return nb__fail(NB_ERR_NULL, "expr_eval: expression is NULL"), NAN;
    switch (e->kind) {
    case E_CONST: return e->value;
    case E_VAR: return x ? x[e->index] : NAN;
    case E_FN: return nb__symfns[e->index].f(nb_expr_eval(e->kids[0], x));
    default: break;
    }
    double acc = e->kind == E_ADD ? 0 : 1;
    for (int i = 0; i < e->n; i++) {
        double v = nb_expr_eval(e->kids[i], x);
        acc = e->kind == E_ADD ? acc + v : acc * v;
    }
    return acc;
}

/* ---------------------------------------------------------------- print */

typedef struct {
    char *s;
    size_t len, cap;
    bool latex, failed;
} strbuf;

static void put(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(strbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->len + (size_t)need + 1 > b->cap) {
        size_t cap = (b->cap + (size_t)need + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = true;
            return;
        }
        b->s = s, b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)need;
}

/* A constant times sign (+1 or -1), by its snapped name where it has one. */
static void put_const(strbuf *b, const nb_expr *e, int sign) {
    if (e->form == C_PLAIN) {
        put(b, "%.6g", sign * e->value);
        return;
    }
    long p = sign * e->p, q = e->q;
    const char *unit = e->form == C_PI ? (b->latex ? "\\pi" : "pi") : e->form == C_E ? "e" : NULL;
    if (!unit) {
        if (q == 1) put(b, "%ld", p);
        else if (b->latex) put(b, "%s\\frac{%ld}{%ld}", p < 0 ? "-" : "", labs(p), q);
        else put(b, "%ld/%ld", p, q);
        return;
    }
    const char *sgn = p < 0 ? "-" : "";
    char num[64];
    if (labs(p) == 1) snprintf(num, sizeof num, "%s", unit);
    else snprintf(num, sizeof num, b->latex ? "%ld %s" : "%ld*%s", labs(p), unit);
    if (q == 1) put(b, "%s%s", sgn, num);
    else if (b->latex) put(b, "%s\\frac{%s}{%ld}", sgn, num, q);
    else put(b, "%s%s/%ld", sgn, num, q);
}

/* Whether e prints as a term with a minus sign (a negative constant or coefficient). */
static bool is_negative(const nb_expr *e) {
    if (is_const(e)) return e->value < 0;
    return e->kind == E_MUL && is_const(e->kids[0]) && e->kids[0]->value < 0;
}

/* Prints without parentheses around e's own sums; sign -1 prints -e (for a negative term). */
static void put_expr(strbuf *b, const nb_expr *e, int sign);

/* Whether e can stand as the base of a power or the denominator of 1/x unparenthesised: a
 * variable, a nonnegative whole number or plain constant, or a call such as sin(..) (not LaTeX's
 * e^{..}, whose power would be ambiguous). */
static bool is_atom(const strbuf *b, const nb_expr *e) {
    switch (e->kind) {
    case E_VAR: return true;
    case E_CONST: return e->value >= 0 && (e->form == C_PLAIN || (e->q == 1 && (e->form == C_RATIONAL || e->p == 1)));
    case E_FN: {
        const nb__symfn *F = &nb__symfns[e->index];
        size_t n = strlen(F->text);
        return F->power == 0 && n > 0 && F->text[n - 1] == ')' &&
               !(b->latex && !strncmp(F->latex, "e^", 2));
    }
    default: return false;
    }
}

static void put_paren(strbuf *b, const nb_expr *e) {
    put(b, b->latex ? "\\left(" : "(");
    put_expr(b, e, 1);
    put(b, b->latex ? "\\right)" : ")");
}

static void put_fn(strbuf *b, const nb_expr *e, int sign) {
    const nb__symfn *F = &nb__symfns[e->index];
    const char *tpl = b->latex ? F->latex : F->text, *at = strstr(tpl, "%s");
    if (sign < 0) put(b, "-");
    put(b, "%.*s", (int)(at - tpl), tpl);
    if (F->atom_arg && !is_atom(b, e->kids[0])) put_paren(b, e->kids[0]);
    else put_expr(b, e->kids[0], 1);
    put(b, "%s", at + 2);
}

static void put_mul(strbuf *b, const nb_expr *e, int sign) {
    int from = 0;
    if (is_const(e->kids[0])) {
        const nb_expr *c = e->kids[0];
        from = 1;
        if (sign * c->value == -1) put(b, "-");
        else if (sign * c->value != 1) {
            put_const(b, c, sign);
            put(b, b->latex ? " " : "*");
        }
    } else if (sign < 0) {
        put(b, "-");
    }
    for (int i = from; i < e->n; i++) {
        if (i > from) put(b, b->latex ? " " : "*");
        if (e->kids[i]->kind == E_ADD) put_paren(b, e->kids[i]);
        else put_expr(b, e->kids[i], 1);
    }
}

static void put_expr(strbuf *b, const nb_expr *e, int sign) {
    switch (e->kind) {
    case E_CONST: put_const(b, e, sign); return;
    case E_VAR: put(b, b->latex ? "%sx_{%d}" : "%sx%d", sign < 0 ? "-" : "", e->index + 1); return;
    case E_FN: put_fn(b, e, sign); return;
    case E_MUL: put_mul(b, e, sign); return;
    case E_ADD: break;
    }
    if (sign < 0) { /* not made by the printer itself: sums are never negated */
        put(b, "-");
        put_paren(b, e);
        return;
    }
    for (int i = 0; i < e->n; i++) {
        bool neg = i > 0 && is_negative(e->kids[i]);
        if (i > 0) put(b, neg ? " - " : " + ");
        put_expr(b, e->kids[i], neg ? -1 : 1);
    }
}

static char *print(const nb_expr *e, bool latex, const char *op) {
    if (!e) return nb__fail(NB_ERR_NULL, "%s: expression is NULL", op);
    strbuf b = {.latex = latex};
    put_expr(&b, e, 1);
    if (b.failed || !b.s) {
        free(b.s);
        return nb__fail(NB_ERR_MEMORY, "%s: out of memory", op);
    }
    return b.s;
}

char *nb_expr_text(const nb_expr *e) { return print(e, false, "expr_text"); }
char *nb_expr_latex(const nb_expr *e) { return print(e, true, "expr_latex"); }
