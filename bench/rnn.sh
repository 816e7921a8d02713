#!/bin/sh
# rnn.sh — LSTM forward + backward, nabla against torch 1.13 CPU on the same shapes and thread
# count, in one run: the medians of both and their ratio (torch's time / nabla's: above 1,
# nabla is faster).
#
#   sh bench/rnn.sh [BUILD_DIR]        (default build; needs build/bench_rnn)
#
# The environment may set SHAPE ("T B I H L", default "64 32 128 256 2"), REPS (default 5) and
# THREADS (default 2, for both).
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
awk -v a="$a" -v b="$b" 'BEGIN { printf "ratio torch/nabla: %.2f (above 1: nabla faster)\n", b / a }'
