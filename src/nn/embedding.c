/*
 * embedding.c — the Embedding module: a table of num_embeddings rows of embedding_dim floats,
 * looked up by int32 ids (nb_embedding, src/ops/embedding.c; with max_norm the rows looked up
 * are renormalised in place first).  torch's reset_parameters:
 * weight ~ N(0, 1), then the padding row set to zeros.
 */
#include "module.h"

typedef struct {
    int64_t num_embeddings, embedding_dim;
    nb_embedding_opts opts; /* padding_idx normalised to [0, V) */
    nb_tensor *weight;
} embedding_state;

static nb_tensor *embedding_forward(nb_module *m, nb_tensor *ids) {
    const embedding_state *s = NB__STATE(embedding_state, m);
    return nb_embedding(ids, s->weight, &s->opts);
}

static void embedding_describe(const nb_module *m, nb_attrs *d) {
    const embedding_state *s = NB__STATE(embedding_state, m);
    nb_attrs_int(d, "num_embeddings", s->num_embeddings)->flags = NB_ATTR_POSITIONAL;
    nb_attrs_int(d, "embedding_dim", s->embedding_dim)->flags = NB_ATTR_POSITIONAL;
    if (s->opts.padding) nb_attrs_int(d, "padding_idx", s->opts.padding_idx);
    if (s->opts.max_norm > 0) nb_attrs_float(d, "max_norm", s->opts.max_norm);
}

static const nb_module_class embedding_class = {.name = "Embedding", .forward = embedding_forward,
                                                .describe = embedding_describe};

/* Zeros in row pad of w, with recording off (a leaf is changed in place, as torch's no_grad). */
static nb_status zero_row(nb_tensor *w, int64_t pad) {
    bool was = nb_set_grad_enabled(false);
    nb_tensor *row = nb_slice(w, 0, pad, pad + 1, 1);
    nb_status st = row ? nb_fill(row, 0.0f) : nb_error_code();
    nb_tensor_free(row);
    nb_set_grad_enabled(was);
    return st;
}

nb_module *nb_embedding_new(int64_t num_embeddings, int64_t embedding_dim, nb_embedding_opts opts) {
    if (num_embeddings < 1 || embedding_dim < 1)
        return nb__fail(NB_ERR_ARG, "Embedding: sizes must be positive, got num_embeddings=%lld "
                        "embedding_dim=%lld", (long long)num_embeddings, (long long)embedding_dim);
    if (opts.padding && (opts.padding_idx < -num_embeddings || opts.padding_idx >= num_embeddings))
        return nb__fail(NB_ERR_ARG, "Embedding: padding_idx %lld must be within num_embeddings "
                        "(%lld)", (long long)opts.padding_idx, (long long)num_embeddings);
    if (!(opts.max_norm >= 0))
        return nb__fail(NB_ERR_ARG, "Embedding: max_norm must be >= 0 (0: none), got %g",
                        (double)opts.max_norm);
    if (opts.padding && opts.padding_idx < 0) opts.padding_idx += num_embeddings;
    nb_module *m = nb_module_new(&embedding_class, sizeof(embedding_state));
    if (!m) return NULL;
    embedding_state *s = NB__STATE(embedding_state, m);
    *s = (embedding_state){num_embeddings, embedding_dim, opts, NULL};
    s->weight = nb_module_add_param(m, "weight", NB_SHAPE(num_embeddings, embedding_dim));
    if (!s->weight || nb_init_normal(s->weight, 0.0f, 1.0f) != NB_OK ||
        (opts.padding && zero_row(s->weight, opts.padding_idx) != NB_OK)) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}
