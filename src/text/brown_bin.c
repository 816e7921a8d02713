/*
 * brown_bin.c — the compact form of the Brown corpus (nabla/text.h): two vocabularies, ids and
 * sentence starts as little-endian arrays, and the documents and genres in corpus.json.  A load
 * reads four small files whole and checks every count, id and range before it trusts one, so
 * a cut or edited file is an error naming it, never a read out of bounds.
 */
#include "internal.h"
#include "../io/io.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT "nabla.brown"

/* dir/name from the counted allocator (nb__strfree), or NULL. */
static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = nb__alloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---- writing */

/* n integers of `size` bytes (4 or 8) from vals (int32_t or int64_t), little-endian, to dir/name. */
static nb_status write_ints(const char *dir, const char *name, const void *vals, int64_t n, int size) {
    char *path = join(dir, name);
    size_t bytes = (size_t)n * (size_t)size;
    unsigned char *buf = path ? nb__alloc(bytes ? bytes : 1) : NULL;
    nb_status st = buf ? NB_OK : NB_ERR_MEMORY;
    for (int64_t i = 0; buf && i < n; i++) {
        uint64_t v = size == 4 ? (uint64_t)(uint32_t)((const int32_t *)vals)[i]
                               : (uint64_t)((const int64_t *)vals)[i];
        for (int b = 0; b < size; b++) buf[i * size + b] = (unsigned char)(v >> (8 * b));
    }
    nb__afile f;
    if (st == NB_OK && (st = nb__afile_begin(&f, "brown_convert", path)) == NB_OK) {
        nb__afile_write(&f, buf, bytes);
        st = nb__afile_commit(&f);
    }
    nb__dealloc(buf, bytes ? bytes : 1);
    nb__strfree(path);
    return st;
}

static json_t *corpus_json(const nb_corpus *c) {
    json_t *genres = json_array(), *docs = json_array();
    for (int64_t g = 0; g < c->genres.n; g++) json_array_append_new(genres, json_string(c->genres.token[g]));
    for (int64_t d = 0; d < c->n_docs; d++)
        json_array_append_new(docs, json_pack("{s:s, s:i, s:[I, I]}", "id", c->docs[d].id, "genre",
                                              c->docs[d].genre, "sentences",
                                              (json_int_t)c->docs[d].first_sentence,
                                              (json_int_t)c->docs[d].n_sentences));
    return json_pack("{s:s, s:I, s:I, s:o, s:o}", "format", FORMAT, "words",
                     (json_int_t)c->words.n, "sentences", (json_int_t)c->n_sentences, "genres",
                     genres, "docs", docs);
}

static nb_status write_json(const char *dir, const char *name, json_t *j) {
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL, *path = join(dir, name);
    nb_status st = text && path ? NB_OK : nb__fail_status(NB_ERR_MEMORY, "brown_convert: out of memory");
    nb__afile f;
    if (st == NB_OK && (st = nb__afile_begin(&f, "brown_convert", path)) == NB_OK) {
        nb__afile_write(&f, text, strlen(text));
        st = nb__afile_commit(&f);
    }
    free(text);
    nb__strfree(path);
    return st;
}

/* The ids of tokens in a vocabulary of all of them, written as dir/<what>.vocab.json and
 * dir/<what>.i32. */
static nb_status write_tokens(const char *dir, const char *what, const nb_tokens *t) {
    char vocab_name[32], ids_name[32];
    snprintf(vocab_name, sizeof vocab_name, "%s.vocab.json", what);
    snprintf(ids_name, sizeof ids_name, "%s.i32", what);
    nb_vocab *v = nb_vocab_build((const char *const *)t->token, t->n, (nb_vocab_opts){0});
    int32_t *ids = v ? nb__alloc((size_t)t->n * sizeof *ids) : NULL;
    nb_status st = ids ? nb_vocab_encode(v, (const char *const *)t->token, t->n, ids) : nb_error_code();
    char *vpath = st == NB_OK ? join(dir, vocab_name) : NULL;
    if (st == NB_OK) st = vpath ? nb_vocab_save(v, vpath) : NB_ERR_MEMORY;
    if (st == NB_OK) st = write_ints(dir, ids_name, ids, t->n, 4);
    nb__strfree(vpath);
    if (ids) nb__dealloc(ids, (size_t)t->n * sizeof *ids);
    nb_vocab_free(v);
    return st;
}

nb_status nb_brown_convert(const char *package_dir, const char *out_dir) {
    if (!package_dir || !out_dir) return nb__fail_status(NB_ERR_NULL, "brown_convert: a path is NULL");
    nb_corpus *c = nb_brown_read(package_dir);
    if (!c) return nb_error_code();
    json_t *j = corpus_json(c);
    nb_status st = write_tokens(out_dir, "words", &c->words);
    if (st == NB_OK) st = write_tokens(out_dir, "tags", &c->tags);
    if (st == NB_OK) st = write_ints(out_dir, "sentences.i64", c->sentence_start, c->n_sentences + 1, 8);
    if (st == NB_OK) st = write_json(out_dir, "corpus.json", j); /* last: it marks a whole set */
    json_decref(j);
    nb_corpus_free(c);
    return st;
}

/* ---- reading */

/* The n little-endian integers of `size` bytes in dir/name into out (int32_t or int64_t). */
static nb_status read_ints(const char *dir, const char *name, void *out, int64_t n, int size) {
    char *path = join(dir, name);
    if (!path) return NB_ERR_MEMORY;
    FILE *f = fopen(path, "rb");
    size_t bytes = (size_t)n * (size_t)size;
    unsigned char *buf = f ? nb__alloc(bytes + 1) : NULL;
    nb_status st = NB_OK;
    if (!f) st = nb__fail_status(NB_ERR_IO, "brown_load: %s: %s", path, strerror(errno));
    else if (!buf) st = NB_ERR_MEMORY;
    else if (fread(buf, 1, bytes + 1, f) != bytes)
        st = nb__fail_status(NB_ERR_IO, "brown_load: %s: expected %zu bytes (%lld values), the "
                             "file's length differs", path, bytes, (long long)n);
    for (int64_t i = 0; st == NB_OK && i < n; i++) {
        uint64_t v = 0;
        for (int b = 0; b < size; b++) v |= (uint64_t)buf[i * size + b] << (8 * b);
        if (size == 4) ((int32_t *)out)[i] = (int32_t)(uint32_t)v;
        else ((int64_t *)out)[i] = (int64_t)v;
    }
    if (buf) nb__dealloc(buf, bytes + 1);
    if (f) fclose(f);
    nb__strfree(path);
    return st;
}

void nb_corpus_ids_free(nb_corpus_ids *c) {
    if (!c) return;
    for (int64_t d = 0; d < c->n_docs; d++) nb__strfree(c->docs[d].id);
    nb__dealloc(c->docs, (size_t)c->n_docs * sizeof *c->docs);
    nb__tokens_clear(&c->genres);
    nb__dealloc(c->sentence_start, (size_t)(c->n_sentences + 1) * sizeof *c->sentence_start);
    nb__dealloc(c->words, (size_t)c->n_words * sizeof *c->words);
    nb__dealloc(c->tags, (size_t)c->n_words * sizeof *c->tags);
    nb_vocab_free(c->word_vocab);
    nb_vocab_free(c->tag_vocab);
    nb__dealloc(c, sizeof *c);
}

/* Genres and documents from corpus.json; a message (for "brown_load: FILE: ...") or NULL. */
static const char *read_docs(nb_corpus_ids *c, const json_t *root) {
    const json_t *genres = json_object_get(root, "genres"), *docs = json_object_get(root, "docs");
    if (!json_is_array(genres) || !json_is_array(docs) || json_array_size(docs) == 0)
        return "\"genres\" and \"docs\" must be arrays, \"docs\" not empty";
    for (size_t g = 0; g < json_array_size(genres); g++) {
        const char *name = json_string_value(json_array_get(genres, g));
        if (!name) return "a genre is not a string";
        if (!nb__tokens_push(&c->genres, name, strlen(name))) return "out of memory";
    }
    if (!(c->docs = nb__alloc(json_array_size(docs) * sizeof *c->docs))) return "out of memory";
    c->n_docs = (int64_t)json_array_size(docs); /* ids NULL until read, so a free at any point works */
    memset(c->docs, 0, json_array_size(docs) * sizeof *c->docs);
    int64_t next = 0;
    for (size_t d = 0; d < json_array_size(docs); d++) {
        const json_t *doc = json_array_get(docs, d), *range = json_object_get(doc, "sentences");
        const char *id = json_string_value(json_object_get(doc, "id"));
        json_int_t genre = json_integer_value(json_object_get(doc, "genre"));
        json_int_t first = json_integer_value(json_array_get(range, 0));
        json_int_t count = json_integer_value(json_array_get(range, 1));
        if (!id || genre < 0 || genre >= c->genres.n || first != next || count < 0 ||
            count > c->n_sentences - first)
            return "a document without an id, with a genre out of range or with sentences that "
                   "do not follow the previous document's";
        c->docs[d] = (nb_corpus_doc){.id = nb__strdup(id), .genre = (int32_t)genre,
                                     .first_sentence = first, .n_sentences = count};
        if (!c->docs[d].id) return "out of memory";
        next = first + count;
    }
    return next == c->n_sentences ? NULL : "the documents do not cover every sentence";
}

/* Every id in ids[0..n) below v's size and every sentence start rising from 0 to n_words. */
static nb_status check_ids(const nb_corpus_ids *c, const char *dir) {
    for (int64_t i = 0; i < c->n_words; i++)
        if (c->words[i] < 0 || c->words[i] >= nb_vocab_size(c->word_vocab) || c->tags[i] < 0 ||
            c->tags[i] >= nb_vocab_size(c->tag_vocab))
            return nb__fail_status(NB_ERR_IO, "brown_load: %s: word %lld has an id out of its "
                                   "vocabulary (word %d, tag %d)", dir, (long long)i, c->words[i],
                                   c->tags[i]);
    for (int64_t s = 0; s < c->n_sentences; s++)
        if (c->sentence_start[s] > c->sentence_start[s + 1])
            return nb__fail_status(NB_ERR_IO, "brown_load: %s/sentences.i64: start %lld falls",
                                   dir, (long long)s + 1);
    if (c->sentence_start[0] != 0 || c->sentence_start[c->n_sentences] != c->n_words)
        return nb__fail_status(NB_ERR_IO, "brown_load: %s/sentences.i64: starts must run from 0 "
                               "to the %lld words", dir, (long long)c->n_words);
    return NB_OK;
}

/* corpus.json's counts and documents into c; NB_OK or the failure. */
static nb_status read_header(nb_corpus_ids *c, const char *dir) {
    char *path = join(dir, "corpus.json");
    if (!path) return NB_ERR_MEMORY;
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    nb_status st = NB_OK;
    if (!root) {
        st = nb__fail_status(NB_ERR_IO, "brown_load: %s: line %d, column %d: %s", path, err.line,
                             err.column, err.text);
    } else {
        const char *format = json_string_value(json_object_get(root, "format"));
        c->n_words = json_integer_value(json_object_get(root, "words"));
        c->n_sentences = json_integer_value(json_object_get(root, "sentences"));
        const char *problem = !format || strcmp(format, FORMAT) ? "not a converted corpus "
                              "(\"format\" is not \"" FORMAT "\")"
                              : c->n_words < 1 || c->n_sentences < 1 || c->n_words > INT32_MAX ||
                                c->n_sentences > c->n_words ? "\"words\" and \"sentences\" must "
                              "be counts, 1 <= sentences <= words < 2^31"
                              : read_docs(c, root);
        if (problem) st = nb__fail_status(NB_ERR_IO, "brown_load: %s: %s", path, problem);
    }
    json_decref(root);
    nb__strfree(path);
    return st;
}

/* Loads dir/<name>.vocab.json into *v. */
static nb_status load_vocab(const char *dir, const char *name, nb_vocab **v) {
    char *path = join(dir, name);
    if (!path) return NB_ERR_MEMORY;
    *v = nb_vocab_load(path);
    nb__strfree(path);
    return *v ? NB_OK : nb_error_code();
}

nb_corpus_ids *nb_brown_load(const char *dir) {
    if (!dir) return nb__fail(NB_ERR_NULL, "brown_load: dir is NULL");
    nb_corpus_ids *c = nb__alloc(sizeof *c);
    if (!c) return NULL;
    *c = (nb_corpus_ids){0};
    nb_status st = read_header(c, dir);
    if (st != NB_OK) c->n_words = c->n_sentences = 0; /* nothing of those sizes was allocated */
    if (st == NB_OK) {
        c->sentence_start = nb__alloc((size_t)(c->n_sentences + 1) * sizeof *c->sentence_start);
        c->words = nb__alloc((size_t)c->n_words * sizeof *c->words);
        c->tags = nb__alloc((size_t)c->n_words * sizeof *c->tags);
        if (!c->sentence_start || !c->words || !c->tags) st = NB_ERR_MEMORY;
    }
    if (st == NB_OK) st = load_vocab(dir, "words.vocab.json", &c->word_vocab);
    if (st == NB_OK) st = load_vocab(dir, "tags.vocab.json", &c->tag_vocab);
    if (st == NB_OK) st = read_ints(dir, "words.i32", c->words, c->n_words, 4);
    if (st == NB_OK) st = read_ints(dir, "tags.i32", c->tags, c->n_words, 4);
    if (st == NB_OK) st = read_ints(dir, "sentences.i64", c->sentence_start, c->n_sentences + 1, 8);
    if (st == NB_OK) st = check_ids(c, dir);
    if (st != NB_OK) {
        nb_corpus_ids_free(c);
        return NULL;
    }
    return c;
}
