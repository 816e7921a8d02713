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
