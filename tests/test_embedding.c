/*
 * test_embedding.c — nb_embedding and the Embedding module (src/ops/embedding.c,
 * src/nn/embedding.c): torch's outputs and weight gradients (repeated ids add up, the padding
 * row gets none) from tests/golden/rnn.json, the gradient differentiated again, the module's
 * initialisation and repr, max_norm's renormalisation in place, and ids that are out of range, negative or of the wrong dtype
 * refused with messages naming the id and its position.
 */
#include "check.h"
#include "golden_json.h"

#define GOLDEN_PATH "tests/golden/rnn.json"

static void embedding_case(const json_t *c) {
    const char *name = json_string_value(json_object_get(c, "name"));
    char what[160];
    nb_scope_begin();
    nb_tensor *w = json_tensor(json_object_get(c, "weight"));
    nb_tensor *ids = json_tensor(json_object_get(c, "ids"));
    nb_tensor *r = json_tensor(json_object_get(c, "R"));
    nb_set_requires_grad(w, true);
    const json_t *pad = json_object_get(c, "padding_idx");
    const json_t *max_norm = json_object_get(c, "max_norm");
    nb_embedding_opts opts = {.padding = pad != NULL, .padding_idx = (int64_t)json_integer_value(pad),
                              .max_norm = (float)json_number_value(max_norm)};
    nb_tensor *out = nb_embedding(ids, w, &opts);
    snprintf(what, sizeof what, "%s: output", name);
    check_json_tensor(what, out, json_object_get(c, "output"), 1e-6);
    CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(out, r))), NB_OK);
    snprintf(what, sizeof what, "%s: weight gradient", name);
    check_json_tensor(what, nb_grad(w), json_object_get(c, "grad_weight"), 1e-6);
    if (max_norm) { /* the rows used, renormalised in place */
        snprintf(what, sizeof what, "%s: weight after max_norm", name);
        check_json_tensor(what, w, json_object_get(c, "weight_after"), 1e-6);
    }
    nb_scope_end();
}

static void embeddings_match_torch(void) {
    golden_each_case(GOLDEN_PATH, "embeddings", 4, embedding_case);
}

/* Only the rows used get a gradient, the padding row none, even when it is used. */
static void gradient_reaches_only_the_rows_used(void) {
    nb_scope_begin();
    nb_tensor *w = nb_randn(NB_SHAPE(5, 2));
    nb_set_requires_grad(w, true);
    nb_tensor *ids = nb_from_int32((const int32_t[]){3, 1, 3, 0}, 1, (const int64_t[]){4});
    nb_tensor *out = nb_embedding(ids, w, &(nb_embedding_opts){.padding = true, .padding_idx = 1});
    CHECK_EQ_INT(nb_backward(nb_sum(out)), NB_OK);
    float *g = host_vals(nb_grad(w)), *o = host_vals(out), *wv = host_vals(w);
    const float want[10] = {1, 1, 0, 0, 0, 0, 2, 2, 0, 0};
    for (int i = 0; i < 10; i++) CHECK_NEAR(g[i], want[i], 0, 0);
    CHECK_NEAR(o[2], wv[2], 0, 0); /* the padding row is read as it is */
    nb_scope_end();
}

/* The weight's gradient is made of ops, so it is differentiated again (create_graph). */
static void gradient_is_differentiable_again(void) {
    nb_scope_begin();
    nb_tensor *w = nb_randn(NB_SHAPE(4, 3)), *grad = NULL;
    nb_set_requires_grad(w, true);
    nb_tensor *ids = nb_from_int32((const int32_t[]){2, 2, 0}, 1, (const int64_t[]){3});
    nb_tensor *out = nb_embedding(ids, w, &(nb_embedding_opts){.padding = true, .padding_idx = 0});
    nb_tensor *loss = nb_sum(nb_mul(out, out)); /* d/dw = 2 w at the rows used */
    CHECK_EQ_INT(nb_autograd_grad(1, &loss, NULL, 1, &w, &grad, &(nb_grad_options){.create_graph = true}), NB_OK);
    CHECK(nb_requires_grad(grad));
    CHECK_EQ_INT(nb_backward(nb_sum(grad)), NB_OK); /* d/dw sum(2 w rows) = 2 per use */
    float *g2 = host_vals(nb_grad(w));
    const float want[12] = {0, 0, 0, 0, 0, 0, 4, 4, 4, 0, 0, 0};
    for (int i = 0; i < 12; i++) CHECK_NEAR(g2[i], want[i], 0, 0);
    nb_scope_end();
}

static void module_draws_normal_weights_with_a_zero_padding_row(void) {
    nb_manual_seed(5);
    nb_module *m = nb_embedding_new(100, 8, (nb_embedding_opts){.padding = true, .padding_idx = -1});
    CHECK(m != NULL);
    const char *name = NULL;
    nb_tensor *w = nb_module_param(m, 0, &name);
    CHECK(name && !strcmp(name, "weight"));
    CHECK_EQ_INT(nb_size(w, 0), 100);
    float *v = host_vals(w);
    double sum = 0, sq = 0;
    for (int i = 0; i < 99 * 8; i++) sum += v[i], sq += (double)v[i] * v[i];
    CHECK_NEAR(sum / (99 * 8), 0, 0.15, 0);
    CHECK_NEAR(sqrt(sq / (99 * 8)), 1, 0.15, 0);
    for (int i = 99 * 8; i < 800; i++) CHECK_NEAR(v[i], 0, 0, 0);
    FILE *f = tmpfile();
    nb_module_fprint(f, m);
    rewind(f);
    char text[128] = "";
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    CHECK_STR_CONTAINS(text, "Embedding(100, 8, padding_idx=99)");
    nb_scope_begin();
    nb_tensor *ids = nb_from_int32((const int32_t[]){1, 2, 3, 4, 5, 6}, 2, (const int64_t[]){2, 3});
    nb_tensor *out = nb_module_forward(m, ids);
    CHECK(out && nb_ndim(out) == 3 && nb_shape(out)[2] == 8);
    nb_scope_end();
    nb_module_free(m);
}

static void bad_ids_are_refused_naming_the_id_and_its_place(void) {
    nb_scope_begin();
    nb_tensor *w = nb_randn(NB_SHAPE(10, 3));
    nb_tensor *ids = nb_from_int32((const int32_t[]){1, 2, 3, 4, 12, 5}, 2, (const int64_t[]){2, 3});
    CHECK(nb_embedding(ids, w, NULL) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "embedding: id 12 at [1,1] is out of range for 10 embeddings");
    nb_tensor *neg = nb_from_int32((const int32_t[]){0, -1}, 1, (const int64_t[]){2});
    CHECK(nb_embedding(neg, w, NULL) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "id -1 at [1]");
    CHECK(nb_embedding(nb_zeros(NB_SHAPE(2)), w, NULL) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_DTYPE);
    CHECK_STR_CONTAINS(nb_error_message(), "embedding: ids must be int32, got float32");
    nb_tensor *ok = nb_from_int32((const int32_t[]){0}, 1, (const int64_t[]){1});
    CHECK(nb_embedding(ok, nb_randn(NB_SHAPE(3)), NULL) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_SHAPE);
    CHECK(nb_embedding(ok, w, &(nb_embedding_opts){.padding = true, .padding_idx = 10}) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "padding_idx 10 must be within num_embeddings (10)");
    nb_error_clear();
    CHECK(nb_embedding(NULL, w, NULL) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_NULL);
    nb_scope_end();
    CHECK(nb_embedding_new(0, 3, (nb_embedding_opts){0}) == NULL);
    CHECK(nb_embedding_new(4, 3, (nb_embedding_opts){.padding = true, .padding_idx = -5}) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_ARG);
    nb_error_clear();
}

int main(void) {
    embeddings_match_torch();
    gradient_reaches_only_the_rows_used();
    gradient_is_differentiable_again();
    module_draws_normal_weights_with_a_zero_padding_row();
    bad_ids_are_refused_naming_the_id_and_its_place();
    return check_summary();
}
