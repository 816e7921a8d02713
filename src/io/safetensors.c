/*
 * safetensors.c — reading and writing the safetensors format (layout in nabla/io.h).
 *
 * Reading trusts nothing: the whole file is loaded, then the header length, the JSON, each
 * entry's dtype, shape and offsets, the tiling of the data buffer and the checksum are checked
 * before a handle is returned; get and load_into only copy afterwards.  Holding a private copy
 * (rather than mapping the file) means a file changed on disk after validation cannot change
 * what was validated.  Byte offsets in messages are absolute offsets in the file.
 *
 * Writing goes through atomic.c (the file is replaced whole or not at all).  The checksum,
 * nabla.file_crc32, opens the header as "00000000" and covers the whole file: it is computed
 * while the data streams out and its digits are patched in last, so each tensor is read once.
 */
#include "io.h"
#include "../backend/backend.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian and is copied as is: a little-endian host is required"
#endif

#define ST_MAX_HEADER 100000000ull /* the reference implementation's limit on N (100 MB) */
#define ST_FILE_CRC_KEY "nabla.file_crc32" /* CRC-32 of the whole file */
#define ST_CRC_KEY "nabla.crc32"           /* older files: CRC-32 of the data buffer alone */
#define ST_WRITER_KEY "nabla.writer"
#define ST_WRITER "nabla " NB_VERSION
/* How every file nabla writes begins, and the byte offset of the checksum's 8 digits. */
#define ST_CRC_PREFIX "{\"__metadata__\":{\"" ST_FILE_CRC_KEY "\":\""
#define ST_CRC_AT (8 + sizeof ST_CRC_PREFIX - 1)

/* Every safetensors dtype with a whole-byte element: its name, element size, and the nabla
 * dtype it reads as (-1: none, refused on read but accepted in validation). */
typedef struct {
    const char *name;
    size_t size;
    int nb;
} st_dtype;
static const st_dtype dtypes[] = {
    {"F32", 4, NB_F32},     {"F16", 2, NB_F16},     {"BF16", 2, NB_BF16},   {"I8", 1, NB_I8},
    {"I32", 4, NB_I32},     {"I64", 8, NB_I32},     {"F64", 8, -1},         {"U8", 1, NB_U8},
    {"BOOL", 1, -1},        {"I16", 2, NB_I16},     {"U16", 2, -1},         {"U32", 4, -1},
    {"U64", 8, -1},         {"F8_E4M3", 1, NB_F8_E4M3}, {"F8_E5M2", 1, NB_F8_E5M2},
    {"F8_E8M0", 1, -1},     {"C64", 8, -1},
};
enum { ST_I64 = 5, ST_NDTYPES = (int)(sizeof dtypes / sizeof dtypes[0]) };
/* The name each nabla dtype is written as (safetensors' F8_E4M3 is the fn variant: no Inf). */
static const char *const st_name_of[NB_DTYPE_COUNT] = {"F32", "F16", "BF16", "I8", "I32",
                                                       "U8", "I16", "F8_E4M3", "F8_E5M2"};

typedef struct {
    char *name;
    int dtype; /* index into dtypes */
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    uint64_t begin, end; /* in the data buffer */
    int pos;             /* place in the header: orders empty tensors that share an offset */
} st_entry;

struct nb_safetensors {
    char *label;            /* the path, for messages */
    unsigned char *file;    /* the whole file */
    size_t file_size;
    uint64_t data_start;    /* 8 + N */
    int n, cap;             /* entries, sorted by offset once validated */
    st_entry *entries;
    int n_meta, meta_cap;
    char **meta;            /* key0, value0, key1, value1, ... */
};

void nb_safetensors_close(nb_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) nb__strfree(st->entries[i].name);
    nb__dealloc(st->entries, sizeof(st_entry) * (size_t)st->cap);
    for (int i = 0; i < 2 * st->n_meta; i++) nb__strfree(st->meta[i]);
    nb__dealloc(st->meta, sizeof(char *) * 2 * (size_t)st->meta_cap);
    nb__dealloc(st->file, st->file_size);
    nb__strfree(st->label);
    nb__dealloc(st, sizeof *st);
}

/* ---------------------------------------------------------------- validation */

/* NB_ERR_IO for a malformed file: "safetensors: 'path': byte 1234: what". Returns false. */
__attribute__((format(printf, 3, 4))) static bool bad(const nb_safetensors *st, uint64_t at,
                                                      const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nb__fail(NB_ERR_IO, "safetensors: '%s': byte %llu: %s", st->label, (unsigned long long)at, msg);
    return false;
}

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

static bool parse_meta(nb_safetensors *st, json_t *m) {
    if (!json_is_object(m))
        return bad(st, 8, "__metadata__ is %s, not an object of strings", json_type_name(m));
    st->meta_cap = (int)json_object_size(m);
    st->meta = nb__alloc(sizeof(char *) * 2 * (size_t)st->meta_cap);
    if (!st->meta) return false;
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (!json_is_string(v))
            return bad(st, 8, "__metadata__ value of '%s' is %s, not a string", k,
                       json_type_name(v));
        char *key = nb__strdup(k), *val = key ? nb__strdup(json_string_value(v)) : NULL;
        if (!val) return nb__strfree(key), false;
        st->meta[2 * st->n_meta] = key;
        st->meta[2 * st->n_meta + 1] = val;
        st->n_meta++;
    }
    return true;
}

/* One tensor entry: known keys only, a known dtype, rank <= NB_MAX_DIMS, sizes >= 0, offsets an
 * ordered pair inside the data buffer spanning exactly dtype size x numel bytes. */
static bool parse_entry(nb_safetensors *st, const char *name, json_t *v, uint64_t dsize) {
    if (!json_is_object(v))
        return bad(st, 8, "'%s' is %s, neither a tensor entry (dtype, shape, data_offsets) nor "
                   "__metadata__", name, json_type_name(v));
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
            return bad(st, 8, "tensor '%s': unknown key '%s'", name, k);
    }
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape");
    json_t *off = json_object_get(v, "data_offsets");
    if (!dt || !sh || !off)
        return bad(st, 8, "tensor '%s': missing \"%s\"", name,
                   !dt ? "dtype" : !sh ? "shape" : "data_offsets");
    if (!json_is_string(dt))
        return bad(st, 8, "tensor '%s': dtype is %s", name, json_type_name(dt));

    st_entry e = {.dtype = -1};
    for (int i = 0; i < ST_NDTYPES; i++)
        if (!strcmp(json_string_value(dt), dtypes[i].name)) e.dtype = i;
    if (e.dtype < 0)
        return bad(st, 8, "tensor '%s': unknown dtype '%s'", name, json_string_value(dt));

    if (!json_is_array(sh)) return bad(st, 8, "tensor '%s': shape is %s", name, json_type_name(sh));
    if (json_array_size(sh) > NB_MAX_DIMS)
        return bad(st, 8, "tensor '%s': rank %zu exceeds %d", name, json_array_size(sh),
                   NB_MAX_DIMS);
    e.ndim = (int)json_array_size(sh);
    int64_t numel = 1;
    for (int i = 0; i < e.ndim; i++) {
        json_t *d = json_array_get(sh, (size_t)i);
        if (!json_is_integer(d))
            return bad(st, 8, "tensor '%s': shape[%d] is %s", name, i, json_type_name(d));
        json_int_t s = json_integer_value(d);
        if (s < 0) return bad(st, 8, "tensor '%s': shape[%d] is negative (%lld)", name, i, s);
        e.shape[i] = s;
        if (s && numel > INT64_MAX / s)
            return bad(st, 8, "tensor '%s': shape %s: element count overflows", name,
                       nb__shape_str(i + 1, e.shape));
        numel *= s;
    }
    const st_dtype *t = &dtypes[e.dtype];
    if (numel > INT64_MAX / (int64_t)t->size)
        return bad(st, 8, "tensor '%s': %s %s: byte size overflows", name, t->name,
                   nb__shape_str(e.ndim, e.shape));
    uint64_t nbytes = (uint64_t)numel * t->size;

    if (!json_is_array(off) || json_array_size(off) != 2 ||
        !json_is_integer(json_array_get(off, 0)) || !json_is_integer(json_array_get(off, 1)))
        return bad(st, 8, "tensor '%s': data_offsets is not a pair of integers [begin, end]", name);
    json_int_t b = json_integer_value(json_array_get(off, 0));
    json_int_t end = json_integer_value(json_array_get(off, 1));
    if (b < 0 || end < b)
        return bad(st, 8, "tensor '%s': data_offsets [%lld, %lld] are not 0 <= begin <= end", name,
                   b, end);
    e.begin = (uint64_t)b;
    e.end = (uint64_t)end;
    if (e.end > dsize)
        return bad(st, st->data_start + dsize,
                   "tensor '%s': data_offsets [%lld, %lld] run past the end of the data buffer, "
                   "which has %llu bytes (truncated file?)", name, b, end,
                   (unsigned long long)dsize);
    if (e.end - e.begin != nbytes)
        return bad(st, st->data_start + e.begin,
                   "tensor '%s': data_offsets [%lld, %lld] hold %llu bytes, but %s %s needs %llu",
                   name, b, end, (unsigned long long)(e.end - e.begin), t->name,
                   nb__shape_str(e.ndim, e.shape), (unsigned long long)nbytes);
    if (!(e.name = nb__strdup(name))) return false;
    e.pos = st->n;
    st->entries[st->n++] = e;
    return true;
}

static int by_offset(const void *pa, const void *pb) {
    const st_entry *a = pa, *b = pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return a->pos - b->pos;
}

/* Sorted by offset, the tensors must tile the data buffer: no gap, no overlap, nothing after. */
static bool check_tiling(nb_safetensors *st, uint64_t dsize) {
    qsort(st->entries, (size_t)st->n, sizeof(st_entry), by_offset);
    uint64_t expect = 0;
    for (int i = 0; i < st->n; i++) {
        const st_entry *e = &st->entries[i];
        if (e->begin < expect)
            return bad(st, st->data_start + e->begin,
                       "tensor '%s' [%llu, %llu) overlaps tensor '%s' [%llu, %llu)", e->name,
                       (unsigned long long)e->begin, (unsigned long long)e->end, e[-1].name,
                       (unsigned long long)e[-1].begin, (unsigned long long)e[-1].end);
        if (e->begin > expect)
            return bad(st, st->data_start + expect,
                       "data bytes [%llu, %llu) belong to no tensor (a gap before '%s')",
                       (unsigned long long)expect, (unsigned long long)e->begin, e->name);
        expect = e->end;
    }
    if (expect != dsize)
        return bad(st, st->data_start + expect, "%llu trailing bytes after the last tensor",
                   (unsigned long long)(dsize - expect));
    return true;
}

/* The 8 hex digits of metadata key as a number; false (the error set) when malformed. */
static bool parse_hex8(nb_safetensors *st, const char *key, const char *text, uint32_t *v) {
    bool hex = strlen(text) == 8;
    *v = 0;
    for (int i = 0; hex && i < 8; i++) {
        char c = text[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        hex = d >= 0;
        *v = *v << 4 | (uint32_t)(d & 15);
    }
    return hex || bad(st, 8, "metadata %s '%s' is not 8 hex digits", key, text);
}

/* nabla's files carry a checksum, which must match; any metadata key "nabla.*" says that nabla
 * wrote the file, so deleting the checksum does not turn checking off.  Files of other writers
 * (no such key) have none.  nabla.file_crc32 covers every byte of the file, its own 8 digits
 * read as '0's, and must open the header (where nabla puts it), so its place is known; the
 * nabla.crc32 of older nabla files covers the data buffer alone. */
static bool check_crc(nb_safetensors *st, uint64_t dsize) {
    const char *whole = nb_safetensors_meta(st, ST_FILE_CRC_KEY);
    const char *data = nb_safetensors_meta(st, ST_CRC_KEY);
    uint32_t want;
    if (whole) {
        if (!parse_hex8(st, ST_FILE_CRC_KEY, whole, &want)) return false;
        const size_t at = ST_CRC_AT;
        if (st->data_start < at + 8 || memcmp(st->file + 8, ST_CRC_PREFIX, at - 8))
            return bad(st, 8, "metadata " ST_FILE_CRC_KEY " does not open the header, where nabla "
                       "writes it");
        static const Bytef zeros[8] = "00000000";
        uLong crc = crc32_z(crc32_z(0, Z_NULL, 0), st->file, at);
        crc = crc32_z(crc32_z(crc, zeros, 8), st->file + at + 8, st->file_size - at - 8);
        if ((uint32_t)crc != want)
            return bad(st, 0, "checksum mismatch: the file (%zu bytes) has CRC-32 %08lx, its "
                       "header records %s", st->file_size, (unsigned long)crc, whole);
        return true;
    }
    if (data) {
        if (!parse_hex8(st, ST_CRC_KEY, data, &want)) return false;
        uint32_t got = (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), st->file + st->data_start, dsize);
        if (got != want)
            return bad(st, st->data_start,
                       "checksum mismatch: the data buffer (%llu bytes) has CRC-32 %08x, the "
                       "header records %s", (unsigned long long)dsize, got, data);
        return true;
    }
    for (int i = 0; i < st->n_meta; i++)
        if (!strncmp(st->meta[2 * i], "nabla.", 6))
            return bad(st, 8, "metadata '%s' says nabla wrote the file, but it has no checksum "
                       "(" ST_FILE_CRC_KEY ")", st->meta[2 * i]);
    return true;
}

static bool validate(nb_safetensors *st) {
    const unsigned char *b = st->file;
    size_t size = st->file_size;
    if (size < 8)
        return bad(st, 0, "the file has %zu bytes, fewer than the 8-byte header length", size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    if (hlen > size - 8)
        return bad(st, 0, "header length %llu runs past the end of the file (%zu bytes follow)",
                   (unsigned long long)hlen, size - 8);
    if (hlen > ST_MAX_HEADER)
        return bad(st, 0, "header length %llu exceeds the %llu-byte limit",
                   (unsigned long long)hlen, ST_MAX_HEADER);
    st->data_start = 8 + hlen;
    uint64_t dsize = size - st->data_start;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)b + 8, (size_t)hlen,
                              JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root)
        return bad(st, 8 + (uint64_t)(jerr.position > 0 ? jerr.position : 0),
                   "header is not valid JSON: %s", jerr.text);
    bool ok = true;
    if (!json_is_object(root)) ok = bad(st, 8, "header is %s, not an object", json_type_name(root));
    else if (b[8] != '{') ok = bad(st, 8, "header does not start with '{'");
    if (ok) {
        json_t *meta = json_object_get(root, "__metadata__");
        st->cap = (int)json_object_size(root) - (meta != NULL);
        ok = (st->entries = nb__alloc(sizeof(st_entry) * (size_t)st->cap)) != NULL;
        const char *k;
        json_t *v;
        json_object_foreach(root, k, v) {
            if (!ok) break;
            ok = v == meta ? parse_meta(st, v) : parse_entry(st, k, v, dsize);
        }
    }
    json_decref(root);
    return ok && check_tiling(st, dsize) && check_crc(st, dsize);
}

/* Takes ownership of buf. */
static nb_safetensors *parse(const char *label, unsigned char *buf, size_t size) {
    nb_safetensors *st = nb__alloc(sizeof *st);
    if (!st) {
        nb__dealloc(buf, size);
        return NULL;
    }
    *st = (nb_safetensors){.file = buf, .file_size = size};
    if (!(st->label = nb__strdup(label)) || !validate(st)) {
        nb_safetensors_close(st);
        return NULL;
    }
    return st;
}

nb_safetensors *nb__safetensors_from_memory(const char *label, const void *data, size_t size) {
    unsigned char *buf = nb__alloc(size);
    if (!buf) return NULL;
    if (size) memcpy(buf, data, size);
    return parse(label, buf, size);
}

nb_safetensors *nb_safetensors_open(const char *path) {
    if (!path) return nb__fail(NB_ERR_ARG, "safetensors_open: path is NULL");
    /* O_NONBLOCK: a FIFO at path must be refused below, not wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return nb__fail(NB_ERR_IO, "safetensors: '%s': cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return nb__fail(NB_ERR_IO, "safetensors: '%s': not a regular file", path);
    }
    size_t size = (size_t)sb.st_size, got = 0;
    unsigned char *buf = nb__alloc(size);
    if (!buf) {
        close(fd);
        return NULL;
    }
    int err = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            err = r < 0 ? errno : 0;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (got < size) {
        nb__dealloc(buf, size);
        return nb__fail(NB_ERR_IO, "safetensors: '%s': byte %zu: read failed: %s", path, got,
                        err ? strerror(err) : "the file shrank while being read");
    }
    return parse(path, buf, size);
}

/* ---------------------------------------------------------------- access */

/* A NULL handle, usually from a failed open: keep that failure's error, as ops do for NULL. */
static void *no_handle(const char *op) {
    if (nb_error_code() == NB_OK) nb__fail(NB_ERR_NULL, "%s: safetensors handle is NULL", op);
    return NULL;
}

int nb_safetensors_count(const nb_safetensors *st) { return st ? st->n : 0; }

const char *nb_safetensors_name(const nb_safetensors *st, int i) {
    if (!st) return no_handle("safetensors_name");
    if (i < 0 || i >= st->n)
        return nb__fail(NB_ERR_ARG, "safetensors: '%s': tensor index %d is outside 0..%d",
                        st->label, i, st->n - 1);
    return st->entries[i].name;
}

const char *nb_safetensors_meta(const nb_safetensors *st, const char *key) {
    if (!st) return no_handle("safetensors_meta");
    for (int i = 0; key && i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

static const st_entry *lookup(const nb_safetensors *st, const char *name, const char *op) {
    if (!st) return no_handle(op);
    if (!name) return nb__fail(NB_ERR_ARG, "%s: '%s': tensor name is NULL", op, st->label);
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->entries[i].name, name)) return &st->entries[i];
    return nb__fail(NB_ERR_ARG, "%s: '%s': no tensor named '%s'", op, st->label, name);
}

/* The nabla dtype e reads as, or -1 with NB_ERR_DTYPE. */
static int read_dtype(const nb_safetensors *st, const st_entry *e, const char *op) {
    int d = dtypes[e->dtype].nb;
    if (d < 0)
        nb__fail(NB_ERR_DTYPE, "%s: '%s': tensor '%s' is %s, which nabla does not hold (it reads "
                 "F32, F16, BF16, F8_E4M3, F8_E5M2, I8, U8, I16, I32, and I64 as int32)", op,
                 st->label, e->name, dtypes[e->dtype].name);
    return d;
}

/* Copies e's elements, as the dtype nabla reads them as, to the contiguous dst.  I64 values
 * outside int32 fail with NB_ERR_DTYPE (dst may then be partly written). */
static bool decode(const nb_safetensors *st, const st_entry *e, void *dst, const char *op) {
    const unsigned char *src = st->file + st->data_start + e->begin;
    size_t nbytes = (size_t)(e->end - e->begin);
    if (e->dtype != ST_I64) {
        if (nbytes) memcpy(dst, src, nbytes);
        return true;
    }
    int32_t *out = dst;
    for (size_t i = 0; i < nbytes / 8; i++) {
        int64_t v;
        memcpy(&v, src + 8 * i, 8);
        if (v < INT32_MIN || v > INT32_MAX)
            return nb__fail(NB_ERR_DTYPE, "%s: '%s': byte %llu: tensor '%s' (I64) element %zu is "
                            "%lld, outside int32's range", op, st->label,
                            (unsigned long long)(st->data_start + e->begin + 8 * i), e->name, i,
                            (long long)v), false;
        out[i] = (int32_t)v;
    }
    return true;
}

/* Decodes entry e into t (its shape and dtype, any layout): straight into the tensor's memory
 * when the backend's memory is the host's and t is contiguous, else aside first, so a failure
 * leaves t unchanged, then through the backend's copies. */
static nb_status decode_into(const nb_safetensors *st, const st_entry *e, nb_tensor *t, const char *op) {
    size_t es = nb__dtype_size(t->dtype);
    if (e->dtype != ST_I64 && nb_is_contiguous(t) && nb__backend(t->device)->host_memory)
        return decode(st, e, (char *)t->storage->data + t->offset * (int64_t)es, op) ? NB_OK
                                                                                     : nb_error_code();
    size_t nbytes = (size_t)nb__numel(e->ndim, e->shape) * es;
    void *tmp = nb__alloc(nbytes);
    if (!tmp) return NB_ERR_MEMORY;
    nb_status s = decode(st, e, tmp, op) ? nb__store_logical(t, tmp) : nb_error_code();
    nb__dealloc(tmp, nbytes);
    return s;
}

nb_tensor *nb_safetensors_get(const nb_safetensors *st, const char *name) {
    const char *op = "safetensors_get";
    const st_entry *e = lookup(st, name, op);
    if (!e) return NULL;
    int d = read_dtype(st, e, op);
    if (d < 0) return NULL;
    nb_tensor *t = nb__new((nb_dtype)d, e->ndim, e->shape);
    if (t && decode_into(st, e, t, op) != NB_OK) {
        nb_tensor_free(t);
        return NULL;
    }
    return t;
}

nb_status nb_safetensors_load_into(const nb_safetensors *st, const char *name, nb_tensor *dst) {
    const char *op = "safetensors_load_into";
    const st_entry *e = lookup(st, name, op);
    if (!e) return nb_error_code();
    if (!nb__alive(dst)) return nb__fail_input(op, dst), nb_error_code();
    if (dst->device != NB_CPU)
        return nb__fail_status(NB_ERR_DEVICE, "%s: '%s': tensor '%s': the destination is not on "
                               "the CPU", op, st->label, name);
    int d = read_dtype(st, e, op);
    if (d < 0) return NB_ERR_DTYPE;
    if ((nb_dtype)d != dst->dtype)
        return nb__fail_status(NB_ERR_DTYPE, "%s: '%s': tensor '%s' is %s in the file (read as "
                               "%s), the destination is %s", op, st->label, name,
                               dtypes[e->dtype].name, nb_dtype_name((nb_dtype)d),
                               nb_dtype_name(dst->dtype));
    if (e->ndim != dst->ndim || memcmp(e->shape, dst->shape, sizeof(int64_t) * (size_t)e->ndim))
        return nb__fail_status(NB_ERR_SHAPE, "%s: '%s': tensor '%s' is %s in the file, the "
                               "destination is %s", op, st->label, name,
                               nb__shape_str(e->ndim, e->shape), NB_SHP(dst));
    for (int k = 0; k < dst->ndim; k++)
        if (dst->shape[k] > 1 && dst->stride[k] == 0)
            return nb__fail_status(NB_ERR_ARG, "%s: '%s': tensor '%s': the destination is a "
                                   "broadcast view (stride 0 in dim %d)", op, st->label, name, k);
    return decode_into(st, e, dst, op);
}

/* ---------------------------------------------------------------- writing */

/* {"__metadata__": {"nabla.file_crc32": "00000000", "nabla.writer": ..., user pairs...},
 * "name": {...}, ...}, with the tensors' offsets laid out in the order given.  NULL with the
 * error set on a bad argument. */
static json_t *build_header(const char *op, const char *path, int n, const char *const *names,
                            nb_tensor *const *ts, const char *const *mk, const char *const *mv,
                            int n_meta) {
    json_t *root = json_object(), *meta = json_object();
    if (!root || !meta || json_object_set_new(meta, ST_FILE_CRC_KEY, json_string("00000000")) ||
        json_object_set_new(meta, ST_WRITER_KEY, json_string(ST_WRITER)) ||
        json_object_set_new(root, "__metadata__", meta)) {
        json_decref(root);
        return nb__fail(NB_ERR_MEMORY, "%s: '%s': out of memory building the header", op, path);
    }
    nb_status err = NB_OK;
    for (int i = 0; i < n_meta && !err; i++) {
        if (!mk[i] || !mv[i])
            err = nb__fail_status(NB_ERR_ARG, "%s: '%s': metadata %d has a NULL key or value", op,
                                  path, i);
        else if (!strcmp(mk[i], ST_FILE_CRC_KEY) || !strcmp(mk[i], ST_CRC_KEY) ||
                 !strcmp(mk[i], ST_WRITER_KEY))
            err = nb__fail_status(NB_ERR_ARG, "%s: '%s': metadata key '%s' is reserved for the "
                                  "checksum and nabla's mark", op, path, mk[i]);
        else if (json_object_get(meta, mk[i]))
            err = nb__fail_status(NB_ERR_ARG, "%s: '%s': metadata key '%s' is given twice", op,
                                  path, mk[i]);
        else if (json_object_set_new(meta, mk[i], json_string(mv[i])))
            err = nb__fail_status(NB_ERR_ARG, "%s: '%s': metadata '%s' is not valid UTF-8", op,
                                  path, mk[i]);
    }
    uint64_t off = 0;
    for (int i = 0; i < n && !err; i++) {
        const char *name = names[i];
        const nb_tensor *t = ts[i];
        if (!name || !*name || !strcmp(name, "__metadata__"))
            err = nb__fail_status(NB_ERR_ARG, "%s: '%s': tensor %d's name is %s", op, path, i,
                                  !name ? "NULL" : !*name ? "empty" : "the reserved __metadata__");
        else if (!t)
            err = nb__fail_status(NB_ERR_NULL, "%s: '%s': tensor '%s' is NULL", op, path, name);
        else if (!nb__alive(t))
            err = nb__fail_status(NB_ERR_SCOPE, "%s: '%s': tensor '%s' belongs to a scope that has "
                                  "ended", op, path, name);
        else if (t->device != NB_CPU)
            err = nb__fail_status(NB_ERR_DEVICE, "%s: '%s': tensor '%s' is not on the CPU", op,
                                  path, name);
        else if (json_object_get(root, name))
            err = nb__fail_status(NB_ERR_ARG, "%s: '%s': tensor name '%s' is given twice", op,
                                  path, name);
        if (err) break;
        uint64_t nbytes = (uint64_t)nb__numel(t->ndim, t->shape) * nb__dtype_size(t->dtype);
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        bool built = e && shape && offs;
        for (int k = 0; built && k < t->ndim; k++)
            built = !json_array_append_new(shape, json_integer(t->shape[k]));
        built = built && !json_array_append_new(offs, json_integer((json_int_t)off)) &&
                !json_array_append_new(offs, json_integer((json_int_t)(off + nbytes))) &&
                !json_object_set_new(e, "dtype", json_string(st_name_of[t->dtype])) &&
                !json_object_set(e, "shape", shape) && !json_object_set(e, "data_offsets", offs);
        json_decref(shape);
        json_decref(offs);
        if (!built) {
            json_decref(e);
            err = nb__fail_status(NB_ERR_MEMORY, "%s: '%s': out of memory building the header", op,
                                  path);
        } else if (json_object_set_new(root, name, e)) {
            err = nb__fail_status(NB_ERR_ARG, "%s: '%s': tensor name '%s' is not valid UTF-8", op,
                                  path, name);
        }
        off += nbytes;
    }
    if (err) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* The arguments' checks and the header, shared by save and check: NULL with the error set. */
static json_t *checked_header(const char *op, const char *path, int n, const char *const *names,
                              nb_tensor *const *tensors, const char *const *meta_keys,
                              const char *const *meta_values, int n_meta) {
    if (!path || !*path) return nb__fail(NB_ERR_ARG, "%s: path is NULL or empty", op);
    if (n < 0 || n_meta < 0 || (n > 0 && (!names || !tensors)) ||
        (n_meta > 0 && (!meta_keys || !meta_values)))
        return nb__fail(NB_ERR_ARG, "%s: '%s': bad counts or NULL arrays (n = %d, n_meta = %d)",
                        op, path, n, n_meta);
    return build_header(op, path, n, names, tensors, meta_keys, meta_values, n_meta);
}

/* Streams t's elements in logical order, folding them into *crc. */
static bool write_tensor(nb__afile *f, const nb_tensor *t, uLong *crc) {
    size_t es = nb__dtype_size(t->dtype), nbytes = (size_t)nb__numel(t->ndim, t->shape) * es;
    const char *src = (const char *)t->storage->data + t->offset * (int64_t)es;
    char *copy = NULL;
    if (!nb_is_contiguous(t) || !nb__backend(t->device)->host_memory) {
        if (!(copy = nb__alloc(nbytes)) || nb__copy_logical(copy, t) != NB_OK) {
            nb__dealloc(copy, nbytes);
            return nb__afile_fail(f, "preparing", ENOMEM);
        }
        src = copy;
    }
    *crc = crc32_z(*crc, (const Bytef *)src, nbytes);
    bool ok = nb__afile_write(f, src, nbytes);
    nb__dealloc(copy, nbytes);
    return ok;
}

nb_status nb_safetensors_save(const char *path, int n, const char *const *names,
                              nb_tensor *const *tensors, const char *const *meta_keys,
                              const char *const *meta_values, int n_meta) {
    const char *op = "safetensors_save";
    json_t *root = checked_header(op, path, n, names, tensors, meta_keys, meta_values, n_meta);
    if (!root) return nb_error_code();
    /* The header is padded with spaces so the data starts 8-byte aligned, as torch writes it. */
    size_t hlen = json_dumpb(root, NULL, 0, JSON_COMPACT);
    size_t padded = (hlen + 7) / 8 * 8, hsize = 8 + padded;
    char *hdr = hlen ? nb__alloc(hsize) : NULL;
    bool encoded = hdr && json_dumpb(root, hdr + 8, hlen, JSON_COMPACT) == hlen;
    json_decref(root);
    if (!encoded) {
        nb__dealloc(hdr, hsize);
        return nb__fail_status(NB_ERR_MEMORY, "%s: '%s': out of memory encoding the header", op,
                               path);
    }
    for (int i = 0; i < 8; i++) hdr[i] = (char)((uint64_t)padded >> (8 * i));
    memset(hdr + 8 + hlen, ' ', padded - hlen);
    /* jansson keeps insertion order: the checksum's placeholder opens the header */
    assert(hlen >= ST_CRC_AT - 8 + 8 && !memcmp(hdr + 8, ST_CRC_PREFIX, ST_CRC_AT - 8));

    nb__afile f;
    nb_status s = nb__afile_begin(&f, op, path);
    if (s == NB_OK) {
        /* The CRC runs over the whole file with the placeholder's zeros in place of its digits,
         * which are patched in last, so each tensor is read once. */
        uLong crc = crc32_z(crc32_z(0, Z_NULL, 0), (const Bytef *)hdr, hsize);
        bool ok = nb__afile_write(&f, hdr, hsize);
        for (int i = 0; i < n && ok; i++) ok = write_tensor(&f, tensors[i], &crc);
        char hex[9];
        snprintf(hex, sizeof hex, "%08lx", (unsigned long)crc);
        if (ok) nb__afile_pwrite(&f, hex, 8, ST_CRC_AT);
        s = nb__afile_commit(&f);
    }
    nb__dealloc(hdr, hsize);
    return s;
}

nb_status nb__safetensors_check(const char *path, int n, const char *const *names,
                                nb_tensor *const *tensors, const char *const *meta_keys,
                                const char *const *meta_values, int n_meta) {
    json_t *root = checked_header("safetensors_check", path, n, names, tensors, meta_keys,
                                  meta_values, n_meta);
    if (!root) return nb_error_code();
    json_decref(root);
    nb__afile f;
    nb_status s = nb__afile_begin(&f, "safetensors_check", path);
    if (s == NB_OK) nb__afile_cancel(&f);
    return s;
}
