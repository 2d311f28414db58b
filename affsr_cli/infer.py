"""Inference for `affsr upscale`: the network on overlapping tiles, one exact projection over the
whole image, and a saved file that stays as consistent as its bit depth allows.

    x (C, h, w) in [0, 1] ──f on overlapping tiles, seams blended──▶ f(x) (C, s·h, s·w)
    ──Π_x, then accelerated POCS between {y : Ay = x} and the box [0, 1]──▶ ŷ in [0, 1], Aŷ ≈ x
    ──rounding with error feedback down the columns──▶ levels k / (2^bits − 1), saved

Tiles: a tile's output is exact wherever it lies at least R LR pixels (the network's receptive
radius) inside the tile, so neighbouring tiles are cross-faded only over the part of their overlap
where both are exact: tiled output = untiled output up to float rounding when overlap ≥ 2R + 2.
Π_x runs once over the whole image afterwards, so Aŷ = x never depends on the tiling.

Rounding: plain rounding adds white noise of ±½ level, which A (a low-pass) passes at about 73 dB
LR-PSNR for 8 bits. Carrying each pixel's rounding error to the pixel below (first-order error
feedback, as in sigma-delta converters) moves that noise to high vertical frequencies, where A's
blur removes it: about 8 dB more, with every pixel within 1 level of ŷ.

The engine never prints; notes and progress reach the caller through `on_note` and `on_tile`.
"""
from __future__ import annotations

import copy
import math
import os
from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .methods import SRModel
from .projection import OperatorSpec

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CPU_TILE_BUDGET = 1 << 30  # bytes of activations per tile on the CPU (tile="auto")
MAX_TILE = 1024  # LR pixels per side
Note = Callable[[str], None]


def pick_device(name: str = "auto") -> torch.device:
    """auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps; unavailable devices are an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name}: CUDA is not available here (torch {torch.__version__})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name}: there are {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name}: MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def pick_dtype(precision: str, device: torch.device) -> tuple[torch.dtype, str | None]:
    """The network's dtype and a note when the request is not honoured (reduced precision on the CPU)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if device.type == "cpu" and precision != "fp32":
        return torch.float32, f"{precision} is not used on the CPU (slower there than fp32); running in fp32"
    return PRECISIONS[precision], None


def receptive_radius(net: nn.Module) -> int:
    """Pixels of context one output pixel sees on each side, on the network's input grid: the sum
    over its convolutions of dilation·(k−1)/2, exact for a chain and an upper bound with skips."""
    return sum(m.dilation[0] * (m.kernel_size[0] - 1) // 2 for m in net.modules() if isinstance(m, nn.modules.conv._ConvNd))


def fuse_batchnorm(net: nn.Module) -> nn.Module:
    """A copy of `net` (in eval mode) with every Conv2d → BatchNorm2d pair of a Sequential folded into one conv."""
    net = copy.deepcopy(net).eval()
    for seq in (m for m in net.modules() if isinstance(m, nn.Sequential)):
        for i in range(len(seq) - 1):
            if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                seq[i], seq[i + 1] = fuse_conv_bn_eval(seq[i], seq[i + 1]), nn.Identity()
    return net


def available_memory(device: torch.device) -> int:
    """Bytes free for new tensors on `device` (best effort)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "mps":
        return 2 << 30
    try:
        with open("/proc/meminfo") as fh:
            info = dict(line.split(":", 1) for line in fh)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def tile_spans(n: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) of tiles of length ≤ `tile` covering 0 … n−1, neighbours overlapping by ≥ `overlap`."""
    if n <= tile:
        return [(0, n)]
    overlap = min(overlap, tile // 2)
    k = math.ceil((n - overlap) / (tile - overlap))
    starts = [round(i * (n - tile) / (k - 1)) for i in range(k)]
    return [(a, a + tile) for a in starts]


def blend_weights(spans: list[tuple[int, int]], s: int, margin: int) -> list[torch.Tensor]:
    """1-D weights on the HR grid, one per tile, summing to 1 everywhere. Between tiles i and i+1 the
    weight ramps linearly over their overlap less `margin` LR pixels at each end (where a tile's
    output still feels its edge); elsewhere a pixel belongs to one tile alone."""
    ramps = []  # r_i(p): 0 before the i/i+1 crossover, 1 after it (HR positions p)
    for (_, b0), (a1, _) in zip(spans, spans[1:]):
        m = max(0, min(margin, (b0 - a1 - 1) // 2))
        lo, hi = s * (a1 + m), s * (b0 - m)  # ramp zone [lo, hi)
        ramps.append((lo, hi))
    weights = []
    for i, (a, b) in enumerate(spans):
        p = torch.arange(s * a, s * b, dtype=torch.float32) + 0.5
        w = torch.ones_like(p)
        if i > 0:
            lo, hi = ramps[i - 1]
            w *= ((p - lo) / (hi - lo)).clamp(0, 1)
        if i < len(spans) - 1:
            lo, hi = ramps[i]
            w *= 1 - ((p - lo) / (hi - lo)).clamp(0, 1)
        weights.append(w)
    return weights


def is_out_of_memory(e: BaseException) -> bool:
    return isinstance(e, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(e, RuntimeError) and ("out of memory" in str(e) or "can't allocate memory" in str(e)))


class Upscaler:
    """The network f of a checkpoint, prepared for inference (batch norm folded, on `device` in
    `precision`), run on overlapping tiles. `network(x)` gives f(x) before the projection."""

    def __init__(self, model: SRModel, device: str | torch.device = "cpu", precision: str = "fp32",
                 tile: int | None = None, overlap: int | None = None, on_note: Note | None = None):
        if not isinstance(model.spec, OperatorSpec):
            raise ValueError("this checkpoint is not an image upscaler (its operator is not a downsampling of images)")
        self.note = on_note or (lambda message: None)
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.dtype, note = pick_dtype(precision, self.device)
        if note:
            self.note(note)
        self.spec, self.scale, self.grid = model.spec, model.spec.scale, model.grid
        self.A, self.pinv = model.A, model.pinv  # on the CPU: the whole-image work runs there
        self.noise_channels = model.noise_channels
        self.channels = getattr(model.net, "channels", 3)
        self.net = fuse_batchnorm(model.net).to(self.device, self.dtype)
        g = self.scale if self.grid == "hr" else 1  # input pixels per LR pixel
        self.radius = math.ceil(receptive_radius(self.net) / g)  # in LR pixels
        self.overlap = 2 * self.radius + 8 if overlap is None else overlap
        if tile is not None and tile < 8:
            raise ValueError(f"tile size must be at least 8 LR pixels, got {tile}")
        self.tile = tile or self._auto_tile()
        if model.constraint != "aff":
            self.note(f"checkpoint trained without the projection layer ({model.constraint}); its outputs are projected here")

    def _auto_tile(self) -> int:
        """Side of the largest square LR tile whose activations fit the memory budget."""
        sizes, n = [], 16 * (self.scale if self.grid == "hr" else 1)
        hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.numel() * o.element_size()))
                 for m in self.net.modules() if not list(m.children())]
        try:
            with torch.no_grad():
                self._forward(torch.zeros(1, self.channels, n, n), torch.zeros(1, self.noise_channels, n, n))
        finally:
            for h in hooks:
                h.remove()
        per_pixel = sum(sizes) / 256  # bytes per LR pixel if no activation were ever freed
        free = available_memory(self.device)
        budget = free // 2 if self.device.type == "cuda" else min(free // 4, CPU_TILE_BUDGET)
        return int(max(32, min(MAX_TILE, math.sqrt(budget / per_pixel))))

    def _forward(self, inp: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """f on one tile of its input (B, C, ·, ·) (x, or A⁺x for HR-grid networks) with noise z; float32 on the CPU."""
        z = z.to(self.device, self.dtype) if self.noise_channels else None
        return self.net(inp.to(self.device, self.dtype), z).float().cpu()

    def noise(self, batch: int, h: int, w: int, seed: int) -> torch.Tensor:
        """z ~ N(0, I) for the whole image, drawn on the CPU from `seed`: the same seed gives the
        same sample on every device and for every tiling."""
        g = self.scale if self.grid == "hr" else 1
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(batch, self.noise_channels, g * h, g * w, generator=gen)

    @torch.no_grad()
    def network(self, x: torch.Tensor, seed: int = 0, on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """f(x) (C, s·h, s·w) float32 on the CPU for x (C, h, w) in [0, 1]; C = 1 or 3 whatever the
        checkpoint's channels (gray models run on each colour channel, RGB models on gray replicated
        and averaged back: every channel stays consistent)."""
        c, h, w = x.shape
        if self.channels == c:
            batch = x[None]
        elif self.channels == 1:
            batch = x[:, None]  # (C, 1, h, w)
        elif c == 1:
            batch = x.expand(self.channels, h, w)[None]
        else:
            raise ValueError(f"a {c}-channel image and a {self.channels}-channel checkpoint do not fit")
        g = self.scale if self.grid == "hr" else 1
        z = self.noise(batch.shape[0], h, w, seed) if self.noise_channels else torch.zeros(batch.shape[0], 0, g * h, g * w)
        inp = self.pinv(batch.float()) if self.grid == "hr" else batch.float()  # A⁺x of the whole image, not of tiles
        while True:
            try:
                f = self._tiled(inp, z, on_tile)
                break
            except Exception as e:
                if not is_out_of_memory(e) or self.tile <= 16:
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                self.note(f"out of memory with {self.tile}-pixel tiles; retrying with {self.tile // 2}")
                self.tile //= 2
        if self.channels == c:
            return f[0]
        return f[:, 0] if self.channels == 1 else f[0].mean(0, keepdim=True)

    def _tiled(self, inp: torch.Tensor, z: torch.Tensor, on_tile) -> torch.Tensor:
        s, g = self.scale, self.scale if self.grid == "hr" else 1
        B, h, w = inp.shape[0], inp.shape[2] // g, inp.shape[3] // g  # LR size
        rows, cols = tile_spans(h, self.tile, self.overlap), tile_spans(w, self.tile, self.overlap)
        if len(rows) == len(cols) == 1:
            out = self._forward(inp, z)
            if on_tile:
                on_tile(1, 1)
            return out
        wr, wc = blend_weights(rows, s, self.radius), blend_weights(cols, s, self.radius)
        out = torch.zeros(B, self.channels, s * h, s * w)  # (B, C, H, W): the blended f(x)
        done, total = 0, len(rows) * len(cols)
        for (a, b), u in zip(rows, wr):
            for (c, d), v in zip(cols, wc):
                part = self._forward(inp[..., g * a:g * b, g * c:g * d], z[..., g * a:g * b, g * c:g * d])  # (B, C, s·th, s·tw)
                out[..., s * a:s * b, s * c:s * d].addcmul_(part, u[:, None] * v[None, :])
                done += 1
                if on_tile:
                    on_tile(done, total)
        return out


# -- the saved file: consistent, in range, rounded --------------------------------------------------

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
            yc.sub_(pinv(A(yc) - xc))  # Π_x
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
        z.sub_(pinv(A(z) - xc))  # consistent: Az = x
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
