/*
 * layer.c — the KAN layer ("KANLayer") and the KAN model built of them (nabla/kan.h):
 * construction with pykan's initialisation, the forward, and the per-edge values.
 *
 * Shapes: x [n, in]; bases B [n, in, nb] with nb = G + k; coef [in, nb, out] (so that B seen as
 * [n, in nb] times coef seen as [in nb, out] is the whole spline sum, one GEMM); scale_base,
 * scale_sp and mask [in, out].
 */
#include "kan.h"

#include <math.h>
#include <string.h>

nb__kan_layer *nb__kan_state(const nb_module *m, const char *what) {
    if (!m || m->cls != &nb__kan_layer_class)
        return nb__fail(NB_ERR_ARG, "%s: %s is not a KAN layer", what,
                        m ? nb_module_type(m) : "NULL");
    return NB__STATE(nb__kan_layer, m);
}

/* coef scaled by scale_sp and the mask, as one [in nb, out] matrix (a new reference). */
static nb_tensor *spline_weight(const nb__kan_layer *s, nb__temps *tmp) {
    nb_tensor *w = nb__tmp(tmp, nb_mul(s->scale_sp, s->mask));
    w = nb__tmp(tmp, nb_reshape(w, 3, (int64_t[]){s->in, 1, s->out}));
    w = nb__tmp(tmp, nb_mul(s->coef, w));
    return nb__tmp(tmp, nb_reshape(w, 2, (int64_t[]){s->in * (s->G + s->k), s->out}));
}

static nb_tensor *kan_forward(nb_module *m, nb_tensor *x) {
    const nb__kan_layer *s = NB__STATE(nb__kan_layer, m);
    if (nb_ndim(x) != 2 || nb_size(x, 1) != s->in)
        return nb__fail(NB_ERR_SHAPE, "KANLayer: input %s must be [n, %lld]", NB_SHP(x),
                        (long long)s->in);
    nb__temps tmp = {0};
    nb_tensor *b = nb__tmp(&tmp, nb_bspline_basis(x, s->grid, s->k, 0));
    b = nb__tmp(&tmp, nb_reshape(b, 2, (int64_t[]){nb_size(x, 0), s->in * (s->G + s->k)}));
    nb_tensor *y = nb__tmp(&tmp, nb_matmul(b, spline_weight(s, &tmp)));
    if (s->has_base) {
        nb_tensor *wb = nb__tmp(&tmp, nb_mul(s->scale_base, s->mask));
        nb_tensor *base = nb__tmp(&tmp, nb_activate(x, s->base, 0));
        y = nb__tmp(&tmp, nb_add(y, nb__tmp(&tmp, nb_matmul(base, wb))));
    }
    if (s->n_symbolic) y = nb__tmp(&tmp, nb_add(y, nb__tmp(&tmp, nb__kan_symbolic(s, x, false))));
    return nb__temps_end(&tmp, y);
}

nb_tensor *nb_kan_edge_acts(nb_module *layer, nb_tensor *x) {
    const nb__kan_layer *s = nb__kan_state(layer, "nb_kan_edge_acts");
    if (!s) return NULL;
    if (!nb_is_alive(x)) return nb__fail_input("nb_kan_edge_acts", x);
    if (nb_ndim(x) != 2 || nb_size(x, 1) != s->in)
        return nb__fail(NB_ERR_SHAPE, "nb_kan_edge_acts: input %s must be [n, %lld]", NB_SHP(x),
                        (long long)s->in);
    /* [n, in, nb] -> [in, n, nb] @ coef [in, nb, out] -> [in, n, out] -> [n, in, out] */
    nb__temps tmp = {0};
    nb_tensor *b = nb__tmp(&tmp, nb_bspline_basis(x, s->grid, s->k, 0));
    b = nb__tmp(&tmp, nb_transpose(b, 0, 1));
    nb_tensor *sp = nb__tmp(&tmp, nb_transpose(nb__tmp(&tmp, nb_matmul(b, s->coef)), 0, 1));
    nb_tensor *phi = nb__tmp(&tmp, nb_mul(sp, s->scale_sp));
    if (s->has_base) {
        nb_tensor *base = nb__tmp(&tmp, nb_activate(x, s->base, 0));
        base = nb__tmp(&tmp, nb_unsqueeze(base, 2));
        phi = nb__tmp(&tmp, nb_add(phi, nb__tmp(&tmp, nb_mul(base, s->scale_base))));
    }
    phi = nb__tmp(&tmp, nb_mul(phi, s->mask));
    if (s->n_symbolic) phi = nb__tmp(&tmp, nb_add(phi, nb__tmp(&tmp, nb__kan_symbolic(s, x, true))));
    return nb__temps_end(&tmp, phi);
}

static void kan_describe(const nb_module *m, nb_attrs *d) {
    const nb__kan_layer *s = NB__STATE(nb__kan_layer, m);
    nb_attrs_int(d, "in_dim", s->in);
    nb_attrs_int(d, "out_dim", s->out);
    nb_attrs_int(d, "num", s->G);
    nb_attrs_int(d, "k", s->k);
    nb_attrs_string(d, "base_fun", s->has_base ? nb_activation_name(s->base) : "zero");
}

static void kan_free_state(nb_module *m) {
    nb__kan_layer *s = NB__STATE(nb__kan_layer, m);
    if (s->fns) nb__dealloc(s->fns, (size_t)(s->in * s->out) * sizeof *s->fns);
    if (s->names) nb__dealloc(s->names, (size_t)(s->in * s->out) * sizeof *s->names);
}

const nb_module_class nb__kan_layer_class = {.name = "KANLayer", .forward = kan_forward,
                                             .describe = kan_describe,
                                             .free_state = kan_free_state};

void nb__kan_extend_knots(float *t, const float *p, int G, int k) {
    float h = (p[G] - p[0]) / (float)G;
    for (int j = 0; j <= G; j++) t[k + j] = p[j];
    for (int j = 1; j <= k; j++) {
        t[k - j] = p[0] - h * (float)j;
        t[k + G + j] = p[G] + h * (float)j;
    }
}

/* grid [in, G + 2k + 1]: the uniform points of the range, extended, for every input */
static nb_status uniform_grid(nb__kan_layer *s) {
    int64_t m = s->G + 2 * s->k + 1;
    float *t = nb__alloc((size_t)(s->in * m) * sizeof(float));
    float *p = nb__alloc((size_t)(s->G + 1) * sizeof(float));
    nb_status st = t && p ? NB_OK : nb__fail_status(NB_ERR_MEMORY, "KANLayer: out of memory");
    for (int j = 0; st == NB_OK && j <= s->G; j++)
        p[j] = s->grid_min + (s->grid_max - s->grid_min) * (float)j / (float)s->G;
    for (int64_t i = 0; st == NB_OK && i < s->in; i++) nb__kan_extend_knots(t + i * m, p, s->G, s->k);
    if (st == NB_OK) st = nb_copy_from(s->grid, t, s->in * m);
    nb__dealloc(p, (size_t)(s->G + 1) * sizeof(float));
    nb__dealloc(t, (size_t)(s->in * m) * sizeof(float));
    return st;
}

nb_module *nb__kan_layer_like(const nb__kan_layer *s, int64_t in, int64_t out, int G) {
    nb_module *m = nb_module_new(&nb__kan_layer_class, sizeof(nb__kan_layer));
    if (!m) return NULL;
    nb__kan_layer *r = NB__STATE(nb__kan_layer, m);
    *r = (nb__kan_layer){.in = in, .out = out, .G = G, .k = s->k, .grid_min = s->grid_min,
                         .grid_max = s->grid_max, .has_base = s->has_base, .base = s->base};
    int64_t nb = G + s->k;
    bool ok = (r->coef = nb_module_add_param(m, "coef", NB_SHAPE(in, nb, out))) &&
              (r->scale_base = nb_module_add_param(m, "scale_base", NB_SHAPE(in, out))) &&
              (r->scale_sp = nb_module_add_param(m, "scale_sp", NB_SHAPE(in, out))) &&
              (r->grid = nb_module_add_buffer(m, "grid", NB_F32, NB_SHAPE(in, G + 2 * s->k + 1))) &&
              (r->mask = nb_module_add_buffer(m, "mask", NB_F32, NB_SHAPE(in, out))) &&
              nb_fill(r->mask, 1.0f) == NB_OK &&
              (r->affine = nb_module_add_param(m, "affine", NB_SHAPE(in, 4, out))) &&
              (r->symbolic_mask = nb_module_add_buffer(m, "symbolic_mask", NB_F32, NB_SHAPE(in, out))) &&
              (r->fns = nb__alloc((size_t)(in * out) * sizeof *r->fns)) &&
              (r->names = nb__alloc((size_t)(in * out) * sizeof *r->names));
    if (ok) {
        memset(r->fns, 0, (size_t)(in * out) * sizeof *r->fns);
        memset(r->names, 0, (size_t)(in * out) * sizeof *r->names);
    }
    if (!ok) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

/* pykan's initial splines: least squares through noise (U(-1/2, 1/2) noise_scale / G) at the
 * G + 1 points of each input's range */
static nb_status init_coef(nb__kan_layer *s, float noise_scale) {
    int64_t n = s->G + 1, ny = n * s->in * s->out;
    float *xs = nb__alloc((size_t)(n * s->in) * sizeof(float));
    float *ys = nb__alloc((size_t)ny * sizeof(float));
    nb_tensor *u = xs && ys ? nb_rand(1, (int64_t[]){ny}) : NULL;
    nb_status st = u ? nb_copy_to(u, ys, ny) : nb__fail_status(NB_ERR_MEMORY, "KANLayer: out of memory");
    for (int64_t j = 0; st == NB_OK && j < n; j++)
        for (int64_t i = 0; i < s->in; i++)
            xs[j * s->in + i] = s->grid_min + (s->grid_max - s->grid_min) * (float)j / (float)s->G;
    for (int64_t j = 0; st == NB_OK && j < ny; j++) ys[j] = (ys[j] - 0.5f) * noise_scale / (float)s->G;
    if (st == NB_OK) st = nb__kan_fit_coef(s, n, xs, ys);
    nb_tensor_free(u);
    nb__dealloc(ys, (size_t)ny * sizeof(float));
    nb__dealloc(xs, (size_t)(n * s->in) * sizeof(float));
    return st;
}

static nb_status init_scales(nb__kan_layer *s, const nb_kan_opts *o) {
    float root = sqrtf((float)s->in), mu = o->scale_base_mu;
    float sigma = o->scale_base_sigma == 0.0f ? 1.0f : fmaxf(o->scale_base_sigma, 0.0f);
    float sp = o->scale_sp == 0.0f ? 1.0f : o->scale_sp;
    nb_status st = nb_init_uniform(s->scale_base, (mu - sigma) / root, (mu + sigma) / root);
    return st == NB_OK ? nb_fill(s->scale_sp, sp / root) : st;
}

/* The options with pykan's defaults for zero fields, checked. */
static nb_status resolve(nb_kan_opts *o, int64_t in, int64_t out, nb__kan_layer *s) {
    if (o->grid == 0) o->grid = 5;
    if (o->k == 0) o->k = 3;
    if (o->grid_min == 0.0f && o->grid_max == 0.0f) o->grid_min = -1.0f, o->grid_max = 1.0f;
    if (o->noise_scale == 0.0f) o->noise_scale = 0.3f;
    if (in < 1 || out < 1)
        return nb__fail_status(NB_ERR_ARG, "KANLayer: sizes must be positive, got in=%lld out=%lld",
                               (long long)in, (long long)out);
    if (o->grid < 1) return nb__fail_status(NB_ERR_ARG, "KANLayer: grid = %d must be >= 1", o->grid);
    if (o->k < 1 || o->k > NB_KAN_MAX_ORDER)
        return nb__fail_status(NB_ERR_ARG, "KANLayer: spline order k = %d is outside [1, %d]",
                               o->k, NB_KAN_MAX_ORDER);
    if (!(isfinite(o->grid_min) && isfinite(o->grid_max) && o->grid_min < o->grid_max))
        return nb__fail_status(NB_ERR_ARG, "KANLayer: grid range [%g, %g] must be finite and "
                               "non-empty", o->grid_min, o->grid_max);
    if (!isfinite(o->noise_scale) || !isfinite(o->scale_base_mu) ||
        !isfinite(o->scale_base_sigma) || !isfinite(o->scale_sp))
        return nb__fail_status(NB_ERR_ARG, "KANLayer: noise_scale and the scales must be finite");
    s->has_base = !o->base_fun || strcmp(o->base_fun, "zero") != 0;
    s->base = NB_ACT_SILU;
    if (o->base_fun && s->has_base && !nb_activation_parse(o->base_fun, &s->base))
        return nb__fail_status(NB_ERR_ARG, "KANLayer: unknown base_fun '%s'", o->base_fun);
    return NB_OK;
}

nb_module *nb_kan_layer_new(int64_t in, int64_t out, nb_kan_opts opts) {
    nb__kan_layer proto = {0};
    if (resolve(&opts, in, out, &proto) != NB_OK) return NULL;
    proto.k = opts.k;
    proto.grid_min = opts.grid_min;
    proto.grid_max = opts.grid_max;
    nb_module *m = nb__kan_layer_like(&proto, in, out, opts.grid);
    nb__kan_layer *s = m ? NB__STATE(nb__kan_layer, m) : NULL;
    if (s && uniform_grid(s) == NB_OK &&
        init_coef(s, opts.noise_scale < 0.0f ? 0.0f : opts.noise_scale) == NB_OK &&
        init_scales(s, &opts) == NB_OK)
        return m;
    nb_module_free(m);
    return NULL;
}

nb_module *nb_kan_new(int n, const int64_t *width, nb_kan_opts opts) {
    if (n < 2 || !width)
        return nb__fail(NB_ERR_ARG, "nb_kan_new: a KAN needs at least 2 widths, got %d", n);
    for (int l = 0; l < n; l++)
        if (width[l] < 1)
            return nb__fail(NB_ERR_ARG, "nb_kan_new: width[%d] = %lld must be >= 1", l,
                            (long long)width[l]);
    nb_module *seq = nb_sequential_new(0, NULL);
    for (int l = 0; seq && l + 1 < n; l++) {
        nb_module *layer = nb_kan_layer_new(width[l], width[l + 1], opts);
        if (!layer || nb_sequential_append(seq, layer) != NB_OK) {
            nb_module_free(layer);
            nb_module_free(seq);
            return NULL;
        }
    }
    return seq;
}

int nb_kan_num_layers(const nb_module *m) {
    if (m && m->cls == &nb__kan_layer_class) return 1;
    bool ok = m && strcmp(nb_module_type(m), "Sequential") == 0 && m->children.n > 0;
    for (int l = 0; ok && l < m->children.n; l++)
        ok = m->children.at[l].module->cls == &nb__kan_layer_class;
    if (!ok) {
        nb__fail(NB_ERR_ARG, "KAN: %s is not a KAN layer or a Sequential of them",
                 m ? nb_module_type(m) : "NULL");
        return -1;
    }
    return m->children.n;
}

nb_module *nb_kan_layer(const nb_module *m, int l) {
    int n = nb_kan_num_layers(m);
    if (n < 0) return NULL;
    if (l < 0 || l >= n) return nb__fail(NB_ERR_ARG, "KAN: layer %d of %d", l, n);
    return n == 1 && m->cls == &nb__kan_layer_class ? (nb_module *)m : m->children.at[l].module;
}

int64_t nb_kan_in_features(const nb_module *layer) {
    const nb__kan_layer *s = nb__kan_state(layer, "nb_kan_in_features");
    return s ? s->in : -1;
}
int64_t nb_kan_out_features(const nb_module *layer) {
    const nb__kan_layer *s = nb__kan_state(layer, "nb_kan_out_features");
    return s ? s->out : -1;
}
int nb_kan_grid_size(const nb_module *layer) {
    const nb__kan_layer *s = nb__kan_state(layer, "nb_kan_grid_size");
    return s ? s->G : -1;
}
int nb_kan_spline_order(const nb_module *layer) {
    const nb__kan_layer *s = nb__kan_state(layer, "nb_kan_spline_order");
    return s ? s->k : -1;
}
