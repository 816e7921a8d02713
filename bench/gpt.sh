#!/bin/sh
# gpt.sh — GPT training throughput, nabla against torch 1.13 CPU on the same model (4 layers, 4
# heads, width 128, context 128, 87 ids: the character GPT of `nabla text gpt`), AdamW with
# clipping, at 1 and 2 threads: repetitions interleaved (nabla 1, torch 1, nabla 2, torch 2, ...)
# so both sides see the same load; medians of tokens/s (wall) and tokens per CPU-second; the
# best thread count of each; peak memory (max RSS) of each process; and nabla's generation
# latency per token with and without the key/value cache.
#
#   sh bench/gpt.sh [BUILD_DIR]        (default build; needs BUILD_DIR/bench_gpt)
#
# The environment may set REPS (default 3), STEPS (timed steps per run, default 3, after one
# warm-up step) and BATCH (default 16).  Goal: nabla >= 1.5x torch's tokens/s, memory lower.
#
# Measured on the idle 2-core machine (load about 1), REPS=3 STEPS=3, medians:
#   BATCH=8:  nabla 14420 tokens/s (2 threads), torch 4398 (1 thread): 3.28x; per CPU-second
#             7798 against 4399: 1.77x; max RSS nabla 131 MB, torch 323 MB; generation
#             0.36 ms/token with the cache, 2.16 without
#   BATCH=32: nabla 13945 tokens/s (2 threads), torch 4715 (2 threads): 2.96x; per CPU-second
#             7168 against 4461: 1.61x; max RSS nabla 450 MB, torch 509 MB
# (under a load average of 4 to 5 the same runs gave 3.30x / 1.81x and 1.73x / 1.48x).
# Memory: a scope keeps every intermediate of a step until it ends.  LayerNorm is one op (the
# layer_norm row) that keeps its output and two floats a row, as torch's; written with ops it
# kept about five tensors of its input's size, twice per block, and nabla's max RSS was above
# torch's from a batch of about 16 (722 MB against 510 at batch 32, 199 MB at batch 8).
set -eu
BUILD=${1:-build}
REPS=${REPS:-3}
STEPS=${STEPS:-3}
BATCH=${BATCH:-16}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$BUILD/bench_gpt" ]; then
    echo "gpt.sh: $BUILD/bench_gpt not found; build it: cmake --build $BUILD --target bench_gpt" >&2
    exit 1
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
for r in $(seq "$REPS"); do
    for th in 1 2; do
        "$BUILD/bench_gpt" speed "$th" "$STEPS" "$BATCH" | sed "s/^@ nabla_/nabla $th /" >>"$TMP/all"
        OPENBLAS_NUM_THREADS=$th /usr/bin/python3 "$HERE/../tools/gpt_torch.py" speed --steps "$STEPS" \
            --batch "$BATCH" --threads "$th" | sed "s/^@ torch_/torch $th /" >>"$TMP/all"
    done
    echo "repetition $r of $REPS done" >&2
done
# median of the values of "side threads key value" lines
med() { awk -v s="$1" -v t="$2" -v k="$3" '$1 == s && $2 == t && $3 == k { print $4 }' "$TMP/all" |
        sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf "%-6s %7s %12s %16s %12s\n" side threads tokens/s tokens/CPU-s "max RSS MB"
for side in nabla torch; do
    for th in 1 2; do
        printf "%-6s %7s %12.0f %16.0f %12.1f\n" "$side" "$th" "$(med $side $th tokens_per_s)" \
            "$(med $side $th tokens_per_cpu_s)" "$(med $side $th maxrss_kb | awk '{ print $1 / 1024 }')"
    done
done
best() { for th in 1 2; do echo "$(med "$1" $th "$2") $th"; done | sort -g | tail -1; }
nb=$(best nabla tokens_per_s) pt=$(best torch tokens_per_s)
nbc=$(best nabla tokens_per_cpu_s) ptc=$(best torch tokens_per_cpu_s)
echo "$nb $pt $nbc $ptc" | awk '{ printf "best: nabla %.0f tokens/s (%d threads), torch %.0f (%d threads): %.2fx; per CPU-second %.0f against %.0f: %.2fx (goal >= 1.5x)\n", $1, $2, $3, $4, $1 / $3, $5, $7, $5 / $7 }'
echo "peak memory (1 thread): nabla $(med nabla 1 maxrss_kb) kB, torch $(med torch 1 maxrss_kb) kB"
echo "generation, ms per token after a 16-token prompt (nabla, 1 thread): $(med nabla 1 gen_ms_per_token_cache) with the key/value cache, $(med nabla 1 gen_ms_per_token_nocache) without"
