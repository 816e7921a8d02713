/*
 * text_genre.c — `nabla text genre BROWN_DIR --model tfidf|neural`: genre classification of
 * passages of the Brown corpus (the compact form `nabla convert-brown` writes).
 *
 * Each document is cut into passages of whole sentences (nb_passages_make), each labelled with
 * its document's genre (15 in Brown); the documents are split, stratified by genre and seeded,
 * into training and held-out ones (nb_corpus_split), so no passage of a held-out document is
 * trained on.  Words are lower-cased and the vocabulary is built on the training passages
 * alone (rarer than --min-count: <unk>).  Two models, on the same split for the same seed:
 *   tfidf   TF-IDF rows (nb_tfidf_fit on the training passages, scikit-learn's formula) into
 *           logistic regression: one Linear layer, cross-entropy, Adam with an L2 penalty
 *           (--l2, Adam's weight_decay: added to the gradient);
 *   neural  the mean of the passage's word embeddings (a bag of embeddings, as fastText's)
 *           into an MLP: dropout, Linear, ReLU, dropout, Linear; Adam.  With --w2v the
 *           embeddings start from skip-gram vectors (nb_word2vec_train) trained on the
 *           training passages alone.
 * Both train with nb_fit, evaluated each epoch on the held-out passages (no model selection on
 * them: the last epoch's model is reported).  Printed: accuracy, macro-F1 and the confusion
 * matrix on the held-out passages, and the same figures for Brown's coarse split (informative
 * prose, genres A-J, against imaginative, K-R) read off the 15-genre predictions.
 */
#include "cli.h"
#include "nabla/nn.h"
#include "nabla/rnn.h"
#include "nabla/text.h"
#include "nabla/train.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

typedef struct {
    const char *model;
    int passage_words, min_words, min_count, epochs, batch, seed, dim, hidden, min_df, max_features;
    double test_frac, lr, l2, dropout;
    bool sublinear, w2v;
} genre_opts;

/* The corpus as the models see it: words lower-cased and mapped to a vocabulary of the
 * training passages (ids[n_words]), the passages and which documents are held out. */
typedef struct {
    nb_corpus_ids *corpus;
    nb_passages *passages;
    bool *held_out;  /* [n_docs] */
    nb_vocab *vocab;
    int32_t *ids;    /* [n_words], ids of vocab */
    int64_t n_train, n_test;
    int64_t *train, *test; /* passage indices */
} genre_data;

static void genre_data_free(genre_data *g) {
    free(g->held_out);
    free(g->ids);
    free(g->train);
    free(g->test);
    nb_vocab_free(g->vocab);
    nb_passages_free(g->passages);
    nb_corpus_ids_free(g->corpus);
}

static void free_words(char **low, int32_t V) {
    for (int32_t id = 0; low && id < V; id++) free(low[id]);
    free(low);
}

/* The lower-cased spelling of every word id of the corpus's vocabulary (V of them). */
static char **lower_words(const nb_vocab *v, int32_t V) {
    char **low = calloc((size_t)V, sizeof *low);
    for (int32_t id = 0; low && id < V; id++) {
        const char *w = nb_vocab_token(v, id);
        size_t n = strlen(w);
        if (!(low[id] = malloc(n + 1))) return free_words(low, V), NULL;
        for (size_t i = 0; i <= n; i++) low[id][i] = (char)tolower((unsigned char)w[i]);
    }
    return low;
}

/* The vocabulary of the training passages' lower-cased words, and every word's id in it. */
static bool build_vocab(genre_data *g, int min_count) {
    const nb_corpus_ids *c = g->corpus;
    int32_t V = nb_vocab_size(c->word_vocab);
    char **low = lower_words(c->word_vocab, V);
    const char **tokens = malloc((size_t)c->n_words * sizeof *tokens);
    g->ids = malloc((size_t)c->n_words * sizeof *g->ids);
    if (!low || !tokens || !g->ids) {
        free_words(low, V), free(tokens);
        return fprintf(stderr, "nabla text genre: out of memory\n"), false;
    }
    int64_t n = 0;
    for (int64_t k = 0; k < g->n_train; k++) {
        const nb_passage *p = &g->passages->at[g->train[k]];
        for (int64_t i = p->start; i < p->start + p->len; i++) tokens[n++] = low[c->words[i]];
    }
    g->vocab = nb_vocab_build(tokens, n, (nb_vocab_opts){.min_count = min_count});
    for (int64_t i = 0; g->vocab && i < c->n_words; i++) g->ids[i] = nb_vocab_id(g->vocab, low[c->words[i]]);
    free_words(low, V);
    free(tokens);
    return g->vocab || cli_fail("text genre: vocabulary") == 0;
}

static bool load_data(genre_data *g, const char *dir, const genre_opts *o) {
    memset(g, 0, sizeof *g);
    if (!(g->corpus = nb_brown_load(dir))) return cli_fail("text genre") == 0;
    nb_passage_opts po = {.max_words = o->passage_words, .min_words = o->min_words};
    if (!(g->passages = nb_passages_make(g->corpus, po))) return cli_fail("text genre") == 0;
    int64_t n = g->passages->n;
    g->held_out = calloc((size_t)g->corpus->n_docs, sizeof *g->held_out);
    g->train = malloc((size_t)n * sizeof *g->train);
    g->test = malloc((size_t)n * sizeof *g->test);
    if (!g->held_out || !g->train || !g->test) return fprintf(stderr, "nabla text genre: out of memory\n"), false;
    if (nb_corpus_split(g->corpus, o->test_frac, (uint64_t)o->seed, g->held_out) != NB_OK)
        return cli_fail("text genre") == 0;
    for (int64_t i = 0; i < n; i++) {
        if (g->held_out[g->passages->at[i].doc]) g->test[g->n_test++] = i;
        else g->train[g->n_train++] = i;
    }
    if (!g->n_train || !g->n_test)
        return fprintf(stderr, "nabla text genre: %lld training and %lld held-out passages: both "
                       "must be some (more documents, or shorter passages)\n", (long long)g->n_train,
                       (long long)g->n_test), false;
    return build_vocab(g, o->min_count);
}

/* ---- the two models' inputs, as datasets for the loader */

/* The passages' word ids (pointers into g->ids) and lengths, for nb_tfidf. */
static void passage_docs(const genre_data *g, const int64_t *which, int64_t n, const int32_t **docs,
                         int64_t *lens) {
    for (int64_t k = 0; k < n; k++) {
        const nb_passage *p = &g->passages->at[which[k]];
        docs[k] = g->ids + p->start;
        lens[k] = p->len;
    }
}

static nb_dataset *make_dataset(const genre_data *g, const int64_t *which, int64_t n, int64_t width,
                                const float *x) {
    int32_t *labels = malloc((size_t)n * sizeof *labels);
    if (!labels) return NULL;
    for (int64_t k = 0; k < n; k++) labels[k] = g->passages->at[which[k]].genre;
    nb_dataset_desc d = {.n = n, .sample_ndim = 1, .sample_shape = &width, .x_f32 = x, .labels = labels};
    nb_dataset *ds = nb_dataset_new(&d);
    free(labels);
    return ds;
}

/* TF-IDF rows [n, F] of the passages `which`. */
static nb_dataset *tfidf_dataset(const genre_data *g, const nb_tfidf *t, const int64_t *which, int64_t n) {
    int64_t F = nb_tfidf_size(t);
    const int32_t **docs = malloc((size_t)n * sizeof *docs);
    int64_t *lens = malloc((size_t)n * sizeof *lens);
    float *x = malloc((size_t)n * (size_t)F * sizeof *x);
    nb_dataset *ds = NULL;
    if (docs && lens && x) {
        passage_docs(g, which, n, docs, lens);
        if (nb_tfidf_transform_rows(t, docs, lens, n, x) == NB_OK) ds = make_dataset(g, which, n, F, x);
    }
    free(docs);
    free(lens);
    free(x);
    return ds;
}

/* Word ids as floats [n, T] (T = the longest passage allowed), 0 (<pad>) after each end. */
static nb_dataset *ids_dataset(const genre_data *g, const int64_t *which, int64_t n, int64_t T) {
    float *x = calloc((size_t)n * (size_t)T, sizeof *x);
    if (!x) return NULL;
    for (int64_t k = 0; k < n; k++) {
        const nb_passage *p = &g->passages->at[which[k]];
        for (int64_t i = 0; i < p->len; i++) x[k * T + i] = (float)g->ids[p->start + i];
    }
    nb_dataset *ds = make_dataset(g, which, n, T, x);
    free(x);
    return ds;
}

/* ---- the neural model: the mean of the words' embeddings, then an MLP */

typedef struct {
    nb_module *embedding, *mlp;
} bag_state;

static nb_tensor *bag_forward(nb_module *m, nb_tensor *x);
static const nb_module_class bag_class = {.name = "EmbeddingBagClassifier", .forward = bag_forward};

/* x [B, T] word ids as floats, 0 = <pad>: mean over the words of embedding(ids) [B, E] (the
 * padding row is zero and gets no gradient, so the sum over T is the sum over the words), then
 * the MLP. */
static nb_tensor *bag_forward(nb_module *m, nb_tensor *x) {
    bag_state *s = nb_module_state(m, &bag_class);
    nb_tensor *ids = nb_to_dtype(x, NB_I32);
    nb_tensor *e = nb_module_forward(s->embedding, ids);
    nb_tensor *sum = nb_sum_dims(e, 1, (const int[]){1}, false);
    nb_tensor *is_word = nb_clamp(x, 0, 1);
    nb_tensor *words = nb_sum_dims(is_word, 1, (const int[]){1}, true);
    nb_tensor *count = nb_clamp(words, 1, INFINITY);
    nb_tensor *mean = nb_div(sum, count);
    nb_tensor *y = nb_module_forward(s->mlp, mean);
    nb_tensor_free(ids), nb_tensor_free(e), nb_tensor_free(sum), nb_tensor_free(is_word);
    nb_tensor_free(words), nb_tensor_free(count), nb_tensor_free(mean);
    return y;
}

static nb_module *bag_new(int64_t V, int64_t E, int64_t H, int64_t C, float dropout) {
    nb_module *m = nb_module_new(&bag_class, sizeof(bag_state));
    bag_state *s = nb_module_state(m, &bag_class);
    if (!s) return nb_module_free(m), NULL;
    s->embedding = nb_embedding_new(V, E, (nb_embedding_opts){.padding = true, .padding_idx = NB_PAD_ID});
    nb_module *layers[] = {nb_dropout_new(dropout), nb_linear_new(E, H, true),
                           nb_activation_new(NB_ACT_RELU, 0), nb_dropout_new(dropout),
                           nb_linear_new(H, C, true)};
    s->mlp = nb_sequential_new(5, layers);
    if (nb_module_add_child(m, "embedding", s->embedding) != NB_OK ||
        nb_module_add_child(m, "mlp", s->mlp) != NB_OK)
        return nb_module_free(m), NULL;
    return m;
}

/* ---- training and the figures */

static bool print_epoch(const nb_fit_epoch *e, void *user) {
    (void)user;
    printf("  epoch %2lld/%d: train loss %.4f acc %.2f %% | held-out loss %.4f acc %.2f %% (%.1f s)\n",
           (long long)e->epoch, e->epochs, e->train_loss, 100 * e->train_acc, e->eval_loss,
           100 * e->eval_acc, e->seconds);
    fflush(stdout);
    return true;
}

/* The model's class for each sample of ld (no shuffle: in the dataset's order) into pred. */
static bool predict(nb_module *m, nb_loader *ld, int32_t *pred) {
    nb_module_train(m, false);
    bool was = nb_set_grad_enabled(false), ok = nb_loader_reset(ld) == NB_OK;
    int64_t at = 0;
    nb_tensor *x, *y;
    while (ok && nb_loader_next(ld, &x, &y)) {
        nb_scope_begin();
        nb_tensor *logits = nb_module_forward(m, x);
        int64_t B = nb_shape(x)[0], C = logits ? nb_shape(logits)[1] : 0;
        float *l = logits ? malloc((size_t)(B * C) * sizeof *l) : NULL;
        ok = l && nb_copy_to(logits, l, B * C) == NB_OK;
        for (int64_t b = 0; ok && b < B; b++, at++) {
            pred[at] = 0;
            for (int64_t c = 1; c < C; c++)
                if (l[b * C + c] > l[b * C + pred[at]]) pred[at] = (int32_t)c;
        }
        free(l);
        nb_scope_end();
    }
    nb_set_grad_enabled(was);
    return ok || cli_fail("text genre: predicting") == 0;
}

/* Brown's informative prose (genres A-J), as against imaginative prose (K-R). */
static int coarse_class(const char *genre) {
    static const char *const imaginative[] = {"fiction", "mystery", "science_fiction", "adventure",
                                              "romance", "humor"};
    static const char *const informative[] = {"news", "editorial", "reviews", "religion", "hobbies",
                                              "lore", "belles_lettres", "government", "learned"};
    for (size_t i = 0; i < sizeof imaginative / sizeof *imaginative; i++)
        if (!strcmp(genre, imaginative[i])) return 1;
    for (size_t i = 0; i < sizeof informative / sizeof *informative; i++)
        if (!strcmp(genre, informative[i])) return 0;
    return -1;
}

static void print_confusion(const int64_t *m, const nb_tokens *genres) {
    int32_t C = (int32_t)genres->n;
    printf("confusion matrix (rows: true genre, columns: predicted, in the rows' order):\n%16s", "");
    for (int32_t p = 0; p < C; p++) printf(" %5.5s", genres->token[p]);
    printf("\n");
    for (int32_t t = 0; t < C; t++) {
        printf("%16.16s", genres->token[t]);
        for (int32_t p = 0; p < C; p++) printf(" %5lld", (long long)m[t * C + p]);
        printf("\n");
    }
}

/* Accuracy, macro-F1 and the confusion matrix of pred against the held-out passages' genres,
 * and the coarse split's figures when every genre is one of Brown's. */
static bool report(const genre_data *g, const int32_t *pred) {
    int32_t C = (int32_t)g->corpus->genres.n;
    int64_t n = g->n_test, correct = 0, m[4];
    int32_t *truth = malloc((size_t)n * sizeof *truth), *ct = malloc((size_t)n * sizeof *ct);
    int32_t *cp = malloc((size_t)n * sizeof *cp);
    int64_t *counts = malloc((size_t)C * (size_t)C * sizeof *counts);
    bool ok = truth && ct && cp && counts, coarse = true;
    for (int64_t k = 0; ok && k < n; k++) {
        truth[k] = g->passages->at[g->test[k]].genre;
        correct += truth[k] == pred[k];
        ct[k] = coarse_class(g->corpus->genres.token[truth[k]]);
        cp[k] = coarse_class(g->corpus->genres.token[pred[k]]);
        coarse = coarse && ct[k] >= 0 && cp[k] >= 0;
    }
    ok = ok && nb_confusion_matrix(truth, pred, n, C, counts) == NB_OK;
    if (ok) {
        printf("held-out passages: %lld, accuracy %.2f %%, macro-F1 %.4f (%d genres: chance %.2f %%)\n",
               (long long)n, 100.0 * (double)correct / (double)n, nb_macro_f1(counts, C), C, 100.0 / C);
        print_confusion(counts, &g->corpus->genres);
    }
    if (ok && coarse && nb_confusion_matrix(ct, cp, n, 2, m) == NB_OK)
        printf("coarse split (informative / imaginative): accuracy %.2f %%, macro-F1 %.4f\n",
               100.0 * (double)(m[0] + m[3]) / (double)n, nb_macro_f1(m, 2));
    free(truth), free(ct), free(cp), free(counts);
    return ok || cli_fail("text genre: figures") == 0;
}

/* Trains m on train with Adam (weight_decay l2) for o->epochs, evaluated on test; then the
 * figures. */
static int train_and_report(const genre_data *g, nb_module *m, nb_dataset *train, nb_dataset *test,
                            const genre_opts *o) {
    nb_loader *tl = nb_loader_new(train, (nb_loader_opts){.batch_size = o->batch, .shuffle = true,
                                                           .seed = (uint64_t)o->seed});
    nb_loader *el = nb_loader_new(test, (nb_loader_opts){.batch_size = 256});
    nb_tensor *params[64];
    int np = nb_module_parameters(m, params, 64);
    nb_optim *opt = tl && el && np > 0 ? nb_adam_new(np, params, (nb_adam_opts){.lr = o->lr, .weight_decay = o->l2})
                                       : NULL;
    nb_fit_opts fo = {.epochs = o->epochs, .log = stderr, .title = "genre", .seed = o->seed};
    nb_fit *f = opt ? nb_fit_new(m, opt, NULL, tl, el, &fo) : NULL;
    int32_t *pred = malloc((size_t)g->n_test * sizeof *pred);
    int rc = 1;
    if (!f || !pred) rc = cli_fail("text genre");
    else if (nb_fit_run(f, &(nb_fit_callbacks){.on_epoch = print_epoch}) != NB_OK) rc = cli_fail("text genre: training");
    else if (predict(m, el, pred) && report(g, pred)) rc = 0;
    free(pred);
    nb_fit_free(f);
    nb_optim_free(opt);
    nb_loader_free(el);
    nb_loader_free(tl);
    return rc;
}

static int run_tfidf(const genre_data *g, const genre_opts *o) {
    const int32_t **docs = malloc((size_t)g->n_train * sizeof *docs);
    int64_t *lens = malloc((size_t)g->n_train * sizeof *lens);
    if (!docs || !lens) return fprintf(stderr, "nabla text genre: out of memory\n"), 1;
    passage_docs(g, g->train, g->n_train, docs, lens);
    nb_tfidf_opts to = {.min_df = o->min_df, .max_features = o->max_features, .sublinear_tf = o->sublinear};
    nb_tfidf *t = nb_tfidf_fit(docs, lens, g->n_train, nb_vocab_size(g->vocab), to);
    free(docs);
    free(lens);
    if (!t) return cli_fail("text genre: tf-idf");
    printf("tf-idf: %lld features (min_df %d%s), logistic regression: Linear(%lld, %lld), Adam lr %g, "
           "L2 %g, batch %d\n", (long long)nb_tfidf_size(t), o->min_df, o->sublinear ? ", sublinear tf" : "",
           (long long)nb_tfidf_size(t), (long long)g->corpus->genres.n, o->lr, o->l2, o->batch);
    nb_dataset *train = tfidf_dataset(g, t, g->train, g->n_train), *test = tfidf_dataset(g, t, g->test, g->n_test);
    nb_module *m = nb_linear_new(nb_tfidf_size(t), g->corpus->genres.n, true);
    nb_tfidf_free(t);
    int rc = train && test && m ? train_and_report(g, m, train, test, o) : cli_fail("text genre: tf-idf");
    nb_module_free(m);
    nb_dataset_free(train);
    nb_dataset_free(test);
    return rc;
}

/* The embedding's weight [V, E] set to skip-gram vectors of the training passages' words (the
 * vocabulary counts them), the <pad> row zero. */
static bool init_from_word2vec(const genre_data *g, nb_module *m, const genre_opts *o) {
    int64_t n = 0;
    for (int64_t k = 0; k < g->n_train; k++) n += g->passages->at[g->train[k]].len;
    int32_t *stream = malloc((size_t)n * sizeof *stream);
    if (!stream) return fprintf(stderr, "nabla text genre: out of memory\n"), false;
    n = 0;
    for (int64_t k = 0; k < g->n_train; k++) {
        const nb_passage *p = &g->passages->at[g->train[k]];
        memcpy(stream + n, g->ids + p->start, (size_t)p->len * sizeof *stream);
        n += p->len;
    }
    nb_word2vec_opts wo = {.dim = o->dim, .sample = 1e-3f, .seed = (uint64_t)o->seed};
    nb_tensor *vec = nb_word2vec_train(stream, n, g->vocab, wo);
    free(stream);
    nb_tensor *w = nb_module_find(m, "embedding.weight");
    bool ok = vec && w && nb_copy(w, vec) == NB_OK;
    for (int64_t j = 0; ok && j < o->dim; j++) ok = nb_set(w, (int64_t[]){NB_PAD_ID, j}, 0) == NB_OK;
    nb_tensor_free(vec);
    if (ok) printf("embeddings from skip-gram vectors of the training passages (%lld words, 5 epochs)\n", (long long)n);
    return ok || cli_fail("text genre: word2vec") == 0;
}

static int run_neural(const genre_data *g, const genre_opts *o) {
    int64_t V = nb_vocab_size(g->vocab), C = g->corpus->genres.n;
    printf("neural: mean of %d-dim embeddings of %lld words, MLP %d-%d-%lld, dropout %g, Adam lr %g, "
           "batch %d\n", o->dim, (long long)V, o->dim, o->hidden, (long long)C, o->dropout, o->lr, o->batch);
    nb_dataset *train = ids_dataset(g, g->train, g->n_train, o->passage_words);
    nb_dataset *test = ids_dataset(g, g->test, g->n_test, o->passage_words);
    nb_module *m = bag_new(V, o->dim, o->hidden, C, (float)o->dropout);
    if (m && o->w2v && !init_from_word2vec(g, m, o)) nb_module_free(m), m = NULL;
    int rc = train && test && m ? train_and_report(g, m, train, test, o) : cli_fail("text genre: neural");
    nb_module_free(m);
    nb_dataset_free(train);
    nb_dataset_free(test);
    return rc;
}

static int run_genre(const char *dir, genre_opts *o) {
    bool tfidf = !strcmp(o->model, "tfidf");
    if (o->lr == 0) o->lr = tfidf ? 0.01 : 0.003;
    genre_data g;
    if (!load_data(&g, dir, o)) return genre_data_free(&g), 1;
    nb_manual_seed((uint64_t)o->seed);
    printf("genre: %lld passages of at most %d words (at least %d) from %lld documents, %lld genres; "
           "held out by document (%.0f %% of each genre, seed %d): %lld training and %lld held-out "
           "passages; vocabulary of the training passages: %d words (lower-cased, min count %d)\n",
           (long long)g.passages->n, o->passage_words, o->min_words, (long long)g.corpus->n_docs,
           (long long)g.corpus->genres.n, 100 * o->test_frac, o->seed, (long long)g.n_train,
           (long long)g.n_test, nb_vocab_size(g.vocab) - 2, o->min_count);
    int rc = tfidf ? run_tfidf(&g, o) : run_neural(&g, o);
    genre_data_free(&g);
    return rc;
}

int cmd_text_genre(int argc, char **argv) {
    genre_opts o = {.model = "tfidf", .passage_words = 150, .min_words = 50, .min_count = 2, .epochs = 10,
                    .batch = 32, .seed = 1, .dim = 64, .hidden = 128, .min_df = 2, .max_features = 20000,
                    .test_frac = 0.2, .lr = 0, .l2 = 1e-4, .dropout = 0.3};
    const cli_flag flags[] = {
        {"model", FLAG_STRING, &o.model, "tf-idf + logistic regression, or a bag of embeddings + MLP",
         NULL, "tfidf neural"},
        {"passage-words", FLAG_INT, &o.passage_words, "passages: whole sentences up to this many words", "[1, 10000]"},
        {"min-words", FLAG_INT, &o.min_words, "shorter passages (a document's tail) are left out", "[0, 10000]"},
        {"test-frac", FLAG_FLOAT, &o.test_frac, "share of each genre's documents held out", "(0, 1)"},
        {"seed", FLAG_INT, &o.seed, "the split's, the initial weights' and the batches' seed", "[0, inf)"},
        {"min-count", FLAG_INT, &o.min_count, "rarer training words become <unk>", "[1, inf)"},
        {"epochs", FLAG_INT, &o.epochs, "passes over the training passages", "[1, 1000]"},
        {"batch", FLAG_INT, &o.batch, "passages per step", "[1, 4096]"},
        {"lr", FLAG_FLOAT, &o.lr, "Adam's learning rate (0: 0.01 tfidf, 0.003 neural)", "[0, 10]"},
        {"l2", FLAG_FLOAT, &o.l2, "L2 penalty (Adam's weight_decay)", "[0, 10]"},
        {"min-df", FLAG_INT, &o.min_df, "tfidf: words in fewer training passages are no feature", "[1, inf)"},
        {"max-features", FLAG_INT, &o.max_features, "tfidf: the most frequent words kept (0: all)", "[0, inf)"},
        {"sublinear", FLAG_BOOL, &o.sublinear, "tfidf: tf = 1 + ln(count)"},
        {"dim", FLAG_INT, &o.dim, "neural: embedding size", "[1, 4096]"},
        {"hidden", FLAG_INT, &o.hidden, "neural: hidden units of the MLP", "[1, 4096]"},
        {"dropout", FLAG_FLOAT, &o.dropout, "neural: dropout before each Linear", "[0, 1)"},
        {"w2v", FLAG_BOOL, &o.w2v, "neural: embeddings start from skip-gram vectors of the training passages"},
    };
    const char *usage = "usage: nabla text genre BROWN_DIR [options]\n\n"
                        "Genre classification of passages of the Brown corpus as `nabla convert-brown` wrote it:\n"
                        "held-out accuracy, macro-F1 and the confusion matrix.";
    const char *pos[1];
    int np = cli_parse(argc, argv, 2, flags, (int)(sizeof flags / sizeof flags[0]), usage, pos, 1);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np != 1) return fprintf(stderr, "nabla text genre: needs BROWN_DIR (see --help)\n"), 2;
    if (o.min_words > o.passage_words)
        return fprintf(stderr, "nabla text genre: --min-words %d is above --passage-words %d\n", o.min_words,
                       o.passage_words), 2;
    return run_genre(pos[0], &o);
}
