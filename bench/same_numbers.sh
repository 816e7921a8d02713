#!/bin/sh
# same_numbers.sh BUILD_BEFORE BUILD_AFTER [DATA_DIR] — a refactoring changes no number: the
# course MLP (all 60 000 samples, 3 epochs) and LeNet (the first 6 000, 2 epochs) trained by
# each build's `nabla train` (one thread, seed 0) must print the same per-epoch figures and write
# byte-identical weights, and the wall and CPU time of each side is printed beside, interleaved (before, after, before, ...,
# REPS pairs, default 2), with the median ratio after / before of each: a change's cost in speed.
#   REPS=5 sh bench/same_numbers.sh build-base build
set -eu
before=$1 after=$2 data=${3:-/usr/share/datasets/fashion-mnist} reps=${REPS:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/nabla-same.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
status=0
for model in mlp lenet; do
    case $model in
        mlp) spec="--model 784-64-64-10 --limit 60000 --epochs 3" ;;
        lenet) spec="--model-file $here/examples/models/lenet.json --optim adam --lr 1e-3 --limit 6000 --epochs 2" ;;
    esac
    : > "$tmp/$model-times"
    i=0
    while [ $i -lt "$reps" ]; do
        i=$((i + 1))
        for side in before after; do
            eval "build=\$$side"
            # shellcheck disable=SC2086 # $spec is several flags
            /usr/bin/time -f "%e %U %S" -o "$tmp/time" "$build/nabla" train $spec --data "$data" \
                --threads 1 --seed 0 --out "$tmp/$model-$side" \
                > "$tmp/$model-$side.txt" 2>/dev/null
            read -r wall user sys < "$tmp/time"
            cpu=$(awk "BEGIN { printf \"%.2f\", $user + $sys }")
            echo "$model $side: $wall s wall, $cpu s CPU"
            echo "$side $wall $cpu" >> "$tmp/$model-times"
        done
    done
    awk -v model="$model" '
        function median(a, n,   i, j, t) {
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        $1 == "before" { bw = $2; bc = $3 }
        $1 == "after" { n++; w[n] = $2 / bw; c[n] = $3 / bc }
        END { printf "%s: after / before, median of %d pairs: wall %.3f, CPU %.3f\n", model, n, median(w, n), median(c, n) }
    ' "$tmp/$model-times"
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
