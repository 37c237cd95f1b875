#!/usr/bin/env python3
"""Generates the PyTorch parity fixtures in tests/fixtures/seq/ with real torch: the sequence
models of issue 14 (scaled_dot_product_attention, MultiheadAttention, the Transformer layers,
LSTM, GRU and their cells).

Each case is one safetensors file plus an entry in manifest.json:
- `param.<key>`: the module's initial state (random, seeded), loaded by the Rust side;
- `in.<name>`: the inputs (boolean masks stored as uint8, listed in the case's `bool`);
- `out.<name>`: the outputs; `up.<name>`: fixed random weights of the loss
  `sum(out * up)` over the finite outputs; `grad.in.<name>` / `grad.<param>`: its gradients;
- the manifest records the constructor config, the call options, `repr(module)` and its
  `state_dict()` keys and shapes.

tests/seq_parity.rs feeds the same weights and inputs to kiln and compares.

Usage: python scripts/gen_seq_fixtures.py [OUT_DIR]   (default tests/fixtures/seq)
Deterministic: every case seeds torch's generator itself.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "seq"
)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
manifest = {"torch": torch.__version__, "generator": "scripts/gen_seq_fixtures.py",
            "cases": {}}


def state_keys(module):
    return [[k, list(v.shape)] for k, v in module.state_dict().items()]


def randomize(module):
    """Non-trivial biases and norms, so every parameter shows in the outputs."""
    with torch.no_grad():
        for n, p in module.named_parameters():
            if "norm" in n and n.endswith("weight"):
                p.uniform_(0.5, 1.5)
            elif "bias" in n:
                p.uniform_(-0.5, 0.5)


def case(name, kind, module, inputs, call, config, bool_inputs=(), mode="train",
         no_grad_inputs=(), **options):
    """`call(module, inputs) -> {name: tensor or None}`; gradients of sum(out * up)."""
    tensors = {}
    if module is not None:
        module.train(mode == "train")
        tensors.update({f"param.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    leaves = {}
    for k, v in inputs.items():
        if k in bool_inputs:
            tensors[f"in.{k}"] = v.to(torch.uint8)
            leaves[k] = v
        elif v.is_floating_point() and k not in no_grad_inputs:
            leaves[k] = v.clone().requires_grad_(True)
            tensors[f"in.{k}"] = v
        else:
            leaves[k] = v
            tensors[f"in.{k}"] = v
    outs = {k: v for k, v in call(module, leaves).items() if v is not None}
    loss = 0
    for k, v in outs.items():
        tensors[f"out.{k}"] = v
        if torch.isfinite(v).all():
            up = torch.randn(v.shape, dtype=v.dtype)
            tensors[f"up.{k}"] = up
            loss = loss + (v * up).sum()
    if isinstance(loss, torch.Tensor):
        loss.backward()
        for k, v in leaves.items():
            if v.requires_grad and v.grad is not None:
                tensors[f"grad.in.{k}"] = v.grad
        if module is not None:
            for n, p in module.named_parameters():
                tensors[f"grad.{n}"] = p.grad if p.grad is not None else torch.zeros_like(p)
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, os.path.join(OUT, f"{name}.safetensors"))
    entry = {"kind": kind, "config": config, "options": options, "mode": mode,
             "bool": list(bool_inputs)}
    if module is not None:
        entry["repr"] = repr(module)
        entry["state_dict"] = state_keys(module)
    manifest["cases"][name] = entry


# ------------------------------------------------------------------------------------ SDPA
def sdpa_cases():
    def run(opts):
        def call(_m, i):
            return {"y": F.scaled_dot_product_attention(
                i["q"], i["k"], i["v"], attn_mask=i.get("mask"), is_causal=opts.get("is_causal", False),
                scale=opts.get("scale"))}
        return call

    specs = [
        ("sdpa_plain", (2, 3, 4, 8), (2, 3, 6, 8), 5, None, {}),
        ("sdpa_causal_square", (2, 5, 4), (2, 5, 4), 4, None, {"is_causal": True}),
        ("sdpa_causal_rect", (1, 2, 3, 4), (1, 2, 5, 4), 4, None, {"is_causal": True}),
        ("sdpa_scale", (3, 4, 6), (3, 5, 6), 2, None, {"scale": 0.7}),
        ("sdpa_bool_mask_broadcast", (2, 2, 4, 4), (2, 2, 5, 4), 3, "bool", {}),
        ("sdpa_float_mask", (2, 4, 4), (2, 5, 4), 4, "float", {}),
        ("sdpa_fully_masked_row", (1, 2, 3, 4), (1, 2, 5, 4), 4, "bool_row", {}),
    ]
    for i, (name, qs, ks, ev, mask, opts) in enumerate(specs):
        torch.manual_seed(1000 + i)
        q, k = torch.randn(*qs), torch.randn(*ks)
        v = torch.randn(*ks[:-1], ev)
        inputs = {"q": q, "k": k, "v": v}
        bools = ()
        L, S = qs[-2], ks[-2]
        if mask == "bool":
            inputs["mask"] = torch.rand(L, S) > 0.3
            inputs["mask"][:, 0] = True
            bools = ("mask",)
        elif mask == "float":
            m = torch.randn(qs[0], L, S)
            m[0, 1, 2] = float("-inf")
            inputs["mask"] = m
        elif mask == "bool_row":
            m = torch.rand(L, S) > 0.4
            m[:, 1] = True
            m[1] = False
            inputs["mask"] = m
            bools = ("mask",)
        case(name, "sdpa", None, inputs, run(opts), {}, bool_inputs=bools,
             no_grad_inputs=("mask",), **opts)


# ------------------------------------------------------------------------------------- MHA
def mha_cases():
    def mha_call(opts, self_attn):
        def call(m, i):
            q = i["x"] if self_attn else i["query"]
            k = i["x"] if self_attn else i["key"]
            v = i["x"] if self_attn else i["value"]
            o, w = m(q, k, v, key_padding_mask=i.get("key_padding_mask"),
                     need_weights=opts.get("need_weights", True), attn_mask=i.get("attn_mask"),
                     average_attn_weights=opts.get("average_attn_weights", True),
                     is_causal=opts.get("is_causal", False))
            return {"output": o, "weights": w}
        return call

    E, H, L, S, N = 8, 2, 4, 5, 3
    specs = [
        # name, config, self_attn, batch_first shapes, masks, opts
        ("mha_self_default", {}, True, None, {}),
        ("mha_self_batch_first_per_head", {"batch_first": True}, True, None,
         {"average_attn_weights": False}),
        ("mha_cross_kpm_bool", {}, False, "kpm_bool", {}),
        ("mha_cross_attn_mask_float_2d", {}, False, "attn_float2d", {}),
        ("mha_cross_attn_mask_bool_3d_no_weights", {}, False, "attn_bool3d",
         {"need_weights": False}),
        ("mha_cross_both_masks_no_weights", {"batch_first": True}, False, "both_bool",
         {"need_weights": False}),
        ("mha_kdim_vdim_no_bias", {"kdim": 6, "vdim": 3, "bias": False}, False, "kpm_float", {}),
        ("mha_bias_kv_zero_attn", {"add_bias_kv": True, "add_zero_attn": True}, False,
         "both_bool", {}),
        ("mha_causal_self_no_weights", {"batch_first": True}, True, "causal",
         {"need_weights": False, "is_causal": True}),
        ("mha_causal_self_weights", {}, True, "causal", {"is_causal": True}),
        ("mha_unbatched", {}, False, "kpm_bool_unbatched", {}),
        ("mha_fully_masked_weights_nan", {}, True, "kpm_full", {}),
        ("mha_fully_masked_no_weights", {}, True, "kpm_full", {"need_weights": False}),
        ("mha_eval_dropout", {"dropout": 0.3}, True, None, {}),
    ]
    for i, (name, cfg, self_attn, masks, opts) in enumerate(specs):
        torch.manual_seed(1100 + i)
        m = nn.MultiheadAttention(E, H, **cfg)
        randomize(m)
        bf = cfg.get("batch_first", False)
        unbatched = masks == "kpm_bool_unbatched"
        Ls = L if not self_attn else S

        def seq(t, d):
            if unbatched:
                return torch.randn(t, d)
            return torch.randn(N, t, d) if bf else torch.randn(t, N, d)
        if self_attn:
            inputs = {"x": seq(S, E)}
        else:
            inputs = {"query": seq(L, E), "key": seq(S, cfg.get("kdim", E)),
                      "value": seq(S, cfg.get("vdim", E))}
        bools = []
        if masks in ("kpm_bool", "both_bool"):
            kpm = torch.rand(N, S) > 0.6
            kpm[:, 0] = False
            inputs["key_padding_mask"] = kpm
            bools.append("key_padding_mask")
        if masks == "kpm_bool_unbatched":
            kpm = torch.tensor([False, True, False, False, True])
            inputs["key_padding_mask"] = kpm
            bools.append("key_padding_mask")
        if masks == "kpm_float":
            inputs["key_padding_mask"] = torch.randn(N, S)
        if masks == "kpm_full":
            kpm = torch.zeros(N, S, dtype=torch.bool)
            kpm[1] = True
            inputs["key_padding_mask"] = kpm
            bools.append("key_padding_mask")
        if masks == "attn_float2d":
            am = torch.randn(L, S)
            am[0, 3] = float("-inf")
            inputs["attn_mask"] = am
        if masks == "attn_bool3d":
            am = torch.rand(N * H, L, S) > 0.7
            am[..., 0] = False
            inputs["attn_mask"] = am
            bools.append("attn_mask")
        if masks == "both_bool":
            am = torch.rand(L, S) > 0.7
            am[:, 0] = False
            inputs["attn_mask"] = am
            bools.append("attn_mask")
        if masks == "causal":
            inputs["attn_mask"] = nn.Transformer.generate_square_subsequent_mask(Ls)
        mode = "eval" if name == "mha_eval_dropout" else "train"
        full = {"embed_dim": E, "num_heads": H, **cfg}
        case(name, "mha", m, inputs, mha_call(opts, self_attn), full, bool_inputs=bools,
             no_grad_inputs=("key_padding_mask", "attn_mask"), mode=mode,
             self_attn=self_attn, **opts)


# ------------------------------------------------------------------------------ Transformer
def transformer_cases():
    E, H, FF, S, T, N = 8, 2, 16, 5, 4, 3

    def enc_call(opts):
        def call(m, i):
            key = "mask" if isinstance(m, nn.TransformerEncoder) else "src_mask"
            return {"output": m(i["src"], src_key_padding_mask=i.get("src_key_padding_mask"),
                                is_causal=opts.get("is_causal", False),
                                **{key: i.get("src_mask")})}
        return call

    def dec_call(opts):
        def call(m, i):
            return {"output": m(i["tgt"], i["memory"], tgt_mask=i.get("tgt_mask"),
                                memory_mask=i.get("memory_mask"),
                                tgt_key_padding_mask=i.get("tgt_key_padding_mask"),
                                memory_key_padding_mask=i.get("memory_key_padding_mask"),
                                tgt_is_causal=opts.get("tgt_is_causal", False))}
        return call

    specs = [
        ("enc_layer_post_relu", "encoder_layer", {}, None, {}),
        ("enc_layer_pre_gelu_batch_first", "encoder_layer",
         {"norm_first": True, "activation": "gelu", "batch_first": True}, "kpm", {}),
        ("enc_layer_causal_no_bias", "encoder_layer", {"bias": False, "layer_norm_eps": 1e-3},
         "causal", {"is_causal": True}),
        ("enc_layer_eval_dropout", "encoder_layer", {"dropout": 0.2}, "both", {}),
        ("encoder_2_layers_norm", "encoder", {"num_layers": 2, "final_norm": True}, "kpm", {}),
        ("encoder_3_layers_pre", "encoder", {"num_layers": 3, "norm_first": True,
                                             "batch_first": True}, "causal", {}),
        ("dec_layer_post_relu", "decoder_layer", {}, "dec_masks", {}),
        ("dec_layer_pre_gelu_batch_first", "decoder_layer",
         {"norm_first": True, "activation": "gelu", "batch_first": True}, "dec_causal",
         {"tgt_is_causal": True}),
    ]
    for i, (name, kind, cfg, masks, opts) in enumerate(specs):
        torch.manual_seed(1200 + i)
        dropout = cfg.get("dropout", 0.0)
        layer_cfg = {k: v for k, v in cfg.items() if k not in ("num_layers", "final_norm")}
        layer_cfg["dropout"] = dropout
        bf = cfg.get("batch_first", False)
        if kind in ("encoder_layer", "encoder"):
            layer = nn.TransformerEncoderLayer(E, H, FF, **layer_cfg)
        else:
            layer = nn.TransformerDecoderLayer(E, H, FF, **layer_cfg)
        if kind == "encoder":
            norm = nn.LayerNorm(E) if cfg.get("final_norm") else None
            m = nn.TransformerEncoder(layer, cfg["num_layers"], norm=norm,
                                      enable_nested_tensor=False)
        else:
            m = layer
        randomize(m)

        def seq(t):
            return torch.randn(N, t, E) if bf else torch.randn(t, N, E)
        inputs, bools = {}, []
        if kind in ("encoder_layer", "encoder"):
            inputs["src"] = seq(S)
            if masks in ("kpm", "both"):
                kpm = torch.rand(N, S) > 0.6
                kpm[:, 0] = False
                inputs["src_key_padding_mask"] = kpm
                bools.append("src_key_padding_mask")
            if masks == "causal":
                inputs["src_mask"] = nn.Transformer.generate_square_subsequent_mask(S)
            if masks == "both":
                am = torch.rand(S, S) > 0.7
                am[:, 0] = False
                inputs["src_mask"] = am
                bools.append("src_mask")
            call = enc_call(opts)
        else:
            inputs["tgt"], inputs["memory"] = seq(T), seq(S)
            if masks == "dec_masks":
                kpm = torch.rand(N, S) > 0.6
                kpm[:, 0] = False
                inputs["memory_key_padding_mask"] = kpm
                tk = torch.rand(N, T) > 0.7
                tk[:, 0] = False
                inputs["tgt_key_padding_mask"] = tk
                bools += ["memory_key_padding_mask", "tgt_key_padding_mask"]
                inputs["memory_mask"] = torch.randn(T, S)
            inputs["tgt_mask"] = nn.Transformer.generate_square_subsequent_mask(T)
            call = dec_call(opts)
        mode = "eval" if dropout > 0 else "train"
        full = {"d_model": E, "nhead": H, "dim_feedforward": FF, **cfg, "dropout": dropout}
        case(name, kind, m, inputs, call, full, bool_inputs=bools, mode=mode,
             no_grad_inputs=("src_mask", "tgt_mask", "memory_mask"), **opts)


# ------------------------------------------------------------------------------- LSTM / GRU
def rnn_cases():
    I, Hs, T, N = 3, 5, 6, 4

    def call_rnn(opts, is_lstm):
        def call(m, i):
            x = i["x"]
            state = None
            if "h0" in i:
                state = (i["h0"], i["c0"]) if is_lstm else i["h0"]
            lengths = opts.get("lengths")
            if lengths is not None:
                x = pack_padded_sequence(x, torch.tensor(lengths), batch_first=m.batch_first,
                                         enforce_sorted=False)
            out = m(x, state) if state is not None else m(x)
            y, hs = out
            if lengths is not None:
                y, _ = pad_packed_sequence(y, batch_first=m.batch_first)
            if is_lstm:
                return {"output": y, "h_n": hs[0], "c_n": hs[1]}
            return {"output": y, "h_n": hs}
        return call

    specs = [
        ("lstm_default", "lstm", {}, {}, False),
        ("lstm_2_layers_bidir_batch_first_h0", "lstm",
         {"num_layers": 2, "bidirectional": True, "batch_first": True}, {}, True),
        ("lstm_proj_no_bias", "lstm", {"proj_size": 2, "bias": False, "num_layers": 2}, {}, True),
        ("lstm_lengths_bidir", "lstm", {"bidirectional": True, "num_layers": 2},
         {"lengths": [6, 2, 4, 3]}, True),
        ("lstm_lengths_short_batch_first", "lstm", {"batch_first": True},
         {"lengths": [3, 1, 2, 3]}, False),
        ("lstm_unbatched", "lstm", {"bidirectional": True}, {"unbatched": True}, True),
        ("lstm_eval_dropout", "lstm", {"num_layers": 2, "dropout": 0.4}, {}, False),
        ("gru_default", "gru", {}, {}, False),
        ("gru_2_layers_bidir_h0", "gru", {"num_layers": 2, "bidirectional": True}, {}, True),
        ("gru_lengths_bidir_batch_first", "gru", {"bidirectional": True, "batch_first": True},
         {"lengths": [2, 6, 5, 1]}, True),
        ("gru_no_bias_unbatched", "gru", {"bias": False}, {"unbatched": True}, False),
    ]
    for i, (name, kind, cfg, opts, with_h0) in enumerate(specs):
        torch.manual_seed(1300 + i)
        is_lstm = kind == "lstm"
        m = (nn.LSTM if is_lstm else nn.GRU)(I, Hs, **cfg)
        bf = cfg.get("batch_first", False)
        D = 2 if cfg.get("bidirectional") else 1
        L = cfg.get("num_layers", 1)
        Ho = cfg.get("proj_size", 0) or Hs
        unb = opts.get("unbatched", False)
        if unb:
            x = torch.randn(T, I)
        else:
            x = torch.randn(N, T, I) if bf else torch.randn(T, N, I)
        inputs = {"x": x}
        if with_h0:
            inputs["h0"] = torch.randn(L * D, Ho) if unb else torch.randn(L * D, N, Ho)
            if is_lstm:
                inputs["c0"] = torch.randn(L * D, Hs) if unb else torch.randn(L * D, N, Hs)
        mode = "eval" if cfg.get("dropout", 0) > 0 else "train"
        full = {"input_size": I, "hidden_size": Hs, **cfg}
        case(name, kind, m, inputs, call_rnn(opts, is_lstm), full, mode=mode,
             **{k: v for k, v in opts.items() if k != "unbatched"})

    cells = [("lstm_cell", nn.LSTMCell(I, Hs), True, True),
             ("lstm_cell_unbatched_no_state", nn.LSTMCell(I, Hs, bias=False), False, False),
             ("gru_cell", nn.GRUCell(I, Hs), True, True),
             ("gru_cell_no_bias_no_state", nn.GRUCell(I, Hs, bias=False), True, False)]
    for i, (name, m, batched, with_h) in enumerate(cells):
        torch.manual_seed(1400 + i)
        is_lstm = isinstance(m, nn.LSTMCell)
        shape = (N, I) if batched else (I,)
        hshape = (N, Hs) if batched else (Hs,)
        inputs = {"x": torch.randn(*shape)}
        if with_h:
            inputs["h0"] = torch.randn(*hshape)
            if is_lstm:
                inputs["c0"] = torch.randn(*hshape)

        def call(m, i, is_lstm=is_lstm):
            if is_lstm:
                st = (i["h0"], i["c0"]) if "h0" in i else None
                h, c = m(i["x"], st)
                return {"h": h, "c": c}
            return {"h": m(i["x"], i.get("h0"))}
        case(name, "lstm_cell" if is_lstm else "gru_cell", m, inputs, call,
             {"input_size": I, "hidden_size": Hs, "bias": m.bias})


def main():
    os.makedirs(OUT, exist_ok=True)
    sdpa_cases()
    mha_cases()
    transformer_cases()
    rnn_cases()
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(manifest['cases'])} cases to {OUT} with torch {torch.__version__}")


if __name__ == "__main__":
    main()
