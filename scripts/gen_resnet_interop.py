#!/usr/bin/env python3
"""Writes torchvision ResNet-18 interop files for tests/nn_interop.rs (not committed: ~150 MB).

Usage: python scripts/gen_resnet_interop.py [OUT_DIR]   (default target/interop)

- resnet18.safetensors: a torchvision resnet18 (1000 classes) state dict, seeded, with every
  BatchNorm's affine parameters and running statistics randomised so eval mode is not the
  identity; resnet18_eval_io.safetensors: an input batch [2, 3, 64, 64] and torchvision's
  eval-mode logits. resnet18.pt: the same state dict written by torch.save (fine-tuning
  test: new 5-class head, all but fc frozen).
- resnet18_train.safetensors: a 10-class resnet18 in training mode on [4, 3, 64, 64] (at least 8 values per
  channel in every BatchNorm; with 2, as [2, 3, 32, 32] gives in layer4, batch statistics are
  too ill-conditioned for a float32 comparison): initial
  state (param.*), input, target, logits, cross-entropy, every parameter's gradient
  (grad.*), the input's gradient, and the state after the step (after.*: BN running stats).
- resnet18_train_f64.safetensors: the same training step in float64 (the tight gradient
  check; see main()).
- manifest.json: torch and torchvision versions.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join("target", "interop")
torch.set_num_threads(max(1, os.cpu_count() or 1))


def randomize_bns(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)


def clone_sd(prefix, model):
    return {f"{prefix}{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    m = torchvision.models.resnet18(weights=None)
    randomize_bns(m)
    m.eval()
    save_file(clone_sd("", m), os.path.join(OUT, "resnet18.safetensors"))
    # The same weights as torch.save writes them (what a fine-tuning user starts from).
    torch.save(m.state_dict(), os.path.join(OUT, "resnet18.pt"))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = m(x)
    save_file({"input": x, "logits": logits}, os.path.join(OUT, "resnet18_eval_io.safetensors"))

    torch.manual_seed(1)
    m = torchvision.models.resnet18(weights=None, num_classes=10)
    randomize_bns(m)
    init = clone_sd("param.", m)
    m.train()
    x = torch.randn(4, 3, 64, 64).requires_grad_(True)
    y = torch.tensor([3, 7, 0, 9])
    out = m(x)
    loss = F.cross_entropy(out, y)
    loss.backward()
    t = {**init, "input": x.detach(), "target": y, "output": out.detach(), "loss": loss.detach(),
         "grad.input": x.grad}
    t.update({f"grad.{n}": p.grad for n, p in m.named_parameters()})
    t.update(clone_sd("after.", m))
    save_file({k: v.contiguous() for k, v in t.items()},
              os.path.join(OUT, "resnet18_train.safetensors"))

    # The same step in float64. In float32 a pre-ReLU value within rounding of zero can land
    # on either side on different CPUs (different SIMD paths, summation orders), and one such
    # flip moves the batch-statistics gradients by percents; in float64 the margins are ~1e9
    # times the rounding, so this is where the gradients are held to a tight tolerance.
    m = torchvision.models.resnet18(weights=None, num_classes=10)
    m.load_state_dict({k[len("param."):]: v for k, v in init.items()})
    m = m.double().train()
    x = t["input"].double().requires_grad_(True)
    out = m(x)
    loss = F.cross_entropy(out, y)
    loss.backward()
    t = {**{k: v.double() if v.is_floating_point() else v for k, v in init.items()},
         "input": x.detach(), "target": y, "output": out.detach(), "loss": loss.detach(),
         "grad.input": x.grad}
    t.update({f"grad.{n}": p.grad for n, p in m.named_parameters()})
    t.update(clone_sd("after.", m))
    save_file({k: v.contiguous() for k, v in t.items()},
              os.path.join(OUT, "resnet18_train_f64.safetensors"))
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__}, f)
    print(f"wrote ResNet-18 interop files to {OUT} (torch {torch.__version__}, "
          f"torchvision {torchvision.__version__})")


if __name__ == "__main__":
    main()
