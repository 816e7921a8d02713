/*
 * pipeline_bubble.c — the pipeline's measured bubble next to the theory's (p - 1) / (m + p - 1),
 * run by bench/pipeline_bubble.sh under `mpirun -np p`:
 *
 *   bench_pipeline_bubble MICRO_BATCHES gpipe|1f1b [STEPS]
 *
 * The model is 2 p equal hidden layers, each Linear(W, W) and ReLU, and a head of 10 classes, cut
 * by measured time (nb_pipe_opts.profile_input, on a micro-batch's rows), so that the stages take
 * about equal times, as the theory assumes: the head and the loss, a few per cent of a stage, no
 * longer make the last stage the slowest by themselves when a ReLU or a layer can move.  The
 * input requires grad, so that the first stage, too, computes its input's gradient (a stage
 * whose backward is shorter idles in GPipe's backward phase: the bubble would grow with the
 * imbalance, not with the schedule).  The bubble is measured as nb_pipe_stats says
 * (src/dist/pipeline.c): each stage's forward and backward in thread CPU time, replayed on a clock
 * per stage as if each had a core, the stages' mean idle share of the replayed step.  Rank 0
 * prints one line; the first step (warm-up) is not counted.
 */
#include "nabla.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WIDTH = 512, LAYERS_PER_STAGE = 2, ROWS = 1024 };

int main(int argc, char **argv) {
    if (nb_dist_init(&argc, &argv) != NB_OK) {
        fprintf(stderr, "bench_pipeline_bubble: %s\n", nb_error_message());
        return 1;
    }
    int micro = argc > 1 ? atoi(argv[1]) : 4, steps = argc > 3 ? atoi(argv[3]) : 5;
    nb_pipe_schedule schedule = argc > 2 && !strcmp(argv[2], "1f1b") ? NB_PIPE_1F1B : NB_PIPE_GPIPE;
    int p = nb_dist_size();
    nb_set_num_threads(1);
    nb_manual_seed(1);
    nb_module *m = nb_sequential_new(0, NULL);
    for (int i = 0; i < LAYERS_PER_STAGE * p; i++) {
        nb_sequential_append(m, nb_linear_new(WIDTH, WIDTH, true));
        nb_sequential_append(m, nb_activation_new(NB_ACT_RELU, 0));
    }
    nb_sequential_append(m, nb_linear_new(WIDTH, 10, true));
    nb_tensor *x = nb_randn(NB_SHAPE(ROWS, WIDTH)), *y = nb_zeros_dtype(NB_I32, NB_SHAPE(ROWS));
    nb_tensor *sample = x ? nb_slice(x, 0, 0, ROWS / micro, 1) : NULL;
    nb_pipe *pipe = sample ? nb_pipe_new(m, &(nb_pipe_opts){.micro_batches = micro, .schedule = schedule,
                                                            .profile_input = sample}) : NULL;
    if (!pipe || !y || nb_set_requires_grad(x, true) != NB_OK) {
        fprintf(stderr, "bench_pipeline_bubble: %s\n", nb_error_message());
        return 1;
    }
    for (int step = 0; step <= steps; step++) {
        if (step == 1) nb_pipe_stats_reset(pipe); /* the first step warms the allocator up */
        if (nb_pipe_step(pipe, x, y, NULL) != NB_OK) {
            fprintf(stderr, "bench_pipeline_bubble: %s\n", nb_error_message());
            return 1;
        }
    }
    nb_pipe_stats s = nb_pipe_stats_get(pipe);
    if (nb_dist_rank() == 0)
        printf("p=%d m=%-2d %-5s bubble measured %.3f theory %.3f (ratio %.2f); each op's own time: %.3f, "
               "step %.2f ms on dedicated cores\n", p, micro, schedule == NB_PIPE_1F1B ? "1f1b" : "gpipe",
               s.bubble, s.theory, s.theory > 0 ? s.bubble / s.theory : 0, s.bubble_each_op, 1e3 * s.step_seconds);
    nb_tensor_free(sample);
    nb_tensor_free(x);
    nb_tensor_free(y);
    nb_pipe_free(pipe);
    nb_module_free(m);
    nb_dist_finalize();
    return 0;
}
