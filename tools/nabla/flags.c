/* flags.c — the table-driven flag parser of the `nabla` command. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void cli_help(FILE *out, const char *usage, const cli_flag *flags, int n_flags) {
    fprintf(out, "%s\n\nOptions:\n", usage);
    for (int i = 0; i < n_flags; i++) {
        const cli_flag *f = &flags[i];
        char left[64];
        const char *arg = f->kind == FLAG_INT ? " N" : f->kind == FLAG_FLOAT ? " X" : f->kind == FLAG_STRING ? " S" : "";
        snprintf(left, sizeof left, "--%s%s", f->name, arg);
        fprintf(out, "  %-24s %s", left, f->help);
        switch (f->kind) {
        case FLAG_INT: fprintf(out, " (default %d)\n", *(int *)f->value); break;
        case FLAG_FLOAT: fprintf(out, " (default %g)\n", *(double *)f->value); break;
        case FLAG_STRING:
            if (*(const char **)f->value) fprintf(out, " (default %s)\n", *(const char **)f->value);
            else fprintf(out, "\n");
            break;
        case FLAG_BOOL: fprintf(out, "\n"); break;
        }
    }
    fprintf(out, "  %-24s %s\n", "--help", "show this help");
}

static bool set_value(const cli_flag *f, const char *text) {
    char *end;
    errno = 0;
    if (f->kind == FLAG_INT) {
        long v = strtol(text, &end, 10);
        if (*end || errno || end == text || v < -2147483647L || v > 2147483647L) return false;
        *(int *)f->value = (int)v;
    } else if (f->kind == FLAG_FLOAT) {
        double v = strtod(text, &end);
        if (*end || errno || end == text) return false;
        *(double *)f->value = v;
    } else {
        *(const char **)f->value = text;
    }
    return true;
}

int cli_parse(int argc, char **argv, int first, const cli_flag *flags, int n_flags,
              const char *usage, const char **positional, int max_pos) {
    int n_pos = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (n_pos == max_pos) {
                fprintf(stderr, "nabla: unexpected argument '%s' (see --help)\n", a);
                return -1;
            }
            positional[n_pos++] = a;
            continue;
        }
        if (!strcmp(a, "--help")) {
            cli_help(stdout, usage, flags, n_flags);
            return -2;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_flag *f = NULL;
        for (int k = 0; k < n_flags && !f; k++)
            if (strlen(flags[k].name) == len && !strncmp(flags[k].name, name, len)) f = &flags[k];
        if (!f) {
            fprintf(stderr, "nabla: unknown option '%.*s' (see --help)\n", (int)len + 2, a);
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
        if (!text || !set_value(f, text)) {
            fprintf(stderr, "nabla: option --%s needs %s value%s%s\n", f->name,
                    f->kind == FLAG_INT ? "an integer" : f->kind == FLAG_FLOAT ? "a number" : "a",
                    text ? ", got " : "", text ? text : "");
            return -1;
        }
    }
    return n_pos;
}

int cli_fail(const char *what) {
    fprintf(stderr, "nabla: %s: %s\n", what, nb_error_message()[0] ? nb_error_message() : "failed");
    return 1;
}
