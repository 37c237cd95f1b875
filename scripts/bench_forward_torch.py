#!/usr/bin/env python3
"""PyTorch side of `kiln bench forward`: times torchvision's eval-mode inference
(`model.eval()` under `torch.no_grad()`, 1000 classes, random weights) of one batch of
3-channel images at the given size with the given thread count.

Usage: python scripts/bench_forward_torch.py --model resnet50 --batch-size 8 --image-size 224 --steps 10 --warmup 2 --threads 1
Prints one JSON line: {"median_ms", "p10_ms", "p90_ms", "cpu_median_ms", "peak_rss_mib",
"steps", "torch", "threads"} (cpu: process CPU time per batch, all threads; peak_rss_mib:
the process's peak resident set, ru_maxrss).
"""
import argparse
import json
import resource
import statistics
import time

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, a.model)(weights=None, num_classes=1000).eval()
    x = torch.rand(a.batch_size, 3, a.image_size, a.image_size) * 2 - 1
    times, cpu = [], []
    with torch.no_grad():
        for i in range(a.warmup + a.steps):
            t0, c0 = time.perf_counter(), time.process_time()
            model(x).sum().item()
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
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
