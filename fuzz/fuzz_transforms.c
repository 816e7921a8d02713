/*
 * fuzz_transforms.c — libFuzzer target for the loader's transforms.  The input's first 40 bytes
 * are the options, taken as raw floats and ints so that NaN, infinities, huge and negative
 * values all come up; then the image size (1..3 channels, 1..24 x 1..24) and whether the samples
 * are bytes or floats; the rest are the pixels of two samples (zeros where the input ends).
 * Besides the sanitizers' checks, it traps when
 *  - nb_loader_new refuses without NB_ERR_ARG / NB_ERR_SHAPE and a message naming the loader,
 *  - a batch holds a value that is not finite (for options within float's reach), or, without
 *    noise and normalisation, one outside [0, 255] scaled (the geometric steps only ever mix
 *    pixels with weights in [0, 1]),
 *  - two passes over the same epoch differ, or the counted allocator leaks.
 * Build: CC=clang cmake -S . -B build-fuzz -DNB_FUZZ=ON && cmake --build build-fuzz --target fuzz_transforms
 * Run:   make fuzz (every target), or ./build-fuzz/fuzz_transforms -max_total_time=60
 */
#include "nabla.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { OPTS = 40, N = 2 };

static float take_float(const uint8_t *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Both batches of one epoch into out[N * m]. */
static void one_epoch(nb_loader *l, float *out, int64_t m) {
    nb_tensor *x, *y;
    int64_t w = 0;
    while (nb_loader_next(l, &x, &y)) {
        if (nb_copy_to(x, out + w, nb_numel(x)) != NB_OK) __builtin_trap();
        w += nb_numel(x);
    }
    if (w != N * m) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < OPTS + 3) return 0;
    nb_transforms t = {.scale = data[0] & 1, .mean = take_float(data + 4),
                       .std = take_float(data + 8), .hflip = take_float(data + 12),
                       .noise_std = (data[0] & 2) ? take_float(data + 16) : 0,
                       .rotate = {take_float(data + 20), take_float(data + 24)},
                       .crop_scale = {take_float(data + 28), take_float(data + 32)},
                       .crop_ratio = {(data[0] & 4) ? take_float(data + 36) : 0,
                                      (data[0] & 4) ? take_float(data + 36) * 2 : 0}};
    memcpy(&t.pad, data + 1, 2); /* 16 bits: a pad of up to 65 535 */
    t.pad = (int16_t)t.pad;
    int64_t c = 1 + data[OPTS] % 3, h = 1 + (data[OPTS + 1] & 31) % 24,
            w = 1 + (data[OPTS + 2] & 31) % 24, m = c * h * w;
    bool as_float = data[OPTS + 1] & 32;
    const uint8_t *px = data + OPTS + 3;
    size_t have = size - OPTS - 3;
    uint8_t *xb = calloc((size_t)(N * m), 1);
    float *xf = calloc((size_t)(N * m), sizeof(float));
    float *a = malloc(sizeof(float) * (size_t)(N * m)), *b = malloc(sizeof(float) * (size_t)(N * m));
    for (int64_t i = 0; i < N * m && (size_t)i < have; i++) xb[i] = px[i], xf[i] = px[i];
    size_t live = nb_alloc_stats_get().bytes_live;
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){
        .n = N, .sample_ndim = 3, .sample_shape = (const int64_t[]){c, h, w},
        .x_u8 = as_float ? NULL : xb, .x_f32 = as_float ? xf : NULL});
    nb_loader *l = nb_loader_new(ds, (nb_loader_opts){.batch_size = 1, .seed = data[3],
                                                      .transforms = t});
    if (!l) {
        nb_status s = nb_error_code();
        if ((s != NB_ERR_ARG && s != NB_ERR_SHAPE) || !strstr(nb_error_message(), "loader_new"))
            __builtin_trap();
        nb_error_clear();
    } else {
        one_epoch(l, a, m);
        nb_loader_set_epoch(l, 0);
        one_epoch(l, b, m);
        if (memcmp(a, b, sizeof(float) * (size_t)(N * m)) != 0) __builtin_trap();
        float top = t.scale ? 1.0f : 255.0f;
        /* values beyond float's range are the options' doing (a std of 1e-40, a noise of 1e38) */
        bool tame = fabsf(t.mean) <= 1e6f && t.noise_std <= 1e6f && (t.std == 0 || t.std >= 1e-6f);
        for (int64_t i = 0; i < N * m; i++) {
            if (tame && !isfinite(a[i])) __builtin_trap();
            if (t.noise_std == 0 && t.std == 0 && (a[i] < 0 || a[i] > top * 1.000001f))
                __builtin_trap();
        }
        nb_loader_free(l);
    }
    nb_dataset_free(ds);
    if (nb_alloc_stats_get().bytes_live != live) __builtin_trap();
    free(xb);
    free(xf);
    free(a);
    free(b);
    return 0;
}
