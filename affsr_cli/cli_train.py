"""`affsr train`: one option per TrainConfig field, the resolved configuration and a progress bar."""
from __future__ import annotations

import signal
import threading
import time

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .cli import _fail, app, err, out


def _config_options():
    """`affsr train` takes one option per TrainConfig field; its help is the field's comment."""
    import dataclasses
    import inspect
    import re

    from .config import RANGES, TrainConfig

    comments = dict(re.findall(r"^\s+(\w+): .*?  # (.*)$", inspect.getsource(TrainConfig), re.M))
    params = []
    for f in dataclasses.fields(TrainConfig):
        flag = f"--{f.name.replace('_', '-')}"
        decls = [f"{flag}/--no-{f.name.replace('_', '-')}"] if f.type in ("bool", bool) else [flag]
        lo, hi = RANGES.get(f.name, (None, None))  # checked while parsing, shown in --help
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=type(f.default),
                                        default=typer.Option(f.default, *decls, help=comments.get(f.name, ""),
                                                             min=lo, max=hi)))
    return inspect.Signature(params)


class _TrainUI:
    """Rich output for the training callbacks: the resolved configuration, then a progress bar."""

    def __init__(self):
        self.bar = None

    def on_message(self, message):
        err.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)  # one line, however long

    def on_start(self, config, info):
        table = Table(title="affsr train: resolved configuration", show_header=False)
        for k, v in {**config, **info}.items():
            table.add_row(k, str(v))
        out.print(table)
        self.bar = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                            console=err, disable=not err.is_terminal)
        self.task = self.bar.add_task("train", total=config["steps"], completed=info["start_step"], rate="", info="")
        self.bar.start()
        self.t0, self.step0 = time.perf_counter(), info["start_step"]

    def on_step(self, step, logs):
        rate = (step - self.step0) / max(time.perf_counter() - self.t0, 1e-9)
        shown = {k: v for k, v in logs.items() if k in ("loss", "mse", "mae", "g_loss", "d_loss", "soft_mae", "pixel_mse", "range_mse", "noise", "lr_mse")}
        self.bar.update(self.task, completed=step, rate=f"{rate:.2f} steps/s",
                        info=" ".join(f"{k} {v:.3g}" for k, v in shown.items()))

    def close(self):
        if self.bar is not None:
            self.bar.stop()


def train(**kwargs):
    """Train a method (objective × constraint) on a folder of images; torchrun for several GPUs."""
    from . import train as engine
    from .config import TrainConfig
    from .rundir import FolderInUse

    def stop(signum, frame):  # `kill`, batch schedulers (SIGTERM) and a closed terminal (SIGHUP) stop a run like Ctrl-C: resumable
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), stop)
    ui = _TrainUI()
    try:
        run = engine.train(TrainConfig(**kwargs), ui)
    except engine.Interrupted as e:
        ui.close()
        _fail(str(e), 130)
    except FolderInUse as e:  # not a usage error: the same command works once the other run ends
        ui.close()
        _fail(str(e), 1)
    finally:
        ui.close()
    out.print(f"done: {run}/generator.safetensors")


train.__signature__ = _config_options()
app.command(help=train.__doc__)(train)
