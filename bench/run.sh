#!/bin/sh
# run.sh — runs nabla's benchmarks and, where Debian's python3 has torch, the torch peer, then
# prints one summary table: each figure, its goal, and nabla beside torch where both exist.
#
#   sh bench/run.sh BUILD_DIR        (make bench runs it on build/)
#
# Each bench prints a human table and machine-readable "@name key=value ..." lines; this script
# shows the tables and builds the summary from the "@" lines.  Figures are medians taken inside
# each program (see the comment at the top of each); on a shared machine run it more than once.
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are reported, never changed: some machines set them
# because old OpenBLAS builds misbehave on their CPU, and they change which GEMM kernel runs.
set -u

BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
TORCH_PY=/usr/bin/python3 # Debian's interpreter: the one with torch, whatever is on PATH

for b in matmul gemm elementwise tiny_op load; do
    if [ ! -x "$BUILD/bench_$b" ]; then
        echo "run.sh: $BUILD/bench_$b not found; build it first: cmake --build $BUILD" >&2
        exit 1
    fi
done

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT INT TERM

echo "== environment"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-(unset)}"
echo "OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-(unset)}"
echo "cores: $(nproc 2>/dev/null || echo '?')"

status=0
for b in matmul gemm elementwise tiny_op load; do
    echo
    echo "== bench_$b"
    if ! "$BUILD/bench_$b" >"$OUT/$b.txt"; then
        echo "run.sh: bench_$b failed" >&2
        status=1
    fi
    grep -v '^@' "$OUT/$b.txt"
done

: >"$OUT/torch.txt"
echo
if "$TORCH_PY" -c 'import torch' 2>/dev/null; then
    echo "== torch ($TORCH_PY bench/torch_tiny_op.py)"
    if ! "$TORCH_PY" "$HERE/torch_tiny_op.py" >"$OUT/torch.txt"; then
        echo "run.sh: torch_tiny_op.py failed" >&2
        status=1
    fi
    grep -v '^@' "$OUT/torch.txt"
else
    echo "== torch: $TORCH_PY cannot import torch; the summary shows nabla only"
fi

echo
echo "== summary (nabla/torch: nabla's speed over torch's, > 1 means nabla is faster)"
cat "$OUT"/*.txt | grep '^@' | awk '
# Splits "key=value" fields into f[]; values stay strings, so comparisons add 0 to them.
function kv(    i, p) {
    delete f
    for (i = 2; i <= NF; i++) { p = index($i, "="); f[substr($i, 1, p - 1)] = substr($i, p + 1) }
}
function verdict(ok) { return ok ? "ok" : "MISS" }
function vs(x) { return x == "" ? "-" : sprintf("%.2f", x) }
function tv(x) { return x == "" ? "-" : sprintf("%.1f", x) }
$1 == "@matmul" {
    kv(); k = f["n"]; mm_n[++n_mm] = k
    mm_nb[k] = f["nabla_gflops"]; mm_blas[k] = f["blas_gflops"]; mm_r[k] = f["ratio"]
}
$1 == "@torch_matmul" { kv(); tmm[f["n"]] = f["gflops"] }
$1 == "@elementwise" {
    kv(); k = f["op"] " " f["n"] " " f["threads"]; ew_k[++n_ew] = k
    ew_nb[k] = f["nabla_gbs"]; ew_mc[k] = f["memcpy_gbs"]; ew_r[k] = f["ratio"]
    ew_label[k] = sprintf("%s %dM, %s thr", f["op"], f["n"] / 1048576, f["threads"])
}
$1 == "@torch_elementwise" { kv(); tew[f["op"] " " f["n"] " " f["threads"]] = f["gbs"] }
$1 == "@tiny_op" { kv(); k = f["case"]; to_k[++n_to] = k; to_ns[k] = f["ns_per_op"] }
$1 == "@torch_tiny_op" { kv(); tto[f["case"]] = f["ns_per_op"] }
END {
    fmt = "%-26s %10s %10s %7s %9s %5s %10s %11s\n"
    printf fmt, "figure", "nabla", "peer", "ratio", "goal", "", "torch", "nabla/torch"
    for (i = 1; i <= n_mm; i++) {
        k = mm_n[i]; t = tmm[k]
        printf fmt, "matmul n=" k " GFLOP/s", tv(mm_nb[k]), tv(mm_blas[k]) " blas", vs(mm_r[k]),
               ">= 0.95", verdict(mm_r[k] + 0 >= 0.95), tv(t), t == "" ? "-" : vs(mm_nb[k] / t)
    }
    for (i = 1; i <= n_ew; i++) {
        k = ew_k[i]; t = tew[k]
        printf fmt, ew_label[k] " GB/s", tv(ew_nb[k]), tv(ew_mc[k]) " mcpy", vs(ew_r[k]),
               ">= 0.70", verdict(ew_r[k] + 0 >= 0.7), tv(t), t == "" ? "-" : vs(ew_nb[k] / t)
    }
    for (i = 1; i <= n_to; i++) {
        k = to_k[i]; t = tto[k]
        printf fmt, "tiny add " k " ns/op", tv(to_ns[k]), "-", "-", "<= 1000",
               verdict(to_ns[k] + 0 <= 1000), tv(t), t == "" ? "-" : vs(t / to_ns[k])
    }
    if ("loop" in tto)
        printf "(torch ns/op include the Python loop; the empty loop alone: %.1f ns)\n", tto["loop"]
}'

# The training bar (course MLP on Fashion-MNIST against torch) and the per-step loss parity with
# torch: each script prints its own table, and both need torch, as they measure against it.
echo
if "$TORCH_PY" -c 'import torch, numpy' 2>/dev/null; then
    for s in fashion_mlp parity; do
        echo "== bench/$s.sh"
        sh "$HERE/$s.sh" "$BUILD" || status=1
        echo
    done
else
    echo "== fashion_mlp.sh, parity.sh: $TORCH_PY cannot import torch and numpy; skipped"
fi
exit $status
