#!/usr/bin/python3
"""Golden vectors for tests/test_optim.c: torch 1.13's optimisers and LR schedules.

Regenerate (Debian's python3-torch; the `python3` on PATH may have no torch):
    /usr/bin/python3 tools/gen_golden_optim.py          # writes tests/golden/optim.json

What it records, all deterministic (fixed seed, single thread):
  optim  - for each optimiser configuration, the parameters after each of STEPS steps driven by
           a fixed gradient sequence (the update rule alone, nothing else in the loop).  Three
           parameters of shapes [2,3], [4], [3]; the third has no gradient (None) for the first
           NONE_STEPS steps, so its state starts late, as torch skips it.  The trajectory row of a
           step is the three parameters flattened and concatenated in index order.
  linear - a linear model trained with MSE by SGD with momentum on fixed data: W and b after
           each step (autograd, matmul and the optimiser together).
  sched  - for each schedule, get_last_lr() of both parameter groups after construction and
           after each of SCHED_STEPS steps (and the groups' momentum where it cycles).
Option keys are nabla's field names; a key set to 0 means an explicit zero (NB_ZERO in C).
"""
import json
import os
import warnings

import torch

STEPS = 20
NONE_STEPS = 5
SCHED_STEPS = 30
SHAPES = [[2, 3], [4], [3]]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "optim.json")

torch.set_num_threads(1)
warnings.simplefilter("ignore")


def f32(values):
    """float32 values as short decimals that read back to the same float32 (9 digits)."""
    return [float("%.9g" % v) for v in values]


# ---------------------------------------------------------------- optimisers

def torch_opts(kind, o):
    """nabla option names -> torch keyword arguments."""
    kw = {}
    for k, v in o.items():
        if k in ("beta1", "beta2"):
            continue
        kw[k] = v
    if "beta1" in o or "beta2" in o:
        kw["betas"] = (o.get("beta1", 0.9), o.get("beta2", 0.999))
    return kw


def torch_group(kind, params, g, defaults):
    d = {"params": params}
    if "lr" in g:
        d["lr"] = g["lr"]
    if "weight_decay" in g:
        d["weight_decay"] = g["weight_decay"]
    if "momentum" in g:
        if kind in ("adam", "adamw"):
            d["betas"] = (g["momentum"], defaults.get("beta2", 0.999))
        else:
            d["momentum"] = g["momentum"]
    return d


OPTIMISERS = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
              "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}

OPTIM_CONFIGS = [
    ("sgd_plain", "sgd", {"lr": 0.1}, None),
    ("sgd_momentum", "sgd", {"lr": 0.1, "momentum": 0.9}, None),
    ("sgd_dampening", "sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}, None),
    ("sgd_nesterov", "sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}, None),
    ("sgd_weight_decay", "sgd", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}, None),
    ("adagrad", "adagrad", {"lr": 0.1}, None),
    ("adagrad_options", "adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1,
                                    "initial_accumulator_value": 0.1, "eps": 1e-6}, None),
    ("rmsprop", "rmsprop", {"lr": 0.01}, None),
    ("rmsprop_momentum", "rmsprop", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01}, None),
    ("rmsprop_centered", "rmsprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.5,
                                     "centered": True}, None),
    ("adam", "adam", {"lr": 0.01}, None),
    ("adam_amsgrad", "adam", {"lr": 0.01, "amsgrad": True}, None),
    ("adam_weight_decay", "adam", {"lr": 0.01, "weight_decay": 0.1, "beta1": 0.8,
                                   "beta2": 0.99}, None),
    ("adam_beta1_zero", "adam", {"lr": 0.01, "beta1": 0}, None),
    ("adamw", "adamw", {"lr": 0.01}, None),
    ("adamw_amsgrad", "adamw", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "eps": 1e-6}, None),
    ("adamw_no_weight_decay", "adamw", {"lr": 0.01, "weight_decay": 0}, None),
    ("sgd_two_groups", "sgd", {"lr": 0.1, "momentum": 0.9},
     [{"params": [0, 2]}, {"params": [1], "lr": 0.01, "weight_decay": 0.1}]),
    ("adam_two_groups", "adam", {"lr": 0.01},
     [{"params": [0, 2]}, {"params": [1], "lr": 0.001, "weight_decay": 0, "momentum": 0.5}]),
    ("rmsprop_two_groups", "rmsprop", {"lr": 0.01},
     [{"params": [0, 2]}, {"params": [1], "lr": 0.02, "momentum": 0.9}]),
]


def make_data():
    g = torch.Generator().manual_seed(1234)
    init = [torch.randn(s, generator=g) for s in SHAPES]
    grads = []
    for t in range(STEPS):
        scale = 2.0 ** ((t % 7) - 3)  # magnitudes that rise and fall, so amsgrad's max matters
        step = [torch.randn(s, generator=g) * scale for s in SHAPES]
        if t < NONE_STEPS:
            step[2] = None
        grads.append(step)
    return init, grads


def run_optim(kind, opts, groups, init, grads):
    params = [x.clone().requires_grad_(True) for x in init]
    if groups is None:
        opt = OPTIMISERS[kind](params, **torch_opts(kind, opts))
    else:
        opt = OPTIMISERS[kind]([torch_group(kind, [params[i] for i in g["params"]], g, opts)
                                for g in groups], **torch_opts(kind, opts))
    rows = []
    for step in grads:
        for p, gr in zip(params, step):
            p.grad = None if gr is None else gr.clone()
        opt.step()
        rows.append(f32(torch.cat([p.detach().reshape(-1) for p in params]).tolist()))
    return rows


# ---------------------------------------------------------------- linear model

def linear_model():
    g = torch.Generator().manual_seed(99)
    X = torch.randn(64, 5, generator=g)
    w_true = torch.randn(5, 1, generator=g)
    y = X @ w_true + 0.1 * torch.randn(64, 1, generator=g)
    W0 = 0.1 * torch.randn(5, 1, generator=g)
    X, y, W0 = [torch.tensor(f32(t.reshape(-1).tolist())).reshape(t.shape) for t in (X, y, W0)]
    W = W0.clone().requires_grad_(True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([W, b], lr=0.05, momentum=0.9)
    rows = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = ((X @ W + b - y) ** 2).mean()
        loss.backward()
        opt.step()
        rows.append(f32(W.detach().reshape(-1).tolist() + b.detach().tolist()))
    return {"X": f32(X.reshape(-1).tolist()), "y": f32(y.reshape(-1).tolist()),
            "W0": f32(W0.reshape(-1).tolist()), "lr": 0.05, "momentum": 0.9, "trajectory": rows}


# ---------------------------------------------------------------- schedules

def make_sched(opt, spec):
    k = spec["kind"]
    S = torch.optim.lr_scheduler
    if k == "steplr":
        return S.StepLR(opt, spec["step_size"], spec["gamma"])
    if k == "multisteplr":
        return S.MultiStepLR(opt, spec["milestones"], spec["gamma"])
    if k == "exponentiallr":
        return S.ExponentialLR(opt, spec["gamma"])
    if k == "cosinelr":
        return S.CosineAnnealingLR(opt, spec["T_max"], spec["eta_min"])
    if k == "linearlr":
        return S.LinearLR(opt, spec["start_factor"], spec["end_factor"], spec["total_iters"])
    if k == "plateau":
        kw = {key: spec[key] for key in ("mode", "factor", "patience", "threshold",
                                         "threshold_mode", "cooldown", "min_lr", "eps") if key in spec}
        return S.ReduceLROnPlateau(opt, **kw)
    if k == "cycliclr":
        kw = {key: spec[key] for key in ("base_lr", "max_lr", "step_size_up", "step_size_down",
                                         "mode", "gamma", "base_momentum", "max_momentum")
              if key in spec}
        return S.CyclicLR(opt, cycle_momentum=not spec.get("no_cycle_momentum", False), **kw)
    if k == "onecyclelr":
        kw = {key: spec[key] for key in ("max_lr", "total_steps", "pct_start", "anneal_strategy",
                                         "base_momentum", "max_momentum", "div_factor",
                                         "final_div_factor", "three_phase") if key in spec}
        return S.OneCycleLR(opt, cycle_momentum=not spec.get("no_cycle_momentum", False), **kw)
    children = [make_sched(opt, c) for c in spec["schedulers"]]
    if k == "chained":
        return S.ChainedScheduler(children)
    return S.SequentialLR(opt, children, spec["milestones"])


def momentum_of(opt):
    out = []
    for g in opt.param_groups:
        out.append(g["betas"][0] if "betas" in g else g["momentum"])
    return out


SGD_M = {"kind": "sgd", "lr": 0.1, "momentum": 0.9}
PLATEAU_METRICS = [1.0, 0.9, 0.85, 0.849, 0.85, 0.86, 0.7, 0.7, 0.7, 0.7, 0.69, 0.71, 0.72, 0.5,
                   0.55, 0.56, 0.57, 0.58, 0.4, 0.41, 0.42, 0.43, 0.44, 0.45, 0.3, 0.31, 0.32,
                   0.33, 0.34, 0.35]
PLATEAU_MAX_METRICS = [0.1, 0.5, 0.55, 0.7, 0.65, 0.9, 0.95, 1.0, 1.05, 1.3, 1.3, 1.2, 1.5, 1.55,
                       1.6, 1.9, 1.95, 2.0, 2.1, 2.3, 2.35, 2.2, 2.0, 2.6, 2.65, 2.7, 2.8, 3.0,
                       3.05, 3.1]

SCHED_CONFIGS = [
    ("steplr", SGD_M, {"kind": "steplr", "step_size": 7, "gamma": 0.5}),
    ("multisteplr", SGD_M, {"kind": "multisteplr", "milestones": [12, 5, 20, 12], "gamma": 0.3}),
    ("exponentiallr", SGD_M, {"kind": "exponentiallr", "gamma": 0.9}),
    ("cosinelr", SGD_M, {"kind": "cosinelr", "T_max": 10, "eta_min": 0.001}),
    ("linearlr_warmup", SGD_M, {"kind": "linearlr", "start_factor": 0.25, "end_factor": 1.0,
                                "total_iters": 8}),
    ("linearlr_decay", SGD_M, {"kind": "linearlr", "start_factor": 1.0, "end_factor": 0.1,
                               "total_iters": 10}),
    ("plateau_min_rel", SGD_M, {"kind": "plateau", "factor": 0.5, "patience": 2, "threshold": 0.01,
                                "cooldown": 1, "min_lr": 0.01, "metrics": PLATEAU_METRICS}),
    ("plateau_max_abs", SGD_M, {"kind": "plateau", "mode": "max", "threshold_mode": "abs",
                                "threshold": 0.1, "patience": 0, "factor": 0.5,
                                "metrics": PLATEAU_MAX_METRICS}),
    ("cyclic_triangular", SGD_M, {"kind": "cycliclr", "base_lr": 0.01, "max_lr": 0.1,
                                  "step_size_up": 4}),
    ("cyclic_triangular2", SGD_M, {"kind": "cycliclr", "base_lr": 0.001, "max_lr": 0.01,
                                   "step_size_up": 3, "step_size_down": 5, "mode": "triangular2",
                                   "no_cycle_momentum": True}),
    ("cyclic_exp_range", {"kind": "rmsprop", "lr": 0.01, "momentum": 0.9},
     {"kind": "cycliclr", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 4, "mode": "exp_range",
      "gamma": 0.95, "base_momentum": 0.85, "max_momentum": 0.95}),
    ("onecycle_cos", SGD_M, {"kind": "onecyclelr", "max_lr": 0.1, "total_steps": 30}),
    ("onecycle_linear_three_phase", {"kind": "adam", "lr": 0.001},
     {"kind": "onecyclelr", "max_lr": 0.05, "total_steps": 30, "pct_start": 0.25,
      "anneal_strategy": "linear", "three_phase": True, "div_factor": 10.0,
      "final_div_factor": 100.0}),
    ("onecycle_no_momentum", {"kind": "adagrad", "lr": 0.01},
     {"kind": "onecyclelr", "max_lr": 0.2, "total_steps": 35, "pct_start": 0.4,
      "no_cycle_momentum": True}),
    ("chained", SGD_M, {"kind": "chained", "schedulers": [
        {"kind": "linearlr", "start_factor": 0.5, "end_factor": 1.0, "total_iters": 4},
        {"kind": "exponentiallr", "gamma": 0.95}]}),
    ("chained_cosine_multistep", SGD_M, {"kind": "chained", "schedulers": [
        {"kind": "cosinelr", "T_max": 10, "eta_min": 0.0},
        {"kind": "multisteplr", "milestones": [8, 16], "gamma": 0.5}]}),
    ("sequential_warmup_cosine", SGD_M, {"kind": "sequentiallr", "milestones": [5], "schedulers": [
        {"kind": "linearlr", "start_factor": 0.1, "end_factor": 1.0, "total_iters": 5},
        {"kind": "cosinelr", "T_max": 25, "eta_min": 0.001}]}),
    ("sequential_three", SGD_M, {"kind": "sequentiallr", "milestones": [4, 10], "schedulers": [
        {"kind": "exponentiallr", "gamma": 0.9},
        {"kind": "steplr", "step_size": 3, "gamma": 0.5},
        {"kind": "cosinelr", "T_max": 10, "eta_min": 0.0}]}),
]

GROUP_LRS = [1.0, 0.5]  # the two groups' lr, as multiples of the optimiser's lr


def run_sched(optim_spec, spec):
    kind = optim_spec["kind"]
    opts = {k: v for k, v in optim_spec.items() if k != "kind"}
    params = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    groups = [{"params": [p], "lr": opts["lr"] * m} for p, m in zip(params, GROUP_LRS)]
    opt = OPTIMISERS[kind](groups, **torch_opts(kind, opts))
    sched = make_sched(opt, spec)
    cycles = spec["kind"] in ("cycliclr", "onecyclelr") and not spec.get("no_cycle_momentum", False)
    plateau = spec["kind"] == "plateau"
    lrs = [[g["lr"] for g in opt.param_groups]]
    moms = [momentum_of(opt)] if cycles else None
    for t in range(SCHED_STEPS):
        opt.step()  # no gradients: nothing moves, but torch wants it before sched.step()
        if plateau:
            sched.step(spec["metrics"][t])
        else:
            sched.step()
        lrs.append(list(sched._last_lr if plateau else sched.get_last_lr()))  # plateau: no getter
        if cycles:
            moms.append(momentum_of(opt))
    out = {"lr": lrs}
    if cycles:
        out["momentum"] = moms
    return out


# ---------------------------------------------------------------- output

def dump(obj, indent=0):
    """JSON with one line per list of numbers, so the file stays readable and diffs stay small."""
    pad = " " * indent
    if isinstance(obj, dict):
        items = [pad + "  " + json.dumps(k) + ": " + dump(v, indent + 2).lstrip()
                 for k, v in obj.items()]
        return pad + "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and obj and all(isinstance(v, list) for v in obj):
        return pad + "[\n" + ",\n".join(dump(v, indent + 2) for v in obj) + "\n" + pad + "]"
    if isinstance(obj, list) and obj and all(isinstance(v, dict) for v in obj):
        return pad + "[\n" + ",\n".join(dump(v, indent + 2) for v in obj) + "\n" + pad + "]"
    return pad + json.dumps(obj, allow_nan=False)


def main():
    init, grads = make_data()
    out = {
        "_regenerate": "/usr/bin/python3 tools/gen_golden_optim.py (torch %s); do not edit"
                       % torch.__version__,
        "steps": STEPS,
        "shapes": SHAPES,
        "init": [f32(x.reshape(-1).tolist()) for x in init],
        "grads": [[None if g is None else f32(g.reshape(-1).tolist()) for g in step]
                  for step in grads],
        "optim": [],
        "linear": linear_model(),
        "sched_steps": SCHED_STEPS,
        "group_lrs": GROUP_LRS,
        "sched": [],
    }
    # The gradients are stored rounded to 9 digits; use exactly those in torch too.
    grads = [[None if g is None else torch.tensor(f32(g.reshape(-1).tolist())).reshape(g.shape)
              for g in step] for step in grads]
    init = [torch.tensor(f32(x.reshape(-1).tolist())).reshape(x.shape) for x in init]
    for name, kind, opts, groups in OPTIM_CONFIGS:
        entry = {"name": name, "kind": kind, "opts": opts}
        if groups is not None:
            entry["groups"] = groups
        entry["trajectory"] = run_optim(kind, opts, groups, init, grads)
        out["optim"].append(entry)
    for name, optim_spec, spec in SCHED_CONFIGS:
        entry = {"name": name, "optim": optim_spec, "sched": spec}
        entry.update(run_sched(optim_spec, spec))
        out["sched"].append(entry)
    with open(OUT, "w") as f:
        f.write(dump(out) + "\n")
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
