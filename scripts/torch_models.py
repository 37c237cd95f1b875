"""PyTorch twins of kiln's models (same module names, shapes and forward).

Kept in step with `src/models/lenet.rs` and `src/models/mlp.rs`: a state dict of one loads into
the other with strict=True, and the same weights give the same outputs.
"""
import torch
from torch import nn
import torch.nn.functional as F


class LeNet(nn.Module):
    """conv1 (C->6, 3x3, pad 1) -> ReLU -> max-pool 2 -> conv2 (6->16, 3x3, pad 1) -> ReLU ->
    max-pool 2 -> flatten -> fc1 (->120) -> ReLU -> fc2 (->84) -> ReLU -> fc (->classes)."""

    def __init__(self, in_channels=1, image_size=8, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * (image_size // 4) ** 2, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc = nn.Linear(84, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc(x)


class MLP(nn.Module):
    """flatten -> hidden = Sequential(Linear, ReLU, Dropout)* -> fc."""

    def __init__(self, in_features=64, hidden=(128, 64), num_classes=10, dropout=0.1):
        super().__init__()
        layers = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.hidden = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        if x.dim() > 2:
            x = torch.flatten(x, 1)
        return self.fc(self.hidden(x))
