#!/bin/sh
# same_numbers.sh BUILD_BEFORE BUILD_AFTER [DATA_DIR] — a refactoring changes no number: the
# course MLP and LeNet trained by each build's `nabla train` (one thread, seed 0, the first 6 000
# samples, 2 epochs) must print the same per-epoch figures and write byte-identical weights, and
# the wall time of each side is printed beside (interleaved: before, after, before, after).
#   sh bench/same_numbers.sh build-base build
set -eu
before=$1 after=$2 data=${3:-/usr/share/datasets/fashion-mnist}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/nabla-same.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
status=0
for model in mlp lenet; do
    case $model in
        mlp) spec="--model 784-64-64-10" ;;
        lenet) spec="--model-file $here/examples/models/lenet.json --optim adam --lr 1e-3" ;;
    esac
    for side in before after before after; do
        eval "build=\$$side"
        start=$(date +%s.%N)
        # shellcheck disable=SC2086 # $spec is several flags
        "$build/nabla" train $spec --data "$data" --limit 6000 --epochs 2 --threads 1 --seed 0 \
            --out "$tmp/$model-$side" > "$tmp/$model-$side.txt" 2>/dev/null
        end=$(date +%s.%N)
        echo "$model $side: $(awk "BEGIN { printf \"%.2f\", $end - $start }") s"
    done
    # the figures, without the per-epoch seconds
    sed 's/  [0-9.]*s$//' "$tmp/$model-before.txt" | grep '^epoch' > "$tmp/a"
    sed 's/  [0-9.]*s$//' "$tmp/$model-after.txt" | grep '^epoch' > "$tmp/b"
    if cmp -s "$tmp/a" "$tmp/b" && cmp -s "$tmp/$model-before/model.safetensors" "$tmp/$model-after/model.safetensors"; then
        echo "$model: same figures, byte-identical weights"
    else
        echo "$model: DIFFERENT"; diff "$tmp/a" "$tmp/b" || true; status=1
    fi
done
exit $status
