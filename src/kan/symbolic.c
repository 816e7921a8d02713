/*
 * symbolic.c — a KAN layer's symbolic branch (nabla/kan.h; pykan's Symbolic_KANLayer): edge
 * (i, o) fixed to c f(a x_i + b) + d, f made of nabla ops, (a, b, c, d) = affine[i, :, o], a
 * parameter.  The branch is composed of ops (slices of x and affine, f, products and sums), so
 * autograd derives its backward; it costs a few ops per symbolic edge, which a pruned KAN has
 * few of.
 */
#include "kan.h"

#include <math.h>
#include <string.h>

/* affine[i, q, o] as a [1, 1] tensor (a view) */
static nb_tensor *coefficient(const nb__kan_layer *s, int64_t i, int q, int64_t o, nb__temps *tmp) {
    nb_tensor *t = nb__tmp(tmp, nb_slice(s->affine, 0, i, i + 1, 1));
    t = nb__tmp(tmp, nb_slice(t, 1, q, q + 1, 1));
    t = nb__tmp(tmp, nb_slice(t, 2, o, o + 1, 1));
    return nb__tmp(tmp, nb_reshape(t, 2, (int64_t[]){1, 1}));
}

/* c f(a x_i + b) + d, [n, 1] */
static nb_tensor *edge_value(const nb__kan_layer *s, nb_tensor *x, int64_t i, int64_t o, nb__temps *tmp) {
    nb_tensor *xi = nb__tmp(tmp, nb_slice(x, 1, i, i + 1, 1));
    nb_tensor *u = nb__tmp(tmp, nb_add(nb__tmp(tmp, nb_mul(coefficient(s, i, 0, o, tmp), xi)),
                                       coefficient(s, i, 1, o, tmp)));
    nb_tensor *f = nb__tmp(tmp, s->fns[i * s->out + o](u));
    if (f && (nb_ndim(f) != 2 || nb_size(f, 0) != nb_size(x, 0) || nb_size(f, 1) != 1))
        return nb__fail(NB_ERR_SHAPE, "KANLayer: symbolic function '%s' of edge (%lld, %lld) gave "
                        "%s for [%lld, 1]", s->names[i * s->out + o], (long long)i, (long long)o,
                        NB_SHP(f), (long long)nb_size(x, 0));
    nb_tensor *v = nb__tmp(tmp, nb_mul(coefficient(s, i, 2, o, tmp), f));
    return nb__tmp(tmp, nb_add(v, coefficient(s, i, 3, o, tmp)));
}

nb_tensor *nb__kan_symbolic(const nb__kan_layer *s, nb_tensor *x, bool per_edge) {
    nb__temps tmp = {0};
    int64_t n = nb_size(x, 0), count = per_edge ? s->in * s->out : s->out;
    nb_tensor **parts = nb__alloc((size_t)count * sizeof *parts);
    nb_tensor *zero = parts ? nb__tmp(&tmp, nb_zeros(2, (int64_t[]){n, 1})) : NULL;
    bool ok = zero != NULL;
    for (int64_t e = 0; ok && e < count; e++) parts[e] = zero;
    for (int64_t i = 0; ok && i < s->in; i++)
        for (int64_t o = 0; ok && o < s->out; o++) {
            if (!s->fns[i * s->out + o]) continue;
            nb_tensor *v = edge_value(s, x, i, o, &tmp);
            int64_t at = per_edge ? i * s->out + o : o;
            parts[at] = v && parts[at] != zero ? nb__tmp(&tmp, nb_add(parts[at], v)) : v;
            ok = parts[at] != NULL;
        }
    nb_tensor *r = ok ? nb__tmp(&tmp, nb_concat((int)count, parts, 1)) : NULL;
    if (r && per_edge) r = nb__tmp(&tmp, nb_reshape(r, 3, (int64_t[]){n, s->in, s->out}));
    if (parts) nb__dealloc(parts, (size_t)count * sizeof *parts);
    return nb__temps_end(&tmp, r);
}

static nb__kan_layer *edge_of(const nb_module *layer, int64_t i, int64_t o, const char *what) {
    nb__kan_layer *s = nb__kan_state(layer, what);
    if (s && (i < 0 || i >= s->in || o < 0 || o >= s->out))
        return nb__fail(NB_ERR_ARG, "%s: edge (%lld, %lld) of a %lld -> %lld layer", what,
                        (long long)i, (long long)o, (long long)s->in, (long long)s->out);
    return s;
}

/* Edge (i, o) symbolic with f (or numeric again, f NULL): the host arrays and both masks. */
static nb_status set_edge(nb__kan_layer *s, int64_t i, int64_t o, nb_kan_fn f, const char *name) {
    int64_t e = i * s->out + o;
    s->n_symbolic += (f != NULL) - (s->fns[e] != NULL);
    s->fns[e] = f;
    snprintf(s->names[e], NB_KAN_NAME_MAX, "%s", f && name ? name : "");
    nb_status st = nb_set(s->symbolic_mask, (int64_t[]){i, o}, f ? 1.0f : 0.0f);
    return st == NB_OK ? nb_set(s->mask, (int64_t[]){i, o}, f ? 0.0f : 1.0f) : st;
}

/* Edge (i, o) fixed to f with the affine parameters v = (a, b, c, d). */
static nb_status fix_edge(nb__kan_layer *s, int64_t i, int64_t o, nb_kan_fn f, const char *name,
                          const float v[4]) {
    nb_status st = NB_OK;
    for (int q = 0; q < 4 && st == NB_OK; q++)
        st = isfinite(v[q]) ? nb_set(s->affine, (int64_t[]){i, q, o}, v[q])
                            : nb__fail_status(NB_ERR_ARG, "nb_kan_fix_symbolic: %c = %g is not "
                                              "finite", "abcd"[q], v[q]);
    return st == NB_OK ? set_edge(s, i, o, f, name) : st;
}

nb_status nb_kan_fix_symbolic(nb_module *layer, int64_t i, int64_t o, nb_kan_fn f,
                              const char *name, float a, float b, float c, float d) {
    nb__kan_layer *s = edge_of(layer, i, o, "nb_kan_fix_symbolic");
    if (!s) return nb_error_code();
    if (!f) return nb__fail_status(NB_ERR_ARG, "nb_kan_fix_symbolic: the function is NULL");
    return fix_edge(s, i, o, f, name, (const float[]){a, b, c, d});
}

nb_status nb_kan_unfix_symbolic(nb_module *layer, int64_t i, int64_t o) {
    nb__kan_layer *s = edge_of(layer, i, o, "nb_kan_unfix_symbolic");
    return s ? set_edge(s, i, o, NULL, NULL) : nb_error_code();
}

const char *nb_kan_symbolic_name(const nb_module *layer, int64_t i, int64_t o) {
    nb__kan_layer *s = edge_of(layer, i, o, "nb_kan_symbolic_name");
    return s && s->fns[i * s->out + o] ? s->names[i * s->out + o] : NULL;
}

nb_status nb__kan_copy_symbolic(const nb__kan_layer *s, int64_t i, int64_t o, nb__kan_layer *r,
                                int64_t ri, int64_t ro) {
    nb_kan_fn f = s->fns[i * s->out + o];
    if (!f) return NB_OK;
    float v[4];
    for (int q = 0; q < 4; q++) v[q] = nb_get(s->affine, (int64_t[]){i, q, o});
    float keep = nb_get(r->mask, (int64_t[]){ri, ro}); /* as copied: fixing would zero it */
    nb_status st = fix_edge(r, ri, ro, f, s->names[i * s->out + o], v);
    return st == NB_OK ? nb_set(r->mask, (int64_t[]){ri, ro}, keep) : st;
}
