"""Running a network f over an image in overlapping tiles: the receptive radius that sets their overlap,
the spans they cover and the cross-fade weights that blend them (a tile's output is exact wherever it
lies at least the radius inside it, so tiled = untiled up to float rounding), the peak memory per pixel
of a forward pass that sets their size, and batch norm folded into the convolutions for inference."""

from __future__ import annotations

import copy
import functools
import math
import weakref
from typing import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


def receptive_radius(net: nn.Module, bounds: tuple[int, int] | None = None) -> int:
    """Pixels of context one output pixel sees on each side, on the network's input grid: the sum
    over its convolutions of dilation·(k−1)/2, exact for a chain and an upper bound with skips,
    clamped to `bounds` (lo, hi) when given (Descriptor.radius_bounds: attention networks)."""
    radius = sum(
        m.dilation[0] * (m.kernel_size[0] - 1) // 2 for m in net.modules() if isinstance(m, nn.modules.conv._ConvNd)
    )
    lo, hi = bounds or (0, radius)
    return min(max(radius, lo), hi)


def fuse_batchnorm(net: nn.Module) -> nn.Module:
    """A copy of `net` (in eval mode) with every Conv2d → BatchNorm2d pair of a Sequential folded into one conv."""
    net = copy.deepcopy(net).eval()
    for seq in (m for m in net.modules() if isinstance(m, nn.Sequential)):
        for i in range(len(seq) - 1):
            if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                seq[i], seq[i + 1] = fuse_conv_bn_eval(seq[i], seq[i + 1]), nn.Identity()
    return net


def tile_spans(n: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """[start, end) of the fewest tiles of length ≤ `tile` covering 0 … n−1, neighbours overlapping by
    ≥ `overlap`, all of one length, the shortest that allows it (a 1,200-pixel side in tiles of 591:
    3 of 427, not 3 of 591 that compute twice as many pixels). `align` > 1: every start is a multiple
    of it (a window-attention network then partitions each tile into the same windows as the whole
    image); the last tile may be up to align − 1 longer."""
    if n <= tile:
        return [(0, n)]
    overlap = min(overlap, tile // 2)
    k = math.ceil((n - overlap) / (tile - overlap))
    length = min(tile, -(-(n + (k - 1) * overlap) // k) + align)  # + align: room for the rounding of starts
    starts = [round(i * (n - length) / (k - 1)) // align * align for i in range(k)]
    # aligned starts can coincide (n barely above the tile): the later, longer tile covers the earlier
    return [(a, n if i == k - 1 else a + length) for i, a in enumerate(starts) if i == k - 1 or a != starts[i + 1]]


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


class LiveBytes(TorchDispatchMode):
    """While active, counts the bytes of the tensors that ops create, as long as they live: `live` now,
    `peak` the most at once. A storage is counted once, when an op first returns it (views and in-place
    results share their input's storage); one that the op's inputs already hold was there before (a
    weight, the input, a view of them) and is not counted; a weak reference to it says when it is freed."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # else torch imports torch._dynamo (and sympy) on first use: ~2 s at every start

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._counted: dict[int, weakref.ref] = {}  # id(storage) -> a weak reference to it, while it lives

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        held = {id(t.untyped_storage()) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = id(storage)
            if key not in held and key not in self._counted:
                self._counted[key] = weakref.ref(storage, functools.partial(self._freed, key, storage.nbytes()))
                self.live += storage.nbytes()
        self.peak = max(self.peak, self.live)
        return out

    def _freed(self, key: int, nbytes: int, ref: weakref.ref):
        self._counted.pop(key, None)
        self.live -= nbytes


def peak_bytes(run: Callable[[], object], device: torch.device) -> int:
    """The most bytes that the tensors made by run() (its result included) hold at once on `device`:
    on CUDA the caching allocator's own peak (cuDNN's workspaces included); elsewhere LiveBytes, which
    sees tensors only (not oneDNN's scratch buffers nor the slack of the C allocator)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with LiveBytes() as live:
        run()
    return live.peak


def bytes_per_pixel(run: Callable[[int], object], device: torch.device, sides: tuple[int, int] = (32, 64)) -> float:
    """Peak memory of run(n), a forward pass on an n×n input, per pixel: the slope b of peak = a + b·n²
    through two sides (peak_bytes), so what does not grow with the input (copies of weights, caches)
    is left out. The sides are whole multiples of common attention windows (8, 16, 32), so a network
    that pads its input to its windows pads neither and the padding does not inflate b."""
    small, large = (peak_bytes(functools.partial(run, n), device) for n in sides)
    slope = (large - small) / (sides[1] ** 2 - sides[0] ** 2)
    return slope if slope > 0 else large / sides[1] ** 2
