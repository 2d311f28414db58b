"""The downsampling operator A: a separable kernel + stride s, per channel, (..., H, W) -> (..., H/s, W/s).

Paper: Sønderby et al., *Amortised MAP Inference for Image Super-resolution*, ICLR 2017, §3.1 and
Appendix B (the Gaussian A). Kernel families, the grid alignment and the border conventions are
described in projection.py, which builds A⁺ and Π on it; OperatorSpec (there) names an A and builds it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .errors import AffsrError

if TYPE_CHECKING:  # OperatorSpec names an A and builds it (projection.py); Downsample reads its fields
    from .projection import OperatorSpec

BOUNDARIES = ("symmetric", "reflect", "replicate", "circular", "pil", "matlab")
CACHE_SIZE = 32  # image sizes whose index maps and Gram inverses are kept (least recently used go first)


def _cubic(t: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel, a = −0.5 (Pillow's and MATLAB's bicubic), support 2."""
    a, t = -0.5, t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = (((t - 5) * t + 8) * t - 4) * a
    return torch.where(t < 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def _sinc(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t == 0, torch.ones_like(t), torch.sin(math.pi * t) / (math.pi * t))


# family: (φ, support in LR pixels); Pillow's filters (Resample.c): box(x) = 1 on (−½, ½]
KERNELS = {
    "bicubic": (_cubic, 2.0),
    "bilinear": (lambda t: (1 - t.abs()).clamp(min=0), 1.0),
    "area": (lambda t: ((t > -0.5) & (t <= 0.5)).to(t.dtype), 0.5),
    "lanczos3": (lambda t: torch.where(t.abs() < 3, _sinc(t) * _sinc(t / 3), torch.zeros_like(t)), 3.0),
}
FAMILIES = ("gaussian", *KERNELS)
DEFAULT_BOUNDARY = {"gaussian": "symmetric", **{f: "pil" for f in KERNELS}}
SHAPES = {"bicubic": "Keys cubic a = −0.5", "bilinear": "triangle", "area": "box", "lanczos3": "Lanczos a = 3"}


class LRU(OrderedDict):
    """A dict that keeps its `size` most recently used entries: the caches of A and A⁺ hold one entry
    per image size, and a folder of photos of many sizes must not make them grow without bound."""

    def __init__(self, size: int = CACHE_SIZE):
        super().__init__()
        self.size = size

    def get_or_make(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        while len(self) > self.size:
            self.popitem(last=False)
        return value


def resize_window(family: str, scale: int) -> tuple[int, int]:
    """(offset o, taps k) of a resize family: every HR index s·i + p with |p − (s−1)/2| < support·s."""
    reach = KERNELS[family][1] * scale
    first = math.floor((scale - 1) / 2 - reach) + 1
    return first, math.ceil((scale - 1) / 2 + reach) - first


def boundary_index(i: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Map integer positions i (any range) into 0 … n−1 by the boundary convention ("pil", which
    drops what falls outside, maps like "symmetric" where an index map is needed: LR padding)."""
    if mode == "circular":
        return i % n
    if mode == "replicate":
        return i.clamp(0, n - 1)
    if mode == "reflect" and n > 1:
        m = i % (2 * n - 2)
        return torch.where(m < n, m, 2 * n - 2 - m)
    if mode == "reflect":  # a single pixel reflects onto itself
        return torch.zeros_like(i)
    m = i % (2 * n)  # symmetric, matlab, pil
    return torch.where(m < n, m, 2 * n - 1 - m)


class Downsample(nn.Module):
    """A: separable kernel + stride, applied to every channel alike. No parameters."""

    def __init__(self, spec: OperatorSpec):
        super().__init__()
        self.spec = spec
        self.register_buffer("taps", spec.taps(torch.float64), persistent=False)
        self.weights = self.taps.tolist()  # the same taps as Python floats, for any dtype and device
        self.truncate = spec.boundary == "pil"  # zero padding and renormalised border rows, not an index map
        self._index_cache = LRU()

    @property
    def scale(self) -> int:
        return self.spec.scale

    def _index(self, n: int, device) -> torch.Tensor:
        """HR indices read by the n LR samples: (s·(n−1)+k,) positions, boundary-mapped."""
        s, k = self.spec.scale, self.spec.kernel_size
        make = lambda: boundary_index(
            torch.arange(s * (n - 1) + k, device=device) + self.spec.offset,  # noqa: E731
            s * n,
            self.spec.boundary,
        )
        return self._index_cache.get_or_make((n, str(device)), make)

    def _index_list(self, n: int) -> list[int]:
        return self._index_cache.get_or_make((n, "list"), lambda: self._index(n, "cpu").tolist())

    def _pads(self, n: int) -> tuple[int, int]:
        """Samples before and after the s·n HR samples in the padded signal (offset ≤ 0 since k ≥ s)."""
        s, k, o = self.spec.scale, self.spec.kernel_size, self.spec.offset
        return -o, s * (n - 1) + k + o - s * n

    def _row_scale(self, n: int) -> list[tuple[int, float]]:
        """ "pil": (LR row, 1 / the sum of its taps inside the image) for the rows that lose taps."""

        def make():
            s, o, k = self.spec.scale, self.spec.offset, len(self.weights)
            low = min(n, -(-(-o) // s))  # rows i < low read HR samples below 0 (o ≤ 0)
            high = max(low, (s * n - o - k) // s + 1)  # rows i ≥ high read beyond s·n − 1
            rows = []
            for i in (*range(low), *range(high, n)):
                inside = sum(w for t, w in enumerate(self.weights) if 0 <= s * i + o + t < s * n)
                rows.append((i, 1.0 / inside))
            return rows

        return self._index_cache.get_or_make((n, "scale"), make)

    def _rescale(self, z: torch.Tensor, dim: int, n: int) -> torch.Tensor:
        for i, c in self._row_scale(n):
            z.select(dim, i).mul_(c)
        return z

    def _tap(self, dim: int, t: int, n: int) -> tuple:
        """Index of the HR samples that tap t reads for the n LR samples along `dim` (a strided slice)."""
        s = self.spec.scale
        cut = slice(t, t + s * (n - 1) + 1, s)
        return (Ellipsis, cut, slice(None)) if dim == -2 else (Ellipsis, cut)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """A: (..., H, W) -> (..., H/s, W/s). Each 1-D pass is k strided slices, weighted and summed: a
        1-channel strided conv2d runs ~6× slower on the CPU (A of a 1024×1024 RGB image: 47 ms, 8 ms so)."""
        H, W = y.shape[-2:]
        s = self.spec.scale
        if H % s or W % s:
            raise AffsrError(f"HR size {H}×{W} is not a multiple of the scale {s}")
        z = y
        for dim, n in ((-2, H // s), (-1, W // s)):
            if self.truncate:  # zero padding: the taps outside the image read 0
                lo, hi = self._pads(n)
                z = F.pad(z, (0, 0, lo, hi) if dim == -2 else (lo, hi))
            else:  # pad by the boundary map: s·(n−1)+k samples
                z = z.index_select(dim, self._index(n, z.device))
            out = z[self._tap(dim, 0, n)] * self.weights[0]
            for t in range(1, len(self.weights)):
                out.add_(z[self._tap(dim, t, n)], alpha=self.weights[t])
            z = self._rescale(out, dim, n) if self.truncate else out
        return z  # (..., H/s, W/s)

    def adjoint(self, r: torch.Tensor) -> torch.Tensor:
        """Aᵀ: (..., h, w) -> (..., s·h, s·w); exact transpose of forward, borders included."""
        h, w = r.shape[-2:]
        s, k = self.spec.scale, self.spec.kernel_size
        z = r
        for dim, n in ((-1, w), (-2, h)):
            if self.truncate:
                z = self._rescale(z.clone(), dim, n)
            shape = list(z.shape)
            shape[dim] = s * (n - 1) + k
            padded = z.new_zeros(shape)
            for t, wt in enumerate(self.weights):
                padded[self._tap(dim, t, n)].add_(z, alpha=wt)
            z = padded.narrow(dim, self._pads(n)[0], s * n) if self.truncate else self._fold(padded, dim, n)
        return z  # (..., s·h, s·w)

    def _fold(self, padded: torch.Tensor, dim: int, n: int) -> torch.Tensor:
        """Aᵀ of the boundary map: the s·(n−1)+k padded samples along `dim` added back onto the s·n HR
        samples they were read from. The boundary map is the identity inside the image, so that part is
        one slice, and only the few samples read from beyond the borders are added one by one."""
        s = self.spec.scale
        lo = self._pads(n)[0]  # padded index of HR sample 0
        out = padded.narrow(dim, lo, s * n).clone()
        source = self._index_list(n)
        for j in (*range(lo), *range(lo + s * n, len(source))):
            out.select(dim, source[j]).add_(padded.select(dim, j))
        return out

    def entries(self, n: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The 1-D operator's nonzeros: (cols, weights), each (n, k): row i reads HR sample cols[i, t] with weight
        weights[i, t] (float64; a column may repeat in a row where the boundary map folds taps onto one sample)."""
        s, k = self.spec.scale, self.spec.kernel_size
        weights = self.taps.to(device=device).expand(n, k).clone()  # (n, k)
        if self.truncate:
            cols = (torch.arange(s * (n - 1) + k, device=device) + self.spec.offset).unfold(0, k, s)
            inside = (cols >= 0) & (cols < s * n)
            weights = weights * inside
            for i, c in self._row_scale(n):
                weights[i] *= c
            cols = cols.clamp(0, s * n - 1)  # the dropped taps weigh 0
        else:
            cols = self._index(n, device).unfold(0, k, s)  # (n, k) HR index read by tap t of sample i
        return cols, weights

    def matrix(self, n: int, dtype=torch.float64, device=None) -> torch.Tensor:
        """The 1-D operator as a dense (n, s·n) matrix (A = A_h ⊗ A_w); for tests and small n only."""
        cols, weights = self.entries(n, device)
        rows = torch.arange(n, device=device).unsqueeze(1).expand_as(cols)
        M = torch.zeros(n, self.spec.scale * n, dtype=dtype, device=device)
        return M.index_put_((rows, cols), weights.to(dtype), accumulate=True)

    def gram_band(self, n: int) -> tuple[torch.Tensor, int]:
        """The 1-D Gram G = A₁A₁ᵀ (n × n) as (band, B), float64 on the CPU: G[i, i + d] = band[B + d, i] for
        |d| ≤ B, and 0 beyond (circular borders: i + d taken mod n, d the shorter way round). O(n) time and
        memory: G[i, j] = Σ_p A₁[i, p]·A₁[j, p] over the HR samples p, and each p is read by a few LR rows only,
        so every pair of rows that read one sample adds one term to one diagonal."""
        s = self.spec.scale
        cols, weights = self.entries(n, "cpu")
        rows = torch.arange(n).unsqueeze(1).expand_as(cols)
        key, inverse = torch.unique((cols * n + rows).reshape(-1), return_inverse=True)  # (column, row) pairs
        value = torch.zeros(len(key), dtype=torch.float64).index_add_(0, inverse, weights.reshape(-1))
        col, row = key // n, key % n  # sorted by column, then row
        count = torch.bincount(col, minlength=s * n)
        width = int(count.max())  # the most rows that read one HR sample
        slot = torch.arange(len(key)) - (torch.cumsum(count, 0) - count)[col]
        R = torch.full((width, s * n), -1, dtype=torch.long)  # R[a, p]: the a-th row reading sample p (−1: none)
        V = torch.zeros(width, s * n, dtype=torch.float64)
        R[slot, col], V[slot, col] = row, value
        pairs = [(a, b) for a in range(width) for b in range(width)]

        def offset(a: int, b: int) -> torch.Tensor:  # j − i of each pair; 0 where a slot is empty (weight 0)
            d = torch.where((R[a] >= 0) & (R[b] >= 0), R[b] - R[a], 0)
            return (d + n // 2) % n - n // 2 if self.spec.boundary == "circular" else d

        B = max(int(offset(a, b).abs().max()) for a, b in pairs)
        band = torch.zeros(2 * B + 1, n, dtype=torch.float64)
        for a, b in pairs:
            band.view(-1).index_add_(0, (offset(a, b) + B) * n + R[a].clamp(min=0), V[a] * V[b])
        return band, B
