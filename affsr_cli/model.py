"""SRModel: what a generator checkpoint holds, the network f and what training put around it (a
constraint: Π for aff), with its operator A. ŷ = Π_x f(x) for aff, f(x) otherwise."""

from __future__ import annotations

import torch
from torch import nn

from . import constraints, dihedral, nets, swissroll
from .descriptor import Descriptor
from .errors import AffsrError
from .projection import OperatorSpec, Projection


class SRModel(nn.Module):
    """ŷ = Π_x f(x) for the aff constraint, f(x) otherwise. `A` is always the model's own."""

    def __init__(
        self, net: dict, spec: OperatorSpec | swissroll.AverageSpec, constraint: str | constraints.Constraint = "aff"
    ):
        """net: {"class": a name in nets.NETS, "kwargs": its keyword arguments} (kept for checkpoints);
        constraint: a name (inference) or a Constraint with its training weights."""
        super().__init__()
        if isinstance(constraint, str):
            constraint = constraints.build(constraint)
        self.net_config, self.spec, self.constraint = net, spec, constraint
        self.net = nets.build(net["class"], net["kwargs"])
        self.grid = net["kwargs"].get("grid", "lr")  # read here: self.net may get wrapped (DDP)
        self.noise_channels = net["kwargs"].get("noise_channels", 0)
        self.A, self.pinv = spec.build()
        self.projection = Projection(self.A, self.pinv)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None, return_f: bool = False):
        """ŷ, or (ŷ, f) with the network's own output f when `return_f`."""
        inp = self.pinv(x) if self.grid == "hr" else x
        f = self.net(inp, z)
        yhat = self.constraint.output(f, x, self.projection)
        return (yhat, f) if return_f else yhat

    def equivariance_gap(self, x: torch.Tensor, z: torch.Tensor | None, yhat: torch.Tensor) -> torch.Tensor:
        """MSE between ŷ and the ŷ of x flipped or transposed (one of the 7 others of dihedral.GROUP, at
        random) and mapped back: 0 for an f that commutes with them, as the ×8 self-ensemble's mean does;
        a pattern at fixed phases of the s×s output cells (the LR-locked grid) does not."""
        k = int(torch.randint(1, len(dihedral.GROUP), ()))
        other = self(dihedral.apply(x, k), None if z is None else dihedral.apply(z, k))
        return (yhat - dihedral.undo(other, k).to(yhat.dtype)).square().mean()

    def describe(self) -> Descriptor:
        """What inference reads of this generator (infer.Upscaler, export): f, its A and its fields."""
        if not isinstance(self.spec, OperatorSpec):
            raise AffsrError("this checkpoint is not an image upscaler (its operator is not a downsampling of images)")
        multiple, bounds = nets.TILING.get(self.net_config["class"], (1, None))
        return Descriptor(
            net=self.net,
            spec=self.spec,
            channels=self.net_config["kwargs"].get("channels", 3),
            grid=self.grid,
            noise_channels=self.noise_channels,
            constraint=self.constraint.name,
            tile_multiple=multiple,
            radius_bounds=bounds,
        )

    def config(self) -> dict:
        return {"net": self.net_config, "operator": self.spec.metadata(), "constraint": self.constraint.name}

    @staticmethod
    def spec_of(config: dict):
        """The operator a model description names (its metadata validated by the spec)."""
        try:
            return operator_spec(config["operator"])
        except (KeyError, TypeError, AttributeError) as e:
            raise AffsrError(f"incomplete operator description ({e})") from None

    @classmethod
    def from_config(cls, config: dict) -> "SRModel":
        try:
            return cls(config["net"], operator_spec(config["operator"]), config["constraint"])
        except (KeyError, TypeError) as e:
            raise AffsrError(f"incomplete model description ({e})") from None


def operator_spec(meta: dict[str, str]):
    """The operator described by a checkpoint's metadata: A of images, or the Swiss roll's average."""
    return (
        swissroll.AverageSpec.from_metadata(meta) if meta.get("kind") == "average" else OperatorSpec.from_metadata(meta)
    )
