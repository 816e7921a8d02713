#!/usr/bin/python3
"""gen_golden_quant.py: torch's fake quantization and observers for tests/test_quant.c, written
to tests/golden/quant.json.

Regenerate from the repository root with Debian's python3-torch (not a pyenv python):

    /usr/bin/python3 tools/gen_golden_quant.py

Everything runs in float32, as torch's quantization kernels do, so the C test can ask for the
same bits: the outputs and input gradients of torch.fake_quantize_per_tensor_affine /
_per_channel_affine and of the learnable _fake_quantize_learnable_* (whose scale and zero-point
gradients are sums, which nabla associates differently: those within a few ulp), on inputs that
include exact rounding ties (x / s = k + 1/2 with s a power of two) and values beyond the range;
then the observers of torch.ao.quantization (min_val, max_val and calculate_qparams after each
of three batches) and FakeQuantize modules (outputs, scale and zero point through three batches
and one more after disable_observer), and the same for the learnable _LearnableFakeQuantize
with the gradients of its scale and zero point, for bit widths 2 to 8, signed and unsigned, symmetric and
affine, per tensor and per channel.  Numbers keep 9 significant digits (float32 round trips).
"""
import json
import math
import os

import torch
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize
from torch.ao.quantization import (FakeQuantize, MinMaxObserver, MovingAverageMinMaxObserver,
                                   MovingAveragePerChannelMinMaxObserver,
                                   PerChannelMinMaxObserver)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden",
                   "quant.json")


def num(v):
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    r = float("%.9g" % v)
    return int(r) if r == int(r) and abs(r) < 1e15 else r


def flat(t):
    return [num(float(v)) for v in t.detach().float().reshape(-1).tolist()]


def qrange(bits, signed):
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def inputs(gen, shape, scale_of):
    """Normal values 6 s wide, every fourth an exact tie (k + 1/2) s or far out of range."""
    x = torch.randn(shape, generator=gen) * 6
    flat_x = x.reshape(-1)
    for i in range(0, flat_x.numel(), 4):
        s = scale_of(i)
        k = int(torch.randint(-20, 20, (), generator=gen))
        flat_x[i] = (k + 0.5) * s if i % 8 == 0 else k * 40.0 * s
    return x


# ---- fake quantization ops

def fake_quant_case(name, gen, shape, axis, bits, signed, scales, zps, gf):
    qmin, qmax = qrange(bits, signed)
    per_channel = axis is not None
    scale = torch.tensor(scales, dtype=torch.float32)
    zp = torch.tensor(zps, dtype=torch.float32)
    stride = math.prod(shape[axis + 1:]) if per_channel else 1
    x = inputs(gen, shape,
               lambda i: scales[(i // stride) % len(scales)] if per_channel else scales[0])
    r = torch.rand(shape, generator=gen) * 2 - 1
    case = {"name": name, "shape": list(shape), "axis": -1 if axis is None else axis,
            "qmin": qmin, "qmax": qmax, "x": flat(x), "scale": flat(scale), "r": flat(r)}
    # the non-learnable op needs whole zero points in the range
    zint = zp.round().clamp(qmin, qmax)
    xa = x.clone().requires_grad_(True)
    if per_channel:
        y = torch.fake_quantize_per_channel_affine(xa, scale, zint.int(), axis, qmin, qmax)
    else:
        y = torch.fake_quantize_per_tensor_affine(xa, scale, zint.int(), qmin, qmax)
    (y * r).sum().backward()
    case.update({"zero_point": flat(zint), "out": flat(y), "dx": flat(xa.grad)})
    # the learnable op takes the float zero points as they are
    xl, sl, zl = (t.clone().requires_grad_(True) for t in (x, scale, zp))
    if per_channel:
        y = torch._fake_quantize_learnable_per_channel_affine(xl, sl, zl, axis, qmin, qmax, gf)
    else:
        y = torch._fake_quantize_learnable_per_tensor_affine(xl, sl, zl, qmin, qmax, gf)
    (y * r).sum().backward()
    case["learnable"] = {"zero_point": flat(zp), "grad_factor": gf, "out": flat(y),
                         "dx": flat(xl.grad), "dscale": flat(sl.grad), "dzero_point": flat(zl.grad)}
    return case


def fake_quant_cases():
    gen = torch.Generator().manual_seed(11)
    return [
        fake_quant_case("per_tensor_uint8", gen, (8, 8), None, 8, False, [0.25], [128.3], 1.0),
        fake_quant_case("per_tensor_int4_tenth", gen, (5, 7), None, 4, True, [0.1], [-1.6], 0.5),
        fake_quant_case("per_tensor_uint2", gen, (33,), None, 2, False, [0.5], [1.5], 0.1),
        fake_quant_case("per_tensor_int8_negative_zero_point", gen, (4, 9), None, 8, True,
                        [0.0625], [-3.5], 2.0),
        fake_quant_case("per_channel_axis0_int4", gen, (3, 16), 0, 4, True, [0.125, 0.3, 1.0],
                        [0.0, 2.4, -7.6], 1.0),
        fake_quant_case("per_channel_axis1_uint5", gen, (2, 4, 5), 1, 5, False,
                        [0.5, 0.2, 0.03125, 2.0], [3.0, 0.5, 31.2, 16.5], 0.25),
        fake_quant_case("per_channel_last_axis_int8", gen, (6, 3), 1, 8, True,
                        [0.01, 0.25, 0.7], [5.0, -128.0, 2.5], 1.0),
    ]


# ---- observers

OBSERVERS = {("minmax", False): MinMaxObserver,
             ("moving_average", False): MovingAverageMinMaxObserver,
             ("minmax", True): PerChannelMinMaxObserver,
             ("moving_average", True): MovingAveragePerChannelMinMaxObserver}


def observer_args(kind, per_channel, bits, signed, symmetric, ch_axis):
    """torch's arguments for a scheme: a customised range below 8 bits (as torch's
    has_customized_qrange), the default one at 8."""
    qscheme = {(False, False): torch.per_tensor_affine, (False, True): torch.per_tensor_symmetric,
               (True, False): torch.per_channel_affine,
               (True, True): torch.per_channel_symmetric}[(per_channel, symmetric)]
    args = {"dtype": torch.qint8 if signed else torch.quint8, "qscheme": qscheme}
    if bits < 8:
        args["quant_min"], args["quant_max"] = qrange(bits, signed)
    if per_channel:
        args["ch_axis"] = ch_axis
    if kind == "moving_average":
        args["averaging_constant"] = 0.01
    return args


def batches(gen, shape, n=4):
    """Batches whose ranges move, one of them all positive, one with a NaN-free outlier."""
    out = []
    for b in range(n):
        x = torch.randn(shape, generator=gen) * (1 + b) + (0.7 if b == 1 else 0)
        if b == 1:
            x = x.abs() + 0.01
        if b == 2:
            x.reshape(-1)[3] = 25.0
        out.append(x)
    return out


def schemes():
    for kind in ("minmax", "moving_average"):
        for per_channel in (False, True):
            for bits, signed, symmetric in ((8, False, False), (8, False, True), (8, True, True),
                                            (8, True, False), (4, True, True), (4, False, False),
                                            (2, False, True), (3, True, False), (7, False, True)):
                yield {"kind": kind, "per_channel": per_channel, "bits": bits, "signed": signed,
                       "symmetric": symmetric, "ch_axis": 1 if per_channel else 0}


def observer_cases():
    gen = torch.Generator().manual_seed(12)
    cases = []
    for s in schemes():
        shape = (3, 4, 2)
        obs = OBSERVERS[(s["kind"], s["per_channel"])](
            **observer_args(s["kind"], s["per_channel"], s["bits"], s["signed"], s["symmetric"],
                            s["ch_axis"]))
        steps = []
        for x in batches(gen, shape, 3):
            obs(x)
            scale, zp = obs.calculate_qparams()
            steps.append({"x": flat(x), "min_val": flat(obs.min_val), "max_val": flat(obs.max_val),
                          "scale": flat(scale), "zero_point": flat(zp.float())})
        cases.append(dict(s, shape=list(shape), qmin=obs.quant_min, qmax=obs.quant_max,
                          steps=steps))
    return cases


def fake_quantize_module_cases():
    """FakeQuantize over three batches, then one with the observer disabled."""
    gen = torch.Generator().manual_seed(13)
    cases = []
    for s in schemes():
        if s["kind"] != "moving_average" and not s["per_channel"]:
            continue
        shape = (3, 4, 2)
        obs = OBSERVERS[(s["kind"], s["per_channel"])]
        fq = FakeQuantize(observer=obs, **observer_args(s["kind"], s["per_channel"], s["bits"],
                                                         s["signed"], s["symmetric"],
                                                         s["ch_axis"]))
        steps = []
        for i, x in enumerate(batches(gen, shape, 4)):
            if i == 3:
                fq.disable_observer()
            y = fq(x)
            steps.append({"x": flat(x), "out": flat(y), "scale": flat(fq.scale),
                          "zero_point": flat(fq.zero_point.float())})
        cases.append(dict(s, shape=list(shape), steps=steps))
    return cases


def learnable_module_cases():
    """_LearnableFakeQuantize with LSQ's gradient scale: three batches with its observer, one
    more after toggle_observer_update(False); the outputs, the qparams after each forward and
    their gradients, accumulated over the steps, under loss sum(out * r)."""
    gen = torch.Generator().manual_seed(14)
    cases = []
    for s in schemes():
        if s["kind"] != "moving_average" or s["bits"] not in (4, 8):
            continue
        shape = (3, 4, 2)
        qmin, qmax = qrange(s["bits"], s["signed"])
        args = observer_args(s["kind"], s["per_channel"], s["bits"], s["signed"], s["symmetric"],
                             s["ch_axis"])
        args.pop("quant_min", None)
        args.pop("quant_max", None)
        fq = _LearnableFakeQuantize(OBSERVERS[(s["kind"], True)] if s["per_channel"]
                                    else OBSERVERS[(s["kind"], False)], quant_min=qmin,
                                    quant_max=qmax, channel_len=4 if s["per_channel"] else -1,
                                    use_grad_scaling=True, **args)
        steps = []
        for i, x in enumerate(batches(gen, shape, 4)):
            if i == 3:
                fq.toggle_observer_update(False)
            r = torch.rand(shape, generator=gen) * 2 - 1
            y = fq(x)
            (y * r).sum().backward()
            steps.append({"x": flat(x), "r": flat(r), "out": flat(y), "scale": flat(fq.scale),
                          "zero_point": flat(fq.zero_point), "dscale": flat(fq.scale.grad),
                          "dzero_point": flat(fq.zero_point.grad)})
        cases.append(dict(s, shape=list(shape), steps=steps))
    return cases


def main():
    doc = {"comment": "torch's fake quantization and observers in float32 for "
                      "tests/test_quant.c, written by tools/gen_golden_quant.py; regenerate "
                      "with /usr/bin/python3 tools/gen_golden_quant.py, do not edit",
           "torch": torch.__version__, "fake_quant": fake_quant_cases(),
           "observers": observer_cases(), "fake_quantize_modules": fake_quantize_module_cases(),
           "learnable_modules": learnable_module_cases()}
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print("wrote %d fake-quant cases, %d observers, %d FakeQuantize and %d learnable modules "
          "to %s" % (len(doc["fake_quant"]), len(doc["observers"]),
                     len(doc["fake_quantize_modules"]), len(doc["learnable_modules"]),
                     os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
