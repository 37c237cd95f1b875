#!/usr/bin/env python3
"""Writes the small PyTorch-made fixtures of kiln's persistence tests to tests/fixtures/io/,
plus manifest.json: for each file, the canonical description (scripts/io_describe.py) of
what torch.load returns, which kiln must reproduce bit for bit.

Run with the project's venv:  /work/main/.venv/bin/python scripts/gen_io_fixtures.py
The files are committed; rerun only to regenerate them (the torch version is recorded).
"""

import collections
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from io_describe import describe  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "io")


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.bn = torch.nn.BatchNorm2d(2)
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x):
        x = self.bn(self.conv(x)).relu().flatten(1)
        return self.fc(x[:, :8])


def all_dtypes():
    g = torch.Generator().manual_seed(1)
    f = torch.tensor([0.0, -0.0, 1.5, -2.25, float("inf"), float("-inf"), float("nan"), 1e-40, 3.4e38, 1 / 3])
    d = collections.OrderedDict()
    d["f64"] = torch.tensor([0.1, -1e300, 5e-324, float("nan")], dtype=torch.float64)
    d["f32"] = f.clone()
    d["f16"] = f.to(torch.float16)
    d["bf16"] = f.to(torch.bfloat16)
    d["i64"] = torch.tensor([0, -1, 2**63 - 1, -(2**63)], dtype=torch.int64)
    d["i32"] = torch.tensor([[1, -2], [2**31 - 1, -(2**31)]], dtype=torch.int32)
    d["i16"] = torch.tensor([-32768, 32767, 7], dtype=torch.int16)
    d["i8"] = torch.tensor([-128, 127, 0, -1], dtype=torch.int8)
    d["u8"] = torch.randint(0, 256, (2, 3, 4), generator=g, dtype=torch.uint8)
    d["bool"] = torch.tensor([True, False, True])
    d["u16"] = torch.tensor([0, 65535, 1234], dtype=torch.uint16)
    d["u32"] = torch.tensor([0, 2**32 - 1], dtype=torch.uint32)
    d["u64"] = torch.tensor([0, 2**63 - 1], dtype=torch.uint64)
    d["scalar"] = torch.tensor(2.5)
    d["empty"] = torch.zeros(0)
    d["empty2"] = torch.zeros(2, 0, dtype=torch.int64)
    d["randn"] = torch.randn(3, 5, generator=g)
    return d


def views():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {
        "base": base,
        "row": base[1],  # offset 6
        "col": base[:, 2],  # offset 2, stride 6
        "t": base.t(),  # non-contiguous
        "strided": base[::2, 1::3],  # offset 1, strides (12, 3)
        "narrow": base.reshape(-1)[5:9],
        "tied": base,  # the same tensor twice
        "other": torch.ones(2, dtype=torch.float64),
    }


def params():
    w = torch.nn.Parameter(torch.arange(6, dtype=torch.float32).reshape(2, 3))
    frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    return {"w": w, "frozen": frozen, "grad_tensor": torch.zeros(2).requires_grad_(), "zero_dim": torch.tensor(7)}


def checkpoint():
    torch.manual_seed(0)
    net = Net()
    sgd = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    adam = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.StepLR(sgd, step_size=2, gamma=0.5)
    x = torch.randn(4, 1, 5, 5)
    for _ in range(2):
        for opt in (sgd, adam):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
        sched.step()
    return {
        "epoch": 3,
        "model_state_dict": net.state_dict(),
        "optimizer_state_dict": sgd.state_dict(),
        "adam_state_dict": adam.state_dict(),
        "scheduler_state_dict": sched.state_dict(),
        "loss": 0.25,
        "name": "run-1 ✓",
        "history": [1.0, 0.5, 0.25],
        "nested": {"a": (1, 2.5, None, True), 7: [b"\x00\xffbytes", ()], "dtype": torch.float16, "device": torch.device("cpu")},
    }


def dataparallel():
    torch.manual_seed(0)
    return torch.nn.DataParallel(Net()).state_dict()


def save_cuda_tagged(obj, path):
    """torch.save with every storage tagged cuda:0 (possible without a GPU)."""
    orig = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(obj, path)
    finally:
        torch.serialization.location_tag = orig


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    cases = collections.OrderedDict()

    def add(name, obj, **kw):
        path = os.path.join(OUT, name)
        torch.save(obj, path, **kw)
        cases[name] = obj

    add("dtypes.pt", all_dtypes())
    add("views.pt", views())
    add("params.pt", params())
    add("checkpoint.pt", checkpoint())
    add("dataparallel.pt", dataparallel())
    # torch cannot read back uint16/32/64 from its own legacy format: leave them out there.
    legacy_dtypes = {k: v for k, v in all_dtypes().items() if k not in ("u16", "u32", "u64")}
    add("legacy.pt", {"dtypes": legacy_dtypes, "views": views(), "sd": Net().state_dict()}, _use_new_zipfile_serialization=False)
    add("proto4.pt", {"w": torch.arange(5, dtype=torch.int32), "s": "text", "t": (1, 2)}, pickle_protocol=4)
    add("proto5.pt", {"w": torch.arange(3, dtype=torch.float64)}, pickle_protocol=5)
    save_cuda_tagged({"weight": torch.arange(4, dtype=torch.float32), "view": torch.arange(4.0)[1:]}, os.path.join(OUT, "cuda.pt"))
    cases["cuda.pt"] = torch.load(os.path.join(OUT, "cuda.pt"), map_location="cpu")

    manifest = {"torch_version": torch.__version__, "files": {}}
    for name in cases:
        # Our own files: protocol 4/5 pickles need the full unpickler (weights_only rejects FRAME).
        loaded = torch.load(os.path.join(OUT, name), map_location="cpu", weights_only=False)
        manifest["files"][name] = describe(loaded)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False, sort_keys=True)
    print(f"wrote {len(cases)} fixtures to {os.path.normpath(OUT)} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
