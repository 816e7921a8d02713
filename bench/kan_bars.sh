#!/bin/sh
# kan_bars.sh — issue 15's KAN bars that run in seconds, each line checked:
#   (a) f(x, y) = exp(sin(pi x) + y^2) on [-1, 1]^2 (1000 training and 250 test rows): a KAN
#       [2, 5, 1] trained with L-BFGS (pykan's settings) and the sparsity regularisation, pruned
#       (to [2, 1, 1]), made symbolic (`nabla kan fit --symbolic`): the formula, snapped, and the
#       symbolic model's and the formula's test RMSE; the bar: exp(sin(pi*x1) + x2^2), <= 1e-5;
#   (b) grid extension G = 3 ... 50 on [2, 1, 1] with L-BFGS (bench_kan_grid STEPS lbfgs SVG):
#       RMSE per G, the fitted slope, the log-log plot;
#   (c) five of the paper's toy functions, each by a KAN and by a tanh MLP of about as many
#       parameters, the same Adam + L-BFGS budget (bench_kan_toys STEPS): both test RMSEs;
#   (d) continual learning of five Gaussian peaks (example_13_kan_continual, which exits 1 when
#       the KAN does not keep the earlier peaks far better than the MLP): RMSE per region, SVG.
#
#   sh bench/kan_bars.sh [BUILD_DIR [OUT_DIR [SEED [STEPS]]]]   (defaults build, kan_bars, 1, 30)
#
# Measured: see README (Kolmogorov-Arnold networks).
set -eu
BUILD=${1:-build}
OUT=${2:-kan_bars}
SEED=${3:-1}
STEPS=${4:-30}
for b in nabla bench_kan_grid bench_kan_toys example_13_kan_continual; do
    [ -x "$BUILD/$b" ] || { echo "kan_bars.sh: $BUILD/$b not found; build it: make" >&2; exit 1; }
done
mkdir -p "$OUT"
awk 'BEGIN { srand(7); print "x,y,f"
             for (i = 0; i < 1250; i++) { x = 2 * rand() - 1; y = 2 * rand() - 1
                 printf "%.8f,%.8f,%.9f\n", x, y, exp(sin(3.14159265358979 * x) + y * y) } }' \
    > "$OUT/f.csv"
echo "== (a) [2,5,1] -> prune -> symbolic, L-BFGS $STEPS steps per stage, seed $SEED"
"$BUILD/nabla" kan fit "$OUT/f.csv" --header --width 2,5,1 --opt lbfgs --steps "$STEPS" \
    --lamb 0.01 --prune --prune-node 0.05 --symbolic --seed "$SEED" --threads 1 --out "$OUT/a" \
    | tee "$OUT/a.log"
formula=$(sed -n 's/^formula: //p' "$OUT/a.log")
sym=$(awk '/^symbolic width/ { print $NF }' "$OUT/a.log")
if [ "$formula" = "exp(sin(pi*x1) + x2^2)" ] && awk -v r="$sym" 'BEGIN { exit !(r <= 1e-5) }'; then
    echo "kan_bars (a): met: $formula, symbolic test RMSE $sym"
else
    echo "kan_bars (a): NOT met: '$formula', symbolic test RMSE $sym"
fi
echo "== (b) grid extension on [2,1,1], L-BFGS $STEPS steps per grid"
"$BUILD/bench_kan_grid" "$STEPS" lbfgs "$OUT/grid.svg" | tee "$OUT/b.log"
echo "kan_bars: plot written to $OUT/grid.svg"
echo "== (c) toy functions, KAN vs MLP of the same size, L-BFGS $STEPS steps per round"
"$BUILD/bench_kan_toys" "$STEPS" | tee "$OUT/c.log"
echo "== (d) continual learning, five peaks in five phases"
"$BUILD/example_13_kan_continual" 300 "$OUT/continual.svg" | tee "$OUT/d.log"
echo "kan_bars: plot written to $OUT/continual.svg"
