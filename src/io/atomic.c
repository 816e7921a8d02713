/*
 * atomic.c — writing a file so that it appears whole or not at all: the one way safetensors
 * files, checkpoints and learning curves reach the disk.
 *
 * The new contents go to a file with no name in the target's folder (Linux's O_TMPFILE), which
 * the kernel frees if the writer dies, so a killed run leaves nothing behind.  Committing syncs
 * it, links it under a temporary name "<target>.tmp.<pid>-<n>" and renames that over the target
 * (linkat cannot replace a file; rename can, atomically), then syncs the folder so the rename
 * itself survives a crash.  Where the filesystem has no O_TMPFILE (or /proc is not mounted, which
 * linking an open file needs), the temporary is created under that name from the start.  Either
 * way a writer killed at the wrong moment may leave a named temporary; the next write of the
 * same target removes those whose process (the pid in the name) no longer exists, and those
 * earlier versions of nabla left (no pid in their names) once they are an hour old.
 *
 * Failures are remembered, not acted on at once: the first failed write records its errno and
 * byte offset, later writes do nothing, and nb__afile_commit reports it (NB_ERR_IO naming the
 * file, the byte and the cause; NB_ERR_MEMORY for ENOMEM) after removing the temporary, so the
 * old file is intact.  A write past the file-size limit (RLIMIT_FSIZE) raises SIGXFSZ, which kills
 * the process by default; this library never changes signal dispositions, so a program that
 * wants the error (EFBIG) instead ignores SIGXFSZ itself.
 */
#include "io.h" /* built with _GNU_SOURCE: O_TMPFILE, fopencookie */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TMP_INFIX ".tmp."

static atomic_uint tmp_counter;

/* The folder of path ("." when it has no slash) and the name in it, both allocated. */
static bool split_path(nb__afile *f) {
    const char *slash = strrchr(f->path, '/');
    const char *dir = !slash ? "." : slash == f->path ? "/" : f->path;
    size_t dlen = !slash ? 1 : slash == f->path ? 1 : (size_t)(slash - f->path);
    const char *base = slash ? slash + 1 : f->path;
    f->dir = nb__alloc(dlen + 1);
    f->base = f->dir ? nb__strdup(base) : NULL;
    if (!f->base) return false;
    memcpy(f->dir, dir, dlen);
    f->dir[dlen] = '\0';
    return true;
}

static void str_release(char **s) {
    nb__strfree(*s);
    *s = NULL;
}

/* Sets f->tmp to "<base>.tmp.<pid>-<n>" with a fresh n; false (ENAMETOOLONG) when that name does
 * not fit in a directory entry. */
static bool next_tmp_name(nb__afile *f) {
    char buf[NAME_MAX + 1];
    unsigned n = atomic_fetch_add(&tmp_counter, 1);
    int len = snprintf(buf, sizeof buf, "%s" TMP_INFIX "%ld-%u", f->base, (long)getpid(), n);
    if (len < 0 || len > NAME_MAX) return errno = ENAMETOOLONG, false;
    str_release(&f->tmp);
    if (!(f->tmp = nb__alloc((size_t)len + 1))) return errno = ENOMEM, false;
    memcpy(f->tmp, buf, (size_t)len + 1);
    return true;
}

/* The pid in a temporary's name "<base>.tmp.<pid>-<n>", or 0 when name is not one of base's. */
static long tmp_owner(const char *base, const char *name) {
    size_t bl = strlen(base), il = sizeof TMP_INFIX - 1;
    if (strncmp(name, base, bl) || strncmp(name + bl, TMP_INFIX, il)) return 0;
    const char *p = name + bl + il;
    char *end;
    long pid = strtol(p, &end, 10);
    if (end == p || *end != '-' || pid <= 0) return 0;
    p = end + 1;
    strtoul(p, &end, 10);
    return end != p && !*end ? pid : 0;
}

/* Temporaries of earlier nabla versions carry no pid: "<base>.tmp" (curves) and
 * "<base>.tmp.XXXXXX" (mkstemp's six letters and digits). */
static bool legacy_tmp(const char *base, const char *name) {
    size_t bl = strlen(base), il = sizeof TMP_INFIX - 1;
    if (strncmp(name, base, bl) || strncmp(name + bl, TMP_INFIX, il - 1)) return false;
    const char *rest = name + bl + il - 1; /* "" or ".XXXXXX" */
    if (!*rest) return true;
    if (*rest != '.' || strlen(rest + 1) != 6) return false;
    for (const char *c = rest + 1; *c; c++)
        if (!(*c >= '0' && *c <= '9') && !(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z'))
            return false;
    return true;
}

/* Removes the temporaries of the same target whose writer is gone: those whose pid names no
 * process (kill(pid, 0) fails with ESRCH), and those of earlier versions once nothing has
 * written them for an hour (a live writer keeps their time fresh).  Best effort: a folder that
 * cannot be listed is left as it is. */
static void remove_stale(const nb__afile *f) {
    int fd = dup(f->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    time_t hour_ago = time(NULL) - 3600;
    for (struct dirent *e; (e = readdir(d));) {
        long pid = tmp_owner(f->base, e->d_name);
        struct stat sb;
        bool stale = pid ? pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH
                         : legacy_tmp(f->base, e->d_name) &&
                               fstatat(f->dirfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                               S_ISREG(sb.st_mode) && sb.st_mtime < hour_ago;
        if (stale) unlinkat(f->dirfd, e->d_name, 0);
    }
    closedir(d);
}

/* Opens the unnamed (O_TMPFILE) or named temporary; mode 0666 less the umask, as open gives. */
static bool open_tmp(nb__afile *f) {
#ifdef O_TMPFILE
    if (access("/proc/self/fd", X_OK) == 0) {
        f->fd = openat(f->dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
        if (f->fd >= 0) return true;
        if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return false;
    }
#endif
    do {
        if (!next_tmp_name(f)) return false;
        f->fd = openat(f->dirfd, f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    } while (f->fd < 0 && errno == EEXIST);
    return f->fd >= 0;
}

static nb_status fail_begin(nb__afile *f, const char *what) {
    int err = errno;
    nb_status s = nb__fail_status(err == ENOMEM ? NB_ERR_MEMORY : NB_ERR_IO, "%s: '%s': %s: %s",
                                  f->op, f->path, what, strerror(err));
    nb__afile_cancel(f);
    return s;
}

nb_status nb__afile_begin(nb__afile *f, const char *op, const char *path) {
    *f = (nb__afile){.op = op, .path = path, .fd = -1, .dirfd = -1};
    if (!split_path(f)) return errno = ENOMEM, fail_begin(f, "out of memory");
    if (!*f->base) return errno = EISDIR, fail_begin(f, "the path names a folder");
    if (!next_tmp_name(f)) return fail_begin(f, "no room for its temporary's name");
    str_release(&f->tmp); /* the name fits; it is made when needed */
    f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f->dirfd < 0) return fail_begin(f, "cannot open its folder");
    struct stat sb;
    bool exists = fstatat(f->dirfd, f->base, &sb, 0) == 0;
    if (exists && S_ISDIR(sb.st_mode))
        return errno = EISDIR, fail_begin(f, "cannot replace it");
    remove_stale(f);
    if (!open_tmp(f)) return fail_begin(f, "cannot create a temporary file beside it");
    /* a replaced file keeps its mode (a new one has open's) */
    if (exists && S_ISREG(sb.st_mode) && fchmod(f->fd, sb.st_mode & 07777) != 0)
        return fail_begin(f, "cannot set the temporary file's mode");
    return NB_OK;
}

static bool record(nb__afile *f, const char *what, int err) {
    if (!f->err) f->err = err ? err : EIO, f->what = what;
    return false;
}

bool nb__afile_write(nb__afile *f, const void *p, size_t n) {
    const char *c = p;
    while (n && !f->err) {
        ssize_t w = write(f->fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return record(f, "writing", w < 0 ? errno : ENOSPC);
        c += w;
        n -= (size_t)w;
        f->at += (uint64_t)w;
    }
    return !f->err;
}

bool nb__afile_pwrite(nb__afile *f, const void *p, size_t n, uint64_t offset) {
    if (f->err) return false;
    ssize_t w = pwrite(f->fd, p, n, (off_t)offset);
    if (w != (ssize_t)n) {
        f->at = offset;
        return record(f, "writing", w < 0 ? errno : ENOSPC);
    }
    return true;
}

bool nb__afile_fail(nb__afile *f, const char *what, int err) { return record(f, what, err); }

static ssize_t stream_write(void *cookie, const char *buf, size_t n) {
    if (nb__afile_write(cookie, buf, n)) return (ssize_t)n;
    errno = ((nb__afile *)cookie)->err;
    return -1;
}

FILE *nb__afile_stream(nb__afile *f) {
    if (!f->stream) {
        f->stream = fopencookie(f, "w", (cookie_io_functions_t){.write = stream_write});
        if (!f->stream) record(f, "opening a stream on", errno);
    }
    return f->stream;
}

void nb__afile_cancel(nb__afile *f) {
    if (f->stream) fclose(f->stream); /* its writes fail or land in a file about to go */
    if (f->fd >= 0) close(f->fd);
    if (f->tmp && f->dirfd >= 0) unlinkat(f->dirfd, f->tmp, 0);
    if (f->dirfd >= 0) close(f->dirfd);
    str_release(&f->tmp);
    str_release(&f->dir);
    str_release(&f->base);
    f->stream = NULL;
    f->fd = f->dirfd = -1;
}

/* Gives the unnamed file its temporary name; a named temporary has one already. */
static bool link_tmp(nb__afile *f) {
    if (f->tmp) return true;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
    do {
        if (!next_tmp_name(f)) return false;
        if (linkat(AT_FDCWD, proc, f->dirfd, f->tmp, AT_SYMLINK_FOLLOW) == 0) return true;
    } while (errno == EEXIST);
    str_release(&f->tmp); /* nothing was linked: nothing to remove */
    return false;
}

nb_status nb__afile_commit(nb__afile *f) {
    if (f->stream) {
        if (fclose(f->stream) != 0) record(f, "writing", errno);
        f->stream = NULL;
    }
    if (!f->err && fsync(f->fd) != 0) record(f, "syncing", errno);
    if (!f->err && !link_tmp(f)) record(f, "naming", errno);
    if (!f->err && renameat(f->dirfd, f->tmp, f->dirfd, f->base) != 0)
        record(f, "renaming over the target", errno);
    nb_status s = NB_OK;
    if (f->err) {
        s = nb__fail_status(f->err == ENOMEM ? NB_ERR_MEMORY : NB_ERR_IO,
                            "%s: '%s': byte %llu: %s the new file failed: %s%s; the old file, if "
                            "any, is unchanged", f->op, f->path, (unsigned long long)f->at,
                            f->what, strerror(f->err),
                            f->err == EFBIG ? " (past the file-size limit, see ulimit -f)" : "");
    } else {
        str_release(&f->tmp); /* renamed: nothing to remove */
        /* Filesystems that cannot sync a folder (EINVAL) are taken as done. */
        if (fsync(f->dirfd) != 0 && errno != EINVAL)
            s = nb__fail_status(NB_ERR_IO, "%s: '%s': written, but syncing its folder failed: %s",
                                f->op, f->path, strerror(errno));
    }
    nb__afile_cancel(f);
    return s;
}
