#!/usr/bin/env python3
"""Generates the whole-module fixtures in tests/fixtures/modules/ with real torch (issue 16).

Every `.pt` here is written by `torch.save(net)` (or `torch.jit.save`), never loaded back by
this script: the malicious ones would run their payload if they were.

- `sequential.pt`: nn.Sequential(Conv2d, BatchNorm2d, ReLU, MaxPool2d, AvgPool2d,
  AdaptiveAvgPool2d, Flatten, Linear, GELU, Dropout, LayerNorm, Identity, Linear) in eval
  mode; `sequential.io.safetensors` holds `input` and `output` of `net(input)`.
- `resnet_tiny.pt`: a `torchvision.models.resnet.ResNet` with BasicBlocks whose widths are
  cut to 8/16/32/64 (same classes, same forward), eval mode, with `resnet_tiny.io.safetensors`.
- `mynet.pt`: a `__main__.MyNet` custom class (a buffer, a non-persistent buffer, a `None`
  parameter, a nested Sequential, an Embedding); `mynet.state.safetensors` is its
  `state_dict()` (bit-exact reference).
- `legacy_sequential.pt`: `sequential`'s net saved with `_use_new_zipfile_serialization=False`.
- `scripted.pt`: `torch.jit.script(MyScripted())`; `scripted.state.safetensors` its state dict.
- `evil_os.pt`, `evil_eval.pt`: modules whose child `__reduce__`s to `os.system('touch
  MARKER')` / `builtins.eval(...)`; `evil_getattr.pt`: a hand-written pickle calling
  `getattr(builtins, 'exec')(...)`. MARKER is `kiln-evil-marker` in the temp directory
  (`/tmp`): tests check it never appears.
- `manifest.json`: `repr(net)` and the state-dict keys of each, and the marker path.
- `--layers DIR` (committed in tests/fixtures/modules): `layers_*.pt`, one whole-module file
  per group of the layers kiln rebuilds (issue 16 item 2) — a Sequential of the convolution,
  normalisation, pooling, upsampling and reshaping layers; an LSTM, a GRU, an LSTMCell and a
  GRUCell saved alone (`output` is `lstm(x)[0]`, the cell's new `h`); a MultiheadAttention
  alone (`attn(x, x, x)[0]`); a TransformerEncoder and a TransformerEncoderLayer; a
  TransformerDecoder (`memory` in its `.io.safetensors`; its layers' `GELU()` module is
  shadowed by the `F.relu` that `TransformerDecoderLayer.__setstate__` gives each deep copy,
  so PyTorch runs ReLU, as kiln does) — eval mode, seed 162, each with
  `layers_*.io.safetensors`; `layers_cases.json` holds their `repr` and keys, and
  `torch_classes`: every nn.Module class `torch.nn.modules` (and the torchvision classes
  kiln names) defines, as `module.name`.

Usage: python scripts/gen_module_fixtures.py [OUT_DIR]      (default tests/fixtures/modules)
       python scripts/gen_module_fixtures.py --big CACHE_DIR (full torchvision resnet18 for
       the #[ignore]d test run by scripts/test.sh; ~45 MB, not committed)
       python scripts/gen_module_fixtures.py --layers tests/fixtures/modules
"""
import json
import os
import sys
import zipfile

import torch
import torchvision
from safetensors.torch import save_file
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

HERE = os.path.dirname(os.path.abspath(__file__))
MARKER = "/tmp/kiln-evil-marker"
torch.manual_seed(16)
torch.set_num_threads(1)


def perturb_bn(net):
    """Non-trivial running statistics, so eval-mode BatchNorm is really tested."""
    g = torch.Generator().manual_seed(3)
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def io_case(out, name, net, x):
    net.eval()
    with torch.no_grad():
        y = net(x)
    torch.save(net, os.path.join(out, f"{name}.pt"))
    save_file({"input": x.contiguous(), "output": y.contiguous()},
              os.path.join(out, f"{name}.io.safetensors"))
    return {"repr": repr(net), "keys": list(net.state_dict().keys())}


def tiny_resnet():
    net = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)
    net.conv1 = nn.Conv2d(3, 8, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(8)
    cin = 8
    for i, w in enumerate([8, 16, 32, 64]):
        stride = 1 if i == 0 else 2
        ds = None
        if stride != 1 or cin != w:
            ds = nn.Sequential(nn.Conv2d(cin, w, 1, stride, bias=False), nn.BatchNorm2d(w))
        setattr(net, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, w, stride, ds)))
        cin = w
    net.fc = nn.Linear(64, 10)
    perturb_bn(net)
    return net


class MyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(7, 3, padding_idx=0)
        self.body = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4, bias=False))
        self.scale = nn.Parameter(torch.randn(4, dtype=torch.float64))
        self.register_parameter("unused", None)
        self.register_buffer("steps", torch.tensor([3, 1, 4], dtype=torch.int64))
        self.register_buffer("cache", torch.zeros(2), persistent=False)
        self.head = nn.Linear(4, 2)
        self.note = "custom attribute"

    def forward(self, ids):
        return self.head(self.body(self.emb(ids)).double().float() * self.scale.float())


class MyScripted(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.bn = nn.BatchNorm1d(3)
        self.register_buffer("offset", torch.arange(3, dtype=torch.float32))

    def forward(self, x):
        return self.bn(self.fc(x)) + self.offset


class SystemPayload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


class EvalPayload:
    def __reduce__(self):
        return (eval, (f"open({MARKER!r}, 'w').write('ran')",))


class Carrier(nn.Module):
    def __init__(self, payload):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.payload = payload


def getattr_gadget(path):
    """getattr(builtins-module-object..., 'exec')(code): GLOBAL builtins getattr, REDUCE."""
    code = f"open({MARKER!r}, 'w').write('ran')".encode()
    pkl = (b"\x80\x02cbuiltins\ngetattr\n"
           b"cbuiltins\n__import__\nX\x08\x00\x00\x00builtins\x85R"
           b"X\x04\x00\x00\x00exec\x86R"
           + b"X" + len(code).to_bytes(4, "little") + code + b"\x85R.")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil_getattr/data.pkl", pkl)
        z.writestr("evil_getattr/version", "3\n")
        z.writestr("evil_getattr/byteorder", "little")


def main(out):
    os.makedirs(out, exist_ok=True)
    manifest = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "generator": "scripts/gen_module_fixtures.py", "marker": MARKER, "cases": {}}
    cases = manifest["cases"]

    seq = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
        nn.MaxPool2d(2), nn.AvgPool2d(2, stride=1, padding=1), nn.AdaptiveAvgPool2d((3, 3)),
        nn.Flatten(), nn.Linear(54, 16), nn.GELU(approximate="tanh"), nn.Dropout(0.25),
        nn.LayerNorm(16, eps=1e-6), nn.Identity(), nn.Linear(16, 5))
    perturb_bn(seq)
    x = torch.randn(2, 3, 8, 8)
    cases["sequential"] = io_case(out, "sequential", seq, x)
    torch.save(seq, os.path.join(out, "legacy_sequential.pt"),
               _use_new_zipfile_serialization=False)
    cases["legacy_sequential"] = cases["sequential"]

    res = tiny_resnet()
    cases["resnet_tiny"] = io_case(out, "resnet_tiny", res, torch.randn(1, 3, 32, 32))

    net = MyNet()
    net.train()
    torch.save(net, os.path.join(out, "mynet.pt"))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              os.path.join(out, "mynet.state.safetensors"))
    cases["mynet"] = {"repr": repr(net), "keys": list(net.state_dict().keys())}

    ts = torch.jit.script(MyScripted().eval())
    torch.jit.save(ts, os.path.join(out, "scripted.pt"))
    save_file({k: v.contiguous() for k, v in ts.state_dict().items()},
              os.path.join(out, "scripted.state.safetensors"))
    cases["scripted"] = {"repr": repr(ts), "keys": list(ts.state_dict().keys())}

    torch.save(Carrier(SystemPayload()), os.path.join(out, "evil_os.pt"))
    torch.save(Carrier(EvalPayload()), os.path.join(out, "evil_eval.pt"))
    getattr_gadget(os.path.join(out, "evil_getattr.pt"))
    cases["evil_os"] = {"global": f"{os.system.__module__}.system"}
    cases["evil_eval"] = {"global": "builtins.eval"}
    cases["evil_getattr"] = {"global": "builtins.getattr"}

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


def big(out):
    os.makedirs(out, exist_ok=True)
    net = torchvision.models.resnet18(num_classes=1000)
    perturb_bn(net)
    info = io_case(out, "resnet18", net, torch.randn(1, 3, 224, 224))
    with open(os.path.join(out, "resnet18.json"), "w") as f:
        json.dump(info, f, indent=1)
    # Other torchvision model classes, rebuilt as the zoo variant whose keys match.
    for name, classes in [("mobilenet_v3_small", 10), ("efficientnet_b0", 5), ("squeezenet1_1", 7)]:
        net = getattr(torchvision.models, name)(num_classes=classes)
        perturb_bn(net)
        io_case(out, name, net, torch.randn(1, 3, 224, 224))


def conv1d_cases(out):
    """`--conv1d DIR`: a Sequential of Conv1d layers (padding='same', stride) and a ModuleDict."""
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(5)
    seq = nn.Sequential(nn.Conv1d(2, 4, 3, padding="same"), nn.ReLU(),
                        nn.Conv1d(4, 3, 3, stride=2, padding=1), nn.Flatten(), nn.Linear(12, 5))
    info = io_case(out, "seq1d", seq, torch.randn(2, 2, 8))
    md = nn.ModuleDict({"proj": nn.Linear(3, 2), "conv": nn.Conv1d(1, 2, 1, bias=False)})
    torch.save(md, os.path.join(out, "moduledict.pt"))
    with open(os.path.join(out, "conv1d_cases.json"), "w") as f:
        json.dump({"seq1d": info, "moduledict": {"repr": repr(md), "keys": list(md.state_dict().keys())}},
                  f, indent=1)
        f.write("\n")


def torch_classes():
    """`module.name` of every nn.Module subclass defined in torch.nn.modules.* and in the
    torchvision packages kiln rebuilds from."""
    import importlib
    import inspect
    import pkgutil
    import torchvision.models
    import torchvision.ops
    out = set()
    for pkg in (torch.nn.modules, torchvision.models, torchvision.ops):
        names = [pkg.__name__] + [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
        for name in names:
            try:
                mod = importlib.import_module(name)
            except Exception:  # optional dependencies of a submodule
                continue
            for _, c in inspect.getmembers(mod, inspect.isclass):
                if issubclass(c, nn.Module) and c.__module__ == name:
                    out.add(f"{c.__module__}.{c.__name__}")
    return sorted(out)


def perturb_norms(net, g):
    """Non-trivial affine parameters and running statistics for every norm layer."""
    with torch.no_grad():
        for m in net.modules():
            for k in ("weight", "bias"):
                t = getattr(m, k, None)
                if isinstance(m, (nn.GroupNorm, nn.InstanceNorm2d, nn.RMSNorm, nn.LayerNorm)) and t is not None:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.2 + (1.0 if k == "weight" else 0.0))
            if isinstance(m, nn.InstanceNorm2d) and m.track_running_stats:
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def layers_cases(out):
    """`--layers DIR`: whole-module files of every layer group kiln rebuilds (#16 item 2)."""
    from torchvision.ops import StochasticDepth
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(162)
    g = torch.Generator().manual_seed(162)
    cases = {}

    def info(net):
        return {"repr": repr(net), "keys": list(net.state_dict().keys())}

    def save(name, net, tensors):
        torch.save(net, os.path.join(out, f"{name}.pt"))
        save_file({k: v.contiguous() for k, v in tensors.items()},
                  os.path.join(out, f"{name}.io.safetensors"))
        cases[name] = info(net)

    conv = nn.Sequential(
        nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1),
        nn.GroupNorm(2, 4, eps=1e-4), nn.ReLU(),
        nn.InstanceNorm2d(4, affine=True, track_running_stats=True),
        nn.InstanceNorm2d(4),
        nn.UpsamplingNearest2d(scale_factor=2),
        nn.Upsample(size=(7, 7), mode="bilinear"),
        nn.UpsamplingBilinear2d(scale_factor=2),
        nn.AdaptiveMaxPool2d((3, 3)), nn.Dropout2d(0.3), nn.Flatten(2),
        nn.MaxPool1d(3, stride=1, padding=1), nn.AvgPool1d(2, padding=1),
        nn.ConvTranspose1d(4, 3, 3, stride=2, bias=False),
        nn.AdaptiveAvgPool1d(4), nn.Dropout1d(0.2), nn.RMSNorm(4, eps=1e-6), nn.Flatten(),
        nn.Linear(12, 6), StochasticDepth(0.2, "row"), nn.Unflatten(1, (2, 3)))
    perturb_norms(conv, g)
    conv.eval()
    x = torch.randn(2, 3, 5, 5, generator=g)
    with torch.no_grad():
        save("layers_conv", conv, {"input": x, "output": conv(x)})

    lstm = nn.LSTM(4, 5, num_layers=2, batch_first=True, dropout=0.1, bidirectional=True, proj_size=3).eval()
    x = torch.randn(2, 6, 4, generator=g)
    with torch.no_grad():
        save("layers_lstm", lstm, {"input": x, "output": lstm(x)[0]})
    gru = nn.GRU(4, 5, num_layers=2, bias=False).eval()
    x = torch.randn(6, 2, 4, generator=g)
    with torch.no_grad():
        save("layers_gru", gru, {"input": x, "output": gru(x)[0]})
    cell = nn.LSTMCell(4, 5).eval()
    x = torch.randn(3, 4, generator=g)
    with torch.no_grad():
        save("layers_lstmcell", cell, {"input": x, "output": cell(x)[0]})
    cell = nn.GRUCell(4, 5, bias=False).eval()
    with torch.no_grad():
        save("layers_grucell", cell, {"input": x, "output": cell(x)})

    mha = nn.MultiheadAttention(8, 2, batch_first=True, add_bias_kv=True, add_zero_attn=True).eval()
    x = torch.randn(2, 5, 8, generator=g)
    with torch.no_grad():
        save("layers_mha", mha, {"input": x, "output": mha(x, x, x)[0]})

    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, activation="gelu",
                                       batch_first=True, norm_first=True)
    enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8), enable_nested_tensor=False)
    perturb_norms(enc, g)
    enc.eval()
    with torch.no_grad():
        save("layers_encoder", enc, {"input": x, "output": enc(x)})
    el = nn.TransformerEncoderLayer(8, 2, 16).eval()
    x = torch.randn(5, 2, 8, generator=g)
    with torch.no_grad():
        save("layers_encoder_layer", el, {"input": x, "output": el(x)})

    dl = nn.TransformerDecoderLayer(8, 2, 16, batch_first=True, activation=nn.GELU(), bias=False)
    dec = nn.TransformerDecoder(dl, 2).eval()
    tgt = torch.randn(2, 4, 8, generator=g)
    mem = torch.randn(2, 5, 8, generator=g)
    with torch.no_grad():
        save("layers_decoder", dec, {"input": tgt, "memory": mem, "output": dec(tgt, mem)})

    manifest = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "generator": "scripts/gen_module_fixtures.py --layers", "cases": cases,
                "torch_classes": torch_classes()}
    with open(os.path.join(out, "layers_cases.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--layers":
        layers_cases(sys.argv[2])
    elif len(sys.argv) > 2 and sys.argv[1] == "--conv1d":
        conv1d_cases(sys.argv[2])
    elif len(sys.argv) > 2 and sys.argv[1] == "--big":
        big(sys.argv[2])
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "fixtures", "modules"))
