/*
 * load.c — start-up: reading Fashion-MNIST's four gzip IDX files with nb_idx_read (libdeflate,
 * one call per file) against the same files through zlib's gz* stream, the way nb_idx_read read
 * them before (gzbuffer 128 KiB, gzread into one buffer).  The two are interleaved, REPS times
 * each; figures are medians of process CPU time (a shared machine's waits excluded) and of wall
 * time, and the ratio zlib / nabla is the speed-up.
 *
 *   build/bench_load [DATA_DIR]      (default /usr/share/datasets/fashion-mnist)
 *
 * Output: a table and "@load nabla_ms=.. zlib_ms=.. ratio=.. (cpu) wall_ratio=.." for scripts.
 */
#include "nabla.h"
#include "bench.h"

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

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    char path[4][1024];
    for (int i = 0; i < 4; i++) snprintf(path[i], sizeof path[i], "%s/%s", dir, files[i]);
    double cpu[2][REPS], wall[2][REPS];
    for (int r = 0; r < REPS; r++)
        for (int side = 0; side < 2; side++) { /* interleaved: nabla, zlib, nabla, ... */
            double c0 = cpu_ns(), w0 = now_ns();
            for (int i = 0; i < 4; i++)
                if ((side == 0 ? nabla_read : zlib_read)(path[i]) == 0) {
                    fprintf(stderr, "bench_load: cannot read %s: %s\n", path[i], nb_error_message());
                    return 1;
                }
            cpu[side][r] = (cpu_ns() - c0) / 1e6;
            wall[side][r] = (now_ns() - w0) / 1e6;
        }
    double nc = median(cpu[0], REPS), zc = median(cpu[1], REPS);
    double nw = median(wall[0], REPS), zw = median(wall[1], REPS);
    printf("load: Fashion-MNIST's four files from %s, medians of %d interleaved runs\n", dir, REPS);
    printf("%-34s %10s %10s\n", "", "CPU ms", "wall ms");
    printf("%-34s %10.1f %10.1f\n", "nb_idx_read (libdeflate)", nc, nw);
    printf("%-34s %10.1f %10.1f\n", "zlib gzread (the previous reader)", zc, zw);
    printf("%-34s %9.2fx %9.2fx   (goal >= 3x)\n", "speed-up", zc / nc, zw / nw);
    printf("@load nabla_ms=%.2f zlib_ms=%.2f ratio=%.3f wall_ratio=%.3f\n", nc, zc, zc / nc, zw / nw);
    return 0;
}
