/*
 * test_seq_errors.c — bad input to the sequence layers, each refused with an error that names
 * it (and no crash), for the cases the layers' own tests leave out: empty sequences (positions,
 * the KV cache, attention with no keys), masks of the wrong shape reaching the attention
 * through the transformer layers (the encoder's padding, the decoder's target and memory
 * masks), a memory of another batch, and tokens that are not UTF-8 given to a vocabulary.
 * Out-of-vocabulary ids, over-long sequences, non-UTF-8 files and the tokenizers are in
 * test_embedding.c, test_attention.c, test_text.c, test_bpe.c and test_translator.c.
 */
#include "check.h"

static void empty_sequences_are_named_as_empty(void) {
    nb_scope_begin();
    nb_tensor *table = nb_sinusoidal_positions(8, 4);
    CHECK(!nb_positions_slice(table, 0, 0));
    CHECK_ERROR(NB_ERR_ARG, "positions_slice: an empty sequence (0 tokens)");
    CHECK(!nb_positions_slice(table, -1, 2));
    CHECK_ERROR(NB_ERR_ARG, "positions_slice: position -1 is negative");
    CHECK(!nb_position_ids(3, 0, 8));
    CHECK_ERROR(NB_ERR_ARG, "position_ids: an empty sequence (0 tokens)");
    nb_kv_cache *c = nb_kv_cache_new(4);
    nb_tensor *none = nb_zeros(4, (int64_t[]){1, 2, 0, 4}), *k = NULL, *v = NULL;
    CHECK(nb_kv_cache_append(c, none, none, &k, &v) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "kv_cache_append: an empty sequence (0 tokens)");
    CHECK(!k && !v && nb_kv_cache_len(c) == 0);
    nb_kv_cache_free(c);
    nb_scope_end();
}

static void attention_with_no_keys_is_refused(void) {
    nb_module *mha = nb_multihead_attention_new(8, 2, (nb_mha_opts){.batch_first = true});
    nb_module *dec = nb_transformer_decoder_layer_new(8, 2, (nb_transformer_opts){.dim_feedforward = 16,
                                                                                  .batch_first = true});
    nb_scope_begin();
    nb_tensor *x = nb_randn(3, (int64_t[]){2, 3, 8}), *empty = nb_zeros(3, (int64_t[]){2, 0, 8});
    nb_tensor *out = NULL, *w = NULL;
    CHECK(nb_multihead_attention_forward(mha, x, empty, empty, NULL, &out, &w) == NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "MultiheadAttention: key [2,0,8] is an empty sequence: no key to attend to");
    CHECK(!out && !w);
    CHECK(!nb_transformer_decoder_layer_forward(dec, x, empty, NULL, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "key [2,0,8] is an empty sequence");
    /* the op, with and without the weights (it gave NaN, and 0, for every query) */
    nb_tensor *q = nb_randn(4, (int64_t[]){1, 2, 3, 4}), *none = nb_zeros(4, (int64_t[]){1, 2, 0, 4});
    CHECK(!nb_scaled_dot_product_attention(q, none, none, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "scaled_dot_product_attention: k [1,2,0,4] is an empty sequence");
    CHECK(!nb_scaled_dot_product_attention_weights(q, none, none, NULL, &w) && !w);
    CHECK_ERROR(NB_ERR_SHAPE, "k [1,2,0,4] is an empty sequence");
    /* no queries is no work, as in torch: an empty result */
    CHECK(nb_multihead_attention_forward(mha, empty, x, x, NULL, &out, NULL) == NB_OK);
    CHECK(out && nb_numel(out) == 0);
    nb_scope_end();
    nb_module_free(mha);
    nb_module_free(dec);
}

static void masks_of_the_wrong_shape_are_named_through_the_layers(void) {
    nb_transformer_opts o = {.dim_feedforward = 16, .batch_first = true};
    nb_module *enc = nb_transformer_encoder_layer_new(8, 2, o), *dec = nb_transformer_decoder_layer_new(8, 2, o);
    nb_module *mha = nb_multihead_attention_new(8, 2, (nb_mha_opts){.batch_first = true});
    nb_scope_begin();
    nb_tensor *x = nb_randn(3, (int64_t[]){2, 3, 8}), *mem = nb_randn(3, (int64_t[]){2, 5, 8}), *out = NULL;
    nb_mha_inputs kpm_wide = {.key_padding_mask = nb_zeros_dtype(NB_I32, 2, (int64_t[]){2, 4})};
    CHECK(!nb_transformer_encoder_layer_forward(enc, x, &kpm_wide));
    CHECK_ERROR(NB_ERR_SHAPE, "key_padding_mask [2,4] must be [batch, keys] = [2,3]");
    nb_mha_inputs kpm_1d = {.key_padding_mask = nb_zeros_dtype(NB_I32, 1, (int64_t[]){3})};
    CHECK(nb_multihead_attention_forward(mha, x, x, x, &kpm_1d, &out, NULL) == NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "key_padding_mask [3] must be [batch, keys] = [2,3]");
    nb_mha_inputs kpm_3d = {.key_padding_mask = nb_zeros_dtype(NB_I32, 3, (int64_t[]){2, 3, 1})};
    CHECK(nb_multihead_attention_forward(mha, x, x, x, &kpm_3d, &out, NULL) == NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "key_padding_mask [2,3,1] must be [batch, keys] = [2,3]");
    nb_mha_inputs batch_mask = {.attn_mask = nb_zeros(3, (int64_t[]){2, 3, 3})}; /* B, not B * heads */
    CHECK(nb_multihead_attention_forward(mha, x, x, x, &batch_mask, &out, NULL) == NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "attn_mask [2,3,3] must be [T, S] = [3,3] or [B*num_heads, T, S] = [4,3,3]");
    /* the decoder: a memory padding mask of the target's length, a memory mask [T, T], a target
     * mask [T, S] */
    nb_mha_inputs mem_kpm = {.key_padding_mask = nb_zeros_dtype(NB_I32, 2, (int64_t[]){2, 3})};
    CHECK(!nb_transformer_decoder_layer_forward(dec, x, mem, NULL, &mem_kpm));
    CHECK_ERROR(NB_ERR_SHAPE, "key_padding_mask [2,3] must be [batch, keys] = [2,5]");
    nb_mha_inputs mem_mask = {.attn_mask = nb_zeros(2, (int64_t[]){3, 3})};
    CHECK(!nb_transformer_decoder_layer_forward(dec, x, mem, NULL, &mem_mask));
    CHECK_ERROR(NB_ERR_SHAPE, "attn_mask [3,3] must be [T, S] = [3,5]");
    nb_mha_inputs tgt_mask = {.attn_mask = nb_zeros(2, (int64_t[]){3, 5})};
    CHECK(!nb_transformer_decoder_layer_forward(dec, x, mem, &tgt_mask, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "attn_mask [3,5] must be [T, S] = [3,3]");
    CHECK(!nb_transformer_decoder_layer_forward(dec, x, nb_randn(3, (int64_t[]){3, 5, 8}), NULL, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "key [3,5,8] and value [3,5,8]: key and value must have one shape and query's batch");
    CHECK(!nb_transformer_decoder_layer_forward(dec, x, nb_randn(3, (int64_t[]){2, 5, 6}), NULL, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "key [2,5,6] must be [B, L, E] with E = 8");
    /* the op itself: a padding mask of rank 3 */
    nb_tensor *q = nb_randn(4, (int64_t[]){1, 2, 3, 4});
    nb_sdpa_opts so = {.key_padding_mask = nb_zeros_dtype(NB_I32, 3, (int64_t[]){1, 1, 3})};
    CHECK(!nb_scaled_dot_product_attention(q, q, q, &so));
    CHECK_ERROR(NB_ERR_SHAPE, "scaled_dot_product_attention: key_padding_mask [1,1,3] must be [batch, keys] = [1,3]");
    nb_scope_end();
    nb_module_free(enc), nb_module_free(dec), nb_module_free(mha);
}

static void a_vocabulary_refuses_tokens_that_are_not_utf8(void) {
    const char *tokens[3] = {"ok", "caf\xc3\xa9", "caf\xe9"}; /* UTF-8 é, then Latin-1 é */
    CHECK(!nb_vocab_build(tokens, 3, (nb_vocab_opts){0}));
    CHECK_ERROR(NB_ERR_ARG, "vocab_build: tokens[2]: byte 3 is not UTF-8 (0xE9");
    nb_vocab *v = nb_vocab_build(tokens, 2, (nb_vocab_opts){0});
    CHECK(v && nb_vocab_size(v) == 4);
    nb_vocab_free(v);
}

int main(void) {
    empty_sequences_are_named_as_empty();
    attention_with_no_keys_is_refused();
    masks_of_the_wrong_shape_are_named_through_the_layers();
    a_vocabulary_refuses_tokens_that_are_not_utf8();
    return check_summary();
}
