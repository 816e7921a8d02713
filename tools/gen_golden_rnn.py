#!/usr/bin/python3
"""Writes tests/golden/rnn.json: PyTorch reference vectors for Embedding, RNN, LSTM, GRU and
their cells (src/nn/recurrent.c, src/ops/embedding.c), read by tests/test_rnn.c and
tests/test_embedding.c.

Regenerate from the repository root with Debian's python3-torch:

    /usr/bin/python3 tools/gen_golden_rnn.py

Parameters and inputs are drawn in float32 and the modules then run in float64, so the stored
values are exact in the C library's float32 and the references carry no float32 rounding of
their own (they are written with 9 significant digits).  Each case stores the module's options, its parameters by torch's names (in
named_parameters() order), the input, the initial states and lengths when given, random
weights R for the loss sum(output * R_out) + sum(h_n * R_h) (+ sum(c_n * R_c) for an LSTM),
torch's output and final states, and the loss's gradients with respect to the input, the
initial states and every parameter.  Lengths go through pack_padded_sequence (enforce_sorted=
False) and pad_packed_sequence(total_length=T), as a torch user feeds padded batches.
"""
import json
import os

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from golden_common import D, f32, short32

torch.manual_seed(14)


def number(v):
    """A float32 value (an input) exactly, a float64 reference to 9 significant digits."""
    return short32(v) if float(torch.tensor(v, dtype=torch.float32)) == v else float("%.9g" % v)


def tensor(t, dtype=None):
    t = t.detach()
    out = {"shape": list(t.shape), "data": [number(v) if dtype is None else int(v)
                                            for v in t.reshape(-1).tolist()]}
    if dtype:
        out["dtype"] = dtype
    return out


def named(module):
    return [dict(name=n, **tensor(p)) for n, p in module.named_parameters()]


def grads(module):
    return [dict(name=n, **tensor(p.grad)) for n, p in module.named_parameters()]


CLASSES = {"RNN_TANH": (nn.RNN, {"nonlinearity": "tanh"}), "RNN_RELU": (nn.RNN, {"nonlinearity": "relu"}),
           "LSTM": (nn.LSTM, {}), "GRU": (nn.GRU, {})}


def layer_case(name, mode, I, H, T, B, layers=1, bidirectional=False, batch_first=False,
               bias=True, h0=False, c0=False, lengths=None, unbatched=False, dropout=0.0):
    cls, extra = CLASSES[mode]
    m = cls(I, H, num_layers=layers, bias=bias, batch_first=batch_first,
            bidirectional=bidirectional, **extra)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(f32(p.to(D)).to(p.dtype))
    m = m.to(D)
    cells = layers * (2 if bidirectional else 1)
    shape = [T, I] if unbatched else ([B, T, I] if batch_first else [T, B, I])
    x = f32(torch.randn(shape, dtype=D)).requires_grad_()
    sshape = [cells, H] if unbatched else [cells, B, H]
    h = f32(torch.randn(sshape, dtype=D)).requires_grad_() if h0 else None
    c = f32(torch.randn(sshape, dtype=D)).requires_grad_() if c0 else None
    state = (h if h is not None else torch.zeros(sshape, dtype=D),
             c if c is not None else torch.zeros(sshape, dtype=D)) if mode == "LSTM" else h
    if lengths is not None:
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first,
                                      enforce_sorted=False)
        out, hn = m(packed, state)
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    else:
        out, hn = m(x, state)
    hn, cn = hn if mode == "LSTM" else (hn, None)
    r_out = f32(torch.randn(out.shape, dtype=D))
    r_h = f32(torch.randn(hn.shape, dtype=D))
    loss = (out * r_out).sum() + (hn * r_h).sum()
    case = dict(name=name, mode=mode, input_size=I, hidden_size=H, num_layers=layers,
                bidirectional=bidirectional, batch_first=batch_first, bias=bias,
                params=named(m), input=tensor(x), R_out=tensor(r_out), R_h=tensor(r_h))
    if cn is not None:
        r_c = f32(torch.randn(cn.shape, dtype=D))
        loss = loss + (cn * r_c).sum()
        case["R_c"] = tensor(r_c)
    loss.backward()
    case.update(output=tensor(out), h_n=tensor(hn), grad_input=tensor(x.grad), grads=grads(m))
    if cn is not None:
        case["c_n"] = tensor(cn)
    if h is not None:
        case.update(h0=tensor(h), grad_h0=tensor(h.grad))
    if c is not None:
        case.update(c0=tensor(c), grad_c0=tensor(c.grad))
    if lengths is not None:
        case["lengths"] = lengths
    return case


CELLS = {"RNN_TANH": (nn.RNNCell, {"nonlinearity": "tanh"}), "RNN_RELU": (nn.RNNCell, {"nonlinearity": "relu"}),
         "LSTM": (nn.LSTMCell, {}), "GRU": (nn.GRUCell, {})}


def cell_case(name, mode, I, H, B, bias=True):
    cls, extra = CELLS[mode]
    m = cls(I, H, bias=bias, **extra)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(f32(p.to(D)).to(p.dtype))
    m = m.to(D)
    x = f32(torch.randn(B, I, dtype=D)).requires_grad_()
    h = f32(torch.randn(B, H, dtype=D)).requires_grad_()
    c = f32(torch.randn(B, H, dtype=D)).requires_grad_() if mode == "LSTM" else None
    out = m(x, (h, c)) if c is not None else m(x, h)
    hn, cn = out if c is not None else (out, None)
    r_h = f32(torch.randn(hn.shape, dtype=D))
    loss = (hn * r_h).sum()
    case = dict(name=name, mode=mode, input_size=I, hidden_size=H, bias=bias, params=named(m),
                input=tensor(x), h0=tensor(h), R_h=tensor(r_h))
    if c is not None:
        r_c = f32(torch.randn(cn.shape, dtype=D))
        loss = loss + (cn * r_c).sum()
        case.update(c0=tensor(c), R_c=tensor(r_c))
    loss.backward()
    case.update(h_n=tensor(hn), grad_input=tensor(x.grad), grad_h0=tensor(h.grad), grads=grads(m))
    if c is not None:
        case.update(c_n=tensor(cn), grad_c0=tensor(c.grad))
    return case


def embedding_case(name, V, E, ids, padding_idx=None, max_norm=None):
    m = nn.Embedding(V, E, padding_idx=padding_idx, max_norm=max_norm)
    with torch.no_grad():
        m.weight.copy_(f32(m.weight.to(D)).float())
    m = m.to(D)
    ids = torch.tensor(ids)
    weight = tensor(m.weight)  # before max_norm renormalises it in place
    out = m(ids)
    r = f32(torch.randn(out.shape, dtype=D))
    (out * r).sum().backward()
    case = dict(name=name, weight=weight, ids=tensor(ids, "int32"), R=tensor(r),
                output=tensor(out), grad_weight=tensor(m.weight.grad))
    if padding_idx is not None:
        case["padding_idx"] = padding_idx
    if max_norm is not None:
        case.update(max_norm=max_norm, weight_after=tensor(m.weight))
    return case


def main():
    layers = [
        layer_case("lstm_one_layer", "LSTM", 3, 4, 5, 2),
        layer_case("lstm_two_layers_bidirectional_h0_c0", "LSTM", 3, 4, 4, 2, layers=2,
                   bidirectional=True, h0=True, c0=True),
        layer_case("lstm_batch_first_unsorted_lengths_bidirectional", "LSTM", 3, 4, 5, 3,
                   bidirectional=True, batch_first=True, lengths=[5, 2, 4], h0=True),
        layer_case("lstm_no_bias_two_layers_lengths", "LSTM", 2, 3, 4, 3, layers=2, bias=False,
                   lengths=[4, 1, 3]),
        layer_case("lstm_unbatched_h0", "LSTM", 3, 2, 4, 1, unbatched=True, h0=True, c0=True),
        layer_case("gru_one_layer_batch_first", "GRU", 3, 4, 5, 2, batch_first=True),
        layer_case("gru_two_layers_bidirectional_lengths_h0", "GRU", 3, 4, 5, 3, layers=2,
                   bidirectional=True, lengths=[3, 5, 1], h0=True),
        layer_case("rnn_tanh_two_layers_bidirectional", "RNN_TANH", 3, 4, 4, 2, layers=2,
                   bidirectional=True, h0=True),
        layer_case("rnn_relu_lengths", "RNN_RELU", 3, 4, 5, 3, lengths=[2, 5, 3]),
        # the fused layers (ops/rnn.c) with masks in every mode
        layer_case("lstm_three_layers_bidirectional_lengths_h0_c0", "LSTM", 3, 4, 6, 4, layers=3,
                   bidirectional=True, lengths=[6, 1, 3, 5], h0=True, c0=True),
        layer_case("gru_batch_first_bidirectional_lengths_h0", "GRU", 3, 4, 5, 3,
                   bidirectional=True, batch_first=True, lengths=[5, 2, 4], h0=True),
        layer_case("gru_no_bias_two_layers_lengths", "GRU", 2, 3, 4, 3, layers=2, bias=False,
                   lengths=[4, 1, 3]),
        layer_case("gru_unbatched_h0", "GRU", 3, 2, 4, 1, unbatched=True, h0=True),
        layer_case("gru_larger_two_layers_bidirectional_lengths", "GRU", 8, 16, 8, 4, layers=2,
                   bidirectional=True, lengths=[8, 3, 6, 1], h0=True),
        layer_case("rnn_tanh_batch_first_no_bias_lengths_h0", "RNN_TANH", 3, 4, 5, 3,
                   batch_first=True, bias=False, lengths=[1, 5, 3], h0=True),
        layer_case("rnn_relu_two_layers_bidirectional_lengths_h0", "RNN_RELU", 3, 4, 5, 3,
                   layers=2, bidirectional=True, lengths=[3, 5, 2], h0=True),
    ]
    cells = [
        cell_case("lstm_cell", "LSTM", 3, 4, 2),
        cell_case("gru_cell", "GRU", 3, 4, 2),
        cell_case("rnn_cell_tanh", "RNN_TANH", 3, 4, 2),
        cell_case("rnn_cell_relu_no_bias", "RNN_RELU", 3, 4, 2, bias=False),
    ]
    embeddings = [
        embedding_case("embedding_repeated_ids", 7, 3, [[1, 4, 1], [6, 0, 4]]),
        embedding_case("embedding_padding_idx", 6, 4, [[0, 2, 0, 5], [2, 2, 1, 0]], padding_idx=0),
        embedding_case("embedding_negative_padding_idx", 5, 2, [4, 3, 4, 1], padding_idx=-1),
        embedding_case("embedding_max_norm_repeated_ids", 6, 4, [[5, 1, 5], [2, 1, 0]], max_norm=1.0),
    ]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "rnn.json")
    with open(path, "w") as f:
        json.dump({"layers": layers, "cells": cells, "embeddings": embeddings}, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.normpath(path))


if __name__ == "__main__":
    main()
