#!/usr/bin/env python3
"""PyTorch side of `kiln bench io`: save/load of a float32 state dict of the same layout kiln
uses (tensors of 4 Mi elements), with torch.save/torch.load and the safetensors package.
Saves are followed by fsync so they are as durable as kiln's atomic writes. Prints JSON:
{"name": median_seconds_of_repeat, ...} plus versions.

    python scripts/bench_io.py --size-mib 1024 --dir /tmp/kiln-bench --repeat 3
"""

import argparse
import json
import os
import time

import torch
from safetensors.torch import load_file, save_file

CHUNK = 4 * 1024 * 1024  # elements per tensor (16 MiB of float32)


def state_dict(size_mib):
    total = size_mib * 1024 * 1024 // 4
    sd = {}
    i = 0
    g = torch.Generator().manual_seed(0)
    while total > 0:
        n = min(CHUNK, total)
        sd[f"layer{i}.weight"] = torch.rand(n, generator=g)
        total -= n
        i += 1
    return sd


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def best(f, repeat, warm=False):
    """Median of `repeat` runs (as kiln's side reports); `warm`: one untimed run first, so
    loads read from the page cache, as kiln's do."""
    if warm:
        f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    sd = state_dict(a.size_mib)
    pt = os.path.join(a.dir, "torch.pt")
    st = os.path.join(a.dir, "python.safetensors")
    r = {"torch_version": torch.__version__}

    def torch_save():
        torch.save(sd, pt)
        fsync(pt)

    def st_save():
        save_file(sd, st)
        fsync(st)

    r["torch.save"] = best(torch_save, a.repeat)
    r["torch.load"] = best(lambda: torch.load(pt), a.repeat, warm=True)
    r["torch.load(mmap=True)"] = best(lambda: torch.load(pt, mmap=True), a.repeat, warm=True)
    r["safetensors.save_file"] = best(st_save, a.repeat)
    r["safetensors.load_file"] = best(lambda: load_file(st), a.repeat, warm=True)
    for p in (pt, st):
        os.remove(p)
    print(json.dumps(r))


if __name__ == "__main__":
    main()
