#!/usr/bin/python3
"""gen_golden_grad2.py: PyTorch's second derivatives for tests/test_grad2.c, written to
tests/golden/grad2.json.

Regenerate from the repository root with Debian's python3-torch (not a pyenv python):

    /usr/bin/python3 tools/gen_golden_grad2.py

The cases are tools/gen_golden.py's (imported, not copied), which mirror tests/op_cases.h one
for one: every smooth case of a differentiable row, with the same inputs as tests/golden/ops.json
(the same generator, seeded by the case's name).  After the inputs the generator draws R (of the
output's shape) and a U per float input, rounded to float32 and stored, so that the C test reads
them rather than drawing them again.  For each case, in float64 from those float32 values:

    L = sum(out * R)        g = torch.autograd.grad(L, x, create_graph=True)
    S = sum_i sum(g_i * U_i)
    hx, hr = torch.autograd.grad(S, (x, R))     (zeros where S does not depend on an input)

so hx_j = sum_i U_i^T d2L / dx_i dx_j and hr = J U, the derivative with respect to the
grad_output, as torch's gradgradcheck differentiates it.

And the course MLP (784-64-64-10, ReLU, cross-entropy) on 8 samples: its data and weights come
from the SplitMix64 stream of tests/op_cases.h (so the C test draws them itself, and checks
their sum against the one stored here), and the file holds torch.autograd.functional.hessian of
the loss with respect to the last layer's weights [10, 64]: a 640 x 640 matrix whose upper
triangle (row by row, diagonal included) is stored as base64 of little-endian float32, 0.8 MB
where JSON numbers would take 2.5 MB.
"""
import base64
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_golden as gg  # noqa: E402  (the case table, the functions, the drawing)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden",
                   "grad2.json")
MASK64 = (1 << 64) - 1


def f32_tensor(t):
    """t's values rounded to float32, kept in float64 (as the C test reads them)."""
    return t.float().double()


def run(c):
    gen = torch.Generator().manual_seed(gg.seed_of(c["name"]))
    xs, floats, inputs = [], [], []
    for s in c["inputs"]:
        values = gg.draw_values(s, gen)
        t = torch.tensor(values, dtype=torch.float64).reshape(s["shape"])
        if s["draw"] == "index":
            t = t.long()
        elif s["draw"] not in ("mask", "fixed", "grid"):
            t.requires_grad_(True)
            floats.append(t)
        xs.append(t)
        inputs.append([gg.num(v) for v in values])
    out = gg.FNS[c["fn"]](xs, c["args"])
    r = f32_tensor(torch.rand(out.shape, generator=gen, dtype=torch.float64) * 2 - 1)
    r.requires_grad_(True)
    us = [f32_tensor(torch.rand(x.shape, generator=gen, dtype=torch.float64) * 2 - 1)
          if x.requires_grad else None for x in xs]
    g = torch.autograd.grad((out * r).sum(), floats, create_graph=True)
    s = sum((gi * u).sum() for gi, u in zip(g, [u for u in us if u is not None]))
    h = torch.autograd.grad(s, floats + [r], allow_unused=True)
    # zeros where S does not depend on an input (None, or torch's unallocated ZeroTensor)
    h = [torch.zeros(t.shape, dtype=torch.float64) + (0 if d is None else d.detach())
         for t, d in zip(floats + [r], h)]
    by_input, k = {"u": [], "g": [], "hx": []}, 0
    for x, u in zip(xs, us):
        if u is None:
            for key in by_input:
                by_input[key].append(None)
            continue
        by_input["u"].append(gg.flat(u))
        by_input["g"].append(gg.flat(g[k]))
        by_input["hx"].append(gg.flat(h[k]))
        k += 1
    return dict({"name": c["name"], "op": c["op"], "fn": c["fn"], "inputs": inputs,
                 "r": gg.flat(r), "hr": gg.flat(h[-1])}, **by_input)


# ---- the course MLP

class SplitMix64:
    """oc_next / oc_uniform01 of tests/op_cases.h."""

    def __init__(self, seed):
        self.state = seed

    def next(self):
        self.state = (self.state + 0x9e3779b97f4a7c15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & MASK64
        return z ^ (z >> 31)

    def uniform01(self):
        return (self.next() >> 11) * 2.0 ** -53


def fnv1a64(name):
    """gc_seed_of of tests/gradcheck_util.h (all 64 bits, unlike gen_golden.seed_of)."""
    h = 0xcbf29ce484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001b3) & MASK64
    return h


def course_mlp(batch=8, sizes=(784, 64, 64, 10)):
    """mlp_draw of tests/test_grad2.c: x, labels, then W, b of each layer, uniform in
    +-1/sqrt(fan_in) (torch's nn.Linear initialisation)."""
    rng = SplitMix64(fnv1a64("course_mlp_hessian"))
    total = [0.0]

    def uniform(shape, lo, hi):
        v = [gg.f32(lo + (hi - lo) * rng.uniform01()) for _ in range(math.prod(shape))]
        for a in v:
            total[0] += a
        return torch.tensor(v, dtype=torch.float64).reshape(shape)

    x = uniform((batch, sizes[0]), 0.0, 1.0)
    labels = torch.tensor([rng.next() % 10 for _ in range(batch)])
    layers = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        a = 1.0 / math.sqrt(fan_in)
        layers.append((uniform((fan_out, fan_in), -a, a), uniform((fan_out,), -a, a)))

    def loss_of(w3):
        h = x
        for i, (w, b) in enumerate(layers):
            h = F.linear(h, w3 if i == len(layers) - 1 else w, b)
            if i < len(layers) - 1:
                h = torch.relu(h)
        return F.cross_entropy(h, labels)

    w3 = layers[-1][0].clone().requires_grad_(True)
    loss = loss_of(w3)
    (grad,) = torch.autograd.grad(loss, w3)
    n = w3.numel()
    hess = torch.autograd.functional.hessian(loss_of, w3).reshape(n, n)
    upper = torch.cat([hess[i, i:] for i in range(n)]).float().numpy()
    return {"comment": "784-64-64-10 ReLU MLP, mean cross-entropy over 8 samples; Hessian of "
                       "the loss with respect to the last layer's weights [10, 64], flattened "
                       "row-major",
            "sum_of_values": total[0], "loss": loss.item(), "grad": gg.flat(grad),
            "hessian_upper_f32_base64": base64.b64encode(upper.astype("<f4").tobytes()).decode()}


def main():
    cases = [run(c) for c in gg.CASES
             if not c["nonsmooth"] and c["op"] not in gg.FORWARD_ONLY]
    lines = ["{",
             '"comment": "PyTorch second derivatives for tests/test_grad2.c, written by '
             'tools/gen_golden_grad2.py; regenerate with /usr/bin/python3 '
             'tools/gen_golden_grad2.py, do not edit",',
             '"torch": %s,' % json.dumps(torch.__version__),
             '"course_mlp": %s,' % json.dumps(course_mlp()),
             '"cases": [']
    lines += [json.dumps(c, separators=(",", ":")) + ("," if i + 1 < len(cases) else "")
              for i, c in enumerate(cases)]
    lines += ["]", "}"]
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d cases and the course MLP's Hessian to %s" % (len(cases),
                                                                  os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
