"""Methods as objective × constraint (paper §3): `affgan` = gan objective under the affine
projection, `softmse` = mse with the soft MAE(x, Aŷ) penalty, `gan` = no constraint, ...

SRModel (network + constraint) is what a checkpoint holds; an Objective holds what training
needs besides (a discriminator, a denoiser, a density model) and returns losses.
"""
from __future__ import annotations

import torch
from torch import nn

from . import losses, nets, swissroll
from .nets import discriminator as dpresets
from .nets import generator as gpresets
from .projection import OperatorSpec, Projection

OBJECTIVES = ("mse", "mae", "gan")
CONSTRAINTS = ("aff", "soft", "none")
METHODS = tuple(c.replace("none", "") + o for c in CONSTRAINTS for o in OBJECTIVES)


def parse_method(name: str) -> tuple[str, str]:
    """'affgan' -> ('aff', 'gan'); 'mse' -> ('none', 'mse')."""
    for constraint in ("aff", "soft"):
        if name.startswith(constraint) and name[len(constraint):] in OBJECTIVES:
            return constraint, name[len(constraint):]
    if name in OBJECTIVES:
        return "none", name
    raise ValueError(f"unknown method {name!r} (known: {', '.join(METHODS)})")


class SRModel(nn.Module):
    """ŷ = Π_x f(x) for the aff constraint, f(x) otherwise. `A` is always the model's own."""

    def __init__(self, net: dict, spec: OperatorSpec | swissroll.AverageSpec, constraint: str = "aff"):
        """net: {"class": a name in nets.NETS, "kwargs": its keyword arguments} (kept for checkpoints)."""
        super().__init__()
        if constraint not in CONSTRAINTS:
            raise ValueError(f"unknown constraint {constraint!r}")
        self.net_config, self.spec, self.constraint = net, spec, constraint
        self.net = nets.build(net["class"], net["kwargs"])
        self.grid = net["kwargs"].get("grid", "lr")  # read here: self.net may get wrapped (DDP)
        self.noise_channels = net["kwargs"].get("noise_channels", 0)
        self.A, self.pinv = spec.build()
        self.projection = Projection(self.A, self.pinv)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        inp = self.pinv(x) if self.grid == "hr" else x
        f = self.net(inp, z)
        return self.projection(f, x) if self.constraint == "aff" else f

    def config(self) -> dict:
        return {"net": self.net_config, "operator": self.spec.metadata(), "constraint": self.constraint}

    @classmethod
    def from_config(cls, config: dict) -> "SRModel":
        try:
            return cls(config["net"], operator_spec(config["operator"]), config["constraint"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"incomplete model description ({e})") from None


def operator_spec(meta: dict[str, str]):
    """The operator described by a checkpoint's metadata: A of images, or the Swiss roll's average."""
    return swissroll.AverageSpec.from_metadata(meta) if meta.get("kind") == "average" else OperatorSpec.from_metadata(meta)


def build_generator(preset: str, spec: OperatorSpec, constraint: str, channels: int = 3, noise_channels: int = 0,
                    grid: str = "lr") -> SRModel:
    if preset == "mlp":
        return SRModel({"class": "MLPGenerator", "kwargs": {"noise_channels": noise_channels}}, spec, constraint)
    if preset not in gpresets.PRESETS:
        raise ValueError(f"unknown generator preset {preset!r} (known: {', '.join(gpresets.PRESETS)})")
    kwargs = dict(channels=channels, scale=spec.scale, noise_channels=noise_channels, grid=grid, **gpresets.PRESETS[preset])
    kwargs["widths"] = list(kwargs["widths"])  # as JSON gives it back
    return SRModel({"class": "Generator", "kwargs": kwargs}, spec, constraint)


class Objective(nn.Module):
    """What the generator minimises. `critic` (a module or None) is trained by `critic_loss`."""

    def __init__(self):
        super().__init__()
        self.critic: nn.Module | None = None

    def generator_loss(self, yhat: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def critic_loss(self, yhat: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def after_step(self, step: int, logs: dict):
        pass


class PixelObjective(Objective):
    """mse or mae against the HR image y (empirical risk minimisation)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind, self.fn = kind, {"mse": losses.mse, "mae": losses.mae}[kind]

    def generator_loss(self, yhat, y):
        loss = self.fn(yhat, y)
        return loss, {self.kind: float(loss.detach())}


class GANObjective(Objective):
    """Amortised MAP via KL[q‖p] (paper §3.2, eq. 10), with instance noise (App. C)."""

    def __init__(self, discriminator: nn.Module, noise: losses.InstanceNoise):
        super().__init__()
        self.critic, self.noise = discriminator, noise

    def critic_loss(self, yhat, y):
        logits = self.critic(self.noise(torch.cat([y, yhat.detach()])))  # one batch: same BN statistics
        real, fake = logits.chunk(2)
        loss = losses.discriminator_loss(real, fake)
        return loss, {"d_loss": float(loss.detach()), "d_real": float(torch.sigmoid(real.detach()).mean()),
                      "d_fake": float(torch.sigmoid(fake.detach()).mean())}

    def generator_loss(self, yhat, y):
        loss = losses.generator_loss(self.critic(self.noise(yhat)))
        return loss, {"g_loss": float(loss.detach()), "noise": self.noise.sigma}

    def after_step(self, step, logs):
        self.noise.update(step, logs.get("d_loss", float("nan")))


def build_objective(objective: str, preset: str, channels: int, noise: losses.InstanceNoise) -> Objective:
    if objective in ("mse", "mae"):
        return PixelObjective(objective)
    if objective == "gan" and preset == "mlp":
        return GANObjective(nets.MLPCritic(), noise)
    if objective == "gan":
        return GANObjective(nets.Discriminator(channels=channels, **{k: (list(v) if isinstance(v, tuple) else v)
                                                                     for k, v in dpresets.PRESETS[preset].items()}), noise)
    raise ValueError(f"unknown objective {objective!r}")
