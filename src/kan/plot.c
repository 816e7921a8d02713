/*
 * plot.c — looking at a KAN (nabla/kan.h): every edge's function sampled over its input's grid
 * range, for symbolic fitting (nb_kan_edge_samples) and for pictures as pykan's plot() draws
 * them: the network with each edge's curve in a small box on the edge, faded by the edge's
 * importance (opacity tanh(3 score / the layer's largest score), pykan's beta = 3), and one
 * edge alone with axes.  SVG files are written atomically (src/io/atomic.c).
 *
 * Layout of the network: node levels from the inputs (bottom) to the outputs (top), the nodes
 * of a level spread evenly across the width; the box of edge (i, o) of layer l sits on the
 * line from node i of level l to node o of level l + 1, a third of the way up.
 */
#include "kan.h"
#include "../io/io.h"

#include <math.h>

#define CURVE_POINTS 41

/* xs [n, in]: n points over each input's range [t_k, t_{G+k}]; ys [n, in, out]: phi there. */
static nb_status layer_curves(nb_module *layer, int n, float *xs, float *ys) {
    const nb__kan_layer *s = NB__STATE(nb__kan_layer, layer);
    int64_t m = s->G + 2 * s->k + 1;
    for (int64_t i = 0; i < s->in; i++) {
        float lo = nb_get(s->grid, (int64_t[]){i, s->k}), hi = nb_get(s->grid, (int64_t[]){i, m - 1 - s->k});
        for (int j = 0; j < n; j++) xs[(int64_t)j * s->in + i] = lo + (hi - lo) * (float)j / (float)(n - 1);
    }
    bool grad = nb_set_grad_enabled(false);
    nb_tensor *x = nb_from_data(xs, 2, (int64_t[]){n, s->in});
    nb_tensor *phi = x ? nb_kan_edge_acts(layer, x) : NULL;
    nb_status st = phi ? nb_copy_to(phi, ys, (int64_t)n * s->in * s->out) : nb_error_code();
    nb_tensor_free(phi);
    nb_tensor_free(x);
    nb_set_grad_enabled(grad);
    return st;
}

/* The curves of a layer in host arrays the caller frees with curves_free. */
typedef struct {
    int64_t nx, ny;
    float *xs, *ys;
} curves;

static void curves_free(curves *c) {
    if (c->xs) nb__dealloc(c->xs, (size_t)c->nx * sizeof(float));
    if (c->ys) nb__dealloc(c->ys, (size_t)c->ny * sizeof(float));
}

static nb_status curves_make(curves *c, nb_module *layer, int n) {
    const nb__kan_layer *s = NB__STATE(nb__kan_layer, layer);
    *c = (curves){.nx = (int64_t)n * s->in, .ny = (int64_t)n * s->in * s->out};
    c->xs = nb__alloc((size_t)c->nx * sizeof(float));
    c->ys = c->xs ? nb__alloc((size_t)c->ny * sizeof(float)) : NULL;
    return c->ys ? layer_curves(layer, n, c->xs, c->ys) : nb_error_code();
}

nb_status nb_kan_edge_samples(nb_module *layer, int64_t i, int64_t o, int n, float *xs, float *ys) {
    const nb__kan_layer *s = nb__kan_state(layer, "nb_kan_edge_samples");
    if (!s) return nb_error_code();
    if (i < 0 || i >= s->in || o < 0 || o >= s->out || n < 2 || !xs || !ys)
        return nb__fail_status(NB_ERR_ARG, "nb_kan_edge_samples: edge (%lld, %lld) of a %lld -> "
                               "%lld layer, %d samples (>= 2)", (long long)i, (long long)o,
                               (long long)s->in, (long long)s->out, n);
    curves c = {0};
    nb_status st = curves_make(&c, layer, n);
    for (int j = 0; st == NB_OK && j < n; j++) {
        xs[j] = c.xs[(int64_t)j * s->in + i];
        ys[j] = c.ys[((int64_t)j * s->in + i) * s->out + o];
    }
    curves_free(&c);
    return st;
}

/* Edge (i, o)'s curve as a polyline in the box [x0, x0 + w] x [y0, y0 + h], its values spanning
 * the box (a flat curve: across the middle). */
static void draw_curve(FILE *f, const curves *c, const nb__kan_layer *s, int64_t i, int64_t o,
                       int n, double x0, double y0, double w, double h, const char *style) {
    float lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < n; j++) {
        float v = c->ys[((int64_t)j * s->in + i) * s->out + o];
        lo = fminf(lo, v), hi = fmaxf(hi, v);
    }
    double span = hi - lo > 1e-12 ? hi - lo : 1.0, mid = hi - lo > 1e-12 ? 0.0 : 0.5;
    fprintf(f, "<polyline fill='none' %s points='", style);
    for (int j = 0; j < n; j++) {
        double v = c->ys[((int64_t)j * s->in + i) * s->out + o];
        double py = hi - lo > 1e-12 ? (hi - v) / span : mid;
        fprintf(f, "%.1f,%.1f ", x0 + w * j / (n - 1), y0 + h * py);
    }
    fprintf(f, "'/>\n");
}

#define PLOT_W 600.0
#define LEVEL_H 160.0
#define BOX 36.0

static double node_x(int64_t j, int64_t count) { return PLOT_W * (j + 0.5) / (double)count; }

/* One layer's edges: lines, boxes and curves, faded by their scores (sc NULL: all opaque). */
static nb_status draw_layer(FILE *f, nb_module *layer, const float *sc, double y_in, double y_out) {
    const nb__kan_layer *s = NB__STATE(nb__kan_layer, layer);
    curves c = {0};
    float *mk = nb__alloc((size_t)(s->in * s->out) * sizeof(float));
    nb_status st = mk ? nb_copy_to(s->mask, mk, s->in * s->out) : nb_error_code();
    if (st == NB_OK) st = curves_make(&c, layer, CURVE_POINTS);
    float top = 0.0f;
    for (int64_t e = 0; sc && e < s->in * s->out; e++) top = fmaxf(top, sc[e]);
    for (int64_t i = 0; st == NB_OK && i < s->in; i++)
        for (int64_t o = 0; o < s->out; o++) {
            double alpha = mk[i * s->out + o] == 0.0f ? 0.0 : !sc || top <= 0.0f ? 1.0
                           : tanh(3.0 * sc[i * s->out + o] / top);
            if (alpha < 0.01) continue;
            double xa = node_x(i, s->in), xb = node_x(o, s->out);
            double bx = xa + (xb - xa) / 3.0, by = y_in + (y_out - y_in) / 3.0;
            fprintf(f, "<g opacity='%.3f'>\n<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' "
                    "stroke='black' stroke-width='1'/>\n", alpha, xa, y_in, xb, y_out);
            fprintf(f, "<rect x='%.1f' y='%.1f' width='%.0f' height='%.0f' fill='white' "
                    "stroke='black'/>\n", bx - BOX / 2, by - BOX / 2, BOX, BOX);
            draw_curve(f, &c, s, i, o, CURVE_POINTS, bx - BOX / 2 + 3, by - BOX / 2 + 3, BOX - 6,
                       BOX - 6, "stroke='#1f77b4' stroke-width='1.5'");
            fprintf(f, "</g>\n");
        }
    curves_free(&c);
    if (mk) nb__dealloc(mk, (size_t)(s->in * s->out) * sizeof(float));
    return st;
}

static void draw_nodes(FILE *f, int64_t count, double y) {
    for (int64_t j = 0; j < count; j++)
        fprintf(f, "<circle cx='%.1f' cy='%.1f' r='5' fill='black'/>\n", node_x(j, count), y);
}

/* The scores of every layer on x (NULL entries when x is NULL), allocated here. */
static nb_status scores_of(nb_module *kan, int L, nb_tensor *x, float **sc) {
    for (int l = 0; l < L; l++) {
        const nb__kan_layer *s = NB__STATE(nb__kan_layer, nb_kan_layer(kan, l));
        sc[l] = x ? nb__alloc((size_t)(s->in * s->out) * sizeof(float)) : NULL;
        if (x && !sc[l]) return nb_error_code();
    }
    return x ? nb_kan_edge_scores(kan, x, sc) : NB_OK;
}

static nb_status write_network(FILE *f, nb_module *kan, int L, float *const *sc) {
    double height = LEVEL_H * L + 60;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' "
            "font-family='sans-serif'>\n<rect width='100%%' height='100%%' fill='white'/>\n",
            PLOT_W, height);
    nb_status st = NB_OK;
    for (int l = 0; st == NB_OK && l < L; l++) {
        nb_module *layer = nb_kan_layer(kan, l);
        double y_in = height - 30 - LEVEL_H * l, y_out = y_in - LEVEL_H;
        st = draw_layer(f, layer, sc[l], y_in, y_out);
        draw_nodes(f, nb_kan_in_features(layer), y_in);
        if (l == L - 1) draw_nodes(f, nb_kan_out_features(layer), y_out);
    }
    fprintf(f, "</svg>\n");
    return st;
}

nb_status nb_kan_plot_svg(nb_module *kan, nb_tensor *x, const char *path) {
    int L = nb_kan_num_layers(kan);
    if (L < 0) return nb_error_code();
    if (!path) return nb__fail_status(NB_ERR_NULL, "nb_kan_plot_svg: path is NULL");
    if (L > 64) return nb__fail_status(NB_ERR_ARG, "nb_kan_plot_svg: %d layers, at most 64", L);
    float *sc[64] = {0};
    nb_status st = scores_of(kan, L, x, sc);
    nb__afile af;
    if (st == NB_OK && (st = nb__afile_begin(&af, "nb_kan_plot_svg", path)) == NB_OK) {
        FILE *f = nb__afile_stream(&af);
        st = f ? write_network(f, kan, L, sc) : NB_OK;
        if (st == NB_OK) st = nb__afile_commit(&af);
        else nb__afile_cancel(&af);
    }
    for (int l = 0; l < L; l++) {
        const nb__kan_layer *s = NB__STATE(nb__kan_layer, nb_kan_layer(kan, l));
        if (sc[l]) nb__dealloc(sc[l], (size_t)(s->in * s->out) * sizeof(float));
    }
    return st;
}

nb_status nb_kan_plot_edge_svg(nb_module *layer, int64_t i, int64_t o, const char *path) {
    float xs[201], ys[201];
    nb_status st = nb_kan_edge_samples(layer, i, o, 201, xs, ys);
    if (st != NB_OK) return st;
    if (!path) return nb__fail_status(NB_ERR_NULL, "nb_kan_plot_edge_svg: path is NULL");
    float lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < 201; j++) lo = fminf(lo, ys[j]), hi = fmaxf(hi, ys[j]);
    nb__afile af;
    if (nb__afile_begin(&af, "nb_kan_plot_edge_svg", path) != NB_OK) return nb_error_code();
    FILE *f = nb__afile_stream(&af);
    if (!f) return nb__afile_commit(&af);
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='420' height='340' "
            "font-family='sans-serif'>\n<rect width='100%%' height='100%%' fill='white'/>\n"
            "<text x='210' y='20' font-size='14' text-anchor='middle'>phi(%lld, %lld)</text>\n"
            "<rect x='60' y='30' width='340' height='260' fill='none' stroke='black'/>\n",
            (long long)i, (long long)o);
    fprintf(f, "<text x='60' y='310' font-size='11' text-anchor='middle'>%.3g</text>\n"
            "<text x='400' y='310' font-size='11' text-anchor='middle'>%.3g</text>\n"
            "<text x='55' y='34' font-size='11' text-anchor='end'>%.3g</text>\n"
            "<text x='55' y='290' font-size='11' text-anchor='end'>%.3g</text>\n",
            xs[0], xs[200], hi, lo);
    double span = hi - lo > 1e-12 ? hi - lo : 1.0;
    fprintf(f, "<polyline fill='none' stroke='#1f77b4' stroke-width='2' points='");
    for (int j = 0; j < 201; j++)
        fprintf(f, "%.1f,%.1f ", 60 + 340.0 * j / 200, 30 + 260.0 * (hi - ys[j]) / span);
    fprintf(f, "'/>\n</svg>\n");
    return nb__afile_commit(&af);
}
