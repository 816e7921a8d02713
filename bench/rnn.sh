#!/bin/sh
# rnn.sh — LSTM forward + backward, nabla against torch 1.13 CPU on the same shapes and thread
# count, in one run: the medians of both and their ratio (torch's time / nabla's: above 1,
# nabla is faster).
#
#   sh bench/rnn.sh [BUILD_DIR]        (default build; needs build/bench_rnn)
#
# The environment may set SHAPE ("T B I H L", default "64 32 128 256 2"), REPS (default 5) and
# THREADS (default 2, for both).
#
# Measured on a shared 2-core machine under a load average of 11 (other jobs running; the
# figures are indicative, rerun on a quiet machine), REPS=3 THREADS=1, the default shape, CPU
# time per step (medians): nabla fused 278 ms, nabla composite 308 ms, torch 1.13 664 ms
# (ratio 2.39); wall-clock 1.55 s, 1.52 s and 6.57 s, mostly time spent descheduled.
# Earlier (load 16 to 19, wall-clock): 1 thread nabla 1286 ms, torch 2477 ms; 2 threads nabla
# 1067 ms, torch 14894 ms (torch's OpenMP threads wait on descheduled partners).
# Before each step's input projection was reached through halving slices (src/nn/recurrent.c),
# nabla took 7.1 s on 1 thread: T slices of the whole projection cost T whole-size gradients.
set -eu
BUILD=${1:-build}
SHAPE=${SHAPE:-64 32 128 256 2}
REPS=${REPS:-5}
THREADS=${THREADS:-2}
# shellcheck disable=SC2086
nb=$("$BUILD/bench_rnn" $SHAPE "$REPS" "$THREADS")
# shellcheck disable=SC2086
pt=$(/usr/bin/python3 "$(dirname "$0")/torch_rnn.py" $SHAPE "$REPS" "$THREADS")
echo "$nb" | grep -v '^@'
echo "$pt" | grep -v '^@'
a=$(echo "$nb" | awk '/^@ nabla_lstm_ms/ {print $3}')
b=$(echo "$pt" | awk '/^@ torch_lstm_ms/ {print $3}')
ac=$(echo "$nb" | awk '/^@ nabla_lstm_cpu_ms/ {print $3}')
bc=$(echo "$pt" | awk '/^@ torch_lstm_cpu_ms/ {print $3}')
awk -v a="$a" -v b="$b" -v ac="$ac" -v bc="$bc" 'BEGIN { printf "ratio torch/nabla (fused): %.2f wall, %.2f CPU time (above 1: nabla faster)\n", b / a, bc / ac }'
