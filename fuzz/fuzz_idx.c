/*
 * fuzz_idx.c — libFuzzer target for the IDX reader.  Each input is written to a file twice, as
 * is and gzip-compressed, and read back both ways.  Besides the sanitizers' checks, it traps when
 *  - a read fails without a message naming the file,
 *  - a read succeeds with an element count that is not the product of the sizes,
 *  - the plain and the gzip file disagree (success, shape or bytes), unless the input itself
 *    starts like gzip (then the "plain" file is inflated too),
 *  - the counted allocator holds more bytes after the call than before (a leak).
 * Build: CC=clang cmake -S . -B build-fuzz -DNB_FUZZ=ON && cmake --build build-fuzz --target fuzz_idx
 * Run:   ./build-fuzz/fuzz_idx -max_total_time=60 -max_len=4096
 */
#include "nabla.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char raw_path[64], gz_path[64];

static void write_file(const char *path, const uint8_t *data, size_t size, bool gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb1");
        if (!f || (size && gzwrite(f, data, (unsigned)size) != (int)size)) __builtin_trap();
        gzclose(f);
        return;
    }
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size)) __builtin_trap();
    fclose(f);
}

static nb_idx *read_checked(const char *path) {
    nb_idx *idx = nb_idx_read(path);
    if (!idx) {
        if (nb_error_code() != NB_ERR_IO || !strstr(nb_error_message(), path)) __builtin_trap();
        nb_error_clear();
        return NULL;
    }
    int64_t n = 1;
    for (int i = 0; i < idx->ndim; i++) n *= idx->shape[i];
    if (n != idx->numel) __builtin_trap();
    return idx;
}

static size_t elem_size(nb_idx_type t) {
    return t == NB_IDX_F64 ? 8 : t == NB_IDX_I32 || t == NB_IDX_F32 ? 4 : t == NB_IDX_I16 ? 2 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!raw_path[0]) {
        snprintf(raw_path, sizeof raw_path, "/tmp/nb_fuzz_idx_%d.idx", (int)getpid());
        snprintf(gz_path, sizeof gz_path, "/tmp/nb_fuzz_idx_%d.idx.gz", (int)getpid());
    }
    size_t live = nb_alloc_stats_get().bytes_live;
    write_file(raw_path, data, size, false);
    write_file(gz_path, data, size, true);
    nb_idx *a = read_checked(raw_path), *b = read_checked(gz_path);
    bool looks_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    if (!looks_gzip) {
        if (!a != !b) __builtin_trap();
        if (a && (a->type != b->type || a->ndim != b->ndim ||
                  memcmp(a->shape, b->shape, sizeof a->shape) != 0 ||
                  memcmp(a->data, b->data, (size_t)a->numel * elem_size(a->type)) != 0))
            __builtin_trap();
    }
    nb_idx_free(a);
    nb_idx_free(b);
    unlink(raw_path); /* libFuzzer may end without exit handlers: leave nothing behind */
    unlink(gz_path);
    if (nb_alloc_stats_get().bytes_live != live) __builtin_trap();
    return 0;
}
