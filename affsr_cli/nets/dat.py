"""DAT, the Dual Aggregation Transformer (Chen, Zhang, Gu, Kong, Yang, ICCV 2023,
https://arxiv.org/abs/2308.03364), in its inference form, written for this project. The preset is the
paper's light x4 model (DAT-light: 60 channels, 18 blocks in one group, 6 heads, 8×32 windows).

    x ─ (x − mean) ─ conv 3×3 ─▶ F₀ ─ LN ─ block₁ … block_n ─ convs (+) ─ LN ─ convs ─(+ F₀)─▶ conv 3×3 to C·s²
      ─ shuffle ─ (+ mean) ─▶ f                                                              (B, C, s·h, s·w)

Blocks alternate two attentions, each followed by the spatial-gate feed-forward network (SGFN):
- even blocks, spatial window attention: half the heads attend within 8×32 windows, half within 32×8,
  with a learnt bias per relative position; blocks 2, 6, 10, 14 of a group shift both by half a window.
- odd blocks, channel attention: each head's channels attend to each other over the whole tile
  (L2-normalised queries and keys, a learnt temperature per head).
Each attention runs beside a depthwise 3×3 conv branch on V; the adaptive interaction gates one branch by
a channel map of the other and the other by a spatial map (spatial blocks: the conv branch gives the
channel gate; channel blocks: the attention gives it). The SGFN: linear to 2·F, GELU, the second half
LayerNorm-ed and depthwise-convolved, times the first half, linear back to F.

Inference form: the paper's batch norms are folded into the convolutions before them, and the small MLP
that maps each relative position to its bias (its input is a constant) is replaced by its output, a table
per window shape. The official weights convert to this form exactly (examples/photos/import_dat.py).
Padding: the LR grid is padded with zero q, k, v to a multiple of the longer window side inside each
spatial attention, as the official code does, so its weights see what they were trained on.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AffsrError
from .span import DIV2K_MEAN

PRESETS = {"dat-light": dict(width=60, blocks=18, groups=1, heads=6, window=[8, 32], hidden=120)}
MASKED = -100.0  # the official logit for a pair of tokens that a shifted window joins across the border
TILE_MULTIPLE = 32  # LR tiles start on the window grid, so a tile sees the windows the whole image sees
RADIUS_BOUNDS = (16, 32)  # LR context per side that tiles overlap by (the convolutions' reach, capped)


def windows(t: torch.Tensor, wh: int, ww: int) -> torch.Tensor:
    """(B, H, W, c) -> (B·H/wh·W/ww, wh·ww, c), windows in row-major order."""
    b, h, w, c = t.shape
    return t.view(b, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, wh * ww, c)


def merge(t: torch.Tensor, wh: int, ww: int, b: int, h: int, w: int) -> torch.Tensor:
    """windows(...)'s inverse: (B·nW, wh·ww, c) -> (B, H, W, c)."""
    return t.view(b, h // wh, w // ww, wh, ww, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, -1)


def tokens(img: torch.Tensor) -> torch.Tensor:
    """(B, F, H, W) -> (B, H·W, F)."""
    return img.flatten(2).transpose(1, 2)


def image(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """tokens(...)'s inverse: (B, H·W, F) -> (B, F, H, W)."""
    return t.transpose(1, 2).reshape(t.shape[0], -1, h, w)


def shift_mask(h: int, w: int, wh: int, ww: int) -> torch.Tensor:
    """(nW, wh·ww, wh·ww): 0 between tokens of one region, MASKED across, for windows shifted by half a
    window: after the roll, a window on the last row or column joins pieces from opposite borders.
    Cached per size (callers must not change it in place); built afresh when the sizes are symbolic
    (torch.export traces the network for `affsr export`, and a SymInt cannot be a cache key)."""
    if isinstance(h, int) and isinstance(w, int):
        return _cached_mask(h, w, wh, ww)
    return _mask(h, w, wh, ww)


def _mask(h, w, wh: int, ww: int) -> torch.Tensor:
    label = torch.zeros(h, w)
    for i, rows in enumerate((slice(0, -wh), slice(-wh, -(wh // 2)), slice(-(wh // 2), None))):
        for j, cols in enumerate((slice(0, -ww), slice(-ww, -(ww // 2)), slice(-(ww // 2), None))):
            label[rows, cols] = 3 * i + j
    lab = windows(label.view(1, h, w, 1), wh, ww)[..., 0]  # (nW, N)
    return torch.where(lab[:, None, :] == lab[:, :, None], 0.0, MASKED)


_cached_mask = lru_cache(maxsize=64)(_mask)  # one per padded tile size and window shape, not one per block


class WindowAttention(nn.Module):
    """Multi-head attention within wh×ww windows, with a learnt bias per head and relative position."""

    def __init__(self, heads: int, wh: int, ww: int):
        super().__init__()
        self.heads, self.wh, self.ww = heads, wh, ww
        self.bias = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), heads))  # (relative positions, heads)
        r, c = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
        r, c = r.flatten(), c.flatten()  # (N,) each token's row and column in its window
        index = (r[:, None] - r[None] + wh - 1) * (2 * ww - 1) + (c[:, None] - c[None] + ww - 1)
        self.register_buffer("index", index, persistent=False)  # (N, N) into the bias table

    def forward(self, q, k, v, mask: torch.Tensor | None = None) -> torch.Tensor:
        """q, k, v (B, H, W, c), H and W multiples of the window -> (B, H, W, c)."""
        b, h, w, c = q.shape
        n, d = self.wh * self.ww, c // self.heads

        def heads(t):
            return windows(t, self.wh, self.ww).view(-1, n, self.heads, d).transpose(1, 2)  # (B·nW, heads, N, d)

        logits = (heads(q) * d**-0.5) @ heads(k).transpose(-2, -1)  # (B·nW, heads, N, N)
        logits = logits + self.bias[self.index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        if mask is not None:
            nw = mask.shape[0]
            logits = (logits.view(b, nw, self.heads, n, n) + mask[None, :, None]).view(-1, self.heads, n, n)
        out = logits.softmax(-1) @ heads(v)  # (B·nW, heads, N, d)
        return merge(out.transpose(1, 2).reshape(-1, n, c), self.wh, self.ww, b, h, w)


def gates(width: int) -> tuple[nn.Sequential, nn.Sequential]:
    """The adaptive interaction's two maps: (B, F, H, W) -> a channel map (B, F, 1, 1) and a spatial
    map (B, 1, H, W), logits of sigmoid gates."""
    channel = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, width // 8, 1), nn.GELU(), nn.Conv2d(width // 8, width, 1)
    )
    spatial = nn.Sequential(nn.Conv2d(width, width // 16, 1), nn.GELU(), nn.Conv2d(width // 16, 1, 1))
    return channel, spatial


class SpatialAttention(nn.Module):
    """Adaptive spatial self-attention: tokens (B, L, F) of an H×W map -> (B, L, F)."""

    def __init__(self, width: int, heads: int, window: tuple[int, int], shifted: bool):
        super().__init__()
        wh, ww = window
        self.shifted, self.side = shifted, max(wh, ww)
        self.qkv = nn.Linear(width, 3 * width)
        self.branches = nn.ModuleList([WindowAttention(heads // 2, wh, ww), WindowAttention(heads // 2, ww, wh)])
        self.conv = nn.Conv2d(width, width, 3, 1, 1, groups=width)  # depthwise, on V
        self.channel_gate, self.spatial_gate = gates(width)
        self.proj = nn.Linear(width, width)

    def attend(self, qkv: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """qkv (3, B, H, W, F) -> (B, H, W, F): half the channels in each window shape."""
        f = qkv.shape[-1]
        pad_h, pad_w = -h % self.side, -w % self.side
        qkv = F.pad(qkv, (0, 0, 0, pad_w, 0, pad_h))  # zero q, k, v below and right, as the official code
        out = []
        for half, att in zip((qkv[..., : f // 2], qkv[..., f // 2 :]), self.branches):
            shift = (att.wh // 2, att.ww // 2) if self.shifted else (0, 0)
            mask = shift_mask(h + pad_h, w + pad_w, att.wh, att.ww).to(qkv) if self.shifted else None
            q, k, v = half.roll((-shift[0], -shift[1]), (2, 3)).unbind(0)
            out.append(att(q, k, v, mask).roll(shift, (1, 2))[:, :h, :w])
        return torch.cat(out, -1)  # (B, H, W, F)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, length, f = x.shape
        qkv = self.qkv(x).view(b, h, w, 3, f).permute(3, 0, 1, 2, 4)  # (3, B, H, W, F)
        conv = F.gelu(self.conv(qkv[2].permute(0, 3, 1, 2)))  # (B, F, H, W)
        att = self.attend(qkv, h, w)  # (B, H, W, F)
        spatial = self.spatial_gate(att.permute(0, 3, 1, 2))  # (B, 1, H, W)
        channel = self.channel_gate(conv).view(b, 1, f)
        mixed = att.reshape(b, length, f) * torch.sigmoid(channel)
        mixed = mixed + tokens(conv * torch.sigmoid(spatial))
        return self.proj(mixed)


class ChannelAttention(nn.Module):
    """Adaptive channel self-attention: tokens (B, L, F) of an H×W map -> (B, L, F)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Linear(width, 3 * width)
        self.conv = nn.Conv2d(width, width, 3, 1, 1, groups=width)
        self.channel_gate, self.spatial_gate = gates(width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, length, f = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, f // self.heads).permute(2, 0, 3, 4, 1)  # (B, heads, d, L)
        logits = (
            F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1) * self.temperature
        )  # (B, heads, d, d)
        att = (logits.softmax(-1) @ v).reshape(b, f, h, w)  # (B, F, H, W)
        conv = F.gelu(self.conv(v.reshape(b, f, h, w)))
        channel = self.channel_gate(att)  # (B, F, 1, 1)
        spatial = self.spatial_gate(conv)  # (B, 1, H, W)
        mixed = att * torch.sigmoid(spatial) + conv * torch.sigmoid(channel)
        return self.proj(tokens(mixed))


class SGFN(nn.Module):
    """Spatial-gate feed-forward network: tokens (B, L, F) -> (B, L, F)."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden // 2, width)
        self.norm = nn.LayerNorm(hidden // 2)
        self.conv = nn.Conv2d(hidden // 2, hidden // 2, 3, 1, 1, groups=hidden // 2)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        a, g = F.gelu(self.fc1(x)).chunk(2, -1)  # (B, L, hidden/2) each
        g = tokens(self.conv(image(self.norm(g), h, w)))
        return self.fc2(a * g)


class Block(nn.Module):
    def __init__(self, width: int, heads: int, window: tuple[int, int], hidden: int, spatial: bool, shifted: bool):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = SpatialAttention(width, heads, window, shifted) if spatial else ChannelAttention(width, heads)
        self.ffn = SGFN(width, hidden)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.ffn(self.norm2(x), h, w)


def three_convs(width: int) -> nn.Sequential:
    """The residual connection's convolutions (the official '3conv'): 3×3 to F/4, 1×1, 3×3 back to F."""
    q = width // 4
    return nn.Sequential(
        nn.Conv2d(width, q, 3, 1, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(q, q, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(q, width, 3, 1, 1),
    )


def shifted(group: int, block: int) -> bool:
    """The official schedule of shifted windows: blocks 2, 6, 10, … of even groups, 0, 4, 8, … of odd ones."""
    return block > 0 and (block - 2) % 4 == 0 if group % 2 == 0 else block % 4 == 0


class Group(nn.Module):
    def __init__(self, index: int, width: int, blocks: int, heads: int, window: tuple[int, int], hidden: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(width, heads, window, hidden, spatial=i % 2 == 0, shifted=i % 2 == 0 and shifted(index, i))
            for i in range(blocks)
        )
        self.convs = three_convs(width)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        t = x
        for block in self.blocks:
            t = block(t, h, w)
        return x + tokens(self.convs(image(t, h, w)))


class DAT(nn.Module):
    """f: x (B, C, h, w) -> (B, C, s·h, s·w); any h, w (attention pads internally)."""

    def __init__(
        self,
        *,
        channels: int = 3,
        scale: int = 4,
        width: int = 60,
        blocks: int = 18,
        groups: int = 1,
        heads: int = 6,
        window: list | tuple = (8, 32),
        hidden: int = 120,
        noise_channels: int = 0,
        grid: str = "lr",
    ):
        super().__init__()
        if grid != "lr" or noise_channels:
            raise AffsrError("DAT computes on the LR grid only and takes no noise input")
        wh, ww = window
        if width % heads or heads % 2 or width < 16 or hidden % 2 or wh % 2 or ww % 2:
            raise AffsrError(
                f"DAT needs width ≥ 16 and a multiple of heads, heads, hidden and the window sides even; got "
                f"width {width}, heads {heads}, hidden {hidden}, window {wh}×{ww}"
            )
        self.channels, self.scale, self.noise_channels, self.grid = channels, scale, 0, grid
        mean = DIV2K_MEAN if channels == 3 else (0.5,) * channels
        self.register_buffer("mean", torch.tensor(mean).view(1, channels, 1, 1))
        self.head = nn.Conv2d(channels, width, 3, 1, 1)
        self.norm_in, self.norm_out = nn.LayerNorm(width), nn.LayerNorm(width)
        self.groups = nn.ModuleList(Group(g, width, blocks, heads, (wh, ww), hidden) for g in range(groups))
        self.body = three_convs(width)
        self.up = nn.Conv2d(width, channels * scale * scale, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        f0 = self.head(x - self.mean)  # (B, F, h, w)
        t = self.norm_in(tokens(f0))  # (B, hw, F)
        for group in self.groups:
            t = group(t, h, w)
        t = image(self.norm_out(t), h, w)
        return self.shuffle(self.up(self.body(t) + f0)) + self.mean


def cost(
    channels: int = 3,
    scale: int = 4,
    width: int = 60,
    blocks: int = 18,
    groups: int = 1,
    heads: int = 6,
    window: list | tuple = (8, 32),
    hidden: int = 120,
) -> tuple[int, float]:
    """(parameters, GFLOP per output megapixel): 2 FLOP per multiply-add of the linear layers, the
    convolutions and the attention products (q·k and ·v; windows of wh·ww tokens, channel attention
    d×d per head), on the LR grid, per s² output pixels. Norms, activations and gates add < 2 %."""
    wh, ww = window
    n, d, q = wh * ww, width // heads, width // 4
    relative = (2 * wh - 1) * (2 * ww - 1)
    spatial = blocks - blocks // 2  # blocks 0, 2, 4, …
    channel = blocks // 2
    gate = width * (width // 8) + width // 8 + (width // 8) * width + width  # the channel map's two 1×1 convs
    gate += width * (width // 16) + width // 16 + width // 16 + 1  # the spatial map's
    attention = 4 * width * width + 4 * width + 10 * width + gate  # qkv, proj, depthwise conv 3×3
    ffn = width * hidden + hidden + (hidden // 2) * width + width + 10 * (hidden // 2) + hidden  # + LN, dw conv
    block = attention + ffn + 4 * width  # two LayerNorms
    convs3 = 9 * width * q + q + q * q + q + 9 * q * width + width
    params = (9 * channels * width + width) + 4 * width + groups * (blocks * block + convs3) + convs3
    params += spatial * groups * relative * heads + channel * groups * heads  # bias tables, temperatures
    params += 9 * width * channels * scale**2 + channels * scale**2
    per_pixel = 2 * (4 * width * width + 9 * width)  # qkv, proj, depthwise conv
    per_pixel += 2 * (width * hidden + (hidden // 2) * width + 9 * (hidden // 2))  # SGFN
    per_pixel += 2 * (width * (width // 16) + width // 16)  # the spatial gate's two 1×1 convs
    mix_spatial = 2 * 2 * n * width  # q·k and ·v, each token with the n of its window
    mix_channel = 2 * 2 * d * width  # d×d per head
    lr = groups * (blocks * per_pixel + spatial * mix_spatial + channel * mix_channel)
    lr += groups * 2 * (9 * width * q + q * q + 9 * q * width) + 2 * (9 * width * q + q * q + 9 * q * width)
    lr += 2 * 9 * channels * width + 2 * 9 * width * channels * scale**2
    return params, lr / scale**2 / 1e3
