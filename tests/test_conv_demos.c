/*
 * test_conv_demos.c — the course's convolution demonstrations, with outputs worked out by hand
 * (and checked against torch.nn.functional.conv2d, which computes the same cross-correlation):
 * a filter slides over the image and each output is the sum of the products under it,
 *     y[i][j] = sum_{u, v} w[u][v] x[i + u][j + v]          (no padding: out = in - k + 1).
 *
 * The image is 6x6, dark with a bright lower-right 4x4 quadrant, so every 3x3 window holds a
 * countable number of ones: window (i, j) covers rows i..i+2 and columns j..j+2, of which
 * r_i = c_i = [1, 2, 3, 3] (i = 0..3) are bright.
 */
#include "check.h"

/* x [1, 1, h, w] * w [1, 1, k, k] with padding `pad`, in the caller's scope. */
static nb_tensor *filter(const float *img, int h, int w, const float *kernel, int k, int pad) {
    nb_tensor *x = nb_from_data(img, NB_SHAPE(1, 1, h, w));
    nb_tensor *kt = nb_from_data(kernel, NB_SHAPE(1, 1, k, k));
    return nb_conv2d(x, kt, NULL, &(nb_conv2d_opts){.padding = {pad, pad}});
}

static const float quadrant[36] = {
    0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0,
    0, 0, 1, 1, 1, 1,
    0, 0, 1, 1, 1, 1,
    0, 0, 1, 1, 1, 1,
    0, 0, 1, 1, 1, 1,
};

static const float sobel_x[9] = {-1, 0, 1, -2, 0, 2, -1, 0, 1};
static const float sobel_y[9] = {-1, -2, -1, 0, 0, 0, 1, 2, 1};

/* Sobel x responds to the vertical edge between columns 1 and 2: a window straddling it sees
 * (1 + 2 + 1) (right - left) over its bright rows — 1, 3, 4, 4 going down (the rows' weights
 * -1 0 1 / -2 0 2 / -1 0 1 meet 1, 2 then 3 bright rows) — and 0 where both sides are equal.
 * Sobel y is its transpose and finds the horizontal edge. */
static void sobel_filters_find_the_edges_of_the_quadrant(void) {
    nb_scope_begin();
    CHECK_TENSOR("sobel x", filter(quadrant, 6, 6, sobel_x, 3, 0),
                 ((double[]){1, 1, 0, 0, 3, 3, 0, 0, 4, 4, 0, 0, 4, 4, 0, 0}), 16, 0, 0);
    CHECK_TENSOR("sobel y", filter(quadrant, 6, 6, sobel_y, 3, 0),
                 ((double[]){1, 3, 4, 4, 1, 3, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0}), 16, 0, 0);
    /* both at once: two output channels, weight [2, 1, 3, 3] */
    float both[18];
    memcpy(both, sobel_x, sizeof sobel_x);
    memcpy(both + 9, sobel_y, sizeof sobel_y);
    nb_tensor *y = nb_conv2d(nb_from_data(quadrant, NB_SHAPE(1, 1, 6, 6)), nb_from_data(both, NB_SHAPE(2, 1, 3, 3)),
                             NULL, &(nb_conv2d_opts){0});
    CHECK(y && nb_ndim(y) == 4 && nb_size(y, 1) == 2 && nb_size(y, 2) == 4);
    CHECK_TENSOR("sobel x and y as two channels", y,
                 ((double[]){1, 1, 0, 0, 3, 3, 0, 0, 4, 4, 0, 0, 4, 4, 0, 0,
                             1, 3, 4, 4, 1, 3, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0}), 32, 0, 0);
    nb_scope_end();
}

/* The box blur averages each window: r_i c_j / 9 bright pixels.  With padding 1 the output keeps
 * the image's size and the zero border dims the edges (the top row and left column see none). */
static void box_blur_averages_each_window(void) {
    float box[9];
    for (int i = 0; i < 9; i++) box[i] = 1.0f / 9;
    double want[16], want_same[36];
    static const int r[4] = {1, 2, 3, 3};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) want[i * 4 + j] = r[i] * r[j] / 9.0;
    static const int rs[6] = {0, 1, 2, 3, 3, 2}; /* bright rows under a padded window */
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) want_same[i * 6 + j] = rs[i] * rs[j] / 9.0;
    nb_scope_begin();
    CHECK_TENSOR("box blur", filter(quadrant, 6, 6, box, 3, 0), want, 16, 1e-6, 1e-6);
    nb_tensor *same = filter(quadrant, 6, 6, box, 3, 1);
    CHECK(same && nb_size(same, 2) == 6 && nb_size(same, 3) == 6);
    CHECK_TENSOR("box blur, padding 1", same, want_same, 36, 1e-6, 1e-6);
    nb_scope_end();
}

/* Sharpen: 5 x centre - its four neighbours.  Inside the quadrant that is 5 - 4 = 1, on its
 * edges 5 - 3 = 2 and at its corner 5 - 2 = 3; dark pixels next to it go negative. */
static void sharpen_boosts_the_quadrant_edges(void) {
    static const float sharpen[9] = {0, -1, 0, -1, 5, -1, 0, -1, 0};
    nb_scope_begin();
    CHECK_TENSOR("sharpen", filter(quadrant, 6, 6, sharpen, 3, 0),
                 ((double[]){0, -1, -1, -1, -1, 3, 2, 2, -1, 2, 1, 1, -1, 2, 1, 1}), 16, 0, 0);
    nb_scope_end();
}

/* The worked examples: [[1,2],[3,4]] on [[1,0],[0,1]] is 1*1 + 2*0 + 3*0 + 4*1 = 5; sliding it
 * over 1..9 gives 1+4+12+20 = 37, 2+6+15+24 = 47, 4+10+21+32 = 67, 5+12+24+36 = 77. */
static void two_by_two_filter_worked_examples(void) {
    static const float w[4] = {1, 2, 3, 4}, eye[4] = {1, 0, 0, 1};
    static const float nine[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    nb_scope_begin();
    nb_tensor *y = filter(eye, 2, 2, w, 2, 0);
    CHECK(y && nb_numel(y) == 1);
    CHECK_NEAR(nb_item(y), 5, 0, 0);
    CHECK_TENSOR("2x2 filter over 1..9", filter(nine, 3, 3, w, 2, 0), ((double[]){37, 47, 67, 77}), 4, 0, 0);
    /* stride 2 keeps every other window: only the first fits in 3x3 */
    nb_tensor *s = nb_conv2d(nb_from_data(nine, NB_SHAPE(1, 1, 3, 3)), nb_from_data(w, NB_SHAPE(1, 1, 2, 2)), NULL,
                             &(nb_conv2d_opts){.stride = {2, 2}});
    CHECK_TENSOR("stride 2", s, ((double[]){37}), 1, 0, 0);
    nb_scope_end();
}

/* A filter equal to a pattern responds most where the pattern is (sum of its squares); moving
 * the pattern moves the response, so the maximum over the image — conv then global max, the
 * CNN's recipe for "is it there?" — does not change. */
static void max_of_a_convolution_ignores_where_the_pattern_is(void) {
    static const float cross[9] = {0, 1, 0, 1, 1, 1, 0, 1, 0}; /* sum of squares 5 */
    float img_a[100] = {0}, img_b[100] = {0};
    for (int u = 0; u < 3; u++)
        for (int v = 0; v < 3; v++) {
            img_a[(1 + u) * 10 + 1 + v] = cross[u * 3 + v]; /* at (1, 1) */
            img_b[(5 + u) * 10 + 4 + v] = cross[u * 3 + v]; /* at (5, 4) */
        }
    nb_scope_begin();
    nb_tensor *ya = filter(img_a, 10, 10, cross, 3, 0), *yb = filter(img_b, 10, 10, cross, 3, 0);
    CHECK_NEAR(nb_item(nb_max(ya)), 5, 0, 0);
    CHECK_NEAR(nb_item(nb_max(yb)), 5, 0, 0);
    /* the peaks sit where the patterns start: flat index 1*8+1 and 5*8+4 of the 8x8 outputs */
    CHECK_NEAR(nb_item(nb_argmax(ya, NB_ALL, false)), 1 * 8 + 1, 0, 0);
    CHECK_NEAR(nb_item(nb_argmax(yb, NB_ALL, false)), 5 * 8 + 4, 0, 0);
    /* the same through the modules: a conv layer holding the pattern, then a global max pool */
    nb_module *c = nb_conv2d_new(1, 1, 3, 3, (nb_conv2d_opts){0}, false);
    nb_copy_from(nb_module_find(c, "weight"), cross, 9);
    nb_module *pool = nb_max_pool2d_new((nb_pool2d_opts){.kernel = {8, 8}});
    nb_module *net = nb_sequential_new(2, (nb_module *[]){c, pool});
    CHECK_NEAR(nb_item(nb_module_forward(net, nb_from_data(img_a, NB_SHAPE(1, 1, 10, 10)))), 5, 0, 0);
    CHECK_NEAR(nb_item(nb_module_forward(net, nb_from_data(img_b, NB_SHAPE(1, 1, 10, 10)))), 5, 0, 0);
    nb_scope_end();
    nb_module_free(net);
}

/* Pooling keeps the largest (or the mean) of each 2x2 block. */
static void pooling_summarises_each_block(void) {
    static const float x[16] = {1, 3, 2, 1, 4, 2, 0, 1, 1, 1, 5, 6, 0, 2, 7, 8};
    nb_scope_begin();
    nb_tensor *t = nb_from_data(x, NB_SHAPE(1, 1, 4, 4));
    nb_pool2d_opts two = {.kernel = {2, 2}};
    CHECK_TENSOR("max pool", nb_max_pool2d(t, &two), ((double[]){4, 2, 2, 8}), 4, 0, 0);
    CHECK_TENSOR("avg pool", nb_avg_pool2d(t, &two), ((double[]){2.5, 1, 1, 6.5}), 4, 0, 0);
    nb_scope_end();
}

/* out = floor((in + 2 pad - k) / stride) + 1: LeNet keeps 28 through conv5 with padding 2,
 * halves it to 14 and 7 by pooling, so the Linear after Flatten takes 32 * 7 * 7 = 1568. */
static void lenet_shapes_follow_the_size_formula(void) {
    nb_conv2d_opts pad2 = {.padding = {2, 2}};
    nb_pool2d_opts two = {.kernel = {2, 2}};
    nb_module *layers[] = {nb_conv2d_new(1, 16, 5, 5, pad2, true), nb_activation_new(NB_ACT_RELU, 0),
                           nb_max_pool2d_new(two), nb_conv2d_new(16, 32, 5, 5, pad2, true),
                           nb_activation_new(NB_ACT_RELU, 0), nb_max_pool2d_new(two), nb_flatten_new(1, -1),
                           nb_linear_new(1568, 128, true), nb_activation_new(NB_ACT_RELU, 0),
                           nb_linear_new(128, 10, true)};
    nb_module *net = nb_sequential_new(10, layers);
    static const int64_t want[10][4] = {{2, 16, 28, 28}, {2, 16, 28, 28}, {2, 16, 14, 14}, {2, 32, 14, 14},
                                        {2, 32, 14, 14}, {2, 32, 7, 7},   {2, 1568},        {2, 128},
                                        {2, 128},        {2, 10}};
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(2, 1, 28, 28));
    for (int i = 0; i < 10; i++) {
        char path[4];
        snprintf(path, sizeof path, "%d", i);
        x = nb_module_forward(nb_module_child(net, path), x);
        int nd = want[i][2] ? 4 : 2;
        bool ok = x && nb_ndim(x) == nd;
        for (int d = 0; ok && d < nd; d++) ok = nb_size(x, d) == want[i][d];
        if (!ok) CHECK_FAIL_("layer %d gives the wrong shape [%s]", i, nb_error_message());
        else check_passed_++;
    }
    nb_scope_end();
    nb_module_free(net);
}

int main(void) {
    sobel_filters_find_the_edges_of_the_quadrant();
    box_blur_averages_each_window();
    sharpen_boosts_the_quadrant_edges();
    two_by_two_filter_worked_examples();
    max_of_a_convolution_ignores_where_the_pattern_is();
    pooling_summarises_each_block();
    lenet_shapes_follow_the_size_formula();
    return check_summary();
}
