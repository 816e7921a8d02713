/*
 * test_bpe.c — byte-level BPE (src/text/bpe.c): the merges learnt on a small text, encoding with
 * them (training text shrinks, any UTF-8 text round-trips byte for byte, nothing is <unk>),
 * saving and loading the merges, and every bad input refused with its offset or id.
 */
#include "check.h"
#include "tmpdir.h"

/* Encodes text and decodes it back; true when the bytes are the same.  *n_ids gets the count. */
static bool round_trips(const nb_bpe *b, const char *text, int64_t *n_ids) {
    int64_t cap = (int64_t)strlen(text) + 1;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    int64_t n = nb_bpe_encode(b, text, ids, cap);
    char *back = n >= 0 ? nb_bpe_decode(b, ids, n) : NULL;
    bool same = back && !strcmp(back, text);
    for (int64_t i = 0; i < n; i++) same = same && ids[i] >= 2 && ids[i] < nb_bpe_size(b);
    if (n_ids) *n_ids = n;
    nb_text_free(back);
    free(ids);
    return same;
}

static void bpe_learns_the_frequent_pairs_first(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    /* " low" x5, " lower" x2, " newest" x6, " widest" x3: Sennrich et al.'s example */
    const char *text = " low low low low low lower lower newest newest newest newest newest newest"
                       " widest widest widest";
    nb_bpe *b = nb_bpe_train(text, NB_BPE_BYTES + 4);
    CHECK_EQ_INT(nb_bpe_size(b), NB_BPE_BYTES + 4);
    /* "es" and "st" occur 9 times (" newest" x6, " widest" x3), "we" 8, " l" 7: "es" first (a
     * tie broken by the smaller ids, 'e' < 's'), then "est", 9 times */
    int32_t ids[8];
    CHECK_EQ_INT(nb_bpe_encode(b, "es", ids, 8), 1);
    CHECK_EQ_INT(ids[0], NB_BPE_BYTES);
    CHECK_EQ_INT(nb_bpe_encode(b, "est", ids, 8), 1);
    CHECK_EQ_INT(ids[0], NB_BPE_BYTES + 1);
    int64_t n;
    CHECK(round_trips(b, text, &n));
    CHECK(n < (int64_t)strlen(text));
    nb_bpe_free(b);
    nb_bpe_free(NULL);
    CHECK_BYTES_BACK("bpe_train", before);
}

static void bpe_round_trips_any_utf8_text_byte_for_byte(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    const char *train = "the cat sat on the mat. the cat ate the rat. the rat sat.\n"
                        "caf\xC3\xA9 au lait, caf\xC3\xA9 noir.\n";
    nb_bpe *b = nb_bpe_train(train, 300);
    CHECK(b && nb_bpe_size(b) > NB_BPE_BYTES && nb_bpe_size(b) <= 300);
    int64_t n_train, n_other;
    CHECK(round_trips(b, train, &n_train));
    CHECK(5 * n_train < 3 * (int64_t)strlen(train)); /* 45 ids for 85 bytes */
    /* text never seen: other letters, a tab and several spaces, an emoji, no final newline */
    const char *other = "  Zebras\tjump \xE2\x82\xAC" "5 \xF0\x9F\x98\x80  over   the mat";
    CHECK(round_trips(b, other, &n_other));
    CHECK(round_trips(b, "", &n_other) && n_other == 0);
    nb_bpe_free(b);
    b = nb_bpe_train("", 300); /* no pairs: the bytes only */
    CHECK_EQ_INT(nb_bpe_size(b), NB_BPE_BYTES);
    CHECK(round_trips(b, "abc", &n_other) && n_other == 3);
    nb_bpe_free(b);
    CHECK_BYTES_BACK("bpe round trip", before);
}

static void bpe_save_and_load_give_the_same_encoding(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    const char *train = "abab abab abcabc abc abc ab ab";
    nb_bpe *b = nb_bpe_train(train, 270);
    CHECK(nb_bpe_save(b, tpath("bpe.json")) == NB_OK);
    nb_bpe *c = nb_bpe_load(tpath("bpe.json"));
    CHECK_EQ_INT(nb_bpe_size(c), nb_bpe_size(b));
    int32_t x[64], y[64];
    int64_t nx = nb_bpe_encode(b, train, x, 64), ny = nb_bpe_encode(c, train, y, 64);
    CHECK(nx > 0 && nx == ny && !memcmp(x, y, (size_t)nx * sizeof *x));
    nb_bpe_free(c);
    nb_bpe_free(b);
    static const struct { const char *json, *needle; } bad[] = {
        {"{\"format\": \"nabla.bpe\", \"merges\": [[", "line 1"},
        {"{\"format\": \"nabla.vocab\", \"merges\": []}", "not BPE merges"},
        {"{\"format\": \"nabla.bpe\", \"merges\": [[100, 258]]}", "merge 0 is not a pair of ids in [2, 258)"},
        {"{\"format\": \"nabla.bpe\", \"merges\": [[100, 101], [258, 1]]}", "merge 1"},
        {"{\"format\": \"nabla.bpe\", \"merges\": [[100]]}", "merge 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_text(tpath("bad.json"), bad[i].json);
        CHECK(!nb_bpe_load(tpath("bad.json")));
        CHECK_STR_CONTAINS(nb_error_message(), tpath("bad.json"));
        CHECK_ERROR(NB_ERR_IO, bad[i].needle);
    }
    CHECK_BYTES_BACK("bpe save/load", before);
}

static void bpe_refuses_bad_ids_bad_text_and_small_buffers(void) {
    size_t before = nb_alloc_stats_get().bytes_live;
    nb_bpe *b = nb_bpe_train("aaaa aaaa", 260);
    int32_t ids[16];
    CHECK(!nb_bpe_train("ok", 257));
    CHECK_ERROR(NB_ERR_ARG, "vocab_size 257 is below the 258 ids");
    CHECK(!nb_bpe_train("caf\xE9", 300));
    CHECK_ERROR(NB_ERR_ARG, "bpe_train: byte 3 is not UTF-8");
    CHECK_EQ_INT(nb_bpe_encode(b, "x\xFFy", ids, 16), -1);
    CHECK_ERROR(NB_ERR_ARG, "bpe_encode: byte 1 is not UTF-8");
    CHECK_EQ_INT(nb_bpe_encode(b, "abcd", ids, 3), -1);
    CHECK_ERROR(NB_ERR_ARG, "cap 3 is below the text's 4 bytes");
    const int32_t out_of_range[] = {2 + 'a', 9999};
    CHECK(!nb_bpe_decode(b, out_of_range, 2));
    CHECK_ERROR(NB_ERR_ARG, "bpe_decode: ids[1] = 9999 is not below");
    const int32_t half_char[] = {2 + 'a', 2 + 0xC3}; /* the first byte of 'é' alone */
    CHECK(!nb_bpe_decode(b, half_char, 2));
    CHECK_ERROR(NB_ERR_ARG, "byte 1 is not UTF-8");
    const int32_t padded[] = {2 + 'h', 2 + 'i', NB_PAD_ID, NB_PAD_ID};
    char *hi = nb_bpe_decode(b, padded, 4);
    CHECK(hi && !strcmp(hi, "hi"));
    nb_text_free(hi);
    nb_bpe_free(b);
    CHECK_BYTES_BACK("bpe errors", before);
}

int main(void) {
    if (!tmpdir_make("nb_test_bpe")) return 1;
    bpe_learns_the_frequent_pairs_first();
    bpe_round_trips_any_utf8_text_byte_for_byte();
    bpe_save_and_load_give_the_same_encoding();
    bpe_refuses_bad_ids_bad_text_and_small_buffers();
    tmpdir_remove();
    return check_summary();
}
