/*
 * hooks.c — a module's forward when it is watched: torch's module hooks (nabla/module.h) and,
 * in anomaly mode, the describer that tells the ops where they run ("layer 2 (Linear)") and
 * which parameter each input is ("2.weight").  nb_module_forward_n comes here only when the
 * module has hooks or anomaly mode is on; otherwise it calls the class's forward directly.
 *
 * The full backward hook follows torch's BackwardHook: the forward wraps the module's inputs
 * in one backward_hook node (ops/hook.c) and its outputs in another.  In a backward pass the
 * outputs' node is reached first and hands over their gradients, kept here (a detached copy,
 * keyed by the inputs' node of the same call) until the inputs' node is reached with theirs;
 * then the hooks run with both and may replace the inputs' gradients before they flow on.
 */
#include "module.h"
#include "../ops/op.h"
#include "nabla/autograd.h"

#include <stdio.h>
#include <string.h>

enum { PRE_HOOK, FORWARD_HOOK, BACKWARD_HOOK };

typedef struct {
    int kind, handle;
    union {
        nb_module_forward_pre_hook_fn pre;
        nb_module_forward_hook_fn forward;
        nb_module_backward_hook_fn backward;
    } fn;
    void *ctx;
} hook_entry;

/* The outputs' gradients of one call, waiting for its inputs' node. */
typedef struct {
    const nb_tensor *key; /* the inputs' packed tensor of the call */
    int n;
    nb_tensor *grads[NB_MODULE_MAX_IO];
} pending_grads;

struct nb__module_hooks {
    nb__backward_hook callbacks; /* first, so the op's pointer is this struct's */
    nb_module *m;
    hook_entry *at;
    int n, cap, next_handle, n_backward;
    pending_grads *pending;
    int n_pending, pending_cap;
};

static void drop_grads(pending_grads *p) {
    for (int j = 0; j < p->n; j++) nb_tensor_free(p->grads[j]);
    p->n = 0;
}

void nb__module_hooks_free(nb__module_hooks *h) {
    if (!h) return;
    for (int k = 0; k < h->n_pending; k++) drop_grads(&h->pending[k]);
    nb__dealloc(h->pending, sizeof *h->pending * (size_t)h->pending_cap);
    nb__dealloc(h->at, sizeof *h->at * (size_t)h->cap);
    nb__dealloc(h, sizeof *h);
}

/* Room for one more item in a growable array of the counted allocator. */
static bool grow(void **items, int n, int *cap, size_t size) {
    if (n < *cap) return true;
    int new_cap = *cap ? 2 * *cap : 4;
    void *p = nb__alloc(size * (size_t)new_cap);
    if (!p) return false;
    if (n) memcpy(p, *items, size * (size_t)n);
    nb__dealloc(*items, size * (size_t)*cap);
    *items = p;
    *cap = new_cap;
    return true;
}

/* ---- the backward side: callbacks of the backward_hook nodes */

static nb_module_backward_hook_fn backward_fn(const hook_entry *e) {
    return e->kind == BACKWARD_HOOK ? e->fn.backward : NULL;
}

/* A hook's status, with a message when it returned an error without setting one. */
static nb_status hook_failed(const nb_module *m, const char *kind, nb_status s) {
    if (nb_error_code() != NB_OK) return nb_error_code();
    return nb__fail_status(s, "%s: a %s hook failed (%s)", m->cls->name, kind, nb_status_name(s));
}

/* Runs the backward hooks on grads (the inputs' gradients, as the inputs' node `node` has
 * them, or all NULL without one), checking each replacement against its input's shape. */
static nb_status run_backward_hooks(nb__module_hooks *h, const nb_node *node, int n_in,
                                    nb_tensor **grads, int n_out, nb_tensor *const *grad_out) {
    for (int k = 0; k < h->n; k++) {
        nb_module_backward_hook_fn fn = backward_fn(&h->at[k]);
        if (!fn) continue;
        nb_tensor *before[NB_MODULE_MAX_IO];
        memcpy(before, grads, sizeof *grads * (size_t)n_in);
        nb_status s = fn(h->m, n_in, grads, n_out, grad_out, h->at[k].ctx);
        if (s != NB_OK) s = hook_failed(h->m, "full backward", s);
        for (int i = 0; i < n_in; i++) { /* each replacement taken over, or refused */
            if (grads[i] == before[i]) continue;
            const nb_tensor *in = node ? node->in[i] : NULL;
            if (s == NB_OK && in && nb__alive(grads[i]) && nb__same_shape(grads[i], in)) {
                nb_tensor_free(before[i]);
                continue;
            }
            if (s == NB_OK)
                s = nb__fail_status(NB_ERR_SHAPE, "%s: a full backward hook replaced grad_input "
                                    "%d of %s by %s", h->m->cls->name, i,
                                    in ? NB_SHP(in) : "an input that does not require grad",
                                    nb__alive(grads[i]) ? NB_SHP(grads[i]) : "a dead tensor");
            nb_tensor_free(grads[i]);
            grads[i] = before[i];
        }
        if (s != NB_OK) return s;
    }
    return NB_OK;
}

static pending_grads *pending_of(nb__module_hooks *h, const nb_tensor *key) {
    for (int k = 0; k < h->n_pending; k++)
        if (h->pending[k].key == key) return &h->pending[k];
    return NULL;
}

static nb_status outputs_seen(nb__backward_hook *cb, const nb_tensor *key, int n,
                              nb_tensor *const *grads) {
    nb__module_hooks *h = (nb__module_hooks *)cb;
    if (!key) { /* no input requires grad: the hooks run now, with grad_input all NULL */
        nb_tensor *none[NB_MODULE_MAX_IO] = {0};
        int n_in = h->m->cls->n_inputs ? h->m->cls->n_inputs : 1;
        return run_backward_hooks(h, NULL, n_in, none, n, grads);
    }
    pending_grads *p = pending_of(h, key);
    if (!p) {
        if (!grow((void **)&h->pending, h->n_pending, &h->pending_cap, sizeof *h->pending))
            return NB_ERR_MEMORY;
        p = &h->pending[h->n_pending++];
        *p = (pending_grads){.key = key};
    }
    drop_grads(p);
    for (int j = 0; j < n; j++) {
        p->grads[j] = grads[j] ? nb__clone_in(NULL, grads[j]) : NULL;
        p->n = j + 1;
        if (grads[j] && !p->grads[j]) return nb_error_code();
    }
    return NB_OK;
}

static nb_status inputs_seen(nb__backward_hook *cb, const nb_tensor *key, int n, nb_tensor **grads) {
    nb__module_hooks *h = (nb__module_hooks *)cb;
    pending_grads *p = pending_of(h, key);
    /* A pass that reaches the inputs without going through the outputs (differentiating a
     * gradient again) runs no hook, as torch's. */
    if (!p) return NB_OK;
    nb_status s = run_backward_hooks(h, key->node, n, grads, p->n, p->grads);
    /* taken: the call's next pass (retain_graph) hands them over again */
    drop_grads(p);
    *p = h->pending[--h->n_pending];
    return s;
}

/* ---- registering */

static int add_hook(nb_module *m, int kind, hook_entry e, const char *op) {
    if (!m) return nb__fail(NB_ERR_NULL, "%s: module is NULL", op), 0;
    if (!m->hooks) {
        nb__module_hooks *h = nb__alloc(sizeof *h);
        if (!h) return 0;
        *h = (nb__module_hooks){.callbacks = {outputs_seen, inputs_seen}, .m = m};
        m->hooks = h;
    }
    nb__module_hooks *h = m->hooks;
    if (!grow((void **)&h->at, h->n, &h->cap, sizeof *h->at)) return 0;
    e.kind = kind;
    e.handle = ++h->next_handle;
    h->at[h->n++] = e;
    h->n_backward += kind == BACKWARD_HOOK;
    return e.handle;
}

int nb_module_register_forward_pre_hook(nb_module *m, nb_module_forward_pre_hook_fn fn, void *ctx) {
    if (!fn) return nb__fail(NB_ERR_NULL, "register_forward_pre_hook: hook is NULL"), 0;
    return add_hook(m, PRE_HOOK, (hook_entry){.fn.pre = fn, .ctx = ctx}, "register_forward_pre_hook");
}

int nb_module_register_forward_hook(nb_module *m, nb_module_forward_hook_fn fn, void *ctx) {
    if (!fn) return nb__fail(NB_ERR_NULL, "register_forward_hook: hook is NULL"), 0;
    return add_hook(m, FORWARD_HOOK, (hook_entry){.fn.forward = fn, .ctx = ctx},
                    "register_forward_hook");
}

int nb_module_register_full_backward_hook(nb_module *m, nb_module_backward_hook_fn fn, void *ctx) {
    if (!fn) return nb__fail(NB_ERR_NULL, "register_full_backward_hook: hook is NULL"), 0;
    return add_hook(m, BACKWARD_HOOK, (hook_entry){.fn.backward = fn, .ctx = ctx},
                    "register_full_backward_hook");
}

nb_status nb_module_remove_hook(nb_module *m, int handle) {
    if (!m) return nb__fail_status(NB_ERR_NULL, "remove_hook: module is NULL");
    nb__module_hooks *h = m->hooks;
    for (int k = 0; h && k < h->n; k++) {
        if (h->at[k].handle != handle) continue;
        h->n_backward -= h->at[k].kind == BACKWARD_HOOK;
        memmove(&h->at[k], &h->at[k + 1], sizeof *h->at * (size_t)(h->n - k - 1));
        h->n--;
        return NB_OK;
    }
    return nb__fail_status(NB_ERR_ARG, "remove_hook: %s has no hook %d", m->cls->name, handle);
}

/* ---- the forward side */

/* A forward's tensors: the caller's, or ones this forward made (owned[i]) and drops. */
typedef struct {
    nb_tensor *at[NB_MODULE_MAX_IO];
    bool owned[NB_MODULE_MAX_IO];
} tensor_list;

/* t->at[i] becomes r, which the forward owns; an owned one it replaces is dropped (a graph
 * that uses it holds its own reference). */
static void replace(tensor_list *t, int i, nb_tensor *r) {
    if (t->owned[i]) nb_tensor_free(t->at[i]);
    t->at[i] = r;
    t->owned[i] = true;
}

/* After hook `kind` ran on slots (a copy of what they were in before): each replacement
 * taken over, checked alive (a dead or NULL one is refused and the old one kept). */
static nb_status take_replacements(const nb_module *m, const char *kind, int n,
                                   nb_tensor *const *before, nb_tensor **slots, tensor_list *t) {
    nb_status s = NB_OK;
    for (int i = 0; i < n; i++) {
        nb_tensor *r = slots[i];
        if (r == before[i]) continue;
        slots[i] = before[i];
        if (!nb__alive(r))
            s = nb__fail_status(NB_ERR_NULL, "%s: a %s hook stored a NULL or dead tensor",
                                m->cls->name, kind);
        else replace(t, i, r);
    }
    return s;
}

static nb_status run_pre_hooks(nb_module *m, int n_in, tensor_list *args) {
    const nb__module_hooks *h = m->hooks;
    for (int k = 0; h && k < h->n; k++) {
        if (h->at[k].kind != PRE_HOOK) continue;
        nb_tensor *slots[NB_MODULE_MAX_IO];
        memcpy(slots, args->at, sizeof *slots * (size_t)n_in);
        nb_status s = h->at[k].fn.pre(m, n_in, slots, h->at[k].ctx);
        nb_status r = take_replacements(m, "forward pre", n_in, args->at, slots, args);
        if (s == NB_OK) s = r;
        if (s != NB_OK) return hook_failed(m, "forward pre", s);
    }
    return NB_OK;
}

static nb_status run_forward_hooks(nb_module *m, int n_in, nb_tensor *const *args, int n_out,
                                   tensor_list *out) {
    const nb__module_hooks *h = m->hooks;
    for (int k = 0; h && k < h->n; k++) {
        if (h->at[k].kind != FORWARD_HOOK) continue;
        nb_tensor *slots[NB_MODULE_MAX_IO];
        memcpy(slots, out->at, sizeof *slots * (size_t)n_out);
        nb_status s = h->at[k].fn.forward(m, n_in, args, n_out, slots, h->at[k].ctx);
        nb_status r = take_replacements(m, "forward", n_out, out->at, slots, out);
        if (s == NB_OK) s = r;
        if (s != NB_OK) return hook_failed(m, "forward", s);
    }
    return NB_OK;
}

/* Whether t can be wrapped: float32 (the backward_hook row's dtype); *any_grad when one of
 * them requires grad. */
static bool all_float(int n, nb_tensor *const *t, bool *any_grad) {
    *any_grad = false;
    for (int i = 0; i < n; i++) {
        if (nb_dtype_of(t[i]) != NB_F32) return false;
        *any_grad |= nb_requires_grad(t[i]);
    }
    return true;
}

/* Each of t's tensors replaced by its stretch of packed. */
static nb_status unpack(nb_tensor *packed, int n, tensor_list *t) {
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        nb_tensor *part = nb__backward_hook_part(packed, t->at[i], at);
        if (!part) return nb_error_code();
        at += nb_numel(t->at[i]);
        replace(t, i, part);
    }
    return NB_OK;
}

/* The tensors wrapped in one backward_hook node of the given role; key: the inputs' packed
 * tensor, set by the inputs' wrapping (NULL when they were not wrapped) and passed to the
 * outputs'.  A reference to it is the caller's to drop. */
static nb_status wrap(nb_module *m, int role, int n, tensor_list *t, nb_tensor **key) {
    bool any_grad;
    if (!all_float(n, t->at, &any_grad) || !any_grad) return NB_OK;
    nb_tensor *in[NB_MODULE_MAX_IO + 1];
    memcpy(in, t->at, sizeof *in * (size_t)n);
    in[n] = *key;
    int n_with_key = n + (role == NB__HOOK_OUTPUTS && *key);
    nb_tensor *packed = nb__backward_hook_pack(role, n, n_with_key, in, &m->hooks->callbacks);
    nb_status s = packed ? unpack(packed, n, t) : nb_error_code();
    if (role == NB__HOOK_INPUTS) *key = packed;
    else nb_tensor_free(packed);
    return s;
}

static nb_status watched_forward(nb_module *m, int n_in, nb_tensor *const *in, int n_out,
                                 nb_tensor **out) {
    tensor_list args = {{0}, {false}}, res = {{0}, {false}};
    memcpy(args.at, in, sizeof *in * (size_t)n_in);
    nb_tensor *key = NULL;
    bool wrapping = m->hooks && m->hooks->n_backward > 0 && nb_is_grad_enabled();
    nb_status s = run_pre_hooks(m, n_in, &args);
    if (s == NB_OK && wrapping) s = wrap(m, NB__HOOK_INPUTS, n_in, &args, &key);
    if (s == NB_OK) s = nb__module_call(m, args.at, n_out, res.at);
    for (int j = 0; j < n_out; j++) res.owned[j] = true;
    if (s == NB_OK) s = run_forward_hooks(m, n_in, args.at, n_out, &res);
    if (s == NB_OK && wrapping) s = wrap(m, NB__HOOK_OUTPUTS, n_out, &res, &key);
    for (int j = 0; j < n_out; j++) {
        if (s != NB_OK) nb_tensor_free(res.at[j]);
        out[j] = s == NB_OK ? res.at[j] : NULL;
    }
    for (int i = 0; i < n_in; i++)
        if (args.owned[i]) nb_tensor_free(args.at[i]);
    nb_tensor_free(key);
    return s;
}

/* ---- anomaly mode: where an op runs.  The modules being run, outermost first. */

#define MAX_DEPTH 64
static _Thread_local const nb_module *running[MAX_DEPTH];
static _Thread_local int depth;

/* m's path below root ("2", "encoder.0"), or false when m is not under root. */
static bool path_of(const nb_module *root, const nb_module *m, char *buf, size_t cap) {
    if (m == root) return buf[0] = '\0', true;
    const nb_module *parent = m->parent;
    if (!parent || !path_of(root, parent, buf, cap)) return false;
    for (int c = 0; c < parent->children.n; c++)
        if (NB__CHILD(parent, c) == m) {
            size_t used = strlen(buf);
            snprintf(buf + used, cap - used, "%s%s", used ? "." : "", parent->children.at[c].name);
        }
    return true;
}

/* t's state_dict name under root, or NULL. */
static const char *param_name(const nb_module *root, const nb_tensor *t) {
    for (int i = 0, n = nb_module_num_params(root); i < n; i++) {
        const char *name = NULL;
        if (nb_module_param(root, i, &name) == t) return name;
    }
    for (int i = 0, n = nb_module_num_buffers(root); i < n; i++) {
        const char *name = NULL;
        if (nb_module_buffer(root, i, &name) == t) return name;
    }
    return NULL;
}

/* nb__origin_fn: "layer 2 (Linear)" (or "model (Sequential)" for the outermost module), then a
 * line per input: its state_dict name, or nothing. */
static int describe_origin(char *buf, size_t cap, nb_tensor *const *in, int n, void *ctx) {
    (void)ctx;
    const nb_module *root = running[0], *m = running[depth < MAX_DEPTH ? depth - 1 : MAX_DEPTH - 1];
    char path[512];
    int len;
    if (m == root) len = snprintf(buf, cap, "model (%s)\n", m->cls->name);
    else if (path_of(root, m, path, sizeof path))
        len = snprintf(buf, cap, "layer %s (%s)\n", path, m->cls->name);
    else len = snprintf(buf, cap, "a %s\n", m->cls->name);
    for (int i = 0; i < n && len >= 0; i++) {
        const char *name = param_name(root, in[i]);
        size_t used = (size_t)len < cap ? (size_t)len : cap;
        len += snprintf(buf + used, cap - used, "%s\n", name ? name : "");
    }
    return len;
}

nb_status nb__module_forward_watched(nb_module *m, int n_in, nb_tensor *const *in, int n_out,
                                     nb_tensor **out) {
    if (!nb_is_anomaly_enabled()) return watched_forward(m, n_in, in, n_out, out);
    nb__origin_fn previous_fn = NULL;
    void *previous_ctx = NULL;
    if (depth == 0) nb__set_origin(describe_origin, NULL, &previous_fn, &previous_ctx);
    if (depth < MAX_DEPTH) running[depth] = m;
    depth++;
    nb_status s = watched_forward(m, n_in, in, n_out, out);
    if (--depth == 0) nb__set_origin(previous_fn, previous_ctx, NULL, NULL);
    return s;
}
