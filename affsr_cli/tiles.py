"""Running a network f over an image in overlapping tiles: the receptive radius that sets their overlap,
the spans they cover and the cross-fade weights that blend them (a tile's output is exact wherever it
lies at least the radius inside it, so tiled = untiled up to float rounding), and batch norm folded
into the convolutions for inference."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


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
