#!/usr/bin/env python3
"""PyTorch side of `kiln bench train`: times one training step (forward, cross-entropy,
backward, SGD step) of the same architecture on the same batch with the same thread count.

Usage: python scripts/bench_torch.py --model lenet --batch-size 64 --steps 100 --warmup 10 --threads 1 [--image-size 8]
Prints one JSON line: {"median_ms", "p10_ms", "p90_ms", "cpu_median_ms", "peak_rss_mib",
"steps", "torch", "threads"} (cpu: process CPU time per step, all threads; peak_rss_mib: the
process's peak resident set, ru_maxrss).
The batch is the first B images of data/digits.bin (what kiln uses), scaled to [0, 1] and
enlarged to image-size x image-size by repeating pixels (nearest neighbour, as kiln does).
"""
import argparse
import json
import os
import resource
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


def build(model, image_size):
    if model == "lenet":
        return LeNet(image_size=image_size)
    if model == "mlp":
        return MLP(in_features=image_size * image_size)
    import torchvision

    if hasattr(torchvision.models, model):
        # Any torchvision architecture, with its first convolution taking the digits' one
        # channel as kiln builds it (`kiln::models::build(model, 10, 1, size)`).
        m = getattr(torchvision.models, model)(weights=None, num_classes=10)
        for name, mod in m.named_modules():
            if isinstance(mod, torch.nn.Conv2d):
                parent, _, leaf = name.rpartition(".")
                new = torch.nn.Conv2d(1, mod.out_channels, mod.kernel_size, mod.stride,
                                      mod.padding, mod.dilation, mod.groups,
                                      mod.bias is not None)
                setattr(m.get_submodule(parent) if parent else m, leaf, new)
                break
        return m
    raise SystemExit(f"unknown model {model}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="lenet")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--image-size", type=int, default=8)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "data", "digits.bin"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    model = build(a.model, a.image_size).to(dev, dtype)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum)
    x, y = digits_batch(a.data, a.batch_size)
    if a.image_size != x.shape[-1]:
        if a.image_size % x.shape[-1] != 0:
            raise SystemExit(f"image size {a.image_size} is not a multiple of {x.shape[-1]}")
        f = a.image_size // x.shape[-1]
        x = x.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3).contiguous()
    x, y = x.to(dev, dtype), y.to(dev)
    times, cpu = [], []
    for i in range(a.warmup + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if i >= a.warmup:
            times.append(dt * 1e3)
            cpu.append(dc * 1e3)
    times.sort()
    q = lambda p: times[min(len(times) - 1, int(p * len(times)))]  # noqa: E731
    print(json.dumps({"median_ms": statistics.median(times), "p10_ms": q(0.1), "p90_ms": q(0.9),
                      "cpu_median_ms": statistics.median(cpu),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "steps": a.steps, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "device": str(dev), "dtype": a.dtype}))


if __name__ == "__main__":
    main()
