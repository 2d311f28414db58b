"""The paper's 2-D Swiss roll (§5.1, App. D, eqs. 33–35): the one problem where exact MAP
inference is tractable.

    ν1 ~ N(10, 3), ν2 ~ N(0, 0.2), r = 0.4·ν1 + ν2, y = (cos ν1 · r, sin ν1 · r), x = (y1 + y2)/2

A is the average of the two coordinates: A = [½, ½], AAᵀ = ½, so A⁺ = Aᵀ(AAᵀ)⁻¹ = [1, 1]ᵀ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from .errors import AffsrError

MU1, SIGMA1, MU2, SIGMA2 = 10.0, 3.0, 0.0, 0.2


def sample(
    n: int, generator: torch.Generator | None = None, sigma2: float = SIGMA2, dtype=torch.float32
) -> torch.Tensor:
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
            raise AffsrError(f"not the Swiss roll's operator: {meta}")
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
        return self.y[i % len(self.y)]  # sample numbers of later epochs (data.StepBatches) wrap around

    def __getitems__(self, idx: list[int]) -> list[torch.Tensor]:
        """A whole batch in one indexing (the DataLoader uses this when it exists)."""
        return list(self.y[torch.tensor(idx) % len(self.y)].unbind())


# --- evaluation (paper §5.1, Table 1): H[q, p] with a Gaussian KDE of the noiseless roll ------

KDE_SAMPLES, KDE_BANDWIDTH = 50_000, 0.2


def kde_centres(seed: int = 0, n: int = KDE_SAMPLES) -> torch.Tensor:
    """The KDE's centres: n samples of the noiseless roll (ν2 = 0), float64."""
    return sample(n, torch.Generator().manual_seed(10_000 + seed), sigma2=0.0, dtype=torch.float64)


def log_kde(
    points: torch.Tensor, centres: torch.Tensor, h: float = KDE_BANDWIDTH, chunk: int = 16, cell: float = 0.5
) -> torch.Tensor:
    """log p̂(points) (N,) for an isotropic Gaussian KDE with standard deviation h per axis.

    Exact to float64 rounding, without summing every centre for every point: the centres are binned
    into square cells of side `cell`, the points sorted by cell and taken `chunk` at a time, and a
    cell is summed for a chunk unless for every point q in it the cell lies so far that its centres
    weigh less than e^-37 (≈ float64's ε) of the nearest-centre term all together:
    d²(q, cell's box) > d²(q, a centre) + 2h²(log M + 37), M the number of centres. An estimate of
    the nearest centre's distance comes from one centre per cell. On the roll with 2,000 points and
    50,000 centres this sums about a fifth of the centres per point (≈ 5× faster); the numbers are
    those of the full sum to ~1e-15 (summation order). 16 points at a time: with the full sum,
    16 × 50,000 float64 temporaries stay under glibc's mmap threshold (512 took 3× as long)."""
    points = points.to(torch.float64)
    centres = centres.to(torch.float64)
    norm = math.log(len(centres)) + math.log(2 * math.pi * h * h)
    thr = 2 * h * h * (math.log(len(centres)) + 37.0)
    lo = centres.min(0).values  # (2,)
    ij = ((centres - lo) / cell).floor().long()  # (M, 2) cell of each centre
    ny = int(ij[:, 1].max()) + 1
    key, order = (ij[:, 0] * ny + ij[:, 1]).sort()
    centres = centres[order]
    cells, cell_of = torch.unique_consecutive(key, return_inverse=True)  # (C,), (M,) cell index of each sorted centre
    C = len(cells)
    box_lo = torch.full((C, 2), math.inf, dtype=torch.float64).scatter_reduce(
        0, cell_of[:, None].expand(-1, 2), centres, "amin"
    )  # (C, 2) each cell's centres' bounding box
    box_hi = torch.full((C, 2), -math.inf, dtype=torch.float64).scatter_reduce(
        0, cell_of[:, None].expand(-1, 2), centres, "amax"
    )
    first = torch.searchsorted(key, cells)  # (C,) one centre of each cell
    reps = centres[first]  # (C, 2)
    pij = ((points - lo) / cell).floor().long()
    porder = (pij[:, 0] * ny + pij[:, 1]).argsort()  # points of a chunk near one another
    out = torch.empty(len(points), dtype=torch.float64)
    for idx in porder.split(chunk):
        p = points[idx]  # (n, 2)
        near = torch.cdist(p, reps).square().min(1).values  # (n,) ≥ squared distance to the nearest centre
        gap = (box_lo[None] - p[:, None]).clamp(min=0) + (p[:, None] - box_hi[None]).clamp(min=0)  # (n, C, 2)
        keep = (gap.square().sum(-1) <= near[:, None] + thr).any(0)  # (C,) cells that may matter
        sub = centres[keep[cell_of]]  # (m, 2)
        out[idx] = torch.logsumexp(-torch.cdist(p, sub).square() / (2 * h * h), 1) - norm
    return out


def cross_entropy(y_hat: torch.Tensor, centres: torch.Tensor) -> float:
    """H[q, p] = −E_{ŷ~q} log p̂(ŷ) in nats (the paper's Table 1 estimator)."""
    return float(-log_kde(y_hat, centres).mean())


def kde_grid(centres: torch.Tensor, h: float = KDE_BANDWIDTH, lim: float = 12.0, d: float = 0.02) -> torch.Tensor:
    """log p̂ on the square grid −lim, −lim+d, …, lim (both axes, [i, j] = (y1_i, y2_j)): centres
    binned linearly onto the grid, convolved with the Gaussian by FFT. Relative error ~ (d/h)²."""
    n = int(round(2 * lim / d)) + 1
    u = (centres.to(torch.float64) + lim) / d  # grid coordinates
    i0 = u.floor().long().clamp(0, n - 2)
    f = (u - i0).clamp(0, 1)
    hist = torch.zeros(n, n, dtype=torch.float64)
    for di in (0, 1):
        for dj in (0, 1):
            w = (f[:, 0] if di else 1 - f[:, 0]) * (f[:, 1] if dj else 1 - f[:, 1])
            hist.index_put_((i0[:, 0] + di, i0[:, 1] + dj), w, accumulate=True)
    size = 1 << (n + int(8 * h / d)).bit_length()  # zero padding: no wrap-around within 8h
    k = torch.arange(size, dtype=torch.float64)
    k = torch.minimum(k, size - k) * d
    g = torch.exp(-(k**2) / (2 * h * h)) / math.sqrt(2 * math.pi * h * h) * d  # 1-D kernel, sums to ≈ 1
    spec = torch.fft.rfft2(hist, s=(size, size)) * torch.fft.rfft(g)[None, :] * torch.fft.fft(g)[:, None]
    dens = torch.fft.irfft2(spec, s=(size, size))[:n, :n] / (len(centres) * d * d)
    return dens.clamp(min=1e-300).log()


def map_estimate(
    x: torch.Tensor, centres: torch.Tensor, h: float = KDE_BANDWIDTH, half_width: float = 12.0, step: float = 0.002
) -> torch.Tensor:
    """Brute-force MAP along each line Aŷ = x: ŷ = (x + t, x − t) with t on a grid of `step` in
    [−half_width, half_width] maximising the KDE, read bilinearly from `kde_grid` (an error of
    δt in t costs ~δt²/2h² nats at the peak: 1e-5 here). x (N,) or (N, 1) -> (N, 2), exactly on
    the line."""
    x = x.reshape(-1).to(torch.float64)
    logp = kde_grid(centres, h, half_width)[None, None]
    t = torch.arange(-half_width, half_width + 1e-9, step, dtype=torch.float64)
    best = []
    for xs in x.split(64):
        pts = torch.stack([xs[:, None] + t, xs[:, None] - t], -1)  # (n, T, 2) points on the lines
        coords = (pts / half_width).flip(-1)[None]  # grid_sample wants (column = y2, row = y1) in [−1, 1]
        vals = F.grid_sample(logp, coords, mode="bilinear", padding_mode="border", align_corners=True)[0, 0]
        best.append(t[vals.argmax(1)])
    best = torch.cat(best)
    return torch.stack([x + best, x - best], -1)


def evaluate(upscale, n: int = 5000, seed: int = 0, centres: torch.Tensor | None = None) -> dict:
    """H[q, p] and ℓMSE(x, Aŷ) over n inputs x = A(y), y from the (noisy) roll; `upscale` maps
    x (n, 1) to ŷ (n, 2). Returns the numbers and the arrays x, y_hat."""
    centres = kde_centres(seed) if centres is None else centres
    x = Average()(sample(n, torch.Generator().manual_seed(20_000 + seed), dtype=torch.float64))  # (n, 1)
    with torch.no_grad():
        y_hat = upscale(x).to(torch.float64)
    return {
        "cross_entropy": cross_entropy(y_hat, centres),
        "lr_mse": float((Average()(y_hat) - x).square().mean()),
        "x": x.reshape(-1),
        "y_hat": y_hat,
    }
