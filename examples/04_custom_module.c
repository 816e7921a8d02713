/*
 * 04_custom_module.c — a module of your own, as a torch user subclasses nn.Module: a small
 * attention block with three inputs (queries, keys, values) and two outputs (the result and
 * the attention weights), its own parameters, a child layer and a buffer.  It is checked
 * against finite differences, then trained on a tiny synthetic task — find the value whose key
 * matches the query — that attention solves and an average cannot.  Run as
 *     ./example_04_custom_module [steps]
 * (300 by default: a second or so).  Only the public header is used.
 */
#include "nabla.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* class Attention(nn.Module):
 *     def __init__(self, dim):
 *         self.w_q = nn.Parameter(torch.empty(dim, dim))      # query projection
 *         self.w_k = nn.Parameter(torch.empty(dim, dim))      # key projection
 *         self.out = nn.Linear(dim, dim)                       # a child module
 *         self.register_buffer("batches_seen", torch.zeros(1, dtype=torch.int32))
 *     def forward(self, q, k, v):                              # q [N, 1, d], k v [N, T, d]
 *         scores = (q @ self.w_q.T) @ (k @ self.w_k.T).transpose(1, 2) / sqrt(d)
 *         weights = scores.softmax(-1)                         # [N, 1, T]
 *         return self.out(weights @ v), weights
 *     def extra_repr(self): return f"dim={self.dim}"
 *
 * In C the class is a struct of state (the fields torch keeps on self) and a descriptor
 * naming the class and its functions. */
typedef struct {
    int64_t dim;
    nb_tensor *w_q, *w_k, *batches_seen; /* owned by the module: handles, as self.w_q */
    nb_module *out;
} attention;

static nb_status attention_forward(nb_module *m, nb_tensor *const *in, nb_tensor **out);
static void attention_describe(const nb_module *m, nb_attrs *d);

static const nb_module_class attention_class = {
    .name = "Attention",
    .n_inputs = 3,  /* q, k, v */
    .n_outputs = 2, /* result, weights */
    .forward_n = attention_forward,
    .describe = attention_describe,
};

/* A forward is written with ops, so autograd derives its backward.  Each intermediate is freed
 * once used (the graph keeps what backward needs; inside a scope the call does nothing), and a
 * failing op gives NULL to the next, so one check at the end is enough. */
static nb_status attention_forward(nb_module *m, nb_tensor *const *in, nb_tensor **out) {
    attention *self = nb_module_state(m, &attention_class);
    nb_tensor *q = nb_linear(in[0], self->w_q, NULL), *k = nb_linear(in[1], self->w_k, NULL);
    nb_tensor *kt = nb_transpose(k, 1, 2);
    nb_tensor *dot = nb_matmul(q, kt);
    nb_tensor *scores = nb_mul_scalar(dot, 1.0f / sqrtf((float)self->dim));
    nb_tensor *weights = nb_softmax(scores, -1);
    nb_tensor *mixed = nb_matmul(weights, in[2]);
    out[0] = nb_module_forward(self->out, mixed);
    out[1] = weights;
    nb_tensor_free(q), nb_tensor_free(k), nb_tensor_free(kt), nb_tensor_free(dot);
    nb_tensor_free(scores), nb_tensor_free(mixed);
    if (!out[0] || !out[1]) return nb_error_code();
    if (nb_module_is_training(m)) /* a buffer: state that is saved but not trained */
        nb_set(self->batches_seen, NB_INDEX(0), nb_get(self->batches_seen, NB_INDEX(0)) + 1);
    return NB_OK;
}

/* What the repr prints inside the parentheses, and what an exporter reads: "dim=8". */
static void attention_describe(const nb_module *m, nb_attrs *d) {
    const attention *self = nb_module_state(m, &attention_class);
    nb_attrs_int(d, "dim", self->dim);
}

/* def __init__: parameters start as zeros, so they are initialised here, as torch's layers do. */
static nb_module *attention_new(int64_t dim) {
    nb_module *m = nb_module_new(&attention_class, sizeof(attention));
    attention *self = nb_module_state(m, &attention_class);
    if (!self) return NULL;
    self->dim = dim;
    self->w_q = nb_module_add_param(m, "w_q", NB_SHAPE(dim, dim));
    self->w_k = nb_module_add_param(m, "w_k", NB_SHAPE(dim, dim));
    self->batches_seen = nb_module_add_buffer(m, "batches_seen", NB_I32, NB_SHAPE(1));
    bool ok = self->w_q && self->w_k && self->batches_seen &&
              nb_init_xavier_uniform(self->w_q, 1.0f) == NB_OK &&
              nb_init_xavier_uniform(self->w_k, 1.0f) == NB_OK &&
              nb_module_add_child(m, "out", self->out = nb_linear_new(dim, dim, true)) == NB_OK;
    if (!ok) {
        nb_module_free(m); /* frees what was added */
        return NULL;
    }
    return m;
}

/* ---- the task: T slots of (key, value) per sample and a query that is one slot's key plus
 * noise; the target is that slot's value.  Keys and values are N(0, 1) in `DIM` dims. */
enum { DIM = 8, SLOTS = 4, BATCH = 64 };

typedef struct {
    nb_tensor *q, *k, *v, *target; /* [N, 1, d], [N, T, d], [N, T, d], [N, 1, d] */
} batch;

static batch make_batch(void) {
    batch b = {nb_randn(NB_SHAPE(BATCH, 1, DIM)), nb_randn(NB_SHAPE(BATCH, SLOTS, DIM)),
               nb_randn(NB_SHAPE(BATCH, SLOTS, DIM)), nb_zeros(NB_SHAPE(BATCH, 1, DIM))};
    nb_tensor *pick = nb_rand(NB_SHAPE(BATCH));
    float *q = nb_data(b.q), *k = nb_data(b.k), *v = nb_data(b.v), *t = nb_data(b.target);
    for (int n = 0; n < BATCH; n++) {
        int slot = (int)(nb_data(pick)[n] * SLOTS);
        for (int i = 0; i < DIM; i++) {
            q[n * DIM + i] = k[(n * SLOTS + slot) * DIM + i] + 0.1f * q[n * DIM + i];
            t[n * DIM + i] = v[(n * SLOTS + slot) * DIM + i];
        }
    }
    nb_tensor_free(pick);
    return b;
}

/* loss = mse(model(q, k, v)[0], target); the weights output is not used by the loss. */
static nb_tensor *loss_of(nb_module *model, const batch *b) {
    nb_tensor *out[2];
    if (nb_module_forward_n(model, 3, (nb_tensor *[]){b->q, b->k, b->v}, 2, out) != NB_OK) return NULL;
    return nb_mse_loss(out[0], b->target, NB_REDUCTION_MEAN);
}

/* The gradient of w_q from backward against central differences (h = 1e-2, in float32): the
 * worst relative difference over its entries. */
static double gradient_check(nb_module *model, const batch *b) {
    nb_module_train(model, false); /* evaluation only: the buffer does not count these */
    nb_tensor *w = nb_module_find(model, "w_q");
    nb_scope_begin();
    nb_backward(loss_of(model, b));
    nb_scope_end();
    float *p = nb_data(w), *g = nb_data(nb_grad(w)), h = 1e-2f;
    double worst = 0;
    for (int64_t i = 0; i < nb_numel(w); i++) {
        float keep = p[i], up, down;
        nb_scope_begin();
        p[i] = keep + h;
        up = nb_item(loss_of(model, b));
        p[i] = keep - h;
        down = nb_item(loss_of(model, b));
        p[i] = keep;
        nb_scope_end();
        double fd = ((double)up - down) / (2.0 * h);
        worst = fmax(worst, fabs(fd - g[i]) / (1e-3 + fabs(fd)));
    }
    nb_module_train(model, true);
    return worst;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 300;
    nb_manual_seed(0);

    nb_module *model = attention_new(DIM);
    if (!model) {
        fprintf(stderr, "cannot build the model: %s\n", nb_error_message());
        return 1;
    }
    nb_module_fprint(stdout, model); /* Attention(\n  dim=8\n  (out): Linear(...)\n) */
    for (int i = 0; i < nb_module_num_params(model); i++) {
        const char *name;
        nb_tensor *p = nb_module_param(model, i, &name);
        printf("  %-12s %lld values\n", name, (long long)nb_numel(p)); /* w_q w_k out.weight out.bias */
    }

    /* gradcheck before training: autograd through the class's forward is right */
    batch check = make_batch();
    double err = gradient_check(model, &check);
    printf("gradient check of w_q: worst relative difference %.2g\n", err);

    /* optimizer = torch.optim.Adam(model.parameters(), lr=1e-2); the usual loop */
    nb_tensor *params[4];
    int n = nb_module_parameters(model, params, 4);
    nb_optim *opt = nb_adam_new(n, params, (nb_adam_opts){.lr = 1e-2});
    float first = NAN, last = NAN;
    for (int step = 0; step < steps; step++) {
        nb_scope_begin();
        batch b = make_batch(); /* a fresh batch each step: made in the scope, freed with it */
        nb_optim_zero_grad(opt);
        nb_tensor *loss = loss_of(model, &b);
        nb_backward(loss);
        nb_optim_step(opt);
        last = nb_item(loss);
        if (step == 0) first = last;
        if (step % 50 == 0 || step == steps - 1) printf("step %4d  loss %.4f\n", step, last);
        nb_scope_end();
    }

    /* what it learned: the weights put on the slot the query came from */
    nb_module_train(model, false);
    double on_target = 0;
    NB_NO_GRAD {
        nb_scope_begin();
        batch b = make_batch();
        nb_tensor *out[2];
        nb_module_forward_n(model, 3, (nb_tensor *[]){b.q, b.k, b.v}, 2, out);
        nb_tensor *best = nb_argmax(out[1], -1, false); /* [N, 1] int32 */
        for (int i = 0; i < BATCH; i++) {
            int slot = (int)nb_get(best, NB_INDEX(i, 0));
            float match = 0;
            for (int j = 0; j < DIM; j++)
                match += fabsf(nb_get(b.v, NB_INDEX(i, slot, j)) - nb_get(b.target, NB_INDEX(i, 0, j)));
            on_target += match == 0;
        }
        nb_scope_end();
    }
    printf("batches seen (a buffer): %g; attention on the right slot: %.0f%%\n",
           nb_get(nb_module_find(model, "batches_seen"), NB_INDEX(0)), 100 * on_target / BATCH);

    nb_tensor_free(check.q), nb_tensor_free(check.k), nb_tensor_free(check.v), nb_tensor_free(check.target);
    nb_optim_free(opt);
    nb_module_free(model);
    /* the example is also a test: it fails unless backward is right and training worked */
    bool ok = err < 2e-2 && last < 0.5f * first && on_target >= 0.9 * BATCH;
    if (!ok) fprintf(stderr, "example_04: gradient check %.2g, loss %.4f -> %.4f, %.0f of %d on target\n",
                     err, first, last, on_target, BATCH);
    return ok ? 0 : 1;
}
