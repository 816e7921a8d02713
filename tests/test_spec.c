/*
 * test_spec.c — model files (src/io/model_file.c, through the public nb_model_* functions):
 * errors said precisely (a missing file with the system's reason, a folder, JSON errors at the
 * offending token's line:column, the layer named in nested lists), values checked, and the
 * "init" key (top level, per layer, "default") drawing the schemes of nb_module_init.  Also the
 * command's short form (tools/nabla/spec.c, compiled into this program), whose messages go to
 * stderr, captured into a file.
 */
#include "check.h"
#include "tmpdir.h"

#include "../tools/nabla/spec.c"

#include <fcntl.h>
#include <unistd.h>

static char *captured; /* what the last captured call wrote to stderr */
static int saved_stderr;

static void capture_begin(void) {
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open(tpath("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
}

static void capture_end(void) {
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    free(captured);
    size_t n;
    captured = read_all(tpath("stderr.txt"), &n);
}

/* nb_model_file_read on a file holding text (NULL: no file is written); the text read is freed. */
static bool load_text(const char *name, const char *text) {
    if (text) write_text(tpath(name), text);
    char *got = nb_model_file_read(tpath(name));
    free(got);
    return got != NULL;
}

/* nb_model_from_json of JSON text. */
static nb_module *build_text(const char *text) { return nb_model_from_json(text); }

/* Issue 7, item 10: a folder given as --model-file was a JSON error, a missing file showed
 * "-1:-1:".  Each says what is wrong; JSON errors point at the offending token. */
static void model_file_errors_say_what_is_wrong(void) {
    CHECK(!load_text("absent.json", NULL));
    CHECK_EQ_INT(nb_error_code(), NB_ERR_IO);
    CHECK_STR_CONTAINS(nb_error_message(), "absent.json: cannot open the model file: No such file or directory");
    CHECK(!strstr(nb_error_message(), "-1"));
    mkdir(tpath("folder.json"), 0755);
    CHECK(!load_text("folder.json", NULL));
    CHECK_STR_CONTAINS(nb_error_message(), "folder.json: is a folder; a model file is a JSON file");
    CHECK(!load_text("comma.json", "{\"layers\": [\n  {\"type\": \"linear\", \"in\": 3,, \"out\": 2}\n]}\n"));
    CHECK_STR_CONTAINS(nb_error_message(), "comma.json:2:30: string or '}' expected near ','");
    CHECK(!load_text("dup.json", "{\"layers\": [{\"type\": \"relu\", \"type\": \"tanh\"}]}"));
    CHECK_STR_CONTAINS(nb_error_message(), "dup.json:1:30: duplicate object key near '\"type\"'");
    CHECK(!load_text("word.json", "{\"layers\": [{\"type\": \"relu\", \"bias\": tru}]}"));
    CHECK_STR_CONTAINS(nb_error_message(), "word.json:1:38: invalid token near 'tru'");
    CHECK(!load_text("cut.json", "{\"layers\": [\n  {\"type\": \"relu\"}\n"));
    CHECK_STR_CONTAINS(nb_error_message(), "cut.json:3:1: ']' expected near end of file");
    CHECK(!load_text("top.json", "{\"layers\": [], \"optimizer\": \"sgd\"}"));
    CHECK_STR_CONTAINS(nb_error_message(), "top.json: unknown key 'optimizer': a model file is "
                                           "{\"layers\": [...]} and nothing else");
    CHECK(!load_text("nolayers.json", "{\"init\": \"xavier_normal\"}"));
    CHECK_STR_CONTAINS(nb_error_message(), "nolayers.json: a model file is {\"layers\": [...]}");
    CHECK(load_text("ok.json", "{\"init\": \"kaiming_normal\", \"layers\": [{\"type\": \"relu\"}]}"));
    /* and the file loads in one call, a build error prefixed with the file */
    nb_module *m = nb_model_file_load(tpath("ok.json"));
    CHECK(m != NULL);
    nb_module_free(m);
    write_text(tpath("bad.json"), "{\"layers\": [{\"type\": \"linear\", \"in\": 3, \"out\": 2, \"bais\": true}]}");
    CHECK(nb_model_file_load(tpath("bad.json")) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "bad.json: model layer 0: unknown key 'bais'");
}

/* Item 10 again: model-file values are checked as the library's options are. */
static void model_file_values_are_checked(void) {
    CHECK(build_text("{\"layers\": [{\"type\": \"batchnorm1d\", \"features\": 4, \"eps\": -1}]}") == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "model layer 0: 'eps' must be > 0, got -1");
    CHECK(build_text("{\"layers\": [{\"type\": \"layernorm\", \"features\": 4, \"eps\": 0}]}") == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "model layer 0: 'eps' must be > 0, got 0");
    CHECK(build_text("{\"layers\": [{\"type\": \"batchnorm1d\", \"features\": 4, \"momentum\": 2}]}") == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "model layer 0: BatchNorm1d: momentum must be in [0, 1]");
    CHECK(build_text("{\"layers\": [{\"type\": \"dropout\", \"p\": 1.5}]}") == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "model layer 0: Dropout: probability has to be between 0 and 1, but got 1.5");
    CHECK(build_text("{\"layers\": [{\"type\": \"relu\", \"param\": 0.5}]}") == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "model layer 0: ReLU: takes no parameter, got 0.5");
    CHECK(build_text("{\"layers\": [{\"type\": \"leaky_relu\", \"param\": 1e39}]}") == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "LeakyReLU: negative_slope must be finite, got inf");
    /* "momentum": 0 means 0 (running statistics frozen), not the library's "default" */
    nb_module *frozen = build_text("{\"layers\": [{\"type\": \"batchnorm1d\", \"features\": 2, \"momentum\": 0}]}");
    CHECK(frozen != NULL);
    char *repr = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&repr, &len);
    nb_module_fprint(f, frozen);
    fclose(f);
    CHECK_STR_CONTAINS(repr, "momentum=0.0,");
    free(repr);
    nb_module_free(frozen);
    capture_begin();
    json_t *none = spec_from_sizes("784-64-10", "relu", NAN, false);
    capture_end();
    CHECK(none == NULL);
    CHECK_STR_CONTAINS(captured, "--dropout nan: must be a probability from 0 to 1");
}

/* Item 13: "init" at the top level draws every Linear; a layer's own "init" wins, "default"
 * keeps the constructor's draw; a residual's init reaches its body and its shortcut. */
static void init_key_draws_the_schemes_of_nb_module_init(void) {
    nb_manual_seed(4);
    nb_module *m = build_text(
        "{\"init\": \"kaiming_normal\", \"layers\": [{\"type\": \"linear\", \"in\": 400, \"out\": 300},"
        " {\"type\": \"relu\"}, {\"type\": \"linear\", \"in\": 300, \"out\": 200, \"init\": \"xavier_uniform\"},"
        " {\"type\": \"linear\", \"in\": 200, \"out\": 100, \"init\": \"default\"},"
        " {\"type\": \"residual\", \"in\": 100, \"out\": 50, \"init\": \"kaiming_uniform\","
        "  \"body\": [{\"type\": \"linear\", \"in\": 100, \"out\": 50}]}]}");
    CHECK(m != NULL);
    if (!m) return;
    double max_abs;
    CHECK_NEAR(tensor_std(nb_module_find(m, "0.weight"), &max_abs), sqrt(2.0 / 400), 0, 0.03);
    CHECK(tensor_std(nb_module_find(m, "0.bias"), &max_abs) == 0 && max_abs == 0);
    CHECK_NEAR(tensor_std(nb_module_find(m, "2.weight"), &max_abs), sqrt(2.0 / 500), 0, 0.03);
    CHECK(max_abs <= sqrt(6.0 / 500) * (1 + 1e-6));
    CHECK_NEAR(tensor_std(nb_module_find(m, "3.weight"), &max_abs), 1 / sqrt(200.0) / sqrt(3.0), 0, 0.03);
    CHECK(tensor_std(nb_module_find(m, "3.bias"), &max_abs) > 0); /* default: torch's bias kept */
    CHECK_NEAR(tensor_std(nb_module_find(m, "4.body.0.weight"), &max_abs), sqrt(2.0 / 100), 0, 0.05);
    CHECK_NEAR(tensor_std(nb_module_find(m, "4.shortcut.weight"), &max_abs), sqrt(2.0 / 100), 0, 0.05);
    nb_module_free(m);

    CHECK(build_text("{\"init\": \"he\", \"layers\": [{\"type\": \"relu\"}]}") == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "model (top level): 'init' must be one of default, xavier_uniform, "
                                 "xavier_normal, kaiming_uniform, kaiming_normal");
    CHECK(build_text("{\"layers\": [{\"type\": \"linear\", \"in\": 2, \"out\": 2, \"init\": 3}]}") == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "model layer 0: 'init' must be one of");
    CHECK(build_text("{\"layers\": [{\"type\": \"relu\", \"init\": \"xavier_normal\"}]}") == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "model layer 0: unknown key 'init'");

    /* --init sets the top-level key, overriding a model file's; the scheme's name is checked
     * when the model is built */
    json_t *spec = json_pack("{s:s,s:[{s:s,s:i,s:i}]}", "init", "xavier_normal", "layers", "type",
                             "linear", "in", 300, "out", 300);
    CHECK(spec_set_init(spec, "he_normal"));
    capture_begin();
    CHECK(spec_build(spec) == NULL);
    capture_end();
    CHECK_STR_CONTAINS(captured, "nabla: model (top level): 'init' must be one of default, xavier_uniform");
    CHECK(spec_set_init(spec, "kaiming_normal"));
    nb_module *k = spec_build(spec);
    CHECK(k && fabs(tensor_std(nb_module_find(k, "0.weight"), &max_abs) - sqrt(2.0 / 300)) < 0.03 * sqrt(2.0 / 300));
    nb_module_free(k);
    CHECK_EQ_INT(spec_input_features(spec), 300);
    json_decref(spec);
}

/* The input size a model takes: the first Linear-like layer's, an Unflatten's product, or any
 * (-1) when a convolution comes first. */
static void input_features_come_from_the_first_layer_that_fixes_them(void) {
    CHECK_EQ_INT(nb_model_input_features("{\"layers\": [{\"type\": \"flatten\"}, {\"type\": \"linear\", \"in\": 784, \"out\": 10}]}"), 784);
    CHECK_EQ_INT(nb_model_input_features("{\"layers\": [{\"type\": \"unflatten\", \"shape\": [1, 28, 28]}]}"), 784);
    CHECK_EQ_INT(nb_model_input_features("{\"layers\": [{\"type\": \"conv2d\", \"in\": 1, \"out\": 4, \"kernel\": 3},"
                                         " {\"type\": \"linear\", \"in\": 9, \"out\": 2}]}"), -1);
    CHECK_EQ_INT(nb_model_input_features("{\"layers\": ["), -1);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_ARG);
    CHECK(nb_model_from_json(NULL) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "model_from_json: the model description is NULL");
}

int main(void) {
    if (!tmpdir_make("nabla_test_spec")) return 1;
    model_file_errors_say_what_is_wrong();
    model_file_values_are_checked();
    init_key_draws_the_schemes_of_nb_module_init();
    input_features_come_from_the_first_layer_that_fixes_them();
    free(captured);
    tmpdir_remove();
    return check_summary();
}
