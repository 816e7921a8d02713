#!/bin/sh
# ptq.sh — issue 11's post-training quantization bars, nabla against float32 and against torch:
#   int8 PTQ of the course MLP (784-64-64-10, ReLU) and of LeNet (examples/models/lenet.json)
#   within 0.5 point of their float32 test accuracy and within 0.3 point of torch's int8 PTQ of
#   the same float model with the same calibration batches; quantized files <= 0.27x the float
#   size; quantized LeNet inference (batch 256, test set, one thread) >= 2x nabla float32 and
#   >= 1.2x torch int8.
#
#   [THREADS=T] sh bench/ptq.sh [BUILD_DIR]     (default: build; T threads, default 1: the bar's)
#
# Trains both models with `nabla train` (MLP: EPOCHS_MLP epochs, default 10; LeNet:
# EPOCHS_LENET, default 2; both with the command's default SGD) into a temporary folder, or takes MLP= and LENET= from
# the environment (model.safetensors files written by nabla train).  Then per model:
# bench_ptq (bench/ptq.c: nabla's PTQ, CALIB batches of 64, min-max, weights per channel
# symmetric) and bench/torch_ptq.py (torch.ao.quantization's eager PTQ, the same scheme and
# batches, the 'onednn' engine: this torch has no fbgemm), REPS timed passes each (default 3).
#
# Measured (a machine shared with 7 other jobs on 2 cores: times are noisy, rerun for figures;
# MLP 10 epochs, LeNet 2 epochs with the default SGD, CALIB 10, REPS 3 and 5, three runs):
#   MLP:   float 87.65 %, nabla int8 87.61 %, torch int8 87.61 %; file 0.264x
#   LeNet: float 86.14 %, nabla int8 86.28 %, torch int8 86.27 %; file 0.255x;
#          nabla int8 1.77-2.23x nabla float32, 0.91-1.12x torch int8 (onednn)
# After codes pass between quantized layers (LeNet 1 epoch, MLP 3, REPS 3, one run each, the
# machine very busy: wall times 3x those of a calmer moment):
#   THREADS=1: nabla int8 2.17x nabla float32, 1.32x torch int8; CPU time a sample (int8):
#              nabla 48.4 us, torch 52.7 us (1.09x)
#   THREADS=2: nabla int8 1.50x nabla float32, 1.58x torch int8; CPU a sample 47.4 / 107.4 us
# After the batched int8 convolution (src/backend/cpu/qconv.c; a LeNet of float 83.98 %, REPS 3,
# one run, load average 18-20 on the 2 cores: wall times 3-5x a calm machine's; the same
# codes, 84.11 %):
#   THREADS=1: nabla int8 3.87x nabla float32, 1.87x torch int8; CPU time a sample (int8):
#              nabla 27.6 us, torch 54.0 us (1.95x); before it (load 4.5): 45.6 / 44.8 us (0.98x)
set -eu

BUILD=${1:-build}
CALIB=${CALIB:-10}
REPS=${REPS:-3}
DATA=/usr/share/datasets/fashion-mnist
PY=/usr/bin/python3
for exe in "$BUILD/nabla" "$BUILD/bench_ptq"; do
    if [ ! -x "$exe" ]; then
        echo "ptq.sh: $exe not found; build it: make" >&2
        exit 1
    fi
done
if [ ! -d "$DATA" ]; then
    echo "ptq.sh: $DATA is missing: apt-get install dataset-fashion-mnist (or make demo)" >&2
    exit 1
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [ -z "${MLP:-}" ]; then
    "$BUILD/nabla" train --model 784-64-64-10 --act relu --epochs "${EPOCHS_MLP:-10}" --seed 0 \
        --data "$DATA" --out "$TMP/mlp" > "$TMP/mlp.log" 2>&1 || { tail "$TMP/mlp.log" >&2; exit 1; }
    MLP=$TMP/mlp/model.safetensors
fi
if [ -z "${LENET:-}" ]; then
    "$BUILD/nabla" train --model-file examples/models/lenet.json \
        --epochs "${EPOCHS_LENET:-2}" --seed 0 --data "$DATA" --out "$TMP/lenet" > "$TMP/lenet.log" 2>&1 ||
        { tail "$TMP/lenet.log" >&2; exit 1; }
    LENET=$TMP/lenet/model.safetensors
fi
for model in mlp lenet; do
    if [ $model = mlp ]; then w=$MLP; else w=$LENET; fi
    echo "== $model ($w)"
    "$BUILD/bench_ptq" "$w" "$DATA" "$CALIB" "$REPS" | tee "$TMP/$model.nabla"
    "$PY" bench/torch_ptq.py "$w" --calib "$CALIB" --reps "$REPS" | tee "$TMP/$model.torch"
    grep -h '^RESULT' "$TMP/$model.nabla" "$TMP/$model.torch" | awk -v model=$model '
        { for (i = 3; i <= NF; i++) { split($i, kv, "="); v[$2, kv[1]] = kv[2] } }
        END {
            df = v["nabla", "int8_acc"] - v["nabla", "float_acc"]; dt = v["nabla", "int8_acc"] - v["torch", "int8_acc"]
            printf "%s: int8 - float32 %+.2f points (bar: within 0.5, %s); nabla - torch int8 %+.2f (bar: within 0.3, %s)\n",
                model, df, (df >= -0.5 ? "ok" : "MISS"), dt, (dt >= -0.3 && dt <= 0.3 ? "ok" : "MISS")
            printf "%s: file %.3fx float32 (bar: <= 0.27, %s)\n", model, v["nabla", "size_ratio"],
                (v["nabla", "size_ratio"] <= 0.27 ? "ok" : "MISS")
            if (model == "lenet") {
                s = v["nabla", "speedup"]; t = v["torch", "int8_ms"] / v["nabla", "int8_ms"]
                c = v["torch", "int8_cpu_us"] / v["nabla", "int8_cpu_us"]
                printf "lenet: nabla int8 %.2fx nabla float32 (bar: >= 2, %s), %.2fx torch int8 (bar: >= 1.2, %s)\n",
                    s, (s >= 2 ? "ok" : "MISS"), t, (t >= 1.2 ? "ok" : "MISS")
                printf "lenet: int8 CPU time a sample: nabla %.1f us, torch %.1f us (%.2fx)\n",
                    v["nabla", "int8_cpu_us"], v["torch", "int8_cpu_us"], c
            }
        }'
done
