/*
 * bpe.c — byte-level byte-pair encoding (Sennrich, Haddow & Birch 2016, "Neural Machine
 * Translation of Rare Words with Subword Units"; on bytes as GPT-2 does, so no text needs <unk>).
 *
 * Ids: 0 <pad>, 1 <unk>, 2 + v for byte v, then 258 + k for merge k = (a, b): the token whose
 * bytes are a's followed by b's.  Training cuts the text into pieces (a run of white space, or a
 * run of other bytes with the one space before it), counts the distinct pieces, and then
 * repeatedly joins the most frequent adjacent pair of ids over all pieces, weighted by their
 * counts, rewriting every occurrence.  Encoding a piece starts from its bytes and applies the
 * merge of lowest rank present, everywhere in the piece, until none applies: the order training
 * learnt them in, so a training text encodes as training saw it.
 */
#include "internal.h"
#include "../io/io.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT "nabla.bpe"

/* ---- a map from a pair of ids (a << 32 | b, never 0 since ids of bytes are >= 2) to a number */
typedef struct {
    uint64_t *key;
    int64_t *val;
    size_t n_slots, used; /* n_slots a power of two, used <= n_slots / 2 */
} pair_map;

static size_t map_slot(const pair_map *m, uint64_t key) {
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (m->n_slots - 1);
    while (m->key[i] && m->key[i] != key) i = (i + 1) & (m->n_slots - 1);
    return i;
}

static void map_free(pair_map *m) {
    nb__dealloc(m->key, m->n_slots * sizeof *m->key);
    nb__dealloc(m->val, m->n_slots * sizeof *m->val);
    *m = (pair_map){0};
}

/* An empty map of n_slots (a power of two); false with NB_ERR_MEMORY. */
static bool map_init(pair_map *m, size_t n_slots) {
    *m = (pair_map){.n_slots = n_slots};
    m->key = nb__alloc(n_slots * sizeof *m->key);
    m->val = nb__alloc(n_slots * sizeof *m->val);
    if (!m->key || !m->val) return map_free(m), false;
    memset(m->key, 0, n_slots * sizeof *m->key);
    return true;
}

/* map[key] += delta (from 0 when absent); false with NB_ERR_MEMORY. */
static bool map_add(pair_map *m, uint64_t key, int64_t delta) {
    if (2 * (m->used + 1) > m->n_slots) {
        pair_map bigger;
        if (!map_init(&bigger, 2 * m->n_slots)) return false;
        for (size_t i = 0; i < m->n_slots; i++)
            if (m->key[i]) {
                size_t j = map_slot(&bigger, m->key[i]);
                bigger.key[j] = m->key[i];
                bigger.val[j] = m->val[i];
            }
        bigger.used = m->used;
        map_free(m);
        *m = bigger;
    }
    size_t i = map_slot(m, key);
    if (!m->key[i]) {
        m->key[i] = key;
        m->val[i] = 0;
        m->used++;
    }
    m->val[i] += delta;
    return true;
}

static int64_t map_get(const pair_map *m, uint64_t key) {
    size_t i = map_slot(m, key);
    return m->key[i] ? m->val[i] : -1;
}

static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

/* ---- the model */
struct nb_bpe {
    int32_t n_ids;       /* NB_BPE_BYTES + merges */
    int64_t merge_cap, bytes_cap;
    int32_t (*merge)[2]; /* [merge_cap]: merge[id] = the pair id joins (ids >= NB_BPE_BYTES) */
    char **bytes;        /* [bytes_cap]: each id's bytes, NUL-terminated ("" for <pad>, <unk>, 0x00) */
    pair_map rank;       /* pair -> the id its merge made */
};

void nb_bpe_free(nb_bpe *b) {
    if (!b) return;
    for (int32_t id = 0; id < b->n_ids; id++) nb__strfree(b->bytes[id]);
    nb__dealloc(b->merge, (size_t)b->merge_cap * sizeof *b->merge);
    nb__dealloc(b->bytes, (size_t)b->bytes_cap * sizeof *b->bytes);
    map_free(&b->rank);
    nb__dealloc(b, sizeof *b);
}

/* The id of a new token joining a and c; -1 with NB_ERR_MEMORY. */
static int32_t add_token(nb_bpe *b, int32_t a, int32_t c, const char *bytes) {
    if (!nb__grow((void **)&b->merge, &b->merge_cap, b->n_ids + 1, sizeof *b->merge) ||
        !nb__grow((void **)&b->bytes, &b->bytes_cap, b->n_ids + 1, sizeof *b->bytes))
        return -1;
    int32_t id = b->n_ids;
    b->merge[id][0] = a;
    b->merge[id][1] = c;
    b->bytes[id] = bytes ? nb__strdup(bytes)
                         : nb__strcat2(b->bytes[a], b->bytes[c]);
    if (!b->bytes[id]) return -1;
    b->n_ids++;
    if (id >= NB_BPE_BYTES && !map_add(&b->rank, pair_key(a, c), id)) return -1;
    return id;
}

/* A model with the 258 base ids and no merges. */
static nb_bpe *bpe_new(void) {
    nb_bpe *b = nb__alloc(sizeof *b);
    if (!b) return NULL;
    *b = (nb_bpe){0};
    bool ok = map_init(&b->rank, 1024);
    for (int v = -2; ok && v < 256; v++) {
        char byte[2] = {(char)(v < 0 ? 0 : v), 0};
        ok = add_token(b, -1, -1, byte) >= 0;
    }
    if (!ok) {
        nb_bpe_free(b);
        return NULL;
    }
    return b;
}

int32_t nb_bpe_size(const nb_bpe *b) {
    if (!b) return nb__fail(NB_ERR_NULL, "bpe_size: model is NULL"), -1;
    return b->n_ids;
}

/* The length of the piece at s (s non-empty): white space, or " "? + other bytes; see above. */
static size_t piece_len(const char *s) {
    size_t j = 0;
    if (s[0] == ' ' && s[1] && !isspace((unsigned char)s[1])) {
        j = 1;
    } else if (isspace((unsigned char)s[0])) {
        while (isspace((unsigned char)s[j])) j++;
        if (s[j] && j > 1 && s[j - 1] == ' ') j--; /* the last space goes with the next word */
        return j;
    }
    while (s[j] && !isspace((unsigned char)s[j])) j++;
    return j;
}

/* Replaces each (a, c) in s[0..*n) by id, left to right; returns how many it replaced. */
static int64_t join_pairs(int32_t *s, int64_t *n, int32_t a, int32_t c, int32_t id) {
    int64_t w = 0, joined = 0;
    for (int64_t r = 0; r < *n;) {
        if (r + 1 < *n && s[r] == a && s[r + 1] == c) {
            s[w++] = id;
            r += 2;
            joined++;
        } else {
            s[w++] = s[r++];
        }
    }
    *n = w;
    return joined;
}

/* ---- training */

/* The distinct pieces of text as symbol runs: sym holds them one after another, piece p at
 * sym[start[p]] with len[p] symbols and count[p] occurrences. */
typedef struct {
    int64_t n, n_sym;
    int32_t *sym;
    int64_t *start, *len, *count;
} pieces;

/* Elements allocated for an array of n: at least one, so an empty text allocates too. */
static size_t slots(int64_t n) { return (size_t)(n ? n : 1); }

static void pieces_free(pieces *p) {
    nb__dealloc(p->sym, slots(p->n_sym) * sizeof *p->sym);
    nb__dealloc(p->start, slots(p->n) * sizeof *p->start);
    nb__dealloc(p->len, slots(p->n) * sizeof *p->len);
    nb__dealloc(p->count, slots(p->n) * sizeof *p->count);
}

static bool pieces_of(const char *text, pieces *p) {
    *p = (pieces){0};
    nb_tokens *all = nb__tokens_new();
    bool ok = all != NULL;
    for (const char *s = text; ok && *s;) {
        size_t n = piece_len(s);
        ok = nb__tokens_push(all, s, n);
        s += n;
    }
    nb_vocab *v = ok ? nb_vocab_build((const char *const *)all->token, all->n, (nb_vocab_opts){0}) : NULL;
    nb_tokens_free(all);
    if (!v) return false;
    p->n = nb_vocab_size(v) - 2;
    for (int32_t id = 2; id < nb_vocab_size(v); id++) p->n_sym += (int64_t)strlen(nb_vocab_token(v, id));
    p->sym = nb__alloc(slots(p->n_sym) * sizeof *p->sym);
    p->start = nb__alloc(slots(p->n) * sizeof *p->start);
    p->len = nb__alloc(slots(p->n) * sizeof *p->len);
    p->count = nb__alloc(slots(p->n) * sizeof *p->count);
    ok = p->sym && p->start && p->len && p->count;
    for (int64_t i = 0, at = 0; ok && i < p->n; i++) {
        const unsigned char *tok = (const unsigned char *)nb_vocab_token(v, (int32_t)(i + 2));
        p->start[i] = at;
        p->len[i] = (int64_t)strlen((const char *)tok);
        p->count[i] = nb_vocab_count(v, (int32_t)(i + 2));
        for (int64_t k = 0; k < p->len[i]; k++) p->sym[at++] = 2 + tok[k];
    }
    nb_vocab_free(v);
    return ok;
}

/* The most frequent adjacent pair over all pieces (ties: the smaller key); 0 when none occurs
 * twice.  counts is cleared and refilled. */
static uint64_t best_pair(const pieces *p, pair_map *counts, bool *ok) {
    memset(counts->key, 0, counts->n_slots * sizeof *counts->key);
    counts->used = 0;
    for (int64_t i = 0; *ok && i < p->n; i++)
        for (int64_t k = 0; *ok && k + 1 < p->len[i]; k++)
            *ok = map_add(counts, pair_key(p->sym[p->start[i] + k], p->sym[p->start[i] + k + 1]),
                          p->count[i]);
    uint64_t best = 0;
    int64_t most = 1;
    for (size_t s = 0; s < counts->n_slots; s++)
        if (counts->key[s] && (counts->val[s] > most || (counts->val[s] == most && best &&
                                                          counts->key[s] < best)))
            best = counts->key[s], most = counts->val[s];
    return best;
}

nb_bpe *nb_bpe_train(const char *text, int32_t vocab_size) {
    if (!text) return nb__fail(NB_ERR_NULL, "bpe_train: text is NULL");
    if (vocab_size < NB_BPE_BYTES)
        return nb__fail(NB_ERR_ARG, "bpe_train: vocab_size %d is below the %d ids of <pad>, "
                        "<unk> and the bytes", vocab_size, NB_BPE_BYTES);
    if (nb_utf8_check("bpe_train", text, strlen(text)) != NB_OK) return NULL;
    pieces p;
    pair_map counts = {0};
    nb_bpe *b = bpe_new();
    bool ok = b && pieces_of(text, &p) && map_init(&counts, 1024);
    while (ok && b->n_ids < vocab_size) {
        uint64_t pair = best_pair(&p, &counts, &ok);
        if (!ok || !pair) break;
        int32_t a = (int32_t)(pair >> 32), c = (int32_t)(uint32_t)pair;
        int32_t id = add_token(b, a, c, NULL);
        ok = id >= 0;
        for (int64_t i = 0; ok && i < p.n; i++) join_pairs(p.sym + p.start[i], &p.len[i], a, c, id);
    }
    map_free(&counts);
    if (b) pieces_free(&p);
    if (!ok) {
        nb_bpe_free(b);
        return NULL;
    }
    return b;
}

/* ---- encoding and decoding */

/* Merges within s[0..*n), lowest rank first, until none applies. */
static void encode_piece(const nb_bpe *b, int32_t *s, int64_t *n) {
    for (;;) {
        int64_t best = -1;
        for (int64_t k = 0; k + 1 < *n; k++) {
            int64_t r = map_get(&b->rank, pair_key(s[k], s[k + 1]));
            if (r >= 0 && (best < 0 || r < best)) best = r;
        }
        if (best < 0) return;
        join_pairs(s, n, b->merge[best][0], b->merge[best][1], (int32_t)best);
    }
}

int64_t nb_bpe_encode(const nb_bpe *b, const char *text, int32_t *ids, int64_t cap) {
    if (!b || !text || !ids) return nb__fail(NB_ERR_NULL, "bpe_encode: model, text or ids is NULL"), -1;
    size_t n = strlen(text);
    if (cap < (int64_t)n)
        return nb__fail(NB_ERR_ARG, "bpe_encode: cap %lld is below the text's %zu bytes",
                        (long long)cap, n), -1;
    if (nb_utf8_check("bpe_encode", text, n) != NB_OK) return -1;
    int64_t at = 0;
    for (const char *s = text; *s;) {
        int64_t len = (int64_t)piece_len(s);
        for (int64_t k = 0; k < len; k++) ids[at + k] = 2 + (unsigned char)s[k];
        encode_piece(b, ids + at, &len);
        at += len;
        s += piece_len(s);
    }
    return at;
}

char *nb_bpe_decode(const nb_bpe *b, const int32_t *ids, int64_t n) {
    if (!b || (!ids && n > 0)) return nb__fail(NB_ERR_NULL, "bpe_decode: model or ids is NULL");
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= b->n_ids)
            return nb__fail(NB_ERR_ARG, "bpe_decode: ids[%lld] = %d is not below the model's %d "
                            "ids", (long long)i, ids[i], b->n_ids);
        total += strlen(b->bytes[ids[i]]);
    }
    char *out = nb__alloc(total + 1), *at = out;
    if (!out) return NULL;
    for (int64_t i = 0; i < n; i++) {
        size_t len = strlen(b->bytes[ids[i]]);
        memcpy(at, b->bytes[ids[i]], len);
        at += len;
    }
    *at = '\0';
    if (nb_utf8_check("bpe_decode: the ids' bytes", out, total) != NB_OK) {
        nb__dealloc(out, total + 1);
        return NULL;
    }
    return out;
}

/* ---- files */

nb_status nb_bpe_save(const nb_bpe *b, const char *path) {
    if (!b || !path) return nb__fail_status(NB_ERR_NULL, "bpe_save: model or path is NULL");
    json_t *merges = json_array();
    for (int32_t id = NB_BPE_BYTES; merges && id < b->n_ids; id++)
        json_array_append_new(merges, json_pack("[i, i]", b->merge[id][0], b->merge[id][1]));
    json_t *root = json_pack("{s:s, s:o}", "format", FORMAT, "merges", merges);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!text) return nb__fail_status(NB_ERR_MEMORY, "bpe_save: %s: out of memory", path);
    nb__afile f;
    nb_status st = nb__afile_begin(&f, "bpe_save", path);
    if (st == NB_OK) {
        nb__afile_write(&f, text, strlen(text));
        st = nb__afile_commit(&f);
    }
    free(text);
    return st;
}

nb_bpe *nb_bpe_load(const char *path) {
    if (!path) return nb__fail(NB_ERR_NULL, "bpe_load: path is NULL");
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root)
        return nb__fail(NB_ERR_IO, "bpe_load: %s: line %d, column %d: %s", path, err.line,
                        err.column, err.text);
    const char *format = json_string_value(json_object_get(root, "format"));
    const json_t *merges = json_object_get(root, "merges");
    nb_bpe *b = NULL;
    if (!format || strcmp(format, FORMAT) || !json_is_array(merges)) {
        nb__fail(NB_ERR_IO, "bpe_load: %s: not BPE merges (\"format\": \"" FORMAT "\" and a "
                 "\"merges\" array)", path);
    } else if ((b = bpe_new())) {
        for (size_t k = 0; b && k < json_array_size(merges); k++) {
            const json_t *m = json_array_get(merges, k);
            json_int_t a = json_integer_value(json_array_get(m, 0));
            json_int_t c = json_integer_value(json_array_get(m, 1));
            bool good = json_array_size(m) == 2 && json_is_integer(json_array_get(m, 0)) &&
                        json_is_integer(json_array_get(m, 1)) && a >= 2 && c >= 2 &&
                        a < b->n_ids && c < b->n_ids;
            if (!good)
                nb__fail(NB_ERR_IO, "bpe_load: %s: merge %zu is not a pair of ids in [2, %d)",
                         path, k, b->n_ids);
            if (!good || add_token(b, (int32_t)a, (int32_t)c, NULL) < 0) {
                nb_bpe_free(b);
                b = NULL;
            }
        }
    }
    json_decref(root);
    return b;
}
