#!/bin/sh
# dist_throughput.sh — data parallel throughput: 2 ranks x 1 thread against 1 rank x 1 thread on
# the course MLP (784-64-64-10) and on LeNet (examples/03), global batch 64 (32 per rank on 2),
# SGD momentum, by bench/dist_bench.c; then the allreduce's latency and bandwidth on this
# machine (the inputs of docs/SCALING.md).
#
#   sh bench/dist_throughput.sh [BUILD_DIR] [--quick]
#
# Figures, per model: samples/s on 1 and 2 ranks; scaling efficiency = samples/s on 2 ranks /
# (2 x samples/s on 1); the communication share of a step = the gradients' allreduce (after
# backward, blocking: nb_ddp_sync_grads) / the step's time; and with the allreduce overlapped
# with backward (nb_ddp_sync_in_backward, buckets of 64 KiB for LeNet, see docs/SCALING.md) the
# exposed time and the share of the blocking exchange hidden.  Each figure is the median of
# STEPS steps; the runs are short and the two ranks share the machine's cores with whatever else
# runs there, so on a busy machine expect noise of tens of percent: say so with the figures.
# Needs MPI (mpirun); exit status 1 when a run fails.
set -eu

BUILD=build
QUICK=
for arg in "$@"; do
    case $arg in
    --quick) QUICK=1 ;;
    -*) echo "usage: sh bench/dist_throughput.sh [BUILD_DIR] [--quick]" >&2; exit 1 ;;
    *) BUILD=$arg ;;
    esac
done
bench=$BUILD/bench_dist_bench
[ -x "$bench" ] || { echo "dist_throughput.sh: $bench not found; build it: cmake --build $BUILD --target bench_dist_bench" >&2; exit 1; }
command -v mpirun > /dev/null || { echo "dist_throughput.sh: no mpirun (Debian: openmpi-bin)" >&2; exit 1; }
export OMPI_MCA_btl_vader_single_copy_mechanism=none # containers may refuse ptrace-based copies
mpi() { mpirun --allow-run-as-root --oversubscribe -np "$@"; }

echo "dist_throughput: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
for model in mlp lenet; do
    if [ "$model" = mlp ]; then steps=${QUICK:+20}; steps=${steps:-200}; bucket=0
    else steps=${QUICK:+5}; steps=${steps:-30}; bucket=65536; fi
    one=$("$bench" step $model 64 "$steps") || exit 1
    two=$(mpi 2 "$bench" step $model 64 "$steps" $bucket) || exit 1
    echo "$one"
    echo "$two"
    # samples/s are the figures in "(N samples/s)": the first of each line is the blocking phase's
    s1=$(echo "$one" | sed 's/^[^(]*(\([0-9.]*\) samples.*/\1/')
    s2=$(echo "$two" | sed 's/^[^(]*(\([0-9.]*\) samples.*/\1/')
    s2o=$(echo "$two" | sed 's/.*with overlap: step [0-9.]* ms (\([0-9.]*\) samples.*/\1/')
    awk -v m=$model -v a="$s1" -v b="$s2" -v c="$s2o" 'BEGIN {
        printf "%s: 1 rank %.0f samples/s; 2 ranks %.0f (efficiency %.0f%%), with overlap %.0f (efficiency %.0f%%)\n",
               m, a, b, 100 * b / (2 * a), c, 100 * c / (2 * a) }'
done
mpi 2 "$bench" allreduce
