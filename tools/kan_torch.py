"""kan_torch.py: a torch reference of nabla's KAN layer (src/kan), for golden vectors
(tools/gen_golden.py, tools/gen_golden_kan.py) and the speed comparison (bench/torch_kan.py).

Written from the formulas of Liu et al. 2024 and pykan's documented behaviour (Cox-de Boor with
half-open spans, y = sum_i mask (scale_base silu(x_i) + scale_sp spline(x_i))), the way a torch
user writes it: the recursion as tensor ops over the whole batch, the contraction as einsum.
"""
import torch


def bspline(x, grid, k, deriv=0):
    """The B-spline bases of order k (or their deriv-th derivative) of x [n, in] on the knots
    grid [in, m]: [n, in, m - 1 - k].  B_{i,0} = [t_i <= x < t_{i+1}]; the derivative is the
    same recursion with its last deriv steps p (B_{i,p-1} / (t_{i+p} - t_i)
    - B_{i+1,p-1} / (t_{i+p+1} - t_{i+1}))."""
    xe = x.unsqueeze(-1)
    t = grid.unsqueeze(0)
    if deriv > k:
        return torch.zeros(x.shape + (grid.shape[1] - 1 - k,), dtype=x.dtype)
    b = ((xe >= t[..., :-1]) & (xe < t[..., 1:])).to(x.dtype)
    for p in range(1, k + 1):
        ti, tp, t1, tp1 = t[..., :-(p + 1)], t[..., p:-1], t[..., 1:-p], t[..., p + 1:]
        left, right = b[..., :-1], b[..., 1:]
        if p <= k - deriv:
            b = (xe - ti) / (tp - ti) * left + (tp1 - xe) / (tp1 - t1) * right
        else:
            b = p * (left / (tp - ti) - right / (tp1 - t1))
    return b


def extend_knots(p, k):
    """G + 1 points per row [in, G + 1] extended by k knots each side with the ends' step."""
    g = p.shape[1] - 1
    h = (p[:, -1:] - p[:, :1]) / g
    j = torch.arange(1, k + 1, dtype=p.dtype)
    return torch.cat([p[:, :1] - h * j.flip(0), p, p[:, -1:] + h * j], dim=1)


def kan_layer(x, grid, coef, scale_base, scale_sp, mask, k):
    """y [n, out] of a KAN layer: coef [in, G + k, out], the rest [in, out] (nabla's layout)."""
    b = bspline(x, grid, k)
    spline = torch.einsum("nic,ico->nio", b, coef)
    base = torch.nn.functional.silu(x).unsqueeze(-1)
    return (mask * (scale_base * base + scale_sp * spline)).sum(dim=1)
