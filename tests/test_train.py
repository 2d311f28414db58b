"""The training loop on tiny data: every method, resume, checkpoints, DDP, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from affsr_cli import checkpoint, data, losses, methods, metrics, objectives
from affsr_cli import train as engine
from affsr_cli.config import TrainConfig
from helpers import affsr, tiny_config


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(3):
        (root / "sub").mkdir(exist_ok=True)
        a = (rng.random((20 + 4 * i, 24, 3)) * 255).astype(np.uint8)
        Image.fromarray(a).save(root / ("sub" if i else ".") / f"img{i}.png")
    (root / "broken.jpg").write_bytes(b"not a jpeg at all")
    return root


tiny = tiny_config


class Recorder(engine.Callbacks):
    def __init__(self):
        self.starts, self.steps, self.messages = [], [], []

    def on_start(self, config, info):
        self.starts.append((config, info))

    def on_step(self, step, logs):
        self.steps.append((step, logs))

    def on_message(self, message):
        self.messages.append(message)


@pytest.mark.parametrize("method", methods.METHODS)
def test_every_method_trains(images, tmp_path, method):
    rec = Recorder()
    torch.manual_seed(0)  # the run seeds torch with its seed (0), then builds the generator first
    before = methods.build_generator("texture", methods.OperatorSpec(), "aff", 3).net.state_dict()
    out = engine.train(tiny(images, tmp_path / method, method=method), rec)
    assert [s for s, _ in rec.steps] == [1, 2]
    assert all(np.isfinite(logs["loss"]) for _, logs in rec.steps)
    assert any("broken.jpg" in m for m in rec.messages)  # skipped with one warning
    model = checkpoint.load_generator(out / "generator.safetensors")
    state, _ = checkpoint.load_state(out / "state.safetensors")
    trained = state["modules"]["net"]
    assert set(trained) == set(before)
    assert all(not torch.equal(trained[k], before[k]) for k in before if k.endswith(".0.weight") or k == "head.weight")
    x = torch.rand(2, 3, 5, 7)
    yhat = model(x)
    assert yhat.shape == (2, 3, 20, 28)
    if method.startswith("aff"):
        assert (model.A(yhat) - x).abs().max() < 1e-5
        assert all(logs["lr_mse"] < 1e-12 for _, logs in rec.steps if "lr_mse" in logs)
        assert "lr_mse" in rec.steps[-1][1]  # dg/ll pre-train their prior at step 1; every method trains f at step 2
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
    assert (out / "samples" / "step-0000002.png").exists()
    assert json.loads((out / "config.json").read_text())["method"] == method


@pytest.mark.parametrize("method", methods.METHODS)
def test_every_method_trains_the_efficient_generator_with_noise(images, tmp_path, method):
    """The efficient family (here `tiny`) with the stochastic input z works with every method; the
    photo default is the bicubic A, and two draws of z give two different consistent samples."""
    rec = Recorder()
    out = engine.train(tiny(images, tmp_path / method, method=method, generator="tiny", noise_channels=2), rec)
    assert all(np.isfinite(logs["loss"]) for _, logs in rec.steps)
    model = checkpoint.load_generator(out / "generator.safetensors")
    assert model.net_config["class"] == "EfficientGenerator" and model.spec.family == "bicubic"
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        a, b = model(x, torch.randn(1, 2, 6, 5)), model(x, torch.randn(1, 2, 6, 5))
    assert a.shape == (1, 3, 24, 20) and not torch.equal(a, b)
    if method.startswith("aff"):
        assert max(float((model.A(v) - x).abs().max()) for v in (a, b)) < 1e-5


def test_resume_continues_with_optimiser_state(images, tmp_path):
    cfg = tiny(images, tmp_path / "run", method="affgan")
    engine.train(cfg)
    saved, _ = checkpoint.load_state(tmp_path / "run" / "state.safetensors")
    with open(tmp_path / "run" / "metrics.jsonl", "a") as fh:  # logged after the checkpoint, then killed
        fh.write(json.dumps({"step": 3, "loss": 1.0}) + "\n")
    rec = Recorder()
    cfg.steps, cfg.resume = 4, True
    engine.train(cfg, rec)
    assert rec.starts[0][1]["start_step"] == 2 and [s for s, _ in rec.steps] == [3, 4]
    logged = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4]  # the repeated step is logged once
    resumed, _ = checkpoint.load_state(tmp_path / "run" / "state.safetensors")
    assert resumed["step"] == 4
    for opt in ("g", "c"):
        steps = [float(s["step"]) for s in resumed["optimizers"][opt]["state"].values()]
        assert steps and all(s == 2 + 2 for s in steps)  # Adam's counters went on from 2, not from 0
    # the loaded state is what was saved: a fresh Adam restored from it matches tensor for tensor
    first = saved["optimizers"]["g"]["state"][0]
    assert set(first) >= {"exp_avg", "exp_avg_sq", "step"}


def test_ema_warm_up():
    net, ema = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    with torch.no_grad():
        net.weight.fill_(1.0)
        ema.weight.fill_(0.0)
    engine.ema_update(ema, net, 0.999, updates=0)  # first update: decay 1/10, not 0.999
    assert torch.allclose(ema.weight, torch.full_like(ema.weight, 0.9))
    engine.ema_update(ema, net, 0.999)  # late in a run: the full decay
    assert torch.allclose(ema.weight, torch.full_like(ema.weight, 0.9 + 0.1 * 0.001))
    engine.ema_update(ema, net, 0.0, updates=5)  # --ema 0: the live weights
    assert torch.equal(ema.weight, net.weight)


def test_state_flattening_round_trip():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    net(torch.rand(4, 3)).sum().backward()
    opt.step()
    tensors = {}
    tree = checkpoint.flatten(opt.state_dict(), "o", tensors)
    back = checkpoint.unflatten(json.loads(json.dumps(tree)), tensors)
    fresh = torch.optim.Adam(net.parameters(), 1e-3)
    fresh.load_state_dict(back)
    for k, v in opt.state_dict()["state"][0].items():
        assert torch.equal(fresh.state_dict()["state"][0][k], v)
    assert fresh.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


def test_checkpoint_gives_identical_outputs_in_a_fresh_process(images, tmp_path):
    out = engine.train(tiny(images, tmp_path / "run", method="affmse"))
    x = torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(3))
    np.save(tmp_path / "x.npy", x.numpy())
    mine = checkpoint.load_generator(out / "generator.safetensors")(x)
    code = (
        "import numpy as np, torch; from affsr_cli.checkpoint import load_generator; "
        f"m = load_generator(r'{out / 'generator.safetensors'}'); "
        f"np.save(r'{tmp_path / 'y.npy'}', m(torch.from_numpy(np.load(r'{tmp_path / 'x.npy'}'))).detach().numpy())"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "y.npy")), mine.detach())


def test_nan_stops_with_last_checkpoint_intact(images, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = objectives.PixelObjective.generator_loss

    def poisoned(self, yhat, y):
        calls["n"] += 1
        loss, logs = real(self, yhat, y)
        return (loss * float("nan"), logs) if calls["n"] == 3 else (loss, logs)

    monkeypatch.setattr(objectives.PixelObjective, "generator_loss", poisoned)
    with pytest.raises(engine.TrainingError, match="nan at step 3"):
        engine.train(tiny(images, tmp_path / "run", method="mse", steps=5))
    state, _ = checkpoint.load_state(tmp_path / "run" / "state.safetensors")
    assert state["step"] == 2
    checkpoint.load_generator(tmp_path / "run" / "generator.safetensors")


def test_ctrl_c_saves_a_resumable_state(images, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = engine.ema_update

    def interrupt(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(engine, "ema_update", interrupt)
    with pytest.raises(engine.Interrupted, match="step 2"):
        engine.train(tiny(images, tmp_path / "run", method="mse", steps=5, checkpoint_every=100))
    state, _ = checkpoint.load_state(tmp_path / "run" / "state.safetensors")
    assert state["step"] == 2
    assert not list((tmp_path / "run").glob(".*.tmp"))


@pytest.mark.parametrize("workers", [0, 1])
def test_sigterm_stops_the_cli_like_ctrl_c(images, tmp_path, workers):
    """SIGTERM to the whole process group (as schedulers send it), DataLoader workers included."""
    run = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "affsr_cli",
        "train",
        "--data",
        str(images),
        "--out",
        str(run),
        "--method",
        "affmse",
        "--steps",
        "100000",
        "--batch-size",
        "2",
        "--patch",
        "16",
        "--generator",
        "texture",
        "--workers",
        str(workers),
        "--log-every",
        "1",
        "--checkpoint-every",
        "100000",
        "--sample-every",
        "100000",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while (
        not ((run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").read_text().strip())
        and time.time() < deadline
    ):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "continue with --resume" in err.strip().splitlines()[-1] and "Traceback" not in err
    state, _ = checkpoint.load_state(run / "state.safetensors")
    assert state["step"] >= 1


def test_worker_keeps_quiet_about_a_transfer_the_main_process_abandoned():
    """A worker's resource-sharer thread reports errors through sys.excepthook: after the worker
    init, a reset connection (the main process stopped mid-batch) prints nothing, anything else does."""
    code = (
        "import sys; from affsr_cli import data\n"
        "data._worker_init(0)\n"
        "for e in (ConnectionResetError('reset'), BrokenPipeError('pipe'), EOFError('eof'), ValueError('real bug')):\n"
        "    sys.excepthook(type(e), e, None)\n"
    )
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stderr
    assert "real bug" in err and "reset" not in err and "pipe" not in err and "eof" not in err


def test_smooth_patches(images):
    def tv(y):
        return float((y[:, 1:] - y[:, :-1]).abs().mean() + (y[:, :, 1:] - y[:, :, :-1]).abs().mean())

    torch.manual_seed(0)
    sharp = [data.ImageFolder(images, "patch", 16)[i] for i in range(3)]
    torch.manual_seed(0)
    smooth = [data.ImageFolder(images, "patch", 16, smooth=1.0)[i] for i in range(3)]
    for a, b in zip(sharp, smooth):  # the same crop, blurred: same mean colour, far less variation
        assert b.shape == a.shape and tv(b) < 0.5 * tv(a)
        assert torch.allclose(a.mean((1, 2)), b.mean((1, 2)), atol=0.05)
    with pytest.raises(ValueError, match="smooth"):
        data.ImageFolder(images, "patch", 16, smooth=1.5)


def test_point_source_patches():
    """data.add_points: the patch dimmed, then bright compact spots added, each local maximum well above
    its surroundings; deterministic in the generator; clipped to [0, 1]."""
    y = torch.full((3, 64, 64), 0.5)
    z = data.add_points(y, torch.Generator().manual_seed(3))
    assert z.shape == y.shape and 0 <= z.min() and z.max() <= 1
    assert torch.equal(z, data.add_points(y, torch.Generator().manual_seed(3)))
    background = z.median()
    assert background <= 0.5  # dimmed (never brightened) away from the spots
    lum = z.mean(0)
    peaks = (lum == torch.nn.functional.max_pool2d(lum[None, None], 7, 1, 3)[0, 0]) & (lum > background + 0.1)
    assert 3 <= int(peaks.sum()) <= 30  # 3-30 sources, some may merge
    assert float((lum > background + 0.05).float().mean()) < 0.25  # compact: most of the patch untouched
    with pytest.raises(ValueError, match="points"):
        data.ImageFolder("unused", "patch", 16, points=2.0)


def test_pixel_weight_adds_a_content_term(images, tmp_path):
    rec = Recorder()
    engine.train(tiny(images, tmp_path / "p", method="affgan", pixel_weight=100.0), rec)
    logs = rec.steps[-1][1]
    assert logs["pixel_mse"] > 0 and logs["loss"] == pytest.approx(logs["g_loss"] + 100.0 * logs["pixel_mse"], rel=1e-5)


def test_lattice_loss_sees_a_grid_and_nothing_else():
    """losses.lattice: 0 for ŷ = y, little for a smooth change (a ramp of 0.2 across the image), a
    4-pixel grid of ±0.05 added to ŷ its pattern's energy, and a grid in a quarter of the image a
    quarter of that (blockwise: it is not averaged away by the rest)."""
    torch.manual_seed(0)
    y = torch.rand(2, 3, 64, 64)
    assert losses.lattice(y, y, 4) == 0
    ramp = torch.linspace(0, 0.2, 64).view(1, 1, 1, 64)
    smooth = losses.lattice(y + ramp, y, 4)
    grid = torch.zeros(4, 4)
    grid[0, 0], grid[2, 1] = 0.05, -0.05
    lattice = grid.repeat(16, 16)  # (64, 64), period 4
    full = losses.lattice(y + lattice, y, 4)
    quarter = torch.zeros(64, 64)
    quarter[:32, :32] = lattice[:32, :32]
    part = losses.lattice(y + quarter, y, 4)
    want = (grid - grid.mean()).pow(2).mean()  # the pattern's energy per phase
    assert full == pytest.approx(float(want), rel=1e-4) and part == pytest.approx(float(want) / 4, rel=1e-4)
    assert smooth < 0.05 * full  # a ramp's only period-4 part is its slope within each 4-pixel cell


def test_coherent_grid_sees_a_grid_locked_to_the_pixels_and_not_texture():
    """losses.coherent_grid: a 4-pixel grid at one phase everywhere costs its pattern's energy, as in
    `lattice`; the same grid at a random phase in each 32×32 block (texture's own period-4 content)
    averages out over the batch's blocks, while `lattice` charges it in full."""
    torch.manual_seed(0)
    y = torch.rand(4, 3, 128, 128)
    grid = torch.zeros(4, 4)
    grid[0, 0], grid[2, 1] = 0.05, -0.05
    want = float((grid - grid.mean()).pow(2).mean())
    locked = grid.repeat(32, 32)
    assert losses.coherent_grid(y, y, 4) == 0
    assert losses.coherent_grid(y + locked, y, 4) == pytest.approx(want, rel=1e-4)
    texture = torch.zeros(4, 1, 128, 128)
    for b in range(4):
        for i in range(0, 128, 32):
            for j in range(0, 128, 32):
                dy, dx = torch.randint(0, 4, (2,)).tolist()
                texture[b, 0, i : i + 32, j : j + 32] = torch.roll(grid, (dy, dx), (0, 1)).repeat(8, 8)
    assert losses.lattice(y + texture, y, 4) == pytest.approx(want, rel=1e-4)
    assert losses.coherent_grid(y + texture, y, 4) < 0.05 * want


@pytest.mark.parametrize(
    "field, log, weight", [("lattice_weight", "lattice_mse", 10.0), ("grid_weight", "grid_mse", 1e3)]
)
def test_pattern_weights_add_their_terms(images, tmp_path, field, log, weight):
    """--lattice-weight and --grid-weight each add w · their term to the loss, and need 8s × 8s patches."""
    rec = Recorder()
    engine.train(tiny(images, tmp_path / "l", method="affmse", patch=32, **{field: weight}), rec)
    logs = rec.steps[-1][1]
    assert logs[log] > 0 and logs["loss"] == pytest.approx(logs["mse"] + weight * logs[log], rel=1e-5)
    flag = field.replace("_", "-")
    with pytest.raises(engine.TrainingError, match=f"{flag} needs image patches"):
        engine.train(tiny(images, tmp_path / "l2", method="affmse", patch=16, **{field: 1.0}))


def test_luma_weight_adds_the_y_error(images, tmp_path):
    """--luma-weight adds w · MSE between the BT.601 luma of ŷ and y (the error Y-PSNR counts), blind to
    an error of zero luma; gray training refuses it."""
    rec = Recorder()
    engine.train(tiny(images, tmp_path / "y", method="affmse", luma_weight=7.0), rec)
    logs = rec.steps[-1][1]
    assert logs["luma_mse"] > 0 and logs["loss"] == pytest.approx(logs["mse"] + 7.0 * logs["luma_mse"], rel=1e-5)
    # an RGB error of zero luma (R against B in the ratio of their BT.601 weights) leaves the term at 0
    y = torch.rand(1, 3, 8, 8)
    w = torch.tensor(metrics.BT601_Y)
    d = torch.tensor([w[2], 0.0, -w[0]]).view(1, 3, 1, 1) * 1e-5
    assert losses.mse(metrics.to_y(y + d), metrics.to_y(y)) < 1e-15 < losses.mse(y + d, y)
    with pytest.raises(engine.TrainingError, match="--luma-weight needs RGB images"):
        engine.train(tiny(images, tmp_path / "g", method="affmse", channels=1, luma_weight=1.0))


def test_texture_loss_sees_statistics_not_phase():
    """losses.texture compares blockwise Gram matrices of random-filter responses: a texture moved by a
    few pixels (large MSE) is near y's, the same texture blurred flat (smaller MSE) is far."""
    torch.manual_seed(0)
    y = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 68, 68), 3, 1) * 0.8 + 0.1  # (2, 3, 66, 66) fine texture
    y = y[..., :64, :64]
    shifted = y.roll((3, 5), (-2, -1))
    flat = torch.nn.functional.avg_pool2d(y, 9, 1, 4, count_include_pad=False)
    assert losses.mse(shifted, y) > losses.mse(flat, y)
    assert losses.texture(shifted, y) < 0.1 * losses.texture(flat, y)
    assert losses.texture(y, y) == 0
    bank = losses.texture_bank(3)
    assert bank.shape == (32, 3, 5, 5) and bank.flatten(1).sum(1).abs().max() < 1e-5
    assert torch.allclose(bank.flatten(1).norm(dim=1), torch.ones(32))


def test_halo_loss_counts_only_what_leaves_the_local_range():
    """losses.halo: detail inside y's 5×5 range costs nothing however wrong; a dark ring beside a bright
    point, below the darkest pixel around it, costs its squared depth over the image's pixels."""
    torch.manual_seed(0)
    y = 0.4 + 0.2 * torch.rand(1, 1, 32, 32)  # texture between 0.4 and 0.6
    y[..., 16, 16] = 1.0  # a bright point
    lo = -torch.nn.functional.max_pool2d(-y, 5, 1, 2)
    hi = torch.nn.functional.max_pool2d(y, 5, 1, 2)
    inside = lo + torch.rand_like(y) * (hi - lo)  # wrong everywhere, but within each pixel's local range
    assert losses.halo(inside, y) == 0 < losses.mse(inside, y)
    assert losses.halo(y, y) == 0
    ring = y.clone()
    ring[..., 16, 14] = lo[..., 16, 14] - 0.1  # a ring pixel 0.1 below the darkest pixel within reach
    assert losses.halo(ring, y).item() == pytest.approx(0.1**2 / 32**2, rel=1e-4)


def test_texture_and_halo_weights_add_their_terms(images, tmp_path):
    rec = Recorder()
    engine.train(tiny(images, tmp_path / "t", method="affmse", patch=40, texture_weight=1e4, halo_weight=100.0), rec)
    logs = rec.steps[-1][1]
    assert logs["texture_mse"] > 0 and logs["halo_mse"] > 0
    assert logs["loss"] == pytest.approx(logs["mse"] + 1e4 * logs["texture_mse"] + 100 * logs["halo_mse"], rel=1e-5)
    with pytest.raises(engine.TrainingError, match="--texture-weight needs image patches of at least 40"):
        engine.train(tiny(images, tmp_path / "t2", method="affmse", patch=32, texture_weight=1.0))


def test_range_weight_pins_what_the_projection_discards(images, tmp_path):
    """--range-weight adds w·MSE(A f, x) on the network's own output f (Aŷ = x always, so a term on ŷ
    would be 0); training pulls A f towards x while ŷ stays exactly consistent."""
    rec = Recorder()
    engine.train(
        tiny(
            images,
            tmp_path / "r",
            method="affmse",
            range_weight=10.0,
            steps=12,
            lr=3e-3,
            sample_every=100,
            checkpoint_every=100,
            ema=0.0,
        ),
        rec,
    )
    first, last = rec.steps[0][1], rec.steps[-1][1]
    assert first["range_mse"] > 1e-4 and last["range_mse"] < 0.75 * first["range_mse"]
    assert last["loss"] == pytest.approx(last["mse"] + 10.0 * last["range_mse"], rel=1e-5) and last["lr_mse"] < 1e-10
    rec0 = Recorder()
    engine.train(tiny(images, tmp_path / "r0", method="affmse"), rec0)
    assert "range_mse" not in rec0.steps[-1][1]  # off by default: the paper's objective alone


def test_cosine_schedule_decays_each_optimiser_over_its_own_steps(images, tmp_path):
    """--lr-schedule cosine: lr · ½(1 + cos(π t)), t running over the steps the optimiser trains in; dg's
    generator starts its decay when its prior's pre-training ends, and a resumed run picks up the schedule."""
    rec = Recorder()
    engine.train(tiny(images, tmp_path / "c", method="affmse", lr=1e-3, steps=4, lr_schedule="cosine"), rec)
    want = [1e-3 * 0.5 * (1 + np.cos(np.pi * k / 4)) for k in range(4)]
    assert [logs["lr"] for _, logs in rec.steps] == pytest.approx(want)
    rec = Recorder()
    engine.train(
        tiny(images, tmp_path / "c", method="affmse", lr=1e-3, steps=6, lr_schedule="cosine", resume=True), rec
    )
    assert [logs["lr"] for _, logs in rec.steps] == pytest.approx(
        [1e-3 * 0.5 * (1 + np.cos(np.pi * k / 6)) for k in (4, 5)]
    )
    rec = Recorder()
    engine.train(
        tiny(
            images,
            tmp_path / "d",
            method="affdg",
            lr=1e-3,
            steps=6,
            prior_steps=2,
            prior_width=8,
            prior_layers=1,
            lr_schedule="cosine",
        ),
        rec,
    )
    lrs = {step: logs["lr"] for step, logs in rec.steps}
    assert lrs[3] == pytest.approx(1e-3) and lrs[6] == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 3 / 4)))
    rec = Recorder()
    engine.train(tiny(images, tmp_path / "k", method="affmse", lr=1e-3), rec)
    assert {logs["lr"] for _, logs in rec.steps} == {1e-3}  # constant by default
    with pytest.raises(engine.TrainingError, match="unknown lr schedule"):
        engine.train(tiny(images, tmp_path / "e", lr_schedule="step"))


def test_discriminator_preset_is_independent_of_the_generator(images, tmp_path):
    cfg = tiny(images, tmp_path / "d", method="affgan", generator="texture", discriminator="imagenet")
    engine.train(cfg, Recorder())
    state, _ = checkpoint.load_state(tmp_path / "d" / "state.safetensors")
    critic = {k: v for k, v in state["modules"]["objective"].items() if k.startswith("critic.") and v.ndim == 4}
    assert max(v.shape[0] for v in critic.values()) == 1024  # imagenet's widths, not texture's 256


def test_critic_warmup_trains_the_discriminator_alone_first(images, tmp_path):
    """--critic-warmup N: steps 1 … N change D and leave the generator (from --init) as it was."""
    small = dict(generator="small", operator="bicubic", sample_every=100)
    engine.train(tiny(images, tmp_path / "m", method="affmse", steps=1, **small))
    init = checkpoint.load_generator(tmp_path / "m" / "generator.safetensors").net.state_dict()
    rec = Recorder()
    gan = dict(
        method="affgan", discriminator="small-aa", critic_warmup=2, init=str(tmp_path / "m" / "generator.safetensors")
    )
    engine.train(tiny(images, tmp_path / "w", steps=2, **small, **gan), rec)
    state, _ = checkpoint.load_state(tmp_path / "w" / "state.safetensors")
    assert all(torch.equal(state["modules"]["net"][k], v) for k, v in init.items()), "G changed during the warm-up"
    assert all("g_loss" not in logs and "d_loss" in logs for _, logs in rec.steps)
    critic = [k for k in state["modules"]["objective"] if k.startswith("critic.")]
    assert critic
    rec = Recorder()
    engine.train(tiny(images, tmp_path / "w", steps=3, resume=True, **small, **gan), rec)
    assert "g_loss" in rec.steps[-1][1]  # after the warm-up both train
    state, _ = checkpoint.load_state(tmp_path / "w" / "state.safetensors")
    assert not all(torch.equal(state["modules"]["net"][k], v) for k, v in init.items())


def test_auto_preset(tmp_path):
    faces, photos = tmp_path / "faces", tmp_path / "photos"
    faces.mkdir(), photos.mkdir()
    for i in range(2):
        Image.new("RGB", (178, 218)).save(faces / f"{i:06d}.jpg")
        Image.new("RGB", (300, 200)).save(photos / f"p{i}.png")
    assert data.detect_preset(faces) == "celeba" and data.detect_preset(photos) == "patch"
    y = data.ImageFolder(faces, "celeba")[0]
    assert y.shape == (3, 64, 64)


def test_cli_trains_and_prints_the_resolved_configuration(images, tmp_path):
    r = affsr(
        "train",
        "--method",
        "softmse",
        "--data",
        images,
        "--out",
        tmp_path / "run",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--patch",
        "16",
        "--generator",
        "texture",
        "--workers",
        "0",
    )
    assert r.returncode == 0, r.stderr
    assert "resolved configuration" in r.stdout and "patch" in r.stdout
    if not torch.cuda.is_available():  # bf16 is a CUDA autocast: the table says so rather than "True"
        assert "CUDA only" in r.stdout
    assert "warning: skipping" in r.stderr and "broken.jpg" in r.stderr
    assert (tmp_path / "run" / "generator.safetensors").exists()


def test_cli_bad_input(images, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("x")
    common = ["--steps", "2", "--batch-size", "2", "--patch", "16", "--generator", "texture", "--workers", "0"]
    r = affsr("train", "--data", images, "--out", tmp_path / "run", "--method", "affmse", *common)
    assert r.returncode == 0, r.stderr
    cases = [
        (["--data", empty, "--out", tmp_path / "r1"], "no images"),
        (["--data", images, "--out", tmp_path / "r2", "--method", "affwhatever"], "unknown method"),
        (
            ["--data", images, "--out", tmp_path / "run", "--method", "affmse", "--resume", "--lr", "0.1"],
            "different config",
        ),
        (["--data", images, "--out", tmp_path / "run", "--method", "affmse"], "--resume"),
        (["--data", images, "--out", afile / "run"], "cannot create run folder"),
        (["--data", tmp_path / "missing", "--out", tmp_path / "r3"], "does not exist"),
        (["--data", images, "--out", tmp_path / "r4", "--patch", "18"], "multiple of the scale"),
        (["--data", images, "--out", tmp_path / "r5", "--device", "cuda:7"], "cuda"),
        (
            ["--data", images, "--out", tmp_path / "r6", "--method", "affgan", "--discriminator", "huge"],
            "unknown discriminator",
        ),
    ]
    for args, words in cases:
        r = affsr("train", *common, *args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith("affsr: error:"), (args, r.stderr)
        assert words in lines[0], (words, lines[0])
        assert "Traceback" not in r.stderr
    state, _ = checkpoint.load_state(tmp_path / "run" / "state.safetensors")
    assert state["step"] == 2  # the refused resume left the run alone
    r = affsr("train", "--data", images, "--out", tmp_path / "run", "--method", "affmse", "--overwrite", *common)
    assert r.returncode == 0, r.stderr
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))  # --overwrite starts a fresh log


def test_two_process_ddp_on_cpu(images, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "affsr_cli",
            "train",
            "--method",
            "affgan",
            "--data",
            images,
            "--out",
            tmp_path / "ddp",
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--patch",
            "16",
            "--generator",
            "texture",
            "--workers",
            "0",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    state, config = checkpoint.load_state(tmp_path / "ddp" / "state.safetensors")
    assert state["step"] == 2 and config["method"] == "affgan"
    model = checkpoint.load_generator(tmp_path / "ddp" / "generator.safetensors")
    x = torch.rand(1, 3, 4, 4)
    assert (model.A(model(x)) - x).abs().max() < 1e-5


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("--noise-channels", "-3", "greater than or equal to 0"),
        ("--lr", "1e9", "less than or equal to 1"),
        ("--lr", "-1", "greater than or equal to"),
        ("--ema", "2", "less than or equal to"),
        ("--ladder", "-1", "greater than or equal to 1"),
        ("--mixture", "0", "greater than or equal to 1"),
        ("--prior-width", "-5", "greater than or equal to 0"),
        ("--workers", "-2", "greater than or equal to 0"),
    ],
)
def test_numeric_options_are_checked_while_parsing(images, tmp_path, option, value, words):
    """Before: --noise-channels -3 or --ladder -1 wrote a run folder, then crashed with a traceback's last line;
    --lr 1e9 trained to infinities. Now: one line naming the option, and no run folder."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "affsr_cli",
            "train",
            "--data",
            str(images),
            "--out",
            str(tmp_path / "run"),
            option,
            value,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert option in r.stderr and words in r.stderr
    assert not (tmp_path / "run").exists()


def test_ranges_hold_for_a_config_made_in_python(images, tmp_path):
    with pytest.raises(engine.TrainingError, match=r"--prior-layers must be from 0 to 64, got -1"):
        engine.train(TrainConfig(method="affdg", data=str(images), out=str(tmp_path / "run"), prior_layers=-1))
    assert not (tmp_path / "run").exists()


def test_train_only_moves_the_named_modules_alone(images, tmp_path):
    """--train-only up: from the same start, the output convolution changes and every other weight is
    bit-for-bit the start's; a module the generator does not have is one clear error."""
    start = engine.train(tiny(images, tmp_path / "start", method="affmse", generator="tiny", steps=1))
    before = checkpoint.load_generator(start / "generator.safetensors").net.state_dict()
    cfg = tiny(images, tmp_path / "head", method="affmse", generator="tiny", steps=2, lr=1e-2, ema=0.0)
    out = engine.train(TrainConfig(**{**cfg.__dict__, "init": str(start), "train_only": "up"}))
    after = checkpoint.load_generator(out / "generator.safetensors").net.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("up.") for k in moved)
    with pytest.raises(ValueError, match="no module 'nope'"):
        engine.train(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "bad"), "train_only": "up,nope"}))


def test_equivariance_gap_is_zero_for_an_f_that_commutes_with_flips():
    """SRModel.equivariance_gap: an f that commutes with flips and transposes (bicubic upsampling) scores 0
    to float precision, Π included (Pillow's bicubic A on sides of whole cells is flip-symmetric); adding a
    pattern at fixed phases of the 4×4 output cells (the LR-locked grid) makes it > 0 for every k ≠ 0."""
    from affsr_cli import dihedral
    from affsr_cli.model import SRModel
    from affsr_cli.projection import OperatorSpec

    class Up(torch.nn.Module):
        def __init__(self, grid: float):
            super().__init__()
            self.pattern = grid * torch.arange(16.0).view(4, 4) / 16  # a ramp over the 4×4 phases

        def forward(self, x, z=None):
            f = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
            return f + self.pattern.repeat(x.shape[-2], x.shape[-1])

    model = methods.build_generator("tiny", OperatorSpec(4, family="bicubic"), "aff")
    assert isinstance(model, SRModel)
    x = torch.rand(2, 3, 12, 20, generator=torch.Generator().manual_seed(0)).double()
    for k in range(8):
        t = torch.rand(2, 3, 5, 7)
        assert torch.equal(dihedral.undo(dihedral.apply(t, k), k), t)
    model.net = Up(0.0)
    model.double()
    torch.manual_seed(0)
    assert model.equivariance_gap(x, None, model(x)) < 1e-20
    model.net = Up(0.05)
    for seed in range(6):  # k drawn from 1 … 7
        torch.manual_seed(seed)
        assert model.equivariance_gap(x, None, model(x)) > 1e-5


def test_equivariance_weight_adds_its_term(images, tmp_path):
    rec = Recorder()
    engine.train(tiny(images, tmp_path / "e", method="affmse", equivariance_weight=10.0), rec)
    logs = rec.steps[-1][1]
    assert logs["equivariance_mse"] > 0
    assert logs["loss"] == pytest.approx(logs["mse"] + 10 * logs["equivariance_mse"], rel=1e-5)


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    """Photos and a --teacher folder of their negatives (same names); one photo without a namesake, one whose
    namesake has another size."""
    root, teacher = tmp_path_factory.mktemp("photos"), tmp_path_factory.mktemp("teacher")
    rng = np.random.default_rng(1)
    for i in range(4):
        a = (rng.random((24, 28 + 4 * i, 3)) * 255).astype(np.uint8)
        Image.fromarray(a).save(root / f"p{i}.png")
        if i == 2:
            continue  # no namesake
        t = 255 - a if i != 3 else a[:20]  # p3's namesake is cut short
        Image.fromarray(t).save(teacher / f"p{i}.png")
    return root, teacher


def test_teacher_crops_ride_along_with_the_photos(paired):
    root, teacher = paired
    ds = data.ImageFolder(root, "patch", 16, teacher=teacher, seed=3)
    assert sorted(f.name for f in ds.files) == ["p0.png", "p1.png"]
    assert any("p2.png" in w for w in ds.warnings) and any("p3.png" in w for w in ds.warnings)
    for i in range(8):  # the same crop and flips of the photo and of its negative
        item = ds[i]
        assert item.shape == (6, 16, 16)
        torch.testing.assert_close(item[3:], 1 - item[:3], atol=1e-6, rtol=0)
    with pytest.raises(data.AffsrError, match="namesake"):
        data.ImageFolder(root / ".." / root.name, "patch", 16, teacher=root.parent)


def test_teacher_weight_adds_its_term(paired, tmp_path):
    root, teacher = paired
    rec = Recorder()
    engine.train(tiny(root, tmp_path / "t", method="affmse", teacher=str(teacher), teacher_weight=10.0), rec)
    logs = rec.steps[-1][1]
    assert logs["teacher_mae"] > 0.2  # ŷ is near the photo, the negative far from it
    assert logs["loss"] == pytest.approx(logs["mse"] + 10 * logs["teacher_mae"], rel=1e-5)
    for kw in (dict(teacher=str(teacher)), dict(teacher_weight=1.0)):
        with pytest.raises(data.AffsrError, match="go together"):
            engine.train(tiny(root, tmp_path / "u", method="affmse", **kw), Recorder())
