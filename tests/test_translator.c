/*
 * test_translator.c — the encoder-decoder (src/nn/seq2seq.c) and the attention seams it
 * decodes through: MultiheadAttention with a KV cache gives the full causal forward's outputs
 * step by step; a transformer layer hands out its attention weights; the synthetic tasks; a
 * small translator learns to reverse short sequences in a few hundred steps; greedy decoding
 * with and without the cache chooses the same tokens and attends the same way; bad input is
 * refused by name.
 */
#include "check.h"

#include <time.h>

/* A MultiheadAttention [B, T, E] run causally at once and then with a KV cache: one token,
 * then two together (queries after cached positions), then the rest one by one. */
static void mha_with_a_cache_equals_the_full_causal_forward(void) {
    nb_manual_seed(3);
    nb_module *m = nb_multihead_attention_new(8, 2, (nb_mha_opts){.batch_first = true});
    nb_scope_begin();
    nb_tensor *x = nb_randn(3, (int64_t[]){2, 5, 8}), *full = NULL;
    nb_mha_inputs causal = {.is_causal = true};
    CHECK(nb_multihead_attention_forward(m, x, x, x, &causal, &full, NULL) == NB_OK);
    nb_kv_cache *c = nb_kv_cache_new(5);
    const int64_t cuts[4] = {0, 1, 3, 5};
    nb_tensor *parts[4] = {NULL};
    for (int i = 0; i < 3; i++) {
        nb_tensor *xi = nb_slice(x, 1, cuts[i], cuts[i + 1], 1);
        nb_mha_inputs in = {.is_causal = true, .cache = c};
        CHECK(nb_multihead_attention_forward(m, xi, xi, xi, &in, &parts[i], NULL) == NB_OK);
    }
    CHECK_EQ_INT(nb_kv_cache_len(c), 5);
    nb_tensor *steps = nb_concat(3, parts, 1);
    double want[80];
    float *f = host_vals(full);
    for (int i = 0; i < 80; i++) want[i] = f[i];
    CHECK_TENSOR("cached steps", steps, want, 80, 1e-5, 1e-5);
    /* past the cache's positions: refused by name, the cache unchanged */
    nb_tensor *one = nb_slice(x, 1, 0, 1, 1), *out = NULL;
    nb_mha_inputs in = {.is_causal = true, .cache = c};
    CHECK(nb_multihead_attention_forward(m, one, one, one, &in, &out, NULL) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "longer than the 5 positions");
    CHECK_EQ_INT(nb_kv_cache_len(c), 5);
    nb_kv_cache_free(c);
    nb_scope_end();
    nb_module_free(m);
}

/* nb_mha_inputs.weights: a decoder layer's cross-attention, per head, rows summing to 1 and
 * padding keys never attended. */
static void a_decoder_layer_hands_out_its_cross_attention(void) {
    nb_manual_seed(4);
    nb_module *m = nb_transformer_decoder_layer_new(8, 2, (nb_transformer_opts){.dim_feedforward = 16,
                                                                                .batch_first = true});
    nb_scope_begin();
    nb_tensor *tgt = nb_randn(3, (int64_t[]){2, 3, 8}), *mem = nb_randn(3, (int64_t[]){2, 4, 8}), *w = NULL;
    nb_tensor *pad = nb_from_int32((int32_t[]){0, 0, 0, 1, 0, 0, 0, 0}, 2, (int64_t[]){2, 4});
    nb_mha_inputs self = {.is_causal = true};
    nb_mha_inputs cross = {.key_padding_mask = pad, .per_head_weights = true, .weights = &w};
    CHECK(nb_transformer_decoder_layer_forward(m, tgt, mem, &self, &cross) != NULL);
    CHECK(w && nb_ndim(w) == 4 && nb_shape(w)[1] == 2 && nb_shape(w)[2] == 3 && nb_shape(w)[3] == 4);
    if (w) {
        float *v = host_vals(w);
        for (int r = 0; r < 12; r++) CHECK_NEAR(v[4 * r] + v[4 * r + 1] + v[4 * r + 2] + v[4 * r + 3], 1, 1e-5, 0);
        for (int r = 0; r < 6; r++) CHECK_EQ_INT(v[4 * r + 3] == 0.0f, 1); /* batch 0, key 3 pads */
    }
    nb_scope_end();
    nb_module_free(m);
}

static const nb_seq2seq_opts SMALL = {.vocab = 9, .bos = 1, .eos = 2, .d_model = 32, .nhead = 2,
                                      .num_encoder_layers = 1, .num_decoder_layers = 1,
                                      .dim_feedforward = 64, .max_len = 8};

static void task_batches_reverse_and_sort_with_bos_eos_and_padding(void) {
    nb_module *m = nb_seq2seq_new(SMALL);
    const nb_seq2seq_opts *o = nb_seq2seq_opts_of(m);
    nb_tensor *src, *in, *out;
    CHECK(nb_seq2seq_task_batch(NB_SEQ2SEQ_SORT, o, 16, 1, 5, 7, &src, &in, &out) == NB_OK);
    float *s = host_vals(src), *ti = host_vals(in), *to = host_vals(out);
    for (int i = 0; i < 16; i++) {
        int len = 0;
        while (len < 5 && s[i * 5 + len] != 0) len++;
        CHECK(len >= 1);
        CHECK_EQ_INT(ti[i * 6], 1);
        CHECK_EQ_INT(to[i * 6 + len], 2);
        float sum_s = 0, sum_t = 0;
        for (int j = 0; j < len; j++) {
            CHECK(s[i * 5 + j] >= 3 && s[i * 5 + j] < 9);
            CHECK_EQ_INT(ti[i * 6 + 1 + j], to[i * 6 + j]);
            if (j) CHECK(to[i * 6 + j] >= to[i * 6 + j - 1]);
            sum_s += s[i * 5 + j], sum_t += to[i * 6 + j];
        }
        CHECK_EQ_INT(sum_s, sum_t);
        for (int j = len + 1; j < 6; j++) CHECK_EQ_INT(to[i * 6 + j], 0);
    }
    nb_tensor_free(src), nb_tensor_free(in), nb_tensor_free(out);
    CHECK(nb_seq2seq_task_batch(NB_SEQ2SEQ_REVERSE, o, 4, 3, 3, 7, &src, &in, &out) == NB_OK);
    s = host_vals(src), to = host_vals(out);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) CHECK_EQ_INT(to[i * 4 + j], s[i * 3 + 2 - j]);
    nb_tensor_free(src), nb_tensor_free(in), nb_tensor_free(out);
    CHECK(nb_seq2seq_task_batch(NB_SEQ2SEQ_REVERSE, o, 4, 1, 8, 7, &src, &in, &out) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "max_len of the model (8)");
    CHECK(!src);
    nb_module_free(m);
}

/* Adam on fresh reversal batches; the loss of the last step. */
static float train(nb_module *m, nb_seq2seq_task task, int steps, double lr) {
    nb_tensor *params[64];
    int n = nb_module_parameters(m, params, 64);
    nb_optim *opt = nb_adam_new(n, params, (nb_adam_opts){.lr = lr});
    float loss = NAN;
    for (int step = 0; step < steps; step++) {
        nb_scope_begin();
        nb_tensor *src, *in, *out;
        nb_seq2seq_task_batch(task, nb_seq2seq_opts_of(m), 32, 1, 5, 1000 + (uint64_t)step, &src, &in, &out);
        nb_tensor *l = nb_seq2seq_loss(m, src, in, out);
        nb_optim_zero_grad(opt);
        if (l && nb_backward(l) == NB_OK) nb_optim_step(opt);
        loss = l ? nb_item(l) : NAN;
        nb_scope_end();
    }
    nb_optim_free(opt);
    return loss;
}

/* The tokens equal, the cross-attention within float rounding. */
static void compare_decodings(nb_tensor *cached, nb_tensor *plain, nb_tensor *w_cached, nb_tensor *w_plain,
                              const char *when) {
    CHECK_EQ_INT(nb_numel(cached), nb_numel(plain));
    CHECK_EQ_INT(nb_numel(w_cached), nb_numel(w_plain));
    int64_t n = nb_numel(cached), nw = nb_numel(w_plain);
    double *want = malloc(sizeof(double) * (size_t)(nw > n ? nw : n));
    float *p = host_vals(plain), *wp = host_vals(w_plain);
    for (int64_t i = 0; i < n; i++) want[i] = p[i];
    if (CHECK_TENSOR(when, cached, want, n, 0, 0)) fprintf(stderr, "  (tokens, %s)\n", when);
    for (int64_t i = 0; i < nw; i++) want[i] = wp[i];
    CHECK_TENSOR("cross-attention", w_cached, want, nw, 1e-5, 1e-4);
    free(want);
}

/* Greedy decoding with and without the cache: the same tokens, the same cross-attention. */
static void check_cache_agrees(nb_module *m, nb_tensor *src, const char *when) {
    nb_tensor *w_cached = NULL, *w_plain = NULL;
    nb_tensor *cached = nb_seq2seq_greedy(m, src, &(nb_seq2seq_decode_opts){.cross_attention = &w_cached});
    nb_tensor *plain = nb_seq2seq_greedy(m, src, &(nb_seq2seq_decode_opts){.no_cache = true,
                                                                            .cross_attention = &w_plain});
    CHECK(cached && plain && w_cached && w_plain);
    if (cached && plain && w_cached && w_plain) compare_decodings(cached, plain, w_cached, w_plain, when);
    nb_tensor_free(cached), nb_tensor_free(plain), nb_tensor_free(w_cached), nb_tensor_free(w_plain);
}

static void translator_learns_reversal_and_decodes_alike_with_and_without_the_cache(void) {
    nb_manual_seed(11);
    nb_module *m = nb_seq2seq_new(SMALL);
    CHECK(m != NULL);
    if (!m) return;
    const nb_seq2seq_opts *o = nb_seq2seq_opts_of(m);
    nb_tensor *src, *in, *out;
    CHECK(nb_seq2seq_task_batch(NB_SEQ2SEQ_REVERSE, o, 64, 1, 5, 99, &src, &in, &out) == NB_OK);
    nb_module_train(m, false);
    check_cache_agrees(m, src, "untrained");
    nb_module_train(m, true);
    clock_t t0 = clock();
    float loss = train(m, NB_SEQ2SEQ_REVERSE, 500, 3e-3);
    nb_module_train(m, false);
    nb_tensor *pred = nb_seq2seq_greedy(m, src, NULL);
    double exact = 0, token = 0;
    CHECK(nb_seq2seq_accuracy(pred, out, &exact, &token) == NB_OK);
    printf("reversal after 500 steps (%.1f s of CPU): loss %.4f, exact %.3f, token %.3f on 64 held-out\n",
           (double)(clock() - t0) / CLOCKS_PER_SEC, loss, exact, token);
    CHECK(loss < 0.1f);
    CHECK(exact >= 0.9);
    CHECK(token >= 0.95);
    check_cache_agrees(m, src, "trained");
    nb_tensor_free(pred);
    nb_tensor_free(src), nb_tensor_free(in), nb_tensor_free(out);
    nb_module_free(m);
}

static void accuracy_counts_rows_and_tokens_up_to_eos(void) {
    /* answers "5 4 EOS" and "3 EOS"; predictions right, then "5 6" (4 wrong, EOS missing)
     * and "3 5" (EOS wrong): no row right, 2 tokens of 5 */
    nb_tensor *y = nb_from_int32((int32_t[]){5, 4, 2, 3, 2, 0}, 2, (int64_t[]){2, 3});
    nb_tensor *good = nb_from_int32((int32_t[]){5, 4, 2, 3, 2, 0}, 2, (int64_t[]){2, 3});
    nb_tensor *bad = nb_from_int32((int32_t[]){5, 6, 3, 5}, 2, (int64_t[]){2, 2});
    double exact, token;
    CHECK(nb_seq2seq_accuracy(good, y, &exact, &token) == NB_OK);
    CHECK_NEAR(exact, 1, 0, 0); CHECK_NEAR(token, 1, 0, 0);
    CHECK(nb_seq2seq_accuracy(bad, y, &exact, &token) == NB_OK);
    CHECK_NEAR(exact, 0, 0, 0); CHECK_NEAR(token, 2.0 / 5, 1e-12, 0);
    nb_tensor_free(y), nb_tensor_free(good), nb_tensor_free(bad);
}

static void translator_refuses_bad_ids_and_options_by_name(void) {
    nb_module *m = nb_seq2seq_new(SMALL);
    nb_scope_begin();
    nb_tensor *src = nb_from_int32((int32_t[]){3, 4, 0, 5, 0, 0}, 2, (int64_t[]){2, 3});
    nb_tensor *tgt = nb_from_int32((int32_t[]){1, 4, 1, 5}, 2, (int64_t[]){2, 2});
    CHECK(nb_seq2seq_forward(m, src, tgt) != NULL);
    nb_tensor *oov = nb_from_int32((int32_t[]){3, 12, 0, 5, 0, 0}, 2, (int64_t[]){2, 3});
    CHECK(!nb_seq2seq_forward(m, oov, tgt));
    CHECK_ERROR(NB_ERR_ARG, "id 12 at [0,1] is out of range for 9 embeddings");
    CHECK(!nb_seq2seq_greedy(m, oov, NULL));
    CHECK_ERROR(NB_ERR_ARG, "id 12");
    nb_tensor *empty = nb_zeros_dtype(NB_I32, 2, (int64_t[]){2, 0});
    CHECK(!nb_seq2seq_forward(m, empty, tgt));
    CHECK_ERROR(NB_ERR_ARG, "src [2,0] is an empty sequence");
    nb_tensor *blank = nb_from_int32((int32_t[]){3, 4, 0, 0, 0, 0}, 2, (int64_t[]){2, 3});
    CHECK(!nb_seq2seq_forward(m, blank, tgt));
    CHECK_ERROR(NB_ERR_ARG, "source row 1 of [2,3] is all padding");
    nb_tensor *longer = nb_full_dtype(NB_I32, 2, (int64_t[]){2, 9}, 3);
    CHECK(!nb_seq2seq_forward(m, longer, tgt));
    CHECK_ERROR(NB_ERR_ARG, "a sequence of 9 tokens from position 0 is longer than the 8 positions");
    nb_tensor *floats = nb_zeros(2, (int64_t[]){2, 3});
    CHECK(!nb_seq2seq_forward(m, floats, tgt));
    CHECK_ERROR(NB_ERR_SHAPE, "src float32 [2,3] must be int32 [B, L]");
    nb_tensor *other_b = nb_from_int32((int32_t[]){1, 4}, 2, (int64_t[]){1, 2});
    CHECK(!nb_seq2seq_forward(m, src, other_b));
    CHECK_ERROR(NB_ERR_SHAPE, "with the source's B");
    CHECK(!nb_seq2seq_greedy(m, src, &(nb_seq2seq_decode_opts){.max_tokens = 9}));
    CHECK_ERROR(NB_ERR_ARG, "max_tokens 9 is outside [1, max_len = 8]");
    nb_module *lin = nb_linear_new(2, 2, true);
    CHECK(!nb_seq2seq_forward(lin, src, tgt));
    CHECK_ERROR(NB_ERR_ARG, "not a Seq2SeqTransformer");
    nb_module_free(lin);
    nb_scope_end();
    nb_module_free(m);
    CHECK(!nb_seq2seq_new((nb_seq2seq_opts){.vocab = 9, .bos = 1, .eos = 1}));
    CHECK_ERROR(NB_ERR_ARG, "bos 1 and eos 1 must differ");
    CHECK(!nb_seq2seq_new((nb_seq2seq_opts){.vocab = 2, .bos = 1, .eos = 2}));
    CHECK_ERROR(NB_ERR_ARG, "vocab 2 must be at least 3");
    CHECK(!nb_seq2seq_new((nb_seq2seq_opts){.vocab = 9, .bos = 1, .eos = 2, .d_model = 30, .nhead = 4}));
    CHECK_ERROR(NB_ERR_ARG, "d_model 30 must be divisible by nhead 4");
}

int main(void) {
    mha_with_a_cache_equals_the_full_causal_forward();
    a_decoder_layer_hands_out_its_cross_attention();
    task_batches_reverse_and_sort_with_bos_eos_and_padding();
    accuracy_counts_rows_and_tokens_up_to_eos();
    translator_refuses_bad_ids_and_options_by_name();
    translator_learns_reversal_and_decodes_alike_with_and_without_the_cache();
    return check_summary();
}
