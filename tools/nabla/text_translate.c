/*
 * text_translate.c — `nabla text translate`: the course's translator, an encoder-decoder
 * transformer (nb_seq2seq_*) on a task the program makes up: reverse a sequence of symbols, or
 * sort it.
 *   train --task reverse|sort --out DIR ...   trains on fresh random batches (teacher forcing,
 *       padding ignored), measures greedy decoding on held-out sequences every --eval-every
 *       steps, and writes DIR/model.safetensors (with its options in the metadata),
 *       DIR/curves.csv and DIR/curves.svg (the curves of `nabla train`, one row per evaluation).
 *   run MODEL "3 1 4 1 5"                      decodes one sequence greedily with the KV cache
 *       and writes its cross-attention as SVG heatmaps (--heatmap): per head and averaged, for
 *       every decoder layer.
 * Symbols are the characters 0-9, a-z, A-Z (--symbols of them); id 0 pads, 1 is BOS, 2 EOS, and
 * symbol k is id 3 + k.
 */
#include "cli.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define META_SEQ2SEQ "nabla.seq2seq" /* the options, task and alphabet, as JSON */
static const char ALPHABET[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
#define MAX_SYMBOLS 62

typedef struct {
    const char *task, *out;
    int len, symbols, layers, heads, width, ff, steps, batch, eval_every, eval_size, seed;
    double lr, dropout;
    bool norm_first;
} train_opts;

static double seconds_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

static nb_seq2seq_task task_of(const char *name) {
    return strcmp(name, "sort") ? NB_SEQ2SEQ_REVERSE : NB_SEQ2SEQ_SORT;
}

/* ---- evaluation on held-out sequences */

typedef struct {
    double loss, exact, token, cached_s, plain_s;
    bool agree; /* decoding without the cache chose the same tokens (measured when asked) */
} eval_result;

/* a and b hold the same ids (both int32 [B, T] of one shape). */
static bool same_ids(nb_tensor *a, nb_tensor *b) {
    int64_t n = nb_numel(a);
    if (n != nb_numel(b)) return false;
    float *x = malloc(sizeof(float) * 2 * (size_t)n);
    bool same = x && nb_copy_to(a, x, n) == NB_OK && nb_copy_to(b, x + n, n) == NB_OK &&
                !memcmp(x, x + n, sizeof(float) * (size_t)n);
    free(x);
    return same;
}

/* Loss and greedy accuracies on the held-out batch; with compare, also decoding without the
 * cache, timed, and whether it agrees.  false after printing the library's message. */
static bool evaluate(nb_module *m, nb_tensor *src, nb_tensor *in, nb_tensor *out, bool compare,
                     eval_result *r) {
    nb_module_train(m, false);
    bool was = nb_set_grad_enabled(false);
    nb_scope_begin();
    struct timespec t0;
    nb_tensor *loss = nb_seq2seq_loss(m, src, in, out);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    nb_tensor *pred = loss ? nb_seq2seq_greedy(m, src, NULL) : NULL;
    r->cached_s = seconds_since(&t0);
    bool ok = pred && nb_seq2seq_accuracy(pred, out, &r->exact, &r->token) == NB_OK;
    r->loss = ok ? nb_item(loss) : NAN;
    if (ok && compare) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        nb_tensor *plain = nb_seq2seq_greedy(m, src, &(nb_seq2seq_decode_opts){.no_cache = true});
        r->plain_s = seconds_since(&t0);
        ok = plain != NULL;
        r->agree = ok && same_ids(plain, pred);
    }
    nb_scope_end();
    nb_set_grad_enabled(was);
    nb_module_train(m, true);
    return ok || cli_fail("text translate: evaluation");
}

/* ---- train */

static char *meta_json(const nb_seq2seq_opts *o, const train_opts *t) {
    json_t *j = json_pack("{s:s, s:i, s:i, s:I, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "task",
                          t->task, "symbols", t->symbols, "len", t->len, "vocab", (json_int_t)o->vocab,
                          "bos", o->bos, "eos", o->eos, "d_model", (json_int_t)o->d_model, "nhead",
                          (json_int_t)o->nhead, "num_encoder_layers", (json_int_t)o->num_encoder_layers,
                          "num_decoder_layers", (json_int_t)o->num_decoder_layers, "dim_feedforward",
                          (json_int_t)o->dim_feedforward, "max_len", (json_int_t)o->max_len,
                          "norm_first", o->norm_first);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* The held-out batch: eval_size sequences of every length 1 .. len, drawn with a seed the
 * training batches never use. */
static bool held_out(nb_module *m, const train_opts *t, nb_tensor **src, nb_tensor **in, nb_tensor **out) {
    return nb_seq2seq_task_batch(task_of(t->task), nb_seq2seq_opts_of(m), t->eval_size, 1, t->len,
                                 ~(uint64_t)t->seed, src, in, out) == NB_OK ||
           cli_fail("text translate: held-out set") == 0;
}

static bool save(nb_module *m, const train_opts *t, const nb_curves *c) {
    char path[4096], *meta = meta_json(nb_seq2seq_opts_of(m), t);
    const char *keys[1] = {META_SEQ2SEQ}, *values[1] = {meta};
    snprintf(path, sizeof path, "%s/model.safetensors", t->out);
    bool ok = meta && nb_module_save(m, path, 1, keys, values) == NB_OK;
    free(meta);
    snprintf(path, sizeof path, "%s/curves.csv", t->out);
    ok = ok && nb_curves_write_csv(c, path) == NB_OK;
    char title[128];
    snprintf(title, sizeof title, "translator: %s, lengths 1-%d (test accuracy: exact sequences)", t->task, t->len);
    snprintf(path, sizeof path, "%s/curves.svg", t->out);
    ok = ok && nb_curves_write_svg(c, path, title) == NB_OK;
    if (ok) printf("wrote %s/model.safetensors, curves.csv, curves.svg\n", t->out);
    return ok || cli_fail("text translate: saving") == 0;
}

/* The training loop: Adam on fresh batches, an evaluation every eval_every steps. */
static bool train_loop(nb_module *m, const train_opts *t, nb_curves *curves, nb_tensor *const *held) {
    int n = nb_module_num_params(m);
    nb_tensor **params = malloc(sizeof *params * (size_t)n);
    nb_optim *opt = params ? nb_adam_new(nb_module_parameters(m, params, n), params, (nb_adam_opts){.lr = t->lr}) : NULL;
    free(params); /* the optimiser keeps its own references */
    if (!opt) return cli_fail("text translate: optimiser") == 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double sum = 0;
    int since = 0;
    bool ok = true;
    for (int step = 1; ok && step <= t->steps; step++) {
        nb_scope_begin();
        nb_tensor *src, *in, *out;
        ok = nb_seq2seq_task_batch(task_of(t->task), nb_seq2seq_opts_of(m), t->batch, 1, t->len,
                                   (uint64_t)t->seed * 1000003u + (uint64_t)step, &src, &in, &out) == NB_OK;
        nb_tensor *loss = ok ? nb_seq2seq_loss(m, src, in, out) : NULL;
        ok = loss && nb_optim_zero_grad(opt) == NB_OK && nb_backward(loss) == NB_OK && nb_optim_step(opt) == NB_OK;
        if (ok) sum += nb_item(loss), since++;
        nb_scope_end();
        if (!ok) cli_fail("text translate: training");
        eval_result r;
        if (ok && (step % t->eval_every == 0 || step == t->steps)) {
            ok = evaluate(m, held[0], held[1], held[2], false, &r);
            if (ok) {
                printf("step %5d  loss %.4f  held-out: loss %.4f, exact %.1f%%, token %.1f%%  (%.1f s)\n", step,
                       sum / since, r.loss, 100 * r.exact, 100 * r.token, seconds_since(&t0));
                fflush(stdout);
                nb_curves_add(curves, (float)(sum / since), (float)r.loss, NAN, (float)r.exact);
                sum = 0, since = 0;
            }
        }
    }
    nb_optim_free(opt);
    return ok;
}

static int run_train(const train_opts *t) {
    nb_manual_seed((uint64_t)t->seed);
    nb_seq2seq_opts o = {.vocab = 3 + t->symbols, .bos = 1, .eos = 2, .d_model = t->width,
                         .nhead = t->heads, .num_encoder_layers = t->layers, .num_decoder_layers = t->layers,
                         .dim_feedforward = t->ff, .max_len = t->len + 1, .dropout = (float)t->dropout,
                         .norm_first = t->norm_first};
    if (!make_dirs(t->out)) return fprintf(stderr, "nabla: text translate: cannot make the folder %s\n", t->out), 1;
    nb_module *m = nb_seq2seq_new(o);
    if (!m) return cli_fail("text translate");
    printf("translator (%s): %d symbols, lengths 1-%d, %d+%d layers, %d heads, width %d, %lld parameters\n",
           t->task, t->symbols, t->len, t->layers, t->layers, t->heads, t->width,
           (long long)nb_module_num_elements(m));
    nb_tensor *held[3] = {NULL};
    nb_curves *curves = nb_curves_new();
    bool ok = curves && held_out(m, t, &held[0], &held[1], &held[2]) && train_loop(m, t, curves, held);
    eval_result r;
    if (ok && (ok = evaluate(m, held[0], held[1], held[2], true, &r)))
        printf("held-out (%d sequences, lengths 1-%d): exact-sequence accuracy %.2f%%, token accuracy %.2f%%\n"
               "greedy decoding of them: %.3f s with the KV cache, %.3f s without (%.1fx); the same tokens: %s\n",
               t->eval_size, t->len, 100 * r.exact, 100 * r.token, r.cached_s, r.plain_s,
               r.plain_s / r.cached_s, r.agree ? "yes" : "NO");
    ok = ok && save(m, t, curves);
    for (int i = 0; i < 3; i++) nb_tensor_free(held[i]);
    nb_curves_free(curves);
    nb_module_free(m);
    return ok ? 0 : 1;
}

static int cmd_train_translator(int argc, char **argv) {
    train_opts t = {.task = "reverse", .out = "", .len = 8, .symbols = 10, .layers = 2, .heads = 4, .width = 64,
                    .ff = 0, .steps = 1500, .batch = 64, .eval_every = 250, .eval_size = 500, .seed = 1,
                    .lr = 1e-3};
    const cli_flag flags[] = {
        {"task", FLAG_STRING, &t.task, "what the translator learns", NULL, "reverse sort"},
        {"out", FLAG_STRING, &t.out, "folder for model.safetensors and the curves (required)"},
        {"len", FLAG_INT, &t.len, "longest sequence (lengths are drawn from 1 to it)", "[1, 256]"},
        {"symbols", FLAG_INT, &t.symbols, "size of the alphabet (0-9, then a-z, A-Z)", "[1, 62]"},
        {"layers", FLAG_INT, &t.layers, "encoder layers, and as many decoder layers", "[1, 16]"},
        {"heads", FLAG_INT, &t.heads, "attention heads (they must divide --width)", "[1, 64]"},
        {"width", FLAG_INT, &t.width, "d_model", "[1, 4096]"},
        {"ff", FLAG_INT, &t.ff, "feed-forward width (0: 4 x width)", "[0, 16384]"},
        {"dropout", FLAG_FLOAT, &t.dropout, "dropout in the layers", "[0, 1)"},
        {"norm-first", FLAG_BOOL, &t.norm_first, "pre-norm layers"},
        {"steps", FLAG_INT, &t.steps, "training steps (a fresh random batch each)", "[1, inf)"},
        {"batch", FLAG_INT, &t.batch, "sequences per step", "[1, 65536]"},
        {"lr", FLAG_FLOAT, &t.lr, "Adam's learning rate", "(0, 10]"},
        {"eval-every", FLAG_INT, &t.eval_every, "steps between evaluations (one curve point each)", "[1, inf)"},
        {"eval-size", FLAG_INT, &t.eval_size, "held-out sequences", "[1, 100000]"},
        {"seed", FLAG_INT, &t.seed, "random seed (weights and batches)", "[0, inf)"},
    };
    const char *usage = "usage: nabla text translate train --task reverse|sort --out DIR [options]\n\n"
                        "Trains an encoder-decoder transformer to reverse or sort sequences of symbols.";
    int np = cli_parse(argc, argv, 3, flags, (int)(sizeof flags / sizeof flags[0]), usage, NULL, 0);
    if (np < 0) return np == -2 ? 0 : 2;
    if (!*t.out) return fprintf(stderr, "nabla text translate train: needs --out DIR (see --help)\n"), 2;
    return run_train(&t);
}

/* ---- run */

/* The model at path (a file, or a folder holding model.safetensors) in eval mode, and its
 * metadata; NULL after a message. */
static nb_module *load_translator(const char *path, json_t **meta) {
    char file[4096];
    struct stat st;
    snprintf(file, sizeof file, stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? "%s/model.safetensors" : "%s", path);
    nb_safetensors *f = nb_safetensors_open(file);
    if (!f) return cli_say(), NULL;
    const char *text = nb_safetensors_meta(f, META_SEQ2SEQ);
    *meta = text ? json_loads(text, 0, NULL) : NULL;
    nb_safetensors_close(f);
    json_int_t v[8] = {0};
    int symbols = 0, len = 0, bos = 0, eos = 0, norm_first = 0;
    if (!*meta || json_unpack(*meta, "{s:i, s:i, s:I, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "symbols",
                              &symbols, "len", &len, "vocab", &v[0], "bos", &bos, "eos", &eos, "d_model", &v[1],
                              "nhead", &v[2], "num_encoder_layers", &v[3], "num_decoder_layers", &v[4],
                              "dim_feedforward", &v[5], "max_len", &v[6], "norm_first", &norm_first) != 0 ||
        symbols < 1 || symbols > MAX_SYMBOLS) {
        fprintf(stderr, "nabla: text translate: %s has no translator options (metadata \"%s\"): was it "
                "written by `nabla text translate train`?\n", file, META_SEQ2SEQ);
        return NULL;
    }
    nb_seq2seq_opts o = {.vocab = v[0], .bos = bos, .eos = eos, .d_model = v[1], .nhead = v[2],
                         .num_encoder_layers = v[3], .num_decoder_layers = v[4], .dim_feedforward = v[5],
                         .max_len = v[6], .norm_first = norm_first};
    nb_module *m = nb_seq2seq_new(o);
    if (!m || nb_module_load(m, file) != NB_OK) {
        nb_module_free(m);
        return cli_fail("text translate"), NULL;
    }
    nb_module_train(m, false);
    return m;
}

/* The ids of the symbols of text (separated by spaces, or written together), at most max;
 * the count, or -1 after naming what is wrong. */
static int parse_symbols(const char *text, int symbols, int max, int32_t *ids) {
    int n = 0;
    for (const char *p = text; *p; p++) {
        if (*p == ' ' || *p == ',') continue;
        const char *at = memchr(ALPHABET, *p, (size_t)symbols);
        if (!at) {
            fprintf(stderr, "nabla: text translate: '%c' (byte %ld of the input) is not a symbol of this "
                    "model, which knows %.*s\n", *p, (long)(p - text), symbols, ALPHABET);
            return -1;
        }
        if (n == max) {
            fprintf(stderr, "nabla: text translate: the input is longer than the %d symbols this model "
                    "was trained on\n", max);
            return -1;
        }
        ids[n++] = 3 + (int32_t)(at - ALPHABET);
    }
    if (!n) fprintf(stderr, "nabla: text translate: the input is an empty sequence\n");
    return n ? n : -1;
}

static const char *token_name(int32_t id, char buf[2]) {
    if (id == 2) return "<eos>";
    if (id < 3) return id == 1 ? "<bos>" : "<pad>";
    buf[0] = ALPHABET[id - 3], buf[1] = '\0';
    return buf;
}

/* Panels for each decoder layer: its heads, then their mean; rows the output tokens, columns
 * the input symbols. */
static bool write_heatmap(const char *path, nb_tensor *w, const int32_t *in, int n_in, const int32_t *out,
                          int n_out) {
    int64_t l = nb_shape(w)[0], h = nb_shape(w)[2], cell = (int64_t)n_out * n_in;
    float *v = malloc(sizeof(float) * (size_t)(l * (h + 1) * cell));
    nb_heatmap *panels = malloc(sizeof *panels * (size_t)(l * (h + 1)));
    char (*names)[2] = malloc(sizeof *names * (size_t)(n_in + n_out)), (*titles)[64] = malloc(64 * (size_t)(l * (h + 1)));
    const char **rows = malloc(sizeof *rows * (size_t)(n_in + n_out)), **cols = rows + n_out;
    bool ok = v && panels && names && titles && rows && nb_copy_to(w, v, l * h * cell) == NB_OK;
    for (int i = 0; ok && i < n_out; i++) rows[i] = token_name(out[i], names[i]);
    for (int j = 0; ok && j < n_in; j++) cols[j] = token_name(in[j], names[n_out + j]);
    for (int64_t k = 0; ok && k < l; k++) {
        float *mean = v + l * h * cell + k * cell; /* after every head's values */
        for (int64_t c = 0; c < cell; c++) {
            mean[c] = 0;
            for (int64_t hh = 0; hh < h; hh++) mean[c] += v[(k * h + hh) * cell + c] / (float)h;
        }
        for (int64_t hh = 0; hh <= h; hh++) {
            int64_t p = k * (h + 1) + hh;
            if (hh < h) snprintf(titles[p], 64, "layer %d, head %d", (int)k + 1, (int)hh + 1);
            else snprintf(titles[p], 64, "layer %d, mean of the heads", (int)k + 1);
            panels[p] = (nb_heatmap){.values = hh < h ? v + (k * h + hh) * cell : mean, .rows = n_out,
                                     .cols = n_in, .row_labels = rows, .col_labels = cols, .title = titles[p]};
        }
    }
    ok = ok && nb_heatmap_write_svg(path, (int)(l * (h + 1)), panels,
                                    "cross-attention: output tokens (rows) over input symbols (columns)") == NB_OK;
    if (ok) printf("wrote %s\n", path);
    else cli_fail("text translate: heatmap");
    free(v), free(panels), free(names), free(titles), free(rows);
    return ok;
}

static int run_one(const char *model, const char *text, const char *heatmap, bool no_cache) {
    json_t *meta = NULL;
    nb_module *m = load_translator(model, &meta);
    if (!m) return json_decref(meta), 1;
    int symbols = (int)json_integer_value(json_object_get(meta, "symbols"));
    int len = (int)json_integer_value(json_object_get(meta, "len"));
    const char *task = json_string_value(json_object_get(meta, "task"));
    int32_t ids[257], out[258];
    int n = parse_symbols(text, symbols, len < 256 ? len : 256, ids), rc = 1;
    nb_tensor *w = NULL, *src = n > 0 ? nb_from_int32(ids, 2, (int64_t[]){1, n}) : NULL;
    nb_seq2seq_decode_opts o = {.no_cache = no_cache, .cross_attention = *heatmap ? &w : NULL};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    nb_tensor *pred = src ? nb_seq2seq_greedy(m, src, &o) : NULL;
    double s = seconds_since(&t0);
    int64_t t = pred ? nb_shape(pred)[1] : 0;
    float got[258];
    if (pred && nb_copy_to(pred, got, t) == NB_OK) {
        char name[2];
        printf("%s of:", task ? task : "output");
        for (int i = 0; i < n; i++) printf(" %s", token_name(ids[i], name));
        printf("\n        ");
        for (int64_t i = 0; i < t; i++) out[i] = (int32_t)got[i], printf(" %s", token_name(out[i], name));
        printf("\n(%lld tokens in %.2f ms, %s)\n", (long long)t, 1e3 * s, no_cache ? "without the KV cache" : "KV cache");
        rc = *heatmap && !write_heatmap(heatmap, w, ids, n, out, (int)t) ? 1 : 0;
    } else if (n > 0) cli_fail("text translate");
    nb_tensor_free(pred), nb_tensor_free(src), nb_tensor_free(w);
    nb_module_free(m);
    json_decref(meta);
    return rc;
}

static int cmd_run_translator(int argc, char **argv) {
    const char *heatmap = "";
    bool no_cache = false;
    const cli_flag flags[] = {
        {"heatmap", FLAG_STRING, &heatmap, "write the cross-attention here as SVG heatmaps"},
        {"no-cache", FLAG_BOOL, &no_cache, "decode without the KV cache (the same output, slower)"},
    };
    const char *usage = "usage: nabla text translate run MODEL \"3 1 4 1 5\" [options]\n\n"
                        "Decodes one sequence with a model of `nabla text translate train` (its folder or\n"
                        "its model.safetensors).";
    const char *pos[2];
    int np = cli_parse(argc, argv, 3, flags, (int)(sizeof flags / sizeof flags[0]), usage, pos, 2);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np != 2) return fprintf(stderr, "nabla text translate run: needs MODEL and a sequence (see --help)\n"), 2;
    return run_one(pos[0], pos[1], heatmap, no_cache);
}

int cmd_text_translate(int argc, char **argv) {
    const char *usage = "usage: nabla text translate train --task reverse|sort --out DIR [options]\n"
                        "       nabla text translate run MODEL \"3 1 4 1 5\" [--heatmap out.svg]\n";
    if (argc < 3 || !strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))
        return fputs(usage, argc < 3 ? stderr : stdout), argc < 3 ? 2 : 0;
    if (!strcmp(argv[2], "train")) return cmd_train_translator(argc, argv);
    if (!strcmp(argv[2], "run")) return cmd_run_translator(argc, argv);
    fprintf(stderr, "nabla text translate: unknown action '%s' (train or run)\n%s", argv[2], usage);
    return 2;
}
