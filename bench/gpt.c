/*
 * gpt.c — nabla's side of the GPT benchmarks (bench/gpt_parity.sh, bench/gpt.sh):
 *
 *   bench_gpt parity DIR
 *     trains the model of DIR/weights.safetensors (written by tools/gpt_torch.py parity, sizes
 *     in its "config" metadata) on DIR/batches.safetensors with nb_gpt_optim_new's AdamW and
 *     schedule and nb_gpt_train_step (clipping at 1), one thread, and compares each step's loss
 *     with torch's (DIR/torch_losses.safetensors): prints the worst steps and
 *     "@ max_rel_diff X" over all steps.
 *   bench_gpt speed THREADS STEPS BATCH [CONTEXT LAYERS HEADS WIDTH VOCAB]
 *     training steps after one warm-up step: "@ nabla_tokens_per_s", "@ nabla_tokens_per_cpu_s",
 *     "@ nabla_maxrss_kb"; then 64 tokens generated after a 16-token prompt with and without the
 *     key/value cache: "@ nabla_gen_ms_per_token_cache" and "@ nabla_gen_ms_per_token_nocache".
 */
#include "bench.h"

#include <math.h>
#include <nabla.h>
#include <sys/resource.h>

/* The integer after "key": in a flat JSON object (the "config" metadata); -1 if absent. */
static long long meta_int(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = json ? strstr(json, pat) : NULL;
    return p ? atoll(p + strlen(pat)) : -1;
}

static int fail(const char *what) {
    fprintf(stderr, "bench_gpt: %s: %s\n", what, nb_error_message());
    return 1;
}

/* Step i's x or y of a [N, B, T] int32 tensor, as a new [B, T] tensor. */
static nb_tensor *step_batch(const int32_t *all, int64_t i, int64_t b, int64_t t) {
    return nb_from_int32(all + i * b * t, 2, (int64_t[]){b, t});
}

static int parity(const char *dir) {
    char path[4096];
    nb_set_num_threads(1);
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    nb_safetensors *w = nb_safetensors_open(path);
    if (!w) return fail(path);
    const char *cfg = nb_safetensors_meta(w, "config");
    nb_gpt_opts o = {.vocab_size = meta_int(cfg, "vocab_size"), .context = meta_int(cfg, "context"),
                     .n_layer = meta_int(cfg, "n_layer"), .n_head = meta_int(cfg, "n_head"),
                     .n_embd = meta_int(cfg, "n_embd")};
    nb_safetensors_close(w);
    nb_module *m = nb_gpt_new(o);
    if (!m || nb_module_load(m, path) != NB_OK) return fail("the model");
    snprintf(path, sizeof path, "%s/batches.safetensors", dir);
    nb_safetensors *bs = nb_safetensors_open(path);
    nb_tensor *x = bs ? nb_safetensors_get(bs, "x") : NULL, *y = bs ? nb_safetensors_get(bs, "y") : NULL;
    if (!x || !y) return fail(path);
    int64_t n = nb_shape(x)[0], b = nb_shape(x)[1], t = nb_shape(x)[2];
    double lr = atof(nb_safetensors_meta(bs, "lr"));
    int warmup = atoi(nb_safetensors_meta(bs, "warmup"));
    nb_safetensors_close(bs);
    snprintf(path, sizeof path, "%s/torch_losses.safetensors", dir);
    nb_safetensors *ls = nb_safetensors_open(path);
    nb_tensor *want = ls ? nb_safetensors_get(ls, "loss") : NULL;
    nb_safetensors_close(ls);
    if (!want) return fail(path);
    size_t bytes = sizeof(int32_t) * (size_t)(n * b * t);
    int32_t *xs = malloc(bytes), *ys = malloc(bytes);
    float *ref = malloc(sizeof(float) * (size_t)n);
    nb_copy_to_bytes(x, xs, bytes), nb_copy_to_bytes(y, ys, bytes), nb_copy_to(want, ref, n);
    nb_sched *s = NULL;
    nb_optim *opt = nb_gpt_optim_new(m, &(nb_gpt_optim_opts){.steps = (int)n, .warmup = warmup, .lr = lr}, &s);
    if (!opt) return fail("the optimiser");
    double worst = 0;
    int64_t worst_at = 0;
    for (int64_t i = 0; i < n; i++) {
        double loss = 0;
        nb_scope_begin();
        nb_status st = nb_gpt_train_step(m, opt, s, step_batch(xs, i, b, t), step_batch(ys, i, b, t), 1.0f, &loss);
        nb_scope_end();
        if (st != NB_OK) return fail("training step");
        double rel = fabs(loss - ref[i]) / fabs(ref[i]);
        if (rel > worst) worst = rel, worst_at = i;
        if (i < 3 || i == n - 1 || i % 25 == 0)
            printf("step %3lld: nabla %.7f torch %.7f rel %.2e\n", (long long)i + 1, loss, ref[i], rel);
    }
    printf("max relative difference of the loss over %lld steps: %.3g (step %lld; goal <= 1e-4)\n",
           (long long)n, worst, (long long)worst_at + 1);
    printf("@ max_rel_diff %.3g\n", worst);
    free(xs), free(ys), free(ref);
    nb_tensor_free(x), nb_tensor_free(y), nb_tensor_free(want);
    nb_sched_free(s), nb_optim_free(opt), nb_module_free(m);
    return 0;
}

/* Milliseconds per generated token, with or without the cache. */
static double gen_ms(nb_module *m, bool no_cache) {
    int32_t prompt[16], out[64];
    for (int i = 0; i < 16; i++) prompt[i] = (int32_t)(i % 7);
    nb_gpt_sample_opts g = {.top_k = 10, .seed = 1, .no_cache = no_cache};
    double t0 = now_ns();
    if (nb_gpt_generate(m, prompt, 16, 64, &g, out) != NB_OK) return NAN;
    return (now_ns() - t0) / 1e6 / 64;
}

static int speed(int argc, char **argv) {
    int threads = atoi(argv[2]), steps = atoi(argv[3]);
    int64_t b = atoll(argv[4]), t = argc > 5 ? atoll(argv[5]) : 128;
    nb_gpt_opts o = {.context = t, .n_layer = argc > 6 ? atoll(argv[6]) : 4, .n_head = argc > 7 ? atoll(argv[7]) : 4,
                     .n_embd = argc > 8 ? atoll(argv[8]) : 128, .vocab_size = argc > 9 ? atoll(argv[9]) : 87};
    nb_set_num_threads(threads);
    nb_manual_seed(0);
    nb_module *m = nb_gpt_new(o);
    nb_sched *s = NULL;
    nb_optim *opt = m ? nb_gpt_optim_new(m, &(nb_gpt_optim_opts){.steps = steps + 1}, &s) : NULL;
    if (!opt) return fail("the model");
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(2 * b * t));
    for (int64_t i = 0; ids && i < 2 * b * t; i++) ids[i] = (int32_t)((i * 7919) % o.vocab_size);
    nb_tensor *x = ids ? step_batch(ids, 0, b, t) : NULL, *y = ids ? step_batch(ids, 1, b, t) : NULL;
    free(ids);
    double loss;
    if (!x || !y || nb_gpt_train_step(m, opt, s, x, y, 1.0f, &loss) != NB_OK) return fail("warm-up step");
    double wall = now_ns(), cpu = cpu_ns();
    for (int i = 0; i < steps; i++)
        if (nb_gpt_train_step(m, opt, s, x, y, 1.0f, &loss) != NB_OK) return fail("training step");
    wall = (now_ns() - wall) / 1e9, cpu = (cpu_ns() - cpu) / 1e9;
    double tokens = (double)steps * (double)(b * t);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("@ nabla_tokens_per_s %.1f\n@ nabla_tokens_per_cpu_s %.1f\n@ nabla_maxrss_kb %ld\n", tokens / wall,
           tokens / cpu, ru.ru_maxrss);
    printf("@ nabla_gen_ms_per_token_cache %.3f\n@ nabla_gen_ms_per_token_nocache %.3f\n", gen_ms(m, false),
           gen_ms(m, true));
    nb_tensor_free(x), nb_tensor_free(y);
    nb_sched_free(s), nb_optim_free(opt), nb_module_free(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "parity")) return parity(argv[2]);
    if (argc >= 5 && !strcmp(argv[1], "speed")) return speed(argc, argv);
    fprintf(stderr, "usage: bench_gpt parity DIR\n"
                    "       bench_gpt speed THREADS STEPS BATCH [CONTEXT LAYERS HEADS WIDTH VOCAB]\n");
    return 2;
}
