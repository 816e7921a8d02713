#!/usr/bin/python3
"""Golden vectors for tests/test_qat.c: torch 1.13's QAT ConvBn2d (torch.nn.intrinsic.qat),
the Conv2d + BatchNorm2d pair trained as the folded convolution it becomes.

Regenerate (Debian's python3-torch 1.13; the `python3` on PATH may have no torch):

    /usr/bin/python3 tools/gen_golden_qat.py > tests/golden/qat.json

The module has 8-bit per-channel symmetric weight fake quantization (torch's
default_per_channel_weight_fake_quant, as nabla's nb_qat_opts gives at 8 bits); nabla's
ConvBn2d also carries the output's activation_post_process, which the test switches off, so
both compute conv(x, fq(W f)) / f + b followed by bn.  Two steps, each a forward of x and a
backward of sum(out * R): in training (batch statistics; the running ones updated), then after
freeze_bn_stats (running statistics: BatchNorm folded).  Each step records the output, the
gradients of x and of every parameter, and the buffers after it.  Everything is float32, as in
training; values are written as the shortest decimals that read back as the same float32.
"""
import json

import torch
import torch.nn.intrinsic.qat as nniqat
from torch.ao.quantization import QConfig, default_fake_quant, default_per_channel_weight_fake_quant

from golden_common import short32

torch.manual_seed(1616)


def enc(t):
    return {"shape": list(t.shape), "data": [short32(v) for v in t.detach().to(torch.float32).flatten().tolist()]}


def named(pairs):
    return [dict(name=n, **enc(t)) for n, t in pairs]


def main():
    qconfig = QConfig(activation=default_fake_quant, weight=default_per_channel_weight_fake_quant)
    m = nniqat.ConvBn2d(3, 4, 3, padding=1, bias=True, qconfig=qconfig)
    with torch.no_grad():  # BN parameters and statistics away from their initial 1 and 0
        m.bn.weight.copy_(torch.rand(4) + 0.5)
        m.bn.bias.copy_(torch.randn(4) * 0.1)
        m.bn.running_mean.copy_(torch.randn(4) * 0.1)
        m.bn.running_var.copy_(torch.rand(4) + 0.5)
    m.train()
    params = {n: enc(p) for n, p in m.named_parameters()}
    buffers = {n: enc(b) for n, b in m.named_buffers() if n.startswith("bn.")}
    steps = []
    for frozen in (False, True):
        if frozen:
            m.freeze_bn_stats()
        x = torch.randn(2, 3, 5, 5).requires_grad_(True)
        r = torch.randn(2, 4, 5, 5)
        m.zero_grad()
        out = m(x)
        (out * r).sum().backward()
        steps.append({"frozen": frozen, "input": enc(x), "R": enc(r), "output": enc(out),
                      "grad_input": enc(x.grad),
                      "grads": named((n, p.grad) for n, p in m.named_parameters()),
                      "buffers": named((n, b) for n, b in m.named_buffers() if n.startswith("bn."))})
    print(json.dumps({"params": params, "buffers": buffers, "steps": steps}, indent=None))


if __name__ == "__main__":
    main()
