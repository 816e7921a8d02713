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
# Measured on a shared 2-core machine under a load average of 13 to 15 (other jobs running; the
# figures are indicative, rerun on a quiet machine), REPS=2 THREADS=1, the default shape:
#   MultiheadAttention       nabla 101.6 ms, torch 1.13 145.8 ms per forward+backward: ratio 1.44
#   TransformerEncoderLayer  nabla 145.7 ms, torch 1.13 301.9 ms: ratio 2.07
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
