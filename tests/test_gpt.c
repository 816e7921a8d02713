/*
 * test_gpt.c — the GPT of nabla/gpt.h (src/nn/gpt.c): torch's parameter names, a causal
 * forward, a tiny model's training lowering the loss, generation with the key/value cache
 * giving the uncached run's tokens (past the context too), sampling deterministic per seed,
 * top-k and top-p drawing only the tokens they allow, every refusal by name; and five
 * training steps equal to torch's from the same weights and batches (tests/golden/gpt.json,
 * tools/gen_golden_gpt.py): each loss and every parameter afterwards to 1e-5.
 */
#include "check.h"
#include "golden_json.h"
#include "tmpdir.h"

/* V 11, context 8, 2 blocks of 2 heads, width 16: small enough to train in a second. */
static nb_module *tiny(void) {
    nb_manual_seed(7);
    return nb_gpt_new((nb_gpt_opts){.vocab_size = 11, .context = 8, .n_layer = 2, .n_head = 2, .n_embd = 16});
}

static void gpt_has_torchs_names_and_sizes(void) {
    nb_module *m = tiny();
    CHECK(m != NULL);
    const char *names[] = {"wte.weight", "wpe.weight", "h.0.self_attn.in_proj_weight",
                           "h.1.self_attn.out_proj.bias", "h.1.linear1.weight", "h.1.norm2.bias",
                           "ln_f.weight", "lm_head.weight"};
    for (int i = 0; i < 8; i++) {
        CHECK(nb_module_find(m, names[i]) != NULL);
        if (!nb_module_find(m, names[i])) fprintf(stderr, "  missing %s\n", names[i]);
    }
    CHECK(nb_module_find(m, "lm_head.bias") == NULL); /* GPT-2's head has no bias */
    nb_error_clear();
    /* V E + T E + per block (4 E^2 + 4 E attention, 8 E^2 + 5 E MLP, 4 E norms) + 2 E + E V */
    int64_t e = 16, v = 11, t = 8, per_block = 12 * e * e + 13 * e;
    CHECK_EQ_INT(nb_module_num_elements(m), v * e + t * e + 2 * per_block + 2 * e + e * v);
    nb_gpt_opts o = nb_gpt_config(m);
    CHECK(o.dim_feedforward == 64 && o.context == 8 && o.n_layer == 2);
    nb_module_free(m);
}

static void gpt_forward_is_causal(void) {
    nb_module *m = tiny();
    nb_scope_begin();
    int32_t a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, b[8] = {1, 2, 3, 4, 9, 9, 9, 9};
    nb_tensor *la = nb_gpt_forward(m, nb_from_int32(a, 2, (int64_t[]){1, 8}));
    nb_tensor *lb = nb_gpt_forward(m, nb_from_int32(b, 2, (int64_t[]){1, 8}));
    CHECK(la && lb && nb_shape(la)[2] == 11);
    float *x = host_vals(la), *y = host_vals(lb);
    double first = 0, later = 0; /* positions 0..3 see the same tokens; 4..7 do not */
    for (int i = 0; i < 4 * 11; i++) first = fmax(first, fabs(x[i] - y[i]));
    for (int i = 4 * 11; i < 8 * 11; i++) later = fmax(later, fabs(x[i] - y[i]));
    CHECK(first == 0 && later > 1e-3);
    nb_scope_end();
    nb_module_free(m);
}

/* The stream 0 1 2 ... 9 2 3 ...: each next token is fixed by the last one. */
static void gpt_training_lowers_the_loss(void) {
    nb_module *m = tiny();
    nb_tensor *params[64];
    int n = nb_module_trainable_parameters(m, params, 64);
    nb_optim *o = nb_adamw_new(n, params, (nb_adamw_opts){.lr = 1e-2});
    nb_sched *s = nb_cosinelr_new(o, 60, 0);
    int32_t x[4 * 8], y[4 * 8];
    for (int b = 0; b < 4; b++)
        for (int t = 0; t < 8; t++) x[b * 8 + t] = 2 + (b + t) % 9, y[b * 8 + t] = 2 + (b + t + 1) % 9;
    nb_tensor *xt = nb_from_int32(x, 2, (int64_t[]){4, 8}), *yt = nb_from_int32(y, 2, (int64_t[]){4, 8});
    double first = 0, loss = 0;
    for (int step = 0; step < 60; step++) {
        CHECK_EQ_INT(nb_gpt_train_step(m, o, s, xt, yt, 1.0f, &loss), NB_OK);
        if (step == 0) first = loss;
    }
    CHECK(first > 1.5 && loss < 0.2 * first);
    if (!(loss < 0.2 * first)) fprintf(stderr, "  loss %g -> %g\n", first, loss);
    /* it has learnt the rule: greedy generation continues the cycle */
    int32_t prompt[2] = {3, 4}, out[6];
    CHECK_EQ_INT(nb_gpt_generate(m, prompt, 2, 6, &(nb_gpt_sample_opts){.greedy = true}, out), NB_OK);
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(out[i], 2 + (3 + i) % 9);
    CHECK(nb_module_is_training(m)); /* the mode is put back */
    nb_tensor_free(xt), nb_tensor_free(yt);
    nb_sched_free(s), nb_optim_free(o), nb_module_free(m);
}

static void cached_generation_gives_the_uncached_tokens(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    nb_module *m = tiny();
    int32_t prompt[3] = {5, 1, 7}, a[20], b[20];
    /* 20 tokens after 3 run 15 past the context of 8: the cache refills from the window */
    nb_gpt_sample_opts o = {.temperature = 0.8f, .top_k = 6, .seed = 42};
    CHECK_EQ_INT(nb_gpt_generate(m, prompt, 3, 20, &o, a), NB_OK);
    o.no_cache = true;
    CHECK_EQ_INT(nb_gpt_generate(m, prompt, 3, 20, &o, b), NB_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    o = (nb_gpt_sample_opts){.greedy = true};
    CHECK_EQ_INT(nb_gpt_generate(m, prompt, 3, 20, &o, a), NB_OK);
    o.no_cache = true;
    CHECK_EQ_INT(nb_gpt_generate(m, prompt, 3, 20, &o, b), NB_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* a prompt longer than the context is cropped to its last 8 tokens */
    int32_t longp[12] = {9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8};
    CHECK_EQ_INT(nb_gpt_generate(m, longp, 12, 5, &o, a), NB_OK);
    CHECK_EQ_INT(nb_gpt_generate(m, longp + 4, 8, 5, &o, b), NB_OK);
    CHECK(memcmp(a, b, 5 * sizeof *a) == 0);
    nb_module_free(m);
    CHECK_BYTES_BACK("gpt generation", before);
}

static void sampling_is_deterministic_per_seed(void) {
    nb_module *m = tiny();
    int32_t prompt[1] = {2}, a[24], b[24], c[24];
    nb_gpt_sample_opts o = {.seed = 1};
    CHECK_EQ_INT(nb_gpt_generate(m, prompt, 1, 24, &o, a), NB_OK);
    CHECK_EQ_INT(nb_gpt_generate(m, prompt, 1, 24, &o, b), NB_OK);
    o.seed = 2;
    CHECK_EQ_INT(nb_gpt_generate(m, prompt, 1, 24, &o, c), NB_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    nb_module_free(m);
}

static void top_k_and_top_p_draw_only_what_they_allow(void) {
    /* probabilities at temperature 1: 0.5 (id 3), 0.25 (ids 0 and 4, tied), 0 elsewhere */
    float logits[6] = {logf(0.25f), -INFINITY, -INFINITY, logf(0.5f), logf(0.25f), -INFINITY};
    int seen[6] = {0};
    for (int i = 0; i < 1000; i++) {
        double u = i / 1000.0;
        seen[nb_sample_token(logits, 6, NULL, u)]++;
        int k2 = nb_sample_token(logits, 6, &(nb_gpt_sample_opts){.top_k = 2}, u);
        CHECK(k2 == 3 || k2 == 0); /* of the tied 0 and 4, the lower id is kept */
        int p6 = nb_sample_token(logits, 6, &(nb_gpt_sample_opts){.top_p = 0.6f}, u);
        CHECK(p6 == 3 || p6 == 0); /* 0.5 < 0.6 needs a second token, 0.75 >= 0.6 does not a third */
        CHECK_EQ_INT(nb_sample_token(logits, 6, &(nb_gpt_sample_opts){.top_p = 0.5f}, u), 3);
        CHECK_EQ_INT(nb_sample_token(logits, 6, &(nb_gpt_sample_opts){.top_k = 1}, u), 3);
        CHECK_EQ_INT(nb_sample_token(logits, 6, &(nb_gpt_sample_opts){.greedy = true}, u), 3);
    }
    CHECK(seen[1] == 0 && seen[2] == 0 && seen[5] == 0);
    CHECK(abs(seen[3] - 500) <= 1 && abs(seen[0] - 250) <= 1 && abs(seen[4] - 250) <= 1);
    /* a low temperature sharpens: 0.5 vs 0.25 becomes 0.5^10 vs 2 0.25^10 */
    int hot = 0;
    for (int i = 0; i < 1000; i++)
        hot += nb_sample_token(logits, 6, &(nb_gpt_sample_opts){.temperature = 0.1f}, i / 1000.0) == 3;
    CHECK(hot >= 997);
}

static void gpt_refuses_bad_input_by_name(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    CHECK(nb_gpt_new((nb_gpt_opts){0}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "gpt: vocab_size 0 must be positive");
    CHECK(nb_gpt_new((nb_gpt_opts){.vocab_size = 5, .n_embd = 10, .n_head = 4}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "gpt: n_embd 10 must be divisible by n_head 4");
    CHECK(nb_gpt_new((nb_gpt_opts){.vocab_size = 5, .dropout = 1.0f}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "dropout 1 is outside [0, 1)");
    nb_module *m = tiny();
    nb_scope_begin();
    int32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK(nb_gpt_forward(m, nb_from_int32(ids, 2, (int64_t[]){1, 9})) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "a sequence of 9 tokens from position 0 is longer than the 8 positions");
    ids[2] = 11;
    CHECK(nb_gpt_forward(m, nb_from_int32(ids, 2, (int64_t[]){1, 8})) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "id 11 at [0,2] is out of range for 11 embeddings");
    CHECK(nb_gpt_forward(m, nb_from_int32(ids, 1, (int64_t[]){8})) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "gpt: ids [8] must be [B, T]");
    nb_tensor *x = nb_from_int32(ids, 2, (int64_t[]){1, 4}), *y = nb_from_int32(ids, 2, (int64_t[]){2, 2});
    CHECK(nb_gpt_loss(m, x, y) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "gpt_loss: targets [2,2] must have the shape of the ids [1,4]");
    nb_scope_end();
    int32_t out[4];
    CHECK_EQ_INT(nb_gpt_generate(m, ids, 0, 4, NULL, out), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "gpt_generate: the prompt is empty");
    CHECK_EQ_INT(nb_gpt_generate(m, ids, 4, 4, NULL, out), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "gpt_generate: prompt[2] = 11 is not below the vocabulary's 11 ids");
    ids[2] = 3;
    CHECK_EQ_INT(nb_gpt_generate(m, ids, 4, 4, &(nb_gpt_sample_opts){.top_p = 1.5f}, out), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "sample: top_p 1.5 is outside [0, 1]");
    CHECK_EQ_INT(nb_gpt_generate(m, ids, 4, 4, &(nb_gpt_sample_opts){.temperature = -1}, out), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "sample: temperature -1 must be finite and >= 0");
    float nan_logits[3] = {0, NAN, 1};
    CHECK_EQ_INT(nb_sample_token(nan_logits, 3, NULL, 0.5), -1);
    CHECK_ERROR(NB_ERR_ARG, "sample: logit 1 is nan");
    float none[2] = {-INFINITY, -INFINITY};
    CHECK_EQ_INT(nb_sample_token(none, 2, NULL, 0.5), -1);
    CHECK_ERROR(NB_ERR_ARG, "sample: every logit is -inf");
    nb_module_free(m);
    CHECK_BYTES_BACK("gpt errors", before);
}

static void sinusoidal_positions_train_too(void) {
    nb_manual_seed(3);
    nb_module *m = nb_gpt_new((nb_gpt_opts){.vocab_size = 7, .context = 6, .n_layer = 1, .n_head = 2,
                                            .n_embd = 8, .sinusoidal = true});
    CHECK(m && nb_module_find(m, "wpe.weight") == NULL);
    nb_error_clear();
    int32_t prompt[2] = {1, 2}, a[9], b[9];
    nb_gpt_sample_opts o = {.seed = 5};
    CHECK_EQ_INT(nb_gpt_generate(m, prompt, 2, 9, &o, a), NB_OK);
    o.no_cache = true;
    CHECK_EQ_INT(nb_gpt_generate(m, prompt, 2, 9, &o, b), NB_OK);
    CHECK(memcmp(a, b, sizeof a) == 0);
    nb_module_free(m);
}

/* The parameters after training equal torch's, but for the attention's key biases: the loss
 * does not depend on them (q.(k + b) adds q.b to every score of a row, which softmax drops), so
 * their gradient is rounding noise that Adam scales up to steps of lr, in torch as here. */
static void check_final_weights(nb_module *m, const json_t *final, int64_t e) {
    for (size_t i = 0; i < json_array_size(final); i++) {
        const json_t *w = json_array_get(final, i);
        const char *name = json_string_value(json_object_get(w, "name"));
        nb_tensor *t = nb_module_find(m, name);
        if (!strstr(name, "in_proj_bias")) {
            check_json_tensor(name, t, w, 1e-5);
            continue;
        }
        long n;
        double *want = json_doubles(w, &n);
        float *got = host_vals(t);
        CHECK_ARRAY(name, got, want, e, 1e-5, 1e-5);                 /* q */
        CHECK_ARRAY(name, got + 2 * e, want + 2 * e, e, 1e-5, 1e-5); /* v */
        free(want);
    }
}

static void gpt_trains_as_torch_does(void) {
    json_t *g = golden_load("tests/golden/gpt.json");
    if (!g) return;
    nb_gpt_opts o = {.vocab_size = json_integer_value(json_object_get(g, "vocab_size")),
                     .context = json_integer_value(json_object_get(g, "context")),
                     .n_layer = json_integer_value(json_object_get(g, "n_layer")),
                     .n_head = json_integer_value(json_object_get(g, "n_head")),
                     .n_embd = json_integer_value(json_object_get(g, "n_embd"))};
    nb_module *m = nb_gpt_new(o);
    check_and_load_entries("gpt", m, json_object_get(g, "params"), false); /* names and order too */
    int steps = (int)json_integer_value(json_object_get(g, "steps"));
    nb_gpt_optim_opts go = {.steps = steps, .warmup = (int)json_integer_value(json_object_get(g, "warmup")),
                            .lr = json_real_value(json_object_get(g, "lr"))};
    nb_sched *s = NULL;
    nb_optim *opt = nb_gpt_optim_new(m, &go, &s);
    CHECK(opt && s);
    for (int i = 0; opt && i < steps; i++) {
        nb_scope_begin();
        double loss = 0, want = json_real_value(json_array_get(json_object_get(g, "loss"), (size_t)i));
        CHECK_EQ_INT(nb_gpt_train_step(m, opt, s, json_tensor(json_array_get(json_object_get(g, "x"), (size_t)i)),
                                       json_tensor(json_array_get(json_object_get(g, "y"), (size_t)i)), 1.0f, &loss),
                     NB_OK);
        CHECK_NEAR(loss, want, 0, 1e-5);
        nb_scope_end();
    }
    check_final_weights(m, json_object_get(g, "final"), o.n_embd);
    nb_sched_free(s), nb_optim_free(opt), nb_module_free(m);
    json_decref(g);
}

/* nb_curves_set_names, which `nabla text gpt` uses for its per-step curves. */
static void curves_take_a_language_models_names(void) {
    nb_curves *c = nb_curves_new();
    for (int i = 0; i < 150; i++) nb_curves_add(c, 3.0f - 0.01f * i, i % 50 ? NAN : 3.1f, expf(3.0f - 0.01f * i), NAN);
    CHECK_EQ_INT(nb_curves_set_names(c, "step", "perplexity", "val"), NB_OK);
    CHECK_EQ_INT(nb_curves_write_csv(c, tpath("c.csv")), NB_OK);
    CHECK_EQ_INT(nb_curves_write_svg(c, tpath("c.svg"), "lm"), NB_OK);
    size_t n;
    char *csv = read_all(tpath("c.csv"), &n), *svg = read_all(tpath("c.svg"), &n);
    CHECK_STR_CONTAINS(csv, "step,train_loss,val_loss,train_perplexity,val_perplexity\n1,3,3.1,20.0855,\n2,2.99,,");
    CHECK_STR_CONTAINS(svg, ">Perplexity</text>");
    CHECK_STR_CONTAINS(svg, ">step</text>");
    CHECK_STR_CONTAINS(svg, ">val</text>");
    CHECK(!strstr(svg, "<circle")); /* 150 points: lines without dots */
    free(csv), free(svg);
    CHECK_EQ_INT(nb_curves_set_names(c, "a,b", NULL, NULL), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "curves_set_names: name \"a,b\" must have 1 to 31 bytes");
    CHECK_EQ_INT(nb_curves_set_names(c, NULL, "", NULL), NB_ERR_ARG);
    nb_error_clear();
    nb_curves_free(c);
}

int main(void) {
    if (!tmpdir_make("nb_test_gpt")) return 1;
    gpt_has_torchs_names_and_sizes();
    gpt_forward_is_causal();
    gpt_training_lowers_the_loss();
    cached_generation_gives_the_uncached_tokens();
    sampling_is_deterministic_per_seed();
    top_k_and_top_p_draw_only_what_they_allow();
    gpt_refuses_bad_input_by_name();
    sinusoidal_positions_train_too();
    gpt_trains_as_torch_does();
    curves_take_a_language_models_names();
    tmpdir_remove();
    return check_summary();
}
