/*
 * test_transformer.c — TransformerEncoderLayer and TransformerDecoderLayer (src/nn/
 * transformer.c): torch's parameter names and order, outputs and every gradient (input,
 * memory, each parameter) to 1e-5 from tests/golden/attention.json (tools/
 * gen_golden_attention.py): post- and pre-norm, relu and gelu, layer_norm_eps, batch_first,
 * key padding on the source and the memory, a causal target; bad sizes refused by name; model
 * files build MultiheadAttention and encoder layers.
 */
#include "check.h"
#include "golden_json.h"

#define GOLDEN_PATH "tests/golden/attention.json"
#define TOL 1e-5

static nb_tensor *leaf(const json_t *c, const char *key) {
    nb_tensor *t = json_tensor(json_object_get(c, key));
    if (t) nb_set_requires_grad(t, true);
    return t;
}

static int64_t json_int(const json_t *c, const char *key) {
    return (int64_t)json_integer_value(json_object_get(c, key));
}

static void layer_case(const json_t *c) {
    char what[160];
    const char *name = json_string_value(json_object_get(c, "name"));
    bool decoder = json_is_true(json_object_get(c, "decoder"));
    nb_transformer_opts o = {.dim_feedforward = json_int(c, "dim_feedforward"),
                             .gelu = json_is_true(json_object_get(c, "gelu")),
                             .layer_norm_eps = (float)json_real_value(json_object_get(c, "eps")),
                             .batch_first = json_is_true(json_object_get(c, "batch_first")),
                             .norm_first = json_is_true(json_object_get(c, "norm_first"))};
    nb_module *m = decoder ? nb_transformer_decoder_layer_new(json_int(c, "d_model"), json_int(c, "nhead"), o)
                           : nb_transformer_encoder_layer_new(json_int(c, "d_model"), json_int(c, "nhead"), o);
    CHECK(m != NULL);
    if (!m) return;
    check_and_load_entries(name, m, json_object_get(c, "params"), false);
    nb_scope_begin();
    nb_tensor *x = leaf(c, "input"), *mem = leaf(c, "memory");
    nb_mha_inputs pad = {.key_padding_mask = json_tensor(json_object_get(c, "key_padding_mask"))};
    nb_mha_inputs causal = {.is_causal = json_is_true(json_object_get(c, "causal_tgt"))};
    nb_tensor *out = decoder ? nb_transformer_decoder_layer_forward(m, x, mem, &causal, &pad)
                             : nb_transformer_encoder_layer_forward(m, x, &pad);
    CHECK(out != NULL);
    CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(out, json_tensor(json_object_get(c, "R"))))), NB_OK);
    snprintf(what, sizeof what, "%s: out", name);
    check_json_tensor(what, out, json_object_get(c, "out"), TOL);
    snprintf(what, sizeof what, "%s: grad_input", name);
    check_json_tensor(what, nb_grad(x), json_object_get(c, "grad_input"), TOL);
    if (decoder) {
        snprintf(what, sizeof what, "%s: grad_memory", name);
        check_json_tensor(what, nb_grad(mem), json_object_get(c, "grad_memory"), TOL);
    }
    check_entries(name, "grad of", m, json_object_get(c, "grads"), true, TOL);
    nb_scope_end();
    nb_module_free(m);
}

static void layers_match_torch(void) {
    golden_each_case(GOLDEN_PATH, "layers", 4, layer_case);
}

/* nb_module_forward / forward_n run the layers with no masks; dropout acts in training only. */
static void module_forwards_run_and_dropout_is_off_in_eval(void) {
    nb_module *enc = nb_transformer_encoder_layer_new(8, 2, (nb_transformer_opts){.dim_feedforward = 16, .dropout = 0.5f});
    nb_module *dec = nb_transformer_decoder_layer_new(8, 2, (nb_transformer_opts){.dim_feedforward = 16});
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(4, 2, 8)), *mem = nb_randn(NB_SHAPE(3, 2, 8)), *y = NULL;
    nb_module_train(enc, false);
    nb_tensor *a = nb_module_forward(enc, x), *b = nb_module_forward(enc, x);
    float *va = host_vals(a), *vb = host_vals(b);
    double want[64];
    for (int i = 0; i < 64; i++) want[i] = vb[i];
    CHECK_ARRAY("eval: two forwards agree", va, want, 64, 0, 0);
    nb_module_train(enc, true);
    float *vc = host_vals(nb_module_forward(enc, x));
    int differ = 0;
    for (int i = 0; i < 64; i++) differ += vc[i] != va[i];
    CHECK(differ > 0);
    CHECK_EQ_INT(nb_module_forward_n(dec, 2, (nb_tensor *[]){x, mem}, 1, &y), NB_OK);
    CHECK(y != NULL && nb_ndim(y) == 3 && nb_shape(y)[0] == 4);
    nb_scope_end();
    nb_module_free(enc), nb_module_free(dec);
}

static void bad_sizes_are_refused_with_their_names(void) {
    CHECK(nb_transformer_encoder_layer_new(10, 4, (nb_transformer_opts){0}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "TransformerEncoderLayer: d_model 10 must be divisible by nhead 4");
    CHECK(nb_transformer_decoder_layer_new(8, 0, (nb_transformer_opts){0}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "TransformerDecoderLayer: d_model 8, nhead 0 and dim_feedforward 2048 must be positive");
    nb_module *enc = nb_transformer_encoder_layer_new(8, 2, (nb_transformer_opts){.dim_feedforward = 4});
    nb_scope_begin();
    nb_tensor *x = nb_randn(NB_SHAPE(4, 2, 8));
    nb_mha_inputs bad = {.attn_mask = nb_zeros(NB_SHAPE(3, 4))};
    CHECK(nb_transformer_encoder_layer_forward(enc, x, &bad) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "attn_mask [3,4] must be [T, S] = [4,4]");
    nb_scope_end();
    nb_module_free(enc);
}

static void model_file_builds_attention_and_encoder_layers(void) {
    nb_module *m = nb_model_from_json(
        "{\"layers\": [{\"type\": \"multihead_attention\", \"embed_dim\": 8, \"num_heads\": 2, "
        "\"batch_first\": true}, {\"type\": \"transformer_encoder_layer\", \"d_model\": 8, "
        "\"nhead\": 4, \"dim_feedforward\": 16, \"activation\": \"gelu\", \"norm_first\": true, "
        "\"batch_first\": true}]}");
    CHECK(m != NULL);
    if (!m) return;
    CHECK(nb_module_find(m, "0.in_proj_weight") != NULL && nb_module_find(m, "0.out_proj.bias") != NULL);
    CHECK(nb_module_find(m, "1.self_attn.in_proj_weight") != NULL);
    CHECK(nb_module_find(m, "1.linear1.weight") != NULL && nb_module_find(m, "1.norm2.bias") != NULL);
    nb_scope_begin();
    nb_tensor *y = nb_module_forward(m, nb_randn(NB_SHAPE(2, 5, 8)));
    CHECK(y && nb_ndim(y) == 3 && nb_shape(y)[0] == 2 && nb_shape(y)[1] == 5 && nb_shape(y)[2] == 8);
    nb_scope_end();
    nb_module_free(m);
    CHECK(nb_model_from_json("{\"layers\": [{\"type\": \"transformer_encoder_layer\", "
                             "\"d_model\": 8, \"nhead\": 2, \"activation\": \"tanh\"}]}") == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "'activation' must be \"relu\" or \"gelu\"");
    CHECK(nb_model_from_json("{\"layers\": [{\"type\": \"multihead_attention\", "
                             "\"embed_dim\": 9, \"num_heads\": 2}]}") == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "embed_dim 9 must be divisible by num_heads 2");
    nb_error_clear();
}

int main(void) {
    layers_match_torch();
    module_forwards_run_and_dropout_is_off_in_eval();
    bad_sizes_are_refused_with_their_names();
    model_file_builds_attention_and_encoder_layers();
    return check_summary();
}
