"""SPAN, the Swift Parameter-free Attention Network (Wan et al., CVPR 2024 workshops,
https://arxiv.org/abs/2311.12770), in its inference form, written for this project.

    x (B, C, h, w) [+ z]
      (x − mean)·255 ─ conv 3×3 ─▶ F₀ ─ SPAB₁ ─▶ F₁ ─ … ─ SPAB₆ ─▶ F₆ ─ conv 3×3 ─▶ T
      cat(F₀, T, F₁, a₆) ─ conv 1×1 ─ conv 3×3 to C·s² ─ shuffle ─▶ f          (B, C, s·h, s·w)

SPAB (the block): a = SiLU(conv(u)), b = SiLU(conv(a)), c = conv(b); out = (c + u)·(σ(c) − ½), the
parameter-free attention σ(c) − ½ computed from the block's own features; a₆ is block 6's first
activation. The paper trains each 3×3 conv as a Conv3XC (1×1 → 3×3 → 1×1 plus a 1×1 skip) and folds
it into one 3×3 conv for inference: this module holds the folded form, so the official pretrained
weights load as they are and fine-tuning trains the plain 3×3 convs. The output is not squashed:
the official weights already map into [0, 1] (no mean added back), and Π and the box fit do the rest.
`mean` (the RGB mean of DIV2K in the official weights) is a buffer that loads with the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AffsrError
from .generator import icnr_

PRESETS = {  # width F, blocks (the official models: 48 and 52 channels, 6 blocks)
    "span48": dict(width=48, blocks=6),
    "span52": dict(width=52, blocks=6),
}
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)
IMG_RANGE = 255.0  # the official network works on x·255


def conv3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, 1, 1)


class SPAB(nn.Module):
    """The attention block: returns (out, first activation)."""

    def __init__(self, width: int):
        super().__init__()
        self.c1, self.c2, self.c3 = conv3(width, width), conv3(width, width), conv3(width, width)

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.is_grad_enabled():
            a = F.silu(self.c1(u))
            c = self.c3(F.silu(self.c2(a)))
            return (c + u) * (torch.sigmoid(c) - 0.5), a
        # inference: the same arithmetic in place (no autograd to keep inputs for), 4 passes fewer
        a = F.silu(self.c1(u), inplace=True)
        c = self.c3(F.silu(self.c2(a), inplace=True))
        gate = torch.sigmoid(c).sub_(0.5)
        return c.add_(u).mul_(gate), a


class SPAN(nn.Module):
    """f: x (B, C, h, w) [+ z (B, nz, h, w)] -> (B, C, s·h, s·w)."""

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
            raise AffsrError("SPAN computes on the LR grid only (grid='lr')")
        if not (isinstance(width, int) and 4 <= width <= 512 and isinstance(blocks, int) and 2 <= blocks <= 64):
            raise AffsrError(f"width must be 4–512 and blocks 2–64, got {width!r} and {blocks!r}")
        self.channels, self.scale, self.noise_channels, self.grid = channels, scale, noise_channels, grid
        mean = DIV2K_MEAN if channels == 3 else (0.5,) * channels
        self.register_buffer("mean", torch.tensor(mean).view(1, channels, 1, 1))
        self.head = conv3(channels + noise_channels, width)
        self.blocks = nn.ModuleList(SPAB(width) for _ in range(blocks))
        self.tail = conv3(width, width)
        self.fuse = nn.Conv2d(4 * width, width, 1)
        self.up = conv3(width, channels * scale * scale)
        self.shuffle = nn.PixelShuffle(scale)
        icnr_(self.up, scale)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        x = (x - self.mean) * IMG_RANGE  # (B, C, h, w)
        if self.noise_channels:
            if z is None:
                z = torch.randn(x.shape[0], self.noise_channels, *x.shape[-2:], device=x.device, dtype=x.dtype)
            # z at the scale of the normalised x (×255): with Adam's steps of about lr on every weight, z's
            # weights then move f as much as x's do (at ×1 a 300-step run left the samples 2 levels apart)
            x = torch.cat([x, z * IMG_RANGE], 1)  # (B, C + nz, h, w)
        f0 = self.head(x)  # (B, F, h, w)
        f1, _ = self.blocks[0](f0)
        u = f1
        for block in self.blocks[1:]:
            u, a = block(u)
        h = self.fuse(torch.cat([f0, self.tail(u), f1, a], 1))  # (B, 4F, h, w) -> (B, F, h, w)
        return self.shuffle(self.up(h))


def cost(
    channels: int = 3, scale: int = 4, width: int = 48, blocks: int = 6, noise_channels: int = 0
) -> tuple[int, float]:
    """(parameters, GFLOP per output megapixel): 2 FLOP per multiply-add of the convolutions on the
    LR grid, per s² output pixels (the activations and the attention add < 1 %)."""
    convs = (
        [(channels + noise_channels, width, 9)]
        + [(width, width, 9)] * (3 * blocks + 1)
        + [(4 * width, width, 1), (width, channels * scale**2, 9)]
    )
    params = sum(k * a * b + b for a, b, k in convs)  # (the mean is a buffer, not a parameter)
    flop_per_lr_pixel = sum(2 * k * a * b for a, b, k in convs)
    return params, flop_per_lr_pixel / scale**2 / 1e3
