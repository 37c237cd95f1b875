#!/usr/bin/env python3
"""PyTorch side of `kiln bench train`: times one training step (forward, cross-entropy,
backward, SGD step) of the same architecture on the same batch with the same thread count.

Usage: python scripts/bench_torch.py --model lenet --batch-size 64 --steps 100 --warmup 10 --threads 1
Prints one JSON line: {"median_ms", "p10_ms", "p90_ms", "steps", "torch", "threads"}.
The batch is the first B images of data/digits.bin (what kiln uses), scaled to [0, 1].
"""
import argparse
import json
import os
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import LeNet, MLP  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def digits_batch(path, b):
    raw = open(path, "rb").read()
    if raw[:8] != b"KDIGITS1":
        raise SystemExit(f"{path}: not a digits.bin file")
    n, rows, cols, _classes, _crc = struct.unpack("<5I", raw[8:28])
    if b > n:
        raise SystemExit(f"batch size {b} exceeds the {n} images")
    pix = np.frombuffer(raw, dtype=np.uint8, count=n * rows * cols, offset=28)
    labels = np.frombuffer(raw, dtype=np.uint8, count=n, offset=28 + n * rows * cols)
    x = torch.from_numpy(pix[: b * rows * cols].astype(np.float32) / 16.0).reshape(b, 1, rows, cols)
    return x, torch.from_numpy(labels[:b].astype(np.int64))


def build(model):
    if model == "lenet":
        return LeNet()
    if model == "mlp":
        return MLP()
    if model == "resnet18":
        import torchvision

        m = torchvision.models.resnet18(weights=None, num_classes=10)
        m.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        return m
    raise SystemExit(f"unknown model {model}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="lenet")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "data", "digits.bin"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build(a.model)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
    x, y = digits_batch(a.data, a.batch_size)
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(dt * 1e3)
    times.sort()
    q = lambda p: times[min(len(times) - 1, int(p * len(times)))]  # noqa: E731
    print(json.dumps({"median_ms": statistics.median(times), "p10_ms": q(0.1), "p90_ms": q(0.9),
                      "steps": a.steps, "torch": torch.__version__,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
