"""The downsampling operator A, its exact pseudo-inverse A⁺ and the affine projection Π.

Paper: Sønderby et al., *Amortised MAP Inference for Image Super-resolution*, ICLR 2017,
https://arxiv.org/abs/1610.04490 — §3.1 (eq. 7) and Appendix B.

    A y      a separable kernel + stride s, per channel                (..., H, W) -> (..., H/s, W/s)
    A⁺ x     exact Moore-Penrose pseudo-inverse, Aᵀ (AAᵀ)⁻¹ x          (..., h, w) -> (..., s·h, s·w)
    Π_x f    (I − A⁺A) f + A⁺x = f − A⁺(A f − x), so that A Π_x f = x

Kernel families (the operator must be the one that made the LR image; README "The operator A"):
- `gaussian`: the paper's blur, σ and taps k free (default 9 taps, σ = 0.375·s);
- `bicubic` (Keys, a = −0.5), `bilinear` (triangle), `area` (box) and `lanczos3` (sinc·sinc/3): the
  kernels of Pillow's `Image.resize`, antialiased as resizing down does it (support scaled by s), so
  tap t at distance d from the LR pixel's centre weighs φ(d / s), normalised to sum 1. `area` is also
  OpenCV's INTER_AREA at integer factors, `bicubic` with `matlab` borders MATLAB's imresize.

Grid alignment ("centre", as PIL, OpenCV and MATLAB's imresize): LR pixel i covers HR pixels
s·i … s·i+s−1 and is centred on HR coordinate c_i = s·i + (s−1)/2 (pixel centres at integers).
The 1-D kernel has k taps at HR indices s·i + o + t (t = 0 … k−1). Gaussian: o = ⌊(s−1)/2⌋ − ⌊(k−1)/2⌋
(when k and s differ in parity, as the paper's 9 taps at stride 4, the window holds one tap more below
the centre than above it); the resize families take every tap with |d| < support·s.

Boundaries: "pil" drops the taps that fall outside the image and renormalises the rest to sum 1
(Pillow). The others map HR indices outside the image back into it: "symmetric" (= "matlab", MATLAB's
imresize) mirrors about the outer pixel edge, the edge pixel repeated; "reflect" mirrors about the edge
pixel; "replicate" clamps; "circular" wraps around (used to fit the local A⁺ of App. B). Each is linear
(an index map, or zero padding and a per-row scale), so Aᵀ and A⁺ are exact at the borders too.

The exact A⁺ is separable: A = A_h ⊗ A_w, so (AAᵀ)⁻¹ = (A_hA_hᵀ)⁻¹ ⊗ (A_wA_wᵀ)⁻¹. Each 1-D Gram is banded
(a circulant for circular borders): it is factored once per length in float64 and cached, as a dense
inverse for short sides and as a block Cholesky factor (or its FFT) for long ones, so that time and memory
grow with the pixel count whatever the aspect ratio (a 1 × 20000 image as a 140 × 143 one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .downsample import BOUNDARIES, DEFAULT_BOUNDARY, FAMILIES, KERNELS, LRU, SHAPES, Downsample, resize_window
from .errors import AffsrError
from .gram import DENSE_MAX, BandedGram, CirculantGram, DenseGram

SIGMA_PER_SCALE = 0.375  # default σ = 0.375·s (1.5 at 4×): README "Choosing σ"


@dataclass(frozen=True)
class OperatorSpec:
    """Everything needed to rebuild A (stored in every weights file's metadata). Fields left None
    follow the scale and the family: Gaussian k = 2s+1 taps and σ = 0.375·s (the paper's 9 taps and
    σ = 1.5 at 4×); the resize families' taps follow from their support, and they have no σ."""

    scale: int = 4  # stride s; HR size = s × LR size
    kernel_size: int | None = None  # taps k of the 1-D kernel (free for gaussian only)
    sigma: float | None = None  # gaussian: standard deviation in HR pixels; None for the other families
    boundary: str | None = None  # one of BOUNDARIES (None: symmetric for gaussian, pil for the others)
    family: str = "gaussian"  # one of FAMILIES

    def __post_init__(self):
        if not isinstance(self.scale, int) or isinstance(self.scale, bool) or not 2 <= self.scale <= 16:
            raise AffsrError(f"scale must be an integer from 2 to 16, got {self.scale!r}")
        if self.family not in FAMILIES:
            raise AffsrError(f"operator must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        s, k, set_ = self.scale, self.kernel_size, lambda name, v: object.__setattr__(self, name, v)
        set_("boundary", DEFAULT_BOUNDARY[self.family] if self.boundary is None else self.boundary)
        if self.boundary not in BOUNDARIES:
            raise AffsrError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {self.boundary!r}")
        if self.family != "gaussian":
            taps = resize_window(self.family, s)[1]
            if k is not None and k != taps:
                raise AffsrError(
                    f"the {self.family} operator has {taps} taps at scale {s}; --kernel-size is for gaussian"
                )
            if self.sigma is not None:
                raise AffsrError(f"σ applies to the gaussian operator only, not to {self.family}")
            set_("kernel_size", taps)
            return
        k = 2 * s + 1 if k is None else k
        if not isinstance(k, int) or isinstance(k, bool) or not s <= k <= 4 * s + 1:
            raise AffsrError(
                f"kernel size {k!r} is not supported at scale {s}: "
                f"use an integer from {s} to {4 * s + 1} (the paper: 9 at scale 4)"
            )
        sigma = SIGMA_PER_SCALE * s if self.sigma is None else self.sigma
        if not (isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and 0.1 <= sigma <= 4 * s):
            raise AffsrError(f"sigma must be a number from 0.1 to {4 * s} (4·scale) HR pixels, got {sigma!r}")
        set_("kernel_size", k)
        set_("sigma", float(sigma))

    @classmethod
    def for_scale(
        cls,
        scale: int = 4,
        kernel_size: int | None = None,
        sigma: float | None = None,
        boundary: str | None = None,
        family: str = "gaussian",
    ) -> "OperatorSpec":
        """The constructor by another name (kept for callers of v1)."""
        return cls(scale, kernel_size, sigma, boundary, family)

    @property
    def offset(self) -> int:
        """HR index of tap 0 relative to s·i."""
        if self.family != "gaussian":
            return resize_window(self.family, self.scale)[0]
        return (self.scale - 1) // 2 - (self.kernel_size - 1) // 2

    def taps(self, dtype=torch.float64) -> torch.Tensor:
        d = torch.arange(self.kernel_size, dtype=torch.float64) + self.offset - (self.scale - 1) / 2
        if self.family == "gaussian":
            w = torch.exp(-(d**2) / (2 * self.sigma**2))
        else:
            w = KERNELS[self.family][0](d / self.scale)
        return (w / w.sum()).to(dtype)  # (k,)

    def build(self) -> tuple["Downsample", "ExactPinv"]:
        """(A, exact A⁺)."""
        A = Downsample(self)
        return A, ExactPinv(A)

    def describe(self) -> str:
        """One line for tables and notes."""
        if self.family == "gaussian":
            kernel = f"Gaussian σ = {self.sigma:g}, {self.kernel_size} taps"
        else:
            kernel = f"{self.family} ({SHAPES[self.family]}, antialiased), {self.kernel_size} taps"
        return f"{kernel}, stride {self.scale}, {self.boundary} borders"

    def metadata(self) -> dict[str, str]:
        meta = {
            "family": self.family,
            "scale": str(self.scale),
            "kernel_size": str(self.kernel_size),
            "boundary": self.boundary,
            "alignment": "centre: LR pixel i is centred on HR coordinate s*i+(s-1)/2",
            "tap_offset": str(self.offset),
        }
        if self.sigma is not None:
            meta["sigma"] = repr(self.sigma)
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> "OperatorSpec":
        """Files written before the families existed name no family: they are gaussian."""
        family = meta.get("family", "gaussian")
        needed = ("scale", "kernel_size", "sigma", "boundary") if family == "gaussian" else ("scale", "boundary")
        missing = [k for k in needed if k not in meta]
        if missing:
            raise AffsrError(f"metadata lacks the operator field {missing[0]!r}")

        def number(field: str, kind: type):
            try:
                return kind(meta[field])
            except (TypeError, ValueError, OverflowError):
                raise AffsrError(
                    f"operator field {field!r} is not {'an integer' if kind is int else 'a number'} "
                    f"({str(meta[field])[:40]!r})"
                ) from None

        scale = number("scale", int)
        k = number("kernel_size", int) if "kernel_size" in meta else None
        sigma = number("sigma", float) if family == "gaussian" else None
        return cls(scale, k, sigma, meta["boundary"], family)


PHOTO_FAMILY = "bicubic"  # the A of an image made elsewhere when nothing names one: Pillow's (and most tools') resize


def choose_operator(
    family: str | None = None,
    scale: int = 4,
    kernel_size: int | None = None,
    sigma: float | None = None,
    boundary: str | None = None,
    trained: OperatorSpec | None = None,
) -> OperatorSpec:
    """The A of a command from its options, one rule for upscale, eval and project (docs/operators.md,
    "Which A when none is named"):

    1. `--operator F` when given (in the weights' own family, what is not given stays the weights');
    2. else the weights' A when there are weights (`trained`: the A they were trained for);
    3. else `gaussian` when only the Gaussian's own options (--kernel-size, --sigma) are given;
    4. else `bicubic` (PHOTO_FAMILY, pil borders): small photos are made by resize functions, and
       affsr's shipped default weights use it, so their outputs score as they were made.
    With `trained`, `scale` is the weights' (the argument is not read)."""
    if trained is not None and (family is None or family.lower() == trained.family):
        keep = trained.family == "gaussian"
        return OperatorSpec(
            trained.scale,
            kernel_size or (trained.kernel_size if keep else None),
            sigma or trained.sigma,
            boundary or trained.boundary,
            trained.family,
        )
    if family is None:
        family = "gaussian" if kernel_size is not None or sigma is not None else PHOTO_FAMILY
    return OperatorSpec(trained.scale if trained is not None else scale, kernel_size, sigma, boundary, family.lower())


class ExactPinv(nn.Module):
    """A⁺ = Aᵀ(AAᵀ)⁻¹, exact at any size, borders included. (AAᵀ)⁻¹ = (A_hA_hᵀ)⁻¹ ⊗ (A_wA_wᵀ)⁻¹, each factor
    applied along its axis by a solver whose time and memory grow with the length: a dense inverse up to
    DENSE_MAX, beyond it an FFT (circular borders) or a block Cholesky of the banded Gram."""

    def __init__(self, A: Downsample):
        super().__init__()
        self.A = A
        self._gram_inv = LRU()

    def gram_solver(self, n: int, dtype, device):
        """The solver of A₁A₁ᵀ u = r for LR length n, factored in float64 and cached (LRU) per size, dtype, device."""

        def make():
            band, B = self.A.gram_band(n)
            circular = self.A.spec.boundary == "circular"
            if n <= DENSE_MAX or 2 * B + 1 >= n:
                solver = DenseGram(band, B, n, circular)
            elif circular:
                solver = CirculantGram(band, B, n)
            else:
                solver = BandedGram(band, B, n)
            return solver.to(dtype, device)

        return self._gram_inv.get_or_make((n, dtype, str(device)), make)

    def gram_solve(self, r: torch.Tensor) -> torch.Tensor:
        """(AAᵀ)⁻¹ r: (..., h, w) -> (..., h, w)."""
        h, w = r.shape[-2:]
        r = self.gram_solver(h, r.dtype, r.device).solve(r, -2)
        return self.gram_solver(w, r.dtype, r.device).solve(r, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A.adjoint(self.gram_solve(x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """(A⁺)ᵀ = (AAᵀ)⁻¹A: (..., s·h, s·w) -> (..., h, w)."""
        return self.gram_solve(self.A(y))


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


def remove_grid(f: torch.Tensor, s: int) -> torch.Tensor:
    """In place: f (..., H, W), sides multiples of s, less its image-wide period-s pattern: the mean of each
    of the s × s pixel phases over all s × s cells, less their mean, per channel (what `metrics.lattice`
    and `grid_levels` count). Returns f.

    Why (project_without_grid applies it to Π_x f, and the contract's Π_x comes after): every A here is
    the same kernel at each LR pixel, so A maps a period-s image to a flat one. The pattern (its mean aside) lies in A's null
    space but for that flat part: x says next to nothing of it, a photo's own is noise-sized, and the
    least-squares guess is none. What a network puts there is its own output grid (the pixel shuffle's,
    at fixed phases of each LR pixel), summed over the image. Taken from Π_x f, whose A-image is x, the
    second Π only corrects A of the pattern, a near-flat LR image; taken from f instead, Π's whole
    correction A⁺(Af − x) would bring a pattern of its own (the Gaussian A's A⁺ ripples at period s).
    On photos the result keeps ~1 % of the photo's own share, at no measurable cost in PSNR
    (weights/README.md, "The image-wide grid"). Local grids that cancel over the image are left."""
    *lead, H, W = f.shape
    cells = f.view(*lead, H // s, s, W // s, s)  # (..., h, s, w, s)
    phases = cells.mean((-4, -2), keepdim=True)  # (..., 1, s, 1, s): the mean of each phase
    cells.sub_(phases - phases.mean((-3, -1), keepdim=True))
    return f


def project_without_grid(f: torch.Tensor, x: torch.Tensor, A: nn.Module, pinv: nn.Module) -> torch.Tensor:
    """In place: remove_grid(Π_x f), the step `affsr upscale` (infer.Upscaler.network) and `affsr project
    --remove-grid` take before the contract's Π; from Π_x f, not f (remove_grid says why). Returns f."""
    return remove_grid(project(f, x, A, pinv, inplace=True), f.shape[-1] // x.shape[-1])


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
