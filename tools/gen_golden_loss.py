#!/usr/bin/python3
"""Golden vectors for tests/test_loss.c: torch's losses and regularisers.

Regenerate (Debian's python3-torch 1.13; the `python3` on PATH may have no torch):

    /usr/bin/python3 tools/gen_golden_loss.py > tests/golden/loss.json

Inputs are drawn in float32 from a fixed seed and written exactly (the shortest decimal that
reads back as the same float32); torch then computes in float64 from those float32 values, so
the references are the exact values of torch's formulas and the C test compares its float32
results to them.  A case holds its inputs, torch's loss and torch's gradients w.r.t. the input
(and the target where torch gives one); reduction "none" cases hold the fixed upstream gradient
backward was called with.  "fd" lists the tensors the C test also checks by finite differences.
"""
import json
import math
import sys
import warnings

import torch
import torch.nn.functional as F

from golden_common import D, f32, short32

warnings.filterwarnings("ignore")  # kl_div's 'mean' warns; the case exists to pin it down
torch.manual_seed(1234)


def enc_in(t):
    """An input tensor: exact float32 values, or int32 indices."""
    t = t.detach()
    if not t.is_floating_point():
        return {"shape": list(t.shape), "dtype": "int32", "data": [int(v) for v in t.flatten()]}
    return {"shape": list(t.shape), "data": [short32(v) for v in t.to(torch.float32).flatten().tolist()]}


def enc_out(t):
    """A reference value to 10 significant digits (the test's tolerances are 1e-5)."""
    data = [float("%.10g" % v) for v in t.detach().flatten().tolist()]
    assert all(math.isfinite(v) for v in data), t
    return {"shape": list(t.shape), "data": data}


RED = {"mean": "mean", "sum": "sum", "none": "none", "batchmean": "batchmean"}
cases = []


def add(name, fn, reduction, call, tensors, grads=("input",), fd=("input",), **extra):
    """Runs call(**tensors) in float64 and records the case.  tensors maps a field name to a
    float32-valued tensor (or int64 indices); those named in grads get torch's gradient."""
    live = {}
    for k, v in tensors.items():
        if v is None:
            continue
        v = v.detach().clone()
        if k in grads:
            v.requires_grad_(True)
        live[k] = v
    loss = call(**live)
    case = {"name": name, "fn": fn, "reduction": reduction}
    case.update(extra)
    for k, v in live.items():
        case[k] = enc_in(v)
    if grads and reduction == "none":
        up = f32(torch.randn(loss.shape))
        loss.backward(up)
        case["upstream"] = enc_in(up)
    elif grads:
        loss.backward()
    case["loss"] = enc_out(loss)
    for k in grads:
        case["grad_" + k] = enc_out(live[k].grad)
    case["fd"] = list(fd)
    cases.append(case)


def randn(*s, scale=1.0):
    return f32(torch.randn(*s) * scale)


def uniform(lo, hi, *s):
    return f32(torch.rand(*s) * (hi - lo) + lo)


# ---------------------------------------------------------------- regression
x, y = randn(3, 4), randn(3, 4)
for r in ("mean", "sum", "none"):
    add("mse_" + r, "mse", r, lambda input, target, r=r: F.mse_loss(input, target, reduction=r),
        {"input": x, "target": y}, grads=("input", "target"), fd=("input", "target"))

# L1: differences at least 0.1 away from the kink, plus two exact ties (torch's gradient there
# is sign(0) = 0, which the symmetric central difference also gives).
off = uniform(0.1, 1.0, 3, 4) * torch.where(torch.rand(3, 4) < 0.5, -1.0, 1.0).to(D)
off[0, 1] = off[2, 3] = 0
y1 = f32(x + off)
assert bool(((x - y1).abs()[off != 0] > 0.05).all())
for r in ("mean", "sum", "none"):
    add("l1_" + r, "l1", r, lambda input, target, r=r: F.l1_loss(input, target, reduction=r),
        {"input": x, "target": y1}, grads=("input", "target"), fd=("input", "target"))

# ---------------------------------------------------------------- binary cross-entropy
p = uniform(0.05, 0.95, 3, 4)
t = uniform(0.0, 1.0, 3, 4)
t[0, 0], t[1, 2] = 0.0, 1.0
wrow, wfull = uniform(0.5, 2.0, 4), uniform(0.5, 2.0, 3, 4)
for r in ("mean", "sum", "none"):
    add("bce_" + r, "bce", r,
        lambda input, target, r=r: F.binary_cross_entropy(input, target, reduction=r),
        {"input": p, "target": t}, grads=("input", "target"), fd=("input", "target"))
add("bce_weight_row_mean", "bce", "mean",
    lambda input, target, weight: F.binary_cross_entropy(input, target, weight=weight),
    {"input": p, "target": t, "weight": wrow})
add("bce_weight_full_none", "bce", "none",
    lambda input, target, weight: F.binary_cross_entropy(input, target, weight=weight, reduction="none"),
    {"input": p, "target": t, "weight": wfull})
# p = 0 and 1 (and a denormal) exercise the clamp of the logs at -100.  Values only: torch's
# gradient there is its closed form (p - y) / max(p (1 - p), 1e-12), a 1e12-sized artefact that
# the C side does not reproduce (see loss.c); test_loss.c checks those gradients are finite.
psat = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5, 1e-30, 1e-45, 1.0 - 2**-24], dtype=D)
ts = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0, 0.0], dtype=D)
add("bce_saturated_none", "bce", "none",
    lambda input, target: F.binary_cross_entropy(input, target, reduction="none"),
    {"input": f32(psat), "target": ts}, grads=(), fd=())

# logits with an exact 0 (where max(x, 0) and |x| have their kink)
z = randn(3, 4, scale=3.0)
z[0, 0] = z[2, 1] = 0.0
tz = uniform(0.0, 1.0, 3, 4)
tz[0, 1], tz[1, 1], tz[2, 1] = 0.0, 1.0, 1.0
pw = uniform(0.5, 3.0, 4)
for r in ("mean", "sum", "none"):
    add("bce_logits_" + r, "bce_logits", r,
        lambda input, target, r=r: F.binary_cross_entropy_with_logits(input, target, reduction=r),
        {"input": z, "target": tz}, grads=("input", "target"), fd=("input", "target"))
for r in ("mean", "none"):
    add("bce_logits_pos_weight_" + r, "bce_logits", r,
        lambda input, target, pos_weight, r=r: F.binary_cross_entropy_with_logits(
            input, target, pos_weight=pos_weight, reduction=r),
        {"input": z, "target": tz, "pos_weight": pw}, grads=("input", "target"), fd=("input", "target"))
add("bce_logits_weight_pos_weight_sum", "bce_logits", "sum",
    lambda input, target, weight, pos_weight: F.binary_cross_entropy_with_logits(
        input, target, weight=weight, pos_weight=pos_weight, reduction="sum"),
    {"input": z, "target": tz, "weight": wrow, "pos_weight": pw})
# Extreme logits: exact in float32 too (the loss is 0 or |x|, the gradient 0 or +-1).  No
# finite differences: a loss of 100 moves by ulp(100) = 8e-6 per rounding, 1e-3 after / h.
ze = torch.tensor([100.0, -100.0, 100.0, -100.0, 30.0, -30.0, 0.0, 15.0, -15.0], dtype=D)
te = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5, 1.0, 0.0], dtype=D)
add("bce_logits_extreme_none", "bce_logits", "none",
    lambda input, target: F.binary_cross_entropy_with_logits(input, target, reduction="none"),
    {"input": ze, "target": te}, fd=())
add("bce_logits_extreme_pos_weight_mean", "bce_logits", "mean",
    lambda input, target, pos_weight: F.binary_cross_entropy_with_logits(input, target, pos_weight=pos_weight),
    {"input": ze, "target": te, "pos_weight": torch.tensor([2.5], dtype=D)}, fd=())

# ---------------------------------------------------------------- cross-entropy and NLL
N, C = 5, 4
logits = randn(N, C, scale=2.0)
yi = torch.tensor([0, 3, 1, 3, 2])
cw = uniform(0.5, 2.0, C)


def ce(**o):
    return lambda input, target, weight=None: F.cross_entropy(input, target, weight=weight, **o)


for r in ("mean", "sum", "none"):
    add("ce_index_" + r, "ce", r, ce(reduction=r), {"input": logits, "target": yi})
    add("ce_index_weight_" + r, "ce", r, ce(reduction=r), {"input": logits, "target": yi, "weight": cw})
    add("ce_index_smooth_weight_" + r, "ce", r, ce(reduction=r, label_smoothing=0.2),
        {"input": logits, "target": yi, "weight": cw}, label_smoothing=0.2)
for r in ("mean", "none"):
    add("ce_index_smooth_" + r, "ce", r, ce(reduction=r, label_smoothing=0.1),
        {"input": logits, "target": yi}, label_smoothing=0.1)
add("ce_index_smooth_one_mean", "ce", "mean", ce(label_smoothing=1.0),
    {"input": logits, "target": yi}, label_smoothing=1.0)
# ignore_index: torch's default -100, and an explicit in-range class
yig = torch.tensor([0, -100, 1, 3, -100])
add("ce_ignore_default_mean", "ce", "mean", ce(), {"input": logits, "target": yig})
add("ce_ignore_default_weight_smooth_mean", "ce", "mean", ce(label_smoothing=0.1),
    {"input": logits, "target": yig, "weight": cw}, label_smoothing=0.1)
for r in ("mean", "sum", "none"):
    add("ce_ignore_1_weight_smooth_" + r, "ce", r, ce(reduction=r, ignore_index=1, label_smoothing=0.3),
        {"input": logits, "target": yi.clone().index_fill_(0, torch.tensor([4]), 1), "weight": cw},
        label_smoothing=0.3, ignore_index=1)
add("ce_ignore_all_sum", "ce", "sum", ce(reduction="sum"),
    {"input": logits, "target": torch.full((N,), -100)})
# [N, C, d]: the class dim is 1, target [N, d]
x3 = randn(2, C, 3, scale=2.0)
y3 = torch.tensor([[0, 3, 2], [1, 1, 0]])
for r in ("mean", "none"):
    add("ce_nd_" + r, "ce", r, ce(reduction=r), {"input": x3, "target": y3})
add("ce_nd_weight_smooth_ignore_mean", "ce", "mean", ce(label_smoothing=0.15, ignore_index=2),
    {"input": x3, "target": y3, "weight": cw}, label_smoothing=0.15, ignore_index=2)
# unbatched [C] with a 0-dim target
for r in ("mean", "none"):
    add("ce_unbatched_" + r, "ce", r, ce(reduction=r),
        {"input": logits[1].clone(), "target": torch.tensor(2)})
# large logits: log-sum-exp keeps them finite; no finite differences (a loss of 1e4 rounds by
# 1e-3 in float32)
xl = torch.tensor([[1e4, 0.0, -1e4, 5e3], [-1e4, -1e4, -1e4, -1e4 + 3.0], [3e4, 3e4, -3e4, 0.0]], dtype=D)
add("ce_large_logits_none", "ce", "none", ce(reduction="none"),
    {"input": xl, "target": torch.tensor([0, 3, 2])}, fd=())

# probability targets
tp = f32(torch.softmax(torch.randn(N, C) * 2, 1))
for r in ("mean", "sum", "none"):
    add("ce_prob_" + r, "ce", r, ce(reduction=r), {"input": logits, "target": tp},
        grads=("input", "target"), fd=("input", "target"))
add("ce_prob_smooth_mean", "ce", "mean", ce(label_smoothing=0.2),
    {"input": logits, "target": tp}, grads=("input", "target"), label_smoothing=0.2)
for r in ("mean", "none"):
    add("ce_prob_weight_" + r, "ce", r, ce(reduction=r), {"input": logits, "target": tp, "weight": cw})
add("ce_prob_weight_smooth_sum", "ce", "sum", ce(reduction="sum", label_smoothing=0.1),
    {"input": logits, "target": tp, "weight": cw}, label_smoothing=0.1)
add("ce_prob_nd_mean", "ce", "mean", ce(),
    {"input": x3, "target": f32(torch.softmax(torch.randn(2, C, 3), 1))})
add("ce_prob_unbatched_none", "ce", "none", ce(reduction="none"),
    {"input": logits[0].clone(), "target": tp[0].clone()})

lp = f32(torch.log_softmax(torch.randn(N, C), 1))


def nll(**o):
    return lambda input, target, weight=None: F.nll_loss(input, target, weight=weight, **o)


for r in ("mean", "sum", "none"):
    add("nll_" + r, "nll", r, nll(reduction=r), {"input": lp, "target": yi})
for r in ("mean", "none"):
    add("nll_weight_" + r, "nll", r, nll(reduction=r), {"input": lp, "target": yi, "weight": cw})
add("nll_weight_ignore_mean", "nll", "mean", nll(ignore_index=3),
    {"input": lp, "target": yi, "weight": cw}, ignore_index=3)
add("nll_nd_ignore_default_sum", "nll", "sum", nll(reduction="sum"),
    {"input": f32(torch.log_softmax(torch.randn(2, C, 3), 1)), "target": torch.tensor([[0, -100, 2], [1, 3, -100]])})

# ---------------------------------------------------------------- KL divergence
kin = f32(torch.log_softmax(torch.randn(4, 5), 1))
ktg = f32(torch.softmax(torch.randn(4, 5), 1))
ktg[1, 2] = 0.0  # 0 log 0 = 0; the target's gradient there is not finite, so no target grads
for r in ("mean", "sum", "none", "batchmean"):
    add("kl_" + r, "kl", r, lambda input, target, r=r: F.kl_div(input, target, reduction=r),
        {"input": kin, "target": ktg})
klt = f32(torch.log_softmax(torch.randn(4, 5), 1))
for r in ("batchmean", "none"):
    add("kl_log_target_" + r, "kl", r,
        lambda input, target, r=r: F.kl_div(input, target, reduction=r, log_target=True),
        {"input": kin, "target": klt}, grads=("input", "target"), fd=("input", "target"),
        log_target=True)

# ---------------------------------------------------------------- regularisers
# Weights kept 0.1 away from 0 (|w| has a kink there) but for one exact 0, where torch's
# gradient sign(0) = 0 equals the central difference.
w1 = f32((torch.randn(3, 4).abs() + 0.1) * torch.where(torch.rand(3, 4) < 0.5, -1.0, 1.0))
w1[1, 1] = 0.0
w2 = randn(4)


def penalty(kind, lam):
    def call(params):
        f = (lambda w: w.abs().sum()) if kind == "l1" else (lambda w: (w * w).sum())
        return lam * sum(f(w) for w in params)
    return call


for kind, lam in (("l1", 0.01), ("l2", 0.5)):
    ps = [w1.clone().requires_grad_(True), w2.clone().requires_grad_(True)]
    loss = penalty(kind, lam)(ps)
    loss.backward()
    cases.append({"name": kind + "_penalty", "fn": kind + "_penalty", "reduction": "sum",
                  "lambda": lam, "params": [enc_in(w) for w in ps], "loss": enc_out(loss),
                  "grad_params": [enc_out(w.grad) for w in ps], "fd": ["params"]})


def entropy_logits(dim):
    return lambda input: torch.distributions.Categorical(logits=input.movedim(dim, -1)).entropy().mean()


def entropy_probs(dim):
    return lambda input: -torch.special.xlogy(input, input).sum(dim).mean()


el = randn(4, 5, scale=2.0)
add("entropy_logits_dim1", "entropy", "mean", entropy_logits(1), {"input": el}, dim=1, from_logits=True)
add("entropy_logits_dim0", "entropy", "mean", entropy_logits(0), {"input": el}, dim=0, from_logits=True)
add("entropy_logits_nd_dim1", "entropy", "mean", entropy_logits(1), {"input": randn(2, 3, 4)},
    dim=1, from_logits=True)
# p log p has a fifth derivative 6 / p^4: probabilities >= 0.05 keep the truncation error of
# the C test's finite differences (h = 2^-7) below 1e-4
epr = f32(torch.softmax(torch.randn(4, 5) * 0.5, 1))
assert float(epr.min()) > 0.05
add("entropy_probs_dim_last", "entropy", "mean", entropy_probs(-1), {"input": epr}, dim=-1,
    from_logits=False)
epz = epr.clone()
epz[0, 0] = 0.0  # 0 log 0 = 0; torch's xlogy gradient is NaN there: value only
add("entropy_probs_zero", "entropy", "mean", entropy_probs(1), {"input": epz}, grads=(), fd=(),
    dim=1, from_logits=False)

# one case per line, so that a regeneration diffs case by case
out = sys.stdout
out.write('{"comment":%s,\n"cases":[\n' % json.dumps(
    "torch %s reference values for tests/test_loss.c; regenerate with "
    "/usr/bin/python3 tools/gen_golden_loss.py > tests/golden/loss.json" % torch.__version__))
out.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
out.write("\n]}\n")
