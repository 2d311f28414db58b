"""Discriminators of the paper's App. D: strided conv nets ending in one logit per image.
(The paper's final sigmoid is folded into the losses, which take logits for stability.)"""
from __future__ import annotations

import torch
from torch import nn

PRESETS = {
    "texture": dict(widths=(32, 64, 128, 256), stride_every=1),
    "celeba": dict(widths=(128, 128, 256, 256, 512, 512, 1024, 1024), stride_every=2),
    "imagenet": dict(widths=(128, 128, 256, 256, 512, 512, 1024, 1024), stride_every=2),
    # texture's widths with anti-aliased downsampling: no period-2^k pattern in its input gradient
    "texture-aa": dict(widths=(32, 64, 128, 256), stride_every=1, antialias=True),
}


class BlurPool(nn.Module):
    """Blur with [1, 2, 1]⊗[1, 2, 1]/16, then keep every second pixel (Zhang, 2019, "Making
    convolutional networks shift-invariant again", https://arxiv.org/abs/1904.11486)."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16).expand(channels, 1, 3, 3).contiguous(), persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        y = nn.functional.pad(y, (1, 1, 1, 1), mode="reflect")
        return nn.functional.conv2d(y, self.kernel, stride=2, groups=y.shape[1])


class Discriminator(nn.Module):
    """D: y (B, C, H, W) -> logit (B,). Layer i has stride 2 when (i+1) % stride_every == 0
    (`antialias`: a stride-1 convolution followed by BlurPool instead)."""

    def __init__(self, *, channels: int = 3, widths: tuple = PRESETS["texture"]["widths"], stride_every: int = 1,
                 antialias: bool = False):
        super().__init__()
        layers, c = [], channels
        for i, w in enumerate(widths):
            stride = 2 if (i + 1) % stride_every == 0 else 1
            layers += [nn.Conv2d(c, w, 3, 1 if antialias else stride, 1, bias=i == 0)]
            layers += [nn.BatchNorm2d(w)] if i else []  # no batch norm on the input layer (DCGAN)
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            layers += [BlurPool(w)] if antialias and stride == 2 else []
            c = w
        self.features = nn.Sequential(*layers)
        self.logit = nn.Linear(c, 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.logit(self.features(y).mean((-2, -1))).squeeze(-1)  # (B,)
