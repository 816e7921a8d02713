/*
 * backward.c — reverse-mode differentiation over the recorded graph.
 *
 * nb_backward_grad(t, g): order the nodes reachable from t so that each comes before the nodes
 * of its inputs (reverse post-order of a depth-first walk), seed t with g, then visit them in
 * that order: each node's backward turns the gradient gathered for its output into gradients
 * for its inputs.  A gradient for a non-leaf is summed into its node's `pending` slot (a value
 * used twice gets both contributions); a leaf's is added into leaf->grad, which persists and
 * accumulates across calls as torch's .grad does.
 *
 * Everything the pass makes besides leaf gradients lives in a private scope closed at the end,
 * so backward leaves no intermediates behind and, once warm, allocates nothing.
 */
#include "../ops/op.h"

#include <string.h>

static _Thread_local uint32_t pass_id;

typedef struct {
    nb_node *node;
    int next_input;
} frame;

/* A growable array in the current arena: growing takes a bigger piece and copies; the old one
 * stays in the arena until the pass's scope ends. */
static bool grow(void **items, int64_t *cap, size_t item_size) {
    int64_t new_cap = *cap ? *cap * 2 : 64;
    void *p = nb__arena_alloc(nb__current_arena(), (size_t)new_cap * item_size);
    if (!p) return false;
    if (*items) memcpy(p, *items, (size_t)*cap * item_size);
    *items = p;
    *cap = new_cap;
    return true;
}

/* Post-order of the nodes reachable from root through inputs that require grad. */
static nb_node **topo_order(nb_node *root, int64_t *count) {
    frame *stack = NULL;
    nb_node **order = NULL;
    int64_t stack_cap = 0, order_cap = 0, sp = 0, n = 0;
    uint32_t pass = ++pass_id;
    if (!grow((void **)&stack, &stack_cap, sizeof *stack)) return NULL;
    stack[sp++] = (frame){root, 0};
    root->visit = pass;
    while (sp > 0) {
        frame *top = &stack[sp - 1];
        if (top->next_input < top->node->n_in) {
            nb_tensor *in = top->node->in[top->next_input++];
            nb_node *child = in->requires_grad ? in->node : NULL;
            if (!child || child->visit == pass) continue;
            child->visit = pass;
            if (sp == stack_cap && !grow((void **)&stack, &stack_cap, sizeof *stack)) return NULL;
            stack[sp++] = (frame){child, 0};
        } else {
            if (n == order_cap && !grow((void **)&order, &order_cap, sizeof *order)) return NULL;
            order[n++] = top->node;
            sp--;
        }
    }
    *count = n;
    return order;
}

static nb_status accumulate_leaf(nb_tensor *leaf, nb_tensor *g) {
    nb_tensor *gc = nb__contig(g);
    if (!gc) return nb_error_code();
    if (!leaf->grad) {
        leaf->grad = nb__clone_in(leaf->arena, gc);
        return leaf->grad ? NB_OK : nb_error_code();
    }
    nb__be(leaf)->accumulate(nb__f32(leaf->grad), nb__f32(gc), nb__numel(g->ndim, g->shape));
    return NB_OK;
}

static nb_status deliver(nb_node *node, nb_tensor **din) {
    for (int i = 0; i < node->n_in; i++) {
        nb_tensor *in = node->in[i];
        if (!in->requires_grad || !din[i]) continue;
        nb_tensor *g = nb__sum_to(din[i], in->ndim, in->shape);
        if (!g) return nb_error_code();
        if (!in->node) {
            nb_status s = accumulate_leaf(in, g);
            if (s != NB_OK) return s;
        } else {
            in->node->pending = in->node->pending ? nb_add(in->node->pending, g) : g;
            if (!in->node->pending) return nb_error_code();
        }
    }
    return NB_OK;
}

static nb_status run_pass(nb_tensor *t, nb_tensor *seed) {
    if (!t->node) return accumulate_leaf(t, seed);
    int64_t n = 0;
    nb_node **order = topo_order(t->node, &n);
    if (!order) return nb_error_code();
    t->node->pending = seed;
    nb_status status = NB_OK;
    nb_tensor *din_fixed[8];
    for (int64_t k = n - 1; k >= 0; k--) {
        nb_node *node = order[k];
        nb_tensor *g = node->pending;
        node->pending = NULL;
        if (!g || status != NB_OK) continue; /* after a failure: only clear the slots */
        nb_tensor **din = node->n_in <= 8 ? din_fixed
                                          : nb__arena_alloc(nb__current_arena(),
                                                            sizeof(nb_tensor *) * (size_t)node->n_in);
        if (!din) {
            status = NB_ERR_MEMORY;
            continue;
        }
        memset(din, 0, sizeof(nb_tensor *) * (size_t)node->n_in);
        status = node->backward(node, g, din);
        if (status == NB_OK) status = deliver(node, din);
    }
    return status;
}

nb_status nb_backward_grad(nb_tensor *t, const nb_tensor *grad) {
    if (!nb__alive(t)) return nb__fail_input("backward", t), nb_error_code();
    if (!t->requires_grad)
        return nb__fail_status(NB_ERR_GRAPH, "backward: %s does not require grad and has no "
                               "grad_fn", NB_SHP(t));
    if (grad && !nb__alive(grad)) return nb__fail_input("backward", grad), nb_error_code();
    int64_t numel = nb__numel(t->ndim, t->shape);
    if (!grad && numel != 1)
        return nb__fail_status(NB_ERR_GRAPH, "backward: a gradient can be implied only for a "
                               "one-element output; %s has %lld elements, pass one with "
                               "nb_backward_grad", NB_SHP(t), (long long)numel);
    if (grad && (!nb__same_shape(grad, t) || grad->dtype != NB_F32))
        return nb__fail_status(NB_ERR_SHAPE, "backward: gradient %s does not match output %s",
                               NB_SHP(grad), NB_SHP(t));
    nb_scope_begin();
    bool was_enabled = nb_set_grad_enabled(false);
    nb_tensor *seed = grad ? (nb_tensor *)grad : nb_ones(t->ndim, t->shape);
    nb_status status = seed ? run_pass(t, seed) : nb_error_code();
    nb_set_grad_enabled(was_enabled);
    nb_scope_end();
    return status;
}

nb_status nb_backward(nb_tensor *t) { return nb_backward_grad(t, NULL); }
