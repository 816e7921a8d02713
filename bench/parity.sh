#!/bin/sh
# parity.sh — per-step loss parity with PyTorch 1.13 over one epoch of the course's MLP on
# Fashion-MNIST, for SGD (momentum), Adam and AdamW: bench/parity.py (torch) writes the initial
# weights, the batch order and torch's losses; bench_parity_mlp (nabla) trains from the same and
# compares step by step.  Goal: max relative difference <= 1e-4 for each optimiser.
#
#   sh bench/parity.sh [BUILD_DIR [SEED ...]]     (default: build, seeds 0 1 2)
#
# Both sides run on one thread (OpenBLAS's included).  Each seed gives new weights and a new
# order.  Several seeds by default because a trajectory can amplify rounding: with seeds 0 and 1,
# SGD's loss parts by 3e-2 to 4e-2 late in the epoch between torch and torch itself started from
# weights one ulp larger (the control each optimiser's second line prints), so one seed's verdict
# can turn on the last bit of any op; the second line's figure, over the steps before that
# control passes 1e-4, is the one rounding alone decides.  A MISS is a figure: the exit status is
# 0 once everything was measured, 1 when something could not run.
set -eu

BUILD=${1:-build}
[ $# -gt 0 ] && shift
SEEDS=${*:-0 1 2}
HERE=$(cd "$(dirname "$0")" && pwd)
TORCH_PY=/usr/bin/python3 # Debian's interpreter: the one with torch, whatever is on PATH

if [ ! -x "$BUILD/bench_parity_mlp" ]; then
    echo "parity.sh: $BUILD/bench_parity_mlp not found; build it: cmake --build $BUILD --target bench_parity_mlp" >&2
    exit 1
fi
if ! "$TORCH_PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "parity.sh: $TORCH_PY cannot import torch and numpy (apt-get install python3-torch)" >&2
    exit 1
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

for seed in $SEEDS; do
    echo "== seed $seed"
    "$TORCH_PY" "$HERE/parity.py" --seed "$seed" "$TMP/ref.safetensors"
    "$BUILD/bench_parity_mlp" "$TMP/ref.safetensors"
done
