#!/usr/bin/python3
"""gen_golden_io.py — safetensors interop between nabla and PyTorch.

  /usr/bin/python3 tools/gen_golden_io.py            writes tests/golden/torch_written.safetensors
                                                     and the pretrained body (below)
  /usr/bin/python3 tools/gen_golden_io.py --read F   reads F (e.g. written by nabla), validates it
                                                     and prints every tensor as torch sees it

Run it with Debian's python3 (torch 1.13).  The `safetensors` package is not installed there, so
the format is written by tools/pt_to_safetensors.py's save_file (as safetensors.torch does it)
and read here by hand with struct + json + torch, validating the offsets and nabla's checksum:
"nabla.file_crc32" (the CRC-32 of the whole file with its own 8 digits read as "0"s, opening the
header), or in older nabla files "nabla.crc32" (of the data alone); a file with "nabla.*"
metadata and neither is refused.  tests/test_io.c checks the values printed by the write mode,
bit for bit.

The pretrained body: a torch MLP, Flatten, Linear(16, 8), BatchNorm1d(8), ReLU, Dropout,
Linear(8, 10), is saved with torch.save(model.state_dict()) and converted with
tools/pt_to_safetensors.py to tests/golden/torch_pretrained.safetensors; its body under a new
3-class head (fixed values) computes, in eval mode, the output stored with the input and the
head in tests/golden/torch_pretrained.json.  tests/test_train.c loads the file non-strictly into
nabla's Flatten, Linear(16, 8), BatchNorm1d(8), ReLU, Linear(8, 3) — missing 4.weight/4.bias,
unexpected 5.weight/5.bias — sets the same head and compares the outputs.
"""
import json
import os
import struct
import sys
import tempfile
import zlib

import torch

from pt_to_safetensors import convert, save_file

DTYPES = {  # safetensors name -> torch dtype
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}


CRC_PREFIX = b'{"__metadata__":{"nabla.file_crc32":"'


def check_nabla_checksum(blob, meta):
    """nabla's checksum, as nb_safetensors_open checks it (see nabla/io.h)."""
    if "nabla.file_crc32" in meta:
        at = 8 + len(CRC_PREFIX)
        if blob[8:at] != CRC_PREFIX:
            raise ValueError("nabla.file_crc32 does not open the header")
        crc = zlib.crc32(blob[:at] + b"00000000" + blob[at + 8:]) & 0xFFFFFFFF
        if f"{crc:08x}" != meta["nabla.file_crc32"].lower():
            raise ValueError(f"checksum mismatch: file {crc:08x}, header {meta['nabla.file_crc32']}")
    elif "nabla.crc32" in meta:
        (n,) = struct.unpack("<Q", blob[:8])
        crc = zlib.crc32(blob[8 + n:]) & 0xFFFFFFFF
        if f"{crc:08x}" != meta["nabla.crc32"].lower():
            raise ValueError(f"checksum mismatch: data {crc:08x}, header {meta['nabla.crc32']}")
    elif any(k.startswith("nabla.") for k in meta):
        raise ValueError("nabla metadata but no checksum")


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
    check_nabla_checksum(blob, meta)
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
    save_file(path, tensors, meta)
    back, _ = load(path)
    assert all(torch.equal(back[k], tensors[k]) for k in tensors)
    print(f"wrote {os.path.relpath(path, root)} ({os.path.getsize(path)} bytes)")
    for name, t in tensors.items():
        if t.is_floating_point():  # exact as doubles
            vals = ", ".join(f"{v:.17g}" for v in t.reshape(-1).double().tolist())
        else:
            vals = ", ".join(str(v) for v in t.reshape(-1).tolist())
        print(f"{name}: {NAMES[t.dtype]} {list(t.shape)}: {{{vals}}}")


def pretrained_body(root):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.BatchNorm1d(8),
                                torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(8, 10))
    with torch.no_grad():  # BatchNorm's running statistics away from their initial values
        for _ in range(3):
            model(torch.randn(16, 4, 4))
    golden = os.path.join(root, "tests", "golden")
    st_path = os.path.join(golden, "torch_pretrained.safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        pt_path = os.path.join(tmp, "pretrained.pt")
        torch.save(model.state_dict(), pt_path)
        convert(pt_path, st_path)
    back, _ = load(st_path)
    assert set(back) == set(model.state_dict())
    assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())

    # the body under a new head with fixed values, as nabla's test sets it
    head = torch.nn.Linear(8, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[0.1 * (i + 1) - 0.05 * j for j in range(8)]
                                        for i in range(3)]))
        head.bias.copy_(torch.tensor([0.01 * i for i in range(3)]))
    new = torch.nn.Sequential(*list(model.children())[:4], head).eval()
    x = torch.rand(5, 4, 4)
    with torch.no_grad():
        y = new(x)
    out = {
        "producer": "tools/gen_golden_io.py",
        "weights": "tests/golden/torch_pretrained.safetensors",
        "input_shape": list(x.shape),
        "input": [float(v) for v in x.reshape(-1).tolist()],
        "head_weight": [float(v) for v in head.weight.reshape(-1).tolist()],
        "head_bias": [float(v) for v in head.bias.tolist()],
        "output": [float(v) for v in y.reshape(-1).tolist()],
    }
    with open(os.path.join(golden, "torch_pretrained.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(st_path, root)} (converted from a .pt state_dict) and "
          "tests/golden/torch_pretrained.json")


def show(path):
    try:
        tensors, meta = load(path)
    except (ValueError, KeyError, UnicodeDecodeError, json.JSONDecodeError) as e:
        print(f"{path}: invalid: {e}")
        return 1
    print(f"{path}: {len(tensors)} tensors, valid (offsets tile the buffer"
          f"{', checksum matches' if any(k.startswith('nabla.') for k in meta) else ''})")
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
    pretrained_body(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
