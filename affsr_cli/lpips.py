"""LPIPS, the learned perceptual distance of Zhang et al., *The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric*, CVPR 2018 (https://arxiv.org/abs/1801.03924): version 0.1 with the
AlexNet trunk, as `lpips.LPIPS(net='alex')` of the authors' `lpips` package computes it.

Nothing is downloaded and nothing is unpickled: the weights come from a local safetensors file
holding that model's state dict (README, "affsr eval" says how to make it):

    net.slice1.0.weight/bias    conv 3→64, 11×11, stride 4, padding 2, ReLU        -> relu1
    net.slice2.3.weight/bias    max-pool 3/2, conv 64→192, 5×5, padding 2, ReLU    -> relu2
    net.slice3.6.weight/bias    max-pool 3/2, conv 192→384, 3×3, padding 1, ReLU   -> relu3
    net.slice4.8.weight/bias    conv 384→256, 3×3, padding 1, ReLU                 -> relu4
    net.slice5.10.weight/bias   conv 256→256, 3×3, padding 1, ReLU                 -> relu5
    lin{l}.model.1.weight       1×1 conv C_l→1 without bias (or lins.{l}.model.1.weight)
    scaling_layer.shift/scale   optional; (−.030, −.088, −.188) and (.458, .448, .450) otherwise

d(y, ŷ) = Σ_l mean_hw( w_l · (φ̂_l(y) − φ̂_l(ŷ))² ), φ̂ the features scaled to unit length over
channels at every position, inputs mapped from [0, 1] to [−1, 1] and then (v − shift) / scale.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from . import weights
from .errors import AffsrError

LAYERS = (  # (key prefix, in, out, kernel, stride, padding, max-pool before)
    ("net.slice1.0", 3, 64, 11, 4, 2, False),
    ("net.slice2.3", 64, 192, 5, 1, 2, True),
    ("net.slice3.6", 192, 384, 3, 1, 1, True),
    ("net.slice4.8", 384, 256, 3, 1, 1, False),
    ("net.slice5.10", 256, 256, 3, 1, 1, False),
)
SHIFT, SCALE = (-0.030, -0.088, -0.188), (0.458, 0.448, 0.450)
MIN_SIZE = 32  # smaller images vanish in AlexNet's pooling
NEEDS = (
    "lpips needs the weights of its network as a local safetensors file: pass --lpips-weights FILE "
    "(the state dict of lpips.LPIPS(net='alex'), see the README); nothing is downloaded"
)


class LPIPS:
    """d = LPIPS(tensors)(y, ŷ): distance of (N, 3, H, W) or (3, H, W) images in [0, 1] (gray is
    repeated to RGB); 0 for identical images."""

    def __init__(self, tensors: dict[str, torch.Tensor], name: str = "LPIPS weights"):
        self.convs, self.lins = [], []
        for l, (key, cin, cout, k, stride, pad, pool) in enumerate(LAYERS):
            w, b = _get(tensors, f"{key}.weight", (cout, cin, k, k), name), _get(tensors, f"{key}.bias", (cout,), name)
            self.convs.append((w, b, stride, pad, pool))
            lin = tensors.get(f"lin{l}.model.1.weight", tensors.get(f"lins.{l}.model.1.weight"))
            self.lins.append(
                _get({"w": lin} if lin is not None else {}, "w", (1, cout, 1, 1), name, f"lin{l}.model.1.weight")
            )
        self.shift = tensors.get("scaling_layer.shift", torch.tensor(SHIFT)).float().reshape(1, 3, 1, 1)
        self.scale = tensors.get("scaling_layer.scale", torch.tensor(SCALE)).float().reshape(1, 3, 1, 1)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "LPIPS":
        tensors, _ = weights.load(path)  # refuses pickles and anything that is not safetensors
        return cls(tensors, str(path))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five ReLU outputs of AlexNet for (N, 3, H, W) inputs already scaled."""
        out = []
        for w, b, stride, pad, pool in self.convs:
            if pool:
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(F.conv2d(x, w, b, stride=stride, padding=pad))
            out.append(x)
        return out

    @torch.no_grad()
    def __call__(self, y: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        if y.shape != y_hat.shape:
            raise AffsrError(f"images differ in shape: {tuple(y.shape)} and {tuple(y_hat.shape)}")
        if min(y.shape[-2:]) < MIN_SIZE:
            raise AffsrError(f"LPIPS needs images of at least {MIN_SIZE}×{MIN_SIZE} pixels, got {tuple(y.shape[-2:])}")
        batch = torch.cat([y, y_hat]).float() if y.ndim == 4 else torch.stack([y, y_hat]).float()
        if batch.shape[1] == 1:
            batch = batch.expand(-1, 3, -1, -1)
        if batch.shape[1] != 3:
            raise AffsrError(f"LPIPS compares RGB or gray images, got {batch.shape[1]} channels")
        feats = self.features((batch * 2 - 1 - self.shift) / self.scale)
        n = batch.shape[0] // 2
        d = torch.zeros(n)
        for f, lin in zip(feats, self.lins):
            f = f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10)
            d += F.conv2d((f[:n] - f[n:]).square(), lin).mean((1, 2, 3))
        return d if y.ndim == 4 else d[0]


def _get(tensors, key, shape, name, label=None):
    t = tensors.get(key)
    if t is None:
        raise AffsrError(f"{name}: no tensor {label or key!r}; expected the state dict of lpips.LPIPS(net='alex')")
    if tuple(t.shape) != shape:
        raise AffsrError(f"{name}: {label or key} has shape {tuple(t.shape)}, expected {shape}")
    return t.float()
