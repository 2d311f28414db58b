"""What `affsr train --data FOLDER` picks when no --preset is given (the shipped weights' recipe), what the paper's
presets keep, that every option given wins, the estimate printed before the first step, and --init by shipped name."""

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from affsr_cli import checkpoint, methods
from affsr_cli import recipe as R
from affsr_cli import train as engine
from affsr_cli.config import AUTO, TrainConfig
from affsr_cli.projection import OperatorSpec
from affsr_cli.registry import SHIPPED, photos_init

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((48 + 8 * i, 40, 3)) * 255).astype(np.uint8)).save(root / f"p{i}.png")
    return root


def resolved(photos, **kw):
    return R.resolve(TrainConfig(data=str(photos), **kw))


def recipe(array: str) -> dict:
    """The options of a bash array (`name=(...)`) or command (`affsr train ...`) in examples/photos/train_v3.sh."""
    text = (ROOT / "examples/photos/train_v3.sh").read_text().replace("\\\n", " ")
    body = re.search(rf"^{array}=\((.*?)\)", text, re.M | re.S)
    words = shlex.split(body.group(1) if body else re.search(rf"^{re.escape(array)}(.*)$", text, re.M).group(1))
    out = {}
    for i, w in enumerate(words):
        if w.startswith("--") and i + 1 < len(words) and not words[i + 1].startswith(("--", "$", '"$')):
            out[w[2:].replace("-", "_")] = words[i + 1]
    return out


# options of the script that belong to its machine and corpus, not to the recipe
NOT_RECIPE = {"val", "workers", "data", "init", "out", "method", "operator"}


@pytest.mark.parametrize(
    "method, lines",
    [
        ("affgan", ["common", "affgan"]),
        ("affmse", ["common", "affmse", 'affsr train "${affmse[@]}" --data data/photos3/train --operator bicubic']),
    ],
)
def test_a_folder_of_photos_gets_the_shipped_recipe(photos, method, lines):
    """Before: the `small` network from random weights, 100,000 steps at lr 2e-4, no content or lattice term.
    Now: what examples/photos/train_v3.sh gave the shipped bicubic affgan-x4 and affmse-x4, option by option."""
    cfg = resolved(photos, method=method)
    assert (cfg.preset, cfg.generator, cfg.operator, cfg.init) == ("photos", "span52", "bicubic", "affmse-x4")
    script = {}
    for line in lines:
        script.update(recipe(line))
    script = {k: v for k, v in script.items() if k not in NOT_RECIPE}
    assert {"steps", "lr", "grad_clip", "range_weight", "lr_bits"} <= script.keys()
    for k, v in script.items():
        want = type(getattr(cfg, k))(v) if not isinstance(getattr(cfg, k), bool) else v
        assert getattr(cfg, k) == want, (k, getattr(cfg, k), v)
    if method == "affgan":
        assert (cfg.pixel_weight, cfg.lattice_weight, cfg.gan_loss, cfg.discriminator) == (
            1000,
            1e6,
            "relativistic",
            "texture",
        )
    assert filled(photos, cfg)


def filled(photos, cfg) -> dict:
    """The fields the photos recipe set, checked to be ones the method reads (as a user's flags are checked)."""
    plain = resolved(photos, method=cfg.method, preset="patch").to_dict()
    diff = {k: v for k, v in cfg.to_dict().items() if v != plain[k] and k not in AUTO}
    methods.check_options(dataclasses.replace(TrainConfig(method=cfg.method), **diff), TrainConfig())
    return diff


def test_the_recipe_fills_only_what_each_method_reads(photos):
    soft = resolved(photos, method="softgan")
    assert soft.range_weight == 0 and soft.pixel_weight == 1000 and soft.lattice_weight == 1e6
    mse = resolved(photos, method="mse")
    assert mse.range_weight == 0 and mse.pixel_weight == 0 and mse.steps == 1400 and mse.init == "affmse-x4"
    gauss = resolved(photos, method="affmse", operator="gaussian")
    assert gauss.init == "affmse-x4-gaussian" and gauss.sigma == 1.5
    small = resolved(
        photos, method="affgan", patch=16
    )  # patches too small for the lattice term: left out, not an error
    assert small.lattice_weight == 0 and small.pixel_weight == 1000
    for cfg in (soft, mse, gauss, small, resolved(photos, method="affll"), resolved(photos, method="dg")):
        assert filled(photos, cfg)


@pytest.mark.parametrize(
    "preset, generator, operator",
    [
        ("celeba", "celeba", "gaussian"),
        ("imagenet", "imagenet", "gaussian"),
        ("texture", "texture", "gaussian"),
        ("patch", "small", "bicubic"),
    ],
)
def test_presets_named_keep_their_setup(photos, preset, generator, operator):
    """--preset celeba is the paper's CelebA setup (its 9.2 M network, the Gaussian A); patch is the plain layout."""
    cfg = resolved(photos, method="affgan", preset=preset)
    assert (cfg.generator, cfg.operator, cfg.steps, cfg.init) == (generator, operator, 100_000, "")
    assert (cfg.pixel_weight, cfg.lattice_weight, cfg.lr, cfg.gan_loss, cfg.instance_noise) == (0, 0, 2e-4, "kl", 0.1)
    if preset == "celeba":
        run = engine.build(cfg, Path("unused"), torch.device("cpu"), 0, 1)
        assert sum(p.numel() for p in run.model.net.parameters()) > 9_000_000


def test_options_given_win_over_the_recipe(photos):
    # from the CLI: an option given at its default value still wins (given names it)
    cfg = R.resolve(
        TrainConfig(data=str(photos), method="affgan", pixel_weight=0.0, steps=100_000, lr=2e-4),
        given={"pixel_weight", "steps", "lr", "method", "data"},
    )
    assert (cfg.pixel_weight, cfg.steps, cfg.lr) == (0, 100_000, 2e-4)
    assert cfg.lattice_weight == 1e6 and cfg.init == "affmse-x4" and cfg.critic_warmup == 100  # the rest: filled
    # from Python (given=None): a value other than the default is the user's
    cfg = resolved(photos, method="affgan", generator="small", lattice_weight=5.0, steps=30)
    assert (cfg.generator, cfg.lattice_weight, cfg.steps) == ("small", 5.0, 30)
    assert (
        cfg.init == "" and cfg.lr == 2e-4 and cfg.critic_warmup == 0
    )  # not the shipped network: no fine-tune schedule
    assert cfg.pixel_weight == 1000  # the loss terms are the recipe's whatever the network
    # --init '' given: random weights, and the schedule of a run from scratch
    cfg = R.resolve(TrainConfig(data=str(photos), method="affmse"), given={"init"})
    assert cfg.init == "" and cfg.generator == "span52" and cfg.steps == 100_000 and cfg.lr == 2e-4
    # an init of one's own: the fine-tune schedule
    cfg = resolved(photos, method="affmse", init="runs/mine")
    assert cfg.init == "runs/mine" and cfg.steps == 1400 and cfg.lr == 1e-5


def test_the_shipped_start_is_the_network_photos_runs_build():
    """shipped_start picks the shipped AffMSE by a description of span52 at 4× on RGB: it must be the same network."""
    for family in ("bicubic", "gaussian", "area"):
        name = photos_init(family)
        assert SHIPPED[name].method == "affmse" and SHIPPED[name].operator == (
            family if family != "area" else "bicubic"
        )
        spec = OperatorSpec(4, None, None, None, SHIPPED[name].operator)
        ours = methods.build_generator("span52", spec, "aff", 3).config()
        shipped = checkpoint.load_generator(checkpoint.resolve_weights(name)).config()
        assert shipped["net"] == ours["net"] and shipped["operator"]["family"] == spec.family


def test_init_takes_a_shipped_name(photos, tmp_path):
    cfg = resolved(photos, method="affmse", init="affgan-x4", patch=32, batch_size=2)
    run = engine.build(cfg, tmp_path, torch.device("cpu"), 0, 1)
    engine.start_from(run, "affgan-x4")
    want = checkpoint.load_generator(checkpoint.resolve_weights("affgan-x4")).net.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in run.model.net.state_dict().items())
    with pytest.raises(engine.TrainingError, match=r"no shipped weights named 'affgan-x5' \(shipped: .*affmse-x4"):
        engine.start_from(run, "affgan-x5")


class Recorder(engine.Callbacks):
    estimate = True

    def __init__(self):
        self.messages, self.estimates = [], []

    def on_message(self, message):
        self.messages.append(message)

    def on_estimate(self, seconds):
        self.estimates.append(seconds)


@pytest.mark.parametrize("method, phases", [("affgan", 2), ("affmse", 1), ("affdg", 2)])
def test_estimate_times_each_phase_on_a_copy(photos, tmp_path, method, phases):
    """A gan's D-only warm-up and dg's prior pre-training are timed apart from the generator's steps; the run's
    weights and RNG are as they were (the estimate trains a copy)."""
    extra = dict(critic_warmup=2) if method == "affgan" else dict(prior_steps=2) if method == "affdg" else {}
    cfg = resolved(photos, method=method, generator="tiny", patch=32, batch_size=2, steps=5, **extra)
    torch.manual_seed(0)
    run = engine.build(cfg, tmp_path, torch.device("cpu"), 0, 1)
    before = {k: v.clone() for k, v in run.model.net.state_dict().items()}
    rng = torch.get_rng_state()
    seconds = engine.estimate(run)
    assert [n for n, _ in seconds] == ([2, 3] if phases == 2 else [5]) and all(t > 0 for _, t in seconds)
    assert torch.equal(torch.get_rng_state(), rng) and run.step == 0 and run.ema_updates == 0
    assert all(torch.equal(v, before[k]) for k, v in run.model.net.state_dict().items())
    if method != "affdg":  # (a resumed dg run has its prior's ladder from its state; this one has none)
        run.step = 3  # resumed inside the generator phase: only what is left
        assert [n for n, _ in engine.estimate(run)] == [2]


def test_a_long_cpu_run_gets_one_warning(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "CPU_WARN_SECONDS", 0.0)
    rec = Recorder()
    engine.train(
        TrainConfig(
            data=str(photos),
            out=str(tmp_path / "run"),
            method="affmse",
            generator="tiny",
            patch=32,
            batch_size=2,
            steps=2,
            workers=0,
            device="cpu",
        ),
        rec,
    )
    assert len(rec.estimates) == 1 and rec.estimates[0][0][0] == 2
    warned = [m for m in rec.messages if "would take about" in m]
    assert len(warned) == 1 and "--steps" in warned[0] and "--init" in warned[0] and "GPU" in warned[0]
    assert any("starts from random weights" in m for m in rec.messages)
    assert R.duration(40) == "40 s" and R.duration(3 * 3600 + 300) == "3 h 05 min"
    assert R.duration(58 * 86400) == "58 days"


def test_a_celeba_folder_is_trained_as_photos_and_told_about_its_preset(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    for i in range(2):
        Image.new("RGB", (178, 218), (i * 50, 80, 120)).save(faces / f"{i:06d}.jpg")
    rec = Recorder()
    rec.estimate = False
    engine.train(
        TrainConfig(
            data=str(faces),
            out=str(tmp_path / "run"),
            method="affmse",
            generator="tiny",
            patch=32,
            batch_size=2,
            steps=1,
            workers=0,
        ),
        rec,
    )
    assert json.loads((tmp_path / "run" / "config.json").read_text())["preset"] == "photos"
    assert any("--preset celeba" in m for m in rec.messages)


def test_a_photos_run_resumes_without_repeating_the_recipe(photos, tmp_path):
    kw = dict(
        data=str(photos),
        out=str(tmp_path / "run"),
        method="affgan",
        patch=32,
        batch_size=2,
        workers=0,
        checkpoint_every=1,
    )
    engine.train(TrainConfig(steps=2, **kw))
    engine.train(TrainConfig(steps=3, resume=True, **kw))
    state, config = checkpoint.load_state(tmp_path / "run" / "state.safetensors")
    assert state["step"] == 3 and config["init"] == "affmse-x4" and config["lattice_weight"] == 1e6


def affsr(*args):
    return subprocess.run(
        [sys.executable, "-m", "affsr_cli", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"},
    )


def test_cli_prints_the_network_operator_steps_and_an_estimate(photos, tmp_path):
    r = affsr(
        "train",
        "--method",
        "affgan",
        "--data",
        photos,
        "--out",
        tmp_path / "run",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--patch",
        "32",
        "--workers",
        "0",
        "--pixel-weight",
        "0",
    )
    assert r.returncode == 0, r.stderr
    assert "network: span52 (SPAN, 498,208 parameters), from affmse-x4" in r.stdout
    assert "operator A: bicubic at 4×, pil borders" in r.stdout
    assert "training: affgan, 2 steps of 2 32×32 crops, preset photos" in r.stdout
    assert re.search(r"^estimate: about \d+ s for 2 steps on cpu \(\d", r.stdout, re.M), r.stdout
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["pixel_weight"] == 0 and config["lattice_weight"] == 1e6  # --pixel-weight 0 given: it wins
    assert config["steps"] == 2 and config["lr"] == 2e-5 and config["generator"] == "span52"
    r = affsr(
        "train",
        "--method",
        "affgan",
        "--data",
        photos,
        "--out",
        tmp_path / "r2",
        "--steps",
        "2",
        "--preset",
        "celeba",
        "--generator",
        "tiny",
        "--batch-size",
        "2",
        "--workers",
        "0",
    )
    assert r.returncode == 0, r.stderr
    assert (
        "operator A: gaussian σ 1.5, 9 taps at 4×, symmetric borders" in r.stdout and "from random weights" in r.stdout
    )
    r = affsr("train", "--help")
    assert "--preset" in r.stdout and "photos" in r.stdout and "shipped" in r.stdout


def test_the_progress_bar_shows_the_time_left():
    from rich.progress import TimeRemainingColumn

    from affsr_cli.cli.train import TrainUI

    ui = TrainUI()
    ui.on_start(
        {
            "steps": 10,
            "generator": "tiny",
            "init": "",
            "operator": "bicubic",
            "scale": 4,
            "boundary": "pil",
            "sigma": 0.0,
            "kernel_size": 16,
            "preset": "photos",
            "method": "affmse",
            "batch_size": 2,
            "patch": 32,
        },
        {"start_step": 0, "network": "EfficientGenerator", "generator_parameters": 1, "device": "cpu"},
    )
    ui.on_estimate([(10, 0.5)])
    try:
        assert any(isinstance(c, TimeRemainingColumn) for c in ui.bar.columns)
    finally:
        ui.close()
