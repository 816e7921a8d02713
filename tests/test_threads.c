/*
 * test_threads.c — what nabla.h promises about threads: the error, the scopes, the RNG and the
 * no-grad switch are per thread, so two threads may each train a model of their own at the same
 * time, and each gets exactly the numbers it gets alone.
 */
#include "check.h"

#include <pthread.h>
#include <string.h>

enum { STEPS = 30 };

typedef struct {
    uint64_t seed;
    float losses[STEPS];
    nb_status status;
} training_run;

/* A seeded MLP fitted to a seeded regression target with SGD and momentum, inside scopes. */
static void *train_one(void *arg) {
    training_run *r = arg;
    nb_manual_seed(r->seed);
    nb_module *layers[] = {nb_linear_new(8, 16, true), nb_activation_new(NB_ACT_TANH, 0),
                           nb_linear_new(16, 1, true)};
    nb_module *model = nb_sequential_new(3, layers);
    nb_tensor *params[4];
    int n = nb_module_parameters(model, params, 4);
    nb_optim *opt = nb_sgd_new(n, params, (nb_sgd_opts){.lr = 0.05f, .momentum = 0.9f});
    nb_tensor *x = nb_randn(NB_SHAPE(32, 8));
    nb_tensor *y = nb_randn(NB_SHAPE(32, 1));
    r->status = model && opt && x && y ? NB_OK : nb_error_code();
    for (int s = 0; s < STEPS && r->status == NB_OK; s++) {
        nb_scope_begin();
        nb_optim_zero_grad(opt);
        nb_tensor *loss = nb_mse_loss(nb_module_forward(model, x), y, NB_REDUCTION_MEAN);
        r->status = loss ? nb_backward(loss) : nb_error_code();
        if (r->status == NB_OK) r->status = nb_optim_step(opt);
        r->losses[s] = nb_item(loss);
        nb_scope_end();
    }
    nb_tensor_free(x);
    nb_tensor_free(y);
    nb_optim_free(opt);
    nb_module_free(model);
    nb_release_memory();
    return NULL;
}

static void two_threads_training_two_models_get_the_numbers_each_gets_alone(void) {
    training_run alone[2] = {{.seed = 1}, {.seed = 2}}, together[2] = {{.seed = 1}, {.seed = 2}};
    train_one(&alone[0]);
    train_one(&alone[1]);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) CHECK_EQ_INT(pthread_create(&t[i], NULL, train_one, &together[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(together[i].status, NB_OK);
        CHECK(together[i].losses[STEPS - 1] < together[i].losses[0]); /* it trained */
        CHECK(memcmp(together[i].losses, alone[i].losses, sizeof alone[i].losses) == 0); /* bit for bit */
    }
}

static void *end_a_scope_never_begun(void *status) {
    *(nb_status *)status = nb_scope_end();
    return NULL;
}

static void an_error_in_one_thread_is_not_seen_by_another(void) {
    nb_error_clear();
    nb_status there = NB_OK;
    pthread_t t;
    CHECK_EQ_INT(pthread_create(&t, NULL, end_a_scope_never_begun, &there), 0);
    pthread_join(t, NULL);
    CHECK_EQ_INT(there, NB_ERR_SCOPE);
    CHECK_EQ_INT(nb_error_code(), NB_OK);
}

int main(void) {
    two_threads_training_two_models_get_the_numbers_each_gets_alone();
    an_error_in_one_thread_is_not_seen_by_another();
    return check_summary();
}
