/*
 * utf8.c — UTF-8 validation (RFC 3629) and reading text files that must be UTF-8.
 *
 * A sequence is 1 to 4 bytes: 0xxxxxxx; 110xxxxx 10xxxxxx (code point >= U+0080);
 * 1110xxxx 10xxxxxx 10xxxxxx (>= U+0800, not the surrogates U+D800..U+DFFF);
 * 11110xxx and three continuations (U+10000..U+10FFFF).  Anything else — a stray continuation
 * byte, a sequence cut short, an overlong form, a surrogate, 0xF5..0xFF — is not UTF-8.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int nb__utf8_len(const unsigned char *s, size_t n, const char **why) {
    const char *dummy;
    if (!why) why = &dummy;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (!len || c > 0xF4) return *why = "is not a valid first byte", 0;
    if ((size_t)len > n) return *why = "starts a sequence that ends early", 0;
    uint32_t cp = c & (0x7Fu >> len);
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return *why = "starts a sequence that ends early", 0;
        cp = cp << 6 | (s[k] & 0x3Fu);
    }
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len]) return *why = "starts an overlong form", 0;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return *why = "encodes a surrogate or a code point past U+10FFFF", 0;
    return len;
}

/* The first byte of s[0..n) that is not UTF-8 (or is NUL) fails with code and "<what>: byte N". */
static nb_status check(nb_status code, const char *what, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        const char *why = "is a NUL byte";
        int len = u[i] ? nb__utf8_len(u + i, n - i, &why) : 0;
        if (!len)
            return nb__fail_status(code, "%s: byte %zu is not UTF-8 (0x%02X %s)",
                                   what ? what : "text", i, u[i], why);
        i += (size_t)len;
    }
    return NB_OK;
}

nb_status nb_utf8_check(const char *what, const char *s, size_t n) {
    if (!s) return nb__fail_status(NB_ERR_NULL, "utf8_check: %s: text is NULL", what ? what : "text");
    return check(NB_ERR_ARG, what, s, n);
}

char *nb_text_read(const char *path, size_t *len) {
    if (!path) return nb__fail(NB_ERR_NULL, "text_read: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return nb__fail(NB_ERR_IO, "text_read: %s: %s", path, strerror(errno));
    char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return nb__fail(NB_ERR_IO, "text_read: %s: not a regular file", path);
    }
    if ((buf = nb__alloc((size_t)size + 1)) && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        nb__dealloc(buf, (size_t)size + 1);
        buf = nb__fail(NB_ERR_IO, "text_read: %s: read failed", path);
    }
    fclose(f);
    if (!buf) return NULL;
    buf[size] = '\0';
    if (check(NB_ERR_IO, path, buf, (size_t)size) != NB_OK) {
        nb__dealloc(buf, (size_t)size + 1);
        return NULL;
    }
    if (len) *len = (size_t)size;
    return buf;
}

void nb_text_free(char *text) { nb__strfree(text); }
