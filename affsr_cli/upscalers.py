"""What `affsr eval` measures: a trained checkpoint through the inference contract of `affsr upscale`
(what its saved file holds), and the baselines (Pillow bicubic, A⁺x), each as x (1, C, h, w) -> ŷ."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from PIL import Image

from .downsample import Downsample
from .errors import AffsrError
from .projection import ExactPinv, OperatorSpec

BASELINES = ("bicubic", "pinv")
Upscale = Callable[[torch.Tensor, int], torch.Tensor]  # (x (1, C, h, w), bit depth of the file) -> ŷ


def bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """PIL's bicubic (a = −0.5) per channel in float mode 'F': no rounding, same centre alignment as A."""
    h, w = x.shape[-2:]
    planes = [
        np.asarray(Image.fromarray(c.numpy().astype(np.float32)).resize((w * scale, h * scale), Image.BICUBIC))
        for c in x.detach().cpu().reshape(-1, h, w)
    ]
    return torch.from_numpy(np.stack(planes)).reshape(*x.shape[:-2], h * scale, w * scale).to(x.dtype)


def baseline(name: str, spec: OperatorSpec) -> Upscale:
    """'bicubic' or 'pinv' (A⁺x, the minimum-norm image consistent with x); both in floating point."""
    if name == "bicubic":
        return lambda x, bits=None: bicubic(x, spec.scale)
    if name == "pinv":
        pinv = ExactPinv(Downsample(spec))
        return lambda x, bits=None: pinv(x.double())
    raise AffsrError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")


def checkpoint_upscaler(
    name: str,
    device: str = "cpu",
    precision: str = "fp32",
    on_note=None,
    operator: str | None = None,
    boundary: str | None = None,
    ensemble: bool = False,
    as_trained: bool = False,
    kernel_size: int | None = None,
    sigma: float | None = None,
    detail_weights: str | None = None,
    detail_limit: float | None = None,
    detail_mode: str | None = None,
    keep_grid: bool = False,
) -> tuple[Upscale, OperatorSpec]:
    """A trained checkpoint as an upscaler and the A its outputs are consistent with, through the
    contract of `affsr upscale` (infer.Upscaler): ŷ is what the saved file of that bit depth holds.
    The A options (`operator`, `boundary`, `kernel_size`, `sigma`) name another A than the weights'
    as `--operator` does (infer.Upscaler.load; another tool's network needs `operator`);
    `ensemble`: f averaged over the 8 flips and transposes of x (infer.Upscaler); `detail_weights`,
    `detail_limit`, `detail_mode`: another network's detail added within a limit (upscale --detail, detail.py);
    `keep_grid`: f's image-wide period-s pattern left in (upscale --keep-grid).
    `as_trained`: a checkpoint trained without the projection layer (soft or no constraint) is measured
    on its own f(x), clipped to [0, 1] and rounded to the bit depth (float for 32), not through Π (the
    paper's Table 2 compares so)."""
    from .infer import Upscaler

    up = Upscaler.load(
        name,
        device,
        precision,
        on_note=on_note,
        operator=operator,
        boundary=boundary,
        ensemble=ensemble,
        kernel_size=kernel_size,
        sigma=sigma,
        detail_weights=detail_weights,
        detail_limit=detail_limit,
        detail_mode=detail_mode,
        keep_grid=keep_grid,
    )
    if as_trained and up.constraint not in (None, "aff"):
        up.keep_grid = True  # f as trained

        def raw(x: torch.Tensor, bits: int | None = 8) -> torch.Tensor:
            f = up.network(x[0]).double()  # (C, sH, sW) f(x), no Π
            if bits in (None, 32):
                return f[None]
            levels = 2**bits - 1
            return (f.clamp(0, 1) * levels).round()[None] / levels

        return raw, up.spec
    return (
        lambda x, bits=8: up(x[0], bits=None if bits == 32 else bits).saved()[None]
    ), up.spec  # 32: a float HR, ŷ float too
