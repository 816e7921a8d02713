/*
 * test_gpt_cli.c — `nabla text gpt` (tools/nabla/text_gpt.c) on a corpus of ten small
 * documents made here: training writes the model, its tokenizer and per-step curves whose loss
 * falls; sampling is the same for a seed, the cache changes nothing, an empty or overlong
 * prompt works, and bad input (an unknown character, a file of another kind, missing
 * arguments) is refused by name.  argv[1] is the built command (CMake passes it).
 */
#include "check.h"
#include "tmpdir.h"
#include "run_nabla.h"

#include <unistd.h>

/* Ten documents of a few lower-case sentences (document 10 is the validation set), converted. */
static bool make_corpus(void) {
    const char *pkg = tpath("pkg");
    mkdir(pkg, 0700);
    char path[600], cats[400] = "", text[600];
    static const char *const lines[3] = {"\tthe/at cat/nn sat/vbd on/in the/at mat/nn ./.\n",
                                         "\ta/at dog/nn ran/vbd to/in the/at cat/nn ./.\n",
                                         "\tthe/at mat/nn was/bedz red/jj ./.\n"};
    for (int d = 0; d < 10; d++) {
        snprintf(path, sizeof path, "%s/c%02d", pkg, d);
        snprintf(text, sizeof text, "%s\n%s\n%s", lines[d % 3], lines[(d + 1) % 3], lines[(d + 2) % 3]);
        write_text(path, text);
        snprintf(cats + strlen(cats), sizeof cats - strlen(cats), "c%02d news\n", d);
    }
    snprintf(path, sizeof path, "%s/cats.txt", pkg);
    write_text(path, cats);
    mkdir(tpath("brown"), 0700);
    return nb_brown_convert(pkg, tpath("brown")) == NB_OK;
}

static void gpt_train_writes_a_model_and_falling_curves(void) {
    char args[2048];
    snprintf(args, sizeof args, "text gpt train '%s' --out '%s' --steps 40 --layers 1 --heads 2 --width 16 "
             "--context 8 --batch 8 --lr 0.01 --warmup 4 --eval-every 20 --eval-batches 1 --threads 1",
             tpath("brown"), tpath("run"));
    CHECK_EQ_INT(run_nabla(args), 0);
    CHECK_STR_CONTAINS(out_text, "GPT: character tokens");
    CHECK_STR_CONTAINS(out_text, "step 40/40: train loss");
    size_t n;
    char *csv = read_all(tpath("run/curves.csv"), &n), *svg = read_all(tpath("run/curves.svg"), &n);
    CHECK_STR_CONTAINS(csv, "step,train_loss,val_loss,train_perplexity,val_perplexity\n1,");
    CHECK_STR_CONTAINS(svg, ">Perplexity<");
    /* the mean of the first five steps' losses against the last five's */
    double first = 0, last = 0, loss;
    int rows = 0;
    for (char *line = csv ? strchr(csv, '\n') : NULL; line && line[1]; line = strchr(line + 1, '\n')) {
        int step;
        if (sscanf(line + 1, "%d,%lf", &step, &loss) != 2) break;
        rows++;
        if (step <= 5) first += loss / 5;
        if (step > 35) last += loss / 5;
    }
    CHECK_EQ_INT(rows, 40);
    CHECK(last < 0.6 * first);
    if (!(last < 0.6 * first)) fprintf(stderr, "  loss %g -> %g\n", first, last);
    free(csv), free(svg);
    CHECK(access(tpath("run/model.safetensors"), F_OK) == 0 && access(tpath("run/tokenizer.json"), F_OK) == 0);
}

/* `text gpt sample` with ARGS after the model; the exit status. */
static int sample(const char *more) {
    char args[2048];
    snprintf(args, sizeof args, "text gpt sample '%s' %s", tpath("run/model.safetensors"), more);
    return run_nabla(args);
}

static void gpt_sample_is_the_same_for_a_seed_with_or_without_the_cache(void) {
    CHECK_EQ_INT(sample("--prompt 'the cat' --tokens 30 --seed 3 --top-k 5 --top-p 0.9"), 0);
    char *a = strdup(out_text ? out_text : "");
    CHECK_EQ_INT(sample("--prompt 'the cat' --tokens 30 --seed 3 --top-k 5 --top-p 0.9 --no-cache"), 0);
    CHECK(out_text && !strcmp(a, out_text));
    CHECK(!strncmp(a, "the cat", 7) && strlen(a) > 8);
    CHECK_EQ_INT(sample("--prompt 'the cat' --tokens 30 --seed 4 --temperature 2"), 0);
    CHECK(out_text && strcmp(a, out_text));
    free(a);
    CHECK_EQ_INT(sample("--prompt 'the' --tokens 12 --compare-cache"), 0);
    CHECK_STR_CONTAINS(out_text, "ms/token with the key/value cache");
    CHECK_STR_CONTAINS(out_text, "same tokens: yes");
    CHECK_EQ_INT(sample("--tokens 5"), 0); /* an empty prompt starts from a line break */
    CHECK_EQ_INT(sample("--prompt 'the cat sat on the mat' --tokens 5"), 0);
    CHECK_STR_CONTAINS(out_text, "cropped to the last 8");
}

/* Byte-level BPE tokens: merges learnt on the training text, saved beside the model, and a
 * prompt of any bytes encodes (no character is unknown). */
static void gpt_trains_and_samples_on_bpe_tokens(void) {
    char args[2048];
    snprintf(args, sizeof args, "text gpt train '%s' --out '%s' --tokenizer bpe --bpe-vocab 280 --steps 6 "
             "--layers 1 --heads 2 --width 16 --context 8 --batch 4 --eval-every 3 --eval-batches 1 --warmup 0",
             tpath("brown"), tpath("bpe"));
    CHECK_EQ_INT(run_nabla(args), 0);
    CHECK_STR_CONTAINS(out_text, "GPT: BPE tokens (280 ids)");
    size_t n;
    char *merges = read_all(tpath("bpe/tokenizer.json"), &n);
    CHECK_STR_CONTAINS(merges, "\"nabla.bpe\"");
    free(merges);
    snprintf(args, sizeof args, "text gpt sample '%s' --prompt 'The Zebra' --tokens 10 --seed 2",
             tpath("bpe/model.safetensors"));
    CHECK_EQ_INT(run_nabla(args), 0);
    CHECK(out_text && !strncmp(out_text, "The Zebra", 9));
}

static void gpt_refuses_bad_input_by_name(void) {
    CHECK_EQ_INT(sample("--prompt 'the Cat' --tokens 5"), 1);
    CHECK_STR_CONTAINS(err_text, "the character 'C' (prompt character 4) is not in the model's vocabulary");
    CHECK_EQ_INT(sample("--tokens 5 --top-p 2"), 2);
    CHECK_STR_CONTAINS(err_text, "top-p");
    nb_module *lin = nb_linear_new(2, 2, true);
    CHECK(nb_module_save(lin, tpath("run/linear.safetensors"), 0, NULL, NULL) == NB_OK);
    nb_module_free(lin);
    char args[1024];
    snprintf(args, sizeof args, "text gpt sample '%s' --tokens 3", tpath("run/linear.safetensors"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "has no \"nabla.gpt\" description");
    CHECK_EQ_INT(run_nabla("text gpt"), 2);
    CHECK_EQ_INT(run_nabla("text gpt fly"), 2);
    CHECK_STR_CONTAINS(err_text, "unknown action 'fly'");
    snprintf(args, sizeof args, "text gpt train '%s'", tpath("brown"));
    CHECK_EQ_INT(run_nabla(args), 2);
    CHECK_STR_CONTAINS(err_text, "needs BROWN_DIR and --out DIR");
    snprintf(args, sizeof args, "text gpt train '%s' --out '%s' --width 16 --heads 3", tpath("brown"), tpath("r2"));
    CHECK_EQ_INT(run_nabla(args), 2);
    CHECK_STR_CONTAINS(err_text, "--heads 3 must divide --width 16");
    snprintf(args, sizeof args, "text gpt train '%s' --out '%s' --context 512", tpath("brown"), tpath("r2"));
    CHECK_EQ_INT(run_nabla(args), 1);
    CHECK_STR_CONTAINS(err_text, "too few for a context of 512");
}

int main(int argc, char **argv) {
    if (!nabla_from_args(argc, argv)) return 2;
    if (!tmpdir_make("nb_test_gpt_cli")) return 1;
    CHECK(make_corpus());
    gpt_train_writes_a_model_and_falling_curves();
    gpt_sample_is_the_same_for_a_seed_with_or_without_the_cache();
    gpt_trains_and_samples_on_bpe_tokens();
    gpt_refuses_bad_input_by_name();
    run_nabla_end();
    tmpdir_remove();
    return check_summary();
}
