#!/usr/bin/env python3
"""Fixtures for kiln's torchvision model zoo (tests/zoo_keys.rs, tests/zoo_parity.rs).

Usage:
  python scripts/gen_zoo_fixtures.py --keys [OUT_JSON]     (default tests/fixtures/zoo/keys.json,
      committed): for every architecture, torchvision's state-dict keys in order with their
      shapes and dtypes, and the parameter count (`sum(p.numel() for p in m.parameters())`).
  python scripts/gen_zoo_fixtures.py [--out DIR] [ARCH ...]  (default target/zoo-fixtures, not
      committed): the parity fixtures. Skipped when DIR/manifest.json already records this
      script's hash, the torch/torchvision versions and the architectures asked for.

Parity fixtures, per architecture, in DIR/<arch>/:
- weights.json: torchvision's state-dict keys in order, each with its shape and the range
  [lo, hi) its values are drawn from by a counter-based generator (splitmix64 of the element
  index and the key's index; see `fill` below, mirrored in tests/zoo_parity.rs). The weights are
  not stored (VGG alone is 0.5 GB a model): both sides rebuild them bit for bit, torchvision
  loads them with `load_state_dict(strict=True)`, kiln too. BatchNorm affine parameters and
  running statistics are randomised, so eval mode is not the identity.
- eval.safetensors: a 224x224 input batch and torchvision's eval-mode logits (1000 classes),
  in float32 (`logits`) and, from the same weights and input in float64, `logits64` (the
  exact answer: kiln in float64 must match it far more tightly than float32 can).
- train.safetensors: a `num_classes=10` model in training mode (Dropout and StochasticDepth
  switched to eval so both sides are deterministic; BatchNorm uses batch statistics) on a
  small batch, computed in float64 (the weights above, cast): a float32 training step of
  these randomly weighted nets is ill-conditioned (torch's own float32 gradients of
  densenet121 differ from its float64 ones by up to 20 %), float64 makes the comparison
  sharp. Input, target, output, cross-entropy loss, the input's gradient, every parameter's
  gradient (`grad.<name>`; tensors above SAMPLE elements are stored as every k-th element of
  the flattened gradient, k = ceil(n / SAMPLE)) and the BatchNorm running statistics after
  the step (`after.<key>`).
"""
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torchvision.ops import StochasticDepth

# Every architecture of the zoo, in the order `kiln train --help` lists them.
ARCHS = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
    "wide_resnet50_2", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
    "vgg19_bn", "alexnet", "squeezenet1_1", "densenet121", "mobilenet_v2",
    "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_b1",
    "efficientnet_b2", "efficientnet_b3", "convnext_tiny", "convnext_small", "vit_b_16",
]
SAMPLE = 4096
SMOOTH = ("mobilenet", "efficientnet", "convnext", "vit")
M64 = (1 << 64) - 1


def fill(index, shape, lo, hi):
    """The values of state-dict entry number `index`: splitmix64 of (element, index), top 24
    bits as u in [0, 1), then f32(lo + (hi - lo) * u) computed in f64."""
    n = int(np.prod(shape)) if len(shape) else 1
    with np.errstate(over="ignore"):
        z = (np.arange(n, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = z + np.uint64(((index + 1) * 0xD1B54A32D192ED03) & M64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    v = (lo + (hi - lo) * u).astype(np.float32)
    return torch.from_numpy(v.reshape(shape))


def value_range(module, name, shape, gain=6.0):
    """[lo, hi) of a state-dict entry, by the kind of module holding it. Convolution and
    Linear weights are uniform with variance gain/3/fan_in: He's 2/fan_in (gain 6) for the
    ReLU nets, LeCun's 1/fan_in (gain 3) for the nets with smooth activations (SMOOTH), where
    He's scale makes MobileNetV3's logits grow to ~3e3 and its float32 forward ill-conditioned
    (torch's own float32 logits 8e-5 off its float64 ones, against 5e-7 with gain 3)."""
    norm = isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm))
    if norm and name in ("weight", "running_var"):
        return 0.5, 1.5
    if norm:
        return -0.2, 0.2
    if name == "layer_scale":
        return 0.5, 1.5
    if name in ("class_token", "pos_embedding"):
        return -0.5, 0.5
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        b = math.sqrt(gain / fan_in)
        return -b, b
    return -0.1, 0.1


def build(arch, **kw):
    return getattr(torchvision.models, arch)(weights=None, **kw)


def owners(model):
    """state-dict key -> (module, local name)."""
    out = {}
    for mname, m in model.named_modules():
        prefix = f"{mname}." if mname else ""
        for n, _ in m.named_parameters(recurse=False):
            out[prefix + n] = (m, n)
        for n, _ in m.named_buffers(recurse=False):
            out[prefix + n] = (m, n)
    return out


def set_weights(model, arch):
    """Fills the state dict from `fill`; returns the weights.json entries."""
    gain = 3.0 if arch.startswith(SMOOTH) else 6.0
    own = owners(model)
    sd = model.state_dict()
    entries, new = [], {}
    for i, (k, v) in enumerate(sd.items()):
        shape = list(v.shape)
        if v.dtype == torch.int64:
            new[k] = v.clone()
            entries.append({"key": k, "shape": shape, "dtype": "int64"})
            continue
        m, n = own[k]
        lo, hi = value_range(m, n, shape, gain)
        new[k] = fill(i, shape, lo, hi)
        entries.append({"key": k, "shape": shape, "dtype": "float32", "lo": lo, "hi": hi})
    model.load_state_dict(new, strict=True)
    return entries


def deterministic_train(model):
    model.train()
    for m in model.modules():
        if isinstance(m, (torch.nn.Dropout, StochasticDepth)):
            m.eval()


def keys(out_json):
    res = {}
    for arch in ARCHS:
        torch.manual_seed(0)
        m = build(arch)
        res[arch] = {
            "keys": [[k, list(v.shape), str(v.dtype).replace("torch.", "")]
                     for k, v in m.state_dict().items()],
            "num_parameters": sum(p.numel() for p in m.parameters()),
        }
        print(f"{arch}: {len(res[arch]['keys'])} keys, {res[arch]['num_parameters']} parameters")
    os.makedirs(os.path.dirname(out_json), exist_ok=True)
    with open(out_json, "w") as f:
        json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__,
                   "models": res}, f, separators=(",", ":"))
        f.write("\n")


def train_input(arch):
    # ViT needs its 224x224 image size; the convnets take 64x64 (batch 4 keeps at least 16
    # values per channel in every BatchNorm of the last stage).
    return (2, 224) if arch.startswith("vit") else (4, 64)


def parity(arch, out):
    from safetensors.torch import save_file
    d = os.path.join(out, arch)
    os.makedirs(d, exist_ok=True)
    m = build(arch)
    w = set_weights(m, arch)
    with open(os.path.join(d, "weights.json"), "w") as f:
        json.dump({"num_classes": 1000, "entries": w}, f)
    m.eval()
    g = torch.Generator().manual_seed(1)
    batch = 1 if arch.startswith(("vgg", "vit", "resnet152", "convnext_small")) else 2
    x = torch.randn(batch, 3, 224, 224, generator=g)
    with torch.no_grad():
        logits = m(x)
        logits64 = m.double()(x.double())
    save_file({"input": x, "logits": logits.contiguous(), "logits64": logits64.contiguous()},
              os.path.join(d, "eval.safetensors"))

    m = build(arch, num_classes=10)
    w = set_weights(m, arch)
    with open(os.path.join(d, "train_weights.json"), "w") as f:
        json.dump({"num_classes": 10, "entries": w}, f)
    deterministic_train(m)
    m.double()
    n, size = train_input(arch)
    x = torch.randn(n, 3, size, size, generator=g).double().requires_grad_(True)
    y = torch.tensor([3, 7, 0, 9][:n])
    o = m(x)
    loss = F.cross_entropy(o, y)
    loss.backward()
    t = {"input": x.detach(), "target": y, "output": o.detach(), "loss": loss.detach(),
         "grad.input": x.grad}
    for name, p in m.named_parameters():
        gr = p.grad.flatten()
        if gr.numel() > SAMPLE:
            gr = gr[::math.ceil(gr.numel() / SAMPLE)]
        t[f"grad.{name}"] = gr
    for k, v in m.state_dict().items():
        if "running_" in k:
            t[f"after.{k}"] = v
    save_file({k: v.detach().clone().contiguous() for k, v in t.items()},
              os.path.join(d, "train.safetensors"))


def main():
    args = sys.argv[1:]
    if args and args[0] == "--keys":
        keys(args[1] if len(args) > 1 else os.path.join("tests", "fixtures", "zoo", "keys.json"))
        return
    out = os.path.join("target", "zoo-fixtures")
    if args[:1] == ["--out"]:
        out, args = args[1], args[2:]
    archs = args or ARCHS
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with open(__file__, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    manifest = {"script": digest, "torch": torch.__version__,
                "torchvision": torchvision.__version__, "sample": SAMPLE}
    path = os.path.join(out, "manifest.json")
    done = {}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if {k: old.get(k) for k in manifest} == manifest:
            done = {a: True for a in old.get("archs", [])}
    todo = [a for a in archs if a not in done]
    for a in todo:
        torch.manual_seed(0)
        parity(a, out)
        print(f"wrote {a}", flush=True)
        done[a] = True
        with open(path, "w") as f:
            json.dump({**manifest, "archs": sorted(done)}, f)
    if not todo:
        print(f"zoo fixtures in {out} are up to date")


if __name__ == "__main__":
    main()
