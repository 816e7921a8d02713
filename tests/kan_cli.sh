#!/bin/sh
# kan_cli.sh — `nabla kan fit` on a small CSV of f(x, y) = exp(sin(pi x) + y^2): it writes the
# model, the plots and a stage line per grid of the schedule with falling train RMSE; with
# --opt lbfgs --symbolic on sin(pi x) + y^2 it prints and writes that formula, which
# `nabla kan formula` prints again from the saved model (and refuses for a model that is not
# symbolic); and each bad input (a zero width, grid < 1, k < 1, a NaN in the CSV, an unknown
# column, an unknown optimiser, inputs that do not match the first width) is refused with a
# message naming it and leaves no output folder.
#
# usage: sh tests/kan_cli.sh PATH/TO/nabla    (ctest: the built nabla)
set -eu
nabla=$1
dir=$(mktemp -d /tmp/nabla_kan_XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() {
    echo "kan_cli: $*" >&2
    sed 's/^/    /' "$dir/out" "$dir/err" >&2
    exit 1
}

awk 'BEGIN { srand(3); print "x,noise,y,f"
             for (i = 0; i < 300; i++) { x = 2 * rand() - 1; y = 2 * rand() - 1
                 printf "%.6f,%.6f,%.6f,%.6f\n", x, rand(), y, exp(sin(3.14159265 * x) + y * y) } }' > "$dir/data.csv"

# a run: the two stages, then pruning and the refit; files written; RMSE falls with the grid
"$nabla" kan fit "$dir/data.csv" --header --inputs x,y --target f --width 2,3,1 \
    --grid-schedule 3,6 --steps 60 --lr 0.02 --lamb 0.001 --prune --threads 1 --out "$dir/run" \
    > "$dir/out" 2> "$dir/err" || fail "the run failed"
for f in model.safetensors kan.svg stages.csv edges/0_0_0.svg; do
    [ -s "$dir/run/$f" ] || fail "no $f"
done
[ "$(grep -c 'train RMSE' "$dir/out")" -eq 4 ] || fail "not 4 stage lines"
awk -F, 'NR == 2 { first = $4 } NR == 3 { second = $4 }
         END { exit !(second < first) }' "$dir/run/stages.csv" || fail "RMSE did not fall with the grid"

# L-BFGS and the symbolic formula, printed, written and read back from the model
awk 'BEGIN { srand(5); print "x,y,f"
             for (i = 0; i < 300; i++) { x = 2 * rand() - 1; y = 2 * rand() - 1
                 printf "%.7f,%.7f,%.8f\n", x, y, sin(3.14159265 * x) + y * y } }' > "$dir/sin.csv"
"$nabla" kan fit "$dir/sin.csv" --header --width 2,1 --opt lbfgs --steps 10 --symbolic \
    --threads 1 --out "$dir/sym" > "$dir/out" 2> "$dir/err" || fail "the symbolic run failed"
grep -q '^formula: sin(pi\*x1) + x2^2$' "$dir/out" || fail "not the formula sin(pi*x1) + x2^2"
grep -q 'latex: \\sin{\\left(\\pi x_{1} \\right)} + x_{2}^{2}' "$dir/out" || fail "no LaTeX"
awk '/^formula test RMSE/ { exit !($4 < 1e-4) }' "$dir/out" || fail "the formula's test RMSE is not < 1e-4"
[ "$(cat "$dir/sym/formula.txt")" = "sin(pi*x1) + x2^2" ] || fail "formula.txt"
[ -s "$dir/sym/formula.tex" ] || fail "no formula.tex"
"$nabla" kan formula "$dir/sym/model.safetensors" > "$dir/out" 2> "$dir/err" || fail "kan formula failed"
grep -q '^formula: sin(pi\*x1) + x2^2$' "$dir/out" || fail "kan formula: not the saved formula"
if "$nabla" kan formula "$dir/run/model.safetensors" > "$dir/out" 2> "$dir/err"; then
    fail "kan formula accepted a model that is not symbolic"
fi
grep -q "edge (0, 0, 0) is not symbolic" "$dir/err" || fail "kan formula: the numeric edge is not named"

# refusals: exit status 2 (flags) or 1 (data), the message, no output folder
refused() {
    want=$1
    shift
    if "$nabla" kan fit "$@" --out "$dir/bad" > "$dir/out" 2> "$dir/err"; then fail "accepted: $*"; fi
    grep -q -- "$want" "$dir/err" || fail "no '$want' for: $*"
    [ ! -e "$dir/bad" ] || fail "wrote $dir/bad for: $*"
}
refused "needs --width" "$dir/data.csv" --header --inputs x,y
refused "every width must be >= 1" "$dir/data.csv" --header --inputs x,y --width 2,0,1
refused "grid" "$dir/data.csv" --header --inputs x,y --width 2,1 --grid 0
refused "grid-schedule" "$dir/data.csv" --header --inputs x,y --width 2,1 --grid-schedule 5,0
refused "k" "$dir/data.csv" --header --inputs x,y --width 2,1 --k 0
refused "lbfgs" "$dir/data.csv" --header --inputs x,y --width 2,1 --opt sgd
refused "no column 'z'" "$dir/data.csv" --header --inputs x,z --width 2,1
refused "3 input columns but --width starts with 2" "$dir/data.csv" --header --width 2,1
refused "must end with 1" "$dir/data.csv" --header --inputs x,y --width 2,2
sed '5s/^[^,]*,/nan,/' "$dir/data.csv" > "$dir/nan.csv"
refused "nan.csv" "$dir/nan.csv" --header --inputs x,y --width 2,1
grep -q "line 5" "$dir/err" || fail "the NaN's line is not named"
echo "kan_cli: ok"
