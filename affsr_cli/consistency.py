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

MAX_FIT_ERROR = 0.25 / 255  # fit_box: no LR pixel of the clipped ŷ further from x than a quarter of an 8-bit level
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
            max_iter: int | None = None, device: torch.device | str = "cpu", max_error: float | None = None) -> int:
    """In place: y (C, H, W) ← Π_x y, then, while that leaves [0, 1] and clipping it would cost LR-PSNR
    beyond a bound of 20·log10(2^bits − 1) + 16 dB (64 dB for 8 bits, 112 for 16; shaped rounding alone
    leaves ~80 and ~128) or, with `max_error`, move an LR pixel further than that from x (MAX_FIT_ERROR:
    what Pillow's own 8-bit resize of the saved file needs to give x back), accelerated POCS: FISTA on
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
                iterations = max(iterations, _pocs(yc, xc, A, pinv, bits, max_iter or (40 if bits <= 8 else 100), max_error))
        if yc.data_ptr() != y[ch].data_ptr():
            y[ch] = yc.cpu()
    return iterations


def _pocs(yc: torch.Tensor, xc: torch.Tensor, A: nn.Module, pinv: nn.Module, bits: int, max_iter: int,
          max_error: float | None = None) -> int:
    """FISTA from the consistent yc (in place); see fit_box."""
    levels = 2**bits - 1
    target = 10 ** -((20 * math.log10(levels) + 16) / 10)  # LR-MSE
    # A's rows sum to 1, so ‖A‖² ≤ its largest column sum (Schur): LR-MSE(clip w) ≤ gain·‖clip w − w‖² when Aw = x
    gain = float(A.adjoint(torch.ones_like(xc[:1])).max()) / xc.numel()

    def good(w: torch.Tensor) -> bool:
        lo, hi = torch.aminmax(w)
        if lo >= 0 and hi <= 1:
            return True
        clipped = w.clamp(0, 1)
        return (gain * float(torch.dist(clipped, w)) ** 2 <= target
                and (max_error is None or float((A(clipped) - xc).abs().max()) <= max_error))

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


PILLOW_FILTERS = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "area": "BOX", "lanczos3": "LANCZOS"}
PILLOW_PASSES = 64  # most passes of match_pillow
PILLOW_MOVES = 4  # HR pixels moved by one level per differing LR pixel and pass


def pillow_resize(levels: np.ndarray, size: tuple[int, int], family: str) -> np.ndarray:
    """Pillow's own 8-bit `Image.resize` of levels (H, W, C) uint8 to size (h, w), each channel alike."""
    from PIL import Image

    flt = getattr(Image.Resampling, PILLOW_FILTERS[family])
    h, w = size
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(levels[..., c])).resize((w, h), flt))
                     for c in range(levels.shape[2])], 2)


def matches_pillow(spec, x: torch.Tensor, bits: int | None) -> bool:
    """Whether saved 8-bit files can be made to give x back through Pillow's own resize: A is one of
    Pillow's filters with its borders, and x (C, h, w) holds 8-bit levels."""
    if bits != 8 or spec.family not in PILLOW_FILTERS or spec.boundary != "pil":
        return False
    q = x.double() * 255
    return bool((q - q.round()).abs().max() <= 1e-4)


def match_pillow(levels: np.ndarray, x: torch.Tensor, spec, max_passes: int = PILLOW_PASSES) -> int:
    """In place: nudge the 8-bit levels (H, W, C) until Pillow's own 8-bit resize gives the 8-bit x
    (C, h, w) back, LR pixel for LR pixel. Pillow rounds and clips to [0, 255] between its horizontal
    and vertical passes, which A (in floating point) does not: near black and white edges that moves
    a few LR pixels by a level or two. Each pass moves, for every LR pixel that still differs, a few HR
    pixels of its footprint by one level in the direction that helps (up where A's weight is positive,
    down where it is negative, or the reverse): those with the largest weight that have room and have
    been moved least. Returns the passes used (max_passes: some pixels may still differ)."""
    s, o = spec.scale, spec.offset
    taps = spec.taps().numpy()
    k = len(taps)
    u, v = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    weight = (taps[u] * taps[v]).ravel()  # (k²,) 2-D weight of footprint offset (o + u, o + v)
    du, dv = (o + u).ravel(), (o + v).ravel()
    H, W, _ = levels.shape
    moves = np.zeros(levels.shape, np.int32)
    want = (x.double() * 255).round().permute(1, 2, 0).numpy().astype(np.int16)  # (h, w, C)
    for p in range(max_passes):
        diff = want - pillow_resize(levels, want.shape[:2], spec.family)
        i, j, c = np.nonzero(diff)
        if not len(i):
            return p
        rows, cols = s * i[:, None] + du, s * j[:, None] + dv  # (n, k²) footprint of each differing LR pixel
        inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
        rows, cols, ch = rows.clip(0, H - 1), cols.clip(0, W - 1), np.broadcast_to(c[:, None], rows.shape)
        step = np.sign(diff[i, j, c])[:, None] * np.sign(weight)  # (n, k²): the level change that helps
        current = levels[rows, cols, ch].astype(np.int16)
        room = np.where(step > 0, current < 255, current > 0) & inside & (weight != 0)
        score = np.where(room, np.abs(weight) / (1 + moves[rows, cols, ch]), -1)
        best = np.argpartition(-score, PILLOW_MOVES - 1, axis=1)[:, :PILLOW_MOVES]  # (n, m)
        n = np.arange(len(i))[:, None]
        ok = score[n, best] > 0
        r, q, cc, dl = rows[n, best][ok], cols[n, best][ok], ch[n, best][ok], step[n, best][ok]
        np.add.at(moves, (r, q, cc), 1)
        levels[r, q, cc] = (levels[r, q, cc].astype(np.int16) + dl).clip(0, 255)
    return max_passes


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
