#!/usr/bin/python3
"""torch_fashion_mlp.py — the torch side of the training benchmarks: the course's MLP (or, with
--model lenet, the LeNet-style CNN) on Fashion-MNIST, trained as `nabla train` trains it, timed
and measured the same way.

    /usr/bin/python3 bench/torch_fashion_mlp.py [--model mlp|lenet] [--threads N] [--epochs N] [--seed S]

Run it with Debian's /usr/bin/python3 (torch 1.13), not a `python3` found on PATH.

Setup (mlp): Linear(784,64) ReLU Linear(64,64) ReLU Linear(64,10), cross-entropy, SGD lr 0.01
momentum 0.9, CosineAnnealingLR(T_max=epochs) stepped once per epoch, batch 64, seed S, 10 epochs.
Setup (lenet): Conv2d(1,16,5,pad 2) ReLU MaxPool2d(2) Conv2d(16,32,5,pad 2) ReLU MaxPool2d(2)
Flatten Linear(1568,128) ReLU Linear(128,10), Adam lr 1e-3, the same cosine, 5 epochs — the same
as `nabla train --model-file examples/models/lenet.json --optim adam --lr 1e-3 --epochs 5`.

Data: the course reads the set through torchvision's FashionMNIST with transforms.ToTensor()
and a DataLoader(batch_size=64, shuffle=True), which converts every image to float / 255 one
sample at a time in Python.  That per-sample path is what makes the course's loop slow, and it is
not what a framework's training speed is about, so this script does what nabla's loader does:
the images stay uint8 in memory and each batch is gathered by index and converted to float / 255
in one tensor operation.  The shuffle is a fresh torch.randperm per epoch from the seeded global
generator, like a DataLoader's RandomSampler (a different stream of numbers, the same kind of
order).  The training is the course's; only the time spent in Python per sample is gone.

Threads: --threads N sets torch's intra-op threads and OpenBLAS's (see below).

Figures: test accuracy after every epoch; training samples/s over the training loops only
(evaluation excluded), and the CPU time of those loops (all threads); total wall time; peak RSS
(ru_maxrss) of this process, torch included.  --hidden sets the MLP's hidden sizes and --limit
trains on the first N samples, as `nabla train --model 784-H1-H2-10 --limit N` do.
The last line is machine-readable:
    RESULT torch threads=1 epochs=10 acc=87.70 samples_per_s=130000 train_s=4.6 train_cpu_s=4.5 total_s=6.1 peak_rss_mb=590
"""
import argparse
import gzip
import os
import resource
import struct
import time

DATA = "/usr/share/datasets/fashion-mnist"

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--model", choices=["mlp", "lenet"], default="mlp")
ap.add_argument("--epochs", type=int, default=0, help="0: 10 for mlp, 5 for lenet")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--batch", type=int, default=64)
ap.add_argument("--hidden", default="64,64",
                help="mlp hidden sizes, comma-separated (nabla train --model 784-H1-H2-10)")
ap.add_argument("--limit", type=int, default=0,
                help="train on the first N samples only (0: all), as nabla train --limit")
args = ap.parse_args()
args.epochs = args.epochs or (10 if args.model == "mlp" else 5)

# torch.set_num_threads does not reach OpenBLAS, which torch's float GEMMs call and which starts
# one thread per core: without this, "1 thread" would still run its GEMMs on every core.
# OpenBLAS reads the variable when it is loaded, by numpy or torch, so it is set before both.
os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)

import numpy as np  # noqa: E402  (after OPENBLAS_NUM_THREADS)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402


def read_idx(path):
    """A gzip IDX file as a numpy array: magic 0 0 type rank, big-endian sizes, then the data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, rank = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not a u8 IDX file")
    shape = struct.unpack(">" + "I" * rank, raw[4:4 + 4 * rank])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(shape)


def load(split):
    x = read_idx(f"{DATA}/{split}-images-idx3-ubyte.gz").reshape(-1, 784)
    y = read_idx(f"{DATA}/{split}-labels-idx1-ubyte.gz")
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


def main():
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x_train, y_train = load("train")
    x_test, y_test = load("t10k")
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    n = x_train.shape[0]

    if args.model == "mlp":
        sizes = [784] + [int(h) for h in args.hidden.split(",")] + [10]
        layers = []
        for i in range(len(sizes) - 1):
            layers += [nn.Linear(sizes[i], sizes[i + 1])] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
        model = nn.Sequential(*layers)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        model = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 16, 5, padding=2),
                              nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5, padding=2),
                              nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1568, 128),
                              nn.ReLU(), nn.Linear(128, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)

    train_s = 0.0
    train_cpu_s = 0.0
    acc = 0.0
    for epoch in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        c0 = time.process_time()
        order = torch.randperm(n)
        total = 0.0
        for i in range(0, n, args.batch):
            idx = order[i:i + args.batch]
            xb = x_train[idx].float().div_(255)
            yb = y_train[idx]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        dt = time.perf_counter() - t0
        train_s += dt
        train_cpu_s += time.process_time() - c0
        lr = sched.get_last_lr()[0]
        sched.step()

        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, x_test.shape[0], 1000):
                logits = model(x_test[i:i + 1000].float().div_(255))
                correct += (logits.argmax(1) == y_test[i:i + 1000]).sum().item()
        acc = 100.0 * correct / x_test.shape[0]
        print(f"epoch {epoch + 1}/{args.epochs}  train loss {total / n:.4f}  test acc {acc:.2f}%  "
              f"lr {lr:.5g}  train {dt:.2f}s ({n / dt:.0f} samples/s)", flush=True)

    total_s = time.perf_counter() - t_start
    rate = n * args.epochs / train_s
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(f"torch {torch.__version__}, {args.threads} thread(s): test acc {acc:.2f}%, "
          f"{rate:.0f} samples/s in training, {total_s:.1f}s in all, peak RSS {peak_mb:.0f} MB")
    print(f"RESULT torch model={args.model} threads={args.threads} epochs={args.epochs} acc={acc:.2f} "
          f"samples_per_s={rate:.0f} train_s={train_s:.2f} train_cpu_s={train_cpu_s:.3f} "
          f"total_s={total_s:.2f} "
          f"peak_rss_mb={peak_mb:.1f}")


if __name__ == "__main__":
    main()
