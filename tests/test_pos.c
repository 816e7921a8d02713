/*
 * test_pos.c — part-of-speech tagging's pieces: Brown's base tags (fw-, -tl, -hl, -nc left
 * out; compound tags kept whole), the held-out split, named-entity tags read off the tags, a
 * word's shape and suffix; the tagger (src/nn/tagger.c), BiLSTM and transformer, learning a
 * made-up task whose tags need the word before, its loss ignoring padding, and its refusals.
 */
#include "check.h"

static const char *base(const char *tag) {
    static char out[64];
    return nb_brown_base_tag(tag, out, sizeof out) == NB_OK ? out : "(error)";
}

static void base_tag_leaves_out_title_headline_cited_and_foreign_marks(void) {
    const char *cases[][2] = {{"np-tl", "np"}, {"nn-tl-hl", "nn"}, {"nn-hl-tl", "nn"}, {".-hl", "."},
                              {"fw-nns", "nns"}, {"fw-jj-tl", "jj"}, {"nn-nc", "nn"}, {"pp$", "pp$"},
                              {"md*", "md*"}, {"nn", "nn"}, {"--", "--"}, {"*", "*"}, {"-tl", "-tl"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (strcmp(base(cases[i][0]), cases[i][1]))
            CHECK_FAIL_("base of %s: %s, want %s", cases[i][0], base(cases[i][0]), cases[i][1]);
        else check_passed_++;
}

static void base_tag_keeps_compound_tags_whole_with_each_part_reduced(void) {
    CHECK(!strcmp(base("ppss+bem"), "ppss+bem"));
    CHECK(!strcmp(base("fw-in+nn-tl"), "in+nn"));
    CHECK(!strcmp(base("np+bez-tl"), "np+bez"));
}

static void base_tag_refuses_an_empty_tag_and_a_small_buffer(void) {
    char out[4];
    CHECK(nb_brown_base_tag("", out, sizeof out) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "the tag is empty");
    CHECK(nb_brown_base_tag("ppss+bem", out, sizeof out) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "needs 9 bytes, cap is 4");
    CHECK(nb_brown_base_tag("np-tl", out, 3) == NB_OK && !strcmp(out, "np"));
    CHECK(nb_brown_base_tag(NULL, out, 3) == NB_ERR_NULL);
    nb_error_clear();
}

static void held_out_split_is_every_tenth_document(void) {
    int held = 0;
    for (int d = 0; d < 500; d++) held += nb_brown_is_held_out(d);
    CHECK_EQ_INT(held, 50);
    CHECK(nb_brown_is_held_out(9) && nb_brown_is_held_out(19) && !nb_brown_is_held_out(0) &&
          !nb_brown_is_held_out(10));
}

static void entity_tags_mark_runs_of_proper_nouns_and_title_words(void) {
    /* The Fulton County Grand Jury said Friday an investigation of Atlanta's ... */
    const char *tags[] = {"at-tl", "np-tl", "nn-tl", "jj-tl", "nn-tl", "vbd", "nr", "at", "nn", "in", "np$", "np"};
    int32_t got[12], want[12] = {NB_ENTITY_B, NB_ENTITY_I, NB_ENTITY_I, NB_ENTITY_I, NB_ENTITY_I, NB_ENTITY_O,
                                 NB_ENTITY_O, NB_ENTITY_O, NB_ENTITY_O, NB_ENTITY_O, NB_ENTITY_B, NB_ENTITY_I};
    CHECK(nb_brown_entity_tags(tags, 12, got) == NB_OK);
    for (int i = 0; i < 12; i++) CHECK_EQ_INT(got[i], want[i]);
    const char *fw[] = {"fw-np", "ppss+bem", "np+bez"};
    CHECK(nb_brown_entity_tags(fw, 3, got) == NB_OK);
    CHECK(got[0] == NB_ENTITY_B && got[1] == NB_ENTITY_O && got[2] == NB_ENTITY_B);
    const char *null_tag[] = {"nn", NULL};
    CHECK(nb_brown_entity_tags(null_tag, 2, got) == NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "tags[1] is NULL");
}

static void word_shape_and_suffix_describe_unknown_words(void) {
    CHECK_EQ_INT(nb_word_shape("walked"), 1);
    CHECK_EQ_INT(nb_word_shape("Fulton"), 5);
    CHECK_EQ_INT(nb_word_shape("I"), 5);
    CHECK_EQ_INT(nb_word_shape("USA"), 9);
    CHECK_EQ_INT(nb_word_shape("1960"), 3);
    CHECK_EQ_INT(nb_word_shape("well-known"), 2);
    CHECK_EQ_INT(nb_word_shape("B-52"), 8); /* one letter: not all capitals, a digit, a hyphen */
    CHECK_EQ_INT(nb_word_shape(""), 1);
    char out[16];
    CHECK(nb_word_suffix("Quickly", 3, out, sizeof out) == NB_OK);
    CHECK(!strcmp(out, "kly"));
    CHECK(nb_word_suffix("AT", 3, out, sizeof out) == NB_OK && !strcmp(out, "at"));
    CHECK(nb_word_suffix("café", 2, out, sizeof out) == NB_OK && !strcmp(out, "fé"));
    CHECK(nb_word_suffix("walked", 3, out, 3) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "do not fit");
}

/* ---- the tagger on a made-up task */

enum { SENTS = 16, MAXLEN = 7, WORDS = 10, TAGS = 4 };

/* Sentences of words 2..9, lengths 3..7; a word's tag is its parity, plus 2 when the word
 * before it is 5 or more: no tagger gets it right without reading its left context. */
static void made_up_batch(int32_t *feats, float *mask, int32_t *tags, int64_t *n_tokens) {
    uint64_t s = 11;
    *n_tokens = 0;
    for (int b = 0; b < SENTS; b++) {
        int len = 3 + b % 5, prev = 0;
        for (int t = 0; t < MAXLEN; t++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            int w = 2 + (int)((s >> 33) % 8), i = b * MAXLEN + t;
            bool real = t < len;
            feats[2 * i] = real ? w : 0;
            feats[2 * i + 1] = real ? 1 + w % 3 : 0; /* a second feature, as a suffix would be */
            mask[i] = real;
            tags[i] = real ? w % 2 + 2 * (prev >= 5) : NB_TAGGER_PAD_TAG;
            *n_tokens += real;
            prev = w;
        }
    }
}

static void tagger_train_and_count(nb_tagger_kind kind) {
    int32_t feats[SENTS * MAXLEN * 2], tags[SENTS * MAXLEN], pred[SENTS * MAXLEN];
    float mask[SENTS * MAXLEN];
    int64_t n_tokens;
    made_up_batch(feats, mask, tags, &n_tokens);
    nb_tagger_opts o = {.kind = kind, .n_features = 2, .features = {{WORDS, 8}, {4, 4}}, .tags = TAGS,
                        .hidden = 16, .heads = 2, .layers = 1, .max_len = MAXLEN};
    nb_module *m = nb_tagger_new(o);
    nb_tensor *params[64];
    int np = nb_module_parameters(m, params, 64);
    nb_optim *opt = nb_adam_new(np, params, (nb_adam_opts){.lr = 0.02});
    nb_tensor *x = nb_from_int32(feats, NB_SHAPE(SENTS, MAXLEN, 2));
    nb_tensor *mk = nb_from_data(mask, NB_SHAPE(SENTS, MAXLEN));
    nb_tensor *y = nb_from_int32(tags, NB_SHAPE(SENTS, MAXLEN));
    for (int step = 0; step < 150; step++) {
        nb_scope_begin();
        nb_optim_zero_grad(opt);
        nb_tensor *loss = nb_tagger_loss(nb_tagger_forward(m, x, mk), y);
        CHECK(loss && nb_backward(loss) == NB_OK && nb_optim_step(opt) == NB_OK);
        nb_scope_end();
    }
    nb_module_train(m, false);
    int64_t correct = 0;
    nb_scope_begin();
    CHECK(nb_tagger_predict(nb_tagger_forward(m, x, mk), pred, SENTS * MAXLEN) == NB_OK);
    nb_scope_end();
    for (int i = 0; i < SENTS * MAXLEN; i++) correct += tags[i] >= 0 && pred[i] == tags[i];
    CHECK_EQ_INT(correct, n_tokens);
    nb_tensor_free(x);
    nb_tensor_free(mk);
    nb_tensor_free(y);
    nb_optim_free(opt);
    nb_module_free(m);
}

/* (The scopes' arenas keep their blocks, so bytes are not counted back here; the sanitizer run
 * finds leaks.) */
static void bilstm_tagger_learns_a_task_that_needs_the_word_before(void) {
    tagger_train_and_count(NB_TAGGER_BILSTM);
}

static void transformer_tagger_learns_a_task_that_needs_the_word_before(void) {
    tagger_train_and_count(NB_TAGGER_TRANSFORMER);
}

/* Logits for one sentence of 2 tokens padded to 3: the padded position's logits, however
 * large, change nothing, and the loss is the mean over the 2 tokens. */
static void tagger_loss_ignores_padding(void) {
    float v[9] = {1, 2, 3, 0, 0, 0, 50, -50, 7};
    int32_t t[3] = {2, 0, NB_TAGGER_PAD_TAG};
    nb_tensor *logits = nb_from_data(v, NB_SHAPE(1, 3, 3));
    nb_tensor *tags = nb_from_int32(t, NB_SHAPE(1, 3));
    nb_tensor *loss = nb_tagger_loss(logits, tags);
    double l0 = log(exp(1) + exp(2) + exp(3)) - 3, l1 = log(3.0);
    CHECK_NEAR(nb_item(loss), (l0 + l1) / 2, 1e-5, 1e-5);
    nb_tensor_free(loss);
    nb_tensor_free(tags);
    nb_tensor_free(logits);
}

static void tagger_refuses_bad_options_shapes_and_masks(void) {
    nb_tagger_opts o = {.n_features = 1, .features = {{5, 4}}, .tags = 3, .hidden = 6};
    nb_tagger_opts bad = o;
    bad.n_features = 9;
    CHECK(!nb_tagger_new(bad));
    CHECK_ERROR(NB_ERR_ARG, "bad option n_features");
    bad = o, bad.kind = NB_TAGGER_TRANSFORMER, bad.heads = 4;
    CHECK(!nb_tagger_new(bad));
    CHECK_ERROR(NB_ERR_ARG, "heads (a divisor of hidden)");
    bad = o, bad.dropout = 1;
    CHECK(!nb_tagger_new(bad));
    CHECK_ERROR(NB_ERR_ARG, "dropout");
    nb_module *m = nb_tagger_new(o);
    CHECK(m != NULL);
    int32_t ids[4] = {1, 2, 3, 0};
    float gap[4] = {1, 0, 1, 0}, ok_mask[4] = {1, 1, 1, 0};
    nb_tensor *x = nb_from_int32(ids, NB_SHAPE(1, 4, 1)), *x2 = nb_from_int32(ids, NB_SHAPE(1, 2, 2));
    nb_tensor *holes = nb_from_data(gap, NB_SHAPE(1, 4)), *mask = nb_from_data(ok_mask, NB_SHAPE(1, 4));
    CHECK(!nb_tagger_forward(m, x, holes));
    CHECK_ERROR(NB_ERR_ARG, "mask row 0 is not 1s (at least one) then 0s");
    CHECK(!nb_tagger_forward(m, x2, mask));
    CHECK_ERROR(NB_ERR_SHAPE, "features [B, T, 1] and mask [B, T] expected, got [1,2,2] and [1,4]");
    ids[1] = 7;
    nb_tensor *x3 = nb_from_int32(ids, NB_SHAPE(1, 4, 1));
    CHECK(!nb_tagger_forward(m, x3, mask));
    CHECK_ERROR(NB_ERR_ARG, "id 7");
    nb_tensor *logits = nb_tagger_forward(m, x, mask);
    CHECK(logits && nb_shape(logits)[2] == 3);
    int32_t pred[4];
    CHECK(nb_tagger_predict(logits, pred, 3) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "n 3 is not B * T = 4");
    nb_module *lin = nb_linear_new(2, 2, true);
    CHECK(!nb_tagger_forward(lin, x, mask));
    CHECK_ERROR(NB_ERR_ARG, "not a Tagger");
    nb_module_free(lin);
    nb_tensor_free(logits);
    nb_tensor_free(x3);
    nb_tensor_free(x2);
    nb_tensor_free(x);
    nb_tensor_free(holes);
    nb_tensor_free(mask);
    nb_module_free(m);
}

int main(void) {
    base_tag_leaves_out_title_headline_cited_and_foreign_marks();
    base_tag_keeps_compound_tags_whole_with_each_part_reduced();
    base_tag_refuses_an_empty_tag_and_a_small_buffer();
    held_out_split_is_every_tenth_document();
    entity_tags_mark_runs_of_proper_nouns_and_title_words();
    word_shape_and_suffix_describe_unknown_words();
    bilstm_tagger_learns_a_task_that_needs_the_word_before();
    transformer_tagger_learns_a_task_that_needs_the_word_before();
    tagger_loss_ignores_padding();
    tagger_refuses_bad_options_shapes_and_masks();
    return check_summary();
}
