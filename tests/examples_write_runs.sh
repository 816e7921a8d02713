#!/bin/sh
# examples_write_runs.sh BUILD_DIR — the course examples 02 (MLP) and 03 (LeNet), one epoch each
# on a tiny MNIST-format data set made here, run from an empty folder: their curves and weights
# must land in runs/ under that folder, and nowhere else.  The examples 05-08 (second
# derivatives, Newton, gradient penalty, physics-informed fit) and 13 (KAN continual learning)
# check their own figures and exit non-zero when one is off; they run from the same folder and
# must write nothing.
set -eu
build=$(cd "$1" && pwd)
tmp=$(mktemp -d /tmp/nabla-examples.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "examples_write_runs: $*" >&2; exit 1; }

# IDX files: big-endian magic (0x0803 images, 0x0801 labels) and sizes, then bytes; all labels
# 0 and images of random pixels are enough for a run that must only finish and write its files.
be32() { printf "\\$(printf '%03o' $(($1 >> 24 & 255)))\\$(printf '%03o' $(($1 >> 16 & 255)))"; \
         printf "\\$(printf '%03o' $(($1 >> 8 & 255)))\\$(printf '%03o' $(($1 & 255)))"; }
idx() { # idx FILE COUNT: images then labels
    { be32 2051; be32 "$2"; be32 28; be32 28; head -c $(($2 * 784)) /dev/urandom; } | gzip > "$tmp/data/$1-images-idx3-ubyte.gz"
    { be32 2049; be32 "$2"; head -c "$2" /dev/zero; } | gzip > "$tmp/data/$1-labels-idx1-ubyte.gz"
}
mkdir -p "$tmp/data" "$tmp/cwd"
idx train 128
idx t10k 64
cd "$tmp/cwd"
for ex in 02_mlp_fashion:mlp 03_cnn_fashion:cnn; do
    "$build/example_${ex%%:*}" 1 "$tmp/data" > "$tmp/out.txt" 2>&1 || { cat "$tmp/out.txt"; fail "example_${ex%%:*} failed"; }
    for f in "${ex#*:}_curves.svg" "${ex#*:}_curves.csv" "${ex#*:}.safetensors"; do
        [ -s "runs/$f" ] || fail "example_${ex%%:*} did not write runs/$f"
    done
done
for ex in 05_second_derivative 06_newton_step 07_gradient_penalty 08_physics_informed 13_kan_continual; do
    "$build/example_$ex" > "$tmp/out.txt" 2>&1 || { cat "$tmp/out.txt"; fail "example_$ex failed"; }
done
extra=$(ls | grep -v '^runs$' || true)
[ -z "$extra" ] || fail "the examples wrote outside runs/: $extra"
echo "examples_write_runs: 02 and 03 wrote their files into runs/, 05-08 and 13 passed their checks"
