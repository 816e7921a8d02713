/*
 * test_io.c — safetensors: round trips of every dtype and of strided views, metadata, the file
 * torch wrote (tests/golden/torch_written.safetensors, from tools/gen_golden_io.py) read bit for
 * bit, malformed files of every kind refused with a message naming the file and byte offset,
 * atomic saves that leave the old file intact on failure, and load_into's checks.
 *
 * Files live in a mkdtemp directory under /tmp, removed at the end.  With NB_TEST_IO_EXPORT=path
 * set, the round-trip file is also written to path, for `tools/gen_golden_io.py --read path`.
 */
#include "check.h"
#include "core/core.h"
#include "tmpdir.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* A file with the given length prefix, header text and data bytes. */
static void write_raw(const char *path, uint64_t hlen, const char *header, const void *data,
                      size_t ndata) {
    size_t nh = strlen(header);
    unsigned char *buf = malloc(8 + nh + ndata + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, header, nh);
    if (ndata) memcpy(buf + 8 + nh, data, ndata);
    write_bytes(path, buf, 8 + nh + ndata);
    free(buf);
}

static void write_st(const char *path, const char *header, const void *data, size_t ndata) {
    write_raw(path, strlen(header), header, data, ndata);
}

static bool same_file(const char *path, const unsigned char *want, size_t n) {
    size_t m;
    unsigned char *got = read_all(path, &m);
    bool same = got && m == n && memcmp(got, want, n) == 0;
    free(got);
    return same;
}

/* Leftovers of a failed save: temporaries are named path + ".tmp.<pid>-<n>". */
static int count_temporaries(void) { return tmpdir_count(".tmp"); }

/* Same dtype, shape and bytes in logical order. */
static bool same_tensor(const nb_tensor *a, const nb_tensor *b) {
    if (!a || !b || nb_dtype_of(a) != nb_dtype_of(b) || nb_ndim(a) != nb_ndim(b) ||
        memcmp(nb_shape(a), nb_shape(b), sizeof(int64_t) * (size_t)nb_ndim(a)))
        return false;
    size_t n = (size_t)nb_numel(a) * nb__dtype_size(nb_dtype_of(a));
    char *x = malloc(n + 1), *y = malloc(n + 1);
    nb__copy_logical(x, a);
    nb__copy_logical(y, b);
    bool same = memcmp(x, y, n) == 0;
    free(x);
    free(y);
    return same;
}

#define CHECK_OPEN_FAILS(path, code, needle)                       \
    do {                                                           \
        nb_safetensors *st_ = nb_safetensors_open(path);           \
        CHECK(st_ == NULL);                                        \
        nb_safetensors_close(st_);                                 \
        CHECK_STR_CONTAINS(nb_error_message(), path);              \
        CHECK_ERROR(code, needle);                                 \
    } while (0)

/* ---------------------------------------------------------------- round trips */

#define N_RT 9
static const char *const rt_names[N_RT] = {"f32", "f16", "bf16", "i8", "i32", "scalar",
                                           "empty", "transposed", "strided"};

/* One tensor of each dtype, a scalar, an empty tensor, and two non-contiguous views. */
static void make_round_trip_set(nb_tensor **ts) {
    const float v[6] = {1.5f, -2.25f, 3.0e-3f, 65000.0f, -0.0f, 1e-6f};
    nb_tensor *f = nb_from_data(v, NB_SHAPE(2, 3));
    ts[0] = f;
    ts[1] = nb_to_dtype(f, NB_F16);
    ts[2] = nb_to_dtype(f, NB_BF16);
    ts[3] = nb_to_dtype(nb_from_data((float[]){-128, -7, 0, 5, 127}, NB_SHAPE(5)), NB_I8);
    ts[4] = nb_from_int32((int32_t[]){INT32_MIN, -1, 0, 42, INT32_MAX, 7}, NB_SHAPE(3, 2));
    ts[5] = nb_full(0, NULL, 2.75f);
    ts[6] = nb_zeros(NB_SHAPE(0, 4));
    nb_tensor *base = nb_reshape(nb_arange(0, 12, 1), NB_SHAPE(3, 4));
    ts[7] = nb_transpose(base, 0, 1);
    ts[8] = nb_slice(base, 1, 0, 4, 2);
}

static void round_trip_keeps_every_dtype_shape_and_view(void) {
    nb_scope_begin();
    nb_tensor *ts[N_RT];
    make_round_trip_set(ts);
    CHECK(!nb_is_contiguous(ts[7]) && !nb_is_contiguous(ts[8]));
    const char *path = tpath("round_trip.safetensors");
    const char *keys[] = {"epoch", "note", "empty"}, *vals[] = {"3", "µ-law ✓ \"quoted\"", ""};
    CHECK_EQ_INT(nb_safetensors_save(path, N_RT, rt_names, ts, keys, vals, 3), NB_OK);
    const char *export = getenv("NB_TEST_IO_EXPORT");
    if (export) CHECK_EQ_INT(nb_safetensors_save(export, N_RT, rt_names, ts, keys, vals, 3), NB_OK);

    /* Layout as torch writes it: header padded with spaces, data 8-byte aligned. */
    size_t n;
    unsigned char *raw = read_all(path, &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
    CHECK_EQ_INT((8 + hlen) % 8, 0);
    CHECK(raw[8] == '{');
    CHECK(hlen + 8 <= n);
    free(raw);

    nb_safetensors *st = nb_safetensors_open(path);
    CHECK(st != NULL);
    CHECK_EQ_INT(nb_safetensors_count(st), N_RT);
    for (int i = 0; i < N_RT && st; i++) {
        const char *name = nb_safetensors_name(st, i);
        CHECK(name && strcmp(name, rt_names[i]) == 0); /* file order = save order */
        nb_tensor *t = nb_safetensors_get(st, rt_names[i]);
        if (!same_tensor(t, ts[i]))
            CHECK_FAIL_("tensor '%s' differs after the round trip", rt_names[i]);
        else CHECK(nb_is_contiguous(t));
    }
    CHECK_TENSOR("transposed", nb_safetensors_get(st, "transposed"),
                 ((double[]){0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}), 12, 0, 0);
    CHECK_TENSOR("strided", nb_safetensors_get(st, "strided"),
                 ((double[]){0, 2, 4, 6, 8, 10}), 6, 0, 0);
    CHECK(signbit(nb_get(nb_safetensors_get(st, "f32"), NB_INDEX(1, 1))));

    /* Metadata, including UTF-8 and quotes, and the checksum nabla adds. */
    CHECK(nb_safetensors_meta(st, "epoch") && !strcmp(nb_safetensors_meta(st, "epoch"), "3"));
    CHECK(nb_safetensors_meta(st, "note") &&
          !strcmp(nb_safetensors_meta(st, "note"), "µ-law ✓ \"quoted\""));
    CHECK(nb_safetensors_meta(st, "empty") && !strcmp(nb_safetensors_meta(st, "empty"), ""));
    const char *crc = nb_safetensors_meta(st, "nabla.file_crc32");
    CHECK(crc && strlen(crc) == 8 && strspn(crc, "0123456789abcdef") == 8);
    CHECK(nb_safetensors_meta(st, "nabla.writer") &&
          !strcmp(nb_safetensors_meta(st, "nabla.writer"), "nabla " NB_VERSION));
    CHECK(nb_safetensors_meta(st, "absent") == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_OK);

    CHECK(nb_safetensors_name(st, N_RT) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "index 9");
    CHECK(nb_safetensors_get(st, "nope") == NULL);
    CHECK_ERROR(NB_ERR_ARG, "no tensor named 'nope'");
    nb_safetensors_close(st);
    nb_scope_end();
}

static void empty_files_and_empty_tensors_round_trip(void) {
    const char *path = tpath("nothing.safetensors");
    CHECK_EQ_INT(nb_safetensors_save(path, 0, NULL, NULL, NULL, NULL, 0), NB_OK);
    nb_safetensors *st = nb_safetensors_open(path);
    CHECK(st != NULL);
    CHECK_EQ_INT(nb_safetensors_count(st), 0);
    nb_safetensors_close(st);
    write_st(tpath("bare.safetensors"), "{}", NULL, 0); /* no metadata at all */
    st = nb_safetensors_open(tpath("bare.safetensors"));
    CHECK(st != NULL && nb_safetensors_count(st) == 0);
    nb_safetensors_close(st);

    /* Empty tensors share one offset; they keep the order they were saved in. */
    nb_scope_begin();
    nb_tensor *e = nb_zeros(NB_SHAPE(0)), *one = nb_ones(NB_SHAPE(1));
    const char *names[] = {"z", "a", "one", "m"};
    CHECK_EQ_INT(nb_safetensors_save(path, 4, names, (nb_tensor *[]){e, e, one, e}, NULL, NULL, 0),
                 NB_OK);
    st = nb_safetensors_open(path);
    CHECK_EQ_INT(nb_safetensors_count(st), 4);
    for (int i = 0; i < 4 && st; i++) CHECK(!strcmp(nb_safetensors_name(st, i), names[i]));
    nb_safetensors_close(st);
    nb_scope_end();
}

/* ---------------------------------------------------------------- the file torch wrote */

static void torch_written_file_reads_exactly(void) {
    nb_scope_begin();
    const char *path = "tests/golden/torch_written.safetensors";
    nb_safetensors *st = nb_safetensors_open(path);
    CHECK(st != NULL);
    if (!st) {
        nb_scope_end();
        return;
    }
    /* torch's writer orders by descending element size, then name. */
    static const char *const order[] = {"labels", "empty", "int32", "linear.bias",
                                        "linear.weight", "scalar", "bf16", "half", "int8"};
    CHECK_EQ_INT(nb_safetensors_count(st), 9);
    for (int i = 0; i < 9; i++) CHECK(!strcmp(nb_safetensors_name(st, i), order[i]));
    CHECK(!strcmp(nb_safetensors_meta(st, "format"), "pt"));
    CHECK(nb_safetensors_meta(st, "nabla.file_crc32") == NULL); /* another writer: none */

    nb_tensor *w = nb_safetensors_get(st, "linear.weight");
    CHECK(w && nb_dtype_of(w) == NB_F32 && nb_ndim(w) == 2 && nb_size(w, 0) == 3 &&
          nb_size(w, 1) == 4);
    CHECK_TENSOR("linear.weight", w,
                 ((double[]){-0.0037434101104736328, 0.26822179555892944, -0.41152256727218628,
                             -0.36796951293945312, -0.19257718324661255, 0.13407868146896362,
                             -0.0099065899848937988, 0.39644473791122437, -0.044372022151947021,
                             0.13230627775192261, -0.15110653638839722, -0.098282694816589355}),
                 12, 0, 0);
    CHECK_TENSOR("linear.bias", nb_safetensors_get(st, "linear.bias"),
                 ((double[]){-0.47767424583435059, -0.33114105463027954, -0.20611155033111572}),
                 3, 0, 0);
    nb_tensor *h = nb_safetensors_get(st, "half");
    CHECK(h && nb_dtype_of(h) == NB_F16);
    CHECK_TENSOR("half", h, ((double[]){0.5, -1.25, 3, 65504, 5.9604644775390625e-08, -0.0}), 6,
                 0, 0);
    CHECK(h && signbit(nb_get(h, NB_INDEX(1, 2))));
    nb_tensor *b = nb_safetensors_get(st, "bf16");
    CHECK(b && nb_dtype_of(b) == NB_BF16);
    CHECK_TENSOR("bf16", b, ((double[]){1, -2.5, 3.140625, 1.0002555517425873e+30}), 4, 0, 0);
    nb_tensor *q = nb_safetensors_get(st, "int8");
    CHECK(q && nb_dtype_of(q) == NB_I8);
    CHECK_TENSOR("int8", q, ((double[]){-128, -1, 0, 1, 127}), 5, 0, 0);
    nb_tensor *i32 = nb_safetensors_get(st, "int32");
    CHECK(i32 && nb_dtype_of(i32) == NB_I32);
    if (i32) {
        int32_t p[4];
        nb__copy_logical(p, i32);
        CHECK(p[0] == INT32_MIN && p[1] == 7 && p[2] == INT32_MAX && p[3] == 0);
    }
    nb_tensor *labels = nb_safetensors_get(st, "labels"); /* I64 -> int32 */
    CHECK(labels && nb_dtype_of(labels) == NB_I32 && nb_numel(labels) == 4);
    if (labels) {
        int32_t p[4];
        nb__copy_logical(p, labels);
        CHECK(p[0] == 3 && p[1] == 0 && p[2] == 9 && p[3] == 1);
    }
    nb_tensor *s = nb_safetensors_get(st, "scalar");
    CHECK(s && nb_ndim(s) == 0);
    CHECK_NEAR(nb_item(s), 2.5, 0, 0);
    nb_tensor *e = nb_safetensors_get(st, "empty");
    CHECK(e && nb_ndim(e) == 2 && nb_size(e, 0) == 0 && nb_size(e, 1) == 3);
    nb_safetensors_close(st);
    nb_scope_end();
}

/* ---------------------------------------------------------------- load_into and dtypes */

static void load_into_checks_dtype_and_shape_and_fills_views(void) {
    nb_scope_begin();
    const char *path = tpath("load_into.safetensors");
    nb_tensor *w = nb_from_data((float[]){1, 2, 3, 4, 5, 6}, NB_SHAPE(2, 3));
    nb_tensor *lab = nb_from_int32((int32_t[]){4, 5}, NB_SHAPE(2));
    const char *names[] = {"w", "labels"};
    CHECK_EQ_INT(nb_safetensors_save(path, 2, names, (nb_tensor *[]){w, lab}, NULL, NULL, 0),
                 NB_OK);
    nb_safetensors *st = nb_safetensors_open(path);
    CHECK(st != NULL);

    nb_tensor *dst = nb_zeros(NB_SHAPE(2, 3));
    nb_set_requires_grad(dst, true); /* loading weights into a parameter */
    CHECK_EQ_INT(nb_safetensors_load_into(st, "w", dst), NB_OK);
    CHECK_TENSOR("loaded", dst, ((double[]){1, 2, 3, 4, 5, 6}), 6, 0, 0);

    nb_tensor *holder = nb_zeros(NB_SHAPE(3, 2)); /* a transposed view of it as destination */
    nb_tensor *view = nb_transpose(holder, 0, 1);
    CHECK_EQ_INT(nb_safetensors_load_into(st, "w", view), NB_OK);
    CHECK_TENSOR("through a view", holder, ((double[]){1, 4, 2, 5, 3, 6}), 6, 0, 0);

    nb_tensor *wrong = nb_full(NB_SHAPE(3, 2), 9);
    CHECK_EQ_INT(nb_safetensors_load_into(st, "w", wrong), NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "tensor 'w' is [2,3] in the file, the destination is [3,2]");
    CHECK_TENSOR("unchanged", wrong, ((double[]){9, 9, 9, 9, 9, 9}), 6, 0, 0);

    nb_tensor *half = nb_to_dtype(nb_full(NB_SHAPE(2, 3), 9), NB_F16);
    CHECK_EQ_INT(nb_safetensors_load_into(st, "w", half), NB_ERR_DTYPE);
    CHECK_ERROR(NB_ERR_DTYPE, "is F32 in the file (read as float32), the destination is float16");
    CHECK_TENSOR("unchanged", half, ((double[]){9, 9, 9, 9, 9, 9}), 6, 0, 0);

    nb_tensor *bcast = nb_expand(nb_zeros(NB_SHAPE(1, 3)), NB_SHAPE(2, 3));
    CHECK_EQ_INT(nb_safetensors_load_into(st, "w", bcast), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "broadcast view");

    CHECK_EQ_INT(nb_safetensors_load_into(st, "missing", dst), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "no tensor named 'missing'");
    CHECK_EQ_INT(nb_safetensors_load_into(st, "w", NULL), NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "safetensors_load_into");
    nb_safetensors_close(st);

    /* A failed open's error survives calls on the NULL handle, as with ops. */
    CHECK(nb_safetensors_open(tpath("does_not_exist")) == NULL);
    CHECK(nb_safetensors_get(NULL, "w") == NULL);
    CHECK_ERROR(NB_ERR_IO, "cannot open");
    nb_scope_end();
}

static void int64_converts_to_int32_with_range_check(void) {
    nb_scope_begin();
    int64_t ok[3] = {0, -5, 2147483647}, big[2] = {1, (int64_t)1 << 40};
    const char *path = tpath("i64.safetensors");
    write_st(path, "{\"ok\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]},"
                   "\"big\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[24,40]}}",
             (int64_t[]){ok[0], ok[1], ok[2], big[0], big[1]}, 40);
    nb_safetensors *st = nb_safetensors_open(path);
    CHECK(st != NULL);
    nb_tensor *t = nb_safetensors_get(st, "ok");
    CHECK(t && nb_dtype_of(t) == NB_I32);
    int32_t got[3] = {0};
    if (t && nb_numel(t) == 3) nb__copy_logical(got, t);
    CHECK(got[1] == -5 && got[2] == INT32_MAX);
    CHECK(nb_safetensors_get(st, "big") == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "element 1 is 1099511627776, outside int32's range");
    nb_tensor *dst = nb_from_int32((int32_t[]){7, 7}, NB_SHAPE(2));
    CHECK_EQ_INT(nb_safetensors_load_into(st, "big", dst), NB_ERR_DTYPE);
    CHECK_ERROR(NB_ERR_DTYPE, "byte ");
    int32_t kept[2];
    nb__copy_logical(kept, dst);
    CHECK(kept[0] == 7 && kept[1] == 7);
    nb_safetensors_close(st);
    nb_scope_end();
}

static void other_dtypes_validate_but_are_refused_on_read(void) {
    const char *path = tpath("f64.safetensors");
    write_st(path, "{\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                   "\"u\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[8,10]}}",
             (unsigned char[10]){0}, 10);
    nb_safetensors *st = nb_safetensors_open(path);
    CHECK(st != NULL);
    CHECK_EQ_INT(nb_safetensors_count(st), 2);
    CHECK(nb_safetensors_get(st, "d") == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "tensor 'd' is F64, which nabla does not hold");
    CHECK(nb_safetensors_get(st, "u") == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "is U16");
    nb_safetensors_close(st);
}

/* ---------------------------------------------------------------- malformed files */

static void malformed_headers_are_refused(void) {
    const char *p = tpath("bad.safetensors");
    write_bytes(p, "", 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "byte 0: the file has 0 bytes");
    write_bytes(p, "\x02\0\0\0", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "fewer than the 8-byte header length");
    write_raw(p, 100, "{}", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "byte 0: header length 100 runs past the end of the file");
    write_raw(p, (uint64_t)1 << 63, "{}", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "header length 9223372036854775808 runs past");
    write_raw(p, UINT64_MAX, "{}", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "header length 18446744073709551615 runs past");
    write_st(p, "hello", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "header is not valid JSON");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "byte 28: header is not valid JSON");
    write_bytes(p, "\x04\0\0\0\0\0\0\0{}\0}", 12);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "not valid JSON");
    write_st(p, "[1,2]", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "byte 8: header is an array, not an object");
    write_st(p, "\"str\"", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "header is a string, not an object");
    write_st(p, "  {}", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "does not start with '{'");
    write_st(p, "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "tensor 'a': missing \"dtype\"");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "tensor 'a': missing \"shape\"");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "tensor 'a': missing \"data_offsets\"");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", "abcd",
             4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "tensor 'a': unknown key 'x'");
    write_st(p, "{\"a\":3}", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "'a' is an integer, neither a tensor entry");
    write_st(p, "{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "dtype is an integer");
    write_st(p, "{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "tensor 'a': unknown dtype 'F128'");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "shape[0] is negative (-1)");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "shape[0] is a real number");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "shape is an integer");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
             "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "rank 9 exceeds 8");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                "\"data_offsets\":[0,4]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "element count overflows");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
                "\"data_offsets\":[0,4]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "byte size overflows");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                "\"data_offsets\":[0,99999999999999999999]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "not valid JSON"); /* beyond int64: jansson refuses it */
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "data_offsets [4, 0] are not 0 <= begin <= end");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "are not 0 <= begin <= end");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "data_offsets is not a pair");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "duplicate object key");
    write_st(p, "{\"__metadata__\":{\"k\":1}}", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "__metadata__ value of 'k' is an integer, not a string");
    write_st(p, "{\"__metadata__\":[]}", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "__metadata__ is an array");
    write_st(p, "{\"__metadata__\":{\"nabla.crc32\":\"xyz\"}}", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "nabla.crc32 'xyz' is not 8 hex digits");
    write_st(p, "{\"__metadata__\":{\"nabla.file_crc32\":\"123456789\"}}", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "nabla.file_crc32 '123456789' is not 8 hex digits");
    write_st(p, "{\"__metadata__\":{\"x\":\"1\",\"nabla.file_crc32\":\"12345678\"}}", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "nabla.file_crc32 does not open the header");
}

/* Header {"a": F32[1] at [0,4]} padded to 56 bytes, so data starts at byte 64. */
#define HDR_A_AT(b, e) "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" #b "," #e "]}}"

static void malformed_data_layouts_are_refused(void) {
    const char *p = tpath("bad_layout.safetensors");
    const char two[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[%d,%d]}}";
    char h[256];
    size_t data_start = 8 + (size_t)snprintf(h, sizeof h, two, 4, 12);
    char want[96];
    write_st(p, h, "0123456789ab", 12);
    snprintf(want, sizeof want, "byte %zu: tensor 'b' [4, 12) overlaps tensor 'a' [0, 8)",
             data_start + 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, want);
    data_start = 8 + (size_t)snprintf(h, sizeof h, two, 12, 20);
    write_st(p, h, "0123456789abcdefghij", 20);
    snprintf(want, sizeof want, "byte %zu: data bytes [8, 12) belong to no tensor", data_start + 8);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, want);

    write_st(p, HDR_A_AT(0, 4), "abcd", 4); /* the valid base case */
    nb_safetensors *st = nb_safetensors_open(p);
    CHECK(st != NULL);
    nb_safetensors_close(st);
    size_t ds = 8 + strlen(HDR_A_AT(0, 4));
    write_st(p, HDR_A_AT(0, 8), "abcd", 4);
    snprintf(want, sizeof want, "byte %zu: tensor 'a': data_offsets [0, 8] run past", ds + 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, want);
    write_st(p, HDR_A_AT(0, 8), "abcdefgh", 8);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "data_offsets [0, 8] hold 8 bytes, but F32 [1] needs 4");
    write_st(p, HDR_A_AT(0, 4), "abcdefgh", 8);
    snprintf(want, sizeof want, "byte %zu: 4 trailing bytes after the last tensor", ds + 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, want);
    write_st(p, HDR_A_AT(4, 8), "abcdefgh", 8);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "data bytes [0, 4) belong to no tensor");
}

static void corrupted_and_truncated_nabla_files_are_refused(void) {
    nb_scope_begin();
    const char *good = tpath("good.safetensors"), *p = tpath("corrupt.safetensors");
    nb_tensor *t = nb_arange(0, 64, 1);
    CHECK_EQ_INT(nb_safetensors_save(good, 1, (const char *[]){"t"}, &t, NULL, NULL, 0), NB_OK);
    size_t n;
    unsigned char *raw = read_all(good, &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
    size_t ds = 8 + (size_t)hlen;

    raw[ds + 100] ^= 0x01; /* one bit of one data byte */
    write_bytes(p, raw, n);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "byte 0: checksum mismatch");
    raw[ds + 100] ^= 0x01;
    write_bytes(p, raw, n);
    nb_safetensors *st = nb_safetensors_open(p);
    CHECK(st != NULL);
    nb_safetensors_close(st);

    write_bytes(p, raw, n - 3); /* truncated data */
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "truncated file?");
    write_bytes(p, raw, 20); /* truncated header */
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "runs past the end of the file");
    write_bytes(p, raw, 7);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "the file has 7 bytes");
    /* Every prefix fails cleanly, never a crash. */
    for (size_t k = 0; k < n; k++) {
        write_bytes(p, raw, k);
        st = nb_safetensors_open(p);
        if (st) CHECK_FAIL_("a %zu-byte prefix of a %zu-byte file opened", k, n);
        nb_error_clear();
    }
    free(raw);

    CHECK_OPEN_FAILS(tpath("no_such_file"), NB_ERR_IO, "cannot open");
    CHECK_OPEN_FAILS(tmpdir, NB_ERR_IO, "not a regular file");
    const char *fifo = tpath("fifo");
    CHECK(mkfifo(fifo, 0600) == 0);
    CHECK_OPEN_FAILS(fifo, NB_ERR_IO, "not a regular file"); /* without waiting for a writer */
    CHECK(nb_safetensors_open(NULL) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "path is NULL");
    nb_scope_end();
}

/* ---------------------------------------------------------------- atomic saves */

static void failed_saves_leave_the_old_file_and_no_temporary(void) {
    nb_scope_begin();
    const char *path = tpath("atomic.safetensors");
    nb_tensor *t = nb_arange(0, 16, 1);
    const char *one[] = {"t"};
    CHECK_EQ_INT(nb_safetensors_save(path, 1, one, &t, NULL, NULL, 0), NB_OK);
    size_t n;
    unsigned char *before = read_all(path, &n);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644); /* umask 022, set in main */

    nb_tensor *null_t = NULL;
    CHECK_EQ_INT(nb_safetensors_save(path, 1, one, &null_t, NULL, NULL, 0), NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "tensor 't' is NULL");
    CHECK_EQ_INT(nb_safetensors_save(path, 2, (const char *[]){"t", "t"}, (nb_tensor *[]){t, t},
                                     NULL, NULL, 0), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "tensor name 't' is given twice");
    CHECK_EQ_INT(nb_safetensors_save(path, 1, (const char *[]){"__metadata__"}, &t, NULL, NULL, 0),
                 NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "reserved __metadata__");
    CHECK_EQ_INT(nb_safetensors_save(path, 1, (const char *[]){""}, &t, NULL, NULL, 0), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "name is empty");
    CHECK_EQ_INT(nb_safetensors_save(path, 1, (const char *[]){"\xff\xfe"}, &t, NULL, NULL, 0),
                 NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "not valid UTF-8");
    const char *reserved[] = {"nabla.crc32", "nabla.file_crc32", "nabla.writer"};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(nb_safetensors_save(path, 1, one, &t, &reserved[i], (const char *[]){"0"},
                                         1), NB_ERR_ARG);
        CHECK_ERROR(NB_ERR_ARG, "reserved for the checksum");
    }
    CHECK_EQ_INT(nb_safetensors_save(path, 1, one, &t, (const char *[]){"k", "k"},
                                     (const char *[]){"1", "2"}, 2), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "metadata key 'k' is given twice");
    CHECK_EQ_INT(nb_safetensors_save(path, -1, NULL, NULL, NULL, NULL, 0), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "bad counts");
    CHECK_EQ_INT(nb_safetensors_save(NULL, 0, NULL, NULL, NULL, NULL, 0), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "path is NULL");
    nb_scope_begin();
    nb_tensor *dead = nb_zeros(NB_SHAPE(2));
    nb_scope_end();
    CHECK_EQ_INT(nb_safetensors_save(path, 1, one, &dead, NULL, NULL, 0), NB_ERR_SCOPE);
    CHECK_ERROR(NB_ERR_SCOPE, "scope that has ended");

    const char *nodir = tpath("no/such/dir/x.safetensors");
    CHECK_EQ_INT(nb_safetensors_save(nodir, 1, one, &t, NULL, NULL, 0), NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "cannot open its folder: No such file");

    /* A directory in the way: refused before anything is written. */
    const char *dir = tpath("a_directory");
    mkdir(dir, 0755);
    CHECK_EQ_INT(nb_safetensors_save(dir, 1, one, &t, NULL, NULL, 0), NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "cannot replace it: Is a directory");
    rmdir(dir);

    /* A write that fails half way (file size limit): the old file survives intact. */
    struct rlimit old_lim, lim;
    getrlimit(RLIMIT_FSIZE, &old_lim);
    lim = old_lim;
    lim.rlim_cur = 4096;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    nb_tensor *big = nb_zeros(NB_SHAPE(64, 1024));
    setrlimit(RLIMIT_FSIZE, &lim);
    nb_status s = nb_safetensors_save(path, 1, one, &big, NULL, NULL, 0);
    setrlimit(RLIMIT_FSIZE, &old_lim);
    signal(SIGXFSZ, old_handler);
    CHECK_EQ_INT(s, NB_ERR_IO);
    CHECK_STR_CONTAINS(nb_error_message(), path);
    CHECK_ERROR(NB_ERR_IO, "byte 4096: writing the new file failed: File too large (past the "
                "file-size limit");

    CHECK(same_file(path, before, n));
    CHECK_EQ_INT(count_temporaries(), 0);

    /* A successful save replaces the file and keeps its mode. */
    chmod(path, 0640);
    CHECK_EQ_INT(nb_safetensors_save(path, 1, one, &big, NULL, NULL, 0), NB_OK);
    CHECK(!same_file(path, before, n));
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0640);
    nb_safetensors *st = nb_safetensors_open(path);
    CHECK(st && nb_numel(nb_safetensors_get(st, "t")) == 64 * 1024);
    nb_safetensors_close(st);
    CHECK_EQ_INT(count_temporaries(), 0);
    free(before);
    nb_scope_end();
}

/* ---------------------------------------------------------------- the checksum */

/* Every one-byte change anywhere in a nabla file — the header's activation, epoch or RNG
 * offset as much as the data — is refused. */
static void every_one_byte_edit_of_a_nabla_file_is_refused(void) {
    nb_scope_begin();
    const char *good = tpath("edit_good.safetensors"), *p = tpath("edited.safetensors");
    nb_tensor *t = nb_arange(0, 6, 1);
    const char *keys[] = {"nabla.model", "nabla.epoch"};
    const char *vals[] = {"{\"act\": \"relu\"}", "12"};
    CHECK_EQ_INT(nb_safetensors_save(good, 1, (const char *[]){"w"}, &t, keys, vals, 2), NB_OK);
    size_t n;
    unsigned char *raw = read_all(good, &n);
    int loaded = 0;
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            raw[i] ^= (unsigned char)(1 << bit);
            write_bytes(p, raw, n);
            nb_safetensors *st = nb_safetensors_open(p);
            if (st) {
                CHECK_FAIL_("byte %zu with bit %d flipped still opens", i, bit);
                loaded++;
            }
            nb_safetensors_close(st);
            nb_error_clear();
            raw[i] ^= (unsigned char)(1 << bit);
        }
    }
    CHECK_EQ_INT(loaded, 0);
    /* the activation: a same-length edit that keeps the JSON valid */
    char *at = memmem(raw, n, "relu", 4);
    CHECK(at != NULL);
    if (at) memcpy(at, "tanh", 4);
    write_bytes(p, raw, n);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "checksum mismatch");
    free(raw);
    nb_scope_end();
}

/* Replaces the first occurrence of `what` in the file's header by as many spaces (JSON
 * whitespace), so offsets and the header length stay right. */
static void blank_out(const char *src, const char *dst, const char *what) {
    size_t n;
    unsigned char *raw = read_all(src, &n);
    char *at = memmem(raw, n, what, strlen(what));
    CHECK(at != NULL);
    if (at) memset(at, ' ', strlen(what));
    write_bytes(dst, raw, n);
    free(raw);
}

static void a_nabla_file_without_its_checksum_is_refused(void) {
    nb_scope_begin();
    const char *good = tpath("ck_good.safetensors"), *p = tpath("no_ck.safetensors");
    nb_tensor *t = nb_arange(0, 6, 1);
    CHECK_EQ_INT(nb_safetensors_save(good, 1, (const char *[]){"w"}, &t, (const char *[]){"k"},
                                     (const char *[]){"v"}, 1), NB_OK);
    nb_safetensors *st = nb_safetensors_open(good);
    char entry[64];
    snprintf(entry, sizeof entry, "\"nabla.file_crc32\":\"%s\",",
             st ? nb_safetensors_meta(st, "nabla.file_crc32") : "");
    nb_safetensors_close(st);
    blank_out(good, p, entry);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "metadata 'nabla.writer' says nabla wrote the file, but it has "
                     "no checksum (nabla.file_crc32)");
    /* nabla's keys of a checkpoint or a model say so too */
    write_st(p, "{\"__metadata__\":{\"nabla.model\":\"{}\"}}", NULL, 0);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "metadata 'nabla.model' says nabla wrote the file");
    /* other writers' files have no checksum and open */
    write_st(p, "{\"__metadata__\":{\"format\":\"pt\"},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd", 4);
    st = nb_safetensors_open(p);
    CHECK(st != NULL);
    nb_safetensors_close(st);
    nb_scope_end();
}

/* Files of earlier nabla versions carry "nabla.crc32", the CRC-32 of the data alone: they still
 * open, and their data is still checked. */
static void older_nabla_files_with_a_data_checksum_open(void) {
    const char *p = tpath("old.safetensors");
    char h[256];
    unsigned long crc = crc32(crc32(0, Z_NULL, 0), (const Bytef *)"abcd", 4);
    snprintf(h, sizeof h, "{\"__metadata__\":{\"nabla.crc32\":\"%08lx\",\"nabla.model\":\"{}\"},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", crc);
    write_st(p, h, "abcd", 4);
    nb_safetensors *st = nb_safetensors_open(p);
    CHECK(st != NULL && nb_safetensors_count(st) == 1);
    nb_safetensors_close(st);
    write_st(p, h, "abce", 4);
    CHECK_OPEN_FAILS(p, NB_ERR_IO, "checksum mismatch: the data buffer (4 bytes)");
}

/* ---------------------------------------------------------------- interrupted writers */

/* True when the folder of the tests takes unnamed temporary files (O_TMPFILE). */
static bool tmpfile_supported(void) {
#ifdef O_TMPFILE
    int fd = open(tmpdir, O_TMPFILE | O_WRONLY, 0600);
    if (fd >= 0) close(fd);
    return fd >= 0;
#else
    return false;
#endif
}

/* A child killed by SIGXFSZ in the middle of a save (the default action of a write past the
 * file-size limit) leaves the old file, and no temporary once the next save has run. */
static void a_killed_writer_leaves_the_old_file_and_no_temporary(void) {
    nb_scope_begin();
    const char *path = tpath("killed.safetensors");
    nb_tensor *small = nb_arange(0, 4, 1), *big = nb_zeros(NB_SHAPE(256, 1024));
    const char *one[] = {"t"};
    CHECK_EQ_INT(nb_safetensors_save(path, 1, one, &small, NULL, NULL, 0), NB_OK);
    size_t n;
    unsigned char *before = read_all(path, &n);
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        struct rlimit lim;
        getrlimit(RLIMIT_FSIZE, &lim);
        lim.rlim_cur = 64 * 1024;
        setrlimit(RLIMIT_FSIZE, &lim);
        nb_safetensors_save(path, 1, one, &big, NULL, NULL, 0);
        _exit(0); /* not reached: SIGXFSZ kills it */
    }
    int status = 0;
    CHECK(child > 0 && waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ);
    CHECK(same_file(path, before, n));
    if (tmpfile_supported()) CHECK_EQ_INT(count_temporaries(), 0); /* the kernel freed it */
    CHECK_EQ_INT(nb_safetensors_save(path, 1, one, &small, NULL, NULL, 0), NB_OK);
    CHECK_EQ_INT(count_temporaries(), 0);
    free(before);
    nb_scope_end();
}

static void saves_remove_stale_temporaries_of_dead_writers_only(void) {
    nb_scope_begin();
    pid_t dead = fork(); /* a pid that existed and is gone */
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    char stale[64], alive[64], other[64], foreign[64];
    snprintf(stale, sizeof stale, "w.safetensors.tmp.%ld-3", (long)dead);
    snprintf(alive, sizeof alive, "w.safetensors.tmp.%ld-0", (long)getppid());
    snprintf(other, sizeof other, "x.safetensors.tmp.%ld-3", (long)dead);
    snprintf(foreign, sizeof foreign, "w.safetensors.tmp.notes");
    const char *names[] = {stale, alive, other, foreign};
    for (int i = 0; i < 4; i++) write_text(tpath(names[i]), "leftover");
    /* earlier versions' names carry no pid: removed once an hour old, kept while fresh */
    const char *old_mkstemp = "w.safetensors.tmp.Ab3xYz", *old_curves = "w.safetensors.tmp";
    const char *fresh = "w.safetensors.tmp.Qr7sTu";
    const char *legacy[] = {old_mkstemp, old_curves, fresh};
    for (int i = 0; i < 3; i++) write_text(tpath(legacy[i]), "leftover");
    time_t then = time(NULL) - 7200;
    struct timespec two_hours_ago[2] = {{.tv_sec = then}, {.tv_sec = then}};
    utimensat(AT_FDCWD, tpath(old_mkstemp), two_hours_ago, 0);
    utimensat(AT_FDCWD, tpath(old_curves), two_hours_ago, 0);
    nb_tensor *t = nb_arange(0, 4, 1);
    CHECK_EQ_INT(nb_safetensors_save(tpath("w.safetensors"), 1, (const char *[]){"t"}, &t, NULL,
                                     NULL, 0), NB_OK);
    CHECK(access(tpath(stale), F_OK) != 0);  /* its writer is dead: removed */
    CHECK(access(tpath(alive), F_OK) == 0);  /* its writer runs: kept */
    CHECK(access(tpath(other), F_OK) == 0);  /* another target's: kept */
    CHECK(access(tpath(foreign), F_OK) == 0); /* not a name nabla makes: kept */
    CHECK(access(tpath(old_mkstemp), F_OK) != 0);
    CHECK(access(tpath(old_curves), F_OK) != 0);
    CHECK(access(tpath(fresh), F_OK) == 0);
    for (int i = 1; i < 4; i++) remove(tpath(names[i]));
    remove(tpath(fresh));
    CHECK_EQ_INT(count_temporaries(), 0);
    nb_scope_end();
}

/* ---------------------------------------------------------------- sparse weights files */

static long long size_of(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* A Linear(256, 128) whose weight keeps one element in `keep` (the rest 0). */
static nb_module *pruned_linear(int keep, uint64_t seed) {
    nb_manual_seed(seed);
    nb_module *m = nb_linear_new(256, 128, true);
    static float w[256 * 128];
    nb_tensor *weight = nb_module_param(m, 0, NULL);
    nb_copy_to(weight, w, 256 * 128);
    for (int64_t i = 0; i < 256 * 128; i++)
        if (i % keep) w[i] = 0.0f;
    nb_copy_from(weight, w, 256 * 128);
    return m;
}

static void sparse_save_shrinks_with_sparsity_and_loads_back_exactly(void) {
    nb_module *m = pruned_linear(10, 1), *back = pruned_linear(1, 2); /* 90% zeros; another model */
    char dense[512], sparse[512];
    snprintf(dense, sizeof dense, "%s", tpath("dense.safetensors"));
    snprintf(sparse, sizeof sparse, "%s", tpath("sparse.safetensors"));
    const char *key[] = {"nabla.model"}, *value[] = {"{}"};
    CHECK(nb_module_save(m, dense, 1, key, value) == NB_OK);
    CHECK(nb_module_save_sparse(m, sparse, 1, key, value) == NB_OK);
    /* 32768 weights: 4096 mask bytes + 3277 values * 4 against 131072 bytes */
    CHECK(size_of(sparse) > 0 && size_of(sparse) < 0.15 * size_of(dense));
    nb_scope_begin();
    nb_safetensors *st = nb_safetensors_open(sparse);
    CHECK(st && nb_safetensors_count(st) == 3); /* the weight's two parts and the dense bias */
    nb_tensor *mask = st ? nb_safetensors_get(st, "weight.__sparse_mask") : NULL;
    nb_tensor *values = st ? nb_safetensors_get(st, "weight.__sparse_values") : NULL;
    CHECK(mask && nb_dtype_of(mask) == NB_U8 && nb_numel(mask) == 4096);
    CHECK(values && nb_numel(values) == 3277);
    CHECK(st && nb_safetensors_get(st, "bias") != NULL);
    CHECK_STR_CONTAINS(st ? nb_safetensors_meta(st, "nabla.sparse") : "", "{\"weight\":[128,256]}");
    CHECK_STR_CONTAINS(st ? nb_safetensors_meta(st, "nabla.model") : "", "{}");
    nb_safetensors_close(st);
    nb_scope_end();
    CHECK(nb_module_load(back, sparse) == NB_OK);
    for (int i = 0; i < 2; i++) CHECK(same_tensor(nb_module_param(m, i, NULL), nb_module_param(back, i, NULL)));
    nb_module_free(m);
    nb_module_free(back);
    /* at half zeros or less the weight stays dense: the sparse form would not be smaller enough */
    m = pruned_linear(2, 3);
    CHECK(nb_module_save_sparse(m, sparse, 0, NULL, NULL) == NB_OK);
    st = nb_safetensors_open(sparse);
    CHECK(st && nb_safetensors_count(st) == 2);
    CHECK_STR_CONTAINS(st ? nb_safetensors_meta(st, "nabla.sparse") : "", "{}");
    nb_safetensors_close(st);
    nb_module_free(m);
}

static void sparse_parts_that_do_not_fit_are_refused_and_load_nothing(void) {
    nb_module *m = pruned_linear(1, 4);
    nb_tensor *before = nb_persist(nb_module_param(m, 0, NULL));
    static uint8_t ones[4096];
    memset(ones, 0xff, sizeof ones); /* marks every element, but 5 values */
    nb_tensor *mask = nb_from_bytes(NB_U8, ones, 1, (const int64_t[]){4096}), *values = nb_zeros(1, (const int64_t[]){5});
    nb_tensor *bias = nb_zeros(1, (const int64_t[]){128});
    const char *names[] = {"weight.__sparse_mask", "weight.__sparse_values", "bias"};
    const char *key[] = {"nabla.sparse"}, *value[] = {"{\"weight\":[128,256]}"};
    CHECK(nb_safetensors_save(tpath("bad.safetensors"), 3, names, (nb_tensor *[]){mask, values, bias}, key, value,
                              1) == NB_OK);
    CHECK(nb_module_load(m, tpath("bad.safetensors")) == NB_ERR_IO);
    CHECK_STR_CONTAINS(nb_error_message(), "the sparse mask of 'weight' marks 32768 elements but 5 values are stored");
    CHECK(same_tensor(nb_module_param(m, 0, NULL), before));
    /* a part missing */
    CHECK(nb_safetensors_save(tpath("bad.safetensors"), 2, (const char *[]){"weight.__sparse_mask", "bias"},
                              (nb_tensor *[]){mask, bias}, key, value, 1) == NB_OK);
    CHECK(nb_module_load(m, tpath("bad.safetensors")) == NB_ERR_IO);
    CHECK_STR_CONTAINS(nb_error_message(), "has no tensor 'weight.__sparse_values'");
    CHECK(same_tensor(nb_module_param(m, 0, NULL), before));
    nb_tensor_free(before);
    nb_tensor_free(mask);
    nb_tensor_free(values);
    nb_tensor_free(bias);
    nb_module_free(m);
}

int main(void) {
    umask(022);
    if (!tmpdir_make("nabla_test_io")) return 1;
    nb_release_memory();
    size_t live = nb_alloc_stats_get().bytes_live;

    round_trip_keeps_every_dtype_shape_and_view();
    sparse_save_shrinks_with_sparsity_and_loads_back_exactly();
    sparse_parts_that_do_not_fit_are_refused_and_load_nothing();
    empty_files_and_empty_tensors_round_trip();
    torch_written_file_reads_exactly();
    load_into_checks_dtype_and_shape_and_fills_views();
    int64_converts_to_int32_with_range_check();
    other_dtypes_validate_but_are_refused_on_read();
    malformed_headers_are_refused();
    malformed_data_layouts_are_refused();
    corrupted_and_truncated_nabla_files_are_refused();
    failed_saves_leave_the_old_file_and_no_temporary();
    every_one_byte_edit_of_a_nabla_file_is_refused();
    a_nabla_file_without_its_checksum_is_refused();
    older_nabla_files_with_a_data_checksum_open();
    a_killed_writer_leaves_the_old_file_and_no_temporary();
    saves_remove_stale_temporaries_of_dead_writers_only();

    nb_release_memory();
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, live); /* every handle and buffer returned */
    tmpdir_remove();
    return check_summary();
}
