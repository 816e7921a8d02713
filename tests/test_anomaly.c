/*
 * test_anomaly.c — anomaly mode as torch's set_detect_anomaly: the first NaN or infinity an op
 * or a backward step makes fails it with a message naming the op, where it ran (the module's
 * path from the outermost module run, and its class) and, for a gradient, the parameter by its
 * state_dict name; nb_fit's detect_anomaly option.
 */
#include "check.h"
#include "nabla/autograd.h"
#include "nabla/module.h"

/* ---------------------------------------------------------------- user layers */

static nb_tensor *log_forward(nb_module *m, nb_tensor *x) {
    (void)m;
    return nb_log(x);
}
static const nb_module_class log_class = {.name = "LogLayer", .forward = log_forward};

/* y = x * sqrt(s), s a parameter: at s = 0 the forward is finite, d sqrt(s)/ds is not. */
typedef struct {
    nb_tensor *s;
} sqrt_scale_state;
static nb_tensor *sqrt_scale_forward(nb_module *m, nb_tensor *x) {
    sqrt_scale_state *st = nb_module_state(m, nb_module_class_of(m));
    nb_tensor *r = nb_sqrt(st->s), *y = r ? nb_mul(x, r) : NULL;
    nb_tensor_free(r);
    return y;
}
static const nb_module_class sqrt_scale_class = {.name = "SqrtScale", .forward = sqrt_scale_forward};

static nb_module *sqrt_scale_new(void) {
    nb_module *m = nb_module_new(&sqrt_scale_class, sizeof(sqrt_scale_state));
    sqrt_scale_state *st = nb_module_state(m, &sqrt_scale_class);
    st->s = nb_module_add_param(m, "s", NB_SHAPE(1)); /* zeros */
    return m;
}

/* The error is NB_ERR_VALUE and its message holds both parts (the sign printed for a NaN or an
 * infinity between them varies); clears it. */
static void check_anomaly(const char *before, const char *after) {
    CHECK_EQ_INT(nb_error_code(), NB_ERR_VALUE);
    CHECK_STR_CONTAINS(nb_error_message(), before);
    CHECK_STR_CONTAINS(nb_error_message(), after);
    nb_error_clear();
}

static void set_param(nb_module *m, const char *name, const float *v) {
    nb_tensor *t = nb_module_find(m, name);
    nb_copy_from(t, v, nb_numel(t));
}

/* ---------------------------------------------------------------- the library call */

static void the_mode_is_per_call_and_off_by_default(void) {
    CHECK(!nb_is_anomaly_enabled());
    CHECK(!nb_set_detect_anomaly(true));
    CHECK(nb_is_anomaly_enabled());
    CHECK(nb_set_detect_anomaly(false));
    CHECK(!nb_is_anomaly_enabled());
    /* off: a NaN passes through, as it does in torch */
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){-1}, NB_SHAPE(1));
    nb_tensor *y = nb_log(x);
    CHECK(y && isnan(nb_item(y)));
    nb_scope_end();
}

/* Linear then log of its negative output: the log in layer 1 (LogLayer) is named. */
static void a_nan_in_a_forward_names_the_op_and_the_layer(void) {
    nb_module *layers[] = {nb_linear_new(2, 2, true), nb_module_new(&log_class, 0)};
    nb_module *net = nb_sequential_new(2, layers);
    set_param(net, "0.weight", (float[]){1, 0, 0, -1});
    set_param(net, "0.bias", (float[]){0, 0});
    nb_set_detect_anomaly(true);
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){2, 3}, NB_SHAPE(1, 2));
    CHECK(nb_module_forward(net, x) == NULL);
    check_anomaly("log in layer 1 (LogLayer): the result is not finite (",
                  "nan at [0,1]); inputs float32 [1,2]");
    /* ops the outermost module runs itself are placed in the model */
    nb_tensor *neg = nb_from_data((float[]){-1}, NB_SHAPE(1));
    CHECK(nb_module_forward(layers[1], neg) == NULL);
    check_anomaly("log in model (LogLayer): the result is not finite (", "nan at [0])");
    nb_scope_end();
    nb_set_detect_anomaly(false);
    nb_module_free(net);
}

/* Weights that overflow: the Linear of layer 0 makes an infinity. */
static void an_infinity_from_the_weights_names_the_linear(void) {
    nb_module *layers[] = {nb_linear_new(2, 2, true), nb_activation_new(NB_ACT_RELU, 0),
                           nb_linear_new(2, 1, true)};
    nb_module *net = nb_sequential_new(3, layers);
    set_param(net, "0.weight", (float[]){3e38f, 3e38f, 1, 1});
    nb_set_detect_anomaly(true);
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){1, 1}, NB_SHAPE(1, 2));
    CHECK(nb_module_forward(net, x) == NULL);
    check_anomaly("linear in layer 0 (Linear): the result is not finite (", "inf at [0,0]); inputs "
                  "float32 [1,2], float32 [2,2], float32 [2]");
    nb_scope_end();
    nb_set_detect_anomaly(false);
    nb_module_free(net);
}

/* sqrt at 0: the forward is finite, its gradient is not; the parameter is named. */
static void an_infinite_gradient_names_the_parameter_the_op_and_the_layer(void) {
    nb_module *layers[] = {nb_linear_new(2, 2, true), sqrt_scale_new()};
    nb_module *net = nb_sequential_new(2, layers);
    nb_set_detect_anomaly(true);
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){1, 2}, NB_SHAPE(1, 2));
    nb_tensor *y = nb_module_forward(net, x);
    CHECK(y != NULL);
    CHECK_EQ_INT(nb_backward(nb_sum(y)), NB_ERR_VALUE);
    check_anomaly("backward: 1.s's gradient via SqrtBackward0 in layer 1 (SqrtScale) is not finite (",
                  "inf at [0]); inputs [1]");
    nb_scope_end();
    nb_set_detect_anomaly(false);
    nb_module_free(net);
}

/* The example: grad W1 = g h^T overflows while every value of the forward is finite. */
static void an_overflowing_weight_gradient_names_addmm_and_the_weight(void) {
    nb_module *inner[] = {nb_linear_new(1, 1, false), nb_linear_new(1, 1, false)};
    nb_module *outer[] = {nb_activation_new(NB_ACT_IDENTITY, 0), nb_sequential_new(2, inner)};
    nb_module *net = nb_sequential_new(2, outer);
    set_param(net, "1.0.weight", (float[]){1e20f});
    set_param(net, "1.1.weight", (float[]){1e-20f});
    nb_set_detect_anomaly(true);
    nb_scope_begin();
    nb_tensor *x = nb_from_data((float[]){1}, NB_SHAPE(1, 1));
    nb_tensor *loss = nb_mul_scalar(nb_sum(nb_module_forward(net, x)), 1e20f);
    CHECK(loss && isfinite(nb_item(loss)));
    CHECK_EQ_INT(nb_backward(loss), NB_ERR_VALUE);
    check_anomaly("backward: 1.1.weight's gradient via AddmmBackward0 in layer 1.1 (Linear) is not "
                  "finite (", "inf at [0,0]); inputs [1,1], [1,1]");
    nb_scope_end();
    nb_set_detect_anomaly(false);
    nb_module_free(net);
}

/* ---------------------------------------------------------------- nb_fit's detect_anomaly */

/* A net whose last layer takes the log of a Linear's output, negative for some samples. */
static nb_status fit_log_net(bool detect, nb_fit_info *info) {
    float x[16 * 2];
    int32_t y[16];
    for (int i = 0; i < 32; i++) x[i] = (float)(i % 5) - 2;
    for (int i = 0; i < 16; i++) y[i] = i % 2;
    nb_dataset *ds = nb_dataset_new(&(nb_dataset_desc){.n = 16, .sample_ndim = 1,
                                                       .sample_shape = (int64_t[]){2}, .x_f32 = x,
                                                       .labels = y});
    nb_loader *ld = nb_loader_new(ds, (nb_loader_opts){.batch_size = 8});
    nb_module *layers[] = {nb_linear_new(2, 2, true), nb_module_new(&log_class, 0)};
    nb_module *net = nb_sequential_new(2, layers);
    set_param(net, "0.weight", (float[]){1, 0, 0, 1});
    nb_tensor *params[2];
    nb_module_parameters(net, params, 2);
    nb_optim *o = nb_sgd_new(2, params, (nb_sgd_opts){.lr = 0.1});
    nb_fit *f = nb_fit_new(net, o, NULL, ld, ld, &(nb_fit_opts){.epochs = 1, .detect_anomaly = detect});
    nb_status s = nb_fit_run(f, NULL);
    *info = nb_fit_info_get(f);
    nb_fit_free(f);
    nb_optim_free(o);
    nb_module_free(net);
    nb_loader_free(ld);
    nb_dataset_free(ds);
    return s;
}

/* Without the mode the loss is NaN and the run diverges; with it, the op and the layer that
 * made the NaN stop it, and the mode is off again after the run. */
static void fit_with_detect_anomaly_names_the_op_that_made_the_nan(void) {
    nb_fit_info info;
    CHECK_EQ_INT(fit_log_net(false, &info), NB_ERR_ARG);
    CHECK_EQ_INT(info.end, NB_FIT_DIVERGED);
    CHECK_ERROR(NB_ERR_ARG, "training diverged at step 1/2 of epoch 1: the loss is");
    CHECK_EQ_INT(fit_log_net(true, &info), NB_ERR_VALUE);
    CHECK_EQ_INT(info.end, NB_FIT_FAILED);
    check_anomaly("training step: log in layer 1 (LogLayer): the result is not finite (", "nan at [");
    CHECK(!nb_is_anomaly_enabled());
}

int main(void) {
    the_mode_is_per_call_and_off_by_default();
    a_nan_in_a_forward_names_the_op_and_the_layer();
    an_infinity_from_the_weights_names_the_linear();
    an_infinite_gradient_names_the_parameter_the_op_and_the_layer();
    an_overflowing_weight_gradient_names_addmm_and_the_weight();
    fit_with_detect_anomaly_names_the_op_that_made_the_nan();
    return check_summary();
}
