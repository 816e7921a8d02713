/*
 * vocab.c — vocabularies: token <-> id, with <pad> = 0 and <unk> = 1, built from counts.
 *
 * Tokens live in an array indexed by id; a hash table with open addressing (FNV-1a, linear
 * probing, at most half full) maps a token to its id.  Building counts the tokens in a
 * vocabulary of its own (every distinct token an id, its count beside it), then sorts the ids by
 * falling count, ties by byte order, and keeps the head: the same tokens give the same ids in
 * any input order.  Saved as JSON: {"format": "nabla.vocab", "tokens": [...], "counts": [...]}.
 */
#include "internal.h"
#include "../io/io.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT "nabla.vocab"

struct nb_vocab {
    int32_t n, cap;   /* ids in use, slots of token / count */
    char **token;     /* [cap] */
    int64_t *count;   /* [cap] */
    int32_t *table;   /* [n_table] id + 1, 0 for empty */
    size_t n_table;   /* a power of two >= 2n */
};

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The table slot holding token, or the empty slot where it would go. */
static size_t find_slot(const nb_vocab *v, const char *token) {
    size_t mask = v->n_table - 1, i = (size_t)fnv1a(token) & mask;
    while (v->table[i] && strcmp(v->token[v->table[i] - 1], token)) i = (i + 1) & mask;
    return i;
}

/* Doubles the arrays and the table when they are full; false with NB_ERR_MEMORY. */
static bool grow(nb_vocab *v) {
    if (v->n < v->cap) return true;
    int32_t cap = v->cap ? 2 * v->cap : 64;
    size_t n_table = 2 * (size_t)cap;
    char **token = nb__alloc((size_t)cap * sizeof *token);
    int64_t *count = nb__alloc((size_t)cap * sizeof *count);
    int32_t *table = nb__alloc(n_table * sizeof *table);
    if (!token || !count || !table) {
        nb__dealloc(token, (size_t)cap * sizeof *token);
        nb__dealloc(count, (size_t)cap * sizeof *count);
        nb__dealloc(table, n_table * sizeof *table);
        return false;
    }
    if (v->n) {
        memcpy(token, v->token, (size_t)v->n * sizeof *token);
        memcpy(count, v->count, (size_t)v->n * sizeof *count);
    }
    nb__dealloc(v->token, (size_t)v->cap * sizeof *token);
    nb__dealloc(v->count, (size_t)v->cap * sizeof *count);
    nb__dealloc(v->table, v->n_table * sizeof *table);
    *v = (nb_vocab){.n = v->n, .cap = cap, .token = token, .count = count, .table = table,
                    .n_table = n_table};
    memset(table, 0, n_table * sizeof *table);
    for (int32_t id = 0; id < v->n; id++) v->table[find_slot(v, v->token[id])] = id + 1;
    return true;
}

/* The id of token, added with count 0 when new; -1 with NB_ERR_MEMORY. */
static int32_t intern(nb_vocab *v, const char *token) {
    if (v->n_table) {
        size_t i = find_slot(v, token);
        if (v->table[i]) return v->table[i] - 1;
    }
    if (!grow(v)) return -1;
    char *copy = nb__strdup(token);
    if (!copy) return -1;
    v->token[v->n] = copy;
    v->count[v->n] = 0;
    v->table[find_slot(v, token)] = v->n + 1;
    return v->n++;
}

void nb_vocab_free(nb_vocab *v) {
    if (!v) return;
    for (int32_t id = 0; id < v->n; id++) nb__strfree(v->token[id]);
    nb__dealloc(v->token, (size_t)v->cap * sizeof *v->token);
    nb__dealloc(v->count, (size_t)v->cap * sizeof *v->count);
    nb__dealloc(v->table, v->n_table * sizeof *v->table);
    nb__dealloc(v, sizeof *v);
}

/* A vocabulary holding <pad> and <unk> only. */
static nb_vocab *vocab_new(void) {
    nb_vocab *v = nb__alloc(sizeof *v);
    if (!v) return NULL;
    *v = (nb_vocab){0};
    if (intern(v, NB_PAD_TOKEN) != NB_PAD_ID || intern(v, NB_UNK_TOKEN) != NB_UNK_ID) {
        nb_vocab_free(v);
        return NULL;
    }
    return v;
}

/* qsort's comparator has no user pointer: the vocabulary being sorted, one per thread. */
static _Thread_local const nb_vocab *sort_by;

static int by_count(const void *a, const void *b) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    int64_t ci = sort_by->count[i], cj = sort_by->count[j];
    if (ci != cj) return ci > cj ? -1 : 1;
    return strcmp(sort_by->token[i], sort_by->token[j]);
}

/* The vocabulary of the counted tokens in `counted` (ids 2.. in it), keeping the most frequent. */
static nb_vocab *keep_head(nb_vocab *counted, nb_vocab_opts opts) {
    int32_t n = counted->n - 2;
    int32_t *order = nb__alloc((size_t)(n ? n : 1) * sizeof *order);
    nb_vocab *v = order ? vocab_new() : NULL;
    if (!v) {
        nb__dealloc(order, (size_t)(n ? n : 1) * sizeof *order);
        return NULL;
    }
    for (int32_t i = 0; i < n; i++) order[i] = i + 2;
    sort_by = counted;
    qsort(order, (size_t)n, sizeof *order, by_count);
    for (int32_t k = 0; k < n; k++) {
        int32_t id = order[k];
        bool keep = counted->count[id] >= opts.min_count && (!opts.max_size || v->n < opts.max_size);
        if (!keep) {
            v->count[NB_UNK_ID] += counted->count[id];
            continue;
        }
        int32_t to = intern(v, counted->token[id]);
        if (to < 0) {
            nb_vocab_free(v);
            v = NULL;
            break;
        }
        v->count[to] = counted->count[id];
    }
    nb__dealloc(order, (size_t)(n ? n : 1) * sizeof *order);
    return v;
}

/* NB_OK when token i is UTF-8 (an ASCII token, the common case, needs no more than a scan),
 * else NB_ERR_ARG naming the token and the byte, as nb_utf8_check does. */
static nb_status check_token(const char *const *tokens, int64_t i) {
    size_t n = strlen(tokens[i]);
    for (size_t k = 0; k < n; k++)
        if ((unsigned char)tokens[i][k] >= 0x80) {
            char what[48];
            snprintf(what, sizeof what, "vocab_build: tokens[%lld]", (long long)i);
            return nb_utf8_check(what, tokens[i], n);
        }
    return NB_OK;
}

nb_vocab *nb_vocab_build(const char *const *tokens, int64_t n, nb_vocab_opts opts) {
    if (!tokens && n > 0) return nb__fail(NB_ERR_NULL, "vocab_build: tokens is NULL");
    if (n < 0 || opts.min_count < 0 || opts.max_size < 0 || opts.max_size == 1 || opts.max_size == 2)
        return nb__fail(NB_ERR_ARG, "vocab_build: n %lld, min_count %lld, max_size %d: n and "
                        "min_count must be >= 0, max_size 0 or >= 3 (<pad> and <unk> take two)",
                        (long long)n, (long long)opts.min_count, opts.max_size);
    nb_vocab *counted = vocab_new();
    for (int64_t i = 0; counted && i < n; i++) {
        if (!tokens[i]) {
            nb_vocab_free(counted);
            return nb__fail(NB_ERR_NULL, "vocab_build: tokens[%lld] is NULL", (long long)i);
        }
        int32_t id = check_token(tokens, i) == NB_OK ? intern(counted, tokens[i]) : -1;
        if (id < 0) {
            nb_vocab_free(counted);
            return NULL;
        }
        counted->count[id]++;
    }
    nb_vocab *v = counted ? keep_head(counted, opts) : NULL;
    if (v) v->count[NB_UNK_ID] += counted->count[NB_UNK_ID] + counted->count[NB_PAD_ID];
    nb_vocab_free(counted);
    return v;
}

int32_t nb_vocab_size(const nb_vocab *v) {
    if (!v) return nb__fail(NB_ERR_NULL, "vocab_size: vocabulary is NULL"), -1;
    return v->n;
}

int32_t nb_vocab_id(const nb_vocab *v, const char *token) {
    if (!v || !token) return nb__fail(NB_ERR_NULL, "vocab_id: vocabulary or token is NULL"), -1;
    int32_t slot = v->table[find_slot(v, token)];
    return slot ? slot - 1 : NB_UNK_ID;
}

const char *nb_vocab_token(const nb_vocab *v, int32_t id) {
    if (!v) return nb__fail(NB_ERR_NULL, "vocab_token: vocabulary is NULL");
    if (id < 0 || id >= v->n)
        return nb__fail(NB_ERR_ARG, "vocab_token: id %d is not below the vocabulary's %d ids",
                        id, v->n);
    return v->token[id];
}

int64_t nb_vocab_count(const nb_vocab *v, int32_t id) {
    return nb_vocab_token(v, id) ? v->count[id] : -1;
}

nb_status nb_vocab_encode(const nb_vocab *v, const char *const *tokens, int64_t n, int32_t *ids) {
    if (!v || (n > 0 && (!tokens || !ids)))
        return nb__fail_status(NB_ERR_NULL, "vocab_encode: vocabulary, tokens or ids is NULL");
    for (int64_t i = 0; i < n; i++)
        if ((ids[i] = nb_vocab_id(v, tokens[i])) < 0) return nb_error_code();
    return NB_OK;
}

nb_status nb_vocab_decode(const nb_vocab *v, const int32_t *ids, int64_t n, const char **tokens) {
    if (!v || (n > 0 && (!tokens || !ids)))
        return nb__fail_status(NB_ERR_NULL, "vocab_decode: vocabulary, ids or tokens is NULL");
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= v->n)
            return nb__fail_status(NB_ERR_ARG, "vocab_decode: ids[%lld] = %d is not below the "
                                   "vocabulary's %d ids", (long long)i, ids[i], v->n);
        tokens[i] = v->token[ids[i]];
    }
    return NB_OK;
}

nb_status nb_vocab_save(const nb_vocab *v, const char *path) {
    if (!v || !path) return nb__fail_status(NB_ERR_NULL, "vocab_save: vocabulary or path is NULL");
    json_t *tokens = json_array(), *counts = json_array();
    json_t *root = json_pack("{s:s, s:o, s:o}", "format", FORMAT, "tokens", tokens, "counts", counts);
    bool ok = root != NULL;
    for (int32_t id = 0; ok && id < v->n; id++)
        ok = !json_array_append_new(tokens, json_string(v->token[id])) &&
             !json_array_append_new(counts, json_integer(v->count[id]));
    char *text = ok ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!text) return nb__fail_status(NB_ERR_MEMORY, "vocab_save: %s: out of memory", path);
    nb__afile f;
    nb_status st = nb__afile_begin(&f, "vocab_save", path);
    if (st == NB_OK) {
        nb__afile_write(&f, text, strlen(text));
        st = nb__afile_commit(&f);
    }
    free(text);
    return st;
}

/* Why the loaded JSON is not a vocabulary, or NULL when it is one. */
static const char *vocab_json_problem(const json_t *root, const json_t *tokens, const json_t *counts) {
    if (!json_is_object(root) || strcmp(json_string_value(json_object_get(root, "format")) ?
                                        json_string_value(json_object_get(root, "format")) : "",
                                        FORMAT))
        return "not a vocabulary (\"format\" is not \"" FORMAT "\")";
    if (!json_is_array(tokens) || json_array_size(tokens) < 2 || !json_is_array(counts) ||
        json_array_size(counts) != json_array_size(tokens))
        return "\"tokens\" and \"counts\" must be arrays of one length, at least 2";
    if (json_array_size(tokens) > INT32_MAX) return "too many tokens";
    if (strcmp(json_string_value(json_array_get(tokens, 0)) ?
               json_string_value(json_array_get(tokens, 0)) : "", NB_PAD_TOKEN) ||
        strcmp(json_string_value(json_array_get(tokens, 1)) ?
               json_string_value(json_array_get(tokens, 1)) : "", NB_UNK_TOKEN))
        return "ids 0 and 1 must be " NB_PAD_TOKEN " and " NB_UNK_TOKEN;
    return NULL;
}

nb_vocab *nb_vocab_load(const char *path) {
    if (!path) return nb__fail(NB_ERR_NULL, "vocab_load: path is NULL");
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root)
        return nb__fail(NB_ERR_IO, "vocab_load: %s: line %d, column %d: %s", path, err.line,
                        err.column, err.text);
    const json_t *tokens = json_object_get(root, "tokens"), *counts = json_object_get(root, "counts");
    const char *problem = vocab_json_problem(root, tokens, counts);
    nb_vocab *v = problem ? NULL : vocab_new();
    for (size_t i = 2; v && !problem && i < json_array_size(tokens); i++) {
        const char *tok = json_string_value(json_array_get(tokens, i));
        const json_t *c = json_array_get(counts, i);
        if (!tok || !json_is_integer(c) || json_integer_value(c) < 0) {
            problem = "a token that is not a string or a count that is not an integer >= 0";
        } else if (nb_vocab_id(v, tok) != NB_UNK_ID || !strcmp(tok, NB_UNK_TOKEN)) {
            problem = "a token appears twice";
        } else {
            int32_t id = intern(v, tok);
            if (id < 0) {
                nb_vocab_free(v);
                v = NULL;
                break;
            }
            v->count[id] = json_integer_value(c);
        }
    }
    if (v && !problem) v->count[NB_UNK_ID] = json_integer_value(json_array_get(counts, 1));
    json_decref(root);
    if (problem) {
        nb_vocab_free(v);
        return nb__fail(NB_ERR_IO, "vocab_load: %s: %s", path, problem);
    }
    return v;
}
