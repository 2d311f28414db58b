"""The saved file of `affsr upscale`: consistent with x, in range, rounded — and measured.

    f(x) ──Π_x, then accelerated POCS between {y : Ay = x} and the box [0, 1]──▶ ŷ in [0, 1], Aŷ ≈ x
    ──rounding with error feedback down the columns──▶ levels k / (2^bits − 1), saved, read back, A(saved) vs x

Rounding: plain rounding adds white noise of ±½ level, which A (a low-pass) passes at about 72 dB
LR-PSNR for 8 bits. Carrying each pixel's rounding error to the pixel below (first-order error
feedback, as in sigma-delta converters) moves that noise to high vertical frequencies, where A's
blur removes it: about 8 dB more, with every pixel within 1 level of ŷ.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .projection import project

SMALL = 4 << 20  # elements: below this, whole-image work runs on one CPU thread (see `threads`)


@contextmanager
def threads(n: int | None):
    """Run the block on n torch CPU threads (None: as it is). Operations of a few milliseconds (1-channel
    convolutions, elementwise passes over a few megapixels) run faster on one thread than on several
    that must wait for each other whenever a core is busy elsewhere: measured 3-9× on a shared 2-core
    machine, and at most ~2× slower on an idle one."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

def _chunks(c: int, hw: int) -> list[slice]:
    """Channels processed together: all for small images, one at a time above 4 Mpx (bounded memory)."""
    step = c if c * hw <= 4 << 20 else 1
    return [slice(i, i + step) for i in range(0, c, step)]


@torch.no_grad()
def fit_box(y: torch.Tensor, x: torch.Tensor, A: nn.Module, pinv: nn.Module, bits: int | None = 8,
            max_iter: int | None = None, device: torch.device | str = "cpu") -> int:
    """In place: y (C, H, W) ← Π_x y, then, while that leaves [0, 1] by more than half a level and
    clipping it would cost LR-PSNR beyond a bound of 20·log10(2^bits − 1) + 16 dB (64 dB for 8 bits,
    112 for 16; shaped rounding alone leaves ~80 and ~128), accelerated POCS: FISTA on
    ½‖(AAᵀ)^-½(Ay − x)‖² over the box, whose projected gradient step is clip(y − A⁺(Ay − x)).
    Returns the POCS iterations used (0: Π_x y was good enough), at most `max_iter` (default 40 for
    8 bits, 100 for 16). bits=None: Π_x only, unclipped (float outputs keep exact consistency).
    Runs on `device` channel group by channel group; y stays where it is."""
    iterations = 0
    for ch in _chunks(y.shape[0], y.shape[1] * y.shape[2]):
        yc, xc = y[ch].to(device), x[ch].to(device)
        with threads(1 if yc.device.type == "cpu" and yc.numel() <= SMALL else None):
            project(yc, xc, A, pinv, inplace=True)  # Π_x
            if bits is not None:
                iterations = max(iterations, _pocs(yc, xc, A, pinv, bits, max_iter or (40 if bits <= 8 else 100)))
        if yc.data_ptr() != y[ch].data_ptr():
            y[ch] = yc.cpu()
    return iterations


def _pocs(yc: torch.Tensor, xc: torch.Tensor, A: nn.Module, pinv: nn.Module, bits: int, max_iter: int) -> int:
    """FISTA from the consistent yc (in place); see fit_box."""
    levels = 2**bits - 1
    tol = 0.5 / levels
    target = 10 ** -((20 * math.log10(levels) + 16) / 10)  # LR-MSE
    # A's rows sum to 1, so ‖A‖² ≤ its largest column sum (Schur): LR-MSE(clip w) ≤ gain·‖clip w − w‖² when Aw = x
    gain = float(A.adjoint(torch.ones_like(xc[:1])).max()) / xc.numel()

    def good(w: torch.Tensor) -> bool:
        lo, hi = torch.aminmax(w)
        return (lo >= -tol and hi <= 1 + tol) or gain * float(torch.dist(w.clamp(0, 1), w)) ** 2 <= target

    if good(yc):
        yc.clamp_(0, 1)
        return 0
    cur, prev, t = yc.clamp_(0, 1), yc.clone(), 1.0
    for k in range(max_iter):
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        beta = (t - 1) / t_next
        z = prev.mul_(-beta).add_(cur, alpha=1 + beta)  # momentum point, in prev's memory
        project(z, xc, A, pinv, inplace=True)  # consistent: Az = x
        done = good(z)
        cur, prev, t = z.clamp_(0, 1), cur, t_next
        if done:
            break
    if cur.data_ptr() != yc.data_ptr():
        yc.copy_(cur)
    return k + 1


def round_shaped(y: torch.Tensor, bits: int = 8) -> np.ndarray:
    """Levels (H, W, C) uint8/uint16 for y (C, H, W) in [0, 1]: each row is rounded after adding the
    rounding error left by the row above (clipped to ±1 level), so the error is high-pass vertically.
    One thread: the row operations are too small to share, and waiting for a busy core costs more."""
    L = 2**bits - 1
    C, H, W = y.shape
    out = np.empty((H, W, C), np.uint16 if bits == 16 else np.uint8)
    with threads(1):
        for ch in _chunks(C, H * W):
            yc = y[ch]
            q = torch.empty(yc.shape, dtype=torch.int32)
            err = torch.zeros(yc.shape[0], W)
            for i in range(H):
                want = yc[:, i].mul(L).add_(err)
                level = want.round().clamp_(0, L)
                q[:, i] = level.to(torch.int32)
                err = want.sub_(level).clamp_(-1, 1)
            out[..., ch] = q.permute(1, 2, 0).numpy()
    return out


def lr_psnr(stored: np.ndarray, x: torch.Tensor, A: nn.Module, levels: int = 1) -> tuple[float, float]:
    """(LR-PSNR in dB, LR-MSE) of A(saved image) against x: stored (H, W, C) as read back from the
    file (C ≥ x's channels; a gray image saved as RGB is read from its first channel), values/levels."""
    c = x.shape[0]
    if stored.shape[2] < c:
        raise ValueError(f"the saved image has {stored.shape[2]} channel(s), expected {c}")
    sse = 0.0
    with threads(1 if stored.shape[0] * stored.shape[1] <= SMALL else None):
        for k in range(c):
            band = torch.from_numpy(np.ascontiguousarray(stored[..., k]).astype(np.float32)) / levels
            sse += float(((A(band[None]) - x[k:k + 1]).double() ** 2).sum())
    mse = sse / x.numel()
    return (10 * math.log10(1 / mse) if mse > 0 else math.inf), mse


def resize(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic (antialiased when shrinking) resize of (C, H, W) to (C, *size)."""
    return F.interpolate(y[None], size=size, mode="bicubic", align_corners=False, antialias=True)[0]


def upscale_alpha(alpha: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upscaling of an alpha channel (1, h, w) -> (1, s·h, s·w); `fit_box` then makes it consistent too."""
    return F.interpolate(alpha[None], scale_factor=scale, mode="bicubic", align_corners=False)[0]
