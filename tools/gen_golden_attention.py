#!/usr/bin/python3
"""Writes tests/golden/attention.json: PyTorch reference vectors for scaled dot-product
attention (src/ops/attention.c), read by tests/test_attention.c.

Regenerate from the repository root with Debian's python3-torch:

    /usr/bin/python3 tools/gen_golden_attention.py

torch 1.13 has no F.scaled_dot_product_attention, so the reference is written out as torch 2
documents it: softmax(q k^T scale + mask) v, with a boolean attn_mask meaning "may attend",
is_causal hiding keys j > i (top-left aligned) and a key padding mask [B, S] as
MultiheadAttention's (True: a padding key).  Inputs are drawn in float32 and the reference runs
in float64, so the stored values are exact inputs and references without float32 rounding.
Each case stores q, k, v, the masks, the scale (0: 1/sqrt(D)), random weights R for the loss
sum(out * R), the output and the gradients of q, k and v.
"""
import json
import math
import os

import torch

from golden_common import D, f32, short32

torch.manual_seed(23)
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "golden", "attention.json")


def number(v):
    """A float32 value (an input) exactly, a float64 reference to 9 significant digits."""
    return short32(v) if float(torch.tensor(v, dtype=torch.float32)) == v else float("%.9g" % v)


def tensor(t, dtype=None):
    t = t.detach()
    out = {"shape": list(t.shape),
           "data": [number(v) if dtype is None else int(v) for v in t.reshape(-1).tolist()]}
    if dtype:
        out["dtype"] = dtype
    return out


def sdpa(q, k, v, attn_mask=None, key_padding_mask=None, causal=False, scale=0.0):
    """torch 2's F.scaled_dot_product_attention (plus MHA's key padding mask) in matmul and
    softmax."""
    x = q @ k.transpose(-1, -2) * (scale or 1.0 / math.sqrt(q.shape[-1]))
    if attn_mask is not None:
        x = x.masked_fill(~attn_mask, -math.inf) if attn_mask.dtype == torch.bool else x + attn_mask
    if key_padding_mask is not None:
        x = x.masked_fill(key_padding_mask[:, None, None, :], -math.inf)
    if causal:
        t, s = x.shape[-2:]
        x = x.masked_fill(torch.ones(t, s, dtype=torch.bool).triu(1), -math.inf)
    return torch.softmax(x, -1) @ v


def sdpa_case(name, B, H, T, S, Dk, Dv=None, mask=None, padding=None, causal=False, scale=0.0):
    Dv = Dv or Dk
    q, k, v = (f32(torch.randn(*shape, dtype=D)).requires_grad_(True)
               for shape in ((B, H, T, Dk), (B, H, S, Dk), (B, H, S, Dv)))
    case = {"name": name, "causal": causal, "scale": scale}
    attn_mask = kpm = None
    if mask == "float":
        attn_mask = f32(torch.randn(T, S, dtype=D))
        attn_mask[0, 1] = -1e30  # hidden (JSON has no infinity)
        case["attn_mask"] = tensor(attn_mask)
    elif mask == "bool":
        attn_mask = torch.rand(B, 1, T, S) < 0.7
        attn_mask[..., 0] = True  # every row keeps a key
        case["attn_mask"] = tensor(attn_mask, "int32")
    if padding:
        kpm = torch.zeros(B, S, dtype=torch.bool)
        for b, n in enumerate(padding):
            kpm[b, S - n:] = n > 0
        case["key_padding_mask"] = tensor(kpm, "int32")
    out = sdpa(q, k, v, attn_mask, kpm, causal, scale)
    r = f32(torch.rand(out.shape, dtype=D) * 2 - 1)
    (out * r).sum().backward()
    case.update(q=tensor(q), k=tensor(k), v=tensor(v), R=tensor(r), out=tensor(out),
                grad_q=tensor(q.grad), grad_k=tensor(k.grad), grad_v=tensor(v.grad))
    return case


SDPA = [
    sdpa_case("plain", 2, 2, 5, 7, 4),
    sdpa_case("causal_square", 1, 3, 6, 6, 4, causal=True),
    sdpa_case("value_width_and_scale", 2, 1, 3, 4, 5, Dv=3, scale=0.3),
    sdpa_case("float_mask", 1, 2, 4, 5, 3, mask="float"),
    sdpa_case("bool_mask_per_batch", 2, 2, 4, 6, 3, mask="bool"),
    sdpa_case("key_padding", 3, 2, 4, 6, 3, padding=[0, 2, 5]),
    sdpa_case("padding_and_causal", 2, 1, 5, 5, 3, padding=[1, 2], causal=True),
    # more than one block of 64 queries and keys: the online softmax's rescaling
    sdpa_case("blocks_causal", 1, 1, 70, 70, 8, causal=True),
    sdpa_case("blocks_masked", 1, 2, 66, 131, 4, mask="float"),
]


def named(module, grad=False):
    return [dict(name=n, **tensor(p.grad if grad else p)) for n, p in module.named_parameters()]


def mha_case(name, E, H, T, S, B, batch_first=False, bias=True, add_zero_attn=False,
             attn_mask=None, padding=None, need_weights=True, average=True):
    """nn.MultiheadAttention in float64 from float32 parameters; inputs [L, B, E] (or
    batch_first), masks as torch's MHA reads them (boolean True: hidden)."""
    m = torch.nn.MultiheadAttention(E, H, bias=bias, add_zero_attn=add_zero_attn,
                                    batch_first=batch_first)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape) * 0.5)
    m = m.to(D)
    shape = lambda L: (B, L, E) if batch_first else (L, B, E)
    q = f32(torch.randn(*shape(T), dtype=D)).requires_grad_(True)
    k = f32(torch.randn(*shape(S), dtype=D)).requires_grad_(True)
    v = f32(torch.randn(*shape(S), dtype=D)).requires_grad_(True)
    case = {"name": name, "embed_dim": E, "num_heads": H, "batch_first": batch_first,
            "bias": bias, "add_zero_attn": add_zero_attn, "need_weights": need_weights,
            "average": average, "params": named(m)}
    am = kpm = None
    if attn_mask == "float":
        am = f32(torch.randn(T, S, dtype=D))
        case["attn_mask"] = tensor(am)
    elif attn_mask == "bool3d":
        am = torch.rand(B * H, T, S) < 0.3
        am[..., 0] = False
        case["attn_mask"] = tensor(am, "int32")
    if padding:
        kpm = torch.zeros(B, S, dtype=torch.bool)
        for b, n in enumerate(padding):
            kpm[b, S - n:] = n > 0
        case["key_padding_mask"] = tensor(kpm, "int32")
    out, w = m(q, k, v, key_padding_mask=kpm, attn_mask=am, need_weights=need_weights,
               average_attn_weights=average)
    r = f32(torch.rand(out.shape, dtype=D) * 2 - 1)
    loss = (out * r).sum()
    if need_weights:
        rw = f32(torch.rand(w.shape, dtype=D) * 2 - 1)
        loss = loss + (w * rw).sum()
        case.update(R_weights=tensor(rw), weights=tensor(w))
    loss.backward()
    case.update(query=tensor(q), key=tensor(k), value=tensor(v), R=tensor(r), out=tensor(out),
                grad_query=tensor(q.grad), grad_key=tensor(k.grad), grad_value=tensor(v.grad),
                grads=named(m, True))
    return case


MHA = [
    mha_case("self_seq_first_weights", 8, 2, 5, 5, 3),
    mha_case("cross_batch_first_padding_float_mask_fused", 8, 4, 4, 6, 2, batch_first=True,
             attn_mask="float", padding=[0, 2], need_weights=False),
    mha_case("bool_3d_mask_zero_attn_no_bias_per_head", 6, 3, 3, 4, 2, bias=False,
             add_zero_attn=True, attn_mask="bool3d", padding=[1, 0], average=False),
]


def layer_case(name, decoder, E, H, F_, T, S, B, batch_first=False, norm_first=False,
               gelu=False, eps=1e-5, causal_tgt=False, padding=None):
    """TransformerEncoderLayer / TransformerDecoderLayer (dropout 0) in float64 from float32
    parameters; the loss sum(out * R)."""
    cls = torch.nn.TransformerDecoderLayer if decoder else torch.nn.TransformerEncoderLayer
    m = cls(E, H, dim_feedforward=F_, dropout=0.0, activation="gelu" if gelu else "relu",
            layer_norm_eps=eps, batch_first=batch_first, norm_first=norm_first)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape) * 0.5)
    m = m.to(D)
    shape = lambda L: (B, L, E) if batch_first else (L, B, E)
    x = f32(torch.randn(*shape(T), dtype=D)).requires_grad_(True)
    case = {"name": name, "decoder": decoder, "d_model": E, "nhead": H, "dim_feedforward": F_,
            "batch_first": batch_first, "norm_first": norm_first, "gelu": gelu, "eps": eps,
            "params": named(m)}
    kpm = None
    if padding:
        kpm = torch.zeros(B, S if decoder else T, dtype=torch.bool)
        for b, n in enumerate(padding):
            kpm[b, kpm.shape[1] - n:] = n > 0
        case["key_padding_mask"] = tensor(kpm, "int32")
    if decoder:
        mem = f32(torch.randn(*shape(S), dtype=D)).requires_grad_(True)
        tgt_mask = torch.ones(T, T, dtype=torch.bool).triu(1) if causal_tgt else None
        case["causal_tgt"] = causal_tgt
        out = m(x, mem, tgt_mask=tgt_mask, memory_key_padding_mask=kpm)
    else:
        out = m(x, src_key_padding_mask=kpm)
    r = f32(torch.rand(out.shape, dtype=D) * 2 - 1)
    (out * r).sum().backward()
    case.update(input=tensor(x), R=tensor(r), out=tensor(out), grad_input=tensor(x.grad),
                grads=named(m, True))
    if decoder:
        case.update(memory=tensor(mem), grad_memory=tensor(mem.grad))
    return case


LAYERS = [
    layer_case("encoder_post_norm_relu", False, 8, 2, 16, 5, 5, 2, padding=[0, 2]),
    layer_case("encoder_pre_norm_gelu_batch_first", False, 8, 4, 12, 4, 4, 3, batch_first=True,
               norm_first=True, gelu=True, eps=1e-6),
    layer_case("decoder_post_norm_causal_memory_padding", True, 8, 2, 16, 4, 6, 2,
               causal_tgt=True, padding=[1, 0]),
    layer_case("decoder_pre_norm_gelu_batch_first", True, 6, 3, 10, 3, 5, 2, batch_first=True,
               norm_first=True, gelu=True),
]


def sinusoidal(max_len, d):
    """PyTorch's tutorial (Language Modeling with nn.Transformer), float32."""
    position = torch.arange(max_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
    pe = torch.zeros(max_len, d)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def rotary_case(shape, offset, base=10000.0):
    """GPT-NeoX's RotaryEmbedding and apply_rotary_pos_emb, the angles in float32 as its code."""
    x = f32(torch.randn(*shape, dtype=D)).requires_grad_(True)
    T, dim = shape[-2:]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
    freqs = torch.einsum("i,j->ij", torch.arange(offset, offset + T).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(D), emb.sin().to(D)
    x1, x2 = x[..., :dim // 2], x[..., dim // 2:]
    out = x * cos + torch.cat((-x2, x1), dim=-1) * sin
    r = f32(torch.rand(out.shape, dtype=D) * 2 - 1)
    (out * r).sum().backward()
    return {"offset": offset, "base": base, "x": tensor(x), "R": tensor(r), "out": tensor(out),
            "grad_x": tensor(x.grad)}


POSITIONS = {"sinusoidal": tensor(sinusoidal(50, 6).to(D)),
             "rotary": [rotary_case((2, 2, 5, 8), 0), rotary_case((1, 3, 4, 6), 37, 500.0)]}


def main():
    doc = {"comment": "PyTorch reference vectors for tests/test_attention.c, written by "
                      "tools/gen_golden_attention.py; do not edit",
           "torch": torch.__version__, "sdpa": SDPA, "mha": MHA,
           "layers": LAYERS, "positions": POSITIONS}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
