#!/bin/sh
# example_data_parallel_runs.sh BUILD_DIR [MPIEXEC] — examples/09_data_parallel.c, one epoch on a
# small MNIST-format set made here, run from an empty folder on 2 ranks (with MPIEXEC) and alone:
# it must end with its copies agreeing, rank 0 alone printing and writing runs/ddp_mlp.safetensors,
# and nothing written outside runs/.
set -eu
build=$(cd "$1" && pwd)
mpiexec=${2:-}
tmp=$(mktemp -d /tmp/nabla-example-dp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { cat "$tmp/out.txt" >&2; echo "example_data_parallel_runs: $*" >&2; exit 1; }
. "$(dirname "$0")/random_idx.sh"
random_idx "$tmp/data" 256 64
ex=$build/example_09_data_parallel
check() { # WHAT PROCESSES: the run's output in $tmp/out.txt
    grep -q "^the $2 copies of the model agree$" "$tmp/out.txt" || fail "$1: no agreement line"
    [ "$(grep -c '^wrote runs/ddp_mlp.safetensors$' "$tmp/out.txt")" -eq 1 ] || fail "$1: not rank 0 alone wrote"
    [ -s runs/ddp_mlp.safetensors ] || fail "$1: no runs/ddp_mlp.safetensors"
    extra=$(ls | grep -v '^runs$' || true)
    [ -z "$extra" ] || fail "$1: wrote outside runs/: $extra"
    rm -rf runs
}
mkdir "$tmp/cwd"
cd "$tmp/cwd"
if [ -n "$mpiexec" ]; then
    "$mpiexec" --allow-run-as-root --oversubscribe -np 2 "$ex" 1 "$tmp/data" > "$tmp/out.txt" 2>&1 || fail "2 ranks failed"
    check "2 ranks" 2
fi
"$ex" 1 "$tmp/data" > "$tmp/out.txt" 2>&1 || fail "one process failed"
check "one process" 1
echo "example_data_parallel_runs: 09 trained${mpiexec:+ on 2 ranks and} alone, its copies agreeing, rank 0 writing runs/"
