/*
 * kan.c — `nabla kan fit` and `nabla kan formula`: a Kolmogorov-Arnold network fitted to columns of a CSV file, over the
 * library's nabla/kan.h, as pykan's workflow runs it:
 *
 *   1. the CSV's input columns (--inputs, names with --header or 0-based indices; default every
 *      column but the target) and its target column (--target; default the last); every row
 *      whose index is a multiple of --test-every, counting from --test-every - 1, goes to the
 *      test set, the rest to training;
 *   2. a KAN of --width (its first width the number of inputs, its last 1) with the first grid of
 *      --grid-schedule (or --grid) and order --k;
 *   3. for each grid of the schedule, --steps full-batch steps of the optimiser (--opt: Adam, or
 *      L-BFGS with pykan's settings, nb_kan_lbfgs_opts) on the mean squared error plus --lamb
 *      times the sparsity
 *      regularisation (lamb_entropy --lamb-entropy), the grids moved to the data every
 *      --update-grid-every steps before step 50 (pykan's defaults: 5, 50); the next grid starts
 *      from the previous model extended by least squares (nb_kan_extend);
 *   4. --prune: nodes and edges whose scores are below the thresholds go (nb_kan_prune), and the
 *      smaller KAN trains --steps more without regularisation;
 *   4b. --symbolic: every live edge fixed to its best library function (nb_kan_auto_symbolic),
 *      the affine parameters trained --steps more, and the network's formula (snapped to
 *      --snap) printed as text and LaTeX with its own test RMSE, and written to OUT/formula.txt
 *      and OUT/formula.tex;
 *   5. train and test RMSE after each stage, printed and written to OUT/stages.csv; the model to
 *      OUT/model.safetensors (metadata "nabla.kan": widths, grid, k and columns; with --symbolic
 *      "nabla.kan.symbolic", the edges' functions, nb_kan_symbolic_meta), the network's
 *      picture to OUT/kan.svg and each live edge's to OUT/edges/L_I_O.svg.
 * Everything is checked (widths, grids, the CSV, which may hold no NaN) before OUT is made, so a
 * refused run writes nothing.  `nabla kan formula MODEL` rebuilds a saved symbolic model from
 * that metadata and prints its formula.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KAN_MAX_WIDTHS 16
#define KAN_MAX_STAGES 16
#define KAN_MAX_COLUMNS 256
#define META_KAN "nabla.kan"
#define META_SYMBOLIC "nabla.kan.symbolic"

typedef struct {
    const char *width, *schedule, *inputs, *target, *opt, *out;
    int grid, k, steps, test_every, seed, threads, update_every, stop_update;
    double lamb, lamb_entropy, lr, grid_eps, prune_node, prune_edge, snap;
    bool prune, header, symbolic;
} kan_opts;

typedef struct {
    int n_width, n_stages;
    int64_t width[KAN_MAX_WIDTHS];
    int stages[KAN_MAX_STAGES];
    int n_cols, input_col[KAN_MAX_COLUMNS], target_col; /* resolved columns of the CSV */
    nb_tensor *x_train, *y_train, *x_test, *y_test;     /* the caller's */
    nb_module *model;
    FILE *stages_csv;
} kan_run;

/* "2,5,1" -> v[], each within [lo, hi]; false after a message naming the flag. */
static bool parse_ints(const char *flag, const char *s, int cap, long lo, long hi, int *n, int64_t *v) {
    *n = 0;
    for (const char *p = s; *p;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || *n == cap || x < lo || x > hi) {
            fprintf(stderr, "nabla kan fit: --%s '%s': needs up to %d comma-separated whole numbers "
                    "in [%ld, %ld]\n", flag, s, cap, lo, hi);
            return false;
        }
        v[(*n)++] = x;
        p = *end ? end + 1 : end;
    }
    if (*n == 0) fprintf(stderr, "nabla kan fit: --%s is empty\n", flag);
    return *n > 0;
}

/* The CSV's column names (its first line, with --header), or NULL and 0 without. */
static int read_header(const char *path, char ***names) {
    FILE *f = fopen(path, "r");
    char line[8192];
    *names = NULL;
    if (!f) return -1;
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!got) return -1;
    line[strcspn(line, "\r\n")] = 0;
    int n = 0;
    *names = calloc(KAN_MAX_COLUMNS, sizeof **names);
    for (char *tok = strtok(line, ","); tok && n < KAN_MAX_COLUMNS; tok = strtok(NULL, ",")) {
        while (*tok == ' ' || *tok == '"') tok++;
        size_t len = strlen(tok);
        while (len && (tok[len - 1] == ' ' || tok[len - 1] == '"')) tok[--len] = 0;
        (*names)[n++] = strdup(tok);
    }
    return n;
}

static void free_names(char **names) {
    for (int i = 0; names && i < KAN_MAX_COLUMNS; i++) free(names[i]);
    free(names);
}

/* A column by name (from the header) or 0-based index (negative: from the end); -1 after a
 * message. */
static int resolve_column(const char *spec, char **names, int n_cols) {
    char *end;
    long v = strtol(spec, &end, 10);
    if (end != spec && !*end) {
        if (v < 0) v += n_cols;
        if (v >= 0 && v < n_cols) return (int)v;
    }
    for (int c = 0; names && c < n_cols; c++)
        if (!strcmp(names[c], spec)) return c;
    fprintf(stderr, "nabla kan fit: no column '%s' among the CSV's %d%s\n", spec, n_cols,
            names ? "" : " (names need --header)");
    return -1;
}

/* Resolves --inputs and --target against the CSV's first line. */
static bool resolve_columns(const kan_opts *o, const char *path, kan_run *r) {
    char **names;
    int n = read_header(path, &names);
    if (n < 0) return fprintf(stderr, "nabla kan fit: cannot read '%s'\n", path), free_names(names), false;
    if (!o->header) free_names(names), names = NULL;
    r->n_cols = n;
    bool ok = (r->target_col = resolve_column(o->target, names, n)) >= 0;
    int n_in = 0;
    if (ok && !o->inputs)
        for (int c = 0; c < n; c++) {
            if (c != r->target_col) r->input_col[n_in++] = c;
        }
    char *list = o->inputs ? strdup(o->inputs) : NULL;
    for (char *tok = list ? strtok(list, ",") : NULL; ok && tok; tok = strtok(NULL, ","))
        ok = (r->input_col[n_in++] = resolve_column(tok, names, n)) >= 0;
    free(list);
    free_names(names);
    if (ok && n_in != r->width[0])
        return fprintf(stderr, "nabla kan fit: %d input column%s but --width starts with %lld\n",
                       n_in, n_in == 1 ? "" : "s", (long long)r->width[0]), false;
    return ok;
}

/* x [n, inputs] and y [n, 1] of the train or test rows. */
static bool split_data(const kan_opts *o, const nb_dataset *ds, kan_run *r) {
    int64_t n = nb_dataset_len(ds), nf = nb_dataset_info_get(ds).sample_numel, n_test = 0;
    int64_t in = r->width[0];
    for (int64_t i = 0; i < n; i++) n_test += i % o->test_every == o->test_every - 1;
    if (n_test < 1 || n - n_test < 2)
        return fprintf(stderr, "nabla kan fit: %lld rows are too few for a test split of 1 in %d\n",
                       (long long)n, o->test_every), false;
    float *f = malloc(sizeof(float) * (size_t)nf), *xs = malloc(sizeof(float) * (size_t)(n * in));
    float *ys = malloc(sizeof(float) * (size_t)n), *xt = xs + (n - n_test) * in, *yt = ys + (n - n_test);
    int64_t a = 0, b = 0;
    bool ok = f && xs && ys;
    for (int64_t i = 0; ok && i < n; i++) {
        bool test = i % o->test_every == o->test_every - 1;
        float *row = test ? xt + b * in : xs + a * in, *y = test ? yt + b++ : ys + a++;
        ok = nb_dataset_get(ds, i, f, y) == NB_OK;
        for (int64_t c = 0; c < in; c++) /* feature index: the column, less one past the target */
            row[c] = f[r->input_col[c] - (r->input_col[c] > r->target_col)];
    }
    if (ok) {
        r->x_train = nb_from_data(xs, NB_SHAPE(n - n_test, in));
        r->y_train = nb_from_data(ys, NB_SHAPE(n - n_test, 1));
        r->x_test = nb_from_data(xt, NB_SHAPE(n_test, in));
        r->y_test = nb_from_data(yt, NB_SHAPE(n_test, 1));
        ok = r->x_train && r->y_train && r->x_test && r->y_test;
    }
    free(ys);
    free(xs);
    free(f);
    if (!ok) cli_fail("reading the data");
    return ok;
}

static bool load_data(const kan_opts *o, const char *path, kan_run *r) {
    if (!resolve_columns(o, path, r)) return false;
    for (int c = 0; c < (int)r->width[0]; c++)
        if (r->input_col[c] == r->target_col)
            return fprintf(stderr, "nabla kan fit: column %d is both an input and the target\n",
                           r->target_col), false;
    char target[16];
    snprintf(target, sizeof target, "%d", r->target_col);
    nb_dataset *ds = nb_csv_read(path, (nb_csv_opts){.header = o->header, .targets = target});
    if (!ds) return cli_fail("reading the CSV"), false;
    bool ok = split_data(o, ds, r);
    nb_dataset_free(ds);
    return ok;
}

/* sqrt(mean((model(x) - y)^2)) */
static double rmse(nb_module *m, nb_tensor *x, nb_tensor *y) {
    double v = NAN;
    nb_scope_begin();
    NB_NO_GRAD {
        nb_tensor *d = nb_sub(nb_module_forward(m, x), y);
        v = sqrt(nb_item(nb_mean(nb_mul(d, d))));
    }
    nb_scope_end();
    return v;
}

/* --steps of the optimiser on mse + lamb reg, the grids moved to the data unless the edges are
 * symbolic (nb_kan_train) */
static bool train_stage(const kan_opts *o, kan_run *r, double lamb, bool update_grid) {
    nb_tensor *params[64];
    int np = nb_module_parameters(r->model, params, 64);
    nb_optim *opt = !strcmp(o->opt, "lbfgs") ? nb_lbfgs_new(np, params, nb_kan_lbfgs_opts())
                                             : nb_adam_new(np, params, (nb_adam_opts){.lr = (float)o->lr});
    nb_kan_train_opts t = {.steps = o->steps, .lamb = (float)lamb, .lamb_entropy = (float)o->lamb_entropy,
                           .grid_eps = (float)o->grid_eps,
                           .update_grid_every = update_grid ? o->update_every : 0,
                           .stop_grid_update = o->stop_update};
    bool ok = opt && nb_kan_train(r->model, opt, r->x_train, r->y_train, &t, NULL) == NB_OK;
    nb_optim_free(opt);
    if (!ok) cli_fail("training (a smaller --lr may help)");
    return ok;
}

/* The widths as "[2,5,1]" (sep ',', JSON and printing) or "2-5-1" (sep '-', the CSV). */
static void widths_text(const nb_module *m, char sep, char *buf, size_t cap) {
    int L = nb_kan_num_layers(m);
    int at = snprintf(buf, cap, "%s%lld", sep == ',' ? "[" : "", (long long)nb_kan_in_features(nb_kan_layer(m, 0)));
    for (int l = 0; l < L && at < (int)cap; l++)
        at += snprintf(buf + at, cap - (size_t)at, "%c%lld", sep, (long long)nb_kan_out_features(nb_kan_layer(m, l)));
    if (sep == ',' && at < (int)cap) snprintf(buf + at, cap - (size_t)at, "]");
}

static void report(kan_run *r, const char *stage) {
    char w[128], dashed[128];
    widths_text(r->model, ',', w, sizeof w);
    widths_text(r->model, '-', dashed, sizeof dashed);
    int G = nb_kan_grid_size(nb_kan_layer(r->model, 0));
    double tr = rmse(r->model, r->x_train, r->y_train), te = rmse(r->model, r->x_test, r->y_test);
    printf("%-8s width %-12s G %3d   train RMSE %.4e   test RMSE %.4e\n", stage, w, G, tr, te);
    fprintf(r->stages_csv, "%s,%s,%d,%.9g,%.9g\n", stage, dashed, G, tr, te);
}

static bool run_stages(const kan_opts *o, kan_run *r) {
    for (int s = 0; s < r->n_stages; s++) {
        if (s > 0) {
            nb_module *finer = nb_kan_extend(r->model, r->stages[s]);
            if (!finer) return cli_fail("extending the grid"), false;
            nb_module_free(r->model);
            r->model = finer;
        }
        if (!train_stage(o, r, o->lamb, true)) return false;
        char name[32];
        snprintf(name, sizeof name, "grid %d", r->stages[s]);
        report(r, name);
    }
    if (!o->prune) return true;
    nb_module *small = nb_kan_prune(r->model, r->x_train, (float)o->prune_node, (float)o->prune_edge);
    if (!small) return cli_fail("pruning"), false;
    nb_module_free(r->model);
    r->model = small;
    report(r, "pruned");
    if (!train_stage(o, r, 0.0, true)) return false;
    report(r, "refit");
    return true;
}

/* sqrt(mean((e(x) - y)^2)) of a formula over the rows of x */
static double formula_rmse(const nb_expr *e, nb_tensor *x, nb_tensor *y) {
    int64_t n = nb_size(x, 0), in = nb_size(x, 1);
    double sum = 0, v[KAN_MAX_COLUMNS];
    for (int64_t i = 0; i < n; i++) {
        for (int64_t c = 0; c < in; c++) v[c] = nb_get(x, (int64_t[]){i, c});
        double d = nb_expr_eval(e, v) - nb_get(y, (int64_t[]){i, 0});
        sum += d * d;
    }
    return sqrt(sum / (double)n);
}

/* text to OUT/name and stdout */
static bool write_text(const kan_opts *o, const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", o->out, name);
    FILE *f = fopen(path, "w");
    bool ok = f && fprintf(f, "%s\n", text) >= 0;
    if (f && fclose(f) != 0) ok = false;
    if (!ok) fprintf(stderr, "nabla kan fit: cannot write %s\n", path);
    return ok;
}

/* --symbolic: the edges fixed to library functions, their affine parameters trained, the
 * formula printed and written. */
static bool make_symbolic(const kan_opts *o, kan_run *r) {
    int fixed = nb_kan_auto_symbolic(r->model, NULL);
    if (fixed < 0) return cli_fail("fitting the edges' functions"), false;
    printf("symbolic: %d edge%s fixed to library functions\n", fixed, fixed == 1 ? "" : "s");
    if (!train_stage(o, r, 0.0, false)) return false;
    report(r, "symbolic");
    nb_expr *e = nb_kan_formula(r->model, o->snap);
    char *text = e ? nb_expr_text(e) : NULL, *latex = e ? nb_expr_latex(e) : NULL;
    bool ok = text && latex;
    if (!ok) cli_fail("composing the formula");
    if (ok) {
        printf("formula: %s\nlatex: %s\nformula test RMSE %.4e\n", text, latex,
               formula_rmse(e, r->x_test, r->y_test));
        ok = write_text(o, "formula.txt", text) && write_text(o, "formula.tex", latex);
    }
    free(text);
    free(latex);
    nb_expr_free(e);
    return ok;
}

/* The model with its description, the network's picture, each live edge's picture. */
static bool save(const kan_opts *o, kan_run *r) {
    char path[4096], w[128], meta[512];
    widths_text(r->model, ',', w, sizeof w);
    snprintf(meta, sizeof meta, "{\"width\":%s,\"grid\":%d,\"k\":%d,\"target\":%d}", w,
             nb_kan_grid_size(nb_kan_layer(r->model, 0)), o->k, r->target_col);
    snprintf(path, sizeof path, "%s/model.safetensors", o->out);
    char *sym = nb_kan_symbolic_meta(r->model);
    if (!sym) return cli_fail("describing the symbolic edges"), false;
    nb_status st = nb_module_save(r->model, path, *sym ? 2 : 1, (const char *[]){META_KAN, META_SYMBOLIC},
                                  (const char *[]){meta, sym});
    free(sym);
    if (st != NB_OK) return cli_fail("writing the model"), false;
    snprintf(path, sizeof path, "%s/kan.svg", o->out);
    if (nb_kan_plot_svg(r->model, r->x_train, path) != NB_OK) return cli_fail("drawing the network"), false;
    snprintf(path, sizeof path, "%s/edges", o->out);
    if (!make_dirs(path)) return fprintf(stderr, "nabla kan fit: cannot make %s\n", path), false;
    for (int l = 0; l < nb_kan_num_layers(r->model); l++) {
        nb_module *layer = nb_kan_layer(r->model, l);
        nb_tensor *mask = nb_module_find(layer, "mask");
        for (int64_t i = 0; i < nb_kan_in_features(layer); i++)
            for (int64_t j = 0; j < nb_kan_out_features(layer); j++) {
                if (nb_get(mask, (int64_t[]){i, j}) == 0.0f) continue;
                snprintf(path, sizeof path, "%s/edges/%d_%lld_%lld.svg", o->out, l, (long long)i, (long long)j);
                if (nb_kan_plot_edge_svg(layer, i, j, path) != NB_OK) return cli_fail("drawing an edge"), false;
            }
    }
    printf("wrote %s/model.safetensors, %s/kan.svg, %s/edges/, %s/stages.csv\n", o->out, o->out, o->out, o->out);
    return true;
}

static const char *const kan_usage =
    "usage: nabla kan fit DATA.csv --width 2,5,1 [options]\n\n"
    "Fits a Kolmogorov-Arnold network (Liu et al. 2024, as pykan) to columns of a CSV file: the\n"
    "inputs (--inputs, default every column but the target) and one target column (--target,\n"
    "default the last).  Trains --steps full-batch steps of --opt per grid of --grid-schedule, each grid\n"
    "extended from the last by least squares, with --lamb times the sparsity regularisation;\n"
    "--prune then removes weak nodes and edges and refits; --symbolic fixes every edge to its best\n"
    "library function, trains their affine parameters and prints the formula.  Prints train and test RMSE per stage\n"
    "(every --test-every-th row is a test row) and writes OUT/model.safetensors, OUT/kan.svg (the\n"
    "network, every edge's function drawn in place, faded by importance), OUT/edges/ (each edge)\n"
    "and OUT/stages.csv.  Inputs outside a grid are extrapolated as pykan does: the splines are 0\n"
    "there and each edge carries on with its base branch (silu) alone.\n"
    "Example: nabla kan fit data.csv --header --width 2,5,1 --grid-schedule 5,10,20 --lamb 0.01 --prune";

static bool check_widths(kan_run *r) {
    if (r->n_width < 2) return fprintf(stderr, "nabla kan fit: --width needs at least 2 widths\n"), false;
    for (int l = 0; l < r->n_width; l++)
        if (r->width[l] < 1)
            return fprintf(stderr, "nabla kan fit: --width: width %d is %lld; every width must be "
                           ">= 1\n", l, (long long)r->width[l]), false;
    if (r->width[r->n_width - 1] != 1)
        return fprintf(stderr, "nabla kan fit: --width must end with 1 (one target column)\n"), false;
    return true;
}

static int kan_fit(int argc, char **argv) {
    kan_opts o = {.target = "-1", .opt = "adam",
                  .out = "runs/kan", .grid = 5, .k = 3, .steps = 50, .test_every = 5,
                  .threads = nb_get_num_threads(), .update_every = 5, .stop_update = 50,
                  .lamb_entropy = 2.0, .lr = 0.01, .grid_eps = 0.02, .prune_node = 1e-2,
                  .prune_edge = 3e-2, .snap = 1e-3};
    const cli_flag flags[] = {
        {"width", FLAG_STRING, &o.width, "widths of the node levels, inputs first: 2,5,1 (required)"},
        {"grid", FLAG_INT, &o.grid, "grid intervals G (the first stage, without --grid-schedule)", "[1, 100000]"},
        {"k", FLAG_INT, &o.k, "spline order", "[1, 15]"},
        {"grid-schedule", FLAG_STRING, &o.schedule, "grids of the stages, each extended from the last: 5,10,20"},
        {"steps", FLAG_INT, &o.steps, "optimiser steps per stage (full batch)", "[1, inf)"},
        {"opt", FLAG_STRING, &o.opt, "optimiser (lbfgs: pykan's L-BFGS, lr 1, strong Wolfe)", NULL, "adam lbfgs"},
        {"lr", FLAG_FLOAT, &o.lr, "Adam's learning rate (L-BFGS takes pykan's 1)", "(0, inf)"},
        {"lamb", FLAG_FLOAT, &o.lamb, "weight of the sparsity regularisation (0: none)", "[0, inf)"},
        {"lamb-entropy", FLAG_FLOAT, &o.lamb_entropy, "weight of its entropy term", "[0, inf)"},
        {"grid-eps", FLAG_FLOAT, &o.grid_eps, "grid updates: uniform share of the grid (pykan's grid_eps)", "[0, 1]"},
        {"update-grid-every", FLAG_INT, &o.update_every, "move the grids to the data every N steps (0: never)", "[0, inf)"},
        {"stop-grid-update", FLAG_INT, &o.stop_update, "no grid updates from this step on", "[0, inf)"},
        {"prune", FLAG_BOOL, &o.prune, "remove weak nodes and edges after the stages, then refit"},
        {"prune-node", FLAG_FLOAT, &o.prune_node, "node threshold of --prune", "[0, inf)"},
        {"prune-edge", FLAG_FLOAT, &o.prune_edge, "edge threshold of --prune", "[0, inf)"},
        {"inputs", FLAG_STRING, &o.inputs, "input columns, names (--header) or 0-based indices: x,y"},
        {"target", FLAG_STRING, &o.target, "target column, a name or an index (negative: from the end)"},
        {"header", FLAG_BOOL, &o.header, "the CSV's first line names the columns"},
        {"test-every", FLAG_INT, &o.test_every, "every N-th row is a test row", "[2, inf)"},
        {"seed", FLAG_INT, &o.seed, "seed of the initialisation"},
        {"threads", FLAG_INT, &o.threads, "threads for the kernels", "[1, 256]"},
        {"out", FLAG_STRING, &o.out, "output folder"},
        {"symbolic", FLAG_BOOL, &o.symbolic, "fix the edges to library functions and print the formula"},
        {"snap", FLAG_FLOAT, &o.snap, "the formula's numbers snapped within this tolerance (0: none)", "[0, 1)"},
    };
    const char *pos[1];
    int np = cli_parse(argc, argv, 3, flags, (int)(sizeof flags / sizeof *flags), kan_usage, pos, 1);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np != 1) return fprintf(stderr, "nabla kan fit: needs DATA.csv (see --help)\n"), 2;
    kan_run r = {0};
    int64_t stages[KAN_MAX_STAGES];
    if (!o.width) return fprintf(stderr, "nabla kan fit: needs --width (see --help)\n"), 2;
    if (!parse_ints("width", o.width, KAN_MAX_WIDTHS, -1000000, 1000000, &r.n_width, r.width) ||
        !check_widths(&r))
        return 2;
    if (o.schedule && !parse_ints("grid-schedule", o.schedule, KAN_MAX_STAGES, 1, 100000, &r.n_stages, stages))
        return 2;
    if (!o.schedule) r.n_stages = 1, stages[0] = o.grid;
    for (int s = 0; s < r.n_stages; s++) r.stages[s] = (int)stages[s];
    nb_set_num_threads(o.threads);
    nb_manual_seed((uint64_t)o.seed);
    bool ok = load_data(&o, pos[0], &r) &&
              (r.model = nb_kan_new(r.n_width, r.width, (nb_kan_opts){.grid = r.stages[0], .k = o.k})) != NULL;
    if (r.x_train && !r.model) cli_fail("making the KAN");
    char path[4096];
    snprintf(path, sizeof path, "%s/stages.csv", o.out);
    ok = ok && (make_dirs(o.out) || (fprintf(stderr, "nabla kan fit: cannot make %s\n", o.out), false));
    ok = ok && ((r.stages_csv = fopen(path, "w")) || (fprintf(stderr, "nabla kan fit: cannot write %s\n", path), false));
    if (ok) {
        printf("KAN %s on %s: %lld training rows, %lld test rows; %s\n", o.width, pos[0],
               (long long)nb_size(r.x_train, 0), (long long)nb_size(r.x_test, 0), nb_backend_info());
        fprintf(r.stages_csv, "stage,width,grid,train_rmse,test_rmse\n");
    }
    ok = ok && run_stages(&o, &r) && (!o.symbolic || make_symbolic(&o, &r)) && save(&o, &r);
    if (r.stages_csv && fclose(r.stages_csv) != 0) ok = false;
    nb_module_free(r.model);
    nb_tensor_free(r.x_train);
    nb_tensor_free(r.y_train);
    nb_tensor_free(r.x_test);
    nb_tensor_free(r.y_test);
    return ok ? 0 : 1;
}

/* The KAN a model file describes ("nabla.kan": {"width":[2,5,1],"grid":5,"k":3,...}), its
 * weights loaded and its symbolic edges fixed again; NULL after a message. */
static nb_module *load_kan(const char *path) {
    nb_safetensors *st = nb_safetensors_open(path);
    const char *meta = st ? nb_safetensors_meta(st, META_KAN) : NULL;
    const char *w = meta ? strstr(meta, "\"width\":[") : NULL, *g = meta ? strstr(meta, "\"grid\":") : NULL;
    const char *k = meta ? strstr(meta, "\"k\":") : NULL;
    int64_t width[KAN_MAX_WIDTHS];
    int n = 0, grid = 0, order = 0;
    for (const char *p = w ? w + 9 : NULL; p && *p != ']' && n < KAN_MAX_WIDTHS;) {
        char *end;
        width[n++] = strtoll(p, &end, 10);
        p = end == p ? NULL : end + (*end == ',');
    }
    nb_module *m = NULL;
    if (!st) cli_fail("reading the model");
    else if (n < 2 || !g || !k || sscanf(g, "\"grid\":%d", &grid) != 1 || sscanf(k, "\"k\":%d", &order) != 1)
        fprintf(stderr, "nabla kan formula: %s has no KAN description (metadata %s from nabla kan fit)\n",
                path, META_KAN);
    else if (!(m = nb_kan_new(n, width, (nb_kan_opts){.grid = grid, .k = order})) ||
             nb_module_load(m, path) != NB_OK ||
             nb_kan_restore_symbolic(m, nb_safetensors_meta(st, META_SYMBOLIC) ? nb_safetensors_meta(st, META_SYMBOLIC) : "") != NB_OK) {
        cli_fail("rebuilding the model");
        nb_module_free(m);
        m = NULL;
    }
    nb_safetensors_close(st);
    return m;
}

/* `nabla kan formula MODEL`: the saved symbolic KAN's formula, text and LaTeX. */
static int kan_formula(int argc, char **argv) {
    double snap = 1e-3;
    const cli_flag flags[] = {
        {"snap", FLAG_FLOAT, &snap, "numbers snapped within this tolerance (0: none)", "[0, 1)"},
    };
    const char *pos[1];
    int np = cli_parse(argc, argv, 3, flags, 1, "usage: nabla kan formula MODEL.safetensors [--snap TOL]\n\n"
                       "Prints the formula of a KAN that nabla kan fit --symbolic saved.", pos, 1);
    if (np < 0) return np == -2 ? 0 : 2;
    if (np != 1) return fprintf(stderr, "nabla kan formula: needs MODEL.safetensors (see --help)\n"), 2;
    nb_module *m = load_kan(pos[0]);
    nb_expr *e = m ? nb_kan_formula(m, snap) : NULL;
    char *text = e ? nb_expr_text(e) : NULL, *latex = e ? nb_expr_latex(e) : NULL;
    if (m && !(text && latex)) cli_fail("composing the formula (was the model fitted with --symbolic?)");
    if (text && latex) printf("formula: %s\nlatex: %s\n", text, latex);
    bool ok = text && latex;
    free(text);
    free(latex);
    nb_expr_free(e);
    nb_module_free(m);
    return ok ? 0 : 1;
}

int cmd_kan(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[2], "fit")) return kan_fit(argc, argv);
    if (argc >= 3 && !strcmp(argv[2], "formula")) return kan_formula(argc, argv);
    if (argc >= 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
        printf("usage: nabla kan fit DATA.csv [options]   (nabla kan fit --help)\n"
               "       nabla kan formula MODEL.safetensors\n");
        return 0;
    }
    fprintf(stderr, "nabla kan: unknown or missing subcommand%s%s; usage: nabla kan fit DATA.csv "
            "[options] or nabla kan formula MODEL.safetensors\n", argc >= 3 ? " " : "", argc >= 3 ? argv[2] : "");
    return 2;
}
