/*
 * backward.c — reverse-mode differentiation over the recorded graph: nb_backward (gradients
 * accumulated into the leaves' .grad) and nb_autograd_grad (gradients of chosen tensors,
 * returned), both one pass.
 *
 * A pass orders the nodes reachable from its outputs so that each comes before the nodes of its
 * inputs (reverse post-order of a depth-first walk), seeds the outputs, then visits the nodes in
 * that order: each node's backward turns the gradient gathered for its output into gradients
 * for its inputs.  A gradient for a non-leaf is summed into its node's `pending` slot (a value
 * used twice gets both contributions); a leaf's goes into leaf->grad, which accumulates across
 * passes as torch's .grad does, or, for a leaf with hooks or one whose gradient is returned,
 * into a slot of the pass that is summed first, so its hooks see the whole of it once; the walk
 * counts the edges into each slotted leaf, so the leaf is finished the moment its last
 * contribution arrives, while the pass goes on (a slot some edge sent nothing along is finished
 * at the end).
 *
 * Without create_graph, backwards run with recording off inside a private scope, closed at the
 * end, so a pass leaves no intermediates behind and, once warm, allocates nothing; what it
 * returns is copied out.  With create_graph, backwards run with recording on in the caller's
 * scope (or on the heap), so the gradients carry a graph of their own: everything the pass
 * holds is a reference it drops when done (nb_tensor_free, a no-op on a scope's tensors), and
 * the gradients' graph nodes keep what they need.
 *
 * nb_autograd_grad computes only what leads to its inputs: a node is `wanted` when one of its
 * inputs is, and nb__needs_grad asks (nb__grad_wanted) before a backward computes a gradient.
 *
 * Write-through: a leaf's first gradient after nb_zero_grad would be made in a buffer of its
 * own and then added to the zeros of .grad — a pass that reads two arrays and writes one, per
 * parameter and step.  A backward whose kernel can add its result to memory (a GEMM with beta
 * 1) asks nb__grad_sink for the .grad to add into instead.  It gets one only where that is the
 * same arithmetic: .grad holds +0.0 everywhere (zero_filled) and the gradient would have gone
 * straight into it (a first-order pass that accumulates, no hooks, not returned, not anomaly
 * mode, which checks each gradient before it is added).  0 + x is x for every x but -0.0,
 * which both ways become +0.0, so the bits are the same.
 */
#include "../ops/op.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    nb_tensor *leaf;
    nb_tensor *grad;           /* the pass's sum so far, a reference the pass holds */
    int64_t expected, arrived; /* the contributions the graph can send it, and those in */
} leaf_slot;

typedef struct {
    uint32_t id;
    bool create_graph, retain_graph;
    bool accumulate; /* into .grad (backward) rather than only into the returned gradients */
    bool write_through; /* backwards may add a leaf's first gradient into .grad (nb__grad_sink) */
    int n_inputs;    /* the tensors whose gradients are returned (autograd_grad) */
    nb_tensor *const *inputs;
    nb_tensor **grads;
    leaf_slot *slots;
    int64_t n_slots, slots_cap;
    nb_node **order;
    int64_t n_order, order_cap;
} pass;

static _Thread_local uint32_t pass_id;
static _Thread_local const pass *current;

static int input_index(const pass *p, const nb_tensor *t) {
    for (int j = 0; j < p->n_inputs; j++)
        if (p->inputs[j] == t) return j;
    return -1;
}

static bool grad_wanted_in(const pass *p, const nb_tensor *t) {
    if (!p || p->accumulate) return true;
    return t->node ? t->node->wanted == p->id : input_index(p, t) >= 0;
}

bool nb__grad_wanted(const nb_tensor *t) { return grad_wanted_in(current, t); }

/* A growable array in the current arena: growing takes a bigger piece and copies; the old one
 * stays in the arena until the pass's scope ends (or, on the heap, is given back). */
static bool grow(void **items, int64_t *cap, size_t item_size) {
    int64_t new_cap = *cap ? *cap * 2 : 64;
    nb_arena *home = nb__current_arena();
    void *p = nb__home_alloc(home, (size_t)new_cap * item_size);
    if (!p) return false;
    if (*items) {
        memcpy(p, *items, (size_t)*cap * item_size);
        nb__home_free(home, *items, (size_t)*cap * item_size);
    }
    *items = p;
    *cap = new_cap;
    return true;
}

static void drop(void *items, int64_t cap, size_t item_size) {
    if (items) nb__home_free(nb__current_arena(), items, (size_t)cap * item_size);
}

static nb_status released_error(const nb_node *node) {
    return nb__fail_status(NB_ERR_GRAPH, "backward: trying to backward through the graph a second "
                           "time: %s was released by an earlier pass without retain_graph (pass "
                           "retain_graph = true to the first one)", node->grad_fn);
}

typedef struct {
    nb_node *node;
    int next_input;
} frame;

static leaf_slot *slot_of(pass *p, nb_tensor *leaf);

/* A leaf whose gradient is summed in a slot of the pass before it is used: one with hooks (they
 * see the whole of it, once), one whose gradient is returned, and every leaf in a pass that
 * returns its gradients rather than accumulating them. */
static bool slotted(const pass *p, const nb_tensor *leaf) {
    return leaf->hooks || !p->accumulate || input_index(p, leaf) >= 0;
}

/* Counts an edge of the graph into a slotted leaf that the pass will deliver along, so that the
 * leaf is finished (its hooks run) as soon as its last contribution is in, while the pass goes
 * on — as torch's engine runs a leaf's accumulation once its inputs are ready, which is what lets
 * a data-parallel hook start a parameter's allreduce during backward. */
static bool count_edge(pass *p, nb_tensor *in) {
    if (!in->requires_grad || in->node || !grad_wanted_in(p, in) || !slotted(p, in)) return true;
    leaf_slot *slot = slot_of(p, in);
    if (slot) slot->expected++;
    return slot != NULL;
}

/* Appends to p->order the post-order of the nodes reachable from root through inputs that
 * require grad and that this pass has not reached yet; marks each node wanted when it leads to
 * one of p's inputs. */
static nb_status walk(pass *p, nb_node *root, frame **stack, int64_t *stack_cap) {
    int64_t sp = 0;
    if (root->visit == p->id) return NB_OK;
    if (root->released) return released_error(root);
    (*stack)[sp++] = (frame){root, 0};
    root->visit = p->id;
    while (sp > 0) {
        frame *top = &(*stack)[sp - 1];
        nb_node *node = top->node;
        if (top->next_input < node->n_in) {
            nb_tensor *in = node->in[top->next_input++];
            nb_node *child = in->requires_grad ? in->node : NULL;
            if (!child || child->visit == p->id) continue;
            if (child->released) return released_error(child);
            child->visit = p->id;
            if (sp == *stack_cap && !grow((void **)stack, stack_cap, sizeof **stack))
                return NB_ERR_MEMORY;
            (*stack)[sp++] = (frame){child, 0};
            continue;
        }
        bool wanted = p->accumulate || input_index(p, node->out) >= 0;
        for (int i = 0; i < node->n_in && !wanted; i++) {
            nb_tensor *in = node->in[i];
            wanted = in->requires_grad && (in->node ? in->node->wanted == p->id
                                                    : input_index(p, in) >= 0);
        }
        node->wanted = wanted ? p->id : 0;
        for (int i = 0; i < node->n_in; i++)
            if (!count_edge(p, node->in[i])) return NB_ERR_MEMORY;
        if (p->n_order == p->order_cap && !grow((void **)&p->order, &p->order_cap, sizeof *p->order))
            return NB_ERR_MEMORY;
        p->order[p->n_order++] = node;
        sp--;
    }
    return NB_OK;
}

static nb_status topo_order(pass *p, int n_outputs, nb_tensor *const *outputs) {
    frame *stack = NULL;
    int64_t stack_cap = 0;
    if (!grow((void **)&stack, &stack_cap, sizeof *stack)) return NB_ERR_MEMORY;
    nb_status s = NB_OK;
    for (int i = 0; i < n_outputs && s == NB_OK; i++)
        if (outputs[i]->node) s = walk(p, outputs[i]->node, &stack, &stack_cap);
    drop(stack, stack_cap, sizeof *stack);
    return s;
}

/* acc + g as the pass keeps sums: a new reference in place of both. */
static nb_tensor *sum_into(nb_tensor *acc, nb_tensor *g) {
    if (!acc) return g;
    nb_tensor *s = nb_add(acc, g);
    nb_tensor_free(acc);
    nb_tensor_free(g);
    return s;
}

/* Runs t's hooks on g (a reference the pass holds); returns the gradient to use. */
static nb_tensor *run_hooks(const nb_tensor *t, nb_tensor *g) {
    for (nb__hook *h = t->hooks; h && g; h = h->next) {
        if (!h->fn) continue;
        nb_tensor *r = h->fn(g, h->ctx);
        if (!r) {
            if (nb_error_code() == NB_OK)
                nb__fail(NB_ERR_GRAPH, "backward: a hook on %s returned NULL", NB_SHP(t));
            nb_tensor_free(g);
            return NULL;
        }
        if (r != g && !nb__same_shape(r, t)) {
            nb__fail(NB_ERR_SHAPE, "backward: a hook on %s returned a gradient of shape %s",
                     NB_SHP(t), NB_SHP(r));
            nb_tensor_free(r);
            nb_tensor_free(g);
            return NULL;
        }
        if (r != g) nb_tensor_free(g);
        g = r;
    }
    return g;
}

/* .grad += g, kept in t's home, without a graph. */
static nb_status accumulate_grad(nb_tensor *t, nb_tensor *g) {
    nb_tensor *gc = nb__contig(g);
    if (!gc) return nb_error_code();
    nb_status s = NB_OK;
    if (!t->grad) {
        t->grad = nb__clone_in(t->arena, gc);
        if (!t->grad) s = nb_error_code();
    } else {
        t->grad->zero_filled = false;
        nb__be(t)->accumulate(nb__f32(t->grad), nb__f32(gc), nb__numel(g->ndim, g->shape));
    }
    if (gc != g) nb_tensor_free(gc);
    return s;
}

nb_tensor *nb__grad_sink(const nb_node *node, int i) {
    const pass *p = current;
    nb_tensor *leaf = node->in[i], *grad = leaf->grad;
    if (!p || !p->write_through || leaf->node || !leaf->requires_grad || slotted(p, leaf) ||
        !grad || !grad->zero_filled || !nb__same_shape(grad, leaf) || !nb_is_contiguous(grad))
        return NULL;
    grad->zero_filled = false; /* from here on it holds the gradient */
    return grad;
}

static leaf_slot *slot_of(pass *p, nb_tensor *leaf) {
    for (int64_t k = 0; k < p->n_slots; k++)
        if (p->slots[k].leaf == leaf) return &p->slots[k];
    if (p->n_slots == p->slots_cap && !grow((void **)&p->slots, &p->slots_cap, sizeof *p->slots))
        return NULL;
    p->slots[p->n_slots] = (leaf_slot){leaf, NULL, 0, 0};
    return &p->slots[p->n_slots++];
}

/* A leaf's gradient g (a reference, given to this function): summed into the leaf's slot when
 * its hooks must see the total or it is returned, else straight into .grad. */
static nb_status finish_slot(pass *p, leaf_slot *slot);

static nb_status to_leaf(pass *p, nb_tensor *leaf, nb_tensor *g) {
    if (!slotted(p, leaf)) {
        nb_status s = accumulate_grad(leaf, g);
        nb_tensor_free(g);
        return s;
    }
    leaf_slot *slot = slot_of(p, leaf);
    if (!slot) {
        nb_tensor_free(g);
        return NB_ERR_MEMORY;
    }
    slot->grad = sum_into(slot->grad, g);
    if (!slot->grad) return nb_error_code();
    return ++slot->arrived == slot->expected ? finish_slot(p, slot) : NB_OK;
}

/* Where a finished gradient of t goes besides its node: hooks, retain_grad, the results. */
static nb_tensor *finish(pass *p, nb_tensor *t, nb_tensor *g) {
    if (t->hooks && !(g = run_hooks(t, g))) return NULL;
    if (t->retains_grad && p->accumulate && accumulate_grad(t, g) != NB_OK) {
        nb_tensor_free(g);
        return NULL;
    }
    int j = input_index(p, t);
    if (j >= 0) {
        nb__retain(g);
        p->grads[j] = g;
    }
    return g;
}

/* Anomaly mode: the first gradient of the step that is not finite fails the pass, naming it. */
static nb_status check_gradients(const nb_node *node, nb_tensor **din) {
    for (int i = 0; i < node->n_in; i++) {
        if (!din[i]) continue;
        double value = 0;
        int64_t at = nb__first_non_finite(din[i], &value);
        if (at == -1) continue;
        if (at == -2) return NB_ERR_MEMORY;
        char index[24 * NB_MAX_DIMS + 8], name[128], where[160], shapes[512];
        nb__origin_parts(node, i, name, sizeof name, where, sizeof where);
        size_t used = 0;
        shapes[0] = '\0';
        for (int k = 0; k < node->n_in && used < sizeof shapes; k++)
            used += (size_t)snprintf(shapes + used, sizeof shapes - used, "%s%s", k ? ", " : "",
                                     NB_SHP(node->in[k]));
        return nb__fail_status(NB_ERR_VALUE, "backward: %s's gradient via %s%s is not finite "
                               "(%g at %s); inputs %s", name, node->grad_fn, where, value,
                               nb__flat_index_str(din[i]->ndim, din[i]->shape, at, index,
                                                  sizeof index), shapes);
    }
    return NB_OK;
}

static nb_status deliver(pass *p, nb_node *node, nb_tensor **din) {
    nb_status s = NB_OK;
    for (int i = 0; i < node->n_in; i++) {
        nb_tensor *in = node->in[i], *g = din[i];
        din[i] = NULL;
        if (!g || s != NB_OK || !in->requires_grad || !nb__grad_wanted(in)) {
            nb_tensor_free(g);
            continue;
        }
        nb_tensor *summed = nb__sum_to(g, in->ndim, in->shape);
        if (summed != g) nb_tensor_free(g);
        if (!summed) s = nb_error_code();
        else if (!in->node) s = to_leaf(p, in, summed);
        else if (!(in->node->pending = sum_into(in->node->pending, summed))) s = nb_error_code();
    }
    return s;
}

/* One node: its gradient finished, then its backward and the delivery of what that made. */
static nb_status visit(pass *p, nb_node *node) {
    nb_tensor *g = node->pending;
    node->pending = NULL;
    if (!g) return NB_OK;
    if (!(g = finish(p, node->out, g))) return nb_error_code();
    if (!p->retain_graph) node->released = true;
    bool any = false;
    for (int i = 0; i < node->n_in && !any; i++) any = nb__needs_grad(node, i);
    if (!any) { /* a returned gradient that leads nowhere else */
        nb_tensor_free(g);
        return NB_OK;
    }
    nb_tensor *din_fixed[8] = {0};
    nb_tensor **din = din_fixed;
    if (node->n_in > 8) {
        din = nb__home_alloc(nb__current_arena(), sizeof(nb_tensor *) * (size_t)node->n_in);
        if (!din) {
            nb_tensor_free(g);
            return NB_ERR_MEMORY;
        }
        memset(din, 0, sizeof(nb_tensor *) * (size_t)node->n_in);
    }
    /* In anomaly mode a NaN a backward makes is named by check_gradients, with the node it
     * belongs to, rather than by the op inside the backward that computed it. */
    bool anomaly = nb_set_detect_anomaly(false);
    nb_status s = node->backward(node, g, din);
    nb_set_detect_anomaly(anomaly);
    if (s == NB_OK && anomaly) s = check_gradients(node, din);
    nb_status d = deliver(p, node, din); /* also drops din's references after a failure */
    if (s == NB_OK) s = d;
    if (din != din_fixed) nb__home_free(nb__current_arena(), din, sizeof(nb_tensor *) * (size_t)node->n_in);
    nb_tensor_free(g);
    return s;
}

/* A leaf's slot once its contributions are in: hooks, then .grad or the results. */
static nb_status finish_slot(pass *p, leaf_slot *slot) {
    nb_tensor *g = slot->grad;
    slot->grad = NULL;
    if (!g) return NB_OK;
    nb_status s = NB_OK;
    if (!(g = finish(p, slot->leaf, g))) s = nb_error_code();
    else if (p->accumulate) s = accumulate_grad(slot->leaf, g);
    nb_tensor_free(g);
    return s;
}

/* The slots still open at the end of the pass: leaves some of whose edges sent nothing (a node
 * that got no gradient, an input a backward left out).  After a failure: only drop them. */
static nb_status finish_leaves(pass *p, nb_status status) {
    for (int64_t k = 0; k < p->n_slots; k++) {
        if (status == NB_OK) {
            status = finish_slot(p, &p->slots[k]);
        } else {
            nb_tensor_free(p->slots[k].grad);
            p->slots[k].grad = NULL;
        }
    }
    return status;
}

/* Seeds the outputs, visits every node (after a failure only clearing their slots), finishes
 * the leaves; marks the nodes released unless the graph is retained. */
static nb_status run(pass *p, int n_outputs, nb_tensor *const *outputs, nb_tensor **seeds) {
    nb_status s = topo_order(p, n_outputs, outputs);
    for (int i = 0; i < n_outputs; i++) {
        nb_tensor *t = outputs[i], *g = seeds[i];
        seeds[i] = NULL;
        if (s != NB_OK) nb_tensor_free(g);
        else if (!t->node && !count_edge(p, t)) s = NB_ERR_MEMORY;
        else if (!t->node) s = to_leaf(p, t, g);
        else if (!(t->node->pending = sum_into(t->node->pending, g))) s = nb_error_code();
    }
    const pass *outer = current;
    current = p;
    for (int64_t k = p->n_order - 1; k >= 0; k--) {
        nb_node *node = p->order[k];
        if (s != NB_OK) {
            nb_tensor_free(node->pending);
            node->pending = NULL;
        } else {
            s = visit(p, node);
        }
    }
    current = outer;
    return finish_leaves(p, s);
}

/* "output 2 " in nb_autograd_grad's messages, "" in backward's (one output). */
static const char *output_label(const char *op, int i, char *buf, size_t cap) {
    if (strcmp(op, "backward") == 0) return "";
    snprintf(buf, cap, "output %d ", i);
    return buf;
}

/* The seed of output i: its grad_output (a new reference), or ones for one element. */
static nb_tensor *seed_of(const char *op, nb_tensor *t, nb_tensor *g, int i) {
    char label[32];
    if (!g) {
        int64_t numel = nb__numel(t->ndim, t->shape);
        if (numel != 1)
            return nb__fail(NB_ERR_GRAPH, "%s: a gradient can be implied only for a one-element "
                            "output; %s%s has %lld elements, pass a gradient of its shape", op,
                            output_label(op, i, label, sizeof label), NB_SHP(t), (long long)numel);
        return nb_ones(t->ndim, t->shape);
    }
    if (!nb__alive(g)) return nb__fail_input(op, g);
    if (!nb__same_shape(g, t) || g->dtype != NB_F32)
        return nb__fail(NB_ERR_SHAPE, "%s: gradient %s does not match %s%s", op, NB_SHP(g),
                        i || strcmp(op, "backward") ? output_label(op, i, label, sizeof label)
                                                    : "output ", NB_SHP(t));
    nb__retain(g);
    return g;
}

static nb_status check_outputs(const char *op, int n, nb_tensor *const *outputs) {
    char label[32];
    if (n < 1 || !outputs) return nb__fail_status(NB_ERR_ARG, "%s: no outputs", op);
    for (int i = 0; i < n; i++) {
        if (!nb__alive(outputs[i])) return nb__fail_input(op, outputs[i]), nb_error_code();
        if (!outputs[i]->requires_grad)
            return nb__fail_status(NB_ERR_GRAPH, "%s: %s%s does not require grad and has no "
                                   "grad_fn", op, output_label(op, i, label, sizeof label),
                                   NB_SHP(outputs[i]));
    }
    return NB_OK;
}

nb_status nb_backward_grad(nb_tensor *t, const nb_tensor *grad) {
    nb_status s = check_outputs("backward", 1, &t);
    if (s != NB_OK) return s;
    if (grad && !nb__alive(grad)) return nb__fail_input("backward", grad), nb_error_code();
    nb_scope_begin();
    bool was_enabled = nb_set_grad_enabled(false);
    /* the seed in the pass's scope, like everything else it holds, so no reference is shared */
    nb_tensor *seed = grad ? nb__clone_in(nb__current_arena(), grad) : NULL;
    if (grad && !seed) s = nb_error_code();
    else if (!(seed = seed_of("backward", t, seed, 0))) s = nb_error_code();
    pass p = {.id = ++pass_id, .retain_graph = true, .accumulate = true,
              .write_through = !nb_is_anomaly_enabled()};
    if (s == NB_OK) s = run(&p, 1, &t, &seed);
    nb_set_grad_enabled(was_enabled);
    nb_scope_end();
    return s;
}

nb_status nb_backward(nb_tensor *t) { return nb_backward_grad(t, NULL); }

static nb_status check_inputs(const char *op, int n, nb_tensor *const *inputs, nb_tensor **grads) {
    if (n < 1 || !inputs || !grads) return nb__fail_status(NB_ERR_ARG, "%s: no inputs", op);
    for (int j = 0; j < n; j++) {
        grads[j] = NULL;
        if (!nb__alive(inputs[j])) return nb__fail_input(op, inputs[j]), nb_error_code();
        if (!inputs[j]->requires_grad)
            return nb__fail_status(NB_ERR_GRAPH, "%s: input %d %s does not require grad", op, j,
                                   NB_SHP(inputs[j]));
    }
    return NB_OK;
}

/* Inputs the pass never reached: an error, NULL or zeros as the options say. */
static nb_status unused_inputs(const nb_grad_options *o, int n, nb_tensor *const *inputs,
                               nb_tensor **grads) {
    for (int j = 0; j < n; j++) {
        if (grads[j]) continue;
        if (o->materialize_grads) {
            if (!(grads[j] = nb_zeros(inputs[j]->ndim, inputs[j]->shape))) return nb_error_code();
        } else if (!o->allow_unused) {
            return nb__fail_status(NB_ERR_GRAPH, "autograd_grad: input %d %s was not used to "
                                   "compute the outputs (set allow_unused if that is meant)", j,
                                   NB_SHP(inputs[j]));
        }
    }
    return NB_OK;
}

/* The gradients as results: without create_graph the pass's scope is ending, so each is copied
 * out, detached, into the home the caller's tensors have. */
static nb_status hand_out(nb_arena *home, int n, nb_tensor **grads, bool copy) {
    nb_status s = NB_OK;
    for (int j = 0; j < n; j++) {
        if (!grads[j] || !copy) continue;
        nb_tensor *g = grads[j];
        grads[j] = s == NB_OK ? nb__clone_in(home, g) : NULL;
        if (s == NB_OK && !grads[j]) s = nb_error_code();
    }
    return s;
}

static void free_all(int n, nb_tensor **grads) {
    for (int j = 0; j < n; j++) {
        nb_tensor_free(grads[j]);
        grads[j] = NULL;
    }
}

nb_status nb_autograd_grad(int n_outputs, nb_tensor *const *outputs,
                           nb_tensor *const *grad_outputs, int n_inputs,
                           nb_tensor *const *inputs, nb_tensor **grads,
                           const nb_grad_options *options) {
    const char *op = "autograd_grad";
    nb_grad_options o = options ? *options : (nb_grad_options){0};
    nb_status s = check_inputs(op, n_inputs, inputs, grads);
    if (s == NB_OK) s = check_outputs(op, n_outputs, outputs);
    if (s != NB_OK) return s;
    nb_arena *home = nb__current_arena();
    if (!o.create_graph) nb_scope_begin();
    bool was_enabled = nb_set_grad_enabled(o.create_graph);
    pass p = {.id = ++pass_id, .create_graph = o.create_graph,
              .retain_graph = o.retain_graph || o.create_graph, .n_inputs = n_inputs,
              .inputs = inputs, .grads = grads};
    nb_tensor *seed_fixed[8], **seeds = seed_fixed;
    if (n_outputs > 8 && !(seeds = nb__home_alloc(nb__current_arena(), sizeof *seeds * (size_t)n_outputs)))
        s = NB_ERR_MEMORY;
    for (int i = 0; i < n_outputs && s == NB_OK; i++)
        if (!(seeds[i] = seed_of(op, outputs[i], grad_outputs ? grad_outputs[i] : NULL, i))) {
            s = nb_error_code();
            while (i-- > 0) nb_tensor_free(seeds[i]);
        }
    if (s == NB_OK) s = run(&p, n_outputs, outputs, seeds);
    if (seeds != seed_fixed && seeds)
        nb__home_free(nb__current_arena(), seeds, sizeof *seeds * (size_t)n_outputs);
    drop(p.order, p.order_cap, sizeof *p.order);
    drop(p.slots, p.slots_cap, sizeof *p.slots);
    nb_set_grad_enabled(was_enabled);
    if (s == NB_OK) s = hand_out(home, n_inputs, grads, !o.create_graph);
    if (!o.create_graph) nb_scope_end();
    if (s == NB_OK) s = unused_inputs(&o, n_inputs, inputs, grads);
    if (s != NB_OK) free_all(n_inputs, grads);
    return s;
}
