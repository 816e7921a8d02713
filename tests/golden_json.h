/*
 * golden_json.h — reading PyTorch's golden vectors (the JSON files in tests/golden/, written by
 * tools/gen_golden_*.py) and checking modules against them.  A tensor is a {"shape", "data"}
 * object; a module case is {"params", "buffers", "train", "steps"} as tools/gen_golden_nn.py and
 * tools/gen_golden_conv_nn.py write it.  Include after check.h: failures are counted there.
 */
#ifndef NB_GOLDEN_JSON_H
#define NB_GOLDEN_JSON_H

#include "check.h"

#include <jansson.h>

/* The parsed file, or NULL after saying why on stderr (the tests run from the repository root,
 * and a missing file is the usual mistake). */
static inline json_t *golden_load(const char *path) {
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) fprintf(stderr, "%s: %s (line %d); run from the repository root\n", path, err.text, err.line);
    return root;
}

/* Runs each(case) on every case of the array root[section] of the golden file at path, having
 * checked that the file loads and holds at least min_cases of them. */
static inline void golden_each_case(const char *path, const char *section, size_t min_cases,
                                    void (*each)(const json_t *c)) {
    json_t *root = golden_load(path);
    CHECK(root != NULL);
    if (!root) return;
    const json_t *cases = json_object_get(root, section);
    CHECK(json_array_size(cases) >= min_cases);
    for (size_t i = 0; i < json_array_size(cases); i++) each(json_array_get(cases, i));
    json_decref(root);
}

/* The doubles of a {"shape", "data"} object, malloc'd; *n gets their count. */
static inline double *json_doubles(const json_t *obj, long *n) {
    const json_t *data = json_object_get(obj, "data");
    *n = (long)json_array_size(data);
    double *v = malloc(sizeof(double) * (size_t)(*n ? *n : 1));
    for (long i = 0; i < *n; i++) v[i] = json_number_value(json_array_get(data, (size_t)i));
    return v;
}

/* The same rounded to float, as the inputs of a float32 run. */
static inline float *json_floats(const json_t *obj, long *n) {
    double *d = json_doubles(obj, n);
    float *v = malloc(sizeof(float) * (size_t)(*n ? *n : 1));
    for (long i = 0; i < *n; i++) v[i] = (float)d[i];
    free(d);
    return v;
}

/* Fills shape (at most NB_MAX_DIMS entries) and returns the number of dims. */
static inline int json_shape(const json_t *obj, int64_t *shape) {
    const json_t *s = json_object_get(obj, "shape");
    int nd = (int)json_array_size(s);
    for (int d = 0; d < nd && d < NB_MAX_DIMS; d++)
        shape[d] = (int64_t)json_integer_value(json_array_get(s, (size_t)d));
    return nd;
}

/* A new tensor with obj's shape and values (in the open scope, if any): int32 when obj says
 * "dtype": "int32", else float32; NULL for a NULL obj. */
static inline nb_tensor *json_tensor(const json_t *obj) {
    if (!obj) return NULL;
    int64_t shape[NB_MAX_DIMS];
    int nd = json_shape(obj, shape);
    const char *dtype = json_string_value(json_object_get(obj, "dtype"));
    long n;
    nb_tensor *t;
    if (dtype && !strcmp(dtype, "int32")) {
        double *d = json_doubles(obj, &n);
        int32_t *v = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
        for (long i = 0; i < n; i++) v[i] = (int32_t)d[i];
        t = nb_from_int32(v, nd, shape);
        free(v);
        free(d);
    } else {
        float *v = json_floats(obj, &n);
        t = nb_from_data(v, nd, shape);
        free(v);
    }
    return t;
}

/* t's shape is exactly obj's. */
static inline bool json_same_shape(const nb_tensor *t, const json_t *obj) {
    int64_t shape[NB_MAX_DIMS];
    int nd = json_shape(obj, shape);
    bool same = t && nb_ndim(t) == nd;
    for (int d = 0; same && d < nd; d++) same = nb_shape(t)[d] == shape[d];
    return same;
}

/* "[2,3,4]" for messages (one static buffer: one call per message). */
static inline const char *shape_text(const nb_tensor *t) {
    static char buf[128];
    int len = snprintf(buf, sizeof buf, "[");
    for (int d = 0; d < nb_ndim(t) && len < 100; d++)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%lld", d ? "," : "", (long long)nb_shape(t)[d]);
    snprintf(buf + len, sizeof buf - (size_t)len, "]");
    return buf;
}

/* t has the shape and (within |diff| <= tol + tol |want|) the values of obj. */
static inline void check_json_tensor(const char *what, const nb_tensor *t, const json_t *obj, double tol) {
    if (!json_same_shape(t, obj)) {
        char *want = json_dumps(json_object_get(obj, "shape"), JSON_COMPACT);
        CHECK_FAIL_("%s: shape %s, want %s [%s]", what, t ? shape_text(t) : "missing (NULL)", want,
                    nb_error_message());
        free(want);
        return;
    }
    long n;
    double *want = json_doubles(obj, &n);
    CHECK_TENSOR(what, t, want, n, tol, tol);
    free(want);
}

/* The module's parameters (or buffers) are exactly torch's, by name and in torch's order; the
 * values are loaded through nb_module_find, as a state dict is. */
static inline void check_and_load_entries(const char *cname, nb_module *m, const json_t *list, bool buffers) {
    size_t n = json_array_size(list);
    CHECK_EQ_INT(buffers ? nb_module_num_buffers(m) : nb_module_num_params(m), n);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(list, i);
        const char *want = json_string_value(json_object_get(e, "name")), *got = NULL;
        nb_tensor *t = buffers ? nb_module_buffer(m, (int)i, &got) : nb_module_param(m, (int)i, &got);
        if (!got || strcmp(got, want)) {
            CHECK_FAIL_("%s: %s %zu is '%s', torch has '%s'", cname, buffers ? "buffer" : "param", i,
                        got ? got : "(none)", want);
            continue;
        }
        nb_tensor *found = nb_module_find(m, want);
        CHECK(found == t);
        if (!json_same_shape(found, e)) CHECK_FAIL_("%s: %s has another shape than torch's", cname, want);
        long count;
        float *v = json_floats(e, &count);
        CHECK_EQ_INT(nb_copy_from(found, v, count), NB_OK);
        free(v);
    }
}

/* Each named tensor of the module (or its grad) matches torch's entry of the same name. */
static inline void check_entries(const char *cname, const char *kind, nb_module *m, const json_t *list, bool grads,
                                 double tol) {
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *e = json_array_get(list, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        char what[512];
        snprintf(what, sizeof what, "%s: %s %s", cname, kind, name);
        nb_tensor *t = nb_module_find(m, name);
        check_json_tensor(what, grads ? nb_grad(t) : t, e, tol);
    }
}

/* Loads torch's parameters and buffers into m, sets its train/eval mode, then for each step
 * checks the output, and after backward of sum(y * R) the input's and parameters' grads and the
 * buffers (running statistics); grads are cleared between steps, as torch's zero_grad does. */
static inline void check_golden_module(const char *cname, nb_module *m, const json_t *c, double tol) {
    check_and_load_entries(cname, m, json_object_get(c, "params"), false);
    check_and_load_entries(cname, m, json_object_get(c, "buffers"), true);
    nb_module_train(m, json_is_true(json_object_get(c, "train")));
    const json_t *steps = json_object_get(c, "steps");
    for (size_t s = 0; s < json_array_size(steps); s++) {
        const json_t *st = json_array_get(steps, s);
        char what[160];
        nb_scope_begin();
        nb_tensor *x = json_tensor(json_object_get(st, "input"));
        nb_set_requires_grad(x, true);
        nb_tensor *y = nb_module_forward(m, x);
        snprintf(what, sizeof what, "%s step %zu: output", cname, s);
        check_json_tensor(what, y, json_object_get(st, "output"), tol);
        nb_tensor *r = json_tensor(json_object_get(st, "R"));
        CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(y, r))), NB_OK);
        snprintf(what, sizeof what, "%s step %zu: input grad", cname, s);
        check_json_tensor(what, nb_grad(x), json_object_get(st, "grad_input"), tol);
        snprintf(what, sizeof what, "%s step %zu:", cname, s);
        check_entries(what, "grad of", m, json_object_get(st, "grads"), true, tol);
        check_entries(what, "buffer", m, json_object_get(st, "buffers"), false, tol);
        nb_scope_end();
        for (int i = 0; i < nb_module_num_params(m); i++) nb_clear_grad(nb_module_param(m, i, NULL));
    }
}

#endif
