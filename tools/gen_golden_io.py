#!/usr/bin/python3
"""gen_golden_io.py — safetensors interop between nabla and PyTorch.

  /usr/bin/python3 tools/gen_golden_io.py            writes tests/golden/torch_written.safetensors
  /usr/bin/python3 tools/gen_golden_io.py --read F   reads F (e.g. written by nabla), validates it
                                                     and prints every tensor as torch sees it

Run it with Debian's python3 (torch 1.13).  The `safetensors` package is not installed there, so
the format is written and read by hand with struct + json + torch, the way safetensors.torch does
it: 8-byte little-endian header length, a JSON header padded with spaces to an 8-byte boundary,
tensors sorted by descending element size then name, "__metadata__" first.  tests/test_io.c
checks the values printed by the write mode, bit for bit.
"""
import json
import os
import struct
import sys
import zlib

import torch

DTYPES = {  # safetensors name -> torch dtype
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}


def raw_bytes(t):
    """The elements of t, row-major, little-endian (torch's in-memory order on x86/arm)."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def save(path, tensors, metadata):
    order = sorted(tensors, key=lambda n: (-tensors[n].element_size(), n))
    header, data, off = {"__metadata__": metadata}, b"", 0
    for name in order:
        t = tensors[name]
        b = raw_bytes(t)
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        data += b
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def load(path):
    """Reads and validates a safetensors file; returns (tensors in file order, metadata)."""
    blob = open(path, "rb").read()
    if len(blob) < 8:
        raise ValueError(f"{path}: {len(blob)} bytes, no header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    expect, out = 0, {}
    for name, e in entries:
        if set(e) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{name}: keys {sorted(e)}")
        b, end = e["data_offsets"]
        if b != expect:
            raise ValueError(f"{name}: begins at {b}, expected {expect} (gap or overlap)")
        dtype = DTYPES[e["dtype"]]
        numel = 1
        for s in e["shape"]:
            numel *= s
        if end - b != numel * torch.empty((), dtype=dtype).element_size() or end > len(data):
            raise ValueError(f"{name}: offsets [{b}, {end}] do not fit {e['dtype']} {e['shape']}")
        if numel:
            t = torch.frombuffer(bytearray(data[b:end]), dtype=dtype).reshape(e["shape"])
        else:
            t = torch.empty(e["shape"], dtype=dtype)
        out[name] = t
        expect = end
    if expect != len(data):
        raise ValueError(f"{len(data) - expect} trailing bytes after the last tensor")
    if "nabla.crc32" in meta:
        crc = zlib.crc32(data) & 0xFFFFFFFF
        if f"{crc:08x}" != meta["nabla.crc32"].lower():
            raise ValueError(f"checksum mismatch: data {crc:08x}, header {meta['nabla.crc32']}")
    return out, meta


def golden():
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    tensors = {
        "linear.weight": lin.weight.detach().clone(),
        "linear.bias": lin.bias.detach().clone(),
        "half": torch.tensor([[0.5, -1.25, 3.0], [65504.0, 2.0 ** -24, -0.0]], dtype=torch.float16),
        "bf16": torch.tensor([[1.0, -2.5], [3.140625, 1e30]], dtype=torch.bfloat16),
        "int8": torch.tensor([-128, -1, 0, 1, 127], dtype=torch.int8),
        "int32": torch.tensor([[-2147483648, 7], [2147483647, 0]], dtype=torch.int32),
        "labels": torch.tensor([3, 0, 9, 1], dtype=torch.int64),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }
    meta = {"format": "pt", "producer": "tools/gen_golden_io.py"}
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    path = os.path.join(root, "tests", "golden", "torch_written.safetensors")
    save(path, tensors, meta)
    back, _ = load(path)
    assert all(torch.equal(back[k], tensors[k]) for k in tensors)
    print(f"wrote {os.path.relpath(path, root)} ({os.path.getsize(path)} bytes)")
    for name, t in tensors.items():
        if t.is_floating_point():  # exact as doubles
            vals = ", ".join(f"{v:.17g}" for v in t.reshape(-1).double().tolist())
        else:
            vals = ", ".join(str(v) for v in t.reshape(-1).tolist())
        print(f"{name}: {NAMES[t.dtype]} {list(t.shape)}: {{{vals}}}")


def show(path):
    try:
        tensors, meta = load(path)
    except (ValueError, KeyError, UnicodeDecodeError, json.JSONDecodeError) as e:
        print(f"{path}: invalid: {e}")
        return 1
    print(f"{path}: {len(tensors)} tensors, valid (offsets tile the buffer"
          f"{', crc32 matches' if 'nabla.crc32' in meta else ''})")
    print(f"metadata: {json.dumps(meta)}")
    for name, t in tensors.items():
        print(f"{name}: {t.dtype} {list(t.shape)}")
        print(f"  {t.tolist() if t.numel() <= 24 else t}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--read":
        sys.exit(show(sys.argv[2]))
    if len(sys.argv) != 1:
        sys.exit(__doc__)
    golden()
