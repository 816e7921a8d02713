/*
 * idx.c — IDX files, the format of MNIST: bytes 0 0 TYPE RANK, RANK big-endian uint32 sizes,
 * then the elements, big-endian, row-major.  Files are read through zlib's gz* interface, which
 * inflates gzip and passes plain files through.
 *
 * Trust nothing before it is checked: sizes are multiplied with overflow checks; a plain file's
 * declared size must equal its length before anything is allocated; a gzip file's length says
 * little about what it inflates to, so its data is read into a buffer that grows (at most
 * doubling) as bytes actually arrive, and a header that declares more than the stream holds fails
 * at the end of the stream.  Offsets in messages count bytes of the IDX content (inflated).
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_FIRST_CAP ((size_t)1 << 20) /* first buffer for gzip data, unless declared smaller */

static size_t type_size(int type) {
    switch (type) {
    case NB_IDX_U8: case NB_IDX_I8: return 1;
    case NB_IDX_I16: return 2;
    case NB_IDX_I32: case NB_IDX_F32: return 4;
    case NB_IDX_F64: return 8;
    default: return 0;
    }
}

/* IDX stores elements big-endian; convert in place to the host's order (an involution). */
static void to_host_order(void *data, int64_t n, size_t es) {
    const uint16_t one = 1;
    uint8_t low;
    memcpy(&low, &one, 1);
    if (es == 1 || low == 0) return; /* bytes, or a big-endian host */
    uint8_t *p = data;
    for (int64_t i = 0; i < n; i++, p += es)
        for (size_t a = 0, b = es - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* gzread until n bytes or the end of the stream; gzread takes an unsigned count, hence the
 * chunks.  *zerr gets zlib's error state afterwards (Z_OK, or why the stream stopped). */
static size_t read_full(gzFile f, void *buf, size_t n, int *zerr) {
    size_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int r = gzread(f, (char *)buf + got, chunk);
        if (r <= 0) break;
        got += (size_t)r;
    }
    gzerror(f, zerr);
    return got;
}

/* zlib reports a stream cut short as Z_BUF_ERROR and damage as Z_DATA_ERROR (or worse). */
static void *fail_stream(const char *path, gzFile f, int64_t offset) {
    int zerr;
    const char *msg = gzerror(f, &zerr);
    size_t n = strlen(path); /* zlib prefixes its message with the path: say it once */
    if (strncmp(msg, path, n) == 0 && strncmp(msg + n, ": ", 2) == 0) msg += n + 2;
    return nb__fail(NB_ERR_IO, "idx_read: %s: corrupt gzip stream at offset %lld (compressed "
                    "offset %lld): %s", path, (long long)offset, (long long)gzoffset(f), msg);
}

/* The whole file, read into a counted buffer of file_size bytes; NULL (nothing reported) if it
 * cannot be read in full. */
static uint8_t *slurp(const char *path, size_t file_size) {
    FILE *fp = fopen(path, "rb");
    uint8_t *in = fp ? nb__alloc(file_size) : NULL;
    bool ok = in && fread(in, 1, file_size, fp) == file_size;
    if (fp) fclose(fp);
    if (!ok) nb__dealloc(in, file_size);
    return ok ? in : NULL;
}

/* A gzip file's last 8 bytes: the CRC-32 and the length (mod 2^32) of what its member inflates
 * to, little-endian. */
typedef struct {
    uint32_t crc, isize;
} gz_trailer;

static bool read_trailer(const char *path, size_t file_size, gz_trailer *t) {
    uint8_t b[8];
    FILE *fp = file_size >= 18 ? fopen(path, "rb") : NULL;
    bool ok = fp && fseek(fp, (long)(file_size - 8), SEEK_SET) == 0 && fread(b, 1, 8, fp) == 8;
    if (fp) fclose(fp);
    t->crc = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    t->isize = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
    return ok;
}

/* The inflate cache.  A large gzip IDX file (Fashion-MNIST's training images: 26 MB inflating to
 * 47 MB) is inflated once and kept, inflated, in $NB_CACHE_DIR (empty: no cache), else
 * $XDG_CACHE_HOME/nabla, else ~/.cache/nabla, named after the source's trailer (CRC-32 and
 * length) and size.  A cached copy is used only when its size is the declared header and data
 * and its CRC-32 is the one the source's trailer holds for its content, so an edited, replaced or
 * damaged source or copy is never read: the file is inflated again.  Reading a cached file and
 * its CRC costs a fraction of inflating it.  Best effort: a cache that cannot be written is
 * silently skipped. */
#define CACHE_MIN ((size_t)1 << 20) /* compressed bytes below which inflating is quick anyway */

static bool cache_dir(char *dir, size_t n) {
    const char *env = getenv("NB_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int w = env ? snprintf(dir, n, "%s", env)
            : xdg && *xdg ? snprintf(dir, n, "%s/nabla", xdg)
            : home && *home ? snprintf(dir, n, "%s/.cache/nabla", home) : 0;
    return w > 0 && (size_t)w < n;
}

static bool cache_path(char *path, size_t n, const gz_trailer *t, size_t file_size) {
    char dir[4096];
    if (!cache_dir(dir, sizeof dir)) return false;
    int w = snprintf(path, n, "%s/idx-%08x-%u-%zu.raw", dir, t->crc, t->isize, file_size);
    return w > 0 && (size_t)w < n;
}

static uint8_t *cache_read(const char *cpath, size_t bytes, int64_t head_len, uint32_t crc) {
    FILE *fp = fopen(cpath, "rb");
    struct stat st;
    uint8_t head[4 + 4 * NB_MAX_DIMS], *data = NULL;
    if (fp && fstat(fileno(fp), &st) == 0 && (uint64_t)st.st_size == (uint64_t)head_len + bytes &&
        fread(head, 1, (size_t)head_len, fp) == (size_t)head_len && (data = nb__alloc(bytes)) &&
        (fread(data, 1, bytes, fp) != bytes ||
         libdeflate_crc32(libdeflate_crc32(0, head, (size_t)head_len), data, bytes) != crc)) {
        nb__dealloc(data, bytes);
        data = NULL;
    }
    if (fp) fclose(fp);
    return data;
}

/* Writes the inflated file through a temporary name and a rename, so that a reader never sees
 * half a copy. */
static void cache_write(const char *cpath, const uint8_t *content, size_t total) {
    char dir[4096], tmp[4400];
    if (!cache_dir(dir, sizeof dir)) return;
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) { /* the parent (~/.cache), then the folder itself */
        *slash = 0;
        mkdir(dir, 0755);
        *slash = '/';
    }
    mkdir(dir, 0755);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", cpath, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) return;
    bool ok = fwrite(content, 1, total, fp) == total;
    ok = fclose(fp) == 0 && ok;
    if (!ok || rename(tmp, cpath) != 0) remove(tmp);
}

/* Inflates the file in one libdeflate call into header and data, keeps the data, and caches the
 * whole when cpath is not NULL. */
static uint8_t *inflate_file(const char *path, size_t file_size, size_t total, int64_t head_len,
                             const char *cpath) {
    size_t bytes = total - (size_t)head_len;
    uint8_t *in = slurp(path, file_size), *data = NULL;
    uint8_t *out = in ? nb__alloc(total) : NULL;
    struct libdeflate_decompressor *d = out ? libdeflate_alloc_decompressor() : NULL;
    size_t used = 0, made = 0;
    if (d && libdeflate_gzip_decompress_ex(d, in, file_size, out, total, &used, &made) ==
                 LIBDEFLATE_SUCCESS &&
        used == file_size && made == total && (data = nb__alloc(bytes)) != NULL) {
        memcpy(data, out + head_len, bytes);
        if (cpath) cache_write(cpath, out, total);
    }
    if (d) libdeflate_free_decompressor(d);
    nb__dealloc(out, total);
    nb__dealloc(in, file_size);
    return data;
}

/* The fast path: a file that is one gzip member holding exactly the header and the declared
 * data is read from the inflate cache, or inflated in one libdeflate call (1.7x zlib's speed:
 * it decodes the whole buffer at once rather than a stream), CRC-32 and length checked, and
 * cached.  Anything else — several members, bytes after the member, a stream shorter or longer
 * than declared, damage — returns NULL without a report, and zlib's streaming reader below
 * takes the file from where the header ended and names the problem.  The trailer's length
 * field must match before anything is allocated for the output, and DEFLATE expands at most
 * 1032:1, so a header that declares more than the file can hold never allocates. */
static uint8_t *inflate_whole(const char *path, size_t file_size, size_t bytes, int64_t head_len) {
    size_t total = (size_t)head_len + bytes;
    gz_trailer tr;
    if (total < bytes || total / 1032 > file_size || !read_trailer(path, file_size, &tr) ||
        tr.isize != (uint32_t)total)
        return NULL;
    bool had_error = nb_error_code() != NB_OK;
    char cpath[4300];
    bool cached = file_size >= CACHE_MIN && cache_path(cpath, sizeof cpath, &tr, file_size);
    uint8_t *data = cached ? cache_read(cpath, bytes, head_len, tr.crc) : NULL;
    if (!data) data = inflate_file(path, file_size, total, head_len, cached ? cpath : NULL);
    if (!had_error) nb_error_clear(); /* a failed allocation here is not the caller's error */
    return data;
}

/* Reads the data of a gzip file: by libdeflate in one go when it can, else in a growing buffer
 * (see the file comment). */
static void *read_gz_data(const char *path, gzFile f, size_t bytes, size_t file_size,
                          int64_t head_len) {
    uint8_t *whole = inflate_whole(path, file_size, bytes, head_len);
    if (whole) return whole;
    /* Image data rarely deflates more than 4:1, so 4x the file usually holds it in one go;
     * beyond that the buffer doubles only as inflated bytes arrive. */
    size_t cap = IDX_FIRST_CAP;
    if (file_size <= SIZE_MAX / 4 && file_size * 4 > cap) cap = file_size * 4;
    if (cap > bytes) cap = bytes;
    uint8_t *buf = nb__alloc(cap);
    if (!buf) return NULL;
    size_t got = 0;
    int zerr = Z_OK;
    for (;;) {
        got += read_full(f, buf + got, cap - got, &zerr);
        if (got < cap || cap == bytes || zerr != Z_OK) break;
        size_t grown = cap > bytes / 2 ? bytes : cap * 2;
        uint8_t *next = nb__alloc(grown);
        if (!next) {
            nb__dealloc(buf, cap);
            return NULL;
        }
        memcpy(next, buf, got);
        nb__dealloc(buf, cap);
        buf = next;
        cap = grown;
    }
    if (zerr == Z_OK && got == bytes) { /* the stream must end here; reading on checks its CRC */
        uint8_t extra;
        if (read_full(f, &extra, 1, &zerr) == 1) {
            nb__dealloc(buf, cap);
            return nb__fail(NB_ERR_IO, "idx_read: %s: trailing bytes after the data, from "
                            "offset %lld", path, (long long)(head_len + (int64_t)bytes));
        }
    }
    if (zerr != Z_OK) {
        nb__dealloc(buf, cap);
        return fail_stream(path, f, head_len + (int64_t)got);
    }
    if (got < bytes) {
        nb__dealloc(buf, cap);
        return nb__fail(NB_ERR_IO, "idx_read: %s: truncated data: the header declares %zu bytes "
                        "from offset %lld, the stream ends at offset %lld", path, bytes,
                        (long long)head_len, (long long)(head_len + (int64_t)got));
    }
    return buf;
}

/* Parses and checks the header; fills idx (type, ndim, shape, numel) and *head_len. */
static bool read_header(const char *path, gzFile f, nb_idx *idx, int64_t *head_len) {
    uint8_t h[4 + 4 * NB_MAX_DIMS];
    int zerr;
    size_t got = read_full(f, h, 4, &zerr);
    if (zerr != Z_OK) return fail_stream(path, f, (int64_t)got), false;
    if (got == 0) return nb__fail(NB_ERR_IO, "idx_read: %s: empty file", path), false;
    if (got < 4)
        return nb__fail(NB_ERR_IO, "idx_read: %s: truncated header: the file ends at offset %zu "
                        "inside the 4-byte magic", path, got), false;
    if (h[0] != 0 || h[1] != 0)
        return nb__fail(NB_ERR_IO, "idx_read: %s: wrong magic 0x%02x 0x%02x at offset 0 "
                        "(IDX files start with 0x00 0x00)", path, h[0], h[1]), false;
    if (!type_size(h[2]))
        return nb__fail(NB_ERR_IO, "idx_read: %s: bad type byte 0x%02x at offset 2 (expected "
                        "0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e)", path, h[2]), false;
    if (h[3] < 1 || h[3] > NB_MAX_DIMS)
        return nb__fail(NB_ERR_IO, "idx_read: %s: rank %d at offset 3 is outside 1..%d", path,
                        h[3], NB_MAX_DIMS), false;
    idx->type = (nb_idx_type)h[2];
    idx->ndim = h[3];
    *head_len = 4 + 4 * idx->ndim;
    got = read_full(f, h + 4, (size_t)(4 * idx->ndim), &zerr);
    if (zerr != Z_OK) return fail_stream(path, f, 4 + (int64_t)got), false;
    if (got < (size_t)(4 * idx->ndim))
        return nb__fail(NB_ERR_IO, "idx_read: %s: truncated header: the file ends at offset %zu, "
                        "the %d sizes end at offset %lld", path, 4 + got, idx->ndim,
                        (long long)*head_len), false;
    /* Elements times element size must fit int64 (tensor sizes) and size_t. */
    uint64_t limit = (uint64_t)INT64_MAX < SIZE_MAX ? (uint64_t)INT64_MAX : SIZE_MAX;
    limit /= type_size(idx->type);
    uint64_t numel = 1;
    for (int i = 0; i < idx->ndim; i++) {
        const uint8_t *p = h + 4 + 4 * i;
        uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        idx->shape[i] = d;
        if (d && numel > limit / d)
            return nb__fail(NB_ERR_IO, "idx_read: %s: the sizes overflow: size %u at offset %d "
                            "takes the element count past %llu", path, d, 4 + 4 * i,
                            (unsigned long long)limit), false;
        numel *= d;
    }
    idx->numel = (int64_t)numel;
    return true;
}

nb_idx *nb_idx_read(const char *path) {
    if (!path) return nb__fail(NB_ERR_ARG, "idx_read: path is NULL");
    struct stat st;
    if (stat(path, &st) != 0)
        return nb__fail(NB_ERR_IO, "idx_read: %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return nb__fail(NB_ERR_IO, "idx_read: %s: not a regular file", path);
    gzFile f = gzopen(path, "rb");
    if (!f) return nb__fail(NB_ERR_IO, "idx_read: %s: %s", path, strerror(errno));
    gzbuffer(f, 1u << 17);
    nb_idx *idx = nb__alloc(sizeof *idx);
    if (!idx) {
        gzclose(f);
        return NULL;
    }
    memset(idx, 0, sizeof *idx);
    int64_t head_len = 0;
    if (!read_header(path, f, idx, &head_len)) goto fail;
    size_t es = type_size(idx->type), bytes = (size_t)idx->numel * es;
    if (gzdirect(f)) { /* a plain file: its length settles the size before any allocation */
        int64_t have = (int64_t)st.st_size - head_len;
        if ((uint64_t)have < bytes) {
            nb__fail(NB_ERR_IO, "idx_read: %s: truncated data: the header declares %zu bytes "
                     "from offset %lld, the file ends at offset %lld", path, bytes,
                     (long long)head_len, (long long)st.st_size);
            goto fail;
        }
        if ((uint64_t)have > bytes) {
            nb__fail(NB_ERR_IO, "idx_read: %s: %lld trailing bytes after the data, from offset "
                     "%lld", path, (long long)(have - (int64_t)bytes),
                     (long long)(head_len + (int64_t)bytes));
            goto fail;
        }
        idx->data = nb__alloc(bytes);
        if (!idx->data) goto fail;
        int zerr;
        size_t got = read_full(f, idx->data, bytes, &zerr);
        if (got < bytes) { /* the file shrank under us */
            nb__fail(NB_ERR_IO, "idx_read: %s: read failed at offset %lld", path,
                     (long long)(head_len + (int64_t)got));
            goto fail;
        }
    } else {
        idx->data = read_gz_data(path, f, bytes, (size_t)st.st_size, head_len);
        if (!idx->data) goto fail;
    }
    gzclose(f);
    to_host_order(idx->data, idx->numel, es);
    return idx;
fail:
    gzclose(f);
    nb_idx_free(idx);
    return NULL;
}

void nb_idx_free(nb_idx *idx) {
    if (!idx) return;
    nb__dealloc(idx->data, (size_t)idx->numel * type_size(idx->type));
    nb__dealloc(idx, sizeof *idx);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Writes elements big-endian through a bounce buffer, whole elements per chunk. */
static bool write_data(gzFile f, const uint8_t *src, size_t bytes, size_t es) {
    uint8_t chunk[16384];
    while (bytes > 0) {
        size_t n = bytes < sizeof chunk ? bytes : sizeof chunk;
        memcpy(chunk, src, n);
        to_host_order(chunk, (int64_t)(n / es), es);
        if (gzwrite(f, chunk, (unsigned)n) != (int)n) return false;
        src += n;
        bytes -= n;
    }
    return true;
}

nb_status nb_idx_write(const char *path, nb_idx_type type, int ndim, const int64_t *shape,
                       const void *data) {
    if (!path || (ndim > 0 && !shape))
        return nb__fail_status(NB_ERR_ARG, "idx_write: path or shape is NULL");
    size_t es = type_size((int)type);
    if (!es) return nb__fail_status(NB_ERR_ARG, "idx_write: %s: unknown type 0x%02x", path, type);
    if (ndim < 1 || ndim > NB_MAX_DIMS)
        return nb__fail_status(NB_ERR_ARG, "idx_write: %s: rank %d is outside 1..%d", path, ndim,
                               NB_MAX_DIMS);
    uint8_t head[4 + 4 * NB_MAX_DIMS] = {0, 0, (uint8_t)type, (uint8_t)ndim};
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || shape[i] > UINT32_MAX)
            return nb__fail_status(NB_ERR_ARG, "idx_write: %s: size %lld of dim %d does not fit "
                                   "IDX's uint32", path, (long long)shape[i], i);
        if (shape[i] && numel > (uint64_t)INT64_MAX / es / (uint64_t)shape[i])
            return nb__fail_status(NB_ERR_ARG, "idx_write: %s: %s: too many elements", path,
                                   nb__shape_str(ndim, shape));
        numel *= (uint64_t)shape[i];
        for (int b = 0; b < 4; b++) head[4 + 4 * i + b] = (uint8_t)(shape[i] >> (24 - 8 * b));
    }
    if (numel && !data) return nb__fail_status(NB_ERR_ARG, "idx_write: %s: data is NULL", path);
    size_t tmp_len = strlen(path) + 5;
    char *tmp = nb__alloc(tmp_len);
    if (!tmp) return NB_ERR_MEMORY;
    snprintf(tmp, tmp_len, "%s.tmp", path);
    nb_status st = NB_OK;
    gzFile f = gzopen(tmp, ends_with(path, ".gz") ? "wb6" : "wbT");
    if (!f) {
        st = nb__fail_status(NB_ERR_IO, "idx_write: %s: %s", tmp, strerror(errno));
    } else {
        bool ok = gzwrite(f, head, (unsigned)(4 + 4 * ndim)) == 4 + 4 * ndim &&
                  write_data(f, data, (size_t)numel * es, es);
        if (gzclose(f) != Z_OK || !ok)
            st = nb__fail_status(NB_ERR_IO, "idx_write: %s: write failed", tmp);
        else if (rename(tmp, path) != 0)
            st = nb__fail_status(NB_ERR_IO, "idx_write: %s: %s", path, strerror(errno));
        if (st != NB_OK) remove(tmp);
    }
    nb__dealloc(tmp, tmp_len);
    return st;
}

/* ---------------------------------------------------------------- IDX datasets */

nb_dataset *nb_dataset_from_idx(const char *images_path, const char *labels_path) {
    if (!images_path || !labels_path)
        return nb__fail(NB_ERR_ARG, "dataset_from_idx: a path is NULL");
    nb_idx *im = nb_idx_read(images_path), *lb = im ? nb_idx_read(labels_path) : NULL;
    nb_dataset *ds = NULL;
    if (!lb) goto done;
    if (im->type != NB_IDX_U8 || im->ndim < 2) {
        nb__fail(NB_ERR_IO, "dataset_from_idx: %s: images must be bytes (type 0x08) of rank >= 2, "
                 "found type 0x%02x rank %d", images_path, im->type, im->ndim);
        goto done;
    }
    if (lb->ndim != 1 || lb->type == NB_IDX_F32 || lb->type == NB_IDX_F64) {
        nb__fail(NB_ERR_IO, "dataset_from_idx: %s: labels must be integers of rank 1, found type "
                 "0x%02x rank %d", labels_path, lb->type, lb->ndim);
        goto done;
    }
    int64_t n = im->shape[0];
    if (im->numel == 0) {
        nb__fail(NB_ERR_IO, "dataset_from_idx: %s: no images: sizes %s", images_path,
                 nb__shape_str(im->ndim, im->shape));
        goto done;
    }
    if (lb->shape[0] != n) {
        nb__fail(NB_ERR_IO, "dataset_from_idx: %s holds %lld images but %s holds %lld labels",
                 images_path, (long long)n, labels_path, (long long)lb->shape[0]);
        goto done;
    }
    size_t y_bytes = sizeof(int32_t) * (size_t)n, es = type_size(lb->type);
    int32_t *y = nb__alloc(y_bytes);
    if (!y) goto done;
    for (int64_t i = 0; i < n; i++) {
        const void *p = (const uint8_t *)lb->data + i * (int64_t)es;
        switch (lb->type) {
        case NB_IDX_U8: y[i] = *(const uint8_t *)p; break;
        case NB_IDX_I8: y[i] = *(const int8_t *)p; break;
        case NB_IDX_I16: y[i] = *(const int16_t *)p; break;
        default: y[i] = *(const int32_t *)p; break;
        }
        if (y[i] < 0) {
            nb__fail(NB_ERR_IO, "dataset_from_idx: %s: negative label %d at offset %lld",
                     labels_path, y[i], (long long)(8 + i * (int64_t)es));
            nb__dealloc(y, y_bytes);
            goto done;
        }
    }
    void *x = im->data; /* the dataset keeps the bytes as read */
    im->data = NULL;
    ds = nb__dataset_adopt("dataset_from_idx", n, im->ndim - 1, im->shape + 1, true, x,
                           (size_t)im->numel, NB_TARGET_CLASS, 1, y, y_bytes);
    if (ds && !nb__dataset_set_files(ds, images_path, labels_path, 0)) {
        nb_dataset_free(ds);
        ds = NULL;
    }
done:
    nb_idx_free(im);
    nb_idx_free(lb);
    return ds;
}

/* dir/name.gz when it exists, else dir/name (whose absence nb_idx_read then reports). */
static char *mnist_path(const char *dir, const char *name, size_t *len) {
    *len = strlen(dir) + strlen(name) + 5;
    char *p = nb__alloc(*len);
    if (!p) return NULL;
    struct stat st;
    snprintf(p, *len, "%s/%s.gz", dir, name);
    if (stat(p, &st) != 0) snprintf(p, *len, "%s/%s", dir, name);
    return p;
}

nb_dataset *nb_mnist_read(const char *dir, bool train) {
    if (!dir) return nb__fail(NB_ERR_ARG, "mnist_read: dir is NULL");
    size_t li, ll;
    char *im = mnist_path(dir, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte", &li);
    char *lb = mnist_path(dir, train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte", &ll);
    nb_dataset *ds = im && lb ? nb_dataset_from_idx(im, lb) : NULL;
    nb__dealloc(im, li);
    nb__dealloc(lb, ll);
    return ds;
}
