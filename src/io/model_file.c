/*
 * model_file.c — model files: a JSON description of a network that builds the module, as
 * `nabla train --model-file` reads it and as `nabla` stores it beside the weights, so that the
 * same model is rebuilt to load them.  A model file is {"layers": [...], "init"?: "scheme"}; each
 * layer is an object {"type": "linear", "in": 784, "out": 64, ...} (the types and their keys
 * are those of build_layer below; docs/ARCHITECTURE.md lists them).  Unknown keys are errors,
 * never ignored, and every value is checked, by this file or by the library's constructors,
 * whose message is kept behind the layer's place ("model layer 2 > layer 0: Dropout: ...").
 *
 * It sits in src/io, beside the checkpoints: it is a file format, read above src/nn, and it
 * builds modules only through the public constructors, as a user's program would.
 *
 * Initialisation: an "init" key names a scheme of nb_module_init ("kaiming_normal", ...), at the
 * top level for the whole model or on a layer with weights for that layer (a residual's or a
 * concat's for everything inside it); the innermost one applies, "default" keeps the layers'
 * own draws.  Biases of the layers a scheme draws are zeroed.
 */
#include "nabla.h"
#include "io.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* jansson's column is that of the last character it read: the end of the offending token
 * ("... near '\"type\"'"), or 0 at the start of a line.  An editor wants the token's first
 * column (1-based), so the token's length in characters is taken off. */
static int token_column(const json_error_t *e) {
    int col = e->column;
    const char *near = strstr(e->text, " near '");
    size_t len = near ? strlen(near + 7) : 0;
    if (len > 1 && near[7 + len - 1] == '\'') {
        int chars = 0;
        for (size_t i = 0; i + 1 < len; i++) chars += ((unsigned char)near[7 + i] & 0xC0) != 0x80;
        if (col - chars + 1 >= 1) col -= chars - 1;
    }
    return col < 1 ? 1 : col;
}

char *nb_model_file_read(const char *path) {
    if (!path) return nb__fail(NB_ERR_ARG, "model_file_read: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return nb__fail(NB_ERR_IO, "%s: cannot open the model file: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return nb__fail(NB_ERR_IO, "%s: is a folder; a model file is a JSON file", path);
    }
    json_error_t err;
    json_t *spec = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
    fclose(f);
    if (!spec) return nb__fail(NB_ERR_IO, "%s:%d:%d: %s", path, err.line, token_column(&err), err.text);
    const char *key;
    json_t *v;
    bool ok = true; /* a JSON value that is no object has no "layers": said below */
    json_object_foreach(spec, key, v) {
        if (!ok || !strcmp(key, "layers") || !strcmp(key, "init")) continue;
        nb__fail(NB_ERR_ARG, "%s: unknown key '%s': a model file is {\"layers\": [...]} and nothing else "
                 "but an optional \"init\"", path, key);
        ok = false;
    }
    if (ok && !json_is_array(json_object_get(spec, "layers"))) {
        nb__fail(NB_ERR_ARG, "%s: a model file is {\"layers\": [...]} and nothing else but an optional \"init\"", path);
        ok = false;
    }
    char *text = ok ? json_dumps(spec, JSON_COMPACT) : NULL; /* jansson's malloc: the caller frees */
    if (ok && !text) nb__fail(NB_ERR_MEMORY, "%s: out of memory", path);
    json_decref(spec);
    return text;
}

/* "default, xavier_uniform, ..." for messages and --help. */
static const char *init_choices(void) {
    static char list[160];
    if (!list[0])
        for (int i = 0; i < NB_INIT_COUNT; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     nb_init_name((nb_init_scheme)i));
    return list;
}

/* ---- building */

typedef struct {
    const char *where; /* "layer 3" for messages */
    const json_t *obj;
    bool ok;
    nb_init_scheme init; /* the layer's "init", else the one it inherits */
} layer_reader;

/* The first error of a layer is the one reported: once r->ok is false, later checks are quiet. */
__attribute__((format(printf, 2, 3))) static bool bad(layer_reader *r, const char *fmt, ...) {
    if (r->ok) {
        char msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        nb__fail(NB_ERR_ARG, "model %s: %s", r->where, msg);
    }
    return r->ok = false;
}
static bool check_keys(layer_reader *r, const char *const *allowed) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)r->obj, key, v) {
        bool known = !strcmp(key, "type");
        for (int i = 0; allowed[i] && !known; i++) known = !strcmp(key, allowed[i]);
        if (!known) return bad(r, "unknown key '%s'", key);
    }
    return true;
}

static int64_t get_int(layer_reader *r, const char *key, int64_t dflt, bool required) {
    json_t *v = json_object_get(r->obj, key);
    if (!v && !required) return dflt;
    if (!json_is_integer(v) || json_integer_value(v) < (required ? 1 : -64)) {
        bad(r, "'%s' must be a%s integer", key, required ? " positive" : "n");
        return dflt;
    }
    return json_integer_value(v);
}

static double get_num(layer_reader *r, const char *key, double dflt) {
    json_t *v = json_object_get(r->obj, key);
    if (!v) return dflt;
    if (!json_is_number(v)) {
        bad(r, "'%s' must be a number", key);
        return dflt;
    }
    return json_number_value(v);
}

/* A BatchNorm's or LayerNorm's eps: > 0 here, since the library reads 0 as "the default". */
static double get_eps(layer_reader *r) {
    double eps = get_num(r, "eps", 1e-5);
    if (r->ok && !(eps > 0)) bad(r, "'eps' must be > 0, got %g", eps);
    return eps;
}

/* "init": a scheme's name (see the top of this file); absent, the inherited one. */
static nb_init_scheme get_init(const json_t *obj, const char *where, nb_init_scheme inherited, bool *ok) {
    json_t *v = json_object_get(obj, "init");
    nb_init_scheme scheme = inherited;
    if (v && *ok && !nb_init_parse(json_string_value(v), &scheme)) {
        nb__fail(NB_ERR_ARG, "model %s: 'init' must be one of %s", where, init_choices());
        *ok = false;
    }
    return scheme;
}

static bool get_bool(layer_reader *r, const char *key, bool dflt) {
    json_t *v = json_object_get(r->obj, key);
    if (!v) return dflt;
    if (!json_is_boolean(v)) {
        return bad(r, "'%s' must be true or false", key);
    }
    return json_is_true(v);
}

/* A size given for both spatial dims (3) or as [height, width] ([3, 5]), each >= min. */
static void get_pair(layer_reader *r, const char *key, int min, int dflt, bool required, int out[2]) {
    json_t *v = json_object_get(r->obj, key);
    out[0] = out[1] = dflt;
    if (!v && !required) return;
    bool ok = false;
    if (json_is_integer(v)) {
        ok = json_integer_value(v) >= min && json_integer_value(v) <= 65536;
        out[0] = out[1] = (int)json_integer_value(v);
    } else if (json_is_array(v) && json_array_size(v) == 2) {
        ok = true;
        for (size_t k = 0; k < 2; k++) {
            json_t *e = json_array_get(v, k);
            ok = ok && json_is_integer(e) && json_integer_value(e) >= min && json_integer_value(e) <= 65536;
            if (ok) out[k] = (int)json_integer_value(e);
        }
    }
    if (!ok) {
        bad(r, "'%s' must be an integer from %d to 65536 or two "
                           "of them [height, width]", key, min);
    }
}

/* "conv2d" and "conv_transpose2d": {in, out, kernel, stride?, padding?, dilation?, groups?,
 * bias?}; padding may be "same" (conv2d), output_padding? (conv_transpose2d). */
static nb_module *build_conv(layer_reader *r, bool transposed) {
    int64_t in = get_int(r, "in", 0, true), out = get_int(r, "out", 0, true);
    int64_t groups = get_int(r, "groups", 1, false);
    int kernel[2], stride[2], padding[2] = {0, 0}, dilation[2], output_padding[2] = {0, 0};
    get_pair(r, "kernel", 1, 1, true, kernel);
    get_pair(r, "stride", 1, 1, false, stride);
    get_pair(r, "dilation", 1, 1, false, dilation);
    const char *pad_word = json_string_value(json_object_get(r->obj, "padding"));
    bool same = pad_word && !strcmp(pad_word, "same"), valid = pad_word && !strcmp(pad_word, "valid");
    if (pad_word && (transposed || !(same || valid))) {
        bad(r, "'padding' must be %san integer from 0 to 65536 or "
                           "two of them [height, width]", transposed ? "" : "\"same\", \"valid\", ");
    } else if (!pad_word) {
        get_pair(r, "padding", 0, 0, false, padding);
    }
    if (transposed) get_pair(r, "output_padding", 0, 0, false, output_padding);
    bool bias = get_bool(r, "bias", true);
    if (r->ok && (groups < 1 || groups > 65536)) {
        bad(r, "'groups' must be a positive integer");
    }
    if (!r->ok) return NULL;
    if (transposed) {
        nb_conv_transpose2d_opts o = {.stride = {stride[0], stride[1]}, .padding = {padding[0], padding[1]},
                                      .output_padding = {output_padding[0], output_padding[1]},
                                      .dilation = {dilation[0], dilation[1]}, .groups = (int)groups};
        return nb_conv_transpose2d_new(in, out, kernel[0], kernel[1], o, bias);
    }
    nb_conv2d_opts o = {.stride = {stride[0], stride[1]}, .padding = {padding[0], padding[1]}, .same = same,
                        .dilation = {dilation[0], dilation[1]}, .groups = (int)groups};
    return nb_conv2d_new(in, out, kernel[0], kernel[1], o, bias);
}

/* "maxpool2d" and "avgpool2d": {kernel, stride? (default: the kernel), padding?} */
static nb_module *build_pool(layer_reader *r, bool max) {
    nb_pool2d_opts o = {.ceil_mode = false};
    get_pair(r, "kernel", 1, 1, true, o.kernel);
    get_pair(r, "stride", 1, 0, false, o.stride);
    get_pair(r, "padding", 0, 0, false, o.padding);
    if (!r->ok) return NULL;
    return max ? nb_max_pool2d_new(o) : nb_avg_pool2d_new(o);
}

/* "upsample": {scale, mode?: "nearest" (default) or "bilinear"} */
static nb_module *build_upsample(layer_reader *r) {
    int64_t scale = get_int(r, "scale", 0, true);
    json_t *mode = json_object_get(r->obj, "mode");
    const char *name = mode ? json_string_value(mode) : "nearest";
    bool bilinear = name && !strcmp(name, "bilinear");
    if (r->ok && (!name || (!bilinear && strcmp(name, "nearest")))) {
        bad(r, "'mode' must be \"nearest\" or \"bilinear\"");
    }
    if (r->ok && scale > 64) {
        bad(r, "'scale' must be 1 to 64");
    }
    return r->ok ? nb_upsample_new((int)scale, bilinear) : NULL;
}

/* "unflatten": {shape: [1, 28, 28]}, the shape of each sample */
static nb_module *build_unflatten(layer_reader *r) {
    json_t *v = json_object_get(r->obj, "shape");
    size_t n = json_array_size(v);
    int64_t shape[NB_MAX_DIMS];
    bool ok = n >= 1 && n < NB_MAX_DIMS;
    for (size_t d = 0; ok && d < n; d++) {
        json_t *e = json_array_get(v, d);
        ok = json_is_integer(e) && json_integer_value(e) >= 1;
        if (ok) shape[d] = json_integer_value(e);
    }
    if (!ok) {
        bad(r, "'shape' must list 1 to %d positive sizes, like [1, 28, 28]", NB_MAX_DIMS - 1);
        return NULL;
    }
    return nb_unflatten_new((int)n, shape);
}

/* Blocks: "resnet_basic" {in, out, stride?}, "resnet_bottleneck" {in, mid, stride?},
 * "mobilenet" {in, out, stride?}, "unet" {in, out, base, depth} */
static nb_module *build_block(layer_reader *r, const char *type) {
    if (!strcmp(type, "unet")) {
        int64_t in = get_int(r, "in", 0, true), out = get_int(r, "out", 0, true);
        int64_t base = get_int(r, "base", 0, true), depth = get_int(r, "depth", 0, true);
        if (r->ok && depth > 64) {
            bad(r, "'depth' must be 1 to 8");
        }
        return r->ok ? nb_unet_new(in, out, base, (int)depth) : NULL;
    }
    bool bottleneck = !strcmp(type, "resnet_bottleneck");
    int64_t in = get_int(r, "in", 0, true), out = get_int(r, bottleneck ? "mid" : "out", 0, true);
    int64_t stride = get_int(r, "stride", 1, false);
    if (r->ok && (stride < 1 || stride > 64)) {
        bad(r, "'stride' must be 1 to 64");
    }
    if (!r->ok) return NULL;
    if (bottleneck) return nb_resnet_bottleneck_new(in, out, (int)stride);
    if (!strcmp(type, "mobilenet")) return nb_mobilenet_block_new(in, out, (int)stride);
    return nb_resnet_basic_block_new(in, out, (int)stride);
}

static nb_module *build_list(const json_t *layers, const char *where, nb_init_scheme init);

/* Draws the weights of the layer a spec object built with its scheme: a residual's shortcut
 * (its body was drawn layer by layer), nothing for a concat (its branches were), else m. */
static bool apply_init(nb_module *m, const char *type, const layer_reader *r) {
    if (r->init == NB_INIT_DEFAULT || !strcmp(type, "concat")) return true;
    nb_module *target = m;
    if (!strcmp(type, "residual")) { /* a shortcut exists when in != out */
        json_int_t in = json_integer_value(json_object_get(r->obj, "in"));
        if (in == json_integer_value(json_object_get(r->obj, "out"))) return true;
        target = nb_module_child(m, "shortcut");
    }
    if (nb_module_init(target, (nb_init_opts){.scheme = r->init}) == NB_OK) return true;
    return nb__fail_prefix("model %s", r->where), false;
}

/* "embedding": {num_embeddings, embedding_dim, padding_idx?, max_norm?} (ids in, torch's
 * nn.Embedding). */
static nb_module *build_embedding(layer_reader *r) {
    int64_t num = get_int(r, "num_embeddings", 0, true), dim = get_int(r, "embedding_dim", 0, true);
    json_t *pad = json_object_get(r->obj, "padding_idx");
    if (pad && !json_is_integer(pad)) bad(r, "'padding_idx' must be an integer");
    double max_norm = get_num(r, "max_norm", 0);
    if (!r->ok) return NULL;
    return nb_embedding_new(num, dim, (nb_embedding_opts){.padding = pad != NULL,
                                                          .padding_idx = json_integer_value(pad),
                                                          .max_norm = (float)max_norm});
}

/* "rnn", "lstm", "gru": {in, hidden, num_layers?, bias?, batch_first?, dropout?,
 * bidirectional?, nonlinearity? ("tanh" or "relu", rnn only)}; the layer's output (the last
 * layer's hidden states, [T, B, D H]) is what flows on. */
static nb_module *build_recurrent(layer_reader *r, const char *type) {
    int64_t in = get_int(r, "in", 0, true), hidden = get_int(r, "hidden", 0, true);
    nb_rnn_opts o = {.num_layers = (int)get_int(r, "num_layers", 1, false),
                     .no_bias = !get_bool(r, "bias", true),
                     .batch_first = get_bool(r, "batch_first", false),
                     .dropout = (float)get_num(r, "dropout", 0),
                     .bidirectional = get_bool(r, "bidirectional", false)};
    const char *nl = json_string_value(json_object_get(r->obj, "nonlinearity"));
    nb_rnn_mode mode = type[0] == 'l' ? NB_RNN_LSTM : type[0] == 'g' ? NB_RNN_GRU : NB_RNN_TANH;
    if (json_object_get(r->obj, "nonlinearity")) {
        if (mode != NB_RNN_TANH) bad(r, "'nonlinearity' is for an rnn only");
        else if (nl && !strcmp(nl, "relu")) mode = NB_RNN_RELU;
        else if (!nl || strcmp(nl, "tanh")) bad(r, "'nonlinearity' must be \"tanh\" or \"relu\"");
    }
    if (r->ok && o.num_layers < 1) bad(r, "'num_layers' must be at least 1");
    return r->ok ? nb_rnn_new(mode, in, hidden, o) : NULL;
}

/* "multihead_attention": {embed_dim, num_heads, dropout?, bias?, add_zero_attn?, batch_first?}
 * (self-attention: the output flows on); "transformer_encoder_layer": {d_model, nhead,
 * dim_feedforward?, dropout?, activation? ("relu" or "gelu"), layer_norm_eps?, batch_first?,
 * norm_first?} (torch's defaults, but dropout 0 unless given). */
static nb_module *build_attention(layer_reader *r, const char *type) {
    if (!strcmp(type, "multihead_attention")) {
        int64_t e = get_int(r, "embed_dim", 0, true), h = get_int(r, "num_heads", 0, true);
        nb_mha_opts o = {.dropout = (float)get_num(r, "dropout", 0),
                         .no_bias = !get_bool(r, "bias", true),
                         .add_zero_attn = get_bool(r, "add_zero_attn", false),
                         .batch_first = get_bool(r, "batch_first", false)};
        return r->ok ? nb_multihead_attention_new(e, h, o) : NULL;
    }
    int64_t d = get_int(r, "d_model", 0, true), h = get_int(r, "nhead", 0, true);
    nb_transformer_opts o = {.dim_feedforward = get_int(r, "dim_feedforward", 2048, false),
                             .dropout = (float)get_num(r, "dropout", 0),
                             .layer_norm_eps = (float)get_num(r, "layer_norm_eps", 1e-5),
                             .batch_first = get_bool(r, "batch_first", false),
                             .norm_first = get_bool(r, "norm_first", false)};
    const char *act = json_string_value(json_object_get(r->obj, "activation"));
    if (json_object_get(r->obj, "activation")) {
        if (act && !strcmp(act, "gelu")) o.gelu = true;
        else if (!act || strcmp(act, "relu")) bad(r, "'activation' must be \"relu\" or \"gelu\"");
    }
    return r->ok ? nb_transformer_encoder_layer_new(d, h, o) : NULL;
}

static nb_module *build_layer(const json_t *obj, const char *where, nb_init_scheme inherited) {
    layer_reader r = {where, obj, json_is_object(obj), inherited};
    const char *type = json_string_value(json_object_get(obj, "type"));
    nb_activation act;
    if (!r.ok || !type) return nb__fail(NB_ERR_ARG, "model %s: needs a \"type\"", where);
    r.init = get_init(obj, where, inherited, &r.ok);
    if (!r.ok) return NULL;
    nb_module *m = NULL;
    if (!strcmp(type, "flatten") && check_keys(&r, (const char *[]){"start_dim", "end_dim", NULL})) {
        int s = (int)get_int(&r, "start_dim", 1, false), e = (int)get_int(&r, "end_dim", -1, false);
        if (r.ok) m = nb_flatten_new(s, e);
    } else if (!strcmp(type, "linear") && check_keys(&r, (const char *[]){"in", "out", "bias", "init", NULL})) {
        int64_t in = get_int(&r, "in", 0, true), out = get_int(&r, "out", 0, true);
        bool bias = get_bool(&r, "bias", true);
        if (r.ok) m = nb_linear_new(in, out, bias);
    } else if (!strcmp(type, "dropout") && check_keys(&r, (const char *[]){"p", NULL})) {
        double p = get_num(&r, "p", 0.5);
        if (r.ok) m = nb_dropout_new((float)p);
    } else if ((!strcmp(type, "batchnorm1d") || !strcmp(type, "batchnorm2d")) &&
               check_keys(&r, (const char *[]){"features", "eps", "momentum", NULL})) {
        int64_t c = get_int(&r, "features", 0, true);
        double eps = get_eps(&r), mom = get_num(&r, "momentum", 0.1);
        nb_batchnorm_opts o = {.eps = (float)eps, .momentum = mom == 0 ? (float)NB_ZERO : (float)mom};
        if (r.ok) m = !strcmp(type, "batchnorm2d") ? nb_batchnorm2d_new(c, o) : nb_batchnorm1d_new(c, o);
    } else if (!strcmp(type, "conv2d") &&
               check_keys(&r, (const char *[]){"in", "out", "kernel", "stride", "padding", "dilation",
                                                "groups", "bias", "init", NULL})) {
        m = build_conv(&r, false);
    } else if (!strcmp(type, "conv_transpose2d") &&
               check_keys(&r, (const char *[]){"in", "out", "kernel", "stride", "padding", "output_padding",
                                                "dilation", "groups", "bias", "init", NULL})) {
        m = build_conv(&r, true);
    } else if ((!strcmp(type, "maxpool2d") || !strcmp(type, "avgpool2d")) &&
               check_keys(&r, (const char *[]){"kernel", "stride", "padding", NULL})) {
        m = build_pool(&r, type[0] == 'm');
    } else if (!strcmp(type, "global_avgpool2d") && check_keys(&r, (const char *[]){NULL})) {
        m = nb_global_avg_pool2d_new();
    } else if (!strcmp(type, "upsample") && check_keys(&r, (const char *[]){"scale", "mode", NULL})) {
        m = build_upsample(&r);
    } else if (!strcmp(type, "dropout2d") && check_keys(&r, (const char *[]){"p", NULL})) {
        double p = get_num(&r, "p", 0.5);
        if (r.ok) m = nb_dropout2d_new((float)p);
    } else if (!strcmp(type, "unflatten") && check_keys(&r, (const char *[]){"shape", NULL})) {
        m = build_unflatten(&r);
    } else if ((!strcmp(type, "resnet_basic") || !strcmp(type, "mobilenet")) &&
               check_keys(&r, (const char *[]){"in", "out", "stride", "init", NULL})) {
        m = build_block(&r, type);
    } else if (!strcmp(type, "resnet_bottleneck") && check_keys(&r, (const char *[]){"in", "mid", "stride", "init", NULL})) {
        m = build_block(&r, type);
    } else if (!strcmp(type, "unet") && check_keys(&r, (const char *[]){"in", "out", "base", "depth", "init", NULL})) {
        m = build_block(&r, type);
    } else if (!strcmp(type, "layernorm") && check_keys(&r, (const char *[]){"features", "eps", NULL})) {
        int64_t c = get_int(&r, "features", 0, true);
        double eps = get_eps(&r);
        if (r.ok) m = nb_layernorm_new(1, &c, (float)eps, true);
    } else if (!strcmp(type, "prelu") && check_keys(&r, (const char *[]){"num_parameters", "init", NULL})) {
        int64_t n = get_int(&r, "num_parameters", 1, false);
        double init = get_num(&r, "init", 0.25);
        if (r.ok) m = nb_prelu_new(n, (float)init);
    } else if (!strcmp(type, "bottleneck") && check_keys(&r, (const char *[]){"in", "rank", "out", "init", NULL})) {
        int64_t in = get_int(&r, "in", 0, true), k = get_int(&r, "rank", 0, true), out = get_int(&r, "out", 0, true);
        if (r.ok) m = nb_bottleneck_new(in, k, out);
    } else if (!strcmp(type, "residual") && check_keys(&r, (const char *[]){"body", "in", "out", "init", NULL})) {
        int64_t in = get_int(&r, "in", 0, true), out = get_int(&r, "out", 0, true);
        nb_module *body = r.ok ? build_list(json_object_get(obj, "body"), where, r.init) : NULL;
        if (body) m = nb_residual_linear_new(body, in, out);
        else r.ok = false;
    } else if (!strcmp(type, "concat") && check_keys(&r, (const char *[]){"branches", "dim", "init", NULL})) {
        const json_t *branches = json_object_get(obj, "branches");
        int dim = (int)get_int(&r, "dim", 1, false);
        size_t n = json_array_size(branches);
        nb_module *built[16];
        if (n < 1 || n > 16) bad(&r, "'branches' must list 1 to 16 layer lists");
        for (size_t i = 0; r.ok && i < n; i++) {
            built[i] = build_list(json_array_get(branches, i), where, r.init);
            if (!built[i]) {
                for (size_t k = 0; k < i; k++) nb_module_free(built[k]);
                r.ok = false;
            }
        }
        if (r.ok) m = nb_concat_new((int)n, built, dim);
    } else if (!strcmp(type, "embedding") &&
               check_keys(&r, (const char *[]){"num_embeddings", "embedding_dim", "padding_idx",
                                                "max_norm", NULL})) {
        m = build_embedding(&r);
    } else if ((!strcmp(type, "rnn") || !strcmp(type, "lstm") || !strcmp(type, "gru")) &&
               check_keys(&r, (const char *[]){"in", "hidden", "num_layers", "bias", "batch_first",
                                                "dropout", "bidirectional", "nonlinearity", NULL})) {
        m = build_recurrent(&r, type);
    } else if (!strcmp(type, "multihead_attention") &&
               check_keys(&r, (const char *[]){"embed_dim", "num_heads", "dropout", "bias",
                                                "add_zero_attn", "batch_first", NULL})) {
        m = build_attention(&r, type);
    } else if (!strcmp(type, "transformer_encoder_layer") &&
               check_keys(&r, (const char *[]){"d_model", "nhead", "dim_feedforward", "dropout",
                                                "activation", "layer_norm_eps", "batch_first",
                                                "norm_first", NULL})) {
        m = build_attention(&r, type);
} else if (nb_activation_parse(type, &act) && check_keys(&r, (const char *[]){"param", NULL})) {
        double p = get_num(&r, "param", 0);
        if (r.ok) m = nb_activation_new(act, (float)p);
    } else if (r.ok) {
        return nb__fail(NB_ERR_ARG, "model %s: unknown layer type '%s'", where, type);
    }
    if (!m && r.ok) nb__fail_prefix("model %s", where); /* the constructor's message */
    if (m && !apply_init(m, type, &r)) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

static nb_module *build_list(const json_t *layers, const char *where, nb_init_scheme init) {
    if (!json_is_array(layers) || json_array_size(layers) == 0)
        return nb__fail(NB_ERR_ARG, "model %s: expected a non-empty list of layers", where);
    nb_module *seq = nb_sequential_new(0, NULL);
    for (size_t i = 0; seq && i < json_array_size(layers); i++) {
        size_t cap = strlen(where) + 32; /* "WHERE > layer I" */
        char *sub = nb__alloc(cap);
        if (!sub) {
            nb_module_free(seq);
            return NULL;
        }
        snprintf(sub, cap, "%s%slayer %zu", where, *where ? " > " : "", i);
        nb_module *m = build_layer(json_array_get(layers, i), sub, init);
        nb__dealloc(sub, cap);
        if (!m || nb_sequential_append(seq, m) != NB_OK) {
            nb_module_free(seq);
            return NULL;
        }
    }
    return seq;
}

/* The JSON text of a model description, parsed; NULL (the error set) when it is not JSON. */
static json_t *parse(const char *op, const char *json) {
    if (!json) return nb__fail(NB_ERR_ARG, "%s: the model description is NULL", op);
    json_error_t err;
    json_t *spec = json_loads(json, JSON_REJECT_DUPLICATES, &err);
    if (!spec) nb__fail(NB_ERR_ARG, "%s: %d:%d: %s", op, err.line, token_column(&err), err.text);
    return spec;
}

nb_module *nb_model_from_json(const char *json) {
    json_t *spec = parse("model_from_json", json);
    if (!spec) return NULL;
    bool ok = true;
    nb_init_scheme init = get_init(spec, "(top level)", NB_INIT_DEFAULT, &ok);
    nb_module *m = ok ? build_list(json_object_get(spec, "layers"), "", init) : NULL;
    json_decref(spec);
    return m;
}

nb_module *nb_model_file_load(const char *path) {
    char *text = nb_model_file_read(path);
    nb_module *m = text ? nb_model_from_json(text) : NULL;
    if (text && !m) nb__fail_prefix("%s", path);
    free(text);
    return m;
}

/* The first layer that fixes the input size decides: a Linear-like layer by its "in", an
 * Unflatten by the product of its shape.  A convolution or pool met first takes images of any
 * size, and so does a model without either: -1. */
static int64_t input_features(const json_t *spec) {
    static const char *const spatial[] = {"conv2d", "conv_transpose2d", "maxpool2d", "avgpool2d",
                                          "global_avgpool2d", "upsample", "batchnorm2d", "dropout2d",
                                          "resnet_basic", "resnet_bottleneck", "mobilenet", "unet", NULL};
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(spec, "layers"), i, l) {
        const char *type = json_string_value(json_object_get(l, "type"));
        if (!type) continue;
        if (!strcmp(type, "linear") || !strcmp(type, "bottleneck") || !strcmp(type, "residual"))
            return json_integer_value(json_object_get(l, "in"));
        if (!strcmp(type, "unflatten")) { /* a malformed shape is left for the build to report */
            const json_t *shape = json_object_get(l, "shape");
            int64_t n = 1;
            size_t d;
            json_t *e;
            json_array_foreach(shape, d, e) {
                json_int_t v = json_integer_value(e);
                if (!json_is_integer(e) || v < 1 || n > ((int64_t)1 << 40) / v) return -1;
                n *= v;
            }
            return json_array_size(shape) ? n : -1;
        }
        for (int k = 0; spatial[k]; k++)
            if (!strcmp(type, spatial[k])) return -1;
    }
    return -1;
}

int64_t nb_model_input_features(const char *json) {
    json_t *spec = parse("model_input_features", json);
    int64_t n = spec ? input_features(spec) : -1;
    json_decref(spec);
    return n;
}
