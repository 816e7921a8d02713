/*
 * tensor_parallel.c — Megatron-LM's tensor parallel Linear layers (Shoeybi et al. 2019, section
 * 3), in a Sequential: each rank holds a slice of the weight matrices, and a pair of layers
 * costs one allreduce in forward and one in backward.
 *
 * A pair is A then B with only elementwise activations between (an MLP's hidden layer):
 *   column-parallel A   W_A [H, I] cut by rows: rank r holds W_A[r H/N .. (r+1) H/N) and that
 *                       slice of b_A, so its output is its own H/N hidden units, and the
 *                       activation (elementwise) needs nothing from the other ranks;
 *   row-parallel B      W_B [O, H] cut by columns the same way: rank r's partial product
 *                       h_r W_B,r^T is its share of the sum over H, so y = sum over ranks
 *                       (allreduce, forward) + b_B, with b_B whole on every rank.
 * Backward (Megatron's f and g): g, the allreduce after B, is the identity in backward: every
 * rank has dL/dy whole, which is dL/d(partial) of each rank.  f, the identity before A, is an
 * allreduce in backward: x's gradient is the sum of every rank's x W_A,r contribution.  The
 * first layer's input (the data) needs no gradient, so an MLP pays f only for inner pairs.
 * Every other layer (a Linear without a partner, norms, the activations outside pairs) is whole
 * on every rank and computes the same numbers, so their gradients agree without communication.
 *
 * The allreduce of B runs in place on B's partial product, whose node (the linear op's) never
 * reads its output in backward, so the recorded graph is y_partial's and its backward the
 * identity g asks for.  f is an identity view of x with a tensor hook that allreduces the
 * gradient passing through it (first order: the hook's sum is not recorded).
 */
#include "dist.h"

#include "../nn/module.h"

typedef struct {
    int64_t in_features, out_features; /* of the whole layer */
    int rank, size;
    nb_tensor *weight, *bias; /* this rank's slices (column) or slice and whole bias (row) */
} tp_linear_state;

static void tp_describe(const nb_module *m, nb_attrs *d) {
    const tp_linear_state *s = m->state;
    nb_attrs_int(d, "in_features", s->in_features);
    nb_attrs_int(d, "out_features", s->out_features);
    nb_attrs_bool(d, "bias", s->bias != NULL);
    nb_attrs_int(d, "world_size", s->size);
}

/* f's backward: the gradient's sum over ranks, in a new tensor (the pass owns the one given). */
static nb_tensor *sum_grad_over_ranks(nb_tensor *g, void *ctx) {
    (void)ctx;
    nb_tensor *sum = nb__new(NB_F32, g->ndim, g->shape);
    if (!sum) return NULL;
    nb__copy_tensor(sum, g);
    if (nb_dist_allreduce(sum, NB_REDUCE_SUM) == NB_OK) return sum;
    nb_tensor_free(sum);
    return NULL;
}

/* Megatron's f: x itself in forward; the sum over ranks of its gradient in backward. */
static nb_tensor *copy_to_ranks(nb_tensor *x) {
    if (!nb_requires_grad(x) || !nb_is_grad_enabled()) return nb_reshape(x, x->ndim, x->shape);
    nb_tensor *v = nb_reshape(x, x->ndim, x->shape);
    if (v && !nb_tensor_register_hook(v, sum_grad_over_ranks, NULL)) {
        nb_tensor_free(v);
        return NULL;
    }
    return v;
}

static nb_tensor *column_forward(nb_module *m, nb_tensor *x) {
    tp_linear_state *s = m->state;
    nb__temps tmp = {0};
    nb_tensor *v = nb__tmp(&tmp, copy_to_ranks(x));
    return nb__temps_end(&tmp, v ? nb_linear(v, s->weight, s->bias) : NULL);
}

/* Megatron's g: the partial products summed over ranks in forward (in place), the identity in
 * backward; the bias once, after the sum. */
static nb_tensor *row_forward(nb_module *m, nb_tensor *x) {
    tp_linear_state *s = m->state;
    nb__temps tmp = {0};
    nb_tensor *partial = nb__tmp(&tmp, nb_linear(x, s->weight, NULL));
    if (partial && nb_dist_allreduce(partial, NB_REDUCE_SUM) != NB_OK)
        partial = (nb__fail_prefix("RowParallelLinear"), NULL);
    return nb__temps_end(&tmp, partial && s->bias ? nb_add(partial, s->bias) : partial);
}

static const nb_module_class column_class = {.name = "ColumnParallelLinear", .forward = column_forward,
                                             .describe = tp_describe};
static const nb_module_class row_class = {.name = "RowParallelLinear", .forward = row_forward,
                                          .describe = tp_describe};

/* The slice of linear's weight and bias that rank r holds, as a new layer of class cls: rows
 * (column-parallel) or columns (row-parallel) r k .. r k + k of W, with k = the cut dim / N. */
static nb_module *shard_of(const nb_module *linear, const nb_module_class *cls) {
    const nb__linear_state *l = linear->state;
    bool column = cls == &column_class;
    int size = nb_dist_size(), rank = nb_dist_rank(), dim = column ? 0 : 1;
    int64_t cut = column ? l->out_features : l->in_features, k = cut / size;
    if (cut % size)
        return nb__fail(NB_ERR_SHAPE, "tp_shard: %s's %s_features %lld is not a multiple of the %d "
                        "ranks", cls->name, column ? "out" : "in", (long long)cut, size);
    nb_module *m = nb_module_new(cls, sizeof(tp_linear_state));
    if (!m) return NULL;
    tp_linear_state *s = m->state;
    *s = (tp_linear_state){l->in_features, l->out_features, rank, size, NULL, NULL};
    int64_t shape[2] = {column ? k : l->out_features, column ? l->in_features : k};
    bool ok = (s->weight = nb_module_add_param(m, "weight", 2, shape)) != NULL;
    if (ok && l->bias) ok = (s->bias = nb_module_add_param(m, "bias", 1, column ? &k : &l->out_features));
    nb_scope_begin();
    nb_tensor *w = ok ? nb_slice(l->weight, dim, rank * k, rank * k + k, 1) : NULL;
    nb_tensor *b = w && l->bias && column ? nb_slice(l->bias, 0, rank * k, rank * k + k, 1) : l->bias;
    if (w) nb__copy_tensor(s->weight, w);
    if (w && b) nb__copy_tensor(s->bias, b);
    ok = w && (b || !l->bias);
    nb_scope_end();
    if (ok) return m;
    nb_module_free(m);
    return NULL;
}

static bool is_linear(const nb_module *m) { return m->cls == &nb__linear_class; }

/* Elementwise, without parameters: what may stand between the two layers of a pair, where each
 * rank holds only its slice of the features. */
static bool is_elementwise(const nb_module *m) {
    nb_activation act;
    return nb_module_num_params(m) == 0 && nb_module_num_buffers(m) == 0 &&
           nb_activation_parse(nb_module_type(m), &act) && act != NB_ACT_SOFTMAX &&
           act != NB_ACT_LOG_SOFTMAX;
}

/* The Linear after child i that pairs with it (only elementwise layers between), or -1. */
static int partner(const nb_module *seq, int i) {
    for (int j = i + 1; j < seq->children.n; j++) {
        const nb_module *c = NB__CHILD(seq, j);
        if (is_linear(c)) return j;
        if (!is_elementwise(c)) return -1;
    }
    return -1;
}

int nb_tp_shard(nb_module *seq) {
    if (!nb__dist_is_sequential(seq, "tp_shard") || nb__dist_broadcast_module(seq, 0, "tp_shard") != NB_OK) return -1;
    int pairs = 0;
    for (int i = 0; i < seq->children.n; i++) {
        int j = is_linear(NB__CHILD(seq, i)) ? partner(seq, i) : -1;
        if (j < 0) continue;
        nb_module *a = shard_of(NB__CHILD(seq, i), &column_class);
        nb_module *b = a ? shard_of(NB__CHILD(seq, j), &row_class) : NULL;
        if (!b) {
            nb_module_free(a);
            nb__fail_prefix("tp_shard: layers %d and %d", i, j);
            return -1;
        }
        nb_module_free(nb__module_swap_child(seq, i, a));
        nb_module_free(nb__module_swap_child(seq, j, b));
        pairs++;
        i = j;
    }
    return pairs;
}

/* ---- gathering */

/* full = the whole of a column- (rows stacked) or row-parallel (columns side by side) tensor
 * whose slice this rank holds: the allgather [N, rows, cols] as is, or as [rows, N, cols]. */
static nb_status gather_into(nb_tensor *full, const nb_tensor *slice, bool side_by_side) {
    nb_scope_begin();
    nb_tensor *all = nb_dist_allgather(slice), *whole = all;
    if (all && side_by_side) whole = nb_contiguous(nb_permute(all, 3, (const int[]){1, 0, 2}));
    whole = whole ? nb_reshape(whole, full->ndim, full->shape) : NULL;
    if (whole) nb__copy_tensor(full, whole);
    nb_status st = whole ? NB_OK : nb_error_code();
    nb_scope_end();
    return st;
}

static nb_status gather_child(nb_module *f, const nb_module *t, const char *name) {
    if (t->cls == &column_class || t->cls == &row_class) {
        const tp_linear_state *s = t->state;
        const nb__linear_state *l = is_linear(f) ? f->state : NULL;
        if (!l || l->in_features != s->in_features || l->out_features != s->out_features ||
            !l->bias != !s->bias)
            return nb__fail_status(NB_ERR_SHAPE, "tp_gather: layer %s is a %s of %lld to %lld in the "
                                   "sharded model; the full model's is not that Linear", name,
                                   t->cls->name, (long long)s->in_features, (long long)s->out_features);
        bool row = t->cls == &row_class;
        nb_status st = gather_into(l->weight, s->weight, row);
        if (st == NB_OK && s->bias && row) nb__copy_tensor(l->bias, s->bias); /* whole on every rank */
        if (st == NB_OK && s->bias && !row) st = gather_into(l->bias, s->bias, false);
        return st;
    }
    return nb__dist_copy_layer(f, t, "tp_gather", name);
}

nb_status nb_tp_gather(const nb_module *seq, nb_module *full) {
    if (!nb__dist_is_sequential(seq, "tp_gather") || !nb__dist_is_sequential(full, "tp_gather") ||
        !nb__dist_active("tp_gather"))
        return nb_error_code();
    if (seq->children.n != full->children.n)
        return nb__fail_status(NB_ERR_SHAPE, "tp_gather: the sharded model has %d layers, the full "
                               "one %d", seq->children.n, full->children.n);
    for (int i = 0; i < seq->children.n; i++)
        if (gather_child(NB__CHILD(full, i), NB__CHILD(seq, i), seq->children.at[i].name) != NB_OK)
            return nb_error_code();
    return NB_OK;
}
