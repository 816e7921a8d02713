/*
 * test_grad2_structural.c — the backwards of the view, select, pool and conv families, and of
 * the ops made for them (slice_backward, scatter_add, index_add, avg_pool2d_backward,
 * upsample_*2d_backward, conv2d_weight), in create_graph mode: what test_grad2.c's walk of the
 * table (values against finite differences and torch) does not look at.
 *
 *  - Heap mode: with no scope open, a second-order pass over every smooth case of these rows
 *    (op_cases.h) gives back every byte, and under make test-asan frees nothing twice: each
 *    backward hands the engine references of its own and drops its intermediates.  The pass
 *    uses no op outside these families (the second derivative is taken through grad_outputs,
 *    not through a sum of products), so it measures their backwards alone.
 *  - The gradients carry the graph torch builds: gather's gradient comes from scatter_add,
 *    index_select's from index_add, slice's from slice_backward, the pools' and upsamplings'
 *    from their backward ops, conv2d's weight gradient from conv2d_weight; with recording off
 *    (nb_backward) nothing is recorded.
 *  - Third order through a convolution equals its closed form: for y = conv2d(x, w), the
 *    gradient of <d<y, R>/dw, U> with respect to R is conv2d(x, U), and the gradient of
 *    <conv2d(x, U), V> with respect to x is conv_transpose2d(V, U).
 *  - The ops made for backwards refuse bad arguments with errors naming them.
 */
#include "check.h"
#include "op_cases.h"

#define MAX_ELEMS 256

static bool family_row(nb_op_id op) {
    switch (op) {
    case NB_OP_RESHAPE: case NB_OP_PERMUTE: case NB_OP_SLICE: case NB_OP_EXPAND:
    case NB_OP_CONTIGUOUS: case NB_OP_SLICE_BACKWARD: case NB_OP_CONCAT: case NB_OP_WHERE:
    case NB_OP_GATHER: case NB_OP_INDEX_SELECT: case NB_OP_SCATTER_ADD: case NB_OP_INDEX_ADD:
    case NB_OP_MAX_POOL2D: case NB_OP_AVG_POOL2D: case NB_OP_UPSAMPLE_NEAREST2D:
    case NB_OP_UPSAMPLE_BILINEAR2D: case NB_OP_AVG_POOL2D_BACKWARD:
    case NB_OP_UPSAMPLE_NEAREST2D_BACKWARD: case NB_OP_UPSAMPLE_BILINEAR2D_BACKWARD:
    case NB_OP_CONV2D: case NB_OP_CONV_TRANSPOSE2D: case NB_OP_CONV2D_WEIGHT:
        return true;
    default:
        return false;
    }
}

/* Tensors of one heap run, freed together at its end. */
typedef struct {
    nb_tensor *t[32];
    int n;
} owned;

static nb_tensor *own(owned *o, nb_tensor *t) {
    if (t && o->n < 32) o->t[o->n++] = t;
    return t;
}

static void free_owned(owned *o) {
    while (o->n > 0) nb_tensor_free(o->t[--o->n]);
}

/* Fills a new tensor of t's shape with a fixed pattern (k mod 7 - 3) / 4. */
static nb_tensor *pattern_like(const nb_tensor *t) {
    float v[MAX_ELEMS];
    int64_t n = nb_numel(t);
    for (int64_t k = 0; k < n && k < MAX_ELEMS; k++) v[k] = (float)(k % 7 - 3) / 4.0f;
    return n <= MAX_ELEMS ? nb_from_data(v, nb_ndim(t), nb_shape(t)) : NULL;
}

/* One second-order pass with no scope open: g = d<out, R>/d(inputs, R) with create_graph,
 * then d<g, U>/d(inputs, R); everything made is freed.  *sum gets the sum of the second
 * derivatives (to compare runs). */
static nb_status heap_pass(const op_case *c, float values[][MAX_ELEMS], double *sum) {
    owned o = {0};
    nb_tensor *x[OC_MAX_IN] = {0}, *wrt[OC_MAX_IN + 1];
    int n_in = oc_n_inputs(c), n_wrt = 0;
    nb_status st = NB_ERR_ARG;
    for (int i = 0; i < n_in; i++) {
        nb_tensor *leaf = own(&o, oc_make_leaf(&c->in[i], values[i]));
        if (!leaf) goto done;
        if (oc_is_float(&c->in[i])) {
            nb_set_requires_grad(leaf, true);
            wrt[n_wrt++] = leaf;
        }
        x[i] = oc_view_of(&c->in[i], leaf);
        if (x[i] != leaf && !own(&o, x[i])) goto done;
    }
    nb_tensor *out = own(&o, oc_fns[c->fn].call(x, c));
    nb_tensor *r = out ? own(&o, pattern_like(out)) : NULL;
    if (!r) goto done;
    nb_set_requires_grad(r, true);
    wrt[n_wrt++] = r;
    nb_tensor *g[OC_MAX_IN + 1], *with_graph[OC_MAX_IN + 1], *u[OC_MAX_IN + 1];
    nb_grad_options first = {.create_graph = true, .allow_unused = true};
    if ((st = nb_autograd_grad(1, &out, &r, n_wrt - 1, wrt, g, &first)) != NB_OK) goto done;
    int m = 0;
    for (int i = 0; i < n_wrt - 1; i++) {
        own(&o, g[i]);
        if (g[i] && nb_requires_grad(g[i])) {
            with_graph[m] = g[i];
            u[m++] = own(&o, pattern_like(g[i]));
        }
    }
    /* a linear op's gradient depends on R alone; R's gradient is the op along U */
    nb_tensor *h[OC_MAX_IN + 1];
    st = m ? nb_autograd_grad(m, with_graph, u, n_wrt, wrt, h,
                              &(nb_grad_options){.allow_unused = true})
           : NB_ERR_GRAPH;
    if (st != NB_OK) goto done;
    *sum = 0;
    for (int i = 0; i < n_wrt; i++) {
        if (!h[i]) continue;
        float v[MAX_ELEMS];
        int64_t n = nb_numel(h[i]);
        nb_copy_to(h[i], v, n);
        for (int64_t k = 0; k < n; k++) *sum += v[k];
        nb_tensor_free(h[i]);
    }
done:
    free_owned(&o);
    return st;
}

static void heap_second_order_gives_every_byte_back(const op_case *c) {
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(c - oc_cases);
    float values[OC_MAX_IN][MAX_ELEMS];
    for (int i = 0; i < oc_n_inputs(c); i++) oc_draw_values(&c->in[i], &rng, values[i]);
    double first = 0, second = 0;
    nb_status st = heap_pass(c, values, &first); /* warms the engine's scope's blocks */
    int64_t before = nb_alloc_stats_get().bytes_live;
    if (st == NB_OK) st = heap_pass(c, values, &second);
    int64_t after = nb_alloc_stats_get().bytes_live;
    if (st != NB_OK) {
        CHECK_FAIL_("%s: heap second-order pass failed: %s: %s", c->name, nb_status_name(st),
                    nb_error_message());
        nb_error_clear();
        return;
    }
    if (after == before) check_passed_++;
    else CHECK_FAIL_("%s: a heap second-order pass leaves %lld bytes behind", c->name,
                     (long long)(after - before));
    if (first == second) check_passed_++;
    else CHECK_FAIL_("%s: two heap passes disagree: %.9g, %.9g", c->name, first, second);
}

/* ---- the gradients' graphs */

/* The grad_fn of the create_graph gradient of out = f(x) with respect to x (in a scope). */
static const char *gradient_grad_fn(nb_tensor *x, nb_tensor *out) {
    nb_tensor *r = pattern_like(out), *g = NULL;
    nb_set_requires_grad(r, true);
    if (nb_autograd_grad(1, &out, &r, 1, &x, &g, &(nb_grad_options){.create_graph = true}) != NB_OK)
        return nb_error_message();
    return nb_grad_fn(g) ? nb_grad_fn(g) : "(none)";
}

static nb_tensor *leaf(int ndim, const int64_t *shape) {
    float v[MAX_ELEMS];
    int64_t n = oc_numel(ndim, shape);
    for (int64_t k = 0; k < n; k++) v[k] = (float)((k * 37) % 23) / 11.0f - 1.0f; /* distinct */
    nb_tensor *t = nb_from_data(v, ndim, shape);
    nb_set_requires_grad(t, true);
    return t;
}

static void gradients_carry_the_graph_torch_builds(void) {
    nb_scope_begin();
    nb_tensor *a = leaf(2, (int64_t[]){3, 4}), *img = leaf(4, (int64_t[]){1, 2, 4, 4});
    nb_tensor *idx = nb_from_int32((int32_t[]){2, 0, 1, 0}, 1, (int64_t[]){4});
    nb_tensor *idx2 = nb_from_int32((int32_t[]){2, 0, 1, 0, 1, 1, 0, 2}, 2, (int64_t[]){2, 4});
    nb_pool2d_opts pool = {.kernel = {2, 2}};
    CHECK_STR_CONTAINS(gradient_grad_fn(a, nb_gather(a, 0, idx2)), "ScatterAddBackward0");
    CHECK_STR_CONTAINS(gradient_grad_fn(a, nb_index_select(a, 1, idx)), "IndexAddBackward0");
    CHECK_STR_CONTAINS(gradient_grad_fn(a, nb_slice(a, 1, 1, 4, 2)), "SliceBackwardBackward0");
    CHECK_STR_CONTAINS(gradient_grad_fn(img, nb_avg_pool2d(img, &pool)),
                       "AvgPool2DBackwardBackward0");
    CHECK_STR_CONTAINS(gradient_grad_fn(img, nb_upsample_nearest2d(img, 2, 2)),
                       "UpsampleNearest2DBackwardBackward0");
    CHECK_STR_CONTAINS(gradient_grad_fn(img, nb_upsample_bilinear2d(img, 2, 2, false)),
                       "UpsampleBilinear2DBackwardBackward0");
    nb_tensor *w = leaf(4, (int64_t[]){3, 2, 3, 3});
    CHECK_STR_CONTAINS(gradient_grad_fn(w, nb_conv2d(img, w, NULL, NULL)),
                       "ConvolutionBackwardBackward0");
    /* the max pool's: g scattered (scatter_add) to the argmaxes over the planes seen flat */
    nb_tensor *y = nb_max_pool2d(img, &pool), *r = pattern_like(y), *g = NULL;
    nb_set_requires_grad(r, true);
    CHECK_EQ_INT(nb_autograd_grad(1, &y, &r, 1, &img, &g, &(nb_grad_options){.create_graph = true}),
                 NB_OK);
    CHECK(g && nb_requires_grad(g) && oc_graph_has_op(g, NB_OP_SCATTER_ADD));
    /* recording off: the fast path records nothing */
    nb_tensor *plain = nb_sum(nb_gather(a, 0, idx2));
    CHECK_EQ_INT(nb_backward(plain), NB_OK);
    CHECK(nb_grad(a) && !nb_requires_grad(nb_grad(a)) && nb_grad_fn(nb_grad(a)) == NULL);
    nb_scope_end();
}

/* ---- third order through a convolution */

/* a and b hold the same numbers to 1e-5 (relative and absolute). */
static void check_same_values(const char *what, const nb_tensor *a, const nb_tensor *b) {
    if (!a || !b || nb_numel(a) != nb_numel(b) || nb_numel(a) > MAX_ELEMS) {
        CHECK_FAIL_("%s: missing or of another size [%s]", what, nb_error_message());
        return;
    }
    float got[MAX_ELEMS];
    double want[MAX_ELEMS];
    const float *bv = host_vals(b);
    for (int64_t k = 0; k < nb_numel(b); k++) want[k] = bv[k];
    nb_copy_to(a, got, nb_numel(a));
    CHECK_ARRAY(what, got, want, nb_numel(a), 1e-5, 1e-5);
}

static void third_order_of_conv2d_is_its_closed_form(void) {
    nb_scope_begin();
    nb_conv2d_opts opts = {.padding = {1, 1}, .stride = {2, 1}};
    nb_tensor *x = leaf(4, (int64_t[]){1, 2, 5, 4}), *w = leaf(4, (int64_t[]){3, 2, 3, 3});
    nb_tensor *y = nb_conv2d(x, w, NULL, &opts), *r = pattern_like(y), *dw = NULL;
    nb_set_requires_grad(r, true);
    nb_grad_options keep = {.create_graph = true};
    CHECK_EQ_INT(nb_autograd_grad(1, &y, &r, 1, &w, &dw, &keep), NB_OK);
    nb_tensor *u = pattern_like(w), *dr = NULL;
    CHECK_EQ_INT(nb_autograd_grad(1, &dw, &u, 1, &r, &dr, &keep), NB_OK);
    nb_tensor *want_dr = nb_conv2d(x, u, NULL, &opts);
    check_same_values("second order: d<dw, U>/dR = conv2d(x, U)", dr, want_dr);
    nb_tensor *v = pattern_like(dr), *dx = NULL;
    CHECK_EQ_INT(nb_autograd_grad(1, &dr, &v, 1, &x, &dx, &keep), NB_OK);
    /* x's rows: (5 + 2 - 3) / 2 + 1 = 3 grid rows give back 5 image rows with output_padding 0 */
    nb_tensor *want_dx = nb_conv_transpose2d(v, u, NULL, &(nb_conv_transpose2d_opts){
                                                            .padding = {1, 1}, .stride = {2, 1}});
    check_same_values("third order: d<conv2d(x, U), V>/dx = conv_transpose2d(V, U)", dx, want_dx);
    nb_scope_end();
}

/* ---- errors of the ops made for backwards */

static void ops_made_for_backwards_refuse_bad_arguments(void) {
    nb_scope_begin();
    nb_tensor *g = nb_zeros(2, (int64_t[]){3, 4});
    nb_tensor *idx = nb_from_int32((int32_t[]){0, 5, 1}, 1, (int64_t[]){3});
    CHECK(!nb__slice_backward(g, 2, (int64_t[]){5, 4}, 0, 0, 2, 1));
    CHECK_ERROR(NB_ERR_SHAPE, "slice_backward");
    CHECK(!nb__scatter_add(nb_zeros(1, (int64_t[]){3}), 0, idx, 1, (int64_t[]){4}));
    CHECK_ERROR(NB_ERR_ARG, "scatter_add: index 5 is out of range");
    nb_tensor *in_range = nb_from_int32((int32_t[]){0, 3, 1}, 1, (int64_t[]){3});
    CHECK(!nb__index_add(nb_zeros(2, (int64_t[]){3, 4}), 0, in_range, 2, (int64_t[]){4, 3}));
    CHECK_ERROR(NB_ERR_SHAPE, "index_add: source [3,4] does not fit");
    CHECK(!nb__index_add(nb_zeros(2, (int64_t[]){3, 3}), 0, idx, 2, (int64_t[]){4, 3}));
    CHECK_ERROR(NB_ERR_ARG, "index_add: index 5 is out of range");
    nb_pool2d_opts pool = {.kernel = {2, 2}};
    CHECK(!nb__avg_pool2d_backward(nb_zeros(4, (int64_t[]){1, 1, 3, 3}), 4,
                                   (int64_t[]){1, 1, 4, 4}, &pool));
    CHECK_ERROR(NB_ERR_SHAPE, "avg_pool2d_backward");
    CHECK(!nb__upsample_nearest2d_backward(nb_zeros(3, (int64_t[]){1, 4, 4}), 3,
                                           (int64_t[]){1, 2, 2}, 0, 2));
    CHECK_ERROR(NB_ERR_ARG, "upsample_nearest2d_backward");
    CHECK(!nb__conv2d_weight(nb_zeros(4, (int64_t[]){1, 2, 5, 5}),
                             nb_zeros(4, (int64_t[]){1, 3, 3, 3}), (int64_t[]){4, 2, 3, 3}, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "conv2d_weight");
    nb_scope_end();
}

int main(void) {
    for (int i = 0; i < OC_N_CASES; i++)
        if (family_row(oc_cases[i].op) && !oc_cases[i].nonsmooth)
            heap_second_order_gives_every_byte_back(&oc_cases[i]);
    gradients_carry_the_graph_torch_builds();
    third_order_of_conv2d_is_its_closed_form();
    ops_made_for_backwards_refuse_bad_arguments();
    return check_summary();
}
