/*
 * spec.c — model specs: the short form "784-64-64-10" and JSON model files, both turned into
 * one JSON description that builds the module and is saved beside the weights, so `nabla eval`
 * and `nabla predict` rebuild the same model.  Unknown keys are errors, never ignored.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static json_t *layer(const char *type) { return json_pack("{s:s}", "type", type); }

json_t *spec_from_sizes(const char *sizes, const char *act, double dropout, bool batchnorm) {
    int64_t dims[64];
    int n = 0;
    const char *p = sizes;
    while (*p && n < 64) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v <= 0 || (*end && *end != '-')) {
            fprintf(stderr, "nabla: --model '%s': expected sizes like 784-64-64-10\n", sizes);
            return NULL;
        }
        dims[n++] = v;
        p = *end ? end + 1 : end;
    }
    nb_activation a;
    if (n < 2 || *p || (p > sizes && p[-1] == '-')) { /* p[-1]: a trailing '-' */
        fprintf(stderr, "nabla: --model '%s': needs 2 to 64 sizes like 784-64-64-10\n", sizes);
        return NULL;
    }
    if (!nb_activation_parse(act, &a)) {
        fprintf(stderr, "nabla: --act '%s': unknown activation\n", act);
        return NULL;
    }
    json_t *layers = json_array();
    json_array_append_new(layers, layer("flatten"));
    for (int i = 0; i + 1 < n; i++) {
        json_array_append_new(layers, json_pack("{s:s,s:I,s:I}", "type", "linear", "in", (json_int_t)dims[i],
                                                "out", (json_int_t)dims[i + 1]));
        if (i + 2 == n) break;
        if (batchnorm)
            json_array_append_new(layers, json_pack("{s:s,s:I}", "type", "batchnorm1d", "features",
                                                    (json_int_t)dims[i + 1]));
        json_array_append_new(layers, layer(act));
        if (dropout > 0) json_array_append_new(layers, json_pack("{s:s,s:f}", "type", "dropout", "p", dropout));
    }
    return json_pack("{s:o}", "layers", layers);
}

json_t *spec_from_file(const char *path) {
    json_error_t err;
    json_t *spec = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!spec) {
        fprintf(stderr, "nabla: %s:%d:%d: %s\n", path, err.line, err.column, err.text);
        return NULL;
    }
    if (!json_is_array(json_object_get(spec, "layers")) || json_object_size(spec) != 1) {
        fprintf(stderr, "nabla: %s: a model file is {\"layers\": [...]} and nothing else\n", path);
        json_decref(spec);
        return NULL;
    }
    return spec;
}

/* ---- building */

typedef struct {
    const char *where; /* "layer 3" for messages */
    const json_t *obj;
    bool ok;
} layer_reader;

static bool check_keys(layer_reader *r, const char *const *allowed) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)r->obj, key, v) {
        bool known = !strcmp(key, "type");
        for (int i = 0; allowed[i] && !known; i++) known = !strcmp(key, allowed[i]);
        if (!known) {
            fprintf(stderr, "nabla: model %s: unknown key '%s'\n", r->where, key);
            return r->ok = false;
        }
    }
    return true;
}

static int64_t get_int(layer_reader *r, const char *key, int64_t dflt, bool required) {
    json_t *v = json_object_get(r->obj, key);
    if (!v && !required) return dflt;
    if (!json_is_integer(v) || json_integer_value(v) < (required ? 1 : -64)) {
        if (r->ok) fprintf(stderr, "nabla: model %s: '%s' must be a%s integer\n", r->where, key,
                           required ? " positive" : "n");
        r->ok = false;
        return dflt;
    }
    return json_integer_value(v);
}

static double get_num(layer_reader *r, const char *key, double dflt) {
    json_t *v = json_object_get(r->obj, key);
    if (!v) return dflt;
    if (!json_is_number(v)) {
        if (r->ok) fprintf(stderr, "nabla: model %s: '%s' must be a number\n", r->where, key);
        r->ok = false;
        return dflt;
    }
    return json_number_value(v);
}

static nb_module *build_list(const json_t *layers, const char *where);

static nb_module *build_layer(const json_t *obj, const char *where) {
    layer_reader r = {where, obj, json_is_object(obj)};
    const char *type = json_string_value(json_object_get(obj, "type"));
    nb_activation act;
    if (!r.ok || !type) {
        fprintf(stderr, "nabla: model %s: needs a \"type\"\n", where);
        return NULL;
    }
    nb_module *m = NULL;
    if (!strcmp(type, "flatten") && check_keys(&r, (const char *[]){"start_dim", "end_dim", NULL})) {
        int s = (int)get_int(&r, "start_dim", 1, false), e = (int)get_int(&r, "end_dim", -1, false);
        if (r.ok) m = nb_flatten_new(s, e);
    } else if (!strcmp(type, "linear") && check_keys(&r, (const char *[]){"in", "out", "bias", NULL})) {
        int64_t in = get_int(&r, "in", 0, true), out = get_int(&r, "out", 0, true);
        json_t *bias = json_object_get(obj, "bias");
        if (bias && !json_is_boolean(bias)) fprintf(stderr, "nabla: model %s: 'bias' must be true or false\n", where), r.ok = false;
        if (r.ok) m = nb_linear_new(in, out, !bias || json_is_true(bias));
    } else if (!strcmp(type, "dropout") && check_keys(&r, (const char *[]){"p", NULL})) {
        double p = get_num(&r, "p", 0.5);
        if (r.ok) m = nb_dropout_new((float)p);
    } else if (!strcmp(type, "batchnorm1d") && check_keys(&r, (const char *[]){"features", "eps", "momentum", NULL})) {
        int64_t c = get_int(&r, "features", 0, true);
        double eps = get_num(&r, "eps", 1e-5), mom = get_num(&r, "momentum", 0.1);
        if (r.ok) m = nb_batchnorm1d_new(c, (nb_batchnorm_opts){.eps = (float)eps, .momentum = (float)mom});
    } else if (!strcmp(type, "layernorm") && check_keys(&r, (const char *[]){"features", "eps", NULL})) {
        int64_t c = get_int(&r, "features", 0, true);
        double eps = get_num(&r, "eps", 1e-5);
        if (r.ok) m = nb_layernorm_new(1, &c, (float)eps, true);
    } else if (!strcmp(type, "prelu") && check_keys(&r, (const char *[]){"num_parameters", "init", NULL})) {
        int64_t n = get_int(&r, "num_parameters", 1, false);
        double init = get_num(&r, "init", 0.25);
        if (r.ok) m = nb_prelu_new(n, (float)init);
    } else if (!strcmp(type, "bottleneck") && check_keys(&r, (const char *[]){"in", "rank", "out", NULL})) {
        int64_t in = get_int(&r, "in", 0, true), k = get_int(&r, "rank", 0, true), out = get_int(&r, "out", 0, true);
        if (r.ok) m = nb_bottleneck_new(in, k, out);
    } else if (!strcmp(type, "residual") && check_keys(&r, (const char *[]){"body", "in", "out", NULL})) {
        int64_t in = get_int(&r, "in", 0, true), out = get_int(&r, "out", 0, true);
        nb_module *body = r.ok ? build_list(json_object_get(obj, "body"), where) : NULL;
        if (body) m = nb_residual_linear_new(body, in, out);
        else r.ok = false;
    } else if (!strcmp(type, "concat") && check_keys(&r, (const char *[]){"branches", "dim", NULL})) {
        const json_t *branches = json_object_get(obj, "branches");
        int dim = (int)get_int(&r, "dim", 1, false);
        size_t n = json_array_size(branches);
        nb_module *built[16];
        if (n < 1 || n > 16) fprintf(stderr, "nabla: model %s: 'branches' must list 1 to 16 layer lists\n", where), r.ok = false;
        for (size_t i = 0; r.ok && i < n; i++) {
            built[i] = build_list(json_array_get(branches, i), where);
            if (!built[i]) {
                for (size_t k = 0; k < i; k++) nb_module_free(built[k]);
                r.ok = false;
            }
        }
        if (r.ok) m = nb_concat_new((int)n, built, dim);
    } else if (nb_activation_parse(type, &act) && check_keys(&r, (const char *[]){"param", NULL})) {
        double p = get_num(&r, "param", 0);
        if (r.ok) m = nb_activation_new(act, (float)p);
    } else if (r.ok) {
        fprintf(stderr, "nabla: model %s: unknown layer type '%s'\n", where, type);
        return NULL;
    }
    if (!m && r.ok) fprintf(stderr, "nabla: model %s: %s\n", where, nb_error_message());
    return m;
}

static nb_module *build_list(const json_t *layers, const char *where) {
    if (!json_is_array(layers) || json_array_size(layers) == 0) {
        fprintf(stderr, "nabla: model %s: expected a non-empty list of layers\n", where);
        return NULL;
    }
    nb_module *seq = nb_sequential_new(0, NULL);
    for (size_t i = 0; seq && i < json_array_size(layers); i++) {
        char sub[96];
        snprintf(sub, sizeof sub, "%s%slayer %zu", where, *where ? " > " : "", i);
        nb_module *m = build_layer(json_array_get(layers, i), sub);
        if (!m || nb_sequential_append(seq, m) != NB_OK) {
            nb_module_free(seq);
            return NULL;
        }
    }
    return seq;
}

nb_module *spec_build(const json_t *spec) { return build_list(json_object_get(spec, "layers"), ""); }

int64_t spec_input_features(const json_t *spec) {
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(spec, "layers"), i, l) {
        const char *type = json_string_value(json_object_get(l, "type"));
        if (type && (!strcmp(type, "linear") || !strcmp(type, "bottleneck") || !strcmp(type, "residual")))
            return json_integer_value(json_object_get(l, "in"));
    }
    return -1;
}
