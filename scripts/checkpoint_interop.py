#!/usr/bin/env python3
"""Checkpoint interop with real PyTorch, both ways.

    python scripts/checkpoint_interop.py gen DIR     # PyTorch side, before the Rust test
    python scripts/checkpoint_interop.py check DIR   # after: kiln's checkpoints into PyTorch

gen: trains the LeNet twin (scripts/torch_models.py) for 2 epochs on the digits with the
standard recipe and saves {'epoch', 'model_state_dict', 'optimizer_state_dict', 'loss'} for
SGD-momentum and for Adam (pt_sgd.pt, pt_adam.pt); then takes ONE more optimizer step on a
fixed batch (batch.safetensors) and saves the parameters after it (next_sgd/next_adam
.safetensors) plus the hyper-parameters (hyper.json). The Rust test resumes those
checkpoints in kiln, takes its first step on the same batch and compares.

check: every kiln checkpoint under DIR/kiln_ckpt_* loads with plain torch.load (weights_only),
its model_state_dict into the twin with strict=True, its optimizer_state_dict into a PyTorch
SGD/Adam built the same way, its scheduler_state_dict into CosineAnnealingLR, and a step runs;
the loaded momentum/moments equal the tensors kiln saved.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import LeNet  # noqa: E402

HYPER = {
    "sgd": {"lr": 0.03, "momentum": 0.9, "weight_decay": 1e-4},
    "adam": {"lr": 1e-3, "weight_decay": 0.0},
}


def digits():
    raw = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "digits.bin"),
               "rb").read()
    n = int.from_bytes(raw[8:12], "little")
    x = torch.from_numpy(np.frombuffer(raw, np.uint8, n * 64, 28).astype(np.float32) / 16)
    y = torch.from_numpy(np.frombuffer(raw, np.uint8, n, 28 + n * 64).astype(np.int64))
    return x.reshape(n, 1, 8, 8), y


def make_opt(name, params):
    h = HYPER[name]
    if name == "sgd":
        return torch.optim.SGD(params, lr=h["lr"], momentum=h["momentum"], weight_decay=h["weight_decay"])
    return torch.optim.Adam(params, lr=h["lr"], weight_decay=h["weight_decay"])


def gen(out):
    os.makedirs(out, exist_ok=True)
    x, y = digits()
    g = torch.Generator().manual_seed(0)
    batch_idx = torch.arange(100, 116)
    save_file({"input": x[batch_idx].contiguous(), "target": y[batch_idx].contiguous()},
              os.path.join(out, "batch.safetensors"))
    for name in ["sgd", "adam"]:
        torch.manual_seed(1)
        model = LeNet()
        opt = make_opt(name, model.parameters())
        for epoch in range(2):
            perm = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), 32):
                idx = perm[i:i + 32]
                opt.zero_grad()
                loss = F.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
        torch.save({"epoch": 1, "model_state_dict": model.state_dict(),
                    "optimizer_state_dict": opt.state_dict(), "loss": loss.item()},
                   os.path.join(out, f"pt_{name}.pt"))
        xb, yb = x[batch_idx], y[batch_idx]
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
        save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
                  os.path.join(out, f"next_{name}.safetensors"))
    with open(os.path.join(out, "hyper.json"), "w") as f:
        json.dump({"torch": torch.__version__, **HYPER}, f, indent=1)
    print(f"wrote PyTorch recipe checkpoints to {out} (torch {torch.__version__})")


def check(out):
    found = 0
    for entry in sorted(os.listdir(out)):
        if not entry.startswith("kiln_ckpt_"):
            continue
        name = entry[len("kiln_ckpt_"):].split(".")[0].split("_")[0]
        path = os.path.join(out, entry)
        assert not torch.serialization.get_unsafe_globals_in_checkpoint(path), path
        ck = torch.load(path)  # weights_only=True is the default
        for key in ["epoch", "model_state_dict", "optimizer_state_dict", "loss"]:
            assert key in ck, f"{entry}: no {key}"
        model = LeNet()
        model.load_state_dict(ck["model_state_dict"], strict=True)
        opt = make_opt(name, model.parameters())
        opt.load_state_dict(ck["optimizer_state_dict"])
        state = opt.state_dict()["state"]
        saved = ck["optimizer_state_dict"]["state"]
        assert state.keys() == saved.keys() and len(state) == 10, f"{entry}: state keys {state.keys()}"
        for i, s in saved.items():
            for k, v in s.items():
                assert torch.equal(state[i][k], v), f"{entry}: state[{i}][{k}] changed on load"
        sched = None
        if ck.get("scheduler_state_dict") is not None:
            sd = ck["scheduler_state_dict"]
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=sd["T_max"])
            sched.load_state_dict(sd)
            assert sched.last_epoch == sd["last_epoch"] and sched.get_last_lr() == sd["_last_lr"]
        x, y = digits()
        opt.zero_grad()
        F.cross_entropy(model(x[:32]), y[:32]).backward()
        opt.step()
        if sched is not None:
            sched.step()
        found += 1
        print(f"ok    {entry}: torch.load, strict model load, {type(opt).__name__}.load_state_dict, step")
    if found < 4:
        raise SystemExit(f"expected 4 kiln checkpoints (kiln_ckpt_{{sgd,adam}}[_cosine].pt) in {out}, found {found}")


if __name__ == "__main__":
    {"gen": gen, "check": check}[sys.argv[1]](sys.argv[2])
