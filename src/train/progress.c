/*
 * progress.c — a tqdm-like progress bar.  Redrawing is rate-limited (10 Hz) so it costs
 * nothing next to a training step; off a terminal it prints once, at the end.
 */
#include "nabla/train.h"
#include "../core/core.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 24

struct nb_progress {
    FILE *out;
    char label[64];
    int64_t total, done;
    double start, last_draw;
    bool tty;
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nb_format_duration(double seconds, char *buf, size_t cap) {
    if (!(seconds >= 0) || seconds > 1e8) {
        snprintf(buf, cap, "?");
        return;
    }
    long s = (long)(seconds + 0.5);
    if (s >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else snprintf(buf, cap, "%02ld:%02ld", s / 60, s % 60);
}

nb_progress *nb_progress_new(FILE *out, const char *label, int64_t total) {
    nb_progress *p = nb__alloc(sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->out = out ? out : stderr;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total > 0 ? total : 0;
    p->start = now_seconds();
    p->last_draw = -1;
    p->tty = isatty(fileno(p->out));
    return p;
}

/* The bar in eighths of a cell, as tqdm draws it. */
static void draw(nb_progress *p, const char *postfix, double t, bool final) {
    static const char *const eighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    double elapsed = t - p->start, rate = elapsed > 0 ? (double)p->done / elapsed : 0;
    double frac = p->total ? (double)p->done / (double)p->total : 1.0;
    char bar[BAR_WIDTH * 3 + 16] = "", el[16], eta[16];
    int cells = (int)(frac * BAR_WIDTH * 8), full = cells / 8, len = 0;
    for (int i = 0; i < full && i < BAR_WIDTH; i++) len += snprintf(bar + len, sizeof bar - (size_t)len, "█");
    if (full < BAR_WIDTH) len += snprintf(bar + len, sizeof bar - (size_t)len, "%s", eighths[cells % 8]);
    int shown = full + (full < BAR_WIDTH && cells % 8 ? 1 : 0);
    for (int i = shown; i < BAR_WIDTH; i++) len += snprintf(bar + len, sizeof bar - (size_t)len, " ");
    nb_format_duration(elapsed, el, sizeof el);
    nb_format_duration(rate > 0 ? (double)(p->total - p->done) / rate : -1, eta, sizeof eta);
    fprintf(p->out, "%s%s |%s| %lld/%lld [%s<%s, %.1f it/s]%s%s%s", p->tty ? "\r" : "", p->label,
            bar, (long long)p->done, (long long)p->total, el, eta, rate, postfix ? " " : "",
            postfix ? postfix : "", p->tty ? "\033[K" : "");
    if (final) fputc('\n', p->out);
    fflush(p->out);
    p->last_draw = t;
}

void nb_progress_update(nb_progress *p, int64_t done, const char *postfix) {
    if (!p) return;
    p->done = done < 0 ? 0 : done < p->total ? done : p->total;
    if (!p->tty) return;
    double t = now_seconds();
    if (p->last_draw < 0 || t - p->last_draw >= 0.1) draw(p, postfix, t, false);
}

void nb_progress_finish(nb_progress *p, const char *postfix) {
    if (!p) return;
    draw(p, postfix, now_seconds(), true);
}

void nb_progress_free(nb_progress *p) { nb__dealloc(p, sizeof *p); }
