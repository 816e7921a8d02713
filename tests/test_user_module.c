/*
 * test_user_module.c — module classes defined outside the library, against the public headers
 * only (nabla.h, through check.h), as a user defines them: a two-input gated unit with its own
 * parameter, a child and a buffer; a one-input two-output split; a one-in-one-out scale that
 * nests in a Sequential.  They must train (gradients against finite differences), name their
 * tensors as torch's state_dict does, save and load, print, describe themselves, free what their
 * state owns, and fail with messages that name the class.
 */
#include "check.h"
#include "tmpdir.h"

#include <stdlib.h>

/* ---------------------------------------------------------------- the classes */

/* Gate(a, b) = tanh(a W^T) * sigmoid(proj(b)): W [f, f] own, proj a Linear(f, f) child, and a
 * buffer counting the forwards made in training. */
typedef struct {
    int64_t features;
    nb_tensor *weight, *calls;
    nb_module *proj;
} gate_state;

static nb_status gate_forward(nb_module *m, nb_tensor *const *in, nb_tensor **out);

static void gate_describe(const nb_module *m, nb_attrs *d);

static const nb_module_class gate_class = {
    .name = "Gate", .n_inputs = 2, .n_outputs = 1, .forward_n = gate_forward, .describe = gate_describe,
};

/* Intermediates are freed as soon as they are used: the graph keeps what backward needs, and
 * inside a scope nb_tensor_free does nothing, so the forward works with or without one. */
static nb_status gate_forward(nb_module *m, nb_tensor *const *in, nb_tensor **out) {
    gate_state *s = nb_module_state(m, &gate_class);
    nb_tensor *a = nb_linear(in[0], s->weight, NULL);
    nb_tensor *h = nb_tanh(a);
    nb_tensor *p = nb_module_forward(s->proj, in[1]);
    nb_tensor *g = nb_sigmoid(p);
    out[0] = nb_mul(h, g);
    nb_tensor_free(a), nb_tensor_free(h), nb_tensor_free(p), nb_tensor_free(g);
    if (out[0] && nb_module_is_training(m))
        nb_set(s->calls, NB_INDEX(0), nb_get(s->calls, NB_INDEX(0)) + 1);
    return out[0] ? NB_OK : nb_error_code();
}

static void gate_describe(const nb_module *m, nb_attrs *d) {
    gate_state *s = nb_module_state(m, &gate_class);
    nb_attrs_int(d, "features", s->features);
}

static nb_module *gate_new(int64_t features) {
    nb_module *m = nb_module_new(&gate_class, sizeof(gate_state));
    gate_state *s = nb_module_state(m, &gate_class);
    if (!s) return NULL;
    s->features = features;
    s->weight = nb_module_add_param(m, "weight", NB_SHAPE(features, features));
    s->calls = nb_module_add_buffer(m, "calls", NB_I32, NB_SHAPE(1));
    if (!s->weight || !s->calls || nb_init_normal(s->weight, 0, 0.5f) != NB_OK ||
        nb_module_add_child(m, "proj", s->proj = nb_linear_new(features, features, true)) != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

/* Split(x) = (x * w, x + w): one input, two outputs; w [f]. */
typedef struct {
    nb_tensor *w;
} split_state;

static nb_status split_forward(nb_module *m, nb_tensor *const *in, nb_tensor **out);

static const nb_module_class split_class = {
    .name = "Split", .n_inputs = 1, .n_outputs = 2, .forward_n = split_forward,
};

static bool split_fails_second; /* makes the second output fail, after the first is made */

static nb_status split_forward(nb_module *m, nb_tensor *const *in, nb_tensor **out) {
    split_state *s = nb_module_state(m, &split_class);
    out[0] = nb_mul(in[0], s->w);
    out[1] = split_fails_second ? NULL : nb_add(in[0], s->w);
    return out[1] ? NB_OK : NB_ERR_ARG;
}

static nb_module *split_new(int64_t features) {
    nb_module *m = nb_module_new(&split_class, sizeof(split_state));
    split_state *s = nb_module_state(m, &split_class);
    if (!s || !(s->w = nb_module_add_param(m, "w", NB_SHAPE(features))) || nb_init_uniform(s->w, 0.5f, 1.5f)) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

/* Scale(x) = x * factor, the one-in-one-out form; its state owns a heap note, freed by
 * free_state (counted). */
typedef struct {
    nb_tensor *factor;
    char *note;
} scale_state;

static int scale_states_freed;

static nb_tensor *scale_forward(nb_module *m, nb_tensor *x);

static void scale_free_state(nb_module *m);

static const nb_module_class scale_class = {
    .name = "Scale", .forward = scale_forward, .free_state = scale_free_state,
};

static nb_tensor *scale_forward(nb_module *m, nb_tensor *x) {
    return nb_mul(x, ((scale_state *)nb_module_state(m, &scale_class))->factor);
}

static void scale_free_state(nb_module *m) {
    free(((scale_state *)nb_module_state(m, &scale_class))->note);
    scale_states_freed++;
}

static nb_module *scale_new(float factor) {
    nb_module *m = nb_module_new(&scale_class, sizeof(scale_state));
    scale_state *s = nb_module_state(m, &scale_class);
    if (!s) return NULL;
    s->note = malloc(16);
    s->factor = nb_module_add_param(m, "factor", NB_SHAPE(1));
    if (!s->factor || nb_fill(s->factor, factor) != NB_OK) {
        nb_module_free(m);
        return NULL;
    }
    return m;
}

/* ---------------------------------------------------------------- helpers */

static nb_tensor *randn(int64_t rows, int64_t cols) { return nb_randn(NB_SHAPE(rows, cols)); }

/* sum(gate(a, b) * r): a scalar whose gradient reaches every entry. */
static float gate_loss(nb_module *m, nb_tensor *a, nb_tensor *b, nb_tensor *r) {
    float v = NAN;
    nb_scope_begin();
    nb_tensor *y = NULL;
    if (nb_module_forward_n(m, 2, (nb_tensor *[]){a, b}, 1, &y) == NB_OK) v = nb_item(nb_sum(nb_mul(y, r)));
    nb_scope_end();
    return v;
}

/* Central differences of gate_loss along every entry of t (a parameter or an input), in
 * float32 with h = 1e-2, against t's gradient from backward. */
static void check_gradient(const char *what, nb_module *m, nb_tensor *t, nb_tensor *a, nb_tensor *b,
                           nb_tensor *r) {
    nb_tensor *grad = nb_grad(t);
    CHECK(grad != NULL);
    if (!grad) return;
    float *v = host_vals(t), *g = host_vals(grad), h = 1e-2f;
    double worst = 0;
    for (int64_t i = 0; i < nb_numel(t); i++) {
        float keep = v[i];
        set_flat(t, i, keep + h);
        float up = gate_loss(m, a, b, r);
        set_flat(t, i, keep - h);
        float down = gate_loss(m, a, b, r);
        set_flat(t, i, keep);
        double fd = ((double)up - down) / (2.0 * h), err = fabs(fd - g[i]) / (1e-2 + fabs(fd));
        if (err > worst) worst = err;
    }
    if (worst < 5e-3) check_passed_++;
    else CHECK_FAIL_("%s: backward differs from finite differences by %.3g (relative)", what, worst);
}

/* ---------------------------------------------------------------- tests */

static void user_module_gradients_match_finite_differences(void) {
    nb_manual_seed(1);
    nb_module *m = gate_new(3);
    nb_tensor *a = randn(4, 3), *b = randn(4, 3), *r = randn(4, 3);
    nb_set_requires_grad(a, true);
    nb_set_requires_grad(b, true);
    nb_scope_begin();
    nb_tensor *y = NULL;
    CHECK_EQ_INT(nb_module_forward_n(m, 2, (nb_tensor *[]){a, b}, 1, &y), NB_OK);
    CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(y, r))), NB_OK);
    nb_scope_end();
    nb_module_train(m, false); /* the finite differences must not count calls */
    for (int i = 0; i < nb_module_num_params(m); i++) {
        const char *name;
        nb_tensor *p = nb_module_param(m, i, &name);
        check_gradient(name, m, p, a, b, r);
    }
    check_gradient("input a", m, a, a, b, r);
    check_gradient("input b", m, b, a, b, r);
    nb_tensor_free(a), nb_tensor_free(b), nb_tensor_free(r);
    nb_module_free(m);
}

static void user_module_trains_with_an_optimiser(void) {
    nb_manual_seed(2);
    nb_module *m = gate_new(4);
    nb_tensor *a = randn(16, 4), *b = randn(16, 4), *target = nb_rand(NB_SHAPE(16, 4));
    nb_tensor *params[8];
    int n = nb_module_parameters(m, params, 8);
    CHECK_EQ_INT(n, 3); /* weight, proj.weight, proj.bias */
    nb_optim *o = nb_adam_new(n, params, (nb_adam_opts){.lr = 0.05});
    float first = NAN, last = NAN;
    for (int step = 0; step < 60; step++) {
        nb_scope_begin();
        nb_optim_zero_grad(o);
        nb_tensor *y = NULL;
        nb_module_forward_n(m, 2, (nb_tensor *[]){a, b}, 1, &y);
        nb_tensor *loss = nb_mse_loss(y, target, NB_REDUCTION_MEAN);
        last = nb_item(loss);
        if (step == 0) first = last;
        nb_backward(loss);
        nb_optim_step(o);
        nb_scope_end();
    }
    CHECK(last < 0.5f * first);
    CHECK_NEAR(nb_get(nb_module_find(m, "calls"), NB_INDEX(0)), 60, 0, 0); /* the buffer counted */
    nb_optim_free(o);
    nb_tensor_free(a), nb_tensor_free(b), nb_tensor_free(target);
    nb_module_free(m);
}

static void user_module_names_its_tensors_as_a_state_dict(void) {
    nb_module *m = gate_new(2);
    const char *name;
    const char *params[] = {"weight", "proj.weight", "proj.bias"};
    CHECK_EQ_INT(nb_module_num_params(m), 3);
    for (int i = 0; i < 3; i++) {
        nb_module_param(m, i, &name);
        CHECK_STR_CONTAINS(name, params[i]);
        CHECK_EQ_INT(strlen(name), strlen(params[i]));
    }
    CHECK_EQ_INT(nb_module_num_buffers(m), 1);
    nb_module_buffer(m, 0, &name);
    CHECK(!strcmp(name, "calls"));
    CHECK(!strcmp(nb_module_type(m), "Gate"));
    CHECK(nb_module_class_of(m) == &gate_class);
    CHECK(!strcmp(nb_module_type(nb_module_child(m, "proj")), "Linear"));
    /* nested in a Sequential, its names carry the prefix */
    nb_module *seq = nb_sequential_new(2, (nb_module *[]){nb_linear_new(2, 2, true), scale_new(3)});
    CHECK(nb_module_find(seq, "1.factor") != NULL);
    nb_module_free(seq);
    nb_module_free(m);
}

static void one_in_one_out_user_module_nests_saves_and_loads(void) {
    nb_manual_seed(3);
    nb_module *seq = nb_sequential_new(2, (nb_module *[]){nb_linear_new(3, 2, true), scale_new(2.5f)});
    nb_tensor *x = randn(5, 3);
    nb_scope_begin();
    nb_tensor *y = nb_module_forward(seq, x);
    nb_tensor *lin = nb_module_forward(nb_module_child(seq, "0"), x);
    float want[10], got[10];
    nb_copy_to(nb_mul_scalar(lin, 2.5f), want, 10);
    CHECK_EQ_INT(nb_copy_to(y, got, 10), NB_OK);
    for (int i = 0; i < 10; i++) CHECK_NEAR(got[i], want[i], 1e-6, 1e-6);
    nb_scope_end();
    const char *path = tpath("user_module.safetensors"); /* the guarded twin runs at once */
    CHECK_EQ_INT(nb_module_save(seq, path, 0, NULL, NULL), NB_OK);
    nb_module *other = nb_sequential_new(2, (nb_module *[]){nb_linear_new(3, 2, true), scale_new(1)});
    CHECK_EQ_INT(nb_module_load(other, path), NB_OK);
    CHECK_NEAR(nb_item(nb_module_find(other, "1.factor")), 2.5f, 0, 0);
    remove(path);
    int freed = scale_states_freed;
    nb_module_free(other);
    nb_module_free(seq);
    CHECK_EQ_INT(scale_states_freed, freed + 2); /* free_state once per module */
    nb_tensor_free(x);
}

static void several_outputs_come_back_owned_by_the_caller(void) {
    nb_module *m = split_new(3);
    nb_tensor *x = nb_ones(NB_SHAPE(2, 3)), *out[2];
    CHECK_EQ_INT(nb_module_forward_n(m, 1, &x, 2, out), NB_OK);
    float w[3], prod[6], sum[6];
    nb_copy_to(nb_module_find(m, "w"), w, 3);
    nb_copy_to(out[0], prod, 6);
    nb_copy_to(out[1], sum, 6);
    for (int i = 0; i < 6; i++) {
        CHECK_NEAR(prod[i], w[i % 3], 0, 0);
        CHECK_NEAR(sum[i], 1 + w[i % 3], 0, 0);
    }
    nb_tensor_free(out[0]), nb_tensor_free(out[1]); /* no scope: the caller's (ASan checks) */
    /* a forward that fails after making one output: the outputs are freed and NULL */
    split_fails_second = true;
    nb_error_clear();
    CHECK_EQ_INT(nb_module_forward_n(m, 1, &x, 2, out), NB_ERR_ARG);
    CHECK(out[0] == NULL && out[1] == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Split: forward gave no result");
    split_fails_second = false;
    nb_tensor_free(x);
    nb_module_free(m);
}

static void forward_with_the_wrong_counts_names_the_class(void) {
    nb_module *gate = gate_new(2), *split = split_new(2), *lin = nb_linear_new(2, 2, true);
    nb_tensor *x = nb_ones(NB_SHAPE(1, 2)), *out[2] = {x, x};
    CHECK(nb_module_forward(gate, x) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "module_forward: Gate takes 2 inputs and gives 1 outputs: call nb_module_forward_n");
    CHECK(nb_module_forward(split, x) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Split takes 1 inputs and gives 2 outputs");
    CHECK_EQ_INT(nb_module_forward_n(gate, 1, &x, 1, out), NB_ERR_ARG);
    CHECK(out[0] == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Gate: forward takes 2 inputs and gives 1 outputs, called with 1 and 1");
    CHECK_EQ_INT(nb_module_forward_n(gate, 2, (nb_tensor *[]){x, NULL}, 1, out), NB_ERR_NULL);
    nb_error_clear();
    CHECK_EQ_INT(nb_module_forward_n(lin, 1, &x, 2, out), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "Linear: forward takes 1 inputs and gives 1 outputs, called with 1 and 2");
    /* a layer through the general form */
    CHECK_EQ_INT(nb_module_forward_n(lin, 1, &x, 1, out), NB_OK);
    CHECK_EQ_INT(nb_size(out[0], 1), 2);
    nb_tensor_free(out[0]);
    nb_tensor_free(x);
    nb_module_free(gate), nb_module_free(split), nb_module_free(lin);
}

static const nb_module_class both_forwards = {.name = "Both", .forward = scale_forward,
                                              .forward_n = split_forward};
static const nb_module_class too_many = {.name = "Many", .n_inputs = NB_MODULE_MAX_IO + 1,
                                         .forward_n = split_forward};
static const nb_module_class layer_with_two_outputs = {.name = "Layer2", .n_outputs = 2,
                                                       .forward = scale_forward};
static const nb_module_class container = {.name = "Bag"};

static void class_and_entry_mistakes_fail_with_a_message(void) {
    CHECK(nb_module_new(NULL, 0) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "module_new: class or its name is NULL");
    CHECK(nb_module_new(&both_forwards, 0) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Both sets both forward and forward_n");
    CHECK(nb_module_new(&too_many, 0) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Many: 17 inputs and 0 outputs do not fit its forward");
    CHECK(nb_module_new(&layer_with_two_outputs, 0) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Layer2: 0 inputs and 2 outputs do not fit its forward");

    nb_module *lin = nb_linear_new(2, 2, true), *bag = nb_module_new(&container, 0);
    CHECK(nb_module_state(lin, &gate_class) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "module_state: m is a Linear, not a Gate");
    CHECK(nb_module_state(bag, &container) != NULL); /* no state asked: still a pointer, not an error */
    CHECK(nb_module_add_param(lin, "weight", NB_SHAPE(2)) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "module_add_param: Linear already has an entry named 'weight'");
    CHECK(nb_module_add_buffer(bag, "a.b", NB_F32, NB_SHAPE(2)) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "name 'a.b' must be non-empty and contain no '.'");
    CHECK(nb_module_add_param(bag, "", NB_SHAPE(2)) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "must be non-empty");
    CHECK(nb_module_add_buffer(bag, "b", NB_DTYPE_COUNT, NB_SHAPE(2)) == NULL);
    CHECK_ERROR(NB_ERR_DTYPE, "module_add_buffer: unknown dtype");
    CHECK(nb_module_add_param(bag, "w", NB_SHAPE(2, -1)) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_SHAPE);
    nb_error_clear();
    CHECK(nb_module_add_param(NULL, "w", NB_SHAPE(2)) == NULL);
    CHECK_ERROR(NB_ERR_NULL, "module or name is NULL");
    /* a child under a taken name is freed (ASan would see a leak otherwise) */
    CHECK_EQ_INT(nb_module_add_child(bag, "0", nb_linear_new(2, 2, true)), NB_OK);
    CHECK_EQ_INT(nb_module_add_child(bag, "0", nb_linear_new(2, 2, true)), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "Bag already has an entry named '0'");
    /* refused and left with their owner: the module itself, one above it, one with a parent */
    nb_module *inner = nb_module_new(&container, 0), *lin0 = nb_module_child(bag, "0");
    CHECK_EQ_INT(nb_module_add_child(bag, "inner", inner), NB_OK);
    CHECK_EQ_INT(nb_module_add_child(bag, "self", bag), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "module_add_child: a Bag cannot hold itself");
    CHECK_EQ_INT(nb_module_add_child(inner, "outer", bag), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "a Bag cannot hold itself");
    CHECK_EQ_INT(nb_module_add_child(inner, "again", lin0), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "the Linear is already a child of a Bag");
    CHECK_EQ_INT(nb_module_num_params(bag), 2);
    /* a child whose constructor failed keeps the constructor's error */
    CHECK_EQ_INT(nb_module_add_child(bag, "bad", nb_linear_new(0, 2, true)), NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "Linear: sizes must be positive");
    /* a container has no forward */
    nb_tensor *x = nb_ones(NB_SHAPE(1, 2));
    CHECK(nb_module_forward(bag, x) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "Bag: has no forward; its owner calls its children");
    nb_tensor_free(x);
    nb_module_free(bag);
    nb_module_free(lin);
}

static void user_module_prints_and_describes_its_attributes(void) {
    nb_module *m = gate_new(2);
    FILE *f = tmpfile();
    CHECK_EQ_INT(nb_module_fprint(f, m), NB_OK);
    char text[512] = "";
    rewind(f);
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    CHECK(!strcmp(text, "Gate(\n  features=2\n  (proj): Linear(in_features=2, out_features=2, bias=True)\n)\n"));
    nb_attrs d;
    CHECK_EQ_INT(nb_module_describe(m, &d), NB_OK);
    CHECK_EQ_INT(d.n, 1);
    CHECK(!strcmp(d.attr[0].name, "features") && d.attr[0].kind == NB_ATTR_INT && d.attr[0].ints[0] == 2);
    nb_module_free(m);
}

static void too_many_attributes_is_an_error_not_an_overrun(void) {
    nb_attrs d = {0};
    for (int i = 0; i < NB_ATTRS_MAX + 3; i++) nb_attrs_int(&d, "k", i);
    CHECK_EQ_INT(d.n, NB_ATTRS_MAX);
    CHECK(d.overflow);
    CHECK_EQ_INT(d.attr[NB_ATTRS_MAX - 1].ints[0], NB_ATTRS_MAX - 1);
    nb_attrs e = {0};
    nb_attrs_ints(&e, "shape", NB_MAX_DIMS + 1, (const int64_t[NB_MAX_DIMS + 1]){0});
    CHECK(e.overflow);
}

int main(void) {
    if (!tmpdir_make("nb_user_module")) return 1;
    user_module_gradients_match_finite_differences();
    user_module_trains_with_an_optimiser();
    user_module_names_its_tensors_as_a_state_dict();
    one_in_one_out_user_module_nests_saves_and_loads();
    several_outputs_come_back_owned_by_the_caller();
    forward_with_the_wrong_counts_names_the_class();
    class_and_entry_mistakes_fail_with_a_message();
    user_module_prints_and_describes_its_attributes();
    too_many_attributes_is_an_error_not_an_overrun();
    tmpdir_remove();
    return check_summary();
}
