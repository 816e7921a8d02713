/*
 * test_kan_symbolic.c — a KAN made symbolic (nabla/kan.h: nb_kan_lbfgs_opts with nb_kan_train,
 * nb_kan_auto_symbolic, nb_kan_formula, nb_kan_symbolic_meta / nb_kan_restore_symbolic): a
 * one-layer KAN trained with L-BFGS on sin(pi x1) + x2^2, whose edges are recognised as sin and
 * x^2, whose formula prints snapped, and whose symbolic choices come back from a saved file.
 */
#include "check.h"
#include "tmpdir.h"

/* x uniform in [-1, 1]^2 [n, 2] and y = sin(pi x1) + x2^2 [n, 1], both persistent. */
static void data(int64_t n, nb_tensor **x, nb_tensor **y) {
    nb_scope_begin();
    *x = nb_persist(nb_add_scalar(nb_mul_scalar(nb_rand(NB_SHAPE(n, 2)), 2), -1));
    nb_tensor *x0 = nb_slice(*x, 1, 0, 1, 1), *x1 = nb_slice(*x, 1, 1, 2, 1);
    *y = nb_persist(nb_add(nb_sin(nb_mul_scalar(x0, 3.14159265f)), nb_mul(x1, x1)));
    nb_scope_end();
}

static nb_optim *lbfgs_of(nb_module *m) {
    nb_tensor *params[8];
    int np = nb_module_parameters(m, params, 8);
    return nb_lbfgs_new(np, params, nb_kan_lbfgs_opts());
}

/* steps of L-BFGS (pykan's settings), no grid updates; the last loss */
static float train(nb_module *m, nb_tensor *x, nb_tensor *y, int steps) {
    nb_optim *o = lbfgs_of(m);
    nb_kan_train_opts t = {.steps = steps, .lamb_entropy = 2, .grid_eps = 0.02f};
    float loss = NAN;
    CHECK(o && nb_kan_train(m, o, x, y, &t, &loss) == NB_OK);
    nb_optim_free(o);
    return loss;
}

static char *formula_text(const nb_module *m) {
    nb_expr *e = nb_kan_formula(m, 1e-2);
    char *s = e ? nb_expr_text(e) : NULL;
    nb_expr_free(e);
    return s;
}

static void lbfgs_fits_a_kan_in_a_few_steps(void) {
    nb_manual_seed(1);
    nb_tensor *x, *y;
    data(256, &x, &y);
    nb_module *m = nb_kan_new(2, (int64_t[]){2, 1}, (nb_kan_opts){.grid = 5});
    float first = train(m, x, y, 1), last = train(m, x, y, 5);
    CHECK(last < 1e-3f && last < first * 0.01f);
    nb_module_free(m);
    nb_tensor_free(x);
    nb_tensor_free(y);
}

static void auto_symbolic_finds_sin_and_square_and_prints_the_snapped_formula(void) {
    nb_manual_seed(2);
    nb_tensor *x, *y;
    data(256, &x, &y);
    nb_module *m = nb_kan_new(2, (int64_t[]){2, 1}, (nb_kan_opts){.grid = 5});
    train(m, x, y, 10);
    nb_module *layer = nb_kan_layer(m, 0);
    CHECK(nb_kan_formula(m, 0) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "edge (0, 0, 0) is not symbolic");
    CHECK_EQ_INT(nb_kan_auto_symbolic(m, NULL), 2);
    CHECK(nb_kan_symbolic_name(layer, 0, 0) && !strcmp(nb_kan_symbolic_name(layer, 0, 0), "sin"));
    CHECK(nb_kan_symbolic_name(layer, 1, 0) && !strcmp(nb_kan_symbolic_name(layer, 1, 0), "x^2"));
    CHECK(train(m, x, y, 5) < 1e-10f);
    char *text = formula_text(m);
    CHECK(text && !strcmp(text, "sin(pi*x1) + x2^2"));
    if (text) printf("formula: %s\n", text);
    free(text);
    nb_expr *e = nb_kan_formula(m, 1e-2);
    char *latex = e ? nb_expr_latex(e) : NULL;
    CHECK(latex && strstr(latex, "\\sin{\\left(\\pi x_{1} \\right)}") && strstr(latex, "x_{2}^{2}"));
    free(latex);
    nb_expr_free(e);
    nb_module_free(m);
    nb_tensor_free(x);
    nb_tensor_free(y);
}

/* Also: the first layer's constant 1/2 moves into exp's shift, where it cancels. */
static void symbolic_choices_come_back_from_a_saved_model(void) {
    nb_module *m = nb_kan_new(3, (int64_t[]){2, 3, 1}, (nb_kan_opts){.grid = 4});
    nb_module *l0 = nb_kan_layer(m, 0), *l1 = nb_kan_layer(m, 1);
    CHECK(nb_kan_fix_symbolic_lib(l0, 0, 0, "sin", 3.14159265f, 0, 1, 0) == NB_OK);
    CHECK(nb_kan_fix_symbolic_lib(l0, 1, 0, "x^2", 1, 0, 1, 0.5f) == NB_OK);
    CHECK(nb_kan_fix_symbolic_lib(l1, 0, 0, "exp", 1, -0.5f, 2, 0) == NB_OK);
    for (int64_t i = 0; i < 2; i++)
        for (int64_t o = 1; o < 3; o++) nb_set(nb_module_find(l0, "mask"), (int64_t[]){i, o}, 0);
    for (int64_t i = 1; i < 3; i++) nb_set(nb_module_find(l1, "mask"), (int64_t[]){i, 0}, 0);
    char *meta = nb_kan_symbolic_meta(m);
    CHECK(meta && !strcmp(meta, "0,0,0,sin;0,1,0,x^2;1,0,0,exp"));
    char *want = formula_text(m);
    CHECK(want && !strcmp(want, "2*exp(sin(pi*x1) + x2^2)"));
    CHECK(tmpdir_make("nabla_kan_sym"));
    CHECK(nb_module_save(m, tpath("m.safetensors"), 1, (const char *[]){"nabla.kan.symbolic"},
                         (const char *[]){meta}) == NB_OK);
    nb_module *back = nb_kan_new(3, (int64_t[]){2, 3, 1}, (nb_kan_opts){.grid = 4});
    nb_safetensors *st = nb_safetensors_open(tpath("m.safetensors"));
    CHECK(st && nb_module_load(back, tpath("m.safetensors")) == NB_OK);
    CHECK(nb_kan_restore_symbolic(back, st ? nb_safetensors_meta(st, "nabla.kan.symbolic") : "") == NB_OK);
    char *got = formula_text(back);
    CHECK(got && want && !strcmp(got, want));
    CHECK(nb_kan_restore_symbolic(back, "0,0,0,nosuch") == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "'nosuch' is not a library function");
    CHECK(nb_kan_restore_symbolic(back, "0,5,0,sin") == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "entry '0,5,0,sin'");
    free(got);
    free(want);
    free(meta);
    nb_safetensors_close(st);
    tmpdir_remove();
    nb_module_free(back);
    nb_module_free(m);
}

int main(void) {
    lbfgs_fits_a_kan_in_a_few_steps();
    auto_symbolic_finds_sin_and_square_and_prints_the_snapped_formula();
    symbolic_choices_come_back_from_a_saved_model();
    return check_summary();
}
