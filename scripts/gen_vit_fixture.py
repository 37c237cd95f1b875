#!/usr/bin/env python3
"""Writes the torchvision ViT-B/16 parity fixture for tests/zoo_vit.rs (not committed: ~350 MB):
a seeded vit_b_16(num_classes=10) with its zero-initialised head and LayerNorms randomised (so
the logits are not all zero), as a state dict (vit_b_16.safetensors, torchvision's keys in
order: keys.json), a [2, 3, 224, 224] input and torchvision's eval-mode logits, plus the same
in float64 (logits64).

    python scripts/gen_vit_fixture.py [OUT_DIR]   (default target/vit-fixture)
"""
import json
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join("target", "vit-fixture")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    net = torchvision.models.vit_b_16(num_classes=10)
    with torch.no_grad():
        net.heads.head.weight.normal_(0, 0.02)
        net.heads.head.bias.uniform_(-0.1, 0.1)
        for m in net.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    net.eval()
    sd = net.state_dict()
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(OUT, "vit_b_16.safetensors"))
    with open(os.path.join(OUT, "keys.json"), "w") as f:
        json.dump([[k, list(v.shape)] for k, v in sd.items()], f)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        y = net(x)
        y64 = net.double()(x.double())
    save_file({"input": x, "logits": y, "logits64": y64}, os.path.join(OUT, "io.safetensors"))
    print(f"wrote {OUT} (torch {torch.__version__}, torchvision {torchvision.__version__})")


if __name__ == "__main__":
    main()
