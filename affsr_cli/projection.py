"""The downsampling operator A, its exact pseudo-inverse A⁺ and the affine projection Π.

Paper: Sønderby et al., *Amortised MAP Inference for Image Super-resolution*, ICLR 2017,
https://arxiv.org/abs/1610.04490 — §3.1 (eq. 7) and Appendix B.

    A y      Gaussian blur + stride s, separable, per channel        (..., H, W) -> (..., H/s, W/s)
    A⁺ x     exact Moore-Penrose pseudo-inverse, Aᵀ (AAᵀ)⁻¹ x       (..., h, w) -> (..., s·h, s·w)
    Π_x f    (I − A⁺A) f + A⁺x = f − A⁺(A f − x), so that A Π_x f = x

Grid alignment ("centre", as PIL, OpenCV and MATLAB's imresize): LR pixel i covers HR pixels
s·i … s·i+s−1 and is centred on HR coordinate c_i = s·i + (s−1)/2 (pixel centres at integers).
A's 1-D kernel has k taps at HR indices s·i + o + t (t = 0 … k−1) with o = ⌊(s−1)/2⌋ − ⌊(k−1)/2⌋;
tap t weighs exp(−(o + t − (s−1)/2)² / 2σ²), normalised to sum 1. When k and s differ in parity
(the paper's 9 taps at stride 4) the window holds one tap more below the centre than above it.

Boundaries: HR indices outside the image are mapped back into it ("symmetric": mirror about the
outer pixel edge, edge pixel repeated, the natural choice for photos; "reflect": mirror about the
edge pixel; "replicate": clamp; "circular": wrap around, used to fit the local A⁺ of App. B).
Each is a linear index map, so A stays linear, Aᵀ is exact, and A⁺ is exact at the borders too.

The exact A⁺ is separable: A = A_h ⊗ A_w, so (AAᵀ)⁻¹ = (A_hA_hᵀ)⁻¹ ⊗ (A_wA_wᵀ)⁻¹, two small dense
n×n matrices on the LR grid (inverted once in float64 per size and cached).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

BOUNDARIES = ("symmetric", "reflect", "replicate", "circular")
SIGMA_PER_SCALE = 0.375  # default σ = 0.375·s (1.5 at 4×): README "Choosing σ"
CACHE_SIZE = 32  # image sizes whose index maps and Gram inverses are kept (least recently used go first)


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


@dataclass(frozen=True)
class OperatorSpec:
    """Everything needed to rebuild A (stored in every weights file's metadata)."""

    scale: int = 4  # stride s; HR size = s × LR size
    kernel_size: int = 9  # taps k of the 1-D Gaussian (the 2-D kernel is k×k)
    sigma: float = 1.5  # Gaussian standard deviation in HR pixels (default 0.375·s)
    boundary: str = "symmetric"  # one of BOUNDARIES

    def __post_init__(self):
        if not isinstance(self.scale, int) or isinstance(self.scale, bool) or not 2 <= self.scale <= 16:
            raise ValueError(f"scale must be an integer from 2 to 16, got {self.scale!r}")
        k = self.kernel_size
        if not isinstance(k, int) or isinstance(k, bool) or not self.scale <= k <= 4 * self.scale + 1:
            raise ValueError(
                f"kernel size {k!r} is not supported at scale {self.scale}: "
                f"use an integer from {self.scale} to {4 * self.scale + 1} (the paper: 9 at scale 4)"
            )
        if not (isinstance(self.sigma, (int, float)) and math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {self.sigma!r}")
        if self.boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {self.boundary!r}")

    @classmethod
    def for_scale(cls, scale: int = 4, kernel_size: int | None = None, sigma: float | None = None,
                  boundary: str = "symmetric") -> "OperatorSpec":
        """Defaults that follow the scale: k = 2s+1 taps, σ = 0.375·s (the paper's 9 taps at 4×)."""
        if not isinstance(scale, int) or isinstance(scale, bool):
            raise ValueError(f"scale must be an integer from 2 to 16, got {scale!r}")
        k = 2 * scale + 1 if kernel_size is None else kernel_size
        return cls(scale, k, SIGMA_PER_SCALE * scale if sigma is None else sigma, boundary)

    @property
    def offset(self) -> int:
        """HR index of tap 0 relative to s·i."""
        return (self.scale - 1) // 2 - (self.kernel_size - 1) // 2

    def taps(self, dtype=torch.float64) -> torch.Tensor:
        d = torch.arange(self.kernel_size, dtype=torch.float64) + self.offset - (self.scale - 1) / 2
        w = torch.exp(-(d**2) / (2 * self.sigma**2))
        return (w / w.sum()).to(dtype)  # (k,)

    def build(self) -> tuple["Downsample", "ExactPinv"]:
        """(A, exact A⁺)."""
        A = Downsample(self)
        return A, ExactPinv(A)

    def metadata(self) -> dict[str, str]:
        return {
            "scale": str(self.scale),
            "kernel_size": str(self.kernel_size),
            "sigma": repr(float(self.sigma)),
            "boundary": self.boundary,
            "alignment": "centre: LR pixel i is centred on HR coordinate s*i+(s-1)/2",
            "tap_offset": str(self.offset),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> "OperatorSpec":
        try:
            return cls(int(meta["scale"]), int(meta["kernel_size"]), float(meta["sigma"]), meta["boundary"])
        except KeyError as e:
            raise ValueError(f"metadata lacks the operator field {e.args[0]!r}") from None


def boundary_index(i: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Map integer positions i (any range) into 0 … n−1 by the boundary convention."""
    if mode == "circular":
        return i % n
    if mode == "replicate":
        return i.clamp(0, n - 1)
    if mode == "reflect" and n > 1:
        m = i % (2 * n - 2)
        return torch.where(m < n, m, 2 * n - 2 - m)
    if mode == "reflect":  # a single pixel reflects onto itself
        return torch.zeros_like(i)
    m = i % (2 * n)  # symmetric
    return torch.where(m < n, m, 2 * n - 1 - m)


class Downsample(nn.Module):
    """A: separable Gaussian blur + stride, applied to every channel alike. No parameters."""

    def __init__(self, spec: OperatorSpec = OperatorSpec()):
        super().__init__()
        self.spec = spec
        self.register_buffer("taps", spec.taps(torch.float64), persistent=False)
        self.weights = self.taps.tolist()  # the same taps as Python floats, for any dtype and device
        self._index_cache = LRU()

    @property
    def scale(self) -> int:
        return self.spec.scale

    def _index(self, n: int, device) -> torch.Tensor:
        """HR indices read by the n LR samples: (s·(n−1)+k,) positions, boundary-mapped."""
        s, k = self.spec.scale, self.spec.kernel_size
        make = lambda: boundary_index(torch.arange(s * (n - 1) + k, device=device) + self.spec.offset,  # noqa: E731
                                      s * n, self.spec.boundary)
        return self._index_cache.get_or_make((n, str(device)), make)

    def _index_list(self, n: int) -> list[int]:
        return self._index_cache.get_or_make((n, "list"), lambda: self._index(n, "cpu").tolist())

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
            raise ValueError(f"HR size {H}×{W} is not a multiple of the scale {s}")
        z = y
        for dim, n in ((-2, H // s), (-1, W // s)):
            z = z.index_select(dim, self._index(n, z.device))  # pad by the boundary map: s·(n−1)+k samples
            out = z[self._tap(dim, 0, n)] * self.weights[0]
            for t in range(1, len(self.weights)):
                out.add_(z[self._tap(dim, t, n)], alpha=self.weights[t])
            z = out
        return z  # (..., H/s, W/s)

    def adjoint(self, r: torch.Tensor) -> torch.Tensor:
        """Aᵀ: (..., h, w) -> (..., s·h, s·w); exact transpose of forward, borders included."""
        h, w = r.shape[-2:]
        s, k = self.spec.scale, self.spec.kernel_size
        z = r
        for dim, n in ((-1, w), (-2, h)):
            shape = list(z.shape)
            shape[dim] = s * (n - 1) + k
            padded = z.new_zeros(shape)
            for t, wt in enumerate(self.weights):
                padded[self._tap(dim, t, n)].add_(z, alpha=wt)
            z = self._fold(padded, dim, n)
        return z  # (..., s·h, s·w)

    def _fold(self, padded: torch.Tensor, dim: int, n: int) -> torch.Tensor:
        """Aᵀ of the boundary map: the s·(n−1)+k padded samples along `dim` added back onto the s·n HR
        samples they were read from. The boundary map is the identity inside the image, so that part is
        one slice, and only the few samples read from beyond the borders are added one by one."""
        s = self.spec.scale
        lo = -self.spec.offset  # padded index of HR sample 0 (offset ≤ 0 since k ≥ s)
        out = padded.narrow(dim, lo, s * n).clone()
        source = self._index_list(n)
        for j in (*range(lo), *range(lo + s * n, len(source))):
            out.select(dim, source[j]).add_(padded.select(dim, j))
        return out

    def matrix(self, n: int, dtype=torch.float64, device=None) -> torch.Tensor:
        """The 1-D operator as a dense (n, s·n) matrix (A = A_h ⊗ A_w)."""
        s, k = self.spec.scale, self.spec.kernel_size
        cols = self._index(n, device).unfold(0, k, s)  # (n, k) HR index read by tap t of sample i
        rows = torch.arange(n, device=device).unsqueeze(1).expand(n, k)
        M = torch.zeros(n, s * n, dtype=dtype, device=device)
        return M.index_put_((rows, cols), self.taps.to(device=device, dtype=dtype).expand(n, k), accumulate=True)


class ExactPinv(nn.Module):
    """A⁺ = Aᵀ(AAᵀ)⁻¹, exact at any size, borders included."""

    def __init__(self, A: Downsample):
        super().__init__()
        self.A = A
        self._gram_inv = LRU()

    def gram_inverse(self, n: int, dtype, device) -> torch.Tensor:
        """(A_1d A_1dᵀ)⁻¹ for LR length n, inverted in float64 and cached (LRU)."""
        def make():
            M = self.A.matrix(n, torch.float64, device)
            return torch.cholesky_inverse(torch.linalg.cholesky(M @ M.T)).to(dtype)

        return self._gram_inv.get_or_make((n, dtype, str(device)), make)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        Gh = self.gram_inverse(h, x.dtype, x.device)  # (h, h)
        Gw = self.gram_inverse(w, x.dtype, x.device)  # (w, w)
        return self.A.adjoint(Gh @ x @ Gw)  # Gw is symmetric, so Gw = Gwᵀ

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """(A⁺)ᵀ = (AAᵀ)⁻¹A: (..., s·h, s·w) -> (..., h, w)."""
        r = self.A(y)
        h, w = r.shape[-2:]
        return self.gram_inverse(h, r.dtype, r.device) @ r @ self.gram_inverse(w, r.dtype, r.device)


def project(f: torch.Tensor, x: torch.Tensor, A: nn.Module, pinv: nn.Module, inplace: bool = False) -> torch.Tensor:
    """Π_x f = f − A⁺(A f − x) (paper eq. 7): the one implementation of Π that every caller uses.

    Notation (<variable name> -> <name in paper>): f -> f(x), the network's output; x -> x, the LR
    image; A -> A; pinv -> A⁺ (exact or fitted). f (..., s·h, s·w) and x (..., h, w) of one dtype.
    `inplace` overwrites f (the whole-image passes of `affsr upscale`, where f is megapixels).
    Steps: 1. r = A f − x, the LR residual; 2. f − A⁺ r, which A maps to x when A A⁺ = I.
    """
    r = A(f) - x  # 1. (..., h, w)
    correction = pinv(r)  # A⁺ r (..., s·h, s·w)
    return f.sub_(correction) if inplace else f - correction  # 2.


class _ExactProjection(torch.autograd.Function):
    """Π with the exact A⁺ and a hand-written backward: Π is affine in f with Jacobian I − A⁺A,
    an orthogonal (symmetric) projector, so ∂L/∂f = g − A⁺A g (App. B.2) and ∂L/∂x = (A⁺)ᵀ g.
    One more pass of A and A⁺ instead of autograd through the index maps: several times faster."""

    @staticmethod
    def forward(ctx, f, x, pinv):
        ctx.pinv = pinv
        return project(f, x, pinv.A, pinv)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        pinv = ctx.pinv
        grad_f = project(g, g.new_zeros(()), pinv.A, pinv) if ctx.needs_input_grad[0] else None  # Π_0 g = (I − A⁺A) g
        grad_x = pinv.adjoint(g) if ctx.needs_input_grad[1] else None
        return grad_f, grad_x, None


class Projection(nn.Module):
    """Π_x f = f − A⁺(A f − x): the affine projection onto {y : A y = x} (paper eq. 7).

    `pinv` is ExactPinv (default) or a fitted LocalPinv (trainable if its weights require grad).
    Half-precision inputs (bf16 autocast, fp16) are projected in float32 and ŷ stays float32: cast
    back to bfloat16 it would be off by ~1e-3 in A ŷ − x. float64 stays float64.
    """

    def __init__(self, A: Downsample, pinv: nn.Module | None = None):
        super().__init__()
        self.A = A
        self.pinv = pinv if pinv is not None else ExactPinv(A)

    def forward(self, f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        work = torch.float64 if torch.float64 in (f.dtype, x.dtype) else torch.float32
        f, x = f.to(work), x.to(work)
        with torch.autocast(f.device.type, enabled=False):  # never in reduced precision
            if isinstance(self.pinv, ExactPinv) and self.pinv.A is self.A:
                return _ExactProjection.apply(f, x, self.pinv)
            return project(f, x, self.A, self.pinv)


class AffineProjected(nn.Module):
    """Wraps any network f(x, ...) -> HR so that its output is Π_x f(x): consistent by construction."""

    def __init__(self, net: nn.Module, projection: Projection):
        super().__init__()
        self.net = net
        self.projection = projection

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.projection(self.net(x, *args, **kwargs), x)
