/*
 * test_dtypes.c — the dtypes: every conversion between every pair bit for bit against
 * tests/golden/dtypes.json (torch 1.13 for float16/bfloat16/ints, the OCP OFP8 spec for fp8;
 * tools/gen_golden_dtypes.py), round trips, element access, printing as torch prints,
 * non-finite detection, moving ops, and safetensors files of every dtype.
 */
#include "check.h"
#include "golden_json.h"
#include "tmpdir.h"

#include "core/core.h"

#include <stdint.h>
#include <zlib.h>

#define GOLDEN "tests/golden/dtypes.json"

static const nb_dtype all_dtypes[] = {NB_F32, NB_F16,  NB_BF16,    NB_I8,     NB_I32,
                                      NB_U8,  NB_I16, NB_F8_E4M3, NB_F8_E5M2};
enum { N_DTYPES = (int)(sizeof all_dtypes / sizeof all_dtypes[0]) };
_Static_assert((int)N_DTYPES == (int)NB_DTYPE_COUNT, "the test covers every dtype");

/* ---------------------------------------------------------------- reading the golden file */

static int b64_digit(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* base64 text -> bytes (malloc'd), *n their count. */
static unsigned char *b64_decode(const char *s, size_t *n) {
    size_t len = strlen(s);
    unsigned char *out = malloc(len / 4 * 3 + 3);
    uint32_t acc = 0;
    int bits = 0;
    *n = 0;
    for (size_t i = 0; i < len; i++) {
        int d = b64_digit(s[i]);
        if (d < 0) continue; /* '=' padding */
        acc = acc << 6 | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[(*n)++] = (unsigned char)(acc >> bits);
        }
    }
    return out;
}

/* An array of count elements of es bytes as the generator's pack wrote it: base64 of zlib of
 * little-endian deltas modulo 2^(8 es); the running sum restores the values. */
static void *unpack(const char *text, long count, size_t es) {
    size_t zn, want = (size_t)count * es;
    unsigned char *z = b64_decode(text, &zn);
    unsigned char *out = malloc(want ? want : 1);
    uLongf got = (uLongf)want;
    int rc = uncompress(out, &got, z, (uLong)zn);
    free(z);
    if (rc != Z_OK || got != want) {
        fprintf(stderr, "golden array: zlib %d, %lu of %zu bytes\n", rc, (unsigned long)got, want);
        free(out);
        return NULL;
    }
    uint32_t sum = 0;
    for (long i = 0; i < count; i++) { /* little-endian element i += element i - 1 */
        uint32_t d = 0;
        for (size_t b = 0; b < es; b++) d |= (uint32_t)out[(size_t)i * es + b] << (8 * b);
        sum += d;
        for (size_t b = 0; b < es; b++) out[(size_t)i * es + b] = (unsigned char)(sum >> (8 * b));
    }
    return out;
}

/* The golden sources of a dtype: every bit pattern of the 8- and 16-bit ones, in order; the
 * stored inputs of float32 and int32.  *n gets the count. */
static void *golden_source(const json_t *root, nb_dtype d, long *n) {
    size_t es = nb_dtype_size(d);
    if (d == NB_F32 || d == NB_I32) {
        const char *name = nb_dtype_name(d);
        *n = (long)json_integer_value(json_object_get(json_object_get(root, "input_counts"), name));
        const json_t *inputs = json_object_get(root, "inputs");
        return unpack(json_string_value(json_object_get(inputs, name)), *n, es);
    }
    *n = 1L << (8 * es);
    unsigned char *p = malloc((size_t)*n * es);
    for (long i = 0; i < *n; i++) {
        p[(size_t)i * es] = (unsigned char)i;
        if (es == 2) p[(size_t)i * es + 1] = (unsigned char)(i >> 8);
    }
    return p;
}

static uint32_t element_bits(const unsigned char *p, size_t es) {
    uint32_t v = 0;
    for (size_t b = 0; b < es; b++) v |= (uint32_t)p[b] << (8 * b);
    return v;
}

/* The first element where got and want differ, or -1. */
static long first_difference(const unsigned char *got, const unsigned char *want, long n, size_t es) {
    for (long i = 0; i < n; i++)
        if (memcmp(got + (size_t)i * es, want + (size_t)i * es, es)) return i;
    return -1;
}

/* t's bytes in logical order (malloc'd). */
static unsigned char *bytes_of(const nb_tensor *t) {
    size_t nbytes = (size_t)nb_numel(t) * nb_dtype_size(nb_dtype_of(t));
    unsigned char *b = malloc(nbytes ? nbytes : 1);
    CHECK_EQ_INT(nb_copy_to_bytes(t, b, nbytes), NB_OK);
    return b;
}

/* Converts src's golden sources to dst both ways (nb_to_dtype, and nb_copy into a strided
 * view of a bigger dst tensor) and compares with want, reporting the first difference. */
static void check_pair(nb_dtype src, nb_dtype dst, const void *in, long n, const unsigned char *want) {
    size_t ss = nb_dtype_size(src), ds = nb_dtype_size(dst);
    nb_scope_begin();
    nb_tensor *t = nb_from_bytes(src, in, NB_SHAPE(n));
    nb_tensor *c = nb_to_dtype(t, dst);
    nb_tensor *wide = nb_zeros_dtype(dst, NB_SHAPE(n, 2));
    /* [n] with stride 2: wide's odd elements (a view, so the copy goes through strides) */
    nb_tensor *row = nb_view(nb_slice(wide, 1, 1, 2, 1), NB_SHAPE(n));
    CHECK(c && row && nb_copy(row, t) == NB_OK);
    const char *how[] = {"to_dtype", "copy into a strided view"};
    nb_tensor *outs[] = {c, row};
    for (int k = 0; k < 2 && c && row; k++) {
        unsigned char *got = bytes_of(outs[k]);
        long i = first_difference(got, want, n, ds);
        if (i < 0) check_passed_++;
        else
            CHECK_FAIL_("%s -> %s (%s): element %ld of %ld: source 0x%x gives 0x%x, golden 0x%x",
                        nb_dtype_name(src), nb_dtype_name(dst), how[k], i, n,
                        element_bits((const unsigned char *)in + (size_t)i * ss, ss),
                        element_bits(got + (size_t)i * ds, ds),
                        element_bits(want + (size_t)i * ds, ds));
        free(got);
    }
    nb_scope_end();
}

/* ---------------------------------------------------------------- conversions */

static void every_conversion_matches_the_golden_bit_for_bit(void) {
    json_t *root = golden_load(GOLDEN);
    CHECK(root != NULL);
    if (!root) return;
    const json_t *conv = json_object_get(root, "convert");
    for (int a = 0; a < N_DTYPES; a++) {
        nb_dtype src = all_dtypes[a];
        long n;
        void *in = golden_source(root, src, &n);
        CHECK(in != NULL && n > 0);
        for (int b = 0; b < N_DTYPES && in; b++) {
            nb_dtype dst = all_dtypes[b];
            char key[64];
            snprintf(key, sizeof key, "%s>%s", nb_dtype_name(src), nb_dtype_name(dst));
            const char *text = json_string_value(json_object_get(conv, key));
            CHECK(src == dst || text != NULL); /* the identity is the source itself */
            unsigned char *want = src == dst ? in : text ? unpack(text, n, nb_dtype_size(dst)) : NULL;
            if (want) check_pair(src, dst, in, n, want);
            if (want != in) free(want);
        }
        free(in);
    }
    json_decref(root);
}

/* Every non-NaN pattern of a format comes back from float32 as itself; NaNs stay NaNs. */
static void every_value_round_trips_through_float32(void) {
    const nb_dtype narrow[] = {NB_F16, NB_BF16, NB_F8_E4M3, NB_F8_E5M2, NB_I8, NB_U8, NB_I16};
    for (size_t k = 0; k < sizeof narrow / sizeof narrow[0]; k++) {
        nb_dtype d = narrow[k];
        size_t es = nb_dtype_size(d);
        long n = 1L << (8 * es);
        nb_scope_begin();
        unsigned char *in = malloc((size_t)n * es);
        for (long i = 0; i < n; i++) {
            in[(size_t)i * es] = (unsigned char)i;
            if (es == 2) in[(size_t)i * es + 1] = (unsigned char)(i >> 8);
        }
        nb_tensor *f = nb_to_dtype(nb_from_bytes(d, in, NB_SHAPE(n)), NB_F32);
        nb_tensor *back_t = nb_to_dtype(f, d);
        unsigned char *back = bytes_of(back_t);
        float *v = malloc(sizeof(float) * (size_t)n), *v2 = malloc(sizeof(float) * (size_t)n);
        CHECK_EQ_INT(nb_copy_to(f, v, n), NB_OK);
        CHECK_EQ_INT(nb_copy_to(back_t, v2, n), NB_OK);
        long bad = -1;
        for (long i = 0; i < n && bad < 0; i++) {
            bool same = !memcmp(back + (size_t)i * es, in + (size_t)i * es, es);
            if (isnan(v[i]) ? !isnan(v2[i]) : !same) bad = i;
        }
        if (bad < 0) check_passed_++;
        else CHECK_FAIL_("%s: pattern 0x%lx does not survive float32 (%g)", nb_dtype_name(d), bad,
                         v[bad]);
        free(in);
        free(back);
        free(v);
        free(v2);
        nb_scope_end();
    }
}

/* The defining values of each format, through nb_full_dtype / nb_get / nb_set / nb_item. */
static void formats_hold_their_defining_values(void) {
    nb_scope_begin();
    struct { nb_dtype d; float in, out; } cases[] = {
        {NB_F8_E4M3, 448, 448},        {NB_F8_E4M3, 464, 448},     /* the tie goes to even */
        {NB_F8_E4M3, 0.001953125f, 0.001953125f},                   /* 2^-9, smallest subnormal */
        {NB_F8_E4M3, 0.0009765625f, 0},                            /* half of it: tie to 0 */
        {NB_F8_E5M2, 57344, 57344},    {NB_F8_E5M2, 61440, INFINITY}, {NB_F8_E5M2, -1e6f, -INFINITY},
        {NB_F8_E5M2, 1.52587890625e-05f, 1.52587890625e-05f},      /* 2^-16 */
        {NB_F16, 65519, 65504},        {NB_F16, 65520, INFINITY},
        {NB_F16, 5.9604645e-08f, 5.9604645e-08f},                   /* 2^-24 */
        {NB_BF16, 1.00390625f, 1},     {NB_BF16, 1.01171875f, 1.015625f},
        {NB_I8, 2.5f, 2},              {NB_I8, 3.5f, 4},           {NB_I8, -300, -128},
        {NB_U8, -1, 0},                {NB_U8, 255.5f, 255},       {NB_I16, 40000, 32767},
        {NB_I32, -1e10f, -2147483648.0f}, {NB_I16, NAN, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nb_tensor *t = nb_full_dtype(cases[i].d, NB_SHAPE(2), cases[i].in);
        CHECK(t && nb_dtype_of(t) == cases[i].d);
        if (nb_get(t, NB_INDEX(1)) != cases[i].out)
            CHECK_FAIL_("%s of %g holds %g, not %g", nb_dtype_name(cases[i].d), cases[i].in,
                        nb_get(t, NB_INDEX(1)), cases[i].out);
        else check_passed_++;
        CHECK_EQ_INT(nb_set(t, NB_INDEX(0), cases[i].in), NB_OK);
        CHECK(nb_get(t, NB_INDEX(0)) == cases[i].out);
    }
    nb_tensor *e4 = nb_full_dtype(NB_F8_E4M3, NB_SHAPE(1), 480);
    nb_tensor *inf = nb_full_dtype(NB_F8_E4M3, NB_SHAPE(1), INFINITY);
    CHECK(isnan(nb_item(e4)) && isnan(nb_item(inf))); /* no infinity: overflow is NaN */
    nb_tensor *q = nb_zeros_dtype(NB_F8_E5M2, NB_SHAPE(2, 2)), *qt = nb_transpose(q, 0, 1);
    CHECK_EQ_INT(nb_copy_from(qt, (float[]){1, 2.6f, -3, 70000}, 4), NB_OK); /* through strides */
    float qv[4];
    CHECK_EQ_INT(nb_copy_to(q, qv, 4), NB_OK);
    CHECK(qv[0] == 1 && qv[1] == -3 && qv[2] == 2.5f && qv[3] == INFINITY);
    nb_tensor *z = nb_zeros_dtype(NB_I16, NB_SHAPE(3));
    CHECK(z && nb_get(z, NB_INDEX(2)) == 0);
    CHECK(nb_dtype_size(NB_I16) == 2 && nb_dtype_size(NB_F8_E5M2) == 1 && nb_dtype_size(NB_U8) == 1);
    CHECK(nb_zeros_dtype(NB_DTYPE_COUNT, NB_SHAPE(1)) == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "unknown dtype");
    CHECK(nb_from_bytes((nb_dtype)-1, "", NB_SHAPE(0)) == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "from_bytes: unknown dtype -1");
    unsigned char small[1];
    CHECK_EQ_INT(nb_copy_to_bytes(z, small, sizeof small), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "needs 6");
    CHECK(!nb_dtype_is_floating(NB_U8) && nb_dtype_is_floating(NB_F8_E4M3));
    nb_scope_end();
}

/* ---------------------------------------------------------------- printing */

static void check_repr(nb_tensor *t, const char *want) {
    char buf[512];
    nb_format(t, buf, sizeof buf);
    if (!strcmp(buf, want)) check_passed_++;
    else CHECK_FAIL_("repr:\n%s\nwant:\n%s", buf, want);
}

/* The strings are torch 1.13's repr of the same tensors; fp8 formats as torch >= 2.1 does,
 * through float32, with its dtype name. */
static void printing_matches_torch(void) {
    nb_scope_begin();
    float f16_vals[] = {1.5f, -2.25f, INFINITY, NAN, 0};
    check_repr(nb_to_dtype(nb_from_data(f16_vals, NB_SHAPE(5)), NB_F16),
               "tensor([ 1.5000, -2.2500,     inf,     nan,  0.0000], dtype=torch.float16)");
    check_repr(nb_to_dtype(nb_from_data((float[]){1, 2, 65504}, NB_SHAPE(3)), NB_BF16),
               "tensor([1.0000e+00, 2.0000e+00, 6.5536e+04], dtype=torch.bfloat16)");
    check_repr(nb_to_dtype(nb_from_data((float[]){-128, 0, 127}, NB_SHAPE(3)), NB_I8),
               "tensor([-128,    0,  127], dtype=torch.int8)");
    check_repr(nb_to_dtype(nb_from_data((float[]){0, 7, 255}, NB_SHAPE(3)), NB_U8),
               "tensor([  0,   7, 255], dtype=torch.uint8)");
    check_repr(nb_to_dtype(nb_from_data((float[]){-32768, 5, 1, 32767}, NB_SHAPE(2, 2)), NB_I16),
               "tensor([[-32768,      5],\n        [     1,  32767]], dtype=torch.int16)");
    check_repr(nb_from_int32((int32_t[]){2147483647, -2147483647 - 1}, NB_SHAPE(2)),
               "tensor([ 2147483647, -2147483648], dtype=torch.int32)");
    check_repr(nb_zeros_dtype(NB_U8, NB_SHAPE(0, 3)), "tensor([], size=(0, 3), dtype=torch.uint8)");
    check_repr(nb_full_dtype(NB_I16, 0, NULL, 3), "tensor(3, dtype=torch.int16)");
    check_repr(nb_to_dtype(nb_from_data((float[]){0.5f, 448, 0.001953125f}, NB_SHAPE(3)), NB_F8_E4M3),
               "tensor([5.0000e-01, 4.4800e+02, 1.9531e-03], dtype=torch.float8_e4m3fn)");
    check_repr(nb_to_dtype(nb_from_data((float[]){1, -2, 1e6f}, NB_SHAPE(3)), NB_F8_E5M2),
               "tensor([ 1., -2., inf], dtype=torch.float8_e5m2)");
    nb_scope_end();
}

/* ---------------------------------------------------------------- ops on the new dtypes */

static void non_finite_detection_reads_each_format(void) {
    nb_scope_begin();
    struct { nb_dtype d; unsigned char bytes[4]; long at; } cases[] = {
        {NB_F8_E4M3, {0x7e, 0xfe, 0xff, 0x7f}, 2},  /* +-448 are finite; S.1111.111 is NaN */
        {NB_F8_E5M2, {0x7b, 0xfc, 0x7f, 0x00}, 1},  /* -Inf */
        {NB_F8_E5M2, {0x7b, 0xfb, 0x01, 0x00}, -1},
        {NB_I8, {0x7f, 0xff, 0x80, 0x00}, -1},      /* integers are always finite */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nb_tensor *t = nb_from_bytes(cases[i].d, cases[i].bytes, NB_SHAPE(4));
        double v = 0;
        CHECK_EQ_INT(nb__first_non_finite(t, &v), cases[i].at);
        if (cases[i].at >= 0) CHECK(cases[i].d == NB_F8_E4M3 ? isnan(v) : v == -INFINITY);
    }
    nb_scope_end();
}

/* Views, copies and concatenation move any dtype; arithmetic stays float32's. */
static void moving_ops_take_every_dtype_and_arithmetic_refuses_them(void) {
    for (int k = 0; k < N_DTYPES; k++) {
        nb_scope_begin();
        nb_dtype d = all_dtypes[k];
        nb_tensor *t = nb_to_dtype(nb_arange(0, 6, 1), d);
        nb_tensor *parts[] = {nb_transpose(nb_reshape(t, NB_SHAPE(2, 3)), 0, 1),
                              nb_full_dtype(d, NB_SHAPE(3, 1), 7)};
        nb_tensor *cat = nb_contiguous(nb_concat(2, parts, 1)); /* [[0,3,7],[1,4,7],[2,5,7]] */
        CHECK(cat && nb_dtype_of(cat) == d);
        float got[9], want[9] = {0, 3, 7, 1, 4, 7, 2, 5, 7};
        CHECK_EQ_INT(nb_copy_to(cat, got, 9), NB_OK);
        CHECK(!memcmp(got, want, sizeof got));
        if (d != NB_F32) {
            CHECK(nb_add(t, t) == NULL);
            CHECK_ERROR(NB_ERR_DTYPE, nb_dtype_name(d));
        }
        nb_scope_end();
    }
}

/* ---------------------------------------------------------------- safetensors */

static void safetensors_round_trip_every_dtype_bit_for_bit(void) {
    nb_scope_begin();
    const char *names[N_DTYPES];
    nb_tensor *ts[N_DTYPES];
    unsigned char pattern[1024];
    for (int i = 0; i < (int)sizeof pattern; i++) pattern[i] = (unsigned char)(i * 37 + i / 256);
    for (int k = 0; k < N_DTYPES; k++) {
        names[k] = nb_dtype_name(all_dtypes[k]);
        int64_t per_row = (int64_t)(256 / nb_dtype_size(all_dtypes[k])); /* 512 bytes each */
        ts[k] = nb_from_bytes(all_dtypes[k], pattern, NB_SHAPE(2, per_row));
    }
    const char *path = tpath("dtypes.safetensors");
    CHECK_EQ_INT(nb_safetensors_save(path, N_DTYPES, names, ts, NULL, NULL, 0), NB_OK);
    size_t n;
    char *file = (char *)read_all(path, &n);
    const char *st_names[] = {"\"F32\"", "\"F16\"", "\"BF16\"", "\"I8\"", "\"I32\"", "\"U8\"",
                              "\"I16\"", "\"F8_E4M3\"", "\"F8_E5M2\""};
    for (int k = 0; k < N_DTYPES && file; k++)
        CHECK(memmem(file, n, st_names[k], strlen(st_names[k])) != NULL);
    free(file);
    nb_safetensors *st = nb_safetensors_open(path);
    CHECK(st != NULL);
    for (int k = 0; k < N_DTYPES && st; k++) {
        nb_tensor *t = nb_safetensors_get(st, names[k]);
        CHECK(t && nb_dtype_of(t) == all_dtypes[k] && nb_numel(t) == nb_numel(ts[k]));
        unsigned char *b = t ? bytes_of(t) : NULL;
        CHECK(b && !memcmp(b, pattern, 512));
        free(b);
        nb_tensor *into = nb_zeros_dtype(all_dtypes[k], 2, nb_shape(ts[k]));
        CHECK_EQ_INT(nb_safetensors_load_into(st, names[k], into), NB_OK);
        b = bytes_of(into);
        CHECK(!memcmp(b, pattern, 512));
        free(b);
    }
    nb_safetensors_close(st);
    nb_scope_end();
}

static void write_file(const char *path, const char *header, const void *data, size_t n) {
    uint64_t hn = strlen(header);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fwrite(&hn, 8, 1, f);
    fwrite(header, 1, hn, f);
    fwrite(data, 1, n, f);
    fclose(f);
}

/* A dtype safetensors does not define refuses the whole file, naming the tensor and the
 * dtype; so does one nabla does not hold, or one the model's tensor is not: a model loads
 * nothing from such a file. */
static void a_file_with_an_unknown_dtype_is_refused_by_name(void) {
    const char *path = tpath("q4.safetensors");
    const float w[2] = {0.5f, -1.5f};
    unsigned char data[10] = {0}; /* w, then a tensor of 1 or 2 bytes */
    memcpy(data, w, 8);
    write_file(path, "{\"weight\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
                     "\"bias\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[8,9]}}", data, 9);
    CHECK(nb_safetensors_open(path) == NULL);
    CHECK_ERROR(NB_ERR_IO, "tensor 'bias': unknown dtype 'Q4'");

    nb_module *m = nb_linear_new(2, 1, true);
    float before[3];
    CHECK_EQ_INT(nb_copy_to(nb_module_param(m, 0, NULL), before, 2), NB_OK);
    CHECK_EQ_INT(nb_copy_to(nb_module_param(m, 1, NULL), before + 2, 1), NB_OK);
    CHECK(nb_module_load(m, path) != NB_OK);
    CHECK_ERROR(NB_ERR_IO, "tensor 'bias': unknown dtype 'Q4'");
    const char *headers[][2] = {
        {"{\"weight\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
         "\"bias\":{\"dtype\":\"U16\",\"shape\":[1],\"data_offsets\":[8,10]}}", "tensor 'bias' is U16"},
        {"{\"weight\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]},"
         "\"bias\":{\"dtype\":\"F8_E5M2\",\"shape\":[1],\"data_offsets\":[8,9]}}",
         "tensor 'bias' is float8_e5m2, expected float32"},
    };
    for (int k = 0; k < 2; k++) {
        write_file(path, headers[k][0], data, k ? 9 : 10);
        nb_status s = nb_module_load(m, path);
        CHECK(s == NB_ERR_DTYPE || s == NB_ERR_IO);
        CHECK_STR_CONTAINS(nb_error_message(), headers[k][1]);
        nb_error_clear();
    }
    float after[3];
    CHECK_EQ_INT(nb_copy_to(nb_module_param(m, 0, NULL), after, 2), NB_OK);
    CHECK_EQ_INT(nb_copy_to(nb_module_param(m, 1, NULL), after + 2, 1), NB_OK);
    CHECK(!memcmp(before, after, sizeof before)); /* nothing was loaded */
    nb_module_free(m);
}

int main(void) {
    if (!tmpdir_make("nabla_test_dtypes")) return 1;
    nb_release_memory();
    size_t live = nb_alloc_stats_get().bytes_live;

    every_conversion_matches_the_golden_bit_for_bit();
    every_value_round_trips_through_float32();
    formats_hold_their_defining_values();
    printing_matches_torch();
    non_finite_detection_reads_each_format();
    moving_ops_take_every_dtype_and_arithmetic_refuses_them();
    safetensors_round_trip_every_dtype_bit_for_bit();
    a_file_with_an_unknown_dtype_is_refused_by_name();

    nb_release_memory();
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, live);
    tmpdir_remove();
    return check_summary();
}
