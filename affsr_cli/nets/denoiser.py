"""Denoising autoencoders for denoiser-guided SR (paper §3.3, App. D): f_σ(ỹ) ≈ E[y | ỹ],
so that (f_σ(ỹ) − ỹ)/σ² estimates ∂log p_σ(ỹ)/∂ỹ (Alain & Bengio, 2014).
Residual form f(ỹ) = ỹ + g(ỹ); no batch norm, so that f treats each sample on its own."""

from __future__ import annotations

import torch
from torch import nn

from .mlp import mlp


class ConvDenoiser(nn.Module):
    """(B, C, H, W) -> (B, C, H, W); the paper's texture DAE: 4 conv layers of 128 maps."""

    def __init__(self, *, channels: int = 3, width: int = 128, layers: int = 4, kernel_size: int = 3):
        super().__init__()
        mods, c = [], channels
        for _ in range(layers):
            mods += [nn.Conv2d(c, width, kernel_size, 1, kernel_size // 2), nn.ReLU(inplace=True)]
            c = width
        self.body = nn.Sequential(*mods, nn.Conv2d(c, channels, kernel_size, 1, kernel_size // 2))

    def forward(self, y_noisy: torch.Tensor) -> torch.Tensor:
        return y_noisy + self.body(y_noisy)


class MLPDenoiser(nn.Module):
    """(B, d) -> (B, d); the Swiss roll's DAE: 2 layers of 256 units."""

    def __init__(self, *, d: int = 2, width: int = 256, layers: int = 2):
        super().__init__()
        self.body = mlp(d, d, width, layers)

    def forward(self, y_noisy: torch.Tensor) -> torch.Tensor:
        return y_noisy + self.body(y_noisy)
