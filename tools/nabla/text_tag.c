/*
 * text_tag.c — `nabla text tag`: part-of-speech tagging and named entities on the Brown corpus
 * (the compact form `nabla convert-brown` writes) with the library's Tagger (nabla/tagger.h).
 *
 *   train BROWN_DIR --model bilstm|transformer --out DIR [--task pos|ner] ...
 *       Every 10th document is held out (nb_brown_is_held_out); the rest trains.  Targets are
 *       the base tags (nb_brown_base_tag: fw-, -tl, -hl, -nc left out, compound tags kept whole)
 *       or, with --task ner, the B/I/O entity tags read off proper nouns and title words
 *       (nb_brown_entity_tags).  A token's features: its lower-cased word, its last 3 and last
 *       2 characters (vocabularies of the training documents, rarer than --min-count: <unk>),
 *       and its shape (nb_word_shape).  Sentences are bucketed by length into batches
 *       (nb_bucket_order, padded by nb_seq_batch_make), and nb_fit runs the epochs through a
 *       step of our own (the masked loss of nb_tagger_loss): after each epoch the held-out token
 *       accuracy, on the words the vocabulary does not know too, and for ner the entity
 *       tokens' F1.  OUT gets model.safetensors (the tagger's options in its metadata) and the
 *       vocabularies.
 *   predict DIR "a sentence"
 *       Splits the sentence into words (punctuation apart) and prints each as word/TAG.
 *
 * Every loader sample is one bucketed batch (its index): the loader shuffles the batches each
 * epoch, and the step builds nothing, the batches' tensors being made once.
 */
#include "cli.h"

#include <ctype.h>
#include <string.h>
#include <time.h>

enum { F_WORD, F_SUFFIX3, F_SUFFIX2, F_SHAPE, N_FEATURES };
static const char *const VOCAB_FILES[N_FEATURES - 1] = {"words.vocab.json", "suffix3.vocab.json",
                                                        "suffix2.vocab.json"};
#define META_TAGGER "nabla.tagger"

typedef struct {
    const char *model, *task, *out;
    int epochs, batch, hidden, layers, heads, word_dim, suffix_dim, min_count, seed;
    double lr, dropout, clip;
} tag_opts;

/* A word's features as strings: lower-cased, its suffixes; and its shape. */
typedef struct {
    char *text[N_FEATURES - 1];
    int32_t shape;
} word_feats;

static void word_feats_free(word_feats *w) {
    for (int k = 0; k < N_FEATURES - 1; k++) free(w->text[k]);
}

static bool word_feats_make(word_feats *w, const char *word) {
    size_t n = strlen(word) + 1;
    memset(w, 0, sizeof *w);
    for (int k = 0; k < N_FEATURES - 1; k++)
        if (!(w->text[k] = malloc(n))) return false;
    for (size_t i = 0; i < n; i++) w->text[F_WORD][i] = (char)tolower((unsigned char)word[i]);
    w->shape = nb_word_shape(word);
    return nb_word_suffix(word, 3, w->text[F_SUFFIX3], n) == NB_OK &&
           nb_word_suffix(word, 2, w->text[F_SUFFIX2], n) == NB_OK;
}

/* The features' ids of one word, from the vocabularies. */
static void word_ids(nb_vocab *const *vocabs, const word_feats *w, int32_t *ids) {
    for (int k = 0; k < N_FEATURES - 1; k++) ids[k] = nb_vocab_id(vocabs[k], w->text[k]);
    ids[F_SHAPE] = w->shape;
}

/* ---- the corpus, ready for batches */

typedef struct {
    nb_corpus_ids *c;
    word_feats *words;      /* [word_vocab size]: each distinct word's features */
    nb_vocab *vocab[N_FEATURES - 1], *tags;
    int32_t *feat, *label;  /* [n_words * N_FEATURES], [n_words] */
    int64_t n_train_docs, n_held_docs, longest;
} tag_corpus;

static void tag_corpus_free(tag_corpus *t) {
    for (int32_t i = 0; t->words && i < nb_vocab_size(t->c->word_vocab); i++) word_feats_free(&t->words[i]);
    free(t->words);
    for (int k = 0; k < N_FEATURES - 1; k++) nb_vocab_free(t->vocab[k]);
    nb_vocab_free(t->tags);
    free(t->feat);
    free(t->label);
    nb_corpus_ids_free(t->c);
}

/* Each token's target as a string: its base tag, or "O", "B", "I" for ner (by sentence). */
static bool token_targets(const tag_corpus *t, bool ner, char (*out)[32]) {
    static const char *const BIO[] = {"O", "B", "I"};
    const nb_corpus_ids *c = t->c;
    const char *tags[256];
    int32_t bio[256];
    for (int64_t s = 0; s < c->n_sentences; s++) {
        int64_t a = c->sentence_start[s], n = c->sentence_start[s + 1] - a;
        for (int64_t i = 0; i < n; i++) {
            const char *tag = nb_vocab_token(c->tag_vocab, c->tags[a + i]);
            if (!ner && nb_brown_base_tag(tag, out[a + i], sizeof out[0]) != NB_OK) return false;
            if (i < 256) tags[i] = tag;
        }
        if (!ner) continue;
        if (n > 256) return fprintf(stderr, "nabla text tag: sentence %lld has more than 256 words\n", (long long)s), false;
        if (nb_brown_entity_tags(tags, n, bio) != NB_OK) return false;
        for (int64_t i = 0; i < n; i++) strcpy(out[a + i], BIO[bio[i]]);
    }
    return true;
}

/* The vocabulary of strings[i] over the training documents' tokens. */
static nb_vocab *train_vocab(const tag_corpus *t, const char *const *per_token, int64_t min_count) {
    const nb_corpus_ids *c = t->c;
    const char **list = malloc((size_t)c->n_words * sizeof *list);
    if (!list) return NULL;
    int64_t n = 0;
    for (int64_t d = 0; d < c->n_docs; d++) {
        if (nb_brown_is_held_out(d)) continue;
        int64_t s0 = c->docs[d].first_sentence, s1 = s0 + c->docs[d].n_sentences;
        for (int64_t i = c->sentence_start[s0]; i < c->sentence_start[s1]; i++) list[n++] = per_token[i];
    }
    nb_vocab *v = nb_vocab_build(list, n, (nb_vocab_opts){.min_count = min_count});
    free(list);
    return v;
}

static bool build_vocabs(tag_corpus *t, char (*target)[32], int64_t min_count) {
    const nb_corpus_ids *c = t->c;
    const char **per_token = malloc((size_t)c->n_words * sizeof *per_token);
    if (!per_token) return false;
    bool ok = true;
    for (int k = 0; ok && k < N_FEATURES - 1; k++) {
        for (int64_t i = 0; i < c->n_words; i++) per_token[i] = t->words[c->words[i]].text[k];
        ok = (t->vocab[k] = train_vocab(t, per_token, k == F_WORD ? min_count : 2)) != NULL;
    }
    for (int64_t i = 0; i < c->n_words; i++) per_token[i] = target[i];
    ok = ok && (t->tags = train_vocab(t, per_token, 1)) != NULL;
    free(per_token);
    return ok;
}

static bool tag_corpus_make(tag_corpus *t, const char *dir, bool ner, int64_t min_count) {
    memset(t, 0, sizeof *t);
    if (!(t->c = nb_brown_load(dir))) return cli_fail("text tag"), false;
    const nb_corpus_ids *c = t->c;
    int32_t V = nb_vocab_size(c->word_vocab);
    t->words = calloc((size_t)V, sizeof *t->words);
    t->feat = malloc((size_t)c->n_words * N_FEATURES * sizeof *t->feat);
    t->label = malloc((size_t)c->n_words * sizeof *t->label);
    char (*target)[32] = malloc((size_t)c->n_words * sizeof *target);
    bool ok = t->words && t->feat && t->label && target;
    for (int32_t w = 0; ok && w < V; w++) ok = word_feats_make(&t->words[w], nb_vocab_token(c->word_vocab, w));
    ok = ok && token_targets(t, ner, target) && build_vocabs(t, target, min_count);
    for (int64_t i = 0; ok && i < c->n_words; i++) {
        word_ids(t->vocab, &t->words[c->words[i]], t->feat + i * N_FEATURES);
        t->label[i] = nb_vocab_id(t->tags, target[i]); /* a tag never trained on: <unk>, always wrong */
    }
    for (int64_t d = 0; d < c->n_docs; d++) *(nb_brown_is_held_out(d) ? &t->n_held_docs : &t->n_train_docs) += 1;
    for (int64_t s = 0; s < c->n_sentences; s++)
        if (c->sentence_start[s + 1] - c->sentence_start[s] > t->longest) t->longest = c->sentence_start[s + 1] - c->sentence_start[s];
    free(target);
    if (!ok && nb_error_code() != NB_OK) cli_fail("text tag");
    else if (!ok) fprintf(stderr, "nabla text tag: out of memory\n");
    return ok;
}

/* ---- batches */

typedef struct {
    nb_tensor *feat, *mask, *tags; /* [B, T, K] int32, [B, T], [B, T] int32 (padding -1) */
    int32_t *host_tags;            /* [B * T] */
    bool *unknown;                 /* [B * T]: the word is <unk> in the vocabulary */
    int64_t cells;
} tag_batch;

typedef struct {
    tag_batch *b;
    int64_t n, tokens, sentences;
} batch_set;

static void batch_set_free(batch_set *s) {
    for (int64_t i = 0; i < s->n; i++) {
        nb_tensor_free(s->b[i].feat);
        nb_tensor_free(s->b[i].mask);
        nb_tensor_free(s->b[i].tags);
        free(s->b[i].host_tags);
        free(s->b[i].unknown);
    }
    free(s->b);
}

/* One batch of the sentences sent[0..n) (corpus indices): the tags padded by nb_seq_batch_make
 * (NB_TAGGER_PAD_TAG), which gives the mask too, and the features [n, T, K] padded with 0. */
static bool make_batch(const tag_corpus *t, const int64_t *sent, int64_t n, tag_batch *out) {
    const nb_corpus_ids *c = t->c;
    const int32_t *seqs[1024];
    int64_t lens[1024], T = 0;
    for (int64_t b = 0; b < n; b++) {
        int64_t a = c->sentence_start[sent[b]];
        seqs[b] = t->label + a;
        lens[b] = c->sentence_start[sent[b] + 1] - a;
        if (lens[b] > T) T = lens[b];
    }
    nb_seq_batch sb;
    if (nb_seq_batch_make(&sb, seqs, lens, n, NB_TAGGER_PAD_TAG) != NB_OK) return false;
    out->tags = sb.ids, out->mask = sb.mask, out->cells = n * T;
    nb_seq_batch_free(&sb);
    int32_t *feat = calloc((size_t)(n * T * N_FEATURES), sizeof *feat); /* 0: every feature's padding */
    out->host_tags = malloc((size_t)(n * T) * sizeof *out->host_tags);
    out->unknown = calloc((size_t)(n * T), sizeof *out->unknown);
    bool ok = feat && out->host_tags && out->unknown && nb_copy_to_bytes(out->tags, out->host_tags, (size_t)(n * T) * 4) == NB_OK;
    for (int64_t b = 0; ok && b < n; b++) {
        int64_t a = c->sentence_start[sent[b]];
        memcpy(feat + b * T * N_FEATURES, t->feat + a * N_FEATURES, (size_t)lens[b] * N_FEATURES * sizeof *feat);
        for (int64_t i = 0; i < lens[b]; i++) out->unknown[b * T + i] = t->feat[(a + i) * N_FEATURES + F_WORD] == NB_UNK_ID;
    }
    if (ok) ok = (out->feat = nb_from_int32(feat, NB_SHAPE(n, T, N_FEATURES))) != NULL;
    free(feat);
    return ok;
}

/* The sentences of the held-out documents (held true) or the others, bucketed into batches. */
static bool make_batches(const tag_corpus *t, bool held, int64_t batch, uint64_t seed, batch_set *out) {
    const nb_corpus_ids *c = t->c;
    memset(out, 0, sizeof *out);
    int64_t *sent = malloc((size_t)c->n_sentences * sizeof *sent), *lens = malloc((size_t)c->n_sentences * sizeof *lens);
    int64_t *order = malloc((size_t)c->n_sentences * sizeof *order), n = 0;
    bool ok = sent && lens && order;
    for (int64_t d = 0; ok && d < c->n_docs; d++) {
        if (nb_brown_is_held_out(d) != held) continue;
        for (int64_t s = c->docs[d].first_sentence; s < c->docs[d].first_sentence + c->docs[d].n_sentences; s++) {
            sent[n] = s, lens[n] = c->sentence_start[s + 1] - c->sentence_start[s];
            out->tokens += lens[n++];
        }
    }
    out->sentences = n;
    ok = ok && n > 0 && nb_bucket_order(lens, n, batch, seed, 0, order) == NB_OK;
    for (int64_t i = 0; ok && i < n; i++) order[i] = sent[order[i]];
    out->b = ok ? calloc((size_t)((n + batch - 1) / batch), sizeof *out->b) : NULL;
    for (int64_t i = 0; out->b && i < n; i += batch, out->n++)
        if (!make_batch(t, order + i, i + batch <= n ? batch : n - i, &out->b[out->n])) {
            ok = false;
            out->n++;
            break;
        }
    free(sent), free(lens), free(order);
    if (!ok && n == 0) fprintf(stderr, "nabla text tag: no %s documents (every 10th document is held out)\n",
                              held ? "held-out" : "training");
    else if (!ok) cli_fail("text tag: batches");
    return ok && out->b;
}

/* ---- training: nb_fit with a step of our own */

typedef struct {
    double tokens, correct, unknown, unknown_correct; /* held-out */
    double gold, pred, hit; /* entity tokens: gold, predicted and both (ner) */
} tag_counts;

typedef struct {
    nb_module *model;
    const batch_set *train, *held;
    int32_t *pred;      /* [cells] of the largest batch */
    int32_t o_tag;      /* the id of "O" (ner), else -1 */
    tag_counts train_n, held_n;
    struct timespec t0;
} tag_run;

static void count(tag_run *r, const tag_batch *b, tag_counts *n) {
    for (int64_t i = 0; i < b->cells; i++) {
        int32_t y = b->host_tags[i], p = r->pred[i];
        if (y == NB_TAGGER_PAD_TAG) continue;
        n->tokens++, n->correct += p == y;
        n->unknown += b->unknown[i], n->unknown_correct += b->unknown[i] && p == y;
        n->gold += y != r->o_tag, n->pred += p != r->o_tag, n->hit += p == y && y != r->o_tag;
    }
}

static nb_status tag_step(void *ctx, nb_tensor *x, nb_tensor *y, bool train, double *loss, int64_t *correct) {
    (void)y;
    tag_run *r = ctx;
    const batch_set *set = train ? r->train : r->held;
    const tag_batch *b = &set->b[(int64_t)nb_item(x)]; /* the loader's sample: a batch's index */
    nb_tensor *logits = nb_tagger_forward(r->model, b->feat, b->mask);
    nb_tensor *l = nb_tagger_loss(logits, b->tags);
    if (!l) return nb_error_code();
    *loss = nb_item(l);
    *correct = 0; /* nb_fit counts per batch; token counts are ours (r->*_n) */
    if (train && nb_backward(l) != NB_OK) return nb_error_code();
    if (nb_tagger_predict(logits, r->pred, b->cells) != NB_OK) return nb_error_code();
    count(r, b, train ? &r->train_n : &r->held_n);
    return NB_OK;
}

static double pct(double a, double b) { return b > 0 ? 100.0 * a / b : 0.0; }

static bool on_epoch(const nb_fit_epoch *e, void *user) {
    tag_run *r = user;
    const tag_counts *h = &r->held_n;
    printf("epoch %lld/%d: train loss %.4f, accuracy %.2f%% | held-out loss %.4f, accuracy %.2f%% (unknown words "
           "%.2f%% of %.0f)", (long long)e->epoch, e->epochs, e->train_loss, pct(r->train_n.correct, r->train_n.tokens),
           e->eval_loss, pct(h->correct, h->tokens), pct(h->unknown_correct, h->unknown), h->unknown);
    if (r->o_tag >= 0) {
        double p = pct(h->hit, h->pred), rc = pct(h->hit, h->gold);
        printf(", entity tokens P %.2f%% R %.2f%% F1 %.2f%%", p, rc, p + rc > 0 ? 2 * p * rc / (p + rc) : 0.0);
    }
    printf(", %.0f s\n", e->seconds);
    fflush(stdout);
    r->train_n = r->held_n = (tag_counts){0};
    return true;
}

/* A dataset whose sample i is the number i, one per batch. */
static nb_dataset *index_dataset(int64_t n) {
    float *x = malloc((size_t)n * sizeof *x);
    int32_t *y = calloc((size_t)n, sizeof *y);
    nb_dataset *ds = NULL;
    if (x && y) {
        for (int64_t i = 0; i < n; i++) x[i] = (float)i;
        ds = nb_dataset_new(&(nb_dataset_desc){.n = n, .sample_ndim = 1, .sample_shape = (int64_t[]){1}, .x_f32 = x,
                                               .labels = y});
    }
    free(x), free(y);
    return ds;
}

/* ---- saving and loading */

static json_t *tagger_meta(const nb_tagger_opts *o, const char *task) {
    json_t *feats = json_array();
    for (int k = 0; k < o->n_features; k++)
        json_array_append_new(feats, json_pack("[I, I]", (json_int_t)o->features[k].size, (json_int_t)o->features[k].dim));
    return json_pack("{s:s, s:s, s:I, s:I, s:i, s:I, s:I, s:o}", "kind",
                     o->kind == NB_TAGGER_BILSTM ? "bilstm" : "transformer", "task", task, "tags", (json_int_t)o->tags,
                     "hidden", (json_int_t)o->hidden, "layers", o->layers, "heads", (json_int_t)o->heads, "max_len",
                     (json_int_t)o->max_len, "features", feats);
}

static const char *join(const char *dir, const char *name) {
    static char buf[4][4096];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static bool save_tagger(const tag_corpus *t, nb_module *m, const nb_tagger_opts *o, const tag_opts *to) {
    json_t *meta = tagger_meta(o, to->task);
    char *text = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
    const char *keys[] = {META_TAGGER}, *values[] = {text};
    bool ok = text && nb_module_save(m, join(to->out, "model.safetensors"), 1, keys, values) == NB_OK;
    for (int k = 0; ok && k < N_FEATURES - 1; k++) ok = nb_vocab_save(t->vocab[k], join(to->out, VOCAB_FILES[k])) == NB_OK;
    ok = ok && nb_vocab_save(t->tags, join(to->out, "tags.vocab.json")) == NB_OK;
    free(text);
    json_decref(meta);
    if (!ok) cli_fail("text tag: saving");
    else printf("wrote %s (model.safetensors, vocabularies)\n", to->out);
    return ok;
}

/* ---- train */

static int run_train(const char *dir, const tag_opts *to) {
    bool ner = !strcmp(to->task, "ner");
    if (!make_dirs(to->out)) return fprintf(stderr, "nabla text tag: cannot make the folder %s\n", to->out), 1;
    tag_corpus t;
    batch_set train = {0}, held = {0};
    int rc = 1;
    if (!tag_corpus_make(&t, dir, ner, to->min_count)) goto out_free_corpus;
    if (!make_batches(&t, false, to->batch, (uint64_t)to->seed, &train) ||
        !make_batches(&t, true, to->batch, (uint64_t)to->seed, &held))
        goto out_free_batches;
    nb_tagger_opts o = {.kind = !strcmp(to->model, "bilstm") ? NB_TAGGER_BILSTM : NB_TAGGER_TRANSFORMER,
                        .n_features = N_FEATURES, .tags = nb_vocab_size(t.tags), .hidden = to->hidden,
                        .layers = to->layers, .heads = to->heads, .max_len = t.longest, .dropout = (float)to->dropout};
    for (int k = 0; k < N_FEATURES - 1; k++)
        o.features[k] = (nb_tagger_feature){nb_vocab_size(t.vocab[k]), k == F_WORD ? to->word_dim : to->suffix_dim};
    o.features[F_SHAPE] = (nb_tagger_feature){NB_WORD_SHAPES, 8};
    nb_manual_seed((uint64_t)to->seed);
    nb_module *m = nb_tagger_new(o);
    if (!m) {
        cli_fail("text tag");
        goto out_free_batches;
    }
    printf("%s tagging (%s): %lld training documents, %lld sentences, %lld tokens; held out every 10th document: "
           "%lld, %lld sentences, %lld tokens\n", ner ? "entity" : "part-of-speech", to->model, (long long)t.n_train_docs,
           (long long)train.sentences, (long long)train.tokens, (long long)t.n_held_docs, (long long)held.sentences,
           (long long)held.tokens);
    printf("%d %s, vocabularies: %d words, %d suffixes of 3, %d of 2; %lld parameters; %lld batches of %d sentences\n",
           nb_vocab_size(t.tags) - 2, ner ? "entity tags (B, I, O)" : "base tags", nb_vocab_size(t.vocab[0]) - 2,
           nb_vocab_size(t.vocab[1]) - 2, nb_vocab_size(t.vocab[2]) - 2, (long long)nb_module_num_elements(m),
           (long long)train.n, to->batch);
    fflush(stdout);
    int64_t cells = 0;
    for (int64_t i = 0; i < train.n; i++) cells = train.b[i].cells > cells ? train.b[i].cells : cells;
    for (int64_t i = 0; i < held.n; i++) cells = held.b[i].cells > cells ? held.b[i].cells : cells;
    tag_run r = {.model = m, .train = &train, .held = &held, .pred = malloc((size_t)cells * sizeof *r.pred),
                 .o_tag = ner ? nb_vocab_id(t.tags, "O") : -1};
    nb_dataset *dtrain = index_dataset(train.n), *dheld = index_dataset(held.n);
    nb_loader *ltrain = nb_loader_new(dtrain, (nb_loader_opts){.batch_size = 1, .shuffle = true, .seed = (uint64_t)to->seed});
    nb_loader *lheld = nb_loader_new(dheld, (nb_loader_opts){.batch_size = 1});
    nb_tensor *params[256];
    int np = nb_module_parameters(m, params, 256);
    nb_optim *opt = nb_adam_new(np, params, (nb_adam_opts){.lr = to->lr});
    nb_fit_opts fo = {.epochs = to->epochs, .clip_norm = (float)to->clip, .num_classes = o.tags, .log = stderr,
                      .step = tag_step, .step_ctx = &r, .seed = to->seed};
    nb_fit *f = r.pred && ltrain && lheld && opt ? nb_fit_new(m, opt, NULL, ltrain, lheld, &fo) : NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!f || nb_fit_run(f, &(nb_fit_callbacks){.on_epoch = on_epoch, .user = &r}) != NB_OK) cli_fail("text tag");
    else if (save_tagger(&t, m, &o, to)) rc = 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("trained in %.0f s\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    nb_fit_free(f);
    nb_optim_free(opt);
    nb_loader_free(ltrain), nb_loader_free(lheld);
    nb_dataset_free(dtrain), nb_dataset_free(dheld);
    free(r.pred);
    nb_module_free(m);
out_free_batches:
    batch_set_free(&train), batch_set_free(&held);
out_free_corpus:
    tag_corpus_free(&t);
    return rc;
}

/* ---- predict */

typedef struct {
    nb_module *m;
    nb_vocab *vocab[N_FEATURES - 1], *tags;
} loaded_tagger;

static void loaded_tagger_free(loaded_tagger *l) {
    nb_module_free(l->m);
    for (int k = 0; k < N_FEATURES - 1; k++) nb_vocab_free(l->vocab[k]);
    nb_vocab_free(l->tags);
}

/* The tagger's options from the metadata of DIR/model.safetensors; false after a message. */
static bool read_meta(const char *path, nb_tagger_opts *o) {
    nb_safetensors *st = nb_safetensors_open(path);
    if (!st) return cli_fail("text tag predict"), false;
    const char *text = nb_safetensors_meta(st, META_TAGGER);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL, *feats = NULL;
    const char *kind = NULL, *task = NULL;
    json_int_t tags = 0, hidden = 0, heads = 0, max_len = 0;
    int layers = 0;
    bool ok = j && !json_unpack(j, "{s:s, s:s, s:I, s:I, s:i, s:I, s:I, s:o}", "kind", &kind, "task", &task, "tags", &tags,
                                "hidden", &hidden, "layers", &layers, "heads", &heads, "max_len", &max_len, "features", &feats) &&
              json_array_size(feats) == N_FEATURES;
    if (ok) {
        *o = (nb_tagger_opts){.kind = !strcmp(kind, "bilstm") ? NB_TAGGER_BILSTM : NB_TAGGER_TRANSFORMER,
                              .n_features = N_FEATURES, .tags = tags, .hidden = hidden, .layers = layers,
                              .heads = heads, .max_len = max_len};
        for (int k = 0; k < N_FEATURES; k++)
            o->features[k] = (nb_tagger_feature){json_integer_value(json_array_get(json_array_get(feats, k), 0)),
                                                 json_integer_value(json_array_get(json_array_get(feats, k), 1))};
    } else {
        fprintf(stderr, "nabla text tag predict: %s is not a tagger written by `nabla text tag train` (no valid \"%s\" "
                "metadata)\n", path, META_TAGGER);
    }
    json_decref(j);
    nb_safetensors_close(st);
    return ok;
}

static bool load_tagger(const char *dir, loaded_tagger *l) {
    memset(l, 0, sizeof *l);
    nb_tagger_opts o;
    if (!read_meta(join(dir, "model.safetensors"), &o)) return false;
    bool ok = (l->m = nb_tagger_new(o)) && nb_module_load(l->m, join(dir, "model.safetensors")) == NB_OK;
    for (int k = 0; ok && k < N_FEATURES - 1; k++) ok = (l->vocab[k] = nb_vocab_load(join(dir, VOCAB_FILES[k]))) != NULL;
    ok = ok && (l->tags = nb_vocab_load(join(dir, "tags.vocab.json")));
    if (!ok) return cli_fail("text tag predict"), false;
    nb_module_train(l->m, false);
    return true;
}

static int run_predict(const char *dir, const char *sentence) {
    loaded_tagger l;
    if (!load_tagger(dir, &l)) return loaded_tagger_free(&l), 1;
    nb_tokens *words = nb_tokenize_words(sentence, (nb_word_opts){.split_punct = true});
    if (!words || words->n == 0) {
        if (words) fprintf(stderr, "nabla text tag predict: the sentence has no words\n");
        else cli_fail("text tag predict");
        nb_tokens_free(words);
        loaded_tagger_free(&l);
        return 1;
    }
    int64_t n = words->n;
    int32_t *feat = malloc((size_t)n * N_FEATURES * sizeof *feat), *pred = malloc((size_t)n * sizeof *pred);
    float *mask = malloc((size_t)n * sizeof *mask);
    bool ok = feat && pred && mask;
    for (int64_t i = 0; ok && i < n; i++) {
        word_feats w;
        ok = word_feats_make(&w, words->token[i]);
        if (ok) word_ids(l.vocab, &w, feat + i * N_FEATURES);
        word_feats_free(&w);
        mask[i] = 1;
    }
    nb_scope_begin();
    nb_tensor *logits = NULL;
    NB_NO_GRAD {
        if (ok) logits = nb_tagger_forward(l.m, nb_from_int32(feat, NB_SHAPE(1, n, N_FEATURES)), nb_from_data(mask, NB_SHAPE(1, n)));
    }
    ok = logits && nb_tagger_predict(logits, pred, n) == NB_OK;
    nb_scope_end();
    if (ok)
        for (int64_t i = 0; i < n; i++) printf("%s%s/%s", i ? " " : "", words->token[i], nb_vocab_token(l.tags, pred[i]));
    if (ok) printf("\n");
    else cli_fail("text tag predict");
    free(feat), free(pred), free(mask);
    nb_tokens_free(words);
    loaded_tagger_free(&l);
    return ok ? 0 : 1;
}

int cmd_text_tag(int argc, char **argv) {
    const char *usage =
        "usage: nabla text tag train BROWN_DIR --out DIR [options]\n"
        "       nabla text tag predict DIR \"a sentence\"\n\n"
        "Part-of-speech tagging (base tags) or named entities (--task ner: B/I/O over proper nouns and\n"
        "title words) on the Brown corpus as `nabla convert-brown` wrote it, every 10th document held\n"
        "out.  predict prints each word of the sentence as word/TAG.";
    tag_opts o = {.model = "bilstm", .task = "pos", .out = "runs/tag", .epochs = 5, .batch = 32, .hidden = 128,
                  .layers = 0, .heads = 4, .word_dim = 100, .suffix_dim = 32, .min_count = 2, .seed = 1,
                  .lr = 2e-3, .dropout = 0.25, .clip = 5};
    const cli_flag flags[] = {
        {"model", FLAG_STRING, &o.model, "the encoder", NULL, "bilstm transformer"},
        {"task", FLAG_STRING, &o.task, "part of speech or entities", NULL, "pos ner"},
        {"out", FLAG_STRING, &o.out, "folder of the model and its vocabularies (train)"},
        {"epochs", FLAG_INT, &o.epochs, "passes over the training documents", "[1, 1000]"},
        {"batch", FLAG_INT, &o.batch, "sentences a batch (bucketed by length)", "[1, 1024]"},
        {"hidden", FLAG_INT, &o.hidden, "LSTM size per direction, or the transformer's width", "[1, 4096]"},
        {"layers", FLAG_INT, &o.layers, "LSTM or encoder layers (0: 1 LSTM, 2 encoder)", "[0, 16]"},
        {"heads", FLAG_INT, &o.heads, "attention heads (transformer; must divide --hidden)", "[1, 64]"},
        {"word-dim", FLAG_INT, &o.word_dim, "word embedding size", "[1, 1024]"},
        {"suffix-dim", FLAG_INT, &o.suffix_dim, "size of each suffix embedding", "[1, 1024]"},
        {"min-count", FLAG_INT, &o.min_count, "rarer training words become <unk>", "[1, inf)"},
        {"lr", FLAG_FLOAT, &o.lr, "Adam's learning rate", "(0, 1]"},
        {"dropout", FLAG_FLOAT, &o.dropout, "dropout on the embeddings and the encoder's output", "[0, 1)"},
        {"clip", FLAG_FLOAT, &o.clip, "clip the gradients' global norm (0: off)", "[0, inf)"},
        {"seed", FLAG_INT, &o.seed, "random seed (weights, batch order, dropout)", "[0, inf)"},
    };
    const char *pos[3];
    int np = cli_parse(argc, argv, 2, flags, (int)(sizeof flags / sizeof flags[0]), usage, pos, 3);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np == 2 && !strcmp(pos[0], "train")) return run_train(pos[1], &o);
    if (np == 3 && !strcmp(pos[0], "predict")) return run_predict(pos[1], pos[2]);
    fprintf(stderr, "nabla text tag: needs `train BROWN_DIR` or `predict DIR \"a sentence\"` (see --help)\n");
    return 2;
}
