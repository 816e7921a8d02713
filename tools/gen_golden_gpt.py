#!/usr/bin/python3
"""Writes tests/golden/gpt.json: five training steps of a tiny GPT in torch 1.13, read by
tests/test_gpt.c, which trains nabla's GPT from the same weights on the same batches.

Regenerate from the repository root with Debian's python3-torch:

    /usr/bin/python3 tools/gen_golden_gpt.py

The model and the training are tools/gpt_torch.py's (the same as bench/gpt_parity.sh's, at a
size the suite runs in a blink): V 13, context 8, 2 blocks of 2 heads, width 16; batches of 4
from the permutation stream; AdamW with nanoGPT's groups, lr 1e-2, 2 warm-up steps then cosine
over 3, clipping at 1.  Stored: the initial parameters (names in torch's order), each step's
x and y (int32) and loss, and the parameters after the last step.  float32 throughout: these
are the values a float32 run gives, compared to 1e-5 relative.
"""
import json
import os

import torch

from golden_common import short32
from gpt_torch import GPT, batches, optimiser, train_step

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "golden", "gpt.json")
V, T, L, H, E, B, STEPS, WARMUP, LR = 13, 8, 2, 2, 16, 4, 5, 2, 1e-2


def tensor(t, dtype=None):
    t = t.detach()
    out = {"shape": list(t.shape),
           "data": [int(v) if dtype else short32(v) for v in t.reshape(-1).tolist()]}
    if dtype:
        out["dtype"] = dtype
    return out


def named(model):
    return [dict(name=n, **tensor(p)) for n, p in model.named_parameters()]


def main():
    torch.set_num_threads(1)
    torch.manual_seed(5)
    model = GPT(V, T, L, H, E)
    doc = {"vocab_size": V, "context": T, "n_layer": L, "n_head": H, "n_embd": E, "lr": LR,
           "warmup": WARMUP, "steps": STEPS, "params": named(model)}
    x, y = batches(STEPS, B, T, V, 5)
    opt, sched = optimiser(model, STEPS, WARMUP, LR)
    doc["x"] = [tensor(x[i], "int32") for i in range(STEPS)]
    doc["y"] = [tensor(y[i], "int32") for i in range(STEPS)]
    doc["loss"] = [train_step(model, opt, sched, x[i], y[i]) for i in range(STEPS)]
    doc["final"] = named(model)
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
