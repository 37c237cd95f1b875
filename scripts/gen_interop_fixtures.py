#!/usr/bin/env python3
"""Generates the interop fixtures of issue 16 item 3 in tests/fixtures/interop/ with real torch.

- `deflate.pt`: a `torch.save(state_dict)` archive re-zipped by Python's zipfile with
  ZIP_DEFLATED (torch's reader accepts it); `deflate.ref.safetensors` the same tensors.
- `resnet_sd.pt`: the state dict (with `_metadata`) of a small torchvision-style model with
  `layer1`/`layer2` children, for `kiln convert --rename`.
- `exotic.pt`: float8 (e4m3fn, e5m2, e4m3fnuz, e5m2fnuz) and complex64/128 tensors;
  `exotic.json` their dtypes, shapes and bytes (hex), to compare bit for bit.
- `sharded_st/`: a Hugging Face sharded safetensors checkpoint (`model-0000K-of-00002`,
  `model.safetensors.index.json`) and `sharded_bin/` the `pytorch_model.bin` variant
  (`pytorch_model-0000K-of-00002.bin`, `pytorch_model.bin.index.json`), both of the
  tensors of `sharded.ref.safetensors`.

Usage: python scripts/gen_interop_fixtures.py [OUT_DIR]   (default tests/fixtures/interop)
"""
import json
import os
import sys
import zipfile

import torch
from safetensors.torch import save_file
from torch import nn

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "interop")
torch.manual_seed(16)


def deflate():
    sd = {"w": torch.randn(3, 4), "b": torch.arange(5, dtype=torch.int64),
          "h": torch.randn(2, 2).half()}
    tmp = os.path.join(OUT, "stored.tmp")
    torch.save(sd, tmp)
    with zipfile.ZipFile(tmp) as src, zipfile.ZipFile(
            os.path.join(OUT, "deflate.pt"), "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    os.remove(tmp)
    with zipfile.ZipFile(os.path.join(OUT, "deflate.pt")) as z:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
    back = torch.load(os.path.join(OUT, "deflate.pt"))
    assert all(torch.equal(back[k], v) for k, v in sd.items())
    save_file(sd, os.path.join(OUT, "deflate.ref.safetensors"))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.bn = nn.BatchNorm2d(2)


def renamed():
    net = nn.Module()
    net.layer1 = nn.Sequential(Block())
    net.layer2 = nn.Sequential(Block())
    net.fc = nn.Linear(2, 2)
    torch.save(net.state_dict(), os.path.join(OUT, "resnet_sd.pt"))


def sharded():
    sd = {f"layers.{i}.weight": torch.randn(4, 4) for i in range(3)}
    sd["head.bias"] = torch.randn(4)
    save_file(sd, os.path.join(OUT, "sharded.ref.safetensors"))
    names = list(sd)
    shards = [names[:2], names[2:]]
    total = sum(t.numel() * t.element_size() for t in sd.values())
    for kind in ["st", "bin"]:
        d = os.path.join(OUT, f"sharded_{kind}")
        os.makedirs(d, exist_ok=True)
        weight_map = {}
        for i, keys in enumerate(shards):
            if kind == "st":
                fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
                save_file({k: sd[k] for k in keys}, os.path.join(d, fname),
                          metadata={"format": "pt"})
            else:
                fname = f"pytorch_model-{i + 1:05d}-of-{len(shards):05d}.bin"
                torch.save({k: sd[k] for k in keys}, os.path.join(d, fname))
            weight_map.update({k: fname for k in keys})
        index = "model.safetensors.index.json" if kind == "st" else "pytorch_model.bin.index.json"
        with open(os.path.join(d, index), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def exotic():
    g = torch.Generator().manual_seed(5)
    base = torch.randn(2, 3, generator=g) * 3
    sd = {
        "f8_e4m3fn": base.to(torch.float8_e4m3fn),
        "f8_e5m2": base.to(torch.float8_e5m2),
        "f8_e4m3fnuz": base.to(torch.float8_e4m3fnuz),
        "f8_e5m2fnuz": base.to(torch.float8_e5m2fnuz),
        "c64": torch.complex(base, -base),
        "c128": torch.complex(base.double(), base.double() * 2).t(),
    }
    torch.save(sd, os.path.join(OUT, "exotic.pt"))
    info = {k: {"dtype": str(v.dtype), "shape": list(v.shape),
                "hex": v.contiguous().view(torch.uint8).numpy().tobytes().hex()}
            for k, v in sd.items()}
    with open(os.path.join(OUT, "exotic.json"), "w") as f:
        json.dump(info, f, indent=1)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    exotic()
    deflate()
    renamed()
    sharded()
