#!/bin/sh
# attention.sh — MultiheadAttention and TransformerEncoderLayer forward + backward, nabla
# against torch 1.13 CPU on the same shapes and thread count, in one run: the medians of both
# and their ratios (torch's time / nabla's: above 1, nabla is faster).
#
#   sh bench/attention.sh [BUILD_DIR]        (default build; needs build/bench_attention)
#
# The environment may set SHAPE ("T B E HEADS", default "128 16 128 4"), REPS (default 5) and
# THREADS (default 2, for both).
#
# Measured on the idle 2-core machine, REPS=5, the default shape, per forward+backward:
#   THREADS=1  MultiheadAttention nabla 22.95 ms, torch 1.13 28.88 ms: ratio 1.26
#              TransformerEncoderLayer nabla 47.58 ms, torch 64.51 ms: ratio 1.36
#   THREADS=2  MultiheadAttention 10.90 against 65.30 ms (5.99); encoder layer 22.54 against
#              174.68 ms (7.75): torch on 2 threads is slower than on 1 here
set -eu
BUILD=${1:-build}
SHAPE=${SHAPE:-128 16 128 4}
REPS=${REPS:-5}
THREADS=${THREADS:-2}
# shellcheck disable=SC2086
nb=$("$BUILD/bench_attention" $SHAPE "$REPS" "$THREADS")
# shellcheck disable=SC2086
pt=$(/usr/bin/python3 "$(dirname "$0")/torch_attention.py" $SHAPE "$REPS" "$THREADS")
echo "$nb" | grep -v '^@'
echo "$pt" | grep -v '^@'
for what in mha encoder; do
  a=$(echo "$nb" | awk -v k="@ nabla_${what}_ms" 'index($0, k) == 1 {print $3}')
  b=$(echo "$pt" | awk -v k="@ torch_${what}_ms" 'index($0, k) == 1 {print $3}')
  awk -v w="$what" -v a="$a" -v b="$b" 'BEGIN { printf "%s ratio torch/nabla: %.2f (above 1: nabla faster)\n", w, b / a }'
done
