/*
 * json.c — strict reading and writing of the optimisers' and schedules' JSON state (jansson).
 *
 * Reading is strict because a checkpoint that does not fit should fail loudly: every key must be
 * known and present, of the right type, and the messages name the key and where it is.  Numbers
 * are written with 17 significant digits (jansson's default), which round-trips every double;
 * JSON has no inf or nan, so those are written as the strings "inf", "-inf" and "nan".
 */
#include "optim_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool nb__json_keys(const json_t *obj, const char *const *keys, int n, const char *where) {
    if (!json_is_object(obj)) return nb__fail(NB_ERR_ARG, "%s: expected a JSON object", where), false;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        bool known = false;
        for (int i = 0; i < n && !known; i++) known = strcmp(key, keys[i]) == 0;
        if (!known) return nb__fail(NB_ERR_ARG, "%s: unknown key '%s'", where, key), false;
    }
    for (int i = 0; i < n; i++)
        if (!json_object_get(obj, keys[i]))
            return nb__fail(NB_ERR_ARG, "%s: missing key '%s'", where, keys[i]), false;
    return true;
}

static bool number_of(const json_t *v, double *out) {
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    const char *s = json_string_value(v);
    if (!s) return false;
    if (strcmp(s, "inf") == 0) *out = INFINITY;
    else if (strcmp(s, "-inf") == 0) *out = -INFINITY;
    else if (strcmp(s, "nan") == 0) *out = NAN;
    else return false;
    return true;
}

bool nb__json_num(const json_t *obj, const char *key, double *out, const char *where) {
    if (!number_of(json_object_get(obj, key), out))
        return nb__fail(NB_ERR_ARG, "%s: '%s' must be a number", where, key), false;
    return true;
}

bool nb__json_int(const json_t *obj, const char *key, int64_t *out, const char *where) {
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return nb__fail(NB_ERR_ARG, "%s: '%s' must be an integer", where, key), false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

bool nb__json_bool(const json_t *obj, const char *key, bool *out, const char *where) {
    const json_t *v = json_object_get(obj, key);
    if (!json_is_boolean(v))
        return nb__fail(NB_ERR_ARG, "%s: '%s' must be true or false", where, key), false;
    *out = json_is_true(v);
    return true;
}

bool nb__json_nums(const json_t *obj, const char *key, double *out, int n, const char *where) {
    const json_t *a = json_object_get(obj, key);
    if (!json_is_array(a) || json_array_size(a) != (size_t)n)
        return nb__fail(NB_ERR_ARG, "%s: '%s' must be an array of %d numbers", where, key, n), false;
    for (int i = 0; i < n; i++)
        if (!number_of(json_array_get(a, (size_t)i), &out[i]))
            return nb__fail(NB_ERR_ARG, "%s: '%s'[%d] must be a number", where, key, i), false;
    return true;
}

json_t *nb__json_real(double v) {
    if (isfinite(v)) return json_real(v);
    return json_string(isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}

json_t *nb__json_reals(const double *v, int n) {
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) json_array_append_new(a, nb__json_real(v[i]));
    return a;
}

json_t *nb__json_parse(const char *text, const char *what) {
    if (!text) return nb__fail(NB_ERR_ARG, "%s: JSON text is NULL", what);
    json_error_t err;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return nb__fail(NB_ERR_ARG, "%s: invalid JSON at line %d, column %d: %s", what, err.line,
                        err.column, err.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return nb__fail(NB_ERR_ARG, "%s: expected a JSON object", what);
    }
    return root;
}

char *nb__json_dump(json_t *root, const char *what) {
    char *s = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!s) return nb__fail(NB_ERR_MEMORY, "%s: out of memory writing JSON", what);
    return s;
}
