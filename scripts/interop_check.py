#!/usr/bin/env python3
"""Live interoperability check between kiln and real PyTorch, both ways. One command:

    /work/main/.venv/bin/python scripts/interop_check.py      (or any python with torch,
                                                               torchvision, safetensors)

1. PyTorch writes large files into <target>/interop: a torchvision ResNet-18 state dict
   (zip, legacy, DataParallel, safetensors) and their canonical descriptions.
2. `cargo test --test io_interop -- --include-ignored` reads them in kiln (bit-exact,
   strict load into kiln's ResNet-18) and writes kiln's own files to <target>/interop/kiln_out.
3. Python checks every file kiln wrote with plain `torch.load(path)` (weights_only=True),
   `torch.load(path, mmap=True)` and `torch.serialization.get_unsafe_globals_in_checkpoint`,
   comparing values bit-exactly and the nesting; safetensors with the safetensors package.
4. The `kiln` CLI: convert (prefix strip, dtype cast compared with torch's own .half()),
   diff exit codes, inspect --json totals, forward vs torchvision's eval forward.

Prints a summary and exits non-zero on any failure. <target> is $CARGO_TARGET_DIR or ./target.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import traceback
import zipfile

import torch
import torchvision
from safetensors.torch import load_file as st_load
from safetensors.torch import save_file as st_save

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from io_describe import describe  # noqa: E402

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
# KILN_CARGO_PROFILE=release reuses the release build of the test command.
PROFILE = os.environ.get("KILN_CARGO_PROFILE", "debug")
PROFILE_ARGS = ["--release"] if PROFILE == "release" else []
OUT = os.path.join(ROOT, "target", "interop")
KOUT = os.path.join(OUT, "kiln_out")
RESULTS = []


def check(name):
    def deco(f):
        t = time.time()
        try:
            f()
            RESULTS.append((name, True, ""))
            print(f"ok    {name} ({time.time() - t:.1f}s)")
        except Exception as e:  # noqa: BLE001
            RESULTS.append((name, False, f"{type(e).__name__}: {e}"))
            print(f"FAIL  {name}: {type(e).__name__}: {e}")
            traceback.print_exc(limit=3)
        return f

    return deco


def same(a, b, what):
    if a != b:
        sa, sb = json.dumps(a, sort_keys=True), json.dumps(b, sort_keys=True)
        i = next((i for i, (x, y) in enumerate(zip(sa, sb)) if x != y), min(len(sa), len(sb)))
        raise AssertionError(f"{what}: descriptions differ near …{sa[max(0, i - 120):i + 80]}… vs …{sb[max(0, i - 120):i + 80]}…")


def flat_tensors(desc):
    """name -> (dtype, shape, bytes) of a described flat dict, ignoring layout."""
    kind = "OrderedDict" if "OrderedDict" in desc else "dict"
    out = {}
    for k, v in desc[kind]:
        t = v["tensor"]
        out[k["str"]] = (t["dtype"], t["shape"], t.get("hex") or t.get("sha256"))
    return out


def torch_loads(path, expected, hex_limit=None, **kw):
    a = torch.load(path, **kw)
    same(describe(a, hex_limit), expected, f"torch.load({os.path.basename(path)})")
    b = torch.load(path, mmap=True, **kw)
    same(describe(b, hex_limit), expected, f"torch.load({os.path.basename(path)}, mmap=True)")
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    if unsafe:
        raise AssertionError(f"unsafe globals in {path}: {unsafe}")
    with zipfile.ZipFile(path) as z:  # an independent check of every CRC-32 and offset
        bad = z.testzip()
        if bad is not None:
            raise AssertionError(f"zipfile: bad CRC in {bad} of {path}")
        for info in z.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise AssertionError(f"{info.filename} is compressed")
    return a


def cargo(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(["cargo", args[0], *PROFILE_ARGS, *args[1:]], cwd=ROOT, env=e)
    if r.returncode != 0:
        raise AssertionError(f"cargo {' '.join(args)} exited {r.returncode}")


def kiln(*args, expect=0):
    exe = os.path.join(TARGET, PROFILE, "kiln")
    r = subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != expect:
        raise AssertionError(f"kiln {' '.join(args)} exited {r.returncode}, expected {expect}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.num_batches_tracked.fill_(7)
    sd = net.state_dict()
    p = lambda n: os.path.join(OUT, n)  # noqa: E731
    torch.save(sd, p("resnet18.pt"))
    torch.save(sd, p("resnet18_legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save(torch.nn.DataParallel(net).state_dict(), p("resnet18_dp.pt"))
    st_save({k: v.contiguous() for k, v in sd.items()}, p("resnet18.safetensors"))
    with open(p("resnet18.json"), "w") as f:
        json.dump(describe(torch.load(p("resnet18.pt")), 4096), f)
    manifest = json.load(open(os.path.join(ROOT, "tests", "fixtures", "io", "manifest.json")))["files"]

    @check("kiln reads PyTorch files and writes its own (cargo test --test io_interop --include-ignored)")
    def _():
        cargo("test", "--test", "io_interop", "--", "--include-ignored", "--test-threads=1", env={"KILN_IO_INTEROP_DIR": OUT})

    for name in manifest:
        path = os.path.join(KOUT, name)

        @check(f"torch.load of kiln-rewritten {name} (weights_only, mmap, no unsafe globals)")
        def _(path=path, name=name):
            if name == "cuda.pt":
                try:
                    torch.load(path)
                    raise AssertionError("cuda-tagged file loaded without map_location on a CPU machine")
                except RuntimeError as e:
                    if "Attempting to deserialize object on a CUDA device" not in str(e):
                        raise
                torch_loads(path, manifest[name], map_location="cpu")
            elif name.startswith("proto"):
                # kiln rewrites protocol 4/5 pickles as protocol 2: now weights_only-loadable.
                torch_loads(path, manifest[name])
            else:
                torch_loads(path, manifest[name])

    @check("torch.load of kiln-made values (all dtypes, views, sharing, params, nesting)")
    def _():
        torch_loads(os.path.join(KOUT, "kiln_values.pt"), json.load(open(os.path.join(KOUT, "kiln_values.json"))))

    @check("kiln ResNet-18 state dict loads strictly into torchvision resnet18")
    def _():
        sdk = torch_loads(os.path.join(KOUT, "kiln_resnet18.pt"), json.load(open(os.path.join(KOUT, "kiln_resnet18.json"))), 4096)
        torchvision.models.resnet18(weights=None).load_state_dict(sdk, strict=True)
        st = st_load(os.path.join(KOUT, "kiln_resnet18.safetensors"))
        assert list(sorted(st)) == sorted(sdk), "safetensors keys differ"
        for k, v in sdk.items():
            assert st[k].dtype == v.dtype and torch.equal(st[k].view(-1).view(torch.uint8), v.contiguous().view(-1).view(torch.uint8)), k

    @check("whole-model file is a weights_only-safe torch.load dict")
    def _():
        path = os.path.join(KOUT, "kiln_whole_model.pt")
        d = torch.load(path)
        assert d["kiln_format"] == "whole-model" and d["format_version"] == 1, d.keys()
        spec = json.loads(d["spec"])
        assert spec["type"] == "LeNet", spec
        assert "fc.weight" in d["state_dict"]
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []

    @check("kiln file tagged cuda:1 needs map_location in torch")
    def _():
        path = os.path.join(KOUT, "kiln_cuda.pt")
        try:
            torch.load(path)
            raise AssertionError("loaded without map_location")
        except RuntimeError as e:
            assert "CUDA" in str(e), e
        w = torch.load(path, map_location={"cuda:1": "cpu"})["w"]
        assert torch.equal(w, torch.tensor([1.0, 2.0])), w

    @check("kiln CLI: build")
    def _():
        cargo("build", "--bin", "kiln")

    @check("kiln convert: DataParallel .pt -> .safetensors --strip-prefix module.")
    def _():
        kiln("convert", p("resnet18_dp.pt"), p("cli.safetensors"), "--strip-prefix", "module.")
        st = st_load(p("cli.safetensors"))
        assert sorted(st) == sorted(sd)
        for k, v in sd.items():
            assert torch.equal(st[k], v), k

    @check("kiln convert --dtype f16 matches torch's .half() bit for bit")
    def _():
        kiln("convert", p("resnet18.pt"), p("cli_f16.pt"), "--dtype", "f16")
        h = torch.load(p("cli_f16.pt"))
        for k, v in sd.items():
            want = v.half() if v.is_floating_point() else v
            assert h[k].dtype == want.dtype and torch.equal(h[k].view(-1).view(torch.uint8) if want.is_floating_point() else h[k], want.view(-1).view(torch.uint8) if want.is_floating_point() else want), k

    @check("kiln convert --add-prefix / --rename / --map-location; torch loads the result")
    def _():
        kiln("convert", p("resnet18.pt"), p("cli_prefixed.pt"), "--add-prefix", "module.", "--rename", r"^module\.fc\.=module.head.")
        d = torch.load(p("cli_prefixed.pt"))
        assert "module.head.weight" in d and "module.conv1.weight" in d, list(d)[:5]
        kiln("convert", os.path.join(ROOT, "tests", "fixtures", "io", "cuda.pt"), p("cli_cpu.pt"), "--map-location", "cpu")
        torch.load(p("cli_cpu.pt"))  # no map_location needed any more

    @check("kiln diff: exit 0 when equal (.pt vs .safetensors), 1 when keys differ")
    def _():
        kiln("diff", p("resnet18.pt"), p("cli.safetensors"))
        kiln("diff", p("resnet18.pt"), p("resnet18_legacy.pt"))
        out = kiln("diff", p("resnet18.pt"), p("resnet18_dp.pt"), expect=1)
        assert "only in A: conv1.weight" in out, out
        kiln("diff", p("resnet18.pt"), p("cli_f16.pt"), expect=1)
        kiln("diff", p("resnet18.pt"), p("cli_f16.pt"), "--atol", "1e-2", expect=1)  # dtypes differ

    @check("kiln inspect --json totals match torch")
    def _():
        j = json.loads(kiln("inspect", "--json", p("resnet18.pt")))
        assert j["total_elements"] == sum(v.numel() for v in sd.values()), j["total_elements"]
        assert j["tensors"] == len(sd)
        j = json.loads(kiln("inspect", "--json", os.path.join(ROOT, "tests", "fixtures", "io", "checkpoint.pt")))
        assert j["locations"] == {"cpu": j["storages"]}

    @check("kiln forward --model resnet18 matches torchvision eval forward")
    def _():
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
        st_save({"input": x}, p("x.safetensors"))
        kiln("forward", "--model", "resnet18", "--weights", p("resnet18.pt"), "--input", p("x.safetensors"), "--output", p("y.safetensors"))
        y = st_load(p("y.safetensors"))["output"]
        net.eval()
        with torch.no_grad():
            want = net(x)
        err = (y - want).abs().max().item()
        assert err < 1e-3, f"max abs error {err}"

    passed = sum(1 for _, ok, _ in RESULTS if ok)
    failed = [(n, m) for n, ok, m in RESULTS if not ok]
    print(f"\ninterop check (torch {torch.__version__}, torchvision {torchvision.__version__}):")
    for n, m in failed:
        print(f"  FAILED {n}: {m[:300]}")
    print(f"{passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
