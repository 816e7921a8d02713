/*
 * test_heatmap.c — nb_heatmap_write_svg: one <rect> per cell whose tooltip gives back the
 * value, one colour scale over every panel, labels escaped, bad sizes refused by name, and a
 * failed write that leaves the old file.
 */
#include "check.h"
#include "nabla/train.h"
#include "tmpdir.h"

/* Occurrences of needle in hay. */
static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* The value of every tooltip "<title>..: v</title>" in the order of the file. */
static int tooltip_values(const char *svg, float *out, int cap) {
    int n = 0;
    for (const char *p = svg; (p = strstr(p, "<title>")) && n < cap; p++) {
        const char *end = strstr(p, "</title>"), *colon = end;
        while (colon > p && *colon != ':') colon--;
        if (*colon == ':') out[n++] = strtof(colon + 1, NULL);
    }
    return n;
}

/* The <rect ...> element that holds the n-th tooltip, as its fill's rgb triple. */
static void fill_of_cell(const char *svg, int n, int rgb[3]) {
    const char *p = svg;
    for (int i = 0; i <= n; i++) p = strstr(p + 1, "<title>");
    while (p > svg && strncmp(p, "<rect", 5)) p--;
    const char *fill = strstr(p, "fill='rgb(");
    rgb[0] = rgb[1] = rgb[2] = -1;
    if (fill) sscanf(fill, "fill='rgb(%d,%d,%d)", &rgb[0], &rgb[1], &rgb[2]);
}

static void heatmap_has_one_rect_per_cell_whose_tooltip_gives_the_value_back(void) {
    float a[6] = {0.1f, 0.2f, 0.7f, 0.25f, 0.5f, 0.25f}, b[6] = {1, 0, 0, 0, 0.5f, 0.5f};
    const char *rows[2] = {"out<1>", "out&2"}, *cols[3] = {"a", "b", "'c'"};
    nb_heatmap panels[2] = {{.values = a, .rows = 2, .cols = 3, .row_labels = rows, .col_labels = cols,
                             .title = "head 1"},
                            {.values = b, .rows = 2, .cols = 3, .title = "mean"}};
    CHECK(nb_heatmap_write_svg(tpath("map.svg"), 2, panels, "cross-attention <layer 1>") == NB_OK);
    size_t n;
    char *svg = read_all(tpath("map.svg"), &n);
    CHECK(svg && n > 0);
    if (!svg) return;
    CHECK(!strncmp(svg, "<svg ", 5));
    CHECK_STR_CONTAINS(svg, "</svg>\n");
    CHECK_EQ_INT(count(svg, "<title>"), 12);
    CHECK_EQ_INT(count(svg, "<title>"), count(svg, "</title>"));
    CHECK_EQ_INT(count(svg, "<text"), count(svg, "</text>"));
    float got[12];
    CHECK_EQ_INT(tooltip_values(svg, got, 12), 12);
    double want[12];
    for (int i = 0; i < 6; i++) want[i] = a[i], want[6 + i] = b[i];
    CHECK_ARRAY("tooltips", got, want, 12, 1e-6, 0);
    /* labels and titles escaped; a panel without labels numbers its rows and columns */
    CHECK_STR_CONTAINS(svg, "out&lt;1&gt;, &apos;c&apos;: 0.7");
    CHECK_STR_CONTAINS(svg, "out&amp;2, a: 0.25");
    CHECK_STR_CONTAINS(svg, "cross-attention &lt;layer 1&gt;");
    CHECK_STR_CONTAINS(svg, "<title>1, 2: 0.5</title>");
    CHECK(!strstr(svg, "out<1>"));
    /* one scale over both panels: 0 (panel 2) is the darkest, 1 (panel 2) the brightest */
    int lo[3], hi[3], mid[3];
    fill_of_cell(svg, 7, lo), fill_of_cell(svg, 6, hi), fill_of_cell(svg, 10, mid);
    CHECK_EQ_INT(lo[0], 68); CHECK_EQ_INT(lo[1], 1); CHECK_EQ_INT(lo[2], 84);
    CHECK_EQ_INT(hi[0], 253); CHECK_EQ_INT(hi[1], 231); CHECK_EQ_INT(hi[2], 37);
    CHECK_EQ_INT(mid[0], 33); CHECK_EQ_INT(mid[1], 145); CHECK_EQ_INT(mid[2], 140);
    free(svg);
}

static void heatmap_draws_non_finite_values_grey(void) {
    float v[2] = {NAN, 3};
    nb_heatmap p = {.values = v, .rows = 1, .cols = 2};
    CHECK(nb_heatmap_write_svg(tpath("nan.svg"), 1, &p, NULL) == NB_OK);
    size_t n;
    char *svg = read_all(tpath("nan.svg"), &n);
    int grey[3];
    fill_of_cell(svg, 0, grey);
    CHECK_EQ_INT(grey[0], 170); CHECK_EQ_INT(grey[1], 170); CHECK_EQ_INT(grey[2], 170);
    CHECK_STR_CONTAINS(svg, "<title>0, 0: nan</title>");
    free(svg);
}

static void heatmap_refuses_bad_sizes_and_keeps_the_old_file_when_it_cannot_write(void) {
    float v[4] = {0, 1, 2, 3};
    nb_heatmap p = {.values = v, .rows = 2, .cols = 2};
    CHECK(nb_heatmap_write_svg(tpath("x.svg"), 0, &p, NULL) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "0 panels");
    nb_heatmap bad = {.values = v, .rows = 0, .cols = 2};
    CHECK(nb_heatmap_write_svg(tpath("x.svg"), 1, &bad, NULL) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "panel 0 is 0 x 2");
    nb_heatmap none = {.rows = 1, .cols = 1};
    CHECK(nb_heatmap_write_svg(tpath("x.svg"), 1, &none, NULL) == NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "panel 0 has no values");
    CHECK(nb_heatmap_write_svg(NULL, 1, &p, NULL) == NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "heatmap_write_svg");
    CHECK(nb_heatmap_write_svg(tpath("no/such/dir/x.svg"), 1, &p, NULL) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "no/such/dir/x.svg");
    write_text(tpath("old.svg"), "old");
    CHECK(nb_heatmap_write_svg(tpath("old.svg"), 1, &bad, NULL) == NB_ERR_ARG);
    nb_error_clear();
    size_t n;
    char *old = read_all(tpath("old.svg"), &n);
    CHECK(old && !strcmp(old, "old"));
    free(old);
}

int main(void) {
    if (!tmpdir_make("nb_test_heatmap")) return 1;
    heatmap_has_one_rect_per_cell_whose_tooltip_gives_the_value_back();
    heatmap_draws_non_finite_values_grey();
    heatmap_refuses_bad_sizes_and_keeps_the_old_file_when_it_cannot_write();
    tmpdir_remove();
    return check_summary();
}
