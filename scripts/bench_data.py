#!/usr/bin/env python3
"""PyTorch side of `kiln bench data`: images/s through torchvision's ImageFolder +
RandomResizedCrop(S) + RandomHorizontalFlip + ToTensor + Normalize and a
DataLoader(batch_size=B, shuffle=True, num_workers=N) over every image of the folder, in the
same run as kiln's own pipeline. Each timed pass starts the loader from scratch (worker start-up
counts, as it does for kiln) and consumes every batch; the median of `--repeat` passes counts.
Prints one JSON line: {"images_per_s": x, "passes": [...], "images": n, "torch_version": "..."}.

    python scripts/bench_data.py --data DIR --workers 2 --batch-size 32 --image-size 224
"""

import argparse
import json
import os
import statistics
import time

import torch
import torchvision
from torchvision import transforms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    root = os.path.join(a.data, "train") if os.path.isdir(os.path.join(a.data, "train")) else a.data
    tf = transforms.Compose([
        transforms.RandomResizedCrop(a.image_size),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    ds = torchvision.datasets.ImageFolder(root, transform=tf)
    passes = []
    for _ in range(max(1, a.repeat)):
        loader = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=True,
                                             num_workers=a.workers)
        t = time.perf_counter()
        n = 0
        for x, _ in loader:
            n += x.shape[0]
        passes.append(n / (time.perf_counter() - t))
        del loader
    print(json.dumps({"images_per_s": statistics.median(passes), "passes": passes,
                      "images": len(ds), "torch_version": torch.__version__,
                      "torchvision_version": torchvision.__version__}))


if __name__ == "__main__":
    main()
