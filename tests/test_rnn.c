/*
 * test_rnn.c — RNN, LSTM, GRU and their cells (src/nn/recurrent.c):
 *  - torch's outputs, final states and every gradient (input, h0, c0, parameters) to 1e-5,
 *    from tests/golden/rnn.json (tools/gen_golden_rnn.py): one and two layers, bidirectional,
 *    batch_first, unsorted lengths, initial states, no bias, an unbatched sequence;
 *  - backward against fourth-order finite differences in double (gradcheck_util.h), and a
 *    second derivative (through a create_graph gradient) against central differences;
 *  - parameter names and the repr as torch's, dropout between layers only in training;
 *  - an LSTM and a GRU learn a memory task with Adam; model files build the layers;
 *  - bad inputs refused with messages naming them; no byte left behind with no scope open.
 */
#include "check.h"
#include "golden_json.h"
#include "gradcheck_util.h"
#include "ops/op.h"

#define GOLDEN_PATH "tests/golden/rnn.json"
#define TOL 1e-5

static nb_rnn_mode mode_of(const char *name) {
    static const char *const names[] = {"RNN_TANH", "RNN_RELU", "LSTM", "GRU"};
    for (int i = 0; i < NB_RNN_MODE_COUNT; i++)
        if (!strcmp(name, names[i])) return (nb_rnn_mode)i;
    return NB_RNN_MODE_COUNT;
}

static int64_t json_int(const json_t *c, const char *key) {
    return (int64_t)json_integer_value(json_object_get(c, key));
}

/* A leaf from the case's entry (requiring grad), or NULL when the case has none. */
static nb_tensor *leaf(const json_t *c, const char *key) {
    nb_tensor *t = json_tensor(json_object_get(c, key));
    if (t) nb_set_requires_grad(t, true);
    return t;
}

/* sum(t * R) for the case's R entry, or NULL when the case has none. */
static nb_tensor *weighted(const json_t *c, const char *key, nb_tensor *t) {
    nb_tensor *r = json_tensor(json_object_get(c, key));
    return r ? nb_sum(nb_mul(t, r)) : NULL;
}

static nb_tensor *add_terms(nb_tensor *a, nb_tensor *b) { return b ? nb_add(a, b) : a; }

/* The results and gradients of one case against torch's. */
static void check_results(const char *name, const json_t *c, nb_tensor *const *got,
                          const char *const *keys, int n, nb_module *m, nb_tensor *const *leaves,
                          const char *const *grad_keys, int n_leaves) {
    char what[256];
    for (int i = 0; i < n; i++) {
        snprintf(what, sizeof what, "%s: %s", name, keys[i]);
        check_json_tensor(what, got[i], json_object_get(c, keys[i]), TOL);
    }
    for (int i = 0; i < n_leaves; i++) {
        if (!leaves[i]) continue;
        snprintf(what, sizeof what, "%s: %s", name, grad_keys[i]);
        check_json_tensor(what, nb_grad(leaves[i]), json_object_get(c, grad_keys[i]), TOL);
    }
    check_entries(name, "grad of", m, json_object_get(c, "grads"), true, TOL);
}

static void layer_case(const json_t *c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    nb_rnn_mode mode = mode_of(json_string_value(json_object_get(c, "mode")));
    nb_rnn_opts opts = {.num_layers = (int)json_int(c, "num_layers"),
                        .no_bias = !json_is_true(json_object_get(c, "bias")),
                        .batch_first = json_is_true(json_object_get(c, "batch_first")),
                        .bidirectional = json_is_true(json_object_get(c, "bidirectional"))};
    nb_module *m = nb_rnn_new(mode, json_int(c, "input_size"), json_int(c, "hidden_size"), opts);
    CHECK(m != NULL);
    if (!m) return;
    check_and_load_entries(name, m, json_object_get(c, "params"), false);
    nb_scope_begin();
    nb_tensor *x = leaf(c, "input"), *h0 = leaf(c, "h0"), *c0 = leaf(c, "c0");
    const json_t *jl = json_object_get(c, "lengths");
    int64_t lengths[16];
    for (size_t b = 0; b < json_array_size(jl) && b < 16; b++)
        lengths[b] = (int64_t)json_integer_value(json_array_get(jl, b));
    nb_rnn_inputs in = {.h0 = h0, .c0 = c0, .lengths = jl ? lengths : NULL};
    nb_tensor *out = NULL, *hn = NULL, *cn = NULL;
    CHECK_EQ_INT(nb_rnn_forward(m, x, &in, &out, &hn, mode == NB_RNN_LSTM ? &cn : NULL), NB_OK);
    nb_tensor *loss = add_terms(add_terms(weighted(c, "R_out", out), weighted(c, "R_h", hn)),
                                cn ? weighted(c, "R_c", cn) : NULL);
    CHECK_EQ_INT(nb_backward(loss), NB_OK);
    check_results(name, c, (nb_tensor *[]){out, hn, cn},
                  (const char *[]){"output", "h_n", "c_n"}, mode == NB_RNN_LSTM ? 3 : 2, m,
                  (nb_tensor *[]){x, h0, c0},
                  (const char *[]){"grad_input", "grad_h0", "grad_c0"}, 3);
    nb_scope_end();
    nb_module_free(m);
}

static void cell_case(const json_t *c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    nb_rnn_mode mode = mode_of(json_string_value(json_object_get(c, "mode")));
    nb_module *m = nb_rnn_cell_new(mode, json_int(c, "input_size"), json_int(c, "hidden_size"),
                                   json_is_true(json_object_get(c, "bias")));
    CHECK(m != NULL);
    if (!m) return;
    check_and_load_entries(name, m, json_object_get(c, "params"), false);
    nb_scope_begin();
    nb_tensor *x = leaf(c, "input"), *h0 = leaf(c, "h0"), *c0 = leaf(c, "c0");
    nb_tensor *hn = NULL, *cn = NULL;
    CHECK_EQ_INT(nb_rnn_cell_forward(m, x, h0, c0, &hn, &cn), NB_OK);
    CHECK_EQ_INT(nb_backward(add_terms(weighted(c, "R_h", hn), cn ? weighted(c, "R_c", cn) : NULL)),
                 NB_OK);
    check_results(name, c, (nb_tensor *[]){hn, cn}, (const char *[]){"h_n", "c_n"},
                  mode == NB_RNN_LSTM ? 2 : 1, m, (nb_tensor *[]){x, h0, c0},
                  (const char *[]){"grad_input", "grad_h0", "grad_c0"}, 3);
    nb_scope_end();
    nb_module_free(m);
}

static void layers_and_cells_match_torch(void) {
    json_t *root = golden_load(GOLDEN_PATH);
    CHECK(root != NULL);
    if (!root) return;
    const json_t *layers = json_object_get(root, "layers"), *cells = json_object_get(root, "cells");
    CHECK(json_array_size(layers) >= 16 && json_array_size(cells) >= 4);
    for (size_t i = 0; i < json_array_size(layers); i++) layer_case(json_array_get(layers, i));
    for (size_t i = 0; i < json_array_size(cells); i++) cell_case(json_array_get(cells, i));
    json_decref(root);
}

/* ---------------------------------------------------------------- finite differences */

#define GC_MAX 16
typedef struct {
    nb_module *m;
    nb_tensor *t[GC_MAX]; /* the leaves: parameters, then x, h0, c0 */
    float *v[GC_MAX];     /* their values, which the stencil moves */
    int n;
    nb_tensor *x, *h0, *c0, *r_out, *r_h;
    const int64_t *lengths;
} gc_ctx;

/* The loss sum(out R_out) + sum(h_n R_h) in double, with the leaves set from v. */
static double gc_loss(void *p) {
    gc_ctx *g = p;
    for (int i = 0; i < g->n; i++) nb_copy_from(g->t[i], g->v[i], nb_numel(g->t[i]));
    nb_scope_begin();
    nb_tensor *out = NULL, *hn = NULL;
    nb_rnn_forward(g->m, g->x, &(nb_rnn_inputs){g->h0, g->c0, g->lengths}, &out, &hn, NULL);
    float *o = host_vals(out), *h = host_vals(hn), *ro = host_vals(g->r_out), *rh = host_vals(g->r_h);
    double sum = 0;
    for (int64_t k = 0; k < nb_numel(out); k++) sum += (double)o[k] * ro[k];
    for (int64_t k = 0; k < nb_numel(hn); k++) sum += (double)h[k] * rh[k];
    nb_scope_end();
    return sum;
}

/* Backward against the directional finite difference of gc_loss along a random direction
 * over every parameter and x, h0, c0 at once. */
static void gradcheck(const char *what, nb_rnn_mode mode, nb_rnn_opts opts, const int64_t *lengths) {
    nb_manual_seed(gc_seed_of(what));
    const int64_t steps = 4, batch = 3, in_size = 2, hs = 3;
    gc_ctx g = {.m = nb_rnn_new(mode, in_size, hs, opts), .lengths = lengths};
    int cells = (opts.num_layers ? opts.num_layers : 1) * (opts.bidirectional ? 2 : 1);
    g.x = nb_randn(NB_SHAPE(steps, batch, in_size));
    g.h0 = nb_randn(NB_SHAPE(cells, batch, hs));
    g.c0 = mode == NB_RNN_LSTM ? nb_randn(NB_SHAPE(cells, batch, hs)) : NULL;
    for (int i = 0; i < nb_module_num_params(g.m) && g.n < GC_MAX; i++) g.t[g.n++] = nb_module_param(g.m, i, NULL);
    nb_tensor *extra[3] = {g.x, g.h0, g.c0};
    for (int i = 0; i < 3 && extra[i] && g.n < GC_MAX; i++) {
        nb_set_requires_grad(extra[i], true);
        g.t[g.n++] = extra[i];
    }
    int dirs = opts.bidirectional ? 2 : 1;
    g.r_out = nb_randn(NB_SHAPE(steps, batch, dirs * hs));
    g.r_h = nb_randn(NB_SHAPE(cells, batch, hs));
    nb_scope_begin(); /* the leaves' gradients stay: they live with the leaves */
    nb_tensor *out = NULL, *hn = NULL;
    nb_rnn_forward(g.m, g.x, &(nb_rnn_inputs){g.h0, g.c0, lengths}, &out, &hn, NULL);
    CHECK_EQ_INT(nb_backward(nb_add(nb_sum(nb_mul(out, g.r_out)), nb_sum(nb_mul(hn, g.r_h)))), NB_OK);
    nb_scope_end();
    int64_t total = 0;
    for (int i = 0; i < g.n; i++) total += nb_numel(g.t[i]);
    float **ptr = malloc(sizeof(float *) * (size_t)total), *dir = malloc(sizeof(float) * (size_t)total);
    double analytic = 0;
    int64_t at = 0;
    for (int i = 0; i < g.n; i++) {
        int64_t n = nb_numel(g.t[i]);
        g.v[i] = malloc(sizeof(float) * (size_t)n);
        nb_copy_to(g.t[i], g.v[i], n);
        float *grad = host_vals(nb_grad(g.t[i]));
        for (int64_t k = 0; k < n; k++, at++) {
            ptr[at] = &g.v[i][k];
            dir[at] = (float)((double)((at * 7919) % 13) / 6.0 - 1.0);
            analytic += (double)grad[k] * dir[at];
        }
    }
    double numeric = gc_stencil(gc_loss, &g, ptr, dir, (int)total);
    CHECK_NEAR(analytic, numeric, 1e-3, 1e-3);
    for (int i = 0; i < g.n; i++) free(g.v[i]);
    free(ptr), free(dir);
    nb_tensor *own[] = {g.r_out, g.r_h, g.x, g.h0, g.c0};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) nb_tensor_free(own[i]);
    nb_module_free(g.m);
}

static void gradients_match_finite_differences(void) {
    const int64_t lengths[3] = {2, 4, 3};
    gradcheck("lstm_bidirectional_lengths", NB_RNN_LSTM, (nb_rnn_opts){.bidirectional = true}, lengths);
    gradcheck("lstm_fused_two_layers_bidirectional", NB_RNN_LSTM,
              (nb_rnn_opts){.num_layers = 2, .bidirectional = true}, NULL);
    gradcheck("lstm_two_layers_lengths", NB_RNN_LSTM, (nb_rnn_opts){.num_layers = 2}, lengths);
    gradcheck("gru_two_layers", NB_RNN_GRU, (nb_rnn_opts){.num_layers = 2}, NULL);
    gradcheck("gru_two_layers_bidirectional_lengths", NB_RNN_GRU,
              (nb_rnn_opts){.num_layers = 2, .bidirectional = true}, lengths);
    gradcheck("rnn_tanh_bidirectional_lengths", NB_RNN_TANH, (nb_rnn_opts){.bidirectional = true}, lengths);
    /* relu: the direction moves every weight at once and crosses relu's kink somewhere; the
     * row's own gradcheck (rnn_relu_layer in tests/op_cases.h), the comparison of both paths
     * and torch's numbers cover it */
}

/* s = <dL/dx, v> for L = sum(output R), the gradient taken with create_graph when asked. */
static nb_tensor *input_gradient_dot(nb_module *m, nb_tensor *x, nb_tensor *r, nb_tensor *v,
                                    const int64_t *lengths, bool graph) {
    nb_tensor *out = NULL, *gx = NULL;
    nb_rnn_forward(m, x, &(nb_rnn_inputs){.lengths = lengths}, &out, NULL, NULL);
    nb_tensor *loss = nb_sum(nb_mul(out, r));
    nb_autograd_grad(1, &loss, NULL, 1, &x, &gx, &(nb_grad_options){.create_graph = graph});
    return nb_sum(nb_mul(gx, v));
}

/* The fused layers' gradients are differentiable again (their create_graph backward is written
 * with ops): d<dL/dx, v>/dW_hh from a create_graph pass against central differences of the
 * first-order <dL/dx, v>, for each cell, both directions, with lengths for the GRU and RNN. */
static void second_derivative(nb_rnn_mode mode, const int64_t *lengths) {
    nb_manual_seed(6);
    nb_module *m = nb_rnn_new(mode, 2, 3, (nb_rnn_opts){.bidirectional = true});
    nb_tensor *x = nb_randn(NB_SHAPE(3, 2, 2)), *r = nb_randn(NB_SHAPE(3, 2, 6));
    nb_tensor *v = nb_randn(NB_SHAPE(3, 2, 2)), *w = nb_module_find(m, "weight_hh_l0_reverse");
    nb_set_requires_grad(x, true);
    nb_scope_begin();
    CHECK_EQ_INT(nb_backward(input_gradient_dot(m, x, r, v, lengths, true)), NB_OK);
    nb_scope_end();
    enum { MAX_W = 36 };
    int64_t n = nb_numel(w);
    float *g = host_vals(nb_grad(w)), w0[MAX_W];
    nb_copy_to(w, w0, n);
    double analytic = 0, side[2];
    float dir[MAX_W], moved[MAX_W], h = 1e-2f;
    for (int64_t k = 0; k < n; k++) dir[k] = (float)((k * 5) % 7) / 3.0f - 1.0f, analytic += (double)g[k] * dir[k];
    for (int sgn = 0; sgn < 2; sgn++) {
        for (int64_t k = 0; k < n; k++) moved[k] = w0[k] + (sgn ? -h : h) * dir[k];
        nb_copy_from(w, moved, n);
        nb_scope_begin();
        side[sgn] = nb_item(input_gradient_dot(m, x, r, v, lengths, false));
        nb_scope_end();
    }
    nb_copy_from(w, w0, n);
    CHECK_NEAR(analytic, (side[0] - side[1]) / (2.0 * h), 2e-3, 1e-2);
    nb_tensor_free(x), nb_tensor_free(r), nb_tensor_free(v);
    nb_module_free(m);
}

static void second_derivatives_match_finite_differences(void) {
    const int64_t lengths[2] = {3, 1};
    second_derivative(NB_RNN_LSTM, NULL);
    second_derivative(NB_RNN_LSTM, lengths);
    second_derivative(NB_RNN_GRU, lengths);
    second_derivative(NB_RNN_TANH, lengths);
}

/* ---------------------------------------------------------------- fused and composite paths */

extern bool nb__rnn_fused;

/* One configuration run on both paths: the results and every gradient (parameters, x, h0,
 * c0) of L = <output, R> + <h_n, Rh> (+ <c_n, Rc>). */
typedef struct {
    const char *name;
    nb_rnn_opts opts;
    bool states, unbatched, lengths, training;
} fused_case;

enum { FC_MAX = 20 };

/* The flattened values of the results then the gradients, into vals (counts in *n). */
static int64_t run_path(nb_rnn_mode mode, const fused_case *fc, bool fused, float *vals, int64_t cap) {
    nb_manual_seed(31);
    nb_module *m = nb_rnn_new(mode, 3, 4, fc->opts);
    nb_module_train(m, fc->training);
    int cells = (fc->opts.num_layers ? fc->opts.num_layers : 1) * (fc->opts.bidirectional ? 2 : 1);
    const int64_t steps = 5, batch = 3, lengths[3] = {2, 5, 4};
    nb_tensor *x = fc->unbatched ? nb_randn(NB_SHAPE(steps, 3))
                   : fc->opts.batch_first ? nb_randn(NB_SHAPE(batch, steps, 3))
                                          : nb_randn(NB_SHAPE(steps, batch, 3));
    nb_tensor *h0 = fc->unbatched ? nb_randn(NB_SHAPE(cells, 4)) : nb_randn(NB_SHAPE(cells, batch, 4));
    nb_tensor *c0 = fc->unbatched ? nb_randn(NB_SHAPE(cells, 4)) : nb_randn(NB_SHAPE(cells, batch, 4));
    bool lstm = mode == NB_RNN_LSTM;
    nb_tensor *leaves[FC_MAX];
    int n = 0;
    for (int i = 0; i < nb_module_num_params(m); i++) leaves[n++] = nb_module_param(m, i, NULL);
    leaves[n++] = x;
    if (fc->states) leaves[n++] = h0;
    if (fc->states && lstm) leaves[n++] = c0;
    for (int i = 0; i < n; i++) nb_set_requires_grad(leaves[i], true);
    nb__rnn_fused = fused;
    nb_scope_begin();
    nb_tensor *res[3] = {NULL, NULL, NULL};
    nb_rnn_inputs in = {fc->states ? h0 : NULL, fc->states && lstm ? c0 : NULL,
                        fc->lengths ? lengths : NULL};
    CHECK_EQ_INT(nb_rnn_forward(m, x, &in, &res[0], &res[1], lstm ? &res[2] : NULL), NB_OK);
    int n_res = lstm ? 3 : 2;
    nb_tensor *loss = NULL;
    for (int i = 0; i < n_res; i++) {
        nb_tensor *term = nb_sum(nb_mul(res[i], nb_randn(nb_ndim(res[i]), nb_shape(res[i]))));
        loss = loss ? nb_add(loss, term) : term;
    }
    CHECK_EQ_INT(nb_backward(loss), NB_OK);
    int64_t at = 0;
    for (int i = 0; i < n_res + n; i++) {
        nb_tensor *t = i < n_res ? res[i] : nb_grad(leaves[i - n_res]);
        int64_t k = nb_numel(t);
        CHECK(at + k <= cap);
        if (at + k <= cap) nb_copy_to(t, vals + at, k);
        at += k;
    }
    nb_scope_end();
    nb__rnn_fused = true;
    nb_tensor_free(x), nb_tensor_free(h0), nb_tensor_free(c0);
    nb_module_free(m);
    return at;
}

/* Every mode on both paths: equal results and gradients, with lengths (the masked steps),
 * both directions, batch_first, no bias, initial states, an unbatched sequence, and dropout
 * between layers in training (the same draws on both paths). */
static void fused_and_composite_paths_agree_on_results_and_every_gradient(void) {
    const fused_case cases[] = {
        {"one_layer", {0}, false, false, false, false},
        {"two_layers_bidirectional_with_states", {.num_layers = 2, .bidirectional = true}, true, false, false, false},
        {"two_layers_bidirectional_lengths_states", {.num_layers = 2, .bidirectional = true}, true, false, true, false},
        {"batch_first_no_bias_with_states_lengths", {.batch_first = true, .no_bias = true}, true, false, true, false},
        {"unbatched_bidirectional", {.bidirectional = true}, true, true, false, false},
        {"three_layers_dropout_training_lengths", {.num_layers = 3, .dropout = 0.4f}, false, false, true, true},
    };
    static const char *const modes[] = {"rnn_tanh", "rnn_relu", "lstm", "gru"};
    enum { CAP = 8192 };
    static float fused[CAP], composite[CAP];
    for (int mode = 0; mode < NB_RNN_MODE_COUNT; mode++)
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            int64_t n = run_path((nb_rnn_mode)mode, &cases[c], true, fused, CAP);
            CHECK_EQ_INT(run_path((nb_rnn_mode)mode, &cases[c], false, composite, CAP), n);
            double worst = 0;
            for (int64_t k = 0; k < n && k < CAP; k++) {
                double d = fabs((double)fused[k] - composite[k]) / (1.0 + fabs((double)composite[k]));
                if (d > worst) worst = d;
            }
            if (worst <= 1e-5) check_passed_++;
            else CHECK_FAIL_("%s %s: fused and composite paths differ by %g (relative)", modes[mode],
                             cases[c].name, worst);
        }
}

static bool is_fused_op(nb_op_id op) {
    return op == NB_OP_RNN_TANH_LAYER || op == NB_OP_RNN_RELU_LAYER || op == NB_OP_LSTM_LAYER ||
           op == NB_OP_GRU_LAYER;
}

/* The number of distinct fused layer nodes reachable from t (visited marks seen nodes). */
static int count_fused_nodes(const nb_tensor *t, const nb_node **seen, int *n_seen, int cap) {
    const nb_node *node = t->node;
    if (!node) return 0;
    for (int i = 0; i < *n_seen; i++)
        if (seen[i] == node) return 0;
    if (*n_seen < cap) seen[(*n_seen)++] = node;
    int count = is_fused_op(node->op);
    for (int i = 0; i < node->n_in; i++) count += count_fused_nodes(node->in[i], seen, n_seen, cap);
    return count;
}

static void every_mode_records_one_node_per_layer_direction_lengths_or_not(void) {
    const int64_t lengths[2] = {6, 3};
    for (int mode = 0; mode < NB_RNN_MODE_COUNT; mode++)
        for (int with_lengths = 0; with_lengths < 2; with_lengths++) {
            nb_module *m = nb_rnn_new((nb_rnn_mode)mode, 3, 4,
                                      (nb_rnn_opts){.num_layers = 2, .bidirectional = true});
            nb_tensor *x = nb_randn(NB_SHAPE(6, 2, 3));
            nb_scope_begin();
            nb_tensor *out = NULL;
            nb_rnn_inputs in = {.lengths = with_lengths ? lengths : NULL};
            CHECK_EQ_INT(nb_rnn_forward(m, x, &in, &out, NULL, NULL), NB_OK);
            static const nb_node *seen[4096];
            int n_seen = 0;
            CHECK_EQ_INT(count_fused_nodes(out, seen, &n_seen, 4096), 4);
            CHECK(n_seen < 100); /* the composite path records ten to twenty nodes per step */
            nb_scope_end();
            nb_tensor_free(x);
            nb_module_free(m);
        }
}

/* ---------------------------------------------------------------- names, repr, dropout */

static char *repr_of(nb_module *m, char *buf, size_t cap) {
    FILE *f = tmpfile();
    nb_module_fprint(f, m);
    rewind(f);
    size_t len = fread(buf, 1, cap - 1, f);
    buf[len] = '\0';
    fclose(f);
    if (len && buf[len - 1] == '\n') buf[len - 1] = '\0';
    return buf;
}

static void parameters_are_named_and_printed_as_torch(void) {
    nb_module *m = nb_rnn_new(NB_RNN_LSTM, 10, 20, (nb_rnn_opts){.num_layers = 2, .batch_first = true,
                                                                .bidirectional = true});
    const char *want[] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                          "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse",
                          "bias_hh_l0_reverse", "weight_ih_l1", "weight_hh_l1", "bias_ih_l1",
                          "bias_hh_l1", "weight_ih_l1_reverse", "weight_hh_l1_reverse",
                          "bias_ih_l1_reverse", "bias_hh_l1_reverse"};
    CHECK_EQ_INT(nb_module_num_params(m), 16);
    for (int i = 0; i < 16; i++) {
        const char *name = NULL;
        nb_module_param(m, i, &name);
        CHECK(name && !strcmp(name, want[i]));
    }
    CHECK_EQ_INT(nb_size(nb_module_find(m, "weight_ih_l1"), 1), 40); /* D H */
    CHECK_EQ_INT(nb_module_num_elements(m), 4 * 20 * (10 + 20 + 2) * 2 + 4 * 20 * (40 + 20 + 2) * 2);
    /* U(-1/sqrt(H), 1/sqrt(H)) */
    float *w = host_vals(nb_module_find(m, "weight_hh_l0"));
    float lo = 1, hi = -1;
    for (int i = 0; i < 80 * 20; i++) lo = fminf(lo, w[i]), hi = fmaxf(hi, w[i]);
    CHECK(lo >= -1 / sqrtf(20) && hi <= 1 / sqrtf(20) && hi - lo > 1.5f / sqrtf(20));
    char buf[256];
    CHECK_STR_CONTAINS(repr_of(m, buf, sizeof buf),
                       "LSTM(10, 20, num_layers=2, batch_first=True, bidirectional=True)");
    nb_module_free(m);
    m = nb_rnn_new(NB_RNN_RELU, 3, 4, (nb_rnn_opts){.no_bias = true, .dropout = 0.5f});
    CHECK_STR_CONTAINS(repr_of(m, buf, sizeof buf), "RNN(3, 4, bias=False, dropout=0.5)");
    nb_module_free(m);
    m = nb_rnn_cell_new(NB_RNN_RELU, 3, 4, true);
    CHECK_STR_CONTAINS(repr_of(m, buf, sizeof buf), "RNNCell(3, 4, nonlinearity=relu)");
    nb_module_free(m);
    m = nb_rnn_cell_new(NB_RNN_GRU, 3, 4, false);
    CHECK_STR_CONTAINS(repr_of(m, buf, sizeof buf), "GRUCell(3, 4, bias=False)");
    CHECK_EQ_INT(nb_module_num_params(m), 2);
    nb_module_free(m);
}

static void dropout_acts_between_layers_in_training_only(void) {
    nb_manual_seed(3);
    nb_module *m = nb_rnn_new(NB_RNN_GRU, 4, 8, (nb_rnn_opts){.num_layers = 2, .dropout = 0.5f});
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(5, 2, 4));
    nb_module_train(m, false);
    nb_tensor *a = nb_module_forward(m, x), *b = nb_module_forward(m, x);
    nb_module_train(m, true);
    nb_tensor *c = nb_module_forward(m, x);
    float *va = host_vals(a), *vb = host_vals(b), *vc = host_vals(c);
    bool same = true, differs = false;
    for (int i = 0; i < 5 * 2 * 8; i++) same = same && va[i] == vb[i], differs = differs || va[i] != vc[i];
    CHECK(same);
    CHECK(differs);
    nb_scope_end();
    nb_module_free(m);
}

/* The final state of a sequence shorter than T is the output at its last step. */
static void final_state_is_taken_at_each_sequences_last_step(void) {
    nb_manual_seed(4);
    nb_module *m = nb_rnn_new(NB_RNN_LSTM, 2, 3, (nb_rnn_opts){.batch_first = true});
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(2, 5, 2)), *out = NULL, *hn = NULL;
    const int64_t lengths[2] = {3, 5};
    CHECK_EQ_INT(nb_rnn_forward(m, x, &(nb_rnn_inputs){.lengths = lengths}, &out, &hn, NULL), NB_OK);
    float *o = host_vals(out), *h = host_vals(hn);
    for (int k = 0; k < 3; k++) {
        CHECK_NEAR(h[k], o[(0 * 5 + 2) * 3 + k], 0, 0);     /* sequence 0 at step 2 */
        CHECK_NEAR(h[3 + k], o[(1 * 5 + 4) * 3 + k], 0, 0); /* sequence 1 at step 4 */
        CHECK_NEAR(o[(0 * 5 + 3) * 3 + k], 0, 0, 0);        /* past its length: zero */
    }
    nb_scope_end();
    nb_module_free(m);
}

/* A memory task: the first of 6 random signs, read from the final state through a Linear
 * head.  Only a recurrence that carries information across steps (and gradients back
 * through them) learns it; chance is an MSE of 1. */
static float remember_first(nb_rnn_mode mode) {
    nb_manual_seed(7);
    nb_module *rnn = nb_rnn_new(mode, 1, 8, (nb_rnn_opts){0}), *head = nb_linear_new(8, 1, true);
    nb_tensor *params[8];
    int n = nb_module_parameters(rnn, params, 8);
    n += nb_module_parameters(head, params + n, 8 - n);
    nb_optim *o = nb_adam_new(n, params, (nb_adam_opts){.lr = 0.03});
    float loss_value = NAN;
    for (int step = 0; step < 150; step++) {
        nb_scope_begin();
        nb_tensor *x = nb_sub(nb_mul_scalar(nb_bernoulli(nb_full(NB_SHAPE(6, 32, 1), 0.5f)), 2), nb_ones(NB_SHAPE(1)));
        nb_tensor *target = nb_reshape(nb_slice(x, 0, 0, 1, 1), 2, (const int64_t[]){32, 1});
        nb_tensor *hn = NULL;
        nb_optim_zero_grad(o);
        nb_rnn_forward(rnn, x, NULL, NULL, &hn, NULL);
        nb_tensor *loss = nb_mse_loss(nb_module_forward(head, nb_reshape(hn, 2, (const int64_t[]){32, 8})),
                                      target, NB_REDUCTION_MEAN);
        loss_value = nb_item(loss);
        nb_backward(loss);
        nb_optim_step(o);
        nb_scope_end();
    }
    nb_optim_free(o);
    nb_module_free(rnn), nb_module_free(head);
    return loss_value;
}

static void lstm_and_gru_learn_to_remember_the_first_step(void) {
    float lstm = remember_first(NB_RNN_LSTM), gru = remember_first(NB_RNN_GRU);
    printf("memory task MSE after 150 steps: LSTM %.4g, GRU %.4g\n", lstm, gru);
    if (lstm < 0.05f && gru < 0.05f) check_passed_++;
    else CHECK_FAIL_("after 150 Adam steps MSE is %g (LSTM) and %g (GRU), want < 0.05", lstm, gru);
}

/* A model file builds Embedding -> bidirectional LSTM -> Linear, which runs on int32 ids. */
static void model_file_builds_embedding_and_recurrent_layers(void) {
    nb_module *m = nb_model_from_json(
        "{\"layers\": [{\"type\": \"embedding\", \"num_embeddings\": 20, \"embedding_dim\": 6, "
        "\"padding_idx\": 0, \"max_norm\": 2}, {\"type\": \"lstm\", \"in\": 6, \"hidden\": 5, \"num_layers\": 2, "
        "\"bidirectional\": true, \"batch_first\": true, \"dropout\": 0.1}, "
        "{\"type\": \"linear\", \"in\": 10, \"out\": 3}]}");
    CHECK(m != NULL);
    if (!m) return;
    CHECK(nb_module_find(m, "1.weight_hh_l1_reverse") != NULL);
    char buf[512];
    CHECK_STR_CONTAINS(repr_of(m, buf, sizeof buf),
                       "(1): LSTM(6, 5, num_layers=2, batch_first=True, dropout=0.1, bidirectional=True)");
    CHECK_STR_CONTAINS(buf, "(0): Embedding(20, 6, padding_idx=0, max_norm=2.0)");
    nb_scope_begin();
    nb_tensor *ids = nb_from_int32((const int32_t[]){1, 5, 7, 0, 3, 19, 2, 2}, 2, (const int64_t[]){2, 4});
    nb_tensor *y = nb_module_forward(m, ids);
    CHECK(y && nb_ndim(y) == 3 && nb_shape(y)[0] == 2 && nb_shape(y)[1] == 4 && nb_shape(y)[2] == 3);
    nb_scope_end();
    nb_module_free(m);
    nb_module *gru = nb_model_from_json("{\"layers\": [{\"type\": \"rnn\", \"in\": 3, \"hidden\": 4, "
                                        "\"nonlinearity\": \"relu\"}]}");
    CHECK(gru != NULL);
    nb_module_free(gru);
    CHECK(nb_model_from_json("{\"layers\": [{\"type\": \"gru\", \"in\": 3, \"hidden\": 4, "
                             "\"nonlinearity\": \"relu\"}]}") == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "'nonlinearity' is for an rnn only");
    CHECK(nb_model_from_json("{\"layers\": [{\"type\": \"lstm\", \"in\": 3, \"hidden\": 4, "
                             "\"layers\": 2}]}") == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "unknown key 'layers'");
    nb_error_clear();
}

/* ---------------------------------------------------------------- bad input, memory */

static void bad_inputs_are_refused_with_their_names(void) {
    nb_module *m = nb_rnn_new(NB_RNN_LSTM, 3, 4, (nb_rnn_opts){.num_layers = 2});
    nb_module *gru = nb_rnn_new(NB_RNN_GRU, 3, 4, (nb_rnn_opts){0});
    nb_scope_begin();
    nb_tensor *out = NULL, *x = nb_randn(NB_SHAPE(5, 2, 3));
    CHECK_EQ_INT(nb_rnn_forward(m, nb_randn(NB_SHAPE(5, 2, 4)), NULL, &out, NULL, NULL), NB_ERR_SHAPE);
    CHECK_STR_CONTAINS(nb_error_message(), "input.size(-1) must be equal to input_size. Expected 3, got 4");
    CHECK(out == NULL);
    CHECK_EQ_INT(nb_rnn_forward(m, nb_randn(NB_SHAPE(5, 2, 2, 3)), NULL, &out, NULL, NULL), NB_ERR_SHAPE);
    nb_rnn_inputs bad_h0 = {.h0 = nb_zeros(NB_SHAPE(1, 2, 4))};
    CHECK_EQ_INT(nb_rnn_forward(m, x, &bad_h0, &out, NULL, NULL), NB_ERR_SHAPE);
    CHECK_STR_CONTAINS(nb_error_message(), "LSTM: expected hidden of shape [2,2,4], got [1,2,4]");
    nb_rnn_inputs bad_c0 = {.c0 = nb_zeros(NB_SHAPE(2, 3, 4))};
    CHECK_EQ_INT(nb_rnn_forward(m, x, &bad_c0, &out, NULL, NULL), NB_ERR_SHAPE);
    CHECK_STR_CONTAINS(nb_error_message(), "cell state");
    CHECK_EQ_INT(nb_rnn_forward(gru, x, &(nb_rnn_inputs){.c0 = nb_zeros(NB_SHAPE(1, 2, 4))}, &out,
                                NULL, NULL), NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "c0 is for an LSTM only");
    const int64_t too_long[2] = {6, 2}, zero[2] = {5, 0};
    CHECK_EQ_INT(nb_rnn_forward(m, x, &(nb_rnn_inputs){.lengths = too_long}, &out, NULL, NULL), NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "lengths[0] = 6 is outside [1, 5]");
    CHECK_EQ_INT(nb_rnn_forward(m, x, &(nb_rnn_inputs){.lengths = zero}, &out, NULL, NULL), NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "lengths[1] = 0");
    nb_error_clear();
    CHECK_EQ_INT(nb_rnn_forward(m, NULL, NULL, &out, NULL, NULL), NB_ERR_NULL);
    nb_module *lin = nb_linear_new(3, 4, true);
    CHECK_EQ_INT(nb_rnn_forward(lin, x, NULL, &out, NULL, NULL), NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "Linear is not an RNN, LSTM or GRU");
    CHECK_EQ_INT(nb_rnn_cell_forward(m, x, NULL, NULL, &out, NULL), NB_ERR_ARG);
    nb_module *cell = nb_rnn_cell_new(NB_RNN_GRU, 3, 4, true);
    CHECK_EQ_INT(nb_rnn_cell_forward(cell, nb_randn(NB_SHAPE(2, 3)), nb_zeros(NB_SHAPE(3, 4)), NULL,
                                     &out, NULL), NB_ERR_SHAPE);
    CHECK_STR_CONTAINS(nb_error_message(), "GRUCell: hidden [3,4]");
    nb_scope_end();
    CHECK(nb_rnn_new(NB_RNN_LSTM, 0, 4, (nb_rnn_opts){0}) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_ARG);
    CHECK(nb_rnn_new(NB_RNN_GRU, 3, 4, (nb_rnn_opts){.dropout = 1.0f}) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "GRU: dropout should be a number in range [0, 1)");
    CHECK(nb_rnn_new(NB_RNN_MODE_COUNT, 3, 4, (nb_rnn_opts){0}) == NULL);
    nb_error_clear();
    nb_module_free(m), nb_module_free(gru), nb_module_free(lin), nb_module_free(cell);
}

/* The fused ops (no public function) check their inputs with messages naming them. */
static void fused_ops_refuse_inputs_that_disagree(void) {
    nb_scope_begin();
    nb_tensor *xp = nb_zeros(NB_SHAPE(4, 2, 6)), *w = nb_zeros(NB_SHAPE(6, 2)), *b = nb_zeros(NB_SHAPE(6));
    nb_tensor *s0 = nb_zeros(NB_SHAPE(1, 2, 2)), *mask = nb_ones(NB_SHAPE(4, 3));
    CHECK(nb__apply(NB_OP_GRU_LAYER, 5, (nb_tensor *[]){xp, w, b, s0, mask}, &(nb_op_args){0}) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_SHAPE);
    CHECK_STR_CONTAINS(nb_error_message(), "gru_layer: xp [4,2,6], w_hh [6,2], b_hh [6], s0 [1,2,2], "
                                           "mask [4,3] do not agree (want [T, B, 3H], [3H, H], [3H], "
                                           "[1, B, H], mask [T, B])");
    CHECK(nb__apply(NB_OP_LSTM_LAYER, 4, (nb_tensor *[]){xp, w, b, s0}, &(nb_op_args){0}) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "lstm_layer: xp [4,2,6], w_hh [6,2], b_hh [6], s0 [1,2,2] "
                                           "do not agree (want [T, B, 4H], [4H, H], [4H], [2, B, H]");
    CHECK(nb__apply(NB_OP_RNN_TANH_LAYER, 3, (nb_tensor *[]){xp, w, b}, &(nb_op_args){0}) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "rnn_tanh_layer: takes xp, w_hh, b_hh, s0 and an optional "
                                           "mask, got 3 inputs");
    nb_error_clear();
    nb_scope_end();
}

/* One forward and backward with no scope open (with lengths: masked steps); the results
 * freed. */
static void heap_run(nb_module *m, const int64_t *lengths, bool lstm) {
    nb_tensor *x = nb_randn(NB_SHAPE(4, 2, 2)), *out = NULL, *hn = NULL, *cn = NULL;
    CHECK_EQ_INT(nb_rnn_forward(m, x, &(nb_rnn_inputs){.lengths = lengths}, &out, &hn,
                                lstm ? &cn : NULL), NB_OK);
    nb_tensor *s = nb_sum(out), *sc = nb_sum(lstm ? cn : hn), *loss = nb_add(s, sc);
    CHECK_EQ_INT(nb_backward(loss), NB_OK);
    nb_tensor *own[] = {x, out, hn, cn, s, sc, loss};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) nb_tensor_free(own[i]);
    for (int i = 0; i < nb_module_num_params(m); i++) nb_clear_grad(nb_module_param(m, i, NULL));
}

/* Forward and backward with no scope open give back every byte once the results are freed
 * (after a first run, which warms the backward pass's own scope). */
static void heap_mode_forward_and_backward_leave_nothing(void) {
    const int64_t lengths[2] = {4, 2};
    for (int mode = NB_RNN_LSTM; mode <= NB_RNN_GRU; mode++) {
        bool lstm = mode == NB_RNN_LSTM;
        nb_module *m = nb_rnn_new((nb_rnn_mode)mode, 2, 3, (nb_rnn_opts){.bidirectional = true, .num_layers = 2});
        heap_run(m, lengths, lstm);
        heap_run(m, NULL, lstm);
        size_t before = nb_alloc_stats_get().bytes_live;
        heap_run(m, lengths, lstm);
        CHECK_BYTES_BACK(lstm ? "lstm with lengths" : "gru with lengths", before);
        heap_run(m, NULL, lstm);
        CHECK_BYTES_BACK(lstm ? "lstm" : "gru", before);
        nb__rnn_fused = false;
        heap_run(m, lengths, lstm);
        nb__rnn_fused = true;
        CHECK_BYTES_BACK(lstm ? "composite lstm" : "composite gru", before);
        nb_module_free(m);
    }
}

int main(void) {
    layers_and_cells_match_torch();
    gradients_match_finite_differences();
    second_derivatives_match_finite_differences();
    fused_and_composite_paths_agree_on_results_and_every_gradient();
    every_mode_records_one_node_per_layer_direction_lengths_or_not();
    parameters_are_named_and_printed_as_torch();
    dropout_acts_between_layers_in_training_only();
    final_state_is_taken_at_each_sequences_last_step();
    lstm_and_gru_learn_to_remember_the_first_step();
    model_file_builds_embedding_and_recurrent_layers();
    bad_inputs_are_refused_with_their_names();
    fused_ops_refuse_inputs_that_disagree();
    heap_mode_forward_and_backward_leave_nothing();
    return check_summary();
}
