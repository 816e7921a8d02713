/*
 * test_spec.c — the model specs of the `nabla` command (tools/nabla/spec.c, compiled into this
 * program so that each function is called directly): errors in model files said precisely
 * (a missing file with the system's reason, a folder, JSON errors at the offending token's
 * line:column), values checked, and the "init" key (top level, per layer, "default") and
 * --init drawing the schemes of nb_module_init.  Messages go to stderr, captured into a file.
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

/* spec_from_file on a file holding text (NULL: no file is written), stderr captured. */
static json_t *load_text(const char *name, const char *text) {
    if (text) write_text(tpath(name), text);
    capture_begin();
    json_t *spec = spec_from_file(tpath(name));
    capture_end();
    return spec;
}

/* spec_build of JSON text, stderr captured. */
static nb_module *build_text(const char *text) {
    json_error_t err;
    json_t *spec = json_loads(text, 0, &err);
    if (!spec) {
        CHECK_FAIL_("test spec does not parse: %s", err.text);
        return NULL;
    }
    capture_begin();
    nb_module *m = spec_build(spec);
    capture_end();
    json_decref(spec);
    return m;
}

/* Issue 7, item 10: a folder given as --model-file was a JSON error, a missing file showed
 * "-1:-1:".  Each says what is wrong; JSON errors point at the offending token. */
static void model_file_errors_say_what_is_wrong(void) {
    CHECK(load_text("absent.json", NULL) == NULL);
    CHECK_STR_CONTAINS(captured, "absent.json: cannot open the model file: No such file or directory");
    CHECK(captured && !strstr(captured, "-1"));
    mkdir(tpath("folder.json"), 0755);
    CHECK(load_text("folder.json", NULL) == NULL);
    CHECK_STR_CONTAINS(captured, "folder.json: is a folder; --model-file takes a JSON file");
    CHECK(load_text("comma.json", "{\"layers\": [\n  {\"type\": \"linear\", \"in\": 3,, \"out\": 2}\n]}\n") == NULL);
    CHECK_STR_CONTAINS(captured, "comma.json:2:30: string or '}' expected near ','");
    CHECK(load_text("dup.json", "{\"layers\": [{\"type\": \"relu\", \"type\": \"tanh\"}]}") == NULL);
    CHECK_STR_CONTAINS(captured, "dup.json:1:30: duplicate object key near '\"type\"'");
    CHECK(load_text("word.json", "{\"layers\": [{\"type\": \"relu\", \"bias\": tru}]}") == NULL);
    CHECK_STR_CONTAINS(captured, "word.json:1:38: invalid token near 'tru'");
    CHECK(load_text("cut.json", "{\"layers\": [\n  {\"type\": \"relu\"}\n") == NULL);
    CHECK_STR_CONTAINS(captured, "cut.json:3:1: ']' expected near end of file");
    CHECK(load_text("top.json", "{\"layers\": [], \"optimizer\": \"sgd\"}") == NULL);
    CHECK_STR_CONTAINS(captured, "top.json: unknown key 'optimizer': a model file is {\"layers\": [...]} "
                                 "and nothing else");
    CHECK(load_text("nolayers.json", "{\"init\": \"xavier_normal\"}") == NULL);
    CHECK_STR_CONTAINS(captured, "nolayers.json: a model file is {\"layers\": [...]}");
    json_t *ok = load_text("ok.json", "{\"init\": \"kaiming_normal\", \"layers\": [{\"type\": \"relu\"}]}");
    CHECK(ok != NULL);
    json_decref(ok);
}

/* Item 10 again: model-file values are checked as the library's options are. */
static void model_file_values_are_checked(void) {
    CHECK(build_text("{\"layers\": [{\"type\": \"batchnorm1d\", \"features\": 4, \"eps\": -1}]}") == NULL);
    CHECK_STR_CONTAINS(captured, "model layer 0: 'eps' must be > 0, got -1");
    CHECK(build_text("{\"layers\": [{\"type\": \"layernorm\", \"features\": 4, \"eps\": 0}]}") == NULL);
    CHECK_STR_CONTAINS(captured, "model layer 0: 'eps' must be > 0, got 0");
    CHECK(build_text("{\"layers\": [{\"type\": \"batchnorm1d\", \"features\": 4, \"momentum\": 2}]}") == NULL);
    CHECK_STR_CONTAINS(captured, "model layer 0: BatchNorm1d: momentum must be in [0, 1]");
    CHECK(build_text("{\"layers\": [{\"type\": \"dropout\", \"p\": 1.5}]}") == NULL);
    CHECK_STR_CONTAINS(captured, "model layer 0: Dropout: probability has to be between 0 and 1, but got 1.5");
    CHECK(build_text("{\"layers\": [{\"type\": \"relu\", \"param\": 0.5}]}") == NULL);
    CHECK_STR_CONTAINS(captured, "model layer 0: ReLU: takes no parameter, got 0.5");
    CHECK(build_text("{\"layers\": [{\"type\": \"leaky_relu\", \"param\": 1e39}]}") == NULL);
    CHECK_STR_CONTAINS(captured, "LeakyReLU: negative_slope must be finite, got inf");
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
    CHECK_STR_CONTAINS(captured, "model (top level): 'init' must be one of default, xavier_uniform, "
                                 "xavier_normal, kaiming_uniform, kaiming_normal");
    CHECK(build_text("{\"layers\": [{\"type\": \"linear\", \"in\": 2, \"out\": 2, \"init\": 3}]}") == NULL);
    CHECK_STR_CONTAINS(captured, "model layer 0: 'init' must be one of");
    CHECK(build_text("{\"layers\": [{\"type\": \"relu\", \"init\": \"xavier_normal\"}]}") == NULL);
    CHECK_STR_CONTAINS(captured, "model layer 0: unknown key 'init'");

    /* --init sets the top-level key, overriding a model file's */
    json_t *spec = json_pack("{s:s,s:[{s:s,s:i,s:i}]}", "init", "xavier_normal", "layers", "type",
                             "linear", "in", 300, "out", 300);
    capture_begin();
    CHECK(!spec_set_init(spec, "he_normal"));
    capture_end();
    CHECK_STR_CONTAINS(captured, "--init 'he_normal': expected one of default, xavier_uniform");
    CHECK(spec_set_init(spec, "kaiming_normal"));
    nb_module *k = spec_build(spec);
    CHECK(k && fabs(tensor_std(nb_module_find(k, "0.weight"), &max_abs) - sqrt(2.0 / 300)) < 0.03 * sqrt(2.0 / 300));
    nb_module_free(k);
    json_decref(spec);
}

int main(void) {
    if (!tmpdir_make("nabla_test_spec")) return 1;
    model_file_errors_say_what_is_wrong();
    model_file_values_are_checked();
    init_key_draws_the_schemes_of_nb_module_init();
    free(captured);
    tmpdir_remove();
    return check_summary();
}
