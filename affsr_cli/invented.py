"""Where the detail was invented: every consistent output splits exactly into what the input
determines and what the upscaler chose (paper eq. 7 read as a decomposition),

    ŷ = A⁺Aŷ + (I − A⁺A)ŷ,   and A⁺Aŷ = A⁺x when Aŷ = x.

A⁺A is the orthogonal projector onto the row space of A, so the two parts are orthogonal and the
second, the null-space component, is invisible to A: no measurement of x could have asked for it or
ruled it out. For AffGAN/AffMSE it is (I − A⁺A)f(x), exactly the network's choice; for another
tool's file made consistent by `affsr project` it is what that tool invented beyond its input.

Notation (code -> paper): `y_hat` -> ŷ, `x` -> x, `A` -> A, `pinv` -> A⁺, `invented` -> (I − A⁺A)ŷ.

The map (docs/invented.md): per HR pixel v = Σ_c |(I − A⁺A)ŷ|_c in units of the full range (1 = 255
levels of an 8-bit file), shown as an 8-bit gray image of brightness 255·√(min(v, MAP_WHITE)/MAP_WHITE):
black where the output is A⁺x (the input's own content, nothing added), white where the channels
together moved MAP_WHITE or more. The square root lifts the fine texture that a linear scale hides
beside strong edges. The same scale for every file, so maps can be compared.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

MAP_WHITE = 0.25  # v at which the map is white: |invented| summed over the channels, 64 levels of 255


def as_float(stored: np.ndarray, bits: int) -> torch.Tensor:
    """(C, H, W) float32 in the full-range units of `bits` (8 / 16 levels, 32: the float values)."""
    a = torch.from_numpy(np.ascontiguousarray(stored).astype(np.float32))
    if bits != 32:
        a /= 2**bits - 1
    return a.permute(2, 0, 1)


@torch.no_grad()
def split(y_hat: torch.Tensor, A: nn.Module, pinv: nn.Module) -> torch.Tensor:
    """The invented part (I − A⁺A)ŷ (C, H, W) of an output ŷ (C, H, W); one channel at a time (memory)."""
    out = torch.empty_like(y_hat, dtype=torch.float32)
    for k in range(y_hat.shape[0]):
        band = y_hat[k : k + 1].float()  # (1, H, W)
        out[k] = (band - pinv(A(band)))[0]  # ŷ − A⁺Aŷ
    return out


def share(invented: torch.Tensor, y_hat: torch.Tensor) -> float:
    """‖(I − A⁺A)ŷ‖² ÷ ‖ŷ − mean‖²: the invented share of the output's contrast energy (each channel
    about its own mean; the mean itself is the input's)."""
    contrast = y_hat.double() - y_hat.double().mean(dim=(1, 2), keepdim=True)
    total = float(contrast.square().sum())
    return float(invented.double().square().sum()) / total if total > 0 else 0.0


def rms(invented: torch.Tensor) -> float:
    """Root mean square of the invented part, in full-range units (× 255 for 8-bit levels)."""
    return float(invented.double().square().mean().sqrt())


def heat(magnitude: torch.Tensor) -> np.ndarray:
    """(H, W, 1) uint8 map of a per-pixel magnitude (H, W) on the module's fixed scale."""
    level = (magnitude.clamp(0, MAP_WHITE) / MAP_WHITE).sqrt() * 255
    return level.round().to(torch.uint8).numpy()[..., None]


def invented_map(invented: torch.Tensor) -> np.ndarray:
    """The map of Σ_c |(I − A⁺A)ŷ|_c (H, W, 1) uint8."""
    return heat(invented.abs().sum(0))


def spread_map(samples: list[torch.Tensor]) -> tuple[np.ndarray, float]:
    """Several consistent samples ŷ₁…ŷ_N (C, H, W) of one input: the map of Σ_c std_c across them (same
    scale as the invented map) and the mean of that per-pixel spread. Their differences lie in the null
    space of A (each downsamples to x), so the spread is the uncertainty the input leaves."""
    stack = torch.stack([s.float() for s in samples])  # (N, C, H, W)
    spread = stack.std(0, unbiased=True).sum(0)  # (H, W)
    return heat(spread), float(spread.double().mean())
