#!/usr/bin/env python3
"""Golden fixtures for kiln's gradient accumulation and clipping, made with real PyTorch.

    .venv/bin/python scripts/gen_train_features_fixtures.py

Writes tests/fixtures/train/:
  features.safetensors  the data (x [22, 6] f32, y [22] i64), the initial weights
                        (init.fc1.weight ...), per case the weights after training
                        ("<case>.fc1.weight" ...), and for clip_grad_norm_ on its own the
                        gradients before ("clip.in.<i>") and after ("clip.<norm>.<i>")
                        EMA cases (a model with BatchNorm1d, "init_bn.*"): the weights and
                        the average ("<case>.ema.<key>", AveragedModel or timm ModelEmaV3)
  features.json         per case its settings and the total norms clip_grad_norm_ returned
                        at each update; per norm type the total norm of "clip.in.*"
tests/train_features_parity.rs drives kiln's Trainer with the same data (no shuffling,
batch 4, so 6 batches an epoch, the last of 2 samples) and compares.

The loop is the recipe of PyTorch's docs and Lightning's accumulate_grad_batches:
    loss = cross_entropy(model(x), y) / N; loss.backward()
    every N batches and at the epoch's end: clip; optimizer.step(); optimizer.zero_grad()
"""

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "train"
BATCH = 4
EPOCHS = 2


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(6, 8)
        self.fc2 = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class MlpBn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        # no bias in front of BatchNorm (as conv-bn nets do): such a bias gets a gradient
        # of rounding noise only, which Adam normalises into full-size steps of either sign
        self.fc1 = torch.nn.Linear(6, 8, bias=False)
        self.bn = torch.nn.BatchNorm1d(8)
        self.fc2 = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


# EMA cases (model with BatchNorm, so buffers are averaged too):
# name: (optimizer, accumulate, clip_norm, decay, warmup)
#   warmup False: torch.optim.swa_utils.AveragedModel(get_ema_multi_avg_fn(decay), use_buffers=True)
#   warmup True:  timm.utils.ModelEmaV3(decay, use_warmup=True), update(model, step=updates)
EMA_CASES = {
    "ema_sgd": ("sgd", 1, None, 0.9, False),
    "ema_warmup_accum2_clip_adam": ("adam", 2, 0.5, 0.95, True),
}

CASES = {
    # name: (optimizer, accumulate, clip_norm, norm_type, clip_value)
    "accum4_sgd": ("sgd", 4, None, 2.0, None),
    "accum2_clip_adam": ("adam", 2, 0.5, 2.0, None),
    "clip_inf_sgd": ("sgd", 1, 0.05, math.inf, None),
    "accum3_clip_value_sgd": ("sgd", 3, None, 2.0, 0.02),
    "accum4_clip1_value_adam": ("adam", 4, 0.3, 1.0, 0.05),
}


def run(init, x, y, opt_name, accum, clip_norm, norm_type, clip_value, ema=None, model=None):
    if model is None:
        model = Mlp()
    model.load_state_dict(init)
    averaged = None
    if ema is not None:
        decay, warmup = ema
        if warmup:
            from timm.utils.model_ema import ModelEmaV3

            averaged = ModelEmaV3(model, decay=decay, use_warmup=True)
        else:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            averaged = AveragedModel(
                model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True
            )
    updates = 0
    if opt_name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
    norms = []
    n = x.shape[0]
    batches = [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, n, BATCH)]
    for _ in range(EPOCHS):
        for i, (xb, yb) in enumerate(batches):
            loss = F.cross_entropy(model(xb), yb)
            if accum > 1:
                loss = loss / accum
            loss.backward()
            if (i + 1) % accum == 0 or i + 1 == len(batches):
                if clip_norm is not None:
                    t = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm, norm_type)
                    norms.append(float(t))
                if clip_value is not None:
                    torch.nn.utils.clip_grad_value_(model.parameters(), clip_value)
                opt.step()
                opt.zero_grad()
                updates += 1
                if averaged is not None:
                    if ema[1]:
                        averaged.update(model, step=updates)
                    else:
                        averaged.update_parameters(model)
    if averaged is not None:
        return model.state_dict(), norms, averaged.module.state_dict()
    return model.state_dict(), norms


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    x = torch.randn(22, 6)
    y = torch.randint(0, 3, (22,))
    init = Mlp().state_dict()
    tensors = {"x": x, "y": y}
    for k, v in init.items():
        tensors[f"init.{k}"] = v.clone()
    meta = {"batch_size": BATCH, "epochs": EPOCHS, "cases": {}, "clip": {}}
    for name, (opt, accum, clip, p, value) in CASES.items():
        sd, norms = run(init, x, y, opt, accum, clip, p, value)
        for k, v in sd.items():
            tensors[f"{name}.{k}"] = v.clone()
        meta["cases"][name] = {
            "optimizer": opt,
            "accumulate": accum,
            "clip_grad_norm": clip,
            "norm_type": str(p),
            "clip_grad_value": value,
            "norms": norms,
        }
    torch.manual_seed(1)
    init_bn = MlpBn().state_dict()
    for k, v in init_bn.items():
        tensors[f"init_bn.{k}"] = v.clone()
    meta["ema"] = {}
    for name, (opt, accum, clip, decay, warmup) in EMA_CASES.items():
        sd, norms, avg = run(init_bn, x, y, opt, accum, clip, 2.0, None, (decay, warmup), MlpBn())
        for k, v in sd.items():
            tensors[f"{name}.{k}"] = v.clone()
        for k, v in avg.items():
            tensors[f"{name}.ema.{k}"] = v.clone()
        meta["ema"][name] = {
            "optimizer": opt,
            "accumulate": accum,
            "clip_grad_norm": clip,
            "norm_type": "2.0",
            "clip_grad_value": None,
            "decay": decay,
            "warmup": warmup,
            "norms": norms,
        }
    # clip_grad_norm_ on its own, every norm order.
    g = [torch.randn(5, 7) * 3, torch.randn(11), torch.randn(2, 3, 4) * 0.1]
    for i, t in enumerate(g):
        tensors[f"clip.in.{i}"] = t
    for p in [2.0, 1.0, 3.0, 0.5, math.inf, -math.inf, 0.0]:
        params = [torch.nn.Parameter(torch.zeros_like(t)) for t in g]
        for q, t in zip(params, g):
            q.grad = t.clone()
        total = torch.nn.utils.clip_grad_norm_(params, 1.5, p)
        meta["clip"][str(p)] = {"total": float(total), "max_norm": 1.5}
        for i, q in enumerate(params):
            tensors[f"clip.{p}.{i}"] = q.grad.clone()
    save_file({k: v.contiguous() for k, v in tensors.items()}, OUT / "features.safetensors")
    (OUT / "features.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {OUT} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
