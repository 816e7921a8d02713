/*
 * distill.c — `nabla distill`: knowledge distillation (Hinton, Vinyals and Dean 2015) as a
 * command.  A student is trained as `nabla train` trains a model — same flags, data, schedule,
 * files and per-epoch line, through the same run (cli_train) — except that its loss is
 * nb_distill_loss against a trained teacher's logits on each batch (nb_fit_opts.teacher: the
 * teacher runs in eval mode, without a graph).  This file adds the teacher's flags, loads the
 * teacher, checks that it has the student's number of outputs, and prints its test figures
 * before training, so the student's per-epoch test accuracy reads against them.
 */
#include "cli.h"

#include <string.h>

typedef struct {
    cli_train_ext ext; /* first: prepare gets it back as the whole */
    const char *weights, *model_file, *model, *act;
} distill_opts;

static const char *const distill_usage =
    "usage: nabla distill --teacher WEIGHTS [--teacher-model-file M.json | --teacher-model SPEC]\n"
    "                     [--student SPEC | --student-model-file M.json] [--T X] [--alpha X] [train's options]\n\n"
    "Trains a student on an MNIST-format data set (Fashion-MNIST by default) from a trained\n"
    "teacher's soft labels and from the true labels, with Hinton et al.'s loss\n"
    "    alpha T^2 KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) CE(student, labels)\n"
    "and writes what `nabla train` writes (OUT/model.safetensors is the student's, for `nabla eval`).\n"
    "The teacher's weights come from `nabla train` (their model description is in the file), or\n"
    "from anywhere with --teacher-model-file or --teacher-model.  It prints the teacher's test\n"
    "accuracy, then the student's per epoch.  Every option of `nabla train` applies to the student.\n"
    "Example: nabla distill --teacher runs/big/model.safetensors --student 784-32-10 --T 4 --alpha 0.9 \\\n"
    "    --epochs 10 --out runs/student";

/* The teacher's model (its spec from the flags, else from the weights' metadata) with its
 * weights, in eval mode; NULL after a message. */
static nb_module *load_teacher(const distill_opts *d) {
    if (d->model_file && d->model) {
        fprintf(stderr, "nabla distill: give --teacher-model-file or --teacher-model, not both\n");
        return NULL;
    }
    if (!d->model_file && !d->model) return load_trained_model(d->weights, NULL);
    json_t *spec = d->model_file ? spec_from_file(d->model_file) : spec_from_sizes(d->model, d->act, 0, false);
    nb_module *m = spec ? spec_build(spec) : NULL;
    json_decref(spec);
    if (m && nb_module_load(m, d->weights) != NB_OK) {
        cli_fail("loading the teacher's weights");
        nb_module_free(m);
        return NULL;
    }
    if (m) nb_module_train(m, false);
    return m;
}

/* cli_train's prepare: the teacher loaded, checked against the student, and its test figures. */
static bool prepare(cli_train_ext *ext, nb_module *student, const nb_dataset *train, nb_loader *test) {
    const distill_opts *d = (const distill_opts *)ext;
    if (!d->weights) {
        fprintf(stderr, "nabla distill: needs --teacher WEIGHTS (see --help)\n");
        return false;
    }
    ext->teacher = load_teacher(d);
    if (!ext->teacher) return false;
    int64_t teacher_out = cli_output_width(ext->teacher, train), student_out = cli_output_width(student, train);
    if (teacher_out < 0 || student_out < 0) return false;
    if (teacher_out != student_out) {
        fprintf(stderr, "nabla distill: the teacher %s has %lld outputs and the student %lld: the soft labels "
                "need the same classes\n", d->weights, (long long)teacher_out, (long long)student_out);
        return false;
    }
    nb_eval_result ev;
    if (nb_evaluate(ext->teacher, test, 0.0f, &ev) != NB_OK) return cli_fail("evaluating the teacher"), false;
    printf("teacher: %lld parameters  test loss %.4f acc %.2f%%\n", (long long)nb_module_num_elements(ext->teacher),
           ev.loss, 100 * ev.accuracy);
    fflush(stdout);
    return true;
}

int cmd_distill(int argc, char **argv) {
    distill_opts d = {.ext = {.usage = distill_usage, .title = "nabla distill", .out = "runs/distill", .model_flag = "student",
                              .model_file_flag = "student-model-file", .prepare = prepare,
                              .temperature = 4, .alpha = 0.9},
                      .act = "relu"};
    const cli_flag rows[] = {
        {"teacher", FLAG_STRING, &d.weights, "the teacher's weights (safetensors; from `nabla train`, or with "
         "--teacher-model-file / --teacher-model)"},
        {"teacher-model-file", FLAG_STRING, &d.model_file, "a JSON model file of the teacher"},
        {"teacher-model", FLAG_STRING, &d.model, "the teacher's layer sizes, input to output (an MLP)"},
        {"teacher-act", FLAG_STRING, &d.act, "the activation of --teacher-model"},
        {"T", FLAG_FLOAT, &d.ext.temperature, "the temperature that softens both models' logits", "(0, inf)"},
        {"alpha", FLAG_FLOAT, &d.ext.alpha, "the weight of the soft (teacher) term; 1 - alpha weighs the "
         "labels' cross-entropy", "[0, 1]"},
    };
    _Static_assert(sizeof rows / sizeof *rows <= CLI_EXT_MAX_FLAGS, "distill's rows fit cli_train's table");
    d.ext.flags = rows;
    d.ext.n_flags = (int)(sizeof rows / sizeof *rows);
    int rc = cli_train(argc, argv, &d.ext);
    nb_module_free(d.ext.teacher);
    return rc;
}
