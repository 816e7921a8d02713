#!/bin/sh
# kan_grid.sh — issue 15's grid-extension demo: RMSE against G for a KAN [2, 1, 1] fitting
# exp(sin(pi x) + y^2) (bench/kan_grid.c says how), the table, the slope and a log-log plot.
#
#   sh bench/kan_grid.sh [BUILD_DIR [STEPS [LR [SVG]]]]   (defaults build, 300, 0.01, kan_grid.svg)
#
# Measured: see README (Kolmogorov-Arnold networks).
set -eu
BUILD=${1:-build}
STEPS=${2:-300}
LR=${3:-0.01}
SVG=${4:-kan_grid.svg}
if [ ! -x "$BUILD/bench_kan_grid" ]; then
    echo "kan_grid.sh: $BUILD/bench_kan_grid not found; build it: make" >&2
    exit 1
fi
"$BUILD/bench_kan_grid" "$STEPS" "$LR" "$SVG"
echo "kan_grid: plot written to $SVG"
