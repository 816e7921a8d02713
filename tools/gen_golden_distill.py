#!/usr/bin/python3
"""Golden vectors for tests/test_distill.c: Hinton et al.'s distillation loss as torch computes it.

Regenerate (Debian's python3-torch 1.13; the `python3` on PATH may have no torch):

    /usr/bin/python3 tools/gen_golden_distill.py > tests/golden/distill.json

    L = alpha T^2 F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction='batchmean')
        + (1 - alpha) F.cross_entropy(s, y, label_smoothing=eps)

Logits are drawn in float32 from a fixed seed and written exactly (the shortest decimal that
reads back as the same float32); torch computes in float64 from those values, so the loss and
its gradient w.r.t. the student's logits are the exact values of the formula.  The teacher's
logits are a constant (no gradient), as in training.
"""
import json
import sys

import torch
import torch.nn.functional as F

from golden_common import D, short32

torch.manual_seed(1212)


def logits(n, c, scale):
    return (torch.randn(n, c) * scale).to(torch.float32).to(D)


def enc(t):
    return {"shape": list(t.shape), "data": [short32(v) for v in t.to(torch.float32).flatten().tolist()]}


def case(name, n, c, temperature, alpha, s_scale=1.0, t_scale=3.0, eps=0.0, probs=False):
    s = logits(n, c, s_scale).requires_grad_(True)
    t = logits(n, c, t_scale)
    if probs:
        y = torch.softmax(logits(n, c, 1.0), 1).to(torch.float32).to(D)
        target = enc(y)
        target["dtype"] = "float32"
    else:
        y = torch.randint(0, c, (n,))
        target = {"shape": [n], "dtype": "int32", "data": y.tolist()}
    soft = F.kl_div(F.log_softmax(s / temperature, 1), F.softmax(t / temperature, 1), reduction="batchmean")
    hard = F.cross_entropy(s, y, label_smoothing=eps)
    loss = alpha * temperature ** 2 * soft + (1 - alpha) * hard
    loss.backward()
    return {"name": name, "T": temperature, "alpha": alpha, "label_smoothing": eps,
            "student": enc(s.detach()), "teacher": enc(t), "target": target,
            "loss": float("%.12g" % loss.item()),
            "grad": [float("%.12g" % v) for v in s.grad.flatten().tolist()]}


cases = [
    case("hinton_T4_alpha09", 8, 10, 4.0, 0.9),
    case("T1_alpha05", 5, 6, 1.0, 0.5),
    case("T2_5_alpha03", 4, 7, 2.5, 0.3),      # 1 / T is not exact: one rounding off torch's s / T
    case("alpha0_is_cross_entropy", 6, 5, 4.0, 0.0),
    case("alpha1_is_soft_only", 6, 5, 4.0, 1.0),
    case("T20_sharp_teacher", 3, 10, 20.0, 0.7, t_scale=30.0),
    case("T4_label_smoothing", 5, 4, 4.0, 0.6, eps=0.1),
    case("T3_probability_targets", 4, 5, 3.0, 0.8, probs=True),
    case("one_sample", 1, 3, 4.0, 0.9),
]
out = sys.stdout
out.write('{"comment":%s,\n"cases":[\n' % json.dumps(
    "torch %s reference values for tests/test_distill.c; regenerate with "
    "/usr/bin/python3 tools/gen_golden_distill.py > tests/golden/distill.json" % torch.__version__))
out.write(",\n".join(json.dumps(c, separators=(",", ":")) for c in cases))
out.write("\n]}\n")
