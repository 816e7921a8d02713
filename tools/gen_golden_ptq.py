#!/usr/bin/python3
"""gen_golden_ptq.py: torch's quantized Linear and Conv2d (torch.ao.nn.quantized, the 'onednn'
engine: this torch 1.13 build has no fbgemm) on fixed inputs, for tests/test_ptq.c, written to
tests/golden/ptq.json.

Regenerate from the repository root with Debian's python3-torch (not a pyenv python):

    /usr/bin/python3 tools/gen_golden_ptq.py

Each case gives the float input x, the input's qparams, the int8 weight codes with their
per-tensor or per-channel qparams, the float bias, the output qparams and whether a ReLU is
fused, then torch's output codes (quint8).  Weights are symmetric, as onednn requires; the C
test runs the same codes through nb_quantized_linear / nb_quantized_conv2d.
"""
import json
import os

import torch
import torch.nn.quantized as nnq
import torch.nn.intrinsic.quantized as nniq

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden",
                   "ptq.json")
torch.backends.quantized.engine = "onednn"


def flat(t):
    return {"shape": list(t.shape), "data": [float(v) for v in t.flatten().tolist()]}


def weight_codes(w, per_channel):
    if per_channel:
        amax = w.abs().flatten(1).max(dim=1).values
        scale = (amax / 127.5).to(torch.float32)
        qw = torch.quantize_per_channel(w, scale.double(), torch.zeros(w.shape[0], dtype=torch.long),
                                        0, torch.qint8)
        return qw, qw.q_per_channel_scales().float(), qw.q_per_channel_zero_points().int()
    scale = float((w.abs().max() / 127.5).to(torch.float32))
    qw = torch.quantize_per_tensor(w, scale, 0, torch.qint8)
    return qw, torch.tensor([qw.q_scale()], dtype=torch.float32), torch.tensor([0], dtype=torch.int32)


def case(kind, relu, per_channel, seed):
    g = torch.Generator().manual_seed(seed)
    if kind == "linear":
        x = torch.randn(5, 24, generator=g)
        w = torch.randn(7, 24, generator=g) * 0.3
    else:
        x = torch.randn(2, 3, 9, 8, generator=g)
        w = torch.randn(4, 3, 3, 3, generator=g) * 0.3
    b = torch.randn(w.shape[0], generator=g) * 0.5
    in_scale, in_zp = 0.025, 120
    out_scale, out_zp = 0.05, 30 if relu else 128
    qx = torch.quantize_per_tensor(x, in_scale, in_zp, torch.quint8)
    qw, ws, wz = weight_codes(w, per_channel)
    if kind == "linear":
        mod = (nniq.LinearReLU if relu else nnq.Linear)(24, 7)
        mod.set_weight_bias(qw, b)
        stride, padding = [1, 1], [0, 0]
    else:
        # both of nabla's im2col paths: unit strides (the padded image's rows), and not
        stride, padding = ([2, 1], [1, 1]) if seed % 2 else ([1, 1], [2, 1])
        cls = nniq.ConvReLU2d if relu else nnq.Conv2d
        mod = cls(3, 4, 3, stride=tuple(stride), padding=tuple(padding))
        mod.set_weight_bias(qw, b)
    mod.scale, mod.zero_point = out_scale, out_zp
    y = mod(qx)
    return {"kind": kind, "relu": relu, "per_channel": per_channel, "x": flat(x),
            "in_scale": in_scale, "in_zero_point": in_zp, "weight": flat(qw.int_repr().float()),
            "weight_scale": flat(ws), "weight_zero_point": flat(wz.float()), "bias": flat(b),
            "out_scale": out_scale, "out_zero_point": out_zp, "stride": stride,
            "padding": padding, "y_codes": flat(y.int_repr().float())}


def main():
    cases = [case(k, r, p, 11 + i) for i, (k, r, p) in enumerate(
        [(k, r, p) for k in ("linear", "conv") for r in (False, True) for p in (False, True)])]
    with open(OUT, "w") as f:
        json.dump({"engine": torch.backends.quantized.engine, "cases": cases}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
