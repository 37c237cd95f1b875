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
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
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


def main():
    os.makedirs(OUT, exist_ok=True)
    layers()
    activations()
    losses()
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(manifest['cases'])} cases to {OUT} with torch {torch.__version__}")


if __name__ == "__main__":
    main()
