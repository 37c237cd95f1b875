#!/usr/bin/env python3
"""Golden fixtures for kiln's optimizers and LR schedulers, made with real PyTorch.

Run from the repository root with the project's venv:

    /work/main/.venv/bin/python scripts/gen_optim_fixtures.py

Writes tests/fixtures/optim/:
  problem.safetensors       initial parameters W [4,3], b [4], C [2,2] and the data x, y, u, v
  trajectories.safetensors  "<case>.<param>": the parameter after steps 0..20 (shape [21, ...]);
                            "<case>.<param>.grad": PyTorch's gradient at steps 1..20 (shape
                            [20, ...]), so kiln's update rule can be checked on its own
  optimizers.json           each case's configuration and the optimizer's state_dict() after
                            3 steps (keys, order, Python types, values)
  schedulers.json           LR sequences over 30 epochs and scheduler state_dict()s
tests/optim_parity.rs compares kiln against these files.

The loss, which kiln computes the same way (gradients by candle autograd):
    ((x @ W.T + b - y) ** 2).sum() + ((C @ u - v) ** 2).sum()
"""

import json
import struct
from pathlib import Path

import torch
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "optim"
STEPS = 20
STATE_AT = 3
EPOCHS = 30
NAMES = ["W", "b", "C"]


def bits(f: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", f))[0]


def describe(v):
    """A JSON description of a Python value that keeps types, key order and exact floats."""
    if isinstance(v, bool):
        return {"type": "bool", "value": v}
    if isinstance(v, int):
        return {"type": "int", "value": v}
    if isinstance(v, float):
        return {"type": "float", "value": v, "bits": bits(v)}
    if v is None:
        return {"type": "None"}
    if isinstance(v, str):
        return {"type": "str", "value": v}
    if isinstance(v, torch.Tensor):
        return {
            "type": "Tensor",
            "dtype": str(v.dtype).replace("torch.", ""),
            "shape": list(v.shape),
            "device": str(v.device),
            "requires_grad": v.requires_grad,
            "values": v.detach().flatten().tolist(),
        }
    if isinstance(v, __import__("collections").Counter):
        return {"type": "Counter", "items": [[describe(k), describe(x)] for k, x in v.items()]}
    if isinstance(v, dict):
        return {"type": "dict", "items": [[describe(k), describe(x)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return {"type": "tuple", "items": [describe(x) for x in v]}
    if isinstance(v, list):
        return {"type": "list", "items": [describe(x) for x in v]}
    raise TypeError(f"cannot describe {type(v)}")


torch.manual_seed(20240611)
PROBLEM = {
    "W": torch.randn(4, 3),
    "b": torch.randn(4),
    "C": torch.randn(2, 2),
    "x": torch.randn(5, 3),
    "y": torch.randn(5, 4),
    "u": torch.randn(2, 3),
    "v": torch.randn(2, 3),
}


def loss_fn(p):
    d = PROBLEM
    return ((d["x"] @ p["W"].T + p["b"] - d["y"]) ** 2).sum() + ((p["C"] @ d["u"] - d["v"]) ** 2).sum()


# name, optimizer, defaults, groups (None = one group of W, b, C), frozen, scheduler
CASES = [
    ("sgd", "SGD", {"lr": 0.01}, None, [], None),
    ("sgd_momentum_nesterov_wd", "SGD",
     {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, None, [], None),
    ("sgd_momentum_dampening", "SGD", {"lr": 0.01, "momentum": 0.9, "dampening": 0.3}, None, [], None),
    ("sgd_two_groups", "SGD", {"lr": 0.01, "momentum": 0.9},
     [{"params": ["W", "b"]}, {"params": ["C"], "lr": 0.03, "momentum": 0.5}], [], None),
    ("sgd_lr0_group", "SGD", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.1},
     [{"params": ["W", "b"]}, {"params": ["C"], "lr": 0.0}], [], None),
    ("sgd_frozen", "SGD", {"lr": 0.01, "momentum": 0.9}, None, ["C"], None),
    ("adam", "Adam", {"lr": 0.01}, None, [], None),
    ("adam_amsgrad_wd", "Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}, None, [], None),
    ("adam_maximize_betas", "Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "maximize": True},
     None, [], None),
    ("adam_lr0_group", "Adam", {"lr": 0.01, "weight_decay": 0.1},
     [{"params": ["W", "b"]}, {"params": ["C"], "lr": 0.0}], [], None),
    ("adamw", "AdamW", {"lr": 0.01}, None, [], None),
    ("adamw_amsgrad", "AdamW", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}, None, [], None),
    ("adamw_two_groups", "AdamW", {"lr": 0.01},
     [{"params": ["W"]}, {"params": ["b", "C"], "lr": 0.05, "weight_decay": 0.0}], [], None),
    ("adamw_lr0_group", "AdamW", {"lr": 0.01, "weight_decay": 0.1},
     [{"params": ["W", "b"]}, {"params": ["C"], "lr": 0.0}], [], None),
    ("rmsprop", "RMSprop", {"lr": 0.01}, None, [], None),
    ("rmsprop_centered_momentum_wd", "RMSprop",
     {"lr": 0.001, "momentum": 0.9, "centered": True, "weight_decay": 0.01, "alpha": 0.9}, None, [], None),
    ("rmsprop_maximize_two_groups", "RMSprop", {"lr": 0.001, "maximize": True, "eps": 1e-6},
     [{"params": ["W", "b"]}, {"params": ["C"], "lr": 0.003, "momentum": 0.5}], [], None),
    ("adagrad", "Adagrad", {"lr": 0.1}, None, [], None),
    ("adagrad_decay_wd_init", "Adagrad",
     {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.5}, None, [], None),
    ("adagrad_maximize_two_groups_frozen", "Adagrad", {"lr": 0.05, "maximize": True},
     [{"params": ["W"]}, {"params": ["b", "C"], "lr": 0.2}], ["C"], None),
    ("adamax", "Adamax", {"lr": 0.01}, None, [], None),
    ("adamax_wd_maximize_betas", "Adamax",
     {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "maximize": True}, None, [], None),
    ("adamax_two_groups", "Adamax", {"lr": 0.01},
     [{"params": ["W", "b"]}, {"params": ["C"], "lr": 0.03, "weight_decay": 0.05}], [], None),
    ("nadam", "NAdam", {"lr": 0.01}, None, [], None),
    ("nadam_wd_momentum_decay", "NAdam", {"lr": 0.01, "weight_decay": 0.1, "momentum_decay": 0.01},
     None, [], None),
    ("nadam_decoupled_maximize", "NAdam",
     {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}, None, [], None),
    ("nadam_two_groups", "NAdam", {"lr": 0.01},
     [{"params": ["W"]}, {"params": ["b", "C"], "lr": 0.03, "weight_decay": 0.01}], [], None),
    ("radam", "RAdam", {"lr": 0.01}, None, [], None),
    ("radam_wd_betas", "RAdam", {"lr": 0.01, "weight_decay": 0.1, "betas": (0.8, 0.9)}, None, [], None),
    ("radam_decoupled_maximize", "RAdam",
     {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True,
      "betas": (0.9, 0.99)}, None, [], None),
    ("radam_two_groups", "RAdam", {"lr": 0.01, "betas": (0.9, 0.9)},
     [{"params": ["W", "b"]}, {"params": ["C"], "lr": 0.0}], [], None),
    ("adam_steplr", "Adam", {"lr": 0.01}, None, [], {"name": "StepLR", "kwargs": {"step_size": 5, "gamma": 0.5}}),
    ("sgd_cosine", "SGD", {"lr": 0.05, "momentum": 0.9}, None, [],
     {"name": "CosineAnnealingLR", "kwargs": {"T_max": 8, "eta_min": 0.001}}),
]

SCHEDULERS = [
    ("step_3", "StepLR", {"step_size": 3, "gamma": 0.1}),
    ("step_7_half", "StepLR", {"step_size": 7, "gamma": 0.5}),
    ("multistep", "MultiStepLR", {"milestones": [5, 12, 12, 20], "gamma": 0.3}),
    ("multistep_zero", "MultiStepLR", {"milestones": [3, 0], "gamma": 0.5}),
    ("exponential", "ExponentialLR", {"gamma": 0.9}),
    ("exponential_half", "ExponentialLR", {"gamma": 0.5}),
    ("cosine", "CosineAnnealingLR", {"T_max": 10}),
    ("cosine_eta_min", "CosineAnnealingLR", {"T_max": 7, "eta_min": 0.001}),
    ("cosine_t1", "CosineAnnealingLR", {"T_max": 1, "eta_min": 0.01}),
]
SCHED_GROUP_LRS = [0.1, 0.05]


def make_scheduler(opt, name, kwargs):
    return getattr(torch.optim.lr_scheduler, name)(opt, **kwargs)


def run_case(name, opt_name, defaults, groups, frozen, sched):
    params = {k: PROBLEM[k].clone().requires_grad_(k not in frozen) for k in NAMES}
    if groups is None:
        spec = [params[k] for k in NAMES]
    else:
        spec = [{**{k: v for k, v in g.items() if k != "params"}, "params": [params[k] for k in g["params"]]}
                for g in groups]
    opt = getattr(torch.optim, opt_name)(spec, **defaults)
    scheduler = make_scheduler(opt, sched["name"], sched["kwargs"]) if sched else None
    traj = {k: [params[k].detach().clone()] for k in NAMES}
    grads = {k: [] for k in NAMES if k not in frozen}
    state = None
    for step in range(1, STEPS + 1):
        opt.zero_grad()
        loss_fn(params).backward()
        for k in grads:
            grads[k].append(params[k].grad.detach().clone())
        opt.step()
        if scheduler:
            scheduler.step()
        for k in NAMES:
            traj[k].append(params[k].detach().clone())
        if step == STATE_AT:
            state = describe(opt.state_dict())
            sched_state = describe(scheduler.state_dict()) if scheduler else None
    tensors = {f"{name}.{k}": torch.stack(v) for k, v in traj.items()}
    tensors.update({f"{name}.{k}.grad": torch.stack(v) for k, v in grads.items()})
    case = {
        "name": name,
        "optimizer": opt_name,
        "defaults": {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()},
        "groups": groups,
        "frozen": frozen,
        "scheduler": sched,
        "state_at": STATE_AT,
        "state_dict": state,
        "scheduler_state_dict": sched_state,
    }
    return case, tensors


def run_scheduler(name, sched_name, kwargs):
    w = torch.nn.Parameter(torch.zeros(1))
    v = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [w]}, {"params": [v], "lr": SCHED_GROUP_LRS[1]}], lr=SCHED_GROUP_LRS[0])
    s = make_scheduler(opt, sched_name, kwargs)
    lrs = [list(s.get_last_lr())]
    at_10 = None
    for epoch in range(1, EPOCHS + 1):
        opt.step()
        s.step()
        lrs.append(list(s.get_last_lr()))
        if epoch == 10:
            at_10 = describe(s.state_dict())
    return {
        "name": name,
        "scheduler": sched_name,
        "kwargs": kwargs,
        "group_lrs": SCHED_GROUP_LRS,
        "lrs": lrs,
        "lrs_bits": [[bits(x) for x in row] for row in lrs],
        "state_dict_at_10": at_10,
        "state_dict": describe(s.state_dict()),
        "optimizer_param_groups": describe(opt.state_dict()["param_groups"]),
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"torch_version": torch.__version__, "generator": "scripts/gen_optim_fixtures.py",
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    save_file({k: v.contiguous() for k, v in PROBLEM.items()}, str(OUT / "problem.safetensors"), metadata=meta)
    cases, tensors = [], {}
    for c in CASES:
        case, t = run_case(*c)
        cases.append(case)
        tensors.update(t)
    save_file(tensors, str(OUT / "trajectories.safetensors"), metadata=meta)
    with open(OUT / "optimizers.json", "w") as f:
        json.dump({**meta, "steps": STEPS, "cases": cases}, f, separators=(",", ":"))
    scheds = [run_scheduler(*s) for s in SCHEDULERS]
    with open(OUT / "schedulers.json", "w") as f:
        json.dump({**meta, "epochs": EPOCHS, "cases": scheds}, f, separators=(",", ":"))
    print(f"torch {torch.__version__}: {len(cases)} optimizer cases, {len(scheds)} scheduler cases -> {OUT}")


if __name__ == "__main__":
    main()
