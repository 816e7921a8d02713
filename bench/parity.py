#!/usr/bin/python3
"""parity.py — the torch side of the parity check: one epoch of the course's MLP on
Fashion-MNIST with SGD (momentum), Adam and AdamW, from one set of initial weights and one batch
order, recording every step's loss.  bench_parity_mlp trains the same in nabla and compares.

    /usr/bin/python3 bench/parity.py OUT.safetensors [--seed S]

Run it with Debian's /usr/bin/python3 (torch 1.13).  OUT holds, in the safetensors layout:
    0.weight 0.bias 2.weight 2.bias 4.weight 4.bias   F32, torch's default init after manual_seed(S)
    order                                             I32 [60000], the epoch's batch order
    loss.sgd loss.adam loss.adamw                     F32 [938], the loss of every step
    loss.sgd.nudged ...                               F32 [938], the same from weights that are
                                                      each one ulp larger
    loss.sgd.relogged ...                             F32 [938], the same with the loss written
                                                      as -(z - logsumexp(z))[y].mean()
The relogged runs are the second control: the same mathematics as F.cross_entropy, differing
only in the last bits of the loss's gradient, as any other implementation's log-softmax does.
With Adam, whose first steps move each weight by about lr whatever the gradient's size, such a
difference flips the update of a weight whose gradient is nearly cancelled; in torch against
itself that lifts the loss apart by 4.5e-6 at step 34 and 2.8e-3 by step 100, exactly as far as
nabla parts from torch there (SGD and AdamW stay within 2e-7).
The nudged runs are a control: how far torch drifts from itself after a one-ulp change, the
scale of the rounding differences any implementation that is not bit-identical to torch has.  Where a trajectory
passes a sensitive point (a unit that dies or not, a loss spike), that drift grows exponentially
and the losses of the two runs part by far more than float32 rounding.
The `safetensors` package is not in Debian, so the file is written by hand: an 8-byte
little-endian header length, a JSON header padded with spaces to a multiple of 8, the raw data.

Batches are gathered by index from the uint8 images and divided by 255 in float32 (the C side
divides too, so both see the same bits); one thread, OpenBLAS's included, as on the C side.
"""
import argparse
import copy
import gzip
import json
import os
import struct
import sys

# torch.set_num_threads does not reach OpenBLAS, which torch's float GEMMs call and which starts
# one thread per core; it reads this variable when it loads (with torch), and a GEMM's rounding
# depends on how it is split across threads.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402  (after OPENBLAS_NUM_THREADS)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
BATCH = 64

# The three optimisers of the parity bar, with the hyper-parameters the C side uses.
OPTIMS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01),
}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, rank = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not a u8 IDX file")
    shape = struct.unpack(">" + "I" * rank, raw[4:4 + 4 * rank])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(shape)


def save_safetensors(path, tensors):
    """tensors: list of (name, numpy array of float32 or int32), written in that order."""
    codes = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}
    header, blobs, offset = {}, [], 0
    for name, a in tensors:
        a = np.ascontiguousarray(a)
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def relogged_cross_entropy(z, y):
    """F.cross_entropy as its formula, -(z - logsumexp(z))[y].mean(): the same mathematics,
    other rounding."""
    return -(z - z.logsumexp(1, keepdim=True)).gather(1, y[:, None]).mean()


def train(init, make, order, x, y, loss_fn=None):
    """One epoch from a copy of init; the loss of every step."""
    model = copy.deepcopy(init)
    opt = make(model.parameters())
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    losses = []
    for i in range(0, x.shape[0], BATCH):
        idx = order[i:i + BATCH]
        opt.zero_grad()
        loss = loss_fn(model(x[idx].float().div_(255)), y[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses, dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    x = torch.from_numpy(read_idx(f"{DATA}/train-images-idx3-ubyte.gz").reshape(-1, 784).copy())
    y = torch.from_numpy(read_idx(f"{DATA}/train-labels-idx1-ubyte.gz").astype(np.int64))
    init = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, 10))
    order = torch.randperm(x.shape[0])
    nudged = copy.deepcopy(init)
    with torch.no_grad():
        for p in nudged.parameters():
            p.copy_(torch.nextafter(p, torch.tensor(float("inf"))))

    out = [(k, v.detach().numpy().copy()) for k, v in init.state_dict().items()]
    out.append(("order", order.numpy().astype(np.int32)))
    for name, make in OPTIMS.items():
        losses = train(init, make, order, x, y)
        control = train(nudged, make, order, x, y)
        relogged = train(init, make, order, x, y, relogged_cross_entropy)
        out += [(f"loss.{name}", losses), (f"loss.{name}.nudged", control),
                (f"loss.{name}.relogged", relogged)]
        drift = np.max(np.abs(control.astype(np.float64) - losses) / np.abs(losses))
        print(f"torch {name}: {len(losses)} steps, loss {losses[0]:.6f} .. {losses[-1]:.6f}, "
              f"drift after a one-ulp nudge {drift:.3e}", file=sys.stderr)
    save_safetensors(args.out, out)


if __name__ == "__main__":
    main()
