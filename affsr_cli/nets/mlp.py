"""Fully connected networks for the 2-D Swiss roll (paper App. D): generators and
discriminators with 2 layers of 64 units, the denoiser with 2 layers of 256."""

from __future__ import annotations

import torch
from torch import nn


def mlp(d_in: int, d_out: int, hidden: int, layers: int) -> nn.Sequential:
    mods, d = [], d_in
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    return nn.Sequential(*mods, nn.Linear(d, d_out))


class MLPGenerator(nn.Module):
    """f: x (B, d_in) [+ z (B, nz)] -> (B, d_out), no output non-linearity (the roll spans ±8)."""

    def __init__(self, *, d_in: int = 1, d_out: int = 2, hidden: int = 64, layers: int = 2, noise_channels: int = 0):
        super().__init__()
        self.noise_channels = noise_channels
        self.body = mlp(d_in + noise_channels, d_out, hidden, layers)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if self.noise_channels:
            z = torch.randn(x.shape[0], self.noise_channels, device=x.device, dtype=x.dtype) if z is None else z
            x = torch.cat([x, z], -1)
        return self.body(x)


class MLPCritic(nn.Module):
    """D: y (B, d) -> logit (B,); also the denoiser's body when d_out = d (see nets.denoiser)."""

    def __init__(self, *, d: int = 2, hidden: int = 64, layers: int = 2):
        super().__init__()
        self.body = mlp(d, 1, hidden, layers)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.body(y).squeeze(-1)
