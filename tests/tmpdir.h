/*
 * tmpdir.h — a scratch directory for tests that write files: tmpdir_make() creates it with
 * mkdtemp under /tmp (so parallel ctest runs never share files), tpath() names files in it, and
 * tmpdir_remove() deletes it with everything inside at the end.  Also reading and writing whole
 * files.  Include after check.h: write and removal failures are counted there.
 */
#ifndef NB_TMPDIR_H
#define NB_TMPDIR_H

#include "check.h"

#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>

static char tmpdir[64];

/* Creates /tmp/<prefix>_XXXXXX; false (after perror) when it cannot. */
static inline bool tmpdir_make(const char *prefix) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/%s_XXXXXX", prefix);
    if (mkdtemp(tmpdir)) return true;
    perror("mkdtemp");
    return false;
}

/* tmpdir/name, in one of 16 rotating buffers, so that a call can take several paths. */
static inline const char *tpath(const char *name) {
    static char buf[16][512];
    static int slot;
    char *p = buf[slot++ % 16];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

/* Files in tmpdir whose name contains needle, as leftovers of an interrupted write. */
static inline int tmpdir_count(const char *needle) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, needle) != NULL;
    if (d) closedir(d);
    return n;
}

static inline int tmpdir_remove_entry_(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Removes tmpdir and everything under it (depth first, symbolic links not followed). */
static inline void tmpdir_remove(void) {
    if (nftw(tmpdir, tmpdir_remove_entry_, 16, FTW_DEPTH | FTW_PHYS) != 0)
        CHECK_FAIL_("could not remove %s", tmpdir);
}

/* The whole file, malloc'd and NUL-terminated (so text can be searched as a string); *n gets
 * its size.  NULL and 0 when it cannot be opened; 0 when it cannot be read. */
static inline void *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return *n = 0, NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*n + 1);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    b[*n] = '\0';
    fclose(f);
    return b;
}

/* The n bytes at data as the whole file (data may be NULL when n is 0). */
static inline void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n)) CHECK_FAIL_("cannot write %s", path);
    if (f) fclose(f);
}

static inline void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

#endif
