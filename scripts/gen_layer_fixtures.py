#!/usr/bin/env python3
"""Generates the PyTorch parity fixtures in tests/fixtures/layers/ with real torch.

Covers the layers of issue 13 (BatchNorm1d/2d, LayerNorm, Embedding, GELU), the activations
of issue 14 and its losses. Each case is one safetensors file plus an entry in manifest.json:

- layers: initial state (`param.<key>`), the input (`input`, or integer `ids`), `output`,
  the upstream weights `upstream` of the loss `sum(output * upstream)`, the gradients of that
  loss w.r.t. the input (`grad.input`) and every parameter (`grad.<name>`), the state after
  the forward (`after.<key>`), and for BatchNorm the eval-mode output (`eval_output`). The
  manifest records the layer's config, `repr(module)` and its `state_dict()` keys, shapes and
  dtypes.
- losses: `input`, `target` (and `weight` / `pos_weight`), the loss `output` for the
  configuration in the manifest, and `grad.input` of `sum(output * upstream)`.

tests/layers_parity.rs feeds the same weights and inputs to kiln and compares.

Usage: python scripts/gen_layer_fixtures.py [OUT_DIR]   (default tests/fixtures/layers)
Deterministic: every case seeds torch's generator itself.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "layers"
)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
manifest = {"torch": torch.__version__, "generator": "scripts/gen_layer_fixtures.py",
            "cases": {}}

DTYPES = {torch.float32: "f32", torch.float64: "f64", torch.int64: "i64"}


def save(name, tensors, **config):
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, os.path.join(OUT, f"{name}.safetensors"))
    manifest["cases"][name] = config


def state(prefix, module):
    # Clone: state_dict() shares storage, and BatchNorm updates its buffers in place.
    return {f"{prefix}.{k}": v.detach().clone() for k, v in module.state_dict().items()}


def state_keys(module):
    return [[k, list(v.shape), DTYPES[v.dtype]] for k, v in module.state_dict().items()]


def layer_case(name, module, x, mode="train", **config):
    """Output, gradients of `sum(out * R)` for a fixed random R, state after, eval output."""
    init = state("param", module)
    module.train(mode == "train")
    floating = x.is_floating_point()
    if floating:
        x = x.clone().requires_grad_(True)
    # A clone, so in-place activations (inplace=True) leave the leaf input intact.
    out = module(x.clone() if floating else x)
    r = torch.randn(out.shape, dtype=out.dtype)
    (out * r).sum().backward()
    tensors = {**init, ("input" if floating else "ids"): x, "output": out, "upstream": r}
    tensors.update({f"grad.{n}": p.grad for n, p in module.named_parameters()})
    if floating:
        tensors["grad.input"] = x.grad
    tensors.update(state("after", module))
    if isinstance(module, (nn.modules.batchnorm._BatchNorm,
                           nn.modules.instancenorm._InstanceNorm)):
        module.eval()
        tensors["eval_output"] = module(x)
    save(name, tensors, mode=mode, repr=repr(module), state_dict=state_keys(module), **config)


def randomize(module):
    with torch.no_grad():
        for n, p in module.named_parameters():
            if n.endswith("weight") and not isinstance(module, nn.Embedding):
                p.uniform_(0.5, 1.5)
            elif n.endswith("bias"):
                p.uniform_(-0.5, 0.5)
        if getattr(module, "running_mean", None) is not None:
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)


def layers():
    # --- BatchNorm1d / BatchNorm2d ----------------------------------------------------
    bn_cases = [
        ("bn2d_train", nn.BatchNorm2d(3), (4, 3, 5, 5), "train", {}),
        ("bn2d_eval", nn.BatchNorm2d(3), (4, 3, 5, 5), "eval", {}),
        ("bn2d_momentum_none_no_affine", nn.BatchNorm2d(2, momentum=None, affine=False),
         (3, 2, 4, 4), "train", {"momentum": None, "affine": False}),
        ("bn1d_train_2d", nn.BatchNorm1d(5), (8, 5), "train", {}),
        ("bn1d_train_3d", nn.BatchNorm1d(5, momentum=0.3, eps=1e-3), (4, 5, 6), "train",
         {"momentum": 0.3, "eps": 1e-3}),
        ("bn1d_eval_3d", nn.BatchNorm1d(5), (4, 5, 6), "eval", {}),
        ("bn1d_no_running_stats", nn.BatchNorm1d(4, track_running_stats=False), (6, 4), "eval",
         {"track_running_stats": False}),
    ]
    for i, (name, bn, shape, mode, cfg) in enumerate(bn_cases):
        torch.manual_seed(100 + i)
        randomize(bn)
        kind = "batchnorm2d" if isinstance(bn, nn.BatchNorm2d) else "batchnorm1d"
        full = {"num_features": bn.num_features, "eps": bn.eps, "momentum": bn.momentum,
                "affine": bn.affine, "track_running_stats": bn.track_running_stats, **cfg}
        layer_case(name, bn, torch.randn(*shape) * 2 + 0.5, mode=mode, kind=kind, **full)

    # --- LayerNorm --------------------------------------------------------------------
    ln_cases = [
        ("layernorm_last_dim", [6], {}, (3, 4, 6)),
        ("layernorm_two_dims", [4, 6], {}, (3, 4, 6)),
        ("layernorm_no_bias_eps", [5], {"bias": False, "eps": 1e-3}, (7, 5)),
        ("layernorm_no_affine", [2, 3], {"elementwise_affine": False}, (2, 2, 3)),
    ]
    for i, (name, shape, cfg, xshape) in enumerate(ln_cases):
        torch.manual_seed(200 + i)
        ln = nn.LayerNorm(shape, **cfg)
        randomize(ln)
        full = {"normalized_shape": shape, "eps": ln.eps,
                "elementwise_affine": ln.elementwise_affine,
                "bias": ln.bias is not None}
        layer_case(name, ln, torch.randn(*xshape) * 3 + 1, kind="layernorm", **full)

    # --- Embedding --------------------------------------------------------------------
    torch.manual_seed(300)
    emb = nn.Embedding(10, 4, padding_idx=2)
    ids = torch.tensor([[1, 2, 3, 2, 9], [0, 0, 2, 7, 1], [5, 4, 2, 8, 6]])
    layer_case("embedding_padding_idx", emb, ids, kind="embedding", num_embeddings=10,
               embedding_dim=4, padding_idx=2)
    torch.manual_seed(301)
    emb = nn.Embedding(7, 3)
    layer_case("embedding_1d_ids", emb, torch.tensor([6, 0, 3, 3, 1]), kind="embedding",
               num_embeddings=7, embedding_dim=3, padding_idx=None)
    torch.manual_seed(302)
    emb = nn.Embedding(6, 2, padding_idx=-1)
    layer_case("embedding_negative_padding_idx", emb, torch.tensor([[5, 0], [5, 1]]),
               kind="embedding", num_embeddings=6, embedding_dim=2, padding_idx=-1)

    # --- GELU ---------------------------------------------------------------------------
    for i, approx in enumerate(["none", "tanh"]):
        torch.manual_seed(400 + i)
        x = torch.cat([torch.randn(40) * 3, torch.tensor([0.0, -1e-3, 5.0, -5.0, 10.0, -10.0])])
        layer_case(f"gelu_{approx}", nn.GELU(approximate=approx), x.reshape(2, 23),
                   kind="gelu", approximate=approx)


def special_points():
    """Random values plus the kinks and thresholds of the activations."""
    base = torch.randn(60) * 4
    pts = torch.tensor([0.0, -0.0, 1e-4, -1e-4, 3.0, -3.0, 6.0, 2.999, -2.999, 25.0, -25.0,
                        90.0, -90.0, 10.0, 10.5, 19.99, 20.01])
    return torch.cat([base, pts]).reshape(7, 11)


def activations():
    cases = [
        ("silu", nn.SiLU(), {}),
        ("sigmoid", nn.Sigmoid(), {}),
        ("tanh", nn.Tanh(), {}),
        ("leaky_relu", nn.LeakyReLU(), {"negative_slope": 0.01}),
        ("leaky_relu_0.2", nn.LeakyReLU(0.2, inplace=True), {"negative_slope": 0.2,
                                                               "inplace": True}),
        ("elu", nn.ELU(), {"alpha": 1.0}),
        ("elu_alpha_0.5", nn.ELU(alpha=0.5), {"alpha": 0.5}),
        ("hardswish", nn.Hardswish(), {}),
        ("hardsigmoid", nn.Hardsigmoid(), {}),
        ("mish", nn.Mish(), {}),
        ("softplus", nn.Softplus(), {"beta": 1.0, "threshold": 20.0}),
        ("softplus_beta2_t10", nn.Softplus(beta=2.0, threshold=10.0),
         {"beta": 2.0, "threshold": 10.0}),
        ("relu6", nn.ReLU6(), {}),
    ]
    for i, (name, m, cfg) in enumerate(cases):
        torch.manual_seed(500 + i)
        layer_case(f"act_{name}", m, special_points(), kind=type(m).__name__, **cfg)
    for i, (cls, dim, shape) in enumerate([(nn.Softmax, 1, (3, 5)), (nn.Softmax, 0, (4, 3)),
                                           (nn.LogSoftmax, 1, (3, 5)),
                                           (nn.LogSoftmax, -1, (2, 3, 4))]):
        torch.manual_seed(600 + i)
        x = torch.randn(*shape) * 5
        x.view(-1)[0] = 1000.0  # stability: a naive exp overflows
        name = f"act_{cls.__name__.lower()}_dim{dim}_{'x'.join(map(str, shape))}"
        layer_case(name, cls(dim=dim), x, kind=cls.__name__, dim=dim)


def conv_pool_layers():
    """Issue 14 item 1: convolutions (grouped, depthwise, dilated, 'same', transposed),
    1-D and adaptive pooling, Upsample."""
    cases = [
        ("conv2d_groups_dilation", nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2),
         (2, 4, 7, 8), {"kind": "conv2d", "cin": 4, "cout": 6, "k": 3, "stride": 2,
                        "padding": 2, "dilation": 2, "groups": 2, "bias": True}),
        ("conv2d_depthwise_same", nn.Conv2d(4, 4, 3, padding="same", groups=4),
         (2, 4, 5, 6), {"kind": "conv2d", "cin": 4, "cout": 4, "k": 3, "stride": 1,
                        "padding": "same", "dilation": 1, "groups": 4, "bias": True}),
        ("conv2d_same_even_kernel", nn.Conv2d(3, 4, 4, padding="same", dilation=1, bias=False),
         (1, 3, 6, 5), {"kind": "conv2d", "cin": 3, "cout": 4, "k": 4, "stride": 1,
                        "padding": "same", "dilation": 1, "groups": 1, "bias": False}),
        ("conv2d_depthwise_multiplier", nn.Conv2d(3, 6, 3, stride=1, padding=1, groups=3),
         (2, 3, 5, 5), {"kind": "conv2d", "cin": 3, "cout": 6, "k": 3, "stride": 1,
                        "padding": 1, "dilation": 1, "groups": 3, "bias": True}),
        ("conv1d_groups_dilation", nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2),
         (2, 4, 11), {"kind": "conv1d", "cin": 4, "cout": 6, "k": 3, "stride": 2,
                      "padding": 1, "dilation": 2, "groups": 2, "bias": True}),
        ("conv1d_same", nn.Conv1d(3, 2, 4, padding="same", bias=False),
         (2, 3, 9), {"kind": "conv1d", "cin": 3, "cout": 2, "k": 4, "stride": 1,
                     "padding": "same", "dilation": 1, "groups": 1, "bias": False}),
        ("convt1d_output_padding_groups",
         nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
         (2, 4, 5), {"kind": "convt1d", "cin": 4, "cout": 6, "k": 3, "stride": 2, "padding": 1,
                     "output_padding": 1, "dilation": 1, "groups": 2, "bias": True}),
        ("convt2d_output_padding",
         nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
         (2, 4, 3, 4), {"kind": "convt2d", "cin": 4, "cout": 2, "k": 3, "stride": 2,
                        "padding": 1, "output_padding": 1, "dilation": 1, "groups": 1,
                        "bias": True}),
        ("convt2d_dilation_groups_no_bias",
         nn.ConvTranspose2d(4, 6, 3, padding=2, dilation=2, groups=2, bias=False),
         (1, 4, 4, 5), {"kind": "convt2d", "cin": 4, "cout": 6, "k": 3, "stride": 1,
                        "padding": 2, "output_padding": 0, "dilation": 2, "groups": 2,
                        "bias": False}),
        ("convt2d_padding_crops", nn.ConvTranspose2d(2, 3, 2, stride=3, padding=2),
         (1, 2, 4, 4), {"kind": "convt2d", "cin": 2, "cout": 3, "k": 2, "stride": 3,
                        "padding": 2, "output_padding": 0, "dilation": 1, "groups": 1,
                        "bias": True}),
        ("maxpool1d", nn.MaxPool1d(3, stride=2, padding=1), (2, 3, 10),
         {"kind": "maxpool1d", "k": 3, "stride": 2, "padding": 1, "dilation": 1}),
        ("maxpool1d_dilation", nn.MaxPool1d(2, stride=1, dilation=2), (2, 2, 7),
         {"kind": "maxpool1d", "k": 2, "stride": 1, "padding": 0, "dilation": 2}),
        ("avgpool1d", nn.AvgPool1d(3, stride=2, padding=1), (2, 3, 10),
         {"kind": "avgpool1d", "k": 3, "stride": 2, "padding": 1}),
        ("adaptive_avgpool1d", nn.AdaptiveAvgPool1d(4), (2, 3, 10),
         {"kind": "adaptive_avgpool1d", "out": [4]}),
        ("adaptive_maxpool2d", nn.AdaptiveMaxPool2d((2, 3)), (2, 3, 5, 7),
         {"kind": "adaptive_maxpool2d", "out": [2, 3]}),
        ("adaptive_avgpool2d_3x2", nn.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 5),
         {"kind": "adaptive_avgpool2d", "out": [3, 2]}),
        ("upsample_nearest_scale2", nn.Upsample(scale_factor=2), (1, 2, 3, 4),
         {"kind": "upsample", "mode": "nearest", "scale_factor": 2.0}),
        ("upsample_nearest_size", nn.Upsample(size=(5, 7)), (1, 2, 3, 4),
         {"kind": "upsample", "mode": "nearest", "size": [5, 7]}),
        ("upsample_nearest_1d_scale3", nn.Upsample(scale_factor=3), (2, 2, 4),
         {"kind": "upsample", "mode": "nearest", "scale_factor": 3.0}),
        ("upsample_bilinear_align_corners",
         nn.Upsample(size=(5, 7), mode="bilinear", align_corners=True), (1, 2, 3, 4),
         {"kind": "upsample", "mode": "bilinear", "size": [5, 7], "align_corners": True}),
        ("upsample_bilinear_scale1.5",
         nn.Upsample(scale_factor=1.5, mode="bilinear", align_corners=False), (1, 2, 4, 5),
         {"kind": "upsample", "mode": "bilinear", "scale_factor": 1.5, "align_corners": False}),
        ("upsample_bilinear_down_size",
         nn.Upsample(size=(3, 2), mode="bilinear"), (2, 1, 5, 6),
         {"kind": "upsample", "mode": "bilinear", "size": [3, 2], "align_corners": None}),
    ]
    for i, (name, m, shape, cfg) in enumerate(cases):
        torch.manual_seed(800 + i)
        layer_case(name, m, torch.randn(*shape) * 2, **cfg)
    torch.manual_seed(860)
    layer_case("maxpool2d_ceil_mode", nn.MaxPool2d(3, stride=2, ceil_mode=True),
               torch.randn(2, 3, 8, 7), kind="maxpool2d", k=3, stride=2, padding=0)
    layer_case("maxpool2d_ceil_mode_padding_rule", nn.MaxPool2d(2, 2, padding=1, ceil_mode=True),
               torch.randn(1, 2, 5, 5), kind="maxpool2d", k=2, stride=2, padding=1)
    # Ties (the zeros after a ReLU, repeated values): PyTorch's gradient goes to the first
    # maximum of each window only.
    torch.manual_seed(850)
    x = torch.randn(2, 3, 9).clamp(min=0.0).round()
    layer_case("maxpool1d_ties", nn.MaxPool1d(3, stride=2, padding=1), x, kind="maxpool1d",
               k=3, stride=2, padding=1, dilation=1)
    x = torch.randn(2, 2, 5, 6).clamp(min=0.0).round()
    layer_case("adaptive_maxpool2d_ties", nn.AdaptiveMaxPool2d((2, 3)), x,
               kind="adaptive_maxpool2d", out=[2, 3])


def norm_layers():
    """Issue 14 items 2 and 5: GroupNorm, InstanceNorm2d, RMSNorm, Unflatten, named
    Sequential."""
    cases = [
        ("groupnorm", nn.GroupNorm(2, 6), (3, 6, 4, 4), "train",
         {"kind": "groupnorm", "groups": 2, "channels": 6, "eps": 1e-5, "affine": True}),
        ("groupnorm_no_affine_3d", nn.GroupNorm(3, 6, eps=1e-3, affine=False), (2, 6, 5), "train",
         {"kind": "groupnorm", "groups": 3, "channels": 6, "eps": 1e-3, "affine": False}),
        ("instancenorm2d", nn.InstanceNorm2d(3), (2, 3, 4, 5), "train",
         {"kind": "instancenorm2d", "features": 3, "eps": 1e-5, "momentum": 0.1,
          "affine": False, "track_running_stats": False}),
        ("instancenorm2d_affine_track_train",
         nn.InstanceNorm2d(3, momentum=0.2, affine=True, track_running_stats=True),
         (2, 3, 4, 5), "train",
         {"kind": "instancenorm2d", "features": 3, "eps": 1e-5, "momentum": 0.2,
          "affine": True, "track_running_stats": True}),
        ("instancenorm2d_track_eval",
         nn.InstanceNorm2d(3, track_running_stats=True), (2, 3, 4, 5), "eval",
         {"kind": "instancenorm2d", "features": 3, "eps": 1e-5, "momentum": 0.1,
          "affine": False, "track_running_stats": True}),
        ("rmsnorm", nn.RMSNorm([6]), (3, 4, 6), "train",
         {"kind": "rmsnorm", "shape": [6], "eps": None, "affine": True}),
        ("rmsnorm_two_dims_eps", nn.RMSNorm([4, 6], eps=1e-3), (3, 4, 6), "train",
         {"kind": "rmsnorm", "shape": [4, 6], "eps": 1e-3, "affine": True}),
        ("rmsnorm_no_affine", nn.RMSNorm(5, elementwise_affine=False), (7, 5), "train",
         {"kind": "rmsnorm", "shape": [5], "eps": None, "affine": False}),
        ("unflatten", nn.Unflatten(1, (2, 3)), (4, 6), "train",
         {"kind": "unflatten", "dim": 1, "sizes": [2, 3]}),
        ("unflatten_neg_dim_infer", nn.Unflatten(-1, (-1, 2)), (2, 3, 8), "train",
         {"kind": "unflatten", "dim": -1, "sizes": [-1, 2]}),
    ]
    for i, (name, m, shape, mode, cfg) in enumerate(cases):
        torch.manual_seed(900 + i)
        randomize(m)
        layer_case(name, m, torch.randn(*shape) * 2 + 0.3, mode=mode, **cfg)

    from collections import OrderedDict
    torch.manual_seed(950)
    seq = nn.Sequential(OrderedDict([("conv", nn.Conv2d(2, 4, 3, padding=1)),
                                     ("norm", nn.GroupNorm(2, 4)), ("act", nn.SiLU()),
                                     ("pool", nn.AdaptiveAvgPool2d((2, 2))),
                                     ("flat", nn.Flatten()), ("fc", nn.Linear(16, 3))]))
    randomize(seq.norm)
    layer_case("sequential_named", seq, torch.randn(2, 2, 5, 5), kind="sequential_named")
    torch.manual_seed(951)
    md = nn.ModuleDict(OrderedDict([("proj", nn.Linear(4, 3)), ("act", nn.ReLU()),
                                    ("norm", nn.LayerNorm(3)),
                                    ("up", nn.ConvTranspose1d(3, 2, 2))]))
    save("module_dict", state("param", md), kind="module_dict", repr=repr(md),
         state_dict=state_keys(md))


def loss_case(name, fn, inp, target, extra=None, **config):
    """`fn(input, target, **extra)`; gradient of `sum(out * upstream)` w.r.t. the input."""
    inp = inp.clone().requires_grad_(True)
    extra = extra or {}
    out = fn(inp, target, **extra)
    r = torch.randn(out.shape, dtype=out.dtype)
    (out * r).sum().backward()
    tensors = {"input": inp, "target": target, "output": out, "upstream": r,
               "grad.input": inp.grad}
    for k, v in extra.items():
        if isinstance(v, torch.Tensor):
            tensors[k] = v
    config = {k: v for k, v in config.items()}
    save(name, tensors, **config)


def losses():
    seed = 700
    for reduction in ["mean", "sum", "none"]:
        seed += 1
        torch.manual_seed(seed)
        x, y = torch.randn(6, 4) * 2, torch.tensor([0, 3, 1, 1, 2, 3])
        loss_case(f"ce_{reduction}", F.cross_entropy, x, y, {"reduction": reduction},
                  kind="cross_entropy", reduction=reduction)
    torch.manual_seed(710)
    x, y = torch.randn(6, 4) * 2, torch.tensor([0, 3, -100, 1, 2, 3])
    w = torch.tensor([0.5, 1.0, 2.0, 1.5])
    for reduction in ["mean", "sum", "none"]:
        loss_case(f"ce_weight_ignore_{reduction}", F.cross_entropy, x, y,
                  {"weight": w, "ignore_index": -100, "reduction": reduction},
                  kind="cross_entropy", reduction=reduction, ignore_index=-100)
    torch.manual_seed(711)
    x, y = torch.randn(6, 4) * 2, torch.tensor([0, 3, 1, 1, 2, 3])
    for reduction in ["mean", "none"]:
        loss_case(f"ce_smoothing_{reduction}", F.cross_entropy, x, y,
                  {"label_smoothing": 0.1, "reduction": reduction},
                  kind="cross_entropy", reduction=reduction, label_smoothing=0.1)
    loss_case("ce_weight_smoothing_ignore_mean", F.cross_entropy, x,
              torch.tensor([0, 3, 1, 1, 2, 1]),
              {"weight": w, "label_smoothing": 0.2, "ignore_index": 1},
              kind="cross_entropy", reduction="mean", label_smoothing=0.2, ignore_index=1)
    torch.manual_seed(712)
    x = torch.randn(5, 4) * 2
    p = torch.softmax(torch.randn(5, 4), dim=1)
    loss_case("ce_probs_mean", F.cross_entropy, x, p, {}, kind="cross_entropy",
              reduction="mean")
    loss_case("ce_probs_weight_smoothing_sum", F.cross_entropy, x, p,
              {"weight": w, "label_smoothing": 0.1, "reduction": "sum"},
              kind="cross_entropy", reduction="sum", label_smoothing=0.1)
    torch.manual_seed(713)
    x, y = torch.randn(3, 4, 5) * 2, torch.randint(0, 4, (3, 5))
    loss_case("ce_spatial_mean", F.cross_entropy, x, y, {}, kind="cross_entropy",
              reduction="mean")

    torch.manual_seed(720)
    lp = torch.log_softmax(torch.randn(6, 4), dim=1)
    y = torch.tensor([0, 3, 2, 1, 2, 3])
    for reduction in ["mean", "sum", "none"]:
        loss_case(f"nll_weight_ignore_{reduction}", F.nll_loss, lp, y,
                  {"weight": w, "ignore_index": 2, "reduction": reduction},
                  kind="nll_loss", reduction=reduction, ignore_index=2)

    torch.manual_seed(730)
    prob = torch.rand(4, 3) * 0.98 + 0.01
    tgt = torch.rand(4, 3)
    bw = torch.rand(4, 3) + 0.5
    for reduction in ["mean", "sum", "none"]:
        loss_case(f"bce_{reduction}", F.binary_cross_entropy, prob, tgt,
                  {"reduction": reduction}, kind="binary_cross_entropy", reduction=reduction)
    loss_case("bce_weight_mean", F.binary_cross_entropy, prob, tgt, {"weight": bw},
              kind="binary_cross_entropy", reduction="mean")
    torch.manual_seed(731)
    logits = torch.randn(4, 3) * 4
    logits[0, 0] = 60.0
    logits[0, 1] = -60.0
    pw = torch.tensor([0.5, 2.0, 3.0])
    for reduction in ["mean", "sum", "none"]:
        loss_case(f"bce_logits_{reduction}", F.binary_cross_entropy_with_logits, logits, tgt,
                  {"reduction": reduction}, kind="binary_cross_entropy_with_logits",
                  reduction=reduction)
    loss_case("bce_logits_pos_weight_weight_mean", F.binary_cross_entropy_with_logits, logits,
              tgt, {"weight": bw, "pos_weight": pw}, kind="binary_cross_entropy_with_logits",
              reduction="mean")

    torch.manual_seed(740)
    a, b = torch.randn(3, 5) * 2, torch.randn(3, 5) * 2
    b[0, 0] = a[0, 0] + 0.5  # inside the smooth_l1 / huber quadratic zone
    b[0, 1] = a[0, 1] - 0.2
    for reduction in ["mean", "sum", "none"]:
        loss_case(f"mse_{reduction}", F.mse_loss, a, b, {"reduction": reduction},
                  kind="mse_loss", reduction=reduction)
        loss_case(f"l1_{reduction}", F.l1_loss, a, b, {"reduction": reduction},
                  kind="l1_loss", reduction=reduction)
        loss_case(f"smooth_l1_{reduction}", F.smooth_l1_loss, a, b,
                  {"reduction": reduction, "beta": 1.0}, kind="smooth_l1_loss",
                  reduction=reduction, beta=1.0)
        loss_case(f"huber_{reduction}", F.huber_loss, a, b,
                  {"reduction": reduction, "delta": 1.5}, kind="huber_loss",
                  reduction=reduction, delta=1.5)
    loss_case("smooth_l1_beta0.5_mean", F.smooth_l1_loss, a, b, {"beta": 0.5},
              kind="smooth_l1_loss", reduction="mean", beta=0.5)

    torch.manual_seed(750)
    inp = torch.log_softmax(torch.randn(4, 5), dim=1)
    tp = torch.softmax(torch.randn(4, 5), dim=1)
    tp[0, 0] = 0.0  # 0 * log 0 counts as 0
    for reduction in ["batchmean", "mean", "sum", "none"]:
        loss_case(f"kl_div_{reduction}", F.kl_div, inp, tp, {"reduction": reduction},
                  kind="kl_div", reduction=reduction, log_target=False)
    loss_case("kl_div_log_target_batchmean", F.kl_div, inp, torch.log_softmax(
        torch.randn(4, 5), dim=1), {"reduction": "batchmean", "log_target": True},
        kind="kl_div", reduction="batchmean", log_target=True)


def multi_loss_case(name, fn, inputs, target, extra, **config):
    """`fn(*inputs, target, **extra)`; gradients of `sum(out * upstream)` w.r.t. each input
    (saved as `grad.<name>`)."""
    ins = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    args = list(ins.values()) + ([] if target is None else [target])
    out = fn(*args, **extra)
    r = torch.randn(out.shape, dtype=out.dtype)
    (out * r).sum().backward()
    tensors = {**ins, "output": out, "upstream": r}
    if target is not None:
        tensors["target"] = target
    tensors.update({f"grad.{k}": v.grad for k, v in ins.items()})
    save(name, tensors, inputs=list(ins.keys()), **config)


def ranking_losses():
    """Issue 14 item 6: cosine embedding, margin ranking, triplet margin."""
    seed = 1000
    for reduction in ["mean", "sum", "none"]:
        seed += 1
        torch.manual_seed(seed)
        x1, x2 = torch.randn(5, 4), torch.randn(5, 4)
        x2[0] = x1[0] * 0.9 + 0.05  # a near-parallel pair
        y = torch.tensor([1, -1, 1, -1, -1])
        multi_loss_case(f"cosine_embedding_{reduction}", F.cosine_embedding_loss,
                        {"x1": x1, "x2": x2}, y, {"margin": 0.2, "reduction": reduction},
                        kind="cosine_embedding_loss", reduction=reduction, margin=0.2)
        x1, x2 = torch.randn(6), torch.randn(6)
        y = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, -1.0])
        multi_loss_case(f"margin_ranking_{reduction}", F.margin_ranking_loss,
                        {"x1": x1, "x2": x2}, y, {"margin": 0.5, "reduction": reduction},
                        kind="margin_ranking_loss", reduction=reduction, margin=0.5)
        a, p, n = torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 4)
        multi_loss_case(f"triplet_{reduction}", F.triplet_margin_loss,
                        {"anchor": a, "positive": p, "negative": n}, None,
                        {"margin": 1.0, "reduction": reduction},
                        kind="triplet_margin_loss", reduction=reduction, margin=1.0, p=2.0,
                        eps=1e-6, swap=False)
    torch.manual_seed(1010)
    a, p, n = torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 4)
    multi_loss_case("triplet_swap_p1_margin2", F.triplet_margin_loss,
                    {"anchor": a, "positive": p, "negative": n}, None,
                    {"margin": 2.0, "p": 1.0, "swap": True},
                    kind="triplet_margin_loss", reduction="mean", margin=2.0, p=1.0,
                    eps=1e-6, swap=True)
    multi_loss_case("triplet_p3_eps", F.triplet_margin_loss,
                    {"anchor": a, "positive": p, "negative": n}, None,
                    {"margin": 0.5, "p": 3.0, "eps": 1e-3},
                    kind="triplet_margin_loss", reduction="mean", margin=0.5, p=3.0,
                    eps=1e-3, swap=False)
    x1, x2 = torch.randn(4), torch.randn(4)
    multi_loss_case("cosine_embedding_1d", F.cosine_embedding_loss, {"x1": x1, "x2": x2},
                    torch.tensor(-1), {"margin": -0.5}, kind="cosine_embedding_loss",
                    reduction="mean", margin=-0.5)


def main():
    os.makedirs(OUT, exist_ok=True)
    layers()
    activations()
    losses()
    conv_pool_layers()
    norm_layers()
    ranking_losses()
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(manifest['cases'])} cases to {OUT} with torch {torch.__version__}")


if __name__ == "__main__":
    main()
