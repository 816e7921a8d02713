"""golden_common.py — what the golden generators share: float32 values held in float64 for the
reference computations, and the shortest decimal that reads back as a given float32."""
import struct

import torch

D = torch.float64


def f32(t):
    """t rounded to float32 values, held in float64 for the reference computation."""
    return t.to(torch.float32).to(D)


def short32(v):
    """The shortest decimal that reads back (as double, then float32 — the C path) as v."""
    for digits in range(1, 10):
        s = "%.*g" % (digits, v)
        if struct.unpack("f", struct.pack("f", float(s)))[0] == v:
            return float(s)
    raise AssertionError(v)
