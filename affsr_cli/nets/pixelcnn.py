"""A PixelCNN density model with a continuous, differentiable likelihood, for density-guided SR
(paper §3.4, App. D; van den Oord et al., 2016, https://arxiv.org/abs/1601.06759).

Masked convolutions make the parameters for pixel j depend on pixels before j in raster order
only (first layer mask A, the rest mask B). Each pixel's channels get a mixture of K logistic
densities on the real line (a continuous mixture of logistics, not the discretised one of
PixelCNN++), so log p(y) is differentiable in y; channels of one pixel are conditionally
independent given the pixels before it. (The paper used an MCGSM likelihood with 32 components.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MaskedConv2d(nn.Conv2d):
    def __init__(self, c_in: int, c_out: int, k: int, mask_type: str):
        super().__init__(c_in, c_out, k, padding=k // 2)
        mask = torch.ones(k, k)
        mask[k // 2, k // 2 + (mask_type == "B") :] = 0  # the centre row from the centre (A) or after it (B)
        mask[k // 2 + 1 :] = 0  # every row below
        self.register_buffer("mask", mask.view(1, 1, k, k), persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.conv2d(y, self.weight * self.mask, self.bias, padding=self.padding)


def logistic_mixture_log_prob(
    v: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, log_s: torch.Tensor
) -> torch.Tensor:
    """log Σ_k π_k · logistic(v; μ_k, s_k), a density on ℝ; v (...), parameters (K, ...)."""
    u = (v.unsqueeze(0) - mu) * torch.exp(-log_s)
    log_pdf = -u - 2 * F.softplus(-u) - log_s  # log of e^{−u}/(s(1+e^{−u})²)
    return torch.logsumexp(F.log_softmax(logits, 0) + log_pdf, 0)


class PixelCNN(nn.Module):
    """log p(y) for y (B, C, H, W): `layers` masked convs (the first k_first×k_first, mask A)."""

    def __init__(
        self,
        *,
        channels: int = 3,
        width: int = 64,
        layers: int = 4,
        kernel_size: int = 5,
        first_kernel: int = 7,
        mixture: int = 10,
    ):
        super().__init__()
        self.channels, self.mixture = channels, mixture
        mods = [MaskedConv2d(channels, width, first_kernel, "A")]
        for _ in range(layers - 1):
            mods += [nn.ReLU(), MaskedConv2d(width, width, kernel_size, "B")]
        self.body = nn.Sequential(*mods, nn.ReLU(), nn.Conv2d(width, 3 * mixture * channels, 1))

    def params(self, y: torch.Tensor):
        B, C, H, W = y.shape
        p = self.body(y).view(B, 3, self.mixture, C, H, W).permute(1, 2, 0, 3, 4, 5)  # (3, K, B, C, H, W)
        logits, mu, log_s = p[0], p[1], p[2].clamp(min=-7.0)
        return logits, mu, log_s

    def log_prob_pixels(self, y: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) log-densities of every value given the pixels before it."""
        return logistic_mixture_log_prob(y, *self.params(y))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood in nats per dimension, averaged over the batch."""
        return -self.log_prob_pixels(y).mean()


def bits_per_dim(nll_nats_per_dim: float) -> float:
    """The paper's sign convention is log-likelihood; this is NLL in bits/dim of the continuous
    density on [0, 1] (negative when the density exceeds 1); add 8 for 8-bit-discrete units."""
    return nll_nats_per_dim / math.log(2)
