/*
 * csv.c — numeric CSV for tabular regression.  The file is read whole, then scanned field by
 * field: fields split on the delimiter, rows on '\n' (a '\r' before it is dropped), a field may
 * be "quoted" with "" for a quote inside (no newlines in quotes: numbers never need them), blank
 * lines are skipped.  The first row fixes the number of columns.  Messages count lines and
 * columns from 1, as editors do; target specs count columns from 0, as pandas does.
 */
#include "internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const char *path;
    char *buf;
    size_t len;
    size_t pos;   /* next byte to scan */
    int64_t line; /* 1-based line of pos */
    char delim;
} scanner;

typedef struct {
    char *s;       /* content, quotes removed (in the scanner's buffer) */
    size_t n;
    size_t off;    /* byte offset of the field in the file */
} field;

static bool is_space(char c) { return c == ' ' || c == '\t'; }

/* Reads the field at pos (column col, for messages); *row_end is set when it ends its row.
 * Quoted content is unescaped in place unless dry (a counting pass that must leave it as is). */
static bool read_field(scanner *sc, int64_t col, bool dry, field *f, bool *row_end) {
    char *b = sc->buf;
    size_t p = sc->pos, len = sc->len;
    f->off = p;
    if (p < len && b[p] == '"') {
        size_t w = p + 1, r = p + 1;
        for (;;) {
            if (r >= len || b[r] == '\n')
                return nb__fail(NB_ERR_IO, "csv_read: %s: line %lld, column %lld: unterminated "
                                "quote opened at offset %zu", sc->path, (long long)sc->line,
                                (long long)col, p), false;
            if (b[r] == '"' && !(r + 1 < len && b[r + 1] == '"')) break;
            char c = b[r];
            r += c == '"' ? 2 : 1;
            if (!dry) b[w] = c;
            w++;
        }
        f->s = b + p + 1;
        f->n = w - (p + 1);
        for (p = r + 1; p < len && is_space(b[p]) && b[p] != sc->delim; p++) {
        }
        if (p < len && b[p] == '\r' && (p + 1 == len || b[p + 1] == '\n')) p++;
        if (p < len && b[p] != sc->delim && b[p] != '\n')
            return nb__fail(NB_ERR_IO, "csv_read: %s: line %lld, column %lld: text after a "
                            "closing quote at offset %zu", sc->path, (long long)sc->line,
                            (long long)col, p), false;
    } else {
        size_t e = p;
        while (e < len && b[e] != sc->delim && b[e] != '\n') e++;
        f->s = b + p;
        f->n = e - p;
        if (f->n && f->s[f->n - 1] == '\r' && (e == len || b[e] == '\n')) f->n--;
        p = e;
    }
    *row_end = p >= len || b[p] == '\n';
    sc->pos = p < len ? p + 1 : len;
    if (*row_end && p < len) sc->line++;
    return true;
}

/* Skips blank lines (only spaces, tabs, '\r'); false at the end of the file. */
static bool skip_blank(scanner *sc) {
    for (;;) {
        size_t p = sc->pos;
        while (p < sc->len && (is_space(sc->buf[p]) || sc->buf[p] == '\r')) p++;
        if (p >= sc->len) return false;
        if (sc->buf[p] != '\n') return true;
        sc->pos = p + 1;
        sc->line++;
    }
}

/* strtod on the field where it lies, NUL-terminated for the call and restored after: a field of
 * any length is read whole, with no copy.  The byte after a field is a delimiter, a quote, '\r',
 * '\n' or the NUL that ends the buffer, so it is always inside the buffer. */
static bool parse_number(const char *path, int64_t line, const field *f, int64_t col,
                         float *out) {
    char *s = f->s;
    size_t n = f->n;
    while (n && is_space(*s)) s++, n--;
    while (n && is_space(s[n - 1])) n--;
    double v = 0;
    bool whole = false; /* strtod read every character */
    if (n > 0) {
        char after = s[n], *end;
        s[n] = '\0';
        v = strtod(s, &end);
        s[n] = after;
        whole = end == s + n;
    }
    if (!whole || !isfinite(v) || fabs(v) > FLT_MAX) {
        int shown = f->n > 40 ? 40 : (int)f->n;
        return nb__fail(NB_ERR_IO, "csv_read: %s: line %lld, column %lld (offset %zu): \"%.*s%s\" "
                        "is not a finite number", path, (long long)line, (long long)col,
                        f->off, shown, f->s, f->n > 40 ? "..." : ""), false;
    }
    *out = (float)v;
    return true;
}

/* Resolves the target spec to slot[c] = target index of column c, or -1 for a feature. */
static bool resolve_targets(const char *path, const char *spec, int64_t ncols, const field *names,
                            int64_t *slot, int64_t *n_targets) {
    for (int64_t c = 0; c < ncols; c++) slot[c] = -1;
    *n_targets = 0;
    const char *p = spec;
    if (!spec) slot[ncols - 1] = (*n_targets)++;
    while (p) {
        const char *tok = p, *stop = strchr(p, ',');
        size_t n = stop ? (size_t)(stop - p) : strlen(p);
        p = stop ? stop + 1 : NULL;
        while (n && is_space(*tok)) tok++, n--;
        while (n && is_space(tok[n - 1])) n--;
        char tmp[32];
        long long k = 0;
        bool is_index = false; /* the whole token is an integer */
        if (n > 0 && n < sizeof tmp) {
            char *end;
            memcpy(tmp, tok, n);
            tmp[n] = '\0';
            k = strtoll(tmp, &end, 10);
            is_index = end == tmp + n;
        }
        int64_t c = -1;
        if (is_index) {
            c = k < 0 ? ncols + k : k;
            if (c < 0 || c >= ncols)
                return nb__fail(NB_ERR_ARG, "csv_read: %s: target column %lld is outside "
                                "-%lld..%lld", path, k, (long long)ncols,
                                (long long)ncols - 1), false;
        } else {
            for (int64_t i = 0; names && i < ncols && c < 0; i++)
                if (names[i].n == n && memcmp(names[i].s, tok, n) == 0) c = i;
            if (c < 0)
                return nb__fail(NB_ERR_ARG, "csv_read: %s: target \"%.*s\" names no column%s",
                                path, (int)n, tok, names ? "" : " (the file has no header)"),
                       false;
        }
        if (slot[c] >= 0)
            return nb__fail(NB_ERR_ARG, "csv_read: %s: target column %lld is given twice", path,
                            (long long)c), false;
        slot[c] = (*n_targets)++;
    }
    if (*n_targets == ncols)
        return nb__fail(NB_ERR_ARG, "csv_read: %s: every column is a target: no features left",
                        path), false;
    return true;
}

/* The whole file, NUL-terminated, in a block of *cap bytes. */
static char *read_file(const char *path, size_t *len, size_t *cap) {
    struct stat st;
    if (stat(path, &st) != 0) return nb__fail(NB_ERR_IO, "csv_read: %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return nb__fail(NB_ERR_IO, "csv_read: %s: not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return nb__fail(NB_ERR_IO, "csv_read: %s: %s", path, strerror(errno));
    *cap = (size_t)st.st_size + 1;
    char *buf = nb__alloc(*cap);
    if (buf) {
        *len = fread(buf, 1, (size_t)st.st_size, f);
        buf[*len] = '\0';
        if (ferror(f)) {
            nb__dealloc(buf, *cap);
            buf = nb__fail(NB_ERR_IO, "csv_read: %s: read failed at offset %zu", path, *len);
        }
    }
    fclose(f);
    return buf;
}

nb_dataset *nb_csv_read(const char *path, nb_csv_opts opts) {
    if (!path) return nb__fail(NB_ERR_ARG, "csv_read: path is NULL");
    char delim = opts.delimiter ? opts.delimiter : ',';
    if (strchr("\"\r\n0123456789+-.eE", delim))
        return nb__fail(NB_ERR_ARG, "csv_read: %s: delimiter '%c' would be part of a number or a "
                        "quote", path, delim);
    if (opts.targets && !*opts.targets)
        return nb__fail(NB_ERR_ARG, "csv_read: %s: targets is empty (NULL picks the last column)",
                        path);
    size_t len = 0, cap = 0;
    char *buf = read_file(path, &len, &cap);
    if (!buf) return NULL;
    nb_dataset *ds = NULL;
    field *names = NULL;
    int64_t *slot = NULL;
    float *x = NULL, *y = NULL;
    size_t names_bytes = 0, slot_bytes = 0, x_bytes = 0, y_bytes = 0;
    char *nul = memchr(buf, '\0', len);
    if (nul) {
        nb__fail(NB_ERR_IO, "csv_read: %s: NUL byte at offset %td: not a text file", path,
                 nul - buf);
        goto done;
    }
    scanner sc = {.path = path, .buf = buf, .len = len, .pos = 0, .line = 1, .delim = delim};
    if (!skip_blank(&sc)) {
        nb__fail(NB_ERR_IO, "csv_read: %s: empty file: no rows", path);
        goto done;
    }
    /* The first row fixes the column count; a dry pass counts it without unescaping. */
    int64_t ncols = 0, first_line = sc.line;
    scanner probe = sc;
    field f;
    bool row_end = false;
    while (!row_end)
        if (!read_field(&probe, ++ncols, true, &f, &row_end)) goto done;
    if (opts.header) {
        names_bytes = sizeof(field) * (size_t)ncols;
        if (!(names = nb__alloc(names_bytes))) goto done;
        for (int64_t c = 0; c < ncols; c++)
            if (!read_field(&sc, c + 1, false, &names[c], &row_end)) goto done;
    }
    slot_bytes = sizeof(int64_t) * (size_t)ncols;
    int64_t n_targets;
    if (!(slot = nb__alloc(slot_bytes)) ||
        !resolve_targets(path, opts.targets, ncols, names, slot, &n_targets))
        goto done;
    /* Rows to make room for: at most one per line, and each complete row holds ncols - 1
     * delimiters, so the room (rows x columns) stays within the file's length however many
     * blank lines or columns it has. */
    int64_t n_feat = ncols - n_targets, rows_cap = 1, delims = 0;
    for (size_t i = sc.pos; i < len; i++) {
        rows_cap += buf[i] == '\n';
        delims += buf[i] == delim;
    }
    if (ncols > 1 && delims / (ncols - 1) + 1 < rows_cap) rows_cap = delims / (ncols - 1) + 1;
    x_bytes = sizeof(float) * (size_t)(rows_cap * n_feat);
    y_bytes = sizeof(float) * (size_t)(rows_cap * n_targets);
    if (!(x = nb__alloc(x_bytes)) || !(y = nb__alloc(y_bytes))) goto done;
    int64_t n = 0;
    while (skip_blank(&sc)) {
        int64_t line = sc.line, c = 0, feat = 0;
        for (row_end = false; !row_end; c++) {
            if (c == ncols) {
                nb__fail(NB_ERR_IO, "csv_read: %s: line %lld has more than %lld columns (line "
                         "%lld has %lld)", path, (long long)line, (long long)ncols,
                         (long long)first_line, (long long)ncols);
                goto done;
            }
            float v;
            if (!read_field(&sc, c + 1, false, &f, &row_end) ||
                !parse_number(path, line, &f, c + 1, &v))
                goto done;
            if (slot[c] >= 0) y[n * n_targets + slot[c]] = v;
            else x[n * n_feat + feat++] = v;
        }
        if (c < ncols) {
            nb__fail(NB_ERR_IO, "csv_read: %s: line %lld has %lld columns, line %lld has %lld",
                     path, (long long)line, (long long)c, (long long)first_line, (long long)ncols);
            goto done;
        }
        n++;
    }
    if (n == 0) {
        nb__fail(NB_ERR_IO, "csv_read: %s: no data rows after the header", path);
        goto done;
    }
    ds = nb__dataset_adopt("csv_read", n, 1, &n_feat, false, x, x_bytes, NB_TARGET_FLOAT,
                           n_targets, y, y_bytes);
    x = y = NULL; /* adopted, or released by the failed adoption */
    if (ds && !nb__dataset_set_files(ds, path, path, 0)) {
        nb_dataset_free(ds);
        ds = NULL;
    }
done:
    nb__dealloc(x, x_bytes);
    nb__dealloc(y, y_bytes);
    nb__dealloc(slot, slot_bytes);
    nb__dealloc(names, names_bytes);
    nb__dealloc(buf, cap);
    return ds;
}
