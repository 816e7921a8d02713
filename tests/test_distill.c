/*
 * test_distill.c — knowledge distillation: the loss nb_distill_loss (nabla/loss.h) and training
 * with a teacher through nb_fit (nb_fit_opts.teacher, nabla/train.h).
 *
 * Golden.  tests/golden/distill.json (tools/gen_golden_distill.py, torch 1.13) holds float32
 * logits, labels and torch's loss and gradient w.r.t. the student's logits, computed in float64
 * with F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction='batchmean').  Each case
 * runs inside a scope and with none open, where freeing the loss must give back every byte the
 * call took (the composite rule).  Tolerance 1e-5 + 1e-5 |want|, as test_loss.c: float32
 * rounding of these sums stays near 1e-6.
 *
 * Finite differences.  The gradient w.r.t. the student's logits against the fourth-order central
 * difference of the loss (step 2^-7, accumulated in double from the float32 forward), tolerance
 * 1e-3 absolute + relative as test_loss.c, plus 1e-4 |L|: each evaluation of L rounds to float32
 * (~1e-7 |L|, more through its sums) and the stencil multiplies that by 18 / (12 h) = 192, which
 * matters where T^2 makes L large (T = 20: L = 172, an error of 4.4e-3 measured).  A wrong factor
 * (T instead of T^2, a missing 1/N) moves a gradient by far more.
 *
 * Training.  A perfect teacher (a Linear layer whose argmax makes the labels) teaches a student
 * on a small data set; runs are compared bit for bit to show that the teacher runs in eval mode
 * without drawing random numbers, that alpha = 0 is plain cross-entropy, and that a stopped run
 * resumes from its checkpoint (files in a mkdtemp folder under /tmp, removed at the end).
 */
#include "check.h"
#include "golden_json.h"
#include "nabla/loss.h"
#include "nabla/nn.h"
#include "nabla/optim.h"
#include "nabla/train.h"

#include "tmpdir.h"

#include <jansson.h>
#include <sys/stat.h>

#define GOLDEN "tests/golden/distill.json"
#define ATOL 1e-5
#define RTOL 1e-5
#define FD_STEP 0x1p-7
#define FD_TOL 1e-3
#define MAX_ELEMS 256

/* ---------------------------------------------------------------- golden cases */

typedef struct {
    const char *name;
    nb_tensor *student, *teacher, *target; /* caller-owned leaves */
    float temperature, alpha;
    nb_ce_opts hard;
    double loss, grad[MAX_ELEMS];
    long n_grad;
} dcase;

static dcase case_of(const json_t *j) {
    dcase c = {.name = json_string_value(json_object_get(j, "name")),
               .student = json_tensor(json_object_get(j, "student")),
               .teacher = json_tensor(json_object_get(j, "teacher")),
               .target = json_tensor(json_object_get(j, "target")),
               .temperature = (float)json_number_value(json_object_get(j, "T")),
               .alpha = (float)json_number_value(json_object_get(j, "alpha")),
               .hard = {.label_smoothing = (float)json_number_value(json_object_get(j, "label_smoothing"))},
               .loss = json_number_value(json_object_get(j, "loss"))};
    const json_t *g = json_object_get(j, "grad");
    c.n_grad = (long)json_array_size(g);
    for (long i = 0; i < c.n_grad && i < MAX_ELEMS; i++) c.grad[i] = json_number_value(json_array_get(g, (size_t)i));
    return c;
}

static void free_case(dcase *c) {
    nb_tensor_free(c->student);
    nb_tensor_free(c->teacher);
    nb_tensor_free(c->target);
}

static nb_tensor *call(const dcase *c) {
    return nb_distill_loss(c->student, c->teacher, c->target, c->temperature, c->alpha, &c->hard);
}

/* Loss and gradient against torch; the teacher requires grad and must get none. */
static void run_golden(const dcase *c, bool scoped) {
    char what[160];
    nb_set_requires_grad(c->student, true);
    nb_set_requires_grad(c->teacher, true);
    size_t before = nb_alloc_stats_get().bytes_live;
    if (scoped) nb_scope_begin();
    nb_tensor *loss = call(c);
    snprintf(what, sizeof what, "%s%s: loss", c->name, scoped ? "" : " (no scope)");
    CHECK_TENSOR(what, loss, &c->loss, 1, ATOL, RTOL);
    if (loss) {
        CHECK_EQ_INT(nb_ndim(loss), 0);
        CHECK_EQ_INT(nb_backward(loss), NB_OK);
        snprintf(what, sizeof what, "%s%s: grad of the student's logits", c->name, scoped ? "" : " (no scope)");
        CHECK_TENSOR(what, nb_grad(c->student), c->grad, c->n_grad, ATOL, RTOL);
        if (nb_grad(c->teacher)) CHECK_FAIL_("%s: the teacher's logits got a gradient", c->name);
        else check_passed_++;
    }
    if (scoped) nb_scope_end();
    else nb_tensor_free(loss);
    nb_clear_grad(c->student);
    nb_clear_grad(c->teacher);
    nb_set_requires_grad(c->student, false);
    nb_set_requires_grad(c->teacher, false);
    if (!scoped) CHECK_BYTES_BACK(c->name, before);
}

/* The loss in double from a float32 forward with recording off. */
static double loss_at(const dcase *c) {
    double v = NAN;
    nb_scope_begin();
    NB_NO_GRAD {
        nb_tensor *loss = call(c);
        if (loss) v = nb_item(loss);
    }
    nb_scope_end();
    return v;
}

static void run_fd(const dcase *c) {
    int64_t n = nb_numel(c->student);
    float analytic[MAX_ELEMS];
    double numeric[MAX_ELEMS];
    nb_set_requires_grad(c->student, true);
    nb_scope_begin();
    nb_tensor *loss = call(c);
    bool ok = loss && nb_backward(loss) == NB_OK && nb_copy_to(nb_grad(c->student), analytic, n) == NB_OK;
    nb_scope_end();
    nb_clear_grad(c->student);
    nb_set_requires_grad(c->student, false);
    if (!ok) {
        CHECK_FAIL_("%s: no gradient [%s]", c->name, nb_error_message());
        return;
    }
    float *p = host_vals(c->student);
    for (int64_t e = 0; e < n; e++) {
        static const int ks[4] = {1, -1, 2, -2};
        double lk[4];
        float saved = p[e];
        for (int s = 0; s < 4; s++) {
            set_flat(c->student, e, (float)((double)saved + ks[s] * FD_STEP));
            lk[s] = loss_at(c);
        }
        set_flat(c->student, e, saved);
        numeric[e] = (8.0 * (lk[0] - lk[1]) - (lk[2] - lk[3])) / (12.0 * FD_STEP);
    }
    char what[160];
    snprintf(what, sizeof what, "%s: finite differences", c->name);
    CHECK_ARRAY(what, analytic, numeric, (long)n, FD_TOL + 1e-4 * fabs(c->loss), FD_TOL);
}

/* Each golden case: torch's loss and gradient, scoped and not, then finite differences. */
static void test_distill_loss_matches_torch_and_finite_differences(void) {
    json_error_t err;
    json_t *root = json_load_file(GOLDEN, 0, &err);
    if (!root) {
        CHECK_FAIL_("cannot read %s: %s (line %d); run from the repository root", GOLDEN, err.text, err.line);
        return;
    }
    const json_t *cases = json_object_get(root, "cases");
    CHECK(json_array_size(cases) >= 9);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        dcase c = case_of(json_array_get(cases, i));
        CHECK(c.student && c.teacher && c.target);
        run_golden(&c, true);
        run_golden(&c, false);
        run_fd(&c);
        free_case(&c);
    }
    json_decref(root);
}

/* alpha = 0 is the cross-entropy and alpha = 1 the soft term alone, T^2 KL. */
static void test_distill_loss_ends_are_its_two_terms(void) {
    nb_scope_begin();
    nb_manual_seed(5);
    nb_tensor *s = nb_randn(NB_SHAPE(6, 5)), *t = nb_mul_scalar(nb_randn(NB_SHAPE(6, 5)), 3.0f);
    nb_tensor *y = nb_from_int32((int32_t[]){0, 4, 2, 1, 3, 0}, NB_SHAPE(6));
    double ce = nb_item(nb_cross_entropy(s, y, NULL));
    CHECK_NEAR(nb_item(nb_distill_loss(s, t, y, 4.0f, 0.0f, NULL)), ce, 0, 0);
    nb_tensor *log_q = nb_log_softmax(nb_mul_scalar(s, 0.5f), 1), *p = nb_softmax(nb_mul_scalar(t, 0.5f), 1);
    double kl = nb_item(nb_kl_div_loss(log_q, p, NB_REDUCTION_BATCHMEAN, false));
    CHECK_NEAR(nb_item(nb_distill_loss(s, t, y, 2.0f, 1.0f, NULL)), 4.0 * kl, 1e-6, 1e-6);
    nb_scope_end();
}

static void test_distill_loss_refuses_bad_input(void) {
    nb_scope_begin();
    nb_tensor *s = nb_randn(NB_SHAPE(4, 10)), *y = nb_from_int32((int32_t[]){1, 2, 3, 4}, NB_SHAPE(4));
    nb_tensor *t5 = nb_randn(NB_SHAPE(4, 5)), *t = nb_randn(NB_SHAPE(4, 10));
    CHECK(!nb_distill_loss(s, t5, y, 4.0f, 0.9f, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "distill_loss: teacher logits [4,5] do not match the student's [4,10]");
    CHECK(!nb_distill_loss(nb_randn(NB_SHAPE(40)), nb_randn(NB_SHAPE(40)), y, 4.0f, 0.9f, NULL));
    CHECK_ERROR(NB_ERR_SHAPE, "student logits [40] must be [N, C]");
    CHECK(!nb_distill_loss(s, t, y, 0.0f, 0.9f, NULL));
    CHECK_ERROR(NB_ERR_ARG, "distill_loss: temperature must be finite and above 0, got 0");
    CHECK(!nb_distill_loss(s, t, y, -2.0f, 0.9f, NULL));
    CHECK_ERROR(NB_ERR_ARG, "temperature must be finite and above 0, got -2");
    CHECK(!nb_distill_loss(s, t, y, NAN, 0.9f, NULL));
    CHECK_ERROR(NB_ERR_ARG, "temperature");
    CHECK(!nb_distill_loss(s, t, y, INFINITY, 0.9f, NULL));
    CHECK_ERROR(NB_ERR_ARG, "temperature");
    CHECK(!nb_distill_loss(s, t, y, 4.0f, 1.5f, NULL));
    CHECK_ERROR(NB_ERR_ARG, "distill_loss: alpha must be in [0, 1], got 1.5");
    CHECK(!nb_distill_loss(s, t, y, 4.0f, -0.1f, NULL));
    CHECK_ERROR(NB_ERR_ARG, "alpha must be in [0, 1]");
    CHECK(!nb_distill_loss(s, t, y, 4.0f, NAN, NULL));
    CHECK_ERROR(NB_ERR_ARG, "alpha");
    CHECK(!nb_distill_loss(s, t, y, 4.0f, 0.9f, &(nb_ce_opts){.reduction = NB_REDUCTION_SUM}));
    CHECK_ERROR(NB_ERR_ARG, "the hard term's reduction must be mean");
    CHECK(!nb_distill_loss(s, nb_to_dtype(t, NB_I32), y, 4.0f, 0.9f, NULL));
    CHECK_ERROR(NB_ERR_DTYPE, "teacher logits must be float32");
    CHECK(!nb_distill_loss(s, t, nb_from_int32((int32_t[]){1, 2, 3, 10}, NB_SHAPE(4)), 4.0f, 0.9f, NULL));
    CHECK_ERROR(NB_ERR_ARG, "cross_entropy: target 10 at position 3 is out of range");
    CHECK(!nb_distill_loss(NULL, t, y, 4.0f, 0.9f, NULL));
    nb_error_clear();
    nb_scope_end();
}

/* ---------------------------------------------------------------- training with a teacher */

#define N_SAMPLES 96
#define N_IN 8
#define N_CLASSES 4
#define EPOCHS 6

/* The rule the labels follow: class = argmax of W x, W a fixed [N_CLASSES, N_IN]. */
static float rule(int c, int i) { return sinf(1.7f * (float)(c * N_IN + i) + 0.3f); }

static nb_dataset *make_data(void) {
    float x[N_SAMPLES * N_IN];
    int32_t y[N_SAMPLES];
    for (int k = 0; k < N_SAMPLES * N_IN; k++) x[k] = sinf(0.61f * (float)k) + 0.4f * cosf(0.23f * (float)k);
    for (int n = 0; n < N_SAMPLES; n++) {
        float best = -INFINITY;
        for (int c = 0; c < N_CLASSES; c++) {
            float v = 0;
            for (int i = 0; i < N_IN; i++) v += rule(c, i) * x[n * N_IN + i];
            if (v > best) best = v, y[n] = c;
        }
    }
    return nb_dataset_new(&(nb_dataset_desc){.n = N_SAMPLES, .sample_ndim = 1,
                                             .sample_shape = (int64_t[]){N_IN}, .x_f32 = x, .labels = y});
}

/* The perfect teacher: Linear(N_IN, outputs) computing 3 W x (rows past W's are zero), then,
 * with dropout, a Dropout(0.5) that eval mode turns off. */
static nb_module *make_teacher(int64_t outputs, bool dropout) {
    nb_module *lin = nb_linear_new(N_IN, outputs, true);
    float w[16 * N_IN] = {0};
    for (int c = 0; c < N_CLASSES && c < outputs; c++)
        for (int i = 0; i < N_IN; i++) w[c * N_IN + i] = 3.0f * rule(c, i);
    nb_tensor *src = nb_from_data(w, NB_SHAPE(outputs, N_IN));
    nb_copy(nb_module_param(lin, 0, NULL), src);
    nb_tensor_free(src);
    nb_tensor *b = nb_module_param(lin, 1, NULL), *zero = nb_zeros(NB_SHAPE(outputs));
    nb_copy(b, zero);
    nb_tensor_free(zero);
    if (!dropout) return lin;
    return nb_sequential_new(2, (nb_module *[]){lin, nb_dropout_new(0.5f)});
}

typedef struct {
    nb_dataset *data;
    nb_loader *train, *eval;
    nb_module *student;
    nb_optim *optim;
    nb_fit *fit;
} kd_run;

/* A student MLP N_IN-16-N_CLASSES (seeded) with SGD, on the data, under opts. */
static kd_run kd_run_new(const nb_fit_opts *opts) {
    kd_run r = {.data = make_data()};
    r.train = nb_loader_new(r.data, (nb_loader_opts){.batch_size = 16, .shuffle = true, .seed = 1});
    r.eval = nb_loader_new(r.data, (nb_loader_opts){.batch_size = 32});
    nb_manual_seed(11);
    r.student = nb_sequential_new(3, (nb_module *[]){nb_linear_new(N_IN, 16, true), nb_activation_new(NB_ACT_RELU, 0),
                                                     nb_linear_new(16, N_CLASSES, true)});
    nb_tensor *params[8];
    int n = nb_module_parameters(r.student, params, 8);
    r.optim = nb_sgd_new(n, params, (nb_sgd_opts){.lr = 0.1, .momentum = 0.9});
    r.fit = nb_fit_new(r.student, r.optim, NULL, r.train, r.eval, opts);
    return r;
}

static void kd_run_free(kd_run *r) {
    nb_fit_free(r->fit);
    nb_optim_free(r->optim);
    nb_module_free(r->student);
    nb_loader_free(r->train);
    nb_loader_free(r->eval);
    nb_dataset_free(r->data);
}

/* The student's weights, flattened (malloc'd). */
static float *weights_of(const nb_module *m, int64_t *n) {
    *n = nb_module_num_elements(m);
    float *w = malloc(sizeof *w * (size_t)*n);
    for (int i = 0, at = 0; i < nb_module_num_params(m); i++) {
        nb_tensor *p = nb_module_param(m, i, NULL);
        nb_copy_to(p, w + at, nb_numel(p));
        at += (int)nb_numel(p);
    }
    return w;
}

/* The student's weights after a run, as floats (malloc'd); *n gets their count. */
static float *trained_weights(const nb_fit_opts *opts, int64_t *n, double *accuracy) {
    kd_run r = kd_run_new(opts);
    CHECK(r.fit != NULL);
    *n = 0;
    float *w = NULL;
    if (r.fit && nb_fit_run(r.fit, NULL) == NB_OK) {
        w = weights_of(r.student, n);
        nb_eval_result ev;
        CHECK_EQ_INT(nb_evaluate(r.student, r.eval, 0.0f, &ev), NB_OK);
        *accuracy = ev.accuracy;
    } else {
        CHECK_FAIL_("the run failed: %s", nb_error_message());
    }
    kd_run_free(&r);
    return w;
}

static bool same_floats(const float *a, int64_t na, const float *b, int64_t nb) {
    return a && b && na == nb && !memcmp(a, b, sizeof *a * (size_t)na);
}

/* The student learns the teacher's rule from its soft labels alone (alpha 1); the teacher, left
 * in training mode with a dropout layer, runs in eval mode — the run equals one with a teacher
 * without dropout, bit for bit, so dropout neither ran nor drew random numbers — gets no
 * gradient, keeps its weights, and is in training mode again after the run. */
static void test_fit_with_a_teacher_runs_it_in_eval_mode_without_a_graph(void) {
    nb_module *plain = make_teacher(N_CLASSES, false), *dropping = make_teacher(N_CLASSES, true);
    nb_module_train(dropping, true);
    nb_tensor *tw = nb_module_param(dropping, 0, NULL);
    float before[N_CLASSES * N_IN], after[N_CLASSES * N_IN];
    nb_copy_to(tw, before, N_CLASSES * N_IN);
    int64_t n1, n2, n0;
    double acc1 = 0, acc2 = 0, acc0 = 0;
    float *w1 = trained_weights(&(nb_fit_opts){.epochs = EPOCHS, .teacher = plain, .temperature = 2, .alpha = 1},
                                &n1, &acc1);
    float *w2 = trained_weights(&(nb_fit_opts){.epochs = EPOCHS, .teacher = dropping, .temperature = 2, .alpha = 1},
                                &n2, &acc2);
    float *w0 = trained_weights(&(nb_fit_opts){.epochs = EPOCHS}, &n0, &acc0);
    CHECK(same_floats(w1, n1, w2, n2));
    CHECK(!same_floats(w1, n1, w0, n0)); /* the teacher did change the training */
    CHECK(acc1 >= 0.9);
    CHECK(nb_module_is_training(dropping));
    CHECK(nb_grad(tw) == NULL);
    nb_copy_to(tw, after, N_CLASSES * N_IN);
    CHECK(!memcmp(before, after, sizeof before));
    free(w0);
    free(w1);
    free(w2);
    nb_module_free(plain);
    nb_module_free(dropping);
}

/* alpha = 0 leaves the cross-entropy alone: the run equals one without a teacher, bit for bit. */
static void test_fit_with_alpha_zero_trains_as_without_a_teacher(void) {
    nb_module *teacher = make_teacher(N_CLASSES, false);
    int64_t na, nb;
    double acc_a, acc_b;
    float *a = trained_weights(&(nb_fit_opts){.epochs = 3, .teacher = teacher, .temperature = 4, .alpha = 0}, &na, &acc_a);
    float *b = trained_weights(&(nb_fit_opts){.epochs = 3}, &nb, &acc_b);
    CHECK(same_floats(a, na, b, nb));
    free(a);
    free(b);
    nb_module_free(teacher);
}

static void test_fit_new_refuses_bad_distillation_options(void) {
    nb_module *teacher = make_teacher(N_CLASSES, false);
    const struct {
        float temperature, alpha;
        const char *needle;
    } bad[] = {{0, 0.5f, "temperature must be finite and above 0, got 0"}, {-1, 0.5f, "got -1"},
               {NAN, 0.5f, "temperature"}, {INFINITY, 0.5f, "temperature"},
               {4, 1.01f, "alpha must be in [0, 1], got 1.01"}, {4, -0.5f, "alpha"}, {4, NAN, "alpha"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kd_run r = kd_run_new(&(nb_fit_opts){.epochs = 1, .teacher = teacher, .temperature = bad[i].temperature,
                                             .alpha = bad[i].alpha});
        CHECK(r.fit == NULL);
        CHECK_ERROR(NB_ERR_ARG, bad[i].needle);
        kd_run_free(&r);
    }
    /* without a teacher they are not read */
    kd_run r = kd_run_new(&(nb_fit_opts){.epochs = 1, .temperature = -1, .alpha = 7});
    CHECK(r.fit != NULL);
    kd_run_free(&r);
    nb_module_free(teacher);
}

/* A teacher with 5 outputs for a 4-class student: the first step fails naming both shapes, and
 * the student is left as it was. */
static void test_fit_with_a_teacher_of_another_width_fails_naming_it(void) {
    nb_module *teacher = make_teacher(5, false);
    kd_run r = kd_run_new(&(nb_fit_opts){.epochs = 2, .teacher = teacher, .temperature = 4, .alpha = 0.9f});
    CHECK(r.fit != NULL);
    if (r.fit) {
        float before[16 * N_IN], after[16 * N_IN];
        nb_copy_to(nb_module_param(r.student, 0, NULL), before, 16 * N_IN);
        CHECK_EQ_INT(nb_fit_run(r.fit, NULL), NB_ERR_SHAPE);
        CHECK_STR_CONTAINS(nb_error_message(),
                           "training step: distill_loss: teacher logits [16,5] do not match the student's [16,4]");
        nb_error_clear();
        CHECK_EQ_INT(nb_fit_info_get(r.fit).end, NB_FIT_FAILED);
        CHECK_EQ_INT(nb_fit_info_get(r.fit).epoch, 0);
        nb_copy_to(nb_module_param(r.student, 0, NULL), after, 16 * N_IN);
        CHECK(!memcmp(before, after, sizeof before));
    }
    kd_run_free(&r);
    nb_module_free(teacher);
}

/* nb_fit_measure_memory takes the distillation step (the teacher's forward included) and leaves
 * the run as it was: the measured run equals an unmeasured one. */
static void test_fit_measures_the_memory_of_a_distillation_step(void) {
    nb_module *teacher = make_teacher(N_CLASSES, false);
    nb_fit_opts o = {.epochs = 2, .teacher = teacher, .temperature = 3, .alpha = 0.7f};
    kd_run r = kd_run_new(&o);
    nb_fit_memory mem;
    CHECK_EQ_INT(nb_fit_measure_memory(r.fit, &mem), NB_OK);
    CHECK(mem.parameters == 4 * (size_t)nb_module_num_elements(r.student));
    CHECK_EQ_INT(nb_fit_run(r.fit, NULL), NB_OK);
    int64_t n, n_plain;
    float *measured = weights_of(r.student, &n);
    kd_run_free(&r);
    double acc;
    float *plain = trained_weights(&o, &n_plain, &acc);
    CHECK(same_floats(measured, n, plain, n_plain));
    free(measured);
    free(plain);
    nb_module_free(teacher);
}

static bool stop_after_two(const nb_fit_epoch *e, void *user) {
    (void)user;
    return e->epoch < 2;
}

/* A distillation run stopped after 2 of 4 epochs and resumed from its checkpoint, with the same
 * teacher, ends bit for bit where the uninterrupted run does (the checkpoint need not hold the
 * teacher: its forward pass draws no random numbers). */
static void test_fit_with_a_teacher_resumes_bit_for_bit(void) {
    if (!tmpdir_make("nabla_test_distill")) {
        CHECK_FAIL_("cannot make a scratch folder under /tmp");
        return;
    }
    mkdir(tpath("whole"), 0755);
    mkdir(tpath("part"), 0755);
    nb_module *teacher = make_teacher(N_CLASSES, false);
    nb_fit_opts o = {.epochs = 4, .teacher = teacher, .temperature = 2, .alpha = 0.7f, .out = tpath("whole")};
    kd_run whole = kd_run_new(&o);
    CHECK_EQ_INT(nb_fit_run(whole.fit, NULL), NB_OK);
    int64_t n_whole, n_resumed;
    float *w_whole = weights_of(whole.student, &n_whole);
    kd_run_free(&whole);

    char part[512];
    snprintf(part, sizeof part, "%s", tpath("part"));
    o.out = part;
    kd_run first = kd_run_new(&o);
    CHECK_EQ_INT(nb_fit_run(first.fit, &(nb_fit_callbacks){.on_epoch = stop_after_two}), NB_OK);
    CHECK_EQ_INT(nb_fit_info_get(first.fit).epoch, 2);
    kd_run_free(&first);
    kd_run resumed = kd_run_new(&o);
    CHECK_EQ_INT(nb_fit_resume(resumed.fit, tpath("part/checkpoint.safetensors")), NB_OK);
    CHECK_EQ_INT(nb_fit_run(resumed.fit, NULL), NB_OK);
    float *w_resumed = weights_of(resumed.student, &n_resumed);
    CHECK(same_floats(w_whole, n_whole, w_resumed, n_resumed));
    kd_run_free(&resumed);
    free(w_whole);
    free(w_resumed);
    nb_module_free(teacher);
    tmpdir_remove();
}

int main(void) {
    test_distill_loss_matches_torch_and_finite_differences();
    test_distill_loss_ends_are_its_two_terms();
    test_distill_loss_refuses_bad_input();
    test_fit_with_a_teacher_runs_it_in_eval_mode_without_a_graph();
    test_fit_with_alpha_zero_trains_as_without_a_teacher();
    test_fit_new_refuses_bad_distillation_options();
    test_fit_with_a_teacher_of_another_width_fails_naming_it();
    test_fit_measures_the_memory_of_a_distillation_step();
    test_fit_with_a_teacher_resumes_bit_for_bit();
    return check_summary();
}
