/*
 * test_attention.c — scaled dot-product attention (src/ops/attention.c and its fused kernel,
 * src/backend/cpu/attention.c):
 *  - torch's outputs and the gradients of q, k and v to 1e-5, from tests/golden/attention.json
 *    (tools/gen_golden_attention.py), through the fused op and through the ops that keep the
 *    weights: causal, float and boolean masks, key padding, Dv != D, a scale, several blocks;
 *  - backward against fourth-order finite differences in double (gradcheck_util.h), with a
 *    mask, causal and dropout (its mask regenerated from the same counters);
 *  - dropout: the fused op and the ops path draw the same mask; about p of the weights go;
 *  - create_graph: the gradient's own gradient equals the one through plain ops;
 *  - MultiheadAttention: outputs, weights (averaged or per head) and every gradient
 *    (inputs and parameters, by torch's names) as torch's to 1e-5: seq-first self-attention,
 *    batch_first cross-attention with masks on the fused path, a 3-D boolean mask with
 *    add_zero_attn and no bias;
 *  - positions: the sinusoidal table and RoPE (output and gradient) as torch's; decoding token
 *    by token with a key/value cache equals the full causal forward; sequences longer than the
 *    positions refused;
 *  - the fused path keeps no [T, S] matrix; bad inputs are refused with their names; no byte
 *    is left behind with no scope open.
 */
#include "check.h"
#include "golden_json.h"
#include "gradcheck_util.h"

#define GOLDEN_PATH "tests/golden/attention.json"
#define TOL 1e-5

/* A case's tensor as a leaf that requires grad. */
static nb_tensor *leaf(const json_t *c, const char *key) {
    nb_tensor *t = json_tensor(json_object_get(c, key));
    if (t) nb_set_requires_grad(t, true);
    return t;
}

/* One golden case through the fused op (weights false) or the ops path. */
static void sdpa_case(const json_t *c, bool weights) {
    char what[160];
    const char *name = json_string_value(json_object_get(c, "name"));
    nb_scope_begin();
    nb_tensor *q = leaf(c, "q"), *k = leaf(c, "k"), *v = leaf(c, "v");
    nb_sdpa_opts o = {.attn_mask = json_tensor(json_object_get(c, "attn_mask")),
                      .key_padding_mask = json_tensor(json_object_get(c, "key_padding_mask")),
                      .causal = json_is_true(json_object_get(c, "causal")),
                      .scale = (float)json_real_value(json_object_get(c, "scale"))};
    nb_tensor *w = NULL;
    nb_tensor *out = weights ? nb_scaled_dot_product_attention_weights(q, k, v, &o, &w)
                             : nb_scaled_dot_product_attention(q, k, v, &o);
    CHECK(out != NULL && (!weights || w != NULL));
    nb_tensor *r = json_tensor(json_object_get(c, "R"));
    CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(out, r))), NB_OK);
    const char *path = weights ? "ops" : "fused";
    snprintf(what, sizeof what, "%s (%s): out", name, path);
    check_json_tensor(what, out, json_object_get(c, "out"), TOL);
    const char *keys[3] = {"grad_q", "grad_k", "grad_v"};
    nb_tensor *leaves[3] = {q, k, v};
    for (int i = 0; i < 3; i++) {
        snprintf(what, sizeof what, "%s (%s): %s", name, path, keys[i]);
        check_json_tensor(what, nb_grad(leaves[i]), json_object_get(c, keys[i]), TOL);
    }
    nb_scope_end();
}

static void sdpa_matches_torch_through_both_paths(void) {
    json_t *root = golden_load(GOLDEN_PATH);
    CHECK(root != NULL);
    if (!root) return;
    const json_t *cases = json_object_get(root, "sdpa");
    CHECK(json_array_size(cases) >= 9);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        sdpa_case(json_array_get(cases, i), false);
        sdpa_case(json_array_get(cases, i), true);
    }
    json_decref(root);
}

/* ---- MultiheadAttention */

static void mha_case(const json_t *c) {
    char what[160];
    const char *name = json_string_value(json_object_get(c, "name"));
    nb_mha_opts opts = {.no_bias = !json_is_true(json_object_get(c, "bias")),
                        .add_zero_attn = json_is_true(json_object_get(c, "add_zero_attn")),
                        .batch_first = json_is_true(json_object_get(c, "batch_first"))};
    nb_module *m = nb_multihead_attention_new(json_integer_value(json_object_get(c, "embed_dim")),
                                              json_integer_value(json_object_get(c, "num_heads")), opts);
    CHECK(m != NULL);
    if (!m) return;
    check_and_load_entries(name, m, json_object_get(c, "params"), false);
    nb_scope_begin();
    nb_tensor *q = leaf(c, "query"), *k = leaf(c, "key"), *v = leaf(c, "value");
    nb_mha_inputs in = {.attn_mask = json_tensor(json_object_get(c, "attn_mask")),
                        .key_padding_mask = json_tensor(json_object_get(c, "key_padding_mask")),
                        .per_head_weights = !json_is_true(json_object_get(c, "average"))};
    bool need_weights = json_is_true(json_object_get(c, "need_weights"));
    nb_tensor *out = NULL, *w = NULL;
    CHECK_EQ_INT(nb_multihead_attention_forward(m, q, k, v, &in, &out, need_weights ? &w : NULL), NB_OK);
    nb_tensor *loss = nb_sum(nb_mul(out, json_tensor(json_object_get(c, "R"))));
    if (need_weights) loss = nb_add(loss, nb_sum(nb_mul(w, json_tensor(json_object_get(c, "R_weights")))));
    CHECK_EQ_INT(nb_backward(loss), NB_OK);
    const char *keys[5] = {"out", "weights", "grad_query", "grad_key", "grad_value"};
    nb_tensor *got[5] = {out, w, nb_grad(q), nb_grad(k), nb_grad(v)};
    for (int i = 0; i < 5; i++) {
        if (i == 1 && !need_weights) continue;
        snprintf(what, sizeof what, "%s: %s", name, keys[i]);
        check_json_tensor(what, got[i], json_object_get(c, keys[i]), TOL);
    }
    check_entries(name, "grad of", m, json_object_get(c, "grads"), true, TOL);
    nb_scope_end();
    nb_module_free(m);
}

static void multihead_attention_matches_torch(void) {
    golden_each_case(GOLDEN_PATH, "mha", 3, mha_case);
}

static void multihead_attention_refuses_bad_sizes_and_masks(void) {
    CHECK(nb_multihead_attention_new(10, 3, (nb_mha_opts){0}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "MultiheadAttention: embed_dim 10 must be divisible by num_heads 3");
    nb_module *m = nb_multihead_attention_new(8, 2, (nb_mha_opts){0});
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(5, 3, 8)), *out = (nb_tensor *)1, *w = (nb_tensor *)1;
    nb_mha_inputs in = {.attn_mask = nb_zeros(NB_SHAPE(5, 4))};
    CHECK_EQ_INT(nb_multihead_attention_forward(m, x, x, x, &in, &out, &w), NB_ERR_SHAPE);
    CHECK(out == NULL && w == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "attn_mask [5,4] must be [T, S] = [5,5] or [B*num_heads, T, S] = [6,5,5]");
    in = (nb_mha_inputs){.key_padding_mask = nb_zeros(NB_SHAPE(5, 3))};
    CHECK_EQ_INT(nb_multihead_attention_forward(m, x, x, x, &in, &out, NULL), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "key_padding_mask [5,3] must be [batch, keys] = [3,5]");
    CHECK_EQ_INT(nb_multihead_attention_forward(m, nb_randn(NB_SHAPE(5, 3, 6)), x, x, NULL, &out, NULL),
                 NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "query [5,3,6] must be [L, B, E] with E = 8");
    /* self-attention through nb_module_forward, in eval mode: the output's shape */
    nb_module_train(m, false);
    nb_tensor *y = nb_module_forward(m, x);
    CHECK(y != NULL && nb_ndim(y) == 3 && nb_shape(y)[0] == 5 && nb_shape(y)[2] == 8);
    nb_scope_end();
    nb_module_free(m);
}

/* ---- positions and the key/value cache */

static void positions_match_torch(void) {
    json_t *root = golden_load(GOLDEN_PATH);
    CHECK(root != NULL);
    if (!root) return;
    const json_t *pos = json_object_get(root, "positions");
    nb_scope_begin();
    check_json_tensor("sinusoidal positions [50, 6]", nb_sinusoidal_positions(50, 6),
                      json_object_get(pos, "sinusoidal"), TOL);
    const json_t *rot = json_object_get(pos, "rotary");
    CHECK(json_array_size(rot) == 2);
    for (size_t i = 0; i < json_array_size(rot); i++) {
        const json_t *c = json_array_get(rot, i);
        nb_tensor *x = leaf(c, "x");
        nb_tensor *out = nb_rotary(x, json_integer_value(json_object_get(c, "offset")),
                                   (float)json_real_value(json_object_get(c, "base")));
        CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(out, json_tensor(json_object_get(c, "R"))))), NB_OK);
        check_json_tensor("rotary: out", out, json_object_get(c, "out"), TOL);
        check_json_tensor("rotary: grad_x", nb_grad(x), json_object_get(c, "grad_x"), TOL);
    }
    nb_scope_end();
    json_decref(root);
}

/* Decoding one token at a time with rotary q and k at their positions and a cache of keys and
 * values gives the rows of the full causal forward. */
static void kv_cache_steps_equal_the_full_causal_forward(void) {
    enum { B = 2, H = 2, T = 9, D = 6 };
    nb_scope_begin();
    nb_manual_seed(3);
    nb_tensor *q = nb_randn(NB_SHAPE(B, H, T, D)), *k = nb_randn(NB_SHAPE(B, H, T, D));
    nb_tensor *v = nb_randn(NB_SHAPE(B, H, T, D));
    nb_tensor *full = nb_scaled_dot_product_attention(nb_rotary(q, 0, 0), nb_rotary(k, 0, 0), v,
                                                      &(nb_sdpa_opts){.causal = true});
    nb_kv_cache *cache = nb_kv_cache_new(T);
    nb_tensor *steps[T];
    for (int t = 0; t < T; t++) {
        int64_t at = nb_kv_cache_len(cache);
        CHECK_EQ_INT(at, t);
        nb_tensor *ka = NULL, *va = NULL;
        CHECK_EQ_INT(nb_kv_cache_append(cache, nb_rotary(nb_slice(k, 2, t, t + 1, 1), at, 0),
                                        nb_slice(v, 2, t, t + 1, 1), &ka, &va), NB_OK);
        steps[t] = nb_scaled_dot_product_attention(nb_rotary(nb_slice(q, 2, t, t + 1, 1), at, 0),
                                                   ka, va, NULL);
    }
    float *want_f = host_vals(full), *got = host_vals(nb_concat(T, steps, 2));
    double want[B * H * T * D];
    for (int i = 0; i < B * H * T * D; i++) want[i] = want_f[i];
    CHECK_ARRAY("kv cache: step by step against the full causal forward", got, want,
                B * H * T * D, 1e-6, 1e-5);
    nb_tensor *ka = NULL, *va = NULL;
    CHECK_EQ_INT(nb_kv_cache_append(cache, nb_slice(k, 2, 0, 1, 1), nb_slice(v, 2, 0, 1, 1), &ka, &va),
                 NB_ERR_ARG);
    CHECK(ka == NULL && va == NULL && nb_kv_cache_len(cache) == T);
    CHECK_ERROR(NB_ERR_ARG, "kv_cache_append: a sequence of 1 tokens from position 9 is longer "
                            "than the 9 positions");
    nb_kv_cache_reset(cache);
    CHECK_EQ_INT(nb_kv_cache_append(cache, nb_randn(NB_SHAPE(B, H, 1, D)), nb_randn(NB_SHAPE(B, 1, 1, D)),
                                    &ka, &va), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "kv_cache_append: k [2,2,1,6] and v [2,1,1,6] must be [B, H, t, D]");
    CHECK_EQ_INT(nb_kv_cache_len(cache), 0);
    nb_kv_cache_free(cache);
    nb_scope_end();
}

static void sequences_longer_than_the_positions_are_refused(void) {
    nb_scope_begin();
    nb_tensor *pe = nb_sinusoidal_positions(128, 8);
    CHECK(nb_positions_slice(pe, 0, 130) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "positions_slice: a sequence of 130 tokens from position 0 is longer "
                            "than the 128 positions");
    CHECK(nb_positions_slice(pe, 120, 8) != NULL);
    CHECK(nb_position_ids(100, 29, 128) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "position_ids: a sequence of 29 tokens from position 100 is longer "
                            "than the 128 positions");
    nb_tensor *ids = nb_position_ids(3, 4, 128);
    CHECK(ids != NULL && nb_dtype_of(ids) == NB_I32 && nb_numel(ids) == 4);
    CHECK(nb_sinusoidal_positions(10, 7) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "d_model 7 even");
    CHECK(nb_rotary(nb_randn(NB_SHAPE(2, 3, 5)), 0, 0) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "rotary: x [2,3,5] must be [..., T, D] with D even");
    nb_scope_end();
}

/* ---- finite differences */

enum { GB = 2, GH = 2, GT = 5, GS = 6, GD = 3, GDV = 4 };

typedef struct {
    float q[GB * GH * GT * GD], k[GB * GH * GS * GD], v[GB * GH * GS * GDV];
    float r[GB * GH * GT * GDV], mask[GT * GS];
    nb_sdpa_opts o;
    uint64_t seed; /* re-seeded before each forward, so dropout draws the same mask */
} gc_case;

/* sum(attention(q, k, v) * r) for the case's host values; the gradients of q, k, v into
 * grads when not NULL. */
static double gc_loss(gc_case *g, float *const *grads) {
    nb_scope_begin();
    nb_manual_seed(g->seed);
    nb_tensor *q = nb_from_data(g->q, NB_SHAPE(GB, GH, GT, GD));
    nb_tensor *k = nb_from_data(g->k, NB_SHAPE(GB, GH, GS, GD));
    nb_tensor *v = nb_from_data(g->v, NB_SHAPE(GB, GH, GS, GDV));
    nb_tensor *r = nb_from_data(g->r, NB_SHAPE(GB, GH, GT, GDV));
    nb_sdpa_opts o = g->o;
    o.attn_mask = nb_from_data(g->mask, NB_SHAPE(GT, GS));
    nb_tensor *leaves[3] = {q, k, v};
    for (int i = 0; grads && i < 3; i++) nb_set_requires_grad(leaves[i], true);
    nb_tensor *loss = nb_sum(nb_mul(nb_scaled_dot_product_attention(q, k, v, &o), r));
    double value = loss ? nb_item(loss) : NAN;
    if (grads && nb_backward(loss) == NB_OK)
        for (int i = 0; i < 3; i++) nb_copy_to(nb_grad(leaves[i]), grads[i], nb_numel(leaves[i]));
    nb_scope_end();
    return value;
}

static double gc_fn_loss(void *ctx) { return gc_loss(ctx, NULL); }

static void fill_uniform(float *x, int n, uint64_t *state, float lo, float hi) {
    for (int i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = lo + (hi - lo) * (float)((*state >> 40) * 0x1p-24);
    }
}

static void gradcheck_one(const char *name, nb_sdpa_opts o) {
    static gc_case g;
    uint64_t state = gc_seed_of(name);
    fill_uniform(g.q, GB * GH * GT * GD, &state, -1, 1);
    fill_uniform(g.k, GB * GH * GS * GD, &state, -1, 1);
    fill_uniform(g.v, GB * GH * GS * GDV, &state, -1, 1);
    fill_uniform(g.r, GB * GH * GT * GDV, &state, -1, 1);
    fill_uniform(g.mask, GT * GS, &state, -1, 1);
    g.o = o;
    g.seed = gc_seed_of(name);
    static float dq[sizeof g.q / 4], dk[sizeof g.k / 4], dv[sizeof g.v / 4];
    float *grads[3] = {dq, dk, dv}, *values[3] = {g.q, g.k, g.v};
    int sizes[3] = {GB * GH * GT * GD, GB * GH * GS * GD, GB * GH * GS * GDV};
    gc_loss(&g, grads);
    for (int i = 0; i < 3; i++) {
        /* each input along a random direction: the analytic grad . dir against the stencil */
        float dir[GB * GH * GS * GDV];
        float *p[GB * GH * GS * GDV];
        fill_uniform(dir, sizes[i], &state, -1, 1);
        double analytic = 0;
        for (int j = 0; j < sizes[i]; j++) analytic += (double)grads[i][j] * dir[j], p[j] = &values[i][j];
        double numeric = gc_stencil(gc_fn_loss, &g, p, dir, sizes[i]);
        char what[96];
        snprintf(what, sizeof what, "%s: d loss / d %c along a direction", name, "qkv"[i]);
        CHECK_ARRAY(what, &(float){(float)analytic}, &numeric, 1, 2e-4, 2e-3);
    }
}

static void gradients_match_finite_differences(void) {
    gradcheck_one("plain", (nb_sdpa_opts){0});
    gradcheck_one("causal", (nb_sdpa_opts){.causal = true});
    gradcheck_one("dropout_causal_scaled", (nb_sdpa_opts){.causal = true, .dropout_p = 0.3f,
                                                            .scale = 0.7f});
}

/* ---- dropout */

static void dropout_draws_one_mask_on_both_paths(void) {
    nb_scope_begin();
    nb_manual_seed(5);
    nb_tensor *q = nb_randn(NB_SHAPE(2, 3, 70, 8)), *k = nb_randn(NB_SHAPE(2, 3, 80, 8));
    nb_tensor *v = nb_randn(NB_SHAPE(2, 3, 80, 8)), *leaves[3] = {q, k, v};
    for (int i = 0; i < 3; i++) nb_set_requires_grad(leaves[i], true);
    nb_sdpa_opts o = {.dropout_p = 0.25f, .causal = true};
    float *grads[2][3];
    nb_tensor *outs[2], *w = NULL;
    for (int path = 0; path < 2; path++) {
        nb_manual_seed(77);
        outs[path] = path ? nb_scaled_dot_product_attention_weights(q, k, v, &o, &w)
                          : nb_scaled_dot_product_attention(q, k, v, &o);
        CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(outs[path], outs[path]))), NB_OK);
        for (int i = 0; i < 3; i++) {
            grads[path][i] = host_vals(nb_grad(leaves[i]));
            nb_zero_grad(leaves[i]);
        }
    }
    int64_t n = nb_numel(outs[0]);
    double *want = malloc(sizeof(double) * (size_t)(3 * 2 * 80 * 8));
    float *o0 = host_vals(outs[0]), *o1 = host_vals(outs[1]);
    for (int64_t i = 0; i < n; i++) want[i] = o1[i];
    CHECK_ARRAY("dropout: fused out against the ops path", o0, want, n, 1e-5, 1e-5);
    for (int i = 0; i < 3; i++) {
        int64_t m = nb_numel(leaves[i]);
        for (int64_t j = 0; j < m; j++) want[j] = grads[1][i][j];
        CHECK_ARRAY("dropout: fused gradient against the ops path", grads[0][i], want, m, 1e-4, 1e-4);
    }
    /* about p of the weights a row can see are dropped */
    float *wv = host_vals(w);
    int64_t seen = 0, dropped = 0;
    for (int64_t r = 0; r < 2 * 3 * 70; r++)
        for (int64_t j = 0; j <= r % 70; j++, seen++) dropped += wv[r * 80 + j] == 0.0f;
    CHECK_NEAR((double)dropped / (double)seen, 0.25, 0.03, 0);
    free(want);
    nb_scope_end();
}

/* ---- create_graph */

static void second_derivatives_equal_those_through_plain_ops(void) {
    nb_scope_begin();
    nb_manual_seed(9);
    nb_tensor *q = nb_randn(NB_SHAPE(1, 2, 4, 3)), *k = nb_randn(NB_SHAPE(1, 2, 5, 3));
    nb_tensor *v = nb_randn(NB_SHAPE(1, 2, 5, 2)), *leaves[3] = {q, k, v};
    nb_tensor *mask = nb_randn(NB_SHAPE(4, 5));
    for (int i = 0; i < 3; i++) nb_set_requires_grad(leaves[i], true);
    nb_sdpa_opts o = {.attn_mask = mask, .causal = true};
    float *second[2][3];
    for (int path = 0; path < 2; path++) {
        nb_tensor *w = NULL;
        nb_tensor *out = path ? nb_scaled_dot_product_attention_weights(q, k, v, &o, &w)
                              : nb_scaled_dot_product_attention(q, k, v, &o);
        nb_tensor *loss = nb_sum(nb_mul(out, nb_tanh(out))), *g[3] = {0};
        CHECK_EQ_INT(nb_autograd_grad(1, &loss, NULL, 3, leaves, g,
                                      &(nb_grad_options){.create_graph = true}), NB_OK);
        nb_tensor *gg = nb_add(nb_add(nb_sum(nb_mul(g[0], g[0])), nb_sum(nb_sin(g[1]))),
                               nb_sum(nb_mul(g[2], g[2])));
        CHECK_EQ_INT(nb_backward(gg), NB_OK);
        for (int i = 0; i < 3; i++) {
            second[path][i] = host_vals(nb_grad(leaves[i]));
            nb_zero_grad(leaves[i]);
        }
    }
    for (int i = 0; i < 3; i++) {
        int64_t n = nb_numel(leaves[i]);
        double want[64];
        for (int64_t j = 0; j < n; j++) want[j] = second[1][i][j];
        CHECK_ARRAY("second derivative: fused against ops", second[0][i], want, n, 1e-5, 1e-4);
    }
    nb_scope_end();
}

/* ---- memory */

/* Forward and backward at T = S = 512 hold far less than one [T, S] matrix per head. */
static void fused_path_keeps_no_weight_matrix(void) {
    enum { B = 1, H = 4, T = 512, D = 16 };
    nb_scope_begin();
    nb_tensor *q = nb_randn(NB_SHAPE(B, H, T, D)), *k = nb_randn(NB_SHAPE(B, H, T, D));
    nb_tensor *v = nb_randn(NB_SHAPE(B, H, T, D)), *leaves[3] = {q, k, v};
    for (int i = 0; i < 3; i++) nb_set_requires_grad(leaves[i], true);
    size_t before = nb_alloc_stats_get().bytes_peak;
    nb_alloc_stats start = nb_alloc_stats_get();
    nb_tensor *out = nb_scaled_dot_product_attention(q, k, v, &(nb_sdpa_opts){.causal = true});
    CHECK_EQ_INT(nb_backward(nb_sum(out)), NB_OK);
    size_t peak = nb_alloc_stats_get().bytes_peak;
    size_t grown = peak > before ? peak - before : 0, weights = (size_t)B * H * T * T * 4;
    if (grown < weights / 4) check_passed_++;
    else CHECK_FAIL_("fused attention: the peak grew by %zu bytes (live %zu at start); one "
                     "weight matrix per head is %zu", grown, start.bytes_live, weights);
    nb_scope_end();
}

/* ---- bad input */

static void bad_inputs_are_refused_with_their_names(void) {
    nb_scope_begin();
    nb_tensor *q = nb_randn(NB_SHAPE(2, 2, 3, 4)), *k = nb_randn(NB_SHAPE(2, 2, 5, 4));
    nb_tensor *v = nb_randn(NB_SHAPE(2, 2, 5, 6));
    CHECK(nb_scaled_dot_product_attention(q, k, v, &(nb_sdpa_opts){.attn_mask = nb_zeros(NB_SHAPE(3, 4))}) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "attn_mask [3,4] does not broadcast to the scores [B,H,T,S] = [2,2,3,5]");
    CHECK(nb_scaled_dot_product_attention(q, k, v, &(nb_sdpa_opts){.key_padding_mask = nb_zeros(NB_SHAPE(2, 4))}) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "key_padding_mask [2,4] must be [batch, keys] = [2,5]");
    CHECK(nb_scaled_dot_product_attention(q, nb_randn(NB_SHAPE(2, 2, 5, 3)), v, NULL) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "do not agree");
    CHECK(nb_scaled_dot_product_attention(nb_randn(NB_SHAPE(2, 3, 4)), k, v, NULL) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "must be 4-D [batch, heads, length, width]");
    CHECK(nb_scaled_dot_product_attention(q, k, v, &(nb_sdpa_opts){.dropout_p = 1.0f}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "dropout_p 1 is outside [0, 1)");
    nb_tensor *m = nb_zeros(NB_SHAPE(3, 5));
    nb_set_requires_grad(m, true);
    CHECK(nb_scaled_dot_product_attention(q, k, v, &(nb_sdpa_opts){.attn_mask = m}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "attn_mask requires grad");
    CHECK(nb_scaled_dot_product_attention(NULL, k, v, NULL) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_NULL);
    nb_error_clear();
    nb_tensor *w = (nb_tensor *)1;
    CHECK(nb_scaled_dot_product_attention_weights(q, k, nb_randn(NB_SHAPE(2, 2, 4, 6)), NULL, &w) == NULL);
    CHECK(w == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "do not agree");
    nb_scope_end();
}

/* Every key masked: NaN, as torch's softmax over minus infinities. */
static void a_row_with_every_key_masked_is_nan(void) {
    nb_scope_begin();
    nb_tensor *q = nb_randn(NB_SHAPE(1, 1, 2, 2)), *k = nb_randn(NB_SHAPE(1, 1, 3, 2));
    nb_tensor *pad = nb_from_int32((const int32_t[]){1, 1, 1}, NB_SHAPE(1, 3));
    nb_tensor *out = nb_scaled_dot_product_attention(q, k, k, &(nb_sdpa_opts){.key_padding_mask = pad});
    float *o = host_vals(out);
    CHECK(isnan(o[0]) && isnan(o[3]));
    nb_scope_end();
}

/* One forward and backward with no scope open; the results freed. */
static void heap_run(void) {
    nb_tensor *q = nb_randn(NB_SHAPE(1, 2, 3, 4)), *m = nb_zeros(NB_SHAPE(3, 3));
    nb_set_requires_grad(q, true);
    nb_tensor *out = nb_scaled_dot_product_attention(q, q, q, &(nb_sdpa_opts){.attn_mask = m, .causal = true, .dropout_p = 0.1f});
    nb_tensor *s = nb_sum(out);
    CHECK_EQ_INT(nb_backward(s), NB_OK);
    nb_tensor *own[] = {q, m, out, s};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) nb_tensor_free(own[i]);
}

static void heap_mode_forward_and_backward_leave_nothing(void) {
    heap_run();
    size_t before = nb_alloc_stats_get().bytes_live;
    heap_run();
    CHECK_BYTES_BACK("attention forward and backward", before);
}

int main(void) {
    sdpa_matches_torch_through_both_paths();
    multihead_attention_matches_torch();
    multihead_attention_refuses_bad_sizes_and_masks();
    positions_match_torch();
    kv_cache_steps_equal_the_full_causal_forward();
    sequences_longer_than_the_positions_are_refused();
    gradients_match_finite_differences();
    dropout_draws_one_mask_on_both_paths();
    second_derivatives_equal_those_through_plain_ops();
    fused_path_keeps_no_weight_matrix();
    bad_inputs_are_refused_with_their_names();
    a_row_with_every_key_masked_is_nan();
    heap_mode_forward_and_backward_leave_nothing();
    return check_summary();
}
