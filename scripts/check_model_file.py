#!/usr/bin/env python3
"""Loads a `model.safetensors` written by `kiln train` into the PyTorch twin with strict=True
and checks that it predicts the digits about as well as kiln reported.

Usage: python scripts/check_model_file.py RUN_DIR {lenet,mlp}
RUN_DIR holds model.safetensors and metrics.jsonl. Exits non-zero if the keys or shapes differ,
or if PyTorch's accuracy on all 1,797 images is more than 5 points from kiln's last test_acc
(kiln's is on its 359-image test split, so the two are close, not equal).
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import LeNet, MLP  # noqa: E402


def main():
    run, arch = sys.argv[1], sys.argv[2]
    model = {"lenet": LeNet, "mlp": MLP}[arch]()
    model.load_state_dict(load_file(os.path.join(run, "model.safetensors")), strict=True)
    model.eval()
    raw = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "digits.bin"),
               "rb").read()
    n = int.from_bytes(raw[8:12], "little")
    x = torch.from_numpy(np.frombuffer(raw, np.uint8, n * 64, 28).astype(np.float32) / 16)
    y = torch.from_numpy(np.frombuffer(raw, np.uint8, n, 28 + n * 64).astype(np.int64))
    with torch.no_grad():
        pred = model(x.reshape(n, 1, 8, 8)).argmax(1)
    acc_all = (pred == y).float().mean().item()
    last = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()][-1]
    print(f"{arch}: strict load OK; PyTorch accuracy on all {n} digits {acc_all:.4f}; "
          f"kiln's last test_acc {last['test_acc']:.4f}")
    if abs(acc_all - last["test_acc"]) > 0.05:
        raise SystemExit("the PyTorch twin disagrees with kiln's reported accuracy")


if __name__ == "__main__":
    main()
