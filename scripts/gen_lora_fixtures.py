#!/usr/bin/env python3
"""Generates the LoRA parity fixtures in tests/fixtures/lora/ with real torch.

PEFT is not needed: the twin below is PEFT's `lora.Linear` / `lora.Conv2d` written out by
hand (peft/tuners/lora/layer.py): a frozen base layer, `lora_A` (Linear(in, r) or
Conv2d(in, r, kernel, stride, padding), no bias, kaiming_uniform_(a=sqrt(5))), `lora_B`
(Linear(r, out) or a 1x1 Conv2d(r, out), no bias, zeros), `scaling = lora_alpha / r` and
`y = base(x) + lora_B(lora_A(lora_dropout(x))) * scaling`. Merging is PEFT's
`get_delta_weight`: `B @ A * scaling` for Linear, `conv2d(A.permute(1,0,2,3), B)
.permute(1,0,2,3) * scaling` for a k x k Conv2d.

Each case is one safetensors file (float64) plus an entry in manifest.json: the base
`weight`/`bias`, `lora_A`, `lora_B` (random, so that both gradients are non-zero), the input,
the `output`, the `upstream` weights of the loss `sum(output * upstream)`, the gradients of
that loss w.r.t. `lora_A`, `lora_B` and the input, and the `merged` weight.
`peft_lenet` adds a LeNet adapter written in PEFT's layout by Python (see its docstring).
tests/lora.rs feeds the same tensors to kiln and compares.

Usage: python scripts/gen_lora_fixtures.py [OUT_DIR]   (default tests/fixtures/lora)
"""
import json
import math
import os
import sys

import torch
from safetensors.torch import save_file
from torch import nn
import torch.nn.functional as F

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "lora"
)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)


class LoraLinear(nn.Module):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        self.base_layer = base
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        self.scaling = alpha / r
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        for p in base.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        return self.base_layer(x) + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    def delta(self):
        return self.lora_B.weight @ self.lora_A.weight * self.scaling


class LoraConv2d(nn.Module):
    def __init__(self, base, r, alpha, dropout=0.0):
        super().__init__()
        self.base_layer = base
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = nn.Conv2d(base.in_channels, r, base.kernel_size, base.stride, base.padding,
                                bias=False)
        self.lora_B = nn.Conv2d(r, base.out_channels, (1, 1), (1, 1), bias=False)
        self.scaling = alpha / r
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        for p in base.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        return self.base_layer(x) + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    def delta(self):
        a, b = self.lora_A.weight, self.lora_B.weight
        return F.conv2d(a.permute(1, 0, 2, 3), b).permute(1, 0, 2, 3) * self.scaling


manifest = {"torch": torch.__version__, "generator": "scripts/gen_lora_fixtures.py", "cases": {}}


def case(name, lora, x, **config):
    # A fresh adapter leaves the output unchanged (lora_B is zero).
    assert torch.equal(lora(x), lora.base_layer(x))
    with torch.no_grad():
        lora.lora_B.weight.normal_(0.0, 0.5)
    x = x.clone().requires_grad_(True)
    out = lora(x)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    merged = lora.base_layer.weight + lora.delta()
    # The merged layer computes the same as the adapted one.
    base = lora.base_layer
    if isinstance(base, nn.Linear):
        y = F.linear(x, merged, base.bias)
    else:
        y = F.conv2d(x, merged, base.bias, base.stride, base.padding)
    assert torch.allclose(y, out, atol=1e-12), (y - out).abs().max()
    t = {
        "weight": base.weight, "bias": base.bias,
        "lora_A": lora.lora_A.weight, "lora_B": lora.lora_B.weight,
        "input": x, "output": out, "upstream": upstream,
        "grad.lora_A": lora.lora_A.weight.grad, "grad.lora_B": lora.lora_B.weight.grad,
        "grad.input": x.grad, "merged": merged,
    }
    t = {k: v.detach().contiguous().clone() for k, v in t.items()}
    save_file(t, os.path.join(OUT, f"{name}.safetensors"))
    config["scaling"] = lora.scaling
    manifest["cases"][name] = config


torch.manual_seed(0)
case("linear", LoraLinear(nn.Linear(7, 5), r=3, alpha=6), torch.randn(4, 7),
     kind="linear", in_features=7, out_features=5, r=3, alpha=6)
torch.manual_seed(1)
case("linear_3d", LoraLinear(nn.Linear(6, 4), r=2, alpha=16), torch.randn(2, 3, 6),
     kind="linear", in_features=6, out_features=4, r=2, alpha=16)
torch.manual_seed(2)
case("conv", LoraConv2d(nn.Conv2d(3, 4, 3, stride=2, padding=1), r=2, alpha=4),
     torch.randn(2, 3, 7, 7),
     kind="conv2d", in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1, r=2,
     alpha=4)
torch.manual_seed(3)
case("conv_1x1", LoraConv2d(nn.Conv2d(5, 6, 1), r=4, alpha=2), torch.randn(1, 5, 4, 4),
     kind="conv2d", in_channels=5, out_channels=6, kernel_size=1, stride=1, padding=0, r=4,
     alpha=2)



def peft_lenet():
    """A LeNet (5 classes) with LoRA on conv2, fc1 and fc2 as PEFT wraps and saves it, written
    by hand in PEFT's layout: `lenet_base.safetensors` (the base state dict),
    `lenet_adapter/adapter_config.json` + `adapter_model.safetensors`
    (`base_model.model.<path>.lora_{A,B}.weight`, metadata {"format": "pt"}, the trained head
    as modules_to_save), and `lenet_io.safetensors`: an input batch, the adapted model's
    output (eval mode) and the merged state dict."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_models import LeNet

    torch.manual_seed(4)
    net = LeNet(num_classes=5)
    base = {k: v.detach().clone().float() for k, v in net.state_dict().items()}
    r, alpha = 2, 6
    net.conv2 = LoraConv2d(net.conv2, r, alpha, dropout=0.1)
    net.fc1 = LoraLinear(net.fc1, r, alpha, dropout=0.1)
    net.fc2 = LoraLinear(net.fc2, r, alpha, dropout=0.1)
    with torch.no_grad():
        for m in (net.conv2, net.fc1, net.fc2):
            m.lora_B.weight.normal_(0.0, 0.3)
        net.fc.weight.normal_(0.0, 0.3)  # the "trained" head (modules_to_save)
    net.eval()
    x = torch.rand(6, 1, 8, 8) * 16
    out = net(x)
    adapter = {}
    for name in ("conv2", "fc1", "fc2"):
        m = getattr(net, name)
        adapter[f"base_model.model.{name}.lora_A.weight"] = m.lora_A.weight
        adapter[f"base_model.model.{name}.lora_B.weight"] = m.lora_B.weight
    adapter["base_model.model.fc.weight"] = net.fc.weight
    adapter["base_model.model.fc.bias"] = net.fc.bias
    merged = dict(base)
    for name in ("conv2", "fc1", "fc2"):
        m = getattr(net, name)
        merged[f"{name}.weight"] = (m.base_layer.weight + m.delta()).float()
    merged["fc.weight"], merged["fc.bias"] = net.fc.weight.float(), net.fc.bias.float()
    d = os.path.join(OUT, "lenet_adapter")
    os.makedirs(d, exist_ok=True)
    f32 = lambda t: {k: v.detach().float().contiguous().clone() for k, v in t.items()}
    save_file(f32(adapter), os.path.join(d, "adapter_model.safetensors"), metadata={"format": "pt"})
    save_file(f32(base), os.path.join(OUT, "lenet_base.safetensors"))
    changed = {k: v for k, v in merged.items() if not torch.equal(v, base[k])}
    save_file(f32({"input": x, "output": out, **{f"merged.{k}": v for k, v in changed.items()}}),
              os.path.join(OUT, "lenet_io.safetensors"))
    # PEFT 0.13's LoraConfig.to_dict() fields, as save_pretrained writes them.
    config = {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "lenet-digits",
        "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
        "init_lora_weights": True, "layer_replication": None, "layers_pattern": None,
        "layers_to_transform": None, "loftq_config": {}, "lora_alpha": alpha,
        "lora_dropout": 0.1, "megatron_config": None, "megatron_core": "megatron.core",
        "modules_to_save": ["fc"], "peft_type": "LORA", "r": r, "rank_pattern": {},
        "revision": None, "target_modules": ["fc2", "conv2", "fc1"], "task_type": None,
        "use_dora": False, "use_rslora": False,
    }
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    manifest["lenet"] = {"r": r, "alpha": alpha, "targets": ["conv2", "fc1", "fc2"]}


peft_lenet()

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
    f.write("\n")
print("wrote", len(manifest["cases"]), "cases to", OUT)
