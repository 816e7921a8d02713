/*
 * test_pos_cli.c — `nabla text tag` on a made-up corpus in Brown's format: ten documents (the
 * tenth held out) whose words take their tags from a fixed rule, which a small BiLSTM and a
 * small transformer both learn to 100% on the held-out document; the trained model predicts a
 * sentence; --task ner; and the command's errors.  argv[1] is the built command (CMake passes
 * it).
 */
#include "check.h"
#include "tmpdir.h"
#include "run_nabla.h"


/* Ten documents of 12 sentences each, made of "the/at ADJ/jj NOUN/nn VERB/vbd the/at NOUN/nn ./."
 * and "Fulton/np-tl County/nn-tl VERB/vbd ./." with words drawn from small lists; document 9
 * (the tenth) is held out. */
static void write_corpus(const char *pkg, int docs) {
    static const char *adj[] = {"big", "small", "red", "old"}, *noun[] = {"dog", "cat", "house", "tree"},
                      *verb[] = {"saw", "liked", "found", "ate"};
    mkdir(pkg, 0700);
    char path[700], text[8192];
    uint64_t s = 3;
    FILE *cats = fopen((snprintf(path, sizeof path, "%s/cats.txt", pkg), path), "w");
    for (int d = 0; d < docs; d++) {
        fprintf(cats, "cx%02d news\n", d + 1);
        int len = 0;
        for (int k = 0; k < 12; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            int a = (int)(s >> 40) % 4, b = (int)(s >> 44) % 4, c = (int)(s >> 48) % 4, e = (int)(s >> 52) % 4;
            if (k % 3 == 2)
                len += snprintf(text + len, sizeof text - (size_t)len, "\n\n\tFulton/np-tl County/nn-tl %s/vbd ./.\n",
                                verb[c]);
            else
                len += snprintf(text + len, sizeof text - (size_t)len,
                                "\n\n\tThe/at %s/jj %s/nn %s/vbd the/at %s/nn ./.\n", adj[a], noun[b], verb[c], noun[e]);
        }
        snprintf(path, sizeof path, "%s/cx%02d", pkg, d + 1);
        write_text(path, text);
    }
    fclose(cats);
}

static void convert(const char *pkg, const char *out) {
    char args[2048];
    snprintf(args, sizeof args, "convert-brown '%s' '%s'", pkg, out);
    CHECK_EQ_INT(run_nabla(args), 0);
}

static void tag_train(const char *model, const char *task, const char *out) {
    char args[2048];
    snprintf(args, sizeof args, "text tag train '%s' --model %s --task %s --out '%s' --epochs 12 --batch 8 "
             "--hidden 16 --heads 2 --word-dim 8 --suffix-dim 4 --min-count 1 --lr 0.02 --dropout 0",
             tpath("brown"), model, task, out);
    CHECK_EQ_INT(run_nabla(args), 0);
    if (*err_text && !strstr(out_text, "wrote")) fprintf(stderr, "%s", err_text);
}

static void tag_train_learns_the_made_up_corpus_and_predicts(void) {
    write_corpus(tpath("pkg"), 10);
    convert(tpath("pkg"), tpath("brown"));
    tag_train("bilstm", "pos", tpath("bilstm"));
    CHECK_STR_CONTAINS(out_text, "9 training documents, 108 sentences");
    CHECK_STR_CONTAINS(out_text, "held out every 10th document: 1, 12 sentences");
    CHECK_STR_CONTAINS(out_text, "epoch 12/12: ");
    CHECK_STR_CONTAINS(out_text, "held-out loss");
    CHECK_STR_CONTAINS(strstr(out_text, "epoch 12/12"), "accuracy 100.00% (unknown words");
    char args[2048];
    snprintf(args, sizeof args, "text tag predict '%s' 'The old cat found the Tree.'", tpath("bilstm"));
    CHECK_EQ_INT(run_nabla(args), 0);
    CHECK_STR_CONTAINS(out_text, "The/at old/jj cat/nn found/vbd the/at Tree/nn ./.");
    tag_train("transformer", "pos", tpath("transformer"));
    CHECK_STR_CONTAINS(strstr(out_text, "epoch 12/12"), "accuracy 100.00% (unknown words");
}

static void tag_train_ner_tags_title_runs(void) {
    tag_train("bilstm", "ner", tpath("ner"));
    CHECK_STR_CONTAINS(out_text, "entity tags (B, I, O)");
    CHECK_STR_CONTAINS(strstr(out_text, "epoch 12/12"), "F1 100.00%");
    char args[2048];
    snprintf(args, sizeof args, "text tag predict '%s' 'Fulton County ate .'", tpath("ner"));
    CHECK_EQ_INT(run_nabla(args), 0);
    CHECK_STR_CONTAINS(out_text, "Fulton/B County/I ate/O ./O");
}

static void tag_refuses_bad_arguments_and_files(void) {
    CHECK_EQ_INT(run_nabla("text tag"), 2);
    CHECK_STR_CONTAINS(err_text, "needs `train BROWN_DIR` or `predict DIR \"a sentence\"`");
    CHECK_EQ_INT(run_nabla("text tag train x --model gru"), 2);
    CHECK_STR_CONTAINS(err_text, "bilstm");
    CHECK_EQ_INT(run_nabla("text tag --help"), 0);
    CHECK_STR_CONTAINS(out_text, "--task");
    char args[2048];
    snprintf(args, sizeof args, "text tag train '%s' --out '%s'", tpath("missing"), tpath("o1"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "missing");
    write_corpus(tpath("small"), 3); /* no tenth document: nothing held out */
    convert(tpath("small"), tpath("small_brown"));
    snprintf(args, sizeof args, "text tag train '%s' --out '%s'", tpath("small_brown"), tpath("o2"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "no held-out documents (every 10th document is held out)");
    snprintf(args, sizeof args, "text tag predict '%s' 'a dog'", tpath("o3"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "model.safetensors");
    snprintf(args, sizeof args, "text tag predict '%s' '   '", tpath("bilstm"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "the sentence has no words");
}

int main(int argc, char **argv) {
    if (!nabla_from_args(argc, argv)) return 2;
    if (!tmpdir_make("nb_test_pos_cli")) return 1;
    tag_train_learns_the_made_up_corpus_and_predicts();
    tag_train_ner_tags_title_runs();
    tag_refuses_bad_arguments_and_files();
    run_nabla_end();
    tmpdir_remove();
    return check_summary();
}
