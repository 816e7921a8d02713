/*
 * passages.c — a corpus of documents cut into passages, each labelled with its document's genre,
 * and the split of the documents into training and held-out ones (genre classification).
 *
 * A passage is a run of whole consecutive sentences of one document, at most max_words words:
 * sentences are added while they fit, and a sentence longer than max_words alone is cut into
 * pieces of max_words (the last piece opening the next passage).  A document's words are
 * contiguous in the corpus (its sentences tile a range of them), so a passage is a range
 * [start, start + len) of the corpus's words.  Passages shorter than min_words (a document's
 * tail) are left out.
 *
 * The split is by document, so no passage of a held-out document is seen in training, and
 * stratified by genre: in each genre, round(test_frac x documents) of them (at least one when
 * the genre has two or more) are held out, chosen by a shuffle seeded with the seed.
 */
#include "internal.h"

#include <math.h>

void nb_passages_free(nb_passages *p) {
    if (!p) return;
    nb__dealloc(p->at, (size_t)p->cap * sizeof *p->at);
    nb__dealloc(p, sizeof *p);
}

/* Appends the passage [start, start + len) of document d when it has min_words words. */
static bool push(nb_passages *p, const nb_corpus_ids *c, int64_t d, int64_t start, int64_t len,
                 int64_t min_words) {
    if (len < min_words || len < 1) return true;
    if (!nb__grow((void **)&p->at, &p->cap, p->n + 1, sizeof *p->at)) return false;
    p->at[p->n++] = (nb_passage){.start = start, .len = len, .doc = d, .genre = c->docs[d].genre};
    return true;
}

/* Document d's passages: cur is the passage being filled, [start, start + cur). */
static bool cut_doc(nb_passages *p, const nb_corpus_ids *c, int64_t d, nb_passage_opts o) {
    const int64_t *ss = c->sentence_start;
    int64_t first = c->docs[d].first_sentence, last = first + c->docs[d].n_sentences;
    int64_t start = ss[first], cur = 0;
    for (int64_t s = first; s < last; s++) {
        int64_t len = ss[s + 1] - ss[s];
        if (cur > 0 && cur + len > o.max_words) {
            if (!push(p, c, d, start, cur, o.min_words)) return false;
            start += cur, cur = 0;
        }
        cur += len;
        for (; cur > o.max_words; start += o.max_words, cur -= o.max_words) /* a long sentence */
            if (!push(p, c, d, start, o.max_words, o.min_words)) return false;
    }
    return push(p, c, d, start, cur, o.min_words);
}

nb_passages *nb_passages_make(const nb_corpus_ids *c, nb_passage_opts opts) {
    if (!c) return nb__fail(NB_ERR_NULL, "passages_make: corpus is NULL");
    if (!opts.max_words) opts.max_words = 150;
    if (opts.max_words < 1 || opts.min_words < 0 || opts.min_words > opts.max_words)
        return nb__fail(NB_ERR_ARG, "passages_make: max_words %lld, min_words %lld: need 1 <= "
                        "max_words and 0 <= min_words <= max_words", (long long)opts.max_words,
                        (long long)opts.min_words);
    nb_passages *p = nb__alloc(sizeof *p);
    if (!p) return NULL;
    *p = (nb_passages){0};
    for (int64_t d = 0; d < c->n_docs; d++)
        if (!cut_doc(p, c, d, opts)) return nb_passages_free(p), NULL;
    if (p->n == 0) {
        nb_passages_free(p);
        return nb__fail(NB_ERR_ARG, "passages_make: no passage of at least %lld words in %lld "
                        "documents", (long long)opts.min_words, (long long)c->n_docs);
    }
    return p;
}

/* SplitMix64, for the shuffle: the split depends on the seed alone. */
static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

nb_status nb_corpus_split(const nb_corpus_ids *c, double test_frac, uint64_t seed, bool *test) {
    if (!c || !test) return nb__fail_status(NB_ERR_NULL, "corpus_split: corpus or test is NULL");
    if (!(test_frac > 0 && test_frac < 1))
        return nb__fail_status(NB_ERR_ARG, "corpus_split: test_frac %g is not in (0, 1)", test_frac);
    size_t bytes = (size_t)c->n_docs * sizeof(int64_t);
    int64_t *docs = nb__alloc(bytes);
    if (!docs) return NB_ERR_MEMORY;
    for (int64_t g = 0; g < c->genres.n; g++) {
        int64_t n = 0;
        for (int64_t d = 0; d < c->n_docs; d++)
            if (c->docs[d].genre == g) docs[n++] = d;
        for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            int64_t j = (int64_t)(splitmix(&seed) % (uint64_t)(i + 1)), t = docs[i];
            docs[i] = docs[j], docs[j] = t;
        }
        int64_t held = (int64_t)llround(test_frac * (double)n);
        if (held < 1 && n >= 2) held = 1;
        if (held > n - 1) held = n - 1; /* a genre keeps a training document */
        for (int64_t i = 0; i < n; i++) test[docs[i]] = i < held;
    }
    nb__dealloc(docs, bytes);
    return NB_OK;
}
