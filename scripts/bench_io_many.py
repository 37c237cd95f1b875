#!/usr/bin/env python3
"""PyTorch side of `kiln bench io --many N`: times `torch.load` (weights_only, the default)
of a .pt file of many small tensors that kiln wrote, in the same run as kiln's own read.
One untimed load brings the file into the page cache, then the median of `--repeat` loads.
Prints one JSON line: {"torch.load": seconds, "tensors": n, "torch_version": "..."}.

    python scripts/bench_io_many.py --file target/bench-io/many.pt --repeat 3
"""

import argparse
import json
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", required=True)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    sd = torch.load(a.file)
    n = len(sd)
    del sd
    times = []
    for _ in range(max(1, a.repeat)):
        t = time.perf_counter()
        sd = torch.load(a.file)
        times.append(time.perf_counter() - t)
        del sd
    times.sort()
    print(
        json.dumps(
            {
                "torch.load": times[len(times) // 2],
                "tensors": n,
                "torch_version": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
