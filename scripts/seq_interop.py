#!/usr/bin/env python3
"""`.pt` interop of kiln's sequence layers with real PyTorch (see tests/seq_interop.rs).

usage: python scripts/seq_interop.py write DIR   # torch's SeqNet -> DIR/torch_seq.pt + output
       python scripts/seq_interop.py check DIR   # kiln's DIR/kiln_seq.pt -> twin, strictly
scripts/seq_interop.sh runs write, the ignored Rust test, then check.
"""
import sys

import torch
from safetensors.torch import load_file, save_file
from torch import nn


class SeqNet(nn.Module):
    """The twin of `SeqNet` in tests/seq_interop.rs."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8),
                                             enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.lstm = nn.LSTM(8, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = nn.GRU(12, 5, batch_first=True)
        self.cell = nn.GRUCell(5, 5)
        self.lstm_cell = nn.LSTMCell(5, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, ids):
        x = self.embed(ids)
        a, _ = self.attn(x, x, x, need_weights=False)
        x = x + a
        mem = self.encoder(x)
        x = self.decoder(x, mem)
        y, _ = self.lstm(x)
        _, h = self.gru(y)
        h = self.cell(h[0])
        h, _ = self.lstm_cell(h)
        return self.head(h)


def ids():
    return torch.tensor([(i * 7 + 3) % 20 for i in range(14)]).reshape(2, 7)


def randomize(net):
    with torch.no_grad():
        for n, p in net.named_parameters():
            if "bias" in n:
                p.uniform_(-0.5, 0.5)


def main():
    mode, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    net = SeqNet().eval()
    if mode == "write":
        randomize(net)
        torch.save(net.state_dict(), f"{out}/torch_seq.pt")
        with torch.no_grad():
            save_file({"y": net(ids()).contiguous()}, f"{out}/torch_seq_out.safetensors")
        print(f"seq interop: wrote {len(net.state_dict())} tensors of the PyTorch SeqNet")
        return
    sd = torch.load(f"{out}/kiln_seq.pt")
    assert list(sd.keys()) == list(net.state_dict().keys()), (
        list(sd.keys()), list(net.state_dict().keys()))
    net.load_state_dict(sd, strict=True)
    io = load_file(f"{out}/kiln_seq_out.safetensors")
    with torch.no_grad():
        y = net(io["ids"])
    err = ((y - io["y"]).abs().max() / io["y"].abs().max()).item()
    print(f"seq interop: kiln's .pt loads strictly ({len(sd)} keys), max relative |torch - kiln| = {err:.3e}")
    assert err <= 1e-5, err


if __name__ == "__main__":
    main()
