/*
 * test_train.c — the training side of the library: nb_count_correct, the progress bar, learning
 * curves (CSV + SVG, atomic writes), weights files (nb_module_save / nb_module_load) and
 * checkpoints (model, optimiser, schedule, RNG, progress) — including a run resumed from a
 * checkpoint that ends bit for bit where the uninterrupted run does, and bad files that are
 * refused while every object stays as it was — and the training loop nb_fit: the notebook's loop
 * bit for bit, callbacks, a resumed run's files identical to an uninterrupted run's, divergence,
 * early stopping with the best weights put back; nb_evaluate.
 *
 * torch reads nabla's weights: tests/golden/nabla_mlp.safetensors is written by this program
 * (`build/test_train --write-golden`, from the repo root), tools/gen_golden_train.py loads it into
 * torch's nn.Sequential with load_state_dict(strict=True) and stores torch's output on a fixed
 * input in tests/golden/nabla_mlp_torch.json, which is checked here against nabla's output.
 *
 * Files live in a mkdtemp directory under /tmp, removed at the end.
 */
#include "check.h"
#include "core/core.h"
#include "tmpdir.h"

#include <jansson.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

/* dst = the first `keep` bytes of src. */
static void truncate_copy(const char *src, const char *dst, size_t keep) {
    size_t n;
    char *b = read_all(src, &n);
    write_bytes(dst, b, keep < n ? keep : n);
    free(b);
}

/* dst = src with the byte at `from_end` bytes before its end inverted (inside the data). */
static void flip_copy(const char *src, const char *dst, size_t from_end) {
    size_t n;
    char *b = read_all(src, &n);
    b[n - from_end] ^= 0xff;
    write_bytes(dst, b, n);
    free(b);
}

/* Leftovers of an interrupted write: temporaries are named path + ".tmp.<pid>-<n>". */
static int count_temporaries(void) { return tmpdir_count(".tmp"); }

/* ---------------------------------------------------------------- snapshots of objects */

/* The raw bytes of every parameter and buffer of m, in order (malloc'd; *n gets the size). */
static unsigned char *model_bytes(const nb_module *m, size_t *n) {
    *n = 0;
    int np = nb_module_num_params(m), nbuf = nb_module_num_buffers(m);
    for (int i = 0; i < np + nbuf; i++) {
        nb_tensor *t = i < np ? nb_module_param(m, i, NULL) : nb_module_buffer(m, i - np, NULL);
        *n += (size_t)nb_numel(t) * nb__dtype_size(nb_dtype_of(t));
    }
    unsigned char *b = malloc(*n + 1), *p = b;
    for (int i = 0; i < np + nbuf; i++) {
        nb_tensor *t = i < np ? nb_module_param(m, i, NULL) : nb_module_buffer(m, i - np, NULL);
        nb__copy_logical(p, t);
        p += (size_t)nb_numel(t) * nb__dtype_size(nb_dtype_of(t));
    }
    return b;
}

static bool same_bytes(const unsigned char *a, size_t na, const unsigned char *b, size_t nb) {
    return na == nb && memcmp(a, b, na) == 0;
}

static bool model_equals(const nb_module *m, const unsigned char *want, size_t n) {
    size_t got_n;
    unsigned char *got = model_bytes(m, &got_n);
    bool same = same_bytes(got, got_n, want, n);
    free(got);
    return same;
}

/* Everything a checkpoint load may change, to show that a refused load changed nothing. */
typedef struct {
    unsigned char *model, *optim_tensors;
    size_t n_model, n_optim;
    char *optim_json, *sched_json;
    double lr, sched_lr;
    nb_generator rng;
} state;

static state take_state(const nb_module *m, nb_optim *o, nb_sched *s) {
    state st = {.model = model_bytes(m, &st.n_model), .rng = nb_rng_get_state()};
    st.optim_json = nb_optim_state_json(o);
    st.sched_json = s ? nb_sched_state_json(s) : NULL;
    st.lr = nb_optim_get_lr(o, 0);
    st.sched_lr = s ? nb_sched_get_last_lr(s, 0) : 0;
    const char *names[64];
    nb_tensor *ts[64];
    int n = nb_optim_state_tensors(o, names, ts, 64);
    for (int i = 0; i < n; i++) st.n_optim += (size_t)nb_numel(ts[i]) * 4;
    st.optim_tensors = malloc(st.n_optim + 1);
    for (int i = 0, at = 0; i < n; at += (int)nb_numel(ts[i]) * 4, i++)
        nb__copy_logical(st.optim_tensors + at, ts[i]);
    return st;
}

static void free_state(state *st) {
    free(st->model);
    free(st->optim_tensors);
    free(st->optim_json);
    free(st->sched_json);
}

static bool same_state(const state *a, const state *b) {
    return same_bytes(a->model, a->n_model, b->model, b->n_model) &&
           same_bytes(a->optim_tensors, a->n_optim, b->optim_tensors, b->n_optim) &&
           a->optim_json && b->optim_json && !strcmp(a->optim_json, b->optim_json) &&
           (a->sched_json == b->sched_json ||
            (a->sched_json && b->sched_json && !strcmp(a->sched_json, b->sched_json))) &&
           a->lr == b->lr && a->sched_lr == b->sched_lr && a->rng.seed == b->rng.seed &&
           a->rng.offset == b->rng.offset;
}

/* ---------------------------------------------------------------- metrics */

static void count_correct_counts_rows_whose_argmax_is_the_label(void) {
    nb_tensor *logits = nb_from_data((float[]){0.1f, 2.0f, -1.0f, /* argmax 1 */
                                               3.0f, 0.0f, 0.5f,  /* 0 */
                                               -2.f, -1.f, -0.5f, /* 2 */
                                               0.2f, 0.3f, 0.1f}, /* 1 */
                                     NB_SHAPE(4, 3));
    nb_tensor *labels = nb_from_int32((int32_t[]){1, 0, 0, 2}, NB_SHAPE(4));
    CHECK_EQ_INT(nb_count_correct(logits, labels), 2);
    nb_tensor *all = nb_from_int32((int32_t[]){1, 0, 2, 1}, NB_SHAPE(4));
    CHECK_EQ_INT(nb_count_correct(logits, all), 4);

    /* labels that are a strided view (every second element) */
    nb_tensor *wide = nb_from_int32((int32_t[]){1, 9, 0, 9, 2, 9, 0, 9}, NB_SHAPE(8));
    nb_tensor *strided = nb_slice(wide, 0, 0, 8, 2);
    CHECK(strided && !nb_is_contiguous(strided));
    CHECK_EQ_INT(nb_count_correct(logits, strided), 3);

    /* a view of the logits: rows 1..2 */
    nb_tensor *rows = nb_slice(logits, 0, 1, 3, 1),
              *two = nb_from_int32((int32_t[]){0, 2}, NB_SHAPE(2));
    CHECK_EQ_INT(nb_count_correct(rows, two), 2);
    nb_tensor_free(rows);
    nb_tensor_free(two);
    nb_tensor_free(strided);
    nb_tensor_free(wide);
    nb_tensor_free(all);
    nb_tensor_free(labels);
    nb_tensor_free(logits);
}

static void count_correct_rejects_mismatched_shapes_and_dtypes(void) {
    nb_tensor *logits = nb_zeros(NB_SHAPE(4, 3)), *flat = nb_zeros(NB_SHAPE(12));
    nb_tensor *five = nb_from_int32((int32_t[]){0, 0, 0, 0, 0}, NB_SHAPE(5));
    nb_tensor *four = nb_from_int32((int32_t[]){0, 0, 0, 0}, NB_SHAPE(4));
    nb_tensor *float_labels = nb_zeros(NB_SHAPE(4));
    nb_tensor *labels_2d = nb_from_int32((int32_t[]){0, 0, 0, 0}, NB_SHAPE(4, 1));

    CHECK_EQ_INT(nb_count_correct(logits, five), -1);
    CHECK_ERROR(NB_ERR_SHAPE, "[4,3]");
    CHECK_EQ_INT(nb_count_correct(flat, four), -1);
    CHECK_ERROR(NB_ERR_SHAPE, "need [N, C] and [N]");
    CHECK_EQ_INT(nb_count_correct(logits, labels_2d), -1);
    CHECK_ERROR(NB_ERR_SHAPE, "[4,1]");
    CHECK_EQ_INT(nb_count_correct(logits, float_labels), -1);
    CHECK_ERROR(NB_ERR_DTYPE, "float32");
    CHECK_EQ_INT(nb_count_correct(NULL, four), -1);
    CHECK_ERROR(NB_ERR_NULL, "count_correct");
    CHECK_EQ_INT(nb_count_correct(logits, NULL), -1);
    CHECK_ERROR(NB_ERR_NULL, "count_correct");

    nb_tensor *ts[] = {logits, flat, five, four, float_labels, labels_2d};
    for (int i = 0; i < 6; i++) nb_tensor_free(ts[i]);
}

/* ---------------------------------------------------------------- progress bar */

static void progress_off_a_terminal_prints_one_final_line(void) {
    FILE *f = tmpfile();
    nb_progress *p = nb_progress_new(f, "epoch 2/5", 40);
    CHECK(p != NULL);
    for (int i = 1; i <= 40; i++) nb_progress_update(p, i, "loss 0.9");
    fflush(f);
    CHECK_EQ_INT(ftell(f), 0); /* nothing before the end: logs stay one line per bar */
    nb_progress_finish(p, "loss 0.4125");
    nb_progress_free(p);

    char text[512] = "";
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    CHECK(n > 0 && text[n - 1] == '\n');
    CHECK(strchr(text, '\n') == text + n - 1); /* exactly one line */
    CHECK(strchr(text, '\r') == NULL && strchr(text, '\033') == NULL);
    CHECK(strncmp(text, "epoch 2/5 |", 11) == 0);
    CHECK_STR_CONTAINS(text, "| 40/40 [");
    CHECK_STR_CONTAINS(text, " it/s]");
    CHECK_STR_CONTAINS(text, "] loss 0.4125\n");
    CHECK_STR_CONTAINS(text, "████████████████████████|"); /* a full bar of 24 cells */
}

static void progress_clamps_and_takes_no_postfix(void) {
    FILE *f = tmpfile();
    nb_progress *p = nb_progress_new(f, NULL, 10);
    nb_progress_update(p, 25, NULL); /* more than the total: shown as done */
    nb_progress_finish(p, NULL);
    nb_progress_free(p);
    char text[512] = "";
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    CHECK_STR_CONTAINS(text, "| 10/10 [");
    CHECK(n > 2 && text[n - 2] == ']'); /* no postfix: the line ends after the rate */

    f = tmpfile();
    p = nb_progress_new(f, "x", 10);
    nb_progress_update(p, -3, NULL); /* below zero: shown as nothing done */
    nb_progress_finish(p, NULL);
    nb_progress_free(p);
    rewind(f);
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    CHECK_STR_CONTAINS(text, "| 0/10 [");
    nb_progress_update(NULL, 1, NULL); /* NULL is ignored everywhere */
    nb_progress_finish(NULL, NULL);
    nb_progress_free(NULL);
}

static void format_duration_writes_minutes_hours_and_unknown(void) {
    char buf[32];
    struct {
        double s;
        const char *want;
    } cases[] = {{0, "00:00"},      {59.4, "00:59"},   {59.6, "01:00"},   {61, "01:01"},
                 {3599.4, "59:59"}, {3600, "1:00:00"}, {3725, "1:02:05"}, {36000 + 61, "10:01:01"},
                 {-1, "?"},         {NAN, "?"},        {INFINITY, "?"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_format_duration(cases[i].s, buf, sizeof buf);
        if (strcmp(buf, cases[i].want))
            CHECK_FAIL_("duration %g: '%s', want '%s'", cases[i].s, buf, cases[i].want);
        else
            check_passed_++;
    }
    nb_format_duration(3725, buf, 4); /* truncated to the buffer, still terminated */
    CHECK(strcmp(buf, "1:0") == 0);
}

/* ---------------------------------------------------------------- curves */

static void curves_keep_rows_and_refuse_out_of_range_epochs(void) {
    nb_curves *c = nb_curves_new();
    CHECK_EQ_INT(nb_curves_len(c), 0);
    for (int e = 0; e < 40; e++) /* past the first capacity */
        CHECK(nb_curves_add(c, 1.0f / (float)(e + 1), 2.0f, 0.5f, NAN) == NB_OK);
    CHECK_EQ_INT(nb_curves_len(c), 40);
    float v[4];
    CHECK(nb_curves_get(c, 39, v) == NB_OK);
    CHECK(v[0] == 1.0f / 40 && v[1] == 2.0f && v[2] == 0.5f && isnan(v[3]));
    CHECK(nb_curves_get(c, 40, v) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "epoch 40 is out of range");
    CHECK(nb_curves_get(c, -1, v) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "out of range");
    CHECK(nb_curves_add(NULL, 0, 0, 0, 0) == NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "curves_add");
    CHECK_EQ_INT(nb_curves_len(NULL), 0);
    nb_curves_free(c);
    nb_curves_free(NULL);
}

static void curves_csv_has_a_header_one_row_per_epoch_and_empty_nans(void) {
    nb_curves *c = nb_curves_new();
    nb_curves_add(c, 0.5f, 0.25f, 0.75f, NAN);
    nb_curves_add(c, 0.125f, NAN, 0.875f, 0.9375f);
    nb_curves_add(c, 1.0f / 3, 2e-7f, 1.0f, 0.0f);
    CHECK(nb_curves_write_csv(c, tpath("c.csv")) == NB_OK);
    size_t n;
    char *text = read_all(tpath("c.csv"), &n);
    const char *want = "epoch,train_loss,test_loss,train_acc,test_acc\n"
                       "1,0.5,0.25,0.75,\n"
                       "2,0.125,,0.875,0.9375\n"
                       "3,0.333333,2e-07,1,0\n";
    if (!text || strcmp(text, want))
        CHECK_FAIL_("CSV is\n%s\nwant\n%s", text ? text : "(none)", want);
    else
        check_passed_++;
    free(text);

    /* no rows: the header alone */
    nb_curves *empty = nb_curves_new();
    CHECK(nb_curves_write_csv(empty, tpath("e.csv")) == NB_OK);
    text = read_all(tpath("e.csv"), &n);
    CHECK(text && !strcmp(text, "epoch,train_loss,test_loss,train_acc,test_acc\n"));
    free(text);
    CHECK(nb_curves_write_csv(NULL, tpath("x.csv")) == NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "curves_write_csv");
    CHECK_EQ_INT(count_temporaries(), 0);
    remove(tpath("c.csv"));
    remove(tpath("e.csv"));
    nb_curves_free(empty);
    nb_curves_free(c);
}

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void curves_svg_draws_two_panels_of_two_lines(void) {
    nb_curves *c = nb_curves_new();
    for (int e = 0; e < 12; e++)
        nb_curves_add(c, 2.0f / (float)(e + 1), 2.2f / (float)(e + 1), 0.5f + 0.04f * (float)e,
                      e == 3 ? NAN : 0.45f + 0.04f * (float)e);
    CHECK(nb_curves_write_svg(c, tpath("c.svg"), "run <1> & 'quotes'") == NB_OK);
    size_t n;
    char *svg = read_all(tpath("c.svg"), &n);
    CHECK(svg && strncmp(svg, "<svg", 4) == 0);
    CHECK(n > 7 && strcmp(svg + n - 7, "</svg>\n") == 0);
    CHECK_EQ_INT(count_of(svg, "<polyline"), 4);        /* train and test, in each panel */
    CHECK_EQ_INT(count_of(svg, "<circle"), 4 * 12 - 1); /* one marker per value, none for NaN */
    CHECK_EQ_INT(count_of(svg, "<svg"), 1);
    CHECK_STR_CONTAINS(svg, ">Loss<");
    CHECK_STR_CONTAINS(svg, ">Accuracy<");
    /* the title is escaped, so the file stays well formed */
    CHECK_STR_CONTAINS(svg, "run &lt;1&gt; &amp; &apos;quotes&apos;");
    CHECK(strstr(svg, "nan") == NULL && strstr(svg, "inf") == NULL);
    free(svg);
    nb_curves_free(c);

    /* one epoch, constant values far from 0, infinities: still a picture, and it ends */
    nb_curves *odd = nb_curves_new();
    nb_curves_add(odd, 1e12f, 1e12f, INFINITY, NAN);
    CHECK(nb_curves_write_svg(odd, tpath("odd.svg"), NULL) == NB_OK);
    svg = read_all(tpath("odd.svg"), &n);
    CHECK(svg && strncmp(svg, "<svg", 4) == 0 && strstr(svg, "</svg>"));
    CHECK_EQ_INT(count_of(svg, "<polyline"), 4);
    CHECK(strstr(svg, "nan") == NULL && strstr(svg, "inf") == NULL);
    free(svg);
    nb_curves_free(odd);

    nb_curves *empty = nb_curves_new();
    CHECK(nb_curves_write_svg(empty, tpath("empty.svg"), "empty") == NB_OK);
    svg = read_all(tpath("empty.svg"), &n);
    CHECK(svg && strncmp(svg, "<svg", 4) == 0 && count_of(svg, "<polyline") == 4);
    free(svg);
    nb_curves_free(empty);
    remove(tpath("c.svg"));
    remove(tpath("odd.svg"));
    remove(tpath("empty.svg"));
}

static void curves_writes_are_atomic_and_fail_cleanly(void) {
    nb_curves *c = nb_curves_new();
    nb_curves_add(c, 1, 2, 0.5f, 0.25f);
    /* an existing file is replaced whole */
    const char *old = "old contents that are longer than the new file ....................\n";
    write_bytes(tpath("r.csv"), old, strlen(old));
    CHECK(nb_curves_write_csv(c, tpath("r.csv")) == NB_OK);
    size_t n;
    char *text = read_all(tpath("r.csv"), &n);
    CHECK(text && !strcmp(text, "epoch,train_loss,test_loss,train_acc,test_acc\n1,1,2,0.5,0.25\n"));
    free(text);
    CHECK_EQ_INT(count_temporaries(), 0);

    /* a missing folder: NB_ERR_IO naming the file, and nothing written */
    CHECK(nb_curves_write_csv(c, tpath("missing/c.csv")) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "missing/c.csv");
    CHECK(nb_curves_write_svg(c, tpath("missing/c.svg"), "t") == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "missing/c.svg");
    CHECK(access(tpath("missing"), F_OK) != 0);
    CHECK_EQ_INT(count_temporaries(), 0);

    /* a name too long for its folder (and its temporary): refused, nothing written; the message
     * is cut before the cause, after the path */
    char long_path[4200];
    memset(long_path, 'a', sizeof long_path);
    snprintf(long_path, sizeof long_path, "%s/", tmpdir);
    long_path[strlen(long_path)] = 'a';
    long_path[sizeof long_path - 1] = '\0';
    CHECK(nb_curves_write_csv(c, long_path) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "curves_write_csv: '/tmp/");
    CHECK_EQ_INT(count_temporaries(), 0);

    /* a target that cannot be replaced (a folder): the temporary is removed */
    mkdir(tpath("dir.csv"), 0755);
    CHECK(nb_curves_write_csv(c, tpath("dir.csv")) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "dir.csv");
    CHECK_EQ_INT(count_temporaries(), 0);
    rmdir(tpath("dir.csv"));
    remove(tpath("r.csv"));
    nb_curves_free(c);
}

/* Past the file-size limit (SIGXFSZ ignored, as the command does): NB_ERR_IO naming the file and
 * the cause, the old curves intact, no temporary. */
static void curves_past_the_file_size_limit_fail_with_the_cause_and_keep_the_old_file(void) {
    nb_curves *c = nb_curves_new();
    for (int e = 0; e < 40; e++) nb_curves_add(c, 1.0f / (float)(e + 1), 2, 0.5f, 0.25f);
    const char *old = "epoch,train_loss,test_loss,train_acc,test_acc\n1,1,2,3,4\n";
    const char *files[] = {"limit.csv", "limit.svg"};
    for (int i = 0; i < 2; i++) {
        const char *path = tpath(files[i]);
        write_text(path, old);
        struct rlimit saved, lim;
        getrlimit(RLIMIT_FSIZE, &saved);
        lim = saved;
        lim.rlim_cur = 300;
        void (*handler)(int) = signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &lim);
        nb_status s = i == 0 ? nb_curves_write_csv(c, path) : nb_curves_write_svg(c, path, "t");
        setrlimit(RLIMIT_FSIZE, &saved);
        signal(SIGXFSZ, handler);
        CHECK_EQ_INT(s, NB_ERR_IO);
        CHECK_STR_CONTAINS(nb_error_message(), path);
        CHECK_ERROR(NB_ERR_IO, "File too large");
        size_t n;
        char *text = read_all(path, &n);
        CHECK(text && !strcmp(text, old));
        free(text);
        remove(path);
    }
    CHECK_EQ_INT(count_temporaries(), 0);
    nb_curves_free(c);
}

/* ---------------------------------------------------------------- weights files */

/* Flatten, Linear(in, hidden), BatchNorm1d(hidden), ReLU, Linear(hidden, out), from `seed`. */
static nb_module *mlp(uint64_t seed, int64_t in, int64_t hidden, int64_t out) {
    nb_manual_seed(seed);
    return nb_sequential_new(
        5, (nb_module *[]){nb_flatten_new(1, -1), nb_linear_new(in, hidden, true),
                           nb_batchnorm1d_new(hidden, (nb_batchnorm_opts){0}),
                           nb_activation_new(NB_ACT_RELU, 0), nb_linear_new(hidden, out, true)});
}

/* A few forward passes in training mode, so BatchNorm's running statistics move off their
 * initial values and a file that dropped them would show. */
static void warm_batchnorm(nb_module *m, int64_t in) {
    nb_scope_begin();
    for (int i = 0; i < 3; i++) nb_module_forward(m, nb_randn(NB_SHAPE(16, in)));
    nb_scope_end();
}

static void module_save_load_round_trips_parameters_and_buffers(void) {
    nb_module *a = mlp(1, 784, 32, 10);
    warm_batchnorm(a, 784);
    CHECK(nb_item(nb_module_find(a, "2.num_batches_tracked")) == 3);
    const char *keys[] = {"nabla.model", "note"}, *values[] = {"{\"layers\": []}", "hello"};
    CHECK(nb_module_save(a, tpath("w.safetensors"), 2, keys, values) == NB_OK);
    CHECK_EQ_INT(count_temporaries(), 0);

    nb_module *b = mlp(2, 784, 32, 10);
    size_t na, nb_;
    unsigned char *wa = model_bytes(a, &na), *wb = model_bytes(b, &nb_);
    CHECK(!same_bytes(wa, na, wb, nb_)); /* another seed: other values */
    CHECK(nb_module_load(b, tpath("w.safetensors")) == NB_OK);
    CHECK(model_equals(b, wa, na));
    CHECK(nb_item(nb_module_find(b, "2.num_batches_tracked")) == 3);

    /* the file holds exactly the state_dict names, and the metadata */
    nb_safetensors *st = nb_safetensors_open(tpath("w.safetensors"));
    CHECK_EQ_INT(nb_safetensors_count(st), 9);
    const char *want[] = {"1.weight",       "1.bias",        "2.weight",
                          "2.bias",         "4.weight",      "4.bias",
                          "2.running_mean", "2.running_var", "2.num_batches_tracked"};
    for (int i = 0; i < 9; i++) CHECK(st && !strcmp(nb_safetensors_name(st, i), want[i]));
    CHECK(st && !strcmp(nb_safetensors_meta(st, "note"), "hello"));
    CHECK(st && !strcmp(nb_safetensors_meta(st, "nabla.model"), "{\"layers\": []}"));
    nb_safetensors_close(st);

    /* the same file loads twice, and into a model in eval mode */
    nb_module_train(b, false);
    CHECK(nb_module_load(b, tpath("w.safetensors")) == NB_OK);
    CHECK(model_equals(b, wa, na));

    CHECK(nb_module_save(NULL, tpath("x"), 0, NULL, NULL) == NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "module_save");
    CHECK(nb_module_load(b, NULL) == NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "module_load");
    CHECK(nb_module_load(b, tpath("absent.safetensors")) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "absent.safetensors");
    CHECK(nb_module_save(a, tpath("missing/w.safetensors"), 0, NULL, NULL) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "missing/w.safetensors");
    free(wa);
    free(wb);
    nb_module_free(a);
    nb_module_free(b);
}

/* Writes m's tensors under their names, less the one named `drop`, plus `add` (a [2] tensor)
 * when not NULL. */
/* The state_dict names and tensors of m (names copied: the module's live until its next lookup). */
static int state_dict(const nb_module *m, char names[][64], nb_tensor **ts) {
    int np = nb_module_num_params(m), nbuf = nb_module_num_buffers(m);
    for (int i = 0; i < np + nbuf; i++) {
        const char *name;
        ts[i] = i < np ? nb_module_param(m, i, &name) : nb_module_buffer(m, i - np, &name);
        snprintf(names[i], 64, "%s", name);
    }
    return np + nbuf;
}

static void save_edited(const nb_module *m, const char *path, const char *drop, const char *add) {
    char all[32][64];
    const char *names[32];
    nb_tensor *ts[32];
    int n = 0, total = state_dict(m, all, ts);
    for (int i = 0; i < total; i++)
        if (!drop || strcmp(all[i], drop)) names[n] = all[i], ts[n++] = ts[i];
    nb_tensor *extra = nb_zeros(NB_SHAPE(2));
    if (add) names[n] = add, ts[n++] = extra;
    CHECK(nb_safetensors_save(path, n, names, ts, NULL, NULL, 0) == NB_OK);
    nb_tensor_free(extra);
}

static void module_load_refuses_mismatched_files_and_changes_nothing(void) {
    nb_module *small = mlp(3, 784, 32, 10), *m = mlp(4, 784, 64, 10);
    warm_batchnorm(m, 784);
    CHECK(nb_module_save(small, tpath("small.safetensors"), 0, NULL, NULL) == NB_OK);
    size_t n;
    unsigned char *before = model_bytes(m, &n);

    CHECK(nb_module_load(m, tpath("small.safetensors")) == NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "tensor '1.weight' has shape [32,784], expected [64,784]");
    CHECK(model_equals(m, before, n));

    save_edited(m, tpath("missing.safetensors"), "2.running_var", NULL);
    CHECK(nb_module_load(m, tpath("missing.safetensors")) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "has no tensor '2.running_var'");
    CHECK(model_equals(m, before, n));

    save_edited(m, tpath("extra.safetensors"), NULL, "5.weight");
    CHECK(nb_module_load(m, tpath("extra.safetensors")) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "'5.weight'");
    CHECK(model_equals(m, before, n));

    /* the right names, one in another dtype */
    nb_module *half = mlp(5, 784, 64, 10);
    char all[9][64];
    const char *names[9];
    nb_tensor *ts[9];
    int k = state_dict(half, all, ts);
    for (int i = 0; i < k; i++) names[i] = all[i];
    nb_tensor *f16 = nb_to_dtype(ts[1], NB_F16);
    ts[1] = f16;
    CHECK(nb_safetensors_save(tpath("f16.safetensors"), k, names, ts, NULL, NULL, 0) == NB_OK);
    CHECK(nb_module_load(m, tpath("f16.safetensors")) == NB_ERR_DTYPE);
    CHECK_ERROR(NB_ERR_DTYPE, "tensor '1.bias' is float16, expected float32");
    CHECK(model_equals(m, before, n));
    nb_tensor_free(f16);

    /* a good file cut short, and one with a flipped data byte (caught by the checksum) */
    CHECK(nb_module_save(half, tpath("good.safetensors"), 0, NULL, NULL) == NB_OK);
    size_t size;
    free(read_all(tpath("good.safetensors"), &size));
    truncate_copy(tpath("good.safetensors"), tpath("cut.safetensors"), size - 100);
    CHECK(nb_module_load(m, tpath("cut.safetensors")) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "cut.safetensors");
    CHECK(model_equals(m, before, n));
    flip_copy(tpath("good.safetensors"), tpath("flip.safetensors"), 300);
    CHECK(nb_module_load(m, tpath("flip.safetensors")) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "checksum");
    CHECK(model_equals(m, before, n));
    /* a checkpoint is not a weights file: its names carry "model." */
    CHECK(nb_checkpoint_save(tpath("ck.safetensors"), half, NULL, NULL, 1, NULL) == NB_OK);
    CHECK(nb_module_load(m, tpath("ck.safetensors")) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "has no tensor '1.weight'");
    CHECK(model_equals(m, before, n));

    /* and the good file still loads */
    CHECK(nb_module_load(m, tpath("good.safetensors")) == NB_OK);
    size_t nh;
    unsigned char *wh = model_bytes(half, &nh);
    CHECK(model_equals(m, wh, nh));
    free(wh);
    free(before);
    nb_module_free(half);
    nb_module_free(small);
    nb_module_free(m);
    const char *files[] = {"small", "missing", "extra", "f16", "good", "cut", "flip", "ck", "w"};
    for (int i = 0; i < 9; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.safetensors", files[i]);
        remove(tpath(name));
    }
}

/* ---------------------------------------------------------------- checkpoints */

typedef enum { OPT_SGD, OPT_ADAM } opt_kind;

typedef struct {
    nb_module *m;
    nb_optim *o;
    nb_sched *s;
} trainer;

#define T_IN 12
#define T_CLASSES 5
#define T_BATCH 8
#define T_STEPS 6

/* Linear, BatchNorm1d, ReLU, Dropout (so the RNG matters), Linear, initialised from `seed`. */
static nb_module *make_model(uint64_t seed, int64_t hidden) {
    nb_manual_seed(seed);
    return nb_sequential_new(5, (nb_module *[]){nb_linear_new(T_IN, hidden, true),
                                                nb_batchnorm1d_new(hidden, (nb_batchnorm_opts){0}),
                                                nb_activation_new(NB_ACT_RELU, 0),
                                                nb_dropout_new(0.25f),
                                                nb_linear_new(hidden, T_CLASSES, true)});
}

/* make_model with SGD (momentum) or Adam, and a cosine schedule over T_STEPS steps (or StepLR). */
static trainer make_trainer(uint64_t seed, opt_kind kind, int64_t hidden, bool step_sched) {
    trainer t;
    t.m = make_model(seed, hidden);
    nb_tensor *params[16];
    int n = nb_module_parameters(t.m, params, 16);
    t.o =
        kind == OPT_SGD
            ? nb_sgd_new(n, params, (nb_sgd_opts){.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4})
            : nb_adam_new(n, params, (nb_adam_opts){.lr = 0.01});
    t.s = step_sched ? nb_steplr_new(t.o, 2, 0.5) : nb_cosinelr_new(t.o, T_STEPS, 0.001);
    return t;
}

static void free_trainer(trainer *t) {
    nb_sched_free(t->s);
    nb_optim_free(t->o);
    nb_module_free(t->m);
}

/* Steps [from, to): step k sees a batch computed from k alone, not drawn from the RNG. */
static void train_steps(trainer *t, int from, int to) {
    for (int k = from; k < to; k++) {
        float x[T_BATCH * T_IN];
        int32_t y[T_BATCH];
        for (int i = 0; i < T_BATCH * T_IN; i++) x[i] = sinf(0.37f * (float)i + 1.3f * (float)k);
        for (int i = 0; i < T_BATCH; i++) y[i] = (i + k) % T_CLASSES;
        nb_scope_begin();
        nb_optim_zero_grad(t->o);
        nb_tensor *loss =
            nb_cross_entropy(nb_module_forward(t->m, nb_from_data(x, NB_SHAPE(T_BATCH, T_IN))),
                             nb_from_int32(y, NB_SHAPE(T_BATCH)), NULL);
        CHECK(loss && nb_backward(loss) == NB_OK && nb_optim_step(t->o) == NB_OK);
        nb_scope_end();
        CHECK(nb_sched_step(t->s) == NB_OK);
    }
}

static void checkpoint_resume_is_bit_identical(opt_kind kind) {
    /* the uninterrupted run */
    trainer a = make_trainer(7, kind, 16, false);
    train_steps(&a, 0, T_STEPS);
    state want = take_state(a.m, a.o, a.s);
    free_trainer(&a);

    /* the same run stopped after 3 steps, checkpointed and forgotten */
    trainer b = make_trainer(7, kind, 16, false);
    train_steps(&b, 0, 3);
    CHECK(nb_checkpoint_save(tpath("ck.safetensors"), b.m, b.o, b.s, 3,
                             "{\"note\": \"mid-run\"}") == NB_OK);
    CHECK_EQ_INT(count_temporaries(), 0);
    state mid = take_state(b.m, b.o, b.s);
    free_trainer(&b);

    /* rebuilt from scratch with another seed and another RNG position, then resumed */
    trainer c = make_trainer(99, kind, 16, false);
    nb_tensor_free(nb_rand(NB_SHAPE(5)));
    state fresh = take_state(c.m, c.o, c.s);
    CHECK(!same_state(&fresh, &mid));
    int64_t epoch = -1;
    char *extra = NULL;
    CHECK(nb_checkpoint_load(tpath("ck.safetensors"), c.m, c.o, c.s, &epoch, &extra) == NB_OK);
    CHECK_EQ_INT(epoch, 3);
    CHECK(extra && !strcmp(extra, "{\"note\": \"mid-run\"}"));
    free(extra);
    state loaded = take_state(c.m, c.o, c.s);
    CHECK(same_state(&loaded, &mid)); /* everything, RNG included, as it was at the save */
    train_steps(&c, 3, T_STEPS);
    state got = take_state(c.m, c.o, c.s);
    CHECK(same_bytes(got.model, got.n_model, want.model, want.n_model));
    CHECK(same_bytes(got.optim_tensors, got.n_optim, want.optim_tensors, want.n_optim));
    CHECK(got.rng.seed == want.rng.seed && got.rng.offset == want.rng.offset);
    CHECK(got.optim_json && want.optim_json && !strcmp(got.optim_json, want.optim_json));
    CHECK(got.sched_json && want.sched_json && !strcmp(got.sched_json, want.sched_json));
    CHECK(got.lr == want.lr);
    CHECK(same_state(&got, &want));
    free_state(&want);
    free_state(&mid);
    free_state(&fresh);
    free_state(&loaded);
    free_state(&got);
    free_trainer(&c);
}

static void checkpoint_resume_with_sgd_momentum_is_bit_identical(void) {
    checkpoint_resume_is_bit_identical(OPT_SGD);
}

static void checkpoint_resume_with_adam_is_bit_identical(void) {
    checkpoint_resume_is_bit_identical(OPT_ADAM);
}

/* A checkpoint written by nabla copied to dst through nb_safetensors_save, with one metadata
 * key changed (key NULL: none; value NULL: left out) and element 0 of the tensor named poison
 * (NULL: none) set to poison_value. */
static void copy_changed(const char *src, const char *dst, const char *key, const char *value,
                         const char *poison, float poison_value) {
    static const char *const keys[] = {"nabla.format", "nabla.rng",   "nabla.epoch",
                                       "nabla.optim",  "nabla.sched", "nabla.extra"};
    nb_safetensors *st = nb_safetensors_open(src);
    const char *names[64], *mk[6], *mv[6];
    nb_tensor *ts[64];
    int n = nb_safetensors_count(st), nm = 0;
    nb_scope_begin();
    for (int i = 0; i < n && i < 64; i++) {
        names[i] = nb_safetensors_name(st, i);
        ts[i] = nb_safetensors_get(st, names[i]);
        if (poison && !strcmp(names[i], poison)) nb_set(ts[i], (int64_t[NB_MAX_DIMS]){0}, poison_value);
    }
    for (int i = 0; i < 6; i++) {
        const char *v = key && !strcmp(keys[i], key) ? value : nb_safetensors_meta(st, keys[i]);
        if (v) mk[nm] = keys[i], mv[nm++] = v;
    }
    CHECK(nb_safetensors_save(dst, n, names, ts, mk, mv, nm) == NB_OK);
    nb_scope_end();
    nb_safetensors_close(st);
}

static void rewrite_meta(const char *src, const char *dst, const char *key, const char *value) {
    copy_changed(src, dst, key, value, NULL, 0);
}

static void checkpoint_load_refuses_bad_files_and_changes_nothing(void) {
    trainer sgd = make_trainer(11, OPT_SGD, 16, false);
    train_steps(&sgd, 0, 2);
    CHECK(nb_checkpoint_save(tpath("sgd.safetensors"), sgd.m, sgd.o, sgd.s, 2, NULL) == NB_OK);

    /* the objects that each bad file is offered to, after a step so nothing is at its default */
    trainer adam = make_trainer(12, OPT_ADAM, 16, false),
            other = make_trainer(13, OPT_SGD, 16, false);
    trainer step = make_trainer(14, OPT_SGD, 16, true), wide = make_trainer(15, OPT_SGD, 24, false);
    train_steps(&adam, 0, 1);
    train_steps(&other, 0, 1);
    train_steps(&step, 0, 1);
    train_steps(&wide, 0, 1);
    state adam0 = take_state(adam.m, adam.o, adam.s),
          other0 = take_state(other.m, other.o, other.s);
    state step0 = take_state(step.m, step.o, step.s), wide0 = take_state(wide.m, wide.o, wide.s);
    int64_t epoch = 77;
    char *extra = (char *)"untouched";

#define REFUSED(t, t0, file, code, text)                                                       \
    do {                                                                                       \
        CHECK(nb_checkpoint_load(tpath(file), (t).m, (t).o, (t).s, &epoch, &extra) == (code)); \
        CHECK_ERROR(code, text);                                                               \
        state now_ = take_state((t).m, (t).o, (t).s);                                          \
        CHECK(same_state(&now_, &(t0)));                                                       \
        free_state(&now_);                                                                     \
    } while (0)

    /* an SGD checkpoint into an Adam optimiser: the moment buffers are missing */
    REFUSED(adam, adam0, "sgd.safetensors", NB_ERR_IO, "has no tensor 'optim.state.0.exp_avg'");
    /* another schedule: the optimiser's JSON loads first and is put back when the schedule's fails */
    REFUSED(step, step0, "sgd.safetensors", NB_ERR_ARG,
            "sgd.safetensors: schedule state: unknown key 'T_max'");
    /* another model size */
    REFUSED(wide, wide0, "sgd.safetensors", NB_ERR_SHAPE,
            "tensor 'model.0.weight' has shape [16,12], expected [24,12]");

    size_t size;
    free(read_all(tpath("sgd.safetensors"), &size));
    truncate_copy(tpath("sgd.safetensors"), tpath("cut.safetensors"), size / 2);
    REFUSED(other, other0, "cut.safetensors", NB_ERR_IO, "cut.safetensors");
    truncate_copy(tpath("sgd.safetensors"), tpath("cut7.safetensors"), 7);
    REFUSED(other, other0, "cut7.safetensors", NB_ERR_IO, "cut7.safetensors");
    flip_copy(tpath("sgd.safetensors"), tpath("flip.safetensors"), 20);
    REFUSED(other, other0, "flip.safetensors", NB_ERR_IO, "checksum");
    REFUSED(other, other0, "absent.safetensors", NB_ERR_IO, "absent.safetensors");

    /* a weights file is not a checkpoint */
    CHECK(nb_module_save(sgd.m, tpath("weights.safetensors"), 0, NULL, NULL) == NB_OK);
    REFUSED(other, other0, "weights.safetensors", NB_ERR_IO, "not a nabla checkpoint");
    /* malformed metadata */
    rewrite_meta(tpath("sgd.safetensors"), tpath("m1.safetensors"), "nabla.epoch", "-1");
    REFUSED(other, other0, "m1.safetensors", NB_ERR_IO, "'nabla.epoch'");
    rewrite_meta(tpath("sgd.safetensors"), tpath("m2.safetensors"), "nabla.epoch", NULL);
    REFUSED(other, other0, "m2.safetensors", NB_ERR_IO, "'nabla.epoch'");
    rewrite_meta(tpath("sgd.safetensors"), tpath("m3.safetensors"), "nabla.rng",
                 "{\"seed\": 1, \"offset\": 2}");
    REFUSED(other, other0, "m3.safetensors", NB_ERR_IO, "'nabla.rng'");
    rewrite_meta(tpath("sgd.safetensors"), tpath("m4.safetensors"), "nabla.rng",
                 "{\"seed\": \"1x\", \"offset\": \"2\"}");
    REFUSED(other, other0, "m4.safetensors", NB_ERR_IO, "'nabla.rng'");
    rewrite_meta(tpath("sgd.safetensors"), tpath("m5.safetensors"), "nabla.optim", NULL);
    REFUSED(other, other0, "m5.safetensors", NB_ERR_IO, "has no optimiser state");
    rewrite_meta(tpath("sgd.safetensors"), tpath("m6.safetensors"), "nabla.optim",
                 "{\"optimizer\": \"sgd\"}");
    REFUSED(other, other0, "m6.safetensors", NB_ERR_ARG,
            "m6.safetensors: optimizer state: missing key 'param_groups'");
    rewrite_meta(tpath("sgd.safetensors"), tpath("m7.safetensors"), "nabla.format", "checkpoint-2");
    REFUSED(other, other0, "m7.safetensors", NB_ERR_IO, "not a nabla checkpoint");
#undef REFUSED
    CHECK_EQ_INT(epoch, 77);
    CHECK(!strcmp(extra, "untouched"));

    /* and the good file still loads into the same objects */
    CHECK(nb_checkpoint_load(tpath("sgd.safetensors"), other.m, other.o, other.s, &epoch, &extra) ==
          NB_OK);
    CHECK_EQ_INT(epoch, 2);
    CHECK(extra == NULL); /* saved without progress */
    state got = take_state(other.m, other.o, other.s), want = take_state(sgd.m, sgd.o, sgd.s);
    CHECK(same_state(&got, &want));
    free_state(&got);
    free_state(&want);

    CHECK(nb_checkpoint_save(NULL, sgd.m, sgd.o, sgd.s, 0, NULL) == NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "checkpoint_save");
    CHECK(nb_checkpoint_load(tpath("sgd.safetensors"), NULL, NULL, NULL, NULL, NULL) ==
          NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "checkpoint_load");
    free_state(&adam0);
    free_state(&other0);
    free_state(&step0);
    free_state(&wide0);
    trainer *all[] = {&sgd, &adam, &other, &step, &wide};
    for (int i = 0; i < 5; i++) free_trainer(all[i]);
    const char *files[] = {"sgd", "cut", "cut7", "flip", "weights", "m1",
                           "m2",  "m3",  "m4",   "m5",   "m6",      "m7"};
    for (int i = 0; i < 12; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.safetensors", files[i]);
        remove(tpath(name));
    }
    CHECK_EQ_INT(count_temporaries(), 0);
}

static void checkpoint_keeps_a_64_bit_seed_and_loads_the_model_alone(void) {
    trainer t = make_trainer(5, OPT_ADAM, 16, false);
    train_steps(&t, 0, 2);
    nb_manual_seed(UINT64_MAX); /* beyond int64: JSON integers cannot hold it */
    nb_tensor_free(nb_rand(NB_SHAPE(3)));
    nb_generator g = nb_rng_get_state();
    CHECK(nb_checkpoint_save(tpath("ck.safetensors"), t.m, t.o, t.s, 9, "[]") == NB_OK);
    size_t n;
    unsigned char *want = model_bytes(t.m, &n);

    /* into a model alone: the optimiser's tensors and the schedule are passed over */
    nb_module *m = make_model(6, 16);
    nb_manual_seed(1);
    int64_t epoch = 0;
    CHECK(nb_checkpoint_load(tpath("ck.safetensors"), m, NULL, NULL, &epoch, NULL) == NB_OK);
    CHECK(model_equals(m, want, n));
    CHECK_EQ_INT(epoch, 9);
    nb_generator h = nb_rng_get_state();
    CHECK(h.seed == g.seed && h.offset == g.offset);
    CHECK(h.seed == UINT64_MAX);

    /* a checkpoint of a model alone has no optimiser state to give */
    CHECK(nb_checkpoint_save(tpath("alone.safetensors"), t.m, NULL, NULL, 1, NULL) == NB_OK);
    CHECK(nb_checkpoint_load(tpath("alone.safetensors"), m, NULL, NULL, NULL, NULL) == NB_OK);
    state before = take_state(t.m, t.o, t.s);
    CHECK(nb_checkpoint_load(tpath("alone.safetensors"), t.m, t.o, t.s, NULL, NULL) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "has no tensor 'optim.state.0.exp_avg'");
    state after = take_state(t.m, t.o, t.s);
    CHECK(same_state(&before, &after));
    free_state(&before);
    free_state(&after);
    free(want);
    nb_module_free(m);
    free_trainer(&t);
    remove(tpath("ck.safetensors"));
    remove(tpath("alone.safetensors"));
}

/* ---------------------------------------------------------------- non-finite weights */

static void saves_refuse_non_finite_weights_and_keep_the_last_good_files(void) {
    trainer t = make_trainer(21, OPT_SGD, 16, false);
    const char *w = tpath("good_w.safetensors"), *ck = tpath("good_ck.safetensors");
    CHECK(nb_module_save(t.m, w, 0, NULL, NULL) == NB_OK);
    CHECK(nb_checkpoint_save(ck, t.m, t.o, t.s, 1, NULL) == NB_OK);
    size_t nw, nck;
    unsigned char *w0 = read_all(w, &nw), *ck0 = read_all(ck, &nck);

    /* a diverged step: one weight is NaN */
    nb_tensor *weight = nb_module_find(t.m, "4.weight");
    float kept = nb_get(weight, NB_INDEX(3, 7));
    nb_set(weight, NB_INDEX(3, 7), NAN);
    CHECK(nb_module_save(t.m, w, 0, NULL, NULL) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), w);
    CHECK_ERROR(NB_ERR_ARG, "tensor '4.weight' element [3,7] is nan");
    CHECK(nb_checkpoint_save(ck, t.m, t.o, t.s, 2, NULL) == NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), ck);
    CHECK_ERROR(NB_ERR_ARG, "tensor 'model.4.weight' element [3,7] is nan");
    nb_set(weight, NB_INDEX(3, 7), kept);
    /* a buffer: BatchNorm's running variance */
    nb_set(nb_module_find(t.m, "1.running_var"), NB_INDEX(5), -INFINITY);
    CHECK(nb_module_save(t.m, w, 0, NULL, NULL) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "tensor '1.running_var' element [5] is -inf");
    CHECK(nb_checkpoint_save(ck, t.m, t.o, t.s, 2, NULL) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "tensor 'model.1.running_var' element [5] is -inf");

    size_t n;
    unsigned char *now = read_all(w, &n);
    CHECK(same_bytes(now, n, w0, nw));
    free(now);
    now = read_all(ck, &n);
    CHECK(same_bytes(now, n, ck0, nck));
    free(now);
    CHECK_EQ_INT(count_temporaries(), 0);
    free(w0);
    free(ck0);
    free_trainer(&t);
}

static void loads_refuse_non_finite_weights_and_change_nothing(void) {
    trainer t = make_trainer(22, OPT_SGD, 16, false), u = make_trainer(23, OPT_SGD, 16, false);
    train_steps(&u, 0, 1);
    state u0 = take_state(u.m, u.o, u.s);
    CHECK(nb_module_save(t.m, tpath("fin_w.safetensors"), 0, NULL, NULL) == NB_OK);
    CHECK(nb_checkpoint_save(tpath("fin_ck.safetensors"), t.m, t.o, t.s, 1, NULL) == NB_OK);
    copy_changed(tpath("fin_w.safetensors"), tpath("nan_w.safetensors"), NULL, NULL, "0.bias", NAN);
    copy_changed(tpath("fin_ck.safetensors"), tpath("inf_ck.safetensors"), NULL, NULL, "model.0.weight",
                 INFINITY);

    CHECK(nb_module_load(u.m, tpath("nan_w.safetensors")) == NB_ERR_IO);
    CHECK_STR_CONTAINS(nb_error_message(), tpath("nan_w.safetensors"));
    CHECK_ERROR(NB_ERR_IO, "tensor '0.bias' element [0] is nan");
    CHECK(nb_module_load_nonstrict(u.m, tpath("nan_w.safetensors"), NULL) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "tensor '0.bias' element [0] is nan");
    CHECK(nb_checkpoint_load(tpath("inf_ck.safetensors"), u.m, u.o, u.s, NULL, NULL) == NB_ERR_IO);
    CHECK_STR_CONTAINS(nb_error_message(), tpath("inf_ck.safetensors"));
    CHECK_ERROR(NB_ERR_IO, "tensor 'model.0.weight' element [0,0] is inf");
    state now = take_state(u.m, u.o, u.s);
    CHECK(same_state(&now, &u0));
    free_state(&now);
    free_state(&u0);
    free_trainer(&t);
    free_trainer(&u);
    const char *files[] = {"fin_w", "fin_ck", "nan_w", "inf_ck"};
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.safetensors", files[i]);
        remove(tpath(name));
    }
}

/* ---------------------------------------------------------------- checking before training */

static int entries_in(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static void checkpoint_check_finds_what_would_fail_a_save_and_leaves_nothing(void) {
    trainer t = make_trainer(24, OPT_ADAM, 16, false);
    train_steps(&t, 0, 1); /* Adam's moments exist */
    mkdir(tpath("run"), 0755);
    CHECK(nb_checkpoint_check(tpath("run/checkpoint.safetensors"), t.m, t.o) == NB_OK);
    CHECK(nb_checkpoint_check(tpath("run/checkpoint.safetensors"), t.m, NULL) == NB_OK);
    CHECK_EQ_INT(entries_in(tpath("run")), 0); /* nothing left behind */

    CHECK(nb_checkpoint_check(tpath("nowhere/checkpoint.safetensors"), t.m, t.o) == NB_ERR_IO);
    CHECK_STR_CONTAINS(nb_error_message(), "nowhere/checkpoint.safetensors");
    CHECK_ERROR(NB_ERR_IO, "cannot open its folder: No such file or directory");
    CHECK(nb_checkpoint_check(tpath("run"), t.m, t.o) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "Is a directory");
    /* a file where the folder should be */
    write_text(tpath("plain"), "x");
    CHECK(nb_checkpoint_check(tpath("plain/checkpoint.safetensors"), t.m, t.o) == NB_ERR_IO);
    CHECK_ERROR(NB_ERR_IO, "Not a directory");
    nb_set(nb_module_find(t.m, "0.bias"), NB_INDEX(2), NAN);
    CHECK(nb_checkpoint_check(tpath("run/checkpoint.safetensors"), t.m, t.o) == NB_ERR_ARG);
    CHECK_ERROR(NB_ERR_ARG, "tensor 'model.0.bias' element [2] is nan");
    CHECK(nb_checkpoint_check(NULL, t.m, t.o) == NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "checkpoint_check");
    CHECK_EQ_INT(entries_in(tpath("run")), 0);
    rmdir(tpath("run"));
    remove(tpath("plain"));
    free_trainer(&t);
}

/* ---------------------------------------------------------------- non-strict loads */

static bool report_is(int n, char **got, int n_want, const char *const *want) {
    if (n != n_want) return false;
    for (int i = 0; i < n; i++)
        if (strcmp(got[i], want[i])) return false;
    return true;
}

/* A body trained under one head loads under another: torch's load_state_dict(strict=False). */
static void nonstrict_load_reports_missing_and_unexpected_and_loads_the_rest(void) {
    nb_module *src = mlp(31, 16, 8, 3); /* head: 4.weight, 4.bias */
    warm_batchnorm(src, 16);
    const char *path = tpath("body.safetensors");
    CHECK(nb_module_save(src, path, 0, NULL, NULL) == NB_OK);
    nb_manual_seed(32);
    nb_module *dst = nb_sequential_new(
        6, (nb_module *[]){nb_flatten_new(1, -1), nb_linear_new(16, 8, true),
                           nb_batchnorm1d_new(8, (nb_batchnorm_opts){0}),
                           nb_activation_new(NB_ACT_RELU, 0), nb_dropout_new(0.1f),
                           nb_linear_new(8, 5, true)}); /* head: 5.weight, 5.bias */
    nb_tensor *head = nb_module_find(dst, "5.weight");
    float head0 = nb_get(head, NB_INDEX(4, 7));
    nb_load_report r = {0};
    CHECK(nb_module_load_nonstrict(dst, path, &r) == NB_OK);
    CHECK(report_is(r.n_missing, r.missing, 2, (const char *[]){"5.weight", "5.bias"}));
    CHECK(report_is(r.n_unexpected, r.unexpected, 2, (const char *[]){"4.weight", "4.bias"}));
    const char *body[] = {"1.weight", "1.bias", "2.weight", "2.bias", "2.running_mean",
                          "2.running_var", "2.num_batches_tracked"};
    for (int i = 0; i < 7; i++) {
        nb_tensor *a = nb_module_find(src, body[i]), *b = nb_module_find(dst, body[i]);
        size_t n = (size_t)nb_numel(a) * nb__dtype_size(nb_dtype_of(a));
        unsigned char *x = malloc(n), *y = malloc(n);
        nb__copy_logical(x, a);
        nb__copy_logical(y, b);
        if (memcmp(x, y, n)) CHECK_FAIL_("'%s' was not loaded", body[i]);
        else check_passed_++;
        free(x);
        free(y);
    }
    CHECK(nb_get(head, NB_INDEX(4, 7)) == head0); /* the new head is left as it was */
    nb_load_report_free(&r);
    CHECK(r.n_missing == 0 && r.missing == NULL && r.n_unexpected == 0);
    nb_load_report_free(&r); /* twice, and NULL: nothing happens */
    nb_load_report_free(NULL);
    CHECK(nb_module_load_nonstrict(dst, path, NULL) == NB_OK); /* no report wanted */

    /* a shape mismatch is still an error, and changes nothing */
    nb_module *wide = mlp(33, 16, 12, 3);
    size_t n;
    unsigned char *before = model_bytes(wide, &n);
    r.n_missing = 99; /* overwritten */
    CHECK(nb_module_load_nonstrict(wide, path, &r) == NB_ERR_SHAPE);
    CHECK_ERROR(NB_ERR_SHAPE, "tensor '1.weight' has shape [8,16], expected [12,16]");
    CHECK(r.n_missing == 0 && r.n_unexpected == 0 && !r.missing && !r.unexpected);
    CHECK(model_equals(wide, before, n));
    CHECK(nb_module_load_nonstrict(wide, tpath("absent.safetensors"), &r) == NB_ERR_IO);
    CHECK(nb_module_load_nonstrict(NULL, path, &r) == NB_ERR_NULL);
    CHECK_ERROR(NB_ERR_NULL, "module_load_nonstrict");
    free(before);
    nb_module_free(wide);
    nb_module_free(dst);
    nb_module_free(src);
    remove(path);
}

/* Names have no length limit: a file whose tensors carry 300-character names (as a deeply
 * nested model's do) reports them whole. */
static void long_names_are_kept_whole(void) {
    nb_module *m = mlp(34, 16, 8, 3);
    char a[301], b[301];
    memset(a, 'a', 300);
    memcpy(b, a, 300);
    a[300] = b[300] = '\0';
    memcpy(a + 290, ".weight", 8);
    memcpy(b + 292, ".bias", 6);
    nb_tensor *t = nb_zeros(NB_SHAPE(2));
    CHECK(nb_safetensors_save(tpath("long.safetensors"), 2, (const char *[]){a, b},
                              (nb_tensor *[]){t, t}, NULL, NULL, 0) == NB_OK);
    nb_load_report r;
    CHECK(nb_module_load_nonstrict(m, tpath("long.safetensors"), &r) == NB_OK);
    CHECK(report_is(r.n_unexpected, r.unexpected, 2, (const char *[]){a, b}));
    CHECK_EQ_INT(r.n_missing, 9);
    nb_load_report_free(&r);
    nb_tensor_free(t);
    nb_module_free(m);
    remove(tpath("long.safetensors"));
}

/* Item 5 of the newcomer's report: a model nested 100 deep (names of 206 characters) is checked,
 * saved and loaded whole, as weights and as a checkpoint — it used to fail at the first save. */
static void a_hundred_deep_model_checks_saves_and_loads(void) {
    nb_manual_seed(5);
    nb_module *m = nb_linear_new(3, 2, true);
    for (int i = 0; i < 100; i++) m = nb_sequential_new(1, (nb_module *[]){m});
    const char *name = NULL;
    CHECK(nb_module_param(m, 0, &name) != NULL);
    CHECK_EQ_INT((int)strlen(name), 206); /* "0.0. ... 0.weight" */
    nb_tensor *params[2];
    CHECK_EQ_INT(nb_module_parameters(m, params, 2), 2);
    nb_optim *o = nb_adam_new(2, params, (nb_adam_opts){.lr = 1e-3f});
    CHECK(nb_checkpoint_check(tpath("deep.ckpt"), m, o) == NB_OK);
    CHECK(nb_checkpoint_save(tpath("deep.ckpt"), m, o, NULL, 1, NULL) == NB_OK);
    CHECK(nb_module_save(m, tpath("deep.safetensors"), 0, NULL, NULL) == NB_OK);
    nb_manual_seed(6); /* other weights, then the saved ones back */
    nb_module *copy = nb_linear_new(3, 2, true);
    for (int i = 0; i < 100; i++) copy = nb_sequential_new(1, (nb_module *[]){copy});
    CHECK(nb_module_load(copy, tpath("deep.safetensors")) == NB_OK);
    CHECK(nb_get(nb_module_param(copy, 0, NULL), NB_INDEX(1, 2)) ==
          nb_get(nb_module_param(m, 0, NULL), NB_INDEX(1, 2)));
    CHECK(nb_checkpoint_load(tpath("deep.ckpt"), copy, NULL, NULL, NULL, NULL) == NB_OK);
    nb_module_free(copy);
    nb_optim_free(o);
    nb_module_free(m);
    remove(tpath("deep.ckpt"));
    remove(tpath("deep.safetensors"));
}

/* ---------------------------------------------------------------- torch reads nabla's weights */

#define GOLDEN_WEIGHTS "tests/golden/nabla_mlp.safetensors"
#define GOLDEN_TORCH "tests/golden/nabla_mlp_torch.json"

/* The golden model: [N, 4, 4] pictures -> Flatten, Linear(16, 8), BatchNorm1d(8), ReLU,
 * Linear(8, 3), as torch's nn.Sequential in tools/gen_golden_train.py. */
static nb_module *golden_mlp(uint64_t seed) { return mlp(seed, 16, 8, 3); }

static int write_golden(void) {
    nb_module *m = golden_mlp(2024);
    warm_batchnorm(m, 16);
    nb_status s = nb_module_save(m, GOLDEN_WEIGHTS, 0, NULL, NULL);
    nb_module_free(m);
    if (s != NB_OK) return fprintf(stderr, "%s\n", nb_error_message()), 1;
    printf("wrote %s; now run /usr/bin/python3 tools/gen_golden_train.py\n", GOLDEN_WEIGHTS);
    return 0;
}

static void torch_output_matches_on_nablas_weights(void) {
    json_error_t err;
    json_t *root = json_load_file(GOLDEN_TORCH, 0, &err);
    CHECK(root != NULL);
    json_t *shape = json_object_get(root, "input_shape"), *in = json_object_get(root, "input");
    json_t *out = json_object_get(root, "output");
    int64_t dims[3] = {0};
    for (size_t i = 0; i < 3; i++) dims[i] = json_integer_value(json_array_get(shape, i));
    size_t n_in = json_array_size(in), n_out = json_array_size(out);
    CHECK(n_in == (size_t)(dims[0] * dims[1] * dims[2]) && n_in > 0 &&
          n_out == (size_t)dims[0] * 3);
    float *x = malloc(sizeof(float) * (n_in + 1));
    double *want = malloc(sizeof(double) * (n_out + 1));
    for (size_t i = 0; i < n_in; i++) x[i] = (float)json_number_value(json_array_get(in, i));
    for (size_t i = 0; i < n_out; i++) want[i] = json_number_value(json_array_get(out, i));

    nb_module *m = golden_mlp(1); /* other values until the file is loaded */
    CHECK(nb_module_load(m, GOLDEN_WEIGHTS) == NB_OK);
    nb_module_train(m, false);
    nb_scope_begin();
    nb_tensor *y = NULL;
    NB_NO_GRAD { y = nb_module_forward(m, nb_from_data(x, 3, dims)); }
    CHECK_TENSOR("torch's output on nabla's weights", y, want, (long)n_out, 1e-5, 0);
    nb_scope_end();
    nb_module_free(m);
    free(x);
    free(want);
    json_decref(root);
}

/* ---------------------------------------------------------------- torch's pretrained body */

#define GOLDEN_PRETRAINED "tests/golden/torch_pretrained.safetensors"
#define GOLDEN_PRETRAINED_JSON "tests/golden/torch_pretrained.json"

/* The numbers of a JSON array, as floats (malloc'd; *n gets the count). */
static float *json_floats(json_t *a, size_t *n) {
    *n = json_array_size(a);
    float *v = malloc(sizeof(float) * (*n + 1));
    for (size_t i = 0; i < *n; i++) v[i] = (float)json_number_value(json_array_get(a, i));
    return v;
}

/* A torch MLP saved with torch.save(state_dict()) and converted by tools/pt_to_safetensors.py:
 * its body loads non-strictly under nabla's new head, which the report names, and the result
 * computes what torch computes with the same head. */
static void nonstrict_load_takes_torchs_pretrained_body_under_a_new_head(void) {
    json_error_t err;
    json_t *root = json_load_file(GOLDEN_PRETRAINED_JSON, 0, &err);
    CHECK(root != NULL);
    size_t n_in, n_w, n_b, n_out;
    float *x = json_floats(json_object_get(root, "input"), &n_in);
    float *w = json_floats(json_object_get(root, "head_weight"), &n_w);
    float *b = json_floats(json_object_get(root, "head_bias"), &n_b);
    float *out = json_floats(json_object_get(root, "output"), &n_out);
    CHECK(n_in == 5 * 16 && n_w == 3 * 8 && n_b == 3 && n_out == 5 * 3);
    double want[15];
    for (size_t i = 0; i < 15 && i < n_out; i++) want[i] = out[i];

    nb_module *m = mlp(41, 16, 8, 3); /* Flatten, Linear, BatchNorm1d, ReLU, Linear(8, 3) */
    nb_load_report r;
    CHECK(nb_module_load_nonstrict(m, GOLDEN_PRETRAINED, &r) == NB_OK);
    CHECK(report_is(r.n_missing, r.missing, 2, (const char *[]){"4.weight", "4.bias"}));
    CHECK(report_is(r.n_unexpected, r.unexpected, 2, (const char *[]){"5.bias", "5.weight"})); /* file order */
    nb_load_report_free(&r);
    CHECK_EQ_INT(nb_item(nb_module_find(m, "2.num_batches_tracked")), 3); /* torch's I64 */
    nb_tensor *hw = nb_module_find(m, "4.weight"), *hb = nb_module_find(m, "4.bias");
    for (int i = 0; i < 3 && n_w == 24 && n_b == 3; i++) {
        for (int j = 0; j < 8; j++) nb_set(hw, NB_INDEX(i, j), w[8 * i + j]);
        nb_set(hb, NB_INDEX(i), b[i]);
    }
    nb_module_train(m, false);
    nb_scope_begin();
    nb_tensor *y = NULL;
    if (n_in == 80) NB_NO_GRAD { y = nb_module_forward(m, nb_from_data(x, NB_SHAPE(5, 4, 4))); }
    CHECK_TENSOR("torch's body under the new head", y, want, 15, 1e-5, 0);
    nb_scope_end();
    nb_module_free(m);
    free(x);
    free(w);
    free(b);
    free(out);
    json_decref(root);
}

/* ---------------------------------------------------------------- the training loop (nb_fit) */

#define F_N 48 /* samples of the fit data sets */

/* F_N samples [T_IN] computed from their index; labels i % T_CLASSES, shifted by `shift` (a
 * shifted set is one that training on the unshifted one makes worse). */
static nb_dataset *fit_data(int shift) {
    float x[F_N * T_IN];
    int32_t y[F_N];
    for (int i = 0; i < F_N * T_IN; i++) x[i] = sinf(0.37f * (float)i) + 0.5f * cosf(0.11f * (float)(i / T_IN));
    for (int i = 0; i < F_N; i++) y[i] = (i + shift) % T_CLASSES;
    return nb_dataset_new(&(nb_dataset_desc){.n = F_N, .sample_ndim = 1, .sample_shape = (int64_t[]){T_IN},
                                             .x_f32 = x, .labels = y});
}

typedef struct {
    trainer t;
    nb_dataset *train_set, *eval_set;
    nb_loader *train, *eval;
    nb_fit *fit;
} fit_run;

/* A trainer (make_trainer's) on fit_data(0), evaluated on fit_data(eval_shift), under opts. */
static fit_run fit_run_new(uint64_t seed, int eval_shift, const nb_fit_opts *opts) {
    fit_run r = {.t = make_trainer(seed, OPT_SGD, 16, true)};
    r.train_set = fit_data(0);
    r.eval_set = fit_data(eval_shift);
    r.train = nb_loader_new(r.train_set, (nb_loader_opts){.batch_size = T_BATCH, .shuffle = true, .seed = 3});
    r.eval = nb_loader_new(r.eval_set, (nb_loader_opts){.batch_size = 16});
    r.fit = opts ? nb_fit_new(r.t.m, r.t.o, r.t.s, r.train, r.eval, opts) : NULL;
    CHECK(r.train && r.eval && (r.fit || !opts));
    return r;
}

static void fit_run_free(fit_run *r) {
    nb_fit_free(r->fit);
    free_trainer(&r->t);
    nb_loader_free(r->train);
    nb_loader_free(r->eval);
    nb_dataset_free(r->train_set);
    nb_dataset_free(r->eval_set);
}

typedef struct {
    int steps, epochs, stop_at; /* stop_at: the epoch after which on_epoch says stop (0: never) */
    int64_t last_step, steps_per_epoch;
    double eval_loss[8];
} fit_log;

static bool count_step(const nb_fit_step *s, void *user) {
    fit_log *l = user;
    l->steps++;
    l->last_step = s->step;
    l->steps_per_epoch = s->steps;
    return isfinite(s->loss) && isfinite(s->mean_loss);
}

static bool count_epoch(const nb_fit_epoch *e, void *user) {
    fit_log *l = user;
    if (l->epochs < 8) l->eval_loss[l->epochs] = e->eval_loss;
    l->epochs++;
    return !(l->stop_at > 0 && e->epoch >= l->stop_at);
}

/* The loop nb_fit runs, written out as the course's notebook does (a trainer without nb_fit). */
static void hand_written_fit(fit_run *r, int epochs) {
    for (int epoch = 0; epoch < epochs; epoch++) {
        nb_tensor *x, *y;
        nb_loader_set_epoch(r->train, epoch);
        while (nb_loader_next(r->train, &x, &y)) {
            nb_scope_begin();
            nb_optim_zero_grad(r->t.o);
            nb_tensor *loss = nb_cross_entropy(nb_module_forward(r->t.m, x), y, NULL);
            CHECK(loss && nb_backward(loss) == NB_OK && nb_optim_step(r->t.o) == NB_OK);
            nb_scope_end();
        }
        nb_eval_result ev;
        CHECK(nb_evaluate(r->t.m, r->eval, 0, &ev) == NB_OK);
        CHECK(nb_sched_step(r->t.s) == NB_OK);
    }
}

/* Issue 9, item 5: nb_fit is the notebook's loop — same weights, bit for bit, also after
 * nb_fit_measure_memory — and calls back once per step and per epoch; an epoch callback that says
 * stop ends the run after that epoch. */
static void fit_is_the_hand_written_loop_and_calls_back_per_step_and_epoch(void) {
    fit_run a = fit_run_new(31, 0, NULL);
    hand_written_fit(&a, 3);
    size_t n_want;
    unsigned char *want = model_bytes(a.t.m, &n_want);
    fit_run_free(&a);

    fit_run b = fit_run_new(31, 0, &(nb_fit_opts){.epochs = 3});
    nb_fit_memory mem; /* measuring runs a step and undoes it: the weights below show it did */
    CHECK(nb_fit_measure_memory(b.fit, &mem) == NB_OK);
    CHECK_EQ_INT(mem.parameters, 4 * nb_module_num_elements(b.t.m));
    CHECK_EQ_INT(mem.optim_state, mem.parameters); /* SGD's momentum buffers */
    fit_log log = {0};
    CHECK(nb_fit_run(b.fit, &(nb_fit_callbacks){count_step, count_epoch, &log}) == NB_OK);
    CHECK(model_equals(b.t.m, want, n_want));
    CHECK_EQ_INT(log.steps, 3 * F_N / T_BATCH);
    CHECK_EQ_INT(log.steps_per_epoch, F_N / T_BATCH);
    CHECK_EQ_INT(log.last_step, F_N / T_BATCH);
    CHECK_EQ_INT(log.epochs, 3);
    nb_fit_info info = nb_fit_info_get(b.fit);
    CHECK_EQ_INT(info.end, NB_FIT_DONE);
    CHECK_EQ_INT(info.epoch, 3);
    CHECK_EQ_INT(nb_curves_len(info.curves), 3);
    float row[4];
    CHECK(nb_curves_get(info.curves, 2, row) == NB_OK && row[1] == (float)log.eval_loss[2]);
    fit_run_free(&b);
    free(want);

    fit_run c = fit_run_new(31, 0, &(nb_fit_opts){.epochs = 5});
    fit_log stop = {.stop_at = 2};
    CHECK(nb_fit_run(c.fit, &(nb_fit_callbacks){.on_epoch = count_epoch, .user = &stop}) == NB_OK);
    CHECK_EQ_INT(nb_fit_info_get(c.fit).end, NB_FIT_STOPPED);
    CHECK_EQ_INT(nb_fit_info_get(c.fit).epoch, 2);
    CHECK_EQ_INT(stop.epochs, 2);
    fit_run_free(&c);
}

/* A run stopped after an epoch and resumed from its checkpoint by new objects ends where the
 * uninterrupted run does: weights, curves and the model file, bit for bit. */
static void fit_resumed_from_its_checkpoint_is_bit_identical(void) {
    mkdir(tpath("fitA"), 0755);
    mkdir(tpath("fitB"), 0755);
    fit_run a = fit_run_new(32, 0, &(nb_fit_opts){.epochs = 3, .out = tpath("fitA"), .seed = 5});
    CHECK(nb_fit_run(a.fit, NULL) == NB_OK);
    size_t n_want;
    unsigned char *want = model_bytes(a.t.m, &n_want);

    fit_run b = fit_run_new(32, 0, &(nb_fit_opts){.epochs = 3, .out = tpath("fitB"), .seed = 5});
    fit_log stop = {.stop_at = 1};
    CHECK(nb_fit_run(b.fit, &(nb_fit_callbacks){.on_epoch = count_epoch, .user = &stop}) == NB_OK);
    fit_run_free(&b);
    fit_run c = fit_run_new(77, 0, &(nb_fit_opts){.epochs = 3, .out = tpath("fitB"), .seed = 5});
    CHECK(nb_fit_resume(c.fit, tpath("fitB/checkpoint.safetensors")) == NB_OK);
    CHECK_EQ_INT(nb_fit_info_get(c.fit).epoch, 1);
    CHECK_EQ_INT(nb_curves_len(nb_fit_info_get(c.fit).curves), 1);
    CHECK(nb_fit_run(c.fit, NULL) == NB_OK);
    CHECK(model_equals(c.t.m, want, n_want));
    const char *files[] = {"model.safetensors", "checkpoint.safetensors", "curves.csv"};
    for (int i = 0; i < 3; i++) {
        char pa[64], pb[64];
        snprintf(pa, sizeof pa, "fitA/%s", files[i]);
        snprintf(pb, sizeof pb, "fitB/%s", files[i]);
        size_t na, nb;
        char *fa = read_all(tpath(pa), &na), *fb = read_all(tpath(pb), &nb);
        CHECK(fa && fb && same_bytes((unsigned char *)fa, na, (unsigned char *)fb, nb));
        free(fa);
        free(fb);
    }
    nb_safetensors *st = nb_safetensors_open(tpath("fitB/model.safetensors"));
    CHECK(st && !strcmp(nb_safetensors_meta(st, "nabla.epoch"), "3"));
    nb_safetensors_close(st);
    fit_run_free(&a);
    fit_run_free(&c);
    free(want);
}

/* A loss above the divergence threshold stops the run at that step with a message naming it,
 * and nothing of the epoch is written. */
static void fit_stops_on_divergence_and_writes_nothing_of_that_epoch(void) {
    mkdir(tpath("fitD"), 0755);
    /* a factor so small that the first batch's loss is above it */
    fit_run r = fit_run_new(33, 0, &(nb_fit_opts){.epochs = 2, .out = tpath("fitD"), .divergence_factor = 1e-6});
    CHECK_EQ_INT(nb_fit_run(r.fit, NULL), NB_ERR_ARG);
    CHECK_STR_CONTAINS(nb_error_message(), "training diverged at step 1/6 of epoch 1: the loss is ");
    CHECK_EQ_INT(nb_fit_info_get(r.fit).end, NB_FIT_DIVERGED);
    CHECK_EQ_INT(nb_fit_info_get(r.fit).epoch, 0);
    CHECK_EQ_INT(entries_in(tpath("fitD")), 0);
    fit_run_free(&r);
}

/* Early stopping with model selection: the evaluation set's labels are shifted, so training
 * makes its loss worse after the first epoch; the run stops and the first epoch's weights (those
 * in the model file) are put back. */
static void fit_early_stop_puts_the_best_weights_back(void) {
    mkdir(tpath("fitE"), 0755);
    fit_run r = fit_run_new(34, 1, &(nb_fit_opts){.epochs = 6, .early_stop = 2, .select_best = true, .out = tpath("fitE")});
    CHECK(nb_fit_run(r.fit, NULL) == NB_OK);
    nb_fit_info info = nb_fit_info_get(r.fit);
    CHECK_EQ_INT(info.end, NB_FIT_EARLY_STOP);
    CHECK_EQ_INT(info.epoch, 3);
    CHECK_EQ_INT(info.model_epoch, 1);
    CHECK(info.restored);
    CHECK_EQ_INT(nb_fit_model_epoch(tpath("fitE/checkpoint.safetensors")), 1); /* the best, not the last */
    CHECK_EQ_INT(nb_fit_model_epoch(tpath("fitE/absent.safetensors")), -1);
    nb_module *best = make_model(1, 16);
    CHECK(nb_module_load(best, tpath("fitE/model.safetensors")) == NB_OK);
    size_t n;
    unsigned char *want = model_bytes(best, &n);
    CHECK(model_equals(r.t.m, want, n));
    nb_eval_result ev;
    CHECK(nb_evaluate(r.t.m, r.eval, 0, &ev) == NB_OK && ev.loss == info.best);
    free(want);
    nb_module_free(best);
    fit_run_free(&r);
}

/* nb_evaluate leaves the model's mode as it found it; nb_fit_new refuses what cannot run. */
static void evaluate_keeps_the_mode_and_fit_new_refuses_bad_options(void) {
    fit_run r = fit_run_new(35, 0, NULL);
    nb_eval_result ev;
    nb_module_train(r.t.m, false);
    CHECK(nb_evaluate(r.t.m, r.eval, 0, &ev) == NB_OK && !nb_module_is_training(r.t.m));
    CHECK_EQ_INT(ev.samples, F_N);
    CHECK(ev.accuracy >= 0 && ev.accuracy <= 1 && isfinite(ev.loss));
    nb_module_train(r.t.m, true);
    CHECK(nb_evaluate(r.t.m, r.eval, 0, &ev) == NB_OK && nb_module_is_training(r.t.m));
    CHECK(nb_fit_new(r.t.m, r.t.o, r.t.s, r.train, r.eval, &(nb_fit_opts){.epochs = 0}) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "fit_new: epochs must be at least 1, got 0");
    CHECK(nb_fit_new(r.t.m, r.t.o, r.t.s, r.train, r.eval, &(nb_fit_opts){.epochs = 1, .select_best = true}) == NULL);
    CHECK_STR_CONTAINS(nb_error_message(), "select_best needs an output folder");
    CHECK(nb_fit_new(r.t.m, r.t.o, r.t.s, NULL, r.eval, &(nb_fit_opts){.epochs = 1}) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_ARG);
    CHECK(nb_fit_new(r.t.m, r.t.o, r.t.s, r.train, r.eval, &(nb_fit_opts){.epochs = 1, .out = tpath("no/such")}) == NULL);
    CHECK_EQ_INT(nb_error_code(), NB_ERR_IO);
    CHECK_STR_CONTAINS(nb_error_message(), "a save would fail: ");
    /* a folder whose files' paths would not fit is refused, never cut to another, valid path */
    static char deep[4100];
    memset(deep, 'd', sizeof deep - 1);
    for (size_t i = 100; i < sizeof deep - 1; i += 100) deep[i] = '/';
    CHECK(nb_fit_new(r.t.m, r.t.o, r.t.s, r.train, r.eval, &(nb_fit_opts){.epochs = 1, .out = deep}) == NULL);
    CHECK_ERROR(NB_ERR_ARG, "fit_new: the output folder's path is 4099 bytes");
    fit_run_free(&r);
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--write-golden")) return write_golden();
    if (!tmpdir_make("nabla_test_train")) return 1;
    nb_release_memory();
    size_t live = nb_alloc_stats_get().bytes_live;

    count_correct_counts_rows_whose_argmax_is_the_label();
    count_correct_rejects_mismatched_shapes_and_dtypes();
    progress_off_a_terminal_prints_one_final_line();
    progress_clamps_and_takes_no_postfix();
    format_duration_writes_minutes_hours_and_unknown();
    curves_keep_rows_and_refuse_out_of_range_epochs();
    curves_csv_has_a_header_one_row_per_epoch_and_empty_nans();
    curves_svg_draws_two_panels_of_two_lines();
    curves_writes_are_atomic_and_fail_cleanly();
    module_save_load_round_trips_parameters_and_buffers();
    module_load_refuses_mismatched_files_and_changes_nothing();
    checkpoint_resume_with_sgd_momentum_is_bit_identical();
    checkpoint_resume_with_adam_is_bit_identical();
    checkpoint_load_refuses_bad_files_and_changes_nothing();
    checkpoint_keeps_a_64_bit_seed_and_loads_the_model_alone();
    curves_past_the_file_size_limit_fail_with_the_cause_and_keep_the_old_file();
    saves_refuse_non_finite_weights_and_keep_the_last_good_files();
    loads_refuse_non_finite_weights_and_change_nothing();
    checkpoint_check_finds_what_would_fail_a_save_and_leaves_nothing();
    nonstrict_load_reports_missing_and_unexpected_and_loads_the_rest();
    long_names_are_kept_whole();
    a_hundred_deep_model_checks_saves_and_loads();
    torch_output_matches_on_nablas_weights();
    nonstrict_load_takes_torchs_pretrained_body_under_a_new_head();
    fit_is_the_hand_written_loop_and_calls_back_per_step_and_epoch();
    fit_resumed_from_its_checkpoint_is_bit_identical();
    fit_stops_on_divergence_and_writes_nothing_of_that_epoch();
    fit_early_stop_puts_the_best_weights_back();
    evaluate_keeps_the_mode_and_fit_new_refuses_bad_options();

    nb_release_memory();
    CHECK_EQ_INT(nb_alloc_stats_get().bytes_live, live); /* every object and buffer returned */
    tmpdir_remove();
    return check_summary();
}
