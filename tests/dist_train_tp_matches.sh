#!/bin/sh
# dist_train_tp_matches.sh NABLA MPIEXEC NP — `mpirun -np NP nabla train ... --parallel tensor`
# (the course MLP's hidden pair cut over NP ranks) writes OUT/model.safetensors, the whole model,
# as one process writes it with the same flags: every weight within 1e-5 of the largest, plus
# 1e-5 relative; rank 0 alone prints.  Then the sharded checkpoints resume: 1 epoch, stopped,
# resumed for the second, ends byte for byte where the 2-epoch run ends.  The data: a small
# MNIST-format set of random pixels made here.
set -eu
nabla=$1 mpiexec=$2 np=$3
tmp=$(mktemp -d /tmp/nabla-dist-tp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "dist_train_tp_matches: $*" >&2; exit 1; }
. "$(dirname "$0")/same_model.sh"
. "$(dirname "$0")/random_idx.sh"
random_idx "$tmp/data" 1280 64
flags="--data $tmp/data --batch 64 --sched none --threads 1 --seed 3"
run() { # run NAME ARGS...: mpirun -np NP nabla train --parallel tensor
    name=$1; shift
    # shellcheck disable=SC2086 # the flags are meant to split
    "$mpiexec" --allow-run-as-root --oversubscribe -np "$np" "$nabla" train $flags --parallel tensor "$@" \
        > "$tmp/$name.txt" 2> "$tmp/$name.err" || { cat "$tmp/$name.txt" "$tmp/$name.err"; fail "$name failed"; }
}
# shellcheck disable=SC2086
"$nabla" train $flags --epochs 2 --out "$tmp/one" > "$tmp/one.txt" 2>&1 || { cat "$tmp/one.txt"; fail "one process failed"; }
run tp --epochs 2 --out "$tmp/tp"
[ "$(grep -c '^wrote ' "$tmp/tp.txt")" -eq 1 ] || { cat "$tmp/tp.txt"; fail "not rank 0 alone printed"; }
grep -q "ColumnParallelLinear" "$tmp/tp.err" || { cat "$tmp/tp.err"; fail "the model was not split"; }
[ -f "$tmp/tp/shard-$((np - 1))-of-$np/checkpoint.safetensors" ] || fail "no checkpoint of the last rank's shard"

same_model dist_train_tp_matches "$tmp/one/model.safetensors" "$tmp/tp/model.safetensors" ||
    fail "$np ranks and one process trained different models"

# one process loads the whole model
"$nabla" eval "$tmp/tp/model.safetensors" --data "$tmp/data" > "$tmp/eval.txt" 2>&1 || { cat "$tmp/eval.txt"; fail "one process cannot load the whole model"; }

# resume: each rank its shard's checkpoint
run first --epochs 2 --stop-after 1 --out "$tmp/resumed"
run second --epochs 2 --out "$tmp/resumed" --resume "$tmp/resumed/checkpoint.safetensors"
cmp "$tmp/tp/model.safetensors" "$tmp/resumed/model.safetensors" || fail "the resumed run ends elsewhere"
echo "dist_train_tp_matches: the resumed run ends byte for byte where the whole run does"
