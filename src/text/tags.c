/*
 * tags.c — Brown's part-of-speech tags made ready for taggers (nabla/text.h): the base tag
 * (the Brown manual's fw- prefix and -tl, -hl, -nc suffixes left out, compound tags kept whole
 * with each part reduced), the held-out split by documents, the named-entity tags B/I/O read
 * off proper nouns and titles, and the cheap features of a word (shape, suffix) that let a
 * tagger guess the tag of a word it never saw.
 */
#include "internal.h"

#include <string.h>

/* One part of a tag, part[0..n), reduced into out (n bytes at most); returns its new length. */
static size_t reduce_part(const char *part, size_t n, char *out) {
    if (n > 3 && !memcmp(part, "fw-", 3)) part += 3, n -= 3;
    static const char *const suffixes[] = {"-tl", "-hl", "-nc"};
    for (bool cut = true; cut;) { /* "nn-tl-hl": each suffix in turn, in any order */
        cut = false;
        for (int k = 0; k < 3; k++)
            if (n > 3 && !memcmp(part + n - 3, suffixes[k], 3)) n -= 3, cut = true;
    }
    memcpy(out, part, n);
    return n;
}

nb_status nb_brown_base_tag(const char *tag, char *out, size_t cap) {
    if (!tag || !out) return nb__fail_status(NB_ERR_NULL, "brown_base_tag: tag or out is NULL");
    if (!*tag) return nb__fail_status(NB_ERR_ARG, "brown_base_tag: the tag is empty");
    char buf[256];
    size_t len = 0, n = strlen(tag);
    if (n >= sizeof buf) return nb__fail_status(NB_ERR_ARG, "brown_base_tag: tag \"%.20s...\" is longer "
                                                "than %zu bytes", tag, sizeof buf - 1);
    for (const char *p = tag;;) { /* each part of "ppss+bem" */
        const char *plus = strchr(p, '+');
        size_t part = plus ? (size_t)(plus - p) : strlen(p);
        len += reduce_part(p, part, buf + len);
        if (!plus) break;
        buf[len++] = '+';
        p = plus + 1;
    }
    if (len >= cap) return nb__fail_status(NB_ERR_ARG, "brown_base_tag: the base tag of \"%s\" needs "
                                           "%zu bytes, cap is %zu", tag, len + 1, cap);
    memcpy(out, buf, len);
    out[len] = '\0';
    return NB_OK;
}

bool nb_brown_is_held_out(int64_t doc) { return doc % 10 == 9; }

/* A proper noun ("np", "nps$", "np+bez", "fw-np") or a title word (any part with -tl). */
static bool is_entity_tag(const char *tag) {
    char base[256];
    if (strstr(tag, "-tl")) return true;
    return nb_brown_base_tag(tag, base, sizeof base) == NB_OK && !strncmp(base, "np", 2);
}

nb_status nb_brown_entity_tags(const char *const *tags, int64_t n, int32_t *out) {
    if (!tags || !out) return nb__fail_status(NB_ERR_NULL, "brown_entity_tags: tags or out is NULL");
    bool inside = false;
    for (int64_t i = 0; i < n; i++) {
        if (!tags[i]) return nb__fail_status(NB_ERR_NULL, "brown_entity_tags: tags[%lld] is NULL", (long long)i);
        bool e = is_entity_tag(tags[i]);
        out[i] = !e ? NB_ENTITY_O : inside ? NB_ENTITY_I : NB_ENTITY_B;
        inside = e;
    }
    return NB_OK;
}

int32_t nb_word_shape(const char *word) {
    int upper = 0, letters = 0, digit = 0, hyphen = 0;
    for (const char *p = word ? word : ""; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        bool up = ch >= 'A' && ch <= 'Z', low = ch >= 'a' && ch <= 'z';
        letters += up || low;
        upper += up;
        digit |= ch >= '0' && ch <= '9';
        hyphen |= ch == '-';
    }
    int c = upper == 0 ? 0 : upper == letters && letters > 1 ? 2 : 1;
    return 1 + 4 * c + 2 * digit + hyphen;
}

nb_status nb_word_suffix(const char *word, int n_chars, char *out, size_t cap) {
    if (!word || !out) return nb__fail_status(NB_ERR_NULL, "word_suffix: word or out is NULL");
    if (n_chars < 1) return nb__fail_status(NB_ERR_ARG, "word_suffix: n_chars %d < 1", n_chars);
    size_t n = strlen(word), start = n;
    /* back over n_chars code points: continuation bytes are 10xxxxxx */
    for (int k = 0; k < n_chars && start > 0; k++)
        do start--; while (start > 0 && ((unsigned char)word[start] & 0xC0) == 0x80);
    if (n - start >= cap)
        return nb__fail_status(NB_ERR_ARG, "word_suffix: %zu bytes do not fit in %zu", n - start + 1, cap);
    for (size_t i = start; i <= n; i++) {
        char ch = word[i];
        out[i - start] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    return NB_OK;
}
