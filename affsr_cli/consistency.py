"""The contract after f (make_consistent: Π_x, the box fit, the shaped rounding, the Pillow match; infer.py
runs it on the network's output, project.py on another tool's) and the saved file of `affsr upscale`,
measured: after the box fit and the shaped rounding (boxfit.py),
the levels are moved until Pillow's own resize gives x back (a Pillow A), and the file read back is
judged: LR-PSNR of A(saved) against x, the Pillow round trip, the verdict of the promise (docs/promise.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import boxfit
from .boxfit import SMALL, BoxFit, threads
from .errors import AffsrError

if TYPE_CHECKING:
    from .projection import OperatorSpec

Stage = Callable[[str, int, int], None]  # (stage name, done, total): progress after the network

PILLOW_FILTERS = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "area": "BOX", "lanczos3": "LANCZOS"}
PILLOW_PASSES = 64  # most passes of match_pillow
PILLOW_MOVES = 4  # HR pixels moved by one level per differing LR pixel and pass
PILLOW_TILE = 16  # LR pixels: after its first pass, match_pillow redoes Pillow's resize only on the tiles it changed
PILLOW_BULK = (
    4096  # HR pixels changed in one pass above which the Pillow images are rebuilt, not updated pixel by pixel
)


def pillow_images(levels: np.ndarray) -> list:
    """levels (H, W, C) uint8 as Pillow images: one RGB image (Pillow resizes its bands alike) or one per channel."""
    from PIL import Image

    if levels.shape[2] == 3:
        return [Image.fromarray(np.ascontiguousarray(levels), "RGB")]
    return [Image.fromarray(np.ascontiguousarray(levels[..., c])) for c in range(levels.shape[2])]


def pillow_resize(
    levels: np.ndarray | list, size: tuple[int, int], family: str, box: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """Pillow's own 8-bit `Image.resize` of levels (H, W, C) uint8 (or their `pillow_images`) to size
    (h, w), each channel alike. `box` (left, top, right, bottom) in HR pixels: only that region, as
    Pillow computes it inside the whole resize (its filter reads beyond the box)."""
    from PIL import Image

    flt = getattr(Image.Resampling, PILLOW_FILTERS[family])
    h, w = size
    images = pillow_images(levels) if isinstance(levels, np.ndarray) else levels
    out = [np.asarray(im.resize((w, h), flt, box=box)) for im in images]
    return out[0] if out[0].ndim == 3 else np.stack(out, 2)


def matches_pillow(spec, x: torch.Tensor, bits: int | None) -> bool:
    """Whether saved 8-bit files can be made to give x back through Pillow's own resize: A is one of
    Pillow's filters with its borders, and x (C, h, w) holds 8-bit levels."""
    if bits != 8 or spec.family not in PILLOW_FILTERS or spec.boundary != "pil":
        return False
    q = x.double() * 255
    return bool((q - q.round()).abs().max() <= 1e-4)


def _redo_tiles(got: np.ndarray, images: list, rows: np.ndarray, cols: np.ndarray, spec, k: int):
    """got (h, w, C) ← Pillow's resize of the images (levels, k taps a side) again, on each PILLOW_TILE²
    tile of LR pixels whose footprint holds one of the changed HR pixels (rows, cols). Tile by tile:
    Pillow's result on a box equals its whole resize there for such tiles, though not always for long
    thin boxes (Pillow 13: ±1 on a 2 × 42 box of a 50 × 42 resize); match_pillow checks the whole
    resize before it stops."""
    s, o, T = spec.scale, spec.offset, PILLOW_TILE
    h, w = got.shape[:2]
    marked = np.zeros((-(-h // T), -(-w // T)), bool)
    # LR pixel i reads HR rows s·i + o … s·i + o + k − 1 (one more each side, in case Pillow's support is wider)
    lo_i, hi_i = np.clip(-(-(rows - o - k) // s), 0, h - 1) // T, np.clip((rows - o + 1) // s, 0, h - 1) // T
    lo_j, hi_j = np.clip(-(-(cols - o - k) // s), 0, w - 1) // T, np.clip((cols - o + 1) // s, 0, w - 1) // T
    for a, b in ((lo_i, lo_j), (lo_i, hi_j), (hi_i, lo_j), (hi_i, hi_j)):  # a footprint spans ≤ 2 tiles a side
        marked[a, b] = True
    for ti, tj in zip(*np.nonzero(marked)):
        i0, i1, j0, j1 = ti * T, min(h, ti * T + T), tj * T, min(w, tj * T + T)
        got[i0:i1, j0:j1] = pillow_resize(images, (i1 - i0, j1 - j0), spec.family, (s * j0, s * i0, s * j1, s * i1))


def match_pillow(
    levels: np.ndarray,
    x: torch.Tensor,
    spec,
    max_passes: int = PILLOW_PASSES,
    on_pass: Callable[[int, int], None] = lambda done, total: None,
) -> int:
    """In place: nudge the 8-bit levels (H, W, C) until Pillow's own 8-bit resize gives the 8-bit x
    (C, h, w) back, LR pixel for LR pixel. Pillow rounds and clips to [0, 255] between its horizontal
    and vertical passes, which A (in floating point) does not: near black and white edges that moves
    a few LR pixels by a level or two. Each pass moves, for every LR pixel that still differs, a few HR
    pixels of its footprint by one level in the direction that helps (up where A's weight is positive,
    down where it is negative, or the reverse): those with the largest weight that have room and have
    been moved least. Pillow's resize runs on the whole image first and last, in between only on the
    tiles a pass changed (should a tile ever differ from the whole, the passes go on with whole resizes).
    Returns the passes used (max_passes: some pixels may still differ). Run it only where the box fit
    reached its target (make_consistent): elsewhere x is out of reach and every pass is wasted
    (a stubborn pixel can take 20 passes of no visible progress, so no stall test can tell the two apart)."""
    s, o = spec.scale, spec.offset
    taps = spec.taps().numpy()
    k = len(taps)
    assert PILLOW_TILE * s > k + 2, "a footprint must span at most two tiles (see _redo_tiles)"
    u, v = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    weight = (taps[u] * taps[v]).ravel()  # (k²,) 2-D weight of footprint offset (o + u, o + v)
    du, dv = (o + u).ravel(), (o + v).ravel()
    H, W, _ = levels.shape
    moves = np.zeros(levels.shape, np.int32)
    want = (x.double() * 255).round().permute(1, 2, 0).numpy().astype(np.int16)  # (h, w, C)

    images = pillow_images(levels)  # kept in step with levels (pixel by pixel, or rebuilt after a pass of many)

    def whole() -> np.ndarray:
        return pillow_resize(images, want.shape[:2], spec.family).astype(np.int16)

    got, tiled, stale = whole(), True, False  # stale: got holds tiles redone since the last whole resize
    for p in range(max_passes):
        on_pass(p, max_passes)
        diff = want - got
        i, j, c = np.nonzero(diff)
        if not len(i) and stale:
            got, stale = whole(), False
            if not np.array_equal(diff, want - got):
                tiled = False
                diff = want - got
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
        if not len(r):
            return max_passes  # no pixel has room to move: some stay different
        np.add.at(moves, (r, q, cc), 1)
        levels[r, q, cc] = (levels[r, q, cc].astype(np.int16) + dl).clip(0, 255)
        if len(r) > PILLOW_BULK:
            images = pillow_images(levels)
        else:
            _put(images, levels, r, q)
        if tiled:
            _redo_tiles(got, images, r, q, spec, k)
            stale = True
        else:
            got = whole()
    return max_passes


def _put(images: list, levels: np.ndarray, r: np.ndarray, q: np.ndarray):
    """Copy the levels at HR pixels (r, q) into their Pillow images."""
    for a, b in set(zip(r.tolist(), q.tolist())):
        if len(images) == 1:
            images[0].putpixel((b, a), tuple(levels[a, b].tolist()) if levels.shape[2] > 1 else int(levels[a, b, 0]))
        else:
            for c, im in enumerate(images):
                im.putpixel((b, a), int(levels[a, b, c]))


def lr_psnr(stored: np.ndarray, x: torch.Tensor, A: nn.Module, levels: int = 1) -> tuple[float, float]:
    """(LR-PSNR in dB, LR-MSE) of A(saved image) against x: stored (H, W, C) as read back from the
    file (C ≥ x's channels; a gray image saved as RGB is read from its first channel), values/levels."""
    psnr, mse, _, _ = _measure(stored, x, A, levels, 0.5)
    return psnr, mse


def _measure(
    stored: np.ndarray, x: torch.Tensor, A: nn.Module, levels: int, near: float
) -> tuple[float, float, float, float]:
    """(LR-PSNR, LR-MSE, max |A(saved) − x|, share of LR values further than `near` from x) of a saved image."""
    c = x.shape[0]
    if stored.shape[2] < c:
        raise AffsrError(f"the saved image has {stored.shape[2]} channel(s), expected {c}")
    sse, worst, off = 0.0, 0.0, 0
    with threads(1 if stored.shape[0] * stored.shape[1] <= SMALL else None):
        for k in range(c):
            band = torch.from_numpy(np.ascontiguousarray(stored[..., k]).astype(np.float32)) / levels
            r = (A(band[None]) - x[k : k + 1]).double().abs_()
            sse += float(r.square().sum())
            worst = max(worst, float(r.max()))
            off += int((r > near).sum())
    mse = sse / x.numel()
    return (10 * math.log10(1 / mse) if mse > 0 else math.inf), mse, worst, off / x.numel()


FLOOR_DB = {8: 60.0, 16: 80.0}  # the promise of a saved 8- or 16-bit file: LR-PSNR at least this (docs/promise.md)
FLOAT_TOLERANCE = 1e-5  # … and of a float32 file: max |A(saved) − x| at most this


@dataclass
class Verdict:
    """Whether a saved file keeps the promise A(saved) = x as far as its bit depth allows (docs/promise.md)."""

    consistent: bool
    lr_psnr: float  # dB of A(saved) against x (inf: equal)
    lr_mse: float
    max_error: float  # max |A(saved) − x|
    off: float  # share of LR values further than half a level (float files: FLOAT_TOLERANCE) from x
    pillow: float | None  # share of LR values that Pillow's own resize of the file gives back (8 bits, Pillow's A)
    warning: str | None  # None when consistent; else one line: what was reached, why, what gives exactness


def verdict(
    stored: np.ndarray,
    x: torch.Tensor,
    A: nn.Module,
    spec,
    bits: int,
    fit: BoxFit | None = None,
    lossy: str | None = None,
) -> Verdict:
    """Judge a saved image, stored (H, W, C ≥ x's C) as read back (levels, or float32 values for bits=32),
    against x (C, h, w): consistent when its LR-PSNR reaches FLOOR_DB[bits] (8 and 16 bits) or its
    largest LR error is at most FLOAT_TOLERANCE (float32), and, for 8-bit files under one of Pillow's
    operators with x on the 8-bit grid, when Pillow's own resize gives every LR value back. `fit` (the
    box fit's report) and `lossy` (the name of a lossy format) say why a file is not."""
    levels = 1 if bits == 32 else 2**bits - 1
    psnr, mse, worst, off = _measure(stored, x, A, levels, FLOAT_TOLERANCE if bits == 32 else 0.5 / levels)
    ok = worst <= FLOAT_TOLERANCE if bits == 32 else psnr >= FLOOR_DB[bits]
    pillow = None
    if matches_pillow(spec, x, bits):
        c = x.shape[0]
        got = pillow_resize(np.ascontiguousarray(stored[..., :c]), tuple(x.shape[1:]), spec.family)
        want = (x.double() * 255).round().permute(1, 2, 0).numpy()
        pillow = float((got == want).mean())
        ok = ok and pillow == 1.0
    if ok:
        return Verdict(True, psnr, mse, worst, off, pillow, None)
    depth = "float32" if bits == 32 else f"{bits}-bit"
    if bits == 32:
        reached = f"max |A(saved) − x| {worst:.1e}, over {FLOAT_TOLERANCE:g}"
    elif psnr < FLOOR_DB[bits]:
        reached = f"LR-PSNR {psnr:.1f} dB, under the {FLOOR_DB[bits]:g} dB of an exact {depth} file"
    else:  # the floor is reached; Pillow's own resize is what missed
        reached = f"LR-PSNR {psnr:.1f} dB"
    if pillow is not None:
        off_values = round((1 - pillow) * x.numel())
        reached += (
            f"; Pillow's {spec.family} resize gives back {100 * pillow:.3f} % of the input's values"
            f" ({off_values} of {x.numel()} a level or more off)"
        )
    family = f"{spec.family} A"
    exact = "--bits 32 (a float32 TIFF keeps the values outside [0, 1])"
    if spec.family != "area":
        exact += ", or --operator area if the input was made by box averaging (that A reaches every input)"
    if lossy:
        why, exact = f"{lossy} is lossy", "a lossless format (png, tif, webp)"
    elif fit is not None and fit.infeasible:
        why = (
            f"under {family} no image with values in [0, 1] downsamples to this input ({100 * off:.1f} % of its "
            "LR values stay more than half a level off), so the values were clipped to the range"
        )
    elif fit is not None and not fit.reached:
        why = (
            f"the values were clipped to [0, 1] and the fit back towards x stopped after {fit.iterations} "
            f"iterations ({100 * off:.1f} % of the LR values more than half a level off)"
        )
    elif bits == 32:
        why, exact = "float32 rounding in A", "none beyond float32"
    else:
        why = "Pillow rounds and clips between its two passes, and some values stay a level off"
    return Verdict(False, psnr, mse, worst, off, pillow, f"not exact: {reached}. Why: {why}. Exact: {exact}")


def resize(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic (antialiased when shrinking) resize of (C, H, W) to (C, *size)."""
    return F.interpolate(y[None], size=size, mode="bicubic", align_corners=False, antialias=True)[0]


def upscale_alpha(alpha: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upscaling of an alpha channel (1, h, w) -> (1, s·h, s·w); `fit_box` then makes it consistent too."""
    return F.interpolate(alpha[None], scale_factor=scale, mode="bicubic", align_corners=False)[0]


@dataclass
class Output:
    """One upscaled image as `affsr upscale` saves it."""

    y_hat: torch.Tensor  # (C, H, W) float32: Π_x f(x), fitted into [0, 1] (unclipped when bits is None)
    levels: np.ndarray | None  # (H, W, C) uint8 / uint16: the saved samples (None: not rounded)
    bits: int | None  # 8 or 16: what levels hold; None: float output (Π only, exact)
    box_iterations: int  # FISTA iterations of the box fit (0: Π_x f was already in range)
    pillow_passes: int = 0  # passes of match_pillow (8-bit files under a Pillow operator)
    fit: BoxFit = field(default_factory=BoxFit)  # what the box fit reached (docs/promise.md)

    def saved(self) -> torch.Tensor:
        """(C, H, W) float64: the values a reader of the saved file gets (levels / (2^bits − 1), or ŷ)."""
        if self.levels is None:
            return self.y_hat.double()
        return torch.from_numpy(self.levels.astype(np.float64)).permute(2, 0, 1) / (2**self.bits - 1)


def make_consistent(
    f: torch.Tensor,
    x: torch.Tensor,
    spec: OperatorSpec,
    A: nn.Module,
    pinv: nn.Module,
    bits: int | None = 8,
    rounding: bool = True,
    device: torch.device | str = "cpu",
    on_stage: Stage | None = None,
    small_threads: int | None = 1,
) -> Output:
    """The contract after f: any upscaled image f (C, s·h, s·w) float32 (a network's output, or another
    tool's file for `affsr project`), in place: one Π_x over the whole image, the box fit into [0, 1],
    the error-fed rounding to `bits` and, for 8-bit x under one of Pillow's operators, the Pillow match —
    only when the box fit reached its target: where no image in [0, 1] downsamples to x, Pillow's
    resize cannot give x back either, and the match would only spend its passes. on_stage(name, done,
    total): progress of the box fit ("fit", in iterations) and of the Pillow match ("Pillow match", passes).
    small_threads: the box fit's CPU threads on images of up to 4 M samples (`boxfit.fit`)."""
    stage = on_stage or (lambda name, done, total: None)
    pillow = rounding and matches_pillow(spec, x, bits)  # then Pillow's resize gives x back
    fitted = boxfit.fit(
        f,
        x,
        A,
        pinv,
        bits,
        device=device,  # in place: f becomes ŷ
        max_error=boxfit.MAX_FIT_ERROR if pillow else None,
        on_step=lambda done, total: stage("fit", done, total),
        small_threads=small_threads,
    )
    levels = boxfit.round_shaped(f, bits) if bits is not None and rounding else None
    passes = (
        match_pillow(levels, x, spec, on_pass=lambda done, total: stage("Pillow match", done, total))
        if pillow and fitted.reached
        else 0
    )
    return Output(f, levels, bits if levels is not None else None, fitted.iterations, passes, fitted)
