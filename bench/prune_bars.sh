#!/bin/sh
# prune_bars.sh — issue 12's pruning bars with fine-tuning, with `nabla train` and `nabla prune`
# on Fashion-MNIST (bench/prune.sh measures the third one, OBD against magnitude without it):
#
#   course MLP  784-64-64-10 ReLU trained fully, the demo's recipe (`make demo`: 10 epochs, SGD
#               lr 0.01 momentum 0.9, cosine, batch 64, seed 0), then pruned to 90 % of its three
#               weight matrices by global magnitude and fine-tuned FT_MLP epochs (lr 0.01), once
#               one-shot and once along the cubic schedule.  Bar: <= 1 point below the dense
#               model's test accuracy, and the written file <= 0.25x the dense one.
#   LeNet       examples/models/lenet.json trained LENET_EPOCHS epochs (the same recipe), then
#               --method channels --layers 1,4 --sparsity 0.5 (half of each conv's channels, L1
#               norm; the next conv's inputs and the Linear's column blocks cut), fine-tuned
#               FT_LENET epochs.  Bars: inference (batch 256, bench_prune_speed: the two models
#               alternating, median of 30 passes) >= 1.6x faster, accuracy <= 1.5 points below.
#
#   sh bench/prune_bars.sh [BUILD_DIR]      (default build; THREADS, LENET_EPOCHS, FT_LENET and
#                                            FT_MLP from the environment: 2, 3, 2, 3)
#
# Measured (2 threads on a machine shared with 7 other jobs and a sanitizer build, so the times
# are rough; the lead reruns it):
#   MLP dense 87.65 %; 90 % global magnitude, one-shot: 50.72 % before fine-tuning, 86.73 % after
#   3 epochs (-0.92 points), file 0.141x; cubic: 87.08 % (-0.57 points), file 0.142x.
#   LeNet (3 epochs) dense 87.83 %; 50 % of the conv channels removed: 86.06 % before fine-tuning,
#   88.00 % after 2 epochs (+0.17 points); parameters 0.488x; inference 1.95x faster (medians,
#   141.5 against 72.4 ms; fastest passes 28.7 against 7.7 ms, 3.74x: the load varied widely).
# Exit status: 0 once measured (MISS is a figure), 1 when a run failed.
set -eu

BUILD=${1:-build}
THREADS=${THREADS:-2}
LENET_EPOCHS=${LENET_EPOCHS:-3}
FT_LENET=${FT_LENET:-2}
FT_MLP=${FT_MLP:-3}
DATA=/usr/share/datasets/fashion-mnist
NABLA=$BUILD/nabla
for exe in "$NABLA" "$BUILD/bench_prune_speed"; do
    if [ ! -x "$exe" ]; then
        echo "prune_bars.sh: $exe not found; build it: make" >&2
        exit 1
    fi
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
RECIPE="--batch 64 --optim sgd --lr 0.01 --momentum 0.9 --sched cosine --seed 0 --threads $THREADS"

run() { # LOG ARGS...: nabla ARGS > LOG, its tail on failure
    log=$1
    shift
    "$NABLA" "$@" > "$log" 2>&1 || { tail "$log" >&2; exit 1; }
}
acc() { # LOG WHEN: the accuracy of the line "WHEN: test loss L  accuracy A% ..."
    sed -n "s/^$2: test loss [0-9.]*  accuracy \([0-9.]*\)%.*/\1/p" "$1"
}
ratio() { # LOG: the written file's size over the original's
    sed -n 's/^wrote .*bytes, \([0-9.]*\) of .*/\1/p' "$1"
}
verdict() { # OK-CONDITION (awk)
    awk "BEGIN { print (($1) ? \"ok\" : \"MISS\") }"
}

# ---- course MLP, 90 % unstructured
run "$TMP/mlp.log" train --model 784-64-64-10 --act relu --epochs 10 $RECIPE --data "$DATA" --out "$TMP/mlp"
for schedule in oneshot cubic; do
    run "$TMP/$schedule.log" prune "$TMP/mlp/model.safetensors" --global --sparsity 0.9 --schedule $schedule \
        --finetune "$FT_MLP" --threads "$THREADS" --data "$DATA" --out "$TMP/p_$schedule"
    dense=$(acc "$TMP/$schedule.log" "before pruning")
    tuned=$(acc "$TMP/$schedule.log" "after fine-tuning")
    r=$(ratio "$TMP/$schedule.log")
    pruned=$(acc "$TMP/$schedule.log" "after pruning")
    echo "MLP 90 % $schedule: dense $dense %, ${pruned:+pruned $pruned %, }after $FT_MLP epochs $tuned %" \
        "($(awk "BEGIN { printf \"%+.2f\", $tuned - $dense }") points), file ${r}x:" \
        "$(verdict "$tuned >= $dense - 1 && $r <= 0.25")"
done

# ---- LeNet, half of the conv channels removed
run "$TMP/lenet.log" train --model-file examples/models/lenet.json $RECIPE --epochs "$LENET_EPOCHS" --data "$DATA" \
    --out "$TMP/lenet"
run "$TMP/channels.log" prune "$TMP/lenet/model.safetensors" --method channels --layers 1,4 --sparsity 0.5 \
    --finetune "$FT_LENET" --threads "$THREADS" --data "$DATA" --out "$TMP/small"
grep -E '^  [0-9]+\.(weight|bias)|parameters:' "$TMP/channels.log"
OMP_NUM_THREADS=$THREADS "$BUILD/bench_prune_speed" "$TMP/lenet/model.safetensors" "$TMP/small/model.safetensors" |
    tee "$TMP/speed.log"
dense=$(acc "$TMP/channels.log" "before pruning")
pruned=$(acc "$TMP/channels.log" "after pruning")
tuned=$(acc "$TMP/channels.log" "after fine-tuning")
speed=$(sed -n 's/^speed-up \([0-9.]*\)x (medians).*/\1/p' "$TMP/speed.log")
echo "LeNet 50 % of conv channels: dense $dense %, pruned $pruned %, after $FT_LENET epochs $tuned %" \
    "($(awk "BEGIN { printf \"%+.2f\", $tuned - $dense }") points), inference ${speed}x faster:" \
    "$(verdict "$tuned >= $dense - 1.5 && $speed >= 1.6")"
