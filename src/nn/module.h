/*
 * module.h — the module struct shared by src/nn.  A module is an object of a class
 * (nabla/module.h): the class gives forward and describe, the module holds its parameters,
 * buffers and named children, and a block of state of the class's own struct right after the
 * struct (the built-in classes' states are below or in their files).  Full names are torch's:
 * own entries first, then each child's with "child." in front, of any length.  They are listed
 * in a name table (module.c) built on a module's first lookup and kept until the module is
 * freed, so every name handed out lives as long as the module.
 */
#ifndef NB_NN_MODULE_H
#define NB_NN_MODULE_H

#include "nabla/module.h"
#include "nabla/nn.h"
#include "../core/core.h"

typedef struct {
    char *name; /* owned */
    union {
        nb_tensor *tensor; /* a parameter or buffer: persistent, owned by the module */
        nb_module *module; /* a child, owned */
    };
} nb_module_entry;

typedef struct {
    int n, cap;
    nb_module_entry *at;
} nb_module_entries;

typedef struct nb__name_table nb__name_table;
typedef struct nb__module_hooks nb__module_hooks;

struct nb_module {
    const nb_module_class *cls;
    bool training;
    nb_module_entries params, buffers, children;
    nb_module *parent; /* the module holding this one as a child, or NULL */
    /* Full names under this module: the newest table first, then tables made before the tree
     * last changed (kept so that names handed out stay valid).  NULL until the first lookup. */
    nb__name_table *names;
    size_t state_size;
    void *state; /* state_size bytes right after this struct (aligned) */
    nb__module_hooks *hooks; /* NULL until a hook is registered (module.c) */
};

/* The class's forward on checked inputs and counts (module.c); on failure every out[j] is NULL. */
nb_status nb__module_call(nb_module *m, nb_tensor *const *in, int n_out, nb_tensor **out);
/* nb_module_forward_n when m has hooks or anomaly mode is on: the hooks around the forward, and
 * where ops run for anomaly mode's messages (hooks.c). */
nb_status nb__module_forward_watched(nb_module *m, int n_in, nb_tensor *const *in, int n_out,
                                     nb_tensor **out);
void nb__module_hooks_free(nb__module_hooks *h);

/* Puts child (which has no parent) in the place of m's child i, under the same name, and
 * returns the module it replaced, detached and now the caller's (module.c). */
nb_module *nb__module_swap_child(nb_module *m, int i, nb_module *child);
/* Frees m's children from index keep on; m keeps children 0 .. keep-1 (module.c). */
void nb__module_drop_children(nb_module *m, int keep);

/* Frees m's own buffer of that name (module.c); false when it has none. */
bool nb__module_drop_buffer(nb_module *m, const char *name);

/* The state of a built-in module known to be of class cls (no check, no error). */
#define NB__STATE(type, m) ((type *)(m)->state)

/* Child i of a built-in module, by position. */
#define NB__CHILD(m, i) ((m)->children.at[i].module)

/* ---- the classes other files of src/nn read */

typedef struct {
    int64_t in_features, out_features;
    nb_tensor *weight, *bias; /* bias NULL when made without */
} nb__linear_state;

typedef struct {
    int64_t in_channels, out_channels;
    int kernel[2];
    nb_conv2d_opts opts; /* normalised: zero strides, dilations and groups replaced */
    nb_tensor *weight, *bias;
} nb__conv2d_state;

typedef struct {
    int64_t in_channels, out_channels;
    int kernel[2];
    nb_conv_transpose2d_opts opts;
    nb_tensor *weight, *bias;
} nb__conv_transpose2d_state;

/* BatchNorm1d and BatchNorm2d */
typedef struct {
    int64_t num_features;
    float eps, momentum;
    nb_tensor *weight, *bias;                     /* NULL without affine */
    nb_tensor *running_mean, *running_var, *num_batches_tracked; /* NULL without running stats */
} nb__batchnorm_state;

extern const nb_module_class nb__linear_class, nb__conv2d_class, nb__conv_transpose2d_class,
    nb__batchnorm1d_class, nb__batchnorm2d_class;

/* BatchNorm's two halves after the statistics (norm.c), shared with SyncBatchNorm
 * (src/dist/syncbn.c), whose statistics span the ranks: the running statistics updated from
 * the batch's mean and biased var ([1, C, 1, ...], contiguous) over n values per channel, and
 * y = xc / sqrt(var + eps) * weight + bias with the per-channel tensors shaped `shape`. */
void nb__batchnorm_update_running(nb__batchnorm_state *s, nb_tensor *mean, nb_tensor *var, int64_t n);
nb_tensor *nb__batchnorm_scale_shift(nb_tensor *xc, nb_tensor *var, float eps, nb_tensor *weight,
                                     nb_tensor *bias, int ndim, const int64_t *shape);

/* Inverted dropout shared by Dropout and Dropout2d (layers.c): in training, x times a
 * Bernoulli(1 - p) mask of mask_shape (broadcast against x) scaled by 1 / (1 - p); else x. */
typedef struct {
    float p;
} nb__dropout_state;
nb_tensor *nb__dropout(nb_module *m, nb_tensor *x, int ndim, const int64_t *mask_shape);
void nb__dropout_describe(const nb_module *m, nb_attrs *d);
nb_module *nb__dropout_new(const nb_module_class *cls, float p);

#endif
