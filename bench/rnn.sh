#!/bin/sh
# rnn.sh — recurrent layers (LSTM, GRU, RNN) forward + backward, nabla's fused path against
# torch 1.13 CPU on the same shapes: for each shape, mode and thread count, ROUNDS rounds that
# run nabla then torch (interleaved, so both see the same load), each round the median of REPS
# steps; printed are the medians over the rounds of the CPU time and the wall-clock time of one
# step, and torch's / nabla's (above 1: nabla is faster).  "per CPU-second" is the CPU ratio:
# the work each needs for one step, the fairer figure on a shared machine.  Then, per shape and
# mode, each library at its best thread count (lowest wall-clock median).
#
#   sh bench/rnn.sh [BUILD_DIR]        (default build; needs build/bench_rnn)
#
# The environment may set SHAPES ("T B I H L" entries separated by commas, default
# "64 32 128 256 2,64 32 128 128 1"), MODES (default "lstm gru rnn_tanh"; rnn_relu too),
# THREADS (default "1 2"), REPS (default 3), ROUNDS (default 3) and COMPOSITE=1 to print
# nabla's composite path (ops per step) once per shape and mode beside the fused one.
#
# Measured with the defaults on a shared 2-core machine under a load average of 16 to 18 (other
# jobs running; 11 minutes; indicative, rerun on a quiet machine), CPU ms per step at 1 thread,
# nabla / torch 1.13 (torch / nabla):
#   T64 B32 I128 H256 L2: LSTM 273 / 472 (1.73), GRU 181 / 353 (1.95), RNN tanh 55 / 123 (2.22)
#   T64 B32 I128 H128 L1: LSTM 36 / 67 (1.87), GRU 25 / 229 (9.0), RNN tanh 9.7 / 19.2 (1.97)
# At the best thread count (wall-clock) torch/nabla is 1.34, 2.02, 2.46 and 1.85, 9.73, 2.59;
# torch's 2-thread runs took 8 to 45 times its 1-thread CPU time (OpenMP threads waiting on
# descheduled partners), nabla's 2-thread ones about its 1-thread time.
set -eu
BUILD=${1:-build}
SHAPES=${SHAPES:-64 32 128 256 2,64 32 128 128 1}
MODES=${MODES:-lstm gru rnn_tanh}
THREADS=${THREADS:-1 2}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-3}
COMPOSITE=${COMPOSITE:-0}
DIR=$(dirname "$0")

# The median of the numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# The value of "@ KEY value" in $2.
pick() { echo "$2" | awk -v k="$1" '$1 == "@" && $2 == k { print $3 }'; }

echo "$SHAPES" | tr ',' '\n' | while read -r shape; do
    for mode in $MODES; do
        best=""
        if [ "$COMPOSITE" = 1 ]; then
            # shellcheck disable=SC2086
            "$BUILD/bench_rnn" "$mode" $shape "$REPS" 1 | grep -v '^@'
        fi
        for th in $THREADS; do
            nw=""; nc=""; tw=""; tc=""
            r=0
            while [ "$r" -lt "$ROUNDS" ]; do
                # shellcheck disable=SC2086
                nb=$("$BUILD/bench_rnn" "$mode" $shape "$REPS" "$th" fused)
                # shellcheck disable=SC2086
                pt=$(/usr/bin/python3 "$DIR/torch_rnn.py" "$mode" $shape "$REPS" "$th")
                nw="$nw $(pick nabla_ms "$nb")"; nc="$nc $(pick nabla_cpu_ms "$nb")"
                tw="$tw $(pick torch_ms "$pt")"; tc="$tc $(pick torch_cpu_ms "$pt")"
                r=$((r + 1))
            done
            a=$(echo "$nw" | tr ' ' '\n' | grep . | median); ac=$(echo "$nc" | tr ' ' '\n' | grep . | median)
            b=$(echo "$tw" | tr ' ' '\n' | grep . | median); bc=$(echo "$tc" | tr ' ' '\n' | grep . | median)
            awk -v m="$mode" -v s="$shape" -v th="$th" -v a="$a" -v ac="$ac" -v b="$b" -v bc="$bc" 'BEGIN {
                printf "%-8s T B I H L = %s, %d thread(s): nabla %8.2f ms CPU %8.2f ms wall | torch %8.2f ms CPU %8.2f ms wall | torch/nabla %.2f CPU, %.2f wall\n",
                       m, s, th, ac, a, bc, b, bc / ac, b / a }'
            best="$best$th $a $b
"
        done
        echo "$best" | grep . | awk -v m="$mode" -v s="$shape" '
            NR == 1 || $2 < na { na = $2; nt = $1 } NR == 1 || $3 < ta { ta = $3; tt = $1 }
            END { printf "%-8s T B I H L = %s, best thread count: nabla %.2f ms wall (%d), torch %.2f ms wall (%d): torch/nabla %.2f\n",
                         m, s, na, nt, ta, tt, ta / na }'
    done
done
