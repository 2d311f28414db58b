"""Resume you can trust: bit-identical continuation, --overwrite that leaves nothing of the old run,
a state that knows its config, a torn log, folders that hold someone's files, flags that do not apply."""

import json
import subprocess
import sys

import pytest
import torch

from affsr_cli import checkpoint, data, objectives, rundir
from affsr_cli import train as engine
from helpers import noise_images, tiny_config


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return noise_images(tmp_path_factory.mktemp("images"), [(24, 28), (28, 28), (32, 28)], seed=1)


tiny = tiny_config


def tensors(path):
    return checkpoint.weights.load(path)[0]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(images, tmp_path, workers):
    """affgan with a stochastic generator: the data order and crops, z, the instance noise, D's and G's
    Adam states, the EMA and the noise schedule all continue exactly where the checkpoint left them."""
    kw = dict(
        method="affgan",
        noise_channels=2,
        workers=workers,
        checkpoint_every=3,
        sample_every=100,
        instance_noise=0.2,
        noise_steps=6,
    )  # (the default anneal, over --steps, would differ between a 3- and a 6-step run)
    whole = engine.train(tiny(images, tmp_path / "whole", steps=6, **kw))
    engine.train(tiny(images, tmp_path / "split", steps=3, **kw))
    split = engine.train(tiny(images, tmp_path / "split", steps=6, resume=True, **kw))
    for name in ("generator.safetensors", "state.safetensors"):
        a, b = tensors(whole / name), tensors(split / name)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    logs = [rundir.read_log(run / "metrics.jsonl") for run in (whole, split)]
    assert [r["loss"] for r in logs[0]] == [r["loss"] for r in logs[1]]


def test_time_limit_stops_with_a_checkpoint_and_resume_continues(images, tmp_path, monkeypatch):
    """--time-limit: the run stops after the step that crosses the limit, saves state there, says so, and
    --resume (limit lifted) ends bit-identical to a run that never stopped."""
    clock = iter(range(0, 10**6, 50))  # each reading of the clock is 50 s later: 60 s pass between steps 1 and 2
    monkeypatch.setattr(engine.time, "monotonic", lambda: float(next(clock)))
    messages = []

    class Record(engine.Callbacks):
        def on_message(self, message):
            messages.append(message)

    kw = dict(steps=5, checkpoint_every=100, sample_every=100)
    run = engine.train(tiny(images, tmp_path / "split", time_limit=1.0, **kw), Record())
    log = rundir.read_log(run / "metrics.jsonl")
    assert log[-1]["step"] == 2 and len(messages) == 1 and "step 2 of 5" in messages[0], (log[-1], messages)
    assert checkpoint.load_state(run / "state.safetensors")[0]["step"] == 2
    monkeypatch.undo()
    engine.train(tiny(images, tmp_path / "split", resume=True, **kw))
    whole = engine.train(tiny(images, tmp_path / "whole", **kw))
    a, b = tensors(whole / "generator.safetensors"), tensors(tmp_path / "split" / "generator.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_data_stream_is_a_function_of_seed_and_step(images):
    ds = data.ImageFolder(images, "patch", 16, seed=5)
    batches = list(zip(range(5), data.StepBatches(len(ds), 2, seed=5)))
    later = list(zip(range(3), data.StepBatches(len(ds), 2, seed=5, start=2)))
    assert [b for _, b in batches[2:]] == [b for _, b in later]
    assert all(len(b) == 2 for _, b in batches)  # full batches, wrapping into the next epoch
    first = sorted(i for _, b in batches for i in b)[:3]
    assert first == [0, 1, 2]  # epoch 0 is a permutation of the items
    assert torch.equal(ds[4], ds[4]) and not torch.equal(ds[1], ds[4])  # item 4 = file 1, another crop
    two = [list(zip(range(3), data.StepBatches(7, 2, 1, 0, r, 2))) for r in (0, 1)]
    one = list(zip(range(3), data.StepBatches(7, 4, 1)))
    assert [a + b for (_, a), (_, b) in zip(*two)] == [b for _, b in one]  # ranks split each step's numbers


def test_overwrite_removes_every_file_of_the_old_run(images, tmp_path, monkeypatch):
    out = tmp_path / "run"
    engine.train(tiny(images, out, method="affmse", steps=3))
    (out / "notes.txt").write_text("mine")
    (out / "samples" / "my-picture.png").write_bytes(b"x")
    assert (out / "samples" / "step-0000003.png").exists()

    def fail(self, yhat, y):
        raise KeyboardInterrupt

    monkeypatch.setattr(objectives.PixelObjective, "generator_loss", fail)  # the new run stops before its first step
    with pytest.raises(engine.Interrupted):
        engine.train(tiny(images, out, method="affmae", lr=1e-3, steps=5, checkpoint_every=100, overwrite=True))
    monkeypatch.undo()
    assert not (out / "metrics.jsonl").exists() and not list((out / "samples").glob("step-*.png"))
    assert (out / "notes.txt").read_text() == "mine" and (out / "samples" / "my-picture.png").exists()
    state, config = checkpoint.load_state(out / "state.safetensors")
    assert state["step"] == 0 and config["method"] == "affmae"  # the interrupted new run, not the old weights
    run = engine.train(tiny(images, out, method="affmae", lr=1e-3, steps=2, resume=True))
    assert json.loads((run / "config.json").read_text())["method"] == "affmae"


def test_resume_refuses_a_state_of_another_config(images, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    engine.train(tiny(images, a, method="affmse"))
    engine.train(tiny(images, b, method="affmse", lr=1e-3))
    (a / "state.safetensors").write_bytes((b / "state.safetensors").read_bytes())  # a state copied from another run
    with pytest.raises(engine.TrainingError, match=r"state\.safetensors belongs to another run .*lr"):
        engine.train(tiny(images, a, method="affmse", steps=3, resume=True))
    (a / "config.json").unlink()
    with pytest.raises(engine.TrainingError, match="config.json is missing"):
        engine.train(tiny(images, a, method="affmse", steps=3, resume=True))


def test_torn_last_log_line_is_tolerated_and_other_damage_named(images, tmp_path):
    out = tmp_path / "run"
    engine.train(tiny(images, out, method="affmse"))
    with open(out / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 3, "loss": 0.1')  # killed mid-write
    engine.train(tiny(images, out, method="affmse", steps=3, resume=True))
    assert [r["step"] for r in rundir.read_log(out / "metrics.jsonl")] == [1, 2, 3]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    with pytest.raises(engine.TrainingError, match=r"metrics\.jsonl: line 2 is not a JSON object"):
        engine.train(tiny(images, out, method="affmse", steps=4, resume=True))


@pytest.mark.parametrize("name", ["generator.safetensors", "metrics.jsonl", "state.safetensors"])
def test_any_file_a_run_writes_makes_the_folder_taken(images, tmp_path, name):
    out = tmp_path / "run"
    out.mkdir()
    (out / name).write_bytes(b"the user's own file")
    with pytest.raises(engine.TrainingError, match=f"already holds a run \\({name}\\)"):
        engine.train(tiny(images, out, method="affmse"))
    assert (out / name).read_bytes() == b"the user's own file"


def test_stale_temporaries_of_a_killed_run_are_removed(images, tmp_path):
    out = tmp_path / "run"
    engine.train(tiny(images, out, method="affmse"))
    stale = [out / ".state.safetensors.k2j4x.tmp", out / "samples" / ".step-0000002.png.ab_12.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    (out / ".my-own.tmp").write_bytes(b"not ours")
    engine.train(tiny(images, out, method="affmse", steps=3, resume=True))
    assert not any(p.exists() for p in stale) and (out / ".my-own.tmp").exists()


def test_bad_data_leaves_no_run_behind(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        engine.train(tiny(tmp_path / "empty", tmp_path / "run", method="affmse"))
    assert not (tmp_path / "run").exists()


def test_non_finite_weights_are_never_saved(images, tmp_path, monkeypatch):
    real = engine.ema_update

    def poison(ema, net, decay, updates=0):
        real(ema, net, decay, updates)
        if updates == 2:
            next(ema.parameters()).data.fill_(float("inf"))

    monkeypatch.setattr(engine, "ema_update", poison)
    with pytest.raises(engine.TrainingError, match="not finite at step 3"):
        engine.train(tiny(images, tmp_path / "run", method="affmse", steps=5))
    state, _ = checkpoint.load_state(tmp_path / "run" / "state.safetensors")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in tensors(tmp_path / "run" / "generator.safetensors").values())


@pytest.mark.parametrize(
    "method, option, owner",
    [
        ("softmse", dict(range_weight=0.1), "aff constraint"),
        ("affmse", dict(soft_weight=2.0), "soft constraint"),
        ("affmse", dict(instance_noise=0.5), "gan objective"),
        ("affmse", dict(pixel_weight=1.0), "gan objective or the dg objective or the ll objective"),
        ("affdg", dict(mixture=4), "ll objective"),
        ("affgan", dict(dae_sigma_max=0.3), "dg objective"),
        ("affll", dict(critic_steps=3), "gan objective"),
    ],
)
def test_a_flag_that_does_not_apply_is_refused(images, tmp_path, method, option, owner):
    flag = "--" + next(iter(option)).replace("_", "-")
    with pytest.raises(engine.TrainingError, match=f"{flag} does not apply to the method {method} .*{owner}"):
        engine.train(tiny(images, tmp_path / "run", method=method, **option))
    assert not (tmp_path / "run").exists()


def test_cli_refuses_a_flag_that_does_not_apply_in_one_line(images, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "affsr_cli",
            "train",
            "--data",
            str(images),
            "--out",
            str(tmp_path / "r"),
            "--method",
            "softmse",
            "--range-weight",
            "0.1",
            "--steps",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "--range-weight does not apply to the method softmse" in lines[0]


def test_a_damaged_state_is_named_in_one_line(images, tmp_path):
    out = tmp_path / "run"
    engine.train(tiny(images, out, method="affmse"))
    t, meta = checkpoint.weights.load(out / "state.safetensors")
    checkpoint.weights.save_atomic(out / "state.safetensors", t, {**meta, "tree": '{"step": 2}'}, overwrite=True)
    with pytest.raises(ValueError, match=r"state\.safetensors: the training state is damaged"):
        engine.train(tiny(images, out, method="affmse", steps=3, resume=True))


@pytest.mark.parametrize("method", ["affgan", "affdg"])
def test_more_steps_on_resume_keep_the_automatic_schedules(images, tmp_path, method):
    """--steps may grow on a resume; the lengths that default to a share of --steps (instance-noise
    annealing, the prior's steps) keep the run's values instead of refusing the resume (was: 'noise_steps:
    3 → 7')."""
    out = tmp_path / method
    extra = dict(prior_width=8, prior_layers=1) if method == "affdg" else {}
    engine.train(tiny(images, out, method=method, steps=3, sample_every=100, **extra))
    engine.train(tiny(images, out, method=method, steps=7, sample_every=100, resume=True, **extra))
    saved = rundir.saved_config(out)
    assert saved.steps == 7 and saved.noise_steps == 3 and saved.prior_steps == 1
    assert checkpoint.load_state(out / "state.safetensors")[0]["step"] == 7
    given = dict(noise_steps=5) if method == "affgan" else dict(prior_steps=2)
    with pytest.raises(engine.TrainingError, match=next(iter(given))):  # a length the user gives is still checked
        engine.train(tiny(images, out, method=method, steps=9, sample_every=100, resume=True, **given, **extra))
