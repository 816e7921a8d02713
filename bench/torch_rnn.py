"""torch_rnn.py -- the peer of bench/rnn.c: torch.nn.LSTM / GRU / RNN forward + backward on the
same shapes, loss output.sum(), the median time of one step over REPS after one warm-up,
wall-clock and the process's CPU time.

    /usr/bin/python3 bench/torch_rnn.py [MODE T B I H L REPS THREADS]
        MODE lstm, gru, rnn_tanh or rnn_relu (default lstm); defaults 64 32 128 256 2 5 2

Prints "@ torch_ms <median>" and "@ torch_cpu_ms <median>" for bench/rnn.sh.
"""
import statistics
import sys
import time

import torch

MODES = {"lstm": (torch.nn.LSTM, {}), "gru": (torch.nn.GRU, {}),
         "rnn_tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}),
         "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"})}


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "lstm"
    v = [64, 32, 128, 256, 2, 5, 2]
    for i, a in enumerate(sys.argv[2:9]):
        v[i] = int(a)
    t, b, i, h, layers, reps, threads = v
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cls, extra = MODES[mode]
    m = cls(i, h, num_layers=layers, **extra)
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
    print("torch %s %s T=%d B=%d I=%d H=%d L=%d, %d threads: forward+backward median %.2f ms "
          "wall, %.2f ms CPU over %d" % (torch.__version__, mode, t, b, i, h, layers, threads, ms,
                                         cpu, reps))
    print("@ torch_ms %.3f" % ms)
    print("@ torch_cpu_ms %.3f" % cpu)


if __name__ == "__main__":
    main()
