#!/usr/bin/env python3
"""Fixtures for tests/amp_parity.rs: a small CNN + Linear trained for 6 SGD steps (lr 0.1,
momentum 0.9, batch 16, no shuffle) three ways with real PyTorch:

- "f32": plain f32;
- "bf16": forward and loss under torch.autocast("cpu", dtype=torch.bfloat16) (Lightning's
  precision="bf16-mixed"), f32 master weights;
- "f16": torch.autocast("cpu", dtype=torch.float16) + torch.amp.GradScaler("cpu")
  (Lightning's precision="16-mixed"), PyTorch's default scaler settings.

    .venv/bin/python scripts/gen_amp_fixtures.py

Writes tests/fixtures/amp/autocast.{safetensors,json}: the data, the initial weights, and
per mode the loss of each step and the weights after the last step.
"""
import json
import pathlib

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "amp"
STEPS, BATCH, LR, MOMENTUM = 6, 16, 0.1, 0.9


def make_model():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(36, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))


def train(mode, init, x, y):
    model = make_model()
    model.load_state_dict(init)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    scaler = torch.amp.GradScaler("cpu") if mode == "f16" else None
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16}.get(mode)
    losses, scales = [], []
    for i in range(STEPS):
        xb, yb = x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]
        opt.zero_grad()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            out = model(xb)
            loss = F.cross_entropy(out, yb)
        assert out.dtype == (dtype or torch.float32), out.dtype
        assert loss.dtype == torch.float32, loss.dtype
        losses.append(float(loss.detach()))
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scales.append(scaler.get_scale())
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    for p in model.parameters():
        assert p.dtype == torch.float32
    final = {f"{mode}.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    meta = {"losses": losses}
    if scaler is not None:
        meta["scales"] = scales
        meta["state_dict"] = scaler.state_dict()
    return final, meta


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    x = torch.randn(STEPS * BATCH, 1, 8, 8)
    y = torch.randint(0, 10, (STEPS * BATCH,))
    init = make_model().state_dict()
    tensors = {"x": x, "y": y}
    tensors.update({f"init.{k}": v.clone() for k, v in init.items()})
    meta = {"torch_version": torch.__version__, "generator": "scripts/gen_amp_fixtures.py",
            "steps": STEPS, "batch": BATCH, "lr": LR, "momentum": MOMENTUM, "modes": {}}
    for mode in ["f32", "bf16", "f16"]:
        final, m = train(mode, init, x, y)
        tensors.update(final)
        meta["modes"][mode] = m
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(OUT / "autocast.safetensors"))
    (OUT / "autocast.json").write_text(json.dumps(meta, indent=1))
    for mode, m in meta["modes"].items():
        print(mode, ["%.6f" % v for v in m["losses"]])


if __name__ == "__main__":
    main()
