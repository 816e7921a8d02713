"""torch_tiny_op.py -- the peer figures for nabla's benches, measured in torch the same way.

Run with Debian's interpreter, which has torch:  /usr/bin/python3 bench/torch_tiny_op.py

  tiny op      a + b on two [8] tensors: "record" (a requires grad), "no_record" (neither
               does), "no_grad" (a requires grad, under torch.no_grad()); ns per op, the median
               over batches of BATCH ops.  The figure includes the Python loop, since that is
               what a torch user pays per op; "loop" is the empty loop alone, for reference.
  matmul       torch.matmul of two [n,n] f32 at the thread count nabla uses by default (the
               number of cores); GFLOP/s, median over samples (as bench/matmul.c).
  elementwise  add, mul, exp on 4M and 16M floats at 1 and 2 threads; GB/s counted as in
               bench/elementwise.c (12 bytes an element for add and mul, 8 for exp).

Each op writes into a preallocated tensor (out=), as nabla's benches write into a scope whose
arena block is reused; a fresh 64 MB result each call would add page faults to torch's time
that nabla does not pay.  Lines starting with "@" are for bench/run.sh.
"""
import os
import statistics
import time

import torch

BATCH = 10000
TINY_BATCHES = 51
MATMUL_SIZES = (64, 128, 256, 512, 1024, 2048)
ELEM_SIZES = (1 << 22, 1 << 24)
ELEM_SAMPLES = 15
SAMPLE_NS = 20e6  # one matmul sample lasts about 20 ms, as in bench/matmul.c


def tiny_op():
    a = torch.arange(1.0, 9.0)
    b = torch.arange(8.0, 0.0, -1.0)
    ga = a.clone().requires_grad_(True)

    def batch(x, y):
        t0 = time.perf_counter_ns()
        for _ in range(BATCH):
            x + y
        return (time.perf_counter_ns() - t0) / BATCH

    def empty_loop():
        t0 = time.perf_counter_ns()
        for _ in range(BATCH):
            pass
        return (time.perf_counter_ns() - t0) / BATCH

    cases = {"record": [], "no_record": [], "no_grad": [], "loop": []}
    for i in range(-1, TINY_BATCHES):  # batch -1 warms up and is not counted
        t = {"record": batch(ga, b), "no_record": batch(a, b)}
        with torch.no_grad():
            t["no_grad"] = batch(ga, b)
        t["loop"] = empty_loop()
        if i >= 0:
            for k, v in t.items():
                cases[k].append(v)
    print(f"tiny op: a + b on [8] tensors, {BATCH} ops per batch, median of {TINY_BATCHES}")
    for k, v in cases.items():
        print(f"{k:>10} {statistics.median(v):10.1f} ns per op")
    for k, v in cases.items():
        print(f"@torch_tiny_op case={k} ns_per_op={statistics.median(v):.2f}")


def matmul(threads):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    print(f"matmul: torch.matmul [n,n] @ [n,n] f32, {torch.get_num_threads()} threads")
    for n in MATMUL_SIZES:
        a, b = torch.rand(n, n), torch.rand(n, n)
        out = torch.empty(n, n)
        torch.matmul(a, b, out=out)
        t0 = time.perf_counter_ns()
        torch.matmul(a, b, out=out)
        one = time.perf_counter_ns() - t0
        inner = max(1, int(SAMPLE_NS / max(one, 1)))
        samples = 15 if n >= 2048 else 21 if n >= 1024 else 41
        times = []
        for _ in range(samples):
            t0 = time.perf_counter_ns()
            for _ in range(inner):
                torch.matmul(a, b, out=out)
            times.append((time.perf_counter_ns() - t0) / inner)
        gflops = 2.0 * n ** 3 / statistics.median(times)
        print(f"{n:>6} {gflops:10.1f} GFLOP/s")
        print(f"@torch_matmul n={n} gflops={gflops:.2f}")


def elementwise():
    torch.manual_seed(1)
    ops = {
        "add": (12.0, lambda a, b, out: torch.add(a, b, out=out)),
        "mul": (12.0, lambda a, b, out: torch.mul(a, b, out=out)),
        "exp": (8.0, lambda a, b, out: torch.exp(a, out=out)),
    }
    print("elementwise: torch add / mul / exp, GB/s by bytes moved")
    for n in ELEM_SIZES:
        a, b, out = torch.randn(n), torch.randn(n), torch.empty(n)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for name, (bytes_per_elem, fn) in ops.items():
                fn(a, b, out)
                times = []
                for _ in range(ELEM_SAMPLES):
                    t0 = time.perf_counter_ns()
                    fn(a, b, out)
                    times.append(time.perf_counter_ns() - t0)
                gbs = bytes_per_elem * n / statistics.median(times)
                print(f"{name:>4} {n >> 20:5d}M {threads:3d} threads {gbs:8.2f} GB/s")
                print(f"@torch_elementwise op={name} n={n} threads={threads} gbs={gbs:.3f}")


def main():
    print(f"torch {torch.__version__}, {os.cpu_count()} cores")
    torch.set_num_threads(1)
    tiny_op()
    elementwise()
    # Last, and after a pause: OpenBLAS's idle workers spin for about 0.1 s after a GEMM and
    # would take a core from the OpenMP threads of whatever runs next (see bench/matmul.c).
    time.sleep(0.3)
    matmul(os.cpu_count() or 1)


if __name__ == "__main__":
    main()
