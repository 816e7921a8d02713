/*
 * fuzz_safetensors.c — libFuzzer target for the safetensors reader.  Any bytes must either fail
 * to open with NB_ERR_IO, or open and then let every tensor be read (or be refused with a clean
 * error) — never a crash, an out-of-bounds read (ASan) or a leak (counted allocator).
 *
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DNB_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_safetensors
 *   ./build-fuzz/fuzz_safetensors -max_total_time=60 CORPUS_DIR tests/golden
 */
#include "io/io.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t live = nb_alloc_stats_get().bytes_live;
    nb_safetensors *st = nb__safetensors_from_memory("fuzz", data, size);
    if (!st && nb_error_code() != NB_ERR_IO) abort();
    for (int i = 0; i < nb_safetensors_count(st); i++) {
        const char *name = nb_safetensors_name(st, i);
        nb_tensor *t = nb_safetensors_get(st, name);
        if (t) {
            /* load_into must accept exactly what get returned. */
            nb_tensor *dst = nb__new(nb_dtype_of(t), nb_ndim(t), nb_shape(t));
            if (!dst || nb_safetensors_load_into(st, name, dst) != NB_OK) abort();
            nb_tensor_free(dst);
        } else {
            /* Refusals a valid file may earn: a dtype nabla does not hold (or an I64 out of
             * int32 range), dims too large for a nabla tensor, no memory. */
            nb_status s = nb_error_code();
            if (s != NB_ERR_DTYPE && s != NB_ERR_SHAPE && s != NB_ERR_MEMORY) abort();
        }
        nb_tensor_free(t);
        nb_error_clear();
    }
    nb_safetensors_meta(st, "nabla.crc32");
    nb_safetensors_close(st);
    nb_error_clear();
    if (nb_alloc_stats_get().bytes_live != live) abort();
    return 0;
}
