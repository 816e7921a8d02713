/*
 * internal.h — what the files of src/text share: UTF-8 decoding and the token list's append.
 */
#ifndef NB_TEXT_INTERNAL_H
#define NB_TEXT_INTERNAL_H

#include "../core/core.h"
#include "nabla/text.h"

/* The length (1..4) of the well-formed UTF-8 sequence at s[0..n), or 0 when s does not start
 * one; *why (unless NULL) then says why, for messages. */
int nb__utf8_len(const unsigned char *s, size_t n, const char **why);
/* Appends a copy of s[0..n) (NUL-terminated) to t; false with NB_ERR_MEMORY. */
bool nb__tokens_push(nb_tokens *t, const char *s, size_t n);
/* Releases t's tokens and leaves it empty (for a list inside another struct). */
void nb__tokens_clear(nb_tokens *t);
/* An empty list from the counted allocator (NULL with NB_ERR_MEMORY). */
nb_tokens *nb__tokens_new(void);

/* Makes room for `need` elements of `elem` bytes in *p (capacity *cap, doubled as needed,
 * contents kept); false with NB_ERR_MEMORY. */
bool nb__grow(void **p, int64_t *cap, int64_t need, size_t elem);

/* word2vec's learning rate for word i of the nk kept (after subsampling) in epoch ep of epochs:
 * falls linearly with the share of the training done, to lr 1e-4 (src/text/word2vec.c). */
float nb__word2vec_lr(float lr, int32_t ep, int32_t epochs, int64_t i, int64_t nk);

#endif
