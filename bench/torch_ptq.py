#!/usr/bin/python3
"""torch_ptq.py — the torch side of issue 11's PTQ bars: torch.ao.quantization's eager-mode
post-training quantization of the float model a `nabla train` run wrote, with the calibration
batches bench_ptq (bench/ptq.c) uses, timed as bench_ptq times nabla.

    /usr/bin/python3 bench/torch_ptq.py WEIGHTS [--calib N] [--reps R] [--per-tensor]

Run it with Debian's /usr/bin/python3 (torch 1.13), not a `python3` found on PATH.

Model: built from the nabla.model description in WEIGHTS' metadata (flatten, unflatten,
linear, conv2d, relu, maxpool2d) with WEIGHTS' float32 tensors (the safetensors file is read
here, no extra package), wrapped in QuantStub / DeQuantStub, each Linear or Conv2d fused with
the ReLU after it (torch.ao.quantization.fuse_modules), as nabla fuses them.

qconfig: MinMaxObserver (quint8, per-tensor affine) for activations and, for weights,
PerChannelMinMaxObserver (qint8, per-channel symmetric; MinMaxObserver per-tensor symmetric
with --per-tensor): torch's x86 default without reduce_range and without the histogram
observer, the same scheme as bench_ptq.  Engine: this torch build has no fbgemm (its
supported_engines are qnnpack and onednn), so 'onednn' (x86, AVX-512 VNNI) runs the int8 model;
'x86' does not exist in torch 1.13.

Calibration: the first N batches of 64 training images in file order, / 255 (bench_ptq's).
Timing: the 10000 test images in batches of 256, THREADS threads (environment, default 1), R
passes of each model, alternating, medians, and the int8 passes' process CPU time per sample
(the work done, whatever the waits for a core on a busy machine).  The last line is
machine-readable:
    RESULT torch float_acc=86.14 int8_acc=86.20 float_ms=300 int8_ms=200 speedup=1.50 int8_cpu_us=19.5
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import time

os.environ["OPENBLAS_NUM_THREADS"] = "1"
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.ao.quantization import (DeQuantStub, MinMaxObserver, PerChannelMinMaxObserver,  # noqa: E402
                                   QConfig, QuantStub, convert, fuse_modules, prepare)

DATA = "/usr/share/datasets/fashion-mnist"


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        a, b = info["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(info["shape"])
    return header["__metadata__"], tensors


def layer(spec):
    t = spec["type"]
    if t == "flatten":
        return nn.Flatten()
    if t == "unflatten":
        return nn.Unflatten(1, tuple(spec["shape"]))
    if t == "linear":
        return nn.Linear(spec["in"], spec["out"], bias=spec.get("bias", True))
    if t == "conv2d":
        return nn.Conv2d(spec["in"], spec["out"], spec["kernel"], stride=spec.get("stride", 1),
                         padding=spec.get("padding", 0), bias=spec.get("bias", True))
    if t == "relu":
        return nn.ReLU()
    if t == "maxpool2d":
        return nn.MaxPool2d(spec["kernel"])
    raise SystemExit("torch_ptq.py: layer type %s is not handled" % t)


class Quantized(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.quant, self.body, self.dequant = QuantStub(), body, DeQuantStub()

    def forward(self, x):
        return self.dequant(self.body(self.quant(x)))


def idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
    t = torch.frombuffer(bytearray(raw[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)
    return t.reshape(shape[0], -1)  # images as rows of 784, as nabla's loader gives them


def run(model, x, y):
    """Accuracy (%), milliseconds and process CPU milliseconds of one pass over the test set in
    batches of 256."""
    right = 0
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for i in range(0, len(x), 256):
            out = model(x[i:i + 256].float() / 255)
            right += int((out.argmax(1) == y[i:i + 256]).sum())
    return 100.0 * right / len(x), 1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights")
    ap.add_argument("--calib", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--per-tensor", action="store_true")
    args = ap.parse_args()
    threads = int(os.environ.get("THREADS", "1"))
    torch.set_num_threads(threads)
    torch.backends.quantized.engine = "onednn"

    meta, tensors = read_safetensors(args.weights)
    specs = json.loads(meta["nabla.model"])["layers"]
    body = nn.Sequential(*[layer(s) for s in specs])
    body.load_state_dict(tensors)
    body.eval()
    ref = Quantized(body)  # float: the stubs are identities before prepare
    q = Quantized(nn.Sequential(*[layer(s) for s in specs]))
    q.body.load_state_dict(tensors)
    q.eval()
    pairs = [[str(i), str(i + 1)] for i, s in enumerate(specs[:-1])
             if s["type"] in ("linear", "conv2d") and specs[i + 1]["type"] == "relu"]
    if pairs:
        q.body = fuse_modules(q.body, pairs)
    weight_obs = (MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
                  if args.per_tensor else
                  PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric))
    q.qconfig = QConfig(activation=MinMaxObserver.with_args(dtype=torch.quint8, qscheme=torch.per_tensor_affine),
                        weight=weight_obs)
    prepare(q, inplace=True)
    train = idx("train-images-idx3-ubyte.gz")
    with torch.no_grad():
        for b in range(args.calib):
            q(train[64 * b:64 * (b + 1)].float() / 255)
    convert(q, inplace=True)

    x, y = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz").reshape(-1).long()
    run(q, x, y)
    run(ref, x, y)
    tq, tf, cq = [], [], []
    for _ in range(args.reps):
        acc_q, t, c = run(q, x, y)
        tq.append(t)
        cq.append(c)
        acc_f, t, _ = run(ref, x, y)
        tf.append(t)
    mf, mq, us = statistics.median(tf), statistics.median(tq), 1000 * statistics.median(cq) / len(x)
    print("torch float32: accuracy %.2f %%, test set in %.1f ms (median of %d, batch 256, %d thread%s)"
          % (acc_f, mf, args.reps, threads, "" if threads == 1 else "s"))
    print("torch int8 (%s): accuracy %.2f %%, test set in %.1f ms: %.2fx float32; %.1f us CPU a sample"
          % (torch.backends.quantized.engine, acc_q, mq, mf / mq, us))
    print("RESULT torch float_acc=%.2f int8_acc=%.2f float_ms=%.1f int8_ms=%.1f speedup=%.2f int8_cpu_us=%.2f"
          % (acc_f, acc_q, mf, mq, mf / mq, us))


if __name__ == "__main__":
    main()
