"""torch_rnn.py -- the peer of bench/rnn.c: torch.nn.LSTM forward + backward on the same shapes,
loss output.sum(), the median time of one step over REPS after one warm-up, wall-clock and the
process's CPU time.

    /usr/bin/python3 bench/torch_rnn.py [T B I H L REPS THREADS]   (defaults 64 32 128 256 2 5 2)

Prints "@ torch_lstm_ms <median>" and "@ torch_lstm_cpu_ms <median>" for bench/rnn.sh.
"""
import statistics
import sys
import time

import torch


def main():
    v = [64, 32, 128, 256, 2, 5, 2]
    for i, a in enumerate(sys.argv[1:8]):
        v[i] = int(a)
    t, b, i, h, layers, reps, threads = v
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = torch.nn.LSTM(i, h, num_layers=layers)
    x = torch.randn(t, b, i)

    def step():
        t0, c0 = time.perf_counter(), time.process_time()
        out, _ = m(x)
        out.sum().backward()
        m.zero_grad(set_to_none=False)
        return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3

    step()
    runs = [step() for _ in range(max(reps, 1))]
    ms = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    print("torch %s LSTM T=%d B=%d I=%d H=%d L=%d, %d threads: forward+backward median %.2f ms "
          "wall, %.2f ms CPU over %d" % (torch.__version__, t, b, i, h, layers, threads, ms, cpu, reps))
    print("@ torch_lstm_ms %.3f" % ms)
    print("@ torch_lstm_cpu_ms %.3f" % cpu)


if __name__ == "__main__":
    main()
