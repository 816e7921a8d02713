/*
 * tokenize.c — token lists, the character and word tokenizers and the English stop words.
 *
 * Characters are UTF-8 code points.  Words are runs between ASCII white space; with
 * split_punct each ASCII punctuation mark becomes a token of its own, except an apostrophe or a
 * hyphen with a letter or digit on both sides, which stays inside its word ("don't",
 * "well-known"), as NLTK's word tokenizer keeps them.  Non-ASCII bytes are letters here.
 */
#include "internal.h"

#include <ctype.h>
#include <string.h>

nb_tokens *nb__tokens_new(void) {
    nb_tokens *t = nb__alloc(sizeof *t);
    if (t) *t = (nb_tokens){0};
    return t;
}

bool nb__grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return true;
    int64_t grown = *cap ? *cap : 64;
    while (grown < need) grown *= 2;
    void *q = nb__alloc((size_t)grown * elem);
    if (!q) return false;
    if (*cap) memcpy(q, *p, (size_t)*cap * elem);
    nb__dealloc(*p, (size_t)*cap * elem);
    *p = q;
    *cap = grown;
    return true;
}

bool nb__tokens_push(nb_tokens *t, const char *s, size_t n) {
    if (!nb__grow((void **)&t->token, &t->cap, t->n + 1, sizeof *t->token)) return false;
    char *copy = nb__alloc(n + 1);
    if (!copy) return false;
    memcpy(copy, s, n);
    copy[n] = '\0';
    t->token[t->n++] = copy;
    return true;
}

void nb__tokens_clear(nb_tokens *t) {
    for (int64_t i = 0; i < t->n; i++) nb__strfree(t->token[i]);
    nb__dealloc(t->token, (size_t)t->cap * sizeof *t->token);
    *t = (nb_tokens){0};
}

void nb_tokens_free(nb_tokens *t) {
    if (!t) return;
    nb__tokens_clear(t);
    nb__dealloc(t, sizeof *t);
}

/* The list, or NULL after freeing it when push failed. */
static nb_tokens *done(nb_tokens *t, bool ok) {
    if (ok) return t;
    nb_tokens_free(t);
    return NULL;
}

nb_tokens *nb_tokenize_chars(const char *text) {
    if (!text) return nb__fail(NB_ERR_NULL, "tokenize_chars: text is NULL");
    size_t n = strlen(text);
    if (nb_utf8_check("tokenize_chars", text, n) != NB_OK) return NULL;
    nb_tokens *t = nb__tokens_new();
    bool ok = t != NULL;
    for (size_t i = 0; ok && i < n;) {
        size_t len = (size_t)nb__utf8_len((const unsigned char *)text + i, n - i, NULL);
        ok = nb__tokens_push(t, text + i, len);
        i += len;
    }
    return done(t, ok);
}

static const char *const stop_en[] = {
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
    "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but",
    "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for",
    "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself",
    "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just",
    "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once",
    "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she",
    "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them",
    "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too",
    "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
    "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself",
    "yourselves", NULL};

const char *const *nb_stop_words_en(void) { return stop_en; }

static bool is_stop(const char *w, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(w, *list)) return true;
    return false;
}

static bool is_word_char(unsigned char c) { return c >= 0x80 || isalnum(c); }

/* Adds word w[0..n) (lower-cased when asked) unless it is a stop word that is to go. */
static bool add_word(nb_tokens *t, const char *w, size_t n, const nb_word_opts *o) {
    if (!nb__tokens_push(t, w, n)) return false;
    char *s = t->token[t->n - 1];
    if (o->lower)
        for (char *p = s; *p; p++) *p = (char)tolower((unsigned char)*p);
    if (o->drop_stop && is_stop(s, o->stop_words ? o->stop_words : stop_en)) nb__strfree(t->token[--t->n]);
    return true;
}

/* Splits the run w[0..n) (no white space) at punctuation into t. */
static bool split_run(nb_tokens *t, const char *w, size_t n, const nb_word_opts *o) {
    const unsigned char *u = (const unsigned char *)w;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ispunct(u[i])) continue;
        bool joiner = (u[i] == '\'' || u[i] == '-') && i > 0 && i + 1 < n &&
                      is_word_char(u[i - 1]) && is_word_char(u[i + 1]);
        if (joiner) continue;
        if (i > start && !add_word(t, w + start, i - start, o)) return false;
        if (!add_word(t, w + i, 1, o)) return false;
        start = i + 1;
    }
    return n == start || add_word(t, w + start, n - start, o);
}

nb_tokens *nb_tokenize_words(const char *text, nb_word_opts opts) {
    if (!text) return nb__fail(NB_ERR_NULL, "tokenize_words: text is NULL");
    size_t n = strlen(text);
    if (nb_utf8_check("tokenize_words", text, n) != NB_OK) return NULL;
    nb_tokens *t = nb__tokens_new();
    bool ok = t != NULL;
    for (size_t i = 0; ok && i < n;) {
        while (i < n && isspace((unsigned char)text[i])) i++;
        size_t start = i;
        while (i < n && !isspace((unsigned char)text[i])) i++;
        if (i == start) break;
        ok = opts.split_punct ? split_run(t, text + start, i - start, &opts)
                              : add_word(t, text + start, i - start, &opts);
    }
    return done(t, ok);
}
