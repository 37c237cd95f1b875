#!/usr/bin/env python3
"""PyTorch side of scripts/gpu-check.sh: checkpoints that cross between PyTorch and kiln on a GPU.

  gen DIR DEVICE    writes DIR/torch_gpu.pt (LeNet state dict saved from DEVICE, so its storages
                    are tagged e.g. cuda:0) and DIR/x.safetensors (a batch of digits) and
                    DIR/torch_out.safetensors (PyTorch's eval output on DEVICE)
  check DIR DEVICE  torch.load(DIR/kiln_gpu.pt) with the default weights_only=True and no
                    map_location: its tensors must land on DEVICE; loads them strictly into LeNet
                    and compares the output with kiln's (DIR/kiln_out.safetensors)
  time ARGS         ResNet-18 training-step timing on the GPU (see --help of that mode)
Prints one line per check: "ok ..." or "FAIL ..."; exits 1 on any failure.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import LeNet  # noqa: E402
from bench_torch import digits_batch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS = os.path.join(HERE, "..", "data", "digits.bin")


def gen(d, dev):
    torch.manual_seed(0)
    m = LeNet().to(dev).eval()
    torch.save(m.state_dict(), os.path.join(d, "torch_gpu.pt"))
    x, _ = digits_batch(DIGITS, 32)
    save_file({"input": x.contiguous()}, os.path.join(d, "x.safetensors"))
    with torch.no_grad():
        y = m(x.to(dev)).cpu().contiguous()
    save_file({"output": y}, os.path.join(d, "torch_out.safetensors"))
    locs = {str(t.device) for t in m.state_dict().values()}
    print(f"ok    PyTorch wrote torch_gpu.pt from {dev} (storages on {sorted(locs)})")


def check(d, dev):
    failed = 0
    sd = torch.load(os.path.join(d, "kiln_gpu.pt"))  # weights_only=True, no map_location
    where = {str(t.device) for t in sd.values()}
    want = str(torch.device(dev))
    if where != {want if ":" in want else want + ":0"} and where != {want}:
        print(f"FAIL  torch.load(kiln_gpu.pt) put tensors on {sorted(where)}, expected {want}")
        failed += 1
    else:
        print(f"ok    torch.load(kiln_gpu.pt) without map_location: tensors on {sorted(where)}")
    m = LeNet().to(dev).eval()
    m.load_state_dict(sd, strict=True)
    x = load_file(os.path.join(d, "x.safetensors"))["input"].to(dev)
    with torch.no_grad():
        y = m(x).cpu()
    ky = load_file(os.path.join(d, "kiln_out.safetensors"))["output"]
    err = (y - ky).abs().max().item()
    ok = err < 1e-4
    failed += not ok
    print(f"{'ok   ' if ok else 'FAIL '} PyTorch and kiln outputs of the kiln-written GPU checkpoint: max abs diff {err:.2e}")
    ty = load_file(os.path.join(d, "torch_out.safetensors"))["output"]
    err = (ty - ky).abs().max().item()
    ok = err < 1e-4
    failed += not ok
    print(f"{'ok   ' if ok else 'FAIL '} kiln on {dev} with PyTorch's GPU checkpoint vs PyTorch: max abs diff {err:.2e}")
    return failed


def time_resnet(a):
    import torchvision

    dev = torch.device(a.device)
    torch.manual_seed(0)
    m = torchvision.models.resnet18(weights=None, num_classes=10)
    m.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    m = m.to(dev, dtype).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(a.batch_size, 1, a.image_size, a.image_size, device=dev, dtype=dtype)
    y = torch.randint(0, 10, (a.batch_size,), device=dev)
    times = []
    for i in range(a.warmup + a.steps):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
        loss.item()
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"median_ms": statistics.median(times), "torch": torch.__version__,
                      "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["gen", "check", "time"])
    ap.add_argument("dir", nargs="?")
    ap.add_argument("device", nargs="?", default="cuda:0")
    ap.add_argument("--device", dest="time_device", default=None)
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    if a.mode == "gen":
        gen(a.dir, a.device)
    elif a.mode == "check":
        sys.exit(1 if check(a.dir, a.device) else 0)
    else:
        a.device = a.time_device or a.device
        time_resnet(a)


if __name__ == "__main__":
    main()
