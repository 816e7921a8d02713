/*
 * text_word2vec.c — `nabla text word2vec BROWN_DIR`: word vectors trained on the Brown corpus
 * (the compact form `nabla convert-brown` writes) with nb_word2vec_train, then
 *   - the throughput, words a second of wall time (every word of every epoch, as word2vec.c
 *     counts them, before subsampling);
 *   - the --k nearest neighbours of each --words word, by cosine;
 *   - the analogies of --analogies ("man:king:woman" asks man : king :: woman : ?);
 *   - the vectors in the word2vec text format (--out), which gensim and others read.
 * Words are lower-cased first (unless --keep-case), so "The" and "the" are one word and
 * the vocabulary is built again from the lower-cased stream, keeping words seen --min-count
 * times.
 */
#include "cli.h"

#include <ctype.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *words, *analogies, *out;
    int dim, window, negative, epochs, min_count, k, seed;
    double sample, lr;
    bool cbow, keep_case;
} w2v_opts;

/* The corpus as lower-cased (or as written) tokens, and the vocabulary built on them. */
typedef struct {
    char **tokens;
    int64_t n;
    nb_vocab *vocab;
    int32_t *stream;
} w2v_text;

static void w2v_text_free(w2v_text *t) {
    for (int64_t i = 0; i < t->n; i++) free(t->tokens[i]);
    free(t->tokens);
    free(t->stream);
    nb_vocab_free(t->vocab);
}

static char *copy_word(const char *w, bool lower) {
    size_t n = strlen(w);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    for (size_t i = 0; i <= n; i++) s[i] = lower ? (char)tolower((unsigned char)w[i]) : w[i];
    return s;
}

static bool w2v_text_make(w2v_text *t, const nb_corpus_ids *c, const w2v_opts *o) {
    memset(t, 0, sizeof *t);
    t->tokens = calloc((size_t)c->n_words, sizeof *t->tokens);
    t->stream = malloc((size_t)c->n_words * sizeof *t->stream);
    if (!t->tokens || !t->stream) return fprintf(stderr, "nabla text word2vec: out of memory\n"), false;
    for (; t->n < c->n_words; t->n++) {
        t->tokens[t->n] = copy_word(nb_vocab_token(c->word_vocab, c->words[t->n]), !o->keep_case);
        if (!t->tokens[t->n]) return fprintf(stderr, "nabla text word2vec: out of memory\n"), false;
    }
    nb_vocab_opts vo = {.min_count = o->min_count};
    t->vocab = nb_vocab_build((const char *const *)t->tokens, t->n, vo);
    if (!t->vocab) return cli_fail("text word2vec: vocabulary") == 0;
    return nb_vocab_encode(t->vocab, (const char *const *)t->tokens, t->n, t->stream) == NB_OK ||
           cli_fail("text word2vec: encoding") == 0;
}

static void print_neighbours(const nb_tensor *vec, const nb_vocab *v, const char *word, int k) {
    int32_t id = nb_vocab_id(v, word), ids[64];
    float sims[64], q[1000]; /* --dim is at most 1000 */
    if (id < 2) {
        printf("  %-12s (not in the vocabulary)\n", word);
        return;
    }
    /* nb_get, not nb_data: the vectors may live in a backend's memory (NB_BACKEND=guarded). */
    for (int64_t j = 0; j < nb_shape(vec)[1]; j++) q[j] = nb_get(vec, (int64_t[]){id, j});
    int64_t got = nb_word2vec_nearest(vec, q, &id, 1, k, ids, sims);
    printf("  %-12s", word);
    for (int64_t i = 0; i < got; i++) printf(" %s (%.2f)", nb_vocab_token(v, ids[i]), sims[i]);
    printf("\n");
}

/* "a:b:c" -> a : b :: c : ?, printed with the answer. */
static void print_analogy(nb_tensor *vec, const nb_vocab *v, char *spec) {
    char *w[3];
    w[0] = strtok(spec, ":");
    w[1] = strtok(NULL, ":");
    w[2] = strtok(NULL, ":");
    if (!w[2]) {
        printf("  %s: needs the form a:b:c\n", w[0] ? w[0] : "");
        return;
    }
    int32_t id[3];
    for (int i = 0; i < 3; i++) {
        id[i] = nb_vocab_id(v, w[i]);
        if (id[i] < 2) {
            printf("  %s : %s :: %s : ? (%s is not in the vocabulary)\n", w[0], w[1], w[2], w[i]);
            return;
        }
    }
    int32_t ans = nb_word2vec_analogy(vec, id[0], id[1], id[2]);
    printf("  %s : %s :: %s : %s\n", w[0], w[1], w[2], ans >= 0 ? nb_vocab_token(v, ans) : "?");
}

/* Each item of a comma-separated list, in a writable copy (print_analogy cuts it). */
static void each_item(const char *list, void (*fn)(nb_tensor *, const nb_vocab *, char *),
                      nb_tensor *vec, const nb_vocab *v) {
    char *copy = copy_word(list, false), *save = NULL;
    if (!copy) return;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) fn(vec, v, item);
    free(copy);
}

static int w2v_k; /* the neighbours' count for the callback below */
static void neighbours_item(nb_tensor *vec, const nb_vocab *v, char *word) {
    print_neighbours(vec, v, word, w2v_k);
}

static int run_word2vec(const char *dir, const w2v_opts *o) {
    nb_corpus_ids *c = nb_brown_load(dir);
    if (!c) return cli_fail("text word2vec");
    w2v_text t;
    bool ok = w2v_text_make(&t, c, o);
    nb_corpus_ids_free(c);
    if (!ok) return w2v_text_free(&t), 1;
    nb_word2vec_opts wo = {.cbow = o->cbow, .dim = o->dim, .window = o->window, .negative = o->negative,
                           .sample = (float)o->sample, .lr = (float)o->lr, .epochs = o->epochs,
                           .seed = (uint64_t)o->seed};
    printf("word2vec (%s): %lld words, %d in the vocabulary, dim %d, window %d, %d negatives, %d epochs\n",
           o->cbow ? "CBOW" : "skip-gram", (long long)t.n, nb_vocab_size(t.vocab) - 2, o->dim, o->window,
           o->negative, o->epochs);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    nb_tensor *vec = nb_word2vec_train(t.stream, t.n, t.vocab, wo);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!vec) return w2v_text_free(&t), cli_fail("text word2vec");
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("trained in %.1f s: %.0f words/s (one thread)\n", s, (double)t.n * o->epochs / s);
    w2v_k = o->k;
    if (*o->words) printf("nearest neighbours (cosine):\n"), each_item(o->words, neighbours_item, vec, t.vocab);
    if (*o->analogies) printf("analogies:\n"), each_item(o->analogies, print_analogy, vec, t.vocab);
    int rc = 0;
    if (*o->out) {
        if (nb_word2vec_save(vec, t.vocab, o->out) == NB_OK) printf("wrote %s\n", o->out);
        else rc = cli_fail("text word2vec");
    }
    nb_tensor_free(vec);
    w2v_text_free(&t);
    return rc;
}

int cmd_text_word2vec(int argc, char **argv) {
    w2v_opts o = {.words = "money,king,city,man,good,church,war,water,said,three",
                  .analogies = "man:king:woman,he:his:she,big:bigger:small",
                  .out = "", .dim = 100, .window = 5, .negative = 5, .epochs = 5, .min_count = 5,
                  .k = 10, .seed = 1, .sample = 1e-3, .lr = 0};
    const cli_flag flags[] = {
        {"cbow", FLAG_BOOL, &o.cbow, "CBOW instead of skip-gram"},
        {"dim", FLAG_INT, &o.dim, "vector size", "[1, 1000]"},
        {"window", FLAG_INT, &o.window, "context words on each side", "[1, 50]"},
        {"negative", FLAG_INT, &o.negative, "noise words per target", "[1, 50]"},
        {"sample", FLAG_FLOAT, &o.sample, "subsampling threshold (0: off)", "[0, 1]"},
        {"lr", FLAG_FLOAT, &o.lr, "starting learning rate (0: 0.025 skip-gram, 0.05 CBOW)", "[0, 10]"},
        {"epochs", FLAG_INT, &o.epochs, "passes over the corpus", "[1, 1000]"},
        {"min-count", FLAG_INT, &o.min_count, "rarer words become <unk> and are skipped", "[1, inf)"},
        {"keep-case", FLAG_BOOL, &o.keep_case, "keep the words as written (default: lower-cased)"},
        {"words", FLAG_STRING, &o.words, "comma-separated words whose neighbours are printed"},
        {"k", FLAG_INT, &o.k, "neighbours printed per word", "[1, 64]"},
        {"analogies", FLAG_STRING, &o.analogies, "comma-separated a:b:c, asking a : b :: c : ?"},
        {"out", FLAG_STRING, &o.out, "write the vectors here in the word2vec text format"},
        {"seed", FLAG_INT, &o.seed, "random seed", "[0, inf)"},
    };
    const char *usage = "usage: nabla text word2vec BROWN_DIR [options]\n\n"
                        "Word vectors on the Brown corpus as `nabla convert-brown` wrote it.";
    const char *pos[1];
    int np = cli_parse(argc, argv, 2, flags, (int)(sizeof flags / sizeof flags[0]), usage, pos, 1);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np != 1) return fprintf(stderr, "nabla text word2vec: needs BROWN_DIR (see --help)\n"), 2;
    return run_word2vec(pos[0], &o);
}
