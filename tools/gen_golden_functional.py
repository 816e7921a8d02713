#!/usr/bin/python3
"""Golden vectors for tests/test_functional.c: torch.autograd.functional's jacobian, vjp, jvp
and, for one-element functions, hessian and hvp, on small functions written the same way in C.

Regenerate (Debian's python3-torch 1.13; the `python3` on PATH may have no torch):

    /usr/bin/python3 tools/gen_golden_functional.py > tests/golden/functional.json

Inputs and constants are drawn in float32 from a fixed seed and written exactly (the shortest
decimal that reads back as the same float32); torch computes in float64 from those values, so
the references are the exact derivatives and the C test compares its float32 results to them.
A case names its function (the C test has one of the same name), lists the op families whose
second derivatives it needs ("needs": a function of add/sub/mul/div/pow, sum/mean and the
views reshape, transpose and expand needs nothing beyond them), and holds x, the constants, v_out (for vjp), v_in (for jvp, hvp)
and torch's results.
"""
import json
import math

import torch
from torch.autograd.functional import hessian, hvp, jacobian, jvp, vjp

from golden_common import D, f32, short32

torch.manual_seed(10)


def enc_in(t):
    return {"shape": list(t.shape), "data": [short32(v) for v in t.to(torch.float32).flatten().tolist()]}


def enc_out(t):
    """A reference value to 12 significant digits (the test's tolerances are about 1e-5)."""
    data = [float("%.12g" % v) for v in t.detach().flatten().tolist()]
    assert all(math.isfinite(v) for v in data), t
    return {"shape": list(t.shape), "data": data}


def randn(*s, scale=1.0):
    return f32(torch.randn(s) * scale)


def uniform(lo, hi, *s):
    return f32(torch.rand(s) * (hi - lo) + lo)


# Each function: (x, c) -> tensor, with c the dict of constants.  The C test's functions of the
# same name build exactly these expressions from nabla's ops, in the same order.
def cubic_coupled(x, c):  # sum(x x x) + sum(x) sum(x x)
    return (x * x * x).sum() + x.sum() * (x * x).sum()


def ratio(x, c):  # sum(x / (c + x x)) * mean(x), c a [1] tensor
    return (x / (c["c"] + x * x)).sum() * x.mean()


def power(x, c):  # sum(x ** p) + sum(b ** x): both inputs of pow, x > 0
    return (x ** c["p"]).sum() + (c["b"] ** x).sum()


def views(x, c):  # x [2, 3]: a transpose, reshapes (one of them a copy) and an expand
    t = x.transpose(0, 1)                      # [3, 2]
    e = x.reshape(1, 6).expand(2, 6)           # [2, 6]
    return (t * t * t).sum() + (e * c["w"]).sum() * (t.reshape(6) * c["w"]).sum()


def slices(x, c):  # x [2, 3]: overlapping column slices; needs slice's backward as ops
    s = x[:, 0:2] * x[:, 1:3]                  # [2, 2]
    return s.sum() * x.sum() + (s * s * c["w"]).sum()


def vector(x, c):  # x [3] -> [2, 3]: x sum(x) - a / (b + x x), broadcast over a [2, 1]
    return x * x.sum() - c["a"] / (c["b"] + x * x)


def tanh_exp(x, c):  # needs the unary family (tanh, exp, sin)
    return (torch.tanh(x) * torch.exp(x * c["s"]) + torch.sin(x) * x).sum()


def quadratic_matmul(x, c):  # x^T A x with A not symmetric: needs matmul
    return (x * (c["A"] @ x)).sum()


def mlp(x, c):  # tanh(W2 tanh(W1 x + b1) + b2) as linear layers, x [2, 3]: needs linear, tanh
    h = torch.tanh(torch.nn.functional.linear(x, c["W1"], c["b1"]))
    return torch.tanh(torch.nn.functional.linear(h, c["W2"], c["b2"]))


def mlp_loss(x, c):  # mean of mlp(x)^2: one element, for the Hessian
    y = mlp(x, c)
    return (y * y).mean()


def softmax_dot(x, c):  # sum(softmax(x, -1) * w), x [2, 3]: needs softmax
    return (torch.softmax(x, -1) * c["w"]).sum()


cases = []


def add(name, fn, x, consts, needs=()):
    x = f32(x)
    consts = {k: f32(v) for k, v in consts.items()}
    call = lambda x: fn(x, consts)  # noqa: E731
    y = call(x)
    v_out, v_in = randn(*y.shape), randn(*x.shape)
    case = {"name": name, "needs": list(needs), "x": enc_in(x),
            "consts": {k: enc_in(v) for k, v in consts.items()},
            "v_out": enc_in(v_out), "v_in": enc_in(v_in),
            "value": enc_out(y),
            "jacobian": enc_out(jacobian(call, x)),
            "vjp": enc_out(vjp(call, x, v_out)[1]),
            "jvp": enc_out(jvp(call, x, v_in)[1])}
    if y.numel() == 1:
        case["hessian"] = enc_out(hessian(call, x))
        case["hvp"] = enc_out(hvp(call, x, v_in)[1])
    cases.append(case)


add("cubic_coupled", cubic_coupled, randn(4), {})
add("ratio", ratio, randn(2, 3), {"c": torch.tensor([1.5], dtype=D)})
add("power", power, uniform(0.5, 2.0, 3), {"p": uniform(1.5, 3.0, 3), "b": uniform(0.5, 3.0, 3)})
add("views", views, randn(2, 3), {"w": randn(6)})
add("slices", slices, randn(2, 3), {"w": randn(2, 2)}, needs=["slice"])
add("vector", vector, randn(3), {"a": randn(2, 1), "b": uniform(1.0, 2.0, 3)})
add("tanh_exp", tanh_exp, randn(4), {"s": uniform(0.2, 0.8, 4)}, needs=["unary"])
add("quadratic_matmul", quadratic_matmul, randn(3), {"A": randn(3, 3)}, needs=["matmul"])
mlp_consts = {"W1": randn(4, 3, scale=0.7), "b1": randn(4, scale=0.3), "W2": randn(2, 4, scale=0.7),
              "b2": randn(2, scale=0.3)}
add("mlp", mlp, randn(2, 3), mlp_consts, needs=["linear", "unary"])
add("mlp_loss", mlp_loss, randn(2, 3), mlp_consts, needs=["linear", "unary"])
add("softmax_dot", softmax_dot, randn(2, 3), {"w": randn(3)}, needs=["softmax"])

print(json.dumps({"generator": "tools/gen_golden_functional.py", "torch": torch.__version__,
                  "cases": cases}, indent=None, separators=(",", ":")))
