/*
 * gpt.c — a decoder-only transformer language model (nabla/gpt.h): token and position
 * embeddings, pre-norm TransformerEncoderLayer blocks run with a causal mask, a final LayerNorm
 * and an untied Linear head; its training step; and generation, with each block's keys and
 * values kept in a cache (nb_kv_cache) so that a new token costs one position's work.
 *
 * The cached path (block_step) computes what transformer.c's pre-norm layer computes, from the
 * layer's own parameters: x + out_proj(sdpa(q, K, V)) with q, k, v from norm1(x) through
 * in_proj, then x + linear2(gelu(linear1(norm2(x)))), where K and V hold every cached position.
 * tests/test_gpt.c checks that both paths give the same logits.
 *
 * Sampling follows the usual order (nanoGPT, Hugging Face's generate): logits / temperature,
 * top-k, softmax, top-p over the falling probabilities (Holtzman et al. 2019), then one draw.
 */
#include "module.h"
#include "nabla/gpt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    nb_gpt_opts o;
    nb_module *wte, *wpe, *drop, *ln_f, *lm_head;
    nb_module **h; /* [n_layer], children of the container "h" */
    nb_tensor *pe; /* the sinusoidal table (a buffer) when opts.sinusoidal */
} gpt_state;

static const nb_module_class gpt_class, gpt_list_class;

/* ---- the model */

static nb_gpt_opts with_defaults(nb_gpt_opts o) {
    if (!o.context) o.context = 128;
    if (!o.n_layer) o.n_layer = 4;
    if (!o.n_head) o.n_head = 4;
    if (!o.n_embd) o.n_embd = 128;
    if (!o.dim_feedforward) o.dim_feedforward = 4 * o.n_embd;
    return o;
}

/* int32 ids [B, T] of ids given as int32 or as float32 whole numbers. */
static nb_tensor *ids_of(nb__temps *tmp, nb_tensor *ids, const char *what) {
    if (nb_ndim(ids) != 2)
        return nb__fail(NB_ERR_SHAPE, "gpt: %s %s must be [B, T]", what, NB_SHP(ids));
    if (nb_dtype_of(ids) == NB_I32) return ids;
    if (nb_dtype_of(ids) != NB_F32)
        return nb__fail(NB_ERR_DTYPE, "gpt: %s must be int32 or float32 ids", what);
    return nb__tmp(tmp, nb_to_dtype(ids, NB_I32));
}

/* Token plus position embeddings of ids [B, T] at positions offset .. offset + T - 1. */
static nb_tensor *embed(nb__temps *tmp, const gpt_state *s, nb_tensor *ids, int64_t offset) {
    int64_t t = nb_shape(ids)[1];
    nb_tensor *tok = nb__tmp(tmp, nb_module_forward(s->wte, ids)), *pos;
    if (!tok) return NULL;
    if (s->pe) pos = nb__tmp(tmp, nb_positions_slice(s->pe, offset, t));
    else pos = nb__tmp(tmp, nb_module_forward(s->wpe, nb__tmp(tmp, nb_position_ids(offset, t, s->o.context))));
    return nb__tmp(tmp, nb_module_forward(s->drop, nb__tmp(tmp, nb_add(tok, pos))));
}

static nb_tensor *head(nb__temps *tmp, const gpt_state *s, nb_tensor *x) {
    return nb__tmp(tmp, nb_module_forward(s->lm_head, nb__tmp(tmp, nb_module_forward(s->ln_f, x))));
}

nb_tensor *nb_gpt_forward(nb_module *m, nb_tensor *ids) {
    const gpt_state *s = nb_module_state(m, &gpt_class);
    if (!s) return NULL;
    if (!nb_is_alive(ids)) return nb__fail_input("gpt", ids);
    nb__temps tmp = {0};
    nb_tensor *x = ids_of(&tmp, ids, "ids");
    x = x ? embed(&tmp, s, x, 0) : NULL;
    const nb_mha_inputs causal = {.is_causal = true};
    for (int64_t l = 0; x && l < s->o.n_layer; l++)
        x = nb__tmp(&tmp, nb_transformer_encoder_layer_forward(s->h[l], x, &causal));
    return nb__temps_end(&tmp, x ? head(&tmp, s, x) : NULL);
}

static nb_tensor *gpt_forward(nb_module *m, nb_tensor *ids) { return nb_gpt_forward(m, ids); }

nb_tensor *nb_gpt_loss(nb_module *m, nb_tensor *x, nb_tensor *y) {
    if (!nb_is_alive(y)) return nb__fail_input("gpt_loss", y);
    if (nb_is_alive(x) && !nb__same_shape(x, y))
        return nb__fail(NB_ERR_SHAPE, "gpt_loss: targets %s must have the shape of the ids %s",
                        NB_SHP(y), NB_SHP(x));
    nb__temps tmp = {0};
    nb_tensor *logits = nb__tmp(&tmp, nb_gpt_forward(m, x)), *yi = logits ? ids_of(&tmp, y, "targets") : NULL;
    if (!yi) return nb__temps_end(&tmp, NULL);
    int64_t n = nb_shape(yi)[0] * nb_shape(yi)[1], v = nb_shape(logits)[2];
    nb_tensor *flat = nb__tmp(&tmp, nb_reshape(logits, 2, (int64_t[]){n, v}));
    nb_tensor *target = nb__tmp(&tmp, nb_reshape(yi, 1, &n));
    return nb__temps_end(&tmp, nb__tmp(&tmp, nb_cross_entropy(flat, target, NULL)));
}

/* torch.nn.utils.clip_grad_norm_ over m's trainable parameters; a GPT has a few dozen, so the
 * list lives on the stack and a step allocates nothing here. */
static nb_status clip(nb_module *m, float max_norm) {
    nb_tensor *stack[256], **p = stack;
    int n = nb_module_trainable_parameters(m, NULL, 0);
    if (n > 256 && !(p = nb__alloc(sizeof *p * (size_t)n))) return nb_error_code();
    nb_module_trainable_parameters(m, p, n);
    float norm = nb_clip_grad_norm(n, p, max_norm, 2.0f);
    if (p != stack) nb__dealloc(p, sizeof *p * (size_t)n);
    return isfinite(norm) ? NB_OK
                          : nb__fail_status(NB_ERR_VALUE, "gpt_train_step: the gradients' norm is %g", norm);
}

nb_status nb_gpt_train_step(nb_module *m, nb_optim *o, nb_sched *s, nb_tensor *x, nb_tensor *y,
                            float clip_norm, double *loss) {
    if (!o || !loss) return nb__fail_status(NB_ERR_NULL, "gpt_train_step: optimiser or loss is NULL");
    nb_scope_begin();
    nb_status st = nb_optim_zero_grad(o);
    nb_tensor *l = st == NB_OK ? nb_gpt_loss(m, x, y) : NULL;
    if (!l && st == NB_OK) st = nb_error_code();
    if (l) {
        *loss = nb_item(l);
        if (!isfinite(*loss))
            st = nb__fail_status(NB_ERR_VALUE, "gpt_train_step: the loss is %g", *loss);
    }
    if (st == NB_OK) st = nb_backward(l);
    if (st == NB_OK && clip_norm > 0) st = clip(m, clip_norm);
    if (st == NB_OK) st = nb_optim_step(o);
    if (st == NB_OK && s) st = nb_sched_step(s);
    nb_scope_end();
    return st;
}

/* A zero option takes its default; NB_ZERO (a negative zero) is a real 0. */
static double or_default(double v, double dflt) { return v == 0 && !signbit(v) ? dflt : v; }

nb_optim *nb_gpt_optim_new(nb_module *m, const nb_gpt_optim_opts *o, nb_sched **sched) {
    if (!sched || !o) return nb__fail(NB_ERR_NULL, "gpt_optim: options or sched is NULL");
    *sched = NULL;
    if (!nb_module_state(m, &gpt_class)) return NULL;
    if (o->steps < 1 || o->warmup < 0 || o->warmup >= o->steps)
        return nb__fail(NB_ERR_ARG, "gpt_optim: %d steps and %d of warm-up: steps must be positive "
                        "and the warm-up shorter", o->steps, o->warmup);
    double lr = or_default(o->lr, 1e-3);
    int n = nb_module_trainable_parameters(m, NULL, 0), nd = 0, np = 0;
    size_t bytes = sizeof(nb_tensor *) * (size_t)(2 * n + 1);
    nb_tensor **all = nb__alloc(bytes);
    if (!all) return NULL;
    nb_module_trainable_parameters(m, all, n);
    nb_tensor **decay = all + n, **plain; /* the second half: matrices first, then the rest */
    for (int i = 0; i < n; i++)
        if (nb_ndim(all[i]) >= 2) decay[nd++] = all[i];
    plain = decay + nd;
    for (int i = 0; i < n; i++)
        if (nb_ndim(all[i]) < 2) plain[np++] = all[i];
    nb_adamw_opts ao = {.lr = lr, .beta2 = or_default(o->beta2, 0.99), .weight_decay = or_default(o->weight_decay, 0.1)};
    if (ao.weight_decay == 0) ao.weight_decay = NB_ZERO;
    nb_optim *opt = nb_adamw_new(nd, decay, ao);
    nb_group_opts none = {.weight_decay = NB_ZERO};
    if (opt && np && nb_optim_add_group(opt, np, plain, &none) != NB_OK) nb_optim_free(opt), opt = NULL;
    nb__dealloc(all, bytes);
    if (!opt) return NULL;
    int warm = o->warmup;
    nb_sched *cosine = nb_cosinelr_new(opt, o->steps - warm, or_default(o->min_lr, lr / 10));
    if (warm > 0) /* SequentialLR takes both, also when one failed */
        *sched = nb_sequentiallr_new(opt, 2, (nb_sched *[]){nb_linearlr_new(opt, 1.0 / warm, 1.0, warm), cosine}, &warm);
    else *sched = cosine;
    if (!*sched) nb_optim_free(opt), opt = NULL;
    return opt;
}

/* ---- generation */

/* Block l of the model on x [1, t, E] at the cache's next positions; t > 1 only on an empty
 * cache (the prompt), where the causal mask is the full forward's. */
static nb_tensor *block_step(nb__temps *tmp, const gpt_state *s, int64_t l, nb_kv_cache *c, nb_tensor *x) {
    nb_module *b = s->h[l];
    int64_t e = s->o.n_embd, nh = s->o.n_head, t = nb_shape(x)[1];
    nb_tensor *h = nb__tmp(tmp, nb_module_forward(nb_module_child(b, "norm1"), x));
    nb_tensor *qkv = nb__tmp(tmp, nb_linear(h, nb_module_find(b, "self_attn.in_proj_weight"),
                                            nb_module_find(b, "self_attn.in_proj_bias")));
    nb_tensor *part[3];
    for (int i = 0; i < 3; i++) { /* [1, t, E] -> [1, H, t, Dh] */
        nb_tensor *p = nb__tmp(tmp, nb_slice(qkv, 2, i * e, (i + 1) * e, 1));
        p = nb__tmp(tmp, nb_reshape(nb__tmp(tmp, nb_contiguous(p)), 4, (int64_t[]){1, t, nh, e / nh}));
        part[i] = nb__tmp(tmp, nb_permute(p, 4, (int[]){0, 2, 1, 3}));
    }
    nb_tensor *k = NULL, *v = NULL;
    if (!part[2] || nb_kv_cache_append(c, part[1], part[2], &k, &v) != NB_OK) return NULL;
    nb__tmp(tmp, k), nb__tmp(tmp, v);
    nb_sdpa_opts so = {.causal = t > 1};
    nb_tensor *a = nb__tmp(tmp, nb_scaled_dot_product_attention(part[0], k, v, &so));
    a = nb__tmp(tmp, nb_reshape(nb__tmp(tmp, nb_permute(a, 4, (int[]){0, 2, 1, 3})), 3, (int64_t[]){1, t, e}));
    x = nb__tmp(tmp, nb_add(x, nb__tmp(tmp, nb_module_forward(nb_module_child(b, "self_attn.out_proj"), a))));
    h = nb__tmp(tmp, nb_module_forward(nb_module_child(b, "norm2"), x));
    h = nb__tmp(tmp, nb_gelu(nb__tmp(tmp, nb_module_forward(nb_module_child(b, "linear1"), h))));
    return nb__tmp(tmp, nb_add(x, nb__tmp(tmp, nb_module_forward(nb_module_child(b, "linear2"), h))));
}

/* The last position's logits [V] into out, for window[0..n): through the caches (which hold
 * the positions before window[n - 1], or nothing, when the whole window is run), or, with
 * caches NULL, through the full forward. */
static nb_status last_logits(const gpt_state *s, nb_module *m, nb_kv_cache **caches,
                             const int32_t *window, int64_t n, float *out) {
    bool fresh = !caches || nb_kv_cache_len(caches[0]) == 0;
    const int32_t *feed = fresh ? window : window + n - 1;
    int64_t t = fresh ? n : 1, offset = fresh ? 0 : nb_kv_cache_len(caches[0]);
    nb_scope_begin();
    nb__temps tmp = {0};
    nb_tensor *ids = nb__tmp(&tmp, nb_from_int32(feed, 2, (int64_t[]){1, t})), *x = NULL;
    if (ids && !caches) x = nb__tmp(&tmp, nb_gpt_forward(m, ids));
    else if (ids) {
        x = embed(&tmp, s, ids, offset);
        for (int64_t l = 0; x && l < s->o.n_layer; l++) x = block_step(&tmp, s, l, caches[l], x);
        x = x ? head(&tmp, s, x) : NULL;
    }
    nb_tensor *last = x ? nb__tmp(&tmp, nb_contiguous(nb__tmp(&tmp, nb_slice(x, 1, t - 1, t, 1)))) : NULL;
    nb_status st = last ? nb_copy_to(last, out, s->o.vocab_size) : nb_error_code();
    nb__temps_end(&tmp, NULL);
    nb_scope_end();
    return st;
}

typedef struct {
    int64_t i;
    float v;
} ranked;

/* Falling value, ties by the lower index: a total order, so qsort's result is unique. */
static int by_value(const void *pa, const void *pb) {
    const ranked *a = pa, *b = pb;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static nb_status check_sample_opts(const nb_gpt_sample_opts *o) {
    if (!(o->temperature >= 0.0f && isfinite(o->temperature)))
        return nb__fail_status(NB_ERR_ARG, "sample: temperature %g must be finite and >= 0 (0: 1)",
                               (double)o->temperature);
    if (o->top_k < 0) return nb__fail_status(NB_ERR_ARG, "sample: top_k %d is negative", o->top_k);
    if (!(o->top_p >= 0.0f && o->top_p <= 1.0f))
        return nb__fail_status(NB_ERR_ARG, "sample: top_p %g is outside [0, 1]", (double)o->top_p);
    return NB_OK;
}

int32_t nb_sample_token(const float *logits, int64_t n, const nb_gpt_sample_opts *o, double u) {
    static const nb_gpt_sample_opts plain = {0};
    if (!o) o = &plain;
    if (!logits) return nb__fail_status(NB_ERR_NULL, "sample: logits is NULL"), -1;
    if (n < 1 || n > INT32_MAX)
        return nb__fail_status(NB_ERR_ARG, "sample: %lld logits", (long long)n), -1;
    if (check_sample_opts(o) != NB_OK) return -1;
    if (!(u >= 0.0 && u < 1.0)) return nb__fail_status(NB_ERR_ARG, "sample: u %g is outside [0, 1)", u), -1;
    ranked *r = nb__alloc(sizeof *r * (size_t)n);
    if (!r) return -1;
    int32_t pick = -1;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(logits[i])) {
            nb__fail_status(NB_ERR_ARG, "sample: logit %lld is nan", (long long)i);
            goto out_free_ranked;
        }
        r[i] = (ranked){i, logits[i]};
    }
    qsort(r, (size_t)n, sizeof *r, by_value);
    if (r[0].v == -INFINITY) {
        nb__fail_status(NB_ERR_ARG, "sample: every logit is -inf");
        goto out_free_ranked;
    }
    if (o->greedy) {
        pick = (int32_t)r[0].i;
        goto out_free_ranked;
    }
    /* softmax of logits / T over the top k, from the largest (so exp never overflows) */
    int64_t keep = o->top_k > 0 && o->top_k < n ? o->top_k : n;
    double temp = o->temperature > 0 ? o->temperature : 1.0, sum = 0, top = r[0].v;
    for (int64_t i = 0; i < keep; i++) sum += (r[i].v = (float)exp(((double)r[i].v - top) / temp));
    if (o->top_p > 0 && o->top_p < 1) { /* the shortest head holding top_p of the mass */
        double cum = 0;
        int64_t j = 0;
        while (j < keep && (cum += r[j].v / sum) < o->top_p) j++;
        keep = j < keep ? j + 1 : keep;
        sum = 0;
        for (int64_t i = 0; i < keep; i++) sum += r[i].v;
    }
    double cum = 0, target = u * sum;
    pick = (int32_t)r[keep - 1].i; /* rounding may leave the sum a hair short of target */
    for (int64_t i = 0; i < keep; i++)
        if ((cum += r[i].v) > target) {
            pick = (int32_t)r[i].i;
            break;
        }
out_free_ranked:
    nb__dealloc(r, sizeof *r * (size_t)n);
    return pick;
}

/* splitmix64 (Steele et al. 2014): the sampler's own stream, so draws depend on the seed alone. */
static double next_uniform(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}

static nb_status check_prompt(const gpt_state *s, const int32_t *prompt, int64_t n_prompt,
                              int64_t n_new, const int32_t *out) {
    if (!prompt || !out) return nb__fail_status(NB_ERR_NULL, "gpt_generate: prompt or out is NULL");
    if (n_prompt < 1)
        return nb__fail_status(NB_ERR_ARG, "gpt_generate: the prompt is empty: start it with a "
                               "token such as a newline");
    if (n_new < 0) return nb__fail_status(NB_ERR_ARG, "gpt_generate: n_new %lld is negative", (long long)n_new);
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= s->o.vocab_size)
            return nb__fail_status(NB_ERR_ARG, "gpt_generate: prompt[%lld] = %d is not below the "
                                   "vocabulary's %lld ids", (long long)i, prompt[i],
                                   (long long)s->o.vocab_size);
    return NB_OK;
}

/* The generation loop, with caches (NULL: none) and buffers made by nb_gpt_generate. */
static nb_status generate(const gpt_state *s, nb_module *m, nb_kv_cache **caches, int32_t *seq,
                          int64_t len, int64_t n_new, const nb_gpt_sample_opts *o, float *logits,
                          int32_t *out) {
    uint64_t rng = o->seed;
    int64_t ctx = s->o.context;
    for (int64_t i = 0; i < n_new; i++) {
        int64_t n = len < ctx ? len : ctx;
        /* a full cache cannot take the next position: start again from the cropped window */
        if (caches && nb_kv_cache_len(caches[0]) + 1 > ctx)
            for (int64_t l = 0; l < s->o.n_layer; l++) nb_kv_cache_reset(caches[l]);
        nb_status st = last_logits(s, m, caches, seq + len - n, n, logits);
        if (st != NB_OK) return st;
        int32_t tok = nb_sample_token(logits, s->o.vocab_size, o, next_uniform(&rng));
        if (tok < 0) return nb_error_code();
        seq[len++] = out[i] = tok;
    }
    return NB_OK;
}

nb_status nb_gpt_generate(nb_module *m, const int32_t *prompt, int64_t n_prompt, int64_t n_new,
                          const nb_gpt_sample_opts *o, int32_t *out) {
    static const nb_gpt_sample_opts plain = {0};
    const gpt_state *s = nb_module_state(m, &gpt_class);
    if (!s) return nb_error_code();
    if (!o) o = &plain;
    if (check_prompt(s, prompt, n_prompt, n_new, out) != NB_OK || check_sample_opts(o) != NB_OK)
        return nb_error_code();
    int64_t ctx = s->o.context, first = n_prompt > ctx ? n_prompt - ctx : 0, len = n_prompt - first;
    size_t seq_bytes = sizeof(int32_t) * (size_t)(len + n_new), logit_bytes = sizeof(float) * (size_t)s->o.vocab_size;
    size_t cache_bytes = sizeof(nb_kv_cache *) * (size_t)s->o.n_layer;
    int32_t *seq = nb__alloc(seq_bytes);
    float *logits = seq ? nb__alloc(logit_bytes) : NULL;
    nb_kv_cache **caches = logits && !o->no_cache ? nb__alloc(cache_bytes) : NULL;
    nb_status st = logits && (o->no_cache || caches) ? NB_OK : nb_error_code();
    for (int64_t l = 0; caches && l < s->o.n_layer; l++) caches[l] = NULL;
    for (int64_t l = 0; caches && st == NB_OK && l < s->o.n_layer; l++)
        if (!(caches[l] = nb_kv_cache_new(ctx))) st = nb_error_code();
    if (st == NB_OK) {
        memcpy(seq, prompt + first, sizeof(int32_t) * (size_t)len);
        bool training = nb_module_is_training(m), grad = nb_set_grad_enabled(false);
        nb_module_train(m, false);
        st = generate(s, m, caches, seq, len, n_new, o, logits, out);
        nb_module_train(m, training);
        nb_set_grad_enabled(grad);
    }
    for (int64_t l = 0; caches && l < s->o.n_layer; l++) nb_kv_cache_free(caches[l]);
    if (caches) nb__dealloc(caches, cache_bytes);
    if (logits) nb__dealloc(logits, logit_bytes);
    if (seq) nb__dealloc(seq, seq_bytes);
    return st;
}

/* ---- construction */

static nb_status check_opts(const nb_gpt_opts *o) {
    const int64_t sizes[] = {o->vocab_size, o->context, o->n_layer, o->n_head, o->n_embd, o->dim_feedforward};
    static const char *const names[] = {"vocab_size", "context", "n_layer", "n_head", "n_embd", "dim_feedforward"};
    for (int i = 0; i < 6; i++)
        if (sizes[i] < 1)
            return nb__fail_status(NB_ERR_ARG, "gpt: %s %lld must be positive", names[i], (long long)sizes[i]);
    if (o->n_embd % o->n_head)
        return nb__fail_status(NB_ERR_ARG, "gpt: n_embd %lld must be divisible by n_head %lld",
                               (long long)o->n_embd, (long long)o->n_head);
    if (o->sinusoidal && o->n_embd % 2)
        return nb__fail_status(NB_ERR_ARG, "gpt: sinusoidal positions need an even n_embd, not %lld",
                               (long long)o->n_embd);
    if (!(o->dropout >= 0.0f && o->dropout < 1.0f))
        return nb__fail_status(NB_ERR_ARG, "gpt: dropout %g is outside [0, 1)", (double)o->dropout);
    return NB_OK;
}

/* The sinusoidal table as the buffer "pe" (saved with the weights, as a torch buffer is). */
static nb_tensor *add_sinusoidal(nb_module *m, const nb_gpt_opts *o) {
    nb_tensor *pe = nb_module_add_buffer(m, "pe", NB_F32, 2, (int64_t[]){o->context, o->n_embd});
    nb_tensor *table = pe ? nb_sinusoidal_positions(o->context, o->n_embd) : NULL;
    if (table) nb__copy_tensor(pe, table);
    nb_tensor_free(table);
    return table ? pe : NULL;
}

static bool add_blocks(nb_module *m, gpt_state *s) {
    nb_module *list = nb_module_new(&gpt_list_class, 0);
    if (nb_module_add_child(m, "h", list) != NB_OK) return false;
    s->h = nb__alloc(sizeof *s->h * (size_t)s->o.n_layer);
    if (!s->h) return false;
    nb_transformer_opts to = {.dim_feedforward = s->o.dim_feedforward, .dropout = s->o.dropout,
                              .gelu = true, .batch_first = true, .norm_first = true};
    for (int64_t l = 0; l < s->o.n_layer; l++) {
        char name[24];
        snprintf(name, sizeof name, "%lld", (long long)l);
        s->h[l] = nb_transformer_encoder_layer_new(s->o.n_embd, s->o.n_head, to);
        if (nb_module_add_child(list, name, s->h[l]) != NB_OK) return false;
    }
    return true;
}

nb_module *nb_gpt_new(nb_gpt_opts opts) {
    opts = with_defaults(opts);
    if (check_opts(&opts) != NB_OK) return NULL;
    nb_module *m = nb_module_new(&gpt_class, sizeof(gpt_state));
    if (!m) return NULL;
    gpt_state *s = NB__STATE(gpt_state, m);
    s->o = opts;
    int64_t e = opts.n_embd;
    bool ok = nb_module_add_child(m, "wte", s->wte = nb_embedding_new(opts.vocab_size, e, (nb_embedding_opts){0})) == NB_OK;
    if (ok && opts.sinusoidal) ok = (s->pe = add_sinusoidal(m, &opts)) != NULL;
    else if (ok) ok = nb_module_add_child(m, "wpe", s->wpe = nb_embedding_new(opts.context, e, (nb_embedding_opts){0})) == NB_OK;
    ok = ok && nb_module_add_child(m, "drop", s->drop = nb_dropout_new(opts.dropout)) == NB_OK;
    ok = ok && add_blocks(m, s);
    ok = ok && nb_module_add_child(m, "ln_f", s->ln_f = nb_layernorm_new(1, &e, 1e-5f, true)) == NB_OK;
    ok = ok && nb_module_add_child(m, "lm_head", s->lm_head = nb_linear_new(e, opts.vocab_size, false)) == NB_OK;
    if (!ok) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

nb_gpt_opts nb_gpt_config(const nb_module *m) {
    const gpt_state *s = nb_module_state(m, &gpt_class);
    return s ? s->o : (nb_gpt_opts){0};
}

static void gpt_free_state(nb_module *m) {
    gpt_state *s = NB__STATE(gpt_state, m);
    if (s->h) nb__dealloc(s->h, sizeof *s->h * (size_t)s->o.n_layer);
}

static void gpt_describe(const nb_module *m, nb_attrs *d) {
    const gpt_state *s = NB__STATE(gpt_state, m);
    nb_attrs_int(d, "vocab_size", s->o.vocab_size);
    nb_attrs_int(d, "context", s->o.context);
    nb_attrs_int(d, "n_layer", s->o.n_layer);
    nb_attrs_int(d, "n_head", s->o.n_head);
    nb_attrs_int(d, "n_embd", s->o.n_embd);
    if (s->o.sinusoidal) nb_attrs_bool(d, "sinusoidal", true);
}

static const nb_module_class gpt_class = {.name = "GPT", .forward = gpt_forward,
                                          .describe = gpt_describe, .free_state = gpt_free_state};
/* torch's nn.ModuleList: the blocks, indexed by the GPT's forward */
static const nb_module_class gpt_list_class = {.name = "ModuleList"};
