#!/usr/bin/env python3
"""Generates the PyTorch parity fixtures in tests/fixtures/nn/ with real torch (PyPI).

Each case is one safetensors file (initial weights and buffers, inputs, and what PyTorch
computes: outputs, loss, gradients of every parameter and of the input, buffers after the
step) plus an entry in manifest.json with the layer's configuration and the torch version.
tests/nn_parity.rs feeds the same weights and inputs to kiln and compares.

Usage: python scripts/gen_nn_fixtures.py [OUT_DIR]   (default tests/fixtures/nn)
Deterministic: every case seeds torch's generator itself.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import LeNet, MLP  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "nn"
)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
manifest = {"torch": torch.__version__, "generator": "scripts/gen_nn_fixtures.py", "cases": {}}


def save(name, tensors, **config):
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, os.path.join(OUT, f"{name}.safetensors"))
    manifest["cases"][name] = config


def state(prefix, module):
    # Clone: state_dict() shares storage, and BatchNorm updates its buffers in place.
    return {f"{prefix}.{k}": v.detach().clone() for k, v in module.state_dict().items()}


def grads(module):
    return {f"grad.{n}": p.grad for n, p in module.named_parameters() if p.grad is not None}


def model_case(name, model, x, y, mode):
    """Initial state, logits, cross-entropy and every gradient (parameters and input)."""
    init = state("param", model)
    model.train(mode == "train")
    x = x.clone().requires_grad_(True)
    out = model(x)
    loss = F.cross_entropy(out, y)
    loss.backward()
    save(name, {**init, "input": x, "target": y, "output": out, "loss": loss,
                **grads(model), "grad.input": x.grad}, kind=name.split("_")[0], mode=mode)


def layer_case(name, module, x, mode="train", **config):
    """Output, gradients of `sum(out * R)` for a fixed random R, buffers after, eval output."""
    init = state("param", module)
    module.train(mode == "train")
    x = x.clone().requires_grad_(True)
    out = module(x)
    r = torch.randn(out.shape)
    (out * r).sum().backward()
    tensors = {**init, "input": x, "output": out, "upstream": r, **grads(module),
               "grad.input": x.grad}
    tensors.update(state("after", module))
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        module.eval()
        tensors["eval_output"] = module(x)
    save(name, tensors, mode=mode, **config)


def digits():
    """All 1,797 images of data/digits.bin as [N, 1, 8, 8] floats in [0, 1], and labels."""
    import numpy as np

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "digits.bin")
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[8:12], "little")
    pix = np.frombuffer(raw, dtype=np.uint8, count=n * 64, offset=28).astype(np.float32) / 16.0
    lab = np.frombuffer(raw, dtype=np.uint8, count=n, offset=28 + n * 64).astype(np.int64)
    return torch.from_numpy(pix.copy()).reshape(n, 1, 8, 8), torch.from_numpy(lab.copy())


def randomize_bn(bn):
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)


def main():
    os.makedirs(OUT, exist_ok=True)

    # --- models -------------------------------------------------------------------------
    torch.manual_seed(0)
    x = torch.rand(8, 1, 8, 8)
    y = torch.randint(0, 10, (8,))
    model_case("lenet", LeNet(), x, y, "train")
    torch.manual_seed(1)
    model_case("mlp_eval", MLP(dropout=0.1), torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,)),
               "eval")

    # LeNet trained 20 SGD steps (momentum 0.9, weight decay 1e-4) on digits batches given by
    # index into data/digits.bin (file order), which kiln rebuilds from its embedded copy.
    torch.manual_seed(3)
    lenet = LeNet()
    init = state("param", lenet)
    images, labels = digits()
    idx = torch.stack([torch.randperm(images.shape[0])[:16] for _ in range(20)])
    opt = torch.optim.SGD(lenet.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    losses = []
    lenet.train()
    for b in idx:
        opt.zero_grad()
        loss = F.cross_entropy(lenet(images[b]), labels[b])
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    save("lenet_sgd_trajectory", {**init, "indices": idx, "losses": torch.stack(losses),
                                  **state("after", lenet)},
         kind="lenet", mode="train", steps=20, lr=0.03, momentum=0.9, weight_decay=1e-4)

    # --- convolutions -------------------------------------------------------------------
    convs = {
        "conv_stride2_pad1": dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1,
                                  dilation=1, groups=1, bias=True),
        "conv_groups2_nobias": dict(in_channels=4, out_channels=6, kernel_size=3, stride=1,
                                    padding=1, dilation=1, groups=2, bias=False),
        "conv_depthwise_stride2": dict(in_channels=4, out_channels=4, kernel_size=3, stride=2,
                                       padding=1, dilation=1, groups=4, bias=True),
        "conv_dilation2_pad2": dict(in_channels=3, out_channels=5, kernel_size=3, stride=1,
                                    padding=2, dilation=2, groups=1, bias=True),
        "conv_1x1_stride2_nobias": dict(in_channels=4, out_channels=8, kernel_size=1, stride=2,
                                        padding=0, dilation=1, groups=1, bias=False),
    }
    for i, (name, cfg) in enumerate(convs.items()):
        torch.manual_seed(10 + i)
        layer_case(name, nn.Conv2d(**cfg), torch.randn(2, cfg["in_channels"], 9, 9),
                   kind="conv2d", **cfg)
    # Even sizes with stride 2: the last input row/column is not covered by any window (as in
    # ResNet's stride-2 convs and 1x1 downsamples), so its input gradient must be zero.
    uneven = {
        "conv_stride2_pad1_even_input": dict(in_channels=3, out_channels=4, kernel_size=3, stride=2,
                                             padding=1, dilation=1, groups=1, bias=True),
        "conv_1x1_stride2_even_input": dict(in_channels=3, out_channels=4, kernel_size=1, stride=2,
                                            padding=0, dilation=1, groups=1, bias=False),
    }
    for i, (name, cfg) in enumerate(uneven.items()):
        torch.manual_seed(16 + i)
        layer_case(name, nn.Conv2d(**cfg), torch.randn(2, 3, 8, 8), kind="conv2d", **cfg)

    # --- batch norm ---------------------------------------------------------------------
    torch.manual_seed(20)
    bn = nn.BatchNorm2d(3)
    randomize_bn(bn)
    layer_case("bn2d_train", bn, torch.randn(4, 3, 5, 5) * 2 + 1, kind="batchnorm2d",
               num_features=3, momentum=0.1)
    torch.manual_seed(21)
    bn = nn.BatchNorm2d(3)
    randomize_bn(bn)
    layer_case("bn2d_eval", bn, torch.randn(4, 3, 5, 5), mode="eval", kind="batchnorm2d",
               num_features=3, momentum=0.1)
    torch.manual_seed(22)
    bn = nn.BatchNorm1d(5)
    randomize_bn(bn)
    layer_case("bn1d_train_2d", bn, torch.randn(8, 5) * 3 - 1, kind="batchnorm1d",
               num_features=5, momentum=0.1)
    torch.manual_seed(23)
    bn = nn.BatchNorm1d(5, momentum=0.3)
    randomize_bn(bn)
    layer_case("bn1d_train_3d", bn, torch.randn(4, 5, 6), kind="batchnorm1d", num_features=5,
               momentum=0.3)
    # momentum=None: cumulative moving average over three training steps.
    torch.manual_seed(24)
    bn = nn.BatchNorm2d(2, momentum=None)
    randomize_bn(bn)
    init = state("param", bn)
    xs = [torch.randn(3, 2, 4, 4) + i for i in range(3)]
    bn.train()
    for xi in xs:
        bn(xi)
    save("bn2d_cumulative", {**init, **{f"input{i}": xi for i, xi in enumerate(xs)},
                             **state("after", bn)},
         kind="batchnorm2d", num_features=2, momentum=None, steps=3)

    # --- pooling ------------------------------------------------------------------------
    torch.manual_seed(30)
    tied = torch.round(torch.randn(2, 3, 7, 7) * 2) / 2  # many ties
    layer_case("maxpool_3_2_1_ties", nn.MaxPool2d(3, 2, 1), tied, kind="maxpool2d", kernel_size=3,
               stride=2, padding=1)
    torch.manual_seed(31)
    layer_case("maxpool_2_2_0", nn.MaxPool2d(2), torch.randn(2, 3, 8, 8), kind="maxpool2d",
               kernel_size=2, stride=2, padding=0)
    torch.manual_seed(32)
    layer_case("avgpool_3_2_1", nn.AvgPool2d(3, 2, 1), torch.randn(2, 3, 7, 7), kind="avgpool2d",
               kernel_size=3, stride=2, padding=1)
    torch.manual_seed(33)
    layer_case("avgpool_2_2_1", nn.AvgPool2d(2, 2, 1), torch.randn(2, 3, 6, 6), kind="avgpool2d",
               kernel_size=2, stride=2, padding=1)
    torch.manual_seed(34)
    layer_case("adaptive_avgpool_3x2", nn.AdaptiveAvgPool2d((3, 2)), torch.randn(2, 3, 7, 5),
               kind="adaptive_avgpool2d", output_size=[3, 2])
    torch.manual_seed(35)
    layer_case("adaptive_avgpool_1x1", nn.AdaptiveAvgPool2d((1, 1)), torch.randn(2, 3, 5, 5),
               kind="adaptive_avgpool2d", output_size=[1, 1])

    # --- losses -------------------------------------------------------------------------
    torch.manual_seed(40)
    logits = (torch.randn(6, 5) * 3).requires_grad_(True)
    target = torch.randint(0, 5, (6,))
    loss = F.cross_entropy(logits, target)
    loss.backward()
    save("cross_entropy", {"input": logits, "target": target, "loss": loss,
                           "grad.input": logits.grad}, kind="cross_entropy")
    torch.manual_seed(41)
    inp = torch.randn(4, 3).requires_grad_(True)
    tgt = torch.randn(4, 3)
    loss = F.mse_loss(inp, tgt)
    loss.backward()
    save("mse", {"input": inp, "target": tgt, "loss": loss, "grad.input": inp.grad}, kind="mse")

    # --- ResNet-18 layout (keys, order, shapes) -----------------------------------------
    import torchvision

    manifest["torchvision"] = torchvision.__version__
    sd = torchvision.models.resnet18(weights=None).state_dict()
    with open(os.path.join(OUT, "resnet18_keys.json"), "w") as f:
        json.dump({"torchvision": torchvision.__version__,
                   "keys": [[k, list(v.shape), str(v.dtype).replace("torch.", "")]
                            for k, v in sd.items()]}, f, indent=0)

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    print(f"wrote {len(manifest['cases'])} cases to {OUT} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
