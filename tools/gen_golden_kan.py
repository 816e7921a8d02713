#!/usr/bin/python3
"""Golden vectors for tests/test_kan.c: a KAN layer's forward and gradients, and its
regularisation, from the torch reference in tools/kan_torch.py.

Regenerate (Debian's python3-torch; the `python3` on PATH may have no torch):

    /usr/bin/python3 tools/gen_golden_kan.py > tests/golden/kan.json

One layer 3 -> 2, G = 4, k = 3, in nabla's layout (coef [in, G + k, out]); each input has its
own grid (the ranges [-1, 1], [-2, 1.5], [-0.5, 0.5], extended by k knots); edge (2, 1) is
masked off; x [6, 3] reaches outside the grids, where the splines vanish.  In float64 from the
float32 values: y, and the gradients of loss = sum(y * R) for x, coef, scale_base, scale_sp;
the regularisation (lamb_l1 = 1, lamb_entropy = 2, pykan's defaults) and its gradient for coef.
"""
import json

import torch

import kan_torch
from golden_common import D, f32, short32

torch.manual_seed(1500)
IN, OUT, G, K = 3, 2, 4, 3


def enc(t):
    return {"shape": list(t.shape), "data": [short32(v) for v in t.to(torch.float32).flatten().tolist()]}


def enc64(t):
    return {"shape": list(t.shape), "data": t.detach().flatten().tolist()}


ranges = torch.tensor([[-1.0, 1.0], [-2.0, 1.5], [-0.5, 0.5]], dtype=D)
points = ranges[:, :1] + (ranges[:, 1:] - ranges[:, :1]) * torch.arange(G + 1, dtype=D) / G
grid = f32(kan_torch.extend_knots(f32(points), K))
coef = f32(torch.randn(IN, G + K, OUT, dtype=D) * 0.5).requires_grad_(True)
scale_base = f32(torch.randn(IN, OUT, dtype=D) * 0.5).requires_grad_(True)
scale_sp = f32(1 + torch.randn(IN, OUT, dtype=D) * 0.2).requires_grad_(True)
mask = torch.ones(IN, OUT, dtype=D)
mask[2, 1] = 0
x = f32(torch.rand(6, IN, dtype=D) * 3 - 1.5).requires_grad_(True)
r = f32(torch.rand(6, OUT, dtype=D) * 2 - 1)

y = kan_torch.kan_layer(x, grid, coef, scale_base, scale_sp, mask, K)
(y * r).sum().backward()
out = {"comment": "tools/gen_golden_kan.py, torch %s; do not edit" % torch.__version__,
       "k": K, "grid": enc(grid), "coef": enc(coef), "scale_base": enc(scale_base),
       "scale_sp": enc(scale_sp), "mask": enc(mask), "x": enc(x), "r": enc(r), "y": enc64(y),
       "grad_x": enc64(x.grad), "grad_coef": enc64(coef.grad),
       "grad_scale_base": enc64(scale_base.grad), "grad_scale_sp": enc64(scale_sp.grad)}

coef.grad = None
b = kan_torch.bspline(x.detach(), grid, K)
phi = mask * (scale_base * torch.nn.functional.silu(x.detach()).unsqueeze(-1)
              + scale_sp * torch.einsum("nic,ico->nio", b, coef))
a = phi.abs().mean(dim=0)
p = a / a.sum()
reg = 1.0 * a.sum() + 2.0 * -(p * torch.log2(p + 1e-4)).sum()
reg.backward()
out["reg"] = reg.item()
out["grad_reg_coef"] = enc64(coef.grad)
print(json.dumps(out, indent=1))
