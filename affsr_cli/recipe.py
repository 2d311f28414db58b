"""What a run of `affsr train` will do, decided before it starts: the configuration resolved from the
options given (a folder of images gets the shipped weights' recipe, --preset photos; the paper's presets
their own), and the lines that tell the user about it (notes, the warning of a run too long for the CPU)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from . import checkpoint, data, methods, registry, rundir, tasks
from .config import PHOTOS, PHOTOS_FROM_WEIGHTS, TrainConfig, TrainingError
from .projection import OperatorSpec

SCHEDULES = ("constant", "cosine")
CPU_WARN_SECONDS = 3 * 3600  # a run estimated longer than this on the CPU gets a warning before it starts


def resolve(cfg: TrainConfig, given=None) -> TrainConfig:
    """Fill the 'auto' and 0 fields from the data and the scale, and check the rest. `given`: the names of the
    fields the user set (the options given to `affsr train`); None: those that differ from their default. A
    preset's recipe (config.PHOTOS) fills only the others."""
    cfg = dataclasses.replace(cfg)
    cfg.check_ranges()
    unset = cfg.left_unset(given)
    if cfg.data == "swissroll":  # built-in 2-D data (paper §5.1): MLPs, A = the coordinates' average
        cfg.preset = "swissroll"
    if cfg.preset == "auto":  # a folder of images: the recipe of the shipped weights; the paper's setups by name
        cfg.preset = "photos"
    try:
        task = tasks.task(cfg.preset)
    except ValueError as e:
        raise TrainingError(str(e)) from None
    if task.points:
        cfg.generator = task.generator
    cfg.patch = cfg.patch or task.size
    if cfg.preset == "photos":
        fill_photos(cfg, unset)
    if cfg.generator == "auto":
        cfg.generator = task.generator
    if cfg.operator == "auto":  # the paper's experiments keep its Gaussian; photos are made by resizing
        cfg.operator = task.operator
    if cfg.preset == "photos":
        fill_photos_schedule(cfg, unset)
    try:
        spec = OperatorSpec(
            cfg.scale,
            cfg.kernel_size or None,
            cfg.sigma or None,
            None if cfg.boundary == "auto" else cfg.boundary,
            cfg.operator,
        )
    except ValueError as e:
        raise TrainingError(str(e)) from None
    cfg.kernel_size, cfg.sigma, cfg.boundary = spec.kernel_size, spec.sigma or 0.0, spec.boundary
    # automatic lengths follow --steps, except on a resume: a run extended with more --steps keeps its schedules
    saved = rundir.saved_config(Path(cfg.out)) if cfg.resume and (Path(cfg.out) / "config.json").is_file() else None
    cfg.noise_steps = cfg.noise_steps or (saved.noise_steps if saved else cfg.steps)
    cfg.prior_steps = cfg.prior_steps or (saved.prior_steps if saved else cfg.steps // 2)
    cfg.dae_sigma_min = cfg.dae_sigma_min or task.dae_sigma_min
    if not task.points and cfg.patch % cfg.scale:
        raise TrainingError(f"patch {cfg.patch} is not a multiple of the scale {cfg.scale}")
    for name in ("lattice_weight", "grid_weight"):
        if getattr(cfg, name) and (task.points or cfg.patch < 8 * cfg.scale):
            flag = "--" + name.replace("_", "-")
            raise TrainingError(f"{flag} needs image patches of at least {8 * cfg.scale} pixels (8 × the scale)")
    if cfg.texture_weight and (task.points or cfg.patch < 40):
        raise TrainingError("--texture-weight needs image patches of at least 40 pixels (16-pixel blocks at half size)")
    if cfg.luma_weight and (task.points or cfg.channels != 3):
        raise TrainingError("--luma-weight needs RGB images (--channels 3)")
    if cfg.lr_schedule not in SCHEDULES:
        raise TrainingError(f"unknown lr schedule {cfg.lr_schedule!r} ({', '.join(SCHEDULES)})")
    return cfg


def fill_photos(cfg: TrainConfig, unset: set[str]):
    """The photos preset's network, A and loss terms (config.PHOTOS) in the `unset` fields that the method reads;
    the lattice term only where the patches hold it (8 × the scale)."""
    constraint, objective = methods.parse_method(cfg.method)
    recipe = {**PHOTOS["all"], **PHOTOS.get(constraint, {}), **PHOTOS.get(objective, {})}
    if cfg.patch < 8 * cfg.scale:
        recipe.pop("lattice_weight", None)
    for k, v in recipe.items():
        if k in unset:
            setattr(cfg, k, v)


def fill_photos_schedule(cfg: TrainConfig, unset: set[str]):
    """--init: the shipped AffMSE of the run's A when the network is the shipped one (shipped_start); then, for a
    run that starts from weights, the steps and learning rates of the shipped fine-tunes (PHOTOS_FROM_WEIGHTS)."""
    if "init" in unset:
        cfg.init = shipped_start(cfg)
    if cfg.init:
        _, objective = methods.parse_method(cfg.method)
        for k, v in PHOTOS_FROM_WEIGHTS.get(objective, {}).items():
            if k in unset:
                setattr(cfg, k, v)


def shipped_start(cfg: TrainConfig) -> str:
    """The name of the shipped AffMSE a photos run starts from (registry.photos_init: the one of its operator family), or
    '' when this run's network is not the shipped one (span52, 4×, RGB, no z, LR grid) or the file is missing."""
    if (cfg.generator, cfg.scale, cfg.channels, cfg.noise_channels, cfg.grid) != ("span52", 4, 3, 0, "lr"):
        return ""
    name = registry.photos_init(cfg.operator)
    try:
        checkpoint.resolve_weights(name)
    except ValueError:
        return ""
    return name


def notes(asked: TrainConfig, cfg: TrainConfig, given=None) -> list[str]:
    """Lines for the user about what the photos preset chose (on_message): a CelebA folder trained as photos, a
    photos run from random weights."""
    lines = []
    if asked.preset == "auto" and cfg.preset == "photos" and data.detect_preset(cfg.data) == "celeba":
        lines.append(
            f"{cfg.data} looks like CelebA; it is trained with the photos recipe. --preset celeba trains the "
            "paper's setup (its 9.2 M-parameter network, the Gaussian A, 64×64 faces)"
        )
    if cfg.preset == "photos" and not cfg.init and "init" in asked.left_unset(given):
        lines.append(
            f"the {cfg.generator} network starts from random weights (the shipped files started from trained "
            "ones: --init affmse-x4 needs --generator span52 at 4× on RGB): expect a long run"
        )
    return lines


def slow_warning(cfg: TrainConfig, seconds: list[tuple[int, float]]) -> str:
    """The one line for a run that `estimate` says would take more than CPU_WARN_SECONDS on the CPU."""
    hint = "fewer --steps" + (
        "" if cfg.init else ", --init from trained weights (e.g. --init affmse-x4 with --generator span52)"
    )
    return (
        f"{sum(n for n, _ in seconds):,} steps would take about {duration(sum(n * t for n, t in seconds))} on the CPU: "
        f"{hint}, or a GPU (--device cuda); --time-limit MIN stops with a resumable checkpoint"
    )


def duration(seconds: float) -> str:
    """'45 s', '12 min', '3 h 05 min', '58 days'."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    return f"{seconds / 86400:.0f} days"
