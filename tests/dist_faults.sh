#!/bin/sh
# dist_faults.sh NABLA MPIEXEC — the faults of `mpirun -np 2 nabla train --parallel data` end
# every rank, soon, with a message that names the rank and what went wrong, and exit non-zero;
# what OUT holds afterwards loads (`nabla eval`, `nabla train --resume`): nothing half-written.
#   1. a rank killed (SIGKILL, SIGTERM) mid-training: mpirun ends the other within seconds and
#      names the rank and the signal;
#   2. models that differ between ranks (mpirun's MPMD form, another --model per rank): every rank
#      says, naming itself and its shape, before the first step; OUT gets no model;
#   3. ranks that disagree mid-run (another --epochs on rank 1: rank 0 stops while rank 1 waits
#      in an allreduce): the collective's deadline, NB_DIST_TIMEOUT = 2 s here, ends the job
#      within it (plus the launcher's teardown) with the rank and the call.
# The data: a small MNIST-format set of random pixels made here.
set -eu
nabla=$1 mpiexec=$2
tmp=$(mktemp -d /tmp/nabla-faults.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "dist_faults: $*" >&2; exit 1; }
mpi() { "$mpiexec" --allow-run-as-root --oversubscribe "$@"; }
now() { date +%s.%N; }
elapsed() { printf '%.1f' "$(echo "$(now) - $1" | bc)"; }

. "$(dirname "$0")/random_idx.sh"
random_idx "$tmp/data" 1280 64
flags="--data $tmp/data --batch 64 --sched none --threads 1 --seed 3 --parallel data"

# OUT's files, where there are any, load: the model in `nabla eval`, the checkpoint in a resumed
# one-process run of one more epoch
loads() {
    [ ! -f "$1/model.safetensors" ] || "$nabla" eval "$1/model.safetensors" --data "$tmp/data" > "$tmp/eval.txt" 2>&1 ||
        { cat "$tmp/eval.txt"; fail "$2: the model left in OUT does not load"; }
    [ ! -f "$1/checkpoint.safetensors" ] ||
        "$nabla" train --data "$tmp/data" --batch 64 --sched none --threads 1 --seed 3 --out "$1" --epochs 1000 \
            --stop-after 1 --resume "$1/checkpoint.safetensors" > "$tmp/resume.txt" 2>&1 ||
        { cat "$tmp/resume.txt"; fail "$2: the checkpoint left in OUT does not resume"; }
}

# ---- 1. a rank killed mid-training: SIGKILL (a crash) and SIGTERM (a rank that exits)
for sig in 9 15; do
    # (mpirun itself started with &, so that $! is mpirun, whose children are the ranks; files of
    # each round's own, or the last round's output would say at once that training is under way)
    # shellcheck disable=SC2086 # the flags are meant to split
    "$mpiexec" --allow-run-as-root --oversubscribe -np 2 "$nabla" train $flags --epochs 100000 --out "$tmp/killed$sig" \
        > "$tmp/k$sig.out" 2> "$tmp/k$sig.err" &
    job=$!
    i=0
    until grep -q '^epoch 2/' "$tmp/k$sig.out" 2> /dev/null; do # training is under way
        i=$((i + 1)); [ $i -lt 600 ] || fail "signal $sig: the run did not start"; sleep 0.1
    done
    victim=
    for p in $(pgrep -P $job); do # MPI tells each rank its number in its environment
        tr '\0' '\n' < "/proc/$p/environ" | grep -qx 'OMPI_COMM_WORLD_RANK=1' && victim=$p
    done
    [ -n "$victim" ] || fail "signal $sig: rank 1 not found among mpirun's children"
    t0=$(now)
    kill -"$sig" "$victim"
    rc=0
    wait $job || rc=$?
    took=$(elapsed "$t0")
    [ $rc -ne 0 ] || fail "signal $sig: mpirun exited 0"
    [ "$(echo "$took < 30" | bc)" = 1 ] || fail "signal $sig: the job took ${took} s to end"
    grep -q "rank 1 .*signal $sig" "$tmp/k$sig.err" ||
        { cat "$tmp/k$sig.err"; fail "signal $sig: no message naming rank 1 and the signal"; }
    loads "$tmp/killed$sig" "signal $sig"
    echo "dist_faults: rank 1 ended by signal $sig: the job ended in ${took} s, status $rc, naming rank 1; OUT loads"
done

# ---- 2. another model on each rank
rc=0
# shellcheck disable=SC2086
mpi -np 1 "$nabla" train $flags --epochs 1 --model 784-32-10 --out "$tmp/mismatch" : \
    -np 1 "$nabla" train $flags --epochs 1 --model 784-64-10 --out "$tmp/mismatch" > "$tmp/m.out" 2> "$tmp/m.err" || rc=$?
[ $rc -ne 0 ] || fail "model mismatch: mpirun exited 0"
for r in 0 1; do
    grep -q "rank $r of 2 has shape \[.*\], another rank a different one" "$tmp/m.err" ||
        { cat "$tmp/m.err"; fail "model mismatch: rank $r did not say"; }
done
[ ! -f "$tmp/mismatch/model.safetensors" ] || fail "model mismatch: a model was written"
echo "dist_faults: models differ: both ranks named themselves and their shapes, status $rc, nothing written"

# ---- 3. a rank left waiting: the deadline
rc=0
t0=$(now)
# shellcheck disable=SC2086
NB_DIST_TIMEOUT=2 mpi -np 1 "$nabla" train $flags --epochs 1 --out "$tmp/stall" : \
    -np 1 "$nabla" train $flags --epochs 2 --out "$tmp/stall" > "$tmp/s.out" 2> "$tmp/s.err" || rc=$?
took=$(elapsed "$t0")
[ $rc -ne 0 ] || fail "stalled rank: mpirun exited 0"
grep -q 'rank 1 of 2: MPI_I[a-z]*: no answer from the other ranks after 2 s' "$tmp/s.err" ||
    { cat "$tmp/s.err"; fail "stalled rank: no message naming rank 1 and the call"; }
[ "$(echo "$took < 2 + 25" | bc)" = 1 ] || fail "stalled rank: the job took ${took} s to end"
loads "$tmp/stall" "stalled rank"
echo "dist_faults: rank 1 left waiting: its deadline (2 s) ended the job in ${took} s in all, status $rc; OUT loads"
