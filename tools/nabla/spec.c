/*
 * spec.c — the command's model specs: the short form "784-64-64-10" (--model, --act, --dropout,
 * --batchnorm) turned into the JSON description of a model file, and --model-file read, both
 * built by the library (src/io/model_file.c, nb_model_from_json) and saved beside the weights,
 * so `nabla eval` and `nabla predict` rebuild the same model.  The library's messages are
 * printed here, after "nabla: ".
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
    if (!(dropout >= 0 && dropout <= 1)) {
        fprintf(stderr, "nabla: --dropout %g: must be a probability from 0 to 1\n", dropout);
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
    char *text = nb_model_file_read(path);
    json_error_t err;
    json_t *spec = text ? json_loads(text, 0, &err) : NULL;
    if (!text) fprintf(stderr, "nabla: %s\n", nb_error_message());
    free(text);
    return spec;
}

bool spec_set_init(json_t *spec, const char *name) { /* the name is checked when the model is built */
    return json_object_set_new(spec, "init", json_string(name)) == 0;
}

/* The spec as the library reads it; NULL after a message. */
static char *spec_text(const json_t *spec) {
    char *text = json_dumps(spec, JSON_COMPACT);
    if (!text) fprintf(stderr, "nabla: out of memory\n");
    return text;
}

nb_module *spec_build(const json_t *spec) {
    char *text = spec_text(spec);
    nb_module *m = text ? nb_model_from_json(text) : NULL;
    if (text && !m) fprintf(stderr, "nabla: %s\n", nb_error_message());
    free(text);
    return m;
}

int64_t spec_input_features(const json_t *spec) {
    char *text = spec_text(spec);
    int64_t n = text ? nb_model_input_features(text) : -1;
    free(text);
    return n;
}
