"""The paper's local A⁺ (Appendix B): a convolution on the LR grid with s² kernels of m×m,
followed by a pixel shuffle, fitted by minimising ℓ1 + ℓ2 (eqs. 21–23) on random inputs.

    ℓ1(B) = E_y ‖Ay − ABAy‖²     y ~ N(0, I) on the HR grid   (mean over LR pixels)
    ℓ2(B) = E_x ‖Bx − BABx‖²     x ~ N(0, I) on the LR grid   (mean over HR pixels)

The fit runs on a periodic ("circular") domain so that B is fitted as the translation-invariant
operator it is; in use, B pads the LR image with A's boundary convention.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import weights
from .downsample import Downsample, boundary_index
from .errors import AffsrError
from .projection import ExactPinv, OperatorSpec, Projection

FIT_LR_SIZE = 16  # LR side of the periodic fitting domain (HR = s × 16)


class LocalPinv(nn.Module):
    """B: (..., h, w) -> (..., s·h, s·w); conv of s² m×m kernels on the LR grid + pixel shuffle."""

    def __init__(self, spec: OperatorSpec, size: int = 5, weight: torch.Tensor | None = None, trainable: bool = False):
        super().__init__()
        if not isinstance(size, int) or size < 1 or size % 2 == 0 or size > 31:
            raise AffsrError(f"A⁺ size must be an odd integer from 1 to 31, got {size!r}")
        self.spec, self.size = spec, size
        s = spec.scale
        if weight is None:
            weight = torch.zeros(s * s, 1, size, size, dtype=torch.float64)
        if tuple(weight.shape) != (s * s, 1, size, size):
            raise AffsrError(f"A⁺ weight has shape {tuple(weight.shape)}, expected {(s * s, 1, size, size)}")
        self.weight = nn.Parameter(weight.clone(), requires_grad=trainable)
        self._index_cache: dict = {}

    def _index(self, n: int, device) -> torch.Tensor:
        key = (n, str(device))
        if key not in self._index_cache:
            p = self.size // 2
            self._index_cache[key] = boundary_index(torch.arange(-p, n + p, device=device), n, self.spec.boundary)
        return self._index_cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        z = x.reshape(-1, 1, h, w)
        z = z.index_select(-2, self._index(h, z.device)).index_select(-1, self._index(w, z.device))
        z = F.conv2d(z, self.weight.to(z.dtype))  # (N, s², h, w)
        z = F.pixel_shuffle(z, self.spec.scale)  # (N, 1, s·h, s·w)
        return z.reshape(*x.shape[:-2], *z.shape[-2:])


def _impulse_kernels(spec: OperatorSpec, size: int, upsample) -> torch.Tensor:
    """An LR→HR operator's response to one LR impulse on a periodic domain, as m×m LR kernels."""
    s, n, p = spec.scale, FIT_LR_SIZE, size // 2
    delta = torch.zeros(1, 1, n, n, dtype=torch.float64)
    delta[..., 0, 0] = 1
    resp = upsample(delta)[0, 0]  # (s·n, s·n): HR response to LR pixel (0, 0)
    # the kernel of phase (a, b) at LR offset (u, v) is the response at HR (s·(−u)+a, s·(−v)+b)
    phases = resp.reshape(n, s, n, s).permute(1, 3, 0, 2)  # (a, b, i, j) <- HR (s·i+a, s·j+b)
    idx = torch.arange(p, -p - 1, -1) % n  # LR offsets u = −p … p, read at i = −u
    return phases[:, :, idx][:, :, :, idx].reshape(s * s, 1, size, size).contiguous()


def truncated_exact(spec: OperatorSpec, size: int) -> torch.Tensor:
    """The exact A⁺ cut to m×m LR support: (s², 1, m, m)."""
    A = Downsample(dataclasses.replace(spec, boundary="circular"))
    return _impulse_kernels(spec, size, ExactPinv(A))


@dataclasses.dataclass
class FitReport:
    l1: float  # ℓ1 on fresh N(0, I) probes
    l2: float  # ℓ2 on fresh N(0, I) probes
    max_penrose: float  # max|AA⁺A − A| on fresh probes
    distance_to_exact: float  # max |B − exact A⁺ cut to m×m| over kernel entries
    iterations: int
    seconds: float


def fit_local_pinv(
    spec: OperatorSpec,
    size: int = 5,
    max_iter: int = 20,
    probes: int = 4,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[LocalPinv, FitReport]:
    """Fit B by minimising ℓ1 + ℓ2 (float64, fixed N(0, I) probes, Gauss–Newton).

    ℓ1 + ℓ2 is a sum of squares in B's s²·m² weights, so each iteration solves the linearised
    problem exactly (minimum-norm least squares); it starts from the exact A⁺ cut to m×m and
    reaches rounding level in a few iterations. The paper used SGD on the same objective.
    At the optimum AB = I (a local right inverse of A): consistency is exact away from the
    borders, and B differs from the true A⁺ by as much as A⁺'s impulse response spills out of
    the m×m window (README: "Choosing σ").
    """
    t0 = time.perf_counter()
    s, n = spec.scale, FIT_LR_SIZE
    need = jacobian_bytes(s, size, probes)
    from .device import available_memory

    free = available_memory(torch.device("cpu"))
    if need > free:
        raise AffsrError(
            f"fitting a {size}×{size} A⁺ at scale {s} needs about {need / 2**30:.1f} GB for its Gauss–Newton "
            f"Jacobian and {free / 2**30:.1f} GB are free; use a smaller --size"
        )
    periodic = dataclasses.replace(spec, boundary="circular")
    A = Downsample(periodic)
    B = LocalPinv(periodic, size)
    gen = torch.Generator().manual_seed(seed)

    def draw(count):
        y = torch.randn(count, 1, s * n, s * n, generator=gen, dtype=torch.float64)
        return y, torch.randn(count, 1, n, n, generator=gen, dtype=torch.float64)

    y, x = draw(probes)

    def residual(w):  # [r1, r2] scaled so that ‖residual‖² = ℓ1 + ℓ2
        r1, r2 = _penrose_residuals(A, lambda z: torch.func.functional_call(B, {"weight": w}, (z,)), y, x)
        return torch.cat([r1.flatten() / r1.numel() ** 0.5, r2.flatten() / r2.numel() ** 0.5])

    start = truncated_exact(spec, size)
    w = start.clone()
    it = 0
    for it in range(1, max_iter + 1):
        r = residual(w)
        loss = float(r.pow(2).sum())
        if on_step:
            on_step(it, loss)
        if loss < 1e-30 or not math.isfinite(loss):
            break
        J = torch.func.jacfwd(residual)(w).reshape(r.numel(), -1)
        w = w + torch.linalg.lstsq(J, -r.unsqueeze(1), driver="gelsd").solution.reshape(w.shape)
    fitted = LocalPinv(spec, size, w)
    with torch.no_grad():
        r1, r2 = _penrose_residuals(A, LocalPinv(periodic, size, w), *draw(8))
    report = FitReport(
        float(r1.pow(2).mean()),
        float(r2.pow(2).mean()),
        float(r1.abs().max()),
        float((w - start).abs().max()),
        it,
        time.perf_counter() - t0,
    )
    return fitted, report


def jacobian_bytes(scale: int, size: int, probes: int = 4) -> int:
    """Memory of the fit's float64 Jacobian (residuals × weights), with room for jacfwd's copies."""
    residuals = probes * (FIT_LR_SIZE**2 + (scale * FIT_LR_SIZE) ** 2)
    return 3 * 8 * residuals * scale**2 * size**2


def _penrose_residuals(A: Downsample, B: Callable, y: torch.Tensor, x: torch.Tensor):
    """Ay − ABAy and Bx − BABx (eqs. 21–22)."""
    Ay = A(y)
    Bx = B(x)
    return Ay - A(B(Ay)), Bx - B(A(Bx))


def consistency_report(B: LocalPinv, lr_size: tuple[int, int] = (37, 53), seed: int = 0) -> dict[str, float]:
    """max |A Π_x f − x| for random f, x in [0, 1] (3 channels, odd non-square size), every pixel.

    `fitted` uses B (its border padding is not exact, so the interior is reported too);
    `exact` uses the exact A⁺, in float64 and in float32.
    """
    A = Downsample(B.spec)
    s, (h, w) = B.spec.scale, lr_size
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h, w, generator=gen, dtype=torch.float64)
    f = torch.rand(1, 3, s * h, s * w, generator=gen, dtype=torch.float64)
    fitted = (A(Projection(A, B)(f, x)) - x).abs()
    m = max(B.size, math.ceil(B.spec.kernel_size / s)) + 1  # LR pixels whose stencil meets the border
    out = {
        "consistency_fitted": float(fitted.max()),
        "consistency_fitted_interior": float(fitted[..., m:-m, m:-m].max()),
    }
    exact = Projection(A)
    for name, dtype in (("consistency_exact", torch.float64), ("consistency_exact_float32", torch.float32)):
        xd, fd = x.to(dtype), f.to(dtype)
        out[name] = float((A(exact(fd, xd)) - xd).abs().max())
    return out


FORMAT = "affsr.pinv.v1"
LAYOUT = "pinv.weight[a*s+b, 0, u, v] multiplies x[i+u-p, j+v-p] into y[s*i+a, s*j+b], p = size // 2"


def save(path, B: LocalPinv, report: FitReport | None = None, overwrite: bool = False):
    """A's taps and kernel and the fitted A⁺, with what is needed to rebuild both."""
    taps = B.spec.taps(torch.float64)
    meta = {"format": FORMAT, **B.spec.metadata(), "size": str(B.size), "layout": LAYOUT}
    if report is not None:
        meta.update(l1=repr(report.l1), l2=repr(report.l2))
    tensors = {"A.taps": taps, "A.kernel": torch.outer(taps, taps), "pinv.weight": B.weight.detach().double()}
    return weights.save_atomic(path, tensors, meta, overwrite)


def load(path, trainable: bool = False) -> LocalPinv:
    tensors, meta = weights.load(path)
    if meta.get("format") != FORMAT or "pinv.weight" not in tensors:
        raise AffsrError(f"{path}: not an affsr A⁺ file (format {meta.get('format')!r})")
    spec = OperatorSpec.from_metadata(meta)
    return LocalPinv(spec, int(meta["size"]), tensors["pinv.weight"], trainable=trainable)
