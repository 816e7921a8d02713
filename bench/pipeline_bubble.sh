#!/bin/sh
# pipeline_bubble.sh — the pipeline bar of issue 13: the measured bubble within 20 % of the
# theory's (p - 1) / (m + p - 1) for p = 2, 4 stages and m = 1, 4, 16 micro-batches, on GPipe and
# 1F1B (bench/pipeline_bubble.c: 2 p layers Linear(512, 512) ReLU and a head, cut by measured time
# (nb_pipe_opts.profile_input), batches of 1024 rows).
#
#   sh bench/pipeline_bubble.sh [BUILD_DIR] [STEPS]     (defaults: build, 5)
#
# How it is measured (src/dist/pipeline.c): each stage times its forwards and backwards in its
# thread's CPU time, which stops while the kernel runs another rank, so ranks oversubscribed on
# 2 cores do not distort it; the step's schedule is then replayed as if each stage had a core.
# "measured" replays each stage's median forward and backward time; "each op's own time" replays
# the raw times, which a loaded machine's jitter inflates (one op in a few twice as long delays
# the stages after it, and with m = 16 the theory's bubble is only 6 %).
#
# Measured on the idle 2-core machine (load below 2, three runs of 5 steps), measured / theory:
#   gpipe p=2  m=1 0.500/0.500  m=4 0.202/0.200  m=16 0.050-0.057/0.059   p=4  m=1 0.750/0.750  m=4 0.430/0.429  m=16 0.162-0.174/0.158
#   1f1b  p=2  m=1 0.500/0.500  m=4 0.205/0.200  m=16 0.049-0.068/0.059   p=4  m=1 0.750/0.750  m=4 0.430/0.429  m=16 0.153-0.164/0.158
# every case within 20 % of the theory in every run.  On a loaded machine (load 9, other jobs'
# builds) GPipe p=2 m=16 stayed at 1.8 to 2 times the theory: its first stage's backwards, run
# last on the 16 micro-batches' activations, took 1.6 to 2.0 ms against 1.2 ms on stage 1.  A
# rank that shares its core, and so its L1 and L2, with other processes is slowed in its CPU
# time too, which the replay cannot take out: measure this one on a quiet machine.
set -eu
BUILD=${1:-build}
STEPS=${2:-5}
bench=$BUILD/bench_pipeline_bubble
[ -x "$bench" ] || { echo "pipeline_bubble: build $bench first (make)" >&2; exit 1; }
export OMPI_MCA_btl_vader_single_copy_mechanism=none
fails=0
for p in 2 4; do
    for schedule in gpipe 1f1b; do
        for m in 1 4 16; do
            line=$(mpirun --allow-run-as-root --oversubscribe -np "$p" "$bench" "$m" "$schedule" "$STEPS")
            echo "$line"
            echo "$line" | awk '{ for (i = 1; i <= NF; i++) if ($i == "(ratio") r = $(i + 1) + 0 }
                               END { exit (r >= 0.8 && r <= 1.2) ? 0 : 1 }' || fails=$((fails + 1))
        done
    done
done
echo "pipeline_bubble: $fails of 12 outside 20 % of the theory"
