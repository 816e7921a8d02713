#!/usr/bin/python3
"""gen_golden_lbfgs.py: torch.optim.LBFGS trajectories -> tests/golden/lbfgs.json.

Run from the repository root with Debian's python3-torch (torch 1.13, not a pyenv python):

    /usr/bin/python3 tools/gen_golden_lbfgs.py

Two problems, each run for several steps with and without the strong-Wolfe line search, and with
a small history so the ring of (s, y) pairs wraps:
  - "rosenbrock": f(a, b) = (1 - a)^2 + 100 (b - a^2)^2 from (a, b) = (-1.2, 1), two parameters
    of shape [1];
  - "mlp": loss = mean((tanh(X W1 + b1) W2 + b2 - Y)^2), X [8, 3], Y [8, 1], W1 [3, 4], b1 [4],
    W2 [4, 1], b2 [1], drawn from a seeded generator.
The closure is torch's usual one: zero_grad, forward, backward, return the loss.  Every step
records the loss step() returned, the parameters after it, and state['n_iter'] and
state['func_evals'].  Numbers keep 9 significant digits, which round-trips float32.

Quasi-Newton trajectories amplify rounding: torch's own float32 and float64 runs of one config
part after some steps (a line search takes another branch, and from there on nothing agrees).
So each config also runs in float64, and a step is kept only while the two runs agree: the
same counts and max |p32 - p64| <= SPREAD_MAX ("spread" in the file).  A float32 implementation
that does the algorithm's arithmetic differently (nabla sums dots in double) can be asked to
agree with torch only over that horizon; the configs are chosen so that it covers several steps.
"""
import json

import torch


def rosenbrock_problem(gen):
    del gen
    params = [torch.tensor([-1.2]), torch.tensor([1.0])]

    def loss_fn(p, data):
        del data
        a, b = p
        return ((1 - a) ** 2 + 100 * (b - a * a) ** 2).sum()

    return params, {}, loss_fn


def mlp_problem(gen):
    data = {"X": torch.randn(8, 3, generator=gen), "Y": torch.randn(8, 1, generator=gen)}
    params = [torch.randn(3, 4, generator=gen) * 0.5, torch.randn(4, generator=gen) * 0.1,
              torch.randn(4, 1, generator=gen) * 0.5, torch.randn(1, generator=gen) * 0.1]

    def loss_fn(p, data):
        w1, b1, w2, b2 = p
        out = torch.tanh(data["X"] @ w1 + b1) @ w2 + b2
        return ((out - data["Y"]) ** 2).mean()

    return params, data, loss_fn


PROBLEMS = {"rosenbrock": rosenbrock_problem, "mlp": mlp_problem}
SPREAD_MAX = 3e-5

# name, problem, LBFGS options (torch's keywords), steps at most
CONFIGS = [
    ("rosenbrock_plain", "rosenbrock", dict(lr=0.02, max_iter=5, history_size=2), 8),
    ("rosenbrock_wolfe", "rosenbrock",
     dict(lr=1, max_iter=3, history_size=10, line_search_fn="strong_wolfe"), 8),
    ("rosenbrock_wolfe_ring", "rosenbrock",
     dict(lr=1, max_iter=4, history_size=3, line_search_fn="strong_wolfe"), 3),
    ("mlp_plain", "mlp", dict(lr=0.5, max_iter=4, history_size=3), 6),
    ("mlp_wolfe", "mlp", dict(lr=1, max_iter=4, history_size=3, line_search_fn="strong_wolfe"), 4),
    ("mlp_defaults", "mlp", dict(), 2),
    ("mlp_wolfe_10", "mlp", dict(max_iter=10, line_search_fn="strong_wolfe"), 2),
]


def tensor_json(t):
    return {"shape": list(t.shape), "data": [float("%.9g" % v) for v in t.detach().reshape(-1).tolist()]}


def trajectory(name, problem, opts, steps, dtype):
    """The problem's start (float32 values), and per step: loss, parameters, counts."""
    gen = torch.Generator().manual_seed(sum(map(ord, problem)))
    params, data, loss_fn = PROBLEMS[problem](gen)
    start = [p.clone() for p in params]
    params = [p.to(dtype).requires_grad_(True) for p in params]
    data = {k: v.to(dtype) for k, v in data.items()}
    opt = torch.optim.LBFGS(params, **opts)

    def closure():
        opt.zero_grad()
        loss = loss_fn(params, data)
        loss.backward()
        return loss

    out = []
    for _ in range(steps):
        loss = opt.step(closure)
        state = opt.state[params[0]]
        out.append((float(loss), [p.detach().clone() for p in params], state["n_iter"],
                    state["func_evals"]))
    return start, data, out


def run(name, problem, opts, steps):
    start, data, f32 = trajectory(name, problem, opts, steps, torch.float32)
    _, _, f64 = trajectory(name, problem, opts, steps, torch.float64)
    case = {"problem": problem, "opts": opts,
            "data": {k: tensor_json(v) for k, v in data.items()},
            "params": [tensor_json(p) for p in start], "steps": []}
    for (loss, params, n_iter, evals), (_, params64, n_iter64, evals64) in zip(f32, f64):
        spread = max((a.double() - b).abs().max().item() for a, b in zip(params, params64))
        if (n_iter, evals) != (n_iter64, evals64) or spread > SPREAD_MAX:
            break
        case["steps"].append({"loss": float("%.9g" % loss), "params": [tensor_json(p) for p in params],
                              "n_iter": n_iter, "func_evals": evals,
                              "spread": float("%.3g" % spread)})
    assert case["steps"], "%s: float32 and float64 part at once (spread %g)" % (name, spread)
    return case


def main():
    torch.set_num_threads(1)
    out = {"torch": torch.__version__, "cases": {}}
    for name, problem, opts, steps in CONFIGS:
        out["cases"][name] = run(name, problem, opts, steps)
    with open("tests/golden/lbfgs.json", "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
