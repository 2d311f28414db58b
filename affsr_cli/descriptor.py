"""One typed description of a network f for inference, affsr's own or another tool's (the model is
spandrel's `ModelBase`: documented fields, not attributes looked up with defaults).
checkpoint.describe and foreign.load return it; infer.Upscaler and export read its fields."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .projection import OperatorSpec


@dataclass(frozen=True, eq=False)
class Descriptor:
    """Notation: f the network, x the LR input, z the noise of a stochastic generator, A the operator."""

    net: nn.Module  # f: (x (B, C, h, w), z (B, noise_channels, h, w) or None) -> (B, C, s·h, s·w)
    spec: OperatorSpec  # A: ours, that of the training data; another tool's, the one the user named
    channels: int  # C of x and of f(x): 1 (gray) or 3 (RGB)
    grid: str = "lr"  # where f computes: lr (sub-pixel output) | hr (its input is A⁺x)
    noise_channels: int = 0  # z's LR channels (stochastic generator, App. F); 0: deterministic
    constraint: str = "none"  # what training put around f: aff (Π) | soft | none
    architecture: str | None = None  # spandrel's name of another tool's network; None: affsr's own
    tile_multiple: int = 1  # LR tiles start on this grid (size requirements, attention windows)
    radius_bounds: tuple[int, int] | None = None  # (lo, hi) clamp of the convolutional receptive radius
    supports_half: bool = True  # bf16/fp16 on GPUs give the same picture (spandrel's flag for others)

    @property
    def scale(self) -> int:
        return self.spec.scale

    @property
    def foreign(self) -> bool:
        return self.architecture is not None
