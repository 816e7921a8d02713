#!/bin/sh
# transfer.sh — issue 12's transfer-learning and LoRA bars on Fashion-MNIST, with `nabla train`
# and `nabla finetune`, on the course's LeNet (examples/models/lenet.json with 5 outputs):
#
#   pretrain   LeNet on classes 0-4 (all their 30 000 training samples), 3 epochs
#   new task   classes 5-9 relabelled 0-4, the first 1 000 of their training samples; the
#              test figures are on all 5 000 test samples of classes 5-9
#   runs       from scratch   the same LeNet trained on the 1 000 samples alone, lr 0.01
#              frozen         the pretrained convolutional feature extractor (cut after the
#                             Flatten, "7": 1568 features) under a new Linear head, frozen
#                             (--freeze); the head alone trains, at lr 0.1 (a convex problem:
#                             the larger step is what it takes in 20 epochs)
#              frozen, cut 9  the same with the pretrained Linear(1568, 128) + ReLU kept too
#              full           cut after "9", a new head, everything trained at lr 0.01
#              lora           cut after "9", a new head, LoRA rank 4 alpha 8 on both Conv2d
#                             and the Linear (the default targets), lr 0.01
#   SGD momentum 0.9, cosine schedule, batch 32, 20 epochs each.
#
#   sh bench/transfer.sh [BUILD_DIR] [--quick]     (default build; --quick: 1 seed, few epochs)
#
# Bars: frozen beats from scratch; lora trains <= 5 % of the parameters and lands within 1
# point of full fine-tuning (test accuracy, mean of seeds 1, 2, 3; "within" counts LoRA above
# full as within).  The data sets for the pretraining (classes 0-4) and for training from
# scratch (5-9 relabelled) are written as IDX files by Debian's python3 from the installed
# Fashion-MNIST, in order, so every run's 1 000 samples are the same ones.  Exit status: 0 once
# measured (MISS is a figure), 1 when a run failed.
set -eu

BUILD=build
PRE_EPOCHS=3
EPOCHS=20
SEEDS="1 2 3"
for arg in "$@"; do
    case $arg in
    --quick) PRE_EPOCHS=1 EPOCHS=3 SEEDS=1 ;;
    -*) echo "usage: sh bench/transfer.sh [BUILD_DIR] [--quick]" >&2; exit 1 ;;
    *) BUILD=$arg ;;
    esac
done
NABLA=$BUILD/nabla
DATA=/usr/share/datasets/fashion-mnist
if [ ! -x "$NABLA" ]; then
    echo "transfer.sh: $NABLA not found; build it: make" >&2
    exit 1
fi
WORK=$(mktemp -d /tmp/nabla_transfer_XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Fashion-MNIST's samples of classes A..B, relabelled 0..B-A, as MNIST IDX files in DIR.
split_classes() { # DIR A B
    /usr/bin/python3 - "$DATA" "$1" "$2" "$3" <<'EOF'
import gzip, struct, sys, os
src, dst, a, b = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.makedirs(dst, exist_ok=True)
for split in ("train", "t10k"):
    with gzip.open(f"{src}/{split}-images-idx3-ubyte.gz") as f:
        images = f.read()
    with gzip.open(f"{src}/{split}-labels-idx1-ubyte.gz") as f:
        labels = f.read()
    n, rows, cols = struct.unpack(">III", images[4:16])
    keep = [i for i in range(n) if a <= labels[8 + i] <= b]
    size = rows * cols
    with gzip.open(f"{dst}/{split}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(keep), rows, cols))
        f.write(b"".join(images[16 + i * size:16 + (i + 1) * size] for i in keep))
    with gzip.open(f"{dst}/{split}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, len(keep)))
        f.write(bytes(labels[8 + i] - a for i in keep))
EOF
}

# The last "test loss L acc A%" of a finetune log, or the last epoch line's test accuracy.
final_acc() { sed -n 's/.*test loss [0-9.]* acc \([0-9.]*\)%.*/\1/p' "$1" | tail -1; }
trainable() { sed -n 's/^trainable parameters: .*(\([0-9.]*\)%)$/\1/p' "$1"; }
mean() { awk '{ s += $1; n++ } END { printf "%.2f", s / n }'; }

split_classes "$WORK/pre" 0 4
split_classes "$WORK/new" 5 9
/usr/bin/python3 - "$(dirname "$0")/../examples/models/lenet.json" "$WORK/lenet5.json" <<'EOF'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["layers"][-1]["out"] = 5
json.dump(spec, open(sys.argv[2], "w"))
EOF
COMMON="--epochs $EPOCHS --batch 32 --sched cosine"
echo "pretraining LeNet on classes 0-4 ($PRE_EPOCHS epochs)"
"$NABLA" train --data "$WORK/pre" --model-file "$WORK/lenet5.json" --epochs "$PRE_EPOCHS" --lr 0.01 --momentum 0.9 \
    --classes none --out "$WORK/pretrained" --seed 0 > "$WORK/pre.log" 2>&1 || { cat "$WORK/pre.log"; exit 1; }
echo "  classes 0-4 test accuracy $(final_acc "$WORK/pre.log") %"
FROM=$WORK/pretrained/model.safetensors

# run NAME SEED COMMAND...: the run's log in WORK, its final test accuracy appended to NAME.acc
run() {
    name=$1 seed=$2
    shift 2
    "$@" --seed "$seed" > "$WORK/$name-$seed.log" 2>&1 || { cat "$WORK/$name-$seed.log"; exit 1; }
    final_acc "$WORK/$name-$seed.log" >> "$WORK/$name.acc"
}
for seed in $SEEDS; do
    echo "seed $seed"
    run scratch "$seed" "$NABLA" train --data "$WORK/new" --limit 1000 --model-file "$WORK/lenet5.json" --lr 0.01 $COMMON \
        --classes none --out "$WORK/scratch"
    TUNE="finetune --from $FROM --data $DATA --classes 5-9 --limit 1000 --cut 9 $COMMON"
    run frozen "$seed" "$NABLA" $TUNE --cut 7 --freeze --lr 0.1 --out "$WORK/frozen"
    run frozen2 "$seed" "$NABLA" $TUNE --freeze --lr 0.1 --out "$WORK/frozen2"
    run full "$seed" "$NABLA" $TUNE --lr 0.01 --out "$WORK/full"
    run lora "$seed" "$NABLA" $TUNE --lr 0.01 --lora-rank 4 --lora-alpha 8 --out "$WORK/lora"
done

SCRATCH=$(mean < "$WORK/scratch.acc") FROZEN=$(mean < "$WORK/frozen.acc") FROZEN2=$(mean < "$WORK/frozen2.acc")
FULL=$(mean < "$WORK/full.acc") LORA=$(mean < "$WORK/lora.acc")
SHARE=$(trainable "$WORK/lora-$(echo $SEEDS | cut -d' ' -f1).log")
verdict() { if [ "$1" = 1 ]; then echo PASS; else echo MISS; fi; }
echo
echo "test accuracy on classes 5-9 after training on 1000 of their samples (mean of seeds $SEEDS):"
printf '  from scratch      %s %%\n' "$SCRATCH"
printf '  frozen backbone   %s %% (cut after layer 7)   beats from scratch: %s\n' "$FROZEN" \
    "$(verdict "$(awk -v a="$FROZEN" -v b="$SCRATCH" 'BEGIN { print (a > b) }')")"
printf '  frozen backbone   %s %% (cut after layer 9)   beats from scratch: %s\n' "$FROZEN2" \
    "$(verdict "$(awk -v a="$FROZEN2" -v b="$SCRATCH" 'BEGIN { print (a > b) }')")"
printf '  full fine-tuning  %s %%\n' "$FULL"
printf '  LoRA r=4 alpha=8  %s %%   trains %s %% of the parameters (<= 5: %s); within 1 point of full: %s\n' \
    "$LORA" "$SHARE" "$(verdict "$(awk -v s="$SHARE" 'BEGIN { print (s <= 5) }')")" \
    "$(verdict "$(awk -v a="$LORA" -v b="$FULL" 'BEGIN { d = a - b; print (d >= -1) }')")"
