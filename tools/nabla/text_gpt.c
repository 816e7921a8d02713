/*
 * text_gpt.c — `nabla text gpt`: a character- or BPE-level GPT (nabla/gpt.h) on the Brown
 * corpus, and sampling from it.
 *
 *   nabla text gpt train BROWN_DIR --out DIR [options]
 *     The text: each document's words joined by spaces, one document a line, from the compact
 *     form `nabla convert-brown` writes; every tenth document (the 10th, 20th, ...) is held out
 *     for validation, the rest train.  Tokens: characters (a vocabulary of those in the training
 *     text; an unseen one is <unk>) or byte-level BPE learnt on the training text.  Each step
 *     draws --batch windows of --context tokens at random places of the training stream (from
 *     --seed), and trains with AdamW and a linear warm-up then cosine decay to a tenth of --lr
 *     (nb_gpt_optim_new: LinearLR then CosineAnnealingLR in a SequentialLR).  Every --eval-every steps and at the
 *     end, the mean loss over --eval-batches fixed validation windows.  Writes, into DIR:
 *       model.safetensors  the weights, with the model's sizes and tokenizer in the metadata
 *                          "nabla.gpt" ({"vocab_size": 90, "context": 128, ...})
 *       tokenizer.json     the character vocabulary (nb_vocab_save) or the BPE merges
 *       curves.csv, curves.svg   loss and perplexity per step, train and validation
 *     (the model and the curves again at each evaluation, so a stopped run leaves both).
 *
 *   nabla text gpt sample DIR/model.safetensors --prompt TEXT --tokens N [options]
 *     Prints the prompt and its continuation: temperature, top-k, top-p, a seed (the same seed
 *     gives the same text), the key/value cache unless --no-cache; --compare-cache runs both
 *     and prints each one's milliseconds per token.  An empty prompt starts from a newline (the
 *     corpus's document break); one longer than the context keeps its last tokens; a character
 *     the vocabulary lacks is refused by name.
 */
#include "cli.h"

#include <libgen.h>
#include <math.h>
#include <string.h>
#include <time.h>

#define META_GPT "nabla.gpt"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- the tokenizer: characters through a vocabulary, or byte-level BPE */

typedef struct {
    bool bpe;
    nb_vocab *vocab; /* characters */
    nb_bpe *merges;  /* bpe */
} tokenizer;

static void tokenizer_free(tokenizer *t) {
    nb_vocab_free(t->vocab);
    nb_bpe_free(t->merges);
}

static int32_t tokenizer_size(const tokenizer *t) {
    return t->bpe ? nb_bpe_size(t->merges) : nb_vocab_size(t->vocab);
}

/* text's ids into *ids (malloc'd), their count into *n; strict: a character not in the
 * vocabulary is an error naming it (else it becomes <unk>).  false after a message. */
static bool encode(const tokenizer *t, const char *text, bool strict, int32_t **ids, int64_t *n) {
    size_t len = strlen(text);
    *ids = malloc(sizeof(int32_t) * (len + 1));
    if (!*ids) return fprintf(stderr, "nabla text gpt: out of memory\n"), false;
    if (t->bpe) {
        *n = nb_bpe_encode(t->merges, text, *ids, (int64_t)len + 1);
        return *n >= 0 || cli_fail("text gpt: encoding") == 0;
    }
    nb_tokens *chars = nb_tokenize_chars(text);
    if (!chars) return cli_fail("text gpt: encoding") == 0;
    bool ok = nb_vocab_encode(t->vocab, (const char *const *)chars->token, chars->n, *ids) == NB_OK;
    for (int64_t i = 0; ok && strict && i < chars->n; i++)
        if ((*ids)[i] < 2) {
            fprintf(stderr, "nabla: text gpt: the character '%s' (prompt character %lld) is not in "
                    "the model's vocabulary\n", chars->token[i], (long long)i);
            ok = false;
        }
    *n = chars->n;
    nb_tokens_free(chars);
    return ok;
}

/* The BPE text of ids[0..n) for printing (malloc'd): a sample may put bytes in an order that
 * is not UTF-8, so the ids are decoded in the shortest runs (at most 4 ids: a character's
 * bytes) that are UTF-8, and an id that starts none is printed as U+FFFD. */
static char *decode_bpe(const tokenizer *t, const int32_t *ids, int64_t n) {
    size_t cap = 16 * (size_t)n + 1, len = 0;
    char *s = malloc(cap);
    for (int64_t i = 0; s && i < n;) {
        char *piece = NULL;
        int64_t j = i + 1;
        for (; j <= n && j <= i + 4 && !(piece = nb_bpe_decode(t->merges, ids + i, j - i)); j++) nb_error_clear();
        const char *add = piece ? piece : "\xEF\xBF\xBD";
        size_t k = strlen(add);
        char *grown = len + k + 1 > cap ? realloc(s, cap = 2 * (len + k + 1)) : s;
        if (!grown) {
            free(s), nb_text_free(piece);
            s = NULL;
            break;
        }
        s = grown;
        memcpy(s + len, add, k + 1);
        len += k;
        nb_text_free(piece);
        i = piece ? j : i + 1;
    }
    if (!s) fprintf(stderr, "nabla text gpt: out of memory\n");
    return s;
}

/* The text of ids[0..n) (malloc'd), or NULL after a message. */
static char *decode(const tokenizer *t, const int32_t *ids, int64_t n) {
    if (t->bpe) return decode_bpe(t, ids, n);
    const char **tok = malloc(sizeof *tok * (size_t)(n ? n : 1));
    if (!tok || nb_vocab_decode(t->vocab, ids, n, tok) != NB_OK) return free(tok), cli_fail("text gpt: decoding"), NULL;
    size_t len = 1;
    for (int64_t i = 0; i < n; i++) len += ids[i] >= 2 ? strlen(tok[i]) : 0;
    char *s = malloc(len), *p = s;
    for (int64_t i = 0; s && i < n; i++)
        if (ids[i] >= 2) p = stpcpy(p, tok[i]); /* <pad> and <unk> print nothing */
    if (s) *p = 0;
    free(tok);
    return s;
}

/* ---- the corpus as text */

/* Documents' words joined by spaces, a document a line: those with d % 10 == 9 into *val, the
 * rest into *train (malloc'd). */
static bool brown_text(const nb_corpus_ids *c, char **train, char **val) {
    size_t cap = 0;
    for (int64_t i = 0; i < c->n_words; i++) cap += strlen(nb_vocab_token(c->word_vocab, c->words[i])) + 1;
    *train = malloc(cap + 1), *val = malloc(cap + 1);
    if (!*train || !*val) return fprintf(stderr, "nabla text gpt: out of memory\n"), false;
    char *end[2] = {*train, *val};
    for (int64_t d = 0; d < c->n_docs; d++) {
        const nb_corpus_doc *doc = &c->docs[d];
        char **p = &end[d % 10 == 9];
        int64_t w0 = c->sentence_start[doc->first_sentence];
        int64_t w1 = c->sentence_start[doc->first_sentence + doc->n_sentences];
        for (int64_t w = w0; w < w1; w++) {
            *p = stpcpy(*p, nb_vocab_token(c->word_vocab, c->words[w]));
            *(*p)++ = w + 1 < w1 ? ' ' : '\n';
        }
    }
    *end[0] = *end[1] = 0;
    return true;
}

/* ---- training */

typedef struct {
    const char *out, *tokenizer;
    int steps, layers, heads, width, context, batch, warmup, eval_every, eval_batches, bpe_vocab;
    int seed, threads;
    double lr, weight_decay, clip, dropout;
    bool sinusoidal;
} train_opts;

typedef struct {
    int32_t *ids;
    int64_t n;
} stream;

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A batch x, y [B, T] of windows of st starting at starts[b] (y one token further). */
static void batch_at(const stream *st, const int64_t *starts, int64_t b, int64_t t, int32_t *x, int32_t *y) {
    for (int64_t i = 0; i < b; i++) {
        memcpy(x + i * t, st->ids + starts[i], sizeof(int32_t) * (size_t)t);
        memcpy(y + i * t, st->ids + starts[i] + 1, sizeof(int32_t) * (size_t)t);
    }
}

/* The mean loss over o->eval_batches batches of validation windows spread evenly over it. */
static double eval_loss(nb_module *m, const stream *val, const train_opts *o, int32_t *x, int32_t *y) {
    int64_t b = o->batch, t = o->context, span = val->n - t - 1, k = (int64_t)o->eval_batches * b;
    int64_t *starts = malloc(sizeof(int64_t) * (size_t)b);
    double sum = 0;
    bool grad = nb_set_grad_enabled(false);
    nb_module_train(m, false);
    for (int e = 0; starts && e < o->eval_batches; e++) {
        for (int64_t i = 0; i < b; i++) starts[i] = span * (e * b + i) / k;
        batch_at(val, starts, b, t, x, y);
        nb_scope_begin();
        nb_tensor *l = nb_gpt_loss(m, nb_from_int32(x, 2, (int64_t[]){b, t}), nb_from_int32(y, 2, (int64_t[]){b, t}));
        sum += l ? nb_item(l) : NAN;
        nb_scope_end();
    }
    nb_module_train(m, true);
    nb_set_grad_enabled(grad);
    double mean = starts ? sum / o->eval_batches : NAN;
    free(starts);
    return mean;
}

static char *config_json(const nb_gpt_opts *g, bool bpe) {
    json_t *j = json_pack("{sI sI sI sI sI sI sb ss}", "vocab_size", (json_int_t)g->vocab_size,
                          "context", (json_int_t)g->context, "n_layer", (json_int_t)g->n_layer,
                          "n_head", (json_int_t)g->n_head, "n_embd", (json_int_t)g->n_embd,
                          "dim_feedforward", (json_int_t)g->dim_feedforward, "sinusoidal", g->sinusoidal,
                          "tokenizer", bpe ? "bpe" : "char");
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

static bool save_run(nb_module *m, const nb_curves *cv, const train_opts *o, const char *meta) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", o->out);
    if (nb_module_save(m, path, 1, (const char *[]){META_GPT}, (const char *[]){meta}) != NB_OK)
        return cli_fail("text gpt: saving the model") == 0;
    snprintf(path, sizeof path, "%s/curves.csv", o->out);
    if (nb_curves_write_csv(cv, path) != NB_OK) return cli_say() == 0;
    snprintf(path, sizeof path, "%s/curves.svg", o->out);
    return nb_curves_write_svg(cv, path, "nabla text gpt: loss and perplexity per step") == NB_OK || cli_say() == 0;
}

static bool make_tokenizer(tokenizer *tk, const char *text, const train_opts *o) {
    tk->bpe = !strcmp(o->tokenizer, "bpe");
    if (tk->bpe) {
        double t0 = now_s();
        tk->merges = nb_bpe_train(text, o->bpe_vocab);
        if (tk->merges) printf("BPE: %d ids learnt in %.1f s\n", nb_bpe_size(tk->merges), now_s() - t0);
        return tk->merges || cli_fail("text gpt: BPE") == 0;
    }
    nb_tokens *chars = nb_tokenize_chars(text);
    tk->vocab = chars ? nb_vocab_build((const char *const *)chars->token, chars->n, (nb_vocab_opts){0}) : NULL;
    nb_tokens_free(chars);
    return tk->vocab || cli_fail("text gpt: vocabulary") == 0;
}

static bool save_tokenizer(const tokenizer *tk, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    nb_status st = tk->bpe ? nb_bpe_save(tk->merges, path) : nb_vocab_save(tk->vocab, path);
    return st == NB_OK || cli_fail("text gpt: saving the tokenizer") == 0;
}

/* The steps; the curves get a row a step, validation figures on evaluation steps only. */
static int train_loop(nb_module *m, const stream *tr, const stream *val, const train_opts *o, const char *meta) {
    nb_sched *sched = NULL;
    nb_gpt_optim_opts go = {.steps = o->steps, .warmup = o->warmup < o->steps ? o->warmup : o->steps - 1,
                            .lr = o->lr, .weight_decay = o->weight_decay > 0 ? o->weight_decay : NB_ZERO};
    nb_optim *opt = nb_gpt_optim_new(m, &go, &sched);
    nb_curves *cv = nb_curves_new();
    int64_t b = o->batch, t = o->context;
    int32_t *x = malloc(sizeof(int32_t) * (size_t)(b * t)), *y = malloc(sizeof(int32_t) * (size_t)(b * t));
    int64_t *starts = malloc(sizeof(int64_t) * (size_t)b);
    int rc = opt && cv && x && y && starts && nb_curves_set_names(cv, "step", "perplexity", "val") == NB_OK ? 0 : cli_say();
    uint64_t rng = (uint64_t)o->seed;
    double t0 = now_s(), train_time = 0;
    for (int step = 1; rc == 0 && step <= o->steps; step++) {
        for (int64_t i = 0; i < b; i++) starts[i] = (int64_t)(splitmix(&rng) % (uint64_t)(tr->n - t - 1));
        batch_at(tr, starts, b, t, x, y);
        double loss = 0, ts = now_s();
        nb_scope_begin();
        nb_status st = nb_gpt_train_step(m, opt, sched, nb_from_int32(x, 2, (int64_t[]){b, t}),
                                         nb_from_int32(y, 2, (int64_t[]){b, t}), (float)o->clip, &loss);
        nb_scope_end();
        train_time += now_s() - ts;
        if (st != NB_OK) {
            rc = cli_fail("text gpt: training step");
            break;
        }
        bool eval = step % o->eval_every == 0 || step == o->steps;
        double vl = eval ? eval_loss(m, val, o, x, y) : NAN;
        nb_curves_add(cv, (float)loss, (float)vl, (float)exp(loss), (float)exp(vl));
        if (!eval) continue;
        printf("step %d/%d: train loss %.4f (perplexity %.2f), val loss %.4f (perplexity %.2f), lr %.2e, "
               "%.0f tokens/s, %.0f s\n", step, o->steps, loss, exp(loss), vl, exp(vl),
               nb_optim_get_lr(opt, 0), (double)step * b * t / train_time, now_s() - t0);
        fflush(stdout);
        if (!save_run(m, cv, o, meta)) rc = 1;
    }
    free(x), free(y), free(starts);
    nb_curves_free(cv);
    nb_sched_free(sched);
    nb_optim_free(opt);
    return rc;
}

static int run_train(const char *dir, const train_opts *o) {
    if (o->threads) nb_set_num_threads(o->threads);
    nb_corpus_ids *c = nb_brown_load(dir);
    if (!c) return cli_fail("text gpt");
    char *train_text = NULL, *val_text = NULL;
    bool ok = brown_text(c, &train_text, &val_text);
    nb_corpus_ids_free(c);
    tokenizer tk = {0};
    stream tr = {0}, val = {0};
    ok = ok && make_tokenizer(&tk, train_text, o) && encode(&tk, train_text, false, &tr.ids, &tr.n) &&
         encode(&tk, val_text, false, &val.ids, &val.n);
    free(train_text), free(val_text);
    if (ok && (tr.n < o->context + 2 || val.n < o->context + 2)) {
        fprintf(stderr, "nabla: text gpt: %lld training and %lld validation tokens are too few for a "
                "context of %d\n", (long long)tr.n, (long long)val.n, o->context);
        ok = false;
    }
    nb_module *m = NULL;
    char *meta = NULL;
    if (ok) {
        nb_manual_seed((uint64_t)o->seed);
        nb_gpt_opts g = {.vocab_size = tokenizer_size(&tk), .context = o->context, .n_layer = o->layers,
                         .n_head = o->heads, .n_embd = o->width, .dropout = (float)o->dropout,
                         .sinusoidal = o->sinusoidal};
        m = nb_gpt_new(g);
        if (!m) ok = cli_fail("text gpt") == 0;
        else g = nb_gpt_config(m), meta = config_json(&g, tk.bpe);
        if (m)
            printf("GPT: %s tokens (%d ids), %lld training and %lld validation tokens; %d layers, %d heads, "
                   "width %d, context %d; %lld parameters; batch %d, %d steps, %d threads\n",
                   tk.bpe ? "BPE" : "character", tokenizer_size(&tk), (long long)tr.n, (long long)val.n,
                   o->layers, o->heads, o->width, o->context, (long long)nb_module_num_elements(m),
                   o->batch, o->steps, nb_get_num_threads());
    }
    ok = ok && meta && make_dirs(o->out) && save_tokenizer(&tk, o->out);
    int rc = ok ? train_loop(m, &tr, &val, o, meta) : 1;
    if (rc == 0) printf("wrote %s/model.safetensors, tokenizer.json, curves.csv, curves.svg\n", o->out);
    free(meta);
    nb_module_free(m);
    free(tr.ids), free(val.ids);
    tokenizer_free(&tk);
    return rc;
}

static int cmd_train_gpt(int argc, char **argv) {
    train_opts o = {.out = "", .tokenizer = "char", .steps = 2000, .layers = 4, .heads = 4, .width = 128,
                    .context = 128, .batch = 32, .warmup = 100, .eval_every = 100, .eval_batches = 8,
                    .bpe_vocab = 512, .seed = 1, .lr = 1e-3, .weight_decay = 0.1, .clip = 1.0};
    const cli_flag flags[] = {
        {"out", FLAG_STRING, &o.out, "folder of the model, tokenizer and curves (required)"},
        {"steps", FLAG_INT, &o.steps, "training steps", "[1, inf)"},
        {"layers", FLAG_INT, &o.layers, "transformer blocks", "[1, 64]"},
        {"heads", FLAG_INT, &o.heads, "attention heads (dividing --width)", "[1, 64]"},
        {"width", FLAG_INT, &o.width, "embedding width", "[1, 4096]"},
        {"context", FLAG_INT, &o.context, "tokens per window (positions)", "[1, 8192]"},
        {"batch", FLAG_INT, &o.batch, "windows per step", "[1, 4096]"},
        {"lr", FLAG_FLOAT, &o.lr, "peak learning rate (AdamW)", "(0, 1]"},
        {"warmup", FLAG_INT, &o.warmup, "steps of linear warm-up before the cosine decay", "[0, inf)"},
        {"weight-decay", FLAG_FLOAT, &o.weight_decay, "AdamW's decay of matrices and embeddings", "[0, 1]"},
        {"clip", FLAG_FLOAT, &o.clip, "clip the gradients' global norm (0: off)", "[0, inf)"},
        {"dropout", FLAG_FLOAT, &o.dropout, "dropout in training", "[0, 1)"},
        {"sinusoidal", FLAG_BOOL, &o.sinusoidal, "sinusoidal positions instead of learned ones"},
        {"tokenizer", FLAG_STRING, &o.tokenizer, "tokens", NULL, "char bpe"},
        {"bpe-vocab", FLAG_INT, &o.bpe_vocab, "ids of the BPE vocabulary (with --tokenizer bpe)", "[258, 65536]"},
        {"eval-every", FLAG_INT, &o.eval_every, "steps between validation losses (and saves)", "[1, inf)"},
        {"eval-batches", FLAG_INT, &o.eval_batches, "validation batches per evaluation", "[1, 1000]"},
        {"seed", FLAG_INT, &o.seed, "random seed (weights and batches)", "[0, inf)"},
        {"threads", FLAG_INT, &o.threads, "threads (0: the library's default)", "[0, 256]"},
    };
    const char *usage = "usage: nabla text gpt train BROWN_DIR --out DIR [options]\n\n"
                        "Trains a GPT on the Brown corpus as `nabla convert-brown` wrote it.";
    const char *pos[1];
    int np = cli_parse(argc, argv, 3, flags, (int)(sizeof flags / sizeof flags[0]), usage, pos, 1);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np != 1 || !*o.out) return fprintf(stderr, "nabla text gpt train: needs BROWN_DIR and --out DIR (see --help)\n"), 2;
    if (o.width % o.heads)
        return fprintf(stderr, "nabla text gpt train: --heads %d must divide --width %d\n", o.heads, o.width), 2;
    return run_train(pos[0], &o);
}

/* ---- sampling */

/* The model and tokenizer of a model.safetensors written by `text gpt train`; NULL after a
 * message. */
static nb_module *load_gpt(const char *path, tokenizer *tk) {
    nb_safetensors *st = nb_safetensors_open(path);
    if (!st) return cli_fail("text gpt sample"), NULL;
    const char *meta = nb_safetensors_meta(st, META_GPT);
    json_t *j = meta ? json_loads(meta, 0, NULL) : NULL;
    nb_safetensors_close(st);
    json_int_t v = 0, ctx = 0, nl = 0, nh = 0, ne = 0, ff = 0;
    int sin = 0;
    const char *kind = NULL;
    if (!j || json_unpack(j, "{sI sI sI sI sI sI sb ss}", "vocab_size", &v, "context", &ctx, "n_layer", &nl,
                          "n_head", &nh, "n_embd", &ne, "dim_feedforward", &ff, "sinusoidal", &sin,
                          "tokenizer", &kind) != 0) {
        fprintf(stderr, "nabla: text gpt sample: %s has no \"" META_GPT "\" description (is it from "
                "`nabla text gpt train`?)\n", path);
        json_decref(j);
        return NULL;
    }
    tk->bpe = !strcmp(kind, "bpe");
    json_decref(j);
    char dir[4096], tpath[4200];
    snprintf(dir, sizeof dir, "%s", path);
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", dirname(dir));
    if (tk->bpe ? !(tk->merges = nb_bpe_load(tpath)) : !(tk->vocab = nb_vocab_load(tpath)))
        return cli_fail("text gpt sample: the tokenizer beside the model"), NULL;
    if (tokenizer_size(tk) != v) {
        fprintf(stderr, "nabla: text gpt sample: %s has %d ids but the model %lld\n", tpath,
                tokenizer_size(tk), (long long)v);
        return NULL;
    }
    nb_module *m = nb_gpt_new((nb_gpt_opts){.vocab_size = v, .context = ctx, .n_layer = nl, .n_head = nh,
                                            .n_embd = ne, .dim_feedforward = ff, .sinusoidal = sin});
    if (!m || nb_module_load(m, path) != NB_OK) return nb_module_free(m), cli_fail("text gpt sample"), NULL;
    return m;
}

typedef struct {
    const char *prompt;
    int tokens, top_k, seed, threads;
    double temperature, top_p;
    bool greedy, no_cache, compare;
} sample_opts;

static int run_sample(const char *path, const sample_opts *so) {
    if (so->threads) nb_set_num_threads(so->threads);
    tokenizer tk = {0};
    nb_module *m = load_gpt(path, &tk);
    int32_t *prompt = NULL, *out = malloc(sizeof(int32_t) * (size_t)(so->tokens ? so->tokens : 1));
    int64_t n = 0;
    /* an empty prompt starts at a document's start, the line break before it */
    bool ok = m && out && encode(&tk, *so->prompt ? so->prompt : "\n", true, &prompt, &n);
    nb_gpt_sample_opts g = {.temperature = (float)so->temperature, .greedy = so->greedy, .top_k = so->top_k,
                            .top_p = (float)so->top_p, .seed = (uint64_t)so->seed, .no_cache = so->no_cache};
    int64_t ctx = m ? nb_gpt_config(m).context : 0;
    if (ok && n > ctx)
        printf("(the prompt's %lld tokens are cropped to the last %lld, the context)\n", (long long)n, (long long)ctx);
    double t0 = now_s();
    ok = ok && (nb_gpt_generate(m, prompt, n, so->tokens, &g, out) == NB_OK || cli_fail("text gpt sample") == 0);
    double with = now_s() - t0;
    char *text = ok ? decode(&tk, out, so->tokens) : NULL;
    if (text) printf("%s%s\n", so->prompt, text);
    if (text && so->compare) { /* the other path, timed, and its tokens compared */
        int32_t *again = malloc(sizeof(int32_t) * (size_t)(so->tokens ? so->tokens : 1));
        g.no_cache = !g.no_cache;
        t0 = now_s();
        bool same = again && nb_gpt_generate(m, prompt, n, so->tokens, &g, again) == NB_OK &&
                    !memcmp(out, again, sizeof(int32_t) * (size_t)so->tokens);
        double without = now_s() - t0;
        if (so->no_cache) { double s = with; with = without; without = s; }
        printf("generation: %.3f ms/token with the key/value cache, %.3f ms/token without (%.2fx); "
               "same tokens: %s\n", 1e3 * with / so->tokens, 1e3 * without / so->tokens, without / with,
               same ? "yes" : "NO");
        free(again);
        if (!same) ok = false;
    }
    free(text), free(prompt), free(out);
    nb_module_free(m);
    tokenizer_free(&tk);
    return ok && text ? 0 : 1;
}

static int cmd_sample_gpt(int argc, char **argv) {
    sample_opts o = {.prompt = "", .tokens = 200, .temperature = 1.0, .seed = 1};
    const cli_flag flags[] = {
        {"prompt", FLAG_STRING, &o.prompt, "text to continue (empty: from a line break)"},
        {"tokens", FLAG_INT, &o.tokens, "tokens to generate", "[1, 1000000]"},
        {"temperature", FLAG_FLOAT, &o.temperature, "divides the logits (lower: surer)", "(0, 100]"},
        {"top-k", FLAG_INT, &o.top_k, "draw among the k likeliest tokens only (0: all)", "[0, inf)"},
        {"top-p", FLAG_FLOAT, &o.top_p, "draw among the likeliest tokens holding this mass (0: all)", "[0, 1]"},
        {"greedy", FLAG_BOOL, &o.greedy, "always the likeliest token"},
        {"seed", FLAG_INT, &o.seed, "the draws' seed: the same seed gives the same text", "[0, inf)"},
        {"no-cache", FLAG_BOOL, &o.no_cache, "recompute the whole window for each token"},
        {"compare-cache", FLAG_BOOL, &o.compare, "also run the other way; print ms/token of both"},
        {"threads", FLAG_INT, &o.threads, "threads (0: the library's default)", "[0, 256]"},
    };
    const char *usage = "usage: nabla text gpt sample MODEL --prompt TEXT --tokens N [options]\n\n"
                        "Continues a prompt with a model from `nabla text gpt train` (its tokenizer.json beside it).";
    const char *pos[1];
    int np = cli_parse(argc, argv, 3, flags, (int)(sizeof flags / sizeof flags[0]), usage, pos, 1);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np != 1) return fprintf(stderr, "nabla text gpt sample: needs MODEL (see --help)\n"), 2;
    return run_sample(pos[0], &o);
}

int cmd_text_gpt(int argc, char **argv) {
    const char *usage = "usage: nabla text gpt train BROWN_DIR --out DIR [options]\n"
                        "       nabla text gpt sample MODEL --prompt TEXT --tokens N [options]\n\n"
                        "`nabla text gpt train --help` and `nabla text gpt sample --help` list the options.\n";
    if (argc >= 3 && !strcmp(argv[2], "train")) return cmd_train_gpt(argc, argv);
    if (argc >= 3 && !strcmp(argv[2], "sample")) return cmd_sample_gpt(argc, argv);
    bool help = argc >= 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"));
    if (!help && argc >= 3) fprintf(stderr, "nabla text gpt: unknown action '%s'\n", argv[2]);
    fputs(usage, help ? stdout : stderr);
    return help ? 0 : 2;
}
