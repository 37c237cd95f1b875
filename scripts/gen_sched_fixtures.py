#!/usr/bin/env python3
"""Golden fixtures for kiln's second batch of LR schedulers, made with real PyTorch.

Run from the repository root with the project's venv:

    /work/main/.venv/bin/python scripts/gen_sched_fixtures.py

Writes tests/fixtures/optim/sched2.json: for each case (scheduler, its arguments, the
optimizer and its groups' rates) the learning rates of every group after construction and
after each of STEPS steps (as f64 bits), the momentum (SGD) or beta1 (Adam) of every group
at the same points (OneCycleLR's cycle_momentum), the scheduler's state_dict() after
STATE_AT steps and at the end (keys, order, Python types, exact floats).
ReduceLROnPlateau steps on the case's "metrics". SequentialLR and ChainedScheduler take
their children from "children". tests/sched_parity.rs compares kiln against this file.
"""

import json
import math
import struct
from pathlib import Path

import torch
from torch.optim import lr_scheduler as S

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "optim"
STEPS = 40
STATE_AT = 12
GROUP_LRS = [0.1, 0.05, 0.02]


def bits(f: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", f))[0]


def describe(v):
    """A JSON description of a Python value that keeps types, key order and exact floats."""
    if isinstance(v, bool):
        return {"type": "bool", "value": v}
    if isinstance(v, int):
        return {"type": "int", "value": v}
    if isinstance(v, float):
        return {"type": "float", "value": v if math.isfinite(v) else str(v), "bits": bits(v)}
    if v is None:
        return {"type": "None"}
    if isinstance(v, str):
        return {"type": "str", "value": v}
    if isinstance(v, dict):
        return {"type": "dict", "items": [[describe(k), describe(x)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return {"type": "tuple", "items": [describe(x) for x in v]}
    if isinstance(v, list):
        return {"type": "list", "items": [describe(x) for x in v]}
    raise TypeError(f"cannot describe {type(v)}")


# A validation loss with improvements, plateaus and a rise, for ReduceLROnPlateau.
METRICS = [1.0, 0.9, 0.85, 0.85, 0.86, 0.84, 0.84, 0.84, 0.84, 0.7, 0.7, 0.69995, 0.7, 0.71,
           0.72, 0.5, 0.5, 0.5, 0.5, 0.5, 0.49, 0.48, 0.48, 0.6, 0.6, 0.6, 0.6, 0.3, 0.3, 0.3,
           0.29, 0.29, 0.29, 0.29, 0.28, 0.28, 0.1, 0.1, 0.1, 0.1]
# For mode "max": an accuracy.
ACCURACY = [0.1, 0.2, 0.25, 0.25, 0.3, 0.3, 0.3, 0.31, 0.31, 0.31, 0.5, 0.5, 0.5, 0.5, 0.55,
            0.55, 0.6, 0.6, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7, 0.71, 0.71, 0.71, 0.71, 0.8, 0.8,
            0.8, 0.8, 0.8, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]

# name, class, kwargs, optimizer ("SGD" momentum 0.9 or "Adam"), extra
CASES = [
    ("constant", "ConstantLR", {"factor": 0.5, "total_iters": 4}, "SGD", {}),
    ("constant_default", "ConstantLR", {}, "SGD", {}),
    ("constant_zero_iters", "ConstantLR", {"factor": 0.25, "total_iters": 0}, "SGD", {}),
    ("linear_warmup", "LinearLR", {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 10}, "SGD", {}),
    ("linear_decay", "LinearLR", {"start_factor": 1.0, "end_factor": 0.1, "total_iters": 30}, "SGD", {}),
    ("linear_default", "LinearLR", {}, "Adam", {}),
    ("linear_long", "LinearLR", {"start_factor": 0.1, "end_factor": 0.7, "total_iters": 60}, "SGD", {}),
    ("poly_square", "PolynomialLR", {"total_iters": 20, "power": 2.0}, "SGD", {}),
    ("poly_sqrt", "PolynomialLR", {"total_iters": 50, "power": 0.5}, "SGD", {}),
    ("poly_default", "PolynomialLR", {}, "SGD", {}),
    ("warm_restarts", "CosineAnnealingWarmRestarts", {"T_0": 5}, "SGD", {}),
    ("warm_restarts_mult", "CosineAnnealingWarmRestarts", {"T_0": 3, "T_mult": 2, "eta_min": 0.001}, "SGD", {}),
    ("warm_restarts_t1", "CosineAnnealingWarmRestarts", {"T_0": 1, "T_mult": 3, "eta_min": 0.0}, "SGD", {}),
    ("plateau_default", "ReduceLROnPlateau", {}, "SGD", {"metrics": METRICS}),
    ("plateau_min_rel", "ReduceLROnPlateau", {"patience": 2, "factor": 0.5, "min_lr": 0.0}, "SGD",
     {"metrics": METRICS}),
    ("plateau_max_abs_cooldown", "ReduceLROnPlateau",
     {"mode": "max", "threshold_mode": "abs", "threshold": 0.05, "patience": 1, "cooldown": 2,
      "factor": 0.3, "min_lr": 0.001}, "SGD", {"metrics": ACCURACY}),
    ("plateau_min_abs_min_lrs", "ReduceLROnPlateau",
     {"threshold_mode": "abs", "threshold": 0.001, "patience": 0, "factor": 0.5,
      "min_lr": [0.01, 0.004, 0.0], "eps": 1e-3}, "SGD", {"metrics": METRICS}),
    ("plateau_max_rel", "ReduceLROnPlateau", {"mode": "max", "patience": 3, "threshold": 0.01},
     "Adam", {"metrics": ACCURACY}),
    ("onecycle_cos", "OneCycleLR", {"max_lr": 0.8, "total_steps": 40}, "SGD", {}),
    ("onecycle_groups_linear", "OneCycleLR",
     {"max_lr": [1.0, 0.5, 0.3], "epochs": 4, "steps_per_epoch": 10, "anneal_strategy": "linear",
      "cycle_momentum": False}, "SGD", {}),
    ("onecycle_three_phase", "OneCycleLR",
     {"max_lr": [0.4, 0.2, 0.1], "total_steps": 45, "pct_start": 0.25, "three_phase": True,
      "div_factor": 10.0, "final_div_factor": 100.0}, "SGD", {}),
    ("onecycle_adam_beta1", "OneCycleLR",
     {"max_lr": 0.01, "total_steps": 40, "pct_start": 0.4, "base_momentum": 0.8,
      "max_momentum": [0.9, 0.95, 0.99]}, "Adam", {}),
    ("onecycle_linear_three_phase", "OneCycleLR",
     {"max_lr": 0.5, "total_steps": 41, "anneal_strategy": "linear", "three_phase": True}, "SGD", {}),
    ("sequential_warmup_cosine", "SequentialLR", {"milestones": [5]}, "SGD",
     {"children": [["LinearLR", {"start_factor": 0.1, "total_iters": 5}],
                   ["CosineAnnealingLR", {"T_max": 20, "eta_min": 0.001}]]}),
    ("sequential_three", "SequentialLR", {"milestones": [3, 15]}, "SGD",
     {"children": [["ConstantLR", {"factor": 0.5, "total_iters": 3}], ["ExponentialLR", {"gamma": 0.9}],
                   ["StepLR", {"step_size": 4, "gamma": 0.5}]]}),
    ("sequential_poly_multistep", "SequentialLR", {"milestones": [10]}, "Adam",
     {"children": [["PolynomialLR", {"total_iters": 8, "power": 2.0}],
                   ["MultiStepLR", {"milestones": [12, 20, 20], "gamma": 0.5}]]}),
    ("chained_constant_exp", "ChainedScheduler", {}, "SGD",
     {"children": [["ConstantLR", {"factor": 0.5, "total_iters": 4}], ["ExponentialLR", {"gamma": 0.95}]]}),
    ("chained_three", "ChainedScheduler", {}, "SGD",
     {"children": [["LinearLR", {"start_factor": 0.2, "total_iters": 6}],
                   ["CosineAnnealingLR", {"T_max": 10}],
                   ["MultiStepLR", {"milestones": [8, 20], "gamma": 0.5}]]}),
]


def make_optimizer(kind):
    ps = [torch.nn.Parameter(torch.zeros(1)) for _ in GROUP_LRS]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(ps, GROUP_LRS)]
    if kind == "SGD":
        return torch.optim.SGD(groups, lr=GROUP_LRS[0], momentum=0.9)
    return torch.optim.Adam(groups, lr=GROUP_LRS[0])


def momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def run(name, cls, kwargs, kind, extra):
    opt = make_optimizer(kind)
    if "children" in extra:
        children = [getattr(S, c)(opt, **kw) for c, kw in extra["children"]]
        if cls == "SequentialLR":
            s = S.SequentialLR(opt, children, **kwargs)
        else:
            s = S.ChainedScheduler(children)
    else:
        s = getattr(S, cls)(opt, **kwargs)
    metrics = extra.get("metrics")
    lrs = [list(s.get_last_lr())]
    moms = [momenta(opt)]
    at = None
    for step in range(1, STEPS + 1):
        opt.step()
        if metrics is not None:
            s.step(metrics[step - 1])
        else:
            s.step()
        lrs.append([float(x) for x in s.get_last_lr()])
        moms.append(momenta(opt))
        if step == STATE_AT:
            at = describe(s.state_dict())
    return {
        "name": name,
        "scheduler": cls,
        "kwargs": kwargs,
        "optimizer": kind,
        "children": extra.get("children"),
        "metrics": metrics,
        "group_lrs": GROUP_LRS,
        "lrs_bits": [[bits(x) for x in row] for row in lrs],
        "momentum_bits": [[bits(x) for x in row] for row in moms],
        "state_at": STATE_AT,
        "state_dict_at": at,
        "state_dict": describe(s.state_dict()),
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    cases = [run(*c) for c in CASES]
    meta = {"torch_version": torch.__version__, "generator": "scripts/gen_sched_fixtures.py"}
    with open(OUT / "sched2.json", "w") as f:
        json.dump({**meta, "steps": STEPS, "cases": cases}, f, separators=(",", ":"), allow_nan=False)
    print(f"torch {torch.__version__}: {len(cases)} scheduler cases -> {OUT / 'sched2.json'}")


if __name__ == "__main__":
    main()
