/*
 * nabla/module.h — defining a module class in C, as a torch user subclasses nn.Module.
 *
 * A module is an object of a class: an nb_module_class (static, usually `static const`) names
 * the class and gives its forward and its description, and each module carries a block of state
 * of the class's own struct — its hyper-parameters by name, and handles on its parameters and
 * children (torch's self.weight, self.proj).  Every layer of nabla is made this way; a user's
 * class is made the same way and is a module like any other: it trains, prints, saves, loads,
 * freezes and nests.
 *
 *     typedef struct { nb_tensor *weight; nb_module *proj; } gate_state;
 *     static nb_status gate_forward(nb_module *m, nb_tensor *const *in, nb_tensor **out) { ... }
 *     static const nb_module_class gate_class = {
 *         .name = "Gate", .n_inputs = 2, .n_outputs = 1, .forward_n = gate_forward};
 *
 *     nb_module *m = nb_module_new(&gate_class, sizeof(gate_state));
 *     gate_state *s = nb_module_state(m, &gate_class);
 *     s->weight = nb_module_add_param(m, "weight", NB_SHAPE(4, 4));    // zeros; init it
 *     nb_module_add_child(m, "proj", s->proj = nb_linear_new(4, 4, true));
 *
 * Names follow torch's state_dict: own parameters and buffers first, then each child's under
 * "child." (nabla/nn.h's lookups).  examples/04_custom_module.c is a whole class, trained.
 */
#ifndef NABLA_MODULE_H
#define NABLA_MODULE_H

#include "../nabla.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_module nb_module;

/* ---------------------------------------------------------------- descriptions
 * A module's hyper-parameters by name, typed, as an exporter reads them (ONNX attributes) and as
 * the repr prints them: nb_module_fprint writes a module's attributes in order, "name=value"
 * joined by ", " — torch's extra_repr — so the repr and an export never disagree. */
typedef enum {
    NB_ATTR_INT,    /* ints[0]:          in_features=784 */
    NB_ATTR_INTS,   /* ints[0..n-1]:     kernel_size=(3, 3), normalized_shape (4,) */
    NB_ATTR_FLOAT,  /* f, as Python writes a float32: eps=1e-05, p=0.5, scale_factor=2.0 */
    NB_ATTR_BOOL,   /* ints[0] 0 or 1:   bias=True */
    NB_ATTR_STRING, /* s:                mode=nearest */
} nb_attr_kind;

/* How the repr writes an attribute (an exporter may ignore these). */
enum {
    NB_ATTR_POSITIONAL = 1, /* the value alone, no "name=" (Conv2d's channels: "1, 6, ...") */
    NB_ATTR_NO_REPR = 2,    /* for exporters only: a default torch's repr leaves out */
    NB_ATTR_QUOTED = 4,     /* a string in quotes: approximate='none' */
    NB_ATTR_SHORT = 8,      /* ints that are all equal as one int: kernel_size=2 */
};

typedef struct {
    const char *name;          /* torch's argument name; static, or the module's */
    nb_attr_kind kind;
    unsigned flags;            /* NB_ATTR_POSITIONAL | ... */
    int n;                     /* entries of ints: 1, or the tuple's length for NB_ATTR_INTS */
    int64_t ints[NB_MAX_DIMS];
    float f;
    const char *s;             /* static, or the module's (valid while the module is unchanged) */
} nb_attr;

#define NB_ATTRS_MAX 16
typedef struct {
    int n;
    bool overflow;                    /* more than NB_ATTRS_MAX were added: the rest are lost */
    nb_attr attr[NB_ATTRS_MAX + 1];   /* the last is scratch for an attribute that overflows */
} nb_attrs;

/* Appenders for a class's describe: each adds one attribute and returns it, so a flag can be
 * set on it (`nb_attrs_int(d, "in_channels", c)->flags = NB_ATTR_POSITIONAL`).  They never
 * return NULL: past NB_ATTRS_MAX they set d->overflow and hand out a scratch entry.
 * nb_attrs_ints takes up to NB_MAX_DIMS values (more: overflow). */
NB_API nb_attr *nb_attrs_int(nb_attrs *d, const char *name, int64_t v);
NB_API nb_attr *nb_attrs_ints(nb_attrs *d, const char *name, int n, const int64_t *v);
NB_API nb_attr *nb_attrs_float(nb_attrs *d, const char *name, float v);
NB_API nb_attr *nb_attrs_bool(nb_attrs *d, const char *name, bool v);
NB_API nb_attr *nb_attrs_string(nb_attrs *d, const char *name, const char *v);

/* ---------------------------------------------------------------- classes */

#define NB_MODULE_MAX_IO 16 /* inputs or outputs of one forward */

typedef struct nb_module_class {
    const char *name; /* torch's class name: the repr's, nb_module_type's and errors' */
    /* The forward of a one-input, one-output module (a layer): y = f(x), owned by the caller
     * (x itself retained, when the module passes its input through).  NULL on failure, with the
     * error set.  Called by nb_module_forward with m not NULL and x alive. */
    nb_tensor *(*forward)(nb_module *m, nb_tensor *x);
    /* The forward of any other module, set instead of `forward`: reads in[0 .. n_inputs-1]
     * (alive), writes out[0 .. n_outputs-1] (owned by the caller, as any op's result) and returns
     * NB_OK, or an error status with the error set (outputs it wrote are freed for it). */
    nb_status (*forward_n)(nb_module *m, nb_tensor *const *in, nb_tensor **out);
    int n_inputs, n_outputs; /* forward_n's counts, 1 to NB_MODULE_MAX_IO; 0 means 1 */
    /* Fills d with the module's hyper-parameters (see above); NULL: none. */
    void (*describe)(const nb_module *m, nb_attrs *d);
    /* Releases what the state points to and owns (not parameters, buffers or children: the
     * module frees those); called once by nb_module_free before they go.  NULL: nothing. */
    void (*free_state)(nb_module *m);
} nb_module_class;

/* A module of class cls (kept by pointer: it must outlive the module) with state_size zeroed
 * bytes of state, in training mode, with no parameters, buffers or children yet.  A class with
 * neither forward is a container that its owner indexes (torch's ModuleList): forwarding it is
 * an error.  NULL with NB_ERR_NULL for a NULL cls or name, NB_ERR_ARG when both forwards are
 * set or the counts are out of range, NB_ERR_MEMORY.  Free with nb_module_free. */
NB_API nb_module *nb_module_new(const nb_module_class *cls, size_t state_size);
/* m's state when m is of class cls: aligned for any type, valid until m is freed, not NULL
 * even for 0 bytes.  NULL with NB_ERR_ARG ("module_state: m is a Linear, not a Gate") for a
 * module of another class, so the cast is checked. */
NB_API void *nb_module_state(const nb_module *m, const nb_module_class *cls);
NB_API const nb_module_class *nb_module_class_of(const nb_module *m); /* NULL for NULL */

/* Own entries, in the order their names take in the state_dict.  A parameter is a persistent
 * float32 tensor of zeros that requires grad; a buffer a persistent tensor of zeros of any dtype
 * (running statistics, counters) that does not.  Both belong to m (freed with it, whatever scope
 * is open now) and keep their address, so the state may hold them.  A child is taken over (also
 * when adding fails, except as said below) and keeps its own train/eval mode, as in torch.
 * Names are unique among m's parameters, buffers and children, not empty and without '.'.
 * NULL / a status with NB_ERR_NULL for a NULL m or name, NB_ERR_ARG for a bad or taken name,
 * NB_ERR_MEMORY, and a bad shape or dtype as nb_zeros reports them.  A NULL child (a constructor that failed) keeps the error it left.  A child
 * that already has a parent, or that is m or holds m, is refused with NB_ERR_ARG and left as it
 * was (with its owner). */
NB_API nb_tensor *nb_module_add_param(nb_module *m, const char *name, int ndim, const int64_t *shape);
NB_API nb_tensor *nb_module_add_buffer(nb_module *m, const char *name, nb_dtype dtype, int ndim,
                                const int64_t *shape);
NB_API nb_status nb_module_add_child(nb_module *m, const char *name, nb_module *child);

/* Runs m on n_in inputs giving n_out outputs, owned by the caller (in the current scope).
 * n_in and n_out must be the class's counts (1 and 1 for a layer).  On failure every out[i] is
 * NULL and the error names the class: NB_ERR_NULL for a NULL m or a NULL or dead input,
 * NB_ERR_ARG for counts that do not match or a class without a forward. */
NB_API nb_status nb_module_forward_n(nb_module *m, int n_in, nb_tensor *const *in, int n_out,
                              nb_tensor **out);
/* m's attributes into d (cleared first); NB_ERR_ARG when its describe adds more than
 * NB_ATTRS_MAX, NB_ERR_NULL for NULL. */
NB_API nb_status nb_module_describe(const nb_module *m, nb_attrs *d);

/* ---------------------------------------------------------------- hooks
 * torch's module hooks.  nb_module_forward and nb_module_forward_n run them, in the order they
 * were registered (each kind apart), with the module and the registration's ctx:
 *   forward pre hook  before the forward, with its inputs: may replace in[i] by storing a new
 *                     tensor there (a reference it hands over; the one replaced is not its to
 *                     free); the forward and the later hooks see the replacement;
 *   forward hook      after the forward, with the inputs and the outputs: may replace out[j] the
 *                     same way (the module drops the one replaced);
 *   full backward hook in a backward pass through the module's outputs, once the gradients of
 *                     its inputs are known, with grad_input (NULL for an input that does not
 *                     require grad) and grad_output (read only; zeros for an output the loss
 *                     does not use): may replace grad_input[i] with a gradient of its shape made
 *                     with ops, which is what flows on.  When no input requires grad (or the
 *                     pass does not compute their gradients: nb_autograd_grad for other
 *                     tensors) it runs as soon as grad_output is known, with grad_input all NULL.
 *                     A pass that reaches the inputs only (differentiating a gradient again)
 *                     runs none.  For it, the forward wraps the inputs and
 *                     the outputs in torch's identity BackwardHookFunction (grad_fn
 *                     "BackwardHookFunctionBackward"); inputs that are not all float32 are not
 *                     wrapped (grad_input all NULL).  The module must outlive the graphs made
 *                     while it has one.
 * A hook that returns an error status (an op of its own failed, say) stops the forward (its
 * outputs freed) or the backward pass with that error.  Hooks belong to the module and go with
 * it.  Registering returns a handle (> 0) for nb_module_remove_hook, unique within the module,
 * or 0 with NB_ERR_NULL for a NULL module or fn (NB_ERR_MEMORY). */
typedef nb_status (*nb_module_forward_pre_hook_fn)(nb_module *m, int n_in, nb_tensor **in, void *ctx);
typedef nb_status (*nb_module_forward_hook_fn)(nb_module *m, int n_in, nb_tensor *const *in,
                                               int n_out, nb_tensor **out, void *ctx);
typedef nb_status (*nb_module_backward_hook_fn)(nb_module *m, int n_in, nb_tensor **grad_input,
                                                int n_out, nb_tensor *const *grad_output,
                                                void *ctx);
NB_API int nb_module_register_forward_pre_hook(nb_module *m, nb_module_forward_pre_hook_fn fn,
                                               void *ctx);
NB_API int nb_module_register_forward_hook(nb_module *m, nb_module_forward_hook_fn fn, void *ctx);
NB_API int nb_module_register_full_backward_hook(nb_module *m, nb_module_backward_hook_fn fn,
                                                 void *ctx);
/* NB_ERR_ARG when m has no hook of that handle (or it was removed). */
NB_API nb_status nb_module_remove_hook(nb_module *m, int handle);

#ifdef __cplusplus
}
#endif
#endif
