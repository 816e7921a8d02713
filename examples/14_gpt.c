/*
 * 14_gpt.c — a character-level GPT on the Brown corpus, as the course's nanoGPT notebook
 * builds one: the text as characters, a vocabulary, random windows as batches, the model
 * (nabla/gpt.h: 4 blocks of 4 heads, width 128, context 128), AdamW with warm-up and cosine
 * decay, and a sample after training.  `nabla text gpt train` does the same with validation,
 * curves and saving; this file shows the library calls one by one.
 * Run as ./example_14_gpt BROWN_DIR [steps] with BROWN_DIR from `nabla convert-brown` (or
 * `sh tools/brown.sh build`); 200 steps by default (minutes on one core).
 * Only the public header is used.
 */
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BATCH = 16, CONTEXT = 128 };

/* text = " ".join(words): the corpus's words joined by spaces (malloc'd) */
static char *corpus_text(const nb_corpus_ids *c) {
    size_t n = 1;
    for (int64_t i = 0; i < c->n_words; i++) n += strlen(nb_vocab_token(c->word_vocab, c->words[i])) + 1;
    char *s = malloc(n), *p = s;
    for (int64_t i = 0; s && i < c->n_words; i++) {
        p = stpcpy(p, nb_vocab_token(c->word_vocab, c->words[i]));
        *p++ = ' ';
    }
    if (s) *p = 0;
    return s;
}

int main(int argc, char **argv) {
    if (argc < 2) return fprintf(stderr, "usage: %s BROWN_DIR [steps]\n", argv[0]), 2;
    int steps = argc > 2 ? atoi(argv[2]) : 200;
    nb_corpus_ids *c = nb_brown_load(argv[1]);
    char *text = c ? corpus_text(c) : NULL;
    nb_corpus_ids_free(c);
    if (!text) return fprintf(stderr, "%s\n", nb_error_message()), 1;

    /* chars = sorted(set(text)); data = [stoi[ch] for ch in text] */
    nb_tokens *chars = nb_tokenize_chars(text);
    nb_vocab *vocab = nb_vocab_build((const char *const *)chars->token, chars->n, (nb_vocab_opts){0});
    int32_t *data = malloc(sizeof(int32_t) * (size_t)chars->n);
    nb_vocab_encode(vocab, (const char *const *)chars->token, chars->n, data);
    int64_t n = chars->n;
    nb_tokens_free(chars);
    free(text);
    printf("%lld characters, %d ids\n", (long long)n, nb_vocab_size(vocab));

    /* model = GPT(config); optimizer = model.configure_optimizers(...) */
    nb_manual_seed(1337);
    nb_module *model = nb_gpt_new((nb_gpt_opts){.vocab_size = nb_vocab_size(vocab), .context = CONTEXT});
    nb_sched *sched = NULL;
    nb_optim *opt = nb_gpt_optim_new(model, &(nb_gpt_optim_opts){.steps = steps, .warmup = steps / 10}, &sched);
    printf("%lld parameters\n", (long long)nb_module_num_elements(model));

    /* for it in range(steps): xb, yb = get_batch('train'); loss = model(xb, yb); ... */
    int32_t x[BATCH * CONTEXT], y[BATCH * CONTEXT];
    srand(1);
    for (int it = 1; it <= steps; it++) {
        for (int b = 0; b < BATCH; b++) {
            int64_t at = (int64_t)(((double)rand() / ((double)RAND_MAX + 1)) * (double)(n - CONTEXT - 1));
            memcpy(x + b * CONTEXT, data + at, sizeof(int32_t) * CONTEXT);
            memcpy(y + b * CONTEXT, data + at + 1, sizeof(int32_t) * CONTEXT);
        }
        double loss = 0;
        nb_scope_begin();
        nb_status st = nb_gpt_train_step(model, opt, sched, nb_from_int32(x, NB_SHAPE(BATCH, CONTEXT)),
                                         nb_from_int32(y, NB_SHAPE(BATCH, CONTEXT)), 1.0f, &loss);
        nb_scope_end();
        if (st != NB_OK) return fprintf(stderr, "step %d: %s\n", it, nb_error_message()), 1;
        if (it % 20 == 0 || it == 1) printf("step %d: loss %.4f\n", it, loss);
    }

    /* model.generate(context, max_new_tokens=200, temperature=0.8, top_k=20) */
    int32_t prompt[1] = {nb_vocab_id(vocab, "T")}, out[200];
    const char *tokens[200];
    nb_gpt_generate(model, prompt, 1, 200, &(nb_gpt_sample_opts){.temperature = 0.8f, .top_k = 20, .seed = 1}, out);
    nb_vocab_decode(vocab, out, 200, tokens);
    printf("T");
    for (int i = 0; i < 200; i++) printf("%s", out[i] >= 2 ? tokens[i] : "");
    printf("\n");

    nb_sched_free(sched);
    nb_optim_free(opt);
    nb_module_free(model);
    nb_vocab_free(vocab);
    free(data);
    return 0;
}
