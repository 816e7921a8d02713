#!/usr/bin/python3
"""gen_golden_train.py — PyTorch runs a model on weights that nabla wrote.

  build/test_train --write-golden          (from the repo root) writes
                                           tests/golden/nabla_mlp.safetensors with nabla
  /usr/bin/python3 tools/gen_golden_train.py   reads it into torch and writes
                                           tests/golden/nabla_mlp_torch.json

Run it with Debian's python3 (torch 1.13).  The `safetensors` package is not installed there, so
the file is parsed by hand (tools/gen_golden_io.py's load), validating what
safetensors.torch.load_file would — the header, the offsets that must tile the data buffer —
and nabla's checksum of the whole file.  The
tensors go into nn.Sequential(Flatten, Linear(16, 8), BatchNorm1d(8), ReLU, Linear(8, 3)) with
load_state_dict(strict=True), so every state_dict name and shape must match torch's; the model
runs in eval mode (BatchNorm on its running statistics) on a fixed input.  tests/test_train.c
loads the same weights with nb_module_load and compares its output with torch's within 1e-5.
"""
import json
import os
import sys

import torch

from gen_golden_io import load


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    golden = os.path.join(root, "tests", "golden")
    weights = os.path.join(golden, "nabla_mlp.safetensors")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.BatchNorm1d(8),
                                torch.nn.ReLU(), torch.nn.Linear(8, 3))
    # strict: a missing, extra or misshapen tensor raises; nabla's int32 num_batches_tracked is
    # copied into torch's int64 buffer, as load_state_dict copies any dtype
    model.load_state_dict(load(weights)[0], strict=True)
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
