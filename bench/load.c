/*
 * load.c — start-up: reading Fashion-MNIST's four gzip IDX files with nb_idx_read, from its
 * inflate cache (the usual case: every run after the first) and without it (NB_CACHE_DIR empty:
 * libdeflate, one call per file), against the same files through zlib's gz* stream, the way
 * nb_idx_read read them before (gzbuffer 128 KiB, gzread into one buffer).  The three are
 * interleaved, REPS times each, after one read that fills the cache; figures are medians of
 * process CPU time (a shared machine's waits excluded) and of wall time, and zlib / nabla is the
 * speed-up.
 *
 *   build/bench_load [DATA_DIR]      (default /usr/share/datasets/fashion-mnist)
 *
 * Output: a table and "@load nabla_ms=.. nocache_ms=.. zlib_ms=.. ratio=.. nocache_ratio=..
 * wall_ratio=.." (ratios of CPU time unless named wall) for scripts.
 */
#include "nabla.h"
#include "bench.h"

#include <stdlib.h>
#include <zlib.h>

#define REPS 7

static const char *const files[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};

/* The old reader's work: inflate the whole stream through gzread. */
static size_t zlib_read(const char *path) {
    gzFile f = gzopen(path, "rb");
    if (!f) return 0;
    gzbuffer(f, 1u << 17);
    size_t cap = 64u << 20, got = 0;
    char *buf = malloc(cap);
    int r;
    while (buf && got < cap && (r = gzread(f, buf + got, (unsigned)(cap - got))) > 0) got += (size_t)r;
    gzclose(f);
    free(buf);
    return got;
}

static size_t nabla_read(const char *path) {
    nb_idx *idx = nb_idx_read(path);
    size_t n = idx ? (size_t)idx->numel : 0;
    nb_idx_free(idx);
    return n;
}

/* The cache is looked up when a file is read: an empty NB_CACHE_DIR turns it off. */
static const char *cache_setting;

static size_t nabla_nocache_read(const char *path) {
    setenv("NB_CACHE_DIR", "", 1);
    size_t n = nabla_read(path);
    if (cache_setting) setenv("NB_CACHE_DIR", cache_setting, 1);
    else unsetenv("NB_CACHE_DIR");
    return n;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    static const char *const names[3] = {"nb_idx_read, cached", "nb_idx_read, no cache (libdeflate)",
                                         "zlib gzread (the previous reader)"};
    size_t (*const readers[3])(const char *) = {nabla_read, nabla_nocache_read, zlib_read};
    cache_setting = getenv("NB_CACHE_DIR");
    char path[4][1024];
    for (int i = 0; i < 4; i++) snprintf(path[i], sizeof path[i], "%s/%s", dir, files[i]);
    for (int i = 0; i < 4; i++) nabla_read(path[i]); /* fills the cache */
    double cpu[3][REPS], wall[3][REPS];
    for (int r = 0; r < REPS; r++)
        for (int side = 0; side < 3; side++) {
            double c0 = cpu_ns(), w0 = now_ns();
            for (int i = 0; i < 4; i++)
                if (readers[side](path[i]) == 0) {
                    fprintf(stderr, "bench_load: cannot read %s: %s\n", path[i], nb_error_message());
                    return 1;
                }
            cpu[side][r] = (cpu_ns() - c0) / 1e6;
            wall[side][r] = (now_ns() - w0) / 1e6;
        }
    double c[3], w[3];
    for (int side = 0; side < 3; side++) c[side] = median(cpu[side], REPS), w[side] = median(wall[side], REPS);
    printf("load: Fashion-MNIST's four files from %s, medians of %d interleaved runs\n", dir, REPS);
    printf("%-36s %10s %10s %10s\n", "", "CPU ms", "wall ms", "speed-up");
    for (int side = 0; side < 3; side++)
        printf("%-36s %10.1f %10.1f %9.2fx\n", names[side], c[side], w[side], c[2] / c[side]);
    printf("(goal: >= 3x the previous reader)\n");
    printf("@load nabla_ms=%.2f nocache_ms=%.2f zlib_ms=%.2f ratio=%.3f nocache_ratio=%.3f wall_ratio=%.3f\n",
           c[0], c[1], c[2], c[2] / c[0], c[2] / c[1], w[2] / w[0]);
    return 0;
}
