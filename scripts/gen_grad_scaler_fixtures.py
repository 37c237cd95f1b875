#!/usr/bin/env python3
"""Fixtures for tests/grad_scaler_parity.rs: torch.amp.GradScaler("cpu") over 14 SGD steps
of a tiny least-squares problem, some of them with a NaN or inf planted in a gradient.

    .venv/bin/python scripts/gen_grad_scaler_fixtures.py

Writes tests/fixtures/amp/grad_scaler.{safetensors,json}: the problem (w0, x), per step the
scaled and unscaled gradients and the weights after the step, and per step the scaler's
state_dict and whether the optimizer stepped.
"""
import json
import pathlib

import torch
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "amp"
# per step: None, or the value planted in grad[0, 0] after backward
PLANT = [None, None, None, float("inf"), None, None, None, None, float("nan"), float("-inf"),
         None, None, None, None]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    w0 = torch.randn(4, 3)
    x = torch.randn(5, 4)
    w = torch.nn.Parameter(w0.clone())
    opt = torch.optim.SGD([w], lr=0.1)
    cfg = {"init_scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 3}
    scaler = torch.amp.GradScaler("cpu", **cfg)
    tensors = {"w0": w0, "x": x}
    steps = []
    for i, plant in enumerate(PLANT):
        opt.zero_grad()
        loss = (x @ w).pow(2).mean()
        scaled = scaler.scale(loss)
        scaled.backward()
        if plant is not None:
            with torch.no_grad():
                w.grad[0, 0] = plant
        tensors[f"step{i}.scaled_grad"] = w.grad.clone()
        before = w.detach().clone()
        scaler.unscale_(opt)
        tensors[f"step{i}.unscaled_grad"] = w.grad.clone()
        scaler.step(opt)
        stepped = not torch.equal(before, w.detach())
        scaler.update()
        tensors[f"step{i}.w"] = w.detach().clone()
        steps.append({"plant": None if plant is None else str(plant), "stepped": stepped,
                      "scaled_loss": float(scaled), "state_dict": scaler.state_dict()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(OUT / "grad_scaler.safetensors"))
    meta = {"torch_version": torch.__version__, "generator": "scripts/gen_grad_scaler_fixtures.py",
            "config": cfg, "lr": 0.1, "steps": steps}
    (OUT / "grad_scaler.json").write_text(json.dumps(meta, indent=1))
    print("wrote", OUT, "final state", scaler.state_dict())


if __name__ == "__main__":
    main()
