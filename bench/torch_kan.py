#!/usr/bin/python3
"""torch_kan.py: the torch side of bench/kan_layer.sh — the same KAN layer as bench_kan_layer
(batch 1024, 64 -> 64, G = 10, k = 3, silu base, x requiring grad), written as a torch user
writes it (tools/kan_torch.py: the Cox-de Boor recursion as tensor ops over the batch, the
contraction as einsum, as pykan and efficient-kan do), forward and backward of a fixed output
gradient, ms per step, median of REPS after a warm-up step.

    /usr/bin/python3 bench/torch_kan.py [REPS [THREADS]]     (defaults 30, 1)
"""
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import kan_torch  # noqa: E402

N, WIDTH, G, K = 1024, 64, 10, 3


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    points = torch.linspace(-1, 1, G + 1).expand(WIDTH, G + 1)
    grid = kan_torch.extend_knots(points, K)
    coef = (torch.randn(WIDTH, G + K, WIDTH) * 0.01).requires_grad_(True)
    scale_base = torch.randn(WIDTH, WIDTH).requires_grad_(True)
    scale_sp = torch.ones(WIDTH, WIDTH).requires_grad_(True)
    mask = torch.ones(WIDTH, WIDTH)
    x = (torch.rand(N, WIDTH) * 2.2 - 1.1).requires_grad_(True)
    g = torch.randn(N, WIDTH)
    times = []
    for r in range(-1, reps):
        t0 = time.perf_counter()
        y = kan_torch.kan_layer(x, grid, coef, scale_base, scale_sp, mask, K)
        y.backward(g)
        for t in (coef, scale_base, scale_sp, x):
            t.grad = None
        if r >= 0:
            times.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(times)
    print("kan_layer: torch %s, the same layer, %d thread(s): %.3f ms (median of %d)"
          % (torch.__version__, threads, med, reps))
    print("@torch_kan ms=%.4f" % med)


if __name__ == "__main__":
    main()
