#!/usr/bin/python3
"""gen_golden_train.py — PyTorch runs a model on weights that nabla wrote.

  build/test_train --write-golden          (from the repo root) writes
                                           tests/golden/nabla_mlp.safetensors with nabla
  /usr/bin/python3 tools/gen_golden_train.py   reads it into torch and writes
                                           tests/golden/nabla_mlp_torch.json

Run it with Debian's python3 (torch 1.13).  The `safetensors` package is not installed there, so
the file is parsed by hand with struct + json, validating what safetensors.torch.load_file would:
the header, the offsets that must tile the data buffer, and nabla's CRC-32 of the data.  The
tensors go into nn.Sequential(Flatten, Linear(16, 8), BatchNorm1d(8), ReLU, Linear(8, 3)) with
load_state_dict(strict=True), so every state_dict name and shape must match torch's; the model
runs in eval mode (BatchNorm on its running statistics) on a fixed input.  tests/test_train.c
loads the same weights with nb_module_load and compares its output with torch's within 1e-5.
"""
import json
import os
import struct
import sys
import zlib

import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
          "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "I8": torch.int8}


def load_safetensors(path):
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    if "nabla.crc32" in meta and f"{zlib.crc32(data) & 0xFFFFFFFF:08x}" != meta["nabla.crc32"]:
        raise ValueError(f"{path}: checksum mismatch")
    tensors, expect = {}, 0
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, end = e["data_offsets"]
        dtype = DTYPES[e["dtype"]]
        numel = 1
        for s in e["shape"]:
            numel *= s
        if begin != expect or end - begin != numel * torch.empty((), dtype=dtype).element_size():
            raise ValueError(f"{path}: {name}: offsets {e['data_offsets']} do not tile the data")
        tensors[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype).reshape(e["shape"])
        expect = end
    if expect != len(data):
        raise ValueError(f"{path}: {len(data) - expect} bytes after the last tensor")
    return tensors


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    golden = os.path.join(root, "tests", "golden")
    weights = os.path.join(golden, "nabla_mlp.safetensors")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.BatchNorm1d(8),
                                torch.nn.ReLU(), torch.nn.Linear(8, 3))
    # strict: a missing, extra or misshapen tensor raises; nabla's int32 num_batches_tracked is
    # copied into torch's int64 buffer, as load_state_dict copies any dtype
    model.load_state_dict(load_safetensors(weights), strict=True)
    model.eval()
    torch.manual_seed(0)
    x = torch.rand(5, 4, 4)
    with torch.no_grad():
        y = model(x)
    out = {
        "producer": "tools/gen_golden_train.py",
        "weights": "tests/golden/nabla_mlp.safetensors",
        "input_shape": list(x.shape),
        "input": [float(v) for v in x.reshape(-1).tolist()],
        "output": [float(v) for v in y.reshape(-1).tolist()],
    }
    path = os.path.join(golden, "nabla_mlp_torch.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(path, root)}: torch's output {list(y.shape)} on nabla's weights")


if __name__ == "__main__":
    if len(sys.argv) != 1:
        sys.exit(__doc__)
    main()
