#!/usr/bin/python3
"""Golden vectors for tests/test_prune.c: Optimal Brain Damage's saliencies from torch's Hessian.

Regenerate (Debian's python3-torch; the `python3` on PATH may have no torch):

    /usr/bin/python3 tools/gen_golden_prune.py > tests/golden/prune.json

A 4-6-3 MLP, Linear(4, 6) Tanh Linear(6, 3), with float32 weights drawn from a fixed seed and
written exactly (the shortest decimal that reads back as the same float32), and two batches of 8
samples with class labels.  The loss is the mean of the two batches' cross-entropies (each a
mean over its batch), so its Hessian is the mean of the batches' Hessians, as nb_obd_saliency
averages them.  torch.autograd.functional.hessian computes the Hessian over all the parameters
flattened into one vector, in float64 from those values; the saliency of weight i is
w_i^2 H_ii / 2 (LeCun et al. 1990), written for the two weights (biases are not pruned).
"""
import json

import torch
import torch.nn.functional as F

from golden_common import D, short32

torch.manual_seed(1200)


def f32(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).to(torch.float32).to(D)


def enc(t):
    return {"shape": list(t.shape), "data": [short32(v) for v in t.to(torch.float32).flatten().tolist()]}


def enc64(t):
    return {"shape": list(t.shape), "data": t.flatten().tolist()}


params = {"0.weight": f32(6, 4, scale=0.8), "0.bias": f32(6, scale=0.3),
          "2.weight": f32(3, 6, scale=0.8), "2.bias": f32(3, scale=0.3)}
names = list(params)
shapes = [params[n].shape for n in names]
xs = [f32(8, 4) for _ in range(2)]
ys = [torch.randint(0, 3, (8,)) for _ in range(2)]


def unflat(v):
    out, at = {}, 0
    for n, s in zip(names, shapes):
        k = s.numel()
        out[n] = v[at:at + k].view(s)
        at += k
    return out


def loss(v):
    p = unflat(v)
    total = 0
    for x, y in zip(xs, ys):
        h = torch.tanh(F.linear(x, p["0.weight"], p["0.bias"]))
        total = total + F.cross_entropy(F.linear(h, p["2.weight"], p["2.bias"]), y)
    return total / len(xs)


flat = torch.cat([params[n].flatten() for n in names])
hdiag = unflat(torch.autograd.functional.hessian(loss, flat).diagonal())
out = {
    "params": {n: enc(params[n]) for n in names},
    "x": [enc(x) for x in xs],
    "y": [y.tolist() for y in ys],
    "hessian_diagonal": {n: enc64(hdiag[n]) for n in ("0.weight", "2.weight")},
    "saliency": {n: enc64(params[n] ** 2 * hdiag[n] / 2) for n in ("0.weight", "2.weight")},
}
print(json.dumps(out, indent=1))
