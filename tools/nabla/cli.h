/*
 * cli.h — shared pieces of the `nabla` command: a table-driven flag parser (every flag is a
 * row, so --help is generated from the same table that parses), model specs, and the
 * subcommands.
 */
#ifndef NB_CLI_H
#define NB_CLI_H

#include "nabla.h"
#include "nabla/data.h"
#include "nabla/optim.h"
#include "nabla/quant.h"

#include <jansson.h>

typedef enum { FLAG_INT, FLAG_FLOAT, FLAG_STRING, FLAG_BOOL } flag_kind;

/* A row: {"epochs", FLAG_INT, &o.epochs, "passes over the training set", "[1, inf)"}.
 * Numbers must be finite and inside `range` ("[lo, hi]", a parenthesis excludes its bound,
 * "inf" is no bound; NULL: any int, any finite float).  A string with `choices` (words separated
 * by one space) must be one of them.  --help shows both. */
/* Rows leave out the fields they do not use (C zero-fills them), so a row from before ranges
 * existed still reads {"name", FLAG_BOOL, &v, "help"}; the warning that would flag each one is
 * off in the command's sources. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
typedef struct {
    const char *name; /* without the leading dashes */
    flag_kind kind;
    void *value;      /* int *, double *, const char **, bool * */
    const char *help;
    const char *range;
    const char *choices;
} cli_flag;

/* Parses argv[first..] against the table; positional arguments go to positional[] (at most
 * max_pos).  Returns the number of positionals, or -1 after printing a message (unknown flag
 * with the nearest one suggested, missing value, a value out of range or not among the choices,
 * with what is allowed) to stderr; -2 when -h or --help was asked (the help was printed). */
int cli_parse(int argc, char **argv, int first, const cli_flag *flags, int n_flags,
              const char *usage, const char **positional, int max_pos);
void cli_help(FILE *out, const char *usage, const cli_flag *flags, int n_flags);
/* Prints "nabla: <what>: <library error>" and returns 1, for `return cli_fail("...")`. */
int cli_fail(const char *what);
/* Prints "nabla: <library error>" (whose message already says what failed) and returns 1. */
int cli_say(void);
/* mkdir -p: makes path and any missing parent folders; false with errno set. */
bool make_dirs(const char *path);

/* ---- model specs: the JSON description of a model file (see nabla/train.h), which builds the
 * module (nb_model_from_json) and is stored beside the weights. */
/* "784-64-64-10" with an activation between layers (and optional dropout / batchnorm) ->
 * a JSON spec (the caller json_decref's it); NULL after printing a message. */
json_t *spec_from_sizes(const char *sizes, const char *act, double dropout, bool batchnorm);
/* A model file, checked by nb_model_file_read; NULL after printing its message. */
json_t *spec_from_file(const char *path);
/* Sets the spec's top-level "init" (--init, whose choices the flag table checks). */
bool spec_set_init(json_t *spec, const char *name);
/* Builds the module a spec describes; NULL after printing the library's message naming the layer. */
nb_module *spec_build(const json_t *spec);
/* Input features the model takes (nb_model_input_features; -1 if any size). */
int64_t spec_input_features(const json_t *spec);

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_convert_mnist(int argc, char **argv);
int cmd_convert_brown(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_kan(int argc, char **argv);
int cmd_text(int argc, char **argv);
/* `nabla text` tasks, one file each (text_*.c); argv[1] is the task's name. */
int cmd_text_word2vec(int argc, char **argv);
int cmd_text_genre(int argc, char **argv);
int cmd_text_gpt(int argc, char **argv);
int cmd_text_tag(int argc, char **argv);
int cmd_text_translate(int argc, char **argv);

/* What another command adds to `nabla train`'s run (`nabla distill`, tools/nabla/distill.c):
 * its usage and title, flag rows after train's (at most CLI_EXT_MAX_FLAGS), the names the
 * model's --model / --model-file take, and a teacher for nb_fit_opts, which prepare loads and
 * checks once the data, the model and the test loader exist (false after a message). */
#define CLI_EXT_MAX_FLAGS 16
typedef struct cli_train_ext {
    const char *usage, *title, *out; /* out: the default of --out */
    const cli_flag *flags;
    int n_flags;
    const char *model_flag, *model_file_flag;
    bool (*prepare)(struct cli_train_ext *ext, nb_module *model, const nb_dataset *train, nb_loader *test);
    nb_module *teacher; /* set by prepare; the caller of cli_train frees it */
    double temperature, alpha;
} cli_train_ext;
/* `nabla train` (ext NULL), or with what ext adds; the exit status. */
int cli_train(int argc, char **argv, cli_train_ext *ext);

/* Reports a data set that could not be read from dir: the library's message, which names the
 * file; when dir is Fashion-MNIST's package folder and it is missing, how to install it. */
void cli_data_failed(const char *dir);
/* Every class label of ds below the model's outputs (learnt from one forward pass of a zero
 * sample in eval mode); false after printing the file and sample of the first bad label, or why
 * the forward pass failed. */
bool cli_check_labels(nb_module *m, const nb_dataset *ds);
/* The number of outputs C of a model whose output for one sample of ds is [1, C] (0 for another
 * shape), from that forward pass; -1 after printing why the pass failed. */
int64_t cli_output_width(nb_module *m, const nb_dataset *ds);

/* What `nabla train` records beside the weights in model.safetensors's metadata. */
#define META_SPEC "nabla.model"     /* the JSON model spec */
#define META_EPOCH "nabla.epoch"    /* the epochs done when the weights were taken */
#define META_INPUT "nabla.input"    /* a sample's shape, "[28,28]" */
#define META_CLASSES "nabla.classes" /* class names, ["T-shirt/top", ...] (absent: unknown) */
#define META_QAT "nabla.qat"         /* a QAT model's bit widths (nb_qat_prepare's options) */
#define META_QUANTIZED "nabla.quantized" /* `nabla quantize`'s options: {"bits": 8, ...} */

typedef struct {
    long long epoch; /* -1: not recorded */
    json_t *input;   /* shape array, or NULL */
    json_t *classes; /* array of names, or NULL */
} trained_info;

/* Reads weights written by `nabla train` (model.safetensors with its "nabla.model" spec) and
 * builds the model in eval mode; NULL after printing a message.  info (may be NULL) gets the
 * rest of the metadata; the caller releases it with trained_info_clear. */
nb_module *load_trained_model(const char *weights_path, trained_info *info);
void trained_info_clear(trained_info *info);
/* The four metadata entries `nabla train` writes that path holds, for a command that writes a
 * changed model: keys[i] (static) and values[i] (malloc'd: the caller frees them), at most 4;
 * the count, or -1 after printing why the file could not be read. */
int trained_meta_copy(const char *path, const char **keys, char **values);
/* `nabla quantize` (quantize.c): the options' metadata (malloc'd JSON), and the quantized
 * structure they describe made of a model built from the spec (false after a message). */
char *quantized_meta(const nb_ptq_opts *o);
bool quantized_structure(nb_module *m, const json_t *meta);
#endif
