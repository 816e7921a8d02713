#!/usr/bin/python3
"""Writes tests/golden/nn.json: PyTorch reference vectors for the modules of src/nn.

Regenerate from the repository root with Debian's python3-torch (not a virtualenv's python):

    /usr/bin/python3 tools/gen_golden_nn.py

Each case names a module that tests/test_nn.c builds the same way; it holds the module's
parameters and buffers by torch's state_dict names (in named_parameters() / named_buffers()
order), whether it runs in training mode, and one or more steps.  A step holds the input, a
random R, torch's output, the gradients of sum(out * R) with respect to the input and to every
parameter (zeroed before each step), and the buffers after the forward.

Parameters and inputs are drawn in float32 and the module then runs in float64, so the stored
values are exact in the C library's float32 and the references carry no float32 rounding of
their own.  Every number is written with 9 significant digits (exact for a float32).

It also prints what test_nn.c hardcodes: a Sequential's repr, the nested model's parameter and
buffer names with its parameter count, and torch.nn.init.calculate_gain's values.
"""
import json
import os

import torch
from torch import nn

torch.manual_seed(0)


# ---- modules torch does not have, written as the C library defines them

class Step(nn.Module):
    """1 for x > 0 else 0, with a zero gradient (0 * x keeps the gradient defined)."""

    def forward(self, x):
        return (x > 0).to(x.dtype) + 0 * x


class Atan(nn.Module):
    def forward(self, x):
        return torch.atan(x)


class TanhLinear(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a

    def forward(self, x):
        return torch.tanh(x) + self.a * x


class SiLUBeta(nn.Module):
    def __init__(self, beta):
        super().__init__()
        self.beta = beta

    def forward(self, x):
        return x * torch.sigmoid(self.beta * x)


class Residual(nn.Module):
    """H(x) = body(x) + shortcut(x), the identity when there is no shortcut."""

    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = body
        if shortcut is not None:
            self.shortcut = shortcut

    def forward(self, x):
        s = self.shortcut(x) if hasattr(self, "shortcut") else x
        return self.body(x) + s


class Concat(nn.Module):
    """Branches "0", "1", ... on the same input, joined along dim."""

    def __init__(self, branches, dim):
        super().__init__()
        for i, b in enumerate(branches):
            self.add_module(str(i), b)
        self.dim = dim

    def forward(self, x):
        return torch.cat([b(x) for b in self.children()], self.dim)

    def extra_repr(self):
        return "dim={}".format(self.dim)


# ---- helpers

def f32(t):
    """Rounds to float32 and back, so the C side loads the very same values."""
    return t.float().double()


def tensor_json(t):
    t = t.detach().double()
    return {"shape": list(t.shape), "data": [float("%.9g" % v) for v in t.flatten().tolist()]}


def randomise(module, scale=1.0):
    """Replaces every parameter by float32 draws (BatchNorm/LayerNorm weights away from 1)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight") and p.dim() == 1 and not isinstance(module, nn.PReLU):
                p.copy_(1 + 0.5 * torch.randn(p.shape))
            else:
                p.copy_(scale * torch.randn(p.shape))


def case(name, module, inputs, train=True, set_buffers=None):
    """Runs module (in float64) on each input in turn and records the step."""
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(f32(p))
        if set_buffers:
            for bname, value in set_buffers.items():
                dict(module.named_buffers())[bname].copy_(value)
    module.train(train)
    out = {
        "name": name,
        "train": train,
        "params": [dict(name=n, **tensor_json(p)) for n, p in module.named_parameters()],
        "buffers": [dict(name=n, **tensor_json(b)) for n, b in module.named_buffers()],
        "steps": [],
    }
    for x in inputs:
        x = f32(x).requires_grad_(True)
        for p in module.parameters():
            p.grad = None
        y = module(x)
        r = f32(torch.randn(y.shape))
        (y * r).sum().backward()
        out["steps"].append({
            "input": tensor_json(x),
            "R": tensor_json(r),
            "output": tensor_json(y),
            "grad_input": tensor_json(x.grad),
            "grads": [dict(name=n, **tensor_json(p.grad)) for n, p in module.named_parameters()],
            "buffers": [dict(name=n, **tensor_json(b)) for n, b in module.named_buffers()],
        })
    return out


def randn(*shape):
    return torch.randn(shape)


# Activation inputs: both signs, exactly 0 (the conventions at kinks), saturating values, and
# softplus beyond its threshold for beta 1 (x > 20) and beta 2 (x > 10).
ACT_X = torch.tensor([[-30.0, -5.0, -2.5, -1.0, -0.5, -0.1],
                      [0.0, 0.1, 0.5, 1.0, 2.5, 5.0],
                      [9.0, 10.5, 11.0, 19.0, 21.0, 25.0]])

cases = []
cases.append(case("linear_bias", nn.Linear(5, 4), [randn(3, 5)]))
cases.append(case("linear_no_bias", nn.Linear(5, 4, bias=False), [randn(3, 5)]))
cases.append(case("linear_batched_3d", nn.Linear(5, 4), [randn(2, 3, 5)]))
cases.append(case("mlp", nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                                       nn.Linear(8, 4)), [randn(4, 20)]))
cases.append(case("flatten", nn.Flatten(), [randn(2, 3, 4)]))
cases.append(case("flatten_linear", nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), [randn(2, 3, 4)]))

activations = [
    ("identity", nn.Identity()), ("step", Step()), ("sigmoid", nn.Sigmoid()),
    ("tanh", nn.Tanh()), ("relu", nn.ReLU()), ("leaky_relu", nn.LeakyReLU()),
    ("leaky_relu_0.2", nn.LeakyReLU(0.2)), ("elu", nn.ELU()), ("elu_0.5", nn.ELU(0.5)),
    ("softplus", nn.Softplus()), ("softplus_beta2", nn.Softplus(beta=2)), ("silu", nn.SiLU()),
    ("silu_beta2", SiLUBeta(2.0)), ("mish", nn.Mish()), ("gelu", nn.GELU()), ("atan", Atan()),
    ("softsign", nn.Softsign()), ("tanh_linear_0.5", TanhLinear(0.5)),
    ("softmax", nn.Softmax(dim=-1)), ("log_softmax", nn.LogSoftmax(dim=-1)),
]
for name, m in activations:
    cases.append(case("act_" + name, m, [ACT_X]))
cases.append(case("act_softmax_3d", nn.Softmax(dim=-1), [randn(2, 3, 4)]))
cases.append(case("act_log_softmax_3d", nn.LogSoftmax(dim=-1), [randn(2, 3, 4)]))

x_prelu = randn(4, 3)
x_prelu[1, 1] = 0.0  # torch's gradient at 0 takes the negative side: a dy
prelu1 = nn.PReLU()
with torch.no_grad():
    prelu1.weight.fill_(0.3)
cases.append(case("prelu_shared", prelu1, [x_prelu]))
prelu3 = nn.PReLU(3)
randomise(prelu3, 0.5)
cases.append(case("prelu_channels", prelu3, [x_prelu]))
prelu3b = nn.PReLU(3)
randomise(prelu3b, 0.5)
cases.append(case("prelu_channels_3d", prelu3b, [randn(2, 3, 5)]))
cases.append(case("dropout_eval", nn.Dropout(0.5), [randn(3, 4)], train=False))

for name, shape in (("bn_2d", (6, 3)), ("bn_3d", (4, 3, 5))):
    bn = nn.BatchNorm1d(3)
    randomise(bn)
    cases.append(case(name + "_train", bn, [2 + 3 * randn(*shape), randn(*shape) - 1]))
    bn = nn.BatchNorm1d(3)
    randomise(bn)
    stats = {"running_mean": f32(randn(3)), "running_var": f32(0.5 + torch.rand(3)),
             "num_batches_tracked": torch.tensor(7)}
    cases.append(case(name + "_eval", bn, [randn(*shape)], train=False, set_buffers=stats))
    cases.append(case(name + "_no_affine_train", nn.BatchNorm1d(3, affine=False),
                      [randn(*shape) * 2, randn(*shape) + 1]))
bn = nn.BatchNorm1d(3, affine=False)
cases.append(case("bn_2d_no_affine_eval", bn, [randn(6, 3)], train=False,
                  set_buffers={"running_mean": f32(randn(3)), "running_var": f32(0.5 + torch.rand(3))}))
bn = nn.BatchNorm1d(3, track_running_stats=False)
randomise(bn)
cases.append(case("bn_no_running_stats_eval", bn, [randn(6, 3)], train=False))
bn = nn.BatchNorm1d(3, eps=1e-3, momentum=0.3)
randomise(bn)
cases.append(case("bn_eps_momentum_train", bn, [randn(5, 3), randn(5, 3)]))

for name, shape, norm in (("ln_1d", (4, 6), [6]), ("ln_2d", (2, 3, 4), [3, 4])):
    ln = nn.LayerNorm(norm)
    randomise(ln)
    cases.append(case(name + "_affine", ln, [randn(*shape)]))
    cases.append(case(name + "_no_affine", nn.LayerNorm(norm, elementwise_affine=False),
                      [randn(*shape)]))

cases.append(case("residual_identity", Residual(nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6))),
                  [randn(4, 6)]))
cases.append(case("residual_projection",
                  Residual(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8)),
                           nn.Linear(6, 8, bias=False)), [randn(4, 6)]))
cases.append(case("concat", Concat([nn.Linear(5, 3), nn.Sequential(nn.Linear(5, 4), nn.Tanh())], 1),
                  [randn(4, 5)]))
cases.append(case("bottleneck", nn.Sequential(nn.Linear(10, 3, bias=False), nn.Linear(3, 8)),
                  [randn(4, 10)]))
nested = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)))
randomise(nested[2][1])
cases.append(case("nested", nested, [randn(5, 4), randn(5, 4)]))

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "nn.json")
with open(path, "w") as f:
    json.dump({"generator": "tools/gen_golden_nn.py, torch " + torch.__version__, "cases": cases},
              f, separators=(",", ":"))
    f.write("\n")

# The repr that test_nn.c hardcodes for nb_module_fprint.
print(nn.Sequential(nn.Flatten(), nn.Linear(20, 8), nn.ReLU(), nn.Dropout(0.2),
                    nn.Linear(8, 8, bias=False), nn.BatchNorm1d(8), nn.LeakyReLU(0.2), nn.ELU(),
                    nn.GELU(), nn.Softplus(), nn.PReLU(),
                    nn.Sequential(nn.Linear(8, 4), nn.LayerNorm((4,)), nn.Tanh()),
                    nn.LayerNorm((2, 2), eps=1e-3, elementwise_affine=False),
                    Concat([nn.Identity(), nn.Sigmoid()], 1), nn.LogSoftmax(dim=-1)))
nested = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)))
print([n for n, _ in nested.named_parameters()], [n for n, _ in nested.named_buffers()],
      sum(p.numel() for p in nested.parameters()))
for nl, p in (("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None),
              ("leaky_relu", 0.2), ("leaky_relu", 0.0), ("selu", None)):
    print(nl, p, repr(nn.init.calculate_gain(nl, p)))
