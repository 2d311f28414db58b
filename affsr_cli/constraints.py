"""Constraints (paper §3): how the estimate ŷ is tied to the LR input x. A method is an objective
(objectives.py) × one of these: `aff` (ŷ = Π_x f, the projection layer of eq. 7), `soft` (ŷ = f
with a penalty λ·MAE(x, Aŷ), the paper's Soft* methods) or `none` (ŷ = f).

Each constraint owns its output map and its training penalty, and names the TrainConfig fields
that only it reads (`options`), so the training loop has no branch on the constraint's name and a
flag that does not apply to the chosen method is refused (methods.check_options).

Notation (<variable name> -> <name in paper>): f -> f(x), the network's output; yhat -> ŷ;
x -> x; A -> A.
"""

from __future__ import annotations

import torch

from . import losses
from .errors import AffsrError


class Constraint:
    name = ""
    options: tuple[str, ...] = ()  # TrainConfig fields only this constraint uses

    def output(self, f: torch.Tensor, x: torch.Tensor, projection) -> torch.Tensor:
        """ŷ from the network's output f (projection: Π of the model's A)."""
        return f

    def penalty(self, f: torch.Tensor, yhat: torch.Tensor, x: torch.Tensor, A) -> tuple[torch.Tensor | None, dict]:
        """(term added to the generator's loss or None, its logs)."""
        return None, {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self.options)})"


class Affine(Constraint):
    """aff: ŷ = Π_x f, so A ŷ = x exactly. Π discards A f; `range_weight` > 0 adds w·MSE(A f, x), which
    keeps f near an image consistent with x (A⁺ of a drifted residual paints a period-s dot pattern)."""

    name, options = "aff", ("range_weight",)

    def __init__(self, range_weight: float = 0.0):
        self.range_weight = range_weight

    def output(self, f, x, projection):
        return projection(f, x)

    def penalty(self, f, yhat, x, A):
        if not self.range_weight:
            return None, {}
        anchor = losses.mse(A(f.float()), x)
        return self.range_weight * anchor, {"range_mse": float(anchor.detach())}


class Soft(Constraint):
    """soft: ŷ = f, trained with `soft_weight`·MAE(x, A ŷ) added (the paper's SoftGAN, SoftDG, ...)."""

    name, options = "soft", ("soft_weight",)

    def __init__(self, soft_weight: float = 1.0):
        self.soft_weight = soft_weight

    def penalty(self, f, yhat, x, A):
        mae = (x - A(yhat.float())).abs().mean()
        return self.soft_weight * mae, {"soft_mae": float(mae.detach())}


class Unconstrained(Constraint):
    """none: ŷ = f, nothing ties it to x but the objective (mse, gan, ...)."""

    name = "none"


CONSTRAINTS = {c.name: c for c in (Affine, Soft, Unconstrained)}


def build(name: str, cfg=None) -> Constraint:
    """The constraint `name` with its weights from `cfg` (a TrainConfig; None: the defaults, for inference)."""
    if name not in CONSTRAINTS:
        raise AffsrError(f"unknown constraint {name!r} (known: {', '.join(CONSTRAINTS)})")
    kind = CONSTRAINTS[name]
    return kind(**{k: getattr(cfg, k) for k in kind.options}) if cfg is not None else kind()
