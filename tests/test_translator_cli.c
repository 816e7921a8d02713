/*
 * test_translator_cli.c — `nabla text translate`: a tiny translator trained for a few steps
 * writes its model and curves, `run` decodes with it and writes one heatmap cell per output
 * token, input symbol, head and layer (plus the heads' mean), and bad input (symbols, lengths,
 * files, flags) is refused with a message naming it.  argv[1] is the built command
 * (CMake passes it).
 */
#include "check.h"
#include "tmpdir.h"
#include "run_nabla.h"

#include <unistd.h>

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void train_writes_the_model_and_curves_and_run_decodes_with_heatmaps(void) {
    char args[2048];
    snprintf(args, sizeof args, "text translate train --task reverse --len 4 --symbols 4 --layers 1 --heads 2 "
             "--width 16 --steps 60 --batch 16 --eval-every 20 --eval-size 20 --lr 3e-3 --out '%s'", tpath("m"));
    CHECK_EQ_INT(run_nabla(args), 0);
    CHECK_STR_CONTAINS(out_text, "step    60");
    CHECK_STR_CONTAINS(out_text, "held-out (20 sequences, lengths 1-4): exact-sequence accuracy");
    CHECK_STR_CONTAINS(out_text, "the same tokens: yes");
    size_t n;
    char *csv = read_all(tpath("m/curves.csv"), &n);
    CHECK_EQ_INT(count(csv, "\n"), 4); /* the header and one row per evaluation */
    free(csv);
    CHECK(access(tpath("m/curves.svg"), R_OK) == 0);
    snprintf(args, sizeof args, "text translate run '%s' '3 1 2' --heatmap '%s'", tpath("m"), tpath("h.svg"));
    CHECK_EQ_INT(run_nabla(args), 0);
    CHECK_STR_CONTAINS(out_text, "reverse of: 3 1 2\n");
    /* "(T tokens in ...)" (EOS included, at most len + 1): 1 layer x (2 heads + mean) panels
     * of T output tokens x 3 input symbols */
    const char *said = out_text ? strstr(out_text, "\n(") : NULL;
    int tokens = 0;
    if (said) sscanf(said, "\n(%d tokens", &tokens);
    char *svg = read_all(tpath("h.svg"), &n);
    CHECK(tokens >= 1 && tokens <= 5);
    CHECK_EQ_INT(count(svg, "<title>"), 3 * 3 * tokens);
    CHECK_STR_CONTAINS(svg, "layer 1, mean of the heads");
    free(svg);
    snprintf(args, sizeof args, "text translate run '%s/model.safetensors' 312 --no-cache", tpath("m"));
    CHECK_EQ_INT(run_nabla(args), 0);
    CHECK_STR_CONTAINS(out_text, "without the KV cache");
}

static void run_names_bad_symbols_lengths_and_files(void) {
    char args[2048];
    snprintf(args, sizeof args, "text translate run '%s' '3 9 1'", tpath("m"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "'9' (byte 2 of the input) is not a symbol of this model, which knows 0123");
    snprintf(args, sizeof args, "text translate run '%s' '1 2 3 1 2'", tpath("m"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "longer than the 4 symbols");
    snprintf(args, sizeof args, "text translate run '%s' ' '", tpath("m"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "empty sequence");
    snprintf(args, sizeof args, "text translate run '%s' 1", tpath("none"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "none");
    nb_module *lin = nb_linear_new(2, 2, true); /* weights without the translator's options */
    CHECK(nb_module_save(lin, tpath("lin.safetensors"), 0, NULL, NULL) == NB_OK);
    nb_module_free(lin);
    snprintf(args, sizeof args, "text translate run '%s' 1", tpath("lin.safetensors"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "has no translator options");
    snprintf(args, sizeof args, "text translate run '%s' 1 --heatmap '%s'", tpath("m"), tpath("no/dir/h.svg"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "no/dir/h.svg");
}

static void translate_refuses_bad_actions_and_flags(void) {
    CHECK_EQ_INT(run_nabla("text translate"), 2);
    CHECK_STR_CONTAINS(err_text, "usage: nabla text translate train");
    CHECK_EQ_INT(run_nabla("text translate fly"), 2);
    CHECK_STR_CONTAINS(err_text, "unknown action 'fly'");
    CHECK_EQ_INT(run_nabla("text translate train --task reverse"), 2);
    CHECK_STR_CONTAINS(err_text, "needs --out DIR");
    CHECK_EQ_INT(run_nabla("text translate train --task copy --out x"), 2);
    CHECK_STR_CONTAINS(err_text, "reverse sort");
    CHECK_EQ_INT(run_nabla("text translate run"), 2);
    CHECK_STR_CONTAINS(err_text, "needs MODEL and a sequence");
    char args[1024];
    snprintf(args, sizeof args, "text translate train --width 10 --heads 4 --steps 1 --out '%s'", tpath("bad"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "d_model 10 must be divisible by nhead 4");
    CHECK_EQ_INT(run_nabla("text --help"), 0);
    CHECK_STR_CONTAINS(out_text, "translate");
}

int main(int argc, char **argv) {
    if (!nabla_from_args(argc, argv)) return 2;
    if (!tmpdir_make("nb_test_translator_cli")) return 1;
    train_writes_the_model_and_curves_and_run_decodes_with_heatmaps();
    run_names_bad_symbols_lengths_and_files();
    translate_refuses_bad_actions_and_flags();
    run_nabla_end();
    tmpdir_remove();
    return check_summary();
}
