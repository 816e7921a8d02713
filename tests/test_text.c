/*
 * test_text.c — src/text: UTF-8 checks and text files, the character and word tokenizers, stop
 * words, vocabularies (counts, min_count / max_size, save and load, ids out of range), the Brown
 * corpus reader on the small sample in tests/data/brown (written for the suite in the package's
 * format) and its malformed variants, padded batches with masks and lengths, bucketing and the
 * language-modelling dataset through the loader.  Everything made is freed: each test ends with
 * the counted allocator back where it began.
 */
#include "check.h"
#include "tmpdir.h"

#define SAMPLE "tests/data/brown"

static void utf8_check_accepts_code_points_and_names_the_first_bad_byte(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    CHECK(nb_utf8_check("s", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 14) == NB_OK);
    CHECK(nb_utf8_check("s", "ab\xC3", 3) != NB_OK);
    CHECK_ERROR(NB_ERR_ARG, "s: byte 2 is not UTF-8 (0xC3 starts a sequence that ends early)");
    CHECK(nb_utf8_check("s", "a\x80", 2) != NB_OK);
    CHECK_ERROR(NB_ERR_ARG, "byte 1 is not UTF-8 (0x80 is not a valid first byte)");
    CHECK(nb_utf8_check("s", "\xC0\xAF", 2) != NB_OK); /* '/' written in two bytes */
    CHECK_ERROR(NB_ERR_ARG, "overlong");
    CHECK(nb_utf8_check("s", "\xED\xA0\x80", 3) != NB_OK); /* U+D800 */
    CHECK_ERROR(NB_ERR_ARG, "surrogate");
    CHECK(nb_utf8_check("s", "a\0b", 3) != NB_OK);
    CHECK_ERROR(NB_ERR_ARG, "byte 1 is not UTF-8 (0x00 is a NUL byte)");
    CHECK_BYTES_BACK("utf8_check", before);
}

static void text_read_returns_the_file_and_refuses_latin1_with_its_offset(void) {
    size_t before = nb_alloc_stats_get().bytes_live, len = 0;
    write_text(tpath("good.txt"), "na\xC3\xAFve text\n");
    char *t = nb_text_read(tpath("good.txt"), &len);
    CHECK(t && !strcmp(t, "na\xC3\xAFve text\n"));
    CHECK_EQ_INT(len, 12);
    nb_text_free(t);
    write_text(tpath("latin1.txt"), "line one\nna\xEFve\n");
    CHECK(!nb_text_read(tpath("latin1.txt"), NULL));
    CHECK_STR_CONTAINS(nb_error_message(), tpath("latin1.txt"));
    CHECK_ERROR(NB_ERR_IO, "byte 11 is not UTF-8 (0xEF");
    CHECK(!nb_text_read(tpath("missing.txt"), NULL));
    CHECK_ERROR(NB_ERR_IO, "missing.txt");
    CHECK_BYTES_BACK("text_read", before);
}

static void tokenize_chars_gives_one_token_per_code_point(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    nb_tokens *t = nb_tokenize_chars("n\xC3\xA9 \xE2\x82\xAC");
    CHECK(t && t->n == 4);
    if (t && t->n == 4) {
        CHECK(!strcmp(t->token[0], "n") && !strcmp(t->token[1], "\xC3\xA9"));
        CHECK(!strcmp(t->token[2], " ") && !strcmp(t->token[3], "\xE2\x82\xAC"));
    }
    nb_tokens_free(t);
    t = nb_tokenize_chars("");
    CHECK(t && t->n == 0);
    nb_tokens_free(t);
    CHECK(!nb_tokenize_chars("ok\xFF"));
    CHECK_ERROR(NB_ERR_ARG, "tokenize_chars: byte 2 is not UTF-8");
    nb_tokens_free(NULL);
    CHECK_BYTES_BACK("tokenize_chars", before);
}

/* The tokens of t joined by '|', for comparing a whole list at once. */
static const char *joined(const nb_tokens *t) {
    static char buf[512];
    buf[0] = '\0';
    for (int64_t i = 0; t && i < t->n; i++) {
        if (i) strcat(buf, "|");
        strcat(buf, t->token[i]);
    }
    return buf;
}

static void tokenize_words_lowers_splits_punctuation_and_drops_stop_words(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    const char *text = "  The well-known dog didn't bark, (said Ann).\n";
    nb_tokens *t = nb_tokenize_words(text, (nb_word_opts){0});
    CHECK(!strcmp(joined(t), "The|well-known|dog|didn't|bark,|(said|Ann)."));
    nb_tokens_free(t);
    t = nb_tokenize_words(text, (nb_word_opts){.lower = true, .split_punct = true});
    CHECK(!strcmp(joined(t), "the|well-known|dog|didn't|bark|,|(|said|ann|)|."));
    nb_tokens_free(t);
    t = nb_tokenize_words(text, (nb_word_opts){.lower = true, .split_punct = true, .drop_stop = true});
    CHECK(!strcmp(joined(t), "well-known|dog|didn't|bark|,|(|said|ann|)|."));
    nb_tokens_free(t);
    static const char *const mine[] = {"dog", "ann", NULL};
    t = nb_tokenize_words("the dog and Ann", (nb_word_opts){.lower = true, .drop_stop = true,
                                                           .stop_words = mine});
    CHECK(!strcmp(joined(t), "the|and"));
    nb_tokens_free(t);
    t = nb_tokenize_words(" \t\n", (nb_word_opts){0});
    CHECK(t && t->n == 0);
    nb_tokens_free(t);
    int n_stop = 0;
    for (const char *const *w = nb_stop_words_en(); *w; w++) n_stop++;
    CHECK(n_stop > 100);
    CHECK(!nb_tokenize_words("caf\xE9", (nb_word_opts){0}));
    CHECK_ERROR(NB_ERR_ARG, "tokenize_words: byte 3 is not UTF-8");
    CHECK_BYTES_BACK("tokenize_words", before);
}

static void vocab_build_orders_by_count_and_keeps_pad_and_unk_first(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    const char *toks[] = {"b", "a", "c", "a", "b", "a", "d", "b", "e"};
    nb_vocab *v = nb_vocab_build(toks, 9, (nb_vocab_opts){0});
    CHECK_EQ_INT(nb_vocab_size(v), 7);
    /* a and b both 3 times: byte order breaks the tie; c, d, e once each */
    const char *want[] = {"<pad>", "<unk>", "a", "b", "c", "d", "e"};
    for (int32_t id = 0; id < 7; id++) CHECK(!strcmp(nb_vocab_token(v, id), want[id]));
    CHECK_EQ_INT(nb_vocab_id(v, "b"), 3);
    CHECK_EQ_INT(nb_vocab_id(v, "zebra"), NB_UNK_ID);
    CHECK_EQ_INT(nb_vocab_count(v, 2), 3);
    CHECK_EQ_INT(nb_vocab_count(v, NB_UNK_ID), 0);
    nb_vocab_free(v);
    v = nb_vocab_build(toks, 9, (nb_vocab_opts){.min_count = 2});
    CHECK_EQ_INT(nb_vocab_size(v), 4);
    CHECK_EQ_INT(nb_vocab_count(v, NB_UNK_ID), 3); /* c, d and e */
    CHECK_EQ_INT(nb_vocab_id(v, "d"), NB_UNK_ID);
    nb_vocab_free(v);
    v = nb_vocab_build(toks, 9, (nb_vocab_opts){.max_size = 3});
    CHECK_EQ_INT(nb_vocab_size(v), 3);
    CHECK(!strcmp(nb_vocab_token(v, 2), "a"));
    nb_vocab_free(v);
    CHECK(!nb_vocab_build(toks, 9, (nb_vocab_opts){.max_size = 2}));
    CHECK_ERROR(NB_ERR_ARG, "max_size 0 or >= 3");
    /* the same tokens in another order give the same ids */
    const char *shuffled[] = {"e", "d", "c", "b", "b", "b", "a", "a", "a"};
    nb_vocab *v1 = nb_vocab_build(toks, 9, (nb_vocab_opts){0});
    nb_vocab *v2 = nb_vocab_build(shuffled, 9, (nb_vocab_opts){0});
    for (int32_t id = 0; id < 7; id++) CHECK(!strcmp(nb_vocab_token(v1, id), nb_vocab_token(v2, id)));
    nb_vocab_free(v1);
    nb_vocab_free(v2);
    nb_vocab_free(NULL);
    CHECK_BYTES_BACK("vocab_build", before);
}

static void vocab_grows_past_its_first_table(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    enum { N = 1000 };
    static char words[N][8];
    const char *toks[N];
    for (int i = 0; i < N; i++) {
        snprintf(words[i], sizeof words[i], "w%d", i);
        toks[i] = words[i];
    }
    nb_vocab *v = nb_vocab_build(toks, N, (nb_vocab_opts){0});
    CHECK_EQ_INT(nb_vocab_size(v), N + 2);
    int found = 0;
    for (int i = 0; i < N; i++) found += !strcmp(nb_vocab_token(v, nb_vocab_id(v, toks[i])), toks[i]);
    CHECK_EQ_INT(found, N);
    nb_vocab_free(v);
    CHECK_BYTES_BACK("vocab_grows", before);
}

static void vocab_encode_decode_round_trip_and_decode_names_a_bad_id(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    const char *toks[] = {"x", "y", "x"};
    nb_vocab *v = nb_vocab_build(toks, 3, (nb_vocab_opts){0});
    const char *text[] = {"y", "x", "never"};
    int32_t ids[3];
    const char *back[3];
    CHECK(nb_vocab_encode(v, text, 3, ids) == NB_OK);
    CHECK(ids[0] == 3 && ids[1] == 2 && ids[2] == NB_UNK_ID);
    CHECK(nb_vocab_decode(v, ids, 3, back) == NB_OK);
    CHECK(!strcmp(back[0], "y") && !strcmp(back[1], "x") && !strcmp(back[2], "<unk>"));
    ids[1] = 4;
    CHECK(nb_vocab_decode(v, ids, 3, back) != NB_OK);
    CHECK_ERROR(NB_ERR_ARG, "vocab_decode: ids[1] = 4 is not below the vocabulary's 4 ids");
    CHECK(!nb_vocab_token(v, -1));
    CHECK_ERROR(NB_ERR_ARG, "vocab_token: id -1 is not below");
    nb_vocab_free(v);
    CHECK_BYTES_BACK("vocab_decode", before);
}

static void vocab_save_and_load_round_trip_and_refuse_garbled_files(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    const char *toks[] = {"dog", "cat", "dog", "\xC3\xA9t\xC3\xA9"};
    nb_vocab *v = nb_vocab_build(toks, 4, (nb_vocab_opts){0});
    CHECK(nb_vocab_save(v, tpath("vocab.json")) == NB_OK);
    nb_vocab *w = nb_vocab_load(tpath("vocab.json"));
    CHECK_EQ_INT(nb_vocab_size(w), nb_vocab_size(v));
    for (int32_t id = 0; w && id < nb_vocab_size(v); id++) {
        CHECK(!strcmp(nb_vocab_token(v, id), nb_vocab_token(w, id)));
        CHECK_EQ_INT(nb_vocab_count(v, id), nb_vocab_count(w, id));
    }
    CHECK_EQ_INT(nb_vocab_id(w, "dog"), 2);
    nb_vocab_free(w);
    nb_vocab_free(v);
    static const struct { const char *json, *needle; } bad[] = {
        {"{\"format\": \"nabla.vocab\", \"tokens\": [\"<pad>\"", "line 1"},
        {"{\"format\": \"other\", \"tokens\": [], \"counts\": []}", "not a vocabulary"},
        {"{\"format\": \"nabla.vocab\", \"tokens\": [\"<pad>\", \"<unk>\"], \"counts\": [0]}",
         "one length"},
        {"{\"format\": \"nabla.vocab\", \"tokens\": [\"<unk>\", \"<pad>\"], \"counts\": [0, 0]}",
         "ids 0 and 1 must be <pad> and <unk>"},
        {"{\"format\": \"nabla.vocab\", \"tokens\": [\"<pad>\", \"<unk>\", \"a\", \"a\"], "
         "\"counts\": [0, 0, 1, 1]}", "a token appears twice"},
        {"{\"format\": \"nabla.vocab\", \"tokens\": [\"<pad>\", \"<unk>\", \"<pad>\"], "
         "\"counts\": [0, 0, 1]}", "a token appears twice"},
        {"{\"format\": \"nabla.vocab\", \"tokens\": [\"<pad>\", \"<unk>\", 7], "
         "\"counts\": [0, 0, 1]}", "not a string"},
        {"{\"format\": \"nabla.vocab\", \"tokens\": [\"<pad>\", \"<unk>\", \"a\"], "
         "\"counts\": [0, 0, -1]}", "not an integer >= 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_text(tpath("bad.json"), bad[i].json);
        CHECK(!nb_vocab_load(tpath("bad.json")));
        CHECK_STR_CONTAINS(nb_error_message(), tpath("bad.json"));
        CHECK_ERROR(NB_ERR_IO, bad[i].needle);
    }
    CHECK_BYTES_BACK("vocab_save_load", before);
}

static void brown_read_gives_documents_genres_sentences_words_and_tags(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    nb_corpus *c = nb_brown_read(SAMPLE);
    CHECK(c != NULL);
    if (!c) return;
    CHECK_EQ_INT(c->n_docs, 3);
    CHECK_EQ_INT(c->genres.n, 2);
    CHECK(!strcmp(c->genres.token[0], "news") && !strcmp(c->genres.token[1], "fiction"));
    CHECK(!strcmp(c->docs[1].id, "cy01") && c->docs[1].genre == 1 && c->docs[2].genre == 0);
    CHECK_EQ_INT(c->n_sentences, 5);
    CHECK(c->docs[0].first_sentence == 0 && c->docs[0].n_sentences == 2);
    CHECK(c->docs[2].first_sentence == 3 && c->docs[2].n_sentences == 2);
    CHECK_EQ_INT(c->sentence_start[1], 7);
    CHECK_EQ_INT(c->sentence_start[c->n_sentences], c->words.n);
    CHECK_EQ_INT(c->words.n, c->tags.n);
    CHECK(!strcmp(c->words.token[2], "council") && !strcmp(c->tags.token[2], "nn-tl"));
    CHECK(!strcmp(c->words.token[7], "Its") && !strcmp(c->tags.token[7], "pp$"));
    /* cut at the last '/': "3/2/cd" is the word 3/2 */
    CHECK(!strcmp(c->words.token[10], "3/2") && !strcmp(c->tags.token[10], "cd"));
    int64_t q = c->sentence_start[4];
    CHECK(!strcmp(c->words.token[q], "``") && !strcmp(c->tags.token[q], "``"));
    CHECK(!strcmp(c->words.token[q + 3], "''") && !strcmp(c->tags.token[q + 3], "''"));
    nb_corpus_free(c);
    nb_corpus_free(NULL);
    CHECK_BYTES_BACK("brown_read", before);
}

/* A corpus folder in tmpdir/name with cats.txt and the document cx01. */
static const char *corpus_dir(const char *name, const char *cats, const char *doc) {
    const char *dir = tpath(name);
    mkdir(dir, 0700);
    char path[600];
    snprintf(path, sizeof path, "%s/cats.txt", dir);
    if (cats) write_text(path, cats);
    snprintf(path, sizeof path, "%s/cx01", dir);
    if (doc) write_text(path, doc);
    return dir;
}

static void brown_read_names_the_file_line_and_column_of_bad_input(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    CHECK(!nb_brown_read(corpus_dir("none", NULL, NULL)));
    CHECK_ERROR(NB_ERR_IO, "cats.txt");
    CHECK(!nb_brown_read(corpus_dir("cats", "cx01 news extra\n", "a/at\n")));
    CHECK_ERROR(NB_ERR_IO, "cats.txt: line 1: expected \"id genre\"");
    CHECK(!nb_brown_read(corpus_dir("escape", "../cx01 news\n", "a/at\n")));
    CHECK_ERROR(NB_ERR_IO, "expected \"id genre\"");
    CHECK(!nb_brown_read(corpus_dir("nodocs", "\n\n", NULL)));
    CHECK_ERROR(NB_ERR_IO, "lists no documents");
    CHECK(!nb_brown_read(corpus_dir("missing", "cx01 news\ncx02 news\n", "a/at\n")));
    CHECK_ERROR(NB_ERR_IO, "cx02");
    CHECK(!nb_brown_read(corpus_dir("notag", "cx01 news\n", "\n\tThe/at dog barked/vbd\n")));
    CHECK_ERROR(NB_ERR_IO, "cx01: line 2, column 9: token \"dog\" is not word/TAG");
    CHECK(!nb_brown_read(corpus_dir("emptytag", "cx01 news\n", "\tThe/\n")));
    CHECK_ERROR(NB_ERR_IO, "token \"The/\" is not word/TAG");
    CHECK(!nb_brown_read(corpus_dir("latin1", "cx01 news\n", "\tna\xEFve/jj\n")));
    CHECK_ERROR(NB_ERR_IO, "byte 3 is not UTF-8");
    CHECK(!nb_brown_read(corpus_dir("empty", "cx01 news\n", "\n\n")));
    CHECK_ERROR(NB_ERR_IO, "hold no words");
    CHECK_BYTES_BACK("brown_read errors", before);
}

static void seq_batch_pads_to_the_longest_with_mask_and_lengths(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    const int32_t a[] = {5, 6, 7}, b[] = {8}, c[] = {9, 10};
    const int32_t *seqs[] = {a, b, c};
    const int64_t lens[] = {3, 1, 2};
    nb_seq_batch sb;
    CHECK(nb_seq_batch_make(&sb, seqs, lens, 3, NB_PAD_ID) == NB_OK);
    CHECK(sb.batch == 3 && sb.max_len == 3);
    CHECK(nb_dtype_of(sb.ids) == NB_I32 && nb_shape(sb.ids)[0] == 3 && nb_shape(sb.ids)[1] == 3);
    float ids[9], mask[9];
    CHECK(nb_copy_to(sb.ids, ids, 9) == NB_OK && nb_copy_to(sb.mask, mask, 9) == NB_OK);
    const float want_ids[9] = {5, 6, 7, 8, 0, 0, 9, 10, 0}, want_mask[9] = {1, 1, 1, 1, 0, 0, 1, 1, 0};
    for (int i = 0; i < 9; i++) {
        CHECK_EQ_INT(ids[i], want_ids[i]);
        CHECK_EQ_INT(mask[i], want_mask[i]);
    }
    CHECK(sb.lengths[0] == 3 && sb.lengths[1] == 1 && sb.lengths[2] == 2);
    nb_tensor_free(sb.ids);
    nb_tensor_free(sb.mask);
    nb_seq_batch_free(&sb);
    const int64_t with_empty[] = {3, 0, 2};
    CHECK(nb_seq_batch_make(&sb, seqs, with_empty, 3, NB_PAD_ID) != NB_OK);
    CHECK_ERROR(NB_ERR_ARG, "seq_batch: sequence 1 is empty");
    CHECK(nb_seq_batch_make(&sb, seqs, lens, 0, NB_PAD_ID) != NB_OK);
    CHECK_ERROR(NB_ERR_ARG, "batch 0 < 1");
    CHECK_BYTES_BACK("seq_batch", before);
}

static void bucket_order_groups_similar_lengths_and_shuffles_batches_by_epoch(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    enum { N = 40, B = 4 };
    int64_t lens[N], o0[N], o1[N], o0b[N];
    for (int i = 0; i < N; i++) lens[i] = 1 + (i * 7) % 23;
    CHECK(nb_bucket_order(lens, N, B, 42, 0, o0) == NB_OK);
    CHECK(nb_bucket_order(lens, N, B, 42, 0, o0b) == NB_OK);
    CHECK(nb_bucket_order(lens, N, B, 42, 1, o1) == NB_OK);
    CHECK(!memcmp(o0, o0b, sizeof o0));
    CHECK(memcmp(o0, o1, sizeof o0) != 0);
    /* a permutation, and each batch's lengths span no more than the sorted runs' */
    int seen[N] = {0}, spread = 0;
    for (int i = 0; i < N; i++) seen[o0[i]]++;
    for (int i = 0; i < N; i++) CHECK_EQ_INT(seen[i], 1);
    for (int r = 0; r < N / B; r++) {
        int64_t lo = 1 << 30, hi = 0;
        for (int k = 0; k < B; k++) {
            int64_t l = lens[o0[r * B + k]];
            lo = l < lo ? l : lo;
            hi = l > hi ? l : hi;
        }
        spread += (int)(hi - lo);
    }
    CHECK(spread <= N / B * 3); /* sorted runs of 4 among 40 lengths in 1..23 differ by <= 3 */
    CHECK(nb_bucket_order(lens, N, 0, 42, 0, o0) != NB_OK);
    CHECK_ERROR(NB_ERR_ARG, "batch_size 0");
    CHECK_BYTES_BACK("bucket_order", before);
}

static void lm_dataset_gives_windows_shifted_by_one_through_the_loader(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    int32_t stream[11];
    for (int i = 0; i < 11; i++) stream[i] = 100 + i;
    nb_dataset *ds = nb_lm_dataset_new(stream, 11, 4, 3); /* windows at 0, 3, 6 */
    CHECK_EQ_INT(nb_dataset_len(ds), 3);
    nb_loader *l = nb_loader_new(ds, (nb_loader_opts){.batch_size = 3});
    nb_tensor *x = NULL, *y = NULL;
    CHECK(nb_loader_next(l, &x, &y));
    float xs[12], ys[12];
    CHECK(nb_copy_to(x, xs, 12) == NB_OK && nb_copy_to(y, ys, 12) == NB_OK);
    for (int w = 0; w < 3; w++)
        for (int t = 0; t < 4; t++) {
            CHECK_EQ_INT(xs[w * 4 + t], 100 + 3 * w + t);
            CHECK_EQ_INT(ys[w * 4 + t], 101 + 3 * w + t);
        }
    nb_tensor *xi = nb_to_dtype(x, NB_I32); /* the ids an Embedding takes */
    CHECK(nb_dtype_of(xi) == NB_I32 && nb_get(xi, (int64_t[]){2, 3}) == 109);
    nb_tensor_free(xi);
    nb_loader_free(l);
    nb_dataset_free(ds);
    CHECK(!nb_lm_dataset_new(stream, 4, 4, 1));
    CHECK_ERROR(NB_ERR_ARG, "at least context + 1 tokens");
    stream[5] = -3;
    CHECK(!nb_lm_dataset_new(stream, 11, 4, 1));
    CHECK_ERROR(NB_ERR_ARG, "stream[5] = -3");
    CHECK_BYTES_BACK("lm_dataset", before);
}

static void brown_convert_and_load_give_the_corpus_back_as_ids(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    const char *out = tpath("compact");
    mkdir(out, 0700);
    CHECK(nb_brown_convert(SAMPLE, out) == NB_OK);
    nb_corpus *c = nb_brown_read(SAMPLE);
    nb_corpus_ids *k = nb_brown_load(out);
    CHECK(c && k);
    if (c && k) {
        CHECK(k->n_docs == c->n_docs && k->n_sentences == c->n_sentences && k->n_words == c->words.n);
        for (int64_t d = 0; d < c->n_docs; d++) {
            CHECK(!strcmp(k->docs[d].id, c->docs[d].id) && k->docs[d].genre == c->docs[d].genre);
            CHECK(k->docs[d].first_sentence == c->docs[d].first_sentence);
            CHECK(k->docs[d].n_sentences == c->docs[d].n_sentences);
        }
        for (int64_t g = 0; g < c->genres.n; g++) CHECK(!strcmp(k->genres.token[g], c->genres.token[g]));
        for (int64_t s = 0; s <= c->n_sentences; s++) CHECK_EQ_INT(k->sentence_start[s], c->sentence_start[s]);
        int same = 0;
        for (int64_t i = 0; i < c->words.n; i++)
            same += !strcmp(nb_vocab_token(k->word_vocab, k->words[i]), c->words.token[i]) &&
                    !strcmp(nb_vocab_token(k->tag_vocab, k->tags[i]), c->tags.token[i]);
        CHECK_EQ_INT(same, c->words.n);
        CHECK_EQ_INT(nb_vocab_id(k->word_vocab, "."), 2); /* the most frequent: 5 times */
        CHECK_EQ_INT(nb_vocab_id(k->word_vocab, "the"), 3); /* 4 times */
    }
    nb_corpus_ids_free(k);
    nb_corpus_free(c);
    nb_corpus_ids_free(NULL);
    CHECK(nb_brown_convert(tpath("no_such_package"), out) != NB_OK);
    CHECK_ERROR(NB_ERR_IO, "no_such_package/cats.txt");
    CHECK_BYTES_BACK("brown_convert", before);
}

/* Copies file `name` of folder from into folder to. */
static void copy_file(const char *from, const char *to, const char *name) {
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/%s", from, name);
    snprintf(b, sizeof b, "%s/%s", to, name);
    size_t n;
    void *data = read_all(a, &n);
    write_bytes(b, data, n);
    free(data);
}

/* A copy of the compact form in tmpdir/name with file `file` replaced by bytes[0..n). */
static const char *edited_copy(const char *name, const char *file, const void *bytes, size_t n) {
    static const char *const files[] = {"corpus.json", "words.vocab.json", "tags.vocab.json",
                                        "words.i32", "tags.i32", "sentences.i64"};
    const char *dir = tpath(name);
    mkdir(dir, 0700);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) copy_file(tpath("compact"), dir, files[i]);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    write_bytes(path, bytes, n);
    return dir;
}

static void brown_load_refuses_cut_and_edited_files_naming_them(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    size_t n;
    char path[600];
    snprintf(path, sizeof path, "%s/words.i32", tpath("compact"));
    unsigned char *words = read_all(path, &n);
    CHECK(n > 8);
    CHECK(!nb_brown_load(edited_copy("cut", "words.i32", words, n - 4)));
    CHECK_ERROR(NB_ERR_IO, "words.i32: expected");
    unsigned char *longer = malloc(n + 4);
    memcpy(longer, words, n);
    memset(longer + n, 0, 4);
    CHECK(!nb_brown_load(edited_copy("long", "words.i32", longer, n + 4)));
    CHECK_ERROR(NB_ERR_IO, "the file's length differs");
    words[4] = 0xFF; /* word 1 gets a huge id */
    CHECK(!nb_brown_load(edited_copy("badid", "words.i32", words, n)));
    CHECK_ERROR(NB_ERR_IO, "word 1 has an id out of its vocabulary");
    free(words);
    free(longer);
    const char *json = "{\"format\": \"nabla.brown\", \"words\": 5, \"sentences\": 1, \"genres\": [\"x\"],"
                       " \"docs\": [{\"id\": \"a\", \"genre\": 3, \"sentences\": [0, 1]}]}";
    CHECK(!nb_brown_load(edited_copy("genre", "corpus.json", json, strlen(json))));
    CHECK_ERROR(NB_ERR_IO, "genre out of range");
    CHECK(!nb_brown_load(edited_copy("json", "corpus.json", "{\"format\":", 11)));
    CHECK_ERROR(NB_ERR_IO, "corpus.json: line 1");
    CHECK(!nb_brown_load(edited_copy("other", "corpus.json", "{}", 2)));
    CHECK_ERROR(NB_ERR_IO, "not a converted corpus");
    CHECK(!nb_brown_load(tpath("nothing_here")));
    CHECK_ERROR(NB_ERR_IO, "nothing_here/corpus.json");
    CHECK_BYTES_BACK("brown_load errors", before);
}

int main(void) {
    if (!tmpdir_make("nb_test_text")) return 1;
    utf8_check_accepts_code_points_and_names_the_first_bad_byte();
    text_read_returns_the_file_and_refuses_latin1_with_its_offset();
    tokenize_chars_gives_one_token_per_code_point();
    tokenize_words_lowers_splits_punctuation_and_drops_stop_words();
    vocab_build_orders_by_count_and_keeps_pad_and_unk_first();
    vocab_grows_past_its_first_table();
    vocab_encode_decode_round_trip_and_decode_names_a_bad_id();
    vocab_save_and_load_round_trip_and_refuse_garbled_files();
    brown_read_gives_documents_genres_sentences_words_and_tags();
    brown_read_names_the_file_line_and_column_of_bad_input();
    seq_batch_pads_to_the_longest_with_mask_and_lengths();
    bucket_order_groups_similar_lengths_and_shuffles_batches_by_epoch();
    lm_dataset_gives_windows_shifted_by_one_through_the_loader();
    brown_convert_and_load_give_the_corpus_back_as_ids();
    brown_load_refuses_cut_and_edited_files_naming_them();
    tmpdir_remove();
    return check_summary();
}
