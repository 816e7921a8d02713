/*
 * auto_symbolic.c — a KAN made symbolic (nabla/kan.h; pykan's auto_symbolic and
 * symbolic_formula): every live edge recognised as c f(a x + b) + d from the library of
 * nabla/symbolic.h and fixed to it, the network composed into one formula, and the choices
 * written to and read back from a model file's metadata.
 *
 * An edge's function must be an nb_kan_fn, a plain function pointer, so each library index
 * gets a wrapper of nb_symbolic_forward (the table below); the edge keeps the library name,
 * which is all a saved model needs to fix the edge again (its a, b, c, d are weights).
 */
#include "kan.h"

#include "symbolic_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* f of library index I as an nb_kan_fn: a new tensor also for the identity, since the layer
 * releases what f returns. */
#define LIB_FN(I)                                                                \
    static nb_tensor *lib_fn_##I(nb_tensor *x) {                                 \
        nb_tensor *r = nb_symbolic_forward(I, x);                                \
        return r == x ? nb_mul_scalar(x, 1.0f) : r;                              \
    }
LIB_FN(0) LIB_FN(1) LIB_FN(2) LIB_FN(3) LIB_FN(4) LIB_FN(5) LIB_FN(6) LIB_FN(7) LIB_FN(8)
LIB_FN(9) LIB_FN(10) LIB_FN(11) LIB_FN(12) LIB_FN(13) LIB_FN(14) LIB_FN(15) LIB_FN(16)
LIB_FN(17) LIB_FN(18) LIB_FN(19) LIB_FN(20) LIB_FN(21) LIB_FN(22) LIB_FN(23)
#undef LIB_FN
static const nb_kan_fn lib_fns[] = {
    lib_fn_0, lib_fn_1, lib_fn_2, lib_fn_3, lib_fn_4, lib_fn_5, lib_fn_6, lib_fn_7,
    lib_fn_8, lib_fn_9, lib_fn_10, lib_fn_11, lib_fn_12, lib_fn_13, lib_fn_14, lib_fn_15,
    lib_fn_16, lib_fn_17, lib_fn_18, lib_fn_19, lib_fn_20, lib_fn_21, lib_fn_22, lib_fn_23,
};
#define N_LIB_FNS ((int)(sizeof lib_fns / sizeof lib_fns[0]))

/* Whether library function fn has an op (sgn, arcsin, arctan do not). */
static bool has_op(int fn) {
    if (fn >= N_LIB_FNS) return false;
    nb_scope_begin();
    bool ok = nb_symbolic_forward(fn, nb_zeros(2, (int64_t[]){1, 1})) != NULL;
    nb_scope_end();
    nb_error_clear();
    return ok;
}

nb_status nb_kan_fix_symbolic_lib(nb_module *layer, int64_t i, int64_t o, const char *name,
                                  float a, float b, float c, float d) {
    int fn = name ? nb_symbolic_find(name) : -1;
    if (fn < 0 || !has_op(fn))
        return nb__fail_status(NB_ERR_ARG, "nb_kan_fix_symbolic_lib: '%s' is not a library "
                               "function with an op", name ? name : "(null)");
    return nb_kan_fix_symbolic(layer, i, o, lib_fns[fn], nb_symbolic_name(fn), a, b, c, d);
}

/* ---------------------------------------------------------------- auto_symbolic */

static bool edge_live(nb_module *layer, int64_t i, int64_t o) {
    return nb_get(nb_module_find(layer, "mask"), (int64_t[]){i, o}) != 0.0f;
}

static void canonical(nb_symfit *f);

/* The best library fit of edge (i, o) fixed, in canonical form (below: better conditioned for
 * training, e^b not in a tiny c); false with the error set. */
static bool fix_best(nb_module *layer, int64_t i, int64_t o, const nb_kan_symbolic_opts *so,
                     int n_fns, const int *fns, float *xs, float *ys, int *fixed) {
    nb_symfit best;
    nb_symbolic_opts fo = {.grid = so->fit_grid, .weight_simple = so->weight_simple};
    if (nb_kan_edge_samples(layer, i, o, so->samples, xs, ys) != NB_OK ||
        nb_symbolic_suggest(so->samples, xs, ys, &fo, n_fns, fns, 1, &best) != 1)
        return false;
    if (best.r2 < so->r2_threshold) return true;
    *fixed += 1;
    canonical(&best);
    return nb_kan_fix_symbolic_lib(layer, i, o, nb_symbolic_name(best.fn), (float)best.a,
                                   (float)best.b, (float)best.c, (float)best.d) == NB_OK;
}

int nb_kan_auto_symbolic(nb_module *kan, const nb_kan_symbolic_opts *opts) {
    nb_kan_symbolic_opts so = opts ? *opts : (nb_kan_symbolic_opts){0};
    if (!so.samples) so.samples = 101;
    if (!so.fit_grid) so.fit_grid = 41;
    if (!so.weight_simple) so.weight_simple = 0.8;
    int L = nb_kan_num_layers(kan);
    if (L < 0) return -1;
    if (so.samples < 2 || so.fit_grid < 3)
        return nb__fail_status(NB_ERR_ARG, "nb_kan_auto_symbolic: samples %d must be >= 2 and "
                               "fit_grid %d >= 3", so.samples, so.fit_grid), -1;
    int fns[N_LIB_FNS], n_fns = 0, fixed = 0;
    for (int fn = 0; fn < nb_symbolic_count(); fn++)
        if (has_op(fn)) fns[n_fns++] = fn;
    float *xs = nb__alloc(2 * sizeof(float) * (size_t)so.samples), *ys = xs ? xs + so.samples : NULL;
    bool ok = xs != NULL;
    for (int l = 0; ok && l < L; l++) {
        nb_module *layer = nb_kan_layer(kan, l);
        for (int64_t i = 0; ok && i < nb_kan_in_features(layer); i++)
            for (int64_t o = 0; ok && o < nb_kan_out_features(layer); o++)
                if (edge_live(layer, i, o))
                    ok = fix_best(layer, i, o, &so, n_fns, fns, xs, ys, &fixed);
    }
    if (xs) nb__dealloc(xs, 2 * sizeof(float) * (size_t)so.samples);
    return ok ? fixed : -1;
}

/* ---------------------------------------------------------------- the formula */

/* c f(a x + b) + d rewritten in the form a reader expects, the same function: for a power
 * x^k the scale taken out, c (a x + b)^k = c a^k (x + b/a)^k, so a = 1 (a fit's (-10 x)^2
 * times 0.01 prints x^2, and no small c snaps to 0); for exp the shift taken out,
 * c e^(a x + b) = c e^b e^(a x); for an odd f with a < 0, c f(a x + b) = -c f(-a x - b), for
 * an even one f(a x + b) = f(-a x - b), so a > 0 (sin(pi x), not -sin(-pi x)). */
static void canonical(nb_symfit *f) {
    static const char *const odd[] = {"sin", "tan", "tanh", "sgn", "arcsin", "arctan"};
    static const char *const even[] = {"cos", "abs", "gaussian", "cosh"};
    int power = nb__symfns[f->fn].power;
    const char *name = nb_symbolic_name(f->fn);
    if (power != 0 && f->a != 0) {
        f->c *= pow(f->a, power);
        f->b /= f->a;
        f->a = 1;
        return;
    }
    if (!strcmp(name, "exp")) f->c *= exp(f->b), f->b = 0;
    if (f->a >= 0) return;
    for (size_t j = 0; j < sizeof odd / sizeof odd[0]; j++)
        if (!strcmp(name, odd[j])) f->a = -f->a, f->b = -f->b, f->c = -f->c;
    for (size_t j = 0; j < sizeof even / sizeof even[0]; j++)
        if (!strcmp(name, even[j])) f->a = -f->a, f->b = -f->b;
}

/* One layer's edges as fits, [in out], and which are on. */
typedef struct {
    int in, out;
    nb_symfit *fits;
    bool *active;
} layer_edges;

/* Layer l's edges (from "affine" and the names); false (error set) for a live edge that is
 * numeric. */
static bool layer_fits(const nb_module *layer, int l, layer_edges *le) {
    nb_tensor *aff = nb_module_find((nb_module *)layer, "affine");
    nb_tensor *mask = nb_module_find((nb_module *)layer, "mask");
    for (int64_t i = 0; i < le->in; i++)
        for (int64_t o = 0; o < le->out; o++) {
            const char *name = nb_kan_symbolic_name(layer, i, o);
            int64_t e = i * le->out + o;
            le->active[e] = name != NULL;
            if (!name && nb_get(mask, (int64_t[]){i, o}) != 0.0f)
                return nb__fail(NB_ERR_ARG, "nb_kan_formula: edge (%d, %lld, %lld) is not "
                                "symbolic (nb_kan_auto_symbolic first)", l, (long long)i,
                                (long long)o), false;
            le->fits[e] = (nb_symfit){.fn = name ? nb_symbolic_find(name) : 0};
            double *v[4] = {&le->fits[e].a, &le->fits[e].b, &le->fits[e].c, &le->fits[e].d};
            for (int q = 0; name && q < 4; q++) *v[q] = nb_get(aff, (int64_t[]){i, q, o});
        }
    return true;
}

/* The constants d of the edges into node j of the layer before moved into the shifts of the
 * edges out of j: f(a (h + D) + b) = f(a h + (b + a D)), so a constant lands where exp can
 * take it out (canonical) instead of inside a sum; the last layer keeps its d. */
static void move_constants(layer_edges *prev, layer_edges *next) {
    for (int j = 0; j < prev->out; j++) {
        double D = 0;
        for (int i = 0; i < prev->in; i++) {
            nb_symfit *f = &prev->fits[i * prev->out + j];
            if (prev->active[i * prev->out + j]) D += f->d, f->d = 0;
        }
        for (int o = 0; o < next->out; o++) {
            nb_symfit *f = &next->fits[j * next->out + o];
            if (next->active[j * next->out + o]) f->b += f->a * D;
        }
    }
}

/* in[0..n) composed through the edges into a new array of their outputs (in freed); NULL on
 * error. */
static nb_expr **compose(const layer_edges *le, nb_expr **in) {
    nb_expr **res = nb__alloc((size_t)le->out * sizeof *res);
    bool ok = res && nb_expr_compose_layer(le->in, in, le->out, le->fits, le->active, res) == NB_OK;
    for (int j = 0; j < le->in; j++) nb_expr_free(in[j]);
    nb__dealloc(in, (size_t)le->in * sizeof *in);
    if (!ok && res) nb__dealloc(res, (size_t)le->out * sizeof *res);
    return ok ? res : NULL;
}

/* Every layer's edges, constants moved and each edge canonical; false with the error set. */
static bool network_edges(const nb_module *kan, int L, layer_edges *les) {
    bool ok = true;
    for (int l = 0; ok && l < L; l++) {
        nb_module *layer = nb_kan_layer(kan, l);
        layer_edges *le = &les[l];
        le->in = (int)nb_kan_in_features(layer);
        le->out = (int)nb_kan_out_features(layer);
        size_t ne = (size_t)le->in * (size_t)le->out;
        le->fits = nb__alloc(ne * sizeof *le->fits);
        le->active = nb__alloc(ne * sizeof *le->active);
        ok = le->fits && le->active && layer_fits(layer, l, le);
    }
    for (int l = 0; ok && l < L; l++) {
        if (l + 1 < L) move_constants(&les[l], &les[l + 1]);
        for (int e = 0; e < les[l].in * les[l].out; e++)
            if (les[l].active[e]) canonical(&les[l].fits[e]);
    }
    return ok;
}

static void free_edges(layer_edges *les, int L) {
    for (int l = 0; l < L; l++) {
        size_t ne = (size_t)les[l].in * (size_t)les[l].out;
        if (les[l].fits) nb__dealloc(les[l].fits, ne * sizeof *les[l].fits);
        if (les[l].active) nb__dealloc(les[l].active, ne * sizeof *les[l].active);
    }
    nb__dealloc(les, (size_t)L * sizeof *les);
}

nb_expr *nb_kan_formula(const nb_module *kan, double snap_tol) {
    int L = nb_kan_num_layers(kan);
    if (L < 0) return NULL;
    layer_edges *les = nb__alloc((size_t)L * sizeof *les);
    if (!les) return NULL;
    memset(les, 0, (size_t)L * sizeof *les);
    int n = (int)nb_kan_in_features(nb_kan_layer(kan, 0));
    nb_expr **v = network_edges(kan, L, les) ? nb__alloc((size_t)n * sizeof *v) : NULL;
    for (int j = 0; v && j < n; j++) v[j] = nb_expr_var(j);
    for (int l = 0; v && l < L; l++) v = compose(&les[l], v);
    n = les[L - 1].out;
    free_edges(les, L);
    if (!v) return NULL;
    nb_expr *e = v[0]; /* the first output; nabla's KAN formulas have one */
    for (int j = 1; j < n; j++) nb_expr_free(v[j]);
    nb__dealloc(v, (size_t)n * sizeof *v);
    e = nb_expr_simplify(e);
    return e && snap_tol > 0 ? nb_expr_snap(e, snap_tol) : e;
}

/* ---------------------------------------------------------------- metadata */

char *nb_kan_symbolic_meta(const nb_module *kan) {
    int L = nb_kan_num_layers(kan);
    if (L < 0) return NULL;
    size_t cap = 64, at = 0;
    char *s = malloc(cap);
    if (s) s[0] = 0;
    for (int l = 0; s && l < L; l++) {
        nb_module *layer = nb_kan_layer(kan, l);
        for (int64_t i = 0; s && i < nb_kan_in_features(layer); i++)
            for (int64_t o = 0; s && o < nb_kan_out_features(layer); o++) {
                const char *name = nb_kan_symbolic_name(layer, i, o);
                if (!name) continue;
                size_t need = at + strlen(name) + 64;
                char *t = need > cap ? realloc(s, cap = 2 * need) : s;
                if (!t) free(s);
                s = t;
                if (s) at += (size_t)snprintf(s + at, cap - at, "%s%d,%lld,%lld,%s", at ? ";" : "",
                                              l, (long long)i, (long long)o, name);
            }
    }
    return s;
}

/* One entry "L,I,O,name" re-fixed with the affine parameters the layer holds. */
static nb_status restore_entry(nb_module *kan, const char *entry) {
    int l, used = 0;
    long long i, o;
    if (sscanf(entry, "%d,%lld,%lld,%n", &l, &i, &o, &used) != 3 || !used ||
        !nb_kan_layer(kan, l) || i < 0 || o < 0 || i >= nb_kan_in_features(nb_kan_layer(kan, l)) ||
        o >= nb_kan_out_features(nb_kan_layer(kan, l)))
        return nb__fail_status(NB_ERR_ARG, "nb_kan_restore_symbolic: entry '%s' is not "
                               "L,I,O,name of an edge of the model", entry);
    nb_module *layer = nb_kan_layer(kan, l);
    nb_tensor *aff = nb_module_find(layer, "affine");
    float v[4];
    for (int q = 0; q < 4; q++) v[q] = nb_get(aff, (int64_t[]){i, q, o});
    return nb_kan_fix_symbolic_lib(layer, i, o, entry + used, v[0], v[1], v[2], v[3]);
}

nb_status nb_kan_restore_symbolic(nb_module *kan, const char *meta) {
    if (nb_kan_num_layers(kan) < 0) return nb_error_code();
    if (!meta) return nb__fail_status(NB_ERR_NULL, "nb_kan_restore_symbolic: meta is NULL");
    char entry[128];
    nb_status st = NB_OK;
    for (const char *p = meta; *p && st == NB_OK;) {
        size_t len = strcspn(p, ";");
        if (len >= sizeof entry)
            return nb__fail_status(NB_ERR_ARG, "nb_kan_restore_symbolic: an entry of %zu "
                                   "characters is too long", len);
        memcpy(entry, p, len);
        entry[len] = 0;
        st = restore_entry(kan, entry);
        p += len + (p[len] == ';');
    }
    return st;
}
