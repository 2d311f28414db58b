"""The 8 flips and transposes of an image (the dihedral group of the square) that map the LR pixel grid
onto itself: the ×8 self-ensemble of EDSR+ averages f over them (infer.Upscaler), and
`--equivariance-weight` asks f to commute with them in training. A network that paints a pattern at
fixed phases of its s×s output cells (the pixel shuffle's grid) does not commute with them: a flip maps
phase p to s − 1 − p."""

from __future__ import annotations

import torch

GROUP = [(t, f) for t in (False, True) for f in ((), (-1,), (-2,), (-2, -1))]  # (transpose, flipped dims); 0 = identity


def apply(t: torch.Tensor, k: int) -> torch.Tensor:
    """Element k of GROUP applied to the last two dims of t (… H, W): transpose first, then flip."""
    transpose, flip = GROUP[k]
    t = t.transpose(-2, -1) if transpose else t
    return (t.flip(flip) if flip else t).contiguous()


def undo(t: torch.Tensor, k: int) -> torch.Tensor:
    """apply(·, k)'s inverse: undo(apply(t, k), k) == t."""
    transpose, flip = GROUP[k]
    t = t.flip(flip) if flip else t
    return t.transpose(-2, -1) if transpose else t
