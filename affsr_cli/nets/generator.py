"""Generators f of the paper's App. D: conv + batch norm + ReLU in every layer but the output,
DenseNet-style skip connections (Huang et al., 2016: the block input is concatenated to its
output), a final sigmoid. https://arxiv.org/abs/1610.04490

`grid="lr"` (default) computes on the LR grid and ends in a sub-pixel convolution (Shi et al.,
2016): s² times fewer pixels per layer than `grid="hr"`, which takes A⁺x (already on the HR grid)
as its input. docs/training.md "Where the generator computes" has the measurements behind the default.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import AffsrError

# the paper's sizes; the output convolution is the last layer (texture: 5 + 1 = 6 layers)
PRESETS = {
    "texture": dict(widths=(32, 32, 64, 64, 128), skip_every=2),
    "celeba": dict(widths=(128,) * 4 + (256,) * 4 + (512,) * 3, skip_every=4),
    "imagenet": dict(widths=(128,) * 4 + (256,) * 3, skip_every=2),
}


def conv_bn_relu(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


@torch.no_grad()
def icnr_(conv: nn.Conv2d, scale: int):
    """ICNR init of a sub-pixel convolution (Aitken et al., 2017, https://arxiv.org/abs/1707.02937):
    the s² outputs that pixel shuffle places in one s×s block start equal, so the network starts
    as a nearest-neighbour upsampler, free of the period-s checkerboard that Π cannot remove
    (a period-s pattern is almost entirely in A's null space)."""
    out = conv.out_channels // scale**2
    conv.weight.copy_(conv.weight[:out].repeat_interleave(scale**2, 0))  # (out·s², c_in, k, k)
    if conv.bias is not None:
        conv.bias.copy_(conv.bias[:out].repeat_interleave(scale**2))


class Generator(nn.Module):
    """f: x (B, C, h, w) [+ z (B, nz, h, w)] -> (B, C, s·h, s·w) in (0, 1); with grid="hr" the
    input is already (B, C, s·h, s·w) and z is drawn at that size."""

    def __init__(
        self,
        *,
        channels: int = 3,
        scale: int = 4,
        widths: tuple = PRESETS["texture"]["widths"],
        skip_every: int = 2,
        noise_channels: int = 0,
        kernel_size: int = 3,
        grid: str = "lr",
    ):
        super().__init__()
        if grid not in ("lr", "hr"):
            raise AffsrError(f"grid must be 'lr' or 'hr', got {grid!r}")
        self.channels, self.scale, self.noise_channels, self.grid = channels, scale, noise_channels, grid
        self.skip_every = skip_every
        c = block_in = channels + noise_channels  # channels now, and entering the current block
        self.layers = nn.ModuleList()
        for i, w in enumerate(widths):
            self.layers.append(conv_bn_relu(c, w, kernel_size))
            c = w
            if (i + 1) % skip_every == 0:
                c = block_in = w + block_in
        out = channels * scale * scale if grid == "lr" else channels
        self.head = nn.Conv2d(c, out, kernel_size, 1, kernel_size // 2)
        self.shuffle = nn.PixelShuffle(scale) if grid == "lr" else nn.Identity()
        if grid == "lr":
            icnr_(self.head, scale)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        if self.noise_channels:
            if z is None:
                z = torch.randn(x.shape[0], self.noise_channels, *x.shape[-2:], device=x.device, dtype=x.dtype)
            x = torch.cat([x, z], 1)  # (B, C + nz, h, w)
        h = block_in = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if (i + 1) % self.skip_every == 0:
                h = block_in = torch.cat([h, block_in], 1)  # dense skip
        return torch.sigmoid(self.shuffle(self.head(h)))
