"""`affsr train`: one option per TrainConfig field, the resolved configuration and a progress bar."""

from __future__ import annotations

import signal
import threading
import time

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .common import err, fail, out


def _config_options():
    """`affsr train` takes one option per TrainConfig field; its help is the field's comment."""
    import dataclasses
    import inspect
    import re

    from ..config import RANGES, TrainConfig

    comments = dict(re.findall(r"^\s+(\w+): .*?  # (.*)$", inspect.getsource(TrainConfig), re.M))
    params = [
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
    ]  # which options were given
    for f in dataclasses.fields(TrainConfig):
        flag = f"--{f.name.replace('_', '-')}"
        decls = [f"{flag}/--no-{f.name.replace('_', '-')}"] if f.type in ("bool", bool) else [flag]
        lo, hi = RANGES.get(f.name, (None, None))  # checked while parsing, shown in --help
        params.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=type(f.default),
                default=typer.Option(f.default, *decls, help=comments.get(f.name, ""), min=lo, max=hi),
            )
        )
    return inspect.Signature(params)


class TrainUI:
    """Rich output for the training callbacks: the resolved configuration, then a progress bar."""

    estimate = True  # the engine times a few steps first (train.estimate): on_estimate prints the time it expects

    def __init__(self):
        self.bar = None

    def on_message(self, message):
        err.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)  # one line, however long

    def on_start(self, config, info):
        table = Table(title="affsr train: resolved configuration", show_header=False)
        for k, v in {**config, **info}.items():
            if k == "bf16" and v and not str(info.get("device", "")).startswith("cuda"):
                v = f"{v} (CUDA only: this run computes in float32)"
            table.add_row(k, str(v))
        out.print(table)
        for line in plan(config, info):
            out.print(line, soft_wrap=True)
        self.config, self.info = config, info

    def on_estimate(self, seconds):
        from ..recipe import duration

        if seconds:
            total, steps = sum(n * t for n, t in seconds), sum(n for n, _ in seconds)
            each = (
                ", ".join(f"{n:,} at {t:.3g} s" for n, t in seconds)
                if len(seconds) > 1
                else f"{seconds[0][1]:.3g} s a step"
            )
            out.print(
                f"estimate: about {duration(total)} for {steps:,} step{'s' * (steps != 1)} on {self.info['device']} ({each}; "
                "timed on this machine, network only)",
                soft_wrap=True,
            )
        self._start_bar()

    def _start_bar(self):
        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("elapsed,"),
            TimeRemainingColumn(),
            TextColumn("left"),
            console=err,
            disable=not err.is_terminal,
            speed_estimate_period=600,
        )  # slow steps: a minute-long step still gives a remaining time
        self.task = self.bar.add_task(
            "train", total=self.config["steps"], completed=self.info["start_step"], rate="", info=""
        )
        self.bar.start()
        self.t0, self.step0 = time.perf_counter(), self.info["start_step"]

    def on_step(self, step, logs):
        if self.bar is None:
            self._start_bar()
        rate = (step - self.step0) / max(time.perf_counter() - self.t0, 1e-9)
        shown = {
            k: v
            for k, v in logs.items()
            if k in ("loss", "mse", "mae", "g_loss", "d_loss", "soft_mae", "pixel_mse", "range_mse", "noise", "lr_mse")
        }
        self.bar.update(
            self.task,
            completed=step,
            rate=f"{rate:.2f} steps/s",
            info=" ".join(f"{k} {v:.3g}" for k, v in shown.items()),
        )

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def plan(config: dict, info: dict) -> list[str]:
    """The run in three lines: network, operator, steps and where it starts."""
    from ..tasks import TASKS

    a = {"gaussian": f"gaussian σ {config['sigma']:g}, {config['kernel_size']} taps"}.get(
        config["operator"], config["operator"]
    )
    start = f"from {config['init']}" if config["init"] else "from random weights"
    if info["start_step"]:
        start = f"resumed at step {info['start_step']:,}"
    recipe = {"photos": "the shipped weights' recipe", "patch": "random crops, no recipe"}.get(
        config["preset"], "the paper's" if TASKS[config["preset"]].paper else config["preset"]
    )
    a = f"{a} at {config['scale']}×, {config['boundary']} borders"
    if TASKS[config["preset"]].points:
        a = "the mean of the two coordinates (the Swiss roll's)"
    return [
        f"network: {config['generator']} ({info['network']}, {info['generator_parameters']:,} parameters), {start}",
        f"operator A: {a}",
        f"training: {config['method']}, {config['steps']:,} step{'s' * (config['steps'] != 1)} of {config['batch_size']} "
        + (f"{config['patch']}×{config['patch']} crops" if not TASKS[config["preset"]].points else "points")
        + f", preset {config['preset']} ({recipe})",
    ]


def train(ctx: typer.Context, **kwargs):
    """Train a method (objective × constraint). On a folder of images with no --preset, the options not given take
    the shipped weights' recipe (--preset photos): span52 from the shipped AffMSE, the bicubic A, the steps, learning
    rates and loss terms of affmse-x4 and affgan-x4; the defaults shown below are those of the other presets. The run
    prints its network, A, steps and an estimated time first. --preset celeba, imagenet, texture: the paper's
    setups. torchrun for several GPUs."""
    from .. import train as engine
    from ..config import TrainConfig
    from ..rundir import FolderInUse

    def stop(
        signum, frame
    ):  # `kill`, batch schedulers (SIGTERM) and a closed terminal (SIGHUP) stop a run like Ctrl-C: resumable
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), stop)
    ui = TrainUI()
    try:
        given = {k for k in kwargs if ctx.get_parameter_source(k).name not in ("DEFAULT", "DEFAULT_MAP")}
        run = engine.train(TrainConfig(**kwargs), ui, given)
    except engine.Interrupted as e:
        ui.close()
        fail(str(e), 130)
    except FolderInUse as e:  # not a usage error: the same command works once the other run ends
        ui.close()
        fail(str(e), 1)
    finally:
        ui.close()
    out.print(f"done: {run}/generator.safetensors")


train.__signature__ = _config_options()
