/*
 * test_golden.c — every case of op_cases.h against PyTorch's numbers in tests/golden/ops.json
 * (written by tools/gen_golden.py; run from the repository root).
 *
 * Each JSON case must say exactly what op_cases.h says (row, function, arguments, input specs;
 * its values must obey the specs), so the two cannot drift apart silently.  Inputs are built
 * from the stored values in the case's layout, the output is compared with torch's, and for
 * differentiable rows the gradient of every float input under loss = sum(out * R), with the
 * stored R, is compared with torch's.  Comparisons and argmax are checked forward only (and
 * must record no graph, as in torch).  Cases marked nonsmooth pin torch's conventions on kinks:
 * ties of max/min share the gradient evenly, relu/abs pass 0 at 0, leaky_relu passes its slope
 * at 0, clamp passes the gradient at its bounds, d(a^b)/db is 0 where a = 0.
 *
 * Tolerance: |nabla - torch| <= 1e-5 + 1e-5 |torch| for outputs and gradients of every op, none
 * looser.  torch's numbers are float64 computed from the same float32 inputs, so the difference
 * is nabla's float32 rounding alone: the worst measured is 1e-7 (all cases pass at 2e-7), which
 * leaves room for other libm and BLAS builds, while any mistake in a formula, an index or a
 * broadcast is orders of magnitude outside the bound.
 *
 * Coverage: every row of the op table, differentiable or not, needs at least one golden case;
 * a row without one fails by name.
 */
#include "check.h"
#include "op_cases.h"

#include <jansson.h>

#define GOLDEN_PATH "tests/golden/ops.json"
#define ATOL 1e-5
#define RTOL 1e-5
#define MAX_ELEMS 256

static const char *const draw_names[] = {
    [OC_NONE] = "none",   [OC_UNIFORM] = "uniform", [OC_DISTINCT] = "distinct",
    [OC_INTS] = "ints",   [OC_MASK] = "mask",       [OC_INDEX] = "index",
    [OC_FIXED] = "fixed",   [OC_GRID] = "grid",
};
static const char *const layout_names[] = {
    [OC_CONTIGUOUS] = "contiguous", [OC_TRANSPOSED] = "transposed", [OC_STRIDED] = "strided",
};

/* The numbers of a JSON array into out; -1 when it is not an array of at most cap numbers. */
static long json_doubles(const json_t *a, double *out, long cap) {
    if (!json_is_array(a) || (long)json_array_size(a) > cap) return -1;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_number(v)) return -1;
        out[i] = json_number_value(v);
    }
    return (long)json_array_size(a);
}

/* A float argument: a number, or "inf" / "-inf" (JSON has no infinities). */
static bool json_float_is(const json_t *v, float want) {
    if (json_is_string(v))
        return isinf(want) && strcmp(json_string_value(v), want > 0 ? "inf" : "-inf") == 0;
    return json_is_number(v) && (float)json_number_value(v) == want;
}

static bool json_ints_are(const json_t *a, int n, const int64_t *want) {
    if (!json_is_array(a) || (int)json_array_size(a) != n) return false;
    for (int i = 0; i < n; i++) {
        const json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) != want[i]) return false;
    }
    return true;
}

static bool json_int_is(const json_t *obj, const char *key, int64_t want) {
    const json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) == want;
}

static bool json_bool_is(const json_t *obj, const char *key, bool want) {
    const json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) && json_is_true(v) == want;
}

static bool json_str_is(const json_t *obj, const char *key, const char *want) {
    const char *s = json_string_value(json_object_get(obj, key));
    return s && strcmp(s, want) == 0;
}

static bool json_pair_is(const json_t *obj, const char *key, const int v[2]) {
    return json_ints_are(json_object_get(obj, key), 2, (const int64_t[]){v[0], v[1]});
}

/* args.conv and args.conv_t against the case's nb_conv2d_opts and nb_conv_transpose2d_opts. */
static bool conv_opts_match(const op_case *c, const json_t *args) {
    const json_t *cv = json_object_get(args, "conv"), *ct = json_object_get(args, "conv_t");
    return json_pair_is(cv, "stride", c->conv.stride) &&
           json_pair_is(cv, "padding", c->conv.padding) &&
           json_bool_is(cv, "same", c->conv.same) &&
           json_pair_is(cv, "dilation", c->conv.dilation) &&
           json_int_is(cv, "groups", c->conv.groups) &&
           json_pair_is(ct, "stride", c->conv_t.stride) &&
           json_pair_is(ct, "padding", c->conv_t.padding) &&
           json_pair_is(ct, "output_padding", c->conv_t.output_padding) &&
           json_pair_is(ct, "dilation", c->conv_t.dilation) &&
           json_int_is(ct, "groups", c->conv_t.groups);
}

/* Fails (naming the case and the field) unless the JSON case says what op_cases.h says. */
static bool matches_table(const op_case *c, const json_t *j) {
    const json_t *args = json_object_get(j, "args"), *inputs = json_object_get(j, "inputs");
    int64_t dims[OC_MAX_RANK];
    for (int i = 0; i < c->n_dims; i++) dims[i] = c->dims[i];
    const json_t *pool = json_object_get(args, "pool");
    const struct {
        const char *field;
        bool same;
    } fields[] = {
        {"op", json_str_is(j, "op", nb__ops[c->op].name)},
        {"fn", json_str_is(j, "fn", oc_fns[c->fn].name)},
        {"nonsmooth", json_is_boolean(json_object_get(j, "nonsmooth")) &&
                          json_is_true(json_object_get(j, "nonsmooth")) == c->nonsmooth},
        {"args.dims", json_ints_are(json_object_get(args, "dims"), c->n_dims, dims)},
        {"args.keepdim", json_is_boolean(json_object_get(args, "keepdim")) &&
                             json_is_true(json_object_get(args, "keepdim")) == c->keepdim},
        {"args.dim", json_int_is(args, "dim", c->dim)},
        {"args.s0", json_float_is(json_object_get(args, "s0"), c->s0)},
        {"args.s1", json_float_is(json_object_get(args, "s1"), c->s1)},
        {"args.start", json_int_is(args, "start", c->start)},
        {"args.end", json_int_is(args, "end", c->end)},
        {"args.step", json_int_is(args, "step", c->step)},
        {"args.sizes", json_ints_are(json_object_get(args, "sizes"), c->n_sizes, c->sizes)},
        {"args.pool.kernel", json_pair_is(pool, "kernel", c->pool.kernel)},
        {"args.pool.stride", json_pair_is(pool, "stride", c->pool.stride)},
        {"args.pool.padding", json_pair_is(pool, "padding", c->pool.padding)},
        {"args.pool.ceil_mode", json_bool_is(pool, "ceil_mode", c->pool.ceil_mode)},
        {"args.pool.exclude_pad", json_bool_is(pool, "exclude_pad", c->pool.exclude_pad)},
        {"args.scale", json_pair_is(args, "scale", c->scale)},
        {"args.align_corners", json_bool_is(args, "align_corners", c->align_corners)},
        {"args.conv / args.conv_t", conv_opts_match(c, args)},
        {"number of inputs",
         json_is_array(inputs) && (int)json_array_size(inputs) == oc_n_inputs(c)},
    };
    bool same = true;
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        if (fields[f].same) continue;
        CHECK_FAIL_("%s: %s differs between %s and tests/op_cases.h", c->name, fields[f].field,
                    GOLDEN_PATH);
        same = false;
    }
    for (int i = 0; same && i < oc_n_inputs(c); i++) {
        const oc_input *s = &c->in[i];
        const json_t *in = json_array_get(inputs, (size_t)i);
        double v[MAX_ELEMS];
        long n = json_doubles(json_object_get(in, "values"), v, MAX_ELEMS);
        bool ok = json_str_is(in, "draw", draw_names[s->draw]) &&
                  json_str_is(in, "layout", layout_names[s->layout]) &&
                  json_ints_are(json_object_get(in, "shape"), s->ndim, s->shape) &&
                  n == oc_numel(s->ndim, s->shape);
        for (long k = 0; ok && k < n; k++) ok = oc_value_ok(s, (float)v[k]);
        if (!ok) {
            CHECK_FAIL_("%s: input %d (draw, layout, shape or values) differs from its spec in "
                        "tests/op_cases.h", c->name, i);
            same = false;
        }
    }
    return same;
}

static void golden_case(const op_case *c, const json_t *j) {
    bool differentiable = nb__ops[c->op].kernels[NB_F32].backward != NULL;
    const json_t *inputs = json_object_get(j, "inputs"), *grads = json_object_get(j, "grads");
    int n_in = oc_n_inputs(c);
    nb_tensor *leaf[OC_MAX_IN], *x[OC_MAX_IN];
    double want[MAX_ELEMS];
    char what[160];
    nb_scope_begin();
    for (int i = 0; i < n_in; i++) {
        float v[MAX_ELEMS];
        long n = json_doubles(json_object_get(json_array_get(inputs, (size_t)i), "values"), want,
                              MAX_ELEMS);
        for (long k = 0; k < n; k++) v[k] = (float)want[k];
        leaf[i] = oc_make_leaf(&c->in[i], v);
        if (oc_is_float(&c->in[i])) nb_set_requires_grad(leaf[i], true);
        x[i] = oc_view_of(&c->in[i], leaf[i]);
    }
    nb_tensor *out = oc_fns[c->fn].call(x, c);
    snprintf(what, sizeof what, "%s: output", c->name);
    const json_t *out_shape = json_object_get(j, "out_shape");
    if (out && json_ints_are(out_shape, nb_ndim(out), nb_shape(out))) check_passed_++;
    else CHECK_FAIL_("%s: output shape differs from torch's [%s]", what, nb_error_message());
    long n_out = json_doubles(json_object_get(j, "out"), want, MAX_ELEMS);
    CHECK_TENSOR(what, out, want, n_out, ATOL, RTOL);
    if (!out || !differentiable) {
        if (out) CHECK(!nb_requires_grad(out));
        nb_error_clear();
        nb_scope_end();
        return;
    }
    float r[MAX_ELEMS];
    long n_r = json_doubles(json_object_get(j, "r"), want, MAX_ELEMS);
    for (long k = 0; k < n_r; k++) r[k] = (float)want[k];
    nb_tensor *rt = n_r == nb_numel(out) ? nb_from_data(r, nb_ndim(out), nb_shape(out)) : NULL;
    CHECK_EQ_INT(nb_backward(nb_sum(nb_mul(out, rt))), NB_OK);
    for (int i = 0; i < n_in; i++) {
        const json_t *g = json_array_get(grads, (size_t)i);
        snprintf(what, sizeof what, "%s: gradient of input %d", c->name, i);
        if (!oc_is_float(&c->in[i])) {
            if (json_is_null(g)) check_passed_++;
            else CHECK_FAIL_("%s: torch has one, nabla's input takes none", what);
            continue;
        }
        long n = json_doubles(g, want, MAX_ELEMS);
        nb_tensor *grad = nb_grad(leaf[i]);
        CHECK_TENSOR(what, grad ? oc_view_of(&c->in[i], grad) : NULL, want, n, ATOL, RTOL);
    }
    nb_error_clear();
    nb_scope_end();
}

int main(void) {
    json_error_t err;
    json_t *root = json_load_file(GOLDEN_PATH, 0, &err);
    const json_t *cases = json_object_get(root, "cases");
    if (!json_is_array(cases)) {
        CHECK_FAIL_("%s: %s (line %d); run from the repository root", GOLDEN_PATH,
                    root ? "no \"cases\" array" : err.text, err.line);
        json_decref(root);
        return check_summary();
    }
    bool row_has_case[NB_OP_COUNT] = {false}, case_has_json[OC_N_CASES];
    memset(case_has_json, 0, sizeof case_has_json);
    for (size_t k = 0; k < json_array_size(cases); k++) {
        const json_t *j = json_array_get(cases, k);
        const char *name = json_string_value(json_object_get(j, "name"));
        const op_case *c = name ? oc_find(name) : NULL;
        if (!c) {
            CHECK_FAIL_("%s: case %zu (\"%s\") is not in tests/op_cases.h", GOLDEN_PATH, k,
                        name ? name : "?");
            continue;
        }
        case_has_json[c - oc_cases] = true;
        if (!matches_table(c, j)) continue;
        row_has_case[c->op] = true;
        golden_case(c, j);
    }
    for (int i = 0; i < OC_N_CASES; i++)
        if (!case_has_json[i])
            CHECK_FAIL_("%s has no golden vectors; run /usr/bin/python3 tools/gen_golden.py",
                        oc_cases[i].name);
    for (int op = 0; op < NB_OP_COUNT; op++) {
        if (row_has_case[op]) check_passed_++;
        else CHECK_FAIL_("op %s has no golden case (add one to tests/op_cases.h and "
                         "tools/gen_golden.py)", nb__ops[op].name);
    }
    json_decref(root);
    return check_summary();
}
