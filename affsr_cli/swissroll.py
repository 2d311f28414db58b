"""The paper's 2-D Swiss roll (§5.1, App. D, eqs. 33–35): the one problem where exact MAP
inference is tractable.

    ν1 ~ N(10, 3), ν2 ~ N(0, 0.2), r = 0.4·ν1 + ν2, y = (cos ν1 · r, sin ν1 · r), x = (y1 + y2)/2

A is the average of the two coordinates: A = [½, ½], AAᵀ = ½, so A⁺ = Aᵀ(AAᵀ)⁻¹ = [1, 1]ᵀ.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

MU1, SIGMA1, MU2, SIGMA2 = 10.0, 3.0, 0.0, 0.2


def sample(n: int, generator: torch.Generator | None = None, sigma2: float = SIGMA2,
           dtype=torch.float32) -> torch.Tensor:
    """n points y (n, 2) of the roll; sigma2 = 0 gives the noiseless roll."""
    nu1 = MU1 + SIGMA1 * torch.randn(n, generator=generator, dtype=torch.float64)
    nu2 = MU2 + sigma2 * torch.randn(n, generator=generator, dtype=torch.float64)
    r = 0.4 * nu1 + nu2
    return torch.stack([torch.cos(nu1) * r, torch.sin(nu1) * r], -1).to(dtype)


class Average(nn.Module):
    """A: (..., 2) -> (..., 1), the mean of the coordinates."""

    scale = 2  # dimensions per measurement, the analogue of the image scale

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y.mean(-1, keepdim=True)


class AveragePinv(nn.Module):
    """A⁺: (..., 1) -> (..., 2), x ↦ (x, x), exact."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(*x.shape[:-1], 2)


@dataclass(frozen=True)
class AverageSpec:
    """The Swiss roll's operator, with the same interface as projection.OperatorSpec."""

    kind: str = "average"

    def build(self) -> tuple[Average, AveragePinv]:
        return Average(), AveragePinv()

    def metadata(self) -> dict[str, str]:
        return {"kind": self.kind, "dim": "2"}

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> "AverageSpec":
        if meta.get("kind") != "average":
            raise ValueError(f"not the Swiss roll's operator: {meta}")
        return cls()


class SwissRoll(Dataset):
    """A fixed pool of `n` noisy roll points (the HR data y); LR inputs are made with A."""

    def __init__(self, n: int = 100_000, seed: int = 0):
        self.y = sample(n, torch.Generator().manual_seed(seed))
        self.warnings: list[str] = []
        self.files: list = [f"{n} samples of eqs. 33–35"]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.y[i]
