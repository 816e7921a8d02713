/*
 * test_kan.c — Kolmogorov-Arnold networks (nabla/kan.h, src/kan/): the layer against the torch
 * reference of tools/kan_torch.py (tests/golden/kan.json, tools/gen_golden_kan.py) and finite
 * differences; construction and its refusals; save and load; grid update and extension keeping
 * the function; the regularisation; pruning into a smaller KAN that computes the same; edge
 * samples.  The bases' op itself is walked by test_gradcheck, test_golden and test_grad2.
 */
#include "check.h"
#include "golden_json.h"
#include "tmpdir.h"

#define GOLDEN "tests/golden/kan.json"

static nb_kan_opts opts_g(int grid) { return (nb_kan_opts){.grid = grid}; }

/* A tensor of the module by name, filled from the golden entry. */
static void load_entry(nb_module *m, const char *name, const json_t *root) {
    long n = 0;
    float *v = json_floats(json_object_get(root, name), &n);
    nb_tensor *t = nb_module_find(m, name);
    CHECK(t && v && n == nb_numel(t) && nb_copy_from(t, v, n) == NB_OK);
    free(v);
}

/* The layer of the golden file, its parameters loaded. */
static nb_module *golden_layer(const json_t *root) {
    nb_module *m = nb_kan_layer_new(3, 2, (nb_kan_opts){.grid = 4, .k = 3});
    const char *names[] = {"grid", "coef", "scale_base", "scale_sp", "mask"};
    for (int i = 0; m && i < 5; i++) load_entry(m, names[i], root);
    return m;
}

static void layer_matches_torch_forward_and_gradients(void) {
    json_t *root = golden_load(GOLDEN);
    nb_module *m = root ? golden_layer(root) : NULL;
    CHECK(m);
    if (!m) goto out;
    nb_scope_begin();
    nb_tensor *x = json_tensor(json_object_get(root, "x")), *r = json_tensor(json_object_get(root, "r"));
    nb_set_requires_grad(x, true);
    nb_tensor *y = nb_module_forward(m, x);
    check_json_tensor("y", y, json_object_get(root, "y"), 1e-5);
    CHECK(nb_backward(nb_sum(nb_mul(y, r))) == NB_OK);
    check_json_tensor("grad x", nb_grad(x), json_object_get(root, "grad_x"), 1e-5);
    const char *names[] = {"coef", "scale_base", "scale_sp"};
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "grad_%s", names[i]);
        check_json_tensor(key, nb_grad(nb_module_find(m, names[i])), json_object_get(root, key), 1e-5);
    }
    nb_scope_end();
    nb_module_free(m);
out:
    json_decref(root);
}

static void regularisation_matches_torch(void) {
    json_t *root = golden_load(GOLDEN);
    nb_module *m = root ? golden_layer(root) : NULL;
    CHECK(m);
    if (!m) goto out;
    nb_scope_begin();
    nb_tensor *x = json_tensor(json_object_get(root, "x")), *reg = NULL;
    nb_tensor *y = nb_kan_forward_reg(m, x, 1.0f, 2.0f, &reg);
    nb_tensor *y_plain = nb_module_forward(m, x);
    CHECK(y && reg);
    for (int64_t i = 0; y && i < nb_numel(y); i++) {
        int64_t at[2] = {i / 2, i % 2};
        CHECK_NEAR(nb_get(y, at), nb_get(y_plain, at), 1e-5, 1e-5);
    }
    CHECK_NEAR(nb_item(reg), json_number_value(json_object_get(root, "reg")), 1e-5, 1e-5);
    CHECK(nb_backward(reg) == NB_OK);
    check_json_tensor("grad reg coef", nb_grad(nb_module_find(m, "coef")),
                      json_object_get(root, "grad_reg_coef"), 1e-4);
    nb_scope_end();
    nb_module_free(m);
out:
    json_decref(root);
}

/* loss = sum(kan(x) * w) against central differences over every parameter element */
static void layer_gradients_match_finite_differences(void) {
    nb_manual_seed(3);
    nb_module *m = nb_kan_new(3, (int64_t[]){2, 3, 2}, (nb_kan_opts){.grid = 4, .noise_scale = 2});
    nb_scope_begin();
    nb_tensor *w = nb_randn(NB_SHAPE(5, 2));
    nb_tensor *xs = nb_add_scalar(nb_mul_scalar(nb_rand(NB_SHAPE(5, 2)), 1.8f), -0.9f);
    CHECK(nb_backward(nb_sum(nb_mul(nb_module_forward(m, xs), w))) == NB_OK);
    double worst = 0;
    for (int p = 0; p < nb_module_num_params(m); p++) {
        const char *name;
        nb_tensor *t = nb_module_param(m, p, &name), *g = nb_grad(t);
        if (!g) { /* the symbolic branch's parameters, unused while no edge is symbolic */
            CHECK_STR_CONTAINS(name, "affine");
            continue;
        }
        for (int64_t e = 0; e < nb_numel(t); e++) {
            float v[64], gv[64];
            nb_copy_to(t, v, nb_numel(t));
            float keep = v[e], h = 1e-2f, f[2];
            for (int s = 0; s < 2; s++) {
                v[e] = keep + (s ? -h : h);
                nb_copy_from(t, v, nb_numel(t));
                NB_NO_GRAD { f[s] = nb_item(nb_sum(nb_mul(nb_module_forward(m, xs), w))); }
            }
            v[e] = keep;
            nb_copy_from(t, v, nb_numel(t));
            nb_copy_to(g, gv, nb_numel(g));
            double fd = (f[0] - f[1]) / (2.0 * h), d = fabs(fd - gv[e]) / (1.0 + fabs(fd));
            if (d > worst) worst = d;
        }
    }
    CHECK(worst < 2e-3);
    nb_scope_end();
    nb_module_free(m);
}

static void bases_sum_to_one_inside_the_grid_and_vanish_outside(void) {
    nb_scope_begin();
    nb_module *m = nb_kan_layer_new(1, 1, opts_g(5));
    float xv[] = {-1.0f, -0.3f, 0.0f, 0.99f, -1.5f, 1.5f, -9.0f, 9.0f};
    nb_tensor *x = nb_from_data(xv, NB_SHAPE(8, 1));
    nb_tensor *b = nb_bspline_basis(x, nb_module_find(m, "grid"), 3, 0);
    nb_tensor *s = nb_sum_dims(b, 1, (int[]){2}, false);
    CHECK_EQ_INT(nb_size(b, 2), 8); /* G + k */
    for (int i = 0; i < 4; i++) CHECK_NEAR(nb_get(s, (int64_t[]){i, 0}), 1.0, 1e-6, 0);
    CHECK(nb_get(s, (int64_t[]){4, 0}) > 0.0f && nb_get(s, (int64_t[]){4, 0}) < 1.0f);
    CHECK_EQ_INT((int)nb_get(s, (int64_t[]){6, 0}), 0);
    CHECK_EQ_INT((int)nb_get(s, (int64_t[]){7, 0}), 0);
    nb_scope_end();
    nb_module_free(m);
}

static void extrapolation_outside_the_grid_is_the_base_branch_alone(void) {
    nb_scope_begin();
    nb_module *m = nb_kan_layer_new(1, 1, opts_g(5));
    nb_tensor *x = nb_full(NB_SHAPE(1, 1), 7.0f);
    float sb = nb_get(nb_module_find(m, "scale_base"), (int64_t[]){0, 0});
    CHECK_NEAR(nb_item(nb_module_forward(m, x)), sb * 7.0f / (1.0f + expf(-7.0f)), 1e-6, 1e-6);
    nb_scope_end();
    nb_module_free(m);
}

static void construction_refuses_bad_options(void) {
    struct { int64_t in, out; nb_kan_opts o; const char *msg; } bad[] = {
        {2, 1, {.grid = -1}, "grid = -1 must be >= 1"},
        {2, 1, {.k = -2}, "spline order k = -2"},
        {2, 1, {.k = 16}, "spline order k = 16"},
        {0, 1, {0}, "sizes must be positive"},
        {2, 1, {.grid_min = 1, .grid_max = -1}, "grid range [1, -1]"},
        {2, 1, {.grid_min = NAN, .grid_max = 1}, "grid range"},
        {2, 1, {.base_fun = "sigh"}, "unknown base_fun 'sigh'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(!nb_kan_layer_new(bad[i].in, bad[i].out, bad[i].o));
        CHECK_EQ_INT(nb_error_code(), NB_ERR_ARG);
        CHECK_STR_CONTAINS(nb_error_message(), bad[i].msg);
    }
    CHECK(!nb_kan_new(3, (int64_t[]){2, 0, 1}, opts_g(5)));
    CHECK_STR_CONTAINS(nb_error_message(), "width[1] = 0 must be >= 1");
    CHECK(!nb_kan_new(1, (int64_t[]){2}, opts_g(5)));
    nb_module *m = nb_kan_layer_new(2, 1, opts_g(3));
    nb_tensor *x = nb_zeros(NB_SHAPE(4, 3));
    CHECK(!nb_module_forward(m, x));
    CHECK_STR_CONTAINS(nb_error_message(), "must be [n, 2]");
    nb_tensor *grid = nb_module_find(m, "grid");
    CHECK(nb_set(grid, (int64_t[]){0, 3}, -5.0f) == NB_OK);
    nb_tensor *x2 = nb_zeros(NB_SHAPE(4, 2));
    CHECK(!nb_module_forward(m, x2));
    CHECK_STR_CONTAINS(nb_error_message(), "below the knot before it");
    nb_tensor_free(x2);
    nb_tensor_free(x);
    nb_module_free(m);
}

static void zero_base_and_other_base_functions(void) {
    nb_scope_begin();
    nb_module *z = nb_kan_layer_new(1, 1, (nb_kan_opts){.base_fun = "zero", .noise_scale = -1});
    nb_module *t = nb_kan_layer_new(1, 1, (nb_kan_opts){.base_fun = "tanh"});
    nb_tensor *x = nb_full(NB_SHAPE(1, 1), 0.3f);
    CHECK_NEAR(nb_item(nb_module_forward(z, x)), 0.0, 1e-7, 0); /* no noise, no base */
    nb_fill(nb_module_find(t, "coef"), 0.0f);
    float sb = nb_get(nb_module_find(t, "scale_base"), (int64_t[]){0, 0});
    CHECK_NEAR(nb_item(nb_module_forward(t, x)), sb * tanhf(0.3f), 1e-6, 1e-6);
    nb_scope_end();
    nb_module_free(t);
    nb_module_free(z);
}

static void initialisation_is_pykans(void) {
    nb_manual_seed(1);
    nb_module *m = nb_kan_layer_new(4, 3, opts_g(5));
    nb_scope_begin();
    /* scale_base in (mu +- sigma) / sqrt(in), scale_sp = 1 / sqrt(in), splines of the noise's
     * size (|noise| <= 0.3 / (2 G) at the grid points) */
    CHECK(nb_item(nb_max(nb_abs(nb_module_find(m, "scale_base")))) <= 0.5f);
    CHECK_NEAR(nb_item(nb_mean(nb_module_find(m, "scale_sp"))), 0.5, 1e-7, 0);
    nb_tensor *x = nb_rand(NB_SHAPE(50, 4));
    nb_tensor *b = nb_bspline_basis(nb_add_scalar(nb_mul_scalar(x, 2), -1), nb_module_find(m, "grid"), 3, 0);
    nb_tensor *sp = nb_matmul(nb_transpose(b, 0, 1), nb_module_find(m, "coef"));
    float biggest = nb_item(nb_max(nb_abs(sp)));
    CHECK(biggest < 0.06f && biggest > 1e-4f);
    CHECK_EQ_INT(nb_kan_grid_size(m), 5);
    CHECK_EQ_INT(nb_kan_spline_order(m), 3);
    nb_scope_end();
    nb_module_free(m);
}

static void model_saves_and_loads_and_refuses_another_grid(void) {
    CHECK(tmpdir_make("nabla_kan"));
    nb_manual_seed(2);
    nb_module *a = nb_kan_new(3, (int64_t[]){2, 5, 1}, opts_g(5));
    nb_module *b = nb_kan_new(3, (int64_t[]){2, 5, 1}, opts_g(5));
    nb_module *c = nb_kan_new(3, (int64_t[]){2, 5, 1}, opts_g(7));
    CHECK_EQ_INT(nb_kan_num_layers(a), 2);
    CHECK(nb_module_save(a, tpath("kan.safetensors"), 0, NULL, NULL) == NB_OK);
    CHECK(nb_module_load(b, tpath("kan.safetensors")) == NB_OK);
    CHECK(nb_module_load(c, tpath("kan.safetensors")) != NB_OK);
    CHECK_STR_CONTAINS(nb_error_message(), "0.coef");
    nb_scope_begin();
    nb_tensor *x = nb_rand(NB_SHAPE(7, 2));
    nb_tensor *d = nb_max(nb_abs(nb_sub(nb_module_forward(a, x), nb_module_forward(b, x))));
    CHECK_EQ_INT((int)(nb_item(d) * 1e9f), 0);
    nb_scope_end();
    nb_module_free(c);
    nb_module_free(b);
    nb_module_free(a);
    tmpdir_remove();
}

/* the largest |a(x) - b(x)| over x */
static float max_diff(nb_module *a, nb_module *b, nb_tensor *x) {
    return nb_item(nb_max(nb_abs(nb_sub(nb_module_forward(a, x), nb_module_forward(b, x)))));
}

static void extension_keeps_the_function(void) {
    nb_manual_seed(4);
    nb_module *m = nb_kan_new(3, (int64_t[]){2, 3, 1}, (nb_kan_opts){.grid = 5, .noise_scale = 3});
    nb_module *fine = nb_kan_extend(m, 20), *odd = nb_kan_extend(m, 7);
    CHECK(fine && odd);
    CHECK_EQ_INT(nb_kan_grid_size(nb_kan_layer(fine, 1)), 20);
    nb_scope_begin();
    nb_tensor *x = nb_add_scalar(nb_mul_scalar(nb_rand(NB_SHAPE(64, 2)), 2), -1);
    /* 20 intervals refine 5 (nested knots): the same spline, up to rounding; 7 approximates */
    CHECK(max_diff(m, fine, x) < 1e-4f);
    CHECK(max_diff(m, odd, x) < 2e-2f);
    nb_scope_end();
    CHECK(!nb_kan_extend(m, 0));
    CHECK_EQ_INT(nb_error_code(), NB_ERR_ARG);
    nb_module_free(odd);
    nb_module_free(fine);
    nb_module_free(m);
}

static void grid_update_moves_the_grid_to_the_samples_and_keeps_the_function(void) {
    nb_manual_seed(5);
    nb_module *m = nb_kan_new(2, (int64_t[]){1, 1}, (nb_kan_opts){.grid = 5, .noise_scale = 3});
    nb_module *before = nb_kan_new(2, (int64_t[]){1, 1}, opts_g(5));
    nb_copy(nb_module_find(before, "0.coef"), nb_module_find(m, "0.coef"));
    nb_copy(nb_module_find(before, "0.scale_base"), nb_module_find(m, "0.scale_base"));
    nb_scope_begin();
    nb_tensor *x = nb_add_scalar(nb_mul_scalar(nb_rand(NB_SHAPE(200, 1)), 0.6f), -0.2f);
    CHECK(nb_kan_update_grid(m, x, 1.0f) == NB_OK);
    nb_tensor *grid = nb_module_find(m, "0.grid");
    CHECK_NEAR(nb_get(grid, (int64_t[]){0, 3}), nb_item(nb_min(x)), 1e-6, 0);
    CHECK_NEAR(nb_get(grid, (int64_t[]){0, 8}), nb_item(nb_max(x)), 1e-6, 0);
    CHECK(max_diff(m, before, x) < 1e-3f);
    /* the adaptive mix puts the knots at the quantiles */
    nb_tensor *sq = nb_pow_scalar(x, 3.0f);
    CHECK(nb_kan_update_grid(m, sq, 0.0f) == NB_OK);
    CHECK(nb_get(grid, (int64_t[]){0, 5}) < 0.01f);
    CHECK(nb_kan_update_grid(m, x, 1.5f) != NB_OK);
    CHECK_STR_CONTAINS(nb_error_message(), "grid_eps = 1.5");
    nb_tensor *bad = nb_full(NB_SHAPE(3, 1), NAN);
    CHECK(nb_kan_update_grid(m, bad, 0.02f) != NB_OK);
    CHECK_STR_CONTAINS(nb_error_message(), "not finite");
    nb_scope_end();
    nb_module_free(before);
    nb_module_free(m);
}

static void pruning_gives_a_smaller_kan_that_computes_the_same(void) {
    nb_manual_seed(6);
    nb_module *m = nb_kan_new(3, (int64_t[]){2, 4, 1}, opts_g(5));
    /* hidden nodes 1 and 3 lose their incoming edges: nothing reaches them */
    nb_tensor *mask0 = nb_module_find(m, "0.mask"), *mask1 = nb_module_find(m, "1.mask");
    for (int i = 0; i < 2; i++) {
        nb_set(mask0, (int64_t[]){i, 1}, 0.0f);
        nb_set(mask0, (int64_t[]){i, 3}, 0.0f);
    }
    nb_scope_begin();
    nb_tensor *x = nb_add_scalar(nb_mul_scalar(nb_rand(NB_SHAPE(100, 2)), 2), -1);
    nb_module *p = nb_kan_prune(m, x, 1e-2f, 0.0f);
    CHECK(p);
    CHECK_EQ_INT(nb_kan_out_features(nb_kan_layer(p, 0)), 2);
    CHECK_EQ_INT(nb_kan_in_features(nb_kan_layer(p, 1)), 2);
    /* the original with the removed nodes' outgoing edges masked too */
    nb_set(mask1, (int64_t[]){1, 0}, 0.0f);
    nb_set(mask1, (int64_t[]){3, 0}, 0.0f);
    CHECK(max_diff(m, p, x) < 1e-6f);
    /* edge pruning masks what scores below the threshold */
    float s0[8], s1[4];
    CHECK(nb_kan_edge_scores(m, x, (float *[]){s0, s1}) == NB_OK);
    CHECK_EQ_INT((int)(s0[1] * 1e9f), 0);
    float th = fminf(s0[0], s0[4]) * 1.0001f;
    nb_module *q = nb_kan_prune(m, x, 0.0f, th);
    CHECK(q);
    CHECK_EQ_INT((int)nb_item(nb_sum(nb_module_find(q, "0.mask"))), 8 - 4 - (s0[0] < th) - (s0[4] < th) -
                 (s0[2] < th) - (s0[6] < th));
    CHECK(!nb_kan_prune(m, x, -1.0f, 0.0f));
    nb_scope_end();
    nb_module_free(q);
    nb_module_free(p);
    nb_module_free(m);
}

static void edge_samples_are_the_edge_function_over_its_range(void) {
    nb_manual_seed(7);
    nb_module *m = nb_kan_layer_new(2, 2, (nb_kan_opts){.grid = 5, .grid_min = -2, .grid_max = 3});
    float xs[11], ys[11];
    CHECK(nb_kan_edge_samples(m, 1, 0, 11, xs, ys) == NB_OK);
    CHECK_NEAR(xs[0], -2.0, 1e-6, 0);
    CHECK_NEAR(xs[10], 3.0, 1e-6, 0);
    nb_scope_begin();
    float in[22];
    for (int j = 0; j < 11; j++) in[2 * j] = 0.0f, in[2 * j + 1] = xs[j];
    nb_tensor *phi = nb_kan_edge_acts(m, nb_from_data(in, NB_SHAPE(11, 2)));
    for (int j = 0; j < 11; j++) CHECK_NEAR(ys[j], nb_get(phi, (int64_t[]){j, 1, 0}), 1e-6, 1e-6);
    nb_scope_end();
    CHECK(nb_kan_edge_samples(m, 2, 0, 11, xs, ys) != NB_OK);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_ARG);
    nb_module_free(m);
}

/* The whole text of a file (malloc'd), or NULL. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 20);
    if (buf) fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    return buf;
}

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p++) n++;
    return n;
}

static void plots_draw_every_live_edge_faded_by_its_score(void) {
    CHECK(tmpdir_make("nabla_kan_plot"));
    nb_manual_seed(9);
    nb_module *m = nb_kan_new(3, (int64_t[]){2, 3, 1}, opts_g(5));
    nb_set(nb_module_find(m, "0.mask"), (int64_t[]){1, 2}, 0.0f);
    nb_scope_begin();
    nb_tensor *x = nb_add_scalar(nb_mul_scalar(nb_rand(NB_SHAPE(50, 2)), 2), -1);
    CHECK(nb_kan_plot_svg(m, x, tpath("kan.svg")) == NB_OK);
    char *svg = slurp(tpath("kan.svg"));
    CHECK(svg && strstr(svg, "<svg") && strstr(svg, "</svg>"));
    CHECK_EQ_INT(count_of(svg, "<polyline"), 6 - 1 + 3); /* the masked edge is left out */
    CHECK_EQ_INT(count_of(svg, "<circle"), 2 + 3 + 1);
    /* faded by the scores: tanh(3) = 0.995 for the strongest edge of a layer, less for others */
    CHECK_EQ_INT(count_of(svg, "<g opacity"), 8);
    CHECK_EQ_INT(count_of(svg, "opacity='1.000'"), 0);
    CHECK_EQ_INT(count_of(svg, "opacity='0.995'"), 2);
    free(svg);
    CHECK(nb_kan_plot_svg(m, NULL, tpath("plain.svg")) == NB_OK);
    svg = slurp(tpath("plain.svg"));
    CHECK_EQ_INT(count_of(svg, "opacity='1.000'"), 8);
    free(svg);
    CHECK(nb_kan_plot_edge_svg(nb_kan_layer(m, 1), 2, 0, tpath("edge.svg")) == NB_OK);
    svg = slurp(tpath("edge.svg"));
    CHECK_STR_CONTAINS(svg, "phi(2, 0)");
    free(svg);
    CHECK(nb_kan_plot_svg(m, x, tpath("missing/kan.svg")) != NB_OK);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_IO);
    nb_scope_end();
    nb_module_free(m);
    tmpdir_remove();
}

static nb_tensor *square(nb_tensor *x) { return nb_mul(x, x); }

static void a_symbolic_edge_replaces_the_spline_and_its_affine_parameters_train(void) {
    nb_manual_seed(10);
    nb_module *m = nb_kan_layer_new(2, 2, opts_g(5));
    nb_scope_begin();
    nb_tensor *x = nb_add_scalar(nb_mul_scalar(nb_rand(NB_SHAPE(20, 2)), 2), -1);
    nb_tensor *before = nb_kan_edge_acts(m, x);
    CHECK(nb_kan_fix_symbolic(m, 1, 0, nb_sin, "sin", 2.0f, 0.5f, 1.5f, -0.2f) == NB_OK);
    CHECK(nb_kan_symbolic_name(m, 1, 0) && !strcmp(nb_kan_symbolic_name(m, 1, 0), "sin"));
    CHECK(!nb_kan_symbolic_name(m, 0, 0));
    CHECK_EQ_INT((int)nb_get(nb_module_find(m, "mask"), (int64_t[]){1, 0}), 0);
    CHECK_EQ_INT((int)nb_get(nb_module_find(m, "symbolic_mask"), (int64_t[]){1, 0}), 1);
    nb_tensor *phi = nb_kan_edge_acts(m, x), *y = nb_module_forward(m, x);
    for (int j = 0; j < 20; j++) {
        float xj = nb_get(x, (int64_t[]){j, 1});
        CHECK_NEAR(nb_get(phi, (int64_t[]){j, 1, 0}), 1.5f * sinf(2.0f * xj + 0.5f) - 0.2f, 1e-6, 1e-6);
        CHECK_NEAR(nb_get(phi, (int64_t[]){j, 0, 0}), nb_get(before, (int64_t[]){j, 0, 0}), 1e-7, 0);
        CHECK_NEAR(nb_get(y, (int64_t[]){j, 0}),
                   nb_get(phi, (int64_t[]){j, 0, 0}) + nb_get(phi, (int64_t[]){j, 1, 0}), 1e-6, 1e-6);
    }
    /* d sum(y[:, 0]) / dc = sum sin(a x + b), / dd = n; the other edges' affine get 0 */
    CHECK(nb_backward(nb_sum(nb_slice(y, 1, 0, 1, 1))) == NB_OK);
    nb_tensor *ga = nb_grad(nb_module_find(m, "affine"));
    double dc = 0;
    for (int j = 0; j < 20; j++) dc += sinf(2.0f * nb_get(x, (int64_t[]){j, 1}) + 0.5f);
    CHECK_NEAR(nb_get(ga, (int64_t[]){1, 2, 0}), dc, 1e-5, 1e-5);
    CHECK_NEAR(nb_get(ga, (int64_t[]){1, 3, 0}), 20.0, 1e-5, 0);
    CHECK_NEAR(nb_get(ga, (int64_t[]){0, 2, 1}), 0.0, 0, 0);
    /* a composite of the caller's, extension and pruning keep the branch */
    CHECK(nb_kan_fix_symbolic(m, 0, 1, square, "x^2", 1, 0, 1, 0) == NB_OK);
    nb_module *seq = nb_sequential_new(1, (nb_module *[]){m});
    nb_module *fine = nb_kan_extend(seq, 10), *small = nb_kan_prune(seq, x, 0.0f, 0.0f);
    CHECK(fine && small && !strcmp(nb_kan_symbolic_name(nb_kan_layer(fine, 0), 0, 1), "x^2"));
    CHECK(max_diff(seq, small, x) < 1e-6f);
    CHECK(max_diff(seq, fine, x) < 1e-3f);
    CHECK(nb_kan_unfix_symbolic(m, 1, 0) == NB_OK);
    CHECK(max_diff(seq, fine, x) > 1e-2f);
    CHECK_EQ_INT((int)nb_get(nb_module_find(m, "mask"), (int64_t[]){1, 0}), 1);
    CHECK(nb_kan_fix_symbolic(m, 2, 0, nb_sin, "sin", 1, 0, 1, 0) == NB_ERR_ARG);
    CHECK(nb_kan_fix_symbolic(m, 0, 0, nb_sin, "sin", NAN, 0, 1, 0) == NB_ERR_ARG);
    CHECK(nb_kan_fix_symbolic(m, 0, 0, NULL, "none", 1, 0, 1, 0) == NB_ERR_ARG);
    nb_scope_end();
    nb_module_free(small);
    nb_module_free(fine);
    nb_module_free(seq);
}

static void a_kan_trains_on_a_smooth_function_and_stops_on_a_non_finite_loss(void) {
    nb_manual_seed(8);
    nb_module *m = nb_kan_new(3, (int64_t[]){2, 3, 1}, opts_g(5));
    nb_tensor *params[8];
    int np = nb_module_parameters(m, params, 8);
    nb_optim *o = nb_adam_new(np, params, (nb_adam_opts){.lr = 0.02f});
    nb_scope_begin();
    nb_tensor *x = nb_persist(nb_add_scalar(nb_mul_scalar(nb_rand(NB_SHAPE(128, 2)), 2), -1));
    nb_tensor *x0 = nb_slice(x, 1, 0, 1, 1), *x1 = nb_slice(x, 1, 1, 2, 1);
    nb_tensor *target = nb_persist(nb_add(nb_sin(nb_mul_scalar(x0, 3.14159265f)), nb_mul(x1, x1)));
    nb_scope_end();
    float first = 0, last = 0;
    nb_kan_train_opts t = {.steps = 1, .lamb_entropy = 2, .grid_eps = 0.02f, .update_grid_every = 5,
                           .stop_grid_update = 50};
    CHECK(nb_kan_train(m, o, x, target, &t, &first) == NB_OK);
    t.steps = 200;
    t.lamb = 1e-3f;
    CHECK(nb_kan_train(m, o, x, target, &t, &last) == NB_OK);
    CHECK(last < first * 0.02f);
    t.lamb = -1;
    CHECK(nb_kan_train(m, o, x, target, &t, NULL) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "lamb -1");
    t.lamb = 0;
    nb_set(target, (int64_t[]){3, 0}, NAN);
    CHECK(nb_kan_train(m, o, x, target, &t, &last) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "the loss is nan at step 0");
    nb_tensor_free(target);
    nb_tensor_free(x);
    nb_optim_free(o);
    nb_module_free(m);
}

int main(void) {
    layer_matches_torch_forward_and_gradients();
    regularisation_matches_torch();
    layer_gradients_match_finite_differences();
    bases_sum_to_one_inside_the_grid_and_vanish_outside();
    extrapolation_outside_the_grid_is_the_base_branch_alone();
    construction_refuses_bad_options();
    zero_base_and_other_base_functions();
    initialisation_is_pykans();
    model_saves_and_loads_and_refuses_another_grid();
    extension_keeps_the_function();
    grid_update_moves_the_grid_to_the_samples_and_keeps_the_function();
    pruning_gives_a_smaller_kan_that_computes_the_same();
    edge_samples_are_the_edge_function_over_its_range();
    plots_draw_every_live_edge_faded_by_its_score();
    a_symbolic_edge_replaces_the_spline_and_its_affine_parameters_train();
    a_kan_trains_on_a_smooth_function_and_stops_on_a_non_finite_loss();
    return check_summary();
}
