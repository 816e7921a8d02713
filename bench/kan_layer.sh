#!/bin/sh
# kan_layer.sh — issue 15's bar "KAN layer forward+backward (batch 1024, 64 -> 64, G = 10, k = 3)
# >= 3x a torch implementation of the same layer in the same script": bench_kan_layer (nabla's
# layer: the fused B-spline kernels and two GEMMs) and bench/torch_kan.py (the same layer in
# torch, tools/kan_torch.py) one after the other, same threads, and the ratio torch / nabla.
#
#   sh bench/kan_layer.sh [BUILD_DIR [REPS [THREADS]]]     (defaults build, 30, 1)
#
# Measured: see README (Kolmogorov-Arnold networks).
set -eu

BUILD=${1:-build}
REPS=${2:-30}
THREADS=${3:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
TORCH_PY=/usr/bin/python3 # Debian's interpreter: the one with torch, whatever is on PATH

if [ ! -x "$BUILD/bench_kan_layer" ]; then
    echo "kan_layer.sh: $BUILD/bench_kan_layer not found; build it: make" >&2
    exit 1
fi
if ! "$TORCH_PY" -c 'import torch' 2>/dev/null; then
    echo "kan_layer.sh: $TORCH_PY cannot import torch (apt-get install python3-torch)" >&2
    exit 1
fi
LOG=$(mktemp)
OPENBLAS_NUM_THREADS=1 "$BUILD/bench_kan_layer" "$REPS" "$THREADS" | tee "$LOG"
"$TORCH_PY" "$HERE/torch_kan.py" "$REPS" "$THREADS" | tee -a "$LOG"
awk '/^@kan_layer/ { split($2, a, "="); nabla = a[2] }
     /^@torch_kan/ { split($2, a, "="); torch = a[2] }
     END { printf "kan_layer: torch / nabla = %.2fx (goal >= 3x)\n", torch / nabla }' "$LOG"
rm -f "$LOG"
