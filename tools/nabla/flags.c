/*
 * flags.c — the table-driven flag parser of the `nabla` command, and helpers its subcommands
 * share.  Each row may carry a range (numbers) or a list of choices (words); the parser refuses
 * a value outside them with a message that states what is allowed, and --help prints both, so
 * the one table is the parser, the validation and the documentation.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    double lo, hi;
    bool lo_open, hi_open; /* '(' or ')': the bound itself is excluded */
} flag_range;

/* The row's range: "[1, inf)", "(0, 1]", ...; without one, ints take any int and floats any
 * finite value.  An int's range never reaches beyond int. */
static flag_range range_of(const cli_flag *f) {
    flag_range r = {-INFINITY, INFINITY, true, true};
    char open = 0, close = 0;
    if (f->range && sscanf(f->range, " %c %lf , %lf %c", &open, &r.lo, &r.hi, &close) == 4) {
        r.lo_open = open == '(';
        r.hi_open = close == ')';
    }
    if (f->kind == FLAG_INT) {
        if (r.lo < INT_MIN) r.lo = INT_MIN, r.lo_open = false;
        if (r.hi > INT_MAX) r.hi = INT_MAX, r.hi_open = false;
    }
    return r;
}

static bool in_range(flag_range r, double v) {
    return (r.lo_open ? v > r.lo : v >= r.lo) && (r.hi_open ? v < r.hi : v <= r.hi);
}

/* One bound in words, as a message ends: "at least 1", "must be above 0", "at most 16". */
static void describe_bound(char *buf, size_t cap, flag_range r, bool low) {
    if (low) snprintf(buf, cap, "%s %.10g", r.lo_open ? "must be above" : "at least", r.lo);
    else snprintf(buf, cap, "%s %.10g", r.hi_open ? "must be below" : "at most", r.hi);
}

/* The range in words for --help: "1 to 16", "at least 1", "[0, 1)"; empty without a bound. */
static void describe_range(char *buf, size_t cap, const cli_flag *f) {
    flag_range r = range_of(f);
    bool no_hi = isinf(r.hi) || (f->kind == FLAG_INT && r.hi == INT_MAX);
    bool no_lo = isinf(r.lo) || (f->kind == FLAG_INT && r.lo == INT_MIN);
    if (no_hi && no_lo) snprintf(buf, cap, "%s", "");
    else if (no_hi) describe_bound(buf, cap, r, true);
    else if (no_lo) describe_bound(buf, cap, r, false);
    else if (!r.lo_open && !r.hi_open) snprintf(buf, cap, "%.10g to %.10g", r.lo, r.hi);
    else snprintf(buf, cap, "%c%.10g, %.10g%c", r.lo_open ? '(' : '[', r.lo, r.hi, r.hi_open ? ')' : ']');
}

/* Appends "; part" (or the first part) to a note of --help. */
static void add_note(char *note, size_t cap, const char *part) {
    size_t n = strlen(note);
    if (part[0]) snprintf(note + n, cap - n, "%s%s", n ? "; " : "", part);
}

void cli_help(FILE *out, const char *usage, const cli_flag *flags, int n_flags) {
    fprintf(out, "%s\n\nOptions:\n", usage);
    for (int i = 0; i < n_flags; i++) {
        const cli_flag *f = &flags[i];
        char left[64], note[512] = "", part[256];
        const char *arg = f->kind == FLAG_INT ? " N" : f->kind == FLAG_FLOAT ? " X" : f->kind == FLAG_STRING ? " S" : "";
        snprintf(left, sizeof left, "--%s%s", f->name, arg);
        if (f->kind == FLAG_STRING && f->choices) {
            snprintf(part, sizeof part, "one of: %s", f->choices);
            add_note(note, sizeof note, part);
        }
        part[0] = '\0';
        /* an int default outside its range stands for "chosen from other flags", as the help says */
        if (f->kind == FLAG_INT && in_range(range_of(f), *(int *)f->value)) snprintf(part, sizeof part, "default %d", *(int *)f->value);
        if (f->kind == FLAG_FLOAT) snprintf(part, sizeof part, "default %g", *(double *)f->value);
        if (f->kind == FLAG_STRING && *(const char **)f->value) snprintf(part, sizeof part, "default %s", *(const char **)f->value);
        add_note(note, sizeof note, part);
        if (f->kind == FLAG_INT || f->kind == FLAG_FLOAT) {
            describe_range(part, sizeof part, f);
            add_note(note, sizeof note, part);
        }
        fprintf(out, "  %-24s %s%s%s%s\n", left, f->help, note[0] ? " (" : "", note, note[0] ? ")" : "");
    }
    fprintf(out, "  %-24s %s\n", "-h, --help", "show this help");
}

/* Levenshtein distance of a[0..na) and b[0..nb) (both short: names and choices). */
static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb) {
    size_t row[64];
    if (nb >= 64) return SIZE_MAX;
    for (size_t j = 0; j <= nb; j++) row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[nb];
}

/* A candidate close to what was typed: within a third of its length in edits (at least 1), or
 * one of the two starting with the other (three letters at least: --epoch, --batchsize).  Kept
 * in best/best_d for the caller's loop over candidates. */
static void consider(const char *typed, size_t len, const char *cand, size_t clen, const char **best,
                     size_t *best_len, size_t *best_d) {
    size_t d = edit_distance(typed, len, cand, clen), shorter = len < clen ? len : clen;
    if (shorter >= 3 && !strncmp(cand, typed, shorter) && d > 1) d = 1;
    size_t limit = len / 3 > 1 ? len / 3 : 1;
    if (d <= limit && d < *best_d) *best = cand, *best_len = clen, *best_d = d;
}

static const cli_flag *nearest_flag(const char *name, size_t len, const cli_flag *flags, int n_flags) {
    const char *best = NULL;
    size_t best_len = 0, best_d = SIZE_MAX;
    int at = -1;
    for (int k = 0; k < n_flags; k++) {
        const char *before = best;
        consider(name, len, flags[k].name, strlen(flags[k].name), &best, &best_len, &best_d);
        if (best != before) at = k;
    }
    return at >= 0 ? &flags[at] : NULL;
}

/* Checks text against the space-separated choices; prints the refusal (with a suggestion). */
static bool check_choice(const cli_flag *f, const char *text) {
    const char *best = NULL;
    size_t best_len = 0, best_d = SIZE_MAX, tlen = strlen(text);
    for (const char *p = f->choices; *p;) {
        size_t n = strcspn(p, " ");
        if (n == tlen && !strncmp(p, text, n)) return true;
        consider(text, tlen, p, n, &best, &best_len, &best_d);
        p += n + (p[n] == ' ');
    }
    fprintf(stderr, "nabla: --%s '%s': expected one of %s", f->name, text, f->choices);
    if (best) fprintf(stderr, " (did you mean %.*s?)", (int)best_len, best);
    fprintf(stderr, "\n");
    return false;
}

/* Parses and checks one value; prints what is wrong and returns false when it does not fit. */
static bool set_value(const cli_flag *f, const char *text) {
    char *end, bound[96];
    double v = 0;
    errno = 0;
    if (f->kind == FLAG_STRING) {
        if (f->choices && !check_choice(f, text)) return false;
        *(const char **)f->value = text;
        return true;
    }
    if (f->kind == FLAG_INT) v = (double)strtoll(text, &end, 10);
    else v = strtod(text, &end);
    if (*end || end == text) {
        fprintf(stderr, "nabla: option --%s needs %s value, got %s\n", f->name,
                f->kind == FLAG_INT ? "an integer" : "a number", text);
        return false;
    }
    if (f->kind == FLAG_FLOAT && !isfinite(v)) {
        fprintf(stderr, "nabla: --%s %s: not a finite number\n", f->name, text);
        return false;
    }
    flag_range r = range_of(f);
    if (!in_range(r, v)) {
        describe_bound(bound, sizeof bound, r, r.lo_open ? !(v > r.lo) : !(v >= r.lo));
        fprintf(stderr, "nabla: --%s %s: out of range, %s\n", f->name, text, bound);
        return false;
    }
    if (f->kind == FLAG_INT) *(int *)f->value = (int)v;
    else *(double *)f->value = v;
    return true;
}

int cli_parse(int argc, char **argv, int first, const cli_flag *flags, int n_flags,
              const char *usage, const char **positional, int max_pos) {
    int n_pos = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_help(stdout, usage, flags, n_flags);
            return -2;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (n_pos == max_pos) {
                fprintf(stderr, "nabla: unexpected argument '%s' (see --help)\n", a);
                return -1;
            }
            positional[n_pos++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_flag *f = NULL;
        for (int k = 0; k < n_flags && !f; k++)
            if (strlen(flags[k].name) == len && !strncmp(flags[k].name, name, len)) f = &flags[k];
        if (!f) {
            const cli_flag *near = nearest_flag(name, len, flags, n_flags);
            fprintf(stderr, "nabla: unknown option '%.*s'", (int)len + 2, a);
            if (near) fprintf(stderr, " (did you mean --%s?)\n", near->name);
            else fprintf(stderr, " (see --help)\n");
            return -1;
        }
        if (f->kind == FLAG_BOOL) {
            if (eq) {
                fprintf(stderr, "nabla: option --%s takes no value\n", f->name);
                return -1;
            }
            *(bool *)f->value = true;
            continue;
        }
        const char *text = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!text) {
            fprintf(stderr, "nabla: option --%s needs %s value\n", f->name,
                    f->kind == FLAG_INT ? "an integer" : f->kind == FLAG_FLOAT ? "a number" : "a");
            return -1;
        }
        if (!set_value(f, text)) return -1;
    }
    return n_pos;
}

int cli_fail(const char *what) {
    fprintf(stderr, "nabla: %s: %s\n", what, nb_error_message()[0] ? nb_error_message() : "failed");
    return 1;
}

int cli_say(void) {
    fprintf(stderr, "nabla: %s\n", nb_error_message()[0] ? nb_error_message() : "failed");
    return 1;
}

bool make_dirs(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return errno = ENAMETOOLONG, false;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return false;
        *p = '/';
    }
    return mkdir(buf, 0777) == 0 || errno == EEXIST;
}
