/*
 * fuzz_csv.c — libFuzzer target for the CSV reader.  The first input byte picks the options
 * (header or not, the delimiter, the target spec); the rest is the file.  Besides the sanitizers'
 * checks, it traps when a read fails without a message naming the file, when a dataset's shape
 * does not account for every column, or when the counted allocator leaks.
 * Build: CC=clang cmake -S . -B build-fuzz -DNB_FUZZ=ON && cmake --build build-fuzz --target fuzz_csv
 * Run:   ./build-fuzz/fuzz_csv -max_total_time=60 -max_len=4096
 */
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (!path[0]) snprintf(path, sizeof path, "/tmp/nb_fuzz_csv_%d.csv", (int)getpid());
    static const char *const specs[] = {NULL, "0", "-1", "1,0", "a", "a,b"};
    static const char delims[] = {0, ';', '\t', ' '};
    nb_csv_opts o = {.header = data[0] & 1, .delimiter = delims[(data[0] >> 1) & 3],
                     .targets = specs[(data[0] >> 3) % 6]};
    FILE *f = fopen(path, "wb");
    if (!f || (size > 1 && fwrite(data + 1, 1, size - 1, f) != size - 1)) __builtin_trap();
    fclose(f);
    size_t live = nb_alloc_stats_get().bytes_live;
    nb_dataset *ds = nb_csv_read(path, o);
    unlink(path); /* libFuzzer may end without exit handlers: leave nothing behind */
    if (!ds) {
        nb_status s = nb_error_code();
        if ((s != NB_ERR_IO && s != NB_ERR_ARG) || !strstr(nb_error_message(), path))
            __builtin_trap();
        nb_error_clear();
    } else {
        nb_dataset_info info = nb_dataset_info_get(ds);
        if (info.n < 1 || info.sample_ndim != 1 || info.sample_shape[0] < 1 ||
            info.target != NB_TARGET_FLOAT || info.target_dim < 1)
            __builtin_trap();
        float *x = malloc(sizeof(float) * (size_t)(info.sample_numel + info.target_dim));
        for (int64_t i = 0; i < info.n; i++)
            if (nb_dataset_get(ds, i, x, x + info.sample_numel) != NB_OK) __builtin_trap();
        free(x);
        nb_dataset_free(ds);
    }
    if (nb_alloc_stats_get().bytes_live != live) __builtin_trap();
    return 0;
}
