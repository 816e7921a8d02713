/*
 * parity_mlp.c — the nabla side of the parity check: one epoch of the course's MLP
 * (Linear(784,64) ReLU Linear(64,64) ReLU Linear(64,10), cross-entropy, batch 64) on
 * Fashion-MNIST with SGD (lr 0.01, momentum 0.9), Adam (lr 1e-3) and AdamW (lr 1e-3,
 * weight_decay 0.01), from the initial weights and batch order that bench/parity.py wrote, and a
 * step-by-step comparison of the losses with torch's.
 *
 *   bench_parity_mlp REF.safetensors [DATA_DIR]      (bench/parity.sh runs both sides)
 *
 * REF holds 0.weight .. 4.bias (torch's init), "order" (I32 [60000]) and loss.sgd / loss.adam /
 * loss.adamw (F32 [938]), each also as loss.<optim>.nudged (see below).  Each batch is gathered
 * here in that order and divided by 255 in float32, as parity.py does, rather than taken from
 * nb_loader: the loader draws its own permutation and scales by multiplying with 1/255, which may
 * differ from torch's division in the last bit; this check is about the training arithmetic, so
 * the inputs are made bit-identical.  One thread, as on the torch side (whose OpenBLAS parity.py
 * also limits to one: with the same GEMM split, the forward pass matches torch's bit for bit).
 *
 * Figure: per optimiser, the largest |loss_nabla - loss_torch| / |loss_torch| over the epoch's
 * steps; goal <= 1e-4.  Beside it, the same figure for torch against itself started from weights
 * one ulp larger (loss.<optim>.nudged).  Where that control passes 1e-4 the trajectory amplifies
 * rounding differences exponentially, and whether nabla stays with torch turns on the last bit of
 * some op (nabla's log_softmax and exp are not torch's Sleef code, so bits differ from step 0's
 * backward on), so the line also gives the figure over torch's reproducible horizon: the steps
 * before the control first passes 1e-4.  Output: a human line per optimiser, then
 * "@parity optim=... max_rel=... step=... torch_drift=... horizon=... horizon_max_rel=... pass=0|1
 * horizon_pass=0|1" lines.  A miss is a figure, not a failure: the exit status is 0 once
 * measured, 1 on an error.
 *
 * Over the first 100 steps (goal 1e-6) a second control, loss.<optim>.relogged when REF has it:
 * torch against itself with the loss written as -(z - logsumexp z)[y].mean(), the same
 * mathematics with other last bits in the loss's gradient (see parity.py).  The
 * "@parity_first" line gives that control's figure beside nabla's.
 */
#include "nabla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define BATCH 64
#define FEATURES 784
#define GOAL 1e-4
#define FIRST_STEPS 100 /* and over the first 100 steps, before any trajectory parts: */
#define FIRST_GOAL 1e-6

static const char *const param_names[] = {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"};
#define N_PARAMS ((int)(sizeof param_names / sizeof *param_names))

typedef enum { OPT_SGD, OPT_ADAM, OPT_ADAMW, OPT_COUNT } optim_kind;
static const char *const optim_names[OPT_COUNT] = {"sgd", "adam", "adamw"};

static int fail(const char *what) {
    fprintf(stderr, "bench_parity_mlp: %s: %s\n", what, nb_error_message());
    return 1;
}

/* The MLP, named as torch's nn.Sequential of the same five modules, with the file's weights. */
static nb_module *load_model(const nb_safetensors *st) {
    nb_module *m = nb_sequential_new(5, (nb_module *[]){
        nb_linear_new(FEATURES, 64, true), nb_activation_new(NB_ACT_RELU, 0),
        nb_linear_new(64, 64, true), nb_activation_new(NB_ACT_RELU, 0), nb_linear_new(64, 10, true)});
    for (int i = 0; m && i < N_PARAMS; i++) {
        if (nb_safetensors_load_into(st, param_names[i], nb_module_find(m, param_names[i])) != NB_OK) {
            nb_module_free(m);
            return NULL;
        }
    }
    return m;
}

static nb_optim *make_optim(optim_kind k, nb_module *m) {
    nb_tensor *params[N_PARAMS];
    int n = nb_module_parameters(m, params, N_PARAMS);
    switch (k) {
    case OPT_SGD: return nb_sgd_new(n, params, (nb_sgd_opts){.lr = 0.01, .momentum = 0.9});
    case OPT_ADAM: return nb_adam_new(n, params, (nb_adam_opts){.lr = 1e-3});
    case OPT_ADAMW: return nb_adamw_new(n, params, (nb_adamw_opts){.lr = 1e-3, .weight_decay = 0.01});
    default: return NULL;
    }
}

/* The F32 [steps] tensor `name` of the file into out. */
static bool read_losses(const nb_safetensors *st, const char *name, int64_t steps, float *out) {
    nb_tensor *t = nb_safetensors_get(st, name);
    bool ok = t && nb_numel(t) == steps && nb_copy_to(t, out, steps) == NB_OK;
    nb_tensor_free(t);
    return ok;
}

/* max_i |a_i - b_i| / |b_i| and the step where it is reached (a NaN counts as the worst). */
static double max_rel_diff(const float *a, const float *b, int64_t n, int64_t *at) {
    double worst = 0;
    *at = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fabs((double)b[i]);
        if (!(d <= worst)) {
            worst = isnan(d) ? INFINITY : d;
            *at = i;
        }
    }
    return worst;
}

/* Samples order[start, start + b) as x [b, 784] (bytes / 255) and labels y [b]. */
static nb_status gather(const nb_dataset *ds, const int64_t *order, int64_t start, int64_t b, float *x,
                        int32_t *y) {
    for (int64_t i = 0; i < b; i++) {
        float label;
        nb_status s = nb_dataset_get(ds, order[start + i], x + i * FEATURES, &label);
        if (s != NB_OK) return s;
        for (int64_t k = 0; k < FEATURES; k++) x[i * FEATURES + k] /= 255.0f;
        y[i] = (int32_t)label;
    }
    return NB_OK;
}

/* Trains one epoch and writes each step's loss into losses[steps]. */
static nb_status train_epoch(nb_module *m, nb_optim *o, const nb_dataset *ds, const int64_t *order, int64_t n,
                             float *losses) {
    static float x[BATCH * FEATURES];
    static int32_t y[BATCH];
    for (int64_t start = 0, step = 0; start < n; start += BATCH, step++) {
        int64_t b = n - start < BATCH ? n - start : BATCH;
        nb_status s = gather(ds, order, start, b, x, y);
        if (s != NB_OK) return s;
        nb_scope_begin();
        nb_tensor *xt = nb_from_data(x, NB_SHAPE(b, FEATURES)), *yt = nb_from_int32(y, NB_SHAPE(b));
        nb_optim_zero_grad(o);
        nb_tensor *loss = nb_cross_entropy(nb_module_forward(m, xt), yt, NULL);
        s = loss ? nb_backward(loss) : nb_error_code();
        if (s == NB_OK) s = nb_optim_step(o);
        losses[step] = nb_item(loss);
        nb_scope_end();
        if (s != NB_OK) return s;
    }
    return NB_OK;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bench_parity_mlp REF.safetensors [DATA_DIR]\n"
                        "  REF is written by bench/parity.py (see bench/parity.sh)\n");
        return 1;
    }
    const char *data_dir = argc > 2 ? argv[2] : "/usr/share/datasets/fashion-mnist";
    nb_set_num_threads(1);

    nb_safetensors *st = nb_safetensors_open(argv[1]);
    if (!st) return fail(argv[1]);
    nb_dataset *ds = nb_mnist_read(data_dir, true);
    if (!ds) return nb_safetensors_close(st), fail(data_dir);
    int64_t n = nb_dataset_len(ds), steps = (n + BATCH - 1) / BATCH;

    /* The order as int64 indices (int32 in the file; read through floats, exact below 2^24). */
    nb_tensor *order_t = nb_safetensors_get(st, "order");
    int64_t *order = malloc((size_t)n * sizeof *order);
    float *tmp = malloc((size_t)n * sizeof *tmp), *ref = malloc((size_t)steps * sizeof *ref),
          *losses = malloc((size_t)steps * sizeof *losses);
    int rc = 0;
    if (!order_t || nb_numel(order_t) != n || !order || !tmp || !ref || !losses ||
        nb_copy_to(order_t, tmp, n) != NB_OK) {
        rc = fail("the batch order (\"order\", I32 of the training set's size)");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) order[i] = (int64_t)tmp[i];

    printf("parity: one epoch, %lld steps of %d, 1 thread, loss vs torch 1.13 (goal: max rel diff <= %.0e)\n",
           (long long)steps, BATCH, GOAL);
    for (int k = 0; k < OPT_COUNT && rc == 0; k++) {
        char key[32], key_nudged[40];
        snprintf(key, sizeof key, "loss.%s", optim_names[k]);
        snprintf(key_nudged, sizeof key_nudged, "%s.nudged", key);
        if (!read_losses(st, key, steps, ref)) {
            rc = fail(key);
            break;
        }
        if (!read_losses(st, key_nudged, steps, losses)) {
            rc = fail(key_nudged);
            break;
        }
        int64_t drift_at, horizon = 0;
        double drift = max_rel_diff(losses, ref, steps, &drift_at);
        while (horizon < steps &&
               fabs((double)losses[horizon] - ref[horizon]) <= GOAL * fabs((double)ref[horizon]))
            horizon++;
        nb_module *m = load_model(st);
        nb_optim *o = m ? make_optim((optim_kind)k, m) : NULL;
        nb_status s = o ? train_epoch(m, o, ds, order, n, losses) : nb_error_code();
        nb_optim_free(o);
        nb_module_free(m);
        if (s != NB_OK) {
            rc = fail(optim_names[k]);
            break;
        }
        /* the second control, over the first steps (absent from older REF files: -1) */
        int64_t first = steps < FIRST_STEPS ? steps : FIRST_STEPS, r_at;
        char key_relogged[48];
        snprintf(key_relogged, sizeof key_relogged, "%s.relogged", key);
        double relogged = read_losses(st, key_relogged, steps, tmp)
                              ? max_rel_diff(tmp, ref, first, &r_at) : -1;
        int64_t at, h_at, f_at;
        double worst = max_rel_diff(losses, ref, steps, &at);
        double h_worst = max_rel_diff(losses, ref, horizon, &h_at);
        /* the figure: the first FIRST_STEPS steps, goal 1e-6 */
        double f_worst = max_rel_diff(losses, ref, first, &f_at);
        bool pass = worst <= GOAL, h_pass = h_worst <= GOAL;
        printf("%-6s max rel diff %.3e at step %lld (nabla %.7f, torch %.7f)  %s\n", optim_names[k], worst,
               (long long)at, losses[at], ref[at], pass ? "PASS" : "MISS");
        printf("       torch vs itself from weights one ulp larger: %.3e at step %lld; over the %lld steps "
               "before it passes %.0e: %.3e  %s\n",
               drift, (long long)drift_at, (long long)horizon, GOAL, h_worst, h_pass ? "PASS" : "MISS");
        printf("@parity optim=%s max_rel=%.3e step=%lld torch_drift=%.3e horizon=%lld horizon_max_rel=%.3e "
               "goal=%.0e pass=%d horizon_pass=%d\n",
               optim_names[k], worst, (long long)at, drift, (long long)horizon, h_worst, GOAL, pass, h_pass);
        printf("       over the first %d steps: %.3e (goal <= %.0e)  %s\n", FIRST_STEPS, f_worst, FIRST_GOAL,
               f_worst <= FIRST_GOAL ? "PASS" : "MISS");
        if (relogged >= 0)
            printf("       torch vs itself with the loss as -(z - logsumexp z)[y].mean(), first %d steps: %.3e\n",
                   FIRST_STEPS, relogged);
        printf("@parity_first optim=%s steps=%d max_rel=%.3e goal=%.0e pass=%d torch_relogged=%.3e\n",
               optim_names[k], FIRST_STEPS, f_worst, FIRST_GOAL, f_worst <= FIRST_GOAL, relogged);
    }
done:
    free(order);
    free(tmp);
    free(ref);
    free(losses);
    nb_tensor_free(order_t);
    nb_dataset_free(ds);
    nb_safetensors_close(st);
    return rc;
}
