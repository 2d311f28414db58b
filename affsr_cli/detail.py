"""Bounded detail: a faithful network's f with the detail of another network (a GAN that draws texture),
each of its differences kept within a limit, so the result stays close to the faithful one where the
other invents shapes of its own, and takes its small detail (pores, hair, grain) where the two agree on
the picture (`affsr upscale --detail WEIGHTS --detail-limit LEVELS`).

Notation (<variable name> -> <name in paper>): x -> x, f -> f(x) of the faithful network (an AffMSE),
t -> its counterpart from the detail network, N = I − A⁺A -> the projector onto the null space of A
(what the input does not decide; Π_x f = A⁺x + N f, paper eq. 7), τ -> `limit`.

    ŷ = Π_x (f + clip(N (t − f), −τ, τ))  =  Π_x f + N clip(Π_x t − Π_x f, −τ, τ)

1. d = N (t − f) = Π_x t − Π_x f: where the two consistent images differ (A d = 0: only invented detail);
2. clip d to ±τ per sample: small differences pass whole, a shape the detail network bends or a halo it
   draws is cut to τ;
3. Π_x after (the contract's, consistency.make_consistent), so A ŷ = x whatever τ.

τ = 0 gives the faithful network's ŷ, τ = ∞ the detail network's Π_x t. Per sample, f + clip(t − f, ±τ) is
the minimiser of (ŷ − f)² + 2τ |ŷ − t|: the MSE estimate's loss with an L1 pull toward the detail
network's picture, whose small differences it keeps whole and whose large ones it pays for only up to τ.
"""

from __future__ import annotations

import torch
from torch import nn

from .projection import project

DEFAULT_LIMIT = 8.0  # 8-bit levels (weights/README.md, "Bounded detail": the sweep that chose it)


def bounded(
    f: torch.Tensor, t: torch.Tensor, x: torch.Tensor, A: nn.Module, pinv: nn.Module, limit: float
) -> torch.Tensor:
    """In place: f (C, s·h, s·w) ← f + clip(N (t − f), ±limit), limit on [0, 1] (levels / 255); x (C, h, w)
    only for its shape (N does not depend on x). Π_x of the result is the bounded-detail ŷ."""
    d = project(t - f, torch.zeros_like(x), A, pinv, inplace=True)  # 1. N (t − f), (C, s·h, s·w)
    return f.add_(d.clamp_(-limit, limit))  # 2.
