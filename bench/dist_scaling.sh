#!/bin/sh
# dist_scaling.sh — the scaling model of docs/SCALING.md from figures measured here: the compute
# of one training step per per-rank batch size (1 rank, 1 thread, bench/dist_bench.c), and the
# allreduce's latency and bandwidth between 2 ranks on this machine; then time per step against
# the number of ranks N = 1 .. 64 over a network of BW_GBIT (default 25) Gb/s with a per-message
# latency of ALPHA_US (default 10) us, for the course MLP and LeNet, global batch 64 (strong
# scaling: 64 / N per rank) and 64 per rank (weak scaling), and the bucket size that minimises
# the exposed communication.
#
#   sh bench/dist_scaling.sh [BUILD_DIR] [--quick]        (BW_GBIT=.. ALPHA_US=.. to change the network)
#
# The model (docs/SCALING.md says why each term):
#   ring allreduce of b bytes on N ranks   R(b) = 2 (N - 1) alpha + 2 (N - 1) / N * b / BW
#   k = 1, 2, 4, 8 or 16 buckets of P / k bytes, backward window W = 2/3 of the compute (backward is about twice
#   the forward), the buckets sent one after the other as backward makes them:
#       exposed(k) = R(P / k) + max(0, (k - 1) R(P / k) - W)      (the last bucket always shows)
#   step(N) = C(batch per rank) + min over k of exposed(k)
#   efficiency: strong C(64) / (N step(N)), weak C(64) / step(N)
set -eu

BUILD=build
STEPS=20
for arg in "$@"; do
    case $arg in
    --quick) STEPS=3 ;;
    -*) echo "usage: sh bench/dist_scaling.sh [BUILD_DIR] [--quick]" >&2; exit 1 ;;
    *) BUILD=$arg ;;
    esac
done
bench=$BUILD/bench_dist_bench
[ -x "$bench" ] || { echo "dist_scaling.sh: $bench not found; build it: cmake --build $BUILD --target bench_dist_bench" >&2; exit 1; }
export OMPI_MCA_btl_vader_single_copy_mechanism=none
BW_GBIT=${BW_GBIT:-25}
ALPHA_US=${ALPHA_US:-10}

echo "dist_scaling: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
if command -v mpirun > /dev/null; then
    mpirun --allow-run-as-root --oversubscribe -np 2 "$bench" allreduce | tail -1 | sed 's/^/this machine, 2 ranks: /'
fi
for model in mlp lenet; do
    # compute per step for per-rank batches 1, 2, 4, .. 64 (one rank: no communication)
    figures=""
    for b in 1 2 4 8 16 32 64; do
        line=$("$bench" step $model $b $STEPS)
        ms=$(echo "$line" | sed 's/.* cpu \([0-9.]*\) ms.*/\1/') # CPU time: the work, whatever the load
        params=$(echo "$line" | sed 's/.* params \([0-9]*\) .*/\1/')
        figures="$figures $b:$ms"
    done
    echo "$model: $params parameters; compute per step (ms) by batch:$figures"
    echo "$figures" | awk -v m=$model -v P=$((params * 4)) -v bw="$BW_GBIT" -v alpha="$ALPHA_US" '
    function ring(b, n) { return n == 1 ? 0 : 2 * (n - 1) * alpha * 1e-6 + 2 * (n - 1) / n * b / (bw * 1e9 / 8) }
    function exposed(n, w,    k, best, e, r) { # sets bestk
        best = -1
        for (k = 1; k <= 16; k *= 2) {
            r = ring(P / k, n); e = r + ((k - 1) * r - w > 0 ? (k - 1) * r - w : 0)
            if (best < 0 || e < best) { best = e; bestk = k }
        }
        return best
    }
    BEGIN { }
    { for (i = 1; i <= NF; i++) { split($i, f, ":"); C[f[1]] = f[2] / 1e3 } }
    END {
        printf "%s over %g Gb/s, alpha %g us: N, [global batch 64: per-rank batch, step ms, samples/s, efficiency], [64 per rank: step ms, samples/s, efficiency], best bucket\n", m, bw, alpha
        for (n = 1; n <= 64; n *= 2) {
            b = 64 / n; c = C[b]; es = exposed(n, c * 2 / 3); ks = bestk; ts = c + es
            cw = C[64]; ew = exposed(n, cw * 2 / 3); kw = bestk; tw = cw + ew
            printf "  N %2d  [b %2d  %7.3f ms  %8.0f/s  %3.0f%%]  [%7.3f ms  %9.0f/s  %3.0f%%]  bucket %.0f KiB (%d) / %.0f KiB (%d)\n",
                   n, b, ts * 1e3, 64 / ts, 100 * C[64] / (n * ts), tw * 1e3, 64 * n / tw, 100 * cw / tw,
                   P / ks / 1024, ks, P / kw / 1024, kw
        }
    }'
done
