#!/bin/sh
# dist_train_matches.sh NABLA MPIEXEC [--sync-bn] — `mpirun -np 2 nabla train ... --parallel data`
# writes the model one process writes with the same flags (each rank trains on half of every
# batch of 64, the gradients averaged): every weight within 1e-5 of the largest, plus 1e-5
# relative.  Rank 0 alone prints and writes.  With --sync-bn the model has BatchNorm (one
# process: on the whole batch; 2 ranks: SyncBatchNorm over both halves), and its running
# statistics are compared too.  The data: a small MNIST-format set of random pixels made here.
set -eu
nabla=$1 mpiexec=$2 sync=${3:-}
# without --sync-bn the 2 ranks' gradients travel in buckets of 16 KiB (several, started during
# backward); with it, in torch's default 25 MiB (one)
buckets=--bucket-kb=16
[ -z "$sync" ] || buckets=
tmp=$(mktemp -d /tmp/nabla-dist.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "dist_train_matches: $*" >&2; exit 1; }

. "$(dirname "$0")/random_idx.sh"
random_idx "$tmp/data" 1280 64
# with BatchNorm, tanh rather than ReLU: BatchNorm puts many pre-activations near ReLU's kink, where
# a sum in another order (the statistics in two halves) now and then flips a unit's derivative
# between 0 and 1 and moves the first layer's weights by ~1e-5 (seen once in ten runs); tanh's
# derivative is continuous, so the two runs differ by rounding alone
flags="--data $tmp/data --epochs 2 --batch 64 --sched none --threads 1 --seed 3${sync:+ --batchnorm --act tanh}"
# shellcheck disable=SC2086 # the flags are meant to split
"$nabla" train $flags --out "$tmp/one" > "$tmp/one.txt" 2>&1 || { cat "$tmp/one.txt"; fail "one process failed"; }
# shellcheck disable=SC2086
"$mpiexec" --allow-run-as-root --oversubscribe -np 2 "$nabla" train $flags --out "$tmp/two" --parallel data $sync $buckets \
    > "$tmp/two.txt" 2> "$tmp/two.err" || { cat "$tmp/two.txt" "$tmp/two.err"; fail "2 ranks failed"; }
[ "$(grep -c '^wrote ' "$tmp/two.txt")" -eq 1 ] || { cat "$tmp/two.txt"; fail "not rank 0 alone printed"; }
[ "$(grep -c '^parameters: ' "$tmp/two.err")" -eq 1 ] || { cat "$tmp/two.err"; fail "not rank 0 alone reported"; }

# the float32 weights after each file's header (8-byte length, then JSON): the same names in the
# same order in both files
floats() { od -A n -v -t f4 -j $((8 + $(od -A n -t u8 -N 8 "$1"))) "$1" | tr -s ' ' '\n' | grep -v '^$'; }
floats "$tmp/one/model.safetensors" > "$tmp/one.f"
floats "$tmp/two/model.safetensors" > "$tmp/two.f"
[ "$(wc -l < "$tmp/one.f")" -eq "$(wc -l < "$tmp/two.f")" ] || fail "the models differ in size"
paste "$tmp/one.f" "$tmp/two.f" | awk '
    function abs(x) { return x < 0 ? -x : x }
    { a[NR] = $1; b[NR] = $2; if (abs($1) > big) big = abs($1) }
    END {
        for (i = 1; i <= NR; i++) { d = abs(a[i] - b[i]); if (d > worst) worst = d
            if (d > 1e-5 * big + 1e-5 * abs(a[i])) { printf "weight %d: %.9g vs %.9g\n", i, a[i], b[i]; bad = 1 } }
        printf "dist_train_matches: %d weights, largest difference %.3g (largest weight %.3g)\n", NR, worst, big
        exit bad }' || fail "2 ranks and one process trained different models"
if [ -n "$sync" ]; then # --sync-bn alone is a usage error, and so is a model without BatchNorm
    rc=0; "$nabla" train --data "$tmp/data" --sync-bn > "$tmp/alone.txt" 2>&1 || rc=$?
    [ $rc -eq 2 ] && grep -q -- '--sync-bn needs --parallel data' "$tmp/alone.txt" || fail "--sync-bn alone: status $rc"
    rc=0; "$mpiexec" --allow-run-as-root --oversubscribe -np 2 "$nabla" train --data "$tmp/data" --epochs 1 \
        --out "$tmp/nobn" --parallel data --sync-bn > "$tmp/nobn.txt" 2>&1 || rc=$?
    [ $rc -ne 0 ] && grep -q -- '--sync-bn: the model has no BatchNorm' "$tmp/nobn.txt" || fail "--sync-bn without BatchNorm: status $rc"
fi
