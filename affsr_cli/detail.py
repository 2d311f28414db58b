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

Mode "more" (`--detail-mode more`, for weights that draw detail of their own: the AffGAN) takes only the
detail of the difference, and only where the detail network draws more than f, so f's own edges and
strokes are never softened toward the other's:

    ŷ = Π_x (f + w ⊙ clip(N H (t − f), −τ, τ)),  w = min(1, max(0, E_t / E_f − 1))

H = I − G, G a Gaussian blur of σ s/2 HR pixels (s the scale): H keeps what lies above about the LR
Nyquist frequency. E the local energy of the luma's detail: H of the luma, squared and averaged under a
Gaussian of σ 3s/4. w is 0 where t draws no more than f, 1 where it draws twice as much or more (the
same w for every colour channel). H before N: a smooth difference (another tone, a shifted shape) is not
texture, and under the paper's Gaussian A, N of a smooth image is a period-s ripple (A⁺A does not
reproduce smooth images), a grid that H keeps out. The sweep that chose the mode is in
weights/README.md, "Bounded detail".
"""

from __future__ import annotations

import torch
from torch import nn

from .data import blur, luma
from .errors import AffsrError
from .projection import project

DEFAULT_LIMIT = 8.0  # 8-bit levels (weights/README.md, "Bounded detail": the sweep that chose it)
MODES = ("all", "more")  # every difference within ±τ; only where the detail network draws more than f


def check_mode(mode, name: str = "the detail mode"):
    """Refuses a mode not in MODES, in the words of the caller's option (`name`)."""
    if mode not in MODES:
        raise AffsrError(f"{name} must be one of {', '.join(MODES)}, got {mode!r}")


def energy(img: torch.Tensor, scale: int) -> torch.Tensor:
    """(H, W): local energy of the detail of img (C, H, W)'s luma above about the LR Nyquist frequency."""
    y = luma(img) if img.shape[0] == 3 else img.mean(0, keepdim=True)
    high = y - blur(y, scale / 2)
    return blur(high.square_(), 3 * scale / 4)[0]


def more_weight(f: torch.Tensor, t: torch.Tensor, scale: int) -> torch.Tensor:
    """(H, W) in [0, 1]: 0 where t draws no more detail than f, 1 where it draws twice as much or more."""
    return (energy(t, scale) / (energy(f, scale) + 1e-8) - 1).clamp_(0, 1)


def bounded(
    f: torch.Tensor,
    t: torch.Tensor,
    x: torch.Tensor,
    A: nn.Module,
    pinv: nn.Module,
    limit: float,
    mode: str = "all",
) -> torch.Tensor:
    """In place: f (C, s·h, s·w) ← f + clip(N (t − f), ±limit) (mode "all"), or f + more_weight(f, t) ⊙
    clip(N H (t − f), ±limit) (mode "more"); limit on [0, 1] (levels / 255); x (C, h, w) only for its
    shape (N does not depend on x). Π_x of the result is the bounded-detail ŷ."""
    if mode not in MODES:
        raise ValueError(f"detail mode {mode!r}: one of {MODES}")
    s = f.shape[-1] // x.shape[-1]
    d = t - f
    if mode == "more":
        d -= blur(d, s / 2)  # H: the difference's detail (its smooth part: no texture, and a ripple under N)
    d = project(d, torch.zeros_like(x), A, pinv, inplace=True).clamp_(-limit, limit)  # 1. N, 2. clip
    if mode == "more":
        d.mul_(more_weight(f, t, s))
    return f.add_(d)
