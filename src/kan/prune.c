/*
 * prune.c — sparsification of a KAN (nabla/kan.h; the paper's sec. 2.5): the regularisation
 * that drives edges to zero, edge scores, and node and edge pruning into a smaller KAN.
 *
 * Edge score |phi_io|_1 = mean over the batch of |phi_io(x_i)| (the masked edge value).  The
 * regularisation of one layer, as pykan's original reg():
 *
 *   lamb_l1 sum_io |phi_io|_1  +  lamb_entropy (-sum_io p_io log2(p_io + 1e-4)),
 *   p_io = |phi_io|_1 / sum |phi|_1
 */
#include "kan.h"

#include <math.h>
#include <string.h>

/* The reg of one layer from its edge values phi [n, in, out] (a new reference). */
static nb_tensor *layer_reg(nb_tensor *phi, float lamb_l1, float lamb_entropy) {
    nb__temps tmp = {0};
    nb_tensor *a = nb__tmp(&tmp, nb_mean_dims(nb__tmp(&tmp, nb_abs(phi)), 1, (int[]){0}, false));
    nb_tensor *l1 = nb__tmp(&tmp, nb_sum(a));
    nb_tensor *p = nb__tmp(&tmp, nb_div(a, l1));
    nb_tensor *lg = nb__tmp(&tmp, nb_mul_scalar(nb__tmp(&tmp, nb_log(nb__tmp(&tmp, nb_add_scalar(p, 1e-4f)))),
                                                (float)(1.0 / M_LN2)));
    nb_tensor *ent = nb__tmp(&tmp, nb_sum(nb__tmp(&tmp, nb_mul(p, lg))));
    nb_tensor *r = nb__tmp(&tmp, nb_sub(nb__tmp(&tmp, nb_mul_scalar(l1, lamb_l1)),
                                        nb__tmp(&tmp, nb_mul_scalar(ent, lamb_entropy))));
    return nb__temps_end(&tmp, r);
}

nb_tensor *nb_kan_forward_reg(nb_module *kan, nb_tensor *x, float lamb_l1, float lamb_entropy,
                              nb_tensor **reg) {
    if (reg) *reg = NULL;
    int L = nb_kan_num_layers(kan);
    if (L < 0) return NULL;
    if (!reg || !isfinite(lamb_l1) || !isfinite(lamb_entropy))
        return nb__fail(NB_ERR_ARG, "nb_kan_forward_reg: needs a reg pointer and finite lambdas");
    nb__temps tmp = {0};
    nb_tensor *cur = x, *total = NULL;
    for (int l = 0; l < L && cur; l++) {
        nb_tensor *phi = nb__tmp(&tmp, nb_kan_edge_acts(nb_kan_layer(kan, l), cur));
        nb_tensor *r = nb__tmp(&tmp, phi ? layer_reg(phi, lamb_l1, lamb_entropy) : NULL);
        total = total ? nb__tmp(&tmp, nb_add(total, r)) : r;
        cur = nb__tmp(&tmp, phi ? nb_sum_dims(phi, 1, (int[]){1}, false) : NULL);
    }
    if (!cur || !total) return nb__temps_end(&tmp, NULL);
    *reg = total;
    nb__retain(total); /* one reference for *reg, one for the result */
    nb_tensor *y = nb__temps_end(&tmp, cur);
    return y;
}

/* ---- scores and pruning */

/* Layer l's edge scores into sc [in, out] from its input cur; *next = its output. */
static nb_status layer_scores(nb_module *layer, nb_tensor *cur, float *sc, nb_tensor **next) {
    const nb__kan_layer *s = NB__STATE(nb__kan_layer, layer);
    nb__temps tmp = {0};
    nb_tensor *phi = nb__tmp(&tmp, nb_kan_edge_acts(layer, cur));
    nb_tensor *a = nb__tmp(&tmp, phi ? nb_mean_dims(nb__tmp(&tmp, nb_abs(phi)), 1, (int[]){0}, false) : NULL);
    nb_status st = a ? nb_copy_to(a, sc, s->in * s->out) : nb_error_code();
    *next = st == NB_OK ? nb_sum_dims(phi, 1, (int[]){1}, false) : NULL;
    nb__temps_end(&tmp, NULL);
    return *next ? NB_OK : nb_error_code();
}

nb_status nb_kan_edge_scores(nb_module *kan, nb_tensor *x, float *const *scores) {
    int L = nb_kan_num_layers(kan);
    if (L < 0) return nb_error_code();
    if (!scores) return nb__fail_status(NB_ERR_NULL, "nb_kan_edge_scores: scores is NULL");
    bool grad = nb_set_grad_enabled(false);
    nb_tensor *cur = x;
    nb_status st = NB_OK;
    for (int l = 0; st == NB_OK && l < L; l++) {
        nb_tensor *next = NULL;
        st = layer_scores(nb_kan_layer(kan, l), cur, scores[l], &next);
        if (cur != x) nb_tensor_free(cur);
        cur = next;
    }
    if (cur != x) nb_tensor_free(cur);
    nb_set_grad_enabled(grad);
    return st;
}

/* keep[j] for the nodes between layers l - 1 (scores a [n_prev, n]) and l (b [n, n_next]):
 * the largest score in and out both above th; at least the node with the best smaller of the
 * two, so that no layer is left empty.  Returns how many are kept. */
static int64_t keep_nodes(const float *a, const float *b, int64_t n_prev, int64_t n, int64_t n_next,
                          float th, bool *keep) {
    int64_t kept = 0, best = 0;
    float best_v = -1.0f;
    for (int64_t j = 0; j < n; j++) {
        float in = 0.0f, out = 0.0f;
        for (int64_t i = 0; i < n_prev; i++) in = fmaxf(in, a[i * n + j]);
        for (int64_t o = 0; o < n_next; o++) out = fmaxf(out, b[j * n_next + o]);
        keep[j] = in > th && out > th;
        kept += keep[j];
        if (fminf(in, out) > best_v) best_v = fminf(in, out), best = j;
    }
    if (!kept) keep[best] = true;
    return kept ? kept : 1;
}

/* The columns of one row src [cols] where keep (all when keep is NULL), appended at dst. */
static float *pick(float *dst, const float *src, int64_t cols, const bool *keep) {
    for (int64_t c = 0; c < cols; c++)
        if (!keep || keep[c]) *dst++ = src[c];
    return dst;
}

/* The tensor t [rows, mid, cols] (mid 1 for 2-D) restricted to the kept rows and columns,
 * written into dst (same layout, fewer rows and columns). */
static nb_status copy_kept(nb_tensor *dst, nb_tensor *t, int64_t rows, int64_t mid, int64_t cols,
                           const bool *keep_r, const bool *keep_c) {
    int64_t n = rows * mid * cols, nd = nb_numel(dst);
    float *h = nb__alloc((size_t)(n + nd) * sizeof(float));
    nb_status st = h ? nb_copy_to(t, h, n) : nb_error_code();
    float *w = h ? h + n : NULL;
    for (int64_t r = 0; st == NB_OK && r < rows; r++)
        for (int64_t q = 0; keep_r[r] && q < mid; q++) w = pick(w, h + (r * mid + q) * cols, cols, keep_c);
    if (st == NB_OK) st = nb_copy_from(dst, h + n, nd);
    if (h) nb__dealloc(h, (size_t)(n + nd) * sizeof(float));
    return st;
}

/* The layer s restricted to the inputs keep_in and outputs keep_out, its edges scored below
 * edge_th masked off. */
static nb_module *pruned_layer(const nb__kan_layer *s, const bool *keep_in, int64_t in,
                               const bool *keep_out, int64_t out, const float *sc, float edge_th) {
    nb_module *m = nb__kan_layer_like(s, in, out, s->G);
    nb__kan_layer *r = m ? NB__STATE(nb__kan_layer, m) : NULL;
    nb_status st = r ? copy_kept(r->grid, s->grid, s->in, 1, s->G + 2 * s->k + 1, keep_in, NULL)
                     : nb_error_code();
    if (st == NB_OK) st = copy_kept(r->coef, s->coef, s->in, s->G + s->k, s->out, keep_in, keep_out);
    if (st == NB_OK) st = copy_kept(r->scale_base, s->scale_base, s->in, 1, s->out, keep_in, keep_out);
    if (st == NB_OK) st = copy_kept(r->scale_sp, s->scale_sp, s->in, 1, s->out, keep_in, keep_out);
    float *mk = st == NB_OK ? nb__alloc((size_t)(s->in * s->out) * sizeof(float)) : NULL;
    if (mk) st = nb_copy_to(s->mask, mk, s->in * s->out);
    for (int64_t e = 0; mk && st == NB_OK && e < s->in * s->out; e++)
        if (sc[e] < edge_th) mk[e] = 0.0f;
    nb_tensor *full = mk && st == NB_OK ? nb_from_data(mk, 2, (int64_t[]){s->in, s->out}) : NULL;
    if (mk && st == NB_OK) st = full ? copy_kept(r->mask, full, s->in, 1, s->out, keep_in, keep_out) : nb_error_code();
    nb_tensor_free(full);
    for (int64_t i = 0, ri = 0; st == NB_OK && i < s->in; ri += keep_in[i++])
        for (int64_t o = 0, ro = 0; keep_in[i] && st == NB_OK && o < s->out; ro += keep_out[o++])
            if (keep_out[o]) st = nb__kan_copy_symbolic(s, i, o, r, ri, ro);
    if (mk) nb__dealloc(mk, (size_t)(s->in * s->out) * sizeof(float));
    if (st != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

/* The widths of the KAN's node levels: width[0] inputs, width[l + 1] the outputs of layer l. */
static int64_t level_width(const nb_module *kan, int l, int L) {
    return l < L ? nb_kan_in_features(nb_kan_layer(kan, l)) : nb_kan_out_features(nb_kan_layer(kan, L - 1));
}

/* Scores of every layer (sc[l] [in_l, out_l]) and the nodes kept at every level (keep[l]
 * [width[l]], kept[l] of them). */
typedef struct {
    int L;
    float *sc[64];
    bool *keep[65];
    int64_t kept[65];
} prune_plan;

static void plan_free(prune_plan *p, const nb_module *kan) {
    for (int l = 0; l <= p->L; l++) {
        int64_t w = level_width(kan, l, p->L);
        if (l < p->L && p->sc[l])
            nb__dealloc(p->sc[l], (size_t)(w * level_width(kan, l + 1, p->L)) * sizeof(float));
        if (p->keep[l]) nb__dealloc(p->keep[l], (size_t)w * sizeof(bool));
    }
}

static nb_status plan_make(prune_plan *p, nb_module *kan, nb_tensor *x, float node_th) {
    for (int l = 0; l <= p->L; l++) {
        int64_t w = level_width(kan, l, p->L);
        if (l < p->L && !(p->sc[l] = nb__alloc((size_t)(w * level_width(kan, l + 1, p->L)) * sizeof(float))))
            return nb_error_code();
        if (!(p->keep[l] = nb__alloc((size_t)w * sizeof(bool)))) return nb_error_code();
        for (int64_t j = 0; j < w; j++) p->keep[l][j] = true;
        p->kept[l] = w;
    }
    nb_status st = nb_kan_edge_scores(kan, x, p->sc);
    for (int l = 1; st == NB_OK && l < p->L; l++)
        p->kept[l] = keep_nodes(p->sc[l - 1], p->sc[l], level_width(kan, l - 1, p->L),
                                level_width(kan, l, p->L), level_width(kan, l + 1, p->L), node_th,
                                p->keep[l]);
    return st;
}

nb_module *nb_kan_prune(nb_module *kan, nb_tensor *x, float node_threshold, float edge_threshold) {
    int L = nb_kan_num_layers(kan);
    if (L < 0) return NULL;
    if (L > 64) return nb__fail(NB_ERR_ARG, "nb_kan_prune: %d layers, at most 64", L);
    if (!(isfinite(node_threshold) && node_threshold >= 0.0f && isfinite(edge_threshold) &&
          edge_threshold >= 0.0f))
        return nb__fail(NB_ERR_ARG, "nb_kan_prune: thresholds %g, %g must be finite and >= 0",
                        node_threshold, edge_threshold);
    prune_plan p = {.L = L};
    nb_module *seq = plan_make(&p, kan, x, node_threshold) == NB_OK ? nb_sequential_new(0, NULL) : NULL;
    for (int l = 0; seq && l < L; l++) {
        nb_module *layer = pruned_layer(NB__STATE(nb__kan_layer, nb_kan_layer(kan, l)), p.keep[l],
                                        p.kept[l], p.keep[l + 1], p.kept[l + 1], p.sc[l],
                                        edge_threshold);
        if (!layer || nb_sequential_append(seq, layer) != NB_OK) {
            nb_module_free(layer);
            nb_module_free(seq);
            seq = NULL;
        }
    }
    plan_free(&p, kan);
    return seq;
}
