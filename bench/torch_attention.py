"""torch_attention.py -- the peer of bench/attention.c: nn.MultiheadAttention and
nn.TransformerEncoderLayer (dropout 0, dim_feedforward 4E) forward + backward, causal
self-attention on [T, B, E], loss output.sum(), the median time of one step over REPS after one
warm-up.  torch 1.13 has no fused attention on CPU: its MHA keeps the [T, S] weights
(need_weights=False still materialises them).

    /usr/bin/python3 bench/torch_attention.py [T B E HEADS REPS THREADS]  (defaults 128 16 128 4 5 2)

Prints "@ torch_mha_ms <median>" and "@ torch_encoder_ms <median>" for bench/attention.sh.
"""
import statistics
import sys
import time

import torch


def median_ms(m, run, reps):
    def step():
        t0 = time.perf_counter()
        run().sum().backward()
        m.zero_grad(set_to_none=False)
        return (time.perf_counter() - t0) * 1e3

    step()
    return statistics.median(step() for _ in range(max(reps, 1)))


def main():
    v = [128, 16, 128, 4, 5, 2]
    for i, a in enumerate(sys.argv[1:7]):
        v[i] = int(a)
    t, b, e, heads, reps, threads = v
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(t, b, e)
    mask = torch.ones(t, t, dtype=torch.bool).triu(1)
    mha = torch.nn.MultiheadAttention(e, heads, dropout=0.0)
    enc = torch.nn.TransformerEncoderLayer(e, heads, dim_feedforward=4 * e, dropout=0.0)
    a = median_ms(mha, lambda: mha(x, x, x, attn_mask=mask, need_weights=False)[0], reps)
    c = median_ms(enc, lambda: enc(x, src_mask=mask), reps)
    print("torch %s T=%d B=%d E=%d heads=%d causal, %d threads, median over %d: "
          "MultiheadAttention %.2f ms, TransformerEncoderLayer %.2f ms (forward+backward)"
          % (torch.__version__, t, b, e, heads, threads, reps, a, c))
    print("@ torch_mha_ms %.3f\n@ torch_encoder_ms %.3f" % (a, c))


if __name__ == "__main__":
    main()
