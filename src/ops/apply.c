/*
 * apply.c — nb__apply, the entry point of every op: it checks the inputs against the op's row
 * of the table, picks the kernels for their dtype, runs the forward and, when recording is on
 * (grad mode, below) and an input requires grad, attaches a node to the result (torch's
 * grad_fn) with the backward of those kernels.  The backward engine (src/autograd) walks the
 * nodes; it depends on the ops, never the other way round.
 */
#include "op.h"

#include <stdio.h>
#include <string.h>

static _Thread_local bool grad_disabled; /* zero-initialised: recording is on by default */

bool nb_is_grad_enabled(void) { return !grad_disabled; }

bool nb_set_grad_enabled(bool enabled) {
    bool previous = !grad_disabled;
    grad_disabled = !enabled;
    return previous;
}

/* ---- anomaly mode (nabla/autograd.h): checks of every result, and where each op ran */

static _Thread_local bool anomaly;
static _Thread_local nb__origin_fn origin_fn;
static _Thread_local void *origin_ctx;

bool nb_is_anomaly_enabled(void) { return anomaly; }

bool nb_set_detect_anomaly(bool on) {
    bool previous = anomaly;
    anomaly = on;
    return previous;
}

void nb__set_origin(nb__origin_fn fn, void *ctx, nb__origin_fn *previous_fn, void **previous_ctx) {
    if (previous_fn) *previous_fn = origin_fn;
    if (previous_ctx) *previous_ctx = origin_ctx;
    origin_fn = fn;
    origin_ctx = ctx;
}

/* The node's origin: the describer's text in the node's home. */
static void note_origin(nb_node *node, nb_arena *home, nb_tensor *const *in, int n) {
    if (!origin_fn) return;
    char buf[1024];
    int len = origin_fn(buf, sizeof buf, in, n, origin_ctx);
    if (len <= 0) return;
    size_t size = (size_t)len < sizeof buf ? (size_t)len + 1 : sizeof buf;
    node->origin = nb__home_alloc(home, size);
    if (!node->origin) return; /* only a message is lost */
    memcpy(node->origin, buf, size - 1);
    node->origin[size - 1] = '\0';
    node->origin_size = size;
}

/* Line k of text (lines end with '\n'), or NULL. */
static const char *line_of(const char *text, int k, int *len) {
    for (; text && k > 0; k--) {
        text = strchr(text, '\n');
        if (text) text++;
    }
    if (!text) return NULL;
    const char *end = strchr(text, '\n');
    *len = end ? (int)(end - text) : (int)strlen(text);
    return text;
}

void nb__origin_parts(const nb_node *node, int i, char *name, size_t name_cap, char *where,
                      size_t where_cap) {
    int len = 0;
    const char *w = line_of(node->origin, 0, &len);
    if (w && len) snprintf(where, where_cap, " in %.*s", len, w);
    else where[0] = '\0';
    const char *nm = line_of(node->origin, i + 1, &len);
    if (nm && len) snprintf(name, name_cap, "%.*s", len, nm);
    else snprintf(name, name_cap, "input %d", i);
}

/* "float16 [2,3], float32 [3]": the inputs as an error message shows them. */
static const char *inputs_str(int n, nb_tensor *const *in, char *buf, size_t size);

/* A result with a NaN or an infinity fails the op, naming it, where it ran and its inputs. */
static nb_tensor *check_result(const nb_op_def *def, nb_tensor *out, int n, nb_tensor *const *in) {
    double value = 0;
    int64_t at = nb__first_non_finite(out, &value);
    if (at == -1) return out;
    char index[24 * NB_MAX_DIMS + 8], where[1040] = "", inputs[512];
    if (origin_fn) {
        char buf[1024];
        int len = 0, got = origin_fn(buf, sizeof buf, in, n, origin_ctx);
        const char *w = got > 0 ? line_of(buf, 0, &len) : NULL;
        if (w && len) snprintf(where, sizeof where, " in %.*s", len, w);
    }
    if (at >= 0) nb__flat_index_str(out->ndim, out->shape, at, index, sizeof index);
    nb_tensor_free(out);
    if (at == -2) return nb__fail(NB_ERR_MEMORY, "%s: out of memory checking the result", def->name);
    return nb__fail(NB_ERR_VALUE, "%s%s: the result is not finite (%g at %s); inputs %s",
                    def->name, where, value, index, inputs_str(n, in, inputs, sizeof inputs));
}

static const char *device_name(nb_device d) { return d == NB_CPU ? "cpu" : "cuda"; }

/* "float16 [2,3], float32 [3]": the inputs as an error message shows them. */
static const char *inputs_str(int n, nb_tensor *const *in, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s %s", i ? ", " : "",
                                 nb_dtype_name(in[i]->dtype), NB_SHP(in[i]));
    return buf;
}

/* The kernels for the inputs' dtype, or NULL (and an NB_ERR_DTYPE naming the op) when an
 * index is not int32, the op has no kernel for the dtype of its first input (always a T), or
 * the other T inputs differ from it.  One pass: this runs for every op. */
static const nb_op_kernels *kernels_for(const nb_op_def *def, int n, nb_tensor *const *in) {
    nb_dtype dtype = in[0]->dtype;
    bool same = true;
    const char *rule = def->inputs; /* the last rule repeats */
    for (int i = 1; i < n; i++) {
        rule += rule[1] != '\0';
        if (*rule != 'I') same &= in[i]->dtype == dtype;
        else if (in[i]->dtype != NB_I32)
            return nb__fail(NB_ERR_DTYPE, "%s: index must be int32, got %s", def->name,
                            nb_dtype_name(in[i]->dtype));
    }
    const nb_op_kernels *k = &def->kernels[dtype];
    if (k->forward && same) return k;
    char buf[256];
    if (!k->forward)
        return nb__fail(NB_ERR_DTYPE, "%s: no %s kernel (inputs %s)", def->name,
                        nb_dtype_name(dtype), inputs_str(n, in, buf, sizeof buf));
    return nb__fail(NB_ERR_DTYPE, "%s: inputs must share one dtype (inputs %s)", def->name,
                    inputs_str(n, in, buf, sizeof buf));
}

static nb_status record(nb_tensor *out, nb_op_id op, nb_backward_fn backward, int n,
                        nb_tensor *const *in, const nb_op_args *args) {
    nb_node *node = nb__home_alloc(out->arena, sizeof *node);
    nb_tensor **inputs = node ? nb__home_alloc(out->arena, sizeof(nb_tensor *) * (size_t)n) : NULL;
    if (!inputs) {
        nb__home_free(out->arena, node, sizeof *node);
        return NB_ERR_MEMORY;
    }
    memset(node, 0, sizeof *node);
    node->op = op;
    node->grad_fn = nb__ops[op].grad_fn;
    node->backward = backward;
    node->n_in = n;
    node->in = inputs;
    node->out = out;
    if (args) node->args = *args;
    if (anomaly) note_origin(node, out->arena, in, n);
    for (int i = 0; i < n; i++) {
        inputs[i] = in[i];
        nb__retain(in[i]);
    }
    out->node = node;
    out->requires_grad = true;
    return NB_OK;
}

nb_tensor *nb__apply(nb_op_id op, int n, nb_tensor *const *in, const nb_op_args *args) {
    const nb_op_def *def = &nb__ops[op];
    if (!in || n < 1) return nb__fail(NB_ERR_ARG, "%s: no input tensors", def->name);
    for (int i = 0; i < n; i++)
        if (!nb__alive(in[i])) return nb__fail_input(def->name, in[i]);
    for (int i = 1; i < n; i++)
        if (in[i]->device != in[0]->device)
            return nb__fail(NB_ERR_DEVICE, "%s: input 0 is on %s but input %d is on %s",
                            def->name, device_name(in[0]->device), i,
                            device_name(in[i]->device));
    if (!nb__backend(in[0]->device))
        return nb__fail(NB_ERR_DEVICE, "%s: this build has no backend for the tensor's device",
                        def->name);
    const nb_op_kernels *k = kernels_for(def, n, in);
    if (!k) return NULL;
    nb_tensor *out = k->forward(op, in, n, args ? args : &(nb_op_args){0});
    if (out && anomaly && !(out = check_result(def, out, n, in))) return NULL;
    if (!out || grad_disabled || !k->backward) return out;
    for (int i = 0; i < n; i++) {
        if (in[i]->requires_grad) {
            if (record(out, op, k->backward, n, in, args) != NB_OK) {
                nb_tensor_free(out);
                return NULL;
            }
            break;
        }
    }
    return out;
}
