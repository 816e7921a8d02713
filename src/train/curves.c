/*
 * curves.c — learning curves: per-epoch loss and accuracy for train and test, written as CSV
 * (one row per epoch) and as an SVG with two panels, loss on the left and accuracy on the
 * right, train in blue and test in orange, like the course's matplotlib figure.
 * Files are written atomically (src/io/atomic.c), so a reader, a crash or a full disk never
 * leaves half a file, and the old one stays when a write fails.
 */
#include "nabla/train.h"
#include "../io/io.h"
#include "svg.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { TRAIN_LOSS, TEST_LOSS, TRAIN_ACC, TEST_ACC, N_SERIES };

struct nb_curves {
    int n, cap;
    float *v; /* n rows of N_SERIES values */
    char x[32], metric[32], held_out[32]; /* names (nb_curves_set_names); empty: the defaults */
};

nb_curves *nb_curves_new(void) {
    nb_curves *c = nb__alloc(sizeof *c);
    if (c) memset(c, 0, sizeof *c);
    return c;
}

void nb_curves_free(nb_curves *c) {
    if (!c) return;
    nb__dealloc(c->v, sizeof(float) * N_SERIES * (size_t)c->cap);
    nb__dealloc(c, sizeof *c);
}

int nb_curves_len(const nb_curves *c) { return c ? c->n : 0; }

nb_status nb_curves_set_names(nb_curves *c, const char *x, const char *metric, const char *held_out) {
    if (!c) return nb__fail_status(NB_ERR_NULL, "curves_set_names: curves is NULL");
    const char *names[3] = {x, metric, held_out};
    for (int i = 0; i < 3; i++)
        if (names[i] && (!*names[i] || strlen(names[i]) >= sizeof c->x || strpbrk(names[i], ",<>&'\"\n")))
            return nb__fail_status(NB_ERR_ARG, "curves_set_names: name \"%s\" must have 1 to 31 bytes "
                                   "and no comma, quote, <, >, & or newline", names[i]);
    char *slots[3] = {c->x, c->metric, c->held_out};
    for (int i = 0; i < 3; i++)
        if (names[i]) strcpy(slots[i], names[i]);
    return NB_OK;
}

/* The names in use: the x axis ("epoch"), the second panel's measure ("accuracy") and the
 * held-out set's ("test"). */
static const char *x_name(const nb_curves *c) { return *c->x ? c->x : "epoch"; }
static const char *metric_name(const nb_curves *c) { return *c->metric ? c->metric : "accuracy"; }
static const char *held_out_name(const nb_curves *c) { return *c->held_out ? c->held_out : "test"; }

nb_status nb_curves_get(const nb_curves *c, int epoch, float values[4]) {
    if (!c || epoch < 0 || epoch >= c->n)
        return nb__fail_status(NB_ERR_ARG, "curves_get: epoch %d is out of range", epoch);
    memcpy(values, c->v + N_SERIES * epoch, sizeof(float) * N_SERIES);
    return NB_OK;
}

nb_status nb_curves_add(nb_curves *c, float train_loss, float test_loss, float train_acc, float test_acc) {
    if (!c) return nb__fail_status(NB_ERR_NULL, "curves_add: curves is NULL");
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        float *v = nb__alloc(sizeof(float) * N_SERIES * (size_t)cap);
        if (!v) return NB_ERR_MEMORY;
        if (c->n) memcpy(v, c->v, sizeof(float) * N_SERIES * (size_t)c->n);
        nb__dealloc(c->v, sizeof(float) * N_SERIES * (size_t)c->cap);
        c->v = v;
        c->cap = cap;
    }
    float row[N_SERIES] = {train_loss, test_loss, train_acc, test_acc};
    memcpy(c->v + N_SERIES * c->n++, row, sizeof row);
    return NB_OK;
}

static void put_value(FILE *f, float v) {
    if (isnan(v)) fprintf(f, ",");
    else fprintf(f, ",%.6g", v);
}

nb_status nb_curves_write_csv(const nb_curves *c, const char *path) {
    if (!c || !path) return nb__fail_status(NB_ERR_NULL, "curves_write_csv: curves or path is NULL");
    nb__afile af;
    if (nb__afile_begin(&af, "curves_write_csv", path) != NB_OK) return nb_error_code();
    FILE *f = nb__afile_stream(&af);
    if (!f) return nb__afile_commit(&af); /* reports the failure */
    if (*c->metric || *c->held_out || *c->x) /* named series: the names as written */
        fprintf(f, "%s,train_loss,%s_loss,train_%s,%s_%s\n", x_name(c), held_out_name(c),
                metric_name(c), held_out_name(c), metric_name(c));
    else fprintf(f, "epoch,train_loss,test_loss,train_acc,test_acc\n");
    for (int e = 0; e < c->n; e++) {
        fprintf(f, "%d", e + 1);
        for (int s = 0; s < N_SERIES; s++) put_value(f, c->v[N_SERIES * e + s]);
        fprintf(f, "\n");
    }
    return nb__afile_commit(&af);
}

/* ---- SVG */

#define PANEL_W 420
#define PANEL_H 300
#define MARGIN_L 60
#define MARGIN_T 40
#define MARGIN_B 45
#define GAP 40

typedef struct {
    double x0, y0, lo, hi; /* panel origin (top left of the plot area) and y range */
    int n;
    const char *x; /* the x axis's name */
} panel;

static double px(const panel *p, int epoch) {
    return p->x0 + (p->n > 1 ? (double)epoch / (p->n - 1) : 0.5) * PANEL_W;
}

static double py(const panel *p, double v) {
    return p->y0 + PANEL_H - (v - p->lo) / (p->hi - p->lo) * PANEL_H;
}

/* A "nice" step (1, 2 or 5 times a power of ten) giving about 5 ticks over the range. */
static double tick_step(double range) {
    double raw = range / 5, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3.5 ? 2 : r < 7.5 ? 5 : 10) * mag;
}

static void draw_axes(FILE *f, const panel *p, const char *title, const char *ylabel) {
    fprintf(f, "<rect x='%.1f' y='%.1f' width='%d' height='%d' fill='white' stroke='#333'/>\n",
            p->x0, p->y0, PANEL_W, PANEL_H);
    double step = tick_step(p->hi - p->lo);
    /* ticks counted in integers: adding a step to a large value may not change it */
    double k0 = ceil(p->lo / step), k1 = floor(p->hi / step);
    for (int k = 0; k <= 20 && k0 + k <= k1; k++) {
        double v = (k0 + k) * step;
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#ddd'/>\n", p->x0,
                py(p, v), p->x0 + PANEL_W, py(p, v));
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='end'>%g</text>\n",
                p->x0 - 6, py(p, v) + 4, fabs(v) < 1e-12 ? 0.0 : v);
    }
    int every = p->n > 10 ? (p->n + 9) / 10 : 1;
    for (int e = 0; e < p->n; e += every)
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>%d</text>\n",
                px(p, e), p->y0 + PANEL_H + 16, e + 1);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='13' text-anchor='middle'>%s</text>\n",
            p->x0 + PANEL_W / 2.0, p->y0 + PANEL_H + 36, p->x);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='15' text-anchor='middle'>%s</text>\n",
            p->x0 + PANEL_W / 2.0, p->y0 - 12, title);
    fprintf(f, "<text transform='translate(%.1f,%.1f) rotate(-90)' font-size='13' "
            "text-anchor='middle'>%s</text>\n", p->x0 - 44, p->y0 + PANEL_H / 2.0, ylabel);
}

static void draw_series(FILE *f, const nb_curves *c, const panel *p, int s, const char *color) {
    fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2' points='", color);
    for (int e = 0; e < c->n; e++) {
        float v = c->v[N_SERIES * e + s];
        if (isfinite(v)) fprintf(f, "%.1f,%.1f ", px(p, e), py(p, v));
    }
    fprintf(f, "'/>\n");
    for (int e = 0; c->n <= 100 && e < c->n; e++) { /* dots only where they stay apart */
        float v = c->v[N_SERIES * e + s];
        if (isfinite(v))
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n", px(p, e), py(p, v), color);
    }
}

static void range_of(const nb_curves *c, int s0, int s1, double *lo, double *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int e = 0; e < c->n; e++)
        for (int s = s0; s <= s1; s++) {
            float v = c->v[N_SERIES * e + s];
            if (isfinite(v)) *lo = fmin(*lo, v), *hi = fmax(*hi, v);
        }
    if (!isfinite(*lo)) *lo = 0, *hi = 1;
    double pad = (*hi - *lo) * 0.08 + 1e-6 * fmax(1, fmax(fabs(*lo), fabs(*hi)));
    *lo -= pad;
    *hi += pad;
}

static void draw_legend(FILE *f, const nb_curves *c, double x, double y) {
    const char *names[2] = {"train", held_out_name(c)}, *colors[2] = {"#1f77b4", "#ff7f0e"};
    for (int i = 0; i < 2; i++) {
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='%s' stroke-width='2'/>\n",
                x, y + 16 * i, x + 20, y + 16 * i, colors[i]);
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='12'>%s</text>\n", x + 26, y + 16 * i + 4, names[i]);
    }
}

void nb__svg_begin(FILE *f, double width, double height, const char *title, double title_y) {
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%.0f' height='%.0f' "
            "font-family='sans-serif'>\n<rect width='100%%' height='100%%' fill='white'/>\n", width, height);
    if (!title) return;
    fprintf(f, "<text x='%g' y='%g' font-size='16' text-anchor='middle'>", width / 2, title_y);
    nb__svg_escaped(f, title);
    fprintf(f, "</text>\n");
}

void nb__svg_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '\'': fputs("&apos;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

nb_status nb_curves_write_svg(const nb_curves *c, const char *path, const char *title) {
    if (!c || !path) return nb__fail_status(NB_ERR_NULL, "curves_write_svg: curves or path is NULL");
    nb__afile af;
    if (nb__afile_begin(&af, "curves_write_svg", path) != NB_OK) return nb_error_code();
    FILE *f = nb__afile_stream(&af);
    if (!f) return nb__afile_commit(&af); /* reports the failure */
    int width = MARGIN_L * 2 + PANEL_W * 2 + GAP + 24, height = MARGIN_T + PANEL_H + MARGIN_B + 30;
    nb__svg_begin(f, width, height, title, 18);
    panel loss = {.x0 = MARGIN_L, .y0 = MARGIN_T + 10, .n = c->n, .x = x_name(c)};
    panel acc = {.x0 = MARGIN_L * 2 + PANEL_W + GAP, .y0 = MARGIN_T + 10, .n = c->n, .x = x_name(c)};
    char panel_title[32];
    snprintf(panel_title, sizeof panel_title, "%s", metric_name(c));
    panel_title[0] = (char)toupper((unsigned char)panel_title[0]);
    range_of(c, TRAIN_LOSS, TEST_LOSS, &loss.lo, &loss.hi);
    range_of(c, TRAIN_ACC, TEST_ACC, &acc.lo, &acc.hi);
    draw_axes(f, &loss, "Loss", "loss");
    draw_axes(f, &acc, panel_title, metric_name(c));
    draw_series(f, c, &loss, TRAIN_LOSS, "#1f77b4");
    draw_series(f, c, &loss, TEST_LOSS, "#ff7f0e");
    draw_series(f, c, &acc, TRAIN_ACC, "#1f77b4");
    draw_series(f, c, &acc, TEST_ACC, "#ff7f0e");
    draw_legend(f, c, loss.x0 + PANEL_W - 70, loss.y0 + 14);
    draw_legend(f, c, acc.x0 + PANEL_W - 70, acc.y0 + PANEL_H - 34);
    fprintf(f, "</svg>\n");
    return nb__afile_commit(&af);
}
