"""The PyTorch twin of tests/layers_roundtrip.rs (a model mixing the issue-14 layers): loads
kiln's net.pt with torch.load(weights_only=True) and load_state_dict(strict=True), checks
the key order, and compares the eval-mode output on kiln's input within 1e-5. Then the other way: a seeded PyTorch
MixedNet (one training-mode forward, so the InstanceNorm statistics move) is saved as
torch_net.pt + torch_io.safetensors for `cargo test --test layers_roundtrip -- --ignored`.

usage: python scripts/layers_twin.py DIR   (DIR = target/tmp/layers_roundtrip, written by
`cargo test --release --test layers_roundtrip`)
"""
import sys
from collections import OrderedDict

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file


class MixedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding="same", groups=2)
        self.gn = nn.GroupNorm(2, 4)
        self.act = nn.Hardswish()
        self.drop2 = nn.Dropout2d(0.2)
        self.up = nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False)
        self.convt = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)
        self.inorm = nn.InstanceNorm2d(3, affine=True, track_running_stats=True)
        self.pool = nn.AdaptiveMaxPool2d((4, 4))
        self.conv1 = nn.Conv1d(3, 6, 3, padding=1)
        self.rms = nn.RMSNorm([16])
        self.drop1 = nn.Dropout1d(0.1)
        self.pool1 = nn.AvgPool1d(2)
        self.apool = nn.AdaptiveAvgPool1d(4)
        self.flat = nn.Flatten()
        self.body = nn.Sequential(OrderedDict([("fc", nn.Linear(24, 8)), ("act", nn.SiLU())]))
        self.heads = nn.ModuleDict({"cls": nn.Linear(8, 6)})
        self.unflat = nn.Unflatten(1, (2, 3))

    def forward(self, x):
        x = self.up(self.drop2(self.act(self.gn(self.conv(x)))))
        x = self.pool(self.inorm(self.convt(x))).flatten(2)
        x = self.rms(self.conv1(x))
        x = self.apool(self.pool1(self.drop1(x)))
        return self.unflat(self.heads["cls"](self.body(self.flat(x))))


def main():
    out = sys.argv[1]
    net = MixedNet()
    sd = torch.load(f"{out}/net.pt", weights_only=True)
    assert list(sd.keys()) == list(net.state_dict().keys()), (list(sd.keys()),
                                                              list(net.state_dict().keys()))
    net.load_state_dict(sd, strict=True)
    net.eval()
    io = load_file(f"{out}/io.safetensors")
    with torch.no_grad():
        y = net(io["x"])
    err = (y - io["y"]).abs().max().item()
    print(f"MixedNet: {len(sd)} keys equal and loaded strictly, max |torch - kiln| = {err:.3e}")
    assert err <= 1e-5, err
    torch.manual_seed(0)
    twin = MixedNet()
    twin.train()
    twin(torch.randn(2, 2, 8, 8) * 2 + 0.5)
    twin.eval()
    x = torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        y = twin(x)
    torch.save(twin.state_dict(), f"{out}/torch_net.pt")
    save_file({"x": x, "y": y}, f"{out}/torch_io.safetensors")
    print("layers twin: ok (torch_net.pt written for kiln)")


if __name__ == "__main__":
    main()
