/*
 * module.h — the module struct shared by src/nn.  A module is a small object with a type
 * table (forward, repr), its own parameters and buffers, and named children.  Full names are
 * torch's: own entries first, then each child's with "child." in front, of any length.  They
 * are listed in a name table (module.c) built on a module's first lookup and kept until the
 * module is freed, so every name handed out lives as long as the module.
 */
#ifndef NB_NN_MODULE_H
#define NB_NN_MODULE_H

#include "nabla/nn.h"
#include "../core/core.h"

#define NB_MODULE_MAX_OWN 4   /* parameters or buffers a module holds itself */

typedef struct {
    const char *type; /* torch's class name */
    nb_tensor *(*forward)(nb_module *m, nb_tensor *x);
    /* writes the part of the repr inside the parentheses: "in_features=784, ..." */
    void (*describe)(const nb_module *m, char *buf, size_t cap);
} nb_module_type_def;

typedef struct {
    char *name;        /* owned */
    nb_tensor *tensor; /* persistent, owned by the module */
} nb_module_entry;

typedef struct nb__name_table nb__name_table;

struct nb_module {
    const nb_module_type_def *def;
    bool training;
    int n_params, n_buffers;
    nb_module_entry params[NB_MODULE_MAX_OWN];
    nb_module_entry buffers[NB_MODULE_MAX_OWN];
    int n_children, cap_children;
    nb_module **children;
    char **child_names; /* owned strings */
    nb_module *parent;  /* the module holding this one as a child, or NULL */
    /* Full names under this module: the newest table first, then tables made before the tree
     * last changed (kept so that names handed out stay valid).  NULL until the first lookup. */
    nb__name_table *names;
    /* per-type settings */
    float f[4];
    int64_t i[NB_MAX_DIMS + 2];
    /* convolution and pooling modules keep their options as the functional op takes them */
    union {
        nb_conv2d_opts conv;
        nb_conv_transpose2d_opts conv_t;
        nb_pool2d_opts pool;
    } opts;
};

nb_module *nb__module_new(const nb_module_type_def *def);
/* Adds a persistent tensor (made here with no scope open) as a parameter or buffer. */
nb_tensor *nb__module_add_param(nb_module *m, const char *name, int ndim, const int64_t *shape);
nb_tensor *nb__module_add_buffer(nb_module *m, const char *name, nb_dtype dtype, int ndim,
                                 const int64_t *shape);
/* Takes ownership of child (frees it when adding fails). */
nb_status nb__module_add_child(nb_module *m, const char *name, nb_module *child);
nb_tensor *nb__module_own(const nb_module *m, const char *name); /* own param or buffer */

/* v as Python's repr writes a float (torch's extra_repr uses it): "1.0", "0.2", "1e-05". */
void nb__repr_float(char *buf, size_t cap, float v);

/* Inverted dropout shared by Dropout and Dropout2d (layers.c): in training, x times a
 * Bernoulli(1 - p) mask of mask_shape (broadcast against x) scaled by 1 / (1 - p); else x. */
nb_tensor *nb__dropout(nb_module *m, nb_tensor *x, int ndim, const int64_t *mask_shape);
void nb__dropout_describe(const nb_module *m, char *buf, size_t cap);
nb_module *nb__dropout_new(const nb_module_type_def *def, float p);

/* A persistent (caller-owned) tensor, whatever scope is open: modules own their tensors. */
nb_tensor *nb__persistent_tensor(nb_dtype dtype, int ndim, const int64_t *shape);

#endif
