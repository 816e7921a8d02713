#!/bin/sh
# dist_train_pp_matches.sh NABLA MPIEXEC NP — `mpirun -np NP nabla train ... --parallel pipeline`
# (the MLP's layers cut into NP stages, each batch in 4 micro-batches) writes OUT/model.safetensors,
# the whole model, as one process writes it with the same flags: every weight within 1e-5 of the
# largest, plus 1e-5 relative; rank 0 alone prints, with the bubble measured and in theory.  Then
# the stages' checkpoints resume (1 epoch, stopped, resumed for the second, byte for byte where
# the 2-epoch run ends, on 1F1B), and the refusals: micro-batches below 1 or above the batch,
# a last batch too small to cut, too few layers with parameters for the stages, --sync-bn, the
# pipeline flags without it.  The data: a small MNIST-format set of random pixels.
set -eu
nabla=$1 mpiexec=$2 np=$3
tmp=$(mktemp -d /tmp/nabla-dist-pp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "dist_train_pp_matches: $*" >&2; exit 1; }
. "$(dirname "$0")/same_model.sh"
. "$(dirname "$0")/random_idx.sh"
random_idx "$tmp/data" 1280 64
# 4 stages need 4 layers: the course MLP with a third hidden layer (Linear, ReLU x3, Linear: 7)
flags="--data $tmp/data --batch 64 --sched none --threads 1 --seed 3 --model 784-64-64-32-10"
mpi() { "$mpiexec" --allow-run-as-root --oversubscribe -np "$np" "$nabla" train $flags "$@"; }
run() { # run NAME ARGS...: mpirun -np NP nabla train --parallel pipeline
    name=$1; shift
    # shellcheck disable=SC2086 # the flags are meant to split
    mpi --parallel pipeline "$@" > "$tmp/$name.txt" 2> "$tmp/$name.err" ||
        { cat "$tmp/$name.txt" "$tmp/$name.err"; fail "$name failed"; }
}
refused() { # refused WHY ARGS...: the run fails, saying WHY
    why=$1; shift
    # shellcheck disable=SC2086
    if mpi --epochs 1 --out "$tmp/refused" "$@" > "$tmp/refused.txt" 2>&1; then cat "$tmp/refused.txt"; fail "$* was not refused"; fi
    grep -q -- "$why" "$tmp/refused.txt" || { cat "$tmp/refused.txt"; fail "$* was refused without saying '$why'"; }
}
# shellcheck disable=SC2086
"$nabla" train $flags --epochs 2 --out "$tmp/one" > "$tmp/one.txt" 2>&1 || { cat "$tmp/one.txt"; fail "one process failed"; }
run pp --epochs 2 --micro-batches 4 --out "$tmp/pp"
[ "$(grep -c '^wrote ' "$tmp/pp.txt")" -eq 1 ] || { cat "$tmp/pp.txt"; fail "not rank 0 alone printed"; }
grep -q "^pipeline: $np stages, 4 micro-batches, gpipe: bubble .* measured .* in theory" "$tmp/pp.txt" ||
    { cat "$tmp/pp.txt"; fail "no bubble printed"; }
[ -f "$tmp/pp/shard-$((np - 1))-of-$np/checkpoint.safetensors" ] || fail "no checkpoint of the last rank's stage"
# the per-epoch figures are every stage's together: one process's, to the printed digits but the last
one_loss=$(grep '^epoch 2/2  train' "$tmp/one.txt" | awk '{print $10}')
pp_loss=$(grep '^epoch 2/2  train' "$tmp/pp.txt" | awk '{print $10}')
awk -v a="$one_loss" -v b="$pp_loss" 'BEGIN { d = a - b; exit !(d < 2e-4 && d > -2e-4) }' ||
    fail "the test loss $pp_loss is not one process's $one_loss"

same_model dist_train_pp_matches "$tmp/one/model.safetensors" "$tmp/pp/model.safetensors" ||
    fail "$np stages and one process trained different models"

# one process loads the whole model
"$nabla" eval "$tmp/pp/model.safetensors" --data "$tmp/data" > "$tmp/eval.txt" 2>&1 || { cat "$tmp/eval.txt"; fail "one process cannot load the whole model"; }

# resume, on 1F1B: each rank its stage's checkpoint
run whole --epochs 2 --pipe-schedule 1f1b --out "$tmp/whole"
run first --epochs 2 --pipe-schedule 1f1b --stop-after 1 --out "$tmp/resumed"
run second --epochs 2 --pipe-schedule 1f1b --out "$tmp/resumed" --resume "$tmp/resumed/checkpoint.safetensors"
cmp "$tmp/whole/model.safetensors" "$tmp/resumed/model.safetensors" || fail "the resumed run ends elsewhere"
echo "dist_train_pp_matches: the resumed run ends byte for byte where the whole run does"

refused "micro-batches" --parallel pipeline --micro-batches 0
refused "more than the --batch 64 rows" --parallel pipeline --micro-batches 65
refused "fewer than the 8 micro-batches" --parallel pipeline --micro-batches 8 --limit 1220
refused "sync-bn needs --parallel data" --parallel pipeline --sync-bn --batchnorm
refused "need as many layers with parameters" --parallel pipeline --model 784-10
refused "need --parallel pipeline" --parallel tensor --micro-batches 2
echo "dist_train_pp_matches: the refusals say why"
