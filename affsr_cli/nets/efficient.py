"""The efficient generator family (presets tiny, small, base): the design of the efficient-SR
frontier (SPAN, Wan et al. 2024, https://arxiv.org/abs/2311.12770; RLFN, Kong et al. 2022; IMDN)
written for this project — plain 3×3 convolutions on the LR grid, no batch norm, residual blocks
gated by a sigmoid of their own output, a long skip from a cheap upsampling of x, and a
pixel-shuffle head with ICNR init.

    x (B, C, h, w) [+ z (B, nz, h, w)]
      ─ conv 3×3 ─▶ F maps ─ N × Block ─ conv 3×3 ─(+ the first F maps)─ conv 3×3 to C·s² ─ shuffle ─▶ r
    f = bilinear↑s(x) + r                                                        (B, C, s·h, s·w)

Block: h = conv(act(conv(u))), u + h·σ(h) (the gate lets a block switch itself off where the
bilinear base is already right: flat regions). Activations are LeakyReLU(0.1), one fused kernel on
every device. f is not squashed into (0, 1): the network learns the residual of a bilinear image,
which Π and the saved-file box fit bring into range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AffsrError
from .generator import icnr_

PRESETS = {  # widths F, blocks N (GFLOP per output megapixel at 4× in docs/training.md "Generators")
    "tiny": dict(width=24, blocks=4),
    "small": dict(width=48, blocks=6),
    "base": dict(width=64, blocks=12),
}
SLOPE = 0.1  # LeakyReLU negative slope


def conv3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, 1, 1)


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.c1, self.c2 = conv3(width, width), conv3(width, width)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h = self.c2(F.leaky_relu(self.c1(u), SLOPE, inplace=True))
        return u + h * torch.sigmoid(h)


class EfficientGenerator(nn.Module):
    """f: x (B, C, h, w) [+ z (B, nz, h, w)] -> (B, C, s·h, s·w), a residual over bilinear upsampling."""

    def __init__(
        self,
        *,
        channels: int = 3,
        scale: int = 4,
        width: int = 48,
        blocks: int = 6,
        noise_channels: int = 0,
        grid: str = "lr",
    ):
        super().__init__()
        if grid != "lr":
            raise AffsrError("the efficient generators compute on the LR grid only (grid='lr')")
        if not (isinstance(width, int) and 4 <= width <= 512 and isinstance(blocks, int) and 1 <= blocks <= 64):
            raise AffsrError(f"width must be 4–512 and blocks 1–64, got {width!r} and {blocks!r}")
        self.channels, self.scale, self.noise_channels, self.grid = channels, scale, noise_channels, grid
        self.head = conv3(channels + noise_channels, width)
        self.blocks = nn.Sequential(*(Block(width) for _ in range(blocks)))
        self.tail = conv3(width, width)
        self.up = conv3(width, channels * scale * scale)
        self.shuffle = nn.PixelShuffle(scale)
        icnr_(self.up, scale)
        with torch.no_grad():  # start as the bilinear image: the residual branch begins near zero
            self.up.weight.mul_(0.1)
            self.up.bias.zero_()

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)  # (B, C, s·h, s·w)
        if self.noise_channels:
            if z is None:
                z = torch.randn(x.shape[0], self.noise_channels, *x.shape[-2:], device=x.device, dtype=x.dtype)
            x = torch.cat([x, z], 1)  # (B, C + nz, h, w)
        h = self.head(x)  # (B, F, h, w)
        h = self.tail(self.blocks(h)) + h
        return base + self.shuffle(self.up(h))


def cost(
    channels: int = 3, scale: int = 4, width: int = 48, blocks: int = 6, noise_channels: int = 0
) -> tuple[int, float]:
    """(parameters, GFLOP per output megapixel) of a preset: 2 FLOP per multiply-add of the
    convolutions on the LR grid, per s² output pixels (the bilinear base and the gates add < 1 %)."""
    convs = [(channels + noise_channels, width)] + [(width, width)] * (2 * blocks + 1) + [(width, channels * scale**2)]
    params = sum(9 * a * b + b for a, b in convs)
    flop_per_lr_pixel = sum(2 * 9 * a * b for a, b in convs)
    return params, flop_per_lr_pixel / scale**2 / 1e3  # per output pixel ×1e6 px / 1e9
