"""Discriminators: the paper's App. D (strided conv nets ending in one logit per image) and a U-Net
with spectral norm (one logit per pixel). The paper's final sigmoid is folded into the losses, which
take logits for stability."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import AffsrError

PRESETS = {
    "texture": dict(widths=(32, 64, 128, 256), stride_every=1),
    "celeba": dict(widths=(128, 128, 256, 256, 512, 512, 1024, 1024), stride_every=2),
    "imagenet": dict(widths=(128, 128, 256, 256, 512, 512, 1024, 1024), stride_every=2),
    # texture's widths with anti-aliased downsampling: no period-2^k pattern in its input gradient
    "texture-aa": dict(widths=(32, 64, 128, 256), stride_every=1, antialias="after"),
    # a cheaper anti-aliased D: one full-resolution layer (it sees every frequency, the period-s ones
    # included), then blur -> stride-2 convolutions, the same anti-aliasing as texture-aa's
    # conv -> blur -> subsample (the blur commutes with the convolution) at a quarter of the cost per
    # layer. Not the efficient generators' default: in the AffGAN A/B (README) its GAN painted stripes
    "small-aa": dict(widths=(16, 32, 64, 128, 256), stride_every=1, antialias="before", first_stride=1),
    # texture's layers with a logit per location of its last feature map (a PatchGAN, Isola et al. 2017):
    # each ~31-pixel neighbourhood is judged on its own instead of the patch's average features
    "texture-patch": dict(widths=(32, 64, 128, 256), stride_every=1, patch_logits=True),
}


class BlurPool(nn.Module):
    """Blur with [1, 2, 1]⊗[1, 2, 1]/16, then keep every `stride`-th pixel (Zhang, 2019, "Making
    convolutional networks shift-invariant again", https://arxiv.org/abs/1904.11486)."""

    def __init__(self, channels: int, stride: int = 2):
        super().__init__()
        self.stride = stride
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer(
            "kernel", (k[:, None] * k[None, :] / 16).expand(channels, 1, 3, 3).contiguous(), persistent=False
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        y = nn.functional.pad(y, (1, 1, 1, 1), mode="reflect")
        return nn.functional.conv2d(y, self.kernel, stride=self.stride, groups=y.shape[1])


class Discriminator(nn.Module):
    """D: y (B, C, H, W) -> logit (B,), or (B, 1, H/2^k, W/2^k) with `patch_logits` (one per location of
    the last feature map). Layer i has stride 2 when (i+1) % stride_every == 0, layer 0 `first_stride`
    if given. `antialias` for the stride-2 layers: "none" (a strided convolution), "after" (a stride-1
    convolution, then BlurPool) or "before" (a blur, then the strided convolution)."""

    def __init__(
        self,
        *,
        channels: int = 3,
        widths: tuple = PRESETS["texture"]["widths"],
        stride_every: int = 1,
        antialias: str = "none",
        first_stride: int | None = None,
        patch_logits: bool = False,
    ):
        super().__init__()
        if antialias not in ("none", "after", "before"):
            raise AffsrError(f"unknown antialias {antialias!r} (known: none, after, before)")
        layers, c = [], channels
        for i, w in enumerate(widths):
            stride = first_stride if i == 0 and first_stride else 2 if (i + 1) % stride_every == 0 else 1
            layers += [BlurPool(c, stride=1)] if antialias == "before" and stride == 2 else []
            layers += [nn.Conv2d(c, w, 3, 1 if antialias == "after" else stride, 1, bias=i == 0)]
            layers += [nn.BatchNorm2d(w)] if i else []  # no batch norm on the input layer (DCGAN)
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            layers += [BlurPool(w)] if antialias == "after" and stride == 2 else []
            c = w
        self.features = nn.Sequential(*layers)
        self.logit = nn.Linear(c, 1)
        self.patch_logits = patch_logits

    def _logit(self, h: torch.Tensor) -> torch.Tensor:
        if self.patch_logits:  # (B, c, h, w) -> (B, 1, h, w)
            return self.logit(h.movedim(1, -1)).movedim(-1, 1)
        return self.logit(h.mean((-2, -1))).squeeze(-1)  # (B,)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self._logit(self.features(y))

    def forward_with_features(self, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(logit (B,), the activations after each LeakyReLU: (B, widths[i], H/2^k, W/2^k)); the same
        logit as forward."""
        feats = []
        for layer in self.features:
            y = layer(y)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(y)
        return self._logit(y), feats


class UNetDiscriminator(nn.Module):
    """D: y (B, C, H, W) -> a logit per pixel (B, 1, H, W): the U-Net discriminator with spectral norm
    of Real-ESRGAN (Wang et al., 2021, https://arxiv.org/abs/2107.10833), narrower (`width` 32 where
    Real-ESRGAN has 64). Three stride-2 4×4 convolutions down, bilinear upsampling with skip additions
    back up: each pixel is judged in the context of the whole patch, so the generator gets a gradient
    for local texture as well as for global structure. Spectral norm on every inner convolution
    (Miyato et al., 2018) bounds D's Lipschitz constant without batch norm."""

    def __init__(self, *, channels: int = 3, width: int = 32):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        w = width
        self.conv0 = nn.Conv2d(channels, w, 3, 1, 1)
        self.down = nn.ModuleList(
            sn(nn.Conv2d(a, b, 4, 2, 1, bias=False)) for a, b in ((w, 2 * w), (2 * w, 4 * w), (4 * w, 8 * w))
        )
        self.up = nn.ModuleList(
            sn(nn.Conv2d(a, b, 3, 1, 1, bias=False)) for a, b in ((8 * w, 4 * w), (4 * w, 2 * w), (2 * w, w))
        )
        self.extra = nn.ModuleList(sn(nn.Conv2d(w, w, 3, 1, 1, bias=False)) for _ in range(2))
        self.out = nn.Conv2d(w, 1, 3, 1, 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        act = lambda t: nn.functional.leaky_relu(t, 0.2)  # noqa: E731
        skips = [act(self.conv0(y))]  # (B, w, H, W)
        for conv in self.down:  # (B, 2w, H/2, W/2) … (B, 8w, H/8, W/8)
            skips.append(act(conv(skips[-1])))
        h = skips.pop()
        for conv in self.up:  # back to (B, w, H, W), adding the skip of each size
            skip = skips.pop()
            h = nn.functional.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = act(conv(h)) + skip
        for conv in self.extra:
            h = act(conv(h))
        return self.out(h)  # (B, 1, H, W)
