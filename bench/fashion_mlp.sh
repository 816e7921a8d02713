#!/bin/sh
# fashion_mlp.sh — the training bar: the course's setup on Fashion-MNIST (Linear(784,64) ReLU
# Linear(64,64) ReLU Linear(64,10), cross-entropy, SGD lr 0.01 momentum 0.9, CosineAnnealingLR
# T_max = epochs stepped per epoch, batch 64, seed 0, 10 epochs) trained by `nabla train` and by
# PyTorch 1.13 (bench/torch_fashion_mlp.py), each at 1 and 2 threads, in the same job.
#
#   sh bench/fashion_mlp.sh [BUILD_DIR] [--quick]      (default build; --quick: 2 epochs)
#
# Figures and goals:
#   test accuracy after the last epoch    nabla >= 87.5 % and within 0.5 points of torch's
#   training samples/s                    nabla's best >= 3 x torch's best (over 1 and 2 threads)
#   peak RSS                              nabla <= torch / 4, at each thread count
# Samples/s count the training loops only, evaluation excluded.  torch's script times its loop;
# for nabla it comes from the progress bar's final line per epoch ("938/938 [.., R it/s]"):
# an epoch's loop took steps / R seconds, and samples/s = epochs x 60000 / the sum of those.
# Peak RSS is /usr/bin/time's maximum resident set size of each process (one process per run).
# The four runs are interleaved (nabla 1, torch 1, nabla 2, torch 2) so that a busy machine
# weighs on both sides alike; on a shared machine the speed figures are noisy — compare the
# ratio, which is taken in one job.  --quick checks that everything runs; its accuracy is not
# the bar's.  Exit status: 0 once measured (MISS is a figure), 1 when a run failed.
set -eu

BUILD=build
EPOCHS=10
for arg in "$@"; do
    case $arg in
    --quick) EPOCHS=2 ;;
    -*) echo "usage: sh bench/fashion_mlp.sh [BUILD_DIR] [--quick]" >&2; exit 1 ;;
    *) BUILD=$arg ;;
    esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
TORCH_PY=/usr/bin/python3 # Debian's interpreter: the one with torch, whatever is on PATH
TIME=/usr/bin/time        # GNU time (Debian package `time`): peak RSS of a finished process
TRAIN_N=60000             # Fashion-MNIST's training set

if [ ! -x "$BUILD/nabla" ]; then
    echo "fashion_mlp.sh: $BUILD/nabla not found; build it: cmake --build $BUILD --target nabla" >&2
    exit 1
fi
if [ ! -x "$TIME" ]; then
    echo "fashion_mlp.sh: $TIME not found (apt-get install time)" >&2
    exit 1
fi
if ! "$TORCH_PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "fashion_mlp.sh: $TORCH_PY cannot import torch and numpy (apt-get install python3-torch)" >&2
    exit 1
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

echo "== fashion_mlp: $EPOCHS epochs, batch 64, seed 0; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for threads in 1 2; do
    echo "-- nabla train, $threads thread(s)"
    "$TIME" -f '%M %e' -o "$TMP/nabla$threads.time" \
        "$BUILD/nabla" train --model 784-64-64-10 --act relu --epochs "$EPOCHS" --batch 64 \
        --optim sgd --lr 0.01 --momentum 0.9 --sched cosine --seed 0 --threads "$threads" \
        --out "$TMP/nabla$threads" >"$TMP/nabla$threads.out" 2>"$TMP/nabla$threads.err" || {
        cat "$TMP/nabla$threads.err" >&2
        echo "fashion_mlp.sh: nabla train failed" >&2
        exit 1
    }
    grep '^epoch' "$TMP/nabla$threads.out"
    echo "-- torch, $threads thread(s)"
    "$TIME" -f '%M %e' -o "$TMP/torch$threads.time" \
        "$TORCH_PY" "$HERE/torch_fashion_mlp.py" --threads "$threads" --epochs "$EPOCHS" --seed 0 \
        >"$TMP/torch$threads.out" || {
        echo "fashion_mlp.sh: torch_fashion_mlp.py failed" >&2
        exit 1
    }
    grep '^epoch' "$TMP/torch$threads.out"
done

# One line per run: side threads accuracy samples_per_s peak_rss_mb wall_s.
for t in 1 2; do
    awk -v t="$t" -v n="$TRAIN_N" '
    FILENAME ~ /\.out$/ && /^epoch .* acc / {
        for (i = 1; i <= NF; i++) if ($i == "acc") acc = $(i + 1)
        sub(/%/, "", acc)
    }
    FILENAME ~ /\.err$/ && / it\/s\]/ {
        split($0, a, "|"); split(a[3], b, " ");           # " 938/938 [00:00<00:00, 1944.0 it/s] ..."
        split(b[1], s, "/"); steps = s[1]
        rate = b[3]
        if (rate > 0) { secs += steps / rate; epochs++ }
    }
    FILENAME ~ /\.time$/ { rss = $1 / 1024; wall = $2 }
    END { printf "nabla %d %s %.0f %.1f %.1f\n", t, acc, epochs * n / secs, rss, wall }
    ' "$TMP/nabla$t.out" "$TMP/nabla$t.err" "$TMP/nabla$t.time"
    awk -v t="$t" '
    /^RESULT torch / {
        for (i = 3; i <= NF; i++) { p = index($i, "="); f[substr($i, 1, p - 1)] = substr($i, p + 1) }
    }
    FILENAME ~ /\.time$/ { rss = $1 / 1024; wall = $2 }
    END { printf "torch %d %s %s %.1f %.1f\n", t, f["acc"], f["samples_per_s"], rss, wall }
    ' "$TMP/torch$t.out" "$TMP/torch$t.time"
done >"$TMP/figures"

echo
echo "== summary ($EPOCHS epochs; ratio = nabla / torch; speed figures are noisy on a shared machine)"
awk -v quick="$([ "$EPOCHS" -eq 10 ] && echo 0 || echo 1)" '
{ acc[$1, $2] = $3; sps[$1, $2] = $4; rss[$1, $2] = $5; wall[$1, $2] = $6 }
function verdict(ok) { return ok ? "PASS" : "MISS" }
END {
    fmt = "%-30s %-24s %10s %10s %8s  %s\n"
    printf fmt, "figure", "goal", "nabla", "torch", "ratio", ""
    for (t = 1; t <= 2; t++) {
        d = acc["nabla", t] - acc["torch", t]
        ok = acc["nabla", t] >= 87.5 && d >= -0.5 && d <= 0.5
        printf fmt, "test accuracy %, " t " thread" (t > 1 ? "s" : ""),
               ">= 87.5, torch +- 0.5", acc["nabla", t], acc["torch", t], sprintf("%+.2f", d),
               quick ? "(--quick: not the bar)" : verdict(ok)
    }
    for (t = 1; t <= 2; t++)
        printf fmt, "samples/s, " t " thread" (t > 1 ? "s" : ""), "", sps["nabla", t],
               sps["torch", t], sprintf("%.2fx", sps["nabla", t] / sps["torch", t]), ""
    bn = sps["nabla", 1] >= sps["nabla", 2] ? 1 : 2
    bt = sps["torch", 1] >= sps["torch", 2] ? 1 : 2
    r = sps["nabla", bn] / sps["torch", bt]
    printf fmt, "samples/s, best (" bn " vs " bt " thr)", ">= 3x torch", sps["nabla", bn],
           sps["torch", bt], sprintf("%.2fx", r), verdict(r >= 3)
    for (t = 1; t <= 2; t++) {
        r = rss["nabla", t] / rss["torch", t]
        printf fmt, "peak RSS MB, " t " thread" (t > 1 ? "s" : ""), "<= torch / 4",
               rss["nabla", t], rss["torch", t], sprintf("%.2fx", r), verdict(r <= 0.25)
    }
    for (t = 1; t <= 2; t++)
        printf fmt, "wall time s, " t " thread" (t > 1 ? "s" : ""), "(whole run)", wall["nabla", t],
               wall["torch", t], sprintf("%.2fx", wall["nabla", t] / wall["torch", t]), ""
}' "$TMP/figures"
