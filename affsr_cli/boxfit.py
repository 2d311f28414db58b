"""The saved file of `affsr upscale`: consistent with x, in range, rounded.

    f(x) ──Π_x, then accelerated POCS between {y : Ay = x} and the box [0, 1]──▶ ŷ in [0, 1], Aŷ ≈ x
    ──rounding with error feedback down the columns──▶ levels k / (2^bits − 1) (then consistency.py)

Rounding: plain rounding adds white noise of ±½ level, which A (a low-pass) passes at about 72 dB
LR-PSNR for 8 bits. Carrying each pixel's rounding error to the pixel below (first-order error
feedback, as in sigma-delta converters) moves that noise to high vertical frequencies, where A's
blur removes it: about 8 dB more, with every pixel within 1 level of ŷ.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .projection import project

MAX_FIT_ERROR = (
    0.5 / 255
)  # fit_box: no LR pixel of the clipped ŷ half an 8-bit level or more from x (a quarter: 30 % more iterations, no fewer Pillow passes)
SMALL = 4 << 20  # elements: below this, whole-image work runs on one CPU thread (see `threads`)
MAX_ITER = {
    8: 24,
    16: 60,
}  # FISTA iterations of the box fit at most, both stages (24 ≈ the shipped network's own time on the CPU)
STALL = 0.97  # a stage stops when 3 iterations cut the LR-MSE by less than 3 % (0.13 dB)
RING_RESIDUAL = (
    1 / 255
)  # stage 2 guards the HR samples within reach of LR pixels left further than this from x by stage 1 …
FLAT = (
    1 / 32
)  # … whose touched LR pixels (see _Guard) differ by at most this (flat background beside an edge; by chance in noise: 0.3 %) …
FLAT_WIDE = 0.3  # … or whose LR pixel's 3×3 neighbourhood does (low-contrast surroundings, as red text's red channel) …
MIN_GUARD = 0.02  # … when that holds at least this share of the HR samples; else (noise) stage 1 goes on


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


@dataclass
class BoxFit:
    """What `fit` did to one image (its channel groups together); docs/promise.md explains each field."""

    iterations: int = 0  # FISTA iterations, both stages (the most over channel groups); 0: Π_x y was in range
    reached: bool = True  # the clipped ŷ met the LR-MSE target of `bits` (and max_error) in every channel group
    infeasible: bool = False  # proven by the fit's own dual certificate: no image in [0, 1] has A y = x
    guarded: float = 0.0  # share of HR samples held to their LR neighbourhood's range in stage 2 (no ringing)

    def add(self, other: "BoxFit", share: float):
        self.iterations = max(self.iterations, other.iterations)
        self.reached &= other.reached
        self.infeasible |= other.infeasible
        self.guarded += other.guarded * share


@torch.no_grad()
def fit(
    y: torch.Tensor,
    x: torch.Tensor,
    A: nn.Module,
    pinv: nn.Module,
    bits: int | None = 8,
    max_iter: int | None = None,
    device: torch.device | str = "cpu",
    max_error: float | None = None,
    on_step: Callable[[int, int], None] | None = None,
    small_threads: int | None = 1,
) -> BoxFit:
    """In place: y (C, H, W) ← Π_x y, then, while that leaves [0, 1], the image in [0, 1] whose A is
    closest to x (docs/promise.md):

    1. FISTA on ½‖(AAᵀ)^-½(Ay − x)‖² over the box [0, 1] (its projected gradient step is the alternating
       projection clip(y − A⁺(Ay − x))), until the clipped image's LR-PSNR reaches 20·log10(2^bits − 1)
       + 16 dB (64 dB for 8 bits, 112 for 16; shaped rounding alone leaves ~80 and ~128) and, with
       `max_error`, no LR pixel is further than that from x (MAX_FIT_ERROR: what Pillow's own 8-bit
       resize of the saved file needs to give x back); or until it stalls (STALL). Each step also
       yields a dual certificate: c = (AAᵀ)⁻¹(x − Az) with ⟨c, x⟩ > Σ max(Aᵀc, 0) proves that no image
       in [0, 1] has A y = x (`infeasible`), since ⟨c, Ay⟩ ≤ Σ max(Aᵀc, 0) for every such y. Once that is
       proven, stage 1 stops at half of `max_iter` at most.
    2. When the target was not reached: the same FISTA over tighter bounds near the LR pixels still
       off by more than RING_RESIDUAL. There, an HR sample whose two nearest LR pixels in each
       direction agree within FLAT (the flat background beside a thin line or a glyph) is held within
       their range: the LR-optimal image would put dark or bright dots there (A's negative lobes and
       overlapping footprints reward them), which bicubic upscaling never shows.

    At most `max_iter` iterations in all (MAX_ITER: 24 for 8 bits, 60 for 16). bits=None: Π_x only,
    unclipped (float outputs keep exact consistency). Runs on `device` channel group by channel group;
    y stays where it is. on_step(done, total): progress in iterations, total the most there can be.
    small_threads: CPU threads for images up to SMALL elements (None: torch's count; the default 1 is
    right whenever another job may keep a core busy, see `threads`)."""
    result = BoxFit()
    chunks = _chunks(y.shape[0], y.shape[1] * y.shape[2])
    cap = max_iter or MAX_ITER[8 if (bits or 8) <= 8 else 16]
    total = (cap if bits is not None else 1) * len(chunks)
    for i, ch in enumerate(chunks):
        yc, xc = y[ch].to(device), x[ch].to(device)
        with threads(small_threads if yc.device.type == "cpu" and yc.numel() <= SMALL else None):
            project(yc, xc, A, pinv, inplace=True)  # Π_x
            if bits is not None:

                def tick(k: int, base=i * cap):
                    if on_step:
                        on_step(base + k, total)

                result.add(_fit_box(yc, xc, A, pinv, bits, cap, max_error, tick), yc.shape[0] / y.shape[0])
        if yc.data_ptr() != y[ch].data_ptr():
            y[ch] = yc.cpu()
        if on_step:
            on_step((i + 1) * total // len(chunks), total)
    return result


def fit_box(
    y: torch.Tensor,
    x: torch.Tensor,
    A: nn.Module,
    pinv: nn.Module,
    bits: int | None = 8,
    max_iter: int | None = None,
    device: torch.device | str = "cpu",
    max_error: float | None = None,
) -> int:
    """`fit`, returning only the iterations it used (0: Π_x y was already in range)."""
    return fit(y, x, A, pinv, bits, max_iter, device, max_error).iterations


def _fit_box(
    yc: torch.Tensor,
    xc: torch.Tensor,
    A: nn.Module,
    pinv: nn.Module,
    bits: int,
    max_iter: int,
    max_error: float | None,
    tick: Callable[[int], None] = lambda k: None,
) -> BoxFit:
    """The two stages of `fit` on one channel group yc (C, H, W), consistent with xc, in place."""
    lo, hi = torch.aminmax(yc)
    if lo >= 0 and hi <= 1:
        return BoxFit()
    target = 10 ** -((20 * math.log10(2**bits - 1) + 16) / 10)  # LR-MSE
    stage1 = _Fista(yc, xc, A, pinv, target, max_error, certify=True, tick=tick)
    # once infeasibility is proven, stage 1 hands over at half the iterations, unless stage 2 would guard
    # almost nothing (noise): then going on without a restart of the momentum gains more
    guards = []
    stage1.run(
        max_iter,
        lambda z: z.clamp_(0, 1),
        max_iter // 2,
        lambda a: guards.append(_Guard(xc, a, A.spec)) or guards[-1].share >= MIN_GUARD,
    )
    out = BoxFit(stage1.iterations, stage1.reached, stage1.proven)
    left = max_iter - stage1.iterations
    if stage1.reached or left <= 0:
        return out
    guard = guards[-1] if stage1.handed_over else _Guard(xc, stage1.a_cur, A.spec)
    if guard.share:
        stage2 = _Fista(yc, xc, A, pinv, target, max_error, tick=lambda k: tick(stage1.iterations + k))
        stage2.run(left, guard)
        out.iterations += stage2.iterations
        out.reached = stage2.reached
        out.guarded = guard.share
    return out


class _Fista:
    """FISTA from the clipped yc (in place): each iteration is one A⁺ and one A over the image. A of the
    clipped iterate serves the test and, A being linear, the next residual A z − x = (1 + β)·A(cur) −
    β·A(prev) − x. With `certify`, each gradient step also checks the dual certificate of `fit`: with
    z the momentum point and v = A⁺(x − Az) (minus the gradient), c = (AAᵀ)⁻¹(x − Az) has Aᵀc = v and
    ⟨c, x⟩ = ⟨v, z⟩ + ‖v‖², so the gap ⟨c, x⟩ − Σ max(v, 0) costs three sums."""

    def __init__(
        self,
        yc,
        xc,
        A,
        pinv,
        target: float,
        max_error: float | None,
        certify: bool = False,
        tick: Callable[[int], None] = lambda k: None,
    ):
        self.yc, self.xc, self.A, self.pinv, self.tick = yc, xc, A, pinv, tick
        self.target, self.max_error, self.certify = target, max_error, certify
        self.iterations, self.reached, self.proven, self.a_cur, self.handed_over = 0, False, False, None, False

    def good(self, a: torch.Tensor) -> tuple[bool, float]:
        """(target met, LR-MSE) for a = A(clipped iterate)."""
        r = (a - self.xc).abs_()
        mse = float(r.square().mean())
        return mse <= self.target and (self.max_error is None or float(r.max()) <= self.max_error), mse

    def _certify(self, z: torch.Tensor, g: torch.Tensor):
        """g = A⁺(Az − x) = −v at the momentum point z; proven when the gap beats float32 rounding (bounded
        by 1e-4 of ‖g‖₁·(max |z| + max |g| + 1)). Sums without temporaries: Σ max(v, 0) = (‖g‖₁ − Σ g)/2."""
        gf, zf = g.reshape(-1), z.reshape(-1)  # A⁺ may return a strided view: then a copy
        l1 = float(gf.abs().sum())
        relu = (l1 - float(gf.sum())) / 2
        gap = float(torch.dot(gf, gf)) - float(torch.dot(gf, zf)) - relu
        bound = max(abs(float(v)) for v in (*torch.aminmax(zf), *torch.aminmax(gf)))
        self.proven = gap > 1e-4 * l1 * (bound + 1)

    def run(self, max_iter: int, clip, hand_over: int | None = None, ready=lambda a: True):
        """Up to max_iter iterations with clip(z) (in place) as the projection onto the bounds; stops when
        the target is met, when 3 iterations gain less than STALL, or once infeasibility is proven and
        `hand_over` iterations are done, if ready(A of the iterate) (asked once)."""
        yc, xc, A = self.yc, self.xc, self.A
        cur = clip(yc.clone())
        a_cur = A(cur)
        self.reached, mse = self.good(a_cur)
        history, asked = [mse], False
        if self.reached:
            yc.copy_(cur)
            self.a_cur = a_cur
            return
        prev, a_prev, t = yc, a_cur, 1.0  # β = 0 at first: prev's values do not count, its memory is reused
        for k in range(max_iter):
            t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
            beta = (t - 1) / t_next
            z = prev.lerp_(cur, 1 + beta)  # momentum point (1 + β)·cur − β·prev, in prev's memory
            g = self.pinv(torch.lerp(a_prev, a_cur, 1 + beta).sub_(xc))  # A⁺(Az − x)
            if self.certify and not self.proven:
                self._certify(z, g)
            clip(z.sub_(g))  # Π_x z (A z = x), then into the bounds
            a_z = A(z)
            prev, a_prev, cur, a_cur, t = cur, a_cur, z, a_z, t_next
            self.iterations = k + 1
            self.tick(self.iterations)
            self.reached, mse = self.good(a_z)
            history.append(mse)
            if self.reached or (len(history) > 3 and mse > STALL * history[-4]):
                break
            if hand_over is not None and self.proven and self.iterations >= hand_over and not asked:
                asked = True
                if ready(a_cur):
                    self.handed_over = True
                    break
        if cur.data_ptr() != yc.data_ptr():
            yc.copy_(cur)
        self.a_cur = a_cur


class _Guard:
    """The bounds of stage 2 of `fit`, applied in place to z (C, s·h, s·w) as a view (C, h, s, w, s).
    HR sample (s·i + u, s·j + v) touches its own LR pixel and the nearer neighbour along each axis:
    (i−1, j) when u < s/2, else (i+1, j); (i, j−1) when v < s/2, else (i, j+1). Where the LR pixels
    it touches differ by at most FLAT (or the 3×3 around its own by at most FLAT_WIDE), and within
    reach of an LR pixel that stage 1 left further than RING_RESIDUAL from x, the sample is held in
    [their min, their max]; elsewhere in [0, 1]. So away from an edge a sample keeps its LR pixel's
    value, and only samples next to a darker or brighter LR pixel may move towards it: lines keep
    smooth edges, and no dot can float beside them, nor between two diagonal lines (whose 2×2 nearest
    LR pixels are never flat: holding samples to those, as first tried, left rungs of dots there).
    The bounds are LR-sized, one pair per quadrant of (u, v)."""

    def __init__(self, x: torch.Tensor, a: torch.Tensor, spec):
        C, h, w = x.shape
        s = spec.scale
        reach = -(-spec.kernel_size // (2 * s)) + 1  # LR pixels whose footprint (and negative lobes) overlap
        off = ((a - x).abs() > RING_RESIDUAL).to(x.dtype)[None]
        region = F.max_pool2d(off, 2 * reach + 1, 1, reach)[0] > 0  # (C, h, w)
        wide = F.pad(x[None], (1, 1, 1, 1), mode="replicate")
        calm = (F.max_pool2d(wide, 3, 1) + F.max_pool2d(-wide, 3, 1))[0] <= FLAT_WIDE  # (C, h, w)
        rows = {g: _shift(x, g, 1) for g in (-1, 1)}  # x of LR pixel (i + g, j), the edge repeated
        cols = {g: _shift(x, g, 2) for g in (-1, 1)}
        m = s // 2
        self.s, self.parts, guarded = s, [], 0
        for gi, us in ((-1, slice(0, m)), (1, slice(m, s))):
            for gj, vs in ((-1, slice(0, m)), (1, slice(m, s))):
                lo = torch.minimum(torch.minimum(x, rows[gi]), cols[gj])
                hi = torch.maximum(torch.maximum(x, rows[gi]), cols[gj])
                on = region & (((hi - lo) <= FLAT) | calm)
                guarded += int(on.sum()) * (us.stop - us.start) * (vs.stop - vs.start)
                self.parts.append(
                    (us, vs, torch.where(on, lo, 0)[:, :, None, :, None], torch.where(on, hi, 1)[:, :, None, :, None])
                )
        self.share = guarded / (C * h * w * s * s)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        C, H, W = z.shape
        s = self.s
        view = z.view(C, H // s, s, W // s, s)
        for us, vs, lo, hi in self.parts:
            view[:, :, us, :, vs].clamp_(lo, hi)  # a view of z: z itself is clamped
        return z


def _shift(x: torch.Tensor, g: int, dim: int) -> torch.Tensor:
    """x moved by g along dim: out[i] = x[i + g], the edge pixel repeated at the borders."""
    n = x.shape[dim]
    return x.index_select(dim, (torch.arange(n, device=x.device) + g).clamp_(0, n - 1))


def round_shaped(y: torch.Tensor, bits: int = 8) -> np.ndarray:
    """Levels (H, W, C) uint8/uint16 for y (C, H, W) in [0, 1]: each row is rounded after adding the
    rounding error left by the row above (clipped to ±1 level), so the error is high-pass vertically.
    In NumPy, float32 as torch would do it (round half to even): a row is too small for torch's per-call
    cost (a 1024-row image: 15 ms here, 50 ms in torch)."""
    L = np.float32(2**bits - 1)
    C, H, W = y.shape
    out = np.empty((H, W, C), np.uint16 if bits == 16 else np.uint8)
    for ch in _chunks(C, H * W):
        yc = np.ascontiguousarray(y[ch].detach().float().cpu().numpy().transpose(1, 2, 0))  # (H, W, c)
        err, want, level = (np.zeros(yc.shape[1:], np.float32) for _ in range(3))
        for i in range(H):  # in place: no allocation per row
            np.add(np.multiply(yc[i], L, out=want), err, out=want)
            np.clip(np.rint(want, out=level), 0, L, out=level)
            out[i, :, ch] = level
            np.clip(np.subtract(want, level, out=err), -1, 1, out=err)
    return out
