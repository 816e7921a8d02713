#!/usr/bin/python3
"""Golden conversions between every pair of nabla's dtypes -> tests/golden/dtypes.json.

Run with Debian's /usr/bin/python3 (python3-torch, torch 1.13) from the repository root.

What each pair's expected values come from:
  - float32, float16, bfloat16, int8, uint8, int16, int32 among themselves: torch 1.13's
    `Tensor.to(dtype)`, except float -> integer, where torch truncates toward zero and wraps (or,
    outside int32, is undefined behaviour in C++).  nabla rounds half to even and saturates there
    (issue 11: round-to-nearest-even; what quantization wants), NaN -> 0 as torch gives; the
    expected values are torch's `x.double().round().clamp(lo, hi)`, NaN replaced by 0.
    Integer -> integer wraps modulo 2^bits exactly as torch (two's complement truncation).
  - float8_e4m3fn and float8_e5m2: torch 1.13 has no fp8, so the values come from the OCP 8-bit
    floating point spec (OFP8 v1.0), computed here with exact rationals (fractions):
    round to nearest, ties to even, with torch >= 2.1's overflow rule (non-saturating): a value
    that rounds past the largest finite number is NaN (0x7f | sign) for e4m3fn, which has no
    infinity, and +-Inf for e5m2; NaN -> 0x7f | sign (either sign is a NaN in both formats);
    e4m3fn has no Inf, so +-Inf -> NaN.  fp8 -> float32 is exact; a NaN becomes a quiet float32
    NaN with the sign and the fp8 mantissa in the top bits (0x7f -> 0x7ff00000), which is what
    torch does for float16 NaNs and torch >= 2.1 for fp8.  Other pairs with an fp8 end go
    through float32 (exact from every source but int32, which rounds to float32 first, as torch
    >= 2.1 does).  As a cross-check, main() asserts that the spec's float32 -> fp8 agrees on
    every input with a transcription of torch 2.1's bit algorithm (torch21_fp8_encode), and
    that e5m2 -> float32 is torch 1.13's float16 -> float32 of the pattern shifted by 8.

The file: "inputs" holds the sources that are not enumerated (float32 bit patterns: every
value, tie and near-tie of every 16- and 8-bit format, integer ties, specials and random
patterns; int32 values); the 8- and 16-bit sources are every bit pattern, 0 .. 2^bits - 1 in
order.  "convert"["src>dst"] (src != dst) holds the outputs in dst's storage.  Every array is
delta-coded, zlib-compressed, then base64 (see pack: the whole file stays small).
"""
import base64
import json
import struct
import zlib
from fractions import Fraction

import numpy as np
import torch

# nabla's dtypes in enum order (include/nabla.h), with numpy storage types
DTYPES = ["float32", "float16", "bfloat16", "int8", "int32", "uint8", "int16",
          "float8_e4m3fn", "float8_e5m2"]
STORE = {"float32": np.uint32, "float16": np.uint16, "bfloat16": np.uint16, "int8": np.int8,
         "int32": np.int32, "uint8": np.uint8, "int16": np.int16, "float8_e4m3fn": np.uint8,
         "float8_e5m2": np.uint8}
TORCH = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
         "int8": torch.int8, "int32": torch.int32, "uint8": torch.uint8, "int16": torch.int16}
INT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
             "int32": (-2**31, 2**31 - 1)}
FP8 = {"float8_e4m3fn": (4, 3), "float8_e5m2": (5, 2)}  # exponent bits, mantissa bits


def pack(a):
    """base64(zlib(deltas)): element i is stored as a[i] - a[i-1] modulo 2^bits (a[-1] = 0),
    little-endian, which turns the ladders and counting runs into long repeats."""
    u = np.ascontiguousarray(a).view(np.dtype("u%d" % a.dtype.itemsize))
    d = np.diff(u, prepend=np.zeros(1, u.dtype)).astype(u.dtype.newbyteorder("<"))
    return base64.b64encode(zlib.compress(d.tobytes(), 9)).decode()


# ---- fp8 from the spec, exactly

def fp8_decode(name, b):
    """The float32 bits of fp8 pattern b."""
    eb, mb = FP8[name]
    sign, e, m = b >> 7, (b >> mb) & ((1 << eb) - 1), b & ((1 << mb) - 1)
    top = (1 << eb) - 1
    nan = (e == top and m == (1 << mb) - 1) if name == "float8_e4m3fn" else (e == top and m)
    if nan:
        return (sign << 31) | 0x7fc00000 | (m << (23 - mb))
    if name == "float8_e5m2" and e == top:
        return (sign << 31) | 0x7f800000
    v = fp8_value(name, b & 0x7f)
    bits = struct.unpack("<I", struct.pack("<f", float(v)))[0]  # exact: <= 4 significant bits
    return (sign << 31) | bits


def fp8_value(name, b):
    """The exact value of a non-negative finite pattern."""
    eb, mb = FP8[name]
    bias = (1 << (eb - 1)) - 1
    e, m = b >> mb, b & ((1 << mb) - 1)
    if e == 0:
        return Fraction(m, 1 << mb) * Fraction(2) ** (1 - bias)
    return (1 + Fraction(m, 1 << mb)) * Fraction(2) ** (e - bias)


def fp8_max(name):
    return Fraction(448) if name == "float8_e4m3fn" else Fraction(57344)


def round_half_even(q):
    n, r = divmod(q.numerator, q.denominator)
    twice = 2 * r
    if twice > q.denominator or (twice == q.denominator and n % 2):
        n += 1
    return n


def fp8_encode(name, f32bits):
    eb, mb = FP8[name]
    bias = (1 << (eb - 1)) - 1
    sign = (f32bits >> 31) << 7
    if (f32bits & 0x7f800000) == 0x7f800000:
        if f32bits & 0x7fffff or name == "float8_e4m3fn":
            return sign | 0x7f  # NaN (and e4m3fn's answer to +-Inf)
        return sign | 0x7c
    x = abs(Fraction(struct.unpack("<f", struct.pack("<I", f32bits))[0]))
    if x == 0:
        return sign
    e = x.numerator.bit_length() - x.denominator.bit_length()  # floor(log2 x) or one more
    if Fraction(2) ** e > x:
        e -= 1
    e = max(e, 1 - bias)
    quantum = Fraction(2) ** (e - mb)
    v = round_half_even(x / quantum) * quantum  # the nearest, exponent range unbounded above
    if v > fp8_max(name):  # overflow: e4m3fn has no infinity
        return sign | (0x7f if name == "float8_e4m3fn" else 0x7c)
    return sign | FP8_PATTERN[name][v]


FP8_PATTERN = {n: {fp8_value(n, b): b for b in range(0x7f) if
                   not (n == "float8_e5m2" and b >= 0x7c)} for n in FP8}


# ---- the same, as torch >= 2.1 computes it: a cross-check, not a source

def _f32_add(a_bits, b_bits):
    s = np.float32(np.array(a_bits, np.uint32).view(np.float32)) + \
        np.float32(np.array(b_bits, np.uint32).view(np.float32))
    return int(np.array(s, dtype=np.float32).view(np.uint32))


def torch21_fp8_encode(name, f_bits):
    """fp8e4m3fn_from_fp32_value / fp8e5m2_from_fp32_value of torch 2.1's c10/util/Float8_*.h,
    transcribed: float32 bit arithmetic (rounding by a biased add, subnormals by adding a
    constant in float32)."""
    mask = 0xffffffff
    sign = f_bits & 0x80000000
    f_bits ^= sign
    e4 = name == "float8_e4m3fn"
    shift, bias = (20, 7) if e4 else (21, 15)
    fp8_max = (1087 << 20) if e4 else (143 << 23)
    denorm_mask = (141 << 23) if e4 else (134 << 23)
    if f_bits >= fp8_max:
        r = 0x7f if e4 or f_bits > (255 << 23) else 0x7c
    elif f_bits < ((121 if e4 else 113) << 23):
        r = (_f32_add(f_bits, denorm_mask) - denorm_mask) & 0xff
    else:
        odd = (f_bits >> shift) & 1
        f_bits = (f_bits + (((bias - 127) << 23) & mask) + (1 << (shift - 1)) - 1 + odd) & mask
        r = (f_bits >> shift) & 0xff
    return r | (sign >> 24)


# ---- conversions

def to_torch(src, raw):
    """src's elements (stored as STORE[src]) as a torch tensor of that dtype."""
    if src in ("float32", "float16", "bfloat16"):
        signed = raw.view(np.int32 if src == "float32" else np.int16).copy()
        return torch.from_numpy(signed).view(TORCH[src])
    return torch.from_numpy(raw.copy())


def bits_of(t):
    """The stored bits of a torch float32/float16/bfloat16 tensor, as numpy unsigned."""
    if t.dtype == torch.float32:
        return t.view(torch.int32).numpy().view(np.uint32)
    return t.view(torch.int16).numpy().view(np.uint16)


def as_float32_bits(src, raw):
    """The float32 bit patterns of src's elements (exact, but int32 rounds as torch's does)."""
    if src in FP8:
        return np.array([fp8_decode(src, int(b)) for b in raw], dtype=np.uint32)
    return bits_of(to_torch(src, raw).float())


def convert(src, dst, raw):
    if src in INT_RANGE and dst in INT_RANGE:  # wraps, as torch
        return to_torch(src, raw).to(TORCH[dst]).numpy()
    if src not in FP8 and dst in ("float32", "float16", "bfloat16"):  # torch's own
        return bits_of(to_torch(src, raw).to(TORCH[dst]))
    f32 = as_float32_bits(src, raw)
    if dst in FP8:
        return np.array([fp8_encode(dst, int(b)) for b in f32], dtype=np.uint8)
    x = to_torch("float32", f32)
    if dst in INT_RANGE:  # round half to even, saturate, NaN -> 0
        lo, hi = INT_RANGE[dst]
        return torch.nan_to_num(x.double().round(), nan=0.0).clamp(lo, hi).to(TORCH[dst]).numpy()
    return bits_of(x.to(TORCH[dst]))  # an fp8 source: its float32 value, converted by torch


def f32bits(v):
    return struct.unpack("<I", struct.pack("<f", v))[0]


def float_inputs():
    """Every value, tie and near-tie of each 16- and 8-bit float format (signs mixed), integer
    ties, specials, and random patterns."""
    out = []

    def ladder(values):  # sorted non-negative finite values of a format, and its step at the top
        vals = list(values)
        vals.append(vals[-1] + (vals[-1] - vals[-2]))
        for p in range(len(vals) - 1):
            v, nxt = np.float64(vals[p]), np.float64(vals[p + 1])
            mid = np.float32((v + nxt) / 2)
            neg = (p >> 1) & 1
            for x in (np.float32(v), mid, np.nextafter(mid, np.float32(np.inf)),
                      np.nextafter(mid, np.float32(0))):
                b = int(np.array(x, dtype=np.float32).view(np.uint32))
                out.append(b | (neg << 31))

    h = np.arange(0, 0x7c00, dtype=np.uint16).view(np.float16).astype(np.float64)
    ladder(h)
    bf = torch.from_numpy(np.arange(0, 0x7f80, dtype=np.int32).astype(np.int16)).view(
        torch.bfloat16).double().numpy()
    ladder(bf)
    for n in FP8:
        ladder(sorted(float(fp8_value(n, b)) for b in FP8_PATTERN[n].values()))
    for k in range(-33000, 33000):
        out.append(f32bits(k + 0.5))
    for k in range(-300, 300):
        for d in (0.0, 0.25, 0.75):
            out.append(f32bits(k + d))
        for toward in (np.inf, -np.inf):
            near = np.nextafter(np.float32(k + 0.5), np.float32(toward))
            out.append(int(np.array(near, dtype=np.float32).view(np.uint32)))
    for v in (2147483520.0, 2147483648.0, -2147483648.0, -2147483904.0, 1e10, -1e10, 16777216.0,
              16777218.0, 3.4028234663852886e38, -3.4028234663852886e38, 1e-45, -1e-45, 1e-8,
              65504.0, 65519.99, 65520.0, 448.0, 464.0, 464.00003, 480.0, 57344.0, 61440.0,
              61439.996, 65536.0, 1e30, -1e30):
        out.append(f32bits(v))
    out += [0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001,
            0x7fa00000, 0xffffffff, 0x7fc02000, 0x7f812345, 0x00000001, 0x80000001, 0x007fffff,
            0x00800000, 0x7f7fffff]
    state = 12345
    for _ in range(8192):  # an LCG's patterns: the rest of the space, NaN payloads included
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        out.append(state >> 32)
    return np.array(out, dtype=np.uint32)


def int32_inputs():
    vals = list(range(-70000, 70000))
    for base in (2**24, 2**25, 2**31 - 2**7, 2**24 + 2**16):
        for d in range(-3, 4):
            vals += [base + d, -(base + d)]
    vals += [2**31 - 1, -2**31, 2**30 + 2**22 + 1, 2**30 + 2**22, 2**30 + 3 * 2**22]
    state = 777
    for _ in range(8192):
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        vals.append((state >> 32) - 2**31)
    return np.array(vals, dtype=np.int32)


def sources():
    src = {"float32": float_inputs(), "int32": int32_inputs()}
    for n, bits in (("float16", 16), ("bfloat16", 16), ("int16", 16), ("int8", 8), ("uint8", 8),
                    ("float8_e4m3fn", 8), ("float8_e5m2", 8)):
        src[n] = np.arange(1 << bits, dtype=np.uint32).astype(np.uint16 if bits == 16 else
                                                              np.uint8).view(STORE[n])
    return src


def main():
    src = sources()
    for name in FP8:  # the spec's rounding is torch >= 2.1's, on every float32 input
        for b in src["float32"]:
            assert fp8_encode(name, int(b)) == torch21_fp8_encode(name, int(b)), (name, hex(b))
    # e5m2 is float16's top byte: its values are torch 1.13's of the float16 pattern b << 8
    half = as_float32_bits("float16", (np.arange(256, dtype=np.uint16) << 8))
    assert all(fp8_decode("float8_e5m2", b) == half[b] for b in range(256))
    doc = {"comment": "tools/gen_golden_dtypes.py: torch " + torch.__version__ +
           " and the OFP8 v1.0 spec; arrays are base64(zlib(little-endian))",
           "dtypes": DTYPES,
           "inputs": {"float32": pack(src["float32"]), "int32": pack(src["int32"])},
           "input_counts": {"float32": len(src["float32"]), "int32": len(src["int32"])},
           "convert": {}}
    for s in DTYPES:
        for d in DTYPES:
            if s == d:
                continue  # the identity: the source's own bits (checked as such)
            out = np.asarray(convert(s, d, src[s])).astype(STORE[d])
            assert len(out) == len(src[s]), (s, d)
            doc["convert"][s + ">" + d] = pack(out)
    with open("tests/golden/dtypes.json", "w") as f:
        json.dump(doc, f, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
