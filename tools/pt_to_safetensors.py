#!/usr/bin/python3
"""pt_to_safetensors.py — converts a PyTorch state_dict saved with torch.save to safetensors,
so that nabla loads it (nb_module_load, or nb_module_load_nonstrict for a pretrained body under a
new head).

  /usr/bin/python3 tools/pt_to_safetensors.py IN.pt OUT.safetensors [--float32]

Run it with Debian's python3 (torch 1.13; the `safetensors` package is not needed: the format is
written by hand as safetensors.torch.save_file writes it — an 8-byte little-endian header
length, a JSON header with "__metadata__" {"format": "pt"} first, padded with spaces to an 8-byte
boundary, then the tensors sorted by descending element size, then name).

IN.pt is read with torch.load(weights_only=True): tensors and plain containers only, no code
runs.  Accepted: a state_dict (a dict of name -> tensor, as model.state_dict() gives), or a dict
holding one under "state_dict" or "model_state_dict" (a common training-checkpoint layout; the
rest of such a checkpoint is dropped, and said so).  Refused, with the reason: a pickled whole
model (save model.state_dict() instead), keys that are not strings or are empty or
"__metadata__", values that are not tensors (an optimiser state, an epoch number: name them),
sparse, quantized or complex tensors, and dtypes safetensors has no name for.  Tensors that share
storage (tied weights) are each written whole.  nabla reads F32, F16, BF16, I8, I32 and I64 (as
int32); --float32 converts float64 tensors to float32 so nabla can read them.
"""
import json
import pickle
import struct
import sys

import torch

DTYPE_NAMES = {  # torch dtype -> safetensors name
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


class Refused(Exception):
    """IN.pt holds something this tool does not convert; the message says what and why."""


def raw_bytes(t):
    """The elements of t, row-major, little-endian (torch's in-memory order on x86/arm)."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def save_file(path, tensors, metadata):
    """Writes {name: tensor} and the metadata {str: str} as safetensors.torch.save_file does."""
    order = sorted(tensors, key=lambda n: (-tensors[n].element_size(), n))
    header, chunks, off = {"__metadata__": metadata}, [], 0
    for name in order:
        t = tensors[name]
        b = raw_bytes(t)
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def state_dict_of(obj):
    """The state_dict inside what torch.load returned, and a note on what was dropped."""
    if not isinstance(obj, dict):
        raise Refused(f"it holds a {type(obj).__name__}, not a state_dict (a dict of tensors)")
    for key in ("state_dict", "model_state_dict"):
        if isinstance(obj.get(key), dict):
            dropped = sorted(str(k) for k in obj if k != key)
            return obj[key], f"took '{key}'; dropped {', '.join(dropped) or 'nothing'}"
    return obj, None


def checked(sd, float32):
    """The tensors to write, after every refusal; float64 becomes float32 with float32."""
    out = {}
    for name, t in sd.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise Refused(f"key {name!r} is not a tensor name (a non-empty string, not "
                          "'__metadata__')")
        if not isinstance(t, torch.Tensor):
            raise Refused(f"'{name}' is a {type(t).__name__}, not a tensor (a state_dict holds "
                          "tensors only)")
        if t.layout != torch.strided:
            raise Refused(f"'{name}' is a {t.layout} tensor; make it dense (.to_dense())")
        if t.is_quantized:
            raise Refused(f"'{name}' is quantized ({t.dtype}); dequantize it first")
        if float32 and t.dtype == torch.float64:
            t = t.float()
        if t.dtype not in DTYPE_NAMES:
            raise Refused(f"'{name}' is {t.dtype}, which safetensors has no name for")
        out[name] = t.detach().cpu()
    return out


def convert(src, dst, float32=False):
    """Converts src (.pt) to dst (.safetensors); returns the tensors written and a note."""
    try:
        obj = torch.load(src, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # a class other than tensors and containers
        raise Refused("it holds objects other than tensors and plain containers (a whole model? "
                      f"save model.state_dict() instead): {str(e).split('error:')[-1].strip()}") from e
    sd, note = state_dict_of(obj)
    tensors = checked(sd, float32)
    save_file(dst, tensors, {"format": "pt"})
    return tensors, note


def main(argv):
    args = [a for a in argv if a != "--float32"]
    if len(args) != 2 or any(a.startswith("-") for a in args):
        sys.exit(__doc__)
    try:
        tensors, note = convert(args[0], args[1], float32="--float32" in argv)
    except Refused as e:
        sys.exit(f"pt_to_safetensors: {args[0]}: refused: {e}")
    except (OSError, RuntimeError, EOFError) as e:  # unreadable, not a torch file, unsafe pickle
        sys.exit(f"pt_to_safetensors: {args[0]}: cannot read it with torch.load: {e}")
    if note:
        print(f"pt_to_safetensors: {args[0]}: {note}")
    wide = sorted(n for n, t in tensors.items() if t.dtype == torch.float64)
    if wide:
        print(f"pt_to_safetensors: note: {', '.join(wide)} are float64, which nabla does not "
              "read; convert with --float32")
    print(f"wrote {args[1]}: {len(tensors)} tensors")


if __name__ == "__main__":
    main(sys.argv[1:])
