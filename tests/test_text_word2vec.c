/*
 * test_text_word2vec.c — word2vec (src/text/word2vec.c) on a synthetic corpus of two topics
 * whose words never share a window except at topic borders: skip-gram and CBOW both put each
 * word's nearest neighbours in its own topic; a seed gives the same vectors; the analogy and the
 * saved text format; bad streams and options refused.
 */
#include "check.h"
#include "tmpdir.h"
#include "text/internal.h" /* nb__word2vec_lr */

enum { WORDS = 6, RUN = 30, RUNS = 60, N = RUN * RUNS };

static char names[2 * WORDS][8];
static const char *tokens[N];

/* Runs of 30 words from topic "a" (a0..a5) and topic "b" in turn, each word drawn at random. */
static void make_corpus(void) {
    uint64_t s = 7;
    for (int t = 0; t < 2 * WORDS; t++) snprintf(names[t], sizeof names[t], "%c%d", t < WORDS ? 'a' : 'b', t % WORDS);
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int topic = (i / RUN) % 2;
        tokens[i] = names[topic * WORDS + (int)((s >> 33) % WORDS)];
    }
}

/* Every word's 3 nearest neighbours are of its own topic (the first letter of the token). */
static int own_topic_neighbours(const nb_tensor *vec, const nb_vocab *v) {
    int good = 0;
    for (int32_t id = 2; id < nb_vocab_size(v); id++) {
        float q[16];
        int32_t ids[3];
        float sims[3];
        int64_t row[2] = {id, 0};
        for (int j = 0; j < 16; j++) row[1] = j, q[j] = nb_get(vec, row);
        if (nb_word2vec_nearest(vec, q, &id, 1, 3, ids, sims) != 3) continue;
        bool all = sims[0] >= sims[1] && sims[1] >= sims[2];
        for (int k = 0; k < 3; k++) all = all && nb_vocab_token(v, ids[k])[0] == nb_vocab_token(v, id)[0];
        good += all;
    }
    return good;
}

static void word2vec_puts_words_of_one_topic_together(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    make_corpus();
    nb_vocab *v = nb_vocab_build(tokens, N, (nb_vocab_opts){0});
    int32_t ids[N];
    CHECK(nb_vocab_encode(v, tokens, N, ids) == NB_OK);
    for (int cbow = 0; cbow < 2; cbow++) {
        nb_word2vec_opts o = {.cbow = cbow, .dim = 16, .window = 3, .epochs = 5, .seed = 1};
        nb_tensor *vec = nb_word2vec_train(ids, N, v, o);
        CHECK(vec && nb_shape(vec)[0] == 2 * WORDS + 2 && nb_shape(vec)[1] == 16);
        if (vec) CHECK_EQ_INT(own_topic_neighbours(vec, v), 2 * WORDS);
        nb_tensor *again = nb_word2vec_train(ids, N, v, o);
        float x[(2 * WORDS + 2) * 16], y[(2 * WORDS + 2) * 16];
        CHECK(nb_copy_to(vec, x, (2 * WORDS + 2) * 16) == NB_OK);
        CHECK(nb_copy_to(again, y, (2 * WORDS + 2) * 16) == NB_OK);
        CHECK(!memcmp(x, y, sizeof x)); /* a seed gives the same vectors */
        nb_tensor_free(again);
        nb_tensor_free(vec);
    }
    nb_vocab_free(v);
    CHECK_BYTES_BACK("word2vec topics", before);
}

static void word2vec_analogy_and_text_format(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    make_corpus();
    nb_vocab *v = nb_vocab_build(tokens, N, (nb_vocab_opts){0});
    int32_t ids[N];
    nb_vocab_encode(v, tokens, N, ids);
    /* subsampling keeps ~11 % of this corpus (each word has frequency 1/12, kept with
     * probability ~sqrt(1e-3 x 12)): 20 epochs make a few thousand updates */
    nb_tensor *vec = nb_word2vec_train(ids, N, v, (nb_word2vec_opts){.dim = 16, .window = 3,
                                                                      .epochs = 20, .sample = 1e-3f});
    int32_t a0 = nb_vocab_id(v, "a0"), a1 = nb_vocab_id(v, "a1"), b0 = nb_vocab_id(v, "b0");
    /* a0 : a1 :: b0 : ? — a word of b's topic */
    int32_t d = nb_word2vec_analogy(vec, a0, a1, b0);
    CHECK(d >= 2 && d != a0 && d != a1 && d != b0);
    CHECK(d >= 2 && nb_vocab_token(v, d)[0] == 'b');
    CHECK_EQ_INT(nb_word2vec_analogy(vec, a0, 1, b0), -1);
    CHECK_ERROR(NB_ERR_ARG, "word2vec_analogy: ids");
    CHECK(nb_word2vec_save(vec, v, tpath("vectors.txt")) == NB_OK);
    size_t n;
    char *text = read_all(tpath("vectors.txt"), &n);
    CHECK(text && !strncmp(text, "12 16\n", 6));
    int lines = 0, fields = 0;
    for (char *p = text; p && *p; p++) lines += *p == '\n';
    CHECK_EQ_INT(lines, 13);
    char *second = text ? strchr(text, '\n') + 1 : NULL;
    for (char *p = second; p && *p != '\n'; p++) fields += *p == ' ';
    CHECK_EQ_INT(fields, 16); /* "word x1 ... x16" */
    free(text);
    nb_tensor_free(vec);
    nb_vocab_free(v);
    CHECK_BYTES_BACK("word2vec analogy", before);
}

static void word2vec_refuses_bad_streams_and_options(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    const char *toks[] = {"x", "y", "x"};
    nb_vocab *v = nb_vocab_build(toks, 3, (nb_vocab_opts){0});
    const int32_t bad[] = {2, 3, 9};
    CHECK(!nb_word2vec_train(bad, 3, v, (nb_word2vec_opts){0}));
    CHECK_ERROR(NB_ERR_ARG, "stream[2] = 9 is not below the vocabulary's 4 ids");
    const int32_t one[] = {2, NB_UNK_ID};
    CHECK(!nb_word2vec_train(one, 2, v, (nb_word2vec_opts){0}));
    CHECK_ERROR(NB_ERR_ARG, "at least 2 are needed");
    const int32_t ok[] = {2, 3, 2};
    CHECK(!nb_word2vec_train(ok, 3, v, (nb_word2vec_opts){.dim = -1}));
    CHECK_ERROR(NB_ERR_ARG, "dim -1");
    nb_vocab_free(v);
    CHECK_BYTES_BACK("word2vec errors", before);
}

/* The rate falls with the share of the words read, those subsampling drops included (word2vec.c
 * counts them), so it ends at its floor whatever share is kept.  It was the kept words counted
 * against all the stream's words: a run keeping 60 % ended at 0.4 lr instead of ~0. */
static void word2vec_lr_falls_to_its_floor_whatever_subsampling_keeps(void) {
    CHECK_NEAR(nb__word2vec_lr(0.025f, 0, 5, 0, 600), 0.025, 1e-9, 0);
    CHECK_NEAR(nb__word2vec_lr(0.025f, 2, 5, 300, 600), 0.0125, 1e-9, 0); /* (2 + 1/2) / 5 done */
    CHECK(nb__word2vec_lr(0.025f, 4, 5, 599, 600) < 0.025f * 1e-3f);      /* the last kept word */
    CHECK_NEAR(nb__word2vec_lr(0.025f, 4, 5, 600, 600), 0.025 * 1e-4, 1e-12, 0); /* the floor */
}

int main(void) {
    if (!tmpdir_make("nb_test_w2v")) return 1;
    word2vec_puts_words_of_one_topic_together();
    word2vec_analogy_and_text_format();
    word2vec_refuses_bad_streams_and_options();
    word2vec_lr_falls_to_its_floor_whatever_subsampling_keeps();
    tmpdir_remove();
    return check_summary();
}
