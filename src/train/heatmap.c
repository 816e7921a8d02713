/*
 * heatmap.c — matrices as SVG heatmaps (attention maps: rows the queries, columns the keys),
 * the way matplotlib's imshow draws them in the course: one panel per matrix, four to a row,
 * every panel on one colour scale (viridis, from the smallest to the largest finite value), a
 * colour bar on the right.  Each cell is one <rect> with a <title> child, which browsers show
 * as a tooltip, so the exact value of a cell can be read off the picture.  Written atomically
 * (src/io/atomic.c) as the learning curves are.
 */
#include "nabla/train.h"
#include "../io/io.h"
#include "svg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_SIDE 1024 /* rows or columns of a panel */
#define PER_ROW 4     /* panels side by side */
#define GRID_PX 320   /* a panel's longer side, before the cell size is clamped */
#define BAR_W 16
#define BAR_H 200

/* Where a panel goes and how big its parts are, in pixels. */
typedef struct {
    double x, y;      /* top left of the panel's box */
    double cell;      /* side of a cell */
    double left, top; /* room for the row labels and for the title */
    double w, h;      /* the whole panel, labels included */
    bool slanted;     /* column labels drawn at -45 degrees (some are long) */
} layout;

/* The longest label of n (or of the numbers 0 .. n-1 when labels is NULL), in characters. */
static size_t longest(const char *const *labels, int n) {
    size_t m = labels ? 0 : (size_t)snprintf(NULL, 0, "%d", n - 1);
    for (int i = 0; labels && i < n; i++)
        if (labels[i] && strlen(labels[i]) > m) m = strlen(labels[i]);
    return m;
}

static layout layout_of(const nb_heatmap *p) {
    layout l = {0};
    int side = p->rows > p->cols ? p->rows : p->cols;
    l.cell = fmin(32, fmax(4, floor(GRID_PX / (double)side)));
    size_t rl = longest(p->row_labels, p->rows), cl = longest(p->col_labels, p->cols);
    l.left = 10 + 7 * (double)(rl < 16 ? rl : 16);
    l.top = p->title ? 26 : 8;
    l.slanted = cl > 2;
    double bottom = l.slanted ? 12 + 5 * (double)(cl < 16 ? cl : 16) : 18;
    l.w = l.left + l.cell * p->cols + 16;
    l.h = l.top + l.cell * p->rows + bottom;
    return l;
}

/* Viridis at t in [0, 1], interpolated between five of its stops. */
static void viridis(double t, int rgb[3]) {
    static const int stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    double x = fmin(1, fmax(0, t)) * 4;
    int i = x >= 4 ? 3 : (int)x;
    double f = x - i;
    for (int c = 0; c < 3; c++) rgb[c] = (int)lround(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]));
}

static void put_label(FILE *f, const char *const *labels, int i) {
    if (labels && labels[i]) nb__svg_escaped(f, labels[i]);
    else fprintf(f, "%d", i);
}

static void draw_panel(FILE *f, const nb_heatmap *p, const layout *l, double lo, double hi) {
    double gx = l->x + l->left, gy = l->y + l->top, fs = fmin(12, fmax(7, l->cell * 0.8));
    if (p->title) {
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='13' text-anchor='middle'>", gx + l->cell * p->cols / 2,
                l->y + 16);
        nb__svg_escaped(f, p->title);
        fprintf(f, "</text>\n");
    }
    for (int r = 0; r < p->rows; r++)
        for (int c = 0; c < p->cols; c++) {
            float v = p->values[(size_t)r * (size_t)p->cols + (size_t)c];
            int rgb[3] = {170, 170, 170}; /* grey: not finite */
            if (isfinite(v)) viridis(hi > lo ? (v - lo) / (hi - lo) : 0.5, rgb);
            fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='rgb(%d,%d,%d)'><title>",
                    gx + c * l->cell, gy + r * l->cell, l->cell, l->cell, rgb[0], rgb[1], rgb[2]);
            put_label(f, p->row_labels, r);
            fprintf(f, ", ");
            put_label(f, p->col_labels, c);
            fprintf(f, ": %.6g</title></rect>\n", (double)v);
        }
    for (int r = 0; r < p->rows; r++) {
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='%.0f' text-anchor='end'>", gx - 4,
                gy + (r + 0.5) * l->cell + fs / 3, fs);
        put_label(f, p->row_labels, r);
        fprintf(f, "</text>\n");
    }
    for (int c = 0; c < p->cols; c++) {
        double x = gx + (c + 0.5) * l->cell, y = gy + p->rows * l->cell + fs + 2;
        if (l->slanted)
            fprintf(f, "<text transform='translate(%.1f,%.1f) rotate(-45)' font-size='%.0f' "
                    "text-anchor='end'>", x + fs / 3, y - fs / 2, fs);
        else fprintf(f, "<text x='%.1f' y='%.1f' font-size='%.0f' text-anchor='middle'>", x, y, fs);
        put_label(f, p->col_labels, c);
        fprintf(f, "</text>\n");
    }
}

/* The colour bar at (x, y): viridis from lo (bottom) to hi (top), both values written. */
static void draw_bar(FILE *f, double x, double y, double lo, double hi) {
    fprintf(f, "<defs><linearGradient id='scale' x1='0' y1='1' x2='0' y2='0'>");
    for (int i = 0; i <= 4; i++) {
        int rgb[3];
        viridis(i / 4.0, rgb);
        fprintf(f, "<stop offset='%g' stop-color='rgb(%d,%d,%d)'/>", i / 4.0, rgb[0], rgb[1], rgb[2]);
    }
    fprintf(f, "</linearGradient></defs>\n");
    fprintf(f, "<rect x='%.1f' y='%.1f' width='%d' height='%d' fill='url(#scale)' stroke='#333'/>\n", x, y,
            BAR_W, BAR_H);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='11'>%.3g</text>\n", x + BAR_W + 4, y + 10, hi);
    fprintf(f, "<text x='%.1f' y='%.1f' font-size='11'>%.3g</text>\n", x + BAR_W + 4, y + BAR_H, lo);
}

static nb_status check_panels(int n, const nb_heatmap *panels) {
    if (n < 1) return nb__fail_status(NB_ERR_ARG, "heatmap_write_svg: %d panels (at least 1)", n);
    for (int i = 0; i < n; i++) {
        const nb_heatmap *p = &panels[i];
        if (!p->values) return nb__fail_status(NB_ERR_NULL, "heatmap_write_svg: panel %d has no values", i);
        if (p->rows < 1 || p->cols < 1 || p->rows > MAX_SIDE || p->cols > MAX_SIDE)
            return nb__fail_status(NB_ERR_ARG, "heatmap_write_svg: panel %d is %d x %d (each side 1 .. %d)",
                                   i, p->rows, p->cols, MAX_SIDE);
    }
    return NB_OK;
}

/* Width and height of the row of panels first .. first + PER_ROW - 1 (those that exist). */
static void row_extent(const nb_heatmap *panels, int first, int n, double *w, double *h) {
    *w = 0, *h = 0;
    for (int k = first; k < n && k < first + PER_ROW; k++) {
        layout l = layout_of(&panels[k]);
        *w += l.w, *h = fmax(*h, l.h);
    }
}

nb_status nb_heatmap_write_svg(const char *path, int n, const nb_heatmap *panels, const char *title) {
    if (!path || !panels) return nb__fail_status(NB_ERR_NULL, "heatmap_write_svg: path or panels is NULL");
    if (check_panels(n, panels) != NB_OK) return nb_error_code();
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < (size_t)panels[i].rows * (size_t)panels[i].cols; j++)
            if (isfinite(panels[i].values[j]))
                lo = fmin(lo, panels[i].values[j]), hi = fmax(hi, panels[i].values[j]);
    if (!isfinite(lo)) lo = 0, hi = 1;
    double top = title ? 34 : 10, width = 0, height = top, w, h;
    for (int i = 0; i < n; i += PER_ROW) row_extent(panels, i, n, &w, &h), width = fmax(width, w), height += h;
    width += 10 + BAR_W + 60;
    height = fmax(height, top + BAR_H + 8) + 10;
    nb__afile af;
    if (nb__afile_begin(&af, "heatmap_write_svg", path) != NB_OK) return nb_error_code();
    FILE *f = nb__afile_stream(&af);
    if (!f) return nb__afile_commit(&af); /* reports the failure */
    nb__svg_begin(f, width, height, title, 20);
    double y = top;
    for (int i = 0; i < n; i += PER_ROW) { /* panels left to right, each row as high as its highest */
        double x = 10;
        for (int k = i; k < n && k < i + PER_ROW; k++) {
            layout l = layout_of(&panels[k]);
            l.x = x, l.y = y;
            draw_panel(f, &panels[k], &l, lo, hi);
            x += l.w;
        }
        row_extent(panels, i, n, &w, &h);
        y += h;
    }
    draw_bar(f, width - BAR_W - 50, top + 8, lo, hi);
    fprintf(f, "</svg>\n");
    return nb__afile_commit(&af);
}
