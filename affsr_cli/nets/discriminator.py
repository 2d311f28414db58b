"""Discriminators of the paper's App. D: strided conv nets ending in one logit per image.
(The paper's final sigmoid is folded into the losses, which take logits for stability.)"""
from __future__ import annotations

import torch
from torch import nn

PRESETS = {
    "texture": dict(widths=(32, 64, 128, 256), stride_every=1),
    "celeba": dict(widths=(128, 128, 256, 256, 512, 512, 1024, 1024), stride_every=2),
    "imagenet": dict(widths=(128, 128, 256, 256, 512, 512, 1024, 1024), stride_every=2),
}


class Discriminator(nn.Module):
    """D: y (B, C, H, W) -> logit (B,). Layer i has stride 2 when (i+1) % stride_every == 0."""

    def __init__(self, *, channels: int = 3, widths: tuple = PRESETS["texture"]["widths"], stride_every: int = 1):
        super().__init__()
        layers, c = [], channels
        for i, w in enumerate(widths):
            stride = 2 if (i + 1) % stride_every == 0 else 1
            layers += [nn.Conv2d(c, w, 3, stride, 1, bias=i == 0)]
            layers += [nn.BatchNorm2d(w)] if i else []  # no batch norm on the input layer (DCGAN)
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            c = w
        self.features = nn.Sequential(*layers)
        self.logit = nn.Linear(c, 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.logit(self.features(y).mean((-2, -1))).squeeze(-1)  # (B,)
