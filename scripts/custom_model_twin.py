"""The PyTorch twins of examples/custom_model.rs: load kiln's .pt files strictly with
torch.load (default weights_only=True) and compare eval-mode outputs within 1e-5.

usage: python scripts/custom_model_twin.py OUT_DIR   (after `cargo run --example custom_model -- OUT_DIR`)
"""
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file


# ---- the twins (Block + Net with constructors and forward: 27 non-blank, non-comment lines) ----
class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + x)


class Net(nn.Module):
    def __init__(self, width, classes):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.blocks = nn.ModuleList([Block(width), Block(width)])
        self.norm = nn.LayerNorm([width])
        self.act = nn.GELU()
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(width, classes)
        self.width = width

    def forward(self, x):
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        x = self.act(self.norm(x.mean((2, 3))))
        return self.head(self.drop(x))


class TextClf(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(24, 16)
        self.head = nn.Linear(16, 2)

    def forward(self, ids):
        return self.head(self.emb(ids).mean(1))


def main():
    out = sys.argv[1]
    net = Net(8, 10)
    sd = torch.load(f"{out}/net.pt")
    assert list(sd.keys()) == list(net.state_dict().keys()), (list(sd.keys()), list(net.state_dict().keys()))
    net.load_state_dict(sd, strict=True)
    net.eval()
    io = load_file(f"{out}/net_io.safetensors")
    with torch.no_grad():
        y = net(io["x"])
    err = (y - io["y"]).abs().max().item()
    print(f"Net: keys {len(sd)} equal, max |torch - kiln| = {err:.3e}")
    assert err <= 1e-5, err
    clf = TextClf()
    sd = torch.load(f"{out}/text.pt")
    assert list(sd.keys()) == list(clf.state_dict().keys())
    clf.load_state_dict(sd, strict=True)
    print("TextClf: loaded strictly")
    print("custom_model twins: ok")


if __name__ == "__main__":
    main()
