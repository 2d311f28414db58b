"""RRDBNet, the generator of ESRGAN (Wang et al., *ESRGAN: Enhanced Super-Resolution Generative
Adversarial Networks*, ECCV 2018 workshops, https://arxiv.org/abs/1809.00219) and of Real-ESRGAN
(Wang et al., ICCV 2021 workshops), written for this project.

    x (B, C, h, w) [+ z] ─ conv 3×3 ─▶ F₀ ─ RRDB₁ ─ … ─ RRDB_n ─ conv 3×3 ─▶ T
      F₀ + T ─ (nearest ×2 ─ conv 3×3 ─ lrelu) × log₂ s ─ conv 3×3 ─ lrelu ─ conv 3×3 to C ─▶ f   (B, C, s·h, s·w)

RDB (the dense block): five 3×3 convolutions, the k-th seeing the block's input and the k − 1
outputs before it (concatenated), `growth` channels each and `width` for the last, leaky ReLU 0.2
after the first four; out = 0.2·x₅ + u. RRDB: three RDBs in a row, out = 0.2·RDB₃(RDB₂(RDB₁(u))) + u.
Works on x in [0, 1] as it is (no mean, no range); the output is not squashed (Π and the box fit do
the rest); `examples/photos/import_realesrgan.py` loads the official Real-ESRGAN x4plus weights into it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AffsrError

PRESETS = {"rrdb": dict(width=64, growth=32, blocks=23)}  # ESRGAN's and Real-ESRGAN x4plus's
RESIDUAL = 0.2  # ESRGAN's residual scaling of each dense block and of each RRDB
SLOPE = 0.2  # the leaky ReLUs' negative slope


def conv3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, 1, 1)


class RDB(nn.Module):
    def __init__(self, width: int, growth: int):
        super().__init__()
        self.convs = nn.ModuleList(conv3(width + k * growth, growth) for k in range(4))
        self.last = conv3(width + 4 * growth, width)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        feats = [u]
        for conv in self.convs:
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), SLOPE))
        return self.last(torch.cat(feats, 1)) * RESIDUAL + u


class RRDB(nn.Module):
    def __init__(self, width: int, growth: int):
        super().__init__()
        self.rdbs = nn.Sequential(*(RDB(width, growth) for _ in range(3)))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.rdbs(u) * RESIDUAL + u


class RRDBNet(nn.Module):
    """f: x (B, C, h, w) [+ z (B, nz, h, w)] -> (B, C, s·h, s·w), s a power of two."""

    def __init__(
        self,
        *,
        channels: int = 3,
        scale: int = 4,
        width: int = 64,
        growth: int = 32,
        blocks: int = 23,
        noise_channels: int = 0,
        grid: str = "lr",
    ):
        super().__init__()
        if grid != "lr":
            raise AffsrError("RRDBNet computes on the LR grid only (grid='lr')")
        if scale < 2 or scale & (scale - 1):
            raise AffsrError(f"RRDBNet upsamples by nearest ×2 steps: the scale must be 2, 4, 8 or 16, got {scale}")
        if not (isinstance(width, int) and 4 <= width <= 256 and isinstance(growth, int) and 1 <= growth <= 256):
            raise AffsrError(f"width must be 4–256 and growth 1–256, got {width!r} and {growth!r}")
        if not (isinstance(blocks, int) and 1 <= blocks <= 64):
            raise AffsrError(f"blocks must be 1–64, got {blocks!r}")
        self.channels, self.scale, self.noise_channels, self.grid = channels, scale, noise_channels, grid
        self.head = conv3(channels + noise_channels, width)
        self.blocks = nn.Sequential(*(RRDB(width, growth) for _ in range(blocks)))
        self.trunk = conv3(width, width)
        self.ups = nn.ModuleList(conv3(width, width) for _ in range(int(math.log2(scale))))
        self.hr = conv3(width, width)
        self.last = conv3(width, channels)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if self.noise_channels:
            if z is None:
                z = torch.randn(x.shape[0], self.noise_channels, *x.shape[-2:], device=x.device, dtype=x.dtype)
            x = torch.cat([x, z], 1)  # (B, C + nz, h, w)
        f0 = self.head(x)  # (B, F, h, w)
        h = f0 + self.trunk(self.blocks(f0))
        for conv in self.ups:  # (B, F, h, w) -> (B, F, 2h, 2w) -> ...
            h = F.leaky_relu(conv(F.interpolate(h, scale_factor=2, mode="nearest")), SLOPE)
        return self.last(F.leaky_relu(self.hr(h), SLOPE))  # (B, C, s·h, s·w)


def cost(
    channels: int = 3, scale: int = 4, width: int = 64, growth: int = 32, blocks: int = 23, noise_channels: int = 0
) -> tuple[int, float]:
    """(parameters, GFLOP per output megapixel): 2 FLOP per multiply-add of the convolutions, those
    after each ×2 counted at their own resolution (the activations and sums add < 1 %)."""
    rdb = [(width + k * growth, growth) for k in range(4)] + [(width + 4 * growth, width)]
    lr = [(channels + noise_channels, width)] + rdb * 3 * blocks + [(width, width)]
    ups = int(math.log2(scale))
    hr = [(width, width), (width, channels)]
    params = sum(9 * a * b + b for a, b in lr + [(width, width)] * ups + hr)
    flop_per_lr_pixel = (
        2
        * 9
        * (
            sum(a * b for a, b in lr)
            + sum(width * width * 4**k for k in range(1, ups + 1))
            + sum(a * b for a, b in hr) * scale**2
        )
    )
    return params, flop_per_lr_pixel / scale**2 / 1e3
