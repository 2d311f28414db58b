"""Methods as objective × constraint (paper §3): `affgan` = gan objective under the affine
projection, `softmse` = mse with the soft MAE(x, Aŷ) penalty, `gan` = no constraint, ...

SRModel (model.py: network + constraint) is what a checkpoint holds; a Constraint (constraints.py) maps f
to ŷ and adds its penalty; an Objective (objectives.py) holds what training needs besides (a
discriminator, a denoiser, a density model) and returns losses.
"""

from __future__ import annotations

import torch

from . import constraints, losses, nets, objectives
from .errors import AffsrError
from .model import SRModel
from .nets import dat as datpresets
from .nets import discriminator as dpresets
from .nets import efficient as epresets
from .nets import generator as gpresets
from .nets import rrdb as rpresets
from .nets import span as spresets
from .projection import OperatorSpec

OBJECTIVE_KINDS = {
    "mse": objectives.PixelObjective,
    "mae": objectives.PixelObjective,
    "gan": objectives.GANObjective,
    "dg": objectives.DenoiserObjective,
    "ll": objectives.DensityObjective,
}
OBJECTIVES = tuple(OBJECTIVE_KINDS)
CONSTRAINTS = tuple(constraints.CONSTRAINTS)
METHODS = tuple(c.replace("none", "") + o for c in CONSTRAINTS for o in OBJECTIVES)


def parse_method(name: str) -> tuple[str, str]:
    """'affgan' -> ('aff', 'gan'); 'mse' -> ('none', 'mse')."""
    for constraint in ("aff", "soft"):
        if name.startswith(constraint) and name[len(constraint) :] in OBJECTIVES:
            return constraint, name[len(constraint) :]
    if name in OBJECTIVES:
        return "none", name
    raise AffsrError(f"unknown method {name!r} (known: {', '.join(METHODS)})")


def check_options(cfg, defaults) -> None:
    """Refuse a method-specific TrainConfig field set (≠ its default in `defaults`) for a method whose
    constraint and objective do not read it: a flag that would be silently ignored is an error."""
    constraint, objective = parse_method(cfg.method)
    owners: dict[str, list[str]] = {}
    for kind, table in (("constraint", constraints.CONSTRAINTS), ("objective", OBJECTIVE_KINDS)):
        for name, cls in table.items():
            for option in cls.options:
                owners.setdefault(option, []).append(f"{name} {kind}")
    used = {*constraints.CONSTRAINTS[constraint].options, *OBJECTIVE_KINDS[objective].options}
    for option in sorted(set(owners) - used):
        if getattr(cfg, option) != getattr(defaults, option):
            where = " or the ".join(dict.fromkeys(owners[option]))
            raise AffsrError(
                f"--{option.replace('_', '-')} does not apply to the method {cfg.method} "
                f"(it is an option of the {where})"
            )


def build_generator(
    preset: str,
    spec: OperatorSpec,
    constraint: str | constraints.Constraint,
    channels: int = 3,
    noise_channels: int = 0,
    grid: str = "lr",
) -> SRModel:
    if preset == "mlp":
        return SRModel({"class": "MLPGenerator", "kwargs": {"noise_channels": noise_channels}}, spec, constraint)
    families = (
        ("EfficientGenerator", epresets.PRESETS),
        ("SPAN", spresets.PRESETS),
        ("DAT", datpresets.PRESETS),
        ("RRDBNet", rpresets.PRESETS),
    )
    for cls, family in families:
        if preset in family:
            kwargs = dict(
                channels=channels, scale=spec.scale, noise_channels=noise_channels, grid=grid, **family[preset]
            )
            return SRModel({"class": cls, "kwargs": kwargs}, spec, constraint)
    if preset not in gpresets.PRESETS:
        known = [*epresets.PRESETS, *spresets.PRESETS, *datpresets.PRESETS, *rpresets.PRESETS, *gpresets.PRESETS]
        raise AffsrError(f"unknown generator preset {preset!r} (known: {', '.join(known)})")
    kwargs = dict(
        channels=channels, scale=spec.scale, noise_channels=noise_channels, grid=grid, **gpresets.PRESETS[preset]
    )
    kwargs["widths"] = list(kwargs["widths"])  # as JSON gives it back
    return SRModel({"class": "Generator", "kwargs": kwargs}, spec, constraint)


def trainable(net: torch.nn.Module, only: str) -> list[torch.nn.Parameter]:
    """The generator's parameters that --train-only names (comma-separated modules, e.g. `body,up`), the
    others frozen (requires_grad off, so the frozen part of the network runs without a graph); '' all."""
    names = [m.strip() for m in only.split(",") if m.strip()]
    if not names:
        return list(net.parameters())
    inside = lambda n, m: n == m or n.startswith(m + ".")  # noqa: E731
    for m in names:
        if not any(inside(n, m) for n, _ in net.named_parameters()):
            tops = sorted({n.split(".")[0] for n, _ in net.named_parameters()})
            raise AffsrError(
                f"--train-only: the generator has no module {m!r} with parameters (its: {', '.join(tops)})"
            )
    chosen = {n for n, _ in net.named_parameters() if any(inside(n, m) for m in names)}
    for n, p in net.named_parameters():
        p.requires_grad_(n in chosen)
    return [p for n, p in net.named_parameters() if n in chosen]


def build_objective(objective: str, preset: str, cfg) -> objectives.Objective:
    """The objective with its critic for generator preset `preset`; cfg: a resolved TrainConfig."""
    vectors = preset == "mlp"
    if objective in ("mse", "mae"):
        return objectives.PixelObjective(objective)
    if objective == "gan":
        noise = losses.InstanceNoise(cfg.instance_noise, cfg.noise_schedule, cfg.noise_steps, cfg.noise_target)
        # the efficient family: the small strided D (docs/training.md "Why AffGAN paints a lattice": with blur pooling a
        # uniform grid costs G nothing in D's eyes, and the small-aa D traded the grid for stripes)
        auto = (
            "texture"
            if preset in (*epresets.PRESETS, *spresets.PRESETS, *datpresets.PRESETS, *rpresets.PRESETS)
            else preset
        )
        d_preset = auto if cfg.discriminator == "auto" else cfg.discriminator
        if not vectors and d_preset not in (*dpresets.PRESETS, "unet"):
            raise AffsrError(
                f"unknown discriminator preset {d_preset!r} (known: auto, {', '.join(dpresets.PRESETS)}, unet)"
            )
        if vectors:
            d = nets.MLPCritic()
        elif d_preset == "unet":
            d = nets.UNetDiscriminator(channels=cfg.channels)
        else:
            d = nets.Discriminator(
                channels=cfg.channels,
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in dpresets.PRESETS[d_preset].items()},
            )
        return objectives.GANObjective(d, noise, cfg.critic_warmup, cfg.gan_loss, cfg.feature_weight)
    width = cfg.prior_width or (256 if vectors and objective == "dg" else 128 if objective == "dg" else 64)
    layers = cfg.prior_layers or (2 if vectors else 4)
    if objective == "dg":
        dae = (
            nets.MLPDenoiser(width=width, layers=layers)
            if vectors
            else nets.ConvDenoiser(channels=cfg.channels, width=width, layers=layers)
        )
        return objectives.DenoiserObjective(
            dae, cfg.prior_steps, cfg.steps, cfg.ladder, cfg.dae_sigma_max, cfg.dae_sigma_min
        )
    if objective == "ll":
        if vectors:
            raise AffsrError("the ll objective needs images (its prior is a PixelCNN)")
        prior = nets.PixelCNN(channels=cfg.channels, width=width, layers=layers, mixture=cfg.mixture)
        return objectives.DensityObjective(prior, cfg.prior_steps, cfg.steps, cfg.ladder)
    raise AffsrError(f"unknown objective {objective!r}")
